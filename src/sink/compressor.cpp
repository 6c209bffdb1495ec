// The compressor thread: finished segments are compressed into a temp file, synced, renamed,
// and only then is the original removed. The codec itself is compress.cpp.
#include "file_sink.hpp"

#include <cerrno>

#include <sys/stat.h>

namespace mdagg::sink_detail {

void State::enqueue_compression(const std::string& path) {
    if (codec.load() == Compression::none) return;
    {
        std::lock_guard lk(cm);
        cqueue.push_back(path);
    }
    ccv.notify_one();
}

// The temp file is new (O_EXCL, which never follows a symlink): a name planted in the
// directory makes the compression fail, never writes through it.
int State::create_compression_temp(const std::string& tmp) {
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    const int fd = ::open(tmp.c_str(), flags, 0644);
    if (fd >= 0 || errno != EEXIST) return fd;
    // A stale temp of our own naming (an attempt close() cancelled) is replaced; anything
    // else under that name (a symlink) is left alone and fails this compression.
    struct stat sb;
    if (::lstat(tmp.c_str(), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        errno = EEXIST;
        return -1;
    }
    if (::unlink(tmp.c_str()) != 0) return -1;  // unlink never follows a symlink
    return ::open(tmp.c_str(), flags, 0644);
}

void State::compress_one(const std::string& src) {
    const Compression compression = codec.load();
    if (compression == Compression::none) return;  // switched off by a reload meanwhile
    const std::string dst = src + sink_detail::compression_suffix(compression);
    const std::string tmp = dst + ".part";
    const int in = ::open(src.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (in < 0 && errno == ENOENT) return;  // retention got there first
    struct stat in_sb;
    int err = 0;
    if (in < 0) {
        err = errno;  // ELOOP: a symlink named like a segment
    } else if (::fstat(in, &in_sb) != 0) {
        err = errno;
    } else if (!S_ISREG(in_sb.st_mode)) {
        err = EINVAL;
    }
    const int out = err != 0 ? -1 : create_compression_temp(tmp);
    if (err == 0 && out < 0) err = errno;
    if (err == 0) err = sink_detail::compress_stream(in, out, compression, cstop);
    if (in >= 0) ::close(in);
    if (err == 0 && file_ops().fdatasync(out) != 0) err = errno;
    if (out >= 0 && ::close(out) != 0 && err == 0) err = errno;
    if (err == 0) {
        std::lock_guard lk(fs_mutex);
        struct stat sb;
        if (::lstat(src.c_str(), &sb) != 0) {
            ::unlink(tmp.c_str());  // removed by retention meanwhile
            return;
        }
        if (::rename(tmp.c_str(), dst.c_str()) != 0) {
            err = errno;
        } else {
            // The compressed copy is durable before the original goes.
            (void)sync_dir(dir);
            ::unlink(src.c_str());
            (void)sync_dir(dir);
            segments_compressed.fetch_add(1, std::memory_order_relaxed);
            log::debug("output segment compressed", {{"path", dst}});
            return;
        }
    }
    if (out >= 0) ::unlink(tmp.c_str());  // only a temp we created
    if (err == -1) return;  // cancelled by close(); the next start compresses it
    compression_errors.fetch_add(1, std::memory_order_relaxed);
    fault_log.write(log::Level::error, "sink.compress", "cannot compress output segment; it stays uncompressed",
                    {{"path", src}, {"error", error_text(err)}});
}

void compressor_main(std::shared_ptr<State> sp) {
    State& st = *sp;
    for (;;) {
        std::string path;
        {
            std::unique_lock lk(st.cm);
            st.ccv.wait(lk, [&] { return !st.cqueue.empty() || st.cstop.load(); });
            if (st.cstop.load()) {
                st.compressor_done = true;
                st.ccv.notify_all();
                return;
            }
            path = std::move(st.cqueue.front());
            st.cqueue.pop_front();
        }
        st.compress_one(path);
    }
}

}  // namespace mdagg::sink_detail

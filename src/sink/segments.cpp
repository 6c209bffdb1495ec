// Segments: their names, opening the next one, rescuing one removed while open, and closing
// one (sync, rename, then retention and compression). Writer thread only.
#include "file_sink.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>

#include <sys/file.h>
#include <sys/stat.h>

namespace mdagg::sink_detail {

namespace fs = std::filesystem;

bool is_finished_segment(std::string_view name, Kind kind) {
    if (!name.starts_with(kind_name[kind]) || name.size() <= std::strlen(kind_name[kind]) ||
        name[std::strlen(kind_name[kind])] != '-')
        return false;
    for (std::string_view ext : {".jsonl", ".csv"})
        for (std::string_view z : {"", ".gz", ".zst"}) {
            std::string suffix(ext);
            suffix += z;
            if (ends_with(name, suffix)) return true;
        }
    return false;
}

bool is_part_segment(std::string_view name) {
    if (!ends_with(name, ".part")) return false;
    const std::string_view stem = name.substr(0, name.size() - 5);
    return is_finished_segment(stem, quotes) || is_finished_segment(stem, bars) || is_finished_segment(stem, events);
}

bool is_compression_temp(std::string_view name) {
    return ends_with(name, ".gz.part") || ends_with(name, ".zst.part");
}

namespace {

// YYYYMMDDTHHMMSS.mmmZ of now: fixed width, so names sort by time.
std::string utc_stamp_ms() {
    const auto now = std::chrono::system_clock::now();
    const std::time_t secs = std::chrono::system_clock::to_time_t(now);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char buf[40];
    std::size_t n = std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%S", &tm);
    n += static_cast<std::size_t>(std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(ms)));
    return std::string(buf, n);
}

// Unique within the process across every sink, so two segments never share a name.
std::atomic<std::uint64_t> segment_counter{0};

}  // namespace

// Opens the next segment of s when none is open.
bool State::ensure_segment(Stream& s) {
    Segment& g = s.seg;
    if (g.fd >= 0) return true;
    keep_directory_locked();
    const std::string stem = dir + "/" + kind_name[s.kind] + "-" + utc_stamp_ms() + "-" + std::to_string(::getpid()) + "-";
    int err = 0;
    bool recreated = false;
    for (int attempt = 0; attempt < 100; ++attempt) {
        char seq[24];
        std::snprintf(seq, sizeof seq, "%06llu",
                      static_cast<unsigned long long>(segment_counter.fetch_add(1) + 1));
        g.final_path = stem + seq + s.ext;
        g.part_path = g.final_path + ".part";
        struct stat sb;
        if (::lstat(g.final_path.c_str(), &sb) == 0) {
            err = EEXIST;
            continue;
        }
        // Readable too: a segment removed from under us is copied out of this descriptor.
        g.fd = ::open(g.part_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (g.fd >= 0) break;
        err = errno;
        if (err == ENOENT && !recreated) {
            // The directory was removed while no segment was open (with one open, a rescue
            // recreates it): recreate it here likewise, and its lock.
            std::error_code ec;
            fs::create_directories(dir, ec);
            recreated = true;
            keep_directory_locked();
            continue;
        }
        if (err != EEXIST) break;
    }
    if (g.fd < 0) {
        on_failure("create", g.part_path, err);
        return false;
    }
    // The lock tells a starting process that this segment is alive, not a crash's leftover.
    (void)::flock(g.fd, LOCK_EX | LOCK_NB);
    g.size = g.line_end = g.records = 0;
    g.sync_failed = false;
    g.header_bytes = 0;
    g.opened_at = Clock::now();
    if (!s.header.empty()) {
        if (!write_bytes(s, s.header.data(), s.header.size(), Source::header)) {
            ::close(g.fd);
            g.fd = -1;
            ::unlink(g.part_path.c_str());
            return false;
        }
        g.records = 0;
        g.header_bytes = g.size;
    }
    if (int e = sync_dir(dir)) on_failure("fsync directory", dir, e);
    return true;
}

// Someone removed the open segment (or its whole directory): its contents live only in
// our descriptor. Copy them into a new segment, recreating the directory.
bool State::rescue_if_orphaned(Stream& s) {
    Segment& old = s.seg;
    struct stat sb;
    if (old.fd < 0 || ::fstat(old.fd, &sb) != 0 || sb.st_nlink > 0) return true;
    if (old.size != old.line_end) return false;  // a torn tail: retry once the disk writes again
    log::error("output segment was removed while open; copying its records to a new segment",
               {{"path", old.part_path}, {"bytes", old.size}});
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) {
        on_failure("create directory", dir, ec.value());
        return false;
    }
    Segment orphan = old;
    old = Segment{};
    if (!ensure_segment(s)) {
        old = orphan;
        return false;
    }
    std::vector<char> buf(1 << 20);
    off_t at = static_cast<off_t>(orphan.header_bytes);
    bool ok = true;
    while (ok && static_cast<std::uint64_t>(at) < orphan.line_end) {
        const auto want = std::min<std::uint64_t>(buf.size(), orphan.line_end - static_cast<std::uint64_t>(at));
        const ssize_t r = ::pread(orphan.fd, buf.data(), want, at);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            on_failure("read", orphan.part_path, r < 0 ? errno : EIO);
            ok = false;
            break;
        }
        ok = write_bytes(s, buf.data(), static_cast<std::size_t>(r), Source::copy);
        at += r;
    }
    if (!ok) {
        ::close(s.seg.fd);
        ::unlink(s.seg.part_path.c_str());
        old = orphan;
        return false;
    }
    s.seg.opened_at = orphan.opened_at;
    s.seg.sync_failed = orphan.sync_failed;  // the copy read what may be the dropped pages
    ::close(orphan.fd);
    log::info("output segment rescued", {{"path", s.seg.part_path}, {"records", s.seg.records}});
    return true;
}

// fdatasync, rename to the final name, fsync the directory; then retention and compression.
// A segment whose sync failed, now or at any flush, stays .part (see Segment::sync_failed).
// Returns false, keeping the segment open, when its records cannot be saved yet (removed
// from under us and not rescued) unless `final`.
// `final` (the drain) also skips the directory fsync, which finalize() does once for all.
bool State::close_segment(Stream& s, bool final) {
    Segment& g = s.seg;
    if (g.fd < 0) return true;
    if (g.size != g.line_end) {
        // Only after a failed write: cut the torn line so every line in the file parses.
        if (file_ops().ftruncate(g.fd, static_cast<off_t>(g.line_end)) != 0) {
            on_failure("truncate", g.part_path, errno);
            g.sync_failed = true;  // the torn line stays; the next start's repair cuts it
        } else {
            g.size = g.line_end;
        }
    }
    if (!rescue_if_orphaned(s) && !final) return false;
    if (file_ops().fdatasync(g.fd) != 0) {
        on_failure("fdatasync", g.part_path, errno);
        g.sync_failed = true;
    }
    // NFS and others report a lost write-back only here.
    if (::close(g.fd) != 0) {
        on_failure("close", g.part_path, errno);
        g.sync_failed = true;
    }
    g.fd = -1;
    g.dirty = false;
    if (g.line_end <= g.header_bytes) {
        // Nothing but a header (the first write failed): not worth a file.
        ::unlink(g.part_path.c_str());
        return true;
    }
    if (g.sync_failed) {
        // The records may not be on the disk, and no later fsync can tell: publishing it
        // would claim durability. The next start's repair reads what the disk really has.
        segments_unsynced.fetch_add(1, std::memory_order_relaxed);
        unsynced_log.write(log::Level::error, "sink.unsynced",
                           "output segment kept as .part: its fdatasync failed, so it is not known to "
                           "be on disk; the next start repairs it",
                           {{"path", g.part_path},
                            {"records", g.records},
                            {"bytes", g.size},
                            {"segments_unsynced_total", segments_unsynced.load(std::memory_order_relaxed)}});
        return true;
    }
    if (::rename(g.part_path.c_str(), g.final_path.c_str()) != 0) {
        // The records stay in the .part file; the next start finalizes it.
        on_failure("rename", g.part_path, errno);
        return true;
    }
    if (!final)
        if (int e = sync_dir(dir)) on_failure("fsync directory", dir, e);
    s.counters.segments_closed.fetch_add(1, std::memory_order_relaxed);
    log::info("output segment closed", {{"path", g.final_path}, {"records", g.records}, {"bytes", g.size}});
    apply_retention(s.kind);
    enqueue_compression(g.final_path);
    return true;
}

}  // namespace mdagg::sink_detail

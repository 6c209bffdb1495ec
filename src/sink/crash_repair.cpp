// Crash repair: a .part segment left by an interrupted run is cut after its last complete
// line and renamed to its final name, at start-up and before any new segment exists.
// Everything is done relative to the directory's descriptor and never through a symlink: a
// name planted in the directory must not make us truncate or rename its target.
#include "file_sink.hpp"

#include <cerrno>
#include <filesystem>
#include <iterator>

#include <sys/file.h>
#include <sys/stat.h>

namespace mdagg::sink_detail {

namespace fs = std::filesystem;

namespace {

std::string parent_of(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
}

// Opens <dir>/<name> for repair: a regular file (checked before and after the open), locked.
// Returns the descriptor, or -1 with r's outcome and error set.
int open_for_repair(int dfd, const std::string& name, RepairResult& r) {
    const auto refuse = [&](int err) {
        r.outcome = RepairResult::refused;
        r.error = err;
        return -1;
    };
    struct stat lsb;
    if (::fstatat(dfd, name.c_str(), &lsb, AT_SYMLINK_NOFOLLOW) != 0) {
        r.error = errno;
        return -1;
    }
    if (!S_ISREG(lsb.st_mode)) return refuse(S_ISLNK(lsb.st_mode) ? ELOOP : EINVAL);
    // O_NONBLOCK: something swapped in since the check (a FIFO) must not block the open.
    const int fd = ::openat(dfd, name.c_str(), O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ELOOP) return refuse(ELOOP);
        r.error = errno;
        return -1;
    }
    struct stat sb;
    if (::fstat(fd, &sb) != 0) {
        r.outcome = RepairResult::failed;
        r.error = errno;
        ::close(fd);
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        ::close(fd);
        return refuse(EINVAL);
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK) {
            r.outcome = RepairResult::failed;
            r.error = errno;
        } else {
            r.outcome = RepairResult::skipped_live;
        }
        ::close(fd);
        return -1;
    }
    r.original_bytes = static_cast<std::uint64_t>(sb.st_size);
    return fd;
}

// Where the file's complete lines end: up to the last '\n' before the end, and before the
// first NUL in the tail: a power loss can leave the tail's blocks zero-filled. Earlier data
// was fdatasync'd by a flush. 0 or an errno value.
int complete_lines_end(int fd, std::uint64_t size, std::uint64_t& keep) {
    constexpr std::uint64_t window = 1 << 20;
    std::vector<char> buf(window);
    std::uint64_t end = size;
    keep = 0;
    bool tail = true;
    while (end > 0) {
        const std::uint64_t start = end > window ? end - window : 0;
        std::size_t got = 0;
        while (got < end - start) {
            const ssize_t n = ::pread(fd, buf.data() + got, end - start - got, static_cast<off_t>(start + got));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return n < 0 ? errno : EIO;
            got += static_cast<std::size_t>(n);
        }
        const char* first = buf.data();
        const char* last = first + got;
        if (tail) {
            last = std::find(first, last, '\0');
            tail = false;
        }
        const char* nl = std::find(std::make_reverse_iterator(last), std::make_reverse_iterator(first), '\n').base();
        if (nl != first) {
            keep = start + static_cast<std::uint64_t>(nl - first);
            return 0;
        }
        end = start;
    }
    return 0;
}

// Renames the repaired file to its final name, never replacing a finished file (nor a
// symlink in its place), and syncs the directory. 0 or an errno value.
int publish_repaired(int dfd, const std::string& name, const std::string& final_name) {
    if (::renameat2(dfd, name.c_str(), dfd, final_name.c_str(), RENAME_NOREPLACE) != 0) {
        if (errno != EINVAL && errno != ENOSYS) return errno;
        // A filesystem without RENAME_NOREPLACE: check, then rename.
        struct stat fb;
        if (::fstatat(dfd, final_name.c_str(), &fb, AT_SYMLINK_NOFOLLOW) == 0) return EEXIST;
        if (::renameat(dfd, name.c_str(), dfd, final_name.c_str()) != 0) return errno;
    }
    return ::fsync(dfd) != 0 ? errno : 0;
}

// Crash repair of <dir>/<name>.
RepairResult repair_at(int dfd, const std::string& dir, const std::string& name) {
    RepairResult r;
    const std::string final_name = name.substr(0, name.size() - (ends_with(name, ".part") ? 5 : 0));
    r.final_path = dir + "/" + final_name;
    const int fd = open_for_repair(dfd, name, r);
    if (fd < 0) return r;
    const auto fail = [&](int err) {
        r.outcome = RepairResult::failed;
        r.error = err;
        ::close(fd);
        return r;
    };
    std::uint64_t keep = 0;
    if (int err = complete_lines_end(fd, r.original_bytes, keep)) return fail(err);
    r.kept_bytes = keep;
    if (keep != r.original_bytes && ::ftruncate(fd, static_cast<off_t>(keep)) != 0) return fail(errno);
    if (keep == 0) {
        ::close(fd);
        if (::unlinkat(dfd, name.c_str(), 0) != 0) {
            r.error = errno;
            return r;
        }
        (void)::fsync(dfd);
        r.outcome = RepairResult::removed_empty;
        return r;
    }
    if (::fdatasync(fd) != 0) return fail(errno);
    ::close(fd);
    r.error = publish_repaired(dfd, name, final_name);
    if (r.error == 0) r.outcome = RepairResult::finalized;
    return r;
}

void count_refusal(State& st, const std::string& path, int err) {
    st.repair_errors.fetch_add(1, std::memory_order_relaxed);
    log::error("refused to repair a file named like an output segment: not a regular file; left alone",
               {{"path", path}, {"error", error_text(err)}});
}

void report_repair(State& st, const std::string& part, const RepairResult& r) {
    switch (r.outcome) {
        case RepairResult::finalized:
            st.files_repaired.fetch_add(1, std::memory_order_relaxed);
            log::warn("repaired output segment left by an interrupted run",
                      {{"path", r.final_path},
                       {"bytes", r.kept_bytes},
                       {"torn_bytes_cut", r.original_bytes - r.kept_bytes}});
            break;
        case RepairResult::removed_empty:
            st.files_repaired.fetch_add(1, std::memory_order_relaxed);
            log::warn("removed output segment without a complete record left by an interrupted run",
                      {{"path", part}, {"torn_bytes_cut", r.original_bytes}});
            break;
        case RepairResult::skipped_live:
            log::warn("output segment is held by another running process; left alone", {{"path", part}});
            break;
        case RepairResult::refused:
            count_refusal(st, part, r.error);
            break;
        case RepairResult::failed:
            st.repair_errors.fetch_add(1, std::memory_order_relaxed);
            log::error("cannot repair output segment", {{"path", part}, {"error", error_text(r.error)}});
            break;
    }
}

}  // namespace

void repair_leftovers(State& st, int dfd) {
    // Dot-files are state, never segments.
    std::vector<std::string> parts;
    std::error_code ec;
    for (fs::directory_iterator it(st.dir, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (!name.starts_with('.') && is_part_segment(name)) parts.push_back(name);
    }
    if (ec) throw std::system_error(ec, "cannot list output directory " + st.dir);
    std::sort(parts.begin(), parts.end());
    for (const std::string& name : parts) {
        const std::string part = st.dir + "/" + name;
        if (is_compression_temp(name)) {
            // An interrupted compression; its source is still there and is compressed again.
            struct stat sb;
            if (::fstatat(dfd, name.c_str(), &sb, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(sb.st_mode)) {
                count_refusal(st, part, S_ISLNK(sb.st_mode) ? ELOOP : EINVAL);
            } else if (::unlinkat(dfd, name.c_str(), 0) == 0) {
                log::info("removed an unfinished compression", {{"path", part}});
            }
            continue;
        }
        report_repair(st, part, repair_at(dfd, st.dir, name));
    }
}

}  // namespace mdagg::sink_detail

namespace mdagg {

RepairResult repair_segment(const std::string& part_path) {
    using namespace sink_detail;
    const std::string dir = parent_of(part_path);
    const auto slash = part_path.rfind('/');
    const std::string name = slash == std::string::npos ? part_path : part_path.substr(slash + 1);
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        RepairResult r;
        r.final_path = part_path.substr(0, part_path.size() - (ends_with(part_path, ".part") ? 5 : 0));
        r.error = errno;
        return r;
    }
    RepairResult r = repair_at(dfd, dir, name);
    ::close(dfd);
    return r;
}

}  // namespace mdagg

// FileSink: the strand formats a record and appends it to a bounded queue of chunks under a
// mutex held for a memcpy; one writer thread owns the segments and does every syscall, and a
// second thread compresses finished segments, so the strand never waits for the disk.
#include <mdagg/observe.hpp>
#include <mdagg/sink.hpp>

#include "detail.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <iterator>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace mdagg {

namespace sink_detail {
FileOps& file_ops() {
    static FileOps ops{::fdatasync, ::ftruncate};
    return ops;
}
}  // namespace sink_detail

namespace {

namespace fs = std::filesystem;
using sink_detail::file_ops;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// events: stale/fresh marks, always JSON lines (a CSV file has one record shape).
enum Kind { quotes = 0, bars = 1, events = 2, kinds = 3 };
constexpr const char* kind_name[kinds] = {"quotes", "bars", "events"};

std::uint64_t count_lines(const char* first, const char* last) {
    return static_cast<std::uint64_t>(std::count(first, last, '\n'));
}

std::string error_text(int err) { return std::generic_category().message(err); }

std::int64_t micros(Clock::duration d) {
    return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

// Directory entries are durable only once the directory itself is synced.
int sync_dir(const std::string& dir) {
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return errno;
    const int rc = ::fsync(dfd) == 0 ? 0 : errno;
    ::close(dfd);
    return rc;
}

std::string parent_of(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
}

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// A finished segment of `kind` (any format, compressed or not), as retention sees it.
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

// A .part segment left by this program: <quotes|bars|events>-...<.jsonl|.csv>[.gz|.zst].part
bool is_part_segment(std::string_view name) {
    if (!ends_with(name, ".part")) return false;
    const std::string_view stem = name.substr(0, name.size() - 5);
    return is_finished_segment(stem, quotes) || is_finished_segment(stem, bars) || is_finished_segment(stem, events);
}

bool is_compression_temp(std::string_view name) {
    return ends_with(name, ".gz.part") || ends_with(name, ".zst.part");
}

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

struct Chunk {
    std::string data;  // whole lines only
    // Lines in data (the formatters never put a line break inside a record); for the writer's
    // `current`, the lines not yet written.
    std::uint64_t records = 0;
    std::uint64_t seq = 0;  // creation order across both streams, for drop_oldest
};

struct Segment {
    int fd = -1;
    std::string part_path;
    std::string final_path;
    std::uint64_t size = 0;          // bytes in the file
    std::uint64_t line_end = 0;      // offset just past the last complete line
    std::uint64_t header_bytes = 0;  // CSV header row
    std::uint64_t records = 0;
    Clock::time_point opened_at{};
    bool dirty = false;  // written since the last fdatasync
    // An fdatasync or ftruncate of this segment failed: its pages may be gone even if a later
    // fdatasync succeeds, so it is never renamed to a finished name.
    bool sync_failed = false;
};

struct Counters {
    std::atomic<std::uint64_t> records_written{0}, bytes_written{0}, records_dropped{0},
        segments_closed{0}, segments_deleted{0};
};

struct Stream {
    Kind kind = quotes;
    RecordFormat format = RecordFormat::jsonl;
    std::string_view header;  // empty for JSON lines
    const char* ext = ".jsonl";

    std::deque<Chunk> queue;  // guarded by State::m; back() is the one being filled

    // Writer thread only, once started. A failed write leaves the rest of `current` in place
    // so the next round resumes at the exact byte, never repeating or skipping one.
    Chunk current;
    std::size_t done = 0;
    Segment seg;

    Counters counters;
};

constexpr const char* lock_name = ".mdagg.lock";

// An exclusive flock on <dir>/.mdagg.lock (opened relative to dfd, never through a symlink),
// with our pid written into it; or why not, and the holder's pid when another process has it.
struct DirectoryLock {
    int fd = -1;
    int error = 0;
    bool opened = false;  // the error is flock's, not open's
    std::string holder = "unknown";
};

DirectoryLock try_lock_directory(const std::string& dir, int dfd) {
    DirectoryLock lock;
    const int fd = ::openat(dfd, lock_name, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
    if (fd < 0) {
        lock.error = errno;
        return lock;
    }
    lock.opened = true;
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        lock.error = errno;
        char buf[24] = {};
        const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
        ::close(fd);
        std::string holder(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
        holder.erase(std::find_if(holder.begin(), holder.end(), [](char c) { return c < '0' || c > '9'; }),
                     holder.end());
        if (!holder.empty()) lock.holder = holder;
        return lock;
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
        log::warn("cannot write our pid into the output directory's lock file; the lock holds anyway",
                  {{"path", dir + "/" + lock_name}, {"error", error_text(errno)}});
    lock.fd = fd;
    return lock;
}

// Everything the writer and compressor threads touch. Shared so threads abandoned at a
// close() deadline keep it alive after the FileSink is gone.
struct State {
    State() = default;
    State(const State&) = delete;
    State& operator=(const State&) = delete;
    ~State() {
        if (lock_fd >= 0) ::close(lock_fd);
    }

    SinkOptions opt;
    std::string dir;
    Stream streams[kinds];
    // <dir>/.mdagg.lock, flock'ed while this sink (or a writer it abandoned) may still write.
    // Set by open(), then the writer's (keep_directory_locked).
    int lock_fd = -1;

    std::mutex m;
    std::condition_variable wake;  // writer: flush, stop, full chunk
    std::condition_variable space; // block policy: room freed
    std::condition_variable finished_cv;
    // Guarded by m.
    std::vector<std::string> spare;  // emptied chunk buffers, reused to avoid allocation
    std::uint64_t next_chunk_seq = 0;
    std::size_t held = 0;  // queued bytes plus the writer's unwritten rest
    int space_waiters = 0;
    bool shedding = false;  // block policy: a wait timed out; drop without waiting for now
    bool opened = false;
    bool flush_requested = false;
    Clock::time_point flush_requested_at{};
    bool stop = false;
    bool finished = false;
    // FileSink::reconfigure: rotation and retention wait here for the writer's next round.
    std::optional<SinkOptions> reconfigured;
    // The codec of segments compressed from now on; the compressor reads it per segment.
    std::atomic<Compression> codec{Compression::none};

    // Writer thread only.
    bool fault = false;
    Clock::time_point fault_since{};
    Clock::time_point retry_at{};
    std::uint64_t dropped_at_fault = 0;

    // Compressor.
    std::mutex cm;
    std::condition_variable ccv;
    std::deque<std::string> cqueue;  // finished segments to compress, guarded by cm
    bool compressor_done = false;    // guarded by cm
    std::atomic<bool> cstop{false};
    // Retention and the compressor's rename-then-unlink must not interleave, or retention
    // could delete a source whose compressed copy then appears anyway.
    std::mutex fs_mutex;

    log::RateLimited drop_log{std::chrono::seconds(10)};
    log::RateLimited fault_log{std::chrono::seconds(10)};
    log::RateLimited unsynced_log{std::chrono::seconds(10)};
    log::RateLimited lock_log{std::chrono::seconds(10)};

    std::atomic<std::uint64_t> write_errors{0}, segments_compressed{0}, compression_errors{0},
        files_repaired{0}, repair_errors{0}, segments_unsynced{0}, overflow_waits{0}, flushes{0},
        flush_latency_last_us{0}, flush_latency_max_us{0};
    std::atomic<bool> disk_fault{false};
    std::atomic<int> last_error{0};

    std::uint64_t total_dropped() const {
        return streams[quotes].counters.records_dropped.load() + streams[bars].counters.records_dropped.load();
    }

    // ---- producer side (caller's thread, under m) ---------------------------------------

    std::string take_spare() {
        if (spare.empty()) {
            std::string s;
            // A chunk ends with the record that fills it; beyond 1 MiB let it grow as needed.
            s.reserve(std::min<std::size_t>(opt.handoff_bytes, 1 << 20) + 1024);
            return s;
        }
        std::string s = std::move(spare.back());
        spare.pop_back();
        return s;
    }

    void give_spare(std::string&& s) {
        s.clear();
        if (spare.size() < 4 && s.capacity() > 0) spare.push_back(std::move(s));
    }

    // Discards the oldest queued chunk of either stream; false when nothing is queued (all of
    // the held bytes are the writer's).
    bool drop_oldest_chunk() {
        Stream* victim = nullptr;
        for (Stream& s : streams)
            if (!s.queue.empty() && (!victim || s.queue.front().seq < victim->queue.front().seq)) victim = &s;
        if (!victim) return false;
        Chunk& c = victim->queue.front();
        victim->counters.records_dropped.fetch_add(c.records, std::memory_order_relaxed);
        held -= c.data.size();
        give_spare(std::move(c.data));
        victim->queue.pop_front();
        return true;
    }

    bool sealed_available() const {
        for (const Stream& s : streams)
            if (s.queue.size() > 1 || (!s.queue.empty() && s.queue.front().data.size() >= opt.handoff_bytes))
                return true;
        return false;
    }

    // ---- writer side --------------------------------------------------------------------

    void on_failure(const char* op, const std::string& path, int err) {
        write_errors.fetch_add(1, std::memory_order_relaxed);
        last_error.store(err, std::memory_order_relaxed);
        const auto now = Clock::now();
        retry_at = now + opt.retry_every;
        nlohmann::json fields{{"op", op}, {"path", path}, {"error", error_text(err)}, {"errno", err}};
        if (!fault) {
            fault = true;
            fault_since = now;
            dropped_at_fault = total_dropped();
            disk_fault.store(true, std::memory_order_relaxed);
            fields["queued_bytes"] = held_bytes();
            log::error("output disk fault: records stay queued within the bound and writing is retried",
                       fields);
        } else {
            fault_log.write(log::Level::warn, "sink.fault", "output disk fault persists", std::move(fields));
        }
    }

    void on_success() {
        if (!fault) return;
        fault = false;
        disk_fault.store(false, std::memory_order_relaxed);
        log::info("output disk recovered: writing resumed",
                  {{"fault_ms", micros(Clock::now() - fault_since) / 1000},
                   {"records_dropped_during_fault", total_dropped() - dropped_at_fault}});
    }

    std::size_t held_bytes() {
        std::lock_guard lk(m);
        return held;
    }

    void release(std::size_t bytes) {
        std::lock_guard lk(m);
        held -= bytes;
        if (shedding && held <= opt.max_buffer_bytes / 2) shedding = false;
        if (space_waiters > 0) space.notify_all();
    }

    enum class Source { records, header, copy };  // what is written: only records count as such

    // Writes [p, p+n) at the segment's end; false (after on_failure) when the disk refused.
    bool write_bytes(Stream& s, const char* p, std::size_t n, Source source) {
        Segment& g = s.seg;
        while (n > 0) {
            const ssize_t w = ::write(g.fd, p, n);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                // 0 cannot make progress either; retrying now would spin, the retry timer waits.
                on_failure("write", g.part_path, w < 0 ? errno : EIO);
                return false;
            }
            const auto wrote = static_cast<std::size_t>(w);
            // Records are counted without reading them again when a write takes the rest of
            // the chunk, as all but a short write or a rotation's split do.
            const bool rest_of_chunk = source == Source::records &&
                                       p + wrote == s.current.data.data() + s.current.data.size();
            const std::uint64_t lines = rest_of_chunk ? s.current.records : count_lines(p, p + wrote);
            if (source == Source::records) s.current.records -= lines;
            const char* nl =
                std::find(std::make_reverse_iterator(p + wrote), std::make_reverse_iterator(p), '\n').base();
            if (nl != p) g.line_end = g.size + static_cast<std::uint64_t>(nl - p);
            g.size += wrote;
            g.records += lines;
            g.dirty = true;
            if (source == Source::records) {
                s.counters.records_written.fetch_add(lines, std::memory_order_relaxed);
                s.done += wrote;
                release(wrote);
            }
            // A rescue copies bytes already counted once.
            if (source != Source::copy) s.counters.bytes_written.fetch_add(wrote, std::memory_order_relaxed);
            p += wrote;
            n -= wrote;
        }
        on_success();
        return true;
    }

    // The flock lives on the lock file's inode: when that file is gone (the directory removed
    // and recreated, or the file deleted) another daemon could lock a new one. Take the new one.
    void keep_directory_locked() {
        struct stat sb;
        if (lock_fd < 0 || ::fstat(lock_fd, &sb) != 0 || sb.st_nlink > 0) return;
        const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) return;  // the segment's create fails too, and is retried
        const DirectoryLock lock = try_lock_directory(dir, dfd);
        ::close(dfd);
        if (lock.fd >= 0) {
            ::close(lock_fd);
            lock_fd = lock.fd;
            log::warn("output directory lock file was removed; locked again", {{"path", dir + "/" + lock_name}});
            return;
        }
        lock_log.write(log::Level::error, "sink.lock",
                       "output directory lock lost: its file was removed and cannot be locked again; another "
                       "process may write and apply retention here",
                       {{"path", dir + "/" + lock_name}, {"holder_pid", lock.holder}, {"error", error_text(lock.error)}});
    }

    // Opens the next segment of s when none is open.
    bool ensure_segment(Stream& s) {
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
    bool rescue_if_orphaned(Stream& s) {
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
    bool close_segment(Stream& s, bool final = false) {
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

    // Writes `current` and further chunks; `all` also takes the chunk still being filled.
    // Returns false when the disk refused (the rest stays for the retry).
    bool write_stream(Stream& s, bool all) {
        for (;;) {
            if (s.done == s.current.data.size()) {
                std::lock_guard lk(m);
                if (s.queue.empty()) return true;
                if (!all && s.queue.size() == 1 && s.queue.front().data.size() < opt.handoff_bytes) return true;
                give_spare(std::move(s.current.data));
                s.current = std::move(s.queue.front());
                s.queue.pop_front();
                s.done = 0;
            }
            if (!write_current(s)) return false;
        }
    }

    bool write_current(Stream& s) {
        while (s.done < s.current.data.size()) {
            if (!ensure_segment(s)) return false;
            Segment& g = s.seg;
            const char* p = s.current.data.data() + s.done;
            std::size_t n = s.current.data.size() - s.done;
            const std::uint64_t limit = opt.rotate_bytes;
            if (limit > 0) {
                const std::uint64_t room = g.size >= limit ? 0 : limit - g.size;
                if (n > room) {
                    const char* last_fit = std::find(std::make_reverse_iterator(p + room),
                                                     std::make_reverse_iterator(p), '\n').base();
                    if (last_fit != p) {
                        n = static_cast<std::size_t>(last_fit - p);
                    } else if (g.size == g.line_end && g.line_end > g.header_bytes) {
                        if (!close_segment(s)) return false;  // the next line does not fit: rotate first
                        continue;
                    } else {
                        // A line longer than the limit, or the rest of a torn one: it goes whole.
                        n = static_cast<std::size_t>(std::find(p, p + n, '\n') - p) + 1;
                    }
                }
            }
            if (!write_bytes(s, p, n, Source::records)) return false;
            if (limit > 0 && g.size >= limit && g.size == g.line_end && !close_segment(s)) return false;
        }
        return true;
    }

    void sync_all(Clock::time_point requested_at) {
        bool ok = true;
        for (Stream& s : streams) {
            Segment& g = s.seg;
            if (g.fd < 0) continue;
            if (!rescue_if_orphaned(s)) ok = false;
            if (!g.dirty) continue;
            if (file_ops().fdatasync(g.fd) != 0) {
                on_failure("fdatasync", g.part_path, errno);
                g.sync_failed = true;  // a retry that succeeds proves nothing about these pages
                ok = false;
            } else {
                g.dirty = false;
            }
        }
        if (!ok) return;
        const auto us = static_cast<std::uint64_t>(micros(Clock::now() - requested_at));
        flushes.fetch_add(1, std::memory_order_relaxed);
        flush_latency_last_us.store(us, std::memory_order_relaxed);
        if (us > flush_latency_max_us.load(std::memory_order_relaxed))
            flush_latency_max_us.store(us, std::memory_order_relaxed);
    }

    void rotate_by_age(Clock::time_point now) {
        if (opt.rotate_age.count() <= 0) return;
        for (Stream& s : streams) {
            Segment& g = s.seg;
            if (g.fd < 0 || now - g.opened_at < opt.rotate_age) continue;
            // A segment whose sync failed is closed even during a fault: it stays .part anyway,
            // and rotating it keeps what waits for the next start's repair to one age.
            if ((fault && !g.sync_failed) || g.size != g.line_end || g.line_end <= g.header_bytes) {
                g.opened_at = now;  // cannot close it cleanly now; try again one age later
                continue;
            }
            close_segment(s);
        }
    }

    Clock::time_point next_timer(Clock::time_point now) const {
        auto next = now + 1h;
        if (opt.rotate_age.count() > 0)
            for (const Stream& s : streams)
                if (s.seg.fd >= 0) next = std::min(next, s.seg.opened_at + opt.rotate_age);
        if (fault) next = std::min(next, retry_at);
        return next;
    }

    // The last round: whatever could not be written is lost now; count it.
    void finalize() {
        for (Stream& s : streams) {
            std::uint64_t lost = count_lines(s.current.data.data() + s.done,
                                             s.current.data.data() + s.current.data.size());
            {
                std::lock_guard lk(m);
                for (Chunk& c : s.queue) {
                    lost += c.records;
                    held -= c.data.size();
                }
                s.queue.clear();
                held -= s.current.data.size() - s.done;
            }
            s.done = s.current.data.size();
            if (lost > 0) {
                s.counters.records_dropped.fetch_add(lost, std::memory_order_relaxed);
                log::error("output records lost at close: the disk refused them",
                           {{"stream", kind_name[s.kind]}, {"records", lost}});
            }
            close_segment(s, true);
        }
        // One directory fsync makes every rename above durable; the drain's budget is short.
        if (int e = sync_dir(dir)) on_failure("fsync directory", dir, e);
    }

    // A reload's rotation and retention, on the writer thread. A segment already past a
    // lowered size limit closes now rather than at its next write; retention prunes at once.
    void adopt(const SinkOptions& o) {
        opt.rotate_bytes = o.rotate_bytes;
        opt.rotate_age = o.rotate_age;
        opt.retain_files = o.retain_files;
        opt.retain_bytes = o.retain_bytes;
        for (Stream& s : streams) {
            const Segment& g = s.seg;
            if (g.fd >= 0 && opt.rotate_bytes > 0 && g.size >= opt.rotate_bytes && !fault &&
                g.size == g.line_end && g.line_end > g.header_bytes)
                close_segment(s);
        }
        for (int k = 0; k < kinds; ++k) apply_retention(static_cast<Kind>(k));
    }

    // ---- retention and compression ------------------------------------------------------

    void apply_retention(Kind kind) {
        if (opt.retain_files == 0 && opt.retain_bytes == 0) return;
        std::lock_guard lk(fs_mutex);
        std::vector<std::pair<std::string, std::uint64_t>> files;
        std::error_code ec;
        for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
            const std::string name = it->path().filename().string();
            if (!is_finished_segment(name, kind)) continue;
            // Only our own files: a symlink named like a segment is not one.
            std::error_code type_ec;
            if (!it->is_regular_file(type_ec) || it->is_symlink(type_ec)) continue;
            std::error_code size_ec;
            const auto size = it->file_size(size_ec);
            if (!size_ec) files.emplace_back(name, size);
        }
        if (ec) {
            log::warn("retention: cannot list the output directory", {{"dir", dir}, {"error", ec.message()}});
            return;
        }
        std::sort(files.begin(), files.end());  // names sort by time
        std::uint64_t count = files.size(), bytes = 0;
        for (auto& f : files) bytes += f.second;
        bool removed = false;
        for (auto& [name, size] : files) {
            if (!((opt.retain_files && count > opt.retain_files) || (opt.retain_bytes && bytes > opt.retain_bytes)))
                break;
            const std::string path = dir + "/" + name;
            if (::unlink(path.c_str()) != 0) {
                log::warn("retention: cannot remove a segment", {{"path", path}, {"error", error_text(errno)}});
                continue;
            }
            --count;
            bytes -= size;
            removed = true;
            streams[kind].counters.segments_deleted.fetch_add(1, std::memory_order_relaxed);
            log::info("output segment removed by retention", {{"path", path}, {"bytes", size}});
        }
        if (removed) (void)sync_dir(dir);
    }

    void enqueue_compression(const std::string& path) {
        if (codec.load() == Compression::none) return;
        {
            std::lock_guard lk(cm);
            cqueue.push_back(path);
        }
        ccv.notify_one();
    }

    // The temp file is new (O_EXCL, which never follows a symlink): a name planted in the
    // directory makes the compression fail, never writes through it.
    int create_compression_temp(const std::string& tmp) {
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

    void compress_one(const std::string& src) {
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
};

void writer_main(std::shared_ptr<State> sp) {
    State& st = *sp;
    std::unique_lock lk(st.m);
    for (;;) {
        st.wake.wait_until(lk, st.next_timer(Clock::now()), [&] {
            return st.flush_requested || st.stop || st.reconfigured || (!st.fault && st.sealed_available());
        });
        const std::optional<SinkOptions> reconfigured = std::exchange(st.reconfigured, std::nullopt);
        // Producers drop once stop is set, so this round is the last when stop is seen.
        const bool last = st.stop;
        const bool flushing = st.flush_requested || last;
        const auto requested_at = st.flush_requested ? st.flush_requested_at : Clock::now();
        st.flush_requested = false;
        lk.unlock();
        if (reconfigured) st.adopt(*reconfigured);
        // While the disk fails, only a flush or the retry timer tries again.
        const auto now = Clock::now();
        if (!st.fault || flushing || now >= st.retry_at) {
            for (Stream& s : st.streams)
                if (!st.write_stream(s, flushing)) break;
        }
        // The last round's fdatasyncs happen as finalize() closes each segment.
        if (flushing && !last) st.sync_all(requested_at);
        st.rotate_by_age(Clock::now());
        // A fault with nothing left to retry must not leave the timer in the past (a spin).
        if (st.fault && Clock::now() >= st.retry_at) st.retry_at = Clock::now() + st.opt.retry_every;
        if (last) {
            st.finalize();
            lk.lock();
            st.finished = true;
            st.finished_cv.notify_all();
            return;
        }
        lk.lock();
    }
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

}  // namespace

namespace {

// Crash repair of <dir>/<name>, relative to the directory's descriptor and never through a
// symlink: a name planted in the directory must not make us truncate or rename its target.
RepairResult repair_at(int dfd, const std::string& dir, const std::string& name) {
    RepairResult r;
    const std::string final_name = name.substr(0, name.size() - (ends_with(name, ".part") ? 5 : 0));
    r.final_path = dir + "/" + final_name;
    const auto refuse = [&](int err) {
        r.outcome = RepairResult::refused;
        r.error = err;
        return r;
    };
    struct stat lsb;
    if (::fstatat(dfd, name.c_str(), &lsb, AT_SYMLINK_NOFOLLOW) != 0) {
        r.error = errno;
        return r;
    }
    if (!S_ISREG(lsb.st_mode)) return refuse(S_ISLNK(lsb.st_mode) ? ELOOP : EINVAL);
    // O_NONBLOCK: something swapped in since the check (a FIFO) must not block the open.
    const int fd = ::openat(dfd, name.c_str(), O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ELOOP) return refuse(ELOOP);
        r.error = errno;
        return r;
    }
    const auto fail = [&](int err) {
        r.outcome = RepairResult::failed;
        r.error = err;
        ::close(fd);
        return r;
    };
    struct stat sb;
    if (::fstat(fd, &sb) != 0) return fail(errno);
    if (!S_ISREG(sb.st_mode)) {
        ::close(fd);
        return refuse(EINVAL);
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK) return fail(errno);
        ::close(fd);
        r.outcome = RepairResult::skipped_live;
        return r;
    }
    r.original_bytes = static_cast<std::uint64_t>(sb.st_size);

    // Keep up to the last '\n' before the end, and before the first NUL in the tail: a power
    // loss can leave the tail's blocks zero-filled. Earlier data was fdatasync'd by a flush.
    constexpr std::uint64_t window = 1 << 20;
    std::vector<char> buf(window);
    std::uint64_t end = r.original_bytes;
    std::uint64_t keep = 0;
    bool tail = true;
    while (end > 0) {
        const std::uint64_t start = end > window ? end - window : 0;
        std::size_t got = 0;
        while (got < end - start) {
            const ssize_t n = ::pread(fd, buf.data() + got, end - start - got, static_cast<off_t>(start + got));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return fail(n < 0 ? errno : EIO);
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
            break;
        }
        end = start;
    }
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
    // Never replace a finished file (nor a symlink in its place).
    if (::renameat2(dfd, name.c_str(), dfd, final_name.c_str(), RENAME_NOREPLACE) != 0) {
        if (errno != EINVAL && errno != ENOSYS) {
            r.error = errno;
            return r;
        }
        // A filesystem without RENAME_NOREPLACE: check, then rename.
        struct stat fb;
        if (::fstatat(dfd, final_name.c_str(), &fb, AT_SYMLINK_NOFOLLOW) == 0) {
            r.error = EEXIST;
            return r;
        }
        if (::renameat(dfd, name.c_str(), dfd, final_name.c_str()) != 0) {
            r.error = errno;
            return r;
        }
    }
    if (::fsync(dfd) != 0) {
        r.error = errno;
        return r;
    }
    r.outcome = RepairResult::finalized;
    return r;
}

// One process per directory: two daemons would delete each other's segments by retention.
// The lock file is never removed (an unlink would let two processes lock two different files).
int lock_directory(const std::string& dir, int dfd) {
    const DirectoryLock lock = try_lock_directory(dir, dfd);
    const std::string path = dir + "/" + lock_name;
    if (lock.fd >= 0) return lock.fd;
    if (lock.error != EWOULDBLOCK) {
        throw std::system_error(lock.error, std::generic_category(),
                                (lock.opened ? "cannot lock " : "cannot open lock file ") + path);
    }
    throw std::system_error(lock.error, std::generic_category(),
                            "output directory " + dir + " is in use by another mdagg process (pid " + lock.holder +
                                ", holding " + path + ")");
}

}  // namespace

RepairResult repair_segment(const std::string& part_path) {
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

struct FileSink::Impl {
    Impl(const Universe& u, const SinkOptions& options) : formatter(u) {
        st->opt = options;
        st->codec = options.compression;
        if (st->opt.handoff_bytes == 0) st->opt.handoff_bytes = 1;
        st->dir = options.dir.empty() ? "." : options.dir;
        const RecordFormat formats[kinds] = {options.quotes_format, options.bars_format, RecordFormat::jsonl};
        for (int k = 0; k < kinds; ++k) {
            Stream& s = st->streams[k];
            s.kind = static_cast<Kind>(k);
            s.format = formats[k];
            s.ext = s.format == RecordFormat::csv ? ".csv" : ".jsonl";
            if (s.format == RecordFormat::csv) s.header = k == quotes ? quote_csv_header : bar_csv_header;
        }
    }

    RecordFormatter formatter;  // the strand's, like the Universe it reads
    std::shared_ptr<State> st = std::make_shared<State>();
    std::thread writer;
    std::thread compressor;

    void log_drop(const char* reason) {
        if (auto suppressed = st->drop_log.admit(log::Level::warn, "sink.drop", "output records dropped")) {
            nlohmann::json fields{{"reason", reason}, {"records_dropped_total", st->total_dropped()}};
            if (*suppressed > 0) fields["suppressed"] = *suppressed;
            log::warn("output records dropped", fields);
        }
    }

    void append(Kind kind, const std::string& line) {
        State& s = *st;
        Stream& stream = s.streams[kind];
        bool wake_writer = false;
        const char* dropped = nullptr;  // why the new record was refused
        bool chunk_dropped = false;
        {
            std::unique_lock lk(s.m);
            const std::size_t max = s.opt.max_buffer_bytes;
            if (s.stop) {
                dropped = "closed";
            } else if (line.size() > max) {
                dropped = "record larger than the buffer";
            }
            while (!dropped && s.held + line.size() > max) {
                if (s.opt.overflow == OverflowPolicy::drop_oldest) {
                    if (s.drop_oldest_chunk()) {
                        chunk_dropped = true;
                    } else {
                        dropped = "queue full";  // all of it is the writer's: nothing older to drop
                    }
                } else if (s.opt.overflow == OverflowPolicy::drop_newest || s.shedding) {
                    dropped = "queue full";
                } else {
                    s.overflow_waits.fetch_add(1, std::memory_order_relaxed);
                    ++s.space_waiters;
                    const bool room = s.space.wait_for(
                        lk, s.opt.overflow_wait, [&] { return s.stop || s.held + line.size() <= max; });
                    --s.space_waiters;
                    if (s.stop) {
                        dropped = "closed";
                    } else if (!room) {
                        s.shedding = true;
                        dropped = "queue full: waited overflow_wait";
                    }
                }
            }
            if (!dropped) {
                auto& q = stream.queue;
                if (q.empty() || q.back().data.size() >= s.opt.handoff_bytes)
                    q.push_back(Chunk{s.take_spare(), 0, s.next_chunk_seq++});
                Chunk& c = q.back();
                const std::size_t before = c.data.size();
                c.data += line;
                ++c.records;
                s.held += line.size();
                // A full chunk goes to the writer before the flush timer, which bounds the
                // memory held between flushes.
                wake_writer = s.opened && before < s.opt.handoff_bytes && c.data.size() >= s.opt.handoff_bytes;
            }
        }
        if (dropped) {
            stream.counters.records_dropped.fetch_add(1, std::memory_order_relaxed);
            log_drop(dropped);
        } else if (chunk_dropped) {
            log_drop("queue full: oldest records discarded");
        }
        if (wake_writer) s.wake.notify_one();
    }

    // Waits for the writer to finalize; no deadline means as long as it takes.
    bool finish(const std::chrono::steady_clock::time_point* deadline) {
        {
            std::lock_guard lk(st->m);
            st->stop = true;  // also refuses records arriving after close
            st->space.notify_all();
            // Never started, already joined, or abandoned at an earlier deadline: waiting again
            // (from the destructor, say) would bring back the hang the deadline was for.
            if (!writer.joinable()) {
                stop_compressor(deadline);
                return !st->opened || st->finished;
            }
        }
        st->wake.notify_one();
        bool done = true;
        {
            std::unique_lock lk(st->m);
            const auto is_finished = [&] { return st->finished; };
            if (deadline) {
                done = st->finished_cv.wait_until(lk, *deadline, is_finished);
            } else {
                st->finished_cv.wait(lk, is_finished);
            }
        }
        if (done) {
            writer.join();
        } else {
            writer.detach();
        }
        stop_compressor(deadline);
        return done;
    }

    void stop_compressor(const std::chrono::steady_clock::time_point* deadline) {
        if (!compressor.joinable()) return;
        {
            std::lock_guard lk(st->cm);
            st->cstop = true;
        }
        st->ccv.notify_all();
        bool done = true;
        {
            std::unique_lock lk(st->cm);
            const auto is_done = [&] { return st->compressor_done; };
            if (deadline) {
                done = st->ccv.wait_until(lk, std::max(*deadline, Clock::now() + 100ms), is_done);
            } else {
                st->ccv.wait(lk, is_done);
            }
        }
        if (done) {
            compressor.join();
        } else {
            compressor.detach();
        }
    }
};

FileSink::FileSink(const Universe& universe, SinkOptions options)
    : impl_(std::make_unique<Impl>(universe, std::move(options))) {}

FileSink::~FileSink() {
    // Without close() the data still has to reach its final name, however long that takes.
    impl_->finish(nullptr);
}

void FileSink::open() {
    State& st = *impl_->st;
    {
        std::lock_guard lk(st.m);
        if (st.opened || st.stop) throw std::logic_error("FileSink::open: already opened or closed");
    }
    std::error_code ec;
    fs::create_directories(st.dir, ec);
    if (ec) throw std::system_error(ec, "cannot create output directory " + st.dir);
    // Everything below opens names relative to this descriptor, never through a symlink.
    const int dfd = ::open(st.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) throw std::system_error(errno, std::generic_category(), "cannot open output directory " + st.dir);
    const std::unique_ptr<const int, void (*)(const int*)> dfd_guard(&dfd, [](const int* fd) { ::close(*fd); });
    if (st.lock_fd < 0) st.lock_fd = lock_directory(st.dir, dfd);

    // Crash repair, before any new segment exists. Dot-files are state, never segments.
    std::vector<std::string> parts;
    for (fs::directory_iterator it(st.dir, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (!name.starts_with('.') && is_part_segment(name)) parts.push_back(name);
    }
    if (ec) throw std::system_error(ec, "cannot list output directory " + st.dir);
    std::sort(parts.begin(), parts.end());
    const auto count_refusal = [&](const std::string& path, int err) {
        st.repair_errors.fetch_add(1, std::memory_order_relaxed);
        log::error("refused to repair a file named like an output segment: not a regular file; left alone",
                   {{"path", path}, {"error", error_text(err)}});
    };
    for (const std::string& name : parts) {
        const std::string part = st.dir + "/" + name;
        if (is_compression_temp(name)) {
            // An interrupted compression; its source is still there and is compressed again.
            struct stat sb;
            if (::fstatat(dfd, name.c_str(), &sb, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(sb.st_mode)) {
                count_refusal(part, S_ISLNK(sb.st_mode) ? ELOOP : EINVAL);
            } else if (::unlinkat(dfd, name.c_str(), 0) == 0) {
                log::info("removed an unfinished compression", {{"path", part}});
            }
            continue;
        }
        const RepairResult r = repair_at(dfd, st.dir, name);
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
                count_refusal(part, r.error);
                break;
            case RepairResult::failed:
                st.repair_errors.fetch_add(1, std::memory_order_relaxed);
                log::error("cannot repair output segment", {{"path", part}, {"error", error_text(r.error)}});
                break;
        }
    }

    // Prove the directory takes data now, so a read-only or full disk fails start-up clearly.
    // O_EXCL never opens what is there; a leftover of that name is ours (pid reuse) or
    // planted, and unlinkat removes the name, never a symlink's target.
    const std::string probe_name = ".mdagg-probe-" + std::to_string(::getpid());
    const int probe_flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    int pfd = ::openat(dfd, probe_name.c_str(), probe_flags, 0644);
    if (pfd < 0 && errno == EEXIST && ::unlinkat(dfd, probe_name.c_str(), 0) == 0)
        pfd = ::openat(dfd, probe_name.c_str(), probe_flags, 0644);
    if (pfd < 0) throw std::system_error(errno, std::generic_category(), "cannot write to output directory " + st.dir);
    const bool wrote = ::write(pfd, "\n", 1) == 1;
    const int werr = wrote ? 0 : errno;
    ::close(pfd);
    ::unlinkat(dfd, probe_name.c_str(), 0);
    if (!wrote) throw std::system_error(werr ? werr : EIO, std::generic_category(), "cannot write to output directory " + st.dir);

    for (int k = 0; k < kinds; ++k) st.apply_retention(static_cast<Kind>(k));
    if (st.codec.load() != Compression::none) {
        std::vector<std::string> pending;
        for (fs::directory_iterator it(st.dir, ec), end; !ec && it != end; it.increment(ec)) {
            const std::string name = it->path().filename().string();
            std::error_code type_ec;
            if ((ends_with(name, ".jsonl") || ends_with(name, ".csv")) &&
                (is_finished_segment(name, quotes) || is_finished_segment(name, bars)) &&
                it->symlink_status(type_ec).type() == fs::file_type::regular)
                pending.push_back(st.dir + "/" + name);
        }
        std::sort(pending.begin(), pending.end());
        for (auto& p : pending) st.enqueue_compression(p);
        impl_->compressor = std::thread(compressor_main, impl_->st);
    }
    try {
        impl_->writer = std::thread(writer_main, impl_->st);
    } catch (...) {
        impl_->stop_compressor(nullptr);
        throw;
    }
    bool wake = false;
    {
        std::lock_guard lk(st.m);
        st.opened = true;
        wake = st.sealed_available();
    }
    if (wake) st.wake.notify_one();
}

void FileSink::on_quote(const Quote& quote) {
    // Formatting happens outside the lock; the scratch keeps its capacity, so no allocation.
    thread_local std::string line;
    line.clear();
    if (impl_->st->streams[quotes].format == RecordFormat::csv) {
        impl_->formatter.quote_csv(line, quote);
    } else {
        impl_->formatter.quote_json(line, quote);
    }
    impl_->append(quotes, line);
}

void FileSink::on_bar(const Bar& bar) {
    thread_local std::string line;
    line.clear();
    if (impl_->st->streams[bars].format == RecordFormat::csv) {
        impl_->formatter.bar_csv(line, bar);
    } else {
        impl_->formatter.bar_json(line, bar);
    }
    impl_->append(bars, line);
}

void FileSink::on_stale(const StaleMark& mark) {
    thread_local std::string line;
    line.clear();
    impl_->formatter.stale_json(line, mark);
    impl_->append(events, line);
}

void FileSink::flush() {
    {
        std::lock_guard lk(impl_->st->m);
        if (!impl_->st->opened || impl_->st->stop) return;
        if (!impl_->st->flush_requested) impl_->st->flush_requested_at = Clock::now();
        impl_->st->flush_requested = true;
    }
    impl_->st->wake.notify_one();
}

void FileSink::reconfigure(const SinkOptions& options) {
    State& st = *impl_->st;
    bool start_compressor = false;
    {
        std::lock_guard lk(st.m);
        if (st.stop) return;
        start_compressor = st.opened && options.compression != Compression::none && !impl_->compressor.joinable();
    }
    // Running before the writer can hand it a segment; close() (the same caller) joins it.
    if (start_compressor) impl_->compressor = std::thread(compressor_main, impl_->st);
    st.codec.store(options.compression);
    {
        std::lock_guard lk(st.m);
        st.opt.max_buffer_bytes = options.max_buffer_bytes;
        st.opt.overflow = options.overflow;
        st.opt.overflow_wait = options.overflow_wait;
        if (st.shedding && st.held <= st.opt.max_buffer_bytes / 2) st.shedding = false;
        st.reconfigured = options;
        if (st.space_waiters > 0) st.space.notify_all();  // a larger bound makes room
    }
    st.wake.notify_one();
}

bool FileSink::close(std::chrono::steady_clock::time_point deadline) {
    return impl_->finish(&deadline);
}

SinkStats FileSink::stats() const {
    State& st = *impl_->st;
    SinkStats s;
    SinkStreamStats* out[kinds] = {&s.quotes, &s.bars, &s.events};
    for (int k = 0; k < kinds; ++k) {
        const Counters& c = st.streams[k].counters;
        SinkStreamStats& o = *out[k];
        o.records_written = c.records_written.load(std::memory_order_relaxed);
        o.bytes_written = c.bytes_written.load(std::memory_order_relaxed);
        o.records_dropped = c.records_dropped.load(std::memory_order_relaxed);
        o.segments_closed = c.segments_closed.load(std::memory_order_relaxed);
        o.segments_deleted = c.segments_deleted.load(std::memory_order_relaxed);
        s.records_written += o.records_written;
        s.bytes_written += o.bytes_written;
        s.records_dropped += o.records_dropped;
        s.segments_closed += o.segments_closed;
        s.segments_deleted += o.segments_deleted;
    }
    s.write_errors = st.write_errors.load(std::memory_order_relaxed);
    s.segments_compressed = st.segments_compressed.load(std::memory_order_relaxed);
    s.compression_errors = st.compression_errors.load(std::memory_order_relaxed);
    s.files_repaired = st.files_repaired.load(std::memory_order_relaxed);
    s.repair_errors = st.repair_errors.load(std::memory_order_relaxed);
    s.segments_unsynced = st.segments_unsynced.load(std::memory_order_relaxed);
    s.overflow_waits = st.overflow_waits.load(std::memory_order_relaxed);
    s.disk_fault = st.disk_fault.load(std::memory_order_relaxed);
    s.last_error = st.last_error.load(std::memory_order_relaxed);
    s.flushes = st.flushes.load(std::memory_order_relaxed);
    s.flush_latency_last_us = st.flush_latency_last_us.load(std::memory_order_relaxed);
    s.flush_latency_max_us = st.flush_latency_max_us.load(std::memory_order_relaxed);
    {
        std::lock_guard lk(st.m);
        s.queued_bytes = st.held;
    }
    return s;
}

}  // namespace mdagg

// Private to the sink module: the FileSink's shared state and the pieces its files share.
// The strand formats a record and appends it to a bounded queue of chunks under a mutex held
// for a memcpy (file_sink.cpp); one writer thread owns the segments and does every syscall
// (writer.cpp, segments.cpp, retention.cpp, directory_lock.cpp), and a second thread
// compresses finished segments (compressor.cpp), so the strand never waits for the disk.
// A start repairs what a crash left (crash_repair.cpp).
#pragma once

#include <mdagg/observe.hpp>
#include <mdagg/sink.hpp>

#include "detail.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace mdagg::sink_detail {

using Clock = std::chrono::steady_clock;

// events: stale/fresh marks, always JSON lines (a CSV file has one record shape).
enum Kind { quotes = 0, bars = 1, events = 2, kinds = 3 };
inline constexpr const char* kind_name[kinds] = {"quotes", "bars", "events"};

inline std::uint64_t count_lines(const char* first, const char* last) {
    return static_cast<std::uint64_t>(std::count(first, last, '\n'));
}

inline std::string error_text(int err) { return std::generic_category().message(err); }

inline std::int64_t micros(Clock::duration d) {
    return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

// Directory entries are durable only once the directory itself is synced.
inline int sync_dir(const std::string& dir) {
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return errno;
    const int rc = ::fsync(dfd) == 0 ? 0 : errno;
    ::close(dfd);
    return rc;
}

inline bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// ---- segment names (segments.cpp) ---------------------------------------------------------

// A finished segment of `kind` (any format, compressed or not), as retention sees it.
bool is_finished_segment(std::string_view name, Kind kind);
// A .part segment left by this program: <quotes|bars|events>-...<.jsonl|.csv>[.gz|.zst].part
bool is_part_segment(std::string_view name);
bool is_compression_temp(std::string_view name);

// ---- the queue and the segments ----------------------------------------------------------

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

// ---- the directory lock (directory_lock.cpp) ---------------------------------------------

inline constexpr const char* lock_name = ".mdagg.lock";

// An exclusive flock on <dir>/.mdagg.lock (opened relative to dfd, never through a symlink),
// with our pid written into it; or why not, and the holder's pid when another process has it.
struct DirectoryLock {
    int fd = -1;
    int error = 0;
    bool opened = false;  // the error is flock's, not open's
    std::string holder = "unknown";
};

DirectoryLock try_lock_directory(const std::string& dir, int dfd);
// One process per directory: two daemons would delete each other's segments by retention.
// Returns the lock file's descriptor; throws std::system_error naming the holder.
int lock_directory(const std::string& dir, int dfd);

// ---- the state the strand, the writer and the compressor share ---------------------------


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

    // ---- writer side (writer.cpp) --------------------------------------------------------

    void on_failure(const char* op, const std::string& path, int err);
    void on_success();
    std::size_t held_bytes();
    void release(std::size_t bytes);

    enum class Source { records, header, copy };  // what is written: only records count as such

    // Writes [p, p+n) at the segment's end; false (after on_failure) when the disk refused.
    bool write_bytes(Stream& s, const char* p, std::size_t n, Source source);
    // Writes `current` and further chunks; `all` also takes the chunk still being filled.
    // Returns false when the disk refused (the rest stays for the retry).
    bool write_stream(Stream& s, bool all);
    bool write_current(Stream& s);
    void sync_all(Clock::time_point requested_at);
    void rotate_by_age(Clock::time_point now);
    Clock::time_point next_timer(Clock::time_point now) const;
    // The last round: whatever could not be written is lost now; count it.
    void finalize();
    // A reload's rotation and retention, on the writer thread.
    void adopt(const SinkOptions& o);

    // ---- segments (segments.cpp, directory_lock.cpp) -------------------------------------

    // Opens the next segment of s when none is open.
    bool ensure_segment(Stream& s);
    // Copies the records of an open segment removed from under us into a new one.
    bool rescue_if_orphaned(Stream& s);
    // fdatasync, rename to the final name, fsync the directory; then retention and compression.
    bool close_segment(Stream& s, bool final = false);
    // Locks the lock file again when it was removed.
    void keep_directory_locked();

    // ---- retention and compression (retention.cpp, compressor.cpp) -----------------------

    void apply_retention(Kind kind);
    void enqueue_compression(const std::string& path);
    int create_compression_temp(const std::string& tmp);
    void compress_one(const std::string& src);
};

// The threads' bodies; each holds the State alive.
void writer_main(std::shared_ptr<State> sp);
void compressor_main(std::shared_ptr<State> sp);

// ---- start-up (crash_repair.cpp) ---------------------------------------------------------

// Repairs every .part segment a crash left in st.dir (open as dfd) and removes unfinished
// compressions, counting and logging each.
void repair_leftovers(State& st, int dfd);

}  // namespace mdagg::sink_detail

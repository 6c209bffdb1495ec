// Output files. Records are formatted on the caller's thread (the aggregator strand) into a
// bounded queue of chunks; a writer thread owns the files and does every syscall, so no poll
// ever waits for the disk. Files are segments: rotated by size and age, written under a .part
// name and renamed when closed, repaired at start-up after a crash, pruned by retention and
// optionally compressed by a second thread.
#pragma once

#include <mdagg/quote.hpp>
#include <mdagg/records.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mdagg {

// One line each, '\n'-terminated, appended to `out`. Decimals are written as JSON strings in
// their exact text; times as RFC 3339 UTC with nanoseconds.
void append_quote_json(std::string& out, const Quote& q, const Universe& universe);
void append_bar_json(std::string& out, const Bar& bar, const Universe& universe);
void append_stale_json(std::string& out, const StaleMark& mark, const Universe& universe);

// RFC 4180 CSV, one record per line (never a quoted line break), with the header rows below.
// Decimals keep their exact text, times are RFC 3339; a field the record lacks is empty.
void append_quote_csv(std::string& out, const Quote& q, const Universe& universe);
void append_bar_csv(std::string& out, const Bar& bar, const Universe& universe);
extern const std::string_view quote_csv_header;  // "source,symbol,...\n"
extern const std::string_view bar_csv_header;

// The same lines as the functions above, for one Universe, with each name escaped once rather
// than on every record. Names a reload appends are escaped when first seen; when a reload
// releases or reuses an id (Universe::revision moves) the cache starts over, so a reused id
// never prints its previous name and a released one's text is freed. An id outside the
// Universe prints as above. Not thread-safe: like the Universe it reads, it belongs to the
// aggregator's strand.
class RecordFormatter {
public:
    explicit RecordFormatter(const Universe& universe) : universe_(universe) {}

    void quote_json(std::string& out, const Quote& q);
    void bar_json(std::string& out, const Bar& bar);
    void stale_json(std::string& out, const StaleMark& mark);
    void quote_csv(std::string& out, const Quote& q);
    void bar_csv(std::string& out, const Bar& bar);

private:
    void refresh() {
        if (revision_ == universe_.revision) return;
        for (auto* cache : {&json_sources_, &json_symbols_, &csv_sources_, &csv_symbols_}) cache->clear();
        revision_ = universe_.revision;
    }

    const Universe& universe_;
    std::uint64_t revision_ = 0;
    std::vector<std::string> json_sources_, json_symbols_, csv_sources_, csv_symbols_;
};

struct SinkOptions {
    std::string dir;
    // Bound of everything not yet written: queued chunks plus the writer's unwritten rest.
    std::size_t max_buffer_bytes = 64 * 1024 * 1024;
    // Records are queued in chunks of about this size; a full chunk wakes the writer before
    // the next flush(), and drop_oldest discards one chunk at a time.
    std::size_t handoff_bytes = 256 * 1024;
    OverflowPolicy overflow = OverflowPolicy::drop_oldest;
    // block: the longest a record waits for room. After one such wait times out the sink
    // sheds without waiting until the writer has freed half the bound again, so a dead disk
    // costs the caller one wait per episode, not one per record.
    std::chrono::nanoseconds overflow_wait = std::chrono::milliseconds(20);
    RecordFormat quotes_format = RecordFormat::jsonl;
    RecordFormat bars_format = RecordFormat::jsonl;
    std::uint64_t rotate_bytes = 256 * 1024 * 1024;  // 0: no size rotation
    std::chrono::nanoseconds rotate_age = std::chrono::hours(1);  // 0: no age rotation
    std::uint64_t retain_files = 0;  // per stream, finished segments kept; 0: unlimited
    std::uint64_t retain_bytes = 0;  // per stream, total bytes of finished segments; 0: unlimited
    Compression compression = Compression::none;
    // While the disk fails, the writer retries this often (and on every flush()).
    std::chrono::nanoseconds retry_every = std::chrono::milliseconds(500);
};

struct SinkStreamStats {
    std::uint64_t records_written = 0;  // complete lines handed to write(2) successfully
    std::uint64_t bytes_written = 0;    // including CSV header rows
    std::uint64_t records_dropped = 0;  // by the overflow policy, after close, or cut at close
    std::uint64_t segments_closed = 0;  // renamed to their final name
    std::uint64_t segments_deleted = 0; // by retention
};

struct SinkStats {
    // Totals over the streams (quotes, bars, events); same meaning as in SinkStreamStats.
    std::uint64_t records_written = 0;
    std::uint64_t bytes_written = 0;
    std::uint64_t records_dropped = 0;
    std::uint64_t write_errors = 0;  // failed syscalls on the output (write, fsync, open, rename)
    std::uint64_t segments_closed = 0;
    std::uint64_t segments_deleted = 0;
    std::uint64_t segments_compressed = 0;
    std::uint64_t compression_errors = 0;
    std::uint64_t files_repaired = 0;  // .part files of a crashed run finalized at open()
    // .part files open() could not repair or refused to touch (a symlink or other non-regular
    // file named like a segment or a compression temp): left where they are.
    std::uint64_t repair_errors = 0;
    // Segments kept as .part at close because an fdatasync or ftruncate of theirs failed: the
    // kernel may have dropped their dirty pages, so they are never published as finished.
    std::uint64_t segments_unsynced = 0;
    std::uint64_t overflow_waits = 0;  // block policy: records that had to wait for room
    std::uint64_t queued_bytes = 0;    // not yet written
    bool disk_fault = false;           // the latest output syscall failed
    int last_error = 0;                // errno of the latest failure, 0 if none yet
    std::uint64_t flushes = 0;         // flush() rounds completed (written and fdatasync'd)
    std::uint64_t flush_latency_last_us = 0;  // flush() call to data synced
    std::uint64_t flush_latency_max_us = 0;
    SinkStreamStats quotes, bars, events;
};

// Segments: <dir>/<stream>-<UTC open time, ms>-<pid>-<seq>.<jsonl|csv>, with stream quotes,
// bars or events (stale marks); names sort by time and never repeat across restarts. A segment is created when its
// stream first has data, named *.part while open, and on close fdatasync'd, renamed and the
// directory fsync'd. flush() writes and fdatasyncs everything handed over so far. A segment
// any fdatasync or ftruncate of which failed stays *.part for the next start's repair (on
// Linux a later fdatasync can succeed after the failed one dropped its pages). Names starting
// with a dot are state files (<dir>/.mdagg.lock is this sink's) and never taken for segments.
class FileSink final : public RecordSink {
public:
    FileSink(const Universe& universe, SinkOptions options);
    ~FileSink() override;

    // Creates the directory if needed, takes an exclusive flock on <dir>/.mdagg.lock (held
    // until the sink is destroyed; it holds our pid), repairs the .part segments a crashed run
    // left behind (one log line each), applies retention, proves the directory writable and
    // starts the writer. Throws std::system_error with a message naming the path when it
    // cannot, and naming the holder's pid when another process holds the lock.
    void open();

    // From one strand at a time (the aggregator's), which also owns the Universe: the names
    // it escapes once are kept here. Queue only, never touch the disk.
    void on_quote(const Quote& quote) override;
    void on_bar(const Bar& bar) override;
    void on_stale(const StaleMark& mark) override;  // the events stream, always JSON lines

    // Asks the writer to write and fdatasync what is queued; returns at once.
    void flush();

    // A reload's settings; the other fields of `options` (dir, formats, ...) are ignored.
    // max_buffer_bytes, overflow and overflow_wait hold from the next record; rotation and
    // retention from the writer's next round, which it starts at once (an open segment past a
    // lowered max_bytes closes then, retention prunes then); segments compressed from now on
    // use the new compression (none: they stay as they are). Same caller as close().
    void reconfigure(const SinkOptions& options);

    // Writes what is queued, fsyncs, renames and fsyncs the directory; waits until done or
    // the deadline. Returns false when the deadline passed first (the writer is abandoned).
    // Pending compressions are abandoned; the next open() compresses those segments.
    bool close(std::chrono::steady_clock::time_point deadline);

    SinkStats stats() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Finalizes one segment a crashed run left as *.part: truncates a torn last line (and
// anything after a NUL byte a power loss may leave in the tail), fdatasyncs, renames it to the
// final name and fsyncs the directory; an empty file is removed instead. Skips a file another
// live process holds locked, and refuses (never opens or follows) anything but a regular file.
// Exposed for tests.
struct RepairResult {
    enum Outcome { finalized, removed_empty, skipped_live, refused, failed } outcome = failed;
    std::string final_path;
    std::uint64_t original_bytes = 0;
    std::uint64_t kept_bytes = 0;
    int error = 0;
};
RepairResult repair_segment(const std::string& part_path);

}  // namespace mdagg

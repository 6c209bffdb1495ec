// JSON-lines output. Records are formatted into an in-memory buffer on the caller's thread
// (the aggregator strand); a writer thread owns the files, so no poll ever waits for the disk.
#pragma once

#include <mdagg/aggregator.hpp>
#include <mdagg/quote.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace mdagg {

// One line each, '\n'-terminated, appended to `out`. Decimals are written as JSON strings in
// their exact text; times as RFC 3339 UTC with nanoseconds.
void append_quote_json(std::string& out, const Quote& q, const Universe& universe);
void append_bar_json(std::string& out, const Bar& bar, const Universe& universe);
void append_stale_json(std::string& out, const StaleMark& mark, const Universe& universe);

struct SinkOptions {
    std::string dir;
    std::size_t max_buffer_bytes = 64 * 1024 * 1024;
    // Buffered bytes of one file that wake the writer before the next flush().
    std::size_t handoff_bytes = 256 * 1024;
};

struct SinkStats {
    std::uint64_t records_written = 0;  // handed to write(2) successfully
    std::uint64_t bytes_written = 0;
    std::uint64_t records_dropped = 0;  // refused because the unflushed buffer was full
    std::uint64_t write_errors = 0;
};

// Files: <dir>/quotes-<UTC start>-<pid>.jsonl and bars-...jsonl. While open they are named
// *.jsonl.part; close() fsyncs them, renames them to *.jsonl and fsyncs the directory.
class JsonlSink final : public RecordSink {
public:
    JsonlSink(const Universe& universe, SinkOptions options);
    ~JsonlSink() override;

    // Creates the directory if needed and opens the files; throws std::system_error with a
    // message naming the path when it cannot.
    void open();

    void on_quote(const Quote& quote) override;  // buffer only, never blocks on disk
    void on_bar(const Bar& bar) override;
    void on_stale(const StaleMark& mark) override;  // written to the bars file

    // Hands the buffered records to the writer thread and returns at once.
    void flush();

    // Writes what is buffered, fsyncs, renames and fsyncs the directory; waits until done or
    // the deadline. Returns false when the deadline passed first (the writer is abandoned).
    bool close(std::chrono::steady_clock::time_point deadline);

    SinkStats stats() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace mdagg

// FileSink: the strand formats a record and appends it to a bounded queue of chunks under a
// mutex held for a memcpy; the overflow policy decides what a full queue does. The writer
// thread (writer.cpp) and the compressor (compressor.cpp) do every syscall after open().
#include "file_sink.hpp"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <filesystem>
#include <stdexcept>
#include <thread>
#include <utility>

namespace mdagg {

namespace {

namespace fs = std::filesystem;
using namespace sink_detail;
using namespace std::chrono_literals;

// Prove the directory takes data now, so a read-only or full disk fails start-up clearly.
// O_EXCL never opens what is there; a leftover of that name is ours (pid reuse) or
// planted, and unlinkat removes the name, never a symlink's target.
void probe_writable(const std::string& dir, int dfd) {
    const std::string probe_name = ".mdagg-probe-" + std::to_string(::getpid());
    const int probe_flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    int pfd = ::openat(dfd, probe_name.c_str(), probe_flags, 0644);
    if (pfd < 0 && errno == EEXIST && ::unlinkat(dfd, probe_name.c_str(), 0) == 0)
        pfd = ::openat(dfd, probe_name.c_str(), probe_flags, 0644);
    if (pfd < 0) throw std::system_error(errno, std::generic_category(), "cannot write to output directory " + dir);
    const bool wrote = ::write(pfd, "\n", 1) == 1;
    const int werr = wrote ? 0 : errno;
    ::close(pfd);
    ::unlinkat(dfd, probe_name.c_str(), 0);
    if (!wrote) throw std::system_error(werr ? werr : EIO, std::generic_category(), "cannot write to output directory " + dir);
}

// Finished quote and bar segments a previous run left uncompressed, oldest first.
void enqueue_uncompressed(State& st) {
    std::error_code ec;
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
}

}  // namespace

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

    // The strand's side of the queue: room is made by the overflow policy, or the record is
    // dropped and counted.
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
    // Crash repair, before any new segment exists.
    repair_leftovers(st, dfd);
    probe_writable(st.dir, dfd);
    for (int k = 0; k < kinds; ++k) st.apply_retention(static_cast<Kind>(k));
    if (st.codec.load() != Compression::none) {
        enqueue_uncompressed(st);
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

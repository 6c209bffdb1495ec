// The writer thread: takes the queued chunks, writes them into segments, rotates, flushes,
// retries while the disk fails, and finalizes at close. Every syscall of the file sink's data
// path happens here, never on the strand.
#include "file_sink.hpp"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <iterator>
#include <utility>

#include <unistd.h>

namespace mdagg::sink_detail {

using namespace std::chrono_literals;

FileOps& file_ops() {
    static FileOps ops{::fdatasync, ::ftruncate};
    return ops;
}

void State::on_failure(const char* op, const std::string& path, int err) {
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

void State::on_success() {
    if (!fault) return;
    fault = false;
    disk_fault.store(false, std::memory_order_relaxed);
    log::info("output disk recovered: writing resumed",
              {{"fault_ms", micros(Clock::now() - fault_since) / 1000},
               {"records_dropped_during_fault", total_dropped() - dropped_at_fault}});
}

std::size_t State::held_bytes() {
    std::lock_guard lk(m);
    return held;
}

void State::release(std::size_t bytes) {
    std::lock_guard lk(m);
    held -= bytes;
    if (shedding && held <= opt.max_buffer_bytes / 2) shedding = false;
    if (space_waiters > 0) space.notify_all();
}

// Writes [p, p+n) at the segment's end; false (after on_failure) when the disk refused.
bool State::write_bytes(Stream& s, const char* p, std::size_t n, Source source) {
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

// Writes `current` and further chunks; `all` also takes the chunk still being filled.
// Returns false when the disk refused (the rest stays for the retry).
bool State::write_stream(Stream& s, bool all) {
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

bool State::write_current(Stream& s) {
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

void State::sync_all(Clock::time_point requested_at) {
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

void State::rotate_by_age(Clock::time_point now) {
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

Clock::time_point State::next_timer(Clock::time_point now) const {
    auto next = now + 1h;
    if (opt.rotate_age.count() > 0)
        for (const Stream& s : streams)
            if (s.seg.fd >= 0) next = std::min(next, s.seg.opened_at + opt.rotate_age);
    if (fault) next = std::min(next, retry_at);
    return next;
}

// The last round: whatever could not be written is lost now; count it.
void State::finalize() {
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
void State::adopt(const SinkOptions& o) {
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

}  // namespace mdagg::sink_detail

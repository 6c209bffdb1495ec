// Private to lifecycle: the event-loop watchdog's decisions, sans-io. Every io thread stamps a
// heartbeat (the main thread from the control strand, each other shard from a timer on its own
// io_context); the watchdog thread reads the stamps and asks update() which threads' loops
// have stopped turning, and gets each episode's start and end once: one log line each.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <vector>

namespace mdagg::lifecycle {

class LoopWatch {
public:
    using Clock = std::chrono::steady_clock;
    // Written by an io thread, read by the watchdog thread and the metrics.
    using Heartbeat = std::atomic<Clock::rep>;

    // Every io thread stamps its heartbeat this often...
    static constexpr auto beat_every = std::chrono::milliseconds(250);
    // ...and its loop counts as stalled when the stamp is older than this.
    static constexpr auto stall_after = std::chrono::seconds(5);
    // The stamp of a thread whose loop was stopped on purpose (shutdown): not watched.
    static constexpr Clock::time_point unwatched{};

    static void stamp(Heartbeat& h, Clock::time_point t) noexcept {
        h.store(t.time_since_epoch().count(), std::memory_order_release);
    }
    static Clock::time_point read(const Heartbeat& h) noexcept {
        return Clock::time_point(Clock::duration(h.load(std::memory_order_acquire)));
    }

    struct Change {
        std::size_t thread;
        bool stalled;  // true: an episode started; false: it ended
        // At the start: the heartbeat's age. At the end: how long the thread did not turn (from
        // its last beat before the episode to its latest one).
        Clock::duration duration;
    };

    explicit LoopWatch(std::size_t threads, Clock::duration stall_after = LoopWatch::stall_after)
        : stall_after_(stall_after), stale_beat_(threads) {}

    // beats[i]: thread i's latest stamp (as many as threads). An unwatched thread ends its
    // episode without a Change: its loop was stopped, it did not recover.
    std::vector<Change> update(std::span<const Clock::time_point> beats, Clock::time_point now);

    bool stalled(std::size_t thread) const { return stale_beat_[thread].has_value(); }
    std::size_t threads() const noexcept { return stale_beat_.size(); }

private:
    Clock::duration stall_after_;
    std::vector<std::optional<Clock::time_point>> stale_beat_;  // during an episode: its last beat before
};

}  // namespace mdagg::lifecycle

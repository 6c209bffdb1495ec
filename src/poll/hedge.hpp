#pragma once
// Hedged requests (issue 15, docs/polling.md#hedged-requests), sans-io: the budget that caps
// hedges at `max_extra` of first requests, the per-source latency window `after: pNN` reads,
// and the rules of the race between a poll's two legs. No sockets, no clocks: unit tested in
// tests/unit/poll_hedge_test.cpp. The driver is hedge_leg.cpp.
#include <mdagg/poll.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>

namespace mdagg::detail {

// `max_extra` as a token bucket shared by a source's pollers (any thread): each first request
// earns `max_extra` of a hedge, a hedge spends one. Kept in millitokens so it is one atomic.
// The bucket starts empty and holds at most `burst` hedges (the source's: a round's worth), so over any stretch of N first
// requests at most max_extra * N + burst hedges go out: a general slowdown cannot double the
// load.
class HedgeBudget {
public:
    static constexpr std::int64_t unit = 1000;  // millitokens per hedge
    explicit HedgeBudget(double max_extra, std::int64_t burst = 4) noexcept
        : earn_(std::max<std::int64_t>(1, static_cast<std::int64_t>(max_extra * unit + 0.5))),
          cap_(std::max<std::int64_t>(1, burst) * unit) {}

    // A first request went out.
    void on_first_request() noexcept {
        auto v = tokens_.load(std::memory_order_relaxed);
        while (v < cap_ && !tokens_.compare_exchange_weak(v, std::min(cap_, v + earn_), std::memory_order_relaxed)) {
        }
    }
    // Takes one hedge's worth; false: no budget (the hedge is refused).
    bool try_take() noexcept {
        auto v = tokens_.load(std::memory_order_relaxed);
        while (v >= unit)
            if (tokens_.compare_exchange_weak(v, v - unit, std::memory_order_relaxed)) return true;
        return false;
    }
    // A hedge taken but not sent (no mirror admitted it).
    void refund() noexcept { tokens_.fetch_add(unit, std::memory_order_relaxed); }
    double tokens() const noexcept { return static_cast<double>(tokens_.load(std::memory_order_relaxed)) / unit; }

private:
    std::int64_t earn_;
    std::int64_t cap_;
    std::atomic<std::int64_t> tokens_{0};
};

// `after: p90|p95|p99`: that percentile of the source's recent completed polls' latency. A
// ring of the last `size` latencies (any thread, under a mutex: one uncontended lock per
// completed poll of a hedged source); every `every` samples the percentile is recomputed
// (nth_element on a copy, off no other poller's path) and published in an atomic that each
// poll's start reads. Recent, unlike the source's cumulative histogram, so it follows a venue
// that slows down or recovers. Nothing is published before `min_samples` polls: until then
// no hedge fires on a percentile.
class LatencyWindow {
public:
    static constexpr std::size_t size = 512;
    static constexpr std::size_t every = 64;
    static constexpr std::size_t min_samples = 64;
    explicit LatencyWindow(unsigned percentile) noexcept : percentile_(percentile) {}

    void record(std::chrono::nanoseconds latency) {
        std::lock_guard lock(mutex_);
        ring_[next_++ % size] = latency.count();
        if (next_ < min_samples || next_ % every != 0) return;
        const std::size_t n = std::min<std::size_t>(next_, size);
        scratch_ = ring_;
        const std::size_t k = std::min(n - 1, (n * percentile_ + 99) / 100 - 1);
        std::nth_element(scratch_.begin(), scratch_.begin() + static_cast<std::ptrdiff_t>(k),
                         scratch_.begin() + static_cast<std::ptrdiff_t>(n));
        threshold_.store(scratch_[k], std::memory_order_relaxed);
    }
    // The current percentile; zero before min_samples.
    std::chrono::nanoseconds threshold() const noexcept {
        return std::chrono::nanoseconds(threshold_.load(std::memory_order_relaxed));
    }

private:
    unsigned percentile_;
    std::mutex mutex_;
    std::array<std::int64_t, size> ring_{};
    std::array<std::int64_t, size> scratch_{};
    std::size_t next_ = 0;
    std::atomic<std::int64_t> threshold_{0};
};

// The race of one poll's two legs, on the poller's executor. The primary leg (the poll on
// the poller's route) delivers whatever wins, so exactly one quote per tick reaches the
// aggregator; the hedge leg only fetches.
enum class HedgeRace : std::uint8_t {
    idle,         // no hedge this poll (not due yet, or refused)
    racing,       // the hedge is in flight, neither answered
    hedge_won,    // the hedge's complete 2xx answer came first: the primary delivers it
    primary_won,  // the primary answered first: the hedge is the loser
    abandoned,    // the primary's poll ended without an answer: the hedge is cancelled
};
const char* to_string(HedgeRace r) noexcept;

// What becomes of a loser: it has no byte of its answer yet, so its connection is closed (an
// HTTP/1.1 request cannot be taken back); or its answer is arriving, so it is read to the end
// within a short grace and dropped, and the connection stays.
enum class LoserFate : std::uint8_t { cancel, drain };
constexpr LoserFate loser_fate(bool answer_arriving) noexcept {
    return answer_arriving ? LoserFate::drain : LoserFate::cancel;
}

// How long a loser whose answer is arriving may read on before it is cut.
inline constexpr std::chrono::milliseconds hedge_loser_grace{20};

// A loser whose answer is arriving reads on until its grace ends. The grace bounds the leg
// whatever comes next: a reset on a reused connection retries and reconnects, re-arming the
// leg's PollFsm deadline a whole connect_timeout + timeout ahead, and the grace must survive
// that. So every arming of the leg's deadline goes through bound().
class LoserGrace {
public:
    using time_point = std::chrono::steady_clock::time_point;
    void reset() noexcept { end_ = time_point::max(); }
    // The leg lost at `now` with its answer arriving; returns the deadline to arm now.
    time_point start(time_point now, time_point deadline) noexcept {
        end_ = std::min(end_, now + hedge_loser_grace);
        return bound(deadline);
    }
    time_point bound(time_point deadline) const noexcept { return std::min(deadline, end_); }
    // Whether the grace, not the leg's own `deadline`, is what ends the leg.
    bool cuts_before(time_point deadline) const noexcept { return end_ < deadline; }

private:
    time_point end_ = time_point::max();
};

// What a finished hedge leg adds to the counters. A leg with no request out (cancelled while
// it connected or waited its turn) was not sent, so it is no loser either; a racing leg that a
// drain or an operator cut (`cut`) did not fail on its own: it is a loser cancelled. A racing
// leg that ended on its own before its request went out (connect refused or timed out, no
// address yet, the breaker opened while it queued) is `unsent`, not a sent hedge that failed:
// so sent = failed + losers holds (a won race's loser is the primary, counted by the primary).
enum class LegTally : std::uint8_t { none, failed, unsent, loser_cancelled, loser_discarded };
constexpr LegTally tally_leg(HedgeRace r, bool written, bool cut, bool completed) noexcept {
    switch (r) {
        case HedgeRace::racing:
            if (!cut) return written ? LegTally::failed : LegTally::unsent;
            return written ? LegTally::loser_cancelled : LegTally::none;
        case HedgeRace::primary_won:
        case HedgeRace::abandoned:
            if (!written) return LegTally::none;
            return completed ? LegTally::loser_discarded : LegTally::loser_cancelled;
        case HedgeRace::idle:
        case HedgeRace::hedge_won: break;  // a win is counted when it happens
    }
    return LegTally::none;
}

// What a finished hedge leg tells its host's breaker (HostGuard::report): the leg's own
// verdict, except for a loser its grace cut (`grace_cut`: the race was over, its answer was
// arriving, and the grace ended before the leg's own deadline). That cut was on purpose and
// says nothing of the host's health, so it is no news, not a timeout.
constexpr HostVerdict hedge_verdict(HedgeRace r, HostVerdict own, bool expired, bool grace_cut) noexcept {
    const bool lost = r == HedgeRace::primary_won || r == HedgeRace::abandoned;
    return lost && expired && grace_cut ? HostVerdict::neutral : own;
}

// The primary has a complete answer (status aside). True: it delivers its own; false: the
// hedge won first and the primary's answer is the loser's, read and dropped.
constexpr bool primary_delivers_own(HedgeRace r) noexcept { return r != HedgeRace::hedge_won; }

// The hedge has a complete 2xx answer. Returns the new race state: hedge_won only while
// racing; a hedge that lost or was abandoned drops its answer.
constexpr HedgeRace on_hedge_answer(HedgeRace r) noexcept {
    return r == HedgeRace::racing ? HedgeRace::hedge_won : r;
}

// When the hedge fires: `after` (fixed) or the source's percentile, at least 1 ms (the timer
// wheel's grid) and before the deadline. Zero: no hedge this poll.
constexpr std::chrono::nanoseconds hedge_delay(std::chrono::nanoseconds fixed, std::chrono::nanoseconds percentile,
                                               bool use_percentile, std::chrono::nanoseconds timeout) noexcept {
    const auto d = use_percentile ? percentile : fixed;
    if (d <= std::chrono::nanoseconds::zero()) return std::chrono::nanoseconds::zero();
    const auto at = std::max<std::chrono::nanoseconds>(d, std::chrono::milliseconds(1));
    return at < timeout ? at : std::chrono::nanoseconds::zero();
}

// When the hedge is due: `delay` after the poll's scheduled tick, so the wake-up's lateness
// and the wheel's rounding (each up to about a millisecond) do not add to the wait a quote
// sees. A tick woken later than `hedge_lateness_allowance` is not made up for beyond it: a
// loop that runs late is slow itself, and a mirror cannot help that.
inline constexpr std::chrono::milliseconds hedge_lateness_allowance{1};
template <class TimePoint>
constexpr TimePoint hedge_due(TimePoint tick, TimePoint started, std::chrono::nanoseconds delay) noexcept {
    const TimePoint earliest = started - hedge_lateness_allowance;
    return (tick < earliest ? earliest : tick) + std::chrono::duration_cast<typename TimePoint::duration>(delay);
}
// A fixed `after` counts from the tick (hedge_due). `after: pNN` counts from the wake-up, as
// the latencies its percentile is taken of do (the poll's end minus its wake-up): from the
// tick, more than NN% of polls would hedge, and with max_extra near NN% the budget would run
// dry just when the tail comes.
template <class TimePoint>
constexpr TimePoint hedge_at(bool percentile, TimePoint tick, TimePoint started, std::chrono::nanoseconds delay) noexcept {
    return percentile ? started + std::chrono::duration_cast<typename TimePoint::duration>(delay)
                      : hedge_due(tick, started, delay);
}

}  // namespace mdagg::detail

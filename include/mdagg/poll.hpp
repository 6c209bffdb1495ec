// The pollers: one C++20 coroutine per (source, symbol), each with its own keep-alive
// connection, polling on a fixed-rate schedule. PollerGroup is the task manager above them:
// it spawns, counts, stops and cancels them.
#pragma once

#include <mdagg/config.hpp>
#include <mdagg/host_guard.hpp>
#include <mdagg/metrics.hpp>
#include <mdagg/quote.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

namespace mdagg {

// Seed article's task states, per poller.
enum class PollerState : std::uint8_t { pending, running, completed, failed, cancelled, timed_out };
std::string_view to_string(PollerState s) noexcept;

// Why a poll failed; counted per source.
enum class PollError : std::uint8_t {
    resolve,       // name lookup failed, or none has answered yet
    connect,       // refused / unreachable
    timeout,       // the poll's deadline passed (connect, write or read; a trickle too)
    reset,         // reset or closed mid-exchange (after the one retry)
    http_4xx,      // a client error other than the rate-limit and ban statuses
    http_5xx,
    http_other,    // 1xx or 3xx as a final answer
    rate_limited,  // 429: the host pauses for its Retry-After
    banned,        // 418 or 403: the host pauses for its Retry-After or ban_pause
    protocol,      // unparsable HTTP, headers beyond 8 KiB
    body_too_large,
    malformed,     // the body is not JSON
    mapping,       // a required field missing, a bad number or timestamp, another symbol
    body_error,    // the source's success check failed (an error inside a 200)
    count_
};
std::string_view to_string(PollError e) noexcept;

// Per-source counters; written by pollers with relaxed atomics, read by anyone.
struct SourceStats {
    std::atomic<std::uint64_t> polls_started{0};
    std::atomic<std::uint64_t> completed{0};
    std::atomic<std::uint64_t> failed{0};  // every unsuccessful outcome but timed_out and cancelled
    std::atomic<std::uint64_t> timed_out{0};
    std::atomic<std::uint64_t> cancelled{0};
    std::atomic<std::uint64_t> skipped_ticks{0};  // ticks missed while the previous poll ran
    std::atomic<std::uint64_t> throttled_ticks{0};  // ticks skipped at max_in_flight or in backoff
    std::atomic<std::uint64_t> rate_limited_ticks{0};  // the host's token bucket was empty
    std::atomic<std::uint64_t> paused_ticks{0};        // the host was paused (Retry-After, ban)
    std::atomic<std::uint64_t> breaker_ticks{0};       // the host's circuit breaker was open
    std::atomic<std::uint64_t> connects{0};
    std::atomic<std::uint64_t> retries{0};  // GETs re-sent once after a stale keep-alive close
    std::atomic<std::int64_t> in_flight{0};
    std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(PollError::count_)> errors{};
    LatencyHistogram latency;   // tick to quote delivered
    LatencyHistogram lateness;  // scheduled tick to timer wake-up
};

// Receives accepted quotes. Called on the poller's executor; must not block.
using QuoteHandler = std::function<void(const Quote&)>;

class PollerGroup {
public:
    PollerGroup(boost::asio::io_context& io, const Config& config, const Universe& universe,
                QuoteHandler on_quote);
    ~PollerGroup();
    PollerGroup(const PollerGroup&) = delete;
    PollerGroup& operator=(const PollerGroup&) = delete;

    // Spawns every poller. `on_all_exited` runs (on an arbitrary poller executor) once the
    // last poller coroutine has returned.
    void start(std::function<void()> on_all_exited);

    // Drain stage 1: no poller starts a new poll; idle pollers exit at once, busy ones after
    // their in-flight poll.
    void stop_scheduling();
    // Drain stage 2b: abort in-flight polls (counted as cancelled).
    void cancel_in_flight();
    // Drain stage 5: close every connection, each on its poller's executor; `done` runs (on
    // one of them) after the last. Call once every poller returned.
    void close_connections(std::function<void()> done);
    // Writes the suppressed counts of rate-limited error logs.
    void flush_logs();

    // How many pollers are in each PollerState now (the seed's TaskManager.get_stats).
    std::array<std::size_t, 6> state_counts() const noexcept;

    std::size_t size() const noexcept;
    std::size_t running() const noexcept;  // coroutines not yet returned
    std::size_t polls_in_flight() const noexcept;
    const SourceStats& stats(SourceId source) const;
    std::size_t source_count() const noexcept;
    // Per entry of Config::hosts: breaker, pause and bucket state.
    HostGuard::Status host_status(std::size_t host) const;
    std::size_t host_count() const noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace mdagg

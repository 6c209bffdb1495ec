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
#include <chrono>
#include <string>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace mdagg {

// Seed article's task states, per poller.
enum class PollerState : std::uint8_t { pending, running, completed, failed, cancelled, timed_out };
inline constexpr std::size_t poller_state_count = static_cast<std::size_t>(PollerState::timed_out) + 1;
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
    std::atomic<std::uint64_t> host_paused_ticks{0};   // the host was paused (Retry-After, ban)
    std::atomic<std::uint64_t> breaker_ticks{0};       // the host's circuit breaker was open
    std::atomic<std::uint64_t> connects{0};
    std::atomic<std::uint64_t> retries{0};  // GETs re-sent once after a stale keep-alive close
    std::atomic<std::int64_t> in_flight{0};
    std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(PollError::count_)> errors{};
    LatencyHistogram latency;   // tick to quote delivered
    LatencyHistogram lateness;  // scheduled tick to timer wake-up
    LatencyHistogram achieved_interval;  // between one poll's start and the next (drift)
    std::atomic<std::uint64_t> paused_ticks{0};  // ticks of pollers an operator paused
};

using PollErrorCounts = std::array<std::uint64_t, static_cast<std::size_t>(PollError::count_)>;

// What the pollers of one source counted, as plain values (a relaxed copy of its SourceStats,
// what readers on other threads take instead of the atomics), or the sum over sources.
struct PollCounters {
    std::uint64_t polls_started = 0;
    std::uint64_t completed = 0;
    std::uint64_t failed = 0;  // every unsuccessful outcome but timed_out and cancelled
    std::uint64_t timed_out = 0;
    std::uint64_t cancelled = 0;
    std::uint64_t skipped_ticks = 0;
    std::uint64_t throttled_ticks = 0;
    std::uint64_t paused_ticks = 0;  // operator-paused pollers
    std::uint64_t rate_limited_ticks = 0;
    std::uint64_t host_paused_ticks = 0;  // server-paused hosts
    std::uint64_t breaker_ticks = 0;
    std::uint64_t connects = 0;
    std::uint64_t retries = 0;
    std::int64_t in_flight = 0;
    PollErrorCounts errors{};  // by PollError
    // Empty when read without histograms (the heartbeat needs counts only).
    LatencyHistogram::Snapshot latency, lateness, achieved_interval;

    void add(const PollCounters& other) noexcept;
};

// What an operator made of a poller (POST /admin/pause|resume|cancel). Cancelled pollers
// have returned for good; paused ones keep their schedule and connection, and skip polls.
enum class PollerControl : std::uint8_t { active, paused, cancelled };
std::string_view to_string(PollerControl c) noexcept;

// One poller, for the task table (GET /debug/tasks).
struct PollerSnapshot {
    SourceId source = 0;
    std::string source_name;
    std::string symbol;
    std::vector<std::string> tags;  // the source's and the symbol's
    std::chrono::nanoseconds interval{};
    PollerState state = PollerState::pending;  // outcome of the latest poll
    PollerControl control = PollerControl::active;
    bool polling = false;  // a poll is in flight
    std::uint64_t polls = 0, completed = 0, failed = 0, timed_out = 0;  // failed excludes timed_out
    std::int64_t last_success_ns = 0;  // wall clock, 0 = never
    std::int64_t last_error_ns = 0;
    std::optional<PollError> last_error;
    std::int64_t last_latency_ns = -1;  // latest finished poll, any outcome; -1 = none yet
};

// Selects pollers for pause/resume/cancel/retire: source name, symbol, tags.
using PollerFilter =
    std::function<bool(std::string_view source, std::string_view symbol, const std::vector<std::string>& tags)>;
struct ControlResult {
    std::size_t matched = 0;  // pollers the filter selected
    std::size_t changed = 0;  // of those, pollers whose control state changed
};

// Tags of one poller: the source's, then the symbol's own.
std::vector<std::string> poller_tags(const SourceConfig& source, std::string_view symbol);

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
    std::array<std::size_t, poller_state_count> state_counts() const noexcept;
    // Pollers by PollerControl, and how many active ones have not finished a poll yet.
    // Active pollers whose host is paused by the server (Retry-After, a ban) are expected
    // neither to poll nor to complete: they count in active_on_paused_host, not in
    // active_never_polled.
    struct ControlCounts {
        std::array<std::size_t, 3> by_control{};
        std::size_t active_never_polled = 0;
        std::size_t active_on_paused_host = 0;
    };
    ControlCounts control_counts() const noexcept;

    std::size_t size() const noexcept;
    std::size_t running() const noexcept;  // coroutines not yet returned
    std::size_t polls_in_flight() const noexcept;
    // Sources ever known, by SourceId; a source removed by a reload keeps its id and stats.
    PollCounters source_counters(SourceId source) const;
    // The live atomics behind source_counters(); kept for callers not moved to it yet.
    const SourceStats& stats(SourceId source) const;
    std::size_t source_count() const noexcept;
    // Per host guard (Config::hosts first, then hosts a reload added; a reload that drops a
    // host frees its guard once no poller uses it, which shifts the indices): breaker, pause and
    // bucket state, and its "host[:port]" name.
    HostGuard::Status host_status(std::size_t host) const;
    std::size_t host_count() const noexcept;
    std::string host_name(std::size_t host) const;
    // Every guard's "host[:port]" name and state, read under one lock: a reload may free
    // guards between calls of the three above.
    std::vector<std::pair<std::string, HostGuard::Status>> host_statuses() const;
    // The pauses the hosts asked for that are running now, on the wall clock, by host name.
    std::vector<ServerPause> server_pauses() const;
    // Start-up, before start(): pauses each named host until its end (its max_pause still
    // caps it). Unknown hosts are skipped. Returns how many were applied.
    std::size_t restore_pauses(const std::vector<ServerPause>& pauses);
    std::string source_name(SourceId source) const;

    // The task table: one entry per poller, in config order. Reads atomics; any thread.
    std::vector<PollerSnapshot> snapshot() const;
    // Operator control, safe from any thread. pause: active -> paused (the poller keeps its
    // schedule and connection, its ticks are counted as paused); resume: paused -> active;
    // cancel: active or paused -> cancelled (a poll in flight finishes and is delivered, then
    // the poller closes its connection and returns; it stays cancelled).
    ControlResult pause(const PollerFilter& filter);
    ControlResult resume(const PollerFilter& filter);
    ControlResult cancel(const PollerFilter& filter);

    // Reload. add() starts pollers for `symbols` (name and id) of `source`, whose config is
    // copied; `id` continues an existing source's stats or is source_count() for a new one.
    // Refused (returns false) once the drain started. retire() takes the selected pollers
    // out like a drain: no new poll, a poll in flight finishes and its quote is delivered,
    // then the connection closes and the poller is freed; until then they count as running.
    // set_tags() replaces the tags of the source's pollers and its max_in_flight in place.
    // `host` is the source's entry in the new config's hosts; a host already polled keeps the
    // guard it has (hosts: changes need a restart).
    bool add(SourceId id, const SourceConfig& source, const HostConfig& host,
             const std::vector<std::pair<std::string, SymbolId>>& symbols);
    std::size_t retire(const PollerFilter& filter);
    void set_tags(const SourceConfig& source);
    // The reloaded config's host entries. The guard of a host it does not name is freed, with
    // its metric series, once no poller uses it (at once, or when the last retired one goes).
    void set_hosts(const std::vector<HostConfig>& hosts);
    // Symbol ids that some poller still refers to, sorted: active ones and retired ones not
    // freed yet (a poll in flight). A removed symbol's id may be reused only once it is gone
    // from here (and its last quote reached the aggregator, which is queued before that).
    std::vector<SymbolId> symbols_held() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace mdagg

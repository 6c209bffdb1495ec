// The pollers: one C++20 coroutine per (source, symbol), each with its own keep-alive
// connection, polling on a fixed-rate schedule. PollerGroup is the task manager above them:
// it spawns, counts, stops and cancels them.
#pragma once

#include <mdagg/config.hpp>
#include <mdagg/observe.hpp>
#include <mdagg/quote.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

// ---- host guards: per-host breaker and rate-limit state --------------------------------------
// What one host allows, shared by every poller of that host (sans-io: the caller passes the
// time). A token bucket for its rate limit, pauses when it signals a rate limit or a ban
// (429, 418/403 with or without Retry-After), a slow-down from a usage header before the limit
// is reached, and a circuit breaker that stops polling a host that keeps failing, then probes
// it with one poll after a cooldown.
namespace mdagg {

// A tick's verdict. `go` and `probe` poll; the rest skip the tick (counted per reason).
enum class Admission : std::uint8_t {
    go,
    probe,         // the one poll a half-open breaker lets through
    throttled,     // the token bucket is empty
    paused,        // the host asked for a pause (Retry-After, a ban)
    breaker_open,  // the host keeps failing
};

enum class BreakerState : std::uint8_t { closed, open, half_open };
std::string_view to_string(BreakerState s) noexcept;

enum class PauseReason : std::uint8_t { none, rate_limited, banned };
std::string_view to_string(PauseReason r) noexcept;

// What a finished poll says about the host's health, for the breaker.
enum class HostVerdict : std::uint8_t {
    healthy,  // a well-formed HTTP answer that is not a 5xx (a 404 or a bad body is the symbol's problem)
    failing,  // connect, timeout, reset, 5xx, unparsable HTTP
    neutral,  // no news: cancelled, rate limited, no address yet
};

class HostGuard {
public:
    using Clock = std::chrono::steady_clock;

    struct Status {
        BreakerState breaker = BreakerState::closed;
        PauseReason pause = PauseReason::none;
        Clock::time_point paused_until{};
        std::uint64_t pauses_rate_limited = 0;
        std::uint64_t pauses_banned = 0;
        std::uint64_t breaker_opens = 0;
        std::uint32_t consecutive_failures = 0;
        double tokens = 0;
        double rate_factor = 1;  // < 1 while the usage header slows the host
        std::int64_t prioritized_pollers = 0;  // pollers whose priority the reserves count (note_priority)
    };

    HostGuard(const HostConfig& config, Clock::time_point now);

    // Called once per tick, before the poll. Takes `cost` tokens only when it says go/probe.
    // `priority`: the tick's effective priority, 1 (highest) .. 9, 0 for none. When the host's
    // pollers have several (note_priority), a tick below the best one is admitted only while
    // the bucket holds its cost plus a reserve for the better ones: (burst - cost) scaled by
    // (priority - best) / (9 - best). So when the bucket cannot serve every due tick, better
    // ticks are served first (docs/polling.md#priorities-with-aging).
    Admission admit(Clock::time_point now, double cost, std::uint8_t priority = 0);
    // A poller of this priority starts (`pollers` 1) or stops (-1) polling this host. The best
    // priority of those polling it sets the reserves' scale.
    void note_priority(std::uint8_t priority, int pollers = 1);
    // The pollers note_priority counts at `priority` (1..9) now.
    std::int64_t pollers_at_priority(std::uint8_t priority) const;

    // After the poll: `probe` is whether admit() said probe for it. Returns the breaker's new
    // state when this report changed it (for a log line).
    std::optional<BreakerState> report(Clock::time_point now, HostVerdict verdict, bool probe);

    // The host signalled a rate limit or a ban; `signalled` is its Retry-After, if any. The
    // pause never shortens one already running, and is capped at max_pause. Returns true when
    // this started a pause (rather than extending one).
    bool pause(Clock::time_point now, PauseReason reason, std::optional<Clock::duration> signalled);

    // The usage header's value (budget used in the venue's window).
    void on_usage(double used);

    Status status(Clock::time_point now) const;

private:
    void refill(Clock::time_point now);

    const HostConfig config_;  // a copy: a reload may drop the Config it came from
    mutable std::mutex mutex_;  // pollers of one host may run on several threads
    Status status_;
    Clock::time_point refilled_at_;
    Clock::time_point open_until_{};
    Clock::duration cooldown_;
    bool probe_outstanding_ = false;
    std::array<std::int64_t, 10> pollers_by_priority_{};  // by priority 1..9 (0 unused)
    std::uint8_t best_priority_ = 0;  // 0: no poller said; with one priority, no reserve
};

// Requests per second the sources of host `host` ask for (symbols * cost / interval).
double scheduled_demand(const Config& config, std::size_t host);

// A pause a host asked for (Retry-After, a ban), on the wall clock: steady time does not
// survive a restart, and these must (a restart must not hit a venue that banned us).
struct ServerPause {
    std::string host;  // the guard's "host[:port]"
    PauseReason reason = PauseReason::rate_limited;
    std::chrono::system_clock::time_point until;
    bool operator==(const ServerPause&) const = default;
};

// `<output.dir>/.mdagg-hosts.json`: the server-requested host pauses, so that a restarted
// daemon honours them. Loaded once at start-up; rewritten (temp file with O_EXCL, fsync,
// rename, fsync of the directory) by its own thread whenever the set of pauses changes, so
// neither the poll path nor the event loop waits for the disk.
class HostPauseFile {
public:
    static constexpr const char* file_name = ".mdagg-hosts.json";

    explicit HostPauseFile(std::string dir);
    ~HostPauseFile();  // writes what is pending, then stops its thread
    HostPauseFile(const HostPauseFile&) = delete;
    HostPauseFile& operator=(const HostPauseFile&) = delete;

    // The pauses still running at `now`; expired ones are dropped, a missing file is none, a
    // corrupt one is logged and ignored.
    std::vector<ServerPause> load(std::chrono::system_clock::time_point now);
    // Cheap, any thread: hands `current` to the writer when it differs from what was written
    // (another host, another reason, or an end moved by more than a second).
    void update(const std::vector<ServerPause>& current);

    static std::string to_json(const std::vector<ServerPause>& pauses);
    // Throws std::invalid_argument on anything but the file's format.
    static std::vector<ServerPause> parse(std::string_view text, std::chrono::system_clock::time_point now);

private:
    void run();
    void write(const std::string& content);

    const std::string dir_;
    std::vector<ServerPause> last_;  // handed to the writer; update()'s caller only
    std::mutex mutex_;
    std::condition_variable cv_;
    std::optional<std::string> pending_;
    bool stop_ = false;
    bool failing_ = false;  // writer thread only: log a failure once per episode
    std::thread thread_;
};

}  // namespace mdagg

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
    tls_handshake, // TLS protocol failure, or the handshake outlived connect_timeout
    tls_verify,    // the server's certificate was refused (chain, expiry, name)
    count_
};
std::string_view to_string(PollError e) noexcept;

// Per-source counters; written by pollers with relaxed atomics, read by anyone.
// What a batch answer held besides its members' good entries (docs/operations.md).
enum class BatchEntryCount : std::uint8_t { unknown, missing, duplicate, bad_symbol, count_ };
std::string_view to_string(BatchEntryCount c) noexcept;
using BatchEntryCounts = std::array<std::uint64_t, static_cast<std::size_t>(BatchEntryCount::count_)>;

// Routes of a source: its url, then up to 8 mirrors (config: mirrors).
inline constexpr std::size_t max_poll_routes = 9;

// How a poll that ran into its late grace ended (docs/polling.md, "Late answers"): its answer
// was delivered as a quote, came but was an error (counted in its class), did not come in time
// or the connection broke (a timeout; the connection closed), or a drain cancelled it.
enum class LateAnswer : std::uint8_t { delivered, failed, closed, cancelled, count_ };
std::string_view to_string(LateAnswer l) noexcept;
using LateAnswerCounts = std::array<std::uint64_t, static_cast<std::size_t>(LateAnswer::count_)>;

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
    // Failover (docs/polling.md#mirrors-and-failover): pollers moved to a later route (a
    // mirror, the url's host paused or its breaker open) and back to an earlier one.
    std::atomic<std::uint64_t> failovers{0};
    std::atomic<std::uint64_t> failbacks{0};
    // Ticks whose breaker probe failed and that went on to the next route within the tick.
    std::atomic<std::uint64_t> probe_fallbacks{0};
    std::array<std::atomic<std::uint64_t>, max_poll_routes> route_polls{};  // polls by route: 0 the url
    // rate_limited_ticks by the poller's configured priority (index 0: priority 1).
    std::array<std::atomic<std::uint64_t>, 9> rate_limited_by_priority{};
    std::atomic<std::uint64_t> connects{0};
    std::atomic<std::uint64_t> retries{0};  // GETs re-sent once after a stale keep-alive close
    std::atomic<std::uint64_t> tls_handshakes{0};   // completed, full or resumed
    std::atomic<std::uint64_t> tls_resumptions{0};  // of those, the resumed sessions
    std::atomic<std::int64_t> in_flight{0};
    std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(PollError::count_)> errors{};
    LatencyHistogram latency;   // tick to quote delivered
    LatencyHistogram lateness;  // scheduled tick to timer wake-up
    LatencyHistogram achieved_interval;  // between one poll's start and the next (drift)
    std::atomic<std::uint64_t> paused_ticks{0};  // ticks of pollers an operator paused
    std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(BatchEntryCount::count_)> batch_entries{};
    std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(LateAnswer::count_)> late_answers{};
    // Hedged requests (docs/polling.md#hedged-requests).
    std::atomic<std::uint64_t> hedges_sent{0};
    std::atomic<std::uint64_t> hedges_refused_budget{0};  // no max_extra left
    std::atomic<std::uint64_t> hedges_refused_host{0};    // no mirror's guard admitted it
    std::atomic<std::uint64_t> hedges_failed{0};          // the hedge failed on its own, the primary went on
    std::atomic<std::uint64_t> hedges_unsent{0};          // admitted, but ended before its request went out
    std::array<std::atomic<std::uint64_t>, max_poll_routes> hedge_wins{};  // by the hedge's route
    std::atomic<std::uint64_t> losers_cancelled{0};  // closed before any byte of the answer
    std::atomic<std::uint64_t> losers_discarded{0};  // answer read to the end and dropped
};

using PollErrorCounts = std::array<std::uint64_t, static_cast<std::size_t>(PollError::count_)>;

// What the pollers of one source counted, as plain values (a relaxed copy of its SourceStats,
// what readers on other threads take instead of the atomics), or the sum over sources.
// Whether a copy of the counters includes the histograms (which cost a copy each).
enum class PollDetail : bool { counters, with_histograms };

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
    std::uint64_t failovers = 0;
    std::uint64_t failbacks = 0;
    std::uint64_t probe_fallbacks = 0;
    std::array<std::uint64_t, max_poll_routes> route_polls{};
    std::array<std::uint64_t, 9> rate_limited_by_priority{};
    std::uint64_t connects = 0;
    std::uint64_t retries = 0;
    std::uint64_t tls_handshakes = 0;
    std::uint64_t tls_resumptions = 0;
    std::int64_t in_flight = 0;
    PollErrorCounts errors{};  // by PollError
    BatchEntryCounts batch_entries{};
    LateAnswerCounts late_answers{};  // polls that ran into their late grace, by how they ended
    std::uint64_t hedges_sent = 0, hedges_refused_budget = 0, hedges_refused_host = 0, hedges_failed = 0;
    std::uint64_t hedges_unsent = 0;
    std::array<std::uint64_t, max_poll_routes> hedge_wins{};
    std::uint64_t losers_cancelled = 0, losers_discarded = 0;
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
    std::string symbol;         // canonical
    std::string venue_symbol;   // the venue's spelling when it differs, else empty
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
    // A batch member's row: its request's index in the source and that request's symbol count
    // (0: a single poller). The counts and times above are the member's own.
    std::size_t batch = 0, batch_symbols = 0;
    // A source with mirrors: the route polled now (0: the url, k: mirrors[k-1]) and its
    // "host:port"; empty `via` for a source without mirrors.
    std::size_t route = 0;
    std::string via;
    // `priority:` (1 highest .. 9; a batch's best member's), and the one its next tick asks
    // with: better by one for each tick in a row its host's bucket refused (aging).
    std::uint8_t priority = 5, effective_priority = 5;
    // A hedged source's poller: its hedge's state this poll (idle, racing, hedge_won,
    // primary_won, abandoned); empty without `hedge:`.
    std::string hedge;
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
    // Every poller on `io`; with config.runtime.threads > 1 the caller runs `io` on that many
    // threads and each poller gets a strand.
    PollerGroup(boost::asio::io_context& io, const Config& config, const Universe& universe,
                QuoteHandler on_quote);
    // Pollers dealt in turn to `shards`, io_contexts each run by exactly one thread: a poller's
    // handlers need no strand and each shard's timer wheel no lock (the daemon's mode for
    // runtime.threads > 1). The shards outlive the group.
    PollerGroup(std::span<boost::asio::io_context* const> shards, const Config& config, const Universe& universe,
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
    // The https sources polling with tls.verify false: warned about in every summary line.
    std::vector<std::string> unverified_tls_sources() const;

    std::size_t size() const noexcept;
    std::size_t running() const noexcept;  // coroutines not yet returned
    std::size_t polls_in_flight() const noexcept;
    // Sources ever known, by SourceId; a source removed by a reload keeps its id and stats.
    PollCounters source_counters(SourceId source, PollDetail detail = PollDetail::with_histograms) const;
    // The live atomics behind source_counters(), for the unit tests that watch them change
    // while polls run; the daemon reads source_counters() only.
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
    // "host:port" of the source's routes: its url's, then its mirrors'.
    std::vector<std::string> route_names(SourceId source) const;

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
    // `mirror_hosts`: the new config's host entries of source.mirrors, in order.
    bool add(SourceId id, const SourceConfig& source, const HostConfig& host,
             const std::vector<std::pair<std::string, SymbolId>>& symbols,
             const std::vector<HostConfig>& mirror_hosts = {});
    // Builds (or finds) the SSL contexts the https sources need before a reload changes
    // anything: a CA or key file gone since the config was checked throws std::runtime_error
    // naming the source, and the reload is refused whole. Holding the result keeps the contexts
    // cached, so the add() calls that follow reuse them and cannot fail for that reason.
    std::shared_ptr<const void> prepare_tls(const std::vector<SourceConfig>& sources);
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

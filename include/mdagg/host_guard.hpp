// What one host allows, shared by every poller of that host (sans-io: the caller passes the
// time). A token bucket for its rate limit, pauses when it signals a rate limit or a ban
// (429, 418/403 with or without Retry-After), a slow-down from a usage header before the limit
// is reached, and a circuit breaker that stops polling a host that keeps failing, then probes
// it with one poll after a cooldown.
#pragma once

#include <mdagg/config.hpp>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>

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
    };

    HostGuard(const HostConfig& config, Clock::time_point now);

    // Called once per tick, before the poll. Takes `cost` tokens only when it says go/probe.
    Admission admit(Clock::time_point now, double cost);

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
};

// Requests per second the sources of host `host` ask for (symbols * cost / interval).
double scheduled_demand(const Config& config, std::size_t host);

}  // namespace mdagg

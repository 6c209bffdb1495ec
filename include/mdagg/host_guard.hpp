// What one host allows, shared by every poller of that host (sans-io: the caller passes the
// time). A token bucket for its rate limit, pauses when it signals a rate limit or a ban
// (429, 418/403 with or without Retry-After), a slow-down from a usage header before the limit
// is reached, and a circuit breaker that stops polling a host that keeps failing, then probes
// it with one poll after a cooldown.
#pragma once

#include <mdagg/config.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

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

// The simulator's fault model, sans-io: a fault spec parsed from JSON, and a table that decides
// per quote request which fault (if any) answers it. The server (sim.cpp) carries it out.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mdagg::sim::detail {

// Everything that can answer (or not answer) a quote request, plus the listener-level faults.
// `rate_limited` is the rate limiter's 429; a rate limiter's ban answers as `ban`.
enum class FaultKind : std::uint8_t {
    latency,
    hang,
    reset,
    close_after,
    status,
    too_many_requests,
    ban,
    body_error,
    malformed,
    truncated,
    oversized,
    endless_headers,
    trickle,
    refuse,
    restart,
    rate_limit,
    rate_limited,
    interim,  // 1xx interim response(s) before a good quote
    none,  // not a fault: answer normally
};
inline constexpr std::size_t kFaultKinds = static_cast<std::size_t>(FaultKind::none);
std::string_view kind_name(FaultKind kind) noexcept;

enum class Select : std::uint8_t { all, symbols, symbol_ratio, request_ratio };
enum class Distribution : std::uint8_t { uniform, pareto };
enum class RetryAfterForm : std::uint8_t { none, seconds, http_date };

using Micros = std::chrono::microseconds;
using SteadyClock = std::chrono::steady_clock;

struct FaultSpec {
    FaultKind kind = FaultKind::none;
    Select select = Select::all;
    std::vector<std::string> symbols;  // sorted, for Select::symbols
    double ratio = 1.0;                // for symbol_ratio / request_ratio
    Micros after{0};                   // the fault starts this long after it was added
    std::optional<Micros> duration;    // the fault removes itself after this (from its start)
    std::uint64_t count = 0;           // ... or after this many hits; 0 = no limit

    int status = 0;  // status, ban, body_error, interim
    Distribution distribution = Distribution::uniform;
    Micros min{0};
    Micros max{0};
    double alpha = 1.5;  // pareto shape: smaller = longer tail
    std::optional<Micros> retry_after;  // status, too_many_requests
    RetryAfterForm retry_after_form = RetryAfterForm::seconds;
    Micros period{0};    // ban: how long; restart: how long the listener stays down
    Micros interval{0};  // endless_headers, trickle
    std::size_t chunk = 1;  // trickle: bytes per step
    std::size_t size = 0;   // oversized: body bytes
    std::optional<std::size_t> after_bytes;  // reset, truncated: bytes sent before giving up
    std::string body;                        // body_error, malformed
    std::uint64_t requests = 0;              // close_after
    bool drop_connections = false;           // refuse

    // rate_limit: a fixed window of `window` per listener, `weight` per quote request.
    std::uint64_t limit = 0;  // 0 = count and report only
    Micros window{0};
    std::uint64_t weight = 1;
    std::uint64_t ban_after = 0;  // this many 429s in a row of windows -> ban; 0 = never ban
    Micros ban_period{0};
    int ban_status = 418;
    std::string usage_header;  // e.g. X-MBX-USED-WEIGHT-1M; empty = none

    nlohmann::json source;  // as given, for GET /control/faults

    bool listener_level() const noexcept {
        return kind == FaultKind::refuse || kind == FaultKind::restart;
    }
};

// Parses one fault; throws std::invalid_argument with a message naming the offending key.
FaultSpec parse_fault(const nlohmann::json& json);
FaultSpec parse_fault(std::string_view json_text);

// "250ms", "2s", "100us", "1m", "1h" or "0". Throws std::invalid_argument.
Micros parse_duration(std::string_view text);

// A symbol falls within a symbol ratio when its stable hash, as a fraction in [0, 1), is below
// the ratio: the same symbols for every run, seed and fault (and the same as --hung-ratio).
bool symbol_in_ratio(std::string_view symbol, double ratio) noexcept;

// What to do with one quote request.
struct Decision {
    FaultKind kind = FaultKind::none;
    Micros delay{0};  // added latency before whatever answers
    int status = 0;
    std::optional<Micros> retry_after;
    RetryAfterForm retry_after_form = RetryAfterForm::seconds;
    std::shared_ptr<const FaultSpec> spec;   // the fault that answers, if any
    std::shared_ptr<const FaultSpec> usage;  // a rate limit that reports its usage header
    std::uint64_t used = 0;                  // the weight used in the current window
};

// Active faults, ordered by id. Thread-safe; decide() is the only call on the request path and
// is skipped entirely (one relaxed load) while no request-level fault is active.
class FaultTable {
public:
    std::uint64_t add(FaultSpec spec, SteadyClock::time_point now);
    // The removed fault, or null when there was none with that id.
    std::shared_ptr<const FaultSpec> remove(std::uint64_t id);
    std::vector<std::pair<std::uint64_t, std::shared_ptr<const FaultSpec>>> clear();

    bool active() const noexcept { return request_level_.load(std::memory_order_relaxed) != 0; }
    // Faults still in force (what list() shows).
    std::size_t size(SteadyClock::time_point now) const;

    // `responses_on_connection` feeds close_after; `rng` (the connection's) feeds request_ratio.
    Decision decide(std::string_view symbol, std::size_t responses_on_connection,
                    std::uint64_t& rng, SteadyClock::time_point now);

    // {"faults":[{"id":1,"kind":"status","hits":0,"expires_in_ms":null,"spec":{...}}, ...]},
    // plus "starts_in_ms" for a fault not started yet.
    nlohmann::json list(SteadyClock::time_point now) const;

private:
    struct Entry {
        std::uint64_t id = 0;
        std::shared_ptr<const FaultSpec> spec;
        SteadyClock::time_point starts{};
        std::optional<SteadyClock::time_point> expires;
        std::uint64_t hits = 0;
        SteadyClock::time_point banned_until{};  // ban, rate_limit
        // rate_limit
        SteadyClock::time_point window_start{};
        std::uint64_t used = 0;
        std::uint64_t rejected_in_window = 0;
        std::uint64_t violations = 0;
    };
    void update_count_locked() noexcept;
    static bool listed(const Entry& e, SteadyClock::time_point now) noexcept;

    mutable std::mutex mutex_;
    std::vector<Entry> entries_;
    std::uint64_t next_id_ = 1;
    std::atomic<std::size_t> request_level_{0};
};

// Retry-After's value: whole seconds rounded up, or an IMF-fixdate that many seconds from now.
std::string retry_after_value(Micros after, RetryAfterForm form);

}  // namespace mdagg::sim::detail

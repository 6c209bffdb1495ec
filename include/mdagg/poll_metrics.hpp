// The poll module's metrics: its counters copied out of the pollers' atomics (one snapshot
// that /metrics, the summary line, the heartbeat and the drain line all read), and the
// families it shows in /metrics: per source, per symbol (admin.symbol_metrics) and per host
// guard.
#pragma once

#include <mdagg/host_guard.hpp>
#include <mdagg/metrics.hpp>
#include <mdagg/poll.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mdagg {

using PollErrorCounts = std::array<std::uint64_t, static_cast<std::size_t>(PollError::count_)>;

// What the pollers of one source counted (a relaxed copy of its SourceStats), or the sum of
// that over sources.
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

enum class PollDetail : bool { counters, with_histograms };

// Every source's counters and their sum, read once. Sources a reload removed keep their id
// and their counters.
struct PollStats {
    std::vector<PollCounters> sources;      // by SourceId
    std::vector<std::string> source_names;  // by SourceId; empty when read with counters only
    PollCounters total;

    static PollStats read(const PollerGroup& pollers, PollDetail detail);
};

// The poll module's families in /metrics (mdagg_source_*): counters and histograms from
// `stats` (read with histograms), pollers by state and control and the newest good quote's
// age from `pollers` (the task table).
void write_source_metrics(PrometheusWriter& w, const PollStats& stats,
                          const std::vector<PollerSnapshot>& pollers, std::int64_t now_wall_ns);

// mdagg_symbol_*: the pollers admin.symbol_metrics chose. `source_names` by SourceId.
void write_symbol_metrics(PrometheusWriter& w, const std::vector<const PollerSnapshot*>& chosen,
                          const std::vector<std::string>& source_names, std::int64_t now_wall_ns);

// Symbols in the task table, and those with no good quote from any source within three of
// its source's intervals (the aggregator's symbol gauges are judged from the pollers).
struct SymbolFreshness {
    std::size_t symbols = 0;
    std::size_t stale = 0;
};
SymbolFreshness symbol_freshness(const std::vector<PollerSnapshot>& pollers, std::int64_t now_wall_ns);

// mdagg_host_*: one series per host guard, as PollerGroup::host_statuses() reads them.
void write_host_metrics(PrometheusWriter& w,
                        const std::vector<std::pair<std::string, HostGuard::Status>>& hosts,
                        std::chrono::steady_clock::time_point now);

}  // namespace mdagg

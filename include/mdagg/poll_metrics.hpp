// The poll module's metrics: its counters copied out of the pollers' atomics (one snapshot
// that /metrics, the summary line, the heartbeat and the drain line all read), and the
// families it shows in /metrics: per source, per symbol (admin.symbol_metrics) and per host
// guard.
#pragma once

#include <mdagg/poll.hpp>
#include <mdagg/observe.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mdagg {

// One source's counters, copied out of its atomics (relaxed).
PollCounters counters_of(const SourceStats& stats, PollDetail detail);

// Every source's counters and their sum, read once. Sources a reload removed keep their id
// and their counters.
struct PollStats {
    std::vector<PollCounters> sources;      // by SourceId
    std::vector<std::string> source_names;  // by SourceId; empty when read with counters only
    std::vector<std::vector<std::string>> route_names;  // by SourceId, like source_names
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

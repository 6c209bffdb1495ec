// The aggregator's families in /metrics (mdagg_aggregator_*).
#pragma once

#include <mdagg/observe.hpp>

#include <cstddef>

namespace mdagg {

// Symbols in the running config, and those with no good quote from any source within three
// of its source's intervals. Judged from the pollers' latest good quotes (what a scrape has
// at hand without a hop onto the aggregator's strand), not from the aggregator's stale marks.
struct SymbolGauges {
    std::size_t symbols = 0;
    std::size_t stale = 0;
};

void write_aggregator_metrics(PrometheusWriter& w, const SymbolGauges& gauges);

}  // namespace mdagg

#include <mdagg/aggregator_metrics.hpp>

namespace mdagg {

void write_aggregator_metrics(PrometheusWriter& w, const SymbolGauges& gauges) {
    w.family("mdagg_aggregator_symbols", "gauge", "Symbols in the running config.");
    w.sample("mdagg_aggregator_symbols", {}, static_cast<double>(gauges.symbols));
    w.family("mdagg_aggregator_stale_symbols", "gauge",
             "Symbols with no good quote from any source within three of its source's intervals.");
    w.sample("mdagg_aggregator_stale_symbols", {}, static_cast<double>(gauges.stale));
}

}  // namespace mdagg

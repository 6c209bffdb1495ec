// The aggregator's families in /metrics.
#include <mdagg/aggregator_metrics.hpp>

#include <gtest/gtest.h>

#include <string>

namespace mdagg {
namespace {

TEST(AggregatorMetrics, SymbolGaugesWithTheirHelpAndType) {
    std::string out;
    PrometheusWriter w(out);
    write_aggregator_metrics(w, {.symbols = 5, .stale = 2});
    EXPECT_EQ(out,
              "# HELP mdagg_aggregator_symbols Symbols in the running config.\n"
              "# TYPE mdagg_aggregator_symbols gauge\n"
              "mdagg_aggregator_symbols 5\n"
              "# HELP mdagg_aggregator_stale_symbols Symbols with no good quote from any source within three of "
              "its source's intervals.\n"
              "# TYPE mdagg_aggregator_stale_symbols gauge\n"
              "mdagg_aggregator_stale_symbols 2\n");
}

}  // namespace
}  // namespace mdagg

// The reload plan of a batch source: its requests are built from its symbol list, so a change
// to the list restarts the source's pollers; the same list changes nothing.
#include "reload_plan.hpp"

#include <gtest/gtest.h>

namespace mdagg::lifecycle {
namespace {

SourceConfig batch_source(std::vector<std::string> symbols) {
    SourceConfig s;
    s.name = "binance";
    s.url_text = "http://venue/q?symbols={symbols}";
    s.interval = std::chrono::milliseconds(500);
    s.symbols = std::move(symbols);
    BatchConfig b;
    b.symbol = "/symbol";
    b.size = 2;
    b.symbols_in_url = true;
    s.batch = b;
    return s;
}

ReloadPlan plan(const std::vector<SourceConfig>& running, const std::vector<SourceConfig>& loaded) {
    HostConfig host;
    host.host = "venue";
    host.port = 80;
    Universe u;
    u.sources.push_back("binance");
    for (auto& sym : running[0].symbols) u.symbols.push_back(sym);
    return plan_reload(running, {host}, loaded, {host}, u, {}, {});
}

TEST(ReloadPlanBatch, ChangedSymbolListRestartsTheBatchSource) {
    const auto p = plan({batch_source({"A", "B", "C"})}, {batch_source({"A", "C", "D"})});
    ASSERT_EQ(p.steps.size(), 1u);
    EXPECT_EQ(p.steps[0].step, ReloadPlan::Step::restart);
}

TEST(ReloadPlanBatch, TheSameListChangesNothing) {
    const auto p = plan({batch_source({"A", "B", "C"})}, {batch_source({"A", "B", "C"})});
    ASSERT_EQ(p.steps.size(), 1u);
    EXPECT_EQ(p.steps[0].step, ReloadPlan::Step::update);
    EXPECT_TRUE(p.steps[0].added_symbols.empty());
    EXPECT_TRUE(p.steps[0].removed_symbols.empty());
}

TEST(ReloadPlanBatch, ReorderingTheListRestartsToo) {
    // The batches are consecutive runs of the list: a new order regroups them.
    const auto p = plan({batch_source({"A", "B", "C"})}, {batch_source({"C", "B", "A"})});
    EXPECT_EQ(p.steps[0].step, ReloadPlan::Step::restart);
}

}  // namespace
}  // namespace mdagg::lifecycle

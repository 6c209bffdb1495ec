// The reload plan: what a SIGHUP changes in the universe and the pollers, computed from the
// running and the reloaded config alone.
#include "reload_plan.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace mdagg::lifecycle {
namespace {

using Strings = std::vector<std::string>;

SourceConfig source(std::string name, Strings symbols, std::size_t host = 0) {
    SourceConfig s;
    s.name = std::move(name);
    s.url_text = "http://venue/q?s={symbol}";
    s.interval = std::chrono::milliseconds(500);
    s.symbols = std::move(symbols);
    s.host = host;
    return s;
}

HostConfig host(std::string name, std::uint16_t port = 80) {
    HostConfig h;
    h.host = std::move(name);
    h.port = port;
    return h;
}

Universe universe_of(const std::vector<SourceConfig>& sources) {
    Universe u;
    for (auto& s : sources) {
        u.sources.push_back(s.name);
        for (auto& sym : s.symbols)
            if (std::find(u.symbols.begin(), u.symbols.end(), sym) == u.symbols.end()) u.symbols.push_back(sym);
    }
    return u;
}

struct ReloadPlanTest : ::testing::Test {
    std::vector<HostConfig> hosts{host("venue")};
    std::vector<SourceConfig> running{source("a", {"AAA", "BBB"}), source("b", {"BBB", "CCC"})};
    Universe universe = universe_of(running);

    ReloadPlan plan(const std::vector<SourceConfig>& loaded, const std::unordered_set<SymbolId>& retiring = {},
                    const std::vector<SymbolId>& held = {}) {
        return plan_reload(running, hosts, loaded, hosts, universe, retiring, held);
    }
};

TEST_F(ReloadPlanTest, TheSameConfigChangesNothing) {
    const auto p = plan(running);
    EXPECT_FALSE(p.universe_changes());
    EXPECT_TRUE(p.removed_sources.empty());
    EXPECT_TRUE(p.dropped_symbols.empty());
    ASSERT_EQ(p.steps.size(), 2u);
    for (auto& step : p.steps) {
        EXPECT_EQ(step.step, ReloadPlan::Step::update);
        EXPECT_TRUE(step.added_symbols.empty());
        EXPECT_TRUE(step.removed_symbols.empty());
    }
}

TEST_F(ReloadPlanTest, SourcesAddedAndRemoved) {
    const auto p = plan({source("b", {"BBB", "CCC"}), source("c", {"CCC", "DDD", "EEE"})});
    EXPECT_EQ(p.removed_sources, Strings{"a"});
    EXPECT_EQ(p.new_sources, Strings{"c"});
    EXPECT_EQ(p.new_symbols, (Strings{"DDD", "EEE"}));
    ASSERT_EQ(p.steps.size(), 2u);
    EXPECT_EQ(p.steps[0].step, ReloadPlan::Step::update);
    EXPECT_EQ(p.steps[0].source, 0u);
    EXPECT_EQ(p.steps[1].step, ReloadPlan::Step::add);
    EXPECT_EQ(p.steps[1].source, 1u);
    EXPECT_EQ(p.dropped_symbols, Strings{"AAA"}) << "BBB is still polled from b";
}

TEST_F(ReloadPlanTest, SymbolsAddedAndRemovedInPlace) {
    const auto p = plan({source("a", {"BBB", "ZZZ", "YYY"}), source("b", {"BBB", "CCC"})});
    ASSERT_EQ(p.steps.size(), 2u);
    EXPECT_EQ(p.steps[0].step, ReloadPlan::Step::update);
    EXPECT_EQ(p.steps[0].added_symbols, (Strings{"ZZZ", "YYY"}));
    EXPECT_EQ(p.steps[0].removed_symbols, Strings{"AAA"});
    EXPECT_EQ(p.new_symbols, (Strings{"ZZZ", "YYY"}));
    EXPECT_TRUE(p.new_sources.empty());
    EXPECT_EQ(p.dropped_symbols, Strings{"AAA"});
}

TEST_F(ReloadPlanTest, TagsAndMaxInFlightApplyInPlace) {
    auto loaded = running;
    loaded[0].tags = {"nyse"};
    loaded[0].symbol_tags["AAA"] = {"tech"};
    loaded[0].max_in_flight = 1;
    const auto p = plan(loaded);
    EXPECT_EQ(p.steps[0].step, ReloadPlan::Step::update);
    EXPECT_FALSE(source_changed(running[0], hosts[0], loaded[0], hosts[0]));
}

TEST_F(ReloadPlanTest, AnyOtherSettingRestartsTheSource) {
    auto loaded = running;
    loaded[1].interval = std::chrono::seconds(1);
    const auto p = plan(loaded);
    EXPECT_EQ(p.steps[0].step, ReloadPlan::Step::update);
    EXPECT_EQ(p.steps[1].step, ReloadPlan::Step::restart);
}

TEST_F(ReloadPlanTest, AnotherHostEntryRestartsTheSourceWhereverItSits) {
    // The same host moved to another index is no change; another host or port is.
    const std::vector<HostConfig> moved{host("other"), host("venue")};
    auto loaded = running;
    for (auto& s : loaded) s.host = 1;
    auto p = plan_reload(running, hosts, loaded, moved, universe, {}, {});
    EXPECT_EQ(p.steps[0].step, ReloadPlan::Step::update);
    const std::vector<HostConfig> other_port{host("venue", 8080)};
    p = plan_reload(running, hosts, running, other_port, universe, {}, {});
    EXPECT_EQ(p.steps[0].step, ReloadPlan::Step::restart);
    EXPECT_EQ(p.steps[1].step, ReloadPlan::Step::restart);
}

TEST_F(ReloadPlanTest, ARetiringSymbolIsReleasedOnceNoPollerHoldsIt) {
    // AAA (id 0) was removed by an earlier reload.
    running = {source("a", {"BBB"}), source("b", {"BBB", "CCC"})};
    const std::unordered_set<SymbolId> retiring{0};
    auto p = plan(running, retiring, /*held=*/{0, 1, 2});
    EXPECT_TRUE(p.symbols.release.empty()) << "a retired poller still holds it";
    EXPECT_TRUE(p.symbols.retiring.contains(0));
    EXPECT_FALSE(p.universe_changes());

    p = plan(running, retiring, /*held=*/{1, 2});
    EXPECT_EQ(p.symbols.release, std::vector<SymbolId>{0});
    EXPECT_TRUE(p.symbols.retiring.empty());
    EXPECT_TRUE(p.universe_changes());
}

TEST_F(ReloadPlanTest, ASymbolThatComesBackWhileRetiringKeepsItsId) {
    running = {source("a", {"BBB"}), source("b", {"BBB", "CCC"})};
    const auto p = plan({source("a", {"AAA", "BBB"}), source("b", {"BBB", "CCC"})}, {0}, {});
    EXPECT_TRUE(p.symbols.release.empty());
    EXPECT_TRUE(p.symbols.retiring.empty());
    EXPECT_TRUE(p.new_symbols.empty()) << "AAA still has its id";
    EXPECT_EQ(p.steps[0].added_symbols, Strings{"AAA"});
}

TEST_F(ReloadPlanTest, ANewSymbolOfTwoSourcesIsAddedOnce) {
    const auto p = plan({source("a", {"AAA", "NEW"}), source("b", {"NEW", "CCC", "BBB"}), source("c", {"NEW"})});
    EXPECT_EQ(p.new_symbols, Strings{"NEW"});
    EXPECT_EQ(p.new_sources, Strings{"c"});
    EXPECT_TRUE(p.dropped_symbols.empty());
}

}  // namespace
}  // namespace mdagg::lifecycle

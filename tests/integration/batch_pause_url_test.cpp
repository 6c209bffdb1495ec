// Admin pause of one member of a `{symbols}` batch: the venue is asked for less. The simulator
// (--record-headers) reports the query it last received; the paused symbol leaves it and comes
// back on resume, while the other members keep being polled.
#include "batch_support.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

using namespace std::chrono_literals;
using harness::completed_of;
using harness::start_batch_daemon;
using harness::TempDir;
using harness::wait_until;

namespace {

// The `symbols` parameter of the last request the simulator received, and how many it has had.
struct Asked {
    std::string last;
    std::uint64_t count = 0;
};
Asked asked(int sim_port) {
    const auto stats = harness::http_request(sim_port, "GET", "/stats").json();
    Asked a;
    if (!stats.contains("query") || !stats["query"].contains("symbols")) return a;
    a.last = stats["query"]["symbols"]["last"].get<std::string>();
    a.count = stats["query"]["symbols"]["count"].get<std::uint64_t>();
    return a;
}

// The simulator's bookTicker batch, its symbols named in the query joined by commas.
const std::string joined_by_comma = "{ items: \"\", symbol: /symbol, join: \",\" }";

bool lists(const std::string& query, const std::string& symbol) {
    return ("," + query + ",").find("," + symbol + ",") != std::string::npos;
}

}  // namespace

TEST(BatchPauseUrl, APausedMemberLeavesTheRequestAndResumeAsksForItAgain) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "5", "--record-headers"});
    harness::DaemonConfig c = harness::every_50ms(sim, 5);
    auto [daemon, admin] = start_batch_daemon(dir, c, "/batch/bookTicker?symbols={symbols}", joined_by_comma);

    ASSERT_TRUE(wait_until([&] { return completed_of(admin, "STOCK_1") >= 2; }, 30s)) << daemon->stdout_text().substr(0, 4000);
    EXPECT_EQ(asked(sim.port).last, "STOCK_0,STOCK_1,STOCK_2,STOCK_3,STOCK_4");

    const auto paused = harness::http_request(admin, "POST", "/admin/pause", R"({"symbols": ["STOCK_1"]})").json();
    ASSERT_EQ(paused["changed"], 1);
    // From the next poll on, the request names the other four only; the batch keeps polling.
    ASSERT_TRUE(wait_until([&] { return asked(sim.port).last == "STOCK_0,STOCK_2,STOCK_3,STOCK_4"; }, 30s))
        << asked(sim.port).last;
    const Asked after_pause = asked(sim.port);
    const auto other = completed_of(admin, "STOCK_2");
    ASSERT_TRUE(wait_until([&] { return asked(sim.port).count >= after_pause.count + 5; }, 30s));
    EXPECT_FALSE(lists(asked(sim.port).last, "STOCK_1"));
    EXPECT_TRUE(wait_until([&] { return completed_of(admin, "STOCK_2") >= other + 3; }, 30s));
    // Not asked for, so not an entry the answer lacks: no `missing` counted for it.
    EXPECT_EQ(harness::metric_or_zero(admin, R"(mdagg_source_batch_entries_total{source="sim",outcome="missing"})"), 0);
    const auto at_pause = completed_of(admin, "STOCK_1");

    const auto resumed = harness::http_request(admin, "POST", "/admin/resume", R"({"symbols": ["STOCK_1"]})").json();
    ASSERT_EQ(resumed["changed"], 1);
    ASSERT_TRUE(wait_until([&] { return asked(sim.port).last == "STOCK_0,STOCK_1,STOCK_2,STOCK_3,STOCK_4"; }, 30s))
        << asked(sim.port).last;
    ASSERT_TRUE(wait_until([&] { return completed_of(admin, "STOCK_1") >= at_pause + 3; }, 30s));

    daemon->signal(SIGTERM);
    EXPECT_EQ(daemon->wait(20s), 0);
    harness::expect_seqs_increase(harness::check_output(dir));
}

// Batch members keep a single poller's per-symbol state: their own series in /metrics
// (admin.symbol_metrics) and, when one stops getting quotes (here: paused), a stale mark for
// it alone in the output.
TEST(BatchPauseUrl, MembersHaveTheirOwnSymbolMetricsAndStaleMarks) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "3"});
    harness::DaemonConfig c = harness::every_50ms(sim, 3);
    c.source_extra += "    stale_after: 1s\n";
    auto [daemon, admin] = start_batch_daemon(dir, c, "/batch/bookTicker?symbols={symbols}", joined_by_comma, {},
                                              ", symbol_metrics: [\"STOCK_*\"]");
    const std::string completed_2 = R"(mdagg_symbol_polls_total{source="sim",symbol="STOCK_2",outcome="completed"})";
    ASSERT_TRUE(wait_until([&] { return harness::metric_or_zero(admin, completed_2) >= 3; }, 30s))
        << harness::http_request(admin, "GET", "/metrics").body.substr(0, 4000);

    ASSERT_EQ(harness::http_request(admin, "POST", "/admin/pause", R"({"symbols": ["STOCK_1"]})").json()["changed"], 1);
    // The paused member alone goes stale: its mark reaches the events stream.
    const auto stale_mark_written = [&] {
        for (const auto& f : std::filesystem::directory_iterator(dir.path() / "out")) {
            if (f.path().filename().string().rfind("events-", 0) != 0) continue;
            std::stringstream events;
            events << std::ifstream(f.path()).rdbuf();
            if (events.str().find(R"("symbol":"STOCK_1","stale":true)") != std::string::npos) return true;
        }
        return false;
    };
    ASSERT_TRUE(wait_until(stale_mark_written, 30s));
    daemon->signal(SIGTERM);
    ASSERT_EQ(daemon->wait(20s), 0);
    const auto out = harness::check_output(dir);
    EXPECT_EQ(out.stale_symbols, std::set<std::string>{"STOCK_1"});
}

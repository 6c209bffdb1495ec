// Batch endpoints end to end: the real mdagg polls the real mdagg-sim's batch shapes
// (docs/configuration.md, Batch endpoints; docs/simulator.md, Batch answers).
#include "batch_support.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <optional>
#include <regex>

using namespace std::chrono_literals;
using harness::completed_of;
using harness::start_batch_daemon;
using harness::metric_or_zero;
using harness::metric;
using harness::TempDir;
using harness::wait_until;

namespace {

double completed_polls(int admin) {
    return metric_or_zero(admin, R"(mdagg_source_polls_total{source="sim",outcome="completed"})");
}

// SIGTERM: the daemon must exit 0 within 20 s.
::testing::AssertionResult ExitsCleanlyOnSigterm(harness::Process& daemon) {
    daemon.signal(SIGTERM);
    const std::optional<int> status = daemon.wait(20s);
    if (status == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "exit status " << (status ? std::to_string(*status) : "none (still running)")
                                         << "\n" << daemon.stdout_text().substr(0, 4000);
}

}  // namespace

// 2,000 symbols in 20 requests of 100 every 50 ms (Binance's symbols=["A","B"] array), then
// SIGTERM: per symbol, every entry the simulator wrote is one quote record, in seq order.
TEST(Batch, TwoThousandSymbolsInBatchesOfHundredLoseAndRepeatNothing) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "2000"});
    harness::DaemonConfig c = harness::every_50ms(sim, 2000);
    c.grace = "5s";
    auto [daemon, admin] = start_batch_daemon(dir, c, "/batch/bookTicker?symbols={symbols}",
                                              "{ items: \"\", symbol: /symbol, size: 100, format: json }");
    // The task table: one row per symbol, each naming its batch of 100.
    const auto tasks = harness::http_request(admin, "GET", "/debug/tasks").json();
    ASSERT_EQ(tasks["count"], 2000) << tasks.dump().substr(0, 2000);
    EXPECT_EQ(tasks["tasks"][0]["batch_symbols"], 100);
    ASSERT_TRUE(wait_until([&] { return completed_polls(admin) >= 200; }, 30s)) << daemon->stdout_text().substr(0, 4000);
    EXPECT_EQ(metric_or_zero(admin, R"(mdagg_source_batch_entries_total{source="sim",outcome="missing"})"), 0);
    EXPECT_EQ(metric_or_zero(admin, R"(mdagg_source_batch_entries_total{source="sim",outcome="unknown"})"), 0);

    ASSERT_TRUE(ExitsCleanlyOnSigterm(*daemon));
    const auto stats = stop_sim(sim);
    const auto out = harness::check_output(dir);
    auto done = harness::find_log(*daemon, "drain complete");
    ASSERT_TRUE(done) << daemon->stdout_text().substr(0, 4000);
    EXPECT_EQ((*done)["quotes_accepted"].get<std::size_t>(), out.quotes);
    // A request the daemon gave up on (timed out, or cancelled by the drain) after the
    // simulator had answered loses that answer's entries: at most one per symbol per such poll.
    const auto gave_up = (*done)["polls_timed_out"].get<std::size_t>() + (*done)["polls_cancelled"].get<std::size_t>();
    const auto& per_symbol = stats["per_symbol"];
    ASSERT_EQ(per_symbol.size(), 2000u);
    std::size_t differing = 0;
    for (auto it = per_symbol.begin(); it != per_symbol.end(); ++it) {
        const auto written = it.value().get<std::size_t>();
        const auto found = out.seqs.find(it.key());
        const std::size_t records = found == out.seqs.end() ? 0 : found->second.size();
        ASSERT_GT(written, 0u) << it.key();
        ASSERT_LE(records, written) << it.key() << ": quotes the simulator never sent";
        if (records != written) {
            ++differing;
            EXPECT_LE(written - records, gave_up) << it.key();
        }
    }
    if (gave_up == 0) {
        EXPECT_EQ(differing, 0u);
    }
    harness::expect_seqs_increase(out);
}

// OKX-like: one request for every instrument; the configured symbols are picked out, the
// others counted as unknown, a configured symbol the venue lacks as missing, and a fault on
// one symbol spoils that entry alone.
TEST(Batch, AllInstrumentsAnswerCountsUnknownAndMissingAndIsolatesABadEntry) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "50", "--control", "127.0.0.1:0"});
    harness::sim_add_fault(sim.control_port, {{"kind", "malformed"}, {"symbols", {"STOCK_3"}}});
    harness::DaemonConfig c;
    c.port = sim.port;
    c.symbols = 10;  // STOCK_0 .. STOCK_9 of the 50
    c.interval = "100ms";
    c.source_extra = "    success: { pointer: /code, equals: \"0\" }\n";
    // The fields of an OKX entry, and one symbol the simulator does not have.
    const auto okx_entries = [](std::string yaml) {
        yaml = std::regex_replace(yaml, std::regex("symbols: \\{ prefix: STOCK_, count: 10 \\}"),
                                  "symbols: [STOCK_0, STOCK_1, STOCK_2, STOCK_3, STOCK_4, NOT_THERE]");
        yaml = std::regex_replace(yaml, std::regex("      symbol: /symbol\n"), "");
        yaml = std::regex_replace(yaml, std::regex("/bidPrice"), "/bidPx");
        yaml = std::regex_replace(yaml, std::regex("/askPrice"), "/askPx");
        yaml = std::regex_replace(yaml, std::regex("/bidQty"), "/bidSz");
        yaml = std::regex_replace(yaml, std::regex("/askQty"), "/askSz");
        yaml = std::regex_replace(yaml, std::regex("pointer: /time"), "pointer: /ts");
        return yaml;
    };
    auto [daemon, admin] = start_batch_daemon(dir, c, "/batch/tickers", "{ items: /data, symbol: /instId }", okx_entries);
    ASSERT_TRUE(wait_until([&] { return completed_polls(admin) >= 10; }, 30s)) << daemon->stdout_text().substr(0, 4000);
    const std::string text = harness::http_request(admin, "GET", "/metrics").body;
    const double polls = *metric(text, R"(mdagg_source_polls_total{source="sim",outcome="completed"})");
    // 50 entries an answer, 5 of them configured: 45 unknown; NOT_THERE missing from each.
    EXPECT_GE(*metric(text, R"(mdagg_source_batch_entries_total{source="sim",outcome="unknown"})"), 45 * polls);
    EXPECT_GE(*metric(text, R"(mdagg_source_batch_entries_total{source="sim",outcome="missing"})"), polls);
    EXPECT_GE(*metric(text, R"(mdagg_source_poll_errors_total{source="sim",class="mapping"})"), polls);
    EXPECT_EQ(metric(text, R"(mdagg_source_batch_entries_total{source="sim",outcome="duplicate"})"), 0);

    ASSERT_TRUE(ExitsCleanlyOnSigterm(*daemon));
    stop_sim(sim);
    const auto out = harness::check_output(dir);
    for (const char* good : {"STOCK_0", "STOCK_1", "STOCK_2", "STOCK_4"})
        EXPECT_GE(out.seqs.count(good) ? out.seqs.at(good).size() : 0, 5u) << good;
    EXPECT_EQ(out.seqs.count("STOCK_3"), 0u) << "the faulted entry was delivered";
    EXPECT_EQ(out.seqs.count("STOCK_7"), 0u) << "a symbol not configured was delivered";
    EXPECT_EQ(out.seqs.count("NOT_THERE"), 0u);
    harness::expect_seqs_increase(out);
}

// Pausing one member of a batch drops its entries while the others go on; pausing every
// member pauses the request; resume brings the member back.
TEST(Batch, PausingAMemberDropsItsEntriesAndLeavesTheBatchPolling) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "10"});
    harness::DaemonConfig c = harness::every_50ms(sim, 10);
    auto [daemon, admin] = start_batch_daemon(dir, c, "/batch/bookTicker?symbols={symbols}",
                                              "{ items: \"\", symbol: /symbol, join: \",\" }");
    ASSERT_TRUE(wait_until([&] { return completed_of(admin, "STOCK_1") >= 3; }, 30s));
    const auto paused = harness::http_request(admin, "POST", "/admin/pause", R"({"symbols": ["STOCK_1"]})").json();
    EXPECT_EQ(paused["matched"], 1);
    EXPECT_EQ(paused["changed"], 1);
    const auto row = harness::http_request(admin, "GET", "/debug/tasks?symbol=STOCK_1").json();
    EXPECT_EQ(row["tasks"][0]["control"], "paused");
    // A poll in flight when the pause came may still deliver one quote.
    const auto at_pause = completed_of(admin, "STOCK_1") + 1;
    const auto other = completed_of(admin, "STOCK_2");
    ASSERT_TRUE(wait_until([&] { return completed_of(admin, "STOCK_2") >= other + 10; }, 30s));
    EXPECT_LE(completed_of(admin, "STOCK_1"), at_pause);

    const auto resumed = harness::http_request(admin, "POST", "/admin/resume", R"({"symbols": ["STOCK_1"]})").json();
    EXPECT_EQ(resumed["changed"], 1);
    ASSERT_TRUE(wait_until([&] { return completed_of(admin, "STOCK_1") >= at_pause + 3; }, 30s));

    // Every member selected: the request itself pauses (its ticks count as paused).
    const auto all = harness::http_request(admin, "POST", "/admin/pause", R"({"source": "sim"})").json();
    EXPECT_EQ(all["matched"], 10);
    EXPECT_EQ(all["changed"], 10);
    ASSERT_TRUE(wait_until(
        [&] { return metric_or_zero(admin, R"(mdagg_source_paused_ticks_total{source="sim"})") >= 3; }, 30s));

    ASSERT_TRUE(ExitsCleanlyOnSigterm(*daemon));
    stop_sim(sim);
    harness::expect_seqs_increase(harness::check_output(dir));
}

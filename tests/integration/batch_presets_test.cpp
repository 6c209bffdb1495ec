// The batch presets end to end: the real mdagg polls five real mdagg-sim processes, each
// answering one venue's batch endpoint in that venue's shape, with every source configured
// by its preset alone (only the url's host and the host's rate changed); and entries refused
// for their symbol are logged rate-limited.
#include "harness.hpp"
#include "output_checks.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <regex>
#include <sstream>

using namespace std::chrono_literals;
using harness::admin_port_of;
using harness::metric_or_zero;
using harness::metric;
using harness::TempDir;
using harness::wait_until;

namespace {

struct PresetRun {
    std::string preset;
    std::string path;           // the venue's path and query, {symbols} where the preset has it
    int sim_symbols;            // the simulator's instruments (all of them in an all-instrument answer)
    bool exchange_time;         // the preset maps the venue's timestamp
};

const PresetRun runs[] = {
    {"binance_book_ticker_batch", "/api/v3/ticker/bookTicker?symbols={symbols}", 10, false},
    {"kraken_ticker", "/0/public/Ticker?pair={symbols}", 10, false},
    // OKX's real size: 700 instruments, ~230 KB an answer (the preset raises the body limit).
    {"okx_tickers", "/api/v5/market/tickers?instType=SPOT", 700, true},
    {"bybit_tickers", "/v5/market/tickers?category=spot", 30, false},
    {"alpaca_latest_quotes", "/v2/stocks/quotes/latest?symbols={symbols}", 10, true},
};

constexpr int configured = 10;  // STOCK_0 .. STOCK_9 of each simulator

}  // namespace

// Per source and symbol, every entry its simulator wrote is one quote record (nothing lost,
// nothing twice), the prices are the venue's decimals, and the all-instrument answers' other
// entries are counted as unknown.
TEST(BatchPresets, EachPresetPollsItsVenueShapeEndToEnd) {
    TempDir dir;
    ::setenv("APCA_API_KEY_ID", "test-key-id", 1);
    ::setenv("APCA_API_SECRET_KEY", "test-secret", 1);
    std::vector<harness::Sim> sims;
    for (const PresetRun& r : runs) {
        const auto sim_dir = dir.path() / r.preset;  // each simulator's own stdout file
        std::filesystem::create_directories(sim_dir);
        sims.push_back(harness::start_sim(sim_dir, {"--symbols", std::to_string(r.sim_symbols)}));
    }

    std::ostringstream yaml;
    yaml << "shutdown: { grace: 5s, interrupt_grace: 2s }\n"
         << "log: { level: info, summary_every: 1s }\n"
         << "admin: { listen: \"127.0.0.1:0\" }\n"
         << "output: { dir: " << (dir.path() / "out").string() << ", flush_every: 200ms, bar_interval: 1s }\n"
         // The presets' venue limits (Kraken's 1 a second) would make this test slow; the
         // user's host entry overrides rate and burst and the presets fill the rest.
         << "hosts:\n  - { host: 127.0.0.1, rate: 1000, burst: 1000 }\n"
         << "sources:\n";
    for (std::size_t i = 0; i < std::size(runs); ++i) {
        std::string path = runs[i].path;
        yaml << "  - name: " << runs[i].preset << "\n    preset: " << runs[i].preset << "\n    url: \"http://127.0.0.1:"
             << sims[i].port << path << "\"\n    interval: 100ms\n    symbols: { prefix: STOCK_, count: " << configured
             << " }\n";
    }
    const auto config = dir.path() / "mdagg.yaml";
    std::ofstream(config) << yaml.str();

    auto daemon = harness::start_daemon(dir, config);
    const int admin = admin_port_of(*daemon);
    for (const PresetRun& r : runs)
        ASSERT_TRUE(wait_until(
            [&] {
                return metric_or_zero(admin, "mdagg_source_polls_total{source=\"" + r.preset + "\",outcome=\"completed\"}") >= 10;
            },
            30s))
            << r.preset << "\n" << daemon->stdout_text().substr(0, 4000);
    const std::string text = harness::http_request(admin, "GET", "/metrics").body;
    for (const PresetRun& r : runs) {
        SCOPED_TRACE(r.preset);
        const std::string labels = "{source=\"" + r.preset + "\",outcome=\"";
        const double polls = *metric(text, "mdagg_source_polls_total" + labels + "completed\"}");
        EXPECT_EQ(metric(text, "mdagg_source_batch_entries_total" + labels + "unknown\"}").value_or(0),
                  (r.sim_symbols - configured) * polls);
        EXPECT_EQ(metric(text, "mdagg_source_batch_entries_total" + labels + "missing\"}").value_or(0), 0);
    }

    daemon->signal(SIGTERM);
    ASSERT_EQ(daemon->wait(20s), 0) << daemon->stdout_text().substr(0, 4000);
    auto done = harness::find_log(*daemon, "drain complete");
    ASSERT_TRUE(done) << daemon->stdout_text().substr(0, 4000);
    const auto gave_up = (*done)["polls_timed_out"].get<std::size_t>() + (*done)["polls_cancelled"].get<std::size_t>();

    // source -> symbol -> quote records
    std::map<std::string, std::map<std::string, std::vector<nlohmann::json>>> records;
    for (auto& f : harness::read_output(dir.path() / "out"))
        for (auto& r : f.records)
            if (r["type"] == "quote") records[r["source"].get<std::string>()][r["symbol"].get<std::string>()].push_back(r);

    for (std::size_t i = 0; i < std::size(runs); ++i) {
        const PresetRun& run = runs[i];
        SCOPED_TRACE(run.preset);
        const auto stats = harness::stop_sim(sims[i]);
        const auto& per_symbol = stats["per_symbol"];
        for (int s = 0; s < configured; ++s) {
            const std::string symbol = "STOCK_" + std::to_string(s);
            const auto& mine = records[run.preset][symbol];
            const auto written = per_symbol.at(symbol).get<std::size_t>();
            ASSERT_GE(written, 10u) << symbol;
            // A request the daemon gave up on after the simulator had answered loses its entries.
            EXPECT_LE(mine.size(), written) << symbol << ": quotes the simulator never sent";
            EXPECT_GE(mine.size() + gave_up, written) << symbol;
            for (const auto& q : mine) {
                ASSERT_TRUE(q["bid"].is_string() && q["ask"].is_string()) << q.dump();
                EXPECT_LT(std::stod(q["bid"].get<std::string>()), std::stod(q["ask"].get<std::string>())) << q.dump();
                EXPECT_TRUE(q.contains("bid_size") && q.contains("ask_size")) << q.dump();
                EXPECT_EQ(q.contains("exchange_time"), run.exchange_time) << q.dump();
            }
        }
        // Entries not configured are skipped, never delivered.
        if (run.sim_symbols > configured) {
            EXPECT_EQ(records[run.preset].count("STOCK_" + std::to_string(configured)), 0u);
        }
    }
    ::unsetenv("APCA_API_KEY_ID");
    ::unsetenv("APCA_API_SECRET_KEY");
}

// A venue answer with a duplicated symbol and a symbol that is not a string: both refused and
// counted, both logged, once per 10 s window per class (then "suppressed": N), and the other
// entries delivered; the first entry of a duplicated symbol is the one kept.
TEST(BatchPresets, RefusedEntriesAreLoggedRateLimited) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "5", "--control", "127.0.0.1:0"});
    // The simulator's body_error fault serves this body as a 200 to the request for STOCK_0.
    harness::sim_add_fault(sim.control_port,
                           {{"kind", "body_error"},
                            {"status", 200},
                            {"symbols", {"STOCK_0"}},
                            {"body", R"([{"symbol":"STOCK_0","bidPrice":"1.5","askPrice":"2"},)"
                                     R"({"symbol":"STOCK_0","bidPrice":"3","askPrice":"4"},)"
                                     R"({"symbol":7,"bidPrice":"1","askPrice":"2"},)"
                                     R"({"symbol":"STOCK_1","bidPrice":"5","askPrice":"6"}])"}});
    harness::DaemonConfig c;
    c.port = sim.port;
    c.symbols = 2;
    c.interval = "50ms";
    c.source_extra = "    batch: { items: \"\", symbol: /symbol, join: \",\" }\n";
    c.extra = "admin: { listen: \"127.0.0.1:0\" }\n";
    const auto config = harness::write_config(dir.path(), c);
    {
        std::stringstream text;
        text << std::ifstream(config).rdbuf();
        std::ofstream(config) << std::regex_replace(text.str(), std::regex("/quotes/\\{symbol\\}"),
                                                    "/quotes/STOCK_0?symbols={symbols}");
    }
    auto daemon = harness::start_daemon(dir, config);
    const int admin = admin_port_of(*daemon);
    const std::string duplicates = R"(mdagg_source_batch_entries_total{source="sim",outcome="duplicate"})";
    ASSERT_TRUE(wait_until([&] { return metric_or_zero(admin, duplicates) >= 10; }, 30s))
        << daemon->stdout_text().substr(0, 4000);
    const double bad_symbols = metric_or_zero(admin, R"(mdagg_source_batch_entries_total{source="sim",outcome="bad_symbol"})");
    EXPECT_GE(bad_symbols, 10);

    daemon->signal(SIGTERM);
    ASSERT_EQ(daemon->wait(20s), 0) << daemon->stdout_text().substr(0, 4000);
    harness::stop_sim(sim);

    std::map<std::string, std::vector<nlohmann::json>> refused;  // by error class
    for (auto& line : daemon->stdout_json())
        if (line.value("msg", "") == "batch entries refused") refused[line.value("error", "")].push_back(line);
    for (const char* error : {"duplicate_symbol", "symbol_not_string"}) {
        SCOPED_TRACE(error);
        const auto& lines = refused[error];
        // The run is shorter than the window: the first line, then at most the flush at exit
        // with what the window held back.
        ASSERT_GE(lines.size(), 1u) << daemon->stdout_text().substr(0, 4000);
        EXPECT_LE(lines.size(), 2u);
        EXPECT_EQ(lines[0]["level"], "warn");
        EXPECT_EQ(lines[0]["source"], "sim");
        EXPECT_FALSE(lines[0].contains("suppressed"));
        if (std::string(error) == "duplicate_symbol") {
            EXPECT_EQ(lines[0]["symbol"], "STOCK_0");
            EXPECT_EQ(lines[0]["entries"], 1);
        }
        if (lines.size() == 2) {
            EXPECT_GE(lines[1].value("suppressed", 0), 1) << lines[1].dump();
        }
    }
    // The other entries are delivered; of STOCK_0's two, the first.
    std::map<std::string, std::set<std::string>> bids;
    for (auto& f : harness::read_output(dir.path() / "out"))
        for (auto& r : f.records)
            if (r["type"] == "quote") bids[r["symbol"].get<std::string>()].insert(r["bid"].get<std::string>());
    EXPECT_EQ(bids["STOCK_0"], std::set<std::string>{"1.5"});
    EXPECT_EQ(bids["STOCK_1"], std::set<std::string>{"5"});
}

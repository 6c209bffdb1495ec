// Canonical symbols across venues, end to end: three simulators, each polled in another
// venue's URL and body shape (Binance bookTicker, OKX ticker, Coinbase ticker) and each
// spelling the instrument its own way, all configured as one canonical BTC-USD. The real
// output files must show one instrument: quotes under the canonical name with the venue's in
// venue_symbol, one series of bars whose best bid and best ask name their sources.
#include "harness.hpp"
#include "output_checks.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <map>
#include <thread>

using namespace std::chrono_literals;
using harness::TempDir;

namespace {

struct Venue {
    std::string source, prefix, seed, url, fields;
    harness::Sim sim;
    std::string venue_name() const { return prefix + "0"; }  // the simulator's first symbol
};

std::string config_text(const TempDir& dir, const std::vector<Venue>& venues, const std::string& okx_map) {
    std::string y = "shutdown: { grace: 3s }\nlog: { level: info, summary_every: 1s }\n";
    y += std::string("output: { dir: ") + (dir / "out").string() + ", flush_every: 200ms, bar_interval: 1s }\n";
    y += "admin: { listen: \"127.0.0.1:0\" }\nsources:\n";
    for (const Venue& v : venues) {
        y += std::string("  - name: ") + v.source + "\n";
        y += std::string("    url: \"http://127.0.0.1:") + std::to_string(v.sim.port) + v.url + "\"\n";
        y += "    interval: 50ms\n";
        if (v.source == "okx")
            y += std::string("    symbol_map: ") + okx_map + "\n";  // the map is the list
        else if (v.source == "coinbase")
            y += std::string("    symbols: [{ name: BTC-USD, venue: ") + v.venue_name() + " }]\n";
        else
            y += std::string("    symbols:\n      - { name: BTC-USD, venue: ") + v.venue_name() + ", tags: [majors] }\n";
        y += std::string("    fields: ") + v.fields + "\n";
    }
    return y;
}

struct SourceQuotes {
    std::size_t count = 0;
    std::set<std::string> venue_symbols;
    std::string last_bid, last_ask;
    std::vector<long long> seqs;
};

}  // namespace

TEST(Canonical, ThreeVenueShapesAndNamesConsolidateIntoOneInstrument) {
    TempDir dir;
    std::vector<Venue> venues;
    venues.push_back(Venue{"binance", "BTCUSDT", "11", "/api/v3/ticker/bookTicker?symbol={symbol}",
                           "{ symbol: /symbol, bid: /bidPrice, ask: /askPrice, bid_size: /bidQty, ask_size: /askQty, seq: /seq }",
                           {}});
    venues.push_back(Venue{"okx", "BTC-USDT-", "22", "/api/v5/market/ticker?instId={symbol}",
                           "{ symbol: /data/0/instId, bid: /data/0/bidPx, ask: /data/0/askPx, "
                           "exchange_time: { pointer: /data/0/ts, unit: ms }, seq: /data/0/seq }\n"
                           "    success: { pointer: /code, equals: \"0\" }",
                           {}});
    venues.push_back(Venue{"coinbase", "BTC-USD-", "33", "/products/{symbol}/ticker",
                           "{ bid: /bid, ask: /ask, exchange_time: { pointer: /time, unit: rfc3339 }, seq: /trade_id }", {}});
    for (Venue& v : venues)
        v.sim = harness::start_sim(dir.path(), {"--symbols", "2", "--prefix", v.prefix, "--seed", v.seed});
    const std::string okx_map = (dir / "okx.csv").string();
    std::ofstream(okx_map) << "name,venue\nBTC-USD," << venues[1].venue_name() << "\n";
    const auto config = dir / "mdagg.yaml";
    std::ofstream(config) << config_text(dir, venues, okx_map);
    auto daemon = harness::start_daemon(dir, config);

    // Every venue answered a few quotes; the task table shows one instrument, three pollers.
    ASSERT_TRUE(harness::wait_until(
        [&] {
            for (const Venue& v : venues)
                if (harness::sim_stats(v.sim.port)["per_symbol"].value(v.venue_name(), 0) < 10) return false;
            return true;
        },
        15s))
        << daemon->stdout_text();
    const auto listening = harness::find_log(*daemon, "admin listening");
    ASSERT_TRUE(listening) << daemon->stdout_text();
    const int admin_port = (*listening)["port"].get<int>();
    const auto tasks = nlohmann::json::parse(harness::http_get(admin_port, "/debug/tasks?symbol=BTC-USD"));
    ASSERT_EQ(tasks["count"], 3) << tasks.dump();
    std::map<std::string, std::string> task_venue;
    for (const auto& row : tasks["tasks"]) {
        EXPECT_EQ(row["symbol"], "BTC-USD");
        task_venue[row["source"].get<std::string>()] = row["venue_symbol"].get<std::string>();
    }
    for (const Venue& v : venues) EXPECT_EQ(task_venue[v.source], v.venue_name()) << v.source;

    // SIGHUP with OKX's map pointing at its other symbol: that one poller restarts on the new
    // venue name; the instrument and its id stay.
    std::ofstream(okx_map, std::ios::trunc) << "name,venue\nBTC-USD," << venues[1].prefix << "1\n";
    daemon->signal(SIGHUP);
    const auto reloaded = daemon->wait_for_line("msg", "config reloaded", 10s);
    ASSERT_TRUE(reloaded) << daemon->stdout_text();
    EXPECT_EQ((*reloaded)["pollers_restarted"], 1) << reloaded->dump();
    EXPECT_EQ((*reloaded)["pollers_added"], 0) << reloaded->dump();
    EXPECT_EQ((*reloaded)["pollers_removed"], 0) << reloaded->dump();
    const std::string okx_renamed = venues[1].prefix + "1";
    ASSERT_TRUE(harness::wait_until(
        [&] { return harness::sim_stats(venues[1].sim.port)["per_symbol"].value(okx_renamed, 0) >= 10; }, 10s));

    daemon->signal(SIGTERM);
    ASSERT_EQ(daemon->wait(10s), 0) << daemon->stdout_text();

    // The real output files.
    std::map<std::string, SourceQuotes> by_source;
    std::vector<nlohmann::json> bars;
    for (auto& file : harness::read_output(dir / "out"))
        for (auto& r : file.records) {
            if (r["type"] == "bar") {
                bars.push_back(r);
                continue;
            }
            if (r["type"] != "quote") continue;
            EXPECT_EQ(r["symbol"], "BTC-USD") << r.dump();
            SourceQuotes& s = by_source[r["source"].get<std::string>()];
            ++s.count;
            s.venue_symbols.insert(r.value("venue_symbol", ""));
            s.last_bid = r["bid"].get<std::string>();  // one source's quotes are in receive order
            s.last_ask = r["ask"].get<std::string>();
            s.seqs.push_back(r["seq"].get<long long>());
        }
    ASSERT_EQ(by_source.size(), 3u);
    // Each simulator's count of answers is its quote records: nothing lost or duplicated.
    for (const Venue& v : venues) {
        const auto stats = harness::sim_stats(v.sim.port);
        std::size_t answered = 0;
        for (const auto& [name, n] : stats["per_symbol"].items()) answered += n.get<std::size_t>();
        EXPECT_EQ(by_source[v.source].count, answered) << v.source;
    }
    EXPECT_EQ(by_source["binance"].venue_symbols, (std::set<std::string>{"BTCUSDT0"}));
    EXPECT_EQ(by_source["coinbase"].venue_symbols, (std::set<std::string>{"BTC-USD-0"}));
    EXPECT_EQ(by_source["okx"].venue_symbols, (std::set<std::string>{"BTC-USDT-0", "BTC-USDT-1"}))
        << "the venue name before and after the reload";
    for (const auto& [source, s] : by_source)
        for (std::size_t i = 1; i < s.seqs.size(); ++i)
            if (source != "okx") {  // okx's seqs restart on its other symbol
                ASSERT_LT(s.seqs[i - 1], s.seqs[i]) << source;
            }

    // One series of bars, under the canonical name. The last one closed at the drain, after
    // every quote: its best bid/offer is the best of each venue's last quote, with that side's
    // venue named. The simulators' prices start dollars apart, so the sides are clear.
    ASSERT_FALSE(bars.empty());
    for (const auto& bar : bars) EXPECT_EQ(bar["symbol"], "BTC-USD") << bar.dump();
    std::string bid_source, ask_source;
    for (const auto& [source, s] : by_source) {
        if (bid_source.empty() || std::stod(s.last_bid) > std::stod(by_source[bid_source].last_bid)) bid_source = source;
        if (ask_source.empty() || std::stod(s.last_ask) < std::stod(by_source[ask_source].last_ask)) ask_source = source;
    }
    const auto& last = bars.back();
    EXPECT_EQ(last["best_bid_source"], bid_source) << last.dump();
    EXPECT_EQ(last["best_bid"], by_source[bid_source].last_bid) << last.dump();
    EXPECT_EQ(last["best_ask_source"], ask_source) << last.dump();
    EXPECT_EQ(last["best_ask"], by_source[ask_source].last_ask) << last.dump();
    EXPECT_NE(bid_source, ask_source) << "the seeds give the two sides to different venues";
}

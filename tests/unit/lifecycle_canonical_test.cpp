// Canonical symbols across venues, from the config to the records: three venues that spell one
// instrument three ways share one symbol id, so the aggregator consolidates them, and each
// quote record still says how its venue spells it. And what a reload does with a venue name.
#include "reload_plan.hpp"

#include <mdagg/aggregate.hpp>
#include <mdagg/config.hpp>
#include <mdagg/lifecycle.hpp>
#include <mdagg/sink.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mdagg::lifecycle {
namespace {

// Binance, OKX and Coinbase shapes, one canonical name.
constexpr std::string_view three_venues = R"(sources:
  - name: binance
    url: "http://127.0.0.1:8081/api/v3/ticker/bookTicker?symbol={symbol}"
    interval: 1s
    symbols: [{ name: BTC-USD, venue: BTCUSDT }, ETHUSDT]
    fields: { symbol: /symbol, bid: /bidPrice, ask: /askPrice }
  - name: okx
    url: "http://127.0.0.1:8082/api/v5/market/ticker?instId={symbol}"
    interval: 1s
    symbols: [{ name: BTC-USD, venue: BTC-USDT }]
    fields: { symbol: /data/0/instId, bid: /data/0/bidPx, ask: /data/0/askPx }
  - name: coinbase
    url: "http://127.0.0.1:8083/products/{symbol}/ticker"
    interval: 1s
    symbols: [BTC-USD]
    fields: { bid: /bid, ask: /ask }
)";

struct RecordingSink : RecordSink {
    std::vector<Quote> quotes;
    std::vector<Bar> bars;
    void on_quote(const Quote& q) override { quotes.push_back(q); }
    void on_bar(const Bar& b) override { bars.push_back(b); }
    void on_stale(const StaleMark&) override {}
};

Quote quote(SourceId source, SymbolId symbol, const char* bid, const char* ask, std::int64_t t) {
    Quote q;
    q.source = source;
    q.symbol = symbol;
    q.bid = *Decimal::parse(bid);
    q.ask = *Decimal::parse(ask);
    q.receive_time_ns = t;
    return q;
}

TEST(CanonicalSymbols, ThreeVenueNamesConsolidateIntoOneBestBidOfferWithPerSideSources) {
    const Config config = parse_config(three_venues, "t.yaml");
    const Universe universe = make_universe(config);
    ASSERT_EQ(universe.symbols, (std::vector<std::string>{"BTC-USD", "ETHUSDT"})) << "one id for BTC-USD";
    const SymbolId btc = 0;
    EXPECT_EQ(universe.venue_symbols.size(), 2u) << "coinbase calls it BTC-USD itself";

    RecordingSink sink;
    constexpr std::int64_t sec = 1'000'000'000, t0 = 1'764'000'000 * sec;
    Aggregator agg(universe, sec, sink, true);
    agg.on_quote(quote(0, btc, "66260.10", "66260.90", t0 + 1));  // binance
    agg.on_quote(quote(1, btc, "66260.20", "66260.30", t0 + 2));  // okx: best ask
    agg.on_quote(quote(2, btc, "66260.25", "66260.40", t0 + 3));  // coinbase: best bid
    const BestBidOffer best = agg.best(btc);
    ASSERT_TRUE(best.has_bid && best.has_ask);
    EXPECT_EQ(best.bid.to_string(), "66260.25");
    EXPECT_EQ(universe.sources[best.bid_source], "coinbase");
    EXPECT_EQ(best.ask.to_string(), "66260.30");
    EXPECT_EQ(universe.sources[best.ask_source], "okx");

    agg.close_all_bars();
    ASSERT_EQ(sink.bars.size(), 1u) << "one bar for the instrument, not one per venue name";
    EXPECT_EQ(sink.bars[0].updates, 3u);

    // The records: the canonical name always, the venue's where it differs.
    RecordFormatter format(universe);
    std::vector<std::string> lines(3), csv(3);
    for (std::size_t i = 0; i < 3; ++i) {
        format.quote_json(lines[i], sink.quotes[i]);
        format.quote_csv(csv[i], sink.quotes[i]);
    }
    EXPECT_NE(lines[0].find(R"("source":"binance","symbol":"BTC-USD","venue_symbol":"BTCUSDT",)"), std::string::npos) << lines[0];
    EXPECT_NE(lines[1].find(R"("source":"okx","symbol":"BTC-USD","venue_symbol":"BTC-USDT",)"), std::string::npos) << lines[1];
    EXPECT_NE(lines[2].find(R"("source":"coinbase","symbol":"BTC-USD","bid")"), std::string::npos) << lines[2];
    EXPECT_EQ(lines[2].find("venue_symbol"), std::string::npos) << lines[2];
    EXPECT_TRUE(csv[0].starts_with("binance,BTC-USD,66260.10,")) << csv[0];
    EXPECT_TRUE(csv[0].ends_with(",BTCUSDT,\n")) << csv[0];
    EXPECT_TRUE(csv[2].ends_with(",,\n")) << "an empty venue_symbol column: " << csv[2];
}

SourceConfig source(std::string name, std::vector<std::string> symbols) {
    SourceConfig s;
    s.name = std::move(name);
    s.url_text = "http://venue/q?s={symbol}";
    s.interval = std::chrono::milliseconds(500);
    s.symbols = std::move(symbols);
    return s;
}

TEST(CanonicalSymbols, AReloadThatRenamesAVenueSymbolRestartsThatPollerOnly) {
    SourceConfig was = source("okx", {"BTC-USD", "ETH-USD", "SOL-USD"});
    was.venue_symbols = {{"BTC-USD", "BTC-USDT"}, {"ETH-USD", "ETH-USDT"}};
    SourceConfig now = was;
    now.venue_symbols = {{"BTC-USD", "BTC-USDC"}, {"SOL-USD", "SOL-USDT"}};  // renamed, dropped, added
    now.symbol_map = "okx.csv";                                               // how it is given: no change of its own
    const std::vector<HostConfig> hosts(1);
    Universe universe;
    universe.sources = {"okx"};
    universe.symbols = was.symbols;
    const ReloadPlan plan = plan_reload({was}, hosts, {now}, hosts, universe, {}, {0, 1, 2});
    ASSERT_EQ(plan.steps.size(), 1u);
    EXPECT_EQ(plan.steps[0].step, ReloadPlan::Step::update) << "the source's other pollers keep their connections";
    EXPECT_EQ(plan.steps[0].renamed_symbols, (std::vector<std::string>{"BTC-USD", "ETH-USD", "SOL-USD"}));
    EXPECT_TRUE(plan.steps[0].added_symbols.empty());
    EXPECT_TRUE(plan.steps[0].removed_symbols.empty());
    EXPECT_FALSE(plan.universe_changes()) << "the canonical names and their ids stay";

    const ReloadPlan same = plan_reload({was}, hosts, {was}, hosts, universe, {}, {0, 1, 2});
    EXPECT_TRUE(same.steps[0].renamed_symbols.empty());

    // The records' venue names follow the reloaded config.
    set_venue_symbols(universe, {now});
    ASSERT_NE(universe.venue_symbol(0, 0), nullptr);
    EXPECT_EQ(*universe.venue_symbol(0, 0), "BTC-USDC");
    EXPECT_EQ(universe.venue_symbol(0, 1), nullptr);
    EXPECT_EQ(*universe.venue_symbol(0, 2), "SOL-USDT");
}

}  // namespace
}  // namespace mdagg::lifecycle

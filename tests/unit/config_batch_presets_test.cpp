// The batch presets (config/presets/*.yaml): each one's request (url, batch block, weight, host
// limits) and each one mapping a real-shaped venue answer to exact quotes per symbol through
// the BatchMapper its pollers build, table-driven: one row per preset.
#include "config_test_helpers.hpp"
#include "presets.hpp"

#include <mdagg/mapping.hpp>

#include <cstdlib>
#include <sstream>

namespace mdagg {
namespace {

// The secrets alpaca_latest_quotes reads.
struct AlpacaSecrets {
    AlpacaSecrets() {
        ::setenv("APCA_API_KEY_ID", "ak-id-2", 1);
        ::setenv("APCA_API_SECRET_KEY", "ak-secret-3", 1);
    }
    ~AlpacaSecrets() {
        ::unsetenv("APCA_API_KEY_ID");
        ::unsetenv("APCA_API_SECRET_KEY");
    }
    AlpacaSecrets(const AlpacaSecrets&) = delete;
    AlpacaSecrets& operator=(const AlpacaSecrets&) = delete;
};

std::string batch_source(std::string_view preset, std::string_view symbols) {
    std::string out = "sources:\n  - name: s\n    preset: ";
    out.append(preset).append("\n    interval: 1s\n    symbols: ").append(symbols).append("\noutput: { dir: ./out }\n");
    return out;
}

struct Expected {
    std::string symbol;  // as the venue spells it
    std::string bid, ask, bid_size, ask_size;  // exact decimals; "" = no size
    std::int64_t time_ns = 0;
};

struct Row {
    std::string preset;
    std::string symbols;  // the source's `symbols:` as YAML
    std::string target;   // the first request's target, {symbols} spelled
    unsigned cost;
    double rate;
    std::string body;     // a real-shaped answer
    std::vector<Expected> quotes;
    std::size_t unknown, missing;
    std::string error_body;  // the venue's error answer: body_error for the whole request
};

// Answers shaped as the venues document them (field names, nesting, number types and the
// venues' decimal formats: Binance 8 places, Kraken 5 for prices and 8 for volumes), including
// fields the presets do not read, a symbol not configured and, where the venue lists only what
// it was asked for, a configured one it left out. Sources: each preset's documentation page
// (cited in config/presets/*.yaml); Kraken's XXBTZUSD entry is its documented example verbatim.
// Binance never answers a symbol it was not asked for: ETHBTC there is only the skip path.
const std::vector<Row>& rows() {
    static const std::vector<Row> table = {
        {"binance_book_ticker_batch", "[BTCUSDT, LTCBTC, NOPE]",
         "/api/v3/ticker/bookTicker?symbols=%5B%22BTCUSDT%22,%22LTCBTC%22,%22NOPE%22%5D", 4, 100,
         R"([{"symbol":"LTCBTC","bidPrice":"4.00000000","bidQty":"431.00000000","askPrice":"4.00000200","askQty":"9.00000000"},)"
         R"({"symbol":"BTCUSDT","bidPrice":"66260.20000000","bidQty":"0.43000000","askPrice":"66260.30000000","askQty":"0.22000000"},)"
         R"({"symbol":"ETHBTC","bidPrice":"0.05000000","bidQty":"1.00000000","askPrice":"0.06000000","askQty":"1.00000000"}])",
         {{"BTCUSDT", "66260.20000000", "66260.30000000", "0.43000000", "0.22000000", 0},
          {"LTCBTC", "4.00000000", "4.00000200", "431.00000000", "9.00000000", 0}},
         1, 1, R"({"code":-1121,"msg":"Invalid symbol."})"},
        {"kraken_ticker", "[{ name: BTC-USD, venue: XXBTZUSD }, { name: ETH-USD, venue: XETHZUSD }]",
         "/0/public/Ticker?pair=XXBTZUSD,XETHZUSD", 1, 1,
         R"({"error":[],"result":{"XXBTZUSD":{"a":["30300.10000","1","1.000"],"b":["30300.00000","1","1.000"],)"
         R"("c":["30303.20000","0.00067643"],"v":["4083.67001100","4412.73601799"],"p":["30706.77771","30689.13205"],"t":[34619,38907],)"
         R"("l":["29868.30000","29868.30000"],"h":["31631.00000","31631.00000"],"o":"30502.80000"},)"
         R"("XETHZUSD":{"a":["1803.56000","4","4.000"],"b":["1803.55000","12","12.000"],"c":["1803.56000","0.02"],)"
         R"("v":["10.10000000","20.20000000"],"p":["1800.10000","1801.20000"],"t":[10,20],"l":["1790.00000","1790.00000"],"h":["1810.00000","1810.00000"],"o":"1800.00000"}}})",
         {{"XXBTZUSD", "30300.00000", "30300.10000", "1.000", "1.000", 0},
          {"XETHZUSD", "1803.55000", "1803.56000", "12.000", "4.000", 0}},
         0, 0, R"({"error":["EAPI:Rate limit exceeded"]})"},
        {"okx_tickers", "[BTC-USDT, { name: ETH-USD, venue: ETH-USDT }, NOT-LISTED]",
         "/api/v5/market/tickers?instType=SPOT", 1, 10,
         R"({"code":"0","msg":"","data":[)"
         R"({"instType":"SPOT","instId":"LTC-USDT","last":"9.999","lastSz":"0.1","askPx":"10.0","askSz":"1","bidPx":"9.99","bidSz":"2",)"
         R"("open24h":"9","high24h":"11","low24h":"8","volCcy24h":"100","vol24h":"10","ts":"1774805577000","sodUtc0":"9.5","sodUtc8":"9.6"},)"
         R"({"instType":"SPOT","instId":"BTC-USDT","last":"66256.8","lastSz":"0.001","askPx":"66260.3","askSz":"0.22","bidPx":"66260.2","bidSz":"0.43",)"
         R"("open24h":"65000","high24h":"67000","low24h":"64000","volCcy24h":"123","vol24h":"0.1","ts":"1774805577108","sodUtc0":"65100","sodUtc8":"65200"},)"
         R"({"instType":"SPOT","instId":"ETH-USDT","last":"1803.5","lastSz":"0.1","askPx":"1803.6","askSz":"3.5","bidPx":"1803.4","bidSz":"7",)"
         R"("open24h":"1800","high24h":"1810","low24h":"1790","volCcy24h":"9","vol24h":"8","ts":"1774805577109","sodUtc0":"1801","sodUtc8":"1802"}]})",
         {{"BTC-USDT", "66260.2", "66260.3", "0.43", "0.22", 1774805577108000000},
          {"ETH-USDT", "1803.4", "1803.6", "7", "3.5", 1774805577109000000}},
         1, 1, R"({"code":"50011","msg":"Too Many Requests","data":[]})"},
        {"bybit_tickers", "[BTCUSDT, ETHUSDT]", "/v5/market/tickers?category=spot", 1, 120,
         R"({"retCode":0,"retMsg":"OK","result":{"category":"spot","list":[)"
         R"({"symbol":"BTCUSDT","bid1Price":"66782.2","bid1Size":"0.46","ask1Price":"66782.3","ask1Size":"1.21","lastPrice":"66782.2",)"
         R"("prevPrice24h":"66000","price24hPcnt":"0.0118","highPrice24h":"67000","lowPrice24h":"65800","turnover24h":"1000","volume24h":"0.02","usdIndexPrice":"66780.1"},)"
         R"({"symbol":"SOLUSDT","bid1Price":"150.1","bid1Size":"3","ask1Price":"150.2","ask1Size":"4","lastPrice":"150.1",)"
         R"("prevPrice24h":"149","price24hPcnt":"0.007","highPrice24h":"151","lowPrice24h":"148","turnover24h":"10","volume24h":"0.1","usdIndexPrice":""},)"
         R"({"symbol":"ETHUSDT","bid1Price":"1803.41","bid1Size":"7.5","ask1Price":"1803.42","ask1Size":"0.5","lastPrice":"1803.41",)"
         R"("prevPrice24h":"1800","price24hPcnt":"0.002","highPrice24h":"1810","lowPrice24h":"1790","turnover24h":"20","volume24h":"0.2","usdIndexPrice":"1803.4"}]},)"
         R"("retExtInfo":{},"time":1775239921132})",
         {{"BTCUSDT", "66782.2", "66782.3", "0.46", "1.21", 0}, {"ETHUSDT", "1803.41", "1803.42", "7.5", "0.5", 0}},
         1, 0, R"({"retCode":10006,"retMsg":"Too many visits!","result":{},"retExtInfo":{},"time":1775239921132})"},
        // MSFT has no bid: Alpaca sends bp 0 (and bs 0), which is "no quote on that side".
        {"alpaca_latest_quotes", "[AAPL, MSFT, TSLA]", "/v2/stocks/quotes/latest?symbols=AAPL,MSFT,TSLA", 1, 3.3,
         R"({"quotes":{"AAPL":{"ap":172.7,"as":1,"ax":"V","bp":172.6,"bs":2,"bx":"V","c":["R"],"t":"2022-08-17T10:09:34.055031265Z","z":"C"},)"
         R"("MSFT":{"ap":290.52,"as":3,"ax":"V","bp":0,"bs":0,"bx":" ","c":["R"],"t":"2022-08-17T10:09:35.1Z","z":"C"}}})",
         {{"AAPL", "172.6", "172.7", "2", "1", 1660730974055031265}, {"MSFT", "0", "290.52", "", "3", 1660730975100000000}},
         0, 1, R"({"message":"invalid symbol: TS LA"})"},
    };
    return table;
}

const SourceConfig& source_of(const Config& c) { return c.sources.at(0); }

std::vector<std::string> venue_names(const SourceConfig& s) {
    std::vector<std::string> out;
    for (const std::string& name : s.symbols) out.push_back(s.venue_symbol(name));
    return out;
}

}  // namespace

TEST(ConfigBatchPresets, EachAsksTheVenuesBatchEndpointWithItsWeightAndLimits) {
    const AlpacaSecrets secrets;
    for (const Row& row : rows()) {
        SCOPED_TRACE(row.preset);
        Config c;
        ASSERT_NO_THROW(c = parse(batch_source(row.preset, row.symbols))) << error_of(batch_source(row.preset, row.symbols));
        const SourceConfig& s = source_of(c);
        ASSERT_TRUE(s.batch);
        EXPECT_EQ(s.url.scheme, "https");
        EXPECT_EQ(s.cost, row.cost);
        EXPECT_EQ(c.hosts.at(s.host).rate, row.rate);
        EXPECT_EQ(s.request_count(), 1u) << "a handful of symbols is one request";
        const std::string target = s.batch->symbols_in_url ? s.url.target_for_symbols(venue_names(s), *s.batch)
                                                           : s.url.target_template;
        EXPECT_EQ(target, row.target);
        EXPECT_TRUE(s.fields.symbol.empty()) << "entries are routed by batch.symbol, not checked by fields.symbol";
        // An answer for every instrument (OKX's ~250 KB) or every pair must fit the body limit.
        if (s.batch->size == 0) {
            EXPECT_GE(s.max_body_bytes, 1024u * 1024u);
        }
    }
}

TEST(ConfigBatchPresets, EachMapsARealShapedAnswerToExactQuotesPerSymbol) {
    const AlpacaSecrets secrets;
    for (const Row& row : rows()) {
        SCOPED_TRACE(row.preset);
        const Config c = parse(batch_source(row.preset, row.symbols));
        const SourceConfig& s = source_of(c);
        const BatchMapper mapper(*s.batch, s.fields);
        const BatchMembers members(venue_names(s));
        std::vector<BatchEntry> out;
        BatchCounts counts;
        ASSERT_FALSE(mapper.map(row.body, members, out, counts));
        EXPECT_EQ(counts.unknown, row.unknown);
        EXPECT_EQ(counts.missing, row.missing);
        EXPECT_EQ(counts.duplicates + counts.bad_symbols, 0u);
        for (const Expected& want : row.quotes) {
            SCOPED_TRACE(want.symbol);
            const std::ptrdiff_t m = members.find(want.symbol);
            ASSERT_GE(m, 0);
            const BatchEntry& got = out[static_cast<std::size_t>(m)];
            ASSERT_TRUE(got.seen);
            ASSERT_FALSE(got.error) << got.error.message();
            EXPECT_EQ(got.quote.bid.to_string(), want.bid);
            EXPECT_EQ(got.quote.ask.to_string(), want.ask);
            EXPECT_EQ(got.quote.has_bid_size, !want.bid_size.empty());
            EXPECT_EQ(got.quote.has_ask_size, !want.ask_size.empty());
            if (got.quote.has_bid_size) {
                EXPECT_EQ(got.quote.bid_size.to_string(), want.bid_size);
            }
            if (got.quote.has_ask_size) {
                EXPECT_EQ(got.quote.ask_size.to_string(), want.ask_size);
            }
            EXPECT_EQ(got.quote.exchange_time_ns, want.time_ns);
        }
        // The venue's error answer fails the request as a whole, never as missing entries.
        EXPECT_EQ(mapper.map(row.error_body, members, out, counts), MappingError::body_error);
    }
}

// Alpaca's 0 means no quote on that side: the quote keeps zero (the daemon's "no quote", which
// the aggregator never takes as a best price nor a bar price) and carries no size for it, so
// no record says "a size of 0 at price 0". Both sides empty is still a delivered quote.
TEST(ConfigBatchPresets, AlpacaZeroPriceIsNoQuoteOnThatSide) {
    const AlpacaSecrets secrets;
    const Config c = parse(batch_source("alpaca_latest_quotes", "[AAPL]"));
    const BatchMapper mapper(*source_of(c).batch, source_of(c).fields);
    const BatchMembers members({"AAPL"});
    std::vector<BatchEntry> out;
    BatchCounts counts;
    ASSERT_FALSE(mapper.map(R"({"quotes":{"AAPL":{"ap":0,"as":0,"bp":0,"bs":0,"t":"2022-08-17T10:09:34Z"}}})", members,
                            out, counts));
    ASSERT_FALSE(out[0].error) << out[0].error.message();
    EXPECT_TRUE(out[0].quote.bid.is_zero());
    EXPECT_TRUE(out[0].quote.ask.is_zero());
    EXPECT_FALSE(out[0].quote.has_bid_size);
    EXPECT_FALSE(out[0].quote.has_ask_size);
    // A zero written as 0.0 is the same "no quote"; a real price keeps its size.
    ASSERT_FALSE(mapper.map(R"({"quotes":{"AAPL":{"ap":0.0,"as":5,"bp":1.5,"bs":2,"t":"2022-08-17T10:09:34Z"}}})", members,
                            out, counts));
    EXPECT_TRUE(out[0].quote.ask.is_zero());
    EXPECT_FALSE(out[0].quote.has_ask_size);
    ASSERT_TRUE(out[0].quote.has_bid_size);
    EXPECT_EQ(out[0].quote.bid_size.to_string(), "2");
}

// Many symbols split into requests of the preset's size, each naming its own symbols; the
// all-instrument presets ask once whatever the count.
TEST(ConfigBatchPresets, RequestCountsFollowThePresetsSizes) {
    const AlpacaSecrets secrets;
    const std::string many = "{ prefix: S, count: 250 }";
    EXPECT_EQ(source_of(parse(batch_source("binance_book_ticker_batch", many))).request_count(), 3u);
    EXPECT_EQ(source_of(parse(batch_source("alpaca_latest_quotes", many))).request_count(), 3u);
    EXPECT_EQ(source_of(parse(batch_source("kraken_ticker", many))).request_count(), 1u);
    EXPECT_EQ(source_of(parse(batch_source("okx_tickers", many))).request_count(), 1u);
    EXPECT_EQ(source_of(parse(batch_source("bybit_tickers", many))).request_count(), 1u);
}

// --print shows a batch preset's block, and the printed file reads back to the same sources.
TEST(ConfigBatchPresets, PrintRoundTripsTheBatchBlocks) {
    const AlpacaSecrets secrets;
    std::string yaml = "sources:\n";
    for (const Row& row : rows())
        yaml.append("  - name: ").append(row.preset).append("\n    preset: ").append(row.preset)
            .append("\n    interval: 1s\n    symbols: ").append(row.symbols).append("\n");
    const std::string printed = expanded_config_text(yaml, "t.yaml");
    EXPECT_NE(printed.find("symbol: \"#key\""), std::string::npos) << printed;
    EXPECT_NE(printed.find("items: \"\""), std::string::npos) << printed;
    EXPECT_EQ(printed.find("ak-secret-3"), std::string::npos) << printed;
    const Config original = parse(yaml);
    const Config reparsed = parse_config(printed, "printed.yaml");
    EXPECT_EQ(reparsed.sources, original.sources);
    EXPECT_EQ(reparsed.hosts, original.hosts);
}

}  // namespace mdagg

// A source's `batch:` block: its keys, defaults, the url's {symbols}, the request targets it
// spells, and the errors (file:line:col, the key's path) for bad values.
#include "config_test_helpers.hpp"

#include <algorithm>
#include <string>

namespace mdagg {
namespace {

// The batch block's keys start at line 7, column 7.
std::string source(const std::string& url, const std::string& batch_lines,
                   const std::string& symbols = "[BTCUSDT, ETHUSDT, BNBUSDT]") {
    return "sources:\n"
           "  - name: venue\n"
           "    url: \"" + url + "\"\n"
           "    interval: 50ms\n"
           "    symbols: " + symbols + "\n"
           "    batch:\n" + batch_lines +
           "    fields: {bid: /bidPrice, ask: /askPrice}\n";
}

const std::string binance_url = "http://127.0.0.1:8081/api/v3/ticker/bookTicker?symbols={symbols}";

TEST(ConfigBatch, KeysAndDefaults) {
    const Config c = parse(source(binance_url, "      items: \"\"\n      symbol: /symbol\n      size: 2\n"));
    const SourceConfig& s = c.sources.at(0);
    ASSERT_TRUE(s.batch);
    EXPECT_EQ(s.batch->items, "");
    EXPECT_EQ(s.batch->symbol, "/symbol");
    EXPECT_FALSE(s.batch->symbol_is_key());
    EXPECT_EQ(s.batch->size, 2u);
    EXPECT_EQ(s.batch->join, ",");
    EXPECT_EQ(s.batch->format, BatchConfig::Format::joined);
    EXPECT_TRUE(s.batch->symbols_in_url);
    // One request per batch of 2: two requests for three symbols, and max_in_flight follows.
    EXPECT_EQ(s.request_count(), 2u);
    EXPECT_EQ(s.max_in_flight, 2u);
}

TEST(ConfigBatch, SizeZeroWithoutSymbolsInUrlIsOneRequestForEveryInstrument) {
    const Config c = parse(source("http://127.0.0.1:8081/api/v5/market/tickers?instType=SPOT",
                                  "      items: /data\n      symbol: /instId\n", "[BTC-USDT, ETH-USDT]"));
    const SourceConfig& s = c.sources.at(0);
    ASSERT_TRUE(s.batch);
    EXPECT_EQ(s.batch->size, 0u);
    EXPECT_FALSE(s.batch->symbols_in_url);
    EXPECT_EQ(s.request_count(), 1u);
}

TEST(ConfigBatch, HashKeyMeansTheEntrysKey) {
    const Config c = parse(source("http://127.0.0.1:8081/0/public/Ticker?pair={symbols}",
                                  "      items: /result\n      symbol: \"#key\"\n"));
    EXPECT_TRUE(c.sources.at(0).batch->symbol_is_key());
}

TEST(ConfigBatch, JoinedTargetEncodesNamesAndKeepsTheJoin) {
    const Config c = parse(source("http://h:1/v2/stocks/quotes/latest?symbols={symbols}&feed=iex",
                                  "      items: /quotes\n      symbol: \"#key\"\n      join: \"|\"\n"));
    const SourceConfig& s = c.sources.at(0);
    EXPECT_EQ(s.url.target_for_symbols({"AAPL", "BRK/B", "X:Y"}, *s.batch),
              "/v2/stocks/quotes/latest?symbols=AAPL|BRK%2FB|X:Y&feed=iex");
}

TEST(ConfigBatch, JsonFormatPercentEncodesTheArray) {
    const Config c = parse(source(binance_url, "      items: \"\"\n      symbol: /symbol\n      format: json\n"));
    const SourceConfig& s = c.sources.at(0);
    EXPECT_EQ(s.batch->format, BatchConfig::Format::json);
    EXPECT_EQ(s.url.target_for_symbols({"BTCUSDT", "ETHUSDT"}, *s.batch),
              "/api/v3/ticker/bookTicker?symbols=%5B%22BTCUSDT%22,%22ETHUSDT%22%5D");
}

TEST(ConfigBatch, ItemsMustBeAJsonPointer) {
    EXPECT_EQ(error_of(source(binance_url, "      items: data\n      symbol: /symbol\n")),
              "t.yaml:7:14: sources[0].batch.items: a JSON pointer starts with \"/\", like \"/bidPrice\"");
}

TEST(ConfigBatch, SymbolMustBeAPointerOrHashKey) {
    const std::string e = error_of(source(binance_url, "      items: \"\"\n      symbol: symbol\n"));
    EXPECT_NE(e.find("t.yaml:8:15: sources[0].batch.symbol: "), std::string::npos) << e;
    EXPECT_NE(e.find("\"#key\""), std::string::npos) << e;
}

TEST(ConfigBatch, RequiredKeys) {
    EXPECT_EQ(error_of(source(binance_url, "      symbol: /symbol\n")),
              "t.yaml:7:7: sources[0].batch.items: required key is missing");
    EXPECT_EQ(error_of(source(binance_url, "      items: /data\n")),
              "t.yaml:7:7: sources[0].batch.symbol: required key is missing");
}

TEST(ConfigBatch, NegativeSizeIsRefused) {
    const std::string e = error_of(source(binance_url, "      items: \"\"\n      symbol: /symbol\n      size: -1\n"));
    EXPECT_NE(e.find("t.yaml:9:13: sources[0].batch.size: must not be negative"), std::string::npos) << e;
}

TEST(ConfigBatch, JoinAndJsonFormatTogetherAreRefused) {
    const std::string e = error_of(
        source(binance_url, "      items: \"\"\n      symbol: /symbol\n      join: \",\"\n      format: json\n"));
    EXPECT_EQ(e, "t.yaml:10:15: sources[0].batch.format: set either join or format: json, not both");
    const std::string f = error_of(
        source(binance_url, "      items: \"\"\n      symbol: /symbol\n      format: json\n      join: \",\"\n"));
    EXPECT_EQ(f, "t.yaml:10:13: sources[0].batch.join: set either join or format: json, not both");
}

TEST(ConfigBatch, UnknownFormatSuggests) {
    const std::string e = error_of(source(binance_url, "      items: \"\"\n      symbol: /symbol\n      format: jsn\n"));
    EXPECT_NE(e.find("t.yaml:9:15: sources[0].batch.format: "), std::string::npos) << e;
    EXPECT_NE(e.find("json"), std::string::npos) << e;
}

TEST(ConfigBatch, JoinWithCharactersInvalidInAQueryIsRefused) {
    const std::string e = error_of(source(binance_url, "      items: \"\"\n      symbol: /symbol\n      join: \"&\"\n"));
    EXPECT_NE(e.find("t.yaml:9:13: sources[0].batch.join: invalid character '&'"), std::string::npos) << e;
}

TEST(ConfigBatch, SizeNeedsSymbolsInTheUrl) {
    const std::string e = error_of(source("http://h:1/tickers", "      items: /data\n      symbol: /instId\n      size: 100\n"));
    EXPECT_EQ(e, "t.yaml:3:10: sources[0].url: must contain \"{symbols}\" because batch.size is 100 (each request "
                 "names its symbols)");
}

TEST(ConfigBatch, JoinOrFormatNeedSymbolsInTheUrl) {
    const std::string e = error_of(source("http://h:1/tickers", "      items: /data\n      symbol: /instId\n      join: \",\"\n"));
    EXPECT_NE(e.find("t.yaml:3:10: sources[0].url: must contain \"{symbols}\" because batch.join"), std::string::npos)
        << e;
    const std::string f =
        error_of(source("http://h:1/tickers", "      items: /data\n      symbol: /instId\n      format: json\n"));
    EXPECT_NE(f.find("because batch.format"), std::string::npos) << f;
}

TEST(ConfigBatch, SingularPlaceholderInABatchUrlIsRefused) {
    const std::string e = error_of(source("http://h:1/q/{symbol}", "      items: /data\n      symbol: /instId\n"));
    EXPECT_NE(e.find("t.yaml:3:10: sources[0].url: a batch source's url spells \"{symbols}\""), std::string::npos) << e;
}

TEST(ConfigBatch, SymbolsPlaceholderWithoutABatchIsRefused) {
    const std::string yaml = "sources:\n"
                             "  - name: venue\n"
                             "    url: \"http://h:1/q?symbols={symbols}\"\n"
                             "    interval: 50ms\n"
                             "    symbols: [A, B]\n"
                             "    fields: {bid: /b, ask: /a}\n";
    EXPECT_EQ(error_of(yaml), "t.yaml:3:10: sources[0].url: \"{symbols}\" needs a batch: block (one request for "
                              "many symbols)");
}

TEST(ConfigBatch, BatchMustBeAMapping) {
    const std::string e = error_of(source(binance_url, "      - items\n"));
    EXPECT_NE(e.find("sources[0].batch: expected a mapping"), std::string::npos) << e;
}

TEST(ConfigBatch, BatchSourcesCountRequestsForTheBreaker) {
    // 3 symbols in one request: the auto threshold is the request count, at least 5.
    const Config c = parse(source(binance_url, "      items: \"\"\n      symbol: /symbol\n"));
    EXPECT_EQ(c.sources.at(0).request_count(), 1u);
    EXPECT_EQ(c.hosts.at(0).breaker.failures, 5u);
}

TEST(ConfigBatch, SchemaListsTheBatchKeys) {
    const auto keys = config_schema_keys();
    for (const char* k : {"sources[].batch.items", "sources[].batch.symbol", "sources[].batch.size",
                          "sources[].batch.join", "sources[].batch.format"})
        EXPECT_NE(std::find(keys.begin(), keys.end(), k), keys.end()) << k;
}

}  // namespace
}  // namespace mdagg

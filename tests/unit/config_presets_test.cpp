// Presets (config/presets/*.yaml, compiled in): what they fill, what overrides them, where
// their errors point, --print's expansion, and each preset mapping a real venue body exactly
// through the mapper the pollers use.
#include "config_test_helpers.hpp"
#include "presets.hpp"

#include <mdagg/mapping.hpp>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>

namespace mdagg {
namespace {

// The secrets the alpaca and polygon presets read.
struct PresetSecrets {
    EnvVar polygon{"POLYGON_API_KEY", "pk-secret-1"};
    EnvVar alpaca_id{"APCA_API_KEY_ID", "ak-id-2"};
    EnvVar alpaca_secret{"APCA_API_SECRET_KEY", "ak-secret-3"};
};

std::string one_source(std::string_view preset, std::string_view symbol = "SYM") {
    return "sources:\n  - name: s\n    preset: " + std::string(preset) + "\n    interval: 1m\n    symbols: [" +
           std::string(symbol) + "]\noutput: { dir: ./out }\n";
}

const HostConfig& host_of(const Config& c, std::size_t source = 0) { return c.hosts.at(c.sources.at(source).host); }

// 1-based line and column of `needle` (plus `skip` characters) in the preset's text, as "file:L:C".
std::string preset_position(std::string_view preset, std::string_view needle, std::size_t skip = 0) {
    for (const auto& p : config_detail::embedded_presets()) {
        if (p.name != preset) continue;
        const std::size_t found = p.text.find(needle);
        EXPECT_NE(found, std::string_view::npos) << needle;
        const std::size_t at = found + skip;
        const std::string_view before = p.text.substr(0, at);
        const std::size_t line = 1 + static_cast<std::size_t>(std::count(before.begin(), before.end(), '\n'));
        const std::size_t line_start = before.rfind('\n') == std::string_view::npos ? 0 : before.rfind('\n') + 1;
        return std::string(p.file) + ":" + std::to_string(line) + ":" + std::to_string(at - line_start + 1);
    }
    ADD_FAILURE() << "no preset " << preset;
    return {};
}

}  // namespace

TEST(ConfigPresets, TheIssuesSinglePresetsAreCompiledIn) {
    const std::vector<std::string> names = preset_names();
    for (const char* wanted : {"binance_book_ticker", "coinbase_ticker", "okx_ticker", "polygon_last_quote"})
        EXPECT_NE(std::find(names.begin(), names.end(), wanted), names.end()) << wanted;
    EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
}

// A preset is data checked by the same schema as the file: every one must load, and must give
// what makes a source pollable (url, bid, ask) plus its host's rate.
TEST(ConfigPresets, EveryPresetLoadsWithOnlyNameIntervalAndSymbols) {
    const PresetSecrets secrets;
    for (const std::string& name : preset_names()) {
        SCOPED_TRACE(name);
        Config c;
        ASSERT_NO_THROW(c = parse(one_source(name))) << error_of(one_source(name));
        const SourceConfig& s = c.sources.at(0);
        EXPECT_EQ(s.url.scheme, "https");
        // A single preset names its symbol in the url; a batch one its list, or nothing when
        // the venue answers every instrument (config_batch_presets_test.cpp).
        if (!s.batch) {
            EXPECT_NE(s.url.target_template.find("{symbol}"), std::string::npos);
        }
        EXPECT_FALSE(s.fields.bid.empty());
        EXPECT_FALSE(s.fields.ask.empty());
        EXPECT_TRUE(s.fields.success.has_value());
        EXPECT_GT(host_of(c).rate, 0);
        EXPECT_EQ(host_of(c).host, s.url.host);
        EXPECT_EQ(host_of(c).port, 0) << "a preset's host entry covers every port";
    }
}

TEST(ConfigPresets, BinanceFillsSourceAndHostLimits) {
    const Config c = parse(one_source("binance_book_ticker", "BTCUSDT"));
    const SourceConfig& s = c.sources[0];
    EXPECT_EQ(s.url.host, "api.binance.com");
    EXPECT_EQ(s.url.target_template, "/api/v3/ticker/bookTicker?symbol={symbol}");
    EXPECT_EQ(s.cost, 2u);
    EXPECT_EQ(s.accept_encoding, AcceptEncoding::gzip);
    ASSERT_TRUE(s.fields.success);
    EXPECT_EQ(s.fields.success->pointer, "/code");
    EXPECT_TRUE(s.fields.success->empty);
    EXPECT_EQ(s.fields.symbol, "/symbol");
    EXPECT_EQ(s.fields.bid, "/bidPrice");
    EXPECT_EQ(s.fields.ask_size, "/askQty");
    const HostConfig& h = host_of(c);
    EXPECT_EQ(h.rate, 100);
    EXPECT_EQ(h.burst, 200);
    EXPECT_EQ(h.ban_pause, std::chrono::minutes(2));
    ASSERT_TRUE(h.usage);
    EXPECT_EQ(h.usage->header, "X-MBX-USED-WEIGHT-1M");
    EXPECT_EQ(h.usage->limit, 6000);
    // Defaults stay for what the preset does not set.
    EXPECT_EQ(s.timeout, s.interval);
    EXPECT_EQ(h.rate_limit_pause, std::chrono::seconds(1));
}

TEST(ConfigPresets, KeysOnTheSourceOverrideThePresets) {
    const Config c = parse(R"(sources:
  - name: b
    preset: binance_book_ticker
    url: "https://api1.binance.com/api/v3/ticker/bookTicker?symbol={symbol}"
    cost: 4
    interval: 1s
    symbols: [BTCUSDT]
    fields: { bid: /b, ask: /a }
)");
    const SourceConfig& s = c.sources[0];
    EXPECT_EQ(s.url.host, "api1.binance.com");
    EXPECT_EQ(s.cost, 4u);
    // A key replaces the preset's whole value: no preset pointer is left under `fields`.
    EXPECT_EQ(s.fields.bid, "/b");
    EXPECT_EQ(s.fields.symbol, "");
    EXPECT_EQ(s.fields.bid_size, "");
    // What the source did not give still comes from the preset, host limits included (for
    // the url's host as overridden).
    EXPECT_EQ(s.accept_encoding, AcceptEncoding::gzip);
    EXPECT_EQ(host_of(c).host, "api1.binance.com");
    EXPECT_EQ(host_of(c).rate, 100);
}

TEST(ConfigPresets, KeysOfTheUsersHostEntryOverrideThePresets) {
    const Config c = parse(R"(sources:
  - name: okx
    preset: okx_ticker
    interval: 1s
    symbols: [BTC-USDT]
hosts:
  - host: www.okx.com
    rate: 5
    breaker: { failures: 7 }
)");
    ASSERT_EQ(c.hosts.size(), 1u) << "the user's entry is completed, not doubled";
    const HostConfig& h = host_of(c);
    EXPECT_EQ(h.rate, 5);
    EXPECT_EQ(h.burst, 20);  // from the preset
    EXPECT_EQ(h.breaker.failures, 7u);
}

TEST(ConfigPresets, AnExactHostPortEntryIsCompletedAndAnIpv6HostGetsABracketedEntry) {
    const Config exact = parse(R"(sources:
  - name: b
    preset: binance_book_ticker
    url: "https://api.binance.com:9443/api/v3/ticker/bookTicker?symbol={symbol}"
    interval: 1s
    symbols: [BTCUSDT]
hosts:
  - host: api.binance.com:9443
    rate: 7
)");
    ASSERT_EQ(exact.hosts.size(), 1u);
    EXPECT_EQ(exact.hosts[0].port, 9443);
    EXPECT_EQ(exact.hosts[0].rate, 7);
    EXPECT_EQ(exact.hosts[0].burst, 200);

    const std::string v6 = R"(sources:
  - name: b
    preset: binance_book_ticker
    url: "https://[::1]:9443/api/v3/ticker/bookTicker?symbol={symbol}"
    interval: 1s
    symbols: [BTCUSDT]
)";
    const Config c = parse(v6);
    ASSERT_EQ(c.hosts.size(), 1u);
    EXPECT_EQ(c.hosts[0].host, "::1");
    EXPECT_EQ(c.hosts[0].port, 0);
    EXPECT_EQ(c.hosts[0].rate, 100);
    const std::string printed = expanded_config_text(v6, "t.yaml");
    EXPECT_NE(printed.find("host: \"[::1]\""), std::string::npos) << printed;
    EXPECT_EQ(parse_config(printed, "p.yaml").hosts, c.hosts);
}

TEST(ConfigPresets, SourcesOfOneHostShareOneEntryAndOthersKeepTheirDefaults) {
    const Config c = parse(R"(sources:
  - name: b1
    preset: binance_book_ticker
    interval: 1s
    symbols: [BTCUSDT]
  - name: b2
    preset: binance_book_ticker
    interval: 2s
    symbols: [ETHUSDT]
  - name: sim
    url: "http://127.0.0.1:8081/quotes/{symbol}"
    interval: 1s
    symbols: [A]
    fields: { bid: /bid, ask: /ask }
)");
    EXPECT_EQ(c.sources[0].host, c.sources[1].host);
    EXPECT_EQ(host_of(c, 1).rate, 100);
    EXPECT_EQ(host_of(c, 2).rate, 0);
    EXPECT_FALSE(host_of(c, 2).usage);
    EXPECT_EQ(c.hosts.size(), 2u);
}

TEST(ConfigPresets, UnknownPresetNamesTheKnownOnesAtItsPlace) {
    const std::string e = error_of(one_source("okx_tiker"));
    EXPECT_EQ(e.rfind("t.yaml:3:13: sources[0].preset: unknown preset \"okx_tiker\"; did you mean \"okx_ticker\"?", 0), 0u) << e;
    for (const std::string& name : preset_names()) EXPECT_NE(e.find(name), std::string::npos) << e;

    const std::string far = error_of(one_source("nasdaq_itch"));
    EXPECT_EQ(far.find("did you mean"), std::string::npos) << far;
    EXPECT_NE(far.find("Known presets: "), std::string::npos) << far;
    EXPECT_EQ(error_of(one_source("[a]")).rfind("t.yaml:3:13: sources[0].preset: expected a string, got a list", 0), 0u);
}

// An error in a key the preset filled points at the source's `preset:` line in the user's
// file (that is what the user wrote) and names the preset's file and line.
TEST(ConfigPresets, AnErrorInAPresetKeyPointsAtThePresetLineAndNamesThePreset) {
    ::unsetenv("POLYGON_API_KEY");
    const std::string e = error_of(one_source("polygon_last_quote", "AAPL"));
    EXPECT_EQ(e, "t.yaml:3:13: sources[0].url: environment variable POLYGON_API_KEY is not set (set by preset "
                 "polygon_last_quote, " +
                     preset_position("polygon_last_quote", "\"https://api.polygon.io") + ")");

    // A check across the file and the preset: the user's burst cannot hold the preset's cost.
    const std::string cost = error_of(R"(sources:
  - name: b
    preset: binance_book_ticker
    interval: 1s
    symbols: [BTCUSDT]
hosts:
  - host: api.binance.com
    burst: 1
)");
    EXPECT_EQ(cost, "t.yaml:3:13: sources[0].cost: exceeds burst 1 of host api.binance.com (set by preset "
                    "binance_book_ticker, " +
                        preset_position("binance_book_ticker", "cost: ", 6) + ")");

    // An error in the user's own key stays where it is.
    EXPECT_EQ(error_of(R"(sources:
  - name: b
    preset: binance_book_ticker
    interval: 1s
    symbols: [BTCUSDT]
    cost: 0
)").rfind("t.yaml:6:11: sources[0].cost: must be between 1 and", 0),
              0u);
}

TEST(ConfigPresets, PrintShowsTheExpansionWhichParsesToTheSameConfigWithoutSecrets) {
    const PresetSecrets secrets;
    const std::string yaml = R"(sources:
  - name: poly
    preset: polygon_last_quote
    interval: 20s
    symbols: ["AAPL", MSFT]
  - name: alpaca
    preset: alpaca_latest_quote
    interval: 1s
    symbols: [AAPL]
  - name: okx
    preset: okx_ticker
    interval: 1s
    symbols: [BTC-USDT]
hosts:
  - host: www.okx.com
    rate: 5
output: { dir: ./out, max_buffer_bytes: 65536 }
)";
    const std::string printed = expanded_config_text(yaml, "t.yaml");
    for (const char* secret : {"pk-secret-1", "ak-id-2", "ak-secret-3"})
        EXPECT_EQ(printed.find(secret), std::string::npos) << secret << " in\n" << printed;
    EXPECT_NE(printed.find("apiKey={env:POLYGON_API_KEY}"), std::string::npos) << printed;
    EXPECT_NE(printed.find("env: APCA_API_SECRET_KEY"), std::string::npos) << printed;
    EXPECT_NE(printed.find("# sources[0] (poly) from preset polygon_last_quote: url"), std::string::npos) << printed;
    EXPECT_NE(printed.find("# sources[2] (okx) from preset okx_ticker, host: hosts[0].burst"), std::string::npos)
        << printed;

    const Config original = parse(yaml);
    const Config reparsed = parse_config(printed, "printed.yaml");
    EXPECT_EQ(reparsed.sources, original.sources);
    EXPECT_EQ(reparsed.hosts, original.hosts);
    EXPECT_EQ(reparsed.output.max_buffer_bytes, 65536u);
    // Printing it again fills nothing more: the same YAML below the header comments.
    const auto body = [](const std::string& text) {
        std::string out, line;
        std::istringstream in(text);
        while (std::getline(in, line))
            if (!line.starts_with("#")) out += line + "\n";
        return out;
    };
    EXPECT_EQ(body(expanded_config_text(printed, "printed.yaml")), body(printed));
}

TEST(ConfigPresets, PrintRefusesAnInvalidFile) {
    EXPECT_THROW(expanded_config_text(one_source("no_such_preset"), "t.yaml"), ConfigError);
}

// ---------------------------------------------------------------------------------------------
// Each preset maps a real venue body (tests/fuzz/corpus/mapping) exactly, through the mapper a
// poller builds from its source's fields. A body is the venue's documented answer, verbatim
// where the documentation's example is used as is, else in its exact shape: every field the
// venue sends (read or not), its nesting, and strings where the venue sends strings. The row
// above each test case names its source (no venue is reachable from CI to capture one).

namespace {

std::string corpus(const std::string& name) {
    std::ifstream in(std::string(MDAGG_MAPPING_CORPUS) + "/" + name, std::ios::binary);
    EXPECT_TRUE(in) << name;
    std::stringstream text;
    text << in.rdbuf();
    std::string body = text.str();
    while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
    return body;
}

struct Mapped {
    std::error_code error;
    Quote quote;
};

Mapped map_with_preset(std::string_view preset, const std::string& body_file, std::string_view symbol) {
    const PresetSecrets secrets;
    const Config c = parse(one_source(preset, symbol));
    Mapped out;
    out.error = QuoteMapper(c.sources.at(0).fields).map(corpus(body_file), symbol, out.quote);
    return out;
}

::testing::AssertionResult Exact(const Decimal& d, std::string_view text) {
    if (d.to_string() != text) return ::testing::AssertionFailure() << d.to_string() << " != " << text;
    return ::testing::AssertionSuccess();
}

}  // namespace

// What a preset makes of its venue's captured body: the exact decimals as the venue wrote them.
struct PresetMapping {
    const char* name;  // the test's
    const char* preset;
    const char* body_file;
    const char* symbol;
    const char* bid;
    const char* ask;
    const char* bid_size;  // nullptr: the venue gives no sizes, and the quote has none
    const char* ask_size;
    std::int64_t exchange_time_ns;
    std::optional<std::int64_t> seq = std::nullopt;  // checked where given
    // A body or symbol the preset must refuse, and how (none where refused_file is null).
    const char* refused_file = nullptr;
    const char* refused_symbol = nullptr;
    MappingError refused_as{};
};

// Named by its preset in gtest's output, not dumped as bytes.
void PrintTo(const PresetMapping& t, std::ostream* os) { *os << t.preset; }

class ConfigPresetsMapping : public ::testing::TestWithParam<PresetMapping> {};

TEST_P(ConfigPresetsMapping, MapsTheCapturedBodyExactly) {
    const PresetMapping& t = GetParam();
    const Mapped m = map_with_preset(t.preset, t.body_file, t.symbol);
    ASSERT_FALSE(m.error) << m.error.message();
    EXPECT_TRUE(Exact(m.quote.bid, t.bid));
    EXPECT_TRUE(Exact(m.quote.ask, t.ask));
    if (t.bid_size) {
        EXPECT_TRUE(Exact(m.quote.bid_size, t.bid_size));
    } else {
        EXPECT_FALSE(m.quote.has_bid_size);
    }
    if (t.ask_size) {
        EXPECT_TRUE(Exact(m.quote.ask_size, t.ask_size));
    } else {
        EXPECT_FALSE(m.quote.has_ask_size);
    }
    EXPECT_EQ(m.quote.exchange_time_ns, t.exchange_time_ns);
    if (t.seq) {
        EXPECT_EQ(m.quote.seq, *t.seq);
    }
    if (t.refused_file) {
        EXPECT_EQ(map_with_preset(t.preset, t.refused_file, t.refused_symbol).error, t.refused_as);
    }
}

INSTANTIATE_TEST_SUITE_P(
    Venues, ConfigPresetsMapping,
    ::testing::Values(
        // binance.json: the example answer of GET /api/v3/ticker/bookTicker?symbol=LTCBTC, verbatim
        // (developers.binance.com, market-data-endpoints#symbol-order-book-ticker). The symbol
        // check is part of the preset: another symbol's answer is refused.
        PresetMapping{.name = "BinanceBookTicker", .preset = "binance_book_ticker", .body_file = "binance.json",
                      .symbol = "LTCBTC", .bid = "4.00000000", .ask = "4.00000200", .bid_size = "431.00000000",
                      .ask_size = "9.00000000", .exchange_time_ns = 0, .seq = -1, .refused_file = "binance.json",
                      .refused_symbol = "BTCUSDT", .refused_as = MappingError::symbol_mismatch},
        // coinbase.json: the example answer of GET /products/{product_id}/ticker, verbatim
        // (docs.cdp.coinbase.com, exchangerestapi_getproductticker): prices strings, trade_id an
        // integer, plus rfq_volume and conversions_volume, which the preset does not read.
        PresetMapping{.name = "CoinbaseTicker", .preset = "coinbase_ticker", .body_file = "coinbase.json",
                      .symbol = "BTC-USD", .bid = "6265.15", .ask = "6267.71", .bid_size = nullptr, .ask_size = nullptr,
                      .exchange_time_ns = 1584663777833000000,  // 2020-03-20T00:22:57.833Z
                      .seq = 86326522},
        // okx.json: GET /api/v5/market/ticker?instId=BTC-USDT in the documented shape (okx.com
        // docs-v5, market-data-get-ticker): all 16 fields of a SPOT entry, every one a string,
        // `ts` ms included. okx_error.json: the documented 50011 answer (code a string, data []).
        PresetMapping{.name = "OkxTickerAndItsErrorBody", .preset = "okx_ticker", .body_file = "okx.json",
                      .symbol = "BTC-USDT", .bid = "66260.2", .ask = "66260.3", .bid_size = "0.43", .ask_size = "0.22",
                      .exchange_time_ns = 1774805577108000000,  // "ts" ms, a string
                      .seq = std::nullopt, .refused_file = "okx_error.json", .refused_symbol = "BTC-USDT",
                      .refused_as = MappingError::body_error},
        // polygon.json: the sample answer of GET /v2/last/nbbo/AAPL, verbatim (polygon.io docs,
        // stocks last quote): request_id, exchange ids X/x, q, and two ns times t and y > 2^53.
        PresetMapping{.name = "PolygonLastQuoteNanosecondsAbove2To53", .preset = "polygon_last_quote",
                      .body_file = "polygon.json", .symbol = "AAPL", .bid = "127.96", .ask = "127.98", .bid_size = "1",
                      .ask_size = "7",
                      .exchange_time_ns = 1617827221349730300},  // a double would say ...730304
        // bybit.json: GET /v5/market/tickers?category=spot&symbol=BTCUSDT in the documented shape
        // (bybit-exchange.github.io/docs/v5/market/tickers): the 13 spot fields as strings,
        // retExtInfo, and the top-level `time` (ms, a number).
        PresetMapping{.name = "BybitTicker", .preset = "bybit_ticker", .body_file = "bybit.json", .symbol = "BTCUSDT",
                      .bid = "66782.2", .ask = "66782.3", .bid_size = "0.46", .ask_size = "1.21",
                      .exchange_time_ns = 1775239921132000000},
        // kraken.json: the example answer of GET /0/public/Ticker?pair=XBTUSD, verbatim
        // (docs.kraken.com, get-ticker-information): keyed XXBTZUSD, a/b/c/v/p/l/h arrays of
        // strings, t an array of integers, o a string. kraken_error.json: an error in a 200 body.
        PresetMapping{.name = "KrakenPairUnderItsOwnNameAndItsErrorBody", .preset = "kraken_ticker_pair",
                      .body_file = "kraken.json", .symbol = "XBTUSD", .bid = "30300.00000", .ask = "30300.10000",
                      .bid_size = "1.000", .ask_size = "1.000", .exchange_time_ns = 0, .seq = std::nullopt,
                      .refused_file = "kraken_error.json", .refused_symbol = "XBTUSD",
                      .refused_as = MappingError::body_error},
        // alpaca.json: GET /v2/stocks/AAPL/quotes/latest in the documented shape
        // (docs.alpaca.markets, stocklatestquotesingle): prices and sizes numbers, exchanges
        // ax/bx, conditions c, tape z, and `t` RFC 3339 with nanoseconds.
        PresetMapping{.name = "AlpacaLatestQuoteNumbersAndNanosecondTime", .preset = "alpaca_latest_quote",
                      .body_file = "alpaca.json", .symbol = "AAPL", .bid = "172.6", .ask = "172.7", .bid_size = "2",
                      .ask_size = "1",
                      .exchange_time_ns = 1660730974055031265}),  // 2022-08-17T10:09:34.055031265Z
    [](const ::testing::TestParamInfo<PresetMapping>& info) { return std::string(info.param.name); });

}  // namespace mdagg

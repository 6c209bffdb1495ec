#include <mdagg/mapping.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdlib>
#include <new>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace mdagg;
using namespace std::string_view_literals;

// Counts every heap allocation in the process, to hold map() to its no-allocation promise.
namespace {
std::atomic<long> g_allocations{0};
// Out of line so that GCC's -Wmismatched-new-delete does not pair the inlined free() with
// the replaced operator new.
[[gnu::noinline]] void release(void* p) noexcept { std::free(p); }
}  // namespace

void* operator new(std::size_t n) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t) noexcept { release(p); }

namespace {

constexpr auto binance_body =
    R"({"symbol":"LTCBTC","bidPrice":"4.00000000","bidQty":"431.00000000","askPrice":"4.00000200","askQty":"9.00000000"})"sv;
constexpr auto coinbase_body =
    R"({"trade_id":86326522,"price":"6268.48","size":"0.00698254","time":"2020-03-20T00:22:57.833Z","bid":"6265.15","ask":"6267.71","volume":"53602.03940154"})"sv;
constexpr auto kraken_body =
    R"({"error":[],"result":{"XXBTZUSD":{"a":["30300.10000","1","1.000"],"b":["30300.00000","1","1.000"],"c":["30303.20000","0.00067643"],"v":["4083.67","4412.73"]}}})"sv;
constexpr auto okx_body =
    R"({"code":"0","msg":"","data":[{"instId":"BTC-USDT","last":"66256.8","askPx":"66260.3","askSz":"0.22","bidPx":"66260.2","bidSz":"0.43","ts":"1774805577108"}]})"sv;
constexpr auto bybit_body =
    R"({"retCode":0,"retMsg":"OK","result":{"category":"spot","list":[{"symbol":"BTCUSDT","bid1Price":"66782.2","bid1Size":"0.46","ask1Price":"66782.3","ask1Size":"1.21","lastPrice":"66782.2"}]},"time":1775239921132})"sv;
constexpr auto alpaca_body =
    R"({"symbol":"AAPL","quote":{"t":"2022-08-17T10:09:34.055031265Z","ap":172.7,"as":1,"bp":172.6,"bs":2}})"sv;
constexpr auto polygon_body =
    R"({"results":{"P":127.98,"S":7,"T":"AAPL","p":127.96,"s":1,"t":1617827221349730300},"status":"OK"})"sv;
constexpr auto sim_body =
    R"({"symbol":"STOCK_7","bidPrice":"101.25","bidQty":"12.50","askPrice":"101.26","askQty":"8.00","time":1764000000000,"seq":412})"sv;

FieldMap binance_map() {
    FieldMap f;
    f.symbol = "/symbol";
    f.bid = "/bidPrice";
    f.bid_size = "/bidQty";
    f.ask = "/askPrice";
    f.ask_size = "/askQty";
    return f;
}

FieldMap sim_map() {
    FieldMap f = binance_map();
    f.exchange_time = TimeField{"/time", TimeUnit::ms};
    f.seq = "/seq";
    return f;
}

FieldMap bid_ask(std::string bid = "/bid", std::string ask = "/ask") {
    FieldMap f;
    f.bid = std::move(bid);
    f.ask = std::move(ask);
    return f;
}

FieldMap with_time(std::string pointer, TimeUnit unit) {
    FieldMap f = bid_ask();
    f.exchange_time = TimeField{std::move(pointer), unit};
    return f;
}

// Maps `body`, expecting success.
Quote map_ok(QuoteMapper& m, std::string_view body, std::string_view symbol = "") {
    Quote q;
    const std::error_code ec = m.map(body, symbol, q);
    EXPECT_FALSE(ec) << ec.message() << " for " << body;
    return q;
}

Quote map_ok(const FieldMap& f, std::string_view body, std::string_view symbol = "") {
    QuoteMapper m(f);
    return map_ok(m, body, symbol);
}

std::error_code map_err(const FieldMap& f, std::string_view body, std::string_view symbol = "") {
    QuoteMapper m(f);
    Quote q;
    return m.map(body, symbol, q);
}

// Exact: same digits and same scale, not just the same value.
::testing::AssertionResult Exact(Decimal d, std::string_view text) {
    if (d.to_string() != text) return ::testing::AssertionFailure() << d.to_string() << " != " << text;
    return ::testing::AssertionSuccess();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Real venue bodies

TEST(MappingVenues, BinanceBookTickerStrings) {
    const Quote q = map_ok(binance_map(), binance_body, "LTCBTC");
    EXPECT_TRUE(Exact(q.bid, "4.00000000"));
    EXPECT_TRUE(Exact(q.ask, "4.00000200"));
    EXPECT_EQ(q.ask.mantissa(), 400000200);
    EXPECT_EQ(q.ask.scale(), 8);
    EXPECT_TRUE(q.has_bid_size);
    EXPECT_TRUE(q.has_ask_size);
    EXPECT_TRUE(Exact(q.bid_size, "431.00000000"));
    EXPECT_TRUE(Exact(q.ask_size, "9.00000000"));
    EXPECT_EQ(q.exchange_time_ns, 0);
    EXPECT_EQ(q.seq, -1);
}

TEST(MappingVenues, CoinbaseTickerWithoutSizes) {
    FieldMap f = bid_ask("/bid", "/ask");
    f.exchange_time = TimeField{"/time", TimeUnit::rfc3339};
    f.seq = "/trade_id";
    const Quote q = map_ok(f, coinbase_body);
    EXPECT_TRUE(Exact(q.bid, "6265.15"));
    EXPECT_TRUE(Exact(q.ask, "6267.71"));
    EXPECT_FALSE(q.has_bid_size);
    EXPECT_FALSE(q.has_ask_size);
    EXPECT_EQ(q.exchange_time_ns, 1584663777833000000);
    EXPECT_EQ(q.seq, 86326522);
}

TEST(MappingVenues, KrakenWildcardPairKey) {
    FieldMap f = bid_ask("/result/*/b/0", "/result/*/a/0");
    f.bid_size = "/result/*/b/2";
    f.ask_size = "/result/*/a/2";
    const Quote q = map_ok(f, kraken_body, "XBTUSD");
    EXPECT_TRUE(Exact(q.bid, "30300.00000"));
    EXPECT_TRUE(Exact(q.ask, "30300.10000"));
    EXPECT_TRUE(Exact(q.bid_size, "1.000"));
    EXPECT_TRUE(Exact(q.ask_size, "1.000"));
}

TEST(MappingVenues, OkxFirstDataElementWithStringMilliseconds) {
    FieldMap f = bid_ask("/data/0/bidPx", "/data/0/askPx");
    f.symbol = "/data/0/instId";
    f.bid_size = "/data/0/bidSz";
    f.ask_size = "/data/0/askSz";
    f.exchange_time = TimeField{"/data/0/ts", TimeUnit::ms};
    const Quote q = map_ok(f, okx_body, "BTC-USDT");
    EXPECT_TRUE(Exact(q.bid, "66260.2"));
    EXPECT_TRUE(Exact(q.ask, "66260.3"));
    EXPECT_TRUE(Exact(q.bid_size, "0.43"));
    EXPECT_TRUE(Exact(q.ask_size, "0.22"));
    EXPECT_EQ(q.exchange_time_ns, 1774805577108000000);
}

TEST(MappingVenues, BybitNestedListAndTopLevelTime) {
    FieldMap f = bid_ask("/result/list/0/bid1Price", "/result/list/0/ask1Price");
    f.symbol = "/result/list/0/symbol";
    f.bid_size = "/result/list/0/bid1Size";
    f.ask_size = "/result/list/0/ask1Size";
    f.exchange_time = TimeField{"/time", TimeUnit::ms};
    const Quote q = map_ok(f, bybit_body, "BTCUSDT");
    EXPECT_TRUE(Exact(q.bid, "66782.2"));
    EXPECT_TRUE(Exact(q.ask, "66782.3"));
    EXPECT_TRUE(Exact(q.bid_size, "0.46"));
    EXPECT_TRUE(Exact(q.ask_size, "1.21"));
    EXPECT_EQ(q.exchange_time_ns, 1775239921132000000);
}

TEST(MappingVenues, AlpacaNumbersAndNanosecondRfc3339) {
    FieldMap f = bid_ask("/quote/bp", "/quote/ap");
    f.symbol = "/symbol";
    f.bid_size = "/quote/bs";
    f.ask_size = "/quote/as";
    f.exchange_time = TimeField{"/quote/t", TimeUnit::rfc3339};
    const Quote q = map_ok(f, alpaca_body, "AAPL");
    EXPECT_TRUE(Exact(q.bid, "172.6"));
    EXPECT_TRUE(Exact(q.ask, "172.7"));
    EXPECT_TRUE(Exact(q.bid_size, "2"));
    EXPECT_TRUE(Exact(q.ask_size, "1"));
    EXPECT_EQ(q.exchange_time_ns, 1660730974055031265);
}

TEST(MappingVenues, PolygonIntegerNanosecondsAbove2To53) {
    FieldMap f = bid_ask("/results/p", "/results/P");
    f.symbol = "/results/T";
    f.bid_size = "/results/s";
    f.ask_size = "/results/S";
    f.exchange_time = TimeField{"/results/t", TimeUnit::ns};
    const Quote q = map_ok(f, polygon_body, "AAPL");
    EXPECT_TRUE(Exact(q.bid, "127.96"));
    EXPECT_TRUE(Exact(q.ask, "127.98"));
    EXPECT_TRUE(Exact(q.bid_size, "1"));
    EXPECT_TRUE(Exact(q.ask_size, "7"));
    // Through a double this would come out as ...730304.
    EXPECT_EQ(q.exchange_time_ns, 1617827221349730300);
}

TEST(MappingVenues, SimulatorShape) {
    const Quote q = map_ok(sim_map(), sim_body, "STOCK_7");
    EXPECT_TRUE(Exact(q.bid, "101.25"));
    EXPECT_TRUE(Exact(q.ask, "101.26"));
    EXPECT_TRUE(Exact(q.bid_size, "12.50"));
    EXPECT_TRUE(Exact(q.ask_size, "8.00"));
    EXPECT_EQ(q.exchange_time_ns, 1764000000000000000);
    EXPECT_EQ(q.seq, 412);
}

// ---------------------------------------------------------------------------------------------
// Exactness and value forms

TEST(MappingValues, JsonNumbersStayExact) {
    const Quote q = map_ok(bid_ask(), R"({"bid":0.00000200,"ask":4.00000000})");
    EXPECT_TRUE(Exact(q.bid, "0.00000200"));
    EXPECT_EQ(q.bid.mantissa(), 200);
    EXPECT_EQ(q.bid.scale(), 8);
    EXPECT_TRUE(Exact(q.ask, "4.00000000"));
}

TEST(MappingValues, IntegersExponentsAndNegatives) {
    const Quote q = map_ok(bid_ask(), R"({"bid":-12,"ask":1.5e-3})");
    EXPECT_EQ(q.bid.mantissa(), -12);
    EXPECT_EQ(q.bid.scale(), 0);
    EXPECT_EQ(q.ask.mantissa(), 15);
    EXPECT_EQ(q.ask.scale(), 4);
    const Quote big = map_ok(bid_ask(), R"({"bid":9223372036854775807,"ask":"-9223372036854775808"})");
    EXPECT_EQ(big.bid.mantissa(), std::numeric_limits<std::int64_t>::max());
    EXPECT_EQ(big.ask.mantissa(), std::numeric_limits<std::int64_t>::min());
}

TEST(MappingValues, EscapedStringsAreDecoded) {
    // "\u0031.5" is "1.5"; the key "b\u0069d" is "bid".
    const Quote q = map_ok(bid_ask(), R"({"b\u0069d":"\u0031.5","ask":"2\u002e25"})");
    EXPECT_TRUE(Exact(q.bid, "1.5"));
    EXPECT_TRUE(Exact(q.ask, "2.25"));
}

TEST(MappingValues, SymbolWithEscapesAndUnicode) {
    FieldMap f = bid_ask();
    f.symbol = "/s";
    const Quote q = map_ok(f, R"({"s":"BTC\/EUR \u00e9\ud83d\ude00","bid":"1","ask":"2"})",
                           "BTC/EUR \xC3\xA9\xF0\x9F\x98\x80");
    EXPECT_TRUE(Exact(q.bid, "1"));
}

TEST(MappingValues, WhitespaceAndBomAroundTokens) {
    const Quote q = map_ok(bid_ask(), "\xEF\xBB\xBF \r\n\t{ \"bid\" :\n\"1.0\" ,\t\"ask\":\r 2.50 } \n");
    EXPECT_TRUE(Exact(q.bid, "1.0"));
    EXPECT_TRUE(Exact(q.ask, "2.50"));
}

// ---------------------------------------------------------------------------------------------
// JSON Pointer features

TEST(MappingPointers, EscapesTildeAndSlash) {
    const Quote q =
        map_ok(bid_ask("/a~1b/m~0n", "/~01"), R"({"a/b":{"m~n":"1"},"~1":"2","/":"3"})");
    EXPECT_TRUE(Exact(q.bid, "1"));
    EXPECT_TRUE(Exact(q.ask, "2"));  // "~01" is the key "~1", not "/"
}

TEST(MappingPointers, EmptyKeyAndRootSlash) {
    const Quote q = map_ok(bid_ask("/", "/x//y"), R"({"":"5","x":{"":{"y":"6"}}})");
    EXPECT_TRUE(Exact(q.bid, "5"));
    EXPECT_TRUE(Exact(q.ask, "6"));
}

TEST(MappingPointers, ArrayIndices) {
    const auto body = R"({"d":[{"p":"1"},{"p":"2"},[["3","4"]]]})"sv;
    const Quote q = map_ok(bid_ask("/d/1/p", "/d/2/0/1"), body);
    EXPECT_TRUE(Exact(q.bid, "2"));
    EXPECT_TRUE(Exact(q.ask, "4"));
    // Leading zeros and '-' never address array elements.
    EXPECT_EQ(map_err(bid_ask("/d/01/p", "/d/0/p"), body), MappingError::missing_field);
    EXPECT_EQ(map_err(bid_ask("/d/-/p", "/d/0/p"), body), MappingError::missing_field);
    EXPECT_EQ(map_err(bid_ask("/d/3/p", "/d/0/p"), body), MappingError::missing_field);
}

TEST(MappingPointers, IndexTokenAlsoNamesObjectMember) {
    const Quote q = map_ok(bid_ask("/d/0/p", "/d/01"), R"({"d":{"0":{"p":"7"},"01":"8"}})");
    EXPECT_TRUE(Exact(q.bid, "7"));
    EXPECT_TRUE(Exact(q.ask, "8"));
}

TEST(MappingPointers, WildcardSearchesUntilTheRestMatches) {
    // The first member lacks "a", so the wildcard's match comes from the second.
    const Quote q = map_ok(bid_ask("/r/*/b", "/r/*/a/0"),
                           R"({"r":{"A":{"b":"1","x":["9"]},"B":{"a":["2"]},"C":{"a":["3"]}}})");
    EXPECT_TRUE(Exact(q.bid, "1"));
    EXPECT_TRUE(Exact(q.ask, "2"));
}

TEST(MappingPointers, WildcardMatchesObjectMembersOnly) {
    EXPECT_EQ(map_err(bid_ask("/r/*", "/a"), R"({"r":["1"],"a":"2"})"),
              MappingError::missing_field);
    const Quote q = map_ok(bid_ask("/*", "/a"), R"({"z":"1","a":"2"})");
    EXPECT_TRUE(Exact(q.bid, "1"));  // first member in document order
}

TEST(MappingPointers, FirstMatchWinsForDuplicateKeys) {
    const Quote q = map_ok(bid_ask(), R"({"bid":"1","ask":"2","bid":"3"})");
    EXPECT_TRUE(Exact(q.bid, "1"));
}

TEST(MappingPointers, UnmappedSubtreesAreSkippedButValidated) {
    const Quote q = map_ok(bid_ask("/x/bid", "/x/ask"),
                           R"({"junk":{"bid":"9","deep":[[[{"ask":"9"}]]]},"x":{"bid":"1","ask":"2"}})");
    EXPECT_TRUE(Exact(q.bid, "1"));
    EXPECT_TRUE(Exact(q.ask, "2"));
    EXPECT_EQ(map_err(bid_ask("/x/bid", "/x/ask"),
                      R"({"junk":{"bid":"9","deep":[[[{"ask":01}]]]},"x":{"bid":"1","ask":"2"}})"),
              MappingError::malformed_json);
}

TEST(MappingPointers, PointerThroughScalarOrToContainerFinds) {
    EXPECT_EQ(map_err(bid_ask("/bid/x", "/ask"), R"({"bid":"1","ask":"2"})"),
              MappingError::missing_field);
    EXPECT_EQ(map_err(bid_ask(), R"({"bid":{"x":"1"},"ask":"2"})"), MappingError::bad_number);
    EXPECT_EQ(map_err(bid_ask(), R"({"bid":["1"],"ask":"2"})"), MappingError::bad_number);
    EXPECT_EQ(map_err(bid_ask(), R"({"bid":{},"ask":"2"})"), MappingError::bad_number);
}

TEST(MappingPointers, RootScalarBodyMatchesNothing) {
    EXPECT_EQ(map_err(bid_ask(), R"("1")"), MappingError::missing_field);
    EXPECT_EQ(map_err(bid_ask(), "[]"), MappingError::missing_field);
}

TEST(MappingPointers, ConstructorRejectsInvalidPointers) {
    EXPECT_THROW(QuoteMapper(bid_ask("bid", "/ask")), std::invalid_argument);
    EXPECT_THROW(QuoteMapper(bid_ask("/bid", "ask/")), std::invalid_argument);
    EXPECT_THROW(QuoteMapper(bid_ask("/a~2", "/ask")), std::invalid_argument);
    EXPECT_THROW(QuoteMapper(bid_ask("/a~", "/ask")), std::invalid_argument);
    EXPECT_THROW(QuoteMapper(bid_ask("/a/~/b", "/ask")), std::invalid_argument);
    FieldMap f = bid_ask();
    f.seq = "#/seq";
    EXPECT_THROW(QuoteMapper{f}, std::invalid_argument);
    f = bid_ask();
    f.exchange_time = TimeField{"time", TimeUnit::ms};
    EXPECT_THROW(QuoteMapper{f}, std::invalid_argument);
    // Bid and ask are required.
    EXPECT_THROW(QuoteMapper(bid_ask("", "/ask")), std::invalid_argument);
    EXPECT_THROW(QuoteMapper(bid_ask("/bid", "")), std::invalid_argument);
    try {
        QuoteMapper m(bid_ask("/ok", "/x~3"));
        FAIL() << "no exception";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("ask"), std::string::npos) << e.what();
    }
}

TEST(MappingPointers, ConstructorAcceptsValidPointers) {
    FieldMap f = bid_ask("/", "/~0~1/*/0/-");
    f.bid_size = "/a//b";
    f.symbol = "";  // empty: not mapped
    f.exchange_time = TimeField{"", TimeUnit::ms};
    EXPECT_NO_THROW(QuoteMapper{f});
}

// ---------------------------------------------------------------------------------------------
// Optional fields

TEST(MappingOptional, AbsentOrNullOptionalFieldsAreUnset) {
    FieldMap f = sim_map();
    f.symbol.clear();
    const Quote q = map_ok(f, R"({"bidPrice":"1","askPrice":"2","bidQty":null,"time":null,"seq":null})");
    EXPECT_FALSE(q.has_bid_size);
    EXPECT_FALSE(q.has_ask_size);
    EXPECT_TRUE(q.bid_size.is_zero());
    EXPECT_EQ(q.exchange_time_ns, 0);
    EXPECT_EQ(q.seq, -1);
}

TEST(MappingOptional, LeavesSourceSymbolAndReceiveTimeAlone) {
    QuoteMapper m(sim_map());
    Quote q;
    q.source = 3;
    q.symbol = 11;
    q.receive_time_ns = 123456789;
    ASSERT_FALSE(m.map(sim_body, "STOCK_7", q));
    EXPECT_EQ(q.source, 3u);
    EXPECT_EQ(q.symbol, 11u);
    EXPECT_EQ(q.receive_time_ns, 123456789);
}

TEST(MappingOptional, SeqFromIntegerOrDigitString) {
    FieldMap f = bid_ask();
    f.seq = "/seq";
    EXPECT_EQ(map_ok(f, R"({"bid":"1","ask":"2","seq":"000412"})").seq, 412);
    EXPECT_EQ(map_ok(f, R"({"bid":"1","ask":"2","seq":0})").seq, 0);
    EXPECT_EQ(map_ok(f, R"({"bid":"1","ask":"2","seq":9223372036854775807})").seq,
              std::numeric_limits<std::int64_t>::max());
}

// ---------------------------------------------------------------------------------------------
// Timestamps

TEST(MappingTime, UnitsFromNumbersAndStrings) {
    struct Case {
        TimeUnit unit;
        std::string value;
        std::int64_t ns;
    };
    const Case cases[] = {
        {TimeUnit::s, "1700000000", 1700000000000000000},
        {TimeUnit::s, "\"1700000000\"", 1700000000000000000},
        {TimeUnit::ms, "1764000000000", 1764000000000000000},
        {TimeUnit::ms, "\"1774805577108\"", 1774805577108000000},
        {TimeUnit::us, "1764000000000123", 1764000000000123000},
        {TimeUnit::ns, "\"1617827221349730300\"", 1617827221349730300},
        {TimeUnit::ns, "9223372036854775807", 9223372036854775807},
        // Fractions convert exactly; digits finer than a nanosecond are truncated.
        {TimeUnit::s, "1700000000.123", 1700000000123000000},
        {TimeUnit::s, "\"1700000000.123456789\"", 1700000000123456789},
        {TimeUnit::ms, "1764000000000.5", 1764000000000500000},
        {TimeUnit::ns, "1617827221349730300.9", 1617827221349730300},
        {TimeUnit::s, "1.7e9", 1700000000000000000},
        {TimeUnit::ms, "1.5e3", 1500000000},
        {TimeUnit::s, "1e-9", 1},
        {TimeUnit::s, "0.0000000009", 0},
        {TimeUnit::us, "\"0001764000000000123\"", 1764000000000123000},
        {TimeUnit::ms, "0", 0},
    };
    for (const Case& c : cases) {
        const std::string body = R"({"bid":"1","ask":"2","t":)" + c.value + "}";
        EXPECT_EQ(map_ok(with_time("/t", c.unit), body).exchange_time_ns, c.ns) << body;
    }
}

TEST(MappingTime, Rfc3339Field) {
    const auto t = [](std::string_view s) {
        return R"({"bid":"1","ask":"2","t":")" + std::string(s) + "\"}";
    };
    const FieldMap f = with_time("/t", TimeUnit::rfc3339);
    EXPECT_EQ(map_ok(f, t("2022-08-17T12:09:34.055031265+02:00")).exchange_time_ns,
              1660730974055031265);
    EXPECT_EQ(map_err(f, t("2022-13-17T10:09:34Z")), MappingError::bad_timestamp);
    EXPECT_EQ(map_err(f, t("1969-12-31T23:59:59Z")), MappingError::bad_timestamp);
    EXPECT_EQ(map_err(f, R"({"bid":"1","ask":"2","t":1660730974})"), MappingError::bad_timestamp);
}

TEST(MappingTime, BadTimestamps) {
    struct Case {
        TimeUnit unit;
        std::string value;
    };
    const Case cases[] = {
        {TimeUnit::ms, "\"abc\""},
        {TimeUnit::ms, "\"\""},
        {TimeUnit::ms, "\" 1764000000000\""},
        {TimeUnit::ms, "true"},
        {TimeUnit::ms, "{}"},
        {TimeUnit::ms, "[1]"},
        {TimeUnit::ms, "-1"},
        {TimeUnit::s, "\"-5\""},
        {TimeUnit::s, "9999999999999"},               // * 1e9 overflows int64
        {TimeUnit::ms, "9223372036854776"},           // * 1e6 overflows
        {TimeUnit::ns, "9223372036854775808"},        // beyond int64
        {TimeUnit::ns, "99999999999999999999999999"},
        {TimeUnit::ms, "1e400"},
        {TimeUnit::ms, "\"2022-08-17T10:09:34Z\""},   // RFC 3339 text for a numeric unit
    };
    for (const Case& c : cases) {
        const std::string body = R"({"bid":"1","ask":"2","t":)" + c.value + "}";
        EXPECT_EQ(map_err(with_time("/t", c.unit), body), MappingError::bad_timestamp) << body;
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST(MappingErrors, MalformedJson) {
    for (std::string_view body :
         {""sv, " "sv, "{"sv, "}"sv, "{\"bid\":\"1\",\"ask\":\"2\""sv,
          R"({"bid":"1","ask":"2",})"sv, R"({"bid":"1","ask":"2"}x)"sv,
          R"({"bid":"1","ask":"2"}{})"sv, R"({"bid":"1" "ask":"2"})"sv,
          R"({"bid":"1","ask":NaN})"sv, R"({"bid":"1","ask":Infinity})"sv,
          R"({'bid':'1','ask':'2'})"sv, R"({bid:"1","ask":"2"})"sv,
          R"({"bid":01,"ask":2})"sv, R"({"bid":1.,"ask":2})"sv, R"({"bid":.5,"ask":2})"sv,
          R"({"bid":+1,"ask":2})"sv, R"({"bid":1e,"ask":2})"sv, R"({"bid":-,"ask":2})"sv,
          R"({"bid":"1","ask":"2"} // c)"sv, R"({"bid":"1",/*c*/"ask":"2"})"sv,
          R"({"bid":"1","ask":"2\x"})"sv, R"({"bid":"1","ask":"\u12"})"sv,
          R"({"bid":"1","ask":"\ud800"})"sv, R"({"bid":"1","ask":"\udc00\ud800"})"sv,
          R"({"bid":"1","ask":"\ud800\u0041"})"sv, "{\"bid\":\"1\",\"ask\":\"2\t\"}"sv,
          "{\"bid\":\"1\",\"ask\":\"\xC3\"}"sv, "{\"bid\":\"1\",\"ask\":\"\xC0\xAF\"}"sv,
          "{\"bid\":\"1\",\"ask\":\"\xED\xA0\x80\"}"sv, "{\"bid\":\"1\",\"ask\":\"\xF4\x90\x80\x80\"}"sv,
          "{\"bid\":\"1\",\"ask\":\"\xFF\"}"sv, "{\"bid\":\"1\",\"ask\":\"2\"}\0"sv,
          R"({"bid":tru,"ask":"2"})"sv, R"({"bid":nulll,"ask":"2"})"sv, R"({"bid":"1","ask"})"sv,
          R"({"bid":"1";"ask":"2"})"sv, R"(["bid","ask"])"sv.substr(0, 10), R"([1,])"sv,
          R"([1 2])"sv, R"({"a":[}])"sv, R"({"a":{]})"sv, "\xEF\xBB{}"sv}) {
        EXPECT_EQ(map_err(bid_ask(), body), MappingError::malformed_json)
            << "body: " << ::testing::PrintToString(std::string(body));
    }
}

TEST(MappingErrors, MalformedJsonTakesPrecedence) {
    // The body also names another symbol and lacks "ask", but it is cut short.
    FieldMap f = bid_ask();
    f.symbol = "/s";
    EXPECT_EQ(map_err(f, R"({"s":"OTHER","bid":"x")", "MINE"), MappingError::malformed_json);
}

TEST(MappingErrors, MissingField) {
    EXPECT_EQ(map_err(bid_ask(), R"({"bid":"1"})"), MappingError::missing_field);
    EXPECT_EQ(map_err(bid_ask(), R"({"ask":"1"})"), MappingError::missing_field);
    EXPECT_EQ(map_err(bid_ask(), R"({"bid":"1","ask":null})"), MappingError::missing_field);
    EXPECT_EQ(map_err(bid_ask(), R"({"bid":null,"ask":"1"})"), MappingError::missing_field);
    EXPECT_EQ(map_err(bid_ask(), R"({"Bid":"1","Ask":"2"})"), MappingError::missing_field);
    EXPECT_EQ(map_err(bid_ask(), "{}"), MappingError::missing_field);
    // A mapped symbol is required too.
    FieldMap f = bid_ask();
    f.symbol = "/s";
    EXPECT_EQ(map_err(f, R"({"bid":"1","ask":"2"})", "X"), MappingError::missing_field);
    EXPECT_EQ(map_err(f, R"({"s":null,"bid":"1","ask":"2"})", "X"), MappingError::missing_field);
}

TEST(MappingErrors, BadNumber) {
    FieldMap f = bid_ask();
    f.bid_size = "/bs";
    f.seq = "/seq";
    const std::string ok = R"("bid":"1","ask":"2")";
    for (std::string extra :
         {R"("bid":"abc")", R"("bid":"")", R"("bid":" 1")", R"("bid":"1 ")", R"("bid":"NaN")",
          R"("bid":true)", R"("bid":false)", R"("bid":"0x1F")", R"("bid":"1,5")",
          R"("bid":"0.0000000000000000001")", R"("bid":1e400)", R"("bid":99999999999999999999)",
          R"("ask":"Infinity")", R"("ask":[])", R"("bs":"x")", R"("bs":true)", R"("bs":{})",
          R"("seq":"12a")", R"("seq":1.5)", R"("seq":1e3)", R"("seq":-3)", R"("seq":"-3")",
          R"("seq":"+3")", R"("seq":"")", R"("seq":9223372036854775808)", R"("seq":true)",
          R"("seq":"1.0")"}) {
        // The extra member comes first so that it wins over the valid one (first match).
        const std::string body = "{" + extra + "," + ok + "}";
        EXPECT_EQ(map_err(f, body), MappingError::bad_number) << body;
    }
}

TEST(MappingErrors, SymbolMismatch) {
    FieldMap f = bid_ask();
    f.symbol = "/s";
    EXPECT_EQ(map_err(f, R"({"s":"ETHUSDT","bid":"1","ask":"2"})", "BTCUSDT"),
              MappingError::symbol_mismatch);
    EXPECT_EQ(map_err(f, R"({"s":"btcusdt","bid":"1","ask":"2"})", "BTCUSDT"),
              MappingError::symbol_mismatch);
    EXPECT_EQ(map_err(f, R"({"s":"BTCUSDT ","bid":"1","ask":"2"})", "BTCUSDT"),
              MappingError::symbol_mismatch);
    EXPECT_EQ(map_err(f, R"({"s":{"n":"BTCUSDT"},"bid":"1","ask":"2"})", "BTCUSDT"),
              MappingError::symbol_mismatch);
    EXPECT_EQ(map_err(f, R"({"s":true,"bid":"1","ask":"2"})", "true"),
              MappingError::symbol_mismatch);
    // Checked before the prices: a quote for another symbol says so even if it lacks fields.
    EXPECT_EQ(map_err(f, R"({"s":"ETHUSDT"})", "BTCUSDT"), MappingError::symbol_mismatch);
    // A numeric symbol compares by its text.
    EXPECT_FALSE(map_err(f, R"({"s":7,"bid":"1","ask":"2"})", "7"));
    // Kraken answers XBTUSD with key XXBTZUSD; with no symbol pointer nothing is checked.
    EXPECT_FALSE(map_err(bid_ask("/result/*/b/0", "/result/*/a/0"), kraken_body, "XBTUSD"));
}

TEST(MappingErrors, OutputUntouchedOnError) {
    QuoteMapper m(sim_map());
    Quote q = map_ok(m, sim_body, "STOCK_7");
    const Quote before = q;
    EXPECT_EQ(m.map(R"({"symbol":"STOCK_7","bidPrice":"x","askPrice":"1"})", "STOCK_7", q),
              MappingError::bad_number);
    EXPECT_EQ(q.bid, before.bid);
    EXPECT_EQ(q.seq, before.seq);
    EXPECT_EQ(q.exchange_time_ns, before.exchange_time_ns);
}

TEST(MappingErrors, Category) {
    const std::error_code ec = MappingError::bad_timestamp;
    EXPECT_STREQ(ec.category().name(), "mdagg.mapping");
    EXPECT_EQ(&ec.category(), &mapping_category());
    EXPECT_EQ(ec, make_error_code(MappingError::bad_timestamp));
    EXPECT_NE(ec, make_error_code(MappingError::bad_number));
    EXPECT_EQ(ec.value(), static_cast<int>(MappingError::bad_timestamp));
    std::vector<std::string> messages;
    for (auto e : {MappingError::malformed_json, MappingError::missing_field,
                   MappingError::bad_number, MappingError::bad_timestamp,
                   MappingError::symbol_mismatch, MappingError::body_error}) {
        messages.push_back(make_error_code(e).message());
    }
    for (std::size_t i = 0; i < messages.size(); ++i) {
        EXPECT_FALSE(messages[i].empty());
        for (std::size_t j = i + 1; j < messages.size(); ++j) EXPECT_NE(messages[i], messages[j]);
    }
    EXPECT_NE(messages[0].find("JSON"), std::string::npos);
    EXPECT_FALSE(mapping_category().message(999).empty());
    // A success is a default error_code, not a category member.
    EXPECT_FALSE(std::error_code());
}

// ---------------------------------------------------------------------------------------------
// Body-level success checks: venues that answer errors with a 200

FieldMap with_success(FieldMap f, std::string pointer, std::optional<std::string> equals, bool empty = false) {
    f.success = SuccessCheck{std::move(pointer), std::move(equals), empty};
    return f;
}

TEST(MappingSuccess, OkxStringCodeMustEqualZero) {
    FieldMap f = with_success(bid_ask("/data/0/bidPx", "/data/0/askPx"), "/code", "0");
    EXPECT_TRUE(Exact(map_ok(f, okx_body).bid, "66260.2"));
    // The error body has no prices: it must say body_error, not missing_field.
    EXPECT_EQ(map_err(f, R"({"code":"50011","msg":"Too Many Requests","data":[]})"),
              MappingError::body_error);
    EXPECT_EQ(map_err(f, R"({"msg":"no code at all","data":[{"bidPx":"1","askPx":"2"}]})"),
              MappingError::body_error);
    EXPECT_EQ(map_err(f, R"({"code":null,"data":[{"bidPx":"1","askPx":"2"}]})"), MappingError::body_error);
    // Malformed JSON stays malformed, whatever the check.
    EXPECT_EQ(map_err(f, R"({"code":"0",)"), MappingError::malformed_json);
}

TEST(MappingSuccess, BybitNumericCodeMatchesItsText) {
    FieldMap f = with_success(bid_ask("/result/list/0/bid1Price", "/result/list/0/ask1Price"), "/retCode", "0");
    EXPECT_TRUE(Exact(map_ok(f, bybit_body).ask, "66782.3"));
    EXPECT_EQ(map_err(f, R"({"retCode":10006,"retMsg":"Too many visits!","result":{}})"),
              MappingError::body_error);
    // A code that is an object is no match for "0".
    EXPECT_EQ(map_err(f, R"({"retCode":{"v":0},"result":{"list":[{"bid1Price":"1","ask1Price":"2"}]}})"),
              MappingError::body_error);
}

TEST(MappingSuccess, KrakenEmptyErrorArray) {
    FieldMap f = with_success(bid_ask("/result/*/b/0", "/result/*/a/0"), "/error", std::nullopt, true);
    EXPECT_TRUE(Exact(map_ok(f, kraken_body).bid, "30300.00000"));
    EXPECT_EQ(map_err(f, R"({"error":["EAPI:Rate limit exceeded"]})"), MappingError::body_error);
    EXPECT_EQ(map_err(f, R"({"error":[[]],"result":{"X":{"a":["2"],"b":["1"]}}})"), MappingError::body_error);
    EXPECT_EQ(map_err(f, R"({"error":{"k":1},"result":{"X":{"a":["2"],"b":["1"]}}})"), MappingError::body_error);
    EXPECT_EQ(map_err(f, R"({"error":"EGeneral:Internal error"})"), MappingError::body_error);
    // Absent, null, "" and {} all mean no error.
    for (auto body : {R"({"result":{"X":{"a":["2"],"b":["1"]}}})"sv,
                      R"({"error":null,"result":{"X":{"a":["2"],"b":["1"]}}})"sv,
                      R"({"error":"","result":{"X":{"a":["2"],"b":["1"]}}})"sv,
                      R"({"error":{},"result":{"X":{"a":["2"],"b":["1"]}}})"sv,
                      R"({"result":{"X":{"a":["2"],"b":["1"]}},"error":[ ]})"sv})
        EXPECT_TRUE(Exact(map_ok(f, body).bid, "1")) << body;
}

TEST(MappingSuccess, ErrorInANestedSiblingDoesNotLeakIntoTheCheck) {
    // Only the success container's own members count, not those of a container beside it.
    FieldMap f = with_success(bid_ask("/q/bid", "/q/ask"), "/error", std::nullopt, true);
    EXPECT_TRUE(Exact(map_ok(f, R"({"error":[],"q":{"bid":"1","ask":"2","error":["x"]}})").ask, "2"));
    QuoteMapper m(f);
    Quote q;
    EXPECT_EQ(m.map(R"({"error":["busy"]})", "", q), MappingError::body_error);
    // The next body is judged on its own.
    EXPECT_FALSE(m.map(R"({"error":[],"q":{"bid":"1","ask":"2"}})", "", q));
}

// ---------------------------------------------------------------------------------------------
// Reuse

TEST(MappingReuse, NothingLeaksFromOneBodyToTheNext) {
    QuoteMapper m(sim_map());
    Quote q = map_ok(m, sim_body, "STOCK_7");
    ASSERT_TRUE(q.has_bid_size);
    ASSERT_EQ(q.seq, 412);

    // Same mapper, a body without any optional field.
    q = map_ok(m, R"({"symbol":"STOCK_7","bidPrice":"99","askPrice":"100"})", "STOCK_7");
    EXPECT_TRUE(Exact(q.bid, "99"));
    EXPECT_FALSE(q.has_bid_size);
    EXPECT_FALSE(q.has_ask_size);
    EXPECT_EQ(q.seq, -1);
    EXPECT_EQ(q.exchange_time_ns, 0);

    // A body missing a required field must not borrow it from the previous one.
    EXPECT_EQ(m.map(R"({"symbol":"STOCK_7","bidPrice":"99"})", "STOCK_7", q),
              MappingError::missing_field);
    // Nor a symbol.
    EXPECT_EQ(m.map(R"({"bidPrice":"99","askPrice":"100"})", "STOCK_7", q),
              MappingError::missing_field);
    // A failure mid-body leaves nothing behind either.
    EXPECT_EQ(m.map(R"({"symbol":"STOCK_7","bidPrice":"98","askPrice":)", "STOCK_7", q),
              MappingError::malformed_json);
    q = map_ok(m, R"({"symbol":"STOCK_7","askPrice":"7","bidPrice":"6","seq":5})", "STOCK_7");
    EXPECT_TRUE(Exact(q.bid, "6"));
    EXPECT_TRUE(Exact(q.ask, "7"));
    EXPECT_EQ(q.seq, 5);
}

TEST(MappingReuse, EscapedValuesDoNotAlias) {
    QuoteMapper m(bid_ask());
    Quote a = map_ok(m, R"({"bid":"\u0031.25","ask":"\u0032.5"})");
    Quote b = map_ok(m, R"({"bid":"\u0033","ask":"\u0034.000"})");
    EXPECT_TRUE(Exact(a.bid, "1.25"));
    EXPECT_TRUE(Exact(a.ask, "2.5"));
    EXPECT_TRUE(Exact(b.bid, "3"));
    EXPECT_TRUE(Exact(b.ask, "4.000"));
}

TEST(MappingReuse, ManyRandomBodiesMapIndependently) {
    QuoteMapper m(sim_map());
    std::mt19937_64 rng(42);
    for (int i = 0; i < 2000; ++i) {
        const std::int64_t bid = static_cast<std::int64_t>(rng() % 10'000'000);
        const int scale = static_cast<int>(rng() % 9);
        const bool with_size = rng() & 1;
        const bool with_seq = rng() & 1;
        const std::string bid_text = Decimal(bid, scale).to_string();
        const std::string ask_text = Decimal(bid + 1, scale).to_string();
        std::string body = R"({"symbol":"S","bidPrice":")" + bid_text + R"(","askPrice":)" +
                           ask_text;  // ask as a JSON number
        if (with_size) body += R"(,"bidQty":")" + std::to_string(i) + R"(.0")";
        if (with_seq) body += R"(,"seq":)" + std::to_string(i);
        body += "}";
        const Quote q = map_ok(m, body, "S");
        EXPECT_EQ(q.bid.to_string(), bid_text);
        EXPECT_EQ(q.ask.to_string(), ask_text);
        EXPECT_EQ(q.has_bid_size, with_size);
        if (with_size) {
            EXPECT_EQ(q.bid_size, Decimal(i * 10, 1));
        }
        EXPECT_EQ(q.seq, with_seq ? i : -1);
    }
}

TEST(MappingReuse, MovedMapperKeepsWorking) {
    QuoteMapper a(sim_map());
    QuoteMapper b(std::move(a));
    EXPECT_EQ(map_ok(b, sim_body, "STOCK_7").seq, 412);
    QuoteMapper c(bid_ask());
    c = std::move(b);
    EXPECT_EQ(map_ok(c, sim_body, "STOCK_7").seq, 412);
}

// ---------------------------------------------------------------------------------------------
// Hot path

TEST(MappingHotPath, NoAllocationAfterFirstCall) {
    struct Setup {
        FieldMap fields;
        std::string_view body;
        std::string_view symbol;
    };
    FieldMap kraken = bid_ask("/result/*/b/0", "/result/*/a/0");
    kraken.bid_size = "/result/*/b/2";
    FieldMap alpaca = bid_ask("/quote/bp", "/quote/ap");
    alpaca.exchange_time = TimeField{"/quote/t", TimeUnit::rfc3339};
    FieldMap escaped = bid_ask("/b~1id", "/ask");
    escaped.symbol = "/s";
    const std::string long_escaped =
        R"({"b/id":"\u0031.)" + std::string(200, '0') + R"(","ask":"2","s":"\u0041BCDEFGHIJKLMNOPQRSTUVWXYZ_LONG_SYMBOL","pad":[)" +
        std::string(100, '[') + std::string(100, ']') + "]}";
    const std::vector<Setup> setups = {
        {sim_map(), sim_body, "STOCK_7"},
        {binance_map(), binance_body, "LTCBTC"},
        {kraken, kraken_body, ""},
        {alpaca, alpaca_body, ""},
        {escaped, long_escaped, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_LONG_SYMBOL"},
    };
    for (const Setup& s : setups) {
        QuoteMapper m(s.fields);
        Quote q;
        std::error_code ec = m.map(s.body, s.symbol, q);  // may size buffers
        ASSERT_FALSE(ec) << ec.message() << " " << s.body;
        const long before = g_allocations.load();
        for (int i = 0; i < 100; ++i) {
            ec = m.map(s.body, s.symbol, q);
            if (ec) break;
            ec = m.map("{\"broken\":", s.symbol, q);  // errors must not allocate either
            if (ec != MappingError::malformed_json) break;
            ec = {};
        }
        const long allocations = g_allocations.load() - before;
        EXPECT_FALSE(ec) << ec.message();
        EXPECT_EQ(allocations, 0) << s.body;
    }
}

TEST(MappingHotPath, TypicalBodiesDoNotAllocateEvenOnTheFirstCall) {
    const long at_start = g_allocations.load();
    QuoteMapper m(sim_map());
    ASSERT_GT(g_allocations.load(), at_start) << "the allocation counter is not counting";
    Quote q;
    const long before = g_allocations.load();
    const std::error_code ec = m.map(sim_body, "STOCK_7", q);
    const long allocations = g_allocations.load() - before;
    EXPECT_FALSE(ec);
    EXPECT_EQ(allocations, 0);
}

// A source compiles its fields once; its pollers' mappers are copies that share them.
TEST(MappingShared, CopiesShareTheCompiledFieldsAndMapAlike) {
    const QuoteMapper original(sim_map());
    const long before = g_allocations.load();
    const QuoteMapper copy = original;
    EXPECT_EQ(g_allocations.load() - before, 0) << "a copy compiled the fields again";
    Quote a, b;
    ASSERT_FALSE(original.map(sim_body, "STOCK_7", a));
    ASSERT_FALSE(copy.map(sim_body, "STOCK_7", b));
    EXPECT_EQ(a.bid, b.bid);
    EXPECT_EQ(a.ask, b.ask);
    EXPECT_EQ(a.seq, b.seq);
    EXPECT_EQ(a.exchange_time_ns, b.exchange_time_ns);
    EXPECT_EQ(copy.map(sim_body, "STOCK_8", b), MappingError::symbol_mismatch);
}

// Pollers on several io threads map at the same time with copies of one mapper: the working
// state is per thread, so bodies never mix (TSan runs this one).
TEST(MultiThreadedMapping, CopiesOfOneMapperMapConcurrently) {
    const QuoteMapper shared(sim_map());
    auto body_for = [](int t, int i) {
        return R"({"symbol":"STOCK_)" + std::to_string(t) + R"(","bidPrice":")" + std::to_string(100 + i) +
               R"(.25","bidQty":"1","askPrice":")" + std::to_string(100 + i) + R"(.5","askQty":"2","time":1764000000000,"seq":)" +
               std::to_string(i) + "}";
    };
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            const QuoteMapper mine = shared;
            const std::string symbol = "STOCK_" + std::to_string(t);
            for (int i = 0; i < 2000; ++i) {
                Quote q;
                const std::string body = body_for(t, i);
                if (mine.map(body, symbol, q) || q.seq != i || q.bid.to_string() != std::to_string(100 + i) + ".25")
                    wrong.fetch_add(1);
            }
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(wrong.load(), 0);
}

TEST(MappingHotPath, DeepNestingDoesNotRecurse) {
    const std::size_t depth = 100000;
    std::string body = R"({"bid":"1","ask":"2","x":)" + std::string(depth, '[') +
                       std::string(depth, ']') + "}";
    QuoteMapper m(bid_ask());
    Quote q;
    EXPECT_FALSE(m.map(body, "", q));
    body.pop_back();
    EXPECT_EQ(m.map(body, "", q), MappingError::malformed_json);
}

// ---------------------------------------------------------------------------------------------
// The JSON reader agrees with nlohmann::json on what is valid JSON

namespace {

// nullopt where nlohmann cannot judge the grammar: it stops at a NUL byte as if the input
// ended there, and it aborts on a number beyond double's range (out_of_range 406) before
// reading the rest. The mapper follows RFC 8259 on both.
std::optional<bool> nlohmann_valid(const std::string& body) {
    try {
        const auto j = nlohmann::json::parse(body);
        (void)j;
        if (body.find('\0') != std::string::npos) return std::nullopt;
        return true;
    } catch (const nlohmann::json::out_of_range& e) {
        if (e.id == 406) return std::nullopt;
        return false;
    } catch (const nlohmann::json::exception&) {
        return false;
    }
}

}  // namespace

TEST(MappingJsonReader, AgreesWithNlohmannOnMutatedBodies) {
    const std::vector<std::string> seeds = {
        std::string(binance_body), std::string(coinbase_body), std::string(kraken_body),
        std::string(okx_body), std::string(bybit_body), std::string(alpaca_body),
        std::string(polygon_body), std::string(sim_body),
        R"({"s":"\u00e9\ud83d\ude00\"\\\/\b\f\n\r\t","n":[-0,0.5e+10,-1E-2,true,false,null,{}]})",
        "{\"utf8\":\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xEF\xBF\xBF\xF4\x8F\xBF\xBF\"}",
        "[]", "0", "\"x\"", " [ 1 , { } ] ",
    };
    // Bytes that matter to a JSON lexer, plus bytes that start or break UTF-8 sequences.
    const std::string alphabet = "{}[]:,\"\\/ \t\n0123456789.-+eEtrufalsn\x01\x7f\x80\xbf\xc2\xe0\xed\xf0\xf4\xff u";
    std::mt19937_64 rng(1234);
    QuoteMapper m(bid_ask("/bid", "/ask"));
    int disagreements = 0, invalid = 0, undecided = 0;
    for (int i = 0; i < 60000; ++i) {
        std::string body = seeds[rng() % seeds.size()];
        const int edits = 1 + static_cast<int>(rng() % 3);
        for (int e = 0; e < edits; ++e) {
            const std::size_t pos = body.empty() ? 0 : rng() % (body.size() + 1);
            const char c = alphabet[rng() % alphabet.size()];
            switch (rng() % 4) {
            case 0:
                if (pos < body.size()) body[pos] = c;
                break;
            case 1: body.insert(pos, 1, c); break;
            case 2:
                if (pos < body.size()) body.erase(pos, 1);
                break;
            default: body.resize(pos); break;  // truncation
            }
        }
        Quote q;
        const bool ours = m.map(body, "", q) != MappingError::malformed_json;
        const std::optional<bool> theirs = nlohmann_valid(body);
        if (!theirs) {
            ++undecided;
            continue;
        }
        EXPECT_EQ(ours, *theirs) << "body: " << ::testing::PrintToString(body);
        if (ours != *theirs && ++disagreements > 20) break;
        if (!*theirs) ++invalid;
    }
    EXPECT_LT(undecided, 1000);
    RecordProperty("invalid", invalid);
    RecordProperty("undecided", undecided);
    // The mutations must exercise both outcomes for the comparison to mean anything.
    EXPECT_GT(invalid, 10000);
    EXPECT_LT(invalid, 55000);
}

// ---------------------------------------------------------------------------------------------
// parse_rfc3339_ns

TEST(Rfc3339, ValidTimes) {
    EXPECT_EQ(parse_rfc3339_ns("1970-01-01T00:00:00Z"), 0);
    EXPECT_EQ(parse_rfc3339_ns("2022-08-17T10:09:34.055031265Z"), 1660730974055031265);
    EXPECT_EQ(parse_rfc3339_ns("2020-03-20T00:22:57.833Z"), 1584663777833000000);
    EXPECT_EQ(parse_rfc3339_ns("2022-08-17T12:09:34.055031265+02:00"), 1660730974055031265);
    EXPECT_EQ(parse_rfc3339_ns("2022-08-17T10:09:34-05:30"), 1660750774000000000);
    EXPECT_EQ(parse_rfc3339_ns("2022-08-17T04:39:34-05:30"), 1660730974000000000);
    EXPECT_EQ(parse_rfc3339_ns("2022-08-17T10:09:34.055031265-00:00"), 1660730974055031265);
    EXPECT_EQ(parse_rfc3339_ns("2022-08-17t10:09:34.055031265z"), 1660730974055031265);
    EXPECT_EQ(parse_rfc3339_ns("2020-03-20T00:22:57.8Z"), 1584663777800000000);
    EXPECT_EQ(parse_rfc3339_ns("2020-03-20T00:22:57.000000001Z"), 1584663777000000001);
    EXPECT_EQ(parse_rfc3339_ns("1969-12-31T23:59:59.999999999Z"), -1);
    EXPECT_EQ(parse_rfc3339_ns("2024-02-29T12:00:00Z"), 1709208000000000000);
    EXPECT_EQ(parse_rfc3339_ns("2000-02-29T00:00:00Z"), 951782400000000000);
    // A leap second counts as the next second.
    EXPECT_EQ(parse_rfc3339_ns("2016-12-31T23:59:60Z"), 1483228800000000000);
    // Day rolls back across midnight through the offset.
    EXPECT_EQ(parse_rfc3339_ns("2017-01-01T05:30:00+05:30"), 1483228800000000000);
}

TEST(Rfc3339, Int64Boundaries) {
    EXPECT_EQ(parse_rfc3339_ns("2262-04-11T23:47:16.854775807Z"),
              std::numeric_limits<std::int64_t>::max());
    EXPECT_FALSE(parse_rfc3339_ns("2262-04-11T23:47:16.854775808Z"));
    EXPECT_EQ(parse_rfc3339_ns("1677-09-21T00:12:43.145224192Z"),
              std::numeric_limits<std::int64_t>::min());
    EXPECT_FALSE(parse_rfc3339_ns("1677-09-21T00:12:43.145224191Z"));
    EXPECT_FALSE(parse_rfc3339_ns("9999-12-31T23:59:59Z"));
    EXPECT_FALSE(parse_rfc3339_ns("0000-01-01T00:00:00Z"));
}

TEST(Rfc3339, Rejects) {
    for (std::string_view bad : {
             ""sv,
             "2022-08-17"sv,
             "2022-08-17T10:09:34"sv,            // no offset
             "2022-13-17T10:09:34Z"sv,           // month 13
             "2022-00-17T10:09:34Z"sv,
             "2022-08-00T10:09:34Z"sv,
             "2022-08-32T10:09:34Z"sv,
             "2023-02-29T10:09:34Z"sv,           // not a leap year
             "2022-02-30T10:09:34Z"sv,
             "2100-02-29T10:09:34Z"sv,           // century, not leap
             "1900-02-29T10:09:34Z"sv,
             "2022-04-31T10:09:34Z"sv,
             "2022-08-17T24:00:00Z"sv,
             "2022-08-17T10:60:34Z"sv,
             "2022-08-17T10:09:61Z"sv,
             "2022-08-17T10:09:34.Z"sv,          // '.' without digits
             "2022-08-17T10:09:34.0550312651Z"sv,  // 10 fraction digits
             "2022-08-17 10:09:34Z"sv,
             "2022-08-17X10:09:34Z"sv,
             "22-08-17T10:09:34Z"sv,
             "2022-8-17T10:09:34Z"sv,
             "2022-08-17T10:9:34Z"sv,
             "2022/08/17T10:09:34Z"sv,
             "2022-08-17T10:09:34+2:00"sv,
             "2022-08-17T10:09:34+0200"sv,
             "2022-08-17T10:09:34+24:00"sv,
             "2022-08-17T10:09:34+02:60"sv,
             "2022-08-17T10:09:34ZZ"sv,
             "2022-08-17T10:09:34Z "sv,
             " 2022-08-17T10:09:34Z"sv,
             "2022-08-17T10:09:34+02:00Z"sv,
             "+2022-08-17T10:09:34Z"sv,
             "2022-08-17T10:09:34.-5Z"sv,
             "2022-08-17T10:09:34\0Z"sv,
         }) {
        EXPECT_FALSE(parse_rfc3339_ns(bad)) << '"' << bad << '"';
    }
}

TEST(MappingJsonReader, StringScanFindsEachSpecialByteAtEveryOffsetOfAWord) {
    // Plain runs are skipped 8 bytes at a time: put each byte that ends or interrupts a run at
    // every offset of the first three words of a key and of a value, and require nlohmann's
    // verdict and, when valid, the exact decoded content (it must equal the symbol expected).
    const std::vector<std::string> specials = {"\"", "\\\\", "\\n", "\\u00e9", "\x01", "\x1f", " ", "\x7f",
                                               "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\x80", "\xff"};
    FieldMap f = bid_ask("/bid", "/ask");
    f.symbol = "/sym";
    QuoteMapper m(f);
    int valid = 0;
    for (const auto& special : specials) {
        for (std::size_t offset = 0; offset < 24; ++offset) {
            const std::string text = std::string(offset, 'a') + special + std::string(9, 'b');
            for (const bool in_key : {false, true}) {
                const std::string body = in_key ? R"({")" + text + R"(":1,"sym":"X","bid":"1","ask":"2"})"
                                                : R"({"bid":"1","ask":"2","sym":")" + text + R"("})";
                const std::optional<bool> theirs = nlohmann_valid(body);
                ASSERT_TRUE(theirs.has_value());
                std::string expected = "X";
                if (*theirs && !in_key) expected = nlohmann::json::parse(body)["sym"].get<std::string>();
                Quote q;
                const auto ec = m.map(body, expected, q);
                EXPECT_EQ(ec != MappingError::malformed_json, *theirs) << ::testing::PrintToString(body);
                if (*theirs) {
                    EXPECT_FALSE(ec) << ::testing::PrintToString(body) << ": " << ec.message();
                    ++valid;
                }
            }
        }
    }
    EXPECT_GT(valid, 300);  // both verdicts occur: the comparison means something
    EXPECT_LT(valid, 13 * 24 * 2);
}

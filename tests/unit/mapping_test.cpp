// QuoteMapper: real venue bodies mapped exactly, value forms, JSON Pointer features and optional
// fields. Timestamps, errors, reuse and the JSON reader have files of their own
// (mapping_{time,errors,reuse,json_reader}_test.cpp).
#include "mapping_test_helpers.hpp"

#include <optional>
#include <string>

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

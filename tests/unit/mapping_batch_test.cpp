// BatchMapper: the venues' batch answers (docs shapes from /work/shared/notes/venues.md) mapped
// to exact quotes per member; unknown, missing, duplicated and bad entries counted; the
// answer-level errors classed.
#include <mdagg/mapping.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mdagg {
namespace {

BatchConfig batch(std::string items, std::string symbol) {
    BatchConfig b;
    b.items = std::move(items);
    b.symbol = std::move(symbol);
    return b;
}

struct Answer {
    std::error_code error;
    std::vector<BatchEntry> out;
    BatchCounts counts;
};

Answer run(const BatchMapper& mapper, std::string_view body, std::vector<std::string> names) {
    const BatchMembers members(std::move(names));
    Answer r;
    r.error = mapper.map(body, members, r.out, r.counts);
    return r;
}

FieldMap binance_fields() {
    FieldMap f;
    f.bid = "/bidPrice";
    f.ask = "/askPrice";
    f.bid_size = "/bidQty";
    f.ask_size = "/askQty";
    return f;
}

// An entry's quote, field by field as the venue wrote it (same digits, same scale); an empty
// expectation is not checked. Reports every field that differs.
struct Fields {
    std::string_view bid = {};
    std::string_view ask = {};
    std::string_view bid_size = {};
    std::string_view ask_size = {};
};

::testing::AssertionResult Quoted(const BatchEntry& e, Fields want) {
    std::string differ;
    const auto check = [&](const char* name, const Decimal& got, std::string_view expected) {
        if (expected.empty() || got.to_string() == expected) return;
        differ.append(" ").append(name).append(" ").append(got.to_string()).append(" != ").append(expected);
    };
    check("bid", e.quote.bid, want.bid);
    check("ask", e.quote.ask, want.ask);
    check("bid_size", e.quote.bid_size, want.bid_size);
    check("ask_size", e.quote.ask_size, want.ask_size);
    if (differ.empty()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "quote differs:" << differ;
}

constexpr std::string_view binance_body =
    R"([{"symbol":"LTCBTC","bidPrice":"4.00000000","bidQty":"431.00000000","askPrice":"4.00000200","askQty":"9.00000000"},)"
    R"({"symbol":"ETHUSDT","bidPrice":"3000.10","bidQty":"1.5","askPrice":"3000.20","askQty":"2"},)"
    R"({"symbol":"BNBUSDT","bidPrice":"x","bidQty":"1","askPrice":"600","askQty":"1"}])";

TEST(MappingBatch, BinanceArrayMapsEachMemberExactly) {
    const BatchMapper mapper(batch("", "/symbol"), binance_fields());
    const Answer r = run(mapper, binance_body, {"ETHUSDT", "LTCBTC"});
    ASSERT_FALSE(r.error) << r.error.message();
    ASSERT_EQ(r.out.size(), 2u);
    ASSERT_TRUE(r.out[1].seen);
    ASSERT_FALSE(r.out[1].error);
    EXPECT_TRUE(Quoted(r.out[1], {.bid = "4.00000000", .ask = "4.00000200", .bid_size = "431.00000000",
                                  .ask_size = "9.00000000"}));
    ASSERT_TRUE(r.out[0].seen);
    EXPECT_TRUE(Quoted(r.out[0], {.bid = "3000.10", .ask = "3000.20"}));
    EXPECT_EQ(r.counts.entries, 3u);
    // BNBUSDT was not asked for: skipped without parsing its bad "x" price.
    EXPECT_EQ(r.counts.unknown, 1u);
    EXPECT_EQ(r.counts.missing, 0u);
}

TEST(MappingBatch, ABadEntryFailsOnlyItsMember) {
    const BatchMapper mapper(batch("", "/symbol"), binance_fields());
    const Answer r = run(mapper, binance_body, {"BNBUSDT", "LTCBTC"});
    ASSERT_FALSE(r.error);
    EXPECT_TRUE(r.out[0].seen);
    EXPECT_EQ(r.out[0].error, MappingError::bad_number);
    EXPECT_FALSE(r.out[1].error);
    EXPECT_TRUE(Quoted(r.out[1], {.bid = "4.00000000"}));
}

TEST(MappingBatch, MissingMembersAreCounted) {
    const BatchMapper mapper(batch("", "/symbol"), binance_fields());
    const Answer r = run(mapper, binance_body, {"LTCBTC", "XRPUSDT", "ADAUSDT"});
    ASSERT_FALSE(r.error);
    EXPECT_TRUE(r.out[0].seen);
    EXPECT_FALSE(r.out[1].seen);
    EXPECT_FALSE(r.out[2].seen);
    EXPECT_EQ(r.counts.missing, 2u);
    EXPECT_EQ(r.counts.unknown, 2u);
}

TEST(MappingBatch, OkxDataListWithSuccessCheckAndTimestamps) {
    FieldMap f;
    f.success = SuccessCheck{"/code", std::string("0"), false};
    f.bid = "/bidPx";
    f.ask = "/askPx";
    f.bid_size = "/bidSz";
    f.ask_size = "/askSz";
    f.exchange_time = TimeField{"/ts", TimeUnit::ms};
    const BatchMapper mapper(batch("/data", "/instId"), f);
    const std::string body =
        R"({"code":"0","msg":"","data":[{"instId":"BTC-USDT","last":"66256.8","askPx":"66260.3","askSz":"0.22","bidPx":"66260.2","bidSz":"0.43","ts":"1774805577108"},)"
        R"({"instId":"ETH-USDT","askPx":"3001","askSz":"1","bidPx":"3000","bidSz":"2","ts":"1774805577109"}]})";
    const Answer r = run(mapper, body, {"BTC-USDT"});
    ASSERT_FALSE(r.error) << r.error.message();
    ASSERT_TRUE(r.out[0].seen);
    ASSERT_FALSE(r.out[0].error);
    EXPECT_TRUE(Quoted(r.out[0], {.bid = "66260.2", .ask = "66260.3"}));
    EXPECT_EQ(r.out[0].quote.exchange_time_ns, 1774805577108LL * 1'000'000);
    EXPECT_EQ(r.counts.unknown, 1u);

    // The success check reads the whole body: an error answer delivers nothing.
    const Answer e = run(mapper, R"({"code":"50011","msg":"Too Many Requests","data":[]})", {"BTC-USDT"});
    EXPECT_EQ(e.error, MappingError::body_error);
}

TEST(MappingBatch, BybitResultList) {
    FieldMap f;
    f.success = SuccessCheck{"/retCode", std::string("0"), false};
    f.bid = "/bid1Price";
    f.ask = "/ask1Price";
    f.bid_size = "/bid1Size";
    f.ask_size = "/ask1Size";
    const BatchMapper mapper(batch("/result/list", "/symbol"), f);
    const std::string body =
        R"({"retCode":0,"retMsg":"OK","result":{"category":"spot","list":[{"symbol":"BTCUSDT","bid1Price":"66782.2","bid1Size":"0.46","ask1Price":"66782.3","ask1Size":"1.21","lastPrice":"66782.2"}]},"time":1775239921132})";
    const Answer r = run(mapper, body, {"BTCUSDT"});
    ASSERT_FALSE(r.error) << r.error.message();
    ASSERT_FALSE(r.out[0].error);
    EXPECT_TRUE(Quoted(r.out[0], {.bid = "66782.2", .ask_size = "1.21"}));
}

TEST(MappingBatch, KrakenObjectKeyedByPair) {
    FieldMap f;
    f.success = SuccessCheck{"/error", std::nullopt, true};
    f.bid = "/b/0";
    f.ask = "/a/0";
    f.bid_size = "/b/2";
    f.ask_size = "/a/2";
    const BatchMapper mapper(batch("/result", "#key"), f);
    const std::string body =
        R"({"error":[],"result":{"XXBTZUSD":{"a":["30300.10000","1","1.000"],"b":["30300.00000","1","1.000"],"c":["30303.20000","0.00067643"],"v":["4083.67","4412.73"]},)"
        R"("XETHZUSD":{"a":["2000.1","1","2.500"],"b":["2000.0","1","3.000"]}}})";
    const Answer r = run(mapper, body, {"XETHZUSD", "XXBTZUSD"});
    ASSERT_FALSE(r.error) << r.error.message();
    EXPECT_TRUE(Quoted(r.out[1], {.bid = "30300.00000", .ask = "30300.10000"}));
    EXPECT_TRUE(Quoted(r.out[0], {.ask_size = "2.500"}));
    EXPECT_EQ(r.counts.entries, 2u);

    const Answer e = run(mapper, R"({"error":["EAPI:Rate limit exceeded"]})", {"XXBTZUSD"});
    EXPECT_EQ(e.error, MappingError::body_error);
}

TEST(MappingBatch, AlpacaQuotesKeyedBySymbolWithNanosecondTimes) {
    FieldMap f;
    f.bid = "/bp";
    f.ask = "/ap";
    f.bid_size = "/bs";
    f.ask_size = "/as";
    f.exchange_time = TimeField{"/t", TimeUnit::rfc3339};
    const BatchMapper mapper(batch("/quotes", "#key"), f);
    const std::string body =
        R"({"quotes":{"AAPL":{"t":"2022-08-17T10:09:34.055031265Z","ap":172.7,"as":1,"bp":172.6,"bs":2},)"
        R"("MSFT":{"t":"2022-08-17T10:09:35Z","ap":290.5,"as":3,"bp":290.4,"bs":4}}})";
    const Answer r = run(mapper, body, {"AAPL", "MSFT"});
    ASSERT_FALSE(r.error) << r.error.message();
    EXPECT_TRUE(Quoted(r.out[0], {.ask = "172.7"}));
    EXPECT_EQ(r.out[0].quote.exchange_time_ns, 1660730974055031265LL);
    EXPECT_TRUE(Quoted(r.out[1], {.bid = "290.4"}));
}

TEST(MappingBatch, EscapedKeysAreDecodedBeforeRouting) {
    FieldMap f;
    f.bid = "/b";
    f.ask = "/a";
    const BatchMapper mapper(batch("/q", "#key"), f);
    const Answer r = run(mapper, R"({"q":{"BRK\/B":{"b":"1","a":"2"}}})", {"BRK/B"});
    ASSERT_FALSE(r.error);
    EXPECT_TRUE(r.out[0].seen);
    EXPECT_TRUE(Quoted(r.out[0], {.ask = "2"}));
}

TEST(MappingBatch, ItemsNotAnArrayOrObjectIsAnAnswerError) {
    const BatchMapper mapper(batch("/data", "/instId"), binance_fields());
    EXPECT_EQ(run(mapper, R"({"data":"none"})", {"A"}).error, MappingError::batch_items);
    EXPECT_EQ(run(mapper, R"({"other":[]})", {"A"}).error, MappingError::batch_items);
    EXPECT_EQ(run(mapper, R"({"data":[)", {"A"}).error, MappingError::malformed_json);
    EXPECT_EQ(std::error_code(MappingError::batch_items).message(), "batch.items found no array or object of entries");
}

TEST(MappingBatch, HashKeyOverAnArrayIsAnAnswerError) {
    const BatchMapper mapper(batch("", "#key"), binance_fields());
    EXPECT_EQ(run(mapper, binance_body, {"LTCBTC"}).error, MappingError::batch_items);
}

TEST(MappingBatch, DuplicatedSymbolKeepsTheFirstAndCountsTheSecond) {
    const BatchMapper mapper(batch("", "/symbol"), binance_fields());
    const std::string body = R"([{"symbol":"A","bidPrice":"1","askPrice":"2"},{"symbol":"A","bidPrice":"9","askPrice":"9"},)"
                             R"({"symbol":"B","bidPrice":"3","askPrice":"4"}])";
    const Answer r = run(mapper, body, {"A", "B"});
    ASSERT_FALSE(r.error);
    EXPECT_TRUE(Quoted(r.out[0], {.bid = "1"}));
    EXPECT_TRUE(Quoted(r.out[1], {.bid = "3"}));
    EXPECT_EQ(r.counts.duplicates, 1u);
}

TEST(MappingBatch, EntryWithANonStringSymbolIsRefusedAlone) {
    const BatchMapper mapper(batch("", "/symbol"), binance_fields());
    const std::string body = R"([{"symbol":42,"bidPrice":"1","askPrice":"2"},{"bidPrice":"1","askPrice":"2"},)"
                             R"({"symbol":{"x":1},"bidPrice":"1","askPrice":"2"},{"symbol":"B","bidPrice":"3","askPrice":"4"}])";
    const Answer r = run(mapper, body, {"B"});
    ASSERT_FALSE(r.error);
    EXPECT_EQ(r.counts.bad_symbols, 3u);
    EXPECT_TRUE(Quoted(r.out[0], {.ask = "4"}));
    EXPECT_FALSE(r.out[0].error);
}

TEST(MappingBatch, NestedSymbolPointerAndEmptyItems) {
    FieldMap f;
    f.bid = "/q/bp";
    f.ask = "/q/ap";
    const BatchMapper mapper(batch("/r", "/meta/sym"), f);
    const Answer r = run(mapper, R"({"r":[{"meta":{"sym":"X"},"q":{"bp":1.5,"ap":1.75}}]})", {"X"});
    ASSERT_FALSE(r.error);
    EXPECT_TRUE(Quoted(r.out[0], {.ask = "1.75"}));
    const Answer empty = run(mapper, R"({"r":[]})", {"X"});
    ASSERT_FALSE(empty.error);
    EXPECT_EQ(empty.counts.missing, 1u);
}

TEST(MappingBatch, ResultsDoNotLeakAcrossCalls) {
    const BatchMapper mapper(batch("", "/symbol"), binance_fields());
    const BatchMembers members({"LTCBTC"});
    std::vector<BatchEntry> out;
    BatchCounts counts;
    ASSERT_FALSE(mapper.map(binance_body, members, out, counts));
    EXPECT_TRUE(out[0].seen);
    ASSERT_FALSE(mapper.map("[]", members, out, counts));
    EXPECT_FALSE(out[0].seen);
    EXPECT_EQ(counts.missing, 1u);
    EXPECT_EQ(counts.entries, 0u);
}

}  // namespace
}  // namespace mdagg

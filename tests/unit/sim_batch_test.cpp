// The simulator's batch answers without sockets: the paths and their symbols, the two shapes,
// per-entry seqs, and a fault that corrupts one entry alone.
#include "batch.hpp"
#include "book.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>

namespace {

using namespace mdagg::sim::detail;

mdagg::sim::Options options(std::size_t symbols) {
    mdagg::sim::Options o;
    o.symbols = symbols;
    o.hung_symbols = {"STOCK_2"};
    return o;
}

TEST(SimBatch, BinanceArrayListsTheSymbolsAskedForInOrderWithTheirOwnSeqs) {
    Book book(options(5));
    const auto ask = parse_batch_target("/batch/bookTicker?symbols=%5B%22STOCK_3%22,%22STOCK_1%22,%22NOPE%22,%22STOCK_2%22%5D", book);
    ASSERT_TRUE(ask);
    EXPECT_EQ(ask->shape, BatchShape::binance_array);
    ASSERT_EQ(ask->indices, (std::vector<std::size_t>{3, 1}));  // unknown and hung left out
    std::string body;
    std::vector<std::size_t> took;
    append_batch_body(body, *ask, book, [](std::size_t) { return false; }, took);
    body.clear();
    append_batch_body(body, *ask, book, [](std::size_t) { return false; }, took);
    const auto json = nlohmann::json::parse(body);
    ASSERT_TRUE(json.is_array());
    ASSERT_EQ(json.size(), 2u);
    EXPECT_EQ(json[0]["symbol"], "STOCK_3");
    EXPECT_EQ(json[1]["symbol"], "STOCK_1");
    EXPECT_EQ(json[0]["seq"], 2);  // the second answer: each symbol's second seq
    EXPECT_EQ(took, (std::vector<std::size_t>{3, 1}));
}

TEST(SimBatch, PlainCommaListWorksAndAMissingParameterIsRefused) {
    Book book(options(5));
    const auto ask = parse_batch_target("/batch/bookTicker?x=1&symbols=STOCK_0,STOCK_4", book);
    ASSERT_TRUE(ask);
    EXPECT_EQ(ask->indices, (std::vector<std::size_t>{0, 4}));
    EXPECT_FALSE(parse_batch_target("/batch/bookTicker?x=1", book));
    EXPECT_FALSE(parse_batch_target("/batch/bookTicker?symbols=%5B%22STOCK_0%22", book));
    EXPECT_FALSE(parse_batch_target("/batch/other", book));
}

TEST(SimBatch, OkxTickersHoldsEverySymbolUnderData) {
    Book book(options(4));
    const auto ask = parse_batch_target("/batch/tickers", book);
    ASSERT_TRUE(ask);
    std::string body;
    std::vector<std::size_t> took;
    append_batch_body(body, *ask, book, [](std::size_t) { return false; }, took);
    const auto json = nlohmann::json::parse(body);
    EXPECT_EQ(json["code"], "0");
    ASSERT_EQ(json["data"].size(), 3u);  // STOCK_2 is hung
    EXPECT_EQ(json["data"][0]["instId"], "STOCK_0");
    EXPECT_TRUE(json["data"][0]["bidPx"].is_string());
    EXPECT_TRUE(json["data"][0]["ts"].is_string());
    EXPECT_EQ(json["data"][0]["seq"], 1);
}

TEST(SimBatch, AFaultCorruptsItsEntryAloneAndTakesNoSeq) {
    Book book(options(4));
    const auto ask = parse_batch_target("/batch/tickers", book);
    std::string body;
    std::vector<std::size_t> took;
    append_batch_body(body, *ask, book, [](std::size_t i) { return i == 1; }, took);
    const auto json = nlohmann::json::parse(body);
    EXPECT_EQ(json["data"][1]["bidPx"], "not-a-number");
    EXPECT_EQ(json["data"][0]["seq"], 1);
    EXPECT_EQ(took, (std::vector<std::size_t>{0, 3}));
    std::string binance;
    const auto list = parse_batch_target("/batch/bookTicker?symbols=STOCK_1,STOCK_3", book);
    append_batch_body(binance, *list, book, [](std::size_t i) { return i == 1; }, took);
    const auto array = nlohmann::json::parse(binance);
    EXPECT_EQ(array[0]["bidPrice"], "not-a-number");
    EXPECT_EQ(array[1]["seq"], 2);
    EXPECT_EQ(took, (std::vector<std::size_t>{3}));
}

}  // namespace

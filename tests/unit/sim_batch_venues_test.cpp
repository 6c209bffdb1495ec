// The simulator's batch answers in the venues' own paths and shapes (the daemon's batch
// presets), without sockets: one table row per venue; and the one quote writer they share.
#include "batch.hpp"
#include "book.hpp"
#include "quote_json.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>

namespace {

using namespace mdagg::sim::detail;
using nlohmann::json;

mdagg::sim::Options options(std::size_t symbols) {
    mdagg::sim::Options o;
    o.symbols = symbols;
    o.hung_symbols = {"STOCK_2"};
    return o;
}

struct Venue {
    std::string target;  // asks for STOCK_3 and STOCK_1 (or for everything)
    BatchShape shape;
    std::string items;   // JSON Pointer to the entries
    std::string symbol;  // pointer inside an entry, or "#key"
    std::string bid;     // pointer inside an entry to the bid
    bool every_symbol;   // the venue answers every instrument
    bool string_prices;
};

const Venue venues[] = {
    {"/api/v3/ticker/bookTicker?symbols=%5B%22STOCK_3%22,%22STOCK_1%22%5D", BatchShape::binance_array, "", "/symbol",
     "/bidPrice", false, true},
    {"/api/v5/market/tickers?instType=SPOT", BatchShape::okx_data, "/data", "/instId", "/bidPx", true, true},
    {"/v5/market/tickers?category=spot", BatchShape::bybit_list, "/result/list", "/symbol", "/bid1Price", true, true},
    {"/0/public/Ticker?pair=STOCK_3,STOCK_1", BatchShape::kraken_result, "/result", "#key", "/b/0", false, true},
    {"/v2/stocks/quotes/latest?symbols=STOCK_3,STOCK_1", BatchShape::alpaca_quotes, "/quotes", "#key", "/bp", false, false},
};

std::vector<std::string> symbols_of(const json& entries, const std::string& symbol) {
    std::vector<std::string> out;
    if (symbol == "#key") {
        for (auto it = entries.begin(); it != entries.end(); ++it) out.push_back(it.key());
    } else {
        for (const json& e : entries) out.push_back(e.at(json::json_pointer(symbol)).get<std::string>());
    }
    return out;
}

TEST(SimBatchVenues, EachVenuePathAnswersInItsShapeWithPerSymbolSeqs) {
    for (const Venue& v : venues) {
        SCOPED_TRACE(v.target);
        Book book(options(5));
        ASSERT_TRUE(is_batch_target(v.target));
        const auto ask = parse_batch_target(v.target, book);
        ASSERT_TRUE(ask);
        EXPECT_EQ(ask->shape, v.shape);
        std::string body;
        std::vector<std::size_t> took;
        append_batch_body(body, *ask, book, [](std::size_t) { return false; }, took);
        body.clear();
        append_batch_body(body, *ask, book, [](std::size_t) { return false; }, took);
        const json answer = json::parse(body);
        const json& entries = answer.at(json::json_pointer(v.items));
        // Keyed shapes keep the keys in order in the text; nlohmann sorts them, so compare sets.
        std::vector<std::string> names = symbols_of(entries, v.symbol);
        std::sort(names.begin(), names.end());
        const std::vector<std::string> want = v.every_symbol
                                                  ? std::vector<std::string>{"STOCK_0", "STOCK_1", "STOCK_3", "STOCK_4"}
                                                  : std::vector<std::string>{"STOCK_1", "STOCK_3"};  // STOCK_2 hung
        EXPECT_EQ(names, want);
        EXPECT_EQ(took.size(), want.size());
        for (const json& e : entries) {
            EXPECT_EQ(e.at("seq"), 2) << e.dump();  // the second answer: each symbol's second seq
            EXPECT_EQ(e.at(json::json_pointer(v.bid)).is_string(), v.string_prices) << e.dump();
        }
    }
}

TEST(SimBatchVenues, AFaultSpoilsThatEntrysBidAloneInEveryShape) {
    for (const Venue& v : venues) {
        SCOPED_TRACE(v.target);
        Book book(options(5));
        const auto ask = parse_batch_target(v.target, book);
        ASSERT_TRUE(ask);
        std::string body;
        std::vector<std::size_t> took;
        append_batch_body(body, *ask, book, [](std::size_t i) { return i == 3; }, took);
        const json entries = json::parse(body).at(json::json_pointer(v.items));
        std::size_t spoiled = 0;
        for (auto it = entries.begin(); it != entries.end(); ++it) {
            const json& e = *it;
            const bool bad = e.at(json::json_pointer(v.bid)) == "not-a-number";
            spoiled += bad ? 1 : 0;
            EXPECT_EQ(e.at("seq"), bad ? 0 : 1) << e.dump();
        }
        EXPECT_EQ(spoiled, 1u);
        EXPECT_EQ(std::count(took.begin(), took.end(), std::size_t{3}), 0);
    }
}

TEST(SimBatchVenues, BybitsSymbolParameterNarrowsTheListAndOtherTargetsAreNotBatches) {
    Book book(options(5));
    const auto one = parse_batch_target("/v5/market/tickers?category=spot&symbol=STOCK_4", book);
    ASSERT_TRUE(one);
    EXPECT_EQ(one->indices, (std::vector<std::size_t>{4}));
    EXPECT_TRUE(json::parse([&] {
                    std::string body;
                    std::vector<std::size_t> took;
                    append_batch_body(body, *one, book, [](std::size_t) { return false; }, took);
                    return body;
                }())
                    .at("time")
                    .is_number());
    for (const char* single : {"/api/v3/ticker/bookTicker?symbol=STOCK_1", "/quotes/STOCK_1", "/api/v5/market/ticker?instId=STOCK_1"})
        EXPECT_FALSE(is_batch_target(single)) << single;
    EXPECT_FALSE(parse_batch_target("/0/public/Ticker", book)) << "Kraken's pair= is required";
    EXPECT_FALSE(parse_batch_target("/v2/stocks/quotes/latest?symbols=%5", book));
}

// Alpaca's numbers are JSON numbers; Kraken's levels [price, whole-lot volume, lot volume].
TEST(SimBatchVenues, OneWriterSpellsEachVenuesMembers) {
    mdagg::sim::Options o;
    o.symbols = 1;
    Book book(o);
    Quote q;
    q.bid = 17260;
    q.ask = 17270;
    q.bid_qty = 200;
    q.ask_qty = 100;
    q.time_ms = 1660730974055;
    q.seq = 3;
    std::string alpaca, kraken, binance;
    append_quote_object(alpaca, alpaca_keys(), book, 0, q);
    append_quote_object(kraken, kraken_keys(), book, 0, q);
    book.append_json(binance, 0, q);
    EXPECT_EQ(alpaca, R"({"ap":172.70,"as":1.00,"ax":"V","bp":172.60,"bs":2.00,"bx":"V","c":["R"],)"
                      R"("t":"2022-08-17T10:09:34.055000000Z","z":"C","seq":3})");
    const json k = json::parse(kraken);
    EXPECT_EQ(k["a"], json::parse(R"(["172.70","1","1.00"])"));
    EXPECT_EQ(k["b"], json::parse(R"(["172.60","1","2.00"])"));
    EXPECT_EQ(binance, R"({"symbol":"STOCK_0","bidPrice":"172.60","bidQty":"2.00","askPrice":"172.70",)"
                       R"("askQty":"1.00","time":1660730974055,"seq":3})");
}

}  // namespace

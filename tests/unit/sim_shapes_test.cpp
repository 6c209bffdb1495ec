// The simulator's venue-shaped quote requests (src/sim/shapes.cpp): which targets they are and
// the bodies they get.
#include "shapes.hpp"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

namespace mdagg::sim::detail {
namespace {

TEST(SimShapes, TargetsOfTheThreeVenueShapes) {
    const auto binance = shaped_request("/api/v3/ticker/bookTicker?symbol=BTCUSDT0");
    ASSERT_TRUE(binance);
    EXPECT_EQ(binance->shape, Shape::quotes);
    EXPECT_EQ(binance->symbol, "BTCUSDT0");
    const auto okx = shaped_request("/api/v5/market/ticker?x=1&instId=BTC-USDT-0");
    ASSERT_TRUE(okx);
    EXPECT_EQ(okx->shape, Shape::okx);
    EXPECT_EQ(okx->symbol, "BTC-USDT-0");
    const auto coinbase = shaped_request("/products/BTC-USD-0/ticker");
    ASSERT_TRUE(coinbase);
    EXPECT_EQ(coinbase->shape, Shape::coinbase);
    EXPECT_EQ(coinbase->symbol, "BTC-USD-0");
    for (const char* other : {"/quotes/STOCK_1", "/api/v5/market/ticker", "/api/v5/market/ticker?instId=",
                              "/products//ticker", "/products/a/b/ticker", "/stats"})
        EXPECT_FALSE(shaped_request(other)) << other;
}

TEST(SimShapes, BodiesCarryTheSameQuoteInEachVenuesFields) {
    Options options;
    options.symbols = 1;
    options.prefix = "BTC-USD-";
    Book book(options);
    Quote q;
    q.bid = 6626020;
    q.ask = 6626030;
    q.bid_qty = 43;
    q.ask_qty = 22;
    q.time_ms = 1774805577108;
    q.seq = 7;
    std::string okx, coinbase, binance;
    append_shaped_json(okx, Shape::okx, book, 0, q);
    append_shaped_json(coinbase, Shape::coinbase, book, 0, q);
    append_shaped_json(binance, Shape::quotes, book, 0, q);
    // Every member of OKX's documented ticker, in its order (the simulator adds seq).
    EXPECT_EQ(okx, R"({"code":"0","msg":"","data":[{"instType":"SPOT","instId":"BTC-USD-0","last":"66260.20",)"
                   R"("lastSz":"0.00107241","askPx":"66260.30","askSz":"0.22","bidPx":"66260.20","bidSz":"0.43",)"
                   R"("open24h":"66260.20","high24h":"66260.30","low24h":"66260.20","volCcy24h":"2165430187.91837146",)"
                   R"("vol24h":"32659.18946524","ts":"1774805577108","sodUtc0":"66260.20","sodUtc8":"66260.20","seq":7}]})");
    EXPECT_EQ(coinbase, R"({"trade_id":7,"price":"66260.20","size":"0.43","time":"2026-03-29T17:32:57.108Z",)"
                        R"("bid":"66260.20","ask":"66260.30","volume":"0.00"})");
    const auto b = nlohmann::json::parse(binance);
    EXPECT_EQ(b["symbol"], "BTC-USD-0");
    EXPECT_EQ(b["bidPrice"], "66260.20");
    EXPECT_EQ(b["seq"], 7);
}

}  // namespace
}  // namespace mdagg::sim::detail

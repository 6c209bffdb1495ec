// Shared by the QuoteMapper unit tests (tests/unit/mapping_*_test.cpp): real venue bodies, their
// field maps, and map-and-check helpers.
#pragma once

#include <mdagg/mapping.hpp>

#include <gtest/gtest.h>

#include <string>
#include <string_view>

using namespace mdagg;
using namespace std::string_view_literals;

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

inline FieldMap binance_map() {
    FieldMap f;
    f.symbol = "/symbol";
    f.bid = "/bidPrice";
    f.bid_size = "/bidQty";
    f.ask = "/askPrice";
    f.ask_size = "/askQty";
    return f;
}

inline FieldMap sim_map() {
    FieldMap f = binance_map();
    f.exchange_time = TimeField{"/time", TimeUnit::ms};
    f.seq = "/seq";
    return f;
}

inline FieldMap bid_ask(std::string bid = "/bid", std::string ask = "/ask") {
    FieldMap f;
    f.bid = std::move(bid);
    f.ask = std::move(ask);
    return f;
}

inline FieldMap with_time(std::string pointer, TimeUnit unit) {
    FieldMap f = bid_ask();
    f.exchange_time = TimeField{std::move(pointer), unit};
    return f;
}

// Maps `body`, expecting success.
inline Quote map_ok(QuoteMapper& m, std::string_view body, std::string_view symbol = "") {
    Quote q;
    const std::error_code ec = m.map(body, symbol, q);
    EXPECT_FALSE(ec) << ec.message() << " for " << body;
    return q;
}

inline Quote map_ok(const FieldMap& f, std::string_view body, std::string_view symbol = "") {
    QuoteMapper m(f);
    return map_ok(m, body, symbol);
}

inline std::error_code map_err(const FieldMap& f, std::string_view body, std::string_view symbol = "") {
    QuoteMapper m(f);
    Quote q;
    return m.map(body, symbol, q);
}

// Exact: same digits and same scale, not just the same value.
inline ::testing::AssertionResult Exact(Decimal d, std::string_view text) {
    if (d.to_string() != text) return ::testing::AssertionFailure() << d.to_string() << " != " << text;
    return ::testing::AssertionSuccess();
}

}  // namespace

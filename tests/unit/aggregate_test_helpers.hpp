// Shared by the Aggregator unit tests (tests/unit/aggregate_*_test.cpp): a recording sink and
// a fixture with three sources, two symbols and 1 s bars.
#pragma once

#include <mdagg/aggregate.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace mdagg {
namespace {

constexpr std::int64_t ms = 1'000'000;
constexpr std::int64_t sec = 1'000 * ms;
// An interval boundary for 1 s bars, so offsets below read as positions inside the bar.
constexpr std::int64_t t0 = 1'764'000'000 * sec;

inline Decimal D(const char* text) {
    const auto d = Decimal::parse(text);
    EXPECT_TRUE(d.has_value()) << text;
    return d.value_or(Decimal{});
}

struct RecordingSink : RecordSink {
    std::vector<Quote> quotes;
    std::vector<Bar> bars;
    std::vector<StaleMark> marks;
    void on_quote(const Quote& q) override { quotes.push_back(q); }
    void on_bar(const Bar& b) override { bars.push_back(b); }
    void on_stale(const StaleMark& m) override { marks.push_back(m); }
};

inline Quote quote(SourceId source, SymbolId symbol, const char* bid, const char* ask, std::int64_t t) {
    Quote q;
    q.source = source;
    q.symbol = symbol;
    q.bid = D(bid);
    q.ask = D(ask);
    q.receive_time_ns = t;
    return q;
}

class AggregatorTest : public ::testing::Test {
protected:
    Universe universe{{"a", "b", "c"}, {"BTC", "ETH"}};
    RecordingSink sink;
    Aggregator agg{universe, sec, sink, true};
};

}  // namespace
}  // namespace mdagg

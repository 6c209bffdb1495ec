// Aggregator bars: OHLC of the mid, interval boundaries, emit order, closing on time and at the
// end, late quotes, exact mid and spread.
#include "aggregate_test_helpers.hpp"

namespace mdagg {
namespace {

TEST_F(AggregatorTest, BarOhlcUpdatesSpreadAndBbo) {
    agg.on_quote(quote(0, 0, "9.99", "10.01", t0 + 100 * ms));   // mid 10, spread 0.02
    agg.on_quote(quote(1, 0, "11.90", "12.10", t0 + 200 * ms));  // mid 12
    agg.on_quote(quote(0, 0, "8.95", "9.05", t0 + 300 * ms));    // mid 9
    agg.on_quote(quote(2, 0, "10.97", "11.03", t0 + 400 * ms));  // mid 11, spread 0.06
    agg.on_quote(quote(0, 1, "1", "3", t0 + 500 * ms));          // other symbol
    EXPECT_TRUE(sink.bars.empty());

    agg.close_bars(t0 + sec);
    ASSERT_EQ(sink.bars.size(), 2u);
    const Bar& b = sink.bars[0];
    EXPECT_EQ(b.symbol, 0u);
    EXPECT_EQ(b.start_ns, t0);
    EXPECT_EQ(b.end_ns, t0 + sec);
    EXPECT_EQ(b.open, D("10"));
    EXPECT_EQ(b.high, D("12"));
    EXPECT_EQ(b.low, D("9"));
    EXPECT_EQ(b.close, D("11"));
    EXPECT_EQ(b.updates, 4u);
    EXPECT_EQ(b.last_spread, D("0.06"));
    ASSERT_TRUE(b.bbo.has_bid);
    EXPECT_EQ(b.bbo.bid, D("11.90"));
    EXPECT_EQ(b.bbo.bid_source, 1u);
    EXPECT_EQ(b.bbo.ask, D("9.05"));
    EXPECT_EQ(b.bbo.ask_source, 0u);

    EXPECT_EQ(sink.bars[1].symbol, 1u);
    EXPECT_EQ(sink.bars[1].open, D("2"));
    EXPECT_EQ(sink.bars[1].updates, 1u);
    EXPECT_EQ(agg.bars_emitted(), 2u);
}

TEST_F(AggregatorTest, BarBoundariesAreHalfOpen) {
    agg.on_quote(quote(0, 0, "1", "3", t0));            // first instant of the bar
    agg.on_quote(quote(0, 0, "3", "5", t0 + sec - 1));  // last instant of the bar
    EXPECT_TRUE(sink.bars.empty());
    agg.on_quote(quote(0, 0, "5", "7", t0 + sec));  // exactly the end: next bar
    ASSERT_EQ(sink.bars.size(), 1u);
    EXPECT_EQ(sink.bars[0].start_ns, t0);
    EXPECT_EQ(sink.bars[0].end_ns, t0 + sec);
    EXPECT_EQ(sink.bars[0].updates, 2u);
    EXPECT_EQ(sink.bars[0].close, D("4"));

    agg.close_all_bars();
    ASSERT_EQ(sink.bars.size(), 2u);
    EXPECT_EQ(sink.bars[1].start_ns, t0 + sec);
    EXPECT_EQ(sink.bars[1].end_ns, t0 + 2 * sec);
    EXPECT_EQ(sink.bars[1].open, D("6"));
    EXPECT_EQ(sink.bars[1].updates, 1u);
}

TEST_F(AggregatorTest, ANewIntervalEmitsTheOpenBarWithTheBboBeforeTheQuote) {
    agg.on_quote(quote(0, 0, "10", "12", t0 + 10 * ms));
    // Several intervals later; the bar opened is the one containing the quote.
    agg.on_quote(quote(1, 0, "20", "22", t0 + 5 * sec + 7 * ms));
    ASSERT_EQ(sink.bars.size(), 1u);
    EXPECT_EQ(sink.bars[0].end_ns, t0 + sec);
    EXPECT_EQ(sink.bars[0].bbo.bid, D("10"));
    EXPECT_EQ(sink.bars[0].bbo.bid_source, 0u);
    // The bar was emitted before the quote that closed it was forwarded.
    EXPECT_EQ(sink.quotes.size(), 2u);

    agg.close_all_bars();
    ASSERT_EQ(sink.bars.size(), 2u);
    EXPECT_EQ(sink.bars[1].start_ns, t0 + 5 * sec);
    EXPECT_EQ(sink.bars[1].bbo.bid, D("20"));
    EXPECT_EQ(sink.bars[1].bbo.bid_source, 1u);
}

TEST_F(AggregatorTest, EmitOrderBarBeforeTheQuoteThatClosedIt) {
    struct OrderSink : RecordSink {
        std::string order;
        void on_quote(const Quote&) override { order += 'q'; }
        void on_bar(const Bar&) override { order += 'b'; }
        void on_stale(const StaleMark&) override { order += 's'; }
    } order;
    Aggregator a(universe, sec, order, true);
    a.on_quote(quote(0, 0, "1", "2", t0));
    a.on_quote(quote(0, 0, "1", "2", t0 + sec));
    EXPECT_EQ(order.order, "qbq");
}

TEST_F(AggregatorTest, CloseBarsClosesQuietSymbolsOnTime) {
    agg.on_quote(quote(0, 0, "1", "3", t0 + 900 * ms));
    agg.on_quote(quote(0, 1, "1", "3", t0 + sec + 100 * ms));
    agg.close_bars(t0 + sec - 1);
    EXPECT_TRUE(sink.bars.empty());
    agg.close_bars(t0 + sec);
    ASSERT_EQ(sink.bars.size(), 1u);
    EXPECT_EQ(sink.bars[0].symbol, 0u);
    agg.close_bars(t0 + sec + 500 * ms);  // nothing new, nothing twice
    EXPECT_EQ(sink.bars.size(), 1u);
    agg.close_bars(t0 + 10 * sec);
    ASSERT_EQ(sink.bars.size(), 2u);
    EXPECT_EQ(sink.bars[1].symbol, 1u);
    EXPECT_EQ(sink.bars[1].end_ns, t0 + 2 * sec);
    agg.close_all_bars();
    EXPECT_EQ(sink.bars.size(), 2u);
}

TEST_F(AggregatorTest, CloseAllBarsEmitsPartialBars) {
    agg.on_quote(quote(0, 0, "1", "3", t0 + 100 * ms));
    agg.on_quote(quote(0, 1, "5", "7", t0 + 200 * ms));
    agg.close_all_bars();
    ASSERT_EQ(sink.bars.size(), 2u);
    for (const Bar& b : sink.bars) {
        EXPECT_EQ(b.start_ns, t0);
        EXPECT_EQ(b.end_ns, t0 + sec);  // the interval end, not the drain time
        EXPECT_EQ(b.updates, 1u);
    }
    agg.close_all_bars();
    agg.close_bars(t0 + 100 * sec);
    EXPECT_EQ(sink.bars.size(), 2u);
}

TEST_F(AggregatorTest, LateQuotesNeverReopenAPastInterval) {
    agg.on_quote(quote(0, 0, "10", "12", t0 + sec + 500 * ms));
    agg.on_quote(quote(1, 0, "1", "3", t0 + 200 * ms));  // before the open bar: joins it
    EXPECT_TRUE(sink.bars.empty());
    agg.close_bars(t0 + 2 * sec);
    ASSERT_EQ(sink.bars.size(), 1u);
    EXPECT_EQ(sink.bars[0].start_ns, t0 + sec);
    EXPECT_EQ(sink.bars[0].updates, 2u);
    EXPECT_EQ(sink.bars[0].low, D("2"));

    // The bar [t0+1s, t0+2s) is out; a quote stamped inside it opens the next interval.
    agg.on_quote(quote(0, 0, "4", "6", t0 + sec + 900 * ms));
    agg.close_all_bars();
    ASSERT_EQ(sink.bars.size(), 2u);
    EXPECT_EQ(sink.bars[1].start_ns, t0 + 2 * sec);
    EXPECT_EQ(sink.bars[1].open, D("5"));
}

TEST_F(AggregatorTest, OneSidedQuoteInALaterIntervalClosesTheBar) {
    agg.on_quote(quote(0, 0, "1", "3", t0));
    agg.on_quote(quote(1, 0, "4", "0", t0 + sec));
    ASSERT_EQ(sink.bars.size(), 1u);
    EXPECT_EQ(sink.bars[0].bbo.bid, D("1"));  // before the new bid
    agg.close_all_bars();
    EXPECT_EQ(sink.bars.size(), 1u);  // nothing had a mid in the second interval
    EXPECT_EQ(agg.best(0).bid, D("4"));
}

TEST_F(AggregatorTest, MidAndSpreadAreExact) {
    agg.on_quote(quote(0, 0, "0.00000199", "0.00000200", t0));
    agg.close_all_bars();
    ASSERT_EQ(sink.bars.size(), 1u);
    EXPECT_EQ(sink.bars[0].open.to_string(), "0.000001995");
    EXPECT_EQ(sink.bars[0].close, D("0.000001995"));
    EXPECT_EQ(sink.bars[0].last_spread, D("0.00000001"));
}

TEST_F(AggregatorTest, IntervalsAreFlooredForAnyInterval) {
    RecordingSink s;
    Aggregator a(universe, 3 * sec, s, false);
    a.on_quote(quote(0, 0, "1", "3", 7 * sec + 1));  // [6s, 9s)
    a.on_quote(quote(0, 0, "1", "3", -1));           // before the open bar: joins it
    a.close_all_bars();
    ASSERT_EQ(s.bars.size(), 1u);
    EXPECT_EQ(s.bars[0].start_ns, 6 * sec);
    EXPECT_EQ(s.bars[0].end_ns, 9 * sec);

    RecordingSink s2;
    Aggregator b(universe, 3 * sec, s2, false);
    b.on_quote(quote(0, 0, "1", "3", -1));  // before the epoch: [-3s, 0)
    b.close_all_bars();
    ASSERT_EQ(s2.bars.size(), 1u);
    EXPECT_EQ(s2.bars[0].start_ns, -3 * sec);
    EXPECT_EQ(s2.bars[0].end_ns, 0);
}

}  // namespace
}  // namespace mdagg

// Aggregator: the best bid and offer across sources, ids out of range, growing the universe,
// staleness, forwarding and released symbols. Bars are in aggregate_bars_test.cpp.
#include "aggregate_test_helpers.hpp"

#include <stdexcept>
#include <string>

namespace mdagg {
namespace {

TEST_F(AggregatorTest, ConsolidatesBestAcrossSources) {
    agg.on_quote(quote(0, 0, "100.00", "101.00", t0 + 1 * ms));
    agg.on_quote(quote(1, 0, "100.50", "101.50", t0 + 2 * ms));
    agg.on_quote(quote(2, 0, "99.00", "100.80", t0 + 3 * ms));
    BestBidOffer b = agg.best(0);
    ASSERT_TRUE(b.has_bid);
    ASSERT_TRUE(b.has_ask);
    EXPECT_EQ(b.bid, D("100.5"));
    EXPECT_EQ(b.bid_source, 1u);
    EXPECT_EQ(b.ask, D("100.8"));
    EXPECT_EQ(b.ask_source, 2u);

    // The best bidder backs off: the runner-up takes over, not the stale price.
    agg.on_quote(quote(1, 0, "99.50", "101.50", t0 + 4 * ms));
    b = agg.best(0);
    EXPECT_EQ(b.bid, D("100"));
    EXPECT_EQ(b.bid_source, 0u);
    EXPECT_EQ(b.ask_source, 2u);

    // The best offer withdraws its ask (zero = no quote on that side).
    agg.on_quote(quote(2, 0, "99.00", "0", t0 + 5 * ms));
    b = agg.best(0);
    EXPECT_EQ(b.ask, D("101"));
    EXPECT_EQ(b.ask_source, 0u);

    // Another symbol is untouched.
    EXPECT_FALSE(agg.best(1).has_bid);
    EXPECT_FALSE(agg.best(1).has_ask);
    EXPECT_EQ(agg.quotes_accepted(), 5u);
}

TEST_F(AggregatorTest, TiesGoToTheLowerSourceId) {
    agg.on_quote(quote(2, 0, "100", "101", t0));
    agg.on_quote(quote(0, 0, "100.0", "102", t0 + 1));
    agg.on_quote(quote(1, 0, "99", "101.00", t0 + 2));
    const BestBidOffer b = agg.best(0);
    EXPECT_EQ(b.bid_source, 0u);  // arrived after source 2, same price
    EXPECT_EQ(b.ask_source, 1u);  // arrived after source 2, same price
}

TEST_F(AggregatorTest, ZeroPricesAreNotQuotes) {
    agg.on_quote(quote(0, 0, "0", "101", t0));
    agg.on_quote(quote(1, 0, "0.000", "0", t0 + 1));
    const BestBidOffer b = agg.best(0);
    EXPECT_FALSE(b.has_bid);
    ASSERT_TRUE(b.has_ask);
    EXPECT_EQ(b.ask_source, 0u);
    // One-sided quotes have no mid: no bar.
    agg.close_all_bars();
    EXPECT_TRUE(sink.bars.empty());
    EXPECT_EQ(agg.quotes_accepted(), 2u);
}

TEST_F(AggregatorTest, LatestPerSourceAndSymbol) {
    EXPECT_EQ(agg.latest(0, 0), nullptr);
    agg.on_quote(quote(1, 1, "1", "2", t0));
    agg.on_quote(quote(1, 1, "3", "4", t0 + 1));
    const Quote* q = agg.latest(1, 1);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q->bid, D("3"));
    EXPECT_EQ(agg.latest(1, 0), nullptr);
    EXPECT_EQ(agg.latest(0, 1), nullptr);
    EXPECT_EQ(agg.latest(2, 0), nullptr);  // symbol out of range
    EXPECT_EQ(agg.latest(0, 3), nullptr);  // source out of range
}

TEST_F(AggregatorTest, OutOfRangeIdsAreRejectedAndCounted) {
    agg.on_quote(quote(3, 0, "1", "2", t0));
    agg.on_quote(quote(0, 2, "1", "2", t0));
    EXPECT_EQ(agg.quotes_rejected(), 2u);
    EXPECT_EQ(agg.quotes_accepted(), 0u);
    EXPECT_TRUE(sink.quotes.empty());
    agg.close_all_bars();
    EXPECT_TRUE(sink.bars.empty());
    EXPECT_FALSE(agg.best(0).has_bid);
}

TEST_F(AggregatorTest, GrowKeepsStateAndAcceptsNewIds) {
    agg.on_quote(quote(2, 1, "1", "2", t0));
    agg.on_quote(quote(0, 0, "5", "6", t0));
    universe.sources.push_back("d");   // source 3
    universe.symbols.push_back("SOL");  // symbol 2
    agg.on_quote(quote(3, 2, "7", "8", t0));
    EXPECT_EQ(agg.quotes_rejected(), 1u) << "ids beyond the tables are rejected until grow()";
    agg.grow();
    // Latest quotes moved to the new layout, under the same ids.
    ASSERT_NE(agg.latest(1, 2), nullptr);
    EXPECT_EQ(agg.latest(1, 2)->bid, D("1"));
    ASSERT_NE(agg.latest(0, 0), nullptr);
    EXPECT_EQ(agg.latest(0, 0)->ask, D("6"));
    EXPECT_EQ(agg.latest(1, 3), nullptr);
    agg.on_quote(quote(3, 2, "7", "8", t0 + 1));
    agg.on_quote(quote(3, 0, "5.5", "5.9", t0 + 2));
    EXPECT_EQ(agg.quotes_rejected(), 1u);
    EXPECT_EQ(agg.best(2).bid, D("7"));
    EXPECT_EQ(agg.best(0).bid, D("5.5"));
    EXPECT_EQ(agg.best(0).bid_source, 3u);
    agg.close_all_bars();
    ASSERT_EQ(sink.bars.size(), 3u);  // BTC, ETH and the new SOL
    EXPECT_EQ(sink.bars[2].symbol, 2u);
    EXPECT_EQ(sink.bars[2].open, D("7.5"));
}

TEST_F(AggregatorTest, GrowKeepsStalenessInTheNewLayout) {
    agg.set_stale_after(1, 100 * ms);
    agg.on_quote(quote(1, 1, "1", "2", t0));
    agg.on_quote(quote(0, 1, "0.5", "3", t0));
    agg.expire_stale(t0 + 200 * ms);  // source 1 of ETH is stale
    ASSERT_EQ(agg.stale_count(), 1u);
    universe.sources.push_back("d");
    universe.symbols.push_back("SOL");
    agg.grow();
    agg.set_stale_after(3, 100 * ms);
    // Still stale under the new layout: ETH's best bid is source 0's, not the stale one.
    EXPECT_EQ(agg.best(1).bid_source, 0u);
    agg.on_quote(quote(3, 2, "7", "8", t0 + 300 * ms));
    agg.expire_stale(t0 + 500 * ms);
    EXPECT_EQ(agg.stale_count(), 2u);  // the new source's quote too
    agg.on_quote(quote(1, 1, "1.5", "2", t0 + 600 * ms));
    EXPECT_EQ(agg.stale_count(), 1u);
    EXPECT_EQ(agg.best(1).bid_source, 1u);
    ASSERT_EQ(sink.marks.size(), 3u);
    EXPECT_FALSE(sink.marks[2].stale);
    EXPECT_EQ(sink.marks[2].source, 1u);
}

TEST_F(AggregatorTest, ForwardsAcceptedQuotesWhenAsked) {
    Quote q = quote(2, 1, "1.5", "1.6", t0);
    q.seq = 7;
    agg.on_quote(q);
    agg.on_quote(quote(0, 9, "1", "2", t0));  // rejected: not forwarded
    ASSERT_EQ(sink.quotes.size(), 1u);
    EXPECT_EQ(sink.quotes[0].source, 2u);
    EXPECT_EQ(sink.quotes[0].seq, 7);
    EXPECT_EQ(sink.quotes[0].bid, D("1.5"));

    RecordingSink quiet;
    Aggregator off(universe, sec, quiet, false);
    off.on_quote(q);
    off.close_all_bars();
    EXPECT_TRUE(quiet.quotes.empty());
    EXPECT_EQ(quiet.bars.size(), 1u);  // bars still flow
    EXPECT_EQ(off.quotes_accepted(), 1u);
}

TEST_F(AggregatorTest, StaleQuotesLeaveTheBestBidOfferAndComeBackWhenFresh) {
    agg.set_stale_after(0, 500 * ms);
    agg.set_stale_after(1, 2 * sec);
    // Source 2 never goes stale (0 = off).
    agg.on_quote(quote(0, 0, "100.50", "100.60", t0));       // best on both sides
    agg.on_quote(quote(1, 0, "100.00", "101.00", t0 + 10 * ms));
    agg.on_quote(quote(2, 0, "99.00", "102.00", t0 + 20 * ms));
    EXPECT_EQ(agg.symbols_quoted(), 1u);
    agg.expire_stale(t0 + 500 * ms);  // exactly at the limit: still fresh
    EXPECT_TRUE(sink.marks.empty());
    EXPECT_EQ(agg.best(0).bid_source, 0u);

    agg.expire_stale(t0 + 501 * ms);
    ASSERT_EQ(sink.marks.size(), 1u);
    EXPECT_TRUE(sink.marks[0].stale);
    EXPECT_EQ(sink.marks[0].symbol, 0u);
    EXPECT_EQ(sink.marks[0].source, 0u);
    EXPECT_EQ(sink.marks[0].last_receive_ns, t0);
    EXPECT_EQ(sink.marks[0].at_ns, t0 + 501 * ms);
    EXPECT_EQ(agg.stale_count(), 1u);
    // The runner-up takes over; the stale quote is still the source's latest.
    EXPECT_EQ(agg.best(0).bid, D("100.00"));
    EXPECT_EQ(agg.best(0).bid_source, 1u);
    EXPECT_EQ(agg.best(0).ask, D("101.00"));
    ASSERT_NE(agg.latest(0, 0), nullptr);
    // Marked once, not on every sweep.
    agg.expire_stale(t0 + 900 * ms);
    EXPECT_EQ(sink.marks.size(), 1u);

    // Everyone but the never-stale source goes stale.
    agg.expire_stale(t0 + 3 * sec);
    ASSERT_EQ(sink.marks.size(), 2u);
    EXPECT_EQ(sink.marks[1].source, 1u);
    EXPECT_EQ(agg.best(0).bid_source, 2u);
    EXPECT_EQ(agg.stale_count(), 2u);

    // A fresh quote brings source 0 back, with a mark saying so, and it is best again.
    agg.on_quote(quote(0, 0, "100.40", "100.70", t0 + 3 * sec + 1 * ms));
    ASSERT_EQ(sink.marks.size(), 3u);
    EXPECT_FALSE(sink.marks[2].stale);
    EXPECT_EQ(sink.marks[2].source, 0u);
    EXPECT_EQ(sink.marks[2].last_receive_ns, t0 + 3 * sec + 1 * ms);
    EXPECT_EQ(agg.best(0).bid, D("100.40"));
    EXPECT_EQ(agg.best(0).bid_source, 0u);
    EXPECT_EQ(agg.stale_count(), 1u);
}

TEST_F(AggregatorTest, BarsCarryTheBestBidOfferWithoutStaleSources) {
    agg.set_stale_after(0, 300 * ms);
    agg.set_stale_after(1, 300 * ms);
    agg.on_quote(quote(0, 0, "100.50", "100.60", t0 + 1 * ms));
    agg.on_quote(quote(1, 0, "100.00", "101.00", t0 + 700 * ms));
    agg.expire_stale(t0 + 800 * ms);  // source 0 is 799 ms old, source 1 only 100 ms
    agg.close_bars(t0 + sec);
    ASSERT_EQ(sink.bars.size(), 1u);
    EXPECT_EQ(sink.bars[0].bbo.bid_source, 1u);
    EXPECT_EQ(sink.bars[0].bbo.bid, D("100.00"));
    // A symbol whose every source is stale has no best at all.
    agg.expire_stale(t0 + 2 * sec);
    EXPECT_FALSE(agg.best(0).has_bid);
    EXPECT_FALSE(agg.best(0).has_ask);
}

TEST_F(AggregatorTest, BestBidOfferMatchesAReferenceOverEverySourceAndStaleness) {
    // The table keeps only the (symbol, source) pairs that quoted: its best bid/offer must be
    // what a scan of every source's latest non-stale quote gives, ties to the lower source id.
    // Appended, not `"s" + std::to_string(i)`: g++ 12 -O3 takes that for an overlapping copy.
    for (int i = 0; i < 7; ++i) universe.sources.push_back(std::string(1, 's').append(std::to_string(i)));  // 10 sources
    for (int i = 0; i < 30; ++i) universe.symbols.push_back(std::string(1, 'X').append(std::to_string(i)));  // 32 symbols
    agg.grow();
    for (SourceId s = 0; s < 10; ++s) agg.set_stale_after(s, (s % 3 + 1) * 100 * ms);
    struct Latest {
        bool has = false, stale = false;
        Quote q;
    };
    std::vector<std::vector<Latest>> ref(32, std::vector<Latest>(10));
    std::uint64_t state = 42;
    auto next = [&](std::uint64_t n) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        return (state >> 33) % n;
    };
    std::int64_t now = t0;
    for (int step = 0; step < 5000; ++step) {
        now += static_cast<std::int64_t>(next(3)) * ms;
        if (next(50) == 0) {
            agg.expire_stale(now);
            for (SourceId s = 0; s < 10; ++s)
                for (auto& row : ref)
                    if (row[s].has && now - row[s].q.receive_time_ns > (s % 3 + 1) * 100 * ms) row[s].stale = true;
            continue;
        }
        // Few price levels, so ties are common; zero sides now and then.
        const auto source = static_cast<SourceId>(next(10));
        const auto symbol = static_cast<SymbolId>(next(32));
        const std::string bid = next(8) == 0 ? "0" : std::to_string(100 + next(4));
        const std::string ask = next(8) == 0 ? "0" : std::to_string(104 + next(4));
        const Quote q = quote(source, symbol, bid.c_str(), ask.c_str(), now);
        agg.on_quote(q);
        ref[symbol][source] = {true, false, q};

        BestBidOffer want;
        for (SourceId s = 0; s < 10; ++s) {
            const Latest& l = ref[symbol][s];
            if (!l.has || l.stale) continue;
            if (!l.q.bid.is_zero() && (!want.has_bid || l.q.bid > want.bid)) {
                want.bid = l.q.bid;
                want.bid_source = s;
                want.has_bid = true;
            }
            if (!l.q.ask.is_zero() && (!want.has_ask || l.q.ask < want.ask)) {
                want.ask = l.q.ask;
                want.ask_source = s;
                want.has_ask = true;
            }
        }
        const BestBidOffer got = agg.best(symbol);
        ASSERT_EQ(got.has_bid, want.has_bid) << step;
        ASSERT_EQ(got.has_ask, want.has_ask) << step;
        if (want.has_bid) {
            ASSERT_EQ(got.bid, want.bid) << step;
            ASSERT_EQ(got.bid_source, want.bid_source) << step;
        }
        if (want.has_ask) {
            ASSERT_EQ(got.ask, want.ask) << step;
            ASSERT_EQ(got.ask_source, want.ask_source) << step;
        }
        ASSERT_NE(agg.latest(symbol, source), nullptr);
        EXPECT_EQ(agg.latest(symbol, source)->bid, q.bid);
    }
    std::size_t stale = 0, quoted = 0;
    for (auto& row : ref) {
        bool any = false;
        for (auto& l : row) {
            stale += l.has && l.stale;
            any = any || l.has;
        }
        quoted += any;
    }
    EXPECT_EQ(agg.stale_count(), stale);
    EXPECT_EQ(agg.symbols_quoted(), quoted);
}

TEST_F(AggregatorTest, AReleasedSymbolIsDroppedWithItsCounts) {
    agg.set_stale_after(0, 100 * ms);
    agg.on_quote(quote(0, 1, "0", "101", t0));  // one-sided: no bar
    agg.on_quote(quote(1, 1, "0", "102", t0));
    agg.on_quote(quote(1, 0, "5", "6", t0));
    agg.expire_stale(t0 + 200 * ms);
    EXPECT_EQ(agg.stale_count(), 1u);
    EXPECT_EQ(agg.symbols_quoted(), 2u);
    agg.release_symbol(1);
    EXPECT_TRUE(sink.bars.empty()) << "it had no open bar";
    EXPECT_EQ(agg.stale_count(), 0u);
    EXPECT_EQ(agg.symbols_quoted(), 1u);
    EXPECT_EQ(agg.latest(1, 0), nullptr);
    EXPECT_EQ(agg.latest(1, 1), nullptr);
    EXPECT_FALSE(agg.best(1).has_ask);
    ASSERT_NE(agg.latest(0, 1), nullptr) << "other symbols keep theirs";
    EXPECT_EQ(agg.best(0).bid_source, 1u);
}

TEST_F(AggregatorTest, AReleasedSymbolsOpenBarIsWrittenAndItsIdStartsAfresh) {
    agg.on_quote(quote(0, 0, "100", "102", t0 + 10 * ms));
    agg.on_quote(quote(1, 0, "100.5", "103", t0 + 20 * ms));
    agg.release_symbol(0);
    ASSERT_EQ(sink.bars.size(), 1u) << "no quote can reach the bar any more: it is written now";
    EXPECT_EQ(sink.bars[0].symbol, 0u);
    EXPECT_EQ(sink.bars[0].start_ns, t0);
    EXPECT_EQ(sink.bars[0].end_ns, t0 + sec);
    EXPECT_EQ(sink.bars[0].updates, 2u);
    EXPECT_EQ(sink.bars[0].bbo.bid, D("100.5")) << "with the symbol's own best";
    agg.close_all_bars();
    EXPECT_EQ(sink.bars.size(), 1u) << "and only once";

    // The id now belongs to another symbol, which starts from nothing: no latest, no best,
    // and a first bar of its own (not clamped by the previous symbol's last bar).
    universe.release_symbol(0);
    EXPECT_EQ(universe.add_symbol("SOL"), 0u);
    agg.grow();
    EXPECT_EQ(agg.latest(0, 1), nullptr);
    EXPECT_FALSE(agg.best(0).has_bid);
    agg.on_quote(quote(2, 0, "7", "9", t0 + 300 * ms));  // inside the previous symbol's bar
    agg.close_all_bars();
    ASSERT_EQ(sink.bars.size(), 2u);
    EXPECT_EQ(sink.bars[1].start_ns, t0);
    EXPECT_EQ(sink.bars[1].open, D("8"));
    EXPECT_EQ(sink.bars[1].updates, 1u);
    EXPECT_EQ(sink.bars[1].bbo.bid_source, 2u);
    EXPECT_EQ(agg.symbols_quoted(), 1u);
}

TEST(Universe, ReleasedSymbolIdsAreReusedAndChangeTheRevision) {
    Universe u{{"a"}, {"A", "B", "C"}};
    const auto r0 = u.revision;
    EXPECT_EQ(u.add_symbol("D"), 3u);
    EXPECT_EQ(u.revision, r0) << "appending changes no existing id's name";
    u.release_symbol(1);
    EXPECT_TRUE(u.symbols[1].empty());
    EXPECT_GT(u.revision, r0);
    const auto r1 = u.revision;
    EXPECT_EQ(u.add_symbol("E"), 1u);
    EXPECT_EQ(u.symbols[1], "E");
    EXPECT_GT(u.revision, r1);
    EXPECT_EQ(u.add_symbol("F"), 4u);
    EXPECT_EQ(u.symbols.size(), 5u);
}

TEST(AggregatorConstruction, RejectsANonPositiveInterval) {
    Universe u{{"a"}, {"X"}};
    struct NullSink : RecordSink {
        void on_quote(const Quote&) override {}
        void on_bar(const Bar&) override {}
        void on_stale(const StaleMark&) override {}
    } sink;
    EXPECT_THROW(Aggregator(u, 0, sink, false), std::invalid_argument);
}

}  // namespace
}  // namespace mdagg

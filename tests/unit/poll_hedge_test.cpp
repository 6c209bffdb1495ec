// Hedged requests' sans-io rules (src/poll/hedge.hpp): the max_extra budget, the percentile
// trigger and the race's outcome rules. The daemon's behaviour is in tests/integration/hedge_test.cpp.
#include "hedge.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

using namespace mdagg::detail;
using namespace std::chrono_literals;

TEST(HedgeBudget, StartsEmptyAndEarnsMaxExtraPerFirstRequest) {
    HedgeBudget b(0.05);
    EXPECT_FALSE(b.try_take()) << "no hedge before any first request";
    for (int i = 0; i < 19; ++i) b.on_first_request();
    EXPECT_FALSE(b.try_take()) << "19 x 5% is less than one hedge";
    b.on_first_request();
    EXPECT_TRUE(b.try_take()) << "20 x 5% is one hedge";
    EXPECT_FALSE(b.try_take());
}

TEST(HedgeBudget, HedgesNeverExceedMaxExtraTimesFirstRequestsPlusTheBurst) {
    // Everything slow: every poll wants a hedge. Over 10,000 polls at most 5% + the burst go.
    HedgeBudget b(0.05, 4);
    int hedges = 0;
    for (int i = 0; i < 10000; ++i) {
        b.on_first_request();
        hedges += b.try_take() ? 1 : 0;
    }
    EXPECT_LE(hedges, 500 + 4);
    EXPECT_GE(hedges, 499);
}

TEST(HedgeBudget, AQuietSpellSavesAtMostTheBurst) {
    HedgeBudget b(0.05, 4);
    for (int i = 0; i < 100000; ++i) b.on_first_request();  // no hedge wanted for a long time
    int burst = 0;
    while (b.try_take()) ++burst;
    EXPECT_EQ(burst, 4) << "then everything slows: at most the burst goes at once";
}

TEST(HedgeBudget, RefundGivesBackAHedgeNoMirrorTook) {
    HedgeBudget b(1.0);
    b.on_first_request();
    ASSERT_TRUE(b.try_take());
    b.refund();
    EXPECT_TRUE(b.try_take());
}

TEST(HedgeBudget, SharedByThreadsNeverOverspends) {
    HedgeBudget b(0.1, 2);
    std::atomic<int> hedges{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 5000; ++i) {
                b.on_first_request();
                if (b.try_take()) hedges.fetch_add(1);
            }
        });
    for (auto& t : threads) t.join();
    EXPECT_LE(hedges.load(), 2000 + 2);
}

TEST(LatencyWindow, NoPercentileBeforeEnoughSamples) {
    LatencyWindow w(95);
    for (std::size_t i = 0; i + 1 < LatencyWindow::min_samples; ++i) w.record(1ms);
    EXPECT_EQ(w.threshold(), 0ns);
}

TEST(LatencyWindow, ThePercentileOfRecentPolls) {
    LatencyWindow w(95);
    // 1..512 ms, shuffled a little: p95 of 512 samples is the 487th smallest.
    for (int i = 0; i < 512; ++i) w.record(std::chrono::milliseconds((i * 7) % 512 + 1));
    EXPECT_EQ(w.threshold(), 487ms);
    LatencyWindow p99(99);
    for (int i = 0; i < 512; ++i) p99.record(std::chrono::milliseconds(i + 1));
    EXPECT_EQ(p99.threshold(), 507ms);
}

TEST(LatencyWindow, FollowsAVenueThatGetsFaster) {
    LatencyWindow w(90);
    for (int i = 0; i < 512; ++i) w.record(50ms);
    EXPECT_EQ(w.threshold(), 50ms);
    for (int i = 0; i < 512; ++i) w.record(2ms);  // the old samples leave the ring
    EXPECT_EQ(w.threshold(), 2ms);
}

TEST(HedgeDelay, FixedOrPercentileAtLeastOneMillisecondAndBeforeTheTimeout) {
    EXPECT_EQ(hedge_delay(20ms, 0ns, false, 100ms), 20ms);
    EXPECT_EQ(hedge_delay(20ms, 7ms, true, 100ms), 7ms) << "the percentile, not the fixed delay";
    EXPECT_EQ(hedge_delay(0ms, 0ns, true, 100ms), 0ns) << "no percentile yet: no hedge";
    EXPECT_EQ(hedge_delay(0ms, 100us, true, 100ms), 1ms) << "the wheel's grid";
    EXPECT_EQ(hedge_delay(0ms, 150ms, true, 100ms), 0ns) << "a hedge after the timeout could never help";
}

TEST(HedgeDue, CountsFromTheTickAndMakesUpForAtMostOneMillisecondOfLateness) {
    using TP = std::chrono::steady_clock::time_point;
    const TP tick{10s};
    EXPECT_EQ(hedge_due(tick, tick + 300us, 20ms), tick + 20ms) << "woken 0.3 ms late: still 20 ms after the tick";
    EXPECT_EQ(hedge_due(tick, tick + 1ms, 20ms), tick + 20ms);
    EXPECT_EQ(hedge_due(tick, tick + 5ms, 20ms), tick + 4ms + 20ms) << "a late loop is made up for by 1 ms only";
    EXPECT_EQ(hedge_due(tick, tick, 20ms), tick + 20ms);
    EXPECT_EQ(hedge_due(tick + 2ms, tick, 20ms), tick + 2ms + 20ms) << "never before the tick";
}

TEST(HedgeDue, APercentileCountsFromTheWakeUpItsLatenciesAreMeasuredFrom) {
    using TP = std::chrono::steady_clock::time_point;
    const TP tick{10s};
    EXPECT_EQ(mdagg::detail::hedge_at(false, tick, tick + 700us, 20ms), tick + 20ms) << "after: 20ms, from the tick";
    EXPECT_EQ(mdagg::detail::hedge_at(true, tick, tick + 700us, 20ms), tick + 700us + 20ms)
        << "after: p95: from the wake-up, or more than 5% of polls would hedge";
}

TEST(HedgeRace, OnlyARacingHedgeCanWin) {
    EXPECT_EQ(on_hedge_answer(HedgeRace::racing), HedgeRace::hedge_won);
    EXPECT_EQ(on_hedge_answer(HedgeRace::primary_won), HedgeRace::primary_won) << "the loser's answer is dropped";
    EXPECT_EQ(on_hedge_answer(HedgeRace::abandoned), HedgeRace::abandoned);
}

TEST(HedgeRace, ThePrimaryDeliversItsOwnAnswerUnlessTheHedgeWonFirst) {
    EXPECT_TRUE(primary_delivers_own(HedgeRace::idle));
    EXPECT_TRUE(primary_delivers_own(HedgeRace::racing));
    EXPECT_FALSE(primary_delivers_own(HedgeRace::hedge_won)) << "exactly one quote per tick: the first";
}

TEST(HedgeRace, ALoserIsClosedUnlessItsAnswerIsArriving) {
    EXPECT_EQ(loser_fate(false), LoserFate::cancel);
    EXPECT_EQ(loser_fate(true), LoserFate::drain);
}

TEST(HedgeRace, StatesHaveNamesForTheTaskTable) {
    EXPECT_STREQ(to_string(HedgeRace::racing), "racing");
    EXPECT_STREQ(to_string(HedgeRace::hedge_won), "hedge_won");
}

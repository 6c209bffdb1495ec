// Schedule arithmetic (sans-io): phase offsets and skip-not-burst.
#include <mdagg/poll.hpp>
#include "schedule.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

using namespace std::chrono_literals;
using mdagg::phase_offset;
using mdagg::Schedule;
using ns = std::chrono::nanoseconds;

TEST(PhaseOffset, StableAndWithinInterval) {
    auto a = phase_offset("sim", "STOCK_7", 50ms);
    EXPECT_EQ(a, phase_offset("sim", "STOCK_7", 50ms));
    EXPECT_GE(a, 0ns);
    EXPECT_LT(a, ns(50ms));
    EXPECT_NE(a, phase_offset("sim", "STOCK_8", 50ms));
    EXPECT_NE(a, phase_offset("other", "STOCK_7", 50ms));
    // "ab"/"c" and "a"/"bc" must not collide just because the concatenation matches.
    EXPECT_NE(phase_offset("ab", "c", 1s), phase_offset("a", "bc", 1s));
    EXPECT_EQ(phase_offset("sim", "X", 0ns), 0ns);
}

TEST(PhaseOffset, SpreadsTwoThousandPollersAcrossTheInterval) {
    // 2,000 pollers at 50 ms: ten 5 ms slots should each hold ~200; none may hold a burst.
    std::vector<int> slots(10, 0);
    for (int i = 0; i < 2000; ++i) {
        auto off = phase_offset("sim", "STOCK_" + std::to_string(i), 50ms);
        ++slots[static_cast<std::size_t>(off / 5ms)];
    }
    for (int n : slots) {
        EXPECT_GT(n, 140);
        EXPECT_LT(n, 260);
    }
}

TEST(Schedule, FirstTickIsAlignedToTheOffset) {
    Schedule s(50ms, 7ms);
    EXPECT_EQ(s.first_tick(ns(0)), ns(7ms));
    EXPECT_EQ(s.first_tick(ns(7ms)), ns(7ms));      // exactly on a tick: that tick
    EXPECT_EQ(s.first_tick(ns(8ms)), ns(57ms));
    EXPECT_EQ(s.first_tick(ns(1000ms + 7ms)), ns(1007ms));
    EXPECT_EQ(s.first_tick(ns(1000ms + 8ms)), ns(1057ms));
}

TEST(Schedule, OnTimePollWaitsForTheNextTick) {
    Schedule s(50ms, 0ns);
    auto n = s.next(ns(100ms), ns(110ms));
    EXPECT_EQ(n.tick, ns(150ms));
    EXPECT_EQ(n.skipped, 0u);
    // Finishing exactly on the next tick still fires it.
    n = s.next(ns(100ms), ns(150ms));
    EXPECT_EQ(n.tick, ns(150ms));
    EXPECT_EQ(n.skipped, 0u);
}

TEST(Schedule, SlowPollSkipsMissedTicksInsteadOfBursting) {
    Schedule s(50ms, 0ns);
    // The poll started at 100 ms and took 125 ms: ticks at 150 and 200 were missed.
    auto n = s.next(ns(100ms), ns(225ms));
    EXPECT_EQ(n.skipped, 2u);
    EXPECT_EQ(n.tick, ns(250ms));
    // Ended exactly on a tick (200 ms): 150 missed, 200 fires.
    n = s.next(ns(100ms), ns(200ms));
    EXPECT_EQ(n.skipped, 1u);
    EXPECT_EQ(n.tick, ns(200ms));
}

TEST(Schedule, SimulatedSlowEndpointNeverBurstsAndKeepsPhase) {
    Schedule s(50ms, 13ms);
    auto tick = s.first_tick(ns(0));
    std::vector<ns> fired;
    std::uint64_t skipped = 0;
    for (int i = 0; i < 20; ++i) {
        fired.push_back(tick);
        ns poll_time = (i % 4 == 0) ? ns(175ms) : ns(5ms);  // every fourth poll hangs 3.5 intervals
        auto n = s.next(tick, tick + poll_time);
        skipped += n.skipped;
        tick = n.tick;
    }
    for (std::size_t i = 1; i < fired.size(); ++i) {
        EXPECT_GE(fired[i] - fired[i - 1], ns(50ms)) << "burst at " << i;
        EXPECT_EQ((fired[i] - ns(13ms)) % ns(50ms), ns(0)) << "lost phase at " << i;
    }
    EXPECT_EQ(skipped, 5u * 3u);  // five slow polls, three ticks each
}

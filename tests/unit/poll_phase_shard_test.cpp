// Which io shard a new poller goes to (runtime.threads > 1): phase_shard in src/poll/schedule.hpp,
// sans-io.
#include "schedule.hpp"

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using mdagg::phase_shard;

TEST(PhaseShard, OneShardTakesEverything) {
    std::array<std::size_t, 1> placed{40};
    EXPECT_EQ(phase_shard(30ms, 50ms, placed), 0u);
    EXPECT_EQ(phase_shard(0ms, 0ms, placed), 0u);
}

TEST(PhaseShard, EachShardOwnsAContiguousBlockOfTheInterval) {
    std::array<std::size_t, 2> placed{10, 10};
    EXPECT_EQ(phase_shard(0ms, 50ms, placed), 0u);
    EXPECT_EQ(phase_shard(24ms, 50ms, placed), 0u);
    EXPECT_EQ(phase_shard(25ms, 50ms, placed), 1u);
    EXPECT_EQ(phase_shard(49ms, 50ms, placed), 1u);
    // Mixed intervals: the same fraction of each interval.
    EXPECT_EQ(phase_shard(499ms, 1s, placed), 0u);
    EXPECT_EQ(phase_shard(500ms, 1s, placed), 1u);
    std::array<std::size_t, 3> three{5, 5, 5};
    EXPECT_EQ(phase_shard(10ms, 90ms, three), 0u);
    EXPECT_EQ(phase_shard(45ms, 90ms, three), 1u);
    EXPECT_EQ(phase_shard(89ms, 90ms, three), 2u);
}

TEST(PhaseShard, AShardFarAheadGivesTheNewPollerToTheEmptiest) {
    // 2 + total/8 ahead is the most a shard may be before it gets no more.
    std::array<std::size_t, 2> placed{4, 2};  // 2 ahead, limit 2 + 6/8 = 2
    EXPECT_EQ(phase_shard(1ms, 50ms, placed), 0u);
    placed = {5, 2};  // 3 ahead
    EXPECT_EQ(phase_shard(1ms, 50ms, placed), 1u);
    placed = {100, 80};  // 20 ahead, limit 2 + 22 = 24
    EXPECT_EQ(phase_shard(1ms, 50ms, placed), 0u);
}

TEST(PhaseShard, PollersDealtByPhaseStayBalancedAndMostlyInTheirBlock) {
    // 2,000 pollers of one source at 50 ms, phases from the real hash, added one by one.
    std::array<std::size_t, 2> placed{0, 0};
    std::size_t in_block = 0;
    for (int i = 0; i < 2000; ++i) {
        const auto phase = mdagg::phase_offset("sim", "STOCK_" + std::to_string(i), 50ms);
        const auto k = phase_shard(phase, 50ms, placed);
        ++placed[k];
        if (k == (phase < 25ms ? 0u : 1u)) ++in_block;
    }
    EXPECT_LE(placed[0] > placed[1] ? placed[0] - placed[1] : placed[1] - placed[0], 2u + 2000 / 8);
    EXPECT_GE(in_block, 1900u) << "almost every poller is on the shard owning its phase";
}

TEST(PhaseShard, PollersSharingAPhaseStillSpreadOverTheShards) {
    // Twenty pollers of one name (one phase): the balance bound deals them to both shards.
    std::array<std::size_t, 2> placed{0, 0};
    for (int i = 0; i < 20; ++i) ++placed[phase_shard(10ms, 50ms, placed)];
    EXPECT_GE(placed[1], 7u);
    EXPECT_GE(placed[0], 7u);
}

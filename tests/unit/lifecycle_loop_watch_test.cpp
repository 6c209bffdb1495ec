// The event-loop watchdog's decisions on simulated time (LoopWatch, sans-io): which io threads'
// loops are stalled given their heartbeats and now, and each episode's start and end once.
#include "loop_watch.hpp"

#include <gtest/gtest.h>

#include <vector>

using namespace std::chrono_literals;
using mdagg::lifecycle::LoopWatch;
using Clock = LoopWatch::Clock;

namespace {

const Clock::time_point t0 = Clock::time_point(1000s);

struct Fixture {
    LoopWatch watch{3};
    std::vector<Clock::time_point> beats{t0, t0, t0};
    std::vector<LoopWatch::Change> at(Clock::time_point now) { return watch.update(beats, now); }
};

}  // namespace

TEST(LoopWatch, FreshHeartbeatsAndOneExactlyAtTheLimitAreNoStall) {
    Fixture f;
    EXPECT_TRUE(f.at(t0 + 1s).empty());
    EXPECT_TRUE(f.at(t0 + LoopWatch::stall_after).empty());  // older than the limit, not as old
    for (std::size_t i = 0; i < 3; ++i) EXPECT_FALSE(f.watch.stalled(i));
}

TEST(LoopWatch, OneStaleShardStartsOneEpisodeNamingItAndTheOthersStayWell) {
    Fixture f;
    // Threads 0 and 2 keep beating; thread 1's last beat was at t0.
    f.beats = {t0 + 5s, t0, t0 + 5s};
    auto changes = f.at(t0 + 5s + 250ms);
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_EQ(changes[0].thread, 1u);
    EXPECT_TRUE(changes[0].stalled);
    EXPECT_EQ(changes[0].duration, 5s + 250ms);  // the heartbeat's age when noticed
    EXPECT_FALSE(f.watch.stalled(0));
    EXPECT_TRUE(f.watch.stalled(1));
    EXPECT_FALSE(f.watch.stalled(2));

    // Still stuck: no second start (one log line per episode).
    f.beats = {t0 + 9s, t0, t0 + 9s};
    EXPECT_TRUE(f.at(t0 + 9s).empty());
    EXPECT_TRUE(f.watch.stalled(1));

    // It turns again: the episode ends once, with how long the thread did not turn.
    f.beats = {t0 + 12s, t0 + 12s, t0 + 12s};
    changes = f.at(t0 + 12s + 100ms);
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_EQ(changes[0].thread, 1u);
    EXPECT_FALSE(changes[0].stalled);
    EXPECT_EQ(changes[0].duration, 12s);
    EXPECT_FALSE(f.watch.stalled(1));
    EXPECT_TRUE(f.at(t0 + 12s + 600ms).empty());
}

TEST(LoopWatch, ThreadsStallAndRecoverIndependently) {
    Fixture f;
    f.beats = {t0, t0 + 2s, t0 + 6s};
    auto changes = f.at(t0 + 6s);  // thread 0 is 6 s old, thread 1 4 s
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_EQ(changes[0].thread, 0u);
    changes = f.at(t0 + 8s);  // now thread 1 too (6 s); thread 0 goes on
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_EQ(changes[0].thread, 1u);
    EXPECT_TRUE(f.watch.stalled(0) && f.watch.stalled(1) && !f.watch.stalled(2));
    f.beats = {t0 + 8s, t0 + 2s, t0 + 8s};
    changes = f.at(t0 + 8s);
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_EQ(changes[0].thread, 0u);
    EXPECT_FALSE(changes[0].stalled);
    EXPECT_TRUE(f.watch.stalled(1));
}

TEST(LoopWatch, AThreadStoppedOnPurposeIsNotWatchedAndEndsItsEpisodeSilently) {
    Fixture f;
    f.beats = {t0 + 20s, LoopWatch::unwatched, t0};
    auto changes = f.at(t0 + 20s);  // thread 1 was stopped: never stale; thread 2 is
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_EQ(changes[0].thread, 2u);
    EXPECT_FALSE(f.watch.stalled(1));
    // Thread 2 is then stopped (shutdown) while stalled: no "turning again", no longer stalled.
    f.beats[2] = LoopWatch::unwatched;
    EXPECT_TRUE(f.at(t0 + 21s).empty());
    EXPECT_FALSE(f.watch.stalled(2));
}

TEST(LoopWatch, AStallLimitOfItsOwn) {
    LoopWatch watch(1, 1s);
    const std::vector<Clock::time_point> beats{t0};
    EXPECT_TRUE(watch.update(beats, t0 + 1s).empty());
    EXPECT_EQ(watch.update(beats, t0 + 1s + 1ms).size(), 1u);
}

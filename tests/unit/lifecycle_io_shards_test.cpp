// The io shards' heartbeats, which the event-loop watchdog reads: a shard with no pollers at
// all (as a reload can leave one) still beats from its own thread, and stop() ends the loops
// with the heartbeat timer still pending, joins, and leaves the shard unwatched.
#include "io_shards.hpp"
#include "loop_watch.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <thread>

using namespace std::chrono_literals;
using mdagg::lifecycle::IoShards;
using mdagg::lifecycle::LoopWatch;

namespace {

// Waits (bounded) for the heartbeat to move past `after`: the shard's loop turned.
bool beats_after(const LoopWatch::Heartbeat& h, LoopWatch::Clock::time_point after) {
    const auto deadline = LoopWatch::Clock::now() + 10s;
    while (LoopWatch::read(h) <= after) {
        if (LoopWatch::Clock::now() > deadline) return false;
        std::this_thread::sleep_for(1ms);  // polled: the stamp has no notification
    }
    return true;
}

}  // namespace

TEST(IoShards, MultiThreadedEveryOtherShardBeatsWithoutPollersAndStopsUnwatched) {
    boost::asio::io_context main(1);
    IoShards shards(main, 3, [] {});
    ASSERT_EQ(shards.contexts().size(), 3u);
    const auto beats = shards.heartbeats();
    ASSERT_EQ(beats.size(), 2u);  // shard 0's is the control strand's
    for (auto* h : beats) {
        const auto first = LoopWatch::read(*h);
        EXPECT_NE(first, LoopWatch::unwatched);  // stamped before the thread started
        EXPECT_TRUE(beats_after(*h, first)) << "the shard's heartbeat timer did not fire";
    }
    shards.stop();
    for (auto* h : beats) EXPECT_EQ(LoopWatch::read(*h), LoopWatch::unwatched);
    shards.stop();  // again, as the destructor does
}

TEST(IoShards, OneThreadHasNoOtherShardToWatch) {
    boost::asio::io_context main(1);
    IoShards shards(main, 1, [] {});
    EXPECT_TRUE(shards.heartbeats().empty());
}

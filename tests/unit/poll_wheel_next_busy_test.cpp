// The timer wheel's next busy millisecond (src/poll/timer_wheel.hpp), sans-io: where a one-thread
// tick scheduler's timer sleeps to instead of waking each millisecond.
#include "timer_wheel.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <vector>

namespace {
using mdagg::detail::TimerWheel;
using mdagg::detail::WheelEntry;

std::size_t advance(TimerWheel& w, std::int64_t now) {
    std::vector<WheelEntry*> due;
    w.advance(now, due);
    return due.size();
}
}  // namespace

TEST(TimerWheelNextBusy, AnEmptyWheelHasNone) {
    TimerWheel w(64);
    EXPECT_EQ(w.next_busy_ms(), std::numeric_limits<std::int64_t>::max());
    advance(w, 1000);
    EXPECT_EQ(w.next_busy_ms(), std::numeric_limits<std::int64_t>::max());
}

TEST(TimerWheelNextBusy, BeforeTheFirstAdvanceItIsTheEarliestEntry) {
    TimerWheel w(64);
    std::vector<WheelEntry> e(2);
    w.add(e[0], 1020);
    w.add(e[1], 1007);
    EXPECT_EQ(w.next_busy_ms(), 1007);
}

TEST(TimerWheelNextBusy, SkipsEmptyMillisecondsAndFollowsRemoval) {
    TimerWheel w(64);
    std::vector<WheelEntry> e(3);
    advance(w, 1000);
    w.add(e[0], 1005);
    w.add(e[1], 1030);
    EXPECT_EQ(w.next_busy_ms(), 1005);
    w.remove(e[0]);
    EXPECT_EQ(w.next_busy_ms(), 1030) << "a removed deadline no longer wakes the timer";
    w.add(e[2], 1012);
    EXPECT_EQ(w.next_busy_ms(), 1012);
    // Sleeping to the next busy millisecond loses nothing: nothing is due before it.
    EXPECT_EQ(advance(w, 1011), 0u);
    EXPECT_EQ(advance(w, 1012), 1u);
    EXPECT_EQ(w.next_busy_ms(), 1030);
}

TEST(TimerWheelNextBusy, AnEntryAlreadyDueIsBusyAtTheCursor) {
    TimerWheel w(64);
    std::vector<WheelEntry> e(1);
    advance(w, 1000);
    w.add(e[0], 990);  // already due: fires at the next advance
    EXPECT_EQ(w.next_busy_ms(), 1001);
    EXPECT_EQ(advance(w, 1001), 1u);
}

TEST(TimerWheelNextBusy, AnEntryBeyondTheRingWakesEarlyButFiresOnTime) {
    TimerWheel w(64);
    std::vector<WheelEntry> e(1);
    advance(w, 1000);
    w.add(e[0], 1000 + 64 + 10);  // a revolution later, in the slot of 1010
    EXPECT_EQ(w.next_busy_ms(), 1010) << "a slot's entry may be a revolution later: wake early";
    EXPECT_EQ(advance(w, 1010), 0u) << "...and find nothing due";
    EXPECT_EQ(w.next_busy_ms(), 1074);
    EXPECT_EQ(advance(w, 1074), 1u);
}

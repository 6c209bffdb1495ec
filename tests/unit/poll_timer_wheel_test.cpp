// The timer wheel behind ticks and deadlines (src/poll/timer_wheel.hpp), sans-io.
#include "timer_wheel.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace {
using mdagg::detail::TimerWheel;
using mdagg::detail::WheelEntry;

std::vector<int> fire(TimerWheel& w, std::int64_t now, const std::vector<WheelEntry>& entries) {
    std::vector<WheelEntry*> due;
    w.advance(now, due);
    std::vector<int> ids;
    for (auto* e : due) ids.push_back(static_cast<int>(e - entries.data()));
    return ids;
}
}  // namespace

TEST(TimerWheel, EntriesFireAtTheirMillisecondInDueOrderAndNeverBefore) {
    TimerWheel w(64);
    std::vector<WheelEntry> e(4);
    fire(w, 1000, e);  // the clock starts at 1000
    w.add(e[0], 1005);
    w.add(e[1], 1003);
    w.add(e[2], 1005);
    w.add(e[3], 1010);
    EXPECT_EQ(w.size(), 4u);
    EXPECT_TRUE(fire(w, 1002, e).empty());
    EXPECT_EQ(fire(w, 1003, e), (std::vector<int>{1}));
    // One late advance covers every millisecond passed, oldest first, each entry once.
    EXPECT_EQ(fire(w, 1012, e), (std::vector<int>{0, 2, 3}));
    EXPECT_EQ(w.size(), 0u);
    EXPECT_TRUE(fire(w, 1100, e).empty());
}

TEST(TimerWheel, RemovedEntriesNeverFireAndReAddingMovesThem) {
    TimerWheel w(64);
    std::vector<WheelEntry> e(2);
    w.add(e[0], 10);
    w.add(e[1], 11);
    w.remove(e[0]);
    w.remove(e[0]);  // twice is harmless
    EXPECT_FALSE(e[0].linked());
    w.add(e[1], 20);  // moved, not duplicated
    EXPECT_EQ(w.size(), 1u);
    EXPECT_TRUE(fire(w, 19, e).empty());
    EXPECT_EQ(fire(w, 20, e), (std::vector<int>{1}));
}

TEST(TimerWheel, EntriesBeyondTheRingWaitForTheirTimeAndPastOnesFireAtOnce) {
    TimerWheel w(16);
    std::vector<WheelEntry> e(3);
    fire(w, 100, e);
    w.add(e[0], 100 + 16 * 3 + 5);  // three revolutions out, in the slot of 105
    w.add(e[1], 50);                // already past: fires at the next advance
    EXPECT_EQ(fire(w, 101, e), (std::vector<int>{1}));
    for (std::int64_t t = 102; t < 153; ++t) ASSERT_TRUE(fire(w, t, e).empty()) << t;
    EXPECT_EQ(fire(w, 153, e), (std::vector<int>{0}));
    // A gap of many revolutions visits each slot once and fires what is due.
    w.add(e[2], 200);
    EXPECT_EQ(fire(w, 10'000, e), (std::vector<int>{2}));
}

// Pollers are added before the wheel's first advance; a start-up that is slow to reach it
// must not leave the entries already due for a whole revolution.
TEST(TimerWheel, TheFirstAdvanceFiresEntriesAddedBeforeItThatAreAlreadyDue) {
    TimerWheel w(1024);
    std::vector<WheelEntry> e(3);
    w.add(e[0], 1000);
    w.add(e[1], 1003);
    w.add(e[2], 1004);
    EXPECT_EQ(fire(w, 1003, e), (std::vector<int>{0, 1}));
    EXPECT_EQ(fire(w, 1004, e), (std::vector<int>{2}));
    EXPECT_EQ(w.size(), 0u);
}

TEST(TimerWheel, TheFirstAdvanceFiresEntriesAddedFarEarlierThanTheRing) {
    TimerWheel w(16);
    std::vector<WheelEntry> e(2);
    w.add(e[0], 10);
    w.add(e[1], 500);
    EXPECT_EQ(fire(w, 200, e), (std::vector<int>{0}));
    EXPECT_EQ(fire(w, 500, e), (std::vector<int>{1}));
}

// Priorities with aging at a host's token bucket, sans-io: HostGuard::admit's reserves for
// better priorities, driven by a simulated clock with the pollers' aging rule (poller.cpp:
// one step better per refused tick, back to the configured priority after a poll).
#include <mdagg/poll.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

using namespace std::chrono_literals;
using mdagg::Admission;
using mdagg::HostConfig;
using mdagg::HostGuard;

namespace {

HostConfig limited(double rate) {
    HostConfig h;
    h.rate = rate;
    h.burst = rate;
    return h;
}

}  // namespace

TEST(Priority, OnePriorityOnAHostKeepsTheWholeBucket) {
    const auto t0 = HostGuard::Clock::now();
    HostGuard g(limited(10), t0);
    g.note_priority(5);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(g.admit(t0, 1, 5), Admission::go) << i;
    EXPECT_EQ(g.admit(t0, 1, 5), Admission::throttled);
}

TEST(Priority, TheLastTokensAreKeptForTheBestPriority) {
    const auto t0 = HostGuard::Clock::now();
    HostGuard g(limited(9), t0);
    g.note_priority(1);
    g.note_priority(9);
    // Priority 9 needs a full bucket: one goes, the next is refused while 1 still gets in.
    EXPECT_EQ(g.admit(t0, 1, 9), Admission::go);
    EXPECT_EQ(g.admit(t0, 1, 9), Admission::throttled);
    EXPECT_EQ(g.admit(t0, 1, 5), Admission::go);  // 8 - 1 >= 4 reserved for better ones
    for (int i = 0; i < 7; ++i) EXPECT_EQ(g.admit(t0, 1, 1), Admission::go) << i;
    EXPECT_EQ(g.admit(t0, 1, 1), Admission::throttled);
}

TEST(Priority, APollerThatLeavesTakesItsReserveWithIt) {
    const auto t0 = HostGuard::Clock::now();
    HostGuard g(limited(9), t0);
    g.note_priority(1);
    g.note_priority(9);
    g.note_priority(1, -1);  // the priority-1 poller was removed by a reload
    for (int i = 0; i < 9; ++i) EXPECT_EQ(g.admit(t0, 1, 9), Admission::go) << i;
}

// Demand twice the host's rate: 5 pollers of priority 1 and 15 of priority 9, 10 polls a
// second each, at a rate of 100 a second. Priority 1 keeps its schedule; aging gets every
// priority-9 poller a poll at least once every 10 intervals.
TEST(Priority, UnderTwiceTheRateTheBestKeepTheirScheduleAndNobodyStarves) {
    const auto t0 = HostGuard::Clock::now();
    HostGuard g(limited(100), t0);
    struct P {
        std::uint8_t priority, effective;
        int polls = 0, ticks = 0, longest_gap = 0, gap = 0;
    };
    std::vector<P> pollers;
    for (int i = 0; i < 20; ++i) {
        const std::uint8_t prio = i < 5 ? 1 : 9;
        pollers.push_back({prio, prio});
        g.note_priority(prio);
    }
    constexpr int intervals = 200;
    for (int tick = 0; tick < intervals; ++tick)
        for (std::size_t i = 0; i < pollers.size(); ++i) {  // spread over the interval
            P& p = pollers[i];
            const auto now = t0 + tick * 100ms + std::chrono::microseconds(i * 5000);
            ++p.ticks;
            if (g.admit(now, 1, p.effective) == Admission::go) {
                ++p.polls;
                p.effective = p.priority;
                p.gap = 0;
            } else {
                p.effective = static_cast<std::uint8_t>(std::max(1, p.effective - 1));
                p.longest_gap = std::max(p.longest_gap, ++p.gap);
            }
        }
    int total = 0;
    for (const P& p : pollers) {
        total += p.polls;
        if (p.priority == 1) {
            EXPECT_GE(p.polls, 0.95 * p.ticks);
        }
        EXPECT_LT(p.longest_gap, 10) << "priority " << int(p.priority);
        EXPECT_GT(p.polls, 0);
    }
    // The bucket is used, not left idle by the reserves: about the rate (plus the first burst).
    EXPECT_GE(total, 0.95 * 100 * intervals / 10);
}

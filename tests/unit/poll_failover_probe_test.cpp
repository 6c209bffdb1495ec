// The probe tick (src/poll/failover.hpp, fall_back_after_probe), sans-io: when the url's host's
// breaker probe fails, the same tick goes on to the mirror instead of being lost (issue 15:
// ticks are not lost in the switch). Real HostGuards with the time passed in, no sockets.
#include <mdagg/poll.hpp>
#include "failover.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

using namespace std::chrono_literals;
using mdagg::Admission;
using mdagg::BreakerState;
using mdagg::HostConfig;
using mdagg::HostGuard;
using mdagg::HostVerdict;
using mdagg::detail::choose_route;
using mdagg::detail::fall_back_after_probe;
using mdagg::detail::no_route;

namespace {

using Clock = HostGuard::Clock;

struct Routes {
    explicit Routes(Clock::time_point t0) {
        HostConfig h;
        h.breaker.failures = 2;
        h.breaker.cooldown = 1s;
        h.breaker.max_cooldown = 4s;
        for (int i = 0; i < 2; ++i) {
            owned.push_back(std::make_unique<HostGuard>(h, t0));
            guards.push_back(owned.back().get());
        }
    }
    std::vector<std::unique_ptr<HostGuard>> owned;
    std::vector<HostGuard*> guards;
};

}  // namespace

TEST(FailoverProbe, AFailedProbesTickIsServedByTheMirrorInTheSameTick) {
    const auto t0 = Clock::now();
    Routes r(t0);
    for (int i = 0; i < 2; ++i) r.owned[0]->report(t0, HostVerdict::failing, false);
    ASSERT_EQ(r.owned[0]->status(t0).breaker, BreakerState::open);

    // The cooldown is over: this tick is the probe.
    const auto tick = t0 + 1100ms;
    const auto probe = choose_route(r.guards, tick, 1, no_route);
    ASSERT_EQ(probe.route, 0u);
    ASSERT_EQ(probe.admission, Admission::probe);
    // Refused at once: the breaker re-opens, and the tick has its connect budget left.
    const auto failed_at = tick + 1ms;
    r.owned[0]->report(failed_at, HostVerdict::failing, true);
    ASSERT_TRUE(fall_back_after_probe(true, HostVerdict::failing, 2, failed_at, tick + 250ms));
    // The back-off the refused connect earned is the url's host's: the mirror takes the tick.
    const auto again = choose_route(r.guards, failed_at, 1, 0);
    EXPECT_EQ(again.route, 1u);
    EXPECT_EQ(again.admission, Admission::go);
    EXPECT_FALSE(again.backing_off);
}

TEST(FailoverProbe, OnlyAFailingProbeWithAnotherRouteAndTimeLeftFallsBack) {
    const auto now = Clock::now();
    const auto budget = now + 100ms;
    EXPECT_TRUE(fall_back_after_probe(true, HostVerdict::failing, 3, now, budget));
    EXPECT_FALSE(fall_back_after_probe(false, HostVerdict::failing, 2, now, budget)) << "not a probe: the breaker "
                                                                                         "had not opened";
    EXPECT_FALSE(fall_back_after_probe(true, HostVerdict::healthy, 2, now, budget)) << "the probe succeeded";
    EXPECT_FALSE(fall_back_after_probe(true, HostVerdict::neutral, 2, now, budget)) << "no news: e.g. a 429";
    EXPECT_FALSE(fall_back_after_probe(true, HostVerdict::failing, 1, now, budget)) << "no mirror";
    EXPECT_FALSE(fall_back_after_probe(true, HostVerdict::failing, 2, budget, budget)) << "the budget is spent";
}

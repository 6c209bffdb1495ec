// Mirror failover's choice of route, sans-io (src/poll/failover.hpp): real HostGuards with the
// time passed in, no sockets. The url's host first, then the mirrors in order.
#include <mdagg/poll.hpp>
#include "failover.hpp"

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <vector>

using namespace std::chrono_literals;
using mdagg::Admission;
using mdagg::BreakerState;
using mdagg::HostConfig;
using mdagg::HostGuard;
using mdagg::HostVerdict;
using mdagg::PauseReason;
using mdagg::detail::choose_route;
using mdagg::detail::no_route;

namespace {

using Clock = HostGuard::Clock;

HostConfig host(double rate = 0) {
    HostConfig h;
    h.rate = rate;
    h.burst = rate;
    h.breaker.failures = 2;
    h.breaker.cooldown = 1s;
    h.breaker.max_cooldown = 4s;
    return h;
}

struct Routes {
    explicit Routes(std::size_t n, Clock::time_point t0, double rate = 0) {
        for (std::size_t i = 0; i < n; ++i) {
            owned.push_back(std::make_unique<HostGuard>(host(rate), t0));
            guards.push_back(owned.back().get());
        }
    }
    HostGuard& operator[](std::size_t i) { return *owned[i]; }
    std::vector<std::unique_ptr<HostGuard>> owned;
    std::vector<HostGuard*> guards;
};

void open_breaker(HostGuard& g, Clock::time_point t) {
    for (int i = 0; i < 2; ++i) g.report(t, HostVerdict::failing, false);
    ASSERT_EQ(g.status(t).breaker, BreakerState::open);
}

}  // namespace

TEST(Failover, AHealthyPrimaryTakesEveryTick) {
    const auto t0 = Clock::now();
    Routes r(3, t0);
    for (int i = 0; i < 5; ++i) {
        const auto c = choose_route(r.guards, t0 + i * 10ms, 1, no_route);
        EXPECT_EQ(c.route, 0u);
        EXPECT_EQ(c.admission, Admission::go);
    }
}

TEST(Failover, AnOpenBreakerHandsTheTickToTheFirstMirrorInTheSameTickAndTheProbeBringsItBack) {
    const auto t0 = Clock::now();
    Routes r(3, t0);
    open_breaker(r[0], t0);
    // Every poller's tick goes to mirror 1 while the breaker is open: no tick is lost.
    for (int i = 0; i < 10; ++i) {
        const auto c = choose_route(r.guards, t0 + 100ms, 1, no_route);
        EXPECT_EQ(c.route, 1u);
        EXPECT_EQ(c.admission, Admission::go);
    }
    // After the cooldown one poller probes the primary; the others stay on the mirror.
    const auto probe = choose_route(r.guards, t0 + 1100ms, 1, no_route);
    EXPECT_EQ(probe.route, 0u);
    EXPECT_EQ(probe.admission, Admission::probe);
    EXPECT_EQ(choose_route(r.guards, t0 + 1110ms, 1, no_route).route, 1u);
    // The probe succeeds: the breaker closes and every poller returns.
    r[0].report(t0 + 1120ms, HostVerdict::healthy, true);
    EXPECT_EQ(choose_route(r.guards, t0 + 1130ms, 1, no_route).route, 0u);
}

TEST(Failover, APausedOrBannedHostHandsItsTicksOnUntilThePauseEnds) {
    const auto t0 = Clock::now();
    Routes r(2, t0);
    r[0].pause(t0, PauseReason::banned, 2s);
    EXPECT_EQ(choose_route(r.guards, t0 + 1s, 1, no_route).route, 1u);
    EXPECT_EQ(choose_route(r.guards, t0 + 2100ms, 1, no_route).route, 0u);
}

TEST(Failover, SkipsAnUnhealthyMirrorForTheNextHealthyOne) {
    const auto t0 = Clock::now();
    Routes r(3, t0);
    open_breaker(r[0], t0);
    r[1].pause(t0, PauseReason::rate_limited, 5s);
    const auto c = choose_route(r.guards, t0 + 10ms, 1, no_route);
    EXPECT_EQ(c.route, 2u);
    EXPECT_EQ(c.admission, Admission::go);
}

TEST(Failover, WithEveryHostRefusingTheTickCountsAsThePrimarysRefusal) {
    const auto t0 = Clock::now();
    Routes r(2, t0);
    r[0].pause(t0, PauseReason::rate_limited, 5s);
    open_breaker(r[1], t0);
    const auto c = choose_route(r.guards, t0 + 10ms, 1, no_route);
    EXPECT_EQ(c.route, 0u);
    EXPECT_EQ(c.admission, Admission::paused);
    EXPECT_FALSE(c.polls());
}

TEST(Failover, AnEmptyBucketSkipsTheTickAndTakesNoMirrorsTokens) {
    const auto t0 = Clock::now();
    Routes r(2, t0, 2);  // 2 tokens a second each
    EXPECT_TRUE(choose_route(r.guards, t0, 1, no_route).polls());
    EXPECT_TRUE(choose_route(r.guards, t0, 1, no_route).polls());
    const auto c = choose_route(r.guards, t0, 1, no_route);
    EXPECT_EQ(c.route, 0u);
    EXPECT_EQ(c.admission, Admission::throttled);
    // The mirror's bucket is untouched: a throttled primary is healthy, not failed over.
    EXPECT_DOUBLE_EQ(r[1].status(t0).tokens, 2.0);
}

TEST(Failover, ABackoffHoldsThePollerOnItsRouteUnlessThatHostRefusesEveryone) {
    const auto t0 = Clock::now();
    Routes r(2, t0);
    // Backing off from a healthy primary: the tick is skipped, no mirror is asked.
    auto c = choose_route(r.guards, t0, 1, 0);
    EXPECT_TRUE(c.backing_off);
    EXPECT_EQ(c.route, 0u);
    // The primary's breaker opened meanwhile: the mirror takes the tick.
    open_breaker(r[0], t0);
    c = choose_route(r.guards, t0 + 10ms, 1, 0);
    EXPECT_EQ(c.route, 1u);
    EXPECT_EQ(c.admission, Admission::go);
    // A backoff earned on the mirror holds there; the primary is not retried early.
    c = choose_route(r.guards, t0 + 20ms, 1, 1);
    EXPECT_TRUE(c.backing_off);
    EXPECT_EQ(c.route, 1u);
}

TEST(Failover, ABackingOffPollerDoesNotTakeTheProbe) {
    const auto t0 = Clock::now();
    Routes r(2, t0);
    open_breaker(r[0], t0);
    // Past the cooldown, a poller backing off from the primary goes to the mirror and leaves
    // the probe to the next poller.
    EXPECT_EQ(choose_route(r.guards, t0 + 1100ms, 1, 0).route, 1u);
    const auto probe = choose_route(r.guards, t0 + 1100ms, 1, no_route);
    EXPECT_EQ(probe.route, 0u);
    EXPECT_EQ(probe.admission, Admission::probe);
}

TEST(Failover, WithoutMirrorsItIsTheHostGuardAlone) {
    const auto t0 = Clock::now();
    Routes r(1, t0);
    open_breaker(r[0], t0);
    EXPECT_EQ(choose_route(r.guards, t0 + 10ms, 1, no_route).admission, Admission::breaker_open);
    // A backoff on the only route counts as the backoff, as before mirrors.
    EXPECT_TRUE(choose_route(r.guards, t0 + 10ms, 1, 0).backing_off);
    EXPECT_EQ(choose_route(r.guards, t0 + 1100ms, 1, no_route).admission, Admission::probe);
}

// A poller's routes beside the failover choice (src/poll/failover.hpp), sans-io: the `via`
// name of a route, whose host's reserves count a poller's priority, and the labels of the
// per-route poll counts across a reload that reorders `mirrors`.
#include <mdagg/poll.hpp>
#include "failover.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

using namespace std::chrono_literals;
using mdagg::HostConfig;
using mdagg::HostGuard;
using mdagg::Url;
using mdagg::detail::PriorityReserve;
using mdagg::detail::route_label;
using mdagg::detail::route_via;

namespace {

Url url(std::string scheme, std::string host, std::uint16_t port) {
    Url u;
    u.scheme = std::move(scheme);
    u.host = std::move(host);
    u.port = port;
    u.target_template = "/api/v3/ticker/bookTicker?symbol={symbol}&signature={env:SECRET}";
    return u;
}

}  // namespace

TEST(RouteVia, TheHostWithItsPortOnlyWhenNotTheSchemesDefault) {
    EXPECT_EQ(route_via(url("https", "api1.binance.com", 443)), "api1.binance.com");
    EXPECT_EQ(route_via(url("http", "api1.binance.com", 80)), "api1.binance.com");
    EXPECT_EQ(route_via(url("https", "api1.binance.com", 8443)), "api1.binance.com:8443");
    EXPECT_EQ(route_via(url("http", "127.0.0.2", 18081)), "127.0.0.2:18081");
    EXPECT_EQ(route_via(url("https", "::1", 8443)), "[::1]:8443");
    EXPECT_EQ(route_via(url("https", "::1", 443)), "[::1]");
}

// A host's priority counts follow the pollers that poll it: set up on the url's host, moved
// with a failover and back, gone while paused or cancelled, back on resume, gone when freed.
TEST(PriorityReserves, AHostCountsOnlyThePollersActiveOnIt) {
    const auto t0 = HostGuard::Clock::now();
    HostConfig h;
    h.rate = 10;
    h.burst = 10;
    HostGuard primary(h, t0), mirror(h, t0);
    PriorityReserve a, b;
    a.move_to(&primary, 1);  // set-up: both on the url's host
    b.move_to(&primary, 9);
    EXPECT_EQ(primary.pollers_at_priority(1), 1);
    EXPECT_EQ(primary.pollers_at_priority(9), 1);
    EXPECT_EQ(mirror.pollers_at_priority(1), 0);  // the old code counted every route's guard

    a.move_to(&mirror, 1);  // a fails over
    EXPECT_EQ(primary.pollers_at_priority(1), 0);
    EXPECT_EQ(mirror.pollers_at_priority(1), 1);
    a.move_to(&mirror, 1);  // again: no double count
    EXPECT_EQ(mirror.pollers_at_priority(1), 1);

    b.move_to(nullptr, 9);  // an operator pauses b
    EXPECT_EQ(primary.pollers_at_priority(9), 0);
    b.move_to(&primary, 9);  // resumed on its current route
    EXPECT_EQ(primary.pollers_at_priority(9), 1);

    a.move_to(&primary, 1);  // a returns
    EXPECT_EQ(mirror.pollers_at_priority(1), 0);
    EXPECT_EQ(primary.pollers_at_priority(1), 1);
    a.move_to(nullptr, 1);  // cancelled
    a.move_to(nullptr, 1);  // then freed: nothing counted twice
    EXPECT_EQ(primary.pollers_at_priority(1), 0);
    EXPECT_EQ(primary.pollers_at_priority(9), 1);
}

// Reserves act on what is counted: a priority-1 poller that failed over leaves the url's host
// with its priority-9 pollers only, and there no reserve holds their ticks back any more.
TEST(PriorityReserves, AMirrorsPollerHoldsNoReserveOnTheUrlsHost) {
    const auto t0 = HostGuard::Clock::now();
    HostConfig h;
    h.rate = 1;
    h.burst = 4;
    HostGuard primary(h, t0), mirror(h, t0);
    PriorityReserve best, worst;
    best.move_to(&primary, 1);
    worst.move_to(&primary, 9);
    // Drain the bucket to 2 tokens: a priority-9 tick needs cost + (burst - cost) = 4.
    ASSERT_EQ(primary.admit(t0, 1, 1), mdagg::Admission::go);
    ASSERT_EQ(primary.admit(t0, 1, 1), mdagg::Admission::go);
    EXPECT_EQ(primary.admit(t0, 1, 9), mdagg::Admission::throttled);
    best.move_to(&mirror, 1);  // the priority-1 poller is on the mirror now
    EXPECT_EQ(primary.admit(t0, 1, 9), mdagg::Admission::go);
}

// A reload that reorders `mirrors` keeps each host's count under its own name.
TEST(RoutePollLabels, CountsFollowTheHostAcrossAReorder) {
    std::vector<std::string> labels;
    bool reused = true;
    const std::vector<std::string> before{"p:80", "a:80", "b:80"};
    for (std::size_t i = 0; i < before.size(); ++i) EXPECT_EQ(route_label(labels, before, before[i], reused), i);
    EXPECT_FALSE(reused);
    const std::vector<std::string> after{"p:80", "b:80", "a:80", "c:80"};
    EXPECT_EQ(route_label(labels, after, "p:80", reused), 0u);
    EXPECT_EQ(route_label(labels, after, "b:80", reused), 2u);
    EXPECT_EQ(route_label(labels, after, "a:80", reused), 1u);
    EXPECT_EQ(route_label(labels, after, "c:80", reused), 3u);
    EXPECT_EQ(labels, (std::vector<std::string>{"p:80", "a:80", "b:80", "c:80"}));
    EXPECT_FALSE(reused);
}

TEST(RoutePollLabels, WhenFullAHostNoLongerUsedGivesItsPlaceUp) {
    std::vector<std::string> labels;
    bool reused = false;
    std::vector<std::string> names;
    for (std::size_t i = 0; i < mdagg::max_poll_routes; ++i) {
        std::string name("h");  // appended: g++ 12 -O3 sees a bogus overlap in "h" + std::string
        name.append(std::to_string(i)).append(":80");
        names.push_back(name);
    }
    for (auto& n : names) route_label(labels, names, n, reused);
    ASSERT_EQ(labels.size(), mdagg::max_poll_routes);
    std::vector<std::string> now(names.begin() + 1, names.end());
    now.push_back("new:80");
    EXPECT_EQ(route_label(labels, now, "new:80", reused), 0u);  // h0 is no route any more
    EXPECT_TRUE(reused);
    EXPECT_EQ(labels[0], "new:80");
}

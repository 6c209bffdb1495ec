// Mirror failover against the real simulator with two listeners (one venue, one book): a
// `refuse` on the url's listener moves every poller to the mirror within one breaker trip,
// with no tick skipped for the open breaker; once the fault ends and the probe succeeds they
// all come back. Nothing is lost or duplicated: the simulator's responses (both listeners)
// equal the quote records, and seqs rise per symbol.
#include "failover_support.hpp"
#include "output_checks.hpp"

#include <gtest/gtest.h>

#include <csignal>

using namespace harness;
using namespace failover;
using namespace std::chrono_literals;
using harness::admin_port_of;

TEST(Failover, RefuseOnThePrimaryMovesEveryPollerToTheMirrorAndBackWithNothingLost) {
    TempDir dir;
    Sim sim;
    const auto hosts = start_two_listeners(dir, sim);
    ASSERT_TRUE(hosts);
    const std::string primary = hosts->primary, mirror = hosts->mirror;

    const fs::path path =
        write_failover_config(dir, {.primary = primary, .mirrors = {mirror}, .breaker = "{ failures: 3, cooldown: 6s, max_cooldown: 6s }"});
    auto daemon = start_daemon(dir, path);
    const int admin = admin_port_of(*daemon);
    EXPECT_FALSE(find_log(*daemon, "hedge is not used yet by this version: no hedged requests"));
    ASSERT_TRUE(wait_until([&] { return pollers_on(admin, 0) == symbols; }, 10s));
    ASSERT_TRUE(wait_until([&] { return sim_stats(sim.control_port)["listeners"][0]["responses"].get<int>() >= 2 * symbols; }, 10s));

    // The url's listener refuses and drops its connections: 3 failures open the breaker, and
    // every poller's next tick goes to the mirror.
    const auto refuse = http_request(sim.control_port, "POST", "/control/listeners/0/faults",
                                     R"({"kind":"refuse","drop_connections":true})");
    ASSERT_EQ(refuse.status, 201) << refuse.body;
    ASSERT_TRUE(wait_until([&] { return pollers_on(admin, 1) == symbols; }, 5s)) << daemon->stdout_text();
    // Within one trip: the breaker opened once (its 6 s cooldown, long enough for a loaded
    // machine to remove the fault before the first probe, has not run out), each poller
    // moved once, and no tick was skipped for the open breaker.
    EXPECT_EQ(counter(admin, "mdagg_host_breaker_opens_total{host=\"" + primary + "\"}"), 1);
    EXPECT_EQ(counter(admin, "mdagg_source_failovers_total{source=\"sim\"}"), symbols);
    EXPECT_EQ(counter(admin, "mdagg_source_breaker_ticks_total{source=\"sim\"}"), 0);
    const auto on_mirror = sim_stats(sim.control_port)["listeners"][1]["responses"].get<int>();
    ASSERT_TRUE(wait_until([&] { return sim_stats(sim.control_port)["listeners"][1]["responses"].get<int>() >= on_mirror + 2 * symbols; }, 5s));
    ASSERT_TRUE(daemon->wait_for_line("msg", "poller failed over", 1s));

    // The fault ends: after the cooldown the probe succeeds, the breaker closes, all return.
    ASSERT_EQ(http_request(sim.control_port, "DELETE", "/control/listeners/0/faults").status, 200);
    ASSERT_TRUE(wait_until([&] { return pollers_on(admin, 0) == symbols; }, 15s)) << daemon->stdout_text();
    EXPECT_EQ(counter(admin, "mdagg_source_failbacks_total{source=\"sim\"}"), symbols);
    EXPECT_GT(counter(admin, "mdagg_source_route_polls_total{source=\"sim\",via=\"" + mirror + "\"}"), 2 * symbols);
    ASSERT_TRUE(daemon->wait_for_line("msg", "circuit breaker closed", 1s));
    const auto back = sim_stats(sim.control_port)["listeners"][0]["responses"].get<int>();
    ASSERT_TRUE(wait_until([&] { return sim_stats(sim.control_port)["listeners"][0]["responses"].get<int>() >= back + 2 * symbols; }, 5s));
    EXPECT_EQ(counter(admin, "mdagg_source_breaker_ticks_total{source=\"sim\"}"), 0);

    nlohmann::json stopped;
    Output out;
    ASSERT_TRUE(stop_and_check(*daemon, sim, dir, stopped, out));
    EXPECT_EQ(stopped["failed_writes"].get<int>(), 0) << stopped.dump();
    EXPECT_EQ(out.seqs.size(), static_cast<std::size_t>(symbols));
}

// A ban (418 with Retry-After) pauses the url's host: its pollers' next ticks go to the mirror,
// none is skipped as host_paused, and they return when the pause ends.
TEST(Failover, ABanOnThePrimaryMovesPollersToTheMirrorUntilThePauseEnds) {
    TempDir dir;
    Sim sim;
    const auto hosts = start_two_listeners(dir, sim);
    ASSERT_TRUE(hosts);
    const std::string primary = hosts->primary, mirror = hosts->mirror;
    const fs::path path = write_failover_config(dir, {.primary = primary, .mirrors = {mirror}});
    auto daemon = start_daemon(dir, path);
    const int admin = admin_port_of(*daemon);
    ASSERT_TRUE(wait_until([&] { return pollers_on(admin, 0) == symbols; }, 10s));

    const auto ban = http_request(sim.control_port, "POST", "/control/listeners/0/faults",
                                  R"({"kind":"ban","status":418,"period":"6s"})");
    ASSERT_EQ(ban.status, 201) << ban.body;
    ASSERT_TRUE(daemon->wait_for_line("msg", "host paused", 5s)) << daemon->stdout_text();
    ASSERT_TRUE(wait_until([&] { return pollers_on(admin, 1) == symbols; }, 5s)) << daemon->stdout_text();
    EXPECT_EQ(counter(admin, "mdagg_source_host_paused_ticks_total{source=\"sim\"}"), 0);
    // The fault goes (else the next request would start another ban; 6 s leave a loaded machine
    // time to remove it); when the pause the 418's Retry-After asked for ends, every poller returns.
    ASSERT_EQ(http_request(sim.control_port, "DELETE", "/control/listeners/0/faults").status, 200);
    ASSERT_TRUE(wait_until([&] { return pollers_on(admin, 0) == symbols; }, 15s)) << daemon->stdout_text();
    EXPECT_EQ(counter(admin, "mdagg_source_failovers_total{source=\"sim\"}"), symbols);
    EXPECT_EQ(counter(admin, "mdagg_source_failbacks_total{source=\"sim\"}"), symbols);
    EXPECT_EQ(counter(admin, "mdagg_source_host_paused_ticks_total{source=\"sim\"}"), 0);

    nlohmann::json stopped;
    Output out;
    ASSERT_TRUE(stop_and_check(*daemon, sim, dir, stopped, out));
}

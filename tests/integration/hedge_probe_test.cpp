// A hedge that wins for a probe of an open breaker must not close that breaker: the answer came
// from the mirror, not from the host being probed. Here the url's listener hangs (it accepts and
// never answers), the breaker opens and the pollers fail over to the mirror; every cooldown one
// poller probes the url's host, its hedge goes to the mirror and wins. Were that counted as the
// host's answer, the breaker would close and every poller would return to a host that answers
// nothing, then time out until it opened again, over and over.
#include "failover_support.hpp"
#include "output_checks.hpp"

#include <gtest/gtest.h>

#include <csignal>

using namespace harness;
using namespace failover;
using harness::admin_port_of;
using namespace std::chrono_literals;

TEST(HedgeProbe, AHedgeThatWinsAProbeDoesNotCloseTheBreakerOfAHostThatNeverAnswers) {
    TempDir dir;
    Sim sim;
    const auto hosts = start_two_listeners(dir, sim);
    ASSERT_TRUE(hosts);
    const std::string primary = hosts->primary, mirror = hosts->mirror;
    const auto hang = http_request(sim.control_port, "POST", "/control/listeners/0/faults", R"({"kind":"hang"})");
    ASSERT_EQ(hang.status, 201) << hang.body;

    auto daemon = start_daemon(dir, write_failover_config(dir, {.primary = primary, .mirrors = {mirror},
                                                                .breaker = "{ failures: 3, cooldown: 500ms, max_cooldown: 500ms }",
                                                                .source_extra = "    timeout: 100ms\n"
                                                                                "    hedge: { after: 20ms, max_extra: 20% }\n"}));
    const int admin = admin_port_of(*daemon);
    const std::string opens = "mdagg_host_breaker_opens_total{host=\"" + primary + "\"}";
    // Timeouts open the breaker and the pollers move to the mirror.
    ASSERT_TRUE(wait_until([&] { return pollers_on(admin, 1) == symbols; }, 15s)) << daemon->stdout_text();
    // Probes every 500 ms, each hedged to the mirror once the budget has a token: wait for
    // several reopenings after failed probes.
    const double opened = counter(admin, opens);
    ASSERT_TRUE(wait_until([&] { return counter(admin, opens) >= opened + 4; }, 20s)) << daemon->stdout_text();
    EXPECT_GT(counter(admin, "mdagg_source_hedge_wins_total{source=\"sim\",via=\"" + mirror + "\"}"), 0);
    // Only each cooldown's probe poller went back, never the others: the breaker never closed.
    EXPECT_LE(counter(admin, "mdagg_source_failbacks_total{source=\"sim\"}"), counter(admin, opens)) << daemon->stdout_text();

    daemon->signal(SIGTERM);
    EXPECT_EQ(daemon->wait(10s), 0) << daemon->stdout_text();
    for (const auto& line : daemon->stdout_json()) EXPECT_NE(line.value("msg", ""), "circuit breaker closed") << line.dump();
}

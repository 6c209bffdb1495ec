// Failover as the records and metrics show it, against the real simulator with several
// listeners (one venue, one book):
// - each quote of a source with mirrors says which host served it (`via`): the url's host's
//   before the fault and after the return, the mirror's while failed over;
// - a breaker probe that fails does not lose its tick: the mirror serves it in the same tick;
// - a reload that reorders `mirrors` keeps each host's poll count under its own name.
#include "failover_support.hpp"
#include "output_checks.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <map>

using namespace harness;
using namespace failover;
using namespace std::chrono_literals;

namespace {

// The simulator with one listener per address (127.0.0.1 first: the url's), and their
// "host:port"s.
struct Listeners {
    Sim sim;
    std::vector<std::string> hosts;
};

Listeners start_listeners(const TempDir& dir, std::vector<std::string> addresses) {
    std::vector<std::string> args;
    for (auto& a : addresses) {
        args.push_back("--listen");
        args.push_back(a + ":0");
    }
    args.push_back("--symbols");
    args.push_back(std::to_string(symbols));
    args.push_back("--control");
    args.push_back("127.0.0.1:0");
    Listeners l{start_sim(dir.path(), args), {}};
    const auto listening = l.sim.process->wait_for_line("event", "listening", 5s);
    EXPECT_TRUE(listening);
    if (!listening) return l;
    for (std::size_t i = 0; i < addresses.size(); ++i)
        l.hosts.push_back(addresses[i] + ":" + std::to_string((*listening)["listeners"][i]["port"].get<int>()));
    return l;
}

int responses(const Sim& sim, int listener) {
    return sim_stats(sim.control_port)["listeners"][listener]["responses"].get<int>();
}

bool refuse(const Sim& sim, int listener) {
    return http_request(sim.control_port, "POST", "/control/listeners/" + std::to_string(listener) + "/faults",
                        R"({"kind":"refuse","drop_connections":true})")
               .status == 201;
}

bool heal(const Sim& sim, int listener) {
    return http_request(sim.control_port, "DELETE", "/control/listeners/" + std::to_string(listener) + "/faults")
               .status == 200;
}

}  // namespace

TEST(FailoverVia, RecordsNameTheMirrorWhileFailedOverAndTheUrlsHostBeforeAndAfter) {
    TempDir dir;
    auto [sim, hosts] = start_listeners(dir, {"127.0.0.1", "127.0.0.2"});
    ASSERT_EQ(hosts.size(), 2u);
    auto daemon = start_daemon(dir, write_failover_config(dir, {.primary = hosts[0], .mirrors = {hosts[1]},
                                                                .breaker = "{ failures: 3, cooldown: 6s, max_cooldown: 6s }"}));
    const int admin = admin_port_of(*daemon);
    ASSERT_TRUE(wait_until([&] { return responses(sim, 0) >= 2 * symbols; }, 10s));
    ASSERT_TRUE(refuse(sim, 0));
    ASSERT_TRUE(wait_until([&] { return pollers_on(admin, 1) == symbols; }, 5s)) << daemon->stdout_text();
    const int on_mirror = responses(sim, 1);
    ASSERT_TRUE(wait_until([&] { return responses(sim, 1) >= on_mirror + 2 * symbols; }, 5s));
    ASSERT_TRUE(heal(sim, 0));
    ASSERT_TRUE(wait_until([&] { return pollers_on(admin, 0) == symbols; }, 15s)) << daemon->stdout_text();
    const int back = responses(sim, 0);
    ASSERT_TRUE(wait_until([&] { return responses(sim, 0) >= back + 2 * symbols; }, 5s));
    daemon->signal(SIGTERM);
    ASSERT_EQ(daemon->wait(10s), 0) << daemon->stdout_text();
    const int served_by_mirror = responses(sim, 1);
    stop_sim(sim);

    // Per symbol, in file order: the url's host, then the mirror, then the url's host again.
    std::map<std::string, std::string> pattern;
    std::map<std::string, int> by_via;
    for (const auto& f : read_output(dir / "out"))
        for (const auto& r : f.records) {
            if (r["type"] != "quote") continue;
            ASSERT_TRUE(r.contains("via")) << r.dump();
            const std::string via = r["via"];
            ++by_via[via];
            const char step = via == hosts[0] ? 'P' : via == hosts[1] ? 'M' : '?';
            std::string& p = pattern[r["symbol"].get<std::string>()];
            if (p.empty() || p.back() != step) p.push_back(step);
        }
    ASSERT_EQ(pattern.size(), static_cast<std::size_t>(symbols));
    for (const auto& [symbol, p] : pattern) EXPECT_EQ(p, "PMP") << symbol;
    EXPECT_EQ(by_via.size(), 2u);
    EXPECT_EQ(by_via[hosts[1]], served_by_mirror) << "every answer of the mirror is a record naming it";
}

// A 1 s cooldown while the url's host keeps refusing: each cooldown's probe fails, and the
// prober's tick goes on to the mirror in the same tick, so no tick is lost to a probe.
TEST(FailoverVia, AFailedProbesTickIsServedByTheMirror) {
    TempDir dir;
    auto [sim, hosts] = start_listeners(dir, {"127.0.0.1", "127.0.0.2"});
    ASSERT_EQ(hosts.size(), 2u);
    auto daemon = start_daemon(dir, write_failover_config(dir, {.primary = hosts[0], .mirrors = {hosts[1]},
                                                                .breaker = "{ failures: 3, cooldown: 1s, max_cooldown: 1s }"}));
    const int admin = admin_port_of(*daemon);
    ASSERT_TRUE(wait_until([&] { return pollers_on(admin, 0) == symbols; }, 10s));
    ASSERT_TRUE(refuse(sim, 0));
    const std::string opens = "mdagg_host_breaker_opens_total{host=\"" + hosts[0] + "\"}";
    const std::string fallbacks = "mdagg_source_probe_fallbacks_total{source=\"sim\"}";
    // Two probes failed (each re-opens the breaker) ...
    ASSERT_TRUE(wait_until([&] { return counter(admin, opens) >= 3; }, 10s)) << daemon->stdout_text();
    // ... and each one's tick went on to the mirror (read between two probes); the records
    // below equal the simulator's answers, so each such tick's answer became a quote.
    EXPECT_TRUE(wait_until([&] { return counter(admin, fallbacks) == counter(admin, opens) - 1; }, 3s))
        << counter(admin, fallbacks) << " fallbacks, " << counter(admin, opens) << " opens";
    EXPECT_EQ(counter(admin, "mdagg_source_breaker_ticks_total{source=\"sim\"}"), 0);
    ASSERT_TRUE(heal(sim, 0));
    ASSERT_TRUE(wait_until([&] { return pollers_on(admin, 0) == symbols; }, 15s)) << daemon->stdout_text();
    EXPECT_EQ(counter(admin, "mdagg_source_breaker_ticks_total{source=\"sim\"}"), 0);
    nlohmann::json stopped;
    Output out;
    ASSERT_TRUE(stop_and_check(*daemon, sim, dir, stopped, out));
}

// Polls by route are counted per host: a reload that swaps the mirrors' order restarts the
// pollers (now on the new first mirror), and the old first mirror's count stays its own.
TEST(FailoverVia, RoutePollCountsKeepTheirHostAcrossAReloadThatReordersMirrors) {
    TempDir dir;
    auto [sim, hosts] = start_listeners(dir, {"127.0.0.1", "127.0.0.2", "127.0.0.3"});
    ASSERT_EQ(hosts.size(), 3u);
    const std::string breaker = "{ failures: 3, cooldown: 30s, max_cooldown: 30s }";
    const fs::path path = write_failover_config(dir, {.primary = hosts[0], .mirrors = {hosts[1], hosts[2]}, .breaker = breaker});
    auto daemon = start_daemon(dir, path);
    const int admin = admin_port_of(*daemon);
    ASSERT_TRUE(wait_until([&] { return pollers_on(admin, 0) == symbols; }, 10s));
    ASSERT_TRUE(refuse(sim, 0));
    ASSERT_TRUE(wait_until([&] { return pollers_on(admin, 1) == symbols; }, 5s)) << daemon->stdout_text();
    auto polls_via = [&](const std::string& host) {
        return counter(admin, "mdagg_source_route_polls_total{source=\"sim\",via=\"" + host + "\"}");
    };
    ASSERT_TRUE(wait_until([&] { return polls_via(hosts[1]) >= 3 * symbols; }, 5s));
    EXPECT_EQ(polls_via(hosts[2]), 0);

    const double before_reload = polls_via(hosts[1]);
    write_failover_config(dir, {.primary = hosts[0], .mirrors = {hosts[2], hosts[1]}, .breaker = breaker});
    daemon->signal(SIGHUP);
    ASSERT_TRUE(daemon->wait_for_line("msg", "config reloaded", 15s)) << daemon->stdout_text();
    const double after_reload = polls_via(hosts[1]);
    ASSERT_TRUE(wait_until([&] { return polls_via(hosts[2]) >= 2 * symbols; }, 10s)) << daemon->stdout_text();
    // Counters never go down (by position, the old first mirror's count moved to the new
    // first mirror's label), and the old first mirror, no longer polled, keeps its count.
    EXPECT_GE(after_reload, before_reload);
    EXPECT_GE(polls_via(hosts[1]), after_reload);
    EXPECT_LE(polls_via(hosts[1]), after_reload + symbols);  // the old pollers' last polls at most
    daemon->signal(SIGTERM);
    ASSERT_EQ(daemon->wait(10s), 0) << daemon->stdout_text();
    stop_sim(sim);
}

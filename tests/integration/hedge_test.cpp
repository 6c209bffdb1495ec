// Hedged requests (issue 15) against the real simulator with two listeners (one venue, one
// book, one seq per symbol): the url's listener slow (a Pareto latency, or a fixed one), the
// mirror healthy or slow too. What the issue asks: hedges fire and win, extra requests stay
// within max_extra + 1 pp, at most one quote per tick (seqs rise per symbol, one record per
// completed poll), the simulator's responses equal the records plus the losers the daemon
// read and dropped, hedges stop at the budget when both are slow, and a SIGTERM with hedges in
// flight drains with exit 0 and nothing lost or duplicated.
#include "failover_support.hpp"
#include "harness.hpp"
#include "output_checks.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>

using namespace harness;
using namespace std::chrono_literals;
using harness::admin_port_of;

namespace {

constexpr int symbols = 40;

struct TwoListeners {
    TempDir dir;
    Sim sim;
    std::string primary, mirror;
};

void start_two_listeners(TwoListeners& s) {
    const auto hosts = failover::start_two_listeners(s.dir, s.sim, symbols);
    ASSERT_TRUE(hosts);
    s.primary = hosts->primary;
    s.mirror = hosts->mirror;
}


void add_fault(const TwoListeners& s, int listener, const std::string& spec) {
    const auto r = http_request(s.sim.control_port, "POST", "/control/listeners/" + std::to_string(listener) + "/faults",
                                spec);
    ASSERT_EQ(r.status, 201) << r.body;
}

fs::path write_config(const TwoListeners& s, const std::string& hedge, int threads = 1) {
    const fs::path path = s.dir / "mdagg.yaml";
    std::ofstream(path) << "runtime: { threads: " << threads << " }\n"
                        << "output: { dir: " << (s.dir / "out").string() << ", flush_every: 200ms }\n"
                        << "admin: { listen: \"127.0.0.1:0\" }\n"
                        << "sources:\n  - name: sim\n"
                        << "    url: \"http://" << s.primary << "/quotes/{symbol}\"\n"
                        << "    mirrors: [\"http://" << s.mirror << "/quotes/{symbol}\"]\n"
                        << "    interval: 100ms\n    timeout: 100ms\n"
                        << (hedge.empty() ? std::string() : "    hedge: " + hedge + "\n")
                        << "    symbols: { prefix: STOCK_, count: " << symbols << " }\n"
                        << "    fields: { symbol: /symbol, bid: /bidPrice, ask: /askPrice, seq: /seq }\n";
    return path;
}

double counter(int admin, const std::string& series) {
    return metric(http_request(admin, "GET", "/metrics").body, series).value_or(-1);
}

int listener_count(const TwoListeners& s, int listener, const char* field) {
    return sim_stats(s.sim.control_port)["listeners"][listener][field].get<int>();
}

// After SIGTERM: the daemon's drain line, each listener's requests, the simulator's final stats.
struct Stopped {
    nlohmann::json drained, sim;
    int on_primary = 0, on_mirror = 0;
};

void stop_both(TwoListeners& s, Process& daemon, Stopped& out) {
    daemon.signal(SIGTERM);
    ASSERT_EQ(daemon.wait(10s), 0) << daemon.stdout_text();
    const auto drained = find_log(daemon, "drain complete");
    ASSERT_TRUE(drained) << daemon.stdout_text();
    out.drained = *drained;
    out.on_primary = listener_count(s, 0, "requests");
    out.on_mirror = listener_count(s, 1, "requests");
    out.sim = stop_sim(s.sim);
}

// After the daemon and the simulator stopped: one record per completed poll, seqs rising per
// symbol, and every request the simulator ended is accounted for by the daemon. Each request
// the simulator answered is a record, a loser the daemon read and dropped, a loser it closed
// (the answer was on the wire when the daemon found no byte of it: a race on every hedge the
// primary wins), or a poll or hedge that ran out of time or failed (none on a healthy run;
// many under TSan's slowdown). Each request it saw closed unanswered is a closed loser or one
// that ran out of time. So answered + abandoned <= records + read + closed + gave up.
Output expect_one_quote_per_tick(const TwoListeners& s, const nlohmann::json& drained, const nlohmann::json& stopped) {
    const Output out = check_output(s.dir);
    expect_seqs_increase(out);
    EXPECT_EQ(out.quotes, drained["polls_completed"].get<std::size_t>()) << drained.dump();
    const auto& hedges = drained["hedges"];
    const auto discarded = hedges.value("losers_discarded", std::size_t{0});
    const auto closed = hedges.value("losers_cancelled", std::size_t{0});
    const auto responses = stopped["responses"].get<std::size_t>();
    const auto abandoned = stopped["abandoned_requests"].get<std::size_t>();
    EXPECT_GE(responses, out.quotes + discarded) << stopped.dump() << drained.dump();
    const auto gave_up = drained["polls_timed_out"].get<std::size_t>() + drained["polls_failed"].get<std::size_t>() +
                         hedges.value("failed", std::size_t{0});
    EXPECT_LE(responses + abandoned, out.quotes + discarded + closed + gave_up) << stopped.dump() << drained.dump();
    EXPECT_EQ(stopped["failed_writes"].get<int>(), 0) << stopped.dump();
    return out;
}

// The issue's case, shortened: a Pareto tail on the url's host (scale 2 ms, shape 1.5, cap 2 s:
// about 3% of answers after 20 ms), a healthy mirror, after: 20ms, max_extra: 5%. With two io
// threads too, where each poller runs on its strand and the hedge's timer is posted to it.
void pareto_tail_is_hedged(int threads) {
    TwoListeners s;
    start_two_listeners(s);
    add_fault(s, 0, R"({"kind":"latency","distribution":"pareto","min":"2ms","max":"2s","alpha":1.5})");
    auto daemon = start_daemon(s.dir, write_config(s, "{ after: 20ms, max_extra: 5% }", threads));
    const int admin = admin_port_of(*daemon);
    // ~400 polls a second: 40 hedges want ~1,300 polls.
    ASSERT_TRUE(wait_until([&] { return counter(admin, "mdagg_source_hedges_total{source=\"sim\",outcome=\"sent\"}") >= 40; },
                           30s))
        << daemon->stdout_text();
    EXPECT_GT(counter(admin, "mdagg_source_hedge_wins_total{source=\"sim\",via=\"" + s.mirror + "\"}"), 10);
    const auto tasks = http_request(admin, "GET", "/debug/tasks").json();
    ASSERT_FALSE(tasks["tasks"].empty());
    EXPECT_TRUE(tasks["tasks"][0].contains("hedge")) << tasks.dump();

    Stopped end;
    ASSERT_NO_FATAL_FAILURE(stop_both(s, *daemon, end));
    const auto& [drained, stopped, on_primary, on_mirror] = end;
    // Extra requests: the mirror sees only hedges. At most max_extra + 1 pp of first requests.
    EXPECT_LE(on_mirror, 0.06 * on_primary) << on_mirror << " hedges for " << on_primary << " polls";
    const auto hedges = drained["hedges"];
    EXPECT_LE(hedges["sent"].get<double>(), 0.06 * on_primary) << hedges.dump();
    EXPECT_GT(hedges["won"].get<int>(), 0) << hedges.dump();
    const Output out = expect_one_quote_per_tick(s, drained, stopped);
    // Each quote names the host that answered: the mirror exactly for the hedges that won.
    EXPECT_EQ(out.quotes_via.count(s.mirror) ? out.quotes_via.at(s.mirror) : 0, hedges["won"].get<std::size_t>())
        << hedges.dump();
    EXPECT_EQ(out.quotes_via.count(s.primary) ? out.quotes_via.at(s.primary) : 0, out.quotes - hedges["won"].get<std::size_t>());
}

}  // namespace

TEST(Hedge, AParetoTailOnThePrimaryIsHedgedOnTheMirrorWithinMaxExtra) { pareto_tail_is_hedged(1); }
TEST(Hedge, AParetoTailIsHedgedWithTwoIoThreads) { pareto_tail_is_hedged(2); }

// Both hosts slow (every answer after 30 ms, past `after`): every poll wants a hedge, and the
// budget lets only max_extra of them go; the rest are refused, so the load rises by no more.
TEST(Hedge, BothHostsSlowHedgesStopAtTheBudget) {
    TwoListeners s;
    start_two_listeners(s);
    add_fault(s, 0, R"({"kind":"latency","min":"30ms"})");
    add_fault(s, 1, R"({"kind":"latency","min":"30ms"})");
    auto daemon = start_daemon(s.dir, write_config(s, "{ after: 10ms, max_extra: 5% }"));
    const int admin = admin_port_of(*daemon);
    ASSERT_TRUE(wait_until([&] { return counter(admin, "mdagg_source_hedges_total{source=\"sim\",outcome=\"refused_budget\"}") >= 400; },
                           30s))
        << daemon->stdout_text();
    Stopped end;
    ASSERT_NO_FATAL_FAILURE(stop_both(s, *daemon, end));
    const auto& [drained, stopped, on_primary, on_mirror] = end;
    const auto hedges = drained["hedges"];
    // The bucket's burst (4) aside, at most 5% of first requests.
    EXPECT_LE(hedges["sent"].get<double>(), 0.05 * on_primary + 4) << hedges.dump();
    EXPECT_GT(hedges["sent"].get<int>(), 0) << hedges.dump();
    EXPECT_GT(hedges["refused_budget"].get<int>(), 10 * hedges["sent"].get<int>()) << hedges.dump();
    EXPECT_LE(on_mirror, 0.06 * on_primary) << on_mirror << " hedges for " << on_primary << " polls";
    expect_one_quote_per_tick(s, drained, stopped);
}

// SIGTERM while hedges are in flight (the url's host and the mirror both take 40 ms, hedges
// after 5 ms with a generous budget): the drain cancels both legs, exits 0 within its budget,
// and nothing is lost or duplicated.
TEST(Hedge, SigtermWithHedgesInFlightDrainsCleanly) {
    TwoListeners s;
    start_two_listeners(s);
    add_fault(s, 0, R"({"kind":"latency","distribution":"pareto","min":"20ms","max":"80ms","alpha":1.5})");
    add_fault(s, 1, R"({"kind":"latency","min":"40ms"})");
    auto daemon = start_daemon(s.dir, write_config(s, "{ after: 5ms, max_extra: 100% }"));
    const int admin = admin_port_of(*daemon);
    ASSERT_TRUE(wait_until([&] { return counter(admin, "mdagg_source_hedges_total{source=\"sim\",outcome=\"sent\"}") >= 100; },
                           30s))
        << daemon->stdout_text();
    ASSERT_TRUE(wait_until([&] {
        const auto tasks = http_request(admin, "GET", "/debug/tasks").json();
        for (const auto& row : tasks["tasks"])
            if (row.value("hedge", "") == "racing") return true;
        return false;
    }, 10s));
    daemon->signal(SIGTERM);
    ASSERT_EQ(daemon->wait(10s), 0) << daemon->stdout_text();
    const auto drained = find_log(*daemon, "drain complete");
    ASSERT_TRUE(drained) << daemon->stdout_text();
    EXPECT_EQ((*drained)["exit_code"], 0);
    EXPECT_LE((*drained)["drain_ms"].get<double>(), (*drained)["budget_ms"].get<double>()) << drained->dump();
    const auto stopped = stop_sim(s.sim);
    expect_one_quote_per_tick(s, *drained, stopped);
}

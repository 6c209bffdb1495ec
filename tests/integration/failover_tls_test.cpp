// Failover over TLS: both of the simulator's listeners serve TLS (certificates made at test
// time by tests/tls/make_certs.sh, for localhost and 127.0.0.1). The url names 127.0.0.1, the
// mirror localhost: each route is verified against its own host name and gets its own
// connection and session. A refuse on the url's listener moves every poller to the mirror,
// and they return when it ends, with no certificate refused and nothing lost.
#include "failover_support.hpp"
#include "output_checks.hpp"
#include "tls_certs.hpp"

#include <gtest/gtest.h>

#include <csignal>

using namespace harness;
using namespace failover;
using namespace std::chrono_literals;

namespace {

// The simulator's control port speaks TLS too when its listeners do: curl, trusting the CA.
int control(const TempDir& dir, int port, const std::string& method, const std::string& path,
            const std::string& body = "") {
    static int calls = 0;
    std::vector<std::string> args{"--cacert", tls_certs::file("ca.pem"), "-o", "/dev/null", "-w", "%{http_code}",
                                  "-X", method, "https://127.0.0.1:" + std::to_string(port) + path};
    if (!body.empty()) args.insert(args.end(), {"-H", "Content-Type: application/json", "--data", body});
    const auto r = curl(dir, "curl-" + std::to_string(++calls), args);
    return r.exit == 0 ? std::stoi(r.out) : -1;
}

}  // namespace

TEST(FailoverTls, RefuseOnTheUrlsTlsHostMovesPollersToTheTlsMirrorAndBack) {
    TempDir dir;
    auto sim = start_sim(dir.path(), {"--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--symbols",
                                      std::to_string(symbols), "--control", "127.0.0.1:0", "--tls-cert",
                                      tls_certs::file("server.pem"), "--tls-key", tls_certs::file("server.key")});
    const auto listening = sim.process->wait_for_line("event", "listening", 5s);
    ASSERT_TRUE(listening);
    const std::string primary = "127.0.0.1:" + std::to_string((*listening)["listeners"][0]["port"].get<int>());
    const std::string mirror = "localhost:" + std::to_string((*listening)["listeners"][1]["port"].get<int>());
    auto daemon = start_daemon(
        dir, write_failover_config(dir, {.scheme = "https",
                                         .primary = primary,
                                         .mirrors = {mirror},
                                         .breaker = "{ failures: 3, cooldown: 6s, max_cooldown: 6s }",
                                         .source_extra = "    tls:\n      ca_file: " + tls_certs::file("ca.pem") + "\n"}));
    const int admin = admin_port_of(*daemon);
    auto polls_via = [&](const std::string& host) {
        return counter(admin, "mdagg_source_route_polls_total{source=\"sim\",via=\"" + host + "\"}");
    };
    const std::string completed = "mdagg_source_polls_total{source=\"sim\",outcome=\"completed\"}";
    ASSERT_TRUE(wait_until([&] { return counter(admin, completed) >= 2 * symbols; }, 10s)) << daemon->stdout_text();

    ASSERT_EQ(control(dir, sim.control_port, "POST", "/control/listeners/0/faults",
                      R"({"kind":"refuse","drop_connections":true})"),
              201);
    ASSERT_TRUE(wait_until([&] { return pollers_on(admin, 1) == symbols; }, 5s)) << daemon->stdout_text();
    const double done = counter(admin, completed);
    ASSERT_TRUE(wait_until([&] { return counter(admin, completed) >= done + 2 * symbols; }, 5s)) << daemon->stdout_text();
    ASSERT_EQ(control(dir, sim.control_port, "DELETE", "/control/listeners/0/faults"), 200);
    ASSERT_TRUE(wait_until([&] { return pollers_on(admin, 0) == symbols; }, 15s)) << daemon->stdout_text();
    const double back = polls_via(primary);
    ASSERT_TRUE(wait_until([&] { return polls_via(primary) >= back + 2 * symbols; }, 5s));

    const std::string text = http_request(admin, "GET", "/metrics").body;
    EXPECT_EQ(metric(text, R"(mdagg_source_poll_errors_total{source="sim",class="tls_verify"})"), 0);
    EXPECT_EQ(metric(text, R"(mdagg_source_poll_errors_total{source="sim",class="tls_handshake"})"), 0);
    EXPECT_EQ(metric(text, R"(mdagg_source_failovers_total{source="sim"})"), symbols);
    EXPECT_EQ(metric(text, R"(mdagg_source_failbacks_total{source="sim"})"), symbols);
    // A handshake per poller on each host at least: the mirror's session is not the url's.
    EXPECT_GE(metric(text, R"(mdagg_source_tls_handshakes_total{source="sim"})").value_or(0), 3 * symbols);

    nlohmann::json stopped;
    Output out;
    ASSERT_TRUE(stop_and_check(*daemon, sim, dir, stopped, out));
    int via_mirror = 0;
    for (const auto& f : read_output(dir / "out"))
        for (const auto& r : f.records) via_mirror += r.value("via", "") == mirror ? 1 : 0;
    EXPECT_GT(via_mirror, 2 * symbols);
    EXPECT_EQ(via_mirror, stopped["listeners"][1]["responses"].get<int>()) << stopped.dump();
}

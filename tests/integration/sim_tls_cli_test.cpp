// mdagg-sim --tls-cert/--tls-key as a program: curl talks HTTPS to both listeners with the
// certificates tests/tls/make_certs.sh makes at test time.
#include "harness.hpp"
#include "tls_certs.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using harness::Process;
using harness::TempDir;

std::vector<std::string> tls_args() {
    return {"--symbols", "5", "--control", "127.0.0.1:0", "--tls-cert", tls_certs::file("server.pem"),
            "--tls-key", tls_certs::file("server.key")};
}

// curl trusting the test CA.
harness::CurlResult trusting_curl(const TempDir& dir, const std::string& name, std::vector<std::string> args) {
    args.insert(args.begin(), {"--cacert", tls_certs::file("ca.pem")});
    return harness::curl(dir, name, std::move(args));
}

TEST(SimTlsCli, ServesHttpsOnBothListenersAndCountsResumptions) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), tls_args());
    const auto listening = sim.process->wait_for_line("event", "listening", 1s);
    ASSERT_TRUE(listening);
    EXPECT_EQ((*listening)["tls"], true);

    const std::string base = "https://localhost:" + std::to_string(sim.port);
    // One curl, two connections ("Connection: close"): curl offers its session the second time.
    auto quotes = trusting_curl(dir, "curl-quotes",
                       {"-H", "Connection: close", base + "/quotes/STOCK_1", base + "/quotes/STOCK_1"});
    ASSERT_EQ(quotes.exit, 0) << quotes.err;
    EXPECT_NE(quotes.out.find("\"seq\":1}"), std::string::npos) << quotes.out;
    EXPECT_NE(quotes.out.find("\"seq\":2}"), std::string::npos) << quotes.out;

    // Plain HTTP to a TLS listener gets no HTTP answer.
    EXPECT_EQ(harness::http_request(sim.port, "GET", "/stats").status, 0);

    auto stats = trusting_curl(dir, "curl-stats", {"https://127.0.0.1:" + std::to_string(sim.control_port) + "/stats"});
    ASSERT_EQ(stats.exit, 0) << stats.err;
    const auto json = nlohmann::json::parse(stats.out, nullptr, false);
    ASSERT_TRUE(json.is_object()) << stats.out;
    EXPECT_EQ(json["tls"]["handshakes"], 2);  // the first quote connection and this one
    EXPECT_EQ(json["tls"]["resumptions"], 1);
    EXPECT_GE(json["tls"]["handshake_failures"], 1);  // the plain request
    EXPECT_EQ(json["last_seq"]["STOCK_1"], 2);

    sim.process->signal(SIGTERM);
    ASSERT_EQ(sim.process->wait(10s), 0);
}

TEST(SimTlsCli, CurlRefusesTheWrongNameTheUnknownCaAndTheExpiredCertificate) {
    TempDir dir;
    for (const std::string cert : {"other-name", "unknown", "expired"}) {
        auto sim = harness::start_sim(dir.path(), {"--tls-cert", tls_certs::file(cert + ".pem"),
                                                   "--tls-key", tls_certs::file(cert + ".key")});
        auto r = trusting_curl(dir, "curl-" + cert, {"https://localhost:" + std::to_string(sim.port) + "/quotes/STOCK_1"});
        EXPECT_NE(r.exit, 0) << cert << ": " << r.out;
        EXPECT_EQ(r.out, "") << cert;
        sim.process->signal(SIGTERM);
        EXPECT_EQ(sim.process->wait(10s), 0);
    }
}

TEST(SimTlsCli, UnusableTlsFilesExitTwoNamingTheOptionAndFile) {
    TempDir dir;
    struct Case {
        std::vector<std::string> args;
        std::string message;
    };
    const std::vector<Case> cases{
        {{"--tls-cert", "/nonexistent.pem", "--tls-key", tls_certs::file("server.key")},
         "--tls-cert: cannot read '/nonexistent.pem'"},
        {{"--tls-cert", tls_certs::file("server.pem"), "--tls-key", tls_certs::file("client.key")},
         "--tls-key: '" + tls_certs::file("client.key") + "' does not match"},
        {{"--tls-cert", tls_certs::file("ca.key"), "--tls-key", tls_certs::file("server.key")},
         "--tls-cert: cannot load '" + tls_certs::file("ca.key") + "'"},
        {{"--tls-cert", tls_certs::file("server.pem")}, "--tls-cert and --tls-key go together"},
        {{"--tls-cert", tls_certs::file("server.pem"), "--tls-key", tls_certs::file("server.key"),
          "--tls-version", "1.0"},
         "--tls-version: expected 1.2 or 1.3"},
    };
    int n = 0;
    for (const auto& c : cases) {
        std::vector<std::string> argv{MDAGG_SIM_BIN, "--listen", "127.0.0.1:0"};
        argv.insert(argv.end(), c.args.begin(), c.args.end());
        Process p("sim-bad-" + std::to_string(n++), argv, dir.path());
        EXPECT_EQ(p.wait(10s), 2) << c.message;
        EXPECT_NE(p.stderr_text().find(c.message), std::string::npos) << p.stderr_text();
        EXPECT_EQ(p.stdout_text(), "") << "no listening line";
    }
}

TEST(SimTlsCli, ClientCaRequiresCurlsClientCertificate) {
    TempDir dir;
    auto args = tls_args();
    args.insert(args.end(), {"--tls-client-ca", tls_certs::file("ca.pem")});
    auto sim = harness::start_sim(dir.path(), args);
    const std::string url = "https://localhost:" + std::to_string(sim.port) + "/quotes/STOCK_0";
    auto without = trusting_curl(dir, "curl-without", {url});
    EXPECT_NE(without.exit, 0);
    EXPECT_EQ(without.out, "");
    auto with = trusting_curl(dir, "curl-with", {"--cert", tls_certs::file("client.pem"), "--key",
                                        tls_certs::file("client.key"), url});
    ASSERT_EQ(with.exit, 0) << with.err;
    EXPECT_NE(with.out.find("\"seq\":1}"), std::string::npos) << with.out;
    sim.process->signal(SIGTERM);
    ASSERT_EQ(sim.process->wait(10s), 0);
    const auto lines = sim.process->stdout_json();
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines.back()["event"], "stopped");
    EXPECT_GE(lines.back()["tls"]["handshake_failures"], 1);
    EXPECT_GE(lines.back()["tls"]["handshakes"], 1);
}

}  // namespace

// The daemon polling the real simulator over TLS (mdagg-sim --tls-cert/--tls-key) with the
// certificates tests/tls/make_certs.sh makes at test time: 2,000 pollers drain cleanly and
// lose no quote; a refused certificate (wrong name, unknown CA, expired) delivers nothing, is
// counted as tls_verify with OpenSSL's reason, opens the breaker and shows in /healthz; and
// the reconnects after the simulator's `restart` fault resume their sessions.
#include "harness.hpp"
#include "output_checks.hpp"
#include "tls_certs.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>
#include <thread>

using namespace std::chrono_literals;
using harness::admin_port_of;
using harness::metric_or_zero;
using harness::Process;
using harness::TempDir;

namespace {

using harness::wait_until;

using harness::metric;

std::vector<std::string> sim_args(const std::string& cert, int symbols, std::vector<std::string> more = {}) {
    std::vector<std::string> args{"--symbols", std::to_string(symbols), "--tls-cert", tls_certs::file(cert + ".pem"),
                                  "--tls-key", tls_certs::file(cert + ".key")};
    args.insert(args.end(), more.begin(), more.end());
    return args;
}

// The harness's config with an https:// URL and a tls block trusting the test CA.
std::filesystem::path write_tls_config(const TempDir& dir, harness::DaemonConfig c, const std::string& tls_extra = "",
                                       const std::string& admin_extra = "") {
    c.source_extra += "    tls:\n      ca_file: " + tls_certs::file("ca.pem") + "\n" + tls_extra;
    c.extra += "admin: { listen: \"127.0.0.1:0\"" + admin_extra + " }\n";
    const auto path = harness::write_config(dir.path(), c);
    std::stringstream text;
    text << std::ifstream(path).rdbuf();
    std::ofstream(path) << std::regex_replace(text.str(), std::regex("url: \"http://"), "url: \"https://");
    return path;
}

}  // namespace

TEST(Tls, TwoThousandPollersDrainCleanlyAndLoseNoQuote) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), sim_args("server", 2000));
    harness::DaemonConfig c;
    c.port = sim.port;
    c.symbols = 2000;
    c.interval = "500ms";
    c.grace = "5s";
    // 2,000 handshakes at start on a shared, loaded machine: room to finish them.
    c.source_extra = "    connect_timeout: 10s\n";
    auto daemon = harness::start_daemon(dir, write_tls_config(dir, c));
    const int admin = admin_port_of(*daemon);
    // Every poller connected (a handshake each) and the pollers keep polling.
    ASSERT_TRUE(wait_until([&] { return metric_or_zero(admin, R"(mdagg_source_tls_handshakes_total{source="sim"})") >= 2000; },
                           90s))
        << daemon->stdout_text().substr(0, 4000);
    const double completed_before = metric_or_zero(admin, R"(mdagg_source_polls_total{source="sim",outcome="completed"})");
    ASSERT_TRUE(wait_until(
        [&] {
            return metric_or_zero(admin, R"(mdagg_source_polls_total{source="sim",outcome="completed"})") >
                   completed_before + 4000;
        },
        60s));
    const std::string text = harness::http_request(admin, "GET", "/metrics").body;
    EXPECT_EQ(metric(text, R"(mdagg_source_poll_errors_total{source="sim",class="tls_verify"})"), 0);

    daemon->signal(SIGTERM);  // mid-run: polls are in flight
    ASSERT_EQ(daemon->wait(20s), 0) << daemon->stdout_text().substr(0, 4000);
    const auto stats = stop_sim(sim);
    const auto out = harness::check_output(dir);
    auto done = harness::find_log(*daemon, "drain complete");
    ASSERT_TRUE(done) << daemon->stdout_text().substr(0, 4000);
    EXPECT_GT(out.quotes, 4000u);
    EXPECT_EQ((*done)["quotes_accepted"].get<std::size_t>(), out.quotes);
    // As over plain HTTP (daemon_test): every response the simulator wrote over TLS is in the
    // output, except at most one per poll the daemon gave up on (timed out, or cancelled by
    // the drain) after the simulator had answered.
    const auto responses = stats["responses"].get<std::size_t>();
    const auto gave_up = (*done)["polls_timed_out"].get<std::size_t>() + (*done)["polls_cancelled"].get<std::size_t>();
    EXPECT_GE(responses, out.quotes) << "quotes written that the simulator never sent";
    EXPECT_LE(responses - out.quotes, gave_up) << responses << " responses, " << out.quotes << " quotes";
    harness::expect_seqs_increase(out);
    // No unverified source: no warning.
    EXPECT_FALSE(harness::find_log(*daemon, "TLS certificate verification is off"));
}

struct RefusedCase {
    const char* name;
    const char* cert;
    const char* reason;  // in OpenSSL's words, in the log line's detail
};

class RefusedCertificate : public ::testing::TestWithParam<RefusedCase> {};

TEST_P(RefusedCertificate, NoQuoteCountedAsTlsVerifyBreakerOpensHealthzSaysSo) {
    const auto& param = GetParam();
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), sim_args(param.cert, 5));
    harness::DaemonConfig c;
    c.port = sim.port;
    c.symbols = 5;
    c.interval = "100ms";
    c.extra = "hosts:\n  - host: 127.0.0.1\n    breaker: { failures: 5, cooldown: 30s, max_cooldown: 60s }\n";
    // /healthz fails once no poll has completed for this long: honest about a host never reached.
    auto daemon = harness::start_daemon(dir, write_tls_config(dir, c, "", ", stall_after: 2s"));
    const int admin = admin_port_of(*daemon);
    ASSERT_TRUE(wait_until(
        [&] {
            return metric_or_zero(admin, R"(mdagg_host_breaker_state{host="127.0.0.1",state="open"})") == 1;
        },
        30s))
        << daemon->stdout_text().substr(0, 4000);
    const std::string text = harness::http_request(admin, "GET", "/metrics").body;
    EXPECT_GE(metric(text, R"(mdagg_source_poll_errors_total{source="sim",class="tls_verify"})").value_or(0), 5);
    EXPECT_EQ(metric(text, R"(mdagg_source_poll_errors_total{source="sim",class="tls_handshake"})"), 0);
    EXPECT_EQ(metric(text, R"(mdagg_source_tls_handshakes_total{source="sim"})"), 0);
    EXPECT_EQ(metric(text, R"(mdagg_source_polls_total{source="sim",outcome="completed"})"), 0);

    auto failed = harness::find_log(*daemon, "poll failed");
    ASSERT_TRUE(failed) << daemon->stdout_text().substr(0, 4000);
    EXPECT_EQ((*failed)["error"], "tls_verify");
    EXPECT_NE((*failed)["detail"].get<std::string>().find(param.reason), std::string::npos) << failed->dump();
    EXPECT_TRUE(harness::find_log(*daemon, "circuit breaker opened"));

    // /healthz: no poll completed, so after stall_after it fails and says why (a refused
    // certificate is a broken source, not a pause the venue asked for).
    harness::HttpResponse health;
    EXPECT_TRUE(wait_until(
        [&] {
            health = harness::http_request(admin, "GET", "/healthz");
            return health.status == 503;
        },
        20s))
        << health.body;
    EXPECT_EQ(health.json().value("status", ""), "unhealthy") << health.body;
    // The summary lists the host whose breaker is open.
    EXPECT_TRUE(wait_until(
        [&] {
            for (auto& line : daemon->stdout_json())
                if (line.value("msg", "") == "summary" && line["hosts"].dump().find("open") != std::string::npos)
                    return true;
            return false;
        },
        10s))
        << daemon->stdout_text().substr(0, 4000);

    daemon->signal(SIGTERM);
    EXPECT_EQ(daemon->wait(15s), 0) << daemon->stdout_text().substr(0, 4000);
    EXPECT_EQ(harness::check_output(dir).quotes, 0u);
    EXPECT_EQ(stop_sim(sim)["responses"], 0);
}

INSTANTIATE_TEST_SUITE_P(Tls, RefusedCertificate,
                         ::testing::Values(RefusedCase{"wrong_name", "other-name", "IP address mismatch"},
                                           RefusedCase{"unknown_ca", "unknown", "unable to get local issuer certificate"},
                                           RefusedCase{"expired", "expired", "certificate has expired"}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Tls, ReconnectsAfterTheSimulatorsRestartResumeTheirSessions) {
    TempDir dir;
    // Two restarts, 3 s and 6 s into the run: every connection closes, and the reconnects
    // offer the sessions (TLS 1.3 tickets) the first connections got.
    auto sim = harness::start_sim(
        dir.path(), sim_args("server", 20,
                             {"--fault", R"({"kind":"restart","period":"500ms","after":"3s"})", "--fault",
                              R"({"kind":"restart","period":"500ms","after":"6s"})"}));
    harness::DaemonConfig c;
    c.port = sim.port;
    c.symbols = 20;
    c.interval = "100ms";
    auto daemon = harness::start_daemon(dir, write_tls_config(dir, c));
    const int admin = admin_port_of(*daemon);
    ASSERT_TRUE(wait_until([&] { return metric_or_zero(admin, R"(mdagg_source_tls_resumptions_total{source="sim"})") >= 20; },
                           40s))
        << daemon->stdout_text().substr(0, 4000);
    const std::string text = harness::http_request(admin, "GET", "/metrics").body;
    const double handshakes = metric(text, R"(mdagg_source_tls_handshakes_total{source="sim"})").value_or(0);
    const double resumptions = metric(text, R"(mdagg_source_tls_resumptions_total{source="sim"})").value_or(0);
    EXPECT_GE(handshakes, 40);  // 20 first connections, then 20 reconnects at least
    EXPECT_GE(resumptions, 20);
    EXPECT_LE(handshakes - resumptions, 20 + 5) << "the reconnects were full handshakes";

    // The summary lines (deltas, one a second) count them too.
    const auto summed_resumptions = [&] {
        std::uint64_t sum = 0;
        for (auto& line : daemon->stdout_json())
            if (line.value("msg", "") == "summary") sum += line.value("tls_resumptions", std::uint64_t{0});
        return sum;
    };
    EXPECT_TRUE(wait_until([&] { return summed_resumptions() >= 20; }, 10s)) << summed_resumptions();
    daemon->signal(SIGTERM);
    EXPECT_EQ(daemon->wait(15s), 0) << daemon->stdout_text().substr(0, 4000);
    harness::expect_seqs_increase(harness::check_output(dir));
    stop_sim(sim);
}

TEST(Tls, VerifyFalseIsWarnedAtStartAndInEverySummary) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), sim_args("unknown", 3));
    harness::DaemonConfig c;
    c.port = sim.port;
    c.symbols = 3;
    c.interval = "100ms";
    auto daemon = harness::start_daemon(dir, write_tls_config(dir, c, "      verify: false\n"));
    const int admin = admin_port_of(*daemon);
    ASSERT_TRUE(wait_until(
        [&] { return metric_or_zero(admin, R"(mdagg_source_polls_total{source="sim",outcome="completed"})") > 10; }, 30s))
        << "an unverified source still polls";
    ASSERT_TRUE(daemon->wait_for_line("msg", "summary", 10s));
    daemon->signal(SIGTERM);
    EXPECT_EQ(daemon->wait(15s), 0);
    auto warned = harness::find_log(*daemon, "TLS certificate verification is off: anyone on the path can impersonate the server");
    ASSERT_TRUE(warned) << daemon->stdout_text().substr(0, 3000);
    EXPECT_EQ((*warned)["source"], "sim");
    for (auto& line : daemon->stdout_json()) {
        if (line.value("msg", "") == "summary") {
            EXPECT_EQ(line["tls_unverified_sources"], nlohmann::json::array({"sim"})) << line.dump();
        }
    }
    stop_sim(sim);
}

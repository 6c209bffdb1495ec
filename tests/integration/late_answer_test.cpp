// A saturated venue answers later than the poll's timeout (docs/polling.md, "late answers"):
// the real daemon against a simulator whose every answer takes 1.5x the timeout, over plain
// HTTP and over TLS. Each answer comes within the poll's late grace, so it is delivered, the
// keep-alive connection is kept (no reconnect, no new handshake), and every answer the
// simulator wrote is a quote record. Before the grace, every poll timed out, closed its
// connection and reconnected: no quote at all, and one connection (a TLS handshake) per poll.
//
// Counts and ratios only, no wall-clock tightness: the grace (one timeout, 200 ms) leaves
// 100 ms of slack per answer, and the few polls a loaded machine may still time out are
// allowed for in each bound by the daemon's own timeout count.
#include "harness.hpp"
#include "output_checks.hpp"
#include "tls_certs.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <regex>
#include <sstream>

using namespace std::chrono_literals;
using harness::admin_port_of;
using harness::metric_or_zero;
using harness::TempDir;
using json = nlohmann::json;

namespace {

constexpr int symbols = 20;

void run_late_venue(bool tls) {
    TempDir dir;
    // Every answer 300 ms after its request: 1.5x the daemon's 200 ms timeout.
    std::vector<std::string> sim_args{"--symbols", std::to_string(symbols), "--control", "127.0.0.1:0",
                                      "--fault", R"({"kind":"latency","min":"300ms","max":"300ms"})"};
    if (tls)
        sim_args.insert(sim_args.end(), {"--tls-cert", tls_certs::file("server.pem"), "--tls-key",
                                         tls_certs::file("server.key")});
    auto sim = harness::start_sim(dir.path(), sim_args);
    ASSERT_GT(sim.control_port, 0);
    harness::DaemonConfig c;
    c.port = sim.port;
    c.symbols = symbols;
    c.interval = "200ms";  // timeout: the interval
    c.grace = "5s";
    c.extra = "admin: { listen: \"127.0.0.1:0\" }\n";
    if (tls) c.source_extra = "    tls:\n      ca_file: " + tls_certs::file("ca.pem") + "\n";
    auto path = harness::write_config(dir.path(), c);
    if (tls) {
        std::stringstream text;
        text << std::ifstream(path).rdbuf();
        std::ofstream(path) << std::regex_replace(text.str(), std::regex("url: \"http://"), "url: \"https://");
    }
    auto daemon = harness::start_daemon(dir, path);
    const int admin = admin_port_of(*daemon);

    // About 2.5 answers per symbol and second (a 300 ms poll skips one 200 ms tick): wait for
    // ten per symbol. Before the grace none ever came.
    const std::string delivered_series = R"(mdagg_source_late_answers_total{source="sim",outcome="delivered"})";
    const bool enough = harness::wait_until(
        [&] {
            return metric_or_zero(admin, R"(mdagg_source_polls_total{source="sim",outcome="completed"})") >=
                   10 * symbols;
        },
        60s);
    EXPECT_TRUE(enough) << "late answers were not delivered: " << daemon->stdout_text().substr(0, 3000);
    EXPECT_GT(metric_or_zero(admin, delivered_series), 0);

    daemon->signal(SIGTERM);
    const auto code = daemon->wait(15s);
    ASSERT_TRUE(code) << "no exit after SIGTERM";
    EXPECT_EQ(*code, 0) << daemon->stdout_text();
    auto done = harness::find_log(*daemon, "drain complete");
    ASSERT_TRUE(done) << daemon->stdout_text();
    const json stats = harness::stop_sim(sim);
    const auto out = harness::check_output(dir);
    harness::expect_seqs_increase(out);

    const auto quotes = out.quotes;
    const auto timed_out = (*done)["polls_timed_out"].get<std::uint64_t>();
    const json late = done->value("late_answers", json::object());
    const auto late_delivered = late.value("delivered", std::uint64_t{0});
    const auto responses = stats["responses"].get<std::uint64_t>();
    const auto connections = stats["connections"].get<std::uint64_t>();
    SCOPED_TRACE("drain line: " + done->dump() + "\nsim: " + stats.dump().substr(0, 2000));

    EXPECT_EQ((*done)["quotes_accepted"].get<std::size_t>(), quotes);
    EXPECT_EQ((*done)["polls_completed"].get<std::uint64_t>(), quotes) << "one poll, one quote";
    EXPECT_GE(quotes, static_cast<std::size_t>(10 * symbols));
    EXPECT_EQ(out.seqs.size(), static_cast<std::size_t>(symbols)) << "every symbol quoted";
    // Every answer comes after the deadline, so (nearly) every quote is a late answer; one
    // the event loop read before it noticed the deadline is an ordinary one.
    // The simulator's late answers are good quotes: none may end a grace in an error class.
    EXPECT_EQ(late.value("failed", std::uint64_t{0}), 0u) << "a good late answer counted as failed";
    EXPECT_GE(late_delivered * 10, quotes * 9) << "the late-answer counter misses delivered late answers";
    // A loaded machine may still miss a grace now and then; a few, not a collapse.
    EXPECT_LE(timed_out * 10, quotes) << "polls still time out";
    // A late grace that ran out is a timeout; a connect or handshake timeout has no grace.
    EXPECT_LE(late.value("closed", std::uint64_t{0}), timed_out);
    // Nothing the simulator wrote is lost: only an answer to a poll that timed out (its
    // connection closed) may be missing from the output.
    EXPECT_LE(quotes, responses);
    EXPECT_LE(responses - quotes, timed_out) << "answers the simulator wrote were thrown away";
    // The keep-alive connections stay: one per poller, plus one per poll that timed out.
    EXPECT_LE(connections, static_cast<std::uint64_t>(symbols) + timed_out + 2) << "pollers reconnect";
    if (tls) {
        const auto handshakes = stats["tls"]["handshakes"].get<std::uint64_t>() +
                                stats["tls"]["resumptions"].get<std::uint64_t>();
        EXPECT_LE(handshakes, static_cast<std::uint64_t>(symbols) + timed_out + 2) << "TLS handshakes per poll";
    }
}

}  // namespace

TEST(LateAnswers, AVenueAnsweringAfterTheTimeoutIsQuotedOnKeptConnections) { run_late_venue(false); }

TEST(LateAnswers, OverTlsTooWithoutAHandshakePerPoll) { run_late_venue(true); }

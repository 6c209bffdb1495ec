// Issue 16's rules that the other end-to-end tests leave out, with the real mdagg, mdagg-sim
// and mdagg-kafka-mock processes (the drain's with polls in flight and "3 when the budget ran
// out": kafka_e2e_drain_test.cpp):
// - unreachable brokers at start are no error: the daemon starts, polls, queues and reports,
//   and delivers once they answer; a secret in kafka.properties shows in no output.
#include "e2e_support.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

using namespace std::chrono_literals;
using harness::DaemonConfig;
using harness::TempDir;
using kafka_e2e::kafka_section;
using kafka_e2e::Mock;
using mdagg::kafka_test::read_topic;
using Clock = std::chrono::steady_clock;

TEST(KafkaE2ERules, UnreachableBrokersAtStartAreNoErrorAndNoSecretIsShown) {
    TempDir dir;
    Mock mock(dir);
    ASSERT_FALSE(mock.bootstraps.empty()) << mock.process->stderr_text();
    mock.command("down -1");
    auto sim = harness::start_sim(dir.path(), {"--symbols", "50"});
    const std::string secret = "hunter2-kafka-secret";
    ::setenv("MDAGG_E2E_KAFKA_SECRET", secret.c_str(), 1);
    DaemonConfig c;
    c.port = sim.port;
    c.symbols = 50;
    c.interval = "200ms";  // room for a loaded machine: the exact counts below need no timed-out poll
    c.grace = "8s";
    c.extra = kafka_section(mock.bootstraps, "  properties:\n"
                                             "    reconnect.backoff.max.ms: 200\n"
                                             "    sasl.username: { env: MDAGG_E2E_KAFKA_SECRET }\n"
                                             "    sasl.password: { env: MDAGG_E2E_KAFKA_SECRET }\n") +
              "admin: { listen: \"127.0.0.1:0\" }\n";
    const auto path = harness::write_config(dir.path(), c);
    std::string shown;  // every output, for the secret
    harness::Process check("check", {MDAGG_BIN, "--check-config", path.string(), "--print"}, dir.path());
    EXPECT_EQ(check.wait(10s), 0) << check.stderr_text();
    shown += check.stdout_text() + check.stderr_text();

    auto daemon = harness::start_daemon(dir, path);
    const auto listening = daemon->wait_for_line("msg", "admin listening", 15s);
    ASSERT_TRUE(listening) << daemon->stdout_text() << daemon->stderr_text();
    const int admin_port = (*listening)["port"].get<int>();
    ASSERT_TRUE(daemon->wait_for_line(
        "msg", "kafka unreachable at start: records queue up to kafka.max_buffer_bytes, then drop", 10s))
        << kafka_e2e::kafka_lines(*daemon);
    // Ready once every poller polled, Kafka or not; the detail, the gauge and the summary tell.
    harness::HttpResponse ready;
    for (int i = 0; i < 300; ++i) {
        ready = harness::http_request(admin_port, "GET", "/readyz");
        if (ready.status == 200 && ready.json()["kafka"]["queued_records"].get<std::uint64_t>() > 0) break;
        std::this_thread::sleep_for(50ms);
    }
    EXPECT_EQ(ready.status, 200) << ready.body;
    EXPECT_EQ(ready.json()["kafka"]["connected"], false) << ready.body;
    EXPECT_GT(ready.json()["kafka"]["queued_records"].get<std::uint64_t>(), 0u) << "records queue for the brokers";
    shown += ready.body;
    const std::string metrics = harness::http_get(admin_port, "/metrics");
    EXPECT_NE(metrics.find("mdagg_sink_connected{sink=\"kafka\"} 0"), std::string::npos);
    shown += metrics;
    ASSERT_TRUE(daemon->wait_for_line("msg", "summary", 10s));
    const auto summary = kafka_e2e::last_line(*daemon, "summary");
    EXPECT_EQ(summary["kafka"]["connected"], false) << summary.dump();
    EXPECT_GT(summary["completed"].get<std::uint64_t>(), 0u) << "polling goes on: " << summary.dump();

    mock.command("up -1");
    ASSERT_TRUE(daemon->wait_for_line("msg", "kafka reachable again", 15s)) << kafka_e2e::kafka_lines(*daemon);
    std::this_thread::sleep_for(500ms);
    shown += harness::http_get(admin_port, "/metrics");
    daemon->signal(SIGTERM);
    const auto code = daemon->wait(15s);
    ::unsetenv("MDAGG_E2E_KAFKA_SECRET");
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, 0) << kafka_e2e::kafka_lines(*daemon);
    const auto files = harness::check_output(dir);
    EXPECT_EQ(harness::sim_stats(sim.port)["responses"].get<std::size_t>(), files.quotes);
    const auto drained = harness::find_log(*daemon, "drain complete");
    ASSERT_TRUE(drained) << kafka_e2e::kafka_lines(*daemon);
    EXPECT_EQ((*drained)["kafka"]["delivered"].get<std::size_t>(), files.quotes + files.bars + files.stale_marks)
        << "what queued while no broker answered was delivered";
    EXPECT_EQ((*drained)["kafka"]["undelivered"].get<std::size_t>(), 0u);
    EXPECT_EQ((*drained)["kafka"]["dropped"].get<std::size_t>(), 0u);

    shown += daemon->stdout_text() + daemon->stderr_text();
    for (const auto& f : std::filesystem::recursive_directory_iterator(dir / "out")) {
        if (!f.is_regular_file()) continue;
        std::ifstream in(f.path());
        std::stringstream ss;
        ss << in.rdbuf();
        shown += ss.str();
    }
    EXPECT_EQ(shown.find(secret), std::string::npos) << "the secret's text was shown";
}

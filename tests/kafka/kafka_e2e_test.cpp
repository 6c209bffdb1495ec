// End-to-end with Kafka: the real mdagg and mdagg-sim processes and a mock Kafka cluster in a
// third process (mdagg-kafka-mock), real signals; the topics are consumed back and compared
// with the files the same run wrote.
#include "harness.hpp"
#include "mock_cluster.hpp"
#include "output_checks.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <thread>

using namespace std::chrono_literals;
using harness::DaemonConfig;
using harness::Process;
using harness::TempDir;

namespace {

// mdagg-kafka-mock with three brokers; commands go through its control file.
struct Mock {
    std::unique_ptr<Process> process;
    std::string bootstraps;
    std::filesystem::path control;
    int answered = 0;

    explicit Mock(const TempDir& dir) : control(dir / "kafka-mock.control") {
        std::ofstream(control).flush();
        process = std::make_unique<Process>(
            "kafka-mock",
            std::vector<std::string>{MDAGG_KAFKA_MOCK_BIN, "--brokers", "3", "--topic", "md.quotes:8", "--topic",
                                     "md.bars:4", "--topic", "md.events:2", "--control", control.string()},
            dir.path());
        for (int i = 0; i < 500 && bootstraps.empty(); ++i) {
            const std::string out = process->stdout_text();
            if (const auto nl = out.find('\n'); nl != std::string::npos) bootstraps = out.substr(0, nl);
            else std::this_thread::sleep_for(10ms);
        }
    }
    // Runs one command and waits for its answer.
    void command(const std::string& line) {
        std::ofstream(control, std::ios::app) << line << "\n";
        ++answered;
        for (int i = 0; i < 500; ++i) {
            const std::string out = process->stdout_text();
            std::size_t lines = 0;
            for (char c : out) lines += c == '\n';
            if (static_cast<int>(lines) >= answered + 1) {
                ASSERT_EQ(out.find("error"), std::string::npos) << out;
                return;
            }
            std::this_thread::sleep_for(10ms);
        }
        FAIL() << "mdagg-kafka-mock did not answer " << line;
    }
};

std::string kafka_section(const std::string& bootstraps, const std::string& extra = "") {
    return "kafka:\n  brokers: \"" + bootstraps + "\"\n" +
           "  topics: { quotes: md.quotes, bars: md.bars, events: md.events }\n" +
           "  linger: 5ms\n" + extra;
}

// symbol -> seqs in partition order, checking key, headers and value of each message.
std::map<std::string, std::vector<long long>> quotes_by_symbol(const std::vector<mdagg::kafka_test::Message>& got) {
    std::map<std::string, std::vector<long long>> out;
    for (const auto& m : got) {
        const auto record = nlohmann::json::parse(m.value);
        EXPECT_EQ(record["type"], "quote");
        EXPECT_EQ(m.key, record["symbol"].get<std::string>());
        EXPECT_EQ(m.headers.at("type"), "quote");
        EXPECT_EQ(m.headers.at("source"), record["source"].get<std::string>());
        out[m.key].push_back(record["seq"].get<long long>());
    }
    return out;
}

}  // namespace

// 1,000 pollers at 50 ms, SIGTERM: every quote the daemon accepted is in Kafka exactly once,
// in seq order per symbol within its partition, and Kafka holds what the files hold.
TEST(KafkaE2E, SigtermDeliversEveryQuoteExactlyOnceAndMatchesTheFiles) {
    TempDir dir;
    Mock mock(dir);
    ASSERT_FALSE(mock.bootstraps.empty()) << mock.process->stderr_text();
    auto sim = harness::start_sim(dir.path(), {"--symbols", "1000"});
    DaemonConfig c;
    c.port = sim.port;
    c.symbols = 1000;
    c.interval = "50ms";
    c.grace = "10s";  // 1,000 polls in flight at the signal on a loaded machine
    c.extra = kafka_section(mock.bootstraps);
    auto daemon = harness::start_daemon(dir, harness::write_config(dir.path(), c));
    ASSERT_TRUE(daemon->wait_for_line("msg", "kafka connected", 10s)) << daemon->stdout_text();
    // Every symbol quoted by the daemon's latest summary: on a loaded machine many 50 ms polls
    // time out, so a fixed run time proves little.
    const auto all_quoted = [&] {
        std::optional<nlohmann::json> last;
        for (auto& line : daemon->stdout_json())
            if (line.value("msg", "") == "summary") last = line;
        return last && last->value("symbols_quoted", 0) == 1000;
    };
    std::this_thread::sleep_for(3s);
    for (int i = 0; i < 60 && !all_quoted(); ++i) std::this_thread::sleep_for(500ms);
    ASSERT_TRUE(daemon->running()) << daemon->stdout_text() << daemon->stderr_text();
    daemon->signal(SIGTERM);
    const auto code = daemon->wait(15s);
    ASSERT_TRUE(code) << "mdagg did not exit after SIGTERM";
    EXPECT_EQ(*code, 0) << daemon->stdout_text();
    const auto done = harness::find_log(*daemon, "drain complete");
    ASSERT_TRUE(done) << daemon->stdout_text();

    const auto files = harness::check_output(dir);
    const auto stats = harness::sim_stats(sim.port);
    ASSERT_GE(files.quotes, 1000u);
    // A poll that timed out after the simulator answered is not a quote: the simulator's count
    // may run ahead of the daemon's, never behind.
    EXPECT_GE(stats["responses"].get<std::size_t>(), files.quotes);
    EXPECT_EQ((*done)["kafka"]["delivered"].get<std::size_t>(), files.quotes + files.bars + files.stale_marks);
    EXPECT_EQ((*done)["kafka"]["undelivered"].get<std::size_t>(), 0u);

    const auto quotes = mdagg::kafka_test::consume_all(mock.bootstraps, "md.quotes", files.quotes);
    ASSERT_EQ(quotes.size(), files.quotes);
    const auto by_symbol = quotes_by_symbol(quotes);
    EXPECT_EQ(by_symbol.size(), 1000u);
    for (const auto& [symbol, seqs] : by_symbol) {
        for (std::size_t i = 1; i < seqs.size(); ++i)
            ASSERT_LT(seqs[i - 1], seqs[i]) << symbol << ": a duplicate or a reordering in its partition";
        const auto file = files.seqs.find(symbol);
        ASSERT_NE(file, files.seqs.end()) << symbol;
        EXPECT_EQ(std::set<long long>(seqs.begin(), seqs.end()), std::set<long long>(file->second.begin(), file->second.end()))
            << symbol;
        EXPECT_GE(stats["per_symbol"][symbol].get<std::size_t>(), seqs.size()) << symbol;
    }
    const auto bars = mdagg::kafka_test::consume_all(mock.bootstraps, "md.bars", files.bars);
    EXPECT_EQ(bars.size(), files.bars);
}

// The daemon's lines about Kafka and its drain line, for a failure's message.
std::string kafka_lines(const Process& daemon) {
    std::string out;
    for (const auto& line : daemon.stdout_json()) {
        const std::string msg = line.value("msg", "");
        if (msg.rfind("kafka", 0) == 0 || msg.rfind("drain", 0) == 0 || line.contains("kafka")) out += line.dump() + "\n";
    }
    return out;
}

// A broker outage mid-run, then a leader change: records wait within the bound and arrive once
// the brokers are back; the outage and the recovery are logged once each; polling and the
// files never notice.
TEST(KafkaE2E, AnOutageMidRunLosesNothingWithinTheBound) {
    TempDir dir;
    Mock mock(dir);
    ASSERT_FALSE(mock.bootstraps.empty());
    auto sim = harness::start_sim(dir.path(), {"--symbols", "100"});
    DaemonConfig c;
    c.port = sim.port;
    c.symbols = 100;
    c.interval = "200ms";  // room for a loaded machine: the exact counts below need no timed-out poll
    c.grace = "8s";
    c.extra = kafka_section(mock.bootstraps, "  properties: { reconnect.backoff.max.ms: 200 }\n") +
              "admin: { listen: \"127.0.0.1:0\" }\n";
    auto daemon = harness::start_daemon(dir, harness::write_config(dir.path(), c));
    const auto listening = daemon->wait_for_line("msg", "admin listening", 15s);
    ASSERT_TRUE(listening) << daemon->stdout_text();
    const int admin_port = (*listening)["port"].get<int>();
    ASSERT_TRUE(daemon->wait_for_line("msg", "kafka connected", 10s)) << daemon->stdout_text();
    std::this_thread::sleep_for(1s);
    mock.command("down -1");
    ASSERT_TRUE(daemon->wait_for_line("msg", "kafka unreachable: records queue up to kafka.max_buffer_bytes, then drop", 10s))
        << daemon->stdout_text();
    // Still ready (polling and the files go on); the detail and the gauge tell.
    auto ready = harness::http_request(admin_port, "GET", "/readyz");
    EXPECT_EQ(ready.status, 200) << ready.body;
    EXPECT_EQ(ready.json()["kafka"]["connected"], false) << ready.body;
    EXPECT_NE(harness::http_get(admin_port, "/metrics").find("mdagg_sink_connected{sink=\"kafka\"} 0"), std::string::npos);
    std::this_thread::sleep_for(1500ms);
    mock.command("up -1");
    ASSERT_TRUE(daemon->wait_for_line("msg", "kafka reachable again", 15s)) << daemon->stdout_text();
    ready = harness::http_request(admin_port, "GET", "/readyz");
    EXPECT_EQ(ready.json()["kafka"]["connected"], true) << ready.body;
    const std::string metrics = harness::http_get(admin_port, "/metrics");
    EXPECT_NE(metrics.find("mdagg_sink_connected{sink=\"kafka\"} 1"), std::string::npos);
    EXPECT_NE(metrics.find("mdagg_sink_outages_total{sink=\"kafka\"} 1"), std::string::npos);
    EXPECT_NE(metrics.find("mdagg_sink_records_dropped_total{sink=\"kafka\",cause=\"buffer_full\"} 0"), std::string::npos);
    mock.command("leader md.quotes 0 2");
    mock.command("leader md.quotes 1 3");
    std::this_thread::sleep_for(1s);
    daemon->signal(SIGTERM);
    const auto code = daemon->wait(15s);
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, 0) << daemon->stdout_text();

    std::size_t outages = 0, recoveries = 0;
    for (const auto& line : daemon->stdout_json()) {
        outages += line["msg"] == "kafka unreachable: records queue up to kafka.max_buffer_bytes, then drop";
        recoveries += line["msg"] == "kafka reachable again";
    }
    EXPECT_EQ(outages, 1u);
    EXPECT_EQ(recoveries, 1u);
    const auto files = harness::check_output(dir);
    EXPECT_EQ(harness::sim_stats(sim.port)["responses"].get<std::size_t>(), files.quotes);
    const auto quotes = mdagg::kafka_test::consume_all(mock.bootstraps, "md.quotes", files.quotes);
    EXPECT_EQ(quotes.size(), files.quotes) << "the daemon's kafka lines:\n" << kafka_lines(*daemon);
    for (const auto& [symbol, seqs] : quotes_by_symbol(quotes))
        EXPECT_EQ(seqs, files.seqs.at(symbol)) << symbol;
}

// Every broker down at the drain: the drain still ends within its budget, exit 1 (in time,
// records undelivered), with the undelivered count logged; the files are complete.
TEST(KafkaE2E, EveryBrokerDownAtTheDrainEndsInTheBudgetWithExitOne) {
    TempDir dir;
    Mock mock(dir);
    ASSERT_FALSE(mock.bootstraps.empty());
    auto sim = harness::start_sim(dir.path(), {"--symbols", "50"});
    DaemonConfig c;
    c.port = sim.port;
    c.symbols = 50;
    c.interval = "200ms";  // room for a loaded machine: the exact counts below need no timed-out poll
    c.grace = "3s";
    c.extra = kafka_section(mock.bootstraps);
    auto daemon = harness::start_daemon(dir, harness::write_config(dir.path(), c));
    ASSERT_TRUE(daemon->wait_for_line("msg", "kafka connected", 10s)) << daemon->stdout_text();
    mock.command("down -1");
    std::this_thread::sleep_for(1s);  // records queue for the brokers that are gone
    const auto t0 = std::chrono::steady_clock::now();
    daemon->signal(SIGTERM);
    const auto code = daemon->wait(10s);
    const auto took = std::chrono::steady_clock::now() - t0;
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, 1) << daemon->stdout_text();
    EXPECT_LT(took, 3s + 1s) << "the drain overran its 3 s budget";
    const auto drained = harness::find_log(*daemon, "drain finished but output is incomplete: records were dropped or not written");
    ASSERT_TRUE(drained) << daemon->stdout_text();
    EXPECT_GT((*drained)["kafka"]["undelivered"].get<std::size_t>(), 0u);
    EXPECT_TRUE((*drained)["kafka"]["in_time"].get<bool>());
    EXPECT_LT((*drained)["drain_ms"].get<double>(), 3000.0);
    const auto files = harness::check_output(dir);
    EXPECT_EQ(harness::sim_stats(sim.port)["responses"].get<std::size_t>(), files.quotes) << "the files lost nothing";
}

// A property librdkafka does not know is a config error at load time (file:line:col, exit 2),
// and a secret's value librdkafka refuses stops the start-up (exit 2) without its text.
TEST(KafkaE2E, BadPropertiesExitTwoAndNoSecretIsShown) {
    TempDir dir;
    DaemonConfig c;
    c.port = 1;
    c.extra = kafka_section("127.0.0.1:1", "  properties:\n    sasl.pasword: hunter2-literal\n");
    const auto path = harness::write_config(dir.path(), c);
    Process check("check", {MDAGG_BIN, "--check-config", path.string()}, dir.path());
    EXPECT_EQ(check.wait(10s), 2);
    EXPECT_NE(check.stderr_text().find("kafka.properties.sasl.pasword: unknown librdkafka property"), std::string::npos)
        << check.stderr_text();
    auto unknown = harness::start_daemon(dir, path);
    EXPECT_EQ(unknown->wait(10s), 2);

    ::setenv("MDAGG_E2E_KAFKA_SECRET", "hunter2-from-env", 1);
    c.extra = kafka_section("127.0.0.1:1", "  properties:\n    sasl.username: { env: MDAGG_E2E_KAFKA_SECRET }\n"
                                           "    socket.timeout.ms: { env: MDAGG_E2E_KAFKA_SECRET }\n");
    const auto secret_path = harness::write_config(dir.path(), c);
    Process check2("check2", {MDAGG_BIN, "--check-config", secret_path.string()}, dir.path());
    EXPECT_EQ(check2.wait(10s), 0) << check2.stderr_text() << "--check-config reads no secret";
    auto daemon = harness::start_daemon(dir, secret_path);
    const auto code = daemon->wait(10s);
    ::unsetenv("MDAGG_E2E_KAFKA_SECRET");
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, 2);
    const std::string all = daemon->stdout_text() + daemon->stderr_text() + check2.stdout_text() + check2.stderr_text();
    EXPECT_NE(all.find("kafka.properties.socket.timeout.ms"), std::string::npos) << all;
    EXPECT_EQ(all.find("hunter2"), std::string::npos) << all;
    EXPECT_FALSE(std::filesystem::exists(dir / "out")) << "nothing started";
}

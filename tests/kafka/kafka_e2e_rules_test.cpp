// Issue 16's rules that the other end-to-end tests leave out, with the real mdagg, mdagg-sim
// and mdagg-kafka-mock processes:
// - the drain's "3 when the budget ran out": a poll that hangs holds the in-flight stage up to
//   its cancel point, so the Kafka stage, which leaves the files their reserve, starts with
//   its share of the budget spent while every broker is down and records wait for them: exit
//   3 within the budget, delivered and undelivered counted exactly, the files complete;
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

namespace {

std::size_t distinct_values(const mdagg::kafka_test::TopicContents& topic) {
    std::set<std::string> values;
    for (const auto& m : topic.messages) values.insert(m.value);
    return values.size();
}

nlohmann::json read_json(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return nlohmann::json::parse(ss.str(), nullptr, false);
}

// A second source beside the harness's: one symbol the simulator never answers, polled with a
// timeout longer than the drain's budget, so its poll is in flight until the cancel point.
std::string hung_source(int port) {
    return "  - name: slow\n"
           "    url: \"http://127.0.0.1:" +
           std::to_string(port) +
           "/quotes/{symbol}\"\n"
           "    interval: 5s\n"
           "    timeout: 5s\n"
           "    symbols: [STOCK_40]\n"
           "    fields: { symbol: /symbol, bid: /bidPrice, ask: /askPrice, bid_size: /bidQty, ask_size: /askQty,\n"
           "              exchange_time: { pointer: /time, unit: ms }, seq: /seq }\n";
}

}  // namespace

TEST(KafkaE2ERules, HungPollsSpendTheBudgetBeforeKafkaExitThreeInTimeWithExactCounts) {
    TempDir dir;
    Mock mock(dir);
    ASSERT_FALSE(mock.bootstraps.empty()) << mock.process->stderr_text();
    auto sim = harness::start_sim(dir.path(), {"--symbols", "41", "--hung", "STOCK_40"});
    DaemonConfig c;
    c.port = sim.port;
    c.symbols = 40;        // STOCK_0..39 answer; STOCK_40 hangs
    c.interval = "200ms";  // room for a loaded machine: the exact counts below need no timed-out poll
    c.grace = "2s";        // the in-flight stage ends at 1.5 s (the reserve is a quarter)
    c.extra = hung_source(sim.port) + kafka_section(mock.bootstraps);
    auto daemon = harness::start_daemon(dir, harness::write_config(dir.path(), c));
    ASSERT_TRUE(daemon->wait_for_line("msg", "kafka connected", 10s)) << daemon->stdout_text() << daemon->stderr_text();
    // SIGTERM just after a hung request arrived: that poll has most of its 5 s left.
    auto hung_seen = [&] { return harness::sim_stats(sim.port).value("hung_requests", std::uint64_t{0}); };
    const auto before = hung_seen();
    for (int i = 0; i < 3000 && hung_seen() == before; ++i) std::this_thread::sleep_for(5ms);
    ASSERT_GT(hung_seen(), before) << "the slow source never polled";
    // Records from here on wait for brokers that are gone.
    mock.command("down -1");
    std::this_thread::sleep_for(300ms);
    const auto t0 = Clock::now();
    daemon->signal(SIGTERM);
    const auto code = daemon->wait(10s);
    const auto took = Clock::now() - t0;
    ASSERT_TRUE(code) << "mdagg did not exit";
    EXPECT_EQ(*code, 3) << kafka_e2e::kafka_lines(*daemon);
    // The daemon's own clock says whether the drain kept its budget; the wall clock here only
    // that nothing waited for librdkafka (a loaded machine is slow to start and reap).
    EXPECT_LT(took, 2s + 3s);

    const auto drained = harness::find_log(*daemon, "drain incomplete: budget exceeded or forced");
    ASSERT_TRUE(drained) << kafka_e2e::kafka_lines(*daemon);
    EXPECT_EQ((*drained)["exit_code"], 3);
    EXPECT_EQ((*drained)["emergency"], false) << "no second signal was sent";
    EXPECT_LE((*drained)["drain_ms"].get<double>(), 2000.0) << "the drain kept its budget";
    // The hung poll held the in-flight stage to the cancel point (1.5 s after the signal).
    EXPECT_GE((*drained)["stages"]["in_flight_ms"].get<double>(), 1000.0) << drained->dump();
    EXPECT_GE((*drained)["polls_cancelled_by_drain"].get<int>(), 1);
    EXPECT_FALSE(harness::find_log(*daemon, "drain watchdog fired: the drain did not finish within its budget; forcing exit"));
    const auto& k = (*drained)["kafka"];
    ASSERT_TRUE(k.is_object()) << drained->dump();
    EXPECT_EQ(k["in_time"], false) << "the records waiting for Kafka got none of the budget";
    const std::size_t delivered = k["delivered"].get<std::size_t>(), undelivered = k["undelivered"].get<std::size_t>();
    EXPECT_GT(delivered, 0u);
    EXPECT_GT(undelivered, 0u) << "records were waiting for the brokers";
    // The sink's own line says the same.
    const auto lost = harness::find_log(*daemon, "kafka drained with records lost");
    ASSERT_TRUE(lost) << kafka_e2e::kafka_lines(*daemon);
    EXPECT_EQ((*lost)["delivered"].get<std::size_t>(), delivered);
    EXPECT_EQ((*lost)["undelivered"].get<std::size_t>(), undelivered);
    EXPECT_EQ((*lost)["in_time"], false);
    const auto record = read_json(dir / "out" / ".mdagg-drain.json");
    ASSERT_TRUE(record.is_object()) << "no drain record";
    EXPECT_EQ(record["exit_code"], 3);
    EXPECT_EQ(record["forced_by_watchdog"], false);

    // The files are complete: every quote the simulator served, every file finished.
    const auto files = harness::check_output(dir);
    EXPECT_EQ(harness::sim_stats(sim.port)["responses"].get<std::size_t>(), files.quotes);
    EXPECT_EQ(files.seqs.count("STOCK_40"), 0u);
    // Exact accounting: every record the files got was delivered, or counted undelivered or dropped.
    const std::size_t records = files.quotes + files.bars + files.stale_marks;
    EXPECT_EQ(delivered + undelivered + k["dropped"].get<std::size_t>(), records) << kafka_e2e::kafka_lines(*daemon);

    // Honest counts: with the brokers back, the log holds every record counted delivered, and
    // beyond them only records counted undelivered (purged in flight after the broker took them).
    mock.command("up -1");
    const auto quotes = read_topic(mock.bootstraps, "md.quotes");
    const auto bars = read_topic(mock.bootstraps, "md.bars");
    const auto events = read_topic(mock.bootstraps, "md.events");
    const auto check = kafka_e2e::check_quotes(quotes.messages, files);
    const std::string why = kafka_e2e::describe(quotes, check) + kafka_e2e::kafka_lines(*daemon);
    ASSERT_TRUE(quotes.complete && bars.complete && events.complete) << why;
    EXPECT_EQ(quotes.pruned + bars.pruned + events.pruned, 0) << why;
    EXPECT_EQ(check.unknown, 0u) << why;
    EXPECT_EQ(check.reordered, 0u) << why;
    EXPECT_GT(check.missing, 0u) << "the undelivered quotes are not in Kafka: " << why;
    // Distinct records: the mock appends a batch again when an outage cut its acknowledgement.
    const std::size_t in_kafka = (quotes.messages.size() - check.duplicates) + distinct_values(bars) + distinct_values(events);
    EXPECT_GE(in_kafka, delivered) << why;
    EXPECT_LE(in_kafka, delivered + undelivered) << why;
}

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

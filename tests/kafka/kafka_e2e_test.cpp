// End-to-end with Kafka: the real mdagg and mdagg-sim processes and a mock Kafka cluster in a
// third process (mdagg-kafka-mock), real signals; the topics are consumed back and compared
// with the files the same run wrote.
#include "e2e_support.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <thread>

using namespace std::chrono_literals;
using harness::DaemonConfig;
using harness::Process;
using harness::TempDir;
using kafka_e2e::kafka_section;
using kafka_e2e::Mock;
using mdagg::kafka_test::read_topic;

// 1,000 pollers at 50 ms, SIGTERM: every quote the daemon accepted is in Kafka exactly once,
// in seq order per symbol within its partition, and Kafka holds what the files hold.
TEST(KafkaE2E, SigtermDeliversEveryQuoteExactlyOnceAndMatchesTheFiles) {
    TempDir dir;
    Mock mock(dir, 32);  // the mock keeps ~5 MB a partition: 32 hold a minute of this run
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

    // Read to each partition's end (no idle timeout), then compare quote by quote.
    const auto quotes = read_topic(mock.bootstraps, "md.quotes");
    const auto check = kafka_e2e::check_quotes(quotes.messages, files);
    const std::string why = kafka_e2e::describe(quotes, check);
    EXPECT_TRUE(quotes.complete) << "the reader did not reach the end of the log: " << why;
    EXPECT_EQ(quotes.pruned, 0) << "the mock dropped the log's head (it keeps ~5 MB a partition): " << why;
    EXPECT_EQ(static_cast<std::size_t>(quotes.log_records), files.quotes) << why;
    EXPECT_EQ(check.messages, files.quotes) << why;
    EXPECT_EQ(check.missing, 0u) << why;
    EXPECT_EQ(check.duplicates, 0u) << why;
    EXPECT_EQ(check.unknown, 0u) << why;
    EXPECT_EQ(check.reordered, 0u) << "seqs must increase per symbol within its partition: " << why;
    EXPECT_EQ(check.split, 0u) << "a symbol's records must stay on one partition: " << why;
    // Kafka holds the same symbols as the files. How many of the 1,000 were quoted at all is
    // the poll path's business (under a sanitizer on 2 loaded cores some 50 ms polls starve):
    // it is asserted where the poll path is tested, not here.
    EXPECT_EQ(check.seqs.size(), files.seqs.size()) << why;
    EXPECT_GE(files.seqs.size(), 1u);
    for (const auto& [symbol, seqs] : check.seqs)
        EXPECT_GE(stats["per_symbol"][symbol].get<std::size_t>(), seqs.size()) << symbol << ": more than served";
    const auto bars = read_topic(mock.bootstraps, "md.bars");
    EXPECT_TRUE(bars.complete);
    EXPECT_EQ(bars.messages.size(), files.bars);
    const auto events = read_topic(mock.bootstraps, "md.events");
    EXPECT_TRUE(events.complete);
    EXPECT_EQ(events.messages.size(), files.stale_marks);
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
    // librdkafka's debug lines (the contexts the failing run was caught with) reach the
    // daemon's log at debug level, rate-limited per facility: the IMPLICITACK line is needed
    // below, to tell the mock's acknowledgements from librdkafka's inferred ones.
    c.log_level = "debug";
    c.extra = kafka_section(mock.bootstraps, "  properties: { reconnect.backoff.max.ms: 200, debug: \"eos,msg,broker,topic\" }\n") +
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
    // The daemon's own account first: everything the files hold was delivered, nothing else.
    const auto drained = harness::find_log(*daemon, "drain complete");
    ASSERT_TRUE(drained) << kafka_e2e::kafka_lines(*daemon);
    const std::size_t records = files.quotes + files.bars + files.stale_marks;
    EXPECT_EQ((*drained)["kafka"]["delivered"].get<std::size_t>(), records) << kafka_e2e::kafka_lines(*daemon);
    EXPECT_EQ((*drained)["kafka"]["undelivered"].get<std::size_t>(), 0u);
    EXPECT_EQ((*drained)["kafka"]["dropped"].get<std::size_t>(), 0u);
    // Then the log, read to its end: a record missing from a complete read was lost after its
    // delivery report; an incomplete read is the reader's fault, not the daemon's.
    const auto quotes = read_topic(mock.bootstraps, "md.quotes");
    const auto check = kafka_e2e::check_quotes(quotes.messages, files);
    const std::string why = kafka_e2e::describe(quotes, check) + "the daemon's kafka lines:\n" + kafka_e2e::kafka_lines(*daemon);
    ASSERT_TRUE(quotes.complete) << "the reader did not reach the end of the log: " << why;
    EXPECT_EQ(quotes.pruned, 0) << why;
    // librdkafka 2.0.2 races at a leader change: when the partition moves while a Produce is
    // in flight to the old leader, the new leader's thread sends the records queued after it
    // as soon as that request ends with NOT_LEADER, before its records are queued again for
    // the retry. The later batch carries a later sequence number; a broker that knows the
    // producer rejects it (OUT_OF_ORDER_SEQUENCE_NUMBER), but the mock checks sequences only
    // for a transactional producer, so it appends it, and librdkafka, seeing a later batch
    // succeed, counts the earlier records delivered ("N message(s) implicitly acked by
    // subsequent batch success"): they never reach the mock's log. Seen here under load
    // (1 run in 20 on one core): 70 records of md.quotes [1], msgids 48..117, sent in one
    // batch to broker 1 just as the test moved the partition to broker 3; missing=70.
    // Only records librdkafka says it counted that way may be missing, partition by partition;
    // it says so at debug level, once per facility per 10 s in the daemon's log, so a second
    // such line in one run counts short and fails (loudly, never silently).
    std::map<int, std::size_t> implicitly_acked;  // md.quotes partition -> records
    for (const auto& line : daemon->stdout_json()) {
        if (line.value("facility", "") != "IMPLICITACK") continue;
        // "...: md.quotes [1] 70 message(s) implicitly acked by subsequent batch success (...)"
        const std::string text = line.value("message", "");
        const auto topic = text.find("md.quotes [");
        const auto at = text.find(" message(s) implicitly acked");
        if (topic == std::string::npos || at == std::string::npos || at <= topic) continue;
        const int partition = std::stoi(text.substr(topic + 11));
        implicitly_acked[partition] += std::stoul(text.substr(text.rfind(' ', at - 1) + 1));
        std::cout << "librdkafka counted records delivered without an acknowledgement: " << text << "\n";
    }
    std::map<std::string, int> partition_of;  // a symbol's records stay on one partition (checked)
    std::set<std::pair<std::string, long long>> in_log;
    for (const auto& m : quotes.messages) {
        partition_of[m.key] = m.partition;
        in_log.emplace(m.key, nlohmann::json::parse(m.value)["seq"].get<long long>());
    }
    std::map<int, std::size_t> missing;  // partition (-1: a symbol not in the log at all) -> records
    for (const auto& [symbol, seqs] : files.seqs)
        for (long long seq : seqs)
            if (!in_log.count({symbol, seq})) ++missing[partition_of.count(symbol) ? partition_of[symbol] : -1];
    for (const auto& [partition, n] : missing)
        EXPECT_LE(n, implicitly_acked[partition])
            << "delivered, then not in the log (md.quotes [" << partition << "]): " << why;
    EXPECT_EQ(check.unknown, 0u) << why;
    EXPECT_EQ(check.reordered, 0u) << why;
    EXPECT_EQ(check.split, 0u) << why;
    // librdkafka's mock checks no sequence numbers for a producer without a transactional.id,
    // so a batch that reached it before the outage cut its acknowledgement is appended again
    // when resent; a real broker drops that duplicate (idempotence). Only such whole resends
    // are allowed here, each counted in the log.
    EXPECT_EQ(static_cast<std::size_t>(quotes.log_records) + check.missing, files.quotes + check.duplicates) << why;
    if (check.duplicates > 0) std::cout << "mock duplicates (resent batches): " << check.duplicates << "\n";
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
    // The daemon's own clock says whether the drain kept its budget; the wall clock here only
    // that nothing waited for librdkafka's 300 s message timeout (a loaded machine is slow).
    EXPECT_LT(took, 3s + 5s) << "the drain overran its 3 s budget";
    const auto drained = harness::find_log(*daemon, "drain finished but output is incomplete: records were dropped or not written");
    ASSERT_TRUE(drained) << daemon->stdout_text();
    const auto& k = (*drained)["kafka"];
    const std::size_t delivered = k["delivered"].get<std::size_t>(), undelivered = k["undelivered"].get<std::size_t>();
    EXPECT_GT(undelivered, 0u);
    EXPECT_TRUE(k["in_time"].get<bool>());
    EXPECT_LT((*drained)["drain_ms"].get<double>(), 3000.0);
    // The sink's own line names the count too.
    const auto lost = harness::find_log(*daemon, "kafka drained with records lost");
    ASSERT_TRUE(lost) << kafka_e2e::kafka_lines(*daemon);
    EXPECT_EQ((*lost)["undelivered"].get<std::size_t>(), undelivered);
    EXPECT_EQ((*lost)["delivered"].get<std::size_t>(), delivered);
    const auto files = harness::check_output(dir);
    EXPECT_EQ(harness::sim_stats(sim.port)["responses"].get<std::size_t>(), files.quotes) << "the files lost nothing";
    // Exact accounting: every record the files got was delivered, or counted undelivered or dropped.
    EXPECT_EQ(delivered + undelivered + k["dropped"].get<std::size_t>(), files.quotes + files.bars + files.stale_marks)
        << kafka_e2e::kafka_lines(*daemon);
    // With the brokers back, the log holds every delivered quote; a purged record reached it
    // only if the outage cut its acknowledgement, not its request.
    mock.command("up -1");
    const auto quotes = read_topic(mock.bootstraps, "md.quotes");
    const auto check = kafka_e2e::check_quotes(quotes.messages, files);
    const std::string why = kafka_e2e::describe(quotes, check) + kafka_e2e::kafka_lines(*daemon);
    ASSERT_TRUE(quotes.complete) << why;
    EXPECT_EQ(check.unknown, 0u) << why;
    EXPECT_EQ(check.reordered, 0u) << why;
    EXPECT_GT(check.missing, 0u) << "the undelivered quotes are not in Kafka: " << why;
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

// Broker faults end to end: the real mdagg and mdagg-sim processes and mdagg-kafka-mock in a
// third process. One broker down with a leader moved off it; every broker down long enough
// for the buffer bound to drop. The topics are read back to their end and compared with the
// files the same run wrote.
#include "e2e_support.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <functional>
#include <set>
#include <sstream>
#include <thread>

using namespace std::chrono_literals;
using harness::DaemonConfig;
using harness::TempDir;
using kafka_e2e::distinct_values;
using kafka_e2e::kafka_section;
using kafka_e2e::polling;
using kafka_e2e::Mock;
using mdagg::kafka_test::read_topic;

namespace {

// The value of one /metrics sample, given as it is printed before the value; -1 when absent.
double metric(const std::string& text, const std::string& series) {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ')
            return std::stod(line.substr(series.size() + 1));
    return -1;
}

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(100ms);
    }
    return true;
}

}  // namespace

// One broker down mid-run: the partitions it led wait (the sink stays connected: the other
// brokers answer), a leader moved to a live broker takes their records, and nothing is lost,
// duplicated past the mock's resends, or reordered once the broker is back.
TEST(KafkaE2EFaults, OneBrokerDownAndALeaderChangeLoseNothing) {
    TempDir dir;
    Mock mock(dir, 6);
    ASSERT_FALSE(mock.bootstraps.empty()) << mock.process->stderr_text();
    // Quote partition p led by broker p % 3 + 1: broker 1 leads partitions 0 and 3, and no
    // partition of the other topics.
    for (int p = 0; p < 6; ++p) mock.command("leader md.quotes " + std::to_string(p) + " " + std::to_string(p % 3 + 1));
    for (int p = 0; p < 4; ++p) mock.command("leader md.bars " + std::to_string(p) + " " + std::to_string(p % 2 + 2));
    for (int p = 0; p < 2; ++p) mock.command("leader md.events " + std::to_string(p) + " " + std::to_string(p + 2));
    auto sim = harness::start_sim(dir.path(), {"--symbols", "100"});
    DaemonConfig c = polling(sim, 100, "8s");
    // A real cluster shows a partition without a leader while it elects one, and librdkafka
    // then asks again every 250 ms; the mock keeps naming the down broker until told
    // otherwise, so here librdkafka asks every second instead of every 5 minutes.
    c.extra = kafka_section(mock.bootstraps,
                            "  properties: { reconnect.backoff.max.ms: 200, topic.metadata.refresh.interval.ms: 1000 }\n") +
              "admin: { listen: \"127.0.0.1:0\" }\n";
    auto daemon = harness::start_daemon(dir, harness::write_config(dir.path(), c));
    const auto listening = daemon->wait_for_line("msg", "admin listening", 15s);
    ASSERT_TRUE(listening) << daemon->stdout_text();
    const int admin_port = (*listening)["port"].get<int>();
    ASSERT_TRUE(daemon->wait_for_line("msg", "kafka connected", 10s)) << daemon->stdout_text();
    std::this_thread::sleep_for(1s);
    mock.command("down 1");
    // Records for broker 1's partitions wait for it.
    const auto queued = [&] {
        return metric(harness::http_get(admin_port, "/metrics"), "mdagg_sink_queued_records{sink=\"kafka\"}");
    };
    EXPECT_TRUE(eventually([&] { return queued() >= 50; }, 15s)) << "records for the led-by-down partitions queue";
    mock.command("leader md.quotes 0 2");
    mock.command("leader md.quotes 3 3");
    // The new leaders take the waiting records while broker 1 is still down.
    EXPECT_TRUE(eventually([&] { return queued() < 20; }, 20s)) << "queued: " << queued();
    mock.command("up 1");
    std::this_thread::sleep_for(1s);
    const std::string metrics = harness::http_get(admin_port, "/metrics");
    EXPECT_EQ(metric(metrics, "mdagg_sink_connected{sink=\"kafka\"}"), 1) << "the other brokers answered throughout";
    EXPECT_EQ(metric(metrics, "mdagg_sink_outages_total{sink=\"kafka\"}"), 0);
    daemon->signal(SIGTERM);
    const auto code = daemon->wait(15s);
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, 0) << kafka_e2e::kafka_lines(*daemon);

    const auto files = harness::check_output(dir);
    EXPECT_EQ(harness::sim_stats(sim.port)["responses"].get<std::size_t>(), files.quotes);
    const auto drained = harness::find_log(*daemon, "drain complete");
    ASSERT_TRUE(drained) << kafka_e2e::kafka_lines(*daemon);
    EXPECT_EQ((*drained)["kafka"]["delivered"].get<std::size_t>(), files.quotes + files.bars + files.stale_marks);
    EXPECT_EQ((*drained)["kafka"]["undelivered"].get<std::size_t>(), 0u);
    const auto quotes = read_topic(mock.bootstraps, "md.quotes");
    const auto check = kafka_e2e::check_quotes(quotes.messages, files);
    const std::string why = kafka_e2e::describe(quotes, check) + kafka_e2e::kafka_lines(*daemon);
    ASSERT_TRUE(quotes.complete) << why;
    EXPECT_EQ(check.missing, 0u) << why;
    EXPECT_EQ(check.unknown, 0u) << why;
    EXPECT_EQ(check.reordered, 0u) << why;
    EXPECT_EQ(check.split, 0u) << why;
    // The mock appends a resent batch again (no sequence checks without a transactional.id).
    EXPECT_EQ(static_cast<std::size_t>(quotes.log_records), files.quotes + check.duplicates) << why;
    // Records were on the moved partitions before and after the move.
    std::size_t on_moved = 0;
    for (const auto& m : quotes.messages) on_moved += m.partition == 0 || m.partition == 3;
    EXPECT_GT(on_moved, 0u);
}

// Every broker down long enough to fill max_buffer_bytes: what does not fit is dropped and
// counted exactly (delivered + undelivered + dropped = records offered), polling and the files
// go on, the summary and /readyz show the outage, and the drain's exit code is 1.
TEST(KafkaE2EFaults, OverflowWhileBrokersAreDownDropsExactlyAndPollingGoesOn) {
    TempDir dir;
    Mock mock(dir);
    ASSERT_FALSE(mock.bootstraps.empty()) << mock.process->stderr_text();
    auto sim = harness::start_sim(dir.path(), {"--symbols", "100"});
    DaemonConfig c = polling(sim, 100, "8s");
    c.summary_every = "500ms";
    constexpr std::size_t bound = 16384;  // ~100 records: full within a second at 500 quotes/s
    c.extra = kafka_section(mock.bootstraps, "  max_buffer_bytes: " + std::to_string(bound) +
                                                 "\n  properties: { reconnect.backoff.max.ms: 200 }\n") +
              "admin: { listen: \"127.0.0.1:0\" }\n";
    auto daemon = harness::start_daemon(dir, harness::write_config(dir.path(), c));
    const auto listening = daemon->wait_for_line("msg", "admin listening", 15s);
    ASSERT_TRUE(listening) << daemon->stdout_text();
    const int admin_port = (*listening)["port"].get<int>();
    ASSERT_TRUE(daemon->wait_for_line("msg", "kafka connected", 10s)) << daemon->stdout_text();
    std::this_thread::sleep_for(1s);
    mock.command("down -1");
    ASSERT_TRUE(daemon->wait_for_line("msg", "kafka unreachable: records queue up to kafka.max_buffer_bytes, then drop", 10s))
        << kafka_e2e::kafka_lines(*daemon);
    const std::string buffer_full = "mdagg_sink_records_dropped_total{sink=\"kafka\",cause=\"buffer_full\"}";
    double dropped_before = 0;
    ASSERT_TRUE(eventually([&] { return (dropped_before = metric(harness::http_get(admin_port, "/metrics"), buffer_full)) > 0; }, 15s));
    const std::size_t summaries_before = daemon->stdout_json().size();
    std::this_thread::sleep_for(3s);
    const std::string metrics = harness::http_get(admin_port, "/metrics");
    EXPECT_GT(metric(metrics, buffer_full), dropped_before) << "drops go on while the brokers are down";
    EXPECT_LE(metric(metrics, "mdagg_sink_queued_bytes{sink=\"kafka\"}"), static_cast<double>(bound));
    EXPECT_EQ(metric(metrics, "mdagg_sink_connected{sink=\"kafka\"}"), 0);
    // Polling and the files are not slowed: every summary of the outage counts completed polls.
    std::size_t outage_summaries = 0;
    const auto lines = daemon->stdout_json();
    for (std::size_t i = summaries_before; i < lines.size(); ++i) {
        if (lines[i].value("msg", "") != "summary") continue;
        ++outage_summaries;
        EXPECT_GT(lines[i]["completed"].get<std::size_t>(), 0u) << lines[i].dump();
        EXPECT_EQ(lines[i]["records_dropped"].get<std::size_t>(), 0u) << "the files drop nothing";
        const auto& k = lines[i]["kafka"];
        EXPECT_EQ(k["connected"], false) << lines[i].dump();
        EXPECT_GT(k["dropped"].get<std::size_t>(), 0u) << lines[i].dump();
        // By cause, as in /metrics: every drop here is the bound's.
        EXPECT_EQ(k["dropped_by_cause"]["buffer_full"], k["dropped"]) << lines[i].dump();
        EXPECT_EQ(k["dropped_by_cause"]["queue_full"], 0) << lines[i].dump();
        EXPECT_LE(k["queued_bytes"].get<std::size_t>(), bound) << lines[i].dump();
        for (const char* key : {"delivered", "failed", "queued_records", "delivery_p99_ms"})
            EXPECT_TRUE(k.contains(key)) << key << " " << lines[i].dump();
    }
    EXPECT_GE(outage_summaries, 3u);
    const auto ready = harness::http_request(admin_port, "GET", "/readyz");
    EXPECT_EQ(ready.status, 200) << "a Kafka outage leaves the daemon ready: " << ready.body;
    EXPECT_EQ(ready.json()["kafka"]["connected"], false) << ready.body;
    EXPECT_GT(ready.json()["kafka"]["queued_records"].get<std::size_t>(), 0u) << ready.body;

    mock.command("up -1");
    const auto back = daemon->wait_for_line("msg", "kafka reachable again", 15s);
    ASSERT_TRUE(back) << kafka_e2e::kafka_lines(*daemon);
    EXPECT_GT((*back)["dropped_during_outage"].get<std::size_t>(), 0u);
    std::this_thread::sleep_for(1s);
    daemon->signal(SIGTERM);
    const auto code = daemon->wait(15s);
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, 1) << "records were dropped: the output is incomplete\n" << kafka_e2e::kafka_lines(*daemon);

    const auto files = harness::check_output(dir);
    EXPECT_EQ(harness::sim_stats(sim.port)["responses"].get<std::size_t>(), files.quotes) << "the files lost nothing";
    const auto drained = harness::find_log(*daemon, "drain finished but output is incomplete: records were dropped or not written");
    ASSERT_TRUE(drained) << kafka_e2e::kafka_lines(*daemon);
    const auto& k = (*drained)["kafka"];
    const std::size_t records = files.quotes + files.bars + files.stale_marks;
    const std::size_t delivered = k["delivered"].get<std::size_t>(), dropped = k["dropped"].get<std::size_t>();
    EXPECT_GT(dropped, 0u);
    EXPECT_EQ(k["undelivered"].get<std::size_t>(), 0u) << "the brokers were back for the drain";
    EXPECT_EQ(delivered + dropped, records) << "every record offered is delivered or counted as dropped";
    // Kafka holds exactly what was delivered (the mock's resends aside), all of it from the files.
    const auto quotes = read_topic(mock.bootstraps, "md.quotes");
    const auto bars = read_topic(mock.bootstraps, "md.bars");
    const auto events = read_topic(mock.bootstraps, "md.events");
    const auto check = kafka_e2e::check_quotes(quotes.messages, files);
    const std::string why = kafka_e2e::describe(quotes, check) + kafka_e2e::kafka_lines(*daemon);
    ASSERT_TRUE(quotes.complete && bars.complete && events.complete) << why;
    EXPECT_EQ(check.unknown, 0u) << why;
    EXPECT_EQ(check.reordered, 0u) << why;
    // A resent batch appears twice in the mock's log: compare distinct records.
    const std::size_t bars_in = distinct_values(bars), events_in = distinct_values(events);
    EXPECT_EQ(check.messages - check.duplicates + bars_in + events_in, delivered) << why;
    EXPECT_EQ(check.missing + (files.bars - bars_in) + (files.stale_marks - events_in), dropped)
        << "what is missing from Kafka is what was dropped: " << why;
}

// Issue 16's promise at the drain, with the real mdagg, mdagg-sim and mdagg-kafka-mock
// processes and a real SIGTERM: nothing accepted is lost with healthy brokers, whatever polls
// are in flight, and the budget running out is still exit 3, within the budget.
// - A hung source (the simulator never answers it) with a 2 s interval and a 1.5 s timeout,
//   its request just sent at SIGTERM: no late grace in a drain, so the poll times out at its
//   deadline, before the cancel point; exit 0 and the final bars are in Kafka. (With the
//   grace, it ran to the cancel point, 2.25 s, Kafka's drain got a deadline already past, the
//   final bars were purged and the exit was 3.)
// - A poll held to the cancel point (its timeout longer than the budget): Kafka still has the
//   rest of the budget less the files' reserve; exit 0, everything in Kafka.
// - A disk that stops answering (fsync hangs, LD_PRELOAD shim) with healthy brokers: exit 3
//   within the budget, and the drain line says which sink was late: `sink_closed` (the files)
//   false, `kafka.in_time` true, every record in Kafka.
#include "e2e_support.hpp"
#include "scoped_env.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <optional>
#include <set>
#include <thread>

using namespace std::chrono_literals;
using harness::DaemonConfig;
using harness::TempDir;
using kafka_e2e::distinct_values;
using kafka_e2e::kafka_section;
using kafka_e2e::polling;
using kafka_e2e::Mock;
using mdagg::kafka_test::read_topic;
using Clock = std::chrono::steady_clock;

namespace {

// A second source beside the harness's: STOCK_40, which the simulator never answers.
std::string hung_source(int port, const std::string& interval, const std::string& timeout) {
    std::string s = "  - name: slow\n    url: \"http://127.0.0.1:";
    s.append(std::to_string(port))
        .append("/quotes/{symbol}\"\n    interval: ")
        .append(interval)
        .append("\n    timeout: ")
        .append(timeout)
        .append("\n    symbols: [STOCK_40]\n"
                "    fields: { symbol: /symbol, bid: /bidPrice, ask: /askPrice, bid_size: /bidQty, ask_size: /askQty,\n"
                "              exchange_time: { pointer: /time, unit: ms }, seq: /seq }\n");
    return s;
}

// The sink with a long linger: a record produced in the drain (the final bars) waits for the
// linger unless the drain's flush sends it, so a drain that gives Kafka no time loses it for
// sure, not only when the stages happened to take longer than a short linger.
std::string slow_linger_kafka(const std::string& bootstraps) {
    std::string section = kafka_section(bootstraps);
    const std::string from = "linger: 5ms", to = "linger: 300ms";
    const auto at = section.find(from);
    EXPECT_NE(at, std::string::npos) << section;
    if (at != std::string::npos) section.replace(at, from.size(), to);
    return section;
}

// SIGTERM just after the simulator took a request for the hung symbol (`fresh`: a new one, so
// that poll has almost all of its timeout left; else any, for a poll that outlasts the budget
// whenever the signal comes).
void sigterm_after_a_hung_request(harness::Process& daemon, int sim_port, bool fresh) {
    auto hung_seen = [&] { return harness::sim_stats(sim_port).value("hung_requests", std::uint64_t{0}); };
    const auto before = fresh ? hung_seen() : 0;
    const auto until = Clock::now() + 15s;
    while (hung_seen() == before && Clock::now() < until) std::this_thread::sleep_for(2ms);
    ASSERT_GT(hung_seen(), before) << "the slow source never polled";
    daemon.signal(SIGTERM);
}

// Every record the files hold is in Kafka once: quotes by (symbol, seq), bars and stale marks
// by count, and the drain line's delivered count is all of them.
void expect_everything_in_kafka(const Mock& mock, const harness::Process& daemon, const harness::Output& files,
                                const nlohmann::json& kafka) {
    const auto quotes = read_topic(mock.bootstraps, "md.quotes");
    const auto bars = read_topic(mock.bootstraps, "md.bars");
    const auto events = read_topic(mock.bootstraps, "md.events");
    const auto check = kafka_e2e::check_quotes(quotes.messages, files);
    const std::string why = kafka_e2e::describe(quotes, check) + kafka_e2e::kafka_lines(daemon);
    ASSERT_TRUE(quotes.complete && bars.complete && events.complete) << why;
    EXPECT_EQ(check.missing, 0u) << why;
    EXPECT_EQ(check.unknown, 0u) << why;
    EXPECT_EQ(check.duplicates, 0u) << why;
    EXPECT_EQ(check.reordered, 0u) << why;
    EXPECT_GT(files.bars, 0u) << "the final bars were written";
    EXPECT_EQ(distinct_values(bars), files.bars) << "the final bars are in Kafka: " << why;
    EXPECT_EQ(distinct_values(events), files.stale_marks) << why;
    EXPECT_EQ(kafka["delivered"].get<std::size_t>(), files.quotes + files.bars + files.stale_marks) << why;
    EXPECT_EQ(kafka["undelivered"].get<std::size_t>(), 0u) << why;
    EXPECT_EQ(kafka["dropped"].get<std::size_t>(), 0u) << why;
    EXPECT_EQ(kafka["in_time"], true) << why;
}

}  // namespace

TEST(KafkaE2EDrain, AHungPollAtSigtermGetsNoLateGraceAndTheFinalBarsReachKafka) {
    TempDir dir;
    Mock mock(dir);
    ASSERT_FALSE(mock.bootstraps.empty()) << mock.process->stderr_text();
    auto sim = harness::start_sim(dir.path(), {"--symbols", "41", "--hung", "STOCK_40"});
    // STOCK_0..39 answer; 3 s, the default grace: in-flight polls are cancelled at 2.25 s.
    DaemonConfig c = polling(sim, 40, "3s");
    c.bar_interval = "30s";  // the bars are the final ones, emitted in the drain
    // With the grace the hung poll would last 3 s (1.5 s + min(timeout, interval)).
    c.extra = hung_source(sim.port, "2s", "1500ms") + slow_linger_kafka(mock.bootstraps);
    auto daemon = harness::start_daemon(dir, harness::write_config(dir.path(), c));
    ASSERT_TRUE(daemon->wait_for_line("msg", "kafka connected", 10s)) << daemon->stdout_text() << daemon->stderr_text();
    std::this_thread::sleep_for(1500ms);  // some bars to close, some quotes in Kafka
    ASSERT_NO_FATAL_FAILURE(sigterm_after_a_hung_request(*daemon, sim.port, true));
    const auto code = daemon->wait(10s);
    ASSERT_TRUE(code) << "mdagg did not exit";
    EXPECT_EQ(*code, 0) << kafka_e2e::kafka_lines(*daemon);

    const auto drained = harness::find_log(*daemon, "drain complete");
    ASSERT_TRUE(drained) << kafka_e2e::kafka_lines(*daemon);
    // The hung poll timed out at its own deadline, before the cancel point: nothing to cancel.
    EXPECT_EQ((*drained)["polls_cancelled_by_drain"].get<int>(), 0) << drained->dump();
    EXPECT_GE((*drained)["polls_timed_out"].get<int>(), 1) << drained->dump();
    const auto files = harness::check_output(dir);
    EXPECT_EQ(harness::sim_stats(sim.port)["responses"].get<std::size_t>(), files.quotes);
    expect_everything_in_kafka(mock, *daemon, files, (*drained)["kafka"]);
}

TEST(KafkaE2EDrain, APollHeldToTheCancelPointLeavesKafkaTheRestOfTheBudget) {
    TempDir dir;
    Mock mock(dir);
    ASSERT_FALSE(mock.bootstraps.empty()) << mock.process->stderr_text();
    auto sim = harness::start_sim(dir.path(), {"--symbols", "41", "--hung", "STOCK_40"});
    DaemonConfig c = polling(sim, 40, "2s");  // cancel point 1.5 s, give_up_at 1.75 s
    c.bar_interval = "30s";  // the bars are the final ones, emitted in the drain
    c.extra = hung_source(sim.port, "5s", "5s") + slow_linger_kafka(mock.bootstraps);
    auto daemon = harness::start_daemon(dir, harness::write_config(dir.path(), c));
    ASSERT_TRUE(daemon->wait_for_line("msg", "kafka connected", 10s)) << daemon->stdout_text() << daemon->stderr_text();
    // The hung poll lasts 10 s (5 s and a 5 s grace), the next one starts at once: a poll is in
    // flight whenever the signal comes, and outlasts the budget.
    std::this_thread::sleep_for(1500ms);
    ASSERT_NO_FATAL_FAILURE(sigterm_after_a_hung_request(*daemon, sim.port, false));
    const auto code = daemon->wait(10s);
    ASSERT_TRUE(code) << "mdagg did not exit";
    EXPECT_EQ(*code, 0) << kafka_e2e::kafka_lines(*daemon);

    const auto drained = harness::find_log(*daemon, "drain complete");
    ASSERT_TRUE(drained) << kafka_e2e::kafka_lines(*daemon);
    EXPECT_GE((*drained)["polls_cancelled_by_drain"].get<int>(), 1) << "the hung poll held stage 2 to the cancel point";
    EXPECT_GE((*drained)["stages"]["in_flight_ms"].get<double>(), 1000.0) << drained->dump();
    const auto files = harness::check_output(dir);
    EXPECT_EQ(harness::sim_stats(sim.port)["responses"].get<std::size_t>(), files.quotes);
    expect_everything_in_kafka(mock, *daemon, files, (*drained)["kafka"]);
}

// The budget running out is still exit 3, and the drain line names the late sink: here the
// files (their fsync never returns), while Kafka delivered everything in its time.
TEST(KafkaE2EDrain, AHungDiskIsExitThreeAndTheLineSaysTheFilesNotKafkaWereLate) {
    TempDir dir;
    Mock mock(dir);
    ASSERT_FALSE(mock.bootstraps.empty()) << mock.process->stderr_text();
    auto sim = harness::start_sim(dir.path(), {"--symbols", "20"});
    DaemonConfig c = polling(sim, 20, "3s");
    c.extra = kafka_section(mock.bootstraps);
    const auto flag = dir / "disk-hangs";
    std::unique_ptr<harness::Process> daemon;
    {
        harness::ScopedPreload shim(MDAGG_HANG_FSYNC_SHIM);
        harness::ScopedEnv flag_env("MDAGG_TEST_HANG_FSYNC_FILE", flag.string());
        daemon = harness::start_daemon(dir, harness::write_config(dir.path(), c));
    }
    ASSERT_TRUE(daemon->wait_for_line("msg", "kafka connected", 10s)) << daemon->stdout_text() << daemon->stderr_text();
    ASSERT_TRUE(daemon->wait_for_line("msg", "summary", 15s)) << daemon->stdout_text();
    std::ofstream(flag) << "hang\n";
    std::this_thread::sleep_for(500ms);  // a flush is stuck in fdatasync now
    const auto t0 = Clock::now();
    daemon->signal(SIGTERM);
    const auto code = daemon->wait(10s);
    const auto took = Clock::now() - t0;
    std::filesystem::remove(flag);
    ASSERT_TRUE(code) << "mdagg hung with its disk";
    EXPECT_EQ(*code, 3) << kafka_e2e::kafka_lines(*daemon);
    EXPECT_LT(took, 3s + 3s) << "within the budget and the watchdog's slack (a loaded machine reaps late)";

    const auto drained = harness::find_log(*daemon, "drain incomplete: budget exceeded or forced");
    ASSERT_TRUE(drained) << kafka_e2e::kafka_lines(*daemon);
    EXPECT_EQ((*drained)["exit_code"], 3);
    EXPECT_EQ((*drained)["emergency"], false) << "no second signal was sent";
    EXPECT_EQ((*drained)["sink_closed"], false) << "the files were late: " << drained->dump();
    const auto& k = (*drained)["kafka"];
    ASSERT_TRUE(k.is_object()) << drained->dump();
    EXPECT_EQ(k["in_time"], true) << "Kafka was not: " << drained->dump();
    EXPECT_EQ(k["undelivered"].get<std::size_t>(), 0u);
    EXPECT_EQ(k["dropped"].get<std::size_t>(), 0u);
    // Every quote the simulator served reached Kafka, though the files could not keep them.
    const auto quotes = read_topic(mock.bootstraps, "md.quotes");
    const auto bars = read_topic(mock.bootstraps, "md.bars");
    const auto events = read_topic(mock.bootstraps, "md.events");
    ASSERT_TRUE(quotes.complete && bars.complete && events.complete) << kafka_e2e::kafka_lines(*daemon);
    EXPECT_EQ(distinct_values(quotes), harness::sim_stats(sim.port)["responses"].get<std::size_t>());
    EXPECT_EQ(distinct_values(quotes) + distinct_values(bars) + distinct_values(events), k["delivered"].get<std::size_t>());
}

// KafkaSink against librdkafka's mock cluster in this process: records arrive as the file's
// lines with key, headers and timestamp; the buffer bound drops exactly while brokers are
// down; the drain with every broker down ends in its budget and counts what it gave up.
#include "sink_test_support.hpp"

#include <mdagg/kafka.hpp>

#include <gtest/gtest.h>

#include <functional>

namespace mdagg {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using kafka_test::MockCluster;

using kafka_test::eventually;
using kafka_test::options_for;
using kafka_test::quote;
using kafka_test::test_universe;

// The value of a record: the file line without its '\n'.
std::string line_of(const Universe& u, const Quote& q) {
    RecordFormatter f(u);
    std::string line;
    f.quote_json(line, q);
    line.pop_back();
    return line;
}

TEST(KafkaSink, DeliversTheFileLinesKeyedBySymbolWithHeadersAndReceiveTime) {
    MockCluster cluster(3);
    for (const char* topic : {"md.quotes", "md.bars", "md.events"}) cluster.create_topic(topic, 4, 3);
    const Universe u = test_universe();
    KafkaSink sink(u, options_for(cluster));
    sink.open();
    const std::int64_t now_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    const Quote q = quote(1, 42, now_ns);
    sink.on_quote(q);
    Bar bar;
    bar.symbol = 0;
    bar.start_ns = now_ns - 1'000'000'000;
    bar.end_ns = now_ns;
    bar.open = bar.high = bar.low = bar.close = *Decimal::parse("1.5");
    sink.on_bar(bar);
    StaleMark mark{0, 1, true, now_ns - 500'000'000, now_ns};
    sink.on_stale(mark);
    ASSERT_TRUE(eventually([&] { return sink.stats().delivered == 3; })) << sink.stats().failed;

    const auto quotes = kafka_test::read_topic(cluster.bootstraps(), "md.quotes").messages;
    ASSERT_EQ(quotes.size(), 1u);
    EXPECT_EQ(quotes[0].key, "MSFT");
    EXPECT_EQ(quotes[0].value, line_of(u, q));
    EXPECT_EQ(quotes[0].timestamp_ms, q.receive_time_ns / 1'000'000);
    EXPECT_EQ(quotes[0].headers, (std::map<std::string, std::string>{{"type", "quote"}, {"source", "sim"}}));
    const auto bars = kafka_test::read_topic(cluster.bootstraps(), "md.bars").messages;
    ASSERT_EQ(bars.size(), 1u);
    EXPECT_EQ(bars[0].key, "AAPL");
    EXPECT_EQ(bars[0].headers, (std::map<std::string, std::string>{{"type", "bar"}}));
    EXPECT_EQ(bars[0].timestamp_ms, bar.end_ns / 1'000'000);
    const auto events = kafka_test::read_topic(cluster.bootstraps(), "md.events").messages;
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].headers, (std::map<std::string, std::string>{{"type", "stale"}, {"source", "venue-b"}}));

    const KafkaStats s = sink.stats();
    EXPECT_EQ(s.produced, 3u);
    EXPECT_EQ(s.quotes.delivered, 1u);
    EXPECT_EQ(s.bars.delivered, 1u);
    EXPECT_EQ(s.events.delivered, 1u);
    EXPECT_EQ(s.queued_records, 0u);
    EXPECT_EQ(s.queued_bytes, 0u);
    EXPECT_EQ(s.delivery_latency.total, 3u);
    // Receive time to delivery report: milliseconds here, never the wall clock's epoch.
    EXPECT_LT(s.delivery_latency.quantile(1.0), 20s);
    EXPECT_TRUE(eventually([&] { return sink.stats().connected; }));
    const KafkaDrainOutcome out = sink.drain(Clock::now() + 2s);
    EXPECT_TRUE(out.in_time);
    EXPECT_EQ(out.delivered, 3u);
    EXPECT_EQ(out.undelivered, 0u);
}

TEST(KafkaSink, AStreamWithoutATopicIsNotSent) {
    MockCluster cluster(1);
    cluster.create_topic("md.quotes", 1, 1);
    const Universe u = test_universe();
    KafkaSinkOptions o = options_for(cluster);
    o.bars_topic.clear();
    o.events_topic.clear();
    KafkaSink sink(u, o);
    sink.open();
    sink.on_bar(Bar{});
    sink.on_stale(StaleMark{});
    sink.on_quote(quote(0, 1));
    ASSERT_TRUE(eventually([&] { return sink.stats().delivered == 1; }));
    const KafkaStats s = sink.stats();
    EXPECT_EQ(s.produced, 1u);
    EXPECT_EQ(s.records_dropped(), 0u);
}

// Every broker down from the start: records queue up to max_buffer_bytes (key + value bytes),
// the rest drop and are counted one by one; when the brokers come back, every record that was
// accepted is delivered, in seq order per key.
TEST(KafkaSink, OverflowWhileEveryBrokerIsDownDropsExactlyAndDeliversTheRestLater) {
    MockCluster cluster(3);
    cluster.create_topic("md.quotes", 4, 3);
    cluster.set_down(-1);
    const Universe u = test_universe();
    const std::size_t record = line_of(u, quote(0, 100)).size() + u.symbols[0].size();
    KafkaSinkOptions o = options_for(cluster);
    o.max_buffer_bytes = record * 10 + record / 2;  // room for exactly 10
    KafkaSink sink(u, o);
    sink.open();
    for (int i = 0; i < 25; ++i) sink.on_quote(quote(0, 100 + i));  // seqs of equal width: equal sizes
    KafkaStats s = sink.stats();
    EXPECT_EQ(s.produced, 10u);
    EXPECT_EQ(s.dropped_buffer_full, 15u);
    EXPECT_EQ(s.records_dropped(), 15u);
    EXPECT_EQ(s.queued_records, 10u);
    EXPECT_EQ(s.queued_bytes, 10 * record);
    EXPECT_EQ(s.delivered, 0u);
    EXPECT_TRUE(eventually([&] { return sink.stats().outages == 1; })) << "the outage is noticed";
    EXPECT_FALSE(sink.stats().connected);

    cluster.set_up(-1);
    ASSERT_TRUE(eventually([&] { return sink.stats().delivered == 10; })) << sink.stats().failed;
    EXPECT_TRUE(eventually([&] { return sink.stats().connected; }));
    s = sink.stats();
    EXPECT_EQ(s.failed, 0u);
    EXPECT_EQ(s.queued_bytes, 0u);
    EXPECT_EQ(s.outages, 1u);
    // Room again: the next record is accepted.
    sink.on_quote(quote(0, 200));
    EXPECT_EQ(sink.stats().produced, 11u);
    ASSERT_TRUE(eventually([&] { return sink.stats().delivered == 11; }));
    const auto got = kafka_test::read_topic(cluster.bootstraps(), "md.quotes").messages;
    ASSERT_EQ(got.size(), 11u);
    for (std::size_t i = 0; i < 10; ++i) EXPECT_EQ(got[i].value, line_of(u, quote(0, 100 + static_cast<int>(i))));
    EXPECT_EQ(got[10].value, line_of(u, quote(0, 200)));
}

// block: the first record past the bound waits overflow_wait, then drops; after that the sink
// sheds without waiting until deliveries have freed half the bound.
TEST(KafkaSink, BlockWaitsOnceThenShedsUntilHalfTheBoundIsFree) {
    MockCluster cluster(1);
    cluster.create_topic("md.quotes", 1, 1);
    cluster.set_down(-1);
    const Universe u = test_universe();
    const std::size_t record = line_of(u, quote(0, 100)).size() + u.symbols[0].size();
    KafkaSinkOptions o = options_for(cluster);
    o.max_buffer_bytes = record * 4;
    o.overflow = OverflowPolicy::block;
    o.overflow_wait = 20ms;
    KafkaSink sink(u, o);
    sink.open();
    for (int i = 0; i < 14; ++i) sink.on_quote(quote(0, 100 + i));
    KafkaStats s = sink.stats();
    EXPECT_EQ(s.produced, 4u);
    EXPECT_EQ(s.dropped_buffer_full, 10u);
    EXPECT_EQ(s.overflow_waits, 1u);
    cluster.set_up(-1);
    ASSERT_TRUE(eventually([&] { return sink.stats().delivered == 4; }));
    sink.on_quote(quote(0, 300));
    s = sink.stats();
    EXPECT_EQ(s.produced, 5u);
    EXPECT_EQ(s.overflow_waits, 1u);
}

// The drain's budget holds with every broker down: it purges what is left at the deadline
// and counts it as undelivered, exactly.
TEST(KafkaSink, DrainWithEveryBrokerDownEndsInItsBudgetAndCountsTheUndelivered) {
    kafka_test::StrandedSink stranded;
    ASSERT_NO_FATAL_FAILURE(stranded.strand(20));
    KafkaSink& sink = *stranded.sink;

    const auto started = Clock::now();
    const KafkaDrainOutcome out = sink.drain(started + 1s);
    const auto took = Clock::now() - started;
    EXPECT_LE(took, 1s + 200ms);
    EXPECT_TRUE(out.in_time);
    EXPECT_EQ(out.delivered, 1u);
    EXPECT_EQ(out.undelivered, 20u);
    const KafkaStats s = sink.stats();
    EXPECT_EQ(s.failed, 20u);
    EXPECT_EQ(s.queued_records, 0u);
    EXPECT_EQ(s.queued_bytes, 0u);
    // After the drain nothing more is taken, and that is counted too.
    sink.on_quote(quote(0, 2));
    EXPECT_EQ(sink.stats().dropped_closed, 1u);
    const auto close_started = Clock::now();
    sink.close();
    EXPECT_LE(Clock::now() - close_started, 3s);
}

TEST(KafkaSink, OutageAndRecoveryAreOneEpisode) {
    MockCluster cluster(3);
    cluster.create_topic("md.quotes", 2, 3);
    const Universe u = test_universe();
    KafkaSink sink(u, options_for(cluster));
    sink.open();
    ASSERT_TRUE(eventually([&] { return sink.stats().connected; }));
    EXPECT_EQ(sink.stats().outages, 0u);
    cluster.set_down(-1);
    ASSERT_TRUE(eventually([&] { return !sink.stats().connected; }));
    sink.on_quote(quote(0, 1));
    cluster.set_up(-1);
    ASSERT_TRUE(eventually([&] { return sink.stats().connected && sink.stats().delivered == 1; }));
    EXPECT_EQ(sink.stats().outages, 1u);
}

// A setting librdkafka refuses only when the producer is built: the error never carries a
// property's value (it may be a secret).
TEST(KafkaSink, ARefusedSettingNeverShowsAPropertyValue) {
    const Universe u = test_universe();
    KafkaSinkOptions o;
    o.brokers = "127.0.0.1:1";
    o.quotes_topic = "q";
    o.properties = {{"security.protocol", "SASL_PLAINTEXT"}, {"sasl.mechanism", "hunter2-mechanism"}};
    KafkaSink sink(u, o);
    try {
        sink.open();
        FAIL() << "an unsupported SASL mechanism is refused";
    } catch (const std::runtime_error& e) {
        const std::string what = e.what();
        EXPECT_EQ(what.find("hunter2"), std::string::npos) << what;
        EXPECT_NE(what.find("kafka: "), std::string::npos) << what;
    }
}

TEST(FanOutSink, HandsEveryRecordToEachSinkInOrder) {
    struct Recorder final : RecordSink {
        std::vector<std::string>* log;
        std::string name;
        Recorder(std::vector<std::string>* l, std::string n) : log(l), name(std::move(n)) {}
        void on_quote(const Quote&) override { log->push_back(name + ":quote"); }
        void on_bar(const Bar&) override { log->push_back(name + ":bar"); }
        void on_stale(const StaleMark&) override { log->push_back(name + ":stale"); }
    };
    std::vector<std::string> log;
    Recorder a(&log, "file"), b(&log, "kafka");
    FanOutSink fan{&a, &b};
    fan.on_quote(Quote{});
    fan.on_bar(Bar{});
    fan.on_stale(StaleMark{});
    EXPECT_EQ(log, (std::vector<std::string>{"file:quote", "kafka:quote", "file:bar", "kafka:bar", "file:stale",
                                             "kafka:stale"}));
}

}  // namespace
}  // namespace mdagg

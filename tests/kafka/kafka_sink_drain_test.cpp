// KafkaSink's drain when the drain's earlier stages used up its time (in-flight polls held
// until the cancel point): the deadline it gets is already past. Nothing left is no loss and
// in time, as the files would be; records left are late (the budget ran out on them) and are
// all counted, delivered + undelivered = accepted, while the poll thread still serves the
// purge's reports.
#include "mock_cluster.hpp"

#include <mdagg/kafka.hpp>

#include <gtest/gtest.h>

#include <functional>
#include <thread>

namespace mdagg {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using kafka_test::MockCluster;

Universe test_universe() {
    Universe u;
    u.sources = {"sim"};
    u.symbols = {"AAPL", "MSFT"};
    return u;
}

Quote quote(SymbolId symbol, std::int64_t seq) {
    Quote q;
    q.source = 0;
    q.symbol = symbol;
    q.bid = *Decimal::parse("100.25");
    q.ask = *Decimal::parse("100.50");
    q.receive_time_ns = 1'700'000'000'123'000'000;
    q.seq = seq;
    return q;
}

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = 20s) {
    const auto until = Clock::now() + limit;
    while (!done()) {
        if (Clock::now() > until) return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

KafkaSinkOptions options_for(const MockCluster& cluster) {
    KafkaSinkOptions o;
    o.brokers = cluster.bootstraps();
    o.quotes_topic = "md.quotes";
    o.linger = 1ms;
    o.properties = {{"message.timeout.ms", "120000"}, {"reconnect.backoff.max.ms", "200"}};
    return o;
}

TEST(KafkaSinkDrain, PastItsDeadlineWithNothingLeftIsInTime) {
    MockCluster cluster(3);
    cluster.create_topic("md.quotes", 4, 3);
    const Universe u = test_universe();
    KafkaSink sink(u, options_for(cluster));
    sink.open();
    for (int i = 0; i < 3; ++i) sink.on_quote(quote(0, i));
    ASSERT_TRUE(eventually([&] { return sink.stats().delivered == 3; }));

    const KafkaDrainOutcome out = sink.drain(Clock::now() - 1s);
    EXPECT_TRUE(out.in_time) << "the deadline cut nothing off";
    EXPECT_EQ(out.delivered, 3u);
    EXPECT_EQ(out.undelivered, 0u);
}

TEST(KafkaSinkDrain, PastItsDeadlineWithRecordsLeftIsLateAndCountsEveryOne) {
    MockCluster cluster(3);
    cluster.create_topic("md.quotes", 4, 3);
    const Universe u = test_universe();
    KafkaSink sink(u, options_for(cluster));
    sink.open();
    sink.on_quote(quote(0, 1));
    ASSERT_TRUE(eventually([&] { return sink.stats().delivered == 1; }));
    cluster.set_down(-1);
    for (int i = 0; i < 50; ++i) sink.on_quote(quote(1, 100 + i));
    ASSERT_EQ(sink.stats().produced, 51u);

    const KafkaDrainOutcome out = sink.drain(Clock::now() - 1ms);
    EXPECT_FALSE(out.in_time) << "the deadline cut 50 records off";
    EXPECT_EQ(out.delivered, 1u);
    EXPECT_EQ(out.undelivered, 50u) << "every record accepted and not delivered, whatever the poll thread served meanwhile";
    // The purge's reports turn every one of them into a failed record, none delivered.
    EXPECT_TRUE(eventually([&] { return sink.stats().queued_records == 0; }));
    const KafkaStats s = sink.stats();
    EXPECT_EQ(s.failed, 50u);
    EXPECT_EQ(s.delivered, 1u);
    EXPECT_EQ(s.queued_bytes, 0u);
    sink.close();
}

}  // namespace
}  // namespace mdagg

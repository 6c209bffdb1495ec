// KafkaSink's drain when the drain's earlier stages used up its time (in-flight polls held
// until the cancel point): the deadline it gets is already past. Nothing left is no loss and
// in time, as the files would be; records left are late (the budget ran out on them) and are
// all counted, delivered + undelivered = accepted, while the poll thread still serves the
// purge's reports.
#include "sink_test_support.hpp"

#include <mdagg/kafka.hpp>

#include <gtest/gtest.h>

#include <functional>
#include <thread>

namespace mdagg {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using kafka_test::MockCluster;

using kafka_test::eventually;
using kafka_test::options_for;
using kafka_test::quote;
using kafka_test::test_universe;

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
    kafka_test::StrandedSink stranded;
    ASSERT_NO_FATAL_FAILURE(stranded.strand(50));
    KafkaSink& sink = *stranded.sink;

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

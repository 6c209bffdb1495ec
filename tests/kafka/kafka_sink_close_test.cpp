// KafkaSink::close(deadline) against a producer whose rd_kafka_destroy does not return (this
// binary interposes rd_kafka_destroy: the sink's calls bind to the definition below, which
// holds while `hold_destroy` is set, then calls librdkafka's). The close returns by its
// deadline, says the producer was left behind and counts it; the left thread finishes later
// without touching freed memory (the sink is destroyed meanwhile).
#include "sink_test_support.hpp"

#include <mdagg/kafka.hpp>

#include <librdkafka/rdkafka.h>

#include <gtest/gtest.h>

#include <atomic>
#include <dlfcn.h>
#include <thread>

namespace {

std::atomic<bool> hold_destroy{false};
std::atomic<int> destroys_started{0}, destroys_done{0};

}  // namespace

extern "C" void rd_kafka_destroy(rd_kafka_t* rk) {
    static const auto real = reinterpret_cast<void (*)(rd_kafka_t*)>(::dlsym(RTLD_NEXT, "rd_kafka_destroy"));
    destroys_started.fetch_add(1);
    while (hold_destroy.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    real(rk);
    destroys_done.fetch_add(1);
}

namespace mdagg {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using kafka_test::eventually;
using kafka_test::MockCluster;
using kafka_test::options_for;
using kafka_test::quote;
using kafka_test::test_universe;

TEST(KafkaSinkClose, AProducerThatStopsInTimeIsDestroyedAndNotCounted) {
    MockCluster cluster(1);
    cluster.create_topic("md.quotes", 1, 1);
    const Universe u = test_universe();
    KafkaSink sink(u, options_for(cluster));
    sink.open();
    sink.on_quote(quote(0, 1));
    ASSERT_TRUE(eventually([&] { return sink.stats().delivered == 1; }));
    const int done_before = destroys_done.load();
    const auto abandoned_before = KafkaSink::producers_abandoned();
    EXPECT_TRUE(sink.close(Clock::now() + 20s));
    EXPECT_EQ(destroys_done.load(), done_before + 1) << "destroyed before close returned";
    EXPECT_EQ(KafkaSink::producers_abandoned(), abandoned_before);
    EXPECT_TRUE(sink.close(Clock::now())) << "a second close has nothing to do";
}

TEST(KafkaSinkClose, AHungDestroyIsLeftBehindAtTheDeadlineAndCounted) {
    MockCluster cluster(1);
    cluster.create_topic("md.quotes", 1, 1);
    const int started_before = destroys_started.load(), done_before = destroys_done.load();
    const auto abandoned_before = KafkaSink::producers_abandoned();
    {
        const Universe u = test_universe();
        KafkaSink sink(u, options_for(cluster));
        sink.open();
        sink.on_quote(quote(0, 1));
        ASSERT_TRUE(eventually([&] { return sink.stats().delivered == 1; }));
        hold_destroy.store(true);
        EXPECT_FALSE(sink.close(Clock::now() + 100ms)) << "the close gives up at its deadline";
        // The destroy thread may not have been scheduled by the deadline on a loaded machine.
        EXPECT_TRUE(eventually([&] { return destroys_started.load() == started_before + 1; }))
            << "rd_kafka_destroy was called";
        EXPECT_EQ(destroys_done.load(), done_before) << "and has not returned";
        EXPECT_EQ(KafkaSink::producers_abandoned(), abandoned_before + 1);
        EXPECT_EQ(sink.stats().delivered, 1u) << "the counts stay readable";
    }  // the sink is gone; its producer's thread still runs
    hold_destroy.store(false);
    EXPECT_TRUE(eventually([&] { return destroys_done.load() == done_before + 1; }))
        << "the left thread finishes the destroy once librdkafka returns";
}

}  // namespace
}  // namespace mdagg

#pragma once
// What the KafkaSink unit tests share: a universe, a quote, a wait, the sink's options against
// an in-process mock cluster.
#include "mock_cluster.hpp"

#include <gtest/gtest.h>

#include <mdagg/kafka.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <thread>

namespace mdagg::kafka_test {

using namespace std::chrono_literals;

inline Universe test_universe() {
    Universe u;
    u.sources = {"sim", "venue-b"};
    u.symbols = {"AAPL", "MSFT"};
    return u;
}

inline Quote quote(SymbolId symbol, std::int64_t seq, std::int64_t receive_ns = 1'700'000'000'123'000'000) {
    Quote q;
    q.source = 0;
    q.symbol = symbol;
    q.bid = *Decimal::parse("100.25");
    q.ask = *Decimal::parse("100.50");
    q.receive_time_ns = receive_ns;
    q.seq = seq;
    return q;
}

inline bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = 20s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

inline KafkaSinkOptions options_for(const MockCluster& cluster) {
    KafkaSinkOptions o;
    o.brokers = cluster.bootstraps();
    o.quotes_topic = "md.quotes";
    o.bars_topic = "md.bars";
    o.events_topic = "md.events";
    o.linger = 1ms;
    // Records wait through a whole test's outage instead of timing out.
    o.properties = {{"message.timeout.ms", "120000"}, {"reconnect.backoff.max.ms", "200"}};
    return o;
}

// The drain tests' start: a sink on a 3-broker cluster (md.quotes, 4 partitions) that
// delivered one record, then every broker down and `queued` more records waiting for them.
struct StrandedSink {
    MockCluster cluster{3};
    Universe universe = test_universe();
    std::unique_ptr<KafkaSink> sink;

    // Call under ASSERT_NO_FATAL_FAILURE.
    void strand(int queued) {
        cluster.create_topic("md.quotes", 4, 3);
        sink = std::make_unique<KafkaSink>(universe, options_for(cluster));
        sink->open();
        sink->on_quote(quote(0, 1));
        ASSERT_TRUE(eventually([&] { return sink->stats().delivered == 1; }));
        cluster.set_down(-1);
        for (int i = 0; i < queued; ++i) sink->on_quote(quote(1, 100 + i));
        ASSERT_EQ(sink->stats().produced, 1u + static_cast<unsigned>(queued));
    }
};

}  // namespace mdagg::kafka_test

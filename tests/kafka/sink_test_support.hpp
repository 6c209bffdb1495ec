#pragma once
// What the KafkaSink unit tests share: a universe, a quote, a wait, the sink's options against
// an in-process mock cluster.
#include "mock_cluster.hpp"

#include <mdagg/kafka.hpp>

#include <chrono>
#include <functional>
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

}  // namespace mdagg::kafka_test

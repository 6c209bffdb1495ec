// Output to Kafka beside the files, through librdkafka. Records are formatted on the caller's
// thread (the aggregator strand) exactly as a file line and handed to librdkafka, which never
// blocks there; a poll thread of the sink's own serves delivery reports, so the event loop
// never does. What waits for delivery is bounded (max_buffer_bytes), beyond it records drop
// by the overflow policy, counted by cause. An outage never stops the caller: it is logged
// once, reminded at a slow pace, and its recovery logged once.
#pragma once

#include <mdagg/observe.hpp>
#include <mdagg/records.hpp>
#include <mdagg/sink.hpp>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mdagg {

struct KafkaSinkOptions {
    std::string brokers;  // "host:port,host:port"
    // Per stream; an empty topic: the stream is not sent.
    std::string quotes_topic, bars_topic, events_topic;
    std::string acks = "all";  // "all", "1", "0"
    bool idempotence = true;
    std::string compression = "none";  // librdkafka's compression.type
    std::chrono::nanoseconds linger = std::chrono::milliseconds(20);  // config.hpp says why
    // Bound of the keys and values accepted but not yet acknowledged.
    std::size_t max_buffer_bytes = 64 * 1024 * 1024;
    OverflowPolicy overflow = OverflowPolicy::drop_newest;  // drop_newest or block
    // block: the longest a record waits for room. After one such wait times out the sink
    // sheds without waiting until deliveries have freed half the bound.
    std::chrono::nanoseconds overflow_wait = std::chrono::milliseconds(20);
    // Passed to librdkafka after the settings above (kafka.properties, secrets read).
    std::vector<std::pair<std::string, std::string>> properties;
    // While no broker answers: a reminder this often, and a reachability probe every second.
    std::chrono::nanoseconds remind_every = std::chrono::seconds(30);
};

struct KafkaStreamStats {
    std::uint64_t delivered = 0;  // acknowledged by the brokers (per acks)
    std::uint64_t failed = 0;     // accepted, then given up: a delivery error or purged at the drain
};

struct KafkaStats {
    std::uint64_t produced = 0;   // accepted by librdkafka
    std::uint64_t delivered = 0;  // totals over the streams
    std::uint64_t failed = 0;
    // Never accepted, by cause.
    std::uint64_t dropped_buffer_full = 0;    // max_buffer_bytes reached (drop_newest, or block timed out)
    std::uint64_t dropped_queue_full = 0;     // librdkafka's own queue refused it
    std::uint64_t dropped_produce_error = 0;  // any other produce error
    std::uint64_t dropped_closed = 0;         // after stop_intake
    std::uint64_t records_dropped() const noexcept {
        return dropped_buffer_full + dropped_queue_full + dropped_produce_error + dropped_closed;
    }
    std::uint64_t queued_records = 0;  // accepted, no delivery report yet
    std::uint64_t queued_bytes = 0;
    std::uint64_t overflow_waits = 0;  // block policy: records that had to wait for room
    bool connected = false;            // a broker answered lately (false until one has)
    std::uint64_t outages = 0;         // times every broker became unreachable
    KafkaStreamStats quotes, bars, events;
    // Receive time (the message timestamp) to the delivery report.
    LatencyHistogram::Snapshot delivery_latency;
};

// The drain's result, in the shape of the other sinks'.
struct KafkaDrainOutcome {
    // The deadline cut no record off: nothing was left to deliver at it (even at one already
    // past when the drain began), or what was left was purged and counted by then.
    bool in_time = false;
    std::uint64_t delivered = 0;    // since the start
    std::uint64_t undelivered = 0;  // accepted and not delivered: failed, purged, or still queued
};

class KafkaSink final : public RecordSink {
public:
    KafkaSink(const Universe& universe, KafkaSinkOptions options);
    ~KafkaSink() override;  // close() if not done

    // Creates the producer and starts the poll thread. Unreachable brokers are no error (records
    // queue); a setting librdkafka refuses throws std::runtime_error whose message has every
    // property value (any may be a secret) replaced by "***".
    void open();

    // From one strand at a time (the aggregator's), which also owns the Universe. Never block,
    // except the block policy's bounded wait for room.
    void on_quote(const Quote& quote) override;
    void on_bar(const Bar& bar) override;
    void on_stale(const StaleMark& mark) override;

    // Records from now on are dropped (cause closed). Same caller as on_*.
    void stop_intake();
    // Delivers what is queued until `deadline` (linger skipped); what is left then is purged,
    // turning into failed records, so the outcome counts it exactly. Logs delivered and
    // undelivered counts. Implies stop_intake().
    KafkaDrainOutcome drain(std::chrono::steady_clock::time_point deadline);
    // Stops the poll thread and destroys the producer (purging what is left without waiting).
    // rd_kafka_destroy waits for librdkafka's threads with no time limit of its own, so it runs
    // on a thread of its own, waited for until `deadline`: false when it had not returned by
    // then; it is then left running (logged, counted in producers_abandoned()) and keeps what
    // its callbacks use alive. The process should then end without destructors (std::_Exit).
    bool close(std::chrono::steady_clock::time_point deadline);
    void close() { close(std::chrono::steady_clock::now() + std::chrono::seconds(5)); }

    KafkaStats stats() const;
    // Producers of this process whose close gave up waiting for rd_kafka_destroy.
    static std::uint64_t producers_abandoned() noexcept;

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;  // shared with a close's destroy thread, for its callbacks
};

// Hands every record to each of its sinks in order (the file sink, then Kafka): the aggregator
// writes to one RecordSink.
class FanOutSink final : public RecordSink {
public:
    FanOutSink(std::initializer_list<RecordSink*> sinks) : sinks_(sinks) {}
    void on_quote(const Quote& quote) override {
        for (RecordSink* s : sinks_) s->on_quote(quote);
    }
    void on_bar(const Bar& bar) override {
        for (RecordSink* s : sinks_) s->on_bar(bar);
    }
    void on_stale(const StaleMark& mark) override {
        for (RecordSink* s : sinks_) s->on_stale(mark);
    }

private:
    std::vector<RecordSink*> sinks_;
};

}  // namespace mdagg

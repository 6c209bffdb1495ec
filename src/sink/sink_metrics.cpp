#include <mdagg/sink_metrics.hpp>

#include <utility>

namespace mdagg {

namespace {

using Counter = std::uint64_t SinkStats::*;
struct CounterFamily {
    const char* name;
    const char* help;
    Counter field;
};
constexpr CounterFamily counters[] = {
    {"mdagg_sink_segments_closed_total", "Output segments finished (renamed to their final name).",
     &SinkStats::segments_closed},
    {"mdagg_sink_files_repaired_total", "Segments of a crashed run repaired at start-up.", &SinkStats::files_repaired},
    {"mdagg_sink_segments_deleted_total", "Finished segments removed by retention.", &SinkStats::segments_deleted},
    {"mdagg_sink_segments_compressed_total", "Finished segments compressed.", &SinkStats::segments_compressed},
    {"mdagg_sink_compression_errors_total", "Compressions that failed; the segment stays uncompressed.",
     &SinkStats::compression_errors},
    {"mdagg_sink_repair_errors_total",
     "Files named like segments that start-up repair could not handle or refused (not regular files).",
     &SinkStats::repair_errors},
    {"mdagg_sink_segments_unsynced_total",
     "Segments kept as .part because their fdatasync or ftruncate failed; the next start repairs them.",
     &SinkStats::segments_unsynced},
    {"mdagg_sink_records_total", "Records handed to write(2).", &SinkStats::records_written},
    {"mdagg_sink_bytes_total", "Bytes handed to write(2).", &SinkStats::bytes_written},
    {"mdagg_sink_records_dropped_total", "Records dropped because the output buffer was full.",
     &SinkStats::records_dropped},
    {"mdagg_sink_write_errors_total", "Failed writes.", &SinkStats::write_errors},
};

double count(std::uint64_t n) { return static_cast<double>(n); }

// The Kafka sink's drops, by cause, in the file sink's family.
void write_kafka_drops(PrometheusWriter& w, const KafkaStats& k) {
    const std::pair<const char*, std::uint64_t> causes[] = {{"buffer_full", k.dropped_buffer_full},
                                                            {"queue_full", k.dropped_queue_full},
                                                            {"produce_error", k.dropped_produce_error},
                                                            {"closed", k.dropped_closed}};
    for (const auto& [cause, n] : causes)
        w.sample("mdagg_sink_records_dropped_total", {{"sink", "kafka"}, {"cause", cause}}, count(n));
}

// The Kafka sink's own families.
void write_kafka_metrics(PrometheusWriter& w, const KafkaStats& k) {
    w.family("mdagg_sink_connected", "gauge", "1 while a broker of the sink answers (Kafka).");
    w.sample("mdagg_sink_connected", {{"sink", "kafka"}}, k.connected ? 1 : 0);
    w.family("mdagg_sink_outages_total", "counter", "Times every broker of the sink became unreachable (Kafka).");
    w.sample("mdagg_sink_outages_total", {{"sink", "kafka"}}, count(k.outages));
    // Each family's samples right after its own # TYPE line.
    const std::pair<const char*, const KafkaStreamStats*> streams[] = {
        {"quotes", &k.quotes}, {"bars", &k.bars}, {"events", &k.events}};
    w.family("mdagg_sink_records_delivered_total", "counter", "Records the brokers acknowledged, by stream (Kafka).");
    for (const auto& [stream, st] : streams)
        w.sample("mdagg_sink_records_delivered_total", {{"sink", "kafka"}, {"stream", stream}}, count(st->delivered));
    w.family("mdagg_sink_records_failed_total", "counter",
             "Records accepted and then given up (delivery error or purged at the drain), by stream (Kafka).");
    for (const auto& [stream, st] : streams)
        w.sample("mdagg_sink_records_failed_total", {{"sink", "kafka"}, {"stream", stream}}, count(st->failed));
    w.family("mdagg_sink_queued_records", "gauge", "Records accepted and not yet acknowledged (Kafka).");
    w.sample("mdagg_sink_queued_records", {{"sink", "kafka"}}, count(k.queued_records));
    w.family("mdagg_sink_overflow_waits_total", "counter", "block policy: records that waited for room (Kafka).");
    w.sample("mdagg_sink_overflow_waits_total", {{"sink", "kafka"}}, count(k.overflow_waits));
    w.family("mdagg_sink_delivery_latency_seconds", "histogram", "Receive time to delivery report (Kafka).");
    w.histogram("mdagg_sink_delivery_latency_seconds", {{"sink", "kafka"}}, k.delivery_latency);
}

}  // namespace

void write_sink_metrics(PrometheusWriter& w, const SinkStats& sink, const KafkaStats* kafka) {
    w.family("mdagg_sink_disk_fault", "gauge", "1 while writes to the output directory fail.");
    w.sample("mdagg_sink_disk_fault", {}, sink.disk_fault ? 1 : 0);
    w.family("mdagg_sink_queued_bytes", "gauge", "Output not yet written.");
    w.sample("mdagg_sink_queued_bytes", {}, static_cast<double>(sink.queued_bytes));
    if (kafka) w.sample("mdagg_sink_queued_bytes", {{"sink", "kafka"}}, count(kafka->queued_bytes));
    w.family("mdagg_sink_flush_latency_seconds", "gauge", "Write and fdatasync of one flush: the last and the largest.");
    w.sample("mdagg_sink_flush_latency_seconds", {{"which", "last"}}, static_cast<double>(sink.flush_latency_last_us) / 1e6);
    w.sample("mdagg_sink_flush_latency_seconds", {{"which", "max"}}, static_cast<double>(sink.flush_latency_max_us) / 1e6);
    for (const auto& c : counters) {
        w.family(c.name, "counter", c.help);
        w.sample(c.name, {}, static_cast<double>(sink.*c.field));
        if (kafka && c.field == &SinkStats::records_dropped) write_kafka_drops(w, *kafka);
    }
    if (kafka) write_kafka_metrics(w, *kafka);
}

}  // namespace mdagg

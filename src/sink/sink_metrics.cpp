#include <mdagg/sink_metrics.hpp>

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

}  // namespace

void write_sink_metrics(PrometheusWriter& w, const SinkStats& sink) {
    w.family("mdagg_sink_disk_fault", "gauge", "1 while writes to the output directory fail.");
    w.sample("mdagg_sink_disk_fault", {}, sink.disk_fault ? 1 : 0);
    w.family("mdagg_sink_queued_bytes", "gauge", "Output not yet written.");
    w.sample("mdagg_sink_queued_bytes", {}, static_cast<double>(sink.queued_bytes));
    w.family("mdagg_sink_flush_latency_seconds", "gauge", "Write and fdatasync of one flush: the last and the largest.");
    w.sample("mdagg_sink_flush_latency_seconds", {{"which", "last"}}, static_cast<double>(sink.flush_latency_last_us) / 1e6);
    w.sample("mdagg_sink_flush_latency_seconds", {{"which", "max"}}, static_cast<double>(sink.flush_latency_max_us) / 1e6);
    for (const auto& c : counters) {
        w.family(c.name, "counter", c.help);
        w.sample(c.name, {}, static_cast<double>(sink.*c.field));
    }
}

}  // namespace mdagg

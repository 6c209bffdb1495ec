// The sink's families in /metrics.
#include "sink_test_helpers.hpp"

#include <mdagg/sink_metrics.hpp>

namespace mdagg {
namespace {

using namespace sink_test;

TEST(SinkMetrics, EveryFamilyReadsItsOwnField) {
    SinkStats st;
    st.disk_fault = true;
    st.queued_bytes = 11;
    st.flush_latency_last_us = 2'000;
    st.flush_latency_max_us = 500'000;
    st.segments_closed = 1;
    st.files_repaired = 2;
    st.segments_deleted = 3;
    st.segments_compressed = 4;
    st.compression_errors = 5;
    st.repair_errors = 6;
    st.segments_unsynced = 7;
    st.records_written = 8;
    st.bytes_written = 9;
    st.records_dropped = 10;
    st.write_errors = 12;
    std::string out;
    PrometheusWriter w(out);
    write_sink_metrics(w, st);
    const std::vector<std::string> samples{
        "mdagg_sink_disk_fault 1",
        "mdagg_sink_queued_bytes 11",
        "mdagg_sink_flush_latency_seconds{which=\"last\"} 0.002",
        "mdagg_sink_flush_latency_seconds{which=\"max\"} 0.5",
        "mdagg_sink_segments_closed_total 1",
        "mdagg_sink_files_repaired_total 2",
        "mdagg_sink_segments_deleted_total 3",
        "mdagg_sink_segments_compressed_total 4",
        "mdagg_sink_compression_errors_total 5",
        "mdagg_sink_repair_errors_total 6",
        "mdagg_sink_segments_unsynced_total 7",
        "mdagg_sink_records_total 8",
        "mdagg_sink_bytes_total 9",
        "mdagg_sink_records_dropped_total 10",
        "mdagg_sink_write_errors_total 12",
    };
    std::vector<std::string> lines;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);)
        if (line.rfind('#', 0) != 0) lines.push_back(line);
    EXPECT_EQ(lines, samples);  // in this order, nothing else
    EXPECT_NE(out.find("# HELP mdagg_sink_records_dropped_total Records dropped because the output buffer was full.\n"
                       "# TYPE mdagg_sink_records_dropped_total counter\n"),
              std::string::npos);
    EXPECT_NE(out.find("# TYPE mdagg_sink_queued_bytes gauge\n"), std::string::npos);
}

// issue 16: the Kafka sink's series sit in the family they belong to (a family's samples are
// one block after its # TYPE line, as the exposition format requires), each family once.
TEST(SinkMetrics, KafkaSeriesSitInTheirFamiliesEachFamilyOnce) {
    KafkaStats k;
    k.queued_bytes = 21;
    k.dropped_buffer_full = 22;
    k.dropped_closed = 23;
    k.connected = true;
    k.outages = 24;
    k.quotes.delivered = 25;
    k.bars.failed = 26;
    k.queued_records = 27;
    k.overflow_waits = 28;
    std::string out;
    PrometheusWriter w(out);
    write_sink_metrics(w, SinkStats{}, &k);
    // Each sample under the # TYPE line of its own family.
    std::map<std::string, std::vector<std::string>> by_family;
    std::map<std::string, int> types;
    std::string family;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("# TYPE ", 0) == 0) {
            family = line.substr(7, line.find(' ', 7) - 7);
            ++types[family];
        } else if (line.rfind('#', 0) != 0) {
            by_family[family].push_back(line);
        }
    }
    for (const auto& [name, n] : types) EXPECT_EQ(n, 1) << name;
    const auto has = [&](const std::string& f, const std::string& sample) {
        const auto& v = by_family[f];
        return std::find(v.begin(), v.end(), sample) != v.end();
    };
    EXPECT_TRUE(has("mdagg_sink_queued_bytes", "mdagg_sink_queued_bytes 0"));
    EXPECT_TRUE(has("mdagg_sink_queued_bytes", "mdagg_sink_queued_bytes{sink=\"kafka\"} 21"));
    EXPECT_TRUE(has("mdagg_sink_records_dropped_total", "mdagg_sink_records_dropped_total 0"));
    EXPECT_TRUE(has("mdagg_sink_records_dropped_total",
                    "mdagg_sink_records_dropped_total{sink=\"kafka\",cause=\"buffer_full\"} 22"));
    EXPECT_TRUE(has("mdagg_sink_records_dropped_total",
                    "mdagg_sink_records_dropped_total{sink=\"kafka\",cause=\"closed\"} 23"));
    EXPECT_TRUE(has("mdagg_sink_connected", "mdagg_sink_connected{sink=\"kafka\"} 1"));
    EXPECT_TRUE(has("mdagg_sink_outages_total", "mdagg_sink_outages_total{sink=\"kafka\"} 24"));
    EXPECT_TRUE(has("mdagg_sink_records_delivered_total",
                    "mdagg_sink_records_delivered_total{sink=\"kafka\",stream=\"quotes\"} 25"));
    EXPECT_TRUE(has("mdagg_sink_records_failed_total",
                    "mdagg_sink_records_failed_total{sink=\"kafka\",stream=\"bars\"} 26"));
    EXPECT_TRUE(has("mdagg_sink_queued_records", "mdagg_sink_queued_records{sink=\"kafka\"} 27"));
    EXPECT_TRUE(has("mdagg_sink_overflow_waits_total", "mdagg_sink_overflow_waits_total{sink=\"kafka\"} 28"));
    EXPECT_EQ(types.count("mdagg_sink_delivery_latency_seconds"), 1u);
    // Without Kafka: no kafka series at all.
    std::string plain;
    PrometheusWriter pw(plain);
    write_sink_metrics(pw, SinkStats{});
    EXPECT_EQ(plain.find("kafka"), std::string::npos);
}

}  // namespace
}  // namespace mdagg

// The sinks' families in /metrics (mdagg_sink_*), written from one stats read of each: the
// file sink's series unlabelled, the Kafka sink's (issue 16) labelled sink="kafka", in the
// shared families (queued bytes, drops) and in families of its own.
#pragma once

#include <mdagg/kafka.hpp>
#include <mdagg/observe.hpp>
#include <mdagg/sink.hpp>

namespace mdagg {

// `kafka`: null without `kafka:` (no kafka series at all).
void write_sink_metrics(PrometheusWriter& w, const SinkStats& stats, const KafkaStats* kafka = nullptr);

}  // namespace mdagg

// The file sink's families in /metrics (mdagg_sink_*), written from one SinkStats read.
#pragma once

#include <mdagg/metrics.hpp>
#include <mdagg/sink.hpp>

namespace mdagg {

void write_sink_metrics(PrometheusWriter& w, const SinkStats& stats);

}  // namespace mdagg

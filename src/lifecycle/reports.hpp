// Private to lifecycle: the periodic summary line, the heartbeat and the drain line's poll
// totals, all from the poll module's one snapshot of its counters (PollStats).
#pragma once

#include "ops.hpp"

#include <mdagg/aggregate.hpp>
#include <mdagg/poll.hpp>
#include <mdagg/kafka.hpp>
#include <mdagg/observe.hpp>
#include <mdagg/poll_metrics.hpp>
#include <mdagg/sink.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>

namespace mdagg::lifecycle {

// Counts by error class since `since`, only the classes that occurred.
nlohmann::json errors_by_class(const PollErrorCounts& now, const PollErrorCounts& since = {});
// Polls that ran into their late grace, by how they ended; the outcomes that happened only.
nlohmann::json late_answers(const LateAnswerCounts& now, const LateAnswerCounts& since = {});
// Hedged requests (docs/polling.md#hedged-requests): sent, won (by a mirror), refused for
// budget or by every mirror's guard, failed, losers cancelled and discarded; null when none
// was ever wanted.
nlohmann::json hedge_counts(const PollCounters& now, const PollCounters& since = {});
// issue 16: the summary line's "kafka" field; counters since the start, like records_written.
nlohmann::json kafka_summary(const KafkaStats& k);
// Hosts that are paused or whose breaker is not closed; an empty object when all are well.
nlohmann::json hosts_not_healthy(const PollerGroup& pollers);
// {"pending": n, "running": n, ...}: pollers by the state of their latest poll.
nlohmann::json pollers_by_state(const PollerGroup& pollers);

// The "summary" line every log.summary_every, and the heartbeat that stamps the loop
// watchdog and persists server pauses. Both loops run on the control strand.
class Reports {
public:
    // `kafka`: null without `kafka:` (issue 16).
    Reports(const boost::asio::any_io_executor& control, const PollerGroup& pollers, const FileSink& sink,
            const KafkaSink* kafka, const Aggregator& aggregator, Operations& ops, std::optional<HostPauseFile>& host_pauses,
            const std::atomic<bool>& draining, Duration summary_every);

    // Returns once the drain started.
    boost::asio::awaitable<void> summaries();
    boost::asio::awaitable<void> heartbeats();

    // A reload: the summary loop re-arms with the new interval. Control strand.
    void set_summary_every(Duration every);
    // Stops both loops. Control strand.
    void cancel();

private:
    nlohmann::json summary_fields(const PollCounters& now, const PollCounters& prev, double secs) const;

    const PollerGroup& pollers_;
    const FileSink& sink_;
    const KafkaSink* kafka_;
    // issue 16: the delivery latency at the previous summary, for the interval's quantiles.
    mutable LatencyHistogram::Snapshot kafka_latency_prev_;
    const Aggregator& aggregator_;
    Operations& ops_;
    std::optional<HostPauseFile>& host_pauses_;  // emplaced by Daemon::run
    const std::atomic<bool>& draining_;
    boost::asio::steady_timer summary_timer_;
    boost::asio::steady_timer heartbeat_timer_;
    std::int64_t summary_every_ns_;  // control strand only
};

}  // namespace mdagg::lifecycle

#include "output.hpp"

namespace mdagg::lifecycle {

namespace asio = boost::asio;

SinkDrainOutcome FileSinkDrain::drain(StageDeadline deadline) {
    SinkDrainOutcome out;
    out.in_time = closed_in_time_ = sink_.close(deadline.deadline);
    const SinkStats s = sink_.stats();
    out.records_lost = s.records_dropped;
    // Not every record reached the disk (dropped while the disk failed or the queue was full,
    // or refused at close), or a segment is not known to be durable (its fdatasync failed:
    // kept .part). Recovered write errors that lost nothing do not count.
    out.incomplete = s.records_dropped > 0 || s.disk_fault || s.segments_unsynced > 0;
    out.fields = stats();
    return out;
}

nlohmann::json FileSinkDrain::stats() const {
    const SinkStats sink = sink_.stats();
    return {{"records_written", sink.records_written},
            {"bytes_written", sink.bytes_written},
            {"records_dropped", sink.records_dropped},
            {"quotes_written", sink.quotes.records_written},
            {"quotes_dropped", sink.quotes.records_dropped},
            {"write_errors", sink.write_errors},
            {"segments_closed", sink.segments_closed},
            {"segments_unsynced", sink.segments_unsynced},
            {"files_repaired", sink.files_repaired}};
}

void FileSinkDrain::report(nlohmann::json& fields, bool incomplete) const {
    fields.update(stats());
    if (incomplete) fields["sink_closed"] = closed_in_time_;
}

SinkDrainOutcome KafkaSinkDrain::drain(StageDeadline deadline) {
    drained_ = sink_.drain(deadline.cancel_at);
    const std::uint64_t dropped = sink_.stats().records_dropped();
    SinkDrainOutcome out;
    out.in_time = drained_->in_time;
    out.records_lost = drained_->undelivered + dropped;
    out.incomplete = out.records_lost > 0;
    out.fields = stats();
    return out;
}

nlohmann::json KafkaSinkDrain::stats() const {
    if (!drained_) return nlohmann::json::object();
    nlohmann::json kafka{{"delivered", drained_->delivered},
                         {"undelivered", drained_->undelivered},
                         {"dropped", sink_.stats().records_dropped()},
                         {"in_time", drained_->in_time}};
    if (stopped_) kafka["producer_abandoned"] = !*stopped_;
    return {{"kafka", std::move(kafka)}};
}

void Output::flush() {
    for (auto& s : sinks_) s->flush();
}

void Output::stop_intake() {
    for (auto& s : sinks_) s->stop_intake();
}

// One after the other; each has a writer thread of its own, so the files' writer works on
// while an earlier sink drains (the final bars flushed it).
asio::awaitable<StageOutcome> Output::drain(StageDeadline deadline) {
    StageOutcome out;
    for (auto& s : sinks_) {
        const SinkDrainOutcome o = s->drain(deadline);
        out.in_time = out.in_time && o.in_time;
        out.records_lost += o.records_lost;
        out.output_incomplete = out.output_incomplete || o.incomplete;
    }
    co_return out;
}

asio::awaitable<void> Output::close(Clock::time_point deadline) {
    for (auto& s : sinks_) s->close(deadline);
    co_return;
}

// The sinks' counters as they are now (a sink abandoned at its deadline may still count),
// each sink saying for itself whether it was late: `sink_closed` is the files', and Kafka's
// is `kafka.in_time`, so a late Kafka never reads as files left unclosed.
void Output::report(nlohmann::json& fields, bool incomplete) const {
    for (const auto& s : sinks_) s->report(fields, incomplete);
}

}  // namespace mdagg::lifecycle

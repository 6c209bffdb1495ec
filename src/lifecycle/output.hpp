// Private to lifecycle: the Output stage, the sinks the aggregator's records go to. Each sink
// is drained through SinkDrain; the stage drains them all against one deadline.
#pragma once

#include "stage.hpp"

#include <mdagg/kafka.hpp>
#include <mdagg/sink.hpp>

#include <memory>
#include <optional>
#include <vector>

namespace mdagg::lifecycle {

// One sink as the Output stage drains it.
struct SinkDrainOutcome {
    bool in_time = true;             // every record taken in was written (or refused) by the deadline
    std::uint64_t records_lost = 0;  // dropped, refused at close or not delivered
    bool incomplete = false;         // lost records, or output not known to be durable
    nlohmann::json fields = nlohmann::json::object();  // for the drain line, the sink's own keys
};

class SinkDrain {
public:
    virtual ~SinkDrain() = default;
    // Hands what is queued to the sink's writer; every output.flush_every and at the final bars.
    virtual void flush() = 0;
    virtual void stop_intake() = 0;
    // A sink drained before the last one (the files) stops at deadline.cancel_at (the sinks'
    // deadline less the files' reserve) and leaves them the reserve; the last one has until
    // deadline.deadline.
    virtual SinkDrainOutcome drain(StageDeadline deadline) = 0;
    // Releases what the sink holds, waiting for it until `deadline` at most.
    virtual void close(Clock::time_point deadline) = 0;
    // Counters for the drain line (same keys as SinkDrainOutcome::fields).
    virtual nlohmann::json stats() const = 0;
    // Its fields of the drain line: stats(), and on an incomplete drain whether it was late.
    virtual void report(nlohmann::json& fields, bool /*incomplete*/) const { fields.update(stats()); }
};

// The files (FileSink): its close(deadline) writes, fsyncs and renames everything, so drain
// is the whole close and close() has nothing left to do.
class FileSinkDrain final : public SinkDrain {
public:
    explicit FileSinkDrain(FileSink& sink) : sink_(sink) {}
    void flush() override { sink_.flush(); }
    void stop_intake() override {}  // records after close are counted as dropped by the sink
    SinkDrainOutcome drain(StageDeadline deadline) override;
    void close(Clock::time_point) override {}
    nlohmann::json stats() const override;
    // `sink_closed` (the files' close ended by its deadline) on an incomplete drain: the
    // files' own, never Kafka's, which reports `kafka.in_time`.
    void report(nlohmann::json& fields, bool incomplete) const override;

private:
    FileSink& sink_;
    bool closed_in_time_ = true;
};

// issue 16: the Kafka sink, drained before the files: it delivers until deadline.cancel_at
// (the sinks' deadline less the files' reserve, capped after a second signal), so the files
// keep their reserve. Its rule is the files': records still waiting at its deadline and not
// counted by then is exit_drain_timeout; delivered in time but with records undelivered or
// dropped is exit_fatal. Its close stops the producer by the deadline it is given, or leaves
// it to a thread of its own (`kafka.producer_abandoned` in the drain line).
class KafkaSinkDrain final : public SinkDrain {
public:
    explicit KafkaSinkDrain(KafkaSink& sink) : sink_(sink) {}
    void flush() override {}  // librdkafka sends on its own (linger)
    void stop_intake() override { sink_.stop_intake(); }
    SinkDrainOutcome drain(StageDeadline deadline) override;
    void close(Clock::time_point deadline) override { stopped_ = sink_.close(deadline); }
    // {"kafka": {delivered, undelivered, dropped, in_time}} once drained, with
    // producer_abandoned once closed.
    nlohmann::json stats() const override;

private:
    KafkaSink& sink_;
    std::optional<KafkaDrainOutcome> drained_;
    std::optional<bool> stopped_;  // the producer stopped by its close's deadline
};

class Output final : public Stage {
public:
    // Drained in the order added; the files last.
    void add(std::unique_ptr<SinkDrain> sink) { sinks_.push_back(std::move(sink)); }
    // Aggregation strand.
    void flush();

    void start() override {}
    void stop_intake() override;
    boost::asio::awaitable<StageOutcome> drain(StageDeadline deadline) override;
    boost::asio::awaitable<void> close(Clock::time_point deadline) override;
    void report(nlohmann::json& fields, bool incomplete) const override;

private:
    std::vector<std::unique_ptr<SinkDrain>> sinks_;
};

}  // namespace mdagg::lifecycle

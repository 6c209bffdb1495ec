// Private to lifecycle: the shape every stage of the data path has, so that the supervisor
// drains them in order (Ingest, Aggregation, Output) without knowing their insides, in the
// manner of Envoy's drain manager: stages register, time is handed in, tests fake the stages.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>

namespace mdagg::lifecycle {

using Clock = std::chrono::steady_clock;

// When a stage's drain must end: work still running at cancel_at is cancelled, and the stage
// gives up on it at deadline.
struct StageDeadline {
    Clock::time_point cancel_at;
    Clock::time_point deadline;
};

struct StageOutcome {
    bool in_time = true;              // everything taken in finished (or was delivered) in time
    std::uint64_t records_lost = 0;   // output: records dropped or not delivered
    bool output_incomplete = false;   // output: lost records, a disk fault, a segment not durable
};

// start, then on a drain: stop_intake, drain, close; all on the control strand.
class Stage {
public:
    virtual ~Stage() = default;
    virtual void start() = 0;
    // Takes in nothing new from here on.
    virtual void stop_intake() = 0;
    // Finishes or cancels what was taken in.
    virtual boost::asio::awaitable<StageOutcome> drain(StageDeadline deadline) = 0;
    // Releases what the stage holds (sockets, files); returns by `deadline` at the latest.
    virtual boost::asio::awaitable<void> close(Clock::time_point deadline) = 0;
    // A second signal: stop waiting for work in flight.
    virtual void emergency() {}
    // Its fields of the "drain complete"/"drain incomplete" line; `incomplete`: the drain
    // ran out of time or was forced.
    virtual void report(nlohmann::json& fields, bool incomplete) const = 0;
};

}  // namespace mdagg::lifecycle

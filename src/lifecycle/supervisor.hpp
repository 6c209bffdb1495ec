// Private to lifecycle: drains the stages in order (Ingest, Aggregation, Output, then Ingest's
// sockets) on the DrainPlan's timetable, and turns their outcomes into the exit code and the
// "drain complete"/"drain incomplete" line. Time comes from `now`, so tests run it with fake
// stages on simulated time.
#pragma once

#include "drain_plan.hpp"
#include "stage.hpp"

#include <boost/asio/awaitable.hpp>

#include <nlohmann/json.hpp>

#include <functional>

namespace mdagg::lifecycle {

class Supervisor {
public:
    using Now = std::function<Clock::time_point()>;
    Supervisor(Stage& ingest, Stage& aggregation, Stage& output, Now now = [] { return Clock::now(); });

    struct Report {
        int exit_code = 0;
        Clock::duration elapsed{};       // from the signal to the end of the last stage
        std::uint64_t records_lost = 0;  // by the sinks
        nlohmann::json fields;           // of the drain line (logged by drain())
    };
    // Control strand. Logs the drain line before it returns.
    boost::asio::awaitable<Report> drain(const DrainPlan& plan);

    // A second signal: the stages stop waiting for work in flight, the sinks get at most 1 s,
    // and the exit code is exit_drain_timeout. Control strand.
    void emergency();
    bool in_emergency() const noexcept { return emergency_; }

private:
    Stage& ingest_;
    Stage& aggregation_;
    Stage& output_;
    Now now_;
    bool emergency_ = false;
};

// The line that ends a drain: its level and message by exit code.
void log_drain_line(int exit_code, const nlohmann::json& fields);

}  // namespace mdagg::lifecycle

#include "supervisor.hpp"

#include <mdagg/lifecycle.hpp>
#include <mdagg/observe.hpp>

namespace mdagg::lifecycle {
namespace {

double to_ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

Supervisor::Supervisor(Stage& ingest, Stage& aggregation, Stage& output, Now now)
    : ingest_(ingest), aggregation_(aggregation), output_(output), now_(std::move(now)) {}

void Supervisor::emergency() {
    emergency_ = true;
    for (Stage* s : {&ingest_, &aggregation_, &output_}) s->emergency();
}

boost::asio::awaitable<Supervisor::Report> Supervisor::drain(const DrainPlan& plan) {
    nlohmann::json stages = nlohmann::json::object();
    auto stage_start = now_();
    auto end_stage = [&](const char* name) {
        auto now = now_();
        stages[name] = to_ms(now - stage_start);
        stage_start = now;
    };
    // 1. No poller starts a new poll.
    ingest_.stop_intake();
    end_stage("stop_scheduling_ms");
    // 2. In-flight polls may complete; then the rest are cancelled.
    const StageOutcome ingested = co_await ingest_.drain({plan.cancel_at, plan.give_up_at});
    end_stage("in_flight_ms");
    // 3. Final (partial) bars; everything goes to the sinks.
    aggregation_.stop_intake();
    co_await aggregation_.drain({plan.cancel_at, plan.deadline});
    co_await aggregation_.close(plan.deadline);
    end_stage("final_bars_ms");
    // 4. Write, flush, fsync and close every file.
    output_.stop_intake();
    // A sink drained before the files (Kafka) has what is left of the budget but the files'
    // reserve, whenever stage 2 ended (drain_plan.hpp, early_sinks_until).
    const auto sinks_start = now_();
    const auto sinks_deadline = sink_deadline(plan, sinks_start, emergency_);
    const StageOutcome output =
        co_await output_.drain({early_sinks_until(plan, sinks_start, emergency_), sinks_deadline});
    co_await output_.close(with_close_floor(plan, sinks_close_until(plan, sinks_start, emergency_), now_()));
    end_stage("sink_close_ms");
    // 5. Close the sockets.
    co_await ingest_.close(plan.deadline);
    end_stage("close_sockets_ms");

    Report r;
    const auto end = now_();
    r.elapsed = end - plan.started;
    r.records_lost = output.records_lost;
    r.exit_code = drain_exit_code({.pollers_done = ingested.in_time,
                                   .sinks_closed = output.in_time,
                                   .in_budget = end <= plan.deadline,
                                   .emergency = emergency_,
                                   .output_incomplete = output.output_incomplete});
    const bool incomplete = r.exit_code == exit_drain_timeout;
    r.fields = {{"exit_code", r.exit_code},
                {"drain_ms", to_ms(r.elapsed)},
                {"budget_ms", to_ms(plan.budget)},
                {"stages", stages}};
    for (const Stage* s : {&ingest_, &aggregation_, &output_}) s->report(r.fields, incomplete);
    if (incomplete) r.fields["emergency"] = emergency_;
    log_drain_line(r.exit_code, r.fields);
    co_return r;
}

void log_drain_line(int exit_code, const nlohmann::json& fields) {
    if (exit_code == exit_ok) {
        log::info("drain complete", fields);
    } else if (exit_code == exit_fatal) {
        log::error("drain finished but output is incomplete: records were dropped or not written", fields);
    } else {
        log::error("drain incomplete: budget exceeded or forced", fields);
    }
}

}  // namespace mdagg::lifecycle

#include "drain_plan.hpp"

#include <mdagg/lifecycle.hpp>

#include <algorithm>
#include <csignal>

namespace mdagg::lifecycle {

using std::chrono::milliseconds;

Clock::duration drain_budget(int signo, const Config& config) {
    return signo == SIGINT ? config.shutdown.interrupt_grace : config.shutdown.grace;
}

DrainPlan plan_drain(Clock::time_point started, Clock::duration budget) {
    DrainPlan p;
    p.started = started;
    p.budget = budget;
    p.deadline = started + budget;
    // In-flight polls get until cancel_at; the rest of the budget is kept for the flush.
    p.reserve = std::min<Clock::duration>(budget / 4, std::chrono::seconds(1));
    p.cancel_at = p.deadline - p.reserve;
    // Cancelled pollers return within a few turns of the loop; half the reserve is plenty.
    p.give_up_at = p.deadline - p.reserve / 2;
    p.watchdog_at = p.deadline + std::min<Clock::duration>(budget / 10, milliseconds(250));
    return p;
}

Clock::time_point emergency_cap(Clock::time_point until, Clock::time_point now, bool emergency) {
    return emergency ? std::min(until, now + std::chrono::seconds(1)) : until;
}

Clock::time_point early_sinks_until(const DrainPlan& plan, Clock::time_point now, bool emergency) {
    return sink_deadline(plan, now, emergency) - files_reserve(plan);
}

Clock::time_point sinks_close_until(const DrainPlan& plan, Clock::time_point now, bool emergency) {
    return sink_deadline(plan, now, emergency) - plan.reserve / 8;
}

Clock::time_point with_close_floor(const DrainPlan& plan, Clock::time_point until, Clock::time_point now) {
    return std::max(until, std::min(now + plan.reserve / 16, plan.deadline));
}

int drain_exit_code(const DrainResult& r) {
    if (!(r.sinks_closed && r.pollers_done && r.in_budget && !r.emergency)) return exit_drain_timeout;
    // Drained in time, but not every record reached the disk (dropped while the disk failed or
    // the queue was full, or refused at close), or a segment is not known to be durable (its
    // fdatasync failed: kept .part). Recovered write errors that lost nothing do not count.
    if (r.output_incomplete) return exit_fatal;
    return exit_ok;
}

}  // namespace mdagg::lifecycle

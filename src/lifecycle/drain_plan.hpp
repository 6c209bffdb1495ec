// Private to lifecycle: the drain's timetable and how its outcome becomes the exit code.
// Plain functions of time points, so tests run them on simulated time.
#pragma once

#include <mdagg/config.hpp>

#include <chrono>

namespace mdagg::lifecycle {

using Clock = std::chrono::steady_clock;

struct DrainPlan {
    Clock::time_point started;     // the signal's arrival
    Clock::duration budget{};      // shutdown.grace, or shutdown.interrupt_grace for SIGINT
    Clock::time_point deadline;    // started + budget
    Clock::duration reserve{};     // kept for the final bars and the sinks: min(budget/4, 1 s)
    Clock::time_point cancel_at;   // in-flight polls still running then are cancelled
    Clock::time_point give_up_at;  // cancelled pollers not returned by then are abandoned
    Clock::time_point watchdog_at; // the watchdog forces exit 3: deadline + min(budget/10, 250 ms)
};

// The budget a drain signal grants: SIGINT (a person at a terminal) the shorter one.
Clock::duration drain_budget(int signo, const Config& config);
DrainPlan plan_drain(Clock::time_point started, Clock::duration budget);

// A time of the sinks' stage: `until`, or after a second signal at most 1 s from `now`.
Clock::time_point emergency_cap(Clock::time_point until, Clock::time_point now, bool emergency);
// The sinks' close deadline: the plan's, capped in an emergency.
inline Clock::time_point sink_deadline(const DrainPlan& plan, Clock::time_point now, bool emergency) {
    return emergency_cap(plan.deadline, now, emergency);
}

// Stage 4, the sinks: the files (drained last) keep this much of their time for their close,
// the last writes, fsyncs and renames: half the reserve, the time after give_up_at. Their
// writer has had the final bars since stage 3 and writes on while a sink before them drains.
inline Clock::duration files_reserve(const DrainPlan& plan) { return plan.reserve / 2; }
// Until when a sink drained before the files (Kafka) delivers: the sinks' deadline less the
// files' reserve (give_up_at, or 1 s after a second signal less the reserve). Not cancel_at:
// a poll in flight may hold stage 2 up to the cancel point, and the final bars, produced
// after it, would then find their time already spent and be purged with healthy brokers.
Clock::time_point early_sinks_until(const DrainPlan& plan, Clock::time_point now, bool emergency);
// Until when a sink's close may wait (Kafka's producer stopping its threads): the sinks'
// deadline less an eighth of the reserve, left to close the sockets (stage 5). A close
// still running then is abandoned (left to its thread), never waited for past the budget.
Clock::time_point sinks_close_until(const DrainPlan& plan, Clock::time_point now, bool emergency);
// A close that starts after `until` (the files' drain used its time) still gets a short floor,
// reserve/16, within the budget: a producer that would shut down in milliseconds is not
// abandoned for want of any time at all.
Clock::time_point with_close_floor(const DrainPlan& plan, Clock::time_point until, Clock::time_point now);

// What the stages reported, for the exit code.
struct DrainResult {
    bool pollers_done = false;       // every poller returned (none abandoned)
    bool sinks_closed = false;       // every sink closed before its deadline
    bool in_budget = false;          // the drain ended by its deadline
    bool emergency = false;          // a second signal forced it
    bool output_incomplete = false;  // records lost, a disk fault, or a segment not known durable
};

// exit_drain_timeout when the drain ran out of time or was forced; exit_fatal when it drained
// in time but not every record is known to be on disk; exit_ok otherwise.
int drain_exit_code(const DrainResult& result);

}  // namespace mdagg::lifecycle

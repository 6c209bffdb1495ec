// The drain: its timetable (DrainPlan), the exit code, and the supervisor driving fake stages
// on simulated time. No sockets, no files, no real waiting.
#include "drain_plan.hpp"
#include "lifecycle_drain_support.hpp"
#include "supervisor.hpp"

#include <mdagg/lifecycle.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <csignal>
#include <string>
#include <vector>

namespace mdagg::lifecycle {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

using drain_test::FakeStage;
using drain_test::SupervisorTest;
using drain_test::t0;

TEST(DrainPlan, KeepsAQuarterOfTheBudgetAtMostOneSecondForTheFlush) {
    const DrainPlan p = plan_drain(t0, seconds(10));
    EXPECT_EQ(p.deadline, t0 + seconds(10));
    EXPECT_EQ(p.reserve, seconds(1));
    EXPECT_EQ(p.cancel_at, t0 + seconds(9));
    EXPECT_EQ(p.give_up_at, t0 + milliseconds(9500));
    EXPECT_EQ(p.watchdog_at, t0 + milliseconds(10250));

    const DrainPlan short_one = plan_drain(t0, seconds(2));
    EXPECT_EQ(short_one.reserve, milliseconds(500));
    EXPECT_EQ(short_one.cancel_at, t0 + milliseconds(1500));
    EXPECT_EQ(short_one.give_up_at, t0 + milliseconds(1750));
    EXPECT_EQ(short_one.watchdog_at, t0 + milliseconds(2200)) << "a tenth of the budget under 2.5 s";
}

TEST(DrainPlan, SigintGetsTheInterruptGrace) {
    Config c;
    c.shutdown.grace = seconds(30);
    c.shutdown.interrupt_grace = seconds(2);
    EXPECT_EQ(drain_budget(SIGTERM, c), seconds(30));
    EXPECT_EQ(drain_budget(SIGINT, c), seconds(2));
}

TEST(DrainPlan, AnEmergencyGivesTheSinksAtMostOneSecond) {
    const DrainPlan p = plan_drain(t0, seconds(10));
    EXPECT_EQ(sink_deadline(p, t0 + seconds(2), false), p.deadline);
    EXPECT_EQ(sink_deadline(p, t0 + seconds(2), true), t0 + seconds(3));
    EXPECT_EQ(sink_deadline(p, t0 + milliseconds(9500), true), p.deadline) << "never past the deadline";
}

TEST(DrainExitCode, ByTodaysRules) {
    const DrainResult clean{.pollers_done = true, .sinks_closed = true, .in_budget = true,
                            .emergency = false, .output_incomplete = false};
    EXPECT_EQ(drain_exit_code(clean), exit_ok);
    auto with = [&](auto change) {
        DrainResult r = clean;
        change(r);
        return drain_exit_code(r);
    };
    EXPECT_EQ(with([](DrainResult& r) { r.output_incomplete = true; }), exit_fatal);
    EXPECT_EQ(with([](DrainResult& r) { r.pollers_done = false; }), exit_drain_timeout);
    EXPECT_EQ(with([](DrainResult& r) { r.sinks_closed = false; }), exit_drain_timeout);
    EXPECT_EQ(with([](DrainResult& r) { r.in_budget = false; }), exit_drain_timeout);
    EXPECT_EQ(with([](DrainResult& r) { r.emergency = true; }), exit_drain_timeout);
    EXPECT_EQ(with([](DrainResult& r) {
                  r.emergency = true;
                  r.output_incomplete = true;
              }),
              exit_drain_timeout)
        << "out of time wins over lost records";
}

TEST_F(SupervisorTest, DrainsTheStagesInOrderAndTimesEachStep) {
    ingest.stop_takes = milliseconds(1);
    ingest.drain_takes = milliseconds(300);
    aggregation.drain_takes = milliseconds(20);
    output.drain_takes = milliseconds(150);
    ingest.close_takes = milliseconds(5);
    output.outcome.records_lost = 0;
    const DrainPlan plan = plan_drain(t0, seconds(10));
    const auto report = drain(plan);

    const std::vector<std::string> order{"ingest.stop_intake", "ingest.drain",     "aggregation.stop_intake",
                                         "aggregation.drain",  "aggregation.close", "output.stop_intake",
                                         "output.drain",       "output.close",      "ingest.close"};
    EXPECT_EQ(calls, order);
    EXPECT_EQ(report.exit_code, exit_ok);
    EXPECT_EQ(report.elapsed, milliseconds(476));
    const auto& stages = report.fields["stages"];
    EXPECT_DOUBLE_EQ(stages["stop_scheduling_ms"].get<double>(), 1);
    EXPECT_DOUBLE_EQ(stages["in_flight_ms"].get<double>(), 300);
    EXPECT_DOUBLE_EQ(stages["final_bars_ms"].get<double>(), 20);
    EXPECT_DOUBLE_EQ(stages["sink_close_ms"].get<double>(), 150);
    EXPECT_DOUBLE_EQ(stages["close_sockets_ms"].get<double>(), 5);
    EXPECT_EQ(report.fields["exit_code"], 0);
    EXPECT_DOUBLE_EQ(report.fields["drain_ms"].get<double>(), 476);
    EXPECT_DOUBLE_EQ(report.fields["budget_ms"].get<double>(), 10000);
    for (const char* stage : {"ingest", "aggregation", "output"})
        EXPECT_EQ(report.fields.value(stage, false), true) << stage << " adds its fields";
    EXPECT_FALSE(report.fields.contains("emergency")) << "only on an incomplete drain";
    EXPECT_FALSE(ingest.reported_incomplete);

    EXPECT_EQ(ingest.drained_with.cancel_at, plan.cancel_at);
    EXPECT_EQ(ingest.drained_with.deadline, plan.give_up_at);
    EXPECT_EQ(output.drained_with.cancel_at, plan.give_up_at) << "a sink before the files leaves them their reserve";
    EXPECT_EQ(output.drained_with.deadline, plan.deadline);
    EXPECT_EQ(ingest.closed_with, plan.deadline);
}

TEST_F(SupervisorTest, PollersStillRunningMakeItIncomplete) {
    ingest.outcome.in_time = false;
    ingest.drain_takes = milliseconds(9500);
    const auto report = drain(plan_drain(t0, seconds(10)));
    EXPECT_EQ(report.exit_code, exit_drain_timeout);
    EXPECT_EQ(report.fields["emergency"], false);
    EXPECT_TRUE(ingest.reported_incomplete && output.reported_incomplete);
}

TEST_F(SupervisorTest, OverTheBudgetIsExitThreeEvenWhenEveryStageFinished) {
    output.drain_takes = milliseconds(10001);
    EXPECT_EQ(drain(plan_drain(t0, seconds(10))).exit_code, exit_drain_timeout);
}

TEST_F(SupervisorTest, LostRecordsInTimeAreExitOne) {
    output.outcome.records_lost = 17;
    output.outcome.output_incomplete = true;
    const auto report = drain(plan_drain(t0, seconds(10)));
    EXPECT_EQ(report.exit_code, exit_fatal);
    EXPECT_EQ(report.records_lost, 17u);
    EXPECT_FALSE(report.fields.contains("emergency"));
}

TEST_F(SupervisorTest, ASecondSignalReachesTheStagesAndShortensTheSinksDeadline) {
    supervisor.emergency();
    EXPECT_TRUE(ingest.emergency_seen && aggregation.emergency_seen && output.emergency_seen);
    ingest.drain_takes = milliseconds(200);
    const DrainPlan plan = plan_drain(t0, seconds(30));
    const auto report = drain(plan);
    EXPECT_EQ(output.drained_with.deadline, t0 + milliseconds(1200)) << "1 s from the sinks' turn";
    EXPECT_EQ(output.drained_with.cancel_at, t0 + milliseconds(1200) - files_reserve(plan));
    EXPECT_EQ(report.exit_code, exit_drain_timeout);
    EXPECT_EQ(report.fields["emergency"], true);
}

}  // namespace
}  // namespace mdagg::lifecycle

// Stage 4 on simulated time: a sink drained before the files (Kafka) gets what is left of the
// budget less the files' reserve, whenever stage 2 ended, never the cancel point (which a poll
// in flight may already have used up); the sinks' close is bounded before the deadline; and
// the drain line's `sink_closed` is the files' own.
#include "drain_plan.hpp"
#include "lifecycle_drain_support.hpp"
#include "output.hpp"

#include <mdagg/lifecycle.hpp>
#include <mdagg/sink.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <unistd.h>

namespace mdagg::lifecycle {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using drain_test::SupervisorTest;
using drain_test::t0;

TEST(DrainPlanSinks, AnEarlySinkHasTheBudgetLessTheFilesReserve) {
    const DrainPlan p = plan_drain(t0, seconds(3));  // the default shutdown.grace
    EXPECT_EQ(files_reserve(p), milliseconds(375));
    EXPECT_EQ(early_sinks_until(p, p.cancel_at, false), p.give_up_at);
    EXPECT_GT(early_sinks_until(p, p.cancel_at, false), p.cancel_at) << "time left when stage 2 used it all";
    // Whenever stage 4 starts, its end is the same: the budget decides, not stage 2.
    EXPECT_EQ(early_sinks_until(p, t0 + milliseconds(10), false), p.give_up_at);
    EXPECT_EQ(sinks_close_until(p, t0, false), p.deadline - milliseconds(93) - std::chrono::microseconds(750));
    EXPECT_LT(sinks_close_until(p, t0, false), p.deadline) << "the sockets' close keeps some time";
}

// The files' drain used the sinks' time: the close still gets reserve/16, never past the budget.
TEST(DrainPlanSinks, ACloseThatStartsLateGetsAShortFloorWithinTheBudget) {
    const DrainPlan p = plan_drain(t0, seconds(3));  // reserve 750 ms: floor 46.875 ms
    const auto until = sinks_close_until(p, t0, false);
    EXPECT_EQ(with_close_floor(p, until, t0), until) << "in time: the plan's end";
    const auto late = until + milliseconds(20);
    EXPECT_EQ(with_close_floor(p, until, late), late + p.reserve / 16);
    EXPECT_EQ(with_close_floor(p, until, p.deadline - milliseconds(1)), p.deadline) << "capped at the budget";
}

TEST(DrainPlanSinks, ASecondSignalCapsThemFromTheSinksTurn) {
    const DrainPlan p = plan_drain(t0, seconds(30));  // reserve 1 s, files keep 500 ms
    const auto turn = t0 + seconds(2);
    EXPECT_EQ(early_sinks_until(p, turn, true), turn + milliseconds(500));
    EXPECT_EQ(sinks_close_until(p, turn, true), turn + seconds(1) - milliseconds(125));
    EXPECT_EQ(early_sinks_until(p, turn, false), p.give_up_at);
}

// The review's case: a poll in flight holds stage 2 to the cancel point (with the default
// 3 s grace, 2.25 s). Kafka then still gets until give_up_at, not a deadline already past.
TEST_F(SupervisorTest, AnEarlySinkGetsTimeAfterPollsHeldStageTwoToTheCancelPoint) {
    const DrainPlan plan = plan_drain(t0, seconds(3));
    ingest.drain_takes = plan.cancel_at - t0 + milliseconds(5);  // cancelled, returned at once
    aggregation.drain_takes = milliseconds(2);
    const auto report = drain(plan);
    const Clock::time_point sinks_turn = plan.cancel_at + milliseconds(7);
    EXPECT_GT(output.drained_with.cancel_at, sinks_turn) << "time of its own for the sink before the files";
    EXPECT_EQ(output.drained_with.cancel_at, plan.give_up_at);
    EXPECT_EQ(output.drained_with.deadline, plan.deadline);
    EXPECT_EQ(output.closed_with, sinks_close_until(plan, sinks_turn, false));
    EXPECT_EQ(report.exit_code, exit_ok);
}

// A sink drained before the files that was late, and files that closed in time.
struct LateSink final : SinkDrain {
    void flush() override {}
    void stop_intake() override {}
    SinkDrainOutcome drain(StageDeadline) override {
        SinkDrainOutcome o;
        o.in_time = false;
        o.records_lost = 3;
        o.incomplete = true;
        return o;
    }
    void close(Clock::time_point deadline) override { closed_with = deadline; }
    nlohmann::json stats() const override { return {{"kafka", {{"in_time", false}}}}; }
    Clock::time_point closed_with{};
};

TEST(OutputReport, SinkClosedIsTheFilesOwnAndALateKafkaSaysSoItself) {
    const auto dir = std::filesystem::temp_directory_path() / ("mdagg-drain-sinks-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    Universe u;
    u.sources = {"sim"};
    u.symbols = {"AAPL"};
    FileSink files(u, {dir.string()});
    files.open();
    Output output;
    auto late = std::make_unique<LateSink>();
    LateSink* kafka = late.get();
    output.add(std::move(late));
    output.add(std::make_unique<FileSinkDrain>(files));

    boost::asio::io_context io;
    StageOutcome outcome;
    const auto now = Clock::now();
    boost::asio::co_spawn(
        io,
        [&]() -> boost::asio::awaitable<void> {
            output.stop_intake();
            outcome = co_await output.drain({now + seconds(5), now + seconds(10)});
            co_await output.close(now + seconds(9));
        },
        [](std::exception_ptr e) {
            if (e) std::rethrow_exception(e);
        });
    io.run();
    EXPECT_FALSE(outcome.in_time) << "Kafka's lateness still counts for the exit code";
    EXPECT_EQ(outcome.records_lost, 3u);
    EXPECT_EQ(kafka->closed_with, now + seconds(9)) << "the close's deadline reaches the sink";

    nlohmann::json fields;
    output.report(fields, true);
    EXPECT_EQ(fields["sink_closed"], true) << "the files closed in time: " << fields.dump();
    EXPECT_EQ(fields["kafka"]["in_time"], false) << fields.dump();
    nlohmann::json complete;
    output.report(complete, false);
    EXPECT_FALSE(complete.contains("sink_closed")) << "only on an incomplete drain";
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mdagg::lifecycle

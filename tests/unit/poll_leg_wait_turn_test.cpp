// A leg that must wait for its turn at a full connect gate (poll_leg.hpp, leg_wait_turn):
// one already stopped (a hedge its primary beat before the leg's first step ran, a drain)
// ends at once without queueing. Queued, nothing would cancel it: the cancel that stopped it
// ran while it was not yet in the queue, and the gate would hold it until some connect ended,
// with the poller's hedge slot (and a retiring poller's exit) waiting behind it.
#include "poll_leg.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <optional>

using namespace std::chrono_literals;
using mdagg::detail::ConnectGate;
using mdagg::detail::ConnectSeat;
using mdagg::detail::ConnectTurn;
using mdagg::detail::PollAction;
using mdagg::detail::PollFsm;
using mdagg::detail::Task;

namespace {

struct FakeGuard {
    mdagg::HostGuard::Status status(mdagg::Clock::time_point) const { return {}; }
};
struct FakeRoute {
    FakeGuard guard;
};

// The few members leg_wait_turn uses of a Leg.
struct FakeLeg {
    struct {
        boost::asio::any_io_executor executor;
    } p;
    PollFsm machine{1s, 1s, 1};
    FakeRoute fake_route;
    bool stop = false;
    int disarms = 0;
    int arms = 0;
    std::optional<boost::system::error_code> failed_with;

    PollFsm& fsm() { return machine; }
    FakeRoute& route() { return fake_route; }
    bool stopped() const { return stop; }
    void disarm() { ++disarms; }
    void arm(mdagg::Clock::time_point) { ++arms; }
    PollAction failed(const boost::system::error_code& ec) {
        failed_with = ec;
        return machine.on_cancel();
    }
};

struct Outcome {
    bool ended = false;
    std::optional<PollAction> action;
};

Task<void> wait_turn(FakeLeg& leg, ConnectTurn& turn, Outcome& out) {
    out.action = co_await mdagg::detail::leg_wait_turn(leg, turn);
    out.ended = true;
}

void root_done(void*, std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
}

// A gate of one slot that another poller's connect holds, and a leg on the same io_context.
struct FullGate : ::testing::Test {
    boost::asio::io_context io{1};
    ConnectGate gate{1};
    ConnectGate::Waiter holder;
    FakeLeg leg;
    ConnectSeat seat;
    void SetUp() override {
        ASSERT_TRUE(gate.try_enter(holder));
        leg.p.executor = io.get_executor();
    }
};

}  // namespace

TEST_F(FullGate, AStoppedLegEndsAtOnceInsteadOfQueueing) {
    leg.stop = true;  // cancelled before its first step ran
    ConnectTurn turn(gate, seat);
    ASSERT_FALSE(turn.try_now());
    Outcome out;
    wait_turn(leg, turn, out).spawn(io.get_executor(), &root_done, nullptr);
    io.poll();

    EXPECT_TRUE(out.ended) << "the stopped leg waits in the gate's queue";
    ASSERT_TRUE(out.action.has_value());
    EXPECT_EQ(leg.failed_with, boost::asio::error::operation_aborted);
    EXPECT_EQ(gate.queued(), 0u);
    EXPECT_EQ(leg.arms, 0) << "no connect budget for a leg that does not connect";
    std::vector<ConnectGate::Waiter*> granted;
    gate.leave(holder, ConnectGate::Outcome::neutral, granted);
    EXPECT_TRUE(granted.empty());
}

TEST_F(FullGate, ALegStillRunningWaitsForItsTurnAndGetsItsConnectBudget) {
    (void)leg.machine.on_tick(mdagg::Clock::now());
    {
        ConnectTurn turn(gate, seat);
        ASSERT_FALSE(turn.try_now());
        Outcome out;
        wait_turn(leg, turn, out).spawn(io.get_executor(), &root_done, nullptr);
        io.poll();
        EXPECT_FALSE(out.ended);
        EXPECT_EQ(gate.queued(), 1u);

        // The holder's connect ends: the queued leg's turn comes and its budget starts.
        std::vector<ConnectGate::Waiter*> granted;
        gate.leave(holder, ConnectGate::Outcome::neutral, granted);
        ASSERT_EQ(granted.size(), 1u);
        boost::asio::post(io, [h = seat.resume_to] { h.resume(); });
        io.restart();
        io.poll();
        EXPECT_TRUE(out.ended);
        EXPECT_FALSE(out.action.has_value()) << "it goes on to connect";
        EXPECT_FALSE(leg.failed_with.has_value());
        EXPECT_EQ(leg.arms, 1);
        EXPECT_TRUE(turn.holding());
    }
    EXPECT_EQ(gate.in_progress(), 0u) << "the turn gave its slot back";
}

// PollFsm once a drain stopped the intake: no late grace. A hung poll ends at its own
// deadline, as before the grace existed, instead of running on for one more `timeout` into the
// drain's cancel point (where it would take the final flush's time). Stepped without sockets,
// time passed in.
#include "poll_fsm.hpp"

#include <boost/beast/core/error.hpp>

#include <gtest/gtest.h>

using namespace std::chrono_literals;
using mdagg::PollerState;
using mdagg::PollError;
using mdagg::detail::ParseResult;
using mdagg::detail::PollAction;
using mdagg::detail::PollFsm;
using Kind = PollAction::Kind;
using Clock = mdagg::detail::PollClock;

namespace {

constexpr auto connect_timeout = 1s;
constexpr auto timeout = 1500ms;
constexpr auto grace = 1500ms;  // late_grace(1.5 s, 2 s)
const Clock::time_point t0 = Clock::time_point(100s);

// A poller with a late grace whose next poll's request is with the server, unanswered.
PollFsm awaiting_answer(Clock::time_point start) {
    PollFsm fsm(connect_timeout, timeout, 7, grace);
    EXPECT_EQ(fsm.on_tick(start).kind, Kind::connect);
    EXPECT_EQ(fsm.on_connected(start).kind, Kind::write);
    EXPECT_EQ(fsm.on_written(true).kind, Kind::parse);
    EXPECT_EQ(fsm.on_parsed({}).kind, Kind::read);
    return fsm;
}

TEST(PollFsmDrain, NoLateGraceOnceTheIntakeStopped) {
    PollFsm fsm = awaiting_answer(t0);
    const PollAction a = fsm.on_deadline(t0 + timeout, true);
    EXPECT_EQ(a.kind, Kind::done) << "the deadline cuts the poll";
    EXPECT_TRUE(a.has(PollAction::close));
    EXPECT_FALSE(a.has(PollAction::arm_deadline));
    EXPECT_FALSE(a.has(PollAction::back_off)) << "a timeout never backs off";
    EXPECT_EQ(fsm.result().outcome, PollerState::timed_out);
    EXPECT_EQ(fsm.result().error, PollError::timeout);
    EXPECT_FALSE(fsm.result().late) << "not counted as a late answer";
    EXPECT_FALSE(fsm.connected());
}

// The same poll without a drain gets its grace: the flag is what decides.
TEST(PollFsmDrain, WithoutADrainTheSamePollReadsOnForTheGrace) {
    PollFsm fsm = awaiting_answer(t0);
    const PollAction a = fsm.on_deadline(t0 + timeout, false);
    EXPECT_EQ(a.kind, Kind::read);
    EXPECT_TRUE(a.has(PollAction::arm_deadline));
    EXPECT_EQ(fsm.deadline(), t0 + timeout + grace);
}

// A grace granted before the drain began keeps its end (it is at most one more `timeout`, and
// the drain's cancel point bounds it); its second deadline cuts as always.
TEST(PollFsmDrain, AGraceGrantedBeforeTheDrainKeepsItsEnd) {
    PollFsm fsm = awaiting_answer(t0);
    ASSERT_EQ(fsm.on_deadline(t0 + timeout, false).kind, Kind::read);
    const auto end = fsm.deadline();
    const PollAction a = fsm.on_deadline(end, true);
    EXPECT_EQ(a.kind, Kind::done);
    EXPECT_TRUE(a.has(PollAction::close));
    EXPECT_EQ(fsm.result().outcome, PollerState::timed_out);
    EXPECT_TRUE(fsm.result().late) << "counted as a grace that ran out";
}

// A connect cut by its deadline during a drain is the plain connect timeout it always was.
TEST(PollFsmDrain, AConnectCutDuringADrainIsAConnectTimeout) {
    PollFsm fsm(connect_timeout, timeout, 7, grace);
    ASSERT_EQ(fsm.on_tick(t0).kind, Kind::connect);
    const PollAction a = fsm.on_deadline(t0 + connect_timeout, true);
    EXPECT_EQ(a.kind, Kind::done);
    EXPECT_TRUE(a.has(PollAction::back_off));
    EXPECT_EQ(fsm.result().error, PollError::timeout);
}

}  // namespace

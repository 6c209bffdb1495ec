// The late grace of PollFsm (docs/polling.md, "Late answers"): a poll whose request went out in
// full and whose answer has not completed at its deadline keeps reading on its connection for
// the grace, once. Stepped without sockets, time passed in.
#include "poll_fsm_test_helpers.hpp"

#include <gtest/gtest.h>

using mdagg::detail::late_grace;
using poll_fsm_test::answer;

namespace {

constexpr auto connect_timeout = 1s;
constexpr auto timeout = 50ms;
constexpr auto grace = 50ms;  // late_grace(timeout, interval) with a 50 ms interval
const Clock::time_point t0 = Clock::time_point(100s);

// A poller with a late grace, its connection open after one answered poll.
PollFsm connected_fsm() {
    PollFsm fsm(connect_timeout, timeout, 42, grace);
    fsm.on_tick(t0 - 1s);
    fsm.on_connected(t0 - 1s);
    fsm.on_written(true);
    fsm.on_parsed(answer(200));
    fsm.on_delivered();
    EXPECT_TRUE(fsm.connected());
    return fsm;
}

// The next poll on the open connection, its request written in full, waiting for the answer.
void await_answer(PollFsm& fsm, Clock::time_point start) {
    ASSERT_EQ(fsm.on_tick(start).kind, Kind::write);
    ASSERT_EQ(fsm.on_written(true).kind, Kind::parse);
    ASSERT_EQ(fsm.on_parsed({}).kind, Kind::read);
}

// The deadline came: the poll reads on until deadline + grace, on the same connection.
void enter_grace(PollFsm& fsm, Clock::time_point start) {
    const PollAction a = fsm.on_deadline(start + timeout);
    ASSERT_EQ(a.kind, Kind::read);
    EXPECT_TRUE(a.has(PollAction::arm_deadline));
    EXPECT_FALSE(a.has(PollAction::close));
    EXPECT_EQ(fsm.deadline(), start + timeout + grace);
    EXPECT_TRUE(fsm.connected());
    EXPECT_TRUE(fsm.state().late);
}

}  // namespace

TEST(PollFsmLate, TheGraceIsOneTimeoutAtMostOneInterval) {
    EXPECT_EQ(late_grace(50ms, 50ms), 50ms);
    EXPECT_EQ(late_grace(50ms, 1s), 50ms);    // a short timeout: one more of it
    EXPECT_EQ(late_grace(2s, 500ms), 500ms);  // a long one: at most one more tick skipped
}

TEST(PollFsmLate, ALateAnswerIsDeliveredAndTheConnectionKept) {
    PollFsm fsm = connected_fsm();
    await_answer(fsm, t0);
    enter_grace(fsm, t0);
    EXPECT_EQ(fsm.on_read().kind, Kind::parse);
    PollAction a = fsm.on_parsed(answer(200));
    EXPECT_EQ(a.kind, Kind::deliver);
    EXPECT_FALSE(a.has(PollAction::close));
    a = fsm.on_delivered();
    EXPECT_EQ(a.kind, Kind::done);
    // A quote: completed, and the host is alive (the breaker hears a success).
    EXPECT_EQ(fsm.result().outcome, PollerState::completed);
    EXPECT_EQ(fsm.result().verdict, HostVerdict::healthy);
    EXPECT_TRUE(fsm.result().late);
    EXPECT_TRUE(fsm.connected());
    EXPECT_EQ(fsm.state().requests_on_connection, 2u);

    // The next poll reuses the connection, on time, with its own grace again.
    await_answer(fsm, t0 + 100ms);
    EXPECT_TRUE(fsm.state().reused);
    EXPECT_FALSE(fsm.state().late);
    fsm.on_parsed(answer(200));
    fsm.on_delivered();
    EXPECT_FALSE(fsm.result().late);
    await_answer(fsm, t0 + 200ms);
    enter_grace(fsm, t0 + 200ms);
}

TEST(PollFsmLate, TheGraceRunningOutClosesAsATimeout) {
    PollFsm fsm = connected_fsm();
    await_answer(fsm, t0);
    enter_grace(fsm, t0);
    fsm.on_read();
    ASSERT_EQ(fsm.on_parsed({}).kind, Kind::read);  // part of the answer, not all
    const PollAction a = fsm.on_deadline(t0 + timeout + grace);
    EXPECT_EQ(a.kind, Kind::done);
    EXPECT_TRUE(a.has(PollAction::close));
    EXPECT_FALSE(a.has(PollAction::back_off));
    EXPECT_FALSE(fsm.connected());
    EXPECT_EQ(fsm.result().outcome, PollerState::timed_out);
    EXPECT_EQ(fsm.result().error, PollError::timeout);
    EXPECT_EQ(fsm.result().verdict, HostVerdict::failing);
    EXPECT_TRUE(fsm.result().late);
}

TEST(PollFsmLate, ADeadlineNoticedLateStillGetsTheWholeGrace) {
    // A loaded event loop saw the deadline 80 ms late: the answer is likely waiting in the
    // socket, and the delay was the loop's, so the grace counts from then.
    PollFsm fsm = connected_fsm();
    await_answer(fsm, t0);
    const PollAction a = fsm.on_deadline(t0 + timeout + 80ms);
    EXPECT_EQ(a.kind, Kind::read);
    EXPECT_EQ(fsm.deadline(), t0 + timeout + 80ms + grace);
    fsm.on_read();
    EXPECT_EQ(fsm.on_parsed(answer(200)).kind, Kind::deliver);
}

TEST(PollFsmLate, ACancelDuringTheGraceEndsItAtOnce) {
    PollFsm fsm = connected_fsm();
    await_answer(fsm, t0);
    enter_grace(fsm, t0);
    const PollAction a = fsm.on_cancel();
    EXPECT_EQ(a.kind, Kind::done);
    EXPECT_TRUE(a.has(PollAction::close));  // the answer may still come: the connection is unusable
    EXPECT_EQ(fsm.result().outcome, PollerState::cancelled);
    EXPECT_EQ(fsm.result().verdict, HostVerdict::neutral);
    EXPECT_TRUE(fsm.result().late);
}

TEST(PollFsmLate, PartOfAnAnswerThenTheServerClosingDuringTheGraceIsATimeoutNotARetry) {
    PollFsm fsm = connected_fsm();
    await_answer(fsm, t0);
    enter_grace(fsm, t0);
    // Some bytes, then the close: the driver lets the parser judge them (parse_eof), which
    // finds the message cut short.
    fsm.on_read();
    fsm.on_parsed({});
    EXPECT_EQ(fsm.on_eof(true, t0 + 70ms).kind, Kind::parse_eof);
    PollAction a = fsm.on_failed(http_error::partial_message, t0 + 70ms);
    EXPECT_EQ(a.kind, Kind::done);
    EXPECT_TRUE(a.has(PollAction::close));
    EXPECT_FALSE(a.has(PollAction::count_retry));
    EXPECT_FALSE(a.has(PollAction::back_off));
    EXPECT_EQ(fsm.result().outcome, PollerState::timed_out);
    EXPECT_EQ(fsm.result().error, PollError::timeout);
    EXPECT_EQ(fsm.result().detail, http_error::partial_message);  // the log line says what ended it
    EXPECT_TRUE(fsm.result().late);

    // Nothing at all, then the close: on a reused connection before its deadline this would
    // re-send the GET; past the deadline it must not.
    fsm = connected_fsm();
    await_answer(fsm, t0);
    enter_grace(fsm, t0);
    a = fsm.on_eof(false, t0 + 70ms);
    EXPECT_EQ(a.kind, Kind::done);
    EXPECT_FALSE(a.has(PollAction::count_retry));
    EXPECT_EQ(fsm.result().outcome, PollerState::timed_out);
    EXPECT_FALSE(fsm.connected());
}

TEST(PollFsmLate, ALateErrorAnswerKeepsItsClassAndItsConnection) {
    PollFsm fsm = connected_fsm();
    await_answer(fsm, t0);
    enter_grace(fsm, t0);
    fsm.on_read();
    PollAction a = fsm.on_parsed(answer(503));
    EXPECT_EQ(a.kind, Kind::done);
    EXPECT_FALSE(a.has(PollAction::close));
    EXPECT_EQ(fsm.result().outcome, PollerState::failed);
    EXPECT_EQ(fsm.result().error, PollError::http_5xx);
    EXPECT_TRUE(fsm.result().late);
    EXPECT_TRUE(fsm.connected());

    // A garbled late answer: the server answered, badly; its class, and the connection goes.
    await_answer(fsm, t0 + 1s);
    enter_grace(fsm, t0 + 1s);
    a = fsm.on_failed(http_error::bad_version, t0 + 1s + 60ms);
    EXPECT_EQ(fsm.result().error, PollError::protocol);
    EXPECT_TRUE(a.has(PollAction::close));
    EXPECT_FALSE(a.has(PollAction::back_off));
    EXPECT_TRUE(fsm.result().late);
}

TEST(PollFsmLate, ADeadlineWhileConnectingOrWritingIsUnchanged) {
    // Connecting: the connect budget is not extended (TLS handshakes have their own grace).
    PollFsm fresh(connect_timeout, timeout, 1, grace);
    ASSERT_EQ(fresh.on_tick(t0).kind, Kind::connect);
    PollAction a = fresh.on_deadline(t0 + connect_timeout);
    EXPECT_EQ(a.kind, Kind::done);
    EXPECT_TRUE(a.has(PollAction::close));
    EXPECT_TRUE(a.has(PollAction::back_off));
    EXPECT_EQ(fresh.result().outcome, PollerState::timed_out);
    EXPECT_FALSE(fresh.result().late);

    // Part of the request still unwritten: the server cannot be answering it.
    PollFsm fsm = connected_fsm();
    ASSERT_EQ(fsm.on_tick(t0).kind, Kind::write);
    ASSERT_EQ(fsm.on_written(false).kind, Kind::write_rest);
    a = fsm.on_deadline(t0 + timeout);
    EXPECT_EQ(a.kind, Kind::done);
    EXPECT_TRUE(a.has(PollAction::close));
    EXPECT_EQ(fsm.result().outcome, PollerState::timed_out);
    EXPECT_FALSE(fsm.result().late);

    // Before the request went out at all.
    fsm = connected_fsm();
    ASSERT_EQ(fsm.on_tick(t0).kind, Kind::write);
    EXPECT_EQ(fsm.on_deadline(t0 + timeout).kind, Kind::done);
    EXPECT_FALSE(fsm.result().late);
}

TEST(PollFsmLate, OneGracePerPollAndNoneWithoutOne) {
    // A fresh connection's exchange has its grace too (the collapse hits reconnected pollers).
    PollFsm fsm(connect_timeout, timeout, 1, grace);
    fsm.on_tick(t0);
    fsm.on_connected(t0 + 10ms);
    fsm.on_written(true);
    {
        const PollAction a = fsm.on_deadline(t0 + 10ms + timeout);
        ASSERT_EQ(a.kind, Kind::read);
        EXPECT_EQ(fsm.deadline(), t0 + 10ms + timeout + grace);
    }
    EXPECT_EQ(fsm.on_deadline(fsm.deadline()).kind, Kind::done);  // the second deadline cuts

    // A zero grace (the default) is today's cut at the deadline.
    PollFsm strict(connect_timeout, timeout, 1);
    strict.on_tick(t0);
    strict.on_connected(t0);
    strict.on_written(true);
    const PollAction a = strict.on_deadline(t0 + timeout);
    EXPECT_EQ(a.kind, Kind::done);
    EXPECT_TRUE(a.has(PollAction::close));
    EXPECT_FALSE(strict.result().late);
}

// The poll state machine stepped without sockets: each test feeds the events a poll would see
// and checks the actions and the outcome, with time passed in.
#include <mdagg/mapping.hpp>

#include "poll_fsm_test_helpers.hpp"

#include <gtest/gtest.h>

using mdagg::PauseReason;
using poll_fsm_test::answer;

namespace {

constexpr auto connect_timeout = 2s;
constexpr auto timeout = 1s;
const Clock::time_point t0 = Clock::time_point(100s);

ParseResult incomplete() { return {}; }

// A fresh fsm taken through one completed poll on a fresh connection: connected, one answer.
PollFsm connected_fsm() {
    PollFsm fsm(connect_timeout, timeout, 42);
    EXPECT_EQ(fsm.on_tick(t0).kind, Kind::connect);
    EXPECT_EQ(fsm.on_connected(t0 + 1ms).kind, Kind::write);
    EXPECT_EQ(fsm.on_written(true).kind, Kind::parse);
    EXPECT_EQ(fsm.on_parsed(answer(200)).kind, Kind::deliver);
    EXPECT_EQ(fsm.on_delivered().kind, Kind::done);
    EXPECT_TRUE(fsm.connected());
    return fsm;
}

// Starts a poll on the open connection and takes it to the point of waiting for the answer.
void start_reused_exchange(PollFsm& fsm, Clock::time_point start) {
    PollAction a = fsm.on_tick(start);
    ASSERT_EQ(a.kind, Kind::write);
    EXPECT_TRUE(a.has(PollAction::arm_deadline));
    EXPECT_EQ(fsm.deadline(), start + timeout);
    ASSERT_EQ(fsm.on_written(true).kind, Kind::parse);
    ASSERT_EQ(fsm.on_parsed(incomplete()).kind, Kind::read);
}

void expect_failed(const PollAction& a, const PollFsm& fsm, PollError e) {
    EXPECT_EQ(a.kind, Kind::done);
    EXPECT_EQ(fsm.result().outcome, e == PollError::timeout ? PollerState::timed_out : PollerState::failed);
    EXPECT_EQ(fsm.result().error, e);
    EXPECT_EQ(fsm.result().verdict, mdagg::detail::verdict_of(e));
}

}  // namespace

TEST(PollFsm, FreshConnectionTwoBudgetsThenDeliver) {
    PollFsm fsm(connect_timeout, timeout, 1);
    PollAction a = fsm.on_tick(t0);
    EXPECT_EQ(a.kind, Kind::connect);
    EXPECT_TRUE(a.has(PollAction::arm_deadline));
    EXPECT_EQ(fsm.deadline(), t0 + connect_timeout);
    a = fsm.on_connected(t0 + 500ms);
    EXPECT_EQ(a.kind, Kind::write);
    EXPECT_TRUE(a.has(PollAction::arm_deadline));
    EXPECT_EQ(fsm.deadline(), t0 + 500ms + timeout);  // a slow connect does not eat the exchange's budget
    EXPECT_EQ(fsm.on_written(false).kind, Kind::write_rest);
    EXPECT_EQ(fsm.on_written(true).kind, Kind::parse);
    EXPECT_EQ(fsm.on_parsed(incomplete()).kind, Kind::read);
    EXPECT_EQ(fsm.on_read().kind, Kind::parse);
    a = fsm.on_parsed(answer(200));
    EXPECT_EQ(a.kind, Kind::deliver);
    EXPECT_FALSE(a.has(PollAction::close));
    a = fsm.on_delivered();
    EXPECT_EQ(a.kind, Kind::done);
    EXPECT_EQ(fsm.result().outcome, PollerState::completed);
    EXPECT_EQ(fsm.result().verdict, HostVerdict::healthy);
    EXPECT_EQ(fsm.state().requests_on_connection, 1u);
}

TEST(PollFsm, ReusedConnectionArmsTheTickBudget) {
    PollFsm fsm = connected_fsm();
    start_reused_exchange(fsm, t0 + 1s);
    EXPECT_TRUE(fsm.state().reused);
}

TEST(PollFsm, StaleKeepAliveRetriedOnceOnAFreshConnection) {
    PollFsm fsm = connected_fsm();
    const auto start = t0 + 1s;
    start_reused_exchange(fsm, start);
    // The server closed the idle connection: nothing of a response arrived.
    PollAction a = fsm.on_eof(false, start + 1ms);
    EXPECT_EQ(a.kind, Kind::connect);
    EXPECT_TRUE(a.has(PollAction::close));
    EXPECT_TRUE(a.has(PollAction::count_retry));
    EXPECT_TRUE(a.has(PollAction::arm_deadline));
    EXPECT_EQ(fsm.deadline(), start + 1ms + connect_timeout);
    EXPECT_FALSE(fsm.connected());
    EXPECT_FALSE(a.has(PollAction::back_off));
    // The retry runs on a fresh connection: a second close is a failure, not a second retry.
    EXPECT_EQ(fsm.on_connected(start + 2ms).kind, Kind::write);
    EXPECT_FALSE(fsm.state().reused);
    EXPECT_EQ(fsm.on_written(true).kind, Kind::parse);
    EXPECT_EQ(fsm.on_parsed(incomplete()).kind, Kind::read);
    a = fsm.on_eof(false, start + 3ms);
    expect_failed(a, fsm, PollError::reset);
    EXPECT_TRUE(a.has(PollAction::close));
    EXPECT_FALSE(a.has(PollAction::count_retry));
    EXPECT_TRUE(a.has(PollAction::back_off));  // a fresh connection dropped: as broken as a refusal
}

TEST(PollFsm, StaleWriteRetriedButNotOnceTheDeadlinePassed) {
    PollFsm fsm = connected_fsm();
    const auto start = t0 + 1s;
    ASSERT_EQ(fsm.on_tick(start).kind, Kind::write);
    PollAction a = fsm.on_failed(asio::error::broken_pipe, start);
    EXPECT_EQ(a.kind, Kind::connect);
    EXPECT_TRUE(a.has(PollAction::count_retry));

    PollFsm late = connected_fsm();
    start_reused_exchange(late, start);
    a = late.on_failed(asio::error::connection_reset, start + timeout);
    expect_failed(a, late, PollError::reset);
    EXPECT_FALSE(a.has(PollAction::count_retry));
    EXPECT_FALSE(a.has(PollAction::back_off));  // the connection answered before: not a broken host
}

TEST(PollFsm, OtherErrorsOnAReusedConnectionAreNotRetried) {
    PollFsm fsm = connected_fsm();
    start_reused_exchange(fsm, t0 + 1s);
    PollAction a = fsm.on_failed(http_error::bad_version, t0 + 1s);
    expect_failed(a, fsm, PollError::protocol);
    EXPECT_TRUE(a.has(PollAction::close));
    EXPECT_FALSE(a.has(PollAction::back_off));
}

TEST(PollFsm, ProtocolErrorOnAFreshConnectionBacksOff) {
    PollFsm fsm(connect_timeout, timeout, 1);
    fsm.on_tick(t0);
    fsm.on_connected(t0);
    fsm.on_written(true);
    PollAction a = fsm.on_failed(http_error::header_limit, t0);
    expect_failed(a, fsm, PollError::protocol);
    EXPECT_EQ(fsm.result().detail, http_error::header_limit);
    EXPECT_TRUE(a.has(PollAction::close));
    EXPECT_TRUE(a.has(PollAction::back_off));
    EXPECT_EQ(fsm.result().verdict, HostVerdict::failing);
}

TEST(PollFsm, BackoffGrowsWithFullJitterAndResetsAfterAnAnswer) {
    PollFsm fsm(connect_timeout, timeout, 7);
    auto now = t0;
    for (unsigned failures = 0; failures < 20; ++failures) {
        ASSERT_EQ(fsm.on_tick(now).kind, Kind::connect);
        PollAction a = fsm.on_failed(asio::error::connection_refused, now);
        expect_failed(a, fsm, PollError::connect);
        EXPECT_TRUE(a.has(PollAction::back_off));
        EXPECT_TRUE(a.has(PollAction::close));
        const auto ceiling = std::min<Clock::duration>(10s, 100ms * (1LL << std::min(failures, 16U)));
        EXPECT_GE(fsm.backoff_until(), now);
        EXPECT_LE(fsm.backoff_until(), now + ceiling) << failures;
        EXPECT_EQ(fsm.state().connect_failures, failures + 1);
        now += 20s;
    }
    // An answer shows the connection works: the next failure starts from the base again.
    fsm.on_tick(now);
    fsm.on_connected(now);
    fsm.on_written(true);
    EXPECT_EQ(fsm.on_parsed(answer(500)).kind, Kind::done);
    EXPECT_EQ(fsm.state().connect_failures, 0u);
    fsm.on_tick(now);
    EXPECT_TRUE(fsm.on_failed(asio::error::eof, now).close);  // the reused connection: a retry
    PollAction a = fsm.on_failed(asio::error::connection_refused, now);
    EXPECT_TRUE(a.has(PollAction::back_off));
    EXPECT_LE(fsm.backoff_until(), now + 100ms);
}

TEST(PollFsm, BackoffJitterIsSpread) {
    PollFsm fsm(connect_timeout, timeout, 3);
    Clock::duration lowest = 10s, highest = 0s;
    for (int i = 0; i < 60; ++i) {
        fsm.on_tick(t0);
        fsm.on_failed(asio::error::connection_refused, t0);
        if (i < 10) continue;  // from here on the ceiling is the 10 s cap
        lowest = std::min(lowest, fsm.backoff_until() - t0);
        highest = std::max(highest, fsm.backoff_until() - t0);
    }
    EXPECT_LT(lowest, 5s);
    EXPECT_GT(highest, 5s);
}

TEST(PollFsm, ConnectResetCountsAsConnectAndResolveIsNeutral) {
    PollFsm fsm(connect_timeout, timeout, 1);
    fsm.on_tick(t0);
    expect_failed(fsm.on_failed(asio::error::connection_reset, t0), fsm, PollError::connect);
    fsm.on_tick(t0);
    PollAction a = fsm.on_failed(asio::error::host_not_found_try_again, t0);
    expect_failed(a, fsm, PollError::resolve);
    EXPECT_EQ(fsm.result().verdict, HostVerdict::neutral);
    EXPECT_TRUE(a.has(PollAction::back_off));
}

TEST(PollFsm, RateLimitPausesTheHostWithAndWithoutRetryAfter) {
    PollFsm fsm = connected_fsm();
    start_reused_exchange(fsm, t0);
    PollAction a = fsm.on_parsed(answer(429));
    expect_failed(a, fsm, PollError::rate_limited);
    EXPECT_TRUE(a.has(PollAction::pause_host));
    EXPECT_FALSE(a.has(PollAction::close));
    EXPECT_EQ(fsm.pause().reason, PauseReason::rate_limited);
    EXPECT_FALSE(fsm.pause().wait);  // the host's own default
    EXPECT_EQ(fsm.pause().status, 429);
    EXPECT_EQ(fsm.result().status, 429);
    EXPECT_EQ(fsm.result().verdict, HostVerdict::neutral);

    start_reused_exchange(fsm, t0 + 1s);
    a = fsm.on_parsed(answer(429, true, "7"));
    EXPECT_TRUE(a.has(PollAction::pause_host));
    ASSERT_TRUE(fsm.pause().wait);
    EXPECT_EQ(*fsm.pause().wait, 7s);

    start_reused_exchange(fsm, t0 + 2s);
    a = fsm.on_parsed(answer(503, true, "3"));
    expect_failed(a, fsm, PollError::rate_limited);
    EXPECT_TRUE(a.has(PollAction::pause_host));
    EXPECT_EQ(*fsm.pause().wait, 3s);

    start_reused_exchange(fsm, t0 + 3s);
    a = fsm.on_parsed(answer(503));  // an overloaded host, not a pause
    expect_failed(a, fsm, PollError::http_5xx);
    EXPECT_FALSE(a.has(PollAction::pause_host));
    EXPECT_EQ(fsm.result().verdict, HostVerdict::failing);
}

TEST(PollFsm, BanStatusesPauseTheHost) {
    for (int status : {418, 403}) {
        PollFsm fsm = connected_fsm();
        start_reused_exchange(fsm, t0);
        PollAction a = fsm.on_parsed(answer(status, false, "60"));
        expect_failed(a, fsm, PollError::banned);
        EXPECT_TRUE(a.has(PollAction::pause_host));
        EXPECT_TRUE(a.has(PollAction::close));
        EXPECT_EQ(fsm.pause().reason, PauseReason::banned);
        EXPECT_EQ(*fsm.pause().wait, 60s);
        EXPECT_EQ(fsm.result().verdict, HostVerdict::neutral);
    }
}

TEST(PollFsm, OtherStatusesFailWithoutPause) {
    PollFsm fsm = connected_fsm();
    start_reused_exchange(fsm, t0);
    expect_failed(fsm.on_parsed(answer(404)), fsm, PollError::http_4xx);
    EXPECT_EQ(fsm.result().verdict, HostVerdict::healthy);
    start_reused_exchange(fsm, t0);
    expect_failed(fsm.on_parsed(answer(302)), fsm, PollError::http_other);
    EXPECT_TRUE(fsm.connected());  // an answer is an answer: the connection stays
}

TEST(PollFsm, DeadlineMidReadTimesOutWithoutBackoff) {
    PollFsm fsm = connected_fsm();
    start_reused_exchange(fsm, t0);
    PollAction a = fsm.on_deadline(t0 + timeout);
    expect_failed(a, fsm, PollError::timeout);
    EXPECT_EQ(fsm.result().detail, boost::beast::error::timeout);
    EXPECT_TRUE(a.has(PollAction::close));
    EXPECT_FALSE(a.has(PollAction::back_off));
    EXPECT_FALSE(fsm.connected());
    EXPECT_EQ(fsm.result().verdict, HostVerdict::failing);
}

TEST(PollFsm, DeadlineWhileConnectingBacksOff) {
    PollFsm fsm(connect_timeout, timeout, 1);
    fsm.on_tick(t0);
    PollAction a = fsm.on_deadline(t0 + connect_timeout);
    expect_failed(a, fsm, PollError::timeout);
    EXPECT_TRUE(a.has(PollAction::back_off));
    EXPECT_TRUE(a.has(PollAction::close));
}

TEST(PollFsm, CancelMidReadClosesAndIsNeutral) {
    PollFsm fsm = connected_fsm();
    start_reused_exchange(fsm, t0);
    PollAction a = fsm.on_cancel();
    EXPECT_EQ(a.kind, Kind::done);
    EXPECT_TRUE(a.has(PollAction::close));
    EXPECT_FALSE(a.has(PollAction::back_off));
    EXPECT_EQ(fsm.result().outcome, PollerState::cancelled);
    EXPECT_EQ(fsm.result().verdict, HostVerdict::neutral);
}

TEST(PollFsm, DrainBeforeConnectOrOnAnIdleConnection) {
    PollFsm fresh(connect_timeout, timeout, 1);
    ASSERT_EQ(fresh.on_tick(t0).kind, Kind::connect);
    PollAction a = fresh.on_cancel();
    EXPECT_EQ(a.kind, Kind::done);
    EXPECT_FALSE(a.has(PollAction::back_off));
    EXPECT_EQ(fresh.result().outcome, PollerState::cancelled);

    // Cancelled before the exchange began: the idle connection is left for the drain to close.
    PollFsm idle = connected_fsm();
    ASSERT_EQ(idle.on_tick(t0 + 1s).kind, Kind::write);
    a = idle.on_cancel();
    EXPECT_EQ(a.kind, Kind::done);
    EXPECT_FALSE(a.has(PollAction::close));
    EXPECT_TRUE(idle.connected());
    EXPECT_EQ(idle.result().outcome, PollerState::cancelled);
}

TEST(PollFsm, BodyTooLarge) {
    PollFsm fsm = connected_fsm();
    start_reused_exchange(fsm, t0);
    // The driver found no room left in the buffer for the rest of the answer.
    PollAction a = fsm.on_failed(http_error::buffer_overflow, t0);
    expect_failed(a, fsm, PollError::body_too_large);
    EXPECT_EQ(fsm.result().detail, http_error::buffer_overflow);
    EXPECT_TRUE(a.has(PollAction::close));
    EXPECT_FALSE(a.has(PollAction::back_off));

    EXPECT_EQ(fsm.on_tick(t0 + 1s).kind, Kind::connect);  // the next poll reconnects
}

TEST(PollFsm, BodyLimitFromTheParser) {
    PollFsm fsm = connected_fsm();
    start_reused_exchange(fsm, t0);
    expect_failed(fsm.on_failed(http_error::body_limit, t0), fsm, PollError::body_too_large);
}

TEST(PollFsm, CloseDelimitedBodyEndsAtEof) {
    PollFsm fsm = connected_fsm();
    start_reused_exchange(fsm, t0);
    EXPECT_EQ(fsm.on_read().kind, Kind::parse);
    EXPECT_EQ(fsm.on_parsed(incomplete()).kind, Kind::read);
    EXPECT_EQ(fsm.on_eof(true, t0).kind, Kind::parse_eof);
    PollAction a = fsm.on_parsed(answer(200, false));
    EXPECT_EQ(a.kind, Kind::deliver);
    EXPECT_TRUE(a.has(PollAction::close));
    EXPECT_FALSE(fsm.connected());
    EXPECT_EQ(fsm.on_delivered().kind, Kind::done);
    EXPECT_EQ(fsm.result().outcome, PollerState::completed);
}

TEST(PollFsm, ResponseCutShortIsAReset) {
    PollFsm fsm = connected_fsm();
    start_reused_exchange(fsm, t0);
    ASSERT_EQ(fsm.on_eof(true, t0).kind, Kind::parse_eof);
    PollAction a = fsm.on_failed(http_error::partial_message, t0);
    expect_failed(a, fsm, PollError::reset);
    EXPECT_FALSE(a.has(PollAction::count_retry));  // part of an answer came: not an idle close
}

TEST(PollFsm, InterimResponseThenCloseIsNotAnIdleClose) {
    // The parser skipped a 100 Continue (response started), then the server closed.
    PollFsm fsm = connected_fsm();
    start_reused_exchange(fsm, t0);
    EXPECT_EQ(fsm.on_eof(true, t0).kind, Kind::parse_eof);
    EXPECT_EQ(fsm.on_failed(http_error::partial_message, t0).kind, Kind::done);
    EXPECT_EQ(fsm.result().error, PollError::reset);
}

TEST(PollFsm, NoKeepAliveClosesAndTheNextPollConnects) {
    PollFsm fsm = connected_fsm();
    start_reused_exchange(fsm, t0);
    PollAction a = fsm.on_parsed(answer(200, false));
    EXPECT_EQ(a.kind, Kind::deliver);
    EXPECT_TRUE(a.has(PollAction::close));
    fsm.on_delivered();
    EXPECT_EQ(fsm.on_tick(t0 + 1s).kind, Kind::connect);
}

TEST(PollFsm, UsageHeaderReportedWithAnyAnswer) {
    PollFsm fsm = connected_fsm();
    start_reused_exchange(fsm, t0);
    ParseResult r = answer(429);
    r.usage = 1180;
    PollAction a = fsm.on_parsed(r);
    EXPECT_TRUE(a.has(PollAction::report_usage));
    EXPECT_TRUE(a.has(PollAction::pause_host));
    EXPECT_EQ(fsm.usage(), 1180);
    start_reused_exchange(fsm, t0);
    EXPECT_FALSE(fsm.on_parsed(answer(200)).has(PollAction::report_usage));
}

TEST(PollFsm, MappingErrorsAreClassified) {
    using mdagg::MappingError;
    const std::pair<MappingError, PollError> cases[] = {{MappingError::malformed_json, PollError::malformed},
                                                        {MappingError::body_error, PollError::body_error},
                                                        {MappingError::missing_field, PollError::mapping}};
    for (auto [mapping, poll] : cases) {
        PollFsm fsm = connected_fsm();
        start_reused_exchange(fsm, t0);
        ASSERT_EQ(fsm.on_parsed(answer(200)).kind, Kind::deliver);
        PollAction a = fsm.on_mapping_failed(mapping);
        expect_failed(a, fsm, poll);
        EXPECT_FALSE(a.has(PollAction::close));  // the exchange worked
        EXPECT_EQ(fsm.result().verdict, HostVerdict::healthy);
    }
}

TEST(PollFsm, ClosedOutsideAPollReconnects) {
    PollFsm fsm = connected_fsm();
    fsm.on_closed();
    EXPECT_EQ(fsm.on_tick(t0).kind, Kind::connect);
}

// A 2xx body that cannot be decoded (accept_encoding: gzip), stepped through the poll state
// machine without sockets: too large once inflated is body_too_large, a corrupt body a protocol
// error; the response was read whole, so the connection stays open.
#include <mdagg/http.hpp>

#include "poll_fsm_test_helpers.hpp"

#include <gtest/gtest.h>

using poll_fsm_test::answer;
namespace http = mdagg::http;

namespace {

const Clock::time_point t0 = Clock::time_point(100s);

// A poll on a fresh connection, up to its 200 answer's delivery.
PollFsm at_delivery() {
    PollFsm fsm(2s, 1s, 7);
    EXPECT_EQ(fsm.on_tick(t0).kind, Kind::connect);
    EXPECT_EQ(fsm.on_connected(t0 + 1ms).kind, Kind::write);
    EXPECT_EQ(fsm.on_written(true).kind, Kind::parse);
    EXPECT_EQ(fsm.on_parsed(answer(200)).kind, Kind::deliver);
    return fsm;
}

TEST(PollGzip, DecodeErrorsAreClassified) {
    EXPECT_EQ(mdagg::detail::classify(http::make_error_code(http::BodyError::inflated_too_large)),
              PollError::body_too_large);
    EXPECT_EQ(mdagg::detail::classify(http::make_error_code(http::BodyError::corrupt_encoding)), PollError::protocol);
    EXPECT_EQ(mdagg::detail::classify(http::make_error_code(http::BodyError::unsupported_encoding)),
              PollError::protocol);
}

TEST(PollGzip, ABodyInflatingPastTheLimitFailsThePollAndKeepsTheConnection) {
    PollFsm fsm = at_delivery();
    const PollAction a = fsm.on_decode_failed(http::make_error_code(http::BodyError::inflated_too_large));
    EXPECT_EQ(a.kind, Kind::done);
    EXPECT_FALSE(a.has(PollAction::close));
    EXPECT_EQ(fsm.result().outcome, PollerState::failed);
    EXPECT_EQ(fsm.result().error, PollError::body_too_large);
    EXPECT_EQ(fsm.result().detail.message(), "the body inflates past max_body_bytes");
    EXPECT_TRUE(fsm.connected());
    EXPECT_EQ(fsm.on_tick(t0 + 1s).kind, Kind::write);  // the next poll reuses it
}

TEST(PollGzip, ACorruptBodyIsAProtocolErrorThatCountsAgainstTheHost) {
    PollFsm fsm = at_delivery();
    const PollAction a = fsm.on_decode_failed(http::make_error_code(http::BodyError::corrupt_encoding));
    EXPECT_EQ(a.kind, Kind::done);
    EXPECT_EQ(fsm.result().error, PollError::protocol);
    EXPECT_EQ(fsm.result().verdict, HostVerdict::failing);
    EXPECT_TRUE(fsm.connected());
}

}  // namespace

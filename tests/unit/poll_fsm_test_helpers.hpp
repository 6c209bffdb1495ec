#pragma once
// What the PollFsm tests (poll_fsm_test.cpp, poll_fsm_late_test.cpp, poll_gzip_test.cpp) share:
// the names they step the state machine with, and a complete answer to feed it.
#include "poll_fsm.hpp"

#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

#include <chrono>
#include <string_view>

using namespace std::chrono_literals;
using mdagg::HostVerdict;
using mdagg::PollerState;
using mdagg::PollError;
using mdagg::detail::ParseResult;
using mdagg::detail::PollAction;
using mdagg::detail::PollFsm;
using Kind = PollAction::Kind;
using Clock = mdagg::detail::PollClock;
namespace asio = boost::asio;
using http_error = boost::beast::http::error;

namespace poll_fsm_test {

// A complete response with `status`, as the driver reads it off the parser.
inline ParseResult answer(int status, bool keep_alive = true, std::string_view retry_after = {}) {
    ParseResult r;
    r.complete = true;
    r.status = status;
    r.keep_alive = keep_alive;
    r.retry_after = retry_after;
    return r;
}

}  // namespace poll_fsm_test

#include "poll_fsm.hpp"

#include "tls_error.hpp"

#include <mdagg/http.hpp>
#include <mdagg/mapping.hpp>

#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

#include <algorithm>

namespace mdagg::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
using Kind = PollAction::Kind;
using Phase = PollFsmState::Phase;

bool is_stale_connection_error(const boost::system::error_code& ec) {
    return ec == beast::http::error::end_of_stream || ec == asio::error::eof ||
           ec == asio::error::connection_reset || ec == asio::error::broken_pipe;
}

PollError classify(const boost::system::error_code& ec) {
    if (ec == beast::error::timeout) return PollError::timeout;
    if (auto tls = tls_error_class(ec)) return *tls;
    if (ec.category() == asio::error::get_netdb_category() || ec.category() == asio::error::get_addrinfo_category())
        return PollError::resolve;
    if (ec == beast::http::error::body_limit || ec == beast::http::error::buffer_overflow ||
        ec == http::make_error_code(http::BodyError::inflated_too_large))
        return PollError::body_too_large;
    if (ec.category() == http::body_error_category()) return PollError::protocol;  // corrupt gzip
    if (ec == asio::error::connection_refused || ec == asio::error::host_unreachable ||
        ec == asio::error::network_unreachable)
        return PollError::connect;
    if (is_stale_connection_error(ec) || ec == beast::http::error::partial_message) return PollError::reset;
    if (ec == beast::http::error::header_limit) return PollError::protocol;
    if (ec.category() == beast::http::make_error_code(beast::http::error::bad_version).category())
        return PollError::protocol;
    return PollError::reset;
}

PollError classify_mapping(const std::error_code& mapping_error) {
    if (mapping_error == MappingError::malformed_json) return PollError::malformed;
    if (mapping_error == MappingError::body_error) return PollError::body_error;
    return PollError::mapping;
}

PollError classify_status(int status, bool retry_after) {
    if (status == 429 || (status == 503 && retry_after)) return PollError::rate_limited;
    if (status == 418 || status == 403) return PollError::banned;
    if (status >= 500) return PollError::http_5xx;
    if (status >= 400) return PollError::http_4xx;
    return PollError::http_other;
}

HostVerdict verdict_of(PollError e) {
    switch (e) {
        case PollError::connect:
        case PollError::timeout:
        case PollError::reset:
        case PollError::http_5xx:
        case PollError::protocol:
        case PollError::tls_handshake:
        case PollError::tls_verify: return HostVerdict::failing;
        case PollError::resolve:
        case PollError::rate_limited:
        case PollError::banned: return HostVerdict::neutral;
        default: return HostVerdict::healthy;
    }
}

PollAction PollFsm::on_tick(time_point start) {
    s_.attempt = 0;
    s_.connect_grace_used = false;
    s_.request_sent = false;
    s_.late = false;
    if (!s_.connected) return connect(start);
    s_.phase = Phase::ready;
    s_.reused = s_.requests_on_connection > 0;
    s_.deadline = start + timeout_;
    PollAction a = act(Kind::write);
    a.effects = PollAction::arm_deadline;
    return a;
}

PollAction PollFsm::connect(time_point now) {
    s_.phase = Phase::connecting;
    s_.deadline = now + connect_timeout_;
    PollAction a = act(Kind::connect);
    a.effects = PollAction::arm_deadline;
    return a;
}

PollAction PollFsm::on_connected(time_point now) {
    s_.connected = true;
    s_.requests_on_connection = 0;
    s_.reused = false;
    s_.request_sent = false;
    s_.phase = Phase::ready;
    s_.deadline = now + timeout_;
    PollAction a = act(Kind::write);
    a.effects = PollAction::arm_deadline;
    return a;
}

PollAction PollFsm::on_eof(bool response_started, time_point now) {
    // A close-delimited body ends here; anything else was cut short.
    if (response_started) return act(Kind::parse_eof);
    return on_failed(beast::http::error::end_of_stream, now);
}

PollAction PollFsm::on_failed(const error_code& ec, time_point now) {
    if (s_.late) return fail_late(ec);
    if (s_.phase != Phase::connecting) return fail_exchange(ec, now);
    schedule_backoff(now);
    const PollError e = classify(ec);
    PollAction a = close_and(fail(e == PollError::reset ? PollError::connect : e, ec));
    a.effects |= PollAction::back_off;
    return a;
}

PollAction PollFsm::on_deadline(time_point now, bool draining) {
    // The request is with the server and its answer under way or queued: read on, on this
    // connection, until the grace ends. Not while connecting (the TLS handshake has its own
    // grace, extend_handshake) nor with part of the request unsent (nothing can be answering
    // it). The grace counts from when the deadline was noticed: an event loop loaded enough to
    // notice it late has likely left the answer waiting in the socket, and that delay is ours,
    // not the server's (2,000 TLS pollers at 50 ms on a shared 2-core machine, the grace
    // counted from the deadline: 2,130 of 2,193 timeouts were deadlines noticed after the
    // grace's end, each one's answer written by the server and thrown away).
    // How the poll then ends is classified by what comes, as if on time: a good answer is a
    // completed poll (a quote, its latency recorded as it was, a success for the breaker: the
    // host is alive and serving, and opening its breaker would only lose what it serves); the
    // grace running out is the timeout it would have been. The ticks it overran are
    // skipped_ticks, and mdagg_source_late_answers_total counts each grace by its end.
    // Once a drain stopped the intake the answer has the poll's own time only: its end must
    // not move towards the cancel point, where it would take the final flush's time.
    if (!draining && late_grace_ > PollClock::duration::zero() && s_.phase == Phase::exchanging && s_.request_sent &&
        !s_.late) {
        s_.late = true;
        s_.deadline = std::max(s_.deadline, now) + late_grace_;
        PollAction a = act(Kind::read);
        a.effects = PollAction::arm_deadline;
        return a;
    }
    const bool connecting = s_.phase == Phase::connecting;
    if (connecting) schedule_backoff(now);
    PollAction a = close_and(fail(PollError::timeout, beast::error::timeout));
    if (connecting) a.effects |= PollAction::back_off;
    return a;
}

PollAction PollFsm::on_cancel() {
    // Before an exchange began the connection is still good, for the drain to close.
    const bool close = s_.phase == Phase::connecting || s_.phase == Phase::exchanging;
    PollAction a = finish(act(Kind::done), PollerState::cancelled);
    return close ? close_and(a) : a;
}

// Past the deadline, in the late grace. A connection that breaks or closes before the whole
// answer came ends the poll as the timeout it already was: no GET re-sent on a new connection
// (the deadline passed) and no back-off (a timeout never backs off). An answer the parser
// refused (garbled, too large) keeps its own class: the server did answer.
PollAction PollFsm::fail_late(const error_code& ec) {
    const PollError e = classify(ec);
    return close_and(fail(e == PollError::reset ? PollError::timeout : e, ec));
}

PollAction PollFsm::on_decode_failed(const error_code& ec) { return fail(classify(ec), ec); }

PollAction PollFsm::on_mapping_failed(const std::error_code& ec) {
    return fail(classify_mapping(ec), error_code(ec));
}

PollAction PollFsm::close_and(PollAction a) {
    a.effects |= PollAction::close;
    on_closed();
    return a;
}

PollAction PollFsm::fail(PollError e, const error_code& ec, int status) {
    s_.result.error = e;
    s_.result.detail = ec;
    s_.result.status = status;
    return finish(act(Kind::done), e == PollError::timeout ? PollerState::timed_out : PollerState::failed);
}

PollAction PollFsm::fail_exchange(const error_code& ec, time_point now) {
    // A keep-alive connection the server closed while idle: retry the GET once.
    if (s_.reused && s_.attempt == 0 && is_stale_connection_error(ec) && now < s_.deadline) {
        s_.attempt = 1;
        PollAction a = close_and(connect(now));
        a.effects |= PollAction::count_retry;
        return a;
    }
    const PollError e = classify(ec);
    // A server that accepts and then drops or garbles every exchange is as broken as one that
    // refuses: back off the same way instead of reconnecting each tick.
    const bool back_off = !s_.reused && (e == PollError::reset || e == PollError::protocol);
    if (back_off) schedule_backoff(now);
    PollAction a = close_and(fail(e, ec));
    if (back_off) a.effects |= PollAction::back_off;
    return a;
}

PollAction PollFsm::on_response(const ParseResult& r) {
    ++s_.requests_on_connection;
    s_.connect_failures = 0;  // the connection works: an answer came back
    PollAction a = act(Kind::deliver);
    if (!r.keep_alive) a = close_and(a);
    if (r.usage) {
        s_.usage = *r.usage;
        a.effects |= PollAction::report_usage;
    }
    if (r.status >= 200 && r.status <= 299) {
        s_.phase = Phase::delivering;
        return a;
    }
    const PollError e = classify_status(r.status, !r.retry_after.empty());
    // The whole host waits: every poller of it would hit the same limit.
    if (e == PollError::rate_limited || e == PollError::banned) {
        s_.pause.reason = e == PollError::banned ? PauseReason::banned : PauseReason::rate_limited;
        s_.pause.status = r.status;
        s_.pause.wait.reset();
        if (auto wait = http::parse_retry_after(r.retry_after, r.wall_now)) s_.pause.wait = *wait;
        a.effects |= PollAction::pause_host;
    }
    PollAction done = fail(e, {}, r.status);
    done.effects = a.effects;
    return done;
}

void PollFsm::schedule_backoff(time_point now) {
    const auto exp = std::min(s_.connect_failures, 16U);
    const auto ceiling = std::min(backoff_cap, backoff_base * (std::int64_t{1} << exp));
    const auto jitter = std::chrono::nanoseconds(
        static_cast<std::int64_t>(next_random() % static_cast<std::uint64_t>(ceiling.count() + 1)));
    ++s_.connect_failures;
    s_.backoff_until = now + jitter;
}

std::uint64_t PollFsm::next_random() noexcept {  // xorshift64*: cheap, good enough for jitter
    s_.rng_state ^= s_.rng_state >> 12;
    s_.rng_state ^= s_.rng_state << 25;
    s_.rng_state ^= s_.rng_state >> 27;
    return s_.rng_state * 2685821657736338717ULL;
}

}  // namespace mdagg::detail

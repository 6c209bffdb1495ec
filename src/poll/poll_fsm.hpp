#pragma once
// The policy of one poll, sans-io, in the manner of Boost.Redis's reader_fsm/writer_fsm: the
// driver (poll_leg.hpp) feeds it what happened (tick admitted, connected, bytes written, the
// HTTP parser's result, the deadline, a cancel, the server closing the connection) and carries
// out the action it returns. No sockets, no clocks: time comes in with the events. The retry
// after a stale keep-alive, backoff with full jitter, the late grace, the classification of
// errors and statuses and the host pauses live here, and are unit tested without sockets
// (tests/unit/poll_fsm_test.cpp, poll_fsm_late_test.cpp).
#include <mdagg/poll.hpp>

#include <boost/system/error_code.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace mdagg::detail {

using PollClock = std::chrono::steady_clock;

// Connection-level failures (refused, or a fresh connection reset before any answer) back off
// with full jitter: random(0, min(cap, base * 2^attempt)); an answer resets the attempt count.
inline constexpr std::chrono::nanoseconds backoff_base = std::chrono::milliseconds(100);
inline constexpr std::chrono::nanoseconds backoff_cap = std::chrono::seconds(10);

// The late grace (docs/polling.md, "Late answers"): how long past its deadline a poll whose
// request went out in full reads on for the answer. A saturated server answers late rather
// than never, and cutting throws its work away and costs a reconnect (a TLS handshake) that
// loads it further: a metastable collapse. One more `timeout`, but at most one `interval`,
// so a late poll skips at most one tick more than a poll that timed out would have.
constexpr PollClock::duration late_grace(PollClock::duration timeout, PollClock::duration interval) noexcept {
    return std::min(timeout, interval);
}

bool is_stale_connection_error(const boost::system::error_code& ec);
PollError classify(const boost::system::error_code& ec);
PollError classify_mapping(const std::error_code& mapping_error);
// A 503 with Retry-After is the server asking for a pause, as a 429 does: handled (and counted)
// as rate_limited, so it pauses the host without counting against its breaker.
PollError classify_status(int status, bool retry_after);
// What a poll's outcome says about its host, for the circuit breaker: only failures that a
// dead or overloaded host produces count against it; an answer of any other kind shows it alive.
HostVerdict verdict_of(PollError e);

// What the driver does next: first the side effects in `effects`, in the order of their
// bits (close the connection, count a retry, arm the deadline, report usage, pause the host,
// back off), then `kind`.
struct PollAction {
    enum class Kind : std::uint8_t {
        connect,     // resolve and connect (the deadline is armed for it)
        write,       // a new exchange: a fresh parser, then the request straight to the socket
        write_rest,  // wait to write the rest of the request
        parse,       // feed the buffered bytes to the parser, then on_parsed
        read,        // wait for bytes, then on_read / on_eof
        parse_eof,   // the server closed after part of a response: tell the parser, then on_parsed
        deliver,     // map the body and hand the quote on, then on_delivered / on_mapping_failed
        done,        // the poll is over: PollFsm::result()
    };
    enum Effect : std::uint8_t {
        close = 1,
        count_retry = 2,
        arm_deadline = 4,  // at PollFsm::deadline()
        report_usage = 8,  // PollFsm::usage()
        pause_host = 16,   // PollFsm::pause()
        back_off = 32,     // no poll before PollFsm::backoff_until()
    };
    Kind kind = Kind::done;
    std::uint8_t effects = 0;  // Effect bits; most actions have none

    bool has(Effect e) const noexcept { return (effects & e) != 0; }
};

struct PollResult {
    PollerState outcome = PollerState::completed;  // completed, failed, timed_out or cancelled
    PollError error = PollError::count_;           // when failed or timed_out
    boost::system::error_code detail;
    int status = 0;  // the HTTP status of a failed answer
    HostVerdict verdict = HostVerdict::healthy;
    // The poll ran into its late grace; the driver counts how it ended
    // (mdagg_source_late_answers_total: completed is `delivered`, timed_out `closed`).
    bool late = false;
};

// What the driver read off the parser after feeding it: a complete response, or not yet.
// Parse errors, and a response larger than the buffer, come as on_failed.
struct ParseResult {
    bool complete = false;
    int status = 0;
    bool keep_alive = true;
    std::string_view retry_after;  // raw header value; "" when absent
    std::optional<double> usage;
    std::chrono::system_clock::time_point wall_now{};  // for an HTTP-date Retry-After
};

struct HostPause {
    PauseReason reason = PauseReason::none;
    std::optional<PollClock::duration> wait;  // from Retry-After; none: the host's default
    int status = 0;
};

// All of a poller's poll state: one plain struct.
struct PollFsmState {
    enum class Phase : std::uint8_t { idle, connecting, ready, exchanging, delivering };
    // Across polls.
    bool connected = false;
    std::uint64_t requests_on_connection = 0;
    unsigned connect_failures = 0;
    std::uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
    // This poll.
    Phase phase = Phase::idle;
    std::uint8_t attempt = 0;
    bool reused = false;  // the exchange runs on a connection that answered before
    bool connect_grace_used = false;  // this poll's TLS handshake already got more time
    bool request_sent = false;  // this exchange's request is written in full
    bool late = false;          // past the deadline, in the late grace (once per poll)
    PollClock::time_point deadline{};
    PollClock::time_point backoff_until{};
    HostPause pause;   // with PollAction::pause_host
    double usage = 0;  // with PollAction::report_usage
    PollResult result;
};

class PollFsm {
public:
    using time_point = PollClock::time_point;
    using error_code = boost::system::error_code;

    // `late_grace`: see late_grace(); zero cuts every exchange at its deadline.
    PollFsm(PollClock::duration connect_timeout, PollClock::duration timeout, std::uint64_t seed,
            PollClock::duration late_grace = {})
        : connect_timeout_(connect_timeout), timeout_(timeout), late_grace_(late_grace) {
        s_.rng_state ^= seed;
    }

    // The tick was admitted at `start`. Two budgets: connect_timeout for opening a connection,
    // then timeout for the request and response, so a fresh connection never stretches the
    // exchange.
    PollAction on_tick(time_point start);
    PollAction on_connected(time_point now);
    // The connect waited for its turn at the host's connect gate (connect_gate.hpp) and may
    // start now: its connect_timeout budget starts now too. Returns the new deadline.
    time_point on_connect_turn(time_point now) noexcept {
        s_.deadline = now + connect_timeout_;
        return s_.deadline;
    }
    // The direct write took everything (`complete`), or it must wait for the rest.
    PollAction on_written(bool complete) noexcept {
        s_.phase = PollFsmState::Phase::exchanging;
        s_.request_sent = complete;
        return act(complete ? PollAction::Kind::parse : PollAction::Kind::write_rest);
    }
    PollAction on_parsed(const ParseResult& r) {
        return r.complete ? on_response(r) : act(PollAction::Kind::read);
    }
    PollAction on_read() const noexcept { return act(PollAction::Kind::parse); }
    // The server closed the connection; `response_started`: some of a response came first.
    // With nothing received it closed an idle keep-alive connection.
    PollAction on_eof(bool response_started, time_point now);
    // An operation failed (connect, write, read, parse); the deadline and a drain have their
    // own events.
    PollAction on_failed(const error_code& ec, time_point now);
    // The deadline came. An exchange whose request went out in full and whose answer has not
    // completed reads on for the late grace, once (kind `read`, the deadline re-armed one grace
    // after `now`); anything else is cut: a timeout, and the connection closes. `draining`: a
    // drain stopped the intake, so no grace: it would let a hung poll run to ~2x timeout, to
    // the drain's cancel point, and take the sinks' time (a grace granted before stays).
    PollAction on_deadline(time_point now, bool draining = false);
    // The connect deadline came while a TLS handshake was under way (the TCP connection is
    // up, the server has the hello). Once per poll the handshake goes on for connect_timeout
    // more (true; the new deadline is deadline()): a server busy with its connected clients'
    // requests answers hellos late, and cutting throws its handshake work away, so under load
    // the same pollers would time out on every retry and never connect.
    bool extend_handshake(time_point now) noexcept {
        if (s_.phase != PollFsmState::Phase::connecting || s_.connect_grace_used) return false;
        s_.connect_grace_used = true;
        s_.deadline = now + connect_timeout_;
        return true;
    }
    // A drain's cancel; in the late grace it ends the grace at once.
    PollAction on_cancel();
    PollAction on_delivered() noexcept { return finish(act(PollAction::Kind::done), PollerState::completed); }
    PollAction on_mapping_failed(const std::error_code& ec);
    // A 2xx body could not be decoded (http::decode_body): body_too_large once inflated, or a
    // protocol error. The whole response was read: the connection stays usable.
    PollAction on_decode_failed(const error_code& ec);
    // The connection was closed outside a poll (operator cancel, drain).
    void on_closed() noexcept {
        s_.connected = false;
        s_.requests_on_connection = 0;
    }

    const PollFsmState& state() const noexcept { return s_; }
    bool connected() const noexcept { return s_.connected; }
    time_point deadline() const noexcept { return s_.deadline; }
    time_point backoff_until() const noexcept { return s_.backoff_until; }
    const HostPause& pause() const noexcept { return s_.pause; }
    double usage() const noexcept { return s_.usage; }
    const PollResult& result() const noexcept { return s_.result; }

private:
    static PollAction act(PollAction::Kind k) noexcept {
        PollAction a;
        a.kind = k;
        return a;
    }
    PollAction connect(time_point now);
    PollAction close_and(PollAction a);
    PollAction fail(PollError e, const error_code& ec, int status = 0);
    PollAction fail_exchange(const error_code& ec, time_point now);
    PollAction fail_late(const error_code& ec);
    PollAction on_response(const ParseResult& r);
    PollAction finish(PollAction a, PollerState outcome) noexcept {
        s_.phase = PollFsmState::Phase::idle;
        s_.result.outcome = outcome;
        s_.result.late = s_.late;
        s_.result.verdict = outcome == PollerState::cancelled ? HostVerdict::neutral
                            : outcome == PollerState::completed ? HostVerdict::healthy
                                                                : verdict_of(s_.result.error);
        a.kind = PollAction::Kind::done;
        return a;
    }
    void schedule_backoff(time_point now);
    std::uint64_t next_random() noexcept;

    PollClock::duration connect_timeout_;
    PollClock::duration timeout_;
    PollClock::duration late_grace_;
    PollFsmState s_;
};

}  // namespace mdagg::detail

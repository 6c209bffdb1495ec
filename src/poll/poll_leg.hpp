#pragma once
// One driver for both legs of a poll: the primary (the poll on the poller's route,
// poll_path.cpp) and a hedge (the same GET to a mirror, hedge_leg.cpp). drive_leg carries out a
// leg's PollFsm (poll_fsm.hpp) on its transport: connect (through the host's connect gate),
// write, read, parse, its deadline, the retry the fsm asks for. A Leg is a small value naming
// the leg's state and the few steps that differ between the two:
//   PollAction begin();                      the fsm's first action (and what starts with it)
//   PollFsm& fsm(); InFlight<ResponseParser>& parser(); std::string& body();
//   const std::string& request(); Route& route(); std::vector<tcp::endpoint>& endpoints();
//   ConnectSeat& seat(); Poller& p;
//   void arm(Clock::time_point); void disarm();   the leg's deadline in the timer wheel
//   bool expired(); bool stopped(); bool connect_stopped();
//   std::optional<PollAction> cut_before(PollAction::Kind);   before a connect or a write
//   void request_out();                     the request is going out
//   bool deferring_reads(); auto defer_read();   the one-thread round's deferred read
//   PollAction failed(ec); PollAction read_failed(ec); PollAction deliver();
//   void host_paused(const HostPause&); void back_off();
//   std::optional<PollAction> before_end();   a last action before the poll ends
//   template <class T> void end(T& conn);     the leg is over
// Static, not virtual: the primary's hot path compiles to what its own driver was, and a leg
// allocates nothing but its coroutine frames (from the pool, as before).
#include "poller_types.hpp"

#include <boost/beast/http/error.hpp>

#include <algorithm>
#include <optional>
#include <span>

namespace mdagg::detail {

// A fresh parser for the leg's response, on the leg's lent body (in_flight.hpp), with the
// limits of its source and the usage header of its route.
template <class Leg>
void leg_lend_parser(Leg& leg) {
    lend_body(leg.body());
    leg.parser().emplace(leg.body(), leg.p.source.config.max_body_bytes, max_header_bytes, leg.route().usage_header);
    leg.parser()->eager(true);
}

// The final response (interim ones were skipped: the parser holds the last).
inline ParseResult answer_of(const http::ResponseParser& parser) {
    ParseResult r;
    r.complete = true;
    r.status = parser.status();
    r.keep_alive = parser.keep_alive();
    r.retry_after = parser.retry_after();
    r.usage = parser.usage();
    if (!r.retry_after.empty()) r.wall_now = std::chrono::system_clock::now();  // for an HTTP-date
    return r;
}

// Waits for the turn to connect, without the leg's deadline: its connect budget starts when
// the turn comes. An action when the leg ends here: it was stopped (a drain, an operator, the
// race), or the host's breaker opened meanwhile. A leg stopped already does not queue: the
// cancel that stopped it found it not yet waiting, so nothing would take it out of the queue.
template <class Leg>
Task<std::optional<PollAction>> leg_wait_turn(Leg& leg, ConnectTurn& turn) {
    leg.disarm();
    // Two statements: in `a || !co_await x || b` g++ 12 runs the co_await even when `a` is
    // true (a three-operand chain; checked with a minimal program).
    if (leg.stopped()) co_return leg.failed(asio::error::operation_aborted);
    if (!co_await turn.wait(leg.p.executor) || leg.stopped()) co_return leg.failed(asio::error::operation_aborted);
    const auto now = Clock::now();
    if (leg.route().guard.status(now).breaker == BreakerState::open)
        co_return leg.fsm().on_failed(breaker_opened_while_queued(), now);
    leg.arm(leg.fsm().on_connect_turn(now));
    co_return std::nullopt;
}

// Resolves (from the cache; a lookup runs off the event loop) and connects.
template <class Leg, class Transport>
Task<PollAction> leg_connect(Leg& leg, Transport& conn) {
    Route& route = leg.route();
    leg.p.source.stats.connects.fetch_add(1, std::memory_order_relaxed);
    // A numeric host's one endpoint is the route's: no copy per poller.
    std::span<const tcp::endpoint> endpoints(&route.numeric_endpoint, 1);
    if (!route.has_numeric_endpoint) {
        route.resolver.endpoints(leg.endpoints(), Clock::now());
        // No address yet: a lookup is under way; the next tick retries.
        if (leg.endpoints().empty()) co_return leg.fsm().on_failed(asio::error::host_not_found_try_again, Clock::now());
        endpoints = leg.endpoints();
    }
    // At most a few connects per host at once (connect_gate.hpp), a hedge's too; a leg beyond
    // them waits its turn in line.
    ConnectTurn turn(*route.connect_gate, leg.seat());
    if (!turn.try_now()) {
        if (auto waited = co_await leg_wait_turn(leg, turn)) co_return *waited;
    }
    const beast::error_code ec = co_await conn.connect(endpoints, [&leg] { return leg.connect_stopped(); });
    using Outcome = ConnectGate::Outcome;
    turn.set_outcome(!ec ? Outcome::connected : leg.expired() ? Outcome::timed_out : Outcome::neutral);
    if (ec || leg.expired()) co_return leg.failed(ec);
    co_return leg.fsm().on_connected(Clock::now());
}

// Feeds the buffered bytes (this read's, or left over from the last) to the parser.
template <class Leg>
PollAction leg_parse(Leg& leg, ReadBuffer& buffer) {
    auto& parser = leg.parser();
    beast::error_code ec;
    while (buffer.size() > 0 && !parser->is_done()) {
        const std::size_t used = http::put_response(parser, buffer.data(), ec);
        buffer.consume(used);
        if (ec == beast::http::error::need_more) {
            ec = {};
            break;
        }
        if (ec) return leg.failed(ec);
        if (used == 0) break;
    }
    if (parser->is_done()) return leg.fsm().on_parsed(answer_of(*parser));
    // No room left to read into: the answer is larger than the body limit allows.
    if (buffer.size() >= buffer.max_size()) return leg.failed(beast::http::error::buffer_overflow);
    return leg.fsm().on_parsed({});
}

// A close-delimited body ends at the close; anything else was cut short.
template <class Leg>
PollAction leg_parse_eof(Leg& leg) {
    beast::error_code ec;
    leg.parser()->put_eof(ec);
    return ec ? leg.failed(ec) : leg.fsm().on_parsed(answer_of(*leg.parser()));
}

// A read in the late grace with nothing buffered. The grace is long (a `timeout`), and under
// load many polls are in it at once, each holding a 4 KiB read block, a parser and a body for
// an answer that may never come: the peak of polls in flight, so of RSS, rose with the grace
// (2,000 TLS pollers at 50 ms: ~60 -> ~65 MiB). With nothing of the answer read yet they go
// back to their pools for the wait, and are taken again when bytes come (with TLS waits
// releasing their block too: peak RSS 63.0 -> 54.7 MiB, medians of 3, loaded machine).
template <class Leg, class Transport>
Task<PollAction> leg_read_late(Leg& leg, Transport& conn) {
    auto& parser = leg.parser();
    const bool nothing_yet = !parser->got_some() && parser->interim_skipped() == 0;
    if (nothing_yet) {
        parser.reset();
        return_body(leg.body());
    }
    auto& buffer = conn.buffer();
    auto [ec, n] = co_await conn.read_when_ready(std::min<std::size_t>(buffer.max_size() - buffer.size(), 4096));
    if (nothing_yet) leg_lend_parser(leg);
    if (!ec) buffer.commit(n);
    co_return ec ? leg.read_failed(ec) : leg.fsm().on_read();
}

// The side effects an action asks for before its kind.
template <class Leg, class Transport>
void leg_carry_out(Leg& leg, Transport& conn, const PollAction& a) {
    if (a.has(PollAction::close)) conn.close();
    if (a.has(PollAction::count_retry)) leg.p.source.stats.retries.fetch_add(1, std::memory_order_relaxed);
    if (a.has(PollAction::arm_deadline)) leg.arm(leg.fsm().deadline());
    if (a.has(PollAction::report_usage)) leg.route().guard.on_usage(leg.fsm().usage());
    if (a.has(PollAction::pause_host)) {
        // The whole host waits: every poller of it would hit the same limit.
        const auto& pause = leg.fsm().pause();
        if (leg.route().guard.pause(Clock::now(), pause.reason, pause.wait)) leg.host_paused(pause);
    }
    if (a.has(PollAction::back_off)) leg.back_off();
}

// Carries out the leg's state machine until it is done. Never throws for I/O errors. The
// waits are inline, so a leg is one coroutine frame (two when it connects).
template <class Leg, class Transport>
Task<void> drive_leg(Leg leg, Transport& conn) {
    std::size_t written = 0;
    PollAction a = leg.begin();
    for (;;) {
        if (a.effects) leg_carry_out(leg, conn, a);
        switch (a.kind) {
            case PollAction::Kind::connect:
                if (auto cut = leg.cut_before(PollAction::Kind::connect)) a = *cut;
                else a = co_await leg_connect(leg, conn);
                break;
            case PollAction::Kind::write: {
                if (auto cut = leg.cut_before(PollAction::Kind::write)) {
                    a = *cut;
                    break;
                }
                // A fresh parser for the response, then the request straight to the socket. The
                // parser's and the body's storage are lent while the leg is in flight
                // (in_flight.hpp): a retry's second exchange reuses them, the end gives them back.
                leg_lend_parser(leg);
                leg.request_out();
                beast::error_code ec;
                written = conn.write_now(asio::buffer(leg.request()), ec);
                if (ec) {
                    a = leg.failed(ec);
                    break;
                }
                // In the wheel's round, the reads start once every poller due has sent: by then
                // most answers are in, and reading them costs neither an empty recv nor a wakeup.
                if (leg.deferring_reads()) co_await leg.defer_read();
                a = leg.fsm().on_written(written == leg.request().size());
                break;
            }
            case PollAction::Kind::write_rest: {
                if (leg.stopped()) {
                    a = leg.failed(asio::error::operation_aborted);
                    break;
                }
                auto [ec, n] = co_await conn.write(asio::buffer(leg.request()) + written);
                a = ec ? leg.failed(ec) : leg.fsm().on_written(true);
                break;
            }
            case PollAction::Kind::parse: a = leg_parse(leg, conn.buffer()); break;
            case PollAction::Kind::read: {
                if (leg.stopped()) {
                    a = leg.failed(asio::error::operation_aborted);
                    break;
                }
                auto& buffer = conn.buffer();
                if (leg.fsm().state().late && buffer.size() == 0) {
                    a = co_await leg_read_late(leg, conn);
                    break;
                }
                auto [ec, n] = co_await conn.read_some(std::min<std::size_t>(buffer.max_size() - buffer.size(), 4096));
                if (!ec) buffer.commit(n);
                a = ec ? leg.read_failed(ec) : leg.fsm().on_read();
                break;
            }
            case PollAction::Kind::parse_eof: a = leg_parse_eof(leg); break;
            case PollAction::Kind::deliver: a = leg.deliver(); break;
            case PollAction::Kind::done:
                if (auto more = leg.before_end()) {
                    a = *more;
                    break;
                }
                leg.end(conn);
                co_return;
        }
    }
}

}  // namespace mdagg::detail

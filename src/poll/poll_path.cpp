// One poll, driven: PollFsm (poll_fsm.hpp) decides; the driver here carries out its actions on
// the poller's transport, the timer wheel's deadline and the host guard, and counts the outcome.
#include "poller_group.hpp"

#include <boost/beast/http/error.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <variant>

namespace mdagg {

using detail::ParseResult;
using detail::PollAction;
using Kind = PollAction::Kind;

void PollerGroup::Impl::record_failure(Poller& p, const detail::PollResult& f) {
    auto& st = p.source.stats;
    if (f.error == PollError::timeout) {
        st.timed_out.fetch_add(1, std::memory_order_relaxed);
        p.state.store(PollerState::timed_out, std::memory_order_relaxed);
    } else {
        st.failed.fetch_add(1, std::memory_order_relaxed);
        p.state.store(PollerState::failed, std::memory_order_relaxed);
    }
    st.errors[static_cast<std::size_t>(f.error)].fetch_add(1, std::memory_order_relaxed);
    p.last_error.store(static_cast<std::uint8_t>(f.error), std::memory_order_relaxed);
    // 2,000 failing pollers must not flood stdout, nor allocate per failure.
    const auto suppressed = error_log.admit(log::Level::warn, p.source.error_keys[static_cast<std::size_t>(f.error)],
                                            "poll failed");
    if (!suppressed) return;
    nlohmann::json fields{{"source", p.source.config.name},
                          {"symbol", p.symbol_name},
                          {"error", to_string(f.error)}};
    if (p.venue_name) fields["venue_symbol"] = *p.venue_name;  // what the venue was asked for
    if (f.detail) fields["detail"] = f.detail.message();
    if (f.status) fields["status"] = f.status;
    if (*suppressed) fields["suppressed"] = *suppressed;
    log::write(log::Level::warn, "poll failed", fields);
}

// Pauses and breaker changes: one line per change, rate-limited per host and event, since a
// host flapping every cooldown would otherwise log every second.
void PollerGroup::Impl::log_host_event(Poller& p, std::string_view what, PauseReason reason, int status) {
    const detail::Route& route = p.current_route();
    const auto& host = route.url;
    const auto key = route.name + '/' + std::string(what);
    const auto suppressed = error_log.admit(log::Level::warn, key, what);
    if (!suppressed) return;
    const auto st = route.guard.status(Clock::now());
    nlohmann::json fields{{"host", host.host}, {"port", host.port}, {"source", p.source.config.name},
                          {"symbol", p.symbol_name}};
    if (reason != PauseReason::none) {
        fields["reason"] = to_string(reason);
        fields["status"] = status;
        fields["pause_ms"] = std::chrono::duration<double, std::milli>(st.paused_until - Clock::now()).count();
    } else {
        fields["breaker"] = to_string(st.breaker);
        fields["breaker_opens"] = st.breaker_opens;
    }
    if (*suppressed) fields["suppressed"] = *suppressed;
    log::write(what == "circuit breaker closed" ? log::Level::info : log::Level::warn, what, fields);
}

// Carries out the state machine's actions until it is done. Never throws for I/O errors.
// `start` is the tick's wake-up time; the poll's end goes to p.poll_ended. The waits are
// inline, so a poll is one coroutine frame (two when it connects).
template <class Transport>
Task<void> PollerGroup::Impl::drive(Poller& p, Transport& conn, bool probe, Clock::time_point start) {
    p.state.store(PollerState::running, std::memory_order_relaxed);
    p.source.stats.polls_started.fetch_add(1, std::memory_order_relaxed);
    std::size_t written = 0;
    PollAction a = p.fsm.on_tick(start);
    if (p.hedge) hedge_begin(p, start);
    for (;;) {
        if (a.effects) carry_out(p, conn, a);
        switch (a.kind) {
            case Kind::connect:
                if (cancelling.load(std::memory_order_relaxed)) a = p.fsm.on_cancel();
                else if (hedge_answer_waiting(p)) a = take_hedge(p);  // no retry: the hedge won
                else a = co_await connect(p, conn);
                break;
            case Kind::write: {
                if (cancelling.load(std::memory_order_relaxed)) {
                    a = p.fsm.on_cancel();
                    break;
                }
                if (hedge_answer_waiting(p)) {  // the hedge won meanwhile (or during a retry)
                    a = take_hedge(p);
                    break;
                }
                beast::error_code ec;
                written = begin_exchange(p, conn, ec);
                if (ec) {
                    a = failed(p, ec);
                    break;
                }
                // In the wheel's round, the reads start once every poller due has sent: by then
                // most answers are in, and reading them costs neither an empty recv nor a wakeup.
                if (ticks.deferring_reads()) co_await ticks.defer_read();
                a = p.fsm.on_written(written == p.request.size());
                break;
            }
            case Kind::write_rest: {
                if (interrupted(p)) {
                    a = failed(p, asio::error::operation_aborted);
                    break;
                }
                auto [ec, n] = co_await conn.write(asio::buffer(p.request) + written);
                a = ec ? failed(p, ec) : p.fsm.on_written(true);
                break;
            }
            case Kind::parse: a = parse(p, conn.buffer()); break;
            case Kind::read: {
                if (interrupted(p)) {
                    a = failed(p, asio::error::operation_aborted);
                    break;
                }
                auto& buffer = conn.buffer();
                if (p.fsm.state().late && buffer.size() == 0) {
                    a = co_await read_late(p, conn);
                    break;
                }
                auto [ec, n] = co_await conn.read_some(std::min<std::size_t>(buffer.max_size() - buffer.size(), 4096));
                if (!ec) buffer.commit(n);
                a = ec ? read_failed(p, ec) : p.fsm.on_read();
                break;
            }
            case Kind::parse_eof: a = parse_eof(p); break;
            case Kind::deliver: a = p.hedge ? hedge_deliver(p) : deliver(p); break;
            case Kind::done:
                // The hedge won while this poll's own last step (a parse, a read completed just
                // before the cut) ended it otherwise: the won answer still goes out.
                if (hedge_answer_waiting(p) && p.fsm.result().outcome != PollerState::completed) {
                    a = take_hedge(p);
                    break;
                }
                if (p.hedge) hedge_end(p);
                // An idle poller holds no read buffer, parser or body: they are lent per poll.
                conn.release_buffer();
                p.parser.reset();
                detail::return_body(p.body);
                end_poll(p, probe, start);
                co_return;
        }
    }
}

Task<void> PollerGroup::Impl::poll_once(Poller& p, bool probe, Clock::time_point start) {
    return std::visit([&](auto& conn) { return drive(p, conn, probe, start); }, p.connection);
}

// Resolves (from the cache; a lookup runs off the event loop) and connects.
template <class Transport>
Task<PollAction> PollerGroup::Impl::connect(Poller& p, Transport& conn) {
    auto& src = p.current_route();  // the host this poller polls now: the url's or a mirror's
    p.source.stats.connects.fetch_add(1, std::memory_order_relaxed);
    // A numeric host's one endpoint is the source's: no copy per poller.
    std::span<const tcp::endpoint> endpoints(&src.numeric_endpoint, 1);
    if (!src.has_numeric_endpoint) {
        src.resolver.endpoints(p.endpoints, Clock::now());
        // No address yet: a lookup is under way; the next tick retries.
        if (p.endpoints.empty()) co_return p.fsm.on_failed(asio::error::host_not_found_try_again, Clock::now());
        endpoints = p.endpoints;
    }
    // At most a few connects per host at once (connect_gate.hpp); a poller beyond them waits
    // its turn in line, with its connect budget stopped until the turn comes.
    detail::ConnectTurn turn(*src.connect_gate, p.connect_seat);
    if (!turn.try_now()) {
        if (auto waited = co_await wait_turn(p, turn)) co_return *waited;
    }
    auto stop = [this, &p] {
        if (p.deadline_expired && !cancelling.load(std::memory_order_relaxed) && p.fsm.extend_handshake(Clock::now()))
            ticks.arm_deadline(p, p.fsm.deadline());
        return interrupted(p);
    };
    const beast::error_code ec = co_await conn.connect(endpoints, stop);
    using Outcome = detail::ConnectGate::Outcome;
    turn.set_outcome(!ec ? Outcome::connected : p.deadline_expired ? Outcome::timed_out : Outcome::neutral);
    if (ec || p.deadline_expired) co_return failed(p, ec);
    co_return p.fsm.on_connected(Clock::now());
}

// Waits for the turn to connect, without the poll's deadline. An action when the poll ends
// here: a drain or an operator cancelled it, or the host's breaker opened meanwhile.
Task<std::optional<PollAction>> PollerGroup::Impl::wait_turn(Poller& p, detail::ConnectTurn& turn) {
    ticks.disarm_deadline(p);
    if (!co_await turn.wait(p.executor) || cancelling.load(std::memory_order_relaxed))
        co_return failed(p, asio::error::operation_aborted);
    const auto now = Clock::now();
    if (p.current_route().guard.status(now).breaker == BreakerState::open)
        co_return p.fsm.on_failed(detail::breaker_opened_while_queued(), now);
    ticks.arm_deadline(p, p.fsm.on_connect_turn(now));
    co_return std::nullopt;
}

// A fresh parser for the response, then the request straight to the socket. Returns the
// bytes written. The parser's and the body's storage are lent while the poll is in flight
// (in_flight.hpp): a retry's second exchange reuses them, the poll's end gives them back.
template <class Transport>
std::size_t PollerGroup::Impl::begin_exchange(Poller& p, Transport& conn, beast::error_code& ec) {
    lend_parser(p);
    return conn.write_now(asio::buffer(p.request), ec);
}

void PollerGroup::Impl::lend_parser(Poller& p) {
    detail::lend_body(p.body);
    p.parser.emplace(p.body, p.source.config.max_body_bytes, max_header_bytes, p.current_route().usage_header);
    p.parser->eager(true);
}

// A read in the late grace with nothing buffered. The grace is long (a `timeout`), and under
// load many polls are in it at once, each holding a 4 KiB read block, a parser and a body for
// an answer that may never come: the peak of polls in flight, so of RSS, rose with the grace
// (2,000 TLS pollers at 50 ms: ~60 -> ~65 MiB). With nothing of the answer read yet they go
// back to their pools for the wait, and are taken again when bytes come (with TLS waits
// releasing their block too: peak RSS 63.0 -> 54.7 MiB, medians of 3, loaded machine).
template <class Transport>
Task<PollAction> PollerGroup::Impl::read_late(Poller& p, Transport& conn) {
    const bool nothing_yet = !p.parser->got_some() && p.parser->interim_skipped() == 0;
    if (nothing_yet) {
        p.parser.reset();
        detail::return_body(p.body);
    }
    auto& buffer = conn.buffer();
    auto [ec, n] = co_await conn.read_when_ready(std::min<std::size_t>(buffer.max_size() - buffer.size(), 4096));
    if (nothing_yet) lend_parser(p);
    if (!ec) buffer.commit(n);
    co_return ec ? read_failed(p, ec) : p.fsm.on_read();
}

// The deadline or a drain may have fired while the poll was not suspended on the transport,
// where cancel() finds nothing to cancel: checked before every wait. The drain's cancel stays
// a flag (`cancelling`) plus Transport::cancel(), not an asio::cancellation_signal per poller
// bound to each operation: the flag has to be read before each wait anyway (a signal reaches
// only an operation already pending), and a bound slot costs ~59 user instructions per
// operation (callgrind, Asio 1.81, async_read_some on a socket pair: 709 -> 768), ~110 per
// poll, plus a signal and its handler block per poller; the flag costs one relaxed load.
bool PollerGroup::Impl::interrupted(const Poller& p) const noexcept {
    return p.deadline_expired || cancelling.load(std::memory_order_relaxed) || (p.hedge && p.hedge->interrupt_primary);
}

// The poll's deadline comes first, then a drain's cancel, then what the operation said.
// A TLS handshake the deadline cut short is a tls_handshake failure, not a plain timeout.
PollAction PollerGroup::Impl::failed(Poller& p, const beast::error_code& ec) {
    if (hedge_answer_waiting(p)) return take_hedge(p);  // the hedge won: its answer goes out
    const bool handshake_cut = ec == make_error_code(detail::TlsErrc::handshake_interrupted);
    // A drain's stop: no late grace (PollFsm::on_deadline).
    if (p.deadline_expired && !handshake_cut) return p.fsm.on_deadline(Clock::now(), registry.stopping());
    if (cancelling.load(std::memory_order_relaxed) && (ec == asio::error::operation_aborted || handshake_cut))
        return p.fsm.on_cancel();
    return p.fsm.on_failed(ec, Clock::now());
}

PollAction PollerGroup::Impl::read_failed(Poller& p, const beast::error_code& ec) {
    // The server closed: after part of a response (or an interim one) that may be its end,
    // which the parser decides; with nothing, it closed an idle keep-alive connection.
    const bool started = p.parser->got_some() || p.parser->interim_skipped() > 0;
    if (ec == asio::error::eof && (started || !p.deadline_expired)) return p.fsm.on_eof(started, Clock::now());
    // TLS without close_notify: venues close idle keep-alive connections so all the time, but
    // a body delimited by the close may have been cut, so there it is a failure (reset).
    if (detail::is_tls_truncation(ec) && !started && !p.deadline_expired) return p.fsm.on_eof(false, Clock::now());
    return failed(p, ec);
}

// Feeds the buffered bytes (this read's, or left over from the last) to the parser.
PollAction PollerGroup::Impl::parse(Poller& p, detail::ReadBuffer& buffer) {
    beast::error_code ec;
    while (buffer.size() > 0 && !p.parser->is_done()) {
        const std::size_t used = http::put_response(p.parser, buffer.data(), ec);
        buffer.consume(used);
        if (ec == beast::http::error::need_more) {
            ec = {};
            break;
        }
        if (ec) return failed(p, ec);
        if (used == 0) break;
    }
    if (p.parser->is_done()) return p.fsm.on_parsed(answer(p));
    // No room left to read into: the answer is larger than the body limit allows.
    if (buffer.size() >= buffer.max_size()) return failed(p, beast::http::error::buffer_overflow);
    return p.fsm.on_parsed({});
}

// A close-delimited body ends at the close; anything else was cut short.
PollAction PollerGroup::Impl::parse_eof(Poller& p) {
    beast::error_code ec;
    p.parser->put_eof(ec);
    return ec ? failed(p, ec) : p.fsm.on_parsed(answer(p));
}

// The final response (interim ones were skipped: p.parser holds the last).
ParseResult PollerGroup::Impl::answer(const Poller& p) {
    const auto& parser = *p.parser;
    ParseResult r;
    r.complete = true;
    r.status = parser.status();
    r.keep_alive = parser.keep_alive();
    r.retry_after = parser.retry_after();
    r.usage = parser.usage();
    if (!r.retry_after.empty()) r.wall_now = std::chrono::system_clock::now();  // for an HTTP-date
    return r;
}

PollAction PollerGroup::Impl::deliver(Poller& p) {
    if (p.batch) return deliver_batch(p);
    Quote q;
    q.source = p.source.id;
    q.symbol = p.symbol;
    q.receive_time_ns = wall_clock_ns();
    q.via = p.answering_route().via;  // the host that answered; null without mirrors
    // Only an answer to deliver is inflated: an error status's body is never read.
    if (auto ec = http::decode_body(p.body, p.parser->content_encoding(), p.source.config.max_body_bytes))
        return p.fsm.on_decode_failed(ec);
    if (std::error_code ec = p.mapper.map(p.body, p.venue_symbol(), q)) return p.fsm.on_mapping_failed(ec);
    p.last_receive_ns = q.receive_time_ns;
    on_quote(q);
    return p.fsm.on_delivered();
}

// The side effects an action asks for before its kind.
template <class Transport>
void PollerGroup::Impl::carry_out(Poller& p, Transport& conn, const PollAction& a) {
    if (a.has(PollAction::close)) conn.close();
    if (a.has(PollAction::count_retry)) p.source.stats.retries.fetch_add(1, std::memory_order_relaxed);
    if (a.has(PollAction::arm_deadline)) ticks.arm_deadline(p, p.fsm.deadline());
    if (a.has(PollAction::report_usage)) p.current_route().guard.on_usage(p.fsm.usage());
    if (a.has(PollAction::pause_host)) {
        // The whole host waits: every poller of it would hit the same limit.
        const auto& pause = p.fsm.pause();
        if (p.current_route().guard.pause(Clock::now(), pause.reason, pause.wait))
            log_host_event(p, "host paused", pause.reason, pause.status);
    }
    if (a.has(PollAction::back_off)) {
        p.backoff_until = p.fsm.backoff_until();
        p.backoff_route = p.route.load(std::memory_order_relaxed);  // another route is another host
    }
}

// Reports the outcome to the host's breaker and counts it.
void PollerGroup::Impl::end_poll(Poller& p, bool probe, Clock::time_point start) {
    ticks.disarm_deadline(p);
    const detail::PollResult& r = p.fsm.result();
    auto& st = p.source.stats;
    p.probe_pending = false;
    const auto end = p.poll_ended = Clock::now();
    // An answer a hedge won is not this host's: it was slow, or never answered. Neutral for an
    // ordinary poll; a probe of its open breaker failed (it must answer to close the breaker,
    // or every poller would return to a host a mirror answers for).
    const bool hedge_answered = &p.answering_route() != &p.current_route();
    const HostVerdict verdict = !hedge_answered ? r.verdict : probe ? HostVerdict::failing : HostVerdict::neutral;
    if (auto changed = p.current_route().guard.report(end, verdict, probe))
        log_host_event(p, *changed == BreakerState::open ? "circuit breaker opened" : "circuit breaker closed",
                       PauseReason::none, 0);
    if (r.late) {
        const LateAnswer how = r.outcome == PollerState::completed   ? LateAnswer::delivered
                               : r.outcome == PollerState::timed_out ? LateAnswer::closed
                               : r.outcome == PollerState::cancelled ? LateAnswer::cancelled
                                                                     : LateAnswer::failed;
        st.late_answers[static_cast<std::size_t>(how)].fetch_add(1, std::memory_order_relaxed);
    }
    // A late answer delivered counts as completed, with its true latency (PollFsm::on_deadline
    // says why); the grace running out as timed_out, as before.
    switch (r.outcome) {
        case PollerState::cancelled:
            st.cancelled.fetch_add(1, std::memory_order_relaxed);
            p.state.store(PollerState::cancelled, std::memory_order_relaxed);
            break;
        case PollerState::completed:
            st.completed.fetch_add(1, std::memory_order_relaxed);
            st.latency.record(end - start);
            if (p.source.hedge_window) p.source.hedge_window->record(end - start);  // after: pNN
            p.state.store(PollerState::completed, std::memory_order_relaxed);
            break;
        default: record_failure(p, r); break;
    }
}

// The task table's per-poller view of the poll that just finished.
void PollerGroup::Impl::note_outcome(Poller& p, Clock::duration took) {
    p.polls.fetch_add(1, std::memory_order_relaxed);
    p.last_latency_ns.store(duration_cast<nanoseconds>(took).count(), std::memory_order_relaxed);
    switch (p.state.load(std::memory_order_relaxed)) {
        case PollerState::completed:
            p.completed.fetch_add(1, std::memory_order_relaxed);
            p.last_success_ns.store(p.last_receive_ns, std::memory_order_relaxed);
            break;
        case PollerState::timed_out:
            p.timed_out.fetch_add(1, std::memory_order_relaxed);
            p.last_error_ns.store(wall_clock_ns(), std::memory_order_relaxed);
            break;
        case PollerState::failed:
            p.failed.fetch_add(1, std::memory_order_relaxed);
            p.last_error_ns.store(wall_clock_ns(), std::memory_order_relaxed);
            break;
        default: break;  // cancelled by the drain
    }
}

}  // namespace mdagg

// One poll: PollFsm (poll_fsm.hpp) decides; the leg driver (poll_leg.hpp) carries out its
// actions on the poller's transport, the timer wheel's deadline and the host guard; here the
// primary leg's own steps, and the outcome counted.
#include "poll_leg.hpp"
#include "poller_group.hpp"

#include <nlohmann/json.hpp>

#include <variant>

namespace mdagg {

using detail::PollAction;

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

// The primary leg (poll_leg.hpp): the poll on the poller's route. It delivers whatever wins
// the race with a hedge, so exactly one quote per tick reaches the aggregator. `start` is the
// tick's wake-up time; the poll's end goes to p.poll_ended.
struct PollerGroup::Impl::PrimaryLeg {
    Impl& impl;
    Poller& p;
    bool probe;
    Clock::time_point start;

    PollAction begin() {
        p.state.store(PollerState::running, std::memory_order_relaxed);
        p.source.stats.polls_started.fetch_add(1, std::memory_order_relaxed);
        const PollAction a = p.fsm.on_tick(start);
        if (p.hedge) impl.hedge_begin(p, start);
        return a;
    }
    detail::PollFsm& fsm() noexcept { return p.fsm; }
    detail::InFlight<http::ResponseParser>& parser() noexcept { return p.parser; }
    std::string& body() noexcept { return p.body; }
    const std::string& request() const noexcept { return p.request; }
    detail::Route& route() const noexcept { return p.current_route(); }  // the url's host or a mirror's
    std::vector<tcp::endpoint>& endpoints() noexcept { return p.endpoints; }
    detail::ConnectSeat& seat() noexcept { return p.connect_seat; }
    void arm(Clock::time_point deadline) { p.ticks->arm_deadline(p, deadline); }
    void disarm() { p.ticks->disarm_deadline(p); }
    bool expired() const noexcept { return p.deadline_expired; }
    bool stopped() const noexcept { return impl.interrupted(p); }
    // The connect deadline reached a TLS handshake: once per poll it goes on (extend_handshake).
    bool connect_stopped() {
        if (p.deadline_expired && !impl.cancelling.load(std::memory_order_relaxed) && p.fsm.extend_handshake(Clock::now()))
            p.ticks->arm_deadline(p, p.fsm.deadline());
        return impl.interrupted(p);
    }
    // No new exchange after a drain's cancel, nor once the hedge won (no retry either).
    std::optional<PollAction> cut_before(PollAction::Kind) {
        if (impl.cancelling.load(std::memory_order_relaxed)) return p.fsm.on_cancel();
        if (impl.hedge_answer_waiting(p)) return impl.take_hedge(p);
        return std::nullopt;
    }
    void request_out() const noexcept {}
    bool deferring_reads() const noexcept { return p.ticks->deferring_reads(); }
    auto defer_read() { return p.ticks->defer_read(); }
    PollAction failed(const beast::error_code& ec) { return impl.failed(p, ec); }
    PollAction read_failed(const beast::error_code& ec) { return impl.read_failed(p, ec); }
    PollAction deliver() { return p.hedge ? impl.hedge_deliver(p) : impl.deliver(p); }
    void host_paused(const detail::HostPause& pause) { impl.log_host_event(p, "host paused", pause.reason, pause.status); }
    void back_off() {
        p.backoff_until = p.fsm.backoff_until();
        p.backoff_route = p.route.load(std::memory_order_relaxed);  // another route is another host
    }
    // The hedge won while this poll's own last step (a parse, a read completed just before the
    // cut) ended it otherwise: the won answer still goes out.
    std::optional<PollAction> before_end() {
        if (impl.hedge_answer_waiting(p) && p.fsm.result().outcome != PollerState::completed) return impl.take_hedge(p);
        return std::nullopt;
    }
    template <class Transport>
    void end(Transport& conn) {
        if (p.hedge) impl.hedge_end(p);
        // An idle poller holds no read buffer, parser or body: they are lent per poll.
        conn.release_buffer();
        p.parser.reset();
        detail::return_body(p.body);
        impl.end_poll(p, probe, start);
    }
};

Task<void> PollerGroup::Impl::poll_once(Poller& p, bool probe, Clock::time_point start) {
    return std::visit([&](auto& conn) { return detail::drive_leg(PrimaryLeg{*this, p, probe, start}, conn); },
                      p.connection);
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

// Reports the outcome to the host's breaker and counts it.
void PollerGroup::Impl::end_poll(Poller& p, bool probe, Clock::time_point start) {
    p.ticks->disarm_deadline(p);
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

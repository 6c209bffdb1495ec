// Hedged requests (docs/polling.md#hedged-requests): a poll not answered within `after` sends
// the same GET once more, to the next mirror whose guard admits it, on the poller's own second
// connection (PollerHedge). The rules are sans-io (hedge.hpp); the leg driver (poll_leg.hpp)
// runs the hedge as it runs the primary; here are the hedge's own steps and the race.
//
// Why a hand-rolled race and not make_parallel_group(...).async_wait(wait_for_one()) or `||`:
// a poll is not an asio::awaitable (task.hpp says why), the hedge leg must start late (at
// `after`, on the timer wheel, which costs a list insert where an Asio timer per poll would
// cost a timer queue insert and a cancel), and the loser is not simply cancelled: its answer
// may be read to the end to keep its connection. wait_for_one would cancel it at once (and
// in 1.81 leave a Beast stream fit only for closing); `||` on strands has a use-after-free
// before 1.83. So both legs are coroutines on the poller's executor (its strand with several
// threads): their state is touched from nowhere else, and the race needs no lock. The primary
// leg (poll_path.cpp) delivers whatever wins, so exactly one quote per tick reaches the
// aggregator; the hedge leg only fetches and hands its parser and body over.
#include "poll_leg.hpp"
#include "poller_group.hpp"

#include <coroutine>

namespace mdagg {

using detail::HedgeRace;
using detail::PollAction;
using Kind = PollAction::Kind;

namespace {

constexpr auto relaxed = std::memory_order_relaxed;

// run()'s end waits for a leg still draining: the poller must outlive its coroutines.
struct HedgeLegEnd {
    detail::PollerHedge& h;
    bool await_ready() const noexcept { return !h.running; }
    void await_suspend(std::coroutine_handle<> c) noexcept { h.waiter = c; }
    void await_resume() const noexcept {}
};

bool answer_arriving(const detail::InFlight<http::ResponseParser>& parser) {
    return parser.has_value() && (parser->got_some() || parser->interim_skipped() > 0);
}

// A loser's answer is arriving: the parser has some of it, or bytes wait in the buffer or the
// socket (an ioctl, on the loser's path only). Then reading it keeps the connection; closing
// would also throw away an answer the server already sent.
bool answer_arriving(const detail::InFlight<http::ResponseParser>& parser, detail::AnyTransport& conn) {
    if (answer_arriving(parser)) return true;
    if (!parser.has_value()) return false;  // connecting: no request out yet
    return std::visit([](auto& c) { return c.buffer().size() > 0 || c.available() > 0; }, conn);
}

}  // namespace

void PollerGroup::Impl::on_hedge_entry(void* impl, Poller& p) { static_cast<Impl*>(impl)->hedge_due(p); }

// The primary's poll starts: earn max_extra, arm the hedge at `after` from its tick (or pNN
// from its wake-up: hedge_at).
void PollerGroup::Impl::hedge_begin(Poller& p, Clock::time_point start) {
    auto& h = *p.hedge;
    h.poll_open = true;
    h.interrupt_primary = false;
    p.source.hedge_budget->on_first_request();
    if (h.running) return;  // the last poll's loser still drains: no hedge this poll
    h.race.store(HedgeRace::idle, relaxed);
    const auto& cfg = p.source.config.hedge;
    const auto percentile = p.source.hedge_window ? p.source.hedge_window->threshold() : nanoseconds::zero();
    const auto delay = detail::hedge_delay(cfg.after, percentile, cfg.percentile != 0, p.source.config.timeout);
    if (delay > nanoseconds::zero()) p.ticks->arm_hedge(p, detail::hedge_at(cfg.percentile != 0, p.tick_due, start, delay));
}

// The hedge entry fired: the hedge is due, or the running leg's deadline (or grace) passed.
void PollerGroup::Impl::hedge_due(Poller& p) {
    auto& h = *p.hedge;
    if (h.running) {
        h.expired = true;
        h.cancel_io();
        return;
    }
    if (!h.poll_open || h.race.load(relaxed) != HedgeRace::idle || cancelling.load(relaxed)) return;
    hedge_send(p, Clock::now());
}

// Budget first (no mirror's tokens are spent on a hedge that may not go), then the next route
// after the poller's whose guard admits it: tokens, pause, breaker (HostGuard::admit).
void PollerGroup::Impl::hedge_send(Poller& p, Clock::time_point now) {
    auto& h = *p.hedge;
    auto& st = p.source.stats;
    auto& budget = *p.source.hedge_budget;
    if (!budget.try_take()) {
        st.hedges_refused_budget.fetch_add(1, relaxed);
        return;
    }
    const std::size_t n = p.source.routes.size(), current = p.route.load(relaxed);
    std::size_t chosen = detail::no_route;
    Admission admission = Admission::go;
    for (std::size_t k = 1; k < n && chosen == detail::no_route; ++k) {
        const std::size_t r = (current + k) % n;
        admission = p.source.routes[r]->guard.admit(now, p.source.config.cost,
                                                    p.effective_priority.load(relaxed));
        if (admission == Admission::go || admission == Admission::probe) chosen = r;
    }
    if (chosen == detail::no_route) {
        budget.refund();
        st.hedges_refused_host.fetch_add(1, relaxed);
        return;
    }
    const detail::Route& to = *p.source.routes[chosen];
    if (!h.connection || h.route != chosen) {  // the first hedge, or another mirror: a new connection
        h.close();
        h.connection.reset();
        const std::size_t limit = p.source.config.max_body_bytes + max_header_bytes;
        if (to.tls) h.connection.emplace(std::in_place_type<detail::TlsTransport>, p.executor, limit, *to.tls);
        else h.connection.emplace(std::in_place_type<detail::TcpTransport>, p.executor, limit);
        h.route = static_cast<std::uint8_t>(chosen);
        h.request_stale = true;
    }
    if (h.request_stale) {  // a new mirror, or a batch whose members were paused or resumed
        h.request = get_request(p.source, to.url,
                                p.batch ? p.batch->target_on(to.url, p.source.config)
                                        : to.url.target_for(p.venue_symbol()));
        h.request_stale = false;
    }
    h.probe = admission == Admission::probe;
    h.expired = h.cancelled = h.written = false;
    h.grace.reset();
    h.race.store(HedgeRace::racing, relaxed);
    h.running = true;
    hedge_leg(p).spawn(
        p.executor,
        [](void* poller, std::exception_ptr e) {
            auto& hedge = *static_cast<Poller*>(poller)->hedge;
            hedge.running = false;
            if (e) log::error("hedge leg crashed", {});
            if (hedge.waiter) std::exchange(hedge.waiter, {}).resume();
        },
        &p);
}

// The hedge leg (poll_leg.hpp): the same GET on the poller's second connection, to a mirror,
// with its own PollFsm (no late grace: past its deadline it is cut) and no deferred read. It
// only fetches: a won answer is handed to the primary (hedge_answered, adopt_hedge_answer).
struct PollerGroup::Impl::HedgeLeg {
    Impl& impl;
    Poller& p;

    detail::PollerHedge& h() const noexcept { return *p.hedge; }
    PollAction begin() { return h().fsm.on_tick(Clock::now()); }
    detail::PollFsm& fsm() noexcept { return h().fsm; }
    detail::InFlight<http::ResponseParser>& parser() noexcept { return h().parser; }
    std::string& body() noexcept { return h().body; }
    const std::string& request() const noexcept { return h().request; }
    detail::Route& route() const noexcept { return *p.source.routes[h().route]; }
    std::vector<tcp::endpoint>& endpoints() noexcept { return h().endpoints; }
    detail::ConnectSeat& seat() noexcept { return h().connect_seat; }
    // A losing leg keeps the end of its grace, whatever re-arms its deadline (LoserGrace).
    void arm(Clock::time_point deadline) { p.ticks->arm_hedge(p, h().grace.bound(deadline)); }
    void disarm() { p.ticks->disarm_hedge(p); }
    bool expired() const noexcept { return h().expired; }
    bool stopped() const noexcept { return impl.hedge_stopped(p); }
    bool connect_stopped() const noexcept { return impl.hedge_stopped(p); }
    std::optional<PollAction> cut_before(PollAction::Kind k) {
        // A leg no longer racing (it lost, or was abandoned) whose reused connection failed
        // does not reconnect: its answer would be dropped, the request is load outside
        // max_extra, and a wait at a full connect gate would outlast its grace.
        if (k == Kind::connect && h().race.load(relaxed) != HedgeRace::racing && h().written) {
            h().cancelled = true;
            return impl.hedge_failed(p, asio::error::operation_aborted);
        }
        if (k == Kind::write && impl.hedge_stopped(p)) return impl.hedge_failed(p, asio::error::operation_aborted);
        return std::nullopt;
    }
    // Sent once its request goes out: a leg cancelled while connecting was not.
    void request_out() {
        if (!std::exchange(h().written, true)) p.source.stats.hedges_sent.fetch_add(1, relaxed);
    }
    static constexpr bool deferring_reads() noexcept { return false; }
    std::suspend_never defer_read() const noexcept { return {}; }
    PollAction failed(const beast::error_code& ec) { return impl.hedge_failed(p, ec); }
    // Past its deadline the server's close ends nothing: the leg is cut.
    PollAction read_failed(const beast::error_code& ec) {
        if (ec == asio::error::eof && !h().expired) return h().fsm.on_eof(answer_arriving(h().parser), Clock::now());
        return impl.hedge_failed(p, ec);
    }
    PollAction deliver() { return impl.hedge_answered(p); }
    void host_paused(const detail::HostPause&) const noexcept {}  // logged by its own pollers
    // A hedge does not hold the poller back; the mirror's breaker hears the verdict.
    void back_off() const noexcept {}
    std::optional<PollAction> before_end() const noexcept { return std::nullopt; }
    template <class Transport>
    void end(Transport& conn) {
        conn.release_buffer();
        impl.hedge_finish(p);
    }
};

Task<void> PollerGroup::Impl::hedge_leg(Poller& p) {
    return std::visit([&](auto& conn) { return detail::drive_leg(HedgeLeg{*this, p}, conn); }, *p.hedge->connection);
}

bool PollerGroup::Impl::hedge_stopped(const Poller& p) const noexcept {
    return p.hedge->expired || p.hedge->cancelled || cancelling.load(relaxed);
}

// The leg's own PollFsm, without a late grace: past its deadline it is cut.
PollAction PollerGroup::Impl::hedge_failed(Poller& p, const beast::error_code& ec) {
    auto& h = *p.hedge;
    if (h.expired) return h.fsm.on_deadline(Clock::now());
    if ((h.cancelled || cancelling.load(relaxed)) && ec == asio::error::operation_aborted) return h.fsm.on_cancel();
    return h.fsm.on_failed(ec, Clock::now());
}

// The hedge has a complete 2xx answer. First: the primary will deliver it. Its own pending
// wait ends now, unless its answer is arriving: then it reads it to the end and drops it.
PollAction PollerGroup::Impl::hedge_answered(Poller& p) {
    auto& h = *p.hedge;
    const HedgeRace r = detail::on_hedge_answer(h.race.load(relaxed));
    if (r == HedgeRace::hedge_won) {
        h.race.store(r, relaxed);
        p.source.stats.hedge_wins[p.source.routes[h.route]->poll_slot].fetch_add(1, relaxed);  // by host
        if (detail::loser_fate(answer_arriving(p.parser, p.connection)) == detail::LoserFate::cancel) {
            h.interrupt_primary = true;
            p.cancel_io();
        } else {
            // Its answer is arriving: read it for the loser's grace at most, not its whole
            // deadline (and no late grace): the won answer goes out when it ends, whatever
            // its outcome (hedge_answer_waiting).
            p.ticks->arm_deadline(p, std::min(p.fsm.deadline(), Clock::now() + detail::hedge_loser_grace));
        }
    }
    return h.fsm.on_delivered();
}

// The leg is over: its verdict to the mirror's breaker, and what became of it.
void PollerGroup::Impl::hedge_finish(Poller& p) {
    auto& h = *p.hedge;
    auto& st = p.source.stats;
    p.ticks->disarm_hedge(p);
    const auto& result = h.fsm.result();
    const HedgeRace race = h.race.load(relaxed);
    const auto verdict = detail::hedge_verdict(race, result.verdict, h.expired, h.grace.cuts_before(h.fsm.deadline()));
    p.source.routes[h.route]->guard.report(Clock::now(), verdict, h.probe);
    h.probe = false;
    // Only this leg's own cut: a leg that failed by itself just after a drain began failed.
    // The drain's flag can end the leg (on_cancel) before the interrupt posted to it sets
    // `cancelled`: that is its cut too.
    const bool cut = h.cancelled || result.outcome == PollerState::cancelled;
    switch (detail::tally_leg(race, h.written, cut, result.outcome == PollerState::completed)) {
        case detail::LegTally::failed: st.hedges_failed.fetch_add(1, relaxed); break;  // the primary goes on alone
        case detail::LegTally::unsent: st.hedges_unsent.fetch_add(1, relaxed); break;
        case detail::LegTally::loser_cancelled: st.losers_cancelled.fetch_add(1, relaxed); break;
        case detail::LegTally::loser_discarded: st.losers_discarded.fetch_add(1, relaxed); break;
        case detail::LegTally::none: break;
    }
    if (race == HedgeRace::hedge_won) return;  // the primary takes the parser and body
    if (race == HedgeRace::racing) h.race.store(HedgeRace::idle, relaxed);
    h.parser.reset();
    detail::return_body(h.body);
}

// The hedge won: its parser and body become the primary's, which it delivers.
void PollerGroup::Impl::adopt_hedge_answer(Poller& p) {
    auto& h = *p.hedge;
    h.interrupt_primary = false;
    p.parser.swap(h.parser);
    p.body.swap(h.body);
    h.parser.reset();
    detail::return_body(h.body);
}

// The hedge won and its answer waits for the primary to deliver it (adopt_hedge_answer takes it).
bool PollerGroup::Impl::hedge_answer_waiting(const Poller& p) const noexcept {
    return p.hedge && p.hedge->race.load(relaxed) == HedgeRace::hedge_won && p.hedge->parser.has_value();
}

// The primary's wait ended because the hedge won (hedge_answered): it had no byte of its
// answer, or its loser's grace ran out, or it ended otherwise (a 503, a reset): its connection
// closes (HTTP/1.1 cannot take a request back) and the hedge's answer goes out.
PollAction PollerGroup::Impl::take_hedge(Poller& p) {
    std::visit([](auto& c) { c.close(); }, p.connection);
    p.fsm.on_closed();
    p.source.stats.losers_cancelled.fetch_add(1, relaxed);
    adopt_hedge_answer(p);
    return deliver(p);
}

// The primary has a complete 2xx answer. The hedge came first: this one is the loser's, read
// and dropped. Otherwise the primary wins and the hedge, if out, is the loser.
PollAction PollerGroup::Impl::hedge_deliver(Poller& p) {
    auto& h = *p.hedge;
    const HedgeRace r = h.race.load(relaxed);
    if (!detail::primary_delivers_own(r)) {
        p.source.stats.losers_discarded.fetch_add(1, relaxed);
        adopt_hedge_answer(p);
    } else if (r == HedgeRace::racing) {
        h.race.store(HedgeRace::primary_won, relaxed);
        settle_loser(p);
    }
    return deliver(p);
}

// The hedge leg lost (or its poll ended without an answer): closed now, or, with its answer
// arriving, read on for a short grace and dropped.
void PollerGroup::Impl::settle_loser(Poller& p) {
    auto& h = *p.hedge;
    if (!h.running) return;
    if (detail::loser_fate(answer_arriving(h.parser, *h.connection)) == detail::LoserFate::drain) {
        p.ticks->arm_hedge(p, h.grace.start(Clock::now(), h.fsm.deadline()));
        return;
    }
    h.cancelled = true;
    h.cancel_io();
}

// The primary's poll is over, whatever its outcome.
void PollerGroup::Impl::hedge_end(Poller& p) {
    auto& h = *p.hedge;
    h.poll_open = false;
    h.interrupt_primary = false;
    if (h.running) {
        if (h.race.load(relaxed) == HedgeRace::racing) {
            h.race.store(HedgeRace::abandoned, relaxed);
            settle_loser(p);
        }
        return;
    }
    p.ticks->disarm_hedge(p);  // not due yet: no hedge this poll
    if (h.parser.has_value()) {  // a won answer the primary never took (a drain's cancel came first)
        h.parser.reset();
        detail::return_body(h.body);
    }
}

// run()'s end: the poller waits for a leg still running, whatever ended run(). Its poll
// ended, so settle_loser already closed it or gave it a short grace to read an arriving
// answer; a drain's cancel or an operator's (interrupt()) cuts that too. A poll that threw
// (`poll_threw`) may have skipped hedge_end: the leg is cut now, nothing will deliver it.
Task<void> PollerGroup::Impl::hedge_join(Poller& p, bool poll_threw) {
    auto& h = *p.hedge;
    if (poll_threw) {
        if (h.poll_open) hedge_end(p);
        if (h.running) {
            h.cancelled = true;
            h.cancel_io();
        }
    }
    if (h.running) co_await HedgeLegEnd{h};
}

}  // namespace mdagg

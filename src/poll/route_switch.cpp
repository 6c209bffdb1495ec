// A poller's move between the routes of its source (the url's host and its mirrors'):
// failover.hpp picks the route each tick; this carries a change out between two polls.
#include "poller_group.hpp"

namespace mdagg {

void PollerGroup::Impl::switch_route(Poller& p, std::size_t route) {
    const std::size_t from = p.route.load(std::memory_order_relaxed);
    if (route == from) return;
    const detail::Route& to = *p.source.routes[route];
    // Another host: the connection, its TLS session and the request's Host are the old one's.
    p.close_connection();
    if (to.tls) {
        const std::size_t limit = p.source.config.max_body_bytes + max_header_bytes;
        p.connection.emplace<detail::TlsTransport>(p.executor, limit, *to.tls);
    }
    // The same path and query the poller asks of its url's host.
    p.request = get_request(p.source, to.url,
                            p.batch ? p.batch->target_on(to.url, p.source.config) : to.url.target_for(p.venue_symbol()));
    p.route.store(static_cast<std::uint8_t>(route), std::memory_order_relaxed);
    registry.moved_route(p);  // after the store: an operator's resume meanwhile reads either
    auto& st = p.source.stats;
    (route > from ? st.failovers : st.failbacks).fetch_add(1, std::memory_order_relaxed);
    // 2,000 pollers move together when a host fails: one line per source and direction per 10 s.
    const std::string_view what = route > from ? "poller failed over" : "poller returned";
    std::string key = p.source.config.name;
    key.append(route > from ? "/failover" : "/return");
    const auto suppressed = error_log.admit(log::Level::info, key, what);
    if (!suppressed) return;
    nlohmann::json fields{{"source", p.source.config.name},
                          {"symbol", p.symbol_name},
                          {"from", p.source.routes[from]->name},
                          {"to", to.name},
                          {"mirror", route}};
    if (*suppressed) fields["suppressed"] = *suppressed;
    log::write(log::Level::info, what, fields);
}

// The failed probe counts as the poll it was (failed, for the task table too); the tick then
// polls again on the route that takes it now, under the same tick's deadlines (its start is
// the wake-up), so its latency is the tick's. A route that refuses it (an empty bucket) or
// a drain leaves the tick as the failed probe left it.
Task<void> PollerGroup::Impl::after_probe(Poller& p, Clock::time_point woke) {
    const auto now = Clock::now();
    if (!detail::fall_back_after_probe(true, p.fsm.result().verdict, p.source.routes.size(), now,
                                       woke + p.source.config.connect_timeout) ||
        registry.stopping() || cancelling.load(std::memory_order_relaxed) ||
        p.control.load(std::memory_order_acquire) != PollerControl::active)
        co_return;
    const auto backoff = now < p.backoff_until ? p.backoff_route : detail::no_route;
    const detail::RouteChoice choice = detail::choose_route(p.source.route_guards, now, p.source.config.cost, backoff,
                                                            p.effective_priority.load(std::memory_order_relaxed));
    if (!choice.polls() || choice.backing_off || choice.route == p.route.load(std::memory_order_relaxed)) {
        // A probe admitted but not sent must be given back, or that host stays half-open.
        if (choice.admission == Admission::probe)
            p.source.routes[choice.route]->guard.report(now, HostVerdict::neutral, true);
        co_return;
    }
    note_outcome(p, p.poll_ended - woke);
    switch_route(p, choice.route);
    p.probe_pending = choice.admission == Admission::probe;  // the caller's ProbeRelease covers a throw
    p.source.stats.route_polls[p.current_route().poll_slot].fetch_add(1, std::memory_order_relaxed);
    // Counted as handed on: how the mirror's poll ends is counted like any poll's.
    p.source.stats.probe_fallbacks.fetch_add(1, std::memory_order_relaxed);
    co_await poll_once(p, p.probe_pending, woke);
}

}  // namespace mdagg

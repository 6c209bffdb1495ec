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

}  // namespace mdagg

#pragma once
// Failover across a source's mirrors (issue 15), sans-io: which of a poller's routes (the
// source's url, then its mirrors in order) takes a tick. Each route's host has its own
// HostGuard; the caller passes the time. Unit tested in tests/unit/poll_failover_test.cpp.
#include <mdagg/poll.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <vector>

namespace mdagg::detail {

inline constexpr std::size_t no_route = static_cast<std::size_t>(-1);

struct RouteChoice {
    // The route that polls; when none does, the route whose refusal the tick counts as.
    std::size_t route = 0;
    Admission admission = Admission::go;
    bool backing_off = false;  // refused by the poller's own connect backoff on `route`
    bool polls() const noexcept { return admission == Admission::go || admission == Admission::probe; }
};

// Routes are tried in order. A host that is paused or whose breaker is open (its probe
// excepted: admit() hands it to one poller) passes the tick on to the next route, in the same
// tick. An empty bucket does not: it skips the tick, as without mirrors. A route the poller
// is backing off from (`backoff_route`, no_route for none) skips the tick unless its host
// refuses anyway and a later route may take it. Takes tokens only from the route that polls.
// Without a route that takes it, the tick counts as the first refusal (the primary's).
// `priority`: the tick's effective priority, for each host's bucket (HostGuard::admit).
RouteChoice choose_route(std::span<HostGuard* const> guards, HostGuard::Clock::time_point now, double cost,
                         std::size_t backoff_route, std::uint8_t priority = 0);

// After a tick's poll: whether the same tick goes on to the next route (issue 15: ticks are
// not lost in the switch). Only when the poll was its host's breaker probe and failed the
// host (refused, reset, timed out, 5xx: the breaker re-opens, so choose_route now passes the
// tick on), another route exists, and the tick's connect budget (`budget_end`: its wake-up
// plus connect_timeout, the deadline the fallback's connect keeps) has time left. A probe
// that timed out has used it up: that tick stays lost, as a probe beside the mirror's poll
// would have cost a second connection per poller and a request more each cooldown.
bool fall_back_after_probe(bool probe, HostVerdict verdict, std::size_t routes, HostGuard::Clock::time_point now,
                           HostGuard::Clock::time_point budget_end);

// Where a poller's priority counts toward a host's reserves (HostGuard::note_priority): on the
// host of the route it polls now, and on none while an operator has it paused or cancelled or
// once it is gone. So a mirror keeps no reserve for pollers that are not on it. Not
// thread-safe: the registry's mutex guards it.
struct PriorityReserve {
    HostGuard* on = nullptr;
    void move_to(HostGuard* guard, std::uint8_t priority) {
        if (guard == on) return;
        if (guard) guard->note_priority(priority, 1);
        if (on) on->note_priority(priority, -1);
        on = guard;
    }
};

// The index of route `name` in `labels` (a source's mdagg_source_route_polls_total labels, by
// counter index), added when new: counts follow the host, not its place in `mirrors`, which
// a reload may reorder. At max_poll_routes labels, a label not `in_use` (the newest runtime's
// route names) gives its place up and `reused` is set: its count must restart.
std::size_t route_label(std::vector<std::string>& labels, const std::vector<std::string>& in_use,
                        const std::string& name, bool& reused);

// A route's host as quote records name it (`via`): "host", or "host:port" when the port is
// not the scheme's default; an IPv6 address in brackets. Never the path or query (which may
// hold secrets) nor userinfo.
std::string route_via(const Url& url);

}  // namespace mdagg::detail

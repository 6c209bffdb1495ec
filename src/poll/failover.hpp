#pragma once
// Failover across a source's mirrors (issue 15), sans-io: which of a poller's routes (the
// source's url, then its mirrors in order) takes a tick. Each route's host has its own
// HostGuard; the caller passes the time. Unit tested in tests/unit/poll_failover_test.cpp.
#include <mdagg/poll.hpp>

#include <cstddef>
#include <span>

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

}  // namespace mdagg::detail

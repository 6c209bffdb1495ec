#include "failover.hpp"

#include <optional>

namespace mdagg::detail {

namespace {

// Whether the host refuses every tick now (its probe aside), read without taking anything.
std::optional<Admission> refusal(const HostGuard& guard, HostGuard::Clock::time_point now) {
    const HostGuard::Status st = guard.status(now);
    if (st.pause != PauseReason::none) return Admission::paused;
    if (st.breaker != BreakerState::closed) return Admission::breaker_open;
    return std::nullopt;
}

}  // namespace

RouteChoice choose_route(std::span<HostGuard* const> guards, HostGuard::Clock::time_point now, double cost,
                         std::size_t backoff_route, std::uint8_t priority) {
    std::optional<RouteChoice> refused;
    for (std::size_t r = 0; r < guards.size(); ++r) {
        HostGuard& guard = *guards[r];
        const bool last = r + 1 == guards.size();
        if (r == backoff_route) {
            // A backoff is this poller's and this host's business: it holds the poller on
            // this route unless the host turns everyone away and another route may serve.
            const auto why = refusal(guard, now);
            if (!why || last) return {r, Admission::throttled, true};
            if (!refused) refused = RouteChoice{r, *why, false};
            continue;
        }
        const Admission a = guard.admit(now, cost, priority);
        if (a == Admission::go || a == Admission::probe || a == Admission::throttled) return {r, a, false};
        if (!refused) refused = RouteChoice{r, a, false};
    }
    return refused.value_or(RouteChoice{0, Admission::breaker_open, false});
}

}  // namespace mdagg::detail

#include "failover.hpp"

#include <algorithm>
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

bool fall_back_after_probe(bool probe, HostVerdict verdict, std::size_t routes, HostGuard::Clock::time_point now,
                           HostGuard::Clock::time_point budget_end) {
    return probe && verdict == HostVerdict::failing && routes > 1 && now < budget_end;
}

std::size_t route_label(std::vector<std::string>& labels, const std::vector<std::string>& in_use,
                        const std::string& name, bool& reused) {
    reused = false;
    if (auto it = std::find(labels.begin(), labels.end(), name); it != labels.end())
        return static_cast<std::size_t>(it - labels.begin());
    if (labels.size() < max_poll_routes) {
        labels.push_back(name);
        return labels.size() - 1;
    }
    for (std::size_t i = 0; i < labels.size(); ++i) {
        if (std::find(in_use.begin(), in_use.end(), labels[i]) != in_use.end()) continue;
        labels[i] = name;
        reused = true;
        return i;
    }
    return 0;  // unreachable while a runtime has at most max_poll_routes routes
}

std::string route_via(const Url& url) {
    std::string out;
    const bool v6 = url.host.find(':') != std::string::npos;
    if (v6) out.push_back('[');
    out.append(url.host);
    if (v6) out.push_back(']');
    const std::uint16_t default_port = url.scheme == "https" ? 443 : 80;
    if (url.port != default_port) {
        out.push_back(':');
        out.append(std::to_string(url.port));
    }
    return out;
}

}  // namespace mdagg::detail

// The host guards' families in /metrics: a handful of hosts, so one series each.
#include <mdagg/poll_metrics.hpp>

namespace mdagg {

void write_host_metrics(PrometheusWriter& w, const std::vector<std::pair<std::string, HostGuard::Status>>& hosts,
                        std::chrono::steady_clock::time_point now) {
    w.family("mdagg_host_breaker_state", "gauge", "1 for the circuit breaker's current state (closed, open, half_open).");
    for (const auto& [name, st] : hosts)
        for (auto state : {BreakerState::closed, BreakerState::open, BreakerState::half_open})
            w.sample("mdagg_host_breaker_state", {{"host", name}, {"state", to_string(state)}}, st.breaker == state ? 1 : 0);
    w.family("mdagg_host_breaker_opens_total", "counter", "Times the circuit breaker opened.");
    for (const auto& [name, st] : hosts)
        w.sample("mdagg_host_breaker_opens_total", {{"host", name}}, static_cast<double>(st.breaker_opens));
    w.family("mdagg_host_paused", "gauge", "1 while the host is paused by a rate limit or a ban.");
    for (const auto& [name, st] : hosts) w.sample("mdagg_host_paused", {{"host", name}}, st.pause != PauseReason::none ? 1 : 0);
    w.family("mdagg_host_pause_remaining_seconds", "gauge", "Time left of the host's pause.");
    for (const auto& [name, st] : hosts)
        w.sample("mdagg_host_pause_remaining_seconds", {{"host", name}},
                 st.pause != PauseReason::none ? std::chrono::duration<double>(st.paused_until - now).count() : 0.0);
    w.family("mdagg_host_pauses_total", "counter", "Pauses of the host, by reason.");
    for (const auto& [name, st] : hosts) {
        w.sample("mdagg_host_pauses_total", {{"host", name}, {"reason", "rate_limited"}}, static_cast<double>(st.pauses_rate_limited));
        w.sample("mdagg_host_pauses_total", {{"host", name}, {"reason", "banned"}}, static_cast<double>(st.pauses_banned));
    }
    w.family("mdagg_host_rate_factor", "gauge", "Share of the host's rate in use: below 1 while a usage header slows it.");
    for (const auto& [name, st] : hosts) w.sample("mdagg_host_rate_factor", {{"host", name}}, st.rate_factor);
}

}  // namespace mdagg

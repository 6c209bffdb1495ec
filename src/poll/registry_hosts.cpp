// The registry's host guards: one per host entry, shared by the sources that poll it; their
// states for the admin server and the metrics, and the server pauses kept across restarts.
#include "registry.hpp"

#include <mdagg/observe.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>

namespace mdagg::detail {

// Under mutex_: a guard per configured host (host_status(h) indexes Config::hosts).
void Registry::add_configured_hosts(const Config& config) {
    for (std::size_t h = 0; h < config.hosts.size(); ++h) {
        const HostConfig& host = config.hosts[h];
        guard_for(host);
        configured_hosts_.push_back(host_key(host));
        // Say so at start-up rather than let the venue say it with 429s and bans.
        const double demand = scheduled_demand(config, h);
        if (host.rate > 0 && demand > host.rate)
            log::warn("schedule exceeds the host's rate limit; ticks beyond it are skipped",
                      {{"host", host.host},
                       {"port", host.port},
                       {"requests_per_second", demand},
                       {"rate", host.rate},
                       {"achievable_share", host.rate / demand}});
    }
}

void Registry::set_hosts(const std::vector<HostConfig>& hosts) {
    std::lock_guard lock(mutex_);
    configured_hosts_.clear();
    for (auto& h : hosts) configured_hosts_.push_back(host_key(h));
    prune_hosts();
}

std::string Registry::host_key(const HostConfig& host) {
    std::string key = host.host;
    if (host.port) key += ':' + std::to_string(host.port);
    return key;
}

// The guard of a host entry, created on first use.
std::shared_ptr<HostGuard> Registry::guard_for(const HostConfig& host) {
    std::string key = host_key(host);
    auto it = guards_.find(key);
    if (it != guards_.end()) return it->second;
    auto guard = guards_.emplace(key, std::make_shared<HostGuard>(host, Clock::now())).first->second;
    hosts_.push_back(guard.get());
    host_keys_.push_back(std::move(key));
    return guard;
}

std::shared_ptr<ConnectGate> Registry::gate_for(const HostConfig& host) {
    std::erase_if(gates_, [](const auto& entry) { return entry.second.expired(); });
    auto& entry = gates_[host_key(host)];
    auto gate = entry.lock();
    if (!gate) entry = gate = std::make_shared<ConnectGate>();
    return gate;
}

// Frees the guards of hosts the running config does not name and no poller uses (the map
// holds the only reference).
void Registry::prune_hosts() {
    for (std::size_t h = 0; h < hosts_.size();) {
        auto it = guards_.find(host_keys_[h]);
        const bool configured =
            std::find(configured_hosts_.begin(), configured_hosts_.end(), host_keys_[h]) != configured_hosts_.end();
        // A host the server paused or banned keeps its guard until the pause ends, so the
        // pause is still persisted and still holds if a reload brings the host back.
        const bool server_paused = it->second->status(Clock::now()).pause != PauseReason::none;
        if (configured || server_paused || it->second.use_count() > 1) {
            ++h;
            continue;
        }
        guards_.erase(it);
        hosts_.erase(hosts_.begin() + static_cast<std::ptrdiff_t>(h));
        host_keys_.erase(host_keys_.begin() + static_cast<std::ptrdiff_t>(h));
    }
}

HostGuard::Status Registry::host_status(std::size_t host) const {
    std::lock_guard lock(mutex_);
    return hosts_.at(host)->status(Clock::now());
}
std::vector<std::pair<std::string, HostGuard::Status>> Registry::host_statuses() const {
    std::vector<std::pair<std::string, HostGuard::Status>> out;
    const auto now = Clock::now();
    std::lock_guard lock(mutex_);
    for (std::size_t h = 0; h < hosts_.size(); ++h) out.emplace_back(host_keys_[h], hosts_[h]->status(now));
    return out;
}
std::size_t Registry::host_count() const {
    std::lock_guard lock(mutex_);
    return hosts_.size();
}
std::string Registry::host_name(std::size_t host) const {
    std::lock_guard lock(mutex_);
    return host_keys_.at(host);
}

std::vector<ServerPause> Registry::server_pauses() const {
    std::vector<ServerPause> out;
    std::lock_guard lock(mutex_);
    const auto now = Clock::now();
    const auto wall = std::chrono::system_clock::now();
    for (std::size_t h = 0; h < hosts_.size(); ++h) {
        const auto st = hosts_[h]->status(now);
        if (st.pause == PauseReason::none) continue;
        const auto until = wall + duration_cast<std::chrono::system_clock::duration>(st.paused_until - now);
        out.push_back({host_keys_[h], st.pause, std::chrono::floor<std::chrono::milliseconds>(until)});
    }
    return out;
}

std::size_t Registry::restore_pauses(const std::vector<ServerPause>& pauses) {
    std::lock_guard lock(mutex_);
    const auto now = Clock::now();
    const auto wall = std::chrono::system_clock::now();
    std::size_t applied = 0;
    for (auto& p : pauses) {
        auto it = guards_.find(p.host);
        if (it == guards_.end() || p.until <= wall) continue;
        HostGuard& guard = *it->second;
        guard.pause(now, p.reason, duration_cast<Clock::duration>(p.until - wall));
        ++applied;
        log::warn("host paused: a pause the server asked for before the restart still runs",
                  {{"host", p.host},
                   {"reason", to_string(p.reason)},
                   {"pause_ms", std::chrono::duration<double, std::milli>(guard.status(now).paused_until - now).count()}});
    }
    return applied;
}

}  // namespace mdagg::detail

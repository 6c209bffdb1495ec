// The poller table: operator control, adding and freeing pollers, snapshots, host guards.
#include "poller_group.hpp"

#include <boost/asio/strand.hpp>

#include <algorithm>

namespace mdagg {

// Moves every selected poller whose control is in `from` to `to`.
ControlResult PollerGroup::Impl::change_control(const PollerFilter& filter, std::initializer_list<PollerControl> from,
                             PollerControl to) {
    std::lock_guard lock(mutex);
    ControlResult result;
    for (auto& p : pollers) {
        if (p->retired || p->exited || !filter(p->source.config.name, p->symbol_name, p->tags)) continue;
        ++result.matched;
        for (PollerControl f : from) {
            auto expected = f;
            if (p->control.compare_exchange_strong(expected, to, std::memory_order_acq_rel)) {
                ++result.changed;
                // Wake a cancelled poller now rather than at its next tick.
                if (to == PollerControl::cancelled)
                    asio::post(p->executor, [this, poller = p.get()] { wake(*poller); });
                break;
            }
        }
    }
    return result;
}

void PollerGroup::Impl::exited() {
    if (running.fetch_sub(1, std::memory_order_acq_rel) == 1 && on_all_exited) on_all_exited();
}

SourceSlot& PollerGroup::Impl::slot_for(SourceId id, const SourceConfig& source) {  // under mutex
    while (slots.size() <= id) slots.push_back(std::make_unique<SourceSlot>());
    SourceSlot& slot = *slots[id];
    slot.name = source.name;
    slot.max_in_flight.store(static_cast<std::int64_t>(source.max_in_flight), std::memory_order_relaxed);
    return slot;
}

std::string PollerGroup::Impl::host_key(const HostConfig& host) {
    std::string key = host.host;
    if (host.port) key += ':' + std::to_string(host.port);
    return key;
}

// Under mutex. The guard of a host entry, created on first use.
std::shared_ptr<HostGuard> PollerGroup::Impl::guard_for(const HostConfig& host) {
    std::string key = host_key(host);
    auto it = guards.find(key);
    if (it != guards.end()) return it->second;
    auto guard = guards.emplace(key, std::make_shared<HostGuard>(host, Clock::now())).first->second;
    hosts.push_back(guard.get());
    host_keys.push_back(std::move(key));
    return guard;
}

// Under mutex. Frees the guards of hosts the running config does not name and no
// poller uses (the map holds the only reference).
void PollerGroup::Impl::prune_hosts() {
    for (std::size_t h = 0; h < hosts.size();) {
        auto it = guards.find(host_keys[h]);
        const bool configured =
            std::find(configured_hosts.begin(), configured_hosts.end(), host_keys[h]) != configured_hosts.end();
        // A host the server paused or banned keeps its guard until the pause ends, so the
        // pause is still persisted and still holds if a reload brings the host back.
        const bool server_paused = it->second->status(Clock::now()).pause != PauseReason::none;
        if (configured || server_paused || it->second.use_count() > 1) {
            ++h;
            continue;
        }
        guards.erase(it);
        hosts.erase(hosts.begin() + static_cast<std::ptrdiff_t>(h));
        host_keys.erase(host_keys.begin() + static_cast<std::ptrdiff_t>(h));
    }
}

// Under mutex. The poller is not started.
Poller& PollerGroup::Impl::make_poller(const std::shared_ptr<SourceRuntime>& runtime, SymbolId id, const std::string& name) {
    auto executor = strands ? asio::any_io_executor(asio::make_strand(*io)) : asio::any_io_executor(io->get_executor());
    auto& p = *pollers.emplace_back(std::make_unique<Poller>(executor, *runtime, id, name));
    p.runtime = runtime;
    p.tags = poller_tags(runtime->config, name);
    return p;
}

void PollerGroup::Impl::spawn(Poller* poller) {
    poller->on_exit = [this, poller](std::exception_ptr e) {
        {
            // A poll that threw left its deadline in the wheel. Out now, on the poller's
            // strand, so the wheel posts nothing for it after the erase posted below.
            auto lock = lock_wheel();
            wheel.remove(poller->tick_entry);
            wheel.remove(poller->deadline_entry);
        }
        if (e) {
            // A bug, not an I/O error: I/O errors never throw here. Keep the others going.
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                log::error("poller crashed", {{"source", poller->source.config.name},
                                              {"symbol", poller->symbol_name},
                                              {"error", ex.what()}});
            }
        }
        bool remove = false;
        {
            std::lock_guard lock(mutex);
            poller->exited = true;
            remove = poller->retired;
        }
        // Freed by a handler posted behind anything already queued for this poller;
        // nothing is posted to it after `exited` was set.
        if (remove) asio::post(poller->executor, [this, poller] { erase(poller); });
        exited();
    };
    run(*poller).spawn(
        poller->executor, [](void* p, std::exception_ptr e) { static_cast<Poller*>(p)->on_exit(std::move(e)); },
        poller);
}

void PollerGroup::Impl::erase(Poller* poller) {
    std::unique_ptr<Poller> dead;
    {
        std::lock_guard lock(mutex);
        auto it = std::find_if(pollers.begin(), pollers.end(), [&](auto& p) { return p.get() == poller; });
        if (it == pollers.end()) return;
        dead = std::move(*it);
        pollers.erase(it);
    }
    // The last poller of a runtime takes the runtime with it, and maybe the last use of
    // a host guard that a reload left unconfigured.
    dead.reset();
    std::lock_guard lock(mutex);
    prune_hosts();
}

std::vector<PollerSnapshot> PollerGroup::snapshot() const {
    std::vector<PollerSnapshot> out;
    std::lock_guard lock(impl_->mutex);
    out.reserve(impl_->pollers.size());
    constexpr auto r = std::memory_order_relaxed;
    for (auto& p : impl_->pollers) {
        if (p->retired) continue;
        PollerSnapshot s;
        s.source = p->source.id;
        s.source_name = p->source.config.name;
        s.symbol = p->symbol_name;
        s.tags = p->tags;
        s.interval = p->source.config.interval;
        s.state = p->state.load(r);
        s.control = p->control.load(r);
        s.polling = p->polling.load(r);
        s.polls = p->polls.load(r);
        s.completed = p->completed.load(r);
        s.failed = p->failed.load(r);
        s.timed_out = p->timed_out.load(r);
        s.last_success_ns = p->last_success_ns.load(r);
        s.last_error_ns = p->last_error_ns.load(r);
        if (auto e = p->last_error.load(r); e < static_cast<std::uint8_t>(PollError::count_))
            s.last_error = static_cast<PollError>(e);
        s.last_latency_ns = p->last_latency_ns.load(r);
        out.push_back(s);
    }
    return out;
}

ControlResult PollerGroup::pause(const PollerFilter& filter) {
    return impl_->change_control(filter, {PollerControl::active}, PollerControl::paused);
}
ControlResult PollerGroup::resume(const PollerFilter& filter) {
    return impl_->change_control(filter, {PollerControl::paused}, PollerControl::active);
}
ControlResult PollerGroup::cancel(const PollerFilter& filter) {
    return impl_->change_control(filter, {PollerControl::active, PollerControl::paused},
                                 PollerControl::cancelled);
}

bool PollerGroup::add(SourceId id, const SourceConfig& source, const HostConfig& host,
                      const std::vector<std::pair<std::string, SymbolId>>& symbols) {
    std::lock_guard lock(impl_->mutex);
    if (impl_->stopping.load(std::memory_order_acquire)) return false;
    // A host already polled keeps its guard (bucket, pauses, breaker) and its limits.
    auto runtime = std::make_shared<SourceRuntime>(source, id, impl_->slot_for(id, source), impl_->guard_for(host), host);
    std::vector<Poller*> fresh;
    for (auto& [name, symbol] : symbols) fresh.push_back(&impl_->make_poller(runtime, symbol, name));
    impl_->running.fetch_add(fresh.size(), std::memory_order_acq_rel);
    for (Poller* p : fresh) impl_->spawn(p);
    return true;
}

std::vector<SymbolId> PollerGroup::symbols_held() const {
    std::vector<SymbolId> out;
    std::lock_guard lock(impl_->mutex);
    out.reserve(impl_->pollers.size());
    for (auto& p : impl_->pollers) out.push_back(p->symbol);
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

void PollerGroup::set_hosts(const std::vector<HostConfig>& hosts) {
    std::lock_guard lock(impl_->mutex);
    impl_->configured_hosts.clear();
    for (auto& h : hosts) impl_->configured_hosts.push_back(Impl::host_key(h));
    impl_->prune_hosts();
}

std::size_t PollerGroup::retire(const PollerFilter& filter) {
    std::lock_guard lock(impl_->mutex);
    std::size_t n = 0;
    for (auto& p : impl_->pollers) {
        if (p->retired || !filter(p->source.config.name, p->symbol_name, p->tags)) continue;
        p->retired = true;
        ++n;
        if (p->exited) {  // cancelled earlier by an operator: already returned
            asio::post(p->executor, [impl = impl_.get(), poller = p.get()] { impl->erase(poller); });
            continue;
        }
        p->control.store(PollerControl::cancelled, std::memory_order_release);
        asio::post(p->executor, [impl = impl_.get(), poller = p.get()] { impl->wake(*poller); });
    }
    return n;
}

void PollerGroup::set_tags(const SourceConfig& source) {
    std::lock_guard lock(impl_->mutex);
    for (auto& slot : impl_->slots)
        if (slot->name == source.name)
            slot->max_in_flight.store(static_cast<std::int64_t>(source.max_in_flight), std::memory_order_relaxed);
    for (auto& p : impl_->pollers)
        if (!p->retired && p->source.config.name == source.name) p->tags = poller_tags(source, p->symbol_name);
}

std::vector<std::string> poller_tags(const SourceConfig& source, std::string_view symbol) {
    std::vector<std::string> tags = source.tags;
    if (auto it = source.symbol_tags.find(std::string(symbol)); it != source.symbol_tags.end())
        for (auto& t : it->second)
            if (std::find(tags.begin(), tags.end(), t) == tags.end()) tags.push_back(t);
    return tags;
}

HostGuard::Status PollerGroup::host_status(std::size_t host) const {
    std::lock_guard lock(impl_->mutex);
    return impl_->hosts.at(host)->status(Clock::now());
}
std::vector<std::pair<std::string, HostGuard::Status>> PollerGroup::host_statuses() const {
    std::vector<std::pair<std::string, HostGuard::Status>> out;
    const auto now = Clock::now();
    std::lock_guard lock(impl_->mutex);
    for (std::size_t h = 0; h < impl_->hosts.size(); ++h) out.emplace_back(impl_->host_keys[h], impl_->hosts[h]->status(now));
    return out;
}
std::size_t PollerGroup::host_count() const noexcept {
    std::lock_guard lock(impl_->mutex);
    return impl_->hosts.size();
}
std::string PollerGroup::host_name(std::size_t host) const {
    std::lock_guard lock(impl_->mutex);
    return impl_->host_keys.at(host);
}

std::vector<ServerPause> PollerGroup::server_pauses() const {
    std::vector<ServerPause> out;
    std::lock_guard lock(impl_->mutex);
    const auto now = Clock::now();
    const auto wall = std::chrono::system_clock::now();
    for (std::size_t h = 0; h < impl_->hosts.size(); ++h) {
        const auto st = impl_->hosts[h]->status(now);
        if (st.pause == PauseReason::none) continue;
        const auto until = wall + duration_cast<std::chrono::system_clock::duration>(st.paused_until - now);
        out.push_back({impl_->host_keys[h], st.pause, std::chrono::floor<std::chrono::milliseconds>(until)});
    }
    return out;
}

std::size_t PollerGroup::restore_pauses(const std::vector<ServerPause>& pauses) {
    std::lock_guard lock(impl_->mutex);
    const auto now = Clock::now();
    const auto wall = std::chrono::system_clock::now();
    std::size_t applied = 0;
    for (auto& p : pauses) {
        auto it = impl_->guards.find(p.host);
        if (it == impl_->guards.end() || p.until <= wall) continue;
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

}  // namespace mdagg

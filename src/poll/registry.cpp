// The poller table: set-up, reload, operator control, the drain's stop, exits and freeing,
// and the snapshots other threads read.
#include "registry.hpp"

#include <mdagg/observe.hpp>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <unordered_map>

namespace mdagg::detail {

void Registry::add_configured(const Config& config, const Universe& universe) {
    std::unordered_map<std::string_view, SymbolId> symbol_ids;
    for (SymbolId i = 0; i < universe.symbols.size(); ++i) symbol_ids.emplace(universe.symbols[i], i);
    std::lock_guard lock(mutex_);
    add_configured_hosts(config);
    for (SourceId s = 0; s < config.sources.size(); ++s) {
        const SourceConfig& sc = config.sources[s];
        auto runtime = make_runtime(s, sc, config.hosts.at(sc.host), mirror_hosts(sc, config.hosts));
        std::vector<std::pair<std::string, SymbolId>> symbols;
        for (auto& name : sc.symbols) symbols.emplace_back(name, symbol_ids.at(name));
        make_pollers(runtime, symbols);
    }
}

void Registry::start_all(std::function<void()> on_all_exited) {
    on_all_exited_ = std::move(on_all_exited);
    std::lock_guard lock(mutex_);
    running_.store(pollers_.size());
    for (auto& p : pollers_) hooks_.start(*p);
}

// Under mutex_: the source's runtime with a route per host it may poll, the url's first.
std::shared_ptr<SourceRuntime> Registry::make_runtime(SourceId id, const SourceConfig& source, const HostConfig& host,
                                                      const std::vector<HostConfig>& mirror_hosts) {
    // A host already polled keeps its guard (bucket, pauses, breaker) and its limits.
    SourceSlot& slot = slot_for(id, source);
    auto tls = tls_for(source);
    auto runtime = std::make_shared<SourceRuntime>(source, id, slot, guard_for(host), host, tls);
    runtime->primary().connect_gate = gate_for(host);
    // A mirror the reload's caller gave no host entry for is left out rather than guessed.
    for (std::size_t m = 0; m < source.mirrors.size() && m < mirror_hosts.size(); ++m) {
        const HostConfig& mirror = mirror_hosts[m];
        runtime->add_route(runtime->config.mirrors[m].url, guard_for(mirror), mirror, tls).connect_gate =
            gate_for(mirror);
    }
    for (auto& route : runtime->routes) {
        route->poll_slot = poll_slot_for(slot, *runtime, route->name);
        if (runtime->routes.size() > 1) route->via = intern_name(route_via(route->url));
    }
    return runtime;
}

// The index of `name` in slot.routes (stats.route_polls), added when new. Counts are kept by
// host name, not by position in `mirrors`, which a reload may reorder.
std::uint8_t Registry::poll_slot_for(SourceSlot& slot, const SourceRuntime& runtime, const std::string& name) {
    std::vector<std::string> in_use;
    for (const auto& r : runtime.routes) in_use.push_back(r->name);
    bool reused = false;
    const std::size_t i = route_label(slot.routes, in_use, name, reused);
    if (reused) {  // a new series
        slot.stats.route_polls[i].store(0, std::memory_order_relaxed);
        slot.stats.hedge_wins[i].store(0, std::memory_order_relaxed);
    }
    return static_cast<std::uint8_t>(i);
}

bool Registry::add(SourceId id, const SourceConfig& source, const HostConfig& host,
                   const std::vector<std::pair<std::string, SymbolId>>& symbols,
                   const std::vector<HostConfig>& mirror_hosts) {
    std::lock_guard lock(mutex_);
    if (stopping_.load(std::memory_order_acquire)) return false;
    auto runtime = make_runtime(id, source, host, mirror_hosts);
    std::vector<Poller*> fresh = make_pollers(runtime, symbols);
    running_.fetch_add(fresh.size(), std::memory_order_acq_rel);
    for (Poller* p : fresh) hooks_.start(*p);
    return true;
}

std::shared_ptr<TlsContext> Registry::tls_for(const SourceConfig& source) {
    if (!source.uses_tls()) return nullptr;
    try {
        return tls_contexts_.get(source.tls);
    } catch (const std::runtime_error& e) {
        throw std::runtime_error("source " + source.name + ": " + e.what());
    }
}

std::shared_ptr<const void> Registry::prepare_tls(const std::vector<SourceConfig>& sources) {
    auto held = std::make_shared<std::vector<std::shared_ptr<TlsContext>>>();
    for (const auto& source : sources)
        if (auto context = tls_for(source)) held->push_back(std::move(context));
    return held;
}

std::vector<SymbolId> Registry::symbols_held() const {
    std::vector<SymbolId> out;
    std::lock_guard lock(mutex_);
    out.reserve(pollers_.size());
    for (auto& p : pollers_) {
        if (!p->batch) out.push_back(p->symbol);
        else
            for (std::size_t m = 0; m < p->batch->members.size(); ++m) out.push_back(p->batch->member[m].symbol);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

std::size_t Registry::retire(const PollerFilter& filter) {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (auto& p : pollers_) {
        if (p->retired || !filter(p->source.config.name, p->symbol_name, p->tags)) continue;
        p->retired = true;
        ++n;
        if (p->exited) {  // cancelled earlier by an operator: already returned
            asio::post(p->executor, [this, poller = p.get()] { erase(poller); });
            continue;
        }
        p->control.store(PollerControl::cancelled, std::memory_order_release);
        post_interrupt(*p, false);
    }
    return n;
}

void Registry::set_tags(const SourceConfig& source) {
    std::lock_guard lock(mutex_);
    for (auto& slot : slots_)
        if (slot->name == source.name)
            slot->max_in_flight.store(static_cast<std::int64_t>(source.max_in_flight), std::memory_order_relaxed);
    for (auto& p : pollers_)
        if (!p->retired && p->source.config.name == source.name) p->tags = poller_tags(source, p->symbol_name);
}

ControlResult Registry::change_control(const PollerFilter& filter, std::initializer_list<PollerControl> from,
                                       PollerControl to) {
    std::lock_guard lock(mutex_);
    ControlResult result;
    for (auto& p : pollers_) {
        if (p->retired || p->exited) continue;
        if (p->batch) {
            change_batch_control(*p, filter, from, to, result);
            continue;
        }
        if (!filter(p->source.config.name, p->symbol_name, p->tags)) continue;
        ++result.matched;
        for (PollerControl f : from) {
            auto expected = f;
            if (p->control.compare_exchange_strong(expected, to, std::memory_order_acq_rel)) {
                ++result.changed;
                sync_reserve(*p);
                // Wake a cancelled poller now rather than at its next tick.
                if (to == PollerControl::cancelled) post_interrupt(*p, false);
                break;
            }
        }
    }
    return result;
}

void Registry::stop(bool abort_polls) {
    std::lock_guard lock(mutex_);
    stopping_.store(true, std::memory_order_release);
    for (auto& p : pollers_)
        if (!p->exited) post_interrupt(*p, abort_polls);
}

// Set-up, before the poller starts: its priority, and its host's scale of reserves.
void Registry::set_priority(Poller& p, std::uint8_t priority) {
    p.priority = priority;
    p.effective_priority.store(priority, std::memory_order_relaxed);
    sync_reserve(p);
}

// Under mutex_: an active poller's priority counts on the host it polls now; a paused or
// cancelled one's nowhere.
void Registry::sync_reserve(Poller& p) {
    const bool active = p.control.load(std::memory_order_acquire) == PollerControl::active;
    p.reserve.move_to(active ? &p.current_route().guard : nullptr, p.priority);
}

void Registry::moved_route(Poller& p) {
    std::lock_guard lock(mutex_);
    if (p.reserve.on) sync_reserve(p);
}

void Registry::post_interrupt(Poller& p, bool abort_poll) {
    asio::post(p.executor, [&hooks = hooks_, poller = &p, abort_poll] { hooks.interrupt(*poller, abort_poll); });
}

void Registry::close_connections(std::function<void()> done) {
    // On each poller's own executor: behind any cancel the drain posted there earlier.
    // Every poller has returned by now; retired ones closed theirs and are being freed.
    std::lock_guard lock(mutex_);
    std::size_t live = 0;
    for (auto& p : pollers_) live += p->retired ? 0 : 1;
    auto remaining = std::make_shared<std::atomic<std::size_t>>(live);
    auto finished = std::make_shared<std::function<void()>>(std::move(done));
    if (live == 0) (*finished)();
    for (auto& p : pollers_) {
        if (p->retired) continue;
        asio::post(p->executor, [poller = p.get(), remaining, finished] {
            poller->close_connection();
            if (remaining->fetch_sub(1, std::memory_order_acq_rel) == 1) (*finished)();
        });
    }
}

void Registry::exited(Poller& p) {
    bool remove = false;
    {
        std::lock_guard lock(mutex_);
        p.exited = true;
        remove = p.retired;
    }
    // Freed by a handler posted behind anything already queued for this poller; nothing is
    // posted to it after `exited` was set.
    if (remove) asio::post(p.executor, [this, poller = &p] { erase(poller); });
    if (running_.fetch_sub(1, std::memory_order_acq_rel) == 1 && on_all_exited_) on_all_exited_();
}

void Registry::erase(Poller* poller) {
    std::unique_ptr<Poller> dead;
    {
        std::lock_guard lock(mutex_);
        auto it = std::find_if(pollers_.begin(), pollers_.end(), [&](auto& p) { return p.get() == poller; });
        if (it == pollers_.end()) return;
        dead = std::move(*it);
        pollers_.erase(it);
        hooks_.leave(*dead);
        dead->reserve.move_to(nullptr, dead->priority);  // its host keeps no reserve for it
    }
    // The last poller of a runtime takes the runtime with it, and maybe the last use of
    // a host guard that a reload left unconfigured.
    dead.reset();
    std::lock_guard lock(mutex_);
    prune_hosts();
}

SourceSlot& Registry::slot_for(SourceId id, const SourceConfig& source) {
    while (slots_.size() <= id) slots_.push_back(std::make_unique<SourceSlot>());
    SourceSlot& slot = *slots_[id];
    slot.name = source.name;
    slot.max_in_flight.store(static_cast<std::int64_t>(source.max_in_flight), std::memory_order_relaxed);
    return slot;
}

// The poller is not started.
Poller& Registry::make_poller(const std::shared_ptr<SourceRuntime>& runtime, SymbolId id, const std::string& name,
                              std::uint8_t priority) {
    const auto interval = runtime->config.interval;
    auto place = hooks_.place(phase_offset(runtime->config.name, name, interval), interval);
    auto& p = *pollers_.emplace_back(std::make_unique<Poller>(std::move(place.executor), *runtime, id, name));
    p.ticks = place.ticks;
    p.runtime = runtime;
    p.tags = poller_tags(runtime->config, name);
    set_priority(p, priority);
    return p;
}

std::vector<PollerSnapshot> Registry::snapshot() const {
    std::vector<PollerSnapshot> out;
    std::lock_guard lock(mutex_);
    out.reserve(pollers_.size());
    constexpr auto r = std::memory_order_relaxed;
    for (auto& p : pollers_) {
        if (p->retired) continue;
        PollerSnapshot s;
        s.source = p->source.id;
        s.source_name = p->source.config.name;
        s.symbol = p->symbol_name;
        if (p->venue_name) s.venue_symbol = *p->venue_name;
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
        s.priority = p->priority;
        s.effective_priority = p->effective_priority.load(r);
        if (p->hedge) s.hedge = detail::to_string(p->hedge->race.load(r));
        if (p->source.routes.size() > 1) {
            s.route = p->route.load(r);
            s.via = p->current_route().name;
        }
        if (p->batch)
            add_member_rows(*p->batch, s, out);
        else
            out.push_back(s);
    }
    return out;
}

std::array<std::size_t, poller_state_count> Registry::state_counts() const {
    std::array<std::size_t, poller_state_count> counts{};
    std::lock_guard lock(mutex_);
    for (auto& p : pollers_)
        if (!p->retired) ++counts[static_cast<std::size_t>(p->state.load(std::memory_order_relaxed))];
    return counts;
}

std::vector<std::string> Registry::unverified_tls_sources() const {
    std::vector<std::string> out;
    std::lock_guard lock(mutex_);
    for (auto& p : pollers_) {
        const SourceRuntime& src = p->source;
        if (p->retired || !src.primary().tls || src.primary().tls->context->config().verify) continue;
        if (std::find(out.begin(), out.end(), src.config.name) == out.end()) out.push_back(src.config.name);
    }
    return out;
}

PollerGroup::ControlCounts Registry::control_counts() const {
    PollerGroup::ControlCounts counts;
    std::lock_guard lock(mutex_);
    const auto now = Clock::now();
    // A handful of hosts: a flat list beats a set.
    std::vector<const HostGuard*> paused;
    for (const HostGuard* g : hosts_)
        if (g->status(now).pause != PauseReason::none) paused.push_back(g);
    for (auto& p : pollers_) {
        if (p->retired) continue;
        const auto control = p->control.load(std::memory_order_relaxed);
        ++counts.by_control[static_cast<std::size_t>(control)];
        if (control != PollerControl::active) continue;
        if (!paused.empty() && std::find(paused.begin(), paused.end(), &p->current_route().guard) != paused.end())
            ++counts.active_on_paused_host;
        else if (p->polls.load(std::memory_order_relaxed) == 0)
            ++counts.active_never_polled;
    }
    return counts;
}

std::size_t Registry::size() const {
    std::lock_guard lock(mutex_);
    return pollers_.size();
}
const SourceStats& Registry::stats(SourceId source) const {
    std::lock_guard lock(mutex_);
    return slots_.at(source)->stats;
}
std::size_t Registry::source_count() const {
    std::lock_guard lock(mutex_);
    return slots_.size();
}
std::string Registry::source_name(SourceId source) const {
    std::lock_guard lock(mutex_);
    return slots_.at(source)->name;
}
std::vector<std::string> Registry::route_names(SourceId source) const {
    std::lock_guard lock(mutex_);
    return slots_.at(source)->routes;
}

}  // namespace mdagg::detail

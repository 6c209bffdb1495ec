#include "poller_group.hpp"

#include <algorithm>

namespace mdagg {

std::string_view to_string(PollerState s) noexcept {
    switch (s) {
        case PollerState::pending: return "pending";
        case PollerState::running: return "running";
        case PollerState::completed: return "completed";
        case PollerState::failed: return "failed";
        case PollerState::cancelled: return "cancelled";
        case PollerState::timed_out: return "timed_out";
    }
    return "unknown";
}

std::string_view to_string(PollerControl c) noexcept {
    switch (c) {
        case PollerControl::active: return "active";
        case PollerControl::paused: return "paused";
        case PollerControl::cancelled: return "cancelled";
    }
    return "unknown";
}

std::string_view to_string(PollError e) noexcept {
    switch (e) {
        case PollError::resolve: return "resolve";
        case PollError::connect: return "connect";
        case PollError::timeout: return "timeout";
        case PollError::reset: return "reset";
        case PollError::http_4xx: return "http_4xx";
        case PollError::http_5xx: return "http_5xx";
        case PollError::http_other: return "http_other";
        case PollError::rate_limited: return "rate_limited";
        case PollError::banned: return "banned";
        case PollError::protocol: return "protocol";
        case PollError::body_too_large: return "body_too_large";
        case PollError::malformed: return "malformed";
        case PollError::mapping: return "mapping";
        case PollError::body_error: return "body_error";
        case PollError::count_: break;
    }
    return "unknown";
}

Task<void> PollerGroup::Impl::run(Poller& p) {
    auto& st = p.source.stats;
    auto tick = p.schedule.first_tick(Clock::now().time_since_epoch());
    auto cancelled = [&p] { return p.control.load(std::memory_order_acquire) == PollerControl::cancelled; };
    for (;;) {
        if (stopping.load(std::memory_order_acquire) || cancelled()) break;
        co_await sleep_until_tick(p, Clock::time_point(duration_cast<Clock::duration>(tick)));
        if (stopping.load(std::memory_order_acquire) || cancelled()) break;
        const auto woke = Clock::now();
        auto now = woke;  // until a poll ends
        st.lateness.record(woke.time_since_epoch() - tick);
        if (p.control.load(std::memory_order_acquire) == PollerControl::paused) {
            st.paused_ticks.fetch_add(1, std::memory_order_relaxed);
        } else if (woke < p.backoff_until) {
            st.throttled_ticks.fetch_add(1, std::memory_order_relaxed);
        } else if (st.in_flight.fetch_add(1, std::memory_order_acq_rel) >=
                   p.source.max_in_flight.load(std::memory_order_relaxed)) {
            st.in_flight.fetch_sub(1, std::memory_order_acq_rel);
            st.throttled_ticks.fetch_add(1, std::memory_order_relaxed);
        } else {
            // Released even if the poll throws, so a bug cannot throttle the source for good.
            struct InFlight {
                std::atomic<std::int64_t>& n;
                ~InFlight() { n.fetch_sub(1, std::memory_order_acq_rel); }
            } in_flight{st.in_flight};
            if (p.last_poll_start != Clock::time_point{}) st.achieved_interval.record(woke - p.last_poll_start);
            p.last_poll_start = woke;
            // After max_in_flight, so a tick it refuses does not spend a token.
            const Admission admission = p.source.guard.admit(woke, p.source.config.cost);
            switch (admission) {
                case Admission::go:
                case Admission::probe: {
                    // A probe must be reported whatever happens, or the host's breaker
                    // stays half-open for good: poll_once reports it; this covers a throw.
                    p.probe_pending = admission == Admission::probe;
                    struct ProbeRelease {
                        Poller& p;
                        ~ProbeRelease() {
                            if (!p.probe_pending) return;
                            p.probe_pending = false;
                            p.source.guard.report(Clock::now(), HostVerdict::neutral, true);
                        }
                    } release{p};
                    p.polling.store(true, std::memory_order_relaxed);
                    co_await poll_once(p, admission == Admission::probe, woke);
                    p.polling.store(false, std::memory_order_relaxed);
                    now = p.poll_ended;
                    note_outcome(p, now - woke);
                    break;
                }
                case Admission::throttled: st.rate_limited_ticks.fetch_add(1, std::memory_order_relaxed); break;
                case Admission::paused: st.host_paused_ticks.fetch_add(1, std::memory_order_relaxed); break;
                case Admission::breaker_open: st.breaker_ticks.fetch_add(1, std::memory_order_relaxed); break;
            }
        }
        auto next = p.schedule.next(tick, now.time_since_epoch());
        if (next.skipped) st.skipped_ticks.fetch_add(next.skipped, std::memory_order_relaxed);
        tick = next.tick;
    }
    // Cancelled by an operator: nothing will use the connection again.
    if (cancelled() && !stopping.load(std::memory_order_acquire)) p.close_connection();
}

PollerGroup::PollerGroup(asio::io_context& io, const Config& config, const Universe& universe,
                         QuoteHandler on_quote)
    : impl_(std::make_unique<Impl>(std::move(on_quote))) {
    impl_->io = &io;
    impl_->wheel_timer.emplace(io);
    // A strand only when handlers of one poller could otherwise run on two threads.
    impl_->strands = config.runtime.threads > 1;
    std::unordered_map<std::string_view, SymbolId> symbol_ids;
    for (SymbolId i = 0; i < universe.symbols.size(); ++i) symbol_ids.emplace(universe.symbols[i], i);
    std::lock_guard lock(impl_->mutex);
    for (std::size_t h = 0; h < config.hosts.size(); ++h) {
        const HostConfig& host = config.hosts[h];
        impl_->guard_for(host);  // host_status(h) indexes Config::hosts
        impl_->configured_hosts.push_back(Impl::host_key(host));
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
    for (SourceId s = 0; s < config.sources.size(); ++s) {
        const SourceConfig& sc = config.sources[s];
        const HostConfig& host = config.hosts.at(sc.host);
        auto runtime = std::make_shared<SourceRuntime>(sc, s, impl_->slot_for(s, sc), impl_->guard_for(host), host);
        for (auto& name : runtime->config.symbols) impl_->make_poller(runtime, symbol_ids.at(name), name);
    }
}

PollerGroup::~PollerGroup() = default;

void PollerGroup::start(std::function<void()> on_all_exited) {
    impl_->on_all_exited = std::move(on_all_exited);
    std::lock_guard lock(impl_->mutex);
    impl_->running.store(impl_->pollers.size());
    for (auto& p : impl_->pollers) impl_->spawn(p.get());
}

void PollerGroup::stop_scheduling() {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping.store(true, std::memory_order_release);
    for (auto& p : impl_->pollers)
        if (!p->exited) asio::post(p->executor, [impl = impl_.get(), poller = p.get()] { impl->wake(*poller); });
}

void PollerGroup::cancel_in_flight() {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping.store(true, std::memory_order_release);
    impl_->cancelling.store(true, std::memory_order_release);
    for (auto& p : impl_->pollers) {
        if (p->exited) continue;
        asio::post(p->executor, [impl = impl_.get(), poller = p.get()] {
            impl->wake(*poller);
            poller->connection.cancel();
        });
    }
}

void PollerGroup::close_connections(std::function<void()> done) {
    // On each poller's own executor: behind any cancel the drain posted there earlier.
    // Every poller has returned by now; retired ones closed theirs and are being freed.
    std::lock_guard lock(impl_->mutex);
    std::size_t live = 0;
    for (auto& p : impl_->pollers) live += p->retired ? 0 : 1;
    auto remaining = std::make_shared<std::atomic<std::size_t>>(live);
    auto finished = std::make_shared<std::function<void()>>(std::move(done));
    if (live == 0) (*finished)();
    for (auto& p : impl_->pollers) {
        if (p->retired) continue;
        asio::post(p->executor, [poller = p.get(), remaining, finished] {
            poller->close_connection();
            if (remaining->fetch_sub(1, std::memory_order_acq_rel) == 1) (*finished)();
        });
    }
}

void PollerGroup::flush_logs() { impl_->error_log.flush(); }

std::array<std::size_t, 6> PollerGroup::state_counts() const noexcept {
    std::array<std::size_t, 6> counts{};
    std::lock_guard lock(impl_->mutex);
    for (auto& p : impl_->pollers)
        if (!p->retired) ++counts[static_cast<std::size_t>(p->state.load(std::memory_order_relaxed))];
    return counts;
}

PollerGroup::ControlCounts PollerGroup::control_counts() const noexcept {
    ControlCounts counts;
    std::lock_guard lock(impl_->mutex);
    const auto now = Clock::now();
    // A handful of hosts: a flat list beats a set.
    std::vector<const HostGuard*> paused;
    for (const HostGuard* g : impl_->hosts)
        if (g->status(now).pause != PauseReason::none) paused.push_back(g);
    for (auto& p : impl_->pollers) {
        if (p->retired) continue;
        const auto control = p->control.load(std::memory_order_relaxed);
        ++counts.by_control[static_cast<std::size_t>(control)];
        if (control != PollerControl::active) continue;
        if (!paused.empty() && std::find(paused.begin(), paused.end(), &p->source.guard) != paused.end())
            ++counts.active_on_paused_host;
        else if (p->polls.load(std::memory_order_relaxed) == 0)
            ++counts.active_never_polled;
    }
    return counts;
}

std::size_t PollerGroup::size() const noexcept {
    std::lock_guard lock(impl_->mutex);
    return impl_->pollers.size();
}
std::size_t PollerGroup::running() const noexcept { return impl_->running.load(); }
std::size_t PollerGroup::polls_in_flight() const noexcept {
    std::int64_t n = 0;
    std::lock_guard lock(impl_->mutex);
    for (auto& s : impl_->slots) n += s->stats.in_flight.load(std::memory_order_relaxed);
    return static_cast<std::size_t>(std::max<std::int64_t>(n, 0));
}
const SourceStats& PollerGroup::stats(SourceId source) const {
    std::lock_guard lock(impl_->mutex);
    return impl_->slots.at(source)->stats;
}
std::size_t PollerGroup::source_count() const noexcept {
    std::lock_guard lock(impl_->mutex);
    return impl_->slots.size();
}
std::string PollerGroup::source_name(SourceId source) const {
    std::lock_guard lock(impl_->mutex);
    return impl_->slots.at(source)->name;
}

}  // namespace mdagg

// The PollerGroup facade over the tick scheduler and the registry, and each poller's run loop.
#include "poller_group.hpp"

#include <mdagg/poll_metrics.hpp>

#include <nlohmann/json.hpp>

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
        case PollError::tls_handshake: return "tls_handshake";
        case PollError::tls_verify: return "tls_verify";
        case PollError::count_: break;
    }
    return "unknown";
}

std::string_view to_string(LateAnswer l) noexcept {
    switch (l) {
        case LateAnswer::delivered: return "delivered";
        case LateAnswer::failed: return "failed";
        case LateAnswer::closed: return "closed";
        case LateAnswer::cancelled: return "cancelled";
        case LateAnswer::count_: break;
    }
    return "unknown";
}

// The poller's life. Its hedge leg, if one still runs, is waited for however the ticks
// ended, a throw included: on_exit may free the poller, and the leg refers to it.
Task<void> PollerGroup::Impl::run(Poller& p) {
    std::exception_ptr error;
    try {
        co_await run_ticks(p);
    } catch (...) {
        error = std::current_exception();
    }
    if (p.hedge) co_await hedge_join(p, error != nullptr);  // no co_await in a handler
    if (error) std::rethrow_exception(error);
    // Cancelled by an operator: nothing will use the connection again.
    if (p.control.load(std::memory_order_acquire) == PollerControl::cancelled && !registry.stopping())
        p.close_connection();
}

Task<void> PollerGroup::Impl::run_ticks(Poller& p) {
    auto& st = p.source.stats;
    auto tick = p.schedule.first_tick(Clock::now().time_since_epoch());
    auto cancelled = [&p] { return p.control.load(std::memory_order_acquire) == PollerControl::cancelled; };
    for (;;) {
        if (registry.stopping() || cancelled()) break;
        co_await p.ticks->sleep_until(p, Clock::time_point(duration_cast<Clock::duration>(tick)));
        if (registry.stopping() || cancelled()) break;
        const auto woke = Clock::now();
        auto now = woke;  // until a poll ends
        st.lateness.record(woke.time_since_epoch() - tick);
        if (p.control.load(std::memory_order_acquire) == PollerControl::paused) {
            st.paused_ticks.fetch_add(1, std::memory_order_relaxed);
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
            // After max_in_flight, so a tick it refuses does not spend a token. A host that is
            // paused or whose breaker is open hands the tick to the next mirror (failover.hpp).
            const auto backoff = woke < p.backoff_until ? p.backoff_route : detail::no_route;
            const detail::RouteChoice choice = detail::choose_route(
                p.source.route_guards, woke, p.source.config.cost, backoff, p.effective_priority.load(std::memory_order_relaxed));
            if (choice.backing_off) {
                st.throttled_ticks.fetch_add(1, std::memory_order_relaxed);
            } else {
                if (p.last_poll_start != Clock::time_point{}) st.achieved_interval.record(woke - p.last_poll_start);
                p.last_poll_start = woke;
                if (choice.polls()) {
                    p.effective_priority.store(p.priority, std::memory_order_relaxed);
                    switch_route(p, choice.route);
                    if (p.batch) refresh_batch_target(p);  // members paused or resumed since
                    // A probe must be reported whatever happens, or the host's breaker
                    // stays half-open for good: poll_once reports it; this covers a throw.
                    const bool probe = choice.admission == Admission::probe;
                    p.probe_pending = probe;
                    struct ProbeRelease {
                        Poller& p;
                        ~ProbeRelease() {
                            if (!p.probe_pending) return;
                            p.probe_pending = false;
                            p.current_route().guard.report(Clock::now(), HostVerdict::neutral, true);
                        }
                    } release{p};
                    st.route_polls[p.current_route().poll_slot].fetch_add(1, std::memory_order_relaxed);  // by host
                    p.polling.store(true, std::memory_order_relaxed);
                    p.tick_due = Clock::time_point(duration_cast<Clock::duration>(tick));
                    co_await poll_once(p, probe, woke);
                    if (probe) co_await after_probe(p, woke);  // a failed probe's tick: the mirror's
                    p.polling.store(false, std::memory_order_relaxed);
                    now = p.poll_ended;
                    note_outcome(p, now - woke);
                } else {
                    count_refused(p, choice.admission);
                }
            }
        }
        auto next = p.schedule.next(tick, now.time_since_epoch());
        if (next.skipped) st.skipped_ticks.fetch_add(next.skipped, std::memory_order_relaxed);
        tick = next.tick;
    }
}

void PollerGroup::Impl::count_refused(Poller& p, Admission admission) {
    auto& st = p.source.stats;
    switch (admission) {
        case Admission::throttled: {
            st.rate_limited_ticks.fetch_add(1, std::memory_order_relaxed);
            st.rate_limited_by_priority[p.priority - 1].fetch_add(1, std::memory_order_relaxed);
            // Aging: the next tick asks with a better priority, so no symbol starves.
            const auto e = p.effective_priority.load(std::memory_order_relaxed);
            if (e > 1) p.effective_priority.store(static_cast<std::uint8_t>(e - 1), std::memory_order_relaxed);
            break;
        }
        case Admission::paused: st.host_paused_ticks.fetch_add(1, std::memory_order_relaxed); break;
        case Admission::breaker_open: st.breaker_ticks.fetch_add(1, std::memory_order_relaxed); break;
        case Admission::go:
        case Admission::probe: break;
    }
}

void PollerGroup::Impl::start(Poller& p) {
    p.on_exit = [this, &p](std::exception_ptr e) { on_exit(p, std::move(e)); };
    run(p).spawn(
        p.executor, [](void* poller, std::exception_ptr e) { static_cast<Poller*>(poller)->on_exit(std::move(e)); },
        &p);
}

// A stop, an operator's cancel or a retire ends the tick's sleep, and run() then reads the
// registry's and the poller's flags. Not an Asio cancellation slot: the sleep is no Asio
// operation but the poller's entry in the timer wheel (one timer for every poller), so waking
// is an unlink and a resume. A slot emplaced for each sleep would cost its emplace and clear
// every tick (~227 user instructions, callgrind, Boost 1.81, as measured for the socket waits:
// poller_group.hpp, `cancelling`) where the wheel's entry costs nothing more.
void PollerGroup::Impl::wake(Poller& p) { p.ticks->wake(p); }

void PollerGroup::Impl::interrupt(Poller& p, bool abort_poll) {
    wake(p);
    if (!abort_poll) return;
    p.cancel_io();
    if (p.hedge && p.hedge->running) {  // the drain (or an operator) cancels both legs
        p.hedge->cancelled = true;
        p.hedge->cancel_io();
    }
}

void PollerGroup::Impl::on_exit(Poller& p, std::exception_ptr e) {
    // A poll that threw left its deadline in the wheel. Out now, on the poller's strand, so the
    // wheel posts nothing for it after the registry posts its freeing.
    p.ticks->forget(p);
    if (e) {
        // A bug, not an I/O error: I/O errors never throw here. Keep the others going.
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            log::error("poller crashed",
                       {{"source", p.source.config.name}, {"symbol", p.symbol_name}, {"error", ex.what()}});
        }
    }
    registry.exited(p);
}

PollerGroup::PollerGroup(asio::io_context& io, const Config& config, const Universe& universe,
                         QuoteHandler on_quote)
    : PollerGroup(std::span<asio::io_context* const>(std::array{&io}), config, universe, std::move(on_quote)) {}

PollerGroup::PollerGroup(std::span<asio::io_context* const> shards, const Config& config, const Universe& universe,
                         QuoteHandler on_quote)
    : impl_(std::make_unique<Impl>(shards, config.runtime.threads, std::move(on_quote))) {
    impl_->registry.add_configured(config, universe);
}

PollerGroup::~PollerGroup() = default;

void PollerGroup::start(std::function<void()> on_all_exited) { impl_->registry.start_all(std::move(on_all_exited)); }
void PollerGroup::stop_scheduling() { impl_->registry.stop(false); }
void PollerGroup::cancel_in_flight() {
    impl_->cancelling.store(true, std::memory_order_release);
    impl_->registry.stop(true);
}
void PollerGroup::close_connections(std::function<void()> done) { impl_->registry.close_connections(std::move(done)); }
void PollerGroup::flush_logs() { impl_->error_log.flush(); }

std::array<std::size_t, poller_state_count> PollerGroup::state_counts() const noexcept { return impl_->registry.state_counts(); }
PollerGroup::ControlCounts PollerGroup::control_counts() const noexcept { return impl_->registry.control_counts(); }
std::vector<std::string> PollerGroup::unverified_tls_sources() const { return impl_->registry.unverified_tls_sources(); }
std::size_t PollerGroup::size() const noexcept { return impl_->registry.size(); }
std::size_t PollerGroup::running() const noexcept { return impl_->registry.running(); }
std::size_t PollerGroup::polls_in_flight() const noexcept {
    std::int64_t n = 0;
    for (SourceId s = 0, end = impl_->registry.source_count(); s < end; ++s)
        n += counters_of(impl_->registry.stats(s), PollDetail::counters).in_flight;
    return static_cast<std::size_t>(std::max<std::int64_t>(n, 0));
}
const SourceStats& PollerGroup::stats(SourceId source) const { return impl_->registry.stats(source); }
PollCounters PollerGroup::source_counters(SourceId source, PollDetail detail) const {
    return counters_of(impl_->registry.stats(source), detail);
}
std::size_t PollerGroup::source_count() const noexcept { return impl_->registry.source_count(); }
std::string PollerGroup::source_name(SourceId source) const { return impl_->registry.source_name(source); }
std::vector<std::string> PollerGroup::route_names(SourceId source) const { return impl_->registry.route_names(source); }
HostGuard::Status PollerGroup::host_status(std::size_t host) const { return impl_->registry.host_status(host); }
std::vector<std::pair<std::string, HostGuard::Status>> PollerGroup::host_statuses() const {
    return impl_->registry.host_statuses();
}
std::size_t PollerGroup::host_count() const noexcept { return impl_->registry.host_count(); }
std::string PollerGroup::host_name(std::size_t host) const { return impl_->registry.host_name(host); }
std::vector<ServerPause> PollerGroup::server_pauses() const { return impl_->registry.server_pauses(); }
std::size_t PollerGroup::restore_pauses(const std::vector<ServerPause>& pauses) {
    return impl_->registry.restore_pauses(pauses);
}

std::vector<PollerSnapshot> PollerGroup::snapshot() const { return impl_->registry.snapshot(); }
ControlResult PollerGroup::pause(const PollerFilter& filter) {
    return impl_->registry.change_control(filter, {PollerControl::active}, PollerControl::paused);
}
ControlResult PollerGroup::resume(const PollerFilter& filter) {
    return impl_->registry.change_control(filter, {PollerControl::paused}, PollerControl::active);
}
ControlResult PollerGroup::cancel(const PollerFilter& filter) {
    return impl_->registry.change_control(filter, {PollerControl::active, PollerControl::paused},
                                          PollerControl::cancelled);
}

bool PollerGroup::add(SourceId id, const SourceConfig& source, const HostConfig& host,
                      const std::vector<std::pair<std::string, SymbolId>>& symbols,
                      const std::vector<HostConfig>& mirror_hosts) {
    return impl_->registry.add(id, source, host, symbols, mirror_hosts);
}

std::shared_ptr<const void> PollerGroup::prepare_tls(const std::vector<SourceConfig>& sources) {
    return impl_->registry.prepare_tls(sources);
}
std::size_t PollerGroup::retire(const PollerFilter& filter) { return impl_->registry.retire(filter); }
void PollerGroup::set_tags(const SourceConfig& source) { impl_->registry.set_tags(source); }
void PollerGroup::set_hosts(const std::vector<HostConfig>& hosts) { impl_->registry.set_hosts(hosts); }
std::vector<SymbolId> PollerGroup::symbols_held() const { return impl_->registry.symbols_held(); }

std::vector<std::string> poller_tags(const SourceConfig& source, std::string_view symbol) {
    std::vector<std::string> tags = source.tags;
    if (auto it = source.symbol_tags.find(std::string(symbol)); it != source.symbol_tags.end())
        for (auto& t : it->second)
            if (std::find(tags.begin(), tags.end(), t) == tags.end()) tags.push_back(t);
    return tags;
}

}  // namespace mdagg

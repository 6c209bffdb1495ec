#include "reports.hpp"

#include <mdagg/log.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <string>

namespace mdagg::lifecycle {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using std::chrono::nanoseconds;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

double to_ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

nlohmann::json pollers_by_state(const PollerGroup& pollers) {
    nlohmann::json out = nlohmann::json::object();
    auto counts = pollers.state_counts();
    for (std::size_t i = 0; i < counts.size(); ++i)
        out[std::string(to_string(static_cast<PollerState>(i)))] = counts[i];
    return out;
}

Totals totals(const PollerGroup& pollers) {
    Totals t;
    for (SourceId s = 0; s < pollers.source_count(); ++s) {
        auto& st = pollers.stats(s);
        t.started += st.polls_started.load();
        t.completed += st.completed.load();
        t.failed += st.failed.load();
        t.timed_out += st.timed_out.load();
        t.cancelled += st.cancelled.load();
        t.skipped += st.skipped_ticks.load();
        t.throttled += st.throttled_ticks.load();
        t.rate_limited += st.rate_limited_ticks.load();
        t.paused += st.host_paused_ticks.load();
        t.breaker += st.breaker_ticks.load();
        t.in_flight += st.in_flight.load();
        for (std::size_t e = 0; e < t.errors.size(); ++e) t.errors[e] += st.errors[e].load();
        t.latency.merge(st.latency.snapshot());
        t.lateness.merge(st.lateness.snapshot());
    }
    return t;
}

nlohmann::json errors_by_class(const Totals& now, const Totals& since) {
    nlohmann::json errors = nlohmann::json::object();
    for (std::size_t e = 0; e < now.errors.size(); ++e)
        if (auto n = now.errors[e] - since.errors[e]) errors[std::string(to_string(static_cast<PollError>(e)))] = n;
    return errors;
}

nlohmann::json hosts_not_healthy(const PollerGroup& pollers) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [name, st] : pollers.host_statuses()) {
        if (st.breaker == BreakerState::closed && st.pause == PauseReason::none) continue;
        nlohmann::json entry{{"breaker", to_string(st.breaker)}, {"pause", to_string(st.pause)}};
        if (st.pause != PauseReason::none)
            entry["paused_for_ms"] = to_ms(st.paused_until - Clock::now());
        out[name] = std::move(entry);
    }
    return out;
}

Reports::Reports(const asio::any_io_executor& control, const PollerGroup& pollers, const FileSink& sink,
                 const Aggregator& aggregator, Operations& ops, std::optional<HostPauseFile>& host_pauses,
                 const std::atomic<bool>& draining, Duration summary_every)
    : pollers_(pollers),
      sink_(sink),
      aggregator_(aggregator),
      ops_(ops),
      host_pauses_(host_pauses),
      draining_(draining),
      summary_timer_(control),
      heartbeat_timer_(control),
      summary_every_ns_(summary_every.count()) {}

void Reports::set_summary_every(Duration every) {
    summary_every_ns_ = every.count();
    summary_timer_.cancel();  // the summary loop re-arms with the new interval
}

void Reports::cancel() {
    summary_timer_.cancel();
    heartbeat_timer_.cancel();
}

// g++ 12 reports asio's coroutine frame allocation (its recycling allocator's aligned_alloc,
// freed by the frame's own operator delete) as mismatched once both are inlined into the
// ramp function here: a false positive.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

// Stamps the loop watchdog's heartbeat and runs the readiness and stall checks.
asio::awaitable<void> Reports::heartbeats() {
    for (;;) {
        ops_.on_heartbeat(Clock::now());
        if (host_pauses_) host_pauses_->update(pollers_.server_pauses());  // written off-thread
        heartbeat_timer_.expires_after(Operations::heartbeat_every);
        auto [ec] = co_await heartbeat_timer_.async_wait(use_tuple);
        if (ec) co_return;
    }
}

asio::awaitable<void> Reports::summaries() {
    auto& timer = summary_timer_;
    Totals prev = totals(pollers_);
    auto prev_at = Clock::now();
    for (;;) {
        timer.expires_after(nanoseconds(summary_every_ns_));
        auto [ec] = co_await timer.async_wait(use_tuple);
        if (draining_) co_return;
        if (ec) continue;  // a reload changed the interval
        Totals now = totals(pollers_);
        auto at = Clock::now();
        double secs = std::chrono::duration<double>(at - prev_at).count();
        auto done = (now.completed - prev.completed) + (now.failed - prev.failed) +
                    (now.timed_out - prev.timed_out);
        auto bad = (now.failed - prev.failed) + (now.timed_out - prev.timed_out);
        auto latency = now.latency.since(prev.latency);
        auto lateness = now.lateness.since(prev.lateness);
        auto sink = sink_.stats();
        const nlohmann::json errors = errors_by_class(now, prev);
        const auto controls = pollers_.control_counts();
        log::info("summary", {{"polls_per_s", secs > 0 ? static_cast<double>(done) / secs : 0.0},
                              {"completed", now.completed - prev.completed},
                              {"failed", now.failed - prev.failed},
                              {"timed_out", now.timed_out - prev.timed_out},
                              {"skipped_ticks", now.skipped - prev.skipped},
                              {"throttled_ticks", now.throttled - prev.throttled},
                              {"rate_limited_ticks", now.rate_limited - prev.rate_limited},
                              {"host_paused_ticks", now.paused - prev.paused},
                              {"breaker_ticks", now.breaker - prev.breaker},
                              {"in_flight", now.in_flight},
                              {"error_rate", done ? static_cast<double>(bad) / static_cast<double>(done) : 0.0},
                              {"latency_p50_ms", to_ms(latency.quantile(0.5))},
                              {"latency_p99_ms", to_ms(latency.quantile(0.99))},
                              {"tick_lateness_p50_ms", to_ms(lateness.quantile(0.5))},
                              {"tick_lateness_p99_ms", to_ms(lateness.quantile(0.99))},
                              {"records_written", sink.records_written},
                              {"records_dropped", sink.records_dropped},
                              {"symbols_quoted", aggregator_.symbols_quoted()},
                              {"stale_quotes", aggregator_.stale_count()},
                              {"output_queued_bytes", sink.queued_bytes},
                              {"output_disk_fault", sink.disk_fault},
                              {"output_write_errors", sink.write_errors},
                              {"output_segments_unsynced", sink.segments_unsynced},
                              {"errors", errors},
                              {"pollers", pollers_by_state(pollers_)},
                              {"pollers_paused", controls.by_control[static_cast<std::size_t>(PollerControl::paused)]},
                              {"pollers_cancelled", controls.by_control[static_cast<std::size_t>(PollerControl::cancelled)]},
                              {"hosts", hosts_not_healthy(pollers_)}});
        prev = now;
        prev_at = at;
    }
}

#pragma GCC diagnostic pop

}  // namespace mdagg::lifecycle

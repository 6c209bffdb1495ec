#include "reports.hpp"

#include <mdagg/observe.hpp>

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

nlohmann::json errors_by_class(const PollErrorCounts& now, const PollErrorCounts& since) {
    nlohmann::json errors = nlohmann::json::object();
    for (std::size_t e = 0; e < now.size(); ++e)
        if (auto n = now[e] - since[e]) errors[std::string(to_string(static_cast<PollError>(e)))] = n;
    return errors;
}

nlohmann::json hedge_counts(const PollCounters& now, const PollCounters& since) {
    if (now.hedges_sent + now.hedges_unsent + now.hedges_refused_budget + now.hedges_refused_host == 0) return nullptr;
    std::uint64_t won = 0;
    for (std::size_t r = 0; r < now.hedge_wins.size(); ++r) won += now.hedge_wins[r] - since.hedge_wins[r];
    return {{"sent", now.hedges_sent - since.hedges_sent},
            {"won", won},
            {"refused_budget", now.hedges_refused_budget - since.hedges_refused_budget},
            {"refused_host", now.hedges_refused_host - since.hedges_refused_host},
            {"failed", now.hedges_failed - since.hedges_failed},
            {"unsent", now.hedges_unsent - since.hedges_unsent},
            {"losers_cancelled", now.losers_cancelled - since.losers_cancelled},
            {"losers_discarded", now.losers_discarded - since.losers_discarded}};
}

nlohmann::json late_answers(const LateAnswerCounts& now, const LateAnswerCounts& since) {
    nlohmann::json out = nlohmann::json::object();
    for (std::size_t e = 0; e < now.size(); ++e)
        if (auto n = now[e] - since[e]) out[std::string(to_string(static_cast<LateAnswer>(e)))] = n;
    return out;
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

// Totals since the start, except the delivery latency: over the summary's interval.
nlohmann::json kafka_summary(const KafkaStats& k, const LatencyHistogram::Snapshot& latency) {
    return {{"connected", k.connected},
            {"delivered", k.delivered},
            {"failed", k.failed},
            {"dropped", k.records_dropped()},
            {"dropped_by_cause",
             {{"buffer_full", k.dropped_buffer_full},
              {"queue_full", k.dropped_queue_full},
              {"produce_error", k.dropped_produce_error},
              {"closed", k.dropped_closed}}},
            {"queued_records", k.queued_records},
            {"queued_bytes", k.queued_bytes},
            {"delivery_p50_ms", to_ms(latency.quantile(0.5))},
            {"delivery_p99_ms", to_ms(latency.quantile(0.99))}};
}

Reports::Reports(const asio::any_io_executor& control, const PollerGroup& pollers, const FileSink& sink,
                 const KafkaSink* kafka, const Aggregator& aggregator, Operations& ops, std::optional<HostPauseFile>& host_pauses,
                 const std::atomic<bool>& draining, Duration summary_every)
    : pollers_(pollers),
      sink_(sink),
      kafka_(kafka),
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

// Deltas since the previous summary, except in_flight (now) and pollers (now).
nlohmann::json Reports::summary_fields(const PollCounters& now, const PollCounters& prev, double secs) const {
    const auto done = (now.completed - prev.completed) + (now.failed - prev.failed) + (now.timed_out - prev.timed_out);
    const auto bad = (now.failed - prev.failed) + (now.timed_out - prev.timed_out);
    const auto latency = now.latency.since(prev.latency);
    const auto lateness = now.lateness.since(prev.lateness);
    const auto sink = sink_.stats();
    const auto controls = pollers_.control_counts();
    nlohmann::json fields{{"polls_per_s", secs > 0 ? static_cast<double>(done) / secs : 0.0},
            {"completed", now.completed - prev.completed},
            {"failed", now.failed - prev.failed},
            {"timed_out", now.timed_out - prev.timed_out},
            {"skipped_ticks", now.skipped_ticks - prev.skipped_ticks},
            {"throttled_ticks", now.throttled_ticks - prev.throttled_ticks},
            {"rate_limited_ticks", now.rate_limited_ticks - prev.rate_limited_ticks},
            {"host_paused_ticks", now.host_paused_ticks - prev.host_paused_ticks},
            {"breaker_ticks", now.breaker_ticks - prev.breaker_ticks},
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
            {"errors", errors_by_class(now.errors, prev.errors)},
            {"late_answers", late_answers(now.late_answers, prev.late_answers)},
            {"batch_unknown", now.batch_entries[0] - prev.batch_entries[0]},
            {"batch_missing", now.batch_entries[1] - prev.batch_entries[1]},
            {"pollers", pollers_by_state(pollers_)},
            {"pollers_paused", controls.by_control[static_cast<std::size_t>(PollerControl::paused)]},
            {"pollers_cancelled", controls.by_control[static_cast<std::size_t>(PollerControl::cancelled)]},
            {"hosts", hosts_not_healthy(pollers_)},
            {"tls_handshakes", now.tls_handshakes - prev.tls_handshakes},
            {"tls_resumptions", now.tls_resumptions - prev.tls_resumptions}};
    if (auto hedges = hedge_counts(now, prev); !hedges.is_null()) fields["hedges"] = std::move(hedges);
    // Said again every time, not only at start-up: an unverified source is easy to forget.
    if (auto unverified = pollers_.unverified_tls_sources(); !unverified.empty())
        fields["tls_unverified_sources"] = std::move(unverified);
    if (kafka_) {  // issue 16
        const KafkaStats k = kafka_->stats();
        fields["kafka"] = kafka_summary(k, k.delivery_latency.since(kafka_latency_prev_));
        kafka_latency_prev_ = k.delivery_latency;
    }
    return fields;
}

asio::awaitable<void> Reports::summaries() {
    auto& timer = summary_timer_;
    PollCounters prev = PollStats::read(pollers_, PollDetail::with_histograms).total;
    auto prev_at = Clock::now();
    for (;;) {
        timer.expires_after(nanoseconds(summary_every_ns_));
        auto [ec] = co_await timer.async_wait(use_tuple);
        if (draining_) co_return;
        if (ec) continue;  // a reload changed the interval
        PollCounters now = PollStats::read(pollers_, PollDetail::with_histograms).total;
        const auto at = Clock::now();
        log::info("summary", summary_fields(now, prev, std::chrono::duration<double>(at - prev_at).count()));
        prev = std::move(now);
        prev_at = at;
    }
}

#pragma GCC diagnostic pop

}  // namespace mdagg::lifecycle

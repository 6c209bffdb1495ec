// The poll module's counters, copied out once per reader, and its families in /metrics. Works
// from PollerGroup's public API and the stat structs only.
#include <mdagg/poll_metrics.hpp>

#include <algorithm>
#include <limits>
#include <string_view>
#include <unordered_map>

namespace mdagg {
// Hedged requests' counters and families (hedge_metrics.cpp).
void read_hedge_counters(const SourceStats& st, PollCounters& c);
void add_hedge_counters(PollCounters& to, const PollCounters& from);
void write_hedge_metrics(PrometheusWriter& w, const PollStats& stats);

namespace {

constexpr auto relaxed = std::memory_order_relaxed;
constexpr std::size_t poller_controls = static_cast<std::size_t>(PollerControl::cancelled) + 1;

PollCounters read_counters(const SourceStats& st, PollDetail detail) {
    PollCounters c;
    c.polls_started = st.polls_started.load(relaxed);
    c.completed = st.completed.load(relaxed);
    c.failed = st.failed.load(relaxed);
    c.timed_out = st.timed_out.load(relaxed);
    c.cancelled = st.cancelled.load(relaxed);
    c.skipped_ticks = st.skipped_ticks.load(relaxed);
    c.throttled_ticks = st.throttled_ticks.load(relaxed);
    c.paused_ticks = st.paused_ticks.load(relaxed);
    c.rate_limited_ticks = st.rate_limited_ticks.load(relaxed);
    c.host_paused_ticks = st.host_paused_ticks.load(relaxed);
    c.breaker_ticks = st.breaker_ticks.load(relaxed);
    c.failovers = st.failovers.load(relaxed);
    c.failbacks = st.failbacks.load(relaxed);
    c.probe_fallbacks = st.probe_fallbacks.load(relaxed);
    for (std::size_t r = 0; r < c.route_polls.size(); ++r) c.route_polls[r] = st.route_polls[r].load(relaxed);
    for (std::size_t i = 0; i < 9; ++i) c.rate_limited_by_priority[i] = st.rate_limited_by_priority[i].load(relaxed);
    c.connects = st.connects.load(relaxed);
    c.retries = st.retries.load(relaxed);
    c.tls_handshakes = st.tls_handshakes.load(relaxed);
    c.tls_resumptions = st.tls_resumptions.load(relaxed);
    c.in_flight = st.in_flight.load(relaxed);
    for (std::size_t e = 0; e < c.errors.size(); ++e) c.errors[e] = st.errors[e].load(relaxed);
    for (std::size_t e = 0; e < c.batch_entries.size(); ++e) c.batch_entries[e] = st.batch_entries[e].load(relaxed);
    for (std::size_t e = 0; e < c.late_answers.size(); ++e) c.late_answers[e] = st.late_answers[e].load(relaxed);
    read_hedge_counters(st, c);
    if (detail == PollDetail::with_histograms) {
        c.latency = st.latency.snapshot();
        c.lateness = st.lateness.snapshot();
        c.achieved_interval = st.achieved_interval.snapshot();
    }
    return c;
}

// The source's pollers by state and by operator control, and its newest good quote.
struct SourcePollers {
    std::array<std::size_t, poller_state_count> by_state{};
    std::array<std::size_t, poller_controls> by_control{};
    std::int64_t last_success_ns = 0;
};

std::vector<SourcePollers> pollers_by_source(const std::vector<PollerSnapshot>& pollers, std::size_t sources) {
    std::vector<SourcePollers> per(sources);
    for (const auto& p : pollers) {
        // Read the table before the stats: a source gets its stats before its first poller.
        if (p.source >= per.size()) continue;
        auto& s = per[p.source];
        ++s.by_state[static_cast<std::size_t>(p.state)];
        ++s.by_control[static_cast<std::size_t>(p.control)];
        s.last_success_ns = std::max(s.last_success_ns, p.last_success_ns);
    }
    return per;
}

using Counter = std::uint64_t PollCounters::*;
struct CounterFamily {
    const char* name;
    const char* help;
    Counter field;
};
constexpr CounterFamily tick_and_connection_counters[] = {
    {"mdagg_source_skipped_ticks_total", "Ticks missed while the previous poll ran.", &PollCounters::skipped_ticks},
    {"mdagg_source_throttled_ticks_total", "Ticks skipped at max_in_flight or in connect backoff.",
     &PollCounters::throttled_ticks},
    {"mdagg_source_paused_ticks_total", "Ticks of pollers an operator paused.", &PollCounters::paused_ticks},
    {"mdagg_source_rate_limited_ticks_total", "Ticks skipped because the host's token bucket was empty.",
     &PollCounters::rate_limited_ticks},
    {"mdagg_source_host_paused_ticks_total", "Ticks skipped while the host was paused (Retry-After, ban).",
     &PollCounters::host_paused_ticks},
    {"mdagg_source_breaker_ticks_total", "Ticks skipped while the host's circuit breaker was open.",
     &PollCounters::breaker_ticks},
    {"mdagg_source_failovers_total", "Pollers moved to a mirror: the host before it paused or its breaker open.",
     &PollCounters::failovers},
    {"mdagg_source_failbacks_total", "Pollers moved back to an earlier route (the url's host) once it took polls again.",
     &PollCounters::failbacks},
    {"mdagg_source_probe_fallbacks_total",
     "Ticks whose probe of the url's host failed and that went on to a mirror in the same tick.",
     &PollCounters::probe_fallbacks},
    {"mdagg_source_connects_total", "Connections opened.", &PollCounters::connects},
    {"mdagg_source_retries_total", "GETs re-sent once after a stale keep-alive close.", &PollCounters::retries},
    {"mdagg_source_tls_handshakes_total", "TLS handshakes completed, full or resumed.", &PollCounters::tls_handshakes},
    {"mdagg_source_tls_resumptions_total", "TLS handshakes that resumed a session (no full handshake).",
     &PollCounters::tls_resumptions},
};

void write_source_counters(PrometheusWriter& w, const PollStats& stats) {
    const auto& names = stats.source_names;
    w.family("mdagg_source_polls_total", "counter", "Polls finished, by outcome.");
    for (SourceId s = 0; s < stats.sources.size(); ++s) {
        const auto& c = stats.sources[s];
        w.sample("mdagg_source_polls_total", {{"source", names[s]}, {"outcome", "completed"}}, static_cast<double>(c.completed));
        w.sample("mdagg_source_polls_total", {{"source", names[s]}, {"outcome", "failed"}}, static_cast<double>(c.failed));
        w.sample("mdagg_source_polls_total", {{"source", names[s]}, {"outcome", "timed_out"}}, static_cast<double>(c.timed_out));
        w.sample("mdagg_source_polls_total", {{"source", names[s]}, {"outcome", "cancelled"}}, static_cast<double>(c.cancelled));
    }
    w.family("mdagg_source_poll_errors_total", "counter", "Failed polls, by error class.");
    for (SourceId s = 0; s < stats.sources.size(); ++s)
        for (std::size_t e = 0; e < stats.sources[s].errors.size(); ++e)
            w.sample("mdagg_source_poll_errors_total",
                     {{"source", names[s]}, {"class", to_string(static_cast<PollError>(e))}},
                     static_cast<double>(stats.sources[s].errors[e]));
    for (const auto& f : tick_and_connection_counters) {
        w.family(f.name, "counter", f.help);
        for (SourceId s = 0; s < stats.sources.size(); ++s)
            w.sample(f.name, {{"source", names[s]}}, static_cast<double>(stats.sources[s].*f.field));
    }
    w.family("mdagg_source_batch_entries_total", "counter",
             "Batch answers' entries not delivered: unknown symbols, missing members, duplicates, bad symbols.");
    for (SourceId s = 0; s < stats.sources.size(); ++s)
        for (std::size_t e = 0; e < stats.sources[s].batch_entries.size(); ++e)
            w.sample("mdagg_source_batch_entries_total",
                     {{"source", names[s]}, {"outcome", to_string(static_cast<BatchEntryCount>(e))}},
                     static_cast<double>(stats.sources[s].batch_entries[e]));
    w.family("mdagg_source_route_polls_total", "counter",
             "Polls started by route (via: the url's host, or a mirror's), for sources with mirrors.");
    for (SourceId s = 0; s < stats.sources.size() && s < stats.route_names.size(); ++s) {
        const auto& routes = stats.route_names[s];
        for (std::size_t r = 0; routes.size() > 1 && r < routes.size() && r < max_poll_routes; ++r)
            w.sample("mdagg_source_route_polls_total", {{"source", names[s]}, {"via", routes[r]}},
                     static_cast<double>(stats.sources[s].route_polls[r]));
    }
    w.family("mdagg_source_rate_limited_ticks_by_priority_total", "counter",
             "Ticks skipped for want of the host's tokens, by the poller's priority (levels with any).");
    for (SourceId s = 0; s < stats.sources.size(); ++s)
        for (std::size_t i = 0; i < 9; ++i)
            if (const auto n = stats.sources[s].rate_limited_by_priority[i])
                w.sample("mdagg_source_rate_limited_ticks_by_priority_total",
                         {{"source", names[s]}, {"priority", std::to_string(i + 1)}}, static_cast<double>(n));
    w.family("mdagg_source_late_answers_total", "counter",
             "Polls whose answer had not come by the deadline and that waited their late grace, by how they "
             "ended: delivered, failed (an error answer), closed (timed out), cancelled.");
    for (SourceId s = 0; s < stats.sources.size(); ++s)
        for (std::size_t e = 0; e < stats.sources[s].late_answers.size(); ++e)
            w.sample("mdagg_source_late_answers_total",
                     {{"source", names[s]}, {"outcome", to_string(static_cast<LateAnswer>(e))}},
                     static_cast<double>(stats.sources[s].late_answers[e]));
    write_hedge_metrics(w, stats);
    w.family("mdagg_source_polls_in_flight", "gauge", "Polls under way.");
    for (SourceId s = 0; s < stats.sources.size(); ++s)
        w.sample("mdagg_source_polls_in_flight", {{"source", names[s]}}, static_cast<double>(stats.sources[s].in_flight));
}

void write_source_pollers(PrometheusWriter& w, const std::vector<std::string>& names,
                          const std::vector<SourcePollers>& per, std::int64_t now_ns) {
    w.family("mdagg_source_last_success_age_seconds", "gauge",
             "Age of the source's newest good quote; +Inf before the first.");
    for (SourceId s = 0; s < per.size(); ++s) {
        const auto last = per[s].last_success_ns;
        w.sample("mdagg_source_last_success_age_seconds", {{"source", names[s]}},
                 last > 0 ? static_cast<double>(now_ns - last) / 1e9 : std::numeric_limits<double>::infinity());
    }
    w.family("mdagg_source_pollers", "gauge", "Pollers by the outcome of their latest poll.");
    for (SourceId s = 0; s < per.size(); ++s)
        for (std::size_t i = 0; i < per[s].by_state.size(); ++i)
            w.sample("mdagg_source_pollers", {{"source", names[s]}, {"state", to_string(static_cast<PollerState>(i))}},
                     static_cast<double>(per[s].by_state[i]));
    w.family("mdagg_source_pollers_control", "gauge", "Pollers by operator control: active, paused, cancelled.");
    for (SourceId s = 0; s < per.size(); ++s)
        for (std::size_t i = 0; i < per[s].by_control.size(); ++i)
            w.sample("mdagg_source_pollers_control",
                     {{"source", names[s]}, {"control", to_string(static_cast<PollerControl>(i))}},
                     static_cast<double>(per[s].by_control[i]));
}

using Histogram = LatencyHistogram::Snapshot PollCounters::*;
struct HistogramFamily {
    const char* name;
    const char* help;
    Histogram field;
};
constexpr HistogramFamily source_histograms[] = {
    {"mdagg_source_poll_duration_seconds", "Poll latency, tick to quote delivered.", &PollCounters::latency},
    {"mdagg_source_poll_interval_seconds",
     "Achieved time between a poller's consecutive polls (compare with the configured interval).",
     &PollCounters::achieved_interval},
    {"mdagg_source_tick_lateness_seconds", "Scheduled tick to timer wake-up.", &PollCounters::lateness},
};

}  // namespace

PollCounters counters_of(const SourceStats& stats, PollDetail detail) { return read_counters(stats, detail); }

void PollCounters::add(const PollCounters& o) noexcept {
    polls_started += o.polls_started;
    completed += o.completed;
    failed += o.failed;
    timed_out += o.timed_out;
    cancelled += o.cancelled;
    skipped_ticks += o.skipped_ticks;
    throttled_ticks += o.throttled_ticks;
    paused_ticks += o.paused_ticks;
    rate_limited_ticks += o.rate_limited_ticks;
    host_paused_ticks += o.host_paused_ticks;
    breaker_ticks += o.breaker_ticks;
    failovers += o.failovers;
    failbacks += o.failbacks;
    probe_fallbacks += o.probe_fallbacks;
    for (std::size_t r = 0; r < route_polls.size(); ++r) route_polls[r] += o.route_polls[r];
    for (std::size_t i = 0; i < 9; ++i) rate_limited_by_priority[i] += o.rate_limited_by_priority[i];
    connects += o.connects;
    retries += o.retries;
    tls_handshakes += o.tls_handshakes;
    tls_resumptions += o.tls_resumptions;
    in_flight += o.in_flight;
    for (std::size_t e = 0; e < errors.size(); ++e) errors[e] += o.errors[e];
    for (std::size_t e = 0; e < batch_entries.size(); ++e) batch_entries[e] += o.batch_entries[e];
    for (std::size_t e = 0; e < late_answers.size(); ++e) late_answers[e] += o.late_answers[e];
    add_hedge_counters(*this, o);
    latency.merge(o.latency);
    lateness.merge(o.lateness);
    achieved_interval.merge(o.achieved_interval);
}

PollStats PollStats::read(const PollerGroup& pollers, PollDetail detail) {
    PollStats out;
    const std::size_t sources = pollers.source_count();
    out.sources.reserve(sources);
    for (SourceId s = 0; s < sources; ++s) {
        out.sources.push_back(pollers.source_counters(s, detail));
        out.total.add(out.sources.back());
        if (detail == PollDetail::with_histograms) {
            out.source_names.push_back(pollers.source_name(s));
            out.route_names.push_back(pollers.route_names(s));
        }
    }
    return out;
}

void write_source_metrics(PrometheusWriter& w, const PollStats& stats, const std::vector<PollerSnapshot>& pollers,
                          std::int64_t now_wall_ns) {
    const auto per = pollers_by_source(pollers, stats.sources.size());
    write_source_counters(w, stats);
    write_source_pollers(w, stats.source_names, per, now_wall_ns);
    for (const auto& f : source_histograms) {
        w.family(f.name, "histogram", f.help);
        for (SourceId s = 0; s < stats.sources.size(); ++s)
            w.histogram(f.name, {{"source", stats.source_names[s]}}, stats.sources[s].*f.field);
    }
}

void write_symbol_metrics(PrometheusWriter& w, const std::vector<const PollerSnapshot*>& chosen,
                          const std::vector<std::string>& names, std::int64_t now_ns) {
    w.family("mdagg_symbol_polls_total", "counter", "Polls of one symbol, by outcome (admin.symbol_metrics).");
    for (const auto* p : chosen) {
        const std::string_view src = names[p->source];
        w.sample("mdagg_symbol_polls_total", {{"source", src}, {"symbol", p->symbol}, {"outcome", "completed"}}, static_cast<double>(p->completed));
        w.sample("mdagg_symbol_polls_total", {{"source", src}, {"symbol", p->symbol}, {"outcome", "failed"}}, static_cast<double>(p->failed));
        w.sample("mdagg_symbol_polls_total", {{"source", src}, {"symbol", p->symbol}, {"outcome", "timed_out"}}, static_cast<double>(p->timed_out));
    }
    w.family("mdagg_symbol_last_success_age_seconds", "gauge", "Age of the symbol's last good quote (admin.symbol_metrics).");
    for (const auto* p : chosen)
        if (p->last_success_ns > 0)
            w.sample("mdagg_symbol_last_success_age_seconds", {{"source", names[p->source]}, {"symbol", p->symbol}},
                     static_cast<double>(now_ns - p->last_success_ns) / 1e9);
    w.family("mdagg_symbol_poll_latency_seconds", "gauge", "Latency of the symbol's latest poll (admin.symbol_metrics).");
    for (const auto* p : chosen)
        w.sample("mdagg_symbol_poll_latency_seconds", {{"source", names[p->source]}, {"symbol", p->symbol}},
                 static_cast<double>(p->last_latency_ns) / 1e9);
}

SymbolFreshness symbol_freshness(const std::vector<PollerSnapshot>& pollers, std::int64_t now_ns) {
    std::unordered_map<std::string_view, bool> fresh;
    for (const auto& p : pollers) {
        const auto window = 3 * p.interval.count();
        bool& f = fresh[p.symbol];
        f = f || (p.last_success_ns > 0 && now_ns - p.last_success_ns <= window);
    }
    SymbolFreshness out;
    out.symbols = fresh.size();
    for (const auto& [symbol, f] : fresh) out.stale += f ? 0 : 1;
    return out;
}

}  // namespace mdagg

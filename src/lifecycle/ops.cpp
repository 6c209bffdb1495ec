#include "ops.hpp"

#include <mdagg/log.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <unordered_map>

#ifndef MDAGG_VERSION
#define MDAGG_VERSION "unknown"
#endif

namespace mdagg::lifecycle {

namespace {

using std::chrono::duration_cast;
using std::chrono::nanoseconds;

double seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

std::int64_t wall_clock_ns() {
    return duration_cast<nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// RFC 3339 UTC with milliseconds, or null for "never".
nlohmann::json wall_time_json(std::int64_t ns) {
    if (ns <= 0) return nullptr;
    const std::time_t secs = static_cast<std::time_t>(ns / 1'000'000'000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[96];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>((ns / 1'000'000) % 1000));
    return buf;
}

bool state_matches(std::string_view wanted, const PollerSnapshot& p) {
    return wanted.empty() || wanted == to_string(p.state) || wanted == to_string(p.control) ||
           (wanted == "polling" && p.polling);
}

bool known_state(std::string_view s) {
    for (std::size_t i = 0; i < 6; ++i)
        if (s == to_string(static_cast<PollerState>(i))) return true;
    return s == "active" || s == "paused" || s == "cancelled" || s == "polling";
}

}  // namespace

Operations::Operations(const Config& config, PollerGroup& pollers, const JsonlSink& sink)
    : pollers_(pollers), sink_(sink),
      symbol_metrics_(config.admin.symbol_metrics),
      stall_after_ns_(config.admin.stall_after.count()), last_beat_(Clock::now().time_since_epoch().count()) {
    last_progress_.store(Clock::now().time_since_epoch().count());
}

void Operations::set_symbol_metrics(std::vector<std::string> globs) {
    std::lock_guard lock(symbol_metrics_mutex_);
    symbol_metrics_ = std::move(globs);
}

Operations::~Operations() {
    {
        std::lock_guard lock(watchdog_mutex_);
        watchdog_stop_ = true;
    }
    watchdog_cv_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
}

std::uint64_t Operations::polls_finished() const {
    std::uint64_t n = 0;
    for (SourceId s = 0; s < pollers_.source_count(); ++s)
        n += pollers_.stats(s).completed.load(std::memory_order_relaxed);
    return n;
}

void Operations::on_heartbeat(Clock::time_point now) {
    last_beat_.store(now.time_since_epoch().count(), std::memory_order_release);
    if (draining_.load()) return;

    // Readiness: every poller an operator has not paused or cancelled has finished a poll.
    // Counts only, no copies: this runs four times a second on the event loop.
    const auto control = pollers_.control_counts();
    const std::size_t active = control.by_control[static_cast<std::size_t>(PollerControl::active)];
    const std::size_t stopped = control.by_control[static_cast<std::size_t>(PollerControl::paused)] +
                                control.by_control[static_cast<std::size_t>(PollerControl::cancelled)];
    if (stopped > 0 && now >= next_control_check_) {
        next_control_check_ = now + control_check_every;
        warn_stopped_sources(now);
    } else if (stopped == 0 && !stopped_warned_.empty()) {
        for (auto& [source, since] : stopped_warned_)
            log::info("source no longer stopped by an operator", {{"source", source}});
        stopped_warned_.clear();
    }
    if (!ready_.load() && control.active_never_polled == 0) {
        ready_.store(true);
        log::info("ready: the first round of polls finished",
                  {{"pollers", pollers_.size()}, {"startup_ms", seconds(now - started_) * 1e3}});
    }

    // Stall detection. Pollers the operator paused or cancelled are not expected to complete,
    // nor those of a host the server paused or banned: failing liveness for that would restart
    // the pod, which hits the venue again and lengthens the ban.
    const std::uint64_t completed = polls_finished();
    const auto stall_after = nanoseconds(stall_after_ns_.load());
    if (completed != last_completed_ || active == control.active_on_paused_host) {
        last_completed_ = completed;
        last_progress_.store(now.time_since_epoch().count());
        if (polls_stalled_.exchange(false))
            log::info("polls are completing again", {{"completed_total", completed}});
        return;
    }
    const auto since = now - Clock::time_point(Clock::duration(last_progress_.load()));
    if (since >= stall_after && !polls_stalled_.exchange(true)) {
        poll_stalls_.fetch_add(1);
        nlohmann::json by_state = nlohmann::json::object();
        auto counts = pollers_.state_counts();
        for (std::size_t i = 0; i < counts.size(); ++i)
            by_state[std::string(to_string(static_cast<PollerState>(i)))] = counts[i];
        log::error("stalled: no poll completed within stall_after",
                   {{"stall_after_ms", seconds(stall_after) * 1e3},
                    {"since_last_completed_ms", seconds(since) * 1e3},
                    {"active_pollers", active},
                    {"active_pollers_on_paused_hosts", control.active_on_paused_host},
                    {"pollers", by_state}});
    }
}

std::shared_ptr<const std::vector<PollerSnapshot>> Operations::poller_snapshot() {
    std::lock_guard lock(snapshot_mutex_);
    const auto now = Clock::now();
    if (!snapshot_ || now - snapshot_taken_ >= snapshot_ttl) {
        snapshot_ = std::make_shared<const std::vector<PollerSnapshot>>(pollers_.snapshot());
        snapshot_taken_ = now;
        snapshots_taken_.fetch_add(1, std::memory_order_relaxed);
    }
    return snapshot_;
}

void Operations::invalidate_snapshot() {
    std::lock_guard lock(snapshot_mutex_);
    snapshot_.reset();
}

// Nothing else shows that an operator stopped a source: /healthz and /readyz stay 200 (an
// operator's pause is no failure), so say it in the log until someone resumes it.
void Operations::warn_stopped_sources(Clock::time_point now) {
    struct Controls {
        std::size_t active = 0, paused = 0, cancelled = 0;
    };
    std::unordered_map<std::string_view, Controls> by_source;
    const auto snapshot = poller_snapshot();
    for (const auto& p : *snapshot) {
        auto& c = by_source[p.source_name];
        switch (p.control) {
            case PollerControl::active: ++c.active; break;
            case PollerControl::paused: ++c.paused; break;
            case PollerControl::cancelled: ++c.cancelled; break;
        }
    }
    for (auto it = stopped_warned_.begin(); it != stopped_warned_.end();) {
        auto found = by_source.find(it->first);
        if (found == by_source.end() || found->second.active > 0) {
            log::info("source no longer stopped by an operator", {{"source", it->first}});
            it = stopped_warned_.erase(it);
        } else {
            ++it;
        }
    }
    for (const auto& [source, c] : by_source) {
        if (c.active > 0) continue;
        const bool all_cancelled = c.paused == 0;
        auto [it, first] = stopped_warned_.try_emplace(std::string(source), StoppedWarning{now, all_cancelled});
        // Paused, then cancelled: that is news, not a repeat.
        if (!first && now - it->second.at < control_warn_every && it->second.all_cancelled == all_cancelled) continue;
        it->second = StoppedWarning{now, all_cancelled};
        const nlohmann::json fields{{"source", source},
                                    {"pollers", c.paused + c.cancelled},
                                    {"paused", c.paused},
                                    {"cancelled", c.cancelled},
                                    {"repeat_every_s", std::chrono::duration<double>(control_warn_every).count()}};
        if (all_cancelled)
            log::warn("every poller of the source is cancelled by an operator: nothing polls it until a restart", fields);
        else
            log::warn("every poller of the source is paused or cancelled by an operator: nothing polls it", fields);
    }
}

void Operations::start_loop_watchdog() {
    watchdog_ = std::thread([this] {
        std::unique_lock lock(watchdog_mutex_);
        while (!watchdog_cv_.wait_for(lock, std::chrono::milliseconds(500), [this] { return watchdog_stop_; })) {
            const auto beat = Clock::time_point(Clock::duration(last_beat_.load(std::memory_order_acquire)));
            const auto age = Clock::now() - beat;
            if (age > loop_stall_after) {
                if (!loop_stalled_.exchange(true)) {
                    loop_stalls_.fetch_add(1);
                    log::error("event loop stalled: the control strand has not run",
                               {{"since_ms", seconds(age) * 1e3}});
                }
            } else if (loop_stalled_.exchange(false)) {
                log::info("event loop turning again", {});
            }
        }
    });
}

PollerFilter Operations::filter_for(const admin::Selector& selector) {
    return [&selector](std::string_view source, std::string_view symbol, const std::vector<std::string>& tags) {
        return selector.matches(source, symbol, [&](std::string_view tag) {
            return std::find(tags.begin(), tags.end(), tag) != tags.end();
        });
    };
}

// Hosts paused or banned by the server: not a liveness failure, but shown in /healthz and
// /readyz (and alertable from mdagg_host_paused).
nlohmann::json Operations::paused_hosts() const {
    nlohmann::json out = nlohmann::json::array();
    const auto now = std::chrono::system_clock::now();
    for (auto& p : pollers_.server_pauses())
        out.push_back({{"host", p.host},
                       {"reason", to_string(p.reason)},
                       {"remaining_ms", std::chrono::duration<double, std::milli>(p.until - now).count()}});
    return out;
}

// issue 16: the Kafka sink's own families (its queued bytes and drops share the file sink's).
static void write_kafka_metrics(admin::PrometheusWriter& w, const KafkaStats& k) {
    const auto count = [](std::uint64_t n) { return static_cast<double>(n); };
    w.family("mdagg_sink_connected", "gauge", "1 while a broker of the sink answers (Kafka).");
    w.sample("mdagg_sink_connected", {{"sink", "kafka"}}, k.connected ? 1 : 0);
    w.family("mdagg_sink_outages_total", "counter", "Times every broker of the sink became unreachable (Kafka).");
    w.sample("mdagg_sink_outages_total", {{"sink", "kafka"}}, count(k.outages));
    w.family("mdagg_sink_records_delivered_total", "counter", "Records the brokers acknowledged, by stream (Kafka).");
    w.family("mdagg_sink_records_failed_total", "counter",
             "Records accepted and then given up (delivery error or purged at the drain), by stream (Kafka).");
    const std::pair<const char*, const KafkaStreamStats*> streams[] = {
        {"quotes", &k.quotes}, {"bars", &k.bars}, {"events", &k.events}};
    for (const auto& [stream, st] : streams)
        w.sample("mdagg_sink_records_delivered_total", {{"sink", "kafka"}, {"stream", stream}}, count(st->delivered));
    for (const auto& [stream, st] : streams)
        w.sample("mdagg_sink_records_failed_total", {{"sink", "kafka"}, {"stream", stream}}, count(st->failed));
    w.family("mdagg_sink_queued_records", "gauge", "Records accepted and not yet acknowledged (Kafka).");
    w.sample("mdagg_sink_queued_records", {{"sink", "kafka"}}, count(k.queued_records));
    w.family("mdagg_sink_overflow_waits_total", "counter", "block policy: records that waited for room (Kafka).");
    w.sample("mdagg_sink_overflow_waits_total", {{"sink", "kafka"}}, count(k.overflow_waits));
    w.family("mdagg_sink_delivery_latency_seconds", "histogram", "Receive time to delivery report (Kafka).");
    w.histogram("mdagg_sink_delivery_latency_seconds", {{"sink", "kafka"}}, k.delivery_latency);
}

admin::Response Operations::healthz() {
    nlohmann::json body;
    std::vector<std::string> problems;
    if (loop_stalled_.load()) problems.emplace_back("event loop stalled");
    if (polls_stalled_.load()) problems.emplace_back("no poll completed within stall_after");
    const auto since = Clock::now() - Clock::time_point(Clock::duration(last_progress_.load()));
    body["status"] = problems.empty() ? "ok" : "unhealthy";
    if (!problems.empty()) body["problems"] = problems;
    body["since_last_poll_completed_ms"] = seconds(since) * 1e3;
    body["stall_after_ms"] = seconds(nanoseconds(stall_after_ns_.load())) * 1e3;
    if (auto paused = paused_hosts(); !paused.empty()) body["hosts_paused_by_server"] = std::move(paused);
    return {problems.empty() ? 200 : 503, "application/json", body.dump() + "\n"};
}

admin::Response Operations::readyz() {
    if (draining_.load())
        return {503, "application/json", R"({"status":"draining"})" "\n"};
    if (!ready_.load())
        return {503, "application/json", R"({"status":"starting","reason":"first round of polls not finished"})" "\n"};
    auto paused = paused_hosts();
    if (paused.empty() && !kafka_) return {200, "application/json", R"({"status":"ready"})" "\n"};
    // Ready all the same: the pollers of a paused host wait for the end the server gave.
    nlohmann::json body{{"status", "ready"}};
    if (!paused.empty()) body["hosts_paused_by_server"] = std::move(paused);
    if (kafka_) {  // issue 16: a Kafka outage never stops polling or the files: a detail, still ready
        const KafkaStats k = kafka_->stats();
        body["kafka"] = {{"connected", k.connected}, {"queued_records", k.queued_records}};
    }
    return {200, "application/json", body.dump() + "\n"};
}

admin::Response Operations::tasks(const admin::Selector& filter) {
    if (!filter.state.empty() && !known_state(filter.state))
        return {400, "application/json",
                admin::json_text({{"error", "unknown state \"" + filter.state +
                                                "\"; valid: pending, running, completed, failed, cancelled, "
                                                "timed_out, active, paused, polling"}}) +
                    "\n"};
    const auto select = filter_for(filter);
    const auto now_ns = wall_clock_ns();
    nlohmann::json rows = nlohmann::json::array();
    const auto snapshot = poller_snapshot();
    for (const auto& p : *snapshot) {
        if (!state_matches(filter.state, p) || !select(p.source_name, p.symbol, p.tags)) continue;
        nlohmann::json row{{"source", p.source_name},
                           {"symbol", p.symbol},
                           {"state", to_string(p.state)},
                           {"control", to_string(p.control)},
                           {"polling", p.polling},
                           {"polls", p.polls},
                           {"completed", p.completed},
                           {"failed", p.failed},
                           {"timed_out", p.timed_out},
                           {"last_success", wall_time_json(p.last_success_ns)},
                           {"last_error", p.last_error ? nlohmann::json(to_string(*p.last_error)) : nlohmann::json()},
                           {"last_error_at", wall_time_json(p.last_error_ns)},
                           {"last_latency_ms", p.last_latency_ns < 0 ? nlohmann::json() : nlohmann::json(p.last_latency_ns / 1e6)}};
        row["last_success_age_ms"] = p.last_success_ns > 0 ? nlohmann::json((now_ns - p.last_success_ns) / 1e6) : nlohmann::json();
        row["tags"] = p.tags;
        rows.push_back(std::move(row));
    }
    nlohmann::json body{{"count", rows.size()}, {"tasks", std::move(rows)}};
    return {200, "application/json", admin::json_text(body) + "\n"};
}

admin::Response Operations::control(admin::Action action, const admin::Selector& selector) {
    const auto select = filter_for(selector);
    ControlResult r;
    switch (action) {
        case admin::Action::pause: r = pollers_.pause(select); break;
        case admin::Action::resume: r = pollers_.resume(select); break;
        case admin::Action::cancel: r = pollers_.cancel(select); break;
    }
    invalidate_snapshot();
    nlohmann::json sel = nlohmann::json::object();
    if (selector.all) sel["all"] = true;
    if (!selector.source.empty()) sel["source"] = selector.source;
    if (!selector.symbols.empty()) sel["symbols"] = selector.symbols;
    if (!selector.glob.empty()) sel["glob"] = selector.glob;
    if (!selector.tag.empty()) sel["tag"] = selector.tag;
    log::info("admin action", {{"action", to_string(action)}, {"selector", sel},
                               {"matched", r.matched}, {"changed", r.changed}});
    nlohmann::json body{{"action", to_string(action)}, {"matched", r.matched}, {"changed", r.changed}};
    return {200, "application/json", body.dump() + "\n"};
}

std::string Operations::metrics() {
    std::string out;
    out.reserve(32 * 1024);
    admin::PrometheusWriter w(out);
    const auto now = Clock::now();
    const auto now_ns = wall_clock_ns();
    const auto snapshot_ptr = poller_snapshot();
    const auto& snapshot = *snapshot_ptr;

    w.family("mdagg_build_info", "gauge", "Build information; the value is always 1.");
    w.sample("mdagg_build_info", {{"version", MDAGG_VERSION}}, 1);
    w.family("mdagg_start_time_seconds", "gauge", "When the daemon started, in seconds since the Unix epoch.");
    w.sample("mdagg_start_time_seconds", {},
             std::chrono::duration<double>(started_wall_.time_since_epoch()).count());
    w.family("mdagg_uptime_seconds", "gauge", "Seconds since the daemon started.");
    w.sample("mdagg_uptime_seconds", {}, seconds(now - started_));
    w.family("mdagg_ready", "gauge", "1 when /readyz answers 200.");
    w.sample("mdagg_ready", {}, ready_.load() && !draining_.load() ? 1 : 0);
    w.family("mdagg_draining", "gauge", "1 from the moment a drain started.");
    w.sample("mdagg_draining", {}, draining_.load() ? 1 : 0);
    w.family("mdagg_event_loop_stalled", "gauge", "1 while the event loop has not turned for 5 s.");
    w.sample("mdagg_event_loop_stalled", {}, loop_stalled_.load() ? 1 : 0);
    w.family("mdagg_event_loop_stalls_total", "counter", "Times the event loop was found stalled.");
    w.sample("mdagg_event_loop_stalls_total", {}, static_cast<double>(loop_stalls_.load()));
    w.family("mdagg_polls_stalled", "gauge", "1 while no poll has completed for stall_after.");
    w.sample("mdagg_polls_stalled", {}, polls_stalled_.load() ? 1 : 0);
    w.family("mdagg_poll_stalls_total", "counter", "Times no poll completed for stall_after.");
    w.sample("mdagg_poll_stalls_total", {}, static_cast<double>(poll_stalls_.load()));
    w.family("mdagg_admin_poller_snapshots_total", "counter",
             "Copies of the poller table taken for /metrics and /debug/tasks (shared for 1 s).");
    w.sample("mdagg_admin_poller_snapshots_total", {}, static_cast<double>(snapshots_taken_.load()));
    if (last_drain_) {
        w.family("mdagg_last_drain_duration_seconds", "gauge",
                 "How long the previous process's drain took (from .mdagg-drain.json in output.dir).");
        w.sample("mdagg_last_drain_duration_seconds", {}, last_drain_->duration_seconds);
        w.family("mdagg_last_drain_exit_code", "gauge",
                 "The previous process's exit code after its drain: 0 clean, 1 output incomplete, 3 budget exceeded or forced.");
        w.sample("mdagg_last_drain_exit_code", {}, last_drain_->exit_code);
    }

    // Per source. Names: the source label is the config's source name.
    struct PerSource {
        std::array<std::size_t, 6> by_state{};
        std::array<std::size_t, 3> by_control{};
        std::int64_t last_success_ns = 0;
    };
    std::vector<PerSource> per(pollers_.source_count());
    // A symbol is stale when no poller of it completed within three of its source's intervals.
    std::unordered_map<std::string_view, bool> fresh;
    for (auto& p : snapshot) {
        if (p.source >= per.size()) per.resize(p.source + 1);  // a reload added it just now
        auto& s = per[p.source];
        ++s.by_state[static_cast<std::size_t>(p.state)];
        ++s.by_control[static_cast<std::size_t>(p.control)];
        s.last_success_ns = std::max(s.last_success_ns, p.last_success_ns);
        const auto window = 3 * p.interval.count();
        bool& f = fresh[p.symbol];
        f = f || (p.last_success_ns > 0 && now_ns - p.last_success_ns <= window);
    }

    using Counter = std::atomic<std::uint64_t> SourceStats::*;
    struct CounterMetric {
        const char* name;
        const char* help;
        Counter field;
    };
    static constexpr CounterMetric counters[] = {
        {"mdagg_source_skipped_ticks_total", "Ticks missed while the previous poll ran.", &SourceStats::skipped_ticks},
        {"mdagg_source_throttled_ticks_total", "Ticks skipped at max_in_flight or in connect backoff.",
         &SourceStats::throttled_ticks},
        {"mdagg_source_paused_ticks_total", "Ticks of pollers an operator paused.", &SourceStats::paused_ticks},
        {"mdagg_source_rate_limited_ticks_total", "Ticks skipped because the host's token bucket was empty.",
         &SourceStats::rate_limited_ticks},
        {"mdagg_source_host_paused_ticks_total", "Ticks skipped while the host was paused (Retry-After, ban).",
         &SourceStats::host_paused_ticks},
        {"mdagg_source_breaker_ticks_total", "Ticks skipped while the host's circuit breaker was open.",
         &SourceStats::breaker_ticks},
        {"mdagg_source_connects_total", "Connections opened.", &SourceStats::connects},
        {"mdagg_source_retries_total", "GETs re-sent once after a stale keep-alive close.", &SourceStats::retries},
    };
    const std::size_t sources = per.size();
    std::vector<std::string> names(sources);
    for (SourceId s = 0; s < sources; ++s) names[s] = pollers_.source_name(s);
    auto name_of = [&](SourceId s) -> std::string_view { return names[s]; };

    w.family("mdagg_source_polls_total", "counter", "Polls finished, by outcome.");
    for (SourceId s = 0; s < sources; ++s) {
        auto& st = pollers_.stats(s);
        w.sample("mdagg_source_polls_total", {{"source", name_of(s)}, {"outcome", "completed"}}, static_cast<double>(st.completed.load()));
        w.sample("mdagg_source_polls_total", {{"source", name_of(s)}, {"outcome", "failed"}}, static_cast<double>(st.failed.load()));
        w.sample("mdagg_source_polls_total", {{"source", name_of(s)}, {"outcome", "timed_out"}}, static_cast<double>(st.timed_out.load()));
        w.sample("mdagg_source_polls_total", {{"source", name_of(s)}, {"outcome", "cancelled"}}, static_cast<double>(st.cancelled.load()));
    }
    w.family("mdagg_source_poll_errors_total", "counter", "Failed polls, by error class.");
    for (SourceId s = 0; s < sources; ++s)
        for (std::size_t e = 0; e < static_cast<std::size_t>(PollError::count_); ++e)
            w.sample("mdagg_source_poll_errors_total",
                     {{"source", name_of(s)}, {"class", to_string(static_cast<PollError>(e))}},
                     static_cast<double>(pollers_.stats(s).errors[e].load()));
    for (auto& c : counters) {
        w.family(c.name, "counter", c.help);
        for (SourceId s = 0; s < sources; ++s)
            w.sample(c.name, {{"source", name_of(s)}}, static_cast<double>((pollers_.stats(s).*c.field).load()));
    }
    w.family("mdagg_source_polls_in_flight", "gauge", "Polls under way.");
    for (SourceId s = 0; s < sources; ++s)
        w.sample("mdagg_source_polls_in_flight", {{"source", name_of(s)}}, static_cast<double>(pollers_.stats(s).in_flight.load()));
    w.family("mdagg_source_last_success_age_seconds", "gauge",
             "Age of the source's newest good quote; +Inf before the first.");
    for (SourceId s = 0; s < sources; ++s) {
        const auto last = per[s].last_success_ns;
        w.sample("mdagg_source_last_success_age_seconds", {{"source", name_of(s)}},
                 last > 0 ? static_cast<double>(now_ns - last) / 1e9 : std::numeric_limits<double>::infinity());
    }
    w.family("mdagg_source_pollers", "gauge", "Pollers by the outcome of their latest poll.");
    for (SourceId s = 0; s < sources; ++s)
        for (std::size_t i = 0; i < per[s].by_state.size(); ++i)
            w.sample("mdagg_source_pollers", {{"source", name_of(s)}, {"state", to_string(static_cast<PollerState>(i))}},
                     static_cast<double>(per[s].by_state[i]));
    w.family("mdagg_source_pollers_control", "gauge", "Pollers by operator control: active, paused, cancelled.");
    for (SourceId s = 0; s < sources; ++s)
        for (std::size_t i = 0; i < per[s].by_control.size(); ++i)
            w.sample("mdagg_source_pollers_control", {{"source", name_of(s)}, {"control", to_string(static_cast<PollerControl>(i))}},
                     static_cast<double>(per[s].by_control[i]));
    w.family("mdagg_source_poll_duration_seconds", "histogram", "Poll latency, tick to quote delivered.");
    for (SourceId s = 0; s < sources; ++s)
        w.histogram("mdagg_source_poll_duration_seconds", {{"source", name_of(s)}}, pollers_.stats(s).latency.snapshot());
    w.family("mdagg_source_poll_interval_seconds", "histogram",
             "Achieved time between a poller's consecutive polls (compare with the configured interval).");
    for (SourceId s = 0; s < sources; ++s)
        w.histogram("mdagg_source_poll_interval_seconds", {{"source", name_of(s)}},
                    pollers_.stats(s).achieved_interval.snapshot());
    w.family("mdagg_source_tick_lateness_seconds", "histogram", "Scheduled tick to timer wake-up.");
    for (SourceId s = 0; s < sources; ++s)
        w.histogram("mdagg_source_tick_lateness_seconds", {{"source", name_of(s)}}, pollers_.stats(s).lateness.snapshot());

    // Per symbol, only for the symbols admin.symbol_metrics names.
    std::vector<std::string> globs;
    {
        std::lock_guard lock(symbol_metrics_mutex_);
        globs = symbol_metrics_;
    }
    if (!globs.empty()) {
        std::vector<const PollerSnapshot*> chosen;
        for (auto& p : snapshot)
            for (auto& g : globs)
                if (admin::glob_match(g, p.symbol)) {
                    chosen.push_back(&p);
                    break;
                }
        w.family("mdagg_symbol_polls_total", "counter", "Polls of one symbol, by outcome (admin.symbol_metrics).");
        for (auto* p : chosen) {
            const std::string_view src = name_of(p->source);
            w.sample("mdagg_symbol_polls_total", {{"source", src}, {"symbol", p->symbol}, {"outcome", "completed"}}, static_cast<double>(p->completed));
            w.sample("mdagg_symbol_polls_total", {{"source", src}, {"symbol", p->symbol}, {"outcome", "failed"}}, static_cast<double>(p->failed));
            w.sample("mdagg_symbol_polls_total", {{"source", src}, {"symbol", p->symbol}, {"outcome", "timed_out"}}, static_cast<double>(p->timed_out));
        }
        w.family("mdagg_symbol_last_success_age_seconds", "gauge", "Age of the symbol's last good quote (admin.symbol_metrics).");
        for (auto* p : chosen)
            if (p->last_success_ns > 0)
                w.sample("mdagg_symbol_last_success_age_seconds", {{"source", name_of(p->source)}, {"symbol", p->symbol}},
                         static_cast<double>(now_ns - p->last_success_ns) / 1e9);
        w.family("mdagg_symbol_poll_latency_seconds", "gauge", "Latency of the symbol's latest poll (admin.symbol_metrics).");
        for (auto* p : chosen)
            w.sample("mdagg_symbol_poll_latency_seconds", {{"source", name_of(p->source)}, {"symbol", p->symbol}},
                     static_cast<double>(p->last_latency_ns) / 1e9);
    }

    std::size_t stale = 0;
    for (auto& [symbol, f] : fresh) stale += f ? 0 : 1;
    w.family("mdagg_aggregator_symbols", "gauge", "Symbols in the running config.");
    w.sample("mdagg_aggregator_symbols", {}, static_cast<double>(fresh.size()));
    w.family("mdagg_aggregator_stale_symbols", "gauge",
             "Symbols with no good quote from any source within three of its source's intervals.");
    w.sample("mdagg_aggregator_stale_symbols", {}, static_cast<double>(stale));

    // Hosts: a handful, so one series each.
    const auto host_now = std::chrono::steady_clock::now();
    const std::vector<std::pair<std::string, HostGuard::Status>> hosts = pollers_.host_statuses();
    w.family("mdagg_host_breaker_state", "gauge", "1 for the circuit breaker's current state (closed, open, half_open).");
    for (auto& [name, st] : hosts)
        for (auto state : {BreakerState::closed, BreakerState::open, BreakerState::half_open})
            w.sample("mdagg_host_breaker_state", {{"host", name}, {"state", to_string(state)}}, st.breaker == state ? 1 : 0);
    w.family("mdagg_host_breaker_opens_total", "counter", "Times the circuit breaker opened.");
    for (auto& [name, st] : hosts) w.sample("mdagg_host_breaker_opens_total", {{"host", name}}, static_cast<double>(st.breaker_opens));
    w.family("mdagg_host_paused", "gauge", "1 while the host is paused by a rate limit or a ban.");
    for (auto& [name, st] : hosts) w.sample("mdagg_host_paused", {{"host", name}}, st.pause != PauseReason::none ? 1 : 0);
    w.family("mdagg_host_pause_remaining_seconds", "gauge", "Time left of the host's pause.");
    for (auto& [name, st] : hosts)
        w.sample("mdagg_host_pause_remaining_seconds", {{"host", name}},
                 st.pause != PauseReason::none ? seconds(st.paused_until - host_now) : 0.0);
    w.family("mdagg_host_pauses_total", "counter", "Pauses of the host, by reason.");
    for (auto& [name, st] : hosts) {
        w.sample("mdagg_host_pauses_total", {{"host", name}, {"reason", "rate_limited"}}, static_cast<double>(st.pauses_rate_limited));
        w.sample("mdagg_host_pauses_total", {{"host", name}, {"reason", "banned"}}, static_cast<double>(st.pauses_banned));
    }
    w.family("mdagg_host_rate_factor", "gauge", "Share of the host's rate in use: below 1 while a usage header slows it.");
    for (auto& [name, st] : hosts) w.sample("mdagg_host_rate_factor", {{"host", name}}, st.rate_factor);

    const SinkStats sink = sink_.stats();
    w.family("mdagg_sink_disk_fault", "gauge", "1 while writes to the output directory fail.");
    w.sample("mdagg_sink_disk_fault", {}, sink.disk_fault ? 1 : 0);
    w.family("mdagg_sink_queued_bytes", "gauge", "Output not yet written.");
    w.sample("mdagg_sink_queued_bytes", {}, static_cast<double>(sink.queued_bytes));
    const std::optional<KafkaStats> kafka = kafka_ ? std::optional(kafka_->stats()) : std::nullopt;  // issue 16
    if (kafka) w.sample("mdagg_sink_queued_bytes", {{"sink", "kafka"}}, static_cast<double>(kafka->queued_bytes));
    w.family("mdagg_sink_flush_latency_seconds", "gauge", "Write and fdatasync of one flush: the last and the largest.");
    w.sample("mdagg_sink_flush_latency_seconds", {{"which", "last"}}, static_cast<double>(sink.flush_latency_last_us) / 1e6);
    w.sample("mdagg_sink_flush_latency_seconds", {{"which", "max"}}, static_cast<double>(sink.flush_latency_max_us) / 1e6);
    w.family("mdagg_sink_segments_closed_total", "counter", "Output segments finished (renamed to their final name).");
    w.sample("mdagg_sink_segments_closed_total", {}, static_cast<double>(sink.segments_closed));
    w.family("mdagg_sink_files_repaired_total", "counter", "Segments of a crashed run repaired at start-up.");
    w.sample("mdagg_sink_files_repaired_total", {}, static_cast<double>(sink.files_repaired));
    w.family("mdagg_sink_segments_deleted_total", "counter", "Finished segments removed by retention.");
    w.sample("mdagg_sink_segments_deleted_total", {}, static_cast<double>(sink.segments_deleted));
    w.family("mdagg_sink_segments_compressed_total", "counter", "Finished segments compressed.");
    w.sample("mdagg_sink_segments_compressed_total", {}, static_cast<double>(sink.segments_compressed));
    w.family("mdagg_sink_compression_errors_total", "counter", "Compressions that failed; the segment stays uncompressed.");
    w.sample("mdagg_sink_compression_errors_total", {}, static_cast<double>(sink.compression_errors));
    w.family("mdagg_sink_repair_errors_total", "counter",
             "Files named like segments that start-up repair could not handle or refused (not regular files).");
    w.sample("mdagg_sink_repair_errors_total", {}, static_cast<double>(sink.repair_errors));
    w.family("mdagg_sink_segments_unsynced_total", "counter",
             "Segments kept as .part because their fdatasync or ftruncate failed; the next start repairs them.");
    w.sample("mdagg_sink_segments_unsynced_total", {}, static_cast<double>(sink.segments_unsynced));
    w.family("mdagg_sink_records_total", "counter", "Records handed to write(2).");
    w.sample("mdagg_sink_records_total", {}, static_cast<double>(sink.records_written));
    w.family("mdagg_sink_bytes_total", "counter", "Bytes handed to write(2).");
    w.sample("mdagg_sink_bytes_total", {}, static_cast<double>(sink.bytes_written));
    w.family("mdagg_sink_records_dropped_total", "counter", "Records dropped because the output buffer was full.");
    w.sample("mdagg_sink_records_dropped_total", {}, static_cast<double>(sink.records_dropped));
    if (kafka) {  // issue 16
        const std::pair<const char*, std::uint64_t> causes[] = {{"buffer_full", kafka->dropped_buffer_full},
                                                                {"queue_full", kafka->dropped_queue_full},
                                                                {"produce_error", kafka->dropped_produce_error},
                                                                {"closed", kafka->dropped_closed}};
        for (const auto& [cause, n] : causes)
            w.sample("mdagg_sink_records_dropped_total", {{"sink", "kafka"}, {"cause", cause}}, static_cast<double>(n));
    }
    w.family("mdagg_sink_write_errors_total", "counter", "Failed writes.");
    w.sample("mdagg_sink_write_errors_total", {}, static_cast<double>(sink.write_errors));
    if (kafka) write_kafka_metrics(w, *kafka);  // issue 16
    return out;
}

}  // namespace mdagg::lifecycle

#include "ops.hpp"
#include "reports.hpp"

#include <mdagg/common.hpp>
#include <mdagg/aggregator_metrics.hpp>
#include <mdagg/observe.hpp>
#include <mdagg/poll_metrics.hpp>
#include <mdagg/sink_metrics.hpp>

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


// RFC 3339 UTC with milliseconds, or null for "never".
nlohmann::json wall_time_json(std::int64_t ns) {
    if (ns <= 0) return nullptr;
    char buf[rfc3339_max_chars];
    return std::string(buf, put_rfc3339(buf, ns, FractionDigits::ms));
}

bool state_matches(std::string_view wanted, const PollerSnapshot& p) {
    return wanted.empty() || wanted == to_string(p.state) || wanted == to_string(p.control) ||
           (wanted == "polling" && p.polling);
}

bool known_state(std::string_view s) {
    for (std::size_t i = 0; i < poller_state_count; ++i)
        if (s == to_string(static_cast<PollerState>(i))) return true;
    return s == "active" || s == "paused" || s == "cancelled" || s == "polling";
}

}  // namespace

Operations::Operations(const Config& config, PollerGroup& pollers, const FileSink& sink)
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
    return PollStats::read(pollers_, PollDetail::counters).total.completed;
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
        log::error("stalled: no poll completed within stall_after",
                   {{"stall_after_ms", seconds(stall_after) * 1e3},
                    {"since_last_completed_ms", seconds(since) * 1e3},
                    {"active_pollers", active},
                    {"active_pollers_on_paused_hosts", control.active_on_paused_host},
                    {"pollers", pollers_by_state(pollers_)}});
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

void Operations::start_loop_watchdog(std::vector<const LoopWatch::Heartbeat*> shard_beats) {
    loop_count_ = 1 + shard_beats.size();
    loops_ = std::make_unique<ThreadLoop[]>(loop_count_);
    loops_[0].beat = &last_beat_;
    for (std::size_t i = 1; i < loop_count_; ++i) loops_[i].beat = shard_beats[i - 1];
    watchdog_ = std::thread([this] {
        LoopWatch watch(loop_count_, loop_stall_after);
        std::vector<Clock::time_point> beats(loop_count_);
        std::unique_lock lock(watchdog_mutex_);
        while (!watchdog_cv_.wait_for(lock, std::chrono::milliseconds(500), [this] { return watchdog_stop_; }))
            check_loops(watch, beats);
    });
}

// Watchdog thread. The flags and counts first, then the lines: whoever read a line sees them.
void Operations::check_loops(LoopWatch& watch, std::vector<Clock::time_point>& beats) {
    for (std::size_t i = 0; i < loop_count_; ++i) beats[i] = LoopWatch::read(*loops_[i].beat);
    const auto changes = watch.update(beats, Clock::now());
    for (std::size_t i = 0; i < loop_count_; ++i) loops_[i].stalled.store(watch.stalled(i));
    for (const auto& c : changes)
        if (c.stalled) loops_[c.thread].stalls.fetch_add(1);
    for (const auto& c : changes) {
        if (!c.stalled) {
            log::info("event loop turning again", {{"thread", c.thread}, {"stalled_ms", seconds(c.duration) * 1e3}});
        } else if (c.thread == 0) {
            log::error("event loop stalled: the control strand has not run",
                       {{"thread", 0}, {"since_ms", seconds(c.duration) * 1e3}});
        } else {  // a shard: its pollers are late, the rest of the daemon is not
            log::error("event loop stalled: an io thread has not run",
                       {{"thread", c.thread}, {"since_ms", seconds(c.duration) * 1e3}});
        }
    }
}

bool Operations::any_loop_stalled() const {
    for (std::size_t i = 0; i < loop_count_; ++i)
        if (loops_[i].stalled.load()) return true;
    return false;
}

std::uint64_t Operations::loop_stalls() const {
    std::uint64_t n = 0;
    for (std::size_t i = 0; i < loop_count_; ++i) n += loops_[i].stalls.load();
    return n;
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

admin::Response Operations::healthz() {
    nlohmann::json body;
    std::vector<std::string> problems;
    nlohmann::json stalled_threads = nlohmann::json::array();
    for (std::size_t i = 0; i < loop_count_; ++i) {
        if (!loops_[i].stalled.load()) continue;
        stalled_threads.push_back(i);
        if (i == 0) {
            problems.emplace_back("event loop stalled");
        } else {
            std::string problem = "event loop stalled: io thread ";
            problem.append(std::to_string(i));
            problems.push_back(std::move(problem));
        }
    }
    if (polls_stalled_.load()) problems.emplace_back("no poll completed within stall_after");
    const auto since = Clock::now() - Clock::time_point(Clock::duration(last_progress_.load()));
    body["status"] = problems.empty() ? "ok" : "unhealthy";
    if (!problems.empty()) body["problems"] = problems;
    if (!stalled_threads.empty()) body["event_loop_stalled_threads"] = std::move(stalled_threads);
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
        if (!p.venue_symbol.empty()) row["venue_symbol"] = p.venue_symbol;
        if (!p.via.empty()) {  // a source with mirrors: where its polls go now
            row["via"] = p.via;
            row["mirror"] = p.route;  // 0: the url's host; k: mirrors[k-1]
        }
        row["priority"] = p.priority;
        row["effective_priority"] = p.effective_priority;
        if (!p.hedge.empty()) row["hedge"] = p.hedge;  // hedge: this poll's race (docs/polling.md)
        row["tags"] = p.tags;
        if (p.batch_symbols > 0) {
            row["batch"] = p.batch;
            row["batch_symbols"] = p.batch_symbols;
        }
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

// The daemon's own families; each module writes its own after them.
void Operations::write_process_metrics(PrometheusWriter& w, Clock::time_point now) const {
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
    w.family("mdagg_event_loop_stalled", "gauge", "1 while the event loop of an io thread has not turned for 5 s.");
    w.sample("mdagg_event_loop_stalled", {}, any_loop_stalled() ? 1 : 0);
    w.family("mdagg_event_loop_stalls_total", "counter", "Times the event loop of an io thread was found stalled.");
    w.sample("mdagg_event_loop_stalls_total", {}, static_cast<double>(loop_stalls()));
    write_loop_metrics(w, now);
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
}

// Per io thread (label thread: 0 the main thread, 1.. the other shards).
void Operations::write_loop_metrics(PrometheusWriter& w, Clock::time_point now) const {
    if (loop_count_ == 0) return;
    w.family("mdagg_event_loop_heartbeat_age_seconds", "gauge",
             "Seconds since the io thread's event loop last stamped its heartbeat (every 0.25 s).");
    for (std::size_t i = 0; i < loop_count_; ++i) {
        const auto beat = LoopWatch::read(*loops_[i].beat);
        if (beat == LoopWatch::unwatched) continue;
        const std::string thread = std::to_string(i);
        w.sample("mdagg_event_loop_heartbeat_age_seconds", {{"thread", thread}}, seconds(now - beat));
    }
    w.family("mdagg_event_loop_thread_stalls_total", "counter",
             "Times the io thread's event loop was found stalled (not turned for 5 s).");
    for (std::size_t i = 0; i < loop_count_; ++i) {
        const std::string thread = std::to_string(i);
        w.sample("mdagg_event_loop_thread_stalls_total", {{"thread", thread}},
                 static_cast<double>(loops_[i].stalls.load()));
    }
}

// The pollers of the symbols admin.symbol_metrics names; none without it (no such families).
std::optional<std::vector<const PollerSnapshot*>> Operations::symbol_metrics_pollers(
    const std::vector<PollerSnapshot>& table) const {
    std::vector<std::string> globs;
    {
        std::lock_guard lock(symbol_metrics_mutex_);
        globs = symbol_metrics_;
    }
    if (globs.empty()) return std::nullopt;
    std::vector<const PollerSnapshot*> chosen;
    for (const auto& p : table)
        for (const auto& g : globs)
            if (admin::glob_match(g, p.symbol)) {
                chosen.push_back(&p);
                break;
            }
    return chosen;
}

std::string Operations::metrics() {
    std::string out;
    out.reserve(32 * 1024);
    PrometheusWriter w(out);
    const auto now = Clock::now();
    const auto now_ns = wall_clock_ns();
    // The table before the stats: a source has its stats before its first poller. And before
    // the process families, which count the copies of it.
    const auto table_ptr = poller_snapshot();
    const auto& table = *table_ptr;
    write_process_metrics(w, now);
    const auto poll = PollStats::read(pollers_, PollDetail::with_histograms);
    write_source_metrics(w, poll, table, now_ns);
    if (const auto chosen = symbol_metrics_pollers(table))
        write_symbol_metrics(w, *chosen, poll.source_names, now_ns);
    const auto fresh = symbol_freshness(table, now_ns);
    write_aggregator_metrics(w, {fresh.symbols, fresh.stale});
    write_host_metrics(w, pollers_.host_statuses(), std::chrono::steady_clock::now());
    const std::optional<KafkaStats> kafka = kafka_ ? std::optional(kafka_->stats()) : std::nullopt;  // issue 16
    write_sink_metrics(w, sink_.stats(), kafka ? &*kafka : nullptr);
    return out;
}

}  // namespace mdagg::lifecycle

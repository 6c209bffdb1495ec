#include "ops.hpp"
#include "token_watch.hpp"

#include <mdagg/admin.hpp>
#include <mdagg/aggregator.hpp>
#include <mdagg/daemon.hpp>
#include <mdagg/log.hpp>
#include <mdagg/poll.hpp>
#include <mdagg/sink.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <unistd.h>
#include <unordered_map>
#include <unordered_set>

namespace mdagg {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

double to_ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// {"pending": n, "running": n, ...}: pollers by the state of their latest poll.
nlohmann::json pollers_by_state(const PollerGroup& pollers) {
    nlohmann::json out = nlohmann::json::object();
    auto counts = pollers.state_counts();
    for (std::size_t i = 0; i < counts.size(); ++i)
        out[std::string(to_string(static_cast<PollerState>(i)))] = counts[i];
    return out;
}

std::int64_t wall_clock_ns() {
    return duration_cast<nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

SinkOptions sink_options(const Config& config) {
    const auto& o = config.output;
    SinkOptions s;
    s.dir = o.dir;
    s.max_buffer_bytes = o.max_buffer_bytes;
    s.overflow = o.overflow == OutputOverflow::block         ? OverflowPolicy::block
                 : o.overflow == OutputOverflow::drop_newest ? OverflowPolicy::drop_newest
                                                             : OverflowPolicy::drop_oldest;
    s.overflow_wait = o.overflow_wait;
    s.quotes_format = o.quotes_format == OutputFormat::csv ? RecordFormat::csv : RecordFormat::jsonl;
    s.bars_format = o.bars_format == OutputFormat::csv ? RecordFormat::csv : RecordFormat::jsonl;
    s.rotate_bytes = o.rotate_max_bytes;
    s.rotate_age = o.rotate_max_age;
    s.retain_files = o.retention_max_files;
    s.retain_bytes = o.retention_max_bytes;
    s.compression = o.compression == OutputCompression::gzip   ? Compression::gzip
                    : o.compression == OutputCompression::zstd ? Compression::zstd
                                                               : Compression::none;
    // A failing disk is retried on every flush and in between at this pace.
    s.retry_every = std::min<Duration>(o.flush_every, std::chrono::seconds(1));
    return s;
}

// A source whose pollers must restart: anything but its symbols, tags and max_in_flight
// changed, or its host entry is another one (another guard), wherever it sits in the list.
bool source_changed(const SourceConfig& a, const HostConfig& a_host, const SourceConfig& b,
                    const HostConfig& b_host) {
    if (a_host.host != b_host.host || a_host.port != b_host.port) return true;
    SourceConfig x = a, y = b;
    for (SourceConfig* c : {&x, &y}) {
        c->symbols.clear();
        c->tags.clear();
        c->symbol_tags.clear();
        c->max_in_flight = 0;  // applied in place (it defaults to the symbol count)
        c->host = 0;           // an index into its own config's hosts: compared above
    }
    return !(x == y);
}

// Last resort if the drain or the teardown after it hangs (a disk that never returns from
// fsync, a bug): exit with the forced-stop code before the orchestrator's SIGKILL, so the stop
// is visible. It writes with write(2) and takes no lock: the logger's mutex may be held by
// the very thread that hangs.
class DrainWatchdog {
public:
    void arm(Clock::time_point fire_at) {
        if (thread_.joinable()) return;
        thread_ = std::thread([this, fire_at] {
            std::unique_lock lock(mutex_);
            if (cv_.wait_until(lock, fire_at, [this] { return disarmed_; })) return;
            static constexpr char line[] =
                "{\"level\":\"error\",\"msg\":\"drain watchdog fired: the drain did not finish within "
                "its budget; forcing exit\",\"exit_code\":3}\n";
            (void)!::write(STDOUT_FILENO, line, sizeof line - 1);
            ::_exit(exit_drain_timeout);
        });
    }
    ~DrainWatchdog() {
        {
            std::lock_guard lock(mutex_);
            disarmed_ = true;
        }
        cv_.notify_all();
        if (thread_.joinable()) thread_.join();
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool disarmed_ = false;
    std::thread thread_;
};

class Daemon {
public:
    explicit Daemon(const Config& config)
        : watchdog_(),
          config_(config),
          universe_(make_universe(config)),
          io_(static_cast<int>(config.runtime.threads)),
          control_(asio::make_strand(io_)),
          aggregate_strand_(asio::make_strand(io_)),
          signals_(io_, SIGTERM, SIGINT),
          reload_signals_(io_, SIGHUP),
          wake_(control_),
          summary_timer_(control_),
          heartbeat_timer_(control_),
          flush_timer_(aggregate_strand_),
          bar_timer_(aggregate_strand_),
          stale_timer_(aggregate_strand_),
          sink_(universe_, sink_options(config)),
          aggregator_(universe_, config.output.bar_interval.count(), sink_, config.output.quotes),
          pollers_(io_, config_, universe_, [this](const Quote& q) {
              // The aggregator's strand is the only owner of its state; this post is the whole
              // hand-off, so a poller never waits for aggregation or the disk. With one io
              // thread every handler, the strand's included, runs on it one at a time, so the
              // poller's own handler may as well aggregate: no copy, no queue, no strand lock.
              if (config_.runtime.threads == 1) {
                  aggregator_.on_quote(q);
                  return;
              }
              asio::post(aggregate_strand_, [this, q] { aggregator_.on_quote(q); });
          }),
          ops_(config_, pollers_, sink_),
          running_sources_(config.sources),
          running_hosts_(config.hosts),
          effective_(config),
          summary_every_ns_(config.log.summary_every.count()) {
        for (SourceId s = 0; s < config.sources.size(); ++s)
            aggregator_.set_stale_after(s, config.sources[s].stale_after.count());
    }

    int run() {
        // The port first: a port in use must not leave half-created output files behind.
        if (config_.admin.enabled) start_admin();
        try {
            sink_.open();
        } catch (const std::system_error& e) {
            throw StartupError(e.what());
        }
        std::size_t symbols = 0;
        for (auto& s : config_.sources) symbols += s.symbols.size();
        log::info("mdagg started", {{"config", config_.file},
                                    {"sources", config_.sources.size()},
                                    {"pollers", symbols},
                                    {"threads", config_.runtime.threads},
                                    {"output_dir", config_.output.dir},
                                    {"grace_ms", to_ms(config_.shutdown.grace)}});
        pollers_.start([this] { asio::post(control_, [this] { wake_.cancel(); }); });
        start_flush_timer();
        start_bar_timer();
        start_stale_timer();
        asio::co_spawn(control_, supervise(), [this](std::exception_ptr e) { on_supervisor_exit(e); });
        asio::co_spawn(control_, summaries(), [](std::exception_ptr) {});
        asio::co_spawn(control_, heartbeats(), [](std::exception_ptr) {});
        asio::co_spawn(control_, reloads(), [](std::exception_ptr e) {
            if (!e) return;
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                log::error("reload handler failed; SIGHUP is ignored from now on", {{"error", ex.what()}});
            }
        });
        ops_.start_loop_watchdog();

        std::vector<std::thread> extra;
        try {
            for (unsigned i = 1; i < config_.runtime.threads; ++i) extra.emplace_back([this] { run_io(); });
        } catch (const std::system_error& e) {
            log::warn("cannot start every io thread; running with fewer",
                      {{"wanted", config_.runtime.threads}, {"started", extra.size() + 1}, {"error", e.what()}});
        }
        run_io();
        for (auto& t : extra) t.join();
        if (pollers_.running() > 0) {
            // Pollers stuck past the budget are still suspended mid-poll; their frames would
            // be destroyed with the io_context, after the pollers they point into. The output
            // is closed (or abandoned) and logged: leave without destructors.
            std::fflush(stdout);
            std::_Exit(exit_code_);
        }
        return exit_code_;
    }

private:
    void start_admin() {
        std::string token;
        const auto stamp = file_stamp(config_.admin.token_file);
        try {
            token = admin_token(config_);
        } catch (const ConfigError& e) {
            throw StartupError(e.what());
        }
        admin_ = std::make_unique<admin::Server>(
            io_, admin::ServerOptions{config_.admin.host, config_.admin.port, token}, ops_);
        std::uint16_t port = 0;
        try {
            port = admin_->start();
        } catch (const std::system_error& e) {
            throw StartupError(e.what());
        }
        log::info("admin listening", {{"host", config_.admin.host},
                                      {"port", port},
                                      {"auth", token.empty() ? "none" : "bearer"},
                                      {"stall_after_ms", to_ms(config_.admin.stall_after)}});
        if (!config_.admin.token_env.empty() && token.empty())
            log::warn("admin token variable is unset or empty: POST /admin/* need no token",
                      {{"token_env", config_.admin.token_env}});
        if (!config_.admin.token_file.empty() && token.empty())
            log::warn("admin.token_file is empty: POST /admin/* need no token until it holds one",
                      {{"token_file", config_.admin.token_file}});
        token_watch_.watch(config_.admin.token_file, stamp);  // admin_ is set: the watcher may use it
    }

    // Stamps the loop watchdog's heartbeat and runs the readiness and stall checks.
    asio::awaitable<void> heartbeats() {
        for (;;) {
            ops_.on_heartbeat(Clock::now());
            heartbeat_timer_.expires_after(lifecycle::Operations::heartbeat_every);
            auto [ec] = co_await heartbeat_timer_.async_wait(use_tuple);
            if (ec) co_return;
        }
    }

    // The token on SIGHUP; between reloads token_watch_ follows the file. An unreadable file
    // keeps the token in effect: a reload must never switch authentication off by accident.
    void reload_admin_token(const Config& loaded) {
        if (!admin_) return;
        try {
            const auto stamp = file_stamp(loaded.admin.token_file);
            admin_->set_token(admin_token(loaded));
            token_watch_.watch(loaded.admin.token_file, stamp);
        } catch (const ConfigError& e) {
            log::error("cannot read admin.token_file: keeping the current token", {{"error", e.what()}});
            token_watch_.watch(loaded.admin.token_file, std::nullopt);  // picked up once readable
        }
    }

    // SIGHUP: re-read and validate the file and shard it as at start-up; on error keep running
    // as before. Each key is applied or reported by its policy in reload_rules(): the sources
    // as a difference of pollers (see apply_sources), the live output keys in the sink, the
    // admin token, log and stall settings at once; keys that need a restart are listed in
    // not_applied until then.
    asio::awaitable<void> reloads() {
        for (;;) {
            auto [ec, signo] = co_await reload_signals_.async_wait(use_tuple);
            if (ec) co_return;
            (void)signo;
            if (draining_) continue;
            Config loaded;
            ShardingResult shard;
            try {
                loaded = load_config(config_.file);
                // The same rules as at start-up: the file, SHARD_INDEX / SHARD_COUNT, "auto".
                shard = apply_sharding(loaded, ShardingEnv::from_process());
            } catch (const ConfigError& e) {
                log::error("reload failed: keeping the running config", {{"config", config_.file}, {"error", e.what()}});
                continue;
            }
            const ReloadDiff diff = reload_diff(effective_, loaded);
            summary_every_ns_ = loaded.log.summary_every.count();
            summary_timer_.cancel();  // the summary loop re-arms with the new interval
            ops_.set_stall_after(loaded.admin.stall_after);
            ops_.set_symbol_metrics(loaded.admin.symbol_metrics);
            sink_.reconfigure(sink_options(loaded));
            reload_admin_token(loaded);
            nlohmann::json fields{{"config", config_.file},
                                  {"log_level", loaded.log.level},
                                  {"summary_every_ms", to_ms(loaded.log.summary_every)},
                                  {"stall_after_ms", to_ms(loaded.admin.stall_after)}};
            if (loaded.sharding.count > 1 || effective_.sharding.count > 1)
                fields["sharding"] = {{"index", loaded.sharding.index},
                                      {"count", loaded.sharding.count},
                                      {"symbols", shard.symbols_kept},
                                      {"symbols_total", shard.symbols_total}};
            const PollerChanges changes = co_await apply_sources(loaded.sources, loaded.hosts);
            if (changes.abandoned) {
                log::warn("reload abandoned: a drain started", fields);
                continue;
            }
            adopt_live_keys(effective_, loaded);
            fields["pollers_added"] = changes.added;
            fields["pollers_removed"] = changes.removed;
            fields["pollers_restarted"] = changes.restarted;
            fields["pollers"] = pollers_.size();
            if (!diff.applied.empty()) fields["applied"] = diff.applied;
            if (!diff.not_applied.empty()) {
                fields["not_applied"] = diff.not_applied;
                log::warn("config reloaded; some changes need a restart and were not applied", fields);
            } else {
                log::info("config reloaded", fields);
            }
            // Last, so the line above is written even when the new level hides info.
            if (auto level = log::parse_level(loaded.log.level)) log::set_level(*level);
        }
    }

    struct PollerChanges {
        std::size_t added = 0, removed = 0, restarted = 0;
        bool abandoned = false;
    };

    // Applies a reloaded source list as a difference: new pollers start, removed ones drain
    // (a poll in flight finishes and is delivered), a source whose settings changed restarts
    // its pollers, untouched pollers keep their connection and schedule. Control strand.
    asio::awaitable<PollerChanges> apply_sources(const std::vector<SourceConfig>& sources,
                                                 const std::vector<HostConfig>& hosts) {
        PollerChanges changes;
        // Ids are only ever appended, so ids in flight stay valid; the universe belongs to the
        // aggregator's strand (the aggregator and the sink read it there).
        std::unordered_map<std::string_view, SourceId> source_ids;
        std::unordered_map<std::string_view, SymbolId> symbol_ids;
        for (SourceId i = 0; i < universe_.sources.size(); ++i) source_ids.emplace(universe_.sources[i], i);
        for (SymbolId i = 0; i < universe_.symbols.size(); ++i) symbol_ids.emplace(universe_.symbols[i], i);
        std::vector<std::string> new_sources, new_symbols;
        for (auto& src : sources) {
            if (!source_ids.contains(src.name)) {
                source_ids.emplace(src.name, static_cast<SourceId>(universe_.sources.size() + new_sources.size()));
                new_sources.push_back(src.name);
            }
            for (auto& sym : src.symbols)
                if (!symbol_ids.contains(sym)) {
                    symbol_ids.emplace(sym, static_cast<SymbolId>(universe_.symbols.size() + new_symbols.size()));
                    new_symbols.push_back(sym);
                }
        }
        if (!new_sources.empty() || !new_symbols.empty()) {
            // The maps' keys point into the strings being appended: rebuild after.
            source_ids.clear();
            symbol_ids.clear();
            co_await asio::post(asio::bind_executor(aggregate_strand_, asio::use_awaitable));
            for (auto& s : new_sources) universe_.sources.push_back(std::move(s));
            for (auto& s : new_symbols) universe_.symbols.push_back(std::move(s));
            aggregator_.grow();
            co_await asio::post(asio::bind_executor(control_, asio::use_awaitable));
            for (SourceId i = 0; i < universe_.sources.size(); ++i) source_ids.emplace(universe_.sources[i], i);
            for (SymbolId i = 0; i < universe_.symbols.size(); ++i) symbol_ids.emplace(universe_.symbols[i], i);
        }
        // Staleness limits of new and changed sources, on the aggregator's strand.
        co_await asio::post(asio::bind_executor(aggregate_strand_, asio::use_awaitable));
        for (SourceId id = 0; id < universe_.sources.size(); ++id) {
            const auto it = std::find_if(sources.begin(), sources.end(),
                                         [&](const SourceConfig& c) { return c.name == universe_.sources[id]; });
            // A source the reload removed goes stale at the next sweep (its retired pollers may
            // still deliver a last quote), so it leaves the best bid/offer.
            aggregator_.set_stale_after(id, it != sources.end() ? it->stale_after.count() : 1);
        }
        stale_sweep_period_ = sweep_period(sources);
        co_await asio::post(asio::bind_executor(control_, asio::use_awaitable));
        if (draining_) {
            changes.abandoned = true;
            co_return changes;
        }
        auto with_ids = [&](const SourceConfig& src, auto&& keep) {
            std::vector<std::pair<std::string, SymbolId>> out;
            for (auto& sym : src.symbols)
                if (keep(sym)) out.emplace_back(sym, symbol_ids.at(sym));
            return out;
        };
        auto all = [](const std::string&) { return true; };
        auto of_source = [](const std::string& name) {
            return [name](std::string_view source, std::string_view, const std::vector<std::string>&) { return source == name; };
        };
        std::unordered_map<std::string_view, const SourceConfig*> old_by_name;
        for (auto& src : running_sources_) old_by_name.emplace(src.name, &src);
        std::unordered_map<std::string_view, const SourceConfig*> new_by_name;
        for (auto& src : sources) new_by_name.emplace(src.name, &src);

        for (auto& old : running_sources_)
            if (!new_by_name.contains(old.name)) changes.removed += pollers_.retire(of_source(old.name));
        for (auto& src : sources) {
            const SourceId id = source_ids.at(src.name);
            auto it = old_by_name.find(src.name);
            if (it == old_by_name.end()) {
                auto symbols = with_ids(src, all);
                if (pollers_.add(id, src, hosts.at(src.host), symbols)) changes.added += symbols.size();
                continue;
            }
            const SourceConfig& old = *it->second;
            if (source_changed(old, running_hosts_.at(old.host), src, hosts.at(src.host))) {
                changes.restarted += pollers_.retire(of_source(src.name));
                pollers_.add(id, src, hosts.at(src.host), with_ids(src, all));
                continue;
            }
            std::unordered_set<std::string_view> kept(src.symbols.begin(), src.symbols.end());
            std::unordered_set<std::string_view> had(old.symbols.begin(), old.symbols.end());
            changes.removed += pollers_.retire([&](std::string_view source, std::string_view symbol, const std::vector<std::string>&) {
                return source == src.name && !kept.contains(symbol);
            });
            auto added = with_ids(src, [&](const std::string& sym) { return !had.contains(sym); });
            if (!added.empty() && pollers_.add(id, src, hosts.at(src.host), added)) changes.added += added.size();
            pollers_.set_tags(src);
        }
        running_sources_ = sources;
        running_hosts_ = hosts;
        co_return changes;
    }

    void run_io() {
        try {
            io_.run();
        } catch (const std::exception& e) {
            log::error("event loop failed", {{"error", e.what()}});
            exit_code_ = exit_fatal;
            io_.stop();
        }
    }

    void on_supervisor_exit(std::exception_ptr e) {
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                log::error("supervisor failed", {{"error", ex.what()}});
            }
            exit_code_ = exit_fatal;
        }
        io_.stop();
    }

    void start_flush_timer() {
        flush_timer_.expires_after(config_.output.flush_every);
        flush_timer_.async_wait([this](boost::system::error_code ec) {
            if (ec || aggregate_stopped_) return;
            sink_.flush();
            start_flush_timer();
        });
    }

    // Bars close on wall-clock boundaries; a little slack lets quotes received just before a
    // boundary reach the strand first.
    void start_bar_timer() {
        const auto interval = config_.output.bar_interval.count();
        const auto now = wall_clock_ns();
        const auto boundary = (now / interval + 1) * interval;
        bar_timer_.expires_after(nanoseconds(boundary - now) + milliseconds(5));
        bar_timer_.async_wait([this](boost::system::error_code ec) {
            if (ec || aggregate_stopped_) return;
            aggregator_.close_bars(wall_clock_ns() - milliseconds(5).count());
            start_bar_timer();
        });
    }

    static Duration sweep_period(const std::vector<SourceConfig>& sources) {
        Duration shortest = Duration::max();
        for (auto& s : sources) shortest = std::min(shortest, s.stale_after);
        return std::clamp<Duration>(shortest / 10, milliseconds(10), std::chrono::seconds(1));
    }

    // Sweeps for stale quotes often enough that one is marked within a tenth of its limit.
    void start_stale_timer() {
        if (stale_sweep_period_ == Duration{}) stale_sweep_period_ = sweep_period(config_.sources);
        stale_timer_.expires_after(stale_sweep_period_);
        stale_timer_.async_wait([this](boost::system::error_code ec) {
            if (ec || aggregate_stopped_) return;
            aggregator_.expire_stale(wall_clock_ns());
            start_stale_timer();
        });
    }

    struct Totals {
        std::uint64_t started = 0, completed = 0, failed = 0, timed_out = 0, cancelled = 0,
                      skipped = 0, throttled = 0, rate_limited = 0, paused = 0, breaker = 0;
        std::int64_t in_flight = 0;
        std::array<std::uint64_t, static_cast<std::size_t>(PollError::count_)> errors{};
        LatencyHistogram::Snapshot latency, lateness;
    };
    Totals totals() const {
        Totals t;
        for (SourceId s = 0; s < pollers_.source_count(); ++s) {
            auto& st = pollers_.stats(s);
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

    // Counts by error class since `since`, only the classes that occurred.
    static nlohmann::json errors_by_class(const Totals& now) { return errors_by_class(now, Totals()); }
    static nlohmann::json errors_by_class(const Totals& now, const Totals& since) {
        nlohmann::json errors = nlohmann::json::object();
        for (std::size_t e = 0; e < now.errors.size(); ++e)
            if (auto n = now.errors[e] - since.errors[e]) errors[std::string(to_string(static_cast<PollError>(e)))] = n;
        return errors;
    }

    // Hosts that are paused or whose breaker is not closed; an empty object when all are well.
    nlohmann::json hosts_not_healthy() const {
        nlohmann::json out = nlohmann::json::object();
        for (std::size_t h = 0; h < pollers_.host_count(); ++h) {
            const auto st = pollers_.host_status(h);
            if (st.breaker == BreakerState::closed && st.pause == PauseReason::none) continue;
            nlohmann::json entry{{"breaker", to_string(st.breaker)}, {"pause", to_string(st.pause)}};
            if (st.pause != PauseReason::none)
                entry["paused_for_ms"] = to_ms(st.paused_until - Clock::now());
            out[pollers_.host_name(h)] = std::move(entry);
        }
        return out;
    }

    asio::awaitable<void> summaries() {
        auto& timer = summary_timer_;
        Totals prev = totals();
        auto prev_at = Clock::now();
        for (;;) {
            timer.expires_after(nanoseconds(summary_every_ns_));
            auto [ec] = co_await timer.async_wait(use_tuple);
            if (draining_) co_return;
            if (ec) continue;  // a reload changed the interval
            Totals now = totals();
            auto at = Clock::now();
            double secs = std::chrono::duration<double>(at - prev_at).count();
            auto done = (now.completed - prev.completed) + (now.failed - prev.failed) +
                        (now.timed_out - prev.timed_out);
            auto bad = (now.failed - prev.failed) + (now.timed_out - prev.timed_out);
            auto latency = now.latency.since(prev.latency);
            auto lateness = now.lateness.since(prev.lateness);
            auto sink = sink_.stats();
            const nlohmann::json errors = errors_by_class(now, prev);
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
                                  {"errors", errors},
                                  {"pollers", pollers_by_state(pollers_)},
                                  {"hosts", hosts_not_healthy()}});
            prev = now;
            prev_at = at;
        }
    }

    // Waits on the control strand until every poller coroutine returned, `limit` passed, or
    // (when `until_emergency`) a second signal arrived. Returns true when the pollers are all
    // gone.
    asio::awaitable<bool> wait_for_pollers(Clock::time_point limit, bool until_emergency) {
        while (pollers_.running() > 0 && !(until_emergency && emergency_) && Clock::now() < limit) {
            wake_.expires_at(limit);
            co_await wake_.async_wait(use_tuple);
        }
        co_return pollers_.running() == 0;
    }

    asio::awaitable<void> watch_second_signal() {
        auto [ec, signo] = co_await signals_.async_wait(use_tuple);
        if (ec) co_return;
        emergency_ = true;
        log::warn("second signal during drain: skipping to the emergency flush", {{"signal", signo}});
        pollers_.cancel_in_flight();
        wake_.cancel();
    }

    asio::awaitable<void> supervise() {
        auto [ec, signo] = co_await signals_.async_wait(use_tuple);
        if (ec) co_return;
        draining_ = true;
        ops_.set_draining();  // /readyz answers 503 from here on
        const auto budget = signo == SIGINT ? config_.shutdown.interrupt_grace : config_.shutdown.grace;
        const auto t0 = Clock::now();
        const auto deadline = t0 + budget;
        // In-flight polls get until cancel_at; the rest of the budget is kept for the flush.
        const auto reserve = std::min<Clock::duration>(budget / 4, std::chrono::seconds(1));
        const auto cancel_at = deadline - reserve;
        watchdog_.arm(deadline + std::min<Clock::duration>(budget / 10, milliseconds(250)));
        log::info("drain started", {{"signal", signo == SIGINT ? "SIGINT" : "SIGTERM"},
                                    {"budget_ms", to_ms(budget)},
                                    {"polls_in_flight", pollers_.polls_in_flight()}});
        asio::co_spawn(control_, watch_second_signal(), [](std::exception_ptr) {});

        nlohmann::json stages = nlohmann::json::object();
        auto stage_start = Clock::now();
        auto end_stage = [&](const char* name) {
            auto now = Clock::now();
            stages[name] = to_ms(now - stage_start);
            stage_start = now;
        };

        // 1. No poller starts a new poll.
        const auto in_flight_at_signal = pollers_.polls_in_flight();
        pollers_.stop_scheduling();
        end_stage("stop_scheduling_ms");

        // 2. In-flight polls may complete; then the rest are cancelled.
        bool pollers_done = co_await wait_for_pollers(cancel_at, true);
        std::uint64_t cancelled_before = totals().cancelled;
        if (!pollers_done) {
            // Cancelled pollers return within a few turns of the loop; wait for them even in an
            // emergency, or a quote read just before the cancel would miss the final flush.
            pollers_.cancel_in_flight();
            pollers_done = co_await wait_for_pollers(deadline - reserve / 2, false);
        }
        end_stage("in_flight_ms");

        // 3. Final (partial) bars; everything goes to the sink. The strand runs this after
        //    every quote the pollers posted before they returned.
        co_await asio::post(asio::bind_executor(aggregate_strand_, asio::use_awaitable));
        // A timer that already expired is not stopped by cancel(): its handler, queued behind
        // this one, checks the flag.
        aggregate_stopped_ = true;
        flush_timer_.cancel();
        bar_timer_.cancel();
        stale_timer_.cancel();
        aggregator_.close_all_bars();
        const auto quotes_accepted = aggregator_.quotes_accepted();
        const auto bars_emitted = aggregator_.bars_emitted();
        sink_.flush();
        co_await asio::post(asio::bind_executor(control_, asio::use_awaitable));
        end_stage("final_bars_ms");

        // 4. Write, flush, fsync and close every file.
        const bool sink_closed =
            sink_.close(emergency_ ? std::min(deadline, Clock::now() + std::chrono::seconds(1)) : deadline);
        end_stage("sink_close_ms");

        // 5. Close the sockets. Pollers still stuck past the budget keep theirs until teardown.
        if (pollers_done) {
            pollers_.close_connections([this] {
                asio::post(control_, [this] {
                    sockets_closed_ = true;
                    wake_.cancel();
                });
            });
            while (!sockets_closed_ && Clock::now() < deadline) {
                wake_.expires_at(deadline);
                co_await wake_.async_wait(use_tuple);
            }
        }
        pollers_.flush_logs();
        end_stage("close_sockets_ms");

        const auto t = totals();
        const auto sink = sink_.stats();
        const auto elapsed = Clock::now() - t0;
        const bool in_budget = Clock::now() <= deadline;
        if (!(sink_closed && pollers_done && in_budget && !emergency_)) {
            exit_code_ = exit_drain_timeout;
        } else if (sink.records_dropped > 0 || sink.disk_fault) {
            // Drained in time, but not every record reached the disk (dropped while the disk
            // failed or the queue was full, or refused at close). Recovered write errors that
            // lost nothing do not count.
            exit_code_ = exit_fatal;
        } else {
            exit_code_ = exit_ok;
        }
        nlohmann::json fields{{"exit_code", exit_code_.load()},
                              {"drain_ms", to_ms(elapsed)},
                              {"budget_ms", to_ms(budget)},
                              {"stages", stages},
                              {"polls_in_flight_at_signal", in_flight_at_signal},
                              {"polls_completed", t.completed},
                              {"polls_failed", t.failed},
                              {"polls_timed_out", t.timed_out},
                              {"polls_cancelled", t.cancelled},
                              {"polls_cancelled_by_drain", t.cancelled - cancelled_before},
                              {"pollers", pollers_by_state(pollers_)},
                              {"errors", errors_by_class(t)},
                              {"skipped_ticks", t.skipped},
                              {"throttled_ticks", t.throttled},
                              {"rate_limited_ticks", t.rate_limited},
                              {"host_paused_ticks", t.paused},
                              {"breaker_ticks", t.breaker},
                              {"quotes_accepted", quotes_accepted},
                              {"bars_emitted", bars_emitted},
                              {"records_written", sink.records_written},
                              {"bytes_written", sink.bytes_written},
                              {"records_dropped", sink.records_dropped},
                              {"quotes_written", sink.quotes.records_written},
                              {"quotes_dropped", sink.quotes.records_dropped},
                              {"write_errors", sink.write_errors},
                              {"segments_closed", sink.segments_closed},
                              {"files_repaired", sink.files_repaired}};
        if (exit_code_ == exit_ok) {
            log::info("drain complete", fields);
        } else if (exit_code_ == exit_fatal) {
            log::error("drain finished but output is incomplete: records were dropped or not written", fields);
        } else {
            fields["abandoned_pollers"] = pollers_.running();
            fields["sink_closed"] = sink_closed;
            fields["emergency"] = emergency_.load();
            log::error("drain incomplete: budget exceeded or forced", fields);
        }
        std::fflush(stdout);
        signals_.cancel();
        reload_signals_.cancel();
        summary_timer_.cancel();
        heartbeat_timer_.cancel();
        if (admin_) admin_->stop();
        io_.stop();
    }

    DrainWatchdog watchdog_;  // first member: destroyed last, so it also bounds the teardown
    const Config& config_;
    Universe universe_;
    asio::io_context io_;
    asio::strand<asio::io_context::executor_type> control_;
    asio::strand<asio::io_context::executor_type> aggregate_strand_;
    asio::signal_set signals_;
    asio::signal_set reload_signals_;
    asio::steady_timer wake_;
    asio::steady_timer summary_timer_;
    asio::steady_timer heartbeat_timer_;
    asio::steady_timer flush_timer_;
    asio::steady_timer bar_timer_;
    asio::steady_timer stale_timer_;
    bool aggregate_stopped_ = false;  // aggregate strand only: drain stage 3 ran
    Duration stale_sweep_period_{};   // aggregate strand only
    JsonlSink sink_;
    Aggregator aggregator_;
    PollerGroup pollers_;
    lifecycle::Operations ops_;
    std::vector<SourceConfig> running_sources_;  // control strand only
    std::vector<HostConfig> running_hosts_;      // control strand only: what running_sources_ index
    // The config in effect: restart-only keys keep their start-up values. Control strand only.
    Config effective_;
    std::unique_ptr<admin::Server> admin_;  // after ops_: destroyed first
    // After admin_: stopped before the server it hands tokens to is destroyed.
    lifecycle::TokenFileWatcher token_watch_{std::chrono::seconds(1), [this](std::string token) {
                                                 if (admin_) admin_->set_token(std::move(token));
                                             }};
    std::int64_t summary_every_ns_;         // control strand only
    std::atomic<bool> draining_{false};
    std::atomic<bool> emergency_{false};
    bool sockets_closed_ = false;  // control strand only
    std::atomic<int> exit_code_{exit_ok};
};

}  // namespace

Universe make_universe(const Config& config) {
    Universe u;
    std::unordered_map<std::string_view, SymbolId> seen;
    for (auto& src : config.sources) {
        u.sources.push_back(src.name);
        for (auto& sym : src.symbols) {
            if (seen.emplace(sym, static_cast<SymbolId>(u.symbols.size())).second) u.symbols.push_back(sym);
        }
    }
    return u;
}

int run_daemon(const Config& config) {
    if (auto level = log::parse_level(config.log.level)) log::set_level(*level);
    Daemon daemon(config);
    return daemon.run();
}

}  // namespace mdagg

// The wiring: the stages of the data path (Ingest -> Aggregation -> Output) on one io_context,
// the supervisor that drains them, the signals, the admin server, the reports and reloads.
#include "admin_access.hpp"
#include "aggregation.hpp"
#include "drain_plan.hpp"
#include "drain_record.hpp"
#include "drain_watchdog.hpp"
#include "ingest.hpp"
#include "io_shards.hpp"
#include "ops.hpp"
#include "output.hpp"
#include "reload_plan.hpp"
#include "reports.hpp"
#include "signals.hpp"
#include "supervisor.hpp"

#include <mdagg/common.hpp>
#include <mdagg/lifecycle.hpp>
#include <mdagg/kafka.hpp>  // issue 16
#include <mdagg/observe.hpp>
#include <mdagg/poll.hpp>
#include <mdagg/sink.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <thread>
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

SinkOptions sink_options(const Config& config) {
    const auto& o = config.output;
    SinkOptions s;
    s.dir = o.dir;
    s.max_buffer_bytes = o.max_buffer_bytes;
    s.overflow = o.overflow;
    s.overflow_wait = o.overflow_wait;
    s.quotes_format = o.quotes_format;
    s.bars_format = o.bars_format;
    s.rotate_bytes = o.rotate_max_bytes;
    s.rotate_age = o.rotate_max_age;
    s.retain_files = o.retention_max_files;
    s.retain_bytes = o.retention_max_bytes;
    s.compression = o.compression;
    // A failing disk is retried on every flush and in between at this pace.
    s.retry_every = std::min<Duration>(o.flush_every, std::chrono::seconds(1));
    return s;
}

// issue 16: the Kafka sink when `kafka:` is set. Its secrets are read here, at start-up; a value
// librdkafka refuses is a config error (exit 2) whose message never shows a secret.
std::unique_ptr<KafkaSink> make_kafka_sink(const Universe& universe, const Config& config) {
    if (!config.kafka.enabled) return nullptr;
    const auto& k = config.kafka;
    KafkaSinkOptions o;
    o.brokers = k.brokers;
    o.quotes_topic = config.output.quotes ? k.topics.quotes : std::string();
    o.bars_topic = k.topics.bars;
    o.events_topic = k.topics.events;
    o.acks = k.acks == KafkaAcks::all ? "all" : k.acks == KafkaAcks::one ? "1" : "0";
    o.idempotence = k.idempotence;
    constexpr const char* compressions[] = {"none", "gzip", "snappy", "lz4", "zstd"};
    o.compression = compressions[static_cast<int>(k.compression)];
    o.linger = k.linger;
    o.max_buffer_bytes = k.max_buffer_bytes;
    o.overflow = k.overflow;  // drop_newest or block: the config refuses drop_oldest
    o.overflow_wait = k.overflow_wait;
    try {
        o.properties = kafka_properties(config);
    } catch (const ConfigError& e) {
        throw StartupError(e.what());
    }
    return std::make_unique<KafkaSink>(universe, std::move(o));
}

// The sinks in drain order: Kafka (issue 16) first, so the files keep the reserve.
lifecycle::Output make_output(FileSink& files, KafkaSink* kafka) {
    lifecycle::Output output;
    if (kafka) output.add(std::make_unique<lifecycle::KafkaSinkDrain>(*kafka));
    output.add(std::make_unique<lifecycle::FileSinkDrain>(files));
    return output;
}

class Daemon {
public:
    explicit Daemon(const Config& config)
        : watchdog_(config.output.dir),
          config_(config),
          universe_(make_universe(config)),
          io_(1),  // run by the main thread only: shard 0 (IoShards)
          shards_(io_, config.runtime.threads,
                  [this] {
                      exit_code_ = exit_fatal;
                      io_.stop();
                  }),
          control_(asio::make_strand(io_)),
          signals_(control_),
          reload_signals_(control_),
          sink_(universe_, sink_options(config)),
          kafka_(make_kafka_sink(universe_, config)),  // issue 16: files and Kafka, fanned out
          fan_out_(kafka_ ? std::make_unique<FanOutSink>(std::initializer_list<RecordSink*>{&sink_, kafka_.get()}) : nullptr),
          output_(make_output(sink_, kafka_.get())),
          aggregation_(io_, control_, config_, universe_, fan_out_ ? static_cast<RecordSink&>(*fan_out_) : sink_,
                       output_),
          ingest_(shards_.contexts(), control_, config_, universe_, aggregation_.quote_handler()),
          supervisor_(ingest_, aggregation_, output_),
          ops_(config_, ingest_.pollers(), sink_),
          running_sources_(config.sources),
          running_hosts_(config.hosts),
          effective_(config),
          admin_(io_, config_, ops_),
          reports_(control_, ingest_.pollers(), sink_, kafka_.get(), aggregation_.aggregator(), ops_, host_pauses_,
                   draining_, config.log.summary_every) {}

    ~Daemon() { signal_thread_.stop(); }

    int run() {
        signal_thread_.start([this](int signo) { on_signal(signo); });
        open();
        ingest_.start();
        aggregation_.start();
        output_.start();
        asio::co_spawn(control_, supervise(), [this](std::exception_ptr e) { on_supervisor_exit(e); });
        asio::co_spawn(control_, reports_.summaries(), [](std::exception_ptr) {});
        asio::co_spawn(control_, reports_.heartbeats(), [](std::exception_ptr) {});
        asio::co_spawn(control_, reloads(), [](std::exception_ptr e) {
            if (!e) return;
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                log::error("reload handler failed; SIGHUP is ignored from now on", {{"error", ex.what()}});
            }
        });
        ops_.start_loop_watchdog(shards_.heartbeats());
        run_threads();
        if (ingest_.pollers().running() > 0 || KafkaSink::producers_abandoned() > 0) {
            // Pollers stuck past the budget are still suspended mid-poll; their frames would
            // be destroyed with the io_context, after the pollers they point into. A Kafka
            // producer whose rd_kafka_destroy outlived the drain still runs on its thread and
            // must not meet static destructors. The output is closed (or abandoned) and
            // logged: leave without destructors.
            std::fflush(stdout);
            std::_Exit(exit_code_);
        }
        return exit_code_;
    }

private:
    // Everything before the first poll. Throws StartupError.
    void open() {
        // The port first: a port in use must not leave half-created output files behind.
        if (config_.admin.enabled) admin_.start();
        try {
            sink_.open();
        } catch (const std::system_error& e) {
            throw StartupError(e.what());
        }
        if (kafka_) {  // issue 16: unreachable brokers are no error; a refused setting is
            try {
                kafka_->open();
            } catch (const std::runtime_error& e) {
                throw StartupError(e.what());
            }
            ops_.set_kafka(kafka_.get());
        }
        if (auto last = lifecycle::read_drain_record(config_.output.dir)) {
            ops_.set_last_drain(last->duration_ms / 1000.0, last->exit_code);
            log::info("previous drain", {{"drain_ms", last->duration_ms},
                                         {"exit_code", last->exit_code},
                                         {"forced_by_watchdog", last->forced_by_watchdog}});
        }
        // Pauses and bans the hosts asked for before a restart still run: honour them before
        // the first poll, or a restart loop would hit a venue that banned us and lengthen the ban.
        host_pauses_.emplace(config_.output.dir);
        ingest_.pollers().restore_pauses(host_pauses_->load(std::chrono::system_clock::now()));
        std::size_t symbols = 0, pollers = 0;
        for (auto& s : config_.sources) {
            symbols += s.symbols.size();
            pollers += s.request_count();
        }
        log::info("mdagg started", {{"config", config_.file},
                                    {"sources", config_.sources.size()},
                                    {"pollers", pollers},
                                    {"symbols", symbols},
                                    {"threads", config_.runtime.threads},
                                    {"output_dir", config_.output.dir},
                                    {"grace_ms", to_ms(config_.shutdown.grace)}});
    }

    // The main thread runs shard 0 (io_: the pollers dealt to it, the control strand, the
    // aggregator, the admin server); the other shards have threads of their own (IoShards).
    void run_threads() {
        run_io();
        shards_.stop();
    }

    // Signal thread. The first SIGTERM/SIGINT fixes the drain's timetable and arms the
    // watchdog before the event loop hears of it.
    void on_signal(int signo) {
        if (signo == SIGHUP) {
            asio::post(control_, [this] { reload_signals_.deliver(SIGHUP); });
            return;
        }
        if (!drain_signalled_) {
            drain_signalled_ = true;
            drain_plan_ = lifecycle::plan_drain(Clock::now(), lifecycle::drain_budget(signo, config_));
            watchdog_.arm(drain_plan_.started, drain_plan_.watchdog_at, drain_plan_.budget);
        }
        asio::post(control_, [this, signo] { signals_.deliver(signo); });
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
            co_await reload(loaded, shard);
        }
    }

    asio::awaitable<void> reload(const Config& loaded, const ShardingResult& shard) {
        std::shared_ptr<const void> tls_contexts;
        try {
            tls_contexts = ingest_.pollers().prepare_tls(loaded.sources);
        } catch (const std::runtime_error& e) {
            log::error("reload failed: keeping the running config", {{"config", config_.file}, {"error", e.what()}});
            co_return;
        }
        const ReloadDiff diff = reload_diff(effective_, loaded);
        reports_.set_summary_every(loaded.log.summary_every);
        ops_.set_stall_after(loaded.admin.stall_after);
        ops_.set_symbol_metrics(loaded.admin.symbol_metrics);
        sink_.reconfigure(sink_options(loaded));
        admin_.reload(loaded);
        nlohmann::json fields{{"config", config_.file},
                              {"log_level", loaded.log.level},
                              {"summary_every_ms", to_ms(loaded.log.summary_every)},
                              {"stall_after_ms", to_ms(loaded.admin.stall_after)}};
        if (loaded.sharding.count > 1 || effective_.sharding.count > 1)
            fields["sharding"] = {{"index", loaded.sharding.index},
                                  {"count", loaded.sharding.count},
                                  {"symbols", shard.symbols_kept},
                                  {"symbols_total", shard.symbols_total}};
        const auto changes = co_await apply_sources(loaded.sources, loaded.hosts);
        ops_.invalidate_snapshot();
        if (!changes) {
            log::warn("reload abandoned: a drain started", fields);
            co_return;
        }
        adopt_live_keys(effective_, loaded);
        fields["pollers_added"] = changes->added;
        fields["pollers_removed"] = changes->removed;
        fields["pollers_restarted"] = changes->restarted;
        fields["pollers"] = ingest_.pollers().size();
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

    // Applies a reloaded source list as a difference (lifecycle::plan_reload): the universe
    // first, on the aggregation strand, then the pollers. nullopt when a drain started in
    // between (nothing changed in the pollers). Control strand.
    asio::awaitable<std::optional<lifecycle::Ingest::Changes>> apply_sources(const std::vector<SourceConfig>& sources,
                                                                            const std::vector<HostConfig>& hosts) {
        // The universe changes only in the aggregation stage's hop, which this coroutine
        // awaits: reading it here is safe.
        const lifecycle::ReloadPlan plan =
            lifecycle::plan_reload(running_sources_, running_hosts_, sources, hosts, aggregation_.universe(),
                                   retiring_symbols_, ingest_.pollers().symbols_held());
        retiring_symbols_ = plan.symbols.retiring;
        if (plan.universe_changes()) co_await aggregation_.update_universe(plan);
        co_await aggregation_.set_sources(sources);
        if (draining_) co_return std::nullopt;
        const auto changes =
            ingest_.apply(plan, sources, hosts, aggregation_.universe(), retiring_symbols_);
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

    asio::awaitable<void> watch_second_signal() {
        auto [ec, signo] = co_await signals_.async_wait(use_tuple);
        if (ec) co_return;
        log::warn("second signal during drain: skipping to the emergency flush", {{"signal", signo}});
        supervisor_.emergency();
    }

    asio::awaitable<void> supervise() {
        auto [ec, signo] = co_await signals_.async_wait(use_tuple);
        if (ec) co_return;
        if (test_block_loop_ms_ > 0) std::this_thread::sleep_for(milliseconds(test_block_loop_ms_));
        draining_ = true;
        ops_.set_draining();  // /readyz answers 503 from here on
        const lifecycle::DrainPlan plan = drain_plan_;  // set by the signal thread before it posted
        log::info("drain started", {{"signal", signo == SIGINT ? "SIGINT" : "SIGTERM"},
                                    {"budget_ms", to_ms(plan.budget)},
                                    {"polls_in_flight", ingest_.pollers().polls_in_flight()}});
        asio::co_spawn(control_, watch_second_signal(), [](std::exception_ptr) {});
        const auto report = co_await supervisor_.drain(plan);
        exit_code_ = report.exit_code;
        // Pauses a server asked for in the last heartbeat or during the drain must outlive the
        // process too (the file's destructor writes what is pending).
        if (host_pauses_) host_pauses_->update(ingest_.pollers().server_pauses());
        write_drain_record(plan, report);
        std::fflush(stdout);
        signals_.cancel();
        reload_signals_.cancel();
        reports_.cancel();
        admin_.stop();
        io_.stop();
    }

    void write_drain_record(const lifecycle::DrainPlan& plan, const lifecycle::Supervisor::Report& report) {
        lifecycle::DrainRecord record;
        record.duration_ms = to_ms(report.elapsed);
        record.budget_ms = to_ms(plan.budget);
        record.exit_code = report.exit_code;
        record.records_abandoned = static_cast<std::int64_t>(report.records_lost);
        record.wall_time_ns = wall_clock_ns();
        if (!lifecycle::write_drain_record(config_.output.dir.c_str(), record, lifecycle::drain_temp_name,
                                           &watchdog_.fired()) &&
            !watchdog_.fired())
            log::warn("cannot write the drain record", {{"file", config_.output.dir + "/" + lifecycle::drain_record_name},
                                                        {"error", std::strerror(errno)}});
    }

    lifecycle::DrainWatchdog watchdog_;  // first member: destroyed last, so it also bounds the teardown
    lifecycle::SignalThread signal_thread_;  // stopped in ~Daemon, before the strands it posts to go
    bool drain_signalled_ = false;           // signal thread only
    lifecycle::DrainPlan drain_plan_;        // written by the signal thread before it posts the signal
    // Tests only: the event loop sleeps this long when the drain starts (a loop blocked by a
    // bug or a stuck handler), to prove the watchdog does not depend on it.
    const long test_block_loop_ms_ = [] {
        const char* v = std::getenv("MDAGG_TEST_BLOCK_LOOP_MS");
        return v ? std::strtol(v, nullptr, 10) : 0L;
    }();
    const Config& config_;
    Universe universe_;  // changed only by aggregation_, on its strand
    asio::io_context io_;
    lifecycle::IoShards shards_;  // before the stages: the pollers' sockets use its io_contexts
    asio::strand<asio::io_context::executor_type> control_;
    lifecycle::PostedSignals signals_;         // SIGTERM, SIGINT
    lifecycle::PostedSignals reload_signals_;  // SIGHUP
    FileSink sink_;
    std::unique_ptr<KafkaSink> kafka_;     // issue 16: null without `kafka:`
    std::unique_ptr<FanOutSink> fan_out_;  // files, then Kafka; null without `kafka:`
    // The stages, in the order of the data path; destroyed pollers first.
    lifecycle::Output output_;
    lifecycle::Aggregation aggregation_;
    lifecycle::Ingest ingest_;
    lifecycle::Supervisor supervisor_;
    lifecycle::Operations ops_;
    std::optional<HostPauseFile> host_pauses_;  // from run(); updated on the control strand
    std::vector<SourceConfig> running_sources_;  // control strand only
    std::unordered_set<SymbolId> retiring_symbols_;  // control strand only: removed, pollers may remain
    std::vector<HostConfig> running_hosts_;      // control strand only: what running_sources_ index
    // The config in effect: restart-only keys keep their start-up values. Control strand only.
    Config effective_;
    lifecycle::AdminAccess admin_;  // after ops_: destroyed first
    std::atomic<bool> draining_{false};
    std::atomic<int> exit_code_{exit_ok};
    lifecycle::Reports reports_;  // last: refers to the members above
};

}  // namespace

std::optional<std::string> admin_exposure_error(const Config& config) {
    const auto& a = config.admin;
    // A token file counts by its presence: --check-config does not read it, and an unreadable
    // one stops the start-up anyway (an empty one is warned about).
    if (!a.enabled || a.allow_unauthenticated || lifecycle::is_loopback(a.host) || !a.token_file.empty() ||
        admin_token_configured(config))
        return std::nullopt;
    const std::string listen = a.host.find(':') != std::string::npos ? "[" + a.host + "]:" + std::to_string(a.port)
                                                                       : a.host + ":" + std::to_string(a.port);
    std::string why = a.token_env.empty() ? "neither admin.token_env nor admin.token_file is set"
                                          : "admin.token_env names " + a.token_env + ", which is unset or empty";
    return "admin.listen " + listen + " is not a loopback address and " + why +
           ": anyone who can reach the port could pause or cancel every poller. Set admin.token_file (a "
           "mounted Secret) or admin.token_env (and the variable), listen on 127.0.0.1, or set admin.allow_unauthenticated: "
           "true if the network is closed off otherwise";
}

Universe make_universe(const Config& config) {
    Universe u;
    std::unordered_map<std::string_view, SymbolId> seen;
    for (auto& src : config.sources) {
        u.sources.push_back(src.name);
        for (auto& sym : src.symbols) {
            if (seen.emplace(sym, static_cast<SymbolId>(u.symbols.size())).second) u.symbols.push_back(sym);
        }
    }
    lifecycle::set_venue_symbols(u, config.sources);
    return u;
}

int run_daemon(const Config& config) {
    // Before any thread starts, so that every thread inherits the mask and only the signal
    // thread takes these signals.
    const sigset_t handled = lifecycle::SignalThread::handled();
    ::pthread_sigmask(SIG_BLOCK, &handled, nullptr);
    if (auto level = log::parse_level(config.log.level)) log::set_level(*level);
    Daemon daemon(config);
    return daemon.run();
}

}  // namespace mdagg

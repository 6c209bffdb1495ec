#include "drain_record.hpp"
#include "ops.hpp"
#include "token_watch.hpp"

#include <mdagg/admin.hpp>
#include <mdagg/aggregator.hpp>
#include <mdagg/daemon.hpp>
#include <mdagg/kafka.hpp>  // issue 16
#include <mdagg/log.hpp>
#include <mdagg/poll.hpp>
#include <mdagg/sink.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
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
    o.overflow = k.overflow == OutputOverflow::block ? OverflowPolicy::block : OverflowPolicy::drop_newest;
    o.overflow_wait = k.overflow_wait;
    try {
        o.properties = kafka_properties(config);
    } catch (const ConfigError& e) {
        throw StartupError(e.what());
    }
    return std::make_unique<KafkaSink>(universe, std::move(o));
}

// issue 16: the summary line's "kafka" field; counters since the start, like records_written.
nlohmann::json kafka_summary(const KafkaStats& k) {
    return {{"connected", k.connected},
            {"delivered", k.delivered},
            {"failed", k.failed},
            {"dropped", k.records_dropped()},
            {"queued_records", k.queued_records},
            {"queued_bytes", k.queued_bytes},
            {"delivery_p99_ms", to_ms(k.delivery_latency.quantile(0.99))}};
}

// 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104: only this host can connect.
bool is_loopback(const std::string& host) {
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(host, ec);
    if (ec) return false;
    if (address.is_v6() && address.to_v6().is_v4_mapped())
        return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()).is_loopback();
    return address.is_loopback();
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
// fsync, a blocked event loop, a bug): exit with the forced-stop code before the
// orchestrator's SIGKILL, so the stop is visible. Armed by the signal thread the moment the
// signal arrives. It takes no lock (the logger's mutex may be held by the very thread that
// hangs) and never blocks on its own output: the log line is skipped when stdout cannot take
// it now, and the drain record gets a bounded moment on a helper thread.
class DrainWatchdog {
public:
    explicit DrainWatchdog(std::string output_dir) : output_dir_(std::move(output_dir)) {}

    void arm(Clock::time_point started, Clock::time_point fire_at, Clock::duration budget) {
        if (thread_.joinable()) return;
        thread_ = std::thread([this, started, fire_at, budget] {
            std::unique_lock lock(mutex_);
            if (cv_.wait_until(lock, fire_at, [this] { return disarmed_; })) return;
            static constexpr char line[] =
                "{\"level\":\"error\",\"msg\":\"drain watchdog fired: the drain did not finish within "
                "its budget; forcing exit\",\"exit_code\":3}\n";
            write_if_writable(line, sizeof line - 1);
            fired_.store(true);  // the drain's own record, if still being written, is not renamed
            record(Clock::now() - started, budget);
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
    static void write_if_writable(const char* line, std::size_t size) {
        pollfd out{STDOUT_FILENO, POLLOUT, 0};
        if (::poll(&out, 1, 0) != 1 || !(out.revents & POLLOUT)) return;
        // A pipe with a free slot and a file take a short line at once; a socket might not.
        if (::send(STDOUT_FILENO, line, size, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0 || errno != ENOTSOCK) return;
        (void)!::write(STDOUT_FILENO, line, size);
    }

    // The disk may be what hangs: the record gets at most 250 ms. The helper thread may outlive
    // this frame (until _exit), so what it reads lives on the heap.
    void record(Clock::duration elapsed, Clock::duration budget) {
        struct Pending {
            std::string dir;
            lifecycle::DrainRecord record;
            std::atomic<bool> done{false};
        };
        std::shared_ptr<Pending> pending;
        try {
            pending = std::make_shared<Pending>();
            pending->dir = output_dir_;
        } catch (const std::bad_alloc&) {
            return;
        }
        auto& r = pending->record;
        r.duration_ms = to_ms(elapsed);
        r.budget_ms = to_ms(budget);
        r.exit_code = exit_drain_timeout;
        r.forced_by_watchdog = true;
        r.wall_time_ns = wall_clock_ns();
        try {
            std::thread([pending] {
                lifecycle::write_drain_record(pending->dir.c_str(), pending->record, lifecycle::watchdog_temp_name);
                pending->done = true;
            }).detach();
        } catch (const std::system_error&) {
            return;
        }
        for (int i = 0; i < 25 && !pending->done; ++i) std::this_thread::sleep_for(milliseconds(10));
    }

public:
    // Set once the watchdog forces the exit: its record, not the drain's, tells what happened.
    const std::atomic<bool>& fired() const noexcept { return fired_; }

private:
    const std::string output_dir_;
    std::atomic<bool> fired_{false};
    std::mutex mutex_;
    std::condition_variable cv_;
    bool disarmed_ = false;
    std::thread thread_;
};

// SIGTERM, SIGINT and SIGHUP are blocked in every thread (run_daemon blocks them before any
// thread starts) and taken here with sigwait, so a drain's deadline and its watchdog start
// when the signal arrives, however long the event loop takes to turn.
class SignalThread {
public:
    static sigset_t handled() {
        sigset_t set;
        sigemptyset(&set);
        for (int signo : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, signo);
        return set;
    }

    void start(std::function<void(int)> on_signal) {
        thread_ = std::thread([this, on_signal = std::move(on_signal)] {
            const sigset_t set = handled();
            for (;;) {
                int signo = 0;
                if (::sigwait(&set, &signo) != 0) continue;
                if (stopping_) return;
                on_signal(signo);
            }
        });
    }

    // Wakes the thread with a SIGHUP of its own; one sent to the process from here on stays
    // pending until exit.
    void stop() {
        if (!thread_.joinable()) return;
        stopping_ = true;
        ::pthread_kill(thread_.native_handle(), SIGHUP);
        thread_.join();
    }
    ~SignalThread() { stop(); }

private:
    std::atomic<bool> stopping_{false};
    std::thread thread_;
};

// Signals the signal thread handed to the control strand, awaited like an asio::signal_set:
// async_wait completes with (error_code, signal number). Control strand only.
class PostedSignals {
public:
    template <class Executor>
    explicit PostedSignals(const Executor& executor) : channel_(executor, 16) {}
    template <class Token>
    auto async_wait(Token&& token) {
        return channel_.async_receive(std::forward<Token>(token));
    }
    void deliver(int signo) { (void)channel_.try_send(boost::system::error_code(), signo); }
    void cancel() { channel_.cancel(); }

private:
    asio::experimental::channel<void(boost::system::error_code, int)> channel_;
};

class Daemon {
public:
    explicit Daemon(const Config& config)
        : watchdog_(config.output.dir),
          config_(config),
          universe_(make_universe(config)),
          io_(static_cast<int>(config.runtime.threads)),
          control_(asio::make_strand(io_)),
          aggregate_strand_(asio::make_strand(io_)),
          signals_(control_),
          reload_signals_(control_),
          wake_(control_),
          summary_timer_(control_),
          heartbeat_timer_(control_),
          flush_timer_(aggregate_strand_),
          bar_timer_(aggregate_strand_),
          stale_timer_(aggregate_strand_),
          sink_(universe_, sink_options(config)),
          kafka_(make_kafka_sink(universe_, config)),  // issue 16: files and Kafka, fanned out
          fan_out_(kafka_ ? std::make_unique<FanOutSink>(std::initializer_list<RecordSink*>{&sink_, kafka_.get()}) : nullptr),
          aggregator_(universe_, config.output.bar_interval.count(),
                      fan_out_ ? static_cast<RecordSink&>(*fan_out_) : sink_, config.output.quotes),
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

    ~Daemon() { signal_thread_.stop(); }

    int run() {
        signal_thread_.start([this](int signo) { on_signal(signo); });
        // The port first: a port in use must not leave half-created output files behind.
        if (config_.admin.enabled) start_admin();
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
        pollers_.restore_pauses(host_pauses_->load(std::chrono::system_clock::now()));
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
    // Signal thread. The first SIGTERM/SIGINT fixes the drain's start and arms the watchdog
    // before the event loop hears of it.
    void on_signal(int signo) {
        if (signo == SIGHUP) {
            asio::post(control_, [this] { reload_signals_.deliver(SIGHUP); });
            return;
        }
        if (!drain_signalled_) {
            drain_signalled_ = true;
            const auto budget = signo == SIGINT ? config_.shutdown.interrupt_grace : config_.shutdown.grace;
            drain_started_ = Clock::now();
            watchdog_.arm(drain_started_, drain_started_ + budget + std::min<Clock::duration>(budget / 10, milliseconds(250)),
                          budget);
        }
        asio::post(control_, [this, signo] { signals_.deliver(signo); });
    }

    void start_admin() {
        std::string token;
        const auto stamp = file_stamp(config_.admin.token_file);
        try {
            token = admin_token(config_);
        } catch (const ConfigError& e) {
            throw StartupError(e.what());
        }
        // admin_exposure_error counts a token file by its presence; an empty one opens nothing.
        if (token.empty() && !config_.admin.allow_unauthenticated && !is_loopback(config_.admin.host))
            throw StartupError("admin.token_file " + config_.admin.token_file +
                               " is empty and admin.listen is not a loopback address: refusing to serve "
                               "POST /admin/* without a token (admin.allow_unauthenticated: true allows it)");
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
        if (token.empty() && !is_loopback(config_.admin.host))
            log::warn("admin server reachable from the network without a token (admin.allow_unauthenticated)",
                      {{"host", config_.admin.host}});
        if (!config_.admin.token_file.empty() && token.empty())
            log::warn("admin.token_file is empty: POST /admin/* need no token until it holds one",
                      {{"token_file", config_.admin.token_file}});
        token_watch_.watch(config_.admin.token_file, stamp);  // admin_ is set: the watcher may use it
    }

    // Stamps the loop watchdog's heartbeat and runs the readiness and stall checks.
    asio::awaitable<void> heartbeats() {
        for (;;) {
            ops_.on_heartbeat(Clock::now());
            if (host_pauses_) host_pauses_->update(pollers_.server_pauses());  // written off-thread
            heartbeat_timer_.expires_after(lifecycle::Operations::heartbeat_every);
            auto [ec] = co_await heartbeat_timer_.async_wait(use_tuple);
            if (ec) co_return;
        }
    }

    // The token on SIGHUP; between reloads token_watch_ follows the file. An unreadable file
    // keeps the token in effect: a reload must never switch authentication off by accident.
    // A reload or a rewritten token file may not open a port reachable from the network: the
    // start-up refused that (admin_exposure_error), so an empty token keeps the current one.
    // Any thread (the token file watcher calls it).
    void install_admin_token(std::string token) {
        if (!admin_) return;
        if (token.empty() && !config_.admin.allow_unauthenticated && !is_loopback(config_.admin.host)) {
            log::error("refusing an empty admin token on a non-loopback admin.listen: keeping the current token",
                       {{"listen_host", config_.admin.host}});
            return;
        }
        admin_->set_token(std::move(token));
    }

    void reload_admin_token(const Config& loaded) {
        if (!admin_) return;
        try {
            const auto stamp = file_stamp(loaded.admin.token_file);
            install_admin_token(admin_token(loaded));
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
            ops_.invalidate_snapshot();
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
        // The universe belongs to the aggregator's strand (the aggregator and the sink read it
        // there) and changes only in the hop below, which this coroutine awaits: reading it
        // here is safe. Source ids are only ever appended; symbol ids of removed symbols are
        // reused once nothing refers to them (releasable_symbol_ids).
        std::unordered_set<std::string_view> wanted;
        for (auto& src : sources) wanted.insert(src.symbols.begin(), src.symbols.end());
        const std::vector<SymbolId> releasable = releasable_symbol_ids(wanted);
        std::unordered_map<std::string_view, SourceId> source_ids;
        std::unordered_map<std::string_view, SymbolId> symbol_ids;
        auto map_ids = [&] {
            for (SourceId i = 0; i < universe_.sources.size(); ++i) source_ids.emplace(universe_.sources[i], i);
            for (SymbolId i = 0; i < universe_.symbols.size(); ++i)
                if (!universe_.symbols[i].empty()) symbol_ids.emplace(universe_.symbols[i], i);
        };
        map_ids();
        std::vector<std::string> new_sources, new_symbols;
        std::unordered_set<std::string_view> adding;
        for (auto& src : sources) {
            if (!source_ids.contains(src.name) &&
                std::find(new_sources.begin(), new_sources.end(), src.name) == new_sources.end())
                new_sources.push_back(src.name);
            for (auto& sym : src.symbols)
                if (!symbol_ids.contains(sym) && adding.insert(sym).second) new_symbols.push_back(sym);
        }
        if (!new_sources.empty() || !new_symbols.empty() || !releasable.empty()) {
            // The maps' keys point into the strings about to change: rebuild after.
            source_ids.clear();
            symbol_ids.clear();
            co_await asio::post(asio::bind_executor(aggregate_strand_, asio::use_awaitable));
            // Behind every quote of the released symbols' pollers, which are gone. Their last
            // bars are written here, under their own names, before the ids change hands.
            for (SymbolId id : releasable) {
                aggregator_.release_symbol(id);
                universe_.release_symbol(id);
            }
            for (auto& s : new_sources) universe_.sources.push_back(std::move(s));
            for (auto& s : new_symbols) universe_.add_symbol(std::move(s));
            aggregator_.grow();
            co_await asio::post(asio::bind_executor(control_, asio::use_awaitable));
            map_ids();
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
        // Symbols no source polls any more: their ids wait for their retired pollers.
        for (auto& old : running_sources_)
            for (auto& sym : old.symbols)
                if (auto it = symbol_ids.find(sym); it != symbol_ids.end() && !wanted.contains(sym))
                    retiring_symbols_.insert(it->second);
        pollers_.set_hosts(hosts);
        running_sources_ = sources;
        running_hosts_ = hosts;
        co_return changes;
    }

    // A symbol's id goes back to the universe in two steps, so that no record ever shows
    // another symbol's name: a reload removes the symbol (retiring_symbols_); a later reload
    // that finds none of its pollers left (their last quotes are queued for the aggregator by
    // then) has the aggregator write its last bar and drop its state, and frees the id for
    // that reload's new symbols. A symbol that comes back while retiring keeps its id.
    // Control strand; `wanted` are the reloaded config's symbols.
    std::vector<SymbolId> releasable_symbol_ids(const std::unordered_set<std::string_view>& wanted) {
        std::vector<SymbolId> out;
        if (retiring_symbols_.empty()) return out;
        const std::vector<SymbolId> held = pollers_.symbols_held();
        for (auto it = retiring_symbols_.begin(); it != retiring_symbols_.end();) {
            const SymbolId id = *it;
            if (wanted.contains(universe_.symbols[id])) {
                it = retiring_symbols_.erase(it);
            } else if (std::binary_search(held.begin(), held.end(), id)) {
                ++it;
            } else {
                out.push_back(id);
                it = retiring_symbols_.erase(it);
            }
        }
        return out;
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
        for (const auto& [name, st] : pollers_.host_statuses()) {
            if (st.breaker == BreakerState::closed && st.pause == PauseReason::none) continue;
            nlohmann::json entry{{"breaker", to_string(st.breaker)}, {"pause", to_string(st.pause)}};
            if (st.pause != PauseReason::none)
                entry["paused_for_ms"] = to_ms(st.paused_until - Clock::now());
            out[name] = std::move(entry);
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
            const auto controls = pollers_.control_counts();
            nlohmann::json fields{{"polls_per_s", secs > 0 ? static_cast<double>(done) / secs : 0.0},
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
                                  {"hosts", hosts_not_healthy()}};
            if (kafka_) fields["kafka"] = kafka_summary(kafka_->stats());  // issue 16
            log::info("summary", fields);
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
        if (test_block_loop_ms_ > 0) std::this_thread::sleep_for(milliseconds(test_block_loop_ms_));
        draining_ = true;
        ops_.set_draining();  // /readyz answers 503 from here on
        const auto budget = signo == SIGINT ? config_.shutdown.interrupt_grace : config_.shutdown.grace;
        const auto t0 = drain_started_;  // set by the signal thread before it posted the signal
        const auto deadline = t0 + budget;
        // In-flight polls get until cancel_at; the rest of the budget is kept for the flush.
        const auto reserve = std::min<Clock::duration>(budget / 4, std::chrono::seconds(1));
        const auto cancel_at = deadline - reserve;
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

        // 4. Write, flush, fsync and close every file. issue 16: Kafka first, until the file
        //    sink's reserve (its writer works meanwhile: stage 3 flushed it).
        std::optional<KafkaDrainOutcome> kafka_out;
        if (kafka_) {
            const auto until = deadline - reserve;
            kafka_out = kafka_->drain(emergency_ ? std::min(until, Clock::now() + std::chrono::seconds(1)) : until);
            kafka_->close();
        }
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
        const auto kafka = kafka_ ? kafka_->stats() : KafkaStats{};  // issue 16: the file sink's rule
        const bool kafka_lost = kafka_out && (kafka_out->undelivered > 0 || kafka.records_dropped() > 0);
        if (!(sink_closed && pollers_done && in_budget && !emergency_) || (kafka_out && !kafka_out->in_time)) {
            exit_code_ = exit_drain_timeout;
        } else if (sink.records_dropped > 0 || sink.disk_fault || sink.segments_unsynced > 0 || kafka_lost) {
            // Drained in time, but not every record reached the disk (dropped while the disk
            // failed or the queue was full, or refused at close), or a segment is not known to
            // be durable (its fdatasync failed: kept .part). Recovered write errors that lost
            // nothing do not count.
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
                              {"segments_unsynced", sink.segments_unsynced},
                              {"files_repaired", sink.files_repaired}};
        if (kafka_out)  // issue 16
            fields["kafka"] = {{"delivered", kafka_out->delivered},
                               {"undelivered", kafka_out->undelivered},
                               {"dropped", kafka.records_dropped()},
                               {"in_time", kafka_out->in_time}};
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
        // Pauses a server asked for in the last heartbeat or during the drain must outlive the
        // process too (the file's destructor writes what is pending).
        if (host_pauses_) host_pauses_->update(pollers_.server_pauses());
        lifecycle::DrainRecord record;
        record.duration_ms = to_ms(elapsed);
        record.budget_ms = to_ms(budget);
        record.exit_code = exit_code_;
        record.records_abandoned = static_cast<std::int64_t>(sink.records_dropped);
        record.wall_time_ns = wall_clock_ns();
        if (!lifecycle::write_drain_record(config_.output.dir.c_str(), record, lifecycle::drain_temp_name,
                                           &watchdog_.fired()) &&
            !watchdog_.fired())
            log::warn("cannot write the drain record", {{"file", config_.output.dir + "/" + lifecycle::drain_record_name},
                                                        {"error", std::strerror(errno)}});
        std::fflush(stdout);
        signals_.cancel();
        reload_signals_.cancel();
        summary_timer_.cancel();
        heartbeat_timer_.cancel();
        if (admin_) admin_->stop();
        io_.stop();
    }

    DrainWatchdog watchdog_;  // first member: destroyed last, so it also bounds the teardown
    SignalThread signal_thread_;  // stopped in ~Daemon, before the strands it posts to go
    bool drain_signalled_ = false;     // signal thread only
    Clock::time_point drain_started_;  // written by the signal thread before it posts the signal
    // Tests only: the event loop sleeps this long when the drain starts (a loop blocked by a
    // bug or a stuck handler), to prove the watchdog does not depend on it.
    const long test_block_loop_ms_ = [] {
        const char* v = std::getenv("MDAGG_TEST_BLOCK_LOOP_MS");
        return v ? std::strtol(v, nullptr, 10) : 0L;
    }();
    const Config& config_;
    Universe universe_;
    asio::io_context io_;
    asio::strand<asio::io_context::executor_type> control_;
    asio::strand<asio::io_context::executor_type> aggregate_strand_;
    PostedSignals signals_;         // SIGTERM, SIGINT
    PostedSignals reload_signals_;  // SIGHUP
    asio::steady_timer wake_;
    asio::steady_timer summary_timer_;
    asio::steady_timer heartbeat_timer_;
    asio::steady_timer flush_timer_;
    asio::steady_timer bar_timer_;
    asio::steady_timer stale_timer_;
    bool aggregate_stopped_ = false;  // aggregate strand only: drain stage 3 ran
    Duration stale_sweep_period_{};   // aggregate strand only
    JsonlSink sink_;
    std::unique_ptr<KafkaSink> kafka_;     // issue 16: null without `kafka:`
    std::unique_ptr<FanOutSink> fan_out_;  // files, then Kafka; null without `kafka:`
    Aggregator aggregator_;
    PollerGroup pollers_;
    lifecycle::Operations ops_;
    std::optional<HostPauseFile> host_pauses_;  // from run(); updated on the control strand
    std::vector<SourceConfig> running_sources_;  // control strand only
    std::unordered_set<SymbolId> retiring_symbols_;  // control strand only: removed, pollers may remain
    std::vector<HostConfig> running_hosts_;      // control strand only: what running_sources_ index
    // The config in effect: restart-only keys keep their start-up values. Control strand only.
    Config effective_;
    std::unique_ptr<admin::Server> admin_;  // after ops_: destroyed first
    // After admin_: stopped before the server it hands tokens to is destroyed.
    lifecycle::TokenFileWatcher token_watch_{std::chrono::seconds(1), [this](std::string token) {
                                                 install_admin_token(std::move(token));
                                             }};
    std::int64_t summary_every_ns_;         // control strand only
    std::atomic<bool> draining_{false};
    std::atomic<bool> emergency_{false};
    bool sockets_closed_ = false;  // control strand only
    std::atomic<int> exit_code_{exit_ok};
};

}  // namespace

std::optional<std::string> admin_exposure_error(const Config& config) {
    const auto& a = config.admin;
    // A token file counts by its presence: --check-config does not read it, and an unreadable
    // one stops the start-up anyway (an empty one is warned about).
    if (!a.enabled || a.allow_unauthenticated || is_loopback(a.host) || !a.token_file.empty() ||
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
    return u;
}

int run_daemon(const Config& config) {
    // Before any thread starts, so that every thread inherits the mask and only the signal
    // thread takes these signals.
    const sigset_t handled = SignalThread::handled();
    ::pthread_sigmask(SIG_BLOCK, &handled, nullptr);
    if (auto level = log::parse_level(config.log.level)) log::set_level(*level);
    Daemon daemon(config);
    return daemon.run();
}

}  // namespace mdagg

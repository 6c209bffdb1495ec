// Private to lifecycle: what the ops endpoints report and do, and the two health watchdogs.
// The event-loop watchdog is a thread that notices an io thread's loop not turning (a
// heartbeat it stamps stops advancing: the control strand's on the main thread, a timer's on
// each other shard, LoopWatch); the poll stall detector notices that no poll has completed
// for `stall_after`. Both fail /healthz and log once per episode.
#pragma once

#include "loop_watch.hpp"

#include <mdagg/admin.hpp>
#include <mdagg/config.hpp>
#include <mdagg/kafka.hpp>  // issue 16
#include <mdagg/poll.hpp>
#include <mdagg/quote.hpp>
#include <mdagg/sink.hpp>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace mdagg::lifecycle {

class Operations final : public admin::Backend {
public:
    using Clock = std::chrono::steady_clock;

    Operations(const Config& config, PollerGroup& pollers, const FileSink& sink);
    ~Operations() override;

    // Control strand, every heartbeat_every: stamps the heartbeat, latches readiness and runs
    // the stall detector.
    static constexpr auto heartbeat_every = LoopWatch::beat_every;
    void on_heartbeat(Clock::time_point now);
    // An io thread's loop counts as stalled when its heartbeat is older than this.
    static constexpr auto loop_stall_after = LoopWatch::stall_after;
    // Before the event loop runs. Watches the main thread (io thread 0) and the other shards
    // (io threads 1.., their heartbeats in order); the heartbeats outlive this object.
    void start_loop_watchdog(std::vector<const LoopWatch::Heartbeat*> shard_beats = {});

    void set_draining() noexcept { draining_.store(true); }
    // issue 16: the Kafka sink's series and /readyz details; set before the event loop runs.
    void set_kafka(const KafkaSink* kafka) noexcept { kafka_ = kafka; }
    void set_stall_after(Duration d) noexcept { stall_after_ns_.store(d.count()); }
    void set_symbol_metrics(std::vector<std::string> globs);
    bool ready() const noexcept { return ready_.load(); }
    // The previous process's drain (its .mdagg-drain.json), exported as mdagg_last_drain_*.
    // Set before the event loop runs; without it the series are absent.
    void set_last_drain(double duration_seconds, int exit_code) noexcept {
        last_drain_ = LastDrain{duration_seconds, exit_code};
    }

    // /metrics and /debug/tasks share one copy of the poller table for this long, so that
    // repeated scrapes do not copy 2,000 rows each on the pollers' threads. An operator
    // action or a reload drops it at once.
    static constexpr auto snapshot_ttl = std::chrono::seconds(1);
    void invalidate_snapshot();
    // An operator who paused or cancelled every poller of a source stopped it: checked this
    // often while any poller is paused or cancelled, warned once a minute per source.
    static constexpr auto control_check_every = std::chrono::seconds(5);
    static constexpr auto control_warn_every = std::chrono::seconds(60);

    std::string metrics() override;
    admin::Response healthz() override;
    admin::Response readyz() override;
    admin::Response tasks(const admin::Selector& filter) override;
    admin::Response control(admin::Action action, const admin::Selector& selector) override;

private:
    static PollerFilter filter_for(const admin::Selector& selector);
    void write_process_metrics(PrometheusWriter& w, Clock::time_point now) const;
    void write_loop_metrics(PrometheusWriter& w, Clock::time_point now) const;
    std::optional<std::vector<const PollerSnapshot*>> symbol_metrics_pollers(
        const std::vector<PollerSnapshot>& table) const;
    std::uint64_t polls_finished() const;
    std::shared_ptr<const std::vector<PollerSnapshot>> poller_snapshot();
    void warn_stopped_sources(Clock::time_point now);
    nlohmann::json paused_hosts() const;
    void check_loops(LoopWatch& watch, std::vector<Clock::time_point>& beats);
    bool any_loop_stalled() const;           // any io thread's, now
    std::uint64_t loop_stalls() const;       // episodes of every io thread

    PollerGroup& pollers_;
    const FileSink& sink_;
    const KafkaSink* kafka_ = nullptr;  // issue 16
    const std::chrono::system_clock::time_point started_wall_ = std::chrono::system_clock::now();
    const Clock::time_point started_ = Clock::now();

    mutable std::mutex symbol_metrics_mutex_;
    std::vector<std::string> symbol_metrics_;  // globs; empty = no per-symbol series

    struct LastDrain {
        double duration_seconds;
        int exit_code;
    };
    std::optional<LastDrain> last_drain_;

    std::atomic<bool> ready_{false};
    std::atomic<bool> draining_{false};
    std::atomic<std::int64_t> stall_after_ns_;
    std::atomic<bool> polls_stalled_{false};
    std::atomic<std::uint64_t> poll_stalls_{0};
    std::atomic<Clock::rep> last_progress_{0};  // when the completed count last moved
    std::uint64_t last_completed_ = 0;          // control strand only

    std::mutex snapshot_mutex_;  // held while a snapshot is taken: concurrent scrapes share it
    std::shared_ptr<const std::vector<PollerSnapshot>> snapshot_;
    Clock::time_point snapshot_taken_{};
    std::atomic<std::uint64_t> snapshots_taken_{0};

    Clock::time_point next_control_check_{};                              // control strand only
    struct StoppedWarning {
        Clock::time_point at;
        bool all_cancelled = false;
    };
    std::unordered_map<std::string, StoppedWarning> stopped_warned_;  // control strand only

    LoopWatch::Heartbeat last_beat_;
    // Per io thread (0: main), set by start_loop_watchdog before the loop runs.
    struct ThreadLoop {
        const LoopWatch::Heartbeat* beat = nullptr;
        std::atomic<bool> stalled{false};
        std::atomic<std::uint64_t> stalls{0};
    };
    std::unique_ptr<ThreadLoop[]> loops_;
    std::size_t loop_count_ = 0;
    std::mutex watchdog_mutex_;
    std::condition_variable watchdog_cv_;
    bool watchdog_stop_ = false;
    std::thread watchdog_;
};

}  // namespace mdagg::lifecycle

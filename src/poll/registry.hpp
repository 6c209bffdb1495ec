#pragma once
// The poller table and what hangs off it: the sources' stats slots, the host guards, operator
// control, adding, retiring and freeing pollers, and the snapshots other threads read. Its
// mutex guards the table and each poller's table fields (tags, retired, exited); the pollers'
// poll-path state is not its business.
#include "poller_types.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <atomic>
#include <exception>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace mdagg::detail {

// Where a new poller runs: its executor and the tick scheduler of that executor's io_context.
struct PollerPlace {
    asio::any_io_executor executor;
    TickScheduler* ticks;
};

// What the registry asks of the group that runs the pollers.
class PollerHooks {
public:
    // Under the table's lock: the place of a new poller whose ticks fall `phase` into each
    // `interval`, and the start of its coroutine.
    virtual PollerPlace place(std::chrono::nanoseconds phase, std::chrono::nanoseconds interval) = 0;
    // Under the table's lock: a poller leaves its place (freed after it retired).
    virtual void leave(Poller& p) = 0;
    virtual void start(Poller& p) = 0;
    // On the poller's executor: ends its wait for the next tick now (stop, cancel, retire),
    // and with `abort_poll` its poll in flight too.
    virtual void interrupt(Poller& p, bool abort_poll) = 0;

protected:
    ~PollerHooks() = default;
};

class Registry {
public:
    explicit Registry(PollerHooks& hooks) : hooks_(hooks) {}
    Registry(const Registry&) = delete;
    Registry& operator=(const Registry&) = delete;

    // Set-up: the configured hosts' guards and a poller per (source, symbol), not started.
    void add_configured(const Config& config, const Universe& universe);
    void start_all(std::function<void()> on_all_exited);

    // Reload (see PollerGroup).
    std::shared_ptr<const void> prepare_tls(const std::vector<SourceConfig>& sources);
    bool add(SourceId id, const SourceConfig& source, const HostConfig& host,
             const std::vector<std::pair<std::string, SymbolId>>& symbols,
             const std::vector<HostConfig>& mirror_hosts);
    std::size_t retire(const PollerFilter& filter);
    void set_tags(const SourceConfig& source);
    void set_hosts(const std::vector<HostConfig>& hosts);
    std::vector<SymbolId> symbols_held() const;

    // Operator control: moves every selected poller whose control is in `from` to `to`.
    ControlResult change_control(const PollerFilter& filter, std::initializer_list<PollerControl> from,
                                 PollerControl to);

    // The drain. stop(): no poller starts a new poll, adds are refused; with `abort_polls`
    // the polls in flight are interrupted too.
    void stop(bool abort_polls);
    // A flag, not an Asio cancellation state: set here, synchronously, so no poll starts once
    // stop() returned (a per-poller emit is posted to its executor, behind ticks already queued,
    // each of which would start one more poll). Reading it costs what reading a cancellation
    // state does (6 vs 7 instructions, callgrind, Boost 1.81). The tick wait it must end is
    // ended by interrupt(), posted to each poller.
    bool stopping() const noexcept { return stopping_.load(std::memory_order_acquire); }
    void close_connections(std::function<void()> done);

    // On the poller's executor, once its coroutine returned (and its wheel entries are out).
    void exited(Poller& p);
    // On the poller's executor, after switch_route stored its new route: its priority's
    // reserve moves to the new host (unless paused or cancelled: then it counts nowhere).
    void moved_route(Poller& p);

    // Readers, any thread.
    std::vector<PollerSnapshot> snapshot() const;
    std::array<std::size_t, poller_state_count> state_counts() const;
    PollerGroup::ControlCounts control_counts() const;
    std::vector<std::string> unverified_tls_sources() const;
    std::size_t size() const;
    std::size_t running() const noexcept { return running_.load(); }
    const SourceStats& stats(SourceId source) const;
    std::size_t source_count() const;
    std::string source_name(SourceId source) const;
    std::vector<std::string> route_names(SourceId source) const;
    HostGuard::Status host_status(std::size_t host) const;
    std::vector<std::pair<std::string, HostGuard::Status>> host_statuses() const;
    std::size_t host_count() const;
    std::string host_name(std::size_t host) const;
    std::vector<ServerPause> server_pauses() const;
    std::size_t restore_pauses(const std::vector<ServerPause>& pauses);

private:
    // All under mutex_.
    SourceSlot& slot_for(SourceId id, const SourceConfig& source);
    void add_configured_hosts(const Config& config);
    std::shared_ptr<SourceRuntime> make_runtime(SourceId id, const SourceConfig& source, const HostConfig& host,
                                                const std::vector<HostConfig>& mirror_hosts);
    static std::uint8_t poll_slot_for(SourceSlot& slot, const SourceRuntime& runtime, const std::string& name);
    static std::string host_key(const HostConfig& host);
    std::shared_ptr<HostGuard> guard_for(const HostConfig& host);
    // The host's connect gate, shared like its guard; it goes with the last runtime using it.
    std::shared_ptr<ConnectGate> gate_for(const HostConfig& host);
    // The source's shared SSL context (null for http); throws std::runtime_error naming the
    // source when OpenSSL cannot build it.
    std::shared_ptr<TlsContext> tls_for(const SourceConfig& source);
    void prune_hosts();
    Poller& make_poller(const std::shared_ptr<SourceRuntime>& runtime, SymbolId id, const std::string& name,
                        std::uint8_t priority);
    static void set_priority(Poller& p, std::uint8_t priority);
    static void sync_reserve(Poller& p);
    // A batch poller's members selected by `filter`: all of them changes the request's control;
    // some of them changes theirs, and their entries are dropped (batch.cpp). Counted per member.
    void change_batch_control(Poller& p, const PollerFilter& filter, std::initializer_list<PollerControl> from,
                              PollerControl to, ControlResult& result);
    // One poller per request: each symbol alone, or the batches of a `batch:` source (batch.cpp).
    std::vector<Poller*> make_pollers(const std::shared_ptr<SourceRuntime>& runtime,
                                      const std::vector<std::pair<std::string, SymbolId>>& symbols);
    // Not under mutex_: on the poller's executor, after it exited.
    void erase(Poller* poller);
    // Posts hooks_.interrupt(p, abort_poll) to the poller's executor. Under mutex_, which the
    // freeing of a poller takes: the handler runs before the poller can be freed.
    void post_interrupt(Poller& p, bool abort_poll);

    PollerHooks& hooks_;
    mutable std::mutex mutex_;
    TlsContextCache tls_contexts_;  // one context per distinct tls setting
    std::vector<std::unique_ptr<SourceSlot>> slots_;  // by SourceId
    // One guard per host entry, shared by every source (and reload) that polls that host.
    // A guard whose host the running config no longer names goes with the last poller that
    // used it, and its metric series with it.
    std::map<std::string, std::shared_ptr<HostGuard>, std::less<>> guards_;
    std::map<std::string, std::weak_ptr<ConnectGate>, std::less<>> gates_;
    std::vector<std::string> configured_hosts_;  // keys of the running config's host entries
    std::vector<HostGuard*> hosts_;  // in creation order: Config::hosts first
    std::vector<std::string> host_keys_;
    std::vector<std::unique_ptr<Poller>> pollers_;
    std::atomic<bool> stopping_{false};
    std::atomic<std::size_t> running_{0};  // coroutines not yet returned
    std::function<void()> on_all_exited_;
};

}  // namespace mdagg::detail

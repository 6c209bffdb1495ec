// PollerGroup::Impl: the state behind the facade, and the members the files of src/poll define.
#pragma once

#include <mdagg/log.hpp>

#include "poller_types.hpp"

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <map>
#include <mutex>

namespace mdagg {

struct PollerGroup::Impl {
    explicit Impl(QuoteHandler h) : on_quote(std::move(h)), error_log(std::chrono::seconds(10)) {}

    QuoteHandler on_quote;
    asio::io_context* io = nullptr;
    bool strands = false;  // a strand per poller when the io_context runs on several threads
    // The mutex guards the tables below (not the pollers' poll-path state): reloads and
    // operators change them while the admin server and the supervisor read them.
    mutable std::mutex mutex;
    std::vector<std::unique_ptr<SourceSlot>> slots;  // by SourceId
    // One guard per host entry, shared by every source (and reload) that polls that host.
    // A guard whose host the running config no longer names goes with the last poller that
    // used it, and its metric series with it.
    std::map<std::string, std::shared_ptr<HostGuard>, std::less<>> guards;
    std::vector<std::string> configured_hosts;  // keys of the running config's host entries
    std::vector<HostGuard*> hosts;  // in creation order: Config::hosts first
    std::vector<std::string> host_keys;
    std::vector<std::unique_ptr<Poller>> pollers;
    std::atomic<bool> stopping{false};
    std::atomic<bool> cancelling{false};
    std::atomic<std::size_t> running{0};
    std::function<void()> on_all_exited;
    log::RateLimited error_log;

    // The timer wheel: every poller's tick and poll deadline. With one io thread nothing else
    // touches it; with several, its mutex guards it and it hands each due entry to the
    // poller's strand.
    std::mutex wheel_mutex;
    detail::TimerWheel wheel;
    std::optional<asio::steady_timer> wheel_timer;
    bool wheel_running = false;  // its timer is armed or its handler is running
    std::vector<detail::WheelEntry*> wheel_due;  // reused by the wheel's handler
    // With one io thread, while the wheel's handler fires a round: pollers that have sent
    // their request wait here to start reading, in order. Never written with several threads,
    // where pollers on other threads read the flag.
    bool deferring_reads = false;
    std::vector<std::coroutine_handle<>> deferred_reads;
    struct DeferRead {
        Impl& group;
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> h) { group.deferred_reads.push_back(h); }
        void await_resume() const noexcept {}
    };

    std::unique_lock<std::mutex> lock_wheel() {
        return strands ? std::unique_lock<std::mutex>(wheel_mutex) : std::unique_lock<std::mutex>();
    }

    // Under the wheel's lock. Starts the wheel's timer when the wheel was idle.
    void wheel_add(PollerEntry& e, std::int64_t due_ms) {
        wheel.add(e, due_ms);
        if (wheel_running) return;
        wheel_running = true;
        asio::post(io->get_executor(), asio::bind_allocator(detail::PooledAllocator<void>{}, [this] { arm_wheel(); }));
    }

    void arm_wheel();

    void on_wheel(beast::error_code ec);

    // On the poller's executor: its tick came, or its poll ran out of time.
    static void fire(PollerEntry& e);

    // Under the wheel's lock. The posted handler runs before the poller can be freed: freeing
    // is posted to the same strand only after its coroutine returned, which it cannot do
    // before taking its deadline out of the wheel, under this lock.
    void fire_on_strand(PollerEntry& e);

    // One deadline bounds the whole poll: on expiry it cancels whatever socket operation is
    // pending. Cheaper than a timer per operation, and the poll's budget is what matters.
    void arm_deadline(Poller& p, Clock::time_point deadline) {
        p.deadline_expired = false;
        auto lock = lock_wheel();
        p.deadline_entry.generation = ++p.poll_generation;
        wheel_add(p.deadline_entry, grid_ms_ceil(deadline));
    }
    void disarm_deadline(Poller& p) {
        ++p.poll_generation;
        auto lock = lock_wheel();
        wheel.remove(p.deadline_entry);
    }

    // co_await sleep_until_tick(p, t): resumes at t on the 1 ms grid, or sooner from wake().
    struct TickSleep {
        Impl& group;
        Poller& p;
        Clock::time_point due;
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> h) {
            p.tick_waiter = h;
            auto lock = group.lock_wheel();
            group.wheel_add(p.tick_entry, grid_ms_ceil(due));
        }
        void await_resume() const noexcept {}
    };
    TickSleep sleep_until_tick(Poller& p, Clock::time_point due) { return {*this, p, due}; }

    // On the poller's executor: ends its wait for the next tick now (stop, cancel, retire).
    // A poller that is polling, or whose tick is already on its way, needs nothing.
    void wake(Poller& p);

    void record_failure(Poller& p, const detail::PollResult& f);

    // Pauses and breaker changes: one line per change, rate-limited per host and event, since a
    // host flapping every cooldown would otherwise log every second.
    void log_host_event(Poller& p, std::string_view what, PauseReason reason, int status);

    // One poll: connect if needed, GET, read, map, deliver (poll_path.cpp). Never throws for
    // I/O errors. `start` is the tick's wake-up time; the poll's end goes to p.poll_ended.
    Task<void> poll_once(Poller& p, bool probe, Clock::time_point start);
    // The driver: carries out the poll's state machine (poll_fsm.hpp) on a transport.
    template <class Transport>
    Task<void> drive(Poller& p, Transport& conn, bool probe, Clock::time_point start);
    template <class Transport>
    Task<detail::PollAction> connect(Poller& p, Transport& conn);
    template <class Transport>
    std::size_t begin_exchange(Poller& p, Transport& conn, beast::error_code& ec);
    bool interrupted(const Poller& p) const noexcept;
    detail::PollAction failed(Poller& p, const beast::error_code& ec);
    detail::PollAction read_failed(Poller& p, const beast::error_code& ec);
    detail::PollAction parse(Poller& p, beast::flat_buffer& buffer);
    detail::PollAction parse_eof(Poller& p);
    static detail::ParseResult answer(const Poller& p);
    detail::PollAction deliver(Poller& p);
    template <class Transport>
    void carry_out(Poller& p, Transport& conn, const detail::PollAction& a);
    void end_poll(Poller& p, bool probe, Clock::time_point start);

    Task<void> run(Poller& p);

    // The task table's per-poller view of the poll that just finished.
    static void note_outcome(Poller& p, Clock::duration took);

    // Moves every selected poller whose control is in `from` to `to`.
    ControlResult change_control(const PollerFilter& filter, std::initializer_list<PollerControl> from,
                                 PollerControl to);

    void exited();

    SourceSlot& slot_for(SourceId id, const SourceConfig& source);  // under mutex

    static std::string host_key(const HostConfig& host);

    // Under mutex. The guard of a host entry, created on first use.
    std::shared_ptr<HostGuard> guard_for(const HostConfig& host);

    // Under mutex. Frees the guards of hosts the running config does not name and no
    // poller uses (the map holds the only reference).
    void prune_hosts();

    // Under mutex. The poller is not started.
    Poller& make_poller(const std::shared_ptr<SourceRuntime>& runtime, SymbolId id, const std::string& name);

    void spawn(Poller* poller);

    void erase(Poller* poller);
};

}  // namespace mdagg

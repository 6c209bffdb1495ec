#pragma once
// Every poller's tick and poll deadline on one timer wheel, driven by one Asio timer, and the
// hand-off of due entries to the pollers. The one place that knows whether one io thread runs
// the pollers or several:
// - one thread: the wheel is not locked, and in each round the reads wait until every poller
//   due has sent its request (by then most answers are in: no empty recv, no extra wakeup);
// - several: each poller runs on its own strand, the wheel has a mutex, and each due entry is
//   posted to its poller's strand.
#include "poller_types.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <coroutine>
#include <limits>
#include <mutex>
#include <vector>

namespace mdagg::detail {

class TickScheduler {
public:
    TickScheduler(asio::io_context& io, unsigned io_threads);
    TickScheduler(const TickScheduler&) = delete;
    TickScheduler& operator=(const TickScheduler&) = delete;

    // The executor of a new poller: its own strand when several threads run the io_context.
    asio::any_io_executor make_executor();

    // co_await sleep_until(p, t): resumes at t on the 1 ms grid, or sooner from wake().
    struct TickSleep {
        TickScheduler& ticks;
        Poller& p;
        Clock::time_point due;
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> h) {
            p.tick_waiter = h;
            auto lock = ticks.lock();
            ticks.add(p.tick_entry, grid_ms_ceil(due));
        }
        void await_resume() const noexcept {}
    };
    TickSleep sleep_until(Poller& p, Clock::time_point due) { return {*this, p, due}; }

    // On the poller's executor. One deadline bounds the whole poll: on expiry it sets
    // p.deadline_expired and cancels whatever socket operation is pending. Cheaper than a timer
    // per operation, and the poll's budget is what matters.
    void arm_deadline(Poller& p, Clock::time_point deadline) {
        p.deadline_expired = false;
        auto guard = lock();
        p.deadline_entry.generation = ++p.poll_generation;
        add(p.deadline_entry, grid_ms_ceil(deadline));
    }
    void disarm_deadline(Poller& p) {
        ++p.poll_generation;
        auto guard = lock();
        wheel_.remove(p.deadline_entry);
    }

    // A hedged poller's hedge entry (PollerHedge::entry): the hedge's due time, then its leg's
    // deadline. On expiry the scheduler calls `on_hedge(p)` on the poller's executor.
    void arm_hedge(Poller& p, Clock::time_point at) {
        auto guard = lock();
        p.hedge->entry.generation = ++p.hedge->generation;
        add(p.hedge->entry, grid_ms_ceil(at));
    }
    void disarm_hedge(Poller& p) {
        ++p.hedge->generation;
        auto guard = lock();
        wheel_.remove(p.hedge->entry);
    }
    void set_hedge_handler(void (*on_hedge)(void*, Poller&), void* context) noexcept {
        on_hedge_ = on_hedge;
        hedge_context_ = context;
    }

    // True while the wheel's round fires on the one io thread: a poller that has sent its
    // request then co_awaits defer_read() and starts reading once the round has fired.
    bool deferring_reads() const noexcept { return deferring_reads_; }
    struct DeferRead {
        TickScheduler& ticks;
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> h) { ticks.deferred_reads_.push_back(h); }
        void await_resume() const noexcept {}
    };
    DeferRead defer_read() { return {*this}; }

    // On the poller's executor: ends its wait for the next tick now (stop, cancel, retire).
    // A poller that is polling, or whose tick is already on its way, needs nothing.
    void wake(Poller& p);
    // On the poller's executor, once its coroutine returned: nothing of it stays in the wheel
    // (a poll that threw left its deadline there), so nothing is posted to it any more.
    void forget(Poller& p);

private:
    // With one io thread nothing else touches the wheel: no lock.
    std::unique_lock<std::mutex> lock() {
        return strands_ ? std::unique_lock<std::mutex>(mutex_) : std::unique_lock<std::mutex>();
    }
    // Under the lock. Starts the wheel's timer when the wheel was idle; with one io thread,
    // brings it forward when it sleeps past the new entry (between rounds: a round re-arms
    // after it fired).
    void add(PollerEntry& e, std::int64_t due_ms) {
        wheel_.add(e, due_ms);
        if (running_) {
            if (!strands_ && due_ms < armed_ms_ && waits_ > 0) arm();
            return;
        }
        running_ = true;
        asio::post(io_.get_executor(), asio::bind_allocator(PooledAllocator<void>{}, [this] { arm(); }));
    }
    void arm();
    void on_timer(beast::error_code ec);
    void fire_round();
    void fire(PollerEntry& e);
    void fire_on_strand(PollerEntry& e);

    asio::io_context& io_;
    const bool strands_;  // a strand per poller: handlers of one poller could run on two threads
    std::mutex mutex_;    // guards the wheel and running_ with several threads
    TimerWheel wheel_;
    asio::steady_timer timer_;
    bool running_ = false;  // the timer is armed or its handler is running
    // One io thread: the timer sleeps to the wheel's next busy millisecond (armed_ms_), not to
    // the next millisecond: a shard whose pollers are due every few ms does not wake in between.
    // waits_ counts the waits pending, so a wait cancelled by bringing the timer forward is
    // told from the group going away. Several threads keep the 1 ms beat (the wheel's next
    // busy slot would be read under the lock while other threads add to it).
    std::int64_t armed_ms_ = std::numeric_limits<std::int64_t>::max();
    unsigned waits_ = 0;
    std::vector<WheelEntry*> due_;  // reused by each round
    // One io thread only (several threads never write them, where pollers on other threads
    // would read the flag): pollers waiting to read until the round has fired, in order.
    bool deferring_reads_ = false;
    std::vector<std::coroutine_handle<>> deferred_reads_;
    void (*on_hedge_)(void*, Poller&) = nullptr;
    void* hedge_context_ = nullptr;
};

}  // namespace mdagg::detail

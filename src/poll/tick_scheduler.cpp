#include "tick_scheduler.hpp"

#include <boost/asio/execution/allocator.hpp>
#include <boost/asio/execution/blocking.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/require.hpp>
#include <boost/asio/strand.hpp>

namespace mdagg::detail {

TickScheduler::TickScheduler(asio::io_context& io, unsigned io_threads)
    : io_(io), strands_(io_threads > 1), timer_(io) {}

asio::any_io_executor TickScheduler::make_executor() {
    return strands_ ? asio::any_io_executor(asio::make_strand(io_)) : asio::any_io_executor(io_.get_executor());
}

void TickScheduler::arm() {
    auto next = std::chrono::floor<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count() + 1;
    if (!strands_) next = std::max(next, wheel_.next_busy_ms());
    armed_ms_ = next;
    ++waits_;
    timer_.expires_at(Clock::time_point(std::chrono::milliseconds(next)));  // cancels a wait pending
    timer_.async_wait(asio::bind_allocator(PooledAllocator<void>{}, [this](beast::error_code ec) { on_timer(ec); }));
}

void TickScheduler::on_timer(beast::error_code ec) {
    if (--waits_ > 0) return;  // brought forward: the later wait is pending
    armed_ms_ = std::numeric_limits<std::int64_t>::max();
    if (ec) {  // the group is going away
        auto guard = lock();
        running_ = false;
        return;
    }
    fire_round();
    {
        auto guard = lock();
        if (wheel_.size() == 0) {  // nothing waits: idle until the next add
            running_ = false;
            return;
        }
    }
    arm();
}

void TickScheduler::fire_round() {
    const auto now_ms = std::chrono::floor<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
    due_.clear();
    {
        auto guard = lock();
        wheel_.advance(now_ms, due_);
        if (strands_) {
            // Each poller's state belongs to its strand: hand the entries over there.
            for (auto* e : due_) fire_on_strand(static_cast<PollerEntry&>(*e));
            due_.clear();
        }
    }
    if (strands_) return;
    // One io thread: the entries are still here, to fire in two phases.
    deferring_reads_ = true;
    for (auto* e : due_) fire(static_cast<PollerEntry&>(*e));
    deferring_reads_ = false;
    for (auto h : deferred_reads_) h.resume();
    deferred_reads_.clear();
}

// On the poller's executor: its tick came, or its poll ran out of time.
void TickScheduler::fire(PollerEntry& e) {
    Poller& p = *e.poller;
    if (e.hedge) {
        on_hedge_(hedge_context_, p);
        return;
    }
    if (!e.deadline) {
        std::exchange(p.tick_waiter, {}).resume();
        return;
    }
    p.deadline_expired = true;
    p.cancel_io();  // the poll's pending operation ends with an error
}

// Under the lock. The handler runs before the poller can be freed: freeing is posted to the
// same strand only after its coroutine returned, which it cannot do before taking its deadline
// out of the wheel (forget), under this lock.
// Handed to the strand's own type, not through any_io_executor: the type erasure copies the
// executor per post and drops the handler's pooled allocator (any_io_executor has no allocator
// property), so the strand's operations came from Asio's per-thread cache, which the thread
// firing the wheel empties and the other fills: a malloc per tick.
// execute() with blocking.never is post() without its work_dispatcher: post wraps the handler
// in one that tracks work on yet another copy of the strand and, when the strand runs it,
// dispatches the handler through the strand a second time. The strand's invoker already keeps
// the io_context's work counted while the handler waits, and blocking.never still never runs it
// here, under the wheel's lock.
void TickScheduler::fire_on_strand(PollerEntry& e) {
    Poller* p = e.poller;
    const auto& strand = *p->executor.target<asio::strand<asio::io_context::executor_type>>();
    const auto ex = asio::prefer(asio::require(strand, asio::execution::blocking.never),
                                 asio::execution::allocator(PooledAllocator<void>{}));
    if (!e.deadline && !e.hedge) {
        ex.execute([this, p] { fire(p->tick_entry); });
        return;
    }
    if (e.hedge) {  // stale when re-armed or disarmed meanwhile, as a deadline
        ex.execute([this, p, generation = e.generation] {
            if (p->hedge->generation == generation) fire(p->hedge->entry);
        });
        return;
    }
    // A deadline whose poll ended meanwhile is stale: the generation tells.
    ex.execute([this, p, generation = e.generation] {
        if (p->poll_generation == generation) fire(p->deadline_entry);
    });
}

void TickScheduler::wake(Poller& p) {
    {
        auto guard = lock();
        if (!p.tick_entry.linked()) return;
        wheel_.remove(p.tick_entry);
    }
    std::exchange(p.tick_waiter, {}).resume();
}

void TickScheduler::forget(Poller& p) {
    auto guard = lock();
    wheel_.remove(p.tick_entry);
    wheel_.remove(p.deadline_entry);
    if (p.hedge) wheel_.remove(p.hedge->entry);
}

}  // namespace mdagg::detail

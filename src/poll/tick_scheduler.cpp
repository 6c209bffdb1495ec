// The timer wheel's Asio timer and the hand-off of due entries to the pollers.
#include "poller_group.hpp"

namespace mdagg {

void PollerGroup::Impl::arm_wheel() {
    const auto next = std::chrono::floor<std::chrono::milliseconds>(Clock::now().time_since_epoch()) +
                      std::chrono::milliseconds(1);
    wheel_timer->expires_at(Clock::time_point(next));
    wheel_timer->async_wait(asio::bind_allocator(detail::PooledAllocator<void>{},
                                                 [this](beast::error_code ec) { on_wheel(ec); }));
}

void PollerGroup::Impl::on_wheel(beast::error_code ec) {
    if (ec) {  // the group is going away
        auto lock = lock_wheel();
        wheel_running = false;
        return;
    }
    const auto now_ms = std::chrono::floor<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
    wheel_due.clear();
    {
        auto lock = lock_wheel();
        wheel.advance(now_ms, wheel_due);
        if (strands) {
            // Each poller's state belongs to its strand: hand the entries over there.
            for (auto* e : wheel_due) fire_on_strand(static_cast<PollerEntry&>(*e));
            wheel_due.clear();
        }
    }
    if (!strands) {  // one io thread: the entries are still here, to fire in two phases
        deferring_reads = true;
        for (auto* e : wheel_due) fire(static_cast<PollerEntry&>(*e));
        deferring_reads = false;
        for (auto h : deferred_reads) h.resume();
        deferred_reads.clear();
    }
    {
        auto lock = lock_wheel();
        if (wheel.size() == 0) {  // nothing waits: idle until the next wheel_add
            wheel_running = false;
            return;
        }
    }
    arm_wheel();
}

// On the poller's executor: its tick came, or its poll ran out of time.
void PollerGroup::Impl::fire(PollerEntry& e) {
    Poller& p = *e.poller;
    if (!e.deadline) {
        std::exchange(p.tick_waiter, {}).resume();
        return;
    }
    p.deadline_expired = true;
    p.connection.cancel();  // the poll's pending operation ends with an error
}

// Under the wheel's lock. The posted handler runs before the poller can be freed: freeing
// is posted to the same strand only after its coroutine returned, which it cannot do
// before taking its deadline out of the wheel, under this lock.
void PollerGroup::Impl::fire_on_strand(PollerEntry& e) {
    Poller* p = e.poller;
    if (!e.deadline) {
        asio::post(p->executor, asio::bind_allocator(detail::PooledAllocator<void>{}, [p] { fire(p->tick_entry); }));
        return;
    }
    // A deadline whose poll ended meanwhile is stale: the generation tells.
    asio::post(p->executor, asio::bind_allocator(detail::PooledAllocator<void>{}, [p, generation = e.generation] {
                   if (p->poll_generation == generation) fire(p->deadline_entry);
               }));
}

// On the poller's executor: ends its wait for the next tick now (stop, cancel, retire).
// A poller that is polling, or whose tick is already on its way, needs nothing.
void PollerGroup::Impl::wake(Poller& p) {
    {
        auto lock = lock_wheel();
        if (!p.tick_entry.linked()) return;
        wheel.remove(p.tick_entry);
    }
    std::exchange(p.tick_waiter, {}).resume();
}

}  // namespace mdagg

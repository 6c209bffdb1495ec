// PollerGroup::Impl: the group's roles wired together (a tick scheduler, a registry) and the
// poll path, whose members the files of src/poll define.
#pragma once

#include <mdagg/observe.hpp>

#include <nlohmann/json.hpp>  // the log lines' fields (log.hpp declares json only)

#include "poller_types.hpp"
#include "registry.hpp"
#include "tick_scheduler.hpp"

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <memory>
#include <span>
#include <vector>
#include <exception>

namespace mdagg {

struct PollerGroup::Impl final : detail::PollerHooks {
    // One io_context (run by `io_threads` threads), or shards: io_contexts each run by one
    // thread, each with its own tick scheduler (the one-thread mode of each: no strand per
    // poller, no lock on the wheel, deferred reads); a new poller goes to the shard that owns its
    // phase (place()).
    Impl(std::span<asio::io_context* const> contexts, unsigned io_threads, QuoteHandler h)
        : on_quote(std::move(h)), error_log(std::chrono::seconds(10)) {
        const unsigned threads_each = contexts.size() > 1 ? 1 : io_threads;
        for (auto* io : contexts) {
            ticks.push_back(std::make_unique<detail::TickScheduler>(*io, threads_each));
            ticks.back()->set_hedge_handler(&Impl::on_hedge_entry, this);
        }
        shard_pollers.assign(ticks.size(), 0);
    }

    QuoteHandler on_quote;
    log::RateLimited error_log;
    std::vector<std::unique_ptr<detail::TickScheduler>> ticks;  // one per io_context
    std::vector<std::size_t> shard_pollers;  // each shard's pollers, under the registry's lock
    detail::Registry registry{*this};
    // Set once by the drain's cancel_in_flight(), before it interrupts each poller with
    // interrupt(p, true). The poll path reads it before every wait (interrupted()): a cancel
    // posted while a poll was not suspended on the socket found nothing to cancel. A flag rather
    // than a cancellation slot emplaced for each socket wait: that costs ~227 instructions
    // (emplace + clear, callgrind, Boost 1.81) and a poll waits 3-4 times: ~7% of the ~12,200 a
    // poll costs; the check costs 6.
    std::atomic<bool> cancelling{false};

    // detail::PollerHooks, for the registry.
    // A poller stays on its shard for life (its hedge legs and routes with it): phase_shard
    // picks the shard whose block of the interval holds its phase.
    detail::PollerPlace place(std::chrono::nanoseconds phase, std::chrono::nanoseconds interval) override {
        const auto k = phase_shard(phase, interval, shard_pollers);
        ++shard_pollers[k];
        return {ticks[k]->make_executor(), ticks[k].get()};
    }
    void leave(Poller& p) override {
        for (std::size_t k = 0; k < ticks.size(); ++k)
            if (ticks[k].get() == p.ticks) --shard_pollers[k];
    }
    void start(Poller& p) override;
    void interrupt(Poller& p, bool abort_poll) override;

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
    // The two legs of a poll for the one driver, detail::drive_leg (poll_leg.hpp): the
    // primary's (poll_path.cpp) and a hedge's (hedge_leg.cpp).
    struct PrimaryLeg;
    struct HedgeLeg;
    bool interrupted(const Poller& p) const noexcept;
    detail::PollAction failed(Poller& p, const beast::error_code& ec);
    detail::PollAction read_failed(Poller& p, const beast::error_code& ec);
    detail::PollAction deliver(Poller& p);
    // A batch answer: each member's entry to its symbol (batch.cpp).
    detail::PollAction deliver_batch(Poller& p);
    void log_refused_entries(const Poller& p, const BatchCounts& counts);
    void refresh_batch_target(Poller& p);
    void end_poll(Poller& p, bool probe, Clock::time_point start);

    Task<void> run(Poller& p);
    Task<void> run_ticks(Poller& p);
    // Skipped ticks, by the admission that refused them.
    // A refused by the bucket ages the poller's priority (HostGuard::admit).
    static void count_refused(Poller& p, Admission admission);
    // Between polls: moves the poller to `route` (failover.hpp) when it is elsewhere: closes
    // its connection, builds its request for that host, counts and logs the move.
    void switch_route(Poller& p, std::size_t route);
    // After a probe's poll (route_switch.cpp): when it failed with time left in the tick, the
    // tick goes on to the route choose_route now gives it (failover.hpp, fall_back_after_probe).
    Task<void> after_probe(Poller& p, Clock::time_point woke);
    // run(): a poller's life: wait for its tick, admit the poll (operator pause, backoff,
    // max_in_flight, the host's guard), poll, until the drain, an operator or a reload stops it.
    // on_exit(): on the poller's executor, once run() returned or threw.
    void on_exit(Poller& p, std::exception_ptr error);

    // The task table's per-poller view of the poll that just finished.
    static void note_outcome(Poller& p, Clock::duration took);

    // Hedged requests (hedge_leg.cpp): the primary's hooks (hedge_begin at the poll's start,
    // hedge_deliver at its answer, take_hedge when the hedge's win ended its wait, hedge_end at
    // its end, hedge_join at run()'s end) and the hedge leg's steps.
    static void on_hedge_entry(void* impl, Poller& p);
    void hedge_begin(Poller& p, Clock::time_point start);
    void hedge_due(Poller& p);
    void hedge_send(Poller& p, Clock::time_point now);
    Task<void> hedge_leg(Poller& p);
    bool hedge_stopped(const Poller& p) const noexcept;
    detail::PollAction hedge_failed(Poller& p, const beast::error_code& ec);
    detail::PollAction hedge_answered(Poller& p);
    void hedge_finish(Poller& p);
    void adopt_hedge_answer(Poller& p);
    bool hedge_answer_waiting(const Poller& p) const noexcept;
    detail::PollAction take_hedge(Poller& p);
    detail::PollAction hedge_deliver(Poller& p);
    void settle_loser(Poller& p);
    void hedge_end(Poller& p);
    Task<void> hedge_join(Poller& p, bool poll_threw);
};

}  // namespace mdagg

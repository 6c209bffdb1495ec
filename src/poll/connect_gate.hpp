#pragma once
// How many connects (TCP connect plus TLS handshake) run at once against one host, and the
// queue of pollers waiting for their turn.
//
// Without it, 2,000 pollers connecting at once to a venue that is slow to accept (or
// saturated) all start handshakes together; the server works through them behind its
// connected clients' requests, many exceed connect_timeout, the client aborts them (the
// server's work thrown away), backs off and tries again, and the same pollers lose again:
// a metastable storm in which a third of the symbols never get a quote. Here at most
// `limit()` connects per host are in progress; the others wait in FIFO order, and their
// connect budget starts when their turn comes, so a waiter never burns its deadline in our
// queue and every poller eventually connects. The limit adapts like TCP's window (AIMD): a
// connect cut by its deadline halves it (once per round of attempts, so a burst of timeouts
// counts once), a completed one widens it by one, up to `max`.
//
// Sans-io: the gate only keeps the counts and the queue, under its own mutex (pollers on
// several strands share it). Whoever calls enter/leave/cancel resumes the waiters it is
// handed (connect_gate_wait.hpp does so on each waiter's executor).
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace mdagg::detail {

class ConnectGate {
public:
    // One poller's place: intrusive, so queueing allocates nothing and a cancel is O(1).
    struct Waiter {
        Waiter* prev = nullptr;
        Waiter* next = nullptr;
        enum class State : std::uint8_t { idle, queued, holding } state = State::idle;
        std::uint64_t round = 0;  // the gate's round when its turn came
        void* context = nullptr;  // the caller's, to resume it (untouched by the gate)
    };
    // What a turn ended with, for the limit.
    enum class Outcome : std::uint8_t {
        connected,  // handshake done: the host keeps up, widen
        timed_out,  // cut by connect_timeout: the host is slow to accept, narrow
        neutral,    // refused, verify failure, cancelled: says nothing about its load
    };

    static constexpr unsigned default_max = 64;

    explicit ConnectGate(unsigned max = default_max) : max_(max < 1 ? 1 : max), limit_(max_) {}
    ConnectGate(const ConnectGate&) = delete;
    ConnectGate& operator=(const ConnectGate&) = delete;

    // Takes a slot when one is free and nobody waits; false otherwise (nothing queued).
    bool try_enter(Waiter& w);
    // Takes a slot, or queues `w` at the tail: true when it holds a slot now.
    bool enter(Waiter& w);
    // `w` ends its turn. Appends to `granted` the waiters whose turn came (already holding
    // their slots): the caller resumes each.
    void leave(Waiter& w, Outcome outcome, std::vector<Waiter*>& granted);
    // Takes a queued `w` out of the queue: true if it was queued (the caller resumes it, not
    // granted); false when it holds a slot already (its resumption is on its way, or it runs).
    bool cancel(Waiter& w);

    unsigned limit() const;
    std::size_t in_progress() const;
    std::size_t queued() const;
    std::uint64_t waits() const;  // turns that had to queue, since the gate was made

private:
    void push_back(Waiter& w);
    void unlink(Waiter& w);
    void grant(Waiter& w);
    bool has_room() const noexcept { return static_cast<double>(in_progress_) < limit_floor(); }
    double limit_floor() const noexcept;

    mutable std::mutex mutex_;
    const unsigned max_;
    double limit_;
    std::size_t in_progress_ = 0;
    std::size_t queued_ = 0;
    std::uint64_t round_ = 0;  // bumped by each cut: the timeouts of one round cut once
    std::uint64_t waits_ = 0;
    Waiter* head_ = nullptr;
    Waiter* tail_ = nullptr;
};

}  // namespace mdagg::detail

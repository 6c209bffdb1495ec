#pragma once
// A poller's turn at its host's ConnectGate (connect_gate.hpp), for the driver's coroutine:
// take a slot now, or co_await one (FIFO), and give it back with the connect's outcome. The
// waiting poller is resumed on its own executor, so pollers on other strands may grant it.
#include "connect_gate.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/error_code.hpp>

#include <coroutine>
#include <vector>

namespace mdagg::detail {

// One per poller; touched only on the poller's executor (the gate has its own lock).
struct ConnectSeat {
    ConnectGate::Waiter waiter;
    ConnectGate* gate = nullptr;  // while queued or holding a slot
    std::coroutine_handle<> resume_to;
    const boost::asio::any_io_executor* executor = nullptr;

    bool queued() const noexcept { return gate && waiter.state == ConnectGate::Waiter::State::queued; }

    // A queued poller leaves the queue and resumes without a slot (drain, operator cancel).
    void cancel_wait() {
        if (!gate || !gate->cancel(waiter)) return;
        gate = nullptr;
        boost::asio::post(*executor, [h = resume_to] { h.resume(); });
    }
};

// The driver's side: RAII, so a coroutine destroyed mid-connect gives its slot back.
class ConnectTurn {
public:
    ConnectTurn(ConnectGate& gate, ConnectSeat& seat) : gate_(gate), seat_(seat) {}
    ~ConnectTurn() { end(); }
    ConnectTurn(const ConnectTurn&) = delete;
    ConnectTurn& operator=(const ConnectTurn&) = delete;

    // A slot at once, when one is free and nobody is queued.
    bool try_now() {
        if (!gate_.try_enter(seat_.waiter)) return false;
        seat_.gate = &gate_;
        return true;
    }

    // co_await wait(executor): true once this poller holds a slot, false when cancel_wait()
    // took it out of the queue.
    struct Wait {
        ConnectTurn& turn;
        const boost::asio::any_io_executor& executor;
        bool await_ready() const noexcept { return false; }
        bool await_suspend(std::coroutine_handle<> h) {
            ConnectSeat& seat = turn.seat_;
            seat.resume_to = h;
            seat.executor = &executor;
            seat.waiter.context = &seat;
            seat.gate = &turn.gate_;  // before enter(): a grant may resume us on another thread
            return !turn.gate_.enter(seat.waiter);
        }
        bool await_resume() const noexcept { return turn.holding(); }
    };
    Wait wait(const boost::asio::any_io_executor& executor) { return {*this, executor}; }

    bool holding() const noexcept {
        return seat_.gate && seat_.waiter.state == ConnectGate::Waiter::State::holding;
    }
    void set_outcome(ConnectGate::Outcome o) noexcept { outcome_ = o; }

    // Gives the slot back (or leaves the queue) and resumes the waiters whose turn came.
    void end() {
        if (!seat_.gate) return;
        if (seat_.queued()) {
            gate_.cancel(seat_.waiter);
            seat_.gate = nullptr;
            return;
        }
        thread_local std::vector<ConnectGate::Waiter*> granted;
        granted.clear();
        gate_.leave(seat_.waiter, outcome_, granted);
        seat_.gate = nullptr;
        for (ConnectGate::Waiter* w : granted) {
            auto& next = *static_cast<ConnectSeat*>(w->context);
            boost::asio::post(*next.executor, [h = next.resume_to] { h.resume(); });
        }
    }

private:
    ConnectGate& gate_;
    ConnectSeat& seat_;
    ConnectGate::Outcome outcome_ = ConnectGate::Outcome::neutral;
};

// The poll that waited its turn finds the host's breaker opened meanwhile: it ends without
// connecting (a `connect` failure that does not count against the breaker again).
const boost::system::error_category& connect_gate_category() noexcept;
inline boost::system::error_code breaker_opened_while_queued() noexcept {
    return {1, connect_gate_category()};
}

}  // namespace mdagg::detail

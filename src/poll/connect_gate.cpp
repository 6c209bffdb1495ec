#include "connect_gate.hpp"

#include "connect_turn.hpp"

#include <algorithm>
#include <cmath>

namespace mdagg::detail {

namespace {

class ConnectGateCategory final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "mdagg.connect_gate"; }
    std::string message(int) const override {
        return "not connected: the host's circuit breaker opened while the poll waited its turn to connect";
    }
};

}  // namespace

const boost::system::error_category& connect_gate_category() noexcept {
    static const ConnectGateCategory c;
    return c;
}

bool ConnectGate::try_enter(Waiter& w) {
    std::lock_guard lock(mutex_);
    if (head_ || !has_room()) return false;
    grant(w);
    return true;
}

bool ConnectGate::enter(Waiter& w) {
    std::lock_guard lock(mutex_);
    if (!head_ && has_room()) {
        grant(w);
        return true;
    }
    push_back(w);
    ++waits_;
    return false;
}

void ConnectGate::leave(Waiter& w, Outcome outcome, std::vector<Waiter*>& granted) {
    std::lock_guard lock(mutex_);
    if (w.state != Waiter::State::holding) return;
    w.state = Waiter::State::idle;
    --in_progress_;
    if (outcome == Outcome::connected) {
        limit_ = std::min<double>(max_, limit_ + 1);
    } else if (outcome == Outcome::timed_out && w.round == round_) {
        // Only attempts started since the last cut count: the others saw the old limit.
        limit_ = std::max(1.0, limit_floor() / 2);
        ++round_;
    }
    while (head_ && has_room()) {
        Waiter& next = *head_;
        unlink(next);
        grant(next);
        granted.push_back(&next);
    }
}

bool ConnectGate::cancel(Waiter& w) {
    std::lock_guard lock(mutex_);
    if (w.state != Waiter::State::queued) return false;
    unlink(w);
    return true;
}

unsigned ConnectGate::limit() const {
    std::lock_guard lock(mutex_);
    return static_cast<unsigned>(limit_floor());
}
std::size_t ConnectGate::in_progress() const {
    std::lock_guard lock(mutex_);
    return in_progress_;
}
std::size_t ConnectGate::queued() const {
    std::lock_guard lock(mutex_);
    return queued_;
}
std::uint64_t ConnectGate::waits() const {
    std::lock_guard lock(mutex_);
    return waits_;
}

double ConnectGate::limit_floor() const noexcept { return std::floor(limit_); }

void ConnectGate::push_back(Waiter& w) {
    w.state = Waiter::State::queued;
    w.prev = tail_;
    w.next = nullptr;
    (tail_ ? tail_->next : head_) = &w;
    tail_ = &w;
    ++queued_;
}

void ConnectGate::unlink(Waiter& w) {
    (w.prev ? w.prev->next : head_) = w.next;
    (w.next ? w.next->prev : tail_) = w.prev;
    w.prev = w.next = nullptr;
    w.state = Waiter::State::idle;
    --queued_;
}

void ConnectGate::grant(Waiter& w) {
    w.state = Waiter::State::holding;
    w.round = round_;
    ++in_progress_;
}

}  // namespace mdagg::detail

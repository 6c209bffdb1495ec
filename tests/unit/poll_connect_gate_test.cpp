// The per-host connect gate without sockets: how many connects run at once, the FIFO queue,
// cancels, and the limit's adaptation to timeouts (connect_gate.hpp); and the poll state
// machine's connect budget restarting when a queued connect's turn comes.
#include "connect_gate.hpp"
#include "poll_fsm.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <vector>

using namespace std::chrono_literals;
using mdagg::detail::ConnectGate;
using mdagg::detail::PollAction;
using mdagg::detail::PollFsm;
using Waiter = ConnectGate::Waiter;
using Outcome = ConnectGate::Outcome;

namespace {

std::vector<Waiter*> leave(ConnectGate& gate, Waiter& w, Outcome o) {
    std::vector<Waiter*> granted;
    gate.leave(w, o, granted);
    return granted;
}

TEST(ConnectGate, AdmitsUpToTheLimitThenQueuesInOrder) {
    ConnectGate gate(2);
    std::deque<Waiter> w(5);
    EXPECT_TRUE(gate.try_enter(w[0]));
    EXPECT_TRUE(gate.enter(w[1]));
    EXPECT_FALSE(gate.try_enter(w[2]));  // full: try_enter queues nothing
    EXPECT_EQ(gate.queued(), 0u);
    EXPECT_FALSE(gate.enter(w[2]));
    EXPECT_FALSE(gate.enter(w[3]));
    EXPECT_FALSE(gate.enter(w[4]));
    EXPECT_EQ(gate.in_progress(), 2u);
    EXPECT_EQ(gate.queued(), 3u);
    EXPECT_EQ(gate.waits(), 3u);

    // Each slot given back goes to the head of the queue, in the order they came.
    auto granted = leave(gate, w[1], Outcome::neutral);
    ASSERT_EQ(granted.size(), 1u);
    EXPECT_EQ(granted[0], &w[2]);
    EXPECT_EQ(w[2].state, Waiter::State::holding);
    granted = leave(gate, w[0], Outcome::neutral);
    ASSERT_EQ(granted.size(), 1u);
    EXPECT_EQ(granted[0], &w[3]);
    EXPECT_EQ(gate.queued(), 1u);
    EXPECT_EQ(gate.in_progress(), 2u);
}

TEST(ConnectGate, ANewcomerDoesNotOvertakeTheQueue) {
    ConnectGate gate(1);
    Waiter a, b, c;
    ASSERT_TRUE(gate.enter(a));
    ASSERT_FALSE(gate.enter(b));
    // A slot frees and goes to b at once: c, arriving after, waits behind it.
    auto granted = leave(gate, a, Outcome::neutral);
    ASSERT_EQ(granted, std::vector<Waiter*>{&b});
    EXPECT_FALSE(gate.try_enter(c));
    EXPECT_FALSE(gate.enter(c));
    EXPECT_EQ(leave(gate, b, Outcome::neutral), std::vector<Waiter*>{&c});
}

TEST(ConnectGate, ACancelledWaiterLeavesTheQueueAndIsNeverGranted) {
    ConnectGate gate(1);
    Waiter a, b, c, d;
    ASSERT_TRUE(gate.enter(a));
    ASSERT_FALSE(gate.enter(b));
    ASSERT_FALSE(gate.enter(c));
    ASSERT_FALSE(gate.enter(d));
    EXPECT_TRUE(gate.cancel(c));   // from the middle
    EXPECT_FALSE(gate.cancel(c));  // once
    EXPECT_EQ(c.state, Waiter::State::idle);
    EXPECT_FALSE(gate.cancel(a));  // holding: its turn runs, a cancel cannot take it back
    EXPECT_EQ(gate.queued(), 2u);
    EXPECT_EQ(leave(gate, a, Outcome::neutral), std::vector<Waiter*>{&b});
    EXPECT_EQ(leave(gate, b, Outcome::neutral), std::vector<Waiter*>{&d});
    EXPECT_TRUE(leave(gate, d, Outcome::neutral).empty());
    EXPECT_EQ(gate.in_progress(), 0u);
    EXPECT_EQ(gate.queued(), 0u);
    // The tail can be cancelled too, and the queue still works after.
    ASSERT_TRUE(gate.enter(a));
    ASSERT_FALSE(gate.enter(b));
    EXPECT_TRUE(gate.cancel(b));
    EXPECT_TRUE(leave(gate, a, Outcome::neutral).empty());
    EXPECT_TRUE(gate.enter(b));
}

TEST(ConnectGate, LeavingTwiceOrWithoutASlotChangesNothing) {
    ConnectGate gate(1);
    Waiter a, b;
    ASSERT_TRUE(gate.enter(a));
    ASSERT_FALSE(gate.enter(b));
    EXPECT_TRUE(leave(gate, b, Outcome::connected).empty());  // queued, not holding
    EXPECT_EQ(gate.in_progress(), 1u);
    EXPECT_EQ(leave(gate, a, Outcome::neutral).size(), 1u);
    EXPECT_TRUE(leave(gate, a, Outcome::neutral).empty());
    EXPECT_EQ(gate.in_progress(), 1u);  // b's
}

TEST(ConnectGate, TimeoutsOfOneRoundHalveTheLimitOnce) {
    ConnectGate gate(8);
    std::deque<Waiter> w(8);
    for (auto& x : w) ASSERT_TRUE(gate.enter(x));
    // All eight started under the limit of 8 and all time out: one cut, not eight.
    for (auto& x : w) leave(gate, x, Outcome::timed_out);
    EXPECT_EQ(gate.limit(), 4u);
    // The next round started after the cut: its timeout cuts again.
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(gate.enter(w[i]));
    EXPECT_FALSE(gate.enter(w[4]));
    for (int i = 0; i < 4; ++i) leave(gate, w[i], Outcome::timed_out);
    EXPECT_EQ(gate.limit(), 2u);
    EXPECT_EQ(gate.in_progress(), 1u);  // w[4], granted by the first leave
}

TEST(ConnectGate, TheLimitNeverFallsBelowOneAndGrowsBackWithSuccesses) {
    ConnectGate gate(4);
    Waiter a;
    for (int i = 0; i < 10; ++i) {
        ASSERT_TRUE(gate.enter(a));
        leave(gate, a, Outcome::timed_out);
    }
    EXPECT_EQ(gate.limit(), 1u);  // one connect at a time still goes: progress never stops
    ASSERT_TRUE(gate.enter(a));
    leave(gate, a, Outcome::neutral);  // a refused connect says nothing of the load
    EXPECT_EQ(gate.limit(), 1u);
    for (int i = 0; i < 10; ++i) {
        ASSERT_TRUE(gate.enter(a));
        leave(gate, a, Outcome::connected);
    }
    EXPECT_EQ(gate.limit(), 4u);  // capped at its maximum
}

TEST(ConnectGate, AWiderLimitGrantsSeveralWaitersAtOnce) {
    ConnectGate gate(4);
    std::deque<Waiter> w(6);
    ASSERT_TRUE(gate.enter(w[0]));
    leave(gate, w[0], Outcome::timed_out);  // 4 -> 2
    ASSERT_EQ(gate.limit(), 2u);
    ASSERT_TRUE(gate.enter(w[0]));
    ASSERT_TRUE(gate.enter(w[1]));
    for (int i = 2; i < 6; ++i) ASSERT_FALSE(gate.enter(w[i]));
    // A success widens to 3: its own slot and the new one go to the next two in line.
    auto granted = leave(gate, w[0], Outcome::connected);
    EXPECT_EQ(granted, (std::vector<Waiter*>{&w[2], &w[3]}));
    EXPECT_EQ(gate.in_progress(), 3u);
}

TEST(ConnectGate, ManyPollersAllConnectEventually) {
    // 2,000 pollers, a gate of 64, a host that times out every third connect: every poller
    // gets its turn, and no more than the limit run at once.
    ConnectGate gate;
    std::deque<Waiter> w(2000);
    std::deque<Waiter*> running;
    std::size_t connected = 0, turns = 0;
    for (auto& x : w)
        if (gate.enter(x)) running.push_back(&x);
    while (!running.empty()) {
        ASSERT_LE(running.size(), ConnectGate::default_max);
        Waiter* x = running.front();
        running.pop_front();
        const bool times_out = ++turns % 3 == 0;
        std::vector<Waiter*> granted;
        gate.leave(*x, times_out ? Outcome::timed_out : Outcome::connected, granted);
        for (auto* g : granted) running.push_back(g);
        if (!times_out)
            ++connected;
        else if (gate.enter(*x))  // or back in line
            running.push_back(x);
    }
    EXPECT_EQ(connected, 2000u);
    EXPECT_EQ(gate.queued(), 0u);
    EXPECT_EQ(gate.in_progress(), 0u);
}

TEST(PollFsmConnectTurn, TheConnectBudgetStartsWhenTheTurnComes) {
    const auto t0 = mdagg::detail::PollClock::time_point(100s);
    PollFsm fsm(1s, 2s, 1);
    PollAction a = fsm.on_tick(t0);
    ASSERT_EQ(a.kind, PollAction::Kind::connect);
    EXPECT_EQ(fsm.deadline(), t0 + 1s);
    // Queued for 5 s: the connect still has its whole second once it may start.
    EXPECT_EQ(fsm.on_connect_turn(t0 + 5s), t0 + 6s);
    EXPECT_EQ(fsm.deadline(), t0 + 6s);
    a = fsm.on_connected(t0 + 5500ms);
    EXPECT_EQ(a.kind, PollAction::Kind::write);
    EXPECT_EQ(fsm.deadline(), t0 + 7500ms);
}

TEST(PollFsmHandshakeGrace, AHandshakeUnderWayAtTheConnectDeadlineGoesOnOnce) {
    const auto t0 = mdagg::detail::PollClock::time_point(100s);
    PollFsm fsm(1s, 50ms, 1);
    fsm.on_tick(t0);
    EXPECT_TRUE(fsm.extend_handshake(t0 + 1s));
    EXPECT_EQ(fsm.deadline(), t0 + 2s);
    EXPECT_FALSE(fsm.extend_handshake(t0 + 2s));  // once per poll
    fsm.on_connected(t0 + 1500ms);
    fsm.on_written(true);
    EXPECT_FALSE(fsm.extend_handshake(t0 + 1550ms));  // not connecting: the exchange is cut
    EXPECT_EQ(fsm.on_deadline(t0 + 1550ms).kind, PollAction::Kind::done);
    // The next poll's handshake has its grace again.
    fsm.on_tick(t0 + 4s);
    EXPECT_TRUE(fsm.extend_handshake(t0 + 5s));
}

}  // namespace

// The one-thread tick scheduler's timer sleeps to the wheel's next busy millisecond
// (src/poll/tick_scheduler.*): an entry added while it sleeps past it must bring it forward.
#include "poll_test_server.hpp"

namespace {

// Runs `io` on this thread until `done` or 10 s passed (a condition, not a fixed time).
template <class F>
bool run_until(asio::io_context& io, F done) {
    const auto limit = std::chrono::steady_clock::now() + 10s;
    while (!done() && std::chrono::steady_clock::now() < limit) io.run_for(10ms);
    return done();
}

}  // namespace

TEST(TickSchedulerSleep, ATickDueBeforeTheSleepingTimerBringsItForward) {
    // One poller every 20 ms with a 5 s timeout: while a poll is in flight the wheel's only
    // entry is its deadline, 5 s out, and the timer sleeps to it. The answer comes at once and
    // the next tick (20 ms out) goes in before it: a timer left asleep would poll every 5 s,
    // and 20 polls would take 100 s instead of under half a second.
    Fixture f;
    auto config = make_config(f.port(), {"OK"});
    config.sources[0].timeout = 5s;
    mdagg::Universe universe{{"test"}, {"OK"}};
    int quotes = 0;
    mdagg::PollerGroup group(f.io, config, universe, [&](const mdagg::Quote&) { ++quotes; });
    bool all_exited = false;
    group.start([&] { all_exited = true; });
    EXPECT_TRUE(run_until(f.io, [&] { return quotes >= 20; })) << quotes << " polls answered";
    EXPECT_EQ(group.stats(0).failed.load(), 0u);
    group.stop_scheduling();
    group.cancel_in_flight();
    EXPECT_TRUE(run_until(f.io, [&] { return all_exited; }));
}

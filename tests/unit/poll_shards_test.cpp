// PollerGroup over shards (runtime.threads > 1 in the daemon; CI runs it under TSan):
// io_contexts each run by one thread. The pollers are dealt to both; each shard's wheel hands
// out ticks and deadlines without a strand or a lock; stop and cancel end every coroutine on
// either thread.
#include "poll_test_server.hpp"

#include <mutex>
#include <set>
#include <span>
#include <thread>

namespace {

// Waits (polling a condition, not a fixed time) until `done` or 10 s passed.
template <class F>
bool eventually(F done) {
    for (int i = 0; i < 1000 && !done(); ++i) std::this_thread::sleep_for(10ms);
    return done();
}

}  // namespace

TEST(PollerGroupShards, MultiThreadedPollersOnTwoIoContextsDeliverTimeOutAndStop) {
    Fixture f;  // its io_context is the first shard and serves the canned answers
    asio::io_context second(1);
    std::vector<std::string> symbols;
    for (int i = 0; i < 20; ++i) symbols.push_back("OK");
    symbols.push_back("HANG");
    symbols.push_back("IDLECLOSE");
    auto config = make_config(f.port(), symbols);
    config.runtime.threads = 2;
    mdagg::Universe universe{{"test"}, {"OK", "HANG", "IDLECLOSE"}};
    std::atomic<int> quotes{0};
    std::mutex m;
    std::set<std::thread::id> delivering;  // the threads quotes came from
    const std::array shards{&f.io, &second};
    mdagg::PollerGroup group(std::span<asio::io_context* const>(shards), config, universe, [&](const mdagg::Quote&) {
        ++quotes;
        std::lock_guard lock(m);
        delivering.insert(std::this_thread::get_id());
    });
    std::atomic<bool> all_exited{false};
    group.start([&] { all_exited = true; });
    auto guard1 = asio::make_work_guard(f.io);
    auto guard2 = asio::make_work_guard(second);
    std::thread first_thread([&] { f.io.run(); });
    std::thread second_thread([&] { second.run(); });

    const auto& st = group.stats(0);
    EXPECT_TRUE(eventually([&] { return quotes.load() >= 21 * 15; })) << "every healthy poller keeps polling";
    EXPECT_TRUE(eventually([&] { return errors(st, mdagg::PollError::timeout) >= 5u; }))
        << "the deadline and the grace end each hung poll";
    EXPECT_EQ(st.failed.load(), 0u);
    {
        std::lock_guard lock(m);
        EXPECT_EQ(delivering.size(), 2u) << "pollers run on both shards' threads";
    }
    group.stop_scheduling();
    group.cancel_in_flight();
    EXPECT_TRUE(eventually([&] { return all_exited.load(); }));
    EXPECT_EQ(st.in_flight.load(), 0);
    std::atomic<bool> closed{false};
    group.close_connections([&] { closed = true; });
    EXPECT_TRUE(eventually([&] { return closed.load(); }));
    asio::post(f.io, [&] { f.acceptor.close(); });
    guard1.reset();
    guard2.reset();
    f.io.stop();
    second.stop();
    first_thread.join();
    second_thread.join();
}

// The pollers' coroutine machinery (src/poll/task.hpp).
#include "task.hpp"

#include <boost/asio.hpp>

#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

using mdagg::detail::Task;

Task<int> child_value(int x) { co_return x * 2; }
Task<int> child_throws() {
    throw std::runtime_error("boom");
    co_return 0;
}
Task<int> parent(int x, int& steps) {
    int a = co_await child_value(x);
    ++steps;
    try {
        co_await child_throws();
    } catch (const std::runtime_error&) {
        ++steps;
    }
    co_return a + co_await child_value(1);
}

Task<void> root(int& result, int& steps) { result = co_await parent(20, steps); }

Task<void> root_throws() {
    co_await child_throws();
}

struct Done {
    int calls = 0;
    std::exception_ptr error;
    static void on(void* self, std::exception_ptr e) {
        auto& d = *static_cast<Done*>(self);
        ++d.calls;
        d.error = std::move(e);
    }
};

}  // namespace

TEST(Task, NestedTasksReturnValuesAndRethrowWhatEscapes) {
    asio::io_context io(1);
    int result = 0, steps = 0;
    Done done;
    root(result, steps).spawn(io.get_executor(), &Done::on, &done);
    EXPECT_EQ(done.calls, 0) << "a spawned task starts from a posted handler, not inline";
    io.run();
    EXPECT_EQ(result, 42);
    EXPECT_EQ(steps, 2);
    EXPECT_EQ(done.calls, 1);
    EXPECT_FALSE(done.error);
}

TEST(Task, AnExceptionEscapingTheRootReachesItsCompletion) {
    asio::io_context io(1);
    Done done;
    root_throws().spawn(io.get_executor(), &Done::on, &done);
    io.run();
    ASSERT_EQ(done.calls, 1);
    ASSERT_TRUE(done.error);
    EXPECT_THROW(std::rethrow_exception(done.error), std::runtime_error);
}

namespace {
// A poll's shape: a timer wait (the tick), then a nested task that waits again.
Task<boost::system::error_code> nap(asio::steady_timer& t, std::chrono::milliseconds d) {
    t.expires_after(d);
    auto [ec] = co_await mdagg::detail::async<boost::system::error_code>(
        [&](auto handler) { t.async_wait(std::move(handler)); });
    co_return ec;
}
Task<void> napper(asio::steady_timer& t, int rounds, std::vector<boost::system::error_code>& results) {
    for (int i = 0; i < rounds; ++i) results.push_back(co_await nap(t, 1ms));
}
Task<void> sleeper(asio::steady_timer& t, boost::system::error_code& result) { result = co_await nap(t, 1h); }
}  // namespace

TEST(Task, AsioOperationsResumeTheCoroutineWithTheirResults) {
    asio::io_context io(1);
    asio::steady_timer t(io);
    std::vector<boost::system::error_code> results;
    Done done;
    napper(t, 3, results).spawn(io.get_executor(), &Done::on, &done);
    io.run();
    ASSERT_EQ(results.size(), 3u);
    for (auto& ec : results) EXPECT_FALSE(ec);
    EXPECT_EQ(done.calls, 1);
}

TEST(Task, ACancelledOperationResumesWithOperationAborted) {
    asio::io_context io(1);
    asio::steady_timer t(io);
    boost::system::error_code result;
    Done done;
    sleeper(t, result).spawn(io.get_executor(), &Done::on, &done);
    io.run_for(20ms);
    EXPECT_EQ(done.calls, 0);
    t.cancel();
    io.run();
    EXPECT_EQ(result, asio::error::operation_aborted);
    EXPECT_EQ(done.calls, 1);
}

TEST(Task, FramesAndOperationsAreRecycledOnceWarm) {
    // 50 coroutines interleave their waits like pollers: after the first rounds, every frame
    // and every operation comes from the free lists, none from malloc.
    asio::io_context io(1);
    std::vector<std::unique_ptr<asio::steady_timer>> timers;
    std::vector<std::vector<boost::system::error_code>> results(50);
    Done done;
    for (int i = 0; i < 50; ++i) {
        timers.push_back(std::make_unique<asio::steady_timer>(io));
        napper(*timers.back(), 5, results[i]).spawn(io.get_executor(), &Done::on, &done);
    }
    io.run();
    ASSERT_EQ(done.calls, 50);
    const auto warm = mdagg::detail::pool_stats();
    for (int i = 0; i < 50; ++i) napper(*timers[i], 20, results[i]).spawn(io.get_executor(), &Done::on, &done);
    io.restart();
    io.run();
    ASSERT_EQ(done.calls, 100);
    const auto after = mdagg::detail::pool_stats();
    EXPECT_GE(after.allocations - warm.allocations, 50u * 20u * 2u) << "frames and waits go through the pool";
    EXPECT_EQ(after.fresh, warm.fresh) << "a warm pool serves every allocation";
}

// A racing hedge that the drain's cancel (PollerGroup::cancel_in_flight) cuts is a loser
// cancelled, never a `failed` hedge (docs/polling.md, "Drain"), even when the leg sees the
// `cancelling` flag before the interrupt the drain posted to its poller has run. The flag is
// set at once and the interrupts are queued behind whatever the io_context already holds, so
// a leg whose read completion was queued first ends itself by the flag (PollFsm::on_cancel).
#include "poll_hedge_test_support.hpp"

#include <memory>
#include <string_view>

namespace {

struct Stage {
    bool go = false;                        // the test lets A's primary answer
    std::shared_ptr<tcp::socket> b_mirror;  // B's hedge connection, its answer begun
};

std::string symbol_of(std::string_view request) {
    const auto at = request.find("/quotes/");
    const auto end = request.find(' ', at);
    return std::string(request.substr(at + 8, end - at - 8));
}

asio::awaitable<std::string> read_request(tcp::socket& socket, std::string& in) {
    auto [ec, n] = co_await asio::async_read_until(socket, asio::dynamic_buffer(in), "\r\n\r\n",
                                                   asio::as_tuple(asio::use_awaitable));
    if (ec) co_return std::string();
    std::string symbol = symbol_of(std::string_view(in).substr(0, n));
    in.erase(0, n);
    co_return symbol;
}

// The url's host: B's request hangs; A's is answered once the test says go, and in the same
// handler more of B's hedge answer goes out right behind it. So A's answer and those bytes
// are ready at one epoll wait, A's first: A delivers (and the quote handler starts the
// drain's cancel) while B's hedge read completion is already queued.
asio::awaitable<void> serve_primary(tcp::socket socket, std::shared_ptr<Stage> stage) {
    std::string in;
    for (;;) {
        const std::string symbol = co_await read_request(socket, in);
        if (symbol.empty()) co_return;
        if (symbol != "A") continue;  // B: never answered
        asio::steady_timer wait(socket.get_executor());
        while (!stage->go || !stage->b_mirror) {
            wait.expires_after(1ms);
            co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
        }
        asio::write(socket, asio::buffer(response(200, R"({"b":"1.00","a":"1.01"})")));
        asio::write(*stage->b_mirror, asio::buffer(std::string_view("\"1.0")));
    }
}

// The mirror starts every answer (head and part of the body) and never ends it.
asio::awaitable<void> serve_mirror(std::shared_ptr<tcp::socket> socket, std::shared_ptr<Stage> stage) {
    std::string in;
    const std::string part = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"b\":";
    for (;;) {
        const std::string symbol = co_await read_request(*socket, in);
        if (symbol.empty()) co_return;
        asio::write(*socket, asio::buffer(part));
        if (symbol == "B") stage->b_mirror = socket;
    }
}

}  // namespace

TEST(HedgeDrainTally, ARacingHedgeTheDrainCutIsALoserCancelledNotFailed) {
    asio::io_context io(1);
    auto stage = std::make_shared<Stage>();
    tcp::acceptor primary(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    tcp::acceptor mirror(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    asio::co_spawn(io, accept_with(primary, [stage](tcp::socket s) { return serve_primary(std::move(s), stage); }),
                   asio::detached);
    asio::co_spawn(io,
                   accept_with(mirror,
                               [stage](tcp::socket s) {
                                   return serve_mirror(std::make_shared<tcp::socket>(std::move(s)), stage);
                               }),
                   asio::detached);
    const std::vector<std::string> symbols{"A", "B"};
    auto config = hedged_config(primary.local_endpoint().port(), mirror.local_endpoint().port(), symbols, 400ms);
    config.hosts[1].breaker.failures = 100;
    mdagg::Universe universe{{"test"}, symbols};
    mdagg::PollerGroup* group_ptr = nullptr;
    std::size_t quotes = 0;
    // The drain's cancel, from inside A's delivery: B's hedge read is queued before it.
    mdagg::PollerGroup group(io, config, universe, [&](const mdagg::Quote&) {
        if (quotes++ == 0) group_ptr->cancel_in_flight();
    });
    group_ptr = &group;
    bool all_exited = false;
    group.start([&] { all_exited = true; });
    const auto& st = group.stats(0);
    // Both hedges out, and B's begun answer read, so its leg waits on its next read.
    for (int i = 0; i < 300 && (st.hedges_sent.load() < 2 || !stage->b_mirror); ++i) io.run_for(10ms);
    ASSERT_EQ(st.hedges_sent.load(), 2u);
    io.run_for(20ms);
    stage->go = true;
    for (int i = 0; i < 300 && !all_exited; ++i) io.run_for(10ms);
    ASSERT_TRUE(all_exited);
    EXPECT_EQ(quotes, 1u);
    EXPECT_EQ(st.hedges_sent.load(), 2u);
    EXPECT_EQ(st.hedges_failed.load(), 0u) << "the drain's cut counted as a hedge that failed on its own";
    EXPECT_EQ(st.hedges_unsent.load(), 0u);
    std::uint64_t won = 0;
    for (auto& w : st.hedge_wins) won += w.load();
    EXPECT_EQ(won, 0u);
    // sent = failed + losers: A's hedge lost to its primary, B's was cut by the drain.
    EXPECT_EQ(st.losers_cancelled.load() + st.losers_discarded.load(), 2u);
}

// The counters' identity when hedges win: each won race has a loser too, the first request
// (closed, or read and dropped), so over settled races sent = failed + losers, and the won
// races are among the losers' (docs/polling.md, "Seen from outside").
TEST(HedgeDrainTally, AWonRaceCountsItsFirstRequestAsTheLoser) {
    asio::io_context io(1);
    tcp::acceptor primary(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    tcp::acceptor mirror(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    asio::co_spawn(io, accept_with(primary, [](tcp::socket s) { return answer_after(std::move(s), 40ms); }),
                   asio::detached);
    asio::co_spawn(io, accept_with(mirror, [](tcp::socket s) { return answer_after(std::move(s), 0ms); }),
                   asio::detached);
    const std::vector<std::string> symbols{"A", "B"};
    auto config = hedged_config(primary.local_endpoint().port(), mirror.local_endpoint().port(), symbols, 400ms);
    mdagg::Universe universe{{"test"}, symbols};
    std::size_t quotes = 0;
    mdagg::PollerGroup group(io, config, universe, [&](const mdagg::Quote&) { ++quotes; });
    bool all_exited = false;
    group.start([&] { all_exited = true; });
    const auto& st = group.stats(0);
    auto won = [&] {
        std::uint64_t n = 0;
        for (auto& w : st.hedge_wins) n += w.load();
        return n;
    };
    for (int i = 0; i < 300 && won() < 4; ++i) io.run_for(10ms);
    group.stop_scheduling();
    group.cancel_in_flight();
    for (int i = 0; i < 300 && !all_exited; ++i) io.run_for(10ms);
    ASSERT_TRUE(all_exited);
    ASSERT_GE(won(), 4u);
    const auto losers = st.losers_cancelled.load() + st.losers_discarded.load();
    EXPECT_EQ(st.hedges_sent.load(), st.hedges_failed.load() + losers)
        << "won " << won() << ", failed " << st.hedges_failed.load() << ", losers " << losers;
    EXPECT_GE(losers, won()) << "a won race's first request is its loser";
    EXPECT_GE(quotes, won());
}

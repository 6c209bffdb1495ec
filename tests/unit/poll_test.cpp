// Schedule arithmetic (sans-io): phase offsets and skip-not-burst; then PollerGroup against an
// in-process HTTP server with canned answers: each failure lands in its error class, healthy
// pollers keep delivering, and stop/cancel end every coroutine.
#include <mdagg/poll.hpp>
#include <mdagg/schedule.hpp>

#include <boost/asio.hpp>
#include <map>

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using mdagg::phase_offset;
using mdagg::Schedule;
using ns = std::chrono::nanoseconds;
namespace asio = boost::asio;
using asio::ip::tcp;

TEST(PhaseOffset, StableAndWithinInterval) {
    auto a = phase_offset("sim", "STOCK_7", 50ms);
    EXPECT_EQ(a, phase_offset("sim", "STOCK_7", 50ms));
    EXPECT_GE(a, 0ns);
    EXPECT_LT(a, ns(50ms));
    EXPECT_NE(a, phase_offset("sim", "STOCK_8", 50ms));
    EXPECT_NE(a, phase_offset("other", "STOCK_7", 50ms));
    // "ab"/"c" and "a"/"bc" must not collide just because the concatenation matches.
    EXPECT_NE(phase_offset("ab", "c", 1s), phase_offset("a", "bc", 1s));
    EXPECT_EQ(phase_offset("sim", "X", 0ns), 0ns);
}

TEST(PhaseOffset, SpreadsTwoThousandPollersAcrossTheInterval) {
    // 2,000 pollers at 50 ms: ten 5 ms slots should each hold ~200; none may hold a burst.
    std::vector<int> slots(10, 0);
    for (int i = 0; i < 2000; ++i) {
        auto off = phase_offset("sim", "STOCK_" + std::to_string(i), 50ms);
        ++slots[static_cast<std::size_t>(off / 5ms)];
    }
    for (int n : slots) {
        EXPECT_GT(n, 140);
        EXPECT_LT(n, 260);
    }
}

TEST(Schedule, FirstTickIsAlignedToTheOffset) {
    Schedule s(50ms, 7ms);
    EXPECT_EQ(s.first_tick(ns(0)), ns(7ms));
    EXPECT_EQ(s.first_tick(ns(7ms)), ns(7ms));      // exactly on a tick: that tick
    EXPECT_EQ(s.first_tick(ns(8ms)), ns(57ms));
    EXPECT_EQ(s.first_tick(ns(1000ms + 7ms)), ns(1007ms));
    EXPECT_EQ(s.first_tick(ns(1000ms + 8ms)), ns(1057ms));
}

TEST(Schedule, OnTimePollWaitsForTheNextTick) {
    Schedule s(50ms, 0ns);
    auto n = s.next(ns(100ms), ns(110ms));
    EXPECT_EQ(n.tick, ns(150ms));
    EXPECT_EQ(n.skipped, 0u);
    // Finishing exactly on the next tick still fires it.
    n = s.next(ns(100ms), ns(150ms));
    EXPECT_EQ(n.tick, ns(150ms));
    EXPECT_EQ(n.skipped, 0u);
}

TEST(Schedule, SlowPollSkipsMissedTicksInsteadOfBursting) {
    Schedule s(50ms, 0ns);
    // The poll started at 100 ms and took 125 ms: ticks at 150 and 200 were missed.
    auto n = s.next(ns(100ms), ns(225ms));
    EXPECT_EQ(n.skipped, 2u);
    EXPECT_EQ(n.tick, ns(250ms));
    // Ended exactly on a tick (200 ms): 150 missed, 200 fires.
    n = s.next(ns(100ms), ns(200ms));
    EXPECT_EQ(n.skipped, 1u);
    EXPECT_EQ(n.tick, ns(200ms));
}

TEST(Schedule, SimulatedSlowEndpointNeverBurstsAndKeepsPhase) {
    Schedule s(50ms, 13ms);
    auto tick = s.first_tick(ns(0));
    std::vector<ns> fired;
    std::uint64_t skipped = 0;
    for (int i = 0; i < 20; ++i) {
        fired.push_back(tick);
        ns poll_time = (i % 4 == 0) ? ns(175ms) : ns(5ms);  // every fourth poll hangs 3.5 intervals
        auto n = s.next(tick, tick + poll_time);
        skipped += n.skipped;
        tick = n.tick;
    }
    for (std::size_t i = 1; i < fired.size(); ++i) {
        EXPECT_GE(fired[i] - fired[i - 1], ns(50ms)) << "burst at " << i;
        EXPECT_EQ((fired[i] - ns(13ms)) % ns(50ms), ns(0)) << "lost phase at " << i;
    }
    EXPECT_EQ(skipped, 5u * 3u);  // five slow polls, three ticks each
}


namespace {

std::string response(int status, const std::string& body, bool keep_alive = true) {
    return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: " + std::to_string(body.size()) +
           (keep_alive ? "\r\n" : "\r\nConnection: close\r\n") + "\r\n" + body;
}

// Answers GET /quotes/<symbol> by symbol: OK (a quote), BIG (over the body limit), E500,
// GARBAGE (not HTTP), NOMAP (JSON without the mapped fields), HANG (never answers).
asio::awaitable<void> serve(tcp::socket socket) {
    std::string buffer;
    for (;;) {
        char chunk[1024];
        auto [ec, n] = co_await socket.async_read_some(asio::buffer(chunk), asio::as_tuple(asio::use_awaitable));
        if (ec) co_return;
        buffer.append(chunk, n);
        for (auto end = buffer.find("\r\n\r\n"); end != std::string::npos; end = buffer.find("\r\n\r\n")) {
            std::string request = buffer.substr(0, end);
            buffer.erase(0, end + 4);
            auto target = request.substr(4, request.find(' ', 4) - 4);
            std::string symbol = target.substr(target.rfind('/') + 1);
            std::string out;
            if (symbol == "OK") out = response(200, R"({"b":"1.00","a":"1.01"})");
            else if (symbol == "BIG") out = response(200, std::string(4096, ' ') + "{}");
            else if (symbol == "E500") out = response(500, "{}");
            else if (symbol == "GARBAGE") out = "HELLO THERE\r\n\r\n";
            else if (symbol == "NOMAP") out = response(200, R"({"x":1})");
            else if (symbol == "HANG") continue;
            auto [wec, w] = co_await asio::async_write(socket, asio::buffer(out), asio::as_tuple(asio::use_awaitable));
            if (wec || symbol == "GARBAGE") co_return;
        }
    }
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
        if (ec) co_return;
        asio::co_spawn(acceptor.get_executor(), serve(std::move(socket)), asio::detached);
    }
}

mdagg::Config make_config(std::uint16_t port, std::vector<std::string> symbols) {
    mdagg::Config c;
    mdagg::SourceConfig s;
    s.name = "test";
    s.url.scheme = "http";
    s.url.host = "127.0.0.1";
    s.url.port = port;
    s.url.target_template = "/quotes/{symbol}";
    s.interval = 20ms;
    s.timeout = 20ms;
    s.max_in_flight = symbols.size();
    s.max_body_bytes = 1024;
    s.symbols = std::move(symbols);
    s.fields.bid = "/b";
    s.fields.ask = "/a";
    c.sources.push_back(s);
    return c;
}

std::uint64_t errors(const mdagg::SourceStats& st, mdagg::PollError e) {
    return st.errors[static_cast<std::size_t>(e)].load();
}

}  // namespace

TEST(PollerGroup, EachFailureIsCountedInItsClassAndHealthyPollersDeliver) {
    asio::io_context io(1);
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    asio::co_spawn(io, accept_loop(acceptor), asio::detached);

    std::vector<std::string> symbols{"OK", "BIG", "E500", "GARBAGE", "NOMAP", "HANG"};
    auto config = make_config(acceptor.local_endpoint().port(), symbols);
    mdagg::Universe universe{{"test"}, symbols};
    std::map<mdagg::SymbolId, int> quotes;
    mdagg::PollerGroup group(io, config, universe, [&](const mdagg::Quote& q) {
        ++quotes[q.symbol];
        EXPECT_EQ(q.bid.to_string(), "1.00");
        EXPECT_EQ(q.ask.to_string(), "1.01");
    });
    bool all_exited = false;
    group.start([&] { all_exited = true; });
    io.run_for(600ms);

    const auto& st = group.stats(0);
    EXPECT_GE(quotes[0], 10) << "the healthy poller must keep its schedule";
    EXPECT_EQ(quotes.size(), 1u) << "only the healthy symbol may deliver quotes";
    EXPECT_GE(errors(st, mdagg::PollError::body_too_large), 5u);
    EXPECT_GE(errors(st, mdagg::PollError::http_status), 5u);
    EXPECT_GE(errors(st, mdagg::PollError::protocol), 3u);
    EXPECT_GE(errors(st, mdagg::PollError::mapping), 5u);
    EXPECT_GE(errors(st, mdagg::PollError::timeout), 5u);
    EXPECT_EQ(errors(st, mdagg::PollError::connect), 0u);
    EXPECT_EQ(st.completed.load(), static_cast<std::uint64_t>(quotes[0]));
    EXPECT_EQ(st.timed_out.load(), errors(st, mdagg::PollError::timeout));
    // Every started poll ended exactly once in one outcome, or is still in flight.
    EXPECT_EQ(st.polls_started.load(),
              st.completed.load() + st.failed.load() + st.timed_out.load() + st.cancelled.load() +
                  static_cast<std::uint64_t>(st.in_flight.load()));

    group.stop_scheduling();
    group.cancel_in_flight();
    io.run_for(200ms);
    EXPECT_TRUE(all_exited);
    EXPECT_EQ(group.running(), 0u);
    EXPECT_EQ(st.in_flight.load(), 0);
    auto states = group.state_counts();
    std::size_t total = 0;
    for (auto n : states) total += n;
    EXPECT_EQ(total, symbols.size());
}

TEST(PollerGroup, RefusedConnectionsAreConnectErrorsAndBackOff) {
    asio::io_context io(1);
    // A port with nothing listening: bind, note the port, close.
    std::uint16_t port;
    {
        tcp::acceptor probe(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        port = probe.local_endpoint().port();
    }
    std::vector<std::string> symbols{"A"};
    auto config = make_config(port, symbols);
    mdagg::Universe universe{{"test"}, symbols};
    mdagg::PollerGroup group(io, config, universe, [](const mdagg::Quote&) {});
    group.start([] {});
    io.run_for(1s);
    const auto& st = group.stats(0);
    EXPECT_GE(errors(st, mdagg::PollError::connect), 2u);
    // 50 ticks passed; backoff (100 ms doubling, full jitter) must have skipped many of them.
    EXPECT_LT(errors(st, mdagg::PollError::connect), 25u);
    EXPECT_GT(st.throttled_ticks.load(), 10u);
    group.stop_scheduling();
    io.run_for(100ms);
    EXPECT_EQ(group.running(), 0u);
}

// Schedule arithmetic (sans-io): phase offsets and skip-not-burst; then PollerGroup against an
// in-process HTTP server with canned answers: each failure lands in its error class, healthy
// pollers keep delivering, and stop/cancel end every coroutine. Last, the pollers' coroutine task.
#include <mdagg/poll.hpp>
#include "schedule.hpp"

#include "task.hpp"
#include "timer_wheel.hpp"

#include <boost/asio.hpp>
#include <map>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <unistd.h>
#include <string>
#include <thread>
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

// FLAKY answers like OK while this is set, like E500 otherwise.
std::atomic<bool> g_flaky_healthy{true};
// R429ONCE answers 429 to its first request only.
std::atomic<int> g_429_sent{0};
// R503ONCE answers 503 with Retry-After: 3 to its first request only.
std::atomic<int> g_503_sent{0};
// C100/C103 count their requests: each answer's bid is the request's number.
std::atomic<int> g_interim_requests{0};

// Answers GET /quotes/<symbol> by symbol: OK (a quote), BIG (over the body limit), E500,
// GARBAGE (not HTTP), NOMAP (JSON without the mapped fields), HANG (never answers), E404,
// R429 (429, Retry-After: 1), BAN (418, no Retry-After), BODYERR (a 200 whose code is not "0"),
// JUNK (a 200 that is not JSON), FLAKY (see above), IDLECLOSE (answers like OK, then closes the
// idle connection 5 ms later without saying so).
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
            symbol = symbol.substr(0, symbol.find('?'));
            std::string out;
            if (symbol == "OK") out = response(200, R"({"b":"1.00","a":"1.01"})");
            else if (symbol == "BIG") out = response(200, std::string(4096, ' ') + "{}");
            else if (symbol == "E500") out = response(500, "{}");
            else if (symbol == "GARBAGE") out = "HELLO THERE\r\n\r\n";
            else if (symbol == "NOMAP") out = response(200, R"({"x":1})");
            else if (symbol == "HANG") continue;
            else if (symbol == "E404") out = response(404, "{}");
            else if (symbol == "DROP") co_return;  // accepts, reads the request, hangs up
            else if (symbol == "R429") out = "HTTP/1.1 429 X\r\nRetry-After: 1\r\nContent-Length: 2\r\n\r\n{}";
            else if (symbol == "BAN") out = response(418, "{}");
            else if (symbol == "R429ONCE")
                out = g_429_sent++ == 0 ? "HTTP/1.1 429 X\r\nRetry-After: 1\r\nContent-Length: 2\r\n\r\n{}"
                                        : response(200, R"({"b":"1.00","a":"1.01"})");
            else if (symbol == "BODYERR") out = response(200, R"({"code":"50011","b":"1.00","a":"1.01"})");
            else if (symbol == "JUNK") out = response(200, R"({"b":"1.00",)");
            else if (symbol == "FLAKY")
                out = g_flaky_healthy ? response(200, R"({"b":"1.00","a":"1.01"})") : response(503, "{}");
            else if (symbol == "IDLECLOSE") out = response(200, R"({"b":"1.00","a":"1.01"})");
            else if (symbol == "R503ONCE")
                out = g_503_sent++ == 0 ? "HTTP/1.1 503 X\r\nRetry-After: 3\r\nContent-Length: 2\r\n\r\n{}"
                                        : response(200, R"({"b":"1.00","a":"1.01"})");
            else if (symbol == "S101") out = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n";
            else if (symbol == "C100" || symbol == "C103") {
                // The interim response goes out on its own, then the answer.
                const std::string interim = symbol == "C100" ? "HTTP/1.1 100 Continue\r\n\r\n"
                                                             : "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n";
                socket.set_option(tcp::no_delay(true));  // no Nagle wait for the second write
                auto [iec, iw] = co_await asio::async_write(socket, asio::buffer(interim), asio::as_tuple(asio::use_awaitable));
                if (iec) co_return;
                const int n = ++g_interim_requests;
                out = response(200, R"({"b":")" + std::to_string(n) + R"(","a":"1000000"})");
            }
            auto [wec, w] = co_await asio::async_write(socket, asio::buffer(out), asio::as_tuple(asio::use_awaitable));
            if (wec || symbol == "GARBAGE") co_return;
            if (symbol == "IDLECLOSE") {
                // A keep-alive timeout shorter than the poll interval: close, unannounced.
                asio::steady_timer idle(socket.get_executor(), 5ms);
                co_await idle.async_wait(asio::as_tuple(asio::use_awaitable));
                co_return;
            }
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
    mdagg::HostConfig h;
    h.host = s.url.host;
    h.port = port;
    h.breaker.failures = 0;  // tests that want one set it
    c.hosts.push_back(h);
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

    std::vector<std::string> symbols{"OK", "BIG", "E500", "GARBAGE", "NOMAP", "HANG", "E404", "BODYERR", "JUNK"};
    auto config = make_config(acceptor.local_endpoint().port(), symbols);
    config.sources[0].fields.success = mdagg::SuccessCheck{"/code", std::nullopt, true};
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
    EXPECT_GE(errors(st, mdagg::PollError::http_5xx), 5u);
    EXPECT_GE(errors(st, mdagg::PollError::http_4xx), 5u);
    EXPECT_GE(errors(st, mdagg::PollError::protocol), 3u);
    EXPECT_GE(errors(st, mdagg::PollError::mapping), 5u);
    EXPECT_GE(errors(st, mdagg::PollError::body_error), 5u);
    EXPECT_GE(errors(st, mdagg::PollError::malformed), 5u);
    EXPECT_EQ(errors(st, mdagg::PollError::rate_limited), 0u);
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
    // The plain-value copy other threads read holds what the counters hold once all is quiet.
    const mdagg::PollCounters c = group.source_counters(0);
    EXPECT_EQ(c.polls_started, st.polls_started.load());
    EXPECT_EQ(c.completed, st.completed.load());
    EXPECT_EQ(c.failed, st.failed.load());
    EXPECT_EQ(c.timed_out, st.timed_out.load());
    EXPECT_EQ(c.cancelled, st.cancelled.load());
    EXPECT_EQ(c.in_flight, 0);
    for (std::size_t e = 0; e < c.errors.size(); ++e) EXPECT_EQ(c.errors[e], st.errors[e].load()) << e;
    EXPECT_EQ(c.latency.total, st.completed.load()) << "one latency sample per completed poll";
    auto states = group.state_counts();
    std::size_t total = 0;
    for (auto n : states) total += n;
    EXPECT_EQ(total, symbols.size());
}

namespace {

struct Fixture {
    explicit Fixture(int io_threads = 1) : io(io_threads) {
        asio::co_spawn(io, accept_loop(acceptor), asio::detached);
    }
    std::uint16_t port() const { return acceptor.local_endpoint().port(); }
    asio::io_context io;
    tcp::acceptor acceptor{io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
    std::map<std::string, int> quotes;
};

}  // namespace

TEST(PollerGroup, AKeepAliveConnectionTheServerClosedWhileIdleIsRetriedNotTimedOut) {
    // The close arrives between polls, when no read is pending; the next request is then
    // answered by a reset, which must end the poll at once (and retry it on a new connection),
    // not leave it waiting for its deadline.
    Fixture f;
    auto& io = f.io;
    std::vector<std::string> symbols{"IDLECLOSE"};
    auto config = make_config(f.port(), symbols);
    mdagg::Universe universe{{"test"}, symbols};
    int quotes = 0;
    mdagg::PollerGroup group(io, config, universe, [&](const mdagg::Quote&) { ++quotes; });
    bool all_exited = false;
    group.start([&] { all_exited = true; });
    io.run_for(600ms);
    const auto& st = group.stats(0);
    EXPECT_GE(quotes, 20) << "every tick (20 ms) should deliver";
    EXPECT_EQ(st.failed.load(), 0u);
    EXPECT_EQ(st.timed_out.load(), 0u);
    EXPECT_GE(st.retries.load(), 15u) << "each poll after the first finds its connection closed";
    EXPECT_GE(st.connects.load(), 15u);
    group.stop_scheduling();
    group.cancel_in_flight();
    io.run_for(100ms);
    EXPECT_TRUE(all_exited);
}

TEST(PollerGroup, MultiThreadedPollersDeliverTimeOutAndStopOnTheirStrands) {
    // Two io threads: the timer wheel hands ticks and deadlines to each poller's strand.
    Fixture f(2);
    auto& io = f.io;
    std::vector<std::string> symbols;
    for (int i = 0; i < 20; ++i) symbols.push_back("OK");
    symbols.push_back("HANG");
    symbols.push_back("IDLECLOSE");
    auto config = make_config(f.port(), symbols);
    config.runtime.threads = 2;
    mdagg::Universe universe{{"test"}, {"OK", "HANG", "IDLECLOSE"}};
    std::atomic<int> quotes{0};
    mdagg::PollerGroup group(io, config, universe, [&](const mdagg::Quote&) { ++quotes; });
    std::atomic<bool> all_exited{false};
    group.start([&] { all_exited = true; });
    auto guard = asio::make_work_guard(io);
    std::thread first([&] { io.run(); });
    std::thread second([&] { io.run(); });
    std::this_thread::sleep_for(500ms);
    const auto& st = group.stats(0);
    EXPECT_GE(quotes.load(), 21 * 15) << "every healthy poller keeps its 20 ms schedule";
    // A hung poll uses its whole 20 ms budget and its 20 ms late grace (docs/polling.md, "Late
    // answers"), so it skips two ticks of three.
    EXPECT_GE(errors(st, mdagg::PollError::timeout), 5u) << "the deadline and the grace must end each hung poll";
    EXPECT_EQ(st.failed.load(), 0u);
    group.stop_scheduling();
    group.cancel_in_flight();
    for (int i = 0; i < 100 && !all_exited; ++i) std::this_thread::sleep_for(10ms);
    EXPECT_TRUE(all_exited);
    EXPECT_EQ(st.in_flight.load(), 0);
    f.acceptor.close();
    io.stop();
    first.join();
    second.join();
}

TEST(PollerGroup, APollThatThrowsEndsItsPollerAndLeavesNothingInTheTimerWheel) {
    // The quote hand-off throws mid-poll, between the deadline's arm and disarm. The poller
    // ends (a bug is logged, the others go on); once retired it is freed, and the timer wheel
    // must not touch its deadline afterwards (ASan watches this test in CI).
    Fixture f;
    auto& io = f.io;
    std::vector<std::string> symbols{"OK"};
    auto config = make_config(f.port(), symbols);
    config.sources[0].timeout = 3s;  // the thrown poll's deadline outlives the poller
    mdagg::Universe universe{{"test"}, symbols};
    int calls = 0;
    mdagg::PollerGroup group(io, config, universe, [&](const mdagg::Quote&) {
        ++calls;
        throw std::runtime_error("a bug in the hand-off");
    });
    bool all_exited = false;
    group.start([&] { all_exited = true; });
    io.run_for(100ms);
    EXPECT_EQ(calls, 1);
    EXPECT_TRUE(all_exited);
    EXPECT_EQ(group.running(), 0u);
    EXPECT_EQ(group.retire([](std::string_view, std::string_view, const std::vector<std::string>&) { return true; }), 1u);
    // The wheel visits the deadline's slot once a revolution (1,024 ms) until it is due.
    io.run_for(1200ms);
    EXPECT_EQ(group.size(), 0u) << "the retired poller is freed";
}

TEST(PollerGroup, RetiredSymbolsAreNoLongerHeldAndAnUnconfiguredHostsGuardGoesWithItsLastPoller) {
    Fixture f;
    auto& io = f.io;
    std::vector<std::string> symbols{"OK", "OK2"};
    auto config = make_config(f.port(), symbols);
    mdagg::Universe universe{{"test"}, symbols};
    mdagg::PollerGroup group(io, config, universe, [](const mdagg::Quote&) {});
    group.start([] {});
    // A reload adds a source on another host (nothing listens there: its polls fail).
    mdagg::SourceConfig other = config.sources[0];
    other.name = "other";
    other.url.host = "127.0.0.2";
    other.symbols = {"ELSEWHERE"};
    mdagg::HostConfig other_host = config.hosts[0];
    other_host.host = "127.0.0.2";
    ASSERT_TRUE(group.add(1, other, other_host, {{"ELSEWHERE", 2}}));
    io.run_for(100ms);
    EXPECT_EQ(group.symbols_held(), (std::vector<mdagg::SymbolId>{0, 1, 2}));
    ASSERT_EQ(group.host_count(), 2u);

    // The next reload drops that source and OK2: the guard stays while its poller does.
    group.set_hosts(config.hosts);
    EXPECT_EQ(group.host_count(), 2u) << "a poller still uses the guard";
    auto dropped = [](std::string_view source, std::string_view symbol, const std::vector<std::string>&) {
        return source == "other" || symbol == "OK2";
    };
    EXPECT_EQ(group.retire(dropped), 2u);
    for (int i = 0; i < 50 && group.size() > 1; ++i) io.run_for(20ms);
    EXPECT_EQ(group.size(), 1u);
    EXPECT_EQ(group.symbols_held(), std::vector<mdagg::SymbolId>{0});
    const auto hosts = group.host_statuses();
    ASSERT_EQ(hosts.size(), 1u) << "the unconfigured host's guard (and its series) is freed";
    EXPECT_EQ(hosts[0].first, "127.0.0.1:" + std::to_string(f.port()));
    group.stop_scheduling();
    group.cancel_in_flight();
    io.run_for(100ms);
}

// A reload that drops a host the server banned must not forget the ban: the guard stays (and
// the ban stays persisted) until it ends, and a reload that brings the host back finds it.
TEST(PollerGroup, AServerBannedHostKeepsItsGuardAfterItsLastPollerGoes) {
    Fixture f;
    auto& io = f.io;
    std::vector<std::string> symbols{"OK"};
    auto config = make_config(f.port(), symbols);
    mdagg::Universe universe{{"test"}, symbols};
    mdagg::PollerGroup group(io, config, universe, [](const mdagg::Quote&) {});
    group.start([] {});
    mdagg::SourceConfig other = config.sources[0];
    other.name = "other";
    other.url.host = "127.0.0.2";
    other.symbols = {"ELSEWHERE"};
    mdagg::HostConfig other_host = config.hosts[0];
    other_host.host = "127.0.0.2";
    other_host.max_pause = 1h;
    ASSERT_TRUE(group.add(1, other, other_host, {{"ELSEWHERE", 1}}));
    ASSERT_EQ(group.host_count(), 2u);
    const auto until = std::chrono::system_clock::now() + 120s;
    ASSERT_EQ(group.restore_pauses({{group.host_name(1), mdagg::PauseReason::banned, until}}), 1u);

    group.set_hosts(config.hosts);
    EXPECT_EQ(group.retire([](std::string_view source, std::string_view, const std::vector<std::string>&) {
                  return source == "other";
              }),
              1u);
    for (int i = 0; i < 50 && group.size() > 1; ++i) io.run_for(20ms);
    ASSERT_EQ(group.size(), 1u);
    EXPECT_EQ(group.host_count(), 2u) << "the banned host's guard was freed with its last poller";
    const auto pauses = group.server_pauses();
    ASSERT_EQ(pauses.size(), 1u) << "the ban is no longer persisted";
    EXPECT_EQ(pauses[0].reason, mdagg::PauseReason::banned);
    group.stop_scheduling();
    group.cancel_in_flight();
    io.run_for(100ms);
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

TEST(PollerGroup, AServerThatDropsEveryExchangeIsBackedOffLikeARefusal) {
    Fixture f;
    std::vector<std::string> symbols{"DROP"};
    auto config = make_config(f.port(), symbols);
    mdagg::Universe universe{{"test"}, symbols};
    mdagg::PollerGroup group(f.io, config, universe, [](const mdagg::Quote&) {});
    group.start([] {});
    f.io.run_for(1s);
    const auto& st = group.stats(0);
    // 50 ticks; connects succeed but every exchange is cut: backoff (100 ms doubling, full
    // jitter) skips most ticks instead of reconnecting on each.
    EXPECT_GE(errors(st, mdagg::PollError::reset), 2u);
    EXPECT_LT(errors(st, mdagg::PollError::reset), 25u);
    EXPECT_GT(st.throttled_ticks.load(), 10u);
    group.stop_scheduling();
    f.io.run_for(100ms);
    EXPECT_EQ(group.running(), 0u);
}

TEST(PollerGroup, A429PausesTheWholeHostForItsRetryAfter) {
    Fixture f;
    std::vector<std::string> symbols{"OK", "R429ONCE"};
    auto config = make_config(f.port(), symbols);
    mdagg::Universe universe{{"test"}, symbols};
    int ok_quotes = 0;
    g_429_sent = 0;
    mdagg::PollerGroup group(f.io, config, universe, [&](const mdagg::Quote&) { ++ok_quotes; });
    group.start([] {});
    f.io.run_for(700ms);
    const auto& st = group.stats(0);
    // Within the first tick R429ONCE answers 429 with Retry-After: 1; the host, OK included,
    // then waits a second: a handful of OK polls at most, instead of 35.
    EXPECT_EQ(errors(st, mdagg::PollError::rate_limited), 1u);
    EXPECT_LE(ok_quotes, 3);
    EXPECT_GT(st.host_paused_ticks.load(), 40u);
    const auto host = group.host_status(0);
    EXPECT_EQ(host.pause, mdagg::PauseReason::rate_limited);
    EXPECT_EQ(host.pauses_rate_limited, 1u);
    // After the pause the host is polled again, both symbols.
    f.io.run_for(600ms);
    EXPECT_GT(ok_quotes, 10);
    group.stop_scheduling();
    group.cancel_in_flight();
    f.io.run_for(100ms);
    EXPECT_EQ(group.running(), 0u);
}

TEST(PollerGroup, ABanPausesTheHostForTheConfiguredTime) {
    Fixture f;
    std::vector<std::string> symbols{"OK", "BAN"};
    auto config = make_config(f.port(), symbols);
    config.hosts[0].ban_pause = 10s;
    mdagg::Universe universe{{"test"}, symbols};
    int ok_quotes = 0;
    mdagg::PollerGroup group(f.io, config, universe, [&](const mdagg::Quote&) { ++ok_quotes; });
    group.start([] {});
    f.io.run_for(500ms);
    const auto& st = group.stats(0);
    EXPECT_GE(errors(st, mdagg::PollError::banned), 1u);
    EXPECT_LE(ok_quotes, 2);
    const auto host = group.host_status(0);
    EXPECT_EQ(host.pause, mdagg::PauseReason::banned);
    EXPECT_EQ(host.pauses_banned, 1u);
    EXPECT_GT(host.paused_until, std::chrono::steady_clock::now() + 9s);
    group.stop_scheduling();
    f.io.run_for(100ms);
    EXPECT_EQ(group.running(), 0u);
}

TEST(PollerGroup, TokenBucketHoldsTheHostToItsRate) {
    Fixture f;
    std::vector<std::string> symbols{"OK", "OK2", "OK3", "OK4"};
    auto config = make_config(f.port(), {"OK"});
    config.sources[0].symbols = symbols;
    config.sources[0].url.target_template = "/quotes/OK?{symbol}";
    config.hosts[0].rate = 20;
    config.hosts[0].burst = 2;
    mdagg::Universe universe{{"test"}, symbols};
    int quotes = 0;
    mdagg::PollerGroup group(f.io, config, universe, [&](const mdagg::Quote&) { ++quotes; });
    group.start([] {});
    f.io.run_for(1s);
    // 4 pollers at 20 ms ask for 200/s; the host allows 20/s plus a burst of 2.
    EXPECT_GE(quotes, 12);
    EXPECT_LE(quotes, 23);
    EXPECT_GT(group.stats(0).rate_limited_ticks.load(), 120u);
    group.stop_scheduling();
    f.io.run_for(100ms);
    EXPECT_EQ(group.running(), 0u);
}

TEST(PollerGroup, BreakerOpensOnAFailingHostAndClosesWhenItHeals) {
    Fixture f;
    g_flaky_healthy = false;
    std::vector<std::string> symbols{"FLAKY"};
    auto config = make_config(f.port(), symbols);
    config.hosts[0].breaker.failures = 3;
    config.hosts[0].breaker.cooldown = 200ms;
    config.hosts[0].breaker.max_cooldown = 200ms;
    mdagg::Universe universe{{"test"}, symbols};
    int quotes = 0;
    mdagg::PollerGroup group(f.io, config, universe, [&](const mdagg::Quote&) { ++quotes; });
    group.start([] {});
    f.io.run_for(1s);
    const auto& st = group.stats(0);
    // 50 ticks: 3 failures open it, then one probe per 200 ms cooldown.
    const auto failed = errors(st, mdagg::PollError::http_5xx);
    EXPECT_GE(failed, 4u);
    EXPECT_LE(failed, 10u);
    EXPECT_GT(st.breaker_ticks.load(), 30u);
    EXPECT_NE(group.host_status(0).breaker, mdagg::BreakerState::closed);
    EXPECT_GE(group.host_status(0).breaker_opens, 2u);
    EXPECT_EQ(quotes, 0);
    // The host heals: the next probe closes the breaker and the schedule resumes.
    g_flaky_healthy = true;
    f.io.run_for(600ms);
    EXPECT_EQ(group.host_status(0).breaker, mdagg::BreakerState::closed);
    EXPECT_GE(quotes, 10);
    group.stop_scheduling();
    f.io.run_for(100ms);
    EXPECT_EQ(group.running(), 0u);
}

// ---------------------------------------------------------------------------------------------
// HostGuard: token bucket, pauses, usage slow-down, circuit breaker (sans-io, time injected)

namespace {

using mdagg::Admission;
using mdagg::BreakerState;
using mdagg::HostGuard;
using mdagg::HostVerdict;
using mdagg::PauseReason;
using T = HostGuard::Clock::time_point;

mdagg::HostConfig host(double rate, double burst, std::uint32_t failures = 3) {
    mdagg::HostConfig h;
    h.host = "127.0.0.1";
    h.rate = rate;
    h.burst = burst;
    h.breaker.failures = failures;
    h.breaker.cooldown = 1s;
    h.breaker.max_cooldown = 4s;
    h.rate_limit_pause = 2s;
    h.ban_pause = 60s;
    h.max_pause = 10min;
    return h;
}

}  // namespace

TEST(HostGuard, TokenBucketAllowsTheBurstThenTheRate) {
    const auto cfg = host(10, 5);
    const T t0{};
    HostGuard g(cfg, t0);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(g.admit(t0, 1), Admission::go) << i;
    EXPECT_EQ(g.admit(t0, 1), Admission::throttled);
    // 10 tokens/s: one more every 100 ms, and never more than the burst.
    EXPECT_EQ(g.admit(t0 + 99ms, 1), Admission::throttled);
    EXPECT_EQ(g.admit(t0 + 100ms, 1), Admission::go);
    EXPECT_EQ(g.admit(t0 + 100ms, 1), Admission::throttled);
    int admitted = 0;
    for (int i = 0; i < 100; ++i) admitted += g.admit(t0 + 10s, 1) == Admission::go;
    EXPECT_EQ(admitted, 5);
    // A request's cost is taken whole: 2 tokens after 200 ms buy one weight-2 request.
    EXPECT_EQ(g.admit(t0 + 10s + 100ms, 2), Admission::throttled);
    EXPECT_EQ(g.admit(t0 + 10s + 200ms, 2), Admission::go);
}

TEST(HostGuard, ZeroRateMeansUnlimited) {
    const auto cfg = host(0, 1);
    HostGuard g(cfg, T{});
    for (int i = 0; i < 10000; ++i) ASSERT_EQ(g.admit(T{}, 1000), Admission::go);
}

TEST(HostGuard, PauseUsesTheSignalledOrConfiguredLengthNeverShortensAndIsCountedOnce) {
    const auto cfg = host(0, 1);
    const T t0{};
    HostGuard g(cfg, t0);
    g.pause(t0, PauseReason::rate_limited, std::nullopt);  // configured 2 s
    EXPECT_EQ(g.admit(t0 + 1999ms, 1), Admission::paused);
    // 2,000 pollers see the same 429: still one pause, and a shorter one does not cut it.
    g.pause(t0 + 1s, PauseReason::rate_limited, 0s);
    EXPECT_EQ(g.status(t0 + 1s).pauses_rate_limited, 1u);
    EXPECT_EQ(g.admit(t0 + 1999ms, 1), Admission::paused);
    EXPECT_EQ(g.admit(t0 + 2s, 1), Admission::go);
    EXPECT_EQ(g.status(t0 + 2s).pause, PauseReason::none);

    // A Retry-After is obeyed; a ban without one lasts ban_pause; max_pause caps both.
    g.pause(t0 + 10s, PauseReason::rate_limited, 7s);
    EXPECT_EQ(g.admit(t0 + 16s, 1), Admission::paused);
    EXPECT_EQ(g.admit(t0 + 17s, 1), Admission::go);
    g.pause(t0 + 20s, PauseReason::banned, std::nullopt);
    auto st = g.status(t0 + 20s);
    EXPECT_EQ(st.pause, PauseReason::banned);
    EXPECT_EQ(st.paused_until, t0 + 80s);
    EXPECT_EQ(st.pauses_banned, 1u);
    EXPECT_EQ(st.pauses_rate_limited, 2u);
    g.pause(t0 + 100s, PauseReason::banned, std::chrono::hours(72));
    EXPECT_EQ(g.status(t0 + 100s).paused_until, t0 + 100s + 10min);
    // A ban during a rate-limit pause upgrades the reason and extends it.
    HostGuard h(cfg, t0);
    h.pause(t0, PauseReason::rate_limited, 5s);
    h.pause(t0 + 1s, PauseReason::banned, 30s);
    st = h.status(t0 + 1s);
    EXPECT_EQ(st.pause, PauseReason::banned);
    EXPECT_EQ(st.paused_until, t0 + 31s);
}

TEST(HostGuard, BucketRefillsFromThePauseEndNotThroughIt) {
    const auto cfg = host(10, 10);
    const T t0{};
    HostGuard g(cfg, t0);
    g.pause(t0, PauseReason::rate_limited, 5s);
    EXPECT_EQ(g.admit(t0 + 5s, 1), Admission::throttled);  // no burst the moment it lifts
    EXPECT_EQ(g.admit(t0 + 5s + 100ms, 1), Admission::go);
}

TEST(HostGuard, AnExtendedPauseAlsoRefillsFromItsNewEnd) {
    const auto cfg = host(10, 10);
    const T t0{};
    HostGuard g(cfg, t0);
    g.pause(t0, PauseReason::rate_limited, 1s);
    g.pause(t0 + 500ms, PauseReason::banned, 60s);  // extends to t0 + 60.5 s
    EXPECT_EQ(g.admit(t0 + 60s, 1), Admission::paused);
    // No burst saved up from the first pause's end: one token 100 ms after the new end.
    EXPECT_EQ(g.admit(t0 + 60s + 500ms, 1), Admission::throttled);
    EXPECT_EQ(g.admit(t0 + 60s + 600ms, 1), Admission::go);
    EXPECT_EQ(g.admit(t0 + 60s + 600ms, 1), Admission::throttled);
}

TEST(HostGuard, UsageHeaderSlowsTheBucketBeforeTheLimit) {
    auto cfg = host(100, 1);
    cfg.usage = mdagg::HostConfig::Usage{"X-Used", 1000, 0.8};
    const T t0{};
    HostGuard g(cfg, t0);
    g.on_usage(500);
    EXPECT_EQ(g.status(t0).rate_factor, 1.0);
    g.on_usage(900);  // halfway from 800 to 1000: half speed
    EXPECT_DOUBLE_EQ(g.status(t0).rate_factor, 0.5);
    g.on_usage(5000);  // past the limit: crawl, never stop
    EXPECT_DOUBLE_EQ(g.status(t0).rate_factor, 0.05);
    // At 5% of 100/s a token takes 200 ms.
    EXPECT_EQ(g.admit(t0, 1), Admission::go);
    EXPECT_EQ(g.admit(t0 + 150ms, 1), Admission::throttled);
    EXPECT_EQ(g.admit(t0 + 200ms, 1), Admission::go);
    g.on_usage(0);  // the venue's window reset
    EXPECT_EQ(g.status(t0).rate_factor, 1.0);
}

TEST(HostGuard, BreakerOpensAfterConsecutiveFailuresAndProbesAfterCooldown) {
    const auto cfg = host(0, 1, 3);
    const T t0{};
    HostGuard g(cfg, t0);
    g.report(t0, HostVerdict::failing, false);
    g.report(t0, HostVerdict::failing, false);
    g.report(t0, HostVerdict::healthy, false);  // any success resets the run
    g.report(t0, HostVerdict::failing, false);
    g.report(t0, HostVerdict::neutral, false);  // no news is no reset
    g.report(t0, HostVerdict::failing, false);
    EXPECT_EQ(g.status(t0).breaker, BreakerState::closed);
    g.report(t0, HostVerdict::failing, false);
    EXPECT_EQ(g.status(t0).breaker, BreakerState::open);
    EXPECT_EQ(g.status(t0).breaker_opens, 1u);
    EXPECT_EQ(g.admit(t0 + 999ms, 1), Admission::breaker_open);
    // Polls admitted before it opened report late: neither closes nor re-opens it.
    g.report(t0 + 500ms, HostVerdict::healthy, false);
    g.report(t0 + 500ms, HostVerdict::failing, false);
    EXPECT_EQ(g.status(t0 + 500ms).breaker, BreakerState::open);
    EXPECT_EQ(g.status(t0 + 500ms).breaker_opens, 1u);

    // After the cooldown exactly one probe goes; the rest wait for its verdict.
    EXPECT_EQ(g.admit(t0 + 1s, 1), Admission::probe);
    EXPECT_EQ(g.status(t0 + 1s).breaker, BreakerState::half_open);
    EXPECT_EQ(g.admit(t0 + 1s, 1), Admission::breaker_open);
    // The probe fails: open again for twice as long (2 s), then 4 s, capped at 4 s.
    g.report(t0 + 1s, HostVerdict::failing, true);
    EXPECT_EQ(g.admit(t0 + 2999ms, 1), Admission::breaker_open);
    EXPECT_EQ(g.admit(t0 + 3s, 1), Admission::probe);
    g.report(t0 + 3s, HostVerdict::failing, true);
    EXPECT_EQ(g.admit(t0 + 6999ms, 1), Admission::breaker_open);
    EXPECT_EQ(g.admit(t0 + 7s, 1), Admission::probe);
    g.report(t0 + 7s, HostVerdict::failing, true);
    EXPECT_EQ(g.admit(t0 + 10999ms, 1), Admission::breaker_open);
    // A cancelled probe (drain, no verdict) lets the next tick probe again.
    EXPECT_EQ(g.admit(t0 + 11s, 1), Admission::probe);
    g.report(t0 + 11s, HostVerdict::neutral, true);
    EXPECT_EQ(g.admit(t0 + 11s, 1), Admission::probe);
    // The probe succeeds: closed, and the cooldown is back to its base.
    g.report(t0 + 11s, HostVerdict::healthy, true);
    EXPECT_EQ(g.status(t0 + 11s).breaker, BreakerState::closed);
    EXPECT_EQ(g.admit(t0 + 11s, 1), Admission::go);
    for (int i = 0; i < 3; ++i) g.report(t0 + 12s, HostVerdict::failing, false);
    EXPECT_EQ(g.admit(t0 + 12s + 999ms, 1), Admission::breaker_open);
    EXPECT_EQ(g.admit(t0 + 13s, 1), Admission::probe);
}

TEST(HostGuard, NoBreakerWhenFailuresIsZero) {
    const auto cfg = host(0, 1, 0);
    HostGuard g(cfg, T{});
    for (int i = 0; i < 1000; ++i) g.report(T{}, HostVerdict::failing, false);
    EXPECT_EQ(g.admit(T{}, 1), Admission::go);
}

TEST(HostGuard, PauseComesBeforeTheBucketAndTheProbe) {
    const auto cfg = host(10, 1, 1);
    const T t0{};
    HostGuard g(cfg, t0);
    g.report(t0, HostVerdict::failing, false);  // open until t0 + 1 s
    g.pause(t0, PauseReason::banned, 5s);
    // Paused: no token spent, no probe granted.
    EXPECT_EQ(g.admit(t0 + 2s, 1), Admission::paused);
    EXPECT_EQ(g.admit(t0 + 5s + 100ms, 1), Admission::probe);
    // A probe needs a token too.
    g.report(t0 + 5s + 100ms, HostVerdict::neutral, true);
    EXPECT_EQ(g.admit(t0 + 5s + 100ms, 1), Admission::throttled);
}

TEST(HostGuard, ScheduledDemandAddsTheHostsSources) {
    mdagg::Config c;
    mdagg::SourceConfig a, b, other;
    a.interval = 50ms;
    a.symbols.resize(100);
    a.cost = 2;
    b.interval = 1s;
    b.symbols.resize(10);
    other.interval = 1ms;
    other.symbols.resize(1);
    other.host = 1;
    c.sources = {a, b, other};
    EXPECT_DOUBLE_EQ(mdagg::scheduled_demand(c, 0), 100 * 2 / 0.05 + 10);
    EXPECT_DOUBLE_EQ(mdagg::scheduled_demand(c, 1), 1000);
}

// The pollers' coroutine machinery (src/poll/task.hpp).
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

// The timer wheel behind ticks and deadlines (src/poll/timer_wheel.hpp), sans-io.
namespace {
using mdagg::detail::TimerWheel;
using mdagg::detail::WheelEntry;

std::vector<int> fire(TimerWheel& w, std::int64_t now, const std::vector<WheelEntry>& entries) {
    std::vector<WheelEntry*> due;
    w.advance(now, due);
    std::vector<int> ids;
    for (auto* e : due) ids.push_back(static_cast<int>(e - entries.data()));
    return ids;
}
}  // namespace

TEST(TimerWheel, EntriesFireAtTheirMillisecondInDueOrderAndNeverBefore) {
    TimerWheel w(64);
    std::vector<WheelEntry> e(4);
    fire(w, 1000, e);  // the clock starts at 1000
    w.add(e[0], 1005);
    w.add(e[1], 1003);
    w.add(e[2], 1005);
    w.add(e[3], 1010);
    EXPECT_EQ(w.size(), 4u);
    EXPECT_TRUE(fire(w, 1002, e).empty());
    EXPECT_EQ(fire(w, 1003, e), (std::vector<int>{1}));
    // One late advance covers every millisecond passed, oldest first, each entry once.
    EXPECT_EQ(fire(w, 1012, e), (std::vector<int>{0, 2, 3}));
    EXPECT_EQ(w.size(), 0u);
    EXPECT_TRUE(fire(w, 1100, e).empty());
}

TEST(TimerWheel, RemovedEntriesNeverFireAndReAddingMovesThem) {
    TimerWheel w(64);
    std::vector<WheelEntry> e(2);
    w.add(e[0], 10);
    w.add(e[1], 11);
    w.remove(e[0]);
    w.remove(e[0]);  // twice is harmless
    EXPECT_FALSE(e[0].linked());
    w.add(e[1], 20);  // moved, not duplicated
    EXPECT_EQ(w.size(), 1u);
    EXPECT_TRUE(fire(w, 19, e).empty());
    EXPECT_EQ(fire(w, 20, e), (std::vector<int>{1}));
}

TEST(TimerWheel, EntriesBeyondTheRingWaitForTheirTimeAndPastOnesFireAtOnce) {
    TimerWheel w(16);
    std::vector<WheelEntry> e(3);
    fire(w, 100, e);
    w.add(e[0], 100 + 16 * 3 + 5);  // three revolutions out, in the slot of 105
    w.add(e[1], 50);                // already past: fires at the next advance
    EXPECT_EQ(fire(w, 101, e), (std::vector<int>{1}));
    for (std::int64_t t = 102; t < 153; ++t) ASSERT_TRUE(fire(w, t, e).empty()) << t;
    EXPECT_EQ(fire(w, 153, e), (std::vector<int>{0}));
    // A gap of many revolutions visits each slot once and fires what is due.
    w.add(e[2], 200);
    EXPECT_EQ(fire(w, 10'000, e), (std::vector<int>{2}));
}

// Pollers are added before the wheel's first advance; a start-up that is slow to reach it
// must not leave the entries already due for a whole revolution.
TEST(TimerWheel, TheFirstAdvanceFiresEntriesAddedBeforeItThatAreAlreadyDue) {
    TimerWheel w(1024);
    std::vector<WheelEntry> e(3);
    w.add(e[0], 1000);
    w.add(e[1], 1003);
    w.add(e[2], 1004);
    EXPECT_EQ(fire(w, 1003, e), (std::vector<int>{0, 1}));
    EXPECT_EQ(fire(w, 1004, e), (std::vector<int>{2}));
    EXPECT_EQ(w.size(), 0u);
}

TEST(TimerWheel, TheFirstAdvanceFiresEntriesAddedFarEarlierThanTheRing) {
    TimerWheel w(16);
    std::vector<WheelEntry> e(2);
    w.add(e[0], 10);
    w.add(e[1], 500);
    EXPECT_EQ(fire(w, 200, e), (std::vector<int>{0}));
    EXPECT_EQ(fire(w, 500, e), (std::vector<int>{1}));
}

// A 503 with Retry-After is the server asking for a pause, like a 429: the host waits for the
// header's time (not rate_limit_pause), and the breaker does not count it as a failure.
TEST(PollerGroup, A503WithRetryAfterPausesTheHostForItsRetryAfterWithoutABreakerFailure) {
    Fixture f;
    std::vector<std::string> symbols{"OK", "R503ONCE"};
    auto config = make_config(f.port(), symbols);
    config.hosts[0].rate_limit_pause = 1s;
    config.hosts[0].breaker.failures = 1;  // a single failing poll would open it
    mdagg::Universe universe{{"test"}, symbols};
    int quotes = 0;
    g_503_sent = 0;
    mdagg::PollerGroup group(f.io, config, universe, [&](const mdagg::Quote&) { ++quotes; });
    group.start([] {});
    f.io.run_for(1500ms);
    const auto& st = group.stats(0);
    EXPECT_EQ(errors(st, mdagg::PollError::rate_limited), 1u);
    EXPECT_EQ(errors(st, mdagg::PollError::http_5xx), 0u);
    const auto host = group.host_status(0);
    EXPECT_EQ(host.breaker, mdagg::BreakerState::closed);
    EXPECT_EQ(host.breaker_opens, 0u);
    EXPECT_EQ(host.pause, mdagg::PauseReason::rate_limited) << "Retry-After: 3 outlasts the 1 s default";
    const auto left = host.paused_until - std::chrono::steady_clock::now();
    EXPECT_GT(left, 1s);
    EXPECT_LE(left, 3s);
    const int before = quotes;
    f.io.run_for(2s);
    EXPECT_GT(quotes, before + 10) << "the pause ends after Retry-After";
    group.stop_scheduling();
    group.cancel_in_flight();
    f.io.run_for(100ms);
    EXPECT_EQ(group.running(), 0u);
}

// An interim 1xx response is not the answer: the poll reads on to the final one, so every
// answer belongs to its own request and none is left on the connection for the next poll.
TEST(PollerGroup, InterimResponsesAreSkippedAndEveryPollReadsItsOwnAnswer) {
    for (std::string symbol : {"C100", "C103"}) {
        SCOPED_TRACE(symbol);
        Fixture f;
        std::vector<std::string> symbols{symbol};
        auto config = make_config(f.port(), symbols);
        mdagg::Universe universe{{"test"}, symbols};
        g_interim_requests = 0;
        std::vector<std::string> bids;
        mdagg::PollerGroup group(f.io, config, universe, [&](const mdagg::Quote& q) { bids.push_back(q.bid.to_string()); });
        group.start([] {});
        f.io.run_for(500ms);
        group.stop_scheduling();
        f.io.run_for(100ms);
        const auto& st = group.stats(0);
        EXPECT_EQ(errors(st, mdagg::PollError::http_other), 0u);
        EXPECT_EQ(st.failed.load() + st.timed_out.load(), 0u);
        ASSERT_GE(bids.size(), 10u);
        for (std::size_t i = 0; i < bids.size(); ++i) ASSERT_EQ(bids[i], std::to_string(i + 1)) << "poll " << i;
        EXPECT_EQ(static_cast<int>(bids.size()), g_interim_requests.load());
        EXPECT_EQ(st.connects.load(), 1u) << "the connection stays usable";
    }
}

TEST(PollerGroup, SwitchingProtocolsIsAProtocolErrorAndClosesTheConnection) {
    Fixture f;
    std::vector<std::string> symbols{"S101"};
    auto config = make_config(f.port(), symbols);
    mdagg::Universe universe{{"test"}, symbols};
    mdagg::PollerGroup group(f.io, config, universe, [&](const mdagg::Quote&) {});
    group.start([] {});
    f.io.run_for(300ms);
    group.stop_scheduling();
    f.io.run_for(100ms);
    const auto& st = group.stats(0);
    EXPECT_GE(errors(st, mdagg::PollError::protocol), 1u);
    EXPECT_EQ(errors(st, mdagg::PollError::http_other), 0u);
    EXPECT_EQ(st.connects.load(), st.polls_started.load()) << "each 101 closes its connection";
}

// .mdagg-hosts.json: server-requested pauses that survive a restart.
TEST(HostPauseFile, PausesRoundTripThroughTheFileAndExpiredOnesAreDropped) {
    const auto dir = std::filesystem::temp_directory_path() / ("mdagg-hostpause-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto now = std::chrono::system_clock::now();
    const auto ms = [](auto t) { return std::chrono::floor<std::chrono::milliseconds>(t); };
    std::vector<mdagg::ServerPause> pauses{{"api.example.com", mdagg::PauseReason::banned, ms(now + 120s)},
                                           {"127.0.0.1:8081", mdagg::PauseReason::rate_limited, ms(now + 3s)}};
    {
        mdagg::HostPauseFile file(dir.string());
        EXPECT_TRUE(file.load(now).empty()) << "no file yet: no pauses";
        file.update(pauses);
    }  // the destructor writes what is pending
    EXPECT_FALSE(std::filesystem::exists(dir / ".mdagg-hosts.json.tmp"));
    {
        mdagg::HostPauseFile file(dir.string());
        EXPECT_EQ(file.load(now), pauses);
        // Read 10 s later, the rate limit has ended and only the ban remains.
        EXPECT_EQ(file.load(now + 10s), (std::vector<mdagg::ServerPause>{pauses[0]}));
        file.update({});  // every pause ended
    }
    EXPECT_TRUE(mdagg::HostPauseFile(dir.string()).load(now).empty());
    // A corrupt or foreign file is ignored (and logged), never fatal.
    for (const char* text : {"{not json", R"({"version":2,"hosts":[]})", R"({"version":1,"hosts":[{"host":"x"}]})",
                             R"({"version":1,"hosts":[{"host":"x","reason":"tired","until_unix_ms":1}]})"}) {
        { std::ofstream(dir / ".mdagg-hosts.json") << text; }
        EXPECT_TRUE(mdagg::HostPauseFile(dir.string()).load(now).empty()) << text;
        EXPECT_THROW(mdagg::HostPauseFile::parse(text, now), std::invalid_argument) << text;
    }
    std::filesystem::remove_all(dir);
}

TEST(PollerGroup, RestoredPausesHoldTheHostAndCountItsPollersAsWaitingNotStarting) {
    Fixture f;
    std::vector<std::string> symbols{"OK"};
    auto config = make_config(f.port(), symbols);
    config.hosts[0].max_pause = 1h;
    mdagg::Universe universe{{"test"}, symbols};
    int quotes = 0;
    mdagg::PollerGroup group(f.io, config, universe, [&](const mdagg::Quote&) { ++quotes; });
    const auto until = std::chrono::system_clock::now() + 120s;
    EXPECT_EQ(group.restore_pauses({{group.host_name(0), mdagg::PauseReason::banned, until},
                                    {"elsewhere:1", mdagg::PauseReason::banned, until}}),
              1u);
    group.start([] {});
    f.io.run_for(300ms);
    EXPECT_EQ(quotes, 0) << "a restored ban holds the host";
    EXPECT_GT(group.stats(0).host_paused_ticks.load(), 5u);
    const auto counts = group.control_counts();
    EXPECT_EQ(counts.active_on_paused_host, 1u);
    EXPECT_EQ(counts.active_never_polled, 0u);
    const auto pauses = group.server_pauses();
    ASSERT_EQ(pauses.size(), 1u);
    EXPECT_EQ(pauses[0].reason, mdagg::PauseReason::banned);
    EXPECT_LT(std::chrono::abs(pauses[0].until - until), 1s);
    group.stop_scheduling();
    f.io.run_for(100ms);
    EXPECT_EQ(group.running(), 0u);
}

// ---- the poll module's families in /metrics ---------------------------------------------------

#include <mdagg/poll_metrics.hpp>

#include <sstream>

namespace {

std::vector<std::string> sample_lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (line.rfind('#', 0) != 0) out.push_back(line);
    return out;
}

bool has_line(const std::string& text, const std::string& line) {
    const auto lines = sample_lines(text);
    return std::find(lines.begin(), lines.end(), line) != lines.end();
}

mdagg::PollerSnapshot table_row(mdagg::SourceId source, std::string symbol, std::int64_t last_success_ns) {
    mdagg::PollerSnapshot p;
    p.source = source;
    p.symbol = std::move(symbol);
    p.interval = 1s;
    p.last_success_ns = last_success_ns;
    return p;
}

}  // namespace

TEST(PollMetrics, CountersAddUpOverSources) {
    mdagg::PollCounters a, b;
    a.completed = 3;
    a.in_flight = 2;
    a.errors[static_cast<std::size_t>(mdagg::PollError::http_5xx)] = 4;
    a.latency.counts[5] = 1;
    a.latency.total = 1;
    b.completed = 5;
    b.host_paused_ticks = 7;
    b.in_flight = -1;
    b.latency.counts[5] = 2;
    b.latency.total = 2;
    a.add(b);
    EXPECT_EQ(a.completed, 8u);
    EXPECT_EQ(a.host_paused_ticks, 7u);
    EXPECT_EQ(a.in_flight, 1);
    EXPECT_EQ(a.errors[static_cast<std::size_t>(mdagg::PollError::http_5xx)], 4u);
    EXPECT_EQ(a.latency.total, 3u);
    EXPECT_EQ(a.latency.counts[5], 3u);
}

TEST(PollMetrics, SourceFamiliesReadTheirOwnFieldsAndLabelsInOrder) {
    mdagg::PollStats stats;
    stats.source_names = {"alpha", "beta"};
    stats.sources.resize(2);
    auto& beta = stats.sources[1];
    beta.completed = 1;
    beta.failed = 2;
    beta.timed_out = 3;
    beta.cancelled = 4;
    beta.skipped_ticks = 5;
    beta.throttled_ticks = 6;
    beta.paused_ticks = 7;
    beta.rate_limited_ticks = 8;
    beta.host_paused_ticks = 9;
    beta.breaker_ticks = 10;
    beta.connects = 11;
    beta.retries = 12;
    beta.in_flight = 13;
    beta.errors[static_cast<std::size_t>(mdagg::PollError::mapping)] = 14;
    beta.achieved_interval.counts[0] = 15;
    beta.achieved_interval.total = 15;
    const std::int64_t now = 1'000'000'000'000;
    std::vector<mdagg::PollerSnapshot> table{table_row(1, "X", now - 2'000'000'000), table_row(1, "Y", 0)};
    table[1].control = mdagg::PollerControl::paused;
    table[1].state = mdagg::PollerState::failed;

    std::string out;
    mdagg::PrometheusWriter w(out);
    mdagg::write_source_metrics(w, stats, table, now);
    for (const char* line : {
             R"(mdagg_source_polls_total{source="beta",outcome="completed"} 1)",
             R"(mdagg_source_polls_total{source="beta",outcome="failed"} 2)",
             R"(mdagg_source_polls_total{source="beta",outcome="timed_out"} 3)",
             R"(mdagg_source_polls_total{source="beta",outcome="cancelled"} 4)",
             R"(mdagg_source_poll_errors_total{source="beta",class="mapping"} 14)",
             R"(mdagg_source_poll_errors_total{source="alpha",class="resolve"} 0)",
             R"(mdagg_source_skipped_ticks_total{source="beta"} 5)",
             R"(mdagg_source_throttled_ticks_total{source="beta"} 6)",
             R"(mdagg_source_paused_ticks_total{source="beta"} 7)",
             R"(mdagg_source_rate_limited_ticks_total{source="beta"} 8)",
             R"(mdagg_source_host_paused_ticks_total{source="beta"} 9)",
             R"(mdagg_source_breaker_ticks_total{source="beta"} 10)",
             R"(mdagg_source_connects_total{source="beta"} 11)",
             R"(mdagg_source_retries_total{source="beta"} 12)",
             R"(mdagg_source_polls_in_flight{source="beta"} 13)",
             R"(mdagg_source_last_success_age_seconds{source="beta"} 2)",
             R"(mdagg_source_last_success_age_seconds{source="alpha"} +Inf)",
             R"(mdagg_source_pollers{source="beta",state="pending"} 1)",
             R"(mdagg_source_pollers{source="beta",state="failed"} 1)",
             R"(mdagg_source_pollers{source="beta",state="timed_out"} 0)",
             R"(mdagg_source_pollers_control{source="beta",control="active"} 1)",
             R"(mdagg_source_pollers_control{source="beta",control="paused"} 1)",
             R"(mdagg_source_pollers_control{source="alpha",control="cancelled"} 0)",
             R"(mdagg_source_poll_interval_seconds_count{source="beta"} 15)",
             R"(mdagg_source_poll_duration_seconds_count{source="beta"} 0)",
             R"(mdagg_source_tick_lateness_seconds_count{source="alpha"} 0)",
         })
        EXPECT_TRUE(has_line(out, line)) << line;
    EXPECT_NE(out.find("# HELP mdagg_source_throttled_ticks_total Ticks skipped at max_in_flight or in connect backoff.\n"
                       "# TYPE mdagg_source_throttled_ticks_total counter\n"),
              std::string::npos);
    EXPECT_NE(out.find("# TYPE mdagg_source_poll_interval_seconds histogram\n"), std::string::npos);
}

TEST(PollMetrics, SymbolFreshnessCountsSymbolsOnceAndStaleAfterThreeIntervals) {
    const std::int64_t now = 1'000'000'000'000;
    // X: one source fresh, one never polled; Y: last success 4 intervals ago; Z: never.
    const std::vector<mdagg::PollerSnapshot> table{table_row(0, "X", now - 500'000'000), table_row(1, "X", 0),
                                                   table_row(0, "Y", now - 4'000'000'000), table_row(0, "Z", 0)};
    const auto f = mdagg::symbol_freshness(table, now);
    EXPECT_EQ(f.symbols, 3u);
    EXPECT_EQ(f.stale, 2u);
}

TEST(PollMetrics, SymbolFamiliesOnlyForTheChosenPollers) {
    const std::int64_t now = 1'000'000'000'000;
    auto p = table_row(0, "BTC", now - 1'500'000'000);
    p.completed = 4;
    p.last_latency_ns = 3'000'000;
    auto never = table_row(0, "ETH", 0);
    std::string out;
    mdagg::PrometheusWriter w(out);
    mdagg::write_symbol_metrics(w, {&p, &never}, {"sim"}, now);
    EXPECT_TRUE(has_line(out, R"(mdagg_symbol_polls_total{source="sim",symbol="BTC",outcome="completed"} 4)"));
    EXPECT_TRUE(has_line(out, R"(mdagg_symbol_last_success_age_seconds{source="sim",symbol="BTC"} 1.5)"));
    EXPECT_TRUE(has_line(out, R"(mdagg_symbol_poll_latency_seconds{source="sim",symbol="BTC"} 0.003)"));
    EXPECT_TRUE(has_line(out, R"(mdagg_symbol_poll_latency_seconds{source="sim",symbol="ETH"} -1e-09)"));
    EXPECT_EQ(out.find(R"(mdagg_symbol_last_success_age_seconds{source="sim",symbol="ETH"})"), std::string::npos);
}

TEST(PollMetrics, HostFamiliesOneSeriesPerHost) {
    const auto now = std::chrono::steady_clock::now();
    mdagg::HostGuard::Status paused;
    paused.breaker = mdagg::BreakerState::open;
    paused.pause = mdagg::PauseReason::banned;
    paused.paused_until = now + 2s;
    paused.pauses_banned = 1;
    paused.breaker_opens = 3;
    paused.rate_factor = 0.5;
    std::string out;
    mdagg::PrometheusWriter w(out);
    mdagg::write_host_metrics(w, {{"a.example:8080", paused}, {"b.example", {}}}, now);
    for (const char* line : {
             R"(mdagg_host_breaker_state{host="a.example:8080",state="open"} 1)",
             R"(mdagg_host_breaker_state{host="a.example:8080",state="closed"} 0)",
             R"(mdagg_host_breaker_state{host="b.example",state="closed"} 1)",
             R"(mdagg_host_breaker_opens_total{host="a.example:8080"} 3)",
             R"(mdagg_host_paused{host="a.example:8080"} 1)",
             R"(mdagg_host_paused{host="b.example"} 0)",
             R"(mdagg_host_pause_remaining_seconds{host="a.example:8080"} 2)",
             R"(mdagg_host_pause_remaining_seconds{host="b.example"} 0)",
             R"(mdagg_host_pauses_total{host="a.example:8080",reason="banned"} 1)",
             R"(mdagg_host_pauses_total{host="a.example:8080",reason="rate_limited"} 0)",
             R"(mdagg_host_rate_factor{host="a.example:8080"} 0.5)",
         })
        EXPECT_TRUE(has_line(out, line)) << line;
}

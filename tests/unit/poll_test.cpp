// PollerGroup against an in-process HTTP server with canned answers (poll_test_server.hpp):
// each failure lands in its error class, healthy pollers keep delivering, keep-alive and
// interim responses, several io threads, and stop/cancel/retire end every coroutine. The host
// limits are in poll_host_limits_test.cpp.
#include "poll_test_server.hpp"

#include <algorithm>
#include <thread>

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

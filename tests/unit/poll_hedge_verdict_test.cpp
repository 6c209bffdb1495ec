// What a finished hedge leg reports (hedge.hpp, hedge_leg.cpp's hedge_finish): a hedge that
// ended before its request went out is `unsent`, not a sent hedge that `failed`; a loser cut
// by its own grace is no news for its mirror's breaker, not a timeout. Sans-io rules first,
// then a PollerGroup against two in-process listeners for each.
#include "poll_hedge_test_support.hpp"

#include "hedge.hpp"

#include <string_view>

using mdagg::HostVerdict;
using mdagg::detail::hedge_verdict;
using mdagg::detail::HedgeRace;
using mdagg::detail::LegTally;
using mdagg::detail::LoserGrace;
using mdagg::detail::tally_leg;

TEST(HedgeVerdict, AHedgeThatNeverWroteIsUnsentNotFailed) {
    EXPECT_EQ(tally_leg(HedgeRace::racing, false, false, false), LegTally::unsent);
    EXPECT_EQ(tally_leg(HedgeRace::racing, true, false, false), LegTally::failed) << "sent, then failed";
    EXPECT_EQ(tally_leg(HedgeRace::racing, false, true, false), LegTally::none) << "cut before its write";
}

TEST(HedgeVerdict, ALoserCutByItsGraceIsNoNewsForItsHost) {
    using Clock = std::chrono::steady_clock;
    const auto t0 = Clock::time_point{} + 1h;
    const auto deadline = t0 + 100ms;  // the leg's own
    LoserGrace grace;
    EXPECT_FALSE(grace.cuts_before(deadline)) << "no grace yet";
    grace.start(t0 + 10ms, deadline);
    EXPECT_TRUE(grace.cuts_before(deadline));
    EXPECT_FALSE(grace.cuts_before(t0 + 20ms)) << "the leg's own deadline came first";

    for (auto r : {HedgeRace::primary_won, HedgeRace::abandoned}) {
        EXPECT_EQ(hedge_verdict(r, HostVerdict::failing, true, true), HostVerdict::neutral) << to_string(r);
        // Its own deadline, or an error of its own, is the host's.
        EXPECT_EQ(hedge_verdict(r, HostVerdict::failing, true, false), HostVerdict::failing) << to_string(r);
        EXPECT_EQ(hedge_verdict(r, HostVerdict::failing, false, true), HostVerdict::failing) << to_string(r);
        EXPECT_EQ(hedge_verdict(r, HostVerdict::healthy, false, true), HostVerdict::healthy) << to_string(r);
    }
    EXPECT_EQ(hedge_verdict(HedgeRace::racing, HostVerdict::failing, true, false), HostVerdict::failing)
        << "a racing hedge's timeout is its host's";
}

namespace {

// Starts every answer at once and never finishes it: the head and part of the body, then
// silence, so a losing hedge here is one whose answer is arriving.
asio::awaitable<void> answer_part(tcp::socket socket) {
    std::string in;
    const std::string part = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"b\":";
    for (;;) {
        auto [ec, n] = co_await asio::async_read_until(socket, asio::dynamic_buffer(in), "\r\n\r\n",
                                                       asio::as_tuple(asio::use_awaitable));
        if (ec) co_return;
        in.erase(0, n);
        if (std::get<0>(co_await asio::async_write(socket, asio::buffer(part), asio::as_tuple(asio::use_awaitable))))
            co_return;
    }
}

mdagg::HostGuard::Status host_status(const mdagg::PollerGroup& group, std::uint16_t port) {
    const auto suffix = ":" + std::to_string(port);
    for (const auto& [name, st] : group.host_statuses())
        if (std::string_view(name).ends_with(suffix)) return st;
    ADD_FAILURE() << "no host on port " << port;
    return {};
}

}  // namespace

// The primary answers after 30 ms; the mirror starts every answer and never ends it. Each poll
// hedges at 3 ms, the primary wins, and the hedge, its answer arriving, reads on for its 20 ms
// grace and is cut. Nothing there says the mirror is failing: its breaker must hear no timeout.
TEST(HedgeVerdict, ALoserCutByItsGraceCostsItsMirrorNoBreakerFailure) {
    asio::io_context io(1);
    tcp::acceptor primary(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    tcp::acceptor mirror(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    asio::co_spawn(io, accept_with(primary, [](tcp::socket s) { return answer_after(std::move(s), 30ms); }),
                   asio::detached);
    asio::co_spawn(io, accept_with(mirror, [](tcp::socket s) { return answer_part(std::move(s)); }), asio::detached);
    const std::vector<std::string> symbols{"A", "B"};
    const auto mirror_port = mirror.local_endpoint().port();
    auto config = hedged_config(primary.local_endpoint().port(), mirror_port, symbols, 300ms);
    config.hosts[1].breaker.failures = 100;  // counts failures, stays closed: the hedges keep going
    mdagg::Universe universe{{"test"}, symbols};
    std::size_t quotes = 0;
    mdagg::PollerGroup group(io, config, universe, [&](const mdagg::Quote&) { ++quotes; });
    bool all_exited = false;
    group.start([&] { all_exited = true; });
    const auto& st = group.stats(0);
    // Four losers cut by their grace (two pollers, two ticks each).
    for (int i = 0; i < 300 && st.losers_cancelled.load() < 4; ++i) io.run_for(10ms);
    ASSERT_GE(st.losers_cancelled.load(), 4u) << "sent " << st.hedges_sent.load() << ", failed "
                                              << st.hedges_failed.load();
    EXPECT_EQ(st.hedges_failed.load(), 0u);
    EXPECT_GE(quotes, 4u);
    const auto mirror_status = host_status(group, mirror_port);
    EXPECT_EQ(mirror_status.consecutive_failures, 0u) << "a grace cut reported as the mirror's failure";
    EXPECT_EQ(mirror_status.breaker_opens, 0u);
    EXPECT_EQ(st.hedges_refused_host.load(), 0u) << "the mirror's breaker turned hedges away";
    group.stop_scheduling();
    group.cancel_in_flight();
    for (int i = 0; i < 100 && !all_exited; ++i) io.run_for(10ms);
    EXPECT_TRUE(all_exited);
}

// The mirror refuses connections: every hedge ends before its request goes out. None was
// sent, so none failed: they are unsent.
TEST(HedgeVerdict, AHedgeWhoseConnectIsRefusedIsUnsentNotFailed) {
    asio::io_context io(1);
    tcp::acceptor primary(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    asio::co_spawn(io, accept_with(primary, [](tcp::socket s) { return answer_after(std::move(s), 30ms); }),
                   asio::detached);
    std::uint16_t refused_port = 0;
    {
        tcp::acceptor gone(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        refused_port = gone.local_endpoint().port();
    }  // closed: connects to it are refused
    const std::vector<std::string> symbols{"A", "B"};
    auto config = hedged_config(primary.local_endpoint().port(), refused_port, symbols, 300ms);
    mdagg::Universe universe{{"test"}, symbols};
    std::size_t quotes = 0;
    mdagg::PollerGroup group(io, config, universe, [&](const mdagg::Quote&) { ++quotes; });
    bool all_exited = false;
    group.start([&] { all_exited = true; });
    const auto& st = group.stats(0);
    for (int i = 0; i < 300 && (st.hedges_unsent.load() + st.hedges_failed.load() < 4 || quotes < 4); ++i)
        io.run_for(10ms);
    EXPECT_GE(st.hedges_unsent.load(), 4u);
    EXPECT_EQ(st.hedges_failed.load(), 0u) << "a hedge never written counted as a sent hedge that failed";
    EXPECT_EQ(st.hedges_sent.load(), 0u);
    EXPECT_GE(quotes, 4u) << "the first requests went on alone";
    group.stop_scheduling();
    group.cancel_in_flight();
    for (int i = 0; i < 100 && !all_exited; ++i) io.run_for(10ms);
    EXPECT_TRUE(all_exited);
}

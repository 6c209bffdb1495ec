// The hedge leg's lifetime and accounting (hedge.hpp, hedge_leg.cpp): a losing leg's grace
// survives a retry's re-arm, what a finished leg adds to the counters, and (PollerGroup against
// two in-process listeners) a poller whose poll threw still waits for its hedge leg before it
// exits, so the leg never outlives the poller it refers to.
#include "poll_hedge_test_support.hpp"

#include "hedge.hpp"
#include "poll_fsm.hpp"

#include <boost/asio/error.hpp>

#include <stdexcept>

using mdagg::detail::HedgeRace;
using mdagg::detail::LegTally;
using mdagg::detail::LoserGrace;
using mdagg::detail::PollAction;
using mdagg::detail::PollFsm;
using mdagg::detail::tally_leg;

TEST(HedgeLeg, ALosersGraceSurvivesARetryThatReArmsTheDeadline) {
    using Clock = std::chrono::steady_clock;
    const auto t0 = Clock::time_point{} + 1h;
    PollFsm fsm(1s, 100ms, 1);
    LoserGrace grace;
    // A first exchange leaves a kept-alive connection: the next poll reuses it.
    ASSERT_EQ(fsm.on_tick(t0).kind, PollAction::Kind::connect);
    ASSERT_EQ(fsm.on_connected(t0).kind, PollAction::Kind::write);
    ASSERT_EQ(fsm.on_written(true).kind, PollAction::Kind::parse);
    mdagg::detail::ParseResult ok;
    ok.complete = true;
    ok.status = 200;
    ASSERT_EQ(fsm.on_parsed(ok).kind, PollAction::Kind::deliver);
    ASSERT_EQ(fsm.on_delivered().kind, PollAction::Kind::done);

    const auto t1 = t0 + 1s;
    grace.reset();
    ASSERT_EQ(fsm.on_tick(t1).kind, PollAction::Kind::write);
    EXPECT_EQ(grace.bound(fsm.deadline()), t1 + 100ms) << "no grace: the leg's own deadline";
    ASSERT_EQ(fsm.on_written(true).kind, PollAction::Kind::parse);
    ASSERT_EQ(fsm.on_parsed({}).kind, PollAction::Kind::read);
    // The primary won while this leg's answer was arriving: it reads on for the grace.
    EXPECT_EQ(grace.start(t1 + 5ms, fsm.deadline()), t1 + 5ms + mdagg::detail::hedge_loser_grace);
    // Then the reused connection resets: the fsm retries on a new one, a connect_timeout away.
    const PollAction retry = fsm.on_failed(boost::asio::error::connection_reset, t1 + 6ms);
    ASSERT_EQ(retry.kind, PollAction::Kind::connect);
    ASSERT_TRUE(retry.has(PollAction::arm_deadline));
    ASSERT_EQ(fsm.deadline(), t1 + 6ms + 1s);
    EXPECT_EQ(grace.bound(fsm.deadline()), t1 + 5ms + mdagg::detail::hedge_loser_grace)
        << "the retry must not give the loser connect_timeout + timeout more";
    // A second grace never extends the first.
    EXPECT_EQ(grace.start(t1 + 15ms, fsm.deadline()), t1 + 5ms + mdagg::detail::hedge_loser_grace);
    grace.reset();  // the next hedge starts without one
    EXPECT_EQ(grace.bound(fsm.deadline()), fsm.deadline());
}

TEST(HedgeLeg, ALegIsSentOnlyOnceWrittenAndACutLegIsNoFailure) {
    // Racing: failed on its own (unsent if it ended before its request went out); cut by a
    // drain or an operator, a loser cancelled if its request was out, nothing if not.
    EXPECT_EQ(tally_leg(HedgeRace::racing, true, false, false), LegTally::failed);
    EXPECT_EQ(tally_leg(HedgeRace::racing, false, false, false), LegTally::unsent) << "e.g. refused: never sent";
    EXPECT_EQ(tally_leg(HedgeRace::racing, true, true, false), LegTally::loser_cancelled);
    EXPECT_EQ(tally_leg(HedgeRace::racing, false, true, false), LegTally::none);
    // Lost or abandoned: read and dropped, or closed; nothing when no request went out.
    for (auto r : {HedgeRace::primary_won, HedgeRace::abandoned}) {
        EXPECT_EQ(tally_leg(r, true, true, true), LegTally::loser_discarded);
        EXPECT_EQ(tally_leg(r, true, true, false), LegTally::loser_cancelled);
        EXPECT_EQ(tally_leg(r, false, true, false), LegTally::none);
    }
    EXPECT_EQ(tally_leg(HedgeRace::hedge_won, true, false, true), LegTally::none) << "counted as a win";
    EXPECT_EQ(tally_leg(HedgeRace::idle, false, false, false), LegTally::none);
}

// The primary answers after 40 ms, the mirror never: each poll hedges at 3 ms and the primary
// wins, cancelling its leg. Delivering the quote throws, so run() ends by a throw while the
// cancelled leg still has its aborted read to finish. The poller must exit only after that:
// on_exit may free it (a retired poller), and the leg refers to it and re-arms its wheel entry.
TEST(HedgeLeg, APollerWhosePollThrewExitsOnlyAfterItsHedgeLegEnded) {
    asio::io_context io(1);
    tcp::acceptor primary(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    tcp::acceptor mirror_listener(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    asio::co_spawn(io, accept_with(primary, [](tcp::socket s) { return answer_after(std::move(s), 40ms); }),
                   asio::detached);
    asio::co_spawn(io, accept_with(mirror_listener, [](tcp::socket s) { return answer_after(std::move(s), -1ms); }),
                   asio::detached);

    std::vector<std::string> symbols{"A", "B", "C"};
    auto config = make_config(primary.local_endpoint().port(), symbols);
    auto& source = config.sources[0];
    source.interval = 500ms;
    source.timeout = 300ms;
    source.hedge.enabled = true;
    source.hedge.after = 3ms;
    source.hedge.max_extra = 1.0;  // a hedge per first request
    mdagg::MirrorConfig mirror;
    mirror.url = source.url;
    mirror.url.port = mirror_listener.local_endpoint().port();
    mirror.url_text = "http://127.0.0.1:" + std::to_string(mirror.url.port) + "/quotes/{symbol}";
    mirror.host = 1;
    source.mirrors.push_back(mirror);
    mdagg::HostConfig mirror_host = config.hosts[0];
    mirror_host.port = mirror.url.port;
    config.hosts.push_back(mirror_host);
    mdagg::Universe universe{{"test"}, symbols};
    mdagg::PollerGroup group(io, config, universe, [](const mdagg::Quote&) { throw std::runtime_error("sink bug"); });

    // At the last exit every leg that went out has ended and been counted.
    bool all_exited = false;
    std::uint64_t sent = 0, ended = 0;
    group.start([&] {
        all_exited = true;
        const auto& st = group.stats(0);
        sent = st.hedges_sent.load();
        ended = st.hedges_failed.load() + st.losers_cancelled.load() + st.losers_discarded.load();
        for (const auto& w : st.hedge_wins) ended += w.load();
    });
    for (int i = 0; i < 300 && !all_exited; ++i) io.run_for(10ms);
    ASSERT_TRUE(all_exited) << "every poller's poll throws at its first quote";
    EXPECT_EQ(group.running(), 0u);
    EXPECT_GE(sent, 1u) << "the hedges went out before the primary's answer";
    EXPECT_EQ(ended, sent) << "a poller exited while its hedge leg still ran";
    const auto& st = group.stats(0);
    EXPECT_EQ(st.losers_cancelled.load(), st.hedges_sent.load()) << "the primary won every race";
    EXPECT_EQ(st.hedges_failed.load(), 0u);
}

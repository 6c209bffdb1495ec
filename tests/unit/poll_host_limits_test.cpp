// PollerGroup and the host's limits, against the in-process server (poll_test_server.hpp):
// refusals and drops back off, 429/503/ban pause the whole host, the token bucket holds the
// host to its rate, the breaker opens and heals, and pauses survive a reload or a restart.
#include "poll_test_server.hpp"

#include <algorithm>
#include <filesystem>
#include <unistd.h>

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

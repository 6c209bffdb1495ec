// mdagg-sim with several --listen (a venue's mirrors) as a process: the listening line names
// every listener, --fault "listener": K hits only that one, /control/listeners/K/faults ends
// it, and the stopped line counts every listener.
#include "harness.hpp"

#include <gtest/gtest.h>

#include <csignal>

namespace {

using harness::TempDir;
using namespace std::chrono_literals;

TEST(SimListenersCli, EachListenerHasItsOwnFaultsAndOneBook) {
    TempDir dir;
    auto sim = harness::start_sim(
        dir.path(), {"--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--symbols", "10", "--control", "127.0.0.1:0",
                     "--fault", R"({"kind":"status","status":502,"listener":1})"});
    auto line = sim.process->wait_for_line("event", "listening", 5s);
    ASSERT_TRUE(line);
    ASSERT_EQ((*line)["listeners"].size(), 2u) << line->dump();
    EXPECT_EQ((*line)["listeners"][0]["port"], sim.port);
    const int mirror = (*line)["listeners"][1]["port"].get<int>();
    ASSERT_NE(mirror, 0);
    ASSERT_NE(mirror, sim.port);

    EXPECT_EQ(nlohmann::json::parse(harness::http_get(sim.port, "/quotes/STOCK_1"))["seq"], 1);
    EXPECT_EQ(harness::http_request(mirror, "GET", "/quotes/STOCK_1").status, 502);
    EXPECT_EQ(harness::http_request(sim.control_port, "DELETE", "/control/listeners/1/faults")
                  .status,
              200);
    EXPECT_EQ(nlohmann::json::parse(harness::http_get(mirror, "/quotes/STOCK_1"))["seq"], 2);

    sim.process->signal(SIGTERM);
    ASSERT_EQ(sim.process->wait(10s), 0);
    auto stopped = sim.process->wait_for_line("event", "stopped", 1s);
    ASSERT_TRUE(stopped);
    EXPECT_EQ((*stopped)["responses"], 2);
    EXPECT_EQ((*stopped)["listeners"][0]["responses"], 1);
    EXPECT_EQ((*stopped)["listeners"][1]["responses"], 1);
    EXPECT_EQ((*stopped)["faults"]["status"], 1);
}

TEST(SimListenersCli, AFaultForAMissingListenerExitsTwo) {
    TempDir dir;
    harness::Process sim("sim-bad",
                         {MDAGG_SIM_BIN, "--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0",
                          "--fault", R"({"kind":"hang","listener":2})"},
                         dir.path());
    EXPECT_EQ(sim.wait(10s), 2);
    EXPECT_NE(sim.stderr_text().find("'listener'"), std::string::npos) << sim.stderr_text();
}

}  // namespace

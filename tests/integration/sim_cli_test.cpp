// mdagg-sim as a process: faults from the command line and a file, the control listener,
// and the stats on exit. The faults themselves are tested in tests/unit/sim_test.cpp.
#include "harness.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <thread>

namespace {

using harness::TempDir;
using namespace std::chrono_literals;

template <class Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds limit = 10s) {
    for (const auto deadline = std::chrono::steady_clock::now() + limit;
         std::chrono::steady_clock::now() < deadline;) {
        if (predicate()) return true;
        std::this_thread::sleep_for(20ms);
    }
    return predicate();
}

TEST(SimCli, BadFaultsAndControlAddressesExitTwo) {
    TempDir dir;
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
        {{"--fault", R"({"kind":"nope"})"}, "unknown kind"},
        {{"--fault", R"({"kind":"status","status":99})"}, "'status'"},
        {{"--fault", "{"}, "not valid JSON"},
        {{"--control", "nowhere"}, "--control"},
        {{"--faults-file", (dir / "missing.json").string()}, "--faults-file"},
    };
    for (const auto& [args, message] : cases) {
        std::vector<std::string> argv{MDAGG_SIM_BIN, "--listen", "127.0.0.1:0"};
        argv.insert(argv.end(), args.begin(), args.end());
        harness::Process sim("sim-bad", argv, dir.path());
        EXPECT_EQ(sim.wait(10s), 2) << args.back();
        EXPECT_NE(sim.stderr_text().find(message), std::string::npos)
            << args.back() << ": " << sim.stderr_text();
    }
}

TEST(SimCli, ControlListenerDrivesFaultsAndExitReportsThem) {
    TempDir dir;
    {
        std::ofstream file(dir / "faults.jsonl");
        file << "# one fault per line\n"
             << R"({"kind":"status","status":502,"symbols":["STOCK_1"]})" << "\n\n"
             << R"({"kind":"body_error","symbols":["STOCK_2"],"count":1})" << "\n";
    }
    auto sim = harness::start_sim(
        dir.path(), {"--symbols", "10", "--control", "127.0.0.1:0", "--faults-file",
                     (dir / "faults.jsonl").string(), "--fault",
                     R"({"kind":"latency","min":"1ms","symbols":["STOCK_3"]})"});
    ASSERT_NE(sim.control_port, 0);
    ASSERT_NE(sim.control_port, sim.port);
    EXPECT_EQ(harness::http_request(sim.port, "GET", "/quotes/STOCK_1").status, 502);
    EXPECT_EQ(harness::http_get(sim.port, "/quotes/STOCK_2"), R"({"code":"50011","msg":"busy"})");
    EXPECT_EQ(nlohmann::json::parse(harness::http_get(sim.port, "/quotes/STOCK_3"))["seq"], 1);

    // Refuse connections; the control listener stays reachable to end it.
    const auto id = harness::sim_add_fault(sim.control_port, {{"kind", "refuse"}});
    ASSERT_TRUE(eventually(
        [&] { return harness::http_request(sim.port, "GET", "/stats").status == 0; }));
    EXPECT_EQ(nlohmann::json::parse(harness::http_get(sim.control_port, "/stats"))["listening"],
              false);
    EXPECT_EQ(harness::http_request(sim.control_port, "DELETE",
                                    "/control/faults/" + std::to_string(id))
                  .status,
              200);
    ASSERT_TRUE(eventually(
        [&] { return harness::http_request(sim.port, "GET", "/stats").status == 200; }));
    EXPECT_EQ(nlohmann::json::parse(harness::http_get(sim.port, "/quotes/STOCK_3"))["seq"], 2);

    const auto bad = harness::http_request(sim.control_port, "POST", "/control/faults",
                                           R"({"kind":"ban","period":"forever"})");
    EXPECT_EQ(bad.status, 400);
    EXPECT_NE(bad.body.find("'period'"), std::string::npos) << bad.body;

    sim.process->signal(SIGTERM);
    ASSERT_EQ(sim.process->wait(10s), 0);
    auto stopped = sim.process->wait_for_line("event", "stopped", 1s);
    ASSERT_TRUE(stopped);
    EXPECT_EQ((*stopped)["faults"]["status"], 1);
    EXPECT_EQ((*stopped)["faults"]["body_error"], 1);
    EXPECT_EQ((*stopped)["faults"]["refuse"], 1);
    EXPECT_EQ((*stopped)["faults"]["latency"], 2);
    EXPECT_EQ((*stopped)["responses"], 2);
    EXPECT_EQ((*stopped)["last_seq"]["STOCK_3"], 2);
    EXPECT_EQ((*stopped)["per_symbol"]["STOCK_3"], 2);
}

}  // namespace

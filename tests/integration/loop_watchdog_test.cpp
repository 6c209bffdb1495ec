// The event-loop watchdog with runtime.threads: 2: one shard's io thread (mdagg-io-1) is
// frozen for real with ptrace while every other thread runs, as a handler stuck in a blocking
// call would leave it. /healthz must name the thread, one error line start the episode, the
// per-thread metrics show it, and all of it clear when the thread turns again.
#include "harness.hpp"

#include <gtest/gtest.h>

#include <sys/ptrace.h>
#include <sys/wait.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

using namespace std::chrono_literals;
using harness::Process;
using harness::TempDir;

namespace {

std::string config_text(const TempDir& dir, int sim_port) {
    std::ostringstream out;
    out << "runtime: { threads: 2 }\n"
        << "shutdown: { grace: 3s }\n"
        << "log: { level: info, summary_every: 60s }\n"
        << "output: { dir: " << (dir / "out").string() << ", flush_every: 200ms }\n"
        << "admin: { listen: \"127.0.0.1:0\" }\n"
        << "sources:\n"
        << "  - name: sim\n"
        << "    url: \"http://127.0.0.1:" << sim_port << "/quotes/{symbol}\"\n"
        << "    interval: 200ms\n"
        << "    symbols: { prefix: STOCK_, count: 4 }\n"
        << "    fields: { symbol: /symbol, bid: /bidPrice, ask: /askPrice, seq: /seq }\n";
    return out.str();
}

// The thread id of the daemon's thread named `name` (/proc/<pid>/task/<tid>/comm), or -1.
pid_t thread_named(pid_t pid, const std::string& name) {
    for (auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
        std::string comm;
        std::getline(std::ifstream(task.path() / "comm"), comm);
        if (comm == name) return static_cast<pid_t>(std::stol(task.path().filename().string()));
    }
    return -1;
}

int count_lines(const Process& p, const std::string& msg) {
    int n = 0;
    for (auto& l : p.stdout_json()) n += l.value("msg", "") == msg;
    return n;
}

}  // namespace

TEST(Health, MultiThreadedWatchdogNamesAFrozenIoThreadAndSeesItRecover) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "4"});
    const auto path = dir / "mdagg.yaml";
    std::ofstream(path) << config_text(dir, sim.port);
    Process daemon("mdagg", {MDAGG_BIN, "--config", path.string()}, dir.path());
    auto listening = daemon.wait_for_line("msg", "admin listening", 15s);
    ASSERT_TRUE(listening) << daemon.stdout_text();
    const int port = (*listening)["port"].get<int>();
    ASSERT_TRUE(harness::wait_until([&] { return harness::http_request(port, "GET", "/readyz").status == 200; }, 20s))
        << daemon.stdout_text();
    auto metrics = harness::http_request(port, "GET", "/metrics").body;
    EXPECT_EQ(harness::metric(metrics, R"(mdagg_event_loop_thread_stalls_total{thread="1"})"), 0);
    EXPECT_LT(harness::metric(metrics, R"(mdagg_event_loop_heartbeat_age_seconds{thread="1"})").value_or(99), 5);

    const pid_t shard = thread_named(daemon.pid(), "mdagg-io-1");
    ASSERT_GT(shard, 0) << "no thread named mdagg-io-1";
    if (::ptrace(PTRACE_SEIZE, shard, nullptr, nullptr) != 0)
        GTEST_SKIP() << "ptrace not permitted here: " << std::strerror(errno);
    ASSERT_EQ(::ptrace(PTRACE_INTERRUPT, shard, nullptr, nullptr), 0) << std::strerror(errno);
    int status = 0;
    ASSERT_EQ(::waitpid(shard, &status, __WALL), shard);

    // While it is frozen: gather, then let it go before asserting (a failed assertion must not
    // leave the thread stopped).
    harness::HttpResponse health;
    const bool unhealthy = harness::wait_until(
        [&] {
            health = harness::http_request(port, "GET", "/healthz");
            return health.status == 503;
        },
        15s);
    const auto stalled_line = daemon.wait_for_line("msg", "event loop stalled: an io thread has not run", 5s);
    const auto frozen_metrics = harness::http_request(port, "GET", "/metrics").body;
    const bool detached = ::ptrace(PTRACE_DETACH, shard, nullptr, nullptr) == 0;
    ASSERT_TRUE(detached) << std::strerror(errno);

    ASSERT_TRUE(unhealthy) << daemon.stdout_text();
    const auto body = health.json();
    EXPECT_EQ(body["status"], "unhealthy");
    EXPECT_EQ(body["problems"], nlohmann::json::array({"event loop stalled: io thread 1"})) << health.body;
    EXPECT_EQ(body["event_loop_stalled_threads"], nlohmann::json::array({1}));
    ASSERT_TRUE(stalled_line) << daemon.stdout_text();
    EXPECT_EQ((*stalled_line)["level"], "error");
    EXPECT_EQ((*stalled_line)["thread"], 1);
    EXPECT_GT((*stalled_line)["since_ms"].get<double>(), 5000);
    EXPECT_EQ(harness::metric(frozen_metrics, "mdagg_event_loop_stalled"), 1);
    EXPECT_EQ(harness::metric(frozen_metrics, "mdagg_event_loop_stalls_total"), 1);
    EXPECT_EQ(harness::metric(frozen_metrics, R"(mdagg_event_loop_thread_stalls_total{thread="1"})"), 1);
    EXPECT_EQ(harness::metric(frozen_metrics, R"(mdagg_event_loop_thread_stalls_total{thread="0"})"), 0);
    EXPECT_GT(harness::metric(frozen_metrics, R"(mdagg_event_loop_heartbeat_age_seconds{thread="1"})").value_or(0), 5);
    // The main thread answered all along: its loop was never the one stalled.
    EXPECT_LT(harness::metric(frozen_metrics, R"(mdagg_event_loop_heartbeat_age_seconds{thread="0"})").value_or(99), 5);

    // Released: one info line with how long, and everything clear again.
    const auto recovered = daemon.wait_for_line("msg", "event loop turning again", 10s);
    ASSERT_TRUE(recovered) << daemon.stdout_text();
    EXPECT_EQ((*recovered)["level"], "info");
    EXPECT_EQ((*recovered)["thread"], 1);
    EXPECT_GT((*recovered)["stalled_ms"].get<double>(), 5000);
    EXPECT_TRUE(harness::wait_until([&] { return harness::http_request(port, "GET", "/healthz").status == 200; }, 5s));
    metrics = harness::http_request(port, "GET", "/metrics").body;
    EXPECT_EQ(harness::metric(metrics, "mdagg_event_loop_stalled"), 0);
    EXPECT_EQ(harness::metric(metrics, "mdagg_event_loop_stalls_total"), 1);
    EXPECT_EQ(harness::metric(metrics, R"(mdagg_event_loop_thread_stalls_total{thread="1"})"), 1);
    EXPECT_LT(harness::metric(metrics, R"(mdagg_event_loop_heartbeat_age_seconds{thread="1"})").value_or(99), 5);
    // One line each per episode, not one per check.
    EXPECT_EQ(count_lines(daemon, "event loop stalled: an io thread has not run"), 1);
    EXPECT_EQ(count_lines(daemon, "event loop turning again"), 1);
    EXPECT_EQ(count_lines(daemon, "event loop stalled: the control strand has not run"), 0);

    daemon.signal(SIGTERM);
    ASSERT_EQ(daemon.wait(10s), 0) << daemon.stdout_text();
    // Stopping the shard threads at the drain's end is no stall.
    EXPECT_EQ(count_lines(daemon, "event loop stalled: an io thread has not run"), 1);
}

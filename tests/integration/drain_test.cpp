// The drain's bounds end to end: the budget running out on its own (a disk that stops
// answering), the watchdog when the event loop is blocked or stdout is a full pipe, the drain
// record and the last-drain gauges of the next process, and the summary's error_rate.
#include "harness.hpp"
#include "output_checks.hpp"
#include "scoped_env.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

using namespace std::chrono_literals;
using harness::DaemonConfig;
using harness::find_log;
using harness::Process;
using harness::ScopedEnv;
using harness::sim_stats;
using harness::start_daemon;
using harness::TempDir;
using Clock = std::chrono::steady_clock;

namespace {

std::optional<nlohmann::json> read_json(const std::filesystem::path& p) {
    std::ifstream in(p);
    if (!in) return std::nullopt;
    std::stringstream ss;
    ss << in.rdbuf();
    auto j = nlohmann::json::parse(ss.str(), nullptr, false);
    if (j.is_discarded()) return std::nullopt;
    return j;
}

using harness::metric;

int admin_port(const Process& daemon) {
    auto line = daemon.wait_for_line("msg", "admin listening", 15s);
    return line ? (*line)["port"].get<int>() : 0;
}

const std::string admin_section = "admin: { listen: \"127.0.0.1:0\" }\n";

std::filesystem::path memory_dir() {
    return std::filesystem::is_directory("/dev/shm") ? std::filesystem::path("/dev/shm")
                                                     : std::filesystem::temp_directory_path();
}

}  // namespace

// A disk that stops answering mid-run (fsync and fdatasync never return, through an
// LD_PRELOAD shim): one SIGTERM, no second signal; the drain gives up on the sink at its
// deadline and the process exits 3 within the budget plus the watchdog's slack.
TEST(Drain, BudgetRunsOutOnAHungDiskWithoutASecondSignal) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "20"});
    DaemonConfig c;
    c.port = sim.port;
    c.symbols = 20;
    // 3 s: the watchdog's slack is then 250 ms (a tenth of the budget, at most 250 ms), time
    // enough for the drain to log its outcome before the record's fsync hangs.
    c.grace = "3s";
    const auto flag = dir / "disk-hangs";
    std::unique_ptr<Process> daemon;
    {
        harness::ScopedPreload shim(MDAGG_HANG_FSYNC_SHIM);
        ScopedEnv flag_env("MDAGG_TEST_HANG_FSYNC_FILE", flag.string());
        daemon = start_daemon(dir, harness::write_config(dir.path(), c));
    }
    ASSERT_TRUE(daemon->wait_for_line("msg", "summary", 15s)) << daemon->stdout_text() << daemon->stderr_text();
    std::ofstream(flag) << "hang\n";
    std::this_thread::sleep_for(500ms);  // a flush or two are stuck in fdatasync now
    ASSERT_TRUE(daemon->running());
    const auto t0 = Clock::now();
    daemon->signal(SIGTERM);
    const auto code = daemon->wait(10s);
    const auto elapsed = Clock::now() - t0;
    std::filesystem::remove(flag);
    ASSERT_TRUE(code) << "mdagg hung with its disk";
    EXPECT_EQ(*code, 3) << daemon->stdout_text();
    EXPECT_GE(elapsed, 2500ms) << "the drain waits for the sink until its deadline";
    EXPECT_LT(elapsed, 3s + 3s);
    auto incomplete = find_log(*daemon, "drain incomplete: budget exceeded or forced");
    ASSERT_TRUE(incomplete) << daemon->stdout_text();
    EXPECT_EQ((*incomplete)["exit_code"], 3);
    EXPECT_EQ((*incomplete)["sink_closed"], false);
    EXPECT_EQ((*incomplete)["emergency"], false) << "no second signal was sent";
    EXPECT_FALSE(find_log(*daemon, "second signal during drain: skipping to the emergency flush"));
}

// The event loop is blocked when the drain starts (a test-only hook sleeps on it for a
// minute): the watchdog, armed by the signal thread, still ends the process with exit 3
// within the budget plus its slack, and records the forced stop.
TEST(Drain, WatchdogEndsTheProcessWhenTheEventLoopIsBlocked) {
    // The watchdog gives the record 250 ms: memory-backed, so a busy disk cannot make it miss.
    TempDir dir(memory_dir());
    auto sim = harness::start_sim(dir.path(), {"--symbols", "20"});
    DaemonConfig c;
    c.port = sim.port;
    c.symbols = 20;
    c.grace = "1s";
    std::unique_ptr<Process> daemon;
    {
        ScopedEnv block("MDAGG_TEST_BLOCK_LOOP_MS", "60000");
        daemon = start_daemon(dir, harness::write_config(dir.path(), c));
    }
    ASSERT_TRUE(daemon->wait_for_line("msg", "summary", 15s)) << daemon->stdout_text() << daemon->stderr_text();
    const auto t0 = Clock::now();
    daemon->signal(SIGTERM);
    const auto code = daemon->wait(10s);
    const auto elapsed = Clock::now() - t0;
    ASSERT_TRUE(code) << "the watchdog did not end a drain whose event loop is blocked";
    EXPECT_EQ(*code, 3);
    EXPECT_GE(elapsed, 1s);
    EXPECT_LT(elapsed, 1s + 3s);
    EXPECT_TRUE(find_log(*daemon, "drain watchdog fired: the drain did not finish within its budget; forcing exit"))
        << daemon->stdout_text();
    auto record = read_json(dir / "out" / ".mdagg-drain.json");
    ASSERT_TRUE(record) << "no drain record";
    EXPECT_EQ((*record)["exit_code"], 3);
    EXPECT_EQ((*record)["forced_by_watchdog"], true);
    EXPECT_GE((*record)["duration_ms"].get<double>(), 1000.0);
    EXPECT_TRUE((*record)["records_abandoned"].is_null());
}

// stdout is a pipe that is full and that nobody reads: the daemon's first log line blocks
// (with the logger's lock held). SIGTERM still ends it with exit 3 within the bound: the
// watchdog neither needs the loop nor blocks on its own line.
TEST(Drain, WatchdogExitsWhenStdoutIsAFullPipeNobodyReads) {
    // The watchdog gives the record 250 ms: memory-backed, so a busy disk cannot make it miss.
    TempDir dir(memory_dir());
    auto sim = harness::start_sim(dir.path(), {"--symbols", "20"});
    DaemonConfig c;
    c.port = sim.port;
    c.symbols = 20;
    c.grace = "1s";
    const auto config = harness::write_config(dir.path(), c);

    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    ASSERT_EQ(::fcntl(fds[1], F_SETFL, O_NONBLOCK), 0);
    const std::string chunk(4096, 'x');
    while (::write(fds[1], chunk.data(), chunk.size()) > 0) {
    }
    ASSERT_EQ(errno, EAGAIN);
    ASSERT_EQ(::fcntl(fds[1], F_SETFL, 0), 0);  // the daemon's writes block
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    const auto err = dir / "mdagg.err";
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    std::string bin = MDAGG_BIN, flag = "--config", path = config.string();
    char* argv[] = {bin.data(), flag.data(), path.data(), nullptr};
    pid_t pid = -1;
    ASSERT_EQ(::posix_spawn(&pid, argv[0], &actions, &attr, argv, environ), 0);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    ::close(fds[1]);  // the read end stays open and unread

    auto wait_exit = [&](std::chrono::milliseconds timeout) -> std::optional<int> {
        for (const auto until = Clock::now() + timeout; Clock::now() < until; std::this_thread::sleep_for(5ms)) {
            int st = 0;
            if (::waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        return std::nullopt;
    };
    // Started and stuck on its log: the sink created the output directory.
    for (int i = 0; i < 300 && !std::filesystem::exists(dir / "out"); ++i) std::this_thread::sleep_for(50ms);
    std::this_thread::sleep_for(500ms);
    ASSERT_FALSE(wait_exit(0ms)) << "mdagg exited early";
    const auto t0 = Clock::now();
    ::kill(pid, SIGTERM);
    const auto code = wait_exit(10s);
    const auto elapsed = Clock::now() - t0;
    if (!code) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
    }
    ::close(fds[0]);
    ASSERT_TRUE(code) << "mdagg hung on a full stdout pipe";
    EXPECT_EQ(*code, 3);
    EXPECT_LT(elapsed, 1s + 3s);
    auto record = read_json(dir / "out" / ".mdagg-drain.json");
    ASSERT_TRUE(record) << "no drain record";
    EXPECT_EQ((*record)["forced_by_watchdog"], true);
}

// A clean drain writes .mdagg-drain.json; the next process exports it as gauges, which are
// absent on a first start.
TEST(Drain, RecordIsWrittenAndExportedAsMetricsAtTheNextStart) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "20"});
    DaemonConfig c;
    c.port = sim.port;
    c.symbols = 20;
    c.extra = admin_section;
    const auto config = harness::write_config(dir.path(), c);

    auto first = start_daemon(dir, config);
    const int port1 = admin_port(*first);
    ASSERT_NE(port1, 0) << first->stdout_text();
    const auto metrics1 = harness::http_get(port1, "/metrics");
    ASSERT_TRUE(metric(metrics1, "mdagg_uptime_seconds")) << metrics1;
    EXPECT_FALSE(metric(metrics1, "mdagg_last_drain_duration_seconds")) << "no drain before the first start";
    EXPECT_FALSE(metric(metrics1, "mdagg_last_drain_exit_code"));
    std::this_thread::sleep_for(1s);
    const auto before = std::chrono::system_clock::now();
    first->signal(SIGTERM);
    ASSERT_EQ(first->wait(10s), 0) << first->stdout_text();
    auto done = find_log(*first, "drain complete");
    ASSERT_TRUE(done);
    auto record = read_json(dir / "out" / ".mdagg-drain.json");
    ASSERT_TRUE(record) << "no drain record";
    EXPECT_EQ((*record)["exit_code"], 0);
    EXPECT_EQ((*record)["records_abandoned"], 0);
    EXPECT_EQ((*record)["forced_by_watchdog"], false);
    EXPECT_NEAR((*record)["duration_ms"].get<double>(), (*done)["drain_ms"].get<double>(), 0.001);
    const auto wall = std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::nanoseconds((*record)["wall_time_ns"].get<std::int64_t>())));
    EXPECT_GE(wall, before - 1s);
    EXPECT_LE(wall, std::chrono::system_clock::now());
    EXPECT_TRUE((*record)["wall_time"].is_string());
    EXPECT_FALSE(std::filesystem::exists(dir / "out" / ".mdagg-drain.json.tmp"));
    harness::check_output(dir);

    auto second = std::make_unique<Process>("mdagg2", std::vector<std::string>{MDAGG_BIN, "--config", config.string()},
                                            dir.path());
    const int port2 = admin_port(*second);
    ASSERT_NE(port2, 0) << second->stdout_text();
    const auto metrics2 = harness::http_get(port2, "/metrics");
    auto duration = metric(metrics2, "mdagg_last_drain_duration_seconds");
    ASSERT_TRUE(duration) << metrics2;
    EXPECT_NEAR(*duration, (*record)["duration_ms"].get<double>() / 1000.0, 1e-6);
    EXPECT_EQ(metric(metrics2, "mdagg_last_drain_exit_code"), 0.0);
    EXPECT_NE(metrics2.find("# TYPE mdagg_last_drain_exit_code gauge"), std::string::npos);
    second->signal(SIGTERM);
    EXPECT_EQ(second->wait(10s), 0);
}

// A status fault on a known share of the symbols (25 of 100: a 400, which the breaker takes as
// a live host): the summary's error_rate is that share, and the errors name the class.
TEST(Summary, ErrorRateIsTheShareOfFailingPolls) {
    TempDir dir;
    nlohmann::json fault{{"kind", "status"}, {"status", 400}, {"symbols", nlohmann::json::array()}};
    for (int i = 0; i < 100; i += 4) fault["symbols"].push_back("STOCK_" + std::to_string(i));
    auto sim = harness::start_sim(dir.path(), {"--symbols", "100", "--fault", fault.dump()});
    DaemonConfig c;
    c.port = sim.port;
    c.symbols = 100;
    c.interval = "250ms";  // a generous timeout (the interval): timeouts would count as errors
    auto daemon = start_daemon(dir, harness::write_config(dir.path(), c));
    std::vector<nlohmann::json> summaries;
    for (int i = 0; i < 200 && summaries.size() < 4; ++i) {
        std::this_thread::sleep_for(100ms);
        summaries.clear();
        for (auto& line : daemon->stdout_json())
            if (line.value("msg", "") == "summary") summaries.push_back(line);
    }
    daemon->signal(SIGTERM);
    EXPECT_EQ(daemon->wait(10s), 0) << daemon->stdout_text();
    ASSERT_GE(summaries.size(), 4u) << daemon->stdout_text();
    for (std::size_t i = 1; i < summaries.size(); ++i) {  // the first covers the start-up
        const auto& s = summaries[i];
        const auto done = s["completed"].get<double>() + s["failed"].get<double>() + s["timed_out"].get<double>();
        ASSERT_GT(done, 100.0) << s.dump();
        EXPECT_NEAR(s["error_rate"].get<double>(), (s["failed"].get<double>() + s["timed_out"].get<double>()) / done, 1e-9)
            << s.dump();
        EXPECT_GE(s["error_rate"].get<double>(), 0.20) << s.dump();
        EXPECT_LE(s["error_rate"].get<double>(), 0.32) << s.dump();
        EXPECT_GT(s["errors"].value("http_4xx", 0), 0) << s.dump();
    }
    EXPECT_GT(sim_stats(sim.port)["faults"]["status"].get<int>(), 0);
}

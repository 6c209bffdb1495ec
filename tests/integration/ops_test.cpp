// The ops endpoints against the real daemon and simulator: /metrics through promtool,
// health, readiness across a drain, the task table, pause/resume/cancel, the stall
// detector, and SIGHUP reloads.
#include "harness.hpp"
#include "output_checks.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <atomic>
#include <map>
#include <set>
#include <sstream>
#include <thread>

using namespace std::chrono_literals;
using harness::Process;
using harness::TempDir;
using harness::find_log;

namespace {

using HttpResult = harness::HttpResponse;

HttpResult http(int port, const std::string& method, const std::string& target, const std::string& body = "",
                const std::string& token = "") {
    return harness::http_request(port, method, target, body,
                                 token.empty() ? std::string() : "Authorization: Bearer " + token + "\r\n");
}

using harness::wait_until;

struct OpsConfig {
    int sim_port = 0;
    std::string symbols = "{ prefix: STOCK_, count: 20 }";
    std::string interval = "100ms";
    std::string timeout = "";
    std::string grace = "3s";
    std::string log_level = "info";
    std::string summary_every = "1s";
    std::string admin = "{ listen: \"127.0.0.1:0\" }";
};

std::string config_text(const TempDir& dir, const OpsConfig& c) {
    std::ostringstream out;
    out << "shutdown: { grace: " << c.grace << " }\n"
        << "log: { level: " << c.log_level << ", summary_every: " << c.summary_every << " }\n"
        << "output: { dir: " << (dir / "out").string() << ", flush_every: 200ms }\n"
        << "admin: " << c.admin << "\n"
        << "sources:\n"
        << "  - name: sim\n"
        << "    url: \"http://127.0.0.1:" << c.sim_port << "/quotes/{symbol}\"\n"
        << "    interval: " << c.interval << "\n";
    if (!c.timeout.empty()) out << "    timeout: " << c.timeout << "\n";
    out << "    tags: [us]\n"
        << "    symbols: " << c.symbols << "\n"
        << "    fields: { symbol: /symbol, bid: /bidPrice, ask: /askPrice, seq: /seq }\n";
    return out.str();
}

struct Daemon {
    std::unique_ptr<Process> process;
    int admin_port = 0;
    std::filesystem::path config;
};

Daemon start_daemon(const TempDir& dir, const OpsConfig& c) {
    Daemon d;
    d.config = dir / "mdagg.yaml";
    std::ofstream(d.config) << config_text(dir, c);
    d.process = std::make_unique<Process>("mdagg", std::vector<std::string>{MDAGG_BIN, "--config", d.config.string()},
                                          dir.path());
    auto line = d.process->wait_for_line("msg", "admin listening", 15s);
    if (!line) throw std::runtime_error("no \"admin listening\" line: " + d.process->stdout_text());
    d.admin_port = (*line)["port"].get<int>();
    return d;
}

using harness::metric;

// symbol -> polls, from the task table.
std::map<std::string, std::uint64_t> polls_by_symbol(int port) {
    std::map<std::string, std::uint64_t> out;
    auto tasks = http(port, "GET", "/debug/tasks").json();
    for (auto& t : tasks["tasks"]) out[t["symbol"].get<std::string>()] = t["polls"].get<std::uint64_t>();
    return out;
}

bool wait_ready(int port, std::chrono::milliseconds timeout = 20s) {
    return wait_until([&] { return http(port, "GET", "/readyz").status == 200; }, timeout);
}

// Quotes in the output files, checked against what the simulator wrote: nothing lost.
void expect_nothing_lost(const TempDir& dir, int sim_port) {
    EXPECT_TRUE(harness::unfinished_files(dir / "out").empty());
    std::size_t quotes = 0;
    for (auto& f : harness::read_output(dir / "out"))
        for (auto& r : f.records) quotes += r["type"] == "quote";
    auto stats = nlohmann::json::parse(harness::http_get(sim_port, "/stats"));
    EXPECT_EQ(stats["responses"].get<std::size_t>(), quotes);
    EXPECT_GT(quotes, 0u);
}

}  // namespace

TEST(Ops, MetricsPassPromtoolAndEveryEndpointAnswers) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "20"});
    OpsConfig c;
    c.sim_port = sim.port;
    c.admin = "{ listen: \"127.0.0.1:0\", symbol_metrics: [\"STOCK_1?\"] }";
    auto d = start_daemon(dir, c);
    ASSERT_TRUE(wait_ready(d.admin_port)) << d.process->stdout_text();

    auto health = http(d.admin_port, "GET", "/healthz");
    EXPECT_EQ(health.status, 200);
    EXPECT_EQ(health.json()["status"], "ok");
    auto ready = http(d.admin_port, "GET", "/readyz");
    EXPECT_EQ(ready.json()["status"], "ready");
    ASSERT_TRUE(find_log(*d.process, "ready: the first round of polls finished"));

    auto metrics = http(d.admin_port, "GET", "/metrics");
    ASSERT_EQ(metrics.status, 200);
    const auto file = dir / "metrics.txt";
    std::ofstream(file) << metrics.body;
    const std::string promtool = "promtool check metrics < " + file.string() + " > " + (dir / "promtool.out").string() + " 2>&1";
    const int rc = std::system(promtool.c_str());
    std::ifstream pin(dir / "promtool.out");
    std::stringstream promtool_out;
    promtool_out << pin.rdbuf();
    ASSERT_EQ(rc, 0) << "promtool rejected /metrics (is promtool installed? scripts/setup.sh installs it):\n"
                     << promtool_out.str();
    EXPECT_GT(metric(metrics.body, R"(mdagg_source_polls_total{source="sim",outcome="completed"})").value_or(0), 0);
    EXPECT_EQ(metric(metrics.body, "mdagg_ready"), 1);
    EXPECT_EQ(metric(metrics.body, "mdagg_aggregator_symbols"), 20);
    EXPECT_EQ(metric(metrics.body, "mdagg_polls_stalled"), 0);
    EXPECT_EQ(metric(metrics.body, R"(mdagg_source_pollers_control{source="sim",control="active"})"), 20);
    EXPECT_GT(metric(metrics.body, R"(mdagg_source_poll_interval_seconds_count{source="sim"})").value_or(0), 0);
    EXPECT_LT(metric(metrics.body, R"(mdagg_source_last_success_age_seconds{source="sim"})").value_or(1e9), 60);
    EXPECT_NE(metrics.body.find("mdagg_build_info{version=\""), std::string::npos);
    // Per-symbol series only for the configured glob: STOCK_10 .. STOCK_19, not STOCK_1.
    EXPECT_GT(metric(metrics.body, R"(mdagg_symbol_polls_total{source="sim",symbol="STOCK_12",outcome="completed"})").value_or(0), 0);
    EXPECT_FALSE(metric(metrics.body, R"(mdagg_symbol_polls_total{source="sim",symbol="STOCK_1",outcome="completed"})"));
    EXPECT_FALSE(metric(metrics.body, R"(mdagg_symbol_polls_total{source="sim",symbol="STOCK_2",outcome="completed"})"));
    EXPECT_LT(metric(metrics.body, R"(mdagg_symbol_last_success_age_seconds{source="sim",symbol="STOCK_19"})").value_or(1e9), 60);
    // The host's guard: breaker closed, not paused.
    const std::string host = "127.0.0.1:" + std::to_string(sim.port);
    EXPECT_EQ(metric(metrics.body, R"(mdagg_host_breaker_state{host=")" + host + R"(",state="closed"})"), 1);
    EXPECT_EQ(metric(metrics.body, R"(mdagg_host_paused{host=")" + host + R"("})"), 0);
    EXPECT_EQ(metric(metrics.body, "mdagg_sink_disk_fault"), 0);

    auto tasks = http(d.admin_port, "GET", "/debug/tasks").json();
    EXPECT_EQ(tasks["count"], 20);
    auto& row = tasks["tasks"][0];
    EXPECT_EQ(row["source"], "sim");
    EXPECT_EQ(row["control"], "active");
    EXPECT_GT(row["polls"].get<int>(), 0);
    EXPECT_TRUE(row["last_success"].is_string());
    EXPECT_TRUE(row["last_latency_ms"].is_number());
    EXPECT_EQ(row["tags"], nlohmann::json::array({"us"}));
    // STOCK_1 and STOCK_10 .. STOCK_19.
    EXPECT_EQ(http(d.admin_port, "GET", "/debug/tasks?symbol=STOCK_1*").json()["count"], 11);
    EXPECT_EQ(http(d.admin_port, "GET", "/debug/tasks?source=other").json()["count"], 0);
    EXPECT_EQ(http(d.admin_port, "GET", "/debug/tasks?state=bogus").status, 400);
    EXPECT_EQ(http(d.admin_port, "GET", "/nope").status, 404);
    EXPECT_EQ(http(d.admin_port, "DELETE", "/metrics").status, 405);

    d.process->signal(SIGTERM);
    ASSERT_EQ(d.process->wait(10s), 0) << d.process->stdout_text();
    expect_nothing_lost(dir, sim.port);
}

TEST(Ops, PauseResumeAndCancelBySelectorTagAndToken) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "10"});
    ::setenv("MDAGG_OPS_TEST_TOKEN", "s3cret-token", 1);
    OpsConfig c;
    c.sim_port = sim.port;
    c.symbols = "[{name: STOCK_0, tags: [nyse]}, {name: STOCK_1, tags: [nyse]}, {name: STOCK_2, tags: [nyse]}, "
                "STOCK_3, STOCK_4, STOCK_5, STOCK_6, STOCK_7, STOCK_8, STOCK_9]";
    c.admin = "{ listen: \"127.0.0.1:0\", token_env: MDAGG_OPS_TEST_TOKEN }";
    auto d = start_daemon(dir, c);
    ::unsetenv("MDAGG_OPS_TEST_TOKEN");
    const int port = d.admin_port;
    ASSERT_TRUE(wait_ready(port)) << d.process->stdout_text();
    EXPECT_EQ(find_log(*d.process, "admin listening").value()["auth"], "bearer");

    // Mutations need the token; reads do not.
    EXPECT_EQ(http(port, "POST", "/admin/pause", R"({"tag":"nyse"})").status, 401);
    EXPECT_EQ(http(port, "POST", "/admin/pause", R"({"tag":"nyse"})", "wrong").status, 401);
    EXPECT_EQ(http(port, "POST", "/admin/pause", "{}", "s3cret-token").status, 400);
    auto paused = http(port, "POST", "/admin/pause", R"({"tag":"nyse"})", "s3cret-token");
    ASSERT_EQ(paused.status, 200) << paused.body;
    EXPECT_EQ(paused.json()["matched"], 3);
    EXPECT_EQ(paused.json()["changed"], 3);
    // Again: matched, nothing left to change.
    EXPECT_EQ(http(port, "POST", "/admin/pause", R"({"tag":"nyse"})", "s3cret-token").json()["changed"], 0);
    EXPECT_EQ(http(port, "GET", "/debug/tasks?state=paused").json()["count"], 3);

    // A poll in flight at the pause finishes; after that paused pollers stop polling while
    // the others go on.
    std::this_thread::sleep_for(500ms);
    auto before = polls_by_symbol(port);
    std::this_thread::sleep_for(1s);
    auto after = polls_by_symbol(port);
    for (auto s : {"STOCK_0", "STOCK_1", "STOCK_2"}) EXPECT_EQ(after[s], before[s]) << s << " polled while paused";
    for (auto s : {"STOCK_3", "STOCK_9"}) EXPECT_GT(after[s], before[s] + 3) << s << " stopped polling";
    auto metrics = http(port, "GET", "/metrics").body;
    EXPECT_GT(metric(metrics, R"(mdagg_source_paused_ticks_total{source="sim"})").value_or(0), 0);
    EXPECT_EQ(metric(metrics, R"(mdagg_source_pollers_control{source="sim",control="paused"})"), 3);

    // Resume by explicit list: those two poll again, STOCK_2 stays paused.
    auto resumed = http(port, "POST", "/admin/resume", R"({"symbols":["STOCK_0","STOCK_1","STOCK_5"]})", "s3cret-token");
    EXPECT_EQ(resumed.json()["matched"], 3);
    EXPECT_EQ(resumed.json()["changed"], 2);
    std::this_thread::sleep_for(1s);
    auto resumed_polls = polls_by_symbol(port);
    EXPECT_GT(resumed_polls["STOCK_0"], after["STOCK_0"] + 3);
    EXPECT_EQ(resumed_polls["STOCK_2"], after["STOCK_2"]);

    // Cancel by glob and source: STOCK_9 stops for good; resume does not bring it back.
    auto cancelled = http(port, "POST", "/admin/cancel", R"({"source":"sim","glob":"STOCK_9"})", "s3cret-token");
    EXPECT_EQ(cancelled.json()["matched"], 1);
    EXPECT_EQ(cancelled.json()["changed"], 1);
    EXPECT_EQ(http(port, "POST", "/admin/resume", R"({"all":true})", "s3cret-token").json()["changed"], 1);  // STOCK_2
    std::this_thread::sleep_for(300ms);
    auto c1 = polls_by_symbol(port);
    std::this_thread::sleep_for(1s);
    auto c2 = polls_by_symbol(port);
    EXPECT_EQ(c2["STOCK_9"], c1["STOCK_9"]);
    EXPECT_GT(c2["STOCK_2"], c1["STOCK_2"]);
    auto cancelled_rows = http(port, "GET", "/debug/tasks?state=cancelled").json();
    ASSERT_EQ(cancelled_rows["count"], 1);
    EXPECT_EQ(cancelled_rows["tasks"][0]["symbol"], "STOCK_9");

    d.process->signal(SIGTERM);
    ASSERT_EQ(d.process->wait(10s), 0) << d.process->stdout_text();
    // Every quote the simulator served, paused and cancelled pollers' included, was written.
    expect_nothing_lost(dir, sim.port);
}

TEST(Ops, ReadinessWaitsForTheFirstRoundAndDropsAtDrainStart) {
    TempDir dir;
    // Hung symbols: their first poll ends only at the 2 s timeout, so readiness comes late;
    // during the drain their polls stay in flight, so the drain lasts long enough to observe.
    auto sim = harness::start_sim(dir.path(), {"--symbols", "10", "--hung", "STOCK_0,STOCK_1,STOCK_2,STOCK_3"});
    OpsConfig c;
    c.sim_port = sim.port;
    c.symbols = "{ prefix: STOCK_, count: 10 }";
    c.interval = "2s";
    c.grace = "4s";
    auto d = start_daemon(dir, c);
    auto early = http(d.admin_port, "GET", "/readyz");
    EXPECT_EQ(early.status, 503);
    EXPECT_EQ(early.json()["status"], "starting");
    EXPECT_EQ(http(d.admin_port, "GET", "/healthz").status, 200);
    ASSERT_TRUE(wait_ready(d.admin_port)) << d.process->stdout_text();

    // The hung pollers are mid-poll nearly all the time; wait until one is.
    ASSERT_TRUE(wait_until([&] {
        const auto polling = http(d.admin_port, "GET", "/debug/tasks?state=polling").json();
        for (auto& t : polling["tasks"])
            if (t["symbol"].get<std::string>() <= "STOCK_3") return true;  // STOCK_0 .. STOCK_3 hang
        return false;
    }, 10s));
    d.process->signal(SIGTERM);
    ASSERT_TRUE(d.process->wait_for_line("msg", "drain started", 5s));
    auto during = http(d.admin_port, "GET", "/readyz");
    EXPECT_EQ(during.status, 503) << during.body;
    EXPECT_EQ(during.json()["status"], "draining");
    EXPECT_TRUE(d.process->running()) << "the drain ended before readiness could be observed";
    ASSERT_EQ(d.process->wait(10s), 0) << d.process->stdout_text();
}

TEST(Ops, StallDetectorFiresWhenEverySymbolHangs) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "5", "--hung-ratio", "1"});
    OpsConfig c;
    c.sim_port = sim.port;
    c.symbols = "{ prefix: STOCK_, count: 5 }";
    c.interval = "200ms";
    c.grace = "1s";
    c.admin = "{ listen: \"127.0.0.1:0\", stall_after: 1s }";
    auto d = start_daemon(dir, c);
    ASSERT_TRUE(d.process->wait_for_line("msg", "stalled: no poll completed within stall_after", 15s))
        << d.process->stdout_text();
    auto health = http(d.admin_port, "GET", "/healthz");
    EXPECT_EQ(health.status, 503);
    EXPECT_EQ(health.json()["status"], "unhealthy");
    EXPECT_EQ(health.json()["problems"], nlohmann::json::array({"no poll completed within stall_after"}));
    auto metrics = http(d.admin_port, "GET", "/metrics").body;
    EXPECT_EQ(metric(metrics, "mdagg_polls_stalled"), 1);
    EXPECT_EQ(metric(metrics, "mdagg_poll_stalls_total"), 1);
    EXPECT_GT(metric(metrics, R"(mdagg_source_polls_total{source="sim",outcome="timed_out"})").value_or(0), 0);
    // Logged once per episode, not once per check.
    int lines = 0;
    for (auto& l : d.process->stdout_json()) lines += l.value("msg", "") == "stalled: no poll completed within stall_after";
    EXPECT_EQ(lines, 1);
    EXPECT_EQ(metric(metrics, R"(mdagg_aggregator_stale_symbols)"), 5);
    d.process->signal(SIGTERM);
    ASSERT_EQ(d.process->wait(10s), 0) << d.process->stdout_text();
}

// The event loop itself stops turning (a handler that never returns, a page fault storm): only
// the io thread is frozen, with ptrace, while the watchdog thread keeps watching.
TEST(Ops, LoopWatchdogNoticesAFrozenEventLoop) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "5"});
    OpsConfig c;
    c.sim_port = sim.port;
    c.symbols = "{ prefix: STOCK_, count: 5 }";
    auto d = start_daemon(dir, c);  // threads: 1, so the main thread is the only io thread
    ASSERT_TRUE(wait_ready(d.admin_port)) << d.process->stdout_text();
    const pid_t io_thread = d.process->pid();
    if (::ptrace(PTRACE_SEIZE, io_thread, nullptr, nullptr) != 0)
        GTEST_SKIP() << "ptrace not permitted here: " << std::strerror(errno);
    ASSERT_EQ(::ptrace(PTRACE_INTERRUPT, io_thread, nullptr, nullptr), 0) << std::strerror(errno);
    int status = 0;
    ASSERT_EQ(::waitpid(io_thread, &status, __WALL), io_thread);
    const bool noticed = d.process->wait_for_line("msg", "event loop stalled: the control strand has not run", 15s).has_value();
    ASSERT_EQ(::ptrace(PTRACE_DETACH, io_thread, nullptr, nullptr), 0) << std::strerror(errno);
    ASSERT_TRUE(noticed) << d.process->stdout_text();
    ASSERT_TRUE(d.process->wait_for_line("msg", "event loop turning again", 10s)) << d.process->stdout_text();
    auto metrics = http(d.admin_port, "GET", "/metrics").body;
    EXPECT_EQ(metric(metrics, "mdagg_event_loop_stalls_total"), 1);
    EXPECT_EQ(metric(metrics, "mdagg_event_loop_stalled"), 0);
    EXPECT_EQ(http(d.admin_port, "GET", "/healthz").status, 200);
    d.process->signal(SIGTERM);
    ASSERT_EQ(d.process->wait(10s), 0) << d.process->stdout_text();
}

TEST(Ops, ReloadWithABrokenFileKeepsTheRunningConfig) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "10"});
    OpsConfig c;
    c.sim_port = sim.port;
    c.symbols = "{ prefix: STOCK_, count: 10 }";
    c.summary_every = "300ms";
    auto d = start_daemon(dir, c);
    ASSERT_TRUE(wait_ready(d.admin_port));

    std::ofstream(d.config) << config_text(dir, c) << "  - name: [broken\n";
    d.process->signal(SIGHUP);
    auto failed = d.process->wait_for_line("msg", "reload failed: keeping the running config", 10s);
    ASSERT_TRUE(failed) << d.process->stdout_text();
    EXPECT_NE((*failed)["error"].get<std::string>().find("mdagg.yaml:"), std::string::npos);
    // Still running and polling as before.
    auto p1 = polls_by_symbol(d.admin_port);
    std::this_thread::sleep_for(1200ms);  // past the 1 s the task table is shared for
    auto p2 = polls_by_symbol(d.admin_port);
    EXPECT_EQ(p2.size(), 10u);
    EXPECT_GT(p2["STOCK_0"], p1["STOCK_0"]);
    EXPECT_EQ(http(d.admin_port, "GET", "/healthz").status, 200);

    // A valid file: the log level, summary interval and symbols apply; a shutdown change is
    // reported as needing a restart.
    OpsConfig next = c;
    next.log_level = "warn";
    next.grace = "5s";
    next.symbols = "{ prefix: STOCK_, count: 11 }";
    std::ofstream(d.config) << config_text(dir, next);
    d.process->signal(SIGHUP);
    auto reloaded = d.process->wait_for_line("msg", "config reloaded; some changes need a restart and were not applied", 10s);
    ASSERT_TRUE(reloaded) << d.process->stdout_text();
    EXPECT_EQ((*reloaded)["not_applied"], nlohmann::json::array({"shutdown.grace"}));
    EXPECT_EQ((*reloaded)["log_level"], "warn");
    EXPECT_EQ((*reloaded)["pollers_added"], 1);
    EXPECT_EQ((*reloaded)["pollers_removed"], 0);
    std::this_thread::sleep_for(1s);  // several summary intervals
    bool after_reload = false;
    int summaries_after = 0;
    for (auto& l : d.process->stdout_json()) {
        if (l.value("msg", "") == "config reloaded; some changes need a restart and were not applied") after_reload = true;
        else if (after_reload && l.value("msg", "") == "summary") ++summaries_after;
    }
    EXPECT_EQ(summaries_after, 0) << "info lines still written at level warn";
    EXPECT_EQ(http(d.admin_port, "GET", "/debug/tasks").json()["count"], 11);

    d.process->signal(SIGTERM);
    ASSERT_EQ(d.process->wait(10s), 0) << d.process->stdout_text();
    expect_nothing_lost(dir, sim.port);
}

namespace {

std::string two_source_config(const TempDir& dir, int sim_port, const std::string& sim_symbols,
                              const std::string& sim2_interval, const std::string& extra_source, int threads = 1) {
    std::ostringstream out;
    out << "runtime: { threads: " << threads << " }\n"
        << "log: { level: info, summary_every: 1s }\n"
        << "output: { dir: " << (dir / "out").string() << ", flush_every: 200ms }\n"
        << "admin: { listen: \"127.0.0.1:0\" }\n"
        << "sources:\n";
    auto source = [&](const std::string& name, const std::string& interval, const std::string& symbols) {
        out << "  - name: " << name << "\n"
            << "    url: \"http://127.0.0.1:" << sim_port << "/quotes/{symbol}\"\n"
            << "    interval: " << interval << "\n"
            << "    symbols: " << symbols << "\n"
            << "    fields: { symbol: /symbol, bid: /bidPrice, ask: /askPrice, seq: /seq }\n";
    };
    source("sim", "100ms", sim_symbols);
    source("sim2", sim2_interval, "[STOCK_20, STOCK_21, STOCK_22, STOCK_23, STOCK_24]");
    if (!extra_source.empty()) source(extra_source, "100ms", "[STOCK_30]");
    return out.str();
}

struct TaskRow {
    std::uint64_t polls = 0;
    std::string control;
};

std::map<std::string, TaskRow> tasks_of(int port, const std::string& source) {
    std::map<std::string, TaskRow> out;
    const auto body = http(port, "GET", "/debug/tasks?source=" + source).json();
    for (auto& t : body["tasks"])
        out[t["symbol"].get<std::string>()] = {t["polls"].get<std::uint64_t>(), t["control"].get<std::string>()};
    return out;
}

}  // namespace

TEST(Ops, ReloadAddsRemovesAndRestartsPollersUnderLoadAndLosesNothing) {
    TempDir dir;
    // Latency keeps polls in flight when the reload lands, so removed pollers must finish them.
    auto sim = harness::start_sim(dir.path(), {"--symbols", "40", "--latency", "5ms-30ms"});
    const std::string before_symbols =
        "[STOCK_0, STOCK_1, STOCK_2, STOCK_3, STOCK_4, STOCK_5, STOCK_6, STOCK_7, STOCK_8, STOCK_9]";
    const auto path = dir / "mdagg.yaml";
    std::ofstream(path) << two_source_config(dir, sim.port, before_symbols, "100ms", "");
    Process daemon("mdagg", {MDAGG_BIN, "--config", path.string()}, dir.path());
    auto listening = daemon.wait_for_line("msg", "admin listening", 15s);
    ASSERT_TRUE(listening) << daemon.stdout_text();
    const int port = (*listening)["port"].get<int>();
    ASSERT_TRUE(wait_ready(port)) << daemon.stdout_text();
    // An operator's pause survives a reload that leaves the poller untouched.
    ASSERT_EQ(http(port, "POST", "/admin/pause", R"({"symbols":["STOCK_7"]})").json()["changed"], 1);
    std::this_thread::sleep_for(2s);  // enough polls that a restarted poller's count is visibly lower

    auto metrics_before = http(port, "GET", "/metrics").body;
    const auto sim_before = tasks_of(port, "sim");
    const auto sim2_before = tasks_of(port, "sim2");
    ASSERT_EQ(sim_before.size(), 10u);

    // sim: STOCK_8 and STOCK_9 removed, STOCK_10 and STOCK_11 added (STOCK_1 gains a tag);
    // sim2: interval changed, so its five pollers restart; sim3: new.
    const std::string after_symbols =
        "[STOCK_0, {name: STOCK_1, tags: [halted]}, STOCK_2, STOCK_3, STOCK_4, STOCK_5, STOCK_6, STOCK_7, "
        "STOCK_10, STOCK_11]";
    std::ofstream(path) << two_source_config(dir, sim.port, after_symbols, "150ms", "sim3");
    daemon.signal(SIGHUP);
    auto reloaded = daemon.wait_for_line("msg", "config reloaded", 10s);
    ASSERT_TRUE(reloaded) << daemon.stdout_text();
    EXPECT_EQ((*reloaded)["pollers_added"], 3);
    EXPECT_EQ((*reloaded)["pollers_removed"], 2);
    EXPECT_EQ((*reloaded)["pollers_restarted"], 5);

    std::this_thread::sleep_for(1500ms);
    const auto sim_after = tasks_of(port, "sim");
    std::set<std::string> names;
    for (auto& [name, row] : sim_after) names.insert(name);
    EXPECT_EQ(names, (std::set<std::string>{"STOCK_0", "STOCK_1", "STOCK_10", "STOCK_11", "STOCK_2", "STOCK_3",
                                            "STOCK_4", "STOCK_5", "STOCK_6", "STOCK_7"}));
    // Untouched pollers are the same pollers: their counts went on from where they were
    // (a restarted poller would start again from zero), and a pause stays.
    for (auto s : {"STOCK_0", "STOCK_1", "STOCK_6"}) {
        EXPECT_GE(sim_after.at(s).polls, sim_before.at(s).polls + 8) << s;
    }
    EXPECT_EQ(sim_after.at("STOCK_7").control, "paused");
    EXPECT_EQ(sim_after.at("STOCK_7").polls, sim_before.at("STOCK_7").polls);
    EXPECT_GT(sim_after.at("STOCK_10").polls, 0u);
    EXPECT_EQ(http(port, "GET", "/debug/tasks?tag=halted").json()["count"], 1);
    // Restarted and new pollers poll; the restarted ones started counting again.
    const auto sim2_after = tasks_of(port, "sim2");
    ASSERT_EQ(sim2_after.size(), 5u);
    for (auto& [name, row] : sim2_after) EXPECT_LT(row.polls, sim2_before.at(name).polls) << name;
    ASSERT_EQ(tasks_of(port, "sim3").size(), 1u);
    EXPECT_GT(tasks_of(port, "sim3").at("STOCK_30").polls, 0u);

    // Untouched pollers kept their connections: sim's new connections are those of its two
    // new pollers, plus one per failed poll (a failure closes the connection).
    auto metrics_after = http(port, "GET", "/metrics").body;
    auto delta = [&](const std::string& series) {
        return metric(metrics_after, series).value_or(0) - metric(metrics_before, series).value_or(0);
    };
    const double failures = delta(R"(mdagg_source_polls_total{source="sim",outcome="failed"})") +
                            delta(R"(mdagg_source_polls_total{source="sim",outcome="timed_out"})");
    const double connects = delta(R"(mdagg_source_connects_total{source="sim"})");
    EXPECT_GE(connects, 2);
    EXPECT_LE(connects, 2 + failures);
    EXPECT_EQ(metric(metrics_after, "mdagg_aggregator_symbols"), 16);  // 10 + 5 + STOCK_30

    daemon.signal(SIGTERM);
    ASSERT_EQ(daemon.wait(10s), 0) << daemon.stdout_text();
    // Every response the simulator wrote, removed and restarted pollers' included, is in
    // the output, with the right source and symbol names.
    expect_nothing_lost(dir, sim.port);
    std::map<std::string, std::set<std::string>> seen;  // source -> symbols
    for (auto& f : harness::read_output(dir / "out"))
        for (auto& r : f.records)
            if (r["type"] == "quote") seen[r["source"].get<std::string>()].insert(r["symbol"].get<std::string>());
    EXPECT_TRUE(seen["sim"].contains("STOCK_8"));
    EXPECT_TRUE(seen["sim"].contains("STOCK_11"));
    EXPECT_EQ(seen["sim3"], (std::set<std::string>{"STOCK_30"}));
    EXPECT_EQ(seen["sim2"].size(), 5u);
}

// The same operations with the io_context on two threads: pollers on strands, the admin
// server, reloads and the drain racing each other (the TSan stage runs this one).
TEST(Ops, MultiThreadedAdminActionsReloadsAndScrapesLoseNothing) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "40", "--latency", "1ms-10ms"});
    const auto path = dir / "mdagg.yaml";
    std::ofstream(path) << two_source_config(dir, sim.port, "{ prefix: STOCK_, count: 20 }", "100ms", "", 2);
    Process daemon("mdagg", {MDAGG_BIN, "--config", path.string()}, dir.path());
    auto listening = daemon.wait_for_line("msg", "admin listening", 15s);
    ASSERT_TRUE(listening) << daemon.stdout_text();
    const int port = (*listening)["port"].get<int>();
    ASSERT_TRUE(wait_ready(port)) << daemon.stdout_text();

    std::atomic<bool> stop{false}, signalled{false};
    std::atomic<int> scrapes{0}, bad{0};
    std::thread scraper([&] {
        while (!stop) {
            auto m = http(port, "GET", "/metrics");
            auto t = http(port, "GET", "/debug/tasks");
            // Once the drain ends the server closes; only failures before that count.
            if (!signalled) bad += (m.status != 200) + (t.status != 200);
            ++scrapes;
            std::this_thread::sleep_for(5ms);
        }
    });
    EXPECT_EQ(http(port, "POST", "/admin/pause", R"({"glob":"STOCK_1*"})").json()["changed"], 11);
    std::this_thread::sleep_for(300ms);
    std::ofstream(path) << two_source_config(dir, sim.port, "{ prefix: STOCK_, count: 15 }", "200ms", "sim3", 2);
    daemon.signal(SIGHUP);
    ASSERT_TRUE(daemon.wait_for_line("msg", "config reloaded", 10s)) << daemon.stdout_text();
    EXPECT_EQ(http(port, "POST", "/admin/resume", R"({"all":true})").json()["changed"], 6);  // STOCK_1, STOCK_10..14
    EXPECT_EQ(http(port, "POST", "/admin/cancel", R"({"source":"sim3"})").json()["changed"], 1);
    std::this_thread::sleep_for(500ms);
    // Shrink again while those are cancelled: retiring a cancelled poller frees it too.
    std::ofstream(path) << two_source_config(dir, sim.port, "{ prefix: STOCK_, count: 5 }", "200ms", "", 2);
    daemon.signal(SIGHUP);
    auto second = daemon.wait_for_line("msg", "config reloaded", 10s);
    ASSERT_TRUE(second);
    std::this_thread::sleep_for(500ms);
    EXPECT_EQ(http(port, "GET", "/debug/tasks?source=sim").json()["count"], 5);
    EXPECT_EQ(http(port, "GET", "/debug/tasks?source=sim3").json()["count"], 0);
    signalled = true;
    daemon.signal(SIGTERM);
    auto code = daemon.wait(10s);
    stop = true;
    scraper.join();
    ASSERT_EQ(code, 0) << daemon.stdout_text();
    EXPECT_GT(scrapes.load(), 5);
    EXPECT_EQ(bad.load(), 0);
    expect_nothing_lost(dir, sim.port);
}

TEST(Ops, AdminPortInUseExitsTwoAndWritesNothing) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "5"});
    OpsConfig c;
    c.sim_port = sim.port;
    c.symbols = "{ prefix: STOCK_, count: 5 }";
    auto first = start_daemon(dir, c);

    TempDir second_dir;
    OpsConfig taken = c;
    taken.admin = "{ listen: \"127.0.0.1:" + std::to_string(first.admin_port) + "\" }";
    const auto path = second_dir / "mdagg.yaml";
    std::ofstream(path) << config_text(second_dir, taken);
    Process second("mdagg2", {MDAGG_BIN, "--config", path.string()}, second_dir.path());
    ASSERT_EQ(second.wait(10s), 2) << second.stdout_text();
    EXPECT_NE(second.stderr_text().find("admin server: bind 127.0.0.1:" + std::to_string(first.admin_port)),
              std::string::npos)
        << second.stderr_text();
    EXPECT_FALSE(std::filesystem::exists(second_dir / "out")) << "nothing may be written when the port is taken";

    first.process->signal(SIGTERM);
    EXPECT_EQ(first.process->wait(10s), 0);
}

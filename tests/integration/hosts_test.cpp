// Host limits in the running daemon against the real simulator: the pause a Retry-After asks
// for (429 and 503, both forms), a ban that keeps liveness and survives a restart, interim
// 1xx responses, max_in_flight, the usage-header slow-down and the circuit breaker.
#include "harness.hpp"
#include "output_checks.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <functional>
#include <iostream>
#include <regex>
#include <sstream>
#include <thread>

using namespace std::chrono_literals;
using harness::admin_port_of;
using harness::Process;
using harness::TempDir;

namespace {

using harness::wait_until;

using harness::metric;

std::string metrics(int admin_port) { return harness::http_request(admin_port, "GET", "/metrics").body; }

std::unique_ptr<Process> start_named(const TempDir& dir, const std::string& name, const std::filesystem::path& config) {
    return std::make_unique<Process>(name, std::vector<std::string>{MDAGG_BIN, "--config", config.string()}, dir.path());
}

std::uint64_t responses(int sim_control_port) {
    return harness::sim_stats(sim_control_port)["responses"].get<std::uint64_t>();
}

// Quote requests the simulator answered in any way (a quote or a fault's answer).
std::uint64_t answered(int sim_control_port) {
    const auto stats = harness::sim_stats(sim_control_port);
    std::uint64_t n = stats["responses"].get<std::uint64_t>();
    for (auto& [kind, count] : stats["faults"].items())
        if (kind != "latency") n += count.get<std::uint64_t>();
    return n;
}

std::string hosts_yaml(const std::string& lines) { return "hosts:\n  - host: 127.0.0.1\n" + lines; }

}  // namespace

// The pause lasts what Retry-After says, not the 1 s default: the simulator sees no request
// for longer than the default, in both header forms, for a 429 and for a 503.
struct RetryAfterCase {
    const char* name;
    nlohmann::json fault;
    double min_pause_ms;  // what the header asks for, less the rounding of an HTTP-date
};

class RetryAfter : public ::testing::TestWithParam<RetryAfterCase> {};

TEST_P(RetryAfter, PausesTheHostForTheHeadersTime) {
    const auto& param = GetParam();
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "5", "--control", "127.0.0.1:0"});
    harness::DaemonConfig c;
    c.port = sim.port;
    c.symbols = 5;
    c.interval = "100ms";
    // One breaker failure would open it: a 503 with Retry-After must not count as one.
    c.extra = "admin: { listen: \"127.0.0.1:0\" }\n" +
              hosts_yaml("    rate_limit_pause: 1s\n    breaker: { failures: 1, cooldown: 10s }\n");
    auto daemon = harness::start_daemon(dir, harness::write_config(dir.path(), c));
    const int admin = admin_port_of(*daemon);
    ASSERT_TRUE(wait_until([&] { return harness::http_request(admin, "GET", "/readyz").status == 200; }, 20s));

    harness::sim_add_fault(sim.control_port, param.fault);
    auto paused = daemon->wait_for_line("msg", "host paused", 10s);
    ASSERT_TRUE(paused) << daemon->stdout_text();
    EXPECT_EQ((*paused)["reason"], "rate_limited");
    EXPECT_EQ((*paused)["status"], param.fault.value("status", 429));
    EXPECT_GE((*paused)["pause_ms"].get<double>(), param.min_pause_ms) << paused->dump();
    const auto started = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(300ms);  // polls already in flight finish
    const auto remaining = metric(metrics(admin), R"(mdagg_host_pause_remaining_seconds{host="127.0.0.1"})");
    ASSERT_TRUE(remaining);
    EXPECT_GT(*remaining, param.min_pause_ms / 1000 - 0.5);
    const auto before = answered(sim.control_port);
    // Well past the 1 s default, and 2 s short of what the header asked for (the line may be
    // read late on a loaded machine).
    std::this_thread::sleep_until(started + std::chrono::milliseconds(static_cast<int>(param.min_pause_ms) - 2000));
    EXPECT_EQ(answered(sim.control_port), before) << "the daemon polled the host before Retry-After ran out";
    ASSERT_TRUE(wait_until([&] { return answered(sim.control_port) > before + 10; }, 10s)) << "the pause never ended";

    const auto text = metrics(admin);
    EXPECT_EQ(metric(text, R"(mdagg_source_poll_errors_total{source="sim",class="rate_limited"})"), 1);
    EXPECT_EQ(metric(text, R"(mdagg_source_poll_errors_total{source="sim",class="http_5xx"})"), 0);
    EXPECT_EQ(metric(text, R"(mdagg_host_breaker_opens_total{host="127.0.0.1"})"), 0);
    daemon->signal(SIGTERM);
    EXPECT_EQ(daemon->wait(10s), 0) << daemon->stdout_text();
}

INSTANTIATE_TEST_SUITE_P(
    HostPauses, RetryAfter,
    ::testing::Values(
        RetryAfterCase{"status_429_seconds", {{"kind", "too_many_requests"}, {"retry_after", "5s"}, {"count", 1}}, 4900},
        RetryAfterCase{"status_429_http_date",
                       {{"kind", "too_many_requests"}, {"retry_after", "6s"}, {"retry_after_form", "http_date"}, {"count", 1}},
                       5000},
        RetryAfterCase{"status_503_seconds", {{"kind", "status"}, {"status", 503}, {"retry_after", "5s"}, {"count", 1}}, 4900},
        RetryAfterCase{"status_503_http_date",
                       {{"kind", "status"}, {"status", 503}, {"retry_after", "6s"}, {"retry_after_form", "http_date"}, {"count", 1}},
                       5000}),
    [](const auto& info) { return std::string(info.param.name); });

// A ban is the venue's decision, not a hung daemon: /healthz stays 200 (a restart would hit
// the venue again and lengthen the ban), and a restart honours the ban from the state file.
TEST(HostPauses, ABanKeepsLivenessAndSurvivesARestart) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "5", "--control", "127.0.0.1:0"});
    harness::sim_add_fault(sim.control_port, {{"kind", "ban"}, {"status", 418}, {"period", "120s"}});
    harness::DaemonConfig c;
    c.port = sim.port;
    c.symbols = 5;
    c.interval = "100ms";
    c.grace = "2s";
    c.extra = "admin: { listen: \"127.0.0.1:0\", stall_after: 2s }\n" + hosts_yaml("    ban_pause: 1s\n");
    const auto config = harness::write_config(dir.path(), c);
    auto daemon = start_named(dir, "mdagg", config);
    int admin = admin_port_of(*daemon);
    auto banned = daemon->wait_for_line("msg", "host paused", 10s);
    ASSERT_TRUE(banned) << daemon->stdout_text();
    EXPECT_EQ((*banned)["reason"], "banned");
    EXPECT_GT((*banned)["pause_ms"].get<double>(), 100'000) << "Retry-After: 120 outlasts ban_pause";

    // Three times stall_after without a completed poll: still alive, still ready, and saying why.
    for (auto until = std::chrono::steady_clock::now() + 6s; std::chrono::steady_clock::now() < until;) {
        const auto health = harness::http_request(admin, "GET", "/healthz");
        ASSERT_EQ(health.status, 200) << health.body;
        std::this_thread::sleep_for(250ms);
    }
    const auto health = harness::http_request(admin, "GET", "/healthz").json();
    ASSERT_EQ(health["hosts_paused_by_server"].size(), 1u) << health.dump();
    EXPECT_EQ(health["hosts_paused_by_server"][0]["reason"], "banned");
    const auto ready = harness::http_request(admin, "GET", "/readyz");
    EXPECT_EQ(ready.status, 200) << ready.body;
    EXPECT_EQ(ready.json()["hosts_paused_by_server"][0]["host"], "127.0.0.1") << ready.body;
    auto text = metrics(admin);
    EXPECT_EQ(metric(text, R"(mdagg_host_paused{host="127.0.0.1"})"), 1);
    EXPECT_EQ(metric(text, "mdagg_polls_stalled"), 0);
    EXPECT_EQ(metric(text, "mdagg_poll_stalls_total"), 0);
    EXPECT_FALSE(harness::find_log(*daemon, "stalled: no poll completed within stall_after"));
    // The summary lists the paused host too.
    ASSERT_TRUE(wait_until([&] {
        for (auto& l : daemon->stdout_json())
            if (l.value("msg", "") == "summary" && l["hosts"].contains("127.0.0.1")) return true;
        return false;
    }, 5s));

    const auto state_file = dir / "out" / ".mdagg-hosts.json";
    ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(state_file); }, 5s));
    {
        std::ifstream in(state_file);
        const auto state = nlohmann::json::parse(in);
        ASSERT_EQ(state["hosts"].size(), 1u) << state.dump();
        EXPECT_EQ(state["hosts"][0]["host"], "127.0.0.1");
        EXPECT_EQ(state["hosts"][0]["reason"], "banned");
    }
    daemon->signal(SIGTERM);
    ASSERT_EQ(daemon->wait(10s), 0) << daemon->stdout_text();

    const auto requests_before = answered(sim.control_port);
    auto restarted = start_named(dir, "mdagg-restarted", config);
    admin = admin_port_of(*restarted);
    ASSERT_TRUE(restarted->wait_for_line("msg", "host paused: a pause the server asked for before the restart still runs", 5s))
        << restarted->stdout_text();
    for (auto until = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < until;) {
        ASSERT_EQ(harness::http_request(admin, "GET", "/healthz").status, 200);
        std::this_thread::sleep_for(250ms);
    }
    EXPECT_EQ(answered(sim.control_port), requests_before) << "the restarted daemon hit the banned host";
    text = metrics(admin);
    EXPECT_EQ(metric(text, R"(mdagg_host_paused{host="127.0.0.1"})"), 1);
    EXPECT_GT(metric(text, R"(mdagg_host_pause_remaining_seconds{host="127.0.0.1"})").value_or(0), 100);
    EXPECT_EQ(harness::http_request(admin, "GET", "/readyz").status, 200);
    restarted->signal(SIGTERM);
    ASSERT_EQ(restarted->wait(10s), 0) << restarted->stdout_text();
}

// A corrupt state file is logged and ignored: the daemon starts and polls.
TEST(HostPauses, ACorruptStateFileIsIgnored) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "3", "--control", "127.0.0.1:0"});
    std::filesystem::create_directories(dir / "out");
    std::ofstream(dir / "out" / ".mdagg-hosts.json") << "{\"version\":1,\"hosts\":[{\"host\":";
    harness::DaemonConfig c;
    c.port = sim.port;
    c.symbols = 3;
    c.interval = "100ms";
    auto daemon = harness::start_daemon(dir, harness::write_config(dir.path(), c));
    ASSERT_TRUE(daemon->wait_for_line("msg", "host pause state is corrupt; ignored", 10s)) << daemon->stdout_text();
    ASSERT_TRUE(wait_until([&] { return responses(sim.control_port) > 10; }, 10s));
    daemon->signal(SIGTERM);
    ASSERT_EQ(daemon->wait(10s), 0) << daemon->stdout_text();
}

// Interim 1xx responses before the answer: every quote written is the right one, in order,
// and the records match what the simulator sent.
TEST(Interim, EveryQuoteAfterAnInterimResponseIsTheRightOne) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "10", "--control", "127.0.0.1:0"});
    harness::sim_add_fault(sim.control_port, {{"kind", "interim"}, {"status", 103}, {"symbols", {"STOCK_0", "STOCK_1", "STOCK_2"}}});
    harness::sim_add_fault(sim.control_port, {{"kind", "interim"}, {"status", 100}});
    harness::DaemonConfig c;
    c.port = sim.port;
    c.symbols = 10;
    c.interval = "200ms";
    auto daemon = harness::start_daemon(dir, harness::write_config(dir.path(), c));
    ASSERT_EQ(harness::run_then_stop(*daemon, 4s, 10s), 0) << daemon->stdout_text();
    const auto drain = harness::find_log(*daemon, "drain complete");
    ASSERT_TRUE(drain);
    EXPECT_EQ((*drain)["errors"], nlohmann::json::object()) << drain->dump();

    const auto stats = harness::sim_stats(sim.control_port);
    const auto out = harness::check_output(dir);
    harness::expect_seqs_increase(out);
    EXPECT_EQ(stats["faults"]["interim"], stats["responses"]) << "every answer came after an interim response";
    EXPECT_GT(stats["responses"].get<std::size_t>(), 100u);
    EXPECT_EQ(out.quotes, stats["responses"].get<std::size_t>());
    ASSERT_EQ(out.seqs.size(), 10u);
    for (auto& [symbol, seqs] : out.seqs) {
        EXPECT_EQ(seqs.size(), stats["per_symbol"][symbol].get<std::size_t>()) << symbol;
        EXPECT_EQ(seqs.back(), stats["last_seq"][symbol].get<long long>()) << symbol;
        EXPECT_EQ(seqs.front(), 1) << symbol;
    }
}

// max_in_flight below the symbol count: while a latency fault keeps every request long, the
// simulator never has more of the daemon's requests in progress than the bound.
TEST(MaxInFlight, TheSimulatorNeverSeesMoreConcurrentRequestsThanTheBound) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "20", "--control", "127.0.0.1:0"});
    // Shorter than the poll timeout: a request the daemon gave up on would linger in the simulator.
    harness::sim_add_fault(sim.control_port, {{"kind", "latency"}, {"min", "100ms"}});
    harness::DaemonConfig c;
    c.port = sim.port;
    c.symbols = 20;
    c.interval = "250ms";
    c.source_extra = "    max_in_flight: 4\n";
    c.extra = "admin: { listen: \"127.0.0.1:0\" }\n";
    auto daemon = harness::start_daemon(dir, harness::write_config(dir.path(), c));
    const int admin = admin_port_of(*daemon);
    std::this_thread::sleep_for(4s);
    const auto stats = harness::sim_stats(sim.control_port);
    EXPECT_LE(stats["max_concurrent_requests"].get<int>(), 4) << stats.dump();
    EXPECT_GE(stats["max_concurrent_requests"].get<int>(), 3) << "the bound was never approached: the test shows nothing";
    EXPECT_GT(stats["responses"].get<int>(), 40);
    EXPECT_GT(metric(metrics(admin), R"(mdagg_source_throttled_ticks_total{source="sim"})").value_or(0), 0);
    daemon->signal(SIGTERM);
    EXPECT_EQ(daemon->wait(10s), 0) << daemon->stdout_text();
}

// hosts[].usage: the venue's used-weight header slows the daemon before the venue's limit,
// so it meets fewer 429s than the same daemon without it.
namespace {
struct UsageRun {
    std::uint64_t too_many = 0;  // the simulator's 429s
    double min_rate_factor = 1;
};
UsageRun run_against_rate_limit(bool with_usage) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "10", "--control", "127.0.0.1:0"});
    harness::sim_add_fault(sim.control_port,
                           {{"kind", "rate_limit"}, {"limit", 60}, {"window", "1s"}, {"usage_header", "X-MBX-USED-WEIGHT-1M"},
                            {"retry_after_form", "none"}});
    harness::sim_add_fault(sim.control_port, {{"kind", "latency"}, {"min", "40ms"}});  // a few in flight at a 429
    harness::DaemonConfig c;
    c.port = sim.port;
    c.symbols = 10;
    c.interval = "100ms";  // 100 requests/s against a limit of 60/s
    c.extra = "admin: { listen: \"127.0.0.1:0\" }\n" +
              // Without Retry-After a 429 pauses for rate_limit_pause: short, so the limit is met often.
              hosts_yaml("    rate: 100\n    burst: 1\n    rate_limit_pause: 100ms\n" +
                         std::string(with_usage ? "    usage: { header: X-MBX-USED-WEIGHT-1M, limit: 60, slow_at: 0.5 }\n" : ""));
    auto daemon = harness::start_daemon(dir, harness::write_config(dir.path(), c));
    const int admin = admin_port_of(*daemon);
    UsageRun run;
    for (auto until = std::chrono::steady_clock::now() + 6s; std::chrono::steady_clock::now() < until;) {
        run.min_rate_factor = std::min(
            run.min_rate_factor, metric(metrics(admin), R"(mdagg_host_rate_factor{host="127.0.0.1"})").value_or(1));
        std::this_thread::sleep_for(100ms);
    }
    run.too_many = harness::sim_stats(sim.control_port)["faults"]["rate_limited"].get<std::uint64_t>();
    daemon->signal(SIGTERM);
    EXPECT_EQ(daemon->wait(10s), 0) << daemon->stdout_text();
    return run;
}
}  // namespace

TEST(UsageHeader, SlowsTheDaemonBeforeTheVenuesLimit) {
    const auto without = run_against_rate_limit(false);
    const auto with = run_against_rate_limit(true);
    EXPECT_EQ(without.min_rate_factor, 1);
    EXPECT_LT(with.min_rate_factor, 1) << "the usage header never slowed the host";
    std::cout << "429s without the usage header: " << without.too_many << ", with it: " << with.too_many
              << "; lowest rate factor with it: " << with.min_rate_factor << "\n";
    EXPECT_GE(without.too_many, 6u) << "the rate limit was never reached: the comparison shows nothing";
    EXPECT_LT(with.too_many * 2, without.too_many) << "with: " << with.too_many << ", without: " << without.too_many;
}

// The circuit breaker in the running daemon: a failing host opens it (metric, log), a probe
// after each cooldown finds it still failing, and the first probe after the fault ends closes it.
TEST(Breaker, OpensProbesAfterItsCooldownAndClosesWhenTheHostHeals) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "5", "--control", "127.0.0.1:0"});
    harness::DaemonConfig c;
    c.port = sim.port;
    c.symbols = 5;
    c.interval = "100ms";
    c.extra = "admin: { listen: \"127.0.0.1:0\" }\n" +
              hosts_yaml("    breaker: { failures: 5, cooldown: 1s, max_cooldown: 1s }\n");
    auto daemon = harness::start_daemon(dir, harness::write_config(dir.path(), c));
    const int admin = admin_port_of(*daemon);
    ASSERT_TRUE(wait_until([&] { return harness::http_request(admin, "GET", "/readyz").status == 200; }, 20s));

    const auto fault = harness::sim_add_fault(sim.control_port, {{"kind", "status"}, {"status", 500}});
    auto opened = daemon->wait_for_line("msg", "circuit breaker opened", 10s);
    ASSERT_TRUE(opened) << daemon->stdout_text();
    EXPECT_EQ((*opened)["host"], "127.0.0.1");
    std::this_thread::sleep_for(200ms);  // polls admitted before it opened finish
    auto text = metrics(admin);
    EXPECT_EQ(metric(text, R"(mdagg_host_breaker_state{host="127.0.0.1",state="closed"})"), 0);
    const auto opens = metric(text, R"(mdagg_host_breaker_opens_total{host="127.0.0.1"})").value_or(0);
    EXPECT_GE(opens, 1);
    // While open, only the probes reach the host: one per cooldown (1 s), each failing and
    // re-opening the breaker, instead of 50 requests a second.
    const auto before = harness::sim_stats(sim.control_port)["faults"]["status"].get<std::uint64_t>();
    std::this_thread::sleep_for(3500ms);
    const auto probes = harness::sim_stats(sim.control_port)["faults"]["status"].get<std::uint64_t>() - before;
    EXPECT_GE(probes, 2u);
    EXPECT_LE(probes, 5u);
    text = metrics(admin);
    EXPECT_GE(metric(text, R"(mdagg_host_breaker_opens_total{host="127.0.0.1"})").value_or(0), opens + 2)
        << "each failed probe re-opens it";
    EXPECT_GT(metric(text, R"(mdagg_source_breaker_ticks_total{source="sim"})").value_or(0), 50);

    ASSERT_EQ(harness::http_request(sim.control_port, "DELETE", "/control/faults/" + std::to_string(fault)).status, 200);
    ASSERT_TRUE(daemon->wait_for_line("msg", "circuit breaker closed", 5s)) << daemon->stdout_text();
    const auto healed = responses(sim.control_port);
    ASSERT_TRUE(wait_until([&] { return responses(sim.control_port) > healed + 20; }, 5s)) << "polling did not resume";
    EXPECT_EQ(metric(metrics(admin), R"(mdagg_host_breaker_state{host="127.0.0.1",state="closed"})"), 1);
    daemon->signal(SIGTERM);
    EXPECT_EQ(daemon->wait(10s), 0) << daemon->stdout_text();
}

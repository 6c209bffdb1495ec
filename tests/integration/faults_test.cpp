// Hostile endpoints (issue 3): each simulator fault, switched on and off at run time through
// its control listener, against the real daemon. The daemon keeps running, counts the right
// error class, keeps the healthy pollers on schedule, recovers once the fault ends, and still
// drains within budget with every accepted quote written exactly once.
#include "harness.hpp"
#include "output_checks.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <random>
#include <set>
#include <thread>

using namespace std::chrono_literals;
using harness::DaemonConfig;
using harness::Process;
using harness::TempDir;
using harness::check_output;
using harness::find_log;
using harness::sim_stats;
using harness::start_daemon;
using json = nlohmann::json;

namespace {

constexpr int symbols = 20;
const std::vector<std::string> faulty{"STOCK_1", "STOCK_2"};

std::string symbol(int i) { return "STOCK_" + std::to_string(i); }

bool is_faulty(const std::string& s) { return std::find(faulty.begin(), faulty.end(), s) != faulty.end(); }

std::uint64_t polled(const json& stats, const std::string& s) {
    return stats["per_symbol"].contains(s) ? stats["per_symbol"][s].get<std::uint64_t>() : 0;
}

// Waits until `done(stats)` holds, polling the simulator's /stats.
template <class Pred>
bool wait_for(int control_port, Pred done, std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    do {
        if (done(sim_stats(control_port))) return true;
        std::this_thread::sleep_for(50ms);
    } while (std::chrono::steady_clock::now() < until);
    return false;
}

std::uint64_t add_fault(int control_port, const json& fault) {
    auto r = harness::http_request(control_port, "POST", "/control/faults", fault.dump());
    EXPECT_EQ(r.status, 201) << r.body;
    return r.status == 201 ? json::parse(r.body)["id"].get<std::uint64_t>() : 0;
}

void clear_faults(int control_port) {
    auto r = harness::http_request(control_port, "DELETE", "/control/faults");
    EXPECT_EQ(r.status, 200) << r.body;
}

struct Case {
    const char* name;
    json fault;
    std::set<std::string> classes;  // the drain line must count at least one of these
    bool whole_host = false;        // the fault, or the daemon's answer to it, stops every symbol
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class Faults : public ::testing::TestWithParam<Case> {};

TEST_P(Faults, CountedRecoveredAndDrainedWithNothingLost) {
    const Case& c = GetParam();
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", std::to_string(symbols), "--control", "127.0.0.1:0"});
    ASSERT_GT(sim.control_port, 0);
    DaemonConfig cfg;
    cfg.port = sim.port;
    cfg.symbols = symbols;
    // 200 ms: a healthy poll on a loaded sanitizer build does not time out after the
    // simulator answered, which would break the exact counts below.
    cfg.interval = "200ms";
    cfg.summary_every = "500ms";
    cfg.source_extra = "    success: { pointer: /code, empty: true }\n";
    auto daemon = start_daemon(dir, harness::write_config(dir.path(), cfg));

    // Warm up: every symbol answered.
    ASSERT_TRUE(wait_for(sim.control_port, [](const json& st) {
        for (int i = 0; i < symbols; ++i)
            if (polled(st, symbol(i)) < 2) return false;
        return true;
    }, 15s)) << daemon->stdout_text();

    json fault = c.fault;
    if (!c.whole_host && !fault.contains("symbols") && fault["kind"] != "ban") fault["symbols"] = faulty;
    const auto before = sim_stats(sim.control_port);
    ASSERT_GT(add_fault(sim.control_port, fault), 0u);
    std::this_thread::sleep_for(2s);
    ASSERT_TRUE(daemon->running()) << daemon->stderr_text();
    const auto during = sim_stats(sim.control_port);
    EXPECT_GT(during["faults"].value(std::string(c.fault["kind"]), 0) + during["faults"].value("rate_limited", 0), 0)
        << "the fault never fired: " << during.dump();
    if (!c.whole_host) {
        // Healthy pollers keep their schedule: ten ticks in 2 s, at least half of them answered.
        for (int i = 0; i < symbols; ++i) {
            const auto s = symbol(i);
            if (is_faulty(s)) continue;
            EXPECT_GE(polled(during, s) - polled(before, s), 5u) << s << " fell off its schedule";
        }
    }

    // The fault ends; the faulty pollers recover by themselves.
    clear_faults(sim.control_port);
    const auto ended = sim_stats(sim.control_port);
    const std::vector<std::string> watched = c.whole_host ? std::vector<std::string>{symbol(0), symbol(5), symbol(19)} : faulty;
    EXPECT_TRUE(wait_for(sim.control_port, [&](const json& st) {
        for (auto& s : watched)
            if (polled(st, s) < polled(ended, s) + 2) return false;
        return true;
    }, 20s)) << "pollers did not recover after the fault ended";

    daemon->signal(SIGTERM);
    const auto code = daemon->wait(5s);
    ASSERT_TRUE(code) << "no exit after SIGTERM";
    EXPECT_EQ(*code, 0) << daemon->stdout_text();
    auto done = find_log(*daemon, "drain complete");
    ASSERT_TRUE(done) << daemon->stdout_text();
    bool counted = false;
    for (auto& cls : c.classes) counted = counted || (*done)["errors"].value(cls, 0) > 0;
    EXPECT_TRUE(counted) << "expected one of the classes for " << c.name << ", got " << (*done)["errors"].dump();

    const auto stats = sim_stats(sim.control_port);
    auto out = check_output(dir);
    harness::expect_seqs_increase(out);
    EXPECT_EQ((*done)["quotes_accepted"].get<std::size_t>(), out.quotes);
    for (int i = 0; i < symbols; ++i) {
        const auto s = symbol(i);
        const auto written = out.seqs.count(s) ? out.seqs[s].size() : 0;
        // A response the daemon gave up on (timed out, cut short) may still count as written
        // by the simulator; the other way round would be an invented quote.
        EXPECT_LE(written, polled(stats, s)) << s;
        if (!c.whole_host && !is_faulty(s)) {
            EXPECT_EQ(written, polled(stats, s)) << s << " lost or duplicated quotes";
        }
    }
}

const Case cases[] = {
    {"latency_beyond_timeout", {{"kind", "latency"}, {"min", "500ms"}, {"max", "600ms"}}, {"timeout"}},
    {"hang", {{"kind", "hang"}}, {"timeout"}},
    {"reset_mid_response", {{"kind", "reset"}}, {"reset"}},
    {"close_without_answer", {{"kind", "close_after"}, {"requests", 0}}, {"reset"}},
    {"status_503", {{"kind", "status"}, {"status", 503}}, {"http_5xx"}},
    {"status_404", {{"kind", "status"}, {"status", 404}}, {"http_4xx"}},
    {"too_many_requests_seconds", {{"kind", "too_many_requests"}, {"retry_after", "1s"}}, {"rate_limited"}, true},
    {"too_many_requests_http_date",
     {{"kind", "too_many_requests"}, {"retry_after", "1s"}, {"retry_after_form", "http_date"}}, {"rate_limited"}, true},
    {"ban_418", {{"kind", "ban"}, {"status", 418}, {"period", "1s"}}, {"banned"}, true},
    {"ban_403", {{"kind", "ban"}, {"status", 403}, {"period", "1s"}}, {"banned"}, true},
    {"error_in_200_body", {{"kind", "body_error"}}, {"body_error"}},
    {"malformed_json", {{"kind", "malformed"}}, {"malformed"}},
    {"truncated_body", {{"kind", "truncated"}}, {"reset"}},
    {"oversized_body", {{"kind", "oversized"}, {"size", 200000}}, {"body_too_large"}},
    {"headers_never_end", {{"kind", "endless_headers"}, {"interval", "20ms"}}, {"timeout", "protocol"}},
    {"slow_trickle", {{"kind", "trickle"}, {"interval", "50ms"}}, {"timeout"}},
    {"refused_connections", {{"kind", "refuse"}, {"drop_connections", true}}, {"connect"}, true},
    {"restart", {{"kind", "restart"}, {"period", "1s"}}, {"reset", "connect"}, true},
    {"server_rate_limit", {{"kind", "rate_limit"}, {"limit", 40}, {"window", "1s"}}, {"rate_limited"}, true},
};

INSTANTIATE_TEST_SUITE_P(Sim, Faults, ::testing::ValuesIn(cases),
                         [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

// The daemon's own token bucket keeps it under the venue's limit: no 429 at all.
TEST(HostLimits, TokenBucketKeepsTheDaemonUnderTheServersLimit) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "20", "--control", "127.0.0.1:0",
                                               "--fault", R"({"kind":"rate_limit","limit":60,"window":"1s"})"});
    DaemonConfig cfg;
    cfg.port = sim.port;
    cfg.symbols = 20;
    cfg.interval = "100ms";  // asks for 200 requests/s
    cfg.extra = "hosts:\n  - host: 127.0.0.1\n    rate: 40\n    burst: 5\n";
    auto daemon = start_daemon(dir, harness::write_config(dir.path(), cfg));
    std::this_thread::sleep_for(3s);
    daemon->signal(SIGTERM);
    ASSERT_EQ(daemon->wait(5s), 0);
    auto warn = find_log(*daemon, "schedule exceeds the host's rate limit; ticks beyond it are skipped");
    ASSERT_TRUE(warn) << "no start-up warning about the budget";
    EXPECT_DOUBLE_EQ((*warn)["requests_per_second"].get<double>(), 200.0);
    auto done = find_log(*daemon, "drain complete");
    ASSERT_TRUE(done);
    EXPECT_EQ((*done)["errors"].value("rate_limited", 0), 0) << (*done)["errors"].dump();
    EXPECT_GT((*done)["rate_limited_ticks"].get<int>(), 200);
    const auto stats = sim_stats(sim.control_port);
    EXPECT_EQ(stats["faults"].value("rate_limited", 0), 0);
    auto out = check_output(dir);
    // About 40/s for 3 s, plus the burst; far below the 600 the schedule asked for.
    EXPECT_GT(out.quotes, 60u);
    EXPECT_LT(out.quotes, 150u);
    EXPECT_EQ(stats["responses"].get<std::size_t>(), out.quotes);
}

// A symbol that stops answering leaves the best bid/offer: the output marks it stale, then
// fresh again when it comes back.
TEST(Staleness, HungSymbolIsMarkedStaleThenFresh) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "5", "--control", "127.0.0.1:0"});
    DaemonConfig cfg;
    cfg.port = sim.port;
    cfg.symbols = 5;
    cfg.interval = "100ms";
    cfg.source_extra = "    stale_after: 500ms\n";
    auto daemon = start_daemon(dir, harness::write_config(dir.path(), cfg));
    ASSERT_TRUE(wait_for(sim.control_port, [](const json& st) { return polled(st, "STOCK_3") >= 3; }, 10s));
    add_fault(sim.control_port, {{"kind", "hang"}, {"symbols", {"STOCK_3"}}});
    std::this_thread::sleep_for(1500ms);
    clear_faults(sim.control_port);
    const auto ended = sim_stats(sim.control_port);
    ASSERT_TRUE(wait_for(sim.control_port, [&](const json& st) { return polled(st, "STOCK_3") >= polled(ended, "STOCK_3") + 3; }, 10s));
    daemon->signal(SIGTERM);
    ASSERT_EQ(daemon->wait(5s), 0) << daemon->stdout_text();
    std::vector<json> marks;
    for (auto& f : harness::read_output(dir / "out"))
        for (auto& r : f.records)
            if (r["type"] == "stale") marks.push_back(r);
    ASSERT_EQ(marks.size(), 2u) << "one stale mark, one fresh mark";
    EXPECT_EQ(marks[0]["symbol"], "STOCK_3");
    EXPECT_EQ(marks[0]["stale"], true);
    EXPECT_EQ(marks[1]["symbol"], "STOCK_3");
    EXPECT_EQ(marks[1]["stale"], false);
    EXPECT_GT(marks[1]["time"].get<std::string>(), marks[0]["time"].get<std::string>());
}

// Chaos: random faults across random symbols, then SIGTERM at a random moment, several times.
// Every run drains within budget, every file ends with a whole line, and every quote the
// daemon accepted is in the output exactly once, in the simulator's sequence order.
TEST(Chaos, RandomFaultsThenSigtermAtARandomMoment) {
    std::mt19937 rng(std::random_device{}());
    const std::vector<json> menu = {
        {{"kind", "latency"}, {"min", "10ms"}, {"max", "400ms"}, {"distribution", "pareto"}},
        {{"kind", "hang"}},
        {{"kind", "reset"}},
        {{"kind", "close_after"}, {"requests", 2}},
        {{"kind", "status"}, {"status", 502}},
        {{"kind", "body_error"}},
        {{"kind", "malformed"}},
        {{"kind", "truncated"}},
        {{"kind", "oversized"}, {"size", 100000}},
        {{"kind", "trickle"}, {"interval", "30ms"}},
        {{"kind", "endless_headers"}, {"interval", "30ms"}},
    };
    for (int run = 0; run < 4; ++run) {
        SCOPED_TRACE("run " + std::to_string(run));
        TempDir dir;
        auto sim = harness::start_sim(dir.path(), {"--symbols", "100", "--control", "127.0.0.1:0",
                                                   "--seed", std::to_string(rng())});
        DaemonConfig cfg;
        cfg.port = sim.port;
        cfg.symbols = 100;
        cfg.interval = "100ms";
        cfg.grace = "1500ms";
        cfg.source_extra = "    success: { pointer: /code, empty: true }\n";
        auto daemon = start_daemon(dir, harness::write_config(dir.path(), cfg));
        std::this_thread::sleep_for(500ms);
        std::uniform_int_distribution<std::size_t> pick(0, menu.size() - 1);
        std::uniform_real_distribution<double> ratio(0.05, 0.3);
        for (int f = 0; f < 4; ++f) {
            json fault = menu[pick(rng)];
            if (rng() % 2) fault["symbol_ratio"] = ratio(rng);
            else fault["request_ratio"] = ratio(rng);
            add_fault(sim.control_port, fault);
        }
        if (rng() % 3 == 0) add_fault(sim.control_port, {{"kind", "too_many_requests"}, {"request_ratio", 0.01}, {"retry_after", "1s"}});
        std::this_thread::sleep_for(std::chrono::milliseconds(500 + rng() % 2500));

        const auto t0 = std::chrono::steady_clock::now();
        daemon->signal(SIGTERM);
        const auto code = daemon->wait(5s);
        const auto elapsed = std::chrono::steady_clock::now() - t0;
        ASSERT_TRUE(code) << "no exit after SIGTERM";
        EXPECT_EQ(*code, 0) << daemon->stdout_text();
        EXPECT_LT(elapsed, 2500ms) << "the 1.5 s budget was far exceeded";
        auto done = find_log(*daemon, "drain complete");
        ASSERT_TRUE(done) << daemon->stdout_text();

        const auto stats = sim_stats(sim.control_port);
        auto out = check_output(dir);
        harness::expect_seqs_increase(out);
        EXPECT_EQ((*done)["quotes_accepted"].get<std::size_t>(), out.quotes) << "accepted but not written";
        EXPECT_GT(out.quotes, 100u);
        for (auto& [s, seqs] : out.seqs) {
            EXPECT_LE(seqs.size(), polled(stats, s)) << s;
            // Every written seq is one the simulator really sent.
            EXPECT_LE(seqs.back(), stats["last_seq"].value(s, 0LL)) << s;
        }
    }
}

}  // namespace

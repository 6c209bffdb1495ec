// Priorities with aging in the real daemon against the simulator: 20 symbols at 100 ms ask
// twice what the host's rate (100/s) allows. The 5 priority-1 symbols keep at least 95% of
// their schedule, and every symbol gets a quote at least once every 10 intervals.
#include "harness.hpp"
#include "output_checks.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <map>

using namespace harness;
using namespace std::chrono_literals;
using harness::admin_port_of;

namespace {

// Seconds of the day of an RFC 3339 UTC time ("...THH:MM:SS.nnnnnnnnnZ").
double seconds_of_day(const std::string& t) {
    const auto at = t.find('T');
    return std::stoi(t.substr(at + 1, 2)) * 3600.0 + std::stoi(t.substr(at + 4, 2)) * 60.0 + std::stod(t.substr(at + 7));
}

std::map<std::string, long long> polls_by_symbol(int admin) {
    std::map<std::string, long long> out;
    const auto table = http_request(admin, "GET", "/debug/tasks").json();
    for (const auto& row : table["tasks"]) out[row["symbol"].get<std::string>()] = row["polls"].get<long long>();
    EXPECT_EQ(out.size(), 20u) << table.dump().substr(0, 300);
    return out;
}

}  // namespace

TEST(Priority, AtTwiceTheHostsRateTheBestKeepTheirScheduleAndEverySymbolIsPolled) {
    TempDir dir;
    auto sim = start_sim(dir.path(), {"--symbols", "20", "--control", "127.0.0.1:0"});
    const fs::path path = dir / "mdagg.yaml";
    std::ofstream config(path);
    config << "output: { dir: " << (dir / "out").string() << ", flush_every: 200ms }\n"
           << "admin: { listen: \"127.0.0.1:0\" }\n"
           << "hosts:\n  - host: 127.0.0.1\n    rate: 100\n"
           << "sources:\n  - name: sim\n"
           << "    url: \"http://127.0.0.1:" << sim.port << "/quotes/{symbol}\"\n"
           << "    interval: 100ms\n    priority: 9\n    symbols:\n";
    for (int i = 0; i < 20; ++i)
        config << "      - " << (i < 5 ? "{ name: STOCK_" + std::to_string(i) + ", priority: 1 }" : "STOCK_" + std::to_string(i))
               << "\n";
    config << "    fields: { symbol: /symbol, bid: /bidPrice, ask: /askPrice, seq: /seq }\n";
    config.close();
    auto daemon = start_daemon(dir, path);
    const int admin = admin_port_of(*daemon);
    EXPECT_FALSE(find_log(*daemon, "hedge is not used yet by this version: no hedged requests"));
    std::this_thread::sleep_for(1s);  // past the first round's burst

    const auto before = polls_by_symbol(admin);
    const auto from = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(6s);
    const auto after = polls_by_symbol(admin);
    const double intervals = std::chrono::duration<double>(std::chrono::steady_clock::now() - from) / 100ms;
    const auto tasks = http_request(admin, "GET", "/debug/tasks").json()["tasks"];
    const auto metrics = http_request(admin, "GET", "/metrics").body;
    daemon->signal(SIGTERM);
    ASSERT_EQ(daemon->wait(10s), 0) << daemon->stdout_text();

    for (int i = 0; i < 5; ++i) {
        const std::string s = "STOCK_" + std::to_string(i);
        EXPECT_GE(static_cast<double>(after.at(s) - before.at(s)), 0.95 * (intervals - 1)) << s << " over " << intervals;
    }
    for (const auto& row : tasks) {
        EXPECT_EQ(row["priority"], row["symbol"].get<std::string>().size() == 7 && row["symbol"] < "STOCK_5" ? 1 : 9)
            << row.dump();
        EXPECT_LE(row["effective_priority"], row["priority"]);
    }
    // Skips fall on priority 9; the bucket keeps serving close to its rate.
    EXPECT_GT(metric(metrics, R"(mdagg_source_rate_limited_ticks_by_priority_total{source="sim",priority="9"})").value_or(0), 0);
    EXPECT_FALSE(metric(metrics, R"(mdagg_source_rate_limited_ticks_by_priority_total{source="sim",priority="1"})").value_or(0) >
                 0.05 * 5 * intervals);

    // Every symbol: no gap between its quotes much longer than 10 intervals (after the first
    // second). Aging alone keeps it to 10 (the unit simulation checks that exactly); the 0.5 s
    // is a loaded machine's scheduling; without aging priority 9 starves for seconds.
    std::map<std::string, std::vector<double>> times;
    for (auto& f : read_output(dir / "out"))
        for (auto& r : f.records)
            if (r["type"] == "quote") times[r["symbol"].get<std::string>()].push_back(seconds_of_day(r["receive_time"]));
    ASSERT_EQ(times.size(), 20u);
    for (auto& [symbol, t] : times) {
        std::sort(t.begin(), t.end());
        double longest = 0;
        for (std::size_t i = 1; i < t.size(); ++i)
            if (t[i] - t[i - 1] >= 0) longest = std::max(longest, t[i] - t[i - 1]);  // a midnight wrap aside
        EXPECT_LE(longest, 1.5) << symbol << ": longest gap " << longest << " s";
    }
}

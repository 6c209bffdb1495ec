// Memory under config churn: the real daemon reloaded (SIGHUP) again and again, each reload
// adding 1,000 new symbols and removing the previous 1,000, must not grow. Before ids were
// reused, every reload appended names, aggregator rows and formatter caches for good.
#include "harness.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

using namespace std::chrono_literals;
using harness::Process;
using harness::TempDir;

namespace {

constexpr int churned = 1000;  // symbols added and removed by each reload
constexpr int fixed = 50;      // polled by a second source throughout: STOCK_0 .. STOCK_49
constexpr int reloads = 100;

struct Churn {
    int churned = 1000;
    int threads = 1;
    std::string interval = "250ms";
};

// Step k polls STOCK_<churned (k + 1)> .. on source "churn", plus the fixed symbols on source
// "fixed" (two sources, so a dense symbols x sources table would show).
std::string churn_config(const harness::fs::path& dir, int port, int step, const Churn& c = {}) {
    std::ostringstream out;
    auto source = [&](const std::string& name, int start, int count) {
        out << "  - name: " << name << "\n"
            << "    url: \"http://127.0.0.1:" << port << "/quotes/{symbol}\"\n"
            << "    interval: " << c.interval << "\n"
            << "    symbols: { prefix: STOCK_, start: " << start << ", count: " << count << " }\n"
            << "    fields: { symbol: /symbol, bid: /bidPrice, ask: /askPrice, bid_size: /bidQty,"
               " ask_size: /askQty, exchange_time: { pointer: /time, unit: ms }, seq: /seq }\n";
    };
    out << "runtime: { threads: " << c.threads << " }\n"
        << "shutdown: { grace: 5s, interrupt_grace: 5s }\n"
        << "log: { level: info, summary_every: 1h }\n"
        << "output: { dir: " << (dir / "out").string() << ", flush_every: 200ms, bar_interval: 1s }\n"
        << "sources:\n";
    source("churn", c.churned * (step + 1), c.churned);
    source("fixed", 0, fixed);
    return out.str();
}

// Resident and peak resident set of a process, in KiB.
struct Rss {
    long rss_kib = 0, hwm_kib = 0;
};
Rss read_rss(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    Rss r;
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) r.rss_kib = std::stol(line.substr(6));
        if (line.rfind("VmHWM:", 0) == 0) r.hwm_kib = std::stol(line.substr(6));
    }
    return r;
}

std::size_t count_lines(const Process& p, const std::string& msg) {
    std::size_t n = 0;
    for (auto& line : p.stdout_json()) n += line.value("msg", "") == msg;
    return n;
}

}  // namespace

TEST(Churn, HundredReloadsOfNewSymbolsKeepMemoryFlat) {
#if defined(__SANITIZE_ADDRESS__)
    // ASan holds freed memory in a quarantine (256 MiB) to catch use after free: growth by
    // design, not the daemon's. Here freed memory goes straight back to its allocator.
    const char* asan = std::getenv("ASAN_OPTIONS");
    const std::string options = std::string(asan ? asan : "") + (asan && *asan ? ":" : "") +
                                "quarantine_size_mb=0:thread_local_quarantine_size_kb=0";
    ::setenv("ASAN_OPTIONS", options.c_str(), 1);
#endif
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", std::to_string(churned * (reloads + 2))});
    const auto config = dir / "mdagg.yaml";
    std::ofstream(config) << churn_config(dir.path(), sim.port, 0);
    Process daemon("mdagg", {MDAGG_BIN, "--config", config.string()}, dir.path());
    ASSERT_TRUE(daemon.wait_for_line("msg", "mdagg started", 15s)) << daemon.stdout_text();
    std::this_thread::sleep_for(1s);

    std::vector<Rss> after(reloads + 1);
    after[0] = read_rss(daemon.pid());
    for (int step = 1; step <= reloads; ++step) {
        const auto tmp = dir / "mdagg.yaml.tmp";
        std::ofstream(tmp) << churn_config(dir.path(), sim.port, step);
        harness::fs::rename(tmp, config);
        daemon.signal(SIGHUP);
        const auto until = std::chrono::steady_clock::now() + 30s;
        while (count_lines(daemon, "config reloaded") < static_cast<std::size_t>(step) &&
               std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(20ms);
        ASSERT_EQ(count_lines(daemon, "config reloaded"), static_cast<std::size_t>(step)) << daemon.stdout_text();
        // Two intervals: every new symbol is quoted (aggregator row, bar, formatted names),
        // the retired pollers finish.
        std::this_thread::sleep_for(600ms);
        after[step] = read_rss(daemon.pid());
    }

    std::ostringstream figures;
    for (int step : {0, 1, 2, 10, 50, 100})
        figures << " step " << step << ": rss " << after[step].rss_kib << " KiB, hwm " << after[step].hwm_kib << " KiB;";
    std::cout << "churn:" << figures.str() << "\n";

    daemon.signal(SIGTERM);
    ASSERT_EQ(daemon.wait(20s), 0) << daemon.stdout_text();
    const auto lines = daemon.stdout_json();
    const auto reloaded = std::find_if(lines.rbegin(), lines.rend(),
                                       [](auto& l) { return l.value("msg", "") == "config reloaded"; });
    ASSERT_NE(reloaded, lines.rend());
    EXPECT_EQ((*reloaded)["pollers_added"], churned);
    EXPECT_EQ((*reloaded)["pollers_removed"], churned);
    // The last reload's symbols were polled and written under their own names (a reused id
    // must never print a previous symbol's name).
    std::size_t last_quoted = 0, first_quoted = 0;
    for (auto& entry : harness::fs::directory_iterator(dir / "out")) {
        if (entry.path().filename().string().rfind("quotes-", 0) != 0) continue;
        std::ifstream in(entry.path());
        std::string line;
        while (std::getline(in, line)) {
            last_quoted += line.find("\"symbol\":\"STOCK_" + std::to_string(churned * (reloads + 1)) + "\"") != std::string::npos;
            first_quoted += line.find("\"symbol\":\"STOCK_" + std::to_string(churned) + "\"") != std::string::npos;
        }
    }
    EXPECT_GT(last_quoted, 0u);
    EXPECT_GT(first_quoted, 0u);

    // The heap grows to a plateau over the first ten reloads (tables sized for the old and the
    // new symbols at once, which a reload holds together). On a loaded machine the first step is
    // measured before every new symbol is quoted, so that plateau reads as +20-30% from step 1
    // (docs/benchmarks.md); a leak of 100 bytes per symbol would add 10 MiB (+60%).
    const double growth = static_cast<double>(after[reloads].rss_kib) / static_cast<double>(after[1].rss_kib);
    EXPECT_LT(growth, 1.40) << figures.str();
    // Once the heap has settled, a leak of a few tens of bytes per symbol still shows over the
    // second half: 50 reloads x 1,000 symbols x 40 B is +2 MiB, +9%. Measured from reload 50,
    // not 10: a loaded machine was seen still reaching its plateau after reload 10 (19,980 KiB
    // at 10, 21,760 at 50, 21,788 at 100).
    const double late = static_cast<double>(after[reloads].rss_kib) / static_cast<double>(after[reloads / 2].rss_kib);
    EXPECT_LT(late, 1.08) << figures.str();
}

TEST(Churn, MultiThreadedReloadsNeverWriteAQuoteUnderAnotherSymbolsName) {
    // Ids change hands while io threads deliver quotes through the aggregator's strand. A
    // quote written under a reused id's new name would break that name's run of seqs (the
    // simulator numbers each symbol's quotes 1, 2, 3, ...).
    TempDir dir;
    const Churn c{200, 2, "50ms"};
    constexpr int steps = 30;
    auto sim = harness::start_sim(dir.path(), {"--symbols", std::to_string(c.churned * (steps + 2))});
    const auto config = dir / "mdagg.yaml";
    std::ofstream(config) << churn_config(dir.path(), sim.port, 0, c);
    Process daemon("mdagg", {MDAGG_BIN, "--config", config.string()}, dir.path());
    ASSERT_TRUE(daemon.wait_for_line("msg", "mdagg started", 15s)) << daemon.stdout_text();
    std::this_thread::sleep_for(300ms);
    for (int step = 1; step <= steps; ++step) {
        const auto tmp = dir / "mdagg.yaml.tmp";
        std::ofstream(tmp) << churn_config(dir.path(), sim.port, step, c);
        harness::fs::rename(tmp, config);
        daemon.signal(SIGHUP);
        const auto until = std::chrono::steady_clock::now() + 30s;
        while (count_lines(daemon, "config reloaded") < static_cast<std::size_t>(step) &&
               std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(10ms);
        ASSERT_EQ(count_lines(daemon, "config reloaded"), static_cast<std::size_t>(step)) << daemon.stdout_text();
        std::this_thread::sleep_for(150ms);  // three intervals
    }
    daemon.signal(SIGTERM);
    ASSERT_EQ(daemon.wait(20s), 0) << daemon.stdout_text();

    std::map<std::string, std::int64_t> last_seq;  // "source/symbol"
    std::size_t quotes = 0, out_of_order = 0;
    std::set<std::string> churned_quoted;
    auto files = harness::read_output(dir / "out");
    std::sort(files.begin(), files.end(), [](auto& a, auto& b) { return a.path < b.path; });  // by open time
    for (auto& file : files) {
        if (file.path.filename().string().rfind("quotes-", 0) != 0) continue;
        for (auto& r : file.records) {
            ++quotes;
            const std::string symbol = r["symbol"].get<std::string>();
            std::int64_t& last = last_seq[r["source"].get<std::string>() + "/" + symbol];
            const auto seq = r["seq"].get<std::int64_t>();
            out_of_order += seq <= last;
            last = seq;
            if (r["source"] == "churn") churned_quoted.insert(symbol);
        }
    }
    EXPECT_GT(quotes, 0u);
    EXPECT_EQ(out_of_order, 0u) << "a quote was written under another symbol's name";
    // The steps' symbols were polled (most of them, on a loaded machine), none outside them.
    EXPECT_GE(churned_quoted.size(), static_cast<std::size_t>(c.churned * (steps + 1) / 2));
    for (auto& name : churned_quoted) {
        const long n = std::stol(name.substr(6));
        EXPECT_TRUE(n >= c.churned && n < c.churned * (steps + 2)) << name;
    }
}

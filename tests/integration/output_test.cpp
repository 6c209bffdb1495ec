// Output under stress, with the real processes: kill -9 at random moments and restart, and a
// disk that fills up and recovers.
#include "harness.hpp"
#include "output_checks.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <sys/mount.h>
#include <unistd.h>

using namespace std::chrono_literals;
using harness::DaemonConfig;
using harness::Process;
using harness::TempDir;
using harness::sim_stats;
namespace fs = std::filesystem;

namespace {

std::unique_ptr<Process> start_daemon(const TempDir& dir, const fs::path& config, const std::string& name) {
    return std::make_unique<Process>(name, std::vector<std::string>{MDAGG_BIN, "--config", config.string()},
                                     dir.path());
}

std::vector<nlohmann::json> logs_with(const Process& p, const std::string& msg) {
    std::vector<nlohmann::json> out;
    for (auto& line : p.stdout_json())
        if (line.value("msg", "") == msg) out.push_back(line);
    return out;
}

std::vector<fs::path> part_files(const fs::path& dir) {
    std::vector<fs::path> out;
    if (!fs::exists(dir)) return out;
    for (auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".part") out.push_back(e.path());
    return out;
}

// Every byte of every file: complete lines only, each valid JSON.
std::size_t check_complete(const fs::path& dir) {
    std::size_t files = 0;
    for (auto& f : harness::read_output(dir)) {
        EXPECT_TRUE(f.ends_with_newline) << f.path << " ends with a partial record";
        ++files;
    }
    return files;
}

// Quotes per daemon pid (the pid is the third '-' field of a segment name).
std::map<int, std::size_t> quotes_by_pid(const fs::path& dir) {
    std::map<int, std::size_t> out;
    for (auto& f : harness::read_output(dir)) {
        const std::string name = f.path.filename().string();
        if (name.rfind("quotes-", 0) != 0) continue;
        const auto a = name.find('-', 7);
        const auto b = name.find('-', a + 1);
        out[std::stoi(name.substr(a + 1, b - a - 1))] += f.records.size();
    }
    return out;
}

// A tmpfs of a given size at `dir`, unmounted when it goes out of scope.
class Tmpfs {
public:
    Tmpfs(const fs::path& dir, const std::string& options, unsigned long flags = 0) : dir_(dir) {
        fs::create_directories(dir);
        if (::mount("tmpfs", dir.c_str(), "tmpfs", flags, options.c_str()) == 0) {
            mounted_ = true;
        } else {
            error_ = std::strerror(errno);
        }
    }
    ~Tmpfs() {
        if (mounted_ && ::umount(dir_.c_str()) != 0) ::umount2(dir_.c_str(), MNT_DETACH);
    }
    bool mounted() const { return mounted_; }
    const std::string& error() const { return error_; }
    bool remount(const std::string& options) {
        return ::mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT, options.c_str()) == 0;
    }

private:
    fs::path dir_;
    bool mounted_ = false;
    std::string error_;
};

}  // namespace

// kill -9 at random moments under load, restarting after each: every restart repairs exactly
// the .part files the kill left, every finished file parses completely, and each kill loses
// at most about one flush window of quotes.
TEST(Output, KillNineLoopLosesAtMostAFlushWindowPerKill) {
    TempDir dir;
    constexpr int symbols = 200;
    auto sim = harness::start_sim(dir.path(), {"--symbols", std::to_string(symbols)});
    DaemonConfig c;
    c.port = sim.port;
    c.symbols = symbols;
    c.interval = "50ms";
    c.flush_every = "250ms";
    // Small segments: kills land during rotations too.
    c.output_extra = "rotate: { max_bytes: 65536 }";
    const auto config = harness::write_config(dir.path(), c);
    const fs::path out = dir / "out";
    const double interval_s = 0.05, flush_s = 0.25;

    std::mt19937 rng(std::random_device{}());
    std::uniform_int_distribution<int> run_ms(0, 2000);
    constexpr int kills = 8;
    std::vector<std::unique_ptr<Process>> daemons;
    struct Life {
        int pid;
        std::size_t responses;
        double seconds;
    };
    std::vector<Life> lives;
    double worst_window_share = 0;
    for (int k = 0; k <= kills; ++k) {
        const auto parts_before = part_files(out).size();
        const auto before = sim_stats(sim.port)["responses"].get<std::size_t>();
        const auto t0 = std::chrono::steady_clock::now();
        daemons.push_back(start_daemon(dir, config, "mdagg-" + std::to_string(k)));
        Process& d = *daemons.back();
        if (k == kills) {
            // The last run drains normally and must do so within its budget.
            ASSERT_TRUE(d.wait_for_line("msg", "mdagg started", 20s)) << d.stdout_text() << d.stderr_text();
            std::this_thread::sleep_for(1500ms);
            d.signal(SIGTERM);
            const auto code = d.wait(10s);
            ASSERT_TRUE(code) << "the final drain did not finish";
            EXPECT_EQ(*code, 0) << d.stdout_text();
        } else {
            // Any moment: during start-up and repair, or under load.
            std::this_thread::sleep_for(std::chrono::milliseconds(run_ms(rng)));
            d.signal(SIGKILL);
            ASSERT_EQ(d.wait(10s), 128 + SIGKILL);
        }
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const auto after = sim_stats(sim.port)["responses"].get<std::size_t>();
        lives.push_back({d.pid(), after - before, seconds});

        // The repair is logged file by file; a run killed before it finished repairing leaves
        // the rest to the next one.
        const auto repaired = logs_with(d, "repaired output segment left by an interrupted run").size() +
                              logs_with(d, "removed output segment without a complete record left by an interrupted run").size();
        if (d.wait_for_line("msg", "mdagg started", 0ms)) {
            EXPECT_EQ(repaired, parts_before) << "run " << k << " must repair every .part file it found";
        } else {
            EXPECT_LE(repaired, parts_before);
        }
    }

    EXPECT_TRUE(part_files(out).empty()) << "the final drain leaves no .part file";
    EXPECT_GT(check_complete(out), static_cast<std::size_t>(kills));
    const auto written = quotes_by_pid(out);
    for (std::size_t i = 0; i + 1 < lives.size(); ++i) {
        const Life& l = lives[i];
        const std::size_t got = written.count(l.pid) ? written.at(l.pid) : 0;
        ASSERT_LE(got, l.responses) << "run " << i << " wrote more quotes than were served";
        const std::size_t lost = l.responses - got;
        // One flush window of quotes, plus the polls in flight at the kill (their responses
        // count as served but were never read), plus what arrived while the last flush was
        // still writing and syncing (up to a window on a loaded disk). The rate is the
        // schedule's: a run's average would include its start-up and understate it.
        const double rate = symbols / interval_s;
        const double window = rate * (flush_s + interval_s);
        const double allowed = window + rate * (interval_s + flush_s) + 50;
        EXPECT_LE(static_cast<double>(lost), allowed)
            << "run " << i << " (pid " << l.pid << ", " << l.seconds << " s, " << l.responses
            << " served) lost " << lost << " quotes; one flush window is " << window;
        if (window > 0) worst_window_share = std::max(worst_window_share, static_cast<double>(lost) / window);
    }
    std::cout << "worst loss per kill: " << worst_window_share << " flush windows\n";

    // Per symbol, the finished files never repeat a quote or go backwards within a run.
    std::map<std::string, std::set<long long>> seen;
    for (auto& f : harness::read_output(out)) {
        for (auto& r : f.records) {
            if (r["type"] != "quote") continue;
            EXPECT_TRUE(seen[r["symbol"].get<std::string>()].insert(r["seq"].get<long long>()).second)
                << "duplicate quote " << r.dump();
        }
    }
    EXPECT_EQ(seen.size(), static_cast<std::size_t>(symbols));
}

// A tmpfs that fills up mid-run and then grows: the daemon keeps polling, reports the fault,
// counts what it drops, recovers, drains in budget, and every file is complete.
TEST(Output, FillingDiskKeepsPollingCountsDropsAndRecovers) {
    if (::geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
    TempDir dir;
    const fs::path out = dir / "out";
    Tmpfs disk(out, "size=512k,mode=0755");
    if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here: " << disk.error();

    auto sim = harness::start_sim(dir.path(), {"--symbols", "100"});
    DaemonConfig c;
    c.port = sim.port;
    c.symbols = 100;
    c.interval = "50ms";
    c.flush_every = "200ms";
    c.summary_every = "500ms";
    c.output_extra = "max_buffer_bytes: 262144, rotate: { max_bytes: 65536 }";
    auto daemon = start_daemon(dir, harness::write_config(dir.path(), c), "mdagg");

    const auto fault = daemon->wait_for_line(
        "msg", "output disk fault: records stay queued within the bound and writing is retried", 60s);
    ASSERT_TRUE(fault) << daemon->stdout_text();
    EXPECT_EQ((*fault)["errno"], ENOSPC) << fault->dump();

    // Still polling while the disk is full, and dropping by the policy once the queue is full.
    const auto served = sim_stats(sim.port)["responses"].get<std::size_t>();
    bool dropping = false;
    for (int i = 0; i < 200 && !dropping; ++i) {
        std::this_thread::sleep_for(100ms);
        for (auto& s : logs_with(*daemon, "summary"))
            if (s["output_disk_fault"] == true && s["records_dropped"].get<std::size_t>() > 0) dropping = true;
    }
    ASSERT_TRUE(dropping) << daemon->stdout_text();
    EXPECT_GT(sim_stats(sim.port)["responses"].get<std::size_t>(), served + 100) << "polling must go on";
    EXPECT_FALSE(logs_with(*daemon, "output records dropped").empty()) << "drops are logged";
    EXPECT_LE(logs_with(*daemon, "output disk fault persists").size(), 3u) << "the fault log is rate-limited";

    ASSERT_TRUE(disk.remount("size=64m")) << std::strerror(errno);
    ASSERT_TRUE(daemon->wait_for_line("msg", "output disk recovered: writing resumed", 30s)) << daemon->stdout_text();
    std::this_thread::sleep_for(1s);
    daemon->signal(SIGTERM);
    const auto code = daemon->wait(10s);
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, 1) << "records were dropped: the drain says the output is incomplete";

    const auto done = logs_with(*daemon, "drain finished but output is incomplete: records were dropped or not written");
    ASSERT_EQ(done.size(), 1u) << daemon->stdout_text();
    const auto& d = done[0];
    EXPECT_LT(d["drain_ms"].get<double>(), d["budget_ms"].get<double>());
    EXPECT_GT(d["quotes_dropped"].get<std::size_t>(), 0u);
    // Every accepted quote is either in a file or counted as dropped.
    EXPECT_EQ(d["quotes_written"].get<std::size_t>() + d["quotes_dropped"].get<std::size_t>(),
              d["quotes_accepted"].get<std::size_t>());
    EXPECT_TRUE(part_files(out).empty());
    check_complete(out);
    std::size_t in_files = 0;
    for (auto& [pid, n] : quotes_by_pid(out)) in_files += n;
    EXPECT_EQ(in_files, d["quotes_written"].get<std::size_t>());
    // Writes resumed after ENOSPC at the exact byte: no quote twice, none out of order.
    std::map<std::string, long long> last_seq;
    auto files = harness::read_output(out);
    std::sort(files.begin(), files.end(), [](auto& a, auto& b) { return a.path < b.path; });
    for (auto& f : files) {
        for (auto& r : f.records) {
            if (r["type"] != "quote") continue;
            const auto seq = r["seq"].get<long long>();
            auto [it, fresh] = last_seq.emplace(r["symbol"].get<std::string>(), seq);
            if (!fresh) {
                EXPECT_LT(it->second, seq) << f.path << ": " << r.dump();
                it->second = seq;
            }
        }
    }
}

TEST(Output, ReadOnlyOrFullDiskAtStartExitsTwo) {
    if (::geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
    for (const std::string options : {"size=1m", "size=4k"}) {
        TempDir dir;
        const fs::path out = dir / "out";
        Tmpfs disk(out, options, options == "size=1m" ? MS_RDONLY : 0);
        if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here: " << disk.error();
        if (options == "size=4k") {
            std::ofstream fill(out / "filler", std::ios::binary);
            fill << std::string(64 * 1024, 'x');  // stops at the limit
        }
        DaemonConfig c;
        c.port = 1;  // never polled
        auto daemon = start_daemon(dir, harness::write_config(dir.path(), c), "mdagg");
        const auto code = daemon->wait(10s);
        ASSERT_TRUE(code) << options;
        EXPECT_EQ(*code, 2) << options << ": " << daemon->stdout_text();
        EXPECT_NE(daemon->stderr_text().find(out.string()), std::string::npos) << daemon->stderr_text();
    }
}

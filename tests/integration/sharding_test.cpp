// Sharding across replicas: several real daemons with different shard indices against one
// simulator poll every symbol exactly once between them.
#include "harness.hpp"
#include "output_checks.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <unistd.h>

using namespace std::chrono_literals;
using harness::DaemonConfig;
using harness::Process;
using harness::TempDir;
using harness::find_log;

namespace {

// The documented shard function, written out again so the test pins the contract rather than
// echoing the daemon's code: FNV-1a 64 of the symbol name, mod the shard count.
unsigned documented_shard(const std::string& symbol, unsigned count) {
    std::uint64_t h = 14695981039346656037ull;
    for (unsigned char c : symbol) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return static_cast<unsigned>(h % count);
}

// argv for mdagg with exactly these SHARD_* variables (the test runner's are dropped).
std::vector<std::string> daemon_argv(const std::filesystem::path& config, std::vector<std::string> env = {}) {
    std::vector<std::string> argv{"/usr/bin/env", "-u", "SHARD_INDEX", "-u", "SHARD_COUNT"};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.insert(argv.end(), {MDAGG_BIN, "--config", config.string()});
    return argv;
}

void append_to(const std::filesystem::path& file, const std::string& text) {
    std::ofstream(file, std::ios::app) << text;
}

struct ShardOutput {
    std::map<std::string, std::size_t> quotes;  // symbol -> quotes written
    std::set<std::string> bar_symbols;
};

ShardOutput read_shard_output(const std::filesystem::path& out_dir) {
    ShardOutput o;
    EXPECT_TRUE(harness::unfinished_files(out_dir).empty()) << "files left unfinished in " << out_dir;
    for (auto& f : harness::read_output(out_dir)) {
        EXPECT_TRUE(f.ends_with_newline) << f.path;
        for (auto& r : f.records) {
            if (r["type"] == "quote")
                ++o.quotes[r["symbol"].get<std::string>()];
            else if (r["type"] == "bar")
                o.bar_symbols.insert(r["symbol"].get<std::string>());
        }
    }
    return o;
}

}  // namespace

TEST(ShardedReplicas, ThreeReplicasCoverEverySymbolExactlyOnce) {
    TempDir dir;
    constexpr int symbols = 300;
    constexpr unsigned shards = 3;
    auto sim = harness::start_sim(dir.path(), {"--symbols", std::to_string(symbols)});

    // Each way of choosing a shard once: the file alone, the environment alone, and the file's
    // index with the environment's count overriding the file's.
    std::vector<std::unique_ptr<Process>> daemons;
    std::vector<std::filesystem::path> out_dirs;
    for (unsigned index = 0; index < shards; ++index) {
        auto replica_dir = dir / ("replica-" + std::to_string(index));
        std::filesystem::create_directories(replica_dir);
        DaemonConfig c;
        c.port = sim.port;
        c.symbols = symbols;
        c.interval = "200ms";  // generous: a poll that times out after the answer breaks the count
        auto config = harness::write_config(replica_dir, c);
        std::vector<std::string> env;
        if (index == 0) append_to(config, "sharding: { index: 0, count: 3 }\n");
        if (index == 1) env = {"SHARD_INDEX=1", "SHARD_COUNT=3"};
        if (index == 2) {
            append_to(config, "sharding: { index: 2, count: 5 }\n");  // the count is overridden
            env = {"SHARD_COUNT=3"};
        }
        daemons.push_back(std::make_unique<Process>("mdagg", daemon_argv(config, env), replica_dir));
        out_dirs.push_back(replica_dir / "out");
    }

    // Every symbol answered a few times, by the simulator's count.
    auto all_polled = [&] {
        auto stats = nlohmann::json::parse(harness::http_get(sim.port, "/stats"));
        if (stats["per_symbol"].size() < static_cast<std::size_t>(symbols)) return false;
        for (auto& [symbol, n] : stats["per_symbol"].items())
            if (n.get<int>() < 3) return false;
        return true;
    };
    for (int i = 0; i < 120 && !all_polled(); ++i) std::this_thread::sleep_for(250ms);
    for (auto& d : daemons) ASSERT_TRUE(d->running()) << d->stdout_text() << d->stderr_text();

    for (auto& d : daemons) d->signal(SIGTERM);
    for (unsigned index = 0; index < shards; ++index) {
        auto code = daemons[index]->wait(10s);
        ASSERT_TRUE(code) << "replica " << index << " did not exit after SIGTERM";
        EXPECT_EQ(*code, 0) << daemons[index]->stdout_text();
        auto line = find_log(*daemons[index], "sharding");
        ASSERT_TRUE(line) << daemons[index]->stdout_text();
        EXPECT_EQ((*line)["index"], index);
        EXPECT_EQ((*line)["count"], shards);
        EXPECT_EQ((*line)["symbols_total"], symbols);
    }

    auto stats = nlohmann::json::parse(harness::http_get(sim.port, "/stats"));
    std::map<std::string, unsigned> replica_of;
    std::size_t quotes = 0;
    for (unsigned index = 0; index < shards; ++index) {
        auto out = read_shard_output(out_dirs[index]);
        EXPECT_FALSE(out.quotes.empty()) << "replica " << index << " polled nothing";
        for (auto& [symbol, n] : out.quotes) {
            EXPECT_EQ(documented_shard(symbol, shards), index) << symbol << " polled by the wrong replica";
            const auto [it, fresh] = replica_of.emplace(symbol, index);
            EXPECT_TRUE(fresh) << symbol << " polled by replicas " << it->second << " and " << index;
            // The simulator's count for the symbol is all in this replica's output.
            EXPECT_EQ(stats["per_symbol"][symbol].get<std::size_t>(), n) << symbol;
            quotes += n;
        }
        for (auto& symbol : out.bar_symbols) EXPECT_EQ(documented_shard(symbol, shards), index) << symbol;
        EXPECT_EQ(out.bar_symbols.size(), out.quotes.size()) << "replica " << index;
    }
    EXPECT_EQ(replica_of.size(), static_cast<std::size_t>(symbols)) << "some symbols were polled by no replica";
    EXPECT_EQ(stats["responses"].get<std::size_t>(), quotes);
}

TEST(ShardedReplicas, BadShardEnvironmentExitsTwoAndPollsNothing) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "10"});
    DaemonConfig c;
    c.port = sim.port;
    c.symbols = 10;
    auto config = harness::write_config(dir.path(), c);

    Process out_of_range("range", daemon_argv(config, {"SHARD_INDEX=3", "SHARD_COUNT=3"}), dir.path());
    EXPECT_EQ(out_of_range.wait(10s), 2);
    EXPECT_NE(out_of_range.stderr_text().find(
                  "sharding: index 3 (from SHARD_INDEX) must be less than the shard count 3 (from SHARD_COUNT)"),
              std::string::npos)
        << out_of_range.stderr_text();

    Process junk("junk", daemon_argv(config, {"SHARD_COUNT=three"}), dir.path());
    EXPECT_EQ(junk.wait(10s), 2);
    EXPECT_NE(junk.stderr_text().find("SHARD_COUNT=\"three\""), std::string::npos) << junk.stderr_text();

    Process zero("zero", daemon_argv(config, {"SHARD_INDEX=0", "SHARD_COUNT=0"}), dir.path());
    EXPECT_EQ(zero.wait(10s), 2);

    EXPECT_FALSE(std::filesystem::exists(dir / "out")) << "a bad shard setting must not create output";
    auto stats = nlohmann::json::parse(harness::http_get(sim.port, "/stats"));
    EXPECT_EQ(stats["responses"].get<int>(), 0) << "nothing may be polled";
}

TEST(ShardedReplicas, AShardWithNoSymbolsRunsIdleAndDrainsCleanly) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "2"});
    DaemonConfig c;
    c.port = sim.port;
    c.symbols = 2;
    auto config = harness::write_config(dir.path(), c);
    constexpr unsigned count = 50;
    unsigned empty = 0;
    while (empty == documented_shard("STOCK_0", count) || empty == documented_shard("STOCK_1", count)) ++empty;

    Process daemon("mdagg", daemon_argv(config, {"SHARD_INDEX=" + std::to_string(empty), "SHARD_COUNT=50"}),
                   dir.path());
    auto warning = daemon.wait_for_line("msg", "this shard has no symbols: running idle", 10s);
    ASSERT_TRUE(warning) << daemon.stdout_text() << daemon.stderr_text();
    EXPECT_EQ((*warning)["symbols"], 0);
    EXPECT_EQ((*warning)["symbols_total"], 2);
    ASSERT_TRUE(daemon.wait_for_line("msg", "mdagg started", 10s)) << daemon.stdout_text();
    std::this_thread::sleep_for(1s);
    ASSERT_TRUE(daemon.running()) << daemon.stdout_text() << daemon.stderr_text();

    daemon.signal(SIGTERM);
    auto code = daemon.wait(10s);
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, 0) << daemon.stdout_text();
    EXPECT_TRUE(find_log(daemon, "drain complete")) << daemon.stdout_text();
    auto out = read_shard_output(dir / "out");
    EXPECT_TRUE(out.quotes.empty());
    // A stream gets a file only once it has a record: an idle replica leaves none, finished
    // or unfinished.
    EXPECT_TRUE(harness::read_output(dir / "out").empty());
    EXPECT_TRUE(harness::unfinished_files(dir / "out").empty());
    auto stats = nlohmann::json::parse(harness::http_get(sim.port, "/stats"));
    EXPECT_EQ(stats["responses"].get<int>(), 0);
}

// A StatefulSet pod's host name is <name>-<ordinal>; give the daemon one in a UTS namespace.
TEST(ShardedReplicas, IndexAutoTakesTheOrdinalFromAStatefulSetHostName) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root for a UTS namespace";
    TempDir dir;
    DaemonConfig c;
    c.port = 8081;  // --check-config connects to nothing
    c.symbols = 300;
    auto config = harness::write_config(dir.path(), c);
    auto with_hostname = [&](const std::string& name, const std::string& host) {
        std::vector<std::string> argv{"/usr/bin/unshare", "--uts", "/bin/sh", "-c", "hostname \"$0\" && exec \"$@\"",
                                      host, "/usr/bin/env", "-u", "SHARD_INDEX", "-u", "SHARD_COUNT",
                                      "SHARD_INDEX=auto", "SHARD_COUNT=3", MDAGG_BIN, "--check-config", config.string()};
        return std::make_unique<Process>(name, argv, dir.path());
    };
    auto pod = with_hostname("pod", "mdagg-2");
    auto code = pod->wait(10s);
    ASSERT_TRUE(code);
    if (*code != 0 && pod->stderr_text().find("unshare") != std::string::npos)
        GTEST_SKIP() << "no UTS namespace here: " << pod->stderr_text();
    EXPECT_EQ(*code, 0) << pod->stderr_text();
    unsigned kept = 0;
    for (int i = 0; i < 300; ++i) kept += documented_shard("STOCK_" + std::to_string(i), 3) == 2;
    EXPECT_NE(pod->stdout_text().find("shard 2 of 3: " + std::to_string(kept) + " of 300 symbols"), std::string::npos)
        << pod->stdout_text();

    auto beyond = with_hostname("beyond", "mdagg-3");  // scaled past SHARD_COUNT
    EXPECT_EQ(beyond->wait(10s), 2);
    EXPECT_NE(beyond->stderr_text().find("index 3 (from the ordinal of host name \"mdagg-3\")"), std::string::npos)
        << beyond->stderr_text();
    auto deployment = with_hostname("deployment", "mdagg-7d9c8b-x2x4q");  // a Deployment's pod: no ordinal
    EXPECT_EQ(deployment->wait(10s), 2);
}

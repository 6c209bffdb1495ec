// SIGHUP against the real daemon: sharding is applied as at start-up, live output keys reach
// the files, restart-only keys are reported, and the admin token follows admin.token_file.
#include "harness.hpp"
#include "output_checks.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <functional>
#include <set>
#include <thread>

#include <fcntl.h>
#include <sys/stat.h>

using namespace std::chrono_literals;
using harness::DaemonConfig;
using harness::Process;
using harness::TempDir;
namespace fs = std::filesystem;

namespace {

// argv for mdagg with exactly these SHARD_* variables (the test runner's are dropped).
std::vector<std::string> daemon_argv(const fs::path& config, std::vector<std::string> env = {}) {
    std::vector<std::string> argv{"/usr/bin/env", "-u", "SHARD_INDEX", "-u", "SHARD_COUNT"};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.insert(argv.end(), {MDAGG_BIN, "--config", config.string()});
    return argv;
}

using harness::wait_until;

// Log lines whose msg starts with `prefix` ("config reloaded" also matches its warning form).
std::vector<nlohmann::json> lines_starting(const Process& p, const std::string& prefix) {
    std::vector<nlohmann::json> out;
    for (auto& line : p.stdout_json())
        if (line.value("msg", "").rfind(prefix, 0) == 0) out.push_back(line);
    return out;
}

// Waits for the n-th (1-based) "config reloaded" line.
std::optional<nlohmann::json> wait_for_reload(const Process& p, std::size_t n, std::chrono::milliseconds timeout = 15s) {
    std::optional<nlohmann::json> found;
    wait_until([&] {
        auto lines = lines_starting(p, "config reloaded");
        if (lines.size() >= n) found = lines[n - 1];
        return found.has_value();
    }, timeout);
    return found;
}

// The documented shard function (docs/configuration.md): FNV-1a 64 of the name, mod the count.
unsigned documented_shard(const std::string& symbol, unsigned count) {
    std::uint64_t h = 14695981039346656037ull;
    for (unsigned char c : symbol) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return static_cast<unsigned>(h % count);
}

std::size_t symbols_in_shard(int symbols, unsigned index, unsigned count) {
    std::size_t n = 0;
    for (int i = 0; i < symbols; ++i) n += documented_shard("STOCK_" + std::to_string(i), count) == index;
    return n;
}

}  // namespace

TEST(Reload, SighupKeepsTheShardAndAppliesANewShardCountAsADifference) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "100"});
    DaemonConfig c;
    c.port = sim.port;
    c.symbols = 100;
    c.interval = "200ms";
    const std::string admin = "admin: { listen: \"127.0.0.1:0\" }\n";
    c.extra = admin + "sharding: { index: 0, count: 2 }\n";
    const auto config = harness::write_config(dir.path(), c);
    Process daemon("mdagg", daemon_argv(config), dir.path());
    auto listening = daemon.wait_for_line("msg", "admin listening", 15s);
    ASSERT_TRUE(listening) << daemon.stdout_text();
    const int admin_port = (*listening)["port"].get<int>();
    auto started = daemon.wait_for_line("msg", "mdagg started", 15s);
    ASSERT_TRUE(started) << daemon.stdout_text();
    const std::size_t half = symbols_in_shard(100, 0, 2);
    ASSERT_EQ((*started)["pollers"], half);

    // The same file: nothing changes.
    daemon.signal(SIGHUP);
    auto same = wait_for_reload(daemon, 1);
    ASSERT_TRUE(same) << daemon.stdout_text();
    EXPECT_EQ((*same)["msg"], "config reloaded");
    EXPECT_EQ((*same)["pollers_added"], 0);
    EXPECT_EQ((*same)["pollers_removed"], 0);
    EXPECT_EQ((*same)["pollers_restarted"], 0);
    EXPECT_EQ((*same)["pollers"], half);
    EXPECT_FALSE(same->contains("applied")) << *same;
    EXPECT_EQ((*same)["sharding"]["count"], 2);

    // A new shard count: the pollers of symbols that left the shard drain, new ones start,
    // the rest keep polling undisturbed.
    c.extra = admin + "sharding: { index: 0, count: 3 }\n";
    harness::write_config(dir.path(), c);
    daemon.signal(SIGHUP);
    auto recounted = wait_for_reload(daemon, 2);
    ASSERT_TRUE(recounted) << daemon.stdout_text();
    std::size_t stay = 0, join = 0, leave = 0;
    for (int i = 0; i < 100; ++i) {
        const std::string s = "STOCK_" + std::to_string(i);
        const bool before = documented_shard(s, 2) == 0, after = documented_shard(s, 3) == 0;
        stay += before && after;
        join += !before && after;
        leave += before && !after;
    }
    // `pollers` still counts those draining a poll in flight; the task table drops them after.
    EXPECT_GE((*recounted)["pollers"].get<std::size_t>(), stay + join);
    EXPECT_LE((*recounted)["pollers"].get<std::size_t>(), stay + join + leave);
    std::set<std::string> polled;
    EXPECT_TRUE(wait_until([&] {
        polled.clear();
        const auto tasks = harness::http_request(admin_port, "GET", "/debug/tasks").json();
        for (auto& t : tasks["tasks"]) polled.insert(t["symbol"].get<std::string>());
        return polled.size() == stay + join;
    }, 10s)) << polled.size();
    for (const auto& s : polled) EXPECT_EQ(documented_shard(s, 3), 0u) << s;
    EXPECT_EQ((*recounted)["pollers_added"], join);
    EXPECT_EQ((*recounted)["pollers_removed"], leave);
    EXPECT_EQ((*recounted)["pollers_restarted"], 0);
    EXPECT_EQ((*recounted)["applied"], nlohmann::json::array({"sharding.count"}));
    EXPECT_FALSE(recounted->contains("not_applied")) << *recounted;

    daemon.signal(SIGTERM);
    ASSERT_EQ(daemon.wait(15s), 0) << daemon.stdout_text();
    // Only symbols of the shard in effect at the time were polled: after the drain, quotes
    // of the symbols that left are from before the reload at the latest.
    std::set<std::string> quoted;
    for (auto& f : harness::read_output(dir / "out"))
        for (auto& r : f.records)
            if (r["type"] == "quote") quoted.insert(r["symbol"].get<std::string>());
    for (const auto& s : quoted)
        EXPECT_TRUE(documented_shard(s, 2) == 0 || documented_shard(s, 3) == 0) << s << " is in neither shard 0";
}

TEST(Reload, ShardEnvironmentStillOverridesTheFileOnSighup) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "100"});
    DaemonConfig c;
    c.port = sim.port;
    c.symbols = 100;
    c.interval = "200ms";
    const auto config = harness::write_config(dir.path(), c);
    Process daemon("mdagg", daemon_argv(config, {"SHARD_INDEX=1", "SHARD_COUNT=2"}), dir.path());
    auto started = daemon.wait_for_line("msg", "mdagg started", 15s);
    ASSERT_TRUE(started) << daemon.stdout_text();
    const std::size_t shard = symbols_in_shard(100, 1, 2);
    ASSERT_EQ((*started)["pollers"], shard);

    // The file now names another shard; the environment still wins, as at start-up.
    c.extra = "sharding: { index: 0, count: 4 }\n";
    harness::write_config(dir.path(), c);
    daemon.signal(SIGHUP);
    auto reloaded = wait_for_reload(daemon, 1);
    ASSERT_TRUE(reloaded) << daemon.stdout_text();
    EXPECT_EQ((*reloaded)["pollers_added"], 0);
    EXPECT_EQ((*reloaded)["pollers_removed"], 0);
    EXPECT_EQ((*reloaded)["pollers"], shard);
    EXPECT_EQ((*reloaded)["sharding"]["index"], 1);
    EXPECT_EQ((*reloaded)["sharding"]["count"], 2);

    daemon.signal(SIGTERM);
    ASSERT_EQ(daemon.wait(15s), 0) << daemon.stdout_text();
}

namespace {

struct Segment {
    fs::path path;
    std::uintmax_t bytes = 0;
};

// Finished quote segments, oldest first (names sort by time).
std::vector<Segment> quote_segments(const fs::path& out) {
    std::vector<Segment> segs;
    for (auto& e : fs::directory_iterator(out)) {
        const std::string name = e.path().filename().string();
        if (name.rfind("quotes-", 0) == 0 && name.find(".part") == std::string::npos)
            segs.push_back({e.path(), e.file_size()});
    }
    std::sort(segs.begin(), segs.end(), [](auto& a, auto& b) { return a.path < b.path; });
    return segs;
}

std::string run(const std::string& command) {
    std::string out;
    if (FILE* p = ::popen(command.c_str(), "r")) {
        char buf[4096];
        while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
        ::pclose(p);
    }
    return out;
}

}  // namespace

TEST(Reload, SighupAppliesRotationCompressionAndRetentionToTheFiles) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "50"});
    DaemonConfig c;
    c.port = sim.port;
    c.symbols = 50;
    c.interval = "50ms";  // about 1,000 quotes, 200 KiB a second
    const auto config = harness::write_config(dir.path(), c);
    Process daemon("mdagg", {MDAGG_BIN, "--config", config.string()}, dir.path());
    ASSERT_TRUE(daemon.wait_for_line("msg", "mdagg started", 15s)) << daemon.stdout_text();
    std::this_thread::sleep_for(1s);
    ASSERT_TRUE(quote_segments(dir / "out").empty()) << "rotated before the reload";

    c.output_extra = "rotate: { max_bytes: 65536 }, retention: { max_files: 3 }, compression: gzip";
    harness::write_config(dir.path(), c);
    daemon.signal(SIGHUP);
    auto reloaded = wait_for_reload(daemon, 1);
    ASSERT_TRUE(reloaded) << daemon.stdout_text();
    EXPECT_EQ((*reloaded)["msg"], "config reloaded");
    EXPECT_EQ((*reloaded)["applied"],
              nlohmann::json::array({"output.rotate.max_bytes", "output.retention.max_files", "output.compression"}));
    EXPECT_FALSE(reloaded->contains("not_applied")) << *reloaded;

    // Segments now close at 64 KiB, are compressed, and only the newest three stay.
    ASSERT_TRUE(wait_until([&] { return !lines_starting(daemon, "output segment removed by retention").empty(); }, 30s))
        << daemon.stdout_text();
    ASSERT_TRUE(wait_until([&] {
        for (auto& s : quote_segments(dir / "out"))
            if (s.path.extension() == ".gz") return true;
        return false;
    }, 30s)) << daemon.stdout_text();

    daemon.signal(SIGTERM);
    ASSERT_EQ(daemon.wait(15s), 0) << daemon.stdout_text();
    const auto segs = quote_segments(dir / "out");
    EXPECT_LE(segs.size(), 3u);
    std::size_t compressed = 0;
    for (const auto& s : segs) {
        std::uintmax_t bytes = s.bytes;
        if (s.path.extension() == ".gz") {
            ++compressed;
            bytes = std::stoull(run("gzip -dc '" + s.path.string() + "' | wc -c"));
        }
        // The first segment closed by the new limit holds what came before the reload too.
        if (&s != &segs.front()) {
            EXPECT_LE(bytes, 65536u) << s.path;
        }
    }
    EXPECT_GE(compressed, 1u);
    // Every quote segment closed is still there or was removed by retention.
    auto quote_lines = [&](const std::string& msg) {
        std::size_t n = 0;
        for (auto& l : lines_starting(daemon, msg)) n += l["path"].get<std::string>().find("/quotes-") != std::string::npos;
        return n;
    };
    EXPECT_EQ(quote_lines("output segment closed"), segs.size() + quote_lines("output segment removed by retention"));
}

TEST(Reload, RestartOnlyKeysAreListedInNotApplied) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "5"});
    DaemonConfig c;
    c.port = sim.port;
    c.symbols = 5;
    const auto config = harness::write_config(dir.path(), c);
    Process daemon("mdagg", {MDAGG_BIN, "--config", config.string()}, dir.path());
    ASSERT_TRUE(daemon.wait_for_line("msg", "mdagg started", 15s)) << daemon.stdout_text();

    c.output_extra = "format: csv";
    c.threads = 2;
    c.flush_every = "300ms";
    harness::write_config(dir.path(), c);
    daemon.signal(SIGHUP);
    auto reloaded = wait_for_reload(daemon, 1);
    ASSERT_TRUE(reloaded) << daemon.stdout_text();
    EXPECT_EQ((*reloaded)["msg"], "config reloaded; some changes need a restart and were not applied");
    EXPECT_EQ((*reloaded)["not_applied"], nlohmann::json::array({"runtime.threads", "output.flush_every",
                                                                  "output.format.quotes", "output.format.bars"}));
    // Until the restart they stay listed, whatever else a reload applies.
    c.summary_every = "2s";
    harness::write_config(dir.path(), c);
    daemon.signal(SIGHUP);
    auto again = wait_for_reload(daemon, 2);
    ASSERT_TRUE(again) << daemon.stdout_text();
    EXPECT_EQ((*again)["not_applied"], (*reloaded)["not_applied"]);
    EXPECT_EQ((*again)["applied"], nlohmann::json::array({"log.summary_every"}));

    daemon.signal(SIGTERM);
    ASSERT_EQ(daemon.wait(15s), 0) << daemon.stdout_text();
    for (auto& e : fs::directory_iterator(dir / "out"))
        EXPECT_NE(e.path().extension(), ".csv") << "the format changed without a restart";
}

namespace {

std::string token_config_extra(const fs::path& token_file) {
    return "admin: { listen: \"127.0.0.1:0\", token_file: \"" + token_file.string() + "\" }\n";
}

int pause_status(int port, const std::string& token) {
    return harness::http_request(port, "POST", "/admin/pause", R"({"symbols":["STOCK_1"]})",
                                 "Authorization: Bearer " + token + "\r\n")
        .status;
}

}  // namespace

// A Kubernetes Secret volume: token -> ..data/token, ..data -> ..<version>; an update writes a
// new version directory and swaps the ..data symlink. No SIGHUP: the daemon notices.
TEST(Reload, AdminTokenFollowsASecretUpdateWithoutSighup) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "5"});
    const fs::path secret = dir / "secret";
    fs::create_directories(secret / "..v1");
    std::ofstream(secret / "..v1" / "token") << "old-token\n";
    fs::create_directory_symlink("..v1", secret / "..data");
    fs::create_symlink("..data/token", secret / "token");

    DaemonConfig c;
    c.port = sim.port;
    c.symbols = 5;
    c.extra = token_config_extra(secret / "token");
    const auto config = harness::write_config(dir.path(), c);
    Process daemon("mdagg", {MDAGG_BIN, "--config", config.string()}, dir.path());
    auto listening = daemon.wait_for_line("msg", "admin listening", 15s);
    ASSERT_TRUE(listening) << daemon.stdout_text();
    EXPECT_EQ((*listening)["auth"], "bearer");
    const int port = (*listening)["port"].get<int>();
    EXPECT_EQ(pause_status(port, "old-token"), 200);
    EXPECT_EQ(harness::http_request(port, "POST", "/admin/pause", R"({"symbols":["STOCK_1"]})").status, 401);

    fs::create_directories(secret / "..v2");
    std::ofstream(secret / "..v2" / "token") << "new-token\n";
    fs::create_directory_symlink("..v2", secret / "..data_tmp");
    fs::rename(secret / "..data_tmp", secret / "..data");
    fs::remove_all(secret / "..v1");

    EXPECT_TRUE(wait_until([&] { return pause_status(port, "new-token") == 200; }, 10s)) << daemon.stdout_text();
    EXPECT_EQ(pause_status(port, "old-token"), 401);
    ASSERT_TRUE(daemon.wait_for_line("msg", "admin token reloaded: admin.token_file changed", 1s));
    EXPECT_EQ(daemon.stdout_text().find("new-token"), std::string::npos) << "the token was logged";

    daemon.signal(SIGTERM);
    ASSERT_EQ(daemon.wait(15s), 0) << daemon.stdout_text();
}

// An edit the file watch cannot see (same inode, size and mtime): SIGHUP re-reads it.
TEST(Reload, SighupRereadsTheAdminTokenFile) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "5"});
    const fs::path token = dir / "token";
    std::ofstream(token) << "token-AAAA\n";
    DaemonConfig c;
    c.port = sim.port;
    c.symbols = 5;
    c.extra = token_config_extra(token);
    const auto config = harness::write_config(dir.path(), c);
    Process daemon("mdagg", {MDAGG_BIN, "--config", config.string()}, dir.path());
    auto listening = daemon.wait_for_line("msg", "admin listening", 15s);
    ASSERT_TRUE(listening) << daemon.stdout_text();
    const int port = (*listening)["port"].get<int>();
    EXPECT_EQ(pause_status(port, "token-AAAA"), 200);

    struct stat before{};
    ASSERT_EQ(::stat(token.c_str(), &before), 0);
    {
        std::fstream f(token, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(6);
        f << "BBBB";
    }
    const timespec times[2] = {before.st_atim, before.st_mtim};
    ASSERT_EQ(::utimensat(AT_FDCWD, token.c_str(), times, 0), 0);
    std::this_thread::sleep_for(2500ms);  // two turns of the watch: it must not have noticed
    EXPECT_EQ(pause_status(port, "token-AAAA"), 200);

    daemon.signal(SIGHUP);
    ASSERT_TRUE(wait_for_reload(daemon, 1)) << daemon.stdout_text();
    EXPECT_EQ(pause_status(port, "token-BBBB"), 200);
    EXPECT_EQ(pause_status(port, "token-AAAA"), 401);

    // An unreadable file on reload keeps the token in effect rather than dropping auth.
    fs::remove(token);
    daemon.signal(SIGHUP);
    ASSERT_TRUE(wait_for_reload(daemon, 2)) << daemon.stdout_text();
    EXPECT_TRUE(daemon.wait_for_line("msg", "cannot read admin.token_file: keeping the current token", 5s));
    EXPECT_EQ(pause_status(port, "token-BBBB"), 200);
    EXPECT_EQ(harness::http_request(port, "POST", "/admin/pause", R"({"symbols":["STOCK_1"]})").status, 401);

    daemon.signal(SIGTERM);
    ASSERT_EQ(daemon.wait(15s), 0) << daemon.stdout_text();
}

// A Secret whose key is there but empty: the token file counts as configured for the
// exposure check, yet it holds no token, so a non-loopback listener must not start.
TEST(Reload, EmptyTokenFileOnANonLoopbackListenStopsTheStart) {
    TempDir dir;
    DaemonConfig c;
    c.port = 1;
    c.symbols = 1;
    const fs::path empty = dir / "empty-secret";
    std::ofstream(empty) << "\n";
    c.extra = "admin: { listen: \"0.0.0.0:0\", token_file: \"" + empty.string() + "\" }\n";
    const auto config = harness::write_config(dir.path(), c);
    Process daemon("mdagg", {MDAGG_BIN, "--config", config.string()}, dir.path());
    ASSERT_EQ(daemon.wait(10s), 2) << daemon.stdout_text() << daemon.stderr_text();
    EXPECT_NE(daemon.stderr_text().find("is empty and admin.listen is not a loopback address"), std::string::npos)
        << daemon.stderr_text();
}

TEST(Reload, UnreadableTokenFileAtStartIsAConfigError) {
    TempDir dir;
    DaemonConfig c;
    c.port = 1;
    c.symbols = 1;
    const fs::path missing = dir / "no-such-secret";
    c.extra = token_config_extra(missing);
    const auto config = harness::write_config(dir.path(), c);
    Process daemon("mdagg", {MDAGG_BIN, "--config", config.string()}, dir.path());
    ASSERT_EQ(daemon.wait(10s), 2) << daemon.stdout_text();
    EXPECT_NE(daemon.stderr_text().find("admin.token_file \"" + missing.string() + "\": cannot read"),
              std::string::npos)
        << daemon.stderr_text();
    EXPECT_FALSE(fs::exists(dir / "out")) << "something started";

    // token_env and token_file together: rejected like any invalid config.
    c.extra = "admin: { token_env: T, token_file: /t }\n";
    harness::write_config(dir.path(), c);
    Process both("mdagg-both", {MDAGG_BIN, "--config", config.string()}, dir.path());
    ASSERT_EQ(both.wait(10s), 2);
    EXPECT_NE(both.stderr_text().find("admin.token_file: set either admin.token_env or admin.token_file, not both"),
              std::string::npos)
        << both.stderr_text();
}

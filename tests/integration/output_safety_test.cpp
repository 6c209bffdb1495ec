// The output directory with the real daemon: a segment whose fdatasync failed is never
// published (driven by an LD_PRELOAD shim that fails fdatasync on demand), planted symlinks
// are refused, one daemon per directory, and compression and retention while it runs.
#include "harness.hpp"
#include "output_checks.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <zlib.h>
#include <zstd.h>

using namespace std::chrono_literals;
using harness::DaemonConfig;
using harness::Process;
using harness::TempDir;
namespace fs = std::filesystem;

namespace {

constexpr const char* admin_any_port = "admin: { listen: \"127.0.0.1:0\" }\n";

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(50ms);
    }
    return true;
}

std::unique_ptr<Process> start(const TempDir& dir, const std::string& name, std::vector<std::string> env = {}) {
    std::vector<std::string> argv;
    if (!env.empty()) {
        argv.push_back("/usr/bin/env");
        argv.insert(argv.end(), env.begin(), env.end());
    }
    for (const char* a : {MDAGG_BIN, "--config"}) argv.push_back(a);
    argv.push_back((dir / "mdagg.yaml").string());
    return std::make_unique<Process>(name, argv, dir.path());
}

int admin_port(const Process& p) {
    auto line = p.wait_for_line("msg", "admin listening", 20s);
    if (!line) throw std::runtime_error("no \"admin listening\" line: " + p.stdout_text());
    return (*line)["port"].get<int>();
}

// The value of an unlabelled sample in a /metrics body; -1 when absent.
double metric(int port, const std::string& name) {
    std::istringstream in(harness::http_get(port, "/metrics"));
    std::string line;
    while (std::getline(in, line))
        if (line.starts_with(name + " ")) return std::stod(line.substr(name.size() + 1));
    return -1;
}

std::vector<nlohmann::json> logs_with(const Process& p, const std::string& msg) {
    std::vector<nlohmann::json> out;
    for (auto& line : p.stdout_json())
        if (line.value("msg", "") == msg) out.push_back(line);
    return out;
}

// Names in dir that start with prefix and end with suffix, sorted (which is by time).
std::vector<std::string> names(const fs::path& dir, const std::string& prefix, const std::string& suffix) {
    std::vector<std::string> out;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string n = it->path().filename().string();
        if (n.starts_with(prefix) && n.ends_with(suffix)) out.push_back(n);
    }
    std::sort(out.begin(), out.end());
    return out;
}

// Complete lines, each a JSON quote record; returns how many.
std::size_t quote_lines(const std::string& text, const std::string& what) {
    EXPECT_TRUE(text.empty() || text.back() == '\n') << what << " ends with a partial line";
    std::istringstream in(text);
    std::string line;
    std::size_t n = 0;
    while (std::getline(in, line)) {
        const auto j = nlohmann::json::parse(line, nullptr, false);
        EXPECT_TRUE(j.is_object() && j.value("type", "") == "quote") << what << ": " << line.substr(0, 200);
        ++n;
    }
    return n;
}

DaemonConfig small_config(int port) {
    DaemonConfig c;
    c.port = port;
    c.symbols = 20;
    c.interval = "100ms";
    c.extra = admin_any_port;
    return c;
}

// ---- unsynced segments --------------------------------------------------------------------

// fdatasync of the quotes segments fails for a while (EIO), then works again. On Linux the
// later success proves nothing about the pages the failure dropped, so every segment that saw
// a failure must stay .part (counted, logged), the drain exits 1, and the next start repairs
// them; the segments written after the fault are published as usual.
TEST(OutputSafety, ASegmentWhoseFdatasyncFailedIsNeverPublished) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "20"});
    DaemonConfig c = small_config(sim.port);
    c.output_extra = "rotate: { max_age: 1s }";
    harness::write_config(dir.path(), c);
    const fs::path out = dir / "out";
    const fs::path trigger = dir / "fail-fdatasync";
    std::ofstream(trigger) << "while this file exists\n";
    const char* asan = std::getenv("ASAN_OPTIONS");
    auto daemon = start(dir, "mdagg-faulty",
                        {std::string("LD_PRELOAD=") + MDAGG_FDATASYNC_FAULT_SHIM,
                         "MDAGG_FAULT_FDATASYNC_WHILE=" + trigger.string(), "MDAGG_FAULT_FDATASYNC_MATCH=/quotes-",
                         // The shim comes before the sanitizer runtime in the library list.
                         std::string("ASAN_OPTIONS=") + (asan ? asan : "") + ":verify_asan_link_order=0"});
    const int port = admin_port(*daemon);

    // Segments rotate every second; those that failed to sync stay .part.
    ASSERT_TRUE(eventually([&] { return metric(port, "mdagg_sink_segments_unsynced_total") >= 2; }, 30s))
        << daemon->stdout_text();
    EXPECT_TRUE(names(out, "quotes-", ".jsonl").empty()) << "a segment whose fdatasync failed was published";
    EXPECT_FALSE(logs_with(*daemon, "output segment kept as .part: its fdatasync failed, so it is not known to be "
                                    "on disk; the next start repairs it")
                     .empty());

    fs::remove(trigger);
    ASSERT_TRUE(eventually([&] { return !names(out, "quotes-", ".jsonl").empty(); }, 30s))
        << "segments written after the fault are published";
    ASSERT_TRUE(eventually(
        [&] {
            for (auto& l : logs_with(*daemon, "summary"))
                if (l.value("output_segments_unsynced", 0) >= 2) return true;
            return false;
        },
        20s));
    const auto unsynced = static_cast<std::uint64_t>(metric(port, "mdagg_sink_segments_unsynced_total"));

    daemon->signal(SIGTERM);
    EXPECT_EQ(daemon->wait(30s), 1) << "output not made durable: the drain exits 1";
    auto drain = logs_with(*daemon, "drain finished but output is incomplete: records were dropped or not written");
    ASSERT_EQ(drain.size(), 1u) << daemon->stdout_text();
    EXPECT_EQ(drain[0]["segments_unsynced"].get<std::uint64_t>(), unsynced);
    EXPECT_EQ(drain[0]["records_dropped"].get<std::uint64_t>(), 0u);
    const auto parts = names(out, "quotes-", ".jsonl.part");
    EXPECT_EQ(parts.size(), unsynced);
    std::size_t kept = 0;
    for (const auto& p : parts) kept += quote_lines(slurp(out / p), p);
    EXPECT_GT(kept, 0u);

    // The next start (a healthy disk) repairs and publishes them.
    auto next = start(dir, "mdagg-next");
    ASSERT_TRUE(next->wait_for_line("msg", "mdagg started", 20s)) << next->stdout_text();
    EXPECT_EQ(logs_with(*next, "repaired output segment left by an interrupted run").size(), parts.size());
    next->signal(SIGTERM);
    EXPECT_EQ(next->wait(30s), 0) << next->stdout_text();
    harness::check_output(dir);
    sim.process->signal(SIGTERM);
}

// ---- directory safety ---------------------------------------------------------------------

TEST(OutputSafety, ASecondDaemonOnTheDirectoryExits2NamingTheHolder) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "20"});
    DaemonConfig c = small_config(sim.port);
    c.extra.clear();
    harness::write_config(dir.path(), c);
    auto first = start(dir, "mdagg-first");
    ASSERT_TRUE(first->wait_for_line("msg", "mdagg started", 20s)) << first->stdout_text();
    EXPECT_EQ(slurp(dir / "out" / ".mdagg.lock"), std::to_string(first->pid()) + "\n");

    auto second = start(dir, "mdagg-second");
    ASSERT_EQ(second->wait(20s), 2) << second->stdout_text();
    const std::string holder = "pid " + std::to_string(first->pid());
    EXPECT_NE(second->stderr_text().find(holder), std::string::npos) << second->stderr_text();
    auto refused = logs_with(*second, "cannot start, nothing started");
    ASSERT_EQ(refused.size(), 1u) << second->stdout_text();
    EXPECT_NE(refused[0]["error"].get<std::string>().find(holder), std::string::npos) << refused[0].dump();
    for (const auto& n : names(dir / "out", "", ""))
        EXPECT_EQ(n.find("-" + std::to_string(second->pid()) + "-"), std::string::npos) << "written by the second: " << n;

    std::this_thread::sleep_for(1s);
    first->signal(SIGTERM);
    EXPECT_EQ(first->wait(30s), 0) << first->stdout_text();
    const auto o = harness::check_output(dir);
    EXPECT_GT(o.quotes, 0u);
    for (const auto& n : names(dir / "out", "quotes-", ""))
        EXPECT_NE(n.find("-" + std::to_string(first->pid()) + "-"), std::string::npos) << n;
    sim.process->signal(SIGTERM);
}

TEST(OutputSafety, PlantedSymlinksAreRefusedAndTheirTargetsUntouched) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "20"});
    DaemonConfig c = small_config(sim.port);
    c.output_extra = "compression: gzip";
    harness::write_config(dir.path(), c);
    const fs::path out = dir / "out";
    fs::create_directories(out);
    const std::string precious = "{\"type\":\"quote\"}\n{\"torn";
    std::ofstream(dir / "precious-1.txt") << precious;
    std::ofstream(dir / "precious-2.txt") << precious;
    const fs::path part_link = out / "quotes-20200101T000000.000Z-1-000001.jsonl.part";
    const fs::path temp_link = out / "quotes-20200101T000000.000Z-1-000002.jsonl.gz.part";
    fs::create_symlink(dir / "precious-1.txt", part_link);
    fs::create_symlink(dir / "precious-2.txt", temp_link);

    auto daemon = start(dir, "mdagg");
    const int port = admin_port(*daemon);
    ASSERT_TRUE(daemon->wait_for_line("msg", "mdagg started", 20s)) << daemon->stdout_text();
    EXPECT_EQ(metric(port, "mdagg_sink_repair_errors_total"), 2);
    const auto refused =
        logs_with(*daemon, "refused to repair a file named like an output segment: not a regular file; left alone");
    ASSERT_EQ(refused.size(), 2u) << daemon->stdout_text();
    for (const auto& l : refused) EXPECT_EQ(l["level"], "error") << l.dump();
    std::this_thread::sleep_for(1s);
    daemon->signal(SIGTERM);
    EXPECT_EQ(daemon->wait(30s), 0) << daemon->stdout_text();

    EXPECT_EQ(slurp(dir / "precious-1.txt"), precious) << "repair wrote through a symlink";
    EXPECT_EQ(slurp(dir / "precious-2.txt"), precious);
    EXPECT_TRUE(fs::is_symlink(part_link));
    EXPECT_TRUE(fs::is_symlink(temp_link));
    EXPECT_FALSE(fs::exists(fs::symlink_status(out / "quotes-20200101T000000.000Z-1-000001.jsonl")));
    sim.process->signal(SIGTERM);
}

// ---- compression and retention in the running daemon --------------------------------------

std::string gunzip(const fs::path& p) {
    gzFile f = gzopen(p.c_str(), "rb");
    EXPECT_NE(f, nullptr) << p;
    if (!f) return {};
    std::string out;
    char buf[65536];
    int n;
    while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    EXPECT_EQ(n, 0) << p;
    gzclose(f);
    return out;
}

std::string unzstd(const fs::path& p) {
    const std::string in = slurp(p);
    std::string out;
    ZSTD_DStream* ds = ZSTD_createDStream();
    ZSTD_inBuffer input{in.data(), in.size(), 0};
    char buf[65536];
    std::size_t rc = 1;
    while (input.pos < input.size) {
        ZSTD_outBuffer output{buf, sizeof buf, 0};
        rc = ZSTD_decompressStream(ds, &output, &input);
        EXPECT_FALSE(ZSTD_isError(rc)) << p << ": " << ZSTD_getErrorName(rc);
        if (ZSTD_isError(rc)) break;
        out.append(buf, output.pos);
    }
    EXPECT_EQ(rc, 0u) << p << ": truncated frame";
    ZSTD_freeDStream(ds);
    return out;
}

class OutputCompression : public ::testing::TestWithParam<std::string> {};

TEST_P(OutputCompression, FinishedSegmentsAreCompressedWhileRunning) {
    const std::string method = GetParam();
    const std::string suffix = method == "gzip" ? ".jsonl.gz" : ".jsonl.zst";
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "20"});
    DaemonConfig c = small_config(sim.port);
    c.output_extra = "rotate: { max_age: 1s }, compression: " + method;
    harness::write_config(dir.path(), c);
    const fs::path out = dir / "out";
    auto daemon = start(dir, "mdagg");
    const int port = admin_port(*daemon);
    ASSERT_TRUE(eventually([&] { return names(out, "quotes-", suffix).size() >= 3; }, 30s))
        << daemon->stdout_text();
    EXPECT_GE(metric(port, "mdagg_sink_segments_compressed_total"), 3) << "compressions are counted";
    EXPECT_EQ(metric(port, "mdagg_sink_compression_errors_total"), 0);
    daemon->signal(SIGTERM);
    EXPECT_EQ(daemon->wait(30s), 0) << daemon->stdout_text();

    const auto compressed = names(out, "quotes-", suffix);
    ASSERT_GE(compressed.size(), 3u);
    std::size_t records = 0;
    for (const auto& n : compressed) {
        const std::string text = method == "gzip" ? gunzip(out / n) : unzstd(out / n);
        const std::size_t lines = quote_lines(text, n);
        EXPECT_GT(lines, 0u) << n;
        records += lines;
        // A compressed segment replaces its original.
        EXPECT_FALSE(fs::exists(out / n.substr(0, n.size() - (method == "gzip" ? 3 : 4)))) << n;
    }
    EXPECT_GT(records, 0u);
    EXPECT_TRUE(names(out, "", ".part").empty()) << "temp files or segments left unfinished";
    // The rest are finished segments the drain closed last, left for the next start.
    for (const auto& f : harness::read_output(out)) EXPECT_TRUE(f.ends_with_newline) << f.path;
    EXPECT_FALSE(names(out, "bars-", method == "gzip" ? ".jsonl.gz" : ".jsonl.zst").empty());
    sim.process->signal(SIGTERM);
}

INSTANTIATE_TEST_SUITE_P(Methods, OutputCompression, ::testing::Values("gzip", "zstd"));

struct RetentionCase {
    std::string name;
    std::string retention;     // the YAML map
    std::size_t max_files = 0;  // 0: by bytes
    std::uint64_t max_bytes = 0;
};

class OutputRetention : public ::testing::TestWithParam<RetentionCase> {};

// Segments rotate every second; retention removes the oldest finished quotes segments as new
// ones close, keeps the newest within the bound, counts each removal and logs it.
TEST_P(OutputRetention, TheOldestFinishedSegmentsGoAndTheNewestStay) {
    const RetentionCase rc = GetParam();
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "20"});
    DaemonConfig c = small_config(sim.port);
    c.output_extra = "rotate: { max_age: 1s }, retention: " + rc.retention;
    harness::write_config(dir.path(), c);
    const fs::path out = dir / "out";
    auto daemon = start(dir, "mdagg");
    const int port = admin_port(*daemon);
    const auto removed_quotes = [&] {
        std::vector<std::string> paths;
        for (auto& l : logs_with(*daemon, "output segment removed by retention")) {
            const std::string p = l["path"].get<std::string>();
            if (fs::path(p).filename().string().starts_with("quotes-")) paths.push_back(p);
        }
        return paths;
    };
    ASSERT_TRUE(eventually([&] { return removed_quotes().size() >= 3; }, 60s)) << daemon->stdout_text();
    const double deleted_metric = metric(port, "mdagg_sink_segments_deleted_total");
    daemon->signal(SIGTERM);
    EXPECT_EQ(daemon->wait(30s), 0) << daemon->stdout_text();

    const auto kept = names(out, "quotes-", ".jsonl");
    ASSERT_FALSE(kept.empty());
    std::uint64_t kept_bytes = 0;
    for (const auto& n : kept) kept_bytes += fs::file_size(out / n);
    if (rc.max_files > 0) {
        EXPECT_EQ(kept.size(), rc.max_files);
    } else {
        EXPECT_LE(kept_bytes, rc.max_bytes);
    }
    // Every removed segment is gone and older than every kept one.
    const auto removed = removed_quotes();
    for (const auto& p : removed) {
        EXPECT_FALSE(fs::exists(p)) << p;
        EXPECT_LT(fs::path(p).filename().string(), kept.front()) << "a newer segment was removed before an older one";
    }
    // Every segment closed is either kept or removed: the newest are the ones kept.
    std::set<std::string> closed;
    for (auto& l : logs_with(*daemon, "output segment closed")) {
        const std::string n = fs::path(l["path"].get<std::string>()).filename().string();
        if (n.starts_with("quotes-")) closed.insert(n);
    }
    EXPECT_EQ(closed.size(), removed.size() + kept.size());
    const std::vector<std::string> newest(std::prev(closed.end(), static_cast<long>(kept.size())), closed.end());
    EXPECT_EQ(newest, kept);
    EXPECT_GE(deleted_metric, 3) << "removals are counted";
    harness::check_output(dir);
    sim.process->signal(SIGTERM);
}

INSTANTIATE_TEST_SUITE_P(Bounds, OutputRetention,
                         ::testing::Values(RetentionCase{"max_files", "{ max_files: 2 }", 2, 0},
                                           RetentionCase{"max_bytes", "{ max_bytes: 300000 }", 0, 300000}),
                         [](const auto& info) { return info.param.name; });

}  // namespace

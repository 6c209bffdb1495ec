// The drain record (<output.dir>/.mdagg-drain.json): written atomically, read back by the next
// process; files only, no daemon.
#include "drain_record.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace mdagg::lifecycle {
namespace {

namespace fs = std::filesystem;

struct TempDir {
    fs::path path = fs::temp_directory_path() / ("mdagg-lifecycle-" + std::to_string(std::random_device()()));
    TempDir() { fs::create_directories(path); }
    ~TempDir() { fs::remove_all(path); }
};

std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

DrainRecord sample() {
    DrainRecord r;
    r.duration_ms = 1234.5;
    r.budget_ms = 10000;
    r.exit_code = 3;
    r.records_abandoned = 17;
    r.wall_time_ns = 1'764'612'000'123'000'000;  // 2025-12-01T18:00:00.123Z
    return r;
}

TEST(DrainRecord, WrittenAsJsonAndReadBack) {
    TempDir dir;
    ASSERT_TRUE(write_drain_record(dir.path.c_str(), sample()));
    const auto json = nlohmann::json::parse(slurp(dir.path / ".mdagg-drain.json"));
    EXPECT_DOUBLE_EQ(json["duration_ms"].get<double>(), 1234.5);
    EXPECT_EQ(json["exit_code"], 3);
    EXPECT_EQ(json["records_abandoned"], 17);
    EXPECT_EQ(json["wall_time"], "2025-12-01T18:00:00.123Z");
    EXPECT_EQ(json["forced_by_watchdog"], false);
    const auto back = read_drain_record(dir.path.string());
    ASSERT_TRUE(back);
    EXPECT_DOUBLE_EQ(back->duration_ms, 1234.5);
    EXPECT_EQ(back->exit_code, 3);
    EXPECT_EQ(back->records_abandoned, 17);
    EXPECT_EQ(back->wall_time_ns, 1'764'612'000'123'000'000);
    EXPECT_FALSE(fs::exists(dir.path / ".mdagg-drain.json.tmp")) << "the temp file is renamed";
}

TEST(DrainRecord, UnknownAbandonedCountIsNull) {
    TempDir dir;
    auto r = sample();
    r.records_abandoned = -1;
    r.forced_by_watchdog = true;
    ASSERT_TRUE(write_drain_record(dir.path.c_str(), r));
    const auto json = nlohmann::json::parse(slurp(dir.path / ".mdagg-drain.json"));
    EXPECT_TRUE(json["records_abandoned"].is_null());
    EXPECT_EQ(json["forced_by_watchdog"], true);
    EXPECT_EQ(read_drain_record(dir.path.string())->records_abandoned, -1);
}

TEST(DrainRecord, ReplacesThePreviousRecordAndALeftoverTempFile) {
    TempDir dir;
    ASSERT_TRUE(write_drain_record(dir.path.c_str(), sample()));
    std::ofstream(dir.path / ".mdagg-drain.json.tmp") << "{\"exit_code\":";  // a crash mid-write
    auto r = sample();
    r.exit_code = 0;
    ASSERT_TRUE(write_drain_record(dir.path.c_str(), r));
    EXPECT_EQ(read_drain_record(dir.path.string())->exit_code, 0);
}

TEST(DrainRecord, APlantedSymlinkAtTheTempNameIsNotFollowed) {
    TempDir dir;
    const auto victim = dir.path / "victim";
    std::ofstream(victim) << "keep me\n";
    fs::create_symlink(victim, dir.path / ".mdagg-drain.json.tmp");
    ASSERT_TRUE(write_drain_record(dir.path.c_str(), sample()));
    EXPECT_EQ(slurp(victim), "keep me\n");
    EXPECT_EQ(read_drain_record(dir.path.string())->exit_code, 3);
}

TEST(DrainRecord, AbsentOrBrokenFileReadsAsNone) {
    TempDir dir;
    EXPECT_FALSE(read_drain_record(dir.path.string()));
    std::ofstream(dir.path / ".mdagg-drain.json") << "{\"duration_ms\": 12";
    EXPECT_FALSE(read_drain_record(dir.path.string()));
    std::ofstream(dir.path / ".mdagg-drain.json") << "{\"duration_ms\": 12, \"exit_code\": \"0\"}";
    EXPECT_FALSE(read_drain_record(dir.path.string()));
}

TEST(DrainRecord, AMissingDirectoryFailsWithoutThrowing) {
    TempDir dir;
    EXPECT_FALSE(write_drain_record((dir.path / "nope").c_str(), sample()));
}

}  // namespace
}  // namespace mdagg::lifecycle

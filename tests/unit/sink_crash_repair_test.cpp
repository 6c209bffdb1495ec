// FileSink: crash repair at open, and the output directory's safety (its lock, symlinks,
// the start-up probe, a directory removed while running).
#include "sink_test_helpers.hpp"

#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

namespace mdagg {
namespace {

using namespace sink_test;

TEST(FileSink, OpenRepairsWhatACrashLeftBehind) {
    TempDir dir;
    fs::create_directories(dir.path());
    const fs::path d = dir.path();
    std::string good;
    for (int i = 0; i < 3; ++i) append_quote_json(good, numbered_quote(i), universe);
    std::ofstream(d / "quotes-20260101T000000.000Z-1-000001.jsonl.part") << good << "{\"type\":\"quo";
    std::ofstream(d / "quotes-20260101T000001.000Z-1-000002.jsonl.part") << good;  // clean end
    {
        std::ofstream z(d / "bars-20260101T000000.000Z-1-000003.jsonl.part", std::ios::binary);
        z << good << std::string(4096, '\0');  // a power loss's zero-filled tail
    }
    std::ofstream(d / "bars-20260101T000002.000Z-1-000004.jsonl.part") << "{\"torn";  // nothing whole
    std::ofstream(d / "quotes-20260101T000002.000Z-1-000005.csv.part")
        << quote_csv_header << "sim,STOCK_7,1,2,,,,2025-01-01T00:00:00.000000000Z,1\nsim,ST";
    std::ofstream(d / "quotes-20260101T000003.000Z-1-000006.jsonl.gz.part") << "half a gzip";
    std::ofstream(d / "unrelated.part") << "not ours";
    // A segment some other live process holds: left alone.
    const fs::path live = d / "quotes-20260101T000004.000Z-2-000007.jsonl.part";
    std::ofstream(live) << "{\"torn";
    const int lock_fd = ::open(live.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(lock_fd, 0);
    int child_ready[2];
    ASSERT_EQ(::pipe(child_ready), 0);
    // flock() locks are per open file description, so the holder must be another process.
    const pid_t holder = ::fork();
    if (holder == 0) {
        ::flock(lock_fd, LOCK_EX);
        (void)!::write(child_ready[1], "x", 1);
        ::pause();
        ::_exit(0);
    }
    char c;
    ASSERT_EQ(::read(child_ready[0], &c, 1), 1);

    FileSink sink(universe, {d.string()});
    sink.open();
    ::kill(holder, SIGKILL);
    ::waitpid(holder, nullptr, 0);
    ::close(lock_fd);
    ::close(child_ready[0]);
    ::close(child_ready[1]);

    EXPECT_EQ(sink.stats().files_repaired, 5u);
    EXPECT_EQ(slurp(d / "quotes-20260101T000000.000Z-1-000001.jsonl"), good);
    EXPECT_EQ(slurp(d / "quotes-20260101T000001.000Z-1-000002.jsonl"), good);
    EXPECT_EQ(slurp(d / "bars-20260101T000000.000Z-1-000003.jsonl"), good);
    EXPECT_FALSE(fs::exists(d / "bars-20260101T000002.000Z-1-000004.jsonl.part"));
    EXPECT_FALSE(fs::exists(d / "bars-20260101T000002.000Z-1-000004.jsonl"));
    EXPECT_EQ(slurp(d / "quotes-20260101T000002.000Z-1-000005.csv"),
              std::string(quote_csv_header) + "sim,STOCK_7,1,2,,,,2025-01-01T00:00:00.000000000Z,1\n");
    EXPECT_FALSE(fs::exists(d / "quotes-20260101T000003.000Z-1-000006.jsonl.gz.part"));
    EXPECT_TRUE(fs::exists(d / "unrelated.part"));
    EXPECT_TRUE(fs::exists(live)) << "a live process's segment must not be touched";
    ASSERT_TRUE(sink.close(steady_clock::now() + 10s));
}

TEST(FileSink, RepairNeverReplacesAFinishedFile) {
    TempDir dir;
    fs::create_directories(dir.path());
    const fs::path part = dir.path() / "quotes-20260101T000000.000Z-1-000001.jsonl.part";
    std::ofstream(part) << "{}\n";
    std::ofstream(dir.path() / "quotes-20260101T000000.000Z-1-000001.jsonl") << "{\"a\":1}\n";
    const RepairResult r = repair_segment(part.string());
    EXPECT_EQ(r.outcome, RepairResult::failed);
    EXPECT_EQ(r.error, EEXIST);
    EXPECT_EQ(slurp(dir.path() / "quotes-20260101T000000.000Z-1-000001.jsonl"), "{\"a\":1}\n");
}

TEST(FileSink, ADirectoryRemovedMidRunIsRecreatedAndNothingIsLost) {
    TempDir dir;
    const fs::path out = dir.path() / "out";
    FileSink sink(universe, {out.string()});
    sink.open();
    for (int i = 0; i < 10; ++i) sink.on_quote(numbered_quote(i));
    sink.flush();
    ASSERT_TRUE(eventually([&] { return sink.stats().flushes == 1; }));
    fs::remove_all(out);
    for (int i = 10; i < 20; ++i) sink.on_quote(numbered_quote(i));
    sink.flush();
    ASSERT_TRUE(eventually([&] { return sink.stats().flushes == 2; }));
    EXPECT_TRUE(fs::exists(out));
    // The flock went with the removed lock file: the writer locks the new one.
    expect_locked_by_this_process(out);
    ASSERT_TRUE(sink.close(steady_clock::now() + 10s));
    const auto lines = lines_of(only_file(out, "quotes-"));
    EXPECT_EQ(sink.stats().bytes_written, fs::file_size(only_file(out, "quotes-"))) << "the copy is not new output";
    ASSERT_EQ(lines.size(), 20u);
    for (std::size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(lines[i]["seq"], i);
}

// Removed while no segment is open (each one closes at its size limit): the next segment
// recreates the directory too, instead of failing until the records drop.
TEST(FileSink, ADirectoryRemovedBetweenSegmentsIsRecreated) {
    TempDir dir;
    const fs::path out = dir.path() / "out";
    SinkOptions o{out.string()};
    o.rotate_bytes = quote_line_size();
    FileSink sink(universe, o);
    sink.open();
    sink.on_quote(numbered_quote(100));
    sink.flush();
    ASSERT_TRUE(eventually([&] { return sink.stats().segments_closed == 1; }));
    fs::remove_all(out);
    sink.on_quote(numbered_quote(101));
    sink.flush();
    ASSERT_TRUE(eventually([&] { return sink.stats().segments_closed == 2; })) << "the directory was not recreated";
    expect_locked_by_this_process(out);
    ASSERT_TRUE(sink.close(steady_clock::now() + 10s));
    EXPECT_EQ(sink.stats().write_errors, 0u);
    EXPECT_EQ(lines_of(only_file(out, "quotes-"))[0]["seq"], 101);
}

// Root writes through directory permissions, so as root the check runs in a child process
// that has become nobody: the test runs in both roles and never skips.
TEST(FileSink, OpenFailsOnAReadOnlyDirectory) {
    TempDir dir;
    fs::create_directories(dir.path() / "out");
    const fs::path out = dir.path() / "out";
    fs::permissions(out, fs::perms::owner_read | fs::perms::owner_exec);
    const auto open_fails = [&] {
        FileSink sink(universe, {out.string()});
        try {
            sink.open();
        } catch (const std::system_error&) {
            return true;
        }
        return false;
    };
    if (::geteuid() != 0) {
        EXPECT_TRUE(open_fails());
    } else {
        constexpr uid_t nobody = 65534;
        for (const fs::path& p : {dir.path(), out}) ASSERT_EQ(::chown(p.c_str(), nobody, nobody), 0) << p;
        const pid_t child = ::fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            if (::setgroups(0, nullptr) != 0 || ::setresgid(nobody, nobody, nobody) != 0 ||
                ::setresuid(nobody, nobody, nobody) != 0)
                ::_exit(2);
            ::_exit(open_fails() ? 0 : 1);
        }
        int status = 0;
        ASSERT_EQ(::waitpid(child, &status, 0), child);
        ASSERT_TRUE(WIFEXITED(status)) << status;
        EXPECT_EQ(WEXITSTATUS(status), 0) << "1: open succeeded as nobody; 2: could not become nobody";
    }
    fs::permissions(out, fs::perms::owner_all);
}

TEST(FileSink, ASecondSinkOnTheDirectoryIsRefusedNamingTheHolder) {
    TempDir dir;
    auto first = std::make_unique<FileSink>(universe, SinkOptions{dir.path().string()});
    first->open();
    expect_locked_by_this_process(dir.path());
    first->on_quote(numbered_quote(1));
    ASSERT_TRUE(first->close(steady_clock::now() + 10s));
    first.reset();  // the lock goes with the sink
    FileSink third(universe, {dir.path().string()});
    third.open();
    ASSERT_TRUE(third.close(steady_clock::now() + 10s));
    EXPECT_EQ(lines_of(only_file(dir.path(), "quotes-")).size(), 1u);
}

TEST(FileSink, RepairRetentionAndCompressionIgnoreDotFiles) {
    TempDir dir;
    fs::create_directories(dir.path());
    const fs::path d = dir.path();
    for (const char* name : {".mdagg-hosts.json", ".mdagg-drain.json", ".quotes-20260101T000000.000Z-1-000001.jsonl",
                             ".quotes-20260101T000000.000Z-1-000002.jsonl.part"})
        std::ofstream(d / name) << "{\"torn";
    const std::size_t line = quote_line_size();
    SinkOptions o{d.string()};
    o.rotate_bytes = line;
    o.retain_files = 1;
    o.compression = Compression::gzip;
    FileSink sink(universe, o);
    sink.open();
    for (int i = 0; i < 4; ++i) sink.on_quote(numbered_quote(i));
    ASSERT_TRUE(sink.close(steady_clock::now() + 10s));
    EXPECT_EQ(sink.stats().files_repaired, 0u);
    EXPECT_EQ(sink.stats().repair_errors, 0u);
    for (const char* name : {".mdagg-hosts.json", ".mdagg-drain.json", ".quotes-20260101T000000.000Z-1-000001.jsonl",
                             ".quotes-20260101T000000.000Z-1-000002.jsonl.part"})
        EXPECT_EQ(slurp(d / name), "{\"torn") << name;
    EXPECT_EQ(finished(d, "quotes-").size(), 1u);
}

// Retention counts and removes only regular files: a symlink named like the oldest finished
// segment is neither counted toward max_files nor removed.
TEST(FileSink, RetentionLeavesASymlinkNamedLikeASegment) {
    TempDir dir;
    const fs::path out = dir.path() / "out";
    fs::create_directories(out);
    const fs::path target = dir.path() / "precious.jsonl";
    std::ofstream(target) << "precious\n";
    const fs::path link = out / "quotes-20200101T000000.000Z-1-000001.jsonl";
    fs::create_symlink(target, link);
    SinkOptions o{out.string()};
    o.rotate_bytes = quote_line_size();
    o.retain_files = 2;
    FileSink sink(universe, o);
    sink.open();
    for (int i = 100; i < 103; ++i) sink.on_quote(numbered_quote(i));
    ASSERT_TRUE(sink.close(steady_clock::now() + 10s));
    EXPECT_TRUE(fs::is_symlink(fs::symlink_status(link))) << "retention removed a symlink";
    EXPECT_EQ(slurp(target), "precious\n");
    EXPECT_EQ(sink.stats().segments_deleted, 1u) << "the symlink counted toward max_files";
}

// A symlink named like a .part segment: repair must neither truncate its target nor rename it.
TEST(FileSink, RepairRefusesASymlinkNamedLikeASegment) {
    TempDir dir;
    const fs::path out = dir.path() / "out";
    fs::create_directories(out);
    const fs::path target = dir.path() / "precious.txt";
    const std::string precious = "{\"a\":1}\n{\"torn";
    std::ofstream(target) << precious;
    const fs::path link = out / "quotes-20260101T000000.000Z-1-000001.jsonl.part";
    fs::create_symlink(target, link);

    const RepairResult r = repair_segment(link.string());
    EXPECT_EQ(r.outcome, RepairResult::refused);
    EXPECT_EQ(r.error, ELOOP);

    FileSink sink(universe, {out.string()});
    sink.open();
    EXPECT_EQ(sink.stats().repair_errors, 1u);
    EXPECT_EQ(sink.stats().files_repaired, 0u);
    ASSERT_TRUE(sink.close(steady_clock::now() + 10s));
    EXPECT_EQ(slurp(target), precious) << "repair wrote through a symlink";
    EXPECT_TRUE(fs::is_symlink(link)) << "the symlink is left where it is";
    EXPECT_FALSE(fs::exists(fs::symlink_status(out / "quotes-20260101T000000.000Z-1-000001.jsonl")));
}

// The start-up probe is a name of our own: a symlink planted under it is not written through.
TEST(FileSink, TheStartupProbeNeverWritesThroughASymlink) {
    TempDir dir;
    const fs::path out = dir.path() / "out";
    fs::create_directories(out);
    const fs::path target = dir.path() / "precious.txt";
    std::ofstream(target) << "precious";
    fs::create_symlink(target, out / (".mdagg-probe-" + std::to_string(::getpid())));
    FileSink sink(universe, {out.string()});
    sink.open();
    ASSERT_TRUE(sink.close(steady_clock::now() + 10s));
    EXPECT_EQ(slurp(target), "precious");
}

}  // namespace
}  // namespace mdagg

// FileSink: write, fdatasync and truncate faults, through FileOps and in child processes.
#include "sink_test_helpers.hpp"

namespace mdagg {
namespace {

using namespace sink_test;

// RLIMIT_FSIZE makes write(2) come up short and then fail with EFBIG, mid-line: the next
// flush must resume at the exact byte. Runs in a child process so the limit stays there.
// Appends ten quotes' lines to `expected` and limits the file size halfway through them, off a
// line boundary; returns the limit, or 0 when it cannot be set there.
rlim_t limit_file_size_mid_line(std::string& expected) {
    for (int i = 0; i < 10; ++i) append_quote_json(expected, numbered_quote(i), universe);
    const rlim_t limit = expected.size() / 2 + 7;
    if (expected[limit - 1] == '\n') return 0;
    const rlimit rl{limit, RLIM_INFINITY};
    return ::setrlimit(RLIMIT_FSIZE, &rl) == 0 ? limit : 0;
}

int write_error_child(bool lift_limit) {
    std::signal(SIGXFSZ, SIG_IGN);
    TempDir dir;
    FileSink sink(universe, {dir.path().string()});
    sink.open();
    std::string expected;
    const rlim_t limit = limit_file_size_mid_line(expected);
    if (limit == 0) return 10;

    for (int i = 0; i < 10; ++i) sink.on_quote(numbered_quote(i));
    sink.flush();
    if (!eventually([&] { return sink.stats().write_errors >= 1; })) return 12;
    const SinkStats s = sink.stats();
    if (s.bytes_written != limit || s.records_written >= 10) return 13;

    if (lift_limit) {
        const rlimit rl{RLIM_INFINITY, RLIM_INFINITY};
        if (::setrlimit(RLIMIT_FSIZE, &rl) != 0) return 14;
        sink.flush();
        if (!eventually([&] { return sink.stats().records_written == 10; })) return 15;
        if (!sink.close(steady_clock::now() + 10s)) return 16;
        if (slurp(only_file(dir.path(), "quotes-")) != expected) return 17;
        if (sink.stats().records_dropped != 0) return 18;
    } else {
        // The data never fits: close() gives up on it, counts it, and cuts the torn line.
        if (!sink.close(steady_clock::now() + 10s)) return 19;
        const std::string text = slurp(only_file(dir.path(), "quotes-"));
        const std::size_t complete = expected.rfind('\n', limit - 1) + 1;
        if (text != expected.substr(0, complete)) return 20;
        const auto kept = static_cast<std::uint64_t>(std::count(text.begin(), text.end(), '\n'));
        if (sink.stats().records_dropped != 10 - kept) return 21;
    }
    if (only_file(dir.path(), "quotes-").extension() != ".jsonl") return 22;
    return 0;
}


TEST(FileSinkDeathTest, WriteErrorResumesAtTheExactByte) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_EXIT(std::exit(write_error_child(true)), ::testing::ExitedWithCode(0), "");
}

TEST(FileSinkDeathTest, UnwritableTailIsCountedAndCutAtClose) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_EXIT(std::exit(write_error_child(false)), ::testing::ExitedWithCode(0), "");
}

// On Linux a failed fdatasync may drop the dirty pages and report success next time; a
// segment whose flush failed once must not be renamed as if durable, even when later flushes
// and the close succeed.
TEST(FileSink, ASegmentWhoseFdatasyncFailedOnceStaysPartAndIsCounted) {
    FileOpsOverride restore;
    sink_detail::file_ops().fdatasync = fdatasync_failing_on_demand;
    fail_fdatasync = false;
    fdatasync_failures = 0;
    TempDir dir;
    std::string expected;
    for (int i = 0; i < 10; ++i) append_quote_json(expected, numbered_quote(i), universe);
    {
        FileSink sink(universe, {dir.path().string()});
        sink.open();
        for (int i = 0; i < 5; ++i) sink.on_quote(numbered_quote(i));
        fail_fdatasync = true;
        sink.flush();
        ASSERT_TRUE(eventually([&] { return sink.stats().write_errors >= 1; }));
        EXPECT_GE(fdatasync_failures.load(), 1);
        fail_fdatasync = false;
        for (int i = 5; i < 10; ++i) sink.on_quote(numbered_quote(i));
        sink.on_bar(some_bar(1));
        sink.flush();
        ASSERT_TRUE(eventually([&] { return sink.stats().flushes >= 1; })) << "the retried fdatasync succeeds";
        ASSERT_TRUE(sink.close(steady_clock::now() + 10s));
        const SinkStats s = sink.stats();
        EXPECT_EQ(s.segments_unsynced, 1u);
        EXPECT_EQ(s.segments_closed, 1u) << "only the bars segment is published";
        EXPECT_EQ(s.records_written, 11u);
    }
    EXPECT_TRUE(with_suffix(dir.path(), "quotes-", ".jsonl").empty()) << "an unsynced segment was published";
    const auto parts = with_suffix(dir.path(), "quotes-", ".jsonl.part");
    ASSERT_EQ(parts.size(), 1u);
    EXPECT_EQ(slurp(parts[0]), expected);
    EXPECT_EQ(with_suffix(dir.path(), "bars-", ".jsonl").size(), 1u);

    // The next start's repair reads what the disk has and publishes it.
    FileSink next(universe, {dir.path().string()});
    next.open();
    EXPECT_EQ(next.stats().files_repaired, 1u);
    EXPECT_EQ(slurp(only_file(dir.path(), "quotes-")), expected);
    ASSERT_TRUE(next.close(steady_clock::now() + 10s));
}

TEST(FileSink, AFailedFdatasyncAtCloseKeepsTheSegmentPart) {
    FileOpsOverride restore;
    sink_detail::file_ops().fdatasync = fdatasync_failing_on_demand;
    fail_fdatasync = false;
    TempDir dir;
    FileSink sink(universe, {dir.path().string()});
    sink.open();
    for (int i = 0; i < 3; ++i) sink.on_quote(numbered_quote(i));
    sink.flush();
    ASSERT_TRUE(eventually([&] { return sink.stats().flushes >= 1; }));
    fail_fdatasync = true;
    for (int i = 3; i < 6; ++i) sink.on_quote(numbered_quote(i));
    ASSERT_TRUE(sink.close(steady_clock::now() + 10s));
    fail_fdatasync = false;
    EXPECT_EQ(sink.stats().segments_unsynced, 1u);
    EXPECT_EQ(sink.stats().segments_closed, 0u);
    EXPECT_TRUE(with_suffix(dir.path(), "quotes-", ".jsonl").empty());
    ASSERT_EQ(with_suffix(dir.path(), "quotes-", ".jsonl.part").size(), 1u);
}

// With no write since the failed fdatasync the fault lasts; the unsynced segment still
// rotates by age (it stays .part either way), so what waits for the repair stays one age long.
TEST(FileSink, AnUnsyncedSegmentRotatesByAgeWhileTheFaultLasts) {
    FileOpsOverride restore;
    sink_detail::file_ops().fdatasync = fdatasync_failing_on_demand;
    fail_fdatasync = true;
    TempDir dir;
    SinkOptions o{dir.path().string()};
    o.rotate_age = 200ms;
    FileSink sink(universe, o);
    sink.open();
    sink.on_quote(numbered_quote(1));
    sink.flush();
    ASSERT_TRUE(eventually([&] { return sink.stats().segments_unsynced == 1; })) << "no rotation during the fault";
    EXPECT_TRUE(sink.stats().disk_fault);
    fail_fdatasync = false;
    ASSERT_TRUE(sink.close(steady_clock::now() + 10s));
    EXPECT_EQ(with_suffix(dir.path(), "quotes-", ".jsonl.part").size(), 1u);
    EXPECT_TRUE(with_suffix(dir.path(), "quotes-", ".jsonl").empty());
}

// A torn tail that cannot be cut (ftruncate fails) stays in a .part file for the repair: a
// finished file holds only whole lines. In a child process, for RLIMIT_FSIZE.
int failed_truncate_child() {
    std::signal(SIGXFSZ, SIG_IGN);
    FileOpsOverride restore;
    sink_detail::file_ops().ftruncate = [](int, off_t) {
        errno = EIO;
        return -1;
    };
    TempDir dir;
    {
        FileSink sink(universe, {dir.path().string()});
        sink.open();
        std::string expected;
        const rlim_t limit = limit_file_size_mid_line(expected);
        if (limit == 0) return 10;
        for (int i = 0; i < 10; ++i) sink.on_quote(numbered_quote(i));
        if (!sink.close(steady_clock::now() + 10s)) return 12;
        if (sink.stats().segments_unsynced != 1) return 13;
        if (!with_suffix(dir.path(), "quotes-", ".jsonl").empty()) return 14;
        const auto parts = with_suffix(dir.path(), "quotes-", ".jsonl.part");
        if (parts.size() != 1 || fs::file_size(parts[0]) != limit) return 15;
    }
    sink_detail::file_ops().ftruncate = ::ftruncate;
    FileSink next(universe, {dir.path().string()});
    next.open();
    if (next.stats().files_repaired != 1) return 16;
    const std::string text = slurp(only_file(dir.path(), "quotes-"));
    if (text.empty() || text.back() != '\n') return 17;
    if (!next.close(steady_clock::now() + 10s)) return 18;
    return 0;
}


TEST(FileSinkDeathTest, AFailedTruncateOfATornTailKeepsTheSegmentPart) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_EXIT(std::exit(failed_truncate_child()), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace mdagg

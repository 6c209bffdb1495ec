// FileSink: gzip and zstd compression of closed segments.
#include "sink_test_helpers.hpp"

namespace mdagg {
namespace {

using namespace sink_test;

void compression_round_trip(Compression method, const std::string& suffix) {
    const std::size_t line = quote_line_size();
    TempDir dir;
    SinkOptions o{dir.path().string()};
    o.rotate_bytes = 20 * line;
    o.compression = method;
    std::string expected;
    for (int i = 100; i < 160; ++i) append_quote_json(expected, numbered_quote(i), universe);
    FileSink sink(universe, o);
    sink.open();
    for (int i = 100; i < 160; ++i) sink.on_quote(numbered_quote(i));
    sink.flush();
    // Three full segments close while running and are compressed in the background.
    ASSERT_TRUE(eventually([&] { return sink.stats().segments_compressed == 3; })) << sink.stats().segments_compressed;
    ASSERT_TRUE(sink.close(steady_clock::now() + 10s));
    std::string all;
    const auto files = finished(dir.path(), "quotes-");
    ASSERT_EQ(files.size(), 3u);
    for (const fs::path& f : files) {
        ASSERT_TRUE(f.string().ends_with(".jsonl" + suffix)) << f;
        all += method == Compression::gzip ? gunzip(f) : unzstd(f);
    }
    EXPECT_EQ(all, expected);
    EXPECT_EQ(sink.stats().compression_errors, 0u);
}


TEST(FileSink, GzipCompressesClosedSegments) { compression_round_trip(Compression::gzip, ".gz"); }

TEST(FileSink, ZstdCompressesClosedSegments) { compression_round_trip(Compression::zstd, ".zst"); }

TEST(FileSink, OpenCompressesSegmentsAnEarlierRunLeftUncompressed) {
    TempDir dir;
    fs::create_directories(dir.path());
    std::string good;
    append_quote_json(good, numbered_quote(1), universe);
    std::ofstream(dir.path() / "quotes-20260101T000000.000Z-1-000001.jsonl.part") << good;
    SinkOptions o{dir.path().string()};
    o.compression = Compression::gzip;
    FileSink sink(universe, o);
    sink.open();
    ASSERT_TRUE(eventually([&] { return sink.stats().segments_compressed == 1; }));
    ASSERT_TRUE(sink.close(steady_clock::now() + 10s));
    EXPECT_EQ(gunzip(dir.path() / "quotes-20260101T000000.000Z-1-000001.jsonl.gz"), good);
    EXPECT_FALSE(fs::exists(dir.path() / "quotes-20260101T000000.000Z-1-000001.jsonl"));
}

// Plants a symlink named like the compression temp of the segment being closed, in the
// moment between its last fdatasync and its rename, so the compressor meets it.
fs::path planted_target;
int fdatasync_planting_compression_temp(int fd) {
    char link[64];
    std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    std::error_code ec;
    const std::string path = fs::read_symlink(link, ec).string();
    if (!ec && path.ends_with(".jsonl.part") && path.find("/quotes-") != std::string::npos) {
        const std::string final_path = path.substr(0, path.size() - 5);
        fs::create_symlink(planted_target, final_path + ".gz.part", ec);
    }
    return ::fdatasync(fd);
}


TEST(FileSink, CompressionNeverWritesThroughAPlantedTempName) {
    FileOpsOverride restore;
    TempDir dir;
    const fs::path out = dir.path() / "out";
    fs::create_directories(out);
    planted_target = dir.path() / "precious.txt";
    std::ofstream(planted_target) << "precious";
    sink_detail::file_ops().fdatasync = fdatasync_planting_compression_temp;
    SinkOptions o{out.string()};
    o.compression = Compression::gzip;
    {
        FileSink sink(universe, o);
        sink.open();
        sink.on_quote(numbered_quote(1));
        ASSERT_TRUE(sink.close(steady_clock::now() + 10s));
    }
    sink_detail::file_ops().fdatasync = ::fdatasync;
    ASSERT_EQ(with_suffix(out, "quotes-", ".gz.part").size(), 1u) << "the planted name";
    // The next start refuses the planted temp, and compressing around it fails, counted.
    FileSink next(universe, o);
    next.open();
    EXPECT_EQ(next.stats().repair_errors, 1u);
    ASSERT_TRUE(eventually([&] { return next.stats().compression_errors == 1; }));
    ASSERT_TRUE(next.close(steady_clock::now() + 10s));
    EXPECT_EQ(slurp(planted_target), "precious") << "compression wrote through a symlink";
    EXPECT_EQ(with_suffix(out, "quotes-", ".jsonl").size(), 1u) << "the segment stays uncompressed";
    EXPECT_TRUE(with_suffix(out, "quotes-", ".jsonl.gz").empty());
}

}  // namespace
}  // namespace mdagg

// FileSink: segments written, flushed, finalized and renamed; rotation by size and age;
// retention; names a reload adds; reconfigure of rotation and retention.
#include "sink_test_helpers.hpp"

namespace mdagg {
namespace {

using namespace sink_test;

TEST(FileSink, WritesFinalizesAndRenames) {
    TempDir dir;
    const fs::path out = dir.path() / "nested" / "deeper";  // parents are created
    {
        FileSink sink(universe, {out.string()});
        sink.open();
        EXPECT_TRUE(files_in(out).empty()) << "a segment is created when its stream has data";

        for (int i = 0; i < 100; ++i) sink.on_quote(numbered_quote(i));
        for (int i = 0; i < 10; ++i) sink.on_bar(some_bar(static_cast<std::uint64_t>(i)));
        sink.flush();
        ASSERT_TRUE(eventually([&] { return sink.stats().flushes == 1; }));
        const fs::path qpart = only_file(out, "quotes-");
        const fs::path bpart = only_file(out, "bars-");
        EXPECT_TRUE(is_output_name(qpart, "quotes", ".jsonl.part")) << qpart;
        EXPECT_TRUE(is_output_name(bpart, "bars", ".jsonl.part")) << bpart;
        EXPECT_EQ(lines_of(qpart).size(), 100u) << "a flush writes everything handed over";
        const mode_t mask = ::umask(0);
        ::umask(mask);
        EXPECT_EQ(fs::status(qpart).permissions() & fs::perms::all,
                  fs::perms(0644 & ~mask));
        for (int i = 100; i < 150; ++i) sink.on_quote(numbered_quote(i));
        EXPECT_TRUE(sink.close(steady_clock::now() + 10s));

        const SinkStats s = sink.stats();
        EXPECT_EQ(s.records_written, 160u);
        EXPECT_EQ(s.records_dropped, 0u);
        EXPECT_EQ(s.write_errors, 0u);
        EXPECT_EQ(s.bytes_written, fs::file_size(only_file(out, "quotes-")) +
                                       fs::file_size(only_file(out, "bars-")));

        sink.on_quote(full_quote());  // after close: refused, counted
        EXPECT_EQ(sink.stats().records_dropped, 1u);
        EXPECT_TRUE(sink.close(steady_clock::now()));  // idempotent
    }
    const std::vector<fs::path> files = files_in(out);
    ASSERT_EQ(files.size(), 2u);
    EXPECT_TRUE(is_output_name(only_file(out, "quotes-"), "quotes", ".jsonl"));
    EXPECT_TRUE(is_output_name(only_file(out, "bars-"), "bars", ".jsonl"));

    const std::vector<json> quotes = lines_of(only_file(out, "quotes-"));
    ASSERT_EQ(quotes.size(), 150u);
    for (std::size_t i = 0; i < quotes.size(); ++i) {
        EXPECT_EQ(quotes[i]["type"], "quote");
        EXPECT_EQ(quotes[i]["seq"], i);  // in order, none twice
        EXPECT_EQ(quotes[i]["bid_size"], "12.50");
    }
    const std::vector<json> bars = lines_of(only_file(out, "bars-"));
    ASSERT_EQ(bars.size(), 10u);
    EXPECT_EQ(bars[9]["updates"], 9);
}

TEST(FileSink, DataReachesTheFileOnlyOnFlushAndFlushDoesNotWait) {
    TempDir dir;
    // No chunk hand-off here: only flush() may wake the writer.
    FileSink sink(universe, {dir.path().string(), 256 << 20, 256 << 20});
    sink.open();

    sink.on_quote(full_quote());
    std::this_thread::sleep_for(50ms);
    EXPECT_TRUE(files_in(dir.path()).empty());
    sink.flush();
    ASSERT_TRUE(eventually([&] { return sink.stats().records_written == 1; }));
    const fs::path qpart = only_file(dir.path(), "quotes-");
    EXPECT_EQ(lines_of(qpart).size(), 1u);

    // Tens of megabytes cannot be written in the instant between flush() returning and the
    // next statement, so seeing them unwritten shows flush() only handed them over. (The
    // writer no longer rereads what it wrote to count lines, so it takes this much data to
    // outlast a loaded machine's scheduling delay.)
    constexpr int n = 200'000;
    for (int i = 0; i < n; ++i) sink.on_quote(numbered_quote(i));
    const auto before = steady_clock::now();
    sink.flush();
    const auto took = steady_clock::now() - before;
    EXPECT_LT(sink.stats().records_written, 1u + n);
    EXPECT_LT(took, 100ms);
    ASSERT_TRUE(eventually([&] { return sink.stats().records_written == 1u + n; }));
    EXPECT_TRUE(sink.close(steady_clock::now() + 20s));
    const std::string text = slurp(only_file(dir.path(), "quotes-"));
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1 + n);
    EXPECT_EQ(text.back(), '\n');
}

TEST(FileSink, AFullChunkReachesTheWriterWithoutWaitingForFlush) {
    std::string one;
    append_quote_json(one, full_quote(), universe);
    TempDir dir;
    FileSink sink(universe, {dir.path().string(), 64 << 20, 10 * one.size()});
    sink.open();
    for (int i = 0; i < 9; ++i) sink.on_quote(full_quote());
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(sink.stats().records_written, 0u) << "below the chunk size, records wait for flush()";
    sink.on_quote(full_quote());  // the tenth fills the chunk
    ASSERT_TRUE(eventually([&] { return sink.stats().records_written == 10; }));
    EXPECT_TRUE(sink.close(steady_clock::now() + 20s));
}

TEST(FileSink, DestructorWithoutCloseFinalizes) {
    TempDir dir;
    {
        FileSink sink(universe, {dir.path().string()});
        sink.on_quote(numbered_quote(0));  // before open: kept for the first flush
        sink.open();
        for (int i = 1; i < 20; ++i) sink.on_quote(numbered_quote(i));
        sink.on_bar(some_bar(3));
    }
    const std::vector<fs::path> files = files_in(dir.path());
    ASSERT_EQ(files.size(), 2u);
    for (const fs::path& p : files) EXPECT_EQ(p.extension(), ".jsonl") << p;
    EXPECT_EQ(lines_of(only_file(dir.path(), "quotes-")).size(), 20u);
    EXPECT_EQ(lines_of(only_file(dir.path(), "bars-")).size(), 1u);
}

TEST(FileSink, MissedDeadlineAbandonsTheWriterSafely) {
    TempDir dir;
    {
        FileSink sink(universe, {dir.path().string()});
        sink.open();
        for (int i = 0; i < 1000; ++i) sink.on_quote(numbered_quote(i));
        // Either outcome is legal for an expired deadline; what matters is that the sink can
        // go away while an abandoned writer still runs (the sanitizers watch for that).
        const bool done = sink.close(steady_clock::now() - 1s);
        const SinkStats s = sink.stats();
        if (done) {
            EXPECT_EQ(s.records_written, 1000u);
        }
    }
    // The abandoned writer still finishes its job.
    ASSERT_TRUE(eventually([&] {
        const auto files = files_in(dir.path());
        return files.size() == 1 && files[0].extension() == ".jsonl";
    }));
    EXPECT_EQ(lines_of(only_file(dir.path(), "quotes-")).size(), 1000u);
}

TEST(FileSink, SinksOpenedInTheSameSecondKeepSeparateFiles) {
    TempDir dir;
    for (int round = 0; round < 3; ++round) {
        FileSink sink(universe, {dir.path().string()});
        sink.open();
        sink.on_quote(numbered_quote(round));
        EXPECT_TRUE(sink.close(steady_clock::now() + 10s));
    }
    const std::vector<fs::path> files = files_in(dir.path());
    EXPECT_EQ(files.size(), 3u);
    int quotes = 0;
    for (const fs::path& p : files) {
        EXPECT_EQ(p.extension(), ".jsonl") << p;
        if (p.filename().string().rfind("quotes-", 0) == 0) {
            quotes += static_cast<int>(lines_of(p).size());
        }
    }
    EXPECT_EQ(quotes, 3);
}

TEST(FileSink, NeverOpenedIsHarmless) {
    FileSink sink(universe, {"/nonexistent/never/created"});
    sink.on_quote(full_quote());
    sink.flush();
    EXPECT_TRUE(sink.close(steady_clock::now()));
    EXPECT_FALSE(fs::exists("/nonexistent/never/created"));
}

TEST(FileSink, OpenFailureNamesThePath) {
    TempDir dir;
    fs::create_directories(dir.path());
    const fs::path file = dir.path() / "plain-file";
    std::ofstream(file) << "x";
    const std::string bad = (file / "sub").string();
    FileSink sink(universe, {bad});
    try {
        sink.open();
        FAIL() << "open() succeeded under a regular file";
    } catch (const std::system_error& e) {
        EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
}

TEST(FileSink, CsvStreamsGetAHeaderAndTheirOwnExtension) {
    TempDir dir;
    SinkOptions o{dir.path().string()};
    o.quotes_format = RecordFormat::csv;  // bars stay JSON lines
    {
        FileSink sink(universe, o);
        sink.open();
        for (int i = 0; i < 3; ++i) sink.on_quote(numbered_quote(i));
        sink.on_bar(some_bar(1));
        ASSERT_TRUE(sink.close(steady_clock::now() + 10s));
        EXPECT_EQ(sink.stats().records_written, 4u);
    }
    const fs::path q = only_file(dir.path(), "quotes-");
    EXPECT_TRUE(is_output_name(q, "quotes", ".csv")) << q;
    const std::string text = slurp(q);
    std::string expected(quote_csv_header);
    for (int i = 0; i < 3; ++i) append_quote_csv(expected, numbered_quote(i), universe);
    EXPECT_EQ(text, expected);
    EXPECT_EQ(lines_of(only_file(dir.path(), "bars-")).size(), 1u);
}

TEST(FileSink, RotatesBySizeAtLineBoundariesInOrder) {
    const std::size_t line = quote_line_size();
    TempDir dir;
    SinkOptions o{dir.path().string()};
    o.rotate_bytes = 10 * line + line / 2;  // ten lines fit, the eleventh does not
    o.handoff_bytes = 7 * line;            // chunk boundaries do not line up with segments
    {
        FileSink sink(universe, o);
        sink.open();
        for (int i = 100; i < 195; ++i) sink.on_quote(numbered_quote(i));
        ASSERT_TRUE(sink.close(steady_clock::now() + 10s));
        EXPECT_EQ(sink.stats().quotes.segments_closed, 10u);
    }
    const auto files = finished(dir.path(), "quotes-");
    ASSERT_EQ(files.size(), 10u);
    int seq = 100;
    for (std::size_t f = 0; f < files.size(); ++f) {
        EXPECT_LE(fs::file_size(files[f]), o.rotate_bytes) << files[f];
        const auto lines = lines_of(files[f]);
        EXPECT_EQ(lines.size(), f + 1 < files.size() ? 10u : 5u) << files[f];
        for (const json& j : lines) EXPECT_EQ(j["seq"], seq++) << "names sort in write order";
    }
    EXPECT_EQ(seq, 195);
}

TEST(FileSink, RecordsAreCountedExactlyWhenWritesSplitChunks) {
    // The writer counts a chunk's records without rereading it when a write takes the rest
    // of the chunk; rotation splits chunks mid-way, where the written part is counted.
    const std::size_t line = quote_line_size();
    TempDir dir;
    SinkOptions o{dir.path().string()};
    o.rotate_bytes = 4 * line + line / 3;
    o.handoff_bytes = 3 * line;
    o.quotes_format = RecordFormat::csv;  // a header row that must not count as a record
    FileSink sink(universe, o);
    sink.open();
    for (int i = 100; i < 197; ++i) {
        sink.on_quote(numbered_quote(i));
        if (i % 11 == 0) {
            sink.flush();
            const std::uint64_t want = static_cast<std::uint64_t>(i - 99);
            ASSERT_TRUE(eventually([&] { return sink.stats().quotes.records_written == want; }))
                << sink.stats().quotes.records_written << " != " << want;
        }
    }
    ASSERT_TRUE(sink.close(steady_clock::now() + 10s));
    EXPECT_EQ(sink.stats().quotes.records_written, 97u);
    std::uint64_t lines = 0, bytes = 0;
    for (const fs::path& f : finished(dir.path(), "quotes-")) {
        const std::string text = slurp(f);
        lines += static_cast<std::uint64_t>(std::count(text.begin(), text.end(), '\n')) - 1;  // header
        bytes += text.size();
    }
    EXPECT_EQ(lines, 97u);
    EXPECT_EQ(sink.stats().quotes.bytes_written, bytes);
}

TEST(FileSink, NamesAReloadAddsAppearInTheOutput) {
    Universe u{{"sim"}, {"STOCK_7"}};
    TempDir dir;
    FileSink sink(u, {dir.path().string()});
    sink.open();
    Quote q = full_quote();
    q.symbol = 1;
    sink.on_quote(q);  // not in the Universe (yet): null
    u.symbols.push_back("ETH-\"USD\"");  // a reload appends, on the strand that formats
    sink.on_quote(q);
    q.symbol = 0;
    sink.on_quote(q);
    ASSERT_TRUE(sink.close(steady_clock::now() + 10s));
    const auto lines = lines_of(only_file(dir.path(), "quotes-"));
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_TRUE(lines[0]["symbol"].is_null());
    EXPECT_EQ(lines[1]["symbol"], "ETH-\"USD\"");
    EXPECT_EQ(lines[2]["symbol"], "STOCK_7");
}

TEST(FileSink, RotatesByAgeOnATimerWithoutAnotherWrite) {
    TempDir dir;
    SinkOptions o{dir.path().string()};
    o.rotate_age = 300ms;
    FileSink sink(universe, o);
    sink.open();
    sink.on_quote(numbered_quote(1));
    sink.flush();
    ASSERT_TRUE(eventually([&] { return sink.stats().records_written == 1; }));
    // No more records, no flush: the writer's own timer closes the segment.
    ASSERT_TRUE(eventually([&] { return sink.stats().segments_closed == 1; }, 5s));
    ASSERT_EQ(finished(dir.path(), "quotes-").size(), 1u);
    EXPECT_EQ(files_in(dir.path()).size(), 1u) << "no new segment before new data";
    sink.on_quote(numbered_quote(2));
    ASSERT_TRUE(sink.close(steady_clock::now() + 10s));
    const auto files = finished(dir.path(), "quotes-");
    ASSERT_EQ(files.size(), 2u);
    EXPECT_EQ(lines_of(files[0])[0]["seq"], 1);
    EXPECT_EQ(lines_of(files[1])[0]["seq"], 2);
}

TEST(FileSink, RetentionKeepsTheNewestByCountAndBytes) {
    const std::size_t line = quote_line_size();
    TempDir dir;
    // Segments of another stream and foreign files are never touched.
    fs::create_directories(dir.path());
    std::ofstream(dir.path() / "notes.txt") << "keep me\n";
    SinkOptions o{dir.path().string()};
    o.rotate_bytes = 2 * line;
    o.handoff_bytes = line;
    o.retain_files = 3;
    {
        FileSink sink(universe, o);
        sink.open();
        for (int i = 100; i < 120; ++i) sink.on_quote(numbered_quote(i));
        sink.on_bar(some_bar(1));
        ASSERT_TRUE(sink.close(steady_clock::now() + 10s));
        EXPECT_EQ(sink.stats().quotes.segments_deleted, 7u);
    }
    auto files = finished(dir.path(), "quotes-");
    ASSERT_EQ(files.size(), 3u);
    EXPECT_EQ(lines_of(files[0])[0]["seq"], 114) << "the oldest go first";
    EXPECT_EQ(finished(dir.path(), "bars-").size(), 1u);
    EXPECT_TRUE(fs::exists(dir.path() / "notes.txt"));

    // By bytes, applied again at open() to what is already there.
    o.retain_files = 0;
    o.retain_bytes = 2 * 2 * line;
    FileSink again(universe, o);
    again.open();
    files = finished(dir.path(), "quotes-");
    ASSERT_EQ(files.size(), 2u);
    EXPECT_EQ(lines_of(files[0])[0]["seq"], 116);
    ASSERT_TRUE(again.close(steady_clock::now() + 10s));
}

TEST(FileSink, ReconfigureAppliesRotationRetentionAndCompressionWhileRunning) {
    const std::size_t line = quote_line_size();
    TempDir dir;
    SinkOptions o{dir.path().string()};
    o.rotate_bytes = 0;
    o.handoff_bytes = line;
    FileSink sink(universe, o);
    sink.open();
    for (int i = 100; i < 130; ++i) sink.on_quote(numbered_quote(i));
    sink.flush();
    ASSERT_TRUE(eventually([&] { return sink.stats().records_written == 30; }));

    SinkOptions next = o;
    next.rotate_bytes = 5 * line + line / 2;  // five lines a segment
    next.retain_files = 2;
    next.compression = Compression::gzip;    // the compressor was never started
    sink.reconfigure(next);
    // The open segment is past the new limit: it closes without waiting for another write.
    ASSERT_TRUE(eventually([&] { return sink.stats().segments_closed == 1; }));
    for (int i = 130; i < 150; ++i) sink.on_quote(numbered_quote(i));
    sink.flush();
    // 130..149 fill four segments; three close while running (the fourth stays open), so
    // retention keeps the newest two of four closed, both compressed.
    ASSERT_TRUE(eventually([&] {
        const auto files = finished(dir.path(), "quotes-");
        return files.size() == 2 && std::all_of(files.begin(), files.end(), [](const fs::path& f) {
                   return f.extension() == ".gz";
               });
    })) << files_in(dir.path()).size();
    ASSERT_TRUE(sink.close(steady_clock::now() + 10s));
    EXPECT_EQ(sink.stats().quotes.segments_closed, 5u);
    EXPECT_EQ(sink.stats().quotes.segments_deleted, 3u);
    const auto files = finished(dir.path(), "quotes-");
    ASSERT_EQ(files.size(), 2u);
    std::string expected;
    for (int i = 140; i < 150; ++i) append_quote_json(expected, numbered_quote(i), universe);
    // The segment closed by close() may or may not have been compressed: the drain does not
    // wait for the compressor (docs/output.md), which races close() for that last segment.
    const auto contents = [](const fs::path& f) { return f.extension() == ".gz" ? gunzip(f) : slurp(f); };
    EXPECT_EQ(files[0].extension(), ".gz");
    EXPECT_EQ(contents(files[0]) + contents(files[1]), expected);
}

}  // namespace
}  // namespace mdagg

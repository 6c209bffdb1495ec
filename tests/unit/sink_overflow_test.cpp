// FileSink: the bounded queue and its overflow policies (drop_newest, drop_oldest, block).
#include "sink_test_helpers.hpp"

namespace mdagg {
namespace {

using namespace sink_test;

TEST(FileSink, RecordsBeyondTheBufferBoundAreDroppedAndCounted) {
    std::string one;
    append_quote_json(one, full_quote(), universe);
    TempDir dir;
    SinkOptions options{dir.path().string(), 2 * one.size() + 10};
    options.overflow = OverflowPolicy::drop_newest;
    FileSink sink(universe, options);
    sink.open();
    for (int i = 0; i < 10; ++i) sink.on_quote(full_quote());
    EXPECT_EQ(sink.stats().records_dropped, 8u);
    const Bar bar = some_bar(1);
    std::string bar_line;
    append_bar_json(bar_line, bar, universe);
    ASSERT_LE(bar_line.size(), one.size() + 10);
    sink.on_bar(bar);  // the bound covers both files together
    EXPECT_EQ(sink.stats().records_dropped, 9u);

    // Written data no longer counts against the bound.
    sink.flush();
    ASSERT_TRUE(eventually([&] { return sink.stats().records_written == 2; }));
    sink.on_quote(full_quote());
    sink.on_bar(bar);
    EXPECT_EQ(sink.stats().records_dropped, 9u);
    EXPECT_TRUE(sink.close(steady_clock::now() + 10s));
    EXPECT_EQ(lines_of(only_file(dir.path(), "quotes-")).size(), 3u);
    EXPECT_EQ(lines_of(only_file(dir.path(), "bars-")).size(), 1u);
    EXPECT_EQ(sink.stats().records_written, 4u);
}

TEST(FileSink, DropOldestDiscardsWholeOldChunksAndKeepsTheNewest) {
    const std::size_t line = quote_line_size();
    TempDir dir;
    // Chunks of 10 records, room for 50: with nothing written, record 50 evicts 100..109.
    SinkOptions o{dir.path().string(), 50 * line, 10 * line};
    o.overflow = OverflowPolicy::drop_oldest;
    o.rotate_bytes = 0;
    FileSink sink(universe, o);  // not opened: nothing is written until open()
    for (int i = 100; i < 175; ++i) sink.on_quote(numbered_quote(i));
    // 75 records into room for 50, a chunk of 10 at a time: 30 dropped (100..129).
    EXPECT_EQ(sink.stats().records_dropped, 30u);
    EXPECT_EQ(sink.stats().quotes.records_dropped, 30u);
    EXPECT_LE(sink.stats().queued_bytes, 50 * line);
    sink.open();
    ASSERT_TRUE(sink.close(steady_clock::now() + 10s));
    const auto lines = lines_of(only_file(dir.path(), "quotes-"));
    ASSERT_EQ(lines.size(), 45u);
    for (std::size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(lines[i]["seq"], 130 + i);
    EXPECT_EQ(sink.stats().records_written + sink.stats().records_dropped, 75u);
}

TEST(FileSink, BlockWaitsBrieflyThenShedsWithoutWaitingAgain) {
    const std::size_t line = quote_line_size();
    TempDir dir;
    SinkOptions o{dir.path().string(), 5 * line, 64 << 20};
    o.overflow = OverflowPolicy::block;
    o.overflow_wait = 100ms;
    FileSink sink(universe, o);
    sink.open();
    for (int i = 100; i < 105; ++i) sink.on_quote(numbered_quote(i));
    auto t0 = steady_clock::now();
    sink.on_quote(numbered_quote(105));  // full, and no flush coming: waits, then drops
    EXPECT_GE(steady_clock::now() - t0, 100ms);
    for (int i = 106; i < 110; ++i) sink.on_quote(numbered_quote(i));
    EXPECT_EQ(sink.stats().records_dropped, 5u);
    EXPECT_EQ(sink.stats().overflow_waits, 1u) << "one wait per overflow episode";

    // A waiting record gets in when the writer frees room in time.
    sink.flush();
    ASSERT_TRUE(eventually([&] { return sink.stats().records_written == 5; }));
    for (int i = 110; i < 115; ++i) sink.on_quote(numbered_quote(i));
    std::thread flusher([&] {
        std::this_thread::sleep_for(20ms);
        sink.flush();
    });
    sink.on_quote(numbered_quote(115));
    flusher.join();
    ASSERT_TRUE(sink.close(steady_clock::now() + 10s));
    EXPECT_EQ(sink.stats().records_written, 11u);
    EXPECT_EQ(sink.stats().records_dropped, 5u);
}

TEST(FileSink, ReconfigureChangesTheOverflowPolicyAndBound) {
    const std::size_t line = quote_line_size();
    TempDir dir;
    SinkOptions o{dir.path().string(), 50 * line, line};
    o.overflow = OverflowPolicy::drop_oldest;
    FileSink sink(universe, o);  // not opened: everything stays queued
    SinkOptions next = o;
    next.max_buffer_bytes = 5 * line;
    next.overflow = OverflowPolicy::drop_newest;
    sink.reconfigure(next);
    for (int i = 100; i < 108; ++i) sink.on_quote(numbered_quote(i));
    EXPECT_EQ(sink.stats().records_dropped, 3u);  // the newest three, not the oldest
    sink.open();
    ASSERT_TRUE(sink.close(steady_clock::now() + 10s));
    const auto lines = lines_of(only_file(dir.path(), "quotes-"));
    ASSERT_EQ(lines.size(), 5u);
    EXPECT_EQ(lines.front()["seq"], 100);
    EXPECT_EQ(lines.back()["seq"], 104);
}

}  // namespace
}  // namespace mdagg

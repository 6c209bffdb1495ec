#include <mdagg/sink.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

namespace mdagg {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono;
using namespace std::chrono_literals;

Decimal D(const char* text) {
    const auto d = Decimal::parse(text);
    EXPECT_TRUE(d.has_value()) << text;
    return d.value_or(Decimal{});
}

std::int64_t ns_at(sys_days day, nanoseconds since_midnight) {
    return (day.time_since_epoch() + since_midnight).count();
}

Quote full_quote() {
    Quote q;
    q.source = 0;
    q.symbol = 0;
    q.bid = D("101.25");
    q.ask = D("101.26");
    q.bid_size = D("12.50");
    q.ask_size = D("8.00");
    q.has_bid_size = true;
    q.has_ask_size = true;
    q.exchange_time_ns = ns_at(2025y / 11 / 24, 16h + 1ns);
    q.receive_time_ns = ns_at(2025y / 11 / 24, 16h + 123456789ns);
    q.seq = 412;
    return q;
}

const Universe universe{{"sim", "venue2"}, {"STOCK_7", "ETH-USD"}};

TEST(JsonFormat, QuoteLineIsExact) {
    std::string out = "prefix|";
    append_quote_json(out, full_quote(), universe);
    EXPECT_EQ(out,
              R"(prefix|{"type":"quote","source":"sim","symbol":"STOCK_7","bid":"101.25",)"
              R"("ask":"101.26","bid_size":"12.50","ask_size":"8.00",)"
              R"("exchange_time":"2025-11-24T16:00:00.000000001Z",)"
              R"("receive_time":"2025-11-24T16:00:00.123456789Z","seq":412})"
              "\n");
}

TEST(JsonFormat, QuoteOptionalFieldsAreOmitted) {
    Quote q;
    q.source = 1;
    q.symbol = 1;
    q.bid = D("0.00000200");
    q.ask = D("0.00000210");
    q.receive_time_ns = ns_at(2025y / 1 / 2, 3h + 4min + 5s);
    std::string out;
    append_quote_json(out, q, universe);
    EXPECT_EQ(out,
              R"({"type":"quote","source":"venue2","symbol":"ETH-USD","bid":"0.00000200",)"
              R"("ask":"0.00000210","receive_time":"2025-01-02T03:04:05.000000000Z"})"
              "\n");
    q.seq = 0;  // zero is a real sequence number
    out.clear();
    append_quote_json(out, q, universe);
    EXPECT_EQ(json::parse(out)["seq"], 0);
}

TEST(JsonFormat, BarLineIsExact) {
    Bar b;
    b.symbol = 0;
    b.start_ns = ns_at(2025y / 11 / 24, 16h);
    b.end_ns = ns_at(2025y / 11 / 24, 16h + 1s);
    b.open = D("101.255");
    b.high = D("101.300");
    b.low = D("-0.5");
    b.close = D("101.26");
    b.updates = 18446744073709551615u;
    b.last_spread = D("0.01");
    b.bbo.bid = D("101.25");
    b.bbo.bid_source = 1;
    b.bbo.has_bid = true;
    b.bbo.ask = D("101.26");
    b.bbo.ask_source = 0;
    b.bbo.has_ask = true;
    std::string out;
    append_bar_json(out, b, universe);
    EXPECT_EQ(out,
              R"({"type":"bar","symbol":"STOCK_7","start":"2025-11-24T16:00:00.000000000Z",)"
              R"("end":"2025-11-24T16:00:01.000000000Z","open":"101.255","high":"101.300",)"
              R"("low":"-0.5","close":"101.26","updates":18446744073709551615,"spread":"0.01",)"
              R"("best_bid":"101.25","best_bid_source":"venue2",)"
              R"("best_ask":"101.26","best_ask_source":"sim"})"
              "\n");

    b.bbo.has_bid = false;
    out.clear();
    append_bar_json(out, b, universe);
    const json j = json::parse(out);
    EXPECT_FALSE(j.contains("best_bid"));
    EXPECT_FALSE(j.contains("best_bid_source"));
    EXPECT_EQ(j["best_ask_source"], "sim");
}

TEST(JsonFormat, StaleMarkLine) {
    const Universe universe{{"sim", "venue2"}, {"STOCK_7"}};
    StaleMark m;
    m.symbol = 0;
    m.source = 1;
    m.stale = true;
    m.last_receive_ns = 1'764'000'000'000'000'000;
    m.at_ns = m.last_receive_ns + 2'500'000'000;
    std::string out;
    append_stale_json(out, m, universe);
    EXPECT_EQ(out, R"({"type":"stale","source":"venue2","symbol":"STOCK_7","stale":true,)"
                   R"("time":"2025-11-24T16:00:02.500000000Z","last_receive_time":"2025-11-24T16:00:00.000000000Z"})"
                   "\n");
    m.stale = false;
    out.clear();
    append_stale_json(out, m, universe);
    EXPECT_EQ(json::parse(out)["stale"], false);
}

TEST(JsonFormat, NamesAreEscapedAndAlwaysValidUtf8) {
    const Universe u{{"src\\1"}, {"A\"B\n\t\x01z\xc3\xa9\xff\xe2\x82"}};
    Quote q;
    q.bid = D("1");
    q.ask = D("2");
    std::string out;
    append_quote_json(out, q, u);
    EXPECT_NE(out.find(R"("symbol":"A\"B\n\t\u0001z)"
                       "\xc3\xa9"
                       R"(\ufffd\ufffd\ufffd")"),
              std::string::npos)
        << out;
    const json j = json::parse(out);  // throws on invalid JSON or UTF-8
    EXPECT_EQ(j["source"], "src\\1");
    EXPECT_EQ(j["symbol"], "A\"B\n\t\x01z\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
}

TEST(JsonFormat, UnknownIdsBecomeNull) {
    Quote q;
    q.source = 5;
    q.symbol = 9;
    std::string out;
    append_quote_json(out, q, universe);
    const json j = json::parse(out);
    EXPECT_TRUE(j["source"].is_null());
    EXPECT_TRUE(j["symbol"].is_null());
}

std::string time_text(std::int64_t ns) {
    Quote q;
    q.receive_time_ns = ns;
    std::string out;
    append_quote_json(out, q, universe);
    return json::parse(out)["receive_time"].get<std::string>();
}

TEST(JsonFormat, Rfc3339Nanoseconds) {
    EXPECT_EQ(time_text(0), "1970-01-01T00:00:00.000000000Z");
    EXPECT_EQ(time_text(-1), "1969-12-31T23:59:59.999999999Z");
    EXPECT_EQ(time_text(ns_at(2024y / 2 / 29, 23h + 59min + 59s + 999999999ns)),
              "2024-02-29T23:59:59.999999999Z");
    EXPECT_EQ(time_text(ns_at(2024y / 2 / 29, 24h)), "2024-03-01T00:00:00.000000000Z");
    EXPECT_EQ(time_text(ns_at(2000y / 2 / 28, 24h)), "2000-02-29T00:00:00.000000000Z");
    EXPECT_EQ(time_text(ns_at(2100y / 2 / 28, 24h)), "2100-03-01T00:00:00.000000000Z");
    EXPECT_EQ(time_text(ns_at(2025y / 12 / 31, 24h - 1ns)), "2025-12-31T23:59:59.999999999Z");
    EXPECT_EQ(time_text(1'700'000'000'000'000'007), "2023-11-14T22:13:20.000000007Z");
    EXPECT_EQ(time_text(INT64_MAX), "2262-04-11T23:47:16.854775807Z");
}

// ---- JsonlSink -----------------------------------------------------------------------------

class TempDir {
public:
    TempDir() {
        static int counter = 0;
        path_ = fs::temp_directory_path() /
                ("mdagg-sink-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        fs::remove_all(path_);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

std::vector<fs::path> files_in(const fs::path& dir) {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

fs::path only_file(const fs::path& dir, const std::string& prefix) {
    fs::path found;
    int n = 0;
    for (const fs::path& p : files_in(dir)) {
        if (p.filename().string().rfind(prefix, 0) == 0) {
            found = p;
            ++n;
        }
    }
    EXPECT_EQ(n, 1) << prefix;
    return found;
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// Every line parses and the file ends with a newline; returns the parsed lines.
std::vector<json> lines_of(const fs::path& p) {
    const std::string text = slurp(p);
    std::vector<json> out;
    if (text.empty()) return out;
    EXPECT_EQ(text.back(), '\n') << p;
    std::size_t start = 0;
    while (start < text.size()) {
        const std::size_t nl = text.find('\n', start);
        if (nl == std::string::npos) {
            ADD_FAILURE() << "torn last line in " << p;
            break;
        }
        out.push_back(json::parse(text.substr(start, nl - start)));
        start = nl + 1;
    }
    return out;
}

template <class Pred>
bool eventually(Pred pred, milliseconds limit = 10s) {
    const auto deadline = steady_clock::now() + limit;
    while (!pred()) {
        if (steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

Bar some_bar(std::uint64_t i) {
    Bar b;
    b.symbol = 1;
    b.start_ns = static_cast<std::int64_t>(i) * 1'000'000'000;
    b.end_ns = b.start_ns + 1'000'000'000;
    b.open = b.high = b.low = b.close = D("2.5");
    b.updates = i;
    return b;
}

Quote numbered_quote(std::int64_t i) {
    Quote q = full_quote();
    q.seq = i;
    return q;
}

// <kind>-YYYYMMDDTHHMMSSZ-<pid><suffix>
bool is_output_name(const fs::path& p, const std::string& kind, const std::string& suffix) {
    const std::string name = p.filename().string();
    const std::string pid = std::to_string(::getpid());
    const std::string shape = kind + "-########T######Z-" + pid + suffix;
    if (name.size() != shape.size()) return false;
    for (std::size_t i = 0; i < name.size(); ++i) {
        const bool ok = shape[i] == '#' ? (name[i] >= '0' && name[i] <= '9') : name[i] == shape[i];
        if (!ok) return false;
    }
    return true;
}

TEST(JsonlSink, WritesFinalizesAndRenames) {
    TempDir dir;
    const fs::path out = dir.path() / "nested" / "deeper";  // parents are created
    {
        JsonlSink sink(universe, {out.string()});
        sink.open();
        const fs::path qpart = only_file(out, "quotes-");
        const fs::path bpart = only_file(out, "bars-");
        EXPECT_TRUE(is_output_name(qpart, "quotes", ".jsonl.part")) << qpart;
        EXPECT_TRUE(is_output_name(bpart, "bars", ".jsonl.part")) << bpart;
        const mode_t mask = ::umask(0);
        ::umask(mask);
        EXPECT_EQ(fs::status(qpart).permissions() & fs::perms::all,
                  fs::perms(0644 & ~mask));

        for (int i = 0; i < 100; ++i) sink.on_quote(numbered_quote(i));
        for (int i = 0; i < 10; ++i) sink.on_bar(some_bar(static_cast<std::uint64_t>(i)));
        sink.flush();
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

TEST(JsonlSink, DataReachesTheFileOnlyOnFlushAndFlushDoesNotWait) {
    TempDir dir;
    // No chunk hand-off here: only flush() may wake the writer.
    JsonlSink sink(universe, {dir.path().string(), 64 << 20, 64 << 20});
    sink.open();
    const fs::path qpart = only_file(dir.path(), "quotes-");

    sink.on_quote(full_quote());
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(fs::file_size(qpart), 0u);
    sink.flush();
    ASSERT_TRUE(eventually([&] { return sink.stats().records_written == 1; }));
    EXPECT_EQ(lines_of(qpart).size(), 1u);

    // Tens of megabytes cannot be written in the instant between flush() returning and the
    // next statement, so seeing them unwritten shows flush() only handed them over.
    constexpr int n = 50'000;
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

TEST(JsonlSink, AFullChunkReachesTheWriterWithoutWaitingForFlush) {
    std::string one;
    append_quote_json(one, full_quote(), universe);
    TempDir dir;
    JsonlSink sink(universe, {dir.path().string(), 64 << 20, 10 * one.size()});
    sink.open();
    for (int i = 0; i < 9; ++i) sink.on_quote(full_quote());
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(sink.stats().records_written, 0u) << "below the chunk size, records wait for flush()";
    sink.on_quote(full_quote());  // the tenth fills the chunk
    ASSERT_TRUE(eventually([&] { return sink.stats().records_written == 10; }));
    EXPECT_TRUE(sink.close(steady_clock::now() + 20s));
}

TEST(JsonlSink, RecordsBeyondTheBufferBoundAreDroppedAndCounted) {
    std::string one;
    append_quote_json(one, full_quote(), universe);
    TempDir dir;
    JsonlSink sink(universe, {dir.path().string(), 2 * one.size() + 10});
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

TEST(JsonlSink, DestructorWithoutCloseFinalizes) {
    TempDir dir;
    {
        JsonlSink sink(universe, {dir.path().string()});
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

TEST(JsonlSink, MissedDeadlineAbandonsTheWriterSafely) {
    TempDir dir;
    {
        JsonlSink sink(universe, {dir.path().string()});
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
        return files.size() == 2 && files[0].extension() == ".jsonl" &&
               files[1].extension() == ".jsonl";
    }));
    EXPECT_EQ(lines_of(only_file(dir.path(), "quotes-")).size(), 1000u);
}

TEST(JsonlSink, SinksOpenedInTheSameSecondKeepSeparateFiles) {
    TempDir dir;
    for (int round = 0; round < 3; ++round) {
        JsonlSink sink(universe, {dir.path().string()});
        sink.open();
        sink.on_quote(numbered_quote(round));
        EXPECT_TRUE(sink.close(steady_clock::now() + 10s));
    }
    const std::vector<fs::path> files = files_in(dir.path());
    EXPECT_EQ(files.size(), 6u);
    int quotes = 0;
    for (const fs::path& p : files) {
        EXPECT_EQ(p.extension(), ".jsonl") << p;
        if (p.filename().string().rfind("quotes-", 0) == 0) {
            quotes += static_cast<int>(lines_of(p).size());
        }
    }
    EXPECT_EQ(quotes, 3);
}

TEST(JsonlSink, NeverOpenedIsHarmless) {
    JsonlSink sink(universe, {"/nonexistent/never/created"});
    sink.on_quote(full_quote());
    sink.flush();
    EXPECT_TRUE(sink.close(steady_clock::now()));
    EXPECT_FALSE(fs::exists("/nonexistent/never/created"));
}

TEST(JsonlSink, OpenFailureNamesThePath) {
    TempDir dir;
    fs::create_directories(dir.path());
    const fs::path file = dir.path() / "plain-file";
    std::ofstream(file) << "x";
    const std::string bad = (file / "sub").string();
    JsonlSink sink(universe, {bad});
    try {
        sink.open();
        FAIL() << "open() succeeded under a regular file";
    } catch (const std::system_error& e) {
        EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
}

// RLIMIT_FSIZE makes write(2) come up short and then fail with EFBIG, mid-line: the next
// flush must resume at the exact byte. Runs in a child process so the limit stays there.
int write_error_child(bool lift_limit) {
    std::signal(SIGXFSZ, SIG_IGN);
    TempDir dir;
    JsonlSink sink(universe, {dir.path().string()});
    sink.open();
    std::string expected;
    for (int i = 0; i < 10; ++i) append_quote_json(expected, numbered_quote(i), universe);
    const rlim_t limit = expected.size() / 2 + 7;  // not on a line boundary
    if (expected[limit - 1] == '\n') return 10;
    rlimit rl{limit, RLIM_INFINITY};
    if (::setrlimit(RLIMIT_FSIZE, &rl) != 0) return 11;

    for (int i = 0; i < 10; ++i) sink.on_quote(numbered_quote(i));
    sink.flush();
    if (!eventually([&] { return sink.stats().write_errors >= 1; })) return 12;
    const SinkStats s = sink.stats();
    if (s.bytes_written != limit || s.records_written >= 10) return 13;

    if (lift_limit) {
        rl.rlim_cur = RLIM_INFINITY;
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

TEST(JsonlSinkDeathTest, WriteErrorResumesAtTheExactByte) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_EXIT(std::exit(write_error_child(true)), ::testing::ExitedWithCode(0), "");
}

TEST(JsonlSinkDeathTest, UnwritableTailIsCountedAndCutAtClose) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_EXIT(std::exit(write_error_child(false)), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace mdagg

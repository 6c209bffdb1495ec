#include <mdagg/sink.hpp>

#include "detail.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <zlib.h>
#include <zstd.h>
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

std::string rfc3339(std::int64_t ns) {
    std::string out;
    append_rfc3339(out, ns);
    return out;
}

// An instant on 1677-09-21, the day INT64_MIN (00:12:43.145224192) falls on: the offset from
// INT64_MIN added by hand, so no chrono arithmetic comes near int64's end.
std::string rfc3339_of_first_day(std::int64_t ns) {
    const std::int64_t since_min = static_cast<std::int64_t>(static_cast<std::uint64_t>(ns) -
                                                             static_cast<std::uint64_t>(INT64_MIN));
    const std::int64_t ns_of_day = (12 * 60 + 43) * 1'000'000'000LL + 145'224'192 + since_min;
    char buf[64];
    std::snprintf(buf, sizeof buf, "1677-09-21T%02lld:%02lld:%02lld.%09lldZ",
                  static_cast<long long>(ns_of_day / 3'600'000'000'000), static_cast<long long>(ns_of_day / 60'000'000'000 % 60),
                  static_cast<long long>(ns_of_day / 1'000'000'000 % 60), static_cast<long long>(ns_of_day % 1'000'000'000));
    return buf;
}

// The formatter before the per-thread date cache: std::chrono's calendar on every call.
// Its floor<seconds> overflows int64 in the first second of the range, where the text is
// made by hand instead (and Rfc3339AtTheEndsOfTheRange checks literal text).
std::string reference_rfc3339(std::int64_t ns) {
    if (ns < INT64_MIN + 1'000'000'000) return rfc3339_of_first_day(ns);
    const sys_time<nanoseconds> tp{nanoseconds{ns}};
    const sys_days day = floor<days>(tp);
    const year_month_day ymd{day};
    const auto secs = floor<seconds>(tp);
    const hh_mm_ss<seconds> hms{secs - day};
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02u" "T%02lld:%02lld:%02lld.%09lldZ", static_cast<int>(ymd.year()),
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                  static_cast<long long>(hms.hours().count()), static_cast<long long>(hms.minutes().count()),
                  static_cast<long long>(hms.seconds().count()), static_cast<long long>((tp - secs).count()));
    return buf;
}


// Instants around every boundary the text has: second, minute, hour, day, month, year, leap
// days (2000 and 2024 are leap years, 1900 and 2100 are not), the epoch and int64's ends.
std::vector<std::int64_t> boundary_instants() {
    std::vector<sys_days> days_ = {1970y / 1 / 1, 1969y / 12 / 31, 1900y / 2 / 28, 1900y / 3 / 1,
                                   2000y / 2 / 28, 2000y / 2 / 29, 2000y / 3 / 1, 2024y / 2 / 28,
                                   2024y / 2 / 29, 2024y / 3 / 1, 2025y / 12 / 31, 2026y / 1 / 1,
                                   2100y / 2 / 28, 2100y / 3 / 1, 1677y / 9 / 22, 2262y / 4 / 11};
    std::vector<std::int64_t> out = {0, -1, 1, INT64_MAX, INT64_MIN, INT64_MIN + 1, INT64_MAX - 1};
    for (sys_days d : days_)
        for (nanoseconds t : std::initializer_list<nanoseconds>{0ns, 1ns, 999'999'999ns, 1s, 59s, 1min, 1h - 1ns, 1h, 12h + 34min + 56s + 789ns,
                              24h - 1s, 24h - 1ns, 24h}) {
            const std::int64_t midnight = duration_cast<nanoseconds>(d.time_since_epoch()).count();
            if (midnight > INT64_MAX - t.count()) continue;  // past 2262-04-11T23:47:16.854775807
            out.push_back(midnight + t.count());
            out.push_back(-(midnight + t.count()));  // the mirror image, before 1970 or after
        }
    return out;
}

TEST(JsonFormat, Rfc3339AtTheEndsOfTheRange) {
    EXPECT_EQ(rfc3339(INT64_MIN), "1677-09-21T00:12:43.145224192Z");
    EXPECT_EQ(rfc3339(INT64_MIN + 1), "1677-09-21T00:12:43.145224193Z");
    EXPECT_EQ(rfc3339(INT64_MIN + 86'400'000'000'000), "1677-09-22T00:12:43.145224192Z");
    EXPECT_EQ(rfc3339(INT64_MAX), "2262-04-11T23:47:16.854775807Z");
    EXPECT_EQ(rfc3339_of_first_day(INT64_MIN + 1), "1677-09-21T00:12:43.145224193Z");
}

TEST(JsonFormat, Rfc3339MatchesTheCalendarAcrossEveryBoundary) {
    // The date is cached per thread: run the instants forwards, backwards and interleaved so
    // cached days are hit, missed, evicted and brought back in every order.
    std::vector<std::int64_t> instants = boundary_instants();
    std::vector<std::int64_t> order = instants;
    order.insert(order.end(), instants.rbegin(), instants.rend());
    for (std::size_t i = 0; i + 1 < instants.size(); i += 2) {
        order.push_back(instants[i + 1]);
        order.push_back(instants[i]);
    }
    for (std::int64_t ns : order) ASSERT_EQ(rfc3339(ns), reference_rfc3339(ns)) << ns;
}

TEST(JsonFormat, Rfc3339RandomInstantsAndDaysThatShareACacheSlot) {
    std::mt19937_64 rng(20261126);
    for (int i = 0; i < 20000; ++i) {
        const auto ns = static_cast<std::int64_t>(rng());  // anywhere in 1677..2262
        ASSERT_EQ(rfc3339(ns), reference_rfc3339(ns)) << ns;
    }
    // The caches' slot collisions: half days apart (an even number of seconds: the same second
    // slot), days 4 apart (the same day slot); around a midnight, so the second and the day
    // change within a few microseconds; seconds repeating and time going backwards.
    const std::int64_t day_ns = 86'400'000'000'000;
    const std::int64_t base = ns_at(2025y / 11 / 24, 23h + 59min + 59s + 999'999'000ns);
    for (int i = 0; i < 20000; ++i) {
        const std::int64_t ns = base + static_cast<std::int64_t>(rng() % 9) * day_ns / 2 -
                                static_cast<std::int64_t>(rng() % 5) * day_ns +
                                static_cast<std::int64_t>(rng() % 3'000) - 1'000;
        ASSERT_EQ(rfc3339(ns), reference_rfc3339(ns)) << ns;
        ASSERT_EQ(rfc3339(-ns), reference_rfc3339(-ns)) << -ns;
    }
}

TEST(JsonFormat, Rfc3339CacheIsPerThread) {
    // Threads formatting different days at once must each see their own dates.
    std::vector<std::thread> threads;
    std::atomic<int> mismatches{0};
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([t, &mismatches] {
            const std::int64_t base = ns_at(sys_days{2020y / 1 / 1} + days{t * 400}, 12h);
            for (int i = 0; i < 20000; ++i) {
                const std::int64_t ns = base + (i % 7) * 86'400'000'000'000 + i;
                if (rfc3339(ns) != reference_rfc3339(ns)) ++mismatches;
            }
        });
    for (auto& th : threads) th.join();
    EXPECT_EQ(mismatches.load(), 0);
}

// ---- FileSink -----------------------------------------------------------------------------

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

// Output files: dot-files are state (the directory lock, other modules' state files).
std::vector<fs::path> files_in(const fs::path& dir) {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(dir))
        if (!e.path().filename().string().starts_with('.')) out.push_back(e.path());
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

// <kind>-YYYYMMDDTHHMMSS.mmmZ-<pid>-<seq><suffix>
bool is_output_name(const fs::path& p, const std::string& kind, const std::string& suffix) {
    const std::string name = p.filename().string();
    const std::string pid = std::to_string(::getpid());
    const std::string shape = kind + "-########T######.###Z-" + pid + "-######" + suffix;
    if (name.size() != shape.size()) return false;
    for (std::size_t i = 0; i < name.size(); ++i) {
        const bool ok = shape[i] == '#' ? (name[i] >= '0' && name[i] <= '9') : name[i] == shape[i];
        if (!ok) return false;
    }
    return true;
}

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

// ---- CSV ------------------------------------------------------------------------------------

TEST(CsvFormat, QuoteAndBarLinesAreExact) {
    std::string out;
    append_quote_csv(out, full_quote(), universe);
    EXPECT_EQ(out,
              "sim,STOCK_7,101.25,101.26,12.50,8.00,2025-11-24T16:00:00.000000001Z,"
              "2025-11-24T16:00:00.123456789Z,412\n");
    Quote bare;
    bare.source = 1;
    bare.symbol = 1;
    bare.bid = D("0.00000200");
    bare.ask = D("0.00000210");
    out.clear();
    append_quote_csv(out, bare, universe);
    EXPECT_EQ(out, "venue2,ETH-USD,0.00000200,0.00000210,,,,1970-01-01T00:00:00.000000000Z,\n");
    // The header names every column a line has.
    EXPECT_EQ(std::count(quote_csv_header.begin(), quote_csv_header.end(), ','),
              std::count(out.begin(), out.end(), ','));

    Bar b = some_bar(3);
    b.bbo.has_ask = true;
    b.bbo.ask = D("2.6");
    b.bbo.ask_source = 0;
    out.clear();
    append_bar_csv(out, b, universe);
    EXPECT_EQ(out,
              "ETH-USD,1970-01-01T00:00:03.000000000Z,1970-01-01T00:00:04.000000000Z,2.5,2.5,2.5,2.5,3,0,"
              ",,2.6,sim\n");
    EXPECT_EQ(std::count(bar_csv_header.begin(), bar_csv_header.end(), ','),
              std::count(out.begin(), out.end(), ','));
}

TEST(CsvFormat, FieldsAreQuotedAndNeverSpanLines) {
    const Universe u{{"a,b"}, {"say \"hi\"\nnext"}};
    Quote q;
    q.bid = D("1");
    q.ask = D("2");
    std::string out;
    append_quote_csv(out, q, u);
    EXPECT_EQ(out.substr(0, out.find(",1,")), "\"a,b\",\"say \"\"hi\"\" next\"");
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1);
}

// ---- RecordFormatter ------------------------------------------------------------------------

// Names that need every kind of escape, invalid UTF-8 (U+FFFD), and ones long enough that the
// line no longer fits the formatter's stack buffer.
Universe awkward_universe() {
    Universe u;
    u.sources = {"sim", "src\\1", "a,b", std::string(3000, 'x'), std::string(400, '\x01'), ""};
    u.symbols = {"STOCK_7", "A\"B\n\t\x01z\xc3\xa9\xff\xe2\x82", "say \"hi\"\nnext", "\xed\xa0\x80\xf4\x90\x80\x80",
                 "\xf0\x9f\x92\xb9 emoji", std::string(2000, '"'), "\x7f"};
    return u;
}

Quote quote_of(SourceId source, SymbolId symbol, std::int64_t i) {
    Quote q = full_quote();
    q.source = source;
    q.symbol = symbol;
    q.seq = i;
    q.bid = Decimal(10125 + i, 2);
    q.receive_time_ns += i * 1'234'567'891;
    return q;
}

TEST(RecordFormatter, SameLinesAsTheFreeFunctionsWithNamesEscapedOnce) {
    const Universe u = awkward_universe();
    RecordFormatter f(u);
    std::int64_t i = 0;
    // Ids past the Universe print null / an empty field, as the free functions do.
    for (SourceId src = 0; src <= u.sources.size() + 1; ++src)
        for (SymbolId sym = 0; sym <= u.symbols.size() + 1; ++sym, ++i) {
            const Quote q = quote_of(src, sym, i);
            std::string want = "prefix|", got = "prefix|";  // appends, keeping what is there
            append_quote_json(want, q, u);
            f.quote_json(got, q);
            ASSERT_EQ(got, want) << src << "/" << sym;
            EXPECT_TRUE(json::accept(got.substr(7))) << got;  // valid JSON and UTF-8
            want = got = "prefix|";
            append_quote_csv(want, q, u);
            f.quote_csv(got, q);
            ASSERT_EQ(got, want) << src << "/" << sym;
            EXPECT_EQ(std::count(got.begin(), got.end(), '\n'), 1);

            Bar b = some_bar(static_cast<std::uint64_t>(i));
            b.symbol = sym;
            b.bbo.has_bid = b.bbo.has_ask = true;
            b.bbo.bid = D("1.5");
            b.bbo.ask = D("1.75");
            b.bbo.bid_source = src;
            b.bbo.ask_source = static_cast<SourceId>(u.sources.size() - 1 - src % u.sources.size());
            want = got = "";
            append_bar_json(want, b, u);
            f.bar_json(got, b);
            ASSERT_EQ(got, want);
            want = got = "";
            append_bar_csv(want, b, u);
            f.bar_csv(got, b);
            ASSERT_EQ(got, want);

            StaleMark m{sym, src, (i & 1) != 0, q.receive_time_ns, q.receive_time_ns - 5};
            want = got = "";
            append_stale_json(want, m, u);
            f.stale_json(got, m);
            ASSERT_EQ(got, want);
        }
    std::string out;
    f.quote_json(out, quote_of(0, 1, 0));
    const json j = json::parse(out);
    EXPECT_EQ(j["symbol"], "A\"B\n\t\x01z\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    out.clear();
    f.quote_json(out, quote_of(3, 5, 0));  // the longest line: written into `out` itself
    EXPECT_EQ(json::parse(out)["symbol"], std::string(2000, '"'));
    EXPECT_EQ(json::parse(out)["source"], std::string(3000, 'x'));
}

TEST(RecordFormatter, NamesAReloadAppendsAreFormattedFromThenOn) {
    Universe u{{"sim"}, {"STOCK_7"}};
    RecordFormatter f(u);
    std::string out;
    f.quote_json(out, quote_of(1, 1, 0));
    EXPECT_TRUE(json::parse(out)["source"].is_null());
    EXPECT_TRUE(json::parse(out)["symbol"].is_null());
    out.clear();
    f.quote_csv(out, quote_of(1, 1, 0));
    EXPECT_EQ(out.substr(0, 2), ",,");

    // A reload appends names: ids never change meaning, so the new ids get their names.
    u.sources.push_back("venue \"2\"");
    u.symbols.push_back("ETH,USD");
    u.symbols.push_back("SOL-USD");
    for (int round = 0; round < 2; ++round) {  // the second round comes from the cache
        out.clear();
        f.quote_json(out, quote_of(1, 1, 0));
        EXPECT_EQ(json::parse(out)["source"], "venue \"2\"");
        EXPECT_EQ(json::parse(out)["symbol"], "ETH,USD");
        out.clear();
        f.quote_json(out, quote_of(0, 2, 0));
        EXPECT_EQ(json::parse(out)["source"], "sim");
        EXPECT_EQ(json::parse(out)["symbol"], "SOL-USD");
        out.clear();
        f.quote_csv(out, quote_of(1, 1, 0));
        EXPECT_EQ(out.substr(0, 23), "\"venue \"\"2\"\"\",\"ETH,USD\"");
        std::string want;
        append_quote_csv(want, quote_of(1, 1, 0), u);
        EXPECT_EQ(out, want);
        out.clear();
        f.quote_json(out, quote_of(1, 3, 0));
        EXPECT_TRUE(json::parse(out)["symbol"].is_null()) << "still past the Universe";
    }
}

TEST(RecordFormatter, AReusedIdPrintsItsNewNameNeverThePreviousOne) {
    Universe u{{"sim"}, {"OLD,1", "KEPT"}};
    RecordFormatter f(u);
    std::string json_line, csv_line;
    f.quote_json(json_line, quote_of(0, 0, 0));
    f.quote_csv(csv_line, quote_of(0, 0, 0));
    EXPECT_EQ(json::parse(json_line)["symbol"], "OLD,1");

    // A reload removed OLD,1; once nothing referred to it its id went to a new symbol.
    u.release_symbol(0);
    ASSERT_EQ(u.add_symbol("NEW"), 0u);
    for (int round = 0; round < 2; ++round) {
        json_line.clear();
        csv_line.clear();
        f.quote_json(json_line, quote_of(0, 0, 0));
        f.quote_csv(csv_line, quote_of(0, 0, 0));
        EXPECT_EQ(json::parse(json_line)["symbol"], "NEW");
        EXPECT_EQ(csv_line.substr(0, 8), "sim,NEW,");
        Bar b = some_bar(1);
        b.symbol = 0;
        std::string got, want;
        f.bar_json(got, b);
        append_bar_json(want, b, u);
        EXPECT_EQ(got, want);
        got.clear();
        f.quote_json(got, quote_of(0, 1, 0));
        EXPECT_EQ(json::parse(got)["symbol"], "KEPT");
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

// ---- overflow ---------------------------------------------------------------------------------

std::size_t quote_line_size() {
    std::string one;
    append_quote_json(one, numbered_quote(100), universe);  // same width as seq 100..999
    return one.size();
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

// ---- rotation, retention ----------------------------------------------------------------------

std::vector<fs::path> finished(const fs::path& dir, const std::string& prefix) {
    std::vector<fs::path> out;
    for (const fs::path& p : files_in(dir))
        if (p.filename().string().rfind(prefix, 0) == 0 && p.extension() != ".part") out.push_back(p);
    return out;  // sorted by name, which is by time
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

// ---- crash repair -----------------------------------------------------------------------------

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

// ---- compression --------------------------------------------------------------------------

std::string gunzip(const fs::path& p) {
    gzFile f = gzopen(p.c_str(), "rb");
    EXPECT_NE(f, nullptr);
    std::string out;
    char buf[65536];
    int n;
    while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    EXPECT_EQ(n, 0);
    gzclose(f);
    return out;
}

std::string unzstd(const fs::path& p) {
    const std::string in = slurp(p);
    const auto size = ZSTD_getFrameContentSize(in.data(), in.size());
    EXPECT_NE(size, ZSTD_CONTENTSIZE_ERROR);
    std::string out;
    ZSTD_DStream* ds = ZSTD_createDStream();
    ZSTD_inBuffer input{in.data(), in.size(), 0};
    char buf[65536];
    while (input.pos < input.size) {
        ZSTD_outBuffer output{buf, sizeof buf, 0};
        const auto rc = ZSTD_decompressStream(ds, &output, &input);
        EXPECT_FALSE(ZSTD_isError(rc)) << ZSTD_getErrorName(rc);
        if (ZSTD_isError(rc)) break;
        out.append(buf, output.pos);
    }
    ZSTD_freeDStream(ds);
    return out;
}

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

// ---- disk faults ----------------------------------------------------------------------------

// dir's lock file names this process, and a second sink there (another daemon) is refused
// naming it: flock() conflicts between open file descriptions, also within one process.
void expect_locked_by_this_process(const fs::path& dir) {
    EXPECT_EQ(slurp(dir / ".mdagg.lock"), std::to_string(::getpid()) + "\n");
    FileSink second(universe, {dir.string()});
    try {
        second.open();
        ADD_FAILURE() << "a second sink opened a locked directory";
    } catch (const std::system_error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("pid " + std::to_string(::getpid())), std::string::npos) << what;
        EXPECT_NE(what.find(dir.string()), std::string::npos) << what;
    }
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

TEST(FileSink, OpenFailsOnAReadOnlyDirectory) {
    if (::geteuid() == 0) GTEST_SKIP() << "root writes through directory permissions";
    TempDir dir;
    fs::create_directories(dir.path());
    fs::permissions(dir.path(), fs::perms::owner_read | fs::perms::owner_exec);
    FileSink sink(universe, {dir.path().string()});
    EXPECT_THROW(sink.open(), std::system_error);
    fs::permissions(dir.path(), fs::perms::owner_all);
}

// ---- durability and directory safety ------------------------------------------------------

// Replaces one syscall of the sink's seam for a test's lifetime; install before a sink opens,
// and let it go only after every sink of the test is gone.
class FileOpsOverride {
public:
    FileOpsOverride() : saved_(sink_detail::file_ops()) {}
    ~FileOpsOverride() { sink_detail::file_ops() = saved_; }
    FileOpsOverride(const FileOpsOverride&) = delete;
    FileOpsOverride& operator=(const FileOpsOverride&) = delete;

private:
    sink_detail::FileOps saved_;
};

std::atomic<bool> fail_fdatasync{false};
std::atomic<int> fdatasync_failures{0};

int fdatasync_failing_on_demand(int fd) {
    if (fail_fdatasync.load()) {
        fdatasync_failures.fetch_add(1);
        errno = EIO;
        return -1;
    }
    return ::fdatasync(fd);
}

std::vector<fs::path> with_suffix(const fs::path& dir, const std::string& prefix, const std::string& suffix) {
    std::vector<fs::path> out;
    for (const fs::path& p : files_in(dir)) {
        const std::string name = p.filename().string();
        if (name.starts_with(prefix) && name.ends_with(suffix)) out.push_back(p);
    }
    return out;
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

// ---- reconfigure (SIGHUP) -------------------------------------------------------------------

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
    EXPECT_EQ(gunzip(files[0]) + slurp(files[1]), expected);  // the last closed at close(): not compressed
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

// ---- the sink's families in /metrics ----------------------------------------------------------

#include <mdagg/sink_metrics.hpp>

namespace mdagg {
namespace {

TEST(SinkMetrics, EveryFamilyReadsItsOwnField) {
    SinkStats st;
    st.disk_fault = true;
    st.queued_bytes = 11;
    st.flush_latency_last_us = 2'000;
    st.flush_latency_max_us = 500'000;
    st.segments_closed = 1;
    st.files_repaired = 2;
    st.segments_deleted = 3;
    st.segments_compressed = 4;
    st.compression_errors = 5;
    st.repair_errors = 6;
    st.segments_unsynced = 7;
    st.records_written = 8;
    st.bytes_written = 9;
    st.records_dropped = 10;
    st.write_errors = 12;
    std::string out;
    PrometheusWriter w(out);
    write_sink_metrics(w, st);
    const std::vector<std::string> samples{
        "mdagg_sink_disk_fault 1",
        "mdagg_sink_queued_bytes 11",
        "mdagg_sink_flush_latency_seconds{which=\"last\"} 0.002",
        "mdagg_sink_flush_latency_seconds{which=\"max\"} 0.5",
        "mdagg_sink_segments_closed_total 1",
        "mdagg_sink_files_repaired_total 2",
        "mdagg_sink_segments_deleted_total 3",
        "mdagg_sink_segments_compressed_total 4",
        "mdagg_sink_compression_errors_total 5",
        "mdagg_sink_repair_errors_total 6",
        "mdagg_sink_segments_unsynced_total 7",
        "mdagg_sink_records_total 8",
        "mdagg_sink_bytes_total 9",
        "mdagg_sink_records_dropped_total 10",
        "mdagg_sink_write_errors_total 12",
    };
    std::vector<std::string> lines;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);)
        if (line.rfind('#', 0) != 0) lines.push_back(line);
    EXPECT_EQ(lines, samples);  // in this order, nothing else
    EXPECT_NE(out.find("# HELP mdagg_sink_records_dropped_total Records dropped because the output buffer was full.\n"
                       "# TYPE mdagg_sink_records_dropped_total counter\n"),
              std::string::npos);
    EXPECT_NE(out.find("# TYPE mdagg_sink_queued_bytes gauge\n"), std::string::npos);
}

// issue 16: the Kafka sink's series sit in the family they belong to (a family's samples are
// one block after its # TYPE line, as the exposition format requires), each family once.
TEST(SinkMetrics, KafkaSeriesSitInTheirFamiliesEachFamilyOnce) {
    KafkaStats k;
    k.queued_bytes = 21;
    k.dropped_buffer_full = 22;
    k.dropped_closed = 23;
    k.connected = true;
    k.outages = 24;
    k.quotes.delivered = 25;
    k.bars.failed = 26;
    k.queued_records = 27;
    k.overflow_waits = 28;
    std::string out;
    PrometheusWriter w(out);
    write_sink_metrics(w, SinkStats{}, &k);
    // Each sample under the # TYPE line of its own family.
    std::map<std::string, std::vector<std::string>> by_family;
    std::map<std::string, int> types;
    std::string family;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("# TYPE ", 0) == 0) {
            family = line.substr(7, line.find(' ', 7) - 7);
            ++types[family];
        } else if (line.rfind('#', 0) != 0) {
            by_family[family].push_back(line);
        }
    }
    for (const auto& [name, n] : types) EXPECT_EQ(n, 1) << name;
    const auto has = [&](const std::string& f, const std::string& sample) {
        const auto& v = by_family[f];
        return std::find(v.begin(), v.end(), sample) != v.end();
    };
    EXPECT_TRUE(has("mdagg_sink_queued_bytes", "mdagg_sink_queued_bytes 0"));
    EXPECT_TRUE(has("mdagg_sink_queued_bytes", "mdagg_sink_queued_bytes{sink=\"kafka\"} 21"));
    EXPECT_TRUE(has("mdagg_sink_records_dropped_total", "mdagg_sink_records_dropped_total 0"));
    EXPECT_TRUE(has("mdagg_sink_records_dropped_total",
                    "mdagg_sink_records_dropped_total{sink=\"kafka\",cause=\"buffer_full\"} 22"));
    EXPECT_TRUE(has("mdagg_sink_records_dropped_total",
                    "mdagg_sink_records_dropped_total{sink=\"kafka\",cause=\"closed\"} 23"));
    EXPECT_TRUE(has("mdagg_sink_connected", "mdagg_sink_connected{sink=\"kafka\"} 1"));
    EXPECT_TRUE(has("mdagg_sink_outages_total", "mdagg_sink_outages_total{sink=\"kafka\"} 24"));
    EXPECT_TRUE(has("mdagg_sink_records_delivered_total",
                    "mdagg_sink_records_delivered_total{sink=\"kafka\",stream=\"quotes\"} 25"));
    EXPECT_TRUE(has("mdagg_sink_records_failed_total",
                    "mdagg_sink_records_failed_total{sink=\"kafka\",stream=\"bars\"} 26"));
    EXPECT_TRUE(has("mdagg_sink_queued_records", "mdagg_sink_queued_records{sink=\"kafka\"} 27"));
    EXPECT_TRUE(has("mdagg_sink_overflow_waits_total", "mdagg_sink_overflow_waits_total{sink=\"kafka\"} 28"));
    EXPECT_EQ(types.count("mdagg_sink_delivery_latency_seconds"), 1u);
    // Without Kafka: no kafka series at all.
    std::string plain;
    PrometheusWriter pw(plain);
    write_sink_metrics(pw, SinkStats{});
    EXPECT_EQ(plain.find("kafka"), std::string::npos);
}

}  // namespace
}  // namespace mdagg

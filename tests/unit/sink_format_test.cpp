// The record formats: JSON lines (with the RFC 3339 times), CSV, and the RecordFormatter
// that escapes names once.
#include "sink_test_helpers.hpp"

namespace mdagg {
namespace {

using namespace sink_test;

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

TEST(CsvFormat, QuoteAndBarLinesAreExact) {
    std::string out;
    append_quote_csv(out, full_quote(), universe);
    EXPECT_EQ(out,
              "sim,STOCK_7,101.25,101.26,12.50,8.00,2025-11-24T16:00:00.000000001Z,"
              "2025-11-24T16:00:00.123456789Z,412,,\n");
    Quote bare;
    bare.source = 1;
    bare.symbol = 1;
    bare.bid = D("0.00000200");
    bare.ask = D("0.00000210");
    out.clear();
    append_quote_csv(out, bare, universe);
    EXPECT_EQ(out, "venue2,ETH-USD,0.00000200,0.00000210,,,,1970-01-01T00:00:00.000000000Z,,,\n");
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

}  // namespace
}  // namespace mdagg

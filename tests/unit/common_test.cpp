#include <mdagg/common.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <random>
#include <string>

using namespace mdagg;

namespace {

// ---- wall clock ----------------------------------------------------------------------------

TEST(WallClock, IsTheSystemClockInNanoseconds) {
    using namespace std::chrono;
    const auto before = duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count();
    const auto now = wall_clock_ns();
    const auto after = duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count();
    EXPECT_LE(before, now);
    EXPECT_LE(now, after);
}

// ---- FNV-1a --------------------------------------------------------------------------------

TEST(Fnv1a64, PublishedVectors) {
    // From the FNV reference test suite (draft-eastlake-fnv).
    EXPECT_EQ(fnv1a_64(""), 0xcbf29ce484222325u);
    EXPECT_EQ(fnv1a_64("a"), 0xaf63dc4c8601ec8cu);
    EXPECT_EQ(fnv1a_64("foobar"), 0x85944171f73967e8u);
    static_assert(fnv1a_64("a") == 0xaf63dc4c8601ec8cu, "usable at compile time");
}

TEST(Fnv1a64, ContinuesAnEarlierHash) {
    EXPECT_EQ(fnv1a_64("bar", fnv1a_64("foo")), fnv1a_64("foobar"));
    EXPECT_EQ(fnv1a_64("AAPL", fnv1a_64("/", fnv1a_64("binance"))), fnv1a_64("binance/AAPL"));
}

TEST(Fnv1a64, HighBytesAreNotSignExtended) {
    // "\xff" must hash as the byte 0xff, never as a sign-extended char.
    EXPECT_EQ(fnv1a_64("\xff"), (fnv1a_64_basis ^ 0xffu) * 0x100000001b3u);
}

// ---- RFC 3339 ------------------------------------------------------------------------------
// The nanosecond text is checked against the calendar at every boundary in sink_test.cpp
// (JsonFormat.Rfc3339*). Here: the shorter fractions, against the snprintf/gmtime_r formatters
// they replaced in the log (microseconds) and in the reports and the drain record (milliseconds).

std::string text(std::int64_t ns, FractionDigits digits) {
    std::string out;
    append_rfc3339(out, ns, digits);
    return out;
}

std::string reference(std::int64_t ns, FractionDigits digits) {
    const std::time_t secs = static_cast<std::time_t>(ns / 1'000'000'000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    if (digits == FractionDigits::ms)
        std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                      tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ns / 1'000'000 % 1000));
    else
        std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                      tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long>(ns / 1'000 % 1'000'000));
    return buf;
}

TEST(Rfc3339Text, EachPrecision) {
    const std::int64_t ns = 1'764'000'000'123'456'789;
    EXPECT_EQ(text(ns, FractionDigits::ns), "2025-11-24T16:00:00.123456789Z");
    EXPECT_EQ(text(ns, FractionDigits::us), "2025-11-24T16:00:00.123456Z");
    EXPECT_EQ(text(ns, FractionDigits::ms), "2025-11-24T16:00:00.123Z");
}

TEST(Rfc3339Text, FractionIsTruncatedNeverRounded) {
    const std::int64_t ns = 1'764'000'000'999'999'999;
    EXPECT_EQ(text(ns, FractionDigits::us), "2025-11-24T16:00:00.999999Z");
    EXPECT_EQ(text(ns, FractionDigits::ms), "2025-11-24T16:00:00.999Z");
    EXPECT_EQ(text(0, FractionDigits::ms), "1970-01-01T00:00:00.000Z");
    // Before 1970 the fraction is floored like the second: -1 ns is the last of 1969.
    EXPECT_EQ(text(-1, FractionDigits::ms), "1969-12-31T23:59:59.999Z");
    EXPECT_EQ(text(-1, FractionDigits::us), "1969-12-31T23:59:59.999999Z");
}

TEST(Rfc3339Text, ShortFractionsMatchTheFormattersTheyReplaced) {
    std::mt19937_64 rng(20261201);
    for (int i = 0; i < 20000; ++i) {
        // 1970..2262: the old formatters only ever saw times after the epoch.
        const auto ns = static_cast<std::int64_t>(rng() >> 1);
        ASSERT_EQ(text(ns, FractionDigits::ms), reference(ns, FractionDigits::ms)) << ns;
        ASSERT_EQ(text(ns, FractionDigits::us), reference(ns, FractionDigits::us)) << ns;
    }
}

TEST(Rfc3339Text, PutWritesAtMostTheBound) {
    char buf[rfc3339_max_chars + 1];
    buf[rfc3339_max_chars] = '#';
    for (auto d : {FractionDigits::ms, FractionDigits::us, FractionDigits::ns}) {
        const char* end = put_rfc3339(buf, INT64_MIN, d);
        EXPECT_EQ(static_cast<std::size_t>(end - buf), 21 + static_cast<std::size_t>(d));
        EXPECT_EQ(buf[rfc3339_max_chars], '#');
    }
}

// ---- HOST:PORT -----------------------------------------------------------------------------

TEST(HostPort, SplitsAtTheLastColonOrAfterTheBrackets) {
    HostPort hp;
    ASSERT_EQ(split_host_port("127.0.0.1:9100", hp), HostPortError::none);
    EXPECT_EQ(hp.host, "127.0.0.1");
    EXPECT_EQ(hp.port, "9100");
    EXPECT_FALSE(hp.bracketed);
    ASSERT_EQ(split_host_port("[::1]:65535", hp), HostPortError::none);
    EXPECT_EQ(hp.host, "::1");
    EXPECT_EQ(hp.port, "65535");
    EXPECT_TRUE(hp.bracketed);
    // Syntax only: an empty host or port is the caller's to refuse.
    ASSERT_EQ(split_host_port(":80", hp), HostPortError::none);
    EXPECT_EQ(hp.host, "");
    ASSERT_EQ(split_host_port("host:", hp), HostPortError::none);
    EXPECT_EQ(hp.port, "");
}

TEST(HostPort, RefusesMalformedAndUnbracketedIpv6) {
    HostPort hp;
    for (const char* bad : {"", "8081", "[::1]80", "[::1]", "[::1", "["})
        EXPECT_EQ(split_host_port(bad, hp), HostPortError::malformed) << bad;
    EXPECT_EQ(split_host_port("::1:80", hp), HostPortError::needs_brackets);
    EXPECT_EQ(hp.host, "::1") << "the host is kept for the caller's message";
}

TEST(HostPort, PortIsDecimalDigitsUpTo65535) {
    std::uint16_t port = 7;
    EXPECT_TRUE(parse_port("0", port));
    EXPECT_EQ(port, 0);
    EXPECT_TRUE(parse_port("65535", port));
    EXPECT_EQ(port, 65535);
    for (const char* bad : {"", "65536", "80x", "-1", "+80", " 80", "99999999999"}) {
        port = 7;
        EXPECT_FALSE(parse_port(bad, port)) << bad;
        EXPECT_EQ(port, 7) << "untouched on failure";
    }
}

}  // namespace

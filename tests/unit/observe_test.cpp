// Log line format, rate limiting, and the latency histogram.
#include <mdagg/observe.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace std::chrono_literals;

TEST(LogLine, IsOneJsonObjectWithUtcMicrosecondTimestamp) {
    auto ts = std::chrono::system_clock::time_point(std::chrono::microseconds(1764000000123456LL));
    auto line = mdagg::log::format_line(ts, mdagg::log::Level::warn, "poll \"failed\"\n",
                                        {{"symbol", "STOCK_1"}, {"count", 3}, {"msg", "ignored"}});
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["ts"], "2025-11-24T16:00:00.123456Z");
    EXPECT_EQ(j["level"], "warn");
    EXPECT_EQ(j["msg"], "poll \"failed\"\n");
    EXPECT_EQ(j["symbol"], "STOCK_1");
    EXPECT_EQ(j["count"], 3);
    EXPECT_EQ(line.find('\n'), std::string::npos);  // one physical line
}

TEST(LogLine, InvalidUtf8FromAnEndpointStillYieldsValidJson) {
    auto line = mdagg::log::format_line(std::chrono::system_clock::now(), mdagg::log::Level::error,
                                        "bad", {{"detail", std::string("\xff\xfe body")}});
    EXPECT_TRUE(nlohmann::json::accept(line));
}

TEST(LogLevel, ParsesKnownNamesOnly) {
    EXPECT_EQ(mdagg::log::parse_level("debug"), mdagg::log::Level::debug);
    EXPECT_EQ(mdagg::log::parse_level("error"), mdagg::log::Level::error);
    EXPECT_FALSE(mdagg::log::parse_level("loud"));
}

TEST(RateLimited, FirstEventPerWindowIsWrittenTheRestCounted) {
    mdagg::log::set_level(mdagg::log::Level::error);  // keep the test's stdout quiet
    mdagg::log::RateLimited limiter(10s);
    auto t0 = std::chrono::steady_clock::time_point(100s);
    EXPECT_TRUE(limiter.write(mdagg::log::Level::error, "sim/timeout", "poll failed", {}, t0));
    for (int i = 0; i < 1999; ++i)
        EXPECT_FALSE(limiter.write(mdagg::log::Level::error, "sim/timeout", "poll failed", {}, t0 + 1s));
    // Another key is independent.
    EXPECT_TRUE(limiter.write(mdagg::log::Level::error, "sim/connect", "poll failed", {}, t0 + 1s));
    // Next window: written again.
    EXPECT_TRUE(limiter.write(mdagg::log::Level::error, "sim/timeout", "poll failed", {}, t0 + 11s));
    // Below the level: neither written nor counted as written.
    EXPECT_FALSE(limiter.write(mdagg::log::Level::debug, "x", "quiet", {}, t0));
    mdagg::log::set_level(mdagg::log::Level::info);
}

TEST(LatencyHistogram, BucketsAreMonotonicAndBoundTheirValues) {
    for (std::int64_t us : {0LL, 1LL, 3LL, 4LL, 5LL, 7LL, 8LL, 100LL, 1000LL, 49999LL, 1000000LL}) {
        auto b = mdagg::LatencyHistogram::bucket_of(std::chrono::microseconds(us));
        EXPECT_GT(mdagg::LatencyHistogram::upper_bound(b), std::chrono::microseconds(us)) << us;
        if (b > 0) {
            EXPECT_LE(mdagg::LatencyHistogram::upper_bound(b - 1), std::chrono::microseconds(us)) << us;
        }
    }
    // Relative error of a bucket stays within 25%.
    auto b = mdagg::LatencyHistogram::bucket_of(10ms);
    auto ub = mdagg::LatencyHistogram::upper_bound(b);
    EXPECT_LE(ub, 12500us);
}

TEST(LatencyHistogram, QuantilesOfAKnownDistribution) {
    mdagg::LatencyHistogram h;
    for (int i = 0; i < 990; ++i) h.record(1ms);
    for (int i = 0; i < 10; ++i) h.record(40ms);
    auto s = h.snapshot();
    EXPECT_EQ(s.total, 1000u);
    EXPECT_LE(s.quantile(0.5), 1250us);
    EXPECT_GT(s.quantile(0.5), 1ms);
    EXPECT_LE(s.quantile(0.99), 1250us);   // the 990th value is still 1 ms
    EXPECT_GE(s.quantile(0.999), 40ms);
    auto later = h.snapshot();
    h.record(40ms);
    EXPECT_EQ(h.snapshot().since(later).total, 1u);
    EXPECT_EQ(mdagg::LatencyHistogram::Snapshot{}.quantile(0.5), std::chrono::nanoseconds(0));
}

// HostGuard (sans-io, time injected): token bucket, pauses, usage slow-down, circuit breaker;
// and the file that keeps server-requested pauses across a restart.
#include <mdagg/poll.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;

namespace {

using mdagg::Admission;
using mdagg::BreakerState;
using mdagg::HostGuard;
using mdagg::HostVerdict;
using mdagg::PauseReason;
using T = HostGuard::Clock::time_point;

mdagg::HostConfig host(double rate, double burst, std::uint32_t failures = 3) {
    mdagg::HostConfig h;
    h.host = "127.0.0.1";
    h.rate = rate;
    h.burst = burst;
    h.breaker.failures = failures;
    h.breaker.cooldown = 1s;
    h.breaker.max_cooldown = 4s;
    h.rate_limit_pause = 2s;
    h.ban_pause = 60s;
    h.max_pause = 10min;
    return h;
}

}  // namespace

TEST(HostGuard, TokenBucketAllowsTheBurstThenTheRate) {
    const auto cfg = host(10, 5);
    const T t0{};
    HostGuard g(cfg, t0);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(g.admit(t0, 1), Admission::go) << i;
    EXPECT_EQ(g.admit(t0, 1), Admission::throttled);
    // 10 tokens/s: one more every 100 ms, and never more than the burst.
    EXPECT_EQ(g.admit(t0 + 99ms, 1), Admission::throttled);
    EXPECT_EQ(g.admit(t0 + 100ms, 1), Admission::go);
    EXPECT_EQ(g.admit(t0 + 100ms, 1), Admission::throttled);
    int admitted = 0;
    for (int i = 0; i < 100; ++i) admitted += g.admit(t0 + 10s, 1) == Admission::go;
    EXPECT_EQ(admitted, 5);
    // A request's cost is taken whole: 2 tokens after 200 ms buy one weight-2 request.
    EXPECT_EQ(g.admit(t0 + 10s + 100ms, 2), Admission::throttled);
    EXPECT_EQ(g.admit(t0 + 10s + 200ms, 2), Admission::go);
}

TEST(HostGuard, ZeroRateMeansUnlimited) {
    const auto cfg = host(0, 1);
    HostGuard g(cfg, T{});
    for (int i = 0; i < 10000; ++i) ASSERT_EQ(g.admit(T{}, 1000), Admission::go);
}

TEST(HostGuard, PauseUsesTheSignalledOrConfiguredLengthNeverShortensAndIsCountedOnce) {
    const auto cfg = host(0, 1);
    const T t0{};
    HostGuard g(cfg, t0);
    g.pause(t0, PauseReason::rate_limited, std::nullopt);  // configured 2 s
    EXPECT_EQ(g.admit(t0 + 1999ms, 1), Admission::paused);
    // 2,000 pollers see the same 429: still one pause, and a shorter one does not cut it.
    g.pause(t0 + 1s, PauseReason::rate_limited, 0s);
    EXPECT_EQ(g.status(t0 + 1s).pauses_rate_limited, 1u);
    EXPECT_EQ(g.admit(t0 + 1999ms, 1), Admission::paused);
    EXPECT_EQ(g.admit(t0 + 2s, 1), Admission::go);
    EXPECT_EQ(g.status(t0 + 2s).pause, PauseReason::none);

    // A Retry-After is obeyed; a ban without one lasts ban_pause; max_pause caps both.
    g.pause(t0 + 10s, PauseReason::rate_limited, 7s);
    EXPECT_EQ(g.admit(t0 + 16s, 1), Admission::paused);
    EXPECT_EQ(g.admit(t0 + 17s, 1), Admission::go);
    g.pause(t0 + 20s, PauseReason::banned, std::nullopt);
    auto st = g.status(t0 + 20s);
    EXPECT_EQ(st.pause, PauseReason::banned);
    EXPECT_EQ(st.paused_until, t0 + 80s);
    EXPECT_EQ(st.pauses_banned, 1u);
    EXPECT_EQ(st.pauses_rate_limited, 2u);
    g.pause(t0 + 100s, PauseReason::banned, std::chrono::hours(72));
    EXPECT_EQ(g.status(t0 + 100s).paused_until, t0 + 100s + 10min);
    // A ban during a rate-limit pause upgrades the reason and extends it.
    HostGuard h(cfg, t0);
    h.pause(t0, PauseReason::rate_limited, 5s);
    h.pause(t0 + 1s, PauseReason::banned, 30s);
    st = h.status(t0 + 1s);
    EXPECT_EQ(st.pause, PauseReason::banned);
    EXPECT_EQ(st.paused_until, t0 + 31s);
}

TEST(HostGuard, BucketRefillsFromThePauseEndNotThroughIt) {
    const auto cfg = host(10, 10);
    const T t0{};
    HostGuard g(cfg, t0);
    g.pause(t0, PauseReason::rate_limited, 5s);
    EXPECT_EQ(g.admit(t0 + 5s, 1), Admission::throttled);  // no burst the moment it lifts
    EXPECT_EQ(g.admit(t0 + 5s + 100ms, 1), Admission::go);
}

TEST(HostGuard, AnExtendedPauseAlsoRefillsFromItsNewEnd) {
    const auto cfg = host(10, 10);
    const T t0{};
    HostGuard g(cfg, t0);
    g.pause(t0, PauseReason::rate_limited, 1s);
    g.pause(t0 + 500ms, PauseReason::banned, 60s);  // extends to t0 + 60.5 s
    EXPECT_EQ(g.admit(t0 + 60s, 1), Admission::paused);
    // No burst saved up from the first pause's end: one token 100 ms after the new end.
    EXPECT_EQ(g.admit(t0 + 60s + 500ms, 1), Admission::throttled);
    EXPECT_EQ(g.admit(t0 + 60s + 600ms, 1), Admission::go);
    EXPECT_EQ(g.admit(t0 + 60s + 600ms, 1), Admission::throttled);
}

TEST(HostGuard, UsageHeaderSlowsTheBucketBeforeTheLimit) {
    auto cfg = host(100, 1);
    cfg.usage = mdagg::HostConfig::Usage{"X-Used", 1000, 0.8};
    const T t0{};
    HostGuard g(cfg, t0);
    g.on_usage(500);
    EXPECT_EQ(g.status(t0).rate_factor, 1.0);
    g.on_usage(900);  // halfway from 800 to 1000: half speed
    EXPECT_DOUBLE_EQ(g.status(t0).rate_factor, 0.5);
    g.on_usage(5000);  // past the limit: crawl, never stop
    EXPECT_DOUBLE_EQ(g.status(t0).rate_factor, 0.05);
    // At 5% of 100/s a token takes 200 ms.
    EXPECT_EQ(g.admit(t0, 1), Admission::go);
    EXPECT_EQ(g.admit(t0 + 150ms, 1), Admission::throttled);
    EXPECT_EQ(g.admit(t0 + 200ms, 1), Admission::go);
    g.on_usage(0);  // the venue's window reset
    EXPECT_EQ(g.status(t0).rate_factor, 1.0);
}

TEST(HostGuard, BreakerOpensAfterConsecutiveFailuresAndProbesAfterCooldown) {
    const auto cfg = host(0, 1, 3);
    const T t0{};
    HostGuard g(cfg, t0);
    g.report(t0, HostVerdict::failing, false);
    g.report(t0, HostVerdict::failing, false);
    g.report(t0, HostVerdict::healthy, false);  // any success resets the run
    g.report(t0, HostVerdict::failing, false);
    g.report(t0, HostVerdict::neutral, false);  // no news is no reset
    g.report(t0, HostVerdict::failing, false);
    EXPECT_EQ(g.status(t0).breaker, BreakerState::closed);
    g.report(t0, HostVerdict::failing, false);
    EXPECT_EQ(g.status(t0).breaker, BreakerState::open);
    EXPECT_EQ(g.status(t0).breaker_opens, 1u);
    EXPECT_EQ(g.admit(t0 + 999ms, 1), Admission::breaker_open);
    // Polls admitted before it opened report late: neither closes nor re-opens it.
    g.report(t0 + 500ms, HostVerdict::healthy, false);
    g.report(t0 + 500ms, HostVerdict::failing, false);
    EXPECT_EQ(g.status(t0 + 500ms).breaker, BreakerState::open);
    EXPECT_EQ(g.status(t0 + 500ms).breaker_opens, 1u);

    // After the cooldown exactly one probe goes; the rest wait for its verdict.
    EXPECT_EQ(g.admit(t0 + 1s, 1), Admission::probe);
    EXPECT_EQ(g.status(t0 + 1s).breaker, BreakerState::half_open);
    EXPECT_EQ(g.admit(t0 + 1s, 1), Admission::breaker_open);
    // The probe fails: open again for twice as long (2 s), then 4 s, capped at 4 s.
    g.report(t0 + 1s, HostVerdict::failing, true);
    EXPECT_EQ(g.admit(t0 + 2999ms, 1), Admission::breaker_open);
    EXPECT_EQ(g.admit(t0 + 3s, 1), Admission::probe);
    g.report(t0 + 3s, HostVerdict::failing, true);
    EXPECT_EQ(g.admit(t0 + 6999ms, 1), Admission::breaker_open);
    EXPECT_EQ(g.admit(t0 + 7s, 1), Admission::probe);
    g.report(t0 + 7s, HostVerdict::failing, true);
    EXPECT_EQ(g.admit(t0 + 10999ms, 1), Admission::breaker_open);
    // A cancelled probe (drain, no verdict) lets the next tick probe again.
    EXPECT_EQ(g.admit(t0 + 11s, 1), Admission::probe);
    g.report(t0 + 11s, HostVerdict::neutral, true);
    EXPECT_EQ(g.admit(t0 + 11s, 1), Admission::probe);
    // The probe succeeds: closed, and the cooldown is back to its base.
    g.report(t0 + 11s, HostVerdict::healthy, true);
    EXPECT_EQ(g.status(t0 + 11s).breaker, BreakerState::closed);
    EXPECT_EQ(g.admit(t0 + 11s, 1), Admission::go);
    for (int i = 0; i < 3; ++i) g.report(t0 + 12s, HostVerdict::failing, false);
    EXPECT_EQ(g.admit(t0 + 12s + 999ms, 1), Admission::breaker_open);
    EXPECT_EQ(g.admit(t0 + 13s, 1), Admission::probe);
}

TEST(HostGuard, NoBreakerWhenFailuresIsZero) {
    const auto cfg = host(0, 1, 0);
    HostGuard g(cfg, T{});
    for (int i = 0; i < 1000; ++i) g.report(T{}, HostVerdict::failing, false);
    EXPECT_EQ(g.admit(T{}, 1), Admission::go);
}

TEST(HostGuard, PauseComesBeforeTheBucketAndTheProbe) {
    const auto cfg = host(10, 1, 1);
    const T t0{};
    HostGuard g(cfg, t0);
    g.report(t0, HostVerdict::failing, false);  // open until t0 + 1 s
    g.pause(t0, PauseReason::banned, 5s);
    // Paused: no token spent, no probe granted.
    EXPECT_EQ(g.admit(t0 + 2s, 1), Admission::paused);
    EXPECT_EQ(g.admit(t0 + 5s + 100ms, 1), Admission::probe);
    // A probe needs a token too.
    g.report(t0 + 5s + 100ms, HostVerdict::neutral, true);
    EXPECT_EQ(g.admit(t0 + 5s + 100ms, 1), Admission::throttled);
}

TEST(HostGuard, ScheduledDemandAddsTheHostsSources) {
    mdagg::Config c;
    mdagg::SourceConfig a, b, other;
    a.interval = 50ms;
    a.symbols.resize(100);
    a.cost = 2;
    b.interval = 1s;
    b.symbols.resize(10);
    other.interval = 1ms;
    other.symbols.resize(1);
    other.host = 1;
    c.sources = {a, b, other};
    EXPECT_DOUBLE_EQ(mdagg::scheduled_demand(c, 0), 100 * 2 / 0.05 + 10);
    EXPECT_DOUBLE_EQ(mdagg::scheduled_demand(c, 1), 1000);
}

// .mdagg-hosts.json: server-requested pauses that survive a restart.
TEST(HostPauseFile, PausesRoundTripThroughTheFileAndExpiredOnesAreDropped) {
    const auto dir = std::filesystem::temp_directory_path() / ("mdagg-hostpause-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto now = std::chrono::system_clock::now();
    const auto ms = [](auto t) { return std::chrono::floor<std::chrono::milliseconds>(t); };
    std::vector<mdagg::ServerPause> pauses{{"api.example.com", mdagg::PauseReason::banned, ms(now + 120s)},
                                           {"127.0.0.1:8081", mdagg::PauseReason::rate_limited, ms(now + 3s)}};
    {
        mdagg::HostPauseFile file(dir.string());
        EXPECT_TRUE(file.load(now).empty()) << "no file yet: no pauses";
        file.update(pauses);
    }  // the destructor writes what is pending
    EXPECT_FALSE(std::filesystem::exists(dir / ".mdagg-hosts.json.tmp"));
    {
        mdagg::HostPauseFile file(dir.string());
        EXPECT_EQ(file.load(now), pauses);
        // Read 10 s later, the rate limit has ended and only the ban remains.
        EXPECT_EQ(file.load(now + 10s), (std::vector<mdagg::ServerPause>{pauses[0]}));
        file.update({});  // every pause ended
    }
    EXPECT_TRUE(mdagg::HostPauseFile(dir.string()).load(now).empty());
    // A corrupt or foreign file is ignored (and logged), never fatal.
    for (const char* text : {"{not json", R"({"version":2,"hosts":[]})", R"({"version":1,"hosts":[{"host":"x"}]})",
                             R"({"version":1,"hosts":[{"host":"x","reason":"tired","until_unix_ms":1}]})"}) {
        { std::ofstream(dir / ".mdagg-hosts.json") << text; }
        EXPECT_TRUE(mdagg::HostPauseFile(dir.string()).load(now).empty()) << text;
        EXPECT_THROW(mdagg::HostPauseFile::parse(text, now), std::invalid_argument) << text;
    }
    std::filesystem::remove_all(dir);
}

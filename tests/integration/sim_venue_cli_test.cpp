// mdagg-sim as a venue: IPv6 listening, gzip answers (and a gzip body that inflates past a
// size), and the request headers and query parameters it reports with --record-headers.
#include "harness.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using harness::Process;
using harness::TempDir;

harness::CurlResult globoff_curl(const TempDir& dir, const std::string& name, std::vector<std::string> args) {
    args.insert(args.begin(), "--globoff");  // [::1] is an address, not a curl URL range
    return harness::curl(dir, name, std::move(args));
}

TEST(SimVenueCli, ListensOnIpv6LoopbackAndRecordsHeadersAndQuery) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--listen", "[::1]:0", "--symbols", "5", "--record-headers"});
    const auto listening = sim.process->wait_for_line("event", "listening", 1s);
    ASSERT_TRUE(listening);
    EXPECT_EQ((*listening)["host"], "::1");
    const std::string base = "http://[::1]:" + std::to_string(sim.port);

    auto quote = globoff_curl(dir, "curl-quote", {"-H", "X-MBX-APIKEY: the-api-key", "-H", "X-Token: tok",
                                          base + "/quotes/STOCK_2?apiKey=query-key&symbol=STOCK_2"});
    ASSERT_EQ(quote.exit, 0) << quote.err;
    EXPECT_EQ(nlohmann::json::parse(quote.out)["seq"], 1);
    // Nothing listens on 127.0.0.1 at that port.
    EXPECT_EQ(harness::http_request(sim.port, "GET", "/stats").status, 0);

    auto stats = globoff_curl(dir, "curl-stats", {base + "/stats"});
    ASSERT_EQ(stats.exit, 0) << stats.err;
    const auto j = nlohmann::json::parse(stats.out);
    EXPECT_EQ(j["headers"]["x-mbx-apikey"]["last"], "the-api-key");
    EXPECT_EQ(j["headers"]["x-mbx-apikey"]["count"], 1);
    EXPECT_EQ(j["headers"]["x-token"]["last"], "tok");
    EXPECT_EQ(j["headers"]["host"]["count"], 2);
    EXPECT_EQ(j["query"]["apiKey"]["last"], "query-key");
    EXPECT_EQ(j["query"]["symbol"]["last"], "STOCK_2");

    sim.process->signal(SIGTERM);
    ASSERT_EQ(sim.process->wait(10s), 0);
    EXPECT_EQ(sim.process->stdout_json().back()["headers"]["x-mbx-apikey"]["count"], 1);
}

TEST(SimVenueCli, WithoutRecordHeadersStatsHaveNoHeaders) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "2"});
    const auto stats = harness::http_request(sim.port, "GET", "/stats", {}, "X-Secret: s\r\n").json();
    EXPECT_FALSE(stats.contains("headers"));
    EXPECT_FALSE(stats.contains("query"));
}

TEST(SimVenueCli, AnswersGzipWhenAskedIncludingABodyThatInflatesPastASize) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "5"});
    const std::string base = "http://127.0.0.1:" + std::to_string(sim.port);

    auto raw = globoff_curl(dir, "curl-raw", {"-H", "Accept-Encoding: gzip", "-D", (dir / "raw.head").string(),
                                      base + "/quotes/STOCK_1"});
    ASSERT_EQ(raw.exit, 0) << raw.err;
    ASSERT_GE(raw.out.size(), 2u);
    EXPECT_EQ(static_cast<unsigned char>(raw.out[0]), 0x1f);  // the gzip magic
    EXPECT_EQ(static_cast<unsigned char>(raw.out[1]), 0x8b);
    auto inflated = globoff_curl(dir, "curl-inflated", {"--compressed", base + "/quotes/STOCK_1"});
    ASSERT_EQ(inflated.exit, 0) << inflated.err;
    EXPECT_EQ(nlohmann::json::parse(inflated.out)["seq"], 2);
    auto plain = globoff_curl(dir, "curl-plain", {base + "/quotes/STOCK_1"});
    EXPECT_EQ(nlohmann::json::parse(plain.out)["seq"], 3);  // not asked: not compressed

    harness::sim_add_fault(sim.port, {{"kind", "oversized"}, {"size", 1048576}, {"symbols", {"STOCK_4"}}});
    auto bomb = globoff_curl(dir, "curl-bomb", {"-H", "Accept-Encoding: gzip", base + "/quotes/STOCK_4"});
    ASSERT_EQ(bomb.exit, 0) << bomb.err;
    EXPECT_LT(bomb.out.size(), 16u * 1024);  // small on the wire ...
    auto bomb_inflated = globoff_curl(dir, "curl-bomb-inflated", {"--compressed", base + "/quotes/STOCK_4"});
    EXPECT_EQ(bomb_inflated.out.size(), 1048576u);  // ... 1 MiB once inflated

    const auto stats = harness::http_request(sim.port, "GET", "/stats").json();
    EXPECT_EQ(stats["gzip_responses"], 4);
    EXPECT_EQ(stats["faults"]["oversized"], 2);
}

}  // namespace

// Presets with the real binaries: `mdagg --check-config FILE --print` (the expansion, no secret
// in it, and what it prints passes --check-config as it is), and a preset source polling the
// simulator end to end.
#include "harness.hpp"
#include "output_checks.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <thread>

using namespace harness;
using namespace std::chrono_literals;

namespace {

struct CliRun {
    int code = -1;
    std::string out, err;
};

CliRun mdagg(const TempDir& dir, const std::string& name, std::vector<std::string> args) {
    args.insert(args.begin(), MDAGG_BIN);
    Process p(name, args, dir.path());
    const auto code = p.wait(20s);
    return {code ? *code : -1, p.stdout_text(), p.stderr_text()};
}

constexpr const char* config = R"(sources:
  - name: binance
    preset: binance_book_ticker
    interval: 1s
    symbols: [BTCUSDT, ETHUSDT]
  - name: poly
    preset: polygon_last_quote
    interval: 20s
    symbols: [AAPL]
hosts:
  - host: api.polygon.io
    rate: 50
output: { dir: ./out }
)";

}  // namespace

TEST(PresetsCli, PrintShowsTheExpansionWithoutSecretsAndItChecksAsItIs) {
    TempDir dir;
    const fs::path path = dir / "presets.yaml";
    std::ofstream(path) << config;
    ::setenv("POLYGON_API_KEY", "polygon-secret-value-77", 1);

    const CliRun plain = mdagg(dir, "check", {"--check-config", path.string()});
    ASSERT_EQ(plain.code, 0) << plain.err;
    EXPECT_NE(plain.out.find("ok (2 sources, 3 pollers)"), std::string::npos) << plain.out;

    const CliRun printed = mdagg(dir, "print", {"--check-config", path.string(), "--print"});
    ASSERT_EQ(printed.code, 0) << printed.err;
    const std::string& yaml = printed.out;
    EXPECT_EQ(yaml.find("polygon-secret-value-77"), std::string::npos) << yaml;
    EXPECT_EQ(printed.err.find("polygon-secret-value-77"), std::string::npos) << printed.err;
    for (const char* expected :
         {"https://api.binance.com/api/v3/ticker/bookTicker?symbol={symbol}", "X-MBX-USED-WEIGHT-1M",
          "bid: /bidPrice", "apiKey={env:POLYGON_API_KEY}", "host: api.binance.com", "rate: 50",
          "# sources[0] (binance) from preset binance_book_ticker: url cost accept_encoding success fields"})
        EXPECT_NE(yaml.find(expected), std::string::npos) << expected << " not in\n" << yaml;

    const fs::path again = dir / "printed.yaml";
    std::ofstream(again) << yaml;
    const CliRun recheck = mdagg(dir, "recheck", {"--check-config", again.string()});
    EXPECT_EQ(recheck.code, 0) << recheck.err << yaml;
    EXPECT_NE(recheck.out.find("ok (2 sources, 3 pollers)"), std::string::npos) << recheck.out;
    ::unsetenv("POLYGON_API_KEY");
}

TEST(PresetsCli, UnknownPresetAndMisusedPrintExitTwo) {
    TempDir dir;
    const fs::path path = dir / "bad.yaml";
    std::ofstream(path) << "sources:\n  - name: x\n    preset: coinbase_tickers\n    interval: 1s\n    symbols: [BTC-USD]\n";
    const CliRun bad = mdagg(dir, "bad", {"--check-config", path.string(), "--print"});
    EXPECT_EQ(bad.code, 2);
    EXPECT_EQ(bad.out, "");
    EXPECT_NE(bad.err.find(path.string() + ":3:13: sources[0].preset: unknown preset \"coinbase_tickers\"; did you mean "
                                           "\"coinbase_ticker\"?"),
              std::string::npos)
        << bad.err;

    const CliRun misuse = mdagg(dir, "misuse", {"--config", path.string(), "--print"});
    EXPECT_EQ(misuse.code, 2);
    EXPECT_NE(misuse.err.find("--print goes with --check-config FILE"), std::string::npos) << misuse.err;
}

// The simulator answers Binance's bookTicker shape: with only its url overridden, the preset's
// fields, symbol check and gzip reach the pollers, and every answer becomes one quote record.
TEST(PresetsCli, ABinancePresetSourcePollsTheSimulator) {
    TempDir dir;
    auto sim = start_sim(dir.path(), {"--symbols", "5"});
    const fs::path path = dir / "mdagg.yaml";
    std::ofstream(path) << "output: { dir: " << (dir / "out").string() << ", flush_every: 200ms }\n"
                        << "sources:\n  - name: binance\n    preset: binance_book_ticker\n"
                        << "    url: \"http://127.0.0.1:" << sim.port << "/quotes/{symbol}\"\n"
                        << "    interval: 200ms\n    symbols: { prefix: STOCK_, count: 5 }\n";
    auto daemon = start_daemon(dir, path);
    EXPECT_TRUE(wait_until([&] { return sim_stats(sim.port)["responses"].get<int>() >= 40; }, 20s));
    daemon->signal(SIGTERM);
    ASSERT_EQ(daemon->wait(10s), 0) << daemon->stdout_text();

    const auto stats = sim_stats(sim.port);
    std::size_t quotes = 0;
    std::set<std::string> symbols;
    for (const auto& file : read_output(dir / "out"))
        for (const auto& r : file.records) {
            if (r.value("type", "") != "quote") continue;
            ++quotes;
            EXPECT_EQ(r.value("source", ""), "binance");
            EXPECT_FALSE(r.value("bid", "").empty()) << r.dump();
            EXPECT_FALSE(r.value("ask_size", "").empty()) << r.dump();  // mapped by the preset
            symbols.insert(r.value("symbol", ""));
        }
    EXPECT_GE(quotes, 40u);
    EXPECT_EQ(stats["responses"].get<std::size_t>(), quotes);
    EXPECT_EQ(stats["gzip_responses"].get<std::size_t>(), quotes) << "the preset asks for gzip";
    EXPECT_EQ(symbols.size(), 5u);
}

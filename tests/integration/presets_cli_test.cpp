// `mdagg --check-config FILE --print` with the real binary: the expansion of the presets, no
// secret in it, and what it prints passes --check-config as it is.
#include "harness.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

using namespace harness;
using namespace std::chrono_literals;

namespace {

struct Run {
    int code = -1;
    std::string out, err;
};

Run mdagg(const TempDir& dir, const std::string& name, std::vector<std::string> args) {
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

    const Run plain = mdagg(dir, "check", {"--check-config", path.string()});
    ASSERT_EQ(plain.code, 0) << plain.err;
    EXPECT_NE(plain.out.find("ok (2 sources, 3 pollers)"), std::string::npos) << plain.out;

    const Run printed = mdagg(dir, "print", {"--check-config", path.string(), "--print"});
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
    const Run recheck = mdagg(dir, "recheck", {"--check-config", again.string()});
    EXPECT_EQ(recheck.code, 0) << recheck.err << yaml;
    EXPECT_NE(recheck.out.find("ok (2 sources, 3 pollers)"), std::string::npos) << recheck.out;
    ::unsetenv("POLYGON_API_KEY");
}

TEST(PresetsCli, UnknownPresetAndMisusedPrintExitTwo) {
    TempDir dir;
    const fs::path path = dir / "bad.yaml";
    std::ofstream(path) << "sources:\n  - name: x\n    preset: coinbase_tickers\n    interval: 1s\n    symbols: [BTC-USD]\n";
    const Run bad = mdagg(dir, "bad", {"--check-config", path.string(), "--print"});
    EXPECT_EQ(bad.code, 2);
    EXPECT_EQ(bad.out, "");
    EXPECT_NE(bad.err.find(path.string() + ":3:13: sources[0].preset: unknown preset \"coinbase_tickers\"; did you mean "
                                           "\"coinbase_ticker\"?"),
              std::string::npos)
        << bad.err;

    const Run misuse = mdagg(dir, "misuse", {"--config", path.string(), "--print"});
    EXPECT_EQ(misuse.code, 2);
    EXPECT_NE(misuse.err.find("--print goes with --check-config FILE"), std::string::npos) << misuse.err;
}

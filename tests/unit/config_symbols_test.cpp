// Canonical symbols across venues: `symbols:` entries { name, venue } and `symbol_map: PATH`.
#include "config_test_helpers.hpp"

#include <algorithm>

namespace mdagg {
namespace {

// One source; `symbols` is the text after "    " on line 5 (symbols: ... or symbol_map: ...).
// Line 5's value starts at column 14 for "symbols: " and 17 for "symbol_map: ".
std::string source_with(std::string_view line5, std::string_view extra = "") {
    return std::string(R"(sources:
  - name: okx
    url: "http://127.0.0.1:8081/api/v5/market/ticker?instId={symbol}"
    interval: 50ms
    )") + std::string(line5) + "\n    fields: {bid: /bid, ask: /ask}\n" + std::string(extra);
}

TEST(ConfigSymbols, PlainEntryIsBothNamesAndMappedEntrySplitsThem) {
    const Config c = parse(source_with("symbols: [ETH-USDT, { name: BTC-USD, venue: BTC-USDT }]"));
    const SourceConfig& s = c.sources[0];
    EXPECT_EQ(s.symbols, (std::vector<std::string>{"ETH-USDT", "BTC-USD"}));
    EXPECT_EQ(s.venue_symbol("BTC-USD"), "BTC-USDT");
    EXPECT_EQ(s.venue_symbol("ETH-USDT"), "ETH-USDT");
    EXPECT_EQ(s.venue_symbols.size(), 1u) << "only names that differ are stored";
    // The request asks the venue by its own name.
    EXPECT_EQ(s.url.target_for(s.venue_symbol("BTC-USD")), "/api/v5/market/ticker?instId=BTC-USDT");
}

TEST(ConfigSymbols, VenueEqualToTheNameStoresNothingAndTagsStillApply) {
    const Config c = parse(source_with("symbols: [{ name: BTC-USD, venue: BTC-USD, tags: [majors] }, { name: X, tags: [t] }]"));
    const SourceConfig& s = c.sources[0];
    EXPECT_TRUE(s.venue_symbols.empty());
    EXPECT_TRUE(s.has_tag("BTC-USD", "majors"));
    EXPECT_TRUE(s.has_tag("X", "t"));
}

TEST(ConfigSymbols, OneVenueNameTwiceInAListIsAnError) {
    EXPECT_EQ(error_of(source_with("symbols: [BTC-USDT, { name: BTC-USD, venue: BTC-USDT }]")),
              "t.yaml:5:25: sources[0].symbols[1]: venue name \"BTC-USDT\" is already polled for "
              "sources[0].symbols[0]");
    EXPECT_EQ(error_of(source_with("symbols: [{ name: A, venue: V }, { name: B, venue: V }]")),
              "t.yaml:5:38: sources[0].symbols[1]: venue name \"V\" is already polled for sources[0].symbols[0]");
}

TEST(ConfigSymbols, VenueNameIsCheckedLikeASymbol) {
    EXPECT_EQ(error_of(source_with("symbols: [{ name: A, venue: \"a b\" }]")),
              "t.yaml:5:33: sources[0].symbols[0].venue: invalid character ' ' in symbol \"a b\"; "
              "allowed: A-Z a-z 0-9 . _ : / -");
}

TEST(ConfigSymbols, SymbolsOrSymbolMapIsRequired) {
    EXPECT_EQ(error_of(source_with("timeout: 50ms")),
              "t.yaml:2:5: sources[0].symbols: required key is missing (or give symbol_map: PATH)");
}

TEST(ConfigSymbols, SymbolMapAloneSuppliesTheListInFileOrder) {
    TempFile dir;
    const auto path = dir.write("okx.csv",
                                "name,venue\r\n# canonical,venue\r\n\r\nBTC-USD,BTC-USDT\r\n ETH-USD , ETH-USDT \r\nSOL-USDT,SOL-USDT\r\n");
    const Config c = parse(source_with(std::string("symbol_map: ") + path.string()));
    const SourceConfig& s = c.sources[0];
    EXPECT_EQ(s.symbols, (std::vector<std::string>{"BTC-USD", "ETH-USD", "SOL-USDT"}));
    EXPECT_EQ(s.venue_symbol("BTC-USD"), "BTC-USDT");
    EXPECT_EQ(s.venue_symbol("ETH-USD"), "ETH-USDT");
    EXPECT_EQ(s.venue_symbols.size(), 2u);
    EXPECT_EQ(s.symbol_map, path.string());
    EXPECT_EQ(s.max_in_flight, 3u) << "defaults to the symbol count the map gave";
}

TEST(ConfigSymbols, SymbolMapNamesTheVenueOfListedSymbolsAndAnExplicitVenueWins) {
    TempFile dir;
    const auto path = dir.write("m.csv", "BTC-USD,BTCUSDT\nETH-USD,ETHUSDT\nDOGE-USD,DOGEUSDT\nXRP-USD,XRPUSDT\n");
    const Config c = parse(source_with("symbols: [BTC-USD, { name: ETH-USD, venue: ETH-X }, LTC-USD, XRP-USD]",
                                       std::string("    symbol_map: ") + path.string() + "\n"));
    const SourceConfig& s = c.sources[0];
    EXPECT_EQ(s.symbols, (std::vector<std::string>{"BTC-USD", "ETH-USD", "LTC-USD", "XRP-USD"}))
        << "the list decides what is polled; DOGE-USD is only in the map";
    EXPECT_EQ(s.venue_symbol("BTC-USD"), "BTCUSDT");
    EXPECT_EQ(s.venue_symbol("ETH-USD"), "ETH-X");
    EXPECT_EQ(s.venue_symbol("LTC-USD"), "LTC-USD") << "not in the map: polled by its own name";
    EXPECT_EQ(s.venue_symbol("XRP-USD"), "XRPUSDT");
}

TEST(ConfigSymbols, SymbolMapNamesTheVenueOfARange) {
    TempFile dir;
    const auto path = dir.write("m.csv", "S1,venue-one\n");
    const Config c = parse(source_with("symbols: { prefix: S, count: 3 }", std::string("    symbol_map: ") + path.string() + "\n"));
    EXPECT_EQ(c.sources[0].symbols, (std::vector<std::string>{"S0", "S1", "S2"}));
    EXPECT_EQ(c.sources[0].venue_symbol("S1"), "venue-one");
    EXPECT_EQ(c.sources[0].venue_symbols.size(), 1u);
}

// The CSV's problems point into the CSV: file:line:col, then the key.
TEST(ConfigSymbols, SymbolMapErrorsNameTheFileLineAndColumn) {
    TempFile dir;
    const auto error_for = [&](const std::string& csv) {
        const auto path = dir.write("bad.csv", csv);
        return error_of(source_with(std::string("symbol_map: ") + path.string()));
    };
    const std::string at = (dir.dir / "bad.csv").string();
    EXPECT_EQ(error_for("A,a\nB\n"), at + ":2:1: sources[0].symbol_map: expected \"name,venue\", found no comma");
    EXPECT_EQ(error_for("A,a,x\n"), at + ":1:4: sources[0].symbol_map: expected \"name,venue\", found a second comma");
    EXPECT_EQ(error_for("A,a\n ,b\n"), at + ":2:2: sources[0].symbol_map: empty name; expected \"name,venue\"");
    EXPECT_EQ(error_for("A,a\nB,  \n"), at + ":2:5: sources[0].symbol_map: empty venue; expected \"name,venue\"");
    EXPECT_EQ(error_for("A,a\nB,b\nA,c\n"), at + ":3:1: sources[0].symbol_map: duplicate name \"A\", already on line 1");
    EXPECT_EQ(error_for("A,a\nB,b\nC,a\n"), at + ":3:3: sources[0].symbol_map: duplicate venue \"a\", already on line 1");
    EXPECT_EQ(error_for("A,a b\n"),
              at + ":1:3: sources[0].symbol_map: venue: invalid character ' ' in symbol \"a b\"; allowed: A-Z a-z 0-9 . _ : / -");
}

TEST(ConfigSymbols, AHeaderAloneHoldsNoSymbols) {
    TempFile dir;
    const auto path = dir.write("empty.csv", "name,venue\n# none yet\n");
    EXPECT_EQ(error_of(source_with(std::string("symbol_map: ") + path.string())),
              std::string("t.yaml:5:17: sources[0].symbol_map: \"") + path.string() + "\" holds no symbols");
}

TEST(ConfigSymbols, AnUnreadableSymbolMapIsAnErrorAtItsKey) {
    TempFile dir;
    const std::string missing = (dir.dir / "missing.csv").string();
    EXPECT_EQ(error_of(source_with(std::string("symbol_map: ") + missing)),
              std::string("t.yaml:5:17: sources[0].symbol_map: cannot read \"") + missing + "\": No such file or directory");
    EXPECT_EQ(error_of(source_with(std::string("symbol_map: ") + dir.dir.string())),
              std::string("t.yaml:5:17: sources[0].symbol_map: cannot read \"") + dir.dir.string() + "\": Is a directory");
}

TEST(ConfigSymbols, AMappedVenueNameThatAnotherListedSymbolPollsIsAnError) {
    TempFile dir;
    const auto path = dir.write("m.csv", "BTC-USD,BTCUSDT\n");
    EXPECT_EQ(error_of(source_with("symbols: [BTCUSDT, BTC-USD]", std::string("    symbol_map: ") + path.string() + "\n")),
              std::string("t.yaml:7:17: sources[0].symbol_map: venue name \"BTCUSDT\" (line 1 of \"") + path.string() +
                  "\") would be polled for both \"BTCUSDT\" and \"BTC-USD\"");
}

// One instrument lands on one replica whatever each venue calls it: the shard is the
// canonical name's.
TEST(ConfigSymbols, ShardingGoesByTheCanonicalName) {
    std::string yaml = "sources:\n";
    const std::vector<std::string> venues = {"BTCUSDT", "BTC-USDT", "XBTUSD"};
    int n = 0;
    for (const std::string& venue : venues) {
        yaml += std::string("  - name: v") + std::to_string(n++) + "\n";
        yaml += "    url: \"http://127.0.0.1:8081/q/{symbol}\"\n    interval: 1s\n";
        yaml += std::string("    symbols: [{ name: BTC-USD, venue: ") + venue + " }, ETH-USD, SOL-USD, ADA-USD]\n";
        yaml += "    fields: {bid: /b, ask: /a}\n";
    }
    constexpr std::uint32_t shards = 3;
    for (std::uint32_t index = 0; index < shards; ++index) {
        Config c = parse(yaml);
        ShardingEnv env;
        env.index = std::to_string(index);
        env.count = std::to_string(shards);
        apply_sharding(c, env);
        const bool here = shard_of("BTC-USD", shards) == index;
        for (std::size_t i = 0; i < c.sources.size(); ++i) {
            const SourceConfig& s = c.sources[i];
            EXPECT_EQ(std::count(s.symbols.begin(), s.symbols.end(), "BTC-USD"), here ? 1 : 0) << s.name;
            if (here) {
                EXPECT_EQ(s.venue_symbol("BTC-USD"), venues[i]) << "keeps its venue name";
            }
        }
    }
}

TEST(ConfigSymbols, TheNewKeysHaveReloadRules) {
    const auto keys = config_schema_keys();
    for (std::string_view key : {"sources[].symbol_map", "sources[].symbols[].venue"}) {
        EXPECT_NE(std::find(keys.begin(), keys.end(), key), keys.end()) << key;
        const auto& rules = reload_rules();
        EXPECT_EQ(std::count_if(rules.begin(), rules.end(), [&](const ReloadRule& r) { return r.key == key; }), 1) << key;
    }
}

// A map edited between two loads gives the new names (SIGHUP reads it again).
TEST(ConfigSymbols, TheMapIsReadAtEveryLoad) {
    TempFile dir;
    const auto path = dir.write("m.csv", "BTC-USD,BTCUSDT\n");
    const std::string yaml = source_with(std::string("symbol_map: ") + path.string());
    EXPECT_EQ(parse(yaml).sources[0].venue_symbol("BTC-USD"), "BTCUSDT");
    dir.write("m.csv", "BTC-USD,XBTUSD\n");
    EXPECT_EQ(parse(yaml).sources[0].venue_symbol("BTC-USD"), "XBTUSD");
}

}  // namespace
}  // namespace mdagg

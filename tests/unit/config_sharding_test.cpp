// Sharding across replicas: the shard function and its environment.
#include "config_test_helpers.hpp"

namespace mdagg {
namespace {

TEST(Sharding, Fnv1a64MatchesTheReferenceVectors) {
    // From the FNV reference test suite; the hash is part of the deployment contract.
    EXPECT_EQ(fnv1a_64(""), 0xcbf29ce484222325u);
    EXPECT_EQ(fnv1a_64("a"), 0xaf63dc4c8601ec8cu);
    EXPECT_EQ(fnv1a_64("foobar"), 0x85944171f73967e8u);
}

TEST(Sharding, ShardIsTheHashOfTheNameModTheCount) {
    EXPECT_EQ(shard_of("AAPL", 1), 0u);
    EXPECT_EQ(shard_of("foobar", 7), static_cast<std::uint32_t>(0x85944171f73967e8u % 7));
    EXPECT_EQ(shard_of("a", 1000), static_cast<std::uint32_t>(0xaf63dc4c8601ec8cu % 1000));
}

TEST(Sharding, SectionParses) {
    Config c = parse(append("sharding: {index: 2, count: 3}\n"));
    EXPECT_EQ(c.sharding.index, 2u);
    EXPECT_EQ(c.sharding.count, 3u);
    EXPECT_FALSE(c.sharding.index_from_hostname);
    c = parse(append("sharding: {index: auto, count: 4}\n"));
    EXPECT_TRUE(c.sharding.index_from_hostname);
    EXPECT_EQ(c.sharding.count, 4u);
    c = parse(minimal);
    EXPECT_EQ(c.sharding.index, 0u);
    EXPECT_EQ(c.sharding.count, 1u);
}

// Three sources' worth of symbols: a shared name must land on one shard from every source.
constexpr std::string_view two_sources = R"(sources:
  - name: a
    url: "http://127.0.0.1:8081/quotes/{symbol}"
    interval: 50ms
    symbols: {prefix: S, count: 1000}
    fields: {bid: /bid, ask: /ask}
  - name: b
    url: "http://127.0.0.1:8082/quotes/{symbol}"
    interval: 50ms
    symbols: {prefix: S, count: 500, start: 500}
    fields: {bid: /bid, ask: /ask}
)";

ShardingEnv env_of(std::optional<std::string> index, std::optional<std::string> count,
                   std::string hostname = "host") {
    return ShardingEnv{std::move(index), std::move(count), std::move(hostname)};
}

std::string sharding_error(std::string_view yaml, const ShardingEnv& env) {
    try {
        Config c = parse(yaml);
        apply_sharding(c, env);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "(no error)";
}

TEST(Sharding, ShardsPartitionTheSymbolsAndKeepEverySourceOfASymbolTogether) {
    std::map<std::string, int> shard_of_symbol;
    std::size_t pollers = 0;
    for (std::uint32_t index = 0; index < 3; ++index) {
        Config c = parse(two_sources);
        auto r = apply_sharding(c, env_of(std::to_string(index), "3"));
        EXPECT_EQ(c.sharding.index, index);
        EXPECT_EQ(r.symbols_total, 1000u);
        // FNV-1a spreads these names evenly: within 15% of a third each.
        EXPECT_GT(r.symbols_kept, 283u);
        EXPECT_LT(r.symbols_kept, 383u);
        std::set<std::string> in_a(c.sources[0].symbols.begin(), c.sources[0].symbols.end());
        for (auto& s : c.sources[1].symbols)
            EXPECT_TRUE(in_a.count(s)) << s << " is on shard " << index << " for b but not for a";
        for (auto& s : c.sources[0].symbols) {
            EXPECT_EQ(shard_of(s, 3), index);
            EXPECT_TRUE(shard_of_symbol.emplace(s, index).second) << s << " is on two shards";
        }
        EXPECT_EQ(r.pollers_kept, c.sources[0].symbols.size() + c.sources[1].symbols.size());
        pollers += r.pollers_kept;
    }
    EXPECT_EQ(shard_of_symbol.size(), 1000u) << "every symbol is on exactly one shard";
    EXPECT_EQ(pollers, 1500u);
}

TEST(Sharding, BreakerThresholdsCountThisReplicasPollers) {
    Config c = parse(std::string(two_sources) + "hosts:\n  - host: \"127.0.0.1:8082\"\n    breaker: { failures: 7 }\n");
    ASSERT_EQ(c.hosts.size(), 2u);
    EXPECT_EQ(c.hosts[1].breaker.failures, 1000u);  // source a's host: a default entry
    apply_sharding(c, env_of("1", "3"));
    EXPECT_EQ(c.hosts[1].breaker.failures, c.sources[0].symbols.size());
    EXPECT_EQ(c.hosts[0].breaker.failures, 7u);  // set in the file: kept
}

TEST(Sharding, OneShardKeepsEverything) {
    Config c = parse(two_sources);
    auto r = apply_sharding(c, env_of(std::nullopt, std::nullopt));
    EXPECT_EQ(r.symbols_kept, 1000u);
    EXPECT_EQ(r.pollers_kept, 1500u);
    EXPECT_EQ(c.sources[1].symbols.front(), "S500");
}

TEST(Sharding, EnvironmentOverridesTheFile) {
    Config c = parse(append("sharding: {index: 0, count: 2}\n"));
    apply_sharding(c, env_of("4", "5"));
    EXPECT_EQ(c.sharding.index, 4u);
    EXPECT_EQ(c.sharding.count, 5u);
    c = parse(append("sharding: {index: 1, count: 2}\n"));
    apply_sharding(c, env_of(std::nullopt, "4"));  // the file's index, the environment's count
    EXPECT_EQ(c.sharding.index, 1u);
    EXPECT_EQ(c.sharding.count, 4u);
}

TEST(Sharding, IndexAutoTakesTheStatefulSetOrdinalFromTheHostName) {
    Config c = parse(append("sharding: {index: auto, count: 3}\n"));
    apply_sharding(c, env_of(std::nullopt, std::nullopt, "mdagg-2"));
    EXPECT_EQ(c.sharding.index, 2u);
    c = parse(minimal);
    apply_sharding(c, env_of("auto", "12", "md-agg-prod-11"));
    EXPECT_EQ(c.sharding.index, 11u);
    EXPECT_EQ(sharding_error(minimal, env_of("auto", "3", "mdagg")),
              "sharding: SHARD_INDEX is \"auto\" but the host name \"mdagg\" does not end in -<ordinal> "
              "as a StatefulSet pod's does (mdagg-0, mdagg-1, ...)");
    EXPECT_NE(sharding_error(append("sharding: {index: auto, count: 3}\n"), env_of(std::nullopt, std::nullopt, "mdagg-x"))
                  .find("sharding.index is \"auto\" but the host name \"mdagg-x\""),
              std::string::npos);
    EXPECT_EQ(sharding_error(minimal, env_of("auto", "3", "mdagg-3")),
              "sharding: index 3 (from the ordinal of host name \"mdagg-3\") must be less than the shard "
              "count 3 (from SHARD_COUNT)");
}

TEST(Sharding, BadEnvironmentValuesNameTheVariable) {
    for (std::string bad : {"", "0", "-1", "+2", "3x", " 3", "03", "100001", "99999999999999999999999"})
        EXPECT_EQ(sharding_error(minimal, env_of(std::nullopt, bad)),
                  "SHARD_COUNT=\"" + bad + "\": expected a shard count from 1 to 100000");
    for (std::string bad : {"", "-1", "one", "01", "AUTO"})
        EXPECT_EQ(sharding_error(minimal, env_of(bad, "4")),
                  "SHARD_INDEX=\"" + bad + "\": expected a shard index (0, 1, ...) or \"auto\"");
    EXPECT_EQ(sharding_error(minimal, env_of("3", "3")),
              "sharding: index 3 (from SHARD_INDEX) must be less than the shard count 3 (from SHARD_COUNT)");
    EXPECT_EQ(sharding_error(append("sharding: {index: 2, count: 3}\n"), env_of(std::nullopt, "2")),
              "sharding: index 2 (from sharding.index in t.yaml) must be less than the shard count 2 "
              "(from SHARD_COUNT)");
    EXPECT_EQ(sharding_error(minimal, env_of("1", std::nullopt)),
              "sharding: index 1 (from SHARD_INDEX) must be less than the shard count 1 (from "
              "sharding.count in t.yaml, 1 when absent)");
}

TEST(Sharding, AShardWithNoSymbolsKeepsItsSourcesEmpty) {
    // Of AAPL and MSFT, find a shard of 50 that holds neither.
    std::uint32_t empty = 0;
    while (empty == shard_of("AAPL", 50) || empty == shard_of("MSFT", 50)) ++empty;
    Config c = parse(minimal);
    auto r = apply_sharding(c, env_of(std::to_string(empty), "50"));
    EXPECT_EQ(r.symbols_kept, 0u);
    EXPECT_EQ(r.pollers_kept, 0u);
    ASSERT_EQ(c.sources.size(), 1u) << "sources stay, so their ids and names do too";
    EXPECT_TRUE(c.sources[0].symbols.empty());
}

}  // namespace
}  // namespace mdagg

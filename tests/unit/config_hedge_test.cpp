// `mirrors:`, `hedge:` and `priority:` of a source (issue 15): what they parse into and the
// file:line:col errors for every bad input.
#include "config_test_helpers.hpp"

namespace mdagg {
namespace {

// `minimal` (lines 1-6) plus source keys from line 7.
std::string with(std::string_view lines) { return append(lines); }

TEST(ConfigHedge, MirrorsGetTheirOwnHostEntries) {
    auto c = parse(with("    mirrors:\n"
                        "      - \"http://127.0.0.2:8081/quotes/{symbol}\"\n"
                        "      - \"http://127.0.0.3:9000/q/{symbol}\"\n"
                        "hosts:\n  - host: 127.0.0.2\n    rate: 7\n"));
    const auto& s = c.sources.at(0);
    ASSERT_EQ(s.mirrors.size(), 2u);
    EXPECT_EQ(s.mirrors[0].url.host, "127.0.0.2");
    EXPECT_EQ(s.mirrors[1].url.port, 9000);
    EXPECT_EQ(s.mirrors[1].url.target_for("X"), "/q/X");
    EXPECT_EQ(c.hosts.at(s.mirrors[0].host).rate, 7);  // the hosts entry applies to the mirror
    EXPECT_NE(s.mirrors[1].host, s.host);
    EXPECT_EQ(c.hosts.at(s.mirrors[1].host).host, "127.0.0.3");
    EXPECT_FALSE(s.hedge.enabled);
    // A mirror's host breaker counts the pollers that may fail over to it (at least 5).
    EXPECT_EQ(c.hosts.at(s.mirrors[1].host).breaker.failures, 5u);
}

TEST(ConfigHedge, HedgeAfterADurationOrAPercentile) {
    const std::string mirrors = "    mirrors: [\"http://127.0.0.2:8081/quotes/{symbol}\"]\n";
    auto fixed = parse(with(mirrors + "    hedge: { after: 20ms, max_extra: 5% }\n"));
    EXPECT_TRUE(fixed.sources[0].hedge.enabled);
    EXPECT_EQ(fixed.sources[0].hedge.after, 20ms);
    EXPECT_EQ(fixed.sources[0].hedge.percentile, 0);
    EXPECT_DOUBLE_EQ(fixed.sources[0].hedge.max_extra, 0.05);
    auto p95 = parse(with(mirrors + "    hedge: { after: p95, max_extra: 0.5% }\n"));
    EXPECT_EQ(p95.sources[0].hedge.percentile, 95);
    EXPECT_DOUBLE_EQ(p95.sources[0].hedge.max_extra, 0.005);
    auto defaults = parse(with(mirrors + "    hedge: { after: p99 }\n"));
    EXPECT_DOUBLE_EQ(defaults.sources[0].hedge.max_extra, 0.05);
}

TEST(ConfigHedge, PriorityFromSourceSymbolEntryAndTag) {
    auto c = parse(R"(sources:
  - name: sim
    url: "http://127.0.0.1:8081/quotes/{symbol}"
    interval: 50ms
    priority: { default: 7, tags: { majors: 2, fx: 4 } }
    symbols:
      - { name: BTC, tags: [majors], priority: 1 }
      - { name: ETH, tags: [majors, fx] }
      - { name: EUR, tags: [fx] }
      - DOGE
    fields: {bid: /bid, ask: /ask}
)");
    const auto& s = c.sources[0];
    EXPECT_EQ(s.priority_of("BTC"), 1);  // its own entry wins
    EXPECT_EQ(s.priority_of("ETH"), 2);  // the highest of its tags
    EXPECT_EQ(s.priority_of("EUR"), 4);
    EXPECT_EQ(s.priority_of("DOGE"), 7);
    EXPECT_EQ(parse(with("    priority: 3\n")).sources[0].priority_of("AAPL"), 3);
    EXPECT_EQ(parse(minimal).sources[0].priority_of("AAPL"), 5);
}

TEST(ConfigHedge, BadInputsNameFileLineAndColumn) {
    const std::string mirror = "    mirrors: [\"http://127.0.0.2:8081/quotes/{symbol}\"]\n";
    const std::pair<std::string, std::string> cases[] = {
        {"    mirrors: []\n", "t.yaml:7:14: sources[0].mirrors: must list at least one mirror URL"},
        {"    mirrors: [\"ftp://x/{symbol}\"]\n", "t.yaml:7:15: sources[0].mirrors[0]:"},
        {"    mirrors: [\"http://127.0.0.1:8081/quotes/{symbol}\"]\n",
         "t.yaml:7:15: sources[0].mirrors[0]: is the source's own url"},
        {"    mirrors: [\"http://a/{symbol}\", \"http://a/{symbol}\"]\n",
         "t.yaml:7:36: sources[0].mirrors[1]: duplicate mirror, already at sources[0].mirrors[0]"},
        {"    mirrors: [\"http://a/quotes\"]\n",
         "t.yaml:7:15: sources[0].mirrors[0]: must contain \"{symbol}\" like the url"},
        {"    mirrors: [\"https://a/{symbol}\"]\n",
         "t.yaml:7:15: sources[0].mirrors[0]: must use the url's scheme (http://)"},
        {"    hedge: { after: 20ms }\n",
         "t.yaml:7:12: sources[0].hedge: needs mirrors: a hedge goes to the next healthy mirror"},
        {mirror + "    hedge: { max_extra: 5% }\n",
         "t.yaml:8:12: sources[0].hedge.after: required key is missing"},
        {mirror + "    hedge: { after: 50ms }\n",
         "t.yaml:8:21: sources[0].hedge.after: must be shorter than the timeout (50ms)"},
        {mirror + "    hedge: { after: p50 }\n",
         "t.yaml:8:21: sources[0].hedge.after: expected one of"},
        {mirror + "    hedge: { after: soon }\n",
         "t.yaml:8:21: sources[0].hedge.after: expected a duration like \"20ms\" or one of"},
        {mirror + "    hedge: { after: 20ms, max_extra: 5 }\n",
         "t.yaml:8:38: sources[0].hedge.max_extra: expected a share like 5%"},
        {mirror + "    hedge: { after: 20ms, max_extra: 0% }\n",
         "t.yaml:8:38: sources[0].hedge.max_extra: expected a share like 5%"},
        {mirror + "    hedge: { after: 20ms, max_extra: 101% }\n",
         "t.yaml:8:38: sources[0].hedge.max_extra: expected a share like 5%"},
        {mirror + "    hedge: { after: 20ms, max_ekstra: 5% }\n",
         "t.yaml:8:27: sources[0].hedge.max_ekstra: unknown key, did you mean \"max_extra\"?"},
        {"    priority: 0\n", "t.yaml:7:15: sources[0].priority: must be"},
        {"    priority: 10\n", "t.yaml:7:15: sources[0].priority: must be"},
        {"    priority: high\n", "t.yaml:7:15: sources[0].priority:"},
        {"    priority: \"1\"\n", "t.yaml:7:15: sources[0].priority: expected a priority from 1"},
        {"    priority: { tags: { nyse: 1 } }\n",
         "t.yaml:7:25: sources[0].priority.tags: no symbol of this source has tag \"nyse\""},
        {"    priority: { tags: { nyse: 12 } }\n", "t.yaml:7:31: sources[0].priority.tags.nyse:"},
    };
    for (const auto& [lines, expected] : cases) {
        const std::string got = error_of(with(lines));
        EXPECT_EQ(got.substr(0, expected.size()), expected) << lines << "got: " << got;
    }
    const std::string symbol_priority = R"(sources:
  - name: sim
    url: "http://127.0.0.1:8081/quotes/{symbol}"
    interval: 50ms
    symbols: [{ name: A, priority: 0 }]
    fields: {bid: /bid, ask: /ask}
)";
    EXPECT_EQ(error_of(symbol_priority).substr(0, 41), "t.yaml:5:36: sources[0].symbols[0].priori");
}

TEST(ConfigHedge, KeysHaveReloadRules) {
    const auto keys = config_schema_keys();
    const std::set<std::string> schema(keys.begin(), keys.end());
    for (const char* key : {"sources[].mirrors", "sources[].hedge.after", "sources[].hedge.max_extra",
                            "sources[].priority", "sources[].priority.tags", "sources[].symbols[].priority"})
        EXPECT_TRUE(schema.contains(key)) << key;
    // A changed mirror list is a changed source: its pollers restart with it.
    auto a = parse(minimal);
    auto b = parse(with("    mirrors: [\"http://127.0.0.2:8081/quotes/{symbol}\"]\n"));
    EXPECT_FALSE(a.sources[0] == b.sources[0]);
}

}  // namespace
}  // namespace mdagg

// Which keys a reload applies live and which need a restart.
#include "config_test_helpers.hpp"

namespace mdagg {
namespace {

TEST(ReloadPolicy, EverySchemaKeyHasExactlyOneRule) {
    const std::vector<std::string> keys = config_schema_keys();
    ASSERT_GT(keys.size(), 60u);  // the walk found the nested tables
    std::map<std::string, int> rules_of;
    for (const ReloadRule& rule : reload_rules()) ++rules_of[std::string(rule.key)];
    for (const std::string& key : keys) EXPECT_EQ(rules_of[key], 1) << key << ": give it a row in src/config/reload.cpp";
    const std::set<std::string> schema(keys.begin(), keys.end());
    for (const ReloadRule& rule : reload_rules()) {
        EXPECT_TRUE(schema.contains(std::string(rule.key))) << rule.key << ": no such key in the schema";
        // A live key must say how the running config takes its value; a restart key never does.
        EXPECT_EQ(rule.policy == ReloadPolicy::live, rule.adopt != nullptr) << rule.key;
    }
    for (const char* key : {"sharding.count", "output.rotate.max_bytes", "output.retention.max_files",
                            "admin.token_file", "sources[].fields.exchange_time.unit", "hosts[].usage.slow_at",
                            "sources[].symbols[].tags", "sources[].symbols.prefix"})
        EXPECT_TRUE(schema.contains(key)) << key;
}

ReloadPolicy policy_of(std::string_view key) {
    for (const ReloadRule& rule : reload_rules())
        if (rule.key == key) return rule.policy;
    ADD_FAILURE() << "no rule for " << key;
    return ReloadPolicy::restart;
}

TEST(ReloadPolicy, TheDocumentedLiveAndRestartKeys) {
    for (const char* key : {"sharding.index", "sharding.count", "log.level", "log.summary_every",
                            "output.max_buffer_bytes", "output.overflow", "output.overflow_wait",
                            "output.rotate.max_bytes", "output.rotate.max_age", "output.retention.max_files",
                            "output.retention.max_bytes", "output.compression", "admin.token_env",
                            "admin.token_file", "admin.stall_after", "admin.symbol_metrics", "sources[].interval",
                            "hosts[].host"})
        EXPECT_EQ(policy_of(key), ReloadPolicy::live) << key;
    for (const char* key : {"runtime.threads", "shutdown.grace", "shutdown.interrupt_grace", "output.dir",
                            "output.flush_every", "output.quotes", "output.bar_interval", "output.format.quotes",
                            "output.format.bars", "admin.listen", "hosts[].rate", "hosts[].breaker.failures"})
        EXPECT_EQ(policy_of(key), ReloadPolicy::restart) << key;
}

TEST(ReloadPolicy, DiffListsChangedKeysByPolicy) {
    const Config running = parse(minimal);
    EXPECT_TRUE(reload_diff(running, running).applied.empty());
    EXPECT_TRUE(reload_diff(running, running).not_applied.empty());

    const Config loaded = parse(append(R"(runtime: { threads: 2 }
output:
  dir: /elsewhere
  format: { bars: csv }
  rotate: { max_bytes: 65536 }
  retention: { max_files: 3 }
  compression: gzip
  overflow: block
log: { level: warn }
)"));
    const ReloadDiff diff = reload_diff(running, loaded);
    EXPECT_EQ(diff.applied, (std::vector<std::string>{"log.level", "output.overflow", "output.rotate.max_bytes",
                                                       "output.retention.max_files", "output.compression"}));
    EXPECT_EQ(diff.not_applied,
              (std::vector<std::string>{"runtime.threads", "output.dir", "output.format.bars"}));

    // The live keys are in effect afterwards; the restart keys stay reported until a restart.
    Config effective = running;
    adopt_live_keys(effective, loaded);
    const ReloadDiff again = reload_diff(effective, loaded);
    EXPECT_TRUE(again.applied.empty());
    EXPECT_EQ(again.not_applied, diff.not_applied);
    EXPECT_EQ(effective.output.rotate_max_bytes, 65536u);
    EXPECT_EQ(effective.output.dir, running.output.dir);
    EXPECT_EQ(effective.runtime.threads, running.runtime.threads);
}

TEST(ReloadPolicy, HostLimitsOfAPolledHostNeedARestartANewHostDoesNot) {
    const Config running = parse(minimal);  // 127.0.0.1:8081, a default entry
    const Config limited = parse(append("hosts:\n  - host: \"127.0.0.1:8081\"\n    rate: 5\n"));
    // The burst follows the rate unless set.
    EXPECT_EQ(reload_diff(running, limited).not_applied, (std::vector<std::string>{"hosts[].rate", "hosts[].burst"}));
    EXPECT_TRUE(reload_diff(running, limited).applied.empty());

    const Config other_host = parse(append(R"(  - name: other
    url: "http://127.0.0.2:9000/q/{symbol}"
    interval: 1s
    symbols: [X, Y]
    fields: {bid: /bid, ask: /ask}
hosts:
  - host: 127.0.0.2
    rate: 3
)"));
    const ReloadDiff diff = reload_diff(running, other_host);
    EXPECT_EQ(diff.applied, (std::vector<std::string>{"hosts[].host"}));
    EXPECT_TRUE(diff.not_applied.empty());
    Config effective = running;
    adopt_live_keys(effective, other_host);
    EXPECT_EQ(effective.hosts.size(), 2u);
    // Now polled: its limits are held by its guard like any other's.
    const Config other_faster = parse(append(R"(  - name: other
    url: "http://127.0.0.2:9000/q/{symbol}"
    interval: 1s
    symbols: [X, Y]
    fields: {bid: /bid, ask: /ask}
hosts:
  - host: 127.0.0.2
    rate: 4
)"));
    EXPECT_EQ(reload_diff(effective, other_faster).not_applied,
              (std::vector<std::string>{"hosts[].rate", "hosts[].burst"}));

    // The breaker threshold that follows the poller count changes with the symbols: no change.
    const Config more_symbols = parse(replace_line(5, "    symbols: { prefix: S, count: 50 }"));
    EXPECT_TRUE(reload_diff(running, more_symbols).not_applied.empty());
}

TEST(ReloadPolicy, ShardingIsComparedAsResolved) {
    const std::string yaml = std::string(R"(sharding: { index: 0, count: 2 }
)") + std::string(minimal);
    ShardingEnv env;
    Config running = parse(yaml);
    apply_sharding(running, env);
    Config same = parse(yaml);
    apply_sharding(same, env);
    EXPECT_TRUE(reload_diff(running, same).applied.empty());
    EXPECT_TRUE(reload_diff(running, same).not_applied.empty());

    env.count = "3";  // SHARD_COUNT overrides the file, on reload as at start-up
    Config recounted = parse(yaml);
    apply_sharding(recounted, env);
    EXPECT_EQ(reload_diff(running, recounted).applied, (std::vector<std::string>{"sharding.count"}));
}

TEST(ReloadPolicy, KafkaKeysNeedARestart) {
    for (const char* key : {"kafka.brokers", "kafka.topics.quotes", "kafka.properties", "kafka.max_buffer_bytes"})
        EXPECT_EQ(policy_of(key), ReloadPolicy::restart) << key;
    const Config a = parse(append(kafka_head + "  properties: { client.id: a }\n"));
    const Config b = parse(append(kafka_head + "  properties:\n    client.id: b\n"));
    EXPECT_EQ(reload_diff(a, b).not_applied, std::vector<std::string>{"kafka.properties"});
    EXPECT_TRUE(reload_diff(a, a).not_applied.empty());
    EXPECT_EQ(reload_diff(parse(minimal), a).not_applied.front(), "kafka.brokers");
}

}  // namespace
}  // namespace mdagg

#include <mdagg/config.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>

#include <unistd.h>

namespace mdagg {
namespace {

using namespace std::chrono_literals;

// Line and column numbers in the expectations below refer to this text (1-based):
//   line 3 "    url: " -> value at col 10;   line 4 "    interval: " -> value at col 15
//   line 5 "    symbols: " -> '[' at col 14; line 6 "    fields: " -> '{' at col 13
constexpr std::string_view minimal = R"(sources:
  - name: sim
    url: "http://127.0.0.1:8081/quotes/{symbol}"
    interval: 50ms
    symbols: [AAPL, MSFT]
    fields: {bid: /bid, ask: /ask}
)";

Config parse(std::string_view yaml) { return parse_config(yaml, "t.yaml"); }

std::string error_of(std::string_view yaml) {
    try {
        parse(yaml);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "(no error)";
}

// `minimal` with line `line` (1-based) replaced by `text`.
std::string replace_line(int line, std::string_view text) {
    std::string out;
    std::string_view rest = minimal;
    for (int n = 1; !rest.empty(); ++n) {
        const std::size_t end = rest.find('\n') + 1;
        out += n == line ? std::string(text) + '\n' : std::string(rest.substr(0, end));
        rest.remove_prefix(end);
    }
    return out;
}

// `minimal` plus `lines`, starting at line 7.
std::string append(std::string_view lines) { return std::string(minimal) + std::string(lines); }

std::filesystem::path find_demo_yaml() {
    if (const char* dir = std::getenv("MDAGG_SOURCE_DIR")) return std::filesystem::path(dir) / "config/demo.yaml";
    // Tests run from the build tree (build*/tests), so the source tree is an ancestor.
    for (auto dir = std::filesystem::current_path();; dir = dir.parent_path()) {
        if (std::filesystem::exists(dir / "config/demo.yaml")) return dir / "config/demo.yaml";
        if (dir == dir.parent_path()) return {};
    }
}

// ---- valid configs -------------------------------------------------------------------------

TEST(ConfigParse, FullConfigGivesEveryValue) {
    const Config c = parse(R"(
runtime: { threads: 4 }
shutdown: { grace: 10s, interrupt_grace: 500ms }
log: { level: debug, summary_every: 1m }
output: { dir: /tmp/x, flush_every: 250ms, quotes: false, bar_interval: 1h, max_buffer_bytes: 1048576 }
sources:
  - name: a-1
    url: "http://example.com:9000/v1/q?s={symbol}&x={symbol}"
    interval: 1.5s
    timeout: 1s
    max_in_flight: 3
    max_body_bytes: 256
    symbols: { prefix: "X.", count: 3, start: 10 }
    fields:
      symbol: /sym
      bid: /b
      ask: /a
      bid_size: /bs
      ask_size: /as
      exchange_time: { pointer: /t, unit: rfc3339 }
      seq: /n
  - name: b
    url: http://h/only
    interval: 100us
    symbols: [ONE]
    fields: { bid: /result/*/b/0, ask: "/a~1b~0c", exchange_time: /ts }
)");
    EXPECT_EQ(c.file, "t.yaml");
    EXPECT_EQ(c.runtime.threads, 4u);
    EXPECT_EQ(c.shutdown.grace, 10s);
    EXPECT_EQ(c.shutdown.interrupt_grace, 500ms);
    EXPECT_EQ(c.log.level, "debug");
    EXPECT_EQ(c.log.summary_every, 1min);
    EXPECT_EQ(c.output.dir, "/tmp/x");
    EXPECT_EQ(c.output.flush_every, 250ms);
    EXPECT_FALSE(c.output.quotes);
    EXPECT_EQ(c.output.bar_interval, 1h);
    EXPECT_EQ(c.output.max_buffer_bytes, 1048576u);
    ASSERT_EQ(c.sources.size(), 2u);

    const SourceConfig& a = c.sources[0];
    EXPECT_EQ(a.name, "a-1");
    EXPECT_EQ(a.url_text, "http://example.com:9000/v1/q?s={symbol}&x={symbol}");
    EXPECT_EQ(a.url.scheme, "http");
    EXPECT_EQ(a.url.host, "example.com");
    EXPECT_EQ(a.url.port, 9000);
    EXPECT_EQ(a.url.target_template, "/v1/q?s={symbol}&x={symbol}");
    EXPECT_EQ(a.interval, 1500ms);
    EXPECT_EQ(a.timeout, 1s);
    EXPECT_EQ(a.max_in_flight, 3u);
    EXPECT_EQ(a.max_body_bytes, 256u);
    EXPECT_EQ(a.symbols, (std::vector<std::string>{"X.10", "X.11", "X.12"}));
    EXPECT_EQ(a.fields.symbol, "/sym");
    EXPECT_EQ(a.fields.bid, "/b");
    EXPECT_EQ(a.fields.ask, "/a");
    EXPECT_EQ(a.fields.bid_size, "/bs");
    EXPECT_EQ(a.fields.ask_size, "/as");
    ASSERT_TRUE(a.fields.exchange_time);
    EXPECT_EQ(a.fields.exchange_time->pointer, "/t");
    EXPECT_EQ(a.fields.exchange_time->unit, TimeUnit::rfc3339);
    EXPECT_EQ(a.fields.seq, "/n");

    const SourceConfig& b = c.sources[1];
    EXPECT_EQ(b.url.port, 80);
    EXPECT_EQ(b.url.target_template, "/only");  // one symbol: no placeholder needed
    EXPECT_EQ(b.timeout, 100us);
    EXPECT_EQ(b.max_in_flight, 1u);
    EXPECT_EQ(b.fields.bid, "/result/*/b/0");
    EXPECT_EQ(b.fields.ask, "/a~1b~0c");
    ASSERT_TRUE(b.fields.exchange_time);
    EXPECT_EQ(b.fields.exchange_time->pointer, "/ts");
    EXPECT_EQ(b.fields.exchange_time->unit, TimeUnit::ms);  // plain string = ms
}

TEST(ConfigParse, MinimalConfigGetsDefaults) {
    const Config c = parse(minimal);
    const Config defaults;
    EXPECT_EQ(c.runtime.threads, 1u);
    EXPECT_EQ(c.shutdown.grace, 3s);
    EXPECT_EQ(c.shutdown.interrupt_grace, 2s);
    EXPECT_EQ(c.log.level, "info");
    EXPECT_EQ(c.log.summary_every, 5s);
    EXPECT_EQ(c.output.dir, "./out");
    EXPECT_EQ(c.output.flush_every, 1s);
    EXPECT_TRUE(c.output.quotes);
    EXPECT_EQ(c.output.bar_interval, 1s);
    EXPECT_EQ(c.output.max_buffer_bytes, defaults.output.max_buffer_bytes);
    ASSERT_EQ(c.sources.size(), 1u);
    const SourceConfig& s = c.sources[0];
    EXPECT_EQ(s.url.host, "127.0.0.1");
    EXPECT_EQ(s.url.port, 8081);
    EXPECT_EQ(s.url.target_template, "/quotes/{symbol}");
    EXPECT_EQ(s.interval, 50ms);
    EXPECT_EQ(s.timeout, 50ms);           // defaults to the interval
    EXPECT_EQ(s.max_in_flight, 2u);       // defaults to the symbol count
    EXPECT_EQ(s.max_body_bytes, 65536u);
    EXPECT_EQ(s.symbols, (std::vector<std::string>{"AAPL", "MSFT"}));
    EXPECT_EQ(s.fields.symbol, "");
    EXPECT_FALSE(s.fields.exchange_time);
    EXPECT_FALSE(s.fields.success);
    EXPECT_EQ(s.cost, 1u);
    EXPECT_EQ(s.stale_after, 1s);  // 10 intervals, at least 1 s
    // Every source gets a host entry: here a default one, unlimited, breaker on.
    ASSERT_EQ(c.hosts.size(), 1u);
    EXPECT_EQ(s.host, 0u);
    EXPECT_EQ(c.hosts[0].host, "127.0.0.1");
    EXPECT_EQ(c.hosts[0].port, 8081);
    EXPECT_EQ(c.hosts[0].rate, 0.0);
    EXPECT_EQ(c.hosts[0].breaker.failures, 5u);  // the poller count, at least 5
    EXPECT_FALSE(c.hosts[0].usage);
}

TEST(ConfigParse, HostsEntriesAndTheirSources) {
    const Config c = parse(append(R"(    cost: 2
    stale_after: 3s
    success: { pointer: /code, equals: "0" }
  - name: other
    url: "http://127.0.0.1:9000/q/{symbol}"
    interval: 1s
    symbols: [AAPL]
    fields: {bid: /bid, ask: /ask}
  - name: third
    url: "http://localhost/q/{symbol}"
    interval: 1s
    symbols: [AAPL]
    fields: {bid: /bid, ask: /ask}
    success: { pointer: /error, empty: true }
hosts:
  - host: 127.0.0.1
    rate: 12.5
    ban_pause: 2m
    breaker: { failures: 0 }
    usage: { header: X-MBX-USED-WEIGHT-1M, limit: 6000, slow_at: 0.5 }
  - host: "127.0.0.1:8081"
    rate: 100
    burst: 20
    rate_limit_pause: 3s
    max_pause: 10m
    breaker: { failures: 5, cooldown: 200ms, max_cooldown: 5s }
)"));
    ASSERT_EQ(c.sources.size(), 3u);
    ASSERT_EQ(c.hosts.size(), 3u);  // two configured, one default for localhost:80
    const SourceConfig& sim = c.sources[0];
    EXPECT_EQ(sim.cost, 2u);
    EXPECT_EQ(sim.stale_after, 3s);
    ASSERT_TRUE(sim.fields.success);
    EXPECT_EQ(sim.fields.success->pointer, "/code");
    EXPECT_EQ(sim.fields.success->equals, "0");
    EXPECT_FALSE(sim.fields.success->empty);
    // The exact host:port entry wins over the port-less one.
    EXPECT_EQ(sim.host, 1u);
    const HostConfig& exact = c.hosts[1];
    EXPECT_EQ(exact.rate, 100.0);
    EXPECT_EQ(exact.burst, 20.0);
    EXPECT_EQ(exact.rate_limit_pause, 3s);
    EXPECT_EQ(exact.max_pause, 10min);
    EXPECT_EQ(exact.breaker.failures, 5u);
    EXPECT_EQ(exact.breaker.cooldown, 200ms);
    EXPECT_EQ(exact.breaker.max_cooldown, 5s);
    // Port 9000 has no entry of its own: the port-less entry covers it.
    EXPECT_EQ(c.sources[1].host, 0u);
    const HostConfig& any_port = c.hosts[0];
    EXPECT_EQ(any_port.port, 0);
    EXPECT_EQ(any_port.rate, 12.5);
    EXPECT_EQ(any_port.burst, 12.5);  // defaults to the rate
    EXPECT_EQ(any_port.ban_pause, 2min);
    EXPECT_EQ(any_port.breaker.failures, 0u);
    ASSERT_TRUE(any_port.usage);
    EXPECT_EQ(any_port.usage->header, "X-MBX-USED-WEIGHT-1M");
    EXPECT_EQ(any_port.usage->limit, 6000.0);
    EXPECT_EQ(any_port.usage->slow_at, 0.5);
    EXPECT_EQ(c.sources[2].host, 2u);
    EXPECT_EQ(c.hosts[2].host, "localhost");
    EXPECT_EQ(c.hosts[2].port, 80);
    EXPECT_EQ(c.hosts[2].breaker.failures, 5u);
    ASSERT_TRUE(c.sources[2].fields.success);
    EXPECT_TRUE(c.sources[2].fields.success->empty);
    EXPECT_FALSE(c.sources[2].fields.success->equals);
}

TEST(ConfigParse, BreakerThresholdDefaultsToAWholeRoundOfTheHostsPollers) {
    const Config c = parse(replace_line(5, "    symbols: { prefix: S, count: 2000 }"));
    EXPECT_EQ(c.hosts.at(0).breaker.failures, 2000u);
    // An entry that leaves failures out gets the same default; one that sets it keeps it.
    const Config d = parse(replace_line(5, "    symbols: { prefix: S, count: 300 }") +
                           "hosts:\n  - host: 127.0.0.1\n    breaker: { cooldown: 2s }\n");
    EXPECT_EQ(d.hosts.at(0).breaker.failures, 300u);
    EXPECT_EQ(d.hosts.at(0).breaker.cooldown, 2s);
}

TEST(ConfigErrors, HostsAndRateLimits) {
    const std::string head(minimal);
    EXPECT_EQ(error_of(head + "hosts:\n  - host: example.com\n"),
              "t.yaml:8:11: hosts[0].host: no source polls this host");
    EXPECT_EQ(error_of(head + "hosts:\n  - host: 127.0.0.1\n  - host: 127.0.0.1\n"),
              "t.yaml:9:11: hosts[1].host: duplicate host entry (first at line 8)");
    EXPECT_EQ(error_of(head + "hosts:\n  - host: \"127.0.0.1:x\"\n"),
              "t.yaml:8:11: hosts[0].host: expected HOST or HOST:PORT as in the sources' urls: "
              "invalid port \"x\"; expected a number from 1 to 65535");
    EXPECT_EQ(error_of(head + "hosts:\n  - host: 127.0.0.1\n    rate: -1\n"),
              "t.yaml:9:11: hosts[0].rate: must be between 0 and 1e+09");
    EXPECT_EQ(error_of(head + "hosts:\n  - host: 127.0.0.1\n    rate: fast\n"),
              "t.yaml:9:11: hosts[0].rate: expected a number like 10 or 0.5");
    EXPECT_EQ(error_of(head + "hosts:\n  - host: 127.0.0.1\n    rate: .inf\n"),
              "t.yaml:9:11: hosts[0].rate: expected a number like 10 or 0.5");
    EXPECT_EQ(error_of(head + "hosts:\n  - host: 127.0.0.1\n    rate: \"10\"\n"),
              "t.yaml:9:11: hosts[0].rate: expected a number, not a quoted string");
    EXPECT_EQ(error_of(head + "hosts:\n  - host: 127.0.0.1\n    usage: {header: X-Used, limit: 10}\n"),
              "t.yaml:8:5: hosts[0].usage: needs a rate: the usage header slows the host's token bucket");
    EXPECT_EQ(error_of(head + "hosts:\n  - host: 127.0.0.1\n    rate: 1\n    usage: {header: \"X Used\", limit: 10}\n"),
              "t.yaml:10:21: hosts[0].usage.header: invalid character ' ' in a header name");
    EXPECT_EQ(error_of(head + "hosts:\n  - host: 127.0.0.1\n    rate: 1\n    usage: {header: X, limit: 10, slow_at: 1}\n"),
              "t.yaml:10:44: hosts[0].usage.slow_at: must be between 0.05 and 0.99");
    EXPECT_EQ(error_of(head + "hosts:\n  - host: 127.0.0.1\n    breaker: {cooldown: 2s, max_cooldown: 1s}\n"),
              "t.yaml:8:5: hosts[0].breaker.max_cooldown: must not be shorter than breaker.cooldown");
    EXPECT_EQ(error_of(head + "hosts:\n  - host: 127.0.0.1\n    breaker: {failures: many}\n"),
              "t.yaml:9:25: hosts[0].breaker.failures: expected an integer");
    EXPECT_EQ(error_of(head + "hosts:\n  - host: 127.0.0.1\n    breakr: {}\n"),
              "t.yaml:9:5: hosts[0].breakr: unknown key, did you mean \"breaker\"?");
    EXPECT_EQ(error_of(head + "hosts: {host: 127.0.0.1}\n"),
              "t.yaml:7:8: hosts: expected a list, got a mapping");
    // A request heavier than the bucket could never be sent.
    EXPECT_EQ(error_of(append("    cost: 5\nhosts:\n  - host: 127.0.0.1\n    rate: 10\n    burst: 4\n")),
              "t.yaml:7:11: sources[0].cost: exceeds burst 4 of host 127.0.0.1");
}

TEST(ConfigErrors, SourceCostStalenessAndSuccessCheck) {
    EXPECT_EQ(error_of(append("    cost: 0\n")),
              "t.yaml:7:11: sources[0].cost: must be between 1 and 1000000");
    EXPECT_EQ(error_of(append("    stale_after: 50ms\n")),
              "t.yaml:7:18: sources[0].stale_after: must be longer than the interval (50ms)");
    EXPECT_EQ(error_of(append("    success: { pointer: code, equals: \"0\" }\n")),
              "t.yaml:7:25: sources[0].success.pointer: a JSON pointer starts with \"/\", like \"/bidPrice\"");
    EXPECT_EQ(error_of(append("    success: { pointer: /code }\n")),
              "t.yaml:7:14: sources[0].success: needs exactly one of equals: VALUE or empty: true");
    EXPECT_EQ(error_of(append("    success: { pointer: /code, equals: \"0\", empty: true }\n")),
              "t.yaml:7:14: sources[0].success: needs exactly one of equals: VALUE or empty: true");
    EXPECT_EQ(error_of(append("    success: { equals: \"0\" }\n")),
              "t.yaml:7:14: sources[0].success.pointer: required key is missing");
}

TEST(ConfigParse, SectionWithAllKeysCommentedOutIsEmpty) {
    const Config c = parse(append("runtime:\nlog:   # level: debug\n"));
    EXPECT_EQ(c.runtime.threads, 1u);
    EXPECT_EQ(c.log.level, "info");
}

TEST(ConfigParse, ThreadsAutoUsesHardwareThreads) {
    const Config c = parse(append("runtime: { threads: auto }\n"));
    const unsigned hw = std::thread::hardware_concurrency();
    EXPECT_EQ(c.runtime.threads, hw == 0 ? 1u : std::min(hw, 1024u));
}

TEST(ConfigParse, BooleansAcceptYaml12Spellings) {
    EXPECT_FALSE(parse(append("output: { quotes: false }\n")).output.quotes);
    EXPECT_FALSE(parse(append("output: { quotes: False }\n")).output.quotes);
    EXPECT_TRUE(parse(append("output: { quotes: TRUE }\n")).output.quotes);
}

TEST(ConfigParse, BoundaryValuesAreAccepted) {
    EXPECT_EQ(parse(append("    max_body_bytes: 67108864\n")).sources[0].max_body_bytes, 67108864u);
    EXPECT_EQ(parse(append("runtime: { threads: 1024 }\n")).runtime.threads, 1024u);
    EXPECT_EQ(parse(append("    timeout: 50ms\n")).sources[0].timeout, 50ms);
    const Config big = parse(replace_line(5, "    symbols: { prefix: S, count: 1000000 }"));
    EXPECT_EQ(big.sources[0].symbols.size(), 1000000u);
    EXPECT_EQ(big.sources[0].symbols.back(), "S999999");
}

TEST(ConfigParse, EmptyOptionalPointerMeansNotMapped) {
    const Config c = parse(replace_line(6, "    fields: {bid: /b, ask: /a, seq: \"\", exchange_time: \"\"}"));
    EXPECT_EQ(c.sources[0].fields.seq, "");
    EXPECT_FALSE(c.sources[0].fields.exchange_time);
}

TEST(ConfigParse, ExchangeTimeUnits) {
    const std::pair<std::string_view, TimeUnit> cases[] = {
        {"s", TimeUnit::s}, {"ms", TimeUnit::ms}, {"us", TimeUnit::us},
        {"ns", TimeUnit::ns}, {"rfc3339", TimeUnit::rfc3339}};
    for (const auto& [name, unit] : cases) {
        const Config c = parse(replace_line(
            6, "    fields: {bid: /b, ask: /a, exchange_time: {pointer: /t, unit: " + std::string(name) + "}}"));
        EXPECT_EQ(c.sources[0].fields.exchange_time->unit, unit) << name;
    }
}

TEST(ConfigParse, UrlWithoutPathOrWithOnlyQuery) {
    const Config one = parse(R"(sources:
  - { name: s, url: http://HOST, interval: 1s, symbols: [AAPL], fields: {bid: /b, ask: /a} }
)");
    EXPECT_EQ(one.sources[0].url.host, "HOST");
    EXPECT_EQ(one.sources[0].url.target_template, "/");
    const Config query = parse(replace_line(3, "    url: \"HTTP://h?s={symbol}\""));
    EXPECT_EQ(query.sources[0].url.scheme, "http");
    EXPECT_EQ(query.sources[0].url.target_template, "/?s={symbol}");
}

TEST(ConfigParse, DemoYamlParses) {
    const std::filesystem::path path = find_demo_yaml();
    ASSERT_FALSE(path.empty()) << "config/demo.yaml not found above " << std::filesystem::current_path();
    const Config c = load_config(path.string());
    EXPECT_EQ(c.file, path.string());
    ASSERT_EQ(c.sources.size(), 1u);
    const SourceConfig& s = c.sources[0];
    EXPECT_EQ(s.name, "sim");
    EXPECT_EQ(s.url.host, "127.0.0.1");
    EXPECT_EQ(s.url.port, 8081);
    EXPECT_EQ(s.interval, 50ms);
    EXPECT_EQ(s.timeout, 50ms);
    EXPECT_EQ(s.max_in_flight, 2000u);
    ASSERT_EQ(s.symbols.size(), 2000u);
    EXPECT_EQ(s.symbols.front(), "STOCK_0");
    EXPECT_EQ(s.symbols.back(), "STOCK_1999");
    EXPECT_EQ(s.fields.bid, "/bidPrice");
    EXPECT_EQ(s.fields.ask_size, "/askQty");
    ASSERT_TRUE(s.fields.exchange_time);
    EXPECT_EQ(s.fields.exchange_time->pointer, "/time");
    EXPECT_EQ(c.output.dir, "./out");
    EXPECT_EQ(c.runtime.threads, 1u);
    EXPECT_TRUE(c.admin.enabled);
    EXPECT_EQ(c.admin.port, 9100);
    EXPECT_EQ(c.admin.token_env, "MDAGG_ADMIN_TOKEN");
}

// ---- sharding ------------------------------------------------------------------------------

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

TEST(ConfigErrors, Sharding) {
    EXPECT_EQ(error_of(append("sharding: {index: 3, count: 3}\n")),
              "t.yaml:7:19: sharding.index: must be less than sharding.count (3)");
    EXPECT_EQ(error_of(append("sharding: {index: 1}\n")),
              "t.yaml:7:19: sharding.index: must be less than sharding.count (1)");
    EXPECT_EQ(error_of(append("sharding: {count: 0}\n")),
              "t.yaml:7:19: sharding.count: must be between 1 and 100000");
    EXPECT_EQ(error_of(append("sharding: {index: -1, count: 2}\n")),
              "t.yaml:7:19: sharding.index: must be between 0 and 99999");
    EXPECT_EQ(error_of(append("sharding: {index: first, count: 2}\n")),
              "t.yaml:7:19: sharding.index: expected a shard index (0, 1, ...) or \"auto\", got \"first\"");
    EXPECT_EQ(error_of(append("sharding: {index: 0, cuont: 2}\n")),
              "t.yaml:7:22: sharding.cuont: unknown key, did you mean \"count\"?");
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

// ---- Url::target_for -----------------------------------------------------------------------

TEST(UrlTargetFor, SubstitutesEveryPlaceholderPercentEncoded) {
    Url url;
    url.target_template = "/q/{symbol}?s={symbol}";
    EXPECT_EQ(url.target_for("AAPL"), "/q/AAPL?s=AAPL");
    EXPECT_EQ(url.target_for("BTC:USD"), "/q/BTC:USD?s=BTC:USD");
    EXPECT_EQ(url.target_for("BRK/B"), "/q/BRK%2FB?s=BRK%2FB");
    EXPECT_EQ(url.target_for("a b&c"), "/q/a%20b%26c?s=a%20b%26c");
    EXPECT_EQ(url.target_for("A-Z._~9"), "/q/A-Z._~9?s=A-Z._~9");
    url.target_template = "/fixed";
    EXPECT_EQ(url.target_for("X"), "/fixed");
}

// ---- errors: types and values --------------------------------------------------------------

TEST(ConfigErrors, BadDurationNamesLineColumnAndPath) {
    EXPECT_EQ(error_of(replace_line(4, "    interval: abc")),
              "t.yaml:4:15: sources[0].interval: expected a duration like \"50ms\"");
    EXPECT_EQ(error_of(replace_line(4, "    interval: 50")),
              "t.yaml:4:15: sources[0].interval: expected a duration like \"50ms\"");
    EXPECT_EQ(error_of(replace_line(4, "    interval: [50ms]")),
              "t.yaml:4:15: sources[0].interval: expected a duration like \"50ms\", got a list");
    EXPECT_EQ(error_of(replace_line(4, "    interval: {a: 1}")),
              "t.yaml:4:15: sources[0].interval: expected a duration like \"50ms\", got a mapping");
}

TEST(ConfigErrors, EmptyValuePointsAtItsKey) {
    EXPECT_EQ(error_of(replace_line(4, "    interval:")),
              "t.yaml:4:5: sources[0].interval: expected a duration like \"50ms\", got null");
    EXPECT_EQ(error_of(append("output:\n  dir:\n")),
              "t.yaml:8:3: output.dir: expected a string, got null");
}

TEST(ConfigErrors, NonPositiveDurations) {
    EXPECT_EQ(error_of(replace_line(4, "    interval: 0s")),
              "t.yaml:4:15: sources[0].interval: must be greater than 0");
    EXPECT_EQ(error_of(append("    timeout: 0ms\n")),
              "t.yaml:7:14: sources[0].timeout: must be greater than 0");
    EXPECT_EQ(error_of(append("shutdown:\n  grace: 0s\n")),
              "t.yaml:8:10: shutdown.grace: must be greater than 0");
    EXPECT_EQ(error_of(append("shutdown:\n  interrupt_grace: 0s\n")),
              "t.yaml:8:20: shutdown.interrupt_grace: must be greater than 0");
    EXPECT_EQ(error_of(append("output:\n  flush_every: 0s\n")),
              "t.yaml:8:16: output.flush_every: must be greater than 0");
    EXPECT_EQ(error_of(append("output:\n  bar_interval: 0ns\n")),
              "t.yaml:8:17: output.bar_interval: must be greater than 0");
    EXPECT_EQ(error_of(append("log:\n  summary_every: 0h\n")),
              "t.yaml:8:18: log.summary_every: must be greater than 0");
}

TEST(ConfigParse, OutputSegmentsAndFormats) {
    Config c = parse(append(R"(output:
  overflow: block
  overflow_wait: 5ms
  format: { quotes: csv }
  rotate: { max_bytes: 1048576, max_age: 0 }
  retention: { max_files: 24, max_bytes: 1000000000 }
  compression: zstd
)"));
    EXPECT_EQ(c.output.overflow, OverflowPolicy::block);
    EXPECT_EQ(c.output.overflow_wait, 5ms);
    EXPECT_EQ(c.output.quotes_format, RecordFormat::csv);
    EXPECT_EQ(c.output.bars_format, RecordFormat::jsonl);
    EXPECT_EQ(c.output.rotate_max_bytes, 1048576u);
    EXPECT_EQ(c.output.rotate_max_age, Duration::zero());
    EXPECT_EQ(c.output.retention_max_files, 24u);
    EXPECT_EQ(c.output.retention_max_bytes, 1000000000u);
    EXPECT_EQ(c.output.compression, Compression::zstd);

    c = parse(append("output: { format: csv, rotate: { max_bytes: 0, max_age: 15m } }\n"));
    EXPECT_EQ(c.output.quotes_format, RecordFormat::csv);
    EXPECT_EQ(c.output.bars_format, RecordFormat::csv);
    EXPECT_EQ(c.output.rotate_max_bytes, 0u);
    EXPECT_EQ(c.output.rotate_max_age, 15min);

    const Config d = parse(minimal);  // defaults
    EXPECT_EQ(d.output.overflow, OverflowPolicy::drop_oldest);
    EXPECT_EQ(d.output.quotes_format, RecordFormat::jsonl);
    EXPECT_EQ(d.output.rotate_max_bytes, 256u * 1024 * 1024);
    EXPECT_EQ(d.output.rotate_max_age, 1h);
    EXPECT_EQ(d.output.retention_max_files, 0u);
    EXPECT_EQ(d.output.compression, Compression::none);
}

TEST(ConfigErrors, OutputSegmentsAndFormats) {
    EXPECT_EQ(error_of(append("output:\n  overflow: drop_old\n")),
              "t.yaml:8:13: output.overflow: expected one of drop_oldest, drop_newest, block; did you mean "
              "\"drop_oldest\"?");
    EXPECT_EQ(error_of(append("output:\n  overflow_wait: 2s\n")),
              "t.yaml:8:18: output.overflow_wait: must not exceed 1s");
    EXPECT_EQ(error_of(append("output:\n  format: { quotes: xml }\n")),
              "t.yaml:8:21: output.format.quotes: expected one of jsonl, csv");
    EXPECT_EQ(error_of(append("output:\n  format: { trades: csv }\n")),
              "t.yaml:8:13: output.format.trades: unknown key; valid keys: quotes, bars");
    EXPECT_EQ(error_of(append("output:\n  rotate: { max_bytes: 100 }\n")),
              "t.yaml:8:24: output.rotate.max_bytes: must be 0 (no size rotation) or at least 4096");
    EXPECT_EQ(error_of(append("output:\n  rotate: { max_age: soon }\n")),
              "t.yaml:8:22: output.rotate.max_age: expected a duration like \"50ms\"");
    EXPECT_EQ(error_of(append("output:\n  retention: { max_files: -1 }\n")),
              "t.yaml:8:27: output.retention.max_files: must be between 0 and 18446744073709551615");
    EXPECT_EQ(error_of(append("output:\n  compression: lz4\n")),
              "t.yaml:8:16: output.compression: expected one of none, gzip, zstd");
}

TEST(ConfigErrors, TimeoutMustNotExceedInterval) {
    EXPECT_EQ(error_of(append("    timeout: 51ms\n")),
              "t.yaml:7:14: sources[0].timeout: must not exceed the interval (50ms)");
}

TEST(ConfigErrors, Integers) {
    EXPECT_EQ(error_of(append("    max_in_flight: abc\n")),
              "t.yaml:7:20: sources[0].max_in_flight: expected an integer");
    EXPECT_EQ(error_of(append("    max_in_flight: 1.5\n")),
              "t.yaml:7:20: sources[0].max_in_flight: expected an integer");
    EXPECT_EQ(error_of(append("    max_in_flight: \"10\"\n")),
              "t.yaml:7:20: sources[0].max_in_flight: expected an integer, not a quoted string");
    EXPECT_EQ(error_of(append("    max_in_flight: [1]\n")),
              "t.yaml:7:20: sources[0].max_in_flight: expected an integer, got a list");
    EXPECT_EQ(error_of(append("    max_in_flight: 0\n")),
              "t.yaml:7:20: sources[0].max_in_flight: must be between 1 and 1000000");
    EXPECT_EQ(error_of(append("    max_in_flight: -3\n")),
              "t.yaml:7:20: sources[0].max_in_flight: must be between 1 and 1000000");
    EXPECT_EQ(error_of(append("    max_in_flight: 99999999999999999999999\n")),
              "t.yaml:7:20: sources[0].max_in_flight: must be between 1 and 1000000");
    EXPECT_EQ(error_of(append("    max_body_bytes: 255\n")),
              "t.yaml:7:21: sources[0].max_body_bytes: must be between 256 and 67108864");
    EXPECT_EQ(error_of(append("    max_body_bytes: 67108865\n")),
              "t.yaml:7:21: sources[0].max_body_bytes: must be between 256 and 67108864");
    EXPECT_EQ(error_of(append("output: { max_buffer_bytes: 100 }\n")),
              "t.yaml:7:29: output.max_buffer_bytes: must be between 4096 and 68719476736");
}

TEST(ConfigErrors, Threads) {
    EXPECT_EQ(error_of(append("runtime:\n  threads: 0\n")),
              "t.yaml:8:12: runtime.threads: must be between 1 and 1024");
    EXPECT_EQ(error_of(append("runtime:\n  threads: 1025\n")),
              "t.yaml:8:12: runtime.threads: must be between 1 and 1024");
    EXPECT_EQ(error_of(append("runtime:\n  threads: many\n")),
              "t.yaml:8:12: runtime.threads: expected a number of threads or \"auto\"");
    EXPECT_EQ(error_of(append("runtime:\n  threads: {n: 1}\n")),
              "t.yaml:8:12: runtime.threads: expected a number of threads or \"auto\", got a mapping");
}

TEST(ConfigErrors, Booleans) {
    EXPECT_EQ(error_of(append("output:\n  quotes: yes\n")),
              "t.yaml:8:11: output.quotes: expected true or false");
    EXPECT_EQ(error_of(append("output:\n  quotes: \"true\"\n")),
              "t.yaml:8:11: output.quotes: expected true or false, not a quoted string");
    EXPECT_EQ(error_of(append("output:\n  quotes: [true]\n")),
              "t.yaml:8:11: output.quotes: expected true or false, got a list");
}

TEST(ConfigErrors, WrongContainerTypes) {
    EXPECT_EQ(error_of(append("runtime: [1]\n")),
              "t.yaml:7:10: runtime: expected a mapping, got a list");
    EXPECT_EQ(error_of(append("log: info\n")),
              "t.yaml:7:6: log: expected a mapping, got \"info\"");
    EXPECT_EQ(error_of("sources: {name: x}\n"),
              "t.yaml:1:10: sources: expected a list of sources, got a mapping");
    EXPECT_EQ(error_of(replace_line(3, "    url: [a]")),
              "t.yaml:3:10: sources[0].url: expected a string, got a list");
    EXPECT_EQ(error_of("- a\n- b\n"), "t.yaml:1:1: expected a mapping, got a list");
}

TEST(ConfigErrors, LogLevelAndOutputDir) {
    EXPECT_EQ(error_of(append("log: { level: verbose }\n")),
              "t.yaml:7:15: log.level: expected one of trace, debug, info, warn, error");
    EXPECT_EQ(error_of(append("log: { level: warning }\n")),
              "t.yaml:7:15: log.level: expected one of trace, debug, info, warn, error; did you mean \"warn\"?");
    EXPECT_EQ(error_of(append("output: { dir: \"\" }\n")),
              "t.yaml:7:16: output.dir: must not be empty");
}

// ---- errors: keys --------------------------------------------------------------------------

TEST(ConfigErrors, MissingRequiredKeyPointsAtParentMapping) {
    EXPECT_EQ(error_of(replace_line(6, "    fields: {ask: /ask}")),
              "t.yaml:6:13: sources[0].fields.bid: required key is missing");
    EXPECT_EQ(error_of(replace_line(4, "    timeout: 50ms")),
              "t.yaml:2:5: sources[0].interval: required key is missing");
    EXPECT_EQ(error_of("log: { level: info }\n"), "t.yaml:1:1: sources: required key is missing");
    EXPECT_EQ(error_of(replace_line(6, "    fields: {bid: /b, ask: /a, exchange_time: {unit: s}}")),
              "t.yaml:6:47: sources[0].fields.exchange_time.pointer: required key is missing");
    EXPECT_EQ(error_of(replace_line(5, "    symbols: {prefix: S}")),
              "t.yaml:5:14: sources[0].symbols.count: required key is missing");
}

TEST(ConfigErrors, EmptyFileLacksSources) {
    EXPECT_EQ(error_of(""), "t.yaml:1:1: sources: required key is missing");
    EXPECT_EQ(error_of("# only a comment\n"), "t.yaml:1:1: sources: required key is missing");
}

TEST(ConfigErrors, UnknownKeySuggestsClosest) {
    EXPECT_EQ(error_of(replace_line(4, "    intervall: 50ms")),
              "t.yaml:4:5: sources[0].intervall: unknown key, did you mean \"interval\"?");
    EXPECT_EQ(error_of(append("    max-in-flight: 5\n")),
              "t.yaml:7:5: sources[0].max-in-flight: unknown key, did you mean \"max_in_flight\"?");
    EXPECT_EQ(error_of(replace_line(6, "    fields: {bid: /b, ask: /a, bidsize: /s}")),
              "t.yaml:6:32: sources[0].fields.bidsize: unknown key, did you mean \"bid_size\"?");
    EXPECT_EQ(error_of(append("colour: red\n")),
              "t.yaml:7:1: colour: unknown key; valid keys: runtime, sharding, shutdown, log, output, admin, kafka, sources, hosts");
}

TEST(ConfigErrors, DuplicateKey) {
    EXPECT_EQ(error_of(append("    interval: 60ms\n")),
              "t.yaml:7:5: sources[0].interval: duplicate key (first at line 4)");
}

// ---- errors: sources and symbols -----------------------------------------------------------

TEST(ConfigErrors, DuplicateSourceName) {
    const std::string two = std::string(minimal) + std::string(minimal.substr(minimal.find("  - ")));
    EXPECT_EQ(error_of(two),
              "t.yaml:7:11: sources[1].name: duplicate source name \"sim\", already used by sources[0]");
}

TEST(ConfigErrors, SourceNames) {
    EXPECT_EQ(error_of(replace_line(2, "  - name: \"\"")), "t.yaml:2:11: sources[0].name: must not be empty");
    EXPECT_EQ(error_of(replace_line(2, "  - name: a b")),
              "t.yaml:2:11: sources[0].name: invalid character ' ' in source name; allowed: A-Z a-z 0-9 . _ -");
}

TEST(ConfigErrors, EmptySourceList) {
    EXPECT_EQ(error_of("sources: []\n"), "t.yaml:1:10: sources: must list at least one source");
    EXPECT_EQ(error_of("sources:\n"), "t.yaml:1:1: sources: expected a list of sources, got null");
}

TEST(ConfigErrors, DuplicateSymbol) {
    EXPECT_EQ(error_of(replace_line(5, "    symbols: [AAPL, MSFT, AAPL]")),
              "t.yaml:5:27: sources[0].symbols[2]: duplicate symbol \"AAPL\", already at sources[0].symbols[0]");
}

TEST(ConfigErrors, EmptySymbols) {
    EXPECT_EQ(error_of(replace_line(5, "    symbols: []")),
              "t.yaml:5:14: sources[0].symbols: must list at least one symbol");
    EXPECT_EQ(error_of(replace_line(5, "    symbols: [AAPL, \"\"]")),
              "t.yaml:5:21: sources[0].symbols[1]: symbol must not be empty");
    EXPECT_EQ(error_of(replace_line(5, "    symbols: AAPL")),
              "t.yaml:5:14: sources[0].symbols: expected a list like [AAPL, MSFT] or "
              "{prefix: STOCK_, count: 2000}, got \"AAPL\"");
}

TEST(ConfigErrors, SymbolCharacters) {
    EXPECT_EQ(error_of(replace_line(5, "    symbols: [AAPL, \"MS FT\"]")),
              "t.yaml:5:21: sources[0].symbols[1]: invalid character ' ' in symbol \"MS FT\"; "
              "allowed: A-Z a-z 0-9 . _ : / -");
    EXPECT_EQ(error_of(replace_line(5, "    symbols: [\"A?B\"]")),
              "t.yaml:5:15: sources[0].symbols[0]: invalid character '?' in symbol \"A?B\"; "
              "allowed: A-Z a-z 0-9 . _ : / -");
    // Symbols that are fine: every allowed character class.
    EXPECT_EQ(parse(replace_line(5, "    symbols: [\"BTC:USD\", BRK/B, a-b.c_9]")).sources[0].symbols.size(), 3u);
}

TEST(ConfigErrors, SymbolRange) {
    EXPECT_EQ(error_of(replace_line(5, "    symbols: {prefix: S, count: 0}")),
              "t.yaml:5:33: sources[0].symbols.count: must be between 1 and 1000000");
    EXPECT_EQ(error_of(replace_line(5, "    symbols: {prefix: S, count: 1000001}")),
              "t.yaml:5:33: sources[0].symbols.count: must be between 1 and 1000000");
    EXPECT_EQ(error_of(replace_line(5, "    symbols: {prefix: \"S \", count: 2}")),
              "t.yaml:5:23: sources[0].symbols.prefix: invalid character ' ' in symbol \"S \"; "
              "allowed: A-Z a-z 0-9 . _ : / -");
    EXPECT_EQ(error_of(replace_line(5, "    symbols: {prefix: S, count: 2, start: 18446744073709551615}")),
              "t.yaml:5:43: sources[0].symbols.start: start + count - 1 does not fit in 64 bits");
    EXPECT_EQ(parse(replace_line(5, "    symbols: {prefix: \"\", count: 2}")).sources[0].symbols,
              (std::vector<std::string>{"0", "1"}));
}

// ---- errors: URLs --------------------------------------------------------------------------

TEST(ConfigErrors, Urls) {
    const auto url_error = [](std::string_view url) {
        return error_of(replace_line(3, "    url: \"" + std::string(url) + "\""));
    };
    const std::string at = "t.yaml:3:10: sources[0].url: ";
    EXPECT_EQ(url_error("ftp://h/{symbol}"), at + "unsupported scheme \"ftp\"; only http and https are supported");
    EXPECT_EQ(url_error("h/{symbol}"), at + "expected a URL like \"http://host:8081/quotes/{symbol}\"");
    EXPECT_EQ(url_error("http:///q/{symbol}"), at + "missing host");
    EXPECT_EQ(url_error("http://:80/q/{symbol}"), at + "missing host");
    EXPECT_EQ(url_error("http://h:0/{symbol}"), at + "invalid port \"0\"; expected a number from 1 to 65535");
    EXPECT_EQ(url_error("http://h:65536/{symbol}"),
              at + "invalid port \"65536\"; expected a number from 1 to 65535");
    EXPECT_EQ(url_error("http://h:80a/{symbol}"), at + "invalid port \"80a\"; expected a number from 1 to 65535");
    EXPECT_EQ(url_error("http://h:/{symbol}"), at + "invalid port \"\"; expected a number from 1 to 65535");
    EXPECT_EQ(url_error("http://u:p@h/{symbol}"), at + "credentials in the URL are not supported");
    EXPECT_EQ(url_error("http://h_o$t/{symbol}"), at + "invalid character '$' in host");
    EXPECT_EQ(url_error("http://[::1]:8081/{symbol}"),
              at + "IPv6 address literals are not supported yet; use a host name or IPv4 address");
    EXPECT_EQ(url_error("http://h/q/{symbol}#x"),
              at + "a fragment (\"#...\") is never sent to the server; remove it");
    EXPECT_EQ(url_error("http://h/q /{symbol}"),
              at + "invalid character ' ' in the path; percent-encode it as %20");
    EXPECT_EQ(url_error("http://h/q/{sym}"), at + "unknown placeholder \"{sym}\"; only {symbol} is supported");
    EXPECT_EQ(url_error("http://h/q/%zz{symbol}"),
              at + "invalid percent-encoding: '%' must be followed by two hex digits");
}

TEST(ConfigErrors, UrlNeedsPlaceholderForSeveralSymbols) {
    EXPECT_EQ(error_of(replace_line(3, "    url: http://h/quotes")),
              "t.yaml:3:10: sources[0].url: must contain \"{symbol}\" because the source polls 2 symbols");
    const Config one = parse(R"(sources:
  - { name: s, url: http://h/quotes, interval: 1s, symbols: [AAPL], fields: {bid: /b, ask: /a} }
)");
    EXPECT_EQ(one.sources[0].url.target_template, "/quotes");
}

// ---- errors: JSON Pointers -----------------------------------------------------------------

TEST(ConfigErrors, JsonPointers) {
    EXPECT_EQ(error_of(replace_line(6, "    fields: {bid: bid, ask: /ask}")),
              "t.yaml:6:19: sources[0].fields.bid: a JSON pointer starts with \"/\", like \"/bidPrice\"");
    EXPECT_EQ(error_of(replace_line(6, "    fields: {bid: /b~2, ask: /ask}")),
              "t.yaml:6:19: sources[0].fields.bid: in a JSON pointer '~' must be escaped as \"~0\" "
              "(\"~1\" stands for '/')");
    EXPECT_EQ(error_of(replace_line(6, "    fields: {bid: /b, ask: /a~}")),
              "t.yaml:6:28: sources[0].fields.ask: in a JSON pointer '~' must be escaped as \"~0\" "
              "(\"~1\" stands for '/')");
    EXPECT_EQ(error_of(replace_line(6, "    fields: {bid: \"\", ask: /ask}")),
              "t.yaml:6:19: sources[0].fields.bid: must not be empty");
    EXPECT_EQ(error_of(replace_line(6, "    fields: {bid: /b, ask: /a, exchange_time: {pointer: /t, unit: sec}}")),
              "t.yaml:6:67: sources[0].fields.exchange_time.unit: expected one of s, ms, us, ns, rfc3339");
    EXPECT_EQ(error_of(replace_line(6, "    fields: {bid: /b, ask: /a, exchange_time: [/t]}")),
              "t.yaml:6:47: sources[0].fields.exchange_time: expected a JSON pointer or {pointer, unit}, "
              "got a list");
}

// ---- errors: the file itself ---------------------------------------------------------------

TEST(ConfigErrors, YamlSyntaxError) {
    EXPECT_EQ(error_of("sources: [a, b\nlog: {}\n"), "t.yaml:2:4: invalid YAML: end of sequence flow not found");
    EXPECT_EQ(error_of("a: b: c\n"), "t.yaml:1:5: invalid YAML: illegal map value");
}

TEST(ConfigErrors, SecondDocumentIsRejected) {
    EXPECT_EQ(error_of(append("---\nlog: {}\n")), "t.yaml:8:1: only one YAML document is allowed");
}

TEST(ConfigErrors, UnreadableFile) {
    try {
        load_config("/nonexistent/mdagg.yaml");
        FAIL() << "no error";
    } catch (const ConfigError& e) {
        EXPECT_STREQ(e.what(), "/nonexistent/mdagg.yaml: cannot read: No such file or directory");
    }
    const std::string dir = std::filesystem::temp_directory_path().string();
    try {
        load_config(dir);
        FAIL() << "no error";
    } catch (const ConfigError& e) {
        EXPECT_EQ(std::string(e.what()), dir + ": cannot read: Is a directory");
    }
}

TEST(ConfigErrors, LoadConfigNamesTheFile) {
    const auto path = std::filesystem::temp_directory_path() /
                      ("mdagg_config_test_" + std::to_string(::getpid()) + ".yaml");  // unique per run
    std::ofstream(path) << replace_line(4, "    interval: -5ms");
    std::string what;
    try {
        load_config(path.string());
    } catch (const ConfigError& e) {
        what = e.what();
    }
    std::filesystem::remove(path);
    EXPECT_EQ(what, path.string() + ":4:15: sources[0].interval: expected a duration like \"50ms\"");
}

// ---- parse_duration ------------------------------------------------------------------------

TEST(ConfigAdmin, AbsentSectionMeansOff) {
    const Config c = parse(minimal);
    EXPECT_FALSE(c.admin.enabled);
    EXPECT_EQ(c.admin.stall_after, 60s);  // the stall detector logs even without the server
}

TEST(ConfigAdmin, EmptySectionTurnsItOnWithDefaults) {
    const Config c = parse(append("admin: {}\n"));
    EXPECT_TRUE(c.admin.enabled);
    EXPECT_EQ(c.admin.host, "127.0.0.1");
    EXPECT_EQ(c.admin.port, 9100);
    EXPECT_EQ(c.admin.token_env, "");
}

TEST(ConfigAdmin, EveryKey) {
    const Config c = parse(append(
        "admin:\n  listen: \"[::1]:0\"\n  token_env: MDAGG_ADMIN_TOKEN\n  stall_after: 1500ms\n"));
    EXPECT_EQ(c.admin.host, "::1");
    EXPECT_EQ(c.admin.port, 0);
    EXPECT_EQ(c.admin.token_env, "MDAGG_ADMIN_TOKEN");
    EXPECT_EQ(c.admin.stall_after, 1500ms);
    EXPECT_EQ(parse(append("admin:\n  listen: 0.0.0.0:65535\n")).admin.port, 65535);
}

TEST(ConfigAdmin, SymbolMetricsGlobs) {
    EXPECT_TRUE(parse(append("admin: {}\n")).admin.symbol_metrics.empty());
    EXPECT_EQ(parse(append("admin: { symbol_metrics: [\"BTC*\", AAPL, \"?\"] }\n")).admin.symbol_metrics,
              (std::vector<std::string>{"BTC*", "AAPL", "?"}));
    EXPECT_EQ(error_of(append("admin: { symbol_metrics: [\"\"] }\n")),
              "t.yaml:7:27: admin.symbol_metrics[0]: must not be empty");
    EXPECT_EQ(error_of(append("admin: { symbol_metrics: AAPL }\n")),
              "t.yaml:7:26: admin.symbol_metrics: expected a list, got \"AAPL\"");
}

TEST(ConfigAdmin, Errors) {
    EXPECT_EQ(error_of(append("admin:\n  listen: localhost:9100\n")),
              "t.yaml:8:11: admin.listen: \"localhost\" is not an IPv4 address (host names are not "
              "looked up here)");
    EXPECT_EQ(error_of(append("admin:\n  listen: 127.0.0.1\n")),
              "t.yaml:8:11: admin.listen: expected HOST:PORT like \"127.0.0.1:9100\" or \"[::1]:9100\"");
    EXPECT_EQ(error_of(append("admin:\n  listen: 127.0.0.1:70000\n")),
              "t.yaml:8:11: admin.listen: port must be a number between 0 and 65535");
    EXPECT_EQ(error_of(append("admin:\n  listen: \"::1:9100\"\n")),
              "t.yaml:8:11: admin.listen: an IPv6 address needs brackets: [::1]:PORT");
    EXPECT_EQ(error_of(append("admin:\n  token_env: MY-TOKEN\n")),
              "t.yaml:8:14: admin.token_env: invalid character '-' in an environment variable name");
    EXPECT_EQ(error_of(append("admin:\n  stall_after: 0s\n")),
              "t.yaml:8:16: admin.stall_after: must be greater than 0");
    EXPECT_EQ(error_of(append("admin:\n  listn: 127.0.0.1:1\n")),
              "t.yaml:8:3: admin.listn: unknown key, did you mean \"listen\"?");
}

TEST(ConfigTags, SourceAndSymbolTags) {
    const Config c = parse(R"(sources:
  - name: sim
    url: "http://127.0.0.1:8081/quotes/{symbol}"
    interval: 50ms
    tags: [us]
    symbols: [AAPL, { name: IBM, tags: [nyse, blue-chip] }, {name: MSFT}]
    fields: {bid: /bid, ask: /ask}
)");
    const SourceConfig& s = c.sources[0];
    EXPECT_EQ(s.symbols, (std::vector<std::string>{"AAPL", "IBM", "MSFT"}));
    EXPECT_TRUE(s.has_tag("AAPL", "us"));
    EXPECT_FALSE(s.has_tag("AAPL", "nyse"));
    EXPECT_TRUE(s.has_tag("IBM", "nyse"));
    EXPECT_TRUE(s.has_tag("IBM", "blue-chip"));
    EXPECT_TRUE(s.has_tag("IBM", "us"));
    EXPECT_FALSE(s.has_tag("MSFT", "nyse"));
    EXPECT_EQ(s.symbol_tags.size(), 1u);
}

TEST(ConfigTags, Errors) {
    EXPECT_EQ(error_of(replace_line(5, "    symbols: [AAPL, {name: IBM, tags: [a b]}]")),
              "t.yaml:5:40: sources[0].symbols[1].tags[0]: invalid character ' ' in tag; allowed: "
              "A-Z a-z 0-9 . _ -");
    EXPECT_EQ(error_of(replace_line(5, "    symbols: [AAPL, {name: IBM, tags: [x, x]}]")),
              "t.yaml:5:43: sources[0].symbols[1].tags[1]: duplicate tag \"x\"");
    EXPECT_EQ(error_of(replace_line(5, "    symbols: [AAPL, {tags: [x]}]")),
              "t.yaml:5:21: sources[0].symbols[1].name: required key is missing");
    EXPECT_EQ(error_of(replace_line(5, "    symbols: [AAPL, {name: AAPL}]")),
              "t.yaml:5:21: sources[0].symbols[1]: duplicate symbol \"AAPL\", already at sources[0].symbols[0]");
    EXPECT_EQ(error_of(replace_line(5, "    symbols: [AAPL, {name: IBM, tag: [x]}]")),
              "t.yaml:5:33: sources[0].symbols[1].tag: unknown key, did you mean \"tags\"?");
    EXPECT_EQ(error_of(append("    tags: nyse\n")),
              "t.yaml:7:11: sources[0].tags: expected a list, got \"nyse\"");
}

TEST(ParseDuration, Accepts) {
    const std::pair<std::string_view, Duration> cases[] = {
        {"50ms", 50ms},
        {"3s", 3s},
        {"1.5s", 1500ms},
        {"250us", 250us},
        {"100ns", 100ns},
        {"2m", 2min},
        {"1h", 1h},
        {"0s", 0s},
        {"0.1s", 100ms},
        {"0.000000001s", 1ns},
        {"1.25ms", 1250us},
        {"1.50000000000000000000000000s", 1500ms},  // trailing zeros are exact
        {"007ms", 7ms},
        {"9223372036854775807ns", Duration(9223372036854775807)},
        {"2562047h", 2562047h},
    };
    for (const auto& [text, expected] : cases) {
        const std::optional<Duration> d = parse_duration(text);
        ASSERT_TRUE(d) << text;
        EXPECT_EQ(*d, expected) << text;
    }
}

TEST(ParseDuration, Rejects) {
    const std::string_view cases[] = {
        "",        "ms",       "50",        "-5s",      "+5s",   " 5s",    "5s ",   "5 s",
        "5sec",    "5S",       "5d",        "1.s",      ".5s",   "1..5s",  "1e3ms", "1h30m",
        "0x10s",   "abc",      "5ms5",      "1.5ns",    "0.0000000001s",    // finer than 1ns
        "9223372036854775808ns", "2562048h", "99999999999999999999999999s",   // overflow
    };
    for (std::string_view text : cases) EXPECT_FALSE(parse_duration(text)) << '"' << text << '"';
}

TEST(ConfigAdmin, AllowUnauthenticated) {
    EXPECT_FALSE(parse(append("admin: {}\n")).admin.allow_unauthenticated);
    EXPECT_TRUE(parse(append("admin: { listen: \"0.0.0.0:9100\", allow_unauthenticated: true }\n"))
                    .admin.allow_unauthenticated);
    EXPECT_FALSE(parse(append("admin: { allow_unauthenticated: false }\n")).admin.allow_unauthenticated);
    EXPECT_EQ(error_of(append("admin: { allow_unauthenticated: yes }\n")).rfind("t.yaml:7:33: admin.allow_unauthenticated: ", 0), 0u)
        << error_of(append("admin: { allow_unauthenticated: yes }\n"));
    EXPECT_EQ(error_of(append("admin: { allow_unauthenticated: \"true\" }\n")).rfind("t.yaml:7:33: admin.allow_unauthenticated: ", 0), 0u);
}

// ---- duration ceilings ---------------------------------------------------------------------

// A `kafka:` section from line 7: brokers on 8, topics on 9.
const std::string kafka_head = "kafka:\n  brokers: \"k0:9092,k1:9092\"\n  topics: { quotes: md.quotes }\n";

struct DurationCeiling {
    std::string yaml_at;    // the config with {} for the value
    std::string at_max;     // accepted
    std::string over_max;   // 1ns more: rejected
    std::string expected;   // the error for over_max
};

// The ceilings docs/configuration.md documents, each at its value and 1ns above.
std::vector<DurationCeiling> duration_ceilings() {
    const std::string host = "hosts:\n  - host: 127.0.0.1\n";
    return {
        {replace_line(4, "    interval: {}"), "1h", "3600000000001ns", "t.yaml:4:15: sources[0].interval: must not exceed 1h"},
        {replace_line(4, "    interval: 1h") + "    timeout: {}\n", "1h", "3600000000001ns",
         "t.yaml:7:14: sources[0].timeout: must not exceed 1h"},
        {append("    connect_timeout: {}\n"), "1m", "60000000001ns", "t.yaml:7:22: sources[0].connect_timeout: must not exceed 1m"},
        {append("    stale_after: {}\n"), "24h", "86400000000001ns", "t.yaml:7:18: sources[0].stale_after: must not exceed 24h"},
        {append("shutdown:\n  grace: {}\n"), "10m", "600000000001ns", "t.yaml:8:10: shutdown.grace: must not exceed 10m"},
        {append("shutdown:\n  interrupt_grace: {}\n"), "10m", "600000000001ns",
         "t.yaml:8:20: shutdown.interrupt_grace: must not exceed 10m"},
        {append("log:\n  summary_every: {}\n"), "1h", "3600000000001ns", "t.yaml:8:18: log.summary_every: must not exceed 1h"},
        {append("output:\n  flush_every: {}\n"), "1h", "3600000000001ns", "t.yaml:8:16: output.flush_every: must not exceed 1h"},
        {append("output:\n  bar_interval: {}\n"), "24h", "86400000000001ns", "t.yaml:8:17: output.bar_interval: must not exceed 24h"},
        {append("output:\n  overflow_wait: {}\n"), "1s", "1000000001ns", "t.yaml:8:18: output.overflow_wait: must not exceed 1s"},
        {append("output:\n  rotate:\n    max_age: {}\n"), "168h", "604800000000001ns",
         "t.yaml:9:14: output.rotate.max_age: must not exceed 168h"},
        {append("admin:\n  stall_after: {}\n"), "1h", "3600000000001ns", "t.yaml:8:16: admin.stall_after: must not exceed 1h"},
        {append(host + "    rate_limit_pause: {}\n"), "1h", "3600000000001ns",
         "t.yaml:9:23: hosts[0].rate_limit_pause: must not exceed 1h"},
        {append(host + "    ban_pause: {}\n"), "168h", "604800000000001ns", "t.yaml:9:16: hosts[0].ban_pause: must not exceed 168h"},
        {append(host + "    max_pause: {}\n"), "168h", "604800000000001ns", "t.yaml:9:16: hosts[0].max_pause: must not exceed 168h"},
        {append(host + "    breaker:\n      cooldown: {}\n      max_cooldown: 1h\n"), "1h", "3600000000001ns",
         "t.yaml:10:17: hosts[0].breaker.cooldown: must not exceed 1h"},
        {append(host + "    breaker:\n      max_cooldown: {}\n"), "1h", "3600000000001ns",
         "t.yaml:10:21: hosts[0].breaker.max_cooldown: must not exceed 1h"},
        {append(kafka_head + "  linger: {}\n"), "10s", "10000000001ns", "t.yaml:10:11: kafka.linger: must not exceed 10s"},
        {append(kafka_head + "  overflow_wait: {}\n"), "1s", "1000000001ns",
         "t.yaml:10:18: kafka.overflow_wait: must not exceed 1s"},
    };
}

std::string with_value(std::string yaml, const std::string& value) {
    return yaml.replace(yaml.find("{}"), 2, value);
}

TEST(ConfigErrors, EveryDurationHasACeiling) {
    for (const auto& c : duration_ceilings()) {
        EXPECT_EQ(error_of(with_value(c.yaml_at, c.at_max)), "(no error)") << c.expected;
        EXPECT_EQ(error_of(with_value(c.yaml_at, c.over_max)), c.expected);
    }
}

// Overflow-checked a + b and a * b on nanosecond counts.
bool add_fits(std::int64_t a, std::int64_t b) {
    std::int64_t r;
    return !__builtin_add_overflow(a, b, &r);
}
bool mul_fits(std::int64_t a, std::int64_t b) {
    std::int64_t r;
    return !__builtin_mul_overflow(a, b, &r);
}

// The values derived from durations (the default staleness, the drain's deadline and its
// watchdog, the next bar boundary, a pause or cooldown from now, the age of a segment) fit
// with every duration at its ceiling, and far from the edge: a factor 1000 to spare.
TEST(ConfigParse, DerivedDurationsCannotOverflowAtTheCeilings) {
    const Config c = parse(replace_line(4, "    interval: 1h") + "    timeout: 1h\n" + R"(
shutdown: { grace: 10m, interrupt_grace: 10m }
log: { summary_every: 1h }
output: { flush_every: 1h, bar_interval: 24h, rotate: { max_age: 168h } }
admin: { stall_after: 1h }
hosts:
  - host: 127.0.0.1
    rate_limit_pause: 1h
    ban_pause: 168h
    max_pause: 168h
    breaker: { cooldown: 1h, max_cooldown: 1h }
)");
    const SourceConfig& s = c.sources[0];
    EXPECT_EQ(s.stale_after, 10h);  // 10 * interval
    const HostConfig& h = c.hosts[0];
    const std::int64_t steady_now = std::chrono::steady_clock::now().time_since_epoch().count();
    const std::int64_t wall_now = std::chrono::system_clock::now().time_since_epoch().count();
    constexpr std::int64_t spare = 1000;
    for (std::int64_t now : {steady_now, wall_now}) {
        for (Duration d : {s.stale_after, c.shutdown.grace + c.shutdown.grace / 10, c.output.bar_interval * 2,
                           h.max_pause, h.ban_pause, h.rate_limit_pause, h.breaker.max_cooldown * 2,
                           c.output.rotate_max_age, c.admin.stall_after, c.log.summary_every, 3 * s.interval,
                           s.timeout + s.connect_timeout}) {
            ASSERT_TRUE(mul_fits(d.count(), spare)) << d.count();
            EXPECT_TRUE(add_fits(now, d.count() * spare)) << d.count();
        }
    }
    // The multiples taken of a parsed value: 10 intervals, the bar boundary (now / bar + 1) * bar.
    EXPECT_TRUE(mul_fits(s.interval.count(), 10 * spare));
    EXPECT_TRUE(mul_fits(wall_now / c.output.bar_interval.count() + 1, c.output.bar_interval.count()));
}

// ---- reload policies -------------------------------------------------------------------------

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

// ---- the admin token -------------------------------------------------------------------------

struct TempFile {
    std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                ("mdagg-config-test-" + std::to_string(::getpid()));
    TempFile() { std::filesystem::create_directories(dir); }
    ~TempFile() { std::filesystem::remove_all(dir); }
    std::filesystem::path write(const std::string& name, const std::string& text) const {
        std::ofstream(dir / name, std::ios::binary) << text;
        return dir / name;
    }
};

Config with_token_file(const std::filesystem::path& path) {
    return parse(append("admin: { token_file: \"" + path.string() + "\" }\n"));
}

TEST(ConfigAdmin, TokenFileIsReadWithOneTrailingNewlineCut) {
    TempFile t;
    EXPECT_EQ(admin_token(with_token_file(t.write("a", "s3cret\n"))), "s3cret");
    EXPECT_EQ(admin_token(with_token_file(t.write("b", "s3cret\r\n"))), "s3cret");
    EXPECT_EQ(admin_token(with_token_file(t.write("c", "s3cret"))), "s3cret");
    EXPECT_EQ(admin_token(with_token_file(t.write("d", ""))), "");
    EXPECT_FALSE(admin_token_configured(with_token_file(t.dir / "d")));
    EXPECT_TRUE(admin_token_configured(with_token_file(t.dir / "a")));
}

TEST(ConfigAdmin, UnreadableTokenFileNamesThePathNeverTheContents) {
    TempFile t;
    const auto missing = t.dir / "missing";
    try {
        admin_token(with_token_file(missing));
        ADD_FAILURE() << "no error";
    } catch (const ConfigError& e) {
        EXPECT_EQ(std::string(e.what()),
                  "admin.token_file \"" + missing.string() + "\": cannot read: No such file or directory");
    }
    const auto huge = t.write("huge", std::string(70'000, 'S'));
    try {
        admin_token(with_token_file(huge));
        ADD_FAILURE() << "no error";
    } catch (const ConfigError& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find(huge.string()), std::string::npos) << message;
        EXPECT_EQ(message.find("SSSS"), std::string::npos) << message;
    }
    EXPECT_THROW(admin_token(with_token_file(t.dir)), ConfigError);  // a directory
}

TEST(ConfigAdmin, TokenEnvAndTokenFileExcludeEachOther) {
    EXPECT_EQ(error_of(append("admin:\n  token_env: T\n  token_file: /t\n")),
              "t.yaml:9:15: admin.token_file: set either admin.token_env or admin.token_file, not both");
    EXPECT_EQ(error_of(append("admin:\n  token_file: /t\n  token_env: T\n")),
              "t.yaml:9:14: admin.token_env: set either admin.token_env or admin.token_file, not both");
    EXPECT_EQ(error_of(append("admin:\n  token_file: \"\"\n")), "t.yaml:8:15: admin.token_file: must not be empty");
}

TEST(ConfigAdmin, TokenFromTheEnvironmentVariable) {
    ::setenv("MDAGG_CONFIG_TEST_TOKEN", "from-env", 1);
    EXPECT_EQ(admin_token(parse(append("admin: { token_env: MDAGG_CONFIG_TEST_TOKEN }\n"))), "from-env");
    ::unsetenv("MDAGG_CONFIG_TEST_TOKEN");
    EXPECT_EQ(admin_token(parse(append("admin: { token_env: MDAGG_CONFIG_TEST_TOKEN }\n"))), "");
    EXPECT_EQ(admin_token(parse(append("admin: {}\n"))), "");
}

// A Kubernetes Secret volume: token -> ..data/token, ..data -> ..<timestamp>; an update writes
// a new timestamped directory and swaps ..data.
TEST(ConfigAdmin, FileStampSeesASecretSymlinkSwapAndAnEditInPlace) {
    TempFile t;
    namespace fs = std::filesystem;
    fs::create_directories(t.dir / "..v1");
    std::ofstream(t.dir / "..v1" / "token") << "one\n";
    fs::create_directory_symlink("..v1", t.dir / "..data");
    fs::create_symlink("..data/token", t.dir / "token");
    const std::string path = (t.dir / "token").string();
    const auto first = file_stamp(path);
    ASSERT_TRUE(first);
    EXPECT_EQ(file_stamp(path), first);
    EXPECT_EQ(admin_token(with_token_file(path)), "one");

    fs::create_directories(t.dir / "..v2");
    std::ofstream(t.dir / "..v2" / "token") << "two\n";
    fs::create_directory_symlink("..v2", t.dir / "..data_tmp");
    fs::rename(t.dir / "..data_tmp", t.dir / "..data");  // atomic, as the kubelet does
    fs::remove_all(t.dir / "..v1");
    const auto second = file_stamp(path);
    ASSERT_TRUE(second);
    EXPECT_NE(second, first);
    EXPECT_EQ(admin_token(with_token_file(path)), "two");

    std::ofstream(t.dir / "..v2" / "token") << "three, longer\n";  // in place: size and mtime
    EXPECT_NE(file_stamp(path), second);
    fs::remove(t.dir / "..v2" / "token");
    EXPECT_FALSE(file_stamp(path));
}

}  // namespace
}  // namespace mdagg

// ---- kafka ---------------------------------------------------------------------------------

namespace mdagg {
namespace {

TEST(ConfigKafka, AbsentSectionMeansNoKafka) {
    const Config c = parse(minimal);
    EXPECT_FALSE(c.kafka.enabled);
    EXPECT_TRUE(c.kafka.properties.empty());
}

TEST(ConfigKafka, DefaultsAndEveryKey) {
    const Config d = parse(append(kafka_head));
    EXPECT_TRUE(d.kafka.enabled);
    EXPECT_EQ(d.kafka.brokers, "k0:9092,k1:9092");
    EXPECT_EQ(d.kafka.topics.quotes, "md.quotes");
    EXPECT_EQ(d.kafka.topics.bars, "");  // not sent
    EXPECT_EQ(d.kafka.acks, KafkaAcks::all);
    EXPECT_TRUE(d.kafka.idempotence);
    EXPECT_EQ(d.kafka.compression, KafkaCompression::none);
    EXPECT_EQ(d.kafka.linger, 5ms);
    EXPECT_EQ(d.kafka.max_buffer_bytes, 64u * 1024 * 1024);
    EXPECT_EQ(d.kafka.overflow, OverflowPolicy::drop_newest);
    EXPECT_EQ(d.kafka.overflow_wait, 20ms);

    const Config c = parse(append(R"(kafka:
  brokers: "kafka-0.kafka:9092,kafka-1.kafka:9092"
  topics: { quotes: md.quotes, bars: md.bars, events: md.events }
  acks: 1
  idempotence: false
  compression: zstd
  linger: 0
  max_buffer_bytes: 1048576
  overflow: block
  overflow_wait: 50ms
  properties:
    security.protocol: SASL_SSL
    sasl.mechanism: SCRAM-SHA-512
    sasl.username: { env: KAFKA_USERNAME }
    sasl.password: { file: /var/run/secrets/kafka/password }
    message.timeout.ms: 30000
)"));
    EXPECT_EQ(c.kafka.topics.bars, "md.bars");
    EXPECT_EQ(c.kafka.topics.events, "md.events");
    EXPECT_EQ(c.kafka.acks, KafkaAcks::one);
    EXPECT_FALSE(c.kafka.idempotence);
    EXPECT_EQ(c.kafka.compression, KafkaCompression::zstd);
    EXPECT_EQ(c.kafka.linger, 0ns);
    EXPECT_EQ(c.kafka.max_buffer_bytes, 1048576u);
    EXPECT_EQ(c.kafka.overflow, OverflowPolicy::block);
    EXPECT_EQ(c.kafka.overflow_wait, 50ms);
    ASSERT_EQ(c.kafka.properties.size(), 5u);
    EXPECT_EQ(c.kafka.properties[0].key, "security.protocol");
    EXPECT_EQ(c.kafka.properties[0].value, (SecretRef{SecretRef::From::literal, "SASL_SSL"}));
    EXPECT_EQ(c.kafka.properties[2].value, (SecretRef{SecretRef::From::env, "KAFKA_USERNAME"}));
    EXPECT_EQ(c.kafka.properties[3].value, (SecretRef{SecretRef::From::file, "/var/run/secrets/kafka/password"}));
    EXPECT_EQ(c.kafka.properties[3].line, 21);
    EXPECT_EQ(c.kafka.properties[3].column, 20);
    EXPECT_EQ(c.kafka.properties[4].value.text, "30000");
}

TEST(ConfigKafka, ErrorsPointAtTheKey) {
    EXPECT_EQ(error_of(append("kafka:\n  topics: { quotes: q }\n")), "t.yaml:8:3: kafka.brokers: required key is missing");
    EXPECT_EQ(error_of(append("kafka:\n  brokers: k:9092\n  topics: {}\n")),
              "t.yaml:8:3: kafka.topics: name at least one of quotes, bars, events");
    EXPECT_EQ(error_of(append("kafka:\n  brokers: k:9092\n  topics: { quotes: \"md quotes\" }\n")),
              "t.yaml:9:21: kafka.topics.quotes: invalid character ' ' in a Kafka topic name; allowed: A-Z a-z 0-9 . _ -");
    EXPECT_EQ(error_of(append(kafka_head + "  acks: 1\n")),
              "t.yaml:8:3: kafka.acks: must be all when idempotence is true (librdkafka's idempotent producer)");
    EXPECT_EQ(error_of(append(kafka_head + "  overflow: drop_oldest\n")).substr(0, 30), "t.yaml:10:13: kafka.overflow: ");
    EXPECT_EQ(error_of(append(kafka_head + "  compression: brotli\n")).substr(0, 33),
              "t.yaml:10:16: kafka.compression: ");
    EXPECT_EQ(error_of(append(kafka_head + "  max_buffer_bytes: 100\n")).substr(0, 38),
              "t.yaml:10:21: kafka.max_buffer_bytes: ");
}

// librdkafka's own rd_kafka_conf_set judges the properties at load time.
TEST(ConfigKafka, PropertiesAreCheckedByLibrdkafka) {
    EXPECT_EQ(error_of(append(kafka_head + "  properties:\n    sasl.pasword: x\n")),
              "t.yaml:11:19: kafka.properties.sasl.pasword: unknown librdkafka property \"sasl.pasword\"");
    EXPECT_EQ(error_of(append(kafka_head + "  properties:\n    security.protocol: SASL_TLS\n")),
              "t.yaml:11:24: kafka.properties.security.protocol: Invalid value \"SASL_TLS\" for configuration "
              "property \"security.protocol\"");
    EXPECT_EQ(error_of(append(kafka_head + "  properties:\n    message.timeout.ms: soon\n")),
              "t.yaml:11:25: kafka.properties.message.timeout.ms: Invalid value for configuration property "
              "\"message.timeout.ms\"");
    // An unknown key is refused even when its value is a secret, which is not read here.
    EXPECT_EQ(error_of(append(kafka_head + "  properties:\n    sasl.pasword: { env: KAFKA_PASSWORD }\n")),
              "t.yaml:11:19: kafka.properties.sasl.pasword: unknown librdkafka property \"sasl.pasword\"");
    EXPECT_EQ(error_of(append(kafka_head + "  properties:\n    acks: 1\n")),
              "t.yaml:11:11: kafka.properties.acks: set by kafka.acks, not in kafka.properties");
    EXPECT_EQ(error_of(append(kafka_head + "  properties:\n    sasl.password: { env: A, file: b }\n")),
              "t.yaml:11:20: kafka.properties.sasl.password: expected exactly one of { env: NAME } or { file: PATH }");
    EXPECT_EQ(error_of(append(kafka_head + "  properties:\n    sasl.password: { env: \"A-B\" }\n")),
              "t.yaml:11:27: kafka.properties.sasl.password.env: invalid character '-' in an environment variable name");
}

TEST(ConfigKafka, SecretsAreReadAtStartUpAndNeverShown) {
    TempFile t;
    const auto password = t.write("password", "hunter2-file\n");
    ::setenv("MDAGG_TEST_KAFKA_USER", "alice-env", 1);
    const Config c = parse(append(kafka_head + "  properties:\n    sasl.username: { env: MDAGG_TEST_KAFKA_USER }\n"
                                  "    sasl.password: { file: \"" + password.string() + "\" }\n"
                                  "    client.id: mdagg-1\n"));
    const auto props = kafka_properties(c);
    ASSERT_EQ(props.size(), 3u);
    EXPECT_EQ(props[0], (std::pair<std::string, std::string>("sasl.username", "alice-env")));
    EXPECT_EQ(props[1], (std::pair<std::string, std::string>("sasl.password", "hunter2-file")));
    EXPECT_EQ(props[2], (std::pair<std::string, std::string>("client.id", "mdagg-1")));

    ::unsetenv("MDAGG_TEST_KAFKA_USER");
    try {
        kafka_properties(c);
        ADD_FAILURE() << "an unset variable is an error";
    } catch (const ConfigError& e) {
        EXPECT_STREQ(e.what(), "t.yaml:11:20: kafka.properties.sasl.username: environment variable "
                               "MDAGG_TEST_KAFKA_USER is not set");
    }
    // A value librdkafka refuses, from a secret: the message names the variable, not the value.
    ::setenv("MDAGG_TEST_KAFKA_TIMEOUT", "hunter2-not-a-number", 1);
    const Config bad = parse(append(kafka_head + "  properties:\n    socket.timeout.ms: { env: MDAGG_TEST_KAFKA_TIMEOUT }\n"));
    try {
        kafka_properties(bad);
        ADD_FAILURE() << "an invalid secret value is an error";
    } catch (const ConfigError& e) {
        const std::string what = e.what();
        EXPECT_EQ(what.find("hunter2"), std::string::npos) << what;
        EXPECT_EQ(what, "t.yaml:11:24: kafka.properties.socket.timeout.ms: librdkafka refuses the value read from "
                        "environment variable MDAGG_TEST_KAFKA_TIMEOUT (not shown)");
    }
    ::unsetenv("MDAGG_TEST_KAFKA_TIMEOUT");
    ::setenv("MDAGG_TEST_KAFKA_USER", "alice-env", 1);
    std::filesystem::remove(password);
    try {
        kafka_properties(c);
        ADD_FAILURE();
    } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("cannot read"), std::string::npos) << e.what();
    }
    ::unsetenv("MDAGG_TEST_KAFKA_USER");
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

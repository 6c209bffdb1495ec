// Valid configs: parsing, tags, durations, URL targets, the kafka section.
#include "config_test_helpers.hpp"

namespace mdagg {
namespace {

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
    EXPECT_EQ(d.kafka.linger, 20ms);
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

}  // namespace
}  // namespace mdagg

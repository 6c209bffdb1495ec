// Invalid configs: each error names file:line:col and the key.
#include "config_test_helpers.hpp"

namespace mdagg {
namespace {

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
    EXPECT_EQ(url_error("http://h/q/{symbol}#x"),
              at + "a fragment (\"#...\") is never sent to the server; remove it");
    EXPECT_EQ(url_error("http://h/q /{symbol}"),
              at + "invalid character ' ' in the path; percent-encode it as %20");
    EXPECT_EQ(url_error("http://h/q/{sym}"),
              at + "unknown placeholder \"{sym}\"; only {symbol}, {symbols}, {env:NAME} and {file:PATH} are supported");
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

}  // namespace
}  // namespace mdagg

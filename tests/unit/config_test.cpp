#include <mdagg/config.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
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
              "t.yaml:7:1: colour: unknown key; valid keys: runtime, shutdown, log, output, admin, sources");
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
    EXPECT_EQ(url_error("https://h/{symbol}"), at + "https is not supported yet");
    EXPECT_EQ(url_error("ftp://h/{symbol}"), at + "unsupported scheme \"ftp\"; only http is supported");
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

}  // namespace
}  // namespace mdagg

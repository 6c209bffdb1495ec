// The configuration schema: one table of keys per YAML mapping, read in document order so the
// first problem in the file is the one reported. Checks that need two keys run afterwards.
#include "detail.hpp"
#include "presets.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <limits>
#include <memory>
#include <system_error>
#include <thread>
#include <unordered_map>

namespace mdagg {

namespace {

using namespace config_detail;

constexpr std::uint64_t max_threads = 1024;
constexpr std::uint64_t max_symbols = 1'000'000;
constexpr std::uint64_t min_body_bytes = 256;
constexpr std::uint64_t max_cost = 1'000'000;
constexpr std::uint64_t max_body_bytes = 64 * 1024 * 1024;
// Below a few KiB the sink could not hold even one batch of records.
constexpr std::uint64_t min_buffer_bytes = 4096;
constexpr std::uint64_t max_buffer_bytes = std::uint64_t{64} * 1024 * 1024 * 1024;

// Segments smaller than this would rotate on every flush.
constexpr std::uint64_t min_rotate_bytes = 4096;

// Ceilings of the durations (docs/configuration.md, Validation). Each is far above any sane setting and
// far below the 292 years a signed 64-bit count of nanoseconds holds, so what is derived from
// them (10 * interval, now + pause, t0 + grace, twice a cooldown) cannot overflow.
using namespace std::chrono_literals;
constexpr Duration max_period = 1h;        // intervals, timeouts, cooldowns, stall_after
constexpr Duration max_grace = 10min;      // drain budgets: Kubernetes waits in the same range
constexpr Duration max_bar = 24h;          // one bar per day is the longest that makes sense
constexpr Duration max_stale = 24h;        // must exceed an interval (max_period) by far
constexpr Duration max_long_pause = 168h;  // a ban or a file rotation age: a week
static_assert(10 * max_period < max_stale);

constexpr std::string_view output_formats[] = {"jsonl", "csv"};          // RecordFormat order
constexpr std::string_view overflow_policies[] = {"drop_oldest", "drop_newest", "block"};  // OverflowPolicy
constexpr std::string_view compressions[] = {"none", "gzip", "zstd"};    // Compression order
constexpr std::string_view log_levels[] = {"trace", "debug", "info", "warn", "error"};
constexpr std::string_view time_units[] = {"s", "ms", "us", "ns", "rfc3339"};  // TimeUnit order
static_assert(static_cast<int>(TimeUnit::rfc3339) == 4 && static_cast<int>(TimeUnit::s) == 0);

// ---- runtime, shutdown, log, output -------------------------------------------------------

void read_threads(const Value& v, Config& c) {
    if (v.is_scalar() && v.node().Scalar() == "auto") {
        const unsigned hardware = std::thread::hardware_concurrency();  // 0 when unknown
        c.runtime.threads = static_cast<unsigned>(std::clamp<std::uint64_t>(hardware, 1, max_threads));
        return;
    }
    const bool numeric =
        v.is_plain() && v.node().Scalar().find_first_not_of("+-0123456789") == std::string::npos;
    if (!numeric)
        v.fail(std::string("expected a number of threads or \"auto\"") +
               (v.is_scalar() ? "" : ", got " + v.describe()));
    c.runtime.threads = static_cast<unsigned>(read_uint(v, 1, max_threads));
}

constexpr Key<Config> runtime_keys[] = {
    {"threads", read_threads},
};

constexpr Key<Config> shutdown_keys[] = {
    {"grace", [](const Value& v, Config& c) { c.shutdown.grace = read_duration(v, max_grace); }},
    {"interrupt_grace",
     [](const Value& v, Config& c) { c.shutdown.interrupt_grace = read_duration(v, max_grace); }},
};

constexpr Key<Config> log_keys[] = {
    {"level",
     [](const Value& v, Config& c) { c.log.level = log_levels[read_choice(v, log_levels)]; }},
    {"summary_every",
     [](const Value& v, Config& c) { c.log.summary_every = read_duration(v, max_period); }},
};

// A duration, or 0 to switch the feature off.
Duration read_duration_or_zero(const Value& v, Duration max) {
    if (v.is_plain() && v.node().Scalar() == "0") return Duration::zero();
    return read_duration(v, max);
}

RecordFormat read_format(const Value& v) {
    return static_cast<RecordFormat>(read_choice(v, output_formats));
}

constexpr Key<Config> format_keys[] = {
    {"quotes", [](const Value& v, Config& c) { c.output.quotes_format = read_format(v); }},
    {"bars", [](const Value& v, Config& c) { c.output.bars_format = read_format(v); }},
};

// `format: csv` for both streams, or `format: { quotes: csv, bars: jsonl }`.
void read_formats(const Value& v, Config& c) {
    if (v.is_map()) {
        read_map(v, format_keys, c);
        return;
    }
    if (!v.is_scalar())
        v.fail("expected jsonl, csv or {quotes: ..., bars: ...}, got " + v.describe());
    c.output.quotes_format = c.output.bars_format = read_format(v);
}

constexpr Key<Config> rotate_keys[] = {
    {"max_bytes",
     [](const Value& v, Config& c) {
         c.output.rotate_max_bytes = read_uint(v, 0, std::numeric_limits<std::uint64_t>::max());
         if (c.output.rotate_max_bytes != 0 && c.output.rotate_max_bytes < min_rotate_bytes)
             v.fail("must be 0 (no size rotation) or at least " + std::to_string(min_rotate_bytes));
     }},
    {"max_age", [](const Value& v, Config& c) { c.output.rotate_max_age = read_duration_or_zero(v, max_long_pause); }},
};

constexpr Key<Config> retention_keys[] = {
    {"max_files",
     [](const Value& v, Config& c) {
         c.output.retention_max_files = read_uint(v, 0, std::numeric_limits<std::uint64_t>::max());
     }},
    {"max_bytes",
     [](const Value& v, Config& c) {
         c.output.retention_max_bytes = read_uint(v, 0, std::numeric_limits<std::uint64_t>::max());
     }},
};

constexpr Key<Config> output_keys[] = {
    {"dir", [](const Value& v, Config& c) { c.output.dir = read_nonempty_string(v); }},
    {"flush_every", [](const Value& v, Config& c) { c.output.flush_every = read_duration(v, max_period); }},
    {"quotes", [](const Value& v, Config& c) { c.output.quotes = read_bool(v); }},
    {"bar_interval", [](const Value& v, Config& c) { c.output.bar_interval = read_duration(v, max_bar); }},
    {"max_buffer_bytes",
     [](const Value& v, Config& c) {
         c.output.max_buffer_bytes = read_uint(v, min_buffer_bytes, max_buffer_bytes);
     }},
    {"overflow",
     [](const Value& v, Config& c) {
         c.output.overflow = static_cast<OverflowPolicy>(read_choice(v, overflow_policies));
     }},
    {"overflow_wait",
     [](const Value& v, Config& c) {
         // It stalls the aggregator (and, with one thread, the pollers): keep it short.
         c.output.overflow_wait = read_duration(v, 1s);
     }},
    {"format", read_formats},
    {"rotate", [](const Value& v, Config& c) { read_map(v, rotate_keys, c); }},
    {"retention", [](const Value& v, Config& c) { read_map(v, retention_keys, c); }},
    {"compression",
     [](const Value& v, Config& c) {
         c.output.compression = static_cast<Compression>(read_choice(v, compressions));
     }},
};

// ---- admin ---------------------------------------------------------------------------------

// "HOST:PORT" or "[V6]:PORT" with an IP literal: the ops server binds before anything else
// starts, and a name to look up would make that depend on DNS.
void read_listen(const Value& v, Config& c) {
    const std::string text = read_nonempty_string(v);
    HostPort split;
    const HostPortError error = split_host_port(text, split);
    const std::string host(split.host);
    if (error == HostPortError::malformed)
        v.fail("expected HOST:PORT like \"127.0.0.1:9100\" or \"[::1]:9100\"");
    if (error == HostPortError::needs_brackets) v.fail("an IPv6 address needs brackets: [" + host + "]:PORT");
    if (split.bracketed) {
        in6_addr a6{};
        if (::inet_pton(AF_INET6, host.c_str(), &a6) != 1) v.fail("\"" + host + "\" is not an IPv6 address");
    } else {
        in_addr a4{};
        if (::inet_pton(AF_INET, host.c_str(), &a4) != 1)
            v.fail("\"" + host + "\" is not an IPv4 address (host names are not looked up here)");
    }
    if (!parse_port(split.port, c.admin.port)) v.fail("port must be a number between 0 and 65535");
    c.admin.host = host;
}

constexpr Key<Config> admin_keys[] = {
    {"listen", read_listen},
    {"token_env",
     [](const Value& v, Config& c) {
         c.admin.token_env = read_nonempty_string(v);
         for (char ch : c.admin.token_env)
             if (!is_ascii_alnum(ch) && ch != '_')
                 v.fail("invalid character " + describe_char(ch) + " in an environment variable name");
         if (!c.admin.token_file.empty()) v.fail("set either admin.token_env or admin.token_file, not both");
     }},
    {"token_file",
     [](const Value& v, Config& c) {
         c.admin.token_file = read_nonempty_string(v);
         if (!c.admin.token_env.empty()) v.fail("set either admin.token_env or admin.token_file, not both");
     }},
    {"stall_after", [](const Value& v, Config& c) { c.admin.stall_after = read_duration(v, max_period); }},
    {"allow_unauthenticated", [](const Value& v, Config& c) { c.admin.allow_unauthenticated = read_bool(v); }},
    {"symbol_metrics",
     [](const Value& v, Config& c) {
         for (const Value& item : read_list(v)) {
             std::string glob = read_nonempty_string(item);
             // A glob is a symbol with wildcards: check it with them taken out.
             std::string plain;
             for (char ch : glob)
                 if (ch != '*' && ch != '?') plain += ch;
             if (!plain.empty())
                 if (auto err = symbol_error(plain)) item.fail(*err);
             c.admin.symbol_metrics.push_back(std::move(glob));
         }
     }},
};

void read_admin(const Value& v, Config& c) {
    c.admin.enabled = true;
    read_map(v, admin_keys, c);
}

// ---- sources[i].fields ---------------------------------------------------------------------

std::string read_pointer(const Value& v) {
    std::string pointer = read_string(v);
    if (auto err = json_pointer_error(pointer)) v.fail(*err);
    return pointer;
}

// An empty pointer means "not mapped" (see FieldMap), which bid and ask cannot be.
std::string read_required_pointer(const Value& v) {
    std::string pointer = read_pointer(v);
    if (pointer.empty()) v.fail("must not be empty");
    return pointer;
}

constexpr Key<TimeField> time_keys[] = {
    {"pointer", [](const Value& v, TimeField& t) { t.pointer = read_pointer(v); }, true},
    {"unit",
     [](const Value& v, TimeField& t) {
         t.unit = static_cast<TimeUnit>(read_choice(v, time_units));
     }},
};

void read_exchange_time(const Value& v, FieldMap& f) {
    TimeField time;  // unit ms unless given
    if (v.is_map())
        read_map(v, time_keys, time);
    else if (v.is_scalar())
        time.pointer = read_pointer(v);
    else
        v.fail("expected a JSON pointer or {pointer, unit}, got " + v.describe());
    if (time.pointer.empty())
        f.exchange_time.reset();
    else
        f.exchange_time = time;
}

constexpr Key<FieldMap> field_keys[] = {
    {"symbol", [](const Value& v, FieldMap& f) { f.symbol = read_pointer(v); }},
    {"bid", [](const Value& v, FieldMap& f) { f.bid = read_required_pointer(v); }, true},
    {"ask", [](const Value& v, FieldMap& f) { f.ask = read_required_pointer(v); }, true},
    {"bid_size", [](const Value& v, FieldMap& f) { f.bid_size = read_pointer(v); }},
    {"ask_size", [](const Value& v, FieldMap& f) { f.ask_size = read_pointer(v); }},
    {"exchange_time", read_exchange_time},
    {"seq", [](const Value& v, FieldMap& f) { f.seq = read_pointer(v); }},
};

// ---- sources[i].success -------------------------------------------------------------------

struct SuccessDraft {
    SuccessCheck check;
    bool has_equals = false;
};

constexpr Key<SuccessDraft> success_keys[] = {
    {"pointer", [](const Value& v, SuccessDraft& d) { d.check.pointer = read_required_pointer(v); }, true},
    {"equals",
     [](const Value& v, SuccessDraft& d) {
         // Compared with the value's text: "0" matches both "code":"0" and "retCode":0.
         d.check.equals = read_string(v);
         d.has_equals = true;
     }},
    {"empty", [](const Value& v, SuccessDraft& d) { d.check.empty = read_bool(v); }},
};

void read_success(const Value& v, FieldMap& f) {
    SuccessDraft d;
    read_map(v, success_keys, d);
    if (d.has_equals == d.check.empty)
        v.fail("needs exactly one of equals: VALUE or empty: true");
    f.success = std::move(d.check);
}

// ---- sources[i].symbols --------------------------------------------------------------------

struct SymbolRange {
    std::string prefix;
    std::uint64_t count = 0;
    std::uint64_t start = 0;
    std::optional<Value> start_value;
};

constexpr Key<SymbolRange> range_keys[] = {
    {"prefix",
     [](const Value& v, SymbolRange& r) {
         r.prefix = read_string(v);
         if (!r.prefix.empty())
             if (auto err = symbol_error(r.prefix)) v.fail(*err);
     },
     true},
    {"count", [](const Value& v, SymbolRange& r) { r.count = read_uint(v, 1, max_symbols); }, true},
    {"start",
     [](const Value& v, SymbolRange& r) {
         r.start = read_uint(v, 0, std::numeric_limits<std::uint64_t>::max());
         r.start_value = v;
     }},
};

void read_symbol_range(const Value& v, std::vector<std::string>& out) {
    SymbolRange range;
    read_map(v, range_keys, range);
    if (range.start > std::numeric_limits<std::uint64_t>::max() - (range.count - 1))
        range.start_value->fail("start + count - 1 does not fit in 64 bits");
    out.reserve(range.count);
    for (std::uint64_t i = 0; i < range.count; ++i)
        out.push_back(range.prefix + std::to_string(range.start + i));
}

// Tags name groups of pollers in admin selectors; same alphabet as source names.
std::string read_tag(const Value& v) {
    std::string tag = read_nonempty_string(v);
    for (char c : tag)
        if (!is_ascii_alnum(c) && c != '.' && c != '_' && c != '-')
            v.fail("invalid character " + describe_char(c) + " in tag; allowed: A-Z a-z 0-9 . _ -");
    return tag;
}

std::vector<std::string> read_tags(const Value& v) {
    std::vector<std::string> tags;
    for (const Value& item : read_list(v)) {
        std::string tag = read_tag(item);
        if (std::find(tags.begin(), tags.end(), tag) != tags.end())
            item.fail("duplicate tag \"" + tag + "\"");
        tags.push_back(std::move(tag));
    }
    return tags;
}

struct TaggedSymbol {
    std::string name;
    std::string venue;  // empty: the name is the venue's too
    std::vector<std::string> tags;
    std::uint8_t priority = PriorityConfig::unset;
};

constexpr Key<TaggedSymbol> tagged_symbol_keys[] = {
    {"name", [](const Value& v, TaggedSymbol& t) {
         t.name = read_string(v);
         if (auto err = symbol_error(t.name)) v.fail(*err);
     }, true},
    {"venue", [](const Value& v, TaggedSymbol& t) {
         t.venue = read_string(v);
         if (auto err = symbol_error(t.venue)) v.fail(*err);
     }},
    {"tags", [](const Value& v, TaggedSymbol& t) { t.tags = read_tags(v); }},
    {"priority", [](const Value& v, TaggedSymbol& t) { t.priority = read_priority_value(v); }},
};

void read_symbol_list(const Value& v, SourceConfig& source) {
    std::vector<std::string>& out = source.symbols;
    const std::vector<Value> items = read_list(v);
    if (items.empty()) v.fail("must list at least one symbol");
    if (items.size() > max_symbols)
        v.fail("at most " + std::to_string(max_symbols) + " symbols per source");
    std::unordered_map<std::string, std::size_t> index_of;
    std::unordered_map<std::string, std::size_t> venue_index_of;  // a plain entry's venue is its name
    for (std::size_t i = 0; i < items.size(); ++i) {
        std::string symbol;
        if (items[i].is_map()) {  // { name: X, venue: Y, tags: [a, b] }
            TaggedSymbol tagged;
            read_map(items[i], tagged_symbol_keys, tagged);
            symbol = std::move(tagged.name);
            if (!tagged.tags.empty()) source.symbol_tags[symbol] = std::move(tagged.tags);
            // Kept even when equal to the name, so a symbol_map does not override it;
            // finish_symbols drops those.
            if (!tagged.venue.empty()) source.venue_symbols[symbol] = std::move(tagged.venue);
            if (tagged.priority != PriorityConfig::unset) source.priority.symbols[symbol] = tagged.priority;
        } else {
            symbol = read_string(items[i]);
            if (auto err = symbol_error(symbol)) items[i].fail(*err);
        }
        const auto [it, fresh] = index_of.emplace(symbol, i);
        if (!fresh)
            items[i].fail("duplicate symbol \"" + symbol + "\", already at " + v.path() + '[' +
                          std::to_string(it->second) + ']');
        const std::string& venue = source.venue_symbol(symbol);
        const auto [at, fresh_venue] = venue_index_of.emplace(venue, i);
        if (!fresh_venue)
            items[i].fail(std::string("venue name \"").append(venue) + "\" is already polled for " + v.path() + '[' +
                          std::to_string(at->second) + ']');
        out.push_back(std::move(symbol));
    }
}

void read_symbols(const Value& v, SourceConfig& source) {
    if (v.is_list())
        read_symbol_list(v, source);
    else if (v.is_map())
        read_symbol_range(v, source.symbols);
    else
        v.fail("expected a list like [AAPL, MSFT] or {prefix: STOCK_, count: 2000}, got " +
               v.describe());
}

// ---- sources[i] ----------------------------------------------------------------------------

// Values kept for the checks that involve two keys, so those can point at the right one.
struct SourceDraft {
    SourceConfig cfg;
    std::optional<Value> name, url, interval, timeout, max_in_flight, stale_after, cost, tls, batch;
    std::optional<Value> symbols, symbol_map;
    BatchDraft batch_draft;
    HedgeMarks hedge;  // mirrors, hedge, priority
};

std::string read_source_name(const Value& v) {
    std::string name = read_nonempty_string(v);
    // Names end up in log fields, metrics and output records; keep them identifier-like.
    for (char c : name)
        if (!is_ascii_alnum(c) && c != '.' && c != '_' && c != '-')
            v.fail("invalid character " + describe_char(c) +
                   " in source name; allowed: A-Z a-z 0-9 . _ -");
    return name;
}

constexpr Key<SourceDraft> source_keys[] = {
    {"name",
     [](const Value& v, SourceDraft& d) {
         d.cfg.name = read_source_name(v);
         d.name = v;
     },
     true},
    {"url",
     [](const Value& v, SourceDraft& d) {
         d.cfg.url_text = read_nonempty_string(v);
         if (auto err = parse_url(d.cfg.url_text, d.cfg.url)) v.fail(*err);
         resolve_url_secrets(v, d.cfg.url);
         d.url = v;
     },
     true},
    {"interval",
     [](const Value& v, SourceDraft& d) {
         d.cfg.interval = read_duration(v, max_period);
         d.interval = v;
     },
     true},
    {"timeout",
     [](const Value& v, SourceDraft& d) {
         d.cfg.timeout = read_duration(v, max_period);
         d.timeout = v;
     }},
    {"connect_timeout",
     [](const Value& v, SourceDraft& d) {
         d.cfg.connect_timeout = read_duration(v, 1min);
     }},
    {"max_in_flight",
     [](const Value& v, SourceDraft& d) {
         d.cfg.max_in_flight = read_uint(v, 1, max_symbols);
         d.max_in_flight = v;
     }},
    {"max_body_bytes",
     [](const Value& v, SourceDraft& d) {
         d.cfg.max_body_bytes = read_uint(v, min_body_bytes, max_body_bytes);
     }},
    {"cost",
     [](const Value& v, SourceDraft& d) {
         d.cfg.cost = static_cast<std::uint32_t>(read_uint(v, 1, max_cost));
         d.cost = v;
     }},
    {"stale_after",
     [](const Value& v, SourceDraft& d) {
         d.cfg.stale_after = read_duration(v, max_stale);
         d.stale_after = v;
     }},
    {"success", [](const Value& v, SourceDraft& d) { read_success(v, d.cfg.fields); }},
    {"symbols",
     [](const Value& v, SourceDraft& d) {
         read_symbols(v, d.cfg);
         d.symbols = v;
     }},
    {"symbol_map",
     [](const Value& v, SourceDraft& d) {
         d.cfg.symbol_map = read_nonempty_string(v);
         d.symbol_map = v;
     }},
    {"tags", [](const Value& v, SourceDraft& d) { d.cfg.tags = read_tags(v); }},
    {"fields", [](const Value& v, SourceDraft& d) { read_map(v, field_keys, d.cfg.fields); }, true},
    {"headers", [](const Value& v, SourceDraft& d) { read_headers(v, d.cfg); }},
    {"accept_encoding", [](const Value& v, SourceDraft& d) { read_accept_encoding(v, d.cfg); }},
    {"tls",
     [](const Value& v, SourceDraft& d) {
         read_tls(v, d.cfg.tls);
         d.tls = v;
     }},
    // Checked and applied before the schema is read (presets.cpp): its keys are then here.
    {"preset", [](const Value&, SourceDraft&) {}},
    {"batch",
     [](const Value& v, SourceDraft& d) {
         d.batch_draft = read_batch(v);
         d.batch = v;
     }},
    {"mirrors", [](const Value& v, SourceDraft& d) { read_mirrors(v, d.cfg, d.hedge); }},
    {"hedge", [](const Value& v, SourceDraft& d) { read_hedge(v, d.cfg.hedge, d.hedge); }},
    {"priority", [](const Value& v, SourceDraft& d) { read_priority(v, d.cfg.priority, d.hedge); }},
};

SourceDraft read_source(const Value& v) {
    SourceDraft d;
    read_map(v, source_keys, d);
    SourceConfig& s = d.cfg;
    finish_symbols(v, d.symbols, d.symbol_map, s);
    // Like Prometheus: a poll that may outlive its interval would overlap the next one.
    if (!d.timeout)
        s.timeout = s.interval;
    else if (s.timeout > s.interval)
        d.timeout->fail("must not exceed the interval (" + d.interval->node().Scalar() + ")");
    if (d.batch) check_batch_url(d.batch_draft, *d.url, s);
    if (!d.max_in_flight) s.max_in_flight = s.request_count();
    // Within one interval a quote is as fresh as polling can make it.
    if (!d.stale_after)
        s.stale_after = std::max<Duration>(10 * s.interval, std::chrono::seconds(1));
    else if (s.stale_after <= s.interval)
        d.stale_after->fail("must be longer than the interval (" + d.interval->node().Scalar() + ")");
    if (d.tls && !s.uses_tls()) d.tls->fail("needs an https:// url");
    if (!s.batch && s.url.target_template.find("{symbols}") != std::string::npos)
        d.url->fail("\"{symbols}\" needs a batch: block (one request for many symbols)");
    if (!s.batch && s.symbols.size() != 1 && s.url.target_template.find("{symbol}") == std::string::npos)
        d.url->fail("must contain \"{symbol}\" because the source polls " +
                    std::to_string(s.symbols.size()) + " symbols");
    check_hedge(d.hedge, s);
    return d;
}

// Kept for checks against the hosts list, which may come before or after `sources`.
struct SourceMarks {
    std::optional<Value> url, cost;
};

void read_sources(const Value& v, Config& c, std::vector<SourceMarks>& marks) {
    if (!v.is_list()) v.fail("expected a list of sources, got " + v.describe());
    const std::vector<Value> items = read_list(v);
    if (items.empty()) v.fail("must list at least one source");
    std::unordered_map<std::string, std::size_t> index_of;
    for (std::size_t i = 0; i < items.size(); ++i) {
        SourceDraft d = read_source(items[i]);
        const auto [it, fresh] = index_of.emplace(d.cfg.name, i);
        if (!fresh)
            d.name->fail("duplicate source name \"" + d.cfg.name + "\", already used by " +
                         v.path() + '[' + std::to_string(it->second) + ']');
        c.sources.push_back(std::move(d.cfg));
        marks.push_back({d.url, d.cost});
    }
}

// ---- hosts ---------------------------------------------------------------------------------

struct HostDraft {
    HostConfig cfg;
    std::optional<Value> entry, host, burst, pause_cap;
};

constexpr Key<HostDraft> breaker_keys[] = {
    {"failures",
     [](const Value& v, HostDraft& d) {
         d.cfg.breaker.failures = static_cast<std::uint32_t>(read_uint(v, 0, 1'000'000));
         d.cfg.breaker.failures_auto = false;
     }},
    {"cooldown", [](const Value& v, HostDraft& d) { d.cfg.breaker.cooldown = read_duration(v, max_period); }},
    {"max_cooldown",
     [](const Value& v, HostDraft& d) { d.cfg.breaker.max_cooldown = read_duration(v, max_period); }},
};

constexpr Key<HostConfig::Usage> usage_keys[] = {
    {"header",
     [](const Value& v, HostConfig::Usage& u) {
         u.header = read_nonempty_string(v);
         for (char c : u.header)
             if (!is_ascii_alnum(c) && c != '-' && c != '_')
                 v.fail("invalid character " + describe_char(c) + " in a header name");
     },
     true},
    {"limit", [](const Value& v, HostConfig::Usage& u) { u.limit = read_number(v, 1, 1e12); }, true},
    {"slow_at", [](const Value& v, HostConfig::Usage& u) { u.slow_at = read_number(v, 0.05, 0.99); }},
};

void read_host_name(const Value& v, HostDraft& d) {
    const std::string text = read_nonempty_string(v);
    // Reuse the URL parser so a host here is spelled exactly as in a source's url.
    Url url;
    if (auto err = parse_url("http://" + text + "/", url))
        v.fail("expected HOST or HOST:PORT as in the sources' urls: " + *err);
    d.cfg.host = url.host;
    // A port follows the last ':' outside an IPv6 address's brackets.
    const std::size_t bracket = text.rfind(']');
    d.cfg.port = text.find(':', bracket == std::string::npos ? 0 : bracket) == std::string::npos ? 0 : url.port;
    d.host = v;
}

constexpr Key<HostDraft> host_keys[] = {
    {"host", read_host_name, true},
    {"rate", [](const Value& v, HostDraft& d) { d.cfg.rate = read_number(v, 0, 1e9); }},
    {"burst",
     [](const Value& v, HostDraft& d) {
         d.cfg.burst = read_number(v, 1, 1e9);
         d.burst = v;
     }},
    {"rate_limit_pause",
     [](const Value& v, HostDraft& d) { d.cfg.rate_limit_pause = read_duration(v, max_period); }},
    {"ban_pause", [](const Value& v, HostDraft& d) { d.cfg.ban_pause = read_duration(v, max_long_pause); }},
    {"max_pause",
     [](const Value& v, HostDraft& d) {
         d.cfg.max_pause = read_duration(v, max_long_pause);
         d.pause_cap = v;
     }},
    {"breaker", [](const Value& v, HostDraft& d) { read_map(v, breaker_keys, d); }},
    {"usage",
     [](const Value& v, HostDraft& d) {
         HostConfig::Usage usage;
         read_map(v, usage_keys, usage);
         d.cfg.usage = std::move(usage);
     }},
};

void read_hosts(const Value& v, std::vector<HostDraft>& out) {
    const std::vector<Value> items = read_list(v);
    for (const Value& item : items) {
        HostDraft d;
        d.entry = item;
        read_map(item, host_keys, d);
        if (d.cfg.usage && d.cfg.rate <= 0)
            item.fail_child("usage", "needs a rate: the usage header slows the host's token bucket");
        if (d.cfg.breaker.max_cooldown < d.cfg.breaker.cooldown)
            item.fail_child("breaker.max_cooldown", "must not be shorter than breaker.cooldown");
        for (const HostDraft& other : out)
            if (other.cfg.host == d.cfg.host && other.cfg.port == d.cfg.port)
                d.host->fail("duplicate host entry (first at line " +
                             std::to_string(other.host->mark().line + 1) + ')');
        out.push_back(std::move(d));
    }
}

// Every source gets its host's entry: an exact host:port entry, else a port-less one, else a
// default entry of its own host:port. Then the checks that need both lists.
void resolve_hosts(Config& c, std::vector<HostDraft>& drafts, const std::vector<SourceMarks>& marks) {
    std::vector<bool> used(drafts.size(), false);
    for (auto& d : drafts) c.hosts.push_back(d.cfg);
    auto host_of = [&](const Url& url) {
        std::optional<std::size_t> exact, any_port;
        for (std::size_t h = 0; h < c.hosts.size(); ++h) {
            if (c.hosts[h].host != url.host) continue;
            if (c.hosts[h].port == url.port) exact = h;
            else if (c.hosts[h].port == 0) any_port = h;
        }
        if (!exact && !any_port) {
            HostConfig def;
            def.host = url.host;
            def.port = url.port;
            c.hosts.push_back(std::move(def));
            exact = c.hosts.size() - 1;
        }
        const std::size_t h = exact ? *exact : *any_port;
        if (h < drafts.size()) used[h] = true;
        return h;
    };
    for (SourceConfig& src : c.sources) {
        src.host = host_of(src.url);
        for (MirrorConfig& mirror : src.mirrors) mirror.host = host_of(mirror.url);  // own limits
    }
    set_auto_breaker_thresholds(c);
    for (std::size_t h = 0; h < drafts.size(); ++h) {
        HostDraft& d = drafts[h];
        HostConfig& host = c.hosts[h];
        // An entry no source uses is most likely a typo that leaves the real host unlimited.
        if (!used[h]) d.host->fail("no source polls this host");
        std::uint32_t max_cost = 1;
        std::size_t costliest = 0;
        for (std::size_t s = 0; s < c.sources.size(); ++s)
            if (c.sources[s].host == h && c.sources[s].cost > max_cost) {
                max_cost = c.sources[s].cost;
                costliest = s;
            }
        if (!d.burst) {
            host.burst = std::max(host.rate, static_cast<double>(max_cost));
        } else if (host.rate > 0 && host.burst < max_cost) {
            // Such a bucket could never hold the tokens for one request.
            marks[costliest].cost->fail("exceeds burst " + d.burst->node().Scalar() + " of host " +
                                        d.host->node().Scalar());
        }
    }
}

// ---- the document --------------------------------------------------------------------------

struct Document {
    Config config;
    std::vector<SourceMarks> source_marks;
    std::vector<HostDraft> hosts;
};

constexpr Key<Document> top_keys[] = {
    {"runtime", [](const Value& v, Document& d) { read_map(v, runtime_keys, d.config); }},
    {"sharding", [](const Value& v, Document& d) { read_sharding(v, d.config); }},
    {"shutdown", [](const Value& v, Document& d) { read_map(v, shutdown_keys, d.config); }},
    {"log", [](const Value& v, Document& d) { read_map(v, log_keys, d.config); }},
    {"output", [](const Value& v, Document& d) { read_map(v, output_keys, d.config); }},
    {"admin", [](const Value& v, Document& d) { read_admin(v, d.config); }},
    {"kafka", [](const Value& v, Document& d) { read_kafka(v, d.config); }},
    {"sources", [](const Value& v, Document& d) { read_sources(v, d.config, d.source_marks); }, true},
    {"hosts", [](const Value& v, Document& d) { read_hosts(v, d.hosts); }},
};

template <class T, std::size_t N>
void list_keys(std::vector<std::string>& out, std::string_view prefix, const Key<T> (&keys)[N],
               std::initializer_list<std::string_view> sections = {}) {
    for (const Key<T>& k : keys)
        if (std::find(sections.begin(), sections.end(), k.name) == sections.end())
            out.push_back(std::string(prefix) + std::string(k.name));
}

}  // namespace

// A key that holds a mapping is listed through its own table instead (its `sections` here).
std::vector<std::string> config_schema_keys() {
    std::vector<std::string> out;
    list_keys(out, "", top_keys, {"runtime", "sharding", "shutdown", "log", "output", "admin", "kafka", "sources", "hosts"});
    list_keys(out, "runtime.", runtime_keys);
    for (std::string_view name : sharding_key_names()) out.push_back("sharding." + std::string(name));
    list_keys(out, "shutdown.", shutdown_keys);
    list_keys(out, "log.", log_keys);
    list_keys(out, "output.", output_keys, {"format", "rotate", "retention"});
    list_keys(out, "output.format.", format_keys);
    list_keys(out, "output.rotate.", rotate_keys);
    list_keys(out, "output.retention.", retention_keys);
    list_keys(out, "admin.", admin_keys);
    for (const std::string& name : kafka_key_names()) out.push_back("kafka." + name);
    list_keys(out, "sources[].", source_keys, {"success", "fields", "tls", "batch", "mirrors", "hedge", "priority"});
    for (const std::string& name : batch_key_names()) out.push_back("sources[].batch." + name);
    for (const std::string& name : hedge_key_names()) out.push_back("sources[]." + name);
    for (const std::string& name : tls_key_names()) out.push_back("sources[].tls." + name);
    list_keys(out, "sources[].success.", success_keys);
    list_keys(out, "sources[].symbols.", range_keys);           // { prefix, count, start }
    list_keys(out, "sources[].symbols[].", tagged_symbol_keys);  // [ { name, tags } ]
    list_keys(out, "sources[].fields.", field_keys, {"exchange_time"});
    list_keys(out, "sources[].fields.exchange_time.", time_keys);
    list_keys(out, "hosts[].", host_keys, {"breaker", "usage"});
    list_keys(out, "hosts[].breaker.", breaker_keys);
    list_keys(out, "hosts[].usage.", usage_keys);
    return out;
}

// By default the breaker opens when a whole round of the host's pollers failed in a row: with
// 2,000 pollers a fixed small count would trip on a start-up connect storm or a few slow
// seconds, and then stop every poller of a host that is in fact up.
void set_auto_breaker_thresholds(Config& c) {
    for (std::size_t h = 0; h < c.hosts.size(); ++h) {
        if (!c.hosts[h].breaker.failures_auto) continue;
        std::size_t pollers = 0;
        for (auto& src : c.sources) {
            // A mirror's host takes the source's pollers when they fail over.
            bool polls = src.host == h;
            for (const auto& mirror : src.mirrors) polls = polls || mirror.host == h;
            if (polls) pollers += src.request_count();
        }
        c.hosts[h].breaker.failures = static_cast<std::uint32_t>(std::clamp<std::size_t>(pollers, 5, 1'000'000));
    }
}

bool SourceConfig::has_tag(std::string_view symbol, std::string_view tag) const {
    if (std::find(tags.begin(), tags.end(), tag) != tags.end()) return true;
    const auto it = symbol_tags.find(std::string(symbol));
    return it != symbol_tags.end() && std::find(it->second.begin(), it->second.end(), tag) != it->second.end();
}

Config parse_config(std::string_view yaml_text, std::string_view file_name) {
    const std::string file(file_name);  // every Value below points into it
    Document doc;

    std::vector<YAML::Node> documents;
    try {
        documents = YAML::LoadAll(std::string(yaml_text));
    } catch (const YAML::Exception& e) {
        throw_error(file, e.mark, "", "invalid YAML: " + e.msg);
    }
    // A second document would otherwise be ignored without a word.
    if (documents.size() > 1)
        throw_error(file, documents[1].Mark(), "", "only one YAML document is allowed");

    // An empty file is an empty mapping, so it fails like any other file missing "sources".
    YAML::Node document = documents.empty() ? YAML::Node() : documents[0];
    const PresetOrigins presets = apply_presets(file, document);
    const Value root(file, document, "", YAML::Mark());
    try {
        read_map(root, top_keys, doc);
        resolve_hosts(doc.config, doc.hosts, doc.source_marks);
    } catch (const LocatedConfigError& e) {
        presets.rethrow_if_filled(e);
        throw;
    }
    doc.config.file = file;
    return std::move(doc.config);
}

std::string config_detail::read_config_text(const std::string& path) {
    const auto fail = [&](int error) {
        throw ConfigError(path + ": cannot read: " + std::generic_category().message(error));
    };
    const std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                                &std::fclose);
    if (!file) fail(errno);
    std::string text;
    char buffer[64 * 1024];
    while (const std::size_t n = std::fread(buffer, 1, sizeof buffer, file.get())) text.append(buffer, n);
    // Opening a directory succeeds; reading it is what fails (EISDIR).
    if (std::ferror(file.get())) fail(errno);
    return text;
}

Config load_config(const std::string& path) { return parse_config(read_config_text(path), path); }

}  // namespace mdagg

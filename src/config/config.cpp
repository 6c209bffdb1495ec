// The configuration schema: one table of keys per YAML mapping, read in document order so the
// first problem in the file is the one reported. Checks that need two keys run afterwards.
#include "detail.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
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
constexpr std::uint64_t max_body_bytes = 64 * 1024 * 1024;
// Below a few KiB the sink could not hold even one batch of records.
constexpr std::uint64_t min_buffer_bytes = 4096;
constexpr std::uint64_t max_buffer_bytes = std::uint64_t{64} * 1024 * 1024 * 1024;

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
    {"grace", [](const Value& v, Config& c) { c.shutdown.grace = read_duration(v); }},
    {"interrupt_grace",
     [](const Value& v, Config& c) { c.shutdown.interrupt_grace = read_duration(v); }},
};

constexpr Key<Config> log_keys[] = {
    {"level",
     [](const Value& v, Config& c) { c.log.level = log_levels[read_choice(v, log_levels)]; }},
    {"summary_every", [](const Value& v, Config& c) { c.log.summary_every = read_duration(v); }},
};

constexpr Key<Config> output_keys[] = {
    {"dir", [](const Value& v, Config& c) { c.output.dir = read_nonempty_string(v); }},
    {"flush_every", [](const Value& v, Config& c) { c.output.flush_every = read_duration(v); }},
    {"quotes", [](const Value& v, Config& c) { c.output.quotes = read_bool(v); }},
    {"bar_interval", [](const Value& v, Config& c) { c.output.bar_interval = read_duration(v); }},
    {"max_buffer_bytes",
     [](const Value& v, Config& c) {
         c.output.max_buffer_bytes = read_uint(v, min_buffer_bytes, max_buffer_bytes);
     }},
};

// ---- admin ---------------------------------------------------------------------------------

// "HOST:PORT" or "[V6]:PORT" with an IP literal: the ops server binds before anything else
// starts, and a name to look up would make that depend on DNS.
void read_listen(const Value& v, Config& c) {
    const std::string text = read_nonempty_string(v);
    std::string host;
    std::string_view port;
    constexpr std::string_view expected = "expected HOST:PORT like \"127.0.0.1:9100\" or \"[::1]:9100\"";
    if (text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') v.fail(expected);
        host = text.substr(1, close - 1);
        port = std::string_view(text).substr(close + 2);
        in6_addr a6{};
        if (::inet_pton(AF_INET6, host.c_str(), &a6) != 1) v.fail("\"" + host + "\" is not an IPv6 address");
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string::npos) v.fail(expected);
        host = text.substr(0, colon);
        port = std::string_view(text).substr(colon + 1);
        if (host.find(':') != std::string::npos) v.fail("an IPv6 address needs brackets: [" + host + "]:PORT");
        in_addr a4{};
        if (::inet_pton(AF_INET, host.c_str(), &a4) != 1)
            v.fail("\"" + host + "\" is not an IPv4 address (host names are not looked up here)");
    }
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || value > 65535)
        v.fail("port must be a number between 0 and 65535");
    c.admin.host = host;
    c.admin.port = static_cast<std::uint16_t>(value);
}

constexpr Key<Config> admin_keys[] = {
    {"listen", read_listen},
    {"token_env",
     [](const Value& v, Config& c) {
         c.admin.token_env = read_nonempty_string(v);
         for (char ch : c.admin.token_env)
             if (!is_ascii_alnum(ch) && ch != '_')
                 v.fail("invalid character " + describe_char(ch) + " in an environment variable name");
     }},
    {"stall_after", [](const Value& v, Config& c) { c.admin.stall_after = read_duration(v); }},
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
    std::vector<std::string> tags;
};

constexpr Key<TaggedSymbol> tagged_symbol_keys[] = {
    {"name", [](const Value& v, TaggedSymbol& t) {
         t.name = read_string(v);
         if (auto err = symbol_error(t.name)) v.fail(*err);
     }, true},
    {"tags", [](const Value& v, TaggedSymbol& t) { t.tags = read_tags(v); }},
};

void read_symbol_list(const Value& v, SourceConfig& source) {
    std::vector<std::string>& out = source.symbols;
    const std::vector<Value> items = read_list(v);
    if (items.empty()) v.fail("must list at least one symbol");
    if (items.size() > max_symbols)
        v.fail("at most " + std::to_string(max_symbols) + " symbols per source");
    std::unordered_map<std::string, std::size_t> index_of;
    for (std::size_t i = 0; i < items.size(); ++i) {
        std::string symbol;
        if (items[i].is_map()) {  // { name: X, tags: [a, b] }
            TaggedSymbol tagged;
            read_map(items[i], tagged_symbol_keys, tagged);
            symbol = std::move(tagged.name);
            if (!tagged.tags.empty()) source.symbol_tags[symbol] = std::move(tagged.tags);
        } else {
            symbol = read_string(items[i]);
            if (auto err = symbol_error(symbol)) items[i].fail(*err);
        }
        const auto [it, fresh] = index_of.emplace(symbol, i);
        if (!fresh)
            items[i].fail("duplicate symbol \"" + symbol + "\", already at " + v.path() + '[' +
                          std::to_string(it->second) + ']');
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
    std::optional<Value> name, url, interval, timeout, max_in_flight;
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
         d.url = v;
     },
     true},
    {"interval",
     [](const Value& v, SourceDraft& d) {
         d.cfg.interval = read_duration(v);
         d.interval = v;
     },
     true},
    {"timeout",
     [](const Value& v, SourceDraft& d) {
         d.cfg.timeout = read_duration(v);
         d.timeout = v;
     }},
    {"connect_timeout",
     [](const Value& v, SourceDraft& d) {
         d.cfg.connect_timeout = read_duration(v);
         if (d.cfg.connect_timeout > std::chrono::minutes(1)) v.fail("must not exceed 1m");
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
    {"symbols", [](const Value& v, SourceDraft& d) { read_symbols(v, d.cfg); }, true},
    {"tags", [](const Value& v, SourceDraft& d) { d.cfg.tags = read_tags(v); }},
    {"fields", [](const Value& v, SourceDraft& d) { read_map(v, field_keys, d.cfg.fields); }, true},
};

SourceDraft read_source(const Value& v) {
    SourceDraft d;
    read_map(v, source_keys, d);
    SourceConfig& s = d.cfg;
    // Like Prometheus: a poll that may outlive its interval would overlap the next one.
    if (!d.timeout)
        s.timeout = s.interval;
    else if (s.timeout > s.interval)
        d.timeout->fail("must not exceed the interval (" + d.interval->node().Scalar() + ")");
    if (!d.max_in_flight) s.max_in_flight = s.symbols.size();
    if (s.symbols.size() != 1 && s.url.target_template.find("{symbol}") == std::string::npos)
        d.url->fail("must contain \"{symbol}\" because the source polls " +
                    std::to_string(s.symbols.size()) + " symbols");
    return d;
}

void read_sources(const Value& v, Config& c) {
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
    }
}

// ---- the document --------------------------------------------------------------------------

constexpr Key<Config> top_keys[] = {
    {"runtime", [](const Value& v, Config& c) { read_map(v, runtime_keys, c); }},
    {"shutdown", [](const Value& v, Config& c) { read_map(v, shutdown_keys, c); }},
    {"log", [](const Value& v, Config& c) { read_map(v, log_keys, c); }},
    {"output", [](const Value& v, Config& c) { read_map(v, output_keys, c); }},
    {"admin", read_admin},
    {"sources", read_sources, true},
};

}  // namespace

bool SourceConfig::has_tag(std::string_view symbol, std::string_view tag) const {
    if (std::find(tags.begin(), tags.end(), tag) != tags.end()) return true;
    const auto it = symbol_tags.find(std::string(symbol));
    return it != symbol_tags.end() && std::find(it->second.begin(), it->second.end(), tag) != it->second.end();
}

Config parse_config(std::string_view yaml_text, std::string_view file_name) {
    const std::string file(file_name);  // every Value below points into it
    Config config;
    config.file = file;

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
    const Value root(file, documents.empty() ? YAML::Node() : documents[0], "", YAML::Mark());
    read_map(root, top_keys, config);
    return config;
}

Config load_config(const std::string& path) {
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
    return parse_config(text, path);
}

}  // namespace mdagg

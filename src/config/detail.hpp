// Private to the config module: YAML node readers that fail with file:line:col and key path,
// plus the small parsers (URL, JSON Pointer) that the schema in config.cpp is built from.
#pragma once

#include <mdagg/config.hpp>

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mdagg::config_detail {

// A ConfigError that keeps its parts, so a caller can place it elsewhere (presets.cpp points
// errors in a preset's keys at the source's `preset:`).
class LocatedConfigError : public ConfigError {
public:
    LocatedConfigError(const std::string& text, YAML::Mark mark_, std::string path_, std::string message_)
        : ConfigError(text), mark(mark_), path(std::move(path_)), message(std::move(message_)) {}
    YAML::Mark mark;
    std::string path, message;
};

// "file:line:col: path: message"; line and column are 1-based and left out for a null mark.
// Throws LocatedConfigError.
[[noreturn]] void throw_error(std::string_view file, const YAML::Mark& mark, std::string_view path,
                              std::string_view message);

// A node plus where it came from, so every error can name file, line:column and key path.
class Value {
public:
    // `fallback` is where to point when the node has no useful mark of its own: an empty value
    // ("interval:") is marked at the next token, often on another line, so we point at its key.
    Value(std::string_view file, YAML::Node node, std::string path,
          YAML::Mark fallback = YAML::Mark::null_mark());

    const YAML::Node& node() const noexcept { return node_; }
    const std::string& path() const noexcept { return path_; }
    std::string_view file() const noexcept { return file_; }
    YAML::Mark mark() const;

    bool is_null() const { return node_.IsNull(); }
    bool is_scalar() const { return node_.IsScalar(); }
    bool is_list() const { return node_.IsSequence(); }
    bool is_map() const { return node_.IsMap(); }
    // Plain (unquoted, untagged) scalars are the only ones YAML resolves to bool/int.
    bool is_plain() const { return node_.IsScalar() && node_.Tag() == "?"; }
    // For "got ..." in messages: "null", "a list", "a mapping" or the quoted scalar text.
    std::string describe() const;

    std::string child_path(std::string_view key) const;
    [[noreturn]] void fail(std::string_view message) const;
    // For a key that is absent: point at this (parent) mapping, name the full path.
    [[noreturn]] void fail_child(std::string_view key, std::string_view message) const;

private:
    std::string_view file_;  // owned by parse_config, which outlives every Value
    YAML::Node node_;
    std::string path_;
    YAML::Mark fallback_;
};

// One reader per value type; each checks type and range and fails at the node.
std::string read_string(const Value& v);  // any scalar, possibly empty; not null
std::string read_nonempty_string(const Value& v);
std::uint64_t read_uint(const Value& v, std::uint64_t min, std::uint64_t max);
// A plain decimal number ("10", "0.5"), finite, within [min, max].
double read_number(const Value& v, double min, double max);
bool read_bool(const Value& v);        // YAML 1.2: true/false (True/TRUE/...), unquoted
// > 0 and at most `max`: every duration has a ceiling, so sums and multiples derived from it
// (10 * interval, now + pause, t0 + grace) stay far inside the 64-bit nanosecond range.
Duration read_duration(const Value& v, Duration max);
// "1h", "90s", "250ms": the largest unit that divides it exactly.
std::string duration_text(Duration d);
// Index into `choices`; suggests the closest choice on a typo.
std::size_t read_choice(const Value& v, std::span<const std::string_view> choices);
std::vector<Value> read_list(const Value& v);  // elements as Values "path[i]"; may be empty

// The closest candidate within a small edit distance (case and '-'/'_' ignored), if any.
std::optional<std::string_view> closest_match(std::string_view word,
                                              std::span<const std::string_view> candidates);

// A mapping's entries in document order, each tagged with its index in `keys`. A null node
// counts as an empty mapping (a section whose keys are all commented out). Fails on a
// non-mapping, a non-scalar key, an unknown key (suggesting the closest) or a duplicate key.
struct Entry {
    std::size_t key;
    Value value;
};
std::vector<Entry> read_entries(const Value& map, std::span<const std::string_view> keys);

// A schema row: how to read one key of a mapping into T.
template <class T>
struct Key {
    std::string_view name;
    void (*read)(const Value&, T&);
    bool required = false;
};

template <class T, std::size_t N>
void read_map(const Value& map, const Key<T> (&keys)[N], T& out) {
    std::string_view names[N];
    for (std::size_t i = 0; i < N; ++i) names[i] = keys[i].name;
    bool seen[N] = {};
    for (const Entry& e : read_entries(map, names)) {
        seen[e.key] = true;
        keys[e.key].read(e.value, out);
    }
    for (std::size_t i = 0; i < N; ++i)
        if (keys[i].required && !seen[i]) map.fail_child(keys[i].name, "required key is missing");
}

// Locale-independent, unlike <cctype>.
constexpr bool is_ascii_alnum(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
constexpr bool is_ascii_hex(char c) noexcept {
    return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9');
}

// For messages: "'x'" for printable ASCII (space included), "byte 0x0A" otherwise.
std::string describe_char(char c);

// Parses "http://host[:port]/path?query" into `out`; returns the problem, if any.
std::optional<std::string> parse_url(std::string_view text, Url& out);

// RFC 6901 syntax check ("" or "/a/b", "~" only as "~0"/"~1"); returns the problem, if any.
std::optional<std::string> json_pointer_error(std::string_view pointer);

// Symbols become URL parts, file content and log fields: keep them to a safe alphabet.
std::optional<std::string> symbol_error(std::string_view symbol);

// A secret's file (admin.token_file, kafka.properties { file: PATH }): its text with one
// trailing "\n" or "\r\n" cut. Throws ConfigError naming `key` and the path, never the
// contents, when it cannot be read or is larger than 64 KiB.
std::string read_secret_file(const std::string& path, std::string_view key);

// The config file's text (load_config); throws ConfigError "PATH: cannot read: ...".
std::string read_config_text(const std::string& path);

// ---- secrets (secret.cpp) ----
// [A-Za-z0-9_]+, what an environment variable's name may be here.
bool is_env_name(std::string_view name) noexcept;
// `{ env: NAME }` or `{ file: PATH }`, or a scalar taken as it is.
SecretRef read_secret_ref(const Value& v);
// The value: the literal, the variable's or the file's (read_secret_file). Throws ConfigError
// ("environment variable NAME is not set", "file \"PATH\": cannot read: ...") without a
// location: the caller adds the key's.
std::string read_secret(const SecretRef& ref);
// "environment variable NAME" or "file \"PATH\"", for messages about a value never shown.
std::string secret_origin(const SecretRef& ref);

// ---- the request of a source (request.cpp) ----
void read_headers(const Value& v, SourceConfig& source);
void read_accept_encoding(const Value& v, SourceConfig& source);
// A "{env:NAME}" or "{file:PATH}" placeholder starting at target[at], if one does.
struct SecretPlaceholder {
    std::size_t size = 0;  // of the placeholder's text, braces included
    SecretRef ref;
};
std::optional<SecretPlaceholder> secret_placeholder_at(std::string_view target, std::size_t at);
// Reads the secrets of url.target_template into url.secret_target (percent-encoded); fails at
// `v` (the url key) naming the variable or path.
void resolve_url_secrets(const Value& v, Url& url);

// The top-level "kafka" section (kafka.cpp) and its schema keys ("brokers", "topics.quotes").
void read_kafka(const Value& v, Config& c);
std::vector<std::string> kafka_key_names();

// A source's "tls" block (tls.cpp) and its keys ("verify", "ca_file", ...).
void read_tls(const Value& v, TlsConfig& out);
std::vector<std::string> tls_key_names();

// ---- canonical symbols (symbols.cpp) ----
// After a source's keys are read: reads its symbol_map (a CSV of "name,venue" lines) and
// combines it with `symbols:` (the map names the venue of each listed symbol without a
// `venue:`; without `symbols:` the map is the list), then keeps in source.venue_symbols only
// the names that differ. `source` is the source's mapping, for a missing `symbols`.
void finish_symbols(const Value& source, const std::optional<Value>& symbols,
                    const std::optional<Value>& symbol_map, SourceConfig& out);

// A source's "batch" block (batch.cpp) and its keys; check_batch_url runs once the source's
// keys are read: {symbols} and {symbol} in the url against the block (`url` is the url key).
struct BatchDraft {
    BatchConfig cfg;
    bool asked_by_list = false;  // join or format given: the url must spell {symbols}
};
BatchDraft read_batch(const Value& v);
void check_batch_url(const BatchDraft& draft, const Value& url, SourceConfig& source);
std::vector<std::string> batch_key_names();

// The top-level "sharding" section (sharding.cpp).
void read_sharding(const Value& v, Config& c);
std::vector<std::string_view> sharding_key_names();

// ---- mirrors, hedge and priority of a source (hedge.cpp) ----
// Where each was written, for the checks that need the whole source.
struct HedgeMarks {
    std::optional<Value> mirrors, hedge, after, priority;
    std::vector<Value> mirror_items;
    std::vector<Value> priority_tags;  // the keys of priority.tags, in order
};
void read_mirrors(const Value& v, SourceConfig& source, HedgeMarks& marks);
void read_hedge(const Value& v, HedgeConfig& out, HedgeMarks& marks);
// `priority: N` or `priority: { default: N, tags: { TAG: N } }`.
void read_priority(const Value& v, PriorityConfig& out, HedgeMarks& marks);
std::uint8_t read_priority_value(const Value& v);  // 1 .. 9
// Mirrors like the url (scheme, {symbol}), hedge with mirrors and an `after` below the
// timeout, priority tags that the source's symbols carry.
void check_hedge(const HedgeMarks& marks, const SourceConfig& source);
// "mirrors", "hedge.after", ...: the schema keys under sources[].
std::vector<std::string> hedge_key_names();

}  // namespace mdagg::config_detail

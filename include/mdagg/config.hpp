// The daemon's YAML configuration: types, loading and validation.
#pragma once

#include <mdagg/common.hpp>
#include <mdagg/records.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace mdagg {

using Duration = std::chrono::nanoseconds;

// Parses "50ms", "3s", "1.5s", "250us", "100ns", "2m", "1h". Rejects a missing unit,
// negative values and junk.
std::optional<Duration> parse_duration(std::string_view text) noexcept;

enum class TimeUnit { s, ms, us, ns, rfc3339 };

struct TimeField {
    std::string pointer;  // JSON Pointer (RFC 6901), '*' step = any single key
    TimeUnit unit = TimeUnit::ms;
    bool operator==(const TimeField&) const = default;
};

// JSON Pointers into a response. An empty pointer means "not mapped".
// A body-level success check, for venues that answer errors with a 200 (OKX `code` != "0",
// Bybit `retCode` != 0, Kraken's non-empty `error` array).
struct SuccessCheck {
    std::string pointer;                // JSON Pointer to the status field
    std::optional<std::string> equals;  // success when the value's text (string or number) is this
    bool empty = false;                 // success when the value is absent, null, "", [] or {}
    bool operator==(const SuccessCheck&) const = default;
};

struct FieldMap {
    std::optional<SuccessCheck> success;  // checked before any other field
    std::string symbol;    // optional: when set, the response must name the polled symbol
    std::string bid;       // required
    std::string ask;       // required
    std::string bid_size;  // optional
    std::string ask_size;  // optional
    std::optional<TimeField> exchange_time;
    std::string seq;  // optional
    bool operator==(const FieldMap&) const = default;
};

// Text built from secrets (a header's value, a URL with an API key in its query): copied and
// compared like a string, but read only through reveal(), which the code that builds requests
// calls and nothing that prints or logs does.
class SecretText {
public:
    SecretText() = default;
    explicit SecretText(std::string text) : text_(std::move(text)) {}
    const std::string& reveal() const noexcept { return text_; }
    bool empty() const noexcept { return text_.empty(); }
    bool operator==(const SecretText&) const = default;

private:
    std::string text_;
};

struct BatchConfig;

struct Url {
    std::string scheme;  // "http" or "https"
    std::string host;    // an IPv6 address without its brackets
    std::uint16_t port = 0;
    // Path and query as written, with "{symbol}" and any "{env:NAME}" / "{file:PATH}"
    // placeholders: the form every message shows.
    std::string target_template;
    // target_template with its secrets' values filled in ("{symbol}" stays), read at load and
    // on SIGHUP; empty when it has no secret.
    SecretText secret_target;
    // The request target for `symbol`, secrets included: for the request only.
    std::string target_for(std::string_view symbol) const;
    // The request target of a batch: "{symbols}" spelled from `venue_names` as `batch` says
    // (src/config/batch.cpp).
    std::string target_for_symbols(const std::vector<std::string>& venue_names, const BatchConfig& batch) const;
    bool operator==(const Url&) const = default;
};

// A config value that may be a secret: the text in the file, or read from an environment
// variable ({ env: NAME }) or a file ({ file: PATH }, a mounted Secret): kafka.properties at
// start-up, request headers at load (config_detail::read_secret).
struct SecretRef {
    enum class From { literal, env, file };
    From from = From::literal;
    std::string text;  // the value itself, the variable's name or the file's path
    bool operator==(const SecretRef&) const = default;
};

// A request header of a source (`headers:`), sent with every request.
struct RequestHeader {
    std::string name;
    SecretRef value;      // as written
    SecretText resolved;  // the value, read at load and on SIGHUP
    bool operator==(const RequestHeader&) const = default;
};

enum class AcceptEncoding { identity, gzip };

// A source's `tls:` block (https URLs only; src/config/tls.cpp). The files are checked when
// the config is loaded (readable, PEM, key matching the certificate) and read again when the
// poller group builds its SSL contexts: one per distinct setting, shared by its pollers.
enum class TlsVersion { tls1_2, tls1_3 };  // "1.2", "1.3"
struct TlsConfig {
    bool verify = true;       // false: no peer or name check; warned at start and in every summary
    std::string ca_file;      // empty: OpenSSL's default trust store
    std::string server_name;  // SNI and the name checked; empty: the URL's host
    std::string client_cert;  // mutual TLS: both or neither
    std::string client_key;
    TlsVersion min_version = TlsVersion::tls1_2;
    bool operator==(const TlsConfig&) const = default;
};

// A source's `batch:` block (src/config/batch.cpp): one request asks for many symbols and the
// answer holds one entry per symbol, mapped with the source's fields relative to the entry.
struct BatchConfig {
    enum class Format { joined, json };  // "a,b" (join), or ["a","b"] percent-encoded
    std::string items;      // JSON Pointer to the array or object of entries; "" = the whole body
    std::string symbol;     // JSON Pointer inside an entry to its symbol, or "#key"
    std::size_t size = 0;   // symbols per request; 0 = every symbol in one request
    std::string join = ",";
    Format format = Format::joined;
    // The url spells {symbols}: the venue is asked by list. Without it (size 0 only) one
    // request returns every instrument and the configured ones are picked from the answer.
    bool symbols_in_url = false;
    bool symbol_is_key() const noexcept { return symbol == "#key"; }
    bool operator==(const BatchConfig&) const = default;
};

// Another host serving the same API (`mirrors:`): same path, fields and limits per host. A
// poller fails over to it (docs/polling.md#mirrors-and-failover), and `hedge:` sends a slow
// poll's hedge there (docs/polling.md#hedged-requests).
struct MirrorConfig {
    std::string url_text;
    Url url;
    std::size_t host = 0;  // index into Config::hosts: its own bucket, pauses and breaker
    bool operator==(const MirrorConfig&) const = default;
};

// `hedge: { after, max_extra }`: a poll not answered within `after` is sent once more to the
// next healthy mirror; hedges are at most `max_extra` of first requests (a token bucket).
struct HedgeConfig {
    bool enabled = false;
    Duration after{};             // a fixed delay, when percentile is 0
    std::uint8_t percentile = 0;  // 90, 95 or 99: that percentile of recent poll latency
    double max_extra = 0.05;      // a share of first requests, 0 < x <= 1
    bool operator==(const HedgeConfig&) const = default;
};

// `priority:` 1 (highest) .. 9 for a host's scarce tokens: the source's, a symbol entry's
// ({ name: X, priority: 1 }) or a tag's (priority: { default: N, tags: { TAG: N } }).
struct PriorityConfig {
    static constexpr std::uint8_t unset = 0;
    std::uint8_t source = 5;
    std::unordered_map<std::string, std::uint8_t> symbols;  // only symbols that set one
    std::vector<std::pair<std::string, std::uint8_t>> tags;
    bool operator==(const PriorityConfig&) const = default;
};

struct SourceConfig {
    std::string name;
    std::string url_text;
    Url url;
    Duration interval{};
    Duration timeout{};  // per poll (request and response); defaults to interval
    // Extra budget a poll gets when it must first open a connection. Connecting is set-up, not
    // polling: 2,000 pollers connecting in one interval would otherwise time out in a storm.
    Duration connect_timeout = std::chrono::seconds(1);
    std::size_t max_in_flight = 0;  // defaults to the symbol count
    std::size_t max_body_bytes = 64 * 1024;
    // Tokens one request takes from its host's bucket (a venue's request weight).
    std::uint32_t cost = 1;
    std::size_t host = 0;  // index into Config::hosts
    // A quote not refreshed for this long leaves the consolidated best bid/offer and is
    // reported stale. Defaults to 10 intervals, at least 1 s.
    Duration stale_after{};
    std::vector<std::string> symbols;  // canonical names
    // Canonical name -> the venue's own spelling, for the symbols whose venue name differs
    // (`{ name, venue }` entries, `symbol_map:`; src/config/symbols.cpp). Records, the best
    // bid/offer, metrics and admin selectors use the canonical name; the request's {symbol}
    // and the body's symbol check use the venue's.
    std::unordered_map<std::string, std::string> venue_symbols;
    std::string symbol_map;  // `symbol_map:` as written (a CSV path), read at load and on SIGHUP
    const std::string& venue_symbol(const std::string& name) const {
        const auto it = venue_symbols.find(name);
        return it == venue_symbols.end() ? name : it->second;
    }
    FieldMap fields;
    // Operator labels for selecting pollers (POST /admin/pause {"tag": "nyse"}): the
    // source's own tags apply to every symbol; a list entry { name: X, tags: [..] } adds more.
    std::vector<std::string> tags;
    std::unordered_map<std::string, std::vector<std::string>> symbol_tags;  // only tagged symbols
    // Sent with every request, after Host (Accept and User-Agent replace the defaults).
    std::vector<RequestHeader> headers;
    // gzip: ask for gzip and inflate the answer, bounded by max_body_bytes after inflation.
    AcceptEncoding accept_encoding = AcceptEncoding::identity;
    TlsConfig tls;  // used when url.scheme is "https"
    std::optional<BatchConfig> batch;  // absent: one request per symbol
    // Requests per round: one per symbol, or one per batch.
    std::size_t request_count() const noexcept;
    std::vector<MirrorConfig> mirrors;  // in failover and hedging order
    HedgeConfig hedge;
    PriorityConfig priority;
    // The symbol entry's priority, else the highest of its tags', else the source's.
    std::uint8_t priority_of(std::string_view symbol) const;
    bool uses_tls() const noexcept { return url.scheme == "https"; }
    // The name sent as SNI and checked against the certificate.
    const std::string& tls_server_name() const noexcept { return tls.server_name.empty() ? url.host : tls.server_name; }
    bool has_tag(std::string_view symbol, std::string_view tag) const;
    bool operator==(const SourceConfig&) const = default;
};

// The ops HTTP server (/metrics, /healthz, /readyz, /debug/tasks, /admin/*). Off unless the
// config has an `admin:` section, so several daemons on one host do not fight over a port.
struct AdminConfig {
    bool enabled = false;
    std::string host = "127.0.0.1";  // an IP literal
    std::uint16_t port = 9100;       // 0 = any free port (logged in "admin listening")
    std::string token_env;           // env var holding the bearer token for POST /admin/*
    // Or a file holding it (a mounted Secret), re-read on SIGHUP and when it changes.
    std::string token_file;
    // /healthz fails, and an error is logged, when no poll completed for this long.
    Duration stall_after = std::chrono::seconds(60);
    // Symbols (globs: * and ?) that get per-symbol series in /metrics; none by default, so
    // 2,000 symbols do not become 2,000 label values.
    std::vector<std::string> symbol_metrics;
    // A listen address other than loopback with no token is refused at start-up (anyone who
    // reaches the port could cancel every poller) unless this says it is meant.
    bool allow_unauthenticated = false;
    bool operator==(const AdminConfig&) const = default;
};

// Limits shared by every poller of one host (host and port of the sources' URLs).
struct HostConfig {
    std::string host;
    std::uint16_t port = 0;  // 0: every port of the host (a venue limits per address, not port)
    double rate = 0;   // tokens per second; 0 = unlimited
    double burst = 0;  // bucket size; defaults to max(rate, the largest cost)
    // Pauses of the whole host when the server does not say how long (Retry-After).
    Duration rate_limit_pause = std::chrono::seconds(1);  // after a 429
    Duration ban_pause = std::chrono::minutes(1);         // after a 418 or 403
    Duration max_pause = std::chrono::hours(1);           // cap on any signalled pause
    struct Breaker {
        // Consecutive failures across the host's pollers; 0 = no breaker. Defaults to the
        // host's poller count (at least 5): a whole round failed.
        std::uint32_t failures = 5;
        bool failures_auto = true;  // not set in the file: the poller count; sharding recounts it
        Duration cooldown = std::chrono::seconds(1);
        Duration max_cooldown = std::chrono::seconds(30);
        bool operator==(const Breaker&) const = default;
    } breaker;
    // A response header reporting the budget used in the venue's window
    // (X-MBX-USED-WEIGHT-1M); past slow_at * limit the bucket refills more slowly.
    struct Usage {
        std::string header;
        double limit = 0;
        double slow_at = 0.8;
        bool operator==(const Usage&) const = default;
    };
    std::optional<Usage> usage;
    bool operator==(const HostConfig&) const = default;
};

enum class KafkaAcks { all, one, none };  // "all", "1", "0"
enum class KafkaCompression { none, gzip, snappy, lz4, zstd };

// The optional Kafka sink (`kafka:`); absent = no Kafka, the file output is unchanged.
// The host entry of each of the source's mirrors, in `mirrors:` order (each mirror has its own
// host's limits, bucket and breaker): what the pollers take beside the url's host entry.
inline std::vector<HostConfig> mirror_hosts(const SourceConfig& source, const std::vector<HostConfig>& hosts) {
    std::vector<HostConfig> out;
    out.reserve(source.mirrors.size());
    for (const MirrorConfig& m : source.mirrors) out.push_back(hosts.at(m.host));
    return out;
}

struct KafkaConfig {
    bool enabled = false;
    std::string brokers;  // bootstrap servers, "host:port,host:port"
    struct Topics {
        std::string quotes, bars, events;  // empty: the stream is not sent
        bool operator==(const Topics&) const = default;
    } topics;
    KafkaAcks acks = KafkaAcks::all;
    bool idempotence = true;
    KafkaCompression compression = KafkaCompression::none;
    // librdkafka sends a request per partition batch: 20 ms cuts its CPU per record by about a
    // third against 5 ms (docs/kafka.md#cpu), within the p99 target of 50 ms + linger.
    Duration linger = std::chrono::milliseconds(20);
    std::size_t max_buffer_bytes = 64 * 1024 * 1024;  // keys and values waiting for delivery
    OverflowPolicy overflow = OverflowPolicy::drop_newest;  // drop_newest or block
    Duration overflow_wait = std::chrono::milliseconds(20);
    // Passed to librdkafka as they are, in file order. line/column (1-based) locate the value
    // for messages at start-up; they take no part in comparisons (a reload that only moved a
    // line changes nothing).
    struct Property {
        std::string key;
        SecretRef value;
        int line = 0, column = 0;
        bool operator==(const Property& o) const { return key == o.key && value == o.value; }
    };
    std::vector<Property> properties;
    bool operator==(const KafkaConfig&) const = default;
};

struct Config {
    std::string file;  // where it was loaded from, for messages
    struct {
        unsigned threads = 1;  // "auto" resolves to std::thread::hardware_concurrency()
    } runtime;
    struct {
        Duration grace = std::chrono::seconds(3);
        Duration interrupt_grace = std::chrono::seconds(2);
    } shutdown;
    struct {
        std::string level = "info";  // trace, debug, info, warn, error
        Duration summary_every = std::chrono::seconds(5);
    } log;
    struct {
        std::string dir = "./out";
        Duration flush_every = std::chrono::seconds(1);
        bool quotes = true;
        Duration bar_interval = std::chrono::seconds(1);
        std::size_t max_buffer_bytes = 64 * 1024 * 1024;  // unflushed output; beyond it records drop
        OverflowPolicy overflow = OverflowPolicy::drop_oldest;
        Duration overflow_wait = std::chrono::milliseconds(20);  // block: longest wait for room
        RecordFormat quotes_format = RecordFormat::jsonl;
        RecordFormat bars_format = RecordFormat::jsonl;
        std::uint64_t rotate_max_bytes = 256 * 1024 * 1024;  // 0: never by size
        Duration rotate_max_age = std::chrono::hours(1);      // 0: never by age
        std::uint64_t retention_max_files = 0;                // per stream; 0: unlimited
        std::uint64_t retention_max_bytes = 0;                // per stream; 0: unlimited
        Compression compression = Compression::none;
    } output;
    AdminConfig admin;
    KafkaConfig kafka;
    std::vector<SourceConfig> sources;
    // The configured `hosts:` entries, then a default entry for each host:port no entry
    // names. SourceConfig::host indexes this.
    std::vector<HostConfig> hosts;
    // This replica polls only the symbols whose shard_of() is `index`. The file's values may
    // be overridden by SHARD_INDEX / SHARD_COUNT; see apply_sharding.
    struct {
        std::uint32_t index = 0;
        std::uint32_t count = 1;
        bool index_from_hostname = false;  // "index: auto": the StatefulSet pod ordinal
    } sharding;
};

// The message is complete and ready to print: "demo.yaml:14:14: sources[0].interval: expected a
// duration like \"50ms\"". Line and column are 1-based; a file-level error has neither.
class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Parse and validate; throw ConfigError on the first problem found.
Config load_config(const std::string& path);
Config parse_config(std::string_view yaml_text, std::string_view file_name);

// ---- presets (config/presets/*.yaml, compiled in; src/config/presets.cpp) ----
// A source's `preset: NAME` fills the keys it does not give itself, and its host's limits.
std::vector<std::string> preset_names();  // sorted
// The file as the daemon reads it, presets applied, as YAML (`--check-config FILE --print`).
// Secrets appear as written ({env:NAME}, { file: PATH }), never their values. Validates first:
// throws ConfigError like parse_config.
std::string expanded_config_text(std::string_view yaml_text, std::string_view file_name);
std::string expanded_config(const std::string& path);

// ---- sharding across replicas ----
// A symbol's shard is fnv1a_64 (common.hpp) of its name's bytes, mod the shard count. It
// depends on the symbol name alone, never the source, so every source of a symbol lands on one
// replica (the consolidated best bid/offer needs them together), and it is stable across
// versions, platforms and restarts.
std::uint32_t shard_of(std::string_view symbol, std::uint32_t shard_count) noexcept;

// What the process environment says about sharding; unset variables are nullopt.
struct ShardingEnv {
    std::optional<std::string> index;  // SHARD_INDEX: a number or "auto"
    std::optional<std::string> count;  // SHARD_COUNT
    std::string hostname;              // for "auto": a StatefulSet pod is <name>-<ordinal>
    static ShardingEnv from_process();
};

struct ShardingResult {
    std::size_t symbols_total = 0;  // distinct symbol names in the config
    std::size_t symbols_kept = 0;   // of those, the ones in this shard
    std::size_t pollers_kept = 0;   // (source, symbol) pairs left to poll
};

// The breaker threshold of hosts that did not set one: the host's poller count, at least 5.
void set_auto_breaker_thresholds(Config& config);

// Lets SHARD_INDEX / SHARD_COUNT override the file, resolves "auto" from the host name, checks
// index < count, then keeps in each source only this shard's symbols (a source may end up
// with none). Throws ConfigError naming the variable, key or host name at fault.
ShardingResult apply_sharding(Config& config, const ShardingEnv& env);

// ---- the admin token ----
// The bearer token for POST /admin/*: the contents of admin.token_file (one trailing "\n" or
// "\r\n" cut), else the value of the admin.token_env variable; empty when neither is set or
// the value is empty, which means no authentication. Throws ConfigError naming the file, never
// its contents, when it cannot be read. The one place that reads the token: start-up checks
// ("a non-loopback listen address needs a token") call it too.
std::string admin_token(const Config& config);
inline bool admin_token_configured(const Config& config) { return !admin_token(config).empty(); }

// ---- Kafka properties ----
// kafka.properties with their secrets read ({ env } and { file } values), each checked with
// librdkafka's rd_kafka_conf_set. Throws ConfigError with file:line:col and the property's
// path on an unset variable, an unreadable file or a value librdkafka refuses; the message
// never contains a value that came from a secret. load_config checks the literal values and
// every key already; this adds the secrets, so start-up calls it (--check-config does not
// read secrets, like admin.token_file).
std::vector<std::pair<std::string, std::string>> kafka_properties(const Config& config);

// What stat(2) says of a path, through symlinks: a Kubernetes Secret update swaps a `..data`
// symlink, so the path then leads to another inode; an edit in place changes mtime or size.
struct FileStamp {
    std::uint64_t device = 0, inode = 0, size = 0;
    std::int64_t mtime_ns = 0;
    bool operator==(const FileStamp&) const = default;
};
std::optional<FileStamp> file_stamp(const std::string& path);  // nullopt when stat fails

// ---- reload ----
// Every config key has one reload policy: `live` keys take effect on SIGHUP, `restart` keys
// are reported in the `not_applied` field of `config reloaded` while their new value waits for
// a restart. Keys are schema paths: "output.rotate.max_bytes", "sources[].interval".
enum class ReloadPolicy { live, restart };

struct ReloadRule {
    std::string_view key;
    ReloadPolicy policy;
    // Whether `loaded` changes this key of `running`; null for keys whose change the daemon
    // applies as a whole and reports in its own fields (a source's keys: pollers_restarted).
    bool (*differs)(const Config& running, const Config& loaded);
    // live keys: `running` takes `loaded`'s value, so `running` stays the config in effect.
    void (*adopt)(Config& running, const Config& loaded);
};

// The table, one row per key of config_schema_keys().
const std::vector<ReloadRule>& reload_rules();

// Every key the parser accepts, as paths like the rules' (walked from its key tables).
std::vector<std::string> config_schema_keys();

struct ReloadDiff {
    std::vector<std::string> applied;      // live keys whose value changed
    std::vector<std::string> not_applied;  // restart keys whose value differs from the one in effect
};
// `running`: the config in effect (start-up values of restart keys, latest of live ones).
ReloadDiff reload_diff(const Config& running, const Config& loaded);
// Makes `running` the config in effect after `loaded` was applied: live keys take its values.
void adopt_live_keys(Config& running, const Config& loaded);

}  // namespace mdagg

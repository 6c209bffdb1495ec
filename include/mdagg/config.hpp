// The daemon's YAML configuration: types, loading and validation.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
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
struct FieldMap {
    std::string symbol;    // optional: when set, the response must name the polled symbol
    std::string bid;       // required
    std::string ask;       // required
    std::string bid_size;  // optional
    std::string ask_size;  // optional
    std::optional<TimeField> exchange_time;
    std::string seq;  // optional
    bool operator==(const FieldMap&) const = default;
};

struct Url {
    std::string scheme;  // "http" (https arrives with TLS support)
    std::string host;
    std::uint16_t port = 0;
    std::string target_template;  // path and query, containing "{symbol}"
    std::string target_for(std::string_view symbol) const;
    bool operator==(const Url&) const = default;
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
    std::vector<std::string> symbols;
    FieldMap fields;
    // Operator labels for selecting pollers (POST /admin/pause {"tag": "nyse"}): the
    // source's own tags apply to every symbol; a list entry { name: X, tags: [..] } adds more.
    std::vector<std::string> tags;
    std::unordered_map<std::string, std::vector<std::string>> symbol_tags;  // only tagged symbols
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
    // /healthz fails, and an error is logged, when no poll completed for this long.
    Duration stall_after = std::chrono::seconds(60);
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
    } output;
    AdminConfig admin;
    std::vector<SourceConfig> sources;
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

}  // namespace mdagg

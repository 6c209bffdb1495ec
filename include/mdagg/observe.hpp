// The observe module: structured JSON-lines logs (mdagg::log) and latency histograms.
// Logs: structured JSON lines on stdout: {"ts":"...Z","level":"info","msg":"...",...fields}.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

// ---- metrics: latency histograms and the Prometheus text writer ----------------------------
// Metrics every module writes: a lock-free latency histogram, and the Prometheus text writer
// each module appends its own families to (a module's metric names, labels and help live with
// the module that counts them).
namespace mdagg {

class LatencyHistogram {
public:
    static constexpr std::size_t bucket_count = 4 + 4 * 30;

    struct Snapshot {
        std::array<std::uint64_t, bucket_count> counts{};
        std::uint64_t total = 0;
        std::uint64_t sum_ns = 0;  // sum of recorded values (Prometheus needs it)
        // Upper bound of the bucket holding quantile q in [0, 1]; zero when empty.
        std::chrono::nanoseconds quantile(double q) const noexcept;
        Snapshot since(const Snapshot& earlier) const noexcept;
        void merge(const Snapshot& other) noexcept;
    };

    void record(std::chrono::nanoseconds value) noexcept {
        counts_[bucket_of(value)].fetch_add(1, std::memory_order_relaxed);
        sum_ns_.fetch_add(value.count() > 0 ? static_cast<std::uint64_t>(value.count()) : 0,
                          std::memory_order_relaxed);
    }
    Snapshot snapshot() const noexcept;

    static std::size_t bucket_of(std::chrono::nanoseconds value) noexcept;
    // Exclusive upper bound of a bucket.
    static std::chrono::nanoseconds upper_bound(std::size_t bucket) noexcept;

private:
    std::array<std::atomic<std::uint64_t>, bucket_count> counts_{};
    std::atomic<std::uint64_t> sum_ns_{0};
};

// ---- Prometheus text exposition format 0.0.4 ------------------------------------------------

struct Label {
    std::string_view name;
    std::string_view value;
};

// Appends families to `out`. Call family() once per metric name before its samples.
class PrometheusWriter {
public:
    explicit PrometheusWriter(std::string& out) : out_(out) {}
    // type: counter, gauge or histogram.
    void family(std::string_view name, std::string_view type, std::string_view help);
    void sample(std::string_view name, std::initializer_list<Label> labels, double value);
    // name_bucket{le=...} (cumulative, ending in +Inf), name_sum and name_count, in seconds.
    // The le bounds are powers of two from 128 us to 33.5 s: each is an exact bucket bound of
    // LatencyHistogram, so the cumulative counts are exact, not interpolated.
    void histogram(std::string_view name, std::initializer_list<Label> labels,
                   const LatencyHistogram::Snapshot& snapshot);

private:
    void series(std::string_view name, std::initializer_list<Label> labels,
                std::optional<Label> extra);
    std::string& out_;
};

}  // namespace mdagg

namespace mdagg::log {

enum class Level { trace, debug, info, warn, error };
std::optional<Level> parse_level(std::string_view text) noexcept;
std::string_view to_string(Level level) noexcept;

// Thread-safe. Lines are written whole (one write per line), so concurrent threads never
// interleave inside a line.
void set_level(Level level) noexcept;
bool enabled(Level level) noexcept;
void write(Level level, std::string_view msg, const nlohmann::json& fields);
void write(Level level, std::string_view msg);  // no fields

// Formats one log line without writing it (exposed for tests).
std::string format_line(std::chrono::system_clock::time_point ts, Level level,
                        std::string_view msg, const nlohmann::json& fields);

// Callers that pass fields include <nlohmann/json.hpp> themselves; this header only names
// the type, so the ~25k lines of json.hpp are not compiled into every file that logs.
inline void trace(std::string_view m) { if (enabled(Level::trace)) write(Level::trace, m); }
inline void debug(std::string_view m) { if (enabled(Level::debug)) write(Level::debug, m); }
inline void info(std::string_view m) { if (enabled(Level::info)) write(Level::info, m); }
inline void warn(std::string_view m) { if (enabled(Level::warn)) write(Level::warn, m); }
inline void error(std::string_view m) { if (enabled(Level::error)) write(Level::error, m); }
inline void trace(std::string_view m, const nlohmann::json& f) { if (enabled(Level::trace)) write(Level::trace, m, f); }
inline void debug(std::string_view m, const nlohmann::json& f) { if (enabled(Level::debug)) write(Level::debug, m, f); }
inline void info(std::string_view m, const nlohmann::json& f) { if (enabled(Level::info)) write(Level::info, m, f); }
inline void warn(std::string_view m, const nlohmann::json& f) { if (enabled(Level::warn)) write(Level::warn, m, f); }
inline void error(std::string_view m, const nlohmann::json& f) { if (enabled(Level::error)) write(Level::error, m, f); }

// Aggregates repeated events so 2,000 failing pollers do not flood stdout: per key, the first
// event in each window is logged, later ones are only counted, and the next logged line
// carries "suppressed": N. Thread-safe.
class RateLimited {
public:
    explicit RateLimited(std::chrono::steady_clock::duration window);
    // Returns true when the line was written.
    bool write(Level level, std::string_view key, std::string_view msg, nlohmann::json fields,
               std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());
    // The cheap half of write(), for callers that build fields only when they will be
    // written: the suppressed count to report when a line is due, nullopt when it is not
    // (then the event is counted as suppressed). Allocates nothing once the key is known.
    std::optional<std::uint64_t> admit(Level level, std::string_view key, std::string_view msg,
                                       std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());
    // Logs a line per key whose suppressed count is non-zero ("msg" with "suppressed": N).
    void flush();

private:
    struct Entry {
        std::chrono::steady_clock::time_point window_start{};
        std::uint64_t suppressed = 0;
        Level level = Level::info;
        std::string msg;
    };
    std::chrono::steady_clock::duration window_;
    std::mutex mutex_;
    struct KeyHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view k) const noexcept { return std::hash<std::string_view>{}(k); }
    };
    std::unordered_map<std::string, Entry, KeyHash, std::equal_to<>> entries_;
};

}  // namespace mdagg::log

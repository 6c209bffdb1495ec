// Structured JSON-lines logging on stdout: {"ts":"...Z","level":"info","msg":"...",...fields}.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

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

#include <mdagg/common.hpp>
#include <mdagg/observe.hpp>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <utility>

namespace mdagg::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::info)};

spdlog::logger& stdout_logger() {
    // spdlog writes each line with one fwrite under its mutex and flushes it, so lines from
    // several threads never interleave and nothing sits in a buffer when the pod is killed.
    // Never destroyed: a thread the drain abandoned (a sink writer stuck on a dead disk) may
    // still log while the process runs its static destructors on the way out.
    static spdlog::logger* const logger = [] {
        auto sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
        auto* l = new spdlog::logger("mdagg", std::move(sink));
        l->set_pattern("%v");
        l->set_level(spdlog::level::trace);
        l->flush_on(spdlog::level::trace);
        return l;
    }();
    return *logger;
}

void append_timestamp(std::string& out, std::chrono::system_clock::time_point ts) {
    using namespace std::chrono;
    append_rfc3339(out, duration_cast<nanoseconds>(ts.time_since_epoch()).count(), FractionDigits::us);
}

}  // namespace

std::optional<Level> parse_level(std::string_view text) noexcept {
    if (text == "trace") return Level::trace;
    if (text == "debug") return Level::debug;
    if (text == "info") return Level::info;
    if (text == "warn" || text == "warning") return Level::warn;
    if (text == "error") return Level::error;
    return std::nullopt;
}

std::string_view to_string(Level level) noexcept {
    switch (level) {
        case Level::trace: return "trace";
        case Level::debug: return "debug";
        case Level::info: return "info";
        case Level::warn: return "warn";
        case Level::error: return "error";
    }
    return "info";
}

void set_level(Level level) noexcept { g_level.store(static_cast<int>(level), std::memory_order_relaxed); }

bool enabled(Level level) noexcept {
    return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

std::string format_line(std::chrono::system_clock::time_point ts, Level level, std::string_view msg,
                        const nlohmann::json& fields) {
    std::string line;
    line.reserve(128);
    line += "{\"ts\":\"";
    append_timestamp(line, ts);
    line += "\",\"level\":\"";
    line += to_string(level);
    line += "\",\"msg\":";
    // Invalid UTF-8 from a hostile endpoint must not make the log line invalid JSON.
    line += nlohmann::json(std::string(msg)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (fields.is_object()) {
        for (auto it = fields.begin(); it != fields.end(); ++it) {
            if (it.key() == "ts" || it.key() == "level" || it.key() == "msg") continue;
            line += ',';
            line += nlohmann::json(it.key()).dump();
            line += ':';
            line += it.value().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        }
    }
    line += '}';
    return line;
}

void write(Level level, std::string_view msg, const nlohmann::json& fields) {
    std::string line = format_line(std::chrono::system_clock::now(), level, msg, fields);
    stdout_logger().log(spdlog::level::info, std::string_view(line));
}

void write(Level level, std::string_view msg) { write(level, msg, nlohmann::json::object()); }

RateLimited::RateLimited(std::chrono::steady_clock::duration window) : window_(window) {}

std::optional<std::uint64_t> RateLimited::admit(Level level, std::string_view key, std::string_view msg,
                                                std::chrono::steady_clock::time_point now) {
    if (!enabled(level)) return std::nullopt;
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end()) {
        it = entries_.emplace(std::string(key), Entry{}).first;
    } else if (now - it->second.window_start < window_) {
        Entry& e = it->second;
        ++e.suppressed;
        e.level = level;
        if (e.msg != msg) e.msg.assign(msg);
        return std::nullopt;
    }
    Entry& e = it->second;
    e.window_start = now;
    return std::exchange(e.suppressed, 0);
}

bool RateLimited::write(Level level, std::string_view key, std::string_view msg, nlohmann::json fields,
                        std::chrono::steady_clock::time_point now) {
    auto suppressed = admit(level, key, msg, now);
    if (!suppressed) return false;
    if (*suppressed > 0) fields["suppressed"] = *suppressed;
    log::write(level, msg, fields);
    return true;
}

void RateLimited::flush() {
    std::vector<std::tuple<Level, std::string, std::string, std::uint64_t>> pending;
    {
        std::lock_guard lock(mutex_);
        for (auto& [key, e] : entries_) {
            if (e.suppressed == 0) continue;
            pending.emplace_back(e.level, key, e.msg, e.suppressed);
            e.suppressed = 0;
        }
    }
    for (auto& [level, key, msg, n] : pending) {
        if (enabled(level)) log::write(level, msg, {{"key", key}, {"suppressed", n}});
    }
}

}  // namespace mdagg::log

#include "drain_record.hpp"

#include <mdagg/common.hpp>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <fcntl.h>
#include <unistd.h>

namespace mdagg::lifecycle {
namespace {

bool write_all(int fd, const char* data, std::size_t size) noexcept {
    while (size > 0) {
        const ssize_t n = ::write(fd, data, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        data += n;
        size -= static_cast<std::size_t>(n);
    }
    return true;
}

}  // namespace

bool write_drain_record(const char* dir, const DrainRecord& r, const char* temp_name,
                        const std::atomic<bool>* abandon) noexcept {
    char abandoned[24] = "null";
    if (r.records_abandoned >= 0) std::snprintf(abandoned, sizeof abandoned, "%" PRId64, r.records_abandoned);
    char wall[rfc3339_max_chars + 1];
    *put_rfc3339(wall, r.wall_time_ns, FractionDigits::ms) = '\0';
    char text[512];
    const int len = std::snprintf(
        text, sizeof text,
        "{\"duration_ms\":%.3f,\"budget_ms\":%.3f,\"exit_code\":%d,\"records_abandoned\":%s,"
        "\"forced_by_watchdog\":%s,\"wall_time\":\"%s\",\"wall_time_ns\":%" PRId64 "}\n",
        r.duration_ms, r.budget_ms, r.exit_code, abandoned, r.forced_by_watchdog ? "true" : "false", wall,
        r.wall_time_ns);
    if (len <= 0 || static_cast<std::size_t>(len) >= sizeof text) return false;

    const int dfd = ::open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return false;
    // A temp file a crashed write left behind would fail O_EXCL: it is ours, remove it.
    (void)::unlinkat(dfd, temp_name, 0);
    bool ok = false;
    const int fd = ::openat(dfd, temp_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0) {
        ok = write_all(fd, text, static_cast<std::size_t>(len)) && ::fsync(fd) == 0;
        ok = ::close(fd) == 0 && ok;
        if (abandon && abandon->load()) ok = false;
        ok = ok && ::renameat(dfd, temp_name, dfd, drain_record_name) == 0 && ::fsync(dfd) == 0;
        if (!ok) (void)::unlinkat(dfd, temp_name, 0);
    }
    ::close(dfd);
    return ok;
}

std::optional<DrainRecord> read_drain_record(const std::string& dir) {
    const std::string path = dir + "/" + drain_record_name;
    const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    std::string text;
    char buf[1024];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0 && text.size() < 64 * 1024;) text.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    const auto json = nlohmann::json::parse(text, nullptr, false);
    if (!json.is_object()) return std::nullopt;
    const auto duration = json.find("duration_ms");
    const auto code = json.find("exit_code");
    if (duration == json.end() || !duration->is_number() || code == json.end() || !code->is_number_integer())
        return std::nullopt;
    DrainRecord r;
    r.duration_ms = duration->get<double>();
    r.exit_code = code->get<int>();
    r.budget_ms = json.value("budget_ms", 0.0);
    if (auto a = json.find("records_abandoned"); a != json.end() && a->is_number_integer()) r.records_abandoned = a->get<std::int64_t>();
    if (auto w = json.find("wall_time_ns"); w != json.end() && w->is_number_integer()) r.wall_time_ns = w->get<std::int64_t>();
    r.forced_by_watchdog = json.value("forced_by_watchdog", false);
    return r;
}

}  // namespace mdagg::lifecycle

// Secrets (the admin bearer token, kafka.properties values): from a file (a mounted Secret,
// which can change while the daemon runs) or from an environment variable (fixed for the life
// of the process).
#include "detail.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <system_error>

namespace mdagg {

namespace {

// A secret is a line of text; a Secret of a few MiB is a mistake, not a token or a password.
constexpr std::size_t max_secret_file_bytes = 64 * 1024;

}  // namespace

std::string config_detail::read_secret_file(const std::string& path, std::string_view key) {
    const auto fail = [&](int error) -> std::string {
        throw ConfigError(std::string(key) + " \"" + path + "\": cannot read: " + std::generic_category().message(error));
    };
    const std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rbe"), &std::fclose);
    if (!file) return fail(errno);
    std::string text;
    char buffer[4096];
    while (const std::size_t n = std::fread(buffer, 1, sizeof buffer, file.get())) {
        text.append(buffer, n);
        if (text.size() > max_secret_file_bytes)
            throw ConfigError(std::string(key) + " \"" + path + "\": larger than " +
                              std::to_string(max_secret_file_bytes) + " bytes; expected one line");
    }
    if (std::ferror(file.get())) return fail(errno ? errno : EIO);
    // `echo token > file` and `kubectl create secret --from-file` keep the newline; a token never
    // ends in one.
    if (text.ends_with('\n')) text.pop_back();
    if (text.ends_with('\r')) text.pop_back();
    return text;
}

std::string admin_token(const Config& config) {
    if (!config.admin.token_file.empty())
        return config_detail::read_secret_file(config.admin.token_file, "admin.token_file");
    if (config.admin.token_env.empty()) return {};
    const char* value = std::getenv(config.admin.token_env.c_str());
    return value ? std::string(value) : std::string();
}

std::optional<FileStamp> file_stamp(const std::string& path) {
    struct stat sb;
    if (::stat(path.c_str(), &sb) != 0) return std::nullopt;
    FileStamp s;
    s.device = static_cast<std::uint64_t>(sb.st_dev);
    s.inode = static_cast<std::uint64_t>(sb.st_ino);
    s.size = static_cast<std::uint64_t>(sb.st_size);
    s.mtime_ns = static_cast<std::int64_t>(sb.st_mtim.tv_sec) * 1'000'000'000 + sb.st_mtim.tv_nsec;
    return s;
}

}  // namespace mdagg

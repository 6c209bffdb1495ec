// The admin bearer token: from a file (a mounted Secret, which can change while the daemon
// runs) or from an environment variable (fixed for the life of the process).
#include <mdagg/config.hpp>

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <system_error>

namespace mdagg {

namespace {

// A token is a line of text; a Secret of a few MiB is a mistake, not a token.
constexpr std::size_t max_token_file_bytes = 64 * 1024;

std::string read_token_file(const std::string& path) {
    const auto fail = [&](int error) -> std::string {
        throw ConfigError("admin.token_file \"" + path + "\": cannot read: " + std::generic_category().message(error));
    };
    const std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rbe"), &std::fclose);
    if (!file) return fail(errno);
    std::string text;
    char buffer[4096];
    while (const std::size_t n = std::fread(buffer, 1, sizeof buffer, file.get())) {
        text.append(buffer, n);
        if (text.size() > max_token_file_bytes)
            throw ConfigError("admin.token_file \"" + path + "\": larger than " +
                              std::to_string(max_token_file_bytes) + " bytes; expected one line");
    }
    if (std::ferror(file.get())) return fail(errno ? errno : EIO);
    // `echo token > file` and `kubectl create secret --from-file` keep the newline; a token never
    // ends in one.
    if (text.ends_with('\n')) text.pop_back();
    if (text.ends_with('\r')) text.pop_back();
    return text;
}

}  // namespace

std::string admin_token(const Config& config) {
    if (!config.admin.token_file.empty()) return read_token_file(config.admin.token_file);
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

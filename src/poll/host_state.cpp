#include <mdagg/poll.hpp>
#include <mdagg/observe.hpp>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <stdexcept>
#include <unistd.h>

namespace mdagg {
namespace {

using SystemClock = std::chrono::system_clock;
constexpr const char* temp_name = ".mdagg-hosts.json.tmp";
constexpr std::size_t max_file_bytes = 1 << 20;  // a few hosts: anything larger is not ours

std::int64_t unix_ms(SystemClock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

std::string errno_text(const char* what, int err) { return std::string(what) + ": " + std::strerror(err); }

}  // namespace

HostPauseFile::HostPauseFile(std::string dir) : dir_(std::move(dir)), thread_([this] { run(); }) {}

HostPauseFile::~HostPauseFile() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

std::string HostPauseFile::to_json(const std::vector<ServerPause>& pauses) {
    nlohmann::json hosts = nlohmann::json::array();
    for (auto& p : pauses)
        hosts.push_back({{"host", p.host}, {"reason", to_string(p.reason)}, {"until_unix_ms", unix_ms(p.until)}});
    return nlohmann::json{{"version", 1}, {"hosts", std::move(hosts)}}.dump() + "\n";
}

std::vector<ServerPause> HostPauseFile::parse(std::string_view text, SystemClock::time_point now) {
    const auto json = nlohmann::json::parse(text, nullptr, false);
    if (json.is_discarded() || !json.is_object()) throw std::invalid_argument("not a JSON object");
    const auto version = json.find("version");
    if (version == json.end() || *version != 1) throw std::invalid_argument("unknown version");
    const auto hosts = json.find("hosts");
    if (hosts == json.end() || !hosts->is_array()) throw std::invalid_argument("no \"hosts\" array");
    std::vector<ServerPause> out;
    for (auto& h : *hosts) {
        if (!h.is_object()) throw std::invalid_argument("a host entry is not an object");
        const auto host = h.find("host");
        const auto reason = h.find("reason");
        const auto until = h.find("until_unix_ms");
        if (host == h.end() || !host->is_string() || host->get<std::string>().empty() || reason == h.end() ||
            !reason->is_string() || until == h.end() || !until->is_number_integer())
            throw std::invalid_argument("a host entry needs host, reason and until_unix_ms");
        ServerPause p;
        p.host = host->get<std::string>();
        if (*reason == "banned")
            p.reason = PauseReason::banned;
        else if (*reason == "rate_limited")
            p.reason = PauseReason::rate_limited;
        else
            throw std::invalid_argument("unknown reason \"" + reason->get<std::string>() + "\"");
        p.until = SystemClock::time_point(std::chrono::milliseconds(until->get<std::int64_t>()));
        if (p.until > now) out.push_back(std::move(p));
    }
    return out;
}

std::vector<ServerPause> HostPauseFile::load(SystemClock::time_point now) {
    const std::string path = dir_ + "/" + file_name;
    Fd fd{::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC)};
    std::vector<ServerPause> out;
    if (fd.fd < 0) {
        if (errno != ENOENT)
            log::warn("cannot read the host pause state; starting without it",
                      {{"path", path}, {"error", errno_text("open", errno)}});
        return out;
    }
    std::string text;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(fd.fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            log::warn("cannot read the host pause state; starting without it",
                      {{"path", path}, {"error", errno_text("read", errno)}});
            return out;
        }
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
        if (text.size() > max_file_bytes) break;
    }
    try {
        if (text.size() > max_file_bytes) throw std::invalid_argument("larger than 1 MiB");
        out = parse(text, now);
    } catch (const std::invalid_argument& e) {
        log::warn("host pause state is corrupt; ignored", {{"path", path}, {"error", e.what()}});
        return {};
    }
    last_ = out;
    return out;
}

void HostPauseFile::update(const std::vector<ServerPause>& current) {
    bool changed = current.size() != last_.size();
    for (std::size_t i = 0; !changed && i < current.size(); ++i) {
        const auto& a = current[i];
        const auto& b = last_[i];
        const auto moved = a.until > b.until ? a.until - b.until : b.until - a.until;
        changed = a.host != b.host || a.reason != b.reason || moved > std::chrono::seconds(1);
    }
    if (!changed) return;
    last_ = current;
    {
        std::lock_guard lock(mutex_);
        pending_ = to_json(current);
    }
    cv_.notify_all();
}

void HostPauseFile::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        cv_.wait(lock, [this] { return stop_ || pending_; });
        if (pending_) {
            std::string content = std::move(*pending_);
            pending_.reset();
            lock.unlock();
            write(content);
            lock.lock();
            continue;  // a newer state may have arrived meanwhile; write it before stopping
        }
        if (stop_) return;
    }
}

void HostPauseFile::write(const std::string& content) {
    auto fail = [this](std::string error) {
        if (!failing_)
            log::warn("cannot write the host pause state: a restart would forget the pauses",
                      {{"dir", dir_}, {"file", file_name}, {"error", std::move(error)}});
        failing_ = true;
    };
    Fd dir{::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (dir.fd < 0) return fail(errno_text("open dir", errno));
    Fd tmp{::openat(dir.fd, temp_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644)};
    if (tmp.fd < 0 && errno == EEXIST) {  // left by a crash mid-write; never followed as a link
        ::unlinkat(dir.fd, temp_name, 0);
        tmp.fd = ::openat(dir.fd, temp_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    }
    if (tmp.fd < 0) return fail(errno_text("create", errno));
    for (std::size_t done = 0; done < content.size();) {
        const ssize_t n = ::write(tmp.fd, content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int err = errno;
            ::unlinkat(dir.fd, temp_name, 0);
            return fail(errno_text("write", err));
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(tmp.fd) != 0) {
        const int err = errno;
        ::unlinkat(dir.fd, temp_name, 0);
        return fail(errno_text("fsync", err));
    }
    ::close(std::exchange(tmp.fd, -1));
    if (::renameat(dir.fd, temp_name, dir.fd, file_name) != 0) {
        const int err = errno;
        ::unlinkat(dir.fd, temp_name, 0);
        return fail(errno_text("rename", err));
    }
    if (::fsync(dir.fd) != 0) return fail(errno_text("fsync dir", errno));
    if (failing_) log::info("host pause state written again", {{"dir", dir_}, {"file", file_name}});
    failing_ = false;
}

}  // namespace mdagg

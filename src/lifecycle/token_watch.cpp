#include "token_watch.hpp"

#include <mdagg/observe.hpp>

#include <nlohmann/json.hpp>

namespace mdagg::lifecycle {

TokenFileWatcher::TokenFileWatcher(std::chrono::milliseconds period, Apply apply)
    : period_(period), apply_(std::move(apply)) {}

TokenFileWatcher::~TokenFileWatcher() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void TokenFileWatcher::watch(std::string path, std::optional<FileStamp> applied) {
    {
        std::lock_guard lock(mutex_);
        path_ = std::move(path);
        stamp_ = applied;
        failing_ = false;
        if (path_.empty() || thread_.joinable()) return;
    }
    thread_ = std::thread([this] { run(); });
}

void TokenFileWatcher::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait_for(lock, period_, [this] { return stop_; });
        if (stop_) return;
        if (path_.empty()) continue;
        const std::string path = path_;
        const std::optional<FileStamp> known = stamp_;
        lock.unlock();
        // Stamp first: a change during the read shows as a new stamp on the next turn.
        const std::optional<FileStamp> stamp = file_stamp(path);
        std::optional<std::string> token;
        std::string error;
        if (stamp != known || !stamp) {
            try {
                Config reader;
                reader.admin.token_file = path;
                token = admin_token(reader);
            } catch (const ConfigError& e) {
                error = e.what();
            }
        }
        lock.lock();
        if (stop_) return;
        if (path_ != path) continue;  // a reload pointed elsewhere meanwhile
        if (!token && !error.empty()) {
            if (!failing_)
                log::error("cannot read admin.token_file: keeping the current token", {{"error", error}});
            failing_ = true;
            continue;
        }
        if (!token) continue;
        if (failing_) log::info("admin.token_file readable again", {{"path", path}});
        failing_ = false;
        stamp_ = stamp;
        lock.unlock();
        // The value itself is never logged.
        apply_(std::move(*token));
        log::info("admin token reloaded: admin.token_file changed", {{"path", path}});
        lock.lock();
    }
}

}  // namespace mdagg::lifecycle

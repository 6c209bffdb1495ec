// Picks up a new admin token from admin.token_file while the daemon runs.
#pragma once

#include <mdagg/config.hpp>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace mdagg::lifecycle {

// Its own thread stats the path once a period, so neither the pollers nor the event loop ever
// wait on that file system. stat follows symlinks: a Kubernetes Secret update swaps the
// `..data` symlink, which an inotify watch on the old inode would miss. A changed file is read
// and its token handed to `apply` (from this thread); an unreadable one keeps the current
// token and is logged once until it reads again.
class TokenFileWatcher {
public:
    using Apply = std::function<void(std::string token)>;
    TokenFileWatcher(std::chrono::milliseconds period, Apply apply);
    ~TokenFileWatcher();
    TokenFileWatcher(const TokenFileWatcher&) = delete;
    TokenFileWatcher& operator=(const TokenFileWatcher&) = delete;

    // Watches `path` (nothing when empty), whose contents as of `applied` are in effect.
    void watch(std::string path, std::optional<FileStamp> applied);

private:
    void run();

    const std::chrono::milliseconds period_;
    const Apply apply_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::string path_;                 // guarded by mutex_
    std::optional<FileStamp> stamp_;   // guarded by mutex_: of the contents in effect
    bool failing_ = false;             // guarded by mutex_: the last read failed (logged once)
    bool stop_ = false;                // guarded by mutex_
    std::thread thread_;
};

}  // namespace mdagg::lifecycle

// The output directory's lock: one process per directory, kept while a writer may write.
#include "file_sink.hpp"

#include <cerrno>

#include <sys/file.h>
#include <sys/stat.h>

namespace mdagg::sink_detail {

DirectoryLock try_lock_directory(const std::string& dir, int dfd) {
    DirectoryLock lock;
    const int fd = ::openat(dfd, lock_name, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
    if (fd < 0) {
        lock.error = errno;
        return lock;
    }
    lock.opened = true;
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        lock.error = errno;
        char buf[24] = {};
        const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
        ::close(fd);
        std::string holder(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
        holder.erase(std::find_if(holder.begin(), holder.end(), [](char c) { return c < '0' || c > '9'; }),
                     holder.end());
        if (!holder.empty()) lock.holder = holder;
        return lock;
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
        log::warn("cannot write our pid into the output directory's lock file; the lock holds anyway",
                  {{"path", dir + "/" + lock_name}, {"error", error_text(errno)}});
    lock.fd = fd;
    return lock;
}

// One process per directory: two daemons would delete each other's segments by retention.
// The lock file is never removed (an unlink would let two processes lock two different files).
int lock_directory(const std::string& dir, int dfd) {
    const DirectoryLock lock = try_lock_directory(dir, dfd);
    const std::string path = dir + "/" + lock_name;
    if (lock.fd >= 0) return lock.fd;
    if (lock.error != EWOULDBLOCK) {
        throw std::system_error(lock.error, std::generic_category(),
                                (lock.opened ? "cannot lock " : "cannot open lock file ") + path);
    }
    throw std::system_error(lock.error, std::generic_category(),
                            "output directory " + dir + " is in use by another mdagg process (pid " + lock.holder +
                                ", holding " + path + ")");
}

// The flock lives on the lock file's inode: when that file is gone (the directory removed
// and recreated, or the file deleted) another daemon could lock a new one. Take the new one.
void State::keep_directory_locked() {
    struct stat sb;
    if (lock_fd < 0 || ::fstat(lock_fd, &sb) != 0 || sb.st_nlink > 0) return;
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return;  // the segment's create fails too, and is retried
    const DirectoryLock lock = try_lock_directory(dir, dfd);
    ::close(dfd);
    if (lock.fd >= 0) {
        ::close(lock_fd);
        lock_fd = lock.fd;
        log::warn("output directory lock file was removed; locked again", {{"path", dir + "/" + lock_name}});
        return;
    }
    lock_log.write(log::Level::error, "sink.lock",
                   "output directory lock lost: its file was removed and cannot be locked again; another "
                   "process may write and apply retention here",
                   {{"path", dir + "/" + lock_name}, {"holder_pid", lock.holder}, {"error", error_text(lock.error)}});
}

}  // namespace mdagg::sink_detail

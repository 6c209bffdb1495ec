// LD_PRELOAD shim for integration tests only: makes fdatasync(2) fail with EIO, as a dying
// disk does, for files whose path contains $MDAGG_FAULT_FDATASYNC_MATCH, while the file named
// by $MDAGG_FAULT_FDATASYNC_WHILE exists (so a test starts and ends the fault while the real
// daemon runs). Everything else goes to the real call.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <dlfcn.h>
#include <unistd.h>

namespace {

using fdatasync_fn = int (*)(int);

fdatasync_fn real_fdatasync() {
    static const auto fn = reinterpret_cast<fdatasync_fn>(::dlsym(RTLD_NEXT, "fdatasync"));
    return fn;
}

bool should_fail(int fd) {
    const char* trigger = std::getenv("MDAGG_FAULT_FDATASYNC_WHILE");
    const char* match = std::getenv("MDAGG_FAULT_FDATASYNC_MATCH");
    if (!trigger || !match || ::access(trigger, F_OK) != 0) return false;
    char link[64];
    std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    char path[4096];
    const ssize_t n = ::readlink(link, path, sizeof path - 1);
    if (n <= 0) return false;
    path[n] = '\0';
    return std::strstr(path, match) != nullptr;
}

}  // namespace

extern "C" int fdatasync(int fd) {
    if (should_fail(fd)) {
        errno = EIO;
        return -1;
    }
    return real_fdatasync()(fd);
}

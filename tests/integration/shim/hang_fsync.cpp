// LD_PRELOAD for the drain tests: a disk that stops answering. While the file named by
// MDAGG_TEST_HANG_FSYNC_FILE exists, fsync and fdatasync do not return.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>

namespace {

void wait_while_flagged() {
    const char* flag = std::getenv("MDAGG_TEST_HANG_FSYNC_FILE");
    if (!flag) return;
    while (::access(flag, F_OK) == 0) ::usleep(10'000);
}

template <class Fn>
Fn next(const char* name) {
    return reinterpret_cast<Fn>(::dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" int fsync(int fd) {
    static const auto real = next<int (*)(int)>("fsync");
    wait_while_flagged();
    return real(fd);
}

extern "C" int fdatasync(int fd) {
    static const auto real = next<int (*)(int)>("fdatasync");
    wait_while_flagged();
    return real(fd);
}

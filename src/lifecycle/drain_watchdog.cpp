#include "drain_watchdog.hpp"

#include "drain_record.hpp"

#include <mdagg/common.hpp>
#include <mdagg/lifecycle.hpp>

#include <cerrno>
#include <memory>
#include <new>
#include <poll.h>
#include <sys/socket.h>
#include <system_error>
#include <unistd.h>

namespace mdagg::lifecycle {
namespace {

using std::chrono::milliseconds;

double to_ms(DrainWatchdog::Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

std::int64_t wall_clock_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace

void DrainWatchdog::arm(Clock::time_point started, Clock::time_point fire_at, Clock::duration budget) {
    if (thread_.joinable()) return;
    thread_ = std::thread([this, started, fire_at, budget] {
        std::unique_lock lock(mutex_);
        if (cv_.wait_until(lock, fire_at, [this] { return disarmed_; })) return;
        static constexpr char line[] =
            "{\"level\":\"error\",\"msg\":\"drain watchdog fired: the drain did not finish within "
            "its budget; forcing exit\",\"exit_code\":3}\n";
        write_if_writable(line, sizeof line - 1);
        fired_.store(true);  // the drain's own record, if still being written, is not renamed
        record(Clock::now() - started, budget);
        ::_exit(exit_drain_timeout);
    });
}

DrainWatchdog::~DrainWatchdog() {
    {
        std::lock_guard lock(mutex_);
        disarmed_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void DrainWatchdog::write_if_writable(const char* line, std::size_t size) {
    pollfd out{STDOUT_FILENO, POLLOUT, 0};
    if (::poll(&out, 1, 0) != 1 || !(out.revents & POLLOUT)) return;
    // A pipe with a free slot and a file take a short line at once; a socket might not.
    if (::send(STDOUT_FILENO, line, size, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0 || errno != ENOTSOCK) return;
    (void)!::write(STDOUT_FILENO, line, size);
}

void DrainWatchdog::record(Clock::duration elapsed, Clock::duration budget) {
    struct Pending {
        std::string dir;
        DrainRecord record;
        std::atomic<bool> done{false};
    };
    std::shared_ptr<Pending> pending;
    try {
        pending = std::make_shared<Pending>();
        pending->dir = output_dir_;
    } catch (const std::bad_alloc&) {
        return;
    }
    auto& r = pending->record;
    r.duration_ms = to_ms(elapsed);
    r.budget_ms = to_ms(budget);
    r.exit_code = exit_drain_timeout;
    r.forced_by_watchdog = true;
    r.wall_time_ns = wall_clock_ns();
    try {
        std::thread([pending] {
            write_drain_record(pending->dir.c_str(), pending->record, watchdog_temp_name);
            pending->done = true;
        }).detach();
    } catch (const std::system_error&) {
        return;
    }
    for (int i = 0; i < 25 && !pending->done; ++i) std::this_thread::sleep_for(milliseconds(10));
}

}  // namespace mdagg::lifecycle

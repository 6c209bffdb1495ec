// Private to lifecycle: the drain's last resort, a thread that forces exit 3.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace mdagg::lifecycle {

// Last resort if the drain or the teardown after it hangs (a disk that never returns from
// fsync, a blocked event loop, a bug): exit with the forced-stop code before the
// orchestrator's SIGKILL, so the stop is visible. Armed by the signal thread the moment the
// signal arrives. It takes no lock (the logger's mutex may be held by the very thread that
// hangs) and never blocks on its own output: the log line is skipped when stdout cannot take
// it now, and the drain record gets a bounded moment on a helper thread.
class DrainWatchdog {
public:
    using Clock = std::chrono::steady_clock;
    explicit DrainWatchdog(std::string output_dir) : output_dir_(std::move(output_dir)) {}

    void arm(Clock::time_point started, Clock::time_point fire_at, Clock::duration budget);
    ~DrainWatchdog();

    // Set once the watchdog forces the exit: its record, not the drain's, tells what happened.
    const std::atomic<bool>& fired() const noexcept { return fired_; }

private:
    static void write_if_writable(const char* line, std::size_t size);
    // The disk may be what hangs: the record gets at most 250 ms. The helper thread may outlive
    // this frame (until _exit), so what it reads lives on the heap.
    void record(Clock::duration elapsed, Clock::duration budget);

    const std::string output_dir_;
    std::atomic<bool> fired_{false};
    std::mutex mutex_;
    std::condition_variable cv_;
    bool disarmed_ = false;
    std::thread thread_;
};

}  // namespace mdagg::lifecycle

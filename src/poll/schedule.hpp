// Fixed-rate polling schedule, sans-io: stable phase offsets and skip-not-burst tick arithmetic.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

namespace mdagg {

// Stable across restarts and machines (FNV-1a of "source/symbol"), so the 2,000 pollers of a
// source spread over the interval instead of firing together, and keep their slot.
std::chrono::nanoseconds phase_offset(std::string_view source, std::string_view symbol,
                                      std::chrono::nanoseconds interval) noexcept;

// Ticks are at epoch + offset + k * interval. Times are durations since any fixed epoch
// (the daemon uses the steady clock's).
class Schedule {
public:
    using Time = std::chrono::nanoseconds;

    Schedule(std::chrono::nanoseconds interval, std::chrono::nanoseconds offset) noexcept
        : interval_(interval), offset_(offset) {}

    // The first tick at or after `now`.
    Time first_tick(Time now) const noexcept;

    struct Next {
        Time tick;              // at or after `now`
        std::uint64_t skipped;  // ticks after `previous` that passed while busy (not fired)
    };
    // The tick to wait for after the one at `previous` was handled and the clock reads `now`.
    // A poller that fell behind skips the missed ticks (counted) instead of bursting.
    Next next(Time previous, Time now) const noexcept;

    std::chrono::nanoseconds interval() const noexcept { return interval_; }
    std::chrono::nanoseconds offset() const noexcept { return offset_; }

private:
    std::chrono::nanoseconds interval_;
    std::chrono::nanoseconds offset_;
};

}  // namespace mdagg

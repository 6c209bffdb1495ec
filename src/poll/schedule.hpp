// Fixed-rate polling schedule, sans-io: stable phase offsets and skip-not-burst tick arithmetic.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace mdagg {

// Stable across restarts and machines (FNV-1a of "source/symbol"), so the 2,000 pollers of a
// source spread over the interval instead of firing together, and keep their slot.
std::chrono::nanoseconds phase_offset(std::string_view source, std::string_view symbol,
                                      std::chrono::nanoseconds interval) noexcept;

// The io shard (runtime.threads > 1) of a new poller whose ticks fall `offset` into each
// `interval`: shard k of n takes the k-th n-th of every interval, so each shard's pollers come
// due in one block of milliseconds (its wheel sleeps through the others' blocks, and a wake-up
// serves n times the pollers round-robin dealing gave it) and the shards' threads take turns
// rather than contend. `placed[k]` counts shard k's pollers: a shard more than 2 + total/8
// ahead of the emptiest gets no more (pollers sharing a phase, few pollers, a skewed hash);
// the emptiest (lowest index on a tie) takes the poller instead.
std::size_t phase_shard(std::chrono::nanoseconds offset, std::chrono::nanoseconds interval,
                        std::span<const std::size_t> placed) noexcept;

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

#include "schedule.hpp"

#include <mdagg/common.hpp>

#include <algorithm>

namespace mdagg {

std::chrono::nanoseconds phase_offset(std::string_view source, std::string_view symbol,
                                      std::chrono::nanoseconds interval) noexcept {
    if (interval.count() <= 0) return std::chrono::nanoseconds::zero();
    const std::uint64_t h = fnv1a_64(symbol, fnv1a_64("/", fnv1a_64(source)));
    return std::chrono::nanoseconds(static_cast<std::int64_t>(h % static_cast<std::uint64_t>(interval.count())));
}

std::size_t phase_shard(std::chrono::nanoseconds offset, std::chrono::nanoseconds interval,
                        std::span<const std::size_t> placed) noexcept {
    const std::size_t n = placed.size();
    if (n <= 1) return 0;
    std::size_t shard = 0;
    if (interval.count() > 0) {
        auto off = offset.count() % interval.count();
        if (off < 0) off += interval.count();
        const double block = static_cast<double>(off) / static_cast<double>(interval.count()) * static_cast<double>(n);
        shard = std::min(static_cast<std::size_t>(block), n - 1);
    }
    std::size_t emptiest = 0, total = 0;
    for (std::size_t k = 0; k < n; ++k) {
        total += placed[k];
        if (placed[k] < placed[emptiest]) emptiest = k;
    }
    return placed[shard] - placed[emptiest] > 2 + total / 8 ? emptiest : shard;
}

Schedule::Time Schedule::first_tick(Time now) const noexcept {
    auto since = now - offset_;
    auto k = since.count() >= 0 ? (since.count() + interval_.count() - 1) / interval_.count()
                                : -((-since.count()) / interval_.count());
    return offset_ + interval_ * k;
}

Schedule::Next Schedule::next(Time previous, Time now) const noexcept {
    Time tick = previous + interval_;
    if (tick >= now) return {tick, 0};
    // Every tick in (previous, now) was missed; resume at the first one at or after now.
    auto elapsed = (now - previous).count();
    auto missed = (elapsed + interval_.count() - 1) / interval_.count() - 1;
    return {previous + interval_ * (missed + 1), static_cast<std::uint64_t>(missed)};
}

}  // namespace mdagg

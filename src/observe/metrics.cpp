#include <mdagg/observe.hpp>

#include <bit>
#include <cmath>

namespace mdagg {

std::size_t LatencyHistogram::bucket_of(std::chrono::nanoseconds value) noexcept {
    auto us = value.count() <= 0 ? 0ULL : static_cast<unsigned long long>(value.count() / 1000);
    if (us < 4) return static_cast<std::size_t>(us);
    int exponent = std::bit_width(us) - 1;  // >= 2
    auto sub = static_cast<std::size_t>((us >> (exponent - 2)) & 3U);
    std::size_t index = 4 + static_cast<std::size_t>(exponent - 2) * 4 + sub;
    return index < bucket_count ? index : bucket_count - 1;
}

std::chrono::nanoseconds LatencyHistogram::upper_bound(std::size_t bucket) noexcept {
    using std::chrono::microseconds;
    if (bucket < 4) return microseconds(bucket + 1);
    std::size_t exponent = (bucket - 4) / 4 + 2;
    std::size_t sub = (bucket - 4) % 4;
    return microseconds(static_cast<long long>((4 + sub + 1) << (exponent - 2)));
}

LatencyHistogram::Snapshot LatencyHistogram::snapshot() const noexcept {
    Snapshot s;
    for (std::size_t i = 0; i < bucket_count; ++i) {
        s.counts[i] = counts_[i].load(std::memory_order_relaxed);
        s.total += s.counts[i];
    }
    s.sum_ns = sum_ns_.load(std::memory_order_relaxed);
    return s;
}

std::chrono::nanoseconds LatencyHistogram::Snapshot::quantile(double q) const noexcept {
    if (total == 0) return std::chrono::nanoseconds::zero();
    auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total)));
    if (rank == 0) rank = 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < bucket_count; ++i) {
        seen += counts[i];
        if (seen >= rank) return upper_bound(i);
    }
    return upper_bound(bucket_count - 1);
}

LatencyHistogram::Snapshot LatencyHistogram::Snapshot::since(const Snapshot& earlier) const noexcept {
    Snapshot d;
    for (std::size_t i = 0; i < bucket_count; ++i) {
        d.counts[i] = counts[i] - earlier.counts[i];
        d.total += d.counts[i];
    }
    d.sum_ns = sum_ns - earlier.sum_ns;
    return d;
}

void LatencyHistogram::Snapshot::merge(const Snapshot& other) noexcept {
    for (std::size_t i = 0; i < bucket_count; ++i) counts[i] += other.counts[i];
    total += other.total;
    sum_ns += other.sum_ns;
}

}  // namespace mdagg

// Lock-free latency histogram: log-linear buckets (four per power of two) from 1 us to ~1 h.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace mdagg {

class LatencyHistogram {
public:
    static constexpr std::size_t bucket_count = 4 + 4 * 30;

    struct Snapshot {
        std::array<std::uint64_t, bucket_count> counts{};
        std::uint64_t total = 0;
        std::uint64_t sum_ns = 0;  // sum of recorded values (Prometheus needs it)
        // Upper bound of the bucket holding quantile q in [0, 1]; zero when empty.
        std::chrono::nanoseconds quantile(double q) const noexcept;
        Snapshot since(const Snapshot& earlier) const noexcept;
        void merge(const Snapshot& other) noexcept;
    };

    void record(std::chrono::nanoseconds value) noexcept {
        counts_[bucket_of(value)].fetch_add(1, std::memory_order_relaxed);
        sum_ns_.fetch_add(value.count() > 0 ? static_cast<std::uint64_t>(value.count()) : 0,
                          std::memory_order_relaxed);
    }
    Snapshot snapshot() const noexcept;

    static std::size_t bucket_of(std::chrono::nanoseconds value) noexcept;
    // Exclusive upper bound of a bucket.
    static std::chrono::nanoseconds upper_bound(std::size_t bucket) noexcept;

private:
    std::array<std::atomic<std::uint64_t>, bucket_count> counts_{};
    std::atomic<std::uint64_t> sum_ns_{0};
};

}  // namespace mdagg

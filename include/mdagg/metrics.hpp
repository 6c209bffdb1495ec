// Metrics every module writes: a lock-free latency histogram, and the Prometheus text writer
// each module appends its own families to (a module's metric names, labels and help live with
// the module that counts them).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

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

// ---- Prometheus text exposition format 0.0.4 ------------------------------------------------

struct Label {
    std::string_view name;
    std::string_view value;
};

// Appends families to `out`. Call family() once per metric name before its samples.
class PrometheusWriter {
public:
    explicit PrometheusWriter(std::string& out) : out_(out) {}
    // type: counter, gauge or histogram.
    void family(std::string_view name, std::string_view type, std::string_view help);
    void sample(std::string_view name, std::initializer_list<Label> labels, double value);
    // name_bucket{le=...} (cumulative, ending in +Inf), name_sum and name_count, in seconds.
    // The le bounds are powers of two from 128 us to 33.5 s: each is an exact bucket bound of
    // LatencyHistogram, so the cumulative counts are exact, not interpolated.
    void histogram(std::string_view name, std::initializer_list<Label> labels,
                   const LatencyHistogram::Snapshot& snapshot);

private:
    void series(std::string_view name, std::initializer_list<Label> labels,
                std::optional<Label> extra);
    std::string& out_;
};

}  // namespace mdagg

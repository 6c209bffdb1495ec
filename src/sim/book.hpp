// The simulator's symbols: names, hung flags, per-symbol random walks and counters.
#pragma once

#include "mdagg/sim.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mdagg::sim::detail {

// Prices and quantities are integers in hundredths, so formatting is exact.
struct Quote {
    std::int64_t bid = 0;
    std::int64_t ask = 0;
    std::int64_t bid_qty = 0;
    std::int64_t ask_qty = 0;
    std::int64_t time_ms = 0;
    std::uint64_t seq = 0;
};

// Stable across runs and builds (unlike std::hash), so a hung_ratio picks the same symbols
// in the simulator, in the tests and in any tool that wants to predict them.
std::uint64_t stable_hash(std::string_view text) noexcept;

// splitmix64: tiny state, good enough for prices and latencies, and cheap per call.
std::uint64_t next_random(std::uint64_t& state) noexcept;

class Book {
public:
    explicit Book(const Options& options);

    std::size_t size() const noexcept { return names_.size(); }
    const std::string& name(std::size_t index) const { return names_[index]; }
    const std::string& json_name(std::size_t index) const { return json_names_[index]; }  // quoted

    // The index of a known symbol (prefix + decimal index, no leading zeros), if any.
    std::optional<std::size_t> find(std::string_view name) const noexcept;

    bool hung(std::size_t index) const noexcept { return hung_[index]; }
    bool is_hung(std::string_view name) const;

    // Takes the next sequence number and steps the walk: one call per response generated.
    Quote next(std::size_t index);

    void count_written(std::size_t index) noexcept {
        states_[index].written.fetch_add(1, std::memory_order_relaxed);
    }
    std::uint64_t written(std::size_t index) const noexcept {
        return states_[index].written.load(std::memory_order_relaxed);
    }

    // Appends the bookTicker-like JSON body for symbol `index`.
    void append_json(std::string& out, std::size_t index, const Quote& quote) const;
    // Appends "name":written pairs (comma-separated, no braces) for every symbol.
    void append_written_json(std::string& out) const;
    // Appends "name":last_seq pairs for the symbols that have taken a seq.
    void append_last_seq_json(std::string& out) const;

    // A quote-shaped body that is not a quote: seq 0 and a price no walk takes, for faults that
    // must look like a response but must never be taken for one.
    void append_fake_json(std::string& out, std::size_t index) const;

private:
    // Own cache line each: with --threads N, neighbouring symbols are hit from several threads.
    struct alignas(64) State {
        std::mutex mutex;  // uncontended in the single-thread default; keeps seq and price in step
        std::uint64_t rng = 0;
        std::int64_t bid = 0;
        std::uint64_t seq = 0;
        std::atomic<std::uint64_t> written{0};
    };

    std::string prefix_;
    std::vector<std::string> names_;
    std::vector<std::string> json_names_;  // JSON string literals, escaped once
    std::vector<bool> hung_;
    std::vector<std::string> hung_unknown_;  // hung_symbols outside the known range, sorted
    std::unique_ptr<State[]> states_;
};

// Appends hundredths as a fixed two-decimal string ("101.25", "0.07", "-1.50").
void append_hundredths(std::string& out, std::int64_t value);

}  // namespace mdagg::sim::detail

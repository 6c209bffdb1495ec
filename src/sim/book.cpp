#include "book.hpp"

#include "quote_json.hpp"

#include <mdagg/common.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <stdexcept>

namespace mdagg::sim::detail {
namespace {

std::uint64_t mix(std::uint64_t x) noexcept {  // splitmix64 finaliser
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

template <class Int>
void append_int(std::string& out, Int value) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
    (void)ec;  // 24 chars always fit a 64-bit integer
    out.append(buf, end);
}

}  // namespace

std::uint64_t next_random(std::uint64_t& state) noexcept {
    state += 0x9e3779b97f4a7c15ULL;
    std::uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

std::uint64_t stable_hash(std::string_view text) noexcept {
    // FNV's high bits barely move between names that differ in the last digit; mix them.
    return mix(fnv1a_64(text));
}

void append_hundredths(std::string& out, std::int64_t value) {
    std::uint64_t magnitude = value < 0 ? 0 - static_cast<std::uint64_t>(value)
                                        : static_cast<std::uint64_t>(value);
    if (value < 0) out.push_back('-');
    append_int(out, magnitude / 100);
    const auto cents = static_cast<unsigned>(magnitude % 100);
    out.push_back('.');
    out.push_back(static_cast<char>('0' + cents / 10));
    out.push_back(static_cast<char>('0' + cents % 10));
}

Book::Book(const Options& options)
    : prefix_(options.prefix),
      hung_(options.symbols, false),
      states_(std::make_unique<State[]>(options.symbols)) {
    if (!(options.hung_ratio >= 0.0 && options.hung_ratio <= 1.0))
        throw std::invalid_argument("hung_ratio must be within [0, 1]");
    names_.reserve(options.symbols);
    json_names_.reserve(options.symbols);
    for (std::size_t i = 0; i < options.symbols; ++i) {
        names_.push_back(prefix_ + std::to_string(i));
        // The prefix comes from the command line: escape it rather than trust it.
        json_names_.push_back(nlohmann::json(names_.back())
                                  .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        // Top 53 bits as a uniform fraction in [0, 1).
        const double u = static_cast<double>(stable_hash(names_.back()) >> 11) * 0x1.0p-53;
        hung_[i] = u < options.hung_ratio;

        State& s = states_[i];
        s.rng = mix(options.seed ^ mix(i));
        s.bid = 1000 + static_cast<std::int64_t>(next_random(s.rng) % 49000);  // 10.00 .. 499.99
    }
    for (const auto& name : options.hung_symbols) {
        if (auto index = find(name))
            hung_[*index] = true;
        else
            hung_unknown_.push_back(name);
    }
    std::sort(hung_unknown_.begin(), hung_unknown_.end());
}

std::optional<std::size_t> Book::find(std::string_view name) const noexcept {
    if (name.size() <= prefix_.size() || name.substr(0, prefix_.size()) != prefix_)
        return std::nullopt;
    const std::string_view digits = name.substr(prefix_.size());
    if (digits.size() > 1 && digits.front() == '0') return std::nullopt;  // one name per symbol
    std::size_t index = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (ec != std::errc{} || end != digits.data() + digits.size() || index >= names_.size())
        return std::nullopt;
    return index;
}

bool Book::is_hung(std::string_view name) const {
    if (auto index = find(name)) return hung_[*index];
    return std::binary_search(hung_unknown_.begin(), hung_unknown_.end(), name);
}

Quote Book::next(std::size_t index) {
    State& s = states_[index];
    Quote q;
    std::lock_guard lock(s.mutex);
    const std::uint64_t r = next_random(s.rng);
    // Step the bid by -2..+2 cents; keep it positive so ask > bid > 0 always holds.
    s.bid = std::max<std::int64_t>(1, s.bid + static_cast<std::int64_t>(r % 5) - 2);
    q.bid = s.bid;
    q.ask = s.bid + 1 + static_cast<std::int64_t>((r >> 8) % 3);
    q.bid_qty = 1 + static_cast<std::int64_t>((r >> 16) % 100000);  // 0.01 .. 1000.00
    q.ask_qty = 1 + static_cast<std::int64_t>((r >> 40) % 100000);
    q.seq = ++s.seq;
    // Read under the lock so time never goes backwards as seq goes forwards (with --threads).
    q.time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
    return q;
}

void Book::append_json(std::string& out, std::size_t index, const Quote& q) const {
    append_quote_object(out, binance_keys(), *this, index, q);
}

void Book::append_written_json(std::string& out) const {
    for (std::size_t i = 0; i < names_.size(); ++i) {
        if (i != 0) out += ',';
        out += json_names_[i];
        out += ':';
        append_int(out, written(i));
    }
}

void Book::append_last_seq_json(std::string& out) const {
    bool first = true;
    for (std::size_t i = 0; i < names_.size(); ++i) {
        std::uint64_t seq = 0;
        {
            std::lock_guard lock(states_[i].mutex);
            seq = states_[i].seq;
        }
        if (seq == 0) continue;
        if (!first) out += ',';
        first = false;
        out += json_names_[i];
        out += ':';
        append_int(out, seq);
    }
}

void Book::append_fake_json(std::string& out, std::size_t index) const {
    Quote q;
    q.bid = 99900;
    q.ask = 100100;
    q.bid_qty = q.ask_qty = 100;
    q.time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
    append_json(out, index, q);
}

}  // namespace mdagg::sim::detail

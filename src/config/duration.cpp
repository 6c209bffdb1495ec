#include <mdagg/config.hpp>

#include <cstdint>
#include <limits>
#include <numeric>

namespace mdagg {

namespace {

std::optional<std::int64_t> unit_ns(std::string_view unit) noexcept {
    if (unit == "ns") return 1;
    if (unit == "us") return 1'000;
    if (unit == "ms") return 1'000'000;
    if (unit == "s") return 1'000'000'000;
    if (unit == "m") return 60'000'000'000;
    if (unit == "h") return 3'600'000'000'000;
    return std::nullopt;
}

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

}  // namespace

// Exact integer arithmetic throughout: "0.1s" must be 100'000'000ns, not 99'999'999.
std::optional<Duration> parse_duration(std::string_view text) noexcept {
    constexpr std::int64_t max = std::numeric_limits<std::int64_t>::max();
    std::size_t i = 0;
    auto take_digits = [&] {
        const std::size_t begin = i;
        while (i < text.size() && is_digit(text[i])) ++i;
        return text.substr(begin, i - begin);
    };
    const std::string_view whole = take_digits();
    std::string_view fraction;
    if (whole.empty()) return std::nullopt;
    if (i < text.size() && text[i] == '.') {
        ++i;
        fraction = take_digits();
        if (fraction.empty()) return std::nullopt;
    }
    const std::optional<std::int64_t> unit = unit_ns(text.substr(i));
    if (!unit) return std::nullopt;

    // fraction * unit / 10^digits must be a whole number of nanoseconds; reduce the ratio
    // first so nothing overflows (the result is below one unit, so it fits).
    while (!fraction.empty() && fraction.back() == '0') fraction.remove_suffix(1);
    if (fraction.size() > 18) return std::nullopt;  // finer than 1ns for any unit
    std::int64_t numerator = 0;
    std::int64_t denominator = 1;
    for (char c : fraction) {
        numerator = numerator * 10 + (c - '0');
        denominator *= 10;
    }
    const std::int64_t g = std::gcd(*unit, denominator);
    if (numerator % (denominator / g) != 0) return std::nullopt;
    const std::int64_t fraction_ns = numerator / (denominator / g) * (*unit / g);

    std::int64_t count = 0;
    for (char c : whole) {
        const int digit = c - '0';
        if (count > (max - digit) / 10) return std::nullopt;
        count = count * 10 + digit;
    }
    if (count > (max - fraction_ns) / *unit) return std::nullopt;
    return Duration(count * *unit + fraction_ns);
}

}  // namespace mdagg

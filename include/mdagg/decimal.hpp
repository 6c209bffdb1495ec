// Exact decimal numbers for prices and sizes: a venue's "0.00000200" stays 0.00000200.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mdagg {

// value = mantissa * 10^-scale. The scale is kept as given, so trailing zeros survive a
// parse/format round trip; comparison is by value ("1.50" == "1.5").
class Decimal {
public:
    static constexpr int max_scale = 18;
    // Longest text format() writes: sign, 19 digits, point, leading "0." padding.
    static constexpr std::size_t max_chars = 48;

    constexpr Decimal() = default;
    constexpr Decimal(std::int64_t mantissa, int scale) : mantissa_(mantissa), scale_(scale) {}

    // Accepts JSON number syntax and plain decimals: "-12", "0.00000200", "1.5e-3", "+3".
    // Rejects empty text, junk, NaN/Inf, more than max_scale fraction digits after
    // normalising, and magnitudes that overflow int64.
    static std::optional<Decimal> parse(std::string_view text) noexcept;

    constexpr std::int64_t mantissa() const noexcept { return mantissa_; }
    constexpr int scale() const noexcept { return scale_; }
    bool is_zero() const noexcept { return mantissa_ == 0; }

    // Writes the canonical text (no exponent, scale digits after the point) to `out`, which
    // must hold max_chars; returns one past the last character written.
    char* format(char* out) const noexcept;
    std::string to_string() const;
    double to_double() const noexcept;

    // Exact arithmetic; nullopt when the result does not fit.
    static std::optional<Decimal> midpoint(Decimal a, Decimal b) noexcept;  // (a+b)/2
    static std::optional<Decimal> difference(Decimal a, Decimal b) noexcept;  // a-b

    friend std::strong_ordering operator<=>(Decimal a, Decimal b) noexcept;
    friend bool operator==(Decimal a, Decimal b) noexcept { return (a <=> b) == 0; }

private:
    std::int64_t mantissa_ = 0;
    int scale_ = 0;
};

}  // namespace mdagg

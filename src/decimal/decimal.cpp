#include <mdagg/decimal.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

namespace mdagg {
namespace {

// -Wpedantic rejects a plain __int128; __extension__ marks the use as deliberate. int64
// mantissas aligned to a common scale need up to 63 + 60 bits, and a sum one bit more.
__extension__ typedef __int128 i128;

constexpr std::array<std::int64_t, Decimal::max_scale + 1> pow10_i64 = [] {
    std::array<std::int64_t, Decimal::max_scale + 1> t{1};
    for (std::size_t i = 1; i < t.size(); ++i) t[i] = t[i - 1] * 10;
    return t;
}();

constexpr std::uint64_t int64_max = std::numeric_limits<std::int64_t>::max();

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// "00".."99": format() writes two digits per division.
constexpr std::array<char, 200> digit_pairs = [] {
    std::array<char, 200> t{};
    for (std::size_t i = 0; i < 100; ++i) {
        t[2 * i] = static_cast<char>('0' + i / 10);
        t[2 * i + 1] = static_cast<char>('0' + i % 10);
    }
    return t;
}();

// Writes v as exactly `width` digits (zero-padded), right to left. Most prices and sizes fit
// in 32 bits, where dividing by 100 is a cheaper multiplication.
template <class UInt>
void put_pairs(char* end, UInt v, int width) noexcept {
    for (; width >= 2; width -= 2) {
        end -= 2;
        std::memcpy(end, &digit_pairs[static_cast<std::size_t>(2 * (v % 100))], 2);
        v /= 100;
    }
    if (width == 1) end[-1] = static_cast<char>('0' + v);
}

char* put_fixed(char* out, std::uint64_t v, int width) noexcept {
    if (v <= std::numeric_limits<std::uint32_t>::max()) {
        put_pairs(out + width, static_cast<std::uint32_t>(v), width);
    } else {
        put_pairs(out + width, v, width);
    }
    return out + width;
}

// Writes v in as many digits as it has ("0" for 0).
char* put_uint(char* out, std::uint64_t v) noexcept {
    // 10^0..10^19, every power of ten a uint64 holds.
    static constexpr std::array<std::uint64_t, 20> pow10 = [] {
        std::array<std::uint64_t, 20> t{1};
        for (std::size_t i = 1; i < t.size(); ++i) t[i] = t[i - 1] * 10;
        return t;
    }();
    // bits * log10(2) is the digit count or one less; one comparison settles which. v | 1
    // gives 0 its one digit without changing the answer for any other v.
    const int bits = 64 - __builtin_clzll(v | 1);
    const int t = (bits * 1233) >> 12;
    const int width = t + ((v | 1) >= pow10[static_cast<std::size_t>(t)] ? 1 : 0);
    return put_fixed(out, v, width);
}

// The constructor does not check the scale; clamping keeps misuse from overrunning format()'s
// buffer or overflowing the 128-bit arithmetic below.
int checked_scale(int scale) noexcept { return std::clamp(scale, 0, Decimal::max_scale); }

i128 aligned(Decimal d, int to_scale) noexcept {
    return static_cast<i128>(d.mantissa()) * pow10_i64[to_scale - checked_scale(d.scale())];
}

// Fits an exact value back into an int64 mantissa. Dropping trailing zeros keeps the value
// exact, so a result that only overflows at the natural scale is still returned.
std::optional<Decimal> fit(i128 m, int scale) noexcept {
    constexpr i128 lo = std::numeric_limits<std::int64_t>::min();
    constexpr i128 hi = std::numeric_limits<std::int64_t>::max();
    while (scale > Decimal::max_scale || m < lo || m > hi) {
        if (scale == 0 || m % 10 != 0) return std::nullopt;
        m /= 10;
        --scale;
    }
    return Decimal(static_cast<std::int64_t>(m), scale);
}

}  // namespace

std::optional<Decimal> Decimal::parse(std::string_view text) noexcept {
    const char* p = text.data();
    const char* const end = p + text.size();
    if (p == end) return std::nullopt;

    bool negative = false;
    if (*p == '+' || *p == '-') {
        negative = *p == '-';
        ++p;
    }
    // JSON syntax: at least one integer digit (".5" rejected) and, after a point, at least
    // one fraction digit ("5." rejected). Leading zeros are tolerated: "007" is unambiguous.
    // The digits are also summed as they go: for the usual "101.25" (no exponent, 18 digits
    // at most, so no overflow) that sum is the mantissa and the fraction's length the scale.
    std::uint64_t sum = 0;
    const char* const int_begin = p;
    while (p != end && is_digit(*p)) sum = sum * 10 + static_cast<unsigned>(*p++ - '0');
    const std::size_t int_len = static_cast<std::size_t>(p - int_begin);
    if (int_len == 0) return std::nullopt;

    const char* frac_begin = p;
    std::size_t frac_len = 0;
    if (p != end && *p == '.') {
        frac_begin = ++p;
        while (p != end && is_digit(*p)) sum = sum * 10 + static_cast<unsigned>(*p++ - '0');
        frac_len = static_cast<std::size_t>(p - frac_begin);
        if (frac_len == 0) return std::nullopt;
    }
    if (p == end && int_len + frac_len <= 18) {
        const auto magnitude = static_cast<std::int64_t>(sum);
        return Decimal(negative ? -magnitude : magnitude, static_cast<int>(frac_len));
    }

    long long exponent = 0;
    if (p != end && (*p == 'e' || *p == 'E')) {
        ++p;
        bool exp_negative = false;
        if (p != end && (*p == '+' || *p == '-')) {
            exp_negative = *p == '-';
            ++p;
        }
        const char* const exp_begin = p;
        for (; p != end && is_digit(*p); ++p) {
            // Saturate: anything this large is rejected below anyway (unless the value is 0).
            if (exponent < 1'000'000) exponent = exponent * 10 + (*p - '0');
        }
        if (p == exp_begin) return std::nullopt;
        if (exp_negative) exponent = -exponent;
    }
    if (p != end) return std::nullopt;

    // The digits int_begin.. and frac_begin.. form one sequence D; value = D * 10^-scale.
    const std::size_t total = int_len + frac_len;
    auto digit = [&](std::size_t i) -> unsigned {
        return static_cast<unsigned>((i < int_len ? int_begin[i] : frac_begin[i - int_len]) - '0');
    };
    std::size_t first = 0;
    while (first < total && digit(first) == 0) ++first;
    long long scale = static_cast<long long>(frac_len) - exponent;
    if (first == total) {
        return Decimal(0, static_cast<int>(std::clamp<long long>(scale, 0, max_scale)));
    }
    std::size_t last = total;  // one past the last significant (non-zero) digit
    while (digit(last - 1) == 0) --last;

    std::size_t used = total;  // digits taken from D, trailing zeros included
    long long append = 0;      // zeros appended when the exponent pushes the scale below 0
    if (scale > max_scale) {
        // Only trailing zeros may go: "1.00000000000000000000" is 1 at scale 18.
        const long long drop = scale - max_scale;
        if (drop > static_cast<long long>(total - last)) return std::nullopt;
        used -= static_cast<std::size_t>(drop);
        scale = max_scale;
    } else if (scale < 0) {
        append = -scale;
        scale = 0;
    }
    // int64 has at most 19 digits, and 19 digits always fit in a uint64.
    if (static_cast<long long>(used - first) + append > 19) return std::nullopt;
    std::uint64_t magnitude = 0;
    for (std::size_t i = first; i < used; ++i) magnitude = magnitude * 10 + digit(i);
    for (long long i = 0; i < append; ++i) magnitude *= 10;

    if (magnitude > int64_max + (negative ? 1 : 0)) return std::nullopt;
    // Negating in uint64 makes "-9223372036854775808" exact (C++20 conversion is modular).
    const auto mantissa = static_cast<std::int64_t>(negative ? 0 - magnitude : magnitude);
    return Decimal(mantissa, static_cast<int>(scale));
}

char* Decimal::format(char* out) const noexcept {
    // uint64 negation keeps INT64_MIN's magnitude representable.
    const std::uint64_t magnitude = mantissa_ < 0 ? 0 - static_cast<std::uint64_t>(mantissa_)
                                                  : static_cast<std::uint64_t>(mantissa_);
    const int scale = checked_scale(scale_);
    const auto unit = static_cast<std::uint64_t>(pow10_i64[scale]);
    if (mantissa_ < 0) *out++ = '-';
    // The integer part ("0" when the magnitude is below one), then exactly `scale` digits,
    // leading zeros included: 200 at scale 8 is "0.00000200".
    out = put_uint(out, magnitude / unit);
    if (scale > 0) {
        *out++ = '.';
        out = put_fixed(out, magnitude % unit, scale);
    }
    return out;
}

std::string Decimal::to_string() const {
    char buf[max_chars];
    return std::string(buf, format(buf));
}

double Decimal::to_double() const noexcept {
    static constexpr std::array<double, max_scale + 1> pow10_f = [] {
        std::array<double, max_scale + 1> t{1};
        for (std::size_t i = 1; i < t.size(); ++i) t[i] = t[i - 1] * 10;
        return t;
    }();
    // Powers of ten up to 1e22 are exact doubles, so this rounds only once, in the division.
    return static_cast<double>(mantissa_) / pow10_f[checked_scale(scale_)];
}

std::optional<Decimal> Decimal::midpoint(Decimal a, Decimal b) noexcept {
    const int scale = std::max(checked_scale(a.scale_), checked_scale(b.scale_));
    const i128 sum = aligned(a, scale) + aligned(b, scale);
    if (sum % 2 == 0) return fit(sum / 2, scale);
    // An odd sum halves exactly one digit further: sum/2 == sum*5 / 10.
    return fit(sum * 5, scale + 1);
}

std::optional<Decimal> Decimal::difference(Decimal a, Decimal b) noexcept {
    const int scale = std::max(checked_scale(a.scale_), checked_scale(b.scale_));
    return fit(aligned(a, scale) - aligned(b, scale), scale);
}

std::strong_ordering operator<=>(Decimal a, Decimal b) noexcept {
    const int scale = std::max(checked_scale(a.scale_), checked_scale(b.scale_));
    const i128 x = aligned(a, scale);
    const i128 y = aligned(b, scale);
    if (x < y) return std::strong_ordering::less;
    if (x > y) return std::strong_ordering::greater;
    return std::strong_ordering::equal;
}

}  // namespace mdagg

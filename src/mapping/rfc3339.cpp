#include <mdagg/mapping.hpp>

#include <limits>

namespace mdagg {
namespace {

__extension__ typedef __int128 i128;  // __extension__: -Wpedantic would reject a plain __int128

// Reads exactly `n` digits.
bool digits(std::string_view& s, int n, int& out) noexcept {
    if (s.size() < static_cast<std::size_t>(n)) return false;
    out = 0;
    for (int i = 0; i < n; ++i) {
        const char c = s[static_cast<std::size_t>(i)];
        if (c < '0' || c > '9') return false;
        out = out * 10 + (c - '0');
    }
    s.remove_prefix(static_cast<std::size_t>(n));
    return true;
}

bool expect(std::string_view& s, char c) noexcept {
    if (s.empty() || s.front() != c) return false;
    s.remove_prefix(1);
    return true;
}

bool is_leap(int y) noexcept { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int days_in_month(int y, int m) noexcept {
    static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

// Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's days_from_civil).
long long days_from_civil(int y, int m, int d) noexcept {
    y -= m <= 2;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const int yoe = y - era * 400;
    const int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return static_cast<long long>(era) * 146097 + doe - 719468;
}

}  // namespace

std::optional<std::int64_t> parse_rfc3339_ns(std::string_view s) noexcept {
    int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
    if (!digits(s, 4, year) || !expect(s, '-') || !digits(s, 2, month) || !expect(s, '-') ||
        !digits(s, 2, day)) {
        return std::nullopt;
    }
    if (s.empty() || (s.front() != 'T' && s.front() != 't')) return std::nullopt;
    s.remove_prefix(1);
    if (!digits(s, 2, hour) || !expect(s, ':') || !digits(s, 2, minute) || !expect(s, ':') ||
        !digits(s, 2, second)) {
        return std::nullopt;
    }
    // Second 60 is RFC 3339's leap second; it is accepted (as the next second, like POSIX
    // time) rather than failing a whole quote.
    if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 ||
        minute > 59 || second > 60) {
        return std::nullopt;
    }

    long long fraction_ns = 0;
    if (!s.empty() && s.front() == '.') {
        s.remove_prefix(1);
        int n = 0;
        while (!s.empty() && s.front() >= '0' && s.front() <= '9') {
            if (++n > 9) return std::nullopt;  // finer than a nanosecond cannot be kept exactly
            fraction_ns = fraction_ns * 10 + (s.front() - '0');
            s.remove_prefix(1);
        }
        if (n == 0) return std::nullopt;
        for (; n < 9; ++n) fraction_ns *= 10;
    }

    long long offset_s = 0;
    if (s.size() == 1 && (s.front() == 'Z' || s.front() == 'z')) {
        s.remove_prefix(1);
    } else if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
        const long long sign = s.front() == '-' ? -1 : 1;
        s.remove_prefix(1);
        int oh = 0, om = 0;
        if (!digits(s, 2, oh) || !expect(s, ':') || !digits(s, 2, om) || oh > 23 || om > 59) {
            return std::nullopt;
        }
        offset_s = sign * (oh * 3600LL + om * 60LL);
    } else {
        return std::nullopt;
    }
    if (!s.empty()) return std::nullopt;

    // |seconds| < 2^40 for years 0000..9999, so only the final scaling can overflow.
    const long long seconds = days_from_civil(year, month, day) * 86400 + hour * 3600LL +
                              minute * 60LL + second - offset_s;
    // 128 bits because seconds * 1e9 alone may overflow where adding the fraction brings the
    // sum back into range (the earliest representable instant, 1677-09-21T00:12:43.145224192Z).
    const i128 ns = static_cast<i128>(seconds) * 1'000'000'000 + fraction_ns;
    if (ns < std::numeric_limits<std::int64_t>::min() ||
        ns > std::numeric_limits<std::int64_t>::max()) {
        return std::nullopt;
    }
    return static_cast<std::int64_t>(ns);
}

}  // namespace mdagg

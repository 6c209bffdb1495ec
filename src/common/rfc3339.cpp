// The text of a time for records (nanoseconds), the log (microseconds), the reports and the
// drain record (milliseconds). Records format two times each on the aggregator strand, so the
// text is built without locale, allocation or, usually, calendar arithmetic.
#include <mdagg/common.hpp>

#include <array>
#include <chrono>
#include <cstring>
#include <iterator>
#include <limits>

namespace mdagg {
namespace {

// "00".."99": two digits per lookup instead of a division per digit.
constexpr std::array<char, 200> digit_pairs = [] {
    std::array<char, 200> t{};
    for (int i = 0; i < 100; ++i) {
        t[static_cast<std::size_t>(2 * i)] = static_cast<char>('0' + i / 10);
        t[static_cast<std::size_t>(2 * i + 1)] = static_cast<char>('0' + i % 10);
    }
    return t;
}();

char* put_2digits(char* p, unsigned v) noexcept {
    std::memcpy(p, &digit_pairs[2 * v], 2);
    return p + 2;
}

// The text of a time is cached per thread at two levels. "YYYY-MM-DDTHH:MM:SS" of the last
// seconds formatted: a record's times mostly repeat a recent second, so usually only the
// fraction is formatted; two slots (by parity) keep an exchange time and a receive time in
// adjacent seconds from evicting each other. Below that the "YYYY-MM-DD" of recent days, so
// a second that misses (a venue's old timestamp, say) costs no calendar arithmetic unless its
// day is new too.
struct SecondSlot {
    std::int64_t second = std::numeric_limits<std::int64_t>::min();  // no instant has this second
    char text[19];
};
thread_local SecondSlot second_cache[2];

struct DaySlot {
    std::int64_t day = std::numeric_limits<std::int64_t>::min();
    char text[10];
};
thread_local DaySlot day_cache[4];

constexpr std::int64_t ns_per_s = 1'000'000'000;

const char* date_text(std::int64_t day) noexcept {
    DaySlot& slot = day_cache[static_cast<std::uint64_t>(day) % std::size(day_cache)];
    if (slot.day != day) {
        using namespace std::chrono;
        const year_month_day ymd{sys_days{days{day}}};
        // int64 nanoseconds span years 1677..2262, so the year always has four digits.
        const auto y = static_cast<unsigned>(static_cast<int>(ymd.year()));
        char* p = put_2digits(slot.text, y / 100);
        p = put_2digits(p, y % 100);
        *p++ = '-';
        p = put_2digits(p, static_cast<unsigned>(ymd.month()));
        *p++ = '-';
        put_2digits(p, static_cast<unsigned>(ymd.day()));
        slot.day = day;
    }
    return slot.text;
}

// Fills slot.text for `second`, counted from the epoch (negative before 1970).
void format_second(SecondSlot& slot, std::int64_t second) noexcept {
    constexpr std::int64_t s_per_day = 86'400;
    // Floor division: a second before 1970 still has a time of day in [0, 1 day).
    std::int64_t day = second / s_per_day;
    std::int64_t sod = second % s_per_day;
    if (sod < 0) {
        sod += s_per_day;
        --day;
    }
    std::memcpy(slot.text, date_text(day), 10);
    const auto tod = static_cast<unsigned>(sod);
    char* p = slot.text + 10;
    *p++ = 'T';
    p = put_2digits(p, tod / 3600);
    *p++ = ':';
    p = put_2digits(p, tod / 60 % 60);
    *p++ = ':';
    put_2digits(p, tod % 60);
    slot.second = second;
}

// f: nanoseconds in [0, 1 s).
char* put_fraction(char* p, std::uint32_t f, FractionDigits digits) noexcept {
    switch (digits) {
        case FractionDigits::ms:  // 1 + 1 pair
            f /= 1'000'000;
            *p++ = static_cast<char>('0' + f / 100);
            return put_2digits(p, f % 100);
        case FractionDigits::us:  // 3 pairs
            f /= 1'000;
            p = put_2digits(p, f / 10'000);
            f %= 10'000;
            p = put_2digits(p, f / 100);
            return put_2digits(p, f % 100);
        case FractionDigits::ns:  // 1 + 4 pairs
            break;
    }
    *p++ = static_cast<char>('0' + f / 100'000'000);
    f %= 100'000'000;
    p = put_2digits(p, f / 1'000'000);
    f %= 1'000'000;
    p = put_2digits(p, f / 10'000);
    f %= 10'000;
    p = put_2digits(p, f / 100);
    return put_2digits(p, f % 100);
}

}  // namespace

char* put_rfc3339(char* p, std::int64_t ns, FractionDigits digits) noexcept {
    // Floor division: a time before 1970 still has a fraction in [0, 1 s).
    std::int64_t second = ns / ns_per_s;
    std::int64_t frac = ns % ns_per_s;
    if (frac < 0) {
        frac += ns_per_s;
        --second;
    }
    SecondSlot& slot = second_cache[second & 1];
    if (slot.second != second) format_second(slot, second);
    std::memcpy(p, slot.text, sizeof slot.text);
    p += sizeof slot.text;
    *p++ = '.';
    p = put_fraction(p, static_cast<std::uint32_t>(frac), digits);
    *p++ = 'Z';
    return p;
}

void append_rfc3339(std::string& out, std::int64_t ns, FractionDigits digits) {
    char buf[rfc3339_max_chars];
    out.append(buf, put_rfc3339(buf, ns, digits));
}

}  // namespace mdagg

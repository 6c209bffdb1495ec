// Hand-written JSON lines: this runs once per record on the aggregator strand, so no
// intermediate DOM, no locale, no allocation beyond growing `out`.
#include <mdagg/sink.hpp>

#include "detail.hpp"

#include <charconv>
#include <chrono>
#include <string_view>

namespace mdagg {
namespace {

// Length of the well-formed UTF-8 sequence starting at s[i], 0 when it is not one.
// Overlongs, surrogates and code points past U+10FFFF are rejected as RFC 3629 requires.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n;
    std::uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07u;
    } else {
        return 0;
    }
    if (s.size() - i < n) return 0;
    for (std::size_t k = 1; k < n; ++k) {
        const auto b = static_cast<unsigned char>(s[i + k]);
        if ((b & 0xC0u) != 0x80u) return 0;
        cp = (cp << 6) | (b & 0x3Fu);
    }
    if (n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;
    if (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
    return n;
}

// Names come from configuration; invalid UTF-8 becomes U+FFFD so every line stays valid JSON.
void append_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out.push_back('"');
    std::size_t run = 0;  // start of the bytes not yet copied
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            ++i;
            continue;
        }
        if (c >= 0x80) {
            if (const std::size_t n = utf8_sequence(s, i)) {
                i += n;
                continue;
            }
        }
        out.append(s.data() + run, i - run);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c >= 0x80) {
                    out += "\\ufffd";
                } else {
                    const char u[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
                    out.append(u, sizeof u);
                }
        }
        run = ++i;
    }
    out.append(s.data() + run, i - run);
    out.push_back('"');
}

void append_name(std::string& out, const std::vector<std::string>& names, std::uint32_t id) {
    if (id < names.size()) {
        append_string(out, names[id]);
    } else {
        out += "null";  // an id outside the Universe has no name; do not invent one
    }
}

void append_decimal(std::string& out, Decimal d) {
    char buf[Decimal::max_chars + 2];
    buf[0] = '"';
    char* end = d.format(buf + 1);
    *end++ = '"';
    out.append(buf, end);
}

template <class Int>
void append_int(std::string& out, Int v) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

// Writes v as exactly `width` digits, right to left.
char* put_digits(char* p, std::uint64_t v, int width) {
    for (int i = width - 1; i >= 0; --i) {
        p[i] = static_cast<char>('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

// "2025-11-24T16:00:00.123456789Z" (quoted). int64 nanoseconds span years 1677..2262.
void append_time(std::string& out, std::int64_t ns) {
    out.push_back('"');
    sink_detail::append_rfc3339(out, ns);
    out.push_back('"');
}

}  // namespace

namespace sink_detail {

// int64 nanoseconds span years 1677..2262, so the year always has four digits.
void append_rfc3339(std::string& out, std::int64_t ns) {
    using namespace std::chrono;
    const sys_time<nanoseconds> tp{nanoseconds{ns}};
    const sys_days day = floor<days>(tp);
    const year_month_day ymd{day};
    const auto secs = floor<seconds>(tp);
    const hh_mm_ss<seconds> hms{secs - day};
    char buf[32];
    char* p = buf;
    p = put_digits(p, static_cast<unsigned>(static_cast<int>(ymd.year())), 4);
    *p++ = '-';
    p = put_digits(p, static_cast<unsigned>(ymd.month()), 2);
    *p++ = '-';
    p = put_digits(p, static_cast<unsigned>(ymd.day()), 2);
    *p++ = 'T';
    p = put_digits(p, static_cast<std::uint64_t>(hms.hours().count()), 2);
    *p++ = ':';
    p = put_digits(p, static_cast<std::uint64_t>(hms.minutes().count()), 2);
    *p++ = ':';
    p = put_digits(p, static_cast<std::uint64_t>(hms.seconds().count()), 2);
    *p++ = '.';
    p = put_digits(p, static_cast<std::uint64_t>((tp - secs).count()), 9);
    *p++ = 'Z';
    out.append(buf, p);
}

}  // namespace sink_detail

void append_quote_json(std::string& out, const Quote& q, const Universe& universe) {
    out += R"({"type":"quote","source":)";
    append_name(out, universe.sources, q.source);
    out += R"(,"symbol":)";
    append_name(out, universe.symbols, q.symbol);
    out += R"(,"bid":)";
    append_decimal(out, q.bid);
    out += R"(,"ask":)";
    append_decimal(out, q.ask);
    if (q.has_bid_size) {
        out += R"(,"bid_size":)";
        append_decimal(out, q.bid_size);
    }
    if (q.has_ask_size) {
        out += R"(,"ask_size":)";
        append_decimal(out, q.ask_size);
    }
    if (q.exchange_time_ns != 0) {
        out += R"(,"exchange_time":)";
        append_time(out, q.exchange_time_ns);
    }
    out += R"(,"receive_time":)";
    append_time(out, q.receive_time_ns);
    if (q.seq >= 0) {
        out += R"(,"seq":)";
        append_int(out, q.seq);
    }
    out += "}\n";
}

void append_bar_json(std::string& out, const Bar& bar, const Universe& universe) {
    out += R"({"type":"bar","symbol":)";
    append_name(out, universe.symbols, bar.symbol);
    out += R"(,"start":)";
    append_time(out, bar.start_ns);
    out += R"(,"end":)";
    append_time(out, bar.end_ns);
    out += R"(,"open":)";
    append_decimal(out, bar.open);
    out += R"(,"high":)";
    append_decimal(out, bar.high);
    out += R"(,"low":)";
    append_decimal(out, bar.low);
    out += R"(,"close":)";
    append_decimal(out, bar.close);
    out += R"(,"updates":)";
    append_int(out, bar.updates);
    out += R"(,"spread":)";
    append_decimal(out, bar.last_spread);
    if (bar.bbo.has_bid) {
        out += R"(,"best_bid":)";
        append_decimal(out, bar.bbo.bid);
        out += R"(,"best_bid_source":)";
        append_name(out, universe.sources, bar.bbo.bid_source);
    }
    if (bar.bbo.has_ask) {
        out += R"(,"best_ask":)";
        append_decimal(out, bar.bbo.ask);
        out += R"(,"best_ask_source":)";
        append_name(out, universe.sources, bar.bbo.ask_source);
    }
    out += "}\n";
}

void append_stale_json(std::string& out, const StaleMark& mark, const Universe& universe) {
    out += R"({"type":"stale","source":)";
    append_name(out, universe.sources, mark.source);
    out += R"(,"symbol":)";
    append_name(out, universe.symbols, mark.symbol);
    out += mark.stale ? R"(,"stale":true,"time":)" : R"(,"stale":false,"time":)";
    append_time(out, mark.at_ns);
    out += R"(,"last_receive_time":)";
    append_time(out, mark.last_receive_ns);
    out += "}\n";
}

}  // namespace mdagg

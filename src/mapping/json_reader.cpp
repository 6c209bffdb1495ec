#include "json_reader.hpp"

namespace mdagg::detail {
namespace {

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Reads the XXXX of a \uXXXX escape.
bool read_hex4(const char*& p, const char* end, unsigned& out) noexcept {
    if (end - p < 4) return false;
    out = 0;
    for (int i = 0; i < 4; ++i) {
        const int v = hex_value(p[i]);
        if (v < 0) return false;
        out = out * 16 + static_cast<unsigned>(v);
    }
    p += 4;
    return true;
}

bool in(unsigned char c, unsigned lo, unsigned hi) noexcept { return c >= lo && c <= hi; }

// Length of the well-formed UTF-8 sequence at p (RFC 3629 table 3-7: no overlongs, no
// surrogates, nothing above U+10FFFF), or 0.
int utf8_sequence(const char* p, const char* end) noexcept {
    const auto b = [&](int i) { return static_cast<unsigned char>(p[i]); };
    const auto avail = end - p;
    const unsigned char c = b(0);
    if (in(c, 0xC2, 0xDF)) return avail >= 2 && in(b(1), 0x80, 0xBF) ? 2 : 0;
    if (in(c, 0xE0, 0xEF)) {
        if (avail < 3) return 0;
        const unsigned lo = c == 0xE0 ? 0xA0 : 0x80;
        const unsigned hi = c == 0xED ? 0x9F : 0xBF;
        return in(b(1), lo, hi) && in(b(2), 0x80, 0xBF) ? 3 : 0;
    }
    if (in(c, 0xF0, 0xF4)) {
        if (avail < 4) return 0;
        const unsigned lo = c == 0xF0 ? 0x90 : 0x80;
        const unsigned hi = c == 0xF4 ? 0x8F : 0xBF;
        return in(b(1), lo, hi) && in(b(2), 0x80, 0xBF) && in(b(3), 0x80, 0xBF) ? 4 : 0;
    }
    return 0;
}

void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

}  // namespace

bool scan_json_string_rest(const char* start, const char*& p, const char* end, std::string_view& content,
                           bool& escaped) noexcept {
    escaped = false;
    for (;;) {
        if (p == end) return false;
        const auto c = static_cast<unsigned char>(*p);
        if (c == '"') {
            content = std::string_view(start, static_cast<std::size_t>(p - start));
            ++p;
            return true;
        }
        if (c < 0x20) return false;  // control characters must be escaped
        if (c >= 0x80) {
            const int n = utf8_sequence(p, end);
            if (n == 0) return false;
            p = skip_plain(p + n, end);
            continue;
        }
        escaped = true;
        if (++p == end) return false;
        switch (*p++) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            break;
        case 'u': {
            unsigned cp = 0;
            if (!read_hex4(p, end, cp)) return false;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return false;  // lone low surrogate
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned low = 0;
                if (end - p < 2 || p[0] != '\\' || p[1] != 'u') return false;
                p += 2;
                if (!read_hex4(p, end, low) || low < 0xDC00 || low > 0xDFFF) return false;
            }
            break;
        }
        default:
            return false;
        }
        p = skip_plain(p, end);
    }
}

bool scan_json_number(const char*& p, const char* end, bool& integer) noexcept {
    integer = true;
    if (p != end && *p == '-') ++p;
    if (p == end) return false;
    if (*p == '0') {
        ++p;  // a leading zero stands alone; "01" fails at the caller as junk after "0"
    } else if (is_digit(*p)) {
        while (p != end && is_digit(*p)) ++p;
    } else {
        return false;
    }
    if (p != end && *p == '.') {
        integer = false;
        ++p;
        if (p == end || !is_digit(*p)) return false;
        while (p != end && is_digit(*p)) ++p;
    }
    if (p != end && (*p == 'e' || *p == 'E')) {
        integer = false;
        ++p;
        if (p != end && (*p == '+' || *p == '-')) ++p;
        if (p == end || !is_digit(*p)) return false;
        while (p != end && is_digit(*p)) ++p;
    }
    return true;
}

void decode_json_string(std::string_view content, std::string& out) {
    out.clear();
    const char* p = content.data();
    const char* const end = p + content.size();
    while (p != end) {
        const char* run = p;
        while (p != end && *p != '\\') ++p;
        out.append(run, p);
        if (p == end) break;
        ++p;  // validated: an escape character follows
        switch (*p++) {
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
            unsigned cp = 0;
            read_hex4(p, end, cp);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned low = 0;
                p += 2;  // the "\u" of the low surrogate
                read_hex4(p, end, low);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
            append_utf8(out, cp);
            break;
        }
        default: out.push_back(p[-1]); break;  // '"', '\\', '/'
        }
    }
}

}  // namespace mdagg::detail

// A strict, allocation-free JSON (RFC 8259) event reader.
//
// Why not nlohmann::json::sax_parse: it builds a fresh lexer and parser per call, whose token
// and state buffers allocate (6 allocations for a 120-byte Binance body, measured with
// nlohmann 3.11.2), and QuoteMapper::map() promises none in the steady state. This reader
// keeps its only buffer (the container stack) across calls and hands out raw text, so
// numbers stay exact. The tests check it against nlohmann::json::parse on valid and
// mutated bodies; it deliberately differs in two ways: a NUL byte after the value is junk
// here (nlohmann stops at it), and numbers beyond double's range are valid JSON here
// (nlohmann reports them as out_of_range 406).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace mdagg::detail {

enum class JsonKind : std::uint8_t { string, integer, number, boolean, null };

// One past the run of plain bytes at p: printable ASCII other than '"' and '\\'.
inline const char* skip_plain(const char* p, const char* end) noexcept {
    constexpr std::uint64_t ones = 0x0101010101010101ULL;
    constexpr std::uint64_t high = 0x8080808080808080ULL;
    // 8 bytes at a time: keys and values are mostly such runs.
    while (end - p >= 8) {
        std::uint64_t w;
        std::memcpy(&w, p, sizeof w);
        // The high bit of each byte that is '"', '\\', below 0x20 or from 0x80 up. A borrow
        // can mark a byte above a marked one too, never below: the lowest mark is exact.
        const std::uint64_t q = w ^ (ones * '"');
        const std::uint64_t b = w ^ (ones * '\\');
        const std::uint64_t marks = (((q - ones) & ~q) | ((b - ones) & ~b) | ((w - ones * 0x20) & ~w) | w) & high;
        if (marks != 0) {
            if constexpr (std::endian::native == std::endian::little)
                return p + (std::countr_zero(marks) >> 3);
            break;  // a big-endian machine finds it bytewise
        }
        p += 8;
    }
    while (p != end) {
        const auto c = static_cast<unsigned char>(*p);
        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') break;
        ++p;
    }
    return p;
}

// Continues scan_json_string() at the first byte that is not plain.
bool scan_json_string_rest(const char* start, const char*& p, const char* end, std::string_view& content,
                           bool& escaped) noexcept;

// Both scan functions take `p` at the opening character and leave it one past the token.
// The string's content excludes the quotes and is validated (escapes, surrogate pairs, UTF-8,
// no control characters); `escaped` says whether decode_json_string() is needed. Inline for
// the usual plain string, which is most of a quote body.
inline bool scan_json_string(const char*& p, const char* end, std::string_view& content,
                             bool& escaped) noexcept {
    const char* const start = ++p;  // past the opening quote
    p = skip_plain(p, end);
    if (p != end && *p == '"') {
        content = std::string_view(start, static_cast<std::size_t>(p - start));
        ++p;
        escaped = false;
        return true;
    }
    return scan_json_string_rest(start, p, end, content, escaped);
}
// `integer` is false when the token has a fraction or an exponent.
bool scan_json_number(const char*& p, const char* end, bool& integer) noexcept;
// Decodes the escapes of content already validated by scan_json_string(); reuses `out`.
void decode_json_string(std::string_view content, std::string& out);

// Handler interface (all called in document order):
//   begin_container(), end_container()
//   key(std::string_view content, bool escaped)   before each member's value
//   element()                                      before each array element
//   scalar(JsonKind, std::string_view text, bool escaped)
// A scalar's text is the raw token; for strings, the content between the quotes.
// Optional, for a handler that needs where values lie (a batch answer's entries); a handler
// without them pays nothing:
//   value_start(const char* p)   at each value's first byte
//   value_end(const char* p)     one past each value's last byte
class JsonReader {
public:
    JsonReader() { stack_.reserve(32); }

    // False when `text` is not exactly one JSON value (with optional BOM and whitespace). The
    // handler may already have seen events by then; the caller discards them. Iterative, so
    // deep nesting costs heap (kept for the next call), never call stack.
    template <class Handler>
    bool read(std::string_view text, Handler& h);

private:
    static const char* skip_ws(const char* p, const char* end) noexcept {
        while (p != end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) ++p;
        return p;
    }
    template <class Handler>
    static bool read_key(const char*& p, const char* end, Handler& h);

    std::vector<std::uint8_t> stack_;  // 1: array (not vector<bool>: its bit arithmetic showed)
};

template <class Handler>
bool JsonReader::read_key(const char*& p, const char* end, Handler& h) {
    p = skip_ws(p, end);
    if (p == end || *p != '"') return false;
    std::string_view key;
    bool escaped = false;
    if (!scan_json_string(p, end, key, escaped)) return false;
    p = skip_ws(p, end);
    if (p == end || *p != ':') return false;
    ++p;
    h.key(key, escaped);
    return true;
}

template <class Handler>
bool JsonReader::read(std::string_view text, Handler& h) {
    const char* p = text.data();
    const char* const end = p + text.size();
    stack_.clear();
    if (text.starts_with("\xEF\xBB\xBF")) p += 3;  // nlohmann skips a UTF-8 BOM too

    for (;;) {
        // A value is expected at p.
        p = skip_ws(p, end);
        if (p == end) return false;
        if constexpr (requires { h.value_start(p); }) h.value_start(p);
        switch (*p) {
        case '{':
        case '[': {
            const bool array = *p == '[';
            ++p;
            h.begin_container();
            p = skip_ws(p, end);
            if (p != end && *p == (array ? ']' : '}')) {
                ++p;
                h.end_container();
                break;  // to value_end below, as for a scalar
            }
            stack_.push_back(array);
            if (array) {
                h.element();
            } else if (!read_key(p, end, h)) {
                return false;
            }
            continue;  // to the first member's value
        }
        case '"': {
            std::string_view content;
            bool escaped = false;
            if (!scan_json_string(p, end, content, escaped)) return false;
            h.scalar(JsonKind::string, content, escaped);
            break;
        }
        case 't':
        case 'f':
        case 'n': {
            const std::string_view rest(p, static_cast<std::size_t>(end - p));
            std::string_view word;
            for (std::string_view w : {"true", "false", "null"}) {
                if (rest.starts_with(w)) word = w;
            }
            if (word.empty()) return false;
            p += word.size();
            h.scalar(word == "null" ? JsonKind::null : JsonKind::boolean, word, false);
            break;
        }
        default: {
            const char* const start = p;
            bool integer = false;
            if (!scan_json_number(p, end, integer)) return false;
            h.scalar(integer ? JsonKind::integer : JsonKind::number,
                     std::string_view(start, static_cast<std::size_t>(p - start)), false);
            break;
        }
        }

        // A value just ended: close containers until a ',' asks for the next value.
        if constexpr (requires { h.value_end(p); }) h.value_end(p);
        for (;;) {
            p = skip_ws(p, end);
            if (stack_.empty()) return p == end;
            if (p == end) return false;
            const bool array = stack_.back();
            const char c = *p++;
            if (c == ',') {
                if (array) {
                    h.element();
                } else if (!read_key(p, end, h)) {
                    return false;
                }
                break;
            }
            if (c != (array ? ']' : '}')) return false;
            stack_.pop_back();
            h.end_container();
            if constexpr (requires { h.value_end(p); }) h.value_end(p);
        }
    }
}

}  // namespace mdagg::detail

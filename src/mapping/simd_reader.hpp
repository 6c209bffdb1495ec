// A large answer read with simdjson: its stage 1 (SIMD: UTF-8, strings, unescaped control
// characters, the index of every structural character and scalar start) and then the
// reader's own grammar over that index, delivering the same events as JsonReader
// (json_reader.hpp) to the same handler. Private to the mapping module.
//
// Why not the On-Demand API: it validates only what it visits, and visiting every value to get
// the reader's full validation (bench/ondemand_walk.hpp) cost as much as the hand-written
// reader (docs/benchmarks.md). Over the index, a string costs O(1) however long: stage 1
// already checked its bytes, and with no backslash in the body (the walkable() condition) its
// content is the bytes between its quotes (anything after a closing quote but whitespace
// starts a token of its own). Numbers and literals are checked with the reader's functions.
// Anything refused here goes to the hand-written reader, whose verdict is the answer.
#pragma once

#include "json_reader.hpp"

#include <simdjson.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

namespace mdagg::detail {

// What simdjson's stage 1 reads past the body's end; the caller's buffer has this much spare.
inline constexpr std::size_t simd_padding = simdjson::SIMDJSON_PADDING;

// Whether the indexed reader may take this body (otherwise the hand-written reader reads it).
inline bool simd_walkable(std::string_view body) noexcept {
    return !body.empty() && std::memchr(body.data(), '\\', body.size()) == nullptr &&
           !body.starts_with("\xEF\xBB\xBF");
}

class SimdReader {
public:
    // False when stage 1 refused the text or the grammar did not hold: the caller asks the
    // hand-written reader. True means that reader would have delivered the same events.
    // Bytes up to body.size() + simd_padding must be readable.
    template <class Handler>
    bool read(std::string_view body, Handler& h);

private:
    static bool is_ws(char c) noexcept { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

    bool stage1(std::string_view body) noexcept;
    // One past token i's last byte (its trailing whitespace left out).
    const char* token_end(std::uint32_t i) const noexcept {
        const char* s = buf_ + idx_[i];
        const char* e = buf_ + idx_[i + 1];
        while (e > s && is_ws(e[-1])) --e;
        return e;
    }
    // A string token at i: its content, or false.
    bool string_at(std::uint32_t i, std::string_view& content) const noexcept {
        const char* s = buf_ + idx_[i];
        const char* e = token_end(i);
        if (*s != '"' || e - s < 2 || e[-1] != '"') return false;
        content = std::string_view(s + 1, static_cast<std::size_t>(e - s - 2));
        return true;
    }
    template <class Handler>
    bool read_key(std::uint32_t& i, Handler& h) const;

    std::unique_ptr<simdjson::internal::dom_parser_implementation> impl_;
    const char* buf_ = nullptr;
    const std::uint32_t* idx_ = nullptr;  // structural indexes; idx_[n_] is the body's length
    std::uint32_t n_ = 0;
    std::vector<std::uint8_t> stack_;  // 1: array, as JsonReader's
};

template <class Handler>
bool SimdReader::read_key(std::uint32_t& i, Handler& h) const {
    std::string_view key;
    if (i >= n_ || !string_at(i, key)) return false;
    if (++i >= n_ || buf_[idx_[i]] != ':') return false;
    ++i;
    h.key(key, false);
    return true;
}

template <class Handler>
bool SimdReader::read(std::string_view body, Handler& h) {
    if (!stage1(body)) return false;
    stack_.clear();
    std::uint32_t i = 0;
    for (;;) {
        // A value is expected at token i.
        if (i >= n_) return false;
        const char* const p = buf_ + idx_[i];
        const char* end = nullptr;  // one past the value
        h.value_start(p);
        switch (*p) {
        case '{':
        case '[': {
            const bool array = *p == '[';
            h.begin_container();
            if (++i < n_ && buf_[idx_[i]] == (array ? ']' : '}')) {
                end = buf_ + idx_[i++] + 1;
                h.end_container();
                break;
            }
            stack_.push_back(array);
            if (array) {
                h.element();
            } else if (!read_key(i, h)) {
                return false;
            }
            continue;
        }
        case '"': {
            std::string_view content;
            if (!string_at(i, content)) return false;
            h.scalar(JsonKind::string, content, false);
            end = content.data() + content.size() + 1;
            ++i;
            break;
        }
        default: {
            end = token_end(i);
            const std::string_view token(p, static_cast<std::size_t>(end - p));
            if (token == "null") {
                h.scalar(JsonKind::null, token, false);
            } else if (token == "true" || token == "false") {
                h.scalar(JsonKind::boolean, token, false);
            } else {
                const char* q = p;
                bool integer = false;
                if (!scan_json_number(q, end, integer) || q != end) return false;
                h.scalar(integer ? JsonKind::integer : JsonKind::number, token, false);
            }
            ++i;
            break;
        }
        }

        // A value just ended: close containers until a ',' asks for the next value.
        h.value_end(end);
        for (;;) {
            if (stack_.empty()) return i == n_;
            if (i >= n_) return false;
            const bool array = stack_.back();
            const char c = buf_[idx_[i++]];
            if (c == ',') {
                if (array) {
                    h.element();
                } else if (!read_key(i, h)) {
                    return false;
                }
                break;
            }
            if (c != (array ? ']' : '}')) return false;
            stack_.pop_back();
            h.end_container();
            h.value_end(buf_ + idx_[i - 1] + 1);
        }
    }
}

}  // namespace mdagg::detail

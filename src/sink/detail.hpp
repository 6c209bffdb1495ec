// Private to the sink module: pieces the formatters, the writer and the compressor share.
#pragma once

#include <mdagg/common.hpp>
#include <mdagg/sink.hpp>

#include <array>
#include <atomic>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace mdagg::sink_detail {

// The syscalls whose failure decides whether a segment is durable, behind one seam so that
// unit tests can inject the error (each returns -1 with errno set, like the call it stands
// for). Process-wide: a test swaps an entry while no sink runs and restores it afterwards.
struct FileOps {
    int (*fdatasync)(int fd);
    int (*ftruncate)(int fd, off_t length);
};
FileOps& file_ops();

// ---- the formatters' raw writers: each writes at p and returns one past the end ----------

// "00".."99": two digits per lookup instead of a division per digit.
inline constexpr std::array<char, 200> digit_pairs = [] {
    std::array<char, 200> t{};
    for (int i = 0; i < 100; ++i) {
        t[static_cast<std::size_t>(2 * i)] = static_cast<char>('0' + i / 10);
        t[static_cast<std::size_t>(2 * i + 1)] = static_cast<char>('0' + i % 10);
    }
    return t;
}();

inline char* put_2digits(char* p, unsigned v) noexcept {
    std::memcpy(p, &digit_pairs[2 * v], 2);
    return p + 2;
}

template <std::size_t N>
inline char* put(char* p, const char (&literal)[N]) noexcept {
    std::memcpy(p, literal, N - 1);
    return p + N - 1;
}

inline char* put(char* p, std::string_view s) noexcept {
    std::memcpy(p, s.data(), s.size());
    return p + s.size();
}

// A record is written into a stack buffer and appended to `out` in one go; a record whose
// worst case does not fit (very long names) is written into `out` itself instead.
class LineBuffer {
public:
    LineBuffer(std::string& out, std::size_t bound) : out_(out), old_size_(out.size()) {
        if (bound > sizeof stack_) {
            out_.resize(old_size_ + bound);
            begin_ = out_.data() + old_size_;
        }
    }
    LineBuffer(const LineBuffer&) = delete;
    LineBuffer& operator=(const LineBuffer&) = delete;

    char* begin() noexcept { return begin_; }
    void commit(char* end) {
        const auto n = static_cast<std::size_t>(end - begin_);
        if (begin_ == stack_) {
            out_.append(stack_, n);
        } else {
            out_.resize(old_size_ + n);
        }
    }

private:
    std::string& out_;
    std::size_t old_size_;
    char stack_[1024];
    char* begin_ = stack_;
};

inline constexpr std::size_t int_bound = 24;

template <class Int>
char* put_int(char* p, Int v) noexcept {
    return std::to_chars(p, p + int_bound, v).ptr;
}

// An integer is a Decimal of scale 0, whose format() is quicker than to_chars.
inline char* put_int(char* p, std::int64_t v) noexcept { return Decimal(v, 0).format(p); }

// Names as a record shows them: the JSON string literal (quotes included) or the CSV field.
// The worst cases bound what put_*() may write for a name of n bytes.
constexpr std::size_t json_string_bound(std::size_t n) { return 6 * n + 2; }  // \u00XX, \ufffd
constexpr std::size_t csv_field_bound(std::size_t n) { return 2 * n + 2; }    // "" per "
char* put_json_string(char* p, std::string_view s) noexcept;
char* put_csv_field(char* p, std::string_view s) noexcept;

// How a format writes one name.
struct NameStyle {
    char* (*escape)(char* p, std::string_view name) noexcept;
    std::size_t (*bound)(std::size_t name_size);
    std::string_view none;  // for an id outside the Universe, which has no name to invent
};
inline constexpr NameStyle json_name{put_json_string, json_string_bound, "null"};
inline constexpr NameStyle csv_name{put_csv_field, csv_field_bound, ""};

// A formatter's source of names: bound(id) is at least what put(p, id) writes.
// EscapedNames escapes on every call (the free functions); CachedNames copies the text the
// RecordFormatter escaped once.
struct EscapedNames {
    const std::vector<std::string>& names;
    const NameStyle& style;
    std::size_t bound(std::uint32_t id) const {
        return id < names.size() ? style.bound(names[id].size()) : style.none.size();
    }
    char* put(char* p, std::uint32_t id) const {
        return id < names.size() ? style.escape(p, names[id]) : sink_detail::put(p, style.none);
    }
};

struct CachedNames {
    const std::vector<std::string>& text;
    const NameStyle& style;
    std::size_t bound(std::uint32_t id) const { return id < text.size() ? text[id].size() : style.none.size(); }
    char* put(char* p, std::uint32_t id) const {
        return sink_detail::put(p, id < text.size() ? std::string_view(text[id]) : style.none);
    }
};

// Escapes the names a reload appended since the last call. A name at a cached id changes
// only with Universe::revision, and RecordFormatter empties its caches first. A record pays
// only for the two checks.
void extend_names(std::vector<std::string>& cache, const std::vector<std::string>& names, const NameStyle& style);
struct CachedUniverse {
    CachedNames sources, symbols;
};
// The RecordFormatter's escaped source and symbol names in one style, up to date.
inline CachedUniverse cached_names(std::vector<std::string>& sources, std::vector<std::string>& symbols,
                                   const Universe& universe, const NameStyle& style) {
    if (sources.size() < universe.sources.size()) extend_names(sources, universe.sources, style);
    if (symbols.size() < universe.symbols.size()) extend_names(symbols, universe.symbols, style);
    return {{sources, style}, {symbols, style}};
}

// Compresses everything readable from in_fd into out_fd (gzip or zstd). Returns 0, an errno
// value, or -1 when `cancel` was set (checked between blocks). Writes nothing else.
int compress_stream(int in_fd, int out_fd, Compression method, const std::atomic<bool>& cancel);

// ".gz" or ".zst"; "" for none.
const char* compression_suffix(Compression method);

}  // namespace mdagg::sink_detail

#include <mdagg/mapping.hpp>

#include "json_reader.hpp"
#include "pointer.hpp"

#include <array>
#include <bit>
#include <limits>
#include <stdexcept>
#include <utility>
#include <vector>

namespace mdagg {
namespace {

using detail::compile_pointer;
using detail::Pointer;
using detail::Step;

class MappingCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "mdagg.mapping"; }
    std::string message(int ev) const override {
        switch (static_cast<MappingError>(ev)) {
        case MappingError::malformed_json: return "response body is not valid JSON";
        case MappingError::missing_field: return "a required field is missing or null";
        case MappingError::bad_number:
            return "a price, size or sequence number is not an exact decimal or integer";
        case MappingError::bad_timestamp: return "exchange time is unparsable or out of range";
        case MappingError::symbol_mismatch:
            return "response names another symbol than the one polled";
        case MappingError::body_error: return "the body reports an error (success check failed)";
        case MappingError::batch_items: return "batch.items found no array or object of entries";
        case MappingError::duplicate_symbol: return "a batch answer holds a second entry for a symbol";
        case MappingError::symbol_not_string: return "a batch entry's symbol is missing or not a string";
        }
        return "unknown mapping error";
    }
};

enum Field : unsigned { f_symbol, f_bid, f_ask, f_bid_size, f_ask_size, f_seq, f_time, f_success, f_count };
constexpr std::uint8_t bit(unsigned f) { return static_cast<std::uint8_t>(1u << f); }

enum class Kind : std::uint8_t { absent, string, integer, number, boolean, null, container };

struct Captured {
    Kind kind = Kind::absent;
    std::string_view text;  // into the body or into the field's decode buffer
};

bool missing(const Captured& c) noexcept { return c.kind == Kind::absent || c.kind == Kind::null; }

bool has_text(const Captured& c) noexcept {
    return c.kind == Kind::string || c.kind == Kind::integer || c.kind == Kind::number;
}

std::optional<Decimal> to_decimal(const Captured& c) noexcept {
    if (!has_text(c)) return std::nullopt;
    return Decimal::parse(c.text);
}

// Sequence numbers: a JSON integer or a string of decimal digits, 0..INT64_MAX. Negative
// values are refused because -1 is Quote's "not mapped" and no venue counts below zero.
std::optional<std::int64_t> to_seq(const Captured& c) noexcept {
    if (c.kind != Kind::integer && c.kind != Kind::string) return std::nullopt;
    if (c.text.empty()) return std::nullopt;
    std::int64_t v = 0;
    for (char ch : c.text) {
        if (ch < '0' || ch > '9') return std::nullopt;
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, ch - '0', &v)) {
            return std::nullopt;
        }
    }
    return v;
}

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// A numeric time in units of 10^-unit_digits s: JSON number syntax without a sign (text of a
// JSON number, or of a string). Read digit by digit rather than through Decimal so that a
// 19-digit nanosecond count with a fraction still fits: fractions convert exactly
// ("1700000000.123" s), digits finer than a nanosecond are truncated, and 2^53 is no limit.
// Negative times are refused: 0 already means "none" and no venue predates 1970.
std::optional<std::int64_t> units_to_ns(std::string_view t, int unit_digits) noexcept {
    std::size_t i = 0;
    std::int64_t whole = 0;  // the integer digits while they surely fit
    while (i < t.size() && is_digit(t[i])) {
        if (i < 18) whole = whole * 10 + (t[i] - '0');
        ++i;
    }
    const std::size_t int_len = i;
    if (int_len == 0) return std::nullopt;
    // The usual case, an integer count of the unit ("1764000000000" ms): one scaling.
    if (i == t.size() && int_len <= 18) {
        static constexpr std::int64_t pow10[] = {1, 10, 100, 1'000, 10'000, 100'000, 1'000'000, 10'000'000,
                                                 100'000'000, 1'000'000'000};
        std::int64_t ns = 0;
        if (__builtin_mul_overflow(whole, pow10[unit_digits], &ns)) return std::nullopt;
        return ns;
    }
    std::size_t frac_len = 0;
    if (i < t.size() && t[i] == '.') {
        const std::size_t begin = ++i;
        while (i < t.size() && is_digit(t[i])) ++i;
        frac_len = i - begin;
        if (frac_len == 0) return std::nullopt;
    }
    long long exponent = 0;
    if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
        ++i;
        const bool negative = i < t.size() && t[i] == '-';
        if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
        const std::size_t begin = i;
        for (; i < t.size() && is_digit(t[i]); ++i) {
            if (exponent < 1'000'000) exponent = exponent * 10 + (t[i] - '0');
        }
        if (i == begin) return std::nullopt;
        if (negative) exponent = -exponent;
    }
    if (i != t.size()) return std::nullopt;

    // value_ns = digits * 10^power, the digits being the integer and fraction ones in a row.
    const long long power = unit_digits - static_cast<long long>(frac_len) + exponent;
    const long long count = static_cast<long long>(int_len + frac_len);
    const long long keep = power < 0 ? count + power : count;
    std::int64_t ns = 0;
    for (long long k = 0; k < keep; ++k) {
        const char c = t[static_cast<std::size_t>(k < static_cast<long long>(int_len) ? k : k + 1)];
        if (__builtin_mul_overflow(ns, 10, &ns) || __builtin_add_overflow(ns, c - '0', &ns)) {
            return std::nullopt;
        }
    }
    for (long long k = 0; k < power && ns != 0; ++k) {
        if (__builtin_mul_overflow(ns, 10, &ns)) return std::nullopt;
    }
    return ns;
}

std::optional<std::int64_t> to_time_ns(const Captured& c, TimeUnit unit) noexcept {
    switch (unit) {
    case TimeUnit::rfc3339: {
        if (c.kind != Kind::string) return std::nullopt;
        const auto ns = parse_rfc3339_ns(c.text);
        if (!ns || *ns < 0) return std::nullopt;
        return ns;
    }
    case TimeUnit::s: return has_text(c) ? units_to_ns(c.text, 9) : std::nullopt;
    case TimeUnit::ms: return has_text(c) ? units_to_ns(c.text, 6) : std::nullopt;
    case TimeUnit::us: return has_text(c) ? units_to_ns(c.text, 3) : std::nullopt;
    case TimeUnit::ns: return has_text(c) ? units_to_ns(c.text, 0) : std::nullopt;
    }
    return std::nullopt;
}

}  // namespace

const std::error_category& mapping_category() noexcept {
    static const MappingCategory category;
    return category;
}

std::error_code make_error_code(MappingError e) noexcept {
    return {static_cast<int>(e), mapping_category()};
}

namespace {

// A source's fields, compiled once and shared by every mapper copied from the first: with
// 10,000 pollers a copy per poller cost 0.7 KiB each.
struct Compiled {
    std::array<Pointer, f_count> pointers;
    TimeUnit time_unit = TimeUnit::ms;
    std::uint8_t mapped = 0;
    std::optional<SuccessCheck> success;
};

// The JsonReader handler, with the state of one map() call. Every pointer is matched
// incrementally: a container's frame holds the fields whose pointer matches the path to it and
// goes deeper, so each key or element costs one step comparison per such field, and subtrees no
// pointer enters cost only validation. Each field takes its first match in document order
// (duplicate keys, several wildcard hits).
// The state lives only during the call, which never suspends nor re-enters, so one per thread
// serves every mapper: per mapper it cost 1.6 KiB of capacity kept for the next call. Cleared,
// never shrunk, so the steady state does not allocate.
struct MapCall {
    struct Frame {
        std::uint8_t fields;  // pointers that continue below this container
        std::int64_t next_index;
    };

    MapCall() {
        // Sized for typical venue bodies so that even the first map() rarely allocates.
        frames.reserve(32);
        key_buf.reserve(64);
        for (auto& d : decoded) d.reserve(64);
    }

    // The mapper of the call under way; its tables are read through these.
    const std::array<Pointer, f_count>* tables = nullptr;
    const std::optional<SuccessCheck>* success = nullptr;
    const Pointer& pointer(unsigned f) const noexcept { return (*tables)[f]; }

    detail::JsonReader reader;
    std::vector<Frame> frames;
    std::array<Captured, f_count> got;
    std::array<std::string, f_count> decoded;  // string values that contained escapes
    std::string key_buf;                       // a key with escapes, when it must be compared
    std::uint8_t wanted = 0;                   // mapped fields not yet captured
    std::uint8_t pending = 0;                  // fields whose pointer matches the next value's path
    // The success value when it is a container: its depth, and whether it holds anything.
    std::size_t success_depth = 0;
    bool success_nonempty = false;

    void begin_container() {
        const std::uint8_t live = pending & wanted;
        std::uint8_t below = 0;
        for (std::uint8_t rest = live; rest; rest &= static_cast<std::uint8_t>(rest - 1)) {
            const auto f = static_cast<unsigned>(std::countr_zero(rest));
            if (pointer(f).size() == frames.size()) {
                capture(f, Kind::container, {}, false);
                if (f == f_success) success_depth = frames.size() + 1;
            } else {
                below |= bit(f);
            }
        }
        frames.push_back({below, 0});
    }

    void end_container() {
        if (frames.size() == success_depth) success_depth = 0;  // later containers are not it
        frames.pop_back();
    }

    void key(std::string_view content, bool escaped) {
        if (frames.size() == success_depth) success_nonempty = true;
        const std::uint8_t live = frames.back().fields & wanted;
        pending = 0;
        if (!live) return;
        if (escaped) {
            detail::decode_json_string(content, key_buf);
            content = key_buf;
        }
        const std::size_t step = frames.size() - 1;
        for (std::uint8_t rest = live; rest; rest &= static_cast<std::uint8_t>(rest - 1)) {
            const auto f = static_cast<unsigned>(std::countr_zero(rest));
            const Step& s = pointer(f)[step];
            // Length and first byte first: most keys differ there, and memcmp is a call.
            if (s.wildcard || (s.key.size() == content.size() &&
                               (content.empty() || (s.key[0] == content[0] && s.key == content))))
                pending |= bit(f);
        }
    }

    void element() {
        if (frames.size() == success_depth) success_nonempty = true;
        Frame& frame = frames.back();
        const std::int64_t index = frame.next_index++;
        const std::uint8_t live = frame.fields & wanted;
        pending = 0;
        if (!live) return;
        const std::size_t step = frames.size() - 1;
        for (std::uint8_t rest = live; rest; rest &= static_cast<std::uint8_t>(rest - 1)) {
            const auto f = static_cast<unsigned>(std::countr_zero(rest));
            if (pointer(f)[step].index == index) pending |= bit(f);
        }
    }

    void scalar(detail::JsonKind kind, std::string_view text, bool escaped) {
        const std::uint8_t live = pending & wanted;
        pending = 0;
        if (!live) return;
        static constexpr Kind kinds[] = {Kind::string, Kind::integer, Kind::number,
                                         Kind::boolean, Kind::null};
        for (std::uint8_t rest = live; rest; rest &= static_cast<std::uint8_t>(rest - 1)) {
            const auto f = static_cast<unsigned>(std::countr_zero(rest));
            // A pointer that goes deeper than a scalar finds nothing here.
            if (pointer(f).size() == frames.size()) capture(f, kinds[static_cast<unsigned>(kind)], text, escaped);
        }
    }

    void capture(unsigned f, Kind kind, std::string_view text, bool escaped) {
        if (escaped) {
            detail::decode_json_string(text, decoded[f]);
            text = decoded[f];
        }
        got[f] = {kind, text};
        wanted &= static_cast<std::uint8_t>(~bit(f));
    }

    bool succeeded(const Captured& c) const noexcept {
        const SuccessCheck& check = **success;
        if (check.empty) {
            if (missing(c)) return true;
            if (c.kind == Kind::container) return !success_nonempty;
            return c.kind == Kind::string && c.text.empty();
        }
        // equals: the text of a string, number or boolean; absent or null is a failure.
        return (has_text(c) || c.kind == Kind::boolean) && c.text == *check.equals;
    }

    std::error_code map(const Compiled& m, std::string_view body, std::string_view expected_symbol,
                        Quote& out) {
        tables = &m.pointers;
        success = &m.success;
        const std::uint8_t mapped = m.mapped;
        frames.clear();
        got.fill({});
        wanted = mapped;
        pending = mapped;
        success_depth = 0;
        success_nonempty = false;
        if (!reader.read(body, *this)) return MappingError::malformed_json;

        // An error body lacks the prices: report what the venue said, not a missing field.
        if (*success && !succeeded(got[f_success])) return MappingError::body_error;

        // Order: symbol first (a quote for another symbol is the more telling error), then
        // required prices, then optional fields.
        if (mapped & bit(f_symbol)) {
            const Captured& s = got[f_symbol];
            if (missing(s)) return MappingError::missing_field;
            if (!has_text(s) || s.text != expected_symbol) return MappingError::symbol_mismatch;
        }
        if (missing(got[f_bid]) || missing(got[f_ask])) return MappingError::missing_field;
        const auto bid = to_decimal(got[f_bid]);
        const auto ask = to_decimal(got[f_ask]);
        if (!bid || !ask) return MappingError::bad_number;

        std::optional<Decimal> bid_size, ask_size;
        if (!missing(got[f_bid_size]) && !(bid_size = to_decimal(got[f_bid_size]))) {
            return MappingError::bad_number;
        }
        if (!missing(got[f_ask_size]) && !(ask_size = to_decimal(got[f_ask_size]))) {
            return MappingError::bad_number;
        }
        std::int64_t seq = -1;
        if (!missing(got[f_seq])) {
            const auto v = to_seq(got[f_seq]);
            if (!v) return MappingError::bad_number;
            seq = *v;
        }
        std::int64_t time_ns = 0;
        if (!missing(got[f_time])) {
            const auto v = to_time_ns(got[f_time], m.time_unit);
            if (!v) return MappingError::bad_timestamp;
            time_ns = *v;
        }

        // A zero price is "no quote on that side" (Alpaca's 0, Binance's "0.00000000" on an
        // empty side; the aggregator never takes it as a best price): a size beside it
        // describes no order, so it is dropped rather than recorded as a size at price 0.
        if (bid->is_zero()) bid_size.reset();
        if (ask->is_zero()) ask_size.reset();
        // Written only on success, and every mapped field is written, so nothing from an
        // earlier body survives into this quote.
        out.bid = *bid;
        out.ask = *ask;
        out.has_bid_size = bid_size.has_value();
        out.bid_size = bid_size.value_or(Decimal());
        out.has_ask_size = ask_size.has_value();
        out.ask_size = ask_size.value_or(Decimal());
        out.seq = seq;
        out.exchange_time_ns = time_ns;
        return {};
    }
};

MapCall& this_thread_call() {
    static thread_local MapCall call;
    return call;
}

}  // namespace

struct QuoteMapper::Impl : Compiled {};

QuoteMapper::QuoteMapper(const FieldMap& fields) {
    auto compiled = std::make_shared<Impl>();
    Impl& m = *compiled;
    // Bid and ask are required, so a FieldMap without them could never produce a quote.
    if (fields.bid.empty()) throw std::invalid_argument("field 'bid': a JSON Pointer is required");
    if (fields.ask.empty()) throw std::invalid_argument("field 'ask': a JSON Pointer is required");
    const std::pair<const std::string*, const char*> sources[f_count] = {
        {&fields.symbol, "symbol"},
        {&fields.bid, "bid"},
        {&fields.ask, "ask"},
        {&fields.bid_size, "bid_size"},
        {&fields.ask_size, "ask_size"},
        {&fields.seq, "seq"},
        {fields.exchange_time ? &fields.exchange_time->pointer : nullptr, "exchange_time"},
        {fields.success ? &fields.success->pointer : nullptr, "success"},
    };
    for (unsigned f = 0; f < f_count; ++f) {
        const auto [text, name] = sources[f];
        if (text == nullptr || text->empty()) continue;
        m.pointers[f] = compile_pointer(*text, name);
        m.mapped |= bit(f);
    }
    if (fields.exchange_time) m.time_unit = fields.exchange_time->unit;
    m.success = fields.success;
    impl_ = std::move(compiled);
    this_thread_call();  // sized here, so a mapper's first map() on this thread allocates nothing
}

QuoteMapper::~QuoteMapper() = default;
QuoteMapper::QuoteMapper(const QuoteMapper&) = default;
QuoteMapper& QuoteMapper::operator=(const QuoteMapper&) = default;
QuoteMapper::QuoteMapper(QuoteMapper&&) noexcept = default;
QuoteMapper& QuoteMapper::operator=(QuoteMapper&&) noexcept = default;

std::error_code QuoteMapper::map(std::string_view body, std::string_view expected_symbol,
                                 Quote& out) const {
    return this_thread_call().map(*impl_, body, expected_symbol, out);
}

}  // namespace mdagg

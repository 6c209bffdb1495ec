// A batch answer: one pass finds the entries (their byte ranges and symbols) and checks the
// body; then each entry asked for is mapped on its own bytes by the single-quote mapper. An
// entry nobody asked for costs its scan and one hash lookup, never a decimal parse.
#include <mdagg/mapping.hpp>

#include "json_reader.hpp"
#include "pointer.hpp"
#include "simd_reader.hpp"

#include <array>
#include <bit>
#include <cstdlib>
#include <deque>
#include <optional>
#include <stdexcept>

namespace mdagg {

namespace {

using detail::JsonKind;
using detail::Pointer;
using detail::simd_padding;
using detail::simd_walkable;


enum Path : unsigned { p_items, p_success, p_symbol, p_count };
constexpr std::uint8_t bit(unsigned p) { return static_cast<std::uint8_t>(1u << p); }

enum class Kind : std::uint8_t { absent, string, other_scalar, container };

struct EntryRef {
    std::string_view text;    // the entry's JSON, into the body
    std::string_view symbol;  // into the body, or into `decoded`
    Kind symbol_kind = Kind::absent;
};

struct Compiled {
    // p_symbol's pointer is the whole path: items, one step for the entry, then symbol.
    std::array<Pointer, p_count> pointers;
    std::size_t items_depth = 0;  // the items container's depth (the root's is 0)
    std::uint8_t mapped = 0;
    bool symbol_is_key = false;
    std::optional<SuccessCheck> success;
};

// MDAGG_BATCH_READER=reference in the environment: the hand-written reader alone, so that
// bench/batch_bench.sh can compare both readers with one binary.
BatchReader default_reader() noexcept {
    static const BatchReader reader = [] {
        const char* v = std::getenv("MDAGG_BATCH_READER");
        return v != nullptr && std::string_view(v) == "reference" ? BatchReader::reference : BatchReader::fast;
    }();
    return reader;
}

// The reader's handler for one map() call; like MapCall (mapping.cpp) a frame holds the paths
// that continue below its container. One per thread, cleared but never shrunk.
struct ScanCall {
    struct Frame {
        std::uint8_t paths;
        std::int64_t next_index;
        bool items;  // this container is the items container
    };

    const Compiled* m = nullptr;
    detail::JsonReader reader;
    std::vector<Frame> frames;
    std::vector<EntryRef> entries;
    // Escaped symbols, one slot per entry that needed one; a deque, so that growing it moves no
    // string the entries' views point into.
    std::deque<std::string> decoded;
    std::string key_buf;
    std::size_t decoded_used = 0;
    std::uint8_t pending = 0;  // paths that match the next value's path
    std::uint8_t taken = 0;    // items and success: first match in document order wins
    Kind items_kind = Kind::absent;
    bool items_is_object = false;
    // The success value: kind, text, and for a container its depth and whether it holds anything.
    Kind success_kind = Kind::absent;
    bool success_null = false;
    std::string_view success_text;
    std::size_t success_depth = 0;
    bool success_nonempty = false;
    // The entry being read.
    const char* entry_start = nullptr;
    std::string_view entry_key;
    bool entry_key_escaped = false;
    EntryRef current;

    ScanCall() {
        frames.reserve(32);
        entries.reserve(128);
    }

    bool in_items() const noexcept { return frames.size() == m->items_depth + 1 && frames[m->items_depth].items; }

    std::string_view keep_decoded(std::string_view content) {
        if (decoded_used == decoded.size()) decoded.emplace_back();
        std::string& slot = decoded[decoded_used++];
        detail::decode_json_string(content, slot);
        return slot;
    }

    void value_start(const char* p) {
        // Whether items is an object must be known when its first entry starts.
        if ((pending & bit(p_items)) && !(taken & bit(p_items)) && frames.size() == m->items_depth)
            items_is_object = *p == '{';
        if (!in_items()) return;
        entry_start = p;
        current = {};
        if (m->symbol_is_key && items_is_object) {
            current.symbol = entry_key_escaped ? keep_decoded(entry_key) : entry_key;
            current.symbol_kind = Kind::string;
        }
    }

    void value_end(const char* p) {
        if (!in_items() || entry_start == nullptr) return;
        current.text = std::string_view(entry_start, static_cast<std::size_t>(p - entry_start));
        entries.push_back(current);
        entry_start = nullptr;
    }

    // A value whose path matched `path` completely.
    void matched(unsigned path, Kind kind, std::string_view text, bool escaped, bool null) {
        if (path == p_symbol) {
            if (current.symbol_kind != Kind::absent) return;  // the entry's first match
            current.symbol_kind = kind;
            current.symbol = kind == Kind::string && escaped ? keep_decoded(text) : text;
            return;
        }
        if (taken & bit(path)) return;
        taken |= bit(path);
        if (path == p_items) {
            items_kind = kind;
        } else {
            success_kind = kind;
            success_null = null;
            success_text = escaped ? keep_decoded(text) : text;
            if (kind == Kind::container) success_depth = frames.size() + 1;
        }
    }

    void begin_container() {
        std::uint8_t below = 0;
        bool is_items = false;
        for (std::uint8_t rest = pending; rest; rest &= static_cast<std::uint8_t>(rest - 1)) {
            const auto p = static_cast<unsigned>(std::countr_zero(rest));
            if (m->pointers[p].size() == frames.size()) {
                if (p == p_items && !(taken & bit(p_items))) is_items = true;
                matched(p, Kind::container, {}, false, false);
            } else {
                below |= bit(p);
            }
        }
        frames.push_back({below, 0, is_items});
    }

    void end_container() {
        if (frames.size() == success_depth) success_depth = 0;
        frames.pop_back();
    }

    // Whether step `depth` of `path` takes this member or element. The symbol path's step at
    // the entry's depth takes any key or element: every entry.
    bool step_matches(unsigned path, std::size_t depth, std::string_view key, std::int64_t index) const {
        if (path == p_symbol && depth == m->items_depth) return true;
        const detail::Step& s = m->pointers[path][depth];
        if (index >= 0) return s.index == index;
        // Length and first byte first, as MapCall does: most keys differ there.
        return s.wildcard ||
               (s.key.size() == key.size() && (key.empty() || (s.key[0] == key[0] && s.key == key)));
    }

    void key(std::string_view content, bool escaped) {
        if (frames.size() == success_depth) success_nonempty = true;
        const Frame& frame = frames.back();
        if (frame.items) {
            entry_key = content;
            entry_key_escaped = escaped;
        }
        pending = 0;
        if (!frame.paths) return;
        if (escaped) {
            detail::decode_json_string(content, key_buf);
            content = key_buf;
        }
        const std::size_t depth = frames.size() - 1;
        for (std::uint8_t rest = frame.paths; rest; rest &= static_cast<std::uint8_t>(rest - 1)) {
            const auto p = static_cast<unsigned>(std::countr_zero(rest));
            if (step_matches(p, depth, content, -1)) pending |= bit(p);
        }
    }

    void element() {
        if (frames.size() == success_depth) success_nonempty = true;
        Frame& frame = frames.back();
        const std::int64_t index = frame.next_index++;
        pending = 0;
        if (!frame.paths) return;
        const std::size_t depth = frames.size() - 1;
        for (std::uint8_t rest = frame.paths; rest; rest &= static_cast<std::uint8_t>(rest - 1)) {
            const auto p = static_cast<unsigned>(std::countr_zero(rest));
            if (step_matches(p, depth, {}, index)) pending |= bit(p);
        }
    }

    void scalar(JsonKind kind, std::string_view text, bool escaped) {
        const std::uint8_t live = pending;
        pending = 0;
        for (std::uint8_t rest = live; rest; rest &= static_cast<std::uint8_t>(rest - 1)) {
            const auto p = static_cast<unsigned>(std::countr_zero(rest));
            if (m->pointers[p].size() != frames.size()) continue;  // deeper than a scalar: nothing
            matched(p, kind == JsonKind::string ? Kind::string : Kind::other_scalar, text, escaped,
                    kind == JsonKind::null);
        }
    }

    // The same rule as the single mapper's success check (mapping.cpp).
    bool succeeded() const noexcept {
        const SuccessCheck& check = *m->success;
        const bool absent = success_kind == Kind::absent || success_null;
        if (check.empty) {
            if (absent) return true;
            if (success_kind == Kind::container) return !success_nonempty;
            return success_kind == Kind::string && success_text.empty();
        }
        return !absent && success_kind != Kind::container && success_text == *check.equals;
    }

    // simdjson's stage 1 for this thread: its index grows to the largest answer read here
    // (max_body_bytes bounds that) and is reused by every batch poller on the thread.
    detail::SimdReader simd;
    BatchReader reader_choice = default_reader();
    bool read_by_simdjson = false;

    // `capacity`: bytes readable from body.data(), at least body.size() + simd_padding for
    // simdjson to read the body in place; the hand-written reader reads what the walk refuses.
    std::error_code scan(const Compiled& compiled, std::string_view body, std::size_t capacity) {
        reset(compiled);
        read_by_simdjson = false;
        if (reader_choice == BatchReader::fast && capacity >= body.size() + simd_padding && simd_walkable(body)) {
            read_by_simdjson = simd.read(body, *this);
            if (!read_by_simdjson) reset(compiled);  // the reader starts over
        }
        if (!read_by_simdjson && !reader.read(body, *this)) return MappingError::malformed_json;
        if (m->success && !succeeded()) return MappingError::body_error;
        if (items_kind != Kind::container) return MappingError::batch_items;
        return {};
    }

    void reset(const Compiled& compiled) {
        m = &compiled;
        frames.clear();
        entries.clear();
        decoded_used = 0;
        pending = compiled.mapped;  // every path starts at the root
        taken = 0;
        items_kind = success_kind = Kind::absent;
        success_null = success_nonempty = false;
        success_depth = 0;
        entry_start = nullptr;
        items_is_object = false;
    }
};

ScanCall& this_thread_scan() {
    static thread_local ScanCall call;
    return call;
}

}  // namespace

struct BatchMapper::Impl {
    Compiled compiled;
    QuoteMapper entry;  // the fields without the success check: they are relative to one entry
    Impl(const BatchConfig& batch, const FieldMap& fields) : entry(without_success(fields)) {
        Compiled& c = compiled;
        if (!batch.items.empty()) c.pointers[p_items] = detail::compile_pointer(batch.items, "batch.items");
        c.items_depth = c.pointers[p_items].size();
        c.mapped = bit(p_items);
        c.symbol_is_key = batch.symbol_is_key();
        if (!c.symbol_is_key) {
            if (batch.symbol.empty() || batch.symbol.front() != '/')
                throw std::invalid_argument("batch.symbol: a JSON Pointer or \"#key\" is required");
            Pointer path = c.pointers[p_items];
            path.emplace_back();  // the entry: any key or element (ScanCall::step_matches)
            for (auto& step : detail::compile_pointer(batch.symbol, "batch.symbol")) path.push_back(std::move(step));
            c.pointers[p_symbol] = std::move(path);
            c.mapped |= bit(p_symbol);
        }
        if (fields.success) {
            c.pointers[p_success] = detail::compile_pointer(fields.success->pointer, "success");
            c.success = fields.success;
            c.mapped |= bit(p_success);
        }
    }
    // Member by member: copying the FieldMap and resetting its success trips g++ 12's
    // -Wmaybe-uninitialized on the optional.
    static FieldMap without_success(const FieldMap& fields) {
        FieldMap entry;
        entry.symbol = fields.symbol;
        entry.bid = fields.bid;
        entry.ask = fields.ask;
        entry.bid_size = fields.bid_size;
        entry.ask_size = fields.ask_size;
        entry.exchange_time = fields.exchange_time;
        entry.seq = fields.seq;
        return entry;
    }
};

BatchMapper::BatchMapper(const BatchConfig& batch, const FieldMap& fields)
    : impl_(std::make_shared<const Impl>(batch, fields)) {
    this_thread_scan();
}
BatchMapper::~BatchMapper() = default;
BatchMapper::BatchMapper(const BatchMapper&) = default;
BatchMapper& BatchMapper::operator=(const BatchMapper&) = default;

BatchMembers::BatchMembers(std::vector<std::string> venue_names) : names_(std::move(venue_names)) {
    index_.reserve(names_.size());
    for (std::size_t i = 0; i < names_.size(); ++i)
        index_.emplace(names_[i], static_cast<std::uint32_t>(i));  // a repeated name keeps its first index
}

void set_batch_reader(BatchReader reader) noexcept { this_thread_scan().reader_choice = reader; }

static_assert(json_padding >= simd_padding);

std::error_code BatchMapper::map(std::string_view body, const BatchMembers& members, std::vector<BatchEntry>& out,
                                 BatchCounts& counts) const {
    // A body without spare bytes after it is copied into this thread's padded buffer; the
    // poll path passes its read buffer's capacity instead and copies nothing.
    thread_local std::string padded;
    padded.reserve(body.size() + json_padding);
    padded.assign(body);
    return map(padded, padded.capacity(), members, out, counts);
}

std::error_code BatchMapper::map(std::string_view body, std::size_t capacity, const BatchMembers& members,
                                 std::vector<BatchEntry>& out, BatchCounts& counts) const {
    counts = {};
    out.resize(members.size());
    for (BatchEntry& e : out) {
        e.seen = false;
        e.error = {};
    }
    ScanCall& scan = this_thread_scan();
    // "#key" and an array: the entries have no keys to name them by.
    const std::error_code ec = scan.scan(impl_->compiled, body, capacity);
    counts.read_by_simdjson = scan.read_by_simdjson;
    if (ec) return ec;
    if (impl_->compiled.symbol_is_key && !scan.items_is_object && !scan.entries.empty())
        return MappingError::batch_items;
    counts.entries = scan.entries.size();
    for (const EntryRef& entry : scan.entries) {
        if (entry.symbol_kind != Kind::string) {
            ++counts.bad_symbols;
            continue;
        }
        const std::ptrdiff_t m = members.find(entry.symbol);
        if (m < 0) {
            ++counts.unknown;
            continue;
        }
        BatchEntry& result = out[static_cast<std::size_t>(m)];
        // The first entry wins, as the first match of a duplicated key does for a single quote;
        // the later one is refused and counted, never silently replacing the first.
        if (result.seen) {
            if (counts.duplicates++ == 0) counts.first_duplicate = m;
            continue;
        }
        result.seen = true;
        result.error = impl_->entry.map(entry.text, entry.symbol, result.quote);
    }
    for (const BatchEntry& e : out) counts.missing += e.seen ? 0 : 1;
    return {};
}

}  // namespace mdagg

// Response body -> Quote, following a source's configured JSON Pointers. Sans-io: no sockets,
// no clocks; the caller passes the receive time.
#pragma once

#include <mdagg/config.hpp>
#include <mdagg/quote.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

namespace mdagg {

enum class MappingError {
    malformed_json = 1,  // body is not valid JSON
    missing_field,       // a required pointer found nothing (or null)
    bad_number,          // a price/size/seq that is not an exact decimal/integer
    bad_timestamp,       // exchange time unparsable or out of range
    symbol_mismatch,     // the body names another symbol than the one polled
    body_error,          // the source's success check failed: the venue answered an error
    // A batch answer (BatchMapper):
    batch_items,        // batch.items found no array or object (or "#key" met an array)
    duplicate_symbol,   // a later entry for a symbol the answer already had: refused, the first kept
    symbol_not_string,  // an entry's symbol is absent or not a string: the entry is refused
};
const std::error_category& mapping_category() noexcept;
std::error_code make_error_code(MappingError e) noexcept;

// Parses RFC 3339 ("2022-08-17T10:09:34.055031265Z", offsets allowed, 0-9 fraction digits)
// to nanoseconds since the Unix epoch.
std::optional<std::int64_t> parse_rfc3339_ns(std::string_view text) noexcept;

// Compiled once per source; map() is then cheap and allocates nothing in the steady state.
// Copies share the compiled fields (immutable): compile once per source and copy the mapper
// for each poller. map() may run on several threads at once; its working state is per thread.
class QuoteMapper {
public:
    // Pointers are assumed valid (config validates them); throws std::invalid_argument if not.
    explicit QuoteMapper(const FieldMap& fields);
    ~QuoteMapper();
    QuoteMapper(const QuoteMapper&);
    QuoteMapper& operator=(const QuoteMapper&);
    QuoteMapper(QuoteMapper&&) noexcept;
    QuoteMapper& operator=(QuoteMapper&&) noexcept;

    // Fills bid, ask, sizes, exchange_time_ns and seq of `out`; leaves source, symbol and
    // receive_time_ns alone. `expected_symbol` is checked when a symbol pointer is mapped.
    std::error_code map(std::string_view body, std::string_view expected_symbol, Quote& out) const;

private:
    struct Impl;  // the compiled fields
    std::shared_ptr<const Impl> impl_;
};

// A batch request's members as the venue spells them, and the lookup from an answer's entry
// to its member. Built once per request (poller); the names are owned here.
class BatchMembers {
public:
    explicit BatchMembers(std::vector<std::string> venue_names);
    BatchMembers(const BatchMembers&) = delete;
    BatchMembers& operator=(const BatchMembers&) = delete;
    // The member's index, or -1 for a symbol the request did not ask for.
    std::ptrdiff_t find(std::string_view venue_symbol) const noexcept {
        const auto it = index_.find(venue_symbol);
        return it == index_.end() ? -1 : static_cast<std::ptrdiff_t>(it->second);
    }
    std::size_t size() const noexcept { return names_.size(); }
    const std::string& venue_name(std::size_t member) const noexcept { return names_[member]; }
    const std::vector<std::string>& venue_names() const noexcept { return names_; }

private:
    std::vector<std::string> names_;
    std::unordered_map<std::string_view, std::uint32_t> index_;  // views into names_
};

// One member's outcome in a batch answer.
struct BatchEntry {
    bool seen = false;     // the answer had an entry for it
    std::error_code error; // that entry's mapping error (the usual classes); quote valid when none
    Quote quote;           // bid, ask, sizes, times and seq as QuoteMapper fills them
};

// What a batch answer held besides its members' entries.
struct BatchCounts {
    std::size_t entries = 0;     // entries in the answer
    std::size_t unknown = 0;     // for symbols not asked for: skipped, never parsed into decimals
    std::size_t missing = 0;     // members with no entry
    std::size_t duplicates = 0;  // MappingError::duplicate_symbol
    std::size_t bad_symbols = 0; // MappingError::symbol_not_string
    std::ptrdiff_t first_duplicate = -1;  // the member the answer's first duplicate named, for the log
    bool read_by_simdjson = false;        // simdjson read the answer (else the hand-written reader)
};

// Spare bytes a batch answer needs after its end to be read in place by simdjson (its
// SIMDJSON_PADDING); the poll path's read buffer keeps them in its capacity.
inline constexpr std::size_t json_padding = 64;

// Which reader BatchMapper::map uses on the calling thread. `fast`, the default: simdjson's
// On-Demand API, validating every value with the reader's grammar, and the hand-written
// reader for what it leaves (a body with escapes, a BOM or a scalar root, or one simdjson
// refuses: the reader then gives the verdict). `reference`: the hand-written reader alone
// (benchmarks, and the tests that check both agree). Both give the same results.
enum class BatchReader : std::uint8_t { fast, reference };
void set_batch_reader(BatchReader reader) noexcept;

// A batch answer -> one result per member (docs/configuration.md, Batch endpoints). Sans-io,
// like QuoteMapper: the body is checked whole (valid JSON, the success check) before any entry
// counts, then each entry is routed by its symbol and mapped with the fields, relative to the
// entry. A bad entry fails its member only. Copies share the compiled pointers.
class BatchMapper {
public:
    // `fields.success` applies to the whole body; the other fields to one entry. Throws
    // std::invalid_argument on a pointer config would have refused.
    BatchMapper(const BatchConfig& batch, const FieldMap& fields);
    ~BatchMapper();
    BatchMapper(const BatchMapper&);
    BatchMapper& operator=(const BatchMapper&);

    // An answer-level error (malformed_json, body_error, batch_items) means no member has a
    // result. `out` is resized to the members and reused: the steady state allocates nothing.
    std::error_code map(std::string_view body, const BatchMembers& members, std::vector<BatchEntry>& out,
                        BatchCounts& counts) const;
    // The same, reading `body` in place: `capacity` bytes from body.data() are readable, at
    // least body.size() + json_padding for simdjson (else the hand-written reader reads it).
    std::error_code map(std::string_view body, std::size_t capacity, const BatchMembers& members,
                        std::vector<BatchEntry>& out, BatchCounts& counts) const;

private:
    struct Impl;
    std::shared_ptr<const Impl> impl_;
};

}  // namespace mdagg

template <>
struct std::is_error_code_enum<mdagg::MappingError> : std::true_type {};

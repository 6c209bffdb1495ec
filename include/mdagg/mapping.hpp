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

namespace mdagg {

enum class MappingError {
    malformed_json = 1,  // body is not valid JSON
    missing_field,       // a required pointer found nothing (or null)
    bad_number,          // a price/size/seq that is not an exact decimal/integer
    bad_timestamp,       // exchange time unparsable or out of range
    symbol_mismatch,     // the body names another symbol than the one polled
    body_error,          // the source's success check failed: the venue answered an error
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

}  // namespace mdagg

template <>
struct std::is_error_code_enum<mdagg::MappingError> : std::true_type {};

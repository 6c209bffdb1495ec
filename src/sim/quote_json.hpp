// One writer for every quote object the simulator serves: a venue's shape is data (its member
// names, in order, and what each holds), not a hand-written function per venue. Used by
// /quotes/ (Book::append_json), the venue-shaped single requests (shapes.cpp) and the batch
// answers' entries (batch.cpp).
#pragma once

#include "book.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace mdagg::sim::detail {

enum class Put : std::uint8_t {
    symbol,                        // the symbol's JSON string
    bid, ask, bid_size, ask_size,  // hundredths as a decimal: a string, or a JSON number (VenueKeys)
    last,                          // the bid's value in a member clients do not read (last, open, ...)
    bid_level, ask_level,          // Kraken's [price, whole-lot volume, lot volume], strings
    time_ms,                       // unix ms, a JSON number
    time_ms_text,                  // unix ms as a string (OKX's "ts")
    time_rfc3339_ms,               // "2026-03-29T17:32:57.108Z"
    time_rfc3339_ns,               // nine fraction digits (Alpaca's "t")
    seq,                           // the simulator's own per-symbol seq (no venue sends one)
    text,                          // Member::text verbatim: a constant member the venue also sends
};

struct Member {
    std::string_view key;
    Put put;
    std::string_view text = {};  // JSON, for Put::text
};

struct VenueKeys {
    std::span<const Member> members;
    bool string_numbers = true;  // prices and sizes as "1.25" (most venues) or 1.25 (Alpaca)
};

// The venues' quote objects. Binance's bookTicker is also the simulator's own /quotes/ shape.
const VenueKeys& binance_keys() noexcept;   // {"symbol","bidPrice","bidQty","askPrice","askQty","time","seq"}
const VenueKeys& okx_keys() noexcept;       // one element of OKX's ticker(s) `data`
const VenueKeys& coinbase_keys() noexcept;  // Coinbase's product ticker: no sizes at the touch, no symbol
const VenueKeys& bybit_keys() noexcept;     // one element of Bybit's `result.list`
const VenueKeys& kraken_keys() noexcept;    // one value of Kraken's `result` (keyed by pair)
const VenueKeys& alpaca_keys() noexcept;    // one value of Alpaca's `quotes` (keyed by symbol)

// Appends symbol `index`'s quote `q` as one JSON object with `keys`' members. `corrupt`: the
// bid is written as "not-a-number" (a fault on this symbol), which any client must refuse.
void append_quote_object(std::string& out, const VenueKeys& keys, const Book& book, std::size_t index,
                         const Quote& q, bool corrupt = false);

}  // namespace mdagg::sim::detail

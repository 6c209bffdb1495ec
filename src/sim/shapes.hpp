// Venue-shaped quote requests beside /quotes/{symbol}: the URL and body shapes of Binance,
// OKX and Coinbase single-symbol tickers, so one simulator symbol can be polled the way each
// venue is (tests of canonical symbols across venues). Each answer takes the symbol's seq.
#pragma once

#include "book.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mdagg::sim::detail {

enum class Shape : std::uint8_t {
    quotes,    // GET /quotes/X, and Binance's GET /api/v3/ticker/bookTicker?symbol=X
    okx,       // GET /api/v5/market/ticker?instId=X
    coinbase,  // GET /products/X/ticker
};

struct ShapedRequest {
    Shape shape = Shape::quotes;
    std::string_view symbol;  // as in the target (names are URL-safe: no decoding)
};

// The venue-shaped request `target` (path and query) asks for, if it is one.
std::optional<ShapedRequest> shaped_request(std::string_view target) noexcept;

// Appends symbol `index`'s quote `q` as `shape` answers it.
void append_shaped_json(std::string& out, Shape shape, const Book& book, std::size_t index, const Quote& q);

}  // namespace mdagg::sim::detail

// Batch answers (docs/simulator.md, Batch answers): many symbols in one response, in the
// shapes of the venues' batch endpoints (the daemon's batch presets): Binance's
// bookTicker?symbols=[...], OKX's and Bybit's tickers (every instrument), Kraken's Ticker?pair=
// and Alpaca's quotes/latest?symbols= (objects keyed by symbol).
#pragma once

#include "book.hpp"

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mdagg::sim::detail {

enum class BatchShape {
    binance_array,  // /api/v3/ticker/bookTicker?symbols=..., /batch/bookTicker?symbols=...: a bare array
    okx_data,       // /api/v5/market/tickers, /batch/tickers: every symbol under `data`
    bybit_list,     // /v5/market/tickers: every symbol (or `symbol=`'s) under `result.list`
    kraken_result,  // /0/public/Ticker?pair=A,B: an object under `result` keyed by pair
    alpaca_quotes,  // /v2/stocks/quotes/latest?symbols=A,B: an object under `quotes` keyed by symbol
};

// Whether `target` is a batch request (cheap: the path, and for Binance's path symbols=).
bool is_batch_target(std::string_view target) noexcept;

// A batch request: its shape and the known, answering symbols it asks for (all of them for
// okx_data and bybit_list). nullopt for another path, or a list that does not parse.
struct BatchAsk {
    BatchShape shape;
    std::vector<std::size_t> indices;
};
std::optional<BatchAsk> parse_batch_target(std::string_view target, const Book& book);

// Appends the answer's body. Each good entry takes its symbol's next seq; `corrupt(index)`
// says that a fault hits that symbol: its entry is written with a price that is not a number
// and takes no seq. Returns the indices that took a seq, to count once the body is written.
void append_batch_body(std::string& out, const BatchAsk& ask, Book& book,
                       const std::function<bool(std::size_t)>& corrupt, std::vector<std::size_t>& took_seq);

}  // namespace mdagg::sim::detail

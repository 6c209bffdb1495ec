// Batch answers (docs/simulator.md, Batch endpoints): many symbols in one response, in the
// shapes of Binance's bookTicker?symbols=[...] and OKX's tickers (every instrument).
#pragma once

#include "book.hpp"

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mdagg::sim::detail {

enum class BatchShape { binance_array, okx_data };

// A /batch/ request: its shape and the known, answering symbols it asks for (all of them for
// okx_data). nullopt for another path, or a symbols= list that does not parse.
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

#include "shapes.hpp"

#include "quote_json.hpp"


namespace mdagg::sim::detail {

namespace {

// The value of query parameter `key` in `query` (after '?'), if present and non-empty.
std::optional<std::string_view> query_value(std::string_view query, std::string_view key) noexcept {
    while (!query.empty()) {
        const std::size_t amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        if (pair.size() > key.size() + 1 && pair.substr(0, key.size()) == key && pair[key.size()] == '=')
            return pair.substr(key.size() + 1);
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    return std::nullopt;
}

}  // namespace

std::optional<ShapedRequest> shaped_request(std::string_view target) noexcept {
    const std::size_t mark = target.find('?');
    const std::string_view path = target.substr(0, mark);
    const std::string_view query = mark == std::string_view::npos ? std::string_view() : target.substr(mark + 1);
    if (path == "/api/v3/ticker/bookTicker") {
        if (auto symbol = query_value(query, "symbol")) return ShapedRequest{Shape::quotes, *symbol};
    } else if (path == "/api/v5/market/ticker") {
        if (auto symbol = query_value(query, "instId")) return ShapedRequest{Shape::okx, *symbol};
    } else {
        constexpr std::string_view products = "/products/", ticker = "/ticker";
        if (path.size() > products.size() + ticker.size() && path.substr(0, products.size()) == products &&
            path.substr(path.size() - ticker.size()) == ticker) {
            const std::string_view symbol = path.substr(products.size(), path.size() - products.size() - ticker.size());
            if (symbol.find('/') == std::string_view::npos) return ShapedRequest{Shape::coinbase, symbol};
        }
    }
    return std::nullopt;
}

void append_shaped_json(std::string& out, Shape shape, const Book& book, std::size_t index, const Quote& q) {
    switch (shape) {
        case Shape::okx:
            // A one-element `data`, as OKX's single ticker (the simulator adds a seq to it).
            out += R"({"code":"0","msg":"","data":[)";
            append_quote_object(out, okx_keys(), book, index, q);
            out += "]}";
            return;
        case Shape::coinbase: return append_quote_object(out, coinbase_keys(), book, index, q);
        case Shape::quotes: break;
    }
    book.append_json(out, index, q);
}

}  // namespace mdagg::sim::detail

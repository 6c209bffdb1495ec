#include "shapes.hpp"

#include <mdagg/common.hpp>

#include <charconv>

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

void append_uint(std::string& out, std::uint64_t value) {
    char buf[24];
    out.append(buf, std::to_chars(buf, buf + sizeof buf, value).ptr);
}

void append_price(std::string& out, std::string_view key, std::int64_t hundredths) {
    out += ",\"";
    out += key;
    out += "\":\"";
    append_hundredths(out, hundredths);
    out += '"';
}

// {"code":"0","msg":"","data":[{"instId":..,"bidPx":..,"bidSz":..,"askPx":..,"askSz":..,"ts":"ms","seq":N}]}
// (OKX sends no seq; the simulator adds it for accounting.)
void append_okx(std::string& out, const Book& book, std::size_t index, const Quote& q) {
    out += R"({"code":"0","msg":"","data":[{"instId":)";
    out += book.json_name(index);
    append_price(out, "bidPx", q.bid);
    append_price(out, "bidSz", q.bid_qty);
    append_price(out, "askPx", q.ask);
    append_price(out, "askSz", q.ask_qty);
    out += R"(,"ts":")";
    append_uint(out, static_cast<std::uint64_t>(q.time_ms));
    out += R"(","seq":)";
    append_uint(out, q.seq);
    out += "}]}";
}

// {"trade_id":seq,"price":..,"size":..,"time":"RFC 3339 ms","bid":..,"ask":..,"volume":..}:
// no sizes and no symbol, as Coinbase's ticker.
void append_coinbase(std::string& out, const Quote& q) {
    out += R"({"trade_id":)";
    append_uint(out, q.seq);
    append_price(out, "price", q.bid);
    append_price(out, "size", q.bid_qty);
    out += R"(,"time":")";
    append_rfc3339(out, q.time_ms * 1'000'000, FractionDigits::ms);
    out += '"';
    append_price(out, "bid", q.bid);
    append_price(out, "ask", q.ask);
    out += R"(,"volume":"0.00"})";
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
        case Shape::okx: return append_okx(out, book, index, q);
        case Shape::coinbase: return append_coinbase(out, q);
        case Shape::quotes: break;
    }
    book.append_json(out, index, q);
}

}  // namespace mdagg::sim::detail

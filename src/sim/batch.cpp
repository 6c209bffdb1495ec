#include "batch.hpp"

#include "quote_json.hpp"

#include <mdagg/http.hpp>

#include <chrono>
#include <utility>

namespace mdagg::sim::detail {

namespace {

// The raw value of query parameter `key`, if present.
std::optional<std::string_view> param_value(std::string_view query, std::string_view key) {
    std::optional<std::string_view> value;
    while (!query.empty()) {
        const std::size_t amp = query.find('&');
        const std::string_view param = query.substr(0, amp);
        if (param.size() > key.size() && param.starts_with(key) && param[key.size()] == '=')
            value = param.substr(key.size() + 1);
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    return value;
}

// key=["A","B"] (decoded) or key=A,B: the names in order.
std::optional<std::vector<std::string>> list_param(std::string_view query, std::string_view key) {
    const auto value = param_value(query, key);
    if (!value) return std::nullopt;
    const auto decoded = http::percent_decode(*value, http::Plus::literal);  // '+' stays '+'
    if (!decoded) return std::nullopt;
    std::string_view list = *decoded;
    const bool json = list.starts_with('[');
    if (json) {
        if (!list.ends_with(']')) return std::nullopt;
        list = list.substr(1, list.size() - 2);
    }
    std::vector<std::string> names;
    while (!list.empty()) {
        const std::size_t comma = list.find(',');
        std::string_view name = list.substr(0, comma);
        if (json) {
            if (name.size() < 2 || name.front() != '"' || name.back() != '"') return std::nullopt;
            name = name.substr(1, name.size() - 2);
        }
        names.emplace_back(name);
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return names;
}

struct ShapeInfo {
    BatchShape shape;
    std::string_view path;
    std::string_view list_key;  // the query parameter listing the symbols; "" = every symbol
    std::string_view head, tail;  // around the entries
    bool keyed;                   // entries are an object's members named by symbol
    const VenueKeys& (*keys)() noexcept;
};

constexpr ShapeInfo shapes[] = {
    {BatchShape::binance_array, "/api/v3/ticker/bookTicker", "symbols", "[", "]", false, binance_keys},
    {BatchShape::binance_array, "/batch/bookTicker", "symbols", "[", "]", false, binance_keys},
    {BatchShape::okx_data, "/api/v5/market/tickers", "", R"({"code":"0","msg":"","data":[)", "]}", false, okx_keys},
    {BatchShape::okx_data, "/batch/tickers", "", R"({"code":"0","msg":"","data":[)", "]}", false, okx_keys},
    {BatchShape::bybit_list, "/v5/market/tickers", "", R"({"retCode":0,"retMsg":"OK","result":{"category":"spot","list":[)",
     R"(]},"retExtInfo":{},"time":)", false, bybit_keys},
    {BatchShape::kraken_result, "/0/public/Ticker", "pair", R"({"error":[],"result":{)", "}}", true, kraken_keys},
    {BatchShape::alpaca_quotes, "/v2/stocks/quotes/latest", "symbols", R"({"quotes":{)", "}}", true, alpaca_keys},
};

const ShapeInfo& info(BatchShape shape) {
    for (const ShapeInfo& s : shapes)
        if (s.shape == shape) return s;
    return shapes[0];
}

std::pair<std::string_view, std::string_view> split_target(std::string_view target) {
    const std::size_t question = target.find('?');
    return {target.substr(0, question),
            question == std::string_view::npos ? std::string_view() : target.substr(question + 1)};
}

const ShapeInfo* shape_of(std::string_view target) {
    const auto [path, query] = split_target(target);
    for (const ShapeInfo& s : shapes) {
        if (s.path != path) continue;
        // Binance's path with symbol= (one symbol) is the single shape (shapes.cpp).
        if (s.path == "/api/v3/ticker/bookTicker" && !param_value(query, "symbols")) return nullptr;
        return &s;
    }
    return nullptr;
}

}  // namespace

bool is_batch_target(std::string_view target) noexcept { return shape_of(target) != nullptr; }

std::optional<BatchAsk> parse_batch_target(std::string_view target, const Book& book) {
    const ShapeInfo* shape = shape_of(target);
    if (!shape) return std::nullopt;
    BatchAsk ask;
    ask.shape = shape->shape;
    const std::string_view query = split_target(target).second;
    // Bybit's `symbol=` narrows its all-symbol list to one (its single-ticker request).
    const auto one = shape->shape == BatchShape::bybit_list ? param_value(query, "symbol") : std::nullopt;
    if (shape->list_key.empty() && !one) {
        for (std::size_t i = 0; i < book.size(); ++i)
            if (!book.hung(i)) ask.indices.push_back(i);
        return ask;
    }
    std::optional<std::vector<std::string>> names;
    if (one)
        names = std::vector<std::string>{std::string(*one)};
    else
        names = list_param(query, shape->list_key);
    if (!names) return std::nullopt;
    // Unknown and hung symbols are left out, as a venue leaves out what it does not quote.
    for (const std::string& name : *names)
        if (auto index = book.find(name); index && !book.hung(*index)) ask.indices.push_back(*index);
    return ask;
}

void append_batch_body(std::string& out, const BatchAsk& ask, Book& book,
                       const std::function<bool(std::size_t)>& corrupt, std::vector<std::size_t>& took_seq) {
    took_seq.clear();
    const ShapeInfo& shape = info(ask.shape);
    const VenueKeys& keys = shape.keys();
    out += shape.head;
    bool first = true;
    for (const std::size_t index : ask.indices) {
        if (!first) out += ',';
        first = false;
        if (shape.keyed) {
            out += book.json_name(index);
            out += ':';
        }
        // A faulted entry carries a bid that is not a number and takes no seq: the client
        // refuses this entry only.
        if (corrupt(index)) {
            append_quote_object(out, keys, book, index, Quote{}, true);
            continue;
        }
        const Quote q = book.next(index);
        took_seq.push_back(index);
        append_quote_object(out, keys, book, index, q);
    }
    out += shape.tail;
    if (ask.shape == BatchShape::bybit_list) {  // the answer's own time, after the list
        out += std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count());
        out += '}';
    }
}

}  // namespace mdagg::sim::detail

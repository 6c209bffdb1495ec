#include "batch.hpp"

#include <mdagg/http.hpp>

namespace mdagg::sim::detail {

namespace {

// symbols=["A","B"] (decoded) or symbols=A,B: the names in order.
std::optional<std::vector<std::string>> symbols_param(std::string_view query) {
    std::string_view value;
    bool found = false;
    while (!query.empty()) {
        const std::size_t amp = query.find('&');
        const std::string_view param = query.substr(0, amp);
        if (param.starts_with("symbols=")) {
            value = param.substr(8);
            found = true;
        }
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    if (!found) return std::nullopt;
    const auto decoded = http::percent_decode(value, http::Plus::literal);  // '+' stays '+'
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

void append_okx_entry(std::string& out, const Book& book, std::size_t index, const Quote& q, bool bad) {
    out += "{\"instId\":\"";
    out += book.name(index);
    out += "\",\"bidPx\":\"";
    if (bad)
        out += "not-a-number";
    else
        append_hundredths(out, q.bid);
    out += "\",\"bidSz\":\"";
    append_hundredths(out, q.bid_qty);
    out += "\",\"askPx\":\"";
    append_hundredths(out, q.ask);
    out += "\",\"askSz\":\"";
    append_hundredths(out, q.ask_qty);
    out += "\",\"ts\":\"";
    out += std::to_string(q.time_ms);
    out += "\",\"seq\":";
    out += std::to_string(q.seq);
    out += '}';
}

}  // namespace

std::optional<BatchAsk> parse_batch_target(std::string_view target, const Book& book) {
    const std::size_t question = target.find('?');
    const std::string_view path = target.substr(0, question);
    const std::string_view query = question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
    BatchAsk ask;
    if (path == "/batch/tickers") {
        ask.shape = BatchShape::okx_data;
        for (std::size_t i = 0; i < book.size(); ++i)
            if (!book.hung(i)) ask.indices.push_back(i);
        return ask;
    }
    if (path != "/batch/bookTicker") return std::nullopt;
    ask.shape = BatchShape::binance_array;
    const auto names = symbols_param(query);
    if (!names) return std::nullopt;
    // Unknown and hung symbols are left out, as a venue leaves out what it does not quote.
    for (const std::string& name : *names)
        if (auto index = book.find(name); index && !book.hung(*index)) ask.indices.push_back(*index);
    return ask;
}

void append_batch_body(std::string& out, const BatchAsk& ask, Book& book,
                       const std::function<bool(std::size_t)>& corrupt, std::vector<std::size_t>& took_seq) {
    took_seq.clear();
    if (ask.shape == BatchShape::okx_data) out += "{\"code\":\"0\",\"msg\":\"\",\"data\":";
    out += '[';
    bool first = true;
    for (const std::size_t index : ask.indices) {
        if (!first) out += ',';
        first = false;
        const bool bad = corrupt(index);
        if (bad && ask.shape == BatchShape::binance_array) {
            // A bookTicker entry whose bid is not a number: the client refuses this entry only.
            out += "{\"symbol\":\"";
            out += book.name(index);
            out += "\",\"bidPrice\":\"not-a-number\",\"bidQty\":\"1\",\"askPrice\":\"1\",\"askQty\":\"1\"}";
            continue;
        }
        if (bad) {
            append_okx_entry(out, book, index, Quote{}, true);
            continue;
        }
        const Quote q = book.next(index);
        took_seq.push_back(index);
        if (ask.shape == BatchShape::binance_array)
            book.append_json(out, index, q);
        else
            append_okx_entry(out, book, index, q, false);
    }
    out += ']';
    if (ask.shape == BatchShape::okx_data) out += '}';
}

}  // namespace mdagg::sim::detail

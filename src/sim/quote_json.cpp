#include "quote_json.hpp"

#include <mdagg/common.hpp>

#include <charconv>

namespace mdagg::sim::detail {

namespace {

void append_int(std::string& out, std::int64_t value) {
    char buf[24];
    out.append(buf, std::to_chars(buf, buf + sizeof buf, value).ptr);
}

void append_number(std::string& out, std::int64_t hundredths, bool as_string) {
    if (as_string) out += '"';
    append_hundredths(out, hundredths);
    if (as_string) out += '"';
}

// Field order and names as the venues' documented examples have them; members the daemon
// does not read are kept (constant values) so the bodies are as long as the venues' are.
constexpr Member binance[] = {
    {"symbol", Put::symbol},     {"bidPrice", Put::bid}, {"bidQty", Put::bid_size}, {"askPrice", Put::ask},
    {"askQty", Put::ask_size},   {"time", Put::time_ms}, {"seq", Put::seq},
};
constexpr Member okx[] = {
    {"instType", Put::text, R"("SPOT")"}, {"instId", Put::symbol},    {"last", Put::last},
    {"lastSz", Put::text, R"("0.00107241")"},  {"askPx", Put::ask},         {"askSz", Put::ask_size},
    {"bidPx", Put::bid},                  {"bidSz", Put::bid_size},    {"open24h", Put::last},
    {"high24h", Put::ask},                {"low24h", Put::last},        {"volCcy24h", Put::text, R"("2165430187.91837146")"},
    {"vol24h", Put::text, R"("32659.18946524")"}, {"ts", Put::time_ms_text}, {"sodUtc0", Put::last},
    {"sodUtc8", Put::last},                {"seq", Put::seq},
};
constexpr Member coinbase[] = {
    {"trade_id", Put::seq}, {"price", Put::last}, {"size", Put::bid_size}, {"time", Put::time_rfc3339_ms},
    {"bid", Put::bid},      {"ask", Put::ask},   {"volume", Put::text, R"("0.00")"},
};
constexpr Member bybit[] = {
    {"symbol", Put::symbol},          {"bid1Price", Put::bid},    {"bid1Size", Put::bid_size},
    {"ask1Price", Put::ask},          {"ask1Size", Put::ask_size}, {"lastPrice", Put::last},
    {"prevPrice24h", Put::last},       {"price24hPcnt", Put::text, R"("0.0118")"},
    {"highPrice24h", Put::ask},       {"lowPrice24h", Put::last},  {"turnover24h", Put::text, R"("1234567.89")"},
    {"volume24h", Put::text, R"("123.456")"}, {"usdIndexPrice", Put::last}, {"seq", Put::seq},
};
constexpr Member kraken[] = {
    {"a", Put::ask_level},
    {"b", Put::bid_level},
    {"c", Put::text, R"(["0.00","0.00000000"])"},
    {"v", Put::text, R"(["4083.67","4412.73"])"},
    {"p", Put::text, R"(["30295.11","30300.81"])"},
    {"t", Put::text, "[4152,4613]"},
    {"l", Put::text, R"(["30000.00","30000.00"])"},
    {"h", Put::text, R"(["30500.00","30500.00"])"},
    {"o", Put::text, R"("30296.60000")"},
    {"seq", Put::seq},
};
constexpr Member alpaca[] = {
    {"ap", Put::ask},  {"as", Put::ask_size}, {"ax", Put::text, R"("V")"}, {"bp", Put::bid},
    {"bs", Put::bid_size}, {"bx", Put::text, R"("V")"}, {"c", Put::text, R"(["R"])"},
    {"t", Put::time_rfc3339_ns}, {"z", Put::text, R"("C")"}, {"seq", Put::seq},
};

constexpr std::string_view not_a_number = R"("not-a-number")";

void append_level(std::string& out, std::int64_t price, std::int64_t size, bool corrupt) {
    out += '[';
    if (corrupt)
        out += not_a_number;
    else
        append_number(out, price, true);
    out += R"(,"1",)";
    append_number(out, size, true);
    out += ']';
}

}  // namespace

const VenueKeys& binance_keys() noexcept {
    static const VenueKeys keys{binance};
    return keys;
}
const VenueKeys& okx_keys() noexcept {
    static const VenueKeys keys{okx};
    return keys;
}
const VenueKeys& coinbase_keys() noexcept {
    static const VenueKeys keys{coinbase};
    return keys;
}
const VenueKeys& bybit_keys() noexcept {
    static const VenueKeys keys{bybit};
    return keys;
}
const VenueKeys& kraken_keys() noexcept {
    static const VenueKeys keys{kraken};
    return keys;
}
const VenueKeys& alpaca_keys() noexcept {
    static const VenueKeys keys{alpaca, false};
    return keys;
}

void append_quote_object(std::string& out, const VenueKeys& keys, const Book& book, std::size_t index,
                         const Quote& q, bool corrupt) {
    out += '{';
    bool first = true;
    for (const Member& m : keys.members) {
        if (!first) out += ',';
        first = false;
        out += '"';
        out += m.key;
        out += "\":";
        switch (m.put) {
            case Put::symbol: out += book.json_name(index); break;
            case Put::bid:
                if (corrupt)
                    out += not_a_number;  // quoted even for a venue of JSON numbers: a string is no price
                else
                    append_number(out, q.bid, keys.string_numbers);
                break;
            case Put::last: append_number(out, q.bid, keys.string_numbers); break;
            case Put::ask: append_number(out, q.ask, keys.string_numbers); break;
            case Put::bid_size: append_number(out, q.bid_qty, keys.string_numbers); break;
            case Put::ask_size: append_number(out, q.ask_qty, keys.string_numbers); break;
            case Put::bid_level: append_level(out, q.bid, q.bid_qty, corrupt); break;
            case Put::ask_level: append_level(out, q.ask, q.ask_qty, false); break;
            case Put::time_ms: append_int(out, q.time_ms); break;
            case Put::time_ms_text:
                out += '"';
                append_int(out, q.time_ms);
                out += '"';
                break;
            case Put::time_rfc3339_ms:
            case Put::time_rfc3339_ns:
                out += '"';
                append_rfc3339(out, q.time_ms * 1'000'000,
                               m.put == Put::time_rfc3339_ms ? FractionDigits::ms : FractionDigits::ns);
                out += '"';
                break;
            case Put::seq: append_int(out, static_cast<std::int64_t>(q.seq)); break;
            case Put::text: out += m.text; break;
        }
    }
    out += '}';
}

}  // namespace mdagg::sim::detail

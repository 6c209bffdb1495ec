// libFuzzer target for what turns a venue's response into a quote: QuoteMapper (with field maps
// for the venue shapes in ../shared/notes/venues.md), Decimal::parse and the timestamp parsers.
// Besides "no crash, no sanitizer report", every input is held to properties:
//   - a body a mapper accepts is valid JSON to nlohmann::json too;
//   - on a canonical body (nlohmann's dump() of it is the body itself, so no duplicate keys or
//     spacing games), each mapped field agrees with what nlohmann finds at the same pointer;
//   - Decimal: parse -> to_string -> parse is the same value, scale and text, and agrees with
//     strtod;
//   - RFC 3339: a parsed instant, written back as UTC, parses to the same nanosecond;
//   - BatchMapper (OKX's /data + /instId and Kraken's "#key" shapes): simdjson's path and the
//     hand-written reader give the same error, counts and per-member results.
// Build and run: bash scripts/fuzz.sh [seconds]
#include <mdagg/decimal.hpp>
#include <mdagg/mapping.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using mdagg::Decimal;
using mdagg::FieldMap;
using mdagg::MappingError;
using mdagg::TimeUnit;

[[noreturn]] void violated(const char* property, std::string_view input) {
    std::fprintf(stderr, "property violated: %s\ninput (%zu bytes): %.*s\n", property,
                 input.size(), static_cast<int>(std::min<std::size_t>(input.size(), 2000)),
                 input.data());
    std::abort();
}

struct Venue {
    const char* name;
    const char* symbol;  // the symbol polled
    FieldMap fields;
};

FieldMap fields(std::string symbol, std::string bid, std::string ask, std::string bid_size,
                std::string ask_size, std::optional<mdagg::TimeField> time = {},
                std::string seq = {}) {
    FieldMap f;
    f.symbol = std::move(symbol);
    f.bid = std::move(bid);
    f.ask = std::move(ask);
    f.bid_size = std::move(bid_size);
    f.ask_size = std::move(ask_size);
    f.exchange_time = std::move(time);
    f.seq = std::move(seq);
    return f;
}

std::vector<Venue> venues() {
    return {
        {"binance", "LTCBTC",
         fields("/symbol", "/bidPrice", "/askPrice", "/bidQty", "/askQty")},
        {"mdagg-sim", "STOCK_1",
         fields("/symbol", "/bidPrice", "/askPrice", "/bidQty", "/askQty",
                mdagg::TimeField{"/time", TimeUnit::ms}, "/seq")},
        {"coinbase", "BTC-USD",
         fields("", "/bid", "/ask", "", "", mdagg::TimeField{"/time", TimeUnit::rfc3339},
                "/trade_id")},
        {"kraken", "XBTUSD",
         fields("", "/result/*/b/0", "/result/*/a/0", "/result/*/b/2", "/result/*/a/2")},
        {"okx", "BTC-USDT",
         fields("/data/0/instId", "/data/0/bidPx", "/data/0/askPx", "/data/0/bidSz",
                "/data/0/askSz", mdagg::TimeField{"/data/0/ts", TimeUnit::ms})},
        {"bybit", "BTCUSDT",
         fields("/result/list/0/symbol", "/result/list/0/bid1Price", "/result/list/0/ask1Price",
                "/result/list/0/bid1Size", "/result/list/0/ask1Size",
                mdagg::TimeField{"/time", TimeUnit::ms})},
        {"alpaca", "AAPL",
         fields("/symbol", "/quote/bp", "/quote/ap", "/quote/bs", "/quote/as",
                mdagg::TimeField{"/quote/t", TimeUnit::rfc3339})},
        {"polygon", "AAPL",
         fields("/results/T", "/results/p", "/results/P", "/results/s", "/results/S",
                mdagg::TimeField{"/results/t", TimeUnit::ns})},
        {"finnhub", "AAPL", fields("", "/c", "/c", "", "", mdagg::TimeField{"/t", TimeUnit::s})},
        {"unix-us", "X", fields("/s", "/b", "/a", "", "", mdagg::TimeField{"/ts", TimeUnit::us})},
    };
}

// The text a mapped value has: a string's content, or a number's token as nlohmann writes it
// (on a canonical body that is the body's own token).
std::optional<std::string> value_text(const nlohmann::json& v) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number()) return v.dump();
    return std::nullopt;
}

const nlohmann::json* at(const nlohmann::json& doc, const std::string& pointer) {
    if (pointer.empty() || pointer.find('*') != std::string::npos) return nullptr;
    try {
        const nlohmann::json::json_pointer p(pointer);
        if (!doc.contains(p)) return nullptr;
        return &doc.at(p);
    } catch (const nlohmann::json::exception&) {
        return nullptr;
    }
}

std::int64_t pow10(int n) {
    std::int64_t v = 1;
    while (n-- > 0) v *= 10;
    return v;
}

// What the mapper must have found, from nlohmann's view of a canonical body.
void check_against_nlohmann(const Venue& venue, const nlohmann::json& doc, std::error_code ec,
                            const mdagg::Quote& q, std::string_view body) {
    const FieldMap& f = venue.fields;
    if (f.bid.find('*') != std::string::npos) return;  // wildcards: first match, not checkable
    const auto* bid = at(doc, f.bid);
    const auto* ask = at(doc, f.ask);
    const bool bid_missing = bid == nullptr || bid->is_null();
    const bool ask_missing = ask == nullptr || ask->is_null();
    if (!ec) {
        if (bid_missing || ask_missing) violated("mapped a quote whose bid or ask is missing", body);
        const auto bid_text = value_text(*bid);
        const auto ask_text = value_text(*ask);
        if (!bid_text || !ask_text) violated("mapped a bid/ask that is not a string or number", body);
        const auto b = Decimal::parse(*bid_text);
        const auto a = Decimal::parse(*ask_text);
        if (!b || !(*b == q.bid) || !a || !(*a == q.ask)) violated("bid/ask differ from nlohmann's", body);
        if (f.exchange_time && f.exchange_time->unit != TimeUnit::rfc3339) {
            const auto* t = at(doc, f.exchange_time->pointer);
            if (t && t->is_number_unsigned()) {
                const int digits = f.exchange_time->unit == TimeUnit::s    ? 9
                                   : f.exchange_time->unit == TimeUnit::ms ? 6
                                   : f.exchange_time->unit == TimeUnit::us ? 3
                                                                           : 0;
                const auto raw = t->get<std::uint64_t>();
                std::int64_t expected = 0;
                if (raw <= static_cast<std::uint64_t>(INT64_MAX) &&
                    !__builtin_mul_overflow(static_cast<std::int64_t>(raw), pow10(digits),
                                            &expected) &&
                    expected != q.exchange_time_ns)
                    violated("integer timestamp differs from nlohmann's", body);
            }
        }
        if (!f.seq.empty()) {
            const auto* s = at(doc, f.seq);
            if (s && s->is_number_unsigned() && s->get<std::uint64_t>() <= INT64_MAX &&
                static_cast<std::int64_t>(s->get<std::uint64_t>()) != q.seq)
                violated("seq differs from nlohmann's", body);
        }
    } else if (ec == MappingError::malformed_json) {
        violated("canonical JSON reported as malformed", body);
    } else if (ec == MappingError::missing_field && !bid_missing && !ask_missing) {
        const auto* sym = at(doc, f.symbol);
        if (f.symbol.empty() || (sym && !sym->is_null()))
            violated("missing_field although bid, ask and symbol are there", body);
    }
}

void check_decimal(std::string_view text) {
    const auto d = Decimal::parse(text);
    if (!d) return;
    const std::string canonical = d->to_string();
    if (canonical.size() > Decimal::max_chars) violated("Decimal text longer than max_chars", text);
    const auto again = Decimal::parse(canonical);
    if (!again || !(*again == *d) || again->scale() != d->scale() ||
        again->mantissa() != d->mantissa() || again->to_string() != canonical)
        violated("Decimal does not round-trip through to_string", text);
    // Decimal accepts only JSON-number-like text, which strtod reads the same way.
    const std::string copy(text);
    char* end = nullptr;
    const double expected = std::strtod(copy.c_str(), &end);
    const double got = d->to_double();
    if (std::isfinite(expected) &&
        std::fabs(got - expected) > 1e-9 * std::fabs(expected) + 1e-300)
        violated("Decimal::to_double disagrees with strtod", text);
    if (!(*Decimal::difference(*d, *d) == Decimal())) violated("d - d != 0", text);
    const auto mid = Decimal::midpoint(*d, *d);
    if (mid && !(*mid == *d)) violated("midpoint(d, d) != d", text);
}

// Howard Hinnant's civil_from_days.
void civil(std::int64_t days, int& y, int& m, int& d) {
    days += 719468;
    const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    const auto doe = static_cast<unsigned>(days - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
    m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
    y = static_cast<int>(static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2));
}

void check_rfc3339(std::string_view text) {
    const auto ns = mdagg::parse_rfc3339_ns(text);
    if (!ns) return;
    std::int64_t seconds = *ns / 1'000'000'000;
    std::int64_t fraction = *ns % 1'000'000'000;
    if (fraction < 0) {
        fraction += 1'000'000'000;
        --seconds;
    }
    std::int64_t days = seconds / 86400;
    std::int64_t rest = seconds % 86400;
    if (rest < 0) {
        rest += 86400;
        --days;
    }
    int y = 0, m = 0, d = 0;
    civil(days, y, m, d);
    if (y < 0 || y > 9999) return;  // an offset carried it out of the four-digit years
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", y, m, d,
                  static_cast<int>(rest / 3600), static_cast<int>(rest / 60 % 60),
                  static_cast<int>(rest % 60), static_cast<long long>(fraction));
    const auto again = mdagg::parse_rfc3339_ns(buf);
    if (!again || *again != *ns) violated("RFC 3339 time does not round-trip as UTC", text);
}

// One batch answer read by both readers (mdagg::BatchReader): everything must agree.
void check_batch_readers(const mdagg::BatchMapper& mapper, const mdagg::BatchMembers& members, std::string_view body) {
    std::string padded;
    padded.reserve(body.size() + mdagg::json_padding);
    padded.assign(body);
    std::vector<mdagg::BatchEntry> out[2];
    mdagg::BatchCounts counts[2];
    std::error_code ec[2];
    const mdagg::BatchReader readers[2] = {mdagg::BatchReader::reference, mdagg::BatchReader::fast};
    for (int r = 0; r < 2; ++r) {
        mdagg::set_batch_reader(readers[r]);
        ec[r] = mapper.map(padded, padded.capacity(), members, out[r], counts[r]);
    }
    const auto& a = counts[0];
    const auto& b = counts[1];
    if (ec[0] != ec[1]) violated("batch readers disagree on the answer's error", body);
    if (ec[0]) return;
    if (a.entries != b.entries || a.unknown != b.unknown || a.missing != b.missing || a.duplicates != b.duplicates ||
        a.bad_symbols != b.bad_symbols || a.first_duplicate != b.first_duplicate)
        violated("batch readers disagree on the counts", body);
    for (std::size_t m = 0; m < members.size(); ++m) {
        const auto& x = out[0][m];
        const auto& y = out[1][m];
        if (x.seen != y.seen || x.error != y.error) violated("batch readers disagree on a member", body);
        if (!x.seen || x.error) continue;
        if (x.quote.bid.to_string() != y.quote.bid.to_string() || x.quote.ask.to_string() != y.quote.ask.to_string() ||
            x.quote.bid_size.to_string() != y.quote.bid_size.to_string() || x.quote.seq != y.quote.seq ||
            x.quote.exchange_time_ns != y.quote.exchange_time_ns)
            violated("batch readers disagree on a member's quote", body);
    }
}

void check_batches(std::string_view body) {
    static const mdagg::BatchMapper okx = [] {
        mdagg::BatchConfig b;
        b.items = "/data";
        b.symbol = "/instId";
        FieldMap f = fields("", "/bidPx", "/askPx", "/bidSz", "/askSz", mdagg::TimeField{"/ts", TimeUnit::ms}, "/seq");
        f.success = mdagg::SuccessCheck{"/code", std::string("0"), false};
        return mdagg::BatchMapper(b, f);
    }();
    static const mdagg::BatchMapper kraken = [] {
        mdagg::BatchConfig b;
        b.items = "/result";
        b.symbol = "#key";
        return mdagg::BatchMapper(b, fields("", "/b/0", "/a/0", "/b/2", "/a/2"));
    }();
    static const mdagg::BatchMembers okx_members(std::vector<std::string>{"BTC-USDT", "ETH-USDT", "A"});
    static const mdagg::BatchMembers kraken_members(std::vector<std::string>{"XXBTZUSD", "XETHZUSD", "A"});
    check_batch_readers(okx, okx_members, body);
    check_batch_readers(kraken, kraken_members, body);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static std::vector<Venue> all = venues();
    static std::vector<mdagg::QuoteMapper> mappers = [] {
        std::vector<mdagg::QuoteMapper> out;
        for (const auto& v : all) out.emplace_back(v.fields);
        return out;
    }();
    const std::string_view body(reinterpret_cast<const char*>(data), size);

    // nlohmann differs from the mapper's reader on purpose in two places (json_reader.hpp):
    // numbers beyond double's range, and what follows a NUL. Parse only when it matters.
    std::optional<nlohmann::json> doc;
    bool doc_parsed = false;
    auto parse_doc = [&]() -> const std::optional<nlohmann::json>& {
        if (!doc_parsed) {
            doc_parsed = true;
            auto j = nlohmann::json::parse(body, nullptr, false);
            if (!j.is_discarded()) doc = std::move(j);
        }
        return doc;
    };

    for (std::size_t i = 0; i < all.size(); ++i) {
        mdagg::Quote q;
        const auto ec = mappers[i].map(body, all[i].symbol, q);
        if (!ec) {
            if (q.exchange_time_ns < 0) violated("negative exchange time", body);
            const bool out_of_double_range =
                body.find_first_of("eE") != std::string_view::npos || body.size() > 300;
            if (!parse_doc() && !out_of_double_range)
                violated("mapper accepted a body nlohmann rejects", body);
        }
        if (const auto& j = parse_doc(); j && j->dump() == body)
            check_against_nlohmann(all[i], *j, ec, q, body);
    }

    check_batches(body);
    if (size <= 128) {
        check_decimal(body);
        check_rfc3339(body);
    }
    return 0;
}

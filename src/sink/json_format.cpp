// Hand-written JSON lines: this runs once per record on the aggregator strand, so no
// intermediate DOM, no locale, no allocation beyond growing `out`. Each record is written
// into one buffer sized for its worst case and appended once.
#include <mdagg/sink.hpp>

#include "detail.hpp"

#include <charconv>
#include <chrono>
#include <limits>
#include <string_view>

namespace mdagg {
namespace sink_detail {
namespace {

// Length of the well-formed UTF-8 sequence starting at s[i], 0 when it is not one.
// Overlongs, surrogates and code points past U+10FFFF are rejected as RFC 3629 requires.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n;
    std::uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07u;
    } else {
        return 0;
    }
    if (s.size() - i < n) return 0;
    for (std::size_t k = 1; k < n; ++k) {
        const auto b = static_cast<unsigned char>(s[i + k]);
        if ((b & 0xC0u) != 0x80u) return 0;
        cp = (cp << 6) | (b & 0x3Fu);
    }
    if (n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;
    if (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
    return n;
}

}  // namespace

// Names come from configuration; invalid UTF-8 becomes U+FFFD so every line stays valid JSON.
char* put_json_string(char* p, std::string_view s) noexcept {
    static constexpr char hex[] = "0123456789abcdef";
    *p++ = '"';
    std::size_t run = 0;  // start of the bytes not yet copied
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            ++i;
            continue;
        }
        if (c >= 0x80) {
            if (const std::size_t n = utf8_sequence(s, i)) {
                i += n;
                continue;
            }
        }
        p = put(p, s.substr(run, i - run));
        switch (c) {
            case '"': p = put(p, "\\\""); break;
            case '\\': p = put(p, "\\\\"); break;
            case '\b': p = put(p, "\\b"); break;
            case '\f': p = put(p, "\\f"); break;
            case '\n': p = put(p, "\\n"); break;
            case '\r': p = put(p, "\\r"); break;
            case '\t': p = put(p, "\\t"); break;
            default:
                if (c >= 0x80) {
                    p = put(p, "\\ufffd");
                } else {
                    const char u[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
                    p = put(p, std::string_view(u, sizeof u));
                }
        }
        run = ++i;
    }
    p = put(p, s.substr(run, i - run));
    *p++ = '"';
    return p;
}

void extend_names(std::vector<std::string>& cache, const std::vector<std::string>& names, const NameStyle& style) {
    while (cache.size() < names.size()) {
        const std::string& name = names[cache.size()];
        std::string text(style.bound(name.size()), '\0');
        text.resize(static_cast<std::size_t>(style.escape(text.data(), name) - text.data()));
        cache.push_back(std::move(text));
    }
}

}  // namespace sink_detail

namespace {

using namespace sink_detail;

// Worst cases of the fixed parts of a record, names excluded.
constexpr std::size_t decimal_bound = Decimal::max_chars + 2;
constexpr std::size_t time_bound = rfc3339_max_chars + 2;

char* put_decimal(char* p, Decimal d) noexcept {
    *p++ = '"';
    p = d.format(p);
    *p++ = '"';
    return p;
}

char* put_time(char* p, std::int64_t ns) noexcept {
    *p++ = '"';
    p = put_rfc3339(p, ns);
    *p++ = '"';
    return p;
}

template <class Names>
void quote_json(std::string& out, const Quote& q, const Names& sources, const Names& symbols,
                const std::string* venue) {
    constexpr std::size_t fixed = 180 + 4 * decimal_bound + 2 * time_bound + int_bound;
    LineBuffer buf(out, fixed + sources.bound(q.source) + symbols.bound(q.symbol) +
                            (venue ? json_string_bound(venue->size()) : 0) +
                            (q.via ? json_string_bound(q.via->size()) : 0));
    char* p = buf.begin();
    p = put(p, R"({"type":"quote","source":)");
    p = sources.put(p, q.source);
    p = put(p, R"(,"symbol":)");
    p = symbols.put(p, q.symbol);
    if (venue) {
        p = put(p, R"(,"venue_symbol":)");
        p = put_json_string(p, *venue);
    }
    p = put(p, R"(,"bid":)");
    p = put_decimal(p, q.bid);
    p = put(p, R"(,"ask":)");
    p = put_decimal(p, q.ask);
    if (q.has_bid_size) {
        p = put(p, R"(,"bid_size":)");
        p = put_decimal(p, q.bid_size);
    }
    if (q.has_ask_size) {
        p = put(p, R"(,"ask_size":)");
        p = put_decimal(p, q.ask_size);
    }
    if (q.exchange_time_ns != 0) {
        p = put(p, R"(,"exchange_time":)");
        p = put_time(p, q.exchange_time_ns);
    }
    p = put(p, R"(,"receive_time":)");
    p = put_time(p, q.receive_time_ns);
    if (q.seq >= 0) {
        p = put(p, R"(,"seq":)");
        p = put_int(p, q.seq);
    }
    if (q.via) {  // last, so a record without mirrors is the same line as before
        p = put(p, R"(,"via":)");
        p = put_json_string(p, *q.via);
    }
    p = put(p, "}\n");
    buf.commit(p);
}

template <class Names>
void bar_json(std::string& out, const Bar& bar, const Names& sources, const Names& symbols) {
    constexpr std::size_t fixed = 256 + 7 * decimal_bound + 2 * time_bound + int_bound;
    LineBuffer buf(out, fixed + symbols.bound(bar.symbol) + sources.bound(bar.bbo.bid_source) +
                            sources.bound(bar.bbo.ask_source));
    char* p = buf.begin();
    p = put(p, R"({"type":"bar","symbol":)");
    p = symbols.put(p, bar.symbol);
    p = put(p, R"(,"start":)");
    p = put_time(p, bar.start_ns);
    p = put(p, R"(,"end":)");
    p = put_time(p, bar.end_ns);
    p = put(p, R"(,"open":)");
    p = put_decimal(p, bar.open);
    p = put(p, R"(,"high":)");
    p = put_decimal(p, bar.high);
    p = put(p, R"(,"low":)");
    p = put_decimal(p, bar.low);
    p = put(p, R"(,"close":)");
    p = put_decimal(p, bar.close);
    p = put(p, R"(,"updates":)");
    p = put_int(p, bar.updates);
    p = put(p, R"(,"spread":)");
    p = put_decimal(p, bar.last_spread);
    auto best_side = [&](bool has, std::string_view price_key, Decimal price, std::string_view source_key,
                         SourceId source) {
        if (!has) return;
        p = put(put_decimal(put(p, price_key), price), source_key);
        p = sources.put(p, source);
    };
    best_side(bar.bbo.has_bid, R"(,"best_bid":)", bar.bbo.bid, R"(,"best_bid_source":)", bar.bbo.bid_source);
    best_side(bar.bbo.has_ask, R"(,"best_ask":)", bar.bbo.ask, R"(,"best_ask_source":)", bar.bbo.ask_source);
    p = put(p, "}\n");
    buf.commit(p);
}

template <class Names>
void stale_json(std::string& out, const StaleMark& mark, const Names& sources, const Names& symbols) {
    constexpr std::size_t fixed = 128 + 2 * time_bound;
    LineBuffer buf(out, fixed + sources.bound(mark.source) + symbols.bound(mark.symbol));
    char* p = buf.begin();
    p = put(p, R"({"type":"stale","source":)");
    p = sources.put(p, mark.source);
    p = put(p, R"(,"symbol":)");
    p = symbols.put(p, mark.symbol);
    p = mark.stale ? put(p, R"(,"stale":true,"time":)") : put(p, R"(,"stale":false,"time":)");
    p = put_time(p, mark.at_ns);
    p = put(p, R"(,"last_receive_time":)");
    p = put_time(p, mark.last_receive_ns);
    p = put(p, "}\n");
    buf.commit(p);
}

}  // namespace

void append_quote_json(std::string& out, const Quote& q, const Universe& universe) {
    quote_json(out, q, EscapedNames{universe.sources, json_name}, EscapedNames{universe.symbols, json_name},
               universe.venue_symbol(q.source, q.symbol));
}

void append_bar_json(std::string& out, const Bar& bar, const Universe& universe) {
    bar_json(out, bar, EscapedNames{universe.sources, json_name}, EscapedNames{universe.symbols, json_name});
}

void append_stale_json(std::string& out, const StaleMark& mark, const Universe& universe) {
    stale_json(out, mark, EscapedNames{universe.sources, json_name}, EscapedNames{universe.symbols, json_name});
}

void RecordFormatter::quote_json(std::string& out, const Quote& q) {
    refresh();
    const auto names = cached_names(json_sources_, json_symbols_, universe_, json_name);
    mdagg::quote_json(out, q, names.sources, names.symbols, universe_.venue_symbol(q.source, q.symbol));
}

void RecordFormatter::bar_json(std::string& out, const Bar& bar) {
    refresh();
    const auto names = cached_names(json_sources_, json_symbols_, universe_, json_name);
    mdagg::bar_json(out, bar, names.sources, names.symbols);
}

void RecordFormatter::stale_json(std::string& out, const StaleMark& mark) {
    refresh();
    const auto names = cached_names(json_sources_, json_symbols_, universe_, json_name);
    mdagg::stale_json(out, mark, names.sources, names.symbols);
}

}  // namespace mdagg

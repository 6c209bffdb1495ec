// CSV lines for downstream tools that want columns. Like the JSON formatter this runs once per
// record on the aggregator strand: no DOM, no locale, no allocation beyond growing `out`.
#include <mdagg/sink.hpp>

#include "detail.hpp"

#include <charconv>
#include <string_view>

namespace mdagg {

const std::string_view quote_csv_header =
    "source,symbol,bid,ask,bid_size,ask_size,exchange_time,receive_time,seq,venue_symbol,via\n";
const std::string_view bar_csv_header =
    "symbol,start,end,open,high,low,close,updates,spread,best_bid,best_bid_source,best_ask,"
    "best_ask_source\n";

namespace sink_detail {

// RFC 4180 quoting when needed. Crash repair and the readers rely on one record per line, so
// a line break or other control byte inside a name (which the config never allows) becomes a
// space rather than a quoted line break.
char* put_csv_field(char* p, std::string_view s) noexcept {
    bool plain = true;  // nothing to quote or replace: the common case, copied whole
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f || c == ',' || c == '"') {
            plain = false;
            break;
        }
    }
    if (plain) return put(p, s);
    *p++ = '"';
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"') {
            *p++ = '"';
            *p++ = '"';
        } else if (u < 0x20 || u == 0x7f) {
            *p++ = ' ';
        } else {
            *p++ = c;
        }
    }
    *p++ = '"';
    return p;
}

}  // namespace sink_detail

namespace {

using namespace sink_detail;

template <class Names>
void quote_csv(std::string& out, const Quote& q, const Names& sources, const Names& symbols,
               const std::string* venue) {
    constexpr std::size_t fixed = 18 + 4 * Decimal::max_chars + 2 * rfc3339_max_chars + int_bound;
    LineBuffer buf(out, fixed + sources.bound(q.source) + symbols.bound(q.symbol) +
                            (venue ? csv_field_bound(venue->size()) : 0) +
                            (q.via ? csv_field_bound(q.via->size()) : 0));
    char* p = buf.begin();
    p = sources.put(p, q.source);
    *p++ = ',';
    p = symbols.put(p, q.symbol);
    *p++ = ',';
    p = q.bid.format(p);
    *p++ = ',';
    p = q.ask.format(p);
    *p++ = ',';
    if (q.has_bid_size) p = q.bid_size.format(p);
    *p++ = ',';
    if (q.has_ask_size) p = q.ask_size.format(p);
    *p++ = ',';
    if (q.exchange_time_ns != 0) p = put_rfc3339(p, q.exchange_time_ns);
    *p++ = ',';
    p = put_rfc3339(p, q.receive_time_ns);
    *p++ = ',';
    if (q.seq >= 0) p = put_int(p, q.seq);
    *p++ = ',';  // venue_symbol: empty when the venue uses the canonical name
    if (venue) p = put_csv_field(p, *venue);
    *p++ = ',';  // via: empty for a source without mirrors
    if (q.via) p = put_csv_field(p, *q.via);
    *p++ = '\n';
    buf.commit(p);
}

template <class Names>
void bar_csv(std::string& out, const Bar& bar, const Names& sources, const Names& symbols) {
    constexpr std::size_t fixed = 24 + 7 * Decimal::max_chars + 2 * rfc3339_max_chars + int_bound;
    LineBuffer buf(out, fixed + symbols.bound(bar.symbol) + sources.bound(bar.bbo.bid_source) +
                            sources.bound(bar.bbo.ask_source));
    char* p = buf.begin();
    p = symbols.put(p, bar.symbol);
    *p++ = ',';
    p = put_rfc3339(p, bar.start_ns);
    *p++ = ',';
    p = put_rfc3339(p, bar.end_ns);
    for (Decimal d : {bar.open, bar.high, bar.low, bar.close}) {
        *p++ = ',';
        p = d.format(p);
    }
    *p++ = ',';
    p = put_int(p, bar.updates);
    *p++ = ',';
    p = bar.last_spread.format(p);
    // best_bid,best_bid_source then best_ask,best_ask_source; both empty for a missing side.
    auto best_side = [&](bool has, Decimal price, SourceId source) {
        *p++ = ',';
        if (has) p = price.format(p);
        *p++ = ',';
        if (has) p = sources.put(p, source);
    };
    best_side(bar.bbo.has_bid, bar.bbo.bid, bar.bbo.bid_source);
    best_side(bar.bbo.has_ask, bar.bbo.ask, bar.bbo.ask_source);
    *p++ = '\n';
    buf.commit(p);
}

}  // namespace

void append_quote_csv(std::string& out, const Quote& q, const Universe& universe) {
    quote_csv(out, q, EscapedNames{universe.sources, csv_name}, EscapedNames{universe.symbols, csv_name},
              universe.venue_symbol(q.source, q.symbol));
}

void append_bar_csv(std::string& out, const Bar& bar, const Universe& universe) {
    bar_csv(out, bar, EscapedNames{universe.sources, csv_name}, EscapedNames{universe.symbols, csv_name});
}

void RecordFormatter::quote_csv(std::string& out, const Quote& q) {
    refresh();
    const auto names = cached_names(csv_sources_, csv_symbols_, universe_, csv_name);
    mdagg::quote_csv(out, q, names.sources, names.symbols, universe_.venue_symbol(q.source, q.symbol));
}

void RecordFormatter::bar_csv(std::string& out, const Bar& bar) {
    refresh();
    const auto names = cached_names(csv_sources_, csv_symbols_, universe_, csv_name);
    mdagg::bar_csv(out, bar, names.sources, names.symbols);
}

}  // namespace mdagg

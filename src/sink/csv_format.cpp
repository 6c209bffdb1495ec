// CSV lines for downstream tools that want columns. Like the JSON formatter this runs once per
// record on the aggregator strand: no DOM, no locale, no allocation beyond growing `out`.
#include <mdagg/sink.hpp>

#include "detail.hpp"

#include <charconv>
#include <string_view>

namespace mdagg {

const std::string_view quote_csv_header =
    "source,symbol,bid,ask,bid_size,ask_size,exchange_time,receive_time,seq\n";
const std::string_view bar_csv_header =
    "symbol,start,end,open,high,low,close,updates,spread,best_bid,best_bid_source,best_ask,"
    "best_ask_source\n";

namespace {

// RFC 4180 quoting when needed. Crash repair and the readers rely on one record per line, so
// a line break or other control byte inside a name (which the config never allows) becomes a
// space rather than a quoted line break.
void append_field(std::string& out, std::string_view s) {
    bool plain = true;  // nothing to quote or replace: the common case, copied whole
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f || c == ',' || c == '"') {
            plain = false;
            break;
        }
    }
    if (plain) {
        out.append(s);
        return;
    }
    out.push_back('"');
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"') {
            out += "\"\"";
        } else if (u < 0x20 || u == 0x7f) {
            out.push_back(' ');
        } else {
            out.push_back(c);
        }
    }
    out.push_back('"');
}

void append_name(std::string& out, const std::vector<std::string>& names, std::uint32_t id) {
    if (id < names.size()) append_field(out, names[id]);  // unknown id: empty field
}

void append_decimal(std::string& out, Decimal d) {
    char buf[Decimal::max_chars];
    out.append(buf, d.format(buf));
}

template <class Int>
void append_int(std::string& out, Int v) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

}  // namespace

void append_quote_csv(std::string& out, const Quote& q, const Universe& universe) {
    append_name(out, universe.sources, q.source);
    out.push_back(',');
    append_name(out, universe.symbols, q.symbol);
    out.push_back(',');
    append_decimal(out, q.bid);
    out.push_back(',');
    append_decimal(out, q.ask);
    out.push_back(',');
    if (q.has_bid_size) append_decimal(out, q.bid_size);
    out.push_back(',');
    if (q.has_ask_size) append_decimal(out, q.ask_size);
    out.push_back(',');
    if (q.exchange_time_ns != 0) sink_detail::append_rfc3339(out, q.exchange_time_ns);
    out.push_back(',');
    sink_detail::append_rfc3339(out, q.receive_time_ns);
    out.push_back(',');
    if (q.seq >= 0) append_int(out, q.seq);
    out.push_back('\n');
}

void append_bar_csv(std::string& out, const Bar& bar, const Universe& universe) {
    append_name(out, universe.symbols, bar.symbol);
    out.push_back(',');
    sink_detail::append_rfc3339(out, bar.start_ns);
    out.push_back(',');
    sink_detail::append_rfc3339(out, bar.end_ns);
    for (Decimal d : {bar.open, bar.high, bar.low, bar.close}) {
        out.push_back(',');
        append_decimal(out, d);
    }
    out.push_back(',');
    append_int(out, bar.updates);
    out.push_back(',');
    append_decimal(out, bar.last_spread);
    // best_bid,best_bid_source then best_ask,best_ask_source; both empty for a missing side.
    auto best_side = [&](bool has, Decimal price, SourceId source) {
        out.push_back(',');
        if (has) append_decimal(out, price);
        out.push_back(',');
        if (has) append_name(out, universe.sources, source);
    };
    best_side(bar.bbo.has_bid, bar.bbo.bid, bar.bbo.bid_source);
    best_side(bar.bbo.has_ask, bar.bbo.ask, bar.bbo.ask_source);
    out.push_back('\n');
}

}  // namespace mdagg

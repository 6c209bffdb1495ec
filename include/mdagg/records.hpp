// What the aggregator hands the sinks, and how the sinks write it: the records beside the Quote
// (bars, stale marks), the interface that receives them, and the output formats and policies
// the configuration chooses. The aggregator and the sinks both include this and neither
// includes the other, so the sink neither sees nor links the aggregator.
#pragma once

#include <mdagg/decimal.hpp>
#include <mdagg/quote.hpp>

#include <cstdint>

namespace mdagg {

struct BestBidOffer {
    Decimal bid;
    Decimal ask;
    SourceId bid_source = 0;
    SourceId ask_source = 0;
    bool has_bid = false;
    bool has_ask = false;
};

// OHLC of the mid price over [start_ns, end_ns) of receive time.
struct Bar {
    SymbolId symbol = 0;
    std::int64_t start_ns = 0;
    std::int64_t end_ns = 0;
    Decimal open, high, low, close;
    std::uint64_t updates = 0;
    Decimal last_spread;  // ask - bid of the last quote in the bar
    BestBidOffer bbo;     // consolidated across sources when the bar closed
};

// A (symbol, source) whose latest quote went stale (no fresh one for stale_after), or came
// back with a fresh quote.
struct StaleMark {
    SymbolId symbol = 0;
    SourceId source = 0;
    bool stale = true;
    std::int64_t last_receive_ns = 0;  // receive time of the quote that went stale / the fresh one
    std::int64_t at_ns = 0;            // when it was noticed
};

// Where the aggregator hands its records.
class RecordSink {
public:
    virtual ~RecordSink() = default;
    virtual void on_quote(const Quote& quote) = 0;
    virtual void on_bar(const Bar& bar) = 0;
    virtual void on_stale(const StaleMark& mark) = 0;
};

// ---- output choices (config `output:`, the sinks' options) ---------------------------------
// Their order is the order of the names the config accepts (src/config/config.cpp).

enum class RecordFormat { jsonl, csv };
enum class OverflowPolicy {
    drop_oldest,  // discard the oldest queued chunk of records to make room (default)
    drop_newest,  // refuse the new record
    block,        // wait up to overflow_wait for room, then drop the new record
};
enum class Compression { none, gzip, zstd };

}  // namespace mdagg

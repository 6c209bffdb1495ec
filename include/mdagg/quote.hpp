// The normalized quote every poller produces, and the names behind its ids.
#pragma once

#include <mdagg/decimal.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace mdagg {

using SourceId = std::uint32_t;
using SymbolId = std::uint32_t;

// Ids index these tables. A symbol name shared by two sources has one id, which is what
// lets the aggregator consolidate across sources.
struct Universe {
    std::vector<std::string> sources;
    std::vector<std::string> symbols;
};

// Trivially copyable so handing it to the aggregator's strand costs no allocation.
struct Quote {
    SourceId source = 0;
    SymbolId symbol = 0;
    Decimal bid;
    Decimal ask;
    Decimal bid_size;
    Decimal ask_size;
    bool has_bid_size = false;
    bool has_ask_size = false;
    std::int64_t exchange_time_ns = 0;  // 0: the venue sent none
    std::int64_t receive_time_ns = 0;   // local wall clock when the response was complete
    std::int64_t seq = -1;              // -1: not mapped
};

}  // namespace mdagg

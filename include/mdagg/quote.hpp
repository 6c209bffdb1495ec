// The normalized quote every poller produces, and the names behind its ids.
#pragma once

#include <mdagg/decimal.hpp>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace mdagg {

using SourceId = std::uint32_t;
using SymbolId = std::uint32_t;

// Ids index these tables. A symbol name shared by two sources has one id, which is what
// lets the aggregator consolidate across sources. A symbol that a reload removed gives its id
// back once nothing refers to it any more (no poller, no queued quote, no open bar: the
// daemon checks), and the next new symbol takes it, so config churn does not grow the tables
// indexed by id. A released id's name is empty until then.
struct Universe {
    std::vector<std::string> sources;
    std::vector<std::string> symbols;
    std::vector<SymbolId> free_symbols{};  // released ids, reused last in first out
    // Bumped whenever an id's name changes (released or reused), so caches keyed by id (the
    // formatters' escaped names) know to refresh; appending a new id does not change it.
    std::uint64_t revision = 0;
    // The venue's spelling of a symbol, by (source, symbol), where it differs from the
    // canonical name: quote records carry it as venue_symbol. Set from the config at start
    // and on every reload (lifecycle), on the aggregation side like the names above.
    std::unordered_map<std::uint64_t, std::string> venue_symbols{};

    static std::uint64_t venue_key(SourceId source, SymbolId symbol) noexcept {
        return (std::uint64_t{source} << 32) | symbol;
    }
    // Null when the source calls the symbol by its canonical name: no lookup at all when no
    // source renames any.
    const std::string* venue_symbol(SourceId source, SymbolId symbol) const {
        if (venue_symbols.empty()) return nullptr;
        const auto it = venue_symbols.find(venue_key(source, symbol));
        return it == venue_symbols.end() ? nullptr : &it->second;
    }

    SymbolId add_symbol(std::string name) {
        if (free_symbols.empty()) {
            symbols.push_back(std::move(name));
            return static_cast<SymbolId>(symbols.size() - 1);
        }
        const SymbolId id = free_symbols.back();
        free_symbols.pop_back();
        symbols[id] = std::move(name);
        ++revision;
        return id;
    }
    void release_symbol(SymbolId id) {
        std::string().swap(symbols[id]);  // frees a long name's heap block too
        free_symbols.push_back(id);
        ++revision;
    }
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
    // The host that served it ("host" or "host:port", as the url or mirror names it), for a
    // source with mirrors; null otherwise. Interned (intern_name): never freed, so a quote
    // queued across a reload that dropped the mirror still names it.
    const std::string* via = nullptr;
};

}  // namespace mdagg

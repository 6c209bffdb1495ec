// Latest quote per (symbol, source), consolidated best bid/offer per symbol, per-symbol bars.
// Sans-io and single-threaded: the daemon serializes calls on one strand.
#pragma once

#include <mdagg/decimal.hpp>
#include <mdagg/quote.hpp>
#include <mdagg/records.hpp>

#include <atomic>
#include <cstdint>
#include <optional>
#include <vector>

namespace mdagg {

class Aggregator {
public:
    // bar_interval_ns > 0. Quotes are forwarded to the sink only when forward_quotes is set.
    Aggregator(const Universe& universe, std::int64_t bar_interval_ns, RecordSink& sink,
               bool forward_quotes);

    // Accepts one quote: updates the latest per source, the consolidated BBO, and the bar of
    // the interval containing q.receive_time_ns (emitting the symbol's previous bar first
    // when q starts a new interval).
    void on_quote(const Quote& q);

    // Emits every open bar whose interval ended at or before now_ns (timer-driven, so quiet
    // symbols' bars still close).
    void close_bars(std::int64_t now_ns);

    // Emits every open bar, complete or partial, with end_ns = its interval end. For drain.
    void close_all_bars();

    // A source's latest quote older than `ns` (by receive time) is stale: it leaves the
    // consolidated best bid/offer until a fresh one arrives. 0 (the default) = never.
    void set_stale_after(SourceId source, std::int64_t ns);
    // Marks what went stale by now_ns (timer-driven), emitting a StaleMark for each.
    void expire_stale(std::int64_t now_ns);
    // These two may be read from any thread (metrics, summaries).
    std::size_t stale_count() const noexcept { return stale_count_.load(std::memory_order_relaxed); }
    // Symbols with at least one quote, fresh or stale.
    std::size_t symbols_quoted() const noexcept { return symbols_quoted_.load(std::memory_order_relaxed); }
    // Makes room for the symbols and sources appended to the Universe since construction
    // (a config reload). Until then their quotes are rejected.
    void grow();
    // A symbol a reload removed, once no poller holds it and every quote of it was handed
    // to on_quote: its open bar is emitted now (no quote can change it any more), with
    // end_ns = its interval's end, and its state is dropped. The id may then go to another
    // symbol, which starts with an empty row.
    void release_symbol(SymbolId symbol);

    const Quote* latest(SymbolId symbol, SourceId source) const;
    BestBidOffer best(SymbolId symbol) const;

    std::uint64_t quotes_accepted() const noexcept { return quotes_accepted_; }
    std::uint64_t bars_emitted() const noexcept { return bars_emitted_; }
    // Quotes ignored because their symbol or source id is outside the Universe.
    std::uint64_t quotes_rejected() const noexcept { return quotes_rejected_; }

private:
    struct OpenBar {
        Bar bar;
        bool open = false;
    };
    // The latest quote of one source for the symbol of its row, and whether it is stale.
    struct Cell {
        SourceId source = 0;
        bool stale = false;
        Quote quote;
    };
    // A symbol's cells, sorted by source id: only the sources that quoted it, so the table
    // grows with the (symbol, source) pairs in use, not with symbols x sources.
    using Row = std::vector<Cell>;
    static Cell* find(Row& row, SourceId source) noexcept;
    void update_best(SymbolId symbol);
    void emit(OpenBar& ob);

    const Universe& universe_;
    std::int64_t bar_interval_ns_;
    RecordSink& sink_;
    bool forward_quotes_;
    std::vector<Row> rows_;                     // per symbol
    std::vector<std::int64_t> stale_after_ns_;  // per source; its size bounds source ids
    std::atomic<std::size_t> stale_count_{0};
    std::atomic<std::size_t> symbols_quoted_{0};
    std::vector<BestBidOffer> best_;
    std::vector<OpenBar> bars_;  // per symbol; its size bounds symbol ids
    std::uint64_t quotes_accepted_ = 0;
    std::uint64_t bars_emitted_ = 0;
    std::uint64_t quotes_rejected_ = 0;
};

}  // namespace mdagg

// Policies (the header states the contract, these are the choices inside it):
// - A zero price is "no quote" on that side: it never makes a best bid/ask and a quote needs
//   both sides non-zero to move a bar. A one-sided quote still replaces the source's latest,
//   so a source that stops quoting a side also stops holding the best on that side.
// - BBO ties go to the lower source id, so the result does not depend on arrival order.
// - Bars never go back in time: a quote whose receive time is before the symbol's open bar
//   (or before the end of its last emitted bar) counts in the open bar (or opens the next
//   interval) instead of reopening or re-emitting a past interval; receive times come from
//   several pollers' wall clocks and a step back must not produce duplicate bars.
// - A stale quote stays the source's latest (latest() still returns it) but leaves the BBO;
//   bars are unaffected, since they only ever see quotes as they arrive.
// - Any accepted quote advances the symbol's time, so a one-sided quote in a later interval
//   still emits the open bar; it just does not open a new one.
// - A released symbol's open bar is emitted at the release rather than at its interval's
//   end: no quote can reach it any more, so only its best bid/offer is taken earlier.
#include <mdagg/aggregate.hpp>

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace mdagg {
namespace {

constexpr std::int64_t no_time = std::numeric_limits<std::int64_t>::min();

// Floor division: receive times before the epoch still land in [start, start + I).
std::int64_t interval_start(std::int64_t t, std::int64_t interval) {
    std::int64_t q = t / interval;
    if (t % interval < 0) --q;
    return q * interval;
}

}  // namespace

Aggregator::Aggregator(const Universe& universe, std::int64_t bar_interval_ns, RecordSink& sink,
                       bool forward_quotes)
    : universe_(universe),
      bar_interval_ns_(bar_interval_ns),
      sink_(sink),
      forward_quotes_(forward_quotes) {
    if (bar_interval_ns <= 0) throw std::invalid_argument("Aggregator: bar interval must be > 0");
    grow();
}

// Sizes are taken from the Universe only here; the hot path checks ids against the tables,
// so a Universe grown by a caller that has not called grow() yet cannot be read past them.
void Aggregator::grow() {
    const std::size_t symbols = universe_.symbols.size();
    const std::size_t sources = universe_.sources.size();
    if (symbols < bars_.size() || sources < stale_after_ns_.size())
        throw std::logic_error("Aggregator::grow: the universe shrank");
    rows_.resize(symbols);
    best_.resize(symbols);
    const std::size_t old_symbols = bars_.size();
    bars_.resize(symbols);
    // A closed OpenBar keeps the end of the last emitted interval; no_time means none yet.
    for (std::size_t i = old_symbols; i < symbols; ++i) bars_[i].bar.end_ns = no_time;
    stale_after_ns_.resize(sources, 0);
}

// A symbol has a handful of sources at most: a scan beats any index.
Aggregator::Cell* Aggregator::find(Row& row, SourceId source) noexcept {
    for (Cell& c : row)
        if (c.source == source) return &c;
    return nullptr;
}

void Aggregator::on_quote(const Quote& q) {
    if (q.symbol >= bars_.size() || q.source >= stale_after_ns_.size()) {
        ++quotes_rejected_;
        return;
    }
    ++quotes_accepted_;
    OpenBar& ob = bars_[q.symbol];

    // Place the quote in time first, so a bar it closes carries the BBO from before it.
    std::int64_t t = q.receive_time_ns;
    if (ob.open) {
        if (t >= ob.bar.end_ns) {
            emit(ob);
        } else if (t < ob.bar.start_ns) {
            t = ob.bar.start_ns;
        }
    }
    if (!ob.open && ob.bar.end_ns != no_time && t < ob.bar.end_ns) t = ob.bar.end_ns;

    Row& row = rows_[q.symbol];
    Cell* cell = find(row, q.source);
    if (cell) {
        cell->quote = q;
    } else {
        // The first quote of this (symbol, source): the only time the row allocates, and a
        // reused id's row keeps its capacity.
        if (row.empty()) symbols_quoted_.fetch_add(1, std::memory_order_relaxed);
        auto at = std::find_if(row.begin(), row.end(), [&](const Cell& c) { return c.source > q.source; });
        cell = &*row.insert(at, Cell{q.source, false, q});
    }
    if (cell->stale) {
        cell->stale = false;
        stale_count_.fetch_sub(1, std::memory_order_relaxed);
        sink_.on_stale({q.symbol, q.source, false, q.receive_time_ns, q.receive_time_ns});
    }
    update_best(q.symbol);

    if (!q.bid.is_zero() && !q.ask.is_zero()) {
        const std::optional<Decimal> mid = Decimal::midpoint(q.bid, q.ask);
        const std::optional<Decimal> spread = Decimal::difference(q.ask, q.bid);
        // Unrepresentable results (int64 overflow) leave the bar as it was rather than
        // recording a wrong price.
        if (mid && spread) {
            Bar& b = ob.bar;
            if (!ob.open) {
                ob.open = true;
                b.symbol = q.symbol;
                b.start_ns = interval_start(t, bar_interval_ns_);
                b.end_ns = b.start_ns + bar_interval_ns_;
                b.open = b.high = b.low = *mid;
                b.updates = 0;
                b.bbo = {};
            } else {
                if (*mid > b.high) b.high = *mid;
                if (*mid < b.low) b.low = *mid;
            }
            b.close = *mid;
            b.last_spread = *spread;
            ++b.updates;
        }
    }

    if (forward_quotes_) sink_.on_quote(q);
}

void Aggregator::release_symbol(SymbolId symbol) {
    if (symbol >= bars_.size()) return;
    if (bars_[symbol].open) emit(bars_[symbol]);
    Row& row = rows_[symbol];
    for (const Cell& c : row)
        if (c.stale) stale_count_.fetch_sub(1, std::memory_order_relaxed);
    if (!row.empty()) symbols_quoted_.fetch_sub(1, std::memory_order_relaxed);
    row.clear();  // keeps its capacity for the id's next symbol
    best_[symbol] = {};
    bars_[symbol] = {};
    bars_[symbol].bar.end_ns = no_time;
}

void Aggregator::close_bars(std::int64_t now_ns) {
    for (OpenBar& ob : bars_) {
        if (ob.open && ob.bar.end_ns <= now_ns) emit(ob);
    }
}

void Aggregator::close_all_bars() {
    for (OpenBar& ob : bars_) {
        if (ob.open) emit(ob);
    }
}

void Aggregator::set_stale_after(SourceId source, std::int64_t ns) {
    if (source < stale_after_ns_.size()) stale_after_ns_[source] = ns;
}

void Aggregator::expire_stale(std::int64_t now_ns) {
    for (SymbolId symbol = 0; symbol < rows_.size(); ++symbol) {
        for (Cell& c : rows_[symbol]) {
            const std::int64_t limit = stale_after_ns_[c.source];
            if (limit <= 0 || c.stale) continue;
            const std::int64_t received = c.quote.receive_time_ns;
            if (now_ns - received <= limit) continue;
            c.stale = true;
            stale_count_.fetch_add(1, std::memory_order_relaxed);
            update_best(symbol);
            sink_.on_stale({symbol, c.source, true, received, now_ns});
        }
    }
}

const Quote* Aggregator::latest(SymbolId symbol, SourceId source) const {
    if (symbol >= rows_.size()) return nullptr;
    for (const Cell& c : rows_[symbol])
        if (c.source == source) return &c.quote;
    return nullptr;
}

BestBidOffer Aggregator::best(SymbolId symbol) const {
    return symbol < best_.size() ? best_[symbol] : BestBidOffer{};
}

// Recomputed from every source's latest (a handful per symbol) rather than patched
// incrementally: a source withdrawing or worsening the best must hand it to the runner-up.
void Aggregator::update_best(SymbolId symbol) {
    BestBidOffer b;
    // Cells are in source id order and the comparisons strict, so ties keep the lower id.
    for (const Cell& c : rows_[symbol]) {
        if (c.stale) continue;
        const Quote& q = c.quote;
        if (!q.bid.is_zero() && (!b.has_bid || q.bid > b.bid)) {
            b.bid = q.bid;
            b.bid_source = c.source;
            b.has_bid = true;
        }
        if (!q.ask.is_zero() && (!b.has_ask || q.ask < b.ask)) {
            b.ask = q.ask;
            b.ask_source = c.source;
            b.has_ask = true;
        }
    }
    best_[symbol] = b;
}

void Aggregator::emit(OpenBar& ob) {
    ob.bar.bbo = best_[ob.bar.symbol];
    ob.open = false;  // before the call: a sink that throws must not get the bar twice
    ++bars_emitted_;
    sink_.on_bar(ob.bar);
}

}  // namespace mdagg

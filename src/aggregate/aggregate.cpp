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
#include <mdagg/aggregator.hpp>

#include <limits>
#include <stdexcept>

namespace mdagg {
namespace {

constexpr std::int64_t no_time = std::numeric_limits<std::int64_t>::min();

// Sources per symbol, derived from the tables sized at construction rather than read from
// universe_, which the caller could grow later: ids are checked against what was allocated.
template <class Cells, class Rows>
std::size_t per_row(const Cells& cells, const Rows& rows) {
    return rows.empty() ? 0 : cells.size() / rows.size();
}

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
      forward_quotes_(forward_quotes),
      latest_(universe.symbols.size() * universe.sources.size()),
      stale_(latest_.size(), 0),
      stale_after_ns_(universe.sources.size(), 0),
      best_(universe.symbols.size()),
      bars_(universe.symbols.size()) {
    if (bar_interval_ns <= 0) throw std::invalid_argument("Aggregator: bar interval must be > 0");
    // A closed OpenBar keeps the end of the last emitted interval; no_time means none yet.
    for (OpenBar& ob : bars_) ob.bar.end_ns = no_time;
}

void Aggregator::grow() {
    const std::size_t old_sources = per_row(latest_, bars_);
    const std::size_t symbols = universe_.symbols.size();
    const std::size_t sources = universe_.sources.size();
    if (symbols < bars_.size() || sources < old_sources) throw std::logic_error("Aggregator::grow: the universe shrank");
    if (sources != old_sources) {
        std::vector<std::optional<Quote>> latest(symbols * sources);
        std::vector<std::uint8_t> stale(symbols * sources, 0);
        for (std::size_t sym = 0; sym < bars_.size(); ++sym)
            for (std::size_t src = 0; src < old_sources; ++src) {
                latest[sym * sources + src] = std::move(latest_[sym * old_sources + src]);
                stale[sym * sources + src] = stale_[sym * old_sources + src];
            }
        latest_ = std::move(latest);
        stale_ = std::move(stale);
    } else {
        latest_.resize(symbols * sources);
        stale_.resize(symbols * sources, 0);
    }
    stale_after_ns_.resize(sources, 0);
    best_.resize(symbols);
    const std::size_t old_symbols = bars_.size();
    bars_.resize(symbols);
    for (std::size_t i = old_symbols; i < symbols; ++i) bars_[i].bar.end_ns = no_time;
}

void Aggregator::on_quote(const Quote& q) {
    const std::size_t n_sources = per_row(latest_, bars_);
    if (q.symbol >= bars_.size() || q.source >= n_sources) {
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

    const std::size_t cell = std::size_t{q.symbol} * n_sources + q.source;
    if (!latest_[cell]) {
        bool first = true;
        for (std::size_t s = 0; s < n_sources; ++s) first = first && !latest_[cell - q.source + s];
        if (first) symbols_quoted_.fetch_add(1, std::memory_order_relaxed);
    }
    latest_[cell] = q;
    if (stale_[cell]) {
        stale_[cell] = 0;
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
    const std::size_t n = per_row(latest_, bars_);
    for (std::size_t cell = 0; cell < latest_.size(); ++cell) {
        const auto source = static_cast<SourceId>(cell % n);
        const std::int64_t limit = stale_after_ns_[source];
        if (limit <= 0 || stale_[cell] || !latest_[cell]) continue;
        const std::int64_t received = latest_[cell]->receive_time_ns;
        if (now_ns - received <= limit) continue;
        stale_[cell] = 1;
        stale_count_.fetch_add(1, std::memory_order_relaxed);
        const auto symbol = static_cast<SymbolId>(cell / n);
        update_best(symbol);
        sink_.on_stale({symbol, source, true, received, now_ns});
    }
}

const Quote* Aggregator::latest(SymbolId symbol, SourceId source) const {
    const std::size_t n_sources = per_row(latest_, bars_);
    if (symbol >= bars_.size() || source >= n_sources) return nullptr;
    const std::optional<Quote>& q = latest_[std::size_t{symbol} * n_sources + source];
    return q ? &*q : nullptr;
}

BestBidOffer Aggregator::best(SymbolId symbol) const {
    return symbol < best_.size() ? best_[symbol] : BestBidOffer{};
}

// Recomputed from every source's latest (a handful per symbol) rather than patched
// incrementally: a source withdrawing or worsening the best must hand it to the runner-up.
void Aggregator::update_best(SymbolId symbol) {
    const std::size_t n = per_row(latest_, bars_);
    const std::optional<Quote>* row = latest_.data() + std::size_t{symbol} * n;
    BestBidOffer b;
    const std::uint8_t* stale = stale_.data() + std::size_t{symbol} * n;
    for (SourceId s = 0; s < n; ++s) {
        if (!row[s] || stale[s]) continue;
        const Quote& q = *row[s];
        // Strict comparisons keep the lower source id on ties.
        if (!q.bid.is_zero() && (!b.has_bid || q.bid > b.bid)) {
            b.bid = q.bid;
            b.bid_source = s;
            b.has_bid = true;
        }
        if (!q.ask.is_zero() && (!b.has_ask || q.ask < b.ask)) {
            b.ask = q.ask;
            b.ask_source = s;
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

// Hedged requests' counters (SourceStats::hedges_*) copied out, summed, and their families in
// /metrics (docs/polling.md#hedged-requests). Kept apart from poll_metrics.cpp, which calls in.
#include <mdagg/poll_metrics.hpp>

#include "hedge.hpp"

namespace mdagg {

namespace {
constexpr auto relaxed = std::memory_order_relaxed;
}  // namespace

void read_hedge_counters(const SourceStats& st, PollCounters& c) {
    c.hedges_sent = st.hedges_sent.load(relaxed);
    c.hedges_refused_budget = st.hedges_refused_budget.load(relaxed);
    c.hedges_refused_host = st.hedges_refused_host.load(relaxed);
    c.hedges_failed = st.hedges_failed.load(relaxed);
    c.hedges_unsent = st.hedges_unsent.load(relaxed);
    for (std::size_t r = 0; r < c.hedge_wins.size(); ++r) c.hedge_wins[r] = st.hedge_wins[r].load(relaxed);
    c.losers_cancelled = st.losers_cancelled.load(relaxed);
    c.losers_discarded = st.losers_discarded.load(relaxed);
}

void add_hedge_counters(PollCounters& to, const PollCounters& o) {
    to.hedges_sent += o.hedges_sent;
    to.hedges_refused_budget += o.hedges_refused_budget;
    to.hedges_refused_host += o.hedges_refused_host;
    to.hedges_failed += o.hedges_failed;
    to.hedges_unsent += o.hedges_unsent;
    for (std::size_t r = 0; r < to.hedge_wins.size(); ++r) to.hedge_wins[r] += o.hedge_wins[r];
    to.losers_cancelled += o.losers_cancelled;
    to.losers_discarded += o.losers_discarded;
}

// Only sources with mirrors (the only ones that can hedge) get series.
void write_hedge_metrics(PrometheusWriter& w, const PollStats& stats) {
    const auto& names = stats.source_names;
    auto hedged = [&](SourceId s) { return s < stats.route_names.size() && stats.route_names[s].size() > 1; };
    w.family("mdagg_source_hedges_total", "counter",
             "Hedged requests: sent, refused (budget: no max_extra left; host: no mirror admitted it), "
             "failed (the hedge failed, the first request went on), unsent (it ended before its request went out: "
             "connect refused or timed out).");
    for (SourceId s = 0; s < stats.sources.size(); ++s) {
        if (!hedged(s)) continue;
        const auto& c = stats.sources[s];
        w.sample("mdagg_source_hedges_total", {{"source", names[s]}, {"outcome", "sent"}}, static_cast<double>(c.hedges_sent));
        w.sample("mdagg_source_hedges_total", {{"source", names[s]}, {"outcome", "refused_budget"}},
                 static_cast<double>(c.hedges_refused_budget));
        w.sample("mdagg_source_hedges_total", {{"source", names[s]}, {"outcome", "refused_host"}},
                 static_cast<double>(c.hedges_refused_host));
        w.sample("mdagg_source_hedges_total", {{"source", names[s]}, {"outcome", "failed"}}, static_cast<double>(c.hedges_failed));
        w.sample("mdagg_source_hedges_total", {{"source", names[s]}, {"outcome", "unsent"}}, static_cast<double>(c.hedges_unsent));
    }
    w.family("mdagg_source_hedge_wins_total", "counter", "Hedges whose answer came first, by the mirror that served it (via).");
    for (SourceId s = 0; s < stats.sources.size(); ++s) {
        if (!hedged(s)) continue;
        const auto& routes = stats.route_names[s];
        for (std::size_t r = 0; r < routes.size() && r < max_poll_routes; ++r)  // by host (Route::poll_slot)
            w.sample("mdagg_source_hedge_wins_total", {{"source", names[s]}, {"via", routes[r]}},
                     static_cast<double>(stats.sources[s].hedge_wins[r]));
    }
    w.family("mdagg_source_hedge_losers_total", "counter",
             "The slower leg of a hedged poll: cancelled (its connection closed) or discarded (its answer read and "
             "dropped, the connection kept).");
    for (SourceId s = 0; s < stats.sources.size(); ++s) {
        if (!hedged(s)) continue;
        const auto& c = stats.sources[s];
        w.sample("mdagg_source_hedge_losers_total", {{"source", names[s]}, {"outcome", "cancelled"}},
                 static_cast<double>(c.losers_cancelled));
        w.sample("mdagg_source_hedge_losers_total", {{"source", names[s]}, {"outcome", "discarded"}},
                 static_cast<double>(c.losers_discarded));
    }
}

}  // namespace mdagg

namespace mdagg::detail {

const char* to_string(HedgeRace r) noexcept {
    switch (r) {
        case HedgeRace::idle: return "idle";
        case HedgeRace::racing: return "racing";
        case HedgeRace::hedge_won: return "hedge_won";
        case HedgeRace::primary_won: return "primary_won";
        case HedgeRace::abandoned: return "abandoned";
    }
    return "unknown";
}

}  // namespace mdagg::detail

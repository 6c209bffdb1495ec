// Private to lifecycle: what a reload changes, as plain data computed from the running and
// the reloaded config (and the symbol ids in use), so tests need no daemon. The daemon then
// applies it: first the universe (on the aggregation strand), then the pollers, in this order.
#pragma once

#include <mdagg/config.hpp>
#include <mdagg/quote.hpp>

#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace mdagg::lifecycle {

// A source whose pollers must restart: anything but its symbols, their venue names, tags and
// max_in_flight changed, or its host entry is another one (another guard), wherever it sits in the list.
bool source_changed(const SourceConfig& a, const HostConfig& a_host, const SourceConfig& b,
                    const HostConfig& b_host);

// A symbol's id goes back to the universe in two steps, so that no record ever shows another
// symbol's name: a reload removes the symbol (it is retiring from then on); a later reload
// that finds none of its pollers left (their last quotes are queued for the aggregator by
// then) has the aggregator write its last bar and drop its state, and frees the id for that
// reload's new symbols. A symbol that comes back while retiring keeps its id.
struct SymbolRelease {
    std::vector<SymbolId> release;           // free now, in this order
    std::unordered_set<SymbolId> retiring;   // still waiting for their pollers
};
// `held`: PollerGroup::symbols_held() (sorted); `wanted`: the reloaded config's symbols.
SymbolRelease release_symbols(const std::unordered_set<SymbolId>& retiring, const Universe& universe,
                              const std::unordered_set<std::string_view>& wanted,
                              const std::vector<SymbolId>& held);

// Fills universe.venue_symbols from the sources' venue names (the sources and symbols must
// already have their ids): at start and, on the aggregation strand, on every reload.
void set_venue_symbols(Universe& universe, const std::vector<SourceConfig>& sources);

struct ReloadPlan {
    // The universe. Source ids are only ever appended; symbol ids of released symbols are
    // reused by the new ones.
    std::vector<std::string> new_sources;  // in config order
    std::vector<std::string> new_symbols;  // in config order, each once
    SymbolRelease symbols;
    bool universe_changes() const {
        return !new_sources.empty() || !new_symbols.empty() || !symbols.release.empty();
    }

    // The pollers, applied in this order. A removed source's pollers retire (a poll in flight
    // finishes and is delivered); a new one's start; a changed one's restart; an unchanged
    // one's removed symbols retire, its new ones start, its tags update in place.
    std::vector<std::string> removed_sources;
    enum class Step { add, restart, update };
    struct SourceStep {
        Step step = Step::add;
        std::size_t source = 0;                   // index into the reloaded sources
        std::vector<std::string> added_symbols;   // update: symbols it did not poll before
        std::vector<std::string> removed_symbols; // update: symbols it polls no more
        // update: symbols whose venue name changed: their pollers restart (the old one's poll
        // in flight finishes and is delivered), the others keep their connection and schedule
        std::vector<std::string> renamed_symbols;
    };
    std::vector<SourceStep> steps;  // one per reloaded source, in its order
    // Symbols no source polls any more: retiring from now on (their ids wait for their pollers).
    std::vector<std::string> dropped_symbols;
};

// `running`/`running_hosts`: the sources in effect and the hosts their `host` indexes;
// `retiring`/`held` as for release_symbols. Reads `universe` only.
ReloadPlan plan_reload(const std::vector<SourceConfig>& running, const std::vector<HostConfig>& running_hosts,
                       const std::vector<SourceConfig>& loaded, const std::vector<HostConfig>& loaded_hosts,
                       const Universe& universe, const std::unordered_set<SymbolId>& retiring,
                       const std::vector<SymbolId>& held);

}  // namespace mdagg::lifecycle

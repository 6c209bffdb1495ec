#include "reload_plan.hpp"

#include <algorithm>
#include <unordered_map>

namespace mdagg::lifecycle {

bool source_changed(const SourceConfig& a, const HostConfig& a_host, const SourceConfig& b,
                    const HostConfig& b_host) {
    if (a_host.host != b_host.host || a_host.port != b_host.port) return true;
    SourceConfig x = a, y = b;
    for (SourceConfig* c : {&x, &y}) {
        c->symbols.clear();
        c->tags.clear();
        c->symbol_tags.clear();
        c->venue_symbols.clear();  // per symbol: plan_source restarts only the renamed ones
        c->symbol_map.clear();
        c->max_in_flight = 0;  // applied in place (it defaults to the symbol count)
        c->host = 0;           // an index into its own config's hosts: compared above
    }
    return !(x == y);
}

SymbolRelease release_symbols(const std::unordered_set<SymbolId>& retiring, const Universe& universe,
                              const std::unordered_set<std::string_view>& wanted,
                              const std::vector<SymbolId>& held) {
    SymbolRelease out;
    out.retiring = retiring;
    for (const SymbolId id : retiring) {
        if (wanted.contains(universe.symbols[id])) {
            out.retiring.erase(id);
        } else if (!std::binary_search(held.begin(), held.end(), id)) {
            out.release.push_back(id);
            out.retiring.erase(id);
        }
    }
    return out;
}

void set_venue_symbols(Universe& universe, const std::vector<SourceConfig>& sources) {
    universe.venue_symbols.clear();
    if (std::all_of(sources.begin(), sources.end(), [](const SourceConfig& s) { return s.venue_symbols.empty(); }))
        return;
    std::unordered_map<std::string_view, SymbolId> symbol_ids;
    for (SymbolId i = 0; i < universe.symbols.size(); ++i)
        if (!universe.symbols[i].empty()) symbol_ids.emplace(universe.symbols[i], i);
    for (SourceId s = 0; s < universe.sources.size(); ++s) {
        const auto src = std::find_if(sources.begin(), sources.end(),
                                      [&](const SourceConfig& c) { return c.name == universe.sources[s]; });
        if (src == sources.end()) continue;
        for (const auto& [name, venue] : src->venue_symbols)
            if (const auto id = symbol_ids.find(name); id != symbol_ids.end())
                universe.venue_symbols.emplace(Universe::venue_key(s, id->second), venue);
    }
}

namespace {

void plan_universe(ReloadPlan& plan, const std::vector<SourceConfig>& loaded, const Universe& universe) {
    std::unordered_set<std::string_view> sources(universe.sources.begin(), universe.sources.end());
    std::unordered_set<std::string_view> symbols;
    for (auto& s : universe.symbols)
        if (!s.empty()) symbols.insert(s);
    std::unordered_set<std::string_view> adding;
    for (auto& src : loaded) {
        if (!sources.contains(src.name) &&
            std::find(plan.new_sources.begin(), plan.new_sources.end(), src.name) == plan.new_sources.end())
            plan.new_sources.push_back(src.name);
        for (auto& sym : src.symbols)
            if (!symbols.contains(sym) && adding.insert(sym).second) plan.new_symbols.push_back(sym);
    }
}

ReloadPlan::SourceStep plan_source(std::size_t index, const SourceConfig& src, const HostConfig& host,
                                   const SourceConfig* old, const std::vector<HostConfig>& running_hosts) {
    ReloadPlan::SourceStep step;
    step.source = index;
    if (!old) return step;
    // A batch source's requests are built from its symbol list: any change to it rebuilds them.
    const bool batch_symbols_changed = src.batch && old->symbols != src.symbols;
    if (batch_symbols_changed || source_changed(*old, running_hosts.at(old->host), src, host)) {
        step.step = ReloadPlan::Step::restart;
        return step;
    }
    step.step = ReloadPlan::Step::update;
    std::unordered_set<std::string_view> kept(src.symbols.begin(), src.symbols.end());
    std::unordered_set<std::string_view> had(old->symbols.begin(), old->symbols.end());
    for (auto& sym : old->symbols)
        if (!kept.contains(sym)) step.removed_symbols.push_back(sym);
    for (auto& sym : src.symbols)
        if (!had.contains(sym))
            step.added_symbols.push_back(sym);
        else if (src.venue_symbol(sym) != old->venue_symbol(sym))
            step.renamed_symbols.push_back(sym);
    return step;
}

}  // namespace

ReloadPlan plan_reload(const std::vector<SourceConfig>& running, const std::vector<HostConfig>& running_hosts,
                       const std::vector<SourceConfig>& loaded, const std::vector<HostConfig>& loaded_hosts,
                       const Universe& universe, const std::unordered_set<SymbolId>& retiring,
                       const std::vector<SymbolId>& held) {
    ReloadPlan plan;
    std::unordered_set<std::string_view> wanted;
    for (auto& src : loaded) wanted.insert(src.symbols.begin(), src.symbols.end());
    plan.symbols = release_symbols(retiring, universe, wanted, held);
    plan_universe(plan, loaded, universe);

    std::unordered_map<std::string_view, const SourceConfig*> old_by_name;
    for (auto& src : running) old_by_name.emplace(src.name, &src);
    std::unordered_set<std::string_view> new_names;
    for (auto& src : loaded) new_names.insert(src.name);
    for (auto& old : running)
        if (!new_names.contains(old.name)) plan.removed_sources.push_back(old.name);
    for (std::size_t i = 0; i < loaded.size(); ++i) {
        const auto it = old_by_name.find(loaded[i].name);
        plan.steps.push_back(plan_source(i, loaded[i], loaded_hosts.at(loaded[i].host),
                                         it == old_by_name.end() ? nullptr : it->second, running_hosts));
    }
    std::unordered_set<std::string_view> dropped;
    for (auto& old : running)
        for (auto& sym : old.symbols)
            if (!wanted.contains(sym) && dropped.insert(sym).second) plan.dropped_symbols.push_back(sym);
    return plan;
}

}  // namespace mdagg::lifecycle

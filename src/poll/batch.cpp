// Batch requests: a `batch:` source's symbols split into requests of batch.size, one poller
// each; its answer's entries routed to their members, each member kept like a single poller
// (task table rows, symbol metrics) and each good entry handed on as one quote.
#include "poller_group.hpp"

#include <algorithm>

namespace mdagg {

std::string_view to_string(BatchEntryCount c) noexcept {
    switch (c) {
        case BatchEntryCount::unknown: return "unknown";
        case BatchEntryCount::missing: return "missing";
        case BatchEntryCount::duplicate: return "duplicate";
        case BatchEntryCount::bad_symbol: return "bad_symbol";
        case BatchEntryCount::count_: break;
    }
    return "unknown";
}

namespace detail {

namespace {

std::vector<std::string> venue_names(const SourceConfig& source,
                                     const std::vector<std::pair<std::string, SymbolId>>& symbols) {
    std::vector<std::string> out;
    out.reserve(symbols.size());
    for (const auto& [name, id] : symbols) out.push_back(venue_name(source, name));
    return out;
}

}  // namespace

BatchRequest::BatchRequest(const SourceConfig& source, std::size_t batch_index,
                           const std::vector<std::pair<std::string, SymbolId>>& symbols)
    : index(batch_index),
      mapper(*source.batch, source.fields),
      members(venue_names(source, symbols)),
      member(std::make_unique<BatchMember[]>(symbols.size())) {
    for (std::size_t m = 0; m < symbols.size(); ++m) {
        member[m].symbol = symbols[m].second;
        member[m].name = symbols[m].first;
    }
    results.resize(symbols.size());
    duplicate_key.append(source.name).append("/duplicate_symbol");
    bad_symbol_key.append(source.name).append("/symbol_not_string");
}

std::string BatchRequest::target_on(const Url& url, const SourceConfig& source) const {
    if (!source.batch->symbols_in_url) return url.target_for("");
    std::size_t active = 0;
    for (std::size_t m = 0; m < members.size(); ++m)
        active += member[m].control.load(std::memory_order_acquire) == PollerControl::active ? 1 : 0;
    if (active == members.size() || active == 0) return url.target_for_symbols(members.venue_names(), *source.batch);
    std::vector<std::string> asked;  // only on a pause or resume, never per tick
    asked.reserve(active);
    for (std::size_t m = 0; m < members.size(); ++m)
        if (member[m].control.load(std::memory_order_acquire) == PollerControl::active)
            asked.push_back(members.venue_name(m));
    return url.target_for_symbols(asked, *source.batch);
}

void add_member_rows(const BatchRequest& batch, const PollerSnapshot& row, std::vector<PollerSnapshot>& out) {
    constexpr auto r = std::memory_order_relaxed;
    for (std::size_t m = 0; m < batch.members.size(); ++m) {
        const BatchMember& member = batch.member[m];
        PollerSnapshot s = row;
        s.symbol = member.name;
        s.batch = batch.index;
        s.batch_symbols = batch.members.size();
        // The request's failures are the member's too; its own are its entry's.
        s.completed = member.completed.load(r);
        s.failed = row.failed + member.failed.load(r);
        s.last_success_ns = member.last_success_ns.load(r);
        const std::int64_t own_error_ns = member.last_error_ns.load(r);
        if (own_error_ns > row.last_error_ns) {
            s.last_error_ns = own_error_ns;
            s.last_error = static_cast<PollError>(member.last_error.load(r));
        }
        if (row.state == PollerState::completed) s.state = member.state.load(r);
        if (row.control == PollerControl::active) s.control = member.control.load(r);
        out.push_back(std::move(s));
    }
}

// A member paused or cancelled on its own has its entries dropped at once, and where the url
// spells {symbols} it is left out of the request from the poller's next poll on (resumed, it is
// asked for again): the venue is asked for less. Without {symbols} the venue answers every
// instrument whatever is asked, so only the dropping applies.
void Registry::change_batch_control(Poller& p, const PollerFilter& filter, std::initializer_list<PollerControl> from,
                                    PollerControl to, ControlResult& result) {
    BatchRequest& b = *p.batch;
    std::size_t selected = 0;
    for (std::size_t m = 0; m < b.members.size(); ++m)
        selected += filter(p.source.config.name, b.member[m].name, p.tags) ? 1 : 0;
    if (selected == 0) return;
    result.matched += selected;
    auto change = [&](std::atomic<PollerControl>& control) {
        for (PollerControl f : from) {
            auto expected = f;
            if (control.compare_exchange_strong(expected, to, std::memory_order_acq_rel)) return true;
        }
        return false;
    };
    if (selected == b.members.size()) {
        if (!change(p.control)) return;
        result.changed += selected;
        sync_reserve(p);
        if (to == PollerControl::cancelled) post_interrupt(p, false);
        return;
    }
    std::size_t changed = 0;
    for (std::size_t m = 0; m < b.members.size(); ++m)
        if (filter(p.source.config.name, b.member[m].name, p.tags) && change(b.member[m].control)) ++changed;
    result.changed += changed;
    if (changed) b.members_changed.store(true, std::memory_order_release);
}

// Consecutive members of the configured list, batch.size at a time (all when 0).
std::vector<Poller*> Registry::make_pollers(const std::shared_ptr<SourceRuntime>& runtime,
                                            const std::vector<std::pair<std::string, SymbolId>>& symbols) {
    std::vector<Poller*> made;
    const SourceConfig& source = runtime->config;
    if (!source.batch) {
        for (const auto& [name, id] : symbols) made.push_back(&make_poller(runtime, id, name, source.priority_of(name)));
        return made;
    }
    const std::size_t size = source.batch->size == 0 ? symbols.size() : source.batch->size;
    for (std::size_t from = 0, index = 0; from < symbols.size(); from += size, ++index) {
        const std::vector<std::pair<std::string, SymbolId>> part(
            symbols.begin() + static_cast<std::ptrdiff_t>(from),
            symbols.begin() + static_cast<std::ptrdiff_t>(std::min(symbols.size(), from + size)));
        // Named by its index ("#3") where a single poller has its symbol: log lines, phase.
        // Appended, not "#" + std::string: g++ 12 -O3 sees a bogus overflow in operator+.
        std::string name(1, '#');
        name.append(std::to_string(index));
        std::uint8_t best = 9;  // a batch asks with its best member's priority
        for (const auto& [member, id] : part) best = std::min(best, source.priority_of(member));
        Poller& p = make_poller(runtime, part.front().second, name, best);
        p.batch = std::make_unique<BatchRequest>(source, index, part);
        p.request = get_request(*runtime, source.url, p.batch->target_on(source.url, source));
        made.push_back(&p);
    }
    return made;
}

}  // namespace detail

// Between two polls, on the poller's executor: the request follows its members' own controls.
void PollerGroup::Impl::refresh_batch_target(Poller& p) {
    detail::BatchRequest& b = *p.batch;
    if (!b.members_changed.exchange(false, std::memory_order_acq_rel)) return;
    const detail::Route& route = p.current_route();
    p.request = get_request(p.source, route.url, b.target_on(route.url, p.source.config));
    if (p.hedge) p.hedge->request_stale = true;  // rebuilt when its next hedge goes (it may still be reading)
}

// Entries refused for their symbol (a second entry for one symbol, a symbol that is not a
// string) are a venue's bug, not a member's failure: counted, and logged rate-limited per
// source and class (the first in each window, then "suppressed": N), so a venue that keeps
// sending them neither floods the log nor goes unseen.
void PollerGroup::Impl::log_refused_entries(const Poller& p, const BatchCounts& counts) {
    const detail::BatchRequest& b = *p.batch;
    auto log_one = [&](const std::string& key, std::string_view error, std::size_t n, std::ptrdiff_t member) {
        if (n == 0) return;
        const auto suppressed = error_log.admit(log::Level::warn, key, "batch entries refused");
        if (!suppressed) return;
        nlohmann::json fields{{"source", p.source.config.name}, {"batch", b.index}, {"error", error}, {"entries", n}};
        if (member >= 0) {
            const auto m = static_cast<std::size_t>(member);
            fields["symbol"] = b.member[m].name;
            if (b.members.venue_name(m) != b.member[m].name) fields["venue_symbol"] = b.members.venue_name(m);
        }
        if (*suppressed) fields["suppressed"] = *suppressed;
        log::write(log::Level::warn, "batch entries refused", fields);
    };
    log_one(b.duplicate_key, "duplicate_symbol", counts.duplicates, counts.first_duplicate);
    log_one(b.bad_symbol_key, "symbol_not_string", counts.bad_symbols, -1);
}

// The answer is checked whole (JSON, success check, items) before any member gets a quote; an
// answer-level error fails the poll as a single poller's would. Then each member: a good entry
// is one quote, a bad one fails that member alone with the usual class, a missing one is counted
// and its quote goes stale by the usual rule.
detail::PollAction PollerGroup::Impl::deliver_batch(Poller& p) {
    detail::BatchRequest& b = *p.batch;
    auto& st = p.source.stats;
    if (auto ec = http::decode_body(p.body, p.parser->content_encoding(), p.source.config.max_body_bytes))
        return p.fsm.on_decode_failed(ec);
    BatchCounts counts;
    // simdjson reads the body in place with json_padding spare bytes after it. The body's
    // storage is lent per poll and keeps its capacity (in_flight.hpp), so this grows it only
    // while answers grow: no copy and no allocation per answer once warm.
    if (p.body.capacity() - p.body.size() < json_padding) p.body.reserve(p.body.size() + json_padding);
    if (std::error_code ec = b.mapper.map(p.body, p.body.capacity(), b.members, b.results, counts))
        return p.fsm.on_mapping_failed(ec);
    const std::int64_t now_ns = wall_clock_ns();
    constexpr auto r = std::memory_order_relaxed;
    auto count = [&](BatchEntryCount c, std::size_t n) {
        if (n) st.batch_entries[static_cast<std::size_t>(c)].fetch_add(n, r);
    };
    count(BatchEntryCount::unknown, counts.unknown);
    count(BatchEntryCount::duplicate, counts.duplicates);
    count(BatchEntryCount::bad_symbol, counts.bad_symbols);
    if (counts.duplicates || counts.bad_symbols) log_refused_entries(p, counts);
    std::size_t missing = 0;
    for (std::size_t m = 0; m < b.members.size(); ++m) {
        detail::BatchMember& member = b.member[m];
        BatchEntry& entry = b.results[m];
        // Dropped; and not asked for when the url spells {symbols}, so never counted missing.
        if (member.control.load(std::memory_order_acquire) != PollerControl::active) continue;
        if (!entry.seen) {
            member.missing.fetch_add(1, r);
            ++missing;
            continue;
        }
        if (entry.error) {
            const PollError error = detail::classify_mapping(entry.error);
            st.errors[static_cast<std::size_t>(error)].fetch_add(1, r);
            member.failed.fetch_add(1, r);
            member.state.store(PollerState::failed, r);
            member.last_error.store(static_cast<std::uint8_t>(error), r);
            member.last_error_ns.store(now_ns, r);
            if (const auto suppressed = error_log.admit(log::Level::warn, p.source.error_keys[static_cast<std::size_t>(error)],
                                                        "batch entry failed")) {
                nlohmann::json fields{{"source", p.source.config.name}, {"symbol", member.name},
                                      {"batch", b.index}, {"error", to_string(error)},
                                      {"detail", entry.error.message()}};
                if (*suppressed) fields["suppressed"] = *suppressed;
                log::write(log::Level::warn, "batch entry failed", fields);
            }
            continue;
        }
        Quote q = entry.quote;
        q.source = p.source.id;
        q.symbol = member.symbol;
        q.receive_time_ns = now_ns;
        q.via = p.answering_route().via;
        on_quote(q);
        member.completed.fetch_add(1, r);
        member.state.store(PollerState::completed, r);
        member.last_success_ns.store(now_ns, r);
    }
    count(BatchEntryCount::missing, missing);
    p.last_receive_ns = now_ns;
    return p.fsm.on_delivered();
}

}  // namespace mdagg

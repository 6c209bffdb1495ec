#include "ingest.hpp"

#include "reports.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <unordered_map>

namespace mdagg::lifecycle {
namespace {

namespace asio = boost::asio;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

}  // namespace

Ingest::Ingest(std::span<asio::io_context* const> shards, asio::any_io_executor control, const Config& config,
               const Universe& universe, QuoteHandler on_quote)
    : control_(std::move(control)), pollers_(shards, config, universe, std::move(on_quote)), wake_(control_) {}

// Any thread: the drain's waits on the control strand look again.
void Ingest::wake() {
    asio::post(control_, [this] { wake_.cancel(); });
}

void Ingest::start() {
    pollers_.start([this] { wake(); });
}

void Ingest::stop_intake() {
    in_flight_at_signal_ = pollers_.polls_in_flight();
    pollers_.stop_scheduling();
}

// Waits on the control strand until every poller coroutine returned, `limit` passed, or (when
// `until_emergency`) a second signal arrived. Returns true when the pollers are all gone.
asio::awaitable<bool> Ingest::wait_for_pollers(Clock::time_point limit, bool until_emergency) {
    while (pollers_.running() > 0 && !(until_emergency && emergency_) && Clock::now() < limit) {
        wake_.expires_at(limit);
        co_await wake_.async_wait(use_tuple);
    }
    co_return pollers_.running() == 0;
}

asio::awaitable<StageOutcome> Ingest::drain(StageDeadline deadline) {
    bool done = co_await wait_for_pollers(deadline.cancel_at, true);
    cancelled_before_ = PollStats::read(pollers_, PollDetail::counters).total.cancelled;
    if (!done) {
        // Cancelled pollers return within a few turns of the loop; wait for them even in an
        // emergency, or a quote read just before the cancel would miss the final flush.
        pollers_.cancel_in_flight();
        done = co_await wait_for_pollers(deadline.deadline, false);
    }
    pollers_done_ = done;
    StageOutcome out;
    out.in_time = done;
    co_return out;
}

void Ingest::emergency() {
    emergency_ = true;
    pollers_.cancel_in_flight();
    wake_.cancel();
}

asio::awaitable<void> Ingest::close(Clock::time_point deadline) {
    if (pollers_done_) {
        pollers_.close_connections([this] {
            asio::post(control_, [this] {
                sockets_closed_ = true;
                wake_.cancel();
            });
        });
        while (!sockets_closed_ && Clock::now() < deadline) {
            wake_.expires_at(deadline);
            co_await wake_.async_wait(use_tuple);
        }
    }
    pollers_.flush_logs();
}

void Ingest::report(nlohmann::json& fields, bool incomplete) const {
    const PollCounters t = PollStats::read(pollers_, PollDetail::counters).total;
    fields["polls_in_flight_at_signal"] = in_flight_at_signal_;
    fields["polls_completed"] = t.completed;
    fields["polls_failed"] = t.failed;
    fields["polls_timed_out"] = t.timed_out;
    fields["polls_cancelled"] = t.cancelled;
    fields["polls_cancelled_by_drain"] = t.cancelled - cancelled_before_;
    fields["pollers"] = pollers_by_state(pollers_);
    fields["errors"] = errors_by_class(t.errors);
    fields["late_answers"] = late_answers(t.late_answers);
    fields["skipped_ticks"] = t.skipped_ticks;
    fields["throttled_ticks"] = t.throttled_ticks;
    fields["rate_limited_ticks"] = t.rate_limited_ticks;
    fields["host_paused_ticks"] = t.host_paused_ticks;
    fields["breaker_ticks"] = t.breaker_ticks;
    if (auto hedges = hedge_counts(t); !hedges.is_null()) fields["hedges"] = std::move(hedges);
    if (incomplete) fields["abandoned_pollers"] = pollers_.running();
}

namespace {

using Symbols = std::vector<std::pair<std::string, SymbolId>>;

PollerFilter of_source(const std::string& name) {
    return [name](std::string_view source, std::string_view, const std::vector<std::string>&) { return source == name; };
}

}  // namespace

// New pollers start, removed ones drain (a poll in flight finishes and is delivered), a source
// whose settings changed restarts its pollers, untouched pollers keep their connection and
// schedule.
Ingest::Changes Ingest::apply(const ReloadPlan& plan, const std::vector<SourceConfig>& sources, const std::vector<HostConfig>& hosts,
                              const Universe& universe, std::unordered_set<SymbolId>& retiring) {
    std::unordered_map<std::string_view, SourceId> source_ids;
    std::unordered_map<std::string_view, SymbolId> symbol_ids;
    for (SourceId i = 0; i < universe.sources.size(); ++i) source_ids.emplace(universe.sources[i], i);
    for (SymbolId i = 0; i < universe.symbols.size(); ++i)
        if (!universe.symbols[i].empty()) symbol_ids.emplace(universe.symbols[i], i);
    auto with_ids = [&](const std::vector<std::string>& names) {
        Symbols out;
        for (auto& sym : names) out.emplace_back(sym, symbol_ids.at(sym));
        return out;
    };
    Changes changes;
    for (auto& name : plan.removed_sources) changes.removed += pollers_.retire(of_source(name));
    for (const auto& step : plan.steps) {
        const SourceConfig& src = sources.at(step.source);
        const SourceId id = source_ids.at(src.name);
        const HostConfig& host = hosts.at(src.host);
        const std::vector<HostConfig> mirror_hosts = mdagg::mirror_hosts(src, hosts);
        if (step.step == ReloadPlan::Step::add) {
            auto symbols = with_ids(src.symbols);
            if (pollers_.add(id, src, host, symbols, mirror_hosts)) changes.added += symbols.size();
        } else if (step.step == ReloadPlan::Step::restart) {
            changes.restarted += pollers_.retire(of_source(src.name));
            pollers_.add(id, src, host, with_ids(src.symbols), mirror_hosts);
        } else {
            std::unordered_set<std::string_view> kept(src.symbols.begin(), src.symbols.end());
            changes.removed += pollers_.retire([&](std::string_view source, std::string_view symbol, const std::vector<std::string>&) {
                return source == src.name && !kept.contains(symbol);
            });
            if (!step.renamed_symbols.empty()) {
                std::unordered_set<std::string_view> renamed(step.renamed_symbols.begin(), step.renamed_symbols.end());
                changes.restarted += pollers_.retire([&](std::string_view source, std::string_view symbol, const std::vector<std::string>&) {
                    return source == src.name && renamed.contains(symbol);
                });
                pollers_.add(id, src, host, with_ids(step.renamed_symbols), mirror_hosts);
            }
            auto added = with_ids(step.added_symbols);
            if (!added.empty() && pollers_.add(id, src, host, added, mirror_hosts)) changes.added += added.size();
            pollers_.set_tags(src);
        }
    }
    // Symbols no source polls any more: their ids wait for their retired pollers.
    for (auto& sym : plan.dropped_symbols)
        if (auto it = symbol_ids.find(sym); it != symbol_ids.end()) retiring.insert(it->second);
    pollers_.set_hosts(hosts);
    return changes;
}

}  // namespace mdagg::lifecycle

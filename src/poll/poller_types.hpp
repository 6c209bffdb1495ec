// The pollers' private vocabulary, shared by the files of src/poll that implement PollerGroup:
// a source's runtime settings, one poller's state and its places in the timer wheel.
#pragma once

#include <mdagg/common.hpp>
#include <mdagg/http.hpp>
#include <mdagg/mapping.hpp>
#include <mdagg/poll.hpp>
#include "schedule.hpp"

#include "batch.hpp"
#include "failover.hpp"
#include "hedge.hpp"
#include "connect_turn.hpp"
#include "host_resolver.hpp"
#include "in_flight.hpp"
#include "poll_fsm.hpp"
#include "task.hpp"
#include "timer_wheel.hpp"
#include "tls_transport.hpp"
#include "transport.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/error.hpp>

#include <atomic>
#include <cmath>
#include <coroutine>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace mdagg {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::nanoseconds;
using detail::Task;

namespace detail {

// How long a resolved address list is trusted before the next connect looks the name up again.
constexpr auto resolve_ttl = std::chrono::seconds(30);
constexpr std::uint32_t max_header_bytes = 8 * 1024;

// Ticks and deadlines live on the timer wheel's 1 ms grid, rounded up: the pollers due in one
// millisecond fire together from one Asio timer.
inline std::int64_t grid_ms_ceil(Clock::time_point t) {
    return std::chrono::ceil<std::chrono::milliseconds>(t.time_since_epoch()).count();
}


// What outlives a source's runtimes, by SourceId.
struct SourceSlot {
    SourceStats stats;
    // Shared by every runtime of the source, so a reload that only changes it (or the symbol
    // count it defaults to) applies it without restarting pollers.
    std::atomic<std::int64_t> max_in_flight{0};
    std::string name;
    // The labels of stats.route_polls by index: each route name ("host:port") any runtime of the
    // source used, so a reload that reorders `mirrors` keeps each host's count under its name
    // (Route::poll_slot). Append-only up to max_poll_routes; then a name no newest route has
    // gives its place up (its count restarts at 0 under the new name).
    std::vector<std::string> routes;
};

// One host a source's pollers poll: the url's (route 0) or a mirror's (routes 1.., in the
// order of `mirrors:`; failover.hpp). Each has its host's guard (bucket, pauses, breaker),
// connect line, name lookups and TLS name; the path, fields and limits are the source's.
struct Route {
    Route(const Url& u, std::shared_ptr<HostGuard> g, const HostConfig& host, std::shared_ptr<TlsContext> tls_context,
          const std::string& server_name, SourceStats& stats)
        : url(u), name(u.host + ':' + std::to_string(u.port)), guard(*g), guard_owner(std::move(g)),
          usage_header(host.usage ? host.usage->header : std::string()) {
        if (tls_context) {
            boost::system::error_code not_ip;
            asio::ip::make_address(server_name, not_ip);
            tls = TlsPeer{std::move(tls_context), server_name, !not_ip, &stats.tls_handshakes,
                          &stats.tls_resumptions};
        }
        boost::system::error_code ec;
        auto address = asio::ip::make_address(u.host, ec);
        if (!ec) {
            numeric_endpoint = tcp::endpoint(address, u.port);
            has_numeric_endpoint = true;
        }
    }
    const Url url;
    const std::string name;  // "host:port": logs, metrics, the task table
    HostGuard& guard;  // shared with every other source on the same host
    std::shared_ptr<HostGuard> guard_owner;  // a host no longer configured keeps it until its last poller goes
    std::string usage_header;
    tcp::endpoint numeric_endpoint;
    bool has_numeric_endpoint = false;
    detail::HostResolver resolver{url.host, url.port, resolve_ttl};
    std::optional<TlsPeer> tls;  // https sources: the shared context, the name checked
    // The host's (the registry sets it; shared by every source on the host).
    std::shared_ptr<ConnectGate> connect_gate = std::make_shared<ConnectGate>();
    // Set by the registry before any poller runs. Quotes' `via` (route_via, interned): null
    // when the source has no mirrors. poll_slot: this host's index in stats.route_polls.
    const std::string* via = nullptr;
    std::uint8_t poll_slot = 0;
};

// One source's settings for its pollers. A reload that changes a source starts new pollers
// on a new runtime while the old ones finish on theirs; the stats (per SourceId) carry over.
struct SourceRuntime {
    SourceRuntime(const SourceConfig& c, SourceId i, SourceSlot& slot, std::shared_ptr<HostGuard> g,
                  const HostConfig& host, std::shared_ptr<TlsContext> tls_context = nullptr)
        : config(without_symbols(c)), id(i), stats(slot.stats), max_in_flight(slot.max_in_flight) {
        add_route(config.url, std::move(g), host, std::move(tls_context));
        for (std::size_t e = 0; e < error_keys.size(); ++e)
            error_keys[e] = c.name + "/" + std::string(to_string(static_cast<PollError>(e)));
        for (const RequestHeader& h : c.headers) header_lines += h.name + ": " + h.resolved.reveal() + "\r\n";
        if (config.hedge.enabled) {
            // A round's worth of hedges may go at once (at least 4): the Pareto tail of 500
            // pollers comes in bursts that a bucket of 4 would refuse.
            const auto burst = static_cast<std::int64_t>(std::ceil(config.hedge.max_extra * static_cast<double>(c.request_count())));
            hedge_budget = std::make_unique<HedgeBudget>(config.hedge.max_extra, std::max<std::int64_t>(4, burst));
            if (config.hedge.percentile) hedge_window = std::make_unique<LatencyWindow>(config.hedge.percentile);
        }
    }
    // The source's settings without its symbol list: each poller holds its own name, and
    // the list copied once more per runtime cost 32 bytes a poller.
    static SourceConfig without_symbols(const SourceConfig& c) {
        SourceConfig settings = c;
        std::vector<std::string>().swap(settings.symbols);
        return settings;
    }
    // Set-up only, before any poller: the url's route first, then the mirrors' in order.
    Route& add_route(const Url& url, std::shared_ptr<HostGuard> g, const HostConfig& host,
                     std::shared_ptr<TlsContext> tls_context) {
        // A mirror is checked against its own name; `tls.server_name` names the url's host.
        const std::string server_name = routes.empty() ? config.tls_server_name() : url.host;
        routes.push_back(std::make_unique<Route>(url, std::move(g), host, std::move(tls_context), server_name, stats));
        route_guards.push_back(&routes.back()->guard);
        return *routes.back();
    }
    const SourceConfig config;
    const QuoteMapper mapper{config.fields};  // compiled once; each poller's is a copy sharing it
    SourceId id;
    SourceStats& stats;
    std::atomic<std::int64_t>& max_in_flight;
    std::string header_lines;  // the source's headers, secrets included: for requests only
    // "source/error class": the rate-limited log's keys, built once.
    std::array<std::string, static_cast<std::size_t>(PollError::count_)> error_keys;
    std::vector<std::unique_ptr<Route>> routes;  // never empty; fixed once pollers run
    std::vector<HostGuard*> route_guards;         // routes[i]->guard, for choose_route()
    // `hedge:` (hedge.hpp; null without it): the source's max_extra bucket, and for `after: pNN`
    // its recent latencies.
    std::unique_ptr<HedgeBudget> hedge_budget;
    std::unique_ptr<LatencyWindow> hedge_window;
    Route& primary() const noexcept { return *routes.front(); }
};

// A poller's connection: plain TCP, or TLS over it. The driver is a template over each.
using AnyTransport = std::variant<TcpTransport, TlsTransport>;

inline AnyTransport make_transport(const asio::any_io_executor& executor, const SourceRuntime& src) {
    const std::size_t limit = src.config.max_body_bytes + max_header_bytes;
    if (src.primary().tls) return AnyTransport(std::in_place_type<TlsTransport>, executor, limit, *src.primary().tls);
    return AnyTransport(std::in_place_type<TcpTransport>, executor, limit);
}

struct Poller;
class TickScheduler;

// A poller's place in the timer wheel: its next tick, or its poll's deadline.
struct PollerEntry : detail::WheelEntry {
    PollerEntry(Poller& p, bool d, bool h = false) : poller(&p), deadline(d), hedge(h) {}
    Poller* poller;
    bool deadline;
    bool hedge;  // PollerHedge::entry: the hedge is due, or the hedge leg's deadline
    std::uint64_t generation = 0;  // of the poll a deadline belongs to; under the wheel's lock
};

// A hedged source's poller's second leg (hedge_leg.cpp), made with the poller: its own
// connection to one mirror (created at the first hedge, kept between hedges), poll state,
// parser and body. Only the poller's executor touches it; `race` is also read by snapshots.
struct PollerHedge {
    PollerHedge(Poller& p, const SourceConfig& c)
        : entry(p, false, true), fsm(c.connect_timeout, c.timeout, reinterpret_cast<std::uintptr_t>(&p)) {}
    PollerEntry entry;             // in the wheel: the hedge's due time, then the leg's deadline
    std::uint64_t generation = 0;  // of the entry's arming; under the wheel's lock
    std::atomic<HedgeRace> race{HedgeRace::idle};
    bool poll_open = false;         // the primary's poll is in flight (a due hedge may go)
    bool running = false;           // the leg's coroutine is alive
    bool expired = false;           // the leg's deadline (or its loser grace) passed
    bool cancelled = false;         // the primary (or an operator) cancelled the leg
    bool interrupt_primary = false; // the hedge won: the primary's pending wait ends
    bool probe = false;             // the mirror's guard admitted the leg as its breaker's probe
    bool written = false;           // the leg's request went out (hedges_sent counts it then)
    std::uint8_t route = 0;         // the mirror `connection` and `request` are for
    bool request_stale = false;     // a batch's members changed: `request` is rebuilt at the next hedge
    std::optional<AnyTransport> connection;
    detail::ConnectSeat connect_seat;  // its place at the mirror's connect gate
    LoserGrace grace;                  // a losing leg's end, whatever re-arms its deadline
    PollFsm fsm;
    detail::InFlight<http::ResponseParser> parser;
    std::string body;
    std::string request;
    std::vector<tcp::endpoint> endpoints;
    std::coroutine_handle<> waiter;  // the poller's coroutine waiting for the leg to end
    void cancel_io() {
        if (connection) std::visit([](auto& c) { c.cancel(); }, *connection);
        connect_seat.cancel_wait();
    }
    void close() {
        if (connection) std::visit([](auto& c) { c.close(); }, *connection);
        fsm.on_closed();
    }
};

// Each field of a Poller has one owner:
// - identity (executor, ticks, source, symbol, symbol_name, runtime): set at construction, read anywhere;
// - the tick scheduler (tick_entry, deadline_entry, tick_waiter, poll_generation, and
//   deadline_expired, which the poll path reads): on the poller's executor, the entries under
//   the wheel's lock;
// - the poll path (the connection, parser, body, request, mapper, schedule, backoff, probe and
//   timing fields): only the poller's executor touches them;
// - the registry (tags, retired, exited, on_exit): under its mutex; `control` it writes (any
//   thread, under its mutex) and the poller reads;
// - published for the task table (state, polling, polls, completed, failed, timed_out, last_*):
//   written on the poller's executor with relaxed stores, read by other threads only through
//   the registry's snapshots (PollerSnapshot, state and control counts).
// A poller's GET on `url` (the source's or a mirror's), with the source's headers.
inline std::string get_request(const SourceRuntime& src, const Url& url, std::string_view target) {
    return http::make_get_request(url.host, url.port, target,
                                  {src.header_lines, src.config.accept_encoding == AcceptEncoding::gzip});
}

struct Poller {
    Poller(asio::any_io_executor ex, SourceRuntime& src, SymbolId sym, std::string name)
        : executor(std::move(ex)),
          connection(make_transport(executor, src)),
          request(get_request(src, src.config.url, src.config.url.target_for(src.config.venue_symbol(name)))),
          mapper(src.mapper),
          schedule(src.config.interval, phase_offset(src.config.name, name, src.config.interval)),
          source(src),
          symbol(sym),
          venue_name(venue_name_in(src.config, name)),
          symbol_name(std::move(name)),
          fsm(src.config.connect_timeout, src.config.timeout,
              static_cast<std::uint64_t>(schedule.offset().count()) ^ sym,
              detail::late_grace(src.config.timeout, src.config.interval)) {
        if (src.config.hedge.enabled && src.routes.size() > 1) hedge = std::make_unique<PollerHedge>(*this, src.config);
    }

    void close_connection() noexcept {
        std::visit([](auto& c) { c.close(); }, connection);
        fsm.on_closed();
        if (hedge && !hedge->running) hedge->close();
    }
    // The pending operation on the connection ends with operation_aborted; a wait for a turn
    // to connect ends too.
    void cancel_io() {
        std::visit([](auto& c) { c.cancel(); }, connection);
        connect_seat.cancel_wait();
    }

    asio::any_io_executor executor;  // a strand when one io_context runs on several threads
    TickScheduler* ticks = nullptr;  // its io_context's wheel: the group's, or its shard's
    AnyTransport connection;  // to its route; a hedged poller's second one is PollerHedge's
    detail::ConnectSeat connect_seat;  // its place at the host's connect gate
    PollerEntry tick_entry{*this, false};
    PollerEntry deadline_entry{*this, true};
    std::coroutine_handle<> tick_waiter;  // the coroutine while it waits for its tick
    std::string body;
    detail::InFlight<http::ResponseParser> parser;  // one per response; pooled, only while polling
    std::vector<tcp::endpoint> endpoints;  // a named host's addresses for the next connect; capacity kept
    std::int64_t last_receive_ns = 0;      // the last quote's receive time, for the task table
    std::string request;
    QuoteMapper mapper;
    Schedule schedule;
    SourceRuntime& source;
    SymbolId symbol;
    // The venue's spelling when it differs from the canonical symbol_name: a node of the
    // runtime's (const) config, so a poller pays a pointer, not a string.
    const std::string* venue_name;
    std::string symbol_name;  // canonical: logs, the task table, admin selectors
    std::string_view venue_symbol() const noexcept { return venue_name ? *venue_name : symbol_name; }
    static const std::string* venue_name_in(const SourceConfig& c, const std::string& name) {
        const auto it = c.venue_symbols.find(name);
        return it == c.venue_symbols.end() ? nullptr : &it->second;
    }
    PollFsm fsm;  // the poll policy's state; on the poller's executor
    std::atomic<PollerState> state{PollerState::pending};
    // Operator control and the task table's per-poller view; written on the poller's
    // executor (control from anywhere), read by the admin server.
    std::atomic<PollerControl> control{PollerControl::active};
    std::atomic<bool> polling{false};
    std::atomic<std::uint64_t> polls{0}, completed{0}, failed{0}, timed_out{0};
    std::atomic<std::int64_t> last_success_ns{0}, last_error_ns{0}, last_latency_ns{-1};
    std::atomic<std::uint8_t> last_error{static_cast<std::uint8_t>(PollError::count_)};
    Clock::time_point last_poll_start{};
    Clock::time_point tick_due{};  // the scheduled tick of the poll under way (a hedge counts from it)
    Clock::time_point poll_ended{};
    std::shared_ptr<SourceRuntime> runtime;  // keeps `source` alive as long as this poller
    // Guarded by the group's mutex.
    std::vector<std::string> tags;
    bool retired = false;  // taken out by a reload; freed once its coroutine returned
    bool exited = false;   // its coroutine returned: nothing may be posted to it any more
    bool deadline_expired = false;
    std::uint64_t poll_generation = 0;  // counts deadline arms and disarms
    bool probe_pending = false;  // admitted as the breaker's probe, not yet reported
    Clock::time_point backoff_until{};
    std::size_t backoff_route = 0;  // the route whose connection failures set backoff_until
    // The route polled now (SourceRuntime::routes; 0: the url's). Written on the poller's
    // executor between polls, read by the registry's snapshots.
    std::atomic<std::uint8_t> route{0};
    // Priorities (HostGuard::admit): the configured one, and the one the next tick asks with,
    // raised by one for each tick in a row the bucket refused (aging), reset by a poll.
    std::uint8_t priority = 5;
    std::atomic<std::uint8_t> effective_priority{5};
    // The host whose reserves count this poller's priority (failover.hpp); the registry's mutex.
    detail::PriorityReserve reserve;
    Route& current_route() const noexcept { return *source.routes[route.load(std::memory_order_relaxed)]; }
    // Runs once the coroutine has returned (and its frame is freed); `error` is what escaped it.
    std::function<void(std::exception_ptr error)> on_exit;
    // A batch request's members and mapping (batch.hpp); null for a single symbol.
    std::unique_ptr<BatchRequest> batch;
    // A hedged source's second leg (hedge:, with mirrors); null otherwise: no cost.
    std::unique_ptr<PollerHedge> hedge;

    // The route whose answer this poll delivers: the hedge's when the hedge won the race.
    const Route& answering_route() const noexcept {
        if (hedge && hedge->race.load(std::memory_order_relaxed) == HedgeRace::hedge_won)
            return *source.routes[hedge->route];
        return current_route();
    }
};

}  // namespace detail

using detail::grid_ms_ceil;
using detail::max_header_bytes;
using detail::Poller;
using detail::PollerEntry;
using detail::SourceRuntime;
using detail::SourceSlot;

}  // namespace mdagg

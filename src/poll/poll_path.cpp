// One poll: connect, exchange, classify the outcome, back off, count.
#include "poller_group.hpp"

#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>

#include <algorithm>

namespace mdagg {
namespace {

// Connection-level failures (refused, or a fresh connection reset before any answer) back off
// with full jitter: random(0, min(cap, base * 2^attempt)); an answer resets the attempt count.
constexpr nanoseconds backoff_base = std::chrono::milliseconds(100);
constexpr nanoseconds backoff_cap = std::chrono::seconds(10);

bool is_stale_connection_error(const beast::error_code& ec) {
    return ec == beast::http::error::end_of_stream || ec == asio::error::eof ||
           ec == asio::error::connection_reset || ec == asio::error::broken_pipe;
}

PollError classify(const beast::error_code& ec) {
    if (ec == beast::error::timeout) return PollError::timeout;
    if (ec.category() == asio::error::get_netdb_category() || ec.category() == asio::error::get_addrinfo_category())
        return PollError::resolve;
    if (ec == beast::http::error::body_limit || ec == beast::http::error::buffer_overflow)
        return PollError::body_too_large;
    if (ec == asio::error::connection_refused || ec == asio::error::host_unreachable ||
        ec == asio::error::network_unreachable)
        return PollError::connect;
    if (is_stale_connection_error(ec) || ec == beast::http::error::partial_message)
        return PollError::reset;
    if (ec == beast::http::error::header_limit) return PollError::protocol;
    if (ec.category() == beast::http::make_error_code(beast::http::error::bad_version).category())
        return PollError::protocol;
    return PollError::reset;
}

PollError classify_mapping(const std::error_code& mapping_error) {
    if (mapping_error == MappingError::malformed_json) return PollError::malformed;
    if (mapping_error == MappingError::body_error) return PollError::body_error;
    return PollError::mapping;
}

// A 503 with Retry-After is the server asking for a pause, as a 429 does: handled (and counted)
// as rate_limited, so it pauses the host without counting against its breaker.
PollError classify_status(int status, bool retry_after) {
    if (status == 429 || (status == 503 && retry_after)) return PollError::rate_limited;
    if (status == 418 || status == 403) return PollError::banned;
    if (status >= 500) return PollError::http_5xx;
    if (status >= 400) return PollError::http_4xx;
    return PollError::http_other;
}

// What a poll's outcome says about its host, for the circuit breaker: only failures that a
// dead or overloaded host produces count against it; an answer of any other kind shows it alive.
HostVerdict verdict_of(PollError e) {
    switch (e) {
        case PollError::connect:
        case PollError::timeout:
        case PollError::reset:
        case PollError::http_5xx:
        case PollError::protocol: return HostVerdict::failing;
        case PollError::resolve:
        case PollError::rate_limited:
        case PollError::banned: return HostVerdict::neutral;
        default: return HostVerdict::healthy;
    }
}

}  // namespace

void PollerGroup::Impl::record_failure(Poller& p, const Failure& f) {
    auto& st = p.source.stats;
    if (f.error == PollError::timeout) {
        st.timed_out.fetch_add(1, std::memory_order_relaxed);
        p.state.store(PollerState::timed_out, std::memory_order_relaxed);
    } else {
        st.failed.fetch_add(1, std::memory_order_relaxed);
        p.state.store(PollerState::failed, std::memory_order_relaxed);
    }
    st.errors[static_cast<std::size_t>(f.error)].fetch_add(1, std::memory_order_relaxed);
    p.last_error.store(static_cast<std::uint8_t>(f.error), std::memory_order_relaxed);
    // 2,000 failing pollers must not flood stdout, nor allocate per failure.
    const auto suppressed = error_log.admit(log::Level::warn, p.source.error_keys[static_cast<std::size_t>(f.error)],
                                            "poll failed");
    if (!suppressed) return;
    nlohmann::json fields{{"source", p.source.config.name},
                          {"symbol", p.symbol_name},
                          {"error", to_string(f.error)}};
    if (f.ec) fields["detail"] = f.ec.message();
    if (f.status) fields["status"] = f.status;
    if (*suppressed) fields["suppressed"] = *suppressed;
    log::write(log::Level::warn, "poll failed", fields);
}

// Pauses and breaker changes: one line per change, rate-limited per host and event, since a
// host flapping every cooldown would otherwise log every second.
void PollerGroup::Impl::log_host_event(Poller& p, std::string_view what, PauseReason reason, int status) {
    const auto& host = p.source.config.url;
    const auto key = host.host + ':' + std::to_string(host.port) + '/' + std::string(what);
    const auto suppressed = error_log.admit(log::Level::warn, key, what);
    if (!suppressed) return;
    const auto st = p.source.guard.status(Clock::now());
    nlohmann::json fields{{"host", host.host}, {"port", host.port}, {"source", p.source.config.name},
                          {"symbol", p.symbol_name}};
    if (reason != PauseReason::none) {
        fields["reason"] = to_string(reason);
        fields["status"] = status;
        fields["pause_ms"] = std::chrono::duration<double, std::milli>(st.paused_until - Clock::now()).count();
    } else {
        fields["breaker"] = to_string(st.breaker);
        fields["breaker_opens"] = st.breaker_opens;
    }
    if (*suppressed) fields["suppressed"] = *suppressed;
    log::write(what == "circuit breaker closed" ? log::Level::info : log::Level::warn, what, fields);
}

Task<beast::error_code> PollerGroup::Impl::connect(Poller& p) {
    auto& src = p.source;
    src.stats.connects.fetch_add(1, std::memory_order_relaxed);
    if (src.has_numeric_endpoint) {
        p.endpoints.assign(1, src.numeric_endpoint);
    } else {
        src.resolver.endpoints(p.endpoints, Clock::now());
        // No address yet: a lookup is under way off the event loop; the next tick retries.
        if (p.endpoints.empty()) co_return beast::error_code(asio::error::host_not_found_try_again);
    }
    beast::error_code ec = asio::error::host_not_found;
    tcp::endpoint connected_to;
    for (auto& endpoint : p.endpoints) {
        if (p.deadline_expired) break;
        beast::error_code ignored;
        p.socket.close(ignored);
        if (cancelling.load(std::memory_order_relaxed)) {
            ec = asio::error::operation_aborted;
            break;
        }
        connected_to = endpoint;
        std::tie(ec) = co_await detail::async<beast::error_code>(
            [&](auto handler) { p.socket.async_connect(endpoint, std::move(handler)); });
        if (!ec || ec == asio::error::operation_aborted) break;
    }
    if (p.deadline_expired) ec = beast::error::timeout;
    if (ec) co_return ec;
    beast::error_code ignored;
    // The connect registered the socket for EPOLLOUT, and with edge triggering every ACK
    // of a request then wakes the reactor for nothing: once per poll. Registering the
    // socket anew drops EPOLLOUT; writes go straight to the socket and never wait on it.
    {
        const auto fd = p.socket.release(ignored);
        if (!ignored) p.socket.assign(connected_to.protocol(), fd, ignored);
        if (ignored) co_return ignored;
    }
    p.socket.set_option(tcp::no_delay(true), ignored);
    p.socket.non_blocking(true, ignored);  // the direct write and read below never block
    p.connected = true;
    p.requests_on_connection = 0;
    co_return beast::error_code{};
}

void PollerGroup::Impl::schedule_backoff(Poller& p) {
    auto exp = std::min(p.connect_failures, 16U);
    auto ceiling = std::min(backoff_cap, backoff_base * (std::int64_t{1} << exp));
    auto jitter = nanoseconds(static_cast<std::int64_t>(p.next_random() % static_cast<std::uint64_t>(ceiling.count() + 1)));
    ++p.connect_failures;
    p.backoff_until = Clock::now() + jitter;
}

// Writes the request and reads one response into `parser`. The write goes straight to the
// socket: a request is far smaller than the send buffer.
// Interim (1xx) responses are skipped: p.parser ends up holding the final response.
Task<beast::error_code> PollerGroup::Impl::exchange(Poller& p) {
    beast::error_code ec;
    std::size_t written = p.socket.write_some(asio::buffer(p.request), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
        ec = {};
        written = 0;
    }
    if (ec) co_return ec;
    // In the wheel's round, the reads start once every poller due has sent: by then most
    // answers are in, and reading them costs neither an empty recv nor a wakeup.
    if (deferring_reads) co_await DeferRead{*this};
    // The deadline or a drain may have fired while this poller was not suspended on the
    // socket, where cancel() finds nothing to cancel: check before every wait.
    auto interrupted = [&] { return p.deadline_expired || cancelling.load(std::memory_order_relaxed); };
    if (written < p.request.size()) {
        if (interrupted()) co_return beast::error_code(asio::error::operation_aborted);
        std::tie(ec, std::ignore) = co_await detail::async<beast::error_code, std::size_t>([&](auto handler) {
            asio::async_write(p.socket, asio::buffer(p.request.data() + written, p.request.size() - written),
                              std::move(handler));
        });
        if (ec) co_return ec;
    }
    p.parser->eager(true);
    for (;;) {
        // Bytes already buffered (from this read or left over) are parsed first.
        while (p.buffer.size() > 0 && !p.parser->is_done()) {
            std::size_t used = http::put_response(p.parser, p.buffer.data(), ec);
            p.buffer.consume(used);
            if (ec == beast::http::error::need_more) {
                ec = {};
                break;
            }
            if (ec) co_return ec;
            if (used == 0) break;
        }
        if (p.parser->is_done()) co_return beast::error_code{};
        const std::size_t room = p.buffer.max_size() - p.buffer.size();
        if (room == 0) co_return beast::error_code(beast::http::error::buffer_overflow);
        if (interrupted()) co_return beast::error_code(asio::error::operation_aborted);
        // async_read_some tries a recv first, which just after the request almost always
        // finds nothing (1.9 recvs per poll). async_wait + read would skip it, but asio
        // queues a wait with an epoll_ctl (EPOLL_CTL_MOD, so no edge is lost): no cheaper.
        std::size_t n = 0;
        std::tie(ec, n) = co_await detail::async<beast::error_code, std::size_t>([&](auto handler) {
            p.socket.async_read_some(p.buffer.prepare(std::min<std::size_t>(room, 4096)), std::move(handler));
        });
        if (ec == asio::error::eof) {
            // A close-delimited body ends here; anything else was cut short.
            if (!p.parser->got_some() && p.parser->interim_skipped() == 0)
                co_return beast::error_code(beast::http::error::end_of_stream);
            p.parser->put_eof(ec);
            co_return ec;
        }
        if (ec) co_return ec;
        p.buffer.commit(n);
    }
}

// One poll: connect if needed, GET, read, map, deliver. Never throws for I/O errors.
// `start` is the tick's wake-up time; the poll's end goes to p.poll_ended.
Task<void> PollerGroup::Impl::poll_once(Poller& p, bool probe, Clock::time_point start) {
    auto& st = p.source.stats;
    // Two budgets: connect_timeout for opening a connection, then timeout for the
    // request and response, so a fresh connection never stretches the exchange.
    auto deadline = start + p.source.config.timeout;
    if (p.connected) arm_deadline(p, deadline);
    p.state.store(PollerState::running, std::memory_order_relaxed);
    st.polls_started.fetch_add(1, std::memory_order_relaxed);

    std::optional<Failure> failure;
    bool cancelled = false;
    for (int attempt = 0; attempt < 2; ++attempt) {
        if (cancelling.load(std::memory_order_relaxed)) {
            cancelled = true;
            break;
        }
        if (!p.connected) {
            arm_deadline(p, Clock::now() + p.source.config.connect_timeout);
            auto ec = co_await connect(p);
            if (ec) {
                p.close_connection();
                if (ec == asio::error::operation_aborted && cancelling.load()) {
                    cancelled = true;
                } else {
                    schedule_backoff(p);
                    const PollError e = classify(ec);
                    failure = Failure{e == PollError::reset ? PollError::connect : e, ec};
                }
                break;
            }
            deadline = Clock::now() + p.source.config.timeout;
            arm_deadline(p, deadline);
        }
        if (cancelling.load(std::memory_order_relaxed)) {
            cancelled = true;
            break;
        }
        const bool reused = p.requests_on_connection > 0;
        // The parser lives in the Poller, not in this frame: Asio recycles coroutine frames
        // only up to ~1 KiB, and a frame holding it would cost a malloc per poll.
        p.parser.emplace(p.body, p.source.config.max_body_bytes, max_header_bytes, p.source.usage_header);
        auto ec = co_await exchange(p);
        // exchange() replaces the parser after each interim (1xx) response: the final one.
        auto& parser = *p.parser;
        if (ec) {
            p.close_connection();
            if (p.deadline_expired) {
                failure = Failure{PollError::timeout, beast::error::timeout};
                break;
            }
            if (ec == asio::error::operation_aborted && cancelling.load()) {
                cancelled = true;
                break;
            }
            // A keep-alive connection the server closed while idle: retry the GET once.
            if (reused && attempt == 0 && is_stale_connection_error(ec) && Clock::now() < deadline) {
                st.retries.fetch_add(1, std::memory_order_relaxed);
                continue;
            }
            failure = Failure{classify(ec), ec};
            // A server that accepts and then drops or garbles every exchange is as broken
            // as one that refuses: back off the same way instead of reconnecting each tick.
            if (!reused && (failure->error == PollError::reset || failure->error == PollError::protocol))
                schedule_backoff(p);
            break;
        }
        ++p.requests_on_connection;
        p.connect_failures = 0;  // the connection works: an answer came back
        const int status = parser.status();
        if (!parser.keep_alive()) p.close_connection();
        if (auto used = parser.usage()) p.source.guard.on_usage(*used);
        if (status < 200 || status > 299) {
            const PollError e = classify_status(status, !parser.retry_after().empty());
            // The whole host waits: every poller of it would hit the same limit.
            if (e == PollError::rate_limited || e == PollError::banned) {
                std::optional<Clock::duration> wait;
                if (auto ra = http::parse_retry_after(parser.retry_after(), std::chrono::system_clock::now()))
                    wait = *ra;
                const auto reason = e == PollError::banned ? PauseReason::banned : PauseReason::rate_limited;
                if (p.source.guard.pause(Clock::now(), reason, wait)) log_host_event(p, "host paused", reason, status);
            }
            failure = Failure{e, {}, status};
            break;
        }
        Quote& q = p.quote;
        q = Quote{};
        q.source = p.source.id;
        q.symbol = p.symbol;
        q.receive_time_ns = wall_clock_ns();
        if (std::error_code mec = p.mapper.map(p.body, p.symbol_name, q)) {
            failure = Failure{classify_mapping(mec), beast::error_code(mec)};
            break;
        }
        on_quote(q);
        break;
    }
    disarm_deadline(p);

    const HostVerdict verdict = cancelled ? HostVerdict::neutral
                                : failure ? verdict_of(failure->error)
                                          : HostVerdict::healthy;
    p.probe_pending = false;
    const auto end = p.poll_ended = Clock::now();
    if (auto changed = p.source.guard.report(end, verdict, probe))
        log_host_event(p, *changed == BreakerState::open ? "circuit breaker opened" : "circuit breaker closed",
                       PauseReason::none, 0);
    if (cancelled) {
        st.cancelled.fetch_add(1, std::memory_order_relaxed);
        p.state.store(PollerState::cancelled, std::memory_order_relaxed);
    } else if (failure) {
        record_failure(p, *failure);
    } else {
        st.completed.fetch_add(1, std::memory_order_relaxed);
        st.latency.record(end - start);
        p.state.store(PollerState::completed, std::memory_order_relaxed);
    }
}

// The task table's per-poller view of the poll that just finished.
void PollerGroup::Impl::note_outcome(Poller& p, Clock::duration took) {
    p.polls.fetch_add(1, std::memory_order_relaxed);
    p.last_latency_ns.store(duration_cast<nanoseconds>(took).count(), std::memory_order_relaxed);
    switch (p.state.load(std::memory_order_relaxed)) {
        case PollerState::completed:
            p.completed.fetch_add(1, std::memory_order_relaxed);
            p.last_success_ns.store(p.quote.receive_time_ns, std::memory_order_relaxed);
            break;
        case PollerState::timed_out:
            p.timed_out.fetch_add(1, std::memory_order_relaxed);
            p.last_error_ns.store(wall_clock_ns(), std::memory_order_relaxed);
            break;
        case PollerState::failed:
            p.failed.fetch_add(1, std::memory_order_relaxed);
            p.last_error_ns.store(wall_clock_ns(), std::memory_order_relaxed);
            break;
        default: break;  // cancelled by the drain
    }
}

}  // namespace mdagg

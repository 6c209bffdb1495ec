#include <mdagg/common.hpp>
#include <mdagg/http.hpp>
#include <mdagg/log.hpp>
#include <mdagg/mapping.hpp>
#include <mdagg/poll.hpp>
#include <mdagg/schedule.hpp>

#include "host_resolver.hpp"
#include "task.hpp"
#include "timer_wheel.hpp"

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <mutex>

namespace mdagg {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::nanoseconds;
using detail::Task;

// Connection-level failures (refused, or a fresh connection reset before any answer) back off
// with full jitter: random(0, min(cap, base * 2^attempt)); an answer resets the attempt count.
constexpr nanoseconds backoff_base = std::chrono::milliseconds(100);
constexpr nanoseconds backoff_cap = std::chrono::seconds(10);
// How long a resolved address list is trusted before the next connect looks the name up again.
constexpr auto resolve_ttl = std::chrono::seconds(30);
constexpr std::uint32_t max_header_bytes = 8 * 1024;

// Ticks and deadlines live on the timer wheel's 1 ms grid, rounded up: the pollers due in one
// millisecond fire together from one Asio timer.
std::int64_t grid_ms_ceil(Clock::time_point t) {
    return std::chrono::ceil<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// What outlives a source's runtimes, by SourceId.
struct SourceSlot {
    SourceStats stats;
    // Shared by every runtime of the source, so a reload that only changes it (or the symbol
    // count it defaults to) applies it without restarting pollers.
    std::atomic<std::int64_t> max_in_flight{0};
    std::string name;
};

// One source's settings for its pollers. A reload that changes a source starts new pollers
// on a new runtime while the old ones finish on theirs; the stats (per SourceId) carry over.
struct SourceRuntime {
    SourceRuntime(const SourceConfig& c, SourceId i, SourceSlot& slot, std::shared_ptr<HostGuard> g,
                  const HostConfig& host)
        : config(c), id(i), stats(slot.stats), max_in_flight(slot.max_in_flight), guard(*g), guard_owner(std::move(g)),
          usage_header(host.usage ? host.usage->header : std::string()) {
        for (std::size_t e = 0; e < error_keys.size(); ++e)
            error_keys[e] = c.name + "/" + std::string(to_string(static_cast<PollError>(e)));
        boost::system::error_code ec;
        auto address = asio::ip::make_address(c.url.host, ec);
        if (!ec) {
            numeric_endpoint = tcp::endpoint(address, c.url.port);
            has_numeric_endpoint = true;
        }
    }
    const SourceConfig config;
    SourceId id;
    SourceStats& stats;
    std::atomic<std::int64_t>& max_in_flight;
    HostGuard& guard;  // shared with every other source on the same host
    std::shared_ptr<HostGuard> guard_owner;  // a host no longer configured keeps it until its last poller goes
    std::string usage_header;
    // "source/error class": the rate-limited log's keys, built once.
    std::array<std::string, static_cast<std::size_t>(PollError::count_)> error_keys;

    tcp::endpoint numeric_endpoint;
    bool has_numeric_endpoint = false;
    detail::HostResolver resolver{config.url.host, config.url.port, resolve_ttl};
};

struct Poller;

// A poller's place in the timer wheel: its next tick, or its poll's deadline.
struct PollerEntry : detail::WheelEntry {
    PollerEntry(Poller& p, bool d) : poller(&p), deadline(d) {}
    Poller* poller;
    bool deadline;
    std::uint64_t generation = 0;  // of the poll a deadline belongs to; under the wheel's lock
};

struct Poller {
    Poller(asio::any_io_executor ex, SourceRuntime& src, SymbolId sym, std::string name)
        : executor(std::move(ex)),
          socket(executor),
          buffer(src.config.max_body_bytes + max_header_bytes),
          request(http::make_get_request(src.config.url.host, src.config.url.port,
                                         src.config.url.target_for(name))),
          mapper(src.config.fields),
          schedule(src.config.interval, phase_offset(src.config.name, name, src.config.interval)),
          source(src),
          symbol(sym),
          symbol_name(std::move(name)),
          rng_state(0x9E3779B97F4A7C15ULL ^ static_cast<std::uint64_t>(schedule.offset().count()) ^ sym) {}

    std::uint64_t next_random() noexcept {  // xorshift64*: cheap, good enough for jitter
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * 2685821657736338717ULL;
    }

    void close_connection() noexcept {
        beast::error_code ignored;
        socket.shutdown(tcp::socket::shutdown_both, ignored);
        socket.close(ignored);
        connected = false;
        requests_on_connection = 0;
        buffer.clear();  // leftover bytes belonged to the old connection
    }

    asio::any_io_executor executor;  // a strand when the io_context runs on several threads
    tcp::socket socket;
    PollerEntry tick_entry{*this, false};
    PollerEntry deadline_entry{*this, true};
    std::coroutine_handle<> tick_waiter;  // the coroutine while it waits for its tick
    beast::flat_buffer buffer;
    std::string body;
    std::optional<http::ResponseParser> parser;  // one per response, constructed in place
    std::vector<tcp::endpoint> endpoints;  // where the next connect goes; capacity kept
    Quote quote;
    std::string request;
    QuoteMapper mapper;
    Schedule schedule;
    SourceRuntime& source;
    SymbolId symbol;
    std::string symbol_name;
    std::atomic<PollerState> state{PollerState::pending};
    // Operator control and the task table's per-poller view; written on the poller's
    // executor (control from anywhere), read by the admin server.
    std::atomic<PollerControl> control{PollerControl::active};
    std::atomic<bool> polling{false};
    std::atomic<std::uint64_t> polls{0}, completed{0}, failed{0}, timed_out{0};
    std::atomic<std::int64_t> last_success_ns{0}, last_error_ns{0}, last_latency_ns{-1};
    std::atomic<std::uint8_t> last_error{static_cast<std::uint8_t>(PollError::count_)};
    Clock::time_point last_poll_start{};
    Clock::time_point poll_ended{};
    std::shared_ptr<SourceRuntime> runtime;  // keeps `source` alive as long as this poller
    // Guarded by the group's mutex.
    std::vector<std::string> tags;
    bool retired = false;  // taken out by a reload; freed once its coroutine returned
    bool exited = false;   // its coroutine returned: nothing may be posted to it any more
    bool connected = false;
    bool deadline_expired = false;
    std::uint64_t poll_generation = 0;  // counts deadline arms and disarms
    bool probe_pending = false;  // admitted as the breaker's probe, not yet reported
    std::uint64_t requests_on_connection = 0;
    unsigned connect_failures = 0;
    Clock::time_point backoff_until{};
    std::uint64_t rng_state;
    // Runs once the coroutine has returned (and its frame is freed); `error` is what escaped it.
    std::function<void(std::exception_ptr error)> on_exit;
};

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

std::string_view to_string(PollerState s) noexcept {
    switch (s) {
        case PollerState::pending: return "pending";
        case PollerState::running: return "running";
        case PollerState::completed: return "completed";
        case PollerState::failed: return "failed";
        case PollerState::cancelled: return "cancelled";
        case PollerState::timed_out: return "timed_out";
    }
    return "unknown";
}

std::string_view to_string(PollerControl c) noexcept {
    switch (c) {
        case PollerControl::active: return "active";
        case PollerControl::paused: return "paused";
        case PollerControl::cancelled: return "cancelled";
    }
    return "unknown";
}

std::string_view to_string(PollError e) noexcept {
    switch (e) {
        case PollError::resolve: return "resolve";
        case PollError::connect: return "connect";
        case PollError::timeout: return "timeout";
        case PollError::reset: return "reset";
        case PollError::http_4xx: return "http_4xx";
        case PollError::http_5xx: return "http_5xx";
        case PollError::http_other: return "http_other";
        case PollError::rate_limited: return "rate_limited";
        case PollError::banned: return "banned";
        case PollError::protocol: return "protocol";
        case PollError::body_too_large: return "body_too_large";
        case PollError::malformed: return "malformed";
        case PollError::mapping: return "mapping";
        case PollError::body_error: return "body_error";
        case PollError::count_: break;
    }
    return "unknown";
}

struct PollerGroup::Impl {
    explicit Impl(QuoteHandler h) : on_quote(std::move(h)), error_log(std::chrono::seconds(10)) {}

    QuoteHandler on_quote;
    asio::io_context* io = nullptr;
    bool strands = false;  // a strand per poller when the io_context runs on several threads
    // The mutex guards the tables below (not the pollers' poll-path state): reloads and
    // operators change them while the admin server and the supervisor read them.
    mutable std::mutex mutex;
    std::vector<std::unique_ptr<SourceSlot>> slots;  // by SourceId
    // One guard per host entry, shared by every source (and reload) that polls that host.
    // A guard whose host the running config no longer names goes with the last poller that
    // used it, and its metric series with it.
    std::map<std::string, std::shared_ptr<HostGuard>, std::less<>> guards;
    std::vector<std::string> configured_hosts;  // keys of the running config's host entries
    std::vector<HostGuard*> hosts;  // in creation order: Config::hosts first
    std::vector<std::string> host_keys;
    std::vector<std::unique_ptr<Poller>> pollers;
    std::atomic<bool> stopping{false};
    std::atomic<bool> cancelling{false};
    std::atomic<std::size_t> running{0};
    std::function<void()> on_all_exited;
    log::RateLimited error_log;

    // The timer wheel: every poller's tick and poll deadline. With one io thread nothing else
    // touches it; with several, its mutex guards it and it hands each due entry to the
    // poller's strand.
    std::mutex wheel_mutex;
    detail::TimerWheel wheel;
    std::optional<asio::steady_timer> wheel_timer;
    bool wheel_running = false;  // its timer is armed or its handler is running
    std::vector<detail::WheelEntry*> wheel_due;  // reused by the wheel's handler
    // With one io thread, while the wheel's handler fires a round: pollers that have sent
    // their request wait here to start reading, in order. Never written with several threads,
    // where pollers on other threads read the flag.
    bool deferring_reads = false;
    std::vector<std::coroutine_handle<>> deferred_reads;
    struct DeferRead {
        Impl& group;
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> h) { group.deferred_reads.push_back(h); }
        void await_resume() const noexcept {}
    };

    std::unique_lock<std::mutex> lock_wheel() {
        return strands ? std::unique_lock<std::mutex>(wheel_mutex) : std::unique_lock<std::mutex>();
    }

    // Under the wheel's lock. Starts the wheel's timer when the wheel was idle.
    void wheel_add(PollerEntry& e, std::int64_t due_ms) {
        wheel.add(e, due_ms);
        if (wheel_running) return;
        wheel_running = true;
        asio::post(io->get_executor(), asio::bind_allocator(detail::PooledAllocator<void>{}, [this] { arm_wheel(); }));
    }

    void arm_wheel() {
        const auto next = std::chrono::floor<std::chrono::milliseconds>(Clock::now().time_since_epoch()) +
                          std::chrono::milliseconds(1);
        wheel_timer->expires_at(Clock::time_point(next));
        wheel_timer->async_wait(asio::bind_allocator(detail::PooledAllocator<void>{},
                                                     [this](beast::error_code ec) { on_wheel(ec); }));
    }

    void on_wheel(beast::error_code ec) {
        if (ec) {  // the group is going away
            auto lock = lock_wheel();
            wheel_running = false;
            return;
        }
        const auto now_ms = std::chrono::floor<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
        wheel_due.clear();
        {
            auto lock = lock_wheel();
            wheel.advance(now_ms, wheel_due);
            if (strands) {
                // Each poller's state belongs to its strand: hand the entries over there.
                for (auto* e : wheel_due) fire_on_strand(static_cast<PollerEntry&>(*e));
                wheel_due.clear();
            }
        }
        if (!strands) {  // one io thread: the entries are still here, to fire in two phases
            deferring_reads = true;
            for (auto* e : wheel_due) fire(static_cast<PollerEntry&>(*e));
            deferring_reads = false;
            for (auto h : deferred_reads) h.resume();
            deferred_reads.clear();
        }
        {
            auto lock = lock_wheel();
            if (wheel.size() == 0) {  // nothing waits: idle until the next wheel_add
                wheel_running = false;
                return;
            }
        }
        arm_wheel();
    }

    // On the poller's executor: its tick came, or its poll ran out of time.
    static void fire(PollerEntry& e) {
        Poller& p = *e.poller;
        if (!e.deadline) {
            std::exchange(p.tick_waiter, {}).resume();
            return;
        }
        p.deadline_expired = true;
        beast::error_code ignored;
        p.socket.cancel(ignored);  // the poll's pending socket operation ends with an error
    }

    // Under the wheel's lock. The posted handler runs before the poller can be freed: freeing
    // is posted to the same strand only after its coroutine returned, which it cannot do
    // before taking its deadline out of the wheel, under this lock.
    void fire_on_strand(PollerEntry& e) {
        Poller* p = e.poller;
        if (!e.deadline) {
            asio::post(p->executor, asio::bind_allocator(detail::PooledAllocator<void>{}, [p] { fire(p->tick_entry); }));
            return;
        }
        // A deadline whose poll ended meanwhile is stale: the generation tells.
        asio::post(p->executor, asio::bind_allocator(detail::PooledAllocator<void>{}, [p, generation = e.generation] {
                       if (p->poll_generation == generation) fire(p->deadline_entry);
                   }));
    }

    // One deadline bounds the whole poll: on expiry it cancels whatever socket operation is
    // pending. Cheaper than a timer per operation, and the poll's budget is what matters.
    void arm_deadline(Poller& p, Clock::time_point deadline) {
        p.deadline_expired = false;
        auto lock = lock_wheel();
        p.deadline_entry.generation = ++p.poll_generation;
        wheel_add(p.deadline_entry, grid_ms_ceil(deadline));
    }
    void disarm_deadline(Poller& p) {
        ++p.poll_generation;
        auto lock = lock_wheel();
        wheel.remove(p.deadline_entry);
    }

    // co_await sleep_until_tick(p, t): resumes at t on the 1 ms grid, or sooner from wake().
    struct TickSleep {
        Impl& group;
        Poller& p;
        Clock::time_point due;
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> h) {
            p.tick_waiter = h;
            auto lock = group.lock_wheel();
            group.wheel_add(p.tick_entry, grid_ms_ceil(due));
        }
        void await_resume() const noexcept {}
    };
    TickSleep sleep_until_tick(Poller& p, Clock::time_point due) { return {*this, p, due}; }

    // On the poller's executor: ends its wait for the next tick now (stop, cancel, retire).
    // A poller that is polling, or whose tick is already on its way, needs nothing.
    void wake(Poller& p) {
        {
            auto lock = lock_wheel();
            if (!p.tick_entry.linked()) return;
            wheel.remove(p.tick_entry);
        }
        std::exchange(p.tick_waiter, {}).resume();
    }

    struct Failure {
        PollError error;
        beast::error_code ec;
        int status = 0;
    };

    void record_failure(Poller& p, const Failure& f) {
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
    void log_host_event(Poller& p, std::string_view what, PauseReason reason, int status) {
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

    Task<beast::error_code> connect(Poller& p) {
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

    void schedule_backoff(Poller& p) {
        auto exp = std::min(p.connect_failures, 16U);
        auto ceiling = std::min(backoff_cap, backoff_base * (std::int64_t{1} << exp));
        auto jitter = nanoseconds(static_cast<std::int64_t>(p.next_random() % static_cast<std::uint64_t>(ceiling.count() + 1)));
        ++p.connect_failures;
        p.backoff_until = Clock::now() + jitter;
    }

    // Writes the request and reads one response into `parser`. The write goes straight to the
    // socket: a request is far smaller than the send buffer.
    // Interim (1xx) responses are skipped: p.parser ends up holding the final response.
    Task<beast::error_code> exchange(Poller& p) {
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
    Task<void> poll_once(Poller& p, bool probe, Clock::time_point start) {
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

    Task<void> run(Poller& p) {
        auto& st = p.source.stats;
        auto tick = p.schedule.first_tick(Clock::now().time_since_epoch());
        auto cancelled = [&p] { return p.control.load(std::memory_order_acquire) == PollerControl::cancelled; };
        for (;;) {
            if (stopping.load(std::memory_order_acquire) || cancelled()) break;
            co_await sleep_until_tick(p, Clock::time_point(duration_cast<Clock::duration>(tick)));
            if (stopping.load(std::memory_order_acquire) || cancelled()) break;
            const auto woke = Clock::now();
            auto now = woke;  // until a poll ends
            st.lateness.record(woke.time_since_epoch() - tick);
            if (p.control.load(std::memory_order_acquire) == PollerControl::paused) {
                st.paused_ticks.fetch_add(1, std::memory_order_relaxed);
            } else if (woke < p.backoff_until) {
                st.throttled_ticks.fetch_add(1, std::memory_order_relaxed);
            } else if (st.in_flight.fetch_add(1, std::memory_order_acq_rel) >=
                       p.source.max_in_flight.load(std::memory_order_relaxed)) {
                st.in_flight.fetch_sub(1, std::memory_order_acq_rel);
                st.throttled_ticks.fetch_add(1, std::memory_order_relaxed);
            } else {
                // Released even if the poll throws, so a bug cannot throttle the source for good.
                struct InFlight {
                    std::atomic<std::int64_t>& n;
                    ~InFlight() { n.fetch_sub(1, std::memory_order_acq_rel); }
                } in_flight{st.in_flight};
                if (p.last_poll_start != Clock::time_point{}) st.achieved_interval.record(woke - p.last_poll_start);
                p.last_poll_start = woke;
                // After max_in_flight, so a tick it refuses does not spend a token.
                const Admission admission = p.source.guard.admit(woke, p.source.config.cost);
                switch (admission) {
                    case Admission::go:
                    case Admission::probe: {
                        // A probe must be reported whatever happens, or the host's breaker
                        // stays half-open for good: poll_once reports it; this covers a throw.
                        p.probe_pending = admission == Admission::probe;
                        struct ProbeRelease {
                            Poller& p;
                            ~ProbeRelease() {
                                if (!p.probe_pending) return;
                                p.probe_pending = false;
                                p.source.guard.report(Clock::now(), HostVerdict::neutral, true);
                            }
                        } release{p};
                        p.polling.store(true, std::memory_order_relaxed);
                        co_await poll_once(p, admission == Admission::probe, woke);
                        p.polling.store(false, std::memory_order_relaxed);
                        now = p.poll_ended;
                        note_outcome(p, now - woke);
                        break;
                    }
                    case Admission::throttled: st.rate_limited_ticks.fetch_add(1, std::memory_order_relaxed); break;
                    case Admission::paused: st.host_paused_ticks.fetch_add(1, std::memory_order_relaxed); break;
                    case Admission::breaker_open: st.breaker_ticks.fetch_add(1, std::memory_order_relaxed); break;
                }
            }
            auto next = p.schedule.next(tick, now.time_since_epoch());
            if (next.skipped) st.skipped_ticks.fetch_add(next.skipped, std::memory_order_relaxed);
            tick = next.tick;
        }
        // Cancelled by an operator: nothing will use the connection again.
        if (cancelled() && !stopping.load(std::memory_order_acquire)) p.close_connection();
    }

    // The task table's per-poller view of the poll that just finished.
    static void note_outcome(Poller& p, Clock::duration took) {
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

    // Moves every selected poller whose control is in `from` to `to`.
    ControlResult change_control(const PollerFilter& filter, std::initializer_list<PollerControl> from,
                                 PollerControl to) {
        std::lock_guard lock(mutex);
        ControlResult result;
        for (auto& p : pollers) {
            if (p->retired || p->exited || !filter(p->source.config.name, p->symbol_name, p->tags)) continue;
            ++result.matched;
            for (PollerControl f : from) {
                auto expected = f;
                if (p->control.compare_exchange_strong(expected, to, std::memory_order_acq_rel)) {
                    ++result.changed;
                    // Wake a cancelled poller now rather than at its next tick.
                    if (to == PollerControl::cancelled)
                        asio::post(p->executor, [this, poller = p.get()] { wake(*poller); });
                    break;
                }
            }
        }
        return result;
    }

    void exited() {
        if (running.fetch_sub(1, std::memory_order_acq_rel) == 1 && on_all_exited) on_all_exited();
    }

    SourceSlot& slot_for(SourceId id, const SourceConfig& source) {  // under mutex
        while (slots.size() <= id) slots.push_back(std::make_unique<SourceSlot>());
        SourceSlot& slot = *slots[id];
        slot.name = source.name;
        slot.max_in_flight.store(static_cast<std::int64_t>(source.max_in_flight), std::memory_order_relaxed);
        return slot;
    }

    static std::string host_key(const HostConfig& host) {
        std::string key = host.host;
        if (host.port) key += ':' + std::to_string(host.port);
        return key;
    }

    // Under mutex. The guard of a host entry, created on first use.
    std::shared_ptr<HostGuard> guard_for(const HostConfig& host) {
        std::string key = host_key(host);
        auto it = guards.find(key);
        if (it != guards.end()) return it->second;
        auto guard = guards.emplace(key, std::make_shared<HostGuard>(host, Clock::now())).first->second;
        hosts.push_back(guard.get());
        host_keys.push_back(std::move(key));
        return guard;
    }

    // Under mutex. Frees the guards of hosts the running config does not name and no
    // poller uses (the map holds the only reference).
    void prune_hosts() {
        for (std::size_t h = 0; h < hosts.size();) {
            auto it = guards.find(host_keys[h]);
            const bool configured =
                std::find(configured_hosts.begin(), configured_hosts.end(), host_keys[h]) != configured_hosts.end();
            // A host the server paused or banned keeps its guard until the pause ends, so the
            // pause is still persisted and still holds if a reload brings the host back.
            const bool server_paused = it->second->status(Clock::now()).pause != PauseReason::none;
            if (configured || server_paused || it->second.use_count() > 1) {
                ++h;
                continue;
            }
            guards.erase(it);
            hosts.erase(hosts.begin() + static_cast<std::ptrdiff_t>(h));
            host_keys.erase(host_keys.begin() + static_cast<std::ptrdiff_t>(h));
        }
    }

    // Under mutex. The poller is not started.
    Poller& make_poller(const std::shared_ptr<SourceRuntime>& runtime, SymbolId id, const std::string& name) {
        auto executor = strands ? asio::any_io_executor(asio::make_strand(*io)) : asio::any_io_executor(io->get_executor());
        auto& p = *pollers.emplace_back(std::make_unique<Poller>(executor, *runtime, id, name));
        p.runtime = runtime;
        p.tags = poller_tags(runtime->config, name);
        return p;
    }

    void spawn(Poller* poller) {
        poller->on_exit = [this, poller](std::exception_ptr e) {
            {
                // A poll that threw left its deadline in the wheel. Out now, on the poller's
                // strand, so the wheel posts nothing for it after the erase posted below.
                auto lock = lock_wheel();
                wheel.remove(poller->tick_entry);
                wheel.remove(poller->deadline_entry);
            }
            if (e) {
                // A bug, not an I/O error: I/O errors never throw here. Keep the others going.
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& ex) {
                    log::error("poller crashed", {{"source", poller->source.config.name},
                                                  {"symbol", poller->symbol_name},
                                                  {"error", ex.what()}});
                }
            }
            bool remove = false;
            {
                std::lock_guard lock(mutex);
                poller->exited = true;
                remove = poller->retired;
            }
            // Freed by a handler posted behind anything already queued for this poller;
            // nothing is posted to it after `exited` was set.
            if (remove) asio::post(poller->executor, [this, poller] { erase(poller); });
            exited();
        };
        run(*poller).spawn(
            poller->executor, [](void* p, std::exception_ptr e) { static_cast<Poller*>(p)->on_exit(std::move(e)); },
            poller);
    }

    void erase(Poller* poller) {
        std::unique_ptr<Poller> dead;
        {
            std::lock_guard lock(mutex);
            auto it = std::find_if(pollers.begin(), pollers.end(), [&](auto& p) { return p.get() == poller; });
            if (it == pollers.end()) return;
            dead = std::move(*it);
            pollers.erase(it);
        }
        // The last poller of a runtime takes the runtime with it, and maybe the last use of
        // a host guard that a reload left unconfigured.
        dead.reset();
        std::lock_guard lock(mutex);
        prune_hosts();
    }
};

PollerGroup::PollerGroup(asio::io_context& io, const Config& config, const Universe& universe,
                         QuoteHandler on_quote)
    : impl_(std::make_unique<Impl>(std::move(on_quote))) {
    impl_->io = &io;
    impl_->wheel_timer.emplace(io);
    // A strand only when handlers of one poller could otherwise run on two threads.
    impl_->strands = config.runtime.threads > 1;
    std::unordered_map<std::string_view, SymbolId> symbol_ids;
    for (SymbolId i = 0; i < universe.symbols.size(); ++i) symbol_ids.emplace(universe.symbols[i], i);
    std::lock_guard lock(impl_->mutex);
    for (std::size_t h = 0; h < config.hosts.size(); ++h) {
        const HostConfig& host = config.hosts[h];
        impl_->guard_for(host);  // host_status(h) indexes Config::hosts
        impl_->configured_hosts.push_back(Impl::host_key(host));
        // Say so at start-up rather than let the venue say it with 429s and bans.
        const double demand = scheduled_demand(config, h);
        if (host.rate > 0 && demand > host.rate)
            log::warn("schedule exceeds the host's rate limit; ticks beyond it are skipped",
                      {{"host", host.host},
                       {"port", host.port},
                       {"requests_per_second", demand},
                       {"rate", host.rate},
                       {"achievable_share", host.rate / demand}});
    }
    for (SourceId s = 0; s < config.sources.size(); ++s) {
        const SourceConfig& sc = config.sources[s];
        const HostConfig& host = config.hosts.at(sc.host);
        auto runtime = std::make_shared<SourceRuntime>(sc, s, impl_->slot_for(s, sc), impl_->guard_for(host), host);
        for (auto& name : runtime->config.symbols) impl_->make_poller(runtime, symbol_ids.at(name), name);
    }
}

PollerGroup::~PollerGroup() = default;

void PollerGroup::start(std::function<void()> on_all_exited) {
    impl_->on_all_exited = std::move(on_all_exited);
    std::lock_guard lock(impl_->mutex);
    impl_->running.store(impl_->pollers.size());
    for (auto& p : impl_->pollers) impl_->spawn(p.get());
}

void PollerGroup::stop_scheduling() {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping.store(true, std::memory_order_release);
    for (auto& p : impl_->pollers)
        if (!p->exited) asio::post(p->executor, [impl = impl_.get(), poller = p.get()] { impl->wake(*poller); });
}

void PollerGroup::cancel_in_flight() {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping.store(true, std::memory_order_release);
    impl_->cancelling.store(true, std::memory_order_release);
    for (auto& p : impl_->pollers) {
        if (p->exited) continue;
        asio::post(p->executor, [impl = impl_.get(), poller = p.get()] {
            impl->wake(*poller);
            beast::error_code ignored;
            poller->socket.cancel(ignored);
        });
    }
}

void PollerGroup::close_connections(std::function<void()> done) {
    // On each poller's own executor: behind any cancel the drain posted there earlier.
    // Every poller has returned by now; retired ones closed theirs and are being freed.
    std::lock_guard lock(impl_->mutex);
    std::size_t live = 0;
    for (auto& p : impl_->pollers) live += p->retired ? 0 : 1;
    auto remaining = std::make_shared<std::atomic<std::size_t>>(live);
    auto finished = std::make_shared<std::function<void()>>(std::move(done));
    if (live == 0) (*finished)();
    for (auto& p : impl_->pollers) {
        if (p->retired) continue;
        asio::post(p->executor, [poller = p.get(), remaining, finished] {
            poller->close_connection();
            if (remaining->fetch_sub(1, std::memory_order_acq_rel) == 1) (*finished)();
        });
    }
}

void PollerGroup::flush_logs() { impl_->error_log.flush(); }

std::array<std::size_t, poller_state_count> PollerGroup::state_counts() const noexcept {
    std::array<std::size_t, poller_state_count> counts{};
    std::lock_guard lock(impl_->mutex);
    for (auto& p : impl_->pollers)
        if (!p->retired) ++counts[static_cast<std::size_t>(p->state.load(std::memory_order_relaxed))];
    return counts;
}

PollerGroup::ControlCounts PollerGroup::control_counts() const noexcept {
    ControlCounts counts;
    std::lock_guard lock(impl_->mutex);
    const auto now = Clock::now();
    // A handful of hosts: a flat list beats a set.
    std::vector<const HostGuard*> paused;
    for (const HostGuard* g : impl_->hosts)
        if (g->status(now).pause != PauseReason::none) paused.push_back(g);
    for (auto& p : impl_->pollers) {
        if (p->retired) continue;
        const auto control = p->control.load(std::memory_order_relaxed);
        ++counts.by_control[static_cast<std::size_t>(control)];
        if (control != PollerControl::active) continue;
        if (!paused.empty() && std::find(paused.begin(), paused.end(), &p->source.guard) != paused.end())
            ++counts.active_on_paused_host;
        else if (p->polls.load(std::memory_order_relaxed) == 0)
            ++counts.active_never_polled;
    }
    return counts;
}

std::size_t PollerGroup::size() const noexcept {
    std::lock_guard lock(impl_->mutex);
    return impl_->pollers.size();
}
std::size_t PollerGroup::running() const noexcept { return impl_->running.load(); }
std::size_t PollerGroup::polls_in_flight() const noexcept {
    std::int64_t n = 0;
    std::lock_guard lock(impl_->mutex);
    for (auto& s : impl_->slots) n += s->stats.in_flight.load(std::memory_order_relaxed);
    return static_cast<std::size_t>(std::max<std::int64_t>(n, 0));
}
const SourceStats& PollerGroup::stats(SourceId source) const {
    std::lock_guard lock(impl_->mutex);
    return impl_->slots.at(source)->stats;
}
std::size_t PollerGroup::source_count() const noexcept {
    std::lock_guard lock(impl_->mutex);
    return impl_->slots.size();
}
std::string PollerGroup::source_name(SourceId source) const {
    std::lock_guard lock(impl_->mutex);
    return impl_->slots.at(source)->name;
}

std::vector<PollerSnapshot> PollerGroup::snapshot() const {
    std::vector<PollerSnapshot> out;
    std::lock_guard lock(impl_->mutex);
    out.reserve(impl_->pollers.size());
    constexpr auto r = std::memory_order_relaxed;
    for (auto& p : impl_->pollers) {
        if (p->retired) continue;
        PollerSnapshot s;
        s.source = p->source.id;
        s.source_name = p->source.config.name;
        s.symbol = p->symbol_name;
        s.tags = p->tags;
        s.interval = p->source.config.interval;
        s.state = p->state.load(r);
        s.control = p->control.load(r);
        s.polling = p->polling.load(r);
        s.polls = p->polls.load(r);
        s.completed = p->completed.load(r);
        s.failed = p->failed.load(r);
        s.timed_out = p->timed_out.load(r);
        s.last_success_ns = p->last_success_ns.load(r);
        s.last_error_ns = p->last_error_ns.load(r);
        if (auto e = p->last_error.load(r); e < static_cast<std::uint8_t>(PollError::count_))
            s.last_error = static_cast<PollError>(e);
        s.last_latency_ns = p->last_latency_ns.load(r);
        out.push_back(s);
    }
    return out;
}

ControlResult PollerGroup::pause(const PollerFilter& filter) {
    return impl_->change_control(filter, {PollerControl::active}, PollerControl::paused);
}
ControlResult PollerGroup::resume(const PollerFilter& filter) {
    return impl_->change_control(filter, {PollerControl::paused}, PollerControl::active);
}
ControlResult PollerGroup::cancel(const PollerFilter& filter) {
    return impl_->change_control(filter, {PollerControl::active, PollerControl::paused},
                                 PollerControl::cancelled);
}

bool PollerGroup::add(SourceId id, const SourceConfig& source, const HostConfig& host,
                      const std::vector<std::pair<std::string, SymbolId>>& symbols) {
    std::lock_guard lock(impl_->mutex);
    if (impl_->stopping.load(std::memory_order_acquire)) return false;
    // A host already polled keeps its guard (bucket, pauses, breaker) and its limits.
    auto runtime = std::make_shared<SourceRuntime>(source, id, impl_->slot_for(id, source), impl_->guard_for(host), host);
    std::vector<Poller*> fresh;
    for (auto& [name, symbol] : symbols) fresh.push_back(&impl_->make_poller(runtime, symbol, name));
    impl_->running.fetch_add(fresh.size(), std::memory_order_acq_rel);
    for (Poller* p : fresh) impl_->spawn(p);
    return true;
}

std::vector<SymbolId> PollerGroup::symbols_held() const {
    std::vector<SymbolId> out;
    std::lock_guard lock(impl_->mutex);
    out.reserve(impl_->pollers.size());
    for (auto& p : impl_->pollers) out.push_back(p->symbol);
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

void PollerGroup::set_hosts(const std::vector<HostConfig>& hosts) {
    std::lock_guard lock(impl_->mutex);
    impl_->configured_hosts.clear();
    for (auto& h : hosts) impl_->configured_hosts.push_back(Impl::host_key(h));
    impl_->prune_hosts();
}

std::size_t PollerGroup::retire(const PollerFilter& filter) {
    std::lock_guard lock(impl_->mutex);
    std::size_t n = 0;
    for (auto& p : impl_->pollers) {
        if (p->retired || !filter(p->source.config.name, p->symbol_name, p->tags)) continue;
        p->retired = true;
        ++n;
        if (p->exited) {  // cancelled earlier by an operator: already returned
            asio::post(p->executor, [impl = impl_.get(), poller = p.get()] { impl->erase(poller); });
            continue;
        }
        p->control.store(PollerControl::cancelled, std::memory_order_release);
        asio::post(p->executor, [impl = impl_.get(), poller = p.get()] { impl->wake(*poller); });
    }
    return n;
}

void PollerGroup::set_tags(const SourceConfig& source) {
    std::lock_guard lock(impl_->mutex);
    for (auto& slot : impl_->slots)
        if (slot->name == source.name)
            slot->max_in_flight.store(static_cast<std::int64_t>(source.max_in_flight), std::memory_order_relaxed);
    for (auto& p : impl_->pollers)
        if (!p->retired && p->source.config.name == source.name) p->tags = poller_tags(source, p->symbol_name);
}

std::vector<std::string> poller_tags(const SourceConfig& source, std::string_view symbol) {
    std::vector<std::string> tags = source.tags;
    if (auto it = source.symbol_tags.find(std::string(symbol)); it != source.symbol_tags.end())
        for (auto& t : it->second)
            if (std::find(tags.begin(), tags.end(), t) == tags.end()) tags.push_back(t);
    return tags;
}

HostGuard::Status PollerGroup::host_status(std::size_t host) const {
    std::lock_guard lock(impl_->mutex);
    return impl_->hosts.at(host)->status(Clock::now());
}
std::vector<std::pair<std::string, HostGuard::Status>> PollerGroup::host_statuses() const {
    std::vector<std::pair<std::string, HostGuard::Status>> out;
    const auto now = Clock::now();
    std::lock_guard lock(impl_->mutex);
    for (std::size_t h = 0; h < impl_->hosts.size(); ++h) out.emplace_back(impl_->host_keys[h], impl_->hosts[h]->status(now));
    return out;
}
std::size_t PollerGroup::host_count() const noexcept {
    std::lock_guard lock(impl_->mutex);
    return impl_->hosts.size();
}
std::string PollerGroup::host_name(std::size_t host) const {
    std::lock_guard lock(impl_->mutex);
    return impl_->host_keys.at(host);
}

std::vector<ServerPause> PollerGroup::server_pauses() const {
    std::vector<ServerPause> out;
    std::lock_guard lock(impl_->mutex);
    const auto now = Clock::now();
    const auto wall = std::chrono::system_clock::now();
    for (std::size_t h = 0; h < impl_->hosts.size(); ++h) {
        const auto st = impl_->hosts[h]->status(now);
        if (st.pause == PauseReason::none) continue;
        const auto until = wall + duration_cast<std::chrono::system_clock::duration>(st.paused_until - now);
        out.push_back({impl_->host_keys[h], st.pause, std::chrono::floor<std::chrono::milliseconds>(until)});
    }
    return out;
}

std::size_t PollerGroup::restore_pauses(const std::vector<ServerPause>& pauses) {
    std::lock_guard lock(impl_->mutex);
    const auto now = Clock::now();
    const auto wall = std::chrono::system_clock::now();
    std::size_t applied = 0;
    for (auto& p : pauses) {
        auto it = impl_->guards.find(p.host);
        if (it == impl_->guards.end() || p.until <= wall) continue;
        HostGuard& guard = *it->second;
        guard.pause(now, p.reason, duration_cast<Clock::duration>(p.until - wall));
        ++applied;
        log::warn("host paused: a pause the server asked for before the restart still runs",
                  {{"host", p.host},
                   {"reason", to_string(p.reason)},
                   {"pause_ms", std::chrono::duration<double, std::milli>(guard.status(now).paused_until - now).count()}});
    }
    return applied;
}

}  // namespace mdagg

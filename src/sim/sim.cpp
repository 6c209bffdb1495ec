#include "mdagg/sim.hpp"

#include <mdagg/common.hpp>

#include "batch.hpp"
#include "book.hpp"
#include "faults.hpp"
#include "http_io.hpp"
#include "shapes.hpp"
#include "listeners.hpp"
#include "stream.hpp"
#include "tls.hpp"
#include "venue.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>
#include <nlohmann/json.hpp>

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <unordered_map>
#include <unordered_set>

namespace mdagg::sim {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

std::pair<std::string, std::uint16_t> parse_host_port(const std::string& text) {
    HostPort split;
    switch (split_host_port(text, split)) {
        case HostPortError::none: break;
        case HostPortError::malformed:
            throw std::invalid_argument((text.starts_with('[') ? "expected [IPV6]:PORT, got '"
                                                               : "expected HOST:PORT, got '") +
                                        text + "'");
        case HostPortError::needs_brackets:
            throw std::invalid_argument("an IPv6 host needs brackets: [" + std::string(split.host) + "]:PORT");
    }
    if (split.host.empty()) throw std::invalid_argument("empty host in '" + text + "'");
    std::uint16_t port = 0;
    if (!parse_port(split.port, port)) throw std::invalid_argument("bad port in '" + text + "'");
    return {std::string(split.host), port};
}

}  // namespace

void parse_listen(const std::string& text, Options& options) {
    std::tie(options.host, options.port) = parse_host_port(text);
}

void parse_control(const std::string& text, Options& options) {
    std::tie(options.control_host, options.control_port) = parse_host_port(text);
    options.control = true;
}

bool symbol_in_ratio(std::string_view symbol, double ratio) noexcept {
    return detail::symbol_in_ratio(symbol, ratio);
}

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

constexpr std::chrono::seconds kIdleTimeout{60};    // keep-alive idle / slow request header
constexpr std::chrono::seconds kWriteTimeout{30};   // a client that stops reading
constexpr std::chrono::seconds kLingerTimeout{2};   // draining after our FIN, like nginx
constexpr std::chrono::seconds kHandshakeTimeout{10};
constexpr std::chrono::milliseconds kAcceptBackoff{100};
constexpr std::uint32_t kHeaderLimit = 8 * 1024;
constexpr std::uint64_t kBodyLimit = 64 * 1024;     // GETs carry none; just bound the damage
constexpr std::size_t kBufferLimit = 256 * 1024;

void log_line(const std::string& message) {
    // stdout is reserved for the JSON event lines.
    std::fprintf(stderr, "mdagg-sim: %s\n", message.c_str());
}

// co_spawn's completion handler: `detached` would swallow an escaping exception silently.
struct LogExceptions {
    const char* where;
    void operator()(std::exception_ptr error) const {
        if (!error) return;
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& e) {
            log_line(std::string(where) + ": " + e.what());
        } catch (...) {
            log_line(std::string(where) + ": unknown exception");
        }
    }
};

// Status for a request we could not parse, or empty when there is nobody to answer
// (end of stream, timeout, reset).
std::string_view parse_error_status(const beast::error_code& ec) {
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow)
        return "431 Request Header Fields Too Large";
    if (ec == http::error::body_limit) return "413 Payload Too Large";
    if (ec == http::error::end_of_stream || ec == http::error::partial_message) return {};
    if (ec.category() == http::make_error_code(http::error::bad_method).category())
        return "400 Bad Request";
    return {};
}

std::string error_body(std::string_view error, std::string_view detail_key = {},
                       std::string_view detail = {}) {
    nlohmann::json body{{"error", error}};
    // The detail is client input: replace invalid UTF-8 instead of throwing.
    if (!detail_key.empty()) body[std::string(detail_key)] = std::string(detail);
    return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

namespace detail {

struct Connection {
    Connection(tcp::socket socket, asio::ssl::context* tls, std::uint64_t seed, bool control)
        : stream(std::move(socket), tls), timer(stream.get_executor()), buffer(kBufferLimit),
          rng(seed), control_plane(control) {
        head.reserve(256);
        body.reserve(256);
    }

    Stream stream;              // TCP, or TLS over it
    asio::steady_timer timer;   // added latency, fault pacing
    beast::flat_buffer buffer;  // lives as long as the connection: leftovers are the next request
    std::string target;         // these keep their capacity from request to request
    std::string request_body;
    std::string head;
    std::string body;
    std::string extra;  // extra response headers
    std::string zbody;  // gzip scratch
    bool gzip = false;  // the request accepts gzip
    detail::Shape shape = detail::Shape::quotes;  // of the quote request being answered (shapes.hpp)
    std::atomic<std::uint64_t>* gzip_count = nullptr;
    std::uint64_t rng;
    std::size_t responses = 0;
    std::vector<std::size_t> batch_took_seq;  // a batch answer's symbols that took a seq (batch.hpp)
    bool closed = false;  // set by stop() or a restart, on this connection's executor
    const bool control_plane;  // accepted on the control listener: no quotes, no faults
};

// One listening socket. Its acceptor and timers live on the simulator's main executor.
struct Listener {
    Listener(const asio::any_io_executor& executor, bool control)
        : acceptor(executor), backoff(executor), reopen(executor), control(control) {}

    tcp::acceptor acceptor;
    asio::steady_timer backoff;  // after an accept error
    asio::steady_timer reopen;   // retrying a bind after a refuse or restart
    tcp::endpoint endpoint;      // after the first bind, with the port actually bound
    std::uint64_t epoch = 0;     // bumped on close: an accept loop of an older epoch ends
    std::atomic<std::uint16_t> port{0};
    std::atomic<bool> open{false};
    const bool control;
};

}  // namespace detail

using detail::Connection;
using detail::Decision;
using detail::FaultKind;
using detail::Listener;

struct Simulator::Impl : std::enable_shared_from_this<Impl> {
    // A listener beside the first (options.more_listeners) shares its `book` and knows it as
    // `root`: see make_siblings().
    Impl(asio::io_context& io_context, Options opts, std::shared_ptr<detail::Book> shared_book = {},
         std::weak_ptr<Impl> root_impl = {}, std::size_t listener_index = 0)
        : io(io_context), options(std::move(opts)), tls(detail::TlsServer::make(options)),
          request_log(options.record_headers ? std::make_unique<detail::RequestLog>() : nullptr),
          book_ptr(shared_book ? std::move(shared_book) : std::make_shared<detail::Book>(options)),
          book(*book_ptr), root(std::move(root_impl)), index(listener_index),
          // io_context(1) promises a single run() thread, so one coroutine per connection
          // is already serialised: strands would only cost. Any other hint may mean
          // --threads N, and then the connection's handlers and stop()'s close need one.
          use_strands(asio::use_service<asio::detail::scheduler>(io).concurrency_hint() != 1),
          main(executor()), quote(main, false) {
        if (options.latency_min.count() < 0 || options.latency_max < options.latency_min)
            throw std::invalid_argument("latency must satisfy 0 <= min <= max");
        if (options.control) control = std::make_unique<Listener>(main, true);
        for (const auto& text : options.faults) {
            try {
                auto target = detail::split_fault_target(text, 1 + options.more_listeners.size());
                auto spec = detail::parse_fault(std::string_view(target.fault));
                if (target.listener == 0)
                    initial_faults.push_back(std::move(spec));
                else
                    sibling_faults.emplace_back(target.listener, std::move(spec));
            } catch (const std::invalid_argument& e) {
                throw std::invalid_argument("fault " + text + ": " + e.what());
            }
        }
    }

    enum class Route { quote, batch, hung, not_found, stats, control, method_not_allowed };
    // What a connection does after a request was dealt with.
    enum class After { keep_alive, linger, close };

    asio::io_context& io;
    const Options options;
    const std::unique_ptr<detail::TlsServer> tls;  // null: plain HTTP
    const std::unique_ptr<detail::RequestLog> request_log;  // null: not recorded
    std::shared_ptr<detail::Book> book_ptr;  // one book (one seq per symbol) for every listener
    detail::Book& book;
    // Several listeners: the first owns the others (`siblings`); they see it through `root`
    // (weak: a sibling's connections may outlive it).
    const std::weak_ptr<Impl> root;
    const std::size_t index;
    std::vector<std::shared_ptr<Impl>> siblings;
    std::vector<std::pair<std::size_t, detail::FaultSpec>> sibling_faults;  // until make_siblings
    const bool use_strands;
    // Acceptors, fault timers and the listener's hold count live here (a strand with
    // --threads N); any thread posts to it.
    asio::any_io_executor main;
    Listener quote;
    std::unique_ptr<Listener> control;
    std::atomic<bool> stopping{false};

    detail::FaultTable faults;
    std::vector<detail::FaultSpec> initial_faults;
    std::array<std::atomic<std::uint64_t>, detail::kFaultKinds> fault_counts{};
    // On `main` only:
    std::unordered_map<std::uint64_t, std::unique_ptr<asio::steady_timer>> fault_timers;
    std::unordered_set<std::uint64_t> listener_holders;  // refuse/restart faults in force

    std::atomic<std::uint64_t> responses{0};  // quote responses written completely
    std::atomic<std::uint64_t> requests{0};
    std::atomic<std::uint64_t> connections{0};
    std::atomic<std::uint64_t> open_connections{0};
    std::atomic<std::uint64_t> hung_requests{0};
    std::atomic<std::uint64_t> failed_writes{0};  // quotes whose seq was taken but not delivered
    std::atomic<std::uint64_t> abandoned_requests{0};  // the client closed during a delay: no answer
    std::atomic<std::uint64_t> not_found{0};
    std::atomic<std::uint64_t> bad_requests{0};
    std::atomic<std::uint64_t> control_requests{0};
    std::atomic<std::uint64_t> next_connection_id{0};
    std::atomic<std::uint64_t> quote_requests_in_progress{0};
    std::atomic<std::uint64_t> max_concurrent_requests{0};  // high-water mark of the above
    std::atomic<std::uint64_t> gzip_responses{0};

    std::mutex connections_mutex;
    // Weak: a connection's lifetime belongs to its coroutine; this map only finds it to close.
    std::unordered_map<Connection*, std::weak_ptr<Connection>> live;

    // On the first listener, once it is owned by a shared_ptr.
    void make_siblings() {
        for (std::size_t i = 0; i < options.more_listeners.size(); ++i) {
            Options o = options;
            o.host = options.more_listeners[i].host;
            o.port = options.more_listeners[i].port;
            o.more_listeners.clear();
            o.faults.clear();
            o.control = false;
            siblings.push_back(
                std::make_shared<Impl>(io, std::move(o), book_ptr, weak_from_this(), i + 1));
        }
        for (auto& [listener, spec] : sibling_faults)
            siblings[listener - 1]->initial_faults.push_back(std::move(spec));
        sibling_faults.clear();
    }

    Impl& member(std::size_t listener) { return listener == 0 ? *this : *siblings.at(listener - 1); }
    const Impl& member(std::size_t listener) const {
        return listener == 0 ? *this : *siblings.at(listener - 1);
    }
    std::shared_ptr<Impl> first() {
        auto r = root.lock();
        return r ? r : shared_from_this();
    }

    // A counter summed over this listener and its siblings.
    std::uint64_t total(const std::atomic<std::uint64_t> Impl::*counter) const {
        std::uint64_t n = (this->*counter).load(std::memory_order_relaxed);
        for (const auto& s : siblings) n += ((*s).*counter).load(std::memory_order_relaxed);
        return n;
    }

    detail::ListenerCounters counters() const {
        detail::ListenerCounters l;
        l.index = index;
        l.host = options.host;
        l.port = quote.port.load();
        l.listening = quote.open.load();
        l.responses = responses.load();
        l.requests = requests.load();
        l.connections = connections.load();
        l.open_connections = open_connections.load();
        l.failed_writes = failed_writes.load();
        l.abandoned_requests = abandoned_requests.load();
        l.active_faults = faults.size(detail::SteadyClock::now());
        l.refused = fault_counts[static_cast<std::size_t>(FaultKind::refuse)].load() +
                    fault_counts[static_cast<std::size_t>(FaultKind::restart)].load();
        return l;
    }

    std::string listeners_json() const {
        std::vector<detail::ListenerCounters> all{counters()};
        for (const auto& s : siblings) all.push_back(s->counters());
        std::string out;
        detail::append_listeners_json(out, all);
        return out;
    }

    asio::any_io_executor executor() {
        if (use_strands) return asio::make_strand(io);
        return io.get_executor();
    }

    bool track(const std::shared_ptr<Connection>& c) {
        std::lock_guard lock(connections_mutex);
        if (stopping.load()) return false;  // stop() already swept the map
        live.emplace(c.get(), c);
        connections.fetch_add(1, std::memory_order_relaxed);
        open_connections.fetch_add(1, std::memory_order_relaxed);
        return true;
    }

    void untrack(Connection* c) {
        std::lock_guard lock(connections_mutex);
        if (live.erase(c) != 0) open_connections.fetch_sub(1, std::memory_order_relaxed);
    }

    // Closes connections on their own executors; with `quotes_only`, spares the control plane.
    void close_connections(bool quotes_only) {
        std::lock_guard lock(connections_mutex);
        for (auto& [raw, weak] : live) {
            auto c = weak.lock();
            if (!c || (quotes_only && c->control_plane)) continue;
            asio::post(c->stream.get_executor(), [c] {
                c->closed = true;
                beast::error_code ignored;
                c->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
                c->stream.close();
                c->timer.cancel();
            });
        }
    }

    tcp::endpoint resolve(const std::string& host, std::uint16_t port) {
        beast::error_code ec;
        const auto address = asio::ip::make_address(host, ec);
        if (!ec) return tcp::endpoint(address, port);
        tcp::resolver resolver(io);
        auto results = resolver.resolve(host, std::to_string(port), tcp::resolver::passive, ec);
        if (ec) throw std::system_error(ec, "resolve " + host);
        return results.begin()->endpoint();
    }

    // Binds and starts the accept loop; throws std::system_error. On `main`, or before run().
    void open_listener(Listener& l) {
        beast::error_code ec;
        const std::string where = l.endpoint.address().to_string() + ":" +
                                  std::to_string(l.endpoint.port());
        auto check = [&](const char* step) {
            if (!ec) return;
            beast::error_code ignored;
            l.acceptor.close(ignored);
            throw std::system_error(ec, std::string(step) + " " + where);
        };
        l.acceptor.open(l.endpoint.protocol(), ec);
        check("open");
        l.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
        check("reuse_address");
        l.acceptor.bind(l.endpoint, ec);
        check("bind");
        l.acceptor.listen(asio::socket_base::max_listen_connections, ec);
        check("listen");
        const auto local = l.acceptor.local_endpoint(ec);
        check("local_endpoint");
        l.endpoint = local;  // a reopen binds the same port, even when the option said 0
        l.port.store(local.port());
        l.open.store(true);
        asio::co_spawn(main, accept_loop(shared_from_this(), &l, ++l.epoch),
                       LogExceptions{"accept loop"});
    }

    void close_listener(Listener& l) {
        ++l.epoch;
        l.open.store(false);
        beast::error_code ignored;
        l.acceptor.close(ignored);
        l.backoff.cancel();
        l.reopen.cancel();
    }

    // On main. The port may be briefly taken by someone else: retry until it is ours again.
    void reopen_quote_listener() {
        if (stopping.load() || !listener_holders.empty() || quote.open.load()) return;
        try {
            open_listener(quote);
            log_line("quote listener reopened on port " + std::to_string(quote.port.load()));
        } catch (const std::system_error& e) {
            log_line(std::string("reopening the quote listener: ") + e.what());
            quote.reopen.expires_after(kAcceptBackoff);
            quote.reopen.async_wait([self = shared_from_this()](beast::error_code ec) {
                if (!ec) self->reopen_quote_listener();
            });
        }
    }

    void start() {
        if (stopping.load()) return;
        quote.endpoint = resolve(options.host, options.port);
        if (control) control->endpoint = resolve(options.control_host, options.control_port);
        open_listener(quote);
        if (control) open_listener(*control);
        for (auto& spec : initial_faults) add_fault(std::move(spec));
        initial_faults.clear();
        for (auto& s : siblings) s->start();
    }

    void stop() {
        if (stopping.exchange(true)) return;
        for (auto& s : siblings) s->stop();
        auto self = shared_from_this();
        asio::post(main, [self] {
            self->close_listener(self->quote);
            if (self->control) self->close_listener(*self->control);
            self->fault_timers.clear();  // destroying a timer cancels its wait
            self->listener_holders.clear();
        });
        close_connections(false);
    }

    // ---- faults: the table decides, `main` carries out timers and listener holds ----

    // Fault ids are per listener: the log names the listener when there are several.
    std::string fault_name(std::uint64_t id) const {
        std::string name = std::string("fault ").append(std::to_string(id));
        if (index != 0 || !siblings.empty()) name += " on listener " + std::to_string(index);
        return name;
    }

    std::uint64_t add_fault(detail::FaultSpec spec) {
        const auto kind = spec.kind;
        const auto after = spec.after;
        const auto duration = spec.duration;
        const bool drop = spec.drop_connections;
        const std::string text =
            spec.source.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        const std::uint64_t id = faults.add(std::move(spec), detail::SteadyClock::now());
        // A fault timeline on stderr explains a chaos test's failure; faults change rarely.
        log_line(fault_name(id) + " added: " + text);
        asio::post(main, [self = shared_from_this(), id, kind, after, duration, drop] {
            if (self->stopping.load()) return;
            if (after.count() == 0) return self->activate(id, kind, duration, drop);
            // Removed before it starts: erasing the timer cancels the activation.
            self->start_timer(id, after, [id, kind, duration, drop](Impl& impl) {
                impl.activate(id, kind, duration, drop);
            });
        });
        return id;
    }

    // On main: the fault's side effects and its end, once it starts.
    void activate(std::uint64_t id, FaultKind kind, std::optional<std::chrono::microseconds> duration,
                  bool drop) {
        if (kind == FaultKind::refuse || kind == FaultKind::restart) {
            fault_counts[static_cast<std::size_t>(kind)].fetch_add(1);
            listener_holders.insert(id);
            if (quote.open.load()) close_listener(quote);
            log_line(fault_name(id) + ": quote listener closed (" +
                     std::string(detail::kind_name(kind)) + ")");
            if (drop) close_connections(true);
        }
        if (duration)
            start_timer(id, *duration, [id](Impl& impl) { impl.remove_fault(id); });
        else
            fault_timers.erase(id);
    }

    template <class Then>
    void start_timer(std::uint64_t id, std::chrono::microseconds after, Then then) {
        auto timer = std::make_unique<asio::steady_timer>(main, after);
        timer->async_wait([weak = weak_from_this(), then](beast::error_code ec) {
            if (auto impl = weak.lock(); impl && !ec && !impl->stopping.load()) then(*impl);
        });
        fault_timers[id] = std::move(timer);  // replaces (and so cancels) an earlier one
    }

    void after_removal(std::uint64_t id) {
        asio::post(main, [self = shared_from_this(), id] {
            self->fault_timers.erase(id);
            if (self->listener_holders.erase(id) != 0) self->reopen_quote_listener();
        });
    }

    bool remove_fault(std::uint64_t id) {
        if (!faults.remove(id)) return false;
        log_line(fault_name(id) + " removed");
        after_removal(id);
        return true;
    }

    std::vector<std::uint64_t> clear_faults() {
        std::vector<std::uint64_t> ids;
        for (auto& [id, spec] : faults.clear()) {
            ids.push_back(id);
            after_removal(id);
        }
        if (!ids.empty()) log_line("faults cleared: " + std::to_string(ids.size()));
        return ids;
    }

    void count_fault(FaultKind kind) {
        fault_counts[static_cast<std::size_t>(kind)].fetch_add(1, std::memory_order_relaxed);
    }

    // ---- the control API over HTTP ----

    // Fills c.head/c.body for a request under /control/.
    void control_response(Connection& c, http::verb method, bool keep_alive, int version) {
        auto top = first();
        auto listener = detail::parse_listener_path(c.target, 1 + top->siblings.size());
        if (listener.kind == detail::ListenerPath::Kind::forward) {
            c.target = std::move(listener.target);
            return top->member(listener.listener).control_response(c, method, keep_alive, version);
        }
        control_requests.fetch_add(1, std::memory_order_relaxed);
        if (listener.kind != detail::ListenerPath::Kind::not_listener) {
            const bool list = listener.kind == detail::ListenerPath::Kind::list;
            if (list && method != http::verb::get) {
                c.body = error_body("method not allowed");
                return detail::frame_response(c.head, "405 Method Not Allowed", c.body.size(),
                                              keep_alive, version, "Allow: GET\r\n");
            }
            // Appended, not "literal" + string: g++ 12's -O3 -Wrestrict false positive.
            c.body = list ? std::string("{\"listeners\":").append(top->listeners_json()).append("}")
                          : error_body("no such listener", "path", c.target);
            return detail::frame_response(c.head, list ? "200 OK" : "404 Not Found",
                                          c.body.size(), keep_alive, version);
        }
        const std::string_view path = std::string_view(c.target).substr(0, c.target.find('?'));
        constexpr std::string_view collection = "/control/faults";
        std::string_view status = "200 OK";
        std::string_view extra;
        auto json = [](const nlohmann::json& j) {
            return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        };
        if (path == collection || path == "/control/faults/") {
            if (method == http::verb::get) {
                c.body = faults_json();
            } else if (method == http::verb::post) {
                try {
                    auto spec = detail::parse_fault(std::string_view(c.request_body));
                    const std::string kind(detail::kind_name(spec.kind));
                    const auto id = add_fault(std::move(spec));
                    status = "201 Created";
                    c.body = json({{"id", id}, {"kind", kind}});
                } catch (const std::invalid_argument& e) {
                    status = "400 Bad Request";
                    c.body = error_body("bad fault", "reason", e.what());
                }
            } else if (method == http::verb::delete_) {
                c.body = json({{"deleted", clear_faults()}});
            } else {
                status = "405 Method Not Allowed";
                extra = "Allow: GET, POST, DELETE\r\n";
                c.body = error_body("method not allowed");
            }
        } else if (path.substr(0, collection.size() + 1) == "/control/faults/") {
            const std::string_view id_text = path.substr(collection.size() + 1);
            std::uint64_t id = 0;
            auto [end, ec] = std::from_chars(id_text.data(), id_text.data() + id_text.size(), id);
            if (method != http::verb::delete_) {
                status = "405 Method Not Allowed";
                extra = "Allow: DELETE\r\n";
                c.body = error_body("method not allowed");
            } else if (ec != std::errc{} || end != id_text.data() + id_text.size()) {
                status = "400 Bad Request";
                c.body = error_body("bad fault id", "id", id_text);
            } else if (remove_fault(id)) {
                c.body = json({{"deleted", std::vector<std::uint64_t>{id}}});
            } else {
                status = "404 Not Found";
                c.body = error_body("no such fault", "id", id_text);
            }
        } else {
            status = "404 Not Found";
            c.body = error_body("not found", "path", path);
        }
        detail::frame_response(c.head, status, c.body.size(), keep_alive, version, extra);
    }

    std::string faults_json() const {
        return faults.list(detail::SteadyClock::now())
            .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }

    // ---- connections ----

    static asio::awaitable<void> accept_loop(std::shared_ptr<Impl> self, Listener* l,
                                             std::uint64_t epoch) {
        for (;;) {
            auto [ec, socket] = co_await l->acceptor.async_accept(self->executor(), nothrow);
            if (self->stopping.load() || l->epoch != epoch) co_return;
            if (ec) {
                if (ec == asio::error::operation_aborted || !l->acceptor.is_open()) co_return;
                // EMFILE and friends: pause instead of spinning on a ready-but-failing accept.
                log_line("accept: " + ec.message());
                l->backoff.expires_after(kAcceptBackoff);
                co_await l->backoff.async_wait(nothrow);
                if (l->epoch != epoch) co_return;
                continue;
            }
            beast::error_code ignored;
            socket.set_option(tcp::no_delay(true), ignored);
            const std::uint64_t id = self->next_connection_id.fetch_add(1);
            auto c = std::make_shared<Connection>(
                std::move(socket), self->tls ? &self->tls->context() : nullptr,
                detail::stable_hash(std::to_string(id)) ^ self->options.seed,
                l->control);
            c->gzip_count = &self->gzip_responses;
            if (!self->track(c)) co_return;
            auto executor = c->stream.get_executor();
            asio::co_spawn(executor, session(self, std::move(c)), LogExceptions{"connection"});
        }
    }

    Route route(http::verb method, std::string_view target, bool control_plane,
                std::size_t& index) const {
        std::string_view path = target.substr(0, target.find('?'));
        constexpr std::string_view quotes = "/quotes/";
        if (path.substr(0, 9) == "/control/" || path == "/control") return Route::control;
        if (path == "/stats")
            return method == http::verb::get ? Route::stats : Route::method_not_allowed;
        if ((path.starts_with("/batch/") || detail::is_batch_target(target)) && !control_plane)
            return method == http::verb::get ? Route::batch : Route::method_not_allowed;
        if (path.substr(0, quotes.size()) == quotes && !control_plane) {
            if (method != http::verb::get) return Route::method_not_allowed;
            const std::string_view name = path.substr(quotes.size());
            if (auto found = book.find(name)) {
                index = *found;
                return book.hung(index) ? Route::hung : Route::quote;
            }
            return book.is_hung(name) ? Route::hung : Route::not_found;
        }
        if (auto shaped = detail::shaped_request(target); shaped && !control_plane) {
            if (method != http::verb::get) return Route::method_not_allowed;
            if (auto found = book.find(shaped->symbol)) {
                index = *found;
                return book.hung(index) ? Route::hung : Route::quote;
            }
        }
        return Route::not_found;
    }

    std::chrono::microseconds draw_latency(Connection& c) const {
        const auto span =
            static_cast<std::uint64_t>((options.latency_max - options.latency_min).count());
        const std::uint64_t r = detail::next_random(c.rng);
        return options.latency_min + std::chrono::microseconds(span == 0 ? 0 : r % (span + 1));
    }

    // Formats c.head and c.body. A quote takes its symbol's next seq here.
    void fill_response(Connection& c, Route route, std::size_t index, bool keep_alive,
                       int version) {
        std::string_view status = "200 OK";
        std::string_view extra = c.extra;
        c.body.clear();
        switch (route) {
            case Route::quote:
                detail::append_shaped_json(c.body, c.shape, book, index, book.next(index));
                break;
            case Route::batch:
                if (!fill_batch(c)) {
                    bad_requests.fetch_add(1, std::memory_order_relaxed);
                    status = "400 Bad Request";
                    c.body = error_body("bad batch request", "path", std::string_view(c.target).substr(0, c.target.find('?')));
                }
                break;
            case Route::stats:
                c.body = stats_json();
                break;
            case Route::not_found: {
                not_found.fetch_add(1, std::memory_order_relaxed);
                status = "404 Not Found";
                const auto path = std::string_view(c.target).substr(0, c.target.find('?'));
                if (c.control_plane && path.substr(0, 8) == "/quotes/")
                    c.body = error_body("the control listener serves /control/ and /stats only",
                                        "path", path);
                else
                    c.body = path.substr(0, 8) == "/quotes/"
                                 ? error_body("unknown symbol", "symbol", path.substr(8))
                                 : error_body("not found", "path", path);
                break;
            }
            case Route::method_not_allowed:
                status = "405 Method Not Allowed";
                extra = "Allow: GET\r\n";
                c.body = error_body("method not allowed");
                break;
            case Route::control:
            case Route::hung:
                break;  // elsewhere / never answered
        }
        detail::frame_response(c.head, status, c.body.size(), keep_alive, version, extra);
    }

    // A batch answer; each entry a fault selects is corrupted alone (docs/simulator.md).
    bool fill_batch(Connection& c) {
        c.batch_took_seq.clear();
        const auto ask = detail::parse_batch_target(c.target, book);
        if (!ask) return false;
        auto corrupt = [&](std::size_t index) {
            if (!faults.active()) return false;
            const Decision d = faults.decide(book.name(index), c.responses, c.rng, detail::SteadyClock::now());
            if (d.kind == FaultKind::none) return false;
            count_fault(d.kind);
            return true;
        };
        detail::append_batch_body(c.body, *ask, book, corrupt, c.batch_took_seq);
        return true;
    }

    // Extra headers a quote request's answer carries: Retry-After, a rate limit's usage.
    static void fill_extra(Connection& c, const Decision& d) {
        c.extra.clear();
        if (d.retry_after && d.retry_after_form != detail::RetryAfterForm::none) {
            c.extra += "Retry-After: ";
            c.extra += detail::retry_after_value(*d.retry_after, d.retry_after_form);
            c.extra += "\r\n";
        }
        if (d.usage) {
            c.extra += d.usage->usage_header;
            c.extra += ": ";
            c.extra += std::to_string(d.used);
            c.extra += "\r\n";
        }
    }

    static asio::awaitable<beast::error_code> write_response(Connection& c) {
        if (c.gzip && !c.body.empty()) {
            detail::gzip_response(c.head, c.body, c.zbody);
            if (c.gzip_count) c.gzip_count->fetch_add(1, std::memory_order_relaxed);
        }
        c.stream.expires_after(kWriteTimeout);
        auto [ec, n] = co_await asio::async_write(
            c.stream, std::array{asio::buffer(c.head), asio::buffer(c.body)}, nothrow);
        (void)n;
        co_return ec;
    }

    static asio::awaitable<beast::error_code> write_bytes(Connection& c, std::string_view bytes) {
        c.stream.expires_after(kWriteTimeout);
        auto [ec, n] = co_await asio::async_write(c.stream, asio::buffer(bytes), nothrow);
        (void)n;
        co_return ec;
    }

    // The peer sent its FIN (or reset): a non-blocking peek finds the end of the stream.
    static bool peer_closed(Connection& c) {
        char byte;
        const ssize_t n = ::recv(c.stream.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
    }

    static asio::awaitable<bool> pause(Connection& c, std::chrono::microseconds delay) {
        c.timer.expires_after(delay);
        co_await c.timer.async_wait(nothrow);
        co_return !c.closed;
    }

    // Reads and drops input until the peer closes, the stream's deadline passes or stop()
    // closes the socket. A pending read costs nothing: no polling, no spinning.
    static asio::awaitable<void> discard_until_closed(Connection& c) {
        c.buffer.consume(c.buffer.size());
        for (;;) {
            auto [ec, n] = co_await c.stream.async_read_some(c.buffer.prepare(4096), nothrow);
            (void)n;
            if (ec) co_return;
        }
    }

    // Answers (or refuses to answer) a quote request the fault table picked a fault for.
    // `keep_alive` is what a complete response would have promised.
    asio::awaitable<After> serve_fault(Connection& c, const Decision& d, std::size_t index,
                                       bool keep_alive, int version) {
        const After done = keep_alive ? After::keep_alive : After::linger;
        const std::string_view name = book.name(index);
        std::string status_line;
        auto status_text = [&status_line](int status) -> std::string_view {
            status_line = std::to_string(status) + " " +
                          std::string(http::obsolete_reason(
                              http::int_to_status(static_cast<unsigned>(status))));
            return status_line;
        };
        auto quote_shaped = [&] {
            c.body.clear();
            book.append_fake_json(c.body, index);
        };
        switch (d.kind) {
            case FaultKind::hang:
                c.stream.expires_never();  // held until the client gives up or stop()
                co_await discard_until_closed(c);
                co_return After::close;
            case FaultKind::close_after:
                co_return After::close;
            case FaultKind::status:
            case FaultKind::too_many_requests:
            case FaultKind::rate_limited:
            case FaultKind::ban:
            case FaultKind::body_error:
            case FaultKind::malformed:
            case FaultKind::oversized: {
                std::string_view status = "200 OK";
                if (d.kind == FaultKind::body_error) {
                    c.body = d.spec->body;
                    status = status_text(d.status);
                } else if (d.kind == FaultKind::malformed) {
                    c.body = d.spec->body;
                    if (c.body.empty()) {
                        quote_shaped();
                        c.body.resize(c.body.size() / 2);  // stops mid-value: never valid
                    }
                } else if (d.kind == FaultKind::oversized) {
                    quote_shaped();
                    constexpr std::string_view pad_key = ",\"padding\":\"";
                    const std::size_t fixed = c.body.size() + pad_key.size() + 1;  // `"` + `}`
                    c.body.pop_back();  // the closing brace
                    c.body += pad_key;
                    c.body.append(d.spec->size > fixed ? d.spec->size - fixed : 0, 'x');
                    c.body += "\"}";
                } else {
                    status = status_text(d.status);
                    nlohmann::json body{{"error", "injected fault"},
                                        {"fault", detail::kind_name(d.kind)},
                                        {"status", d.status}};
                    c.body = body.dump();
                }
                fill_extra(c, d);
                ++c.responses;
                detail::frame_response(c.head, status, c.body.size(), keep_alive, version,
                                       c.extra);
                if (co_await write_response(c)) co_return After::close;
                co_return done;
            }
            case FaultKind::truncated:
            case FaultKind::reset: {
                quote_shaped();
                fill_extra(c, d);
                detail::frame_response(c.head, "200 OK", c.body.size(), keep_alive, version,
                                       c.extra);
                // truncated: after_bytes counts body bytes, and at least one is withheld;
                // reset: it counts every byte, head included.
                std::size_t n = 0;
                if (d.kind == FaultKind::truncated)
                    n = c.head.size() + std::min(d.spec->after_bytes.value_or(c.body.size() / 2),
                                                 c.body.size() - 1);
                else
                    n = std::min(d.spec->after_bytes.value_or(c.head.size() + c.body.size() / 2),
                                 c.head.size() + c.body.size());
                c.head += c.body;
                if (co_await write_bytes(c, std::string_view(c.head).substr(0, n)))
                    co_return After::close;
                if (d.kind == FaultKind::truncated) co_return After::linger;  // FIN, then drain
                beast::error_code ignored;
                c.stream.socket().set_option(asio::socket_base::linger(true, 0), ignored);
                c.stream.close();  // RST
                co_return After::close;
            }
            case FaultKind::endless_headers: {
                c.head = version == 10 ? "HTTP/1.0 200 OK\r\n" : "HTTP/1.1 200 OK\r\n";
                c.head += "Content-Type: application/json\r\n";
                for (std::uint64_t line = 0;; ++line) {
                    if (co_await write_bytes(c, c.head)) break;
                    if (!co_await pause(c, d.spec->interval)) break;
                    c.head = "X-Filler-" + std::to_string(line) + ": " + std::string(name) +
                             "\r\n";
                }
                co_return After::close;
            }
            case FaultKind::trickle: {
                // A good quote, only slow: it takes a seq and counts once fully written.
                fill_extra(c, d);
                ++c.responses;
                fill_response(c, Route::quote, index, keep_alive, version);
                c.head += c.body;
                beast::error_code ec;
                for (std::size_t at = 0; at < c.head.size() && !ec; at += d.spec->chunk) {
                    if (at != 0 && !co_await pause(c, d.spec->interval)) {
                        ec = asio::error::operation_aborted;
                        break;
                    }
                    ec = co_await write_bytes(
                        c, std::string_view(c.head).substr(at, d.spec->chunk));
                }
                count_quote(index, !ec);
                co_return ec ? After::close : done;
            }
            case FaultKind::interim: {
                // A good quote (it takes a seq) after an interim response, written on its own
                // so the client sees it arrive before the final answer. HTTP/1.0 clients never
                // get a 1xx (RFC 9110 15.2).
                if (version != 10) {
                    c.head = d.status == 103 ? "HTTP/1.1 103 Early Hints\r\nLink: </quotes>; rel=preload\r\n\r\n"
                                             : "HTTP/1.1 100 Continue\r\n\r\n";
                    if (co_await write_bytes(c, c.head)) co_return After::close;
                }
                fill_extra(c, d);
                ++c.responses;
                fill_response(c, Route::quote, index, keep_alive, version);
                const beast::error_code ec = co_await write_response(c);
                count_quote(index, !ec);
                co_return ec ? After::close : done;
            }
            case FaultKind::latency:
            case FaultKind::refuse:
            case FaultKind::restart:
            case FaultKind::rate_limit:
            case FaultKind::none:
                break;
        }
        co_return done;
    }

    Impl* enter_quote_request() {
        const auto now = quote_requests_in_progress.fetch_add(1, std::memory_order_relaxed) + 1;
        auto seen = max_concurrent_requests.load(std::memory_order_relaxed);
        while (now > seen && !max_concurrent_requests.compare_exchange_weak(seen, now, std::memory_order_relaxed)) {
        }
        return this;
    }

    void count_quote(std::size_t index, bool written) {
        if (!written) {
            // That seq is gone for good; counting it keeps seq == written + failed.
            failed_writes.fetch_add(1, std::memory_order_relaxed);
        } else {
            book.count_written(index);
            responses.fetch_add(1, std::memory_order_relaxed);
        }
    }

    static asio::awaitable<void> session(std::shared_ptr<Impl> self,
                                         std::shared_ptr<Connection> c) {
        struct Untrack {
            Impl& impl;
            Connection* connection;
            ~Untrack() { impl.untrack(connection); }
        } untrack{*self, c.get()};

        auto& stream = c->stream;
        bool linger = false;  // we sent "Connection: close": half-close and drain
        if (self->tls && !co_await self->tls->handshake(stream, kHandshakeTimeout)) {
            stream.close();
            co_return;
        }
        for (;;) {
            // After stop(), pipelined requests already buffered must not be answered.
            if (c->closed) break;
            stream.expires_after(kIdleTimeout);
            detail::RequestParser parser(c->target, c->request_body);
            parser.header_limit(kHeaderLimit);
            parser.body_limit(kBodyLimit);
            parser.record_into(self->request_log.get());
            auto [read_ec, read_n] = co_await http::async_read(stream, c->buffer, parser, nothrow);
            (void)read_n;
            if (read_ec) {
                const std::string_view status = parse_error_status(read_ec);
                if (status.empty() || c->closed) break;
                self->bad_requests.fetch_add(1, std::memory_order_relaxed);
                c->body = error_body("bad request", "reason", read_ec.message());
                detail::frame_response(c->head, status, c->body.size(), false, 11);
                linger = !co_await write_response(*c);
                break;
            }
            self->requests.fetch_add(1, std::memory_order_relaxed);
            c->gzip = parser.accepts_gzip();
            if (self->request_log) self->request_log->query(c->target);

            std::size_t index = 0;
            const Route route = self->route(parser.method(), c->target, c->control_plane, index);
            const auto shaped = detail::shaped_request(c->target);
            c->shape = shaped ? shaped->shape : detail::Shape::quotes;
            // A quote request is in progress from here until its answer is written (or the
            // connection gives up on it): a test checks a client's concurrency bound with this.
            struct InProgress {
                Impl* impl;
                ~InProgress() {
                    if (impl) impl->quote_requests_in_progress.fetch_sub(1, std::memory_order_relaxed);
                }
            } in_progress{route == Route::quote || route == Route::batch || route == Route::hung
                              ? self->enter_quote_request()
                              : nullptr};
            if (route == Route::hung) {
                self->hung_requests.fetch_add(1, std::memory_order_relaxed);
                stream.expires_never();  // held until the client gives up or stop()
                co_await discard_until_closed(*c);
                break;
            }

            // One relaxed load while no fault is active: the fast path stays as it was.
            Decision decision;
            if (route == Route::quote && self->faults.active()) {
                decision = self->faults.decide(self->book.name(index), c->responses, c->rng,
                                               detail::SteadyClock::now());
                if (decision.delay.count() > 0) self->count_fault(FaultKind::latency);
            }
            auto delay = decision.delay;
            if ((route == Route::quote || route == Route::not_found) &&
                self->options.latency_max.count() > 0)
                delay += self->draw_latency(*c);
            if (delay.count() > 0 && !co_await pause(*c, delay)) break;
            // A client that gave up during the delay (a hedged poll's loser, a timeout) closed
            // its end: no answer goes out, and the request is counted as abandoned, so a test
            // can match responses against what the client says it read. Only after a delay:
            // the fast path is unchanged.
            if (delay.count() > 0 && peer_closed(*c)) {
                self->abandoned_requests.fetch_add(1, std::memory_order_relaxed);
                break;
            }

            const std::size_t max = self->options.max_requests_per_connection;
            const bool keep_alive = parser.keep_alive() && !self->stopping.load() &&
                                    (max == 0 || c->responses + 1 < max);
            if (decision.kind != FaultKind::none) {
                self->count_fault(decision.kind);
                const After after =
                    co_await self->serve_fault(*c, decision, index, keep_alive, parser.version());
                if (after == After::keep_alive) continue;
                linger = after == After::linger;
                break;
            }

            ++c->responses;
            if (route == Route::control) {
                self->control_response(*c, parser.method(), keep_alive, parser.version());
            } else {
                if (decision.usage)
                    fill_extra(*c, decision);
                else
                    c->extra.clear();
                self->fill_response(*c, route, index, keep_alive, parser.version());
            }
            const beast::error_code write_ec = co_await write_response(*c);
            if (route == Route::quote) self->count_quote(index, !write_ec);
            if (route == Route::batch)
                for (const std::size_t took : c->batch_took_seq) self->count_quote(took, !write_ec);
            if (write_ec) break;
            if (!keep_alive) {
                linger = true;
                break;
            }
        }

        beast::error_code ignored;
        if (linger && !c->closed && stream.tls()) {
            co_await detail::TlsServer::shutdown(stream, kLingerTimeout);  // close_notify both ways
        } else if (linger && !c->closed) {
            // Closing with unread input would send RST, and the peer could lose our last
            // response. Half-close and drain until the peer closes, like nginx's lingering
            // close.
            stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
            stream.expires_after(kLingerTimeout);
            co_await discard_until_closed(*c);
        }
        stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream.close();
    }

    std::string stats_json() const {
        if (auto r = root.lock()) return r->stats_json();  // every listener reports them all
        // Built by hand: nlohmann::ordered_json inserts in O(n) per key, and per_symbol can
        // hold many thousands of symbols.
        std::string out;
        out.reserve(512 + book.size() * 48);
        auto field = [&out](std::string_view name, std::uint64_t value) {
            out += '"';
            out += name;
            out += "\":";
            out += std::to_string(value);
            out += ',';
        };
        out += '{';
        field("responses", total(&Impl::responses));
        field("requests", total(&Impl::requests));
        field("connections", total(&Impl::connections));
        field("open_connections", total(&Impl::open_connections));
        field("hung_requests", total(&Impl::hung_requests));
        field("failed_writes", total(&Impl::failed_writes));
        field("abandoned_requests", total(&Impl::abandoned_requests));
        field("not_found", total(&Impl::not_found));
        field("bad_requests", total(&Impl::bad_requests));
        field("control_requests", total(&Impl::control_requests));
        field("max_concurrent_requests", max_concurrent_requests.load());
        field("gzip_responses", total(&Impl::gzip_responses));
        out += quote.open.load() ? "\"listening\":true," : "\"listening\":false,";
        std::uint64_t active = faults.size(detail::SteadyClock::now());
        for (const auto& s : siblings) active += s->faults.size(detail::SteadyClock::now());
        field("active_faults", active);
        out += "\"faults\":{";
        for (std::size_t k = 0; k < detail::kFaultKinds; ++k) {
            if (static_cast<FaultKind>(k) == FaultKind::rate_limit) continue;  // never answers
            std::uint64_t n = fault_counts[k].load();
            for (const auto& s : siblings) n += s->fault_counts[k].load();
            field(detail::kind_name(static_cast<FaultKind>(k)), n);
        }
        out.back() = '}';
        out += ",\"per_symbol\":{";
        book.append_written_json(out);
        out += "},\"last_seq\":{";
        book.append_last_seq_json(out);
        out += "},\"listeners\":";
        out += listeners_json();
        if (tls) tls->append_stats_json(out);
        if (request_log) request_log->append_json(out);
        out += '}';
        return out;
    }
};

Simulator::Simulator(boost::asio::io_context& io, Options options)
    : impl_(std::make_shared<Impl>(io, std::move(options))) {
    impl_->make_siblings();
}

// Closes whatever is still open; the io_context must outlive the Simulator.
Simulator::~Simulator() {
    if (impl_) impl_->stop();
}

void Simulator::start() { impl_->start(); }
void Simulator::stop() { impl_->stop(); }
std::uint16_t Simulator::port() const { return impl_->quote.port.load(); }
std::uint16_t Simulator::control_port() const {
    return impl_->control ? impl_->control->port.load() : 0;
}
std::uint64_t Simulator::add_fault(std::string_view json) {
    auto target = detail::split_fault_target(json, listeners());
    return impl_->member(target.listener).add_fault(detail::parse_fault(std::string_view(target.fault)));
}
std::size_t Simulator::listeners() const { return 1 + impl_->siblings.size(); }
std::uint16_t Simulator::port(std::size_t listener) const {
    return impl_->member(listener).quote.port.load();
}
std::uint64_t Simulator::add_fault(std::size_t listener, std::string_view json) {
    return impl_->member(listener).add_fault(detail::parse_fault(json));
}
bool Simulator::remove_fault(std::size_t listener, std::uint64_t id) {
    return impl_->member(listener).remove_fault(id);
}
std::size_t Simulator::clear_faults(std::size_t listener) {
    return impl_->member(listener).clear_faults().size();
}
std::string Simulator::faults_json(std::size_t listener) const {
    return impl_->member(listener).faults_json();
}
bool Simulator::remove_fault(std::uint64_t id) { return impl_->remove_fault(id); }
std::size_t Simulator::clear_faults() { return impl_->clear_faults().size(); }
std::string Simulator::faults_json() const { return impl_->faults_json(); }
bool Simulator::is_hung(std::string_view symbol) const { return impl_->book.is_hung(symbol); }
std::uint64_t Simulator::responses_written() const { return impl_->total(&Impl::responses); }
std::string Simulator::stats_json() const { return impl_->stats_json(); }

}  // namespace mdagg::sim

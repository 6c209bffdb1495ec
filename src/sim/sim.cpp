#include "mdagg/sim.hpp"

#include "book.hpp"
#include "http_io.hpp"

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
#include <nlohmann/json.hpp>

#include <array>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <unordered_map>

namespace mdagg::sim {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

void parse_listen(const std::string& text, Options& options) {
    std::string_view host;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {  // [::1]:8081
        const auto close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
            throw std::invalid_argument("expected [IPV6]:PORT, got '" + text + "'");
        host = std::string_view(text).substr(1, close - 1);
        port = std::string_view(text).substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string::npos)
            throw std::invalid_argument("expected HOST:PORT, got '" + text + "'");
        host = std::string_view(text).substr(0, colon);
        port = std::string_view(text).substr(colon + 1);
        if (host.find(':') != std::string_view::npos)
            throw std::invalid_argument("an IPv6 host needs brackets: [" + std::string(host) +
                                        "]:PORT");
    }
    if (host.empty()) throw std::invalid_argument("empty host in '" + text + "'");
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || value > 65535)
        throw std::invalid_argument("bad port in '" + text + "'");
    options.host = std::string(host);
    options.port = static_cast<std::uint16_t>(value);
}

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

constexpr std::chrono::seconds kIdleTimeout{60};    // keep-alive idle / slow request header
constexpr std::chrono::seconds kWriteTimeout{30};   // a client that stops reading
constexpr std::chrono::seconds kLingerTimeout{2};   // draining after our FIN, like nginx
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
    Connection(tcp::socket socket, std::uint64_t seed)
        : stream(std::move(socket)), timer(stream.get_executor()), buffer(kBufferLimit),
          rng(seed) {
        head.reserve(256);
        body.reserve(256);
    }

    beast::tcp_stream stream;
    asio::steady_timer timer;   // added latency
    beast::flat_buffer buffer;  // lives as long as the connection: leftovers are the next request
    std::string target;         // these three keep their capacity from request to request
    std::string head;
    std::string body;
    std::uint64_t rng;
    std::size_t responses = 0;
    bool closed = false;  // set by stop(), on this connection's executor
};

}  // namespace detail

using detail::Connection;

struct Simulator::Impl : std::enable_shared_from_this<Impl> {
    Impl(asio::io_context& io_context, Options opts)
        : io(io_context), options(std::move(opts)), book(options),
          // io_context(1) promises a single run() thread, so one coroutine per connection
          // is already serialised: strands would only cost. Any other hint may mean
          // --threads N, and then the connection's handlers and stop()'s close need one.
          use_strands(asio::use_service<asio::detail::scheduler>(io).concurrency_hint() != 1),
          acceptor(executor()), accept_timer(acceptor.get_executor()) {
        if (options.latency_min.count() < 0 || options.latency_max < options.latency_min)
            throw std::invalid_argument("latency must satisfy 0 <= min <= max");
    }

    enum class Route { quote, hung, not_found, stats, method_not_allowed };

    asio::io_context& io;
    const Options options;
    detail::Book book;
    const bool use_strands;
    tcp::acceptor acceptor;  // stop() may run on any thread: its close is posted here
    asio::steady_timer accept_timer;
    std::atomic<bool> stopping{false};
    std::atomic<std::uint16_t> bound_port{0};

    std::atomic<std::uint64_t> responses{0};  // quote responses written completely
    std::atomic<std::uint64_t> requests{0};
    std::atomic<std::uint64_t> connections{0};
    std::atomic<std::uint64_t> open_connections{0};
    std::atomic<std::uint64_t> hung_requests{0};
    std::atomic<std::uint64_t> failed_writes{0};  // quotes whose seq was taken but not delivered
    std::atomic<std::uint64_t> not_found{0};
    std::atomic<std::uint64_t> bad_requests{0};
    std::atomic<std::uint64_t> next_connection_id{0};

    std::mutex connections_mutex;
    // Weak: a connection's lifetime belongs to its coroutine; this map only finds it to close.
    std::unordered_map<Connection*, std::weak_ptr<Connection>> live;

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

    void start() {
        if (stopping.load()) return;
        beast::error_code ec;
        tcp::endpoint endpoint;
        const auto address = asio::ip::make_address(options.host, ec);
        if (!ec) {
            endpoint = tcp::endpoint(address, options.port);
        } else {
            tcp::resolver resolver(io);
            auto results = resolver.resolve(options.host, std::to_string(options.port),
                                            tcp::resolver::passive, ec);
            if (ec) throw std::system_error(ec, "resolve " + options.host);
            endpoint = results.begin()->endpoint();
        }
        const std::string where = endpoint.address().to_string() + ":" +
                                  std::to_string(endpoint.port());
        auto check = [&](const char* step) {
            if (ec) throw std::system_error(ec, std::string(step) + " " + where);
        };
        acceptor.open(endpoint.protocol(), ec);
        check("open");
        acceptor.set_option(asio::socket_base::reuse_address(true), ec);
        check("reuse_address");
        acceptor.bind(endpoint, ec);
        check("bind");
        acceptor.listen(asio::socket_base::max_listen_connections, ec);
        check("listen");
        const auto local = acceptor.local_endpoint(ec);
        check("local_endpoint");
        bound_port.store(local.port());
        asio::co_spawn(acceptor.get_executor(), accept_loop(shared_from_this()),
                       LogExceptions{"accept loop"});
    }

    void stop() {
        if (stopping.exchange(true)) return;
        auto self = shared_from_this();
        asio::post(acceptor.get_executor(), [self] {
            beast::error_code ec;
            self->acceptor.close(ec);
            self->accept_timer.cancel();
        });
        std::lock_guard lock(connections_mutex);
        for (auto& [raw, weak] : live) {
            if (auto c = weak.lock()) {
                // The socket and timers belong to the connection's executor; close them there.
                asio::post(c->stream.get_executor(), [c] {
                    c->closed = true;
                    beast::error_code ignored;
                    c->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
                    c->stream.close();
                    c->timer.cancel();
                });
            }
        }
    }

    static asio::awaitable<void> accept_loop(std::shared_ptr<Impl> self) {
        for (;;) {
            auto [ec, socket] = co_await self->acceptor.async_accept(self->executor(), nothrow);
            if (self->stopping.load()) co_return;
            if (ec) {
                if (ec == asio::error::operation_aborted || !self->acceptor.is_open()) co_return;
                // EMFILE and friends: pause instead of spinning on a ready-but-failing accept.
                log_line("accept: " + ec.message());
                self->accept_timer.expires_after(kAcceptBackoff);
                co_await self->accept_timer.async_wait(nothrow);
                continue;
            }
            beast::error_code ignored;
            socket.set_option(tcp::no_delay(true), ignored);
            const std::uint64_t id = self->next_connection_id.fetch_add(1);
            auto c = std::make_shared<Connection>(std::move(socket),
                                                  detail::stable_hash(std::to_string(id)) ^
                                                      self->options.seed);
            if (!self->track(c)) co_return;
            auto executor = c->stream.get_executor();
            asio::co_spawn(executor, session(self, std::move(c)), LogExceptions{"connection"});
        }
    }

    Route route(http::verb method, std::string_view target, std::size_t& index) const {
        std::string_view path = target.substr(0, target.find('?'));
        constexpr std::string_view quotes = "/quotes/";
        if (path.substr(0, quotes.size()) == quotes) {
            if (method != http::verb::get) return Route::method_not_allowed;
            const std::string_view name = path.substr(quotes.size());
            if (auto found = book.find(name)) {
                index = *found;
                return book.hung(index) ? Route::hung : Route::quote;
            }
            return book.is_hung(name) ? Route::hung : Route::not_found;
        }
        if (path == "/stats")
            return method == http::verb::get ? Route::stats : Route::method_not_allowed;
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
        std::string_view extra;
        c.body.clear();
        switch (route) {
            case Route::quote:
                book.append_json(c.body, index, book.next(index));
                break;
            case Route::stats:
                c.body = stats_json();
                break;
            case Route::not_found: {
                not_found.fetch_add(1, std::memory_order_relaxed);
                status = "404 Not Found";
                const auto path = std::string_view(c.target).substr(0, c.target.find('?'));
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
            case Route::hung:
                break;  // never answered
        }
        detail::frame_response(c.head, status, c.body.size(), keep_alive, version, extra);
    }

    static asio::awaitable<beast::error_code> write_response(Connection& c) {
        c.stream.expires_after(kWriteTimeout);
        auto [ec, n] = co_await asio::async_write(
            c.stream, std::array{asio::buffer(c.head), asio::buffer(c.body)}, nothrow);
        (void)n;
        co_return ec;
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

    static asio::awaitable<void> session(std::shared_ptr<Impl> self,
                                         std::shared_ptr<Connection> c) {
        struct Untrack {
            Impl& impl;
            Connection* connection;
            ~Untrack() { impl.untrack(connection); }
        } untrack{*self, c.get()};

        auto& stream = c->stream;
        bool linger = false;  // we sent "Connection: close": half-close and drain
        for (;;) {
            // After stop(), pipelined requests already buffered must not be answered.
            if (c->closed) break;
            stream.expires_after(kIdleTimeout);
            detail::RequestParser parser(c->target);
            parser.header_limit(kHeaderLimit);
            parser.body_limit(kBodyLimit);
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

            std::size_t index = 0;
            const Route route = self->route(parser.method(), c->target, index);
            if (route == Route::hung) {
                self->hung_requests.fetch_add(1, std::memory_order_relaxed);
                stream.expires_never();  // held until the client gives up or stop()
                co_await discard_until_closed(*c);
                break;
            }
            if ((route == Route::quote || route == Route::not_found) &&
                self->options.latency_max.count() > 0) {
                c->timer.expires_after(self->draw_latency(*c));
                co_await c->timer.async_wait(nothrow);
                if (c->closed) break;
            }

            ++c->responses;
            const std::size_t max = self->options.max_requests_per_connection;
            const bool keep_alive = parser.keep_alive() && !self->stopping.load() &&
                                    (max == 0 || c->responses < max);
            self->fill_response(*c, route, index, keep_alive, parser.version());
            const beast::error_code write_ec = co_await write_response(*c);
            if (route == Route::quote) {
                if (write_ec) {
                    // That seq is gone for good; counting it keeps seq == written + failed.
                    self->failed_writes.fetch_add(1, std::memory_order_relaxed);
                } else {
                    self->book.count_written(index);
                    self->responses.fetch_add(1, std::memory_order_relaxed);
                }
            }
            if (write_ec) break;
            if (!keep_alive) {
                linger = true;
                break;
            }
        }

        beast::error_code ignored;
        if (linger && !c->closed) {
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
        // Built by hand: nlohmann::ordered_json inserts in O(n) per key, and per_symbol can
        // hold many thousands of symbols.
        std::string out;
        out.reserve(256 + book.size() * 24);
        auto field = [&out](std::string_view name, std::uint64_t value) {
            out += '"';
            out += name;
            out += "\":";
            out += std::to_string(value);
            out += ',';
        };
        out += '{';
        field("responses", responses.load());
        field("requests", requests.load());
        field("connections", connections.load());
        field("open_connections", open_connections.load());
        field("hung_requests", hung_requests.load());
        field("failed_writes", failed_writes.load());
        field("not_found", not_found.load());
        field("bad_requests", bad_requests.load());
        out += "\"per_symbol\":{";
        book.append_written_json(out);
        out += "}}";
        return out;
    }
};

Simulator::Simulator(boost::asio::io_context& io, Options options)
    : impl_(std::make_shared<Impl>(io, std::move(options))) {}

// Closes whatever is still open; the io_context must outlive the Simulator.
Simulator::~Simulator() {
    if (impl_) impl_->stop();
}

void Simulator::start() { impl_->start(); }
void Simulator::stop() { impl_->stop(); }
std::uint16_t Simulator::port() const { return impl_->bound_port.load(); }
bool Simulator::is_hung(std::string_view symbol) const { return impl_->book.is_hung(symbol); }
std::uint64_t Simulator::responses_written() const { return impl_->responses.load(); }
std::string Simulator::stats_json() const { return impl_->stats_json(); }

}  // namespace mdagg::sim

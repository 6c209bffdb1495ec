// The ops server's sockets: a Beast HTTP/1.1 server with coroutines, one strand per
// connection, bounded connections, sizes and times. Requests are few and small; clarity
// matters more here than the allocation-free framing of the poll path.
#include <mdagg/admin.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <mdagg/log.hpp>

#include <mutex>
#include <unordered_map>

namespace mdagg::admin {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
constexpr std::chrono::seconds read_timeout{10};   // a request, or idle keep-alive
constexpr std::chrono::seconds write_timeout{10};  // a client that stops reading
constexpr std::uint32_t header_limit = 8 * 1024;
constexpr std::uint64_t body_limit = 64 * 1024;
constexpr std::chrono::milliseconds accept_backoff{100};

}  // namespace

struct Server::Impl : std::enable_shared_from_this<Impl> {
    Impl(asio::io_context& io_context, ServerOptions opts, Backend& b)
        : io(io_context), options(std::move(opts)), backend(b), token(options.token),
          acceptor(asio::make_strand(io)), accept_timer(acceptor.get_executor()) {}

    asio::io_context& io;
    const ServerOptions options;
    Backend& backend;
    std::mutex token_mutex;
    std::string token;
    tcp::acceptor acceptor;
    asio::steady_timer accept_timer;
    std::atomic<bool> stopping{false};
    std::atomic<std::uint64_t> refused{0};
    log::RateLimited accept_log{std::chrono::seconds(10)};

    std::mutex connections_mutex;
    // Weak: each connection belongs to its coroutine; this map only finds it to close.
    std::unordered_map<beast::tcp_stream*, std::weak_ptr<beast::tcp_stream>> live;

    std::string current_token() {
        std::lock_guard lock(token_mutex);
        return token;
    }

    std::uint16_t start() {
        beast::error_code ec;
        const auto address = asio::ip::make_address(options.host, ec);
        if (ec) throw std::system_error(ec, "admin listen address " + options.host);
        const tcp::endpoint endpoint(address, options.port);
        const std::string where = options.host + ":" + std::to_string(options.port);
        auto check = [&](const char* step) {
            if (ec) throw std::system_error(ec, std::string("admin server: ") + step + " " + where);
        };
        acceptor.open(endpoint.protocol(), ec);
        check("open");
        acceptor.set_option(asio::socket_base::reuse_address(true), ec);
        check("reuse_address");
        acceptor.bind(endpoint, ec);
        check("bind");
        acceptor.listen(asio::socket_base::max_listen_connections, ec);
        check("listen");
        const auto port = acceptor.local_endpoint(ec).port();
        check("local_endpoint");
        asio::co_spawn(acceptor.get_executor(), accept_loop(shared_from_this()), [](std::exception_ptr e) {
            if (!e) return;
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                log::error("admin accept loop failed", {{"error", ex.what()}});
            }
        });
        return port;
    }

    void stop() {
        if (stopping.exchange(true)) return;
        auto self = shared_from_this();
        asio::post(acceptor.get_executor(), [self] {
            beast::error_code ignored;
            self->acceptor.close(ignored);
            self->accept_timer.cancel();
        });
        std::lock_guard lock(connections_mutex);
        for (auto& [raw, weak] : live) {
            if (auto stream = weak.lock()) {
                asio::post(stream->get_executor(), [stream] {
                    beast::error_code ignored;
                    stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
                    stream->close();
                });
            }
        }
    }

    static asio::awaitable<void> accept_loop(std::shared_ptr<Impl> self) {
        while (!self->stopping.load()) {
            tcp::socket socket(asio::make_strand(self->io));
            auto [ec] = co_await self->acceptor.async_accept(socket, nothrow);
            if (self->stopping.load()) co_return;
            if (ec) {
                // EMFILE and friends: back off instead of spinning; the listener stays.
                if (auto suppressed = self->accept_log.admit(log::Level::warn, "admin/accept", "admin accept failed")) {
                    nlohmann::json fields{{"error", ec.message()}};
                    if (*suppressed) fields["suppressed"] = *suppressed;
                    log::warn("admin accept failed", fields);
                }
                self->accept_timer.expires_after(accept_backoff);
                co_await self->accept_timer.async_wait(nothrow);
                continue;
            }
            auto stream = std::make_shared<beast::tcp_stream>(std::move(socket));
            if (!self->track(stream)) {
                self->refused.fetch_add(1, std::memory_order_relaxed);
                if (auto suppressed = self->accept_log.admit(log::Level::warn, "admin/refused", "admin connection refused")) {
                    nlohmann::json fields{{"max_connections", self->options.max_connections}};
                    if (*suppressed) fields["suppressed"] = *suppressed;
                    log::warn("admin connection refused: too many open connections", fields);
                }
                beast::error_code ignored;
                stream->socket().close(ignored);
                continue;
            }
            asio::co_spawn(stream->get_executor(), serve(self, stream), [self, raw = stream.get()](std::exception_ptr e) {
                self->untrack(raw);
                if (!e) return;
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& ex) {
                    log::error("admin connection failed", {{"error", ex.what()}});
                }
            });
        }
    }

    bool track(const std::shared_ptr<beast::tcp_stream>& stream) {
        std::lock_guard lock(connections_mutex);
        if (stopping.load() || live.size() >= options.max_connections) return false;
        live.emplace(stream.get(), stream);
        return true;
    }

    void untrack(beast::tcp_stream* stream) {
        std::lock_guard lock(connections_mutex);
        live.erase(stream);
    }

    static asio::awaitable<void> serve(std::shared_ptr<Impl> self, std::shared_ptr<beast::tcp_stream> stream) {
        beast::flat_buffer buffer(header_limit + body_limit);
        for (;;) {
            http::request_parser<http::string_body> parser;
            parser.header_limit(header_limit);
            parser.body_limit(body_limit);
            stream->expires_after(read_timeout);
            auto [ec, n] = co_await http::async_read(*stream, buffer, parser, nothrow);
            (void)n;
            if (ec) {
                // Answer what we can name; a timeout, reset or close gets no answer.
                if (ec == http::error::header_limit || ec == http::error::body_limit ||
                    ec == http::error::buffer_overflow) {
                    http::response<http::string_body> res{http::status::payload_too_large, 11};
                    res.set(http::field::content_type, "application/json");
                    res.set(http::field::connection, "close");
                    res.body() = "{\"error\":\"request too large\"}\n";
                    res.prepare_payload();
                    stream->expires_after(write_timeout);
                    co_await http::async_write(*stream, res, nothrow);
                }
                break;
            }
            auto& req = parser.get();
            const std::string method(req.method_string());
            const auto authorization = req[http::field::authorization];
            const Response out = handle(Request{method, req.target(), authorization, req.body()},
                                        self->backend, self->current_token());
            http::response<http::string_body> res{static_cast<http::status>(out.status), req.version()};
            res.set(http::field::content_type, out.content_type);
            res.set(http::field::cache_control, "no-store");
            if (out.status == 401) res.set(http::field::www_authenticate, "Bearer");
            res.keep_alive(req.keep_alive() && !self->stopping.load());
            res.body() = out.body;
            res.prepare_payload();
            stream->expires_after(write_timeout);
            auto [wec, wn] = co_await http::async_write(*stream, res, nothrow);
            (void)wn;
            if (wec || !res.keep_alive()) break;
        }
        beast::error_code ignored;
        stream->socket().shutdown(tcp::socket::shutdown_send, ignored);
        stream->close();
    }
};

Server::Server(asio::io_context& io, ServerOptions options, Backend& backend)
    : impl_(std::make_shared<Impl>(io, std::move(options), backend)) {}

Server::~Server() { impl_->stop(); }

std::uint16_t Server::start() { return impl_->start(); }
void Server::stop() { impl_->stop(); }
void Server::set_token(std::string token) {
    std::lock_guard lock(impl_->token_mutex);
    impl_->token = std::move(token);
}

}  // namespace mdagg::admin

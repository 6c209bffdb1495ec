// The ops server's sockets: a Beast HTTP/1.1 server with coroutines, one strand per
// connection, bounded connections, sizes and times. Requests are few and small; clarity
// matters more here than the allocation-free framing of the poll path.
#include <mdagg/admin.hpp>

#include "admission.hpp"

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

#include <mdagg/observe.hpp>

#include <array>
#include <mutex>
#include <optional>
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
constexpr std::chrono::seconds linger_timeout{2};
constexpr std::size_t linger_limit = 256 * 1024;

}  // namespace

struct Server::Impl : std::enable_shared_from_this<Impl> {
    Impl(asio::io_context& io_context, ServerOptions opts, Backend& b)
        : io(io_context), options(std::move(opts)), backend(b), exposed(*this), token(options.token),
          acceptor(asio::make_strand(io)), accept_timer(acceptor.get_executor()), admission(options) {}

    // The daemon's backend, with the server's own series appended to /metrics.
    struct Exposed final : Backend {
        explicit Exposed(Impl& i) : impl(i) {}
        std::string metrics() override {
            std::string out = impl.backend.metrics();
            const Stats st = impl.stats();
            PrometheusWriter w(out);
            w.family("mdagg_admin_connections_rejected_total", "counter",
                     "Admin connections closed unanswered: every slot taken (full) or the peer's share taken (per_peer).");
            w.sample("mdagg_admin_connections_rejected_total", {{"reason", "full"}}, static_cast<double>(st.rejected_full));
            w.sample("mdagg_admin_connections_rejected_total", {{"reason", "per_peer"}},
                     static_cast<double>(st.rejected_per_peer));
            w.family("mdagg_admin_probe_slot_connections_total", "counter",
                     "Admin connections served in a reserved probe slot because the others were taken.");
            w.sample("mdagg_admin_probe_slot_connections_total", {}, static_cast<double>(st.probe_slot_uses));
            w.family("mdagg_admin_connections_open", "gauge", "Open admin connections.");
            w.sample("mdagg_admin_connections_open", {}, static_cast<double>(st.open));
            return out;
        }
        Response healthz() override { return impl.backend.healthz(); }
        Response readyz() override { return impl.backend.readyz(); }
        Response tasks(const Selector& filter) override { return impl.backend.tasks(filter); }
        Response control(Action action, const Selector& selector) override {
            return impl.backend.control(action, selector);
        }
        Impl& impl;
    };

    using Slot = ConnectionAdmission::Slot;

    asio::io_context& io;
    const ServerOptions options;
    Backend& backend;
    Exposed exposed;
    std::mutex token_mutex;
    std::string token;
    tcp::acceptor acceptor;
    asio::steady_timer accept_timer;
    std::atomic<bool> stopping{false};
    std::atomic<std::uint64_t> rejected_full{0};
    std::atomic<std::uint64_t> rejected_per_peer{0};
    std::atomic<std::uint64_t> probe_slot_uses{0};
    log::RateLimited accept_log{std::chrono::seconds(10)};

    mutable std::mutex connections_mutex;
    // Weak: each connection belongs to its coroutine; this map only finds it to close.
    std::unordered_map<beast::tcp_stream*, std::weak_ptr<beast::tcp_stream>> live;
    ConnectionAdmission admission;

    std::string current_token() {
        std::lock_guard lock(token_mutex);
        return token;
    }

    Stats stats() const {
        Stats st;
        st.rejected_full = rejected_full.load(std::memory_order_relaxed);
        st.rejected_per_peer = rejected_per_peer.load(std::memory_order_relaxed);
        st.probe_slot_uses = probe_slot_uses.load(std::memory_order_relaxed);
        std::lock_guard lock(connections_mutex);
        st.open = live.size();
        return st;
    }

    // Logs at most one line per 10 s per kind, with the count of the ones left out.
    void warn_limited(std::string_view key, std::string_view msg, nlohmann::json fields) {
        if (auto suppressed = accept_log.admit(log::Level::warn, key, msg)) {
            if (*suppressed) fields["suppressed"] = *suppressed;
            log::warn(msg, fields);
        }
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
                self->warn_limited("admin/accept", "admin accept failed", {{"error", ec.message()}});
                self->accept_timer.expires_after(accept_backoff);
                co_await self->accept_timer.async_wait(nothrow);
                continue;
            }
            beast::error_code peer_ec;
            const auto remote = socket.remote_endpoint(peer_ec);
            if (peer_ec) continue;  // reset before we looked: the socket closes here
            std::string peer = remote.address().to_string();
            auto stream = std::make_shared<beast::tcp_stream>(std::move(socket));
            const auto slot = self->admit(stream, peer);
            if (!slot) {
                beast::error_code ignored;
                stream->socket().close(ignored);
                continue;
            }
            if (*slot == Slot::probe) self->probe_slot_uses.fetch_add(1, std::memory_order_relaxed);
            asio::co_spawn(stream->get_executor(), serve(self, stream, *slot == Slot::probe),
                           [self, raw = stream.get(), peer = std::move(peer), kind = *slot](std::exception_ptr e) {
                               self->release(raw, peer, kind);
                               if (!e) return;
                               try {
                                   std::rethrow_exception(e);
                               } catch (const std::exception& ex) {
                                   self->warn_limited("admin/failed", "admin connection failed", {{"error", ex.what()}});
                               }
                           });
        }
    }

    std::optional<Slot> admit(const std::shared_ptr<beast::tcp_stream>& stream, const std::string& peer) {
        ConnectionAdmission::Refusal why{};
        {
            std::lock_guard lock(connections_mutex);
            if (stopping.load()) return std::nullopt;
            if (const auto slot = admission.admit(peer, why)) {
                live.emplace(stream.get(), stream);
                return slot;
            }
        }
        const bool full = why == ConnectionAdmission::Refusal::full;
        (full ? rejected_full : rejected_per_peer).fetch_add(1, std::memory_order_relaxed);
        warn_limited("admin/refused", "admin connection refused: too many open connections",
                     {{"peer", peer},
                      {"reason", full ? "full" : "per_peer"},
                      {"max_connections", options.max_connections},
                      {"max_connections_per_peer", options.max_connections_per_peer},
                      {"probe_slots", options.probe_slots}});
        return std::nullopt;
    }

    void release(beast::tcp_stream* stream, const std::string& peer, Slot slot) {
        std::lock_guard lock(connections_mutex);
        live.erase(stream);
        admission.release(peer, slot);
    }

    // After an early answer (413) the client may still be sending: read and discard for a
    // moment, so that closing with unread bytes does not reset the connection before the
    // client has read the answer.
    static asio::awaitable<void> linger(beast::tcp_stream& stream) {
        beast::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
        stream.expires_after(linger_timeout);
        std::array<char, 16 * 1024> sink;
        std::size_t discarded = 0;
        while (discarded < linger_limit) {
            auto [ec, n] = co_await stream.async_read_some(asio::buffer(sink), nothrow);
            if (ec) break;
            discarded += n;
        }
    }

    static asio::awaitable<void> serve(std::shared_ptr<Impl> self, std::shared_ptr<beast::tcp_stream> stream,
                                       bool probe_slot) {
        beast::flat_buffer buffer(header_limit + body_limit);
        for (;;) {
            http::request_parser<http::string_body> parser;
            parser.header_limit(header_limit);
            parser.body_limit(body_limit);
            stream->expires_after(probe_slot ? self->options.probe_read_timeout
                                             : std::chrono::duration_cast<std::chrono::milliseconds>(read_timeout));
            auto [ec, n] = co_await http::async_read(*stream, buffer, parser, nothrow);
            (void)n;
            if (ec) {
                // Answer what we can name: too large, or malformed; a timeout, reset or close
                // gets no answer.
                const bool too_large = ec == http::error::header_limit || ec == http::error::body_limit ||
                                       ec == http::error::buffer_overflow;
                const bool malformed = ec.category() == http::make_error_code(http::error::bad_target).category() &&
                                       ec != http::error::end_of_stream && ec != http::error::partial_message;
                if (too_large || malformed) {
                    http::response<http::string_body> res{too_large ? http::status::payload_too_large
                                                                    : http::status::bad_request, 11};
                    res.set(http::field::content_type, "application/json");
                    res.set(http::field::connection, "close");
                    res.body() = too_large ? "{\"error\":\"request too large\"}\n"
                                           : json_text({{"error", "malformed request: " + ec.message()}}) + "\n";
                    res.prepare_payload();
                    stream->expires_after(write_timeout);
                    auto [wec, wn] = co_await http::async_write(*stream, res, nothrow);
                    (void)wn;
                    if (!wec) co_await linger(*stream);
                }
                break;
            }
            auto& req = parser.get();
            const std::string method(req.method_string());
            const auto authorization = req[http::field::authorization];
            Response out;
            if (probe_slot && !(method == "GET" && is_probe_path(req.target()))) {
                out = Response{503, "application/json",
                               "{\"error\":\"connection limit reached: only GET /healthz and /readyz are served "
                               "on this connection\"}\n"};
            } else {
                try {
                    out = handle(Request{method, req.target(), authorization, req.body()}, self->exposed,
                                 self->current_token());
                } catch (const std::exception& e) {
                    self->warn_limited("admin/request", "admin request failed", {{"error", e.what()}});
                    out = Response{500, "application/json", "{\"error\":\"internal error; see the log\"}\n"};
                }
            }
            http::response<http::string_body> res{static_cast<http::status>(out.status), req.version()};
            res.set(http::field::content_type, out.content_type);
            res.set(http::field::cache_control, "no-store");
            if (out.status == 401) res.set(http::field::www_authenticate, "Bearer");
            res.keep_alive(req.keep_alive() && !probe_slot && !self->stopping.load());
            res.body() = std::move(out.body);
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
Server::Stats Server::stats() const { return impl_->stats(); }
void Server::set_token(std::string token) {
    std::lock_guard lock(impl_->token_mutex);
    impl_->token = std::move(token);
}

}  // namespace mdagg::admin

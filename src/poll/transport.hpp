#pragma once
// The byte stream under a poll. The driver (poll_leg.hpp) talks only to a Transport: connect
// to resolved endpoints within the poll's deadline, write, read, cancel, close. The poll policy
// (poll_fsm.hpp) knows none of it, so TLS becomes a second transport with the same members,
// and a poller may hold several (hedging across mirrors) without touching the state machine.
//
// A transport is a concrete type and the driver a template over it: a poll's few operations
// cost no virtual call, no std::function and no allocation beyond the pooled operation.
#include "read_buffer_pool.hpp"
#include "task.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <concepts>
#include <span>
#include <tuple>

namespace mdagg::detail {

// What the driver needs of a transport. `read_some` reads into buffer()'s free space; bytes
// stay there (one flat buffer per connection) until the parser consumed them, and leftovers
// belong to the next response on the same connection. The buffer's storage is pooled
// (read_buffer_pool.hpp): `release_buffer()` at the end of each poll gives it back when empty,
// and `read_when_ready` holds none while it waits with nothing buffered.
template <class T>
concept Transport = requires(T t, std::span<const boost::asio::ip::tcp::endpoint> endpoints, bool (*stop)(void*),
                             void* context, boost::asio::const_buffer data, boost::system::error_code& ec) {
    { t.write_now(data, ec) } -> std::same_as<std::size_t>;
    t.write(data);      // co_await: std::tuple<error_code, std::size_t>
    t.read_some(4096);  // co_await: std::tuple<error_code, std::size_t>
    t.read_when_ready(4096);  // the same, holding no buffer while it waits
    { t.buffer() } -> std::same_as<ReadBuffer&>;
    t.release_buffer();
    t.cancel();
    t.close();
};

// Plain TCP. Each connection gets TCP_NODELAY and a non-blocking socket: the request goes
// straight to the socket (a request is far smaller than the send buffer) and the first read
// is tried before waiting.
class TcpTransport {
public:
    using tcp = boost::asio::ip::tcp;
    using error_code = boost::system::error_code;

    TcpTransport(const boost::asio::any_io_executor& executor, std::size_t buffer_limit)
        : socket_(executor), buffer_(buffer_limit) {}

    // Tries the endpoints in order until one accepts. `interrupted()` (the poll's deadline or a
    // drain, which cancel() the pending attempt) is asked before each attempt and ends the
    // connect with operation_aborted.
    template <class Interrupted>
    Task<error_code> connect(std::span<const tcp::endpoint> endpoints, Interrupted interrupted) {
        error_code ec = boost::asio::error::host_not_found;
        tcp::endpoint connected_to;
        for (const auto& endpoint : endpoints) {
            error_code ignored;
            socket_.close(ignored);
            if (interrupted()) {
                ec = boost::asio::error::operation_aborted;
                break;
            }
            connected_to = endpoint;
            std::tie(ec) = co_await async<error_code>(
                [&](auto handler) { socket_.async_connect(endpoint, std::move(handler)); });
            if (!ec || ec == boost::asio::error::operation_aborted) break;
        }
        if (ec) co_return ec;
        co_return configure(connected_to.protocol());
    }

    // Writes what the socket takes now, never waiting; 0 when it would block.
    std::size_t write_now(boost::asio::const_buffer data, error_code& ec) {
        std::size_t n = socket_.write_some(data, ec);
        if (ec == boost::asio::error::would_block || ec == boost::asio::error::try_again) {
            ec = {};
            n = 0;
        }
        return n;
    }

    // co_await write(data): waits until all of `data` is written.
    auto write(boost::asio::const_buffer data) {
        return async<error_code, std::size_t>(
            [this, data](auto handler) { boost::asio::async_write(socket_, data, std::move(handler)); });
    }

    // co_await read_some(max): at most `max` bytes into buffer(); the caller commits them.
    // async_read_some tries a recv first, which just after the request almost always finds
    // nothing (1.9 recvs per poll). async_wait + read would skip it, but asio queues a wait
    // with an epoll_ctl (EPOLL_CTL_MOD, so no edge is lost): no cheaper.
    auto read_some(std::size_t max) {
        return async<error_code, std::size_t>([this, max](auto handler) {
            socket_.async_read_some(buffer_.prepare(max), std::move(handler));
        });
    }

    // co_await read_when_ready(max): read_some for a wait that may be long (the late grace).
    // With nothing buffered, the buffer's storage goes back to the pool until the socket is
    // readable, instead of being held across the wait. The wait costs an epoll_ctl that
    // read_some's first recv saves when the answer is in, so an ordinary read does not use it.
    Task<std::tuple<error_code, std::size_t>> read_when_ready(std::size_t max) {
        if (buffer_.size() == 0) {
            release_buffer();
            auto [ec] = co_await async<error_code>(
                [this](auto handler) { socket_.async_wait(tcp::socket::wait_read, std::move(handler)); });
            if (ec) co_return std::tuple{ec, std::size_t{0}};
        }
        co_return co_await read_some(max);
    }

    ReadBuffer& buffer() noexcept { return buffer_; }
    void release_buffer() noexcept { release_if_empty(buffer_); }
    // Bytes received and not read yet (FIONREAD): a hedged poll's loser whose answer is
    // already here is read and dropped rather than closed.
    std::size_t available() noexcept {
        error_code ec;
        const std::size_t n = socket_.available(ec);
        return ec ? 0 : n;
    }
    tcp::socket& socket() noexcept { return socket_; }  // for a transport layered on this one

    // The pending operation ends with operation_aborted.
    void cancel() noexcept {
        error_code ignored;
        socket_.cancel(ignored);
    }

    // Buffered bytes go too: they belonged to this connection.
    void close() noexcept {
        error_code ignored;
        socket_.shutdown(tcp::socket::shutdown_both, ignored);
        socket_.close(ignored);
        buffer_.clear();
        buffer_.shrink_to_fit();
    }

private:
    error_code configure(tcp protocol) {
        error_code ec;
        // The connect registered the socket for EPOLLOUT, and with edge triggering every ACK
        // of a request then wakes the reactor for nothing: once per poll. Registering the
        // socket anew drops EPOLLOUT; writes go straight to the socket and never wait on it.
        const auto fd = socket_.release(ec);
        if (!ec) socket_.assign(protocol, fd, ec);
        if (ec) return ec;
        error_code ignored;
        socket_.set_option(tcp::no_delay(true), ignored);
        socket_.non_blocking(true, ignored);  // the direct write and read never block
        return {};
    }

    tcp::socket socket_;
    ReadBuffer buffer_;
};

static_assert(Transport<TcpTransport>);

}  // namespace mdagg::detail

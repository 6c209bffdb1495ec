#pragma once
// TLS over the same TCP connection as TcpTransport, through OpenSSL on the socket itself.
//
// Not asio::ssl::stream: its stream_core holds two 17 KiB buffers per stream from construction
// (zero-filled vectors) and its engine a 2 x 17 KiB BIO pair, ~68 KiB per connection whatever
// SSL_MODE_RELEASE_BUFFERS says: 2,000 idle pollers would hold ~136 MiB. Here the SSL object
// reads and writes the non-blocking socket directly, so an idle connection holds only the SSL
// state (its record buffers are released), and the plain transport's fast paths stay: the
// request is written straight to the socket, the first read is tried before waiting, and a
// wait is an async_wait on the socket. The context (verify paths, client certificate, minimum
// version) is asio::ssl::context, shared per `tls:` setting (tls_context.hpp).
#include "task.hpp"
#include "tls_context.hpp"
#include "tls_error.hpp"
#include "transport.hpp"

#include <boost/asio/error.hpp>

#include <span>
#include <tuple>

typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;

namespace mdagg::detail {

class TlsTransport {
public:
    using tcp = boost::asio::ip::tcp;
    using error_code = boost::system::error_code;

    TlsTransport(const boost::asio::any_io_executor& executor, std::size_t buffer_limit, const TlsPeer& peer)
        : tcp_(executor, buffer_limit), peer_(&peer) {}
    ~TlsTransport();
    TlsTransport(const TlsTransport&) = delete;
    TlsTransport& operator=(const TlsTransport&) = delete;

    // TCP connect, then the handshake, all before `interrupted()` says stop (the poll's
    // deadline, so the handshake runs under connect_timeout, or the drain). A handshake cut
    // short ends with TlsErrc::handshake_interrupted; a refused certificate with an error of
    // tls_verify_category() carrying OpenSSL's verify result.
    template <class Interrupted>
    Task<error_code> connect(std::span<const tcp::endpoint> endpoints, Interrupted interrupted) {
        end_session();
        error_code ec = co_await tcp_.connect(endpoints, interrupted);
        if (ec) co_return ec;
        if (!begin_handshake(ec)) co_return ec;
        for (;;) {
            const Want want = step_handshake(ec);
            if (want == Want::nothing) co_return ec;
            if (interrupted()) co_return make_error_code(TlsErrc::handshake_interrupted);
            auto [waited] = co_await wait(want);
            // The deadline cancelled the wait: `interrupted()` may give the handshake more time.
            if (waited == boost::asio::error::operation_aborted) {
                if (interrupted()) co_return make_error_code(TlsErrc::handshake_interrupted);
                continue;
            }
            if (waited) co_return waited;
        }
    }

    // Encrypts and writes what the socket takes now, never waiting; 0 when it would block (the
    // record is then pending inside OpenSSL and write() finishes it).
    std::size_t write_now(boost::asio::const_buffer data, error_code& ec);
    // co_await write(data): all of `data`.
    Task<std::tuple<error_code, std::size_t>> write(boost::asio::const_buffer data);
    // co_await read_some(max): at most `max` decrypted bytes into buffer(). A close_notify is
    // eof; a close without one is asio::ssl::error::stream_truncated (the driver treats it as
    // eof on an idle connection, as a cut for a close-delimited body).
    // With nothing buffered, a wait for the socket holds no read buffer (it goes back to the
    // pool and is taken again after): a wait costs the same async_wait either way.
    Task<std::tuple<error_code, std::size_t>> read_some(std::size_t max);
    Task<std::tuple<error_code, std::size_t>> read_when_ready(std::size_t max) { return read_some(max); }

    ReadBuffer& buffer() noexcept { return tcp_.buffer(); }
    void release_buffer() noexcept { tcp_.release_buffer(); }
    std::size_t available() noexcept { return tcp_.available(); }  // TLS records not read yet
    void cancel() noexcept { tcp_.cancel(); }
    // Sends close_notify when the session is sound, without waiting for the peer's (one
    // non-blocking write: a peer that never answers cannot hold a close or the drain).
    void close() noexcept;

    // SSL_CTX_sess_set_new_cb: keeps the newest session (a TLS 1.2 id, or a TLS 1.3 ticket
    // arriving after the handshake) for this connection's next handshake.
    static int on_new_session(SSL* ssl, SSL_SESSION* session);
    bool has_session() const noexcept { return session_ != nullptr; }

private:
    enum class Want { nothing, read, write };
    bool begin_handshake(error_code& ec);
    Want step_handshake(error_code& ec);
    // What SSL_get_error says after a call that returned `ret`: a wait, or an error in `ec`.
    Want after(int ret, error_code& ec);
    auto wait(Want want) {
        auto& socket = tcp_.socket();
        const auto type = want == Want::read ? tcp::socket::wait_read : tcp::socket::wait_write;
        return async<error_code>([&socket, type](auto handler) { socket.async_wait(type, std::move(handler)); });
    }
    void end_session() noexcept;

    TcpTransport tcp_;
    const TlsPeer* peer_;
    SSL* ssl_ = nullptr;
    SSL_SESSION* session_ = nullptr;  // offered on the next handshake
    bool sound_ = false;              // handshake done, no fatal error: close_notify may go
    bool fatal_ = false;              // a TLS protocol error: the session must not be resumed
};

static_assert(Transport<TlsTransport>);

}  // namespace mdagg::detail

// A connection's byte stream: plain TCP, or TLS over the same beast::tcp_stream, whose expiry
// bounds every read and write of either (the TLS handshake's too). One type for both keeps the
// session code free of TLS branches; the plain path pays one pointer test per operation.
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <openssl/ssl.h>

#include <cstddef>
#include <iterator>
#include <memory>
#include <string>

namespace mdagg::sim::detail {

class Stream {
public:
    using executor_type = boost::beast::tcp_stream::executor_type;
    using tls_stream = boost::asio::ssl::stream<boost::beast::tcp_stream&>;

    // `tls` null: plain TCP.
    Stream(boost::asio::ip::tcp::socket socket, boost::asio::ssl::context* tls)
        : tcp_(std::move(socket)) {
        if (tls) tls_ = std::make_unique<tls_stream>(tcp_, *tls);
    }

    // A TLS connection that ends without close_notify (a restart fault, an idle timeout, the
    // peer's close) is freed as if shut down: OpenSSL would otherwise mark its session not
    // resumable and drop it from the server's cache (TLS 1.2 session ids).
    ~Stream() {
        if (tls_) SSL_set_shutdown(tls_->native_handle(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    }
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;

    executor_type get_executor() noexcept { return tcp_.get_executor(); }
    boost::asio::ip::tcp::socket& socket() noexcept { return tcp_.socket(); }
    template <class Duration>
    void expires_after(Duration d) { tcp_.expires_after(d); }
    void expires_never() { tcp_.expires_never(); }
    void close() { tcp_.close(); }
    tls_stream* tls() noexcept { return tls_.get(); }

    template <class MutableBuffers, class Token>
    auto async_read_some(const MutableBuffers& buffers, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
            [this](auto handler, const MutableBuffers& b) {
                if (tls_)
                    tls_->async_read_some(b, std::move(handler));
                else
                    tcp_.async_read_some(b, std::move(handler));
            },
            token, buffers);
    }

    template <class ConstBuffers, class Token>
    auto async_write_some(const ConstBuffers& buffers, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
            [this](auto handler, const ConstBuffers& b) {
                if (!tls_) return tcp_.async_write_some(b, std::move(handler));
                // TLS writes one buffer per record: coalesce a response's head and body into
                // one record (the bytes written are a prefix of `b` all the same).
                const auto begin = boost::asio::buffer_sequence_begin(b);
                const auto end = boost::asio::buffer_sequence_end(b);
                if (std::next(begin) == end || boost::asio::buffer_size(b) > kCoalesceLimit)
                    return tls_->async_write_some(b, std::move(handler));
                flat_.resize(boost::asio::buffer_size(b));
                boost::asio::buffer_copy(boost::asio::buffer(flat_), b);
                tls_->async_write_some(boost::asio::buffer(flat_), std::move(handler));
            },
            token, buffers);
    }

private:
    static constexpr std::size_t kCoalesceLimit = 16 * 1024;  // one TLS record

    boost::beast::tcp_stream tcp_;
    std::unique_ptr<tls_stream> tls_;
    std::string flat_;
};

}  // namespace mdagg::sim::detail

#include "tls_transport.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/error.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <cerrno>

namespace mdagg::detail {

namespace {

namespace ssl_error = boost::asio::ssl::error;

class TlsCategory final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "mdagg.tls"; }
    std::string message(int) const override { return "TLS handshake interrupted (deadline or drain)"; }
};

class TlsVerifyCategory final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "mdagg.tls_verify"; }
    std::string message(int v) const override {
        return std::string("certificate verify failed: ") + X509_verify_cert_error_string(v);
    }
};

}  // namespace

const boost::system::error_category& tls_category() noexcept {
    static const TlsCategory c;
    return c;
}

const boost::system::error_category& tls_verify_category() noexcept {
    static const TlsVerifyCategory c;
    return c;
}

std::optional<PollError> tls_error_class(const boost::system::error_code& ec) noexcept {
    if (ec.category() == tls_verify_category()) return PollError::tls_verify;
    if (ec.category() == tls_category()) return PollError::tls_handshake;
    if (is_tls_truncation(ec)) return std::nullopt;
    if (ec.category() == boost::asio::error::get_ssl_category() || ec.category() == ssl_error::get_stream_category())
        return PollError::tls_handshake;
    return std::nullopt;
}

bool is_tls_truncation(const boost::system::error_code& ec) noexcept { return ec == ssl_error::stream_truncated; }

TlsTransport::~TlsTransport() {
    end_session();
    if (session_) SSL_SESSION_free(session_);
}

int TlsTransport::on_new_session(SSL* ssl, SSL_SESSION* session) {
    // A copy: OpenSSL marks the connection's own session object not resumable when the peer
    // closes without close_notify (its internal fatal alert), which venues do all the time.
    auto* self = static_cast<TlsTransport*>(SSL_get_app_data(ssl));
    SSL_SESSION* copy = self ? SSL_SESSION_dup(session) : nullptr;
    if (!copy) return 0;
    if (self->session_) SSL_SESSION_free(self->session_);
    self->session_ = copy;
    return 0;  // OpenSSL keeps and frees its own reference
}

bool TlsTransport::begin_handshake(error_code& ec) {
    ERR_clear_error();
    ssl_ = SSL_new(peer_->context->native());
    if (!ssl_ || SSL_set_fd(ssl_, static_cast<int>(tcp_.socket().native_handle())) != 1) {
        ec = error_code(static_cast<int>(ERR_get_error()), boost::asio::error::get_ssl_category());
        return false;
    }
    SSL_set_app_data(ssl_, this);
    const char* name = peer_->server_name.c_str();
    if (!peer_->name_is_ip) SSL_set_tlsext_host_name(ssl_, name);
    if (peer_->context->config().verify) {
        // OpenSSL's own name check, inside the chain's verification: a mismatch then has its
        // own verify result ("hostname mismatch", "IP address mismatch") for the log line.
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        const int ok = peer_->name_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name) : SSL_set1_host(ssl_, name);
        if (ok != 1) {
            ec = error_code(static_cast<int>(ERR_get_error()), boost::asio::error::get_ssl_category());
            return false;
        }
    }
    if (session_) {
        // A copy again: a TLS 1.2 resumption keeps using the object it was given.
        SSL_SESSION* copy = SSL_SESSION_dup(session_);
        if (copy) {
            SSL_set_session(ssl_, copy);
            SSL_SESSION_free(copy);
        }
    }
    SSL_set_connect_state(ssl_);
    return true;
}

TlsTransport::Want TlsTransport::step_handshake(error_code& ec) {
    ERR_clear_error();
    const int ret = SSL_do_handshake(ssl_);
    if (ret == 1) {
        sound_ = true;
        peer_->handshakes->fetch_add(1, std::memory_order_relaxed);
        if (SSL_session_reused(ssl_)) peer_->resumptions->fetch_add(1, std::memory_order_relaxed);
        ec = {};
        return Want::nothing;
    }
    const Want want = after(ret, ec);
    if (ec) {
        const long verify = SSL_get_verify_result(ssl_);
        if (verify != X509_V_OK) ec = error_code(static_cast<int>(verify), tls_verify_category());
    }
    return want;
}

TlsTransport::Want TlsTransport::after(int ret, error_code& ec) {
    switch (SSL_get_error(ssl_, ret)) {
        case SSL_ERROR_WANT_READ: return Want::read;
        case SSL_ERROR_WANT_WRITE: return Want::write;
        case SSL_ERROR_ZERO_RETURN: ec = boost::asio::error::eof; break;
        case SSL_ERROR_SYSCALL:
            // OpenSSL 3 reports an EOF without close_notify as SSL_R_UNEXPECTED_EOF_WHILE_READING;
            // a bare SYSCALL with errno 0 is the same (older behaviour).
            ec = errno ? error_code(errno, boost::system::system_category()) : error_code(ssl_error::stream_truncated);
            break;
        default: {
            const unsigned long e = ERR_peek_last_error();
            if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
                ec = ssl_error::stream_truncated;
            } else {
                ec = error_code(static_cast<int>(e), boost::asio::error::get_ssl_category());
                fatal_ = true;
            }
        }
    }
    ERR_clear_error();
    sound_ = false;  // no close_notify after a fatal error or the peer's close
    return Want::nothing;
}

std::size_t TlsTransport::write_now(boost::asio::const_buffer data, error_code& ec) {
    ERR_clear_error();
    std::size_t n = 0;
    const int ret = SSL_write_ex(ssl_, data.data(), data.size(), &n);
    if (ret == 1) return n;
    after(ret, ec);
    return 0;
}

Task<std::tuple<boost::system::error_code, std::size_t>> TlsTransport::write(boost::asio::const_buffer data) {
    std::size_t total = 0;
    while (total < data.size()) {
        ERR_clear_error();
        std::size_t n = 0;
        const int ret = SSL_write_ex(ssl_, static_cast<const char*>(data.data()) + total, data.size() - total, &n);
        if (ret == 1) {
            total += n;
            continue;
        }
        error_code ec;
        const Want want = after(ret, ec);
        if (ec) co_return std::tuple{ec, total};
        auto [waited] = co_await wait(want);
        if (waited) co_return std::tuple{waited, total};
    }
    co_return std::tuple{error_code{}, total};
}

Task<std::tuple<boost::system::error_code, std::size_t>> TlsTransport::read_some(std::size_t max) {
    for (;;) {
        const auto space = buffer().prepare(max);
        ERR_clear_error();
        std::size_t n = 0;
        const int ret = SSL_read_ex(ssl_, space.data(), space.size(), &n);
        if (ret == 1) co_return std::tuple{error_code{}, n};
        error_code ec;
        const Want want = after(ret, ec);
        if (ec) co_return std::tuple{ec, std::size_t{0}};
        release_buffer();  // when empty: no block held while the socket is waited for
        auto [waited] = co_await wait(want);
        if (waited) co_return std::tuple{waited, std::size_t{0}};
    }
}

void TlsTransport::end_session() noexcept {
    if (!ssl_) return;
    if (sound_) {
        SSL_shutdown(ssl_);  // our close_notify if the socket takes it now; no wait
    } else if (fatal_ && session_) {
        SSL_SESSION_free(session_);  // no resumption of a session that ended in a protocol error
        session_ = nullptr;
    }
    ERR_clear_error();
    SSL_free(ssl_);
    ssl_ = nullptr;
    sound_ = false;
    fatal_ = false;
}

void TlsTransport::close() noexcept {
    end_session();
    tcp_.close();
}

}  // namespace mdagg::detail

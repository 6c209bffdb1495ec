#include "tls_context.hpp"

#include "tls_transport.hpp"

#include <openssl/ssl.h>

#include <stdexcept>

namespace mdagg::detail {

namespace {

namespace ssl = boost::asio::ssl;

// An encrypted key fails instead of OpenSSL's default: a passphrase prompt on the terminal.
int no_passphrase(char*, int, int, void*) { return 0; }

void configure(ssl::context& ctx, const TlsConfig& c) {
    SSL_CTX* native = ctx.native_handle();
    SSL_CTX_set_default_passwd_cb(native, &no_passphrase);
    SSL_CTX_set_min_proto_version(native, c.min_version == TlsVersion::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
    if (c.verify) {
        if (c.ca_file.empty())
            ctx.set_default_verify_paths();
        else
            ctx.load_verify_file(c.ca_file);
        ctx.set_verify_mode(ssl::verify_peer);
    } else {
        ctx.set_verify_mode(ssl::verify_none);
    }
    if (!c.client_cert.empty()) {
        ctx.use_certificate_chain_file(c.client_cert);
        ctx.use_private_key_file(c.client_key, ssl::context::pem);
    }
    // Idle keep-alive connections give back their 16 KiB+ read and write buffers; a request
    // retried after WANT_WRITE may come from a moved buffer.
    SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // Sessions (TLS 1.2 ids, TLS 1.3 tickets) go to the connection's transport, which offers
    // the latest on its next handshake; OpenSSL's own store would only duplicate them.
    SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(native, &TlsTransport::on_new_session);
}

}  // namespace

TlsContext::TlsContext(const TlsConfig& config) : config_(config), context_(ssl::context::tls_client) {
    try {
        configure(context_, config_);
    } catch (const boost::system::system_error& e) {
        throw std::runtime_error("cannot build the TLS context: " + e.code().message());
    }
}

std::shared_ptr<TlsContext> TlsContextCache::get(const TlsConfig& config) {
    std::lock_guard lock(mutex_);
    std::erase_if(entries_, [](const std::weak_ptr<TlsContext>& e) { return e.expired(); });
    for (auto& e : entries_)
        if (auto live = e.lock(); live && live->config() == config) return live;
    auto fresh = std::make_shared<TlsContext>(config);
    entries_.push_back(fresh);
    return fresh;
}

std::size_t TlsContextCache::size() {
    std::lock_guard lock(mutex_);
    std::erase_if(entries_, [](const std::weak_ptr<TlsContext>& e) { return e.expired(); });
    return entries_.size();
}

}  // namespace mdagg::detail

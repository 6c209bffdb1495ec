#include "tls.hpp"

#include "mdagg/sim.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdio>
#include <fstream>
#include <stdexcept>

namespace mdagg::sim::detail {

namespace asio = boost::asio;
namespace ssl = asio::ssl;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
constexpr unsigned char kSessionIdContext[] = "mdagg-sim";

std::string openssl_reason() {
    const unsigned long code = ERR_peek_last_error();
    ERR_clear_error();
    if (code == 0) return "unknown OpenSSL error";
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    return text;
}

void check_readable(const char* option, const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::invalid_argument(std::string(option) + ": cannot read '" + path + "'");
}

}  // namespace

std::unique_ptr<TlsServer> TlsServer::make(const Options& o) {
    if (o.tls_cert.empty() && o.tls_key.empty()) {
        if (!o.tls_client_ca.empty() || !o.tls_version.empty())
            throw std::invalid_argument("--tls-client-ca and --tls-version need --tls-cert and --tls-key");
        return nullptr;
    }
    if (o.tls_cert.empty() || o.tls_key.empty())
        throw std::invalid_argument("--tls-cert and --tls-key go together");
    check_readable("--tls-cert", o.tls_cert);
    check_readable("--tls-key", o.tls_key);
    if (!o.tls_client_ca.empty()) check_readable("--tls-client-ca", o.tls_client_ca);

    ssl::context ctx(ssl::context::tls_server);
    SSL_CTX* native = ctx.native_handle();
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(native, o.tls_cert.c_str()) != 1)
        throw std::invalid_argument("--tls-cert: cannot load '" + o.tls_cert + "': " + openssl_reason());
    if (SSL_CTX_use_PrivateKey_file(native, o.tls_key.c_str(), SSL_FILETYPE_PEM) != 1 &&
        ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH)
        throw std::invalid_argument("--tls-key: cannot load '" + o.tls_key + "': " + openssl_reason());
    if (SSL_CTX_check_private_key(native) != 1)
        throw std::invalid_argument("--tls-key: '" + o.tls_key + "' does not match --tls-cert '" +
                                    o.tls_cert + "': " + openssl_reason());

    int min = TLS1_2_VERSION, max = TLS1_3_VERSION;
    if (o.tls_version == "1.2")
        max = TLS1_2_VERSION;
    else if (o.tls_version == "1.3")
        min = TLS1_3_VERSION;
    else if (!o.tls_version.empty())
        throw std::invalid_argument("--tls-version: expected 1.2 or 1.3, got '" + o.tls_version + "'");
    SSL_CTX_set_min_proto_version(native, min);
    SSL_CTX_set_max_proto_version(native, max);

    // Resumption: TLS 1.2 session ids from the server cache, TLS 1.2 and 1.3 tickets (on by
    // default, keys per context: they survive a `restart` fault, which keeps the context).
    // Without a session id context OpenSSL refuses to resume once client certs are verified.
    SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_session_id_context(native, kSessionIdContext, sizeof kSessionIdContext - 1);
    SSL_CTX_set_timeout(native, 3600);

    if (!o.tls_client_ca.empty()) {
        if (SSL_CTX_load_verify_locations(native, o.tls_client_ca.c_str(), nullptr) != 1)
            throw std::invalid_argument("--tls-client-ca: cannot load '" + o.tls_client_ca +
                                        "': " + openssl_reason());
        STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.tls_client_ca.c_str());
        if (names) SSL_CTX_set_client_CA_list(native, names);  // takes ownership
        SSL_CTX_set_verify(native, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
    return std::unique_ptr<TlsServer>(new TlsServer(std::move(ctx)));
}

asio::awaitable<bool> TlsServer::handshake(Stream& stream, std::chrono::milliseconds timeout) {
    stream.expires_after(timeout);
    auto [ec] = co_await stream.tls()->async_handshake(ssl::stream_base::server, nothrow);
    if (ec) {
        failures_.fetch_add(1, std::memory_order_relaxed);
        std::string reason = ec.message();
        if (ec == boost::beast::error::timeout) reason = "timed out";
        log_failure(reason);
        co_return false;
    }
    if (SSL_session_reused(stream.tls()->native_handle()))
        resumptions_.fetch_add(1, std::memory_order_relaxed);
    else
        handshakes_.fetch_add(1, std::memory_order_relaxed);
    co_return true;
}

asio::awaitable<void> TlsServer::shutdown(Stream& stream, std::chrono::milliseconds timeout) {
    stream.expires_after(timeout);
    auto [ec] = co_await stream.tls()->async_shutdown(nothrow);
    (void)ec;  // best effort: the peer may close without its close_notify
}

void TlsServer::log_failure(const std::string& reason) {
    // A client with the wrong CA retries all the time: one line per second at most.
    const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count();
    std::int64_t last = last_log_s_.load(std::memory_order_relaxed);
    if (now <= last || !last_log_s_.compare_exchange_strong(last, now)) {
        unlogged_.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    const std::uint64_t more = unlogged_.exchange(0);
    std::fprintf(stderr, "mdagg-sim: TLS handshake failed: %s%s\n", reason.c_str(),
                 more ? (" (and " + std::to_string(more) + " more since the last line)").c_str() : "");
}

void TlsServer::append_stats_json(std::string& out) const {
    out += ",\"tls\":{\"handshakes\":";
    out += std::to_string(handshakes_.load());
    out += ",\"resumptions\":";
    out += std::to_string(resumptions_.load());
    out += ",\"handshake_failures\":";
    out += std::to_string(failures_.load());
    out += '}';
}

}  // namespace mdagg::sim::detail

#pragma once
// SSL contexts for the TLS transport: one per distinct `tls:` setting, shared by every poller
// using it (a context costs milliseconds to build, with the trust store, and is safe to share
// across connections and threads).
#include <mdagg/config.hpp>

#include <boost/asio/ssl/context.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace mdagg::detail {

class TlsContext {
public:
    // Throws std::runtime_error naming the key and OpenSSL's reason (a file that went away or
    // changed since the config was loaded).
    explicit TlsContext(const TlsConfig& config);
    SSL_CTX* native() noexcept { return context_.native_handle(); }
    const TlsConfig& config() const noexcept { return config_; }

private:
    TlsConfig config_;
    boost::asio::ssl::context context_;
};

// Built when the config is applied (start-up, reload). Entries die with their last source.
class TlsContextCache {
public:
    std::shared_ptr<TlsContext> get(const TlsConfig& config);
    std::size_t size();  // live contexts

private:
    std::mutex mutex_;
    std::vector<std::weak_ptr<TlsContext>> entries_;
};

// What one source's TLS connections share: its context, the name checked and sent as SNI,
// and its counters (SourceStats).
struct TlsPeer {
    std::shared_ptr<TlsContext> context;
    std::string server_name;
    bool name_is_ip = false;  // checked against IP SANs; no SNI (RFC 6066 forbids literals)
    std::atomic<std::uint64_t>* handshakes = nullptr;
    std::atomic<std::uint64_t>* resumptions = nullptr;
};

}  // namespace mdagg::detail

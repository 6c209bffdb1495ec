// The simulator's TLS server side: the context built from --tls-cert/--tls-key (session cache
// and tickets on, so clients resume), the handshake with its counters, and close_notify.
#pragma once

#include "stream.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace mdagg::sim {
struct Options;
}

namespace mdagg::sim::detail {

class TlsServer {
public:
    // Null when the options ask for no TLS; throws std::invalid_argument naming the option and
    // the file for a certificate or key that cannot be loaded or do not match.
    static std::unique_ptr<TlsServer> make(const Options& options);

    boost::asio::ssl::context& context() noexcept { return context_; }

    // Runs the server handshake under `timeout`; false when it failed (counted, logged
    // rate-limited). Counts a full handshake or a resumption.
    boost::asio::awaitable<bool> handshake(Stream& stream, std::chrono::milliseconds timeout);

    // Sends close_notify and waits for the peer's (or its close) at most `timeout`.
    static boost::asio::awaitable<void> shutdown(Stream& stream, std::chrono::milliseconds timeout);

    // ,"tls":{"handshakes":N,"resumptions":N,"handshake_failures":N}
    void append_stats_json(std::string& out) const;

private:
    explicit TlsServer(boost::asio::ssl::context context) : context_(std::move(context)) {}
    void log_failure(const std::string& reason);

    boost::asio::ssl::context context_;
    std::atomic<std::uint64_t> handshakes_{0};   // full handshakes
    std::atomic<std::uint64_t> resumptions_{0};  // abbreviated: a session or ticket reused
    std::atomic<std::uint64_t> failures_{0};
    std::atomic<std::int64_t> last_log_s_{0};
    std::atomic<std::uint64_t> unlogged_{0};
};

}  // namespace mdagg::sim::detail

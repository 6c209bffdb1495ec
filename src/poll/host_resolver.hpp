// Name lookups kept off every poll's path and off the event loop.
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace mdagg::detail {

// getaddrinfo cannot be cancelled, and Asio runs lookups one at a time on a thread that the
// io_context's destructor joins: a hung DNS server would hold polls, the drain deadline and
// the exit hostage. Here each lookup runs on a detached thread that writes into shared state;
// pollers only read the cache and fail fast (next tick retries) while no address is known.
class HostResolver {
public:
    using Clock = std::chrono::steady_clock;
    using Endpoints = std::vector<boost::asio::ip::tcp::endpoint>;

    HostResolver(std::string host, std::uint16_t port, Clock::duration ttl);

    // Copies the known endpoints into `out` (empty while none is known). Starts a lookup
    // when none is known or the last one is older than the TTL; stale endpoints stay in use
    // until a lookup replaces them.
    void endpoints(Endpoints& out, Clock::time_point now);

private:
    struct State {
        std::mutex mutex;
        Endpoints endpoints;
        Clock::time_point resolved_at{};
        std::optional<Clock::time_point> attempted_at;
        bool in_progress = false;
    };
    static void lookup(std::shared_ptr<State> state, std::string host, std::string port);

    std::shared_ptr<State> state_ = std::make_shared<State>();
    std::string host_;
    std::string port_;
    Clock::duration ttl_;
};

}  // namespace mdagg::detail

#include "host_resolver.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <cstring>
#include <thread>

namespace mdagg::detail {

HostResolver::HostResolver(std::string host, std::uint16_t port, Clock::duration ttl)
    : host_(std::move(host)), port_(std::to_string(port)), ttl_(ttl) {}

void HostResolver::endpoints(Endpoints& out, Clock::time_point now) {
    bool start = false;
    {
        std::lock_guard lock(state_->mutex);
        out = state_->endpoints;
        const bool due = state_->endpoints.empty() || now - state_->resolved_at >= ttl_;
        // One lookup at a time, and at most one a second: thousands of pollers ask.
        if (due && !state_->in_progress && (!state_->attempted_at || now - *state_->attempted_at >= std::chrono::seconds(1))) {
            state_->in_progress = true;
            state_->attempted_at = now;
            start = true;
        }
    }
    if (!start) return;
    try {
        std::thread(lookup, state_, host_, port_).detach();
    } catch (const std::system_error&) {
        std::lock_guard lock(state_->mutex);
        state_->in_progress = false;  // no thread to be had now: the next connect tries again
    }
}

void HostResolver::lookup(std::shared_ptr<State> state, std::string host, std::string port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    // No AI_ADDRCONFIG: glibc ignores loopback addresses for it, so on a host whose only IPv6
    // address is ::1 (a container without IPv6) a name resolving to ::1 would resolve to
    // nothing, or to 127.0.0.1 from /etc/hosts. An address the host cannot reach fails its
    // connect at once and the next one is tried; RFC 6724 sorting already puts it last.
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* results = nullptr;
    Endpoints found;
    if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &results) == 0) {
        for (addrinfo* ai = results; ai; ai = ai->ai_next) {
            boost::asio::ip::tcp::endpoint ep;
            if (ai->ai_addrlen <= ep.capacity()) {
                std::memcpy(ep.data(), ai->ai_addr, ai->ai_addrlen);
                ep.resize(ai->ai_addrlen);
                found.push_back(ep);
            }
        }
        ::freeaddrinfo(results);
    }
    std::lock_guard lock(state->mutex);
    state->in_progress = false;
    // A failed lookup keeps the last good addresses: a DNS hiccup must not stop polling.
    if (!found.empty()) {
        state->endpoints = std::move(found);
        state->resolved_at = Clock::now();
    }
}

}  // namespace mdagg::detail

// In-process listeners and a hedged source for the hedge tests that run a PollerGroup
// (poll_hedge_leg_test, poll_hedge_verdict_test, poll_hedge_drain_tally_test).
#pragma once

#include "poll_test_server.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace {

// Answers every request after `delay`; with a negative delay never answers (holds it open).
inline asio::awaitable<void> answer_after(tcp::socket socket, std::chrono::milliseconds delay) {
    std::string in;
    const auto quote = response(200, R"({"b":"1.00","a":"1.01"})");
    for (;;) {
        auto [ec, n] = co_await asio::async_read_until(socket, asio::dynamic_buffer(in), "\r\n\r\n",
                                                       asio::as_tuple(asio::use_awaitable));
        if (ec) co_return;
        in.erase(0, n);
        if (delay < std::chrono::milliseconds(0)) continue;
        asio::steady_timer wait(socket.get_executor(), delay);
        co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
        if (std::get<0>(co_await asio::async_write(socket, asio::buffer(quote), asio::as_tuple(asio::use_awaitable))))
            co_return;
    }
}

// Accepts for ever, each connection served by `serve(socket)`.
template <class Serve>
asio::awaitable<void> accept_with(tcp::acceptor& acceptor, Serve serve) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
        if (ec) co_return;
        asio::co_spawn(acceptor.get_executor(), serve(std::move(socket)), asio::detached);
    }
}

// The url's host on `primary_port`, one mirror on `mirror_port`, a hedge at 3 ms for every
// first request (max_extra 100%), polls every 100 ms with `timeout`.
inline mdagg::Config hedged_config(std::uint16_t primary_port, std::uint16_t mirror_port,
                                   const std::vector<std::string>& symbols, std::chrono::milliseconds timeout) {
    auto config = make_config(primary_port, symbols);
    auto& source = config.sources[0];
    source.interval = std::chrono::milliseconds(100);
    source.timeout = timeout;
    source.hedge.enabled = true;
    source.hedge.after = std::chrono::milliseconds(3);
    source.hedge.max_extra = 1.0;
    mdagg::MirrorConfig mirror;
    mirror.url = source.url;
    mirror.url.port = mirror_port;
    mirror.url_text = "http://127.0.0.1:";
    mirror.url_text.append(std::to_string(mirror_port)).append("/quotes/{symbol}");
    mirror.host = 1;
    source.mirrors.push_back(mirror);
    mdagg::HostConfig mirror_host = config.hosts[0];
    mirror_host.port = mirror_port;
    config.hosts.push_back(mirror_host);
    return config;
}

}  // namespace

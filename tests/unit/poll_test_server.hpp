// Shared by the PollerGroup unit tests (poll_test.cpp, poll_host_limits_test.cpp): an
// in-process HTTP server with canned answers, chosen by the symbol in the request's path, and
// the config that polls it.
#pragma once

#include <mdagg/poll.hpp>

#include <boost/asio.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <string>
#include <vector>

using namespace std::chrono_literals;
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

inline std::string response(int status, const std::string& body, bool keep_alive = true) {
    return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: " + std::to_string(body.size()) +
           (keep_alive ? "\r\n" : "\r\nConnection: close\r\n") + "\r\n" + body;
}

// FLAKY answers like OK while this is set, like E500 otherwise.
std::atomic<bool> g_flaky_healthy{true};
// R429ONCE answers 429 to its first request only.
std::atomic<int> g_429_sent{0};
// R503ONCE answers 503 with Retry-After: 3 to its first request only.
std::atomic<int> g_503_sent{0};
// C100/C103 count their requests: each answer's bid is the request's number.
std::atomic<int> g_interim_requests{0};

// Answers GET /quotes/<symbol> by symbol: OK (a quote), BIG (over the body limit), E500,
// GARBAGE (not HTTP), NOMAP (JSON without the mapped fields), HANG (never answers), E404,
// R429 (429, Retry-After: 1), BAN (418, no Retry-After), BODYERR (a 200 whose code is not "0"),
// JUNK (a 200 that is not JSON), FLAKY (see above), IDLECLOSE (answers like OK, then closes the
// idle connection 5 ms later without saying so).
inline asio::awaitable<void> serve(tcp::socket socket) {
    std::string buffer;
    for (;;) {
        char chunk[1024];
        auto [ec, n] = co_await socket.async_read_some(asio::buffer(chunk), asio::as_tuple(asio::use_awaitable));
        if (ec) co_return;
        buffer.append(chunk, n);
        for (auto end = buffer.find("\r\n\r\n"); end != std::string::npos; end = buffer.find("\r\n\r\n")) {
            std::string request = buffer.substr(0, end);
            buffer.erase(0, end + 4);
            auto target = request.substr(4, request.find(' ', 4) - 4);
            std::string symbol = target.substr(target.rfind('/') + 1);
            symbol = symbol.substr(0, symbol.find('?'));
            std::string out;
            if (symbol == "OK") out = response(200, R"({"b":"1.00","a":"1.01"})");
            else if (symbol == "BIG") out = response(200, std::string(4096, ' ') + "{}");
            else if (symbol == "E500") out = response(500, "{}");
            else if (symbol == "GARBAGE") out = "HELLO THERE\r\n\r\n";
            else if (symbol == "NOMAP") out = response(200, R"({"x":1})");
            else if (symbol == "HANG") continue;
            else if (symbol == "E404") out = response(404, "{}");
            else if (symbol == "DROP") co_return;  // accepts, reads the request, hangs up
            else if (symbol == "R429") out = "HTTP/1.1 429 X\r\nRetry-After: 1\r\nContent-Length: 2\r\n\r\n{}";
            else if (symbol == "BAN") out = response(418, "{}");
            else if (symbol == "R429ONCE")
                out = g_429_sent++ == 0 ? "HTTP/1.1 429 X\r\nRetry-After: 1\r\nContent-Length: 2\r\n\r\n{}"
                                        : response(200, R"({"b":"1.00","a":"1.01"})");
            else if (symbol == "BODYERR") out = response(200, R"({"code":"50011","b":"1.00","a":"1.01"})");
            else if (symbol == "JUNK") out = response(200, R"({"b":"1.00",)");
            else if (symbol == "FLAKY")
                out = g_flaky_healthy ? response(200, R"({"b":"1.00","a":"1.01"})") : response(503, "{}");
            else if (symbol == "IDLECLOSE") out = response(200, R"({"b":"1.00","a":"1.01"})");
            else if (symbol == "R503ONCE")
                out = g_503_sent++ == 0 ? "HTTP/1.1 503 X\r\nRetry-After: 3\r\nContent-Length: 2\r\n\r\n{}"
                                        : response(200, R"({"b":"1.00","a":"1.01"})");
            else if (symbol == "S101") out = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n";
            else if (symbol == "C100" || symbol == "C103") {
                // The interim response goes out on its own, then the answer.
                const std::string interim = symbol == "C100" ? "HTTP/1.1 100 Continue\r\n\r\n"
                                                             : "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n";
                socket.set_option(tcp::no_delay(true));  // no Nagle wait for the second write
                auto [iec, iw] = co_await asio::async_write(socket, asio::buffer(interim), asio::as_tuple(asio::use_awaitable));
                if (iec) co_return;
                const int n = ++g_interim_requests;
                out = response(200, R"({"b":")" + std::to_string(n) + R"(","a":"1000000"})");
            }
            auto [wec, w] = co_await asio::async_write(socket, asio::buffer(out), asio::as_tuple(asio::use_awaitable));
            if (wec || symbol == "GARBAGE") co_return;
            if (symbol == "IDLECLOSE") {
                // A keep-alive timeout shorter than the poll interval: close, unannounced.
                asio::steady_timer idle(socket.get_executor(), 5ms);
                co_await idle.async_wait(asio::as_tuple(asio::use_awaitable));
                co_return;
            }
        }
    }
}

inline asio::awaitable<void> accept_loop(tcp::acceptor& acceptor) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
        if (ec) co_return;
        asio::co_spawn(acceptor.get_executor(), serve(std::move(socket)), asio::detached);
    }
}

inline mdagg::Config make_config(std::uint16_t port, std::vector<std::string> symbols) {
    mdagg::Config c;
    mdagg::SourceConfig s;
    s.name = "test";
    s.url.scheme = "http";
    s.url.host = "127.0.0.1";
    s.url.port = port;
    s.url.target_template = "/quotes/{symbol}";
    s.interval = 20ms;
    s.timeout = 20ms;
    s.max_in_flight = symbols.size();
    s.max_body_bytes = 1024;
    s.symbols = std::move(symbols);
    s.fields.bid = "/b";
    s.fields.ask = "/a";
    c.sources.push_back(s);
    mdagg::HostConfig h;
    h.host = s.url.host;
    h.port = port;
    h.breaker.failures = 0;  // tests that want one set it
    c.hosts.push_back(h);
    return c;
}

inline std::uint64_t errors(const mdagg::SourceStats& st, mdagg::PollError e) {
    return st.errors[static_cast<std::size_t>(e)].load();
}

}  // namespace

namespace {

struct Fixture {
    explicit Fixture(int io_threads = 1) : io(io_threads) {
        asio::co_spawn(io, accept_loop(acceptor), asio::detached);
    }
    std::uint16_t port() const { return acceptor.local_endpoint().port(); }
    asio::io_context io;
    tcp::acceptor acceptor{io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
    std::map<std::string, int> quotes;
};

}  // namespace

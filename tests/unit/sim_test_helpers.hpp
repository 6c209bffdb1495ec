// Shared by the simulator's unit tests (tests/unit/sim_*_test.cpp): the simulator in-process
// on port 0, driven by a Beast client over loopback.
#pragma once

#include "mdagg/sim.hpp"
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <ctime>
#include <functional>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using mdagg::sim::Options;
using mdagg::sim::Simulator;
using Clock = std::chrono::steady_clock;

// The simulator on its own io_context and thread(s), as a program would run it.
class Server {
public:
    explicit Server(Options options, unsigned threads = 1)
        : io_(threads == 1 ? 1 : static_cast<int>(threads)), running_(threads) {
        options.host = "127.0.0.1";
        options.port = 0;
        options.control_host = "127.0.0.1";
        options.control_port = 0;
        sim_ = std::make_unique<Simulator>(io_, std::move(options));
        sim_->start();
        for (unsigned i = 0; i < threads; ++i) {
            threads_.emplace_back([this] {
                io_.run();
                if (running_.fetch_sub(1) == 1) done_.set_value();
            });
        }
    }

    ~Server() {
        if (!stopped_) {
            sim_->stop();
            if (finished_.wait_for(10s) != std::future_status::ready) io_.stop();
        }
        for (auto& t : threads_) t.join();
    }

    Simulator& sim() { return *sim_; }
    std::uint16_t port() const { return sim_->port(); }
    std::uint16_t control_port() const { return sim_->control_port(); }

    // True when stop() alone lets every io thread return.
    bool stop_and_wait(std::chrono::milliseconds limit) {
        sim_->stop();
        stopped_ = true;
        if (finished_.wait_for(limit) == std::future_status::ready) return true;
        io_.stop();  // only so that the test ends; the caller fails
        return false;
    }

private:
    asio::io_context io_;  // declared first: the Simulator must not outlive it
    std::unique_ptr<Simulator> sim_;
    std::atomic<unsigned> running_;
    std::promise<void> done_;
    std::future<void> finished_ = done_.get_future();
    std::vector<std::thread> threads_;
    bool stopped_ = false;
};

struct Reply {
    bool done = false;
    beast::error_code ec;
    http::response<http::string_body> res;
    Clock::time_point finished{};
    Clock::duration elapsed{};
};

// One keep-alive connection. Several clients may share an io_context to run requests side
// by side; the blocking helpers run it until their own request is done.
class Client {
public:
    Client(asio::io_context& io, std::uint16_t port) : io_(io), stream_(io), port_(port) {
        connect();
    }

    void connect() {
        stream_.close();
        buffer_.clear();
        stream_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    }

    void async_get(const std::string& target, Clock::duration timeout, Reply& out,
                   http::verb method = http::verb::get, const std::string& body = {}) {
        req_ = {method, target, 11};
        req_.set(http::field::host, "127.0.0.1");
        if (!body.empty()) {
            req_.body() = body;
            req_.prepare_payload();
        }
        out = Reply{};
        const auto start = Clock::now();
        stream_.expires_after(timeout);
        http::async_write(stream_, req_, [this, &out, start](beast::error_code ec, std::size_t) {
            if (ec) return finish(out, ec, start);
            async_read(out, start);
        });
    }

    void async_read(Reply& out, Clock::time_point start) {
        parser_.emplace();  // a parser per message: reading into an old one appends
        http::async_read(stream_, buffer_, *parser_,
                         [this, &out, start](beast::error_code ec, std::size_t) {
                             if (!ec) out.res = parser_->release();
                             finish(out, ec, start);
                         });
    }

    Reply get(const std::string& target, Clock::duration timeout = 5s,
              http::verb method = http::verb::get, const std::string& body = {}) {
        Reply out;
        async_get(target, timeout, out, method, body);
        run_until(out);
        return out;
    }

    // Reads one more response without sending anything (pipelining, end of stream).
    Reply read(Clock::duration timeout = 5s) {
        Reply out;
        stream_.expires_after(timeout);
        async_read(out, Clock::now());
        run_until(out);
        return out;
    }

    void send_raw(const std::string& bytes) {
        stream_.expires_never();
        asio::write(stream_.socket(), asio::buffer(bytes));
    }

    void run_until(const Reply& out) {
        io_.restart();
        while (!out.done && io_.run_one() != 0) {
        }
    }

private:
    static void finish(Reply& out, beast::error_code ec, Clock::time_point start) {
        out.ec = ec;
        out.done = true;
        out.finished = Clock::now();
        out.elapsed = out.finished - start;
    }

    asio::io_context& io_;
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::uint16_t port_;
    http::request<http::string_body> req_;
    std::optional<http::response_parser<http::string_body>> parser_;
};

inline nlohmann::json stats_over(Client& client) {
    auto reply = client.get("/stats");
    EXPECT_FALSE(reply.ec) << reply.ec.message();
    EXPECT_EQ(reply.res.result(), http::status::ok);
    return nlohmann::json::parse(reply.res.body());
}

// "Written" is counted when the server's write completes, which may be a moment after the
// client already holds the bytes (another connection, another thread): poll briefly.
inline nlohmann::json stats_once_settled(Client& client, std::uint64_t responses) {
    nlohmann::json stats;
    for (const auto deadline = Clock::now() + 3s; Clock::now() < deadline;) {
        stats = stats_over(client);
        if (stats["responses"] == responses) break;
        std::this_thread::sleep_for(5ms);
    }
    return stats;
}

inline Options small(std::size_t symbols = 10) {
    Options o;
    o.symbols = symbols;
    return o;
}

// What a plain socket got back: bytes until EOF, an error or the deadline.
struct Raw {
    std::string bytes;
    beast::error_code ec;  // empty when the deadline passed first
    bool timed_out = false;
    Clock::duration elapsed{};

    std::string head() const { return bytes.substr(0, bytes.find("\r\n\r\n")); }
    std::string body() const {
        const auto end = bytes.find("\r\n\r\n");
        return end == std::string::npos ? std::string{} : bytes.substr(end + 4);
    }
    bool complete_head() const { return bytes.find("\r\n\r\n") != std::string::npos; }
    std::string header(const std::string& name) const {
        const std::string h = head();
        const auto at = h.find("\r\n" + name + ": ");
        if (at == std::string::npos) return {};
        const auto start = at + name.size() + 4;
        return h.substr(start, h.find("\r\n", start) - start);
    }
};

inline Raw raw_exchange(std::uint16_t port, const std::string& request, Clock::duration timeout) {
    asio::io_context io;
    tcp::socket socket(io);
    Raw r;
    const auto start = Clock::now();
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), r.ec);
    if (r.ec) return r;
    asio::write(socket, asio::buffer(request), r.ec);
    if (r.ec) return r;
    std::array<char, 16 * 1024> buf;
    std::function<void()> read = [&] {
        socket.async_read_some(asio::buffer(buf), [&](beast::error_code ec, std::size_t n) {
            r.bytes.append(buf.data(), n);
            if (ec) {
                r.ec = ec;
                r.elapsed = Clock::now() - start;
                return;
            }
            read();
        });
    };
    read();
    io.run_for(timeout);
    if (!r.ec) {
        r.timed_out = true;
        r.elapsed = Clock::now() - start;
    }
    return r;
}

// The control API over HTTP: returns the status and the parsed body (null when not JSON).
inline std::pair<int, nlohmann::json> control(Client& client, http::verb method,
                                       const std::string& target, const std::string& body = {}) {
    auto reply = client.get(target, 5s, method, body);
    EXPECT_FALSE(reply.ec) << target << ": " << reply.ec.message();
    return {reply.res.result_int(),
            nlohmann::json::parse(reply.res.body(), nullptr, false, true)};
}

inline std::uint64_t add_fault(Client& client, const nlohmann::json& fault) {
    auto [status, body] = control(client, http::verb::post, "/control/faults", fault.dump());
    EXPECT_EQ(status, 201) << body.dump();
    return body.value("id", std::uint64_t{0});
}

inline std::uint64_t seq_of(const Reply& reply) {
    EXPECT_EQ(reply.res.result(), http::status::ok) << reply.res.body();
    return nlohmann::json::parse(reply.res.body())["seq"].get<std::uint64_t>();
}

inline Options with_control(std::size_t symbols = 10) {
    auto o = small(symbols);
    o.control = true;
    return o;
}

}  // namespace

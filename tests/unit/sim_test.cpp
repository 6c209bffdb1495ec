// The simulator in-process on port 0, driven by a Beast client over loopback.
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

// Parses "123.45" exactly (digits, a dot, two digits); -1 for anything else.
std::int64_t hundredths(const std::string& text) {
    const auto dot = text.find('.');
    const bool shaped = dot != std::string::npos && dot > 0 && dot + 3 == text.size() &&
                        text.find_first_not_of("0123456789.") == std::string::npos &&
                        text.find('.', dot + 1) == std::string::npos;
    EXPECT_TRUE(shaped) << "not a 2-decimal string: '" << text << "'";
    if (!shaped) return -1;
    return std::stoll(text.substr(0, dot)) * 100 + std::stoll(text.substr(dot + 1));
}

nlohmann::json stats_over(Client& client) {
    auto reply = client.get("/stats");
    EXPECT_FALSE(reply.ec) << reply.ec.message();
    EXPECT_EQ(reply.res.result(), http::status::ok);
    return nlohmann::json::parse(reply.res.body());
}

// "Written" is counted when the server's write completes, which may be a moment after the
// client already holds the bytes (another connection, another thread): poll briefly.
nlohmann::json stats_once_settled(Client& client, std::uint64_t responses) {
    nlohmann::json stats;
    for (const auto deadline = Clock::now() + 3s; Clock::now() < deadline;) {
        stats = stats_over(client);
        if (stats["responses"] == responses) break;
        std::this_thread::sleep_for(5ms);
    }
    return stats;
}

Options small(std::size_t symbols = 10) {
    Options o;
    o.symbols = symbols;
    return o;
}

TEST(SimParseListen, AcceptsHostPortAndBracketedIpv6) {
    Options o;
    mdagg::sim::parse_listen("127.0.0.1:8081", o);
    EXPECT_EQ(o.host, "127.0.0.1");
    EXPECT_EQ(o.port, 8081);
    mdagg::sim::parse_listen("localhost:0", o);
    EXPECT_EQ(o.host, "localhost");
    EXPECT_EQ(o.port, 0);
    mdagg::sim::parse_listen("[::1]:65535", o);
    EXPECT_EQ(o.host, "::1");
    EXPECT_EQ(o.port, 65535);
}

TEST(SimParseListen, RejectsMalformed) {
    Options o;
    for (const char* bad : {"", "8081", "host:", ":8081", "host:65536", "host:80x", "host:-1",
                            "::1:80", "[::1]80", "[::1]:"}) {
        EXPECT_THROW(mdagg::sim::parse_listen(bad, o), std::invalid_argument) << bad;
    }
}

TEST(Sim, QuotesOverKeepAlive) {
    Server server(small());
    asio::io_context io;
    Client client(io, server.port());
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    for (std::uint64_t round = 1; round <= 3; ++round) {
        for (std::string symbol : {"STOCK_1", "STOCK_7"}) {
            auto reply = client.get("/quotes/" + symbol);
            ASSERT_FALSE(reply.ec) << reply.ec.message();
            ASSERT_EQ(reply.res.result(), http::status::ok);
            EXPECT_EQ(reply.res[http::field::content_type], "application/json");
            EXPECT_TRUE(reply.res.keep_alive());
            const auto body = nlohmann::json::parse(reply.res.body());
            EXPECT_EQ(body["symbol"], symbol);
            EXPECT_LT(hundredths(body["bidPrice"]), hundredths(body["askPrice"]));
            EXPECT_GT(hundredths(body["bidPrice"]), 0);
            EXPECT_GT(hundredths(body["bidQty"]), 0);
            EXPECT_GT(hundredths(body["askQty"]), 0);
            EXPECT_EQ(body["seq"].get<std::uint64_t>(), round);
            const auto time = body["time"].get<std::int64_t>();
            EXPECT_GE(time, now_ms - 1000);
            EXPECT_LE(time, now_ms + 60'000);
        }
    }
    const auto stats = stats_over(client);
    EXPECT_EQ(stats["connections"], 1);  // everything above shared one connection
    EXPECT_EQ(stats["responses"], 6);
}

TEST(Sim, PricesStayOrderedAndSeqHasNoGaps) {
    Server server(small(3));
    asio::io_context io;
    Client client(io, server.port());
    for (std::uint64_t i = 1; i <= 300; ++i) {
        auto reply = client.get("/quotes/STOCK_2");
        ASSERT_FALSE(reply.ec) << reply.ec.message();
        const auto body = nlohmann::json::parse(reply.res.body());
        ASSERT_LT(hundredths(body["bidPrice"]), hundredths(body["askPrice"])) << body.dump();
        ASSERT_EQ(body["seq"].get<std::uint64_t>(), i);
    }
}

TEST(Sim, UnknownSymbolsAndPathsAre404AndNotCounted) {
    Server server(small());
    asio::io_context io;
    Client client(io, server.port());
    for (const char* target : {"/quotes/STOCK_10", "/quotes/STOCK_01", "/quotes/OTHER_1",
                               "/quotes/", "/quotes/STOCK_", "/nope"}) {
        auto reply = client.get(target);
        ASSERT_FALSE(reply.ec) << target << ": " << reply.ec.message();
        EXPECT_EQ(reply.res.result(), http::status::not_found) << target;
        EXPECT_EQ(reply.res[http::field::content_type], "application/json");
        EXPECT_TRUE(nlohmann::json::parse(reply.res.body()).contains("error")) << target;
        EXPECT_TRUE(reply.res.keep_alive());
    }
    auto post = client.get("/quotes/STOCK_1", 5s, http::verb::post);
    ASSERT_FALSE(post.ec);
    EXPECT_EQ(post.res.result(), http::status::method_not_allowed);

    const auto stats = stats_over(client);
    EXPECT_EQ(stats["responses"], 0);
    EXPECT_EQ(stats["not_found"], 6);
    EXPECT_EQ(stats["requests"], 8);  // 6 + POST + /stats
    for (const auto& [name, count] : stats["per_symbol"].items()) EXPECT_EQ(count, 0) << name;
    // The first real quote still gets seq 1: 404s take no sequence numbers.
    auto reply = client.get("/quotes/STOCK_1");
    EXPECT_EQ(nlohmann::json::parse(reply.res.body())["seq"], 1);
}

TEST(Sim, StatsMatchTheQuotesReceived) {
    Server server(small(5));
    asio::io_context io;
    Client a(io, server.port());
    Client b(io, server.port());
    std::map<std::string, std::uint64_t> received;
    for (int i = 0; i < 40; ++i) {
        const std::string symbol = "STOCK_" + std::to_string(i % 4);
        auto reply = (i % 3 == 0 ? b : a).get("/quotes/" + symbol);
        ASSERT_FALSE(reply.ec);
        ASSERT_EQ(reply.res.result(), http::status::ok);
        ++received[symbol];
    }
    a.get("/quotes/STOCK_99");  // not a quote
    const auto stats = stats_once_settled(a, 40);
    EXPECT_EQ(stats["responses"], 40);
    EXPECT_GE(stats["requests"], 42);  // 40 + 404 + at least one /stats
    EXPECT_EQ(stats["connections"], 2);
    EXPECT_EQ(stats["failed_writes"], 0);
    EXPECT_EQ(stats["hung_requests"], 0);
    ASSERT_EQ(stats["per_symbol"].size(), 5u);
    for (const auto& [name, count] : stats["per_symbol"].items())
        EXPECT_EQ(count.get<std::uint64_t>(), received[name]) << name;
    EXPECT_EQ(server.sim().responses_written(), 40u);
}

TEST(Sim, MaxRequestsPerConnectionClosesAfterN) {
    auto options = small();
    options.max_requests_per_connection = 3;
    Server server(options);
    asio::io_context io;
    Client client(io, server.port());
    for (int i = 1; i <= 3; ++i) {
        auto reply = client.get("/quotes/STOCK_4");
        ASSERT_FALSE(reply.ec) << reply.ec.message();
        EXPECT_EQ(reply.res.keep_alive(), i < 3) << "response " << i;
    }
    auto after = client.read(2s);
    EXPECT_EQ(after.ec, http::error::end_of_stream) << after.ec.message();

    client.connect();  // the client's side of a reconnect
    auto reply = client.get("/quotes/STOCK_4");
    ASSERT_FALSE(reply.ec);
    EXPECT_EQ(nlohmann::json::parse(reply.res.body())["seq"], 4);
    const auto stats = stats_once_settled(client, 4);
    EXPECT_EQ(stats["connections"], 2);
    EXPECT_EQ(stats["responses"], 4);
}

TEST(Sim, HungSymbolNeverAnswersButOthersDo) {
    auto options = small();
    options.hung_symbols = {"STOCK_3", "GHOST"};
    Server server(options);
    EXPECT_TRUE(server.sim().is_hung("STOCK_3"));
    EXPECT_TRUE(server.sim().is_hung("GHOST"));
    EXPECT_FALSE(server.sim().is_hung("STOCK_4"));

    asio::io_context io;
    Client hung(io, server.port());
    Client fine(io, server.port());
    Reply hung_reply, fine_reply;
    hung.async_get("/quotes/STOCK_3", 400ms, hung_reply);
    fine.async_get("/quotes/STOCK_4", 5s, fine_reply);
    io.run();
    ASSERT_TRUE(hung_reply.done && fine_reply.done);
    EXPECT_EQ(hung_reply.ec, beast::error::timeout) << hung_reply.ec.message();
    EXPECT_GE(hung_reply.elapsed, 350ms);
    ASSERT_FALSE(fine_reply.ec) << fine_reply.ec.message();
    EXPECT_EQ(fine_reply.res.result(), http::status::ok);
    EXPECT_LT(fine_reply.finished, hung_reply.finished);

    Client other(io, server.port());
    EXPECT_EQ(other.get("/quotes/GHOST", 300ms).ec, beast::error::timeout);

    // The client's timeout closed its socket; the server notices and lets go.
    Client observer(io, server.port());
    nlohmann::json stats;
    for (int i = 0; i < 100; ++i) {
        stats = stats_over(observer);
        if (stats["open_connections"] == 2) break;  // `fine` and `observer`
        std::this_thread::sleep_for(20ms);
    }
    EXPECT_EQ(stats["open_connections"], 2);
    EXPECT_EQ(stats["hung_requests"], 2);
    EXPECT_EQ(stats["responses"], 1);
    EXPECT_EQ(stats["per_symbol"]["STOCK_3"], 0);
}

TEST(Sim, HungRatioPicksAStableShareByName) {
    asio::io_context io;
    auto options = small(2000);
    options.hung_ratio = 0.2;
    Simulator one(io, options);
    options.seed = 99;  // the choice depends on the name only
    Simulator two(io, options);
    int hung = 0;
    for (int i = 0; i < 2000; ++i) {
        const std::string name = "STOCK_" + std::to_string(i);
        EXPECT_EQ(one.is_hung(name), two.is_hung(name)) << name;
        hung += one.is_hung(name);
    }
    EXPECT_GT(hung, 300);
    EXPECT_LT(hung, 500);

    options.hung_ratio = 0.0;
    Simulator none(io, options);
    options.hung_ratio = 1.0;
    Simulator all(io, options);
    for (int i = 0; i < 2000; ++i) {
        const std::string name = "STOCK_" + std::to_string(i);
        EXPECT_FALSE(none.is_hung(name));
        EXPECT_TRUE(all.is_hung(name));
    }
    EXPECT_FALSE(all.is_hung("STOCK_2000"));  // unknown symbols 404 instead
}

TEST(Sim, RejectsInvalidOptions) {
    asio::io_context io;
    auto options = small();
    options.latency_min = 5ms;
    options.latency_max = 1ms;
    EXPECT_THROW((void)(Simulator(io, options)), std::invalid_argument);
    options = small();
    options.hung_ratio = 1.5;
    EXPECT_THROW((void)(Simulator(io, options)), std::invalid_argument);
}

TEST(Sim, StartFailsWithSystemErrorWhenThePortIsTaken) {
    asio::io_context io;
    Server first(small());
    auto options = small();
    options.host = "127.0.0.1";
    options.port = first.port();
    Simulator second(io, options);
    EXPECT_THROW(second.start(), std::system_error);
}

TEST(Sim, LatencyDelaysQuoteResponses) {
    auto options = small();
    options.latency_min = 30ms;
    options.latency_max = 50ms;
    Server server(options);
    asio::io_context io;
    Client client(io, server.port());
    for (int i = 0; i < 5; ++i) {
        auto reply = client.get("/quotes/STOCK_1");
        ASSERT_FALSE(reply.ec);
        EXPECT_GE(reply.elapsed, 30ms);
        EXPECT_LT(reply.elapsed, 2s);
    }
}

TEST(Sim, PipelinedRequestsAreAnsweredInOrder) {
    Server server(small());
    asio::io_context io;
    Client client(io, server.port());
    client.send_raw(
        "GET /quotes/STOCK_1 HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /quotes/STOCK_2 HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /quotes/STOCK_1 HTTP/1.1\r\nHost: x\r\n\r\n");
    const std::pair<const char*, int> expected[] = {{"STOCK_1", 1}, {"STOCK_2", 1}, {"STOCK_1", 2}};
    for (const auto& [symbol, seq] : expected) {
        auto reply = client.read();
        ASSERT_FALSE(reply.ec) << reply.ec.message();
        const auto body = nlohmann::json::parse(reply.res.body());
        EXPECT_EQ(body["symbol"], symbol);
        EXPECT_EQ(body["seq"], seq);
    }
}

TEST(Sim, Http10WithoutKeepAliveIsClosedAfterTheResponse) {
    Server server(small());
    asio::io_context io;
    Client client(io, server.port());
    client.send_raw("GET /quotes/STOCK_1 HTTP/1.0\r\n\r\n");
    auto reply = client.read();
    ASSERT_FALSE(reply.ec) << reply.ec.message();
    EXPECT_EQ(reply.res.version(), 10);
    EXPECT_FALSE(reply.res.keep_alive());
    EXPECT_EQ(client.read(2s).ec, http::error::end_of_stream);
}

TEST(Sim, MalformedAndOversizedRequestsGetAnErrorAndClose) {
    Server server(small());
    asio::io_context io;
    {
        Client client(io, server.port());
        client.send_raw("NOT HTTP AT ALL\r\n\r\n");
        auto reply = client.read();
        ASSERT_FALSE(reply.ec) << reply.ec.message();
        EXPECT_EQ(reply.res.result(), http::status::bad_request);
        EXPECT_FALSE(reply.res.keep_alive());
    }
    {
        Client client(io, server.port());
        client.send_raw("GET /quotes/STOCK_1 HTTP/1.1\r\nX-Big: " + std::string(16 * 1024, 'a') +
                        "\r\n\r\n");
        auto reply = client.read();
        ASSERT_FALSE(reply.ec) << reply.ec.message();
        EXPECT_EQ(reply.res.result(), http::status::request_header_fields_too_large);
    }
    // Neither disturbed the server.
    Client client(io, server.port());
    auto reply = client.get("/quotes/STOCK_1");
    ASSERT_FALSE(reply.ec);
    EXPECT_EQ(nlohmann::json::parse(reply.res.body())["seq"], 1);
}

TEST(Sim, StopClosesIdleAndHungConnectionsAndRunReturns) {
    auto options = small();
    options.hung_symbols = {"STOCK_5"};
    options.latency_min = options.latency_max = 10s;  // applies to quotes only
    Server server(options);
    asio::io_context io;
    Client idle(io, server.port());
    ASSERT_FALSE(idle.get("/stats").ec);
    Client hung(io, server.port());
    Reply hung_reply;
    hung.async_get("/quotes/STOCK_5", 30s, hung_reply);
    Client slow(io, server.port());
    Reply slow_reply;
    slow.async_get("/quotes/STOCK_1", 30s, slow_reply);
    io.restart();
    io.run_for(200ms);  // both requests are with the server now

    const auto begin = Clock::now();
    EXPECT_TRUE(server.stop_and_wait(3s));
    EXPECT_LT(Clock::now() - begin, 3s);
    io.restart();
    io.run_for(2s);
    EXPECT_TRUE(hung_reply.done);
    EXPECT_TRUE(hung_reply.ec) << "no response expected";
    EXPECT_TRUE(slow_reply.done);
    EXPECT_TRUE(slow_reply.ec) << "the delayed response must not be sent after stop";
    EXPECT_TRUE(idle.read(2s).ec);
    EXPECT_EQ(server.sim().responses_written(), 0u);
}

TEST(Sim, ManyThreadsManyClientsKeepPerSymbolOrder) {
    Server server(small(4), 4);
    constexpr int kClients = 8;
    constexpr int kRequests = 250;
    std::vector<std::thread> clients;
    std::atomic<int> failures{0};
    std::atomic<std::uint64_t> ok{0};
    for (int c = 0; c < kClients; ++c) {
        clients.emplace_back([&, c] {
            asio::io_context io;
            Client client(io, server.port());
            std::map<std::string, std::uint64_t> last_seq;
            for (int i = 0; i < kRequests; ++i) {
                const std::string symbol = "STOCK_" + std::to_string((i + c) % 4);
                auto reply = client.get("/quotes/" + symbol);
                if (reply.ec || reply.res.result() != http::status::ok) {
                    ++failures;
                    continue;
                }
                const auto body = nlohmann::json::parse(reply.res.body());
                const auto seq = body["seq"].get<std::uint64_t>();
                if (seq <= last_seq[symbol] || body["symbol"] != symbol) ++failures;
                last_seq[symbol] = seq;
                ++ok;
            }
        });
    }
    for (auto& t : clients) t.join();
    EXPECT_EQ(failures, 0);
    EXPECT_EQ(ok, std::uint64_t{kClients} * kRequests);

    asio::io_context io;
    Client client(io, server.port());
    const auto stats = stats_once_settled(client, ok.load());
    EXPECT_EQ(stats["responses"], ok.load());
    std::uint64_t sum = 0;
    for (const auto& [name, count] : stats["per_symbol"].items()) {
        sum += count.get<std::uint64_t>();
        // seq numbers are dense per symbol: the next one is written + 1.
        auto reply = client.get("/quotes/" + name);
        EXPECT_EQ(nlohmann::json::parse(reply.res.body())["seq"], count.get<std::uint64_t>() + 1);
    }
    EXPECT_EQ(sum, ok.load());
}

// ---- faults ----------------------------------------------------------------------------

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

Raw raw_exchange(std::uint16_t port, const std::string& request, Clock::duration timeout) {
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

std::string get_request(const std::string& symbol) {
    return "GET /quotes/" + symbol + " HTTP/1.1\r\nHost: x\r\n\r\n";
}

// The control API over HTTP: returns the status and the parsed body (null when not JSON).
std::pair<int, nlohmann::json> control(Client& client, http::verb method,
                                       const std::string& target, const std::string& body = {}) {
    auto reply = client.get(target, 5s, method, body);
    EXPECT_FALSE(reply.ec) << target << ": " << reply.ec.message();
    return {reply.res.result_int(),
            nlohmann::json::parse(reply.res.body(), nullptr, false, true)};
}

std::uint64_t add_fault(Client& client, const nlohmann::json& fault) {
    auto [status, body] = control(client, http::verb::post, "/control/faults", fault.dump());
    EXPECT_EQ(status, 201) << body.dump();
    return body.value("id", std::uint64_t{0});
}

template <class Predicate>
bool eventually(Predicate predicate, Clock::duration limit = 10s) {
    for (const auto deadline = Clock::now() + limit; Clock::now() < deadline;) {
        if (predicate()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return predicate();
}

std::uint64_t seq_of(const Reply& reply) {
    EXPECT_EQ(reply.res.result(), http::status::ok) << reply.res.body();
    return nlohmann::json::parse(reply.res.body())["seq"].get<std::uint64_t>();
}

Options with_control(std::size_t symbols = 10) {
    auto o = small(symbols);
    o.control = true;
    return o;
}

TEST(SimControl, AddListDeleteOverHttp) {
    Server server(with_control());
    ASSERT_NE(server.control_port(), 0);
    ASSERT_NE(server.control_port(), server.port());
    asio::io_context io;
    Client ctl(io, server.control_port());

    const auto a = add_fault(ctl, {{"kind", "status"}, {"status", 502}, {"symbols", {"STOCK_1"}}});
    const auto b = add_fault(ctl, {{"kind", "latency"}, {"min", "1ms"}, {"duration", "1m"}});
    EXPECT_EQ(b, a + 1);
    auto [status, list] = control(ctl, http::verb::get, "/control/faults");
    ASSERT_EQ(status, 200);
    ASSERT_EQ(list["faults"].size(), 2u) << list.dump();
    EXPECT_EQ(list["faults"][0]["id"], a);
    EXPECT_EQ(list["faults"][0]["kind"], "status");
    EXPECT_EQ(list["faults"][0]["spec"]["status"], 502);
    EXPECT_TRUE(list["faults"][0]["expires_in_ms"].is_null());
    EXPECT_GT(list["faults"][1]["expires_in_ms"].get<std::int64_t>(), 50'000);

    // The control listener serves no quotes; the quote listener also takes control requests.
    auto quote_on_control = ctl.get("/quotes/STOCK_1");
    EXPECT_EQ(quote_on_control.res.result(), http::status::not_found);
    Client quotes(io, server.port());
    EXPECT_EQ(quotes.get("/quotes/STOCK_1").res.result_int(), 502);
    EXPECT_EQ(control(quotes, http::verb::get, "/control/faults").second["faults"].size(), 2u);

    auto [deleted_status, deleted] =
        control(ctl, http::verb::delete_, "/control/faults/" + std::to_string(a));
    EXPECT_EQ(deleted_status, 200);
    EXPECT_EQ(deleted["deleted"], nlohmann::json::array({a}));
    EXPECT_EQ(control(ctl, http::verb::delete_, "/control/faults/" + std::to_string(a)).first,
              404);
    EXPECT_EQ(seq_of(quotes.get("/quotes/STOCK_1")), 1u);

    add_fault(ctl, {{"kind", "hang"}, {"symbols", {"STOCK_9"}}});
    auto [clear_status, cleared] = control(ctl, http::verb::delete_, "/control/faults");
    EXPECT_EQ(clear_status, 200);
    EXPECT_EQ(cleared["deleted"].size(), 2u);
    EXPECT_TRUE(control(ctl, http::verb::get, "/control/faults").second["faults"].empty());
    EXPECT_EQ(server.sim().faults_json(), R"({"faults":[]})");
}

TEST(SimControl, BadFaultsGet400WithTheReason) {
    Server server(with_control());
    asio::io_context io;
    Client ctl(io, server.control_port());
    const std::pair<std::string, std::string> cases[] = {
        {"not json", "not valid JSON"},
        {"[1]", "JSON object"},
        {R"({"status":503})", "missing 'kind'"},
        {R"({"kind":"explode"})", "unknown kind"},
        {R"({"kind":"status","stauts":500})", "unknown key 'stauts'"},
        {R"({"kind":"status","status":200})", "'status'"},
        {R"({"kind":"status","symbols":["A"],"request_ratio":0.5})", "at most one"},
        {R"({"kind":"status","request_ratio":1.5})", "'request_ratio'"},
        {R"({"kind":"status","symbols":[]})", "'symbols'"},
        {R"({"kind":"status","duration":"5 parsecs"})", "'duration'"},
        {R"({"kind":"status","duration":5})", "'duration'"},
        {R"({"kind":"latency"})", "'min'"},
        {R"({"kind":"latency","min":"5ms","max":"1ms"})", "'max'"},
        {R"({"kind":"latency","min":"1ms","distribution":"gauss"})", "'distribution'"},
        {R"({"kind":"too_many_requests","retry_after_form":"rfc850"})", "'retry_after_form'"},
        {R"({"kind":"refuse","symbols":["STOCK_1"]})", "whole listener"},
        {R"({"kind":"rate_limit"})", "'limit'"},
        {R"({"kind":"rate_limit","limit":5,"usage_header":"Bad: header"})", "'usage_header'"},
        {R"({"kind":"oversized","size":-1})", "'size'"},
        {R"({"kind":"status","count":0})", "'count'"},
    };
    for (const auto& [body, reason] : cases) {
        auto [status, reply] = control(ctl, http::verb::post, "/control/faults", body);
        EXPECT_EQ(status, 400) << body;
        EXPECT_EQ(reply.value("error", ""), "bad fault") << body;
        EXPECT_NE(reply.value("reason", "").find(reason), std::string::npos)
            << body << " -> " << reply.dump();
    }
    EXPECT_EQ(control(ctl, http::verb::delete_, "/control/faults/abc").first, 400);
    EXPECT_EQ(control(ctl, http::verb::delete_, "/control/faults/99").first, 404);
    EXPECT_EQ(control(ctl, http::verb::put, "/control/faults").first, 405);
    EXPECT_EQ(control(ctl, http::verb::get, "/control/nothing").first, 404);
    EXPECT_TRUE(control(ctl, http::verb::get, "/control/faults").second["faults"].empty());

    // The same checks guard the C++ API and the command line's faults.
    EXPECT_THROW(server.sim().add_fault(R"({"kind":"nope"})"), std::invalid_argument);
    asio::io_context other;
    auto options = small();
    options.faults = {R"({"kind":"status","status":"503"})"};
    EXPECT_THROW((void)Simulator(other, options), std::invalid_argument);
}

TEST(SimFaults, DurationExpiresAndCountLimits) {
    Server server(small());
    asio::io_context io;
    Client client(io, server.port());
    server.sim().add_fault(R"({"kind":"status","status":500,"duration":"300ms"})");
    EXPECT_EQ(client.get("/quotes/STOCK_1").res.result_int(), 500);
    ASSERT_TRUE(eventually([&] { return client.get("/quotes/STOCK_1").res.result_int() == 200; }));
    EXPECT_EQ(server.sim().faults_json(), R"({"faults":[]})");

    server.sim().add_fault(R"({"kind":"status","status":503,"count":2})");
    EXPECT_EQ(client.get("/quotes/STOCK_2").res.result_int(), 503);
    EXPECT_EQ(client.get("/quotes/STOCK_2").res.result_int(), 503);
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_2")), 1u);  // the 503s took no seq
    EXPECT_EQ(server.sim().faults_json(), R"({"faults":[]})");
}

TEST(SimFaults, StatusKeepsTheConnectionAndTakesNoSeq) {
    Server server(small());
    asio::io_context io;
    Client client(io, server.port());
    const auto id = server.sim().add_fault(
        R"({"kind":"status","status":503,"retry_after":"2s","symbols":["STOCK_3"]})");
    for (int i = 0; i < 3; ++i) {
        auto reply = client.get("/quotes/STOCK_3");
        ASSERT_FALSE(reply.ec);
        EXPECT_EQ(reply.res.result(), http::status::service_unavailable);
        EXPECT_EQ(reply.res["Retry-After"], "2");
        EXPECT_TRUE(reply.res.keep_alive());
        EXPECT_EQ(nlohmann::json::parse(reply.res.body())["fault"], "status");
        EXPECT_EQ(seq_of(client.get("/quotes/STOCK_4")), static_cast<std::uint64_t>(i + 1));
    }
    EXPECT_TRUE(server.sim().remove_fault(id));
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_3")), 1u);
    const auto stats = stats_once_settled(client, 4);
    EXPECT_EQ(stats["faults"]["status"], 3);
    EXPECT_EQ(stats["responses"], 4);
    EXPECT_EQ(stats["per_symbol"]["STOCK_3"], 1);
    EXPECT_EQ(stats["last_seq"]["STOCK_3"], 1);
    EXPECT_EQ(stats["connections"], 1);
}

// "Wed, 25 Nov 2026 20:16:36 GMT" -> system time; nullopt if not an IMF-fixdate.
std::optional<std::chrono::system_clock::time_point> parse_http_date(const std::string& text) {
    std::tm tm{};
    const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (end == nullptr || *end != '\0' || text.size() != 29) return std::nullopt;
    return std::chrono::system_clock::from_time_t(timegm(&tm));
}

TEST(SimFaults, TooManyRequestsWithRetryAfterInBothForms) {
    Server server(small());
    asio::io_context io;
    Client client(io, server.port());
    auto seconds = server.sim().add_fault(R"({"kind":"too_many_requests","retry_after":"7s"})");
    auto reply = client.get("/quotes/STOCK_1");
    EXPECT_EQ(reply.res.result(), http::status::too_many_requests);
    EXPECT_EQ(reply.res["Retry-After"], "7");
    server.sim().remove_fault(seconds);

    server.sim().add_fault(
        R"({"kind":"too_many_requests","retry_after":"30s","retry_after_form":"http_date"})");
    const auto before = std::chrono::system_clock::now();
    reply = client.get("/quotes/STOCK_1");
    EXPECT_EQ(reply.res.result(), http::status::too_many_requests);
    const auto date = parse_http_date(std::string(reply.res["Retry-After"]));
    ASSERT_TRUE(date) << reply.res["Retry-After"];
    EXPECT_GE(*date, before + 29s);  // whole seconds, rounded up: never early
    EXPECT_LE(*date, std::chrono::system_clock::now() + 32s);
    EXPECT_EQ(stats_over(client)["faults"]["too_many_requests"], 2);
}

TEST(SimFaults, BanAnswersEveryRequestForItsPeriod) {
    Server server(small());
    asio::io_context io;
    Client client(io, server.port());
    server.sim().add_fault(
        R"({"kind":"ban","status":418,"period":"600ms","symbols":["STOCK_1"],"count":1})");
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_2")), 1u);  // not selected, no ban yet
    auto trigger = client.get("/quotes/STOCK_1");
    EXPECT_EQ(trigger.res.result_int(), 418);
    EXPECT_EQ(trigger.res["Retry-After"], "1");  // 600 ms, rounded up
    auto others = client.get("/quotes/STOCK_2");  // once banned, everything is
    EXPECT_EQ(others.res.result_int(), 418);
    EXPECT_FALSE(others.res["Retry-After"].empty());
    EXPECT_NE(server.sim().faults_json().find("banned_for_ms"), std::string::npos);
    // The ban runs out; its one trigger is used, so the fault is gone too.
    ASSERT_TRUE(eventually([&] { return client.get("/quotes/STOCK_2").res.result_int() == 200; }));
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_1")), 1u);
    EXPECT_EQ(server.sim().faults_json(), R"({"faults":[]})");

    server.sim().add_fault(R"({"kind":"ban","status":403,"period":"1m"})");
    EXPECT_EQ(client.get("/quotes/STOCK_5").res.result_int(), 403);
    EXPECT_EQ(client.get("/stats").res.result_int(), 200);  // the ban is on quotes only
    EXPECT_GE(stats_over(client)["faults"]["ban"], 3);
}

TEST(SimFaults, HangHoldsOnlyTheSelectedSymbols) {
    Server server(small());
    server.sim().add_fault(R"({"kind":"hang","symbols":["STOCK_6"]})");
    asio::io_context io;
    Client hung(io, server.port());
    Client fine(io, server.port());
    Reply hung_reply, fine_reply;
    hung.async_get("/quotes/STOCK_6", 400ms, hung_reply);
    fine.async_get("/quotes/STOCK_7", 5s, fine_reply);
    io.run();
    EXPECT_EQ(hung_reply.ec, beast::error::timeout) << hung_reply.ec.message();
    ASSERT_FALSE(fine_reply.ec);
    EXPECT_EQ(seq_of(fine_reply), 1u);
    Client observer(io, server.port());
    const auto stats = stats_over(observer);
    EXPECT_EQ(stats["faults"]["hang"], 1);
    EXPECT_EQ(stats["hung_requests"], 0);  // that counter is --hung's
}

TEST(SimFaults, LatencyUniformAndLongTail) {
    Server server(small());
    asio::io_context io;
    Client client(io, server.port());
    const auto id = server.sim().add_fault(R"({"kind":"latency","min":"40ms","max":"60ms"})");
    for (int i = 0; i < 3; ++i) {
        auto reply = client.get("/quotes/STOCK_1");
        EXPECT_EQ(reply.res.result_int(), 200);
        EXPECT_GE(reply.elapsed, 40ms);
    }
    server.sim().remove_fault(id);
    server.sim().add_fault(
        R"({"kind":"latency","distribution":"pareto","min":"5ms","max":"200ms","alpha":1.2})");
    Clock::duration longest{};
    for (int i = 0; i < 20; ++i) {
        auto reply = client.get("/quotes/STOCK_2");
        ASSERT_EQ(reply.res.result_int(), 200);
        EXPECT_GE(reply.elapsed, 5ms);
        longest = std::max(longest, reply.elapsed);
    }
    EXPECT_LT(longest, 5s);  // capped at max (plus a loaded machine's slack)
    const auto stats = stats_once_settled(client, 23);
    EXPECT_EQ(stats["faults"]["latency"], 23);
    EXPECT_EQ(stats["responses"], 23);  // a delayed quote is still a good quote
}

TEST(SimFaults, BodyErrorAndMalformedAre200sThatAreNotQuotes) {
    Server server(small());
    asio::io_context io;
    Client client(io, server.port());
    auto id = server.sim().add_fault(R"({"kind":"body_error"})");
    auto reply = client.get("/quotes/STOCK_1");
    EXPECT_EQ(reply.res.result_int(), 200);
    EXPECT_EQ(nlohmann::json::parse(reply.res.body()),
              nlohmann::json::parse(R"({"code":"50011","msg":"busy"})"));
    server.sim().remove_fault(id);
    id = server.sim().add_fault(
        R"({"kind":"body_error","body":{"retCode":10006,"retMsg":"Too many visits"}})");
    EXPECT_EQ(nlohmann::json::parse(client.get("/quotes/STOCK_1").res.body())["retCode"], 10006);
    server.sim().remove_fault(id);

    id = server.sim().add_fault(R"({"kind":"malformed"})");
    reply = client.get("/quotes/STOCK_1");
    EXPECT_EQ(reply.res.result_int(), 200);
    EXPECT_TRUE(reply.res.keep_alive());
    EXPECT_TRUE(nlohmann::json::parse(reply.res.body(), nullptr, false).is_discarded())
        << reply.res.body();
    EXPECT_EQ(reply.res.body().rfind("{\"symbol\":\"STOCK_1\"", 0), 0u);
    server.sim().remove_fault(id);
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_1")), 1u);
    const auto stats = stats_once_settled(client, 1);
    EXPECT_EQ(stats["faults"]["body_error"], 2);
    EXPECT_EQ(stats["faults"]["malformed"], 1);
}

TEST(SimFaults, TruncatedPromisesMoreThanItSends) {
    Server server(small());
    server.sim().add_fault(R"({"kind":"truncated","symbols":["STOCK_2"]})");
    const Raw r = raw_exchange(server.port(), get_request("STOCK_2"), 5s);
    ASSERT_FALSE(r.timed_out);
    EXPECT_EQ(r.ec, asio::error::eof) << r.ec.message();
    ASSERT_TRUE(r.complete_head()) << r.bytes;
    EXPECT_EQ(r.head().rfind("HTTP/1.1 200 OK", 0), 0u);
    const auto promised = std::stoul(r.header("Content-Length"));
    EXPECT_GT(r.body().size(), 0u);
    EXPECT_LT(r.body().size(), promised);

    asio::io_context io;
    Client client(io, server.port());
    auto reply = client.get("/quotes/STOCK_2");
    EXPECT_EQ(reply.ec, http::error::partial_message) << reply.ec.message();
    client.connect();
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_3")), 1u);
    EXPECT_EQ(stats_over(client)["faults"]["truncated"], 2);
}

TEST(SimFaults, ResetSendsPartOfAResponseThenRst) {
    Server server(small());
    server.sim().add_fault(R"({"kind":"reset","after_bytes":20})");
    const Raw r = raw_exchange(server.port(), get_request("STOCK_2"), 5s);
    ASSERT_FALSE(r.timed_out);
    EXPECT_EQ(r.ec, asio::error::connection_reset) << r.ec.message();
    EXPECT_LE(r.bytes.size(), 20u);
    EXPECT_EQ(std::string("HTTP/1.1 200 OK").rfind(r.bytes.substr(0, 15), 0), 0u) << r.bytes;
    server.sim().clear_faults();
    asio::io_context io;
    Client client(io, server.port());
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_2")), 1u);
    EXPECT_EQ(stats_over(client)["faults"]["reset"], 1);
}

TEST(SimFaults, SymbolRatioPicksThePredictedSymbols) {
    Server server(small(200));
    server.sim().add_fault(R"({"kind":"status","status":500,"symbol_ratio":0.25})");
    asio::io_context io;
    Client client(io, server.port());
    int picked = 0;
    for (int i = 0; i < 200; ++i) {
        const std::string name = "STOCK_" + std::to_string(i);
        const bool expected = mdagg::sim::symbol_in_ratio(name, 0.25);
        picked += expected;
        EXPECT_EQ(client.get("/quotes/" + name).res.result_int(), expected ? 500 : 200) << name;
    }
    EXPECT_GT(picked, 25);
    EXPECT_LT(picked, 75);
}

TEST(SimFaults, RequestRatioIsRoughlyTheShareAndFollowsTheSeed) {
    auto run = [](std::uint64_t seed) {
        auto options = small();
        options.seed = seed;
        Server server(options);
        server.sim().add_fault(R"({"kind":"status","request_ratio":0.3})");
        asio::io_context io;
        Client client(io, server.port());
        std::string pattern;
        for (int i = 0; i < 300; ++i)
            pattern += client.get("/quotes/STOCK_1").res.result_int() == 503 ? 'x' : '.';
        return pattern;
    };
    const auto a = run(7);
    const auto hits = std::count(a.begin(), a.end(), 'x');
    EXPECT_GT(hits, 45);
    EXPECT_LT(hits, 135);
    EXPECT_EQ(a, run(7));  // same seed, same connection order: same faults
    EXPECT_NE(a, run(8));
}

TEST(SimFaults, OldestFaultWinsAndLatencyAddsUp) {
    Server server(small());
    asio::io_context io;
    Client client(io, server.port());
    server.sim().add_fault(R"({"kind":"latency","min":"30ms"})");
    server.sim().add_fault(R"({"kind":"status","status":502,"symbols":["STOCK_1"]})");
    server.sim().add_fault(R"({"kind":"status","status":504})");
    auto reply = client.get("/quotes/STOCK_1");
    EXPECT_EQ(reply.res.result_int(), 502);
    EXPECT_GE(reply.elapsed, 30ms);
    EXPECT_EQ(client.get("/quotes/STOCK_2").res.result_int(), 504);
}

// The accounting a daemon test relies on: the good responses' seqs per symbol are exactly
// 1..per_symbol, whatever faults were mixed in, and every fault is counted by kind.
TEST(SimFaults, SeqsGoToGoodResponsesOnly) {
    Server server(small(4));
    server.sim().add_fault(R"({"kind":"status","request_ratio":0.2})");
    server.sim().add_fault(R"({"kind":"body_error","request_ratio":0.2})");
    server.sim().add_fault(R"({"kind":"malformed","request_ratio":0.2})");
    server.sim().add_fault(R"({"kind":"too_many_requests","request_ratio":0.1})");
    asio::io_context io;
    Client client(io, server.port());
    std::map<std::string, std::vector<std::uint64_t>> seqs;
    std::uint64_t faulty = 0;
    for (int i = 0; i < 400; ++i) {
        const std::string symbol = "STOCK_" + std::to_string(i % 4);
        auto reply = client.get("/quotes/" + symbol);
        ASSERT_FALSE(reply.ec);
        const auto body = nlohmann::json::parse(reply.res.body(), nullptr, false);
        if (reply.res.result_int() == 200 && !body.is_discarded() && body.contains("seq"))
            seqs[symbol].push_back(body["seq"].get<std::uint64_t>());
        else
            ++faulty;
    }
    server.sim().clear_faults();
    std::uint64_t good = 0;
    for (auto& [symbol, list] : seqs) good += list.size();
    const auto stats = stats_once_settled(client, good);
    EXPECT_EQ(stats["responses"], good);
    std::uint64_t counted = 0;
    for (const auto& [kind, n] : stats["faults"].items()) counted += n.get<std::uint64_t>();
    EXPECT_EQ(counted, faulty);
    EXPECT_GT(faulty, 100u);
    for (const auto& [symbol, list] : seqs) {
        for (std::size_t i = 0; i < list.size(); ++i) ASSERT_EQ(list[i], i + 1) << symbol;
        EXPECT_EQ(stats["per_symbol"][symbol], list.size());
        EXPECT_EQ(stats["last_seq"][symbol], list.size());
    }
}

TEST(SimFaults, NoFaultKeepsThePlainPath) {
    Server server(small());
    server.sim().add_fault(R"({"kind":"status","symbols":["STOCK_9"],"duration":"50ms"})");
    asio::io_context io;
    Client client(io, server.port());
    ASSERT_TRUE(eventually([&] { return server.sim().faults_json() == R"({"faults":[]})"; }));
    for (std::uint64_t i = 1; i <= 5; ++i) {
        auto reply = client.get("/quotes/STOCK_9");
        EXPECT_EQ(seq_of(reply), i);
        EXPECT_TRUE(reply.res.keep_alive());
        EXPECT_TRUE(reply.res["Retry-After"].empty());
    }
    const auto stats = stats_once_settled(client, 5);
    EXPECT_EQ(stats["active_faults"], 0);
    EXPECT_EQ(stats["listening"], true);
    for (const auto& [kind, n] : stats["faults"].items()) EXPECT_EQ(n, 0) << kind;
}

TEST(SimFaults, EndlessHeadersNeverFinishTheHead) {
    Server server(small());
    server.sim().add_fault(R"({"kind":"endless_headers","interval":"20ms"})");
    const Raw r = raw_exchange(server.port(), get_request("STOCK_1"), 500ms);
    EXPECT_TRUE(r.timed_out) << r.ec.message();
    EXPECT_EQ(r.bytes.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r.bytes;
    EXPECT_FALSE(r.complete_head());
    EXPECT_GE(std::count(r.bytes.begin(), r.bytes.end(), '\n'), 4) << r.bytes;
    // The client went away; the server's next write fails and it lets go.
    asio::io_context io;
    Client observer(io, server.port());
    ASSERT_TRUE(eventually([&] { return stats_over(observer)["open_connections"] == 1; }));
    EXPECT_EQ(stats_over(observer)["faults"]["endless_headers"], 1);
}

TEST(SimFaults, TrickleIsAGoodQuoteSentSlowly) {
    Server server(small());
    server.sim().add_fault(R"({"kind":"trickle","interval":"2ms","chunk":4,"count":1})");
    asio::io_context io;
    Client client(io, server.port());
    auto reply = client.get("/quotes/STOCK_1", 20s);
    ASSERT_FALSE(reply.ec) << reply.ec.message();
    EXPECT_EQ(seq_of(reply), 1u);  // it took a seq: it is a quote
    // The body alone took this many steps (the head, more).
    EXPECT_GE(reply.elapsed, 2ms * (reply.res.body().size() / 4));
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_1")), 2u);
    const auto stats = stats_once_settled(client, 2);
    EXPECT_EQ(stats["responses"], 2);
    EXPECT_EQ(stats["faults"]["trickle"], 1);

    // A client that gives up mid-trickle costs the seq, and the stats say so.
    server.sim().add_fault(R"({"kind":"trickle","interval":"50ms","count":1})");
    EXPECT_EQ(client.get("/quotes/STOCK_1", 200ms).ec, beast::error::timeout);
    Client observer(io, server.port());
    ASSERT_TRUE(eventually([&] { return stats_over(observer)["failed_writes"] == 1; }));
    const auto after = stats_over(observer);
    EXPECT_EQ(after["last_seq"]["STOCK_1"], 3);
    EXPECT_EQ(after["per_symbol"]["STOCK_1"], 2);
    EXPECT_EQ(seq_of(observer.get("/quotes/STOCK_1")), 4u);
}

TEST(SimFaults, OversizedIsAValidBodyOfTheGivenSize) {
    Server server(small());
    server.sim().add_fault(R"({"kind":"oversized","size":200000})");
    asio::io_context io;
    Client client(io, server.port());
    auto reply = client.get("/quotes/STOCK_1");
    ASSERT_FALSE(reply.ec) << reply.ec.message();
    EXPECT_EQ(reply.res.body().size(), 200000u);
    const auto body = nlohmann::json::parse(reply.res.body());
    EXPECT_EQ(body["symbol"], "STOCK_1");
    EXPECT_EQ(body["seq"], 0);  // never a real seq
    EXPECT_TRUE(reply.res.keep_alive());
}

TEST(SimFaults, CloseAfterNRequestsDropsTheNext) {
    Server server(small());
    server.sim().add_fault(R"({"kind":"close_after","requests":2})");
    asio::io_context io;
    Client client(io, server.port());
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_1")), 1u);
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_1")), 2u);
    auto third = client.get("/quotes/STOCK_1");
    EXPECT_EQ(third.ec, http::error::end_of_stream) << third.ec.message();
    client.connect();
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_1")), 3u);  // nothing skipped
    EXPECT_EQ(stats_over(client)["faults"]["close_after"], 1);
}

bool can_connect(std::uint16_t port) {
    asio::io_context io;
    tcp::socket socket(io);
    beast::error_code ec;
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
    return !ec;
}

TEST(SimFaults, RefuseClosesTheListenerUntilItEnds) {
    Server server(with_control());
    const auto port = server.port();
    asio::io_context io;
    Client kept(io, port);
    Client ctl(io, server.control_port());
    const auto id = add_fault(ctl, {{"kind", "refuse"}});
    ASSERT_TRUE(eventually([&] { return !can_connect(port); }));
    EXPECT_EQ(stats_over(ctl)["listening"], false);
    EXPECT_EQ(seq_of(kept.get("/quotes/STOCK_1")), 1u);  // open connections carry on
    EXPECT_EQ(control(ctl, http::verb::delete_, "/control/faults/" + std::to_string(id)).first,
              200);
    ASSERT_TRUE(eventually([&] { return can_connect(port); }));
    EXPECT_EQ(server.port(), port);
    Client fresh(io, port);
    EXPECT_EQ(seq_of(fresh.get("/quotes/STOCK_1")), 2u);

    // With a duration and drop_connections: open connections close, and it ends by itself.
    add_fault(ctl, {{"kind", "refuse"}, {"duration", "300ms"}, {"drop_connections", true}});
    EXPECT_TRUE(fresh.read(5s).ec);
    ASSERT_TRUE(eventually([&] { return can_connect(port); }));
    const auto stats = stats_over(ctl);
    EXPECT_EQ(stats["faults"]["refuse"], 2);
    EXPECT_EQ(stats["listening"], true);
}

TEST(SimFaults, RestartDropsEverythingAndSeqsCarryOn) {
    Server server(with_control());
    const auto port = server.port();
    asio::io_context io;
    Client client(io, port);
    Client ctl(io, server.control_port());
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_1")), 1u);
    add_fault(ctl, {{"kind", "restart"}, {"period", "400ms"}});
    EXPECT_TRUE(client.read(5s).ec);  // dropped
    // The control plane stays up throughout.
    EXPECT_EQ(control(ctl, http::verb::get, "/control/faults").first, 200);
    ASSERT_TRUE(eventually([&] { return can_connect(port); }));
    client.connect();
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_1")), 2u);
    const auto stats = stats_over(ctl);
    EXPECT_EQ(stats["faults"]["restart"], 1);
    EXPECT_EQ(stats["active_faults"], 0);
}

TEST(SimFaults, AfterDelaysTheStartAndDurationCountsFromIt) {
    Server server(with_control());
    asio::io_context io;
    Client client(io, server.port());
    const auto start = Clock::now();
    server.sim().add_fault(R"({"kind":"status","status":500,"after":"300ms","duration":"300ms"})");
    const auto listed = nlohmann::json::parse(server.sim().faults_json())["faults"][0];
    EXPECT_GT(listed["starts_in_ms"].get<int>(), 0);
    EXPECT_GT(listed["expires_in_ms"].get<int>(), listed["starts_in_ms"].get<int>());
    if (Clock::now() - start < 250ms) {
        EXPECT_EQ(client.get("/quotes/STOCK_1").res.result_int(), 200);
    }
    ASSERT_TRUE(eventually([&] { return client.get("/quotes/STOCK_1").res.result_int() == 500; }));
    EXPECT_GE(Clock::now() - start, 300ms);
    ASSERT_TRUE(eventually([&] { return client.get("/quotes/STOCK_1").res.result_int() == 200; }));
    EXPECT_GE(Clock::now() - start, 600ms);

    // A listener fault starts late too; deleted before it starts, it never happens.
    const auto port = server.port();
    server.sim().add_fault(R"({"kind":"refuse","after":"200ms","duration":"200ms"})");
    ASSERT_TRUE(eventually([&] { return !can_connect(port); }));
    ASSERT_TRUE(eventually([&] { return can_connect(port); }));
    const auto never = server.sim().add_fault(R"({"kind":"restart","after":"200ms"})");
    EXPECT_TRUE(server.sim().remove_fault(never));
    std::this_thread::sleep_for(400ms);
    EXPECT_EQ(stats_over(client)["faults"]["restart"], 0);
    EXPECT_EQ(stats_over(client)["faults"]["refuse"], 1);
}

TEST(SimFaults, RateLimitAnswers429ThenBansAndReportsUsage) {
    Server server(small());
    server.sim().add_fault(R"({"kind":"rate_limit","limit":3,"window":"1m","ban_after":2,
        "ban_period":"1m","ban_status":418,"usage_header":"X-MBX-USED-WEIGHT-1M","weight":1})");
    asio::io_context io;
    Client client(io, server.port());
    for (int i = 1; i <= 3; ++i) {
        auto reply = client.get("/quotes/STOCK_1");
        EXPECT_EQ(seq_of(reply), static_cast<std::uint64_t>(i));
        EXPECT_EQ(reply.res["X-MBX-USED-WEIGHT-1M"], std::to_string(i));
    }
    auto limited = client.get("/quotes/STOCK_1");
    EXPECT_EQ(limited.res.result_int(), 429);
    EXPECT_EQ(limited.res["X-MBX-USED-WEIGHT-1M"], "4");
    const auto retry = std::stoi(std::string(limited.res["Retry-After"]));
    EXPECT_GT(retry, 0);
    EXPECT_LE(retry, 60);
    auto banned = client.get("/quotes/STOCK_2");  // the second 429 in a row turns into a ban
    EXPECT_EQ(banned.res.result_int(), 418);
    EXPECT_EQ(banned.res["Retry-After"], "60");
    EXPECT_EQ(client.get("/quotes/STOCK_3").res.result_int(), 418);
    EXPECT_EQ(client.get("/stats").res.result_int(), 200);
    const auto stats = stats_over(client);
    EXPECT_EQ(stats["faults"]["rate_limited"], 1);
    EXPECT_EQ(stats["faults"]["ban"], 2);
    EXPECT_EQ(stats["responses"], 3);
}

TEST(SimFaults, RateLimitWindowRollsOver) {
    Server server(small());
    server.sim().add_fault(R"({"kind":"rate_limit","limit":2,"window":"300ms"})");
    asio::io_context io;
    Client client(io, server.port());
    EXPECT_EQ(client.get("/quotes/STOCK_1").res.result_int(), 200);
    EXPECT_EQ(client.get("/quotes/STOCK_1").res.result_int(), 200);
    auto limited = client.get("/quotes/STOCK_1");
    EXPECT_EQ(limited.res.result_int(), 429);
    EXPECT_EQ(limited.res["Retry-After"], "1");  // < 300 ms left, rounded up
    EXPECT_TRUE(limited.res["X-MBX-USED-WEIGHT-1M"].empty());  // no usage header asked for
    ASSERT_TRUE(eventually([&] { return client.get("/quotes/STOCK_1").res.result_int() == 200; }));
}

TEST(SimFaults, FaultsFromOptionsAreActiveFromStart) {
    auto options = small();
    options.faults = {R"({"kind":"status","status":500,"symbols":["STOCK_2"]})",
                      R"({"kind":"body_error","symbols":["STOCK_3"]})"};
    Server server(options);
    asio::io_context io;
    Client client(io, server.port());
    EXPECT_EQ(client.get("/quotes/STOCK_2").res.result_int(), 500);
    EXPECT_EQ(nlohmann::json::parse(client.get("/quotes/STOCK_3").res.body())["code"], "50011");
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_4")), 1u);
    EXPECT_EQ(nlohmann::json::parse(server.sim().faults_json())["faults"].size(), 2u);
}

TEST(SimFaults, StopEndsEveryFaultAndRunReturns) {
    auto options = with_control();
    options.faults = {R"({"kind":"endless_headers","symbols":["STOCK_1"]})",
                      R"({"kind":"hang","symbols":["STOCK_2"]})",
                      R"({"kind":"trickle","interval":"1s","symbols":["STOCK_3"]})",
                      R"({"kind":"latency","min":"1m","symbols":["STOCK_4"]})",
                      R"({"kind":"status","duration":"1h","symbols":["STOCK_5"]})"};
    Server server(options);
    server.sim().add_fault(R"({"kind":"refuse","duration":"1h"})");
    std::vector<std::future<Raw>> pending;
    for (int i = 1; i <= 4; ++i)
        pending.push_back(std::async(std::launch::async, [&, i] {
            return raw_exchange(server.port(), get_request("STOCK_" + std::to_string(i)), 20s);
        }));
    std::this_thread::sleep_for(300ms);  // let the requests reach the server
    EXPECT_TRUE(server.stop_and_wait(5s));
    for (auto& p : pending) EXPECT_FALSE(p.get().timed_out);
}

// Under --threads N the fault table is shared by every io thread and the control API.
TEST(Sim, FaultsUnderManyThreadsKeepTheAccounting) {
    Server server(small(4), 4);
    server.sim().add_fault(R"({"kind":"status","request_ratio":0.3})");
    server.sim().add_fault(R"({"kind":"latency","min":"0ms","max":"1ms","request_ratio":0.5})");
    server.sim().add_fault(R"({"kind":"rate_limit","limit":1000000,"usage_header":"X-Used"})");
    std::atomic<bool> done{false};
    std::thread churn([&] {
        while (!done) {
            const auto id = server.sim().add_fault(R"({"kind":"body_error","request_ratio":0.5})");
            std::this_thread::sleep_for(1ms);
            server.sim().remove_fault(id);
            (void)server.sim().faults_json();
        }
    });
    constexpr int kClients = 4;
    std::vector<std::thread> clients;
    std::atomic<std::uint64_t> good{0}, faulty{0}, failures{0};
    for (int c = 0; c < kClients; ++c) {
        clients.emplace_back([&, c] {
            asio::io_context io;
            Client client(io, server.port());
            std::map<std::string, std::uint64_t> last_seq;
            for (int i = 0; i < 150; ++i) {
                const std::string symbol = "STOCK_" + std::to_string((i + c) % 4);
                auto reply = client.get("/quotes/" + symbol);
                if (reply.ec) {
                    ++failures;
                    continue;
                }
                const auto body = nlohmann::json::parse(reply.res.body(), nullptr, false);
                if (reply.res.result_int() != 200 || !body.contains("seq")) {
                    ++faulty;
                    continue;
                }
                const auto seq = body["seq"].get<std::uint64_t>();
                if (seq <= last_seq[symbol] || reply.res["X-Used"].empty()) ++failures;
                last_seq[symbol] = seq;
                ++good;
            }
        });
    }
    for (auto& t : clients) t.join();
    done = true;
    churn.join();
    EXPECT_EQ(failures, 0);
    EXPECT_GT(faulty, 0u);
    asio::io_context io;
    Client client(io, server.port());
    const auto stats = stats_once_settled(client, good.load());
    EXPECT_EQ(stats["responses"], good.load());
    EXPECT_EQ(stats["faults"]["status"].get<std::uint64_t>() +
                  stats["faults"]["body_error"].get<std::uint64_t>(),
              faulty.load());
    for (const auto& [name, count] : stats["per_symbol"].items())
        EXPECT_EQ(stats["last_seq"].value(name, std::uint64_t{0}), count.get<std::uint64_t>());
}

}  // namespace

TEST(SimFaults, InterimSendsA1xxBeforeAGoodQuote) {
    Server server(small());
    for (int status : {100, 103}) {
        SCOPED_TRACE(status);
        server.sim().add_fault(nlohmann::json{{"kind", "interim"}, {"status", status}, {"count", 1}}.dump());
        const auto r = raw_exchange(server.port(), "GET /quotes/STOCK_1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5s);
        const std::string interim = status == 100 ? "HTTP/1.1 100 Continue\r\n\r\n" : "HTTP/1.1 103 Early Hints\r\n";
        ASSERT_EQ(r.bytes.rfind(interim, 0), 0u) << r.bytes;
        const auto final_at = r.bytes.find("HTTP/1.1 200 OK\r\n");
        ASSERT_NE(final_at, std::string::npos) << r.bytes;
        EXPECT_NE(r.bytes.find("\"seq\":" + std::to_string(status == 100 ? 1 : 2)), std::string::npos) << r.bytes;
    }
    // An HTTP/1.0 client never gets a 1xx (RFC 9110 15.2), only the quote.
    server.sim().add_fault(R"({"kind":"interim","count":1})");
    const auto r10 = raw_exchange(server.port(), "GET /quotes/STOCK_1 HTTP/1.0\r\n\r\n", 5s);
    EXPECT_EQ(r10.bytes.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << r10.bytes;
    asio::io_context io;
    Client client(io, server.port());
    const auto stats = stats_once_settled(client, 3);
    EXPECT_EQ(stats["faults"]["interim"], 3);
    EXPECT_EQ(stats["responses"], 3);
    EXPECT_EQ(stats["last_seq"]["STOCK_1"], 3);
}

TEST(SimControl, BadInterimStatusIsRefused) {
    Server server(small());
    EXPECT_THROW(server.sim().add_fault(R"({"kind":"interim","status":101})"), std::invalid_argument);
    EXPECT_THROW(server.sim().add_fault(R"({"kind":"interim","status":102})"), std::invalid_argument);
    EXPECT_NO_THROW(server.sim().add_fault(R"({"kind":"interim","status":103})"));
}

TEST(Sim, MaxConcurrentRequestsIsTheHighWaterMarkOfQuoteRequestsInProgress) {
    auto options = small();
    options.latency_min = 600ms;
    options.latency_max = 600ms;
    Server server(options);
    std::vector<std::thread> clients;
    for (int i = 0; i < 3; ++i)
        clients.emplace_back([&, i] {
            raw_exchange(server.port(),
                         "GET /quotes/STOCK_" + std::to_string(i) + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5s);
        });
    for (auto& t : clients) t.join();
    asio::io_context io;
    Client client(io, server.port());
    for (int i = 0; i < 2; ++i) ASSERT_FALSE(client.get("/quotes/STOCK_1").ec);  // one at a time
    const auto stats = stats_once_settled(client, 5);
    EXPECT_EQ(stats["max_concurrent_requests"], 3);
}

// mdagg-sim: an HTTP/1.1 quote simulator (Beast, C++20 coroutines, keep-alive) for the demo,
// the tests and the benchmarks.
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mdagg::sim {

struct Options {
    std::string host = "127.0.0.1";
    std::uint16_t port = 8081;  // 0 = pick a free port (see Simulator::port())
    std::size_t symbols = 2000;  // names prefix + 0 .. symbols-1
    std::string prefix = "STOCK_";
    std::chrono::microseconds latency_min{0};  // added before each response, uniform in [min, max]
    std::chrono::microseconds latency_max{0};
    double hung_ratio = 0.0;  // share of symbols that never answer (chosen by a stable hash)
    std::vector<std::string> hung_symbols;  // and these, by name
    std::size_t max_requests_per_connection = 0;  // close after N responses; 0 = never
    std::uint64_t seed = 1;
};

// Parses "HOST:PORT"; throws std::invalid_argument.
void parse_listen(const std::string& text, Options& options);

class Simulator {
public:
    Simulator(boost::asio::io_context& io, Options options);
    ~Simulator();

    void start();  // binds and starts accepting; throws std::system_error
    void stop();   // stops accepting and closes every connection
    std::uint16_t port() const;

    bool is_hung(std::string_view symbol) const;
    // Responses to /quotes/... written completely to a socket.
    std::uint64_t responses_written() const;
    // {"responses": N, "requests": N, "connections": N, "hung_requests": N, "per_symbol": {...}}
    std::string stats_json() const;

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace mdagg::sim

#include "io_shards.hpp"

#include <mdagg/observe.hpp>

#include <nlohmann/json.hpp>

#include <system_error>

namespace mdagg::lifecycle {

namespace asio = boost::asio;

IoShards::IoShards(asio::io_context& main, unsigned threads, std::function<void()> on_failure)
    : on_failure_(std::move(on_failure)) {
    contexts_.push_back(&main);
    try {
        for (unsigned i = 1; i < threads; ++i) {
            // One thread runs it: Asio's scheduler takes its one-thread paths (its own posts go
            // to a thread-private queue). Other threads still post to it (interrupts, closes).
            auto& io = *extra_.emplace_back(std::make_unique<asio::io_context>(1));
            guards_.emplace_back(io.get_executor());
            threads_.emplace_back([this, &io] { run(io); });
            contexts_.push_back(&io);
        }
    } catch (const std::system_error& e) {
        if (guards_.size() > threads_.size()) guards_.pop_back();  // before its context
        if (extra_.size() > threads_.size()) extra_.pop_back();
        log::warn("cannot start every io thread; running with fewer",
                  {{"wanted", threads}, {"started", contexts_.size()}, {"error", e.what()}});
    }
}

IoShards::~IoShards() { stop(); }

void IoShards::run(asio::io_context& io) {
    try {
        io.run();
    } catch (const std::exception& e) {
        log::error("event loop failed", {{"error", e.what()}});
        if (on_failure_) on_failure_();
    }
}

void IoShards::stop() {
    for (auto& g : guards_) g.reset();
    for (auto& io : extra_) io->stop();
    for (auto& t : threads_)
        if (t.joinable()) t.join();
}

}  // namespace mdagg::lifecycle

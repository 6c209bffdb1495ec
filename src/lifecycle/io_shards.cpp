#include "io_shards.hpp"

#include <mdagg/observe.hpp>

#include <nlohmann/json.hpp>

#include <pthread.h>

#include <string>
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
            // Armed before the thread starts; from then on only the shard's thread touches it.
            beat(*beats_.emplace_back(std::make_unique<Beat>(io)));
            threads_.emplace_back([this, &io, i] { run(io, i); });
            contexts_.push_back(&io);
        }
    } catch (const std::system_error& e) {
        if (beats_.size() > threads_.size()) beats_.pop_back();  // before its context
        if (guards_.size() > threads_.size()) guards_.pop_back();
        if (extra_.size() > threads_.size()) extra_.pop_back();
        log::warn("cannot start every io thread; running with fewer",
                  {{"wanted", threads}, {"started", contexts_.size()}, {"error", e.what()}});
    }
}

IoShards::~IoShards() { stop(); }

// 4 wake-ups a second per shard: the shard's loop turns, or the watchdog says which one did not.
// The handler holds no state of its own: stop() leaves it queued and the io_context destroys it.
void IoShards::beat(Beat& b) {
    LoopWatch::stamp(b.stamp, LoopWatch::Clock::now());
    b.timer.expires_after(LoopWatch::beat_every);
    b.timer.async_wait([&b](const boost::system::error_code& ec) {
        if (!ec) beat(b);
    });
}

std::vector<const LoopWatch::Heartbeat*> IoShards::heartbeats() const {
    std::vector<const LoopWatch::Heartbeat*> out;
    for (auto& b : beats_) out.push_back(&b->stamp);
    return out;
}

void IoShards::run(asio::io_context& io, std::size_t index) {
    // Named for top -H, gdb and the watchdog's "thread" field (the main thread keeps the
    // process's name). 15 characters at most.
    std::string name = "mdagg-io-";
    name.append(std::to_string(index));
    pthread_setname_np(pthread_self(), name.c_str());
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
    // Stopped on purpose: a teardown that takes longer than the stall limit is no stall.
    for (auto& b : beats_) LoopWatch::stamp(b->stamp, LoopWatch::unwatched);
}

}  // namespace mdagg::lifecycle

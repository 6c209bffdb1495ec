// Private to lifecycle: the io threads. With runtime.threads: N > 1 the pollers are sharded
// over N io_contexts, each run by exactly one thread (the main thread runs the daemon's own
// io_context, which is shard 0), rather than one io_context run by N threads: a poller then
// needs no strand, each shard's timer wheel no lock and each scheduler no cross-thread
// wake-ups for its own work (docs/benchmarks.md, "threads"). What the shards share (host
// guards, connect gates, the registry, the aggregator's strand on the main io_context) was
// already safe across threads. Each other shard stamps a heartbeat from a timer on its own
// io_context for the event-loop watchdog (Operations), and its thread is named mdagg-io-<i>.
#pragma once

#include "loop_watch.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <memory>
#include <span>
#include <thread>
#include <vector>

namespace mdagg::lifecycle {

class IoShards {
public:
    // `main` is shard 0, run by the caller. The threads - 1 others are made and started here,
    // idle until pollers are dealt to them, and kept running (a shard whose pollers all ended
    // may get new ones from a reload) until stop(). A thread that cannot start leaves its
    // shard out: fewer shards, logged. `on_failure` runs on a shard's thread when its loop
    // threw; it must be callable from the first handler on.
    IoShards(boost::asio::io_context& main, unsigned threads, std::function<void()> on_failure);
    ~IoShards();  // stop()
    IoShards(const IoShards&) = delete;
    IoShards& operator=(const IoShards&) = delete;

    // Every shard, the main one first: what the pollers are dealt to.
    std::span<boost::asio::io_context* const> contexts() const noexcept { return contexts_; }

    // The heartbeats of shards 1.. (shard 0's is the control strand's), stamped every
    // LoopWatch::beat_every while the shard's loop turns, unwatched once stop() joined it.
    // They live as long as this object.
    std::vector<const LoopWatch::Heartbeat*> heartbeats() const;

    // After the main loop returned: ends the other shards' loops and joins their threads.
    void stop();

private:
    struct Beat {
        explicit Beat(boost::asio::io_context& io) : timer(io) {}
        boost::asio::steady_timer timer;
        LoopWatch::Heartbeat stamp{0};
    };
    static void beat(Beat& b);
    void run(boost::asio::io_context& io, std::size_t index);

    using Guard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
    std::vector<std::unique_ptr<boost::asio::io_context>> extra_;
    std::vector<boost::asio::io_context*> contexts_;
    std::vector<Guard> guards_;
    std::vector<std::unique_ptr<Beat>> beats_;  // after extra_: their timers go before the contexts
    std::vector<std::thread> threads_;
    std::function<void()> on_failure_;
};

}  // namespace mdagg::lifecycle

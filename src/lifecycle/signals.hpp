// Private to lifecycle: how SIGTERM, SIGINT and SIGHUP reach the control strand.
#pragma once

#include <boost/asio/experimental/channel.hpp>

#include <atomic>
#include <csignal>
#include <functional>
#include <pthread.h>
#include <thread>

namespace mdagg::lifecycle {

// SIGTERM, SIGINT and SIGHUP are blocked in every thread (run_daemon blocks them before any
// thread starts) and taken here with sigwait, so a drain's deadline and its watchdog start
// when the signal arrives, however long the event loop takes to turn.
class SignalThread {
public:
    static sigset_t handled() {
        sigset_t set;
        sigemptyset(&set);
        for (int signo : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, signo);
        return set;
    }

    void start(std::function<void(int)> on_signal) {
        thread_ = std::thread([this, on_signal = std::move(on_signal)] {
            const sigset_t set = handled();
            for (;;) {
                int signo = 0;
                if (::sigwait(&set, &signo) != 0) continue;
                if (stopping_) return;
                on_signal(signo);
            }
        });
    }

    // Wakes the thread with a SIGHUP of its own; one sent to the process from here on stays
    // pending until exit.
    void stop() {
        if (!thread_.joinable()) return;
        stopping_ = true;
        ::pthread_kill(thread_.native_handle(), SIGHUP);
        thread_.join();
    }
    ~SignalThread() { stop(); }

private:
    std::atomic<bool> stopping_{false};
    std::thread thread_;
};

// Signals the signal thread handed to the control strand, awaited like an asio::signal_set:
// async_wait completes with (error_code, signal number). Control strand only.
class PostedSignals {
public:
    template <class Executor>
    explicit PostedSignals(const Executor& executor) : channel_(executor, 16) {}
    template <class Token>
    auto async_wait(Token&& token) {
        return channel_.async_receive(std::forward<Token>(token));
    }
    void deliver(int signo) { (void)channel_.try_send(boost::system::error_code(), signo); }
    void cancel() { channel_.cancel(); }

private:
    boost::asio::experimental::channel<void(boost::system::error_code, int)> channel_;
};

}  // namespace mdagg::lifecycle

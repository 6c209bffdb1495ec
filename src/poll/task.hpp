#pragma once
// The pollers' coroutine machinery: a lazy C++20 task with symmetric transfer, and an awaiter
// that turns one Asio operation into a co_await that resumes the coroutine straight from the
// completion handler.
//
// Why not asio::awaitable: a poll is a few co_awaits on one socket, 40,000 times a second.
// use_awaitable runs each completion through an awaitable_thread (a frame stack, a pump, two
// type-erased executor copies) and allocates every nested frame and every operation; with
// 2,000 pollers interleaving, Asio's per-thread recycling cache misses and most of those go to
// malloc. Here a completion is one handler call and a resume, and frames and operations come
// from size-class free lists that the pollers' own churn keeps warm.
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/post.hpp>

#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <tuple>
#include <utility>

namespace mdagg::detail {

// Blocks recycled through per-thread free lists by 64-byte size class (up to 4 KiB; larger
// requests go straight to malloc). A block freed on another thread joins that thread's list.
// Each list keeps at most a few hundred blocks: the peak number of polls in flight, not the
// number of pollers, sets how many exist.
void* pooled_allocate(std::size_t n);
void pooled_deallocate(void* p) noexcept;

struct PoolStats {
    std::size_t allocations = 0;  // every pooled_allocate
    std::size_t fresh = 0;        // those the free lists could not serve
};
PoolStats pool_stats() noexcept;  // this thread's

template <class T>
struct PooledAllocator {
    using value_type = T;
    PooledAllocator() noexcept = default;
    template <class U>
    PooledAllocator(const PooledAllocator<U>&) noexcept {}
    T* allocate(std::size_t n) { return static_cast<T*>(pooled_allocate(n * sizeof(T))); }
    void deallocate(T* p, std::size_t) noexcept { pooled_deallocate(p); }
    template <class U>
    bool operator==(const PooledAllocator<U>&) const noexcept { return true; }
};

template <class T = void>
class Task;

namespace task_detail {

struct PromiseBase {
    static void* operator new(std::size_t n) { return pooled_allocate(n); }
    static void operator delete(void* p) noexcept { pooled_deallocate(p); }

    std::suspend_always initial_suspend() noexcept { return {}; }

    struct FinalAwaiter {
        bool await_ready() noexcept { return false; }
        template <class Promise>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) noexcept {
            PromiseBase& self = h.promise();
            if (self.continuation) return self.continuation;
            // A detached root: report, then free the frame; nobody else holds it.
            auto done = self.on_done;
            void* context = self.context;
            auto error = std::move(self.error);
            h.destroy();
            done(context, std::move(error));
            return std::noop_coroutine();
        }
        void await_resume() noexcept {}
    };
    FinalAwaiter final_suspend() noexcept { return {}; }
    void unhandled_exception() noexcept { error = std::current_exception(); }

    std::coroutine_handle<> continuation;  // the awaiting coroutine; none for a root
    std::exception_ptr error;
    void (*on_done)(void*, std::exception_ptr) = nullptr;  // a root's completion
    void* context = nullptr;
};

template <class T>
struct Promise : PromiseBase {
    Task<T> get_return_object() noexcept;
    template <class U>
    void return_value(U&& v) { value.emplace(std::forward<U>(v)); }
    T result() {
        if (error) std::rethrow_exception(error);
        return std::move(*value);
    }
    std::optional<T> value;
};

template <>
struct Promise<void> : PromiseBase {
    Task<void> get_return_object() noexcept;
    void return_void() noexcept {}
    void result() {
        if (error) std::rethrow_exception(error);
    }
};

}  // namespace task_detail

// Lazy: the body starts when the task is awaited (or spawned); awaiting it returns its value
// or rethrows what escaped it. The awaiting frame owns the task's frame.
template <class T>
class [[nodiscard]] Task {
public:
    using promise_type = task_detail::Promise<T>;
    using handle_type = std::coroutine_handle<promise_type>;

    explicit Task(handle_type h) noexcept : h_(h) {}
    Task(Task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
    Task& operator=(Task&&) = delete;
    ~Task() {
        if (h_) h_.destroy();
    }

    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> caller) noexcept {
        h_.promise().continuation = caller;
        return h_;  // symmetric transfer: a tail call where the compiler can make it one
    }
    T await_resume() { return h_.promise().result(); }

    // Starts the task as a root on `executor`: its first step runs from a posted handler.
    // `done(context, error)` runs on completion, after the frame is freed; `error` is what
    // escaped the body, if anything. A root still suspended when its io_context is destroyed
    // is never freed (a pending operation's handler holds only a handle): the daemon drains
    // its pollers first, or leaves with _Exit when some are stuck.
    template <class Executor>
    void spawn(const Executor& executor, void (*done)(void*, std::exception_ptr), void* context) && {
        auto h = std::exchange(h_, {});
        h.promise().on_done = done;
        h.promise().context = context;
        boost::asio::post(executor, [h] { h.resume(); });
    }

private:
    handle_type h_;
};

namespace task_detail {
template <class T>
Task<T> Promise<T>::get_return_object() noexcept {
    return Task<T>(std::coroutine_handle<Promise<T>>::from_promise(*this));
}
inline Task<void> Promise<void>::get_return_object() noexcept {
    return Task<void>(std::coroutine_handle<Promise<void>>::from_promise(*this));
}
}  // namespace task_detail

// co_await async(initiate) -> std::tuple<Results...>: `initiate(handler)` starts one Asio
// operation with `handler` as its completion handler. The operation is allocated from the pool;
// its completion resumes the awaiting coroutine directly, on the executor Asio associates with
// the I/O object (the poller's strand when there is one).
template <class Initiate, class... Results>
class AsyncAwaiter {
public:
    explicit AsyncAwaiter(Initiate initiate) : initiate_(std::move(initiate)) {}

    struct Handler {
        using allocator_type = PooledAllocator<void>;
        allocator_type get_allocator() const noexcept { return {}; }
        void operator()(Results... results) {
            self->results_.emplace(std::move(results)...);
            coroutine.resume();
        }
        AsyncAwaiter* self;
        std::coroutine_handle<> coroutine;
    };

    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) { initiate_(Handler{this, h}); }
    std::tuple<Results...> await_resume() { return std::move(*results_); }

private:
    Initiate initiate_;
    std::optional<std::tuple<Results...>> results_;
};

template <class... Results, class Initiate>
AsyncAwaiter<Initiate, Results...> async(Initiate initiate) {
    return AsyncAwaiter<Initiate, Results...>(std::move(initiate));
}

}  // namespace mdagg::detail

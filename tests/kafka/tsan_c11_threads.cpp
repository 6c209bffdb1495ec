// Built into the Kafka tests under ThreadSanitizer only (MDAGG_SANITIZE=thread).
// Debian's librdkafka 2.0.2 starts its threads with C11 thrd_create and locks with C11 mtx_*
// and cnd_*; GCC 12's libtsan intercepts none of them (glibc implements them on its internal
// pthread entry points), so librdkafka's threads run without TSan's thread state and crash at
// their first allocation, and its locking is invisible. These definitions, bound to
// librdkafka's @GLIBC_2.34 references by tsan_c11_threads.map, forward to the pthread calls
// TSan does intercept. glibc's mtx_t and cnd_t have the layout of pthread_mutex_t and
// pthread_cond_t, and a C11 thread's int result travels through pthread's void* as glibc's
// own thrd_join expects.
// librdkafka itself is not instrumented: its hand-offs by atomic reference counts look to TSan
// like races between our thread's copy of a message and its broker thread's free(). So the
// interceptors it calls (malloc, free, memcpy, its rwlocks) are not tracked; ours, and every
// access by our code, are. For the same reason a mutex or condition variable it creates on one
// thread and publishes to another looks unpublished: reports through mtx_init/cnd_init (only
// librdkafka calls them) are suppressed.
#include <pthread.h>
#include <threads.h>

#include <cerrno>
#include <cstdint>
#include <new>

namespace {

struct Start {
    thrd_start_t func;
    void* arg;
};

void* run_c11_thread(void* p) {
    const Start start = *static_cast<Start*>(p);
    delete static_cast<Start*>(p);
    return reinterpret_cast<void*>(static_cast<std::intptr_t>(start.func(start.arg)));
}

int result_of(int err) {
    switch (err) {
        case 0: return thrd_success;
        case EBUSY: return thrd_busy;
        case ETIMEDOUT: return thrd_timedout;
        case ENOMEM:
        case EAGAIN: return thrd_nomem;
        default: return thrd_error;
    }
}

pthread_mutex_t* native(mtx_t* m) { return reinterpret_cast<pthread_mutex_t*>(m); }
pthread_cond_t* native(cnd_t* c) { return reinterpret_cast<pthread_cond_t*>(c); }

}  // namespace

static_assert(sizeof(mtx_t) == sizeof(pthread_mutex_t) && sizeof(cnd_t) == sizeof(pthread_cond_t));

extern "C" {

int thrd_create(thrd_t* thread, thrd_start_t func, void* arg) {
    auto* start = new (std::nothrow) Start{func, arg};
    if (!start) return thrd_nomem;
    const int err = pthread_create(thread, nullptr, run_c11_thread, start);
    if (err) delete start;
    return result_of(err);
}

int thrd_join(thrd_t thread, int* result) {
    void* value = nullptr;
    const int err = pthread_join(thread, &value);
    if (!err && result) *result = static_cast<int>(reinterpret_cast<std::intptr_t>(value));
    return result_of(err);
}

int mtx_init(mtx_t* mutex, int type) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    if (type & mtx_recursive) pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    const int err = pthread_mutex_init(native(mutex), &attr);
    pthread_mutexattr_destroy(&attr);
    return result_of(err);
}
int mtx_lock(mtx_t* mutex) { return result_of(pthread_mutex_lock(native(mutex))); }
int mtx_unlock(mtx_t* mutex) { return result_of(pthread_mutex_unlock(native(mutex))); }
void mtx_destroy(mtx_t* mutex) { pthread_mutex_destroy(native(mutex)); }

int cnd_init(cnd_t* cond) { return result_of(pthread_cond_init(native(cond), nullptr)); }
int cnd_signal(cnd_t* cond) { return result_of(pthread_cond_signal(native(cond))); }
int cnd_broadcast(cnd_t* cond) { return result_of(pthread_cond_broadcast(native(cond))); }
int cnd_wait(cnd_t* cond, mtx_t* mutex) { return result_of(pthread_cond_wait(native(cond), native(mutex))); }
int cnd_timedwait(cnd_t* cond, mtx_t* mutex, const struct timespec* until) {
    return result_of(pthread_cond_timedwait(native(cond), native(mutex), until));
}
void cnd_destroy(cnd_t* cond) { pthread_cond_destroy(native(cond)); }

const char* __tsan_default_suppressions() {
    return "called_from_lib:librdkafka.so.1\n"
           "race:mtx_init\n"
           "race:cnd_init\n";
}

}  // extern "C"

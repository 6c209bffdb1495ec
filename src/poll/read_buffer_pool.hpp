#pragma once
// Connections' read buffers, whose storage only a poll in flight holds.
//
// A connection keeps its buffer object for good (bytes left over belong to the next response
// on it), but the storage behind it comes from per-thread free lists when a read starts
// (the buffer's first prepare) and goes back when the poll ends with nothing buffered, the
// normal case: an idle poller holds no read buffer. Kept per poller, the 4 KiB were 40% of
// an idle poller's memory; pooled, how many blocks exist follows the peak of polls in flight.
// A take or a give-back is a free-list pop or push on the running thread, no lock and no
// malloc once warm. Every transport's buffer (TcpTransport, TlsTransport) is a ReadBuffer.
#include <boost/beast/core/flat_buffer.hpp>

#include <cstddef>

namespace mdagg::detail {

// Blocks by power-of-two size from 4 KiB (the size of one read) to 64 KiB; a request is served
// by the smallest class that holds it, a larger one straight by malloc. A block given back on
// another thread than the one that took it joins that thread's lists (strands move polls
// between io threads). Each list keeps at most 1 MiB; beyond, blocks go back to malloc.
void* read_buffer_allocate(std::size_t n);
void read_buffer_deallocate(void* block, std::size_t n) noexcept;

struct ReadBufferPoolStats {
    std::size_t taken = 0;     // blocks handed out on this thread
    std::size_t fresh = 0;     // of those, from malloc: the free lists had none of the size
    std::size_t returned = 0;  // blocks given back on this thread
    std::size_t cached = 0;    // blocks on this thread's free lists now
};
ReadBufferPoolStats read_buffer_pool_stats() noexcept;  // this thread's

template <class T>
struct ReadBufferAllocator {
    using value_type = T;
    ReadBufferAllocator() noexcept = default;
    template <class U>
    ReadBufferAllocator(const ReadBufferAllocator<U>&) noexcept {}
    T* allocate(std::size_t n) { return static_cast<T*>(read_buffer_allocate(n * sizeof(T))); }
    void deallocate(T* p, std::size_t n) noexcept { read_buffer_deallocate(p, n * sizeof(T)); }
    template <class U>
    bool operator==(const ReadBufferAllocator<U>&) const noexcept { return true; }
};

using ReadBuffer = boost::beast::basic_flat_buffer<ReadBufferAllocator<char>>;

// The poll ended: a buffer with nothing in it gives its storage back. Bytes still buffered
// belong to the next response on the connection and keep theirs.
inline void release_if_empty(ReadBuffer& buffer) noexcept {
    if (buffer.size() == 0 && buffer.capacity() != 0) buffer.shrink_to_fit();
}

}  // namespace mdagg::detail

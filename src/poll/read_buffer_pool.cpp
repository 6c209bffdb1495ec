#include "read_buffer_pool.hpp"

#include <array>
#include <bit>
#include <cstdlib>
#include <new>

namespace mdagg::detail {
namespace {

constexpr std::size_t smallest_shift = 12;  // 4 KiB
constexpr std::size_t classes = 5;          // 4, 8, 16, 32, 64 KiB
constexpr std::size_t cached_bytes_per_class = 1 << 20;

constexpr std::size_t block_size(std::size_t cls) { return std::size_t{1} << (smallest_shift + cls); }

// The class holding n bytes; `classes` when none does.
std::size_t class_of(std::size_t n) {
    if (n <= block_size(0)) return 0;
    const std::size_t cls = std::bit_width(n - 1) - smallest_shift;
    return cls < classes ? cls : classes;
}

struct FreeBlock {
    FreeBlock* next;
};

// Trivially destructible, so a block given back while the thread exits (after the lists were
// emptied) still finds them: it then goes to malloc.
struct FreeLists {
    std::array<FreeBlock*, classes> heads;
    std::array<std::size_t, classes> counts;
    ReadBufferPoolStats stats;
    bool exit_registered;
    bool closed;
};
constinit thread_local FreeLists lists{};

// Registered when a thread first caches a block: empties its lists when the thread exits.
struct ThreadExit {
    ~ThreadExit() {
        for (auto& head : lists.heads)
            while (head) std::free(std::exchange(head, head->next));
        lists.counts = {};
        lists.stats.cached = 0;
        lists.closed = true;
    }
};

}  // namespace

void* read_buffer_allocate(std::size_t n) {
    auto& l = lists;
    ++l.stats.taken;
    const std::size_t cls = class_of(n);
    if (cls < classes && l.heads[cls]) {
        FreeBlock* b = l.heads[cls];
        l.heads[cls] = b->next;
        --l.counts[cls];
        --l.stats.cached;
        return b;
    }
    ++l.stats.fresh;
    void* block = std::malloc(cls < classes ? block_size(cls) : n);
    if (!block) throw std::bad_alloc();
    return block;
}

void read_buffer_deallocate(void* block, std::size_t n) noexcept {
    if (!block) return;
    auto& l = lists;
    ++l.stats.returned;
    const std::size_t cls = class_of(n);
    if (cls == classes || l.closed || l.counts[cls] >= cached_bytes_per_class / block_size(cls)) {
        std::free(block);
        return;
    }
    if (!l.exit_registered) {
        static thread_local ThreadExit on_exit;
        (void)on_exit;
        l.exit_registered = true;
    }
    auto* b = static_cast<FreeBlock*>(block);
    b->next = l.heads[cls];
    l.heads[cls] = b;
    ++l.counts[cls];
    ++l.stats.cached;
}

ReadBufferPoolStats read_buffer_pool_stats() noexcept { return lists.stats; }

}  // namespace mdagg::detail

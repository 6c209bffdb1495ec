#include "task.hpp"

#include <array>
#include <cstdlib>
#include <new>

namespace mdagg::detail {
namespace {

constexpr std::size_t granule = 64;
constexpr std::size_t classes = 64;  // up to 4 KiB
constexpr std::size_t max_cached = 512;  // per class and thread
// Each block starts with its class, so a block can be freed on any thread; 16 bytes keep the
// payload aligned for anything operator new would align.
constexpr std::size_t header = 16;
constexpr unsigned unpooled = 0xFFFF;

struct FreeBlock {
    FreeBlock* next;
};

struct ThreadPool {
    std::array<FreeBlock*, classes> heads{};
    std::array<std::size_t, classes> counts{};
    PoolStats stats;
    ~ThreadPool() {
        for (auto* head : heads)
            while (head) std::free(std::exchange(head, head->next));
    }
};

ThreadPool& pool() {
    thread_local ThreadPool p;
    return p;
}

}  // namespace

void* pooled_allocate(std::size_t n) {
    auto& p = pool();
    ++p.stats.allocations;
    const std::size_t cls = (n + header + granule - 1) / granule;
    unsigned char* block = nullptr;
    if (cls < classes && p.heads[cls]) {
        auto* b = p.heads[cls];
        p.heads[cls] = b->next;
        --p.counts[cls];
        block = reinterpret_cast<unsigned char*>(b);
    } else {
        ++p.stats.fresh;
        block = static_cast<unsigned char*>(std::malloc(cls < classes ? cls * granule : n + header));
        if (!block) throw std::bad_alloc();
    }
    *reinterpret_cast<unsigned*>(block) = cls < classes ? static_cast<unsigned>(cls) : unpooled;
    return block + header;
}

void pooled_deallocate(void* ptr) noexcept {
    if (!ptr) return;
    auto* block = static_cast<unsigned char*>(ptr) - header;
    const unsigned cls = *reinterpret_cast<unsigned*>(block);
    auto& p = pool();
    if (cls == unpooled || p.counts[cls] >= max_cached) {
        std::free(block);
        return;
    }
    auto* b = reinterpret_cast<FreeBlock*>(block);
    b->next = p.heads[cls];
    p.heads[cls] = b;
    ++p.counts[cls];
}

PoolStats pool_stats() noexcept { return pool().stats; }

}  // namespace mdagg::detail

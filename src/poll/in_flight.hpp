#pragma once
// What only a poll in flight needs, lent for the poll and given back at its end, so an idle
// poller holds none of it: the response parser (~220 bytes) and the body's storage.
#include "task.hpp"

#include <new>
#include <optional>
#include <string>
#include <utility>

namespace mdagg::detail {

// A string's storage for one poll's body. lend_body() gives an empty `body` the storage of a
// spare one this thread holds (no malloc once warm: capacity grown to the answers seen);
// return_body() keeps its storage as a spare (up to 512 a thread) and leaves `body` empty.
void lend_body(std::string& body) noexcept;
void return_body(std::string& body) noexcept;
std::size_t spare_bodies() noexcept;  // this thread's

// The value's storage comes from the pollers' free lists (task.hpp) when the poll emplaces it
// and goes back at reset(): an idle poller holds a pointer. A free-list pop or push each.
template <class T>
class InFlight {
public:
    InFlight() noexcept = default;
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;
    ~InFlight() { reset(); }

    template <class... Args>
    T& emplace(Args&&... args) {
        if (!slot_) slot_ = new (pooled_allocate(sizeof(std::optional<T>))) std::optional<T>();
        return slot_->emplace(std::forward<Args>(args)...);
    }

    // The storage goes back to the free lists.
    void reset() noexcept {
        if (!slot_) return;
        slot_->~optional();
        pooled_deallocate(slot_);
        slot_ = nullptr;
    }

    // Hands the values over whole (a hedge's won answer to the poll that delivers it).
    void swap(InFlight& other) noexcept { std::swap(slot_, other.slot_); }

    bool has_value() const noexcept { return slot_ && slot_->has_value(); }
    T* operator->() noexcept { return &**slot_; }
    const T* operator->() const noexcept { return &**slot_; }
    T& operator*() noexcept { return **slot_; }
    const T& operator*() const noexcept { return **slot_; }
    // For code that replaces the value in place (http::put_response, on an interim response).
    // Only after emplace().
    operator std::optional<T>&() noexcept { return *slot_; }

private:
    std::optional<T>* slot_ = nullptr;
};

}  // namespace mdagg::detail

#pragma once
// A hashed timer wheel on a millisecond grid (sans-io): the pollers' ticks and poll deadlines.
//
// Why not one asio::steady_timer each: 2,000 pollers at 50 ms arm, fire or cancel 80,000
// timers a second in Asio's binary heap (a cancelled deadline even runs its handler), about 5%
// of the daemon's CPU. Here adding and removing are O(1) list splices, and one Asio timer
// visits one slot per millisecond.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace mdagg::detail {

struct WheelEntry {
    WheelEntry* prev = nullptr;
    WheelEntry* next = nullptr;  // null while not in the wheel
    std::int64_t due_ms = 0;
    bool linked() const noexcept { return next != nullptr; }
};

class TimerWheel {
public:
    explicit TimerWheel(std::size_t slots = 1024) : heads_(slots) {
        for (auto& h : heads_) h.prev = h.next = &h;
    }
    TimerWheel(const TimerWheel&) = delete;
    TimerWheel& operator=(const TimerWheel&) = delete;

    // An entry already in the wheel moves. One due before the next advance fires at it.
    void add(WheelEntry& e, std::int64_t due_ms) noexcept {
        remove(e);
        e.due_ms = due_ms;
        if (cursor_ == unset) earliest_before_start_ = std::min(earliest_before_start_, due_ms);
        else if (due_ms < cursor_) due_ms = cursor_;
        WheelEntry& head = heads_[slot(due_ms)];
        e.prev = head.prev;
        e.next = &head;
        head.prev->next = &e;
        head.prev = &e;
        ++size_;
    }

    void remove(WheelEntry& e) noexcept {
        if (!e.linked()) return;
        e.prev->next = e.next;
        e.next->prev = e.prev;
        e.prev = e.next = nullptr;
        --size_;
    }

    // Takes out every entry due at or before now_ms and appends it to `due` in due order (in
    // order of adding within a millisecond), visiting each
    // slot passed since the last call once (all of them after a gap longer than the ring).
    // Entries further out than the ring stay in their slot until a later revolution.
    void advance(std::int64_t now_ms, std::vector<WheelEntry*>& due) {
        // The first advance starts at the earliest entry added before it, not at now: entries
        // already due would otherwise sit in slots it never visits until the next revolution.
        if (cursor_ == unset) cursor_ = std::min(now_ms, earliest_before_start_);
        if (now_ms < cursor_) return;
        const auto span = static_cast<std::uint64_t>(now_ms - cursor_) + 1;
        const std::int64_t visits = static_cast<std::int64_t>(std::min<std::uint64_t>(span, heads_.size()));
        for (std::int64_t i = visits - 1; i >= 0; --i) {  // oldest slot first
            WheelEntry& head = heads_[slot(now_ms - i)];
            for (WheelEntry* e = head.next; e != &head;) {
                WheelEntry* next = e->next;
                if (e->due_ms <= now_ms) {
                    remove(*e);
                    due.push_back(e);
                }
                e = next;
            }
        }
        cursor_ = now_ms + 1;
    }

    std::size_t size() const noexcept { return size_; }

    // The first millisecond the next advance need not pass: the earliest one, from where the
    // last advance stopped, whose slot holds an entry (a slot's entry may be due a revolution
    // later: a timer armed to it wakes early, finds nothing due and looks again). The largest
    // int64 when the wheel is empty. Lets a timer sleep over milliseconds with nothing due instead of waking
    // each one. O(slots skipped).
    std::int64_t next_busy_ms() const noexcept {
        if (size_ == 0) return std::numeric_limits<std::int64_t>::max();
        if (cursor_ == unset) return earliest_before_start_;
        const auto n = static_cast<std::int64_t>(heads_.size());
        for (std::int64_t ms = cursor_; ms < cursor_ + n; ++ms) {
            const WheelEntry& head = heads_[slot(ms)];
            if (head.next != &head) return ms;
        }
        return cursor_;  // unreachable: an entry is in some slot
    }

private:
    static constexpr std::int64_t unset = std::numeric_limits<std::int64_t>::min();
    std::size_t slot(std::int64_t ms) const noexcept {
        const auto n = static_cast<std::int64_t>(heads_.size());
        return static_cast<std::size_t>(((ms % n) + n) % n);
    }

    std::vector<WheelEntry> heads_;  // a sentinel per slot: circular doubly linked lists
    std::int64_t cursor_ = unset;    // the first millisecond not yet visited
    std::int64_t earliest_before_start_ = std::numeric_limits<std::int64_t>::max();
    std::size_t size_ = 0;
};

}  // namespace mdagg::detail

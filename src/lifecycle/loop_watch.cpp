#include "loop_watch.hpp"

namespace mdagg::lifecycle {

std::vector<LoopWatch::Change> LoopWatch::update(std::span<const Clock::time_point> beats, Clock::time_point now) {
    std::vector<Change> changes;
    for (std::size_t i = 0; i < stale_beat_.size() && i < beats.size(); ++i) {
        auto& stale = stale_beat_[i];
        if (beats[i] == unwatched) {
            stale.reset();
            continue;
        }
        const auto age = now - beats[i];
        if (age > stall_after_) {
            if (!stale) {
                stale = beats[i];
                changes.push_back({i, true, age});
            }
        } else if (stale) {
            changes.push_back({i, false, beats[i] - *stale});
            stale.reset();
        }
    }
    return changes;
}

}  // namespace mdagg::lifecycle

#include <mdagg/poll.hpp>

#include <algorithm>

namespace mdagg {

std::string_view to_string(BreakerState s) noexcept {
    switch (s) {
        case BreakerState::closed: return "closed";
        case BreakerState::open: return "open";
        case BreakerState::half_open: return "half_open";
    }
    return "unknown";
}

std::string_view to_string(PauseReason r) noexcept {
    switch (r) {
        case PauseReason::none: return "none";
        case PauseReason::rate_limited: return "rate_limited";
        case PauseReason::banned: return "banned";
    }
    return "unknown";
}

HostGuard::HostGuard(const HostConfig& config, Clock::time_point now)
    : config_(config), refilled_at_(now), cooldown_(config.breaker.cooldown) {
    status_.tokens = config.burst;  // start full: the first round is what the burst is for
}

void HostGuard::refill(Clock::time_point now) {
    if (now <= refilled_at_) return;
    const double seconds = std::chrono::duration<double>(now - refilled_at_).count();
    status_.tokens = std::min(config_.burst, status_.tokens + seconds * config_.rate * status_.rate_factor);
    refilled_at_ = now;
}

void HostGuard::note_priority(std::uint8_t priority, int pollers) {
    if (priority == 0 || priority > 9) return;
    std::lock_guard lock(mutex_);
    pollers_by_priority_[priority] += pollers;
    best_priority_ = 0;
    for (std::uint8_t p = 1; p <= 9 && best_priority_ == 0; ++p)
        if (pollers_by_priority_[p] > 0) best_priority_ = p;
}

std::int64_t HostGuard::pollers_at_priority(std::uint8_t priority) const {
    if (priority == 0 || priority > 9) return 0;
    std::lock_guard lock(mutex_);
    return pollers_by_priority_[priority];
}

Admission HostGuard::admit(Clock::time_point now, double cost, std::uint8_t priority) {
    std::lock_guard lock(mutex_);
    if (status_.pause != PauseReason::none) {
        if (now < status_.paused_until) return Admission::paused;
        status_.pause = PauseReason::none;
    }
    bool probe = false;
    if (status_.breaker != BreakerState::closed) {
        // One probe at a time; the others wait for its verdict.
        if (now < open_until_ || probe_outstanding_) return Admission::breaker_open;
        probe = true;
    }
    if (config_.rate > 0) {
        refill(now);
        double reserve = 0;
        if (best_priority_ > 0 && best_priority_ < 9 && priority > best_priority_)
            reserve = std::max(0.0, config_.burst - cost) * (priority - best_priority_) / (9 - best_priority_);
        if (status_.tokens < cost + reserve) return Admission::throttled;
        status_.tokens -= cost;
    }
    if (!probe) return Admission::go;
    status_.breaker = BreakerState::half_open;
    probe_outstanding_ = true;
    return Admission::probe;
}

std::optional<BreakerState> HostGuard::report(Clock::time_point now, HostVerdict verdict, bool probe) {
    std::lock_guard lock(mutex_);
    if (probe) probe_outstanding_ = false;
    switch (verdict) {
        case HostVerdict::neutral:
            return std::nullopt;  // a cancelled probe leaves it half-open: the next tick probes
        case HostVerdict::healthy:
            status_.consecutive_failures = 0;
            // A poll admitted before the breaker opened proves little; only the probe closes it.
            if (probe) {
                status_.breaker = BreakerState::closed;
                cooldown_ = config_.breaker.cooldown;
                return BreakerState::closed;
            }
            return std::nullopt;
        case HostVerdict::failing:
            if (config_.breaker.failures == 0) return std::nullopt;
            if (probe) {
                // Still failing: stay away twice as long, up to the cap.
                cooldown_ = std::min<Clock::duration>(cooldown_ * 2, config_.breaker.max_cooldown);
                status_.breaker = BreakerState::open;
                open_until_ = now + cooldown_;
                ++status_.breaker_opens;
                return BreakerState::open;
            }
            if (status_.breaker != BreakerState::closed) return std::nullopt;  // polls from before it opened
            if (++status_.consecutive_failures >= config_.breaker.failures) {
                status_.breaker = BreakerState::open;
                open_until_ = now + cooldown_;
                ++status_.breaker_opens;
                return BreakerState::open;
            }
            return std::nullopt;
    }
    return std::nullopt;
}

bool HostGuard::pause(Clock::time_point now, PauseReason reason, std::optional<Clock::duration> signalled) {
    std::lock_guard lock(mutex_);
    Clock::duration length = signalled ? *signalled
                              : reason == PauseReason::banned ? Clock::duration(config_.ban_pause)
                                                              : Clock::duration(config_.rate_limit_pause);
    length = std::clamp<Clock::duration>(length, Clock::duration::zero(), config_.max_pause);
    const auto until = now + length;
    // 2,000 pollers may each see the same 429: count a pause once, never shorten one.
    if (status_.pause != PauseReason::none && now < status_.paused_until) {
        if (until > status_.paused_until) status_.paused_until = until;
        if (reason == PauseReason::banned) status_.pause = reason;
        status_.tokens = 0;  // and the bucket refills from the new end
        refilled_at_ = std::max(refilled_at_, status_.paused_until);
        return false;
    }
    status_.pause = reason;
    status_.paused_until = until;
    ++(reason == PauseReason::banned ? status_.pauses_banned : status_.pauses_rate_limited);
    // Whatever the bucket held was evidently too much: it refills from the pause's end, so
    // the host is not hit with a full burst the moment the pause lifts.
    status_.tokens = 0;
    refilled_at_ = std::max(refilled_at_, status_.paused_until);
    return true;
}

void HostGuard::on_usage(double used) {
    if (!config_.usage || config_.rate <= 0) return;
    std::lock_guard lock(mutex_);
    const auto& u = *config_.usage;
    // Linear slow-down from full speed at slow_at * limit to 5% at the limit: the venue's
    // window resets on its own schedule, which we do not know, so never stop outright.
    const double start = u.slow_at * u.limit;
    const double factor = used <= start ? 1.0 : (u.limit - used) / (u.limit - start);
    status_.rate_factor = std::clamp(factor, 0.05, 1.0);
}

HostGuard::Status HostGuard::status(Clock::time_point now) const {
    std::lock_guard lock(mutex_);
    Status s = status_;
    for (const auto n : pollers_by_priority_) s.prioritized_pollers += n;
    if (s.pause != PauseReason::none && now >= s.paused_until) s.pause = PauseReason::none;
    if (config_.rate > 0 && now > refilled_at_ && s.pause == PauseReason::none) {
        const double seconds = std::chrono::duration<double>(now - refilled_at_).count();
        s.tokens = std::min(config_.burst, s.tokens + seconds * config_.rate * s.rate_factor);
    }
    return s;
}

double scheduled_demand(const Config& config, std::size_t host) {
    double demand = 0;
    for (const SourceConfig& s : config.sources) {
        if (s.host != host) continue;
        const double interval = std::chrono::duration<double>(s.interval).count();
        demand += static_cast<double>(s.symbols.size()) * s.cost / interval;
    }
    return demand;
}

}  // namespace mdagg

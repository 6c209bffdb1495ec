#include "aggregation.hpp"

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <utility>

namespace mdagg::lifecycle {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

std::int64_t wall_clock_ns() {
    return std::chrono::duration_cast<nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

Aggregation::Aggregation(asio::io_context& io, asio::any_io_executor control, const Config& config,
                         Universe& universe, RecordSink& records, Output& output)
    : config_(config),
      universe_(universe),
      output_(output),
      control_(std::move(control)),
      strand_(asio::make_strand(io)),
      aggregator_(universe, config.output.bar_interval.count(), records, config.output.quotes),
      direct_(config.runtime.threads == 1),
      flush_timer_(strand_),
      bar_timer_(strand_),
      stale_timer_(strand_) {
    for (SourceId s = 0; s < config.sources.size(); ++s)
        aggregator_.set_stale_after(s, config.sources[s].stale_after.count());
}

Aggregation::~Aggregation() {
    std::lock_guard lock(queue_mutex_);
    if (take_posted_) (void)post_slot_.release();  // a 128-byte leak, only if a post never ran
}

QuoteHandler Aggregation::quote_handler() {
    return [this](const Quote& q) {
        // The strand is the only owner of the aggregator's state; this post is the whole
        // hand-off, so a poller never waits for aggregation or the disk. One thread runs `io`
        // (IoShards' shard 0), and every handler on it, the strand's included, runs one at a
        // time, so a poller on that thread may as well aggregate: no copy, no queue, no strand
        // lock. Pollers on the other shards' threads queue (take_queued).
        if (direct_ || strand_.get_inner_executor().running_in_this_thread()) {
            aggregator_.on_quote(q);
            return;
        }
        bool post = false;
        {
            std::lock_guard lock(queue_mutex_);
            queued_.push_back(q);
            post = !std::exchange(take_posted_, true);
        }
        if (post)
            asio::post(strand_.get_inner_executor(),
                       asio::bind_allocator(SlotAllocator<void>(post_slot_.get()), [this] { take_queued(true); }));
    };
}

void Aggregation::take_queued(bool ends_post) {
    {
        std::lock_guard lock(queue_mutex_);
        if (ends_post) take_posted_ = false;
        taking_.swap(queued_);
    }
    for (const Quote& q : taking_) aggregator_.on_quote(q);
    taking_.clear();
}

void Aggregation::start() {
    start_flush_timer();
    start_bar_timer();
    start_stale_timer();
}

asio::awaitable<void> Aggregation::to_strand() {
    co_await asio::post(asio::bind_executor(strand_, asio::use_awaitable));
    take_queued();
}

asio::awaitable<void> Aggregation::to_control() {
    co_await asio::post(asio::bind_executor(control_, asio::use_awaitable));
}

// Final (partial) bars; everything goes to the sinks. The strand runs this after every quote
// the pollers posted before they returned.
asio::awaitable<StageOutcome> Aggregation::drain(StageDeadline) {
    co_await to_strand();
    // A timer that already expired is not stopped by cancel(): its handler, queued behind
    // this one, checks the flag.
    stopped_ = true;
    flush_timer_.cancel();
    bar_timer_.cancel();
    stale_timer_.cancel();
    aggregator_.close_all_bars();
    quotes_accepted_ = aggregator_.quotes_accepted();
    bars_emitted_ = aggregator_.bars_emitted();
    output_.flush();
    co_await to_control();
    co_return StageOutcome{};
}

void Aggregation::report(nlohmann::json& fields, bool) const {
    fields["quotes_accepted"] = quotes_accepted_;
    fields["bars_emitted"] = bars_emitted_;
}

asio::awaitable<void> Aggregation::update_universe(const ReloadPlan& plan) {
    co_await to_strand();
    // Behind every quote of the released symbols' pollers, which are gone.
    for (SymbolId id : plan.symbols.release) {
        aggregator_.release_symbol(id);
        universe_.release_symbol(id);
    }
    for (auto& s : plan.new_sources) universe_.sources.push_back(s);
    for (auto& s : plan.new_symbols) universe_.add_symbol(s);
    aggregator_.grow();
    co_await to_control();
}

asio::awaitable<void> Aggregation::set_sources(const std::vector<SourceConfig>& sources) {
    co_await to_strand();
    for (SourceId id = 0; id < universe_.sources.size(); ++id) {
        const auto it = std::find_if(sources.begin(), sources.end(),
                                     [&](const SourceConfig& c) { return c.name == universe_.sources[id]; });
        aggregator_.set_stale_after(id, it != sources.end() ? it->stale_after.count() : 1);
    }
    set_venue_symbols(universe_, sources);
    stale_sweep_period_ = sweep_period(sources);
    co_await to_control();
}

void Aggregation::start_flush_timer() {
    flush_timer_.expires_after(config_.output.flush_every);
    flush_timer_.async_wait([this](boost::system::error_code ec) {
        if (ec || stopped_) return;
        take_queued();
        output_.flush();
        start_flush_timer();
    });
}

// Bars close on wall-clock boundaries; a little slack lets quotes received just before a
// boundary reach the strand first.
void Aggregation::start_bar_timer() {
    const auto interval = config_.output.bar_interval.count();
    const auto now = wall_clock_ns();
    const auto boundary = (now / interval + 1) * interval;
    bar_timer_.expires_after(nanoseconds(boundary - now) + milliseconds(5));
    bar_timer_.async_wait([this](boost::system::error_code ec) {
        if (ec || stopped_) return;
        take_queued();
        aggregator_.close_bars(wall_clock_ns() - milliseconds(5).count());
        start_bar_timer();
    });
}

Duration Aggregation::sweep_period(const std::vector<SourceConfig>& sources) {
    Duration shortest = Duration::max();
    for (auto& s : sources) shortest = std::min(shortest, s.stale_after);
    return std::clamp<Duration>(shortest / 10, milliseconds(10), std::chrono::seconds(1));
}

// Sweeps for stale quotes often enough that one is marked within a tenth of its limit.
void Aggregation::start_stale_timer() {
    if (stale_sweep_period_ == Duration{}) stale_sweep_period_ = sweep_period(config_.sources);
    stale_timer_.expires_after(stale_sweep_period_);
    stale_timer_.async_wait([this](boost::system::error_code ec) {
        if (ec || stopped_) return;
        take_queued();
        aggregator_.expire_stale(wall_clock_ns());
        start_stale_timer();
    });
}

}  // namespace mdagg::lifecycle#include <mdagg/common.hpp>


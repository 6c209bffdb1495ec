// Private to lifecycle: the Aggregation stage. It owns the aggregator, its three timers
// (flush, bar, stale sweep), the rule by which quotes reach it, and every change to the
// Universe (made on its strand, where the aggregator and the sink read it).
#pragma once

#include "output.hpp"
#include "reload_plan.hpp"
#include "stage.hpp"

#include <mdagg/aggregate.hpp>
#include <mdagg/config.hpp>
#include <mdagg/poll.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

namespace mdagg::lifecycle {

class Aggregation final : public Stage {
public:
    // `universe` outlives the stage and changes only through it; `control` is the
    // supervisor's strand, to which the reload and drain steps return. One thread runs `io`.
    Aggregation(boost::asio::io_context& io, boost::asio::any_io_executor control, const Config& config,
                Universe& universe, RecordSink& records, Output& output);

    ~Aggregation() override;

    // The hand-off from the pollers, called on a poller's executor.
    QuoteHandler quote_handler();
    const Aggregator& aggregator() const noexcept { return aggregator_; }
    // Control strand, between the reload steps below (which are the only writers).
    const Universe& universe() const noexcept { return universe_; }

    void start() override;
    // Quotes come from the Ingest stage only, which is drained first.
    void stop_intake() override {}
    boost::asio::awaitable<StageOutcome> drain(StageDeadline deadline) override;
    boost::asio::awaitable<void> close(Clock::time_point) override { co_return; }
    void report(nlohmann::json& fields, bool incomplete) const override;

    // Reload, from the control strand. The released symbols' last bars are written under
    // their own names before their ids change hands; then the new sources and symbols.
    boost::asio::awaitable<void> update_universe(const ReloadPlan& plan);
    // Staleness limits of new and changed sources; a source the reload removed goes stale at
    // the next sweep (its retired pollers may still deliver a last quote).
    boost::asio::awaitable<void> set_sources(const std::vector<SourceConfig>& sources);

private:
    void start_flush_timer();
    void start_bar_timer();
    void start_stale_timer();
    static Duration sweep_period(const std::vector<SourceConfig>& sources);
    // Strand: aggregates the quotes the other io threads queued. Every step that reads the
    // aggregator's state takes them first, so a quote queued before its poller returned is in
    // by the time the drain or a reload sees that poller gone.
    // `ends_post`: called by the post the first quote queued while none was pending made, on
    // the main thread and not through the strand (one thread runs `io`: its handlers, the
    // strand's included, run one at a time; the strand would add its lock, a second queue and
    // a shared count per post); the next quote queued posts again.
    void take_queued(bool ends_post = false);
    // The one post of take_queued(true) pending at a time keeps its operation here: from Asio's
    // per-thread cache it would be a malloc per post (the posting thread empties the cache,
    // the main thread, which frees it, fills its own).
    template <class T>
    struct SlotAllocator {
        using value_type = T;
        std::byte* slot;
        template <class U>
        SlotAllocator(const SlotAllocator<U>& other) noexcept : slot(other.slot) {}
        explicit SlotAllocator(std::byte* s) noexcept : slot(s) {}
        T* allocate(std::size_t n) {
            if (n * sizeof(T) <= post_slot_size && alignof(T) <= alignof(std::max_align_t))
                return reinterpret_cast<T*>(slot);
            return std::allocator<T>().allocate(n);
        }
        void deallocate(T* p, std::size_t n) noexcept {
            if (reinterpret_cast<std::byte*>(p) != slot) std::allocator<T>().deallocate(p, n);
        }
        template <class U>
        bool operator==(const SlotAllocator<U>& other) const noexcept { return slot == other.slot; }
    };
    static constexpr std::size_t post_slot_size = 128;
    boost::asio::awaitable<void> to_strand();
    boost::asio::awaitable<void> to_control();

    const Config& config_;
    Universe& universe_;
    Output& output_;
    boost::asio::any_io_executor control_;
    boost::asio::strand<boost::asio::io_context::executor_type> strand_;
    Aggregator aggregator_;
    const bool direct_;  // one io thread: every poller's handler aggregates itself
    // Quotes from pollers on the other io threads, taken on the main thread; a post only when
    // none is pending: one hand-off per burst, not an operation (an allocation the main
    // thread frees, a strand and a scheduler lock) per quote.
    std::mutex queue_mutex_;
    std::vector<Quote> queued_;  // under queue_mutex_
    bool take_posted_ = false;   // under queue_mutex_: a take_queued(true) is pending
    // On the heap: a post still pending when the stage goes is destroyed with `io`, later, and
    // reads its operation there (the destructor then leaves the slot to it).
    std::unique_ptr<std::byte[]> post_slot_{new std::byte[post_slot_size]};
    std::vector<Quote> taking_;  // strand only: the batch being aggregated (capacity kept)
    boost::asio::steady_timer flush_timer_;
    boost::asio::steady_timer bar_timer_;
    boost::asio::steady_timer stale_timer_;
    bool stopped_ = false;            // strand only: drained
    Duration stale_sweep_period_{};   // strand only
    std::uint64_t quotes_accepted_ = 0, bars_emitted_ = 0;  // as of the drain
};

}  // namespace mdagg::lifecycle

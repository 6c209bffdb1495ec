// Private to lifecycle: the Ingest stage, the pollers (PollerGroup). It drains in three steps:
// no new polls, then polls in flight finish until the cancel point and are cancelled after
// it, then (once every poller returned) the connections close.
#pragma once

#include "reload_plan.hpp"
#include "stage.hpp"

#include <mdagg/poll.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <span>
#include <unordered_set>

namespace mdagg::lifecycle {

class Ingest final : public Stage {
public:
    // `control` is the supervisor's strand: the stage's waits and reload steps run there.
    // `shards`: the io_contexts the pollers are dealt to (IoShards), each run by one thread.
    Ingest(std::span<boost::asio::io_context* const> shards, boost::asio::any_io_executor control,
           const Config& config, const Universe& universe, QuoteHandler on_quote);

    PollerGroup& pollers() noexcept { return pollers_; }
    const PollerGroup& pollers() const noexcept { return pollers_; }

    void start() override;
    void stop_intake() override;
    // Polls in flight may finish until deadline.cancel_at; then the rest are cancelled and
    // waited for until deadline.deadline. in_time: every poller returned.
    boost::asio::awaitable<StageOutcome> drain(StageDeadline deadline) override;
    // Closes the sockets, once every poller returned; pollers stuck past the budget keep
    // theirs until teardown.
    boost::asio::awaitable<void> close(Clock::time_point deadline) override;
    void emergency() override;
    void report(nlohmann::json& fields, bool incomplete) const override;

    // Reload, after the universe took the plan's new names (`universe`, read on the control
    // strand). Applies the plan's poller steps to the running pollers.
    struct Changes {
        std::size_t added = 0, removed = 0, restarted = 0;
    };
    Changes apply(const ReloadPlan& plan, const std::vector<SourceConfig>& sources, const std::vector<HostConfig>& hosts,
                  const Universe& universe, std::unordered_set<SymbolId>& retiring);

private:
    boost::asio::awaitable<bool> wait_for_pollers(Clock::time_point limit, bool until_emergency);
    void wake();

    boost::asio::any_io_executor control_;
    PollerGroup pollers_;
    boost::asio::steady_timer wake_;  // control strand: the drain's waits
    bool emergency_ = false;          // control strand
    bool pollers_done_ = false;       // control strand: every poller returned in the drain
    bool sockets_closed_ = false;     // control strand
    std::size_t in_flight_at_signal_ = 0;
    std::uint64_t cancelled_before_ = 0;  // polls cancelled before the drain cancelled any
};

}  // namespace mdagg::lifecycle

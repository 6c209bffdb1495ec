// A batch request: one poller asks for many symbols (a source's `batch:` block) and routes
// each entry of the answer to its member. Private to src/poll.
#pragma once

#include <mdagg/config.hpp>
#include <mdagg/mapping.hpp>
#include <mdagg/poll.hpp>
#include <mdagg/quote.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mdagg::detail {

// A member's own view for the task table and the symbol metrics: written on the poller's
// executor with relaxed stores, read through the registry's snapshot.
struct BatchMember {
    SymbolId symbol = 0;
    std::string name;  // the configured name: records, metrics, admin selectors
    std::atomic<std::uint64_t> completed{0}, failed{0}, missing{0};
    std::atomic<std::int64_t> last_success_ns{0}, last_error_ns{0};
    std::atomic<std::uint8_t> last_error{static_cast<std::uint8_t>(PollError::count_)};
    std::atomic<PollerState> state{PollerState::pending};
    // An operator's control of this member alone; its entries are dropped unless active.
    std::atomic<PollerControl> control{PollerControl::active};
};

// The symbol as the venue spells it in requests and answers (`venue:` or symbol_map), which
// routes each answer entry back to its canonical name.
inline const std::string& venue_name(const SourceConfig& source, const std::string& canonical_name) {
    return source.venue_symbol(canonical_name);
}

struct BatchRequest {
    BatchRequest(const SourceConfig& source, std::size_t batch_index,
                 const std::vector<std::pair<std::string, SymbolId>>& symbols);

    std::size_t index;  // of this request among the source's
    BatchMapper mapper;
    BatchMembers members;                     // the venue's spellings, for the URL and the answer
    std::unique_ptr<BatchMember[]> member;    // by member index, as in `members`
    std::vector<BatchEntry> results;          // reused by every answer
    // The request target on `url` (the source's or a mirror's): {symbols} spelled with the
    // members not paused or cancelled on their own (every member when none is active: their
    // entries are then dropped); without {symbols} the venue answers every instrument and the
    // members are picked out, a paused one's entries dropped.
    std::string target_on(const Url& url, const SourceConfig& source) const;
    // Set when a member's own control changed; the poller rebuilds its request from
    // target_on() before its next poll (PollerGroup::Impl::refresh_batch_target).
    std::atomic<bool> members_changed{false};
    // "source/duplicate_symbol", "source/symbol_not_string": the rate-limited log's keys for
    // refused entries, built once.
    std::string duplicate_key, bad_symbol_key;
};

// The task table's rows for a batch poller: one per member, from the request's `row`.
void add_member_rows(const BatchRequest& batch, const PollerSnapshot& row, std::vector<PollerSnapshot>& out);

}  // namespace mdagg::detail

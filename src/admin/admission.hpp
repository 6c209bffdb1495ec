// Private to admin: which connections the ops server takes, sans-io. A regular slot while the
// server is within max_connections and the peer (an IP address) within its share; else one of
// the reserved probe slots, one per peer; else none. Not thread-safe: the server locks.
#pragma once

#include <mdagg/admin.hpp>

#include <optional>
#include <string>
#include <unordered_map>

namespace mdagg::admin {

class ConnectionAdmission {
public:
    enum class Slot { regular, probe };
    enum class Refusal { full, per_peer };

    explicit ConnectionAdmission(const ServerOptions& options)
        : max_(options.max_connections), per_peer_(options.max_connections_per_peer),
          probe_slots_(options.probe_slots) {}

    // The slot taken, or nullopt with `why` set.
    std::optional<Slot> admit(const std::string& peer, Refusal& why) {
        auto& mine = peers_[peer];
        const bool full = regular_ >= max_;
        if (!full && mine.regular < per_peer_) {
            ++regular_;
            ++mine.regular;
            return Slot::regular;
        }
        if (probe_ < probe_slots_ && mine.probe == 0) {
            ++probe_;
            ++mine.probe;
            return Slot::probe;
        }
        if (mine.regular == 0 && mine.probe == 0) peers_.erase(peer);
        why = full ? Refusal::full : Refusal::per_peer;
        return std::nullopt;
    }

    void release(const std::string& peer, Slot slot) {
        auto it = peers_.find(peer);
        if (it == peers_.end()) return;
        auto& count = slot == Slot::regular ? it->second.regular : it->second.probe;
        if (count == 0) return;
        --count;
        --(slot == Slot::regular ? regular_ : probe_);
        if (it->second.regular == 0 && it->second.probe == 0) peers_.erase(it);
    }

    std::size_t regular_open() const noexcept { return regular_; }
    std::size_t probe_open() const noexcept { return probe_; }
    std::size_t peers() const noexcept { return peers_.size(); }

private:
    struct PeerConnections {
        std::size_t regular = 0;
        std::size_t probe = 0;
    };
    std::size_t max_, per_peer_, probe_slots_;
    std::size_t regular_ = 0, probe_ = 0;
    std::unordered_map<std::string, PeerConnections> peers_;
};

}  // namespace mdagg::admin

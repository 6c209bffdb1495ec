// Several quote listeners in one simulator (mirrors of one venue): one book and one seq per
// symbol, each listener with its own faults, connections and counters. The pieces here are
// plain functions; sim.cpp owns the listeners themselves.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mdagg::sim::detail {

// A fault's optional "listener": K (0-based, in --listen order) picks the listener it goes
// to; the fault's own parser never sees that key. Throws std::invalid_argument for a K that
// is not an integer below `listeners`, or for text that is not a JSON object.
struct TargetedFault {
    std::size_t listener = 0;
    std::string fault;  // the JSON text without "listener"
};
TargetedFault split_fault_target(std::string_view json, std::size_t listeners);

// "/control/listeners/K/REST" -> listener K and "/control/REST", so the control API of one
// listener is reachable on any of them; "/control/listeners" itself is the list.
struct ListenerPath {
    enum class Kind { not_listener, list, forward, bad };
    Kind kind = Kind::not_listener;
    std::size_t listener = 0;
    std::string target;  // for forward: the target as that listener's own API sees it
};
ListenerPath parse_listener_path(std::string_view target, std::size_t listeners);

// One listener's line in /stats "listeners" and in GET /control/listeners.
struct ListenerCounters {
    std::size_t index = 0;
    std::string host;
    std::uint16_t port = 0;
    bool listening = false;
    std::uint64_t responses = 0;
    std::uint64_t abandoned_requests = 0;  // the client closed during a delay, before the answer
    std::uint64_t requests = 0;
    std::uint64_t connections = 0;
    std::uint64_t open_connections = 0;
    std::uint64_t failed_writes = 0;
    std::uint64_t active_faults = 0;
    std::uint64_t refused = 0;  // times a refuse or restart closed it
};
// Appends [{"index":0,"host":..,"port":..,...},...].
void append_listeners_json(std::string& out, const std::vector<ListenerCounters>& listeners);

}  // namespace mdagg::sim::detail

#include "listeners.hpp"

#include "mdagg/sim.hpp"

#include <nlohmann/json.hpp>

#include <charconv>
#include <stdexcept>

namespace mdagg::sim {

void add_listener(const std::string& text, Options& options) {
    Options parsed;
    parse_listen(text, parsed);
    options.more_listeners.push_back({parsed.host, parsed.port});
}

}  // namespace mdagg::sim

namespace mdagg::sim::detail {

namespace {

bool parse_index(std::string_view text, std::size_t& out) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return !text.empty() && ec == std::errc{} && end == text.data() + text.size();
}

}  // namespace

TargetedFault split_fault_target(std::string_view json, std::size_t listeners) {
    // Cheap exit for the common case: the fault's parser reports bad JSON itself.
    if (json.find("\"listener\"") == std::string_view::npos) return {0, std::string(json)};
    auto parsed = nlohmann::json::parse(json, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object()) return {0, std::string(json)};
    const auto it = parsed.find("listener");
    if (it == parsed.end()) return {0, std::string(json)};
    if (!it->is_number_unsigned() || it->get<std::uint64_t>() >= listeners)
        throw std::invalid_argument(std::string("'listener' must be an integer in [0, ")
                                        .append(std::to_string(listeners - 1))
                                        .append("] (the --listen order)"));
    TargetedFault out;
    out.listener = it->get<std::size_t>();
    parsed.erase(it);
    out.fault = parsed.dump();
    return out;
}

ListenerPath parse_listener_path(std::string_view target, std::size_t listeners) {
    constexpr std::string_view prefix = "/control/listeners";
    ListenerPath out;
    const std::string_view path = target.substr(0, target.find('?'));
    if (!path.starts_with(prefix)) return out;
    std::string_view rest = path.substr(prefix.size());
    if (rest.empty() || rest == "/") {
        out.kind = ListenerPath::Kind::list;
        return out;
    }
    if (rest.front() != '/') return out;  // e.g. /control/listenersX: not ours
    rest.remove_prefix(1);
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos || !parse_index(rest.substr(0, slash), out.listener) ||
        out.listener >= listeners) {
        out.kind = ListenerPath::Kind::bad;
        return out;
    }
    out.kind = ListenerPath::Kind::forward;
    out.target = "/control";
    out.target += rest.substr(slash);
    out.target += target.substr(path.size());  // the query, if any
    return out;
}

void append_listeners_json(std::string& out, const std::vector<ListenerCounters>& listeners) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& l : listeners) {
        list.push_back({{"index", l.index},
                        {"host", l.host},
                        {"port", l.port},
                        {"listening", l.listening},
                        {"responses", l.responses},
                        {"abandoned_requests", l.abandoned_requests},
                        {"requests", l.requests},
                        {"connections", l.connections},
                        {"open_connections", l.open_connections},
                        {"failed_writes", l.failed_writes},
                        {"active_faults", l.active_faults},
                        {"refused", l.refused}});
    }
    out += list.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace mdagg::sim::detail

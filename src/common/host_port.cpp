#include <mdagg/common.hpp>

#include <charconv>

namespace mdagg {

HostPortError split_host_port(std::string_view text, HostPort& out) noexcept {
    if (!text.empty() && text.front() == '[') {  // [::1]:8081
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return HostPortError::malformed;
        out = {text.substr(1, close - 1), text.substr(close + 2), true};
        return HostPortError::none;
    }
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return HostPortError::malformed;
    out = {text.substr(0, colon), text.substr(colon + 1), false};
    return out.host.find(':') == std::string_view::npos ? HostPortError::none : HostPortError::needs_brackets;
}

bool parse_port(std::string_view text, std::uint16_t& out) noexcept {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value > 65535) return false;
    out = static_cast<std::uint16_t>(value);
    return true;
}

}  // namespace mdagg

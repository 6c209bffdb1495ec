#include "detail.hpp"

#include <algorithm>

namespace mdagg {

namespace {

constexpr std::string_view placeholder = "{symbol}";

using config_detail::is_ascii_alnum;
using config_detail::is_ascii_hex;

bool is_unreserved(char c) noexcept {
    return is_ascii_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

std::string percent_encoded(char c) {
    static constexpr char digits[] = "0123456789ABCDEF";
    const auto u = static_cast<unsigned char>(c);
    return std::string("%") + digits[u >> 4] + digits[u & 0xf];
}

std::optional<std::string> host_error(std::string_view host) {
    if (host.empty()) return "missing host";
    for (char c : host) {
        if (!is_unreserved(c)) return "invalid character " + config_detail::describe_char(c) + " in host";
    }
    return std::nullopt;
}

// What goes on the request line must already be valid there: we only substitute symbols.
std::optional<std::string> target_error(std::string_view target) {
    for (std::size_t i = 0; i < target.size(); ++i) {
        const char c = target[i];
        if (c == '{') {
            if (target.substr(i).starts_with(placeholder)) {
                i += placeholder.size() - 1;
                continue;
            }
            const std::size_t close = target.find('}', i);
            const std::string_view shown =
                close == std::string_view::npos ? target.substr(i, 1) : target.substr(i, close - i + 1);
            return "unknown placeholder \"" + std::string(shown) + "\"; only {symbol} is supported";
        }
        if (c == '}') return "unmatched '}'; only {symbol} is supported";
        if (c == '#') return "a fragment (\"#...\") is never sent to the server; remove it";
        if (c == '%') {
            if (i + 2 >= target.size() || !is_ascii_hex(target[i + 1]) || !is_ascii_hex(target[i + 2]))
                return "invalid percent-encoding: '%' must be followed by two hex digits";
            i += 2;
            continue;
        }
        constexpr std::string_view allowed = "!$&'()*+,;=:@/?";
        if (!is_unreserved(c) && allowed.find(c) == std::string_view::npos)
            return "invalid character " + config_detail::describe_char(c) + " in the path; percent-encode it as " +
                   percent_encoded(c);
    }
    return std::nullopt;
}

std::optional<std::string> port_error(std::string_view text, std::uint16_t& port) {
    const std::string message =
        "invalid port \"" + std::string(text) + "\"; expected a number from 1 to 65535";
    if (text.empty() || text.size() > 5 ||
        !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return message;
    unsigned n = 0;
    for (char c : text) n = n * 10 + static_cast<unsigned>(c - '0');
    if (n == 0 || n > 65535) return message;
    port = static_cast<std::uint16_t>(n);
    return std::nullopt;
}

}  // namespace

std::string Url::target_for(std::string_view symbol) const {
    // RFC 3986 unreserved characters pass unchanged, and ':' too: it is legal in paths and
    // queries and common in symbols ("BTC:USD").
    std::string encoded;
    for (char c : symbol) {
        if (is_unreserved(c) || c == ':')
            encoded += c;
        else
            encoded += percent_encoded(c);
    }
    std::string out;
    out.reserve(target_template.size() + encoded.size());
    std::size_t from = 0;
    for (std::size_t at; (at = target_template.find(placeholder, from)) != std::string::npos;
         from = at + placeholder.size()) {
        out.append(target_template, from, at - from);
        out += encoded;
    }
    out.append(target_template, from);
    return out;
}

namespace config_detail {

std::optional<std::string> parse_url(std::string_view text, Url& out) {
    const std::size_t sep = text.find("://");
    if (sep == std::string_view::npos || sep == 0)
        return "expected a URL like \"http://host:8081/quotes/{symbol}\"";
    std::string scheme(text.substr(0, sep));
    for (char& c : scheme)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (scheme != "http" && scheme != "https")
        return "unsupported scheme \"" + scheme + "\"; only http and https are supported";

    const std::string_view rest = text.substr(sep + 3);
    const std::size_t authority_end = std::min(rest.find_first_of("/?#"), rest.size());
    const std::string_view authority = rest.substr(0, authority_end);
    const std::string_view target = rest.substr(authority_end);
    if (authority.find('@') != std::string_view::npos)
        return "credentials in the URL are not supported";

    Url url;
    url.scheme = scheme;
    url.port = scheme == "https" ? 443 : 80;
    std::string_view host = authority;
    std::optional<std::string_view> port;
    // http::make_get_request writes the Host header as host[:port], which would be malformed
    // for a bare IPv6 address; until it brackets them, refuse rather than send bad requests.
    if (authority.starts_with('['))
        return "IPv6 address literals are not supported yet; use a host name or IPv4 address";
    if (const std::size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
    }
    if (auto err = host_error(host)) return err;
    if (port)
        if (auto err = port_error(*port, url.port)) return err;
    url.host = host;

    if (auto err = target_error(target)) return err;
    url.target_template = target.starts_with('/') ? std::string(target) : '/' + std::string(target);
    out = std::move(url);
    return std::nullopt;
}

}  // namespace config_detail

}  // namespace mdagg

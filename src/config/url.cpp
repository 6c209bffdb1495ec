#include "detail.hpp"

#include <arpa/inet.h>

#include <algorithm>

namespace mdagg {

namespace {

constexpr std::string_view placeholder = "{symbol}";
constexpr std::string_view list_placeholder = "{symbols}";  // a batch's names (batch.cpp)
constexpr std::string_view placeholders_supported =
    "only {symbol}, {symbols}, {env:NAME} and {file:PATH} are supported";

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
            if (target.substr(i).starts_with(list_placeholder)) {
                i += list_placeholder.size() - 1;
                continue;
            }
            if (const auto secret = config_detail::secret_placeholder_at(target, i)) {
                i += secret->size - 1;
                continue;
            }
            const std::size_t close = target.find('}', i);
            const std::string_view shown =
                close == std::string_view::npos ? target.substr(i, 1) : target.substr(i, close - i + 1);
            return "unknown placeholder \"" + std::string(shown) + "\"; " + std::string(placeholders_supported);
        }
        if (c == '}') return "unmatched '}'; " + std::string(placeholders_supported);
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

std::optional<std::string> ipv6_error(std::string_view host) {
    if (host.find('%') != std::string_view::npos) return "IPv6 zone ids (\"%...\") are not supported";
    in6_addr address{};
    if (::inet_pton(AF_INET6, std::string(host).c_str(), &address) != 1)
        return "\"" + std::string(host) + "\" is not an IPv6 address";
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
    const std::string& target = secret_target.empty() ? target_template : secret_target.reveal();
    std::string out;
    out.reserve(target.size() + encoded.size());
    std::size_t from = 0;
    for (std::size_t at; (at = target.find(placeholder, from)) != std::string::npos; from = at + placeholder.size()) {
        out.append(target, from, at - from);
        out += encoded;
    }
    out.append(target, from);
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
    if (authority.starts_with('[')) {  // [::1]:8081; the host is kept without its brackets
        const std::size_t close = authority.find(']');
        if (close == std::string_view::npos) return "missing ']' after the IPv6 address";
        host = authority.substr(1, close - 1);
        const std::string_view after = authority.substr(close + 1);
        if (!after.empty() && !after.starts_with(':'))
            return "expected ':PORT' or nothing after the IPv6 address's ']'";
        if (!after.empty()) port = after.substr(1);
        if (auto err = ipv6_error(host)) return err;
    } else {
        if (const std::size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
            host = authority.substr(0, colon);
            port = authority.substr(colon + 1);
        }
        if (host.find(':') != std::string_view::npos)
            return "an IPv6 address needs brackets: http://[" + std::string(host) + "]:PORT/...";
        if (auto err = host_error(host)) return err;
    }
    if (port)
        if (auto err = port_error(*port, url.port)) return err;
    url.host = host;

    if (auto err = target_error(target)) return err;
    url.target_template = target.starts_with('/') ? std::string(target) : '/' + std::string(target);
    out = std::move(url);
    return std::nullopt;
}

std::optional<SecretPlaceholder> secret_placeholder_at(std::string_view target, std::size_t at) {
    constexpr std::string_view env = "{env:", file = "{file:";
    const std::string_view rest = target.substr(at);
    const bool is_env = rest.starts_with(env);
    if (!is_env && !rest.starts_with(file)) return std::nullopt;
    const std::size_t open = is_env ? env.size() : file.size();
    const std::size_t close = rest.find('}');
    if (close == std::string_view::npos || close == open) return std::nullopt;
    const std::string_view name = rest.substr(open, close - open);
    if (is_env && !is_env_name(name)) return std::nullopt;
    return SecretPlaceholder{close + 1, {is_env ? SecretRef::From::env : SecretRef::From::file, std::string(name)}};
}

// A secret's value is data in the query: every byte but the unreserved ones is percent-encoded,
// so no value can end the query early or smuggle a header.
void resolve_url_secrets(const Value& v, Url& url) {
    const std::string& text = url.target_template;
    std::string out;
    bool any = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto secret = text[i] == '{' ? secret_placeholder_at(text, i) : std::nullopt;
        if (!secret) {
            out += text[i];
            continue;
        }
        std::string value;
        try {
            value = read_secret(secret->ref);
        } catch (const ConfigError& e) {
            v.fail(e.what());
        }
        if (value.empty()) v.fail(secret_origin(secret->ref) + " is empty");
        for (char c : value) out += is_unreserved(c) ? std::string(1, c) : percent_encoded(c);
        i += secret->size - 1;
        any = true;
    }
    url.secret_target = any ? SecretText(std::move(out)) : SecretText();
}

}  // namespace config_detail

}  // namespace mdagg

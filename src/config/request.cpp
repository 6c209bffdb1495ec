// What a source sends besides its URL: `headers:` (values literal or from secrets) and
// `accept_encoding`. Secrets are read here, at load and on SIGHUP; a problem names the header
// and the variable or path, never the value.
#include "detail.hpp"

#include <algorithm>

namespace mdagg::config_detail {

namespace {

constexpr std::string_view encodings[] = {"identity", "gzip"};  // AcceptEncoding order

// RFC 9110 5.6.2: token = 1*tchar.
bool is_tchar(char c) noexcept {
    return is_ascii_alnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
               return lower(x) == lower(y);
           });
}

// Headers the daemon writes itself and a source may not set (Accept and User-Agent it may:
// they replace the defaults).
constexpr std::pair<std::string_view, std::string_view> reserved_headers[] = {
    {"Host", "written from the url"},
    {"Content-Length", "a GET has no body"},
    {"Transfer-Encoding", "a GET has no body"},
    {"Connection", "the daemon keeps connections alive itself"},
    {"Keep-Alive", "the daemon keeps connections alive itself"},
    {"TE", "the daemon reads plain responses only"},
    {"Upgrade", "the daemon speaks HTTP/1.1 only"},
    {"Accept-Encoding", "set accept_encoding: gzip instead; other encodings cannot be read"},
};

std::string read_header_name(const Value& v, std::string_view name, const SourceConfig& source) {
    if (name.empty()) v.fail("expected a header name");
    for (char c : name)
        if (!is_tchar(c)) v.fail("invalid character " + describe_char(c) + " in a header name");
    for (const auto& [reserved, why] : reserved_headers)
        if (iequals(name, reserved))
            v.fail("the " + std::string(reserved) + " header cannot be set: " + std::string(why));
    for (const RequestHeader& h : source.headers)
        if (iequals(h.name, name)) v.fail("duplicate header \"" + std::string(name) + "\" (header names ignore case)");
    return std::string(name);
}

// A field value (RFC 9110 5.5) on one line: no CR, LF, NUL or other control character but
// HTAB. A secret's value is described, never shown.
void check_header_value(const Value& v, const RequestHeader& h, std::string_view value) {
    const bool secret = h.value.from != SecretRef::From::literal;
    if (secret && value.empty()) v.fail(secret_origin(h.value) + " is empty");
    for (char c : value) {
        const auto u = static_cast<unsigned char>(c);
        if ((u < 0x20 && c != '\t') || u == 0x7f)
            v.fail(secret ? "the value read from " + secret_origin(h.value) +
                                " contains a control character (CR, LF or another); value not shown"
                          : "invalid character " + describe_char(c) + " in a header value");
    }
    const auto blank = [](char c) { return c == ' ' || c == '\t'; };
    if (!value.empty() && (blank(value.front()) || blank(value.back())))
        v.fail(secret ? "the value read from " + secret_origin(h.value) +
                            " starts or ends with white space; value not shown"
                      : "a header value may not start or end with white space");
}

}  // namespace

void read_headers(const Value& v, SourceConfig& source) {
    if (v.is_null()) return;
    if (!v.is_map()) v.fail("expected a mapping of header names to values, got " + v.describe());
    for (const auto& item : v.node()) {
        const YAML::Node& key = item.first;
        const std::string name = key.IsScalar() ? key.Scalar() : std::string();
        const std::string path = v.child_path(key.IsScalar() ? name : "?");
        const Value value(v.file(), item.second, path, key.Mark());
        const Value key_value(v.file(), key, path, key.Mark());  // name errors point at the name
        if (!key.IsScalar()) key_value.fail("expected a header name");
        RequestHeader header;
        header.name = read_header_name(key_value, name, source);
        header.value = read_secret_ref(value);
        std::string text;
        try {
            text = read_secret(header.value);
        } catch (const ConfigError& e) {
            value.fail(e.what());
        }
        check_header_value(value, header, text);
        header.resolved = SecretText(std::move(text));
        source.headers.push_back(std::move(header));
    }
}

void read_accept_encoding(const Value& v, SourceConfig& source) {
    source.accept_encoding = static_cast<AcceptEncoding>(read_choice(v, encodings));
}

}  // namespace mdagg::config_detail

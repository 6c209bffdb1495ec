#include <mdagg/admin.hpp>
#include <mdagg/http.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

namespace mdagg::admin {

namespace {

// A well-formed UTF-8 sequence (RFC 3629: no overlongs, no surrogates, at most U+10FFFF).
bool valid_utf8(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
        const auto c = static_cast<unsigned char>(text[i]);
        std::size_t extra = 0;
        unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
        if (c < 0x80) {
            ++i;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            extra = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            extra = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            extra = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return false;
        }
        if (text.size() - i <= extra) return false;  // truncated sequence
        for (std::size_t k = 1; k <= extra; ++k) {
            const auto b = static_cast<unsigned char>(text[i + k]);
            if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return false;
        }
        i += extra + 1;
    }
    return true;
}

}  // namespace

// Whatever a client sent may be echoed in an error: bytes that are not UTF-8 become U+FFFD
// instead of making the dump throw.
std::string json_text(const nlohmann::json& value) {
    return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

Response json_response(int status, const nlohmann::json& body) {
    return Response{status, "application/json", json_text(body) + "\n"};
}

Response error_response(int status, std::string_view message) {
    return json_response(status, {{"error", std::string(message)}});
}

// Compares without an early exit, so response timing does not reveal a prefix of the token.
bool equal_constant_time(std::string_view a, std::string_view b) {
    unsigned char diff = a.size() == b.size() ? 0 : 1;
    for (std::size_t i = 0; i < a.size(); ++i)
        diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
    return diff == 0;
}

bool authorized(std::string_view header, std::string_view token) {
    if (token.empty()) return true;
    constexpr std::string_view scheme = "Bearer ";
    if (header.size() < scheme.size()) return false;
    // The scheme is case-insensitive (RFC 7235).
    for (std::size_t i = 0; i < scheme.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(header[i])) != std::tolower(static_cast<unsigned char>(scheme[i])))
            return false;
    return equal_constant_time(header.substr(scheme.size()), token);
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view text) noexcept {
    // Iterative with one backtrack point: linear-ish, no recursion on hostile patterns.
    std::size_t p = 0, t = 0, star = std::string_view::npos, resume = 0;
    while (t < text.size()) {
        if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
            ++p;
            ++t;
        } else if (p < pattern.size() && pattern[p] == '*') {
            star = p++;
            resume = t;
        } else if (star != std::string_view::npos) {
            p = star + 1;
            t = ++resume;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*') ++p;
    return p == pattern.size();
}

bool Selector::matches(std::string_view source_name, std::string_view symbol,
                       const std::function<bool(std::string_view)>& has_tag) const {
    if (!source.empty() && source != source_name) return false;
    if (!symbols.empty() && std::find(symbols.begin(), symbols.end(), symbol) == symbols.end()) return false;
    if (!glob.empty() && !glob_match(glob, symbol)) return false;
    if (!tag.empty() && !has_tag(tag)) return false;
    return true;
}

std::optional<std::string> parse_selector(std::string_view json, Selector& out) {
    const auto doc = nlohmann::json::parse(json, nullptr, false);
    if (doc.is_discarded()) return "body is not valid JSON";
    if (!doc.is_object()) return "expected a JSON object like {\"source\": \"sim\", \"tag\": \"nyse\"}";
    auto string_of = [](const nlohmann::json& v, std::string_view key, std::string& into) -> std::optional<std::string> {
        if (!v.is_string() || v.get_ref<const std::string&>().empty())
            return std::string(key) + ": expected a non-empty string";
        into = v.get<std::string>();
        return std::nullopt;
    };
    for (auto& [key, value] : doc.items()) {
        std::optional<std::string> error;
        if (key == "source") {
            error = string_of(value, key, out.source);
        } else if (key == "glob") {
            error = string_of(value, key, out.glob);
        } else if (key == "tag") {
            error = string_of(value, key, out.tag);
        } else if (key == "symbols") {
            if (!value.is_array() || value.empty()) return "symbols: expected a non-empty list of names";
            for (auto& s : value) {
                if (!s.is_string()) return "symbols: expected a non-empty list of names";
                out.symbols.push_back(s.get<std::string>());
            }
        } else if (key == "all") {
            if (!value.is_boolean()) return "all: expected true or false";
            out.all = value.get<bool>();
        } else {
            return "unknown key \"" + key + "\"; valid keys: source, symbols, glob, tag, all";
        }
        if (error) return error;
    }
    if (out.all && out.has_criteria()) return "\"all\" cannot be combined with other criteria";
    if (!out.all && !out.has_criteria())
        return "empty selector: give source, symbols, glob or tag, or {\"all\": true}";
    return std::nullopt;
}

std::optional<std::string> parse_task_query(std::string_view query, Selector& out) {
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (pair.empty()) continue;
        const auto eq = pair.find('=');
        const std::string_view key = pair.substr(0, eq);
        auto value = http::percent_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1),
                                          http::Plus::space);
        if (!value) return "bad percent-encoding in \"" + std::string(key) + "\"";
        if (!valid_utf8(*value)) {
            // Appended in place: g++ 12 -O3 misreads `"\"" + std::string` (-Wstringop-overflow).
            std::string message(1, '"');
            return message.append(key).append("\" is not valid UTF-8 once percent-decoded");
        }
        if (key == "source") {
            out.source = *value;
        } else if (key == "symbol") {
            out.glob = *value;
        } else if (key == "tag") {
            out.tag = *value;
        } else if (key == "state") {
            out.state = *value;
        } else {
            return "unknown parameter \"" + std::string(key) + "\"; valid: source, symbol, tag, state";
        }
    }
    return std::nullopt;
}

bool is_probe_path(std::string_view target) noexcept {
    const std::string_view path = target.substr(0, target.find('?'));
    return path == "/healthz" || path == "/readyz";
}

std::string_view to_string(Action a) noexcept {
    switch (a) {
        case Action::pause: return "pause";
        case Action::resume: return "resume";
        case Action::cancel: return "cancel";
    }
    return "unknown";
}

Response handle(const Request& request, Backend& backend, std::string_view token) {
    const auto question = request.target.find('?');
    const std::string_view path = request.target.substr(0, question);
    const std::string_view query =
        question == std::string_view::npos ? std::string_view{} : request.target.substr(question + 1);
    const bool get = request.method == "GET";

    if (path == "/metrics" || path == "/healthz" || path == "/readyz" || path == "/debug/tasks") {
        if (!get) return error_response(405, "use GET");
        if (path == "/metrics")
            return Response{200, "text/plain; version=0.0.4; charset=utf-8", backend.metrics()};
        if (path == "/healthz") return backend.healthz();
        if (path == "/readyz") return backend.readyz();
        Selector filter;
        if (auto error = parse_task_query(query, filter)) return error_response(400, *error);
        return backend.tasks(filter);
    }
    constexpr std::string_view admin_prefix = "/admin/";
    if (path.starts_with(admin_prefix)) {
        const std::string_view name = path.substr(admin_prefix.size());
        std::optional<Action> action;
        for (Action a : {Action::pause, Action::resume, Action::cancel})
            if (name == to_string(a)) action = a;
        if (!action) return error_response(404, "no such endpoint; try /admin/pause, /admin/resume, /admin/cancel");
        if (request.method != "POST") return error_response(405, "use POST");
        if (!authorized(request.authorization, token)) return error_response(401, "missing or wrong bearer token");
        Selector selector;
        if (auto error = parse_selector(request.body, selector)) return error_response(400, *error);
        return backend.control(*action, selector);
    }
    return error_response(404, "no such endpoint; try /metrics, /healthz, /readyz, /debug/tasks");
}

}  // namespace mdagg::admin

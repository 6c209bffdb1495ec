#include "venue.hpp"

#include <nlohmann/json.hpp>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace mdagg::sim::detail {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

// One deflater per io thread, reset per response: a stream per connection would cost 256 KiB
// each.
struct Deflater {
    z_stream z{};
    Deflater() {
        if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            throw std::runtime_error("deflateInit2 failed");
    }
    ~Deflater() { deflateEnd(&z); }
};

}  // namespace

bool accepts_gzip(std::string_view value) noexcept {
    while (!value.empty()) {
        const auto comma = value.find(',');
        std::string_view item = value.substr(0, comma);
        value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
        const auto semi = item.find(';');
        if (!iequals(trim(item.substr(0, semi)), "gzip")) continue;
        if (semi == std::string_view::npos) return true;
        std::string_view q = trim(item.substr(semi + 1));
        if (q.size() < 2 || (q[0] != 'q' && q[0] != 'Q') || q[1] != '=') return true;
        q.remove_prefix(2);
        return q.find_first_not_of("0.") != std::string_view::npos;  // q=0, q=0.0: refused
    }
    return false;
}

void gzip_response(std::string& head, std::string& body, std::string& scratch) {
    thread_local Deflater deflater;
    z_stream& z = deflater.z;
    deflateReset(&z);
    scratch.resize(deflateBound(&z, body.size()));
    z.next_in = reinterpret_cast<Bytef*>(body.data());
    z.avail_in = static_cast<uInt>(body.size());
    z.next_out = reinterpret_cast<Bytef*>(scratch.data());
    z.avail_out = static_cast<uInt>(scratch.size());
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) return;  // cannot happen with deflateBound
    scratch.resize(z.total_out);
    body.swap(scratch);

    constexpr std::string_view key = "Content-Length: ";
    const auto at = head.find(key);
    if (at == std::string::npos) return;
    const auto value = at + key.size();
    const auto end = head.find("\r\n", value);
    head.replace(value, end - value, std::to_string(body.size()) + "\r\nContent-Encoding: gzip");
}

void RequestLog::header(std::string_view name, std::string_view value) {
    std::string key(name);
    std::transform(key.begin(), key.end(), key.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::lock_guard lock(mutex_);
    auto& seen = headers_[key];
    seen.last.assign(value);
    ++seen.count;
}

void RequestLog::query(std::string_view target) {
    const auto q = target.find('?');
    if (q == std::string_view::npos) return;
    std::string_view rest = target.substr(q + 1);
    std::lock_guard lock(mutex_);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const std::string_view pair = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
        if (pair.empty()) continue;
        const auto eq = pair.find('=');
        auto& seen = query_[std::string(pair.substr(0, eq))];
        seen.last.assign(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1));
        ++seen.count;
    }
}

void RequestLog::append_json(std::string& out) const {
    auto dump = [](const std::map<std::string, Seen, std::less<>>& seen) {
        nlohmann::json j = nlohmann::json::object();
        for (const auto& [name, s] : seen) j[name] = {{"last", s.last}, {"count", s.count}};
        return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    };
    std::lock_guard lock(mutex_);
    out += ",\"headers\":";
    out += dump(headers_);
    out += ",\"query\":";
    out += dump(query_);
}

}  // namespace mdagg::sim::detail

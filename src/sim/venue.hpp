// What a real venue does with a request beyond the quote: gzip answers to "Accept-Encoding:
// gzip", and (with --record-headers) a record of the request headers and query parameters it
// received, for tests that check what a client sent.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace mdagg::sim::detail {

// True when an Accept-Encoding value accepts gzip (a "gzip" token without q=0).
bool accepts_gzip(std::string_view accept_encoding) noexcept;

// Compresses `body` as gzip into `scratch`, swaps it into `body`, and rewrites `head` (framed by
// frame_response) for the new Content-Length with "Content-Encoding: gzip".
void gzip_response(std::string& head, std::string& body, std::string& scratch);

// Header names (lower-cased) and query parameters seen, each with its last value and a count.
class RequestLog {
public:
    void header(std::string_view name, std::string_view value);
    void query(std::string_view target);  // parameters after '?', as sent (not decoded)
    // ,"headers":{"name":{"last":V,"count":N},...},"query":{...}
    void append_json(std::string& out) const;

private:
    struct Seen {
        std::string last;
        std::uint64_t count = 0;
    };
    mutable std::mutex mutex_;
    std::map<std::string, Seen, std::less<>> headers_;
    std::map<std::string, Seen, std::less<>> query_;
};

}  // namespace mdagg::sim::detail

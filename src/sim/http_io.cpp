#include "http_io.hpp"

#include <charconv>

namespace mdagg::sim::detail {

void frame_response(std::string& out, std::string_view status, std::size_t content_length,
                    bool keep_alive, int version, std::string_view extra_headers) {
    out.clear();
    // Answer in the client's version so an HTTP/1.0 client gets 1.0 semantics.
    out += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    out += status;
    out += "\r\nServer: mdagg-sim\r\nContent-Type: application/json\r\nContent-Length: ";
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, content_length);
    (void)ec;
    out.append(buf, end);
    out += "\r\n";
    if (!keep_alive)
        out += "Connection: close\r\n";
    else if (version == 10)
        out += "Connection: keep-alive\r\n";
    out += extra_headers;
    out += "\r\n";
}

}  // namespace mdagg::sim::detail

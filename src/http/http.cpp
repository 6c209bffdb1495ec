#include <mdagg/http.hpp>

#include <boost/beast/http/error.hpp>

#include <algorithm>
#include <charconv>

namespace mdagg::http {

std::string make_get_request(std::string_view host, std::uint16_t port, std::string_view target) {
    std::string req;
    req.reserve(128 + host.size() + target.size());
    req += "GET ";
    req += target;
    req += " HTTP/1.1\r\nHost: ";
    req += host;
    if (port != 80) {
        char buf[8];
        auto [end, ec] = std::to_chars(buf, buf + sizeof buf, port);
        (void)ec;
        req += ':';
        req.append(buf, end);
    }
    req += "\r\nUser-Agent: mdagg/" MDAGG_HTTP_VERSION "\r\nAccept: application/json\r\nConnection: keep-alive\r\n\r\n";
    return req;
}

ResponseParser::ResponseParser(std::string& body, std::size_t body_limit, std::uint32_t header_limit)
    : body_(body) {
    body_.clear();
    this->body_limit(body_limit);
    this->header_limit(header_limit);
}

void ResponseParser::on_field_impl(field name, string_view, string_view value, error_code&) {
    if (name == field::retry_after) {
        retry_after_size_ = std::min(value.size(), retry_after_.size());
        std::copy_n(value.data(), retry_after_size_, retry_after_.data());
    }
}

void ResponseParser::on_body_init_impl(boost::optional<std::uint64_t> const& content_length, error_code&) {
    // basic_parser enforces body_limit against Content-Length before we get here.
    if (content_length) body_.reserve(static_cast<std::size_t>(*content_length));
}

std::size_t ResponseParser::on_body_impl(string_view data, error_code&) {
    body_.append(data.data(), data.size());
    return data.size();
}

std::size_t ResponseParser::on_chunk_body_impl(std::uint64_t, string_view data, error_code&) {
    body_.append(data.data(), data.size());
    return data.size();
}

}  // namespace mdagg::http

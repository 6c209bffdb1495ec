// Allocation-free HTTP request parsing and response framing for the simulator's hot path.
#pragma once

#include "venue.hpp"

#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/verb.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mdagg::sim::detail {

// http::request_parser<...> builds a basic_fields list (one heap node per header field) that
// the simulator never reads. This parser keeps only the method and target, in a string the
// connection reuses, and the body (control requests carry one; body_limit bounds it) in
// another. basic_parser still tracks keep-alive for us.
class RequestParser final : public boost::beast::http::basic_parser<true> {
public:
    using string_view = boost::beast::string_view;
    using error_code = boost::beast::error_code;

    RequestParser(std::string& target, std::string& body) : target_(target), body_(body) {
        target_.clear();
        body_.clear();
    }

    // Headers go to `log` too (null: nowhere).
    void record_into(RequestLog* log) noexcept { log_ = log; }
    bool accepts_gzip() const noexcept { return gzip_; }
    boost::beast::http::verb method() const noexcept { return method_; }
    int version() const noexcept { return version_; }

private:
    void on_request_impl(boost::beast::http::verb method, string_view, string_view target,
                         int version, error_code&) override {
        method_ = method;
        version_ = version;
        target_.assign(target.data(), target.size());
    }
    void on_response_impl(int, string_view, int, error_code&) override {}
    void on_field_impl(boost::beast::http::field field, string_view name, string_view value,
                       error_code&) override {
        if (field == boost::beast::http::field::accept_encoding && detail::accepts_gzip(value))
            gzip_ = true;
        if (log_) log_->header(name, value);
    }
    void on_header_impl(error_code&) override {}
    void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
    std::size_t on_body_impl(string_view body, error_code&) override {
        body_.append(body.data(), body.size());
        return body.size();
    }
    void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
    std::size_t on_chunk_body_impl(std::uint64_t, string_view body, error_code&) override {
        body_.append(body.data(), body.size());
        return body.size();
    }
    void on_finish_impl(error_code&) override {}

    std::string& target_;
    std::string& body_;
    boost::beast::http::verb method_ = boost::beast::http::verb::unknown;
    int version_ = 11;
    RequestLog* log_ = nullptr;
    bool gzip_ = false;
};

// Writes the status line and headers into `out` (cleared first). Hand-framed rather than
// http::response<...> because basic_fields allocates per field on every response.
// `keep_alive` false adds "Connection: close"; an HTTP/1.0 keep-alive gets it spelled out.
void frame_response(std::string& out, std::string_view status, std::size_t content_length,
                    bool keep_alive, int version, std::string_view extra_headers = {});

}  // namespace mdagg::sim::detail

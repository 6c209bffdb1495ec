// The HTTP pieces a poller needs, sans-io: a pre-serialized GET and an allocation-free
// response parser; and the percent-decoding the admin server and the simulator share.
#pragma once

#include <boost/beast/http/basic_parser.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <optional>
#include <cstdint>
#include <string>
#include <string_view>

namespace mdagg::http {

// What a source adds to its requests.
struct RequestOptions {
    // "Name: value\r\n" lines, checked by the config; an Accept or User-Agent here replaces
    // the default one.
    std::string_view header_lines;
    bool accept_gzip = false;  // adds "Accept-Encoding: gzip"
};

// A keep-alive GET, serialized once per poller and written as-is on every poll. An IPv6
// address `host` is bracketed in the Host header.
std::string make_get_request(std::string_view host, std::uint16_t port, std::string_view target,
                             const RequestOptions& options = {});

// How a response body is encoded (Content-Encoding); `other` is one the daemon cannot read.
enum class ContentEncoding : std::uint8_t { identity, gzip, deflate, other };

// Why a body could not be decoded; PollError body_too_large and protocol respectively.
enum class BodyError { inflated_too_large = 1, corrupt_encoding, unsupported_encoding };
const boost::system::error_category& body_error_category() noexcept;
boost::system::error_code make_error_code(BodyError e) noexcept;

// Inflates a complete gzip or zlib ("deflate") body, sans-io. Its zlib state (~45 KiB) is
// allocated once and reset per body, so keep one per thread, not per poller.
class Inflater {
public:
    Inflater();
    ~Inflater();
    Inflater(const Inflater&) = delete;
    Inflater& operator=(const Inflater&) = delete;

    // Inflates all of `in` (gzip members back to back, or one zlib stream) into `out`, which is
    // cleared first and never grows past `limit`: a body that inflates further is refused
    // (inflated_too_large) as soon as it passes it. A truncated or corrupt stream is
    // corrupt_encoding.
    boost::system::error_code inflate(std::string_view in, std::string& out, std::size_t limit);

private:
    struct State;
    State* state_;
};

// Replaces a complete `body` in `encoding` by its decoded bytes, at most `limit` of them,
// with this thread's Inflater and buffer (their capacity is reused). Identity and an empty
// body are left as they are; `other` is unsupported_encoding.
boost::system::error_code decode_body(std::string& body, ContentEncoding encoding, std::size_t limit);

// Retry-After (RFC 9110 section 10.2.3): delay-seconds, or an HTTP-date in any of its three
// forms (IMF-fixdate, RFC 850, asctime). Returns the wait from `now` (zero for a date in the
// past), or nullopt when the value is neither.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now);

// Percent-decoding (RFC 3986 section 2.1) of a query value. `Plus::space` reads '+' as a space,
// as HTML forms encode it (application/x-www-form-urlencoded); `Plus::literal` keeps it. A '%'
// not followed by two hex digits makes the whole value invalid: nullopt.
enum class Plus : std::uint8_t { literal, space };
std::optional<std::string> percent_decode(std::string_view text, Plus plus);

// Parses one response into a caller-owned body string (its capacity is reused across polls),
// keeping only the status and the headers the poller acts on. Single use, like every Beast
// parser: construct one per response.
class ResponseParser final : public boost::beast::http::basic_parser<false> {
public:
    // `usage_header`: a header whose numeric value to keep (a venue's used-weight counter);
    // empty for none. The view must outlive the parser.
    ResponseParser(std::string& body, std::size_t body_limit, std::uint32_t header_limit = 8 * 1024,
                   std::string_view usage_header = {});

    int status() const noexcept { return status_; }
    // Interim (1xx) responses skipped before this one on the same exchange.
    unsigned interim_skipped() const noexcept { return interim_skipped_; }
    // Raw Retry-After value ("" when absent); truncated to 63 characters.
    std::string_view retry_after() const noexcept { return {retry_after_.data(), retry_after_size_}; }
    // The usage header's value, when present and numeric.
    std::optional<double> usage() const noexcept { return usage_; }
    ContentEncoding content_encoding() const noexcept { return content_encoding_; }

private:
    using error_code = boost::beast::error_code;
    using field = boost::beast::http::field;
    using verb = boost::beast::http::verb;
    using string_view = boost::beast::string_view;

    void on_request_impl(verb, string_view, string_view, int, error_code&) override {}
    void on_response_impl(int code, string_view, int, error_code&) override { status_ = code; }
    void on_field_impl(field name, string_view, string_view value, error_code&) override;
    void on_header_impl(error_code&) override {}
    void on_body_init_impl(boost::optional<std::uint64_t> const& content_length, error_code& ec) override;
    std::size_t on_body_impl(string_view data, error_code& ec) override;
    void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
    std::size_t on_chunk_body_impl(std::uint64_t, string_view data, error_code& ec) override;
    void on_finish_impl(error_code&) override {}

    friend std::size_t put_response(std::optional<ResponseParser>&, boost::asio::const_buffer, error_code&);

    std::string& body_;
    std::size_t body_limit_;
    std::uint32_t header_limit_;
    unsigned interim_skipped_ = 0;
    int status_ = 0;
    std::array<char, 63> retry_after_{};
    std::size_t retry_after_size_ = 0;
    std::string_view usage_header_;
    std::optional<double> usage_;
    ContentEncoding content_encoding_ = ContentEncoding::identity;
};

// Interim responses a single exchange may carry before its final one; more is a protocol error.
inline constexpr unsigned max_interim_responses = 8;

// Feeds `data` to `parser` and returns the bytes it used. An interim response (RFC 9110 15.2:
// 100 Continue, 103 Early Hints) is not the answer: the parser is replaced by a fresh one with
// the same settings and parsing goes on, so the final response is the one read and no answer is
// left on the connection for the next poll. 101 Switching Protocols (never asked for) and more
// than max_interim_responses interim responses set `ec` to http::error::bad_status. `ec` is
// http::error::need_more when the final response is incomplete.
std::size_t put_response(std::optional<ResponseParser>& parser, boost::asio::const_buffer data,
                         boost::beast::error_code& ec);

}  // namespace mdagg::http

#include <mdagg/http.hpp>

#include <boost/beast/http/error.hpp>

#include <boost/beast/core/string.hpp>

#include <algorithm>
#include <charconv>

namespace mdagg::http {

namespace {

bool iequals_prefix(std::string_view text, std::string_view prefix) {
    return text.size() >= prefix.size() && boost::beast::iequals(text.substr(0, prefix.size()), prefix);
}

// Whether `lines` ("Name: value\r\n"...) has a header named `name`.
bool has_header(std::string_view lines, std::string_view name) {
    for (std::size_t at = 0; at < lines.size();) {
        const std::size_t end = std::min(lines.find("\r\n", at), lines.size());
        const std::string_view line = lines.substr(at, end - at);
        if (iequals_prefix(line, name) && line.size() > name.size() && line[name.size()] == ':') return true;
        at = end + 2;
    }
    return false;
}

}  // namespace

std::string make_get_request(std::string_view host, std::uint16_t port, std::string_view target,
                             const RequestOptions& options) {
    const bool ipv6 = host.find(':') != std::string_view::npos;
    std::string req;
    req.reserve(160 + host.size() + target.size() + options.header_lines.size());
    req += "GET ";
    req += target;
    req += " HTTP/1.1\r\nHost: ";
    if (ipv6) req += '[';
    req += host;
    if (ipv6) req += ']';
    if (port != 80) {
        char buf[8];
        auto [end, ec] = std::to_chars(buf, buf + sizeof buf, port);
        (void)ec;
        req += ':';
        req.append(buf, end);
    }
    req += "\r\n";
    if (!has_header(options.header_lines, "User-Agent")) req += "User-Agent: mdagg/" MDAGG_HTTP_VERSION "\r\n";
    if (!has_header(options.header_lines, "Accept")) req += "Accept: application/json\r\n";
    if (options.accept_gzip) req += "Accept-Encoding: gzip\r\n";
    req += options.header_lines;
    req += "Connection: keep-alive\r\n\r\n";
    return req;
}

ResponseParser::ResponseParser(std::string& body, std::size_t body_limit, std::uint32_t header_limit,
                               std::string_view usage_header)
    : body_(body), body_limit_(body_limit), header_limit_(header_limit), usage_header_(usage_header) {
    body_.clear();
    this->body_limit(body_limit);
    this->header_limit(header_limit);
}

namespace {

ContentEncoding encoding_of(std::string_view value) {
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (value.empty() || boost::beast::iequals(value, "identity")) return ContentEncoding::identity;
    if (boost::beast::iequals(value, "gzip") || boost::beast::iequals(value, "x-gzip")) return ContentEncoding::gzip;
    if (boost::beast::iequals(value, "deflate")) return ContentEncoding::deflate;
    return ContentEncoding::other;  // br, zstd, or a list of several
}

}  // namespace

void ResponseParser::on_field_impl(field name, string_view name_string, string_view value, error_code&) {
    if (name == field::content_encoding) {
        // A second Content-Encoding line stacks another encoding: not one the daemon reads.
        const bool stacked = content_encoding_ != ContentEncoding::identity;
        content_encoding_ = stacked ? ContentEncoding::other : encoding_of(value);
    } else if (name == field::retry_after) {
        retry_after_size_ = std::min(value.size(), retry_after_.size());
        std::copy_n(value.data(), retry_after_size_, retry_after_.data());
    } else if (!usage_header_.empty() && boost::beast::iequals(name_string, usage_header_)) {
        double v = 0;
        const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
        if (ec == std::errc() && end == value.data() + value.size() && v >= 0) usage_ = v;
    }
}

namespace {

bool all_digits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int to_int(std::string_view s) {
    int v = 0;
    std::from_chars(s.data(), s.data() + s.size(), v);
    return v;
}

int month_number(std::string_view m) {
    constexpr std::string_view months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (int i = 0; i < 12; ++i)
        if (m == months[i]) return i + 1;
    return 0;
}

// Splits on spaces, commas and (for RFC 850 dates) '-'; collapses runs (asctime pads days).
std::size_t tokenize(std::string_view s, std::array<std::string_view, 8>& out) {
    std::size_t n = 0;
    std::size_t i = 0;
    while (i < s.size() && n < out.size()) {
        while (i < s.size() && (s[i] == ' ' || s[i] == ',' || s[i] == '-')) ++i;
        const std::size_t start = i;
        while (i < s.size() && s[i] != ' ' && s[i] != ',' && s[i] != '-') ++i;
        if (i > start) out[n++] = s.substr(start, i - start);
    }
    return i < s.size() ? out.size() + 1 : n;  // too many tokens: not a date
}

std::optional<std::chrono::sys_seconds> parse_http_date(std::string_view s) {
    std::array<std::string_view, 8> t;
    const std::size_t n = tokenize(s, t);
    std::string_view day, month, year, time;
    if (n == 6 && t[5] == "GMT") {  // IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT" or RFC 850
        day = t[1];
        month = t[2];
        year = t[3];
        time = t[4];
    } else if (n == 5) {  // asctime "Sun Nov  6 08:49:37 1994"
        month = t[1];
        day = t[2];
        time = t[3];
        year = t[4];
    } else {
        return std::nullopt;
    }
    if (!all_digits(day) || day.size() > 2 || !all_digits(year) || (year.size() != 4 && year.size() != 2))
        return std::nullopt;
    int y = to_int(year);
    // RFC 850's two-digit year: RFC 9110 reads it as the nearest matching year; with no venue
    // sending dates before 1970, 70..99 are 19xx and the rest 20xx.
    if (year.size() == 2) y += y >= 70 ? 1900 : 2000;
    const int mon = month_number(month);
    if (mon == 0 || time.size() != 8 || time[2] != ':' || time[5] != ':') return std::nullopt;
    const auto hh = time.substr(0, 2), mm = time.substr(3, 2), ss = time.substr(6, 2);
    if (!all_digits(hh) || !all_digits(mm) || !all_digits(ss)) return std::nullopt;
    const int h = to_int(hh), mi = to_int(mm), sec = to_int(ss);
    if (h > 23 || mi > 59 || sec > 60) return std::nullopt;
    const std::chrono::year_month_day ymd{std::chrono::year(y), std::chrono::month(static_cast<unsigned>(mon)),
                                          std::chrono::day(static_cast<unsigned>(to_int(day)))};
    if (!ymd.ok()) return std::nullopt;
    return std::chrono::sys_days(ymd) + std::chrono::hours(h) + std::chrono::minutes(mi) +
           std::chrono::seconds(sec);
}

}  // namespace

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now) {
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (all_digits(value)) {
        // Beyond a day it is a ban length anyway; the caller caps it. Saturate, never overflow.
        if (value.size() > 9) return std::chrono::seconds(999'999'999);
        return std::chrono::seconds(to_int(value));
    }
    const auto date = parse_http_date(value);
    if (!date) return std::nullopt;
    const auto wait = std::chrono::ceil<std::chrono::seconds>(*date - now);
    return std::max(wait, std::chrono::seconds(0));
}

void ResponseParser::on_body_init_impl(boost::optional<std::uint64_t> const& content_length, error_code&) {
    // basic_parser enforces body_limit against Content-Length before we get here.
    // 64 spare bytes: a batch answer is read in place by simdjson, which reads that far past
    // the end (mapping.hpp's json_padding); without them the poll path would have to grow it.
    if (content_length) body_.reserve(static_cast<std::size_t>(*content_length) + 64);
}

std::size_t ResponseParser::on_body_impl(string_view data, error_code&) {
    body_.append(data.data(), data.size());
    return data.size();
}

std::size_t ResponseParser::on_chunk_body_impl(std::uint64_t, string_view data, error_code&) {
    body_.append(data.data(), data.size());
    return data.size();
}

std::size_t put_response(std::optional<ResponseParser>& parser, boost::asio::const_buffer data,
                         boost::beast::error_code& ec) {
    std::size_t used = 0;
    for (;;) {
        used += parser->put(boost::asio::const_buffer(static_cast<const char*>(data.data()) + used, data.size() - used), ec);
        if (ec || !parser->is_done()) return used;
        const int status = parser->status();
        if (status < 100 || status > 199) return used;  // the final response
        if (status == 101 || parser->interim_skipped_ >= max_interim_responses) {
            ec = boost::beast::http::error::bad_status;
            return used;
        }
        const ResponseParser& done = *parser;
        std::string& body = done.body_;
        const auto body_limit = done.body_limit_;
        const auto header_limit = done.header_limit_;
        const auto usage_header = done.usage_header_;
        const bool eager = done.eager();
        const unsigned skipped = done.interim_skipped_ + 1;
        parser.emplace(body, body_limit, header_limit, usage_header);
        parser->eager(eager);
        parser->interim_skipped_ = skipped;
        if (used == data.size()) {
            ec = boost::beast::http::error::need_more;
            return used;
        }
    }
}

}  // namespace mdagg::http

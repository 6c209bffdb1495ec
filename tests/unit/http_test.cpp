// ResponseParser and request serialization, fed bytes directly (no sockets).
#include <mdagg/http.hpp>

#include <boost/beast/http/error.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>

namespace {

namespace beast = boost::beast;

struct Parsed {
    beast::error_code ec;
    std::size_t consumed = 0;
};

Parsed feed(mdagg::http::ResponseParser& p, std::string_view bytes) {
    Parsed r;
    p.eager(true);
    while (r.consumed < bytes.size() && !p.is_done()) {
        auto n = p.put(boost::asio::buffer(bytes.data() + r.consumed, bytes.size() - r.consumed), r.ec);
        if (r.ec) return r;
        if (n == 0) break;
        r.consumed += n;
    }
    return r;
}

}  // namespace

TEST(Request, IsAKeepAliveGetWithHostAndPort) {
    auto req = mdagg::http::make_get_request("127.0.0.1", 8081, "/quotes/STOCK_1");
    EXPECT_EQ(req.rfind("GET /quotes/STOCK_1 HTTP/1.1\r\nHost: 127.0.0.1:8081\r\n", 0), 0u);
    EXPECT_NE(req.find("Connection: keep-alive\r\n"), std::string::npos);
    EXPECT_EQ(req.substr(req.size() - 4), "\r\n\r\n");
    // Default port is left out of Host, as browsers and curl do.
    auto req80 = mdagg::http::make_get_request("example.com", 80, "/x");
    EXPECT_NE(req80.find("Host: example.com\r\n"), std::string::npos);
}

TEST(ResponseParser, ContentLengthBodyStatusAndKeepAlive) {
    std::string body = "stale";
    mdagg::http::ResponseParser p(body, 1024);
    auto r = feed(p, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nContent-Type: application/json\r\n\r\n{\"a\":\"1.0\"}");
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_TRUE(p.is_done());
    EXPECT_EQ(p.status(), 200);
    EXPECT_TRUE(p.keep_alive());
    EXPECT_EQ(body, "{\"a\":\"1.0\"}");  // the previous content is gone
    EXPECT_EQ(p.retry_after(), "");
}

TEST(ResponseParser, ChunkedBodyIsReassembled) {
    std::string body;
    mdagg::http::ResponseParser p(body, 1024);
    auto r = feed(p, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n4\r\n:\"1\"\r\n1\r\n}\r\n0\r\n\r\n");
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_TRUE(p.is_done());
    EXPECT_EQ(body, "{\"a\":\"1\"}");
}

TEST(ResponseParser, ConnectionCloseAndRetryAfterAreSeen) {
    std::string body;
    mdagg::http::ResponseParser p(body, 1024);
    auto r = feed(p, "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    ASSERT_FALSE(r.ec);
    EXPECT_EQ(p.status(), 429);
    EXPECT_FALSE(p.keep_alive());
    EXPECT_EQ(p.retry_after(), "7");
}

TEST(ResponseParser, BodyLimitIsEnforcedForDeclaredAndChunkedBodies) {
    std::string body;
    mdagg::http::ResponseParser declared(body, 8);
    auto r = feed(declared, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n123456789");
    EXPECT_EQ(r.ec, beast::http::error::body_limit);

    mdagg::http::ResponseParser chunked(body, 8);
    r = feed(chunked, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n5\r\n67890\r\n0\r\n\r\n");
    EXPECT_EQ(r.ec, beast::http::error::body_limit);
}

TEST(ResponseParser, HeaderLimitStopsHeadersThatNeverEnd) {
    std::string body;
    mdagg::http::ResponseParser p(body, 1024, 256);
    std::string endless = "HTTP/1.1 200 OK\r\n";
    for (int i = 0; i < 40; ++i) endless += "X-Padding: 0123456789\r\n";
    auto r = feed(p, endless);
    EXPECT_EQ(r.ec, beast::http::error::header_limit);
}

TEST(ResponseParser, GarbageIsAProtocolError) {
    std::string body;
    mdagg::http::ResponseParser p(body, 1024);
    auto r = feed(p, "SSH-2.0-OpenSSH_9.2\r\n\r\n");
    EXPECT_TRUE(r.ec);
}

TEST(ResponseParser, UsageHeaderIsReadCaseInsensitively) {
    std::string body;
    mdagg::http::ResponseParser p(body, 1024, 8192, "X-MBX-USED-WEIGHT-1M");
    auto r = feed(p,
                  "HTTP/1.1 200 OK\r\nx-mbx-used-weight-1m: 4711\r\nContent-Length: 2\r\n\r\n{}");
    ASSERT_FALSE(r.ec) << r.ec.message();
    ASSERT_TRUE(p.usage());
    EXPECT_EQ(*p.usage(), 4711.0);

    // Absent, or not a number: no value rather than a guess.
    std::string body2;
    mdagg::http::ResponseParser absent(body2, 1024, 8192, "X-Used");
    ASSERT_FALSE(feed(absent, "HTTP/1.1 200 OK\r\nX-Other: 1\r\nContent-Length: 0\r\n\r\n").ec);
    EXPECT_FALSE(absent.usage());
    mdagg::http::ResponseParser junk(body2, 1024, 8192, "X-Used");
    ASSERT_FALSE(feed(junk, "HTTP/1.1 200 OK\r\nX-Used: 12abc\r\nContent-Length: 0\r\n\r\n").ec);
    EXPECT_FALSE(junk.usage());
    // No header configured: nothing is kept.
    mdagg::http::ResponseParser none(body2, 1024);
    ASSERT_FALSE(feed(none, "HTTP/1.1 200 OK\r\nX-Used: 12\r\nContent-Length: 0\r\n\r\n").ec);
    EXPECT_FALSE(none.usage());
}

TEST(RetryAfter, DelaySeconds) {
    using namespace std::chrono;
    const auto now = system_clock::now();
    EXPECT_EQ(mdagg::http::parse_retry_after("120", now), seconds(120));
    EXPECT_EQ(mdagg::http::parse_retry_after(" 0 ", now), seconds(0));
    // Absurd values saturate instead of overflowing; the caller caps the pause.
    EXPECT_EQ(mdagg::http::parse_retry_after("99999999999999999999999", now), seconds(999'999'999));
    for (auto bad : {"", "-1", "1.5", "12s", "soon", "0x10"})
        EXPECT_FALSE(mdagg::http::parse_retry_after(bad, now)) << bad;
}

TEST(RetryAfter, AllThreeHttpDateForms) {
    using namespace std::chrono;
    // 1994-11-06 08:49:37 UTC, and a "now" 37 s before it.
    const sys_seconds date = sys_days(year(1994) / November / 6) + hours(8) + minutes(49) + seconds(37);
    const auto now = date - seconds(37);
    EXPECT_EQ(mdagg::http::parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), seconds(37));
    EXPECT_EQ(mdagg::http::parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), seconds(37));
    EXPECT_EQ(mdagg::http::parse_retry_after("Sun Nov  6 08:49:37 1994", now), seconds(37));
    // A fraction of a second left rounds up: resuming early would earn another 429.
    EXPECT_EQ(mdagg::http::parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now + milliseconds(500)),
              seconds(37));
    // A date already past means "now".
    EXPECT_EQ(mdagg::http::parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", date + hours(1)), seconds(0));
    for (auto bad : {"Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 31 Feb 1994 08:49:37 GMT",
                     "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:49:37 GMT",
                     "Sun, 06 Nov 1994 08:49 GMT", "Sun, 06 Nov 1994 08:49:37 GMT extra tokens here"})
        EXPECT_FALSE(mdagg::http::parse_retry_after(bad, now)) << bad;
}

// Interim responses (RFC 9110 15.2) come before the answer on the same connection.
namespace {

// Feeds `bytes` in pieces of `step` the way the poller does, through put_response.
Parsed feed_response(std::optional<mdagg::http::ResponseParser>& p, std::string_view bytes, std::size_t step) {
    Parsed r;
    p->eager(true);
    std::size_t available = 0;
    while (!p->is_done()) {
        if (r.consumed == available) {
            if (available == bytes.size()) break;
            available = std::min(bytes.size(), available + step);
        }
        r.ec = {};
        const auto n = mdagg::http::put_response(
            p, boost::asio::buffer(bytes.data() + r.consumed, available - r.consumed), r.ec);
        r.consumed += n;
        if (r.ec == beast::http::error::need_more) {
            if (available == bytes.size()) break;
            available = std::min(bytes.size(), available + step);
            continue;
        }
        if (r.ec) return r;
    }
    return r;
}

}  // namespace

TEST(ResponseParser, InterimResponsesAreSkippedAndTheFinalOneIsRead) {
    const std::string interim = "HTTP/1.1 100 Continue\r\n\r\n"
                                "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\nRetry-After: 9\r\n\r\n";
    const std::string final_response = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"a\":1}";
    const std::string next = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
    for (std::size_t step : {std::size_t{1}, std::size_t{7}, std::size_t{4096}}) {
        SCOPED_TRACE(step);
        std::string body;
        std::optional<mdagg::http::ResponseParser> p;
        p.emplace(body, 1024);
        const std::string bytes = interim + final_response + next;
        auto r = feed_response(p, bytes, step);
        ASSERT_FALSE(r.ec) << r.ec.message();
        ASSERT_TRUE(p->is_done());
        EXPECT_EQ(p->status(), 200);
        EXPECT_EQ(p->interim_skipped(), 2u);
        EXPECT_EQ(body, "{\"a\":1}");
        EXPECT_TRUE(p->retry_after().empty()) << "an interim response's headers are not the answer's";
        // The next response stays unread, for the next poll.
        EXPECT_EQ(r.consumed, interim.size() + final_response.size());
    }
}

TEST(ResponseParser, SwitchingProtocolsIsAProtocolError) {
    std::string body;
    std::optional<mdagg::http::ResponseParser> p;
    p.emplace(body, 1024);
    auto r = feed_response(p, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", 4096);
    EXPECT_EQ(r.ec, beast::http::error::bad_status);
}

TEST(ResponseParser, EndlessInterimResponsesAreAProtocolError) {
    std::string body;
    std::optional<mdagg::http::ResponseParser> p;
    p.emplace(body, 1024);
    std::string bytes;
    for (unsigned i = 0; i <= mdagg::http::max_interim_responses; ++i) bytes += "HTTP/1.1 100 Continue\r\n\r\n";
    bytes += "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
    auto r = feed_response(p, bytes, 4096);
    EXPECT_EQ(r.ec, beast::http::error::bad_status);
}

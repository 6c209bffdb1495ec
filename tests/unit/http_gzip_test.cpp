// accept_encoding: gzip, sans-io: the request asks for it, the parser notes the encoding, and
// the Inflater turns gzip and zlib bodies back into JSON within the body limit.
#include <mdagg/http.hpp>

#include <gtest/gtest.h>
#include <zlib.h>

#include <string>

namespace {

namespace http = mdagg::http;

// RFC 1952 gzip (windowBits 15 + 16) or RFC 1950 zlib (15).
std::string compress(std::string_view plain, int window_bits = 15 + 16) {
    z_stream z{};
    EXPECT_EQ(deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
    std::string out(deflateBound(&z, static_cast<uLong>(plain.size())) + 32, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(plain.data()));
    z.avail_in = static_cast<uInt>(plain.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
    out.resize(z.total_out);
    deflateEnd(&z);
    return out;
}

const std::string quote = R"({"symbol":"LTCBTC","bidPrice":"4.00000000","askPrice":"4.00000200"})";

TEST(GzipRequest, AsksForGzipOnlyWhenTold) {
    EXPECT_EQ(http::make_get_request("h", 80, "/q").find("Accept-Encoding"), std::string::npos);
    const std::string req = http::make_get_request("h", 80, "/q", {.header_lines = {}, .accept_gzip = true});
    EXPECT_NE(req.find("\r\nAccept-Encoding: gzip\r\n"), std::string::npos);
}

TEST(GzipInflater, InflatesGzipAndZlib) {
    http::Inflater inflater;
    std::string out = "stale";
    ASSERT_FALSE(inflater.inflate(compress(quote), out, 1024));
    EXPECT_EQ(out, quote);
    ASSERT_FALSE(inflater.inflate(compress(quote, 15), out, 1024));  // "deflate" as servers send it
    EXPECT_EQ(out, quote);
}

TEST(GzipInflater, ReusedStateInflatesManyBodies) {
    http::Inflater inflater;
    std::string out;
    for (int i = 0; i < 100; ++i) {
        const std::string plain = quote + std::string(static_cast<std::size_t>(i), ' ');
        ASSERT_FALSE(inflater.inflate(compress(plain), out, 4096)) << i;
        EXPECT_EQ(out, plain);
    }
}

TEST(GzipInflater, ConcatenatedGzipMembersAreOneBody) {
    http::Inflater inflater;
    std::string out;
    ASSERT_FALSE(inflater.inflate(compress("{\"a\":") + compress("1}"), out, 1024));
    EXPECT_EQ(out, "{\"a\":1}");
}

TEST(GzipInflater, ABodyThatInflatesPastTheLimitIsRefusedWithoutGrowingPastIt) {
    // 1 MiB of spaces compresses to about 1 KiB: a small answer that would inflate far.
    const std::string bomb = compress(std::string(1 << 20, ' '));
    ASSERT_LT(bomb.size(), 4096u);
    http::Inflater inflater;
    std::string out;
    const auto ec = inflater.inflate(bomb, out, 65536);
    EXPECT_EQ(ec, http::make_error_code(http::BodyError::inflated_too_large));
    EXPECT_LE(out.size(), 65536u);
    EXPECT_LE(out.capacity(), 2 * 65536u);  // it stopped at the limit instead of inflating it all
    // Exactly at the limit is fine.
    EXPECT_FALSE(inflater.inflate(compress(std::string(65536, 'x')), out, 65536));
    EXPECT_EQ(out.size(), 65536u);
    EXPECT_EQ(inflater.inflate(compress(std::string(65537, 'x')), out, 65536),
              http::make_error_code(http::BodyError::inflated_too_large));
}

TEST(GzipInflater, CorruptOrTruncatedStreamsAreCorrupt) {
    const auto corrupt = http::make_error_code(http::BodyError::corrupt_encoding);
    http::Inflater inflater;
    std::string out;
    const std::string good = compress(quote);
    EXPECT_EQ(inflater.inflate(good.substr(0, good.size() / 2), out, 1024), corrupt);  // truncated
    std::string flipped = good;
    flipped[good.size() / 2] = static_cast<char>(flipped[good.size() / 2] ^ 0x5a);
    EXPECT_EQ(inflater.inflate(flipped, out, 1024), corrupt);  // CRC or data error
    EXPECT_EQ(inflater.inflate(quote, out, 1024), corrupt);     // not compressed at all
    EXPECT_EQ(inflater.inflate(good + "trailing junk", out, 1024), corrupt);
    // And the state is usable again afterwards.
    EXPECT_FALSE(inflater.inflate(good, out, 1024));
    EXPECT_EQ(out, quote);
}

TEST(GzipDecodeBody, DecodesByContentEncodingInPlace) {
    std::string body = compress(quote);
    EXPECT_FALSE(http::decode_body(body, http::ContentEncoding::gzip, 1024));
    EXPECT_EQ(body, quote);
    std::string plain = quote;
    EXPECT_FALSE(http::decode_body(plain, http::ContentEncoding::identity, 8));  // not decoded, not limited here
    EXPECT_EQ(plain, quote);
    std::string br = "\x0b\x02\x80";
    EXPECT_EQ(http::decode_body(br, http::ContentEncoding::other, 1024),
              http::make_error_code(http::BodyError::unsupported_encoding));
    std::string bomb = compress(std::string(100000, '0'));
    EXPECT_EQ(http::decode_body(bomb, http::ContentEncoding::gzip, 65536),
              http::make_error_code(http::BodyError::inflated_too_large));
}

TEST(GzipParser, NotesTheContentEncoding) {
    const auto parse = [](std::string headers) {
        std::string body;
        http::ResponseParser p(body, 1024);
        p.eager(true);
        const std::string bytes = "HTTP/1.1 200 OK\r\n" + headers + "Content-Length: 2\r\n\r\n{}";
        boost::beast::error_code ec;
        p.put(boost::asio::buffer(bytes), ec);
        EXPECT_FALSE(ec) << ec.message();
        return p.content_encoding();
    };
    EXPECT_EQ(parse(""), http::ContentEncoding::identity);
    EXPECT_EQ(parse("Content-Encoding: gzip\r\n"), http::ContentEncoding::gzip);
    EXPECT_EQ(parse("Content-Encoding:  GZIP \r\n"), http::ContentEncoding::gzip);
    EXPECT_EQ(parse("Content-Encoding: x-gzip\r\n"), http::ContentEncoding::gzip);
    EXPECT_EQ(parse("Content-Encoding: deflate\r\n"), http::ContentEncoding::deflate);
    EXPECT_EQ(parse("Content-Encoding: br\r\n"), http::ContentEncoding::other);
    EXPECT_EQ(parse("Content-Encoding: gzip, br\r\n"), http::ContentEncoding::other);
    EXPECT_EQ(parse("Content-Encoding: gzip\r\nContent-Encoding: gzip\r\n"), http::ContentEncoding::other);
}

// ---- headers and IPv6 in the request ----

TEST(RequestHeaders, SourceHeadersFollowHostAndReplaceTheDefaults) {
    const http::RequestOptions options{.header_lines = "accept: text/plain\r\nX-MBX-APIKEY: k3y\r\n",
                                       .accept_gzip = false};
    const std::string req = http::make_get_request("api.example.com", 443, "/q?s=A", options);
    EXPECT_EQ(req.rfind("GET /q?s=A HTTP/1.1\r\nHost: api.example.com:443\r\n", 0), 0u);
    EXPECT_NE(req.find("\r\naccept: text/plain\r\nX-MBX-APIKEY: k3y\r\n"), std::string::npos);
    EXPECT_EQ(req.find("Accept: application/json"), std::string::npos);  // replaced, not doubled
    EXPECT_NE(req.find("\r\nUser-Agent: mdagg/"), std::string::npos);
    EXPECT_TRUE(req.ends_with("\r\nConnection: keep-alive\r\n\r\n"));
    // A name that only starts like a default one does not replace it.
    const std::string other =
        http::make_get_request("h", 80, "/", {.header_lines = "Accept-Language: en\r\n", .accept_gzip = false});
    EXPECT_NE(other.find("Accept: application/json\r\n"), std::string::npos);
}

TEST(RequestHeaders, AnIpv6HostIsBracketed) {
    EXPECT_NE(http::make_get_request("::1", 8081, "/q").find("\r\nHost: [::1]:8081\r\n"), std::string::npos);
    EXPECT_NE(http::make_get_request("2001:db8::1", 80, "/q").find("\r\nHost: [2001:db8::1]\r\n"), std::string::npos);
}

}  // namespace

// The simulator's venue behaviour without sockets: gzip answers and the request log.
#include "http_io.hpp"
#include "venue.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include <string>

namespace {

using namespace mdagg::sim::detail;

std::string gunzip(const std::string& in) {
    z_stream z{};
    EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
    std::string out(1 << 20, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    std::string result;
    int rc = Z_OK;
    while (rc == Z_OK) {
        z.next_out = reinterpret_cast<Bytef*>(out.data());
        z.avail_out = static_cast<uInt>(out.size());
        rc = inflate(&z, Z_NO_FLUSH);
        result.append(out.data(), out.size() - z.avail_out);
    }
    EXPECT_EQ(rc, Z_STREAM_END);
    inflateEnd(&z);
    return result;
}

TEST(SimVenue, AcceptsGzipOnlyWhenTheHeaderOffersIt) {
    EXPECT_TRUE(accepts_gzip("gzip"));
    EXPECT_TRUE(accepts_gzip("deflate, GZIP"));
    EXPECT_TRUE(accepts_gzip("br;q=1.0, gzip;q=0.5"));
    EXPECT_FALSE(accepts_gzip("gzip;q=0"));
    EXPECT_FALSE(accepts_gzip("gzip; q=0.0"));
    EXPECT_FALSE(accepts_gzip("identity"));
    EXPECT_FALSE(accepts_gzip("x-gzip2"));
    EXPECT_FALSE(accepts_gzip(""));
}

TEST(SimVenue, GzipResponseCompressesTheBodyAndReframesTheHead) {
    std::string body(100000, 'x');
    const std::string original = body;
    std::string head;
    frame_response(head, "200 OK", body.size(), true, 11, "X-Extra: 1\r\n");
    std::string scratch;
    gzip_response(head, body, scratch);
    EXPECT_LT(body.size(), original.size() / 50);
    EXPECT_EQ(gunzip(body), original);
    EXPECT_NE(head.find("Content-Length: " + std::to_string(body.size()) + "\r\n"
                        "Content-Encoding: gzip\r\n"),
              std::string::npos)
        << head;
    EXPECT_NE(head.find("X-Extra: 1\r\n\r\n"), std::string::npos) << head;
    EXPECT_EQ(head.find(std::to_string(original.size())), std::string::npos) << head;

    // Again on the same thread: the deflater is reset between responses.
    std::string small = R"({"symbol":"STOCK_1","seq":7})";
    frame_response(head, "200 OK", small.size(), false, 11);
    gzip_response(head, small, scratch);
    EXPECT_EQ(gunzip(small), R"({"symbol":"STOCK_1","seq":7})");
}

TEST(SimVenue, RequestLogKeepsTheLastValueAndACountPerHeaderAndQueryParameter) {
    RequestLog log;
    log.header("X-MBX-APIKEY", "first");
    log.header("x-mbx-apikey", "second \"quoted\"");
    log.header("Host", "[::1]:8081");
    log.query("/quotes/BTCUSDT?symbol=BTCUSDT&apiKey=k1&&flag");
    log.query("/quotes/BTCUSDT?apiKey=k2");
    log.query("/quotes/BTCUSDT");
    std::string out = "{\"x\":1";
    log.append_json(out);
    out += '}';
    const auto j = nlohmann::json::parse(out);
    EXPECT_EQ(j["headers"]["x-mbx-apikey"]["last"], "second \"quoted\"");
    EXPECT_EQ(j["headers"]["x-mbx-apikey"]["count"], 2);
    EXPECT_EQ(j["headers"]["host"]["count"], 1);
    EXPECT_EQ(j["query"]["apiKey"]["last"], "k2");
    EXPECT_EQ(j["query"]["apiKey"]["count"], 2);
    EXPECT_EQ(j["query"]["symbol"]["last"], "BTCUSDT");
    EXPECT_EQ(j["query"]["flag"]["last"], "");
    EXPECT_EQ(j["query"].size(), 3u);
}

}  // namespace

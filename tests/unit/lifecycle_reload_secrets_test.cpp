// A reload that changes only a source's request (a header, a rotated secret, the URL's secret,
// accept_encoding) restarts that source's pollers, so their prebuilt requests carry the new
// value; the same values leave them alone.
#include "reload_plan.hpp"

#include <gtest/gtest.h>

namespace mdagg::lifecycle {
namespace {

SourceConfig source() {
    SourceConfig s;
    s.name = "venue";
    s.url_text = "http://venue/q?s={symbol}&apiKey={env:KEY}";
    s.url.host = "venue";
    s.url.port = 80;
    s.url.target_template = "/q?s={symbol}&apiKey={env:KEY}";
    s.url.secret_target = SecretText("/q?s={symbol}&apiKey=one");
    s.interval = std::chrono::milliseconds(500);
    s.symbols = {"AAA"};
    s.headers.push_back({"X-Token", {SecretRef::From::file, "/run/secrets/token"}, SecretText("one")});
    return s;
}

HostConfig host() {
    HostConfig h;
    h.host = "venue";
    h.port = 80;
    return h;
}

TEST(ReloadSecrets, TheSameSecretsChangeNothing) { EXPECT_FALSE(source_changed(source(), host(), source(), host())); }

TEST(ReloadSecrets, ARotatedHeaderSecretRestartsTheSource) {
    SourceConfig rotated = source();
    rotated.headers[0].resolved = SecretText("two");  // same file, new contents
    EXPECT_TRUE(source_changed(source(), host(), rotated, host()));
}

TEST(ReloadSecrets, ARotatedUrlSecretRestartsTheSource) {
    SourceConfig rotated = source();
    rotated.url.secret_target = SecretText("/q?s={symbol}&apiKey=two");
    EXPECT_TRUE(source_changed(source(), host(), rotated, host()));
}

TEST(ReloadSecrets, AnAddedHeaderOrAcceptEncodingRestartsTheSource) {
    SourceConfig more = source();
    more.headers.push_back({"Accept", {SecretRef::From::literal, "text/plain"}, SecretText("text/plain")});
    EXPECT_TRUE(source_changed(source(), host(), more, host()));
    SourceConfig gzip = source();
    gzip.accept_encoding = AcceptEncoding::gzip;
    EXPECT_TRUE(source_changed(source(), host(), gzip, host()));
}

}  // namespace
}  // namespace mdagg::lifecycle

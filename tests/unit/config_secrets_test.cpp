// sources[].headers, secrets in a URL's query and accept_encoding: how they are read, checked
// and reported. A secret's value never appears in a message.
#include "config_test_helpers.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

namespace mdagg {
namespace {

// Distinctive, so a message that leaks it is caught by a substring search.
constexpr const char* secret = "s3cr3t-VALUE-7f1c";

// Header lines start at line 7 (column 7 for the values of a 4-space indented map).
std::string source_with(std::string_view url, std::string_view extra) {
    return std::string("sources:\n  - name: venue\n    url: \"") + std::string(url) +
           "\"\n    interval: 50ms\n    symbols: [AAPL, MSFT]\n    fields: {bid: /bid, ask: /ask}\n" +
           std::string(extra);
}

class SecretFile {
public:
    explicit SecretFile(const std::string& contents) {
        path_ = (std::filesystem::temp_directory_path() /
                 ("mdagg-secret-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++)))
                    .string();
        write(contents);
    }
    ~SecretFile() { std::filesystem::remove(path_); }
    void write(const std::string& contents) const { std::ofstream(path_, std::ios::binary) << contents; }
    const std::string& path() const { return path_; }

private:
    static inline int counter_ = 0;
    std::string path_;
};

constexpr std::string_view url = "http://127.0.0.1:8081/quotes/{symbol}";

TEST(Headers, LiteralEnvAndFileValuesAreReadInOrder) {
    EnvVar env("MDAGG_TEST_HDR_KEY", secret);
    SecretFile file(std::string(secret) + "-file\n");
    const Config c = parse_config(source_with(url, "    headers:\n"
                                                   "      Accept: application/json\n"
                                                   "      X-MBX-APIKEY: { env: MDAGG_TEST_HDR_KEY }\n"
                                                   "      X-Token: { file: " + file.path() + " }\n"),
                                  "t.yaml");
    const auto& h = c.sources[0].headers;
    ASSERT_EQ(h.size(), 3u);
    EXPECT_EQ(h[0].name, "Accept");
    EXPECT_EQ(h[0].resolved.reveal(), "application/json");
    EXPECT_EQ(h[1].name, "X-MBX-APIKEY");
    EXPECT_EQ(h[1].value.from, SecretRef::From::env);
    EXPECT_EQ(h[1].value.text, "MDAGG_TEST_HDR_KEY");
    EXPECT_EQ(h[1].resolved.reveal(), secret);
    EXPECT_EQ(h[2].value.from, SecretRef::From::file);
    EXPECT_EQ(h[2].resolved.reveal(), std::string(secret) + "-file");  // one trailing newline cut
}

TEST(Headers, MissingVariableNamesTheHeaderAndTheVariable) {
    ::unsetenv("MDAGG_TEST_HDR_UNSET");
    EXPECT_EQ(error_of(source_with(url, "    headers:\n      X-MBX-APIKEY: { env: MDAGG_TEST_HDR_UNSET }\n")),
              "t.yaml:8:21: sources[0].headers.X-MBX-APIKEY: environment variable MDAGG_TEST_HDR_UNSET is not set");
}

TEST(Headers, UnreadableFileNamesTheHeaderAndThePath) {
    const std::string missing = "/nonexistent/mdagg-test-token";
    EXPECT_EQ(error_of(source_with(url, "    headers:\n      X-Token: { file: " + missing + " }\n")),
              "t.yaml:8:16: sources[0].headers.X-Token: file \"" + missing +
                  "\": cannot read: No such file or directory");
}

TEST(Headers, BadSecretValuesAreDescribedNeverShown) {
    EnvVar crlf("MDAGG_TEST_HDR_CRLF", (std::string(secret) + "\r\nX-Evil: 1").c_str());
    const std::string e1 = error_of(source_with(url, "    headers:\n      X-Key: { env: MDAGG_TEST_HDR_CRLF }\n"));
    EXPECT_EQ(e1, "t.yaml:8:14: sources[0].headers.X-Key: the value read from environment variable "
                  "MDAGG_TEST_HDR_CRLF contains a control character (CR, LF or another); value not shown");
    EXPECT_EQ(e1.find(secret), std::string::npos);

    EnvVar empty("MDAGG_TEST_HDR_EMPTY", "");
    EXPECT_EQ(error_of(source_with(url, "    headers:\n      X-Key: { env: MDAGG_TEST_HDR_EMPTY }\n")),
              "t.yaml:8:14: sources[0].headers.X-Key: environment variable MDAGG_TEST_HDR_EMPTY is empty");

    SecretFile padded(std::string(" ") + secret + "\n");
    const std::string e2 = error_of(source_with(url, "    headers:\n      X-Key: { file: " + padded.path() + " }\n"));
    EXPECT_NE(e2.find("starts or ends with white space; value not shown"), std::string::npos) << e2;
    EXPECT_EQ(e2.find(secret), std::string::npos);
}

TEST(Headers, NamesAreTokensOnceEachAndNotTheDaemonsOwn) {
    EXPECT_EQ(error_of(source_with(url, "    headers:\n      \"X Key\": v\n")),
              "t.yaml:8:7: sources[0].headers.X Key: invalid character ' ' in a header name");
    EXPECT_EQ(error_of(source_with(url, "    headers:\n      \"X:Key\": v\n")),
              "t.yaml:8:7: sources[0].headers.X:Key: invalid character ':' in a header name");
    EXPECT_EQ(error_of(source_with(url, "    headers:\n      X-Key: a\n      x-key: b\n")),
              "t.yaml:9:7: sources[0].headers.x-key: duplicate header \"x-key\" (header names ignore case)");
    EXPECT_EQ(error_of(source_with(url, "    headers:\n      host: example.com\n")),
              "t.yaml:8:7: sources[0].headers.host: the Host header cannot be set: written from the url");
    EXPECT_EQ(error_of(source_with(url, "    headers:\n      Content-Length: 0\n")),
              "t.yaml:8:7: sources[0].headers.Content-Length: the Content-Length header cannot be set: a GET has "
              "no body");
    EXPECT_EQ(error_of(source_with(url, "    headers:\n      Accept-Encoding: br\n")),
              "t.yaml:8:7: sources[0].headers.Accept-Encoding: the Accept-Encoding header cannot be set: set "
              "accept_encoding: gzip instead; other encodings cannot be read");
    EXPECT_EQ(error_of(source_with(url, "    headers:\n      X-Key: \"a\\nb\"\n")),
              "t.yaml:8:14: sources[0].headers.X-Key: invalid character byte 0x0A in a header value");
    EXPECT_EQ(error_of(source_with(url, "    headers:\n      X-Key: { env: A, file: B }\n")),
              "t.yaml:8:14: sources[0].headers.X-Key: expected exactly one of { env: NAME } or { file: PATH }");
    EXPECT_EQ(error_of(source_with(url, "    headers: [a]\n")),
              "t.yaml:7:14: sources[0].headers: expected a mapping of header names to values, got a list");
}

TEST(UrlSecrets, EnvAndFileInTheQueryAreFilledInPercentEncodedAndNeverInTheTemplate) {
    EnvVar env("MDAGG_TEST_URL_KEY", "k/y+1");
    SecretFile file("tok\n");
    const Config c = parse_config(
        source_with("http://h:8081/q/{symbol}?apiKey={env:MDAGG_TEST_URL_KEY}&t={file:" + file.path() + "}", ""),
        "t.yaml");
    const Url& u = c.sources[0].url;
    EXPECT_EQ(u.target_template, "/q/{symbol}?apiKey={env:MDAGG_TEST_URL_KEY}&t={file:" + file.path() + "}");
    EXPECT_EQ(c.sources[0].url_text.find("k/y"), std::string::npos);
    EXPECT_EQ(u.secret_target.reveal(), "/q/{symbol}?apiKey=k%2Fy%2B1&t=tok");
    EXPECT_EQ(u.target_for("BRK/B"), "/q/BRK%2FB?apiKey=k%2Fy%2B1&t=tok");
}

TEST(UrlSecrets, MissingVariableIsAnErrorAtTheUrl) {
    ::unsetenv("MDAGG_TEST_URL_UNSET");
    EXPECT_EQ(error_of(source_with("http://h/q/{symbol}?apiKey={env:MDAGG_TEST_URL_UNSET}", "")),
              "t.yaml:3:10: sources[0].url: environment variable MDAGG_TEST_URL_UNSET is not set");
    EXPECT_EQ(error_of(source_with("http://h/q/{symbol}?apiKey={env:BAD-NAME}", "")),
              "t.yaml:3:10: sources[0].url: unknown placeholder \"{env:BAD-NAME}\"; only {symbol}, {symbols}, {env:NAME} and "
              "{file:PATH} are supported");
}

TEST(UrlSecrets, AUrlWithoutSecretsHasNoSecretTarget) {
    const Config c = parse_config(source_with(url, ""), "t.yaml");
    EXPECT_TRUE(c.sources[0].url.secret_target.empty());
    EXPECT_EQ(c.sources[0].url.target_for("AAPL"), "/quotes/AAPL");
}

TEST(AcceptEncoding, GzipOrIdentity) {
    EXPECT_EQ(parse_config(source_with(url, ""), "t.yaml").sources[0].accept_encoding, AcceptEncoding::identity);
    EXPECT_EQ(parse_config(source_with(url, "    accept_encoding: gzip\n"), "t.yaml").sources[0].accept_encoding,
              AcceptEncoding::gzip);
    const std::string error = error_of(source_with(url, "    accept_encoding: br\n"));
    EXPECT_EQ(error.rfind("t.yaml:7:22: sources[0].accept_encoding: ", 0), 0u) << error;
}

// A rotated secret is a new value: the reload compares it, so the source's pollers restart
// with it.
TEST(Headers, ARotatedFileSecretChangesTheSource) {
    SecretFile file("one\n");
    const std::string yaml = source_with(url, "    headers:\n      X-Token: { file: " + file.path() + " }\n");
    const Config before = parse_config(yaml, "t.yaml");
    file.write("two\n");
    const Config after = parse_config(yaml, "t.yaml");
    EXPECT_EQ(after.sources[0].headers[0].resolved.reveal(), "two");
    EXPECT_FALSE(before.sources[0] == after.sources[0]);
    EXPECT_TRUE(after.sources[0] == parse_config(yaml, "t.yaml").sources[0]);  // unchanged: equal
}

// ---- IPv6 ----------------------------------------------------------------------------------

TEST(Ipv6Url, BracketedLiteralsParseWithAndWithoutPort) {
    const Config a = parse_config(source_with("http://[::1]:8081/q/{symbol}", ""), "t.yaml");
    EXPECT_EQ(a.sources[0].url.host, "::1");
    EXPECT_EQ(a.sources[0].url.port, 8081);
    const Config b = parse_config(source_with("http://[2001:db8::1]/q/{symbol}", ""), "t.yaml");
    EXPECT_EQ(b.sources[0].url.host, "2001:db8::1");
    EXPECT_EQ(b.sources[0].url.port, 80);
    EXPECT_EQ(b.sources[0].url.target_template, "/q/{symbol}");
}

TEST(Ipv6Url, MalformedLiteralsAreRefused) {
    const std::string at = "t.yaml:3:10: sources[0].url: ";
    EXPECT_EQ(error_of(source_with("http://[::1/q/{symbol}", "")), at + "missing ']' after the IPv6 address");
    EXPECT_EQ(error_of(source_with("http://[::g]:80/q/{symbol}", "")), at + "\"::g\" is not an IPv6 address");
    EXPECT_EQ(error_of(source_with("http://[fe80::1%25eth0]/q/{symbol}", "")),
              at + "IPv6 zone ids (\"%...\") are not supported");
    EXPECT_EQ(error_of(source_with("http://[::1]x/q/{symbol}", "")),
              at + "expected ':PORT' or nothing after the IPv6 address's ']'");
    EXPECT_EQ(error_of(source_with("http://[::1]:0/q/{symbol}", "")),
              at + "invalid port \"0\"; expected a number from 1 to 65535");
    EXPECT_EQ(error_of(source_with("http://::1:8081/q/{symbol}", "")),
              at + "an IPv6 address needs brackets: http://[::1]:PORT/...");
}

TEST(Ipv6Url, AHostsEntryMatchesTheBracketedSpelling) {
    const std::string hosts = "hosts:\n  - host: \"[::1]\"\n    rate: 10\n";
    const Config c = parse_config(source_with("http://[::1]:8081/q/{symbol}", hosts), "t.yaml");
    ASSERT_EQ(c.hosts.size(), 1u);
    EXPECT_EQ(c.hosts[0].host, "::1");
    EXPECT_EQ(c.hosts[0].port, 0);  // no port: every port of the host
    EXPECT_EQ(c.sources[0].host, 0u);
    const Config d = parse_config(
        source_with("http://[::1]:8081/q/{symbol}", "hosts:\n  - host: \"[::1]:8081\"\n    rate: 10\n"), "t.yaml");
    EXPECT_EQ(d.hosts[0].port, 8081);
}

}  // namespace
}  // namespace mdagg

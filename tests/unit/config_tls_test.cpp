// https:// URLs and a source's `tls:` block: defaults, values, and the errors (file:line:col,
// the key's path) for bad values and for files OpenSSL cannot use.
#include "config_test_helpers.hpp"
#include "tls_test_pki.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

namespace mdagg {
namespace {

// The tls block's lines start at line 7, its keys at column 7 and values after them.
std::string source(const std::string& url, const std::string& tls_lines = "") {
    return "sources:\n"
           "  - name: venue\n"
           "    url: \"" + url + "\"\n"
           "    interval: 50ms\n"
           "    symbols: [AAPL]\n"
           "    fields: {bid: /bid, ask: /ask}\n" +
           (tls_lines.empty() ? std::string() : "    tls:\n" + tls_lines);
}

class ConfigTls : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = std::filesystem::temp_directory_path() / ("mdagg-config-tls-" + std::to_string(::getpid()));
        pki_ = new test::TestPki(dir_);
        std::ofstream(dir_ / "not-pem.txt") << "hello\n";
    }
    static void TearDownTestSuite() {
        delete pki_;
        std::filesystem::remove_all(dir_);
    }
    static inline std::filesystem::path dir_;
    static inline test::TestPki* pki_ = nullptr;
};

TEST_F(ConfigTls, HttpsUrlIsAcceptedWithPort443AndVerifyingDefaults) {
    const Config c = parse(source("https://api.example.com/q/{symbol}"));
    const SourceConfig& s = c.sources.at(0);
    EXPECT_TRUE(s.uses_tls());
    EXPECT_EQ(s.url.scheme, "https");
    EXPECT_EQ(s.url.port, 443);
    EXPECT_EQ(c.hosts.at(s.host).port, 443);
    EXPECT_TRUE(s.tls.verify);
    EXPECT_EQ(s.tls.min_version, TlsVersion::tls1_2);
    EXPECT_TRUE(s.tls.ca_file.empty());
    EXPECT_EQ(s.tls_server_name(), "api.example.com");
}

TEST_F(ConfigTls, HttpUrlDoesNotUseTlsAndKeepsPort80) {
    const Config c = parse(source("http://api.example.com/q/{symbol}"));
    EXPECT_FALSE(c.sources.at(0).uses_tls());
    EXPECT_EQ(c.sources.at(0).url.port, 80);
}

TEST_F(ConfigTls, EveryKeyIsRead) {
    const std::string yaml = source("https://127.0.0.1:8443/q/{symbol}",
                                    "      verify: false\n"
                                    "      ca_file: " + pki_->ca.cert_file + "\n"
                                    "      server_name: localhost\n"
                                    "      client_cert: " + pki_->server.cert_file + "\n"
                                    "      client_key: " + pki_->server.key_file + "\n"
                                    "      min_version: \"1.3\"\n");
    const SourceConfig s = parse(yaml).sources.at(0);
    EXPECT_EQ(s.url.port, 8443);
    EXPECT_FALSE(s.tls.verify);
    EXPECT_EQ(s.tls.ca_file, pki_->ca.cert_file);
    EXPECT_EQ(s.tls_server_name(), "localhost");
    EXPECT_EQ(s.tls.client_cert, pki_->server.cert_file);
    EXPECT_EQ(s.tls.client_key, pki_->server.key_file);
    EXPECT_EQ(s.tls.min_version, TlsVersion::tls1_3);
}

TEST_F(ConfigTls, UnquotedVersionNumberIsAccepted) {
    const SourceConfig s = parse(source("https://h/{symbol}", "      min_version: 1.2\n")).sources.at(0);
    EXPECT_EQ(s.tls.min_version, TlsVersion::tls1_2);
}

TEST_F(ConfigTls, BadValuesNameFileLineColumnAndKey) {
    EXPECT_EQ(error_of(source("https://h/{symbol}", "      min_version: \"1.1\"\n")).rfind(
                  "t.yaml:8:20: sources[0].tls.min_version: ", 0),
              0u);
    EXPECT_EQ(error_of(source("https://h/{symbol}", "      verify: maybe\n")).rfind("t.yaml:8:15: sources[0].tls.verify: ", 0),
              0u);
    EXPECT_EQ(error_of(source("https://h/{symbol}", "      server_name: \"a b\"\n")),
              "t.yaml:8:20: sources[0].tls.server_name: invalid character ' ' in a server name; expected a DNS name "
              "or IP address");
    EXPECT_NE(error_of(source("https://h/{symbol}", "      verfy: true\n")).find("sources[0].tls.verfy"),
              std::string::npos);
}

TEST_F(ConfigTls, BlockOnPlainHttpUrlIsRefused) {
    EXPECT_EQ(error_of(source("http://h/{symbol}", "      verify: true\n")), "t.yaml:8:7: sources[0].tls: needs an https:// url");
}

TEST_F(ConfigTls, UnreadableCaFileIsAConfigErrorAtItsKey) {
    const std::string missing = (dir_ / "nope.crt").string();
    EXPECT_EQ(error_of(source("https://h/{symbol}", "      ca_file: " + missing + "\n")),
              "t.yaml:8:16: sources[0].tls.ca_file: cannot read \"" + missing + "\": No such file or directory");
}

TEST_F(ConfigTls, CaFileWithoutCertificatesIsRefused) {
    const std::string text = (dir_ / "not-pem.txt").string();
    const std::string err = error_of(source("https://h/{symbol}", "      ca_file: " + text + "\n"));
    EXPECT_EQ(err.rfind("t.yaml:8:16: sources[0].tls.ca_file: no CA certificate in \"" + text + "\": ", 0), 0u) << err;
}

TEST_F(ConfigTls, ClientCertNeedsClientKey) {
    const std::string err = error_of(source("https://h/{symbol}", "      client_cert: " + pki_->server.cert_file + "\n"));
    EXPECT_EQ(err, "t.yaml:8:7: sources[0].tls.client_key: client_cert and client_key go together (mutual TLS)");
    const std::string err2 = error_of(source("https://h/{symbol}", "      client_key: " + pki_->server.key_file + "\n"));
    EXPECT_EQ(err2, "t.yaml:8:7: sources[0].tls.client_cert: client_cert and client_key go together (mutual TLS)");
}

TEST_F(ConfigTls, KeyOfAnotherCertificateIsRefusedWithoutShowingIt) {
    std::string key_text;
    {
        std::ifstream in(pki_->ca.key_file);
        key_text.assign(std::istreambuf_iterator<char>(in), {});
    }
    const std::string err = error_of(source("https://h/{symbol}",
                                            "      client_cert: " + pki_->server.cert_file + "\n"
                                            "      client_key: " + pki_->ca.key_file + "\n"));
    EXPECT_EQ(err.rfind("t.yaml:9:19: sources[0].tls.client_key: does not match the certificate in client_cert", 0), 0u)
        << err;
    EXPECT_EQ(err.find("PRIVATE KEY"), std::string::npos);
    EXPECT_EQ(err.find(key_text.substr(40, 20)), std::string::npos);
}

TEST_F(ConfigTls, KeyFileThatIsNotAKeyIsRefused) {
    const std::string err = error_of(source("https://h/{symbol}",
                                            "      client_cert: " + pki_->server.cert_file + "\n"
                                            "      client_key: " + pki_->server.cert_file + "\n"));
    EXPECT_EQ(err.rfind("t.yaml:9:19: sources[0].tls.client_key: no private key in ", 0), 0u) << err;
}

TEST_F(ConfigTls, SchemaListsTheTlsKeysAndEachHasAReloadRule) {
    const auto keys = config_schema_keys();
    for (const char* k : {"sources[].tls.verify", "sources[].tls.ca_file", "sources[].tls.server_name",
                          "sources[].tls.client_cert", "sources[].tls.client_key", "sources[].tls.min_version"}) {
        EXPECT_NE(std::find(keys.begin(), keys.end(), k), keys.end()) << k;
        const auto& rules = reload_rules();
        EXPECT_TRUE(std::any_of(rules.begin(), rules.end(), [&](const ReloadRule& r) { return r.key == k; })) << k;
    }
}

TEST_F(ConfigTls, ChangedTlsBlockChangesTheSource) {
    // A source that differs restarts its pollers on SIGHUP: the new ones get a new SSL context.
    const Config a = parse(source("https://h/{symbol}"));
    const Config b = parse(source("https://h/{symbol}", "      min_version: \"1.3\"\n"));
    EXPECT_FALSE(a.sources.at(0) == b.sources.at(0));
    EXPECT_TRUE(a.sources.at(0) == parse(source("https://h/{symbol}")).sources.at(0));
}

}  // namespace
}  // namespace mdagg

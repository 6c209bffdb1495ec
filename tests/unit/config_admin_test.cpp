// The admin section and its token file.
#include "config_test_helpers.hpp"

namespace mdagg {
namespace {

TEST(ConfigAdmin, AbsentSectionMeansOff) {
    const Config c = parse(minimal);
    EXPECT_FALSE(c.admin.enabled);
    EXPECT_EQ(c.admin.stall_after, 60s);  // the stall detector logs even without the server
}

TEST(ConfigAdmin, EmptySectionTurnsItOnWithDefaults) {
    const Config c = parse(append("admin: {}\n"));
    EXPECT_TRUE(c.admin.enabled);
    EXPECT_EQ(c.admin.host, "127.0.0.1");
    EXPECT_EQ(c.admin.port, 9100);
    EXPECT_EQ(c.admin.token_env, "");
}

TEST(ConfigAdmin, EveryKey) {
    const Config c = parse(append(
        "admin:\n  listen: \"[::1]:0\"\n  token_env: MDAGG_ADMIN_TOKEN\n  stall_after: 1500ms\n"));
    EXPECT_EQ(c.admin.host, "::1");
    EXPECT_EQ(c.admin.port, 0);
    EXPECT_EQ(c.admin.token_env, "MDAGG_ADMIN_TOKEN");
    EXPECT_EQ(c.admin.stall_after, 1500ms);
    EXPECT_EQ(parse(append("admin:\n  listen: 0.0.0.0:65535\n")).admin.port, 65535);
}

TEST(ConfigAdmin, SymbolMetricsGlobs) {
    EXPECT_TRUE(parse(append("admin: {}\n")).admin.symbol_metrics.empty());
    EXPECT_EQ(parse(append("admin: { symbol_metrics: [\"BTC*\", AAPL, \"?\"] }\n")).admin.symbol_metrics,
              (std::vector<std::string>{"BTC*", "AAPL", "?"}));
    EXPECT_EQ(error_of(append("admin: { symbol_metrics: [\"\"] }\n")),
              "t.yaml:7:27: admin.symbol_metrics[0]: must not be empty");
    EXPECT_EQ(error_of(append("admin: { symbol_metrics: AAPL }\n")),
              "t.yaml:7:26: admin.symbol_metrics: expected a list, got \"AAPL\"");
}

TEST(ConfigAdmin, Errors) {
    EXPECT_EQ(error_of(append("admin:\n  listen: localhost:9100\n")),
              "t.yaml:8:11: admin.listen: \"localhost\" is not an IPv4 address (host names are not "
              "looked up here)");
    EXPECT_EQ(error_of(append("admin:\n  listen: 127.0.0.1\n")),
              "t.yaml:8:11: admin.listen: expected HOST:PORT like \"127.0.0.1:9100\" or \"[::1]:9100\"");
    EXPECT_EQ(error_of(append("admin:\n  listen: 127.0.0.1:70000\n")),
              "t.yaml:8:11: admin.listen: port must be a number between 0 and 65535");
    EXPECT_EQ(error_of(append("admin:\n  listen: \"::1:9100\"\n")),
              "t.yaml:8:11: admin.listen: an IPv6 address needs brackets: [::1]:PORT");
    EXPECT_EQ(error_of(append("admin:\n  token_env: MY-TOKEN\n")),
              "t.yaml:8:14: admin.token_env: invalid character '-' in an environment variable name");
    EXPECT_EQ(error_of(append("admin:\n  stall_after: 0s\n")),
              "t.yaml:8:16: admin.stall_after: must be greater than 0");
    EXPECT_EQ(error_of(append("admin:\n  listn: 127.0.0.1:1\n")),
              "t.yaml:8:3: admin.listn: unknown key, did you mean \"listen\"?");
}

TEST(ConfigAdmin, AllowUnauthenticated) {
    EXPECT_FALSE(parse(append("admin: {}\n")).admin.allow_unauthenticated);
    EXPECT_TRUE(parse(append("admin: { listen: \"0.0.0.0:9100\", allow_unauthenticated: true }\n"))
                    .admin.allow_unauthenticated);
    EXPECT_FALSE(parse(append("admin: { allow_unauthenticated: false }\n")).admin.allow_unauthenticated);
    EXPECT_EQ(error_of(append("admin: { allow_unauthenticated: yes }\n")).rfind("t.yaml:7:33: admin.allow_unauthenticated: ", 0), 0u)
        << error_of(append("admin: { allow_unauthenticated: yes }\n"));
    EXPECT_EQ(error_of(append("admin: { allow_unauthenticated: \"true\" }\n")).rfind("t.yaml:7:33: admin.allow_unauthenticated: ", 0), 0u);
}

Config with_token_file(const std::filesystem::path& path) {
    return parse(append("admin: { token_file: \"" + path.string() + "\" }\n"));
}

TEST(ConfigAdmin, TokenFileIsReadWithOneTrailingNewlineCut) {
    TempFile t;
    EXPECT_EQ(admin_token(with_token_file(t.write("a", "s3cret\n"))), "s3cret");
    EXPECT_EQ(admin_token(with_token_file(t.write("b", "s3cret\r\n"))), "s3cret");
    EXPECT_EQ(admin_token(with_token_file(t.write("c", "s3cret"))), "s3cret");
    EXPECT_EQ(admin_token(with_token_file(t.write("d", ""))), "");
    EXPECT_FALSE(admin_token_configured(with_token_file(t.dir / "d")));
    EXPECT_TRUE(admin_token_configured(with_token_file(t.dir / "a")));
}

TEST(ConfigAdmin, UnreadableTokenFileNamesThePathNeverTheContents) {
    TempFile t;
    const auto missing = t.dir / "missing";
    try {
        admin_token(with_token_file(missing));
        ADD_FAILURE() << "no error";
    } catch (const ConfigError& e) {
        EXPECT_EQ(std::string(e.what()),
                  "admin.token_file \"" + missing.string() + "\": cannot read: No such file or directory");
    }
    const auto huge = t.write("huge", std::string(70'000, 'S'));
    try {
        admin_token(with_token_file(huge));
        ADD_FAILURE() << "no error";
    } catch (const ConfigError& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find(huge.string()), std::string::npos) << message;
        EXPECT_EQ(message.find("SSSS"), std::string::npos) << message;
    }
    EXPECT_THROW(admin_token(with_token_file(t.dir)), ConfigError);  // a directory
}

TEST(ConfigAdmin, TokenEnvAndTokenFileExcludeEachOther) {
    EXPECT_EQ(error_of(append("admin:\n  token_env: T\n  token_file: /t\n")),
              "t.yaml:9:15: admin.token_file: set either admin.token_env or admin.token_file, not both");
    EXPECT_EQ(error_of(append("admin:\n  token_file: /t\n  token_env: T\n")),
              "t.yaml:9:14: admin.token_env: set either admin.token_env or admin.token_file, not both");
    EXPECT_EQ(error_of(append("admin:\n  token_file: \"\"\n")), "t.yaml:8:15: admin.token_file: must not be empty");
}

TEST(ConfigAdmin, TokenFromTheEnvironmentVariable) {
    ::setenv("MDAGG_CONFIG_TEST_TOKEN", "from-env", 1);
    EXPECT_EQ(admin_token(parse(append("admin: { token_env: MDAGG_CONFIG_TEST_TOKEN }\n"))), "from-env");
    ::unsetenv("MDAGG_CONFIG_TEST_TOKEN");
    EXPECT_EQ(admin_token(parse(append("admin: { token_env: MDAGG_CONFIG_TEST_TOKEN }\n"))), "");
    EXPECT_EQ(admin_token(parse(append("admin: {}\n"))), "");
}

// A Kubernetes Secret volume: token -> ..data/token, ..data -> ..<timestamp>; an update writes
// a new timestamped directory and swaps ..data.
TEST(ConfigAdmin, FileStampSeesASecretSymlinkSwapAndAnEditInPlace) {
    TempFile t;
    namespace fs = std::filesystem;
    fs::create_directories(t.dir / "..v1");
    std::ofstream(t.dir / "..v1" / "token") << "one\n";
    fs::create_directory_symlink("..v1", t.dir / "..data");
    fs::create_symlink("..data/token", t.dir / "token");
    const std::string path = (t.dir / "token").string();
    const auto first = file_stamp(path);
    ASSERT_TRUE(first);
    EXPECT_EQ(file_stamp(path), first);
    EXPECT_EQ(admin_token(with_token_file(path)), "one");

    fs::create_directories(t.dir / "..v2");
    std::ofstream(t.dir / "..v2" / "token") << "two\n";
    fs::create_directory_symlink("..v2", t.dir / "..data_tmp");
    fs::rename(t.dir / "..data_tmp", t.dir / "..data");  // atomic, as the kubelet does
    fs::remove_all(t.dir / "..v1");
    const auto second = file_stamp(path);
    ASSERT_TRUE(second);
    EXPECT_NE(second, first);
    EXPECT_EQ(admin_token(with_token_file(path)), "two");

    std::ofstream(t.dir / "..v2" / "token") << "three, longer\n";  // in place: size and mtime
    EXPECT_NE(file_stamp(path), second);
    fs::remove(t.dir / "..v2" / "token");
    EXPECT_FALSE(file_stamp(path));
}

}  // namespace
}  // namespace mdagg

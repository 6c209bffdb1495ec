// Secrets in request headers and the URL's query, end to end: the real daemon polls the real
// simulator with them, and their text appears in none of its outputs (logs, stderr,
// --check-config, /metrics, /debug/tasks, /healthz, /readyz, every file it writes).
#include "harness.hpp"
#include "output_checks.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <unistd.h>

using namespace std::chrono_literals;
using harness::DaemonConfig;
using harness::Process;
using harness::TempDir;

namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_file(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

// Everything the daemon wrote under `dir`: output segments, state files, anything else.
std::string every_file_under(const fs::path& dir) {
    std::string all;
    if (!fs::exists(dir)) return all;
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.is_regular_file()) all += "\n== " + e.path().string() + "\n" + read_file(e.path());
    return all;
}

// Distinctive texts, made of URL-unreserved characters so the query holds them as they are.
std::string secret_text(const std::string& what) {
    return "mdagg-" + what + "-" + std::to_string(::getpid()) + "-Qx7Zk";
}

struct Env {
    Env(std::string name, const std::string& value) : name_(std::move(name)) {
        ::setenv(name_.c_str(), value.c_str(), 1);
    }
    ~Env() { ::unsetenv(name_.c_str()); }
    std::string name_;
};

// The daemon's config: headers from an environment variable and a file, the variable again
// in the query, an ops server to scrape.
fs::path write_secret_config(const TempDir& dir, int sim_port, const fs::path& token_file) {
    DaemonConfig c;
    c.port = sim_port;
    c.symbols = 20;
    c.source_extra = "    headers:\n"
                     "      X-Api-Key: { env: MDAGG_IT_API_KEY }\n"
                     "      X-Token: { file: " + token_file.string() + " }\n";
    c.extra = "admin: { listen: \"127.0.0.1:0\", symbol_metrics: [\"STOCK_1\"] }\n";
    const fs::path path = harness::write_config(dir.path(), c);
    std::string yaml = read_file(path);
    const std::string url_end = "/quotes/{symbol}\"";
    yaml.replace(yaml.find(url_end), url_end.size(), "/quotes/{symbol}?apiKey={env:MDAGG_IT_API_KEY}\"");
    write_file(path, yaml);
    return path;
}

}  // namespace

TEST(Secrets, NeverShownAnywhereWhileUsedOnEveryRequest) {
    TempDir dir;
    const std::string api_key = secret_text("apikey");
    const std::string token = secret_text("token");
    const std::string rotated = secret_text("rotated");
    Env env("MDAGG_IT_API_KEY", api_key);
    const fs::path token_file = dir / "token";
    write_file(token_file, token + "\n");

    auto sim = harness::start_sim(dir.path(), {"--symbols", "20", "--control", "127.0.0.1:0", "--record-headers"});
    const fs::path config = write_secret_config(dir, sim.port, token_file);
    std::string shown;  // every output, to grep at the end

    Process check("check", {MDAGG_BIN, "--check-config", config.string()}, dir.path());
    EXPECT_EQ(check.wait(20s), 0) << check.stderr_text();
    shown += check.stdout_text() + check.stderr_text();

    Process daemon("mdagg", {MDAGG_BIN, "--config", config.string()}, dir.path());
    const auto listening = daemon.wait_for_line("msg", "admin listening", 15s);
    ASSERT_TRUE(listening) << daemon.stdout_text();
    const int admin = (*listening)["port"].get<int>();

    // Failures too, so the error lines (with their details) are part of what is searched.
    harness::sim_add_fault(sim.control_port, {{"kind", "status"}, {"status", 503}, {"symbols", {"STOCK_2"}}});
    harness::sim_add_fault(sim.control_port, {{"kind", "reset"}, {"symbols", {"STOCK_3"}}});
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (harness::sim_stats(sim.control_port)["responses"].get<int>() < 100 &&
           std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(100ms);
    ASSERT_GE(harness::sim_stats(sim.control_port)["responses"].get<int>(), 100) << daemon.stdout_text();

    // What the simulator received (its /stats is not the daemon's output): every request
    // carried the headers and the query parameter with the secrets' values.
    const auto seen = harness::sim_stats(sim.control_port);
    EXPECT_EQ(seen["headers"]["x-api-key"]["last"], api_key) << seen.dump();
    EXPECT_EQ(seen["headers"]["x-token"]["last"], token) << seen.dump();
    EXPECT_EQ(seen["query"]["apiKey"]["last"], api_key) << seen.dump();
    EXPECT_GE(seen["headers"]["x-api-key"]["count"].get<int>(), seen["responses"].get<int>());

    // A rotated file secret takes effect on SIGHUP: the source's pollers restart with it.
    write_file(token_file, rotated + "\n");
    daemon.signal(SIGHUP);
    const auto reloaded = daemon.wait_for_line("msg", "config reloaded", 15s);
    ASSERT_TRUE(reloaded) << daemon.stdout_text();
    EXPECT_EQ((*reloaded)["pollers_restarted"].get<int>(), 20) << reloaded->dump();
    const auto rotated_deadline = std::chrono::steady_clock::now() + 15s;
    while (harness::sim_stats(sim.control_port)["headers"]["x-token"]["last"] != rotated &&
           std::chrono::steady_clock::now() < rotated_deadline)
        std::this_thread::sleep_for(100ms);
    EXPECT_EQ(harness::sim_stats(sim.control_port)["headers"]["x-token"]["last"], rotated);

    for (const char* target : {"/metrics", "/debug/tasks", "/healthz", "/readyz"}) {
        const auto r = harness::http_request(admin, "GET", target);
        EXPECT_NE(r.status, 0) << target;
        shown += "\n== " + std::string(target) + "\n" + r.body;
    }
    daemon.signal(SIGTERM);
    EXPECT_EQ(daemon.wait(15s), 0) << daemon.stdout_text();
    shown += daemon.stdout_text() + daemon.stderr_text() + every_file_under(dir / "out");

    const auto out = harness::check_output(dir);
    EXPECT_GT(out.quotes, 0u);
    EXPECT_NE(shown.find("poll failed"), std::string::npos) << "the faults should have been logged";
    for (const std::string& secret : {api_key, token, rotated}) {
        const auto at = shown.find(secret);
        EXPECT_EQ(at, std::string::npos) << "a secret is shown: ..."
                                         << shown.substr(at == std::string::npos ? 0 : at > 200 ? at - 200 : 0, 400);
    }
}

// A secret that cannot be read stops the start (exit 2) with a message naming the header and
// the variable or the path; a bad value is described, never shown.
TEST(Secrets, MissingOrBadSecretsExitTwoNamingTheKeyNotTheValue) {
    TempDir dir;
    const fs::path token_file = dir / "token";
    write_file(token_file, "fine\n");
    ::unsetenv("MDAGG_IT_API_KEY");
    const fs::path config = write_secret_config(dir, 1, token_file);
    for (const bool check_only : {true, false}) {
        Process p("unset", {MDAGG_BIN, check_only ? "--check-config" : "--config", config.string()}, dir.path());
        EXPECT_EQ(p.wait(20s), 2);
        EXPECT_NE(p.stderr_text().find("environment variable MDAGG_IT_API_KEY is not set"), std::string::npos)
            << p.stderr_text();
    }
    EXPECT_FALSE(fs::exists(dir / "out")) << "nothing may start";

    const std::string value = secret_text("crlf");
    Env env("MDAGG_IT_API_KEY", "ok");
    write_file(token_file, value + "\r\nX-Injected: 1\n");
    Process bad("bad", {MDAGG_BIN, "--check-config", config.string()}, dir.path());
    EXPECT_EQ(bad.wait(20s), 2);
    const std::string err = bad.stdout_text() + bad.stderr_text();
    EXPECT_NE(err.find("sources[0].headers.X-Token: the value read from file \"" + token_file.string() +
                       "\" contains a control character"),
              std::string::npos)
        << err;
    EXPECT_EQ(err.find(value), std::string::npos) << err;

    fs::remove(token_file);
    Process missing("missing", {MDAGG_BIN, "--check-config", config.string()}, dir.path());
    EXPECT_EQ(missing.wait(20s), 2);
    EXPECT_NE(missing.stderr_text().find("sources[0].headers.X-Token: file \"" + token_file.string() +
                                         "\": cannot read: No such file or directory"),
              std::string::npos)
        << missing.stderr_text();
}

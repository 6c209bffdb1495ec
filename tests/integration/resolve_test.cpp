// Host names that resolve to IPv6, end to end with the real processes (issue 13: "names
// resolving to AAAA addresses work; addresses are tried in the order the resolver gives them"),
// over plain HTTP and over TLS with the name verified.
//
// The names come from a resolver the test controls (shim/resolve_hosts.cpp, LD_PRELOADed into
// the daemon), because no name resolves to ::1 alone on every machine: Debian's installer
// writes `::1 localhost ip6-localhost ip6-loopback` to /etc/hosts, but CI's machine has only
// IPv4 lines there and Docker omits the ::1 line in a container without IPv6. The names are
// under .test (RFC 6761), which no real resolver answers: without the shim nothing is polled
// and the tests fail, never skip. The shim answers AI_ADDRCONFIG as glibc does on a host
// whose only IPv6 address is loopback (IPv6 dropped), where a daemon asking with it would
// never reach [::1].
#include "harness.hpp"
#include "output_checks.hpp"
#include "scoped_env.hpp"
#include "tls_certs.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

using namespace std::chrono_literals;
using harness::DaemonConfig;
using harness::Output;
using harness::Sim;
using harness::TempDir;

namespace {

const std::string ipv6_only = "ipv6-only.mdagg.test";    // ::1 only
const std::string dual_stack = "dual-stack.mdagg.test";  // ::1 and 127.0.0.1, order per test

struct Run {
    Output out;
    nlohmann::json done;  // the daemon's "drain complete" line
};

// Polls http(s)://host:port with the test resolver answering `hosts`
// ("name=addr,addr;..."), until `polls` polls completed, then SIGTERM: the daemon exits 0.
Run poll_by_name(const TempDir& dir, const std::string& host, int port, const std::string& hosts, bool tls,
                 double polls = 200) {
    DaemonConfig c;
    c.host = host;
    c.port = port;
    c.symbols = 10;
    c.extra = "admin: { listen: \"127.0.0.1:0\" }\n";
    if (tls) c.source_extra = "    tls:\n      ca_file: " + tls_certs::file("ca.pem") + "\n";
    const auto path = harness::write_config(dir.path(), c);
    if (tls) {
        std::stringstream text;
        text << std::ifstream(path).rdbuf();
        std::ofstream(path) << std::regex_replace(text.str(), std::regex("url: \"http://"), "url: \"https://");
    }
    std::unique_ptr<harness::Process> daemon;
    {
        harness::ScopedPreload shim(MDAGG_RESOLVE_HOSTS_SHIM);
        harness::ScopedEnv table("MDAGG_TEST_HOSTS", hosts);
        daemon = harness::start_daemon(dir, path);
    }
    const int admin = harness::admin_port_of(*daemon);
    const std::string completed = R"(mdagg_source_polls_total{source="sim",outcome="completed"})";
    const bool polled = harness::wait_until([&] { return harness::metric_or_zero(admin, completed) >= polls; }, 30s);
    daemon->signal(SIGTERM);
    EXPECT_EQ(daemon->wait(10s), 0);
    EXPECT_TRUE(polled) << "no quotes from " << host << " with hosts " << hosts << ":\n"
                        << daemon->stdout_text().substr(0, 4000);
    Run run{harness::check_output(dir), {}};
    if (auto done = harness::find_log(*daemon, "drain complete")) run.done = *done;
    EXPECT_FALSE(run.done.is_null()) << daemon->stdout_text().substr(0, 4000);
    return run;
}

// Every answer the simulator wrote is a quote, except at most one per poll the daemon gave up
// on after the answer left (as in tls_test.cpp); seqs increase; every symbol was polled.
void expect_answers_written(const nlohmann::json& sim_final, const Run& run) {
    const auto responses = sim_final["responses"].get<std::size_t>();
    const auto gave_up =
        run.done.value("polls_timed_out", std::size_t{0}) + run.done.value("polls_cancelled", std::size_t{0});
    EXPECT_GE(run.out.quotes, 200u);
    EXPECT_GE(responses, run.out.quotes) << "quotes written that the simulator never sent";
    EXPECT_LE(responses - run.out.quotes, gave_up) << responses << " responses, " << run.out.quotes << " quotes";
    EXPECT_EQ(run.out.seqs.size(), 10u);
    harness::expect_seqs_increase(run.out);
}

// Until its first lookup answers, a source's polls fail fast as `resolve` (docs/polling.md);
// no other error may show: no connect, no TLS failure.
void expect_only_startup_resolve_errors(const Run& run) {
    for (const auto& [error, count] : run.done["errors"].items())
        EXPECT_EQ(error, "resolve") << count << " polls failed as " << error << ": " << run.done.dump();
}

// A simulator on 127.0.0.1 and one on [::1], on the same port number, each counting its own
// answers (each logs in a folder of its own). The port is the IPv6 one's; another process may
// hold it on IPv4: a few tries.
std::pair<Sim, Sim> start_on_both_families(const TempDir& dir) {
    std::filesystem::create_directories(dir / "v4");
    std::filesystem::create_directories(dir / "v6");
    for (int attempt = 1;; ++attempt) {
        Sim v6 = harness::start_sim(dir / "v6", {"--listen", "[::1]:0", "--control", "127.0.0.1:0", "--symbols", "10"});
        try {
            Sim v4 = harness::start_sim(dir / "v4",
                                        {"--listen", "127.0.0.1:" + std::to_string(v6.port), "--symbols", "10"});
            return {std::move(v4), std::move(v6)};
        } catch (const std::runtime_error&) {
            if (attempt == 5) throw;
        }
    }
}

}  // namespace

TEST(Resolve, AnIpv6OnlyNameIsPolledOverHttp) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--listen", "[::1]:0", "--symbols", "10"});
    const auto run = poll_by_name(dir, ipv6_only, sim.port, ipv6_only + "=::1", false);
    expect_answers_written(harness::stop_sim(sim), run);
    expect_only_startup_resolve_errors(run);
}

// The certificate names only the host name (no IP): verification passes on the name the URL
// gives, not on the address it resolved to.
TEST(Resolve, AnIpv6OnlyNameIsPolledOverTlsWithTheNameVerified) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--listen", "[::1]:0", "--symbols", "10", "--tls-cert",
                                               tls_certs::file("test-names.pem"), "--tls-key",
                                               tls_certs::file("test-names.key")});
    const auto run = poll_by_name(dir, ipv6_only, sim.port, ipv6_only + "=::1", true);
    const auto stats = harness::stop_sim(sim);
    expect_answers_written(stats, run);
    expect_only_startup_resolve_errors(run);  // no tls_verify: the name was verified
    EXPECT_GE(stats["tls"]["handshakes"].get<int>(), 1);
    EXPECT_EQ(stats["tls"]["handshake_failures"].get<int>(), 0);
}

// An IPv6 literal over TLS (issue 13: https://[2001:db8::1]/...): no lookup, and the address
// itself is verified against the certificate's IP names. server.pem names IP ::1.
TEST(Resolve, AnIpv6LiteralIsPolledOverTlsWithTheAddressVerified) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--listen", "[::1]:0", "--symbols", "10", "--tls-cert",
                                               tls_certs::file("server.pem"), "--tls-key",
                                               tls_certs::file("server.key")});
    const auto run = poll_by_name(dir, "[::1]", sim.port, "", true);
    expect_answers_written(harness::stop_sim(sim), run);
    EXPECT_TRUE(run.done["errors"].empty()) << "a literal needs no lookup: " << run.done.dump();
}

// The same literal against a certificate that names host names only (no IP ::1): refused as
// tls_verify, no quote. Verification is by the address, not skipped for it.
TEST(Resolve, AnIpv6LiteralIsRefusedByACertificateWithoutThatAddress) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--listen", "[::1]:0", "--symbols", "2", "--tls-cert",
                                               tls_certs::file("test-names.pem"), "--tls-key",
                                               tls_certs::file("test-names.key")});
    DaemonConfig c;
    c.host = "[::1]";
    c.port = sim.port;
    c.symbols = 2;
    c.interval = "100ms";
    c.extra = "admin: { listen: \"127.0.0.1:0\" }\n";
    c.source_extra = "    tls:\n      ca_file: " + tls_certs::file("ca.pem") + "\n";
    const auto path = harness::write_config(dir.path(), c);
    std::stringstream text;
    text << std::ifstream(path).rdbuf();
    std::ofstream(path) << std::regex_replace(text.str(), std::regex("url: \"http://"), "url: \"https://");
    auto daemon = harness::start_daemon(dir, path);
    const int admin = harness::admin_port_of(*daemon);
    const std::string refused = R"(mdagg_source_poll_errors_total{source="sim",class="tls_verify"})";
    EXPECT_TRUE(harness::wait_until([&] { return harness::metric_or_zero(admin, refused) >= 2; }, 30s))
        << daemon->stdout_text().substr(0, 4000);
    daemon->signal(SIGTERM);
    EXPECT_EQ(daemon->wait(10s), 0);
    EXPECT_EQ(harness::check_output(dir).quotes, 0u);
    EXPECT_EQ(harness::stop_sim(sim)["responses"], 0);
}

struct Order {
    const char* name;
    const char* addresses;  // as the resolver gives them
    bool ipv6_first;
};

// Named by its addresses in gtest's output, not dumped as bytes.
void PrintTo(const Order& o, std::ostream* os) { *os << o.addresses; }

class ResolverOrder : public testing::TestWithParam<Order> {};

// Both addresses accept: every connection goes to the one the resolver gave first, the other
// simulator answers nothing.
TEST_P(ResolverOrder, ConnectionsGoToTheFirstAddress) {
    TempDir dir;
    auto [v4, v6] = start_on_both_families(dir);
    const auto run = poll_by_name(dir, dual_stack, v6.port, dual_stack + "=" + GetParam().addresses, false);
    const auto v4_final = harness::stop_sim(v4);
    const auto v6_final = harness::stop_sim(v6);
    expect_answers_written(GetParam().ipv6_first ? v6_final : v4_final, run);
    EXPECT_EQ((GetParam().ipv6_first ? v4_final : v6_final)["responses"], 0)
        << "the address the resolver gave second was used while the first accepted";
}

// Only the second address listens: the refused first one is passed over on each connect,
// and no poll fails as `connect` for it.
TEST_P(ResolverOrder, ARefusedFirstAddressFallsBackToTheNext) {
    TempDir dir;
    const bool ipv6_first = GetParam().ipv6_first;
    auto sim = harness::start_sim(
        dir.path(), {"--listen", ipv6_first ? "127.0.0.1:0" : "[::1]:0", "--symbols", "10"});
    const auto run = poll_by_name(dir, dual_stack, sim.port, dual_stack + "=" + GetParam().addresses, false);
    expect_answers_written(harness::stop_sim(sim), run);
    expect_only_startup_resolve_errors(run);  // a refused address with another to try is no failure
}

INSTANTIATE_TEST_SUITE_P(Resolve, ResolverOrder,
                         testing::Values(Order{"Ipv6First", "::1,127.0.0.1", true},
                                         Order{"Ipv4First", "127.0.0.1,::1", false}),
                         [](const testing::TestParamInfo<Order>& info) { return std::string(info.param.name); });

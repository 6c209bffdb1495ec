// The admin server's limits and exposure against the real daemon: refusing an open port
// without a token, operator-stopped sources in the log, summary and metrics, bad bytes in
// queries, the connection cap with its reserved probe slots, the body limit, the read
// timeout, and the shared poller snapshot behind /metrics and /debug/tasks.
#include "harness.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

using namespace std::chrono_literals;
using harness::Process;
using harness::TempDir;

namespace {

using Clock = std::chrono::steady_clock;

using harness::wait_until;

std::string config_text(const TempDir& dir, int sim_port, const std::string& admin, int symbols = 10) {
    std::ostringstream out;
    out << "log: { level: info, summary_every: 300ms }\n"
        << "output: { dir: " << (dir / "out").string() << ", flush_every: 200ms }\n"
        << "admin: " << admin << "\n"
        << "sources:\n"
        << "  - name: sim\n"
        << "    url: \"http://127.0.0.1:" << sim_port << "/quotes/{symbol}\"\n"
        << "    interval: 100ms\n"
        << "    symbols: { prefix: STOCK_, count: " << symbols << " }\n"
        << "    fields: { symbol: /symbol, bid: /bidPrice, ask: /askPrice, seq: /seq }\n";
    return out.str();
}

struct Daemon {
    std::unique_ptr<Process> process;
    int admin_port = 0;
};

Daemon start_daemon(const TempDir& dir, const std::string& text) {
    const auto path = dir / "mdagg.yaml";
    std::ofstream(path) << text;
    Daemon d;
    d.process = std::make_unique<Process>("mdagg", std::vector<std::string>{MDAGG_BIN, "--config", path.string()},
                                          dir.path());
    auto line = d.process->wait_for_line("msg", "admin listening", 15s);
    if (!line) throw std::runtime_error("no \"admin listening\" line: " + d.process->stdout_text());
    d.admin_port = (*line)["port"].get<int>();
    return d;
}

// Runs `mdagg ARGS...` to its end; returns the exit status and the process (for its output).
std::pair<std::optional<int>, std::unique_ptr<Process>> run_mdagg(const TempDir& dir, const std::string& name,
                                                                 std::vector<std::string> args) {
    args.insert(args.begin(), MDAGG_BIN);
    auto p = std::make_unique<Process>(name, std::move(args), dir.path());
    auto status = p->wait(20s);
    return {status, std::move(p)};
}

std::vector<nlohmann::json> lines_with_msg(const Process& p, const std::string& msg) {
    std::vector<nlohmann::json> out;
    for (auto& l : p.stdout_json())
        if (l.value("msg", "") == msg) out.push_back(l);
    return out;
}

using harness::metric;

// A client socket to 127.0.0.1:port from the loopback address `from` (127.0.0.0/8 all
// reach lo, so each stands for a different peer). -1 when the connect fails.
int connect_from(const char* from, int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    ::inet_pton(AF_INET, from, &local.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
        ::close(fd);
        return -1;
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

void send_all(int fd, const std::string& data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
        const auto n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) return;
        sent += static_cast<std::size_t>(n);
    }
}

// Reads until the peer closes or `timeout`; `closed` says whether it closed (EOF or reset).
std::string read_until_close(int fd, std::chrono::milliseconds timeout, bool* closed = nullptr) {
    std::string out;
    const auto until = Clock::now() + timeout;
    char buf[16384];
    if (closed) *closed = false;
    while (Clock::now() < until) {
        pollfd p{fd, POLLIN, 0};
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
        if (::poll(&p, 1, static_cast<int>(std::max<long>(left.count(), 1))) <= 0) continue;
        const auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            if (closed) *closed = true;
            break;
        }
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

int status_of(const std::string& response) {
    if (response.compare(0, 9, "HTTP/1.1 ") != 0) return 0;
    return std::atoi(response.c_str() + 9);
}

std::string body_of(const std::string& response) {
    const auto end = response.find("\r\n\r\n");
    return end == std::string::npos ? std::string() : response.substr(end + 4);
}

// One request from `from`, answered and closed.
std::string request_from(const char* from, int port, const std::string& target, std::chrono::milliseconds timeout = 5s) {
    const int fd = connect_from(from, port);
    if (fd < 0) return {};
    send_all(fd, "GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    auto out = read_until_close(fd, timeout);
    ::close(fd);
    return out;
}

// A raw request on a fresh connection from 127.0.0.1; the full response text.
std::string raw_request(int port, const std::string& request, std::chrono::milliseconds timeout = 5s) {
    const int fd = connect_from("127.0.0.1", port);
    if (fd < 0) return {};
    send_all(fd, request);
    auto out = read_until_close(fd, timeout);
    ::close(fd);
    return out;
}

// ---- exposure: a non-loopback listen address needs a token ----------------------------------

TEST(AdminExposure, NonLoopbackWithoutATokenIsRefusedAtCheckAndStart) {
    TempDir dir;
    ::unsetenv("MDAGG_LIMITS_TEST_TOKEN");
    struct Case {
        std::string admin;
        bool refused;
    };
    const std::vector<Case> cases = {
        {"{ listen: \"0.0.0.0:0\" }", true},
        {"{ listen: \"[::]:0\" }", true},
        {"{ listen: \"192.0.2.1:0\" }", true},
        {"{ listen: \"[::ffff:0.0.0.0]:0\" }", true},
        {"{ listen: \"0.0.0.0:0\", token_env: MDAGG_LIMITS_TEST_TOKEN }", true},  // unset variable
        {"{ listen: \"127.0.0.1:0\" }", false},
        {"{ listen: \"127.0.0.2:0\" }", false},
        {"{ listen: \"[::1]:0\" }", false},
        {"{ listen: \"[::ffff:127.0.0.1]:0\" }", false},
        {"{ listen: \"0.0.0.0:0\", allow_unauthenticated: true }", false},
    };
    int i = 0;
    for (const auto& c : cases) {
        const auto path = dir / ("check" + std::to_string(i) + ".yaml");
        std::ofstream(path) << config_text(dir, 1, c.admin);
        auto [status, p] = run_mdagg(dir, "check" + std::to_string(i++), {"--check-config", path.string()});
        ASSERT_TRUE(status) << c.admin;
        EXPECT_EQ(*status, c.refused ? 2 : 0) << c.admin << "\n" << p->stderr_text();
        if (c.refused) {
            EXPECT_NE(p->stderr_text().find("is not a loopback address"), std::string::npos) << p->stderr_text();
            EXPECT_NE(p->stderr_text().find("admin.allow_unauthenticated: true"), std::string::npos);
            EXPECT_NE(p->stderr_text().find("admin.token_env"), std::string::npos);
        }
    }
    EXPECT_NE(std::get<1>(run_mdagg(dir, "v6", {"--check-config", (dir / "check1.yaml").string()}))->stderr_text().find(
                  "admin.listen [::]:0 is not a loopback address"),
              std::string::npos);

    // With the variable set, the same file passes.
    ::setenv("MDAGG_LIMITS_TEST_TOKEN", "t0ken", 1);
    auto [with_token, p_token] = run_mdagg(dir, "with-token", {"--check-config", (dir / "check4.yaml").string()});
    ::unsetenv("MDAGG_LIMITS_TEST_TOKEN");
    EXPECT_EQ(with_token, 0) << p_token->stderr_text();

    // Starting refuses the same way: exit 2, one error line naming admin.listen, nothing written.
    auto [started, daemon] = run_mdagg(dir, "refused", {"--config", (dir / "check0.yaml").string()});
    ASSERT_EQ(started, 2) << daemon->stdout_text();
    bool named = false;
    for (auto& l : daemon->stdout_json())
        named = named || (l.value("level", "") == "error" &&
                          l.value("error", "").find("admin.listen 0.0.0.0:0 is not a loopback address") != std::string::npos);
    EXPECT_TRUE(named) << daemon->stdout_text();
    EXPECT_FALSE(std::filesystem::exists(dir / "out"));
}

TEST(AdminExposure, AllowUnauthenticatedStartsAndWarns) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "10"});
    auto d = start_daemon(dir, config_text(dir, sim.port, "{ listen: \"0.0.0.0:0\", allow_unauthenticated: true }"));
    ASSERT_TRUE(d.process->wait_for_line(
        "msg", "admin server reachable from the network without a token (admin.allow_unauthenticated)", 5s))
        << d.process->stdout_text();
    EXPECT_EQ(harness::http_request(d.admin_port, "GET", "/healthz").status, 200);
    d.process->signal(SIGTERM);
    EXPECT_EQ(d.process->wait(10s), 0) << d.process->stdout_text();
}

// ---- operator-stopped sources are visible ---------------------------------------------------

TEST(AdminVisibility, PauseAndCancelOfEveryPollerShowInLogSummaryAndMetrics) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "10"});
    auto d = start_daemon(dir, config_text(dir, sim.port, "{ listen: \"127.0.0.1:0\" }"));
    const int port = d.admin_port;
    ASSERT_TRUE(wait_until([&] { return harness::http_request(port, "GET", "/readyz").status == 200; }, 20s));
    EXPECT_TRUE(lines_with_msg(*d.process, "every poller of the source is paused or cancelled by an operator: nothing polls it").empty());

    const std::string paused_msg = "every poller of the source is paused or cancelled by an operator: nothing polls it";
    const std::string cancelled_msg = "every poller of the source is cancelled by an operator: nothing polls it until a restart";

    ASSERT_EQ(harness::http_request(port, "POST", "/admin/pause", R"({"all":true})").json()["changed"], 10);
    auto paused = d.process->wait_for_line("msg", paused_msg, 15s);
    ASSERT_TRUE(paused) << d.process->stdout_text();
    EXPECT_EQ((*paused)["source"], "sim");
    EXPECT_EQ((*paused)["paused"], 10);
    EXPECT_EQ((*paused)["cancelled"], 0);
    auto metrics = harness::http_request(port, "GET", "/metrics").body;
    EXPECT_EQ(metric(metrics, R"(mdagg_source_pollers_control{source="sim",control="paused"})"), 10) << metrics;
    EXPECT_EQ(metric(metrics, R"(mdagg_source_pollers_control{source="sim",control="active"})"), 0);

    ASSERT_EQ(harness::http_request(port, "POST", "/admin/cancel", R"({"all":true})").json()["changed"], 10);
    auto cancelled = d.process->wait_for_line("msg", cancelled_msg, 15s);
    ASSERT_TRUE(cancelled) << d.process->stdout_text();
    EXPECT_EQ((*cancelled)["source"], "sim");
    EXPECT_EQ((*cancelled)["cancelled"], 10);
    metrics = harness::http_request(port, "GET", "/metrics").body;
    EXPECT_EQ(metric(metrics, R"(mdagg_source_pollers_control{source="sim",control="cancelled"})"), 10) << metrics;
    EXPECT_EQ(metric(metrics, R"(mdagg_source_pollers_control{source="sim",control="paused"})"), 0);
    EXPECT_EQ(metric(metrics, R"(mdagg_source_pollers_control{source="sim",control="active"})"), 0);

    // The summary says it on every line.
    ASSERT_TRUE(wait_until(
        [&] {
            auto s = lines_with_msg(*d.process, "summary");
            return !s.empty() && s.back().value("pollers_cancelled", -1) == 10;
        },
        10s))
        << d.process->stdout_text();
    EXPECT_EQ(lines_with_msg(*d.process, "summary").back()["pollers_paused"], 0);
    // Rate-limited: one line per source and minute, not one per check.
    std::this_thread::sleep_for(6s);
    EXPECT_EQ(lines_with_msg(*d.process, cancelled_msg).size(), 1u);
    EXPECT_EQ(lines_with_msg(*d.process, paused_msg).size(), 1u);

    d.process->signal(SIGTERM);
    EXPECT_EQ(d.process->wait(10s), 0) << d.process->stdout_text();
}

// ---- bad bytes in queries -------------------------------------------------------------------

TEST(AdminRequests, BadBytesInQueriesGetA400WithValidJson) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "10"});
    auto d = start_daemon(dir, config_text(dir, sim.port, "{ listen: \"127.0.0.1:0\" }"));
    const int port = d.admin_port;
    const std::vector<std::string> targets = {
        "/debug/tasks?state=%FF",      "/debug/tasks?state=%C3%28",  "/debug/tasks?source=%FF",
        "/debug/tasks?symbol=%ED%A0%80", "/debug/tasks?%FF=1",       "/debug/tasks?\xFF=1",
        "/debug/tasks?state=\xC3",
    };
    for (int round = 0; round < 20; ++round) {
        for (const auto& target : targets) {
            const auto response = raw_request(port, "GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            ASSERT_EQ(status_of(response), 400) << target << "\n" << response;
            const auto body = nlohmann::json::parse(body_of(response), nullptr, false);
            ASSERT_TRUE(body.is_object()) << target << ": " << body_of(response);
            EXPECT_TRUE(body["error"].is_string());
        }
    }
    // A selector body that is not UTF-8 is a 400 too.
    auto bad_body = harness::http_request(port, "POST", "/admin/pause", "{\"source\": \"\xFF\"}");
    EXPECT_EQ(bad_body.status, 400);
    EXPECT_TRUE(bad_body.json().is_object()) << bad_body.body;

    EXPECT_EQ(harness::http_request(port, "GET", "/healthz").status, 200);
    // 140 bad requests, and not one failure in the log.
    for (auto& l : d.process->stdout_json()) {
        EXPECT_NE(l.value("level", ""), "error") << l.dump();
        EXPECT_EQ(l.value("msg", "").find("admin connection failed"), std::string::npos) << l.dump();
    }
    d.process->signal(SIGTERM);
    EXPECT_EQ(d.process->wait(10s), 0);
}

// ---- the connection cap and its probe slots -------------------------------------------------

TEST(AdminLimits, ProbesAnswerWhileSlowClientsHoldEveryConnection) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "10"});
    auto d = start_daemon(dir, config_text(dir, sim.port, "{ listen: \"127.0.0.1:0\" }"));
    const int port = d.admin_port;
    ASSERT_TRUE(wait_until([&] { return harness::http_request(port, "GET", "/readyz").status == 200; }, 20s));

    // 64 slow clients, 16 from each of four peers: every regular slot is taken. Each sends
    // half a request and stops.
    const char* slow_peers[] = {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"};
    std::vector<int> slow;
    for (const char* peer : slow_peers)
        for (int i = 0; i < 16; ++i) {
            const int fd = connect_from(peer, port);
            ASSERT_GE(fd, 0);
            send_all(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n");
            slow.push_back(fd);
        }
    // Let the daemon accept them all.
    std::this_thread::sleep_for(500ms);

    // The 65th connection and later ones: the probes are answered promptly...
    for (const char* peer : {"127.0.0.1", "127.0.0.6", "127.0.0.2"}) {
        for (const std::string target : {"/healthz", "/readyz"}) {
            const auto t0 = Clock::now();
            const auto response = request_from(peer, port, target);
            const auto took = Clock::now() - t0;
            EXPECT_EQ(status_of(response), 200) << peer << " " << target << "\n" << response;
            EXPECT_LT(took, 3s) << peer << " " << target;
        }
    }
    // ...anything else on a probe slot is a 503 naming the limit.
    const auto metrics_at_cap = request_from("127.0.0.6", port, "/metrics");
    EXPECT_EQ(status_of(metrics_at_cap), 503) << metrics_at_cap;
    EXPECT_NE(body_of(metrics_at_cap).find("connection limit reached"), std::string::npos);

    // A peer already holding a probe slot gets no second one: closed at once, unanswered.
    const int held = connect_from("127.0.0.7", port);
    ASSERT_GE(held, 0);
    send_all(held, "GET /healthz HTTP/1.1\r\n");  // half a request: keeps the probe slot
    std::this_thread::sleep_for(200ms);
    const int refused = connect_from("127.0.0.7", port);
    ASSERT_GE(refused, 0);  // the kernel accepts; the daemon closes it
    bool closed = false;
    const auto refused_answer = read_until_close(refused, 5s, &closed);
    EXPECT_TRUE(closed);
    EXPECT_EQ(refused_answer, "");
    ::close(refused);
    // The held probe slot is cut after its short read timeout (2 s), not 10 s.
    const auto t0 = Clock::now();
    read_until_close(held, 8s, &closed);
    EXPECT_TRUE(closed);
    EXPECT_LT(Clock::now() - t0, 6s);
    ::close(held);

    // Peers' shares: a 17th connection of 127.0.0.2, while its probe slot is free, is one.
    for (int fd : slow) ::close(fd);
    slow.clear();
    // A single peer holds at most 16 regular connections; past that it gets a probe slot,
    // then nothing.
    for (int i = 0; i < 16; ++i) {
        const int fd = connect_from("127.0.0.8", port);
        ASSERT_GE(fd, 0);
        send_all(fd, "GET /metrics HTTP/1.1\r\n");
        slow.push_back(fd);
    }
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(status_of(request_from("127.0.0.8", port, "/healthz")), 200);
    EXPECT_EQ(status_of(request_from("127.0.0.8", port, "/metrics")), 503);
    for (int fd : slow) ::close(fd);

    std::string metrics;
    ASSERT_TRUE(wait_until(
        [&] {
            metrics = harness::http_request(port, "GET", "/metrics").body;
            return metric(metrics, "mdagg_admin_connections_open").value_or(99) <= 1;
        },
        10s))
        << metrics;
    EXPECT_GE(metric(metrics, R"(mdagg_admin_connections_rejected_total{reason="full"})").value_or(0), 1) << metrics;
    EXPECT_GE(metric(metrics, R"(mdagg_admin_probe_slot_connections_total)").value_or(0), 9);
    EXPECT_EQ(harness::http_request(port, "GET", "/healthz").status, 200);
    d.process->signal(SIGTERM);
    EXPECT_EQ(d.process->wait(10s), 0) << d.process->stdout_text();
    // The refusals were logged, rate-limited.
    EXPECT_LE(lines_with_msg(*d.process, "admin connection refused: too many open connections").size(), 2u);
}

TEST(AdminLimits, BodyOver64KiBIs413AndASlowClientIsCutAt10s) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "10"});
    auto d = start_daemon(dir, config_text(dir, sim.port, "{ listen: \"127.0.0.1:0\" }"));
    const int port = d.admin_port;

    // Exactly 64 KiB is read and judged (a glob matching nothing); one byte more is a 413.
    auto body_of_size = [](std::size_t n) {
        const std::string head = R"({"glob":")", tail = R"("})";
        return head + std::string(n - head.size() - tail.size(), 'x') + tail;
    };
    const auto at_limit = harness::http_request(port, "POST", "/admin/pause", body_of_size(64 * 1024));
    EXPECT_EQ(at_limit.status, 200) << at_limit.body;
    EXPECT_EQ(at_limit.json()["matched"], 0);
    for (int i = 0; i < 5; ++i) {
        const auto over = harness::http_request(port, "POST", "/admin/pause", body_of_size(64 * 1024 + 1));
        EXPECT_EQ(over.status, 413) << over.body;
    }

    // Half a request, then silence: the connection is cut after 10 s.
    const int fd = connect_from("127.0.0.1", port);
    ASSERT_GE(fd, 0);
    send_all(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
    const auto t0 = Clock::now();
    bool closed = false;
    const auto answer = read_until_close(fd, 30s, &closed);
    const auto took = Clock::now() - t0;
    ::close(fd);
    EXPECT_TRUE(closed);
    EXPECT_EQ(answer, "");
    EXPECT_GE(took, 9s);
    EXPECT_LT(took, 20s);
    EXPECT_EQ(harness::http_request(port, "GET", "/healthz").status, 200);
    d.process->signal(SIGTERM);
    EXPECT_EQ(d.process->wait(10s), 0) << d.process->stdout_text();
}

// ---- one poller snapshot per second ---------------------------------------------------------

TEST(AdminLimits, RepeatedScrapesShareOnePollerSnapshot) {
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "200"});
    auto d = start_daemon(dir, config_text(dir, sim.port, "{ listen: \"127.0.0.1:0\" }", 200));
    const int port = d.admin_port;
    ASSERT_TRUE(wait_until([&] { return harness::http_request(port, "GET", "/readyz").status == 200; }, 20s));

    auto snapshots = [&] {
        return metric(harness::http_request(port, "GET", "/metrics").body, "mdagg_admin_poller_snapshots_total");
    };
    ASSERT_TRUE(snapshots()) << "no mdagg_admin_poller_snapshots_total";
    constexpr int scrapes = 20;
    const auto before = *snapshots();
    const auto t0 = Clock::now();
    for (int i = 0; i < scrapes; ++i) {
        ASSERT_EQ(harness::http_request(port, "GET", "/metrics").status, 200);
        ASSERT_EQ(harness::http_request(port, "GET", "/debug/tasks").json()["count"], 200);
    }
    const auto after = *snapshots();
    const double elapsed_s = std::chrono::duration<double>(Clock::now() - t0).count();
    // One snapshot per second at most (the reads above plus this one), whatever the pace.
    EXPECT_LE(after - before, 2 + elapsed_s) << "41 requests in " << elapsed_s << " s";
    EXPECT_LT(after - before, 2 * scrapes);

    // An operator action is seen at once, not a second later.
    ASSERT_EQ(harness::http_request(port, "POST", "/admin/pause", R"({"symbols":["STOCK_7"]})").json()["changed"], 1);
    EXPECT_EQ(harness::http_request(port, "GET", "/debug/tasks?state=paused").json()["count"], 1);
    d.process->signal(SIGTERM);
    EXPECT_EQ(d.process->wait(10s), 0) << d.process->stdout_text();
}

}  // namespace

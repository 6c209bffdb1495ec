// Shared by the failover tests (failover_test.cpp, failover_via_test.cpp, failover_tls_test.cpp):
// the config of a source with mirrors polling the simulator's listeners, the task table's and
// /metrics' views of where its pollers are, and the checks at the end of a run.
#pragma once

#include "harness.hpp"
#include "output_checks.hpp"

#include <csignal>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace failover {

using namespace harness;

constexpr int symbols = 20;

struct Setup {
    std::string scheme = "http";
    std::string primary{};              // the url's "host:port"
    std::vector<std::string> mirrors{}; // each mirror's "host:port", in `mirrors:` order
    std::string breaker{};              // the url's host's breaker ("": no hosts entry)
    std::string source_extra{};         // more keys of the source, each line indented by 4
};

// The two listeners' "host:port" of a simulator started by start_two_listeners.
struct ListenerHosts {
    std::string primary;  // 127.0.0.1: the url's host
    std::string mirror;   // 127.0.0.2: its mirror (one book, one seq per symbol)
};

// Starts `sim` with two listeners and a control port; nothing when it did not say it listens.
inline std::optional<ListenerHosts> start_two_listeners(const TempDir& dir, Sim& sim, int symbol_count = symbols) {
    sim = start_sim(dir.path(), {"--listen", "127.0.0.1:0", "--listen", "127.0.0.2:0", "--symbols",
                                 std::to_string(symbol_count), "--control", "127.0.0.1:0"});
    const auto listening = sim.process->wait_for_line("event", "listening", std::chrono::seconds(5));
    if (!listening) return std::nullopt;
    ListenerHosts hosts;
    hosts.primary = "127.0.0.1:" + std::to_string(sim.port);
    hosts.mirror = "127.0.0.2:" + std::to_string((*listening)["listeners"][1]["port"].get<int>());
    return hosts;
}

// `sim` polls `symbols` STOCK_ symbols every 100 ms from the url's host, with the mirrors.
inline fs::path write_failover_config(const TempDir& dir, const Setup& s, const std::string& file = "mdagg.yaml") {
    const fs::path path = dir / file;
    std::ofstream out(path);
    out << "output: { dir: " << (dir / "out").string() << ", flush_every: 200ms }\n"
        << "admin: { listen: \"127.0.0.1:0\" }\n";
    if (!s.breaker.empty()) out << "hosts:\n  - host: \"" << s.primary << "\"\n    breaker: " << s.breaker << "\n";
    out << "sources:\n  - name: sim\n"
        << "    url: \"" << s.scheme << "://" << s.primary << "/quotes/{symbol}\"\n"
        << "    mirrors: [";
    for (std::size_t i = 0; i < s.mirrors.size(); ++i)
        out << (i ? ", " : "") << '"' << s.scheme << "://" << s.mirrors[i] << "/quotes/{symbol}\"";
    out << "]\n"
        << "    interval: 100ms\n"
        << "    symbols: { prefix: STOCK_, count: " << symbols << " }\n"
        << "    fields: { symbol: /symbol, bid: /bidPrice, ask: /askPrice, seq: /seq }\n"
        << s.source_extra;
    return path;
}

// Pollers in the task table on route `mirror` (0: the url's host, 1: the first mirror).
inline int pollers_on(int admin, int mirror) {
    const auto tasks = http_request(admin, "GET", "/debug/tasks").json();
    int n = 0;
    for (const auto& row : tasks["tasks"]) n += row.value("mirror", -1) == mirror ? 1 : 0;
    return n;
}

// A series' value in /metrics; -1 when absent.
inline double counter(int admin, const std::string& series) {
    return metric(http_request(admin, "GET", "/metrics").body, series).value_or(-1);
}

// SIGTERM, then what every failover run checks at its end: the daemon exits 0 (false, with a
// failure, when it does not), the simulator stops, every answer its listeners wrote is one
// quote record, and seqs rise per symbol. `stopped` and `out` get the simulator's final stats
// and the output, for the test's own checks.
inline bool stop_and_check(Process& daemon, Sim& sim, const TempDir& dir, nlohmann::json& stopped, Output& out) {
    daemon.signal(SIGTERM);
    const auto code = daemon.wait(std::chrono::seconds(10));
    EXPECT_EQ(code, 0) << daemon.stdout_text();
    if (code != 0) return false;
    stopped = stop_sim(sim);
    out = check_output(dir);
    EXPECT_EQ(out.quotes, stopped["responses"].get<std::size_t>()) << stopped.dump();
    expect_seqs_increase(out);
    return true;
}

}  // namespace failover

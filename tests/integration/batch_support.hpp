// Shared by the batch end-to-end tests (batch_test.cpp, batch_pause_url_test.cpp): the daemon
// polling the simulator's batch endpoints, and one symbol's progress from /debug/tasks.
#pragma once

#include "harness.hpp"
#include "output_checks.hpp"

#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <regex>
#include <sstream>
#include <string>

namespace harness {

// A daemon polling the simulator's batch endpoint, and its admin port.
struct BatchDaemon {
    std::unique_ptr<Process> process;
    int admin = 0;
};

// The harness's config polling the simulator's first `symbols` symbols every 50 ms.
inline DaemonConfig every_50ms(const Sim& sim, int symbols) {
    DaemonConfig c;
    c.port = sim.port;
    c.symbols = symbols;
    c.interval = "50ms";
    return c;
}

// Starts the daemon on the harness's config with the url replaced by `target`, a batch block
// and an admin listener (`admin_extra`: more `admin:` keys, each after a comma); `edit`, when
// given, rewrites the config's text before the start.
inline BatchDaemon start_batch_daemon(const TempDir& dir, DaemonConfig c, const std::string& target,
                                      const std::string& batch,
                                      const std::function<std::string(std::string)>& edit = {},
                                      const std::string& admin_extra = {}) {
    c.source_extra += "    batch: " + batch + "\n";
    c.extra += "admin: { listen: \"127.0.0.1:0\"" + admin_extra + " }\n";
    const auto path = write_config(dir.path(), c);
    std::stringstream text;
    text << std::ifstream(path).rdbuf();
    std::string yaml = std::regex_replace(text.str(), std::regex("/quotes/\\{symbol\\}"), target);
    if (edit) yaml = edit(std::move(yaml));
    std::ofstream(path) << yaml;
    BatchDaemon d{start_daemon(dir, path)};
    d.admin = admin_port_of(*d.process);
    return d;
}

// Polls completed for `symbol`, from its row in /debug/tasks (0 without exactly one row).
inline std::uint64_t completed_of(int admin, const std::string& symbol) {
    const auto tasks = http_request(admin, "GET", "/debug/tasks?symbol=" + symbol).json();
    if (tasks["count"] != 1) return 0;
    return tasks["tasks"][0]["completed"].get<std::uint64_t>();
}

}  // namespace harness

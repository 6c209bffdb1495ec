// Checks shared by the integration tests: what every drain must leave behind in the output,
// and small readers of the daemon's log lines and the simulator's /stats.
#pragma once

#include <stdexcept>

#include "harness.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace harness {

inline std::unique_ptr<Process> start_daemon(const TempDir& dir, const std::filesystem::path& config) {
    return std::make_unique<Process>("mdagg", std::vector<std::string>{MDAGG_BIN, "--config", config.string()},
                                     dir.path());
}

struct Output {
    std::map<std::string, std::vector<long long>> seqs;  // symbol -> seq in file order
    std::size_t quotes = 0;
    std::map<std::string, std::size_t> quotes_via;  // the host a quote names in `via` -> quotes
    std::size_t bars = 0;
    std::size_t stale_marks = 0;
    std::set<std::string> bar_symbols;
    std::set<std::string> stale_symbols;  // symbols with a "stale": true mark
};

// Reads every output file, checking the invariants every drain must leave behind: no file
// left unfinished, every file ends with a whole line, every line valid JSON of a known type.
inline Output check_output(const TempDir& dir) {
    Output o;
    auto out_dir = dir / "out";
    EXPECT_TRUE(unfinished_files(out_dir).empty()) << "files left unfinished in " << out_dir;
    for (auto& f : read_output(out_dir)) {
        EXPECT_TRUE(f.ends_with_newline) << f.path << " ends with a partial line";
        for (auto& r : f.records) {
            if (r["type"] == "quote") {
                ++o.quotes;
                if (r.contains("via")) ++o.quotes_via[r["via"].get<std::string>()];
                o.seqs[r["symbol"].get<std::string>()].push_back(r["seq"].get<long long>());
                EXPECT_TRUE(r["bid"].is_string());
                EXPECT_TRUE(r["ask"].is_string());
            } else if (r["type"] == "bar") {
                ++o.bars;
                o.bar_symbols.insert(r["symbol"].get<std::string>());
            } else if (r["type"] == "stale") {
                ++o.stale_marks;
                EXPECT_TRUE(r["stale"].is_boolean());
                if (r["stale"] == true) o.stale_symbols.insert(r["symbol"].get<std::string>());
            } else {
                ADD_FAILURE() << "unknown record type: " << r.dump();
            }
        }
    }
    return o;
}

// Per symbol, sequence numbers strictly increase: nothing duplicated, nothing reordered.
inline void expect_seqs_increase(const Output& out) {
    for (auto& [symbol, seqs] : out.seqs)
        for (std::size_t i = 1; i < seqs.size(); ++i)
            ASSERT_LT(seqs[i - 1], seqs[i]) << symbol << " sequence went backwards or repeated";
}

// Lets the daemon run, sends SIGTERM, and returns its exit status (nullopt: it did not exit).
inline std::optional<int> run_then_stop(Process& daemon, std::chrono::milliseconds run_for,
                                        std::chrono::milliseconds exit_within = std::chrono::seconds(5)) {
    std::this_thread::sleep_for(run_for);
    daemon.signal(SIGTERM);
    return daemon.wait(exit_within);
}

inline std::optional<nlohmann::json> find_log(const Process& p, const std::string& msg) {
    for (auto& line : p.stdout_json())
        if (line.value("msg", "") == msg) return line;
    return std::nullopt;
}

inline nlohmann::json sim_stats(int port) {
    // The simulator serves its pollers on the same port: with 2,000 of them on a sanitizer
    // build, a stats request can go unanswered within the harness's 5 s. Asked again rather
    // than parsed empty; three silences are a failure that says so.
    for (int attempt = 1;; ++attempt) {
        const auto reply = http_request(port, "GET", "/stats");
        if (reply.status == 200) return nlohmann::json::parse(reply.body);
        if (attempt == 3) {
            std::string what = "the simulator's /stats did not answer 3 times, port ";
            what.append(std::to_string(port));
            throw std::runtime_error(what);
        }
    }
}

// Stops the simulator with SIGTERM and returns its final /stats, printed as its `stopped` line.
inline nlohmann::json stop_sim(Sim& sim) {
    sim.process->signal(SIGTERM);
    EXPECT_EQ(sim.process->wait(std::chrono::seconds(20)), 0);
    for (auto& line : sim.process->stdout_json())
        if (line.value("event", "") == "stopped") return line;
    ADD_FAILURE() << "no stopped line: " << sim.process->stdout_text();
    return {};
}

}  // namespace harness

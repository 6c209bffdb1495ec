// Shared by the config module's unit tests (tests/unit/config_*_test.cpp).
#pragma once

#include <mdagg/config.hpp>
#include <gtest/gtest.h>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <unistd.h>

namespace mdagg {
namespace {

using namespace std::chrono_literals;

// Line and column numbers in the expectations below refer to this text (1-based):
//   line 3 "    url: " -> value at col 10;   line 4 "    interval: " -> value at col 15
//   line 5 "    symbols: " -> '[' at col 14; line 6 "    fields: " -> '{' at col 13
constexpr std::string_view minimal = R"(sources:
  - name: sim
    url: "http://127.0.0.1:8081/quotes/{symbol}"
    interval: 50ms
    symbols: [AAPL, MSFT]
    fields: {bid: /bid, ask: /ask}
)";

inline Config parse(std::string_view yaml) { return parse_config(yaml, "t.yaml"); }

inline std::string error_of(std::string_view yaml) {
    try {
        parse(yaml);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "(no error)";
}

// `minimal` with line `line` (1-based) replaced by `text`.
inline std::string replace_line(int line, std::string_view text) {
    std::string out;
    std::string_view rest = minimal;
    for (int n = 1; !rest.empty(); ++n) {
        const std::size_t end = rest.find('\n') + 1;
        out += n == line ? std::string(text) + '\n' : std::string(rest.substr(0, end));
        rest.remove_prefix(end);
    }
    return out;
}

// `minimal` plus `lines`, starting at line 7.
inline std::string append(std::string_view lines) { return std::string(minimal) + std::string(lines); }

inline std::filesystem::path find_demo_yaml() {
    if (const char* dir = std::getenv("MDAGG_SOURCE_DIR")) return std::filesystem::path(dir) / "config/demo.yaml";
    // Tests run from the build tree (build*/tests), so the source tree is an ancestor.
    for (auto dir = std::filesystem::current_path();; dir = dir.parent_path()) {
        if (std::filesystem::exists(dir / "config/demo.yaml")) return dir / "config/demo.yaml";
        if (dir == dir.parent_path()) return {};
    }
}

// A `kafka:` section from line 7: brokers on 8, topics on 9.
inline const std::string kafka_head = "kafka:\n  brokers: \"k0:9092,k1:9092\"\n  topics: { quotes: md.quotes }\n";

struct DurationCeiling {
    std::string yaml_at;    // the config with {} for the value
    std::string at_max;     // accepted
    std::string over_max;   // 1ns more: rejected
    std::string expected;   // the error for over_max
};

// Sets an environment variable for its lifetime.
struct EnvVar {
    EnvVar(const char* name, const char* value) : name_(name) { ::setenv(name, value, 1); }
    ~EnvVar() { ::unsetenv(name_); }
    EnvVar(const EnvVar&) = delete;
    EnvVar& operator=(const EnvVar&) = delete;

private:
    const char* name_;
};

struct TempFile {
    std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                ("mdagg-config-test-" + std::to_string(::getpid()));
    TempFile() { std::filesystem::create_directories(dir); }
    ~TempFile() { std::filesystem::remove_all(dir); }
    std::filesystem::path write(const std::string& name, const std::string& text) const {
        std::ofstream(dir / name, std::ios::binary) << text;
        return dir / name;
    }
};

}  // namespace
}  // namespace mdagg

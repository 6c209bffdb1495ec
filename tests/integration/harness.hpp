// Runs the real mdagg and mdagg-sim processes for integration tests: spawn with stdout and
// stderr captured to files, signal, wait with a timeout, read their JSON output.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace harness {

namespace fs = std::filesystem;

// A fresh directory under the system temp dir, removed when the test passes.
class TempDir {
public:
    TempDir() : TempDir(fs::temp_directory_path()) {}
    // Under base, e.g. /dev/shm for a test whose fsyncs must not wait for a busy disk.
    explicit TempDir(const fs::path& base);
    ~TempDir();
    const fs::path& path() const { return path_; }
    fs::path operator/(const std::string& name) const { return path_ / name; }

private:
    fs::path path_;
};

class Process {
public:
    // stdout goes to <log_dir>/<name>.out, stderr to <name>.err.
    Process(const std::string& name, std::vector<std::string> argv, const fs::path& log_dir);
    ~Process();  // SIGKILLs a process still running
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    int pid() const { return pid_; }
    void signal(int signo) const;
    // Exit status (exit code, or 128+signal) or nullopt on timeout.
    std::optional<int> wait(std::chrono::milliseconds timeout);
    bool running();

    std::string stdout_text() const;
    std::string stderr_text() const;
    // Every stdout line parsed as JSON; a line that is not JSON fails the calling test.
    std::vector<nlohmann::json> stdout_json() const;
    // Waits for a stdout JSON line whose `key` equals `value`.
    std::optional<nlohmann::json> wait_for_line(const std::string& key, const std::string& value,
                                                std::chrono::milliseconds timeout) const;

private:
    std::string name_;
    int pid_ = -1;
    std::optional<int> status_;
    fs::path out_, err_;
};

// Starts mdagg-sim on a free port; returns the port from its "listening" line, and the
// control listener's port when extra_args has "--control 127.0.0.1:0".
struct Sim {
    std::unique_ptr<Process> process;
    int port = 0;
    int control_port = 0;
};
Sim start_sim(const fs::path& dir, std::vector<std::string> extra_args = {});

// Writes a config polling the simulator and returns its path.
struct DaemonConfig {
    std::string host = "127.0.0.1";
    int port = 0;
    int symbols = 100;
    std::string interval = "50ms";
    std::string timeout = "";  // default: the interval
    std::string grace = "3s";
    std::string interrupt_grace = "2s";
    std::string flush_every = "200ms";
    std::string bar_interval = "1s";
    std::string summary_every = "1s";
    int threads = 1;
    bool quotes = true;
    std::string source_extra;  // YAML lines added to the source (indented 4 spaces)
    std::string extra;         // YAML lines added at the top level
    std::string output_extra;  // more `output:` keys, e.g. "rotate: { max_bytes: 65536 }"
    std::string log_level = "info";
};
fs::path write_config(const fs::path& dir, const DaemonConfig& c);

struct OutputFile {
    fs::path path;
    std::vector<nlohmann::json> records;
    bool ends_with_newline = true;
};
// Parses every *.jsonl file under dir; a line that is not valid JSON fails the calling test.
std::vector<OutputFile> read_output(const fs::path& dir);
// Files under dir whose name does not end in .jsonl (for example leftover .part files), except
// the daemon's state files (.mdagg*).
std::vector<fs::path> unfinished_files(const fs::path& dir);

std::string http_get(int port, const std::string& target);

struct HttpResponse {
    int status = 0;  // 0: no answer
    std::string body;
    nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
};
// One request on a fresh connection to 127.0.0.1:port, read until the server closes.
// `headers`: extra header lines, each ending in "\r\n".
HttpResponse http_request(int port, const std::string& method, const std::string& target,
                          const std::string& body = {}, const std::string& headers = {});
// POST /control/faults on the simulator; returns the fault's id, throws unless 201.
std::uint64_t sim_add_fault(int port, const nlohmann::json& fault);

// curl (--silent --show-error --max-time 10, then `args`) run as a child in `dir`, waited for.
struct CurlResult {
    int exit = -1;
    std::string out;
    std::string err;
};
CurlResult curl(const TempDir& dir, const std::string& name, std::vector<std::string> args);

// Polls `condition` every 20 ms until it holds or `timeout` passes; true if it held.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

// The value of one sample ("name{labels} value") in a Prometheus text, nullopt when absent.
std::optional<double> metric(const std::string& text, const std::string& series);
// The value of `series` in the daemon's /metrics on `admin_port`; 0 when absent.
double metric_or_zero(int admin_port, const std::string& series);
// The admin port from the daemon's "admin listening" line (waits up to 30 s; throws without it).
int admin_port_of(const Process& daemon);

}  // namespace harness

#include "harness.hpp"

#include <algorithm>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

extern char** environ;

namespace harness {

TempDir::TempDir(const fs::path& base) {
    std::random_device rd;
    path_ = base / ("mdagg-it-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(path_);
}

TempDir::~TempDir() {
    // Keep the evidence when a test failed.
    if (!::testing::Test::HasFailure()) {
        std::error_code ec;
        fs::remove_all(path_, ec);
    } else {
        std::cerr << "kept test files in " << path_ << "\n";
    }
}

Process::Process(const std::string& name, std::vector<std::string> argv, const fs::path& log_dir)
    : name_(name), out_(log_dir / (name + ".out")), err_(log_dir / (name + ".err")) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    // Signals blocked or ignored by the test runner must not leak into the child.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int rc = posix_spawn(&pid_, args[0], &actions, &attr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
}

Process::~Process() {
    if (!status_ && pid_ > 0) {
        ::kill(pid_, SIGKILL);
        int st = 0;
        ::waitpid(pid_, &st, 0);
    }
}

void Process::signal(int signo) const { ::kill(pid_, signo); }

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
    if (status_) return status_;
    auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        int st = 0;
        pid_t r = ::waitpid(pid_, &st, WNOHANG);
        if (r == pid_) {
            status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return status_;
        }
        if (std::chrono::steady_clock::now() >= until) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

bool Process::running() { return !wait(std::chrono::milliseconds(0)); }

static std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string Process::stdout_text() const { return slurp(out_); }
std::string Process::stderr_text() const { return slurp(err_); }

std::vector<nlohmann::json> Process::stdout_json() const {
    std::vector<nlohmann::json> lines;
    std::string text = stdout_text();
    // A line without its newline is still being written by a running process: left for the
    // next read. Once the process has been waited for, a torn last line is a defect.
    if (!text.empty() && text.back() != '\n') {
        if (status_) ADD_FAILURE() << name_ << " ended with a torn stdout line: " << text.substr(text.rfind('\n') + 1);
        text.resize(text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1);
    }
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        try {
            lines.push_back(nlohmann::json::parse(line));
        } catch (const std::exception& e) {
            ADD_FAILURE() << name_ << " wrote a stdout line that is not JSON: " << line;
        }
    }
    return lines;
}

std::optional<nlohmann::json> Process::wait_for_line(const std::string& key, const std::string& value,
                                                     std::chrono::milliseconds timeout) const {
    auto until = std::chrono::steady_clock::now() + timeout;
    do {
        std::istringstream in(stdout_text());
        std::string line;
        while (std::getline(in, line)) {
            auto j = nlohmann::json::parse(line, nullptr, false);
            if (j.is_object() && j.contains(key) && j[key] == value) return j;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    } while (std::chrono::steady_clock::now() < until);
    return std::nullopt;
}

Sim start_sim(const fs::path& dir, std::vector<std::string> extra_args) {
    // --listen is repeatable (mirrors): the default loopback listener only when none is given.
    std::vector<std::string> argv{MDAGG_SIM_BIN};
    if (std::find(extra_args.begin(), extra_args.end(), "--listen") == extra_args.end())
        argv.insert(argv.end(), {"--listen", "127.0.0.1:0"});
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    Sim sim;
    sim.process = std::make_unique<Process>("sim", argv, dir);
    auto line = sim.process->wait_for_line("event", "listening", std::chrono::seconds(10));
    if (!line) throw std::runtime_error("simulator did not start: " + sim.process->stderr_text());
    sim.port = (*line)["port"].get<int>();
    sim.control_port = line->value("control_port", 0);
    return sim;
}

fs::path write_config(const fs::path& dir, const DaemonConfig& c) {
    auto path = dir / "mdagg.yaml";
    std::ofstream out(path);
    out << "runtime: { threads: " << c.threads << " }\n"
        << "shutdown: { grace: " << c.grace << ", interrupt_grace: " << c.interrupt_grace << " }\n"
        << "log: { level: " << c.log_level << ", summary_every: " << c.summary_every << " }\n"
        << "output: { dir: " << (dir / "out").string() << ", flush_every: " << c.flush_every
        << ", quotes: " << (c.quotes ? "true" : "false") << ", bar_interval: " << c.bar_interval
        << (c.output_extra.empty() ? "" : ", " + c.output_extra) << " }\n"
        << "sources:\n"
        << "  - name: sim\n"
        << "    url: \"http://" << c.host << ":" << c.port << "/quotes/{symbol}\"\n"
        << "    interval: " << c.interval << "\n";
    if (!c.timeout.empty()) out << "    timeout: " << c.timeout << "\n";
    out << c.source_extra;
    out << "    symbols: { prefix: STOCK_, count: " << c.symbols << " }\n"
        << "    fields:\n"
        << "      symbol: /symbol\n"
        << "      bid: /bidPrice\n"
        << "      ask: /askPrice\n"
        << "      bid_size: /bidQty\n"
        << "      ask_size: /askQty\n"
        << "      exchange_time: { pointer: /time, unit: ms }\n"
        << "      seq: /seq\n"
        << c.extra;
    return path;
}

std::vector<OutputFile> read_output(const fs::path& dir) {
    std::vector<OutputFile> files;
    if (!fs::exists(dir)) return files;
    for (auto& entry : fs::directory_iterator(dir)) {
        if (entry.path().extension() != ".jsonl") continue;
        OutputFile f;
        f.path = entry.path();
        std::string text = slurp(entry.path());
        f.ends_with_newline = text.empty() || text.back() == '\n';
        std::istringstream in(text);
        std::string line;
        std::size_t n = 0;
        while (std::getline(in, line)) {
            ++n;
            try {
                f.records.push_back(nlohmann::json::parse(line));
            } catch (const std::exception&) {
                ADD_FAILURE() << f.path << ":" << n << " is not valid JSON: " << line.substr(0, 200);
            }
        }
        files.push_back(std::move(f));
    }
    return files;
}

// The daemon's own state files in output.dir (.mdagg-drain.json, .mdagg.lock, ...); their
// temp files (.tmp) are unfinished.
static bool is_state_file(const fs::path& p) {
    const auto name = p.filename().string();
    return name.starts_with(".mdagg") && p.extension() != ".tmp";
}

std::vector<fs::path> unfinished_files(const fs::path& dir) {
    std::vector<fs::path> out;
    if (!fs::exists(dir)) return out;
    for (auto& entry : fs::directory_iterator(dir))
        if (entry.path().extension() != ".jsonl" && !is_state_file(entry.path())) out.push_back(entry.path());
    return out;
}

std::string http_get(int port, const std::string& target) { return http_request(port, "GET", target).body; }

HttpResponse http_request(int port, const std::string& method, const std::string& target, const std::string& body,
                          const std::string& headers) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return HttpResponse{};
    }
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + headers;
    if (!body.empty() || method == "POST")
        req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    req += "\r\n" + body;
    (void)!::write(fd, req.data(), req.size());
    std::string resp;
    char buf[65536];
    for (;;) {
        auto n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        resp.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    HttpResponse r;
    auto head_end = resp.find("\r\n\r\n");
    if (head_end == std::string::npos || resp.compare(0, 9, "HTTP/1.1 ") != 0) return r;
    r.status = std::atoi(resp.c_str() + 9);
    r.body = resp.substr(head_end + 4);
    return r;
}

std::uint64_t sim_add_fault(int port, const nlohmann::json& fault) {
    const auto reply = http_request(port, "POST", "/control/faults", fault.dump());
    if (reply.status != 201)
        throw std::runtime_error("adding fault " + fault.dump() + ": " +
                                 std::to_string(reply.status) + " " + reply.body);
    return nlohmann::json::parse(reply.body)["id"].get<std::uint64_t>();
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
        if (condition()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return condition();
}

std::optional<double> metric(const std::string& text, const std::string& series) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
    return std::nullopt;
}

CurlResult curl(const TempDir& dir, const std::string& name, std::vector<std::string> args) {
    std::vector<std::string> argv{"/usr/bin/curl", "--silent", "--show-error", "--max-time", "10"};
    argv.insert(argv.end(), args.begin(), args.end());
    Process p(name, argv, dir.path());
    CurlResult r;
    r.exit = p.wait(std::chrono::seconds(20)).value_or(-1);
    r.out = p.stdout_text();
    r.err = p.stderr_text();
    return r;
}

double metric_or_zero(int admin_port, const std::string& series) {
    return metric(http_request(admin_port, "GET", "/metrics").body, series).value_or(0);
}

int admin_port_of(const Process& daemon) {
    auto line = daemon.wait_for_line("msg", "admin listening", std::chrono::seconds(30));
    if (!line) throw std::runtime_error("no \"admin listening\" line: " + daemon.stdout_text());
    return (*line)["port"].get<int>();
}

}  // namespace harness

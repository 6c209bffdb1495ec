// mdagg-sim: the quote simulator as a program. stdout carries only JSON event lines.
#include "mdagg/sim.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <nlohmann/json.hpp>

#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <sstream>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

constexpr std::string_view kUsage =
    "usage: mdagg-sim [options]\n"
    "  --listen HOST:PORT                  listen address (default 127.0.0.1:8081; port 0 = any);\n"
    "                                      repeat it for mirrors: one book, each its own faults\n"
    "  --symbols N                         symbols PREFIX0 .. PREFIX(N-1) (default 2000)\n"
    "  --prefix P                          symbol name prefix (default STOCK_)\n"
    "  --latency MIN[-MAX]                 added latency, e.g. 2ms or 1ms-5ms (units us, ms, s)\n"
    "  --hung-ratio R                      share of symbols that never answer, 0..1\n"
    "  --hung SYMBOL[,SYMBOL...]           symbols that never answer\n"
    "  --max-requests-per-connection N     close a connection after N responses (0 = never)\n"
    "  --fault JSON                        a fault active from the start (repeatable; \"listener\":K\n"
    "                                      for the K-th --listen, from 0), e.g.\n"
    "                                      '{\"kind\":\"status\",\"status\":503,\"request_ratio\":0.1}'\n"
    "  --faults-file PATH                  faults from a file: a JSON array, or one per line\n"
    "  --control HOST:PORT                 a listener for /control/ and /stats only, which\n"
    "                                      faults never touch (port 0 = any)\n"
    "  --tls-cert FILE --tls-key FILE      serve both listeners over TLS 1.2/1.3 (PEM certificate\n"
    "                                      chain and key); /stats counts handshakes and resumptions\n"
    "  --tls-client-ca FILE                require client certificates signed by this CA\n"
    "  --tls-version 1.2|1.3               allow only this TLS version (default both)\n"
    "  --record-headers                    report request headers and query parameters in /stats\n"
    "  --threads N                         io threads (default 1)\n"
    "  --seed N                            random seed (default 1)\n"
    "  --version, --help\n"
    "Faults are added, listed and removed at run time with POST/GET/DELETE /control/faults\n"
    "(on any listener), a given listener's at /control/listeners/K/faults.\n"
    "docs/simulator.md lists the kinds and their parameters.\n";

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

template <class Int>
Int parse_int(std::string_view option, std::string_view text, Int min, Int max) {
    Int value{};
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value < min ||
        value > max)
        throw UsageError(std::string(option) + ": expected an integer in [" +
                         std::to_string(min) + ", " + std::to_string(max) + "], got '" +
                         std::string(text) + "'");
    return value;
}

// "250us", "2ms", "1s" or "0". `default_unit` lets "1-5ms" mean 1ms-5ms.
std::chrono::microseconds parse_duration(std::string_view text, std::string_view default_unit) {
    const auto digits_end = text.find_first_not_of("0123456789");
    const std::string_view number = text.substr(0, digits_end);
    std::string_view unit =
        digits_end == std::string_view::npos ? std::string_view{} : text.substr(digits_end);
    if (unit.empty()) unit = default_unit;
    const auto value = parse_int<std::int64_t>("--latency", number, 0, 1'000'000'000);
    if (unit == "us") return std::chrono::microseconds(value);
    if (unit == "ms") return std::chrono::milliseconds(value);
    if (unit == "s") return std::chrono::seconds(value);
    if (unit.empty() && value == 0) return std::chrono::microseconds(0);
    throw UsageError("--latency: expected a duration like 2ms, 250us or 1s, got '" +
                     std::string(text) + "'");
}

void parse_latency(std::string_view text, mdagg::sim::Options& options) {
    const auto dash = text.find('-');
    if (dash == std::string_view::npos) {
        options.latency_min = options.latency_max = parse_duration(text, {});
        return;
    }
    const std::string_view max_text = text.substr(dash + 1);
    const auto unit_at = max_text.find_first_not_of("0123456789");
    const std::string_view max_unit =
        unit_at == std::string_view::npos ? std::string_view{} : max_text.substr(unit_at);
    options.latency_min = parse_duration(text.substr(0, dash), max_unit);
    options.latency_max = parse_duration(max_text, {});
    if (options.latency_max < options.latency_min)
        throw UsageError("--latency: MIN is larger than MAX in '" + std::string(text) + "'");
}

// A JSON array of faults, or one fault per line (blank lines and lines starting with # skipped).
void read_faults_file(const std::string& path, mdagg::sim::Options& options) {
    std::ifstream in(path);
    if (!in) throw UsageError("--faults-file: cannot read '" + path + "'");
    std::stringstream text;
    text << in.rdbuf();
    const auto whole = nlohmann::json::parse(text.str(), nullptr, false);
    if (!whole.is_discarded() && whole.is_array()) {
        for (const auto& fault : whole) options.faults.push_back(fault.dump());
        return;
    }
    std::string line;
    text.clear();
    text.seekg(0);
    for (int number = 1; std::getline(text, line); ++number) {
        const auto start = line.find_first_not_of(" \t\r");
        if (start == std::string::npos || line[start] == '#') continue;
        if (nlohmann::json::parse(line, nullptr, false).is_discarded())
            throw UsageError("--faults-file: " + path + ":" + std::to_string(number) +
                             ": not valid JSON");
        options.faults.push_back(line);
    }
}

struct Command {
    mdagg::sim::Options options;
    unsigned threads = 1;
    bool listen_given = false;  // a second --listen adds a listener
    bool help = false;
    bool version = false;
};

Command parse_args(int argc, char** argv) {
    Command cmd;
    std::vector<std::string_view> args(argv + 1, argv + argc);
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string_view arg = args[i];
        std::string_view value;
        bool has_value = false;
        if (auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
            value = arg.substr(eq + 1);
            arg = arg.substr(0, eq);
            has_value = true;
        }
        auto need_value = [&]() -> std::string_view {
            if (has_value) return value;
            if (i + 1 >= args.size()) throw UsageError(std::string(arg) + " needs a value");
            return args[++i];
        };
        auto& o = cmd.options;
        if (arg == "--help" || arg == "-h") {
            cmd.help = true;
        } else if (arg == "--version") {
            cmd.version = true;
        } else if (arg == "--listen") {
            try {
                if (cmd.listen_given)
                    mdagg::sim::add_listener(std::string(need_value()), o);
                else
                    mdagg::sim::parse_listen(std::string(need_value()), o);
                cmd.listen_given = true;
            } catch (const std::invalid_argument& e) {
                throw UsageError(std::string("--listen: ") + e.what());
            }
        } else if (arg == "--control") {
            try {
                mdagg::sim::parse_control(std::string(need_value()), o);
            } catch (const std::invalid_argument& e) {
                throw UsageError(std::string("--control: ") + e.what());
            }
        } else if (arg == "--fault") {
            o.faults.emplace_back(need_value());
        } else if (arg == "--faults-file") {
            read_faults_file(std::string(need_value()), o);
        } else if (arg == "--symbols") {
            o.symbols = parse_int<std::size_t>(arg, need_value(), 1, 10'000'000);
        } else if (arg == "--prefix") {
            o.prefix = std::string(need_value());
            if (o.prefix.empty() || o.prefix.find_first_of("/?#% \"\\") != std::string::npos)
                throw UsageError("--prefix: must be non-empty and URL-path safe");
        } else if (arg == "--latency") {
            parse_latency(need_value(), o);
        } else if (arg == "--hung-ratio") {
            const std::string text(need_value());
            std::size_t used = 0;
            double ratio = -1;
            try {
                ratio = std::stod(text, &used);
            } catch (const std::exception&) {
            }
            if (used != text.size() || !(ratio >= 0.0 && ratio <= 1.0))
                throw UsageError("--hung-ratio: expected a number in [0, 1], got '" + text + "'");
            o.hung_ratio = ratio;
        } else if (arg == "--hung") {
            std::string_view list = need_value();
            while (!list.empty()) {
                const auto comma = list.find(',');
                const std::string_view name = list.substr(0, comma);
                if (!name.empty()) o.hung_symbols.emplace_back(name);
                list = comma == std::string_view::npos ? std::string_view{}
                                                       : list.substr(comma + 1);
            }
        } else if (arg == "--max-requests-per-connection") {
            o.max_requests_per_connection = parse_int<std::size_t>(
                arg, need_value(), 0, std::numeric_limits<std::size_t>::max());
        } else if (arg == "--tls-cert") {
            o.tls_cert = std::string(need_value());
        } else if (arg == "--tls-key") {
            o.tls_key = std::string(need_value());
        } else if (arg == "--tls-client-ca") {
            o.tls_client_ca = std::string(need_value());
        } else if (arg == "--tls-version") {
            o.tls_version = std::string(need_value());
        } else if (arg == "--record-headers") {
            o.record_headers = true;
        } else if (arg == "--threads") {
            cmd.threads = parse_int<unsigned>(arg, need_value(), 1, 256);
        } else if (arg == "--seed") {
            o.seed = parse_int<std::uint64_t>(arg, need_value(), 0,
                                              std::numeric_limits<std::uint64_t>::max());
        } else {
            throw UsageError("unknown argument '" + std::string(arg) + "'");
        }
    }
    return cmd;
}

void print_line(const std::string& line) {
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);  // tests and scripts read these lines while we run
}

}  // namespace

int main(int argc, char** argv) {
    Command cmd;
    try {
        cmd = parse_args(argc, argv);
    } catch (const UsageError& e) {
        std::cerr << "mdagg-sim: " << e.what() << "\n" << kUsage;
        return 2;
    }
    if (cmd.help) {
        std::cout << kUsage;
        return 0;
    }
    if (cmd.version) {
        std::cout << "mdagg-sim " << MDAGG_VERSION << "\n";
        return 0;
    }

    try {
        // Hint 1 turns on Asio's single-threaded fast path.
        boost::asio::io_context io(cmd.threads == 1 ? 1 : static_cast<int>(cmd.threads));
        // Before start(): a SIGTERM right after the "listening" line must not kill us.
        boost::asio::signal_set signals(io, SIGINT, SIGTERM);
        mdagg::sim::Simulator sim(io, cmd.options);  // a bad --fault throws invalid_argument
        sim.start();
        signals.async_wait([&sim](const boost::system::error_code& ec, int) {
            if (!ec) sim.stop();  // once the connections are closed, run() returns
        });

        nlohmann::json listening{{"event", "listening"},
                                 {"host", cmd.options.host},
                                 {"port", sim.port()},
                                 {"symbols", cmd.options.symbols},
                                 {"tls", !cmd.options.tls_cert.empty()}};
        if (cmd.options.control) {
            listening["control_host"] = cmd.options.control_host;
            listening["control_port"] = sim.control_port();
        }
        listening["faults"] = cmd.options.faults.size();
        nlohmann::json listeners = nlohmann::json::array();
        for (std::size_t i = 0; i < sim.listeners(); ++i)
            listeners.push_back({{"host", i == 0 ? cmd.options.host
                                                 : cmd.options.more_listeners[i - 1].host},
                                 {"port", sim.port(i)}});
        listening["listeners"] = std::move(listeners);
        print_line(listening.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));

        // A handler that throws must not leave joinable threads behind (std::terminate).
        auto run = [&io] {
            try {
                io.run();
            } catch (const std::exception& e) {
                std::fprintf(stderr, "mdagg-sim: io thread: %s\n", e.what());
                io.stop();
            }
        };
        std::vector<std::thread> extra;
        for (unsigned i = 1; i < cmd.threads; ++i) extra.emplace_back(run);
        run();
        for (auto& t : extra) t.join();

        // Splice rather than re-parse: stats_json is already valid JSON and may be large.
        std::string stats = sim.stats_json();
        print_line("{\"event\":\"stopped\"," + stats.substr(1));
        return 0;
    } catch (const std::invalid_argument& e) {
        std::cerr << "mdagg-sim: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "mdagg-sim: " << e.what() << "\n";
        return 1;
    }
}

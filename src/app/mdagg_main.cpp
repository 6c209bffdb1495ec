// mdagg: polls quote endpoints, aggregates, writes JSON lines; drains on SIGTERM/SIGINT.
#include <mdagg/config.hpp>
#include <mdagg/lifecycle.hpp>
#include <mdagg/observe.hpp>

#include <nlohmann/json.hpp>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <system_error>

namespace {

constexpr const char* usage_text =
    "usage: mdagg --config FILE        run the daemon\n"
    "       mdagg --check-config FILE  validate FILE and exit (0 valid, 2 invalid)\n"
    "       mdagg --check-config FILE --print\n"
    "                                  ... and print it as read, presets applied (YAML)\n"
    "       mdagg --version | --help\n"
    "\n"
    "signals: SIGTERM/SIGINT drain and exit; SIGHUP re-reads FILE and applies the difference\n"
    "\n"
    "exit codes: 0 drained cleanly, 1 fatal error or output not fully written,\n"
    "            2 bad usage, bad config or unwritable output directory (nothing started),\n"
    "            3 drain budget exceeded or second signal (forced stop)\n";

int usage_error(const std::string& message) {
    std::cerr << "mdagg: " << message << "\n" << usage_text;
    return mdagg::exit_usage;
}

}  // namespace

int main(int argc, char** argv) {
    std::string config_path;
    bool check_only = false;
    bool print = false;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            std::cout << usage_text;
            return mdagg::exit_ok;
        }
        if (arg == "--version") {
            std::cout << "mdagg " MDAGG_VERSION "\n";
            return mdagg::exit_ok;
        }
        if (arg == "--config" || arg == "--check-config") {
            if (i + 1 >= argc) return usage_error(arg + " needs a file");
            if (!config_path.empty()) return usage_error("give one config file");
            config_path = argv[++i];
            check_only = arg == "--check-config";
            continue;
        }
        if (arg == "--print") {
            print = true;
            continue;
        }
        return usage_error("unknown argument \"" + arg + "\"");
    }
    if (config_path.empty()) return usage_error("--config FILE is required");
    if (print && !check_only) return usage_error("--print goes with --check-config FILE");

    mdagg::Config config;
    mdagg::ShardingResult shard;
    try {
        config = mdagg::load_config(config_path);
        shard = mdagg::apply_sharding(config, mdagg::ShardingEnv::from_process());
        // A Secret that is not mounted fails here, not at the first POST. --check-config
        // validates the file alone, like the output directory.
        if (!check_only) (void)mdagg::admin_token(config);
    } catch (const mdagg::ConfigError& e) {
        std::cerr << e.what() << "\n";
        if (!check_only) mdagg::log::error("invalid config, nothing started", {{"error", e.what()}});
        return mdagg::exit_usage;
    }
    if (auto exposed = mdagg::admin_exposure_error(config)) {
        std::cerr << config_path << ": " << *exposed << "\n";
        if (!check_only) mdagg::log::error("refusing to start, nothing started", {{"error", *exposed}});
        return mdagg::exit_usage;
    }
    if (print) {
        try {
            std::cout << mdagg::expanded_config(config_path);
        } catch (const mdagg::ConfigError& e) {
            std::cerr << e.what() << "\n";
            return mdagg::exit_usage;
        }
        return mdagg::exit_ok;
    }
    if (check_only) {
        std::size_t pollers = 0;
        for (auto& s : config.sources) pollers += s.symbols.size();
        std::cout << config_path << ": ok (" << config.sources.size() << " sources, " << pollers
                  << " pollers";
        if (config.sharding.count > 1)
            std::cout << "; shard " << config.sharding.index << " of " << config.sharding.count << ": "
                      << shard.symbols_kept << " of " << shard.symbols_total << " symbols";
        std::cout << ")\n";
        return mdagg::exit_ok;
    }
    if (auto level = mdagg::log::parse_level(config.log.level)) mdagg::log::set_level(*level);
    if (config.sharding.count > 1) {
        nlohmann::json fields{{"index", config.sharding.index},
                              {"count", config.sharding.count},
                              {"symbols", shard.symbols_kept},
                              {"symbols_total", shard.symbols_total},
                              {"pollers", shard.pollers_kept}};
        // Hashing leaves a shard empty now and then when there are few symbols per shard. An
        // idle replica is harmless and stays ready, so it runs and drains like any other.
        if (shard.symbols_kept == 0)
            mdagg::log::warn("this shard has no symbols: running idle", fields);
        else
            mdagg::log::info("sharding", fields);
    }

    for (const auto& s : config.sources)
        if (s.uses_tls() && !s.tls.verify)
            mdagg::log::warn("TLS certificate verification is off: anyone on the path can impersonate the server",
                             {{"source", s.name}});

    // A closed log pipe must not kill the daemon mid-drain: write(2) then fails with EPIPE.
    std::signal(SIGPIPE, SIG_IGN);
    try {
        return mdagg::run_daemon(config);
    } catch (const mdagg::StartupError& e) {
        mdagg::log::error("cannot start, nothing started", {{"error", e.what()}});
        std::cerr << "mdagg: " << e.what() << "\n";
        return mdagg::exit_usage;
    } catch (const std::exception& e) {
        mdagg::log::error("fatal error", {{"error", e.what()}});
        return mdagg::exit_fatal;
    }
}

// The lifecycle supervisor: wires config -> pollers -> aggregator -> sink, runs them on one
// io_context, and drains them in stages on SIGTERM/SIGINT within the configured budget.
#pragma once

#include <mdagg/config.hpp>
#include <mdagg/quote.hpp>

#include <optional>
#include <stdexcept>
#include <string>

namespace mdagg {

enum ExitCode : int {
    exit_ok = 0,            // drained cleanly
    exit_fatal = 1,         // any other fatal error
    exit_usage = 2,         // bad usage or bad config: nothing started, nothing written
    exit_drain_timeout = 3  // the drain budget ran out (or a second signal forced the stop)
};

// Ids for every source and symbol in the config; a symbol polled from two sources has one id.
Universe make_universe(const Config& config);

// Something the daemon needs at start-up is unusable (an output directory that cannot be
// written): like a bad config, nothing started.
class StartupError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// An admin server anyone on the network could use to stop every poller: a listen address
// other than loopback, no token, and no admin.allow_unauthenticated. The message (naming
// admin.listen and the fixes) when refused, nullopt otherwise. --check-config reports it too.
std::optional<std::string> admin_exposure_error(const Config& config);

// Runs until a signal drains the daemon; returns the process exit code. Throws StartupError.
int run_daemon(const Config& config);

}  // namespace mdagg

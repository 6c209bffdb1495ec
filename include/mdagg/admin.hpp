// The ops HTTP server: GET /metrics (Prometheus text), /healthz, /readyz, /debug/tasks and
// POST /admin/{pause,resume,cancel}. It runs on the daemon's io_context; what it reports and
// does comes from a Backend the daemon implements. Routing, auth, selectors and the
// Prometheus text are sans-io and tested without sockets.
#pragma once

#include <mdagg/observe.hpp>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mdagg::admin {

// The Prometheus text writer moved to <mdagg/observe.hpp>; the admin server appends its own
// families with it.
using mdagg::Label;
using mdagg::PrometheusWriter;

// ---- selecting pollers ------------------------------------------------------------------------

// Shell-style: '*' any run of characters, '?' any one; everything else literal.
bool glob_match(std::string_view pattern, std::string_view text) noexcept;

// Every given criterion must hold (AND); within `symbols`, any one name (OR).
struct Selector {
    std::string source;                // empty: any source
    std::vector<std::string> symbols;  // exact names; empty: any
    std::string glob;                  // symbol glob; empty: any
    std::string tag;                   // empty: any
    std::string state;                 // /debug/tasks only: a poller state or control name
    bool all = false;                  // {"all": true}: say so to act on every poller

    bool has_criteria() const noexcept {
        return !source.empty() || !symbols.empty() || !glob.empty() || !tag.empty();
    }
    // Source, symbols, glob and tag; `has_tag` answers for this poller.
    bool matches(std::string_view source_name, std::string_view symbol,
                 const std::function<bool(std::string_view tag)>& has_tag) const;
};

// POST body: {"source": "sim", "symbols": ["A", "B"], "glob": "STOCK_1*", "tag": "nyse"} or
// {"all": true}. Unknown keys, wrong types and an empty selector are errors (a typo must not
// act on every poller). Returns the error message.
std::optional<std::string> parse_selector(std::string_view json, Selector& out);
// GET /debug/tasks?source=..&symbol=GLOB&tag=..&state=..: percent-decoded; no criterion = all.
std::optional<std::string> parse_task_query(std::string_view query, Selector& out);

// ---- routing ----------------------------------------------------------------------------------

struct Response {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
};

enum class Action { pause, resume, cancel };
std::string_view to_string(Action a) noexcept;

// What the endpoints report and do. Called on the admin server's executor; implementations
// read atomics or post to the owners of the state.
class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string metrics() = 0;  // Prometheus text
    virtual Response healthz() = 0;     // 200 or 503, JSON
    virtual Response readyz() = 0;      // 200 or 503, JSON
    virtual Response tasks(const Selector& filter) = 0;
    virtual Response control(Action action, const Selector& selector) = 0;
};

struct Request {
    std::string_view method;
    std::string_view target;         // path and query
    std::string_view authorization;  // the header's value, empty when absent
    std::string_view body;
};

// Routes one request. `token` empty: POST /admin/* need no authorization.
Response handle(const Request& request, Backend& backend, std::string_view token);

// Compact JSON text in which bytes that are not UTF-8 (a client's, echoed in an error) become
// U+FFFD instead of making the dump throw.
std::string json_text(const nlohmann::json& value);

// Paths a connection in a reserved probe slot may ask for (see ServerOptions::probe_slots).
bool is_probe_path(std::string_view target) noexcept;

// ---- the server -------------------------------------------------------------------------------

// Connection admission. Slow or idle clients must not starve the liveness and readiness
// probes: one peer (IP address) holds at most max_connections_per_peer of the
// max_connections; past either bound a connection may take one of probe_slots reserved
// slots (one per peer), where it has probe_read_timeout to send a single request and only
// GET /healthz and /readyz are answered (anything else: 503). Past that it is closed at once
// and counted in mdagg_admin_connections_rejected_total.
struct ServerOptions {
    std::string host = "127.0.0.1";
    std::uint16_t port = 9100;
    std::string token;
    std::size_t max_connections = 64;
    std::size_t max_connections_per_peer = 16;
    std::size_t probe_slots = 4;
    std::chrono::milliseconds probe_read_timeout{2000};
};

class Server {
public:
    Server(boost::asio::io_context& io, ServerOptions options, Backend& backend);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds and starts accepting; returns the bound port. Throws std::system_error.
    std::uint16_t start();
    // Stops accepting and closes every connection. Any thread.
    void stop();
    void set_token(std::string token);  // for a reload; any thread

    struct Stats {
        std::uint64_t rejected_full = 0;      // every slot, reserved ones included, taken
        std::uint64_t rejected_per_peer = 0;  // the peer held its share and a probe slot
        std::uint64_t probe_slot_uses = 0;    // connections served in a reserved slot
        std::size_t open = 0;
    };
    Stats stats() const;

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace mdagg::admin

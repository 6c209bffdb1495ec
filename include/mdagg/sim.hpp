// mdagg-sim: an HTTP/1.1 quote simulator (Beast, C++20 coroutines, keep-alive) for the demo,
// the tests and the benchmarks, with faults that can be switched on and off while it runs.
//
// Faults. A fault is a JSON object:
//   {"kind": K, <selector>, "after": A, "duration": D, "count": N, <params>}
//   selector (at most one; none = every quote request):
//     "symbols": ["STOCK_1", ...]   these symbols
//     "symbol_ratio": R             symbols whose stable name hash falls below R (symbol_in_ratio)
//     "request_ratio": R            each request with probability R (the connection's seeded RNG)
//   "after": "10s"    the fault starts that long after it was added (e.g. into a run)
//   "duration": "5s"  the fault removes itself after that long from its start (us, ms, s, m, h)
//   "count": N        ... or after answering N requests (a ban: N triggers, each running its period)
//   kinds and their parameters (defaults in brackets):
//     latency            "min", "max" [min]; "distribution": "uniform" | "pareto" (scale min,
//                        shape "alpha" [1.5], capped at max [10s])
//     hang               never answers; the connection is held until the client closes it
//     reset              sends "after_bytes" [head + half the body], then RST (SO_LINGER 0)
//     close_after        "requests" N [0]: on a connection that has answered N requests, the
//                        next selected request gets no answer: the connection just closes (FIN)
//     status             "status" [503], optional "retry_after", "retry_after_form"
//     too_many_requests  429 with Retry-After: "retry_after" [1s], "retry_after_form":
//                        "seconds" | "http_date" | "none" [seconds]
//     ban                "status" [418] (403 for Bybit-like), "period" [10s]: once triggered every
//                        quote request gets it, with Retry-After = the time left, until it ends
//     body_error         200 (or "status") with "body" [{"code":"50011","msg":"busy"}]
//     malformed          200 with invalid JSON ("body" to choose it)
//     truncated          Content-Length promises the whole body; "after_bytes" [half] of it
//                        are sent, then the connection closes
//     oversized          200 with a valid quote padded to "size" bytes [1 MiB]
//     endless_headers    a status line, then a header line every "interval" [100ms], forever
//     trickle            a good quote (it takes a seq), "chunk" [1] bytes every "interval" [100ms]
//     refuse             the quote listener closes (connect() is refused) until the fault ends;
//                        "drop_connections" [false] also closes the open ones
//     restart            every quote connection and the listener close; the listener comes back
//                        after "period" [1s]. Seq numbers carry on across the restart.
//     rate_limit         "limit" requests-weight per "window" [1s], "weight" [1] per request;
//                        beyond it 429 + Retry-After (end of window); "ban_after" N [0 = never]
//                        429s in a row of windows -> "ban_status" [418] for "ban_period" [10s];
//                        "usage_header" (e.g. X-MBX-USED-WEIGHT-1M) reports the weight used
//     interim            "status" [100] (100 Continue or 103 Early Hints) sent first, then a good
//                        quote (it takes a seq) on the same connection
//   refuse, restart and rate_limit take no selector and no count.
// Precedence per quote request: a ban in force; then rate limits (counted on every request);
// then every matching latency fault adds its delay; then the oldest matching fault (lowest id)
// of any other kind answers. Faults touch only known symbols' /quotes/ requests, never /stats
// or /control/.
//
// Accounting. A seq is taken by a good quote response (and by a trickle, which is a good quote
// sent slowly) and by nothing else. "responses" and per_symbol count a quote once its last byte
// was written; a quote whose write failed is counted in failed_writes and its seq is lost, so
// for every symbol last_seq == per_symbol + the failed writes of that symbol. A write that
// completed is counted even if the client had already given up on it (timed out) by then.
// While a quote is being written its seq is taken but not yet counted: compare the stats once
// the client has stopped.
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mdagg::sim {

struct Endpoint {
    std::string host;
    std::uint16_t port = 0;
};

struct Options {
    std::string host = "127.0.0.1";
    std::uint16_t port = 8081;  // 0 = pick a free port (see Simulator::port())
    // Listeners 1.. beside host:port (listener 0), like a venue's mirrors: one book and one
    // seq per symbol, each listener with its own faults, connections and counters.
    std::vector<Endpoint> more_listeners;
    std::size_t symbols = 2000;  // names prefix + 0 .. symbols-1
    std::string prefix = "STOCK_";
    std::chrono::microseconds latency_min{0};  // added before each response, uniform in [min, max]
    std::chrono::microseconds latency_max{0};
    double hung_ratio = 0.0;  // share of symbols that never answer (chosen by a stable hash)
    std::vector<std::string> hung_symbols;  // and these, by name
    std::size_t max_requests_per_connection = 0;  // close after N responses; 0 = never
    std::uint64_t seed = 1;
    std::vector<std::string> faults;  // fault JSON objects, active from start(); "listener": K
                                      // sends one to listener K (0 = host:port)
    // A second listener for /control/ and /stats only: faults never touch it, so a test can
    // end a refuse or restart through it.
    bool control = false;
    std::string control_host = "127.0.0.1";
    std::uint16_t control_port = 0;  // 0 = pick a free port (see Simulator::control_port())
    // TLS on both listeners when tls_cert and tls_key are set (PEM files). tls_client_ca
    // requires client certificates signed by it; tls_version "1.2" or "1.3" allows only that
    // one (default: both). Counted in stats_json's "tls".
    std::string tls_cert;
    std::string tls_key;
    std::string tls_client_ca;
    std::string tls_version;
    // Report request headers and query parameters in stats_json ("headers", "query").
    bool record_headers = false;
};

// Parses "HOST:PORT"; throws std::invalid_argument.
void parse_listen(const std::string& text, Options& options);
// Parses "HOST:PORT" into one more listener (the second and later --listen).
void add_listener(const std::string& text, Options& options);
// Same, into control_host/control_port, and turns the control listener on.
void parse_control(const std::string& text, Options& options);

// True when a symbol_ratio selector of `ratio` picks `symbol`.
bool symbol_in_ratio(std::string_view symbol, double ratio) noexcept;

class Simulator {
public:

    // Throws std::invalid_argument for bad options, a bad fault in options.faults, or TLS
    // files that cannot be loaded.
    Simulator(boost::asio::io_context& io, Options options);
    ~Simulator();

    void start();  // binds and starts accepting; throws std::system_error
    void stop();   // stops accepting and closes every connection
    std::uint16_t port() const;
    std::uint16_t control_port() const;  // 0 without a control listener
    std::size_t listeners() const;  // 1 + options.more_listeners.size()
    std::uint16_t port(std::size_t listener) const;

    // The control API, also served over HTTP (any thread may call these):
    //   POST   /control/faults       body: one fault -> 201 {"id": N, "kind": K}; 400 {"error",
    //                                "reason"} for a bad fault
    //   GET    /control/faults       200 {"faults": [{"id", "kind", "hits", "expires_in_ms"
    //                                (null = no expiry), "spec", ["starts_in_ms"],
    //                                ["banned_for_ms"], ["used"]}]}
    //   DELETE /control/faults/{id}  200 {"deleted": [id]}; 404 if no such fault
    //   DELETE /control/faults       200 {"deleted": [ids...]}
    //   GET    /control/listeners    200 {"listeners": [{"index", "host", "port", ...}]}
    //   ...    /control/listeners/K/faults[/id]: the same API, for listener K's faults
    // add_fault(json) goes to listener 0 unless the fault says "listener": K. Fault ids are
    // per listener.
    std::uint64_t add_fault(std::string_view json);  // throws std::invalid_argument
    bool remove_fault(std::uint64_t id);
    std::size_t clear_faults();
    std::string faults_json() const;
    std::uint64_t add_fault(std::size_t listener, std::string_view json);
    bool remove_fault(std::size_t listener, std::uint64_t id);
    std::size_t clear_faults(std::size_t listener);
    std::string faults_json(std::size_t listener) const;

    bool is_hung(std::string_view symbol) const;
    // Responses to /quotes/... written completely to a socket, by every listener.
    std::uint64_t responses_written() const;
    // {"responses", "requests", "connections", "open_connections", "hung_requests",
    //  "failed_writes", "not_found", "bad_requests", "control_requests", "listening" (bool:
    //  the quote listener is open), "active_faults", "faults": {kind: n for every kind, plus
    //  "rate_limited"}, "per_symbol": {name: quotes written}, "last_seq": {name: seq} (symbols
    //  with seq > 0 only), "gzip_responses" (answers compressed for Accept-Encoding: gzip),
    //  ["tls"], ["headers", "query"], "listeners": [{"index", "host", "port", "listening",
    //  "responses", "requests", "connections", "open_connections", "failed_writes",
    //  "active_faults", "refused"}]}. The counts are the sums over every listener;
    //  "listening" and "max_concurrent_requests" are listener 0's.
    std::string stats_json() const;

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace mdagg::sim

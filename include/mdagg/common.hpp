// Small helpers several modules share, with no dependencies of their own: the wall clock, FNV-1a,
// the RFC 3339 text of a time and the HOST:PORT parser. One definition of each, so that the
// shard of a symbol, a poller's phase and the text of a time cannot drift between modules.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mdagg {

// Nanoseconds since the Unix epoch by the system clock: the time records and reports carry.
inline std::int64_t wall_clock_ns() noexcept {
    using namespace std::chrono;
    return duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count();
}

// ---- FNV-1a, 64 bits ------------------------------------------------------------------------

inline constexpr std::uint64_t fnv1a_64_basis = 0xcbf29ce484222325ULL;

// `hash` continues an earlier hash: fnv1a_64(b, fnv1a_64(a)) == fnv1a_64(a + b). Stable across
// runs and machines (shards and poll phases depend on it: never change it).
constexpr std::uint64_t fnv1a_64(std::string_view bytes, std::uint64_t hash = fnv1a_64_basis) noexcept {
    for (const char c : bytes) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 0x100000001b3ULL;  // FNV prime
    }
    return hash;
}

// ---- RFC 3339 text of a time ---------------------------------------------------------------

// Digits of the second's fraction. The fraction is truncated (floored: before 1970 too), never
// rounded, so the text never shows a later time than the instant.
enum class FractionDigits : std::uint8_t { ms = 3, us = 6, ns = 9 };

// The longest text put_rfc3339 writes: "2025-11-24T16:00:00.123456789Z". Every int64
// nanosecond instant (1677..2262) has a four-digit year.
inline constexpr std::size_t rfc3339_max_chars = 30;

// UTC, "YYYY-MM-DDTHH:MM:SS.fffffffffZ" with `digits` fraction digits; unquoted. Writes at p,
// which must hold rfc3339_max_chars, and returns one past the end. Allocation-free: the
// date and the second are cached per thread (records' times mostly repeat a recent second).
char* put_rfc3339(char* p, std::int64_t ns, FractionDigits digits = FractionDigits::ns) noexcept;
void append_rfc3339(std::string& out, std::int64_t ns, FractionDigits digits = FractionDigits::ns);

// ---- HOST:PORT -----------------------------------------------------------------------------

// "HOST:PORT" or "[IPV6]:PORT" split at its last colon; the brackets are not part of host.
// Neither part is checked beyond the syntax: callers decide whether a name, an IP literal or
// an empty host is acceptable, and parse the port with parse_port (so each can word its own
// error and check in its own order).
struct HostPort {
    std::string_view host;
    std::string_view port;
    bool bracketed = false;
};
enum class HostPortError : std::uint8_t {
    none,
    malformed,       // no colon, or "[...]" not followed by ":"
    needs_brackets,  // a colon inside an unbracketed host: an IPv6 address
};
HostPortError split_host_port(std::string_view text, HostPort& out) noexcept;

// ---- Interned names --------------------------------------------------------------------------

// The one immortal copy of `text`: the same pointer for equal texts, valid until the process
// ends. For the few names a record may point at instead of carrying (a quote's `via` host),
// so records stay trivially copyable and nothing allocates per record. Thread-safe; a name
// is added once (a mutex and a lookup), never freed: a handful per configured host.
const std::string* intern_name(std::string_view text);

// A decimal port 0..65535, digits only; false (out untouched) otherwise.
bool parse_port(std::string_view text, std::uint16_t& out) noexcept;

}  // namespace mdagg

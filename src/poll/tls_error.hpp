#pragma once
// What the TLS transport's errors mean to the poll policy. No OpenSSL here: poll_fsm.cpp
// classifies with it and stays sans-io.
#include <mdagg/poll.hpp>

#include <boost/system/error_code.hpp>

#include <optional>

namespace mdagg::detail {

// The transport's own errors. Verify failures are in a category of their own whose values
// are OpenSSL's X509_V_ERR_* codes, so message() gives OpenSSL's verify reason.
enum class TlsErrc { handshake_interrupted = 1 };  // the poll's deadline or the drain, mid-handshake
const boost::system::error_category& tls_category() noexcept;
const boost::system::error_category& tls_verify_category() noexcept;
inline boost::system::error_code make_error_code(TlsErrc e) noexcept {
    return {static_cast<int>(e), tls_category()};
}

// tls_verify for a refused certificate, tls_handshake for a handshake or TLS record failure
// (OpenSSL's errors, an interrupted handshake); nullopt for anything else (a cut connection
// keeps its TCP class; a close without close_notify is a reset).
std::optional<PollError> tls_error_class(const boost::system::error_code& ec) noexcept;

// The peer closed without close_notify (asio::ssl::error::stream_truncated).
bool is_tls_truncation(const boost::system::error_code& ec) noexcept;

}  // namespace mdagg::detail

template <>
struct boost::system::is_error_code_enum<mdagg::detail::TlsErrc> : std::true_type {};

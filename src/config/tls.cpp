// A source's `tls:` block. The files it names go to OpenSSL at load time, so a wrong path, a
// file that is not PEM or a key that does not match its certificate is reported at its key
// (file:line:col, exit 2) by --check-config and at start-up, not at the first handshake.
#include "detail.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <system_error>

namespace mdagg::config_detail {

namespace {

constexpr std::string_view version_choices[] = {"1.2", "1.3"};  // TlsVersion order

// OpenSSL's reason for the last failure ("no certificate or crl found"), and a clean queue.
std::string openssl_reason() {
    unsigned long last = 0;
    while (const unsigned long e = ERR_get_error()) last = e;
    const char* reason = last ? ERR_reason_error_string(last) : nullptr;
    return reason ? reason : "not understood by OpenSSL";
}

// The path's first problem: unreadable (with errno's words) or empty; nullopt when it opens.
std::optional<std::string> unreadable(const std::string& path) {
    const std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rbe"), &std::fclose);
    if (!file) return "cannot read \"" + path + "\": " + std::generic_category().message(errno);
    if (std::fgetc(file.get()) == EOF) return "\"" + path + "\" is empty";
    return std::nullopt;
}

using CtxPtr = std::unique_ptr<SSL_CTX, void (*)(SSL_CTX*)>;

// An encrypted key fails instead of OpenSSL's default: a passphrase prompt on the terminal.
int no_passphrase(char*, int, int, void*) { return 0; }

struct TlsDraft {
    TlsConfig cfg;
    std::optional<Value> ca_file, client_cert, client_key;
};

std::string read_path(const Value& v) {
    std::string path = read_nonempty_string(v);
    if (auto err = unreadable(path)) v.fail(*err);
    return path;
}

std::string read_server_name(const Value& v) {
    std::string name = read_nonempty_string(v);
    for (char c : name)
        if (!is_ascii_alnum(c) && c != '.' && c != '-' && c != '_' && c != ':')
            v.fail("invalid character " + describe_char(c) + " in a server name; expected a DNS name or IP address");
    return name;
}

constexpr Key<TlsDraft> tls_keys[] = {
    {"verify", [](const Value& v, TlsDraft& d) { d.cfg.verify = read_bool(v); }},
    {"ca_file",
     [](const Value& v, TlsDraft& d) {
         d.cfg.ca_file = read_path(v);
         d.ca_file = v;
     }},
    {"server_name", [](const Value& v, TlsDraft& d) { d.cfg.server_name = read_server_name(v); }},
    {"client_cert",
     [](const Value& v, TlsDraft& d) {
         d.cfg.client_cert = read_path(v);
         d.client_cert = v;
     }},
    {"client_key",
     [](const Value& v, TlsDraft& d) {
         d.cfg.client_key = read_path(v);
         d.client_key = v;
     }},
    {"min_version",
     [](const Value& v, TlsDraft& d) {
         d.cfg.min_version = static_cast<TlsVersion>(read_choice(v, version_choices));
     }},
};

// The same calls the poller group's SSL context makes, on a throwaway context.
void check_files(const Value& block, const TlsDraft& d) {
    ERR_clear_error();
    const CtxPtr ctx(SSL_CTX_new(TLS_client_method()), &SSL_CTX_free);
    if (!ctx) block.fail("OpenSSL cannot create a context: " + openssl_reason());
    SSL_CTX_set_default_passwd_cb(ctx.get(), &no_passphrase);
    if (d.ca_file && SSL_CTX_load_verify_locations(ctx.get(), d.cfg.ca_file.c_str(), nullptr) != 1)
        d.ca_file->fail("no CA certificate in \"" + d.cfg.ca_file + "\": " + openssl_reason());
    if (d.client_cert.has_value() != d.client_key.has_value())
        block.fail_child(d.client_cert ? "client_key" : "client_cert",
                         "client_cert and client_key go together (mutual TLS)");
    if (!d.client_cert) return;
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), d.cfg.client_cert.c_str()) != 1)
        d.client_cert->fail("no certificate in \"" + d.cfg.client_cert + "\": " + openssl_reason());
    // The key's text never enters a message: only OpenSSL's reason does.
    const std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(d.cfg.client_key.c_str(), "rbe"), &std::fclose);
    const std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)> key(
        file ? PEM_read_PrivateKey(file.get(), nullptr, &no_passphrase, nullptr) : nullptr, &EVP_PKEY_free);
    if (!key) d.client_key->fail("no private key in \"" + d.cfg.client_key + "\": " + openssl_reason());
    if (SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1 || SSL_CTX_check_private_key(ctx.get()) != 1)
        d.client_key->fail("does not match the certificate in client_cert: " + openssl_reason());
}

}  // namespace

void read_tls(const Value& v, TlsConfig& out) {
    TlsDraft d;
    read_map(v, tls_keys, d);
    check_files(v, d);
    out = std::move(d.cfg);
}

std::vector<std::string> tls_key_names() {
    std::vector<std::string> out;
    for (const auto& k : tls_keys) out.emplace_back(k.name);
    return out;
}

}  // namespace mdagg::config_detail

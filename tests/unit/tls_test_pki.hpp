// Throwaway certificates for the TLS tests, made with OpenSSL's API at test time (no private
// key is ever committed): a CA, and leaf certificates it (or another CA) signs for given DNS
// names and IP addresses, valid now or already expired. P-256 keys: fast to generate.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace mdagg::test {

struct KeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertFree {
    void operator()(X509* c) const { X509_free(c); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;
using CertPtr = std::unique_ptr<X509, CertFree>;

struct Issued {
    KeyPtr key;
    CertPtr cert;
    std::string cert_file, key_file;
};

inline void pki_check(bool ok, const char* what) {
    if (!ok) throw std::runtime_error(std::string("test PKI: ") + what);
}

inline void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    pki_check(ext != nullptr, "extension");
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

// `sans`: "DNS:localhost", "IP:127.0.0.1". `issuer` null: self-signed (a CA). Validity in
// seconds from now.
inline Issued issue(const std::filesystem::path& dir, const std::string& name, const std::vector<std::string>& sans,
                    const Issued* issuer, long not_before_s = -3600, long not_after_s = 86400) {
    Issued out;
    out.key.reset(EVP_EC_gen("P-256"));
    pki_check(out.key != nullptr, "key");
    out.cert.reset(X509_new());
    X509* c = out.cert.get();
    X509_set_version(c, 2);
    static long serial = 1;
    ASN1_INTEGER_set(X509_get_serialNumber(c), serial++);
    X509_gmtime_adj(X509_getm_notBefore(c), not_before_s);
    X509_gmtime_adj(X509_getm_notAfter(c), not_after_s);
    X509_set_pubkey(c, out.key.get());
    X509_NAME* subject = X509_get_subject_name(c);
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(name.c_str()), -1,
                               -1, 0);
    X509* signer = issuer ? issuer->cert.get() : c;
    X509_set_issuer_name(c, X509_get_subject_name(signer));
    if (!issuer) {
        add_extension(c, signer, NID_basic_constraints, "critical,CA:TRUE");
        add_extension(c, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_extension(c, signer, NID_basic_constraints, "critical,CA:FALSE");
        std::string list;
        for (const auto& s : sans) list += (list.empty() ? "" : ",") + s;
        if (!list.empty()) add_extension(c, signer, NID_subject_alt_name, list);
    }
    pki_check(X509_sign(c, issuer ? issuer->key.get() : out.key.get(), EVP_sha256()) > 0, "sign");

    out.cert_file = (dir / (name + ".crt")).string();
    out.key_file = (dir / (name + ".key")).string();
    std::FILE* f = std::fopen(out.cert_file.c_str(), "w");
    pki_check(f && PEM_write_X509(f, c) == 1, "write cert");
    std::fclose(f);
    f = std::fopen(out.key_file.c_str(), "w");
    pki_check(f && PEM_write_PrivateKey(f, out.key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1, "write key");
    std::fclose(f);
    return out;
}

// The set the tests need: a CA and a server certificate for localhost/127.0.0.1 it signs, one
// for another name, an expired one, and one signed by a CA nobody trusts.
struct TestPki {
    std::filesystem::path dir;
    Issued ca, other_ca, server, wrong_name, expired, unknown_ca;

    explicit TestPki(const std::filesystem::path& where) : dir(where) {
        std::filesystem::create_directories(dir);
        ca = issue(dir, "test-ca", {}, nullptr);
        other_ca = issue(dir, "other-ca", {}, nullptr);
        server = issue(dir, "localhost", {"DNS:localhost", "IP:127.0.0.1"}, &ca);
        wrong_name = issue(dir, "elsewhere", {"DNS:elsewhere.example"}, &ca);
        expired = issue(dir, "expired", {"DNS:localhost", "IP:127.0.0.1"}, &ca, -7 * 86400, -86400);
        unknown_ca = issue(dir, "unknown-ca-leaf", {"DNS:localhost", "IP:127.0.0.1"}, &other_ca);
    }
};

}  // namespace mdagg::test

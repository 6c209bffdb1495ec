#!/usr/bin/env bash
# Makes throwaway TLS test certificates in DIR with the openssl CLI (OpenSSL 3.0, Debian 12).
# Tests run it at test time; no private key is ever committed. Every key is EC P-256 (cheap
# handshakes for the 2,000-poller tests and the benchmark).
#
#   ca.pem                 the test CA (trust this one)
#   server.pem/.key        signed by the CA for DNS:localhost, IP:127.0.0.1, IP:::1
#   other-name.pem/.key    signed by the CA for DNS:other.invalid only (wrong name)
#   expired.pem/.key       signed by the CA for the same names as server.pem, expired in 2021
#   unknown-ca.pem         another CA, trusted by nobody
#   unknown.pem/.key       signed by unknown-ca for the same names as server.pem
#   client.pem/.key        signed by the CA for mutual TLS (extendedKeyUsage clientAuth)
#   test-names.pem/.key    signed by the CA for DNS:ipv6-only.mdagg.test, DNS:dual-stack.mdagg.test
#                          (names only the resolve tests' resolver knows: resolve_test.cpp)
#
# usage: make_certs.sh DIR    (DIR is created; existing files in it are replaced)
set -euo pipefail

dir=${1:?usage: make_certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
umask 077

names="DNS:localhost,IP:127.0.0.1,IP:::1"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() {  # NAME SUBJECT
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 3650 -out "$1.pem" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}

# leaf NAME CA SAN EKU [extra `openssl ca` args]: a leaf signed through `openssl ca`, the one
# CLI in OpenSSL 3.0 that sets any validity period (-startdate/-enddate; x509 -days cannot
# backdate).
leaf() {
    local name=$1 issuer=$2 san=$3 eku=$4
    shift 4
    key "$name.key"
    openssl req -new -key "$name.key" -subj "/CN=$name" -out "$name.csr"
    local db="$issuer.db"
    mkdir -p "$db"
    [ -f "$db/index.txt" ] || : >"$db/index.txt"
    cat >"$name.cnf" <<CNF
[ ca ]
default_ca = test_ca
[ test_ca ]
database = $db/index.txt
new_certs_dir = $db
certificate = $issuer.pem
private_key = $issuer.key
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
rand_serial = yes
[ anything ]
commonName = supplied
[ leaf_ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = $eku
subjectAltName = $san
CNF
    openssl ca -batch -notext -config "$name.cnf" -extensions leaf_ext -in "$name.csr" \
        -out "$name.pem" "$@" 2>/dev/null
    rm -f "$name.csr" "$name.cnf"
}

ca ca "mdagg test CA"
ca unknown-ca "mdagg unknown CA"
leaf server ca "$names" serverAuth -days 3650
leaf other-name ca "DNS:other.invalid" serverAuth -days 3650
leaf expired ca "$names" serverAuth -startdate 20200101000000Z -enddate 20210101000000Z
leaf unknown unknown-ca "$names" serverAuth -days 3650
leaf client ca "DNS:mdagg-client" clientAuth -days 3650
leaf test-names ca "DNS:ipv6-only.mdagg.test,DNS:dual-stack.mdagg.test" serverAuth -days 3650
rm -rf ca.db unknown-ca.db
chmod 0644 ./*.pem

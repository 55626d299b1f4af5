#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What a CA key in a PKCS#11 token costs the server (issue 19), measured in one run: the
# same httpd serves /file (CA and RA keys in files), /token (the CA key in a scratch
# SoftHSM2 token, the RA in a file: the split most HSMs need) and /token2 (the CA key and
# the RA signing key in the token).  scepload enrolls COUNT devices at each, requests
# built before the clock (-P); the server CPU per enrollment is the user + system time of
# every httpd process over each run, divided by its enrollments.
#
#   tests/bench/pkcs11-bench.sh [COUNT [CONCURRENCY]]
#
# Run from the build tree after `make`; not part of the test suite.
T_NAME=pkcs11-bench
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/../integration/softhsm.sh"
source "$(dirname "$0")/bench-lib.sh"
COUNT=${1:-500}
CONC=${2:-8}
SCEPLOAD=${SCEPLOAD:-$TOP/scepload}
t_init
require_module
hsm_require

make_pki "$T/file" File
hsm_init "$T/hsm" bench
hsm_keygen 01 ca-key sign
hsm_keygen 02 ra-sign-key sign
P=$T/token
hsm_ca "$P" ca-key "Token CA"
make_key "$P/ra.key" 2048
hsm_issue "$P" ca-key ra "Soft RA" digitalSignature,keyEncipherment "$P/ra.key"
hsm_issue "$P" ca-key ra-sign "Token RA signer" digitalSignature ra-sign-key
hsm_for_httpd
CAKEY="$HSM_TOK;object=ca-key;type=private$HSM_Q"
token_location() {
    printf '%s\n' "<Location $1>" "    SetHandler scep" "    ScepCACertificateFile $P/ca.pem" \
        "    ScepCAKeyFile \"$CAKEY\"" "    ScepRACertificateFile $P/ra.pem" \
        "    ScepRAKeyFile $P/ra.key" "    ScepDeviceDB $T/db$1" "${@:2}" \
        "    Require all granted" "</Location>"
}
httpd_conf "$(
    scep_location /file "$T/file" ra "ScepDeviceDB $T/db-file"
    token_location /token
    token_location /token2 "    ScepRASigningCertificateFile $P/ra-sign.pem" \
        "    ScepRASigningKeyFile \"$HSM_TOK;object=ra-sign-key;type=private$HSM_Q\""
    printf 'StartServers 2\nServerLimit 4\nThreadsPerChild 16\nMaxRequestWorkers 64\n'
    printf 'MaxSpareThreads 64\nLogLevel warn\n'
)"
httpd_start || exit 1

# run PATH DB: prints "PATH: N enrollments, X ms of server CPU each"
run() {
    local path=$1 db=$2 before after ok ticks
    "$SCEPLOAD" -u "http://127.0.0.1:$PORT$path" -D "$db" -n 50 -c "$CONC" \
        -k "$T/pool.pem" -p "$COUNT" -q >/dev/null || true
    before=$(httpd_cpu_ticks)
    "$SCEPLOAD" -u "http://127.0.0.1:$PORT$path" -D "$db" -n "$COUNT" -c "$CONC" -P \
        -k "$T/pool.pem" -p "$COUNT" -q >"$T/report${path#/}"
    after=$(httpd_cpu_ticks)
    ok=$(sed -n 's/.* \([0-9]*\) succeeded.*/\1/p' "$T/report${path#/}")
    ticks=$(( (${after% *} - ${before% *}) + (${after#* } - ${before#* }) ))
    awk -v p="$path" -v n="${ok:-0}" -v t="$ticks" -v hz="$(getconf CLK_TCK)" \
        -v w="$(grep -m1 'enrollments/s\|per second' "$T/report${path#/}" | tr -s ' ')" \
        'BEGIN { printf "%-8s %5d enrollments, %.2f ms of server CPU each   (%s)\n",
                 p, n, n ? t * 1000 / hz / n : 0, w }'
}
run /file "$T/db-file"
run /token "$T/db/token"
run /token2 "$T/db/token2"
run /file "$T/db-file"
echo "machine:         $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "token:           SoftHSM2 $(dpkg-query -W -f='${Version}' softhsm2 2>/dev/null), libp11 $(pkg-config --modversion libp11)"
t_done

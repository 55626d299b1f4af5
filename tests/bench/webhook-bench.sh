#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What a validation webhook adds to an enrollment (docs/performance.md): one httpd with
# three endpoints sharing a database and a wildcard registration, /plain without a
# validator, /after asking tests/integration/webhook_server.py after the registration and
# /alone asking it instead, driven by scepload -P -a in turns, ROUNDS times, so that all
# three see the same machine.  Prints scepload's latency line of each run.
#
#   tests/bench/webhook-bench.sh [COUNT [CONCURRENCY [ROUNDS]]]
#
# Run from the build tree after `make`; no timing is asserted anywhere.
T_NAME=webhook-bench
source "$(dirname "$0")/../integration/lib.sh"
COUNT=${1:-1000}
CONC=${2:-8}
ROUNDS=${3:-2}
SCEPLOAD=${SCEPLOAD:-$TOP/scepload}
SCEPREG=${SCEPREG:-$TOP/scepreg}
t_init
require_module

make_pki "$T/pki" Bench
CH=$(openssl rand -hex 12)
timeout 60 "$SCEPREG" -c -b "$T/db" '*.bench.example.net' "$CH" 2>/dev/null || die "scepreg"
openssl rand -hex 24 >"$T/secret"
chmod 600 "$T/secret"
echo up >"$T/state"
: >"$T/challenge"
webhook_start "$T/secret" /dev/null "$T/state" "$T/challenge"
HOOK="ScepValidateURL $HOOK/allow"
SECRET="ScepValidateSecretFile $T/secret"
httpd_conf "$(
    scep_location /plain "$T/pki" ra "ScepDeviceDB $T/db"
    scep_location /after "$T/pki" ra "ScepDeviceDB $T/db" "$HOOK" "$SECRET"
    scep_location /alone "$T/pki" ra "ScepDeviceDB $T/db" "$HOOK" "$SECRET" \
        "ScepValidateMode alone"
    printf 'StartServers 2\nServerLimit 4\nThreadsPerChild 16\nMaxRequestWorkers 64\n'
    printf 'MaxSpareThreads 64\nLogLevel warn\n'
)"
httpd_start || exit 1
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
for round in $(seq 1 "$ROUNDS"); do
    for loc in plain after alone; do
        printf 'round %d %-6s ' "$round" "/$loc"
        "$SCEPLOAD" -u "http://127.0.0.1:$PORT/$loc" -k "${POOL:-$T/pool.pem}" -C "$CH" \
            -d bench.example.net -n "$COUNT" -c "$CONC" -P -a -q 2>/dev/null \
            | grep -E '^(latency|rate|[0-9]+ done)' | tr '\n' ' '
        echo
    done
done
httpd_stop

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The core benchmark of docs/performance.md: mod_scep's answer to a PKCSReq (parse,
# decrypt, verify, issue, CertRep) run by tests/bench/core_bench without httpd, the
# network or LMDB, so that its figures do not move with the machine's load.
#
#   tests/bench/core-bench.sh [COUNT]
#
# Prints the CPU per enrollment of a plain run of COUNT (default 2000) against the crypto
# floor, then counts instructions with callgrind over 50 enrollments: in all, and outside
# the RSA arithmetic (BN_mod_exp_mont_consttime_x2 and BN_mod_exp_mont: the private and
# public operations).  Instruction counts are exact and repeatable, so they show a change
# of a few per cent that timing on a shared VM cannot.  Run from the build tree after
# `make`; not part of the test suite.
T_NAME=core-bench
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/bench-lib.sh"
COUNT=${1:-2000}
CORE_BENCH=${CORE_BENCH:-$TOP/tests/bench/core_bench}
t_init
[[ -x "$CORE_BENCH" ]] || die "not built: $CORE_BENCH (run make)"

make_pki "$T/pki" Core
probe_enrollment_request dev "$T/pki/ra.pem" --challenge bench-challenge
floor_before 2048
"$CORE_BENCH" "$T/pki" bench-challenge "$T/dev.req" "$COUNT" | tee "$T/plain" || exit 1
core_ms=$(awk '{ print $3 }' "$T/plain")
read -r floor_ms _ <<<"$(crypto_floor 2048)"
awk -v c="$core_ms" -v a="$FLOOR_BEFORE" -v b="$floor_ms" 'BEGIN {
    printf "crypto floor:    %.3f ms after; core CPU is %.2f x the mean floor\n", b, c * 2 / (a + b) }'

if command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null; then
    N=50
    timeout 600 valgrind --tool=callgrind --callgrind-out-file="$T/callgrind.out" \
        --toggle-collect=scep_server_pkioperation \
        "$CORE_BENCH" "$T/pki" bench-challenge "$T/dev.req" "$N" >/dev/null 2>"$T/valgrind.log" \
        || { cat "$T/valgrind.log"; die "callgrind run failed"; }
    callgrind_annotate --inclusive=yes "$T/callgrind.out" 2>/dev/null >"$T/annotate"
    # inclusive instructions: all of scep_server_pkioperation, and the RSA arithmetic in it
    awk -v n="$N" '
        function count(s) { gsub(",", "", s); return s + 0 }
        / PROGRAM TOTALS/ { total = count($1) }
        /[^_]BN_mod_exp_mont_consttime_x2 / || / BN_mod_exp_mont_consttime_x2$/ { x2 = count($1) }
        /[ :]BN_mod_exp_mont[ ($]/ || / BN_mod_exp_mont$/ { pub = count($1) }
        END {
            rsa = x2 + pub
            printf "instructions:    %.2f M per enrollment; RSA arithmetic %.2f M (%.1f %%), the rest %.2f M\n",
                total / n / 1e6, rsa / n / 1e6, 100 * rsa / total, (total - rsa) / n / 1e6
        }' "$T/annotate"
    echo "callgrind:       $T/callgrind.out (kept with KEEP=1)"
else
    echo "callgrind:       valgrind not installed; instruction counts skipped"
fi
echo "machine:         $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
t_done

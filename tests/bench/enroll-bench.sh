#!/usr/bin/env bash
# The enrollment benchmark of docs/performance.md: a real httpd (event MPM) with mod_scep
# and registrations on 127.0.0.1, driven by scepload.  Prints the crypto floor from
# `openssl speed` (one RSA private decrypt, two private signs, one verify, one encrypt),
# the server CPU per enrollment (user + system time of every httpd process over the run,
# divided by the enrollments) and its ratio to the floor, and scepload's report.
#
#   tests/bench/enroll-bench.sh [COUNT [CONCURRENCY [get|post [BITS]]]]
#
# POOL=FILE keeps the device keys between runs; SCEPLOAD_ARGS adds scepload options to the
# measured run (SCEPLOAD_ARGS=-P: requests built before the clock).  PERF_OUT=FILE records
# the children with `perf record --call-graph dwarf` during the run, for
# tests/bench/perf-buckets.py; the sampling costs CPU, so that run's CPU figures do not
# compare with others.
#
# Run from the build tree after `make`; it is not part of the test suite (no timings are
# asserted anywhere).
T_NAME=enroll-bench
source "$(dirname "$0")/../integration/lib.sh"
COUNT=${1:-2000}
CONC=${2:-8}
METHOD=${3:-post}
BITS=${4:-2048}
SCEPLOAD=${SCEPLOAD:-$TOP/scepload}
SCEPREG=${SCEPREG:-$TOP/scepreg}
t_init
require_module

make_pki "$T/pki" Bench
timeout 60 "$SCEPREG" -c -n "$T/db" placeholder.example.net 2>/dev/null
httpd_conf "$(
    scep_location /scep "$T/pki" ra "ScepDeviceDB $T/db"
    printf 'StartServers 2\nServerLimit 4\nThreadsPerChild 16\nMaxRequestWorkers 64\n'
    printf 'MaxSpareThreads 64\nLogLevel warn\n'
)"
httpd_start || exit 1

# every httpd process: the parent and its children
# user and system ticks of every httpd process: "USER SYSTEM"
httpd_cpu_ticks() {
    local pid user=0 sys=0 f
    for pid in "$HTTPD_PID" $(pgrep -P "$HTTPD_PID"); do
        f=$(cut -d' ' -f14,15 "/proc/$pid/stat" 2>/dev/null) || continue
        user=$((user + ${f% *}))
        sys=$((sys + ${f#* }))
    done
    echo "$user $sys"
}

# the crypto floor in ms from `openssl speed`: "FLOOR SIGNS VERIFIES"
crypto_floor() {
    local speed
    speed=$(openssl speed -seconds 3 "rsa$BITS" 2>/dev/null | awk -v b="$BITS" '$1 == "rsa" && $2 == b { print $6, $7 }')
    awk -v s="${speed% *}" -v v="${speed#* }" 'BEGIN { printf "%.3f %s %s", 3 * 1000 / s + 2 * 1000 / v, s, v }'
}
# Measured before and after the run: this VM's speed moves by 15 % and more between
# minutes, and the ratio uses the mean of the two.
read -r floor_before sign verify <<<"$(crypto_floor)"
echo "crypto floor:    $floor_before ms before the run (RSA-$BITS: $sign signs/s, $verify verifies/s; 3 private + 2 public operations)"

# warm up: key pool, the children's first requests
"$SCEPLOAD" -u "http://127.0.0.1:$PORT/scep" -D "$T/db" -n 50 -c "$CONC" -b "$BITS" \
    -k "${POOL:-$T/pool.pem}" -p 1000 -q >/dev/null || true
# resident memory of the children, in KB (summed)
httpd_rss() {
    local pid total=0 kb
    for pid in $(pgrep -P "$HTTPD_PID"); do
        kb=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || continue
        total=$((total + ${kb:-0}))
    done
    echo "$total"
}
rss_before=$(httpd_rss)
if [[ -n "${PERF_OUT:-}" ]]; then
    perf record -F 499 --call-graph dwarf,32768 -o "$PERF_OUT" \
        -p "$(pgrep -P "$HTTPD_PID" | paste -sd,)" >"$T/perf.log" 2>&1 &
    perf_pid=$!
    sleep 1
fi
before=$(httpd_cpu_ticks)
# shellcheck disable=SC2086 # SCEPLOAD_ARGS is a list of options
"$SCEPLOAD" -u "http://127.0.0.1:$PORT/scep" -D "$T/db" -n "$COUNT" -c "$CONC" -m "$METHOD" \
    -b "$BITS" -k "${POOL:-$T/pool.pem}" -p 1000 -q ${SCEPLOAD_ARGS:-} | tee "$T/report"
after=$(httpd_cpu_ticks)
rss_after=$(httpd_rss)
if [[ -n "${PERF_OUT:-}" ]]; then
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
fi
ok=$(sed -n 's/.* \([0-9]*\) succeeded.*/\1/p' "$T/report")
read -r floor_after sign verify <<<"$(crypto_floor)"
floor_ms=$(awk -v a="$floor_before" -v b="$floor_after" 'BEGIN { printf "%.3f", (a + b) / 2 }')
echo "crypto floor:    $floor_after ms after the run; mean $floor_ms ms$(awk -v a="$floor_before" -v b="$floor_after" 'BEGIN { d = (a > b ? a - b : b - a) / (a < b ? a : b); if (d > 0.1) printf " (it moved %.0f %%: a noisy machine, run again)", d * 100 }')"
hz=$(getconf CLK_TCK)
awk -v u=$(( ${after% *} - ${before% *} )) -v s=$(( ${after#* } - ${before#* } )) \
    -v hz="$hz" -v n="$ok" -v f="$floor_ms" 'BEGIN {
    n = n ? n : 1
    ms = (u + s) * 1000 / hz / n
    printf "server CPU:      %.3f ms per enrollment (user %.3f, system %.3f; %d enrollments), %.2f x the crypto floor\n", ms, u * 1000 / hz / n, s * 1000 / hz / n, n, ms / f
}'
echo "children's RSS:   $rss_before KB before the run, $rss_after KB after ($(pgrep -P "$HTTPD_PID" | wc -l) processes)"
echo "machine:         $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
t_done

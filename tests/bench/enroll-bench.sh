#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
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
# compare with others.  DB_DIR=FOLDER puts only the database there (in a new folder,
# removed afterwards), so that a run with DB_DIR=/dev/shm against one without shows what
# the durable commit of each enrollment costs on this machine's disk.
#
# Run from the build tree after `make`; it is not part of the test suite (no timings are
# asserted anywhere).
T_NAME=enroll-bench
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/bench-lib.sh"
COUNT=${1:-2000}
CONC=${2:-8}
METHOD=${3:-post}
BITS=${4:-2048}
SCEPLOAD=${SCEPLOAD:-$TOP/scepload}
SCEPREG=${SCEPREG:-$TOP/scepreg}
t_init
require_module
DB="$T/db"
if [[ -n "${DB_DIR:-}" ]]; then
    DB=$(mktemp -d "$DB_DIR/scep-bench-db.XXXXXX") || die "cannot make a folder in $DB_DIR"
    at_exit "rm -rf '$DB'"
fi

make_pki "$T/pki" Bench
timeout 60 "$SCEPREG" -c -n "$DB" placeholder.example.net 2>/dev/null
httpd_conf "$(
    scep_location /scep "$T/pki" ra "ScepDeviceDB $DB"
    printf 'StartServers 2\nServerLimit 4\nThreadsPerChild 16\nMaxRequestWorkers 64\n'
    printf 'MaxSpareThreads 64\nLogLevel warn\n'
)"
httpd_start || exit 1

floor_before "$BITS"

# warm up: key pool, the children's first requests
"$SCEPLOAD" -u "http://127.0.0.1:$PORT/scep" -D "$DB" -n 50 -c "$CONC" -b "$BITS" \
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
"$SCEPLOAD" -u "http://127.0.0.1:$PORT/scep" -D "$DB" -n "$COUNT" -c "$CONC" -m "$METHOD" \
    -b "$BITS" -k "${POOL:-$T/pool.pem}" -p 1000 -q ${SCEPLOAD_ARGS:-} | tee "$T/report"
after=$(httpd_cpu_ticks)
rss_after=$(httpd_rss)
if [[ -n "${PERF_OUT:-}" ]]; then
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
fi
ok=$(sed -n 's/.* \([0-9]*\) succeeded.*/\1/p' "$T/report")
floor_after "$BITS" "$before" "$after" "$ok"
echo "children's RSS:   $rss_before KB before the run, $rss_after KB after ($(pgrep -P "$HTTPD_PID" | wc -l) processes)"
echo "machine:         $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
t_done

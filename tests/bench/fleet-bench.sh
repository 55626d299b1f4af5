#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The fleet benchmark of docs/performance.md: COUNT devices (default 50,000) registered one
# by one with `scepreg -I`, then all enrolled end to end by scepload through a real httpd
# (event MPM) on 127.0.0.1, with the children's resident memory during the run and the
# server's CPU per enrollment against the crypto floor (as in enroll-bench.sh).
#
#   tests/bench/fleet-bench.sh [COUNT [CONCURRENCY]]
#
# Device keys come from scepload's pool (2,000 keys, generated before the clock starts
# and cached); every device has its own name, CSR, transaction and certificate.
T_NAME=fleet-bench
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/bench-lib.sh"
COUNT=${1:-50000}
CONC=${2:-8}
SCEPLOAD=${SCEPLOAD:-$TOP/scepload}
SCEPREG=${SCEPREG:-$TOP/scepreg}
t_init
require_module

make_pki "$T/pki" Fleet
CH=$(openssl rand -hex 16)
awk -v n="$COUNT" -v ch="$CH" 'BEGIN {
    print "fqdn,ips,serial,challenge,flags,expires,profile,comment"
    for (i = 0; i < n; i++) printf "dev%07d.fleet.test,,,%s,,,,\n", i, ch
}' >"$T/fleet.csv"
t0=$(date +%s.%N)
timeout 600 "$SCEPREG" -c -m 4G -I "$T/fleet.csv" "$T/db" 2>"$T/import.err" || { cat "$T/import.err"; exit 1; }
t1=$(date +%s.%N)
echo "registered:      $COUNT devices in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s (scepreg -I)"
httpd_conf "$(
    scep_location /scep "$T/pki" ra "ScepDeviceDB $T/db" "ScepDeviceDBMapSize 4G"
    printf 'StartServers 2\nServerLimit 4\nThreadsPerChild 16\nMaxRequestWorkers 64\n'
    printf 'MaxSpareThreads 64\nLogLevel warn\n'
)"
httpd_start || exit 1
# resident memory of the children: anonymous (heap: what could leak) and file-backed
# (LMDB's map, shared with the page cache, growing with the database)
rss() {
    local pid anon=0 file=0 a f
    for pid in $(pgrep -P "$HTTPD_PID"); do
        a=$(awk '/^RssAnon/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || continue
        f=$(awk '/^RssFile/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || continue
        anon=$((anon + ${a:-0}))
        file=$((file + ${f:-0}))
    done
    echo "anonymous $anon KB, file-backed $file KB"
}
# warm the children and the key pool outside the measurement; scepload caches the pool
# only in a folder that exists
POOL=${POOL:-$HOME/.cache/scepload/rsa-2048.pem}
mkdir -p -m 700 "$(dirname "$POOL")"
"$SCEPLOAD" -u "http://127.0.0.1:$PORT/scep" -C "$CH" -d warm.fleet.test -n 1 -c 1 \
    -k "$POOL" -p 2000 -q >/dev/null 2>&1 || true
echo "children's RSS:  $(rss) before"
floor_before 2048
before=$(httpd_cpu_ticks)
"$SCEPLOAD" -u "http://127.0.0.1:$PORT/scep" -C "$CH" -d fleet.test -n "$COUNT" -c "$CONC" \
    -k "$POOL" -p 2000 -t 1800 -q -S "$T/received" &
load_pid=$!
# the children's memory every 10 s, against the certificates received so far (-S writes a
# line per certificate as it arrives); bounded by the run's own time limit
for _ in $(seq 190); do
    sleep 10
    kill -0 "$load_pid" 2>/dev/null || break
    echo "children's RSS:  $(rss) after $(wc -l <"$T/received") enrollments"
done
wait "$load_pid" || true
after=$(httpd_cpu_ticks)
floor_after 2048 "$before" "$after" "$(wc -l <"$T/received")"
echo "children's RSS:  $(rss) after all ($(pgrep -P "$HTTPD_PID" | wc -l) processes)"
echo "recorded:        $(timeout 120 "$SCEPREG" -L "$T/db" | tail -n +2 | grep -c .) certificates"
echo "machine:         $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
t_done

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The shared-store benchmark of docs/performance.md (issue 18), in two parts:
#  1. One httpd, LMDB against PostgreSQL in the same run: /lmdb keeps its records in an
#     LMDB folder, /pg in a scratch PostgreSQL through mod_dbd; scepload enrolls N devices
#     at each in turn.  Reported per enrollment: httpd's CPU, PostgreSQL's own CPU (its
#     server processes), latency p50/p99; then, over a short run with PostgreSQL's
#     statement log on, its round trips and statements per enrollment.
#  2. The fleet: COUNT devices registered with `scepreg --pg-file -I`, then enrolled by
#     scepload through HAProxy over two nodes sharing that PostgreSQL; timed end to end.
#
#   tests/bench/cluster-bench.sh [N [COUNT [CONCURRENCY]]]     (defaults 2000 50000 16)
T_NAME=cluster-bench
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/bench-lib.sh"
source "$LIB_DIR/cluster.sh"
N=${1:-2000}
COUNT=${2:-50000}
CONC=${3:-16}
SCEPLOAD=${SCEPLOAD:-$TOP/scepload}
SCEPREG=${SCEPREG:-$TOP/scepreg}
t_init
require_module
[[ -f $APACHE_MODDIR/mod_dbd.so ]] || die "mod_dbd is not installed"
POOL=${POOL:-$HOME/.cache/scepload/rsa-2048.pem}
POOLSIZE=${POOLSIZE:-2000}     # keys made once and cached in POOL
mkdir -p -m 700 "$(dirname "$POOL")"

make_pki "$T/pki" Bench
cl_pg_primary db
PGFILE=$T/pg.conninfo
(umask 077 && cl_conninfo db >"$PGFILE")
preg() { timeout 900 "$SCEPREG" --pg-file "$PGFILE" "$@"; }
preg db upgrade >/dev/null || die "scepreg db upgrade failed"
CH=$(openssl rand -hex 16)
timeout 60 "$SCEPREG" -c -b "$T/db" '*.lmdb.bench' "$CH" 2>/dev/null || die "scepreg: LMDB wildcard"
preg -b '*.pg.bench' "$CH" 2>/dev/null || die "scepreg: PostgreSQL wildcard"

# PostgreSQL's CPU ticks: the postmaster with what it collected from its ended children,
# and every live child (the backends serving mod_dbd's connections): "USER SYSTEM"
pg_cpu_ticks() {
    local pm pid user=0 sys=0 f
    pm=$(head -1 "${PG_DIRS[db]}/data/postmaster.pid")
    f=$(cut -d' ' -f14-17 "/proc/$pm/stat")
    read -r u s cu cs <<<"$f"
    user=$((u + cu))
    sys=$((s + cs))
    for pid in $(pgrep -P "$pm"); do
        f=$(cut -d' ' -f14,15 "/proc/$pid/stat" 2>/dev/null) || continue
        user=$((user + ${f% *}))
        sys=$((sys + ${f#* }))
    done
    echo "$user $sys"
}
ms_per() {     # ms_per BEFORE AFTER COUNT: CPU milliseconds per item
    awk -v u=$(( ${2% *} - ${1% *} )) -v s=$(( ${2#* } - ${1#* } )) -v hz="$(getconf CLK_TCK)" \
        -v n="$3" 'BEGIN { printf "%.3f", (u + s) * 1000 / hz / (n ? n : 1) }'
}
json() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().splitlines()[-1]); print(d[sys.argv[1]])' "$1"; }

# ---- 1. one node: LMDB and PostgreSQL in the same run -------------------------------------
httpd_conf "$(
    printf 'LoadModule dbd_module %s/mod_dbd.so\n' "$APACHE_MODDIR"
    printf 'DBDriver pgsql\nDBDParams "%s"\nDBDMin 0\nDBDKeep 8\nDBDMax 16\n' \
        "$(cl_conninfo db)"
    scep_location /lmdb "$T/pki" ra "ScepDeviceDB $T/db"
    scep_location /pg "$T/pki" ra "ScepDeviceDB dbd:"
    printf 'StartServers 2\nServerLimit 4\nThreadsPerChild 16\nMaxRequestWorkers 64\n'
    printf 'MaxSpareThreads 64\nLogLevel warn\n'
)"
httpd_start || exit 1
load() {     # load PATH DOMAIN COUNT [scepload options]: the JSON summary line
    local path=$1 domain=$2 n=$3
    shift 3
    "$SCEPLOAD" -u "http://127.0.0.1:$PORT$path" -C "$CH" -d "$domain" -n "$n" -c "$CONC" \
        -k "$POOL" -p "$POOLSIZE" -t 1800 -q -o json "$@"
}
load /lmdb warm.lmdb.bench 50 >/dev/null 2>&1 || true
load /pg warm.pg.bench 50 >/dev/null 2>&1 || true
echo "machine:         $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for store in lmdb pg; do
    h0=$(httpd_cpu_ticks); p0=$(pg_cpu_ticks)
    out=$(load "/$store" "$store.bench" "$N")
    h1=$(httpd_cpu_ticks); p1=$(pg_cpu_ticks)
    ok=$(json succeeded <<<"$out")
    printf '%-5s %d/%d enrolled, %s/s, p50 %s ms, p99 %s ms; httpd CPU %s ms, PostgreSQL CPU %s ms per enrollment\n' \
        "$store:" "$ok" "$N" "$(json rate <<<"$out")" "$(json p50_ms <<<"$out")" \
        "$(json p99_ms <<<"$out")" "$(ms_per "$h0" "$h1" "$ok")" \
        "$( [[ $store == pg ]] && ms_per "$p0" "$p1" "$ok" || echo 0)"
done

# statements and round trips: every message the server receives is one log line
# ("statement:" for a simple query, "execute" for a parameterised one)
pg_psql db -c "ALTER SYSTEM SET log_statement = 'all'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
log=${PG_DIRS[db]}/server.log
lines0=$(wc -l <"$log")
out=$(load /pg stmt.pg.bench 100)
sleep 1
pg_psql db -c "ALTER SYSTEM RESET log_statement" -c "SELECT pg_reload_conf()" >/dev/null
ok=$(json succeeded <<<"$out")
tail -n +"$((lines0 + 1))" "$log" | grep -E 'LOG:  (statement|execute)' >"$T/statements"
rt=$(wc -l <"$T/statements")
# a simple query may hold several statements (BEGIN; SET LOCAL ...; SELECT ... FOR UPDATE)
st=$(awk '{ n = gsub(/; /, "&"); total += 1 + (/LOG:  statement/ ? n : 0) } END { print total }' "$T/statements")
echo "pg statements:   $(awk -v r="$rt" -v s="$st" -v n="$ok" 'BEGIN { printf "%.1f round trips, %.1f statements per enrollment (%d enrollments)", r / n, s / n, n }')"
sed -E 's/^.*LOG:  (statement|execute [^:]*): //' "$T/statements" \
    | sed -E 's/\$[0-9]+/$n/g' | cut -c1-90 | sort | uniq -c | sort -rn | head -20 \
    | awk -v n="$ok" '{ c = $1; $1 = ""; printf "    %5.2f x %s\n", c / n, $0 }'
httpd_stop >/dev/null 2>&1 || true

# ---- 2. the fleet: two nodes, HAProxy, one PostgreSQL ------------------------------------
awk -v n="$COUNT" -v ch="$CH" 'BEGIN {
    print "fqdn,ips,serial,challenge,flags,expires,profile,comment"
    for (i = 0; i < n; i++) printf "dev%07d.fleet.bench,,,%s,,,,\n", i, ch
}' >"$T/fleet.csv"
t0=$(date +%s.%N)
preg -I "$T/fleet.csv" >/dev/null 2>"$T/import.err" || { cat "$T/import.err"; die "import failed"; }
t1=$(date +%s.%N)
echo "registered:      $COUNT devices in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s (scepreg --pg-file -I)"
for node in a b; do
    cl_node_conf "$node" "$(cl_conninfo db)" "$(scep_location /scep "$T/pki" ra "ScepDeviceDB dbd:")"
    # room for the load: the cluster library's nodes are sized for tests
    sed -i -e 's/^ThreadsPerChild .*/ThreadsPerChild 16/' -e 's/^MaxRequestWorkers .*/MaxRequestWorkers 32/' \
        -e 's/^MaxSpareThreads .*/MaxSpareThreads 32/' -e 's/^DBDMax .*/DBDMax 8/' \
        -e 's/^LogLevel .*/LogLevel warn/' "$(cl_node_root "$node")/httpd.conf"
    cl_node_start "$node" || die "node $node did not start"
done
cl_haproxy_start a b
p0=$(pg_cpu_ticks)
t2=$(date +%s.%N)
out=$("$SCEPLOAD" -u "http://127.0.0.1:$CL_HA_PORT/scep" -C "$CH" -d fleet.bench -n "$COUNT" \
    -c "$CONC" -k "$POOL" -p "$POOLSIZE" -t 1800 -q -o json)
t3=$(date +%s.%N)
p1=$(pg_cpu_ticks)
ok=$(json succeeded <<<"$out")
echo "enrolled:        $ok/$COUNT through HAProxy and 2 nodes in $(awk -v a="$t2" -v b="$t3" 'BEGIN { printf "%.1f", b - a }') s ($(json rate <<<"$out")/s, p50 $(json p50_ms <<<"$out") ms, p99 $(json p99_ms <<<"$out") ms); PostgreSQL CPU $(ms_per "$p0" "$p1" "$ok") ms per enrollment"
echo "total:           $(awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" 'BEGIN { printf "%.1f", (b - a) + (d - c) }') s to register and enroll $COUNT devices"
recorded=$(cl_psql "SELECT count(*) FROM scep_certificates WHERE fqdn LIKE '%.fleet.bench'")
echo "recorded:        $recorded certificates of the fleet in scep_certificates"
expect_eq "$ok" "$COUNT" "every device of the fleet enrolled"
expect_eq "$recorded" "$ok" "every certificate received is recorded"
t_done

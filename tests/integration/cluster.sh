# SPDX-License-Identifier: Apache-2.0
# tests/integration/cluster.sh: the multi-node topology, sourced after lib.sh by tests that
# run several SCEP nodes on one PostgreSQL: a scratch primary (tests/pg.sh) and, on demand,
# a streaming standby made with pg_basebackup; httpd nodes, each with mod_scep and mod_dbd
# and a ServerRoot of its own under $T/node-NAME; HAProxy in front, round robin.
# lib.sh's single-server globals (PORT, ERROR_LOG, HTTPD_PID) stay its own: a node is
# reached with cl_on NODE COMMAND..., which lends the node's port and error log to lib.sh's
# helpers for that command only.  Everything started here is stopped by lib.sh's at_exit.
#
#   cl_pg_primary NAME              scratch primary; its port in CL_PG_PORT[NAME]
#   cl_pg_standby NAME PRIMARY      pg_basebackup -R of PRIMARY, started as a hot standby
#   cl_pg_sync NAME                 commits on NAME wait until a standby has them
#   cl_pg_promote NAME              pg_ctl promote, waiting (bounded) for read-write
#   cl_conninfo NAME...             one libpq string naming every server given, in order,
#                                   with target_session_attrs=read-write
#   cl_node_conf NODE DBDPARAMS BODY    NODE's httpd.conf (mod_dbd pool + BODY)
#   cl_node_start NODE / cl_node_stop NODE / cl_node_kill NODE [PIDS] (SIGKILL, all)
#   cl_haproxy_start NODE...        HAProxy on CL_HA_PORT, round robin over the nodes
#   cl_on NODE|ha COMMAND...        run COMMAND with PORT (and ERROR_LOG) of that target
#   cl_psql SQL                     one value (or rows, tab-separated) from the primary
#   cl_pg_hold_writers SECONDS      a session holding the writers' lock (background)

# once: sourcing pg.sh again would empty the list of servers a harness already started
declare -F pg_start >/dev/null || source "$LIB_DIR/../pg.sh"

declare -gA CL_PG_PORT=() CL_NODE_PORT=() CL_NODE_PID=()
CL_PG_STOP_HOOKED=0
CL_PG_MAIN=""            # the server cl_psql asks; the promoted one after a failover
CL_HA_PORT=""
CL_HA_PID=""
CL_DBD_MAX=${CL_DBD_MAX:-3}

# ---- PostgreSQL --------------------------------------------------------------------------

cl_pg_primary() {
    local name=$1 port
    pg_available || die "PostgreSQL 15 (postgresql-15) is needed: CI installs it"
    port=$(free_port)
    if ((CL_PG_STOP_HOOKED == 0)); then
        at_exit pg_stop_all
        CL_PG_STOP_HOOKED=1
    fi
    # not in $(...): pg_start records the server in this shell's arrays
    pg_start "$name" "$port" >"$T/pg-$name.start" || die "PostgreSQL $name did not start"
    CL_PG_PORT[$name]=$port
    [[ -n "$CL_PG_MAIN" ]] || CL_PG_MAIN=$name
}

# The standby's data folder is a base backup of the primary with standby.signal and
# primary_conninfo written by -R; its own port and socket folder are appended, so they win
# over the copied postgresql.conf.
cl_pg_standby() {
    local name=$1 primary=$2 port dir
    port=$(free_port)
    dir=$PG_SCRATCH/$name
    pg_as_owner mkdir -p "$dir" || die "cannot make $dir"
    pg_as_owner timeout 120 "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "${CL_PG_PORT[$primary]}" \
        -U scep -D "$dir/data" -R -X stream --checkpoint=fast --no-sync \
        >"$T/pg-$name.basebackup" 2>&1 \
        || die "pg_basebackup of $primary failed: $(tail -5 "$T/pg-$name.basebackup")"
    printf "port = %s\nunix_socket_directories = '%s'\n" "$port" "$dir" \
        | pg_as_owner tee -a "$dir/data/postgresql.conf" >/dev/null
    pg_start "$name" "$port" >"$T/pg-$name.start" || die "standby $name did not start"
    CL_PG_PORT[$name]=$port
}

# Synchronous replication: a commit on NAME returns once a standby has flushed it, so a
# certificate a client holds survives a failover.  Set after the base backup, never in
# the standby's copy (a promoted standby would wait for a standby it does not have).
cl_pg_sync() {
    pg_psql "$1" -c "ALTER SYSTEM SET synchronous_standby_names = '*'" \
        -c "SELECT pg_reload_conf()" >/dev/null || die "cannot make $1 synchronous"
}

# cl_pg_streaming PRIMARY: true once a standby streams from PRIMARY (bounded, 30 s)
cl_pg_streaming() {
    for _ in $(seq 60); do
        [[ $(pg_psql "$1" -tAc "SELECT count(*) FROM pg_stat_replication
                                 WHERE state = 'streaming'" 2>/dev/null) == 1 ]] && return 0
        sleep 0.5
    done
    return 1
}

cl_pg_promote() {
    local name=$1
    pg_as_owner "$PG_BIN/pg_ctl" -D "${PG_DIRS[$name]}/data" -w -t 60 promote \
        >"$T/pg-$name.promote" 2>&1 || return 1
    for _ in $(seq 60); do
        [[ $(pg_psql "$name" -tAc "SELECT pg_is_in_recovery()" 2>/dev/null) == f ]] && {
            CL_PG_MAIN=$name
            return 0
        }
        sleep 0.5
    done
    return 1
}

cl_conninfo() {
    local hosts="" ports="" name
    for name in "$@"; do
        hosts+=${hosts:+,}127.0.0.1
        ports+=${ports:+,}${CL_PG_PORT[$name]}
    done
    echo "host=$hosts port=$ports user=scep dbname=scep connect_timeout=2" \
        "target_session_attrs=read-write"
}

cl_psql() { pg_psql "$CL_PG_MAIN" -tA -F $'\t' -c "$1"; }

# cl_pg_hold_writers SECONDS: in the background, a session holds the writers' lock (the
# scep_schema row every write transaction locks first) for SECONDS; returns once it is held
# (bounded: 10 s), the session's pid in CL_HOLD_PID
cl_pg_hold_writers() {
    pg_psql "$CL_PG_MAIN" -c "BEGIN" -c "SELECT 1 FROM scep_schema FOR UPDATE" \
        -c "SELECT pg_sleep($1)" -c "COMMIT" >/dev/null 2>&1 &
    # shellcheck disable=SC2034   # the caller waits for it
    CL_HOLD_PID=$!
    for _ in $(seq 100); do
        [[ $(cl_psql "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                      WHERE c.relname = 'scep_schema' AND l.mode = 'RowShareLock'
                        AND l.granted") -ge 1 ]] && return 0
        sleep 0.1
    done
    return 1
}

# ---- httpd nodes -------------------------------------------------------------------------

cl_node_root() { echo "$T/node-$1"; }

# cl_node_conf NODE DBDPARAMS BODY: lib.sh's server settings, one port per node, and a
# small mod_dbd pool per child (DBDMax), so that the nodes' children stay well below the
# scratch server's max_connections.
cl_node_conf() {
    local node=$1 params=$2 body=$3 root user=""
    root=$(cl_node_root "$node")
    mkdir -p "$root/logs" "$root/run" "$root/htdocs"
    chmod 711 "$T" "$root"
    chmod 755 "$root/htdocs"
    [[ -n "${CL_NODE_PORT[$node]:-}" ]] || CL_NODE_PORT[$node]=$(free_port)
    if [[ $(id -u) == 0 ]]; then
        if id www-data >/dev/null 2>&1; then
            user=$'User www-data\nGroup www-data'
        else
            user=$'User nobody\nGroup nogroup'
        fi
    fi
    cat >"$root/httpd.conf" <<EOF
# written by tests/integration/cluster.sh for $T_NAME, node $node
ServerRoot "$root"
ServerName node-$node.cluster.test
Listen 127.0.0.1:${CL_NODE_PORT[$node]}
LoadModule mpm_event_module $APACHE_MODDIR/mod_mpm_event.so
LoadModule authz_core_module $APACHE_MODDIR/mod_authz_core.so
LoadModule dbd_module $APACHE_MODDIR/mod_dbd.so
LoadModule scep_module $MOD_SCEP
LogLevel notice scep:trace1 dbd:info
$user
PidFile "$root/run/httpd.pid"
DefaultRuntimeDir "$root/run"
Mutex file:$root/run default
ErrorLog "$root/logs/error.log"
CustomLog "$root/logs/access.log" "%m %U %>s %D %{Retry-After}o"
DocumentRoot "$root/htdocs"
LimitRequestLine 65536
LimitRequestFieldSize 65536
Timeout 20
StartServers 1
ServerLimit 2
ThreadsPerChild 8
MaxRequestWorkers 16
MinSpareThreads 1
MaxSpareThreads 16
DBDriver pgsql
DBDParams "$params"
DBDMin 0
DBDKeep 1
DBDMax $CL_DBD_MAX
DBDExptime 30
<Directory />
    AllowOverride None
</Directory>
$body
EOF
}

# cl_node_start NODE: in the foreground (in the background of this shell), waiting at most
# 5 s until it answers; returns 1 after a FAIL otherwise
cl_node_start() {
    local node=$1 root pid code
    root=$(cl_node_root "$node")
    # a restarted node appends: what it logged before it was killed is evidence too
    "${HTTPD_CMD[@]}" -f "$root/httpd.conf" -d "$root" -DFOREGROUND \
        >"$root/stdout" 2>"$root/stderr" &
    pid=$!
    CL_NODE_PID[$node]=$pid
    at_exit "cl_node_stop $node"
    for _ in $(seq 50); do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" || true
            CL_NODE_PID[$node]=""
            fail "node $node exited during startup"
            sed 's/^/       | /' "$root/stderr" "$root/logs/error.log" | tail -20
            return 1
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
            "http://127.0.0.1:${CL_NODE_PORT[$node]}/cluster-ready-check" 2>/dev/null) || true
        [[ "$code" != 000 && -n "$code" ]] && return 0
        sleep 0.1
    done
    fail "node $node did not answer within 5 s"
    cl_node_kill "$node"
    return 1
}

# cl_node_stop NODE: SIGTERM, at most 10 s, then SIGKILL of every process of the node
cl_node_stop() {
    local node=$1 pid=${CL_NODE_PID[$1]:-}
    [[ -n "$pid" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && cl_node_kill "$node"
    wait "$pid" 2>/dev/null || true
    CL_NODE_PID[$node]=""
}

# cl_node_kill NODE [PIDS]: SIGKILL to the parent and its children at once, as a machine
# that dies takes them all (a lone parent's death would leave the children serving).
# PIDS, the children as found beforehand, are killed first, without a moment's delay
# (pgrep takes long enough on a loaded machine for a request in hand to be finished).
cl_node_kill() {
    local node=$1 known=${2:-} pid=${CL_NODE_PID[$1]:-} kids
    [[ -n "$pid" ]] || return 0
    # shellcheck disable=SC2086   # one word per child id
    [[ -z "$known" ]] || kill -KILL $known 2>/dev/null || true
    # the parent last: pgrep finds its children through it (and those it started meanwhile)
    kids=$(pgrep -P "$pid" || true)
    # shellcheck disable=SC2086
    kill -KILL $kids "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        # shellcheck disable=SC2086
        kill -0 $known $kids 2>/dev/null || break
        sleep 0.1
    done
    CL_NODE_PID[$node]=""
}

# ---- HAProxy -----------------------------------------------------------------------------

# cl_haproxy_start NODE...: round robin; a connection refused by a dead node is retried on
# another (option redispatch), and the health check (GetCACaps, which needs no store)
# takes a dead node out within a second.
cl_haproxy_start() {
    local node ha=$T/haproxy
    command -v haproxy >/dev/null || die "haproxy is needed (package haproxy)"
    mkdir -p "$ha"
    CL_HA_PORT=$(free_port)
    {
        printf 'global\n    maxconn 512\n'
        printf 'defaults\n    mode http\n    timeout connect 2s\n'
        printf '    timeout client 60s\n    timeout server 60s\n    retries 2\n'
        printf '    option redispatch\n'
        printf 'frontend scep\n    bind 127.0.0.1:%s\n    default_backend nodes\n' "$CL_HA_PORT"
        printf 'backend nodes\n    balance roundrobin\n'
        printf '    option httpchk GET /scep?operation=GetCACaps\n'
        for node in "$@"; do
            printf '    server %s 127.0.0.1:%s check inter 500ms fall 2 rise 1\n' \
                "$node" "${CL_NODE_PORT[$node]}"
        done
    } >"$ha/haproxy.cfg"
    timeout 1800 haproxy -db -f "$ha/haproxy.cfg" >"$ha/out" 2>&1 &
    CL_HA_PID=$!
    at_exit "kill $CL_HA_PID 2>/dev/null; wait $CL_HA_PID 2>/dev/null"
    for _ in $(seq 50); do
        nc -z 127.0.0.1 "$CL_HA_PORT" 2>/dev/null && return 0
        sleep 0.1
    done
    die "haproxy did not start: $(tail -5 "$ha/out")"
}

# cl_on NODE|ha COMMAND...: lib.sh's helpers (send_request, http_get, expect_log...) aimed at
# one node, or at HAProxy (whose error log is none: keep expect_log for nodes)
# shellcheck disable=SC2034   # PORT is read by lib.sh's helpers that "$@" runs
cl_on() {
    local target=$1
    shift
    local PORT ERROR_LOG=$ERROR_LOG
    if [[ "$target" == ha ]]; then
        PORT=$CL_HA_PORT
    else
        PORT=${CL_NODE_PORT[$target]}
        ERROR_LOG=$(cl_node_root "$target")/logs/error.log
    fi
    "$@"
}

# cl_post TARGET NAME LOCATION SECONDS: POST $T/NAME.req; the answer in $T/NAME.rep, the
# status, the time taken and Retry-After in $T/NAME.http ("code seconds retry-after"); for
# requests sent in parallel (no shell variables are set)
cl_post() {
    local target=$1 name=$2 loc=$3 secs=$4 port meta
    if [[ "$target" == ha ]]; then port=$CL_HA_PORT; else port=${CL_NODE_PORT[$target]}; fi
    rm -f "$T/$name.outcome"
    meta=$(curl -sS --max-time "$secs" -o "$T/$name.rep" -D "$T/$name.hdr" \
        -w '%{http_code} %{time_total}' --data-binary "@$T/$name.req" \
        "http://127.0.0.1:$port$loc?operation=PKIOperation" 2>"$T/$name.curl") \
        || meta="${meta:-000 $secs}"
    printf '%s %s\n' "$meta" \
        "$(sed -n 's/^[Rr]etry-[Aa]fter: *\([0-9]*\).*/\1/p' "$T/$name.hdr" 2>/dev/null)" \
        >"$T/$name.http"
}

# cl_outcome NAME SIGNER: one word for $T/NAME's answer: success (the certificate in
# $T/NAME.pem), failure-N (failInfo N), pending, http-CODE, or garbled; kept in
# $T/NAME.outcome (cl_post removes it), so that asking again costs nothing
cl_outcome() {
    local name=$1 signer=$2 word
    if [[ ! -s "$T/$name.outcome" ]]; then
        word=$(cl_judge "$name" "$signer")
        echo "$word" >"$T/$name.outcome"
    fi
    echo "$(<"$T/$name.outcome")"
}
# (hundreds of answers per run: the probe is the only program started for one)
cl_judge() {
    local name=$1 signer=$2 code key value status="" info=""
    read -r code _ <"$T/$name.http"
    if [[ "$code" != 200 ]]; then
        echo "http-$code"
        return
    fi
    probe_reply "$name" "$signer" || { echo garbled; return; }
    while IFS='=' read -r key value; do
        case $key in
            pkiStatus) status=$value ;;
            failInfo) info=$value ;;
        esac
    done <"$T/$name.out"
    case $status in
        0) [[ -s "$T/$name.pem" ]] && echo success || echo garbled ;;
        2) echo "failure-$info" ;;
        3) echo pending ;;
        *) echo garbled ;;
    esac
}

# cl_micros SECONDS.FRACTION: the same in microseconds, for comparisons without a program
cl_micros() {
    local whole=${1%%.*} frac=${1#*.}
    [[ "$1" == *.* ]] || frac=""
    frac=${frac}000000
    echo $((10#$whole * 1000000 + 10#${frac:0:6}))
}

# cl_serial CERT.pem: the serial as the records keep it compared: upper-case hex, no
# leading zeros
cl_serial() {
    local serial
    serial=$(openssl x509 -in "$1" -noout -serial) || return 1
    serial=${serial#serial=}
    while [[ "$serial" == 0* ]]; do serial=${serial#0}; done
    echo "${serial^^}"
}

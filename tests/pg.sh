#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/pg.sh: scratch PostgreSQL servers for the tests, sourced by the unit test wrapper
# and the integration tests.  Each server is Debian's postgresql-15, made with initdb in a
# folder of its own, listening on 127.0.0.1 and a socket in that folder only.  As root,
# the server runs as the unprivileged user `postgres` (PostgreSQL refuses root).
#   pg_start NAME PORT            prints the folder; the database "scep" exists, user scep
#   pg_conninfo NAME              a libpq connection string for it
#   pg_psql NAME [psql args...]   psql on it, quiet, stopping at the first error
#   pg_stop NAME [mode]           fast by default; immediate to imitate a crash
#   pg_stop_all                   every server this shell started
# Every wait is bounded (pg_ctl -t).  Folders live under $PG_SCRATCH (default: a fresh
# folder in ${TMPDIR:-/tmp}), removed by pg_stop_all.  PG_TEMPLATE: a cluster pg_initdb
# made, copied by pg_start instead of running initdb again (the integration suite's
# run.sh makes one per run: initdb takes seconds, a copy a fraction of one).

PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
declare -gA PG_DIRS=() PG_PORTS=()

pg_available() { [[ -x "$PG_BIN/initdb" && -x "$PG_BIN/pg_ctl" ]] && command -v psql >/dev/null; }

# Runs a PostgreSQL program as the server's owner.
pg_as_owner() {
    if [[ $(id -u) == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_scratch() {
    if [[ -z "${PG_SCRATCH:-}" ]]; then
        PG_SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/scep-pg.XXXXXX")
        chmod 0755 "$PG_SCRATCH"
        if [[ $(id -u) == 0 ]]; then chown postgres: "$PG_SCRATCH"; fi
    fi
}

# pg_initdb DATA LOG: an empty cluster in DATA (whose parent the server's owner can write)
pg_initdb() {
    pg_as_owner "$PG_BIN/initdb" -D "$1" -A trust -U scep -E UTF8 --no-sync >"$2" 2>&1 \
        || { cat "$2"; return 1; }
}

pg_start() {
    local name=$1 port=$2 dir
    pg_scratch
    dir=$PG_SCRATCH/$name
    if [[ ! -d $dir/data ]]; then
        pg_as_owner mkdir -p "$dir" || return 1
        if [[ -n "${PG_TEMPLATE:-}" ]]; then
            pg_as_owner cp -a "$PG_TEMPLATE" "$dir/data" || return 1
        else
            pg_initdb "$dir/data" "$PG_SCRATCH/$name.initdb.log" || return 1
        fi
        pg_as_owner tee -a "$dir/data/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
fsync = on
wal_level = replica
max_wal_senders = 4
hot_standby = on
log_line_prefix = '%m [%p] '
EOF
    fi
    PG_DIRS[$name]=$dir
    PG_PORTS[$name]=$port
    pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
        >/dev/null || { tail -20 "$dir/server.log"; return 1; }
    if ! pg_psql "$name" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'scep'" \
            | grep -q 1; then
        pg_psql "$name" -d postgres -c "CREATE DATABASE scep" >/dev/null || return 1
    fi
    echo "$dir"
}

pg_conninfo() {
    echo "host=127.0.0.1 port=${PG_PORTS[$1]} user=scep dbname=scep connect_timeout=5"
}

pg_psql() {
    local name=$1; shift
    timeout 60 psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${PG_PORTS[$name]}" -U scep \
        -d scep "$@"
}

pg_stop() {
    local name=$1 mode=${2:-fast}
    [[ -n "${PG_DIRS[$name]:-}" ]] || return 0
    pg_as_owner "$PG_BIN/pg_ctl" -D "${PG_DIRS[$name]}/data" -m "$mode" -w -t 60 stop \
        >/dev/null 2>&1 || true
}

pg_stop_all() {
    local name
    for name in "${!PG_DIRS[@]}"; do
        pg_stop "$name" immediate
    done
    PG_DIRS=()
    [[ -n "${PG_SCRATCH:-}" && -d "$PG_SCRATCH" ]] && rm -rf "$PG_SCRATCH"
    PG_SCRATCH=
}

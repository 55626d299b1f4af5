#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/unit/pg-run.sh: runs a unit test against a scratch PostgreSQL server of its own.
# Automake calls it for the *.pg tests (PG_LOG_COMPILER in Makefile.am):
#     pg-run.sh [WRAPPER ARGS...] tests/unit/NAME.pg
# starts a server (tests/pg.sh) on a free loopback port, exports its connection string as
# SCEP_TEST_PGSQL, runs ./tests/unit/NAME (under the wrapper, valgrind in check-valgrind)
# and stops the server whatever happened.  A server that does not start is a hard error
# (exit 99), never a skip: CI installs PostgreSQL.
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../pg.sh
. "$here/../pg.sh"

test_file=${!#}
wrapper=("${@:1:$#-1}")
binary=./tests/unit/$(basename "$test_file" .pg)

if ! pg_available; then
    echo "pg-run.sh: PostgreSQL's initdb and pg_ctl are not in ${PG_BIN:-?}" >&2
    exit 99
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
trap pg_stop_all EXIT
if ! pg_start unit "$port" >/dev/null; then
    echo "pg-run.sh: the scratch server did not start" >&2
    exit 99
fi
SCEP_TEST_PGSQL=$(pg_conninfo unit)
export SCEP_TEST_PGSQL
"${wrapper[@]}" "$binary"

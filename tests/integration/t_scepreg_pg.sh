#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scepreg on PostgreSQL (issue 18): a scratch server (tests/pg.sh); passwords kept off the
# command line and out of readable files; db upgrade (twice), status and sql; one script
# of every scepreg command run against an LMDB folder and against --pg-file, whose outputs
# and exit codes must be equal (times and random challenges masked); every record kind
# made by a real httpd on LMDB, copied into PostgreSQL and back into a new LMDB folder,
# listings and counts compared byte for byte; 50,000 rows imported into each engine.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../pg.sh"
t_init
SCEPREG=${SCEPREG:-$TOP/scepreg}
[[ -x "$SCEPREG" ]] || die "scepreg not built: $SCEPREG"
pg_available || die "PostgreSQL is not installed (Debian: postgresql-15)"

# reg ARGS...: scepreg (stdin /dev/null), stdout in $T/out, stderr in $T/err, status in RC
reg() {
    RC=0
    timeout 60 "$SCEPREG" "$@" >"$T/out" 2>"$T/err" </dev/null || RC=$?
}
expect_rc() {
    if [[ "$RC" == "$1" ]]; then
        pass "$2 (exit $1)"
    else
        fail "$2: exit $RC, expected $1"
        sed 's/^/       | /' "$T/err" | head -8
    fi
}
expect_absent() {
    local secret=$1 what=$2
    shift 2
    if grep -qF -- "$secret" "$@"; then fail "$what"; else pass "$what"; fi
}

PGPORT=$(free_port)
at_exit pg_stop_all
pg_start reg "$PGPORT" >/dev/null || die "cannot start PostgreSQL"
CONNINFO=$(pg_conninfo reg)
PGF=$T/pg.conf
printf '# the test database\n%s\n' "$CONNINFO" >"$PGF"
chmod 600 "$PGF"
PW=pw-$(openssl rand -hex 8)

# ---- passwords: never on the command line, never in a file others may read ---------------
reg --pg "$CONNINFO password=$PW" -l
expect_rc 2 "--pg with password= is refused"
expect_file_contains "$T/err" "--pg-file" "the refusal points at --pg-file"
expect_file_contains "$T/err" "PGPASSFILE" "... at PGPASSFILE"
expect_file_contains "$T/err" "PGPASSWORD" "... and at PGPASSWORD"
expect_absent "$PW" "the refusal does not repeat the password" "$T/err" "$T/out"
reg --pg "postgresql://scep:$PW@127.0.0.1:$PGPORT/scep" -l
expect_rc 2 "--pg with a URI's user:password@ is refused"
reg --pg "postgresql://scep@127.0.0.1:$PGPORT/scep?sslmode=disable&%70assword=$PW" -l
expect_rc 2 "--pg with a URI's (percent-encoded) ?password= is refused"
expect_absent "$PW" "... without repeating it" "$T/err" "$T/out"

printf '%s password=%s\n' "$CONNINFO" "$PW" >"$T/pw.conf"
for mode in 644 640 604; do
    chmod "$mode" "$T/pw.conf"
    reg --pg-file "$T/pw.conf" db status
    expect_rc 2 "a --pg-file with a password and mode $mode is refused"
done
expect_file_contains "$T/err" "chmod 600" "the refusal says how to fix it"
expect_absent "$PW" "no message repeats the file's password" "$T/err" "$T/out"
for mode in 600 400; do
    chmod "$mode" "$T/pw.conf"
    reg --pg-file "$T/pw.conf" db status
    expect_rc 7 "a --pg-file with a password and mode $mode is read (no schema yet: 7)"
done
expect_file_contains "$T/out" "no schema yet" "db status before the schema says so"
printf '%s\n' "$CONNINFO" >"$T/open.conf"
chmod 664 "$T/open.conf"
reg --pg-file "$T/open.conf" db status
expect_rc 2 "a --pg-file others may change is refused, password or not"
chmod 644 "$T/open.conf"
reg --pg-file "$T/open.conf" db status
expect_rc 7 "a --pg-file without a password may be readable by all"
if [[ $(id -u) == 0 ]]; then
    chown nobody "$T/open.conf"
    reg --pg-file "$T/open.conf" db status
    expect_rc 2 "a --pg-file owned by another user is refused"
else
    note "not root: a file owned by someone else cannot be made here"
fi
reg --pg-file "$T/nonexistent.conf" db status
expect_rc 2 "a missing --pg-file"
reg --pg "$CONNINFO" --pg-file "$PGF" -l
expect_rc 2 "--pg and --pg-file together"
mkdir "$T/lmdb-too"
reg --pg-file "$PGF" -n "$T/lmdb-too" x.example.com
expect_rc 2 "--pg-file and an LMDB folder together"
expect_file_contains "$T/err" "cannot be given as well" "... says why"

# a server that is not there: exit 1, as an LMDB folder that cannot be opened
reg --pg "host=127.0.0.1 port=$(free_port) user=scep dbname=scep connect_timeout=5" -l
expect_rc 1 "no server at that port"
reg -l "$T/no-such-folder"
expect_rc 1 "... as for a missing LMDB folder"

# ---- the schema ---------------------------------------------------------------------------
reg --pg-file "$PGF" -l
expect_rc 1 "-l on a database without the schema"
expect_file_contains "$T/err" "holds no mod_scep schema" "... says the schema is missing"
reg --pg-file "$PGF" db upgrade
expect_rc 0 "db upgrade creates the schema"
expect_eq "$(cat "$T/out")" "schema version 0 -> 1" "... and says from which version to which"
reg --pg-file "$PGF" db upgrade
expect_rc 0 "db upgrade again"
expect_eq "$(cat "$T/out")" "schema version 1 -> 1" "... changes nothing"
reg --pg-file "$PGF" db status
expect_rc 0 "db status on the current schema"
expect_eq "$(cat "$T/out")" "schema version 1, this scepreg uses 1: current" "... says so"
expect_eq "$(pg_psql reg -tAc 'SELECT version FROM scep_schema')" 1 \
    "scep_schema records version 1"
reg db sql
expect_rc 0 "db sql needs no database"
if cmp -s "$T/out" "$TOP/docs/schema-pgsql.sql" \
        || cmp -s "$T/out" "$(dirname "$0")/../../docs/schema-pgsql.sql"; then
    pass "docs/schema-pgsql.sql is what db sql prints"
else
    fail "docs/schema-pgsql.sql differs from scepreg db sql: regenerate it"
fi
reg db sql 2
expect_rc 2 "db sql of a step that does not exist"
pg_psql reg -c "CREATE DATABASE scratch" >/dev/null
reg db sql 1
pg_psql reg -d scratch -1 -f "$T/out" >/dev/null
reg --pg "${CONNINFO/dbname=scep/dbname=scratch}" db status
expect_rc 0 "the SQL of db sql 1, applied by psql -1, is a current schema"
reg db upgrade
expect_rc 2 "db upgrade without a PostgreSQL database"

# ---- one script, both engines ---------------------------------------------------------------
S1=$(openssl rand -hex 16)
S2=$(openssl rand -hex 16)
S3=$(openssl rand -hex 16)
cat >"$T/good.csv" <<EOF
fqdn,ips,serial,challenge,flags,expires,profile,comment
ap1.example.com,192.0.2.21,,$S1,one-time,2031-12-31,,"floor 1, east"
ap2.example.com,192.0.2.22;2001:db8::22,SN22,,disabled,,,spare
name:Kiosk 7,,,$S2,approval,,kiosk,
EOF
cat >"$T/bad.csv" <<EOF
ok1.example.com,,,$S3,,,,
bad..example.com,,,,,,,
ok2.example.com,,,,one-time;nonsense,,,
EOF

# script DB...: every command of scepreg on the database DB names (an LMDB folder, or
# --pg-file FILE), each line of the transcript prefixed by the command
script() {
    local db=("$@") step=0
    r() {   # r [ARGS before the database] -- [operands]
        local pre=() post=() seen=0 a rc=0
        for a in "$@"; do
            if [[ $seen == 0 && $a == -- ]]; then seen=1; continue; fi
            if [[ $seen == 0 ]]; then pre+=("$a"); else post+=("$a"); fi
        done
        step=$((step + 1))
        timeout 120 "$SCEPREG" "${pre[@]}" "${db[@]}" "${post[@]}" \
            >"$T/s.out" 2>"$T/s.err" <"$T/s.in" || rc=$?
        { echo "== $step: ${pre[*]} DB ${post[*]}: exit $rc"
          sed 's/^/  out: /' "$T/s.out"; sed 's/^/  err: /' "$T/s.err"; }
        : >"$T/s.in"
    }
    : >"$T/s.in"
    r -c -b -- a.example.com "$S1"
    r -b -1 -a 192.0.2.1 -a 2001:db8::1 -s SN1 -e 2031-01-01 -p prof -t "rack 1" -- \
        b.example.com "$S2"
    r -n -- '*.example.com'
    r -n -W on -- fw.example.com
    echo "$S3" >"$T/s.in"
    r -i -- c.example.com
    r -g -- g.example.com
    r -b -- "name:John's phone" "$S1"
    r -b -- id:AA-BB-CC-DD-EE-FF "$S2"
    r -b -- user:Alice@Example.ORG "$S3"
    r -n -- 'user:*@example.org'
    r -l --
    r -l -j --
    r -l -- b.example.com
    r -l -- '*.example.com'
    r -l -- nope.example.org
    r -v -b -- b.example.com "$S2"
    r -v -b -- b.example.com "$S1"
    r -v -b -- x.example.com "$S1"
    r -v -b -- nope.example.org "$S1"
    r -d -- c.example.com
    r -l -- c.example.com
    r -E -- c.example.com
    r -U -- c.example.com
    r -U -- nope.example.org
    r -t "" -A -- b.example.com
    r -W off -s "" -- fw.example.com
    r -D -- g.example.com
    r -D -- g.example.com
    r -D -- a.example.com
    r -D -R -r superseded -- c.example.com
    r -M --
    r -M -T 15m -p prof -- m.example.com
    r -M -- '*.example.com'
    r -I "$T/good.csv" --
    r -I "$T/bad.csv" --
    r -I "$T/bad.csv" -k --
    r -L --
    r -L -j --
    r -P --
    r -P -j --
    r -V --
    r -R -- 0A0B
    r -R -r keyCompromise -- nocert.example.com
    r -Y -- 0123456789ABCDEF
    r -N -t "not ours" -- fw.example.com
    r -b -- bad..example.com "$S1"
    r -b -- "$(printf 'x%.0s' {1..300}).example.com" "$S1"
    r -s "$(printf 's%.0s' {1..65})" -n -- long.example.com
    r -l -j --
}

# mask LABEL...: times, random challenges and the database's name made equal
mask() {
    local sedargs=() label
    for label in "$@"; do
        sedargs+=(-e "s|$(printf '%s' "$label" | sed 's/[][\.*^$|]/\\&/g')|DB|g")
    done
    sed -E "${sedargs[@]}" \
        -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z/TIME/g' \
        -e 's/^(  out: )[0-9a-f]{32}$/\1CHALLENGE/'
}

LMDB=$T/lmdb
script "$LMDB" >"$T/lmdb.transcript"
script --pg-file "$PGF" >"$T/pg.transcript"
mask "$LMDB" <"$T/lmdb.transcript" >"$T/lmdb.masked"
mask "$(tr '\n' ' ' <"$PGF" | sed 's/^# the test database //; s/ *$//')" \
    <"$T/pg.transcript" >"$T/pg.masked"
steps=$(grep -c '^== ' "$T/lmdb.masked")
if diff -u "$T/lmdb.masked" "$T/pg.masked" >"$T/script.diff"; then
    pass "$steps commands: the same output and exit codes on LMDB and on PostgreSQL"
else
    fail "the script's outputs differ between LMDB (-) and PostgreSQL (+):"
    head -60 "$T/script.diff" | sed 's/^/       | /'
fi
for rc in 0 2 3 5 6; do
    grep -q "exit $rc\$" "$T/lmdb.masked" && pass "the script covers exit $rc" \
        || fail "the script never exits $rc"
done
expect_eq "$(pg_psql reg -tAc 'SELECT count(*) FROM scep_devices')" \
    "$(timeout 60 "$SCEPREG" -l "$LMDB" | tail -n +2 | wc -l)" \
    "scep_devices holds as many rows as LMDB holds devices"
expect_eq "$(pg_psql reg -tAc 'SELECT count(*) FROM scep_challenges')" 2 \
    "scep_challenges holds the two minted challenges"

t_done

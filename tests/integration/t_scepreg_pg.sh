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
# a private file that is no connection string (a key given by mistake, under sudo): its
# text must reach no message, neither ours nor libpq's complaint about it
printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAAKEYMATERIAL=\n' >"$T/key.conf"
chmod 600 "$T/key.conf"
reg --pg-file "$T/key.conf" -l
expect_rc 2 "a --pg-file that is no connection string is refused"
if grep -q "KEYMATERIAL\|OPENSSH" "$T/err" "$T/out"; then
    fail "... and its text was printed"
else
    pass "... and its text is not printed"
fi
# an escaped blank is part of libpq's value: the mask must hide all of it
printf 'host=127.0.0.1 port=1 dbname=x user=y connect_timeout=1 password=abc\\ TOPSECRET\n' \
    >"$T/escaped.conf"
chmod 600 "$T/escaped.conf"
reg --pg-file "$T/escaped.conf" -l
expect_rc 1 "a server that is not there, with an escaped blank in the password"
if grep -q TOPSECRET "$T/err" "$T/out"; then
    fail "... and part of the password was printed"
else
    pass "... and no part of the password is printed"
fi
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
odd.example.com,,"S\\N ""7""",,,,,"back\\slash ""quoted"" {brace}, comma, NULL"
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
        sedargs+=(-e "s|$(printf '%s' "$label" | sed 's/[][\.*^$|()+?{}]/\\&/g')|DB|g")
    done
    sed -E "${sedargs[@]}" \
        -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z/TIME/g' \
        -e 's/^(  out: )[0-9a-f]{32}$/\1CHALLENGE/'
}

LMDB=$T/lmdb
script "$LMDB" >"$T/lmdb.transcript"
script --pg-file "$PGF" >"$T/pg.transcript"
mask "$LMDB" <"$T/lmdb.transcript" >"$T/lmdb.masked"
mask "$PGF (--pg-file)" <"$T/pg.transcript" >"$T/pg.masked"
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

# ---- every record kind, made by httpd on LMDB; copied into PostgreSQL and back ------------
require_module
require_probe
make_pki "$T/pki" Copy
RA=$T/pki/ra.pem
CA=$T/pki/ca.pem
SRC=$T/src
CH=$(openssl rand -hex 12)
for d in d1 d2; do
    reg -c -b "$SRC" "$d.example.net" "$CH"
done
for d in h1 h2 h3; do
    reg -b -W on "$SRC" "$d.example.net" "$CH"
done
expect_rc 0 "registrations for the source database"
httpd_conf "$(
    scep_location /scep "$T/pki" ra "ScepDeviceDB $SRC"
    scep_location /crl "$T/pki" nora "SetHandler scep-crl" "ScepDeviceDB $SRC"
)"
httpd_start || t_done
# request NAME FQDN [CHALLENGE]: a PKCSReq, its transactionID kept in $T/NAME.txid
request() {
    probe_enrollment_request "$1" "$RA" --challenge "${3:-$CH}" --san-dns "$2"
    echo "$REQ_TXID" >"$T/$1.txid"
    send_request "$1" /scep POST
}
status_of() { probe_reply "$1" "$RA" >/dev/null 2>&1 || true; field "$1" pkiStatus; }
request e1 d1.example.net && check_success e1 "$RA" "$CA" "d1 enrolls"
request e2 d1.example.net && check_success e2 "$RA" "$CA" "d1 enrolls again"
request e3 d2.example.net && check_success e3 "$RA" "$CA" "d2 enrolls"
request w1 d2.example.net "$(openssl rand -hex 12)"
expect_eq "$(status_of w1)" 2 "a wrong challenge for d2 fails (a failure counter)"
for d in h1 h2 h3; do
    request "$d" "$d.example.net"
    expect_eq "$(status_of "$d")" 3 "$d is held for approval"
done
reg -Y "$SRC" "$(cat "$T/h2.txid")"
expect_rc 0 "h2 approved"
reg -N -t "not ours" "$SRC" "$(cat "$T/h3.txid")"
expect_rc 0 "h3 rejected"
REVOKED=$(openssl x509 -in "$T/e1.pem" -noout -serial | sed 's/^serial=//')
reg -R -r keyCompromise "$SRC" "$REVOKED"
expect_rc 0 "one of d1's certificates revoked"
http_get /crl "$T/src.crl"
expect_eq "$HTTP_CODE" 200 "the CRL is published"
reg -M "$SRC"
reg -M -T 2h "$SRC" d1.example.net
expect_rc 0 "two minted challenges"
httpd_stop

pg_psql reg -c "CREATE DATABASE copied" >/dev/null
printf '%s\n' "${CONNINFO/dbname=scep/dbname=copied}" >"$T/copied.conf"
chmod 600 "$T/copied.conf"
reg --pg-file "$T/copied.conf" copy --to-pg "$SRC"
expect_rc 0 "copy --to-pg into a database without a schema (it is made)"
cp "$T/out" "$T/to-pg.counts"
expected=$'devices: 5\nminted challenges: 2\nfailure counters: 1
transactions: 6 (3 held, approved, rejected or upstream)
certificates: 3 (1 revoked)\nCRL generation: 1\npublished CRL: number 1'
expect_eq "$(cat "$T/to-pg.counts")" "$expected" "the counts per kind"
pg_q() { pg_psql reg -d copied -tAc "$1"; }
expect_eq "$(pg_q 'SELECT (SELECT count(*) FROM scep_devices), (SELECT count(*) FROM
                     scep_challenges), (SELECT count(*) FROM scep_failures)')" \
    "5|2|1" "scep_devices, scep_challenges and scep_failures hold them"
expect_eq "$(pg_q "SELECT state, count(*) FROM scep_transactions GROUP BY state
                   ORDER BY state" | tr '\n' ' ')" \
    "approved|1 issued|3 pending|1 rejected|1 " "scep_transactions holds every state"
expect_eq "$(pg_q 'SELECT serial FROM scep_revocations')" "$REVOKED" \
    "scep_revocations lists the revoked one"
expect_eq "$(pg_q 'SELECT (SELECT generation FROM scep_crl_state),
                     (SELECT number FROM scep_crl_published)')" "1|1" \
    "the CRL state and the published CRL"

BACK=$T/back
reg --pg-file "$T/copied.conf" copy --to-lmdb "$BACK"
expect_rc 0 "copy --to-lmdb into a new folder"
expect_eq "$(cat "$T/out")" "$(cat "$T/to-pg.counts")" "... with the same counts"
for listing in "-l -j" "-l" "-L -j" "-L" "-P -j" "-V"; do
    # shellcheck disable=SC2086   # the options are words
    timeout 60 "$SCEPREG" $listing "$SRC" >"$T/l.src" 2>&1
    # shellcheck disable=SC2086
    timeout 60 "$SCEPREG" $listing --pg-file "$T/copied.conf" >"$T/l.pg" 2>&1
    # shellcheck disable=SC2086
    timeout 60 "$SCEPREG" $listing "$BACK" >"$T/l.back" 2>&1
    if [[ -s "$T/l.src" ]] && cmp -s "$T/l.src" "$T/l.pg" && cmp -s "$T/l.src" "$T/l.back"; then
        pass "scepreg $listing: byte for byte the same on LMDB, its PostgreSQL copy and back"
    else
        fail "scepreg $listing differs between the source, PostgreSQL and the copy back"
        diff "$T/l.src" "$T/l.pg" | head -5 | sed 's/^/       | pg   /'
        diff "$T/l.src" "$T/l.back" | head -5 | sed 's/^/       | back /'
    fi
done
expect_eq "$(timeout 60 "$SCEPREG" -V "$BACK")" \
    "3 certificates, 6 transactions (3 issued), 3 index entries: consistent" \
    "-V on the copy back: consistent, the name index rebuilt"

reg --pg-file "$T/copied.conf" copy --to-pg "$SRC"
expect_rc 1 "copy --to-pg into a database that holds records is refused"
expect_file_contains "$T/err" "copy only into an empty database" "... and says why"
reg --pg-file "$T/copied.conf" copy --to-lmdb "$BACK"
expect_rc 1 "copy --to-lmdb into a folder that holds records is refused"
reg copy --to-lmdb "$T/nowhere"
expect_rc 2 "copy without --pg or --pg-file"
reg -m 64M --pg-file "$T/copied.conf" copy --to-pg "$SRC"
expect_rc 2 "-m with copy --to-pg"

# the held requests work after the round trip: h2, approved, is collected by CertPoll
httpd_conf "$(scep_location /scep "$T/pki" ra "ScepDeviceDB $BACK")"
httpd_start || t_done
cp "$T/h2.key" "$T/h2p.key"
cp "$T/h2.selfsigned.pem" "$T/h2p.selfsigned.pem"
probe_request h2p "$RA" --cert "$T/h2p.selfsigned.pem" --no-challenge --msgtype 20 \
    --txid "$(cat "$T/h2.txid")" --poll-issuer "$CA" --subject "/CN=h2/O=mod_scep tests"
send_request h2p /scep POST
check_success h2p "$RA" "$CA" \
    "h2, approved in LMDB and copied there and back, collects by CertPoll" || true
httpd_stop

# the records commands on both engines, on the same records
records() {
    local db=("$@")
    r() {
        local rc=0
        timeout 60 "$SCEPREG" "$@" >"$T/s.out" 2>"$T/s.err" </dev/null || rc=$?
        echo "== $*: exit $rc"
        sed 's/^/  out: /' "$T/s.out"
        sed 's/^/  err: /' "$T/s.err"
    }
    r -P "${db[@]}"
    r -Y "${db[@]}" "$(cat "$T/h1.txid")"
    r -Y "${db[@]}" "$(cat "$T/h3.txid")"
    r -N -t "too late" "${db[@]}" h1.example.net
    r -R "${db[@]}" "$REVOKED"
    r -R -r superseded "${db[@]}" d1.example.net
    r -D -R "${db[@]}" d2.example.net
    r -U "${db[@]}" d2.example.net
    r -L "${db[@]}"
    r -L -j "${db[@]}" d1.example.net
    r -P -j "${db[@]}"
    r -V "${db[@]}"
    r -l -j "${db[@]}"
}
SRCS=$(printf '%s' "$SRC" | sed 's/[][\.*^$|]/\\&/g')
records "$SRC" | sed -e "s|$SRCS|DB|g" | mask >"$T/rec.lmdb"
CONFS=$(printf '%s' "--pg-file $T/copied.conf" | sed 's/[][\.*^$|]/\\&/g')
records --pg-file "$T/copied.conf" | sed -e "s|$CONFS|DB|" \
    | mask "$T/copied.conf (--pg-file)" >"$T/rec.pg"
if diff -u "$T/rec.lmdb" "$T/rec.pg" >"$T/rec.diff"; then
    pass "revoke, approve, reject, delete, unlock and the listings: the same on both engines"
else
    fail "the records commands differ between LMDB (-) and PostgreSQL (+):"
    head -40 "$T/rec.diff" | sed 's/^/       | /'
fi
grep -q "revoked 1 certificate of d1.example.net (superseded); 1 already revoked" "$T/rec.pg" \
    && pass "... and they did something (a revocation of d1 on PostgreSQL)" \
    || fail "the revocation of d1 on PostgreSQL is not reported"

# ---- scepload registers its run's wildcard in PostgreSQL, under the same rules -------------
SCEPLOAD=$TOP/scepload
RC=0
timeout 60 "$SCEPLOAD" -u "http://127.0.0.1:$(free_port)/scep" -n 1 \
    --pg "$CONNINFO password=$PW" >"$T/out" 2>"$T/err" || RC=$?
expect_rc 1 "scepload --pg with a password is refused"
expect_file_contains "$T/err" "PGPASSWORD" "... pointing at the other places for it"
expect_absent "$PW" "... without repeating it" "$T/err"
chmod 644 "$T/pw.conf"
RC=0
timeout 60 "$SCEPLOAD" -u "http://127.0.0.1:$(free_port)/scep" -n 1 \
    --pg-file "$T/pw.conf" >"$T/out" 2>"$T/err" || RC=$?
expect_rc 1 "scepload --pg-file with a password others may read is refused"
RC=0
timeout 60 "$SCEPLOAD" -u "http://127.0.0.1:$(free_port)/scep" -n 1 -D "$SRC" \
    --pg-file "$PGF" >"$T/out" 2>"$T/err" || RC=$?
expect_rc 2 "scepload with -D and --pg-file"
# no server at the URL: the run stops after registering, which leaves the wildcard to see
RC=0
timeout 60 "$SCEPLOAD" -u "http://127.0.0.1:$(free_port)/scep" -n 1 -q \
    --pg-file "$PGF" >"$T/out" 2>"$T/err" || RC=$?
expect_match "$(pg_psql reg -tAc "SELECT key, comment FROM scep_devices
                                  WHERE key LIKE '*.run%.scepload.test'")" \
    '^\*\.run[0-9a-f]{8}\.scepload\.test\|scepload run$' \
    "scepload --pg-file registered its wildcard in scep_devices"

# ---- 50,000 rows ---------------------------------------------------------------------------
timeout 60 openssl rand -hex 800000 | fold -w 32 \
    | awk '{ printf "dev%05d.example.com,10.%d.%d.%d,SN%d,%s,,,,row %d\n", NR,
               int(NR / 65536) % 256, int(NR / 256) % 256, NR % 256, NR, $0, NR }' \
    >"$T/big.csv"
awk -F, -v OFS=, '{ $4 = ""; print }' "$T/big.csv" >"$T/bignochal.csv"
pg_psql reg -c "CREATE DATABASE big" >/dev/null
printf '%s\n' "${CONNINFO/dbname=scep/dbname=big}" >"$T/big.conf"
import_timed() {   # import_timed WHAT CSV DB...: imports, notes the rows per second
    local what=$1 csv=$2 start ms
    shift 2
    start=$(date +%s%N)
    RC=0
    timeout 600 "$SCEPREG" -c -I "$csv" "$@" >"$T/out" 2>"$T/err" || RC=$?
    ms=$((($(date +%s%N) - start) / 1000000))
    expect_rc 0 "$what"
    note "$what: $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s," \
        "$((50000000 / (ms > 0 ? ms : 1))) rows/s"
}
import_timed "50,000 new rows without challenges into LMDB" "$T/bignochal.csv" "$T/big-lmdb"
import_timed "50,000 new rows without challenges into PostgreSQL" "$T/bignochal.csv" \
    --pg-file "$T/big.conf"
expect_file_contains "$T/err" "imported 50000 devices (50000 new, 0 updated), 0 rejected" \
    "the summary on PostgreSQL"
import_timed "the same rows with challenges into LMDB (updates)" "$T/big.csv" "$T/big-lmdb"
import_timed "the same rows with challenges into PostgreSQL (updates)" "$T/big.csv" \
    --pg-file "$T/big.conf"
expect_file_contains "$T/err" "imported 50000 devices (0 new, 50000 updated), 0 rejected" \
    "the summary of the updates on PostgreSQL"
reg -v -b --pg-file "$T/big.conf" dev31337.example.com \
    "$(sed -n 31337p "$T/big.csv" | cut -d, -f4)"
expect_rc 0 "a challenge from the big import verifies on PostgreSQL"
if cmp -s <(timeout 120 "$SCEPREG" -l "$T/big-lmdb") \
        <(timeout 120 "$SCEPREG" -l --pg-file "$T/big.conf"); then
    pass "-l of the 50,000 devices is the same on both engines"
else
    fail "-l of the 50,000 devices differs between the engines"
fi
expect_eq "$(pg_psql reg -d big -tAc 'SELECT count(*) FROM scep_devices')" 50000 \
    "scep_devices holds 50,000 rows"

t_done

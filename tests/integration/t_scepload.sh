#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scepload, the load generator: a run that registers its own wildcard (-D), by POST and
# by GET, with its key pool cached on disk; requests built before the clock (-P) and
# answers checked after it (-a); failures counted by reason; limits refused.
source "$(dirname "$0")/lib.sh"
t_init
require_module
SCEPLOAD=${SCEPLOAD:-$TOP/scepload}
[[ -x "$SCEPLOAD" ]] || die "scepload not built: $SCEPLOAD"
SCEPREG=${SCEPREG:-$TOP/scepreg}

make_pki "$T/pki" Load
timeout 60 "$SCEPREG" -c -n "$T/db" placeholder.example.net 2>/dev/null || die "scepreg"
CH=$(openssl rand -hex 12)
timeout 60 "$SCEPREG" -b "$T/db" '*.fixed.example.net' "$CH" 2>/dev/null || die "scepreg"
httpd_conf "$(scep_location /scep "$T/pki" ra "ScepDeviceDB $T/db")"
httpd_start || t_done
URL="http://127.0.0.1:$PORT/scep"

# load NAME ARGS...: scepload's report in $T/NAME.out, its stderr in $T/NAME.err, status RC
load() {
    local name=$1
    shift
    RC=0
    timeout 300 "$SCEPLOAD" -u "$URL" -k "$T/pool.pem" -q "$@" >"$T/$name.out" 2>"$T/$name.err" \
        || RC=$?
}

load post -D "$T/db" -n 20 -c 4 -p 5 -o json
expect_eq "$RC" 0 "20 enrollments by POST with 4 connections, registering its own wildcard"
expect_file_contains "$T/post.out" "20 done, 20 succeeded, 0 failed" "the report counts them"
expect_match "$(tail -1 "$T/post.out")" '^\{"enrollments":20,"succeeded":20,.*"p99_ms":[0-9.]+' "-o json adds a JSON line"
expect_eq "$(grep -c 'BEGIN PRIVATE KEY' "$T/pool.pem")" 5 "the key pool is cached on disk (5 keys)"
expect_eq "$(stat -c %a "$T/pool.pem")" 600 "the pool file is private (0600)"
expect_match "$(timeout 60 "$SCEPREG" -l "$T/db" | cut -f1 | tr '\n' ' ')" '^fqdn \*\.fixed\.example\.net placeholder\.example\.net $' \
    "the run's wildcard is removed afterwards"
expect_eq "$(timeout 60 "$SCEPREG" -L "$T/db" | tail -n +2 | grep -c scepload.test)" 20 "every certificate is recorded"

load get -C "$CH" -d fixed.example.net -n 10 -c 2 -m get -o csv
expect_eq "$RC" 0 "10 enrollments by GET with a given challenge and domain"
expect_match "$(tail -1 "$T/get.out")" '^10,10,[0-9.]+,[0-9.]+,' "-o csv adds a CSV line"

# -q silences the progress line only; the preparation is still said on stderr
timeout 300 "$SCEPLOAD" -u "$URL" -k "$T/pool.pem" -C "$CH" -d fixed.example.net -n 12 -c 3 -P \
    >"$T/prepared.out" 2>"$T/prepared.err" && RC=0 || RC=$?
expect_eq "$RC" 0 "12 enrollments with the requests built before the clock (-P)"
expect_file_contains "$T/prepared.err" "12 requests prepared in" "-P says how long the preparation took"
expect_file_contains "$T/prepared.out" "12 done, 12 succeeded, 0 failed" "-P: every prepared request enrolls"
load toomany -P -C x -d y -n 60001
expect_eq "$RC" 2 "-P with more than 60,000 requests is refused"

load bad -C "not-$CH" -d fixed.example.net -n 6 -c 2 -r 3
expect_eq "$RC" 1 "a wrong challenge: exit 1"
expect_file_contains "$T/bad.out" "failed:          6 x FAILURE badRequest" "failures are counted by reason"
expect_eq "$(grep -c 'sent again' "$T/bad.out")" 0 "-r does not send a FAILURE again"

# -S: what the clients received, compared with what the server recorded
load serials -C "$CH" -d fixed.example.net -n 8 -c 2 -r 2 -S "$T/serials.txt"
expect_eq "$RC" 0 "8 enrollments writing the certificates received (-S)"
expect_eq "$(grep -cE '^[0-9A-F]+ dev[0-9]{7}\.fixed\.example\.net [0-9a-f]{32}$' "$T/serials.txt")" 8 \
    "-S: one 'SERIAL FQDN TRANSACTIONID' line per certificate"
tr ' ' '\t' <"$T/serials.txt" | sort >"$T/received.tsv"
timeout 60 "$SCEPREG" -L "$T/db" | tail -n +2 | cut -f1,2,7 | sort >"$T/recorded.tsv"
expect_eq "$(comm -23 "$T/received.tsv" "$T/recorded.tsv" | wc -l)" 0 \
    "every serial received is recorded for that device and transaction"
expect_match "$(timeout 60 "$SCEPREG" -V "$T/db")" '^50 certificates, 50 transactions \(50 issued\), 50 index entries: consistent$' \
    "scepreg -V finds the database of 50 enrollments consistent"
# a copy with one transaction record left out (mdb_dump's hex pairs: key line, value
# line): -V must name the certificate whose transaction is gone
if ! store_is_lmdb; then
    note "the damaged-copy check edits an LMDB dump: not with SCEP_TEST_STORE=pgsql"
elif command -v mdb_dump >/dev/null && command -v mdb_load >/dev/null; then
    timeout 60 mdb_dump -a "$T/db" | awk '
        /^database=/ { db = $0 }
        db == "database=transactions" && /^ / && !done { if (++n <= 2) next; done = 1 }
        { print }' >"$T/damaged.dump"
    mkdir -p "$T/damaged"
    timeout 60 mdb_load -f "$T/damaged.dump" "$T/damaged" 2>"$T/mdb_load.err" || fail "mdb_load of the damaged copy"
    rc=0
    timeout 60 "$SCEPREG" -V "$T/damaged" >"$T/damaged.out" 2>"$T/damaged.err" || rc=$?
    expect_eq "$rc" 7 "scepreg -V exits 7 when a transaction record is missing"
    expect_file_matches "$T/damaged.err" 'certificate [0-9A-F]+: its transaction [0-9a-f]{32} is not recorded' \
        "scepreg -V names the certificate whose transaction is gone"
    expect_file_contains "$T/damaged.out" "49 transactions (49 issued), 50 index entries: 1 problem(s)" \
        "scepreg -V counts the problem"
else
    note "mdb_dump/mdb_load (lmdb-utils) missing: the damaged-copy check is skipped"
fi

# -a: the answers kept during the run and checked after the clock
timeout 300 "$SCEPLOAD" -u "$URL" -k "$T/pool.pem" -C "$CH" -d fixed.example.net -n 10 -c 2 -P -a \
    -S "$T/later.txt" >"$T/later.out" 2>"$T/later.err" && RC=0 || RC=$?
expect_eq "$RC" 0 "10 enrollments with the answers checked after the clock (-P -a)"
expect_file_contains "$T/later.err" "answers checked after the clock in" "-a says how long the checks took"
expect_file_contains "$T/later.out" "10 done, 10 succeeded, 0 failed" "-a: every answer is checked and counted"
expect_eq "$(grep -cE '^[0-9A-F]+ dev[0-9]{7}\.fixed\.example\.net [0-9a-f]{32}$' "$T/later.txt")" 10 \
    "-a -S: the certificates found by the late checks are written"
load laterbad -C "not-$CH" -d fixed.example.net -n 4 -c 2 -P -a
expect_eq "$RC" 1 "-a with a wrong challenge: exit 1"
expect_file_contains "$T/laterbad.out" "failed:          4 x FAILURE badRequest" \
    "-a: the FAILUREs are found by the late checks and counted by reason"
load alone -C x -d y -n 1 -a
expect_eq "$RC" 2 "-a without -P is refused"

# an explicit pool in a missing folder, and one left world-readable by something else
timeout 300 "$SCEPLOAD" -u "$URL" -k "$T/new/keys/pool.pem" -q -C "$CH" -d fixed.example.net \
    -n 2 -p 2 >/dev/null 2>&1 && RC=0 || RC=$?
expect_eq "$RC" 0 "a run with its pool in a folder that does not exist yet"
expect_eq "$(stat -c %a "$T/new/keys")" 700 "the pool's folder is made, private (0700)"
expect_eq "$(grep -c 'BEGIN PRIVATE KEY' "$T/new/keys/pool.pem")" 2 "the pool is cached there"
: >"$T/wide.pem"
chmod 644 "$T/wide.pem"
timeout 300 "$SCEPLOAD" -u "$URL" -k "$T/wide.pem" -q -C "$CH" -d fixed.example.net \
    -n 1 -p 1 >/dev/null 2>&1 && RC=0 || RC=$?
expect_eq "$RC" 0 "a run whose pool file exists with mode 0644"
expect_eq "$(stat -c %a "$T/wide.pem")" 600 "the file is made private before the keys go in"
ln -s "$T/elsewhere.pem" "$T/link.pem"
timeout 300 "$SCEPLOAD" -u "$URL" -k "$T/link.pem" -C "$CH" -d fixed.example.net \
    -n 1 -p 1 >"$T/link.out" 2>"$T/link.err" && RC=0 || RC=$?
expect_eq "$RC" 0 "a pool path that is a symbolic link: the run goes on"
expect_file_contains "$T/link.err" "cannot cache the pool in $T/link.pem" "the link is not followed, and that is said"
expect_eq "$(test -e "$T/elsewhere.pem" && echo written || echo absent)" absent "nothing is written where the link points"

load limits -C x -d y -n 2000000
expect_eq "$RC" 2 "more than 1,000,000 enrollments are refused"
load nourl -C x -d y -n 1 -u "ftp://127.0.0.1/"
expect_eq "$RC" 2 "a URL that is not http(s) is refused"

# issue 15, point 10: an endpoint whose RA certificate has the RSA exponent 1, which
# leaves what is encrypted to it readable by anyone: refused before anything is sent.
# The endpoint is a stand-in (mod_scep itself refuses to start with such a certificate).
cat >"$T/ra-e1.cnf" <<EOF
asn1=SEQUENCE:spki
[spki]
alg=SEQUENCE:alg
key=BITWRAP,SEQUENCE:rsapub
[alg]
oid=OID:rsaEncryption
null=NULL
[rsapub]
n=INTEGER:0x$(openssl x509 -in "$T/pki/ra.pem" -noout -modulus | sed 's/^Modulus=//')
e=INTEGER:1
EOF
timeout 30 openssl asn1parse -genconf "$T/ra-e1.cnf" -out "$T/ra-e1.spki" -noout >/dev/null \
    && timeout 30 openssl pkey -pubin -inform DER -in "$T/ra-e1.spki" -out "$T/ra-e1.pub" \
    && timeout 30 openssl x509 -new -subj "/CN=Load RA e1" -key "$T/pki/ca.key" \
        -force_pubkey "$T/ra-e1.pub" -days 2 -out "$T/ra-e1.pem" 2>/dev/null \
    && timeout 30 openssl crl2pkcs7 -nocrl -certfile "$T/pki/ca.pem" -certfile "$T/ra-e1.pem" \
        -outform DER -out "$T/ra-e1.p7" || die "cannot make the RA certificate with e=1"
FAKE_PORT=$(free_port)
timeout 120 python3 - "$FAKE_PORT" "$T/ra-e1.p7" <<'EOF' &
import http.server, sys
port, body = int(sys.argv[1]), open(sys.argv[2], "rb").read()
class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self):
        ok = "operation=GetCACert" in self.path
        self.send_response(200 if ok else 500)
        self.send_header("Content-Type", "application/x-x509-ca-ra-cert")
        self.send_header("Content-Length", str(len(body) if ok else 0))
        self.end_headers()
        if ok:
            self.wfile.write(body)
    do_GET = do_POST = answer
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
EOF
FAKE_PID=$!
for _ in $(seq 50); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$FAKE_PORT/" && break
    sleep 0.1
done
timeout 60 "$SCEPLOAD" -u "http://127.0.0.1:$FAKE_PORT/scep" -k "$T/pool.pem" -q -C x \
    -d fixed.example.net -n 1 -p 1 >"$T/e1.out" 2>"$T/e1.err" && RC=0 || RC=$?
kill "$FAKE_PID" 2>/dev/null || true
wait "$FAKE_PID" 2>/dev/null || true
expect_eq "$RC" 1 "point10: an RA certificate whose RSA exponent is 1: exit 1"
expect_file_contains "$T/e1.err" \
    "certificate 2 (/CN=Load RA e1) cannot be used: the RSA public exponent is 1," \
    "point10: the certificate and the reason are named"

check_error_log '\[scep:warn\] .*SCEP00212: .*the challengePassword is wrong'
t_done

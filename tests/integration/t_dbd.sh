#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Issue 18: one httpd node keeping its records in PostgreSQL through mod_dbd
# (ScepDeviceDB dbd:).  A scratch PostgreSQL (tests/pg.sh) gets the schema and a
# registration from scepreg --pg; challenges are also minted at the node's endpoint;
# strongSwan's pki and certmonger enroll, and every certificate they hold is a row of
# scep_certificates.  Then the failures: PostgreSQL stopped (GetCACaps and GetCACert still
# answer, a PKIOperation gets 503 with Retry-After within the timeout, never a hang, and a
# log line), started again (the next enrollment succeeds without restarting httpd), and
# the writers' lock held by someone else (503 after about ScepDBDTimeout, not when the
# holder lets go), the schema missing (503, SCEP00341).  The CRL endpoint and minting
# follow the same rules.
source "$(dirname "$0")/lib.sh"
source "$LIB_DIR/../pg.sh"
t_init
require_module
require_probe
SCEPREG=${SCEPREG:-$TOP/scepreg}
[[ -x "$SCEPREG" ]] || die "the registration tool $SCEPREG is not built"
pg_available || die "PostgreSQL 15 (initdb, pg_ctl, psql) is not installed"
command -v pki >/dev/null || die "strongSwan's pki is not installed (strongswan-pki)"
for tool in certmonger getcert dbus-run-session; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
[[ -f $APACHE_MODDIR/mod_dbd.so ]] || die "mod_dbd is not installed"
at_exit pg_stop_all

# the bound of every statement and of the wait for the writers' lock, in ms
TIMEOUT_MS=1500
PGPORT=$(free_port)
pg_start db "$PGPORT" >/dev/null || die "PostgreSQL did not start"
CONNINFO=$(pg_conninfo db)
out=$(timeout 60 "$SCEPREG" --pg "$CONNINFO" db upgrade 2>&1) \
    || die "the schema was not created: $out"
expect_eq "$out" "schema version 0 -> 1" "scepreg db upgrade creates the schema"
# a device registered with its own challenge, beside the minted ones
REG_CHAL=$(openssl rand -hex 12)
timeout 60 "$SCEPREG" --pg "$CONNINFO" -c -b reg1.example.net "$REG_CHAL" >/dev/null 2>&1 \
    || die "scepreg could not register reg1.example.net"

make_pki "$T/pki" Dbd
# Two hosts as conf-examples/multi-node.conf names a primary and its standby: the first
# refuses connections, libpq goes on to the second, which accepts writes.
DEADPORT=$(free_port)
httpd_conf "LoadModule dbd_module $APACHE_MODDIR/mod_dbd.so
LoadModule authz_host_module $APACHE_MODDIR/mod_authz_host.so
DBDriver pgsql
DBDParams \"host=127.0.0.1,127.0.0.1 port=$DEADPORT,$PGPORT dbname=scep user=scep \\
           target_session_attrs=read-write connect_timeout=3 keepalives=1 \\
           tcp_user_timeout=3000 application_name=t_dbd\"
DBDMin 0
DBDKeep 2
DBDMax 4
DBDExptime 60
$(scep_location /scep "$T/pki" ra "ScepDeviceDB dbd:" "ScepDBDTimeout $TIMEOUT_MS")
<Location /admin/challenge>
    SetHandler scep-challenge
    ScepDeviceDB dbd:
    ScepDBDTimeout $TIMEOUT_MS
    Require ip 127.0.0.1
</Location>
<Location /crl>
    SetHandler scep-crl
    ScepCACertificateFile $T/pki/ca.pem
    ScepCAKeyFile $T/pki/ca.key
    ScepDeviceDB dbd:
    Require all granted
</Location>"
httpd_start || t_done
URL="http://127.0.0.1:$PORT/scep"

# mint: a one-time challenge for any name, from the node's own endpoint, on stdout
mint() {
    http_get "/admin/challenge" "$T/minted"
    [[ "$HTTP_CODE" == 200 ]] || { echo "HTTP $HTTP_CODE"; return 1; }
    head -1 "$T/minted"
}
rows() { pg_psql db -tAc "$1"; }
# serial_of PEM: the serial as the records hold it (lower-case hex)
serial_of() {
    openssl x509 -in "$1" -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f' | sed 's/^0*//'
}
# recorded PEM WHAT: the certificate is a row of scep_certificates, byte for byte
recorded() {
    local der
    der=$(der_of "$1")
    if [[ $(rows "SELECT count(*) FROM scep_certificates WHERE encode(der, 'hex') = '$der'") \
          == 1 ]]; then
        pass "$2: the certificate is recorded in scep_certificates"
    else
        fail "$2: the certificate is not in scep_certificates"
    fi
}

# ---- strongSwan ----
S=$T/swan
mkdir -p "$S"
timeout 60 pki --scepca --url "$URL" --caout "$S/ca.der" --raout "$S/ra.der" --force \
    >"$S/scepca.out" 2>&1 || fail "pki --scepca: $(grep -v plugin "$S/scepca.out" | tail -3)"
[[ -f "$S/ra.der" ]] || { [[ -f "$S/ra-1.der" ]] && cp "$S/ra-1.der" "$S/ra.der"; }

# swan NAME [CHALLENGE]: pki --scep with a key of its own (pki derives the transactionID
# from the key) and CHALLENGE, else a freshly minted one; 0 when a verified certificate came
swan() {
    local name=$1 chal=${2:-} rc=0
    timeout 120 pki --gen --type rsa --size 2048 --outform pem >"$S/$name.key" 2>/dev/null \
        || die "pki --gen failed"
    [[ -n "$chal" ]] || chal=$(mint) || { fail "$name: minting failed: $chal"; return 1; }
    timeout 120 pki --scep --url "$URL" --in "$S/$name.key" --dn "CN=$name" --password "$chal" \
        --cacert-enc "$S/ra.der" --cacert-sig "$S/ra.der" --cacert "$S/ca.der" \
        --outform pem >"$S/$name.pem" 2>"$S/$name.err" || rc=$?
    if ((rc != 0)) || ! grep -q 'BEGIN CERTIFICATE' "$S/$name.pem"; then
        fail "pki --scep $name: exit $rc, no certificate:"
        grep -v -e plugin -e TPM "$S/$name.err" | sed 's/^/       | /' | tail -10
        return 1
    fi
    if timeout 30 openssl verify -CAfile "$T/pki/ca.pem" "$S/$name.pem" >/dev/null 2>&1; then
        pass "pki --scep $name: certificate issued and verified"
    else
        fail "pki --scep $name: the certificate does not verify"
        return 1
    fi
    recorded "$S/$name.pem" "pki --scep $name"
}
swan swan1.example.net || true
expect_eq "$(rows "SELECT count(*) FROM scep_challenges")" 0 \
    "the minted challenge was consumed (no row left)"
expect_eq "$(rows "SELECT fqdn || ' ' || state FROM scep_transactions")" \
    "swan1.example.net issued" "the transaction is recorded as issued"
swan reg1.example.net "$REG_CHAL" || true
expect_eq "$(rows "SELECT enrollments FROM scep_devices WHERE key = 'reg1.example.net'")" 1 \
    "the registration made by scepreg --pg counts its enrollment"

# ---- certmonger, through a private daemon ----
C=$T/cm
CM_CHAL=$(mint) || fail "minting for certmonger: $CM_CHAL"
if certmonger_enroll "$C" "$URL" "$CM_CHAL" Dbd -N "CN=cm.example.net" \
    && timeout 30 openssl verify -CAfile "$T/pki/ca.pem" "$C/out/cert.pem" >/dev/null 2>&1; then
    pass "certmonger: getcert request -w got a verified certificate"
    recorded "$C/out/cert.pem" "certmonger"
else
    fail "certmonger did not get a certificate:"
    certmonger_said "$C" 20
fi

http_get "/crl" "$T/crl.der"
expect_eq "$HTTP_CODE $HTTP_CTYPE" "200 application/pkix-crl" \
    "the CRL is served from PostgreSQL"
expect_eq "$(rows "SELECT count(*) FROM scep_crl_published")" 1 "the published CRL is recorded"

# ---- PostgreSQL stopped ----
# pkiop NAME: a probe enrollment as a POST bounded at 20 s; HTTP_CODE, headers in
# $T/NAME.headers, seconds taken in ELAPSED
pkiop() {
    local name=$1 start
    probe_enrollment_request "$name" "$T/pki/ra.pem" --challenge "${2:-not-minted}"
    start=$(date +%s%N)
    http_post "/scep?operation=PKIOperation" "$T/$name.req" "$T/$name.rep" \
        -D "$T/$name.headers" --max-time 20
    ELAPSED=$((($(date +%s%N) - start) / 1000000))
}
retry_after() { tr -d '\r' <"$T/$1.headers" | sed -n 's/^Retry-After: //Ip'; }
certs_before=$(rows "SELECT count(*) FROM scep_certificates")
pg_stop db fast || die "PostgreSQL did not stop"
http_get "/scep?operation=GetCACaps" "$T/caps"
expect_eq "$HTTP_CODE" 200 "PostgreSQL stopped: GetCACaps still answers 200"
http_get "/scep?operation=GetCACert" "$T/cacert"
expect_eq "$HTTP_CODE" 200 "PostgreSQL stopped: GetCACert still answers 200"
for i in 1 2 3; do
    pkiop "down$i"
    expect_eq "$HTTP_CODE" 503 "PostgreSQL stopped: PKIOperation $i gets 503"
    expect_eq "$(retry_after "down$i")" 30 "PostgreSQL stopped: PKIOperation $i: Retry-After 30"
    if ((ELAPSED < TIMEOUT_MS + 3000)); then
        pass "PostgreSQL stopped: PKIOperation $i answered in $ELAPSED ms"
    else
        fail "PostgreSQL stopped: PKIOperation $i took $ELAPSED ms"
    fi
done
expect_log 'SCEP0070[14]: .*refused with (HTTP )?503' \
    "PostgreSQL stopped: a log line says the request was refused with 503"
http_get "/admin/challenge" "$T/mint-down" -D "$T/mint-down.headers"
expect_eq "$HTTP_CODE" 503 "PostgreSQL stopped: minting gets 503"
expect_eq "$(retry_after mint-down)" 30 "PostgreSQL stopped: minting: Retry-After 30"
http_get "/crl" "$T/crl-down" -D "$T/crl-down.headers"
expect_eq "$HTTP_CODE" 503 "PostgreSQL stopped: the CRL gets 503"

# ---- started again: no httpd restart ----
pg_start db "$PGPORT" >/dev/null || die "PostgreSQL did not start again"
expect_eq "$(rows "SELECT count(*) FROM scep_certificates")" "$certs_before" \
    "nothing was recorded while PostgreSQL was down"
ok=0
for ((i = 0; i < 20; i++)); do
    http_get "/admin/challenge" "$T/minted"
    [[ "$HTTP_CODE" == 200 ]] && { ok=1; break; }
    sleep 0.5
done
expect_eq "$ok" 1 "PostgreSQL back: minting answers again without restarting httpd"
swan swan2.example.net || true

# ---- the writers' lock held elsewhere ----
timeout 60 psql -X -q -h 127.0.0.1 -p "$PGPORT" -U scep -d scep \
    -c "BEGIN; LOCK TABLE scep_schema IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(10); COMMIT;" \
    >"$T/locker.out" 2>&1 &
LOCKER=$!
at_exit "kill $LOCKER 2>/dev/null"
# until the lock is held (bounded)
for ((i = 0; i < 50; i++)); do
    [[ $(rows "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
               WHERE c.relname = 'scep_schema' AND l.mode = 'AccessExclusiveLock'
               AND l.granted") == 1 ]] && break
    sleep 0.1
done
pkiop locked
expect_eq "$HTTP_CODE" 503 "writers' lock held elsewhere: PKIOperation gets 503"
if ((ELAPSED >= TIMEOUT_MS - 200 && ELAPSED < TIMEOUT_MS + 3000)); then
    pass "writers' lock held elsewhere: 503 after $ELAPSED ms (ScepDBDTimeout $TIMEOUT_MS)"
else
    fail "writers' lock held elsewhere: answered after $ELAPSED ms (ScepDBDTimeout $TIMEOUT_MS)"
fi
expect_log 'SCEP00340: .*(lock|timeout)' \
    "writers' lock held elsewhere: PostgreSQL's words logged"
wait "$LOCKER" || true
LOCKER=""

# ---- the schema gone (a database restored without it): 503, the log says what to run ----
rows "ALTER TABLE scep_schema RENAME TO scep_schema_away" >/dev/null
pkiop noschema
expect_eq "$HTTP_CODE" 503 "no schema: PKIOperation gets 503"
expect_eq "$(retry_after noschema)" 30 "no schema: Retry-After 30"
expect_log 'SCEP00341: .*holds no mod_scep schema' "no schema: the log says to create it"
rows "ALTER TABLE scep_schema_away RENAME TO scep_schema" >/dev/null
swan swan3.example.net || true

# every certificate a client holds is recorded, and no serial twice
expect_eq "$(rows "SELECT count(*) FROM scep_certificates")" "$((certs_before + 2))" \
    "scep_certificates holds exactly the certificates the clients received"
expect_eq "$(rows "SELECT count(*) - count(DISTINCT serial) FROM scep_certificates")" 0 \
    "no serial twice"

httpd_stop || fail "httpd did not stop cleanly"
check_error_log 'SCEP0070[0-9]: ' 'SCEP0034[01]: ' 'SCEP00124: .*PostgreSQL' '\[dbd:error\]'
expect_log_lacks "$CM_CHAL" "the minted challenge never appears in the error log"
expect_log_lacks "$REG_CHAL" "the registered challenge never appears in the error log"
t_done

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Enrollment against device registrations (ScepDeviceDB + scepreg): a registered router
# enrolls and a second device with the same challenge cannot; wrong challenge, address,
# serial; unknown, expired, disabled and locked-out names; the one-time race; retries of
# a transaction; wildcards; forced names; profiles and the client address; minted
# challenges through a protected admin Location; the tool writing while httpd serves;
# the audit log; strongSwan pki against a registration.
source "$(dirname "$0")/lib.sh"
t_init
require_module
SCEPREG=${SCEPREG:-$TOP/scepreg}
[[ -x "$SCEPREG" ]] || die "the registration tool $SCEPREG is not built"
reg() { timeout 60 "$SCEPREG" "$@"; }

make_pki "$T/pki" Reg
RA=$T/pki/ra.pem
CA=$T/pki/ca.pem
DB=$T/db
AUDIT=$T/audit.log

# registrations made before httpd starts, by root: httpd hands the folder to its User
CH_RTR=$(openssl rand -hex 12)
reg -c -b -a 192.0.2.10 -s FTX1234ABC -t "branch router" "$DB" rtr1.example.net "$CH_RTR" \
    || die "scepreg could not register rtr1"
CH_LOCK=$(openssl rand -hex 12)
reg -b "$DB" lock1.example.net "$CH_LOCK" || die "scepreg: lock1"
CH_OT=$(openssl rand -hex 12)
reg -b -1 "$DB" ot1.example.net "$CH_OT" || die "scepreg: ot1"
CH_OLD=$(openssl rand -hex 12)
reg -b -e 2020-01-01 "$DB" old.example.net "$CH_OLD" || die "scepreg: old"
CH_OFF=$(openssl rand -hex 12)
reg -b "$DB" off.example.net "$CH_OFF" && reg -d "$DB" off.example.net || die "scepreg: off"
CH_FLEET=$(openssl rand -hex 12)
reg -b "$DB" '*.fleet.example.net' "$CH_FLEET" || die "scepreg: wildcard"
CH_EXACT=$(openssl rand -hex 12)
reg -b "$DB" c.fleet.example.net "$CH_EXACT" || die "scepreg: exact under wildcard"
CH_RT=$(openssl rand -hex 12)
reg -b -p routers -a 127.0.0.1 "$DB" edge.example.net "$CH_RT" || die "scepreg: edge"
CH_PX=$(openssl rand -hex 12)
reg -b -p routers -a 192.0.2.77 "$DB" behind.example.net "$CH_PX" || die "scepreg: behind"

command -v htpasswd >/dev/null || die "htpasswd (apache2-utils) is missing"
htpasswd -bc "$T/admins" mdm "mdm-secret" >/dev/null 2>&1
chmod 644 "$T/admins"

httpd_conf "LoadModule remoteip_module $APACHE_MODDIR/mod_remoteip.so
RemoteIPHeader X-Forwarded-For
RemoteIPInternalProxy 127.0.0.1
LoadModule authn_core_module $APACHE_MODDIR/mod_authn_core.so
LoadModule authn_file_module $APACHE_MODDIR/mod_authn_file.so
LoadModule auth_basic_module $APACHE_MODDIR/mod_auth_basic.so
LoadModule authz_user_module $APACHE_MODDIR/mod_authz_user.so
ScepAuditLog $AUDIT
$(scep_location /scep "$T/pki" ra "ScepDeviceDB $DB" "ScepLockout 3 600")
$(scep_location /routers "$T/pki" ra "ScepDeviceDB $DB" "ScepProfileName routers" \
    "ScepCheckClientAddress On")
$(scep_location /detail "$T/pki" ra "ScepDeviceDB $DB" "ScepFailureDetail On")
<Location /admin/challenge>
    SetHandler scep-challenge
    ScepDeviceDB $DB
    AuthType Basic
    AuthName \"SCEP challenges\"
    AuthBasicProvider file
    AuthUserFile $T/admins
    Require valid-user
</Location>"
httpd_start || t_done

if store_is_lmdb; then   # PostgreSQL (SCEP_TEST_STORE=pgsql) has no folder to hand over
    owner=$(stat -c %U "$DB")
    [[ $(id -u) != 0 ]] || expect_eq "$owner" "$(sed -n 's/^User //p' "$HTTPD_ROOT/httpd.conf")" \
        "httpd hands the database folder to its User"
fi

# req NAME [probe options]: a request of a device key NAME (file names follow NAME)
req() {
    local name=$1
    shift
    probe_enrollment_request "$name" "$RA" "$@"
}
ok() {   # ok NAME LOCATION WHAT
    send_request "$1" "$2" POST
    check_success "$1" "$RA" "$CA" "$3"
}
refused() {   # refused NAME LOCATION WHAT
    send_request "$1" "$2" POST
    expect_failure "$1" "$RA" 2 "$3"
}
serial_of() { openssl x509 -in "$T/$1.pem" -noout -serial | sed 's/^serial=//'; }

# ---- the registered router, Cisco style (unstructuredName/Address, serialNumber) ----
req rtr1 --challenge "$CH_RTR" --unstructured-name rtr1.example.net \
    --unstructured-address 192.0.2.10 --serial-number FTX1234ABC
RTR1_TXID=$REQ_TXID
ok rtr1 /scep "registered router (FQDN, IP, serial)"
subj=$(openssl x509 -in "$T/rtr1.pem" -noout -subject -nameopt RFC2253)
expect_match "$subj" '^subject=(serialNumber=FTX1234ABC,CN=rtr1\.example\.net|CN=rtr1\.example\.net,serialNumber=FTX1234ABC)$' \
    "the subject is forced from the registration"
san=$(openssl x509 -in "$T/rtr1.pem" -noout -ext subjectAltName | tail -n +2 | tr -d ' ')
expect_eq "$san" "DNS:rtr1.example.net,IPAddress:192.0.2.10" "the SAN is the registered FQDN and IP"
RTR1_SERIAL=$(serial_of rtr1)

# retry of the same transaction: the same certificate, nothing issued twice
send_request rtr1 /scep POST
if check_success rtr1 "$RA" "$CA" "retried transaction"; then
    expect_eq "$(serial_of rtr1)" "$RTR1_SERIAL" "a retry returns the recorded certificate"
fi
expect_log 'SCEP00221: ' "the retry is logged"
# the same transactionID with a different request of the same requester (its key)
cp "$T/rtr1.key" "$T/rtr1b.key"
req rtr1b --challenge "$CH_RTR" --unstructured-name rtr1.example.net \
    --unstructured-address 192.0.2.10 --serial-number FTX1234ABC --txid "$RTR1_TXID" \
    --san-dns rtr1.example.net
refused rtr1b /scep "the same transactionID with a different request"
# point 8: another requester with that transactionID (clients derive it from the public
# key, which anyone reads in the certificate) is a transaction of its own: neither blocked
# nor told about rtr1's
req point8 --challenge "$CH_FLEET" --san-dns squat.fleet.example.net --txid "$RTR1_TXID"
ok point8 /scep "point8 another device with rtr1's transactionID"
send_request rtr1 /scep POST
if check_success rtr1 "$RA" "$CA" "point8 rtr1's retry after the squat"; then
    expect_eq "$(serial_of rtr1)" "$RTR1_SERIAL" "point8 rtr1 still gets its own certificate"
fi

# a second device with the same challenge
req rtr2 --challenge "$CH_RTR" --unstructured-name rtr2.example.net \
    --unstructured-address 192.0.2.10 --serial-number FTX1234ABC
refused rtr2 /scep "a second device with rtr1's challenge"
req rtr1-wrong --challenge "not-$CH_RTR" --unstructured-name rtr1.example.net \
    --unstructured-address 192.0.2.10 --serial-number FTX1234ABC
refused rtr1-wrong /scep "wrong challenge"
req rtr1-ip --challenge "$CH_RTR" --unstructured-name rtr1.example.net \
    --unstructured-address 192.0.2.99 --serial-number FTX1234ABC
refused rtr1-ip /scep "wrong IP address"
req rtr1-sn --challenge "$CH_RTR" --unstructured-name rtr1.example.net \
    --unstructured-address 192.0.2.10 --serial-number FTX0000000
refused rtr1-sn /scep "wrong serial number"
req old --challenge "$CH_OLD" --san-dns old.example.net
refused old /scep "expired registration"
req off --challenge "$CH_OFF" --san-dns off.example.net
refused off /scep "disabled registration"
req nobody --challenge "$CH_RTR" --san-dns nobody.example.net
refused nobody /scep "unknown device"
# point 7: a refusal tells the client nothing of the registrations; the log does
GENERIC="refused by the server's policy; the server's log has the reason"
for n in rtr1-wrong rtr1-ip rtr1-sn old off nobody; do
    expect_eq "$(field $n failInfoText)" "$GENERIC" "point7 $n: the client gets the generic text"
done
expect_log "SCEP00212: .*the serialNumber \(FTX0000000\) is not the one registered" \
    "point7 the log keeps the reason"
send_request nobody /detail POST
expect_failure nobody "$RA" 2 "point7 the same at an endpoint with ScepFailureDetail On" || true
expect_match "$(field nobody failInfoText)" "no registration applies to nobody.example.net" \
    "point7 ScepFailureDetail On tells the reason"
expect_log '\[scep:warn\] .*SCEP00212: .*127\.0\.0\.1 for rtr1\.example\.net refused \(badRequest\): the challengePassword is wrong' \
    "the WARNING names the FQDN, the client and the transaction"

# ---- lockout after 3 failures (ScepLockout 3 600) ----
for i in 1 2 3; do
    req "lock-bad$i" --challenge "wrong-$i" --san-dns lock1.example.net
    send_request "lock-bad$i" /scep POST
done
req lock-good --challenge "$CH_LOCK" --san-dns lock1.example.net
refused lock-good /scep "the right challenge after 3 failures: locked out"
expect_log 'lock1\.example\.net is locked out until' "the lockout is logged"
reg -U "$DB" lock1.example.net || fail "scepreg -U failed"
send_request lock-good /scep POST
check_success lock-good "$RA" "$CA" "after scepreg -U the device enrolls" || true

# ---- one-time challenge: 8 concurrent requests, one certificate ----
for i in $(seq 8); do
    req "ot$i" --challenge "$CH_OT" --san-dns ot1.example.net
done
racers=()
for i in $(seq 8); do
    ( http_post "/scep?operation=PKIOperation" "$T/ot$i.req" "$T/ot$i.rep"
      echo "$HTTP_CODE" >"$T/ot$i.code" ) &
    racers+=($!)
done
wait "${racers[@]}"   # not httpd, which also runs in the background
wins=0
for i in $(seq 8); do
    HTTP_CODE=$(cat "$T/ot$i.code")
    HTTP_CTYPE=application/x-pki-message
    if probe_reply "ot$i" "$RA" && [[ $(field "ot$i" pkiStatus) == 0 ]]; then
        wins=$((wins + 1))
    fi
done
expect_eq "$wins" 1 "8 concurrent requests with one one-time challenge: exactly one certificate"
expect_eq "$(reg -L "$DB" ot1.example.net | tail -n +2 | grep -c .)" 1 \
    "the database holds exactly one certificate for ot1"
req ot-again --challenge "$CH_OT" --san-dns ot1.example.net
refused ot-again /scep "the used one-time challenge"

# ---- wildcards ----
req fa --challenge "$CH_FLEET" --san-dns a.fleet.example.net
ok fa /scep "a name under a wildcard registration"
req fb --subject "/O=Evil Corp/CN=b.fleet.example.net" --challenge "$CH_FLEET" \
    --san-dns b.fleet.example.net
ok fb /scep "another name under the wildcard"
expect_eq "$(openssl x509 -in "$T/fb.pem" -noout -subject -nameopt RFC2253)" \
    "subject=CN=b.fleet.example.net" "nothing but the registered name survives (O= dropped)"
req fc --challenge "$CH_FLEET" --san-dns c.fleet.example.net
refused fc /scep "an exact registration wins over the wildcard"
req fc2 --challenge "$CH_EXACT" --san-dns c.fleet.example.net
ok fc2 /scep "the exact registration's own challenge"
req fx --challenge "$CH_FLEET" --san-dns x.other.example.net
refused fx /scep "a name outside the wildcard"

# ---- profiles and the client address ----
req edge --challenge "$CH_RT" --san-dns edge.example.net
refused edge /scep "a registration for profile 'routers' at an endpoint without it"
ok edge /routers "the client address matches the registered IP (ScepCheckClientAddress On)"
# behind a reverse proxy: mod_remoteip turns X-Forwarded-For into the client address
req behind --challenge "$CH_PX" --san-dns behind.example.net
send_request behind /routers POST
expect_failure behind "$RA" 2 "behind a proxy, without the forwarded address" || true
http_post "/routers?operation=PKIOperation" "$T/behind.req" "$T/behind.rep" -H "X-Forwarded-For: 192.0.2.77"
check_success behind "$RA" "$CA" "behind a proxy: mod_remoteip's client address matches" || true

# ---- the tool writes while httpd serves ----
CH_LIVE=$(openssl rand -hex 12)
reg -b "$DB" live.example.net "$CH_LIVE" || fail "scepreg add while httpd runs"
req live --challenge "$CH_LIVE" --san-dns live.example.net
ok live /scep "a device added while httpd serves enrolls at once"

# ---- minted challenges through the protected admin Location ----
http_get "/admin/challenge" "$T/m0"
expect_eq "$HTTP_CODE" 401 "the admin Location asks for credentials"
http_get "/admin/challenge?fqdn=dyn1.example.net" "$T/m1" -u mdm:mdm-secret
expect_eq "$HTTP_CODE" 200 "an authenticated caller gets a challenge"
MINTED=$(tr -d '\n' <"$T/m1")
expect_match "$MINTED" '^[0-9a-f]{32}$' "a minted challenge is 32 hex characters"
req dyn-other --challenge "$MINTED" --san-dns dyn2.example.net
refused dyn-other /scep "a minted challenge bound to another name"
req dyn1 --challenge "$MINTED" --san-dns dyn1.example.net
ok dyn1 /scep "a minted challenge enrolls an unregistered device"
req dyn1-again --challenge "$MINTED" --san-dns dyn1.example.net
refused dyn1-again /scep "a minted challenge works once"
http_get "/admin/challenge?format=json&ttl=60" "$T/m2" -u mdm:mdm-secret
expect_eq "$HTTP_CTYPE" application/json "format=json answers JSON"
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["challenge"])==32 and d["ttl"]==60 and d["fqdn"] is None' "$T/m2" 2>/dev/null; then
    pass "the JSON carries the challenge, its ttl and no name"
else
    fail "unexpected JSON: $(cat "$T/m2")"
fi
http_get "/admin/challenge/mscep_admin/" "$T/m3" -u mdm:mdm-secret
page=$(iconv -f UTF-16 -t UTF-8 "$T/m3" 2>/dev/null || true)
expect_match "$page" 'The enrollment challenge password is: <B> [0-9a-f]{32} </B>' \
    "the mscep_admin page shape, in UTF-16"
M3=$(sed -n 's/.*password is: <B> \([0-9a-f]*\) <\/B>.*/\1/p' <<<"$page")
req dyn3 --challenge "$M3" --san-dns any3.example.net
ok dyn3 /scep "a challenge from the mscep_admin page enrolls"

# ---- strongSwan pki against a registration ----
if command -v pki >/dev/null; then
    CH_SWAN=$(openssl rand -hex 12)
    reg -b "$DB" swan.example.net "$CH_SWAN" || fail "scepreg: swan"
    S=$T/swan
    mkdir -p "$S"
    openssl x509 -in "$CA" -outform DER -out "$S/ca.der"
    openssl x509 -in "$RA" -outform DER -out "$S/ra.der"
    timeout 60 pki --gen --type rsa --size 2048 --outform pem >"$S/key.pem" 2>/dev/null
    if timeout 120 pki --scep --url "http://127.0.0.1:$PORT/scep" --in "$S/key.pem" \
            --dn "CN=swan.example.net" --san swan.example.net --password "$CH_SWAN" \
            --cacert-enc "$S/ra.der" --cacert-sig "$S/ra.der" --cacert "$S/ca.der" \
            --outform pem >"$S/cert.pem" 2>"$S/err" \
        && openssl verify -CAfile "$CA" "$S/cert.pem" >/dev/null 2>&1; then
        pass "strongSwan pki enrolls a registered device"
    else
        fail "strongSwan pki with a registration:"
        grep -v -e plugin -e TPM "$S/err" | sed 's/^/       | /' | tail -5
    fi
fi

# ---- every certificate ever issued can be listed ----
issued=$(grep -c 'SCEP00220: ' "$ERROR_LOG")
listed=$(reg -L "$DB" | tail -n +2 | grep -c .)
expect_eq "$listed" "$issued" "scepreg -L lists every certificate issued ($issued)"
expect_match "$(reg -l "$DB" rtr1.example.net)" "$RTR1_SERIAL" \
    "scepreg -l shows rtr1's last certificate serial"

# ---- the audit log ----
if python3 - "$AUDIT" <<'EOF'
import json, sys
events = {}
for line in open(sys.argv[1]):
    d = json.loads(line)
    for key in ("time", "event", "client"):
        assert key in d, line
    events[d["event"]] = events.get(d["event"], 0) + 1
assert events.get("issued", 0) > 0 and events.get("refused", 0) > 0 and events.get("minted", 0) == 3, events
EOF
then
    pass "the audit log is one JSON object per decision (issued, refused, minted)"
else
    fail "the audit log is not as expected:"
    head -5 "$AUDIT" | sed 's/^/       | /'
fi
expect_file_contains "$AUDIT" '"fqdn":"rtr1.example.net"' "audit lines name the FQDN"
for secret in "$CH_RTR" "$CH_FLEET" "$CH_OT" "$MINTED"; do
    if grep -qF -- "$secret" "$AUDIT" "$ERROR_LOG"; then
        fail "a challenge appears in the logs"
    fi
done
pass "no challenge appears in the error or audit log"

check_error_log '\[scep:warn\] .*SCEP0021[245]: ' '\[scep:info\] ' '\[auth_basic:error\] .*AH01614: '
t_done

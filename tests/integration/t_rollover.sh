#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# CA rollover: before the switch, ScepNextCACertificateFile makes GetNextCACert available
# and advertised (a SignedData by the current RA that openssl cms and strongSwan's pki
# verify); after it, ScepPreviousCACertificateFile lets certificates of the old CA renew
# into certificates of the new one, for the probe and for strongSwan pki, and without it
# they are refused with badCertId.
source "$(dirname "$0")/lib.sh"
t_init
require_module
SCEPREG=${SCEPREG:-$TOP/scepreg}
reg() { timeout 60 "$SCEPREG" "$@"; }

make_pki "$T/old" "Rollover 2025"
make_pki "$T/new" "Rollover 2026"
DB=$T/db
CH=$(openssl rand -hex 12)
reg -c -b "$DB" '*.roll.example.net' "$CH" 2>/dev/null || die "scepreg"
serial_of() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=//'; }

# ---- before the switch -------------------------------------------------------------
httpd_conf "$(scep_location /scep "$T/old" ra "ScepDeviceDB $DB" \
    "ScepNextCACertificateFile \"$T/new/ca.pem\"")"
httpd_start || t_done
http_get "/scep?operation=GetCACaps" "$T/caps"
expect_file_contains "$T/caps" GetNextCACert "GetCACaps advertises GetNextCACert"
http_get "/scep?operation=GetNextCACert" "$T/next.der"
expect_eq "$HTTP_CODE $HTTP_CTYPE" "200 application/x-x509-next-ca-cert" \
    "GetNextCACert answers application/x-x509-next-ca-cert"
if timeout 30 openssl cms -verify -inform DER -in "$T/next.der" -CAfile "$T/old/ca.pem" \
    -certfile "$T/old/ra.pem" -certsout "$T/next.pem" -out /dev/null 2>"$T/cms.err"; then
    pass "openssl cms: the answer is signed by the current RA, which the current CA issued"
    expect_eq "$(der_of "$T/next.pem")" "$(der_of "$T/new/ca.pem")" "it carries the next CA certificate"
else
    fail "openssl cms -verify: $(cat "$T/cms.err")"
fi
if command -v pki >/dev/null; then
    timeout 30 pki --pkcs7 --show --in "$T/next.der" 2>/dev/null \
        | sed -n '/BEGIN CERT/,/END CERT/p' >"$T/shown.pem"
    expect_eq "$(der_of "$T/shown.pem")" "$(der_of "$T/new/ca.pem")" \
        "strongSwan pki --pkcs7 --show parses it and prints exactly the next CA certificate"
    if timeout 30 pki --pkcs7 --verify --in "$T/next.der" --cert "$T/old/ra.pem" >/dev/null 2>&1; then
        pass "strongSwan pki --pkcs7 --verify accepts the current RA's signature"
    else
        fail "strongSwan pki --pkcs7 --verify rejected the signature"
    fi
fi

# a device and strongSwan enroll with the old CA
probe_enrollment_request d1 "$T/old/ra.pem" --challenge "$CH" --san-dns d1.roll.example.net
send_request d1 /scep POST
check_success d1 "$T/old/ra.pem" "$T/old/ca.pem" "enrollment before the switch" || die "no certificate"
S=$T/swan
mkdir -p "$S"
swan() {
    local pki=$1
    shift
    openssl x509 -in "$pki/ca.pem" -outform DER -out "$S/ca.der"
    openssl x509 -in "$pki/ra.pem" -outform DER -out "$S/ra.der"
    timeout 120 pki --scep --url "http://127.0.0.1:$PORT/scep" --dn "CN=swan.roll.example.net" \
        --san swan.roll.example.net --cacert-enc "$S/ra.der" --cacert-sig "$S/ra.der" \
        --cacert "$S/ca.der" --outform pem "$@"
}
have_swan=0
if command -v pki >/dev/null; then
    timeout 60 pki --gen --type rsa --size 2048 --outform pem >"$S/k1.pem" 2>/dev/null
    timeout 60 pki --gen --type rsa --size 2048 --outform pem >"$S/k2.pem" 2>/dev/null
    if swan "$T/old" --in "$S/k1.pem" --password "$CH" >"$S/c1.pem" 2>"$S/e1"; then
        have_swan=1
        pass "strongSwan enrolls with the old CA"
    else
        fail "strongSwan enrollment: $(grep -v -e plugin -e TPM "$S/e1" | tail -3)"
    fi
fi

# ---- the switch: the new CA issues, the old one's certificates still renew ---------------
httpd_stop
httpd_conf "$(scep_location /scep "$T/new" ra "ScepDeviceDB $DB" \
    "ScepPreviousCACertificateFile \"$T/old/ca.pem\"" )"
httpd_start || t_done
http_get "/scep?operation=GetCACaps" "$T/caps2"
if grep -q GetNextCACert "$T/caps2"; then
    fail "GetNextCACert is still advertised after the switch"
else
    pass "after the switch, GetNextCACert is no longer advertised"
fi
http_get "/scep?operation=GetNextCACert" "$T/none"
expect_eq "$HTTP_CODE" 404 "GetNextCACert without a next CA: 404"

cp "$T/d1.key" "$T/r1.key"
cp "$T/d1.pem" "$T/r1.selfsigned.pem"
probe_request r1 "$T/new/ra.pem" --cert "$T/r1.selfsigned.pem" --msgtype 17 --no-challenge \
    --san-dns d1.roll.example.net
send_request r1 /scep POST
if check_success r1 "$T/new/ra.pem" "$T/new/ca.pem" "RenewalReq signed by the old CA's certificate"; then
    expect_log "SCEP00220: .*to d1.roll.example.net .*renewing $(serial_of "$T/d1.pem")" \
        "the log shows the renewal across the rollover"
fi
if ((have_swan)); then
    if swan "$T/new" --in "$S/k2.pem" --cert "$S/c1.pem" --key "$S/k1.pem" >"$S/c2.pem" 2>"$S/e2" \
        && openssl verify -CAfile "$T/new/ca.pem" "$S/c2.pem" >/dev/null 2>&1; then
        pass "strongSwan renews its old-CA certificate into a new-CA certificate"
    else
        fail "strongSwan renewal across the rollover: $(grep -v -e plugin -e TPM "$S/e2" | tail -3)"
    fi
fi

# ---- without ScepPreviousCACertificateFile the old certificates are foreign ---------------
httpd_stop
httpd_conf "$(scep_location /scep "$T/new" ra "ScepDeviceDB $DB")"
httpd_start || t_done
cp "$T/d1.key" "$T/r2.key"
cp "$T/d1.pem" "$T/r2.selfsigned.pem"
probe_request r2 "$T/new/ra.pem" --cert "$T/r2.selfsigned.pem" --msgtype 17 --no-challenge \
    --san-dns d1.roll.example.net --txid "r2-$RANDOM"
send_request r2 /scep POST
expect_failure r2 "$T/new/ra.pem" 4 "without ScepPreviousCACertificateFile: badCertId" || true

# ---- configuration mistakes -----------------------------------------------------------
httpd_stop
configtest() { httpd_configtest; cat "$HTTPD_ROOT/configtest.out"; }
httpd_conf "$(scep_location /scep "$T/new" ra "ScepNextCACertificateFile \"$T/new/ca.pem\"")"
expect_match "$(configtest)" "holds the current CA certificate" "a next CA that is the current one is refused"
httpd_conf "$(scep_location /scep "$T/new" ra "ScepPreviousCACertificateFile \"$T/new/ra.pem\"")"
expect_match "$(configtest)" "not a CA certificate" "a previous CA file with a non-CA certificate is refused"

check_error_log '\[scep:warn\] .*SCEP0021[2-7]: '
t_done

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Revocation as relying parties see it: the CRL published by SetHandler scep-crl (DER,
# signed, numbered, conditional GET), the CRL distribution point in issued certificates
# (followed by openssl verify -crl_download), openssl verify -crl_check before and after
# scepreg -R, and GetCRL / GetCert inside the SCEP envelope.
source "$(dirname "$0")/lib.sh"
t_init
require_module
SCEPREG=${SCEPREG:-$TOP/scepreg}
reg() { timeout 60 "$SCEPREG" "$@"; }

make_pki "$T/pki" Revoking
make_pki "$T/other" Foreign
RA=$T/pki/ra.pem
CA=$T/pki/ca.pem
DB=$T/db
CH=$(openssl rand -hex 12)
reg -c -b "$DB" c1.example.net "$CH" 2>/dev/null || die "scepreg: c1"
PORT=$(free_port)
CDP="http://127.0.0.1:$PORT/crl/revoking.crl"
httpd_conf "$(
    scep_location /scep "$T/pki" ra "ScepDeviceDB $DB" "ScepCRLDistributionPoint $CDP" \
        "ScepCRLValidity 86400"
    scep_location /crl/revoking.crl "$T/pki" nora "SetHandler scep-crl" "ScepDeviceDB $DB" \
        "ScepCRLValidity 86400"
    scep_location /static "$T/pki" ra "ScepChallenge $CH"
)"
httpd_start || t_done

serial_of() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=//'; }
# fetch_crl NAME: the CRL over HTTP as $T/NAME.crl (DER) and $T/NAME.crl.pem
fetch_crl() {
    http_get /crl/revoking.crl "$T/$1.crl"
    openssl crl -inform DER -in "$T/$1.crl" -out "$T/$1.crl.pem" 2>/dev/null
}
crl_number() { openssl crl -in "$1" -noout -crlnumber | sed 's/^crlNumber=0x//'; }
# verify_crl CERT CRL: openssl verify with the CRL
verify_crl() { timeout 30 openssl verify -crl_check -CAfile "$CA" -CRLfile "$2" "$1" 2>&1; }

# ---- two certificates for the same device -------------------------------------------
for n in a b; do
    probe_enrollment_request "$n" "$RA" --challenge "$CH" --san-dns c1.example.net
    send_request "$n" /scep POST
    check_success "$n" "$RA" "$CA" "enrollment" || die "no certificate $n"
done
SA=$(serial_of "$T/a.pem")
SB=$(serial_of "$T/b.pem")
expect_match "$(openssl x509 -in "$T/a.pem" -noout -ext crlDistributionPoints 2>&1)" \
    "URI:$CDP" "issued certificates name the CRL distribution point"
expect_match "$(openssl x509 -in "$T/a.pem" -noout -ext crlDistributionPoints 2>&1 | grep -c URI)" \
    '^1$' "one distribution point"

# ---- the first CRL ---------------------------------------------------------------------
fetch_crl c1
expect_eq "$HTTP_CODE $HTTP_CTYPE" "200 application/pkix-crl" "the CRL handler answers DER as application/pkix-crl"
expect_match "$(openssl crl -in "$T/c1.crl.pem" -CAfile "$CA" -noout 2>&1)" "verify OK" \
    "openssl crl: the CRL's signature verifies with the CA certificate"
expect_eq "$(crl_number "$T/c1.crl.pem")" 01 "the first CRL has number 1"
expect_match "$(openssl crl -in "$T/c1.crl.pem" -noout -text)" "No Revoked Certificates" \
    "nothing is revoked yet"
expect_match "$(openssl crl -in "$T/c1.crl.pem" -noout -text)" \
    "Next Update: .*GMT" "the CRL has a nextUpdate"
expect_match "$(verify_crl "$T/a.pem" "$T/c1.crl.pem")" ": OK$" "openssl verify -crl_check: certificate a is good"
fetch_crl c1b
if cmp -s "$T/c1.crl" "$T/c1b.crl"; then
    pass "the same CRL is served while nothing changes"
else
    fail "a second fetch returned another CRL"
fi

# ---- revocation ------------------------------------------------------------------------
reg -R -r keyCompromise "$DB" "$SA" 2>/dev/null && pass "scepreg -R $SA" || fail "scepreg -R $SA"
fetch_crl c2
expect_eq "$(crl_number "$T/c2.crl.pem")" 02 "a revocation makes CRL number 2"
text=$(openssl crl -in "$T/c2.crl.pem" -noout -text)
expect_match "$text" "Serial Number: $SA" "the CRL lists the revoked certificate"
expect_match "$text" "Key Compromise" "with its reason"
if grep -q "Serial Number: $SB" <<<"$text"; then
    fail "the CRL lists a certificate that was not revoked"
else
    pass "the CRL does not list the other certificate"
fi
expect_match "$(verify_crl "$T/a.pem" "$T/c2.crl.pem")" "certificate revoked" \
    "openssl verify -crl_check: certificate a is revoked"
expect_match "$(verify_crl "$T/b.pem" "$T/c2.crl.pem")" ": OK$" \
    "openssl verify -crl_check: certificate b is still good"
expect_match "$(timeout 60 openssl verify -crl_check -crl_download -CAfile "$CA" "$T/a.pem" 2>&1)" \
    "certificate revoked" "openssl verify -crl_download follows the CDP and sees the revocation"
expect_log "SCEP00132: CRL number 2 of .*: 1 revoked certificates" "the module logs each CRL it signs"

# conditional requests and methods
http_get /crl/revoking.crl "$T/c3.crl" -H 'If-None-Match: "crl-2"'
expect_eq "$HTTP_CODE" 304 "If-None-Match with the current ETag: 304"
http_get /crl/revoking.crl "$T/c3.crl" -H 'If-None-Match: "crl-1"'
expect_eq "$HTTP_CODE" 200 "If-None-Match with an old ETag: 200"
http_post /crl/revoking.crl "$T/c2.crl" "$T/post.out"
expect_eq "$HTTP_CODE" 405 "POST to the CRL: 405"

# ---- GetCRL and GetCert inside SCEP -------------------------------------------------
# query NAME MSGTYPE SERIAL [ISSUER]: a GetCert/GetCRL signed with certificate b
query() {
    local name=$1 type=$2 serial=$3 issuer=${4:-$CA}
    cp "$T/b.key" "$T/$name.key"
    cp "$T/b.pem" "$T/$name.selfsigned.pem"
    probe_request "$name" "$RA" --cert "$T/$name.selfsigned.pem" --no-challenge \
        --msgtype "$type" --query-issuer "$issuer" --query-serial "$serial"
    send_request "$name" /scep POST
}
query gcrl 22 "$SB"
if probe reply --in "$T/gcrl.rep" --signer "$RA" --key "$T/gcrl.key" \
    --cert "$T/gcrl.selfsigned.pem" --nonce "$T/gcrl.nonce" --crl-out "$T/gcrl.crl.pem" \
    >"$T/gcrl.out" 2>"$T/gcrl.err" && [[ $(field gcrl pkiStatus) == 0 ]]; then
    pass "GetCRL: SUCCESS with a CRL in the envelope"
    expect_eq "$(openssl crl -in "$T/gcrl.crl.pem" -outform DER | od -An -tx1 | tr -d ' \n')" \
        "$(od -An -tx1 <"$T/c2.crl" | tr -d ' \n')" "GetCRL returns the CRL the handler publishes"
else
    fail "GetCRL: $(cat "$T/gcrl.err") $(field gcrl failInfoText)"
fi
expect_log "SCEP00223: .*GetCRL from 127.0.0.1 \(for serial $SB\): sent CRL number 2" "GetCRL is logged"

query gcert 21 "$SA"
if probe reply --in "$T/gcert.rep" --signer "$RA" --key "$T/gcert.key" \
    --cert "$T/gcert.selfsigned.pem" --nonce "$T/gcert.nonce" --any-cert \
    --cert-out "$T/gcert.pem" >"$T/gcert.out" 2>"$T/gcert.err" \
    && [[ $(field gcert pkiStatus) == 0 ]]; then
    expect_eq "$(der_of "$T/gcert.pem")" "$(der_of "$T/a.pem")" "GetCert returns the certificate with that serial"
else
    fail "GetCert: $(cat "$T/gcert.err") $(field gcert failInfoText)"
fi
query gunknown 21 0BADC0DE
expect_failure gunknown "$RA" 4 "GetCert for a serial never issued: badCertId" || true
query gforeign 21 "$SA" "$T/other/ca.pem"
expect_failure gforeign "$RA" 4 "GetCert naming another issuer: badCertId" || true
query gforeigncrl 22 "$SA" "$T/other/ca.pem"
expect_failure gforeigncrl "$RA" 4 "GetCRL naming another issuer: badCertId" || true

# without certificate records there is nothing to look up
cp "$T/b.key" "$T/nodb.key"
cp "$T/b.pem" "$T/nodb.selfsigned.pem"
probe_request nodb "$RA" --cert "$T/nodb.selfsigned.pem" --no-challenge --msgtype 22 \
    --query-issuer "$CA" --query-serial "$SB"
send_request nodb /static POST
expect_failure nodb "$RA" 2 "GetCRL where no ScepDeviceDB applies: badRequest" || true

check_error_log 'SCEP0022[0-6]: |SCEP0013[0-2]: '

# ---- configuration mistakes ------------------------------------------------------------
httpd_stop
configtest() { httpd_configtest; cat "$HTTPD_ROOT/configtest.out"; }
httpd_conf "$(scep_location /scep "$T/pki" ra "ScepDeviceDB $DB" "ScepCRLDistributionPoint ftp://x/y.crl")"
expect_match "$(configtest)" "ScepCRLDistributionPoint: 'ftp://x/y.crl' is not an http" \
    "a CDP that is not http(s)/ldap is refused at startup"
httpd_conf "$(scep_location /crl "$T/pki" nora "SetHandler scep-crl" "ScepCRLValidity 60")"
expect_match "$(configtest)" "ScepCRLValidity: at least 3600" "a CRL validity under an hour is refused"

t_done

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Renewal: a device enrolls, renews twice (RenewalReq, and the PKCSReq signed with its
# current certificate that Cisco IOS, macOS and sscep send), is revoked, and its next
# renewal is refused.  Renewals signed by another device's certificate or by a foreign
# CA's are refused with the right failInfo; strongSwan pki renews with its old
# certificate and key; GetCACaps advertises Renewal only where records exist.
source "$(dirname "$0")/lib.sh"
t_init
require_module
SCEPREG=${SCEPREG:-$TOP/scepreg}
reg() { timeout 60 "$SCEPREG" "$@"; }

make_pki "$T/pki" Renew
make_pki "$T/other" Foreign
RA=$T/pki/ra.pem
CA=$T/pki/ca.pem
DB=$T/db
CH1=$(openssl rand -hex 12)
CH2=$(openssl rand -hex 12)
reg -c -b -1 "$DB" r1.example.net "$CH1" 2>/dev/null || die "scepreg: r1"
reg -b "$DB" r2.example.net "$CH2" 2>/dev/null || die "scepreg: r2"
httpd_conf "$(
    scep_location /scep "$T/pki" ra "ScepDeviceDB $DB"
    scep_location /strict "$T/pki" ra "ScepDeviceDB $DB" "ScepRenewalChallenge On"
    scep_location /static "$T/pki" ra "ScepChallenge $CH1"
    scep_location /superseding "$T/pki" ra "ScepDeviceDB $DB" "ScepRenewalRevokesOld On"
)"
httpd_start || t_done

http_get "/scep?operation=GetCACaps" "$T/caps"
expect_file_contains "$T/caps" Renewal "GetCACaps advertises Renewal where records exist"
http_get "/static?operation=GetCACaps" "$T/caps2"
if grep -q Renewal "$T/caps2"; then
    fail "GetCACaps advertises Renewal without a ScepDeviceDB"
else
    pass "GetCACaps does not advertise Renewal without a ScepDeviceDB"
fi

serial_of() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=//'; }

# renew_request NAME OLD [probe options]: a request signed with OLD's certificate and key
# (the same key: its transactionID is the one of the first enrollment, as with real clients)
renew_request() {
    local name=$1 old=$2
    shift 2
    cp "$T/$old.key" "$T/$name.key"
    cp "$T/$old.pem" "$T/$name.selfsigned.pem"
    probe_request "$name" "$RA" --cert "$T/$name.selfsigned.pem" "$@"
}

# ---- first enrollment, then two renewals ----
probe_enrollment_request e1 "$RA" --challenge "$CH1" --san-dns r1.example.net
send_request e1 /scep POST
check_success e1 "$RA" "$CA" "first enrollment (one-time challenge)" || die "no first certificate"
S1=$(serial_of "$T/e1.pem")

renew_request e2 e1 --msgtype 17 --no-challenge --san-dns r1.example.net
send_request e2 /scep POST
if check_success e2 "$RA" "$CA" "RenewalReq signed with the current certificate, no challenge"; then
    S2=$(serial_of "$T/e2.pem")
    [[ "$S2" != "$S1" ]] && pass "the renewal is a new certificate" || fail "the renewal repeats the serial"
fi
expect_log "SCEP00220: .*renewing $S1" "the log names the renewed certificate"

renew_request e3 e2 --no-challenge --san-dns r1.example.net
send_request e3 /scep GET-std
check_success e3 "$RA" "$CA" "PKCSReq signed with the current certificate (legacy renewal), by GET" || true
S3=$(serial_of "$T/e3.pem")

# a retried renewal gets the same certificate
send_request e3 /scep GET-std
if check_success e3 "$RA" "$CA" "retried renewal"; then
    expect_eq "$(serial_of "$T/e3.pem")" "$S3" "a retried renewal returns the recorded certificate"
fi

# the one-time challenge was used by the first enrollment: without a certificate, no luck
probe_enrollment_request e1b "$RA" --challenge "$CH1" --san-dns r1.example.net
send_request e1b /scep POST
expect_failure e1b "$RA" 2 "a second first enrollment with the used one-time challenge" || true

# ---- ScepRenewalChallenge On ----
renew_request s1 e3 --msgtype 17 --no-challenge --san-dns r1.example.net
send_request s1 /strict POST
expect_failure s1 "$RA" 2 "ScepRenewalChallenge On: a renewal without the challenge" || true

# ---- another device's certificate, a foreign CA's ----
probe_enrollment_request d2 "$RA" --challenge "$CH2" --san-dns r2.example.net
send_request d2 /scep POST
check_success d2 "$RA" "$CA" "second device enrolls" || true
renew_request x1 d2 --msgtype 17 --no-challenge --san-dns r1.example.net
send_request x1 /scep POST
expect_failure x1 "$RA" 2 "a renewal for r1 signed with r2's certificate" || true
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/f1.key" 2>/dev/null
openssl req -new -key "$T/f1.key" -subj /CN=r1.example.net -out "$T/f1.csr" 2>/dev/null
openssl x509 -req -in "$T/f1.csr" -CA "$T/other/ca.pem" -CAkey "$T/other/ca.key" -days 30 \
    -out "$T/f1.pem" 2>/dev/null
renew_request f2 f1 --msgtype 17 --no-challenge --san-dns r1.example.net
send_request f2 /scep POST
expect_failure f2 "$RA" 4 "a RenewalReq signed by a foreign CA's certificate: badCertId" || true
# ---- ScepRenewalRevokesOld On ----
renew_request d3 d2 --msgtype 17 --no-challenge --san-dns r2.example.net
send_request d3 /superseding POST
check_success d3 "$RA" "$CA" "renewal where the superseded certificate is revoked" || true
expect_match "$(reg -L "$DB" r2.example.net | grep "^$(serial_of "$T/d2.pem")")" \
    $'\t(20[0-9-]+T[0-9:]+Z)\tsuperseded$' "the superseded certificate is listed as revoked (superseded)"
renew_request d4 d2 --msgtype 17 --no-challenge --san-dns r2.example.net --txid "d4-$RANDOM"
send_request d4 /scep POST
expect_failure d4 "$RA" 2 "the superseded certificate renews no more" || true
expect_log "SCEP00217: .*$(serial_of "$T/d2.pem") of r2.example.net was revoked" \
    "the refusal names the superseded certificate"

probe_enrollment_request ss "$RA" --msgtype 17 --no-challenge --san-dns r1.example.net
send_request ss /scep POST
expect_failure ss "$RA" 4 "a RenewalReq with a self-signed certificate: badCertId" || true

# ---- revocation blocks renewal ----
if reg -R -r keyCompromise "$DB" "$S3" 2>"$T/revoke.err"; then
    pass "scepreg -R revokes the current certificate"
else
    fail "scepreg -R: $(cat "$T/revoke.err")"
fi
renew_request e4 e3 --msgtype 17 --no-challenge --san-dns r1.example.net
send_request e4 /scep POST
expect_failure e4 "$RA" 2 "a renewal signed with the revoked certificate" || true
expect_log "SCEP00217: .*was revoked at" "the refusal says the certificate was revoked"
expect_match "$(reg -L -j "$DB" r1.example.net | grep "\"$S3\"")" '"revocation_reason":"keyCompromise"' \
    "scepreg -L -j shows the reason"
# by device: every certificate of r1 (the first two were still valid)
reg -R -r cessationOfOperation "$DB" r1.example.net 2>"$T/revoke2.err" \
    && pass "scepreg -R by FQDN" || fail "scepreg -R by FQDN: $(cat "$T/revoke2.err")"
expect_file_contains "$T/revoke2.err" "revoked 2 certificates of r1.example.net (cessationOfOperation); 1 already revoked" \
    "-R by FQDN revokes the rest and keeps the earlier revocation"
expect_eq "$(reg -L "$DB" r1.example.net | tail -n +2 | grep -c $'\tno\t')" 0 "no certificate of r1 is left unrevoked"

# ---- strongSwan pki renews with its old certificate and key ----
if command -v pki >/dev/null; then
    CH3=$(openssl rand -hex 12)
    reg -b "$DB" swan.example.net "$CH3" 2>/dev/null || fail "scepreg: swan"
    S=$T/swan
    mkdir -p "$S"
    openssl x509 -in "$CA" -outform DER -out "$S/ca.der"
    openssl x509 -in "$RA" -outform DER -out "$S/ra.der"
    swan() {
        timeout 120 pki --scep --url "http://127.0.0.1:$PORT/scep" --dn "CN=swan.example.net" \
            --san swan.example.net --cacert-enc "$S/ra.der" --cacert-sig "$S/ra.der" \
            --cacert "$S/ca.der" --outform pem "$@"
    }
    timeout 60 pki --gen --type rsa --size 2048 --outform pem >"$S/k1.pem" 2>/dev/null
    timeout 60 pki --gen --type rsa --size 2048 --outform pem >"$S/k2.pem" 2>/dev/null
    if swan --in "$S/k1.pem" --password "$CH3" >"$S/c1.pem" 2>"$S/e1" \
        && swan --in "$S/k2.pem" --cert "$S/c1.pem" --key "$S/k1.pem" >"$S/c2.pem" 2>"$S/e2" \
        && openssl verify -CAfile "$CA" "$S/c2.pem" >/dev/null 2>&1; then
        pass "strongSwan pki renews with --cert/--key (new key, no password)"
        expect_log "renewing $(serial_of "$S/c1.pem")" "the log shows strongSwan's renewal"
    else
        fail "strongSwan renewal:"
        grep -hv -e plugin -e TPM "$S/e1" "$S/e2" 2>/dev/null | sed 's/^/       | /' | tail -8
    fi
fi

check_error_log '\[scep:warn\] .*SCEP0021[2-7]: '
t_done

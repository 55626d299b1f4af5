#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# GetCACaps and GetCACert: content, content types, the whole subtree (Cisco's
# /pkiclient.exe), HTTP/1.0 without Host, two Locations with two CAs side by side, and
# 400 for an unknown or missing operation.
source "$(dirname "$0")/lib.sh"
t_init
require_module
require_probe

make_pki "$T/pki1" One
make_pki "$T/pki2" Two
CHAL=$(openssl rand -hex 12)
httpd_conf "$(
    scep_location /scep "$T/pki1" ra "ScepChallenge $CHAL"
    scep_location /lone "$T/pki2" nora "ScepChallenge $CHAL"
    scep_location /two "$T/pki2" ra "ScepChallenge $CHAL"
)"
httpd_start || t_done

# ---- GetCACaps ----
want_caps=$(printf '%s\n' AES DES3 POSTPKIOperation SCEPStandard SHA-1 SHA-256 SHA-384 SHA-512 | sort)
for path in /scep /scep/pkiclient.exe /scep/cgi-bin/pkiclient.exe /lone; do
    http_get "$path?operation=GetCACaps" "$T/caps"
    expect_eq "$HTTP_CODE" 200 "GetCACaps at $path: 200"
    expect_match "$HTTP_CTYPE" '^text/plain(;.*)?$' "GetCACaps at $path: text/plain"
    got=$(tr -d '\r' <"$T/caps" | sed '/^$/d' | sort)
    expect_eq "$(echo $got)" "$(echo $want_caps)" "GetCACaps at $path: capabilities"
done
if grep -qE '^(Renewal|GetNextCACert)\r?$' "$T/caps"; then
    fail "GetCACaps advertises Renewal/GetNextCACert, which are not implemented"
else
    pass "GetCACaps advertises neither Renewal nor GetNextCACert"
fi
http_get "/scep?OPERATION=GetCACaps" "$T/caps"
expect_eq "$HTTP_CODE" 200 "parameter name OPERATION (upper case) is accepted"

# ---- GetCACert, lone CA ----
http_get "/lone?operation=GetCACert" "$T/lone.der"
expect_eq "$HTTP_CODE" 200 "GetCACert, lone CA: 200"
expect_eq "$HTTP_CTYPE" application/x-x509-ca-cert "GetCACert, lone CA: content type"
if cmp -s "$T/lone.der" <(openssl x509 -in "$T/pki2/ca.pem" -outform DER); then
    pass "GetCACert, lone CA: the body is the CA certificate in DER"
else
    fail "GetCACert, lone CA: the body is not the CA certificate in DER"
fi

# ---- GetCACert, CA + RA ----
# check_ca_ra FILE PKIDIR WHAT: a certs-only PKCS#7 holding the CA first, then the RA
check_ca_ra() {
    local file=$1 dir=$2 what=$3
    if ! openssl pkcs7 -inform DER -in "$file" -print_certs -out "$file.pem" 2>"$file.err"; then
        fail "$what: not a PKCS#7 openssl can read: $(head -2 "$file.err")"
        return
    fi
    local n
    n=$(grep -c 'BEGIN CERTIFICATE' "$file.pem" || true)
    expect_eq "$n" 2 "$what: two certificates"
    awk -v out="$file.c" '/BEGIN CERT/ { n++ } { print > (out n ".pem") }' "$file.pem"
    [[ -f "$file.c1.pem" ]] && expect_eq "$(der_of "$file.c1.pem")" "$(der_of "$dir/ca.pem")" "$what: the CA certificate first"
    [[ -f "$file.c2.pem" ]] && expect_eq "$(der_of "$file.c2.pem")" "$(der_of "$dir/ra.pem")" "$what: then the RA certificate"
}
for path in /scep /scep/pkiclient.exe /scep/cgi-bin/pkiclient.exe; do
    http_get "$path?operation=GetCACert" "$T/cacert.der"
    expect_eq "$HTTP_CODE" 200 "GetCACert at $path: 200"
    expect_eq "$HTTP_CTYPE" application/x-x509-ca-ra-cert "GetCACert at $path: content type"
    check_ca_ra "$T/cacert.der" "$T/pki1" "GetCACert at $path"
done
# certmonger sends message=0,1,...; Cisco sends its trustpoint name: both are ignored
for msg in 0 1 MyTrustpoint; do
    http_get "/scep?operation=GetCACert&message=$msg" "$T/cacert-m.der"
    if [[ "$HTTP_CODE" == 200 ]] && cmp -s "$T/cacert-m.der" "$T/cacert.der"; then
        pass "GetCACert with message=$msg: the same answer"
    else
        fail "GetCACert with message=$msg: HTTP $HTTP_CODE, body differs or missing"
    fi
done

# ---- two Locations, two CAs ----
http_get "/two?operation=GetCACert" "$T/two.der"
expect_eq "$HTTP_CODE $HTTP_CTYPE" "200 application/x-x509-ca-ra-cert" "GetCACert at /two"
check_ca_ra "$T/two.der" "$T/pki2" "GetCACert at /two (second CA)"
enroll dev1 /scep POST "$T/pki1/ra.pem" "$T/pki1/ca.pem" "$T/pki1/ra.pem" --challenge "$CHAL" || true
enroll dev2 /two POST "$T/pki2/ra.pem" "$T/pki2/ca.pem" "$T/pki2/ra.pem" --challenge "$CHAL" || true
enroll dev3 /lone POST "$T/pki2/ca.pem" "$T/pki2/ca.pem" "$T/pki2/ca.pem" --challenge "$CHAL" || true
if [[ -f "$T/dev1.pem" && -f "$T/dev2.pem" ]]; then
    if openssl verify -CAfile "$T/pki2/ca.pem" "$T/dev1.pem" >/dev/null 2>&1 \
        || openssl verify -CAfile "$T/pki1/ca.pem" "$T/dev2.pem" >/dev/null 2>&1; then
        fail "a Location issued from the other Location's CA"
    else
        pass "each Location issues from its own CA"
    fi
fi

# ---- HTTP/1.0 without Host, Cisco's user agent ----
raw_http10() {  # raw_http10 TARGET OUT: a request by hand over /dev/tcp
    timeout 10 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "GET %s HTTP/1.0\r\nUser-Agent: Mozilla/4.0 (compatible; MSIE 5.0; Cisco PKI)\r\n\r\n" "$2" >&3
        cat <&3' _ "$PORT" "$1" >"$2" 2>/dev/null || true
}
raw_http10 "/scep/pkiclient.exe?operation=GetCACaps" "$T/raw10"
expect_match "$(head -1 "$T/raw10" | tr -d '\r')" '^HTTP/1\.[01] 200 ' "HTTP/1.0 without Host: GetCACaps answers 200"
expect_file_contains "$T/raw10" POSTPKIOperation "HTTP/1.0 without Host: GetCACaps body"
http_get "/scep/pkiclient.exe?operation=GetCACert" "$T/cacert10.der" --http1.0 -H "Host:" \
    -A "Mozilla/4.0 (compatible; MSIE 5.0; Cisco PKI)"
if [[ "$HTTP_CODE" == 200 ]] && cmp -s "$T/cacert10.der" "$T/cacert.der"; then
    pass "HTTP/1.0 without Host: GetCACert gives the same PKCS#7"
else
    fail "HTTP/1.0 without Host: GetCACert HTTP $HTTP_CODE, body differs"
fi
enroll dev10 /scep/pkiclient.exe POST "$T/pki1/ra.pem" "$T/pki1/ca.pem" "$T/pki1/ra.pem" \
    --challenge "$CHAL" --digest sha1 --cipher des3 || true

# ---- bad operations ----
http_get "/scep?operation=GetFooBar" "$T/bad"
expect_eq "$HTTP_CODE" 400 "unknown operation: 400"
http_get "/scep" "$T/bad"
expect_eq "$HTTP_CODE" 400 "no query string: 400"
http_get "/scep?message=abc" "$T/bad"
expect_eq "$HTTP_CODE" 400 "no operation parameter: 400"
http_get "/scep?operation=" "$T/bad"
expect_eq "$HTTP_CODE" 400 "empty operation: 400"
http_get "/scep?operation=PKIOperation" "$T/bad"
expect_eq "$HTTP_CODE" 400 "PKIOperation by GET without message: 400"

httpd_stop || fail "httpd did not stop cleanly"
check_error_log
expect_log_lacks "$CHAL" "the challenge never appears in the error log"
t_done

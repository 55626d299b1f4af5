#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# PKIOperation transport and algorithms with scep_probe + curl: GET in the encodings real
# clients use, a 4096-bit key by GET, POST with and without a Content-Type, every
# content cipher and digest, RSAES-OAEP key transport and RSASSA-PSS signatures.
# The CertRep must use the request's cipher and digest.
source "$(dirname "$0")/lib.sh"
t_init
require_module
require_probe

make_pki "$T/pki" Dec
CHAL=$(openssl rand -hex 12)
httpd_conf "$(scep_location /scep "$T/pki" ra "ScepChallenge $CHAL")"
httpd_start || t_done
RA=$T/pki/ra.pem
CA=$T/pki/ca.pem

# ---- GET encodings ----
for enc in std plus lines64 urlsafe macos; do
    # a message whose base64 has '+', '/' and padding exercises every rule; retry with
    # transactionIDs of other lengths (which move the padding) until it does
    for try in 1 2 3 4 5 6 7 8; do
        probe_enrollment_request "get-$enc" "$RA" --challenge "$CHAL" \
            --txid "$(openssl rand -hex 32)$(openssl rand -hex 4 | cut -c1-$try)"
        b64=$(base64 -w0 <"$T/get-$enc.req")
        [[ "$b64" == *+* && "$b64" == */* && "$b64" == *= ]] && break
    done
    [[ "$b64" == *+* && "$b64" == */* && "$b64" == *= ]] \
        || fail "get-$enc: could not make a message whose base64 has '+', '/' and '='"
    send_request "get-$enc" /scep "GET-$enc"
    check_success "get-$enc" "$RA" "$CA" "GET ($enc encoding)" || true
done

# the Cisco path with GET
probe_enrollment_request get-cisco "$RA" --challenge "$CHAL"
send_request get-cisco /scep/cgi-bin/pkiclient.exe GET-lines64
check_success get-cisco "$RA" "$CA" "GET to /scep/cgi-bin/pkiclient.exe" || true

# ---- a 4096-bit key by GET ----
make_key "$T/big.key" 4096
probe_enrollment_request big "$RA" --challenge "$CHAL"
note "4096-bit request: $(stat -c %s "$T/big.req") bytes DER"
send_request big /scep GET-std
if check_success big "$RA" "$CA" "4096-bit key by GET"; then
    expect_match "$(openssl x509 -in "$T/big.pem" -noout -text | grep -o 'Public-Key: ([0-9]* bit)')" \
        '4096 bit' "4096-bit key: the certificate carries it"
fi

# ---- POST content types ----
probe_enrollment_request post-octet "$RA" --challenge "$CHAL"
http_post "/scep?operation=PKIOperation" "$T/post-octet.req" "$T/post-octet.rep" \
    -H "Content-Type: application/octet-stream"
check_success post-octet "$RA" "$CA" "POST application/octet-stream" || true
probe_enrollment_request post-none "$RA" --challenge "$CHAL"
http_post "/scep?operation=PKIOperation" "$T/post-none.req" "$T/post-none.rep" -H "Content-Type:"
check_success post-none "$RA" "$CA" "POST without Content-Type" || true
probe_enrollment_request post-pki "$RA" --challenge "$CHAL"
http_post "/scep?operation=PKIOperation" "$T/post-pki.req" "$T/post-pki.rep" \
    -H "Content-Type: application/x-pki-message"
check_success post-pki "$RA" "$CA" "POST application/x-pki-message" || true

# ---- content ciphers: the reply must use the request's ----
for cipher in aes128 aes192 aes256 des3; do
    probe_enrollment_request "c-$cipher" "$RA" --challenge "$CHAL" --cipher "$cipher"
    send_request "c-$cipher" /scep POST
    check_success "c-$cipher" "$RA" "$CA" "cipher $cipher" \
        && expect_eq "$(field "c-$cipher" cipher)" "$cipher" "cipher $cipher: the CertRep envelope uses it too"
done

# ---- digests: the reply must use the request's ----
for digest in sha1 sha224 sha256 sha384 sha512; do
    probe_enrollment_request "d-$digest" "$RA" --challenge "$CHAL" --digest "$digest"
    send_request "d-$digest" /scep POST
    check_success "d-$digest" "$RA" "$CA" "digest $digest" \
        && expect_eq "$(field "d-$digest" digest)" "$digest" "digest $digest: the CertRep is signed with it too"
done

# ---- RSAES-OAEP key transport, RSASSA-PSS signatures ----
probe_enrollment_request oaep "$RA" --challenge "$CHAL" --oaep
send_request oaep /scep POST
check_success oaep "$RA" "$CA" "RSAES-OAEP key transport" || true
probe_enrollment_request pss "$RA" --challenge "$CHAL" --pss
send_request pss /scep POST
check_success pss "$RA" "$CA" "RSASSA-PSS signature" || true
probe_enrollment_request pss-get "$RA" --challenge "$CHAL" --pss --oaep --digest sha384 --cipher aes128
send_request pss-get /scep GET-std
check_success pss-get "$RA" "$CA" "RSASSA-PSS + OAEP + SHA-384 + AES-128 by GET" || true
# Windows: the self-signed request certificate carries a critical AuthorityKeyIdentifier
probe_enrollment_request win-aki "$RA" --challenge "$CHAL" --critical-aki
send_request win-aki /scep/certsrv/mscep/mscep.dll/pkiclient.exe GET-std
check_success win-aki "$RA" "$CA" "critical AKI in the signer certificate, NDES path, GET" || true

httpd_stop || fail "httpd did not stop cleanly"
check_error_log
expect_log_lacks "$CHAL" "the challenge never appears in the error log"
t_done

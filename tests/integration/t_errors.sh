#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every error of the spec: signed CertRep FAILUREs with the right failInfo for what a
# device did wrong, 4xx for what cannot be answered with a CertRep, the log lines that
# go with them, and never the challenge in the log.
source "$(dirname "$0")/lib.sh"
t_init
require_module
require_probe

make_pki "$T/pki" Err
issue_cert "$T/pki" other "Not the RA" "digitalSignature,keyEncipherment"
CHAL=$(openssl rand -hex 12)
WRONG=$(openssl rand -hex 12)
httpd_conf "$(
    scep_location /scep "$T/pki" ra "ScepChallenge $CHAL"
    scep_location /legacy "$T/pki" ra "ScepChallenge $CHAL" "ScepLegacyAlgorithms On"
    scep_location /small "$T/pki" ra "ScepChallenge $CHAL" "ScepMaxMessageSize 2000"
    scep_location /nochal "$T/pki" ra
    scep_location /open "$T/pki" ra "ScepAllowNoChallenge On"
)"
httpd_start || t_done
RA=$T/pki/ra.pem
CA=$T/pki/ca.pem
RUN=$(openssl rand -hex 4)

# failure_case NAME LOCATION FAILINFO WHAT [probe options]: POSTs a request (transactionID
# ERR-NAME-RUN) and expects FAILURE with FAILINFO and a tagged log line for it
failure_case() {
    local name=$1 loc=$2 want=$3 what=$4
    shift 4
    probe_enrollment_request "$name" "$RA" --txid "ERR-$name-$RUN" "$@"
    send_request "$name" "$loc" POST
    expect_failure "$name" "$RA" "$want" "$what" || true
    expect_log "${TAG_RE}scep\(ERR-$name-$RUN,[A-Za-z]+\)" "$what: a tagged log line for the transaction"
}

# ---- badMessageCheck (1) ----
failure_case badsig /scep 1 "broken signature" --challenge "$CHAL" --break-signature
failure_case otherrcpt /scep 1 "envelope for another recipient" --challenge "$CHAL" \
    --recipient "$T/pki/other.pem"

# ---- badAlg (0), and the same accepted with ScepLegacyAlgorithms On ----
failure_case des /scep 0 "single DES, legacy off" --challenge "$CHAL" --cipher des
failure_case md5 /scep 0 "MD5, legacy off" --challenge "$CHAL" --digest md5
probe_enrollment_request des-on "$RA" --challenge "$CHAL" --cipher des
send_request des-on /legacy POST
check_success des-on "$RA" "$CA" "single DES, legacy on" \
    && expect_eq "$(field des-on cipher)" des "single DES, legacy on: the CertRep uses single DES too"
probe_enrollment_request md5-on "$RA" --challenge "$CHAL" --digest md5 --cipher des3
send_request md5-on /legacy POST
check_success md5-on "$RA" "$CA" "MD5, legacy on" \
    && expect_eq "$(field md5-on digest)" md5 "MD5, legacy on: the CertRep digest follows the request"

# ---- badRequest (2) ----
failure_case wrongchal /scep 2 "wrong challenge" --challenge "$WRONG"
expect_log "\[scep:warn\] .*127\.0\.0\.1.*SCEP[0-9]{5}: scep\(ERR-wrongchal-$RUN,[A-Za-z]+\)|\[scep:warn\] .*SCEP[0-9]{5}: scep\(ERR-wrongchal-$RUN,[A-Za-z]+\).*127\.0\.0\.1" \
    "wrong challenge: logged as a WARNING with the client address"
failure_case nochal /scep 2 "no challenge at all" --no-challenge
failure_case garbagecsr /scep 2 "garbage instead of a PKCS#10" --challenge "$CHAL" --break-csr
make_key "$T/small1024.key" 1024
failure_case small1024 /scep 2 "1024-bit device key" --challenge "$CHAL"
failure_case msgtype17 /scep 4 "RenewalReq signed with a self-signed certificate" \
    --challenge "$CHAL" --msgtype 17
for t in 20 21 22; do
    failure_case "msgtype$t" /scep 2 "messageType $t" --challenge "$CHAL" --msgtype "$t"
done
failure_case unconfigured /nochal 2 "no ScepChallenge configured, ScepAllowNoChallenge Off" \
    --challenge "$CHAL"
probe_enrollment_request open "$RA" --no-challenge
send_request open /open POST
check_success open "$RA" "$CA" "ScepAllowNoChallenge On issues without a challenge" || true

# ---- 413: too big ----
probe_enrollment_request big "$RA" --challenge "$CHAL"
note "request of $(stat -c %s "$T/big.req") bytes against ScepMaxMessageSize 2000"
send_request big /small POST
expect_eq "$HTTP_CODE" 413 "POST larger than ScepMaxMessageSize: 413"
send_request big /small GET-std
expect_eq "$HTTP_CODE" 413 "GET message larger than ScepMaxMessageSize: 413"
send_request big /scep POST
check_success big "$RA" "$CA" "the same request where the limit is the default" || true
head -c 140000 /dev/urandom >"$T/huge.bin"
http_post "/scep?operation=PKIOperation" "$T/huge.bin" "$T/huge.out" -H "Content-Type: application/x-pki-message"
expect_eq "$HTTP_CODE" 413 "POST of 140000 bytes (default limit 131072): 413"

# ---- 400: not a pkiMessage ----
head -c 3000 /dev/urandom >"$T/garbage.bin"
http_post "/scep?operation=PKIOperation" "$T/garbage.bin" "$T/g.out" -H "Content-Type: application/x-pki-message"
expect_eq "$HTTP_CODE" 400 "garbage POST body: 400"
: >"$T/empty.bin"
http_post "/scep?operation=PKIOperation" "$T/empty.bin" "$T/g.out" -H "Content-Type: application/x-pki-message"
expect_eq "$HTTP_CODE" 400 "empty POST body: 400"
http_get "/scep?operation=PKIOperation&message=$(b64_encode std <"$T/garbage.bin")" "$T/g.out"
expect_eq "$HTTP_CODE" 400 "GET with base64 of garbage: 400"
http_get "/scep?operation=PKIOperation&message=%25%25%25not*base64!!!" "$T/g.out"
expect_eq "$HTTP_CODE" 400 "GET with a message that is not base64: 400"
http_get "/scep?operation=PKIOperation" "$T/g.out"
expect_eq "$HTTP_CODE" 400 "GET PKIOperation without message: 400"
openssl cms -sign -binary -nodetach -in "$T/garbage.bin" -signer "$T/pki/other.pem" \
    -inkey "$T/pki/other.key" -outform DER -out "$T/nonscep.der" 2>/dev/null
http_post "/scep?operation=PKIOperation" "$T/nonscep.der" "$T/g.out"
expect_eq "$HTTP_CODE" 400 "a SignedData without SCEP attributes: 400"
http_get "/scep?operation=NoSuchOperation" "$T/g.out"
expect_eq "$HTTP_CODE" 400 "unknown operation: 400"

httpd_stop || fail "httpd did not stop cleanly"
# device mistakes may be WARNINGs (tagged, with the transaction); nothing may be an error
check_error_log "\\[scep:warn\\] .*${TAG_RE}scep\\("
expect_log_lacks "$CHAL" "the challenge never appears in the error log"
expect_log_lacks "$WRONG" "the wrong challenge a device sent never appears in the error log"
t_done

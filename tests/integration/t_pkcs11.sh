#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Issue 19, keys that never leave a token: a scratch SoftHSM2 token (never the system's)
# with keys generated inside it, not extractable; the CA certificate signed by the token
# key; mod_scep with pkcs11: URIs for the CA key, the RA signing key, an RA decryption key
# and the CA certificate, the PIN from a pin-source file or the exec: dialog.  Real
# clients enroll (the probe, strongSwan's pki, scepclient), the CRL verifies against the
# token's key, across a restart and a graceful restart; a wrong PIN and a missing PIN
# refuse the start; the token made unreadable mid-run gives 503 with a log line, and the
# children open their sessions again once it is back.
source "$(dirname "$0")/lib.sh"
t_init
require_module
require_probe
source "$(dirname "$0")/softhsm.sh"
hsm_require
for tool in pki scepclient; do
    command -v "$tool" >/dev/null || die "$tool is missing (strongswan-pki, scep)"
done
MODULE=$HSM_MODULE

# ---- a scratch token ---------------------------------------------------------------------
P=$T/pki
mkdir -p "$P"
hsm_init "$T/hsm" scep-ca
H=$HSM
PIN=$HSM_PIN
TOK=$HSM_TOK
p11() { hsm_p11 "$@"; }
hsm_keygen 01 ca-key sign
hsm_keygen 02 ra-sign-key sign
hsm_keygen 03 ra-key decrypt
# a key made for signing alone (CKA_DECRYPT false), as HSM signing keys are
SIGNONLY=$T/p11_signonly
timeout 120 cc -O1 $(pkg-config --cflags p11-kit-1) -o "$SIGNONLY" \
    "$LIB_DIR/../tools/p11_signonly.c" -ldl >"$T/signonly.cc" 2>&1 \
    || { cat "$T/signonly.cc"; die "cannot build tests/tools/p11_signonly.c (libp11-kit-dev)"; }
timeout 60 "$SIGNONLY" "$MODULE" "$HSM_LABEL" "$H/pin" sign-only 04 \
    || die "cannot generate the sign-only key"
p11 --list-objects --type privkey >"$H/objects.out" 2>&1 || true
expect_eq "$(grep -c 'never extractable' "$H/objects.out")" 4 \
    "the four private keys were generated in the token and are never extractable"
if p11 --read-object --type privkey --id 01 -o "$H/stolen.der" >/dev/null 2>&1 && [[ -s "$H/stolen.der" ]]; then
    fail "the CA key could be read out of the token"
else
    pass "the CA key cannot be read out of the token"
fi
hsm_ca "$P" ca-key "Token CA"
# the RA that decrypts stays in software (many HSMs refuse PKCS#1 v1.5 decryption)
make_key "$P/ra.key" 2048
hsm_issue "$P" ca-key ra "Soft RA" digitalSignature,keyEncipherment "$P/ra.key"
hsm_issue "$P" ca-key ra-sign "Token RA signer" digitalSignature ra-sign-key
hsm_issue "$P" ca-key ra-tok "Token RA" digitalSignature,keyEncipherment ra-key
SO=$T/signonly
hsm_ca "$SO" sign-only "Sign-only CA"
make_key "$SO/ra.key" 2048
hsm_issue "$SO" sign-only ra "Sign-only CA's RA" digitalSignature,keyEncipherment "$SO/ra.key"
hsm_issue "$SO" sign-only ra-so "RA whose key cannot decrypt" \
    digitalSignature,keyEncipherment sign-only
openssl x509 -in "$P/ca.pem" -outform DER -out "$P/ca.der"
p11 --write-object "$P/ca.der" --type cert --id 01 --label ca-cert >>"$H/gen.out" 2>&1 \
    || { cat "$H/gen.out"; die "cannot store the CA certificate in the token"; }
# the CA certificate's key is the token's
p11 --read-object --type pubkey --id 01 -o "$H/ca-pub.der" >/dev/null 2>&1 || true
expect_eq "$(openssl pkey -pubin -inform DER -in "$H/ca-pub.der" -outform DER 2>/dev/null | od -An -tx1 | tr -d ' \n')" \
    "$(openssl x509 -in "$P/ca.pem" -noout -pubkey | openssl pkey -pubin -outform DER | od -An -tx1 | tr -d ' \n')" \
    "the CA certificate holds the token key's public half"
hsm_for_httpd

Q="?pin-source=file:$H/pin&module-path=$MODULE"
CAKEY="$TOK;object=ca-key;type=private$Q"
CHAL=$(openssl rand -hex 12)
DB=$T/devices
token_conf() {
    local cakey=${1:-$CAKEY} extra=${2:-}
    printf '%s\n' "$extra" \
        "<Location /scep>" "    SetHandler scep" \
        "    ScepCACertificateFile $P/ca.pem" "    ScepCAKeyFile \"$cakey\"" \
        "    ScepRACertificateFile $P/ra.pem" "    ScepRAKeyFile $P/ra.key" \
        "    ScepRASigningCertificateFile $P/ra-sign.pem" \
        "    ScepRASigningKeyFile \"$TOK;object=ra-sign-key;type=private$Q\"" \
        "    ScepChallenge $CHAL" "    Require all granted" "</Location>" \
        "<Location /tokcert>" "    SetHandler scep" \
        "    ScepCACertificateFile \"$TOK;object=ca-cert;type=cert$Q\"" \
        "    ScepCAKeyFile \"$cakey\"" \
        "    ScepRACertificateFile $P/ra-tok.pem" \
        "    ScepRAKeyFile \"$TOK;object=ra-key;type=private$Q\"" \
        "    ScepChallenge $CHAL" "    ScepLegacyAlgorithms On" "    Require all granted" \
        "</Location>" "<Location /crl>" "    SetHandler scep-crl" \
        "    ScepCACertificateFile $P/ca.pem" "    ScepCAKeyFile \"$cakey\"" \
        "    ScepDeviceDB $DB" "    Require all granted" "</Location>"
}
httpd_conf "$(token_conf)"
httpd_start || t_done
expect_log 'SCEP00751: CA configured at .*: this process opened its session with the token' \
    "each child opens its own session with the token"

# ---- enrollments -------------------------------------------------------------------------
enroll p1 /scep POST "$P/ra-sign.pem" "$P/ca.pem" "$P/ra.pem" --challenge "$CHAL" \
    --subject "/CN=p1" || true
note "split keys: the RA decrypts in software, the token signs the certificate and the CertRep"
enroll p2 /tokcert POST "$P/ra-tok.pem" "$P/ca.pem" "$P/ra-tok.pem" --challenge "$CHAL" \
    --subject "/CN=p2" || true
http_get "/tokcert?operation=GetCACert" "$T/tokcert.cacert"
openssl pkcs7 -inform DER -in "$T/tokcert.cacert" -print_certs 2>/dev/null \
    | openssl x509 -outform DER 2>/dev/null >"$T/tokcert.first.der" || true
expect_eq "$(od -An -tx1 "$T/tokcert.first.der" | tr -d ' \n')" "$(od -An -tx1 "$P/ca.der" | tr -d ' \n')" \
    "GetCACert at /tokcert gives the CA certificate read from the token"

URL="http://127.0.0.1:$PORT/scep"
S=$T/swan
mkdir -p "$S"
openssl x509 -in "$P/ra.pem" -outform DER -out "$S/ra.der"
openssl x509 -in "$P/ra-sign.pem" -outform DER -out "$S/ra-sign.der"
timeout 60 openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -outform DER \
    -out "$S/swan.key" 2>/dev/null || die "cannot make the strongSwan key"
swan() {
    local name=$1 rc=0
    timeout 120 pki --scep --url "$URL" --in "$S/swan.key" --dn "O=mod_scep tests, CN=$name" \
        --password "$CHAL" --cacert-enc "$S/ra.der" --cacert-sig "$S/ra-sign.der" \
        --cacert "$P/ca.der" --outform pem >"$S/$name.pem" 2>"$S/$name.err" || rc=$?
    if ((rc == 0)) && timeout 30 openssl verify -CAfile "$P/ca.pem" "$S/$name.pem" >/dev/null 2>&1; then
        pass "strongSwan pki --scep $name: the token-signed certificate verifies"
    else
        fail "strongSwan pki --scep $name: exit $rc"
        grep -v -e plugin -e TPM "$S/$name.err" | tail -8 | sed 's/^/       | /'
    fi
}
swan swan1
# scepclient encrypts with single DES: /tokcert allows it
M=$T/micro
micro() {
    local name=$1 rc=0
    mkdir -p "$M/$name"
    (cd "$M/$name" && timeout 120 scepclient -server-url "http://127.0.0.1:$PORT/tokcert" \
        -private-key "$M/$name/key.pem" -certificate "$M/$name/cert.pem" -cn "$name" \
        -challenge "$CHAL" >"$M/$name/out" 2>&1) || rc=$?
    if ((rc == 0)) && timeout 30 openssl verify -CAfile "$P/ca.pem" "$M/$name/cert.pem" >/dev/null 2>&1; then
        pass "scepclient $name: the token-signed certificate verifies"
    else
        fail "scepclient $name: exit $rc"
        tail -8 "$M/$name/out" | sed 's/^/       | /'
    fi
}
micro micro1

# the CRL (of an empty device database: what matters is who signs it): signed in the token
crl_ok() {
    http_get /crl "$T/$1.crl"
    if [[ "$HTTP_CODE" == 200 ]] && openssl crl -inform DER -in "$T/$1.crl" -CAfile "$P/ca.pem" \
        -noout 2>&1 | grep -q 'verify OK'; then
        pass "$2: the CRL verifies with the token key's certificate"
    else
        fail "$2: HTTP $HTTP_CODE, the CRL does not verify"
    fi
}
crl_ok crl1 "first start"

# ---- attacks on the RA decryption key in the token ----------------------------------------
# Only a failure of the token may count as one: garbage, and an envelope made for a key
# that is not the token's (its recipient names the RA certificate's issuer and serial, so
# the token really tries and fails to decrypt it), are the client's fault.
opened=$(grep -c 'SCEP00751' "$ERROR_LOG" || true)
printf 'not a pkiMessage at all' >"$T/junk.req"
for i in 1 2 3; do
    send_request junk /tokcert POST
    expect_eq "$HTTP_CODE" 400 "garbage to the CA whose RA decrypts in the token ($i): 400"
done
openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$T/fake-ca.key" -days 2 \
    -subj "$(openssl x509 -in "$P/ca.pem" -noout -subject -nameopt compat | sed 's/^subject=//')" \
    -out "$T/fake-ca.pem" 2>/dev/null || die "cannot make the look-alike CA"
make_key "$T/fake-ra.key" 2048
openssl req -new -key "$T/fake-ra.key" -subj "/CN=look-alike RA" -out "$T/fake-ra.csr" 2>/dev/null
openssl x509 -req -in "$T/fake-ra.csr" -CA "$T/fake-ca.pem" -CAkey "$T/fake-ca.key" -days 2 \
    -set_serial "0x$(openssl x509 -in "$P/ra-tok.pem" -noout -serial | cut -d= -f2)" \
    -out "$T/fake-ra.pem" 2>/dev/null || die "cannot make the look-alike RA certificate"
for i in 1 2; do
    probe_enrollment_request "lookalike$i" "$T/fake-ra.pem" --challenge "$CHAL" --subject "/CN=la$i"
    send_request "lookalike$i" /tokcert POST
    expect_failure "lookalike$i" "$P/ra-tok.pem" 1 \
        "an envelope the token cannot open, to its RA certificate's issuer and serial ($i)" \
        || true
done
if grep -qE 'SCEP0075[0345]' "$ERROR_LOG"; then
    fail "the client's bad messages were taken for the token's failure:"
    grep -E 'SCEP0075[0345]' "$ERROR_LOG" | head -3 | sed 's/^/       | /'
else
    pass "the client's bad messages are not taken for the token's failure"
fi
expect_eq "$(grep -c 'SCEP00751' "$ERROR_LOG" || true)" "$opened" \
    "no child opened its session again for them"
enroll p3 /tokcert POST "$P/ra-tok.pem" "$P/ca.pem" "$P/ra-tok.pem" --challenge "$CHAL" \
    --subject "/CN=p3" || true

# ---- restarts ----------------------------------------------------------------------------
httpd_graceful
expect_log 'AH00489' "graceful restart"
enroll g1 /scep POST "$P/ra-sign.pem" "$P/ca.pem" "$P/ra.pem" --challenge "$CHAL" \
    --subject "/CN=g1" || true
enroll g2 /tokcert POST "$P/ra-tok.pem" "$P/ca.pem" "$P/ra-tok.pem" --challenge "$CHAL" \
    --subject "/CN=g2" || true
crl_ok crl2 "after a graceful restart"
httpd_restart || t_done
enroll r1 /scep POST "$P/ra-sign.pem" "$P/ca.pem" "$P/ra.pem" --challenge "$CHAL" \
    --subject "/CN=r1" || true
swan swan2
micro micro2

# ---- the token gone while serving, and back ------------------------------------------------
# One child, and a POST whose body trickles into it: a request that finds the token gone
# must not wait for that body (nor for anything else) before it is answered.
httpd_conf "$(token_conf "$CAKEY" $'ServerLimit 1\nMaxRequestWorkers 8')"
httpd_restart || t_done
sleep 6     # the sessions are older than the child's pause between two openings
exec 7<>"/dev/tcp/127.0.0.1/$PORT"
printf 'POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3000\r\n\r\n0' >&7
sleep 1
chmod 000 "$H/tokens"
probe_enrollment_request t1 "$P/ra.pem" --challenge "$CHAL" --subject "/CN=t1"
started=$SECONDS
send_request t1 /scep POST
took=$((SECONDS - started))
expect_eq "$HTTP_CODE" 503 "token files unreadable: the enrollment gets 503"
if ((took < 10)); then
    pass "it is answered in ${took} s while another POST's body trickles (httpd's Timeout is 20 s)"
else
    fail "it waited ${took} s for another request's body"
fi
expect_log 'SCEP0075[345]: ' "the log says the token cannot be used"
http_get /crl "$T/t1.crl"
expect_match "$HTTP_CODE" '^(200|503)$' "token files unreadable: the CRL gets its signed copy or 503 ($HTTP_CODE)"
kill -0 "$HTTPD_PID" 2>/dev/null && pass "httpd still runs" || fail "httpd died"
chmod 700 "$H/tokens"
ok=0
for i in $(seq 30); do
    probe_enrollment_request "t2-$i" "$P/ra.pem" --challenge "$CHAL" --subject "/CN=t2-$i"
    send_request "t2-$i" /scep POST
    if [[ "$HTTP_CODE" == 200 ]]; then
        ok=1
        break
    fi
    sleep 1
done
expect_eq "$ok" 1 "token back: the child opened its session again and enrolls (after $i tries)"
exec 7>&-
((ok)) && check_success "t2-$i" "$P/ra-sign.pem" "$P/ca.pem" POST >/dev/null
# httpd -t whose dialog is slow to give the PIN holds no lock a worker needs meanwhile
printf '#!/bin/sh\nsleep 8\ncat %s\n' "$H/pin" >"$H/slow-dialog.sh"
chmod 700 "$H/slow-dialog.sh"
{ sed -e "s#?pin-source=file:$H/pin&#?#g" "$HTTPD_ROOT/httpd.conf"
  echo "ScepPassPhraseDialog exec:$H/slow-dialog.sh"; } >"$HTTPD_ROOT/slow-dialog.conf"
timeout 60 "${HTTPD_CMD[@]}" -t -f "$HTTPD_ROOT/slow-dialog.conf" -d "$HTTPD_ROOT" \
    >"$T/slow-dialog.out" 2>&1 &
slow_configtest=$!
sleep 1
chmod 000 "$H/tokens"
probe_enrollment_request t3 "$P/ra.pem" --challenge "$CHAL" --subject "/CN=t3"
send_request t3 /scep POST
chmod 700 "$H/tokens"
sleep 5.5   # past the child's pause between two openings
probe_enrollment_request t4 "$P/ra.pem" --challenge "$CHAL" --subject "/CN=t4"
started=$SECONDS
send_request t4 /scep POST
took=$((SECONDS - started))
expect_eq "$HTTP_CODE" 200 "the session opened again while httpd -t waits for its dialog"
if ((took < 5)); then
    pass "answered in ${took} s: the worker's login did not wait for the dialog of httpd -t"
else
    fail "the worker waited ${took} s for the dialog of httpd -t"
fi
wait "$slow_configtest" || fail "httpd -t with the slow dialog refused: $(tail -2 "$T/slow-dialog.out")"
httpd_stop || fail "httpd did not stop cleanly"
expect_log_lacks "$PIN" "the PIN is in no log line"

# ---- the PIN ---------------------------------------------------------------------------------
# token_refused WHAT ERE SAYS [token_conf ARGS]: httpd -t refuses that configuration and
# its output matches ERE
token_refused() {
    local what=$1 ere=$2 says=$3 rc=0
    shift 3
    httpd_conf "$(token_conf "$@")"
    httpd_configtest || rc=$?
    expect_eq "$rc" 1 "$what: httpd -t refuses"
    expect_file_matches "$HTTPD_ROOT/configtest.out" "$ere" "$says"
}
# from the exec: dialog, when the URI has no pin-source
printf '#!/bin/sh\necho "$2" >>%s\ncat %s\n' "$H/dialog.calls" "$H/pin" >"$H/dialog.sh"
chmod 700 "$H/dialog.sh"
: >"$H/dialog.calls"
httpd_conf "$(token_conf "$TOK;object=ca-key;type=private?module-path=$MODULE" \
    "ScepPassPhraseDialog exec:$H/dialog.sh")"
if httpd_configtest; then
    pass "a PIN from the exec: dialog: httpd -t accepts it"
else
    fail "a PIN from the exec: dialog: httpd -t refuses it"
    sed 's/^/       | /' "$HTTPD_ROOT/configtest.out"
fi
expect_eq "$(sort -u "$H/dialog.calls")" PIN "the dialog program is told it gives a PIN"
# none at all
token_refused "no pin-source and no dialog" "names no pin-source, and no ScepPassPhraseDialog" \
    "it says where a PIN could come from" "$TOK;object=ca-key;type=private?module-path=$MODULE"
# a wrong one
printf 'wrong-%s\n' "$PIN" >"$H/pin.wrong"
chmod 600 "$H/pin.wrong"
token_refused "a wrong PIN" "CA key 'pkcs11:.*' cannot be used: the token refused the PIN" \
    "it says the token refused the PIN" "$TOK;object=ca-key;type=private?pin-source=file:$H/pin.wrong&module-path=$MODULE"
if grep -qF -- "wrong-$PIN" "$HTTPD_ROOT/configtest.out"; then
    fail "the wrong PIN is in httpd's output"
else
    pass "the wrong PIN is not in httpd's output"
fi
# a PIN file that is not root's
if [[ $(id -u) == 0 ]]; then
    cp "$H/pin" "$H/pin.www"
    chown www-data "$H/pin.www"
    chmod 600 "$H/pin.www"
    token_refused "a PIN file httpd's user owns" "pin-source '.*pin.www' belongs to uid" \
        "it says whose file it is" "$TOK;object=ca-key;type=private?pin-source=file:$H/pin.www&module-path=$MODULE"
fi
# two modules: a child loads one for all its CAs
ln -sf "$MODULE" "$H/alias-module.so"
token_refused "two PKCS#11 modules" "names the PKCS#11 module '.*', but another URI of this server names '.*': one module per server" \
    "it says one module per server" "$TOK;object=ca-key;type=private?pin-source=file:$H/pin&module-path=$H/alias-module.so"
# an object the token does not have
token_refused "a key the token does not hold" "CA key 'pkcs11:.*object=no-such-key.*' cannot be loaded from the token" \
    "it names the URI" "$TOK;object=no-such-key;type=private$Q"
# a token key that is not the certificate's
token_refused "a token key not matching the CA certificate" "CA key 'pkcs11:.*object=ra-sign-key.*' does not match its certificate" \
    "it says the key does not match" "$TOK;object=ra-sign-key;type=private$Q"
# a token that is not there
token_refused "a token that is not there" "CA key 'pkcs11:token=no-such-token.*' cannot be loaded from the token: no token of the module matches" \
    "it says no token matches" "pkcs11:token=no-such-token;object=ca-key;type=private$Q"
# a PIN the dialog gave and the token refused holds back that dialog, not a PIN file
printf '#!/bin/sh\necho wrong-dialog-pin\n' >"$H/wrong-dialog.sh"
chmod 700 "$H/wrong-dialog.sh"
token_refused "a wrong PIN from the exec: dialog" "the token refused the PIN" \
    "it says the token refused the dialog's PIN" \
    "$TOK;object=ca-key;type=private?module-path=$MODULE" \
    "ScepPassPhraseDialog exec:$H/wrong-dialog.sh"
token_refused "the refused dialog again" "is not tried: the token refused this server's PIN" \
    "it is not tried again" "$TOK;object=ca-key;type=private?module-path=$MODULE" \
    "ScepPassPhraseDialog exec:$H/wrong-dialog.sh"
record=$(sed -n 's/.*; remove \(.*scep-token-[0-9a-f]*\) and restart.*/\1/p' \
    "$HTTPD_ROOT/configtest.out" | head -1)
expect_match "$record" '^/([^/]+/)*scep-token-[0-9a-f]{16}$' \
    "the message names the login record's path ($record)"
expect_match "$(cat "$record" 2>/dev/null)" \
    '^refused [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z the dialog$' \
    "the record says when (UTC) and that the dialog's PIN was refused"
httpd_conf "$(token_conf)"
if httpd_configtest; then
    pass "the right PIN from a file is tried after the dialog's was refused"
else
    fail "a PIN file is held back by the dialog's refusal:"
    sed 's/^/       | /' "$HTTPD_ROOT/configtest.out" | tail -3
fi
expect_eq "$(wc -c <"$record")" 0 "the good login emptied the record"

# ---- the PIN changed under a running server: one refused login, never another -------------
# both children up, each with all its threads, so that they open their sessions at once
httpd_conf "$(token_conf "$CAKEY" $'StartServers 2\nMinSpareThreads 16')"
httpd_start || t_done
NEWPIN=$(openssl rand -hex 6)
p11 --change-pin --new-pin "$NEWPIN" >"$H/change.out" 2>&1 || { cat "$H/change.out"; die "cannot change the PIN"; }
chown -R www-data:www-data "$H/tokens" 2>/dev/null || true
# burst: 16 requests at once, so that both children get some
burst() {
    local pids=() j
    for j in $(seq 16); do
        curl -s --max-time 30 -o /dev/null --data-binary "@$T/c2.req" \
            "http://127.0.0.1:$PORT/scep?operation=PKIOperation" &
        pids+=($!)
    done
    wait "${pids[@]}" || true
}
probe_enrollment_request c2 "$P/ra.pem" --challenge "$CHAL" --subject "/CN=c2"
# the children's sessions go: the token's files unreadable until both children saw it
chmod 000 "$H/tokens"
for i in $(seq 10); do
    burst
    (($(grep -E 'SCEP0075[34]' "$ERROR_LOG" | grep -o '\[pid [0-9]*' | sort -u | wc -l) >= 2)) \
        && break
done
probe_enrollment_request c1 "$P/ra.pem" --challenge "$CHAL" --subject "/CN=c1"
send_request c1 /scep POST
chmod 700 "$H/tokens"
expect_eq "$HTTP_CODE" 503 "the session gone: 503"
# every child that opens a session again finds the PIN it kept refused; for 12 s, bursts
# reach both children together
sleep 5
for i in $(seq 12); do
    burst
    send_request c2 /scep POST
    sleep 1
done
expect_eq "$HTTP_CODE" 503 "the PIN changed: still 503, not a crash"
expect_eq "$(grep -E 'SCEP0075[034]' "$ERROR_LOG" | grep -o '\[pid [0-9]*' | sort -u | wc -l)" 2 \
    "both children lost their sessions and tried to open them again"
expect_eq "$(grep -c 'the token refused the PIN' "$ERROR_LOG" || true)" 1 \
    "one login with the old PIN, in one child, and no other attempt by any child"
expect_log "is not tried: the token refused this server's PIN before" \
    "later attempts say why they do not log in"
# apache2ctl configtest (which Debian's reload runs) is another process: it must not try
# the refused PIN either
rc=0
httpd_configtest || rc=$?
expect_eq "$rc" 1 "httpd -t with the PIN file unchanged refuses"
expect_file_matches "$HTTPD_ROOT/configtest.out" "is not tried: the token refused this server's PIN" \
    "httpd -t says the PIN was refused and it did not try it"
if grep -q 'the token refused the PIN' "$HTTPD_ROOT/configtest.out"; then
    fail "httpd -t logged in with the refused PIN"
else
    pass "httpd -t did not log in with the refused PIN"
fi
# the operator corrects the PIN file and reloads: the parent may try again, and it works
printf '%s\n' "$NEWPIN" >"$H/pin"
httpd_graceful
ok=0
for i in $(seq 10); do
    probe_enrollment_request "c3-$i" "$P/ra.pem" --challenge "$CHAL" --subject "/CN=c3-$i"
    send_request "c3-$i" /scep POST
    [[ "$HTTP_CODE" == 200 ]] && { ok=1; break; }
    sleep 1
done
expect_eq "$ok" 1 "the right PIN and a graceful restart: enrollments again"
httpd_stop || fail "httpd did not stop cleanly"
expect_log_lacks "$NEWPIN" "the new PIN is in no log line"
# ---- children starting together wait for each other's login ------------------------------
# four children log in at once, one at a time under the record's lock: none may give up
# and answer 503 for its first seconds
printf '%s\n' "$NEWPIN" >"$H/pin"
httpd_conf "$(token_conf "$CAKEY" $'StartServers 4\nServerLimit 4\nMinSpareThreads 100\nMaxRequestWorkers 100')"
children=() lost=0
for round in 1 2 3; do
    httpd_start || t_done
    for i in $(seq 100); do
        n=$(grep 'SCEP00751' "$ERROR_LOG" | grep -o '\[pid [0-9]*' | sort -u | wc -l)
        ((n >= 4)) && break
        sleep 0.1
    done
    children+=("$n")
    lost=$((lost + $(grep -c 'SCEP00750' "$ERROR_LOG" || true)))
    { grep 'SCEP00750' "$ERROR_LOG" || true; } | head -2 | sed 's/^/       | /'
    httpd_stop || fail "httpd did not stop cleanly"
done
expect_eq "${children[*]}" "4 4 4" "three starts: every one of the four children opened its session"
expect_eq "$lost" 0 "no child gave up its session for another's login (SCEP00750)"

# ---- stopping needs no token and no PIN -------------------------------------------------------
# Debian stops httpd with apachectl stop or graceful-stop: an httpd that reads the
# configuration, then signals the running one.  A PIN file changed since the start must
# neither keep it from stopping nor have its one try spent by it.
httpd_conf "$(token_conf)"
for how in stop graceful-stop; do
    printf '%s\n' "$NEWPIN" >"$H/pin"
    httpd_start || t_done
    printf 'wrong-%s\n' "$NEWPIN" >"$H/pin"
    pid=$HTTPD_PID
    timeout 30 "${HTTPD_CMD[@]}" -k "$how" -f "$HTTPD_ROOT/httpd.conf" -d "$HTTPD_ROOT" \
        >"$T/stop-$how.out" 2>&1 || true
    for i in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        fail "httpd -k $how with a changed PIN file: the server still runs"
        sed 's/^/       | /' "$T/stop-$how.out" | tail -3
        httpd_stop || true
    else
        wait "$pid" 2>/dev/null || true
        HTTPD_PID=""
        pass "httpd -k $how with a changed PIN file stops the server"
    fi
    if grep -q 'PIN' "$T/stop-$how.out"; then
        fail "httpd -k $how logged in to the token: $(grep PIN "$T/stop-$how.out" | head -1)"
    else
        pass "httpd -k $how did not log in to the token"
    fi
done
# "-kstop" as the value of -D is no -k: this httpd -t loads the CAs
timeout 30 "${HTTPD_CMD[@]}" -t -D -kstop -f "$HTTPD_ROOT/httpd.conf" -d "$HTTPD_ROOT" \
    >"$HTTPD_ROOT/configtest.out" 2>&1 || true
expect_file_matches "$HTTPD_ROOT/configtest.out" "the token refused the PIN \(SCEP00501" \
    "the changed PIN file's one try was left for the next configuration read (httpd -t -D -kstop)"
printf '%s\n' "$NEWPIN" >"$H/pin"

# ---- a CA key in the token that may sign but not decrypt --------------------------------
# (many HSMs refuse PKCS#1 v1.5 decryption).  Known at the start: a client's envelope to
# the CA certificate is its own bad message, never taken for the token failing.
so_location() {
    printf '%s\n' "<Location /so>" "    SetHandler scep" "    ScepCACertificateFile $SO/ca.pem" \
        "    ScepCAKeyFile \"$TOK;object=sign-only;type=private$Q\"" "$@" \
        "    ScepChallenge $CHAL" "    Require all granted" "</Location>"
}
httpd_conf "$(token_conf)
$(so_location "    ScepRACertificateFile $SO/ra.pem" "    ScepRAKeyFile $SO/ra.key")"
httpd_start || t_done
expect_log "SCEP00504: CA key 'pkcs11:.*object=sign-only.*' does not decrypt in the token" \
    "the start says the CA key cannot decrypt"
for i in 1 2 3; do
    probe_enrollment_request "so-ca$i" "$SO/ca.pem" --challenge "$CHAL" --subject "/CN=so$i"
    send_request "so-ca$i" /so POST
    expect_failure "so-ca$i" "$SO/ra.pem" 1 \
        "an envelope to the CA certificate whose token key cannot decrypt ($i)" || true
done
enroll so-ra /so POST "$SO/ra.pem" "$SO/ca.pem" "$SO/ra.pem" --challenge "$CHAL" \
    --subject "/CN=so-ra" || true
crl_ok crl-so "after envelopes to the sign-only CA key"
if grep -qE 'SCEP00244|SCEP0075[0346]' "$ERROR_LOG"; then
    fail "an envelope to the sign-only CA key was taken for the token failing:"
    grep -E 'SCEP00244|SCEP0075[0346]' "$ERROR_LOG" | head -3 | sed 's/^/       | /'
else
    pass "no envelope to the sign-only CA key was taken for the token failing"
fi
httpd_stop || fail "httpd did not stop cleanly"
# where that key would have to open every request, the start is refused
httpd_conf "$(so_location)"
rc=0
httpd_configtest || rc=$?
expect_eq "$rc" 1 "a sign-only CA key without an RA: httpd -t refuses"
expect_file_matches "$HTTPD_ROOT/configtest.out" \
    "CA key 'pkcs11:.*' does not decrypt in the token, and clients encrypt their requests to it" \
    "it says the CA key cannot decrypt what clients send"
httpd_conf "$(so_location "    ScepRACertificateFile $SO/ra-so.pem" \
    "    ScepRAKeyFile \"$TOK;object=sign-only;type=private$Q\"")"
rc=0
httpd_configtest || rc=$?
expect_eq "$rc" 1 "an RA key in the token that cannot decrypt: httpd -t refuses"
expect_file_matches "$HTTPD_ROOT/configtest.out" \
    "RA key 'pkcs11:.*' does not decrypt in the token.*keep this key in a file" \
    "it says to keep the RA decryption key in a file"

# ---- conf-examples/scep-hsm.conf starts as it is, with this test's paths --------------------
EX=$TOP/conf-examples/scep-hsm.conf
[[ -f "$EX" ]] || EX=$(dirname "$0")/../../conf-examples/scep-hsm.conf
cp "$H/pin" "$P/ca.pin"
chmod 600 "$P/ca.pin"
timeout 60 openssl pkcs8 -topk8 -v2 aes-256-cbc -in "$P/ra.key" -out "$P/ra.enc.key" \
    -passout pass:ra-file-passphrase || die "cannot encrypt the RA key"
chmod 600 "$P/ra.enc.key"
printf '#!/bin/sh\necho ra-file-passphrase\n' >"$H/ra-dialog.sh"
chmod 700 "$H/ra-dialog.sh"
httpd_conf "LoadModule reqtimeout_module $APACHE_MODDIR/mod_reqtimeout.so
$(sed -e "s#/etc/apache2/scep/#$P/#g" -e "s#/var/lib/scep/#$T/example-#g" \
      -e "s#/usr/lib/softhsm/libsofthsm2.so#$MODULE#g" \
      -e "s#/usr/local/sbin/scep-passphrase#$H/ra-dialog.sh#" "$EX")"
if httpd_start; then
    # no device is registered there: the answer is a FAILURE, signed in the token
    probe_enrollment_request x1 "$P/ra.pem" --challenge "$CHAL" --subject "/CN=x1"
    send_request x1 /scep POST
    if [[ "$HTTP_CODE" == 200 ]] && probe_reply x1 "$P/ra-sign.pem"; then
        pass "conf-examples/scep-hsm.conf: httpd starts; the encrypted RA key opens the request, the token signs the CertRep"
    else
        fail "conf-examples/scep-hsm.conf: HTTP $HTTP_CODE, or the CertRep does not verify"
    fi
    httpd_stop || fail "httpd did not stop cleanly"
fi
t_done

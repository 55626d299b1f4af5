#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# certmonger (0.79.17) against mod_scep: scep-submit -c / -C standalone, then complete
# enrollments through a private certmonger daemon on a private session bus (it uses GET),
# with CA+RA out of the box and with a lone CA given as -N.  See CLIENTS.md.
# Manual approval: a device registered with -W on gets PENDING, which certmonger shows as
# CA_WORKING (not stuck, no ca-error); this script approves with scepreg -Y while the
# daemon runs, and certmonger collects the certificate.  certmonger polls by sending its
# PKCSReq again (messageType 19, same transactionID, a fresh senderNonce), not a CertPoll
# (GetCertInitial, 20); its own poll delay is far longer than a test (no poll within
# 2 minutes), so the polls are asked for with getcert refresh.
source "$(dirname "$0")/lib.sh"
t_init
require_module
SUBMIT=/usr/lib/certmonger/scep-submit
[[ -x "$SUBMIT" ]] || die "certmonger's scep-submit is not installed (certmonger)"
for tool in certmonger getcert dbus-run-session; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done

make_pki "$T/pki" Monger
make_pki "$T/pki2" Lone
CHAL=$(openssl rand -hex 12)
# a registered device, for the enrollment against registrations
REG_CHAL=$(openssl rand -hex 12)
timeout 60 "${SCEPREG:-$TOP/scepreg}" -c -b "$T/db" cm.example.net "$REG_CHAL" 2>/dev/null \
    || die "scepreg could not register cm.example.net"
# and one whose first enrollment waits for an operator's approval
WAIT_CHAL=$(openssl rand -hex 12)
timeout 60 "${SCEPREG:-$TOP/scepreg}" -b -W on "$T/db" cmwait.example.net "$WAIT_CHAL" 2>/dev/null \
    || die "scepreg could not register cmwait.example.net"
httpd_conf "$(
    scep_location /scep "$T/pki" ra "ScepChallenge $CHAL"
    scep_location /lone "$T/pki2" nora "ScepChallenge $CHAL"
    scep_location /reg "$T/pki" ra "ScepDeviceDB $T/db"
)"
httpd_start || t_done
URL="http://127.0.0.1:$PORT/scep"
C=$T/cm
mkdir -p "$C"

# ---- scep-submit standalone ----
rc=0
timeout 30 "$SUBMIT" -u "$URL" -c >"$C/caps.out" 2>"$C/caps.err" || rc=$?
expect_eq "$rc" 0 "scep-submit -c: exit 0"
for cap in POSTPKIOperation AES SHA-256; do
    expect_file_contains "$C/caps.out" "$cap" "scep-submit -c: lists $cap"
done

rc=0
timeout 30 "$SUBMIT" -u "$URL" -C >"$C/cacert.out" 2>"$C/cacert.err" || rc=$?
expect_eq "$rc" 0 "scep-submit -C: exit 0"
# every certificate it printed, as DER hex, one per line
certs_in() {
    awk -v out="$1.c" '/BEGIN CERT/ { n++; f = out n ".pem" } f { print > f } /END CERT/ { f = "" }' "$1"
    local c
    for c in "$1".c*.pem; do [[ -f "$c" ]] && der_of "$c" && echo; done
}
got=$(certs_in "$C/cacert.out" | sort)
want=$( (der_of "$T/pki/ca.pem"; echo; der_of "$T/pki/ra.pem"; echo) | sort)
if [[ -n "$got" && "$got" == "$want" ]]; then
    pass "scep-submit -C: prints our CA and RA certificates"
else
    fail "scep-submit -C: did not print exactly our CA and RA certificates:"
    sed 's/^/       | /' "$C/cacert.out" "$C/cacert.err" | head -20
fi
rc=0
timeout 30 "$SUBMIT" -u "http://127.0.0.1:$PORT/lone" -C >"$C/lone.out" 2>"$C/lone.err" || rc=$?
expect_eq "$rc" 0 "scep-submit -C, lone CA: exit 0"
expect_eq "$(certs_in "$C/lone.out" | sort -u)" "$(der_of "$T/pki2/ca.pem")" \
    "scep-submit -C, lone CA: prints the CA certificate"

# ---- enrollment through a private certmonger daemon ----
certmonger_private "$C"

# Runs inside the private bus, under the daemon (certmonger -c); one line per result.
cat >"$C/inner.sh" <<'INNER'
set -u
C=$1 URL=$2 LONE_URL=$3 CHAL=$4 LONE_CA=$5 REG_URL=$6 REG_CHAL=$7 WAIT_CHAL=$8
run() { echo "+ $*"; timeout 120 "$@"; }
run getcert add-scep-ca -s -c ModScep -u "$URL"
echo "result add-scep-ca $?"
run getcert request -s -c ModScep -f "$C/out/cert.pem" -k "$C/out/key.pem" \
    -N "CN=certmonger-device,O=mod_scep tests" -L "$CHAL" -w -v
echo "result request $?"
run getcert add-scep-ca -s -c LoneCA -u "$LONE_URL" -N "$LONE_CA"
echo "result add-scep-ca-lone $?"
run getcert request -s -c LoneCA -f "$C/out/lone-cert.pem" -k "$C/out/lone-key.pem" \
    -N "CN=certmonger-lone,O=mod_scep tests" -L "$CHAL" -w -v
echo "result request-lone $?"
run getcert add-scep-ca -s -c Registered -u "$REG_URL"
run getcert request -s -c Registered -f "$C/out/reg-cert.pem" -k "$C/out/reg-key.pem" \
    -N "CN=cm.example.net" -D cm.example.net -L "$REG_CHAL" -w -v
echo "result request-reg $?"

# Manual approval.  No -w: the request is held (PENDING), which certmonger shows as
# CA_WORKING.  Then: the marker wait.pending for the outer script, a poll while still
# pending, and once the outer script has approved (marker wait.approved), polls until the
# certificate is saved.  certmonger's own poll delay is far longer than a test, hence
# getcert refresh ("check now on a request waiting for the CA").
status_of() { timeout 30 getcert list -s -i "$1" | sed -n 's/^[[:space:]]*status: //p'; }
# wait_status ID SECONDS STATUS...: until the request is in one of STATUS (bounded)
wait_status() {
    local id=$1 secs=$2 i st=""
    shift 2
    for ((i = 0; i < secs * 4; i++)); do
        st=$(status_of "$id")
        [[ " $* " == *" $st "* ]] && break
        sleep 0.25
    done
    echo "$st"
}
run getcert request -s -c Registered -I cmwait -f "$C/out/wait-cert.pem" \
    -k "$C/out/wait-key.pem" -N "CN=cmwait.example.net" -D cmwait.example.net -L "$WAIT_CHAL" -v
echo "result request-wait $?"
st=$(wait_status cmwait 60 CA_WORKING CA_UNREACHABLE CA_REJECTED CA_UNCONFIGURED NEED_GUIDANCE \
    MONITORING)
echo "result wait-held $st"
timeout 30 getcert list -s -i cmwait >"$C/wait-held.list"
: >"$C/wait.pending"
run getcert refresh -s -i cmwait
echo "result refresh-pending $?"
for ((i = 0; i < 480; i++)); do
    [[ -e "$C/wait.approved" || -e "$C/wait.abandon" ]] && break
    sleep 0.25
done
echo "result approved $([[ -e "$C/wait.approved" ]] && echo yes || echo no)"
# after the approval: a refresh whenever it waits for the CA again (bounded: 60 s)
st="" refreshes=0 last=-20
if [[ -e "$C/wait.approved" ]]; then
    for ((i = 0; i < 240; i++)); do
        st=$(status_of cmwait)
        [[ "$st" == MONITORING && -s "$C/out/wait-cert.pem" ]] && break
        if [[ "$st" == CA_WORKING ]] && ((i - last >= 20)); then
            run getcert refresh -s -i cmwait
            refreshes=$((refreshes + 1)) last=$i
        fi
        sleep 0.25
    done
fi
echo "result refreshes $refreshes"
echo "result wait-final ${st:-?}"
timeout 30 getcert list -s -i cmwait >"$C/wait-final.list"
run getcert list -s
INNER
rc=0
timeout 400 dbus-run-session -- certmonger -s -n -B -c \
    "bash $C/inner.sh $C $URL http://127.0.0.1:$PORT/lone $CHAL $T/pki2/ca.pem http://127.0.0.1:$PORT/reg $REG_CHAL $WAIT_CHAL" \
    >"$C/daemon.out" 2>&1 &
DAEMON=$!
at_exit '[[ -z "$DAEMON" ]] || kill "$DAEMON" 2>/dev/null'
# the operator's side, while the daemon runs: wait (bounded) until certmonger has heard
# PENDING and polled once more, then approve
for ((i = 0; i < 1200; i++)); do
    [[ -e "$C/wait.pending" ]] && break
    kill -0 "$DAEMON" 2>/dev/null || break
    sleep 0.25
done
held=$(timeout 30 "${SCEPREG:-$TOP/scepreg}" -P "$T/db" cmwait.example.net 2>/dev/null | tail -n +2)
if [[ -e "$C/wait.pending" ]]; then
    pass "certmonger's request for cmwait.example.net came back PENDING"
    expect_match "$held" $'^[0-9]+\tpending\tcmwait\.example\.net\t' \
        "scepreg -P lists certmonger's request as pending"
    expect_eq "$(grep -c . <<<"$held")" 1 "exactly one request is held for cmwait.example.net"
    for ((i = 0; i < 240; i++)); do
        grep -q "SCEP00241: " "$ERROR_LOG" && break
        sleep 0.25
    done
    expect_log "SCEP00241: .* the request is still waiting for approval" \
        "certmonger's poll before the approval: still PENDING"
    if timeout 30 "${SCEPREG:-$TOP/scepreg}" -Y "$T/db" cmwait.example.net >"$C/approve.out" 2>&1; then
        pass "scepreg -Y approved cmwait.example.net while certmonger waits"
        expect_file_contains "$C/approve.out" "approved request $(cut -f1 <<<"$held")" \
            "scepreg -Y approved certmonger's transaction"
    else
        fail "scepreg -Y: $(tr '\n' ' ' <"$C/approve.out")"
    fi
    : >"$C/wait.approved"
else
    fail "certmonger never reported its cmwait.example.net request held:"
    grep -v '^dbus-daemon' "$C/daemon.out" | sed 's/^/       | /' | tail -40
    : >"$C/wait.abandon"
fi
rc=0
wait "$DAEMON" || rc=$?
DAEMON=""
expect_eq "$rc" 0 "private certmonger daemon ran the enrollments"

# cm_check NAME RESULT CERT KEY CAPEM CN
cm_check() {
    local what=$1 result=$2
    local got
    got=$(sed -n "s/^result $result //p" "$C/daemon.out")
    if [[ "$got" != 0 ]]; then
        fail "$what: getcert exited '${got:-never ran}':"
        grep -v '^dbus-daemon' "$C/daemon.out" | sed 's/^/       | /' | tail -40
        return
    fi
    pass "$what: getcert request -w succeeded"
    shift 2
    cm_check_cert "$what" "$@"
}
# cm_check_cert NAME CERT KEY CAPEM CN
cm_check_cert() {
    local what=$1 cert=$2 key=$3 capem=$4 cn=$5
    if timeout 30 openssl verify -CAfile "$capem" "$cert" >"$C/verify" 2>&1; then
        pass "$what: certificate verified"
    else
        fail "$what: openssl verify: $(tr '\n' ' ' <"$C/verify")"
        return
    fi
    if [[ "$(openssl x509 -in "$cert" -noout -pubkey)" == "$(openssl pkey -in "$key" -pubout 2>/dev/null)" ]]; then
        pass "$what: the certificate carries certmonger's key"
    else
        fail "$what: the certificate carries another key"
    fi
    expect_match "$(openssl x509 -in "$cert" -noout -subject -nameopt RFC2253)" "CN=$cn" "$what: subject"
}
cm_check "certmonger, CA + RA" request "$C/out/cert.pem" "$C/out/key.pem" "$T/pki/ca.pem" certmonger-device
cm_check "certmonger, lone CA with -N" request-lone "$C/out/lone-cert.pem" "$C/out/lone-key.pem" \
    "$T/pki2/ca.pem" certmonger-lone
cm_check "certmonger, registered device" request-reg "$C/out/reg-cert.pem" "$C/out/reg-key.pem" \
    "$T/pki/ca.pem" cm.example.net
expect_eq "$(timeout 30 "${SCEPREG:-$TOP/scepreg}" -L "$T/db" cm.example.net 2>/dev/null | tail -n +2 | grep -c .)" 1 \
    "certmonger's certificate is recorded for cm.example.net"

# ---- manual approval: what certmonger did ----
result() { sed -n "s/^result $1 //p" "$C/daemon.out" | tail -1; }
expect_eq "$(result request-wait)" 0 "certmonger, held request: getcert request (no -w) accepted"
expect_eq "$(result wait-held)" CA_WORKING "certmonger, held request: PENDING shows as CA_WORKING"
expect_file_contains "$C/wait-held.list" "stuck: no" "certmonger, held request: not stuck while pending"
if grep -q 'ca-error:' "$C/wait-held.list"; then
    fail "certmonger, held request: a ca-error while pending: $(grep 'ca-error:' "$C/wait-held.list")"
else
    pass "certmonger, held request: no ca-error while pending"
fi
expect_eq "$(result refresh-pending)" 0 "certmonger, held request: getcert refresh while pending"
expect_eq "$(result approved)" yes "certmonger, held request: still running at the approval"
if [[ "$(result wait-final)" == MONITORING ]]; then
    pass "certmonger, held request: MONITORING after the approval ($(result refreshes) refresh(es))"
    cm_check_cert "certmonger, approved request" "$C/out/wait-cert.pem" "$C/out/wait-key.pem" \
        "$T/pki/ca.pem" cmwait.example.net
else
    fail "certmonger, held request: '$(result wait-final)' after the approval, not MONITORING:"
    sed 's/^/       | /' "$C/wait-final.list"
fi
expect_eq "$(timeout 30 "${SCEPREG:-$TOP/scepreg}" -L "$T/db" cmwait.example.net 2>/dev/null | tail -n +2 | grep -c .)" 1 \
    "certmonger's approved certificate is recorded for cmwait.example.net"
expect_eq "$(timeout 30 "${SCEPREG:-$TOP/scepreg}" -P "$T/db" cmwait.example.net 2>/dev/null | tail -n +2)" "" \
    "once collected, nothing is held for cmwait.example.net any more"
expect_log "SCEP00240: .*request for cmwait\.example\.net from 127\.0\.0\.1 is held for approval" \
    "the held request is logged"
expect_log "SCEP00220: .* to cmwait\.example\.net .*approved by an operator" \
    "the issuance to cmwait.example.net says it was approved"
# how certmonger 0.79.17 polls: its PKCSReq again (SCEP00241 names the message type; a
# CertPoll would also log SCEP00243 at trace1)
polls=$(grep -oE 'SCEP00241: .*: (PKCSReq|CertPoll) from' "$ERROR_LOG" | grep -oE '(PKCSReq|CertPoll) from' | sort -u)
expect_eq "$polls" "PKCSReq from" "certmonger polls by sending its PKCSReq again"
expect_log_lacks "SCEP00243: " "certmonger sends no CertPoll (GetCertInitial)"

# certmonger uses GET for PKIOperation
if grep -qE '^GET /scep 200 application/x-pki-message \?.*operation=PKIOperation' "$ACCESS_LOG"; then
    pass "certmonger enrolled by GET"
else
    fail "no GET PKIOperation answered 200 in the access log:"
    grep PKIOperation "$ACCESS_LOG" | cut -c1-120 | sed 's/^/       | /'
fi

httpd_stop || fail "httpd did not stop cleanly"
check_error_log
expect_log_lacks "$CHAL" "the challenge never appears in the error log"
expect_log_lacks "$REG_CHAL" "the registered challenge never appears in the error log"
expect_log_lacks "$WAIT_CHAL" "the held device's challenge never appears in the error log"
t_done

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Manual approval: requests held PENDING (a registration with -W on, or an endpoint with
# ScepRequireApproval On), listed with scepreg -P, approved with -Y or rejected with -N;
# the device's CertPoll (and its request sent again) then gets SUCCESS, FAILURE or PENDING
# again.  Held requests expire (ScepPendingTimeout); polls must be signed with the
# request's key.  strongSwan pki --scep polls across an approval made while it waits.
source "$(dirname "$0")/lib.sh"
t_init
require_module
SCEPREG=${SCEPREG:-$TOP/scepreg}
reg() { timeout 60 "$SCEPREG" "$@"; }

make_pki "$T/pki" Approving
make_pki "$T/pki2" Elsewhere
RA=$T/pki/ra.pem
CA=$T/pki/ca.pem
DB=$T/db
CH=$(openssl rand -hex 12)
reg -c -b -W on "$DB" p1.example.net "$CH" 2>/dev/null || die "scepreg: p1"
reg -b "$DB" '*.fleet.example.net' "$CH" 2>/dev/null || die "scepreg: fleet"
AUDIT=$T/audit.log
httpd_conf "$(
    echo "ScepAuditLog \"$AUDIT\""
    scep_location /scep "$T/pki" ra "ScepDeviceDB $DB"
    scep_location /manual "$T/pki" ra "ScepDeviceDB $DB" "ScepRequireApproval On"
    scep_location /brief "$T/pki" ra "ScepDeviceDB $DB" "ScepRequireApproval On" \
        "ScepPendingTimeout 1"
    scep_location /p1 "$T/pki" ra "ScepDeviceDB $DB" "ScepRequireApproval On" \
        "ScepProfileName p1" "ScepValidityDays 30"
    scep_location /p2 "$T/pki" ra "ScepDeviceDB $DB" "ScepProfileName p2" \
        "ScepValidityDays 3650" "ScepExtendedKeyUsage serverAuth"
    scep_location /other-ca "$T/pki2" ra "ScepDeviceDB $DB" "ScepProfileName p1"
)"
httpd_start || t_done

# status NAME: pkiStatus of $T/NAME.rep (the reply parsed with NAME's key)
status() {
    probe_reply "$1" "$RA" || true
    field "$1" pkiStatus
}
# poll NAME FROM [LOCATION]: a CertPoll for FROM's transaction, signed with FROM's key
poll() {
    local name=$1 from=$2 loc=${3:-/scep}
    cp "$T/$from.key" "$T/$name.key"
    cp "$T/$from.selfsigned.pem" "$T/$name.selfsigned.pem"
    probe_request "$name" "$RA" --cert "$T/$name.selfsigned.pem" --no-challenge \
        --msgtype 20 --txid "$(txid_of "$from")" --poll-issuer "$CA" \
        --subject "/CN=$from/O=mod_scep tests"
    send_request "$name" "$loc" POST
}
txid_of() { cat "$T/$1.txid"; }
# request NAME LOCATION FQDN: a PKCSReq, its transactionID kept in $T/NAME.txid
request() {
    probe_enrollment_request "$1" "$RA" --challenge "$CH" --san-dns "$3"
    echo "$REQ_TXID" >"$T/$1.txid"
    send_request "$1" "$2" POST
}

# ---- a registration that needs approval ------------------------------------------------
request a1 /scep p1.example.net
expect_eq "$(status a1)" 3 "a device registered with -W on gets PENDING"
expect_log "SCEP00240: .*request for p1.example.net from 127.0.0.1 is held for approval" \
    "the held request is logged"
expect_match "$(grep '"event":"pending"' "$AUDIT")" '"fqdn":"p1.example.net"' "and audited as pending"
expect_match "$(reg -l "$DB" p1.example.net | tail -1 | cut -f5)" approval "scepreg -l shows the approval flag"
poll a1p1 a1
expect_eq "$(status a1p1)" 3 "CertPoll before the decision: PENDING again"
send_request a1 /scep POST
expect_eq "$(status a1)" 3 "the same request sent again: PENDING again"
listing=$(reg -P "$DB")
expect_match "$listing" "$(txid_of a1)"$'\tpending\tp1.example.net\t' "scepreg -P lists the held request"
# the one-time-like effect: the challenge of a held request is not spent twice
reg -Y "$DB" p1.example.net 2>"$T/approve.err" && pass "scepreg -Y by FQDN" || fail "scepreg -Y: $(cat "$T/approve.err")"
expect_file_contains "$T/approve.err" "approved request $(txid_of a1)" "-Y names what it approved"
poll a1p2 a1
if check_success a1p2 "$RA" "$CA" "CertPoll after the approval"; then
    expect_eq "$(openssl x509 -in "$T/a1p2.pem" -noout -ext subjectAltName | tail -1 | tr -d ' ')" \
        "DNS:p1.example.net" "the certificate names the registered device"
fi
expect_log "SCEP00220: .*to p1.example.net .*approved by an operator" "the issuance says it was approved"
poll a1p3 a1
check_success a1p3 "$RA" "$CA" "a second CertPoll" && \
    expect_eq "$(der_of "$T/a1p3.pem")" "$(der_of "$T/a1p2.pem")" "a second CertPoll gets the same certificate"
send_request a1 /scep POST
check_success a1 "$RA" "$CA" "the original request sent again" && \
    expect_eq "$(der_of "$T/a1.pem")" "$(der_of "$T/a1p2.pem")" "the original request gets the same certificate"
expect_eq "$(reg -L "$DB" p1.example.net | tail -n +2 | grep -c .)" 1 "exactly one certificate was issued"
rc=0
reg -Y "$DB" "$(txid_of a1)" 2>"$T/again.err" || rc=$?
expect_eq "$rc" 6 "-Y on a request already issued: exit 6"
expect_file_contains "$T/again.err" "is issued, not pending" "-Y says why"

# ---- an endpoint that holds every first enrollment; a rejection -------------------------
request b1 /manual b1.fleet.example.net
expect_eq "$(status b1)" 3 "ScepRequireApproval On holds a wildcard device's request"
request b2 /scep b2.fleet.example.net
check_success b2 "$RA" "$CA" "the same registration at an endpoint without approval" || true
reg -N -t "not one of ours" "$DB" "$(txid_of b1)" 2>/dev/null && pass "scepreg -N by transactionID" || fail "scepreg -N"
expect_match "$(reg -P -j "$DB" b1.fleet.example.net)" '"state":"rejected".*"reason":"not one of ours"' \
    "scepreg -P -j shows the rejection and its reason"
poll b1p b1 /manual
expect_failure b1p "$RA" 2 "CertPoll after a rejection: FAILURE badRequest" || true
expect_log "SCEP00242: .*rejected by .* at .*: not one of ours" "the log names the decision"
expect_eq "$(field b1p failInfoText)" "refused by the server's policy; the server's log has the reason" \
    "point7 the device is told no more than that"

# ---- expiry, foreign polls, unknown transactions ---------------------------------------
request c1 /brief c1.fleet.example.net
expect_eq "$(status c1)" 3 "a held request at an endpoint with ScepPendingTimeout 1"
sleep 2
poll c1p c1 /brief
expect_failure c1p "$RA" 2 "CertPoll after ScepPendingTimeout: FAILURE" || true
expect_log "SCEP00242: .*expired without a decision" "the log says it expired"
rc=0
reg -Y "$DB" "$(txid_of c1)" 2>/dev/null || rc=$?
expect_eq "$rc" 6 "-Y on an expired request: exit 6"

request d1 /manual d1.fleet.example.net
make_key "$T/intruder.key" 2048
openssl req -x509 -new -key "$T/intruder.key" -subj /CN=intruder -days 1 \
    -out "$T/intruder.selfsigned.pem" 2>/dev/null
cp "$T/d1.txid" "$T/intruder.txid"
poll d1x intruder /manual
expect_failure d1x "$RA" 2 "point11 a CertPoll signed with another key: FAILURE" || true
expect_log "SCEP00242: .*no request with this transactionID was held here" \
    "point11 another key finds no request (the transaction is the requester's)"
echo "no-such-transaction" >"$T/ghost.txid"
cp "$T/intruder.key" "$T/ghost.key"
cp "$T/intruder.selfsigned.pem" "$T/ghost.selfsigned.pem"
poll ghostp ghost
expect_failure ghostp "$RA" 2 "a CertPoll for an unknown transactionID: FAILURE badRequest" || true
rc=0
reg -Y "$DB" no-such-transaction 2>/dev/null || rc=$?
expect_eq "$rc" 6 "-Y on an unknown transactionID: exit 6"

# ---- point 2: a held request is completed only by the endpoint that held it -----------
request e1 /p1 e1.fleet.example.net
expect_eq "$(status e1)" 3 "point2 held at the endpoint of profile p1"
reg -Y "$DB" "$(txid_of e1)" 2>/dev/null || fail "point2 scepreg -Y"
poll e1x e1 /p2
expect_failure e1x "$RA" 2 "point2 approved, then polled at profile p2's endpoint: FAILURE" || true
expect_log "SCEP00242: .*held at another endpoint \\(profile 'p1', local CA [0-9a-f]{64}\\).*this one: profile 'p2'" \
    "point2 the log names both endpoints"
cp "$T/e1.key" "$T/e1y.key"
cp "$T/e1.selfsigned.pem" "$T/e1y.selfsigned.pem"
probe_request e1y "$T/pki2/ra.pem" --cert "$T/e1y.selfsigned.pem" --no-challenge \
    --msgtype 20 --txid "$(txid_of e1)" --poll-issuer "$CA" --subject "/CN=e1/O=mod_scep tests"
send_request e1y /other-ca POST
expect_failure e1y "$T/pki2/ra.pem" 2 "point2 polled at an endpoint of profile p1 with another CA: FAILURE" || true
send_request e1 /p2 POST
expect_eq "$(status e1)" 2 "point2 the request sent again at p2's endpoint: FAILURE"
poll e1p e1 /p1
if check_success e1p "$RA" "$CA" "point2 polled where it was held"; then
    days=$(( ($(date -d "$(openssl x509 -in "$T/e1p.pem" -noout -enddate | cut -d= -f2)" +%s) \
              - $(date +%s)) / 86400 ))
    expect_match "$days" '^(29|30)$' "point2 issued with the profile that held it (30 days)"
fi
expect_eq "$(reg -L "$DB" e1.fleet.example.net | tail -n +2 | grep -c .)" 1 "point2 exactly one certificate"

# ---- point 8: two devices held under one transactionID; the operator names the device --
request s1 /manual s1.fleet.example.net
probe_enrollment_request s2 "$RA" --challenge "$CH" --san-dns s2.fleet.example.net \
    --txid "$(txid_of s1)"
cp "$T/s1.txid" "$T/s2.txid"
send_request s2 /manual POST
expect_eq "$(status s2)" 3 "point8 another device under s1's transactionID is held on its own"
rc=0
out=$(reg -Y "$DB" "$(txid_of s1)" 2>&1) || rc=$?
expect_eq "$rc" 6 "point8 -Y by a transactionID two devices used: exit 6"
expect_match "$out" "several devices sent requests with transactionID" "point8 -Y says why"
reg -Y "$DB" s1.fleet.example.net 2>/dev/null && pass "point8 -Y by FQDN" || fail "point8 -Y by FQDN"
poll s1p s1 /manual
check_success s1p "$RA" "$CA" "point8 s1 collects its certificate" || true
poll s2p s2 /manual
expect_eq "$(status s2p)" 3 "point8 s2's request is still pending"
expect_match "$($SCEPREG -V "$DB" 2>&1)" "consistent" "point8 scepreg -V finds nothing wrong"

# ---- strongSwan polls while an operator approves ---------------------------------------
if command -v pki >/dev/null; then
    reg -b -W on "$DB" swan.example.net "$CH" 2>/dev/null || fail "scepreg: swan"
    S=$T/swan
    mkdir -p "$S"
    openssl x509 -in "$CA" -outform DER -out "$S/ca.der"
    openssl x509 -in "$RA" -outform DER -out "$S/ra.der"
    timeout 60 pki --gen --type rsa --size 2048 --outform pem >"$S/key.pem" 2>/dev/null
    timeout 150 pki --scep --url "http://127.0.0.1:$PORT/scep" --in "$S/key.pem" \
        --dn "CN=swan.example.net" --san swan.example.net --password "$CH" \
        --cacert-enc "$S/ra.der" --cacert-sig "$S/ra.der" --cacert "$S/ca.der" \
        --interval 1 --maxpolltime 120 --outform pem >"$S/cert.pem" 2>"$S/err" &
    swan_pid=$!
    waited=0
    until reg -P "$DB" swan.example.net 2>/dev/null | grep -q $'\tpending\t'; do
        sleep 1
        waited=$((waited + 1))
        ((waited < 60)) || break
    done
    if reg -Y "$DB" swan.example.net 2>/dev/null; then
        pass "the operator approves while strongSwan polls (after ${waited}s)"
    else
        fail "strongSwan's request never showed up as pending"
    fi
    if wait "$swan_pid" && openssl verify -CAfile "$CA" "$S/cert.pem" >/dev/null 2>&1; then
        pass "strongSwan pki --scep --interval collects its certificate by polling"
    else
        fail "strongSwan polling:"
        grep -v -e plugin -e TPM "$S/err" | sed 's/^/       | /' | tail -8
    fi
    expect_log "SCEP00241: .*CertPoll from 127.0.0.1: the request is still waiting" \
        "strongSwan's polls were answered PENDING until the approval"
fi

check_error_log '\[scep:warn\] .*SCEP0024[0-2]: '
t_done

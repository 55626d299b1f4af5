#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Validation and notification webhooks (issue 17, points 3 and 4) against webhook_server.py,
# which checks every HMAC and timestamp: the validator alone (allow, deny with its reason
# in the log only, identity values supplied, past its timeout, garbage, HTTP 500, an
# oversized answer, nobody listening), after the registration (a wrong challenge never
# reaches it, its deny overrides a right one), down then back with pending (the poll
# issues), an Intune-sized opaque challenge by POST and by GET reaching it unchanged, and
# the notifier receiving every issued certificate exactly once under 32 concurrent
# enrollments.  Real clients: strongSwan pki and scepload beside scep_probe.
source "$(dirname "$0")/lib.sh"
t_init
require_module
require_probe
SCEPREG=${SCEPREG:-$TOP/scepreg}
SCEPLOAD=${SCEPLOAD:-$TOP/scepload}
reg() { timeout 60 "$SCEPREG" "$@"; }

make_pki "$T/pki" Hooks
RA=$T/pki/ra.pem
CA=$T/pki/ca.pem
SECRET=$T/hook.secret
openssl rand -hex 24 >"$SECRET"
chmod 600 "$SECRET"
RECORD=$T/hook.record
STATE=$T/hook.state
echo down >"$STATE"
INTUNE=$T/intune.challenge
# an opaque challenge of 4 KB, as Intune's encrypted blobs are
openssl rand -base64 3072 | tr -d '\n' >"$INTUNE"
[[ $(wc -c <"$INTUNE") == 4096 ]] || die "the challenge is not 4096 bytes"

webhook_start "$SECRET" "$RECORD" "$STATE" "$INTUNE" 3
DOWN_PORT=$(free_port)

DB=$T/db
CH=$(openssl rand -hex 12)
reg -c -b "$DB" after.example.net "$CH" 2>/dev/null || die "scepreg: after"
reg -b "$DB" '*.fleet.example.net' "$CH" 2>/dev/null || die "scepreg: fleet"

validator() {   # validator PATH [directive lines]: the ScepValidate* lines of a location
    local path=$1
    shift
    echo "ScepValidateURL $HOOK$path"
    echo "ScepValidateSecretFile \"$SECRET\""
    printf '%s\n' "$@"
}
alone() { validator "$1" "ScepValidateMode alone" "${@:2}"; }

mapfile -t A_ALLOW < <(alone /allow)
mapfile -t A_DENY < <(alone /deny)
# the validator's values fill a template's validator rules; the request's own names go
mapfile -t A_ID < <(alone /identity "ScepTemplate tls-client" \
    "ScepTemplateSubject CN validator" "ScepTemplateSAN rfc822Name validator" \
    "ScepTemplateSAN upn validator" "ScepTemplateUnlisted drop")
mapfile -t A_SLOW < <(alone /sleep "ScepValidateTimeout 500")
mapfile -t A_GARBAGE < <(alone /garbage)
mapfile -t A_500 < <(alone /status500)
mapfile -t A_BIG < <(alone /big)
mapfile -t A_NOBODY < <(alone /x "ScepValidateTimeout 300" | sed "s|$HOOK/x|http://127.0.0.1:$DOWN_PORT/validate|")
mapfile -t A_TOGGLE < <(alone /toggle "ScepValidateUnavailable pending")
mapfile -t A_INTUNE < <(alone /challenge "ScepValidateSendChallenge on")
mapfile -t AFTER_ALLOW < <(validator /allow "ScepValidateMode after-registration")
mapfile -t AFTER_DENY < <(validator /deny)
mapfile -t AFTER_TOGGLE < <(validator /toggle "ScepValidateUnavailable pending")

httpd_conf "$(
    # an Intune challenge by GET is a request line of 9 KB and more (as for NDES)
    echo "LimitRequestLine 65534"
    scep_location /allow "$T/pki" ra "${A_ALLOW[@]}"
    scep_location /deny "$T/pki" ra "${A_DENY[@]}"
    scep_location /identity "$T/pki" ra "${A_ID[@]}"
    scep_location /slow "$T/pki" ra "${A_SLOW[@]}"
    scep_location /garbage "$T/pki" ra "${A_GARBAGE[@]}"
    scep_location /status500 "$T/pki" ra "${A_500[@]}"
    scep_location /big "$T/pki" ra "${A_BIG[@]}"
    scep_location /nobody "$T/pki" ra "${A_NOBODY[@]}"
    scep_location /toggle "$T/pki" ra "ScepDeviceDB $DB" "${A_TOGGLE[@]}"
    # a sibling with the same CA and database and no validator (review: it completed
    # requests held for the validator's allow)
    scep_location /no-validator "$T/pki" ra "ScepDeviceDB $DB"
    scep_location /intune "$T/pki" ra "${A_INTUNE[@]}"
    scep_location /after "$T/pki" ra "ScepDeviceDB $DB" "${AFTER_ALLOW[@]}"
    scep_location /after-deny "$T/pki" ra "ScepDeviceDB $DB" "${AFTER_DENY[@]}"
    scep_location /after-toggle "$T/pki" ra "ScepDeviceDB $DB" "${AFTER_TOGGLE[@]}"
    scep_location /notify "$T/pki" ra "ScepDeviceDB $DB" "ScepNotifyURL $HOOK/notify" \
        "ScepNotifySecretFile \"$SECRET\"" "ScepRenewalRevokesOld On"
    scep_location /notify-down "$T/pki" ra "ScepDeviceDB $DB" \
        "ScepNotifyURL http://127.0.0.1:$DOWN_PORT/events" \
        "ScepNotifySecretFile \"$SECRET\"" "ScepNotifyRetries 1"
)"
httpd_start || t_done

# records PATH: how many documents the server received at PATH
records() { grep -c "\"path\": \"$1\"" "$RECORD" 2>/dev/null || true; }
# last_doc PATH EXPR: a Python expression on the last document received at PATH (as d)
last_doc() {
    python3 - "$RECORD" "$1" "$2" <<'PY'
import json, sys
docs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
d = [x for x in docs if x["path"] == sys.argv[2]][-1]
print(eval(sys.argv[3], {"d": d["doc"], "signature": d["signature"]}))
PY
}
status() {
    probe_reply "$1" "$RA" || true
    field "$1" pkiStatus
}

# ---- the validator alone ---------------------------------------------------------------
enroll a1 /allow POST "$RA" "$CA" "$RA" --no-challenge
expect_eq "$(last_doc /allow 'signature')" True "the validator checked the request's HMAC"
expect_eq "$(last_doc /allow 'd["transactionID"]')" "$REQ_TXID" "the document names the transaction"
expect_eq "$(last_doc /allow 'd["operation"], d["registrationFound"], d["clientAddress"], "challenge" in d')" \
    "('PKCSReq', False, '127.0.0.1', False)" "operation, no registration, the client, no challenge unless configured"
expect_eq "$(last_doc /allow 'd["subject"]')" "O=mod_scep tests,CN=a1" "the subject as the request has it"
expect_eq "$(last_doc /allow 'd["csr"][:4]')" MIIC "the PKCS#10 travels in base64"

probe_enrollment_request d1 "$RA" --no-challenge
send_request d1 /deny POST
expect_failure d1 "$RA" 2 "the validator's deny"
expect_log 'SCEP00665: .*the validator refused it: device not compliant\\+x0a\\+x1b\[31m' \
    "its reason is in the log, escaped"
expect_log_lacks $'\x1b' "no raw control character reaches the log"
expect_eq "$(field d1 failInfoText | grep -c compliant)" 0 "and not in the client's FAILURE"

probe_enrollment_request i1 "$RA" --no-challenge
send_request i1 /identity POST
check_success i1 "$RA" "$CA" "identity values supplied"
expect_log 'SCEP00664: .*allowed the request .* and supplied 3 identity values' \
    "the allow and the number of values supplied are logged"
if [[ -f "$T/i1.pem" ]]; then
    expect_eq "$(openssl x509 -in "$T/i1.pem" -noout -subject -nameopt RFC2253)" \
        "subject=CN=John's iPhone" "the certificate's CN is the validator's, not the request's"
    expect_eq "$(openssl x509 -in "$T/i1.pem" -noout -ext subjectAltName | tail -1 \
                 | sed 's/^ *//')" \
        "DNS:i1, email:john@example.org, othername: UPN::john@corp.example.org" \
        "its SANs: the host the request names (the validator saw it), the validator's e-mail and UPN"
else
    fail "no certificate for the validator-supplied identity"
fi

probe_enrollment_request s1 "$RA" --no-challenge
start=$(date +%s%N)
send_request s1 /slow POST
elapsed=$((($(date +%s%N) - start) / 1000000))
expect_failure s1 "$RA" 2 "a validator past ScepValidateTimeout 500"
if ((elapsed < 2500)); then
    pass "answered in ${elapsed} ms, within the timeout's bound (the validator sleeps 3 s)"
else
    fail "answered in ${elapsed} ms: the timeout did not hold"
fi
expect_log 'SCEP00666: .*no answer within 500 ms' "the timeout is logged"

for what in garbage status500 big nobody; do
    probe_enrollment_request "g-$what" "$RA" --no-challenge
    send_request "g-$what" "/$what" POST
    expect_failure "g-$what" "$RA" 2 "validator /$what: never an allow"
done
expect_log 'SCEP00666: .*unreadable answer: "allow" comes twice' "garbage is named in the log"
expect_log 'SCEP00666: .*answered HTTP 500' "a non-2xx status is named"
expect_log 'SCEP00666: .*the answer exceeds 65536 bytes' "an oversized answer is named"

# strongSwan pki, a client we did not write, in the validator-alone mode
S=$T/swan
mkdir -p "$S"
openssl genrsa -out "$S/key.pem" 2048 2>/dev/null
if timeout 60 pki --scepca --url "http://127.0.0.1:$PORT/allow" --caout "$S/ca.der" \
    --raout "$S/ra.der" --force >/dev/null 2>&1 &&
    timeout 60 pki --scep --url "http://127.0.0.1:$PORT/allow" --in "$S/key.pem" \
        --dn "CN=John's iPhone" --password whatever-the-mdm-says --cacert-enc "$S/ra.der" \
        --cacert-sig "$S/ra.der" --cacert "$S/ca.der" --outform pem >"$S/cert.pem" 2>"$S/err"; then
    expect_match "$(openssl x509 -in "$S/cert.pem" -noout -subject)" "John's iPhone" \
        "strongSwan pki enrolls a device name the validator allowed"
else
    fail "strongSwan pki against the validator alone: $(tail -2 "$S/err" | tr '\n' ' ')"
fi

# ---- Intune: a 4 KB opaque challenge, by POST and by GET, reaches the validator as it is
for method in POST GET-std; do
    name=intune-${method,,}
    enroll "$name" /intune "$method" "$RA" "$CA" "$RA" --challenge "$(cat "$INTUNE")" &&
        expect_eq "$(last_doc /challenge 'len(d["challenge"]), d["challenge"] == open("'"$INTUNE"'").read()')" \
            "(4096, True)" "$method: the validator received the 4 KB challenge unchanged"
done
probe_enrollment_request intune-wrong "$RA" --challenge "not-$(cat "$INTUNE")"
send_request intune-wrong /intune POST
expect_failure intune-wrong "$RA" 2 "a challenge the validator does not know is refused"

# ---- down, then back: pending, and the poll issues --------------------------------------
poll() {    # poll NAME FROM LOCATION: a CertPoll for FROM's transaction
    cp "$T/$2.key" "$T/$1.key"
    cp "$T/$2.selfsigned.pem" "$T/$1.selfsigned.pem"
    probe_request "$1" "$RA" --cert "$T/$1.selfsigned.pem" --no-challenge --msgtype 20 \
        --txid "$(cat "$T/$2.txid")" --poll-issuer "$CA" --subject "/CN=$2/O=mod_scep tests"
    send_request "$1" "$3" POST
}
for loc in toggle after-toggle; do
    echo down >"$STATE"
    probe_enrollment_request "$loc" "$RA" --challenge "$CH" --san-dns "$loc.fleet.example.net"
    echo "$REQ_TXID" >"$T/$loc.txid"
    send_request "$loc" "/$loc" POST
    expect_eq "$(status "$loc")" 3 "/$loc: validator down (HTTP 503): PENDING"
    poll "$loc-p1" "$loc" "/$loc"
    expect_eq "$(status "$loc-p1")" 3 "/$loc: still down: the poll stays PENDING"
    poll "$loc-sib" "$loc" /no-validator
    REQ_TXID=$(cat "$T/$loc.txid")
    expect_failure "$loc-sib" "$RA" 2 \
        "/$loc: a poll at a sibling without the validator does not complete it"
    echo up >"$STATE"
    poll "$loc-p2" "$loc" "/$loc"
    REQ_TXID=$(cat "$T/$loc.txid")
    check_success "$loc-p2" "$RA" "$CA" "/$loc: validator back: the poll issues"
done
expect_log 'SCEP00667: .*keeps waiting for the validator' "a poll while it is down says so"

# ---- after the registration -------------------------------------------------------------
before=$(records /allow)
probe_enrollment_request r-wrong "$RA" --challenge "not-$CH" --san-dns after.example.net
send_request r-wrong /after POST
expect_failure r-wrong "$RA" 2 "after-registration: a wrong challenge is refused"
expect_eq "$(records /allow)" "$before" "and the validator was not asked"
enroll r-ok /after POST "$RA" "$CA" "$RA" --challenge "$CH" --san-dns after.example.net
expect_eq "$(last_doc /allow 'd["registrationFound"], d["registration"], d["identity"]["kind"], d["identity"]["key"]')" \
    "(True, 'after.example.net', 'host', 'after.example.net')" "the validator learns the registration found"
probe_enrollment_request r-deny "$RA" --challenge "$CH" --san-dns x.fleet.example.net
send_request r-deny /after-deny POST
expect_failure r-deny "$RA" 2 "after-registration: the validator's deny overrides a right challenge"

# ---- the notifier: 32 concurrent enrollments, each certificate reported exactly once ----
if timeout 300 "$SCEPLOAD" -u "http://127.0.0.1:$PORT/notify" -k "$T/pool.pem" -q -C "$CH" \
    -d fleet.example.net -n 32 -c 32 -r 2 -S "$T/serials.txt" >"$T/load.out" 2>&1; then
    pass "32 concurrent enrollments at the notifying endpoint"
else
    fail "scepload: $(tail -3 "$T/load.out" | tr '\n' ' ')"
fi
for _ in $(seq 1 50); do
    (($(records /notify) >= 32)) && break
    sleep 0.2
done
sleep 1     # anything sent twice would arrive now
expect_eq "$(records /notify)" 32 "the notifier received 32 events"
expect_eq "$(python3 - "$RECORD" "$T/serials.txt" <<'PY'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
events = [e for e in events if e["path"] == "/notify"]
got = sorted(e["doc"]["serial"] for e in events if e["doc"]["event"] == "issued")
want = sorted(l.split()[0] for l in open(sys.argv[2], encoding="utf-8") if l.strip())
print(all(e["signature"] for e in events), got == want, len(set(got)) == len(got))
PY
)" "True True True" "signed, one issued event per certificate received, none twice"

# refused and revoked events: a wrong challenge, and a renewal that revokes the old one
probe_enrollment_request n-bad "$RA" --challenge "not-$CH" --san-dns n1.fleet.example.net
send_request n-bad /notify POST
expect_failure n-bad "$RA" 2 "a refusal at the notifying endpoint"
enroll n1 /notify POST "$RA" "$CA" "$RA" --challenge "$CH" --san-dns n1.fleet.example.net
cp "$T/n1.key" "$T/n2.key"
cp "$T/n1.pem" "$T/n2.selfsigned.pem"
probe_request n2 "$RA" --cert "$T/n2.selfsigned.pem" --msgtype 17 --no-challenge \
    --san-dns n1.fleet.example.net
send_request n2 /notify POST
check_success n2 "$RA" "$CA" "a renewal that revokes the certificate it replaces"
for _ in $(seq 1 50); do
    (($(records /notify) >= 36)) && break
    sleep 0.2
done
old_serial=$(openssl x509 -in "$T/n1.pem" -noout -serial | cut -d= -f2)
new_serial=$(openssl x509 -in "$T/n2.pem" -noout -serial | cut -d= -f2)
expect_eq "$(python3 - "$RECORD" <<'PY'
import json, sys
events = [json.loads(l)["doc"] for l in open(sys.argv[1], encoding="utf-8")
          if json.loads(l)["path"] == "/notify"][32:]
print(" ".join(e["event"] + ":" + str(e["serial"]) + ":" + str(bool(e["reason"])) for e in events))
PY
)" "refused:None:True issued:$old_serial:False issued:$new_serial:False revoked:$old_serial:True" \
    "the notifier receives the refusal (with its reason), both issues and the revocation"

# a receiver that is down: the answer does not wait, the event is dropped with a line
start=$(date +%s%N)
enroll n3 /notify-down POST "$RA" "$CA" "$RA" --challenge "$CH" --san-dns n3.fleet.example.net
elapsed=$((($(date +%s%N) - start) / 1000000))
serial3=$(openssl x509 -in "$T/n3.pem" -noout -serial | cut -d= -f2)
for _ in $(seq 1 50); do
    grep -q "SCEP00671: .*event issued serial $serial3 .*dropped: .*(2 attempts)" "$ERROR_LOG" \
        && break
    sleep 0.2
done
expect_log "SCEP00671: ScepNotifyURL http://127.0.0.1:$DOWN_PORT/events: event issued serial $serial3 \(transaction .*\) dropped: .*\(2 attempts\)" \
    "an event the receiver never took is logged as dropped after its retries"
if ((elapsed < 3000)); then
    pass "the enrollment did not wait for the notifier (${elapsed} ms with the probe's own work)"
else
    fail "the enrollment took ${elapsed} ms: did it wait for the notifier?"
fi

check_error_log '\[scep:warn\] .*SCEP0066[56]: ' '\[scep:warn\] .*SCEP00212: ' \
    '\[scep:warn\] .*SCEP00404: ' '\[scep:notice\] .*SCEP00662: ' \
    '\[scep:warn\] .*SCEP00671: ' '\[scep:warn\] .*SCEP00242: .*held at another endpoint'
t_done

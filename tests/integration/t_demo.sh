#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The first README command: conf-examples/demo.sh serves a SCEP endpoint, prints "url:"
# and "challenge:" lines that work with a real client, and SIGTERM stops Apache with it.
# The demo builds in the source tree, so this runs against $TOP as the tree under test.
source "$(dirname "$0")/lib.sh"
t_init
command -v pki >/dev/null || die "strongSwan's pki is not installed (strongswan-pki)"
[[ -f "$TOP/conf-examples/demo.sh" ]] || die "no conf-examples/demo.sh under $TOP"

DEMO_PORT=$(free_port)
STATE=$T/state
DEMO_PID=""
stop_demo() {
    [[ -n "$DEMO_PID" ]] && kill -TERM "$DEMO_PID" 2>/dev/null
    # bounded wait for the foreground Apache and its children
    for _ in $(seq 50); do
        pgrep -f "$STATE/httpd.conf" >/dev/null || return 0
        sleep 0.2
    done
    pkill -KILL -f "$STATE/httpd.conf" || true
    return 1
}
at_exit stop_demo

SCEP_PORT=$DEMO_PORT SCEP_STATE_DIR=$STATE bash "$TOP/conf-examples/demo.sh" \
    >"$T/demo.out" 2>"$T/demo.err" &
DEMO_PID=$!

for _ in $(seq 600); do
    grep -q '^challenge: ' "$T/demo.out" 2>/dev/null && break
    kill -0 "$DEMO_PID" 2>/dev/null || break
    sleep 0.5
done
URL=$(sed -n 's/^url: //p' "$T/demo.out")
CHAL=$(sed -n 's/^challenge: //p' "$T/demo.out")
if [[ -z "$URL" || -z "$CHAL" ]]; then
    sed 's/^/       | /' "$T/demo.err" | tail -30
    die "demo.sh printed no url:/challenge: lines"
fi
expect_eq "$URL" "http://127.0.0.1:$DEMO_PORT/scep" "demo.sh prints the URL on its own line"
expect_match "$CHAL" '^[A-Za-z0-9._~+/=-]{16,}$' "demo.sh prints a challenge"
expect_eq "$(grep -c -e '^url: ' -e '^challenge: ' "$T/demo.out")" 2 \
    "stdout holds exactly one url: and one challenge: line"
MDM_URL=$(sed -n 's/^mdm-url: //p' "$T/demo.out")
MDM_CHAL=$(sed -n 's/^mdm-challenge: //p' "$T/demo.out")
expect_eq "$MDM_URL" "http://127.0.0.1:$DEMO_PORT/scep-mdm" \
    "demo.sh prints the MDM-style endpoint's URL on its own line"
expect_match "$MDM_CHAL" '^[A-Za-z0-9._~+/=-]{16,}$' "demo.sh prints the MDM challenge"
expect_eq "$(grep -c -e '^mdm-url: ' -e '^mdm-challenge: ' "$T/demo.out")" 2 \
    "stdout holds exactly one mdm-url: and one mdm-challenge: line"
DB=$(sed -n 's/^db: //p' "$T/demo.out")
# the scratch folder is 0700, as a checkout under /root is: out of www-data's reach
if [[ $(id -u) == 0 ]]; then
    expect_match "$DB" '^/var/lib/mod_scep-demo/[0-9a-f]{12}/devices$' \
        "demo.sh puts the database where www-data can reach it"
    at_exit "rm -rf '${DB%/devices}'"
else
    expect_eq "$DB" "$STATE/devices" "demo.sh prints the database path"
fi

# bounded wait for Apache to answer
caps=""
for _ in $(seq 100); do
    caps=$(curl -s --max-time 5 "$URL?operation=GetCACaps" || true)
    [[ -n "$caps" ]] && break
    sleep 0.2
done
expect_match "$caps" 'POSTPKIOperation' "the demo endpoint answers GetCACaps"

# enroll exactly as the printed instructions say
D=$T/device
mkdir -p "$D"
if timeout 60 pki --scepca --url "$URL" --caout "$D/ca.der" --raout "$D/ra.der" --force \
        >"$D/scepca.out" 2>&1 \
    && timeout 60 pki --gen --type rsa --size 2048 --outform pem >"$D/device.key" 2>/dev/null \
    && timeout 120 pki --scep --url "$URL" --in "$D/device.key" --dn "CN=device1.example.org" \
        --password "$CHAL" --cacert-enc "$D/ra.der" --cacert-sig "$D/ra.der" \
        --cacert "$D/ca.der" --outform pem >"$D/device.pem" 2>"$D/scep.err"; then
    if openssl verify -CAfile "$STATE/ca.pem" "$D/device.pem" >/dev/null 2>&1; then
        pass "pki enrolls with the printed url and challenge; the certificate verifies"
    else
        fail "the certificate from the demo does not verify against $STATE/ca.pem"
    fi
else
    fail "enrollment with the printed instructions failed:"
    grep -hv -e plugin -e TPM "$D/scepca.out" "$D/scep.err" 2>/dev/null | sed 's/^/       | /' | tail -15
fi

# the printed way of registering a single device, while Apache serves
DEV_CHAL=$(timeout 30 "$TOP/scepreg" -g "$DB" device2.example.org 2>/dev/null || true)
expect_match "$DEV_CHAL" '^[0-9a-f]{32}$' "scepreg -g registers a device and prints its challenge"
# a key of its own: strongSwan derives the transactionID from the key, and a second,
# different request under a recorded transactionID is refused
timeout 60 pki --gen --type rsa --size 2048 --outform pem >"$D/device2.key" 2>/dev/null
if timeout 120 pki --scep --url "$URL" --in "$D/device2.key" --dn "CN=device2.example.org" \
        --password "$DEV_CHAL" --cacert-enc "$D/ra.der" --cacert-sig "$D/ra.der" \
        --cacert "$D/ca.der" --outform pem >"$D/device2.pem" 2>"$D/scep2.err" \
    && openssl verify -CAfile "$STATE/ca.pem" "$D/device2.pem" >/dev/null 2>&1; then
    pass "the device registered with scepreg enrolls at once"
else
    fail "the device registered with scepreg did not enroll"
fi

# The done-when of the MDM endpoint: John's iPhone with an e-mail, a UPN and an Intune SID
# URI, exactly as the printed instructions write them, gets exactly those, clientAuth and
# the SID security extension
pki_cmd=$(sed -n '/^  pki --scep --url .*scep-mdm/,/--outform pem > phone.pem/p' "$T/demo.out" \
          | tr -d '\\\n')
expect_match "$pki_cmd" "asn1gn:#a0" "demo.sh prints an MDM enrollment with a UPN and a URI"
upn_hex=$(grep -o 'asn1gn:#a0[0-9a-f]*' <<<"$pki_cmd" | head -1)
sid_hex=$(grep -o 'asn1gn:#86[0-9a-f]*' <<<"$pki_cmd" | head -1)
timeout 60 pki --gen --type rsa --size 2048 --outform pem >"$D/phone.key" 2>/dev/null
if timeout 120 pki --scep --url "$MDM_URL" --in "$D/phone.key" --dn "CN=John's iPhone" \
        --san email:john@example.org --san "$upn_hex" --san "$sid_hex" \
        --password "$MDM_CHAL" --cacert-enc "$D/ra.der" --cacert-sig "$D/ra.der" \
        --cacert "$D/ca.der" --outform pem >"$D/phone.pem" 2>"$D/phone.err" \
    && openssl verify -CAfile "$STATE/ca.pem" "$D/phone.pem" >/dev/null 2>&1; then
    pass "pki enrolls John's iPhone at the printed mdm-url with the mdm-challenge"
    text=$(openssl x509 -in "$D/phone.pem" -noout -text)
    expect_eq "$(openssl x509 -in "$D/phone.pem" -noout -subject -nameopt RFC2253)" \
        "subject=CN=John's iPhone" "the subject is the device name, exactly"
    san=$(grep -A1 'Subject Alternative Name' <<<"$text" | tail -1 | sed 's/^ *//')
    expect_eq "$san" \
        "email:john@example.org, othername: UPN::john@example.org, URI:tag:microsoft.com,2022-09-14:sid:S-1-5-21-1-2-3-1001" \
        "the SANs are the e-mail, the UPN and the SID URI, nothing else"
    expect_eq "$(grep -A1 'Extended Key Usage' <<<"$text" | tail -1 | sed 's/^ *//')" \
        "TLS Web Client Authentication" "the EKU is clientAuth alone"
    if openssl x509 -in "$D/phone.pem" -outform DER \
            | openssl asn1parse -inform DER 2>/dev/null | grep -q '1.3.6.1.4.1.311.25.2'; then
        pass "the certificate carries the SID security extension"
    else
        fail "the certificate lacks the SID security extension (1.3.6.1.4.1.311.25.2)"
    fi
else
    fail "enrollment of John's iPhone at /scep-mdm failed:"
    grep -hv -e plugin -e TPM "$D/phone.err" 2>/dev/null | sed 's/^/       | /' | tail -15
fi
# a name the template does not take (a dNSName) is refused, not copied
timeout 60 pki --gen --type rsa --size 2048 --outform pem >"$D/smuggle.key" 2>/dev/null
if timeout 60 pki --scep --url "$MDM_URL" --in "$D/smuggle.key" --dn "CN=Jane's iPad" \
        --san email:jane@example.org --san dns:intranet.example.org \
        --password "$MDM_CHAL" --cacert-enc "$D/ra.der" --cacert-sig "$D/ra.der" \
        --cacert "$D/ca.der" --maxpolltime 1 --outform pem >"$D/smuggle.pem" 2>/dev/null; then
    fail "a dNSName smuggled into an MDM request was issued"
else
    pass "a dNSName smuggled into an MDM request is refused"
fi
if grep -q 'SCEP00631.*dNSName' "$T/demo.err"; then
    pass "the refusal is logged, naming the dNSName (SCEP00631)"
else
    fail "no SCEP00631 line names the smuggled dNSName"
fi
# each endpoint's challenge works at its own endpoint only
timeout 60 pki --gen --type rsa --size 2048 --outform pem >"$D/cross.key" 2>/dev/null
if timeout 60 pki --scep --url "$MDM_URL" --in "$D/cross.key" --dn "CN=Jane's iPad" \
        --password "$CHAL" --cacert-enc "$D/ra.der" --cacert-sig "$D/ra.der" \
        --cacert "$D/ca.der" --maxpolltime 1 --outform pem >"$D/cross.pem" 2>/dev/null; then
    fail "the /scep challenge enrolled a device name at /scep-mdm"
else
    pass "the /scep challenge does not enroll at /scep-mdm"
fi

key_mode=$(stat -c %a "$STATE/ca.key")
expect_eq "$key_mode" 600 "the demo CA key is readable by its owner only"

if stop_demo; then
    pass "SIGTERM to demo.sh stops Apache and all its children"
else
    fail "Apache was still running 10 s after SIGTERM"
fi
DEMO_PID=""
if curl -s --max-time 2 "$URL?operation=GetCACaps" >/dev/null 2>&1; then
    fail "port $DEMO_PORT still answers after SIGTERM"
else
    pass "port $DEMO_PORT is closed after SIGTERM"
fi
t_done

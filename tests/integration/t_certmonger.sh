#!/usr/bin/env bash
# certmonger (0.79.17) against mod_scep: scep-submit -c / -C standalone, then complete
# enrollments through a private certmonger daemon on a private session bus (it uses GET),
# with CA+RA out of the box and with a lone CA given as -N.  See CLIENTS.md.
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
export CERTMONGER_CONFIG_DIR=$C/config CERTMONGER_CAS_DIR=$C/cas \
    CERTMONGER_REQUESTS_DIR=$C/requests CERTMONGER_LOCAL_CA_DIR=$C/localca \
    CERTMONGER_TMPDIR=$C/tmp CERTMONGER_SYSTEM_LOCK_FILE=$C/lock
mkdir -p "$C/config" "$C/cas" "$C/requests" "$C/localca" "$C/tmp" "$C/out"

# Runs inside the private bus, under the daemon (certmonger -c); one line per result.
cat >"$C/inner.sh" <<'INNER'
set -u
C=$1 URL=$2 LONE_URL=$3 CHAL=$4 LONE_CA=$5 REG_URL=$6 REG_CHAL=$7
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
run getcert list -s
INNER
rc=0
timeout 400 dbus-run-session -- certmonger -s -n -B -c \
    "bash $C/inner.sh $C $URL http://127.0.0.1:$PORT/lone $CHAL $T/pki2/ca.pem http://127.0.0.1:$PORT/reg $REG_CHAL" \
    >"$C/daemon.out" 2>&1 || rc=$?
expect_eq "$rc" 0 "private certmonger daemon ran the enrollments"

# cm_check NAME RESULT CERT KEY CAPEM CN
cm_check() {
    local what=$1 result=$2 cert=$3 key=$4 capem=$5 cn=$6
    local got
    got=$(sed -n "s/^result $result //p" "$C/daemon.out")
    if [[ "$got" != 0 ]]; then
        fail "$what: getcert exited '${got:-never ran}':"
        grep -v '^dbus-daemon' "$C/daemon.out" | sed 's/^/       | /' | tail -40
        return
    fi
    pass "$what: getcert request -w succeeded"
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
t_done

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scepreg pki init: the files it writes serve real clients as they are, with the
# <Location> it prints pasted unchanged into httpd's configuration: strongSwan enrolls
# against a new RSA CA and an existing CA given with --ca-cert, certmonger (GET, trusting
# the CA only) against the RSA one, the probe against a new EC P-256 CA.  It refuses to replace
# any file (a planted link included), --dry-run writes nothing, and bad values are
# refused with scepreg's exit codes.
source "$(dirname "$0")/lib.sh"
t_init
require_module
require_probe
command -v pki >/dev/null || die "strongSwan's pki is not installed (strongswan-pki)"
for tool in certmonger getcert dbus-run-session; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
SCEPREG_BIN=${SCEPREG:-$TOP/scepreg}

# init OUT ARGS...: scepreg pki init with its stdout in $T/OUT.out, stderr in .err; status
init() {
    local out=$1 rc=0
    shift
    timeout 120 "$SCEPREG_BIN" pki init "$@" >"$T/$out.out" 2>"$T/$out.err" || rc=$?
    return $rc
}
# tree DIR: every file below DIR with its mode and hash, to see that nothing changed
tree() {
    find "$1" -exec stat -c '%n %a %s' {} + | sort
    find "$1" -type f -exec sha256sum {} + | sort
}

# ---- --dry-run writes nothing ----
rc=0
init dry --dry-run --org "mod_scep tests" --location /scep --db "$T/db" "$T/pki" || rc=$?
expect_eq "$rc" 0 "--dry-run: exit 0"
[[ ! -e "$T/pki" ]] && pass "--dry-run: the folder was not created" \
    || fail "--dry-run: created $T/pki"
expect_file_contains "$T/dry.out" \
    "# would write $T/pki/ca.key: the CA key (RSA 3072), mode 0600" \
    "--dry-run: says it would write the CA key, mode 0600"
expect_file_contains "$T/dry.out" "# would write $T/pki/ra.pem: the RA certificate" \
    "--dry-run: says it would write the RA certificate"
expect_file_contains "$T/dry.out" "ScepRAKeyFile         $T/pki/ra.key" \
    "--dry-run: prints the <Location>"

# ---- three CAs: new RSA, new EC, existing ----
init rsa --org "mod_scep tests" --location /scep --db "$T/db" "$T/pki" \
    || die "pki init (RSA): $(cat "$T/rsa.err")"
init ec --key-type ec:P-256 --ca-name "EC test CA" --location /ec --db "$T/db" "$T/pki-ec" \
    || die "pki init (EC): $(cat "$T/ec.err")"
mkdir -m 700 "$T/pki-ra2"
init ra2 --ca-cert "$T/pki/ca.pem" --ca-key "$T/pki/ca.key" --ra-name "second RA" \
    --ra-key-type rsa:3072 --ra-days 90 --location /ra2 --db "$T/db" "$T/pki-ra2" \
    || die "pki init (existing CA): $(cat "$T/ra2.err")"
pass "pki init made a new RSA CA, a new EC CA and an RA of an existing CA"

expect_eq "$(stat -c '%a %u' "$T/pki" "$T/pki/ca.key" "$T/pki/ra.key" "$T/pki/ca.pem" \
    "$T/pki/ra.pem" | tr '\n' ' ')" \
    "700 $(id -u) 600 $(id -u) 600 $(id -u) 644 $(id -u) 644 $(id -u) " \
    "modes and owner: folder 0700, keys 0600, certificates 0644, all the caller's"
expect_eq "$(ls "$T/pki-ra2" | tr '\n' ' ')" "ra.key ra.pem " \
    "existing CA: only the RA's files are written"
expect_file_contains "$T/ra2.out" "ScepCACertificateFile $T/pki/ca.pem" \
    "existing CA: the <Location> names the CA where it is"
ra_text=$(openssl x509 -in "$T/pki/ra.pem" -noout -text)
expect_match "$ra_text" $'X509v3 Key Usage: critical\n *Digital Signature, Key Encipherment' \
    "RA: critical keyUsage digitalSignature, keyEncipherment"
expect_match "$ra_text" $'Basic Constraints: critical\n *CA:FALSE' "RA: CA:FALSE"
expect_match "$ra_text" "Public Key Algorithm: rsaEncryption" "RA: an RSA key"
ca_text=$(openssl x509 -in "$T/pki/ca.pem" -noout -text)
expect_match "$ca_text" $'X509v3 Key Usage: critical\n *Certificate Sign, CRL Sign' \
    "CA: keyCertSign and cRLSign only (no client mistakes it for the RA)"
expect_match "$ca_text" "Public-Key: \\(3072 bit\\)" "CA: RSA 3072 by default"
expect_match "$(openssl x509 -in "$T/pki-ec/ca.pem" -noout -text)" "NIST CURVE: P-256" \
    "--key-type ec:P-256: an EC P-256 CA"
expect_match "$(openssl x509 -in "$T/pki-ra2/ra.pem" -noout -text)" \
    "Public-Key: \\(3072 bit\\)" \
    "--ra-key-type rsa:3072"
for d in pki pki-ec; do
    expect_eq "$(timeout 30 openssl verify -CAfile "$T/$d/ca.pem" "$T/$d/ra.pem" 2>&1)" \
        "$T/$d/ra.pem: OK" "$d: the RA certificate verifies under its CA"
done

# ---- the printed <Location>s, pasted as they are ----
CHAL=$(openssl rand -hex 12)
timeout 60 "$SCEPREG_BIN" -c -b "$T/db" '*.example.org' "$CHAL" 2>/dev/null \
    || die "scepreg could not register *.example.org"
httpd_conf "$(cat "$T/rsa.out" "$T/ec.out" "$T/ra2.out")"
httpd_start || t_done
S=$T/swan
mkdir -p "$S"

# swan LOCATION CAPEM: --scepca and --scep at LOCATION; the certificate verifies under CAPEM
swan() {
    local loc=$1 capem=$2 rc=0 url="http://127.0.0.1:$PORT$1" d="$S${1//\//_}"
    mkdir -p "$d"
    # a key of its own: strongSwan's transactionID is the key's hash, and the endpoints
    # share one device database, which refuses a transactionID seen with another request
    timeout 300 pki --gen --type rsa --size 2048 --outform pem >"$d/device.key" 2>"$d/gen.err" \
        || die "pki --gen failed: $(grep -v plugin "$d/gen.err")"
    timeout 60 pki --scepca --url "$url" --caout "$d/ca.der" --raout "$d/ra.der" --force \
        >"$d/scepca.out" 2>&1 || rc=$?
    [[ -f "$d/ra.der" ]] || { [[ -f "$d/ra-1.der" ]] && cp "$d/ra-1.der" "$d/ra.der"; }
    if ((rc != 0)) || [[ ! -f "$d/ra.der" ]]; then
        fail "strongSwan at $loc: pki --scepca failed"
        grep -v -e plugin -e TPM "$d/scepca.out" | sed 's/^/       | /' | tail -10
        return
    fi
    timeout 120 pki --scep --url "$url" --in "$d/device.key" \
        --dn "CN=swan${loc//\//}.example.org" --password "$CHAL" --cacert-enc "$d/ra.der" \
        --cacert-sig "$d/ra.der" --cacert "$d/ca.der" --outform pem \
        >"$d/cert.pem" 2>"$d/scep.err" || rc=$?
    if ((rc != 0)) || ! grep -q 'BEGIN CERTIFICATE' "$d/cert.pem"; then
        fail "strongSwan at $loc: exit $rc, no certificate:"
        grep -v -e plugin -e TPM "$d/scep.err" | sed 's/^/       | /' | tail -15
        return
    fi
    local under
    under=$(basename "$(dirname "$capem")")
    expect_eq "$(timeout 30 openssl verify -CAfile "$capem" "$d/cert.pem" 2>&1)" \
        "$d/cert.pem: OK" "strongSwan enrolled at $loc; the certificate verifies under $under"
}
swan /scep "$T/pki/ca.pem"
# strongSwan's pki on Debian 12 parses no EC certificate (its openssl plugin is not
# loaded): the probe enrolls at the EC CA instead, GET as certmonger and Cisco send it
enroll ecdevice.example.org /ec GET-std "$T/pki-ec/ra.pem" "$T/pki-ec/ca.pem" \
    "$T/pki-ec/ra.pem" --challenge "$CHAL" || true
swan /ra2 "$T/pki/ca.pem"

# certmonger trusts the CA only and uses GET: the RA it is served must be right for it
C=$T/cm
if certmonger_enroll "$C" "http://127.0.0.1:$PORT/scep" "$CHAL" PkiInit \
        -N "CN=certmonger.example.org" -D certmonger.example.org; then
    expect_eq "$(timeout 30 openssl verify -CAfile "$T/pki/ca.pem" "$C/out/cert.pem" 2>&1)" \
        "$C/out/cert.pem: OK" "certmonger enrolled at /scep; the certificate verifies"
else
    fail "certmonger at /scep:"
    certmonger_said "$C"
fi
httpd_stop

# ---- refusals: nothing replaced, nothing written ----
before=$(tree "$T/pki")
rc=0
init again "$T/pki" || rc=$?
expect_eq "$rc" 1 "a second init on the same folder: exit 1"
expect_file_contains "$T/again.err" "'$T/pki/ca.key' exists: nothing was written" \
    "a second init: says which file exists"
rm "$T/pki/ra.pem"
rc=0
init again2 --ca-cert "$T/pki/ca.pem" --ca-key "$T/pki/ca.key" "$T/pki" || rc=$?
expect_eq "$rc" 1 "existing CA into a folder whose ra.key remains: exit 1"
rc=0
init again3 --dry-run "$T/pki" || rc=$?
expect_eq "$rc" 1 "--dry-run on a folder that holds the files: exit 1 as well"
after=$(tree "$T/pki")
expect_eq "$after" "$(grep -v "$T/pki/ra.pem" <<<"$before")" \
    "the refused runs changed no file (only the ra.pem removed by the test is gone)"

mkdir -m 700 "$T/planted"
ln -s "$T/stolen.key" "$T/planted/ra.key"
rc=0
init planted --ca-cert "$T/pki-ec/ca.pem" --ca-key "$T/pki-ec/ca.key" "$T/planted" || rc=$?
expect_eq "$rc" 1 "a link planted where ra.key goes: exit 1"
[[ ! -e "$T/stolen.key" ]] && pass "the link's target was not written" \
    || fail "the RA key was written through a planted link"

mkdir -m 770 "$T/shared"
rc=0
init shared "$T/shared" || rc=$?
expect_eq "$rc" 1 "a group-writable folder: exit 1"
expect_eq "$(ls -A "$T/shared")" "" "a group-writable folder: nothing written into it"

mkdir -m 700 "$T/dry2"
rc=0
init dry2 --dry-run --ca-cert "$T/pki-ec/ca.pem" --ca-key "$T/pki-ec/ca.key" "$T/dry2" || rc=$?
expect_eq "$rc:$(ls -A "$T/dry2")" "0:" "--dry-run with an existing CA: exit 0, nothing written"

# ---- bad values ----
# bad EXIT WHAT ARGS...
bad() {
    local want=$1 what=$2 rc=0
    shift 2
    init bad "$@" "$T/bad" || rc=$?
    expect_eq "$rc:$([[ -e "$T/bad" ]] && echo made)" "$want:" "refused ($want): $what"
}
bad 2 "--key-type rsa:1024" --key-type rsa:1024
bad 2 "an EC RA key (clients encrypt to the RA with RSA)" --ra-key-type ec:P-256
bad 2 "--ca-cert without --ca-key" --ca-cert "$T/pki/ca.pem"
bad 2 "--ca-days 0" --ca-days 0
bad 6 "a --location with a blank" --location "/a b"
bad 6 "a relative --db" --db devices
bad 6 "a CN longer than 64 bytes" --ca-name "$(printf 'x%.0s' {1..65})"
bad 6 "an RA certificate as the CA" --ca-cert "$T/pki-ra2/ra.pem" --ca-key "$T/pki-ra2/ra.key"
bad 6 "a CA key that does not match" --ca-cert "$T/pki/ca.pem" --ca-key "$T/pki-ec/ca.key"
cp "$T/pki/ca.key" "$T/ca-0640.key"
chmod 640 "$T/ca-0640.key"
bad 6 "a CA key others may read (httpd would refuse it)" --ca-cert "$T/pki/ca.pem" \
    --ca-key "$T/ca-0640.key"
t_done

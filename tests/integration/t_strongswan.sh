#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# strongSwan's pki tool (5.9.8) against mod_scep: --scepca, then --scep enrollments (it
# always POSTs) with AES and 3DES, SHA-256 and SHA-1, RSA keys of 2048/3072/4096 bits.
# See /work/shared/CLIENTS.md for its quirks.
source "$(dirname "$0")/lib.sh"
t_init
require_module
command -v pki >/dev/null || die "strongSwan's pki is not installed (strongswan-pki)"

make_pki "$T/pki" Swan
CHAL=$(openssl rand -hex 12)
httpd_conf "$(scep_location /scep "$T/pki" ra "ScepChallenge $CHAL")"
httpd_start || t_done
URL="http://127.0.0.1:$PORT/scep"
S=$T/swan
mkdir -p "$S"

# pki prints "plugin ... failed to load" and TPM lines on stderr: kept in files, shown
# only when a command fails
if timeout 60 pki --scepca --url "$URL" --caout "$S/ca.der" --raout "$S/ra.der" --force \
    >"$S/scepca.out" 2>&1; then
    pass "pki --scepca"
else
    fail "pki --scepca failed:"
    grep -v -e 'plugin' -e 'TPM' "$S/scepca.out" | sed 's/^/       | /' | tail -20
fi
# with several RA certificates pki would write ra-1.der, ...; we serve one
[[ -f "$S/ra.der" ]] || { [[ -f "$S/ra-1.der" ]] && cp "$S/ra-1.der" "$S/ra.der"; }
if [[ -f "$S/ca.der" ]] && cmp -s "$S/ca.der" <(openssl x509 -in "$T/pki/ca.pem" -outform DER); then
    pass "pki --scepca: the CA certificate is ours"
else
    fail "pki --scepca: no CA certificate or not ours"
fi
if [[ -f "$S/ra.der" ]] && cmp -s "$S/ra.der" <(openssl x509 -in "$T/pki/ra.pem" -outform DER); then
    pass "pki --scepca: the RA certificate is ours"
else
    fail "pki --scepca: no RA certificate or not ours"
    # go on with our own copies so the enrollments are still tested
    openssl x509 -in "$T/pki/ca.pem" -outform DER -out "$S/ca.der"
    openssl x509 -in "$T/pki/ra.pem" -outform DER -out "$S/ra.der"
fi

# swan_enroll NAME KEY CIPHER DIGEST [more pki options]
swan_enroll() {
    local name=$1 key=$2 cipher=$3 digest=$4 rc=0
    shift 4
    timeout 120 pki --scep --url "$URL" --in "$key" --dn "O=mod_scep tests, CN=$name" \
        --password "$CHAL" --cacert-enc "$S/ra.der" --cacert-sig "$S/ra.der" \
        --cacert "$S/ca.der" --cipher "$cipher" --digest "$digest" --outform pem "$@" \
        >"$S/$name.pem" 2>"$S/$name.err" || rc=$?
    local what="pki --scep $name (cipher $cipher, digest $digest${*:+, $*})"
    if ((rc != 0)) || ! grep -q 'BEGIN CERTIFICATE' "$S/$name.pem"; then
        fail "$what: exit $rc, no certificate:"
        grep -v -e 'plugin' -e 'TPM' "$S/$name.err" | sed 's/^/       | /' | tail -15
        return
    fi
    if timeout 30 openssl verify -CAfile "$T/pki/ca.pem" "$S/$name.pem" >"$S/$name.verify" 2>&1; then
        pass "$what: certificate verified"
    else
        fail "$what: openssl verify: $(tr '\n' ' ' <"$S/$name.verify")"
        return
    fi
    if [[ "$(openssl x509 -in "$S/$name.pem" -noout -pubkey)" == "$(openssl pkey -in "$key" -pubout)" ]]; then
        pass "$what: the certificate carries the device key"
    else
        fail "$what: the certificate carries another key"
    fi
    expect_match "$(openssl x509 -in "$S/$name.pem" -noout -subject -nameopt RFC2253)" \
        "CN=$name" "$what: subject"
}

for bits in 2048 3072 4096; do
    timeout 300 pki --gen --type rsa --size "$bits" --outform pem >"$S/key$bits.pem" 2>"$S/gen.err" \
        || die "pki --gen --size $bits failed: $(grep -v plugin "$S/gen.err")"
    chmod 600 "$S/key$bits.pem"
    for cipher in aes des3; do
        for digest in sha256 sha1; do
            swan_enroll "swan-$bits-$cipher-$digest" "$S/key$bits.pem" "$cipher" "$digest"
        done
    done
done
swan_enroll swan-2048-pss "$S/key2048.pem" aes sha256 --rsa-padding pss

# strongSwan always POSTs
n=$(grep -cE '^POST /scep 200 application/x-pki-message \?operation=PKIOperation' "$ACCESS_LOG" || true)
expect_eq "$n" 13 "13 PKIOperation POSTs answered 200 application/x-pki-message"

httpd_stop || fail "httpd did not stop cleanly"
check_error_log
expect_log_lacks "$CHAL" "the challenge never appears in the error log"
t_done

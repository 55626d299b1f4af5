#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What the issued certificates contain (spec "Issued certificates" and the ScepValidityDays,
# ScepKeyUsage, ScepExtendedKeyUsage, ScepSubject directives): serial, SKI/AKI,
# basicConstraints, keyUsage/EKU, SHA-256, validity with 5 minutes of backdating and never
# beyond the CA, subject policy, SANs copied, Cisco unstructuredName/Address mapped to SANs.
source "$(dirname "$0")/lib.sh"
t_init
require_module
require_probe

make_pki "$T/pki" Issue
CHAL=$(openssl rand -hex 12)
httpd_conf "$(
    scep_location /scep "$T/pki" ra "ScepChallenge $CHAL"
    scep_location /custom "$T/pki" ra "ScepChallenge $CHAL" "ScepValidityDays 30" \
        "ScepKeyUsage digitalSignature" "ScepExtendedKeyUsage serverAuth 1.3.6.1.5.5.7.3.17" \
        "ScepSubject cn"
    scep_location /noeku "$T/pki" ra "ScepChallenge $CHAL" "ScepExtendedKeyUsage none"
    scep_location /long "$T/pki" ra "ScepChallenge $CHAL" "ScepValidityDays 10000"
)"
httpd_start || t_done
RA=$T/pki/ra.pem
CA=$T/pki/ca.pem

ext() { openssl x509 -in "$1" -noout -ext "$2" 2>/dev/null | sed -n '2,$p' | sed 's/^ *//' | tr '\n' ' ' | sed 's/ *$//'; }
epoch() { date -u -d "$(openssl x509 -in "$1" -noout "-$2" | cut -d= -f2)" +%s; }

# ---- defaults ----
now=$(date -u +%s)
if enroll iss1 /scep POST "$RA" "$CA" "$RA" --challenge "$CHAL" \
    --subject "/CN=iss1/O=mod_scep tests" --san-dns iss1.example.com; then
    C=$T/iss1.pem
    serial=$(openssl x509 -in "$C" -noout -serial | cut -d= -f2)
    expect_match "$serial" '^[0-9A-F]{26,34}$' "serial is a positive number of about 128 bits ($serial)"
    expect_match "$(ext "$C" basicConstraints)" '^(critical )?CA:FALSE$' "basicConstraints CA:FALSE"
    expect_match "$(ext "$C" keyUsage)" '^(critical )?Digital Signature, Key Encipherment$' \
        "keyUsage digitalSignature keyEncipherment by default"
    expect_eq "$(ext "$C" extendedKeyUsage)" "TLS Web Client Authentication" "EKU clientAuth by default"
    ski=$(ext "$C" subjectKeyIdentifier)
    expect_match "$ski" '^[0-9A-F]{2}(:[0-9A-F]{2})+$' "subjectKeyIdentifier present"
    expect_eq "$(ext "$C" authorityKeyIdentifier | sed 's/^keyid://')" "$(ext "$CA" subjectKeyIdentifier)" \
        "authorityKeyIdentifier is the CA's key identifier"
    expect_match "$(openssl x509 -in "$C" -noout -text | grep -m1 'Signature Algorithm')" \
        'sha256WithRSAEncryption' "signed with SHA-256"
    expect_eq "$(openssl x509 -in "$C" -noout -issuer -nameopt RFC2253)" \
        "$(openssl x509 -in "$CA" -noout -subject -nameopt RFC2253 | sed 's/^subject/issuer/')" "issuer is the CA"
    expect_eq "$(openssl x509 -in "$C" -noout -subject -nameopt RFC2253)" \
        "subject=O=mod_scep tests,CN=iss1" "subject copied from the CSR (ScepSubject csr)"
    expect_eq "$(ext "$C" subjectAltName)" "DNS:iss1.example.com" "SAN copied from the CSR"
    nb=$(epoch "$C" startdate)
    na=$(epoch "$C" enddate)
    back=$((now - nb))
    if ((back >= 240 && back <= 420)); then
        pass "notBefore backdated about 5 minutes (${back}s)"
    else
        fail "notBefore is ${back}s before the request, expected about 300"
    fi
    ahead=$((na - now))
    if ((ahead >= 365 * 86400 - 600 && ahead <= 365 * 86400 + 600)); then
        pass "notAfter 365 days ahead by default"
    else
        fail "notAfter is $((ahead / 86400)) days (${ahead}s) ahead, expected 365 days"
    fi
fi
if enroll iss2 /scep POST "$RA" "$CA" "$RA" --challenge "$CHAL"; then
    s1=$(openssl x509 -in "$T/iss1.pem" -noout -serial 2>/dev/null || true)
    s2=$(openssl x509 -in "$T/iss2.pem" -noout -serial)
    [[ "$s1" != "$s2" ]] && pass "two certificates, two serials" || fail "two certificates share serial $s2"
fi

# ---- Cisco IOS style CSR: FQDN/IP in the subject, no SAN ----
if enroll cisco /scep GET-lines64 "$RA" "$CA" "$RA" --challenge "$CHAL" --digest sha1 --cipher des3 \
    --subject "/CN=router1" --unstructured-name r1.example.com --unstructured-address 192.0.2.7 \
    --serial-number FTX1234ABCD; then
    san=$(ext "$T/cisco.pem" subjectAltName)
    expect_match "$san" 'DNS:r1\.example\.com' "Cisco CSR: unstructuredName becomes a dNSName SAN"
    expect_match "$san" 'IP Address:192\.0\.2\.7' "Cisco CSR: unstructuredAddress becomes an iPAddress SAN"
fi

# ---- configured profile ----
now=$(date -u +%s)
if enroll custom /custom POST "$RA" "$CA" "$RA" --challenge "$CHAL" \
    --subject "/CN=cust1/O=Some Org/OU=Some Unit"; then
    C=$T/custom.pem
    expect_eq "$(openssl x509 -in "$C" -noout -subject -nameopt RFC2253)" "subject=CN=cust1" \
        "ScepSubject cn: only the commonName is kept"
    expect_match "$(ext "$C" keyUsage)" '^(critical )?Digital Signature$' "ScepKeyUsage digitalSignature"
    eku=$(ext "$C" extendedKeyUsage)
    expect_match "$eku" 'TLS Web Server Authentication' "ScepExtendedKeyUsage serverAuth"
    expect_match "$eku" 'ipsec Internet Key Exchange|1\.3\.6\.1\.5\.5\.7\.3\.17' "ScepExtendedKeyUsage by OID"
    if [[ "$eku" == *"Client Authentication"* ]]; then
        fail "ScepExtendedKeyUsage replaced the default, but clientAuth is still there"
    else
        pass "ScepExtendedKeyUsage replaces the default"
    fi
    ahead=$(($(epoch "$C" enddate) - now))
    if ((ahead >= 30 * 86400 - 600 && ahead <= 30 * 86400 + 600)); then
        pass "ScepValidityDays 30"
    else
        fail "ScepValidityDays 30: notAfter is ${ahead}s ahead"
    fi
fi
if enroll noeku /noeku POST "$RA" "$CA" "$RA" --challenge "$CHAL"; then
    expect_eq "$(ext "$T/noeku.pem" extendedKeyUsage)" "" "ScepExtendedKeyUsage none: no EKU extension"
fi
if enroll long /long POST "$RA" "$CA" "$RA" --challenge "$CHAL"; then
    expect_eq "$(epoch "$T/long.pem" enddate)" "$(epoch "$CA" enddate)" \
        "ScepValidityDays beyond the CA: notAfter is the CA's"
fi

httpd_stop || fail "httpd did not stop cleanly"
check_error_log
expect_log_lacks "$CHAL" "the challenge never appears in the error log"
t_done

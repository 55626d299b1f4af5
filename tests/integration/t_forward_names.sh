#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Issue 15 point 1: a forwarding gateway lets through nothing beyond the registration.
# The upstream CA certifies the device's PKCS#10 as it is, so every subject attribute,
# every name of every subjectAltName, every requested extension and every request
# attribute must be one the gateway allows for the registration.  Each attack below is a
# PKCS#10 made by openssl (sent with scep_probe --csr) that a device with the right
# challenge sends to the gateway: each must come back as a signed FAILURE badRequest with
# a log line naming what was refused, and the upstream must never see it (no POST in its
# access log, no certificate in its records).  Then the clients the forwarding tests use
# (scep_probe, a Cisco-style request, an openssl request with the usual key usages,
# strongSwan pki, certmonger) still enroll through the gateway.
source "$(dirname "$0")/lib.sh"
t_init
require_module
require_probe
SCEPREG=${SCEPREG:-$TOP/scepreg}
reg() { timeout 60 "$SCEPREG" "$@"; }

make_pki "$T/up" Upstream
issue_cert "$T/up" gw "Gateway RA" "digitalSignature,keyEncipherment"
CA=$T/up/ca.pem
GW=$T/up/gw.pem
CH=$(openssl rand -hex 12)
reg -c -b "$T/udb" '*' "$CH" 2>/dev/null || die "scepreg: upstream"
reg -c -b "$T/ddb" '*.names.example.net' "$CH" 2>/dev/null || die "scepreg: gateway wildcard"
# a router registered with its address and chassis serial, as Cisco IOS asks
reg -b -a 192.0.2.10 -s FTX1234ABCD "$T/ddb" rtr1.names.example.net "$CH" 2>/dev/null \
    || die "scepreg: rtr1"

PORT=$(free_port)
httpd_conf "$(
    scep_location /upstream "$T/up" ra "ScepDeviceDB $T/udb"
    echo "<Location /ra>"
    echo "    SetHandler scep"
    echo "    ScepCACertificateFile \"$CA\""
    echo "    ScepRACertificateFile \"$GW\""
    echo "    ScepRAKeyFile \"$T/up/gw.key\""
    echo "    ScepDeviceDB $T/ddb"
    echo "    ScepUpstreamURL http://127.0.0.1:$PORT/upstream"
    echo "    ScepUpstreamTimeout 2 5"
    echo "    ScepUpstreamRetries 0"
    echo "    Require all granted"
    echo "</Location>"
)"
httpd_start || t_done

# what reached the upstream: its PKIOperations (POST) and the certificates it recorded
upstream_posts() { grep -c '^POST /upstream ' "$ACCESS_LOG" || true; }
upstream_certs() { reg -L "$T/udb" | tail -n +2 | grep -c . || true; }

# make_csr NAME DN-LINES [EXTENSION-LINES [ATTRIBUTE-LINES]]: $T/NAME.csr.der, a PKCS#10
# by openssl with the key $T/NAME.key and the challenge; lines as in openssl.cnf (several
# CNs as 0.CN, 1.CN; further sections may follow the extension lines)
make_csr() { openssl_csr "$1" "$CH" "$2" "${3:-}" "${4:-}"; }

# hex of a dNSName-only GeneralNames: der_dns NAME-BYTES-AS-PRINTF-FORMAT
der_dns() {
    local name
    name=$(printf "$1" | od -An -v -tx1 | tr -d ' \n')
    local n=$((${#name} / 2))
    printf '30%02x82%02x%s' $((n + 2)) "$n" "$name"
}

# attack NAME WHAT LOG-ERE: the device sends $T/NAME.csr.der to the gateway; it must get
# FAILURE badRequest, the log must say what was refused, and nothing may go upstream
attack() {
    local name=$1 what=$2 ere=$3 posts certs
    posts=$(upstream_posts)
    certs=$(upstream_certs)
    probe_enrollment_request "$name" "$GW" --challenge "$CH" --csr "$T/$name.csr.der"
    send_request "$name" /ra POST
    expect_failure "$name" "$GW" 2 "$what" || true
    expect_log "$ere" "$what: the log says what was refused"
    if [[ "$(upstream_posts)" == "$posts" && "$(upstream_certs)" == "$certs" ]]; then
        pass "$what: nothing went upstream"
    else
        fail "$what: the upstream received it ($posts -> $(upstream_posts) PKIOperations," \
            "$certs -> $(upstream_certs) certificates)"
    fi
}
REFUSED='SCEP00405: .*the request also asks for'
NEVER='SCEP00420: .*the request asks for'

# ---- a legitimate request first: the gateway and the upstream work ------------------------
probe_enrollment_request ok1 "$GW" --challenge "$CH" --subject "/CN=ok1.names.example.net" \
    --san-dns ok1.names.example.net
send_request ok1 /ra POST
check_success ok1 "$GW" "$CA" "a request for the registered name only is forwarded" || true
expect_eq "$(upstream_certs)" 1 "the upstream issued it"

# ---- the subject ------------------------------------------------------------------------
make_csr cn2 $'0.CN = fwd1.names.example.net\n1.CN = b.example.org' \
    "subjectAltName = DNS:fwd1.names.example.net"
attack cn2 "a second CN b.example.org" "$REFUSED the commonName b\.example\.org, which the registration \*\.names\.example\.net does not hold"
make_csr cnfree "CN = Branch router 7" "subjectAltName = DNS:fwd1.names.example.net"
attack cnfree "a CN that is no host name" "$REFUSED the commonName Branch router 7"
make_csr org $'CN = fwd1.names.example.net\nO = Evil Corp'
attack org "an O in the subject" "$NEVER the subject attribute O=Evil Corp"
make_csr ou $'CN = fwd1.names.example.net\nOU = Domain Admins'
attack ou "an OU in the subject" "$NEVER the subject attribute OU=Domain Admins"
make_csr mail $'CN = fwd1.names.example.net\nemailAddress = admin@example.org'
attack mail "an emailAddress in the subject" "$NEVER the subject attribute emailAddress=admin@example\.org"
make_csr serial $'CN = fwd1.names.example.net\nserialNumber = FTX9999ZZZZ'
attack serial "a serialNumber the wildcard registration does not hold" \
    "$REFUSED the serialNumber FTX9999ZZZZ, which the registration \*\.names\.example\.net does not hold"

# ---- subjectAltName -------------------------------------------------------------------------
make_csr upn "CN = fwd1.names.example.net" \
    "subjectAltName = DNS:fwd1.names.example.net, otherName:1.3.6.1.4.1.311.20.2.3;UTF8:administrator@example.org"
attack upn "a UPN (otherName) SAN" "$NEVER the subjectAltName otherName msUPN"
make_csr rfc822 "CN = fwd1.names.example.net" \
    "subjectAltName = DNS:fwd1.names.example.net, email:administrator@example.org"
attack rfc822 "an rfc822Name SAN" "$NEVER the subjectAltName rfc822Name administrator@example\.org"
make_csr uri "CN = fwd1.names.example.net" \
    $'subjectAltName = @alt\n[alt]\nDNS.1 = fwd1.names.example.net\nURI.1 = tag:microsoft.com,2022-09-14:sid:S-1-5-21-1-2-3-500'
attack uri "a URI SAN (an Intune SID)" "$NEVER the subjectAltName URI tag:microsoft\.com,2022-09-14:sid:S-1-5-21-1-2-3-500"
make_csr dirname "CN = fwd1.names.example.net" \
    $'subjectAltName = DNS:fwd1.names.example.net, dirName:dir_sect\n[dir_sect]\nCN = Administrator'
attack dirname "a directoryName SAN" "$NEVER the subjectAltName directoryName CN=Administrator"
make_csr other "CN = fwd1.names.example.net" \
    "subjectAltName = DNS:fwd1.names.example.net, DNS:b.example.org"
attack other "a dNSName of another host" "$REFUSED the dNSName b\.example\.org, which the registration"
make_csr nul "CN = fwd1.names.example.net" \
    "subjectAltName = DER:$(der_dns 'fwd1.names.example.net\0.b.example.org')"
attack nul "a dNSName with a NUL byte" "$NEVER a dNSName that is no host name: fwd1\.names\.example\.net[\\]+x00\.b\.example\.org"
long=$(printf 'a%.0s' {1..60})
long="$long.$long.$long.$long.fwd1.names.example.net"
make_csr long "CN = fwd1.names.example.net" "subjectAltName = DNS:$long"
attack long "a dNSName of ${#long} characters" "$NEVER a dNSName that is no host name: a{20}.*\(${#long} bytes\)"
make_csr san2 "CN = fwd1.names.example.net" \
    $'subjectAltName = DNS:fwd1.names.example.net\n2.5.29.17 = DER:'"$(der_dns 'b.example.org')"
attack san2 "a second subjectAltName extension" "$NEVER the extension subjectAltName twice"
make_csr ip "CN = fwd1.names.example.net" \
    "subjectAltName = DNS:fwd1.names.example.net, IP:192.0.2.99"
attack ip "an iPAddress the registration lacks" "$REFUSED the iPAddress 192\.0\.2\.99, which the registration"

# ---- requested extensions and attributes ------------------------------------------------------
make_csr ca "CN = fwd1.names.example.net" "basicConstraints = critical,CA:TRUE"
attack ca "basicConstraints CA:TRUE" "$NEVER the extension basicConstraints with cA TRUE"
make_csr kcs "CN = fwd1.names.example.net" "keyUsage = critical,digitalSignature,keyCertSign,cRLSign"
attack kcs "keyUsage keyCertSign" "$NEVER the keyUsage keyCertSign"
make_csr eku "CN = fwd1.names.example.net" "extendedKeyUsage = clientAuth,codeSigning"
attack eku "extendedKeyUsage codeSigning" "$NEVER the extendedKeyUsage codeSigning"
make_csr unknown "CN = fwd1.names.example.net" "1.3.6.1.4.1.99999.7 = ASN1:UTF8String:anything"
attack unknown "an unknown extension" "$NEVER the extension 1\.3\.6\.1\.4\.1\.99999\.7"
make_csr badku "CN = fwd1.names.example.net" "keyUsage = DER:0c03616263"
attack badku "a keyUsage that does not decode" "$NEVER an extension keyUsage that does not decode"
make_csr nvp "CN = fwd1.names.example.net" "" \
    "1.3.6.1.4.1.311.13.2.1 = CertificateTemplate:SubCA"
attack nvp "an enrollmentNameValuePair attribute (ADCS template)" \
    "$NEVER the request attribute 1\.3\.6\.1\.4\.1\.311\.13\.2\.1"

# ---- what real clients send still goes through --------------------------------------------------
make_csr usual "CN = fwd2.names.example.net" \
    $'subjectAltName = DNS:fwd2.names.example.net\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\nextendedKeyUsage = clientAuth,serverAuth\nsubjectKeyIdentifier = hash'
probe_enrollment_request usual "$GW" --challenge "$CH" --csr "$T/usual.csr.der"
send_request usual /ra POST
check_success usual "$GW" "$CA" "key usages, clientAuth/serverAuth, CA:FALSE and a key identifier are forwarded" || true

probe_enrollment_request rtr1 "$GW" --challenge "$CH" --subject "/CN=rtr1" \
    --unstructured-name rtr1.names.example.net --unstructured-address 192.0.2.10 \
    --serial-number FTX1234ABCD
send_request rtr1 /ra POST
check_success rtr1 "$GW" "$CA" "a Cisco-style request (short CN, unstructuredName/Address, serialNumber) is forwarded" || true
make_csr rtr1b $'CN = rtr1\nunstructuredName = rtr1.names.example.net\nunstructuredAddress = 192.0.2.10\nserialNumber = FTX1234ABCD' \
    "subjectAltName = IP:192.0.2.11"
attack rtr1b "an iPAddress beside the registered address" "$REFUSED the iPAddress 192\.0\.2\.11, which the registration rtr1\.names\.example\.net does not hold"

if command -v pki >/dev/null; then
    S=$T/swan
    mkdir -p "$S"
    openssl x509 -in "$CA" -outform DER -out "$S/ca.der"
    openssl x509 -in "$GW" -outform DER -out "$S/gw.der"
    timeout 60 pki --gen --type rsa --size 2048 --outform pem >"$S/key.pem" 2>/dev/null
    if timeout 120 pki --scep --url "http://127.0.0.1:$PORT/ra" --in "$S/key.pem" \
        --dn "CN=swan.names.example.net" --san swan.names.example.net --password "$CH" \
        --cacert-enc "$S/gw.der" --cacert-sig "$S/gw.der" --cacert "$S/ca.der" \
        --outform pem >"$S/cert.pem" 2>"$S/err" \
        && openssl verify -CAfile "$CA" "$S/cert.pem" >/dev/null 2>&1; then
        pass "strongSwan pki --scep enrolls through the gateway"
    else
        fail "strongSwan through the gateway: $(grep -v -e plugin -e TPM "$S/err" | tail -3)"
    fi
fi

# certmonger asks for basicConstraints CA:FALSE and a subjectKeyIdentifier, and sends a
# friendlyName attribute: a private daemon on a private bus (see t_certmonger.sh)
if command -v certmonger >/dev/null && command -v dbus-run-session >/dev/null; then
    C=$T/cm
    certmonger_private "$C"
    cat >"$C/inner.sh" <<'INNER'
C=$1 URL=$2 CH=$3
timeout 60 getcert add-scep-ca -s -c Gateway -u "$URL"
timeout 120 getcert request -s -c Gateway -f "$C/out/cert.pem" -k "$C/out/key.pem" \
    -N "CN=cm.names.example.net" -D cm.names.example.net -L "$CH" -w -v
echo "result request $?"
INNER
    timeout 300 dbus-run-session -- certmonger -s -n -B -c \
        "bash $C/inner.sh $C http://127.0.0.1:$PORT/ra $CH" >"$C/daemon.out" 2>&1 || true
    if [[ "$(sed -n 's/^result request //p' "$C/daemon.out")" == 0 ]] \
        && openssl verify -CAfile "$CA" "$C/out/cert.pem" >/dev/null 2>&1; then
        pass "certmonger enrolls through the gateway"
    else
        fail "certmonger through the gateway:"
        grep -v '^dbus-daemon' "$C/daemon.out" | tail -15 | sed 's/^/       | /'
    fi
fi

httpd_stop || fail "httpd did not stop cleanly"
check_error_log '\[scep:warn\] .*SCEP00431: ' '\[scep:warn\] .*SCEP0040[5]: ' '\[scep:warn\] .*SCEP00420: ' \
    '\[scep:warn\] .*SCEP00212: '
expect_log_lacks "$CH" "the challenge never appears in the error log"
t_done

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Certificate templates (issue 17, points 2, 4 and 6): real clients enroll at endpoints
# with ScepTemplate presets and rules, and every certificate is read back field by field
# (openssl x509 -text, asn1parse for the UPN otherName and the SID security extension).
# strongSwan's pki makes its own request; openssl req makes the MDM-style and the hostile
# ones (sent by scep_probe --csr); certmonger enrolls a user for S/MIME.  Each hostile
# request is refused under ScepTemplateUnlisted refuse and certified without what it
# smuggled under drop, each time with the log line that names it.
source "$(dirname "$0")/lib.sh"
t_init
require_module
command -v pki >/dev/null || die "strongSwan's pki is not installed (strongswan-pki)"

make_pki "$T/pki" Tmpl
CA=$T/pki/ca.pem
RA=$T/pki/ra.pem
CH=$(openssl rand -hex 12)
SID=S-1-5-21-1004336348-1177238915-682003330-1001
SID_URI="tag:microsoft.com,2022-09-14:sid:$SID"
KU_SIGN_ENC=$'Key Usage: critical\n *Digital Signature, Key Encipherment\n'
# tls-client takes no UPN or SID URI from a request (the request would choose the account
# Windows maps the certificate to): an MDM endpoint that trusts its profile writes them out
MDM=("ScepTemplate tls-client" "ScepTemplateSAN dNSName request"
     "ScepTemplateSAN rfc822Name request" "ScepTemplateSAN upn request"
     "ScepTemplateSAN URI request 1 tag:microsoft.com,2022-09-14:sid:")
httpd_conf "$(
    scep_location /mdm "$T/pki" ra "ScepChallenge $CH" "${MDM[@]}"
    scep_location /mdm-drop "$T/pki" ra "ScepChallenge $CH" "${MDM[@]}" \
        "ScepTemplateUnlisted drop"
    scep_location /plain "$T/pki" ra "ScepChallenge $CH" "ScepTemplate tls-client"
    scep_location /smime "$T/pki" ra "ScepChallenge $CH" "ScepKeyUsage digitalSignature" \
        "ScepTemplate smime-both" "ScepTemplateSubject CN request" \
        "ScepTemplateSubject O fixed \"Example Org\"" "ScepTemplateSAN rfc822Name request"
    scep_location /user "$T/pki" ra "ScepChallenge $CH" "ScepTemplate smime-both"
    scep_location /legacy "$T/pki" ra "ScepChallenge $CH" "ScepSubject cn"
)"
httpd_start || t_done

# make_csr NAME DN-LINES [EXTENSION-LINES]: $T/NAME.csr.der (openssl_csr) with the
# challenge; a quote in DN-LINES is escaped, as openssl.cnf would read it as one
make_csr() { openssl_csr "$1" "$CH" "${2//\'/\\\'}" "${3:-}"; }

# send_csr NAME PATH: $T/NAME.csr.der to PATH by scep_probe (POST); the answer in NAME.rep
send_csr() {
    probe_enrollment_request "$1" "$RA" --challenge "$CH" --csr "$T/$1.csr.der"
    send_request "$1" "$2" POST
}

# text NAME: the certificate $T/NAME.pem as openssl prints it
text() { timeout 30 openssl x509 -in "$T/$1.pem" -noout -text -nameopt RFC2253,-esc_msb; }
# subject NAME: its subject, RFC 2253, UTF-8 kept
subject() { timeout 30 openssl x509 -in "$T/$1.pem" -noout -subject -nameopt RFC2253,-esc_msb \
    | sed 's/^subject=//'; }
# sans NAME: its subjectAltName, one name a line
sans() {
    text "$1" | sed -n '/Subject Alternative Name/{n;p}' | sed 's/^ *//; s/, /\n/g'
}
# asn1 NAME: asn1parse of the certificate, parsing inside extensions' OCTET STRINGs
asn1() {
    timeout 30 openssl x509 -in "$T/$1.pem" -outform DER -out "$T/$1.der" \
        && timeout 30 openssl asn1parse -inform DER -in "$T/$1.der" -i
}
# ext_asn1 NAME OID: asn1parse of the value of the extension OID
ext_asn1() {
    local off
    off=$(asn1 "$1" | grep -A2 ":$2\$" | grep 'OCTET STRING' | head -1 | cut -d: -f1)
    off=${off// /}
    [[ -n "$off" ]] && timeout 30 openssl asn1parse -inform DER -in "$T/$1.der" \
        -strparse "$off" -i
}

# ---- strongSwan pki: a device with CN, e-mail and dNSName ---------------------------
S=$T/swan
mkdir -p "$S"
openssl x509 -in "$CA" -outform DER -out "$S/ca.der"
openssl x509 -in "$RA" -outform DER -out "$S/ra.der"
make_key "$S/key.pem" 2048
rc=0
timeout 120 pki --scep --url "http://127.0.0.1:$PORT/mdm" --in "$S/key.pem" \
    --dn "CN=John's iPhone" --san john@example.org --san dns:iphone-john.example.org \
    --password "$CH" --cacert-enc "$S/ra.der" --cacert-sig "$S/ra.der" --cacert "$S/ca.der" \
    --outform pem >"$T/swan.pem" 2>"$S/err" || rc=$?
if ((rc == 0)) && grep -q 'BEGIN CERTIFICATE' "$T/swan.pem"; then
    pass "pki --scep at tls-client: issued"
    expect_eq "$(subject swan)" "CN=John's iPhone" "pki: the subject is the CN as asked"
    expect_eq "$(sans swan | sort | tr '\n' ' ')" \
        "DNS:iphone-john.example.org email:john@example.org " "pki: the e-mail and the DNS name"
    expect_match "$(text swan)" $'Extended Key Usage: *\n *TLS Web Client Authentication\n' \
        "pki: the tls-client preset's EKU, clientAuth only"
    expect_match "$(text swan)" "$KU_SIGN_ENC" \
        "pki: the tls-client preset's key usage"
else
    fail "pki --scep at tls-client: exit $rc, no certificate:"
    grep -v -e plugin -e TPM "$S/err" | sed 's/^/       | /' | tail -10
fi

# ---- the MDM request of issue 17: CN, e-mail, UPN and the Intune SID URI -------------------
MDM_SAN=$'subjectAltName = @alt\n[alt]\nemail.1 = john@example.org\n'
MDM_SAN+=$'otherName.1 = msUPN;UTF8:john@corp.example.org\n'"URI.1 = $SID_URI"
make_csr mdm "CN = John's iPhone" "$MDM_SAN"
send_csr mdm /mdm
if check_success mdm "$RA" "$CA" "an Intune-style request (openssl req) at tls-client"; then
    expect_eq "$(subject mdm)" "CN=John's iPhone" "MDM: the CN exactly as the profile named it"
    expect_eq "$(sans mdm | tr '\n' ' ')" \
        "email:john@example.org othername: UPN::john@corp.example.org URI:$SID_URI " \
        "MDM: e-mail, UPN and SID URI, in the request's order"
    expect_match "$(ext_asn1 mdm 'X509v3 Subject Alternative Name')" \
        $'OBJECT *:Microsoft User Principal Name\n[^\n]*cont \\[ 0 \\] *\n'\
$'[^\n]*UTF8STRING *:john@corp\\.example\\.org' \
        "MDM: asn1parse shows the UPN otherName with its UTF8String"
    sid=$(ext_asn1 mdm 1.3.6.1.4.1.311.25.2)
    # SEQUENCE { [0] { OID 1.3.6.1.4.1.311.25.2.1, [0] { OCTET STRING <SID> } } }
    expect_match "$sid" $'^ *0:d=0 [^\n]*SEQUENCE *\n *2:d=1 [^\n]*cons: *cont \\[ 0 \\] *\n'\
$' *4:d=2 [^\n]*OBJECT *:1\\.3\\.6\\.1\\.4\\.1\\.311\\.25\\.2\\.1\n'\
$' *16:d=2 [^\n]*cons: *cont \\[ 0 \\] *\n *18:d=3 [^\n]*prim: *OCTET STRING *:'"$SID\$" \
        "MDM: the SID security extension, as KB5014754 encodes it"
    expect_match "$(asn1 mdm | grep -A1 ':1.3.6.1.4.1.311.25.2$')" 'OCTET STRING' \
        "MDM: the SID extension is not critical"
else
    sed 's/^/       | /' "$ERROR_LOG" | tail -5
fi

# the preset alone: a UPN and a SID the request chose are no names it takes (review F1)
make_csr plainmdm "CN = Any Device" \
    $'subjectAltName = @alt\n[alt]\notherName.1 = msUPN;UTF8:administrator@corp.example.org\n'
send_csr plainmdm /plain
if probe_reply plainmdm "$RA" && [[ $(field plainmdm pkiStatus) == 2 ]]; then
    pass "plain tls-client: a request-chosen UPN is refused"
else
    fail "plain tls-client: a request-chosen UPN was not refused ($(field plainmdm pkiStatus))"
fi
expect_log 'SCEP00631: .*msUPN administrator@corp\.example\.org.*does not take from requests' \
    "the refusal names the UPN the template does not take"

# ---- hostile requests: refused at /mdm, certified without the smuggled part at /mdm-drop
# hostile NAME WHAT DN EXT REFUSED-ERE DROPPED-ERE ABSENT-ERE: the request at both
# endpoints; ABSENT-ERE must not match the dropped certificate's text
hostile() {
    local name=$1 what=$2 dn=$3 ext=$4 refused=$5 dropped=$6 absent=$7
    make_csr "$name" "$dn" "$ext"
    send_csr "$name" /mdm
    expect_failure "$name" "$RA" 2 "refuse: $what" || true
    expect_log "SCEP00631: .*$refused" "refuse: $what: the log names it"
    cp "$T/$name.csr.der" "$T/$name-drop.csr.der"
    cp "$T/$name.key" "$T/$name-drop.key"
    send_csr "$name-drop" /mdm-drop
    if check_success "$name-drop" "$RA" "$CA" "drop: $what"; then
        expect_log "SCEP00630: .*$dropped" "drop: $what: the log names what was left out"
        if [[ "$(text "$name-drop")" =~ $absent ]]; then
            fail "drop: $what: the certificate holds it: ${BASH_REMATCH[0]}"
        else
            pass "drop: $what: the certificate does not hold it"
        fi
    fi
}
hostile ca-true "basicConstraints CA:TRUE" "CN = Evil iPhone" \
    "basicConstraints = critical,CA:TRUE" \
    "the extension basicConstraints with cA TRUE, which no certificate of this CA holds" \
    "left out of the certificate: the extension basicConstraints with cA TRUE" "CA:TRUE"
hostile certsign "keyUsage keyCertSign" "CN = Evil iPhone" \
    "keyUsage = critical,keyCertSign,digitalSignature" \
    "the extension keyUsage with keyCertSign" "the extension keyUsage with keyCertSign" \
    "Certificate Sign"
hostile anyeku "anyExtendedKeyUsage" "CN = Evil iPhone" \
    "extendedKeyUsage = anyExtendedKeyUsage" \
    "extendedKeyUsage with anyExtendedKeyUsage" "extendedKeyUsage with anyExtendedKeyUsage" \
    "Any Extended Key Usage"
hostile namecons "nameConstraints" "CN = Evil iPhone" \
    "nameConstraints = critical,permitted;DNS:example.org" \
    "the extension nameConstraints" "the extension nameConstraints" "Name Constraints"
hostile cn2 "a second CN" $'0.CN = John\'s iPhone\n1.CN = Administrator' "" \
    "the subject attribute CN=Administrator, beyond the 1 CN the template takes" \
    "the subject attribute CN=Administrator" "Administrator"
hostile email2 "a second e-mail in the SAN" "CN = John's iPhone" \
    "subjectAltName = email:john@example.org, email:admin@example.org" \
    "the subjectAltName rfc822Name admin@example.org, beyond the 1 rfc822Name" \
    "rfc822Name admin@example.org" "admin@example\\.org"
hostile uri "a URI outside the SID prefix" "CN = John's iPhone" \
    "subjectAltName = URI:https://admin.example.org/" \
    "the subjectAltName URI https://admin.example.org/, which the template does not take" \
    "URI https://admin.example.org/" "admin\\.example\\.org"
hostile org "an O the template does not take" $'CN = John\'s iPhone\nO = Domain Admins' "" \
    "the subject attribute O=Domain Admins, which the template does not take" \
    "O=Domain Admins" "Domain Admins"
hostile ctrl "control characters in the CN" "CN = John$(printf '\033')[2J" \
    "subjectAltName = email:john@example.org" \
    'CN=John\\\\x1b\[2J, which holds a control character' 'CN=John\\\\x1b\[2J' $'\033'
# a NUL inside a dNSName (DER written by hand: openssl would stop at the NUL)
nul_name=$(printf 'evil.example.org\0.example.net' | od -An -v -tx1 | tr -d ' \n')
n=$(( ${#nul_name} / 2 ))
hostile nul "a NUL inside a dNSName" "CN = John's iPhone" \
    "subjectAltName = DER:$(printf '30%02x82%02x%s' $((n + 2)) "$n" "$nul_name")" \
    'dNSName evil\.example\.org\\\\x00\.example\.net, which does not decode' \
    'dNSName evil\.example\.org\\\\x00' "evil\\.example"
long=$(printf 'a%.0s' {1..10000})
hostile long "a 10,000-character URI" "CN = John's iPhone" \
    $'subjectAltName = @alt\n[alt]\nURI.1 = '"$SID_URI$long" \
    "URI tag:microsoft.com,2022-09-14:sid:S-1-5.*\\([0-9]+ bytes\\), which does not" \
    "URI tag:microsoft.*\\(10078 bytes\\), which does not decode" "aaaaaaaaaa"
hostile longdns "a 10,000-character dNSName" "CN = John's iPhone" \
    "subjectAltName = DNS:$long.example.org" \
    "the subjectAltName dNSName a+\\.\\.\\. \\(10012 bytes\\), which does not decode" \
    "dNSName a+\\.\\.\\. \\(10012 bytes\\)" "aaaaaaaaaa"

# ---- a certmonger-style user for S/MIME: fixed O, key usage of the section ----------------
make_csr jane "CN = Jane Doe" \
    $'subjectAltName = email:jane@example.org\nkeyUsage = keyEncipherment'
send_csr jane /smime
if check_success jane "$RA" "$CA" "smime-both with rules and ScepKeyUsage"; then
    expect_eq "$(subject jane)" "O=Example Org,CN=Jane Doe" \
        "S/MIME: the CN, then the fixed O (RFC 2253 prints the last first)"
    expect_match "$(text jane)" $'Key Usage: critical\n *Digital Signature\n' \
        "S/MIME: ScepKeyUsage of the section wins over the preset's"
    expect_match "$(text jane)" $'Extended Key Usage: *\n *E-mail Protection\n' \
        "S/MIME: the preset's EKU, emailProtection"
fi

# ---- certmonger: a user for S/MIME at the smime-both preset (refuse), as certmonger asks --
if command -v certmonger >/dev/null && command -v getcert >/dev/null \
        && command -v dbus-run-session >/dev/null; then
    C=$T/cm
    if certmonger_enroll "$C" "http://127.0.0.1:$PORT/user" "$CH" Tmpl \
            -N "CN=Jane Roe" -E jane.roe@example.org; then
        pass "certmonger: a user certificate at smime-both"
        cp "$C/out/cert.pem" "$T/cm.pem"
        expect_eq "$(subject cm)" "CN=Jane Roe" "certmonger: the subject as asked"
        expect_eq "$(sans cm)" "email:jane.roe@example.org" "certmonger: the e-mail SAN"
        expect_match "$(text cm)" $'Extended Key Usage: *\n *E-mail Protection\n' \
            "certmonger: emailProtection"
        expect_match "$(text cm)" "$KU_SIGN_ENC" \
            "certmonger: smime-both's key usage"
    else
        fail "certmonger: no certificate at smime-both:"
        certmonger_said "$C" 20
        grep SCEP006 "$ERROR_LOG" | tail -3 | sed 's/^/       | /'
    fi
else
    note "certmonger is not installed: its enrollment is not tried"
fi

# ---- ScepSubject cn: today's certificates, requested SANs copied ------------------------
make_csr legacy $'CN = router.example.net\nO = Whatever' \
    "subjectAltName = DNS:router.example.net"
send_csr legacy /legacy
if check_success legacy "$RA" "$CA" "ScepSubject cn (no template)"; then
    expect_eq "$(subject legacy)" "CN=router.example.net" \
        "ScepSubject cn: only the CN, as before"
    expect_eq "$(sans legacy)" "DNS:router.example.net" \
        "ScepSubject cn: the SAN copied, as before"
fi

check_error_log 'SCEP00631: ' 'SCEP00633: '

# ---- a forwarding gateway applies its template (point 4: the PKCS#10 goes upstream as it
# is, its UPN and SID URI included; what the template would drop is refused there) -------
httpd_stop || fail "httpd did not stop cleanly"
issue_cert "$T/pki" gw "Gateway RA" "digitalSignature,keyEncipherment"
timeout 60 "${SCEPREG:-$TOP/scepreg}" -c -b "$T/gwdb" '*.example.net' "$CH" 2>/dev/null \
    || die "scepreg: the gateway's wildcard"
httpd_conf "$(
    scep_location /upstream "$T/pki" ra "ScepChallenge $CH" "${MDM[@]}"
    echo "<Location /gw>"
    echo "    SetHandler scep"
    echo "    ScepCACertificateFile \"$CA\""
    echo "    ScepRACertificateFile \"$T/pki/gw.pem\""
    echo "    ScepRAKeyFile \"$T/pki/gw.key\""
    echo "    ScepDeviceDB $T/gwdb"
    echo "    ScepUpstreamURL http://127.0.0.1:$PORT/upstream"
    echo "    ScepUpstreamRACertificateFile \"$RA\""
    echo "    ScepUpstreamTimeout 2 5"
    echo "    ScepUpstreamRetries 0"
    printf '    %s\n' "${MDM[@]}"
    echo "    ScepTemplateUnlisted drop"
    echo "    Require all granted"
    echo "</Location>"
)"
if httpd_start; then
    GW_SAN=$'subjectAltName = @alt\n[alt]\nDNS.1 = dev1.example.net\n'
    GW_SAN+=$'otherName.1 = msUPN;UTF8:dev1@corp.example.org\n'"URI.1 = $SID_URI"
    make_csr fwd "CN = dev1.example.net" "$GW_SAN"
    probe_enrollment_request fwd "$T/pki/gw.pem" --challenge "$CH" --csr "$T/fwd.csr.der"
    send_request fwd /gw POST
    if check_success fwd "$T/pki/gw.pem" "$CA" "through a gateway with a template"; then
        expect_eq "$(sans fwd | tr '\n' ' ')" \
            "DNS:dev1.example.net othername: UPN::dev1@corp.example.org URI:$SID_URI " \
            "gateway: the UPN and the SID URI reached the upstream's certificate"
        expect_match "$(ext_asn1 fwd 1.3.6.1.4.1.311.25.2)" "OCTET STRING *:$SID" \
            "gateway: the upstream's template made the SID extension"
    fi
    posts=$(grep -c '^POST /upstream ' "$ACCESS_LOG" || true)
    make_csr fwd-org $'CN = dev1.example.net\nO = Domain Admins' \
        "subjectAltName = DNS:dev1.example.net"
    probe_enrollment_request fwd-org "$T/pki/gw.pem" --challenge "$CH" \
        --csr "$T/fwd-org.csr.der"
    send_request fwd-org /gw POST
    expect_failure fwd-org "$T/pki/gw.pem" 2 "gateway: what the template would drop" || true
    expect_log "SCEP00632: .*asks for the subject attribute O=Domain Admins, .*forwarding" \
        "gateway: the log says what was refused and why (drop counts as refuse there)"
    expect_eq "$(grep -c '^POST /upstream ' "$ACCESS_LOG" || true)" "$posts" \
        "gateway: nothing went upstream"
    check_error_log 'SCEP00632: ' 'SCEP00633: '
    httpd_stop || fail "httpd did not stop cleanly"
fi

# ---- the annotated examples of conf-examples/templates/ start as they are ---------------
EX=$TOP/conf-examples/templates
[[ -d "$EX" ]] || EX=$(dirname "$0")/../../conf-examples/templates
for ex in "$EX"/*.conf; do
    name=$(basename "$ex")
    loc=$(sed -n 's/^ *<Location \([^>]*\)>.*/\1/p' "$ex" | head -1)
    httpd_conf "$(sed -e "s|/etc/apache2/scep/|$T/pki/|g" -e "s|/var/lib/scep/|$T/ex-|g" "$ex")"
    if ! httpd_configtest; then
        fail "$name: httpd -t refuses it:"
        sed 's/^/       | /' "$HTTPD_ROOT/configtest.out"
        continue
    fi
    if httpd_start; then
        http_get "$loc?operation=GetCACaps" "$T/$name.caps"
        expect_eq "$HTTP_CODE" 200 "$name: httpd starts and answers GetCACaps at $loc"
        httpd_stop || fail "$name: httpd did not stop cleanly"
    fi
done
t_done

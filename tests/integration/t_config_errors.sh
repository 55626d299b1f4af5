#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Broken configurations: httpd -t and a real start must both refuse, with a message that
# names the problem (and the file).  Two good configurations first, so that a refusal is
# known to come from the one thing that is broken.
source "$(dirname "$0")/lib.sh"
t_init
require_module

make_pki "$T/pki" Conf
make_pki "$T/pki2" Other
P=$T/pki
# an RA whose key is EC: it cannot decrypt what clients send (RSA key transport)
issue_cert "$P" ra-ec "EC RA" "digitalSignature,keyEncipherment" -algorithm EC -pkeyopt ec_paramgen_curve:P-256
# a CA whose key is EC
mkdir -p "$T/ecca"
timeout 60 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -keyout "$T/ecca/ca.key" -out "$T/ecca/ca.pem" -subj "/CN=EC CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null || die "cannot make the EC CA"
chmod 600 "$T/ecca/ca.key"
issue_cert "$T/ecca" ra "RA under EC CA" "digitalSignature,keyEncipherment"
: >"$T/empty.pem"
cp "$P/ca.key" "$T/ca-644.key"
chmod 644 "$T/ca-644.key"
cp "$P/ra.key" "$T/ra-640.key"
chmod 640 "$T/ra-640.key"

# odd_key_ca OUT SUBJECT N E: a CA certificate signed with the CA key whose public key is
# the RSA key (N, E), both in hex: OpenSSL makes such a key from its numbers unchecked
odd_key_ca() {
    local out=$1 subject=$2 n=$3 e=$4
    cat >"$out.cnf" <<EOF
asn1=SEQUENCE:spki
[spki]
alg=SEQUENCE:alg
key=BITWRAP,SEQUENCE:rsapub
[alg]
oid=OID:rsaEncryption
null=NULL
[rsapub]
n=INTEGER:0x$n
e=INTEGER:0x$e
EOF
    printf '%s\n' basicConstraints=critical,CA:TRUE keyUsage=critical,keyCertSign,cRLSign \
        subjectKeyIdentifier=hash >"$out.ext"
    timeout 30 openssl asn1parse -genconf "$out.cnf" -out "$out.spki" -noout >/dev/null \
        && timeout 30 openssl pkey -pubin -inform DER -in "$out.spki" -out "$out.pub" \
        && timeout 30 openssl x509 -new -subj "$subject" -key "$P/ca.key" \
            -force_pubkey "$out.pub" -days 30 -extfile "$out.ext" -out "$out" 2>/dev/null \
        || die "cannot make $out"
}
# issue 15, point 10: the CA's own modulus with e = 1; point 12: a 3072-bit modulus with
# a 3071-bit exponent, as a next CA (no key of ours would have noticed it)
odd_key_ca "$T/ca-e1.pem" "/CN=Conf CA" \
    "$(openssl x509 -in "$P/ca.pem" -noout -modulus | sed 's/^Modulus=//')" 1
odd_key_ca "$T/next-e3071.pem" "/CN=Next CA" \
    "$(openssl rand -hex 384 | sed 's/^./f/; s/.$/1/')" \
    "$(openssl rand -hex 384 | sed 's/^./7/; s/.$/1/')"

# location LINES...: one SCEP Location with exactly these directives
location() {
    local line
    echo "<Location /scep>"
    echo "    SetHandler scep"
    for line in "$@"; do echo "    $line"; done
    echo "    ScepChallenge test-challenge"
    echo "    Require all granted"
    echo "</Location>"
}

# accepted WHAT LINES...: httpd -t and a start both succeed
accepted() {
    local what=$1
    shift
    httpd_conf "$(location "$@")"
    if httpd_configtest; then
        pass "$what: httpd -t accepts it"
    else
        fail "$what: httpd -t refuses it:"
        sed 's/^/       | /' "$HTTPD_ROOT/configtest.out"
    fi
    if httpd_start; then
        http_get "/scep?operation=GetCACaps" "$T/caps"
        expect_eq "$HTTP_CODE" 200 "$what: httpd starts and answers GetCACaps"
        httpd_stop || fail "$what: httpd did not stop cleanly"
    fi
}

# refused WHAT ERE FILE-ERE LINES...: httpd -t and a start both fail, and their output
# matches ERE (case-insensitive) and FILE-ERE (the file concerned; '' if none)
refused() {
    local what=$1 re=$2 file_re=$3
    shift 3
    refused_conf "$what" "$re" "$file_re" "$(location "$@")"
}

# refused_conf WHAT ERE FILE-ERE BODY: as refused, for a configuration BODY
refused_conf() {
    local what=$1 re=$2 file_re=$3 rc=0 out
    sanitizer_scan   # the previous case's outputs are about to be overwritten
    httpd_conf "$4"
    httpd_configtest || rc=$?
    out=$HTTPD_ROOT/configtest.out
    if ((rc == 0)); then
        fail "$what: httpd -t accepts it"
    else
        pass "$what: httpd -t refuses it (exit $rc)"
        check_message "$what (httpd -t)" "$out" "$re" "$file_re"
    fi
    : >"$ERROR_LOG"
    rc=0
    timeout 20 "${HTTPD_CMD[@]}" -f "$HTTPD_ROOT/httpd.conf" -d "$HTTPD_ROOT" -DFOREGROUND \
        >"$HTTPD_ROOT/start.out" 2>&1 || rc=$?
    cat "$ERROR_LOG" >>"$HTTPD_ROOT/start.out"
    if ((rc == 0 || rc == 124)); then
        fail "$what: httpd started (exit $rc after at most 20 s)"
    else
        pass "$what: httpd refuses to start (exit $rc)"
        check_message "$what (start)" "$HTTPD_ROOT/start.out" "$re" "$file_re"
    fi
}

check_message() {
    local what=$1 out=$2 re=$3 file_re=$4
    if grep -qiE -- "$re" "$out" && { [[ -z "$file_re" ]] || grep -qE -- "$file_re" "$out"; }; then
        pass "$what: the message names the problem"
    else
        fail "$what: no message matching /$re/${file_re:+ naming $file_re}:"
        sed 's/^/       | /' "$out" | head -10
    fi
}

re_path() { printf '%s' "$1" | sed 's/[.[\*^$()+?{|]/\\&/g'; }

CA_OK=("ScepCACertificateFile $P/ca.pem" "ScepCAKeyFile $P/ca.key")
RA_OK=("ScepRACertificateFile $P/ra.pem" "ScepRAKeyFile $P/ra.key")

accepted "CA and RA" "${CA_OK[@]}" "${RA_OK[@]}"
accepted "EC CA key with an RSA RA" "ScepCACertificateFile $T/ecca/ca.pem" \
    "ScepCAKeyFile $T/ecca/ca.key" "ScepRACertificateFile $T/ecca/ra.pem" \
    "ScepRAKeyFile $T/ecca/ra.key"

refused "missing CA certificate file" 'exist|no such|not found|cannot (open|read)|unable to (open|read)|unreadable' \
    "$(re_path "$T/nonexistent/ca.pem")" \
    "ScepCACertificateFile $T/nonexistent/ca.pem" "ScepCAKeyFile $P/ca.key"
refused "empty CA certificate file" 'empty|no certificate' "$(re_path "$T/empty.pem")" \
    "ScepCACertificateFile $T/empty.pem" "ScepCAKeyFile $P/ca.key"
refused "missing CA key file" 'exist|no such|not found|cannot (open|read)|unable to (open|read)|unreadable' \
    "$(re_path "$T/nonexistent/ca.key")" \
    "ScepCACertificateFile $P/ca.pem" "ScepCAKeyFile $T/nonexistent/ca.key"
refused "CA key not matching the CA certificate" 'match' \
    "$(re_path "$P/ca.pem")|$(re_path "$T/pki2/ca.key")" \
    "ScepCACertificateFile $P/ca.pem" "ScepCAKeyFile $T/pki2/ca.key" "${RA_OK[@]}"
refused "RA key not matching the RA certificate" 'match' \
    "$(re_path "$P/ra.pem")|$(re_path "$T/pki2/ra.key")" \
    "${CA_OK[@]}" "ScepRACertificateFile $P/ra.pem" "ScepRAKeyFile $T/pki2/ra.key"
refused "a profile name outside ASCII" 'ScepProfileName: 1 to 64 letters' '' \
    "${CA_OK[@]}" "${RA_OK[@]}" "ScepProfileName caf$(printf '\303\251')"
refused "a profile name of 65 characters" 'ScepProfileName: 1 to 64 letters' '' \
    "${CA_OK[@]}" "${RA_OK[@]}" "ScepProfileName $(printf 'p%.0s' {1..65})"
accepted "a profile name of 64 characters" \
    "${CA_OK[@]}" "${RA_OK[@]}" "ScepProfileName $(printf 'p%.0s' {1..64})"
refused "ScepIdentity of an unknown kind" 'ScepIdentity: host, device-name, device-id or user' \
    '' "${CA_OK[@]}" "${RA_OK[@]}" "ScepIdentity email"
refused "ScepIdentity user in a dNSName" 'ScepIdentity: a user cannot be read from dNSName' \
    '' "${CA_OK[@]}" "${RA_OK[@]}" "ScepIdentity user dNSName"
refused "ScepIdentity host with a place" 'ScepIdentity: host takes no place' '' \
    "${CA_OK[@]}" "${RA_OK[@]}" "ScepIdentity host cn"
accepted "ScepIdentity device-id cn" "${CA_OK[@]}" "${RA_OK[@]}" "ScepIdentity device-id cn"
refused "CA key file mode 644" 'group|other|world|permission|mode|readable' "$(re_path "$T/ca-644.key")" \
    "ScepCACertificateFile $P/ca.pem" "ScepCAKeyFile $T/ca-644.key" "${RA_OK[@]}"
refused "RA key file mode 640" 'group|other|world|permission|mode|readable' "$(re_path "$T/ra-640.key")" \
    "${CA_OK[@]}" "ScepRACertificateFile $P/ra.pem" "ScepRAKeyFile $T/ra-640.key"
refused "EC RA key (cannot decrypt RSA key transport)" 'RSA' \
    "$(re_path "$P/ra-ec.key")|$(re_path "$P/ra-ec.pem")" \
    "${CA_OK[@]}" "ScepRACertificateFile $P/ra-ec.pem" "ScepRAKeyFile $P/ra-ec.key"
refused "EC CA key without an RA" 'RSA' \
    "$(re_path "$T/ecca/ca.key")|$(re_path "$T/ecca/ca.pem")" \
    "ScepCACertificateFile $T/ecca/ca.pem" "ScepCAKeyFile $T/ecca/ca.key"
refused "point10: a CA certificate whose RSA exponent is 1" \
    'CA certificate file .* holds a certificate \(number 1, subject /CN=Conf CA\) whose key cannot be used: the RSA public exponent is 1,' \
    "$(re_path "$T/ca-e1.pem")" \
    "ScepCACertificateFile $T/ca-e1.pem" "ScepCAKeyFile $P/ca.key" "${RA_OK[@]}"
refused "point12: a next CA certificate whose RSA exponent has 3071 bits" \
    'next CA certificate file .* holds a certificate \(number 1, subject /CN=Next CA\) whose key cannot be used: the RSA public exponent has more than 256 bits' \
    "$(re_path "$T/next-e3071.pem")" \
    "${CA_OK[@]}" "${RA_OK[@]}" "ScepNextCACertificateFile $T/next-e3071.pem"
# a chain file whose second certificate is damaged: a parse failure is no end of file
{ cat "$P/ca.pem"; sed -n '/BEGIN/,/END/p' "$P/ra.pem" | sed '3s/^..../!!!!/'; } >"$T/chain-broken.pem"
refused "a second certificate in the CA file that cannot be read" \
    'CA certificate file .* holds a certificate \(number 2\) that cannot be read' \
    "$(re_path "$T/chain-broken.pem")" \
    "ScepCACertificateFile $T/chain-broken.pem" "ScepCAKeyFile $P/ca.key" "${RA_OK[@]}"
refused "ScepCAKeyFile without ScepCACertificateFile" 'ScepCACertificateFile|CA certificate file' '' \
    "ScepCAKeyFile $P/ca.key"
refused "ScepCACertificateFile without ScepCAKeyFile" 'ScepCAKeyFile|CA key file' '' \
    "ScepCACertificateFile $P/ca.pem"
refused "ScepRACertificateFile without ScepRAKeyFile" 'ScepRAKeyFile|RA key file' '' \
    "${CA_OK[@]}" "ScepRACertificateFile $P/ra.pem"

# a SCEP endpoint is not a file: a setting in <Directory> could never reach it
refused_conf "ScepChallenge in a <Directory> section" 'Directory' '' \
    "$(location "${CA_OK[@]}")
<Directory $T>
    ScepChallenge other-challenge
</Directory>"

# registrations and a static challenge exclude each other within a section
refused "ScepChallenge after ScepDeviceDB" 'register a wildcard' '' \
    "${CA_OK[@]}" "ScepDeviceDB $T/db-a"
refused_conf "ScepDeviceDB after ScepChallenge" 'register a wildcard' '' \
    "<Location /scep>
    SetHandler scep
    ScepCACertificateFile $P/ca.pem
    ScepCAKeyFile $P/ca.key
    ScepChallenge early-challenge
    ScepDeviceDB $T/db-b
    Require all granted
</Location>"

refused_conf "ScepAllowNoChallenge after ScepDeviceDB" 'register a wildcard' '' \
    "<Location /scep>
    SetHandler scep
    ScepCACertificateFile $P/ca.pem
    ScepCAKeyFile $P/ca.key
    ScepDeviceDB $T/db-c
    ScepAllowNoChallenge On
    Require all granted
</Location>"

# issue 18: the records in mod_dbd's PostgreSQL need mod_dbd (httpd -t says so too)
dbd_location() {
    printf '%s\n' "<Location /scep>" "    SetHandler scep" "    ScepCACertificateFile $P/ca.pem" \
        "    ScepCAKeyFile $P/ca.key" "    ScepDeviceDB dbd:" "$@" "    Require all granted" \
        "</Location>"
}
refused_conf "ScepDeviceDB dbd: without mod_dbd" \
    'SCEP00700: ScepDeviceDB dbd: .*mod_dbd, which is not loaded: add LoadModule dbd_module' \
    'httpd\.conf:[0-9]+' "$(dbd_location)"
refused "ScepDBDTimeout 99" "ScepDBDTimeout: '99' is not a whole number from 100 to 600000" '' \
    "ScepDBDTimeout 99"
refused "ScepDBDTimeout 600001" "ScepDBDTimeout: '600001' is not a whole number from 100 to 600000" \
    '' "ScepDBDTimeout 600001"
refused "ScepDBDTimeout 5s" "ScepDBDTimeout: '5s' is not a whole number" '' "ScepDBDTimeout 5s"
refused_conf "ScepDeviceDBMapSize after ScepDeviceDB dbd:" \
    "ScepDeviceDBMapSize: sizes an LMDB folder" '' \
    "LoadModule dbd_module $APACHE_MODDIR/mod_dbd.so
$(dbd_location "    ScepDeviceDBMapSize 2G")"
refused_conf "ScepDeviceDB dbd:scep (a folder named like the database)" \
    "ScepDeviceDB: 'dbd:scep': write dbd: alone" '' \
    "$(dbd_location | sed 's/ScepDeviceDB dbd:/ScepDeviceDB dbd:scep/')"

# issue 17, certificate templates: one good template, then a bad value of each directive
accepted "an MDM template" "${CA_OK[@]}" "${RA_OK[@]}" "ScepTemplate tls-client" \
    "ScepTemplateSubject CN request" "ScepTemplateSubject O fixed \"Example Org\"" \
    "ScepTemplateSAN URI request 1 tag:microsoft.com,2022-09-14:sid:" \
    "ScepTemplateUnlisted drop" "ScepTemplateSID on" "ScepKeyUsage digitalSignature"
refused "an unknown template preset" "ScepTemplate: 'server': unknown preset" '' \
    "${CA_OK[@]}" "${RA_OK[@]}" "ScepTemplate server"
refused "two presets in one section" 'ScepTemplate:.*one preset' '' \
    "${CA_OK[@]}" "${RA_OK[@]}" "ScepTemplate vpn" "ScepTemplate tls-client"
refused "a subject attribute templates do not know" 'ScepTemplateSubject: the first word' '' \
    "${CA_OK[@]}" "${RA_OK[@]}" "ScepTemplateSubject givenName request"
refused "a template source that does not exist" 'ScepTemplateSubject: the source is' '' \
    "${CA_OK[@]}" "${RA_OK[@]}" "ScepTemplateSubject CN registration"
refused "a fixed value with a control character" 'ScepTemplateSubject: the fixed value' '' \
    "${CA_OK[@]}" "${RA_OK[@]}" "ScepTemplateSubject O fixed a$(printf '\001')b"
refused "a fixed value beyond its bound" 'the fixed value is longer' '' \
    "${CA_OK[@]}" "${RA_OK[@]}" "ScepTemplateSubject O fixed $(printf 'o%.0s' {1..65})"
refused "a SAN count of 0" "ScepTemplateSAN: request's count" '' \
    "${CA_OK[@]}" "${RA_OK[@]}" "ScepTemplateSAN dNSName request 0"
refused "ScepTemplateUnlisted ignore" "ScepTemplateUnlisted: 'drop' or 'refuse'" '' \
    "${CA_OK[@]}" "${RA_OK[@]}" "ScepTemplateUnlisted ignore"
refused "ScepTemplateSID maybe" 'ScepTemplateSID' '' \
    "${CA_OK[@]}" "${RA_OK[@]}" "ScepTemplateSID maybe"
refused "ScepSubject beside ScepTemplate" 'ScepSubject: this section has a ScepTemplate' '' \
    "${CA_OK[@]}" "${RA_OK[@]}" "ScepTemplate vpn" "ScepSubject cn"
refused "rules with the copying preset" 'csr and cn' '' \
    "${CA_OK[@]}" "${RA_OK[@]}" "ScepTemplate csr" "ScepTemplateSubject CN request"
# the webhooks (ScepValidate*, ScepNotify*)
openssl rand -hex 16 >"$T/hook.secret"
chmod 600 "$T/hook.secret"
cp "$T/hook.secret" "$T/hook-644.secret"
chmod 644 "$T/hook-644.secret"
echo short >"$T/hook-short.secret"
chmod 600 "$T/hook-short.secret"
HOOK_OK=("ScepValidateURL http://127.0.0.1:9/validate" "ScepValidateSecretFile $T/hook.secret")
accepted "a validator and a notifier with their URLs and secrets" "${CA_OK[@]}" "${RA_OK[@]}" \
    "${HOOK_OK[@]}" "ScepNotifyURL http://127.0.0.1:9/events" "ScepNotifySecretFile $T/hook.secret"
refused "ScepValidateURL not http(s)" "ScepValidateURL: 'ftp://x/' is not an http" '' \
    "ScepValidateURL ftp://x/"
refused "ScepValidateSecretFile mode 644" 'ScepValidateSecretFile: .*0600 or 0400' \
    "$(re_path "$T/hook-644.secret")" "ScepValidateSecretFile $T/hook-644.secret"
refused "a webhook secret of 5 bytes" 'holds 5 bytes; it must hold 16 to 4096' \
    "$(re_path "$T/hook-short.secret")" "ScepNotifySecretFile $T/hook-short.secret"
refused "ScepValidateMode sometimes" 'neither alone nor after-registration' '' \
    "${HOOK_OK[@]}" "ScepValidateMode sometimes"
refused "ScepValidateTimeout 50" "ScepValidateTimeout: '50' is not a whole number from 100" '' \
    "${HOOK_OK[@]}" "ScepValidateTimeout 50"
refused "ScepValidateUnavailable maybe" 'neither deny nor pending' '' \
    "${HOOK_OK[@]}" "ScepValidateUnavailable maybe"
refused "ScepValidateSendChallenge maybe" 'ScepValidateSendChallenge.*On or Off' '' \
    "${HOOK_OK[@]}" "ScepValidateSendChallenge maybe"
refused "ScepValidate* without ScepValidateURL" 'SCEP00660: ScepValidate\* settings .* without' \
    '' "ScepValidateSecretFile $T/hook.secret" "ScepValidateMode alone"
refused "ScepValidateUnavailable pending without ScepDeviceDB" 'SCEP00661: .*needs a ScepDeviceDB' \
    '' "${HOOK_OK[@]}" "ScepValidateUnavailable pending"
refused "ScepNotifyURL not http(s)" "ScepNotifyURL: 'file:///etc' is not an http" '' \
    "ScepNotifyURL file:///etc"
refused "ScepNotifyQueue 0" "ScepNotifyQueue: '0' is not a whole number from 1" '' \
    "ScepNotifyQueue 0"
refused "ScepNotifyRetries 11" "ScepNotifyRetries: '11' is not a whole number from 0 to 10" '' \
    "ScepNotifyRetries 11"
refused "ScepNotify* without ScepNotifySecretFile" 'SCEP00660: ScepNotify\* settings' '' \
    "ScepNotifyURL http://127.0.0.1:9/events"

# issue 19: encrypted key files and ScepPassPhraseDialog
echo "right-$(openssl rand -hex 8)" >"$T/pass.right"
timeout 60 openssl pkcs8 -topk8 -v2 aes-256-cbc -in "$P/ca.key" -out "$T/ca.enc.key" \
    -passout "file:$T/pass.right" || die "cannot encrypt the CA key"
chmod 600 "$T/ca.enc.key"
printf '#!/bin/sh\ncat %s\n' "$T/pass.right" >"$T/dialog-right.sh"
printf '#!/bin/sh\necho wrong-passphrase\n' >"$T/dialog-wrong.sh"
printf '#!/bin/sh\nexit 3\n' >"$T/dialog-fails.sh"
: >"$T/not-executable.sh"
chmod 700 "$T/dialog-right.sh" "$T/dialog-wrong.sh" "$T/dialog-fails.sh"
ENC_CA=("ScepCACertificateFile $P/ca.pem" "ScepCAKeyFile $T/ca.enc.key")
refused "an encrypted CA key without ScepPassPhraseDialog" \
    "CA key file '$(re_path "$T/ca.enc.key")' is encrypted, and no ScepPassPhraseDialog says how" '' \
    "${ENC_CA[@]}" "${RA_OK[@]}"
refused_conf "an encrypted CA key and a dialog that prints a wrong passphrase" \
    "CA key file '$(re_path "$T/ca.enc.key")' cannot be decrypted with the passphrase the dialog gave" '' \
    "ScepPassPhraseDialog exec:$T/dialog-wrong.sh
$(location "${ENC_CA[@]}" "${RA_OK[@]}")"
refused_conf "an encrypted CA key and a dialog program that fails" \
    "CA key file .* could not be asked for: the program $(re_path "$T/dialog-fails.sh") exited with status 3" '' \
    "ScepPassPhraseDialog exec:$T/dialog-fails.sh
$(location "${ENC_CA[@]}" "${RA_OK[@]}")"
httpd_conf "ScepPassPhraseDialog exec:$T/dialog-right.sh
$(location "${ENC_CA[@]}" "${RA_OK[@]}")"
if httpd_configtest; then
    pass "an encrypted CA key and the right passphrase: httpd -t accepts it"
else
    fail "an encrypted CA key and the right passphrase: httpd -t refuses it:"
    sed 's/^/       | /' "$HTTPD_ROOT/configtest.out"
fi
refused_conf "ScepPassPhraseDialog neither builtin nor exec:" \
    "ScepPassPhraseDialog: 'ask': builtin or exec:/absolute/path" '' \
    "ScepPassPhraseDialog ask
$(location "${CA_OK[@]}")"
refused_conf "ScepPassPhraseDialog naming a file that is not executable" \
    "ScepPassPhraseDialog: '$(re_path "$T/not-executable.sh")' is not an executable file" '' \
    "ScepPassPhraseDialog exec:$T/not-executable.sh
$(location "${CA_OK[@]}")"
refused "ScepPassPhraseDialog inside a <Location>" 'ScepPassPhraseDialog.*(not allowed|cannot occur)' '' \
    "${CA_OK[@]}" "ScepPassPhraseDialog builtin"

# issue 19: a PIN in configuration text, and URIs that cannot name a token's key
refused "a pkcs11: URI holding pin-value" \
    "ScepCAKeyFile: the URI holds a PIN \\(pin-value\\): configuration text is no place for it" '' \
    "ScepCACertificateFile $P/ca.pem" "ScepCAKeyFile pkcs11:token=ca;object=key?pin-value=1234"
refused "a pkcs11: URI naming no object" "ScepRAKeyFile: the URI names no object" '' \
    "${CA_OK[@]}" "ScepRACertificateFile $P/ra.pem" "ScepRAKeyFile pkcs11:token=ca"
refused "a pkcs11: URI with a slot attribute" "ScepCAKeyFile: the URI has an attribute mod_scep does not match tokens by: 'slot-id'" '' \
    "ScepCACertificateFile $P/ca.pem" "ScepCAKeyFile pkcs11:slot-id=1;object=key"
refused "a pkcs11: URI for the next CA" "ScepNextCACertificateFile: a file, not a token object" '' \
    "${CA_OK[@]}" "ScepNextCACertificateFile pkcs11:token=ca;object=next"

# a device database httpd's User cannot reach refuses the start (httpd -t reads no
# folders, so only a real start can tell)
if [[ $(id -u) == 0 ]]; then
    mkdir -p "$T/private"
    chmod 700 "$T/private"
    httpd_conf "$(scep_location /scep "$P" ra "ScepDeviceDB $T/private/devices")"
    sanitizer_scan
    : >"$ERROR_LOG"
    rc=0
    timeout 20 "${HTTPD_CMD[@]}" -f "$HTTPD_ROOT/httpd.conf" -d "$HTTPD_ROOT" -DFOREGROUND \
        >"$HTTPD_ROOT/start.out" 2>&1 || rc=$?
    cat "$ERROR_LOG" >>"$HTTPD_ROOT/start.out"
    if ((rc != 0 && rc != 124)) && grep -q "SCEP00016: .*cannot pass through $T/private (mode 0700" \
            "$HTTPD_ROOT/start.out"; then
        pass "a device database out of the User's reach refuses the start, naming the folder"
    else
        fail "unreachable device database: exit $rc:"
        sed 's/^/       | /' "$HTTPD_ROOT/start.out" | head -5
    fi
fi

t_done

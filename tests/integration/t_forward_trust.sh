#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Issue 15, point 6: a forwarding gateway trusts only an upstream whose certificates chain
# to its ScepCACertificateFile.  Fake upstreams (static files behind mod_rewrite, so that
# the access log shows every request they get) answer GetCACert with an RA another CA
# issued, with an RA that may not encipher keys, with garbage, and with a good answer
# followed by stray bytes: the gateway sends them no PKIOperation at all (the device's
# challenge travels in its request), answers the device PENDING (or 503 with
# ScepUpstreamDownAnswer 503) and says in its log which certificate was wrong.  With
# ScepUpstreamRACertificateFile, a device's certificate of the right CA cannot pose as
# the RA.  A real upstream that issues from a CA other than the configured one gets its
# certificate refused too, and a correct upstream still issues.
source "$(dirname "$0")/lib.sh"
t_init
require_module
SCEPREG=${SCEPREG:-$TOP/scepreg}
reg() { timeout 60 "$SCEPREG" "$@"; }

make_pki "$T/up" Upstream
issue_cert "$T/up" gw "Gateway RA" "digitalSignature,keyEncipherment"
# an RA of the right CA that may only sign
issue_cert "$T/up" signonly "Upstream RA" "digitalSignature"
# a device's certificate from the right CA, which may encipher keys like an RA's
issue_cert "$T/up" device "impostor.trust.example.net" "digitalSignature,keyEncipherment"
# a rogue CA and an RA of it under the real RA's name
make_ca "$T/rogue" "Upstream CA"
issue_cert "$T/rogue" ra "Upstream RA" "digitalSignature,keyEncipherment"
# another CA, for an upstream that issues from a CA the gateway was not configured with
make_ca "$T/other" "Other CA"
mkdir -p "$T/mixed"
cp "$T/other/ca.pem" "$T/other/ca.key" "$T/mixed/"
cp "$T/up/ra.pem" "$T/up/ra.key" "$T/mixed/"
cat "$T/up/ca.pem" "$T/other/ca.pem" >"$T/up-and-other.pem"
CA=$T/up/ca.pem
GW=$T/up/gw.pem
CH=$(openssl rand -hex 12)
reg -c -b "$T/udb" '*' "$CH" 2>/dev/null || die "scepreg: upstream"
reg -c -b "$T/ddb" '*.trust.example.net' "$CH" 2>/dev/null || die "scepreg: gateway"

PORT=$(free_port)
UP="http://127.0.0.1:$PORT"

# ---- the fake upstreams' answers -----------------------------------------------------
F=$T/httpd/htdocs/fake
mkdir -p "$F"
printf 'POSTPKIOperation\nSHA-256\nAES\nSCEPStandard\n' >"$F/caps.txt"
certs_only() {   # certs_only OUT PEM...: a degenerate SignedData of the certificates
    local out=$1 args=() pem
    shift
    for pem in "$@"; do args+=(-certfile "$pem"); done
    openssl crl2pkcs7 -nocrl "${args[@]}" -outform DER -out "$out" 2>/dev/null \
        || die "cannot make $out"
}
certs_only "$F/untrusted.p7" "$CA" "$T/rogue/ra.pem"
certs_only "$F/signonly.p7" "$CA" "$T/up/signonly.pem"
certs_only "$F/good.p7" "$CA" "$T/up/ra.pem"
certs_only "$F/impostor.p7" "$CA" "$T/up/device.pem"
cp "$F/impostor.p7" "$F/pinned.p7"
head -c 700 /dev/urandom >"$F/garbage.p7"
cat "$F/good.p7" >"$F/trailing.p7"
printf 'stray bytes after the SignedData' >>"$F/trailing.p7"
chmod -R a+rX "$F"

gateway() {   # gateway PATH UPSTREAM-URL [DIRECTIVE...]: an RA endpoint in front of it
    local path=$1 upstream=$2
    shift 2
    echo "<Location $path>"
    echo "    SetHandler scep"
    echo "    ScepCACertificateFile \"${GATEWAY_CA:-$CA}\""
    echo "    ScepRACertificateFile \"$GW\""
    echo "    ScepRAKeyFile \"$T/up/gw.key\""
    echo "    ScepDeviceDB $T/ddb"
    echo "    ScepUpstreamURL $upstream"
    echo "    ScepUpstreamTimeout 2 5"
    echo "    ScepUpstreamRetries 0"
    local line
    for line in "$@"; do echo "    $line"; done
    echo "    Require all granted"
    echo "</Location>"
}
httpd_conf "$(
    echo "LoadModule rewrite_module $APACHE_MODDIR/mod_rewrite.so"
    echo "LoadModule mime_module $APACHE_MODDIR/mod_mime.so"
    echo "TypesConfig /dev/null"
    echo "AddType application/x-x509-ca-ra-cert .p7"
    echo "AddType text/plain .txt"
    # /fake/NAME answers GetCACaps and GetCACert from files; anything else is a 404 that
    # the access log records
    echo "RewriteEngine On"
    echo "RewriteCond %{QUERY_STRING} (^|&)operation=GetCACaps(&|\$)"
    echo "RewriteRule ^/fake/[a-z]+\$ /fake/caps.txt [PT,L]"
    echo "RewriteCond %{QUERY_STRING} (^|&)operation=GetCACert(&|\$)"
    echo "RewriteRule ^/fake/([a-z]+)\$ /fake/\$1.p7 [PT,L]"
    scep_location /upstream "$T/up" ra "ScepDeviceDB $T/udb"
    scep_location /upstream-other "$T/mixed" ra "ScepDeviceDB $T/udb"
    gateway /gw-good "$UP/upstream"
    gateway /gw-fake-good "$UP/fake/good"
    gateway /gw-untrusted "$UP/fake/untrusted"
    gateway /gw-untrusted-503 "$UP/fake/untrusted" "ScepUpstreamDownAnswer 503"
    gateway /gw-signonly "$UP/fake/signonly"
    gateway /gw-garbage "$UP/fake/garbage"
    gateway /gw-trailing "$UP/fake/trailing"
    gateway /gw-impostor "$UP/fake/impostor"
    gateway /gw-impostor-pinned "$UP/fake/pinned" \
        "ScepUpstreamRACertificateFile \"$T/up/ra.pem\""
    gateway /gw-pinned "$UP/upstream" "ScepUpstreamRACertificateFile \"$T/up/ra.pem\""
    GATEWAY_CA=$T/up-and-other.pem gateway /gw-other "$UP/upstream-other"
)"
httpd_start || t_done

# request NAME PATH: a device's PKCSReq to the gateway, encrypted to its RA
request() {
    probe_enrollment_request "$1" "$GW" --challenge "$CH" --san-dns "$1.trust.example.net" \
        --subject "/CN=$1.trust.example.net"
    send_request "$1" "$2" POST
}
status() { probe_reply "$1" "$GW" || true; field "$1" pkiStatus; }
# the PKIOperations a fake upstream received, by the access log
sent_to() { grep -cE "^(GET|POST) /fake/$1 [0-9]+ .*operation=PKIOperation" "$ACCESS_LOG" || true; }
fetched() { grep -cE "^GET /fake/$1\.p7 200 .*operation=GetCACert" "$ACCESS_LOG" || true; }
# a certificate's SHA-256 fingerprint as the log writes it
fpr() { openssl x509 -in "$1" -noout -fingerprint -sha256 | sed 's/.*=//'; }

# ---- the RA of another CA ------------------------------------------------------------
request u1 /gw-untrusted
expect_eq "$HTTP_CODE" 200 "an upstream whose RA another CA issued: the device gets an answer"
expect_eq "$(status u1)" 3 "and it is PENDING"
expect_eq "$(fetched untrusted)" 1 "the gateway fetched that upstream's GetCACert"
expect_eq "$(sent_to untrusted)" 0 "and sent it nothing: the challenge never left"
expect_log "SCEP00404: .*u1\.trust\.example\.net .*answered PENDING: nothing was sent to the upstream $UP/fake/untrusted: its GetCACert holds '[^']*CN=Upstream RA[^']*' issued by '[^']*CN=Upstream CA[^']*' \\(SHA-256 $(fpr "$T/rogue/ra.pem")\\), which fails verification against the CA of ScepCACertificateFile \\([^)]*\\): unable to get local issuer certificate" \
    "the log names the certificate, its issuer and fingerprint, and why"
expect_match "$(reg -P "$T/ddb" u1.trust.example.net | tail -1)" $'\tupstream\t' "the request is kept for the device's retry"

request u2 /gw-untrusted-503
expect_eq "$HTTP_CODE" 503 "with ScepUpstreamDownAnswer 503 the device gets 503"
expect_eq "$(sent_to untrusted)" 0 "and still nothing was sent"

# ---- an RA that may not encipher keys ---------------------------------------------------
request s1 /gw-signonly
expect_eq "$(status s1)" 3 "an upstream RA without keyEncipherment: PENDING"
expect_eq "$(fetched signonly)" 1 "its GetCACert was fetched"
expect_eq "$(sent_to signonly)" 0 "and nothing was encrypted to it or to its CA"
expect_log "SCEP00404: .*s1\.trust\.example\.net .*nothing was sent to the upstream $UP/fake/signonly: no certificate of its GetCACert may encrypt: '[^']*CN=Upstream RA[^']*' issued by '[^']*CN=Upstream CA[^']*' \\(SHA-256 $(fpr "$T/up/signonly.pem")\\) has no keyEncipherment" \
    "the log names the RA and the missing key usage"

# ---- answers that cannot be read ------------------------------------------------------
request g1 /gw-garbage
expect_eq "$(status g1)" 3 "a GetCACert of random bytes: PENDING"
expect_eq "$(sent_to garbage)" 0 "nothing was sent"
expect_log "SCEP00404: .*g1\.trust\.example\.net .*nothing was sent to the upstream $UP/fake/garbage: its GetCACert answer \\(application/x-x509-ca-ra-cert, 700 bytes\\) is neither a DER certificate nor a SignedData" \
    "the log says the answer cannot be read"
request g2 /gw-trailing
expect_eq "$(status g2)" 3 "a good GetCACert followed by stray bytes: PENDING"
expect_eq "$(sent_to trailing)" 0 "nothing was sent"
expect_log "SCEP00404: .*g2\.trust\.example\.net .*its GetCACert answer .* has 32 bytes after its end" \
    "the log says what is wrong with it"

# ---- the same certificates, read correctly: it is trusted (and answers 404) -------------
request k1 /gw-fake-good
expect_eq "$(sent_to good)" 1 "an upstream with the right certificates gets the request"
expect_log "SCEP00430: the upstream $UP/fake/good: GetCACert verified .*requests are encrypted to '[^']*CN=Upstream RA[^']*'" \
    "the gateway logs what it verified"

# ---- a certificate the CA issued to a device, posing as the RA ---------------------------
request i1 /gw-impostor
expect_eq "$(sent_to impostor)" 1 \
    "without ScepUpstreamRACertificateFile a device's certificate of that CA passes as RA (the documented limit)"
request i2 /gw-impostor-pinned
expect_eq "$(status i2)" 3 "with ScepUpstreamRACertificateFile it does not: PENDING"
expect_eq "$(fetched pinned)" 1 "its GetCACert was fetched"
expect_eq "$(sent_to pinned)" 0 "and nothing was sent"
expect_log "SCEP00404: .*i2\.trust\.example\.net .*nothing was sent to the upstream $UP/fake/pinned: its GetCACert holds the RA certificate '[^']*CN=impostor\.trust\.example\.net[^']*' issued by '[^']*CN=Upstream CA[^']*' \\(SHA-256 $(fpr "$T/up/device.pem")\\), which is not one of ScepUpstreamRACertificateFile" \
    "the log names the certificate that is not the configured RA"

# ---- a real upstream that issues from a CA other than the configured one ---------------
request o1 /gw-other
expect_eq "$(status o1)" 3 "a certificate that does not chain to ScepCACertificateFile is not passed on: PENDING"
expect_log "SCEP00404: .*o1\.trust\.example\.net .*the certificate the upstream issued, '[^']*CN=o1[^']*' issued by '[^']*CN=Other CA[^']*' \\(SHA-256 [0-9A-F:]+\\), fails verification against the CA of ScepCACertificateFile" \
    "the log names the issued certificate and its issuer"
expect_eq "$(reg -L "$T/ddb" o1.trust.example.net | tail -n +2 | grep -c .)" 0 "the gateway recorded no certificate for it"

# ---- a correct upstream still issues --------------------------------------------------
request c1 /gw-good
if check_success c1 "$GW" "$CA" "a correct upstream issues through the gateway"; then
    expect_match "$(openssl x509 -in "$T/c1.pem" -noout -issuer)" "Upstream CA" "the upstream CA issued it"
fi
expect_eq "$(reg -L "$T/ddb" c1.trust.example.net | tail -n +2 | grep -c .)" 1 "and the gateway recorded it"
request c2 /gw-pinned
check_success c2 "$GW" "$CA" "and with its RA in ScepUpstreamRACertificateFile" || true

# the upstream that issues from another CA does not list the configured one (SCEP00406)
expect_log "SCEP00431: ScepUpstreamURL $UP/fake/impostor at .* is http:// and no ScepUpstreamRACertificateFile" \
    "an http:// upstream without a pinned RA is warned about at startup"
expect_eq "$(grep -c "SCEP00431: ScepUpstreamURL $UP/fake/pinned " "$ERROR_LOG")" 0 \
    "a pinned one is not"
check_error_log '\[scep:warn\] .*SCEP00431: ' '\[scep:warn\] .*SCEP0040[46]: '

# ---- ScepUpstreamRACertificateFile mistakes are configuration errors ----------------------
httpd_stop
configtest() { httpd_configtest; cat "$HTTPD_ROOT/configtest.out"; }
httpd_conf "$(gateway /gw "$UP/upstream" "ScepUpstreamRACertificateFile \"$CA\"")"
expect_match "$(configtest)" "ScepUpstreamRACertificateFile: '$CA': certificate number 1, '[^']*CN=Upstream CA[^']*' .*, is a CA certificate, not an RA's" \
    "a CA certificate in ScepUpstreamRACertificateFile is refused"
httpd_conf "$(gateway /gw "$UP/upstream" "ScepUpstreamRACertificateFile \"$F/good.p7\"")"
expect_match "$(configtest)" "ScepUpstreamRACertificateFile: '$F/good.p7' holds no PEM certificate" \
    "a file without a PEM certificate is refused"
{ cat "$T/up/ra.pem"; sed 's/^M/A/' "$T/up/ra.pem"; } >"$T/broken.pem"
httpd_conf "$(gateway /gw "$UP/upstream" "ScepUpstreamRACertificateFile \"$T/broken.pem\"")"
expect_match "$(configtest)" "ScepUpstreamRACertificateFile: '$T/broken.pem': certificate number 2 cannot be read" \
    "a broken second certificate is refused, not skipped"
t_done

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Forwarding to an upstream CA through a forward proxy.  The upstream is a second mod_scep
# endpoint with its own CA (one that issues at once, one that holds every request for an
# operator); mod_scep in front of it is the RA: it checks the device against its own
# registrations, sends the device's PKCS#10 upstream in a PKCSReq signed with its RA
# certificate through tinyproxy, and answers the device with the upstream's certificate.
# Upstream PENDING, a stopped proxy, a proxy that wants credentials, and an upstream
# refusal are each answered as RFC 8894 says, and nothing is lost: the device's poll
# collects the certificate once the upstream issues.
source "$(dirname "$0")/lib.sh"
t_init
require_module
SCEPREG=${SCEPREG:-$TOP/scepreg}
reg() { timeout 60 "$SCEPREG" "$@"; }

make_pki "$T/up" Upstream
issue_cert "$T/up" gw "Gateway RA" "digitalSignature,keyEncipherment"
CA=$T/up/ca.pem
GW=$T/up/gw.pem
CH=$(openssl rand -hex 12)
reg -c -b "$T/udb" '*' "$CH" 2>/dev/null || die "scepreg: upstream"
reg -c -b "$T/ddb" '*.fwd.example.net' "$CH" 2>/dev/null || die "scepreg: gateway"

# ---- the proxies: tinyproxy, one plain and one asking for credentials ------------------
PPORT=$(free_port)
APORT=$(free_port)
proxy_conf plain "$PPORT"
proxy_conf auth "$APORT" "BasicAuth gateway s3cret-proxy"
proxy_start plain || t_done
proxy_start auth || t_done

# ---- TLS for an https upstream: a server certificate for 127.0.0.1, and one for the
# gateway's client authentication, from a TLS CA of their own ------------------------------
make_ca "$T/tls" "TLS"
tls_cert() {   # tls_cert NAME CN EXTENSIONS
    openssl req -new -newkey rsa:2048 -nodes -keyout "$T/tls/$1.key" -subj "/CN=$2" \
        -out "$T/tls/$1.csr" 2>/dev/null
    printf '%s\n' "$3" >"$T/tls/$1.ext"
    openssl x509 -req -in "$T/tls/$1.csr" -CA "$T/tls/ca.pem" -CAkey "$T/tls/ca.key" \
        -set_serial "0x$(openssl rand -hex 8)" -days 2 -extfile "$T/tls/$1.ext" \
        -out "$T/tls/$1.pem" 2>/dev/null || die "cannot issue TLS certificate $1"
    chmod 644 "$T/tls/$1.key"
}
tls_cert server 127.0.0.1 "subjectAltName=IP:127.0.0.1,DNS:localhost"$'\n'"extendedKeyUsage=serverAuth"
tls_cert client "Gateway client" "extendedKeyUsage=clientAuth"
chmod 755 "$T/tls"
SPORT=$(free_port)
# a stalled upstream: accepts connections and never answers
STALL=$(free_port)
timeout 300 nc -lk 127.0.0.1 "$STALL" >/dev/null 2>&1 &
at_exit "kill $! 2>/dev/null || true"

PORT=$(free_port)
UP="http://127.0.0.1:$PORT"
gateway() {   # gateway PATH UPSTREAM-PATH [DIRECTIVE...]: an RA endpoint in front of it
    local path=$1 upstream=$2
    shift 2
    echo "<Location $path>"
    echo "    SetHandler scep"
    echo "    ScepCACertificateFile \"${GATEWAY_CA:-$CA}\""
    echo "    ScepRACertificateFile \"$GW\""
    echo "    ScepRAKeyFile \"$T/up/gw.key\""
    echo "    ScepDeviceDB $T/ddb"
    echo "    ScepUpstreamURL $UP$upstream"
    echo "    ScepUpstreamTimeout 2 5"
    echo "    ScepUpstreamRetries 0"
    local line
    for line in "$@"; do echo "    $line"; done
    echo "    Require all granted"
    echo "</Location>"
}
httpd_conf "$(
    echo "LoadModule ssl_module $APACHE_MODDIR/mod_ssl.so"
    echo "LoadModule socache_shmcb_module $APACHE_MODDIR/mod_socache_shmcb.so"
    echo "SSLSessionCache shmcb:$T/httpd/run/ssl_scache(512000)"
    echo "Listen 127.0.0.1:$SPORT"
    echo "<VirtualHost 127.0.0.1:$SPORT>"
    echo "    ServerName localhost"
    echo "    SSLEngine on"
    echo "    SSLCertificateFile \"$T/tls/server.pem\""
    echo "    SSLCertificateKeyFile \"$T/tls/server.key\""
    echo "    SSLCACertificateFile \"$T/tls/ca.pem\""
    echo "    SSLVerifyClient require"
    echo "</VirtualHost>"
    scep_location /upstream "$T/up" ra "ScepDeviceDB $T/udb"
    scep_location /upstream-approve "$T/up" ra "ScepDeviceDB $T/udb" "ScepRequireApproval On"
    gateway /ra /upstream "ScepUpstreamProxy http://127.0.0.1:$PPORT"
    gateway /ra-approve /upstream-approve "ScepUpstreamProxy http://127.0.0.1:$PPORT"
    gateway /ra-auth /upstream "ScepUpstreamProxy http://127.0.0.1:$APORT gateway:s3cret-proxy"
    gateway /ra-noauth /upstream "ScepUpstreamProxy http://127.0.0.1:$APORT"
    gateway /ra-direct /upstream
    gateway /ra-down /nowhere "ScepUpstreamProxy http://127.0.0.1:$(free_port)" \
        "ScepUpstreamDownAnswer 503"
    gateway /ra-stalled /upstream "ScepUpstreamURL http://127.0.0.1:$STALL/scep"
    GATEWAY_CA=$T/tls/ca.pem gateway /ra-wrongca /upstream
    gateway /ra-tls /upstream "ScepUpstreamURL https://127.0.0.1:$SPORT/upstream" \
        "ScepUpstreamCAFile \"$T/tls/ca.pem\"" \
        "ScepUpstreamClientCertificate \"$T/tls/client.pem\" \"$T/tls/client.key\""
    gateway /ra-tls-nocert /upstream "ScepUpstreamURL https://127.0.0.1:$SPORT/upstream" \
        "ScepUpstreamCAFile \"$T/tls/ca.pem\""
    gateway /ra-tls-untrusted /upstream "ScepUpstreamURL https://127.0.0.1:$SPORT/upstream" \
        "ScepUpstreamClientCertificate \"$T/tls/client.pem\" \"$T/tls/client.key\""
)"
httpd_start || t_done

# request NAME PATH FQDN: a device's PKCSReq to the gateway, encrypted to its RA; its
# subject only a CN, since a gateway forwards nothing beyond the registration (no O)
request() {
    probe_enrollment_request "$1" "$GW" --challenge "$CH" --san-dns "$3" --subject "/CN=$3"
    echo "$REQ_TXID" >"$T/$1.txid"
    send_request "$1" "$2" POST
}
status() { probe_reply "$1" "$GW" || true; field "$1" pkiStatus; }
poll() {   # poll NAME FROM PATH: a CertPoll for FROM's transaction
    cp "$T/$2.key" "$T/$1.key"
    cp "$T/$2.selfsigned.pem" "$T/$1.selfsigned.pem"
    probe_request "$1" "$GW" --cert "$T/$1.selfsigned.pem" --no-challenge --msgtype 20 \
        --txid "$(cat "$T/$2.txid")" --poll-issuer "$CA" --subject "/CN=$2/O=mod_scep tests"
    send_request "$1" "$3" POST
}

# ---- GetCACert in RA mode -------------------------------------------------------------
http_get "/ra?operation=GetCACert" "$T/cacert.der"
openssl pkcs7 -inform DER -in "$T/cacert.der" -print_certs -out "$T/cacert.pem" 2>/dev/null
expect_eq "$(grep -c 'BEGIN CERT' "$T/cacert.pem")" 2 "GetCACert at the gateway: the upstream CA and the gateway's RA"
expect_match "$(openssl crl2pkcs7 -nocrl -certfile "$T/cacert.pem" | openssl pkcs7 -print_certs -noout)" \
    "Gateway RA" "the RA certificate is the gateway's"

# ---- enrollment through the proxy -------------------------------------------------------
request f1 /ra f1.fwd.example.net
if check_success f1 "$GW" "$CA" "enrollment forwarded through the proxy"; then
    expect_match "$(openssl x509 -in "$T/f1.pem" -noout -issuer)" "Upstream CA" "the upstream CA issued it"
fi
expect_file_contains "$PX/plain.log" "/upstream?operation=PKIOperation" "the proxy's log shows the PKIOperation going upstream"
expect_file_contains "$PX/plain.log" "/upstream?operation=GetCACert" "and the GetCACert fetch"
expect_eq "$(reg -L "$T/ddb" f1.fwd.example.net | tail -n +2 | grep -c .)" 1 "the gateway records the forwarded certificate"
expect_eq "$(reg -L "$T/udb" f1.fwd.example.net | tail -n +2 | grep -c .)" 1 "the upstream recorded it too"
send_request f1 /ra POST
check_success f1 "$GW" "$CA" "a retry gets the recorded certificate" && \
    expect_eq "$(reg -L "$T/udb" | tail -n +2 | grep -c .)" 1 "and nothing is issued twice upstream"

if command -v pki >/dev/null; then
    S=$T/swan
    mkdir -p "$S"
    openssl x509 -in "$CA" -outform DER -out "$S/ca.der"
    openssl x509 -in "$GW" -outform DER -out "$S/gw.der"
    timeout 60 pki --gen --type rsa --size 2048 --outform pem >"$S/key.pem" 2>/dev/null
    if timeout 120 pki --scep --url "http://127.0.0.1:$PORT/ra" --in "$S/key.pem" \
        --dn "CN=swan.fwd.example.net" --san swan.fwd.example.net --password "$CH" \
        --cacert-enc "$S/gw.der" --cacert-sig "$S/gw.der" --cacert "$S/ca.der" \
        --outform pem >"$S/cert.pem" 2>"$S/err" \
        && openssl verify -CAfile "$CA" "$S/cert.pem" >/dev/null 2>&1; then
        pass "strongSwan pki --scep enrolls through the gateway"
    else
        fail "strongSwan through the gateway: $(grep -v -e plugin -e TPM "$S/err" | tail -3)"
    fi
fi

# ---- the upstream holds the request: PENDING, then the poll collects it -----------------
request f2 /ra-approve f2.fwd.example.net
expect_eq "$(status f2)" 3 "upstream PENDING becomes PENDING to the device"
expect_log "SCEP00404: .*request for f2.fwd.example.net .* kept and answered PENDING: the upstream CA answered PENDING" \
    "the gateway logs why it answered PENDING"
expect_match "$(reg -P "$T/ddb" f2.fwd.example.net | tail -1)" $'\tupstream\t' "the gateway keeps the request (state upstream)"
poll f2p1 f2 /ra-approve
expect_eq "$(status f2p1)" 3 "a poll before the upstream decides: PENDING"
expect_log "SCEP00241: .*CertPoll from 127\.0\.0\.1: the request is still waiting" \
    "the gateway polls the upstream with CertPoll once it said PENDING"
reg -Y "$T/udb" f2.fwd.example.net 2>/dev/null && pass "the upstream's operator approves" || fail "scepreg -Y upstream"
poll f2p2 f2 /ra-approve
check_success f2p2 "$GW" "$CA" "the device's poll collects the certificate from upstream" || true

# ---- the proxy is down: PENDING, and the request survives --------------------------------
proxy_stop plain
request f3 /ra f3.fwd.example.net
expect_eq "$(status f3)" 3 "with the proxy stopped, the device gets PENDING"
expect_log "SCEP00404: .*request for f3.fwd.example.net .*127\.0\.0\.1:$PPORT" "the log names the unreachable proxy"
proxy_start plain || t_done
poll f3p f3 /ra
check_success f3p "$GW" "$CA" "once the proxy is back, the poll collects the certificate" || true

# ---- ScepUpstreamDownAnswer 503 -----------------------------------------------------------
request f8 /ra-down f8.fwd.example.net
expect_eq "$HTTP_CODE" 503 "with ScepUpstreamDownAnswer 503, an unreachable upstream is a 503"
expect_match "$(reg -P "$T/ddb" f8.fwd.example.net | tail -1)" $'\tupstream\t' "and the request is kept all the same"

# ---- a CA file that is not the upstream's ------------------------------------------------
request w1 /ra-wrongca w1.fwd.example.net
probe_reply w1 "$GW" || true
expect_log "SCEP00406: the upstream .* does not list the CA certificate of ScepCACertificateFile" \
    "a ScepCACertificateFile that is not the upstream's CA is reported"

# ---- an upstream that accepts and never answers: the timeout holds ----------------------
request f9 /ra-stalled f9.fwd.example.net
expect_eq "$(status f9)" 3 "a stalled upstream: PENDING once ScepUpstreamTimeout has passed"
expect_log "SCEP00404: .*f9.fwd.example.net .*(timed out|Timeout)" "the log says the upstream timed out"

# ---- an https upstream, with TLS client authentication -----------------------------------
request t1 /ra-tls t1.fwd.example.net
check_success t1 "$GW" "$CA" "through an https upstream with a client certificate" || true
request t2 /ra-tls-nocert t2.fwd.example.net
expect_eq "$(status t2)" 3 "without the client certificate the TLS upstream refuses: PENDING"
request t3 /ra-tls-untrusted t3.fwd.example.net
expect_eq "$(status t3)" 3 "an upstream certificate the gateway does not trust: PENDING"
expect_log "SCEP00404: .*t3.fwd.example.net .*(certificate|SSL)" "the log names the TLS problem"

# ---- a proxy that wants credentials ---------------------------------------------------
request f4 /ra-auth f4.fwd.example.net
check_success f4 "$GW" "$CA" "through a proxy with credentials" || true
request f5 /ra-noauth f5.fwd.example.net
expect_eq "$(status f5)" 3 "without them the proxy refuses, and the device gets PENDING"
expect_log "SCEP00404: .*f5.fwd.example.net .*HTTP 407 \(the proxy wants credentials\)" "the log says the proxy wants credentials"

# ---- the upstream refuses ------------------------------------------------------------
reg -b "$T/udb" f6.fwd.example.net "another-$CH" 2>/dev/null
request f6 /ra f6.fwd.example.net
expect_failure f6 "$GW" 2 "an upstream FAILURE reaches the device with its failInfo" || true
expect_log "SCEP00401: .*the upstream CA refused it \(badRequest\)" "the refusal is logged with the upstream's reason"

# ---- names beyond the registration never reach the upstream ----------------------------
probe_enrollment_request f7 "$GW" --challenge "$CH" --san-dns f7.fwd.example.net \
    --unstructured-address 192.0.2.77 --subject /CN=f7.fwd.example.net
send_request f7 /ra POST
expect_failure f7 "$GW" 2 "a request that also asks for an address the registration lacks" || true
expect_log "SCEP00405: .*the unstructuredAddress 192.0.2.77, which the registration \*.fwd.example.net does not hold" \
    "the refusal names what was asked beyond the registration"
expect_eq "$(reg -L "$T/udb" f7.fwd.example.net | tail -n +2 | grep -c .)" 0 "nothing went upstream for it"

# ---- point 8 at the upstream: one device's transactionID is not another's there -----------
# The upstream sees every device as the gateway's RA key: with the device's own ID, f8's
# request would be "a different request" under f1's transaction there.
probe_enrollment_request f8 "$GW" --challenge "$CH" --san-dns f8.fwd.example.net \
    --subject /CN=f8.fwd.example.net --txid "$(cat "$T/f1.txid")"
send_request f8 /ra POST
check_success f8 "$GW" "$CA" "point8 another device under f1's transactionID enrolls upstream" || true
expect_eq "$(reg -L "$T/udb" f8.fwd.example.net | tail -n +2 | cut -f7 | grep -c "^$(cat "$T/f1.txid")\$")" 0 \
    "point8 the upstream never saw the device's own transactionID"

check_error_log '\[scep:warn\] .*SCEP00431: ' '\[scep:warn\] .*SCEP0040[1456]: ' '\[scep:warn\] .*SCEP0021[25]: '

# ---- configuration mistakes ----------------------------------------------------------
httpd_stop
configtest() { httpd_configtest; cat "$HTTPD_ROOT/configtest.out"; }
httpd_conf "$(scep_location /ra "$T/up" ra "ScepDeviceDB $T/ddb" "ScepUpstreamURL $UP/upstream")"
expect_match "$(configtest)" "no CA key file" "forwarding with a CA key configured is refused at startup"
httpd_conf "$(scep_location /ra "$T/up" ra "ScepDeviceDB $T/ddb" "ScepUpstreamURL ftp://x/")"
expect_match "$(configtest)" "ScepUpstreamURL: 'ftp://x/' is not an http:// or https:// URL" \
    "an upstream URL that is not http(s) is refused"
httpd_conf "$(scep_location /ra "$T/up" ra "ScepUpstreamProxy http://127.0.0.1:1 nocolon")"
expect_match "$(configtest)" "the credentials are user:password" "proxy credentials without a colon are refused"
t_done

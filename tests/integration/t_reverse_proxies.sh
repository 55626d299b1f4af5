#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The reverse-proxy examples of conf-examples/reverse-proxy/, run for real in front of
# httpd: nginx, HAProxy (X-Forwarded-For and the PROXY protocol) and Apache mod_proxy.
# Through each: GetCACaps, an HTTP/1.0 client, no redirect to HTTPS on the SCEP path (but
# elsewhere), a GET enrollment with a request line over 16 KB (4096-bit key, long
# challenge), '+' and '%0A' in the message parameter, and a registration bound to the
# device's IP address, which reaches mod_scep through mod_remoteip.
source "$(dirname "$0")/lib.sh"
t_init
require_module
SCEPREG=${SCEPREG:-$TOP/scepreg}
reg() { timeout 60 "$SCEPREG" "$@"; }
EX=$TOP/conf-examples/reverse-proxy
[[ -f "$EX/nginx-scep.conf" ]] || EX=$(dirname "$0")/../../conf-examples/reverse-proxy
NGINX=$(command -v nginx || true)
HAPROXY=$(command -v haproxy || true)
[[ -n "$NGINX" && -n "$HAPROXY" ]] || die "nginx and haproxy are needed (packages nginx-light, haproxy)"
DEVICE_IP=127.0.0.50          # the device's own address, as proxies see it

make_pki "$T/pki" Proxied
RA=$T/pki/ra.pem
CA=$T/pki/ca.pem
LONG=$(openssl rand -hex 4000)        # an Intune-sized challenge: 8000 characters
CH=$(openssl rand -hex 12)
reg -c -b "$T/db" '*.rp.example.net' "$LONG" 2>/dev/null || die "scepreg: wildcard"
reg -b -a "$DEVICE_IP" "$T/db" ipdev.rp-bound.example.net "$CH" 2>/dev/null || die "scepreg: ipdev"

PORT=$(free_port)       # httpd: mod_scep, X-Forwarded-For from proxies
PPPORT=$(free_port)     # httpd: mod_scep, PROXY protocol
APORT=$(free_port)      # httpd: the mod_proxy front
NPORT=$(free_port)      # nginx
HPORT=$(free_port)      # HAProxy, X-Forwarded-For
HPPPORT=$(free_port)    # HAProxy, PROXY protocol
backend_vhost() {       # the SCEP endpoint, in the virtual host of one port
    echo "<VirtualHost 127.0.0.1:$1>"
    scep_location /scep "$T/pki" ra "ScepDeviceDB $T/db" "ScepCheckClientAddress On"
    echo "</VirtualHost>"
}
httpd_conf "$(
    for m in remoteip proxy proxy_http alias; do
        echo "LoadModule ${m}_module $APACHE_MODDIR/mod_$m.so"
    done
    # the example's PROXY-protocol virtual host, with the SCEP endpoint put into it
    scep_location /scep "$T/pki" ra "ScepDeviceDB $T/db" "ScepCheckClientAddress On" \
        >"$T/endpoint.conf"
    sed -e "s/127\.0\.0\.1:8081/127.0.0.1:$PPPORT/g" \
        -e "/RemoteIPProxyProtocol On/r $T/endpoint.conf" "$EX/backend-remoteip.conf"
    backend_vhost "$PORT"
    echo "Listen 127.0.0.1:$APORT"
    sed -e "s/<VirtualHost \*:80>/<VirtualHost 127.0.0.1:$APORT>/" \
        -e "s/127\.0\.0\.1:8080/127.0.0.1:$PORT/g" "$EX/apache-mod_proxy-scep.conf"
)"
httpd_start || t_done

# ---- nginx and HAProxy from the examples --------------------------------------------
NG=$T/nginx
mkdir -p "$NG/tmp"
chmod 777 "$NG/tmp"
{
    echo "daemon off; pid $NG/nginx.pid; error_log $NG/error.log;"
    [[ $(id -u) == 0 ]] && echo "user nobody nogroup;"
    echo "events { worker_connections 64; }"
    echo "http {"
    echo "  access_log $NG/access.log; client_body_temp_path $NG/tmp/body; proxy_temp_path $NG/tmp/proxy;"
    echo "  fastcgi_temp_path $NG/tmp/f; uwsgi_temp_path $NG/tmp/u; scgi_temp_path $NG/tmp/s;"
    sed -e "s/listen 80;/listen 127.0.0.1:$NPORT;/" -e "s/127\.0\.0\.1:8080/127.0.0.1:$PORT/g" \
        "$EX/nginx-scep.conf"
    echo "}"
} >"$NG/nginx.conf"
timeout 900 "$NGINX" -c "$NG/nginx.conf" -p "$NG" >"$NG/out" 2>&1 &
at_exit "kill $! 2>/dev/null || true"
HA=$T/haproxy
mkdir -p "$HA"
{
    sed -e "s/bind :80/bind 127.0.0.1:$HPORT/" -e "s/127\.0\.0\.1:8080/127.0.0.1:$PORT/g" \
        -e "s/127\.0\.0\.1:8081/127.0.0.1:$PPPORT/g" "$EX/haproxy-scep.cfg"
    printf '\nfrontend scep_front_proxyproto\n    bind 127.0.0.1:%s\n%s\n    default_backend scep_proxyproto\n' \
        "$HPPPORT" "$(grep 'http-request redirect' "$EX/haproxy-scep.cfg")"
} >"$HA/haproxy.cfg"
timeout 900 "$HAPROXY" -db -f "$HA/haproxy.cfg" >"$HA/out" 2>&1 &
at_exit "kill $! 2>/dev/null || true"
for port in "$NPORT" "$HPORT" "$HPPPORT"; do
    for _ in $(seq 50); do nc -z 127.0.0.1 "$port" 2>/dev/null && break; sleep 0.1; done
done
nc -z 127.0.0.1 "$NPORT" || die "nginx did not start: $(cat "$NG/out" "$NG/error.log" 2>/dev/null)"
nc -z 127.0.0.1 "$HPORT" || die "haproxy did not start: $(cat "$HA/out")"

# one 4096-bit device key for all long requests (each request gets its own transactionID)
make_key "$T/big.key" 4096

# through NAME PORT: the checks, through the proxy listening on PORT
through() {
    local name=$1 front=$2 saved=$PORT r
    PORT=$front
    http_get "/scep?operation=GetCACaps" "$T/$name.caps"
    expect_eq "$HTTP_CODE" 200 "$name: GetCACaps"
    http_get "/scep?operation=GetCACert" "$T/$name.cacert" --http1.0
    expect_eq "$HTTP_CODE $(cmp -s "$T/$name.cacert" "$T/direct.cacert" && echo same)" "200 same" \
        "$name: an HTTP/1.0 client gets GetCACert"
    http_get "/elsewhere" "$T/$name.other"
    expect_eq "$HTTP_CODE" 301 "$name: other paths are redirected to HTTPS, the SCEP path is not"

    # a request line over 16 KB, by GET
    r=$name-long
    cp "$T/big.key" "$T/$r.key"
    probe_enrollment_request "$r" "$RA" --challenge "$LONG" --san-dns "$r.rp.example.net" \
        --txid "$r-$RANDOM"
    local msg
    msg=$(b64_encode std <"$T/$r.req")
    expect_eq "$(( ${#msg} + 40 > 16384 ))" 1 "$name: the GET request line is over 16 KB ($(( ${#msg} + 40 )) bytes)"
    send_request "$r" /scep GET-std
    check_success "$r" "$RA" "$CA" "$name: long GET enrollment (4096-bit key, 8000-character challenge)" || true

    # '+' left literal, and %0A between 64-column lines
    for enc in plus lines64; do
        r=$name-$enc
        probe_enrollment_request "$r" "$RA" --challenge "$LONG" --san-dns "$r.rp.example.net"
        send_request "$r" /scep "GET-$enc"
        check_success "$r" "$RA" "$CA" "$name: GET with the $enc encoding" || true
    done

    # a registration bound to the device's address: it must arrive as the client address
    r=$name-ip
    probe_enrollment_request "$r" "$RA" --challenge "$CH" --san-dns ipdev.rp-bound.example.net
    http_post "/scep?operation=PKIOperation" "$T/$r.req" "$T/$r.rep" --interface "$DEVICE_IP"
    check_success "$r" "$RA" "$CA" "$name: IP-bound registration, device at $DEVICE_IP" || true
    PORT=$saved
}

http_get "/scep?operation=GetCACert" "$T/direct.cacert"
# control: straight to httpd from 127.0.0.1, the IP-bound registration refuses
probe_enrollment_request direct-ip "$RA" --challenge "$CH" --san-dns ipdev.rp-bound.example.net
send_request direct-ip /scep POST
expect_failure direct-ip "$RA" 2 "control: from 127.0.0.1 the IP-bound registration refuses" || true

through nginx "$NPORT"
through haproxy "$HPORT"
through haproxy-proxy-protocol "$HPPPORT"
through apache-mod_proxy "$APORT"

check_error_log '\[scep:warn\] .*SCEP00212: .*PKCSReq from 127\.0\.0\.1 for ipdev\.rp-bound\.example\.net refused' \
    '\[remoteip:notice\] .*AH03492: '
t_done

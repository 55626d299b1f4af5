#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Forwarding to an upstream CA that is not mod_scep: micromdm's scepserver 2.1 (Debian
# package scep), reached through tinyproxy.  scepserver listens on every interface, so the
# test runs in a network namespace of its own, where only the loopback exists.  It answers
# with single-DES envelopes and SHA-1 signatures, which the forwarder accepts from
# upstream (it never offers them to devices).
if [[ -z "${SCEP_NETNS:-}" ]]; then
    if [[ $(id -u) == 0 ]] && command -v ip >/dev/null \
        && unshare --net -- true 2>/dev/null; then
        exec unshare --net -- env SCEP_NETNS=1 bash "$0" "$@"
    fi
fi
source "$(dirname "$0")/lib.sh"
t_init
require_module
if [[ -z "${SCEP_NETNS:-}" ]]; then
    note "needs a network namespace (root, unshare --net, ip), which this machine refuses: skipped"
    t_done
fi
ip link set lo up || die "cannot bring up the namespace's loopback"
command -v scepserver >/dev/null || die "scepserver is not installed (package scep)"
command -v tinyproxy >/dev/null || die "tinyproxy is not installed"
SCEPREG=${SCEPREG:-$TOP/scepreg}
reg() { timeout 60 "$SCEPREG" "$@"; }

CH=$(openssl rand -hex 12)
MM=$T/mm
mkdir -p "$MM"
(cd "$MM" && timeout 120 scepserver ca -init -depot "$MM/depot" -keySize 2048 \
    -organization "micromdm upstream" >"$MM/init.log" 2>&1) || die "scepserver ca -init: $(cat "$MM/init.log")"
MPORT=$(free_port)
start_micromdm() {
    timeout 600 scepserver -depot "$MM/depot" -port "$MPORT" -challenge "$CH" \
        >>"$MM/server.log" 2>&1 &
    MM_PID=$!
    at_exit "kill $MM_PID 2>/dev/null || true"
    for _ in $(seq 50); do nc -z 127.0.0.1 "$MPORT" 2>/dev/null && break; sleep 0.1; done
    nc -z 127.0.0.1 "$MPORT" || die "scepserver did not start: $(cat "$MM/server.log")"
}
start_micromdm

PX=$T/proxy
mkdir -p "$PX"
chmod 711 "$T"
chmod 777 "$PX"
PPORT=$(free_port)
printf 'Port %s\nListen 127.0.0.1\nTimeout 30\nLogFile "%s"\nLogLevel Info\nPidFile "%s"\nAllow 127.0.0.1\nUser nobody\nGroup nogroup\n' \
    "$PPORT" "$PX/proxy.log" "$PX/proxy.pid" >"$PX/proxy.conf"
timeout 600 tinyproxy -d -c "$PX/proxy.conf" >"$PX/proxy.out" 2>&1 &
at_exit "kill $! 2>/dev/null || true"
for _ in $(seq 50); do nc -z 127.0.0.1 "$PPORT" 2>/dev/null && break; sleep 0.1; done

make_pki "$T/gw" Gateway
reg -c -b "$T/db" '*.mm.example.net' "$CH" 2>/dev/null || die "scepreg"
httpd_conf "$(
    echo "<Location /ra>"
    echo "    SetHandler scep"
    echo "    ScepCACertificateFile \"$MM/depot/ca.pem\""
    echo "    ScepRACertificateFile \"$T/gw/ra.pem\""
    echo "    ScepRAKeyFile \"$T/gw/ra.key\""
    echo "    ScepDeviceDB $T/db"
    echo "    ScepUpstreamURL http://127.0.0.1:$MPORT/scep"
    echo "    ScepUpstreamProxy http://127.0.0.1:$PPORT"
    echo "    Require all granted"
    echo "</Location>"
)"
httpd_start || t_done

probe_enrollment_request m1 "$T/gw/ra.pem" --challenge "$CH" --san-dns m1.mm.example.net \
    --subject /CN=m1.mm.example.net
send_request m1 /ra POST
if check_success m1 "$T/gw/ra.pem" "$MM/depot/ca.pem" "enrollment issued by micromdm's scepserver through the proxy"; then
    expect_match "$(openssl x509 -in "$T/m1.pem" -noout -issuer)" "micromdm upstream" "the micromdm CA issued it"
fi
expect_file_contains "$PX/proxy.log" "127.0.0.1:$MPORT/scep?operation=PKIOperation" "the PKIOperation went through the proxy"
expect_eq "$(reg -L "$T/db" m1.mm.example.net | tail -n +2 | grep -c .)" 1 "the gateway records the certificate"

if command -v pki >/dev/null; then
    S=$T/swan
    mkdir -p "$S"
    openssl x509 -in "$MM/depot/ca.pem" -outform DER -out "$S/ca.der"
    openssl x509 -in "$T/gw/ra.pem" -outform DER -out "$S/ra.der"
    timeout 60 pki --gen --type rsa --size 2048 --outform pem >"$S/key.pem" 2>/dev/null
    if timeout 120 pki --scep --url "http://127.0.0.1:$PORT/ra" --in "$S/key.pem" \
        --dn "CN=swan.mm.example.net" --san swan.mm.example.net --password "$CH" \
        --cacert-enc "$S/ra.der" --cacert-sig "$S/ra.der" --cacert "$S/ca.der" \
        --outform pem >"$S/cert.pem" 2>"$S/err" \
        && openssl verify -CAfile "$MM/depot/ca.pem" "$S/cert.pem" >/dev/null 2>&1; then
        pass "strongSwan enrolls through the gateway with micromdm issuing"
    else
        fail "strongSwan with micromdm upstream: $(grep -v -e plugin -e TPM "$S/err" | tail -3)"
    fi
fi

# micromdm stopped: PENDING, and once it is back the device's poll collects the certificate
kill "$MM_PID" 2>/dev/null || true
wait "$MM_PID" 2>/dev/null || true
probe_enrollment_request m3 "$T/gw/ra.pem" --challenge "$CH" --san-dns m3.mm.example.net \
    --subject /CN=m3.mm.example.net
M3_TXID=$REQ_TXID
send_request m3 /ra POST
probe_reply m3 "$T/gw/ra.pem" || true
expect_eq "$(field m3 pkiStatus)" 3 "with the upstream stopped, the device gets PENDING"
start_micromdm
cp "$T/m3.key" "$T/m3p.key"
cp "$T/m3.selfsigned.pem" "$T/m3p.selfsigned.pem"
probe_request m3p "$T/gw/ra.pem" --cert "$T/m3p.selfsigned.pem" --no-challenge --msgtype 20 \
    --txid "$M3_TXID" --poll-issuer "$MM/depot/ca.pem" --subject "/CN=m3/O=mod_scep tests"
send_request m3p /ra POST
check_success m3p "$T/gw/ra.pem" "$MM/depot/ca.pem" "once micromdm is back, the poll collects the certificate" || true

# micromdm refuses a wrong challenge; the device learns it with the upstream's failInfo
reg -b "$T/db" bad.mm.example.net "not-$CH" 2>/dev/null
probe_enrollment_request bad "$T/gw/ra.pem" --challenge "not-$CH" --san-dns bad.mm.example.net \
    --subject /CN=bad.mm.example.net
send_request bad /ra POST
expect_failure bad "$T/gw/ra.pem" 2 "micromdm's FAILURE reaches the device" || true
expect_log "SCEP00401: .*the upstream CA refused it" "the gateway logs micromdm's refusal"

check_error_log '\[scep:warn\] .*SCEP00431: ' '\[scep:warn\] .*SCEP0040[145]: '
t_done

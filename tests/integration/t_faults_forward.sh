#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The upstream CA and the forward proxy stop in the middle of a run.  A gateway (mod_scep
# as RA, ScepUpstreamProxy through tinyproxy) is loaded by scepload, whose clients send
# the same request again after PENDING or a 5xx (-r); the proxy stops, then the upstream
# httpd, then both come back.  Requests during the outage are kept and answered PENDING;
# the same requests sent again afterwards collect their certificates; the upstream issued
# exactly one certificate per transaction; every SUCCESS the gateway sent is recorded.
source "$(dirname "$0")/lib.sh"
t_init
require_module
SCEPREG=${SCEPREG:-$TOP/scepreg}
SCEPLOAD=${SCEPLOAD:-$TOP/scepload}
[[ -x "$SCEPLOAD" ]] || die "scepload not built: $SCEPLOAD"
reg() { timeout 60 "$SCEPREG" "$@"; }

make_pki "$T/up" Upstream
issue_cert "$T/up" gw "Gateway RA" "digitalSignature,keyEncipherment"
CH=$(openssl rand -hex 12)
reg -c -b "$T/udb" '*' "$CH" 2>/dev/null || die "scepreg: upstream"
reg -c -b "$T/ddb" '*.fwd.example.net' "$CH" 2>/dev/null || die "scepreg: gateway"

# ---- the forward proxy -------------------------------------------------------------------
PPORT=$(free_port)
proxy_conf fwd "$PPORT"

# ---- the upstream CA: an httpd of its own, so that it can stop while the gateway runs ------
PORT=$(free_port)
UPORT=$PORT
httpd_conf "$(scep_location /upstream "$T/up" ra "ScepDeviceDB $T/udb")"
mv "$T/httpd" "$T/uphttpd"
sed -i "s#$T/httpd#$T/uphttpd#g" "$T/uphttpd/httpd.conf"
UP_PID=""
up_start() {
    "$HTTPD" -f "$T/uphttpd/httpd.conf" -d "$T/uphttpd" -DFOREGROUND >>"$T/uphttpd/stderr" 2>&1 &
    UP_PID=$!
    at_exit "kill $UP_PID 2>/dev/null || true"
    for _ in $(seq 50); do
        curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$UPORT/upstream?operation=GetCACaps" && return 0
        sleep 0.1
    done
    fail "the upstream httpd did not start: $(tail -3 "$T/uphttpd/stderr")"
}
up_stop() {
    kill -TERM "$UP_PID" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$UP_PID" 2>/dev/null || break
        sleep 0.1
    done
    wait "$UP_PID" 2>/dev/null || true
}

# ---- the gateway (lib.sh's httpd) ----------------------------------------------------------
PORT=$(free_port)
httpd_conf "$(
    echo "<Location /ra>"
    echo "    SetHandler scep"
    echo "    ScepCACertificateFile \"$T/up/ca.pem\""
    echo "    ScepRACertificateFile \"$T/up/gw.pem\""
    echo "    ScepRAKeyFile \"$T/up/gw.key\""
    echo "    ScepDeviceDB $T/ddb"
    echo "    ScepUpstreamURL http://127.0.0.1:$UPORT/upstream"
    echo "    ScepUpstreamProxy http://127.0.0.1:$PPORT"
    echo "    ScepUpstreamTimeout 2 5"
    echo "    ScepUpstreamRetries 0"
    echo "    Require all granted"
    echo "</Location>"
)"
proxy_start fwd || t_done
up_start
httpd_start || t_done

N=120
timeout 300 "$SCEPLOAD" -u "http://127.0.0.1:$PORT/ra" -C "$CH" -d fwd.example.net -n "$N" \
    -c 4 -p 20 -r 60 -t 200 -q -k "$T/pool.pem" -S "$T/fwd.serials" >"$T/fwd.out" 2>"$T/fwd.err" &
LOAD=$!
at_exit "kill $LOAD 2>/dev/null || true"
for _ in $(seq 600); do
    [[ $(grep -c . "$T/fwd.serials" 2>/dev/null || true) -ge 10 ]] && break
    kill -0 "$LOAD" 2>/dev/null || break
    sleep 0.1
done
before=$(grep -c . "$T/fwd.serials" || true)
proxy_stop fwd
note "proxy stopped after $before certificates"
sleep 3
up_stop
note "upstream stopped after $(grep -c . "$T/fwd.serials" || true) certificates"
sleep 3
during=$(grep -c . "$T/fwd.serials" || true)
proxy_start fwd || t_done
sleep 2
up_start
note "both back after $during certificates"
rc=0
wait "$LOAD" || rc=$?
note "scepload: $(grep 'enrollments:' "$T/fwd.out")"
grep -E 'sent again|failed:' "$T/fwd.out" | sed 's/^/       | /' || true
expect_eq "$rc" 0 "all $N enrollments succeeded across the outage"
pending=$(grep 'sent again:.*after PENDING' "$T/fwd.out" | awk '{s += $3} END {print s + 0}')
((pending > 0)) && pass "requests during the outage were answered PENDING ($pending times) and sent again" \
    || fail "no PENDING answer during the outage"
expect_log 'SCEP00404: scep\([0-9a-f]+,PKIOperation\): request for dev[0-9]+\.fwd\.example\.net from 127\.0\.0\.1 is kept and answered PENDING' \
    "the gateway says it kept a request (SCEP00404)"
expect_log 'SCEP00220: .*after waiting for the upstream CA' "a kept request was issued once the upstream was back"

# what the devices received, the gateway recorded and the upstream issued
tr ' ' '\t' <"$T/fwd.serials" | sort >"$T/received.tsv"
reg -L "$T/ddb" | tail -n +2 | cut -f1,2,7 | sort >"$T/gateway.tsv"
reg -L "$T/udb" | tail -n +2 | cut -f1,7 | sort >"$T/upstream.tsv"
expect_eq "$(grep -c . "$T/received.tsv")" "$N" "$N certificates received"
expect_eq "$(comm -23 "$T/received.tsv" "$T/gateway.tsv" | wc -l)" 0 \
    "every SUCCESS the gateway sent is in its records (device and transaction)"
expect_eq "$(grep -c . "$T/gateway.tsv")" "$N" "the gateway recorded $N certificates"
expect_eq "$(grep -c . "$T/upstream.tsv")" "$N" "the upstream issued $N certificates: one per transaction"
expect_eq "$(cut -f2 "$T/upstream.tsv" | sort -u | wc -l)" "$N" "$N distinct transactions upstream"
# upstream the gateway's transactionIDs are its own (derived from the device's key and ID,
# docs/security.md point 8), so a certificate is matched by its serial
expect_eq "$(cut -f1 "$T/received.tsv" | sort | comm -23 - <(cut -f1 "$T/upstream.tsv" | sort) \
    | wc -l)" 0 "each certificate received is one the upstream issued"
expect_eq "$(reg -P "$T/ddb" | tail -n +2 | grep -c . || true)" 0 "no request is left waiting at the gateway"
expect_match "$(reg -V "$T/ddb")" "^$N certificates, $N transactions \\($N issued\\), $N index entries: consistent\$" \
    "scepreg -V: the gateway's database is consistent"
expect_match "$(reg -V "$T/udb")" "^$N certificates, $N transactions \\($N issued\\), $N index entries: consistent\$" \
    "scepreg -V: the upstream's database is consistent"

check_error_log '\[scep:warn\] .*SCEP00431: ' '\[scep:warn\] .*SCEP00404: ' '\[scep:error\] .*SCEP00402: ' \
    '\[scep:warn\] .*SCEP0040[0-9]: '
t_done

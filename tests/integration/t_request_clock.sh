#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The time a decision is made at is when the request is in hand, not when its first line
# arrived (issue 16's review): a client that sends its body or its headers slowly must
# not carry an old clock into the decision.
#  - a minted challenge that expires while the request body trickles in is refused
#    (with the request line's time it was accepted, and issued);
#  - a CRL request whose headers trickle in while another request builds the CRL is
#    served that CRL, not a newer-numbered one dated earlier.
source "$(dirname "$0")/lib.sh"
t_init
require_module
require_probe
command -v python3 >/dev/null || die "python3 is needed for the slow client"
SCEPREG=${SCEPREG:-$TOP/scepreg}
reg() { timeout 60 "$SCEPREG" "$@"; }

make_pki "$T/pki" Clock
RA=$T/pki/ra.pem
DB=$T/db
reg -c -n "$DB" '*.clock.example' </dev/null >/dev/null 2>&1 || die "scepreg: wildcard"
PORT=$(free_port)
httpd_conf "$(
    scep_location /scep "$T/pki" ra "ScepDeviceDB $DB"
    scep_location /crl "$T/pki" nora "SetHandler scep-crl" "ScepDeviceDB $DB"
)"
httpd_start || t_done

# control: a fresh minted challenge works, so the refusal below is the clock's doing
CH=$(reg -M -T 60 "$DB") || die "scepreg -M"
enroll fast /scep POST "$RA" "$T/pki/ca.pem" "$RA" --challenge "$CH" \
    --san-dns fast.clock.example && pass "a minted challenge sent at once is issued"

# a challenge valid for 3 s, in a body sent at a rate that takes about 7 s
CH=$(reg -M -T 3 "$DB") || die "scepreg -M"
probe_enrollment_request slow "$RA" --challenge "$CH" --san-dns slow.clock.example
size=$(stat -c %s "$T/slow.req")
http_post "/scep?operation=PKIOperation" "$T/slow.req" "$T/slow.rep" \
    --limit-rate "$(( size / 7 + 1 ))"
expect_eq "$HTTP_CODE" 200 "the slow request is answered with a CertRep"
probe_reply slow "$RA" || true
expect_eq "$(field slow pkiStatus)" 2 \
    "a minted challenge that expired while the body arrived is refused (FAILURE)"
expect_eq "$(field slow failInfo)" 2 "… with failInfo badRequest"
expect_log "minted challenge expired" "the refusal is logged with its reason"

# the CRL: a slow request starts first, a fast one builds the CRL, the slow one ends
python3 - "$PORT" "$T/slow.crl.http" <<'PY' &
import socket, sys, time
port, out = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=30)
s.sendall(b"GET /crl HTTP/1.1\r\nHost: 127.0.0.1\r\n")
time.sleep(4)
s.sendall(b"Connection: close\r\n\r\n")
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
open(out, "wb").write(data)
PY
slow_pid=$!
sleep 1.5
http_get /crl "$T/fast.crl"
expect_eq "$HTTP_CODE" 200 "the CRL is served"
wait "$slow_pid" || fail "the slow CRL client failed"
python3 - "$T/slow.crl.http" "$T/slow.crl" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
open(sys.argv[2], "wb").write(data.split(b"\r\n\r\n", 1)[1])
PY
crl_number() { openssl crl -inform DER -in "$1" -noout -crlnumber 2>/dev/null | sed 's/.*=//'; }
fast_n=$(crl_number "$T/fast.crl")
slow_n=$(crl_number "$T/slow.crl")
[[ -n "$fast_n" && -n "$slow_n" ]] || fail "both CRLs parse (fast '$fast_n', slow '$slow_n')"
expect_eq "$slow_n" "$fast_n" \
    "the slow request gets the CRL the fast one built, not a newer-numbered, earlier one"

check_error_log '\[scep:warn\] .*SCEP00212: .*minted challenge expired'
t_done

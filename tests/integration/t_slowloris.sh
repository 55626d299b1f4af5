#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Issue 15, point 9: slow clients cannot hold every connection of the demo.  The test
# starts conf-examples/demo.sh itself (its generated configuration is what ships), opens
# more slow clients than the demo has workers (event MPM defaults: 400), half of them
# trickling their request headers and half a POST body, one byte every 5 s, and then
# shows that GetCACaps and an enrollment with scep_probe still succeed within a bounded
# wait, and that mod_reqtimeout cut every slow client (closed by the server, 408 for the
# bodies, SCEP00250 and AH01382 in the log).  Without mod_reqtimeout the slow clients
# hold every worker for as long as they trickle, and GetCACaps times out.
#
# Environment: SLOW_CLIENTS (default 450), SLOW_SECONDS (how long the slow clients keep
# trickling at most, default 100).
source "$(dirname "$0")/lib.sh"
t_init
require_probe
command -v python3 >/dev/null || die "python3 is needed for the slow clients"
[[ -f "$TOP/conf-examples/demo.sh" ]] || die "no conf-examples/demo.sh under $TOP"

SLOW_CLIENTS=${SLOW_CLIENTS:-450}
SLOW_SECONDS=${SLOW_SECONDS:-100}
# the longest a normal request may wait: the header timeout the demo sets (20 s, up to
# 40 s while bytes arrive at MinRate) plus the time httpd needs to hand out the workers
# that frees; well below SLOW_SECONDS, so that without the timeouts it must fail
NORMAL_WAIT=55
(( SLOW_CLIENTS + 20 < $(ulimit -n) )) || die "ulimit -n is too small for $SLOW_CLIENTS clients"

DEMO_PORT=$(free_port)
STATE=$T/state
DEMO_PID=""
stop_demo() {
    [[ -n "$DEMO_PID" ]] || return 0
    # demo.sh execs Apache in the foreground, so its pid is Apache's parent
    kill -TERM "$DEMO_PID" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$DEMO_PID" 2>/dev/null || { DEMO_PID=""; return 0; }
        sleep 0.2
    done
    kill -KILL "$DEMO_PID" 2>/dev/null || true
    DEMO_PID=""
    return 1
}
at_exit stop_demo

SCEP_PORT=$DEMO_PORT SCEP_STATE_DIR=$STATE bash "$TOP/conf-examples/demo.sh" \
    >"$T/demo.out" 2>"$T/demo.err" &
DEMO_PID=$!
for _ in $(seq 600); do
    grep -q '^challenge: ' "$T/demo.out" 2>/dev/null && break
    kill -0 "$DEMO_PID" 2>/dev/null || break
    sleep 0.5
done
URL=$(sed -n 's/^url: //p' "$T/demo.out")
CHAL=$(sed -n 's/^challenge: //p' "$T/demo.out")
DB=$(sed -n 's/^db: //p' "$T/demo.out")
if [[ -z "$URL" || -z "$CHAL" || -z "$DB" ]]; then
    sed 's/^/       | /' "$T/demo.err" | tail -30
    die "demo.sh printed no url:/challenge:/db: lines"
fi
[[ "$DB" == /var/lib/mod_scep-demo/* ]] && at_exit "rm -rf '${DB%/devices}'"
caps=""
for _ in $(seq 100); do
    caps=$(curl -s --max-time 5 "$URL?operation=GetCACaps" || true)
    [[ -n "$caps" ]] && break
    sleep 0.2
done
expect_match "$caps" 'POSTPKIOperation' "the demo answers GetCACaps before the slow clients come"

# what the demo ships: mod_reqtimeout loaded, its limits from scep-minimal.conf
expect_file_matches "$STATE/httpd.conf" '^LoadModule reqtimeout_module .*/mod_reqtimeout\.so$' \
    "the demo's httpd.conf loads mod_reqtimeout"
expect_file_matches "$STATE/scep.conf" '^ *RequestReadTimeout header=20-40,MinRate=500 body=10,MinRate=500$' \
    "the demo's scep.conf (from scep-minimal.conf) sets RequestReadTimeout"

# ---- the slow clients --------------------------------------------------------------------
cat >"$T/slow.py" <<'EOF'
# slow.py PORT COUNT SECONDS OUT: COUNT connections to 127.0.0.1:PORT, even ones
# trickling request headers, odd ones a POST body, one byte each every 5 s, for at most
# SECONDS; OUT.started once all are open, then OUT (JSON) when all were closed by the
# server or the time is up.
import json, selectors, socket, sys, time

port, count, seconds, out = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
HEAD = b"GET /scep?operation=GetCACaps HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
BODY = (b"POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-pki-message\r\nContent-Length: 3000\r\n\r\n0")
start = time.monotonic()
sel = selectors.DefaultSelector()
conns = {}
for i in range(count):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(HEAD if i % 2 == 0 else BODY)
    s.setblocking(False)
    conns[s] = {"kind": "header" if i % 2 == 0 else "body", "opened": time.monotonic() - start,
                "closed": None, "answer": b""}
    sel.register(s, selectors.EVENT_READ)
open(out + ".started", "w").write("%d\n" % count)

def close(s, now):
    info = conns[s]
    if info["closed"] is None:
        info["closed"] = now
        sel.unregister(s)
        s.close()

next_byte = time.monotonic() + 5
while time.monotonic() - start < seconds and any(c["closed"] is None for c in conns.values()):
    for key, _ in sel.select(timeout=0.5):
        s = key.fileobj
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if data:
            conns[s]["answer"] += data[:200]
        else:
            close(s, time.monotonic() - start)
    if time.monotonic() >= next_byte:
        next_byte += 5
        for s, info in list(conns.items()):
            if info["closed"] is None:
                try:
                    s.send(b"x" if info["kind"] == "header" else b"0")
                except OSError:
                    close(s, time.monotonic() - start)
for s, info in conns.items():
    if info["closed"] is None:
        s.close()
summary = {"count": count, "elapsed": time.monotonic() - start, "kinds": {}}
for info in conns.values():
    k = summary["kinds"].setdefault(info["kind"], {"open": 0, "closed": 0, "408": 0,
                                                   "held_max": 0.0})
    if info["closed"] is None:
        k["open"] += 1
    else:
        k["closed"] += 1
        k["held_max"] = max(k["held_max"], info["closed"] - info["opened"])
    k["408"] += info["answer"].startswith(b"HTTP/1.1 408")
json.dump(summary, open(out, "w"))
EOF

timeout $((SLOW_SECONDS + 60)) python3 "$T/slow.py" "$DEMO_PORT" "$SLOW_CLIENTS" "$SLOW_SECONDS" \
    "$T/slow.json" 2>"$T/slow.err" &
SLOW_PID=$!
at_exit "kill $SLOW_PID 2>/dev/null || true"
for _ in $(seq 300); do
    [[ -s "$T/slow.json.started" ]] && break
    kill -0 "$SLOW_PID" 2>/dev/null || break
    sleep 0.1
done
[[ -s "$T/slow.json.started" ]] || { sed 's/^/       | /' "$T/slow.err"; die "the slow clients did not connect"; }
note "$SLOW_CLIENTS slow clients connected (the demo has 400 workers: event MPM defaults)"
sleep 2

# ---- a normal client, while they trickle ---------------------------------------------------
t0=$SECONDS
caps=$(curl -s --max-time "$NORMAL_WAIT" "$URL?operation=GetCACaps" || true)
waited=$((SECONDS - t0))
if [[ "$caps" == *POSTPKIOperation* ]]; then
    pass "GetCACaps is answered during the attack, after ${waited} s (at most $NORMAL_WAIT)"
else
    fail "GetCACaps got no answer within $NORMAL_WAIT s while $SLOW_CLIENTS slow clients were connected"
fi

# an enrollment with the project's probe, against the demo's RA and the printed challenge
PORT=$DEMO_PORT
probe_enrollment_request dev1 "$STATE/ra.pem" --challenge "$CHAL" --san-dns slowloris1.example.org
t0=$SECONDS
send_request dev1 /scep POST
check_success dev1 "$STATE/ra.pem" "$STATE/ca.pem" "an enrollment during the attack (after $((SECONDS - t0)) s)" || true

# ---- the slow clients were cut ------------------------------------------------------------
wait "$SLOW_PID" || true
if python3 - "$T/slow.json" "$SLOW_CLIENTS" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
n = int(sys.argv[2])
h, b = d["kinds"]["header"], d["kinds"]["body"]
print("  .. slow headers: %(closed)d closed by the server, %(open)d still open, held at most %(held_max).1f s" % h)
print("  .. slow bodies:  %(closed)d closed by the server (%(408)d with 408), %(open)d still open, held at most %(held_max).1f s" % b)
print("  .. the slow clients ended after %.1f s" % d["elapsed"])
# the header limit is 20 s (40 s at most while bytes arrive at MinRate), the body limit
# 10 s; a client that waited in the listen queue starts its clock when accepted
assert h["open"] == 0 and b["open"] == 0, "slow clients were never cut"
assert h["closed"] + b["closed"] == n
assert h["held_max"] < 75 and b["held_max"] < 75, "slow clients were held too long"
assert b["408"] == b["closed"], "slow bodies were not all answered 408"
EOF
then
    pass "mod_reqtimeout closed every slow client; each slow body got 408"
else
    fail "the slow clients were not all cut"
fi
body_lines=$(grep -c 'SCEP00250: ' "$T/demo.err" || true)
header_lines=$(grep -c 'AH01382: Request header read timeout' "$T/demo.err" || true)
expect_eq "$body_lines" $((SLOW_CLIENTS / 2)) "SCEP00250 names each slow body in the demo's log"
expect_eq "$header_lines" $(( (SLOW_CLIENTS + 1) / 2 )) "mod_reqtimeout's AH01382 names each slow header"

caps=$(curl -s --max-time 10 "$URL?operation=GetCACaps" || true)
expect_match "$caps" 'POSTPKIOperation' "the demo answers at once after the attack"
if stop_demo; then
    pass "the demo stops on SIGTERM"
else
    fail "the demo was still running 20 s after SIGTERM"
fi
t_done

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Faults under load, and what survives them.
#  1. httpd's children are SIGKILLed a few times during a scepload run whose clients send
#     the same request again after a reset: every certificate a client received is
#     recorded for its device and transaction, no device and no transaction got two,
#     and scepreg -V finds the database consistent.
#  2. The reader table is filled by a live process: enrollment gets HTTP 503 and an ERR
#     line naming the remedy; once that process is SIGKILLed its stale slots are cleared
#     by the next request, which enrolls.
#  3. The CA key is replaced or vanishes before a graceful restart: httpd -k graceful
#     refuses with mod_scep's startup message and the running generation keeps issuing;
#     a bare SIGUSR1 makes httpd exit (AH00018) without anything half-issued; with the
#     key back, httpd starts and enrolls.
#  4. A database that a failed fdatasync left its SYNC-FAILED file in: httpd's children
#     refuse it with the steps to take, enrollment gets 503, GetCACaps still answers,
#     scepreg reads it but does not write; with the file removed, httpd enrolls again.
#  5. A configuration with more worker threads than reader slots is warned about at
#     startup (SCEP00280).
source "$(dirname "$0")/lib.sh"
t_init
require_module
require_probe
SCEPREG=${SCEPREG:-$TOP/scepreg}
SCEPLOAD=${SCEPLOAD:-$TOP/scepload}
READERS=${READERS:-$TOP/tests/tools/lmdb_readers}
[[ -x "$SCEPLOAD" ]] || die "scepload not built: $SCEPLOAD"
[[ -x "$READERS" ]] || die "lmdb_readers not built: $READERS"
reg() { timeout 60 "$SCEPREG" "$@"; }

make_pki "$T/pki" Faults
RA=$T/pki/ra.pem
CA=$T/pki/ca.pem
DB=$T/db
CH=$(openssl rand -hex 12)
reg -c -b "$DB" '*.kill.example.net' "$CH" 2>/dev/null || die "scepreg: kill domain"
reg -b "$DB" '*.slots.example.net' "$CH" 2>/dev/null || die "scepreg: slots domain"
reg -b "$DB" '*.key.example.net' "$CH" 2>/dev/null || die "scepreg: key domain"
httpd_conf "$(scep_location /scep "$T/pki" ra "ScepDeviceDB $DB")"
httpd_start || t_done
URL="http://127.0.0.1:$PORT/scep"

# children: the PIDs of httpd's children (the parent is $HTTPD_PID)
children() { ps -o pid= --ppid "$HTTPD_PID" 2>/dev/null | tr -d ' ' || true; }

# received_recorded NAME DOMAIN: compares $T/NAME.serials (scepload -S) with scepreg -L
# for the devices of DOMAIN; sets RECEIVED and RECORDED, and checks both ways
received_recorded() {
    local name=$1 domain=$2 lost dup
    tr ' ' '\t' <"$T/$name.serials" | sort >"$T/$name.received"
    reg -L "$DB" | tail -n +2 | cut -f1,2,7 | grep -F ".$domain" | sort >"$T/$name.recorded" || true
    RECEIVED=$(grep -c . "$T/$name.received" || true)
    RECORDED=$(grep -c . "$T/$name.recorded" || true)
    lost=$(comm -23 "$T/$name.received" "$T/$name.recorded" | wc -l)
    expect_eq "$lost" 0 "$name: each of the $RECEIVED certificates received is recorded for its device and transaction"
    comm -23 "$T/$name.received" "$T/$name.recorded" | head -5 | sed 's/^/       | /'
    dup=$(cut -f2 "$T/$name.recorded" | sort | uniq -d | wc -l)
    expect_eq "$dup" 0 "$name: no device has two certificates ($RECORDED recorded)"
    dup=$(cut -f3 "$T/$name.recorded" | sort | uniq -d | wc -l)
    expect_eq "$dup" 0 "$name: no transaction has two certificates"
    dup=$(cut -f2 "$T/$name.received" | sort | uniq -d | wc -l)
    expect_eq "$dup" 0 "$name: no client received two certificates"
}

# ---- 1. SIGKILL of the children during a run ----------------------------------------------
N=400
# -P: the requests are built before the clock, so the server is busy (and requests are
# in flight) when a child dies
timeout 300 "$SCEPLOAD" -u "$URL" -C "$CH" -d kill.example.net -n "$N" -c 8 -p 20 -r 30 \
    -P -t 240 -q -k "$T/pool.pem" -S "$T/kill.serials" >"$T/kill.out" 2>"$T/kill.err" &
LOAD=$!
at_exit "kill $LOAD 2>/dev/null || true"
# A round of kills every N/8 certificates received, the first after 10: paced by the
# run's progress rather than the clock, so a fast machine gets as many rounds as a slow
# one, and each round finds the children the parent started after the previous one.
# Bounded: 8 rounds, and at most 240 s of waiting for progress in all.
# (0 until scepload has created the file)
received() {
    local n
    n=$(grep -c . "$T/kill.serials" 2>/dev/null) || true
    echo "${n:-0}"
}
kills=0
rounds=0
next=10
for _ in $(seq 4800); do
    ((rounds < 8)) || break
    kill -0 "$LOAD" 2>/dev/null || break
    if (($(received) >= next)); then
        for pid in $(children); do
            kill -KILL "$pid" 2>/dev/null && kills=$((kills + 1))
        done
        rounds=$((rounds + 1))
        next=$((next + N / 8))
    fi
    sleep 0.05
done
rc=0
wait "$LOAD" || rc=$?
note "$kills children killed in $rounds rounds; scepload: $(grep 'enrollments:' "$T/kill.out")"
grep -E 'sent again|failed:' "$T/kill.out" | sed 's/^/       | /' || true
((rounds >= 3)) && pass "children killed in $rounds rounds during the run ($kills processes)" \
    || fail "only $rounds kill rounds happened before the run ended"
expect_eq "$rc" 0 "every one of the $N enrollments succeeded, sending the same request again after a reset"
expect_file_contains "$T/kill.out" "$N done, $N succeeded, 0 failed" "scepload counts $N successes"
# A request the kill cut off comes again: from scepload's -r, or from libcurl itself when
# the connection it reused died before any answer.  The server answers a retry of a
# committed transaction from its record (SCEP00221).
# A request cut off before its commit leaves no trace here (libcurl's own retry is a new
# issuance), so a run with neither count is possible and only noted.
again=$(awk '/sent again/ {s += $3} END {print s + 0}' "$T/kill.out")
replays=$(grep -c 'SCEP00221: ' "$ERROR_LOG" || true)
note "the kills cut off requests in flight: $again sent again by scepload, $replays answered from the record (SCEP00221)"
kill -0 "$HTTPD_PID" 2>/dev/null && pass "the parent survived and replaced its children" \
    || fail "httpd's parent is gone"
received_recorded kill kill.example.net
expect_eq "$RECEIVED" "$N" "kill: $N certificates received"
expect_eq "$RECORDED" "$N" "kill: exactly $N recorded: none issued twice by a retry"
expect_match "$(reg -V "$DB")" "^$N certificates, $N transactions \\($N issued\\), $N index entries: consistent\$" \
    "scepreg -V: the database is consistent after $kills kills"

# ---- 2. the reader table full ---------------------------------------------------------------
# The holder clears stale slots first, then takes every free one.
# (not under timeout: SIGKILL must reach the holder itself; it ends by itself after 100 s)
"$READERS" "$DB" 5000 100 >"$T/readers.out" 2>&1 &
HOLDER=$!
at_exit "kill -KILL $HOLDER 2>/dev/null || true"
for _ in $(seq 100); do
    grep -q holding "$T/readers.out" && break
    sleep 0.1
done
held=$(sed -n 's/^holding //p' "$T/readers.out")
expect_match "$held" '^10[0-2][0-9]$' "another process holds every reader slot ($held of 1024)"
probe_enrollment_request s1 "$RA" --challenge "$CH" --san-dns s1.slots.example.net
send_request s1 /scep POST
expect_eq "$HTTP_CODE" 503 "a request while no reader slot is free: HTTP 503 (the device retries)"
expect_log "\\[scep:error\\] .*SCEP00230: .*every reader slot of the database is in use \\(no reader slot is free and none belongs to a dead process: 'mdb_stat -r $DB' lists the processes holding them" \
    "the ERR line says which process to look for and how"
rc=0
reg -L "$DB" >/dev/null 2>"$T/reg-busy.err" || rc=$?
expect_eq "$rc" 1 "scepreg exits 1 while no reader slot is free"
expect_file_contains "$T/reg-busy.err" "every reader slot of the database is in use by a live process ('mdb_stat -r $DB' lists them)" \
    "scepreg says why and where to look"
kill -KILL "$HOLDER"
wait "$HOLDER" 2>/dev/null || true
send_request s1 /scep POST
check_success s1 "$RA" "$CA" "the same request once the holder was killed" || true
expect_log "SCEP00304: cleared $held stale reader slot\\(s\\) in $DB" \
    "the $held stale slots of the killed process were cleared (SCEP00304)"

# ---- 3. the CA key after a graceful restart -------------------------------------------------
cp -p "$T/pki/ca.key" "$T/ca.key.good"
timeout 60 openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/pki/ca.key" 2>/dev/null \
    || die "cannot make the wrong key"
chmod 600 "$T/pki/ca.key"
before=$(children | sort | tr '\n' ' ')
rc=0
timeout 30 "$HTTPD" -f "$HTTPD_ROOT/httpd.conf" -d "$HTTPD_ROOT" -k graceful >"$T/graceful.out" 2>&1 || rc=$?
expect_eq "$rc" 1 "httpd -k graceful with another key in ScepCAKeyFile: refused (exit 1)"
expect_file_matches "$T/graceful.out" "SCEP00001: CA configured at .*: CA key file '$T/pki/ca.key' does not match its certificate" \
    "it says which key file and why"
sleep 1
expect_eq "$(children | sort | tr '\n' ' ')" "$before" "the running generation was not restarted"
probe_enrollment_request k1 "$RA" --challenge "$CH" --san-dns k1.key.example.net
send_request k1 /scep POST
check_success k1 "$RA" "$CA" "the running generation still issues with the key it loaded" || true

# A bare SIGUSR1 (what -k graceful would have sent) with the key file gone, during a run.
rm -f "$T/pki/ca.key"
timeout 120 "$SCEPLOAD" -u "$URL" -C "$CH" -d key.example.net -n 200 -c 4 -p 20 -t 60 -q \
    -k "$T/pool.pem" -S "$T/key.serials" >"$T/key.out" 2>"$T/key.err" &
LOAD=$!
for _ in $(seq 300); do
    [[ $(grep -c . "$T/key.serials" 2>/dev/null || true) -ge 5 ]] && break
    sleep 0.1
done
kill -USR1 "$HTTPD_PID"
gone=0
for _ in $(seq 100); do
    kill -0 "$HTTPD_PID" 2>/dev/null || { gone=1; break; }
    sleep 0.1
done
rc=0
wait "$LOAD" || rc=$?
((gone)) && pass "a SIGUSR1 with the key file gone: httpd exits (its own AH00018)" \
    || fail "httpd still runs 10 s after SIGUSR1 without a key file"
wait "$HTTPD_PID" 2>/dev/null || true
HTTPD_PID=""
expect_log "SCEP00001: CA configured at .*: .*'$T/pki/ca.key'" "the error log names the missing key file"
expect_log 'AH00018: Configuration check failed, exiting' "httpd says it exits"
expect_eq "$(children | grep -c . || true)" 0 "no child is left behind"
note "scepload during the restart: $(grep 'enrollments:' "$T/key.out")"
# what those clients got before the end: each recorded, once (the -k graceful one too)
received_recorded key key.example.net
cp "$ERROR_LOG" "$T/error.before-key-fix"

cp -p "$T/ca.key.good" "$T/pki/ca.key"
httpd_start || t_done
probe_enrollment_request k2 "$RA" --challenge "$CH" --san-dns k2.key.example.net
send_request k2 /scep POST
check_success k2 "$RA" "$CA" "with the key back, httpd starts and enrolls" || true
expect_match "$(reg -V "$DB")" ': consistent$' "scepreg -V: still consistent at the end"

# the log of the restart that failed, then of the restarted server
ERROR_LOG_NOW=$ERROR_LOG
ERROR_LOG=$T/error.before-key-fix
check_error_log '\[core:notice\] .*AH00052: child pid [0-9]+ exit signal Killed \(9\)' \
    '\[mpm_event:notice\] .*AH00493: SIGUSR1 received' \
    '\[scep:error\] .*SCEP00230: .*every reader slot' \
    '\[scep:emerg\] .*SCEP00001: .*ca\.key' \
    '\[:emerg\] .*AH00018: '
ERROR_LOG=$ERROR_LOG_NOW
# httpd left its pid file when it exited on the failed restart
check_error_log '\[core:warn\] .*AH00098: pid file .* overwritten'

# ---- 4. the file a failed sync leaves --------------------------------------------------------
# A real failed fdatasync needs a failing disk (test_db makes one fail); what the operator
# then meets is this file, made here by hand.
httpd_stop || fail "httpd did not stop cleanly"
echo "fdatasync of $DB/data.mdb failed (made by t_faults)" >"$DB/SYNC-FAILED"
chmod 600 "$DB/SYNC-FAILED"
httpd_start || t_done
probe_enrollment_request f1 "$RA" --challenge "$CH" --san-dns f1.key.example.net
send_request f1 /scep POST
expect_eq "$HTTP_CODE" 503 "with SYNC-FAILED in the database's folder: enrollment gets HTTP 503"
expect_log "\\[scep:error\\] .*SCEP00013: ScepDeviceDB $DB .*a sync of the database failed earlier .*check the disk, run 'scepreg -V $DB', then remove that file" \
    "the children say why, and what to do"
http_get "/scep?operation=GetCACaps" "$T/caps.syncfailed"
expect_eq "$HTTP_CODE" 200 "GetCACaps still answers"
expect_match "$(reg -V "$DB")" ': consistent$' "scepreg -V reads the database"
rc=0
reg -b "$DB" f2.key.example.net "$CH" 2>"$T/reg-syncfailed.err" || rc=$?
expect_eq "$rc" 1 "scepreg refuses to write to it (exit 1)"
expect_file_contains "$T/reg-syncfailed.err" "a sync of the database failed earlier" "scepreg says why"
check_error_log '\[scep:error\] .*SCEP00013: ' '\[scep:error\] .*SCEP00111: '
rm -f "$DB/SYNC-FAILED"
httpd_restart || t_done
send_request f1 /scep POST
check_success f1 "$RA" "$CA" "with the file removed and httpd restarted, the same request enrolls" || true

# ---- 5. more worker threads than reader slots: said at startup ------------------------------
httpd_stop || fail "httpd did not stop cleanly"
httpd_conf "$(scep_location /scep "$T/pki" ra "ScepDeviceDB $DB")
ThreadLimit 520
ThreadsPerChild 520
MaxRequestWorkers 1040
MaxSpareThreads 1040
ThreadStackSize 131072"
httpd_start || t_done
expect_eq "$(grep -c 'SCEP00280: ' "$ERROR_LOG")" 1 "2 x 520 threads: one startup warning"
expect_log "\\[scep:warn\\] .*SCEP00280: up to 1040 worker threads \\(2 processes x 520\\) may read the device database at once, more than its 1024 reader slots: .*lower MaxRequestWorkers to 1024 or less" \
    "it says the figures and the remedy"
t_done

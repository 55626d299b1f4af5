#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Several nodes, one truth (issue 18, point 6): three httpd nodes with mod_scep and mod_dbd
# (ScepDeviceDB dbd:) share one scratch PostgreSQL, HAProxy in front, round robin; a
# streaming standby (pg_basebackup -R, synchronous) waits for the failover, and both
# servers are named in the nodes' DBDParams (target_session_attrs=read-write).  The schema
# and every registration come from scepreg --pg-file.  Real clients (strongSwan,
# scepclient, certmonger) enroll through HAProxy; then the races and faults: 32 concurrent
# requests with one one-time challenge (again while psql holds the writers' lock, and with
# one minted challenge) spread over the nodes give one certificate; a retried transaction
# gets the same certificate on another node; held on A, approved with scepreg, collected
# through B; a lockout counted across nodes; a revocation seen by every node's renewal
# check and CRL at once; kill -9 of node A under load; PostgreSQL stopped under load and
# started again; the primary stopped and the standby promoted.  Throughout: every
# certificate a client received is in scep_certificates, none twice.  The figures
# (requests, certificates, 503s, the failover gap) are printed as "figure" notes.
source "$(dirname "$0")/lib.sh"
source "$LIB_DIR/cluster.sh"
t_init
require_module
require_probe
# the program itself: with SCEP_TEST_STORE=pgsql, lib.sh's SCEPREG is its shim from
# folders to databases, and this test names its database itself
SCEPREG=${SCEPREG_REAL:-${SCEPREG:-$TOP/scepreg}}
[[ -x "$SCEPREG" ]] || die "scepreg not built: $SCEPREG"
for tool in pki scepclient certmonger getcert dbus-run-session haproxy; do
    command -v "$tool" >/dev/null || die "$tool is not installed (see tests/check.sh's packages)"
done
[[ -f $APACHE_MODDIR/mod_dbd.so ]] || die "mod_dbd is not installed"

DBD_TIMEOUT_MS=2000
# a request's bound: the statement timeout, libpq's connect_timeout (2 s) for each of the
# two hosts, and slack for a loaded two-core machine
LIMIT=8
LOCKOUT=3

make_pki "$T/pki" Cluster
CA=$T/pki/ca.pem
RA=$T/pki/ra.pem
make_key "$T/shared.key" 2048
timeout 60 openssl req -x509 -new -key "$T/shared.key" -subj "/CN=shared-selfsigned" -days 2 \
    -out "$T/shared.selfsigned.pem" 2>/dev/null || die "cannot make the shared self-signed certificate"

# ---- PostgreSQL: primary, standby, schema ----------------------------------------------
cl_pg_primary primary
cl_pg_standby standby primary
cl_pg_sync primary
cl_pg_streaming primary && pass "the standby streams from the primary (synchronous)" \
    || die "the standby does not stream: $(tail -5 "${PG_DIRS[standby]}/server.log")"
CONNINFO=$(cl_conninfo primary standby)
PGFILE=$T/pg.conninfo
(umask 077 && echo "$CONNINFO" >"$PGFILE")
preg() { timeout 60 "$SCEPREG" --pg-file "$PGFILE" "$@"; }

preg db upgrade >"$T/upgrade.out" 2>&1 \
    || die "scepreg db upgrade: $(cat "$T/upgrade.out")"
expect_eq "$(cl_psql 'SELECT version FROM scep_schema')" 1 \
    "scepreg --pg-file db upgrade made the schema (version 1)"

CH=$(openssl rand -hex 12)
preg -b '*.cl.example.net' "$CH" 2>/dev/null || die "scepreg: the wildcard"

# ---- three nodes and HAProxy -------------------------------------------------------------
endpoint() {
    scep_location /scep "$T/pki" ra "ScepDeviceDB dbd:" "ScepDBDTimeout $DBD_TIMEOUT_MS" \
        "ScepLockout $LOCKOUT 600"
    echo "<Location /scep/crl>"
    echo "    SetHandler scep-crl"
    echo "</Location>"
    scep_location /legacy "$T/pki" ra "ScepDeviceDB dbd:" "ScepDBDTimeout $DBD_TIMEOUT_MS" \
        "ScepLegacyAlgorithms On"
}
NODES=(a b c)
for node in "${NODES[@]}"; do
    cl_node_conf "$node" "$CONNINFO" "$(endpoint)"
    cl_node_start "$node" || t_done
done
cl_haproxy_start "${NODES[@]}"
note "primary :${CL_PG_PORT[primary]}, standby :${CL_PG_PORT[standby]}, nodes" \
    ":${CL_NODE_PORT[a]} :${CL_NODE_PORT[b]} :${CL_NODE_PORT[c]}, HAProxy :$CL_HA_PORT"

# Every certificate a client received: serial and name, one line each, in $T/received.
: >"$T/received"
received() { printf '%s %s\n' "$(cl_serial "$1")" "$2" >>"$T/received"; }
received_serial() { printf '%s %s\n' "$1" "$2" >>"$T/received"; }
# db_serials WHERE: the recorded serials (compared as cl_serial writes them), sorted
db_serials() {
    cl_psql "SELECT ltrim(upper(replace(serial, ':', '')), '0') FROM scep_certificates
             WHERE $1" | sort
}
db_count() { cl_psql "SELECT count(*) FROM scep_certificates WHERE $1"; }
sqlq() { printf "'%s'" "${1//\'/\'\'}"; }

# prep NAME CHALLENGE FQDN [probe options]: a PKCSReq in $T/NAME.req and a transactionID
# of its own, signed with $T/NAME.key and $T/NAME.selfsigned.pem if there are (the
# certificate made here if only the key is), else with the shared key and its self-signed
# certificate, made once: the load phases build hundreds of requests
prep() {
    local name=$1 challenge=$2 fqdn=$3
    shift 3
    if [[ -f "$T/$name.selfsigned.pem" ]]; then
        probe_request "$name" "$RA" --cert "$T/$name.selfsigned.pem" \
            --challenge "$challenge" --san-dns "$fqdn" --txid "$name-$RANDOM$RANDOM" "$@"
        return
    fi
    if [[ -f "$T/$name.key" ]]; then
        probe_enrollment_request "$name" "$RA" --challenge "$challenge" --san-dns "$fqdn" \
            --txid "$name-$RANDOM$RANDOM" "$@"
        return
    fi
    cp "$T/shared.key" "$T/$name.key"
    cp "$T/shared.selfsigned.pem" "$T/$name.selfsigned.pem"
    probe_request "$name" "$RA" --cert "$T/$name.selfsigned.pem" --challenge "$challenge" \
        --san-dns "$fqdn" --txid "$name-$RANDOM$RANDOM" "$@"
}

# ---- real clients through HAProxy: strongSwan, scepclient, certmonger --------------------
URL="http://127.0.0.1:$CL_HA_PORT"
S=$T/swan
mkdir -p "$S"
timeout 60 pki --scepca --url "$URL/scep" --caout "$S/ca.der" --raout "$S/ra.der" --force \
    >"$S/scepca.out" 2>&1 || fail "pki --scepca through HAProxy: $(grep -v plugin "$S/scepca.out" | tail -3)"
[[ -f "$S/ra.der" ]] || { [[ -f "$S/ra-1.der" ]] && cp "$S/ra-1.der" "$S/ra.der"; }
[[ -f "$S/ra.der" ]] || openssl x509 -in "$RA" -outform DER -out "$S/ra.der"
[[ -f "$S/ca.der" ]] || openssl x509 -in "$CA" -outform DER -out "$S/ca.der"
for i in 1 2; do
    name=swan$i.cl.example.net
    # a key each: pki derives the transactionID from the key
    timeout 120 pki --gen --type rsa --size 2048 --outform pem >"$S/key$i.pem" 2>/dev/null \
        || die "pki --gen failed"
    if timeout 120 pki --scep --url "$URL/scep" --in "$S/key$i.pem" --dn "CN=$name" \
            --san "$name" --password "$CH" --cacert-enc "$S/ra.der" --cacert-sig "$S/ra.der" \
            --cacert "$S/ca.der" --outform pem >"$S/$i.pem" 2>"$S/$i.err" \
            && timeout 30 openssl verify -CAfile "$CA" "$S/$i.pem" >/dev/null 2>&1; then
        received "$S/$i.pem" "$name"
        expect_eq "$(db_count "fqdn = '$name' AND ltrim(upper(serial), '0') = \
'$(cl_serial "$S/$i.pem")'")" 1 "pki --scep $name through HAProxy: recorded in scep_certificates"
    else
        fail "pki --scep $name through HAProxy: $(grep -v -e plugin -e TPM "$S/$i.err" | tail -3)"
    fi
done
M=$T/micro
for i in 1 2; do
    name=micro$i.cl.example.net
    mkdir -p "$M/$i"
    if (cd "$M/$i" && timeout 120 scepclient -server-url "$URL/legacy" -private-key key.pem \
            -certificate cert.pem -cn "$name" -challenge "$CH" >out 2>&1) \
            && [[ -s "$M/$i/cert.pem" ]]; then
        received "$M/$i/cert.pem" "$name"
        expect_eq "$(db_count "fqdn = '$name' AND ltrim(upper(serial), '0') = \
'$(cl_serial "$M/$i/cert.pem")'")" 1 "scepclient $name through HAProxy: recorded in scep_certificates"
    else
        fail "scepclient $name through HAProxy: $(tail -3 "$M/$i/out")"
    fi
done
# certmonger (GET), in a private daemon on a private bus, as t_certmonger runs it
C=$T/cm
if certmonger_enroll "$C" "$URL/scep" "$CH" Cluster -N CN=cm.cl.example.net \
        -D cm.cl.example.net \
        && timeout 30 openssl verify -CAfile "$CA" "$C/out/cert.pem" >/dev/null 2>&1; then
    received "$C/out/cert.pem" cm.cl.example.net
    expect_eq "$(db_count "fqdn = 'cm.cl.example.net' AND ltrim(upper(serial), '0') = \
'$(cl_serial "$C/out/cert.pem")'")" 1 "certmonger through HAProxy: recorded in scep_certificates"
else
    fail "certmonger through HAProxy:"
    certmonger_said "$C" 5
fi
for node in "${NODES[@]}"; do
    grep -q ' /scep 200 \| /legacy 200 ' <(grep -v GetCACaps "$(cl_node_root "$node")/logs/access.log") \
        && pass "HAProxy spread the clients' enrollments: node $node served some" \
        || fail "node $node served none of the clients' enrollments"
done

# ---- 32 concurrent requests, one one-time challenge -------------------------------------
# race NAME CHALLENGE FQDN [HOLD]: 32 requests sent straight to the nodes in turn (11 to a,
# 11 to b, 10 to c: every node is hit for sure), each with a key of its own, sent at once; one certificate, the others badRequest or 503.
# With HOLD (seconds), a psql session holds the writers' lock while they arrive, so that
# they all pass their reads before any can write: the race is then decided at the write.
race() {
    local what=$1 challenge=$2 fqdn=$3 hold=${4:-} i n pids=() outcome ok=0 refused=0 busy=0
    local other="" at_write at_check
    if [[ ! -f "$T/race-key-31.pem" ]]; then
        for i in $(seq 0 31); do
            (make_key "$T/race-key-$i" 2048 && timeout 60 openssl req -x509 -new \
                -key "$T/race-key-$i" -subj "/CN=race-key-$i" -days 2 \
                -out "$T/race-key-$i.pem" 2>/dev/null) &
            pids+=($!)
        done
        wait "${pids[@]}"
        pids=()
    fi
    for i in $(seq 0 31); do
        n=$what-$i
        cp "$T/race-key-$i" "$T/$n.key"
        cp "$T/race-key-$i.pem" "$T/$n.selfsigned.pem"
        prep "$n" "$challenge" "$fqdn"
    done
    if [[ -n "$hold" ]]; then
        cl_pg_hold_writers "$hold" || fail "$what: psql did not get the writers' lock"
    fi
    for i in $(seq 0 31); do
        cl_post "${NODES[i % 3]}" "$what-$i" /scep "$LIMIT" &
        pids+=($!)
    done
    wait "${pids[@]}"
    [[ -z "$hold" ]] || wait "$CL_HOLD_PID" || true
    for i in $(seq 0 31); do
        outcome=$(cl_outcome "$what-$i" "$RA")
        case $outcome in
            success) ok=$((ok + 1)); received "$T/$what-$i.pem" "$fqdn"; WINNER=$what-$i ;;
            failure-2) refused=$((refused + 1)) ;;
            http-503) busy=$((busy + 1)) ;;
            *) other+=" $i:$outcome" ;;
        esac
    done
    # where the losers were stopped: at the write that re-checks (SCEP00215), or before
    at_write=$(cat "$T"/node-?/logs/error.log | grep -c "SCEP00215: scep($what-" || true)
    at_check=$(cat "$T"/node-?/logs/error.log | grep -c "SCEP00212: scep($what-" || true)
    note "figure: $what: 32 requests, $ok certificate(s), $refused badRequest" \
        "($at_write at the write, $at_check at the check), $busy 503"
    expect_eq "$ok" 1 "$what: 32 concurrent requests over three nodes give exactly one certificate"
    expect_eq "$other" "" "$what: the others are FAILURE badRequest or 503"
    expect_eq "$(db_count "fqdn = $(sqlq "$fqdn")")" 1 "$what: one certificate recorded for $fqdn"
    if ((ok == 1)); then
        expect_eq "$(db_serials "fqdn = $(sqlq "$fqdn")")" "$(cl_serial "$T/$WINNER.pem")" \
            "$what: the recorded certificate is the one received"
    fi
}
CH1=$(openssl rand -hex 12)
preg -b -1 race1.cl.example.net "$CH1" 2>/dev/null || die "scepreg: race1"
race race-onetime "$CH1" race1.cl.example.net
CH3=$(openssl rand -hex 12)
preg -b -1 race3.cl.example.net "$CH3" 2>/dev/null || die "scepreg: race3"
race race-held-lock "$CH3" race3.cl.example.net 1.5
# a name no registration covers: a request that finds the challenge used up is refused
# without a registration to count against (the wildcard's lockout stays untouched)
MINTED=$(preg -M race2.minted.example.org 2>"$T/mint.err") || die "scepreg -M: $(cat "$T/mint.err")"
race race-minted "$MINTED" race2.minted.example.org

# ---- a retried transaction: the same certificate from the other node -----------------------
CHR=$(openssl rand -hex 12)
preg -b -1 retry.cl.example.net "$CHR" 2>/dev/null || die "scepreg: retry"
openssl_csr retry "$CHR" "CN=retry.cl.example.net"
TXR=retry-$RANDOM$RANDOM
for hop in a b; do
    cp "$T/retry.key" "$T/retry-$hop.key"
    probe_enrollment_request "retry-$hop" "$RA" --csr "$T/retry.csr.der" --no-challenge \
        --txid "$TXR"
    cl_on "$hop" send_request "retry-$hop" /scep POST
    cl_on "$hop" check_success "retry-$hop" "$RA" "$CA" "transaction $TXR sent to node $hop" \
        && received "$T/retry-$hop.pem" retry.cl.example.net
done
if [[ -s "$T/retry-a.pem" && -s "$T/retry-b.pem" ]]; then
    expect_eq "$(cl_serial "$T/retry-b.pem")" "$(cl_serial "$T/retry-a.pem")" \
        "the retry on node b gets node a's certificate (same serial)"
fi
expect_eq "$(db_count "fqdn = 'retry.cl.example.net'")" 1 "the retried transaction is recorded once"
# the retry answers twice with one certificate: keep it once in the received list
sort -u "$T/received" -o "$T/received"

# ---- held on A, approved with scepreg, collected through B --------------------------------
CHH=$(openssl rand -hex 12)
preg -b -W on held.cl.example.net "$CHH" 2>/dev/null || die "scepreg: held"
prep held "$CHH" held.cl.example.net
TXH=$REQ_TXID
cl_post a held /scep "$LIMIT"
expect_eq "$(cl_outcome held "$RA")" pending "held.cl.example.net: node a holds the request (PENDING)"
# poll NAME: a CertPoll for the held transaction, signed with its key, sent to node b
poll() {
    cp "$T/held.key" "$T/$1.key"
    cp "$T/held.selfsigned.pem" "$T/$1.selfsigned.pem"
    probe_request "$1" "$RA" --cert "$T/$1.selfsigned.pem" --no-challenge --msgtype 20 \
        --txid "$TXH" --poll-issuer "$CA" --subject "/CN=held.cl.example.net"
    cl_post b "$1" /scep "$LIMIT"
}
poll held-p1
expect_eq "$(cl_outcome held-p1 "$RA")" pending "CertPoll through node b before the decision: PENDING"
expect_match "$(preg -P held.cl.example.net 2>&1)" "$TXH"$'\tpending\t' \
    "scepreg --pg-file -P lists the request node a held"
preg -Y held.cl.example.net >"$T/approve.out" 2>&1 && pass "scepreg --pg-file -Y approves it" \
    || fail "scepreg -Y: $(cat "$T/approve.out")"
poll held-p2
if [[ $(cl_outcome held-p2 "$RA") == success ]]; then
    pass "CertPoll through node b after the approval: SUCCESS"
    received "$T/held-p2.pem" held.cl.example.net
    expect_eq "$(db_serials "fqdn = 'held.cl.example.net'")" "$(cl_serial "$T/held-p2.pem")" \
        "the approved certificate is recorded"
else
    fail "CertPoll through node b after the approval: $(cl_outcome held-p2 "$RA")"
fi

# ---- lockout counted across nodes ----------------------------------------------------------
CHL=$(openssl rand -hex 12)
preg -b lock.cl.example.net "$CHL" 2>/dev/null || die "scepreg: lock"
for i in $(seq 1 "$LOCKOUT"); do
    hop=$( ((i % 2)) && echo a || echo b)
    prep "lock-$i" "wrong-$i-$CHL" lock.cl.example.net
    cl_post "$hop" "lock-$i" /scep "$LIMIT"
    expect_eq "$(cl_outcome "lock-$i" "$RA")" failure-2 "wrong challenge $i of $LOCKOUT, node $hop: badRequest"
done
expect_eq "$(cl_psql "SELECT locked_until > extract(epoch FROM now()) FROM scep_failures
                      WHERE name = 'lock.cl.example.net'")" t \
    "scep_failures: $LOCKOUT failures, from two nodes, lock the name"
for hop in a b; do
    prep "lock-right-$hop" "$CHL" lock.cl.example.net
    cl_post "$hop" "lock-right-$hop" /scep "$LIMIT"
    expect_eq "$(cl_outcome "lock-right-$hop" "$RA")" failure-2 \
        "node $hop refuses even the right challenge once the name is locked"
    cl_on "$hop" expect_log 'SCEP00212: .*lock\.cl\.example\.net is locked out until' \
        "node $hop logs the lockout"
done
expect_eq "$(db_count "fqdn = 'lock.cl.example.net'")" 0 "no certificate for the locked name"

# ---- revocation: every node's renewal check and CRL at once -------------------------------
CRL_NUMBERS=()
# crl_round LABEL: every node's CRL as $T/LABEL-NODE.crl.pem; passes when they all carry one
# number, which is appended to CRL_NUMBERS
crl_round() {
    local label=$1 node numbers=() crl
    for node in "${NODES[@]}"; do
        crl=$T/$label-$node.crl
        cl_on "$node" http_get /scep/crl "$crl"
        if [[ "$HTTP_CODE" != 200 ]] \
                || ! openssl crl -inform DER -in "$crl" -out "$crl.pem" 2>/dev/null; then
            fail "$label: node $node's CRL: HTTP $HTTP_CODE"
            return 1
        fi
        numbers+=("$((16#$(openssl crl -in "$crl.pem" -noout -crlnumber | sed 's/.*=0x//')))")
    done
    expect_eq "$(printf '%s\n' "${numbers[@]}" | sort -u | tr '\n' ' ')" "${numbers[0]} " \
        "$label: every node serves CRL number ${numbers[0]}"
    CRL_NUMBERS+=("${numbers[0]}")
}
prep rev "$CH" rev.cl.example.net
cl_post a rev /scep "$LIMIT"
[[ $(cl_outcome rev "$RA") == success ]] || die "rev.cl.example.net did not enroll"
received "$T/rev.pem" rev.cl.example.net
crl_round before-revocation
preg -R -r keyCompromise rev.cl.example.net >"$T/revoke.out" 2>&1 \
    && pass "scepreg --pg-file -R revokes rev.cl.example.net" || fail "scepreg -R: $(cat "$T/revoke.out")"
for hop in "${NODES[@]}"; do
    cp "$T/rev.key" "$T/renew-$hop.key"
    cp "$T/rev.pem" "$T/renew-$hop.selfsigned.pem"
    probe_request "renew-$hop" "$RA" --cert "$T/renew-$hop.selfsigned.pem" --msgtype 17 \
        --no-challenge --san-dns rev.cl.example.net --txid "renew-$hop-$RANDOM"
    cl_post "$hop" "renew-$hop" /scep "$LIMIT"
    expect_eq "$(cl_outcome "renew-$hop" "$RA")" failure-2 \
        "node $hop refuses the renewal with the revoked certificate at once"
    cl_on "$hop" expect_log 'SCEP00217: ' "node $hop logs why (SCEP00217)"
done
revoked=$(cl_serial "$T/rev.pem")
crl_round after-revocation
for hop in "${NODES[@]}"; do
    expect_match "$(openssl crl -in "$T/after-revocation-$hop.crl.pem" -noout -text 2>&1 \
        | tr -d ' ')" "SerialNumber:0*$revoked" "node $hop's CRL lists the revoked certificate"
done
expect_eq "$(( ${CRL_NUMBERS[1]:-0} > ${CRL_NUMBERS[0]:-0} ))" 1 "the CRL number grew with the revocation"

# ---- load through HAProxy (lanes of requests sent one after another) -------------------
# load PREFIX COUNT LANES SECONDS: builds COUNT requests PREFIX-i (wildcard challenge) and
# sends them through HAProxy in LANES parallel lanes, each until its share is sent or
# SECONDS have passed; every request logged as "i start end" in $T/PREFIX.log
load_build() {
    local prefix=$1 count=$2 i
    for i in $(seq 1 "$count"); do
        prep "$prefix-$i" "$CH" "$prefix-$i.cl.example.net"
    done
}
load_run() {
    local prefix=$1 count=$2 lanes=$3 secs=$4 lane pids=()
    local end=$((SECONDS + secs))
    : >"$T/$prefix.log"
    for lane in $(seq 0 $((lanes - 1))); do
        (
            local i t0
            for ((i = lane + 1; i <= count; i += lanes)); do
                ((SECONDS < end)) || break
                t0=$(date +%s.%N)
                cl_post ha "$prefix-$i" /scep "$LIMIT"
                echo "$i $t0 $(date +%s.%N)" >>"$T/$prefix.log"
            done
        ) &
        pids+=($!)
    done
    LOAD_PIDS=("${pids[@]}")
}
# load_judge PREFIX WHAT: outcomes of every request sent; every certificate received is
# recorded, none twice; sets LOAD_OK, LOAD_503, LOAD_OTHER, LOAD_SLOW and the figure note
load_judge() {
    local prefix=$1 what=$2 i t0 t1 outcome secs retry serial us
    LOAD_OK=0 LOAD_503=0 LOAD_OTHER=0 LOAD_SLOW=0 LOAD_NORETRY=0
    local slowest=0 limit_us=$((LIMIT * 1000000))
    : >"$T/$prefix.serials"
    while read -r i t0 t1; do
        outcome=$(cl_outcome "$prefix-$i" "$RA")
        read -r _ secs retry <"$T/$prefix-$i.http"
        us=$(cl_micros "$secs")
        ((us <= limit_us)) || LOAD_SLOW=$((LOAD_SLOW + 1))
        ((us <= slowest)) || slowest=$us
        case $outcome in
            success)
                LOAD_OK=$((LOAD_OK + 1))
                serial=$(cl_serial "$T/$prefix-$i.pem")
                received_serial "$serial" "$prefix-$i.cl.example.net"
                echo "$serial" >>"$T/$prefix.serials" ;;
            http-503)
                LOAD_503=$((LOAD_503 + 1))
                [[ -n "$retry" ]] || LOAD_NORETRY=$((LOAD_NORETRY + 1)) ;;
            *) LOAD_OTHER=$((LOAD_OTHER + 1)); echo "$i $outcome" >>"$T/$prefix.other" ;;
        esac
    done <"$T/$prefix.log"
    local sent
    sent=$(grep -c . "$T/$prefix.log" || true)
    note "figure: $what: $sent requests, $LOAD_OK certificates, $LOAD_503 503," \
        "slowest $((slowest / 1000)) ms, $LOAD_OTHER other ($(sort -k2 "$T/$prefix.other" 2>/dev/null | cut -d' ' -f2 | uniq -c | tr -s ' \n' ' '))"
    expect_eq "$(sort "$T/$prefix.serials" | uniq -d)" "" "$what: no serial received twice"
    local missing
    missing=$(comm -23 <(sort -u "$T/$prefix.serials") <(db_serials "fqdn LIKE '$prefix-%'"))
    expect_eq "$missing" "" "$what: every certificate received is in scep_certificates"
    expect_eq "$(cl_psql "SELECT count(*) FROM (SELECT fqdn FROM scep_certificates
                          WHERE fqdn LIKE '$prefix-%' GROUP BY fqdn HAVING count(*) > 1) AS d")" 0 \
        "$what: no name got two certificates in the records"
    expect_eq "$LOAD_SLOW" 0 "$what: every request answered within $LIMIT s"
}

# ---- kill -9 of node A under load --------------------------------------------------------
load_build kill 36
load_run kill 36 9 60
# the moment: node a has answered a few and is working on one it has not answered (its
# trace line SCEP00206 comes when a request is parsed, SCEP00220 when its certificate is
# recorded); bounded wait: 30 s
A_LOG=$(cl_node_root a)/logs/error.log
in_hand() {     # one reading of the log, so that both counts are of the same moment
    awk '/SCEP00206: scep\(kill-/ { s++ } /SCEP00220: scep\(kill-/ { i++ }
         END { print s - i, i + 0 }' "$A_LOG"
}
A_KIDS=$(pgrep -P "${CL_NODE_PID[a]}" | tr '\n' ' ' || true)
for _ in $(seq 600); do
    read -r busy done_a < <(in_hand)
    ((done_a >= 2 && busy > 0)) && break
    sleep 0.02
done
cl_node_kill a "$A_KIDS"
read -r busy done_a < <(in_hand)
note "node a killed (SIGKILL to the parent and every child) after $done_a certificates," \
    "with $busy request(s) in hand"
wait "${LOAD_PIDS[@]}"
load_judge kill "kill -9 of node a"
expect_eq "$(( LOAD_OK > 0 ))" 1 "kill -9 of node a: the other nodes went on issuing"
cl_node_start a || t_done
for _ in $(seq 20); do
    grep -q 'nodes/a is UP' "$T/haproxy/out" && break
    sleep 0.25
done

# ---- PostgreSQL stopped under load and started again --------------------------------------
load_build pgdown 60
load_run pgdown 60 3 40
sleep 1
pg_stop primary fast
DOWN_AT=$(date +%s.%N)
# meanwhile every node answers what needs no store
for hop in "${NODES[@]}"; do
    for op in GetCACaps GetCACert; do
        cl_on "$hop" http_get "/scep?operation=$op" "$T/down-$op-$hop" --max-time 5
        expect_eq "$HTTP_CODE" 200 "PostgreSQL down: node $hop answers $op"
    done
done
sleep 3
pg_start primary "${CL_PG_PORT[primary]}" >/dev/null || die "the primary did not start again"
DOWN_FOR=$((($(cl_micros "$(date +%s.%N)") - $(cl_micros "$DOWN_AT")) / 1000))
wait "${LOAD_PIDS[@]}"
load_judge pgdown "PostgreSQL stopped for $DOWN_FOR ms under load"
expect_eq "$(( LOAD_503 > 0 ))" 1 "while PostgreSQL is down, PKIOperations get 503"
expect_eq "$LOAD_NORETRY" 0 "every 503 carries Retry-After"
expect_eq "$LOAD_OTHER" 0 "every request got a certificate, a FAILURE or a 503"
for hop in "${NODES[@]}"; do
    cl_on "$hop" expect_log 'SCEP007[0-9]{2}: .*503' "node $hop logs its refusals with 503"
done
# recovery without a restart: each node, straight, until it issues (bounded: 20 tries)
for hop in "${NODES[@]}"; do
    tries=0 outcome=""
    while ((tries < 20)); do
        tries=$((tries + 1))
        prep "back-$hop-$tries" "$CH" "back-$hop-$tries.cl.example.net"
        cl_post "$hop" "back-$hop-$tries" /scep "$LIMIT"
        outcome=$(cl_outcome "back-$hop-$tries" "$RA")
        [[ "$outcome" == success ]] && break
        sleep 0.5
    done
    note "figure: node $hop issued again after $tries request(s) (last: $outcome)"
    expect_eq "$outcome" success "node $hop enrolls again once PostgreSQL is back"
    if [[ "$outcome" == success ]]; then
        received "$T/back-$hop-$tries.pem" "back-$hop-$tries.cl.example.net"
    fi
    # the same httpd as before the outage: alive, and the one its pid file names
    if kill -0 "${CL_NODE_PID[$hop]}" 2>/dev/null \
            && [[ $(cat "$(cl_node_root "$hop")/run/httpd.pid") == "${CL_NODE_PID[$hop]}" ]]; then
        pass "node $hop recovered without a restart of httpd"
    else
        fail "node $hop is not the httpd that ran before the outage"
    fi
done

# ---- failover: the primary stopped, the standby promoted --------------------------------
cl_pg_streaming primary || fail "the standby streams again before the failover"
load_build failover 60
load_run failover 60 3 40
sleep 1
pg_stop primary immediate
# after pg_ctl has seen the server gone: what starts later cannot be the primary's work
STOP_AT=$(date +%s.%N)
note "primary stopped (immediate)"
cl_pg_promote standby && pass "pg_ctl promote: the standby is read-write" \
    || fail "the standby was not promoted"
PROMOTED_AT=$(date +%s.%N)
wait "${LOAD_PIDS[@]}"
load_judge failover "failover to the promoted standby"
expect_eq "$LOAD_OTHER" 0 "during the failover: a certificate, a FAILURE or a 503, nothing else"
# the gap: from the stop to the first certificate issued for a request sent after it
stop_us=$(cl_micros "$STOP_AT")
first_after=""
while read -r i t0 t1; do
    (($(cl_micros "$t0") > stop_us)) || continue
    [[ $(cl_outcome "failover-$i" "$RA") == success ]] || continue
    t1=$(cl_micros "$t1")
    if [[ -z "$first_after" ]] || ((t1 < first_after)); then first_after=$t1; fi
done <"$T/failover.log"
if [[ -n "$first_after" ]]; then
    gap_ms=$(((first_after - stop_us) / 1000))
    note "figure: failover gap $gap_ms ms from the primary's stop to the first certificate" \
        "(promote returned after $((($(cl_micros "$PROMOTED_AT") - stop_us) / 1000)) ms)," \
        "$LOAD_503 503s"
    expect_eq "$((gap_ms <= 20000))" 1 "enrollment continues on the promoted standby within 20 s"
else
    fail "no certificate was issued after the failover"
fi
expect_eq "$(( LOAD_503 <= 40 ))" 1 "at most 40 503s while connections are replaced ($LOAD_503)"

# ---- after everything: the records and the CRL -----------------------------------------
missing=$(comm -23 <(cut -d' ' -f1 "$T/received" | sort -u) <(db_serials "true"))
expect_eq "$missing" "" \
    "every certificate any client received ($(grep -c . "$T/received")) is in the promoted database"
expect_eq "$(cut -d' ' -f1 "$T/received" | sort | uniq -d)" "" "no serial was received for two requests"
preg -V >"$T/check.out" 2>&1 && pass "scepreg --pg-file -V: $(tail -1 "$T/check.out")" \
    || fail "scepreg -V: $(tail -3 "$T/check.out")"
crl_round after-failover
sorted=$(printf '%s\n' "${CRL_NUMBERS[@]}" | sort -n | tr '\n' ' ')
expect_eq "$sorted" "$(printf '%s ' "${CRL_NUMBERS[@]}")" \
    "CRL numbers never fell (${CRL_NUMBERS[*]})"

for node in "${NODES[@]}"; do
    ERROR_LOG=$(cl_node_root "$node")/logs/error.log
    check_error_log '\[scep:warn\] .*SCEP002(1[0-9]|4[0-9]): ' \
        '\[scep:(warn|error|crit)\] .*SCEP(0023[0-9]|003[4-5][0-9]|007[0-2][0-9]): ' \
        '\[dbd:(error|crit|warn)\] ' '\[core:warn\] .*AH00098: '
done
t_done

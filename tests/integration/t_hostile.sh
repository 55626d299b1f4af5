#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Hostile input (issue 7, part 4): one table of malformed and malicious requests, each
# with the exact answer the server owes and the tagged log line that goes with it.
# After every row: no secret (challenge, "PRIVATE KEY") in the new log lines, no child
# crash, and an answer within a bounded time.  At the end a normal enrollment still
# works and the error log holds only expected lines.
#
# Answers: HTTP status (http:NNN), a signed CertRep FAILURE (fail:<failInfo>), SUCCESS
# (success, or same:<row> for the certificate of an earlier row), PENDING (pending), or
# for slow clients the connection cut with 408 (cut:<seconds>).
source "$(dirname "$0")/lib.sh"
t_init
require_module
require_probe
command -v python3 >/dev/null || die "python3 is needed for the raw-socket clients"
SCEPREG=${SCEPREG:-$TOP/scepreg}
[[ -x "$SCEPREG" ]] || die "the registration tool $SCEPREG is not built"
reg() { timeout 60 "$SCEPREG" "$@"; }

make_pki "$T/pki" Hostile
issue_cert "$T/pki" other "Not the RA" "digitalSignature,keyEncipherment"
RA=$T/pki/ra.pem
CA=$T/pki/ca.pem
DB=$T/db
RUN=$(openssl rand -hex 4)
CHAL=$(openssl rand -hex 12)
CH_RP=$(openssl rand -hex 12)
CH_BF=$(openssl rand -hex 12)
CH_HELD=$(openssl rand -hex 12)
WRONG=()
for i in 1 2 3; do WRONG+=("$(openssl rand -hex 12)"); done
SECRETS=("$CHAL" "$CH_RP" "$CH_BF" "$CH_HELD" "${WRONG[@]}")
reg -c -b "$DB" rp.example.net "$CH_RP" >/dev/null || die "scepreg: rp"
reg -b "$DB" bf.example.net "$CH_BF" >/dev/null || die "scepreg: bf"
reg -b -W on "$DB" held.example.net "$CH_HELD" >/dev/null || die "scepreg: held"

# Slow clients are the operator's to bound, with mod_reqtimeout (docs/directives.md
# recommends Debian's values, header=20-40,MinRate=500 body=10,MinRate=500); the same
# shape with short times keeps this test short.
SLOW_BODY_S=3
httpd_conf "LoadModule reqtimeout_module $APACHE_MODDIR/mod_reqtimeout.so
RequestReadTimeout header=3-6,MinRate=500 body=$SLOW_BODY_S,MinRate=500
$(scep_location /scep "$T/pki" ra "ScepChallenge $CHAL" "ScepMaxMessageSize 65536")
$(scep_location /small "$T/pki" ra "ScepChallenge $CHAL" "ScepMaxMessageSize 4096")
$(scep_location /reg "$T/pki" ra "ScepDeviceDB $DB" "ScepLockout 3 600")"
httpd_start || t_done

# one 2048-bit device key for most rows (key generation is the slow part otherwise)
make_key "$T/shared.key" 2048

# ---- how requests are made ------------------------------------------------------------

# post FILE LOCATION [curl args]: POST, answer in $T/$CUR.rep; sets HTTP_CODE, HTTP_TIME
post() {
    local file=$1 loc=$2 meta
    shift 2
    meta=$(curl -sS --max-time 30 -o "$T/$CUR.rep" -w '%{http_code}\n%{content_type}\n%{time_total}' \
        --data-binary "@$file" "$@" "http://127.0.0.1:$PORT$loc?operation=PKIOperation") || true
    HTTP_CODE=$(sed -n 1p <<<"$meta")
    HTTP_CTYPE=$(sed -n 2p <<<"$meta")
    HTTP_TIME=$(sed -n 3p <<<"$meta")
}

# get LOCATION MESSAGE-PARAMETER: GET PKIOperation, answer in $T/$CUR.rep
get() {
    local meta
    meta=$(curl -sS --max-time 30 -g -o "$T/$CUR.rep" -w '%{http_code}\n%{content_type}\n%{time_total}' \
        "http://127.0.0.1:$PORT$1?operation=PKIOperation&message=$2") || true
    HTTP_CODE=$(sed -n 1p <<<"$meta")
    HTTP_CTYPE=$(sed -n 2p <<<"$meta")
    HTTP_TIME=$(sed -n 3p <<<"$meta")
}

# build [--key K] [--txid ID] [probe options]: $T/$CUR.req, signed with the shared key
# (or $T/K.key), transactionID HOSTILE-<row>-RUN unless given
build() {
    local key=shared txid="HOSTILE-$CUR-$RUN"
    [[ "${1:-}" == --key ]] && { key=$2; shift 2; }
    [[ "${1:-}" == --txid ]] && { txid=$2; shift 2; }
    [[ -f "$T/$key.key" ]] || make_key "$T/$key.key" 2048
    [[ "$key" == "$CUR" ]] || cp "$T/$key.key" "$T/$CUR.key"
    probe_enrollment_request "$CUR" "$RA" --txid "$txid" "$@"
}

# req LOCATION [build args]: build and POST
req() {
    local loc=$1
    shift
    build "$@"
    post "$T/$CUR.req" "$loc"
}

# resend ROW LOCATION: the very bytes of an earlier row again
resend() {
    cp "$T/$1.req" "$T/$CUR.req"
    cp "$T/$1.key" "$T/$CUR.key"
    cp "$T/$1.nonce" "$T/$CUR.nonce"
    cp "$T/$1.selfsigned.pem" "$T/$CUR.selfsigned.pem"
    REQ_TXID=${TXID_OF[$1]}
    post "$T/$CUR.req" "$2"
}
declare -A TXID_OF=()

# get_random LOCATION BYTES: GET with the base64 of BYTES random bytes
get_random() {
    get "$1" "$(head -c "$2" /dev/urandom | b64_encode std)"
}

# A valid request, the base of the truncation rows.
CUR=base
build --challenge "$CHAL"
BASE_LEN=$(stat -c %s "$T/base.req")

# truncated CUT: the base request cut to CUT bytes (a number, "half", or "-N" for
# all but N)
truncated() {
    local n=$1
    case $n in
        half) n=$((BASE_LEN / 2)) ;;
        -*) n=$((BASE_LEN + n)) ;;
    esac
    head -c "$n" "$T/base.req" >"$T/$CUR.req"
    post "$T/$CUR.req" /scep
}

# random_post BYTES LOCATION [curl args]
random_post() {
    head -c "$1" /dev/urandom >"$T/$CUR.req"
    local loc=$2
    shift 2
    post "$T/$CUR.req" "$loc" -H "Content-Type: application/x-pki-message" "$@"
}

# nested DEPTH definite|indefinite: a lone SEQUENCE nested DEPTH deep
nested() {
    python3 - "$1" "$2" "$T/$CUR.req" <<'EOF'
import sys
depth, form, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
if form == "indefinite":
    data = b"\x30\x80" * depth + b"\x00\x00" * depth
else:
    data = b"\x30\x00"
    for _ in range(depth - 1):
        n = len(data)
        ln = bytes([n]) if n < 128 else (lambda b: bytes([0x80 | len(b)]) + b)(n.to_bytes((n.bit_length() + 7) // 8, "big"))
        data = b"\x30" + ln + data
open(out, "wb").write(data)
EOF
    post "$T/$CUR.req" /scep
}

# length_lie: the base request whose outer SEQUENCE claims 2^31-1 bytes
length_lie() {
    python3 - "$T/base.req" "$T/$CUR.req" <<'EOF'
import sys
d = open(sys.argv[1], "rb").read()
assert d[0] == 0x30 and d[1] & 0x80
n = d[1] & 0x7f
open(sys.argv[2], "wb").write(b"\x30\x84\x7f\xff\xff\xff" + d[2 + n:])
EOF
    post "$T/$CUR.req" /scep
}

# content_type enveloped|data: a ContentInfo of another type than SignedData
content_type() {
    if [[ $1 == enveloped ]]; then
        timeout 30 openssl cms -encrypt -binary -in "$T/base.req" -outform DER -aes256 \
            -out "$T/$CUR.req" "$RA" 2>/dev/null || die "openssl cms -encrypt"
    else
        timeout 30 openssl cms -data_create -binary -in "$T/base.req" -outform DER \
            -out "$T/$CUR.req" 2>/dev/null || die "openssl cms -data_create"
    fi
    post "$T/$CUR.req" /scep
}

# chunked_post BYTES LOCATION: a body without Content-Length
chunked_post() {
    head -c "$1" /dev/urandom >"$T/$CUR.req"
    post "$T/$CUR.req" "$2" -H "Transfer-Encoding: chunked"
}

# huge_length LOCATION BYTES: a Content-Length of BYTES, 10 bytes sent; prints the status
huge_length() {
    python3 - "$PORT" "$1" "$T/$CUR.rep" "$2" <<'EOF'
import socket, sys
port, loc, out, claim = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(("POST %s?operation=PKIOperation HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           "Content-Length: %s\r\n\r\n0123456789" % (loc, claim)).encode())
data = b""
try:
    while len(data) < 65536:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
except socket.timeout:
    pass
open(out, "wb").write(data)
print(data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "000")
EOF
}

# slow body|headers COUNT: COUNT clients that send 1 byte a second; meanwhile one
# normal enrollment.  Sets SLOW_CUT (slowest cut, s), SLOW_STATUS (their status lines,
# sorted and counted) and OTHER_OK/OTHER_TIME for the normal client.
slow() {
    local what=$1 count=$2
    python3 - "$PORT" "$what" "$count" >"$T/$CUR.slow" 2>&1 <<'EOF' &
import select, socket, sys, time, threading
port, what, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
results = []
def client():
    start = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    if what == "body":
        s.sendall(b"POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Type: application/x-pki-message\r\nContent-Length: 5000\r\n\r\n0")
        drip = b"0"
    else:
        s.sendall(b"POST /scep?operation=PKIOperation HTTP/1.1\r\n")
        drip = b"X"
    answer = b""
    # one byte a second for at most 25 s, reading whatever the server answers at once
    while time.monotonic() - start < 25:
        readable, _, _ = select.select([s], [], [], 1.0)
        if readable:
            try:
                chunk = s.recv(4096)
            except OSError:
                break
            if not chunk:
                break
            answer += chunk
            continue
        try:
            s.send(drip)
        except OSError:
            break
    results.append((time.monotonic() - start,
                    answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "none"))
    s.close()
threads = [threading.Thread(target=client) for _ in range(count)]
for t in threads:
    t.start()
for t in threads:
    t.join(40)
print("cut=%d" % max(int(r[0] + 0.999) for r in results))
print("status=" + ",".join(sorted(set(r[1] for r in results))))
print("clients=%d" % len(results))
EOF
    local pid=$!
    sleep 1
    # the others are served meanwhile
    build --challenge "$CHAL"
    post "$T/$CUR.req" /scep
    OTHER_TIME=$HTTP_TIME
    OTHER_OK=0
    check_success "$CUR" "$RA" "$CA" "a normal client while $count slow ${what} clients hold connections" \
        && OTHER_OK=1
    # below MaxRequestWorkers (16) it is served at once; above, once the first are cut
    if ((OTHER_OK)) && awk -v t="$OTHER_TIME" -v m="$((count < 16 ? 2 : SLOW_BODY_S + 3))" \
        'BEGIN { exit !(t <= m) }'; then
        pass "$CUR: the normal client was answered in ${OTHER_TIME}s"
    else
        fail "$CUR: the normal client waited ${OTHER_TIME}s"
    fi
    timeout 60 tail --pid="$pid" -f /dev/null || true
    wait "$pid" || true
    SLOW_CUT=$(sed -n 's/^cut=//p' "$T/$CUR.slow")
    SLOW_STATUS=$(sed -n 's/^status=//p' "$T/$CUR.slow")
    [[ $(sed -n 's/^clients=//p' "$T/$CUR.slow") == "$count" ]] \
        || { fail "$CUR: not every slow client finished"; cat "$T/$CUR.slow"; }
}

# RSA exponents (issue 15, points 10 and 12): 2^256+1 is odd and just too big; a 3071-bit
# e on a 3072-bit modulus passes OpenSSL's own bound, which starts above 3072 bits
E_2P256_PLUS_1=0x1$(printf '0%.0s' {1..63})1

# ---- the table ------------------------------------------------------------------------
# row | how the request is made | expected answer | error-log line expected (ERE; - none)
mapfile -t TABLE <<EOF
trunc-1        | truncated 1                                        | http:400 | SCEP00204: .*not a CMS message
trunc-10       | truncated 10                                       | http:400 | SCEP00204: .*not a CMS message
trunc-half     | truncated half                                     | http:400 | SCEP00204: .*not a CMS message
trunc-last     | truncated -1                                       | http:400 | SCEP00204: .*not a CMS message
empty-body     | truncated 0                                        | http:400 | SCEP00204: .*not a CMS message
length-lie     | length_lie                                         | http:400 | SCEP00204: .*not a CMS message
random-3k      | random_post 3000 /scep                             | http:400 | SCEP00204: .*not a CMS message
post-over      | random_post 65537 /scep                            | http:413 | SCEP00102: .*65537 bytes exceeds ScepMaxMessageSize 65536
chunked-over   | chunked_post 70000 /scep                           | http:413 | SCEP00103: .*chunked body exceeds ScepMaxMessageSize 65536
terabyte-claim | HTTP_CODE=\$(huge_length /scep 1000000000000)      | http:413 | -
half-gb-claim  | HTTP_CODE=\$(huge_length /scep 500000000)          | http:413 | SCEP00102: .*500000000 bytes exceeds
get-over       | get_random /small 6000                             | http:413 | SCEP00106: .*exceeds ScepMaxMessageSize 4096
get-over-line  | get_random /scep 60000                             | http:414 | -
get-not-b64    | get /scep '%25%25not*base64!!'                     | http:400 | SCEP00107: .*not base64
get-b64-glued  | get /scep 'QUJD%3DQUJD'                            | http:400 | SCEP00107: .*not base64
deep-indef     | nested 15000 indefinite                            | http:400 | SCEP00204: .*not a CMS message
deep-definite  | nested 5000 definite                               | http:400 | SCEP00204: .*not a CMS message
ber-indef-cut  | build --challenge $CHAL --ber-indefinite; head -c -2 "\$T/\$CUR.req" >"\$T/\$CUR.cut"; post "\$T/\$CUR.cut" /scep | http:400 | SCEP00204: .*not a CMS message
outer-envelope | content_type enveloped                             | http:400 | SCEP00204: .*not a CMS SignedData
outer-data     | content_type data                                  | http:400 | SCEP00204: .*not a CMS SignedData
ber-indefinite | req /scep --challenge $CHAL --ber-indefinite       | success  | SCEP00220: scep\(HOSTILE-ber-indefinite-
nested-attr    | req /scep --challenge $CHAL --nested-attr 5000     | success  | SCEP00220: scep\(HOSTILE-nested-attr-
no-envelope    | req /scep --challenge $CHAL --no-envelope          | fail:badRequest | SCEP00205: .*not a CMS EnvelopedData
no-signer-cert | req /scep --challenge $CHAL --no-signer-cert       | fail:badCertId | SCEP00205: .*signer's certificate is not included
digest-oid     | req /scep --challenge $CHAL --unknown-digest-oid   | fail:badAlg | SCEP00205: .*digest algorithm .* is not accepted
cipher-oid     | req /scep --challenge $CHAL --unknown-cipher-oid   | fail:badAlg | SCEP00205: .*content encryption .* is not accepted
msgtype-3      | req /scep --challenge $CHAL --msgtype 3            | fail:badRequest | SCEP00205: .*messageType 3 is not a request
msgtype-99     | req /scep --challenge $CHAL --msgtype 99           | fail:badRequest | SCEP00205: .*messageType 99 is not a request
msgtype-19x    | req /scep --challenge $CHAL --msgtype 19x          | fail:badRequest | SCEP00205: .*no usable messageType
msgtype-plus   | req /scep --challenge $CHAL --msgtype +19          | fail:badRequest | SCEP00205: .*no usable messageType
bad-signature  | req /scep --challenge $CHAL --break-signature      | fail:badMessageCheck | SCEP00205: .*signature does not verify
other-rcpt     | build --challenge $CHAL --recipient \$T/pki/other.pem; post "\$T/\$CUR.req" /scep | fail:badMessageCheck | SCEP00205: .*not encrypted to this server
garbage-csr    | req /scep --challenge $CHAL --break-csr            | fail:badRequest | SCEP00210: .*not a PKCS#10
key-512        | req /scep --key k512 --challenge $CHAL             | fail:badRequest | SCEP00211: .*512 bits; ScepMinKeySize is 2048
key-fake-16k   | req /scep --challenge $CHAL --fake-key-bits 16384  | fail:badRequest | SCEP00210: .*self-signature does not verify
key-fake-200k  | req /scep --challenge $CHAL --fake-key-bits 200000 | fail:badRequest | SCEP00211: .*200000 bits, more than 16384
point10-csr-e1 | req /scep --challenge $CHAL --csr-exponent 1          | fail:badRequest | SCEP00211: .*RSA public exponent is 1, with which anyone can forge
point10-csr-e2 | req /scep --challenge $CHAL --csr-exponent 2          | fail:badRequest | SCEP00211: .*RSA public exponent is below 3
point10-csr-e65536 | req /scep --challenge $CHAL --csr-exponent 65536  | fail:badRequest | SCEP00211: .*RSA public exponent is even
point12-csr-e2p256 | req /scep --challenge $CHAL --csr-exponent $E_2P256_PLUS_1 | fail:badRequest | SCEP00211: .*RSA public exponent has more than 256 bits
point12-csr-e3071 | req /scep --key k3072 --challenge $CHAL --csr-exponent bits:3071 | fail:badRequest | SCEP00211: .*RSA public exponent has more than 256 bits
point10-signer-e1 | req /scep --challenge $CHAL --signer-exponent 1    | fail:badMessageCheck | SCEP00205: .*signer certificate's key is unusable: the RSA public exponent is 1,
point10-signer-e2 | req /scep --challenge $CHAL --signer-exponent 2    | fail:badMessageCheck | SCEP00205: .*signer certificate's key is unusable: the RSA public exponent is below 3
point10-signer-e65536 | req /scep --challenge $CHAL --signer-exponent 65536 | fail:badMessageCheck | SCEP00205: .*signer certificate's key is unusable: the RSA public exponent is even
point12-signer-e2p256 | req /scep --challenge $CHAL --signer-exponent $E_2P256_PLUS_1 | fail:badMessageCheck | SCEP00205: .*signer certificate's key is unusable: the RSA public exponent has more than 256 bits
point12-signer-e3071 | req /scep --key k3072 --challenge $CHAL --signer-exponent bits:3071 | fail:badMessageCheck | SCEP00205: .*signer certificate's key is unusable: the RSA public exponent has more than 256 bits
sans-100       | req /scep --challenge $CHAL --san-dns h.example.org --extra-sans 99 | success | SCEP00220: scep\(HOSTILE-sans-100-
sans-300       | req /scep --challenge $CHAL --san-dns h.example.org --extra-sans 299 | fail:badRequest | SCEP00210: .*300 names, more than 100
subject-big    | req /scep --challenge $CHAL --subject-pad 40000    | fail:badRequest | SCEP00210: .*subject .* bytes, more than 4096
rp-first       | req /reg --key rp --challenge $CH_RP --san-dns rp.example.net --subject /CN=rp | success | SCEP00220: .*to rp\.example\.net
rp-same-bytes  | resend rp-first /reg                               | same:rp-first | SCEP00221: scep\(HOSTILE-rp-first-
rp-new-nonce   | req /reg --key rp --txid HOSTILE-rp-first-$RUN --challenge $CH_RP --san-dns rp.example.net --subject /CN=rp | same:rp-first | SCEP00221: scep\(HOSTILE-rp-first-
rp-other-key   | req /reg --key thief --txid HOSTILE-rp-first-$RUN --challenge $CH_RP --san-dns rp.example.net --subject /CN=rp | success | SCEP00220: scep\(HOSTILE-rp-first-.*to rp\.example\.net
held-first     | req /reg --key held --challenge $CH_HELD --san-dns held.example.net | pending | SCEP00240: .*held\.example\.net .*held for approval
held-again     | resend held-first /reg                             | pending  | SCEP00241: scep\(HOSTILE-held-first-
held-hijack    | req /reg --key thief --txid HOSTILE-held-first-$RUN --challenge $CH_HELD --san-dns held.example.net | pending | SCEP00240: scep\(HOSTILE-held-first-.*held\.example\.net .*held for approval
held-poll-thief | req /reg --key thief2 --txid HOSTILE-held-first-$RUN --no-challenge --msgtype 20 --poll-issuer \$CA | fail:badRequest | SCEP00242: scep\(HOSTILE-held-first-.*no request with this transactionID was held here
held-poll-owner | req /reg --key held --txid HOSTILE-held-first-$RUN --no-challenge --msgtype 20 --poll-issuer \$CA | pending | SCEP00241: scep\(HOSTILE-held-first-
brute-1        | req /reg --key bf --challenge ${WRONG[0]} --san-dns bf.example.net | fail:badRequest | SCEP00212: .*for bf\.example\.net refused .*challengePassword is wrong
brute-2        | req /reg --key bf --challenge ${WRONG[1]} --san-dns bf.example.net | fail:badRequest | SCEP00212: .*for bf\.example\.net refused .*challengePassword is wrong
brute-3        | req /reg --key bf --challenge ${WRONG[2]} --san-dns bf.example.net | fail:badRequest | SCEP00212: .*for bf\.example\.net refused .*challengePassword is wrong
brute-right    | req /reg --key bf --challenge $CH_BF --san-dns bf.example.net | fail:badRequest | SCEP00212: .*bf\.example\.net is locked out until
slow-body-12   | slow body 12                                       | cut:6    | SCEP00250: .*did not arrive
slow-body-24   | slow body 24                                       | cut:10   | SCEP00250: .*did not arrive
slow-headers   | slow headers 12                                    | cut:9    | -
EOF

FAILINFO_NUM=([0]=badAlg [1]=badMessageCheck [2]=badRequest [3]=badTime [4]=badCertId)
failinfo_num() {
    local i
    for i in "${!FAILINFO_NUM[@]}"; do
        [[ "${FAILINFO_NUM[$i]}" == "$1" ]] && { echo "$i"; return; }
    done
    die "unknown failInfo $1"
}
serial_of() { openssl x509 -in "$T/$1.pem" -noout -serial | sed 's/^serial=//'; }
make_key "$T/k512.key" 512
make_key "$T/k3072.key" 3072
trim() { sed 's/^ *//; s/ *$//' <<<"$1"; }

for row in "${TABLE[@]}"; do
    IFS='|' read -r name how want tag <<<"$row"
    CUR=$(trim "$name")
    how=$(trim "$how")
    want=$(trim "$want")
    tag=$(trim "$tag")
    HTTP_CODE="" HTTP_TIME=0 REQ_TXID=""
    before=$(wc -l <"$ERROR_LOG")
    started=$SECONDS
    eval "$how"
    TXID_OF[$CUR]=$REQ_TXID
    case $want in
        http:*)
            expect_eq "$HTTP_CODE" "${want#http:}" "$CUR: HTTP ${want#http:}" ;;
        fail:*)
            expect_failure "$CUR" "$RA" "$(failinfo_num "${want#fail:}")" "$CUR: FAILURE ${want#fail:}" || true ;;
        success)
            check_success "$CUR" "$RA" "$CA" "$CUR" || true ;;
        same:*)
            if check_success "$CUR" "$RA" "$CA" "$CUR"; then
                expect_eq "$(serial_of "$CUR")" "$(serial_of "${want#same:}")" \
                    "$CUR: the certificate of ${want#same:} again, nothing new issued"
            fi ;;
        pending)
            if [[ "$HTTP_CODE" == 200 ]] && probe_reply "$CUR" "$RA"; then
                expect_eq "$(field "$CUR" pkiStatus)/$(field "$CUR" transactionID)" \
                    "3/$REQ_TXID" "$CUR: PENDING"
            else
                fail "$CUR: HTTP $HTTP_CODE, no CertRep: $(cat "$T/$CUR.err" 2>/dev/null)"
            fi ;;
        cut:*)
            expect_eq "$SLOW_STATUS" 408 "$CUR: every slow client answered 408 Request Timeout"
            if ((SLOW_CUT <= ${want#cut:})); then
                pass "$CUR: the slowest was cut after ${SLOW_CUT}s (at most ${want#cut:})"
            else
                fail "$CUR: a slow client held on for ${SLOW_CUT}s (at most ${want#cut:})"
            fi ;;
        *) die "row $CUR: unknown expectation $want" ;;
    esac
    # the answer's own time: parsing and refusing costs little, whatever the input
    if [[ $want != cut:* ]] && awk -v t="$HTTP_TIME" 'BEGIN { exit !(t > 2.0) }'; then
        fail "$CUR: the answer took ${HTTP_TIME}s"
    fi
    tail -n +"$((before + 1))" "$ERROR_LOG" >"$T/$CUR.log"
    problems=""
    if [[ "$tag" != - ]] && ! grep -qE -- "$tag" "$T/$CUR.log"; then
        problems+=" no line matches /$tag/;"
    fi
    for s in "${SECRETS[@]}"; do
        grep -qF -- "$s" "$T/$CUR.log" && problems+=" a challenge is logged;"
    done
    grep -qF -- "PRIVATE KEY" "$T/$CUR.log" && problems+=" private key material is logged;"
    grep -qE -- "exit signal|AH00052|child pid [0-9]+ exit" "$T/$CUR.log" && problems+=" a child crashed;"
    if [[ -z "$problems" ]]; then
        pass "$CUR: log line as expected, no secret, no crash ($((SECONDS - started))s)"
    else
        fail "$CUR: log:$problems"
        head -10 "$T/$CUR.log" | sed 's/^/       | /'
    fi
done

# ---- still healthy ----------------------------------------------------------------------
CUR=healthy
req /scep --challenge "$CHAL"
check_success healthy "$RA" "$CA" "after all rows a normal enrollment still succeeds" || true

httpd_stop || fail "httpd did not stop cleanly"
# refusals of devices may be WARNINGs (tagged, naming the transaction); httpd's own info
# lines about timeouts are not shown at LogLevel notice
check_error_log "\\[scep:warn\\] .*${TAG_RE}scep\\(" '\[mpm_event:error\] .*AH00484: server reached MaxRequestWorkers'
for s in "${SECRETS[@]}"; do
    expect_log_lacks "$s" "no challenge anywhere in the error log"
done
expect_log_lacks "PRIVATE KEY" "no private key material in the error log"
expect_log_lacks "exit signal" "no child crashed"
t_done

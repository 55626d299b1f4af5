#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Regenerates the seed corpus under tests/fuzz/corpus/ from real client messages:
# requests built by scep_probe (every cipher, digest and message type the server reads),
# and what strongSwan's `pki --scep` and micromdm's scepclient send to a stand-in server
# (capture.py, 127.0.0.1 only).  Every message is encrypted to tests/fuzz/pki's RA (one
# to its CA), so the fuzz targets, which hold the same keys, can open them.  Each message
# is then split into the inputs of each target: the whole message (pkimsg), the
# EnvelopedData it signs (envelope), and the messageData inside (content).  The decode
# and import seeds are written from the same messages and by hand.
#
#   tests/fuzz/make-seeds.sh          (after `make`: needs tests/tools/scep_probe)
#
# The checked-in corpus is this script's output; rerun it when the message code changes.
# Clients that are not installed are skipped with a note.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
probe=${SCEP_PROBE:-$top/tests/tools/scep_probe}
pki=$here/pki
[[ -x "$probe" ]] || { echo "make-seeds.sh: $probe not built (run make)" >&2; exit 1; }

w=$(mktemp -d "${TMPDIR:-/tmp}/scep-seeds.XXXXXX")
server_pid=""
cleanup() {
    [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null
    rm -rf "$w"
}
trap cleanup EXIT
mkdir -p "$w/raw" "$w/capture"

# ---- device keys: small, so that the seeds stay small -----------------------------------
timeout 60 openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out "$w/dev.key" 2>/dev/null
timeout 60 openssl req -x509 -new -key "$w/dev.key" -subj "/CN=fuzz-device-selfsigned" -days 2 \
    -out "$w/dev.pem" 2>/dev/null

# ---- scep_probe ---------------------------------------------------------------------------
req() {
    local name=$1
    shift
    timeout 60 "$probe" request --key "$w/dev.key" --cert "$w/dev.pem" \
        --subject "/CN=$name.fuzz.example/O=mod_scep fuzzing" --out "$w/raw/probe-$name" "$@" \
        >/dev/null
}
for c in aes128 aes192 aes256 des3 des; do
    req "$c" --recipient "$pki/ra.pem" --cipher "$c" --challenge "s3cret-$c"
done
for d in sha1 sha224 sha384 sha512 md5; do
    req "$d" --recipient "$pki/ra.pem" --digest "$d" --challenge "s3cret-$d"
done
req to-ca --recipient "$pki/ca.pem" --challenge s3cret
req oaep-pss --recipient "$pki/ra.pem" --oaep --pss --challenge s3cret
req nochallenge --recipient "$pki/ra.pem" --no-challenge
req cisco --recipient "$pki/ra.pem" --challenge s3cret --unstructured-name router.fuzz.example \
    --unstructured-address 192.0.2.1 --serial-number FTX1234ABCD
req san --recipient "$pki/ra.pem" --challenge s3cret --san-dns alt.fuzz.example --critical-aki
req renewal --recipient "$pki/ra.pem" --challenge s3cret --msgtype 17
req certpoll --recipient "$pki/ra.pem" --msgtype 20 --poll-issuer "$pki/ca.pem" --no-challenge
req getcert --recipient "$pki/ra.pem" --msgtype 21 --query-issuer "$pki/ca.pem" \
    --query-serial 0A1B2C3D --no-challenge
req getcrl --recipient "$pki/ra.pem" --msgtype 22 --query-issuer "$pki/ca.pem" \
    --query-serial 01 --no-challenge
req badcsr --recipient "$pki/ra.pem" --challenge s3cret --break-csr

# ---- real clients against the stand-in server ----------------------------------------------
cat "$pki/ca.pem" "$pki/ra.pem" | timeout 30 openssl crl2pkcs7 -nocrl -certfile /dev/stdin \
    -outform DER -out "$w/cacert.der"
python3 "$here/capture.py" "$w/capture" "$w/port" "$w/cacert.der" &
server_pid=$!
for _ in $(seq 50); do [[ -s "$w/port" ]] && break; sleep 0.1; done
[[ -s "$w/port" ]] || { echo "make-seeds.sh: the capture server did not start" >&2; exit 1; }
url="http://127.0.0.1:$(cat "$w/port")"
openssl x509 -in "$pki/ra.pem" -outform DER -out "$w/ra.der"
openssl x509 -in "$pki/ca.pem" -outform DER -out "$w/ca.der"

take() {   # take NAME: the newest capture becomes raw/NAME (and its query, if any)
    local last
    last=$(ls -t "$w/capture" | grep -v '^query-' | head -n 1 || true)
    if [[ -z "$last" ]]; then
        echo "make-seeds.sh: $1 sent nothing" >&2
        return
    fi
    mv "$w/capture/$last" "$w/raw/$1"
    last=$(ls -t "$w/capture" | grep '^query-' | head -n 1 || true)
    [[ -n "$last" ]] && mv "$w/capture/$last" "$w/query-$1"
    return 0
}
if command -v pki >/dev/null; then
    # pki 5.9.8 refuses AES against this stand-in ("AES_CBC encryption algorithm not
    # supported by CA") though it reads the AES capability; not investigated further:
    # its AES messages differ from these in the cipher OID and IV length only.
    for v in "des3 sha256 /scep" "des3 sha1 /scep-get" "des3 sha512 /scep"; do
        read -r cipher digest path <<<"$v"
        timeout 60 pki --scep --url "$url$path" --in "$w/dev.key" \
            --dn "O=mod_scep fuzzing, CN=strongswan-$cipher.fuzz.example" \
            --san "strongswan-$cipher.fuzz.example" --password s3cret \
            --cacert-enc "$w/ra.der" --cacert-sig "$w/ra.der" --cacert "$w/ca.der" \
            --cipher "$cipher" --digest "$digest" --interval 1 --maxpolltime 1 \
            >/dev/null 2>&1 || true
        take "strongswan-$cipher-$digest${path#/scep}"
        sleep 1   # captures are told apart by their time
    done
else
    echo "make-seeds.sh: strongSwan pki not installed, skipped" >&2
fi
if command -v scepclient >/dev/null; then
    mkdir -p "$w/micromdm"
    (cd "$w/micromdm" && timeout 60 scepclient -server-url "$url/scep" -keySize 1024 \
        -private-key key.pem -certificate cert.pem -cn micromdm.fuzz.example \
        -challenge s3cret >/dev/null 2>&1) || true
    take micromdm-scepclient
else
    echo "make-seeds.sh: micromdm scepclient not installed, skipped" >&2
fi
kill "$server_pid" 2>/dev/null || true
wait "$server_pid" 2>/dev/null || true
server_pid=""

# ---- split into the targets' corpora ----------------------------------------------------
c=$here/corpus
rm -rf "$c/pkimsg" "$c/envelope" "$c/content" "$c/decode" "$c/import"
mkdir -p "$c/pkimsg" "$c/envelope" "$c/content" "$c/decode" "$c/import"
for m in "$w"/raw/*; do
    name=$(basename "$m")
    cp "$m" "$c/pkimsg/$name"
    timeout 30 openssl cms -verify -noverify -inform DER -binary -in "$m" \
        -out "$c/envelope/$name" >/dev/null 2>&1 \
        || { echo "make-seeds.sh: $name: no signed content" >&2; rm -f "$c/envelope/$name"; continue; }
    for who in ra ca; do
        # micromdm's scepclient and `scep_probe --cipher des` use single DES: legacy provider
        if timeout 30 openssl cms -decrypt -provider legacy -provider default -inform DER \
            -binary -in "$c/envelope/$name" \
            -recip "$pki/$who.pem" -inkey "$pki/$who.key" -out "$c/content/$name" \
            >/dev/null 2>&1; then
            break
        fi
        rm -f "$c/content/$name"
    done
done

# GET queries: the clients' own, and the encodings the integration tests use, of the
# smallest message
for q in "$w"/query-*; do
    [[ -f "$q" ]] && cp "$q" "$c/decode/client-${q##*/query-}"
done
small=$(ls -S "$w"/raw/probe-getcrl | head -n 1)
b64=$(base64 -w0 <"$small")
pct() { sed 's/+/%2B/g; s|/|%2F|g; s/=/%3D/g'; }
printf 'operation=PKIOperation&message=%s' "$(pct <<<"$b64")" >"$c/decode/std"
printf 'operation=PKIOperation&message=%s' "$(sed 's|/|%2F|g; s/=/%3D/g' <<<"$b64")" >"$c/decode/plus"
printf 'operation=PKIOperation&message=%s' \
    "$(base64 -w64 <"$small" | pct | awk 'BEGIN { ORS = "" } NR > 1 { print "%0D%0A" } { print }')" \
    >"$c/decode/lines64-crlf"
printf 'message=%s&operation=pkioperation' "$(tr '+/' '-_' <<<"$b64" | tr -d '=')" >"$c/decode/urlsafe"
printf 'operation=PKIOperation&message=%s' "$(sed 's/=/%3D/g' <<<"$b64")" >"$c/decode/macos"
printf 'operation=GetCACaps&message=CAIdentifier' >"$c/decode/getcacaps"
printf 'operation=GetCACert&operation=ignored&x=%%41&message=' >"$c/decode/repeated"
printf 'Operation=%%50KIOperation&MESSAGE=TWFu%%0aTWE%%3d' >"$c/decode/escapes"

# import: the CSV forms docs/scepreg.md describes
cat >"$c/import/full" <<'CSV'
fqdn,ips,serial,challenge,flags,expires,profile,comment
router1.example.com,192.0.2.1;2001:db8::1,FTX1234ABCD,s3cret,one-time,2030-01-31,routers,"rack 4, left"
phone.example.com,,,"a ""quoted"" secret",disabled approval,+30d,,
*.branch.example.com,198.51.100.7,,pw,,2031-12-31T23:59:59Z,branch,wildcard
CSV
printf '# comment\r\n\r\n  vpn.example.com , 10.0.0.1 10.0.0.2 ,SN-1,,ONE-TIME,never,vpn_1.x,caf\xc3\xa9\r\n' \
    >"$c/import/crlf-utf8"
printf 'bad..name,,,\nok.example.com,300.1.1.1\nok2.example.com,,,,"unterminated\nx.example.com,,,,,2023-02-30\n*,,,,bogus-flag\n' \
    >"$c/import/rejects"

# import, identity kinds (issue 17): each kind, a MAC spelling, a user domain wildcard,
# and names refused before storage (control character, invalid UTF-8, too long)
cat >"$c/import/kinds" <<'CSV'
fqdn,ips,serial,challenge,flags,expires,profile,comment
"name:John's iPhone",,,pw,one-time,+30d,mdm,device name
id:AA-BB-CC-DD-EE-FF,,,pw,,,,MAC
id:3F2504E0-4F89-11D3-9A0C-0305E82C3301,,,pw,,,,UDID
user:Alice@EXAMPLE.org,,,pw,,,,user
user:*@example.org,,,pw,,,,domain wildcard
name:*,,,pw,,,,any device name
CSV
printf 'name:tab\there,,,pw\nname:bad\xffutf8,,,pw\nname:c1\xc2\x85,,,pw\n' \
    >"$c/import/kinds-rejects"
printf 'user:alice,,,pw\nrole:x,,,pw\nname:%s,,,pw\n' "$(head -c 300 /dev/zero | tr '\0' x)" \
    >>"$c/import/kinds-rejects"

for t in pkimsg envelope content decode import; do
    printf '%-9s %3d files %7d bytes\n' "$t" "$(ls "$c/$t" | wc -l)" "$(cat "$c/$t"/* | wc -c)"
done

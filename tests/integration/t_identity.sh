#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Issue 17, point 1: identity kinds.  Registrations of a device name, a device id (a MAC
# in several spellings) and users (e-mail, UPN, a domain wildcard) enroll at endpoints
# with ScepIdentity, with requests made by `openssl req` and sent by scep_probe, by
# strongSwan's pki and by micromdm's scepclient.  The attacks: a user's challenge for
# another user, another device id with a registered id's challenge, a challenge minted
# for one user used for another (and at a host endpoint), two identities at the place
# the endpoint reads, control characters, invalid UTF-8 and 10,000-character names in
# requests, on scepreg's command line and in its CSV import (refused before anything is
# stored).  Host enrollment next to them is unchanged.  What the certificate holds
# beyond the CN is the issuer's (templates); here: what the policy decides.
source "$(dirname "$0")/lib.sh"
t_init
require_module
SCEPREG=${SCEPREG:-$TOP/scepreg}
[[ -x "$SCEPREG" ]] || die "the registration tool $SCEPREG is not built"
reg() { timeout 60 "$SCEPREG" "$@"; }

make_pki "$T/pki" Ident
RA=$T/pki/ra.pem
CA=$T/pki/ca.pem
DB=$T/db

CH_NAME=$(openssl rand -hex 12)
CH_ID=$(openssl rand -hex 12)
CH_ALICE=$(openssl rand -hex 12)
CH_BOB=$(openssl rand -hex 12)
CH_CORP=$(openssl rand -hex 12)
CH_HOST=$(openssl rand -hex 12)
reg -c -b "$DB" "name:John's iPhone" "$CH_NAME" || die "scepreg: device name"
reg -b "$DB" "id:AA-BB-CC-DD-EE-FF" "$CH_ID" || die "scepreg: device id"
reg -b "$DB" "user:alice@Example.ORG" "$CH_ALICE" || die "scepreg: alice"
reg -b "$DB" "user:bob@example.org" "$CH_BOB" || die "scepreg: bob"
reg -b "$DB" "user:*@corp.example.org" "$CH_CORP" || die "scepreg: domain wildcard"
reg -b "$DB" '*' "$CH_HOST" || die "scepreg: host wildcard"

# ---- scepreg: the kinds' keys, listings, and names refused before storage -------------

reg -l "$DB" >"$T/list.txt" 2>&1
for key in "name:John's iPhone" "id:aa:bb:cc:dd:ee:ff" "user:alice@example.org" \
           "user:*@corp.example.org"; do
    if cut -f1 "$T/list.txt" | grep -qxF -- "$key"; then
        pass "scepreg -l lists the key '$key'"
    else
        fail "scepreg -l lacks '$key':"
        sed 's/^/       | /' "$T/list.txt"
    fi
done
reg -l -j "$DB" "user:alice@example.org" >"$T/list.json" 2>&1
if python3 - "$T/list.json" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
assert len(rows) == 1, rows
assert rows[0]["kind"] == "user" and rows[0]["fqdn"] == "user:alice@example.org", rows[0]
assert rows[0]["name"] == "alice@example.org", rows[0]
PY
then
    pass "scepreg -l -j: kind user, the whole key, the name without its prefix"
else
    fail "scepreg -l -j: $(cat "$T/list.json")"
fi
reg -l -j "$DB" 'id:*' >"$T/ids.json" 2>&1
expect_file_contains "$T/ids.json" \
    '"kind":"device-id","fqdn":"id:aa:bb:cc:dd:ee:ff","name":"aa:bb:cc:dd:ee:ff"' \
    "scepreg -l -j id:*: the MAC, normalised"
# every spelling of the MAC is the one registration
for mac in aa:bb:cc:dd:ee:ff aabb.ccdd.eeff AABBCCDDEEFF; do
    if reg -v -b "$DB" "id:$mac" "$CH_ID" >/dev/null 2>&1; then
        pass "scepreg -v id:$mac finds the registration"
    else
        fail "scepreg -v id:$mac does not find it"
    fi
done

before=$(reg -l "$DB" | wc -l)
# refused_name WHAT RC PHRASE NAME: scepreg exits RC saying PHRASE, and stores nothing
refused_name() {
    local what=$1 want=$2 phrase=$3 rc=0
    reg -b "$DB" "$4" pw >"$T/refused.out" 2>&1 || rc=$?
    if [[ $rc == "$want" ]] && grep -qF -- "$phrase" "$T/refused.out"; then
        pass "scepreg refuses $what (exit $rc: $(head -1 "$T/refused.out" | cut -c1-90))"
    else
        fail "scepreg $what: exit $rc, expected $want and '$phrase':"
        sed 's/^/       | /' "$T/refused.out" | cut -c1-200
    fi
}
refused_name "a control character" 6 "control character 0x09" "name:tab$(printf '\t')here"
refused_name "an escape sequence" 6 "control character 0x1B" "name:$(printf '\033')[31mred"
refused_name "a C1 control character" 6 "control character U+0085" \
    "name:next$(printf '\302\205')line"
refused_name "invalid UTF-8" 6 "not valid UTF-8" "name:caf$(printf '\351')"
# review F8: characters that show nothing or turn the text around, and noncharacters
refused_name "a zero-width space" 6 "invisible character U+200B at byte 6" \
    "name:John's$(printf '\342\200\213') iPhone"
refused_name "a right-to-left override" 6 "bidirectional control U+202E at byte 0" \
    "name:$(printf '\342\200\256')enohPi s'nhoJ"
refused_name "a byte order mark in a user" 6 "invisible character U+FEFF" \
    "user:$(printf '\357\273\277')alice@example.org"
refused_name "a noncharacter" 6 "noncharacter U+FFFE" "id:x$(printf '\357\277\276')"
refused_name "a 10,000-character name" 5 "more than 256" "name:$(printf 'x%.0s' {1..10000})"
refused_name "a user without a domain" 6 "one '@'" "user:alice"
refused_name "an unknown kind" 6 "none of host, name, id, user" "role:admin"
printf 'fqdn,ips,serial,challenge\n"name:ok device",,,pw\nname:bell%s,,,pw\nname:%s,,,pw\nuser:x@bad..domain,,,pw\n' \
    "$(printf '\007')" "$(printf 'y%.0s' {1..10000})" >"$T/import.csv"
rc=0
reg -I "$T/import.csv" "$DB" >"$T/import.out" 2>&1 || rc=$?
expect_eq "$rc" 2 "scepreg -I with bad names exits 2 (rejected rows, nothing imported)"
expect_file_contains "$T/import.out" "control character 0x07" "scepreg -I: the bell is named"
expect_file_contains "$T/import.out" "more than 256" "scepreg -I: the long name is refused"
expect_eq "$(reg -l "$DB" | wc -l)" "$before" \
    "nothing was stored by the refused names (the import is all or nothing)"

# ---- the server ------------------------------------------------------------------------

httpd_conf "$(scep_location /scep "$T/pki" ra "ScepDeviceDB $DB")
$(scep_location /scep-name "$T/pki" ra "ScepDeviceDB $DB" "ScepIdentity device-name")
$(scep_location /scep-name-des "$T/pki" ra "ScepDeviceDB $DB" "ScepIdentity device-name" \
    "ScepLegacyAlgorithms On")
$(scep_location /scep-id "$T/pki" ra "ScepDeviceDB $DB" "ScepIdentity device-id")
$(scep_location /scep-user "$T/pki" ra "ScepDeviceDB $DB" "ScepIdentity user")
$(scep_location /scep-upn "$T/pki" ra "ScepDeviceDB $DB" "ScepIdentity user upn")
$(scep_location /scep-held "$T/pki" ra "ScepDeviceDB $DB" "ScepIdentity device-name" \
    "ScepRequireApproval On")
<Location /admin/challenge>
    SetHandler scep-challenge
    ScepDeviceDB $DB
    Require all granted
</Location>"
httpd_start || t_done

# csr NAME CHALLENGE SUBJECT [SAN]: $T/NAME.csr.der, made by openssl req with NAME's key.
# The subject ("/CN=a/O=b") goes into the configuration, numbered so that an attribute
# may come twice: with -subj, openssl req leaves out the challengePassword.
csr() {
    local name=$1 challenge=$2 subject=$3 san=${4:-} n=0 rdn rdns value
    [[ -f "$T/$name.key" ]] || make_key "$T/$name.key" 2048
    {
        printf '[req]\ndistinguished_name = dn\nattributes = attrs\nprompt = no\n'
        printf 'string_mask = utf8only\nutf8 = yes\n[dn]\n'
        IFS=/ read -ra rdns <<<"${subject#/}"
        for rdn in "${rdns[@]}"; do
            value=${rdn#*=}
            printf '%d.%s = %s\n' "$n" "${rdn%%=*}" "${value//\'/\\\'}"
            n=$((n + 1))
        done
        printf '[attrs]\nchallengePassword = %s\n' "$challenge"
    } >"$T/$name.cnf"
    timeout 60 openssl req -new -key "$T/$name.key" -config "$T/$name.cnf" \
        ${san:+-addext "subjectAltName=$san"} -outform DER \
        -out "$T/$name.csr.der" 2>"$T/$name.csr.err" \
        || die "openssl req for $name: $(cat "$T/$name.csr.err")"
}
# issued NAME LOCATION: the request $T/NAME.csr.der is issued there
issued() {
    enroll "$1" "$2" POST "$RA" "$CA" "$RA" --no-challenge --csr "$T/$1.csr.der"
}
# refused_req NAME LOCATION WHAT LOG-ERE: FAILURE badRequest, and the log says why
refused_req() {
    probe_enrollment_request "$1" "$RA" --no-challenge --csr "$T/$1.csr.der"
    send_request "$1" "$2" POST
    expect_failure "$1" "$RA" 2 "$3"
    expect_log "$4" "$3: the log says why"
}
subject_of() { openssl x509 -in "$T/$1.pem" -noout -subject -nameopt RFC2253,-esc_msb; }

# device name: exact text, case kept
csr iphone "$CH_NAME" "/CN=John's iPhone/O=ignored"
if issued iphone /scep-name; then
    expect_match "$(subject_of iphone)" "CN=John's iPhone" \
        "the device name's certificate has its CN as the profile wrote it"
fi
expect_log "SCEP00220: .* issued serial [0-9A-F]+ to name:John's iPhone" \
    "the issue is logged under the device name's key"
csr iphone-lower "$CH_NAME" "/CN=john's iphone"
refused_req iphone-lower /scep-name "another case of the device name" \
    "for name:john's iphone refused \\(badRequest\\): no registration applies"
csr two-cns "$CH_NAME" "/CN=John's iPhone/CN=Jane's iPhone"
refused_req two-cns /scep-name "two CNs (a second identity)" "SCEP00601: .* 2 values of CN"
csr ctrl-cn "$CH_NAME" "/CN=John's$(printf '\x7f')iPhone"
refused_req ctrl-cn /scep-name "a DEL in the CN" "SCEP00603: .*control character 0x7F"
csr zw-cn "$CH_NAME" "/CN=John's$(printf '\342\200\213') iPhone"
refused_req zw-cn /scep-name "a zero-width space in the CN" \
    "SCEP00603: .*invisible character U\+200B at byte 6"
csr rlo-cn "$CH_NAME" "/CN=$(printf '\342\200\256')enohPi s'nhoJ"
refused_req rlo-cn /scep-name "a right-to-left override in the CN" \
    "SCEP00603: .*bidirectional control U\+202E at byte 0"

# device id: the serialNumber, every MAC spelling one registration
csr mac1 "$CH_ID" "/CN=Laptop/serialNumber=aa:bb:cc:dd:ee:ff"
issued mac1 /scep-id
csr mac2 "$CH_ID" "/CN=Laptop/serialNumber=AABB.CCDD.EEFF"
issued mac2 /scep-id
csr mac-other "$CH_ID" "/CN=Laptop/serialNumber=AA-BB-CC-DD-EE-00"
refused_req mac-other /scep-id "another device id with the registered id's challenge" \
    "for id:aa:bb:cc:dd:ee:00 refused \\(badRequest\\): no registration applies"
csr no-serial "$CH_ID" "/CN=Laptop"
refused_req no-serial /scep-id "no serialNumber at a device-id endpoint" \
    "SCEP00600: the request carries no serialNumber"

# users: rfc822Name and UPN, the domain's case ignored, another user's challenge refused
csr alice "$CH_ALICE" "/CN=Alice" "email:alice@EXAMPLE.org"
issued alice /scep-user
csr alice-upn "$CH_ALICE" "/CN=Alice" \
    "otherName:1.3.6.1.4.1.311.20.2.3;UTF8:alice@example.org"
issued alice-upn /scep-upn
csr bob-as-alice "$CH_ALICE" "/CN=Bob" "email:bob@example.org"
refused_req bob-as-alice /scep-user "bob with alice's challenge" \
    "challengePassword is wrong for user:bob@example.org"
csr carol "$CH_HOST" "/CN=Carol" "email:carol@example.org"
refused_req carol /scep-user "a user with the host wildcard's challenge" \
    "no registration applies to user:carol@example.org"
csr two-mails "$CH_ALICE" "/CN=Alice" "email:alice@example.org,email:bob@example.org"
refused_req two-mails /scep-user "two rfc822Names (a second identity)" \
    "SCEP00601: .* 2 values of rfc822Name"
csr long-mail "$CH_ALICE" "/CN=Alice" "email:$(printf 'a%.0s' {1..10000})@example.org"
refused_req long-mail /scep-user "a 10,000-character e-mail" "SCEP00602: the rfc822Name"
csr upn-at-mail "$CH_ALICE" "/CN=Alice" \
    "otherName:1.3.6.1.4.1.311.20.2.3;UTF8:alice@example.org"
refused_req upn-at-mail /scep-user "a UPN where the endpoint reads rfc822Name" "SCEP00600"

# the domain wildcard: Alice@EXAMPLE-style case matches, a look-alike domain does not
csr dave "$CH_CORP" "/CN=Dave" "email:Dave@CORP.example.org"
issued dave /scep-user
expect_log "issued serial [0-9A-F]+ to user:Dave@corp.example.org" \
    "the wildcard grant is logged under the user's own key"
csr evil "$CH_CORP" "/CN=Eve" "email:eve@corp.example.org.evil"
refused_req evil /scep-user "user:*@corp.example.org for corp.example.org.evil" \
    "no registration applies to user:eve@corp.example.org.evil"

# minted challenges bound to a user
http_get "/admin/challenge?fqdn=user%3Aalice%40example.org" "$T/minted"
expect_eq "$HTTP_CODE" 200 "the minting endpoint takes user:alice@example.org"
MINTED=$(tr -d '\n' <"$T/minted")
csr minted-bob "$MINTED" "/CN=Bob" "email:bob@example.org"
refused_req minted-bob /scep-user "a challenge minted for alice, used for bob" \
    "the minted challenge is bound to user:alice@example.org"
csr minted-host "$MINTED" "/CN=h1.example.org"
refused_req minted-host /scep "alice's minted challenge at the host endpoint" "SCEP00604"
csr minted-alice "$MINTED" "/CN=Alice" "email:alice@example.org"
issued minted-alice /scep-user
http_get "/admin/challenge?fqdn=name%3Abad%01name" "$T/minted-bad"
expect_eq "$HTTP_CODE" 400 "the minting endpoint refuses a name with a control character"
http_get "/admin/challenge?fqdn=name%3AJohn%E2%80%8B" "$T/minted-zw"
expect_eq "$HTTP_CODE" 400 "the minting endpoint refuses a name with a zero-width space"
# a quote or backslash in the identity stays inside the JSON string (review F2)
json_member() {
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$@" \
        2>&1
}
http_get '/admin/challenge?format=json&fqdn=name:x%22,%22challenge%22:%22AAAA' "$T/mint-q"
expect_eq "$HTTP_CODE" 200 "the minting endpoint takes a device name with quotes"
expect_eq "$(json_member "$T/mint-q" fqdn)" 'name:x","challenge":"AAAA' \
    "the JSON answer carries the quoted name as the one fqdn string"
expect_match "$(json_member "$T/mint-q" challenge)" '^[0-9a-f]{16,}$' \
    "the JSON answer's challenge is the minted one, not the name's"
http_get '/admin/challenge?format=json&fqdn=name:a%5Cb' "$T/mint-bs"
expect_eq "$(json_member "$T/mint-bs" fqdn)" 'name:a\b' \
    "a backslash in the name comes back escaped in JSON"

# held for approval: listed with its kind, approved by its key, issued as the device name
CH_HELD=$(openssl rand -hex 12)
reg -b "$DB" "name:Gerät von Jürgen" "$CH_HELD" 2>/dev/null || fail "scepreg: a UTF-8 name"
csr held "$CH_HELD" "/CN=Gerät von Jürgen"
probe_enrollment_request held "$RA" --no-challenge --csr "$T/held.csr.der"
send_request held /scep-held POST
probe_reply held "$RA" || true
expect_eq "$(field held pkiStatus)" 3 "a device name at an endpoint with approval: PENDING"
reg -P -j "$DB" >"$T/held.json" 2>&1
expect_file_contains "$T/held.json" \
    '"kind":"device-name","fqdn":"name:Gerät von Jürgen","name":"Gerät von Jürgen"' \
    "scepreg -P -j lists the held request with its kind and name"
if reg -Y "$DB" "name:Gerät von Jürgen" >"$T/approve.out" 2>&1; then
    pass "scepreg -Y approves by the device name's key"
else
    fail "scepreg -Y name:…: $(cat "$T/approve.out")"
fi
# review F4: the approved request, sent to an endpoint of another kind with the same
# profile and CA, is not completed there
send_request held /scep POST
expect_failure held "$RA" 2 "the approved device name's request sent to the host endpoint"
expect_log "held at another endpoint .*device-name from CN.*only that one completes it" \
    "the log says where the held request belongs"
send_request held /scep-held POST
if check_success held "$RA" "$CA" "POST after approval"; then
    expect_log "issued serial [0-9A-F]+ to name:Ger(ä|\\\\xc3\\\\xa4)t von J.*approved by an operator" \
        "the approved request is issued to the device name"
    expect_match "$(subject_of held)" "CN=Gerät von Jürgen" \
        "the approved certificate's CN is the device name as the request wrote it"
fi

# hosts next door: unchanged
csr host1 "$CH_HOST" "/CN=host1.example.org" "DNS:host1.example.org"
issued host1 /scep

# strongSwan pki builds its own request: a device name and a user
if command -v pki >/dev/null; then
    cp "$T/pki/ca.pem" "$T/ss-ca.pem"
    cp "$RA" "$T/ss-ra.pem"
    for how in "name|/scep-name|CN=John's iPhone||$CH_NAME" \
               "user|/scep-user|CN=Alice|alice@example.org|$CH_ALICE" \
               "id|/scep-id|CN=Laptop, serialNumber=aabb.ccdd.eeff||$CH_ID"; do
        IFS='|' read -r what loc dn san challenge <<<"$how"
        rc=0
        # a key each: pki derives the transactionID from the key
        make_key "$T/ss-$what.key" 2048
        openssl rsa -in "$T/ss-$what.key" -outform DER -out "$T/ss-$what.der" 2>/dev/null
        timeout 120 pki --scep --url "http://127.0.0.1:$PORT$loc" --in "$T/ss-$what.der" \
            --dn "$dn" ${san:+--san "$san"} --password "$challenge" \
            --cacert-enc "$T/ss-ra.pem" --cacert-sig "$T/ss-ra.pem" --cacert "$T/ss-ca.pem" \
            --outform pem >"$T/ss-$what.pem" 2>"$T/ss-$what.err" || rc=$?
        if ((rc == 0)) && openssl verify -CAfile "$CA" "$T/ss-$what.pem" >/dev/null 2>&1; then
            pass "pki --scep enrolls the $what identity at $loc"
            if [[ $what == id ]]; then
                # the MAC as the device spelled it, the only name without a template
                expect_eq "$(openssl x509 -in "$T/ss-id.pem" -noout -subject \
                             -nameopt RFC2253)" "subject=serialNumber=aabb.ccdd.eeff" \
                    "pki: the device id's certificate names the serial number it sent"
            fi
        else
            fail "pki --scep $what at $loc: exit $rc"
            tail -5 "$T/ss-$what.err" | sed 's/^/       | /'
        fi
    done
else
    note "strongSwan pki is not installed: its enrollments are skipped"
fi

# micromdm's scepclient (single DES: ScepLegacyAlgorithms) with a device name in the CN
if command -v scepclient >/dev/null; then
    mkdir -p "$T/micro"
    rc=0
    (cd "$T/micro" && timeout 120 scepclient -server-url "http://127.0.0.1:$PORT/scep-name-des" \
        -challenge "$CH_NAME" -cn "John's iPhone" -private-key "$T/micro/key.pem" \
        -certificate "$T/micro/cert.pem" >"$T/micro/out" 2>&1) || rc=$?
    if ((rc == 0)) && openssl verify -CAfile "$CA" "$T/micro/cert.pem" >/dev/null 2>&1; then
        pass "scepclient enrolls the device name"
    else
        fail "scepclient device name: exit $rc"
        tail -5 "$T/micro/out" | sed 's/^/       | /'
    fi
fi

# the certificates are listed under the keys
reg -L "$DB" >"$T/certs.txt" 2>&1
for key in "name:John's iPhone" "id:aa:bb:cc:dd:ee:ff" "user:alice@example.org" \
           "user:Dave@corp.example.org" "host1.example.org"; do
    if cut -f2 "$T/certs.txt" | grep -qxF -- "$key"; then
        pass "scepreg -L lists a certificate of '$key'"
    else
        fail "scepreg -L lacks '$key'"
    fi
done
reg -L -j "$DB" "user:alice@example.org" >"$T/certs.json" 2>&1
expect_file_contains "$T/certs.json" \
    '"kind":"user","fqdn":"user:alice@example.org","name":"alice@example.org"' \
    "scepreg -L -j: a user's certificates with kind, key and name"

httpd_stop
t_done

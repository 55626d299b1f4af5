#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Issue 15, point 3: a burst of wrong challenges for one name over many connections (and
# both httpd processes of the harness) judges at most ScepLockout's count of them; the
# others, and the right challenge once the name is locked, are refused as locked out.
# Point 5 beside it: the burst leaves one failure record, and a locked name's refusal
# tells the client nothing (point 7).
source "$(dirname "$0")/lib.sh"
t_init
require_module
SCEPREG=${SCEPREG:-$TOP/scepreg}
reg() { timeout 60 "$SCEPREG" "$@"; }

make_pki "$T/pki" Burst
RA=$T/pki/ra.pem
CA=$T/pki/ca.pem
DB=$T/db
CH=$(openssl rand -hex 12)
reg -c -b "$DB" '*.burst.example.net' "$CH" 2>/dev/null || die "scepreg: wildcard"
httpd_conf "$(scep_location /scep "$T/pki" ra "ScepDeviceDB $DB" "ScepLockout 5 900")"
httpd_start || t_done

BURST=40
RIGHT=20
make_key "$T/shared.key" 2048
for ((i = 1; i <= BURST; i++)); do
    cp "$T/shared.key" "$T/g$i.key"
    if ((i == RIGHT)); then
        challenge=$CH
    else
        challenge="guess-$i-$(openssl rand -hex 4)"
    fi
    probe_enrollment_request "g$i" "$RA" --challenge "$challenge" \
        --san-dns victim.burst.example.net --txid "burst-$i"
done
# all at once, each on its own connection
pids=()
for ((i = 1; i <= BURST; i++)); do
    curl -sS --max-time 60 -o "$T/g$i.rep" --data-binary "@$T/g$i.req" \
        "http://127.0.0.1:$PORT/scep?operation=PKIOperation" 2>/dev/null &
    pids+=($!)
done
wait "${pids[@]}"

judged=$(grep -cE 'SCEP00212: .*the challengePassword is wrong for \*\.burst\.example\.net' \
    "$ERROR_LOG" || true)
locked=$(grep -cE 'SCEP00212: .*victim\.burst\.example\.net is locked out until' "$ERROR_LOG" \
    || true)
issued=$(grep -cE 'SCEP00220: ' "$ERROR_LOG" || true)
expect_match "$judged" '^[1-5]$' "point3 at most 5 of $BURST concurrent guesses were judged ($judged)"
expect_eq "$((judged + locked + issued))" "$BURST" \
    "point3 every other request was refused as locked out ($locked) or issued ($issued)"
for ((i = 1; i <= BURST; i++)); do
    probe_reply "g$i" "$RA" || true
    if [[ $(field "g$i" pkiStatus) == 2 ]]; then
        expect_eq "$(field "g$i" failInfoText)" \
            "refused by the server's policy; the server's log has the reason" \
            "point7 refusal $i tells nothing of the lockout"
        break
    fi
done
# the right challenge, now that the name is locked
cp "$T/shared.key" "$T/late.key"
probe_enrollment_request late "$RA" --challenge "$CH" --san-dns victim.burst.example.net \
    --txid burst-late
send_request late /scep POST
expect_failure late "$RA" 2 "point3 the right challenge after the burst is refused" || true
expect_log 'SCEP00212: .*burst-late.*victim\.burst\.example\.net is locked out' \
    "point3 as locked out"
expect_match "$(reg -l "$DB" 2>/dev/null | grep -c . || true)" '^[0-9]+$' "scepreg still lists"
check_error_log '\[scep:warn\] .*SCEP00212: '
t_done

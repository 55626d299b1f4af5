#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A full device database: enrollments get HTTP 503 (the device retries later) with an
# ERR line naming the remedy, nothing committed so far is lost, the tool exits 8, and
# after the operator grows the map and reloads, enrollment works again.
source "$(dirname "$0")/lib.sh"
t_init
require_module
SCEPREG=${SCEPREG:-$TOP/scepreg}
reg() { timeout 60 "$SCEPREG" "$@"; }

make_pki "$T/pki" Full
RA=$T/pki/ra.pem
CA=$T/pki/ca.pem
DB=$T/db
CHAL=$(openssl rand -hex 12)
# a tiny map: a few certificates fill it
reg -c -m 96K -b "$DB" '*' "$CHAL" 2>/dev/null || die "scepreg could not create a 96K database"

httpd_conf "$(scep_location /scep "$T/pki" ra "ScepDeviceDB $DB")"
httpd_start || t_done

issued=0
full=""
for i in $(seq 60); do
    probe_enrollment_request "f$i" "$RA" --challenge "$CHAL" --san-dns "f$i.example.net"
    send_request "f$i" /scep POST
    if [[ "$HTTP_CODE" == 503 ]]; then
        full=$i
        break
    fi
    check_success "f$i" "$RA" "$CA" "enrollment $i" >/dev/null || break
    issued=$((issued + 1))
done
note "$issued enrollments fit in the 96K map"
if [[ -n "$full" ]]; then
    pass "a full database answers HTTP 503 (after $issued certificates)"
else
    fail "no 503 within 60 enrollments (last HTTP $HTTP_CODE)"
fi
expect_log '\[scep:error\] .*SCEP00230: .*the device database is full: raise ScepDeviceDBMapSize' \
    "the ERR line names the remedy"
expect_eq "$(reg -L "$DB" | tail -n +2 | grep -c .)" "$issued" \
    "every certificate issued before is still recorded"
# each certificate a device received is the one recorded for it, and the request that got
# 503 left nothing behind (no certificate was sent that is not recorded, none recorded
# that was not sent)
reg -L "$DB" | tail -n +2 | cut -f1,2 | sort >"$T/recorded.tsv"
for i in $(seq "$issued"); do
    printf '%s\tf%s.example.net\n' "$(openssl x509 -in "$T/f$i.pem" -noout -serial | cut -d= -f2)" "$i"
done | sort >"$T/received.tsv"
expect_eq "$(comm -3 "$T/received.tsv" "$T/recorded.tsv" | wc -l)" 0 \
    "the $issued certificates received are exactly the $issued recorded, device by device"
[[ -n "$full" ]] && expect_eq "$(grep -c "f$full.example.net" "$T/recorded.tsv" || true)" 0 \
    "the request answered 503 left no certificate"

rc=0
reg -b "$DB" more.example.net "$CHAL" 2>"$T/reg.err" || rc=$?
# the tool may still fit small device records; fill until it cannot (without challenges,
# which would cost a PBKDF2 each)
for i in $(seq 300); do
    ((rc != 0)) && break
    reg -n "$DB" "more$i.example.net" 2>"$T/reg.err" || rc=$?
done
expect_eq "$rc" 8 "scepreg exits 8 on a full database"
expect_file_contains "$T/reg.err" "-m" "scepreg says how to grow the map"

# the operator grows the map and reloads
reg -m 8M -l "$DB" >/dev/null 2>&1 || true
reg -m 8M -b "$DB" grown.example.net "$CHAL" 2>/dev/null || fail "scepreg -m 8M could not grow the map"
httpd_restart || t_done
probe_enrollment_request after "$RA" --challenge "$CHAL" --san-dns after.example.net
send_request after /scep POST
check_success after "$RA" "$CA" "after growing the map and a restart" || true
expect_eq "$(reg -V "$DB")" "$((issued + 1)) certificates, $((issued + 1)) transactions ($((issued + 1)) issued), $((issued + 1)) index entries: consistent" \
    "scepreg -V: consistent across the full condition"

check_error_log '\[scep:error\] .*SCEP00230: '
t_done

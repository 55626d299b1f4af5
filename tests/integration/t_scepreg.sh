#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scepreg, the registration tool, through its command line (httpd only at the end): every command
# and option, every exit status, CSV import (good, bad, -k, 50,000 rows), concurrent
# writers, interruption (nothing written), map growth and a full map, damaged databases,
# and file ownership when run as root.  At the end, with httpd: -D of a name that a
# wildcard covers says so, and -D -R revokes what would otherwise still renew.
source "$(dirname "$0")/lib.sh"
t_init
SCEPREG=${SCEPREG:-$TOP/scepreg}
[[ -x "$SCEPREG" ]] || die "scepreg not built: $SCEPREG"

# reg ARGS...: runs scepreg (stdin /dev/null) with stdout in $T/out, stderr in $T/err, and
# its exit status in RC.  reg_in INPUT ARGS...: the same with INPUT (plus a newline) on stdin.
reg() {
    RC=0
    timeout 60 "$SCEPREG" "$@" >"$T/out" 2>"$T/err" </dev/null || RC=$?
}
reg_in() {
    local input=$1
    shift
    RC=0
    timeout 60 "$SCEPREG" "$@" >"$T/out" 2>"$T/err" <<<"$input" || RC=$?
}
# expect_rc STATUS WHAT: the last run's status, with its stderr when it differs
expect_rc() {
    if [[ "$RC" == "$1" ]]; then
        pass "$2 (exit $1)"
    else
        fail "$2: exit $RC, expected $1"
        sed 's/^/       | /' "$T/err" | head -8
    fi
}
# count DB: devices listed (header excluded)
count() { timeout 120 "$SCEPREG" -l "$1" | tail -n +2 | wc -l; }
# field DB FQDN COLUMN: one column of a device's -l line (1 = fqdn ... 11 = comment)
field() { timeout 60 "$SCEPREG" -l "$1" "$2" | awk -F'\t' -v c="$3" 'NR == 2 { print $c }'; }
secret() { openssl rand -hex 16; }
# expect_absent SECRET WHAT FILE...: SECRET appears in none of the files
expect_absent() {
    local secret=$1 what=$2
    shift 2
    if grep -qF -- "$secret" "$@"; then fail "$what"; else pass "$what"; fi
}
# tsv FIELD...: the fields joined by tabs
tsv() { local IFS=$'\t'; echo "$*"; }

DB=$T/db
S1=$(secret)
S2=$(secret)

# ---- syntax (2) ------------------------------------------------------------------------
reg
expect_rc 2 "no arguments"
expect_file_contains "$T/err" "Usage" "a syntax error prints the usage"
reg -x "$DB" a.example.com
expect_rc 2 "unknown option"
reg -D -d "$DB" a.example.com
expect_rc 2 "two commands"
reg -i -g "$DB" a.example.com
expect_rc 2 "two challenge sources"
reg -j "$DB" a.example.com
expect_rc 2 "-j without -l/-L"
reg -l -s X "$DB"
expect_rc 2 "-s with -l"
reg -b "$DB" a.example.com
expect_rc 2 "-b without the challenge argument"
reg -n "$DB" a.example.com extra
expect_rc 2 "an extra argument"
reg -c -e 2030-02-30 -n "$DB" a.example.com
expect_rc 2 "-e with a date that does not exist"
reg -c -e tomorrow -n "$DB" a.example.com
expect_rc 2 "-e with a word"
reg -c -m 12Q -n "$DB" a.example.com
expect_rc 2 "-m with a malformed size"
reg -M -T 0 "$DB"
expect_rc 2 "-T 0"
reg -c -o no-such-user-here -n "$DB" a.example.com
expect_rc 2 "-o with an unknown user"
[[ ! -e "$DB" ]] && pass "syntax errors create nothing" || fail "a syntax error created $DB"

# ---- missing database (1) and -c ---------------------------------------------------------
reg -b "$DB" a.example.com "$S1"
expect_rc 1 "a missing database without -c"
expect_file_contains "$T/err" "does not exist (use -c to create it)" "the message points at -c"
reg -l "$DB"
expect_rc 1 "-l on a missing database"
reg -c -b "$T/no/such/parent" a.example.com "$S1"
expect_rc 0 "-c below missing folders creates them"
expect_eq "$(stat -c %a "$T/no/such")" 755 "missing parents are made searchable (0755) for httpd's User"
expect_eq "$(stat -c %a "$T/no/such/parent")" 700 "the database folder itself is private (0700)"
: >"$T/plainfile"
reg -c -b "$T/plainfile/db" a.example.com "$S1"
expect_rc 1 "-c below a file that is not a folder"
reg -c -b "$DB" a.example.com "$S1"
expect_rc 0 "-c creates the database and adds a device"
expect_eq "$(stat -c %a "$DB")" 700 "the new database folder has mode 0700"
[[ -s "$DB/data.mdb" ]] && pass "data.mdb exists" || fail "no data.mdb in $DB"
expect_file_contains "$T/err" "added device a.example.com" "scepreg says what it did"
[[ ! -s "$T/out" ]] && pass "nothing on stdout for -b" || fail "stdout not empty for -b"
expect_absent "$S1" "the challenge is not printed" "$T/err" "$T/out"
mkdir "$T/empty"
reg -l "$T/empty"
expect_rc 1 "-l on a folder without a database"

# ---- challenge sources ------------------------------------------------------------------
reg -v -b "$DB" a.example.com "$S1"
expect_rc 0 "-v with the right challenge"
reg -v -b "$DB" a.example.com "$S2"
expect_rc 3 "-v with a wrong challenge"
reg_in "$S1" -v -i "$DB" a.example.com
expect_rc 0 "-v -i with the right challenge"
reg -v -b "$DB" nobody.example.com "$S1"
expect_rc 6 "-v on an unknown device"
expect_file_contains "$T/err" "no device 'nobody.example.com' in $DB" "the unknown-device message"

reg_in "$S2" -i "$DB" b.example.com
expect_rc 0 "-i adds a device"
reg -v -b "$DB" b.example.com "$S2"
expect_rc 0 "the challenge read by -i verifies"
reg_in "" -i "$DB" empty.example.com
expect_rc 2 "-i with an empty challenge"

reg -g "$DB" g.example.com
expect_rc 0 "-g adds a device"
expect_eq "$(wc -l <"$T/out")" 1 "-g prints exactly one line"
G=$(cat "$T/out")
expect_match "$G" '^[0-9a-f]{32}$' "-g prints 32 hex characters"
reg -v -b "$DB" g.example.com "$G"
expect_rc 0 "the generated challenge verifies"

reg -n "$DB" n.example.com
expect_rc 0 "-n adds a device without a challenge"
expect_eq "$(field "$DB" n.example.com 4)" no "-l shows challenge 'no'"
reg -v -b "$DB" n.example.com "$S1"
expect_rc 3 "-v on a device without a challenge"

RC=0
timeout 20 setsid -w "$SCEPREG" "$DB" notty.example.com </dev/null >"$T/out" 2>"$T/err" || RC=$?
expect_rc 2 "a new device without a challenge option and no terminal"
expect_file_contains "$T/err" "no terminal (use -i, -g or -n)" "the message names the alternatives"
reg -b -- "$DB" dash.example.com "-$S1"
expect_rc 0 "-b with a challenge that starts with '-'"
reg -v -b "$DB" dash.example.com "-$S1"
expect_rc 0 "-v -b with a challenge that starts with '-'"
reg -v -b "$DB" a.example.com "$S2"
expect_eq "$(field "$DB" a.example.com 10)" - "a failed -v is not counted as a failure"

# the terminal prompt, through a pseudo-terminal (script from util-linux)
if command -v script >/dev/null; then
    RC=0
    { sleep 0.5; printf '%s\n' "$S1"; sleep 0.5; printf '%s\n' "$S1"; sleep 0.5; } \
        | timeout 20 script -qec "'$SCEPREG' '$DB' p.example.com" /dev/null >"$T/tty" 2>&1 \
        || RC=$?
    expect_rc 0 "the prompt: two equal entries"
    expect_file_contains "$T/tty" "Re-type new challenge" "the prompt asks twice"
    expect_absent "$S1" "the prompt does not echo" "$T/tty"
    reg -v -b "$DB" p.example.com "$S1"
    expect_rc 0 "the challenge typed at the prompt verifies"
    RC=0
    { sleep 0.5; printf '%s\n' "$S1"; sleep 0.5; printf '%s\n' "$S2"; sleep 0.5; } \
        | timeout 20 script -qec "'$SCEPREG' '$DB' q.example.com" /dev/null >"$T/tty" 2>&1 \
        || RC=$?
    expect_rc 3 "the prompt: two different entries"
    reg -l "$DB" q.example.com
    expect_rc 6 "nothing was added after a mismatch"
    RC=0
    { sleep 0.5; printf '%s\n' "$S2"; sleep 0.5; } \
        | timeout 20 script -qec "'$SCEPREG' -v '$DB' p.example.com" /dev/null >"$T/tty" 2>&1 \
        || RC=$?
    expect_rc 3 "-v at the prompt with a wrong challenge"
else
    note "script(1) is missing: prompt tests skipped"
fi

# ---- fields, updates, one-time, expiry --------------------------------------------------
reg -b -1 -a 192.0.2.1 -a 2001:DB8::1 -s SN-1 -e 2030-01-31 -p prof.a -t "first, comment" \
    "$DB" D.Example.COM. "$S1"
expect_rc 0 "add with every field"
reg -l "$DB" d.example.com
expect_eq "$(sed -n 2p "$T/out")" \
    "$(tsv d.example.com 192.0.2.1,2001:db8::1 SN-1 yes one-time 2030-01-31T23:59:59Z prof.a - - - \
        "first, comment")" \
    "-l shows the canonical name and every field"
expect_eq "$(head -1 "$T/out")" \
    "$(tsv fqdn ips serial challenge flags expires profile last_serial last_not_after lock comment)" \
    "-l header"
reg -s SN-2 "$DB" d.example.com
expect_rc 0 "update of the serial alone (no prompt: the device exists)"
expect_eq "$(field "$DB" d.example.com 3)" SN-2 "the serial changed"
expect_eq "$(field "$DB" d.example.com 2)" "192.0.2.1,2001:db8::1" "the addresses stayed"
expect_eq "$(field "$DB" d.example.com 5)" one-time "the one-time flag stayed"
expect_eq "$(field "$DB" d.example.com 7)" prof.a "the profile stayed"
expect_eq "$(field "$DB" d.example.com 11)" "first, comment" "the comment stayed"
reg -v -b "$DB" d.example.com "$S1"
expect_rc 0 "the challenge stayed"
reg -a 198.51.100.7 "$DB" d.example.com
expect_eq "$(field "$DB" d.example.com 2)" 198.51.100.7 "-a replaces the address list"
reg -A -s "" -p "" -t "" "$DB" d.example.com
reg -l "$DB" d.example.com
expect_eq "$(awk -F'\t' 'NR == 2 { print $2 "/" $3 "/" $7 "/" $11 }' "$T/out")" "-/-/-/" \
    "-A and empty -s/-p/-t clear those fields"
reg -b "$DB" d.example.com "$S2"
reg -v -b "$DB" d.example.com "$S2"
expect_rc 0 "a new challenge replaces the old one"

for e in "2031-06-01T12:30:00Z=2031-06-01T12:30:00Z" "never=never" "2029-02-28=2029-02-28T23:59:59Z"; do
    reg -e "${e%%=*}" "$DB" d.example.com
    expect_eq "$(field "$DB" d.example.com 6)" "${e#*=}" "-e ${e%%=*}"
done
for rel in +30d:2592000 +12h:43200 +90m:5400; do
    before=$(date -u +%s)
    reg -e "${rel%%:*}" "$DB" d.example.com
    got=$(date -u -d "$(field "$DB" d.example.com 6)" +%s)
    diff=$((got - before - ${rel#*:}))
    if ((diff >= -1 && diff <= 5)); then
        pass "-e ${rel%%:*} is that far from now"
    else
        fail "-e ${rel%%:*}: expires $got, now $before (off by $diff s)"
    fi
done

reg -l -j "$DB" d.example.com
if python3 -c 'import json,sys
d = json.loads(sys.stdin.readline())
assert d["fqdn"] == "d.example.com" and d["one_time"] is True and d["challenge"] == "yes"' \
    <"$T/out" 2>/dev/null; then
    pass "-l -j prints a JSON object per device"
else
    fail "-l -j output is not the expected JSON: $(head -c 300 "$T/out")"
fi
reg -t 'say "hi"\back' "$DB" d.example.com
reg -l -j "$DB"
if python3 -c 'import json,sys
rows=[json.loads(l) for l in sys.stdin]
assert any(r["comment"]=="say \"hi\"\\back" for r in rows)' <"$T/out" 2>/dev/null; then
    pass "-l -j escapes quotes and backslashes"
else
    fail "-l -j escaping: $(grep -F d.example.com "$T/out" | head -c 300)"
fi

# ---- too long (5) and illegal (6) --------------------------------------------------------
long_label=$(printf 'a%.0s' {1..60})
long_name="$long_label.$long_label.$long_label.$long_label.example.com"   # 256 characters
reg -n "$DB" "$long_name"
expect_rc 5 "an FQDN longer than 253 characters"
reg -n -s "$(printf 'S%.0s' {1..65})" "$DB" d.example.com
expect_rc 5 "a serial of 65 characters"
reg -n -p "$(printf 'p%.0s' {1..65})" "$DB" d.example.com
expect_rc 5 "a profile of 65 characters"
reg -n -t "$(printf 'c%.0s' {1..256})" "$DB" d.example.com
expect_rc 5 "a comment of 256 characters"
reg_in "$(printf 'x%.0s' {1..16385})" -i "$DB" long.example.com
expect_rc 5 "a challenge of 16385 characters from stdin"
reg -b "$DB" long.example.com "$(printf 'x%.0s' {1..16385})"
expect_rc 5 "a challenge of 16385 characters on the command line"
reg_in "$(printf 'x%.0s' {1..16384})" -i "$DB" long.example.com
expect_rc 0 "a challenge of 16384 characters"
reg -n "$DB" "bad_name!.example.com"
expect_rc 6 "an illegal FQDN"
reg -n "$DB" "a.*.example.com"
expect_rc 6 "a wildcard in the middle"
reg -n -a 999.1.2.3 "$DB" ip.example.com
expect_rc 6 "an illegal IP address"
reg -n -p "bad profile" "$DB" d.example.com
expect_rc 6 "an illegal profile name"
reg -n -t "$(printf 'tab\there')" "$DB" d.example.com
expect_rc 6 "a comment with a control character"
reg -l "$DB" ip.example.com
expect_rc 6 "nothing was stored for rejected values"

# ---- wildcards --------------------------------------------------------------------------
reg -b "$DB" '*.Lab.Example.com' "$S1"
expect_rc 0 "add a wildcard registration"
reg -v -b "$DB" host7.lab.example.com "$S1"
expect_rc 0 "-v of a name under the wildcard"
expect_file_contains "$T/err" "registration '*.lab.example.com'" "-v names the wildcard it used"
reg -v -b "$DB" host7.lab.example.com "$S2"
expect_rc 3 "-v of a name under the wildcard, wrong challenge"
reg -v -b "$DB" lab.example.com "$S1"
expect_rc 6 "the wildcard does not cover its own suffix"
reg -b "$DB" x.lab.example.com "$S2"
reg -v -b "$DB" x.lab.example.com "$S2"
expect_rc 0 "an exact registration wins over the wildcard"
reg -l "$DB" '*.lab.example.com'
expect_eq "$(tail -n +2 "$T/out" | cut -f1 | tr '\n' ' ')" "*.lab.example.com x.lab.example.com " \
    "-l with a pattern lists what it covers"
reg -l "$DB" '*.nowhere.example'
expect_rc 0 "-l with a pattern that matches nothing"
expect_eq "$(wc -l <"$T/out")" 1 "only the header for a pattern without matches"

# ---- delete, disable, enable, unlock (and 6 for unknown devices) -------------------------
reg -d "$DB" b.example.com
expect_rc 0 "-d"
expect_eq "$(field "$DB" b.example.com 5)" disabled "-l shows disabled"
reg -d "$DB" d.example.com
expect_eq "$(field "$DB" d.example.com 5)" "one-time,disabled" "-l shows one-time,disabled"
reg -E "$DB" b.example.com
expect_rc 0 "-E"
expect_eq "$(field "$DB" b.example.com 5)" - "-l shows no flags after -E"
reg -U "$DB" b.example.com
expect_rc 0 "-U of a name that is not locked"
reg -U "$DB" host9.lab.example.com
expect_rc 0 "-U of a name under a wildcard"
reg -D "$DB" b.example.com
expect_rc 0 "-D"
reg -l "$DB" b.example.com
expect_rc 6 "the deleted device is gone"
for op in -D -d -E -U; do
    reg "$op" "$DB" unknown.example.com
    expect_rc 6 "$op on an unknown device"
done
expect_file_contains "$T/err" "no device 'unknown.example.com' in $DB" "the message names device and database"

# ---- certificates and minted challenges --------------------------------------------------
reg -L "$DB"
expect_rc 0 "-L"
expect_eq "$(cat "$T/out")" \
    "$(printf 'serial\tfqdn\tsubject\tnot_before\tnot_after\tissued_at\ttransaction_id\trevoked\treason')" \
    "-L prints its header (no certificates yet)"
reg -L -j "$DB" a.example.com
expect_rc 0 "-L -j for one FQDN"
expect_eq "$(wc -c <"$T/out")" 0 "-L -j prints nothing without certificates"
# revocation itself is tested with real certificates in t_renewal.sh
reg -R "$DB"
expect_rc 2 "-R without a serial or FQDN"
reg -R -r onHold "$DB" 0A1B
expect_rc 2 "-R with an unknown reason"
reg -R -r certificateHold "$DB" 0A1B
expect_rc 2 "-R with certificateHold (no unrevoke, so no holds)"
reg -r keyCompromise -l "$DB"
expect_rc 2 "-r without -R"
reg -R "$DB" 0a:1b
expect_rc 6 "-R on a serial that is not recorded"
expect_file_contains "$T/err" "no certificate with serial 0A1B" "-R reads 0a:1b as the serial 0A1B"
reg -R -r superseded "$DB" a.example.com
expect_rc 6 "-R on a device without certificates"
reg -R "$DB" 'bad name!'
expect_rc 6 "-R on something neither serial nor FQDN"
# approval: the flag, and the held-request commands (their flow is in t_pending.sh)
reg -n -W on "$DB" appr.example.com
expect_rc 0 "-W on"
expect_eq "$(field "$DB" appr.example.com 5)" approval "-l shows the approval flag"
expect_match "$(timeout 60 "$SCEPREG" -l -j "$DB" appr.example.com)" '"approval":true' "-l -j shows it too"
reg -W off "$DB" appr.example.com
expect_rc 0 "-W off"
expect_eq "$(field "$DB" appr.example.com 5)" - "-W off clears the flag"
reg -W maybe "$DB" appr.example.com
expect_rc 2 "-W with neither on nor off"
reg -W on -l "$DB"
expect_rc 2 "-W with -l"
reg -P "$DB"
expect_rc 0 "-P"
expect_eq "$(cat "$T/out")" \
    "$(printf 'transaction_id\tstate\tfqdn\tsubject\tclient\tcreated\tdecided_at\tdecided_by\treason')" \
    "-P prints its header (nothing held)"
reg -Y "$DB"
expect_rc 2 "-Y without a transactionID"
reg -Y "$DB" no-such-transaction
expect_rc 6 "-Y on an unknown transactionID"
reg -N -t "no" "$DB" appr.example.com
expect_rc 6 "-N on a device with nothing pending"
reg -Y -t "why" "$DB" appr.example.com
expect_rc 2 "-t with -Y"
reg -M "$DB"
expect_rc 0 "-M"
expect_match "$(cat "$T/out")" '^[0-9a-f]{32}$' "-M prints 32 hex characters, alone"
M1=$(cat "$T/out")
reg -M -T 15m -p prof.a "$DB" Minted.Example.com
expect_rc 0 "-M -T 15m -p with an FQDN"
expect_match "$(cat "$T/out")" '^[0-9a-f]{32}$' "-M with an FQDN prints a challenge"
expect_absent "$M1" "two minted challenges differ" "$T/out"
reg -M "$DB" "bad_name!"
expect_rc 6 "-M with an illegal FQDN"
reg -M "$DB" "*.example.com"
expect_rc 6 "-M with a wildcard (a minted challenge binds one name)"

# ---- CSV import -------------------------------------------------------------------------
before=$(count "$DB")
C1=$(secret)
C2=$(secret)
BADCHAL=$(secret)
cat >"$T/good.csv" <<EOF
fqdn,ips,serial,challenge,flags,expires,profile,comment
# a comment line, then a blank one

imp1.example.com,192.0.2.11,SN11,$C1,one-time,2030-12-31,prof.a,"rack 1, ""east"""
imp2.example.com,192.0.2.12;192.0.2.13 2001:db8::12,,$C2,disabled;one-time,+30d,,plain
imp3.example.com,,,,,,,no challenge
  imp4.example.com , 192.0.2.14 ,SN14,"$C1",,never,,
EOF
cp "$T/good.csv" "$T/bad.csv"
printf 'imp5.example.com,10.0.0.300,,%s,,,,\n' "$BADCHAL" >>"$T/bad.csv"    # line 8
printf 'imp6.example.com,,,%s,sometimes,,,\n' "$BADCHAL" >>"$T/bad.csv"     # line 9
printf 'imp1.example.com,,,%s,,,,\n' "$BADCHAL" >>"$T/bad.csv"              # line 10
reg -I "$T/bad.csv" "$DB"
expect_rc 2 "an import with rejected rows"
expect_file_contains "$T/err" "bad.csv:8: illegal IP address '10.0.0.300'" \
    "a bad address is reported with its line"
expect_file_contains "$T/err" "bad.csv:9: unknown flag 'sometimes'" "a bad flag is reported with its line"
expect_file_contains "$T/err" "bad.csv:10: imp1.example.com is already on line 4" "a duplicate is reported"
expect_file_contains "$T/err" "nothing imported" "the summary says nothing was imported"
expect_absent "$BADCHAL" "rejected rows' challenges are not printed" "$T/err"
expect_eq "$(count "$DB")" "$before" "nothing was imported"
reg -k -I "$T/bad.csv" "$DB"
expect_rc 0 "-k imports the valid rows"
expect_file_contains "$T/err" "imported 4 devices (4 new, 0 updated), 3 rejected" "the -k summary"
expect_eq "$(count "$DB")" "$((before + 4))" "four devices were added"
reg -l "$DB" imp1.example.com
expect_eq "$(sed -n 2p "$T/out")" \
    "$(tsv imp1.example.com 192.0.2.11 SN11 yes one-time 2030-12-31T23:59:59Z prof.a - - - \
        'rack 1, "east"')" \
    "a quoted comment with commas and quotes"
expect_eq "$(field "$DB" imp2.example.com 2)" "192.0.2.12,192.0.2.13,2001:db8::12" \
    "addresses split on ';' and spaces"
expect_eq "$(field "$DB" imp2.example.com 5)" "one-time,disabled" "flags split on ';'"
expect_eq "$(field "$DB" imp3.example.com 4)" no "an empty challenge is no challenge"
expect_eq "$(field "$DB" imp4.example.com 3)" SN14 "blanks around unquoted fields are dropped"
reg -v -b "$DB" imp1.example.com "$C1"
expect_rc 0 "an imported challenge verifies"
reg -v -b "$DB" imp4.example.com "$C1"
expect_rc 0 "a quoted imported challenge verifies"
# an import replaces existing registrations; stdin works
reg_in "imp3.example.com,,,$C2,,,,now with one" -I - "$DB"
expect_rc 0 "an import from stdin"
expect_file_contains "$T/err" "imported 1 devices (0 new, 1 updated), 0 rejected" "the update is counted"
reg -v -b "$DB" imp3.example.com "$C2"
expect_rc 0 "the imported update set the challenge"
reg -I "$T/no-such.csv" "$DB"
expect_rc 2 "an import file that does not exist"
reg -I "$T/good.csv" "$T/db-none"
expect_rc 1 "an import into a missing database"
printf 'x.example.com,,,,,,,,"nine"\n' >"$T/nine.csv"
printf 'x.example.com,"unterminated\n' >"$T/quote.csv"
for f in nine quote; do
    reg -I "$T/$f.csv" "$DB"
    expect_rc 2 "an import with a malformed row ($f)"
done

# ---- 50,000 rows -----------------------------------------------------------------------
BIG=$T/big
timeout 60 openssl rand -hex 800000 | fold -w 32 \
    | awk '{ printf "dev%05d.example.com,10.%d.%d.%d,SN%d,%s,,,,row %d\n", NR,
               int(NR / 65536) % 256, int(NR / 256) % 256, NR % 256, NR, $0, NR }' \
    >"$T/big.csv"
expect_eq "$(wc -l <"$T/big.csv")" 50000 "50,000 rows generated"
start=$(date +%s%N)
RC=0
timeout 300 "$SCEPREG" -c -I "$T/big.csv" "$BIG" >"$T/out" 2>"$T/err" || RC=$?
ms=$((($(date +%s%N) - start) / 1000000))
expect_rc 0 "an import of 50,000 rows"
note "50,000 rows with challenges imported in $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s" \
    "($((50000000 / (ms > 0 ? ms : 1))) rows/s)"
expect_file_contains "$T/err" "imported 50000 devices (50000 new, 0 updated), 0 rejected" "the big summary"
expect_eq "$(timeout 120 "$SCEPREG" -l "$BIG" | wc -l)" 50001 "-l shows 50,000 devices and the header"
reg -v -b "$BIG" dev31337.example.com "$(sed -n 31337p "$T/big.csv" | cut -d, -f4)"
expect_rc 0 "a challenge from the big import verifies"

# ---- interruption: nothing is written ---------------------------------------------------
before=$(count "$BIG")
for sig in TERM INT; do
    rm -f "$T/fifo"
    mkfifo "$T/fifo"
    exec 7<>"$T/fifo"                       # held open: the tool blocks reading
    # -k: the tool handles SIGTERM itself, so only SIGKILL bounds a tool that hangs.
    # --foreground: the signal below reaches the tool alone.  Without it, timeout sends
    # it on to its whole process group and follows with SIGCONT; under the sanitizers
    # that SIGCONT can cancel the SIGSTOP of LeakSanitizer's exit-time ptrace attach,
    # and the tool then waits for its tracer forever (seen in CI; docs/security.md).
    timeout --foreground -k 10 60 "$SCEPREG" -I - "$BIG" <"$T/fifo" >"$T/out" 2>"$T/err" &
    pid=$!
    printf 'new%d.example.com,,,,,,,\n' {1..100} >&7
    sleep 1
    kill -"$sig" "$pid"
    RC=0
    wait "$pid" || RC=$?
    exec 7>&-
    expect_rc 4 "SIG$sig while the import reads"
    expect_file_contains "$T/err" "interrupted; the database is unchanged" "the SIG$sig message"
done
expect_eq "$(count "$BIG")" "$before" "the interrupted imports wrote nothing"
# a signal while the verifiers of 50,000 rows are computed
sed 's/^dev/re/' "$T/big.csv" >"$T/big2.csv"
timeout --foreground -k 10 300 "$SCEPREG" -I "$T/big2.csv" "$BIG" >"$T/out" 2>"$T/err" &
pid=$!
sleep 1
kill -TERM "$pid"
RC=0
wait "$pid" || RC=$?
expect_rc 4 "SIGTERM during the verifiers of a big import"
expect_eq "$(count "$BIG")" "$before" "nothing was written"
rm -f "$T/big2.csv" "$T/fifo"
rm -rf "$BIG"

# ---- concurrent writers -----------------------------------------------------------------
CDB=$T/conc
reg -c -n "$CDB" seed.example.com
writer() {
    local w=$1 i
    for i in $(seq 1 50); do
        timeout 60 "$SCEPREG" -b "$CDB" "w$w-$i.example.com" "$(openssl rand -hex 8)" 2>/dev/null \
            || { echo "writer $w: $i failed" >>"$T/conc.err"; }
    done
}
writer 1 &
p1=$!
writer 2 &
p2=$!
wait "$p1" "$p2"
[[ ! -s "$T/conc.err" ]] && pass "two concurrent writers: every add succeeded" \
    || fail "concurrent writers: $(cat "$T/conc.err")"
expect_eq "$(count "$CDB")" 101 "both writers' 100 devices (and the seed) are there"

# ---- map size: full (8) and growth ------------------------------------------------------
SDB=$T/small
awk 'NR <= 3000 { printf "n%05d.example.com,,,,,,,\n", NR }' "$T/big.csv" >"$T/nochal.csv"
reg -c -m 128K -n "$SDB" a.example.com
expect_rc 0 "a database with a 128K map"
reg -I "$T/nochal.csv" "$SDB"
expect_rc 8 "an import that does not fit"
expect_file_contains "$T/err" "raise its map size with -m" "the full message says what to do"
expect_eq "$(count "$SDB")" 1 "the failed import wrote nothing"
reg -m 4M -I "$T/nochal.csv" "$SDB"
expect_rc 0 "the same import with -m 4M grows the map"
expect_eq "$(count "$SDB")" 3001 "all rows are there after growing"

# ---- damaged databases (7) --------------------------------------------------------------
cp -r "$CDB" "$T/bad"
dd if=/dev/urandom of="$T/bad/data.mdb" bs=4096 count=2 conv=notrunc status=none
reg -l "$T/bad"
expect_rc 7 "garbage in the header pages of data.mdb"
reg -n "$T/bad" x.example.com
expect_rc 7 "writing to a damaged database"
if command -v mdb_load >/dev/null; then
    rm -rf "$T/newer"
    cp -r "$CDB" "$T/newer"
    # the key "schema" with the big-endian version 99
    printf '%s\n' VERSION=3 format=bytevalue database=meta type=btree HEADER=END \
        ' 736368656d61' ' 00000063' DATA=END \
        | timeout 30 mdb_load -s meta "$T/newer"
    reg -l "$T/newer"
    expect_rc 7 "a database with a newer schema version"
    expect_file_contains "$T/err" "newer mod_scep" "the newer-schema message"
else
    note "mdb_load (lmdb-utils) is missing: newer-schema test skipped"
fi

# ---- ownership (as root) ----------------------------------------------------------------
if [[ $(id -u) == 0 ]]; then
    mkdir -m 700 "$T/owned"
    chown nobody:nogroup "$T/owned"
    reg -c -n "$T/owned" a.example.com
    expect_rc 0 "root adds to a folder that belongs to nobody"
    expect_eq "$(stat -c %U "$T/owned/data.mdb") $(stat -c %U "$T/owned/lock.mdb")" "nobody nobody" \
        "the files root created are handed to the folder's owner"
    reg -c -o nobody -n "$T/byo" a.example.com
    expect_rc 0 "-c -o nobody"
    expect_eq "$(stat -c %U "$T/byo") $(stat -c %U "$T/byo/data.mdb") $(stat -c %U "$T/byo/lock.mdb")" \
        "nobody nobody nobody" "-o hands folder and files to the user"
else
    reg -c -o nobody -n "$T/byo" a.example.com
    expect_rc 2 "-o needs root"
fi

rm -f "$T/big.csv" "$T/nochal.csv" "$T/good.csv" "$T/bad.csv"

# ---- issue 15, point 13: -D of a name that a wildcard covers ------------------------------
# The only part of this test with httpd: what -D says must hold for a real renewal.
require_module
require_probe
field() { sed -n "s/^$2=//p" "$T/$1.out" | head -1; }   # lib.sh's again, for the probe
make_pki "$T/pki13" Wild
RA13=$T/pki13/ra.pem
CA13=$T/pki13/ca.pem
WDB=$T/wild
reg -c -b "$WDB" '*.fleet.example.net' "$(secret)"
expect_rc 0 "point13: a wildcard registration"
CHW1=$(secret)
CHW2=$(secret)
reg -b "$WDB" w1.fleet.example.net "$CHW1" && reg -b "$WDB" w2.fleet.example.net "$CHW2"
expect_rc 0 "point13: two names under it, each with its own challenge"
httpd_conf "$(scep_location /scep "$T/pki13" ra "ScepDeviceDB $WDB")"
httpd_start || t_done
renew13() {   # renew13 NAME OLD FQDN: a RenewalReq signed with OLD's certificate and key
    cp "$T/$2.key" "$T/$1.key"
    cp "$T/$2.pem" "$T/$1.selfsigned.pem"
    probe_request "$1" "$RA13" --cert "$T/$1.selfsigned.pem" --msgtype 17 --no-challenge \
        --san-dns "$3"
    send_request "$1" /scep POST
}
for n in 1 2; do
    chal_var=CHW$n
    probe_enrollment_request "w$n" "$RA13" --challenge "${!chal_var}" --san-dns "w$n.fleet.example.net"
    send_request "w$n" /scep POST
    check_success "w$n" "$RA13" "$CA13" "point13: w$n enrolls with its own challenge" \
        || die "w$n has no certificate"
done

reg -D "$WDB" w1.fleet.example.net
expect_rc 0 "point13: -D of a name a wildcard covers"
expect_file_contains "$T/err" "'*.fleet.example.net' still covers w1.fleet.example.net" \
    "point13: -D names the wildcard that still covers the name"
expect_file_contains "$T/err" "its 1 unrevoked certificate stays valid and renewable" \
    "point13: -D says the certificates stay valid and renewable"
expect_file_contains "$T/err" "-D -R" "point13: -D tells how to revoke them as well"
renew13 w1r w1 w1.fleet.example.net
check_success w1r "$RA13" "$CA13" "point13: as the note says, w1 still renews through the wildcard" || true

reg -D -R -r keyCompromise "$WDB" w2.fleet.example.net
expect_rc 0 "point13: -D -R deletes and revokes in one command"
expect_file_contains "$T/err" "revoked 1 certificate of w2.fleet.example.net (keyCompromise); 0 already revoked" \
    "point13: -D -R reports the revocation as -R does"
expect_file_contains "$T/err" "'*.fleet.example.net' still covers w2.fleet.example.net" \
    "point13: -D -R still names the covering wildcard"
reg -l "$WDB" w2.fleet.example.net
expect_rc 6 "point13: the registration is gone"
expect_match "$(timeout 60 "$SCEPREG" -L "$WDB" w2.fleet.example.net | tail -n +2)" \
    $'\t20[0-9-]+T[0-9:]+Z\tkeyCompromise$' "point13: its certificate is listed as revoked"
renew13 w2r w2 w2.fleet.example.net
expect_failure w2r "$RA13" 2 "point13: after -D -R the renewal through the wildcard is refused" || true
expect_log "SCEP00217: .*$(openssl x509 -in "$T/w2.pem" -noout -serial | sed 's/^serial=//') of w2.fleet.example.net was revoked" \
    "point13: the refusal names the revoked certificate"

reg -R -D "$WDB" w1.fleet.example.net
expect_rc 6 "point13: -R -D of a name already deleted: no such device, nothing revoked"
expect_eq "$(timeout 60 "$SCEPREG" -L "$WDB" w1.fleet.example.net | tail -n +2 | grep -c $'\tno\t')" 2 \
    "point13: ... and w1's two certificates stay unrevoked"
reg -D -r superseded "$WDB" w1.fleet.example.net
expect_rc 2 "point13: -D -r without -R"
reg -b "$WDB" solo.example.org "$(secret)"
reg -D "$WDB" solo.example.org
expect_rc 0 "point13: -D of a name no wildcard covers"
if grep -q "still covers" "$T/err"; then
    fail "point13: -D adds the wildcard note where no wildcard covers the name"
else
    pass "point13: no wildcard note where no wildcard covers the name"
fi
# the same for a wildcard: a broader one takes over the names it covered
reg -b "$WDB" '*' "$(secret)"
reg -D "$WDB" '*.fleet.example.net'
expect_rc 0 "point13: -D of a wildcard that a broader one covers"
expect_file_contains "$T/err" "'*' now covers the names '*.fleet.example.net' covered: 2 unrevoked certificates" \
    "point13: -D of a wildcard names the broader one and the certificates it keeps renewable"
renew13 w1s w1r w1.fleet.example.net
check_success w1s "$RA13" "$CA13" "point13: as the note says, w1 renews through '*'" || true
reg -D -R "$WDB" '*'
expect_rc 0 "point13: -D -R of the last wildcard"
expect_file_contains "$T/err" "certificates are kept under the name they were issued to" \
    "point13: -D -R of a wildcard says that certificates are revoked by name"
renew13 w1t w1s w1.fleet.example.net
expect_failure w1t "$RA13" 2 "point13: with no wildcard left, w1's renewal is refused" || true

# issue 17, point 1: the other identity kinds through the commands that name a key
KDB=$T/kinds
reg -c -b "$KDB" 'user:*' "$(secret)"
expect_rc 0 "kinds: add user:*"
reg -b "$KDB" 'user:*@Example.ORG' "$(secret)"
expect_rc 0 "kinds: add user:*@Example.ORG"
expect_file_contains "$T/err" "user:*@example.org" "kinds: the domain is stored lower-cased"
reg -d "$KDB" 'user:*@EXAMPLE.org'
expect_rc 0 "kinds: -d by another spelling of the domain"
reg -E "$KDB" 'user:*@example.org'
expect_rc 0 "kinds: -E"
reg -M "$KDB" 'user:*@example.org'
expect_rc 6 "kinds: -M refuses a user wildcard"
reg -M "$KDB" 'user:bob@example.org'
expect_rc 0 "kinds: -M binds a challenge to a user"
reg -b "$KDB" 'id:aabb.ccdd.eeff' "$(secret)"
expect_rc 0 "kinds: add a device id"
reg -U "$KDB" 'id:AA-BB-CC-DD-EE-FF'
expect_rc 0 "kinds: -U takes the device id in another MAC spelling"
reg -b "$KDB" 'name:' "$(secret)"
expect_rc 6 "kinds: an empty device name"
reg -D "$KDB" 'user:*@example.org'
expect_rc 0 "kinds: -D of a user domain wildcard"
expect_file_contains "$T/err" "'user:*' now covers the names 'user:*@example.org' covered" \
    "kinds: -D names user:* as the wildcard that takes over"
expect_eq "$(count "$KDB")" 2 "kinds: user:* and the device id left"
# review F6: "fqdn" is the whole key, so that a script passing it back names the same
# registration; "kind" and "name" say what it is
reg -b "$KDB" 'name:*' "$(secret)"
reg -b "$KDB" '*' "$(secret)"
reg -l -j "$KDB"
if python3 -c 'import json, sys
rows = {r["fqdn"]: r for r in map(json.loads, sys.stdin)}
want = {"name:*": ("device-name", "*"), "*": ("host", "*"),
        "user:*": ("user", "*"), "id:aa:bb:cc:dd:ee:ff": ("device-id", "aa:bb:cc:dd:ee:ff")}
assert {k: (r["kind"], r["name"]) for k, r in rows.items()} == want, rows' \
    <"$T/out" >"$T/json.err" 2>&1; then
    pass "kinds: -l -j gives each key whole in fqdn, with its kind and name"
else
    fail "kinds: -l -j keys: $(cat "$T/json.err" "$T/out" | head -c 600)"
fi
fqdn_back=$(python3 -c 'import json, sys
print([r for r in map(json.loads, sys.stdin) if r["kind"] == "device-name"][0]["fqdn"])' \
    <"$T/out")
reg -d "$KDB" "$fqdn_back"
expect_rc 0 "kinds: -d with the fqdn that -l -j printed for name:*"
reg -l -j "$KDB" '*'
expect_file_contains "$T/out" '"disabled":false' "kinds: the host wildcard '*' was left enabled"
reg -l -j "$KDB" 'name:*'
expect_file_contains "$T/out" '"disabled":true' "kinds: name:* is the one disabled"
check_error_log '\[scep:warn\] .*SCEP00217: ' '\[scep:warn\] .*SCEP00212: '
t_done

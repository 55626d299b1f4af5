# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# What enroll-bench.sh and fleet-bench.sh measure alike, sourced after
# tests/integration/lib.sh has started httpd ($HTTPD_PID).

# user and system ticks of every httpd process, the parent and its children: "USER SYSTEM"
httpd_cpu_ticks() {
    local pid user=0 sys=0 f
    for pid in "$HTTPD_PID" $(pgrep -P "$HTTPD_PID"); do
        f=$(cut -d' ' -f14,15 "/proc/$pid/stat" 2>/dev/null) || continue
        user=$((user + ${f% *}))
        sys=$((sys + ${f#* }))
    done
    echo "$user $sys"
}

# the crypto floor in ms of one enrollment with RSA-BITS keys, from `openssl speed`:
# "FLOOR SIGNS VERIFIES"
crypto_floor() {
    local bits=$1 speed
    speed=$(openssl speed -seconds 3 "rsa$bits" 2>/dev/null | awk -v b="$bits" '$1 == "rsa" && $2 == b { print $6, $7 }')
    awk -v s="${speed% *}" -v v="${speed#* }" 'BEGIN { printf "%.3f %s %s", 3 * 1000 / s + 2 * 1000 / v, s, v }'
}

# Prints the floor measured now and remembers it: the run's figures are set against the
# mean of the floor before and after, since this VM's speed moves by 15 % and more
# between minutes.
floor_before() {
    local sign verify
    read -r FLOOR_BEFORE sign verify <<<"$(crypto_floor "$1")"
    echo "crypto floor:    $FLOOR_BEFORE ms before the run (RSA-$1: $sign signs/s, $verify verifies/s; 3 private + 2 public operations)"
}

# floor_after BITS TICKS_BEFORE TICKS_AFTER ENROLLMENTS: the floor again, then the
# server's CPU per enrollment and its ratio to the mean floor
floor_after() {
    local floor_after sign verify floor_ms hz before=$2 after=$3
    read -r floor_after sign verify <<<"$(crypto_floor "$1")"
    floor_ms=$(awk -v a="$FLOOR_BEFORE" -v b="$floor_after" 'BEGIN { printf "%.3f", (a + b) / 2 }')
    echo "crypto floor:    $floor_after ms after the run; mean $floor_ms ms$(awk -v a="$FLOOR_BEFORE" -v b="$floor_after" 'BEGIN { d = (a > b ? a - b : b - a) / (a < b ? a : b); if (d > 0.1) printf " (it moved %.0f %%: a noisy machine, run again)", d * 100 }')"
    hz=$(getconf CLK_TCK)
    awk -v u=$(( ${after% *} - ${before% *} )) -v s=$(( ${after#* } - ${before#* } )) \
        -v hz="$hz" -v n="$4" -v f="$floor_ms" 'BEGIN {
        n = n ? n : 1
        ms = (u + s) * 1000 / hz / n
        printf "server CPU:      %.3f ms per enrollment (user %.3f, system %.3f; %d enrollments), %.2f x the crypto floor\n", ms, u * 1000 / hz / n, s * 1000 / hz / n, n, ms / f
    }'
}

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs every tests/integration/t_*.sh, each in its own bash process and bounded in time,
# prints each result, and ends with "N passed, N failed".  Exit status 1 if any failed.
#
#   tests/integration/run.sh [t_name ...]     (default: all)
# Environment: see lib.sh (TOP, MOD_SCEP, SCEP_PROBE, KEEP, VERBOSE);
# TEST_TIMEOUT bounds each test (default 600 s).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
timeout_s=${TEST_TIMEOUT:-600}
passed=0
failed=0
failed_names=()

if (($#)); then
    tests=()
    for name in "$@"; do
        name=${name%.sh}
        tests+=("$here/${name##*/}.sh")
    done
else
    tests=("$here"/t_*.sh)
fi

for t in "${tests[@]}"; do
    name=$(basename "$t" .sh)
    if [[ ! -f "$t" ]]; then
        echo "FAIL $name (no such test)"
        failed=$((failed + 1))
        failed_names+=("$name")
        continue
    fi
    start=$SECONDS
    timeout --kill-after=10 "$timeout_s" bash "$t"
    rc=$?
    secs=$((SECONDS - start))
    if ((rc == 0)); then
        echo "PASS $name (${secs}s)"
        passed=$((passed + 1))
    else
        ((rc == 124 || rc == 137)) && echo "  (timed out after ${timeout_s}s)"
        echo "FAIL $name (exit $rc, ${secs}s)"
        failed=$((failed + 1))
        failed_names+=("$name")
    fi
    echo
done

((failed)) && echo "failed: ${failed_names[*]}"
echo "$passed passed, $failed failed"
((failed == 0))

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/static-analysis.sh: clang-tidy (with the checked-in .clang-tidy) and cppcheck
# (with tests/static/cppcheck-suppressions.txt) over the module, the core, the tools and
# the test programs.  Any finding fails.  tests/check.sh runs it; docs/security.md says
# what is checked.
#
# Run it from a configured tree: the sources are copied with make distdir into a scratch
# folder and built there under bear, which records the compile commands both tools read,
# so the tree's own build is left as it is.
# Environment: STATIC_TIMEOUT bounds the whole run (default 900 s); KEEP=1 keeps the
# scratch folder.
set -euo pipefail

if [[ -z "${SCEP_STATIC_BOUNDED:-}" ]]; then
    export SCEP_STATIC_BOUNDED=1
    exec timeout --kill-after=30 "${STATIC_TIMEOUT:-900}" bash "$0" "$@"
fi

cd "$(dirname "$0")/.."
SCRIPT=static-analysis.sh
source tests/scratch-copy.sh
for tool in bear clang-tidy run-clang-tidy cppcheck; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done
scratch_copy static
cd "$WORK/src"
timeout 300 ./configure --enable-werror >"$WORK/configure.log" 2>&1 \
    || { tail -40 "$WORK/configure.log"; die "configure failed"; }
# two runs: one make with both goals would build the core library twice at once
{ timeout 900 bear -- make -j2 all && timeout 900 bear --append -- make -j2 check TESTS=; } \
    >"$WORK/make.log" 2>&1 || { tail -60 "$WORK/make.log"; die "build failed"; }
[[ -s compile_commands.json ]] || die "bear recorded no compile commands"

status=0
echo "== static analysis: clang-tidy"
# the fuzz targets are built by clang with libFuzzer elsewhere (tests/fuzz/run.sh)
if ! timeout 900 run-clang-tidy -p . -quiet -j 2 '/(mod_scep|tests/(tools|unit))/[^/]*\.c$' \
    >"$WORK/clang-tidy.log" 2>&1; then
    sed 's/\x1b\[[0-9;]*m//g' "$WORK/clang-tidy.log" | grep -E -A3 ': (warning|error): ' || tail -30 "$WORK/clang-tidy.log"
    status=1
fi
echo "== static analysis: cppcheck"
if ! timeout 900 cppcheck --project=compile_commands.json --quiet --inline-suppr \
    --enable=warning,performance,portability --error-exitcode=1 \
    --suppressions-list="$SRC/tests/static/cppcheck-suppressions.txt" \
    -i tests/fuzz >"$WORK/cppcheck.log" 2>&1; then
    cat "$WORK/cppcheck.log"
    status=1
fi
if ((status == 0)); then
    echo "static analysis: clang-tidy and cppcheck found nothing in the $(grep -c '"file"' compile_commands.json) compilations bear recorded"
fi
exit "$status"

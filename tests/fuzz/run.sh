#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the fuzz targets with clang, libFuzzer, AddressSanitizer and UBSan, replays the
# checked-in regression inputs, then fuzzes each target for a bounded time starting from
# the checked-in seed corpus.  Exit status non-zero on any crash, leak, timeout, broken
# promise or build failure; a finding is left in the build directory's artifacts/ (see
# docs/security.md, "Fuzzing", for turning it into a regression test).
#
#   tests/fuzz/run.sh [TARGET...]          (default: all; TARGET as in fuzz_TARGET.c)
#
# Environment: FUZZ_SECONDS per target (default 45), FUZZ_BUILD_DIR (default: a temporary
# directory, removed at the end unless something was found), CC (default clang).
# The normal autotools build is not touched: everything is compiled here, into the
# build directory, from the sources.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
seconds=${FUZZ_SECONDS:-45}
cc=${CC:-clang}
all_targets=(decode pkimsg envelope content import webhook)
targets=("$@")
((${#targets[@]})) || targets=("${all_targets[@]}")

[[ "$seconds" =~ ^[0-9]+$ ]] && ((seconds > 0 && seconds <= 3600)) \
    || { echo "run.sh: FUZZ_SECONDS must be 1..3600" >&2; exit 2; }
command -v "$cc" >/dev/null || { echo "run.sh: $cc not found (install clang)" >&2; exit 2; }

if [[ -n "${FUZZ_BUILD_DIR:-}" ]]; then
    build=$FUZZ_BUILD_DIR
    mkdir -p "$build"
    keep=1
else
    build=$(mktemp -d "${TMPDIR:-/tmp}/scep-fuzz.XXXXXX")
    keep=0
fi
found=0
cleanup() {
    if ((keep == 0 && found == 0)); then
        rm -rf "$build"
    else
        echo "run.sh: build directory kept: $build"
    fi
}
trap cleanup EXIT

# ---- build ---------------------------------------------------------------------------
san=(-fsanitize=address,undefined -fno-sanitize-recover=undefined)
cflags=(-g -O1 -fno-omit-frame-pointer "${san[@]}" -I"$top/mod_scep" -I"$here"
    -DSCEP_FUZZ_PKI="\"$here/pki\"")
# shellcheck disable=SC2207
cflags+=($(pkg-config --cflags apr-1 apr-util-1 libcrypto libcurl libp11))
# shellcheck disable=SC2207
libs=($(pkg-config --libs apr-1 apr-util-1 libcrypto libcurl libp11)
    $(pkg-config --libs lmdb 2>/dev/null || echo -llmdb))

echo "fuzz: building in $build"
mkdir -p "$build/obj"
objs=()
for src in "$top"/mod_scep/scep_*.c "$here/fuzz_common.c"; do
    obj="$build/obj/$(basename "$src" .c).o"
    timeout 300 "$cc" "${cflags[@]}" -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
    objs+=("$obj")
done
for t in "${targets[@]}"; do
    [[ -f "$here/fuzz_$t.c" ]] || { echo "run.sh: no target $t" >&2; exit 2; }
    timeout 300 "$cc" "${cflags[@]}" -fsanitize=fuzzer "$here/fuzz_$t.c" "${objs[@]}" \
        "${libs[@]}" -o "$build/fuzz_$t"
done

# ---- run -----------------------------------------------------------------------------
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
failed=()
summary=()
for t in "${targets[@]}"; do
    bin="$build/fuzz_$t"
    log="$build/$t.log"
    artifacts="$build/artifacts/$t/"
    corpus="$build/corpus/$t"
    mkdir -p "$artifacts" "$corpus"
    # the checked-in seeds stay as they are; new inputs go to the build directory
    if [[ -d "$here/corpus/$t" ]]; then
        cp -p "$here/corpus/$t"/* "$corpus"/ 2>/dev/null || true
    fi
    opts=(-timeout=10 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1
        -artifact_prefix="$artifacts")
    [[ -f "$here/$t.dict" ]] && opts+=(-dict="$here/$t.dict")

    # 1. every regression input once
    regressions=()
    if [[ -d "$here/regressions/$t" ]]; then
        while IFS= read -r -d '' f; do regressions+=("$f"); done \
            < <(find "$here/regressions/$t" -type f ! -name README -print0 | sort -z)
    fi
    if ((${#regressions[@]})); then
        if ! timeout 300 "$bin" "${opts[@]}" "${regressions[@]}" >"$build/$t.replay.log" 2>&1; then
            tail -n 40 "$build/$t.replay.log"
            echo "fuzz: $t: a regression input fails again"
            failed+=("$t")
            found=1
            continue
        fi
    fi

    # 2. fuzzing, bounded
    echo "fuzz: $t for ${seconds}s (${#regressions[@]} regression inputs passed)"
    rc=0
    timeout --kill-after=10 $((seconds + 120)) "$bin" "${opts[@]}" \
        -max_total_time="$seconds" "$corpus" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    [[ -n "$execs" ]] || execs=$(sed -n 's/^#\([0-9]*\)[[:space:]]*DONE.*/\1/p' "$log" | tail -n 1)
    summary+=("$(printf '%-10s %10s executions  corpus %s files  rc %s' \
        "$t" "${execs:-?}" "$(find "$corpus" -type f | wc -l)" "$rc")")
    if ((rc != 0)) || grep -q '^==[0-9]*==ERROR\|^SUMMARY: \|runtime error:' "$log"; then
        tail -n 60 "$log"
        echo "fuzz: $t: FOUND something (exit $rc); reproducer(s):"
        ls -l "$artifacts"
        failed+=("$t")
        found=1
    fi
done

echo
echo "fuzz summary (${seconds}s per target):"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]})); then
    echo "fuzz: failed: ${failed[*]}"
    exit 1
fi
echo "fuzz: no crash, leak or timeout"

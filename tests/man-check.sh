#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/man-check.sh: the manual pages in man/ have not drifted from what they describe.
# Every option the programs' usage texts name (scepreg -h, scepload -h) is in their page,
# every directive the module registers (mod_scep_config.c) or docs/directives.md gives a
# syntax for is in mod_scep.8, and, where pandoc is installed, each page is exactly what
# man/mkman.sh makes of its Markdown source (regenerate with `make man`).
# Run by `make check` from the build folder; by hand: bash tests/man-check.sh [SRCDIR]
set -euo pipefail
src=${1:-${srcdir:-$(dirname "$0")/..}}
build=${SCEP_BUILDDIR:-.}
fail=0
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# plain PAGE: the page's text without roff's fonts and escapes, one word per line
plain() {
    sed -e 's/\\f\[[A-Z]*\]//g' -e 's/\\-/-/g' -e 's/\\\[[a-z]*\]/ /g' -e 's/\\&//g' "$1" \
        | tr -s ' \t[]|,()=' '\n'
}

# options_of PROGRAM: -x and --long-name as its usage text names them
options_of() {
    { "$build/$1" -h 2>&1 || true; } \
        | grep -oE '(^|[][ |(])(-[A-Za-z0-9]|--[a-z][a-z0-9-]+)' | sed 's/^[][ |(]//' | sort -u
}

check_options() {
    local prog=$1 page=$2 n=0 opt
    [[ -x "$build/$prog" ]] || { echo "man-check: $build/$prog is not built"; fail=1; return; }
    plain "$src/man/$page" >"$scratch/$page.words"
    for opt in $(options_of "$prog"); do
        n=$((n + 1))
        if ! grep -qxF -- "$opt" "$scratch/$page.words" \
            && ! plain "$src/man/$page" | tr '\n' ' ' \
                | grep -qE -- "(^|[^A-Za-z0-9-])$opt([^A-Za-z0-9-]|$)"; then
            echo "man-check: $prog's usage names $opt, man/$page does not (docs/$prog.md)"
            fail=1
        fi
    done
    ((n >= 10)) || { echo "man-check: only $n options read from $prog -h"; fail=1; }
    echo "man-check: man/$page checked against the $n options of $prog -h"
}

check_directives() {
    local d n=0
    plain "$src/man/mod_scep.8" >"$scratch/mod_scep.words"
    local config=$src/mod_scep/mod_scep_config.c
    for d in $( { grep -oE 'AP_INIT_[A-Z0-9_]*\("Scep[A-Za-z]+"' "$config" \
                      | sed 's/.*("//; s/"//'
                  grep -oE '^\| \*\*Syntax\*\* \| `Scep[A-Za-z]+' "$src/docs/directives.md" \
                      | sed 's/.*`//'; } | sort -u); do
        n=$((n + 1))
        if ! grep -qE "^$d:?$" "$scratch/mod_scep.words"; then
            echo "man-check: directive $d is not in man/mod_scep.8 (docs/mod_scep.md)"
            fail=1
        fi
    done
    ((n >= 50)) || { echo "man-check: only $n directives found"; fail=1; }
    echo "man-check: man/mod_scep.8 checked against the $n directives"
}

check_options scepreg scepreg.8
check_options scepload scepload.1
check_directives

if command -v "${PANDOC:-pandoc}" >/dev/null 2>&1; then
    for pair in scepreg.md:scepreg.8 scepload.md:scepload.1 mod_scep.md:mod_scep.8; do
        sh "$src/man/mkman.sh" "$src/docs/${pair%%:*}" "$scratch/${pair##*:}"
        if ! cmp -s "$scratch/${pair##*:}" "$src/man/${pair##*:}"; then
            echo "man-check: man/${pair##*:} is not what docs/${pair%%:*} gives: run make man"
            diff -u "$src/man/${pair##*:}" "$scratch/${pair##*:}" | head -20
            fail=1
        fi
    done
    echo "man-check: the pages are what their Markdown gives"
else
    echo "man-check: no ${PANDOC:-pandoc} here; the pages were not regenerated for comparison"
fi
exit $fail

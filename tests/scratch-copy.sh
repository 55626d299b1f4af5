# SPDX-License-Identifier: Apache-2.0
# Sourced by tests/sanitize.sh and tests/static-analysis.sh, which build a second copy of
# the project so that the tree's own build is left as it is.  Set SCRIPT before sourcing;
# then `scratch_copy TAG` checks that the tree is configured, makes $WORK (removed at
# exit unless KEEP=1) and copies the distribution into $WORK/src with make distdir, so
# that a file missing from the distribution shows up there too.  Run from the top of the
# tree; SRC is that top.

SRC=$(pwd)
die() {
    echo "$SCRIPT: $*" >&2
    exit 1
}

scratch_copy() {
    [[ -f Makefile ]] || die "run ./configure in $SRC first (the copy is made with make distdir)"
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/scep-$1.XXXXXX")
    trap scratch_cleanup EXIT
    timeout 300 make -s distdir distdir="$WORK/src" >"$WORK/distdir.log" 2>&1 \
        || { cat "$WORK/distdir.log"; die "make distdir failed"; }
}

scratch_cleanup() {
    if [[ "${KEEP:-0}" == 1 ]]; then
        echo "$SCRIPT: kept $WORK"
    else
        rm -rf "$WORK"
    fi
}

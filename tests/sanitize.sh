#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/sanitize.sh: a second build of mod_scep with AddressSanitizer and
# UndefinedBehaviorSanitizer (core, module, scepreg, scepload, the probe and the unit
# tests), then the unit tests with leak detection and a subset of the integration tests
# in which Debian's httpd loads the sanitized module.  Fails on a failed test and on any
# sanitizer report.  tests/check.sh runs it; docs/security.md explains the choices.
#
#   tests/sanitize.sh [t_name ...]     (default: the subset below)
#
# Run it from a configured tree: the sources are copied with make distdir into a scratch
# folder and built there, so the tree's own build is left as it is (and a file missing
# from the distribution shows up here too).
# Environment: SANITIZE_TIMEOUT bounds the whole run (default 900 s); KEEP=1 keeps the
# scratch folder; TEST_TIMEOUT is passed to tests/integration/run.sh.
set -euo pipefail

if [[ -z "${SCEP_SANITIZE_BOUNDED:-}" ]]; then
    export SCEP_SANITIZE_BOUNDED=1
    exec timeout --kill-after=30 "${SANITIZE_TIMEOUT:-900}" bash "$0" "$@"
fi

# Every integration test that exercises mod_scep and keeps to its own scratch folder:
# all message types over both transports, the failure paths, GET decoding, renewal,
# pending and approval, CRLs, forwarding through libcurl, rollover, a full database,
# the status handler, refused configurations, scepreg and scepload, and three other
# clients (strongSwan's pki, micromdm's scepclient, reverse proxies).  Left out:
# t_certmonger and t_forward_micromdm (system-wide daemons and network namespaces that
# a concurrent run would share), t_demo (builds in its own tree) and t_harness (no
# mod_scep).  A test that signals a sanitized tool must signal it alone (timeout
# --foreground, see t_scepreg): a SIGCONT to its process group can cancel the stop of
# LeakSanitizer's exit-time ptrace attach and leave the tool waiting forever.
SUBSET=(t_issuance t_cacaps_cacert t_errors t_get_decoding t_renewal t_pending t_crl
    t_registrations t_status t_store_full t_config_errors t_forward t_rollover
    t_scepload t_scepreg t_strongswan t_scepclient t_reverse_proxies)

SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all"
SAN_CFLAGS="$SAN_FLAGS -fno-omit-frame-pointer -g -O1"

cd "$(dirname "$0")/.."
SCRIPT=sanitize.sh
source tests/scratch-copy.sh
step() { printf '\n== sanitize: %s\n' "$*"; }

scratch_copy sanitize
step "a copy of the sources in $WORK/src"

step "configure and build with $SAN_FLAGS"
cd "$WORK/src"
timeout 300 ./configure --enable-werror CFLAGS="$SAN_CFLAGS" LDFLAGS="$SAN_FLAGS" \
    >"$WORK/configure.log" 2>&1 || { tail -40 "$WORK/configure.log"; die "configure failed"; }
timeout 900 make -j2 >"$WORK/make.log" 2>&1 || { tail -60 "$WORK/make.log"; die "build failed"; }

# libtool passes -fsanitize through to the link on its own (2.4.7); should it ever stop,
# the module would load uninstrumented and everything below would pass for nothing.
for bin in .libs/mod_scep.so scepreg scepload tests/tools/scep_probe; do
    needed=$(readelf -d "$bin" | grep NEEDED)
    [[ "$needed" == *libasan.so* && "$needed" == *libubsan.so* ]] \
        || die "$bin is not linked with the sanitizer runtimes"
done

# The unit tests: leak detection on.  Every test program frees what it made, and
# OpenSSL's tables are still reachable at exit, which LeakSanitizer does not report.
# Options given in the environment come last and so win: a leak whose stack stops in
# libcrypto (built without frame pointers) shows in full with
# ASAN_OPTIONS=fast_unwind_on_malloc=0, too slow to be the default.
step "unit tests"
user_asan=${ASAN_OPTIONS:+:$ASAN_OPTIONS}
user_ubsan=${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}
export ASAN_OPTIONS="detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1$user_asan"
export UBSAN_OPTIONS="print_stacktrace=1$user_ubsan"
if ! timeout 900 make check >"$WORK/check.log" 2>&1; then
    tail -20 "$WORK/check.log"
    for log in tests/unit/*.log; do
        echo "---- $log"
        cat "$log"
    done
    die "unit tests failed under the sanitizers"
fi
grep -E '^# (TOTAL|PASS|FAIL|ERROR):' "$WORK/check.log"

# From here every sanitized process writes its ASan and LeakSanitizer reports into
# $REPORTS (one file per process, asan.<pid>) instead of stderr: tests send much of their
# tools' stderr to /dev/null, and httpd's stderr ends in a log the test removes.  A child
# of httpd runs as www-data, hence a folder world-writable and sticky like /tmp.  UBSan
# cannot follow: with ASan in the same process, GCC's runtime routes its log_path to
# ASan's and itself keeps writing to stderr.  In httpd that is the error log, which
# lib.sh copies here when it holds a report (SANITIZER_REPORTS); a tool that hits
# undefined behaviour says so on stderr and exits with status 1, since nothing recovers.
# The run fails unless the folder is still empty at the end.
REPORTS=$WORK/reports
mkdir "$REPORTS"
chmod 711 "$WORK"
chmod 1777 "$REPORTS"

# The tools (scepreg, scepload, the probe) run short and keep leak detection.  httpd is
# not instrumented: it gets the runtimes preloaded (ASan must come first in the process)
# and leak detection with tests/sanitize-httpd.supp, for a child of httpd never destroys
# the configuration pool it inherited: without the file, one t_issuance reports some 900
# allocations of configuration (our CA keys and certificates, and httpd's own) that the
# parent frees.  What remains is a leak of a request or of a child.  Stacks through
# libcrypto, built without frame pointers, need the slow unwinder to reach our code,
# where the suppressions match.
libasan=$(readlink -f "$(gcc -print-file-name=libasan.so)")
libubsan=$(readlink -f "$(gcc -print-file-name=libubsan.so)")
[[ -f "$libasan" && -f "$libubsan" ]] || die "no libasan/libubsan found by gcc -print-file-name"
export ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$REPORTS/asan"
httpd_asan="detect_stack_use_after_return=1:strict_string_checks=1:fast_unwind_on_malloc=0$user_asan:detect_leaks=1:log_path=$REPORTS/asan"
httpd_lsan="suppressions=$WORK/src/tests/sanitize-httpd.supp:print_suppressions=0"
export SANITIZER_REPORTS=$REPORTS
export HTTPD_ENV="LD_PRELOAD=$libasan:$libubsan LSAN_OPTIONS=$httpd_lsan ASAN_OPTIONS=$httpd_asan UBSAN_OPTIONS=$UBSAN_OPTIONS"

# The preload has to reach httpd for any of this to mean something: ASan lists its flags
# at start when asked to.
HTTPD=${HTTPD:-/usr/sbin/apache2}
env LD_PRELOAD="$libasan:$libubsan" ASAN_OPTIONS=help=1:detect_leaks=0 timeout 30 "$HTTPD" -v \
        >"$WORK/preload.out" 2>&1 || true
grep -q 'Available flags for AddressSanitizer' "$WORK/preload.out" \
    || { cat "$WORK/preload.out"; die "the sanitizer runtime does not start inside $HTTPD"; }

step "integration tests with the sanitized module, scepreg, scepload and probe"
# the copy's harness, whose TOP is the copy: module, tools and probe all come from it
export TOP="$WORK/src"
unset MOD_SCEP SCEP_PROBE SCEPREG SCEPLOAD
rc=0
if (($#)); then
    timeout 1800 bash tests/integration/run.sh "$@" || rc=$?
else
    timeout 1800 bash tests/integration/run.sh "${SUBSET[@]}" || rc=$?
fi

reports=("$REPORTS"/*)
if [[ -e "${reports[0]}" ]]; then
    for f in "${reports[@]}"; do
        echo "---- sanitizer report $(basename "$f")"
        head -200 "$f"
    done
    die "${#reports[@]} sanitizer report(s)"
fi
((rc == 0)) || die "integration tests failed with the sanitized build"
step "no sanitizer reports"

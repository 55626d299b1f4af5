#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The one test command (CI runs it through .ci/run): installs what is missing (root on
# Debian 12), builds with -Werror, runs the unit tests (also under valgrind and in an
# ASan + UBSan build that httpd loads for an integration subset: tests/sanitize.sh),
# clang-tidy and cppcheck (tests/static-analysis.sh), fuzzes the parsers for a bounded time (tests/fuzz/run.sh),
# runs the integration tests against a real httpd and real clients (on LMDB, then where
# they apply on PostgreSQL), and make distcheck.
# Exit status non-zero on any failure.  Bounded: CHECK_TIMEOUT seconds overall (default 3600).
set -euo pipefail

if [[ -z "${SCEP_CHECK_BOUNDED:-}" ]]; then
    export SCEP_CHECK_BOUNDED=1
    exec timeout --kill-after=30 "${CHECK_TIMEOUT:-3600}" bash "$0" "$@"
fi

cd "$(dirname "$0")/.."
step() { printf '\n==== %s\n' "$*"; }

# ---- packages ---------------------------------------------------------------------------
packages=(build-essential autoconf automake libtool pkg-config apache2 apache2-dev
    libapr1-dev libaprutil1-dev libssl-dev liblmdb-dev libcurl4-openssl-dev libcmocka-dev
    strongswan-pki libstrongswan-extra-plugins certmonger dbus curl openssl netcat-openbsd
    valgrind scep tinyproxy nginx-light haproxy clang libclang-rt-14-dev lmdb-utils
    clang-tidy cppcheck bear libaprutil1-dbd-pgsql postgresql-15 postgresql-client-15
    softhsm2 libengine-pkcs11-openssl opensc libp11-dev)
# t_pkcs11 builds tests/tools/p11_signonly.c with p11-kit's PKCS#11 header
packages+=(libp11-kit-dev)
# the Debian packages (tests/package/t_package.sh): building them and lintian
packages+=(debhelper dh-autoreconf dpkg-dev lintian)
# make check compares the man pages with what pandoc makes of their Markdown
packages+=(pandoc)
missing=()
if command -v dpkg-query >/dev/null; then
    for p in "${packages[@]}"; do
        if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
            missing+=("$p")
        fi
    done
fi
if ((${#missing[@]})); then
    step "installing ${missing[*]}"
    if [[ $(id -u) != 0 ]]; then
        echo "check.sh: missing packages and not root: ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    timeout 900 apt-get update
    timeout 1800 apt-get install -y --no-install-recommends "${missing[@]}"
fi

# ---- build --------------------------------------------------------------------------------
step "autoreconf"
timeout 300 autoreconf -fi
step "configure"
timeout 300 ./configure --enable-werror
step "make"
timeout 900 make -j2

# ---- unit tests -----------------------------------------------------------------------------
step "make check (unit tests)"
if ! timeout 900 make check; then
    for log in tests/unit/*.log; do
        [[ -f "$log" ]] || continue
        echo "---- $log"
        cat "$log"
    done
    echo "check.sh: unit tests failed" >&2
    exit 1
fi

# ---- valgrind -----------------------------------------------------------------------------
step "make check-valgrind (unit tests under memcheck)"
if ! timeout 1200 make -j2 check-valgrind; then
    for log in tests/unit/*.log; do
        [[ -f "$log" ]] || continue
        echo "---- $log"
        cat "$log"
    done
    echo "check.sh: unit tests failed under valgrind" >&2
    exit 1
fi

# ---- sanitizers ---------------------------------------------------------------------------
step "ASan + UBSan build: unit tests and integration subset (tests/sanitize.sh)"
timeout 1200 bash tests/sanitize.sh

# ---- static analysis ----------------------------------------------------------------------
step "static analysis (tests/static-analysis.sh)"
timeout 900 bash tests/static-analysis.sh

# ---- fuzzing ---------------------------------------------------------------------------------
# Bounded: FUZZ_SECONDS per target (default 45, five targets), plus the clang build.
step "fuzzing (tests/fuzz/run.sh)"
timeout 900 bash tests/fuzz/run.sh

# ---- integration tests --------------------------------------------------------------------
step "integration tests"
timeout 2400 bash tests/integration/run.sh

# The same tests with their records in PostgreSQL, where they apply (the table in run.sh);
# each starts its own scratch server (tests/pg.sh).
step "integration tests against PostgreSQL (SCEP_TEST_STORE=pgsql)"
SCEP_TEST_STORE=pgsql timeout 1800 bash tests/integration/run.sh

# ---- the Debian packages -------------------------------------------------------------------
# Built, installed on this machine, used on the system's apache2 (started and stopped
# again), upgraded, removed and purged; the machine is left as it was (the test refuses to
# start where it could not be).  About 2.5 min on 2 cores.
step "Debian packages on the system's apache2 (tests/package/t_package.sh)"
timeout 600 bash tests/package/t_package.sh

# ---- distcheck ------------------------------------------------------------------------------
step "make distcheck"
timeout 1800 make distcheck

step "all checks passed"

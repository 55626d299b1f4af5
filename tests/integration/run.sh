#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs every tests/integration/t_*.sh, each in its own bash process and bounded in time,
# prints each result, and ends with "N passed, N failed".  Exit status 1 if any failed.
#
#   tests/integration/run.sh [t_name ...]     (default: all)
#   SCEP_TEST_STORE=pgsql tests/integration/run.sh [t_name ...]
#                         the same tests with their records in PostgreSQL (default: every
#                         test the table below marks pg)
# Environment: see lib.sh (TOP, MOD_SCEP, SCEP_PROBE, KEEP, VERBOSE, SCEP_TEST_STORE);
# TEST_TIMEOUT bounds each test (default 600 s).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
timeout_s=${TEST_TIMEOUT:-600}
store=${SCEP_TEST_STORE:-lmdb}
passed=0
failed=0
failed_names=()
not_applicable=0

# Which tests run against PostgreSQL.  pg: every ScepDeviceDB folder of the test becomes a
# database (lib.sh); pg:FOLDER...: those folders stay LMDB, because one server of the test
# serves them beside another folder and mod_dbd gives a server one database; none: the
# test names no ScepDeviceDB, so both stores run it alike (it runs when named, not by
# default); lmdb: it tests LMDB itself, for the reason given.  Tests that start PostgreSQL
# themselves are none too: their store does not follow SCEP_TEST_STORE.
STORE_TABLE='
t_cacaps_cacert    none
t_certmonger       pg
t_config_errors    lmdb  refusals of LMDB folders (modes, owners, paths); dbd: has its own cases
t_cluster          none  two nodes on a PostgreSQL of its own
t_crl              pg
t_dbd              none  ScepDeviceDB dbd: on a PostgreSQL of its own
t_demo             lmdb  conf-examples/demo.sh writes its own configuration with an LMDB folder
t_encrypted_key    none
t_errors           none
t_faults           lmdb  reader slots, the sync-failure marker file, LMDB under kill -9
t_faults_forward   pg
t_forward          pg:udb
t_forward_micromdm pg
t_forward_names    pg:udb
t_forward_trust    pg:udb
t_get_decoding     none
t_harness          none
t_hostile          pg
t_identity         pg
t_issuance         none
t_lockout_burst    pg
t_mint_params      pg
t_pending          pg
t_pkcs11           lmdb  keys in a token; its folders (for the CRL and the example) are incidental
t_pki_init         lmdb  the CA files scepreg pki init writes, not the store, are the subject
t_registrations    pg
t_renewal          pg
t_request_clock    pg
t_reverse_proxies  pg
t_rollover         pg
t_scepclient       none
t_scepload         pg
t_scepreg          lmdb  the tool on LMDB files: modes, owners, damaged pages, map size, locks
t_scepreg_pg       none  scepreg on both engines side by side
t_slowloris        lmdb  runs conf-examples/demo.sh, whose configuration is its own
t_status           none
t_store_full       lmdb  a full LMDB map (ScepDeviceDBMapSize, scepreg -m)
t_strongswan       none
t_templates        pg
t_webhook          pg
'
# store_plan NAME: the table's words for NAME (empty when it is not listed)
store_plan() { awk -v n="$1" '$1 == n { $1 = ""; sub(/^ +/, ""); print }' <<<"$STORE_TABLE"; }

case $store in
    lmdb | pgsql) ;;
    *) echo "SCEP_TEST_STORE is '$store': lmdb or pgsql" >&2; exit 2 ;;
esac

if [[ $store == pgsql ]]; then
    # one initdb per run: each test's scratch server starts from a copy (tests/pg.sh)
    # shellcheck source=../pg.sh
    source "$here/../pg.sh"
    pg_available || { echo "PostgreSQL is not installed (postgresql-15)" >&2; exit 1; }
    template=$(mktemp -d "${TMPDIR:-/tmp}/scep-pg-template.XXXXXX")
    trap 'rm -rf "$template"' EXIT
    # a signal ends the run through exit, so the template goes too
    trap 'exit 130' INT
    trap 'exit 143' TERM
    chmod 755 "$template"
    [[ $(id -u) != 0 ]] || chown postgres: "$template"
    pg_initdb "$template/data" "$template/initdb.log" || exit 1
    export PG_TEMPLATE=$template/data
fi

if (($#)); then
    tests=()
    for name in "$@"; do
        name=${name%.sh}
        tests+=("$here/${name##*/}.sh")
    done
elif [[ $store == pgsql ]]; then
    tests=()
    for t in "$here"/t_*.sh; do
        plan=$(store_plan "$(basename "$t" .sh)")
        [[ $plan == lmdb* || $plan == none* ]] || tests+=("$t")
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
    lmdb_folders=""
    test_store=$store
    if [[ $store == pgsql ]]; then
        plan=$(store_plan "$name")
        case $plan in
            pg) ;;
            none*)
                # nothing to turn into PostgreSQL (or it is its own PostgreSQL already)
                echo "(store: $name has no ScepDeviceDB that follows SCEP_TEST_STORE; run as is)"
                test_store=lmdb ;;
            pg:*) lmdb_folders=${plan#pg:}; lmdb_folders=${lmdb_folders//,/ } ;;
            lmdb*)
                echo "N/A  $name (LMDB only: ${plan#lmdb })"
                echo
                not_applicable=$((not_applicable + 1))
                continue ;;
            *)
                echo "FAIL $name (not in run.sh's store table: say whether it applies to pgsql)"
                failed=$((failed + 1))
                failed_names+=("$name")
                continue ;;
        esac
    fi
    start=$SECONDS
    SCEP_TEST_STORE=$test_store SCEP_TEST_LMDB_FOLDERS=$lmdb_folders \
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
((not_applicable)) && echo "store pgsql: $not_applicable not applicable (LMDB only)"
echo "$passed passed, $failed failed"
((failed == 0))

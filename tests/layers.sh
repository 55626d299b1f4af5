#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/layers.sh: the include graph of mod_scep/ runs one way (docs/HACKING.md).  Every
# source file has a layer below; a file may include headers of its own layer or lower,
# never higher, and the headers of one layer must not include each other in a circle.
# A file missing from the table fails too, so a new unit is placed on purpose.
# Run by `make check`; by hand: bash tests/layers.sh [SRCDIR]
set -euo pipefail
src=${1:-${srcdir:-$(dirname "$0")/..}}/mod_scep

# unit name (file without .c/.h) -> layer
declare -A layer=(
    [scep_util]=0 [scep_util_own]=0 [scep_version]=0
    [scep_name]=1 [scep_pgconf]=1 [scep_verifier]=1 [scep_profile]=1 [scep_keyless]=1
    [scep_decode]=1
    [scep_csr]=1 [scep_template]=1
    [scep_db]=2 [scep_sql]=2
    [scep_store]=3 [scep_import]=3
    [scep_policy]=4
    [scep_msg]=5 [scep_ca]=5 [scep_key]=5 [scep_token]=5 [scep_issue]=5 [scep_crl]=5 [scep_forward]=5
    [scep_webhook]=5
    [scep_server]=6
)
names=(util "plain data and parsers" db store policy "pki (messages, CA, issuance)" server)
# the glue and the tools stand above everything; scepreg's main file and its private
# header must stay below the request flow and the policy, so that the registration tool
# never grows into the server (only its records commands call the policy)
glue_layer=7
scepreg_main_max=3

# a unit written in several files: its records on PostgreSQL are the store's own business
declare -A part_of=([scep_store_sql]=scep_store)
unit_of() {
    local b; b=$(basename "$1"); b=${b%.in}; b=${b%.[ch]}
    echo "${part_of[$b]:-$b}"
}
layer_of() {
    local u; u=$(unit_of "$1")
    if [[ -n "${layer[$u]+x}" ]]; then echo "${layer[$u]}"
    elif [[ $u == mod_scep* || $u == scepreg* || $u == scepload* ]]; then echo $glue_layer
    else echo "?"; fi
}

fail=0 edges=0 upward=0
declare -a same
for f in "$src"/*.c "$src"/*.h; do
    from=$(layer_of "$f")
    if [[ $from == "?" ]]; then
        echo "layers: $(basename "$f") has no layer: add it to tests/layers.sh and HACKING.md"
        fail=1; continue
    fi
    max=$from
    [[ $(basename "$f") == scepreg.[ch] ]] && max=$scepreg_main_max
    while read -r inc; do
        [[ -f "$src/$inc" || -f "$src/$inc.in" ]] || continue   # httpd's and APR's headers
        to=$(layer_of "$inc")
        edges=$((edges + 1))
        if [[ $to == "?" || $(unit_of "$inc") == "$(unit_of "$f")" ]]; then
            continue               # reported for its own file; a unit's own header
        fi
        if (( to > max )); then
            echo "layers: $(basename "$f") (${names[$from]:-glue and tools}) includes $inc" \
                 "(${names[$to]:-glue}): that runs upwards"
            upward=$((upward + 1)); fail=1
        elif (( to == from )) && [[ $(unit_of "$f") != "$(unit_of "$inc")" ]]; then
            same+=("$(unit_of "$f") $(unit_of "$inc")")
        fi
    done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f")
done
# a circle inside one layer: tsort reports it
if (( ${#same[@]} )) && ! printf '%s\n' "${same[@]}" | sort -u | tsort >/dev/null 2>"${TMPDIR:-/tmp}/layers.$$"; then
    echo "layers: units of one layer include each other in a circle:"
    sed 's/^/    /' "${TMPDIR:-/tmp}/layers.$$"
    fail=1
fi
rm -f "${TMPDIR:-/tmp}/layers.$$"
echo "layers: $edges include edges between mod_scep's files, $upward upwards"
exit $fail

# SPDX-License-Identifier: Apache-2.0
# tests/integration/lib.sh: the integration harness, sourced by every t_*.sh.
#
# It makes a scratch folder (removed at exit unless KEEP=1), a test PKI made with the
# openssl command line, an httpd configuration in a scratch ServerRoot listening on a
# free port of 127.0.0.1, starts Debian's apache2 with the freshly built mod_scep.so,
# and offers assertions (pass/fail/expect_*), HTTP helpers (curl, always bounded) and
# helpers around tests/tools/scep_probe.  Only 127.0.0.1 is ever contacted.
#
# Environment:
#   TOP         build tree holding .libs/mod_scep.so and tests/tools/scep_probe
#               (default: two levels above this file)
#   MOD_SCEP    the module to load (default: $TOP/.libs/mod_scep.so)
#   SCEP_PROBE  the probe (default: $TOP/tests/tools/scep_probe)
#   HTTPD       the httpd binary (default: /usr/sbin/apache2)
#   HTTPD_ENV   VAR=value words (split at blanks) added to httpd's environment only;
#               tests/sanitize.sh preloads the sanitizer runtimes into httpd with it
#   SANITIZER_REPORTS  a folder: httpd's logs that hold a sanitizer report are copied
#               there before they are emptied or removed (tests/sanitize.sh)
#   APACHE_MODDIR  where mod_mpm_event.so and mod_authz_core.so live
#   KEEP=1      keep the scratch folder (its path is printed)
#   VERBOSE=1   print the error log at the end of every test
#   SCEP_TEST_STORE  lmdb (default) or pgsql: where the records of every ScepDeviceDB folder
#               live (see "the store" below; run.sh says which tests apply)
#   SCEP_TEST_LMDB_FOLDERS  with pgsql: names of folders (last path component, blank
#               separated) that stay LMDB; run.sh sets it for tests whose one server serves
#               two folders, since mod_dbd gives a server one database

set -euo pipefail

LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=${TOP:-$(cd "$LIB_DIR/../.." && pwd)}
HTTPD=${HTTPD:-/usr/sbin/apache2}
APACHE_MODDIR=${APACHE_MODDIR:-/usr/lib/apache2/modules}
MOD_SCEP=${MOD_SCEP:-$TOP/.libs/mod_scep.so}
# how every test starts httpd: through env(1) when HTTPD_ENV asks for more environment
HTTPD_CMD=("$HTTPD")
if [[ -n "${HTTPD_ENV:-}" ]]; then
    read -ra HTTPD_CMD <<<"$HTTPD_ENV"
    HTTPD_CMD=(env "${HTTPD_CMD[@]}" "$HTTPD")
fi
SCEP_PROBE=${SCEP_PROBE:-$TOP/tests/tools/scep_probe}
T_NAME=$(basename "$0" .sh)
# where a message's tag starts in an error log line: after "[client ...] " or, at debug
# and trace levels, after "file.c(123): "
TAG_RE='(\] |\): )SCEP[0-9]{5}: '

T=""                 # the scratch folder
PORT=""              # the port httpd listens on
HTTPD_PID=""
HTTPD_ROOT=""        # scratch ServerRoot
ERROR_LOG=""
ACCESS_LOG=""
T_PASSES=0
T_FAILS=0
T_EXIT_HOOKS=()

# ---- results ---------------------------------------------------------------------------

note() { printf '  .. %s\n' "$*"; }
pass() { T_PASSES=$((T_PASSES + 1)); printf '  ok   %s\n' "$*"; }
fail() { T_FAILS=$((T_FAILS + 1)); printf '  FAIL %s\n' "$*"; }

# Fails the whole test now (for broken preconditions: no point going on).
die() {
    fail "$*"
    exit 1
}

# expect_eq ACTUAL EXPECTED WHAT
expect_eq() {
    if [[ "$1" == "$2" ]]; then
        pass "$3"
    else
        fail "$3: got '$1', expected '$2'"
    fi
}

# expect_match ACTUAL ERE WHAT
expect_match() {
    if [[ "$1" =~ $2 ]]; then
        pass "$3"
    else
        fail "$3: '$1' does not match /$2/"
    fi
}

# expect_file_contains FILE FIXED-STRING WHAT
expect_file_contains() {
    if grep -qF -- "$2" "$1"; then
        pass "$3"
    else
        fail "$3: '$2' not found in $(basename "$1")"
        sed 's/^/       | /' "$1" | head -20
    fi
}

# expect_file_matches FILE ERE WHAT
expect_file_matches() {
    if grep -qE -- "$2" "$1"; then
        pass "$3"
    else
        fail "$3: nothing matches /$2/ in $(basename "$1")"
        sed 's/^/       | /' "$1" | head -20
    fi
}

# Ends the test: exit 0 only when something passed and nothing failed.
t_done() {
    httpd_stop_quiet
    [[ -z "$STORE_PG" ]] || store_pg_check_folders
    if ((T_FAILS == 0 && T_PASSES > 0)); then
        printf '%s: %d checks passed\n' "$T_NAME" "$T_PASSES"
        exit 0
    fi
    printf '%s: %d passed, %d FAILED\n' "$T_NAME" "$T_PASSES" "$T_FAILS"
    exit 1
}

# ---- scratch folder and cleanup ------------------------------------------------------

at_exit() { T_EXIT_HOOKS+=("$*"); }

t_cleanup() {
    local rc=$? hook
    trap - EXIT INT TERM
    for hook in "${T_EXIT_HOOKS[@]+"${T_EXIT_HOOKS[@]}"}"; do
        eval "$hook" || true
    done
    httpd_stop_quiet || true
    # after every server and hook of the test: their connections only log errors once
    # the database is gone
    if [[ -n "$STORE_PG" ]]; then
        [[ ! -e "$STORE_PG/server" ]] || PG_DIRS[store]=$PG_SCRATCH/store
        pg_stop_all
    fi
    sanitizer_scan
    if [[ -n "$T" && -d "$T" ]]; then
        if [[ "${VERBOSE:-0}" == 1 && -n "$ERROR_LOG" && -f "$ERROR_LOG" ]]; then
            echo "---- $ERROR_LOG"
            cat "$ERROR_LOG"
        fi
        if [[ "${KEEP:-0}" == 1 ]]; then
            echo "  (scratch kept: $T)"
        else
            rm -rf "$T"
        fi
    fi
    exit "$rc"
}

t_init() {
    local tool
    T=$(mktemp -d "${TMPDIR:-/tmp}/scep-${T_NAME}.XXXXXX")
    chmod 700 "$T"
    trap t_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    for tool in openssl curl timeout "$HTTPD"; do
        command -v "$tool" >/dev/null || die "required tool '$tool' is missing"
    done
    echo "$T_NAME"
    case $SCEP_TEST_STORE in
        lmdb) ;;
        pgsql) store_pg_init ;;
        *) die "SCEP_TEST_STORE is '$SCEP_TEST_STORE': lmdb or pgsql" ;;
    esac
}

require_module() {
    [[ -f "$MOD_SCEP" ]] || die "module not built: $MOD_SCEP"
}

require_probe() {
    [[ -x "$SCEP_PROBE" ]] || die "probe not built: $SCEP_PROBE"
}

# ---- test PKI (openssl command line) -----------------------------------------------------

# make_ca DIR CN: DIR/ca.key, DIR/ca.pem (RSA-2048 root, keyCertSign+cRLSign)
make_ca() {
    local dir=$1 cn=$2
    mkdir -p "$dir"
    timeout 60 openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
        -keyout "$dir/ca.key" -out "$dir/ca.pem" -subj "/O=mod_scep tests/CN=$cn" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" >"$dir/openssl.log" 2>&1 \
        || { cat "$dir/openssl.log"; die "cannot make CA $cn"; }
    chmod 600 "$dir/ca.key"
}

# issue_cert DIR NAME CN KEYUSAGE [KEYALG-ARGS...]: DIR/NAME.key, DIR/NAME.pem issued by DIR/ca
issue_cert() {
    local dir=$1 name=$2 cn=$3 ku=$4
    shift 4
    local keyargs=("$@")
    ((${#keyargs[@]})) || keyargs=(-algorithm RSA -pkeyopt rsa_keygen_bits:2048)
    timeout 60 openssl genpkey "${keyargs[@]}" -out "$dir/$name.key" >"$dir/openssl.log" 2>&1 \
        || { cat "$dir/openssl.log"; die "cannot make key $name"; }
    chmod 600 "$dir/$name.key"
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,%s\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' \
        "$ku" >"$dir/$name.ext"
    timeout 60 openssl req -new -key "$dir/$name.key" -subj "/O=mod_scep tests/CN=$cn" \
        -out "$dir/$name.csr" >"$dir/openssl.log" 2>&1 \
        && timeout 60 openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" \
            -CAkey "$dir/ca.key" -set_serial "0x$(openssl rand -hex 8)" -days 365 -sha256 \
            -extfile "$dir/$name.ext" -out "$dir/$name.pem" >>"$dir/openssl.log" 2>&1 \
        || { cat "$dir/openssl.log"; die "cannot issue $name"; }
}

# make_pki DIR NAME: a CA plus an RA (digitalSignature,keyEncipherment) in DIR
make_pki() {
    local dir=$1 name=${2:-Test}
    make_ca "$dir" "$name CA"
    issue_cert "$dir" ra "$name RA" "digitalSignature,keyEncipherment"
}

# make_key FILE BITS: an RSA device key
make_key() {
    timeout 120 openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:$2" -out "$1" 2>/dev/null \
        || die "cannot make a $2-bit key"
    chmod 600 "$1"
}

# der_of CERT.pem: hex of its DER, for comparisons
der_of() { openssl x509 -in "$1" -outform DER | od -An -v -tx1 | tr -d ' \n'; }

# ---- httpd ---------------------------------------------------------------------------

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
        return
    fi
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 40000))
        if ! ss -Htln "sport = :$p" | grep -q .; then
            echo "$p"
            return
        fi
    done
    die "no free port found"
}

# ---- the store: LMDB folders, or PostgreSQL databases standing in for them -------------
#
# With SCEP_TEST_STORE=pgsql a test runs unchanged against PostgreSQL: t_init starts a
# scratch server (tests/pg.sh), points SCEPREG and SCEPLOAD at shims written here and puts
# one for mdb_stat first in PATH.  The first time a folder is named (to scepreg, to
# scepload -D, or in a ScepDeviceDB line of httpd_conf) it gets a database of its own, with
# the schema made by `scepreg db upgrade`.  scepreg's folder argument becomes --pg-file of
# that database; a ScepDeviceDB line becomes `ScepDeviceDB dbd:` and the server gets
# mod_dbd with DBDParams naming the database.  A folder named in SCEP_TEST_LMDB_FOLDERS
# stays LMDB.

SCEP_TEST_STORE=${SCEP_TEST_STORE:-lmdb}
STORE_PG=""          # pgsql: the folder of the shims, the conninfo files and the map
STORE_PG_PORT=""
SCEPREG_REAL=""      # pgsql: the programs the shims run
SCEPLOAD_REAL=""
MDB_STAT_REAL=""
SCEP_TEST_LMDB_FOLDERS=${SCEP_TEST_LMDB_FOLDERS:-}

# store_is_lmdb: true unless the test runs against PostgreSQL; for the few checks that
# look into an LMDB folder itself (its owner, its files)
store_is_lmdb() { [[ "$SCEP_TEST_STORE" == lmdb ]]; }

# store_keeps_lmdb FOLDER: true when FOLDER is one SCEP_TEST_LMDB_FOLDERS leaves to LMDB
store_keeps_lmdb() {
    local name=${1%/}
    name=${name##*/}
    [[ " $SCEP_TEST_LMDB_FOLDERS " == *" $name "* ]]
}

# store_pg_server: starts the scratch server the first time a test needs it, not in
# t_init: a test without a store does not wait for it, and a test in a network namespace
# of its own (t_forward_micromdm) brings the loopback up first.  Under the map's lock.
store_pg_server() {
    [[ -e "$STORE_PG/server" ]] && return 0
    # shellcheck source=../pg.sh
    source "$LIB_DIR/../pg.sh"
    # the lock stays with this shell, not with the server
    pg_start store "$STORE_PG_PORT" >>"$STORE_PG/setup.log" 2>&1 9>&- || {
        echo "store: the scratch PostgreSQL did not start: $(tail -3 "$STORE_PG/setup.log")" >&2
        return 1
    }
    : >"$STORE_PG/server"
}

# store_pg_database FOLDER: prints the conninfo file of FOLDER's database, made (with its
# schema) the first time; safe for concurrent scepreg runs (flock on the map)
store_pg_database() {
    local folder name
    folder=$(realpath -m -- "$1")
    (
        flock -w 60 9 || { echo "store: the map of databases stays locked" >&2; exit 1; }
        store_pg_server || exit 1
        name=$(awk -F'\t' -v f="$folder" '$1 == f { print $2 }' "$STORE_PG/map")
        if [[ -z "$name" ]]; then
            name=scep_$(($(wc -l <"$STORE_PG/map") + 1))
            timeout 60 psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$STORE_PG_PORT" \
                -U scep -d postgres -c "CREATE DATABASE $name" >>"$STORE_PG/setup.log" 2>&1 \
                || { echo "store: cannot create the database for $folder" >&2; exit 1; }
            printf 'host=127.0.0.1 port=%s user=scep dbname=%s connect_timeout=5\n' \
                "$STORE_PG_PORT" "$name" >"$STORE_PG/$name.conninfo"
            chmod 600 "$STORE_PG/$name.conninfo"
            printf '%s\t%s\n' "$folder" "$name" >>"$STORE_PG/map"
        fi
        # until the schema is there, every use tries again (and says why it cannot)
        if [[ ! -e "$STORE_PG/$name.schema" ]]; then
            timeout 60 "$SCEPREG_REAL" --pg-file "$STORE_PG/$name.conninfo" db upgrade \
                >>"$STORE_PG/setup.log" 2>&1 \
                || { echo "store: scepreg db upgrade failed for $folder:" \
                        "$(tail -1 "$STORE_PG/setup.log")" >&2; exit 1; }
            : >"$STORE_PG/$name.schema"
        fi
        echo "$STORE_PG/$name.conninfo"
    ) 9>>"$STORE_PG/map.lock"
}

# The scepreg shim: the first argument that is not an option (getopt "+" as scepreg reads
# them) is the folder, and --pg-file stands in for it.  -c, -m and -o stay: scepreg
# ignores -m and -o on PostgreSQL, and -c makes the schema there, as it makes the files.
store_scepreg_shim() {
    local with_value=moaseptTIrW args=("$@") i=0 j a conninfo
    while ((i < ${#args[@]})); do
        a=${args[i]}
        [[ "$a" == -?* && "$a" != -- ]] || break
        for ((j = 1; j < ${#a}; j++)); do
            [[ "$with_value" == *"${a:j:1}"* ]] || continue
            # the value is the rest of the word, or the next word
            ((j + 1 < ${#a})) || i=$((i + 1))
            break
        done
        i=$((i + 1))
    done
    local options_end=$i   # --pg-file is an option: before a "--"
    [[ "${args[i]:-}" == -- ]] && i=$((i + 1))
    if ((i >= ${#args[@]})) || store_keeps_lmdb "${args[i]}"; then
        exec "$SCEPREG_REAL" "$@"
    fi
    conninfo=$(store_pg_database "${args[i]}") || exit 1
    exec "$SCEPREG_REAL" "${args[@]:0:options_end}" --pg-file "$conninfo" \
        "${args[@]:options_end:i-options_end}" "${args[@]:i+1}"
}

# The scepload shim: -D FOLDER (its own registration for the run) becomes --pg-file.
store_scepload_shim() {
    local out=() a conninfo folder
    while (($#)); do
        a=$1
        shift
        folder=""
        case $a in
            -D) folder=${1:-}; shift || true ;;
            -D?*) folder=${a#-D} ;;
        esac
        if [[ -n "$folder" ]] && ! store_keeps_lmdb "$folder"; then
            conninfo=$(store_pg_database "$folder") || exit 1
            out+=(--pg-file "$conninfo")
        elif [[ -n "$folder" ]]; then
            out+=(-D "$folder")
        else
            out+=("$a")
        fi
    done
    exec "$SCEPLOAD_REAL" "${out[@]}"
}

# The mdb_stat shim, for the one question tests ask LMDB beside a running server: how many
# minted challenges the folder holds (mdb_stat -s challenges FOLDER).  Rows of
# scep_challenges are deleted when consumed, as LMDB's entries are.
store_mdb_stat_shim() {
    local name count
    if (($# == 3)) && [[ "$1" == -s && "$2" == challenges ]]; then
        name=$(awk -F'\t' -v f="$(realpath -m -- "$3")" '$1 == f { print $2 }' "$STORE_PG/map")
        if [[ -n "$name" ]]; then
            count=$(timeout 30 psql -X -q -At -h 127.0.0.1 -p "$STORE_PG_PORT" -U scep \
                -d "$name" -c "SELECT count(*) FROM scep_challenges") || exit 1
            printf '  Entries: %s\n' "$count"
            exit 0
        fi
    fi
    [[ -n "$MDB_STAT_REAL" ]] || { echo "mdb_stat (lmdb-utils) is not installed" >&2; exit 127; }
    exec "$MDB_STAT_REAL" "$@"
}

# store_pg_write_shim NAME FUNCTION: an executable $STORE_PG/NAME running FUNCTION with
# the state it needs, so that tests keep calling "$SCEPREG" and "$SCEPLOAD" as programs
store_pg_write_shim() {
    {
        echo '#!/usr/bin/env bash'
        echo "# written by tests/integration/lib.sh for $T_NAME: $1 on PostgreSQL"
        echo 'set -uo pipefail'
        declare -p STORE_PG STORE_PG_PORT SCEPREG_REAL SCEPLOAD_REAL MDB_STAT_REAL \
            SCEP_TEST_LMDB_FOLDERS LIB_DIR PG_SCRATCH
        declare -f store_keeps_lmdb store_pg_server store_pg_database "$2"
        echo "$2 \"\$@\""
    } >"$STORE_PG/$1"
    chmod 755 "$STORE_PG/$1"
}

store_pg_init() {
    command -v flock >/dev/null || die "flock (util-linux) is missing"
    # shellcheck source=../pg.sh
    source "$LIB_DIR/../pg.sh"
    pg_available || die "PostgreSQL is not installed (postgresql-15)"
    pg_scratch
    STORE_PG=$T/pgstore
    mkdir -p "$STORE_PG"
    : >"$STORE_PG/map"
    STORE_PG_PORT=$(free_port)
    SCEPREG_REAL=${SCEPREG:-$TOP/scepreg}
    SCEPLOAD_REAL=${SCEPLOAD:-$TOP/scepload}
    MDB_STAT_REAL=$(command -v mdb_stat || true)
    mkdir -p "$STORE_PG/bin"
    store_pg_write_shim scepreg store_scepreg_shim
    store_pg_write_shim scepload store_scepload_shim
    store_pg_write_shim bin/mdb_stat store_mdb_stat_shim
    SCEPREG=$STORE_PG/scepreg
    SCEPLOAD=$STORE_PG/scepload
    PATH=$STORE_PG/bin:$PATH
    note "store: PostgreSQL on 127.0.0.1:$STORE_PG_PORT (started when a folder is first named)"
}

# store_pg_check_folders: fails when a folder that had a database got LMDB files all the
# same (something opened it past the shims and the dbd: rewrite)
store_pg_check_folders() {
    local folder name
    while IFS=$'\t' read -r folder name; do
        [[ ! -e "$folder/data.mdb" ]] || fail "store: $folder was written as LMDB ($name stood in)"
    done <"$STORE_PG/map"
}

# store_pg_rewrite BODY: BODY with every ScepDeviceDB folder of PostgreSQL's turned into
# dbd:, in STORE_BODY; the server lines for mod_dbd in STORE_SERVER (empty when none)
store_pg_rewrite() {
    local line folder="" conninfo
    local re='^([[:space:]]*)ScepDeviceDB[[:space:]]+"?([^"[:space:]]+)"?[[:space:]]*$'
    STORE_BODY=""
    STORE_SERVER=""
    while IFS= read -r line; do
        if [[ "$line" =~ $re && "${BASH_REMATCH[2]}" != dbd:* ]] \
            && ! store_keeps_lmdb "${BASH_REMATCH[2]}"; then
            if [[ -n "$folder" && "$folder" != "$(realpath -m -- "${BASH_REMATCH[2]}")" ]]; then
                die "store: one server with the folders $folder and ${BASH_REMATCH[2]}: mod_dbd" \
                    "has one database per server; name one in SCEP_TEST_LMDB_FOLDERS (run.sh)"
            fi
            folder=$(realpath -m -- "${BASH_REMATCH[2]}")
            line="${BASH_REMATCH[1]}ScepDeviceDB dbd:"
        fi
        STORE_BODY+=$line$'\n'
    done <<<"$1"
    [[ -n "$folder" ]] || return 0
    conninfo=$(store_pg_database "$folder") || die "store: no database for $folder"
    STORE_SERVER="LoadModule dbd_module $APACHE_MODDIR/mod_dbd.so
DBDriver pgsql
DBDParams \"$(cat "$conninfo")\""
}

# httpd_conf [--no-scep] [BODY]: writes the scratch ServerRoot and its httpd.conf; BODY
# (<Location> blocks and any other directives) is appended.  Call it as
# httpd_conf "$(scep_location ...)", not in a pipeline: it sets variables of this shell.
httpd_conf() {
    local load_scep=1 user="" body
    if [[ "${1:-}" == --no-scep ]]; then
        load_scep=0
        shift
    fi
    body=${1:-}
    STORE_SERVER=""
    if ! store_is_lmdb; then
        store_pg_rewrite "$body"
        body=$STORE_BODY
    fi
    HTTPD_ROOT="$T/httpd"
    ERROR_LOG="$HTTPD_ROOT/logs/error.log"
    ACCESS_LOG="$HTTPD_ROOT/logs/access.log"
    mkdir -p "$HTTPD_ROOT/logs" "$HTTPD_ROOT/run" "$HTTPD_ROOT/htdocs"
    # httpd's children (www-data when we are root) must be able to look up paths below
    # the document root; nothing else of the scratch folder is readable to them.
    chmod 711 "$T" "$HTTPD_ROOT"
    chmod 755 "$HTTPD_ROOT/htdocs"
    [[ -n "$PORT" ]] || PORT=$(free_port)
    if [[ $(id -u) == 0 ]]; then
        if id www-data >/dev/null 2>&1; then
            user=$'User www-data\nGroup www-data'
        else
            user=$'User nobody\nGroup nogroup'
        fi
    fi
    {
        cat <<EOF
# written by tests/integration/lib.sh for $T_NAME
ServerRoot "$HTTPD_ROOT"
ServerName 127.0.0.1
Listen 127.0.0.1:$PORT
LoadModule mpm_event_module $APACHE_MODDIR/mod_mpm_event.so
LoadModule authz_core_module $APACHE_MODDIR/mod_authz_core.so
EOF
        [[ -z "$STORE_SERVER" ]] || echo "$STORE_SERVER"
        if ((load_scep)); then
            echo "LoadModule scep_module $MOD_SCEP"
            echo "LogLevel notice scep:trace1"
        else
            echo "LogLevel notice"
        fi
        cat <<EOF
$user
PidFile "$HTTPD_ROOT/run/httpd.pid"
DefaultRuntimeDir "$HTTPD_ROOT/run"
Mutex file:$HTTPD_ROOT/run default
ErrorLog "$HTTPD_ROOT/logs/error.log"
CustomLog "$HTTPD_ROOT/logs/access.log" "%m %U %>s %{Content-Type}o %q"
DocumentRoot "$HTTPD_ROOT/htdocs"
LimitRequestLine 65536
LimitRequestFieldSize 65536
Timeout 20
StartServers 1
ServerLimit 2
ThreadsPerChild 8
MaxRequestWorkers 16
MinSpareThreads 1
MaxSpareThreads 16
<Directory />
    AllowOverride None
</Directory>
EOF
        printf '%s\n' "$body"
    } >"$HTTPD_ROOT/httpd.conf"
}

# httpd -t on the written configuration; output in $HTTPD_ROOT/configtest.out
httpd_configtest() {
    timeout 30 "${HTTPD_CMD[@]}" -t -f "$HTTPD_ROOT/httpd.conf" -d "$HTTPD_ROOT" \
        >"$HTTPD_ROOT/configtest.out" 2>&1
}

# Keeps the sanitizer reports in httpd's logs (see SANITIZER_REPORTS).  GCC's UBSan
# writes to stderr whatever its log_path says once ASan is loaded too, and the stderr of
# httpd's children is the error log, which httpd_start empties and t_cleanup removes.
sanitizer_scan() {
    [[ -n "${SANITIZER_REPORTS:-}" && -n "$HTTPD_ROOT" && -d "$HTTPD_ROOT" ]] || return 0
    local f
    while IFS= read -r f; do
        cp "$f" "$(mktemp "$SANITIZER_REPORTS/httpd-$T_NAME.XXXXXX")"
    done < <(grep -rlIE 'runtime error:|AddressSanitizer|LeakSanitizer' "$HTTPD_ROOT" || true)
}

# Starts httpd in the foreground (in the background of this shell) and waits, at most
# 5 s, until it answers.  Returns 1 (after a FAIL) when it exits or never answers.
httpd_start() {
    sanitizer_scan
    : >"$ERROR_LOG"
    "${HTTPD_CMD[@]}" -f "$HTTPD_ROOT/httpd.conf" -d "$HTTPD_ROOT" -DFOREGROUND \
        >"$HTTPD_ROOT/stdout" 2>"$HTTPD_ROOT/stderr" &
    HTTPD_PID=$!
    local code i
    for i in $(seq 50); do
        if ! kill -0 "$HTTPD_PID" 2>/dev/null; then
            wait "$HTTPD_PID" || true
            HTTPD_PID=""
            fail "httpd exited during startup"
            sed 's/^/       | /' "$HTTPD_ROOT/stderr" "$ERROR_LOG" | tail -20
            return 1
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
            "http://127.0.0.1:$PORT/harness-ready-check" 2>/dev/null) || true
        if [[ "$code" != 000 && -n "$code" ]]; then
            return 0
        fi
        sleep 0.1
    done
    fail "httpd did not answer within 5 s"
    httpd_stop_quiet
    return 1
}

# Stops httpd (SIGTERM, at most 10 s); returns 1 unless it stopped cleanly with status 0.
httpd_stop() {
    [[ -n "$HTTPD_PID" ]] || return 0
    local pid=$HTTPD_PID rc=0 i
    HTTPD_PID=""
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        echo "httpd did not stop within 10 s" >&2
        return 1
    fi
    wait "$pid" || rc=$?
    if ((rc != 0)); then
        echo "httpd exited with status $rc" >&2
        return 1
    fi
    return 0
}

httpd_stop_quiet() { httpd_stop >/dev/null 2>&1 || true; }

# httpd_restart: stop and start with the configuration now written
httpd_restart() {
    httpd_stop || fail "httpd did not stop cleanly"
    httpd_start
}

# httpd_graceful: SIGUSR1 with the configuration now written (what apache2ctl graceful
# sends), the error log emptied first; waits at most 10 s for the new generation (AH00489)
httpd_graceful() {
    : >"$ERROR_LOG"
    kill -USR1 "$HTTPD_PID"
    for _ in $(seq 100); do
        grep -q 'AH00489' "$ERROR_LOG" && break
        sleep 0.1
    done
}

# check_error_log [ERE ...]: fails unless every line of the error log is expected.
# Always expected: httpd's own start/stop notices, trace lines of mod_scep, and mod_scep
# lines carrying a SCEPnnnnn tag at info/notice/debug.  Warnings and errors (ours or
# anyone's), crashes and untagged messages must match one of the given patterns.
check_error_log() {
    local line pat ok bad=0
    local base=(
        '\[mpm_event:notice\] .*AH00489: '   # configured -- resuming normal operations
        '\[core:notice\] .*AH00094: '        # Command line
        '\[mpm_event:notice\] .*AH00491: '   # caught SIGTERM, shutting down
        '\[scep:trace[1-8]\] '
        "\\[scep:(debug|info|notice)\\] .*$TAG_RE"
    )
    while IFS= read -r line; do
        ok=0
        for pat in "${base[@]}" "$@"; do
            if [[ "$line" =~ $pat ]]; then
                ok=1
                break
            fi
        done
        if ((ok == 0)); then
            ((bad == 0)) && fail "unexpected lines in the error log:"
            bad=$((bad + 1))
            printf '       | %s\n' "$line"
        fi
    done <"$ERROR_LOG"
    ((bad == 0)) && pass "error log holds only expected lines"
    return 0
}

# expect_log ERE WHAT: at least one error log line matches
expect_log() {
    if grep -qE -- "$1" "$ERROR_LOG"; then
        pass "$2"
    else
        fail "$2: no error log line matches /$1/"
    fi
}

# expect_log_lacks FIXED-STRING WHAT
expect_log_lacks() {
    if grep -qF -- "$1" "$ERROR_LOG"; then
        fail "$2: the error log contains it:"
        grep -nF -- "$1" "$ERROR_LOG" | head -5 | sed 's/^/       | /'
    else
        pass "$2"
    fi
}

# ---- a forward proxy (tinyproxy, foreground, loopback only) ------------------------------

# proxy_conf NAME PORT [extra line]: $PX/NAME.conf, logging to $PX/NAME.log
proxy_conf() {
    PX=$T/proxy
    mkdir -p "$PX"
    # tinyproxy drops to nobody before it opens its log
    chmod 711 "$T"
    chmod 777 "$PX"
    cat >"$PX/$1.conf" <<CONF
Port $2
Listen 127.0.0.1
Timeout 30
LogFile "$PX/$1.log"
LogLevel Info
PidFile "$PX/$1.pid"
MaxClients 40
Allow 127.0.0.1
${3:-}
CONF
    if [[ $(id -u) == 0 ]]; then
        printf 'User nobody\nGroup nogroup\n' >>"$PX/$1.conf"
    fi
}

# proxy_start NAME: runs it and waits (at most 5 s) until it accepts connections
proxy_start() {
    local port tinyproxy
    tinyproxy=$(command -v tinyproxy) || die "tinyproxy is not installed"
    port=$(sed -n 's/^Port //p' "$PX/$1.conf")
    timeout 600 "$tinyproxy" -d -c "$PX/$1.conf" >>"$PX/$1.out" 2>&1 &
    eval "PROXY_PID_$1=$!"
    at_exit "kill $! 2>/dev/null || true"
    for _ in $(seq 50); do
        nc -z 127.0.0.1 "$port" 2>/dev/null && return 0
        sleep 0.1
    done
    fail "tinyproxy $1 did not start: $(tail -3 "$PX/$1.out")"
    return 1
}

# proxy_stop NAME
proxy_stop() {
    local pid_var="PROXY_PID_$1"
    kill "${!pid_var}" 2>/dev/null || true
    wait "${!pid_var}" 2>/dev/null || true
}

# ---- HTTP (curl, bounded) -------------------------------------------------------------

URL_BASE() { echo "http://127.0.0.1:$PORT"; }

# http_get PATH?QUERY OUT [curl args...]: sets HTTP_CODE and HTTP_CTYPE
http_get() {
    local target=$1 out=$2 meta
    shift 2
    meta=$(curl -sS --max-time 30 -g -o "$out" -w '%{http_code}\n%{content_type}' "$@" \
        "http://127.0.0.1:$PORT$target") || true
    HTTP_CODE=$(sed -n 1p <<<"$meta")
    HTTP_CTYPE=$(sed -n 2p <<<"$meta")
}

# http_post PATH?QUERY INFILE OUT [curl args...]: binary body; sets HTTP_CODE, HTTP_CTYPE
http_post() {
    local target=$1 in=$2 out=$3 meta
    shift 3
    meta=$(curl -sS --max-time 30 -g -o "$out" -w '%{http_code}\n%{content_type}' \
        --data-binary "@$in" "$@" "http://127.0.0.1:$PORT$target") || true
    HTTP_CODE=$(sed -n 1p <<<"$meta")
    HTTP_CTYPE=$(sed -n 2p <<<"$meta")
}

# ---- a webhook receiver (webhook_server.py) ----------------------------------------------

# webhook_start SECRETFILE RECORD STATE CHALLENGE [SLEEP]: the test validator and notify
# receiver in the background (its arguments: see webhook_server.py), stopped at exit; its
# base URL in HOOK
webhook_start() {
    python3 "$LIB_DIR/webhook_server.py" "$1" "$2" "$T/hook.port" "$3" \
        "$4" ${5:+"$5"} >"$T/hook.log" 2>&1 &
    HOOK_PID=$!
    at_exit "kill $HOOK_PID 2>/dev/null; wait $HOOK_PID 2>/dev/null"
    local _
    for _ in $(seq 1 100); do
        [[ -s "$T/hook.port" ]] && break
        sleep 0.1
    done
    [[ -s "$T/hook.port" ]] || die "the webhook server did not start"
    HOOK="http://127.0.0.1:$(cat "$T/hook.port")"
}

# ---- scep_probe -------------------------------------------------------------------------

probe() { timeout 60 "$SCEP_PROBE" "$@"; }

# b64_encode ENCODING < DER: the GET message parameter in one of the encodings clients use
#   std      standard base64, + / = percent-encoded
#   plus     standard base64, '+' left literal, / and = percent-encoded
#   lines64  64-column lines joined with %0A, + / = percent-encoded (Cisco IOS, sscep)
#   urlsafe  URL-safe alphabet (- _), no padding
#   macos    only '=' escaped
b64_encode() {
    case $1 in
        std) base64 -w0 | sed 's/+/%2B/g; s|/|%2F|g; s/=/%3D/g' ;;
        plus) base64 -w0 | sed 's|/|%2F|g; s/=/%3D/g' ;;
        lines64) base64 -w64 | sed 's/+/%2B/g; s|/|%2F|g; s/=/%3D/g' \
                     | awk 'BEGIN { ORS = "" } NR > 1 { print "%0A" } { print }' ;;
        urlsafe) base64 -w0 | tr '+/' '-_' | tr -d '=' ;;
        macos) base64 -w0 | sed 's/=/%3D/g' ;;
        *) die "unknown encoding $1" ;;
    esac
}

# probe_request NAME RECIPIENT [probe request options]: $T/NAME.req and $T/NAME.nonce;
# the device key is $T/NAME.key (made, 2048 bits, if absent).  Sets REQ_TXID.
probe_request() {
    local name=$1 recipient=$2 out
    shift 2
    [[ -f "$T/$name.key" ]] || make_key "$T/$name.key" 2048
    out=$(probe request --recipient "$recipient" --key "$T/$name.key" \
        --subject "/CN=$name/O=mod_scep tests" --out "$T/$name.req" \
        --nonce-out "$T/$name.nonce" "$@") || die "scep_probe request failed for $name"
    REQ_TXID=$(sed -n 's/^transactionID=//p' <<<"$out")
}

# send_request NAME LOCATION METHOD: POST or GET-<encoding> of $T/NAME.req to
# LOCATION?operation=PKIOperation; the answer in $T/NAME.rep
send_request() {
    local name=$1 loc=$2 method=$3
    case $method in
        POST)
            http_post "$loc?operation=PKIOperation" "$T/$name.req" "$T/$name.rep" ;;
        GET-*)
            local msg
            msg=$(b64_encode "${method#GET-}" <"$T/$name.req")
            http_get "$loc?operation=PKIOperation&message=$msg" "$T/$name.rep" ;;
        *) die "unknown method $method" ;;
    esac
}

# openssl_csr NAME CHALLENGE DN-LINES [EXTENSION-LINES [ATTRIBUTE-LINES]]: $T/NAME.csr.der,
# a PKCS#10 by openssl req with the key $T/NAME.key (made if absent) and the challenge;
# lines as in openssl.cnf (several CNs as 0.CN, 1.CN; further sections may follow the
# extension lines)
openssl_csr() {
    local name=$1 challenge=$2 dn=$3 ext=${4:-} attrs=${5:-}
    [[ -f "$T/$name.key" ]] || make_key "$T/$name.key" 2048
    {
        printf '[req]\nprompt = no\nutf8 = yes\ndistinguished_name = dn\nattributes = attrs\n'
        [[ -n "$ext" ]] && printf 'req_extensions = ext\n'
        printf '[attrs]\nchallengePassword = %s\n%s\n' "$challenge" "$attrs"
        printf '[dn]\n%s\n' "$dn"
        printf '[ext]\n%s\n' "$ext"
    } >"$T/$name.cnf"
    timeout 60 openssl req -new -key "$T/$name.key" -config "$T/$name.cnf" -outform DER \
        -out "$T/$name.csr.der" 2>"$T/$name.csr.err" \
        || die "openssl cannot make the request $name: $(head -3 "$T/$name.csr.err")"
}

# certmonger_private DIR: the environment of a private certmonger daemon keeping all its
# state under DIR (config, cas, requests, localca, tmp, lock), and DIR/out for its files
certmonger_private() {
    local c=$1
    export CERTMONGER_CONFIG_DIR=$c/config CERTMONGER_CAS_DIR=$c/cas \
        CERTMONGER_REQUESTS_DIR=$c/requests CERTMONGER_LOCAL_CA_DIR=$c/localca \
        CERTMONGER_TMPDIR=$c/tmp CERTMONGER_SYSTEM_LOCK_FILE=$c/lock
    mkdir -p "$c/config" "$c/cas" "$c/requests" "$c/localca" "$c/tmp" "$c/out"
}

# certmonger_enroll DIR URL CHALLENGE CA_NICKNAME [getcert request options...]: one enrollment
# by a private certmonger daemon on a private session bus (it sends GET); the key and the
# certificate go to DIR/out/key.pem and DIR/out/cert.pem.  Succeeds when `getcert request -w`
# did and the certificate was written; certmonger_said DIR shows what the daemon printed.
CM_DAEMON="" CM_DAEMON_HOOK=""
certmonger_enroll() {
    local c=$1 url=$2 chal=$3 ca=$4
    shift 4
    certmonger_private "$c"
    {
        printf 'timeout 60 getcert add-scep-ca -s -c %q -u %q\n' "$ca" "$url"
        printf 'echo "result add-scep-ca $?"\n'
        printf 'timeout 180 getcert request -s -c %q -f %q -k %q -L %q -w -v' "$ca" \
            "$c/out/cert.pem" "$c/out/key.pem" "$chal"
        printf ' %q' "$@"
        printf '\necho "result request $?"\n'
    } >"$c/inner.sh"
    timeout 300 dbus-run-session -- certmonger -s -n -B -c "bash $c/inner.sh" \
        >"$c/daemon.out" 2>&1 &
    CM_DAEMON=$!
    # once per test; cleared after the wait, so no later process of that pid is killed
    [[ -n $CM_DAEMON_HOOK ]] \
        || at_exit '[[ -z "$CM_DAEMON" ]] || kill "$CM_DAEMON" 2>/dev/null'
    CM_DAEMON_HOOK=1
    wait "$CM_DAEMON" || true
    CM_DAEMON=""
    [[ $(sed -n 's/^result request //p' "$c/daemon.out") == 0 && -s "$c/out/cert.pem" ]]
}

# certmonger_said DIR [LINES]: the last lines the daemon of certmonger_enroll printed
certmonger_said() {
    grep -v '^dbus-daemon' "$1/daemon.out" | tail -"${2:-30}" | sed 's/^/       | /'
}

# probe_reply NAME SIGNER: parses $T/NAME.rep into $T/NAME.out (key=value lines);
# on SUCCESS the certificate is $T/NAME.pem.  Returns the probe's status.
probe_reply() {
    local name=$1 signer=$2 rc=0
    probe reply --in "$T/$name.rep" --signer "$signer" --key "$T/$name.key" \
        --cert "$T/$name.selfsigned.pem" --nonce "$T/$name.nonce" --cert-out "$T/$name.pem" \
        >"$T/$name.out" 2>"$T/$name.err" || rc=$?
    return $rc
}

# field NAME KEY: a value from $T/NAME.out
field() { sed -n "s/^$2=//p" "$T/$1.out" | head -1; }

# enroll NAME LOCATION METHOD SIGNER CAPEM RECIPIENT [probe request options]: a complete
# enrollment expected to succeed; checks status, nonce, transactionID, signingTime and
# the certificate against CAPEM.  Returns 1 when it did not succeed.
enroll() {
    local name=$1 loc=$2 method=$3 signer=$4 capem=$5 recipient=$6
    shift 6
    probe_enrollment_request "$name" "$recipient" "$@"
    send_request "$name" "$loc" "$method"
    check_success "$name" "$signer" "$capem" "$method"
}

# probe_enrollment_request NAME RECIPIENT [options]: like probe_request, but signs with a
# self-signed certificate kept in $T/NAME.selfsigned.pem so the reply can be decrypted
probe_enrollment_request() {
    local name=$1 recipient=$2
    shift 2
    [[ -f "$T/$name.key" ]] || make_key "$T/$name.key" 2048
    timeout 60 openssl req -x509 -new -key "$T/$name.key" -subj "/CN=$name-selfsigned" \
        -days 2 -out "$T/$name.selfsigned.pem" 2>/dev/null || die "cannot make $name's self-signed cert"
    probe_request "$name" "$recipient" --cert "$T/$name.selfsigned.pem" "$@"
}

# check_success NAME SIGNER CAPEM WHAT
check_success() {
    local name=$1 signer=$2 capem=$3 what=$4
    if [[ "$HTTP_CODE" != 200 ]]; then
        fail "$name $what: HTTP $HTTP_CODE (expected 200)"
        head -c 300 "$T/$name.rep" | sed 's/^/       | /'
        echo
        return 1
    fi
    if [[ "$HTTP_CTYPE" != application/x-pki-message ]]; then
        fail "$name $what: Content-Type '$HTTP_CTYPE'"
        return 1
    fi
    if ! probe_reply "$name" "$signer"; then
        fail "$name $what: the CertRep does not parse:"
        sed 's/^/       | /' "$T/$name.err" "$T/$name.out"
        return 1
    fi
    local status
    status=$(field "$name" pkiStatus)
    if [[ "$status" != 0 ]]; then
        fail "$name $what: pkiStatus=$status failInfo=$(field "$name" failInfo) ($(field "$name" failInfoText))"
        return 1
    fi
    local problems=""
    [[ $(field "$name" messageType) == 3 ]] || problems+=" messageType=$(field "$name" messageType)"
    [[ $(field "$name" recipientNonce) == ok ]] || problems+=" recipientNonce=$(field "$name" recipientNonce)"
    [[ $(field "$name" senderNonce.len) == 16 ]] || problems+=" senderNonce.len=$(field "$name" senderNonce.len)"
    [[ $(field "$name" signingTime) == present ]] || problems+=" signingTime=$(field "$name" signingTime)"
    [[ $(field "$name" transactionID) == "$REQ_TXID" ]] || problems+=" transactionID=$(field "$name" transactionID)"
    if ! timeout 30 openssl verify -CAfile "$capem" "$T/$name.pem" >"$T/$name.verify" 2>&1; then
        problems+=" verify: $(tr '\n' ' ' <"$T/$name.verify")"
    fi
    if [[ -n "$problems" ]]; then
        fail "$name $what: SUCCESS but$problems"
        return 1
    fi
    pass "$name $what: certificate issued and verified"
    return 0
}

# expect_failure NAME SIGNER FAILINFO WHAT: a signed CertRep FAILURE with that failInfo
expect_failure() {
    local name=$1 signer=$2 want=$3 what=$4
    if [[ "$HTTP_CODE" != 200 || "$HTTP_CTYPE" != application/x-pki-message ]]; then
        fail "$what: HTTP $HTTP_CODE '$HTTP_CTYPE', expected 200 application/x-pki-message"
        head -c 300 "$T/$name.rep" | sed 's/^/       | /'
        echo
        return 1
    fi
    if ! probe_reply "$name" "$signer"; then
        fail "$what: the CertRep does not parse:"
        sed 's/^/       | /' "$T/$name.err" "$T/$name.out"
        return 1
    fi
    local got="pkiStatus=$(field "$name" pkiStatus) failInfo=$(field "$name" failInfo)"
    local extra=""
    [[ $(field "$name" messageType) == 3 ]] || extra+=" messageType=$(field "$name" messageType)"
    [[ $(field "$name" recipientNonce) == ok ]] || extra+=" recipientNonce=$(field "$name" recipientNonce)"
    [[ $(field "$name" transactionID) == "$REQ_TXID" ]] || extra+=" transactionID=$(field "$name" transactionID)"
    [[ $(field "$name" signingTime) == present ]] || extra+=" signingTime=$(field "$name" signingTime)"
    [[ $(field "$name" senderNonce.len) == 16 ]] || extra+=" senderNonce.len=$(field "$name" senderNonce.len)"
    if [[ "$got" != "pkiStatus=2 failInfo=$want" ]]; then
        fail "$what: $got ($(field "$name" failInfoText)), expected pkiStatus=2 failInfo=$want"
        return 1
    fi
    if [[ -n "$extra" ]]; then
        fail "$what: FAILURE $want but$extra"
        return 1
    fi
    pass "$what: FAILURE failInfo=$want ($(field "$name" failInfoText))"
}

# scep_location PATH PKIDIR ra|nora [DIRECTIVE-LINE ...]: a <Location> serving SCEP from
# the CA in PKIDIR (and its RA unless nora)
scep_location() {
    local path=$1 dir=$2 ra=$3 line
    shift 3
    echo "<Location $path>"
    echo "    SetHandler scep"
    echo "    ScepCACertificateFile \"$dir/ca.pem\""
    echo "    ScepCAKeyFile \"$dir/ca.key\""
    if [[ "$ra" == ra ]]; then
        echo "    ScepRACertificateFile \"$dir/ra.pem\""
        echo "    ScepRAKeyFile \"$dir/ra.key\""
    fi
    for line in "$@"; do
        echo "    $line"
    done
    echo "    Require all granted"
    echo "</Location>"
}

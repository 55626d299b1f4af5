#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/package/t_package.sh: the Debian packages on the system's own Apache, as an
# operator uses them.  Builds libapache2-mod-scep and scep-tools (dpkg-buildpackage, in a
# copy of the distribution), installs them, checks the module is enabled and the man pages
# are there, makes a CA with `scepreg pki init`, pastes the <Location> it prints into a
# site on 127.0.0.1:PORT, starts the system's apache2, reloads it with the site and enrolls
# with strongSwan; installs the same packages again (the upgrade path of the maintainer
# scripts) and enrolls again; then removes and purges them and checks that the device
# database and the keys are still there, byte for byte, and that /etc/apache2 is as it was.
#
# It changes the machine, so it runs as root only (tests/check.sh runs it on CI's
# throwaway machine, as its own step) and refuses to start unless the packages are absent,
# no mod_scep is installed by hand, and the system's apache2 is stopped; at exit, passed or
# not, it stops apache2, purges the packages and removes its own site, keys and database,
# leaving the machine as it found it.  Every wait is bounded; the whole takes about 2 min.
#   bash tests/package/t_package.sh          (from a configured tree)
source "$(dirname "$0")/../integration/lib.sh"

[[ $(id -u) == 0 ]] || { echo "t_package: run as root (it installs packages)" >&2; exit 1; }
for tool in dpkg-buildpackage dpkg apache2ctl a2ensite a2dissite pki curl man; do
    command -v "$tool" >/dev/null || { echo "t_package: $tool is missing" >&2; exit 1; }
done
[[ -f Makefile && -d debian ]] || { echo "t_package: run from a configured tree" >&2; exit 1; }

t_init
NAME=scep-t-package
KEYS=/etc/apache2/$NAME
DB=/var/lib/scep/$NAME-devices
SITE=/etc/apache2/sites-available/$NAME.conf
PORT=$(free_port)
URL="http://127.0.0.1:$PORT/$NAME"
PACKAGES=(libapache2-mod-scep scep-tools)

# ---- the machine as found ------------------------------------------------------------
for p in "${PACKAGES[@]}"; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'installed\|config-files'; then
        die "$p is installed already: this test could not leave the machine as it found it"
    fi
done
for f in /usr/lib/apache2/modules/mod_scep.so /etc/apache2/mods-available/scep.load \
         /etc/apache2/mods-available/scep.conf "$KEYS" "$DB" "$SITE"; do
    [[ ! -e "$f" ]] || die "$f exists (a make install, or an earlier run): remove it first"
done
# the system's apache2 by its pid file: other tests run apache2 processes of their own
APACHE_PID_FILE=$(set +u; unset APACHE_CONFDIR
                  . /etc/apache2/envvars && echo "$APACHE_PID_FILE")
[[ -n "$APACHE_PID_FILE" ]] || die "/etc/apache2/envvars names no APACHE_PID_FILE"
apache_running() {
    local pid
    pid=$(cat "$APACHE_PID_FILE" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}
apache_running && die "the system's apache2 runs: stop it first (the test leaves it as found)"
if ss -Htln 'sport = :80' | grep -q .; then
    die "port 80 is taken: the system's apache2 (Listen 80 in ports.conf) could not start"
fi
VAR_LIB_SCEP_WAS=$([[ -e /var/lib/scep ]] && echo yes || echo no)
etc_listing() { find /etc/apache2 -path "$KEYS" -prune -o -printf '%p %y %m %l\n' | sort; }
etc_listing >"$T/etc-before"

apache_stop() {
    local i
    apache_running || return 0
    timeout 30 apache2ctl -k stop >/dev/null 2>&1 || true
    for ((i = 0; i < 120; i++)); do
        apache_running || return 0
        sleep 0.25
    done
    return 1
}
# put everything back, whatever happened; runs at exit (lib.sh's hooks)
restore() {
    apache_stop || echo "t_package: apache2 did not stop" >&2
    [[ ! -e /etc/apache2/sites-enabled/$NAME.conf ]] || a2dissite -q "$NAME" >/dev/null 2>&1
    rm -f "$SITE"
    DEBIAN_FRONTEND=noninteractive timeout 120 dpkg --purge "${PACKAGES[@]}" >/dev/null 2>&1 \
        || true
    rm -rf "$KEYS" "$DB"
    if [[ $VAR_LIB_SCEP_WAS == no ]]; then rmdir /var/lib/scep 2>/dev/null || true; fi
}
at_exit restore

# ---- build ------------------------------------------------------------------------------
SCRIPT=t_package
# shellcheck source=../scratch-copy.sh
source tests/scratch-copy.sh
scratch_copy package
trap t_cleanup EXIT         # scratch_copy set its own: lib.sh's runs the hooks, restore first
at_exit 'rm -rf "$WORK"'
start=$SECONDS
if (cd "$WORK/src" && timeout 900 dpkg-buildpackage -us -uc -b) >"$T/build.log" 2>&1; then
    pass "dpkg-buildpackage -us -uc -b ($((SECONDS - start)) s)"
else
    tail -30 "$T/build.log" | sed 's/^/       | /'
    die "dpkg-buildpackage failed"
fi
VERSION=$(dpkg-parsechangelog -l debian/changelog -S Version)
ARCH=$(dpkg --print-architecture)
DEBS=("$WORK/libapache2-mod-scep_${VERSION}_$ARCH.deb" "$WORK/scep-tools_${VERSION}_$ARCH.deb")
for d in "${DEBS[@]}"; do [[ -f "$d" ]] || die "not built: $d"; done
if command -v lintian >/dev/null; then
    timeout 300 lintian "$WORK/mod-scep_${VERSION}_$ARCH.changes" >"$T/lintian.out" 2>&1 || true
    expect_eq "$(grep -c '^E: ' "$T/lintian.out")" 0 "lintian: no errors"
fi

# ---- install --------------------------------------------------------------------------
install_debs() {
    DEBIAN_FRONTEND=noninteractive timeout 300 dpkg -i "${DEBS[@]}" >"$T/$1.log" 2>&1 \
        || { sed 's/^/       | /' "$T/$1.log" | tail -20; die "dpkg -i ($1) failed"; }
    pass "dpkg -i ($1)"
}
install_debs install
expect_eq "$(readlink /etc/apache2/mods-enabled/scep.load)" ../mods-available/scep.load \
    "the module is enabled (mods-enabled/scep.load)"
[[ -x /usr/sbin/scepreg && -x /usr/bin/scepload ]] \
    && pass "scepreg in /usr/sbin, scepload in /usr/bin" \
    || fail "scepreg or scepload missing"
for page in scepreg.8 scepload.1 mod_scep.8; do
    sec=${page##*.}
    expect_eq "$(man -w "$sec" "${page%.*}" 2>&1)" "/usr/share/man/man$sec/$page.gz" \
        "man $sec ${page%.*}"
done
expect_eq "$(stat -c '%a %U' /var/lib/scep)" "755 root" "/var/lib/scep: 0755 root"

# ---- the operator's path: a CA, a site, a reload, an enrollment -----------------------------
timeout 60 /usr/sbin/scepreg pki init --location "/$NAME" --db "$DB" "$KEYS" \
    >"$T/location.conf" 2>"$T/pki.err" || die "scepreg pki init: $(cat "$T/pki.err")"
expect_eq "$(stat -c '%a %U' "$KEYS" "$KEYS/ca.key" "$KEYS/ra.key" | tr '\n' ' ')" \
    "700 root 600 root 600 root " "pki init: keys 0600 root in a 0700 folder"
CHAL=$(openssl rand -hex 12)
timeout 60 /usr/sbin/scepreg -c -o www-data -b "$DB" '*.example.org' "$CHAL" \
    >/dev/null 2>"$T/reg.err" \
    || die "scepreg could not register *.example.org: $(cat "$T/reg.err")"
timeout 60 apache2ctl -k start >"$T/start.log" 2>&1 \
    || die "apache2ctl start: $(cat "$T/start.log")"
for ((i = 0; i < 40; i++)); do apache_running && break; sleep 0.25; done
apache_running && pass "the system's apache2 started with mod_scep enabled" \
    || die "apache2 did not start: $(tail -5 /var/log/apache2/error.log 2>/dev/null)"
{
    echo "# written by tests/package/t_package.sh"
    echo "Listen 127.0.0.1:$PORT"
    echo "<VirtualHost 127.0.0.1:$PORT>"
    echo "    ServerName 127.0.0.1"
    cat "$T/location.conf"
    echo "</VirtualHost>"
} >"$SITE"
a2ensite -q "$NAME" >/dev/null
timeout 30 apache2ctl configtest >"$T/configtest.log" 2>&1 \
    && pass "apache2ctl configtest with the printed <Location>" \
    || { sed 's/^/       | /' "$T/configtest.log"; die "configtest failed"; }
timeout 30 apache2ctl -k graceful >/dev/null 2>&1 || die "apache2ctl graceful failed"

# caps_answer: GetCACaps once the reloaded server listens (bounded)
caps_answer() {
    local i
    for ((i = 0; i < 60; i++)); do
        if timeout 5 curl -fsS "$URL?operation=GetCACaps" >"$T/caps" 2>/dev/null; then
            return 0
        fi
        sleep 0.25
    done
    return 1
}
# swan TAG: pki --scepca and --scep; the certificate must verify under the CA made above
swan() {
    local d=$T/swan-$1 rc=0
    mkdir -p "$d"
    caps_answer || { fail "$1: GetCACaps at $URL never answered"; return; }
    timeout 60 pki --scepca --url "$URL" --caout "$d/ca.der" --raout "$d/ra.der" --force \
        >"$d/scepca.out" 2>&1 || rc=$?
    [[ -f "$d/ra.der" ]] || { [[ -f "$d/ra-1.der" ]] && cp "$d/ra-1.der" "$d/ra.der"; }
    timeout 120 pki --gen --type rsa --size 2048 --outform pem >"$d/key.pem" 2>/dev/null \
        || { fail "$1: pki --gen"; return; }
    timeout 120 pki --scep --url "$URL" --in "$d/key.pem" --dn "CN=$1.example.org" \
        --password "$CHAL" --cacert-enc "$d/ra.der" --cacert-sig "$d/ra.der" \
        --cacert "$d/ca.der" --outform pem >"$d/cert.pem" 2>"$d/scep.err" || rc=$?
    if ((rc == 0)) \
        && timeout 30 openssl verify -CAfile "$KEYS/ca.pem" "$d/cert.pem" >/dev/null 2>&1; then
        pass "$1: strongSwan enrolled on the system's apache2; the certificate verifies"
    else
        fail "$1: strongSwan: exit $rc"
        grep -v -e plugin -e TPM "$d/scepca.out" "$d/scep.err" | sed 's/^/       | /' | tail -15
    fi
}
swan first

# ---- upgrade: the same packages again, over themselves ---------------------------------
install_debs upgrade
expect_eq "$(readlink /etc/apache2/mods-enabled/scep.load)" ../mods-available/scep.load \
    "after the upgrade: the module is still enabled"
swan after-upgrade

# ---- remove and purge: the keys and the database stay ---------------------------------
apache_stop && pass "apache2 stopped" || fail "apache2 did not stop within 30 s"
a2dissite -q "$NAME" >/dev/null
rm -f "$SITE"
kept() { sha256sum "$KEYS"/ca.key "$KEYS"/ca.pem "$KEYS"/ra.key "$KEYS"/ra.pem "$DB"/data.mdb; }
kept >"$T/kept-before"
expect_match "$(timeout 30 /usr/sbin/scepreg -L "$DB" 2>&1 | grep -c 'example.org')" '^[2-9]' \
    "the database holds the enrolled certificates"
DEBIAN_FRONTEND=noninteractive timeout 120 dpkg --remove "${PACKAGES[@]}" \
    >"$T/remove.log" 2>&1 \
    && pass "dpkg --remove" || fail "dpkg --remove: $(tail -5 "$T/remove.log")"
[[ ! -e /etc/apache2/mods-enabled/scep.load ]] && pass "after remove: the module is disabled" \
    || fail "after remove: mods-enabled/scep.load is still there"
expect_eq "$(kept | diff - "$T/kept-before" && echo same)" same \
    "after remove: keys and database unchanged"
DEBIAN_FRONTEND=noninteractive timeout 120 dpkg --purge "${PACKAGES[@]}" >"$T/purge.log" 2>&1 \
    && pass "dpkg --purge" || fail "dpkg --purge: $(tail -5 "$T/purge.log")"
expect_eq "$(kept | diff - "$T/kept-before" && echo same)" same \
    "after purge: keys and database unchanged"
expect_eq "$(stat -c '%a' "$KEYS/ca.key" "$KEYS/ra.key" | tr '\n' ' ')" "600 600 " \
    "after purge: the keys keep mode 0600"
for f in /etc/apache2/mods-available/scep.load /etc/apache2/mods-available/scep.conf \
         /usr/lib/apache2/modules/mod_scep.so /usr/sbin/scepreg /usr/bin/scepload; do
    [[ ! -e "$f" ]] || fail "after purge: $f is still there"
done
pass "after purge: the packages' own files are gone"
etc_listing >"$T/etc-after"
if diff -u "$T/etc-before" "$T/etc-after" >"$T/etc.diff"; then
    pass "after purge: /etc/apache2 is as it was (apart from the keys folder the test made)"
else
    fail "after purge: /etc/apache2 differs:"
    sed 's/^/       | /' "$T/etc.diff" | head -20
fi
t_done

#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# conf-examples/demo.sh: build mod_scep from this checkout and serve a demo SCEP
# endpoint at http://127.0.0.1:8080/scep, issuing from a throw-away local CA.
#
# Meant for a fresh Debian 12 and run as root (sudo): it installs the build
# and runtime packages that are missing, builds the module in the source tree
# (it does not run "make install"), creates a demo CA, an RA certificate and a
# challenge password once, writes a private httpd configuration and runs
# Debian's Apache binary in the foreground until Ctrl-C.
#
# Running it again reuses the CA, RA and challenge, so enrolled test devices
# stay valid. Delete the state folder to start over.
#
# Environment:
#   SCEP_PORT       TCP port on 127.0.0.1 (default 8080)
#   SCEP_STATE_DIR  folder for keys, certificates and httpd files
#                   (default: demo-state/ at the top of the source tree;
#                   a relative path is taken from the current directory)
#   SCEP_DB_DIR     the device database (default: devices/ in the state folder,
#                   or a folder under /var/lib/mod_scep-demo/ when www-data
#                   cannot reach the state folder)
#
# The demo CA key lies unencrypted in the state folder: never use it for
# anything but tests.

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
PORT=${SCEP_PORT:-8080}
STATE=${SCEP_STATE_DIR:-$REPO/demo-state}
HTTPD=/usr/sbin/apache2
MODDIR=/usr/lib/apache2/modules
PACKAGES=(build-essential autoconf automake libtool pkg-config apache2 apache2-dev
          libapr1-dev libaprutil1-dev libssl-dev liblmdb-dev libcurl4-openssl-dev openssl)

say() { printf 'demo.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

if ! [[ $PORT =~ ^[1-9][0-9]{0,4}$ ]] || (( PORT > 65535 )); then
    die "SCEP_PORT must be a port number from 1 to 65535, not '$PORT'"
fi
# A relative SCEP_STATE_DIR is taken from the current directory. The path is
# substituted into an Apache configuration, so keep it plain.
STATE=$(realpath -m "$STATE")
[[ $STATE =~ ^[A-Za-z0-9/._+-]+$ ]] \
    || die "SCEP_STATE_DIR '$STATE' must not contain spaces or special characters"
IS_ROOT=0
[ "$(id -u)" = 0 ] && IS_ROOT=1

# ---- 1. packages -----------------------------------------------------------------
missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$pkg")
    fi
done
if (( ${#missing[@]} )); then
    (( IS_ROOT )) || die "missing packages: ${missing[*]}; run me as root (sudo) to install them"
    say "installing ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# ---- 2. build (in the source tree; the module is loaded from .libs/) -------------
cd "$REPO"
if [ ! -x configure ]; then
    say "running autoreconf -fi"
    autoreconf -fi >&2
fi
if [ ! -f Makefile ]; then
    say "running ./configure"
    ./configure >&2
fi
# Only the module: the demo needs nothing else, and the test programs take longer.
# Build chatter goes to stderr so that stdout carries the url:/challenge: lines.
say "running make mod_scep.la scepreg"
make -j"$(nproc)" mod_scep.la scepreg >&2
MODULE=$REPO/.libs/mod_scep.so
SCEPREG=$REPO/scepreg
[ -f "$MODULE" ] || die "the build did not produce $MODULE"
[ -x "$SCEPREG" ] || die "the build did not produce $SCEPREG"

# ---- 3. state folder: CA, RA, challenge (created once, then reused) --------------
mkdir -p "$STATE"
# The httpd children (user www-data) need to reach nothing in here today: the
# parent reads the keys and the configuration as root and opens the logs before
# it switches user. The folders stay world-readable so that later state (the
# device database) can be handed to www-data; the keys stay 0600 root.
mkdir -p "$STATE/run" "$STATE/logs" "$STATE/htdocs"
chmod 755 "$STATE" "$STATE/run" "$STATE/logs" "$STATE/htdocs"
cd "$STATE"

# The CA and RA come from scepreg's one-command set-up (docs/scepreg.md, "pki init"), as
# an operator would make them; it never replaces a file, so a half-made set is cleared
# first. Its <Location> output is not needed here (the configuration below is the
# example's), so it goes to logs/pki-init.out.
demo_pki=(--key-type rsa:2048 --ca-name "mod_scep demo CA" --ra-name "mod_scep demo RA"
          --ca-days 3650 --ra-days 1825)
if [ ! -s ca.key ] || [ ! -s ca.pem ]; then
    say "creating the demo CA in $STATE"
    rm -f ca.key ca.pem ra.key ra.pem
    "$SCEPREG" pki init "${demo_pki[@]}" "$STATE" > logs/pki-init.out \
        || die "scepreg pki init could not make the demo CA and RA"
elif [ ! -s ra.key ] || [ ! -s ra.pem ]; then
    say "creating the demo RA certificate in $STATE"
    rm -f ra.key ra.pem
    "$SCEPREG" pki init "${demo_pki[@]}" --ca-cert "$STATE/ca.pem" --ca-key "$STATE/ca.key" \
        "$STATE" > logs/pki-init.out || die "scepreg pki init could not make the demo RA"
fi
chmod 600 ca.key ra.key
chmod 644 ca.pem ra.pem
if [ ! -s challenge ]; then
    (umask 077 && openssl rand -hex 16 > challenge)
fi
chmod 600 challenge
CHALLENGE=$(tr -d '[:space:]' < challenge)
[[ $CHALLENGE =~ ^[A-Za-z0-9._~+/=-]+$ ]] \
    || die "$STATE/challenge must hold one word of letters, digits and ._~+/=-"
# The MDM-style endpoint has a challenge of its own, as an MDM's profile would.
if [ ! -s mdm-challenge ]; then
    (umask 077 && openssl rand -hex 16 > mdm-challenge)
fi
chmod 600 mdm-challenge
MDM_CHALLENGE=$(tr -d '[:space:]' < mdm-challenge)
[[ $MDM_CHALLENGE =~ ^[A-Za-z0-9._~+/=-]+$ ]] \
    || die "$STATE/mdm-challenge must hold one word of letters, digits and ._~+/=-"

# ---- 4. httpd configuration --------------------------------------------------------
PIDFILE=$STATE/run/httpd.pid
if [ -s "$PIDFILE" ]; then
    oldpid=$(cat "$PIDFILE")
    if [[ $oldpid =~ ^[0-9]+$ ]] && kill -0 "$oldpid" 2>/dev/null; then
        die "Apache from an earlier run is still serving this state folder (pid $oldpid); stop it first"
    fi
    rm -f "$PIDFILE"
fi

# The SCEP part comes from the small example, with our paths. httpd's children run as
# www-data and must reach the database: a state folder under /root (mode 0700) is out
# of their reach, so the database then lives under /var/lib instead.
DB=${SCEP_DB_DIR:-$STATE/devices}
if (( IS_ROOT )) && [ -z "${SCEP_DB_DIR:-}" ] \
        && ! runuser -u www-data -- test -x "$STATE" 2>/dev/null; then
    DB=/var/lib/mod_scep-demo/$(printf '%s' "$STATE" | sha256sum | cut -c1-12)/devices
    say "www-data cannot reach $STATE; the device database goes to $DB"
fi
mkdir -p "$(dirname "$DB")"
sed -e "s#/etc/apache2/scep/#$STATE/#g" -e "s#/var/lib/scep/devices#$DB#g" \
    "$REPO/conf-examples/scep-minimal.conf" > scep.conf.new
if ! grep -q "ScepCAKeyFile[[:space:]]*$STATE/ca.key" scep.conf.new \
        || ! grep -q "ScepDeviceDB[[:space:]]*$DB\$" scep.conf.new \
        || ! grep -q "^[[:space:]]*RequestReadTimeout .*body=" scep.conf.new; then
    die "conf-examples/scep-minimal.conf no longer has the paths this script replaces, or its RequestReadTimeout"
fi
mv -f scep.conf.new scep.conf

# The MDM-style endpoint: devices named as an MDM profile names them (CN=%devicename%),
# with the user's e-mail, UPN and Intune SID URI kept by the template, and nothing else.
# The CA, RA and database are the /scep endpoint's; the registration below is of
# another kind (device names), so neither endpoint's challenge works at the other.
cat > scep-mdm.conf <<EOF
# Written by conf-examples/demo.sh on every run; see conf-examples/templates/ for more.
<Location /scep-mdm>
    SetHandler scep
    ScepCACertificateFile $STATE/ca.pem
    ScepCAKeyFile         $STATE/ca.key
    ScepRACertificateFile $STATE/ra.pem
    ScepRAKeyFile         $STATE/ra.key
    ScepDeviceDB          $DB
    # what the devices are: names as the profile writes them into the CN
    ScepIdentity device-name cn
    # what their certificates hold: that CN, the user's e-mail and UPN, the SID URI
    # (and from it the SID security extension), TLS client authentication.  A demo:
    # the request chooses the UPN and SID (SCEP00633 at startup says so), which a real
    # MDM endpoint binds with a validator (ScepValidateURL, docs/webhooks.md)
    ScepTemplate tls-client
    ScepTemplateSubject CN identity
    ScepTemplateSAN rfc822Name request
    ScepTemplateSAN upn request
    ScepTemplateSAN URI request 1 tag:microsoft.com,2022-09-14:sid:
    ScepTemplateUnlisted refuse
    Require all granted
</Location>
EOF

# A wildcard registration with the demo challenge lets any device name enroll, the way
# an NDES-style gateway does; single devices get registrations of their own.
"$SCEPREG" -c -i "$DB" '*' <<<"$CHALLENGE" >&2 \
    || die "scepreg could not register the demo wildcard in $DB"
# Every device name at /scep-mdm, with the MDM challenge (name:* covers no host).
"$SCEPREG" -c -i "$DB" 'name:*' <<<"$MDM_CHALLENGE" >&2 \
    || die "scepreg could not register the demo device-name wildcard in $DB"

{
    echo "# Written by conf-examples/demo.sh on every run; edit the script, not this file."
    echo "ServerRoot \"$STATE\""
    echo "ServerName 127.0.0.1"
    echo "Listen 127.0.0.1:$PORT"
    echo
    echo "LoadModule mpm_event_module $MODDIR/mod_mpm_event.so"
    echo "LoadModule authz_core_module $MODDIR/mod_authz_core.so"
    echo "# Closes the connections of clients that send too slowly (RequestReadTimeout"
    echo "# in scep.conf): 400 workers would otherwise be held by 400 slow clients."
    echo "LoadModule reqtimeout_module $MODDIR/mod_reqtimeout.so"
    echo "LoadModule scep_module \"$MODULE\""
    echo
    if (( IS_ROOT )); then
        echo "User www-data"
        echo "Group www-data"
    fi
    echo "PidFile \"$PIDFILE\""
    echo "DefaultRuntimeDir \"$STATE/run\""
    echo "Mutex file:$STATE/run default"
    echo
    echo "# Both logs go to this terminal."
    echo "ErrorLog /dev/stderr"
    echo "LogLevel warn scep:info reqtimeout:info"
    echo "LogFormat \"%h %m %U %>s %b %{ms}Tms scep=%{scep-outcome}n\" scep"
    echo "CustomLog /dev/stdout scep"
    echo
    echo "# Whole SCEP requests travel in GET query strings."
    echo "LimitRequestLine 65536"
    echo
    echo "DocumentRoot \"$STATE/htdocs\""
    echo "<Directory />"
    echo "    AllowOverride None"
    echo "    Require all denied"
    echo "</Directory>"
    echo
    echo "Include \"$STATE/scep.conf\""
    echo "Include \"$STATE/scep-mdm.conf\""
} > httpd.conf
chmod 644 httpd.conf

if ! "$HTTPD" -t -f "$STATE/httpd.conf" 2> logs/configtest.log; then
    cat logs/configtest.log >&2
    die "Apache refused the configuration $STATE/httpd.conf"
fi

# ---- 5. tell how to use it, then serve ----------------------------------------------
# GeneralNames for strongSwan's --san asn1gn:#HEX: an otherName UPN and a URI (DER in
# hex; both values stay below 128 bytes, so every length is one byte).
der_len() { printf '%02x' "$1"; }
utf8_hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }
UPN=john@example.org
SID_URI=tag:microsoft.com,2022-09-14:sid:S-1-5-21-1-2-3-1001
upn_value=0c$(der_len ${#UPN})$(utf8_hex "$UPN")
upn_explicit=a0$(der_len $(( ${#upn_value} / 2 )))$upn_value
upn_body=060a2b060104018237140203$upn_explicit
UPN_HEX=a0$(der_len $(( ${#upn_body} / 2 )))$upn_body
SID_HEX=86$(der_len ${#SID_URI})$(utf8_hex "$SID_URI")
URL="http://127.0.0.1:$PORT/scep"
MDM_URL="http://127.0.0.1:$PORT/scep-mdm"
cat <<EOF

mod_scep demo: state in $STATE
url: $URL
challenge: $CHALLENGE
db: $DB
mdm-url: $MDM_URL
mdm-challenge: $MDM_CHALLENGE

Check the server with curl:
  curl '$URL?operation=GetCACaps'
  curl -o ca-ra.p7b '$URL?operation=GetCACert'

Enroll with strongSwan (apt-get install strongswan-pki libstrongswan-extra-plugins):
  mkdir -p /tmp/scep-demo && cd /tmp/scep-demo
  pki --scepca --url $URL --caout ca.der --raout ra.der --force
  pki --gen --type rsa --size 2048 --outform pem > device.key
  pki --scep --url $URL --in device.key --dn "CN=device1.example.org" \\
      --password $CHALLENGE --cacert-enc ra.der --cacert-sig ra.der \\
      --cacert ca.der --outform pem > device.pem
  openssl x509 -in device.pem -noout -subject -issuer -enddate

The challenge above works for any device name (a wildcard registration). Register a
single device with a challenge of its own, while Apache runs:
  $SCEPREG -g $DB device2.example.org
  $SCEPREG -l $DB          # devices and their last certificate
  $SCEPREG -L $DB          # every certificate issued

The MDM-style endpoint enrolls device names with the user's e-mail, UPN and Intune SID
URI, as an MDM profile asks (the --san asn1gn: values are the UPN $UPN and the
URI $SID_URI, DER in hex):
  pki --gen --type rsa --size 2048 --outform pem > phone.key
  pki --scep --url $MDM_URL --in phone.key --dn "CN=John's iPhone" \\
      --san email:$UPN --san asn1gn:#$UPN_HEX --san asn1gn:#$SID_HEX \\
      --password $MDM_CHALLENGE --cacert-enc ra.der --cacert-sig ra.der \\
      --cacert ca.der --outform pem > phone.pem
  openssl x509 -in phone.pem -noout -text

Apache runs in the foreground now; its logs follow. Ctrl-C stops it.

EOF

exec "$HTTPD" -f "$STATE/httpd.conf" -DFOREGROUND

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Issue 15, point 4: the minting endpoint (SetHandler scep-challenge) refuses what it
# cannot read.  A parameter that is present but not acceptable (a bad or truncated
# %-escape, an encoded NUL or '/', a value that is not a host name, profile name or
# number in range, an empty value, a parameter given twice, an unknown parameter, a
# request body) gets 400 with a one-line reason and mints nothing: the database holds
# exactly as many minted challenges afterwards as before.  Good parameters still mint,
# bound to what they say.  The status handler's query is held to the same rule.
source "$(dirname "$0")/lib.sh"
t_init
require_module
SCEPREG=${SCEPREG:-$TOP/scepreg}
[[ -x "$SCEPREG" ]] || die "the registration tool $SCEPREG is not built"
command -v mdb_stat >/dev/null || die "mdb_stat (lmdb-utils) is missing: it counts the minted challenges"
command -v htpasswd >/dev/null || die "htpasswd (apache2-utils) is missing"

make_pki "$T/pki" Mint
DB=$T/db
AUDIT=$T/audit.log
timeout 60 "$SCEPREG" -c -b "$DB" rtr1.example.net "$(openssl rand -hex 12)" \
    || die "scepreg could not register rtr1"
htpasswd -bc "$T/admins" mdm "mdm-secret" >/dev/null 2>&1
chmod 644 "$T/admins"

httpd_conf "LoadModule authn_core_module $APACHE_MODDIR/mod_authn_core.so
LoadModule authn_file_module $APACHE_MODDIR/mod_authn_file.so
LoadModule auth_basic_module $APACHE_MODDIR/mod_auth_basic.so
LoadModule authz_user_module $APACHE_MODDIR/mod_authz_user.so
ScepAuditLog $AUDIT
$(scep_location /scep "$T/pki" ra "ScepDeviceDB $DB")
<Location /admin/challenge>
    SetHandler scep-challenge
    ScepDeviceDB $DB
    AuthType Basic
    AuthName \"SCEP challenges\"
    AuthBasicProvider file
    AuthUserFile $T/admins
    Require valid-user
</Location>
<Location /status>
    SetHandler scep-status
    Require all granted
</Location>"
httpd_start || t_done

# The minted challenges in the database, read beside the running server.
minted() {
    timeout 30 mdb_stat -s challenges "$DB" 2>/dev/null | sed -n 's/^ *Entries: //p'
}
# mint QUERY [curl args...]: GET /admin/challenge?QUERY as the MDM user; the answer in $T/m
mint() {
    local query=$1
    shift
    http_get "/admin/challenge?$query" "$T/m" -u mdm:mdm-secret "$@"
}

# refused WHAT QUERY [curl args...]: 400, a one-line text reason, nothing minted
refused() {
    local what=$1 query=$2 before after lines
    shift 2
    before=$(minted)
    mint "$query" "$@"
    after=$(minted)
    lines=$(grep -c . "$T/m" || true)
    if [[ "$HTTP_CODE" == 400 && "$HTTP_CTYPE" == text/plain* && "$lines" == 1 \
          && "$after" == "$before" ]]; then
        pass "$what: 400, '$(head -c 120 "$T/m")', nothing minted"
    else
        fail "$what ($query): HTTP $HTTP_CODE '$HTTP_CTYPE', $lines line(s), minted $before -> $after"
        head -c 300 "$T/m" | sed 's/^/       | /'
        echo
    fi
}

# the hostile parameters of the attack report, and their kin
refused "an encoded '/' in fqdn"          'fqdn=x.example.org%2F'
refused "an encoded NUL in fqdn"          'fqdn=x.example.org%00'
refused "a bad %-escape in fqdn"          'fqdn=x.example.org%zz'
refused "a trailing '%' in fqdn"          'fqdn=x.example.org%'
refused "a truncated %-escape in fqdn"    'fqdn=x.example.org%2'
refused "an encoded '/' in profile"       'profile=routers%2F'
refused "an encoded NUL in ttl"           'ttl=60%00'
refused "an encoded NUL in format"        'format=json%00'
refused "a bad %-escape in the name"      'fq%zzdn=x.example.org'
refused "fqdn given twice"                'fqdn=a.example.org&fqdn=b.example.org'
refused "fqdn given twice, in two cases"  'fqdn=rtr1.example.net&FQDN=other.example.net'
refused "ttl given twice"                 'ttl=60&ttl=120'
refused "an unknown parameter (a typo)"   'fdqn=rtr1.example.net'
refused "an unknown parameter after a good one" 'fqdn=rtr1.example.net&bind=no'
refused "a parameter without '='"         'fqdn'
refused "an empty fqdn"                   'fqdn='
refused "an empty profile"                'fqdn=a.example.org&profile='
refused "an empty ttl"                    'ttl='
refused "an empty parameter between '&'"  'fqdn=a.example.org&&ttl=60'
refused "a wildcard fqdn"                 'fqdn=*.example.org'
refused "an fqdn with a space"            'fqdn=a%20b.example.org'
refused "an fqdn that is no host name"    'fqdn=a..example.org'
refused "a profile with a space"          'profile=rou%20ters'
refused "ttl 0"                           'ttl=0'
refused "a negative ttl"                  'ttl=-60'
refused "a ttl with a sign"               'ttl=+60'
refused "a ttl with a leading space"      'ttl=%2060'
refused "a ttl beyond 30 days"            'ttl=2592001'
refused "a ttl that overflows"            'ttl=99999999999999999999999'
refused "a ttl that is no number"         'ttl=1e3'
refused "an unknown format"               'format=xml'
# a POST body is never read: parameters there would be ignored, so it is refused
refused "fqdn in a form body"             '' -X POST --data 'fqdn=rtr7.example.org'
refused "a binary POST body"              'fqdn=rtr7.example.org' -X POST \
    -H 'Content-Type: application/octet-stream' --data-binary 'xyz'
refused "a chunked POST body"             'fqdn=rtr7.example.org' -X POST \
    -H 'Transfer-Encoding: chunked' --data-binary 'fqdn=other.example.org'

# every refusal is in the error log at level info, with a reason an operator can act on
expect_log "\\[scep:info\\] .*SCEP00150: scep-challenge: parameter 'fqdn' has a bad or truncated %-escape in the query 'fqdn=x\\.example\\.org%zz'; nothing minted for mdm" \
    "an undecodable value is logged at info, with the raw query and the caller"
expect_log "\\[scep:info\\] .*SCEP00121: scep-challenge: fqdn 'x\\.example\\.org/' is not a host name" \
    "an encoded '/' is decoded, then refused as no host name"
expect_log "\\[scep:info\\] .*SCEP00150: scep-challenge: parameter 'ttl' holds an escaped NUL" \
    "an encoded NUL is logged as such"
expect_log "\\[scep:info\\] .*SCEP00150: scep-challenge: parameter 'fqdn' given twice" \
    "a repeated parameter is logged"
expect_log "\\[scep:info\\] .*SCEP00150: scep-challenge: unknown parameter 'fdqn'" \
    "an unknown parameter is logged by name"
expect_log "\\[scep:info\\] .*SCEP00151: scep-challenge: the request has a body" \
    "a request body is logged"
expect_log "\\[scep:info\\] .*SCEP00152: scep-challenge: format 'xml'" \
    "an unknown format is logged"
expect_file_contains "$AUDIT" '"event":"refused"' "refusals reach the audit log"

# ---- good parameters still mint, bound to what they say ----
before=$(minted)
mint 'fqdn=rtr7.example.org&format=json'
expect_eq "$HTTP_CODE" 200 "a plain fqdn mints"
expect_match "$(cat "$T/m")" '"fqdn":"rtr7\.example\.org"' "the challenge is bound to rtr7"
mint 'FQDN=Rtr8%2Eexample.ORG.&Profile=routers&TTL=60&Format=json'
expect_eq "$HTTP_CODE" 200 "a valid %-escape, letter case and a trailing dot are accepted"
expect_match "$(cat "$T/m")" '"ttl":60,"fqdn":"rtr8\.example\.org","profile":"routers"' \
    "bound to the canonical name, the profile and the ttl asked for"
mint ''
expect_eq "$HTTP_CODE" 200 "no parameter at all mints a challenge for any name (documented)"
mint 'fqdn=rtr9.example.org' -X POST
expect_eq "$HTTP_CODE" 200 "a POST without a body mints from the query string"
mint 'format=text'
expect_eq "$HTTP_CODE" 200 "format=text is accepted"
expect_eq "$(minted)" "$((before + 5))" "the five good requests minted five challenges"

# ---- the status handler's query, held to the same rule ----
http_get "/status?format=json" "$T/s"
expect_eq "$HTTP_CODE $HTTP_CTYPE" "200 application/json" "scep-status: format=json"
http_get "/status" "$T/s"
expect_match "$HTTP_CODE $HTTP_CTYPE" '^200 text/plain' "scep-status: the Prometheus text by default"
http_get "/status?format=prometheus" "$T/s"
expect_match "$HTTP_CODE $HTTP_CTYPE" '^200 text/plain' "scep-status: format=prometheus"
for q in 'format=jso%6E%00' 'format=xml' 'xformat=json' 'format=json&format=json' 'format=%zz'; do
    http_get "/status?$q" "$T/s"
    expect_eq "$HTTP_CODE" 400 "scep-status refuses '$q'"
done

if python3 - "$AUDIT" <<'EOF'
import json, sys
minted = sum(1 for line in open(sys.argv[1]) if json.loads(line)["event"] == "minted")
assert minted == 5, minted
EOF
then
    pass "the audit log records the five challenges minted, and only those"
else
    fail "the audit log does not hold five minted events"
fi

check_error_log '\[scep:info\] '
t_done

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# micromdm's scepclient (Debian package "scep", 2.1.0) against mod_scep. It always POSTs and
# always encrypts its request with single DES, whatever GetCACaps says, so it enrolls only
# where ScepLegacyAlgorithms is On; elsewhere it must get a signed badAlg FAILURE it can read.
source "$(dirname "$0")/lib.sh"
t_init
require_module
command -v scepclient >/dev/null || die "micromdm's scepclient is not installed (package scep)"

make_pki "$T/pki" Micro
make_pki "$T/pki2" MicroLone
CHAL=$(openssl rand -hex 12)
httpd_conf "$(
    scep_location /scep "$T/pki" ra "ScepChallenge $CHAL"
    scep_location /legacy "$T/pki" ra "ScepChallenge $CHAL" "ScepLegacyAlgorithms On"
    scep_location /lone "$T/pki2" nora "ScepChallenge $CHAL" "ScepLegacyAlgorithms On"
)"
httpd_start || t_done
M=$T/micro
mkdir -p "$M"

# micro NAME PATH [scepclient options]: one enrollment; the exit status is scepclient's
micro() {
    local name=$1 path=$2
    shift 2
    mkdir -p "$M/$name"
    (cd "$M/$name" && timeout 120 scepclient -server-url "http://127.0.0.1:$PORT$path" \
        -private-key "$M/$name/key.pem" -certificate "$M/$name/cert.pem" -cn "$name" "$@" \
        >"$M/$name/out" 2>&1)
}

# micro_ok NAME PATH CA_DIR [options]: enrollment succeeds and the certificate verifies
micro_ok() {
    local name=$1 path=$2 ca_dir=$3 rc=0
    shift 3
    micro "$name" "$path" "$@" || rc=$?
    if ((rc != 0)) || [[ ! -s "$M/$name/cert.pem" ]]; then
        fail "scepclient $name at $path: exit $rc, no certificate:"
        sed 's/^/       | /' "$M/$name/out" | tail -8
        return
    fi
    if openssl verify -CAfile "$ca_dir/ca.pem" "$M/$name/cert.pem" >/dev/null 2>&1; then
        pass "scepclient $name at $path: certificate verifies"
    else
        fail "scepclient $name at $path: the certificate does not verify"
    fi
    expect_match "$(openssl x509 -in "$M/$name/cert.pem" -noout -subject)" "CN ?= ?$name" \
        "scepclient $name: subject"
}

micro_ok m2048 /legacy "$T/pki" -challenge "$CHAL"
micro_ok m4096 /legacy "$T/pki" -challenge "$CHAL" -keySize 4096
micro_ok mlone /lone "$T/pki2" -challenge "$CHAL"
micro_ok mpath /legacy/pkiclient.exe "$T/pki" -challenge "$CHAL"

# without the legacy switch: a FAILURE the client understands, and a log line that says why
rc=0
micro mdes /scep -challenge "$CHAL" || rc=$?
if ((rc != 0)) && grep -q 'badAlg' "$M/mdes/out"; then
    pass "single DES without ScepLegacyAlgorithms: scepclient reports failInfo badAlg"
else
    fail "single DES without ScepLegacyAlgorithms: exit $rc, expected a badAlg failure:"
    sed 's/^/       | /' "$M/mdes/out" | tail -5
fi
expect_log 'SCEP00205: .*single DES needs ScepLegacyAlgorithms On' \
    "the log tells the operator which switch single DES needs"

rc=0
micro mwrong /legacy -challenge "not-$CHAL" || rc=$?
if ((rc != 0)) && grep -q 'badRequest' "$M/mwrong/out"; then
    pass "wrong challenge: scepclient reports failInfo badRequest"
else
    fail "wrong challenge: exit $rc, expected a badRequest failure:"
    sed 's/^/       | /' "$M/mwrong/out" | tail -5
fi

check_error_log '\[scep:warn\] .*SCEP00212: '
t_done

# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# A scratch SoftHSM2 token for tests and benchmarks (never the system's tokens): sourced
# after lib.sh.  hsm_init makes the token under DIR and points SOFTHSM2_CONF (and httpd's
# environment) at it; hsm_keygen makes a key pair inside it (never extractable);
# hsm_ca makes a CA certificate signed by a token key, hsm_issue certificates signed by
# it.  The openssl command line reaches the token through libp11's engine, with the PIN
# in its URI: setup only, never in mod_scep's configuration.
HSM_MODULE=${SOFTHSM2_MODULE:-/usr/lib/softhsm/libsofthsm2.so}

hsm_require() {
    local tool
    for tool in softhsm2-util pkcs11-tool; do
        command -v "$tool" >/dev/null || die "$tool is missing (packages softhsm2, opensc)"
    done
    [[ -f "$HSM_MODULE" ]] || die "SoftHSM2's module is missing: $HSM_MODULE"
    [[ -f "$(openssl version -e | sed 's/^ENGINESDIR: "\(.*\)"$/\1/')/pkcs11.so" ]] \
        || die "OpenSSL's pkcs11 engine is missing (libengine-pkcs11-openssl)"
}

# hsm_init DIR LABEL: the token LABEL in DIR/tokens; sets HSM, HSM_PIN, HSM_TOK, HSM_Q
# (the URI query: pin-source file and module-path)
hsm_init() {
    HSM=$1
    mkdir -p "$HSM/tokens"
    printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
        "$HSM/tokens" >"$HSM/softhsm2.conf"
    export SOFTHSM2_CONF=$HSM/softhsm2.conf
    HTTPD_CMD=(env "SOFTHSM2_CONF=$SOFTHSM2_CONF" "${HTTPD_CMD[@]}")
    HSM_PIN=$(openssl rand -hex 6)
    HSM_TOK="pkcs11:token=$2"
    HSM_LABEL=$2
    timeout 60 softhsm2-util --init-token --free --label "$2" \
        --so-pin "$(openssl rand -hex 8)" --pin "$HSM_PIN" >"$HSM/init.out" 2>&1 \
        || { cat "$HSM/init.out"; die "cannot make the token"; }
    printf '%s\n' "$HSM_PIN" >"$HSM/pin"
    chmod 600 "$HSM/pin"
    HSM_Q="?pin-source=file:$HSM/pin&module-path=$HSM_MODULE"
    cat >"$HSM/openssl.cnf" <<EOC
openssl_conf = init
[init]
engines = engines
[engines]
pkcs11 = pkcs11_section
[pkcs11_section]
engine_id = pkcs11
MODULE_PATH = $HSM_MODULE
init = 0
[req]
distinguished_name = dn
[dn]
EOC
}

# hsm_p11 ARGS...: pkcs11-tool, logged in to the token
hsm_p11() {
    timeout 120 pkcs11-tool --module "$HSM_MODULE" --token-label "$HSM_LABEL" --login \
        --pin "$HSM_PIN" "$@"
}

# hsm_keygen ID LABEL USAGE: an RSA-2048 key pair generated in the token (USAGE: sign or
# decrypt), not extractable
hsm_keygen() {
    hsm_p11 --keypairgen --key-type rsa:2048 --id "$1" --label "$2" "--usage-$3" \
        >>"$HSM/gen.out" 2>&1 || { cat "$HSM/gen.out"; die "cannot generate key $2"; }
}

# the URI of a token key for the openssl command line (PIN included)
hsm_setup_uri() { echo "$HSM_TOK;object=$1;type=private;pin-value=$HSM_PIN"; }

hsm_ossl() { OPENSSL_CONF=$HSM/openssl.cnf timeout 60 openssl "$@" >>"$HSM/openssl.log" 2>&1; }

# hsm_ca DIR KEYLABEL CN: DIR/ca.pem, self-signed by the token key
hsm_ca() {
    mkdir -p "$1"
    hsm_ossl req -new -x509 -engine pkcs11 -keyform engine -key "$(hsm_setup_uri "$2")" \
        -subj "/O=mod_scep tests/CN=$3" -days 3650 -sha256 \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" -addext "subjectKeyIdentifier=hash" \
        -out "$1/ca.pem" || { cat "$HSM/openssl.log"; die "cannot make the CA certificate"; }
}

# hsm_issue DIR CAKEYLABEL NAME CN KEYUSAGE KEYFILE|TOKENKEYLABEL: DIR/NAME.pem issued by
# the token's CA key.  A software key signs its request without the engine's
# configuration: with libp11's engine loaded by openssl.cnf, OpenSSL 3.0 fails to sign
# with a key of its own ("command not supported").
hsm_issue() {
    local dir=$1 cakey=$2 name=$3 cn=$4 ku=$5 key=$6
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,%s\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' \
        "$ku" >"$dir/$name.ext"
    if [[ -f "$key" ]]; then
        timeout 60 openssl req -new -key "$key" -subj "/O=mod_scep tests/CN=$cn" \
            -out "$dir/$name.csr" >>"$HSM/openssl.log" 2>&1
    else
        hsm_ossl req -new -engine pkcs11 -keyform engine -key "$(hsm_setup_uri "$key")" \
            -subj "/O=mod_scep tests/CN=$cn" -out "$dir/$name.csr"
    fi && hsm_ossl x509 -req -in "$dir/$name.csr" -engine pkcs11 -CAkeyform engine \
        -CA "$dir/ca.pem" -CAkey "$(hsm_setup_uri "$cakey")" \
        -set_serial "0x$(openssl rand -hex 8)" -days 365 -sha256 -extfile "$dir/$name.ext" \
        -out "$dir/$name.pem" || { cat "$HSM/openssl.log"; die "cannot issue $name"; }
}

# hsm_for_httpd: httpd's children (www-data when root runs the tests) open the token
# files themselves; the PIN file stays root's
hsm_for_httpd() {
    chmod 711 "$HSM"
    chmod 644 "$HSM/softhsm2.conf"
    if [[ $(id -u) == 0 ]]; then
        chown -R www-data:www-data "$HSM/tokens"
    fi
}

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Issue 19, encrypted key files: CA and RA keys as encrypted PKCS#8 PEM, unlocked by
# ScepPassPhraseDialog.  exec: the program runs once per key at startup (not again for
# httpd's second reading of the configuration, nor for a graceful restart of the same
# files), with mod_ssl's arguments; the passphrase reaches no log, no child's environment
# or command line.  builtin: httpd -t under a pseudo-terminal is asked once per key,
# without echo; without a terminal the start is refused.  (Wrong passphrase and a missing
# dialog: t_config_errors.sh.)
source "$(dirname "$0")/lib.sh"
t_init
require_module
require_probe
command -v python3 >/dev/null || die "python3 is missing"

P=$T/pki
make_pki "$P" Enc
PASS=$(openssl rand -hex 16)
printf '%s\n' "$PASS" >"$T/pass"
chmod 600 "$T/pass"
for k in ca ra; do
    timeout 60 openssl pkcs8 -topk8 -v2 aes-256-cbc -in "$P/$k.key" -out "$P/$k.enc.key" \
        -passout "file:$T/pass" || die "cannot encrypt $k.key"
    chmod 600 "$P/$k.enc.key"
done
expect_match "$(head -1 "$P/ca.enc.key")" 'BEGIN ENCRYPTED PRIVATE KEY' "the CA key is encrypted PKCS#8"

# the dialog program: records its arguments, prints the passphrase of the moment
cat >"$T/dialog.sh" <<EOF
#!/bin/sh
echo "\$# \$1 \$2" >>"$T/dialog.calls"
cat "$T/pass"
EOF
chmod 700 "$T/dialog.sh"
: >"$T/dialog.calls"
calls() { grep -c . "$T/dialog.calls" || true; }

CHAL=$(openssl rand -hex 12)
location_enc() {
    printf '%s\n' "<Location /scep>" "    SetHandler scep" \
        "    ScepCACertificateFile $P/ca.pem" "    ScepCAKeyFile $P/ca.enc.key" \
        "    ScepRACertificateFile $P/ra.pem" "    ScepRAKeyFile $P/ra.enc.key" \
        "    ScepChallenge $CHAL" "    Require all granted" "</Location>"
}
httpd_conf "ScepPassPhraseDialog exec:$T/dialog.sh
$(location_enc)"
httpd_start || t_done
expect_eq "$(calls)" 2 "the dialog ran once per encrypted key, for both readings of the configuration"
expect_eq "$(sort -u "$T/dialog.calls")" "2 127.0.0.1:$PORT RSA" \
    "its arguments are mod_ssl's: host:port and the key type"
enroll e1 /scep POST "$P/ra.pem" "$P/ca.pem" "$P/ra.pem" --challenge "$CHAL" \
    --subject "/CN=e1" || true
# said before httpd opens its error log (as a terminal prompt would be): on its stderr
expect_file_matches "$HTTPD_ROOT/stderr" \
    "SCEP00500: CA key '$P/ca.enc.key' decrypted with the passphrase from $T/dialog.sh" \
    "httpd says which key was decrypted with which dialog"

# the passphrase is nowhere a child could show it
leaked=0
for pid in $(pgrep -P "$HTTPD_PID" || true); do
    if grep -qaF -- "$PASS" "/proc/$pid/environ" "/proc/$pid/cmdline" 2>/dev/null; then
        leaked=1
    fi
done
expect_eq "$leaked" 0 "no child holds the passphrase in its environment or command line"

# graceful restart with the same files: nothing asked, the keys still sign
httpd_graceful
expect_log 'AH00489' "httpd restarted gracefully"
expect_eq "$(calls)" 2 "a graceful restart of the same key files asks nothing"
enroll e2 /scep POST "$P/ra.pem" "$P/ca.pem" "$P/ra.pem" --challenge "$CHAL" \
    --subject "/CN=e2" || true

# a key file encrypted anew (another passphrase): asked again, for that file only
PASS2=$(openssl rand -hex 16)
printf '%s\n' "$PASS2" >"$T/pass2"
timeout 60 openssl pkcs8 -topk8 -v2 aes-256-cbc -in "$P/ra.key" -out "$P/ra.enc.key.new" \
    -passout "file:$T/pass2" || die "cannot encrypt ra.key again"
chmod 600 "$P/ra.enc.key.new"
mv "$P/ra.enc.key.new" "$P/ra.enc.key"
cp "$T/pass2" "$T/pass"
httpd_graceful
expect_eq "$(calls)" 3 "a changed key file is asked for again, the unchanged one is not"
enroll e3 /scep POST "$P/ra.pem" "$P/ca.pem" "$P/ra.pem" --challenge "$CHAL" \
    --subject "/CN=e3" || true
expect_log_lacks "$PASS" "the first passphrase is in no log line"
expect_log_lacks "$PASS2" "the second passphrase is in no log line"
check_error_log 'AH00493: SIGUSR1 received' 'AH00492: caught SIGWINCH' 'AH00171: Graceful restart'
httpd_stop || fail "httpd did not stop cleanly"

# builtin: httpd -t on a pseudo-terminal, which answers each prompt once
httpd_conf "ScepPassPhraseDialog builtin
$(location_enc)"
cat >"$T/answer_tty.py" <<'EOF'
import os, pty, select, sys, time
secret, argv = sys.argv[1].encode(), sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
out, prompts, deadline = b"", 0, time.monotonic() + 60
while time.monotonic() < deadline:
    ready, _, _ = select.select([fd], [], [], 0.5)
    if not ready:
        continue
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    out += data
    while out.count(b"Pass phrase for") > prompts:
        prompts += 1
        os.write(fd, secret + b"\n")
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
print("\nprompts=%d exit=%d" % (prompts, os.waitstatus_to_exitcode(status)))
EOF
# both keys under the second passphrase, so that every prompt has the same answer
timeout 60 openssl pkcs8 -topk8 -v2 aes-256-cbc -in "$P/ca.key" -out "$P/ca.enc.key" \
    -passout "file:$T/pass2" || die "cannot encrypt ca.key again"
timeout 90 python3 "$T/answer_tty.py" "$PASS2" "${HTTPD_CMD[@]}" -t -f "$HTTPD_ROOT/httpd.conf" \
    -d "$HTTPD_ROOT" >"$T/builtin.out" 2>&1 || true
expect_file_matches "$T/builtin.out" 'Pass phrase for the mod_scep CA key .*ca\.enc\.key' \
    "builtin: the terminal is asked for the CA key's passphrase, by file"
expect_file_matches "$T/builtin.out" 'prompts=2 exit=0' "builtin: two prompts, one per key; httpd -t accepts"
expect_file_matches "$T/builtin.out" 'Syntax OK' "builtin: httpd -t says Syntax OK"
if grep -qF -- "$PASS2" "$T/builtin.out"; then
    fail "builtin: the passphrase was echoed on the terminal"
else
    pass "builtin: the passphrase is not echoed"
fi
# and without a terminal, the start is refused and says why
rc=0
timeout 30 setsid -w "${HTTPD_CMD[@]}" -t -f "$HTTPD_ROOT/httpd.conf" -d "$HTTPD_ROOT" \
    </dev/null >"$T/notty.out" 2>&1 || rc=$?
expect_eq "$rc" 1 "builtin without a terminal: httpd -t refuses"
expect_file_matches "$T/notty.out" \
    "CA key file '$P/ca.enc.key' is encrypted, and its passphrase could not be asked for: the builtin dialog needs a terminal" \
    "builtin without a terminal: the message names the key file and the missing terminal"
t_done

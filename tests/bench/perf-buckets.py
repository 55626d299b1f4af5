#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Where an enrollment's server CPU goes, from a `perf record --call-graph dwarf` of the
httpd children (enroll-bench.sh with PERF_OUT=FILE).

    tests/bench/perf-buckets.py FILE

Every sample is put in the first bucket whose function is on its stack: the RSA private
and public operations (the crypto floor), OpenSSL 3's key decoders and encoders, the
challenge verifier, LMDB's commit, and the rest by the mod_scep function nearest to the
leaf.  Debian's libcrypto is stripped, so only its exported functions have names; the
buckets therefore use exported entry points."""
import collections
import subprocess
import sys

BUCKETS = [
    ("RSA private operations (decrypt, 2 signatures)",
     {"BN_mod_exp_mont_consttime_x2", "RSA_sign", "RSA_private_decrypt"}),
    ("RSA public operations", {"BN_mod_exp_mont", "RSA_verify", "RSA_public_encrypt"}),
    ("OpenSSL key decoders (parsing a certificate or CSR)",
     {"OSSL_DECODER_CTX_new_for_pkey", "OSSL_DECODER_from_data", "OSSL_DECODER_from_bio"}),
    ("OpenSSL key encoders", {"OSSL_ENCODER_CTX_new_for_pkey", "OSSL_ENCODER_to_data"}),
    ("challenge verifier (PBKDF2)", {"PKCS5_PBKDF2_HMAC"}),
    ("LMDB commit (write and fdatasync)", {"mdb_txn_commit"}),
]
OURS = ("mod_scep.so",)


def stacks(path):
    out = subprocess.run(["perf", "script", "-i", path, "-F", "comm,ip,sym,dso"],
                         capture_output=True, text=True, check=True).stdout
    stack = None
    for line in out.splitlines():
        if not line.strip():
            if stack:
                yield stack
            stack = None
        elif not line[0].isspace():
            stack = [] if line.split()[0] in ("apache2", "httpd") else None
        elif stack is not None:
            parts = line.strip().split(None, 1)
            rest = parts[1] if len(parts) > 1 else ""
            sym, _, dso = rest.rpartition(" (")
            stack.append((sym, dso.rstrip(")").rsplit("/", 1)[-1]))
    if stack:
        yield stack


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    counts = collections.Counter()
    total = 0
    for stack in stacks(sys.argv[1]):
        total += 1
        names = {sym for sym, _ in stack}
        bucket = next((label for label, funcs in BUCKETS if names & funcs), None)
        if not bucket:
            ours = next((sym for sym, dso in stack if dso in OURS), None)
            bucket = ("other, under " + ours) if ours else "httpd, APR and the kernel"
        counts[bucket] += 1
    if not total:
        sys.exit("no httpd samples in " + sys.argv[1])
    print("%d samples of httpd" % total)
    for label, n in counts.most_common(25):
        print("%6.1f %%  %s" % (100.0 * n / total, label))


if __name__ == "__main__":
    main()

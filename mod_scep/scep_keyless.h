/* SPDX-License-Identifier: Apache-2.0 */
/* Reading certificates and requests without OpenSSL 3.0's key decoders.
 *
 * OpenSSL 3.0 hands every SubjectPublicKeyInfo it parses to its provider decoders, which
 * build a decoder chain from scratch each time: about 85 microseconds per certificate or
 * CSR on a 2-core EPYC, against 5 for all the rest of the parse.  Every enrollment parses
 * two (the signer's certificate and the PKCS#10).  Parsed here, the structures come out
 * complete except for the cached public key, and scep_keyless_spki_public_key makes the key the
 * cheap way for RSA.  The structures otherwise behave as usual (X509_verify,
 * X509_REQ_verify with an explicit key, CMS_verify once the signer has a key).
 *
 * Also here, since this is where keys are made from their bytes: the one rule on RSA
 * public exponents, applied to every RSA key read from the wire or from a file before
 * any arithmetic is done with it. */
#ifndef SCEP_KEYLESS_H
#define SCEP_KEYLESS_H

#include <apr_errno.h>
#include <openssl/asn1t.h>
#include <openssl/x509.h>

/* Makes the library context that holds no decoders (the "null" provider only).  Called
 * once at startup by scep_msg_global_init; until then parsing falls back to OpenSSL's
 * default context, which is correct and only slower. */
apr_status_t scep_keyless_init(void);
void scep_keyless_release(void);

/* d2i of `it` with the public keys left undecoded: X509_get0_pubkey and
 * X509_REQ_get0_pubkey return NULL on the result.  NULL when the input does not parse. */
void *scep_keyless_d2i(const ASN1_ITEM *it, const unsigned char **in, long len);

/* The public key of a SubjectPublicKeyInfo, owned by the caller.  rsaEncryption keys are
 * read directly (the key must fill the BIT STRING exactly); every other type goes through
 * OpenSSL's decoders.  NULL when the key does not decode. */
EVP_PKEY *scep_keyless_spki_public_key(const X509_PUBKEY *spki);

/* Why the key of `spki` cannot be used as an RSA public key because of its public
 * exponent e, as a sentence starting "the RSA public exponent ..." (or saying the key
 * cannot be read); NULL when e is usable or the key is not RSA.  Usable: odd,
 * 3 <= e < 2^256, and e < n.  It reads the two numbers from the DER and compares them,
 * nothing more, so a hostile key costs nothing here; call it before any verification or
 * encryption with the key.  The sentence is a constant (no pool). */
const char *scep_keyless_rsa_exponent_problem(const X509_PUBKEY *spki);

#endif

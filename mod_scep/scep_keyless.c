/* SPDX-License-Identifier: Apache-2.0 */
/* Parsing with the public keys left undecoded, and the rule on RSA public exponents;
 * see scep_keyless.h for why. */
#include <string.h>

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/provider.h>

#include "scep_keyless.h"

/* The parse-only context and the provider that keeps OpenSSL from loading the default
 * one into it on first use.  Written once at startup, before any request thread exists. */
static OSSL_LIB_CTX *keyless_ctx;
static OSSL_PROVIDER *null_provider;

apr_status_t scep_keyless_init(void)
{
    if (keyless_ctx) {
        return APR_SUCCESS;
    }
    if (!(keyless_ctx = OSSL_LIB_CTX_new())) {
        return APR_ENOMEM;
    }
    if (!(null_provider = OSSL_PROVIDER_load(keyless_ctx, "null"))) {
        OSSL_LIB_CTX_free(keyless_ctx);
        keyless_ctx = NULL;
        ERR_clear_error();
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

void scep_keyless_release(void)
{
    if (null_provider) {
        OSSL_PROVIDER_unload(null_provider);
        null_provider = NULL;
    }
    if (keyless_ctx) {
        OSSL_LIB_CTX_free(keyless_ctx);
        keyless_ctx = NULL;
    }
}

void *scep_keyless_d2i(const ASN1_ITEM *it, const unsigned char **in, long len)
{
    /* The context reaches only the SubjectPublicKeyInfo decoders: the objects made here
     * carry no context of their own and fetch their algorithms from the default one. */
    return ASN1_item_d2i_ex(NULL, in, len, it, keyless_ctx, NULL);
}

EVP_PKEY *scep_keyless_spki_public_key(const X509_PUBKEY *spki)
{
    const unsigned char *bits = NULL, *in;
    unsigned char *der = NULL;
    ASN1_OBJECT *algorithm = NULL;
    EVP_PKEY *key = NULL;
    int len = 0;

    if (!X509_PUBKEY_get0_param(&algorithm, &bits, &len, NULL, spki)
        || !bits || len <= 0) {
        return NULL;
    }
    if (OBJ_obj2nid(algorithm) == NID_rsaEncryption) {
        /* The RSAPublicKey inside the BIT STRING; OpenSSL's own decoder reads no more
         * than that either (the parameters are the caller's to judge). */
        in = bits;
        key = d2i_PublicKey(EVP_PKEY_RSA, NULL, &in, len);
        if (key && in != bits + len) {
            EVP_PKEY_free(key);
            key = NULL;
        }
    }
    else if ((len = i2d_X509_PUBKEY(spki, &der)) > 0) {
        in = der;
        key = d2i_PUBKEY(NULL, &in, len);
        /* OpenSSL also decodes an RSA key labelled X.500's rsa (2.5.8.1.1): an RSA key is
         * rsaEncryption or nothing, so that every check keyed to that label (the exponent
         * rule, the parameters, the DER form) sees every RSA key */
        if (key && EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
            EVP_PKEY_free(key);
            key = NULL;
        }
    }
    OPENSSL_free(der);
    if (!key) {
        ERR_clear_error();
    }
    return key;
}

/* The largest usable exponent has this many bits: e < 2^256.  That is FIPS 186-5 A.1.1
 * and NIST SP 800-89 5.3.3 (partial public-key validation: e odd, 2^16 < e < 2^256);
 * the CA/Browser Forum's Baseline Requirements 6.1.6 recommend the same range.  OpenSSL
 * 3.0 bounds e (to 64 bits) only for moduli above 3072 bits, so a 3072-bit modulus with
 * a 3071-bit e passed it: one verification then costs 6.5 ms instead of 0.03 ms with
 * e = 65537 (2-core EPYC), and a request about 5 times the CPU of an ordinary one
 * (issue 15, point 12).  At 256 bits a verification costs 0.6 ms, and a request at most
 * about 1.5 times an ordinary one.  Go's crypto/rsa stops at 2^31-1 and BoringSSL at
 * 2^33-1, so no key that clients built on them can use is refused here.
 * The lower end stays RFC 8017 3.1's 3, not FIPS's 2^16+1: FIPS bounds key generation,
 * and e = 3 keys from old devices verify safely with OpenSSL's strict PKCS#1 check. */
#define RSA_EXPONENT_MAX_BITS 256

/* One DER TLV of `tag` at *p, before `end`: its contents in *val and *len, *p moved past
 * it.  0 when it is not there or its length does not fit. */
static int der_next(const unsigned char **p, const unsigned char *end, unsigned char tag,
                    const unsigned char **val, size_t *len)
{
    const unsigned char *q = *p;
    size_t n, k;

    if (end - q < 2 || *q++ != tag) {
        return 0;
    }
    n = *q++;
    if (n & 0x80) {
        k = n & 0x7f;
        if (k == 0 || k > 4 || (size_t)(end - q) < k) {
            return 0;
        }
        for (n = 0; k > 0; k--) {
            n = n << 8 | *q++;
        }
    }
    if ((size_t)(end - q) < n) {
        return 0;
    }
    *val = q;
    *len = n;
    *p = q + n;
    return 1;
}

/* Reads the RSAPublicKey's two INTEGERs from the key's DER rather than through OpenSSL's
 * parameter export, which cost some 125,000 instructions per key: a tenth of what the
 * request path spends outside RSA (docs/performance.md). */
const char *scep_keyless_rsa_exponent_problem(const X509_PUBKEY *spki)
{
    const unsigned char *bits = NULL, *p, *end, *seq, *n, *e;
    size_t seq_len, n_len, e_len;
    ASN1_OBJECT *alg = NULL;
    int len = 0, nid;

    if (!spki || !X509_PUBKEY_get0_param(&alg, &bits, &len, NULL, spki)) {
        return "the public key cannot be read";
    }
    nid = OBJ_obj2nid(alg);
    if (nid != NID_rsaEncryption && nid != NID_rsassaPss && nid != NID_rsa) {
        return NULL;
    }
    p = bits;
    end = bits + len;
    if (len <= 0 || !der_next(&p, end, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &seq, &seq_len)
        || p != end) {
        return "the RSA public key cannot be read";
    }
    p = seq;
    end = seq + seq_len;
    if (!der_next(&p, end, V_ASN1_INTEGER, &n, &n_len)
        || !der_next(&p, end, V_ASN1_INTEGER, &e, &e_len) || p != end
        || n_len == 0 || e_len == 0 || (n[0] & 0x80)) {
        return "the RSA public exponent or modulus cannot be read";
    }
    if (e[0] & 0x80) {
        return "the RSA public exponent is below 3 (RFC 8017 3.1)";    /* negative */
    }
    /* the sign octet and any other leading zero say nothing of the value */
    while (e_len > 1 && e[0] == 0) {
        e++;
        e_len--;
    }
    while (n_len > 1 && n[0] == 0) {
        n++;
        n_len--;
    }
    if (e_len == 1 && e[0] == 1) {
        /* m^1 = m: the "signature" is the padded digest itself, which anyone can write,
         * and what is "encrypted" to the key travels in the clear */
        return "the RSA public exponent is 1, with which anyone can forge a signature";
    }
    if (e_len == 1 && e[0] < 3) {
        return "the RSA public exponent is below 3 (RFC 8017 3.1)";
    }
    if (!(e[e_len - 1] & 1)) {
        /* lambda(n) is even, so an even e has no inverse: no private key matches it, no
         * signature verifies and nothing encrypted to it can be read */
        return "the RSA public exponent is even, which no RSA key can have";
    }
    if (e_len > RSA_EXPONENT_MAX_BITS / 8) {
        return "the RSA public exponent has more than 256 bits (at most 2^256-1, as "
               "FIPS 186-5 and NIST SP 800-89 say)";
    }
    if (e_len > n_len || (e_len == n_len && memcmp(e, n, e_len) >= 0)) {
        return "the RSA public exponent is not smaller than the modulus (RFC 8017 3.1)";
    }
    return NULL;
}

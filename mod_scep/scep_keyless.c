/* Parsing with the public keys left undecoded, and the rule on RSA public exponents;
 * see scep_keyless.h for why. */
#include <openssl/bn.h>
#include <openssl/core_names.h>
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

void *scep_d2i_keyless(const ASN1_ITEM *it, const unsigned char **in, long len)
{
    /* The context reaches only the SubjectPublicKeyInfo decoders: the objects made here
     * carry no context of their own and fetch their algorithms from the default one. */
    return ASN1_item_d2i_ex(NULL, in, len, it, keyless_ctx, NULL);
}

EVP_PKEY *scep_spki_public_key(const X509_PUBKEY *spki)
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

const char *scep_rsa_exponent_problem(const EVP_PKEY *key)
{
    BIGNUM *n = NULL, *e = NULL;
    const char *problem = NULL;

    if (!key || EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
        return NULL;
    }
    if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) != 1
        || EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e) != 1) {
        problem = "the RSA public exponent or modulus cannot be read";
    }
    else if (BN_is_one(e)) {
        /* m^1 = m: the "signature" is the padded digest itself, which anyone can write,
         * and what is "encrypted" to the key travels in the clear */
        problem = "the RSA public exponent is 1, with which anyone can forge a signature";
    }
    else if (BN_is_negative(e) || BN_is_zero(e) || BN_is_word(e, 2)) {
        problem = "the RSA public exponent is below 3 (RFC 8017 3.1)";
    }
    else if (!BN_is_odd(e)) {
        /* lambda(n) is even, so an even e has no inverse: no private key matches it, no
         * signature verifies and nothing encrypted to it can be read */
        problem = "the RSA public exponent is even, which no RSA key can have";
    }
    else if (BN_num_bits(e) > RSA_EXPONENT_MAX_BITS) {
        problem = "the RSA public exponent has more than 256 bits (at most 2^256-1, as "
                  "FIPS 186-5 and NIST SP 800-89 say)";
    }
    else if (BN_ucmp(e, n) >= 0) {
        problem = "the RSA public exponent is not smaller than the modulus (RFC 8017 3.1)";
    }
    BN_free(n);
    BN_free(e);
    ERR_clear_error();
    return problem;
}

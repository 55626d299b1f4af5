/* Parsing with the public keys left undecoded; see scep_keyless.h for why. */
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

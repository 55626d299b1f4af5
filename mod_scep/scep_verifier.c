/* SPDX-License-Identifier: Apache-2.0 */
/* Challenge verifiers (scep_verifier.h): PBKDF2-HMAC-SHA256 written out over EVP so that
 * the keyed HMAC state is made once per verification, not once per iteration, and the
 * per-process memory of secrets verified before. */
#include <string.h>
#include <limits.h>
#include <pthread.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "scep_util.h"
#include "scep_verifier.h"

/* A stored iteration count is data, not configuration: a damaged or hostile record
 * must not make one request burn minutes of CPU. */
#define VERIFIER_MAX_ITERATIONS 10000000u

_Static_assert(SCEP_VERIFIER_HASH_LEN == SHA256_DIGEST_LENGTH,
               "pbkdf2() computes one PBKDF2 block: the verifier's hash is one SHA-256");

/* One HMAC-SHA256 from the keyed inner and outer digests: of `data` followed by `more`
 * (may be NULL).  `out` may be `data`. */
static int hmac_sha256(EVP_MD_CTX *step, const EVP_MD_CTX *inner, const EVP_MD_CTX *outer,
                       const unsigned char *data, size_t len, const unsigned char *more,
                       size_t more_len, unsigned char out[SHA256_DIGEST_LENGTH])
{
    unsigned int n;

    return EVP_MD_CTX_copy_ex(step, inner) && EVP_DigestUpdate(step, data, len)
           && (!more || EVP_DigestUpdate(step, more, more_len))
           && EVP_DigestFinal_ex(step, out, &n)
           && EVP_MD_CTX_copy_ex(step, outer)
           && EVP_DigestUpdate(step, out, SHA256_DIGEST_LENGTH)
           && EVP_DigestFinal_ex(step, out, &n);
}

/* PBKDF2-HMAC-SHA256 (RFC 8018) of the one 32-byte block a verifier holds.  HMAC's inner
 * and outer digests are keyed once and copied for every iteration instead of being keyed
 * again: 150 µs for 1000 iterations where PKCS5_PBKDF2_HMAC takes 230 µs on the test
 * machine, for the same result (test_verifier_is_pbkdf2 compares the two).  An attacker holding
 * the database has fast code of their own either way; the saving is for enrollments
 * with a challenge per device and for bulk imports. */
static int pbkdf2(const char *secret, apr_size_t len, const unsigned char *salt,
                  apr_uint32_t iterations, unsigned char *out)
{
    static const unsigned char first_block[4] = { 0, 0, 0, 1 };
    unsigned char key[SHA256_CBLOCK], pad[SHA256_CBLOCK], u[SHA256_DIGEST_LENGTH];
    EVP_MD_CTX *inner = EVP_MD_CTX_new(), *outer = EVP_MD_CTX_new(), *step = EVP_MD_CTX_new();
    unsigned int n;
    apr_uint32_t i;
    int j, ok = inner && outer && step && len <= INT_MAX && iterations > 0
                && iterations <= VERIFIER_MAX_ITERATIONS;

    memset(key, 0, sizeof(key));
    /* HMAC hashes a key longer than a block (Intune's challenges are) */
    if (ok && len > sizeof(key)) {
        ok = EVP_Digest(secret, len, key, &n, EVP_sha256(), NULL);
    }
    else if (ok) {
        memcpy(key, secret, len);
    }
    for (j = 0; j < SHA256_CBLOCK; j++) {
        pad[j] = key[j] ^ 0x36;
    }
    ok = ok && EVP_DigestInit_ex(inner, EVP_sha256(), NULL)
         && EVP_DigestUpdate(inner, pad, sizeof(pad));
    for (j = 0; j < SHA256_CBLOCK; j++) {
        pad[j] = key[j] ^ 0x5c;
    }
    ok = ok && EVP_DigestInit_ex(outer, EVP_sha256(), NULL)
         && EVP_DigestUpdate(outer, pad, sizeof(pad))
         && hmac_sha256(step, inner, outer, salt, SCEP_VERIFIER_SALT_LEN, first_block,
                        sizeof(first_block), u);
    if (ok) {
        memcpy(out, u, SCEP_VERIFIER_HASH_LEN);
    }
    for (i = 1; ok && i < iterations; i++) {
        ok = hmac_sha256(step, inner, outer, u, sizeof(u), NULL, 0, u);
        for (j = 0; j < SCEP_VERIFIER_HASH_LEN; j++) {
            out[j] ^= u[j];
        }
    }
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(pad, sizeof(pad));
    OPENSSL_cleanse(u, sizeof(u));
    EVP_MD_CTX_free(inner);
    EVP_MD_CTX_free(outer);
    EVP_MD_CTX_free(step);
    if (!ok) {
        OPENSSL_cleanse(out, SCEP_VERIFIER_HASH_LEN);
    }
    return ok;
}

apr_status_t scep_verifier_make(const char *secret, apr_size_t len, scep_verifier_t *v)
{
    memset(v, 0, sizeof(*v));
    /* An empty challenge is no challenge; that is what algorithm 0 says. */
    if (!secret || len == 0) {
        return APR_EINVAL;
    }
    if (RAND_bytes(v->salt, sizeof(v->salt)) != 1
        || !pbkdf2(secret, len, v->salt, SCEP_VERIFIER_ITERATIONS, v->hash)) {
        OPENSSL_cleanse(v, sizeof(*v));
        return APR_EGENERAL;
    }
    v->algorithm = SCEP_VERIFIER_PBKDF2_SHA256;
    v->iterations = SCEP_VERIFIER_ITERATIONS;
    return APR_SUCCESS;
}

/* Challenges this process has verified, remembered so that the next request with the
 * same challenge for the same verifier costs one SHA-256 instead of the PBKDF2 work
 * factor.  That is the common case: an MDM profile or a wildcard registration hands one
 * challenge to many devices.  A slot holds the verifier it was checked against (salt and
 * hash and work factor, so a re-registered challenge never matches an old slot) and SHA-256 over a
 * random per-process key, the verifier and the challenge, never the challenge itself.
 * Wrong challenges are never remembered, so guessing costs what it did; a hit is only
 * possible with the right challenge, so its speed tells an attacker nothing.  A fixed
 * table: a slot is simply overwritten by the next verifier that hashes to it. */
#define VERIFIED_SLOTS 1024

typedef struct verified_slot_t {
    apr_uint32_t iterations;
    unsigned char salt[SCEP_VERIFIER_SALT_LEN];
    unsigned char hash[SCEP_VERIFIER_HASH_LEN];
    unsigned char tag[SHA256_DIGEST_LENGTH];
    int used;
} verified_slot_t;

static pthread_mutex_t verified_lock = PTHREAD_MUTEX_INITIALIZER;
static verified_slot_t verified[VERIFIED_SLOTS];
static unsigned char verified_key[32];
static int verified_key_set;

static verified_slot_t *verified_slot(const scep_verifier_t *v)
{
    return &verified[((unsigned)v->salt[0] | (unsigned)v->salt[1] << 8) % VERIFIED_SLOTS];
}

/* The tag of a challenge for a verifier; 0 when no key could be made.  Takes the lock. */
static int verified_tag(const scep_verifier_t *v, const char *secret, apr_size_t len,
                        unsigned char tag[SHA256_DIGEST_LENGTH])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char key[sizeof(verified_key)];
    int ok;

    pthread_mutex_lock(&verified_lock);
    if (!verified_key_set) {
        verified_key_set = RAND_bytes(verified_key, sizeof(verified_key)) == 1;
    }
    ok = verified_key_set;
    memcpy(key, verified_key, sizeof(key));
    pthread_mutex_unlock(&verified_lock);
    ok = ok && md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1
         && EVP_DigestUpdate(md, key, sizeof(key)) == 1
         && EVP_DigestUpdate(md, v->salt, sizeof(v->salt)) == 1
         && EVP_DigestUpdate(md, v->hash, sizeof(v->hash)) == 1
         && EVP_DigestUpdate(md, secret, len) == 1
         && EVP_DigestFinal_ex(md, tag, NULL) == 1;
    OPENSSL_cleanse(key, sizeof(key));
    EVP_MD_CTX_free(md);
    return ok;
}

static int verified_before(const scep_verifier_t *v, const unsigned char *tag)
{
    verified_slot_t *slot = verified_slot(v);
    int hit;

    pthread_mutex_lock(&verified_lock);
    hit = slot->used && slot->iterations == v->iterations
          && memcmp(slot->salt, v->salt, sizeof(slot->salt)) == 0
          && memcmp(slot->hash, v->hash, sizeof(slot->hash)) == 0
          && scep_util_secret_equal(slot->tag, sizeof(slot->tag), tag, SHA256_DIGEST_LENGTH);
    pthread_mutex_unlock(&verified_lock);
    return hit;
}

static void remember_verified(const scep_verifier_t *v, const unsigned char *tag)
{
    verified_slot_t *slot = verified_slot(v);

    pthread_mutex_lock(&verified_lock);
    slot->iterations = v->iterations;
    memcpy(slot->salt, v->salt, sizeof(slot->salt));
    memcpy(slot->hash, v->hash, sizeof(slot->hash));
    memcpy(slot->tag, tag, sizeof(slot->tag));
    slot->used = 1;
    pthread_mutex_unlock(&verified_lock);
}

int scep_verifier_remembered(const scep_verifier_t *v, const char *secret, apr_size_t len)
{
    unsigned char tag[SHA256_DIGEST_LENGTH];
    int hit;

    if (!v || v->algorithm != SCEP_VERIFIER_PBKDF2_SHA256 || !secret || len == 0) {
        return 0;
    }
    hit = verified_tag(v, secret, len, tag) && verified_before(v, tag);
    OPENSSL_cleanse(tag, sizeof(tag));
    return hit;
}

int scep_verifier_matches(const scep_verifier_t *v, const char *secret, apr_size_t len)
{
    unsigned char hash[SCEP_VERIFIER_HASH_LEN], tag[SHA256_DIGEST_LENGTH];
    int ok, tagged;

    if (!v || v->algorithm != SCEP_VERIFIER_PBKDF2_SHA256 || !secret || len == 0) {
        return 0;
    }
    tagged = verified_tag(v, secret, len, tag);
    if (tagged && verified_before(v, tag)) {
        OPENSSL_cleanse(tag, sizeof(tag));
        return 1;
    }
    ok = pbkdf2(secret, len, v->salt, v->iterations, hash)
         && scep_util_secret_equal(hash, sizeof(hash), v->hash, sizeof(v->hash));
    if (ok && tagged) {
        remember_verified(v, tag);
    }
    OPENSSL_cleanse(hash, sizeof(hash));
    OPENSSL_cleanse(tag, sizeof(tag));
    return ok;
}


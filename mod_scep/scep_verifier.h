/* SPDX-License-Identifier: Apache-2.0 */
/* Challenges are stored only as salted verifiers: PBKDF2-HMAC-SHA256 with a random
 * 16-byte salt.  The iteration count is stored per verifier, so it can change later.
 * A per-process cache of secrets verified before spares a device that retries the PBKDF2
 * cost, without keeping any secret in the clear. */
#ifndef SCEP_VERIFIER_H
#define SCEP_VERIFIER_H

#include <apr_pools.h>
#include <apr_errno.h>

#define SCEP_VERIFIER_PBKDF2_SHA256 1
#define SCEP_VERIFIER_SALT_LEN 16
#define SCEP_VERIFIER_HASH_LEN 32
#define SCEP_VERIFIER_ITERATIONS 1000   /* see docs/performance.md for the cost */

typedef struct scep_verifier_t {
    int algorithm;                      /* SCEP_VERIFIER_*; 0 = none */
    apr_uint32_t iterations;
    unsigned char salt[SCEP_VERIFIER_SALT_LEN];
    unsigned char hash[SCEP_VERIFIER_HASH_LEN];
} scep_verifier_t;

apr_status_t scep_verifier_make(const char *secret, apr_size_t len, scep_verifier_t *v);
/* 1 if `secret` matches; the comparison of the hashes takes constant time. */
int scep_verifier_matches(const scep_verifier_t *v, const char *secret, apr_size_t len);
/* 1 if this process verified exactly `secret` against `v` before (one SHA-256, no
 * PBKDF2); 0 says nothing about the secret: scep_verifier_matches must then judge it. */
int scep_verifier_remembered(const scep_verifier_t *v, const char *secret, apr_size_t len);

#endif

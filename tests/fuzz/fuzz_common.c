/* SPDX-License-Identifier: Apache-2.0 */
/* The fixtures every target uses (see fuzz.h).  The keys are read directly from the PEM
 * files rather than through scep_ca_load: the loader's startup checks are not what is
 * fuzzed, and the RA key is deliberately small (1024 bits) to keep RSA decryption from
 * dominating each run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "fuzz.h"
#include "scep_csr.h"
#include "scep_msg.h"

#ifndef SCEP_FUZZ_PKI
#error "SCEP_FUZZ_PKI must name the tests/fuzz/pki directory"
#endif

static apr_pool_t *root;
static scep_msg_keys_t the_keys;

void fuzz_fail(const char *what)
{
    fprintf(stderr, "fuzz: %s\n", what);
    abort();
}

void fuzz_init(void)
{
    if (root) {
        return;
    }
    if (apr_initialize() != APR_SUCCESS || apr_pool_create(&root, NULL) != APR_SUCCESS) {
        fuzz_fail("cannot initialise APR");
    }
    if (scep_msg_global_init() != APR_SUCCESS) {
        fuzz_fail("cannot register the SCEP attribute OIDs");
    }
}

apr_pool_t *fuzz_pool(void)
{
    apr_pool_t *p;

    fuzz_init();
    if (apr_pool_create(&p, root) != APR_SUCCESS) {
        fuzz_fail("cannot create a pool");
    }
    return p;
}

static FILE *open_pki(const char *name)
{
    const char *dir = getenv("SCEP_FUZZ_PKI");
    char path[4096];
    FILE *f;

    if (!dir || !*dir) {
        dir = SCEP_FUZZ_PKI;
    }
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)
        || !(f = fopen(path, "r"))) {
        fprintf(stderr, "fuzz: cannot open %s/%s\n", dir, name);
        abort();
    }
    return f;
}

static X509 *load_cert(const char *name)
{
    FILE *f = open_pki(name);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);

    fclose(f);
    if (!x) {
        fuzz_fail(name);
    }
    return x;
}

static EVP_PKEY *load_key(const char *name)
{
    FILE *f = open_pki(name);
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);

    fclose(f);
    if (!k) {
        fuzz_fail(name);
    }
    return k;
}

const scep_msg_keys_t *fuzz_keys(void)
{
    if (!the_keys.ca_cert) {
        fuzz_init();
        the_keys.ca_cert = load_cert("ca.pem");
        the_keys.ca_key = load_key("ca.key");
        the_keys.ra_cert = load_cert("ra.pem");
        the_keys.ra_key = load_key("ra.key");
        the_keys.sign_cert = the_keys.ra_cert;
        the_keys.sign_key = the_keys.ra_key;
        ERR_clear_error();
    }
    return &the_keys;
}

void fuzz_content(apr_pool_t *p, const unsigned char *data, size_t len)
{
    scep_pkimsg_t msg;
    scep_csr_t *csr = NULL;
    const char *why = NULL, *issuer = NULL, *subject = NULL, *serial = NULL;
    X509_NAME *name = NULL;

    if (scep_csr_parse(p, data, len, &csr, &why) == APR_SUCCESS) {
        if (!csr || !csr->req || !csr->public_key || !csr->subject) {
            fuzz_fail("scep_csr_parse succeeded without a request, key or subject");
        }
        if (csr->challenge && (csr->challenge_len > SCEP_CHALLENGE_MAX
                               || strlen(csr->challenge) > csr->challenge_len)) {
            fuzz_fail("a challengePassword beyond its bound");
        }
    }
    else if (!why) {
        fuzz_fail("scep_csr_parse refused without saying why");
    }

    memset(&msg, 0, sizeof(msg));
    msg.fail_info = SCEP_FAIL_NONE;
    msg.content = (unsigned char *)data;
    msg.content_len = len;
    if (scep_msg_issuer_and_subject(p, &msg, &issuer, &subject) == APR_SUCCESS
        && (!issuer || !subject)) {
        fuzz_fail("an IssuerAndSubject without both names");
    }
    if (scep_msg_issuer_and_serial(p, &msg, &name, &serial) == APR_SUCCESS
        && (!name || !serial || !*serial)) {
        fuzz_fail("an IssuerAndSerialNumber without issuer or serial");
    }
    ERR_clear_error();
}

/* SPDX-License-Identifier: Apache-2.0 */
/* The local signing CA: its certificate (and chain), its key, and the optional RA
 * certificates that decrypt requests and sign CertReps.  Loaded and checked once at
 * startup (as root, before children fork); read-only afterwards, so every process and
 * thread may use it without locks.  The constant answers to GetCACaps and GetCACert are
 * prepared here too. */
#ifndef SCEP_CA_H
#define SCEP_CA_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "scep_key.h"
#include "scep_msg.h"
#include "scep_util.h"

typedef struct scep_ca_t scep_ca_t;

/* Keys a CA may hold: the CA's, the RA's, the RA signer's. */
#define SCEP_CA_ROLES 3

/* PEM files, or pkcs11: URIs (RFC 7512) for the keys and the CA and RA certificates;
 * NULL when not configured.  Paths are used as given (resolve them first). */
typedef struct scep_ca_files_t {
    const char *ca_cert_file;      /* issuing CA first, then optional chain certificates */
    const char *ca_key_file;
    const char *ra_cert_file;      /* decrypts requests; also signs unless a signer is set */
    const char *ra_key_file;
    const char *ra_sign_cert_file; /* optional separate CertRep signer */
    const char *ra_sign_key_file;
    const char *next_ca_file;      /* optional: the CA that takes over (GetNextCACert) */
    const char *previous_ca_file;  /* optional: CAs whose certificates still renew */
    int forwarding;                /* an upstream CA issues: no CA key here, an RA needed */
    const scep_key_dialog_t *dialog; /* how encrypted keys are unlocked; NULL: they refuse */
} scep_ca_files_t;

/* A file that exists, is a regular file, is not empty, and (`is_key`: keys and other
 * secrets) is readable by its owner only (mode 0600 or 0400).  APR_EINVAL with *errmsg
 * naming the role and the file otherwise. */
apr_status_t scep_ca_check_file(apr_pool_t *p, const char *role, const char *path,
                                int is_key, const char **errmsg);

/* Loads and cross-checks every file.  What works but will bite (an RA certificate
 * without keyEncipherment, a certificate near its end: the clock is read here, at
 * startup) is logged as a warning.  On failure returns APR_EINVAL (or the file error)
 * and sets *errmsg to one sentence naming the role, the file and what is wrong.
 * Everything is allocated in `p`; OpenSSL objects are freed by a cleanup on `p`. */
apr_status_t scep_ca_load(apr_pool_t *p, const scep_ca_files_t *files,
                          const scep_log_t *log, scep_ca_t **ca, const char **errmsg);

/* Keys in a PKCS#11 token.  scep_ca_load checks them and lets go of them again (the
 * parent must not carry a session across fork); each process that serves attaches its
 * own: every token key loaded into the CA (replacing what it held), freed with `p`.
 * Until then, and after a failed attach, the CA is not ready: a request cannot be
 * served (the glue answers 503).  Not thread-safe: the caller serialises attaching
 * against every use of the keys. */
int scep_ca_in_token(const scep_ca_t *ca);
int scep_ca_ready(const scep_ca_t *ca);
/* Whether every token key of the CA still works: a signature with each, a decryption
 * with the one that opens requests, each checked against its certificate; with
 * `recipients` (SCEP_MSG_RECIPIENT_* bits), a decryption with those keys alone.  A request that failed (a 500, an envelope no key
 * opened) asks, so that only the token's own failure, never a client's bad message,
 * makes the host open its session again.  It costs one private-key operation in the
 * token per key asked.  1 for a CA without a token (or without a token key asked). */
int scep_ca_token_works(const scep_ca_t *ca, int recipients);
apr_status_t scep_ca_token_attach(scep_ca_t *ca, apr_pool_t *p, const scep_log_t *log,
                                  const char **errmsg);
/* Frees this process's token keys (the CA is then not ready); when every CA let go of
 * its keys, scep_token_close ends the session. */
void scep_ca_token_detach(scep_ca_t *ca, apr_pool_t *p);

/* The GetCACaps body (text/plain, one keyword a line). */
const char *scep_ca_caps(const scep_ca_t *ca);

/* The GetCACert answer: content type and DER body, both owned by the CA object. */
void scep_ca_cacert(const scep_ca_t *ca, const char **content_type,
                    const unsigned char **der, apr_size_t *der_len);

/* The GetNextCACert answer (a SignedData by the current signer holding the next CA's
 * certificates), or NULL when no next CA is configured. */
void scep_ca_nextcacert(const scep_ca_t *ca, const unsigned char **der, apr_size_t *der_len);

/* Whether this CA signs here (it holds the CA key), rather than an upstream CA. */
int scep_ca_can_sign(const scep_ca_t *ca);

/* Subject of the issuing CA certificate, for log lines. */
const char *scep_ca_name(const scep_ca_t *ca);

/* What every certificate this CA issues shares, made once at load time instead of from
 * configuration text per certificate.  All NULL where an upstream CA issues. */
typedef struct scep_ca_issuance_t {
    X509_EXTENSION *end_entity_constraints;     /* critical basicConstraints CA:FALSE */
    X509_EXTENSION *authority_key_id;           /* names the CA certificate's key id */
    EVP_MD *sha1;                               /* subject key ids (RFC 5280 4.2.1.2) */
} scep_ca_issuance_t;
const scep_ca_issuance_t *scep_ca_issuance(const scep_ca_t *ca);

/* The keys and certificates requests are decrypted and CertReps signed with. */
const scep_msg_keys_t *scep_ca_msg_keys(const scep_ca_t *ca);

/* The issuing CA certificate (ScepCACertificateFile's first), and its key: NULL where an
 * upstream CA issues. */
X509 *scep_ca_cert(const scep_ca_t *ca);
EVP_PKEY *scep_ca_key(const scep_ca_t *ca);

/* Whether `x` is one of the CA certificate file's chain certificates (those after the
 * first). */
int scep_ca_in_chain(const scep_ca_t *ca, X509 *x);

/* Whether `cert` was issued by this CA or one of its previous CAs (issuer name and
 * signature). */
int scep_ca_issued(const scep_ca_t *ca, X509 *cert);

/* A CA made of objects already in memory, without the loader's checks and with nothing
 * prepared for issuance or GetCACert: for tests that build their own certificates.  The
 * CA signs its own CertReps; `cert` and `key` stay the caller's. */
scep_ca_t *scep_ca_assemble(apr_pool_t *p, X509 *cert, EVP_PKEY *key, const char *name);

#endif

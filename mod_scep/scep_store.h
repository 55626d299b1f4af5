/* SPDX-License-Identifier: Apache-2.0 */
/* What mod_scep keeps in its database, as plain C records: device registrations, minted
 * (dynamic) challenges, failure counters, transactions and issued certificates, with
 * their encoding into scep_db's versioned records.
 *
 * Every function works inside a transaction the caller owns (scep_db_begin/commit), so
 * a caller can combine several steps into one atomic write.  Records returned are
 * copied into the given pool and outlive the transaction.  Times are Unix seconds, and
 * `now` is always passed in so the policy and the tests decide what time it is.  Keys
 * are canonical (scep_name.h); challenges are kept as verifiers (scep_verifier.h). */
#ifndef SCEP_STORE_H
#define SCEP_STORE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_errno.h>
#include <openssl/asn1.h>

#include "scep_db.h"
#include "scep_verifier.h"

/* ---- devices ------------------------------------------------------------------- */

#define SCEP_DEVICE_ONE_TIME 0x1        /* the challenge works for one enrollment */
#define SCEP_DEVICE_DISABLED 0x2
#define SCEP_DEVICE_USED     0x4        /* a one-time challenge has been consumed */
#define SCEP_DEVICE_APPROVAL 0x8        /* first enrollments wait for an operator */

typedef struct scep_device_t {
    const char *fqdn;                   /* canonical; "*" or "*.suffix" for wildcards */
    apr_array_header_t *ips;            /* const char *, canonical; may be empty */
    const char *serial;                 /* device serial number; NULL = not checked */
    scep_verifier_t verifier;           /* algorithm 0 = no challenge stored */
    unsigned int flags;                 /* SCEP_DEVICE_* */
    apr_int64_t expires;                /* 0 = never */
    const char *profile;                /* NULL = any endpoint */
    const char *comment;
    apr_int64_t created, updated;
    /* enrollment state, kept by the policy */
    const char *last_serial;            /* hex, upper-case; NULL = never enrolled */
    apr_int64_t last_not_after;
    apr_int64_t last_enrolled;
    apr_int64_t enrollments;
} scep_device_t;

/* A zeroed device with an empty ips array. */
scep_device_t *scep_store_device_new(apr_pool_t *p, const char *fqdn);

/* The record stored under exactly this (canonical) key.  SCEP_DB_NOTFOUND if none. */
apr_status_t scep_store_device_get(scep_txn_t *txn, apr_pool_t *p, const char *fqdn,
                                   scep_device_t **dev);

/* The registration that applies to a canonical FQDN: the exact one, else the most
 * specific wildcard ("*.a.b.c" before "*.b.c" before "*").  SCEP_DB_NOTFOUND if none. */
apr_status_t scep_store_device_find(scep_txn_t *txn, apr_pool_t *p, const char *fqdn,
                                    scep_device_t **dev);

apr_status_t scep_store_device_put(scep_txn_t *txn, apr_pool_t *p, const scep_device_t *dev);
apr_status_t scep_store_device_delete(scep_txn_t *txn, const char *fqdn);

typedef int (*scep_device_visit_fn)(void *baton, const scep_device_t *dev);
/* In key order; fn returns non-zero to stop.  Records that cannot be decoded stop the
 * walk with their status. */
apr_status_t scep_store_device_foreach(scep_txn_t *txn, apr_pool_t *p, scep_device_visit_fn fn,
                                       void *baton);

/* ---- minted (dynamic) challenges -------------------------------------------------
 * Random one-time challenges handed out by the admin endpoint or the tool.  They are
 * 128-bit random values, so an unsalted SHA-256 is the key: it cannot be reversed, and
 * lets a device's challenge be found without knowing the device. */
#define SCEP_MINTED_BYTES 16            /* random bytes; the text is their hex */

typedef struct scep_minted_t {
    apr_int64_t created, expires;
    const char *fqdn;                   /* NULL = any name */
    const char *profile;                /* NULL = any endpoint */
} scep_minted_t;

/* Makes and stores a new challenge; *challenge is its text (32 hex characters). */
apr_status_t scep_store_minted_create(scep_txn_t *txn, apr_pool_t *p, apr_int64_t now,
                                      apr_int64_t ttl, const char *fqdn, const char *profile,
                                      const char **challenge, scep_minted_t **rec);

/* The record for a challenge text, expired or not.  SCEP_DB_NOTFOUND if none. */
apr_status_t scep_store_minted_get(scep_txn_t *txn, apr_pool_t *p, const char *secret,
                                   apr_size_t len, scep_minted_t **rec);
/* Removes it (consumption).  SCEP_DB_NOTFOUND if it was already gone. */
apr_status_t scep_store_minted_delete(scep_txn_t *txn, const char *secret, apr_size_t len);
/* Removes every expired challenge; *removed counts them. */
apr_status_t scep_store_minted_purge(scep_txn_t *txn, apr_pool_t *p, apr_int64_t now,
                                     apr_size_t *removed);
apr_status_t scep_store_minted_count(scep_txn_t *txn, apr_size_t *count);

/* ---- failure counters (lockout) --------------------------------------------------
 * Kept per requested FQDN, apart from the registration, so that one device guessing at
 * a wildcard's challenge locks out only its own name. */
typedef struct scep_failure_t {
    apr_int64_t count;                  /* consecutive failures */
    apr_int64_t last;                   /* time of the last failure */
    apr_int64_t locked_until;           /* 0 = not locked */
    apr_int64_t period;                 /* the longest lockout period that counted here:
                                         * the record matters that long after `last` */
} scep_failure_t;

apr_status_t scep_store_failure_get(scep_txn_t *txn, const char *fqdn, scep_failure_t *f);
apr_status_t scep_store_failure_put(scep_txn_t *txn, apr_pool_t *p, const char *fqdn,
                                    const scep_failure_t *f);
apr_status_t scep_store_failure_clear(scep_txn_t *txn, const char *fqdn);
/* The counters of two different names at once (a requested name and the wildcard that
 * covers it), as two scep_store_failure_get calls would give them, an absent one zeroed
 * with its *found_ 0: on a shared store one lookup instead of two. */
apr_status_t scep_store_failure_get_pair(scep_txn_t *txn, const char *a, const char *b,
                                         scep_failure_t *fa, int *found_a,
                                         scep_failure_t *fb, int *found_b);
/* Removes the records that neither lock nor count any more: not locked at `now` and no
 * failure for their period (at least `idle` seconds).  *removed counts them. */
apr_status_t scep_store_failure_purge(scep_txn_t *txn, apr_pool_t *p, apr_int64_t now,
                                      apr_int64_t idle, apr_size_t *removed);
apr_status_t scep_store_failure_count(scep_txn_t *txn, apr_size_t *count);
/* The same number where it costs nothing to know (LMDB), else the database's running
 * estimate (PostgreSQL's live-row statistics, a moment behind): for the lockout's cap,
 * which an unauthenticated client's failures reach, and which must not cost a scan of
 * the table while every node's writers wait. */
apr_status_t scep_store_failure_count_estimate(scep_txn_t *txn, apr_size_t *count);

/* ---- transactions ------------------------------------------------------------- */

#define SCEP_REQUEST_DIGEST_LEN 32      /* SHA-256 of the PKCS#10 DER */

/* Transaction states.  A request held for approval is "pending" until an operator makes
 * it "approved" (the module issues on the device's next poll) or "rejected"; one never
 * decided becomes "expired". */
#define SCEP_TXN_ISSUED   "issued"
#define SCEP_TXN_PENDING  "pending"
#define SCEP_TXN_APPROVED "approved"
#define SCEP_TXN_REJECTED "rejected"
#define SCEP_TXN_EXPIRED  "expired"
#define SCEP_TXN_UPSTREAM "upstream"    /* waiting for an upstream CA (forwarding) */

typedef struct scep_transaction_t {
    const char *transaction_id;
    const char *state;                  /* SCEP_TXN_* */
    unsigned char request_digest[SCEP_REQUEST_DIGEST_LEN];
    const char *fqdn;
    const char *serial;                 /* hex, upper-case; once issued */
    apr_int64_t created;
    /* a held request: what issuing it later needs, and who decided */
    const unsigned char *request;       /* the PKCS#10 (DER) */
    apr_size_t request_len;
    int grant_kind;                     /* scep_grant_kind_e of scep_policy.h */
    const char *registration;           /* the registration key that granted it */
    const char *ips;                    /* forced addresses, comma-separated; NULL = none */
    const char *serial_number;          /* forced subject serialNumber */
    const char *renews;                 /* serial of the certificate it renews */
    unsigned char signer_key[SCEP_REQUEST_DIGEST_LEN]; /* SHA-256 of the signer's SPKI */
    int has_signer_key;
    const char *client_ip;
    const char *subject;                /* the request's subject, for the operator */
    apr_int64_t decided_at;
    const char *decided_by;
    const char *reason;                 /* the operator's reason for a rejection */
    int upstream_pending;               /* the upstream CA answered PENDING: poll it */
    const char *endpoint;               /* held: the endpoint that may complete it
                                         * (scep_policy.h); NULL in older records */
    const char *identity_name;          /* held, other kinds than hosts: the identity as
                                         * the request carries it (scep_identity_t.name) */
    int identity_where;                 /* held: scep_identity_where_e; 0 for hosts */
    int bare_key;                       /* stored under the ID alone (older records) */
} scep_transaction_t;

/* The transaction `requester` (SHA-256 of its key's SubjectPublicKeyInfo) started under
 * `id`; else a record from before requesters were kept, stored under the ID alone, which
 * the caller must judge (bare_key set).  SCEP_DB_NOTFOUND if neither. */
apr_status_t scep_store_transaction_get_for(scep_txn_t *txn, apr_pool_t *p, const char *id,
                                            const unsigned char *requester,
                                            scep_transaction_t **t);
/* The one transaction with this ID, whoever started it: for the operator, who names a
 * transaction by its ID.  SCEP_DB_EXISTS when several requesters used the ID. */
apr_status_t scep_store_transaction_get(scep_txn_t *txn, apr_pool_t *p, const char *id,
                                        scep_transaction_t **t);
/* Stored under the ID and the requester (signer_key), or under the ID alone when the
 * record has no signer key or was read from there (bare_key). */
apr_status_t scep_store_transaction_put(scep_txn_t *txn, apr_pool_t *p,
                                        const scep_transaction_t *t);

typedef int (*scep_transaction_visit_fn)(void *baton, const scep_transaction_t *t);
/* Every transaction that is not SCEP_TXN_ISSUED (held, decided or expired), in
 * transactionID order.  The record lives until fn returns. */
apr_status_t scep_store_transaction_foreach_held(scep_txn_t *txn, apr_pool_t *p,
                                                 scep_transaction_visit_fn fn, void *baton);
/* Every transaction, issued ones too, in key order (transactionID, then requester). */
apr_status_t scep_store_transaction_foreach(scep_txn_t *txn, apr_pool_t *p,
                                            scep_transaction_visit_fn fn, void *baton);
/* The record stored under exactly the key `t` was read from (its ID, and its requester
 * unless bare_key): what a walk found, read again to be changed. */
apr_status_t scep_store_transaction_reread(scep_txn_t *txn, apr_pool_t *p,
                                           const scep_transaction_t *t,
                                           scep_transaction_t **fresh);

/* ---- issued certificates ------------------------------------------------------- */

typedef struct scep_cert_rec_t {
    const char *serial;                 /* hex, upper-case (the key is its bytes) */
    const unsigned char *der;
    apr_size_t der_len;
    const char *fqdn;                   /* the registration name it was issued to */
    const char *subject;                /* RFC 2253 text */
    const char *transaction_id;
    apr_int64_t not_before, not_after, issued_at;
    apr_int64_t revoked_at;             /* 0 = not revoked */
    int revocation_reason;              /* RFC 5280 CRLReason, when revoked */
    const unsigned char *issuer_key_id; /* its authorityKeyIdentifier; may be absent */
    apr_size_t issuer_key_id_len;
} scep_cert_rec_t;

/* A serial number as records keep it and scepreg prints it: upper-case hex of whole bytes
 * (BN_bn2hex; negative ones with a leading '-'), in the pool.  NULL if it cannot be
 * converted. */
const char *scep_store_serial_hex(apr_pool_t *p, const ASN1_INTEGER *serial);

/* Stores the certificate and its FQDN index entry.  The same certificate again (the same
 * DER) is a rewrite: its revocation, name and dates change.  Another certificate under a
 * serial already recorded is refused with SCEP_DB_EXISTS, and the transaction with it. */
apr_status_t scep_store_cert_put(scep_txn_t *txn, apr_pool_t *p, const scep_cert_rec_t *c);
apr_status_t scep_store_cert_get(scep_txn_t *txn, apr_pool_t *p, const char *serial_hex,
                                 scep_cert_rec_t **c);

typedef int (*scep_cert_visit_fn)(void *baton, const scep_cert_rec_t *c);
/* Every certificate (fqdn NULL, in serial order) or those of one FQDN.  The record given
 * to fn lives only until fn returns (a walk over a large fleet stays small): copy what
 * must be kept into a pool of your own. */
apr_status_t scep_store_cert_foreach(scep_txn_t *txn, apr_pool_t *p, const char *fqdn,
                                     scep_cert_visit_fn fn, void *baton);

/* ---- revocation -----------------------------------------------------------------
 * Revocation marks the certificate record and bumps the CRL generation, the number the
 * published CRL carries as its CRLNumber: a CRL is rebuilt only when it changed. */

enum {                                  /* RFC 5280 CRLReason values */
    SCEP_REASON_UNSPECIFIED = 0,
    SCEP_REASON_KEY_COMPROMISE = 1,
    SCEP_REASON_CA_COMPROMISE = 2,
    SCEP_REASON_AFFILIATION_CHANGED = 3,
    SCEP_REASON_SUPERSEDED = 4,
    SCEP_REASON_CESSATION_OF_OPERATION = 5,
    SCEP_REASON_CERTIFICATE_HOLD = 6,
    SCEP_REASON_REMOVE_FROM_CRL = 8,
    SCEP_REASON_PRIVILEGE_WITHDRAWN = 9,
    SCEP_REASON_AA_COMPROMISE = 10
};

/* The RFC 5280 name ("keyCompromise"); "unknown" for a value without one. */
const char *scep_store_reason_name(int reason);
/* A reason an operator may give (case-insensitive name), or -1: holds, which would need
 * an unrevoke, and CA/AA compromise are not device revocations. */
int scep_store_reason_parse(const char *name);

typedef struct scep_crl_state_t {
    apr_int64_t generation;             /* revocations so far; 0 = none ever */
    apr_int64_t changed_at;             /* time of the last revocation */
} scep_crl_state_t;

apr_status_t scep_store_crl_state_get(scep_txn_t *txn, scep_crl_state_t *state);

/* The CRL last signed, kept so that every process serves the same one and its number
 * only grows. */
typedef struct scep_crl_published_t {
    apr_int64_t number;                 /* its CRLNumber */
    apr_int64_t generation;             /* the scep_crl_state_t generation it reflects */
    apr_int64_t this_update, next_update;
    unsigned char ca_id[32];            /* SHA-256 of the signing CA certificate */
    const unsigned char *der;
    apr_size_t der_len;
} scep_crl_published_t;

/* SCEP_DB_NOTFOUND before the first CRL. */
apr_status_t scep_store_crl_published_get(scep_txn_t *txn, apr_pool_t *p,
                                          scep_crl_published_t **pub);
apr_status_t scep_store_crl_published_put(scep_txn_t *txn, apr_pool_t *p,
                                          const scep_crl_published_t *pub);

/* Revokes a recorded certificate.  A certificate already revoked keeps its first time
 * and reason (*already set).  SCEP_DB_NOTFOUND if there is no such certificate. */
apr_status_t scep_store_cert_revoke(scep_txn_t *txn, apr_pool_t *p, const char *serial_hex,
                                    apr_int64_t now, int reason, int *already);

/* ---- many registrations at once (an import) ------------------------------------------
 * PostgreSQL answers each call in one statement, so that an import of 50,000 rows is a
 * hundred round trips rather than a hundred thousand; LMDB is asked one key at a time.
 * The keys of one call must differ.  *failed is the index of the record a failure was
 * about, -1 when the engine cannot tell (one statement failed as a whole). */
#define SCEP_STORE_MANY_MAX 1000        /* records per call */

/* devs[i] is the registration of fqdns[i] (exact key), NULL when there is none. */
apr_status_t scep_store_device_get_many(scep_txn_t *txn, apr_pool_t *p,
                                        const char *const *fqdns, int n, scep_device_t **devs,
                                        int *failed);
/* Writes each as scep_store_device_put does. */
apr_status_t scep_store_device_put_many(scep_txn_t *txn, apr_pool_t *p,
                                        const scep_device_t *const *devs, int n, int *failed);

/* ---- copying a whole store ---------------------------------------------------------
 * The kinds the policy reaches by key alone, walked and written whole, so that scepreg can
 * move every record between engines (scepreg copy).  A minted challenge travels by the
 * digest it is kept under: its text is kept nowhere. */
#define SCEP_MINTED_DIGEST_LEN 32       /* SHA-256 of the challenge text */

typedef int (*scep_minted_visit_fn)(void *baton, const unsigned char *digest,
                                    const scep_minted_t *m);
/* Every minted challenge, expired or not, in digest order; the record lives until fn
 * returns.  fn returns non-zero to stop. */
apr_status_t scep_store_minted_foreach(scep_txn_t *txn, apr_pool_t *p,
                                       scep_minted_visit_fn fn, void *baton);
/* Keeps a challenge under its digest; SCEP_DB_EXISTS when the digest is taken. */
apr_status_t scep_store_minted_put_digest(scep_txn_t *txn, apr_pool_t *p,
                                          const unsigned char *digest, const scep_minted_t *m);

typedef int (*scep_failure_visit_fn)(void *baton, const char *fqdn, const scep_failure_t *f);
/* Every failure counter, in key order; the name lives until fn returns. */
apr_status_t scep_store_failure_foreach(scep_txn_t *txn, apr_pool_t *p,
                                        scep_failure_visit_fn fn, void *baton);

/* Sets the CRL state as another store had it (revocations bump it themselves). */
apr_status_t scep_store_crl_state_put(scep_txn_t *txn, apr_pool_t *p,
                                      const scep_crl_state_t *state);

#endif

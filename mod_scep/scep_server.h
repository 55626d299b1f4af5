/* SPDX-License-Identifier: Apache-2.0 */
/* What one SCEP endpoint does with a PKIOperation, independent of httpd: decode and
 * check the pkiMessage, authorize the request, issue, and build the CertRep.  The glue
 * turns the reply into an HTTP response; the tools and tests call the same code. */
#ifndef SCEP_SERVER_H
#define SCEP_SERVER_H

#include <apr_pools.h>
#include <apr_errno.h>

#include "scep_ca.h"
#include "scep_db.h"
#include "scep_policy.h"
#include "scep_util.h"

#define SCEP_SUBJECT_FROM_CSR 0
#define SCEP_SUBJECT_CN_ONLY  1

/* Key usage bits, as in the keyUsage BIT STRING (RFC 5280 4.2.1.3). */
#define SCEP_KU_DIGITAL_SIGNATURE 0x80
#define SCEP_KU_NON_REPUDIATION   0x40
#define SCEP_KU_KEY_ENCIPHERMENT  0x20
#define SCEP_KU_DATA_ENCIPHERMENT 0x10
#define SCEP_KU_KEY_AGREEMENT     0x08

/* Issuance and admission policy of one endpoint: plain data, prepared at configuration
 * time so that nothing in it is parsed per request.  Owned by the configuration pool. */
typedef struct scep_profile_t {
    int validity_days;
    unsigned int key_usage;            /* SCEP_KU_* bits; 0 = no keyUsage extension */
    const unsigned char *eku_der;      /* DER ExtKeyUsageSyntax, NULL = no extension */
    apr_size_t eku_der_len;
    int subject_mode;                  /* SCEP_SUBJECT_* */
    int min_key_bits;
    int legacy_algorithms;             /* accept MD5 and single DES */
    int failure_detail;                /* refusals carry the log's reason to the client */
    const unsigned char *challenge_sha256; /* NULL = no static challenge configured */
    int allow_no_challenge;
    apr_size_t max_message_size;
    scep_policy_conf_t registrations;  /* used where a device database is configured */
    apr_int64_t crl_validity;          /* seconds from a CRL's thisUpdate to nextUpdate */
    const unsigned char *cdp_der;      /* DER CRLDistributionPoints for issued certificates */
    apr_size_t cdp_der_len;
    struct scep_upstream_t *upstream;  /* set: an upstream CA issues (scep_forward.h) */
} scep_profile_t;

/* Fills a profile with the documented defaults (no challenge, clientAuth EKU, …). */
void scep_profile_defaults(scep_profile_t *profile, apr_pool_t *p);

/* Configuration helpers: each returns NULL on success or an error sentence. */
const char *scep_profile_key_usage_bit(const char *word, unsigned int *bit);
const char *scep_profile_set_eku(scep_profile_t *profile, apr_pool_t *p,
                                 int count, const char *const *words);
void scep_profile_set_challenge(scep_profile_t *profile, apr_pool_t *p, const char *challenge);
/* The CRL distribution point URLs (http, https or ldap) issued certificates name. */
const char *scep_profile_set_crl_urls(scep_profile_t *profile, apr_pool_t *p,
                                      int count, const char *const *urls);

/* Where a request came from, for policy and logs. */
typedef struct scep_peer_t {
    const char *client_ip;
    const char *location;              /* the configured endpoint, for log lines */
} scep_peer_t;

/* The answer to a PKIOperation. */
typedef struct scep_reply_t {
    int http_status;                   /* 200 with a CertRep, or 4xx/5xx with no body */
    const unsigned char *body;
    apr_size_t body_len;
    const char *transaction_id;        /* NULL when the message could not be read */
    const char *outcome;               /* "issued", "renewed", "certificate" (GetCert), "crl",
                                        * "failure:badRequest", "malformed", … */
    /* for the audit record */
    const char *fqdn;                  /* the name asked for or issued to, may be NULL */
    const char *serial;                /* hex serial of the certificate sent */
    const char *reason;                /* why a request was refused (no secrets) */
} scep_reply_t;

/* Answers one PKIOperation.  With `db` (may be NULL), requests are authorized against
 * its registrations and every issued certificate is recorded there before the reply is
 * returned; without, by the profile's static challenge. */
apr_status_t scep_server_pkioperation(apr_pool_t *p, const scep_ca_t *ca,
                                      const scep_profile_t *profile, scep_db_t *db,
                                      const unsigned char *msg, apr_size_t msg_len,
                                      const scep_peer_t *peer, const scep_log_t *log,
                                      scep_reply_t *reply);

#endif

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
#include "scep_profile.h"
#include "scep_util.h"

/* Where a request came from, for policy and logs. */
typedef struct scep_peer_t {
    const char *client_ip;
    const char *location;              /* the configured endpoint, for log lines */
} scep_peer_t;

/* What became of a PKIOperation, for the audit record, log lines and the status page,
 * which print it by its one name (scep_server_outcome_name). */
typedef enum scep_outcome_e {
    SCEP_OUTCOME_NONE = 0,                  /* nothing decided yet; has no name */
    SCEP_OUTCOME_ISSUED,                    /* "issued" */
    SCEP_OUTCOME_RENEWED,                   /* "renewed" */
    SCEP_OUTCOME_REPLAYED,                  /* "replayed": a retried transaction's */
    SCEP_OUTCOME_PENDING,                   /* "pending" */
    SCEP_OUTCOME_CERTIFICATE,               /* "certificate": GetCert */
    SCEP_OUTCOME_CRL,                       /* "crl": GetCRL */
    SCEP_OUTCOME_FAILURE_BAD_ALG,           /* "failure:badAlg", and so on: a FAILURE */
    SCEP_OUTCOME_FAILURE_BAD_MESSAGE_CHECK, /* CertRep, by its failInfo */
    SCEP_OUTCOME_FAILURE_BAD_REQUEST,
    SCEP_OUTCOME_FAILURE_BAD_TIME,
    SCEP_OUTCOME_FAILURE_BAD_CERT_ID,
    SCEP_OUTCOME_MALFORMED,                 /* "malformed": no CertRep can answer it */
    SCEP_OUTCOME_TOO_LARGE,                 /* "too-large" */
    SCEP_OUTCOME_STORE_FULL,                /* "store-full" */
    SCEP_OUTCOME_UPSTREAM_DOWN,             /* "upstream-down" */
    SCEP_OUTCOME_ERROR,                     /* "error": a server-side failure */
    SCEP_OUTCOME_FAILURE_NONE,              /* "failure:none": an upstream's FAILURE
                                             * without a failInfo we know */
    SCEP_OUTCOME_COUNT
} scep_outcome_e;

/* The outcome's name ("issued", "failure:badRequest", …); NULL for SCEP_OUTCOME_NONE. */
const char *scep_server_outcome_name(scep_outcome_e outcome);
/* Whether the outcome is a FAILURE CertRep (of any failInfo). */
int scep_server_outcome_is_failure(scep_outcome_e outcome);

/* The answer to a PKIOperation. */
typedef struct scep_reply_t {
    int http_status;                   /* 200 with a CertRep, or 4xx/5xx with no body */
    const unsigned char *body;
    apr_size_t body_len;
    const char *transaction_id;        /* NULL when the message could not be read */
    scep_outcome_e outcome;
    /* for the audit record */
    const char *fqdn;                  /* the name asked for or issued to, may be NULL */
    const char *serial;                /* hex serial of the certificate sent */
    const char *reason;                /* why a request was refused (no secrets) */
    /* for the notifier */
    const char *subject;               /* of the certificate issued, or of the request */
    const char *revoked;               /* hex serial a renewal revoked, or NULL */
    /* for the host: a key in the CA's token failed (the answer is 503); the host should
     * open its session with the token again */
    int token_failed;
} scep_reply_t;

/* Answers one PKIOperation.  With `db` (may be NULL), requests are authorized against
 * its registrations and every issued certificate is recorded there before the reply is
 * returned; without, by the profile's static challenge.  `now` (seconds since the epoch)
 * is the request's time, read once by the host: every record, validity and cache age of
 * this request is measured from it. */
apr_status_t scep_server_pkioperation(apr_pool_t *p, const scep_ca_t *ca,
                                      const scep_profile_t *profile, scep_db_t *db,
                                      const unsigned char *msg, apr_size_t msg_len,
                                      const scep_peer_t *peer, apr_int64_t now,
                                      const scep_log_t *log, scep_reply_t *reply);

#endif

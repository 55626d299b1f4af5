/* SPDX-License-Identifier: Apache-2.0 */
/* The operator's webhooks: the validator asked before a certificate is issued, and the
 * notifier told what was issued, refused or revoked.  This unit owns their configuration
 * (plain data, the configuration pool), the JSON documents sent, the HMAC-SHA256
 * signature over "<timestamp>.<body>", one POST (with the transport of scep_forward.c)
 * and the strict reading of a validator's answer.  docs/webhooks.md is the contract a
 * validator or a receiver of events implements. */
#ifndef SCEP_WEBHOOK_H
#define SCEP_WEBHOOK_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_errno.h>

#include "scep_csr.h"
#include "scep_forward.h"
#include "scep_profile.h"
#include "scep_util.h"

typedef enum scep_hook_mode_e {
    SCEP_HOOK_AFTER_REGISTRATION = 0,  /* an extra check once the registration allowed */
    SCEP_HOOK_ALONE                    /* the validator alone authorises */
} scep_hook_mode_e;

typedef enum scep_hook_down_e {
    SCEP_HOOK_DOWN_DENY = 0,           /* a validator that cannot answer refuses */
    SCEP_HOOK_DOWN_PENDING             /* the request is held and asked again on polls */
} scep_hook_down_e;

#define SCEP_HOOK_TIMEOUT_MS 5000
#define SCEP_HOOK_TIMEOUT_MAX_MS 60000
#define SCEP_HOOK_SECRET_MIN 16        /* bytes: a shorter secret is guessable */
#define SCEP_HOOK_SECRET_MAX 4096
#define SCEP_HOOK_ANSWER_MAX 65536     /* bytes of a validator's answer */
#define SCEP_HOOK_VALUE_MAX 1024       /* bytes of one supplied identity value */
#define SCEP_HOOK_VALUES_MAX 32        /* supplied identity values in one answer */
#define SCEP_HOOK_QUEUE_DEFAULT 1000   /* events waiting to be sent, per child */
#define SCEP_HOOK_RETRIES_DEFAULT 3

/* One webhook of an endpoint (ScepValidate* or ScepNotify*). */
typedef struct scep_hook_conf_t {
    const char *url;
    const char *secret_file;
    const unsigned char *secret;       /* read at startup (scep_webhook_load_secret) */
    apr_size_t secret_len;
    long timeout_ms;                   /* the whole exchange, connection included */
    scep_hook_mode_e mode;             /* validator */
    scep_hook_down_e unavailable;      /* validator */
    int send_challenge;                /* validator: the request's challengePassword too */
    int queue;                         /* notifier: events waiting, per child */
    int retries;                       /* notifier: further attempts per event */
    const scep_upstream_conf_t *transport; /* the section's ScepUpstream* proxy and TLS
                                        * settings, NULL: direct, the system's trust */
    const char *defined_at;            /* "file:line", for startup messages */
} scep_hook_conf_t;

/* Fills the documented defaults. */
void scep_webhook_defaults(scep_hook_conf_t *conf);

/* Reads conf->secret_file, which must be mode 0600 or 0400 like a key, hold 16 to 4096
 * bytes (a final newline is not part of it) and is never logged.  APR_EINVAL with
 * *errmsg otherwise. */
apr_status_t scep_webhook_load_secret(apr_pool_t *p, scep_hook_conf_t *conf,
                                      const char **errmsg);

/* What the validator is asked about. */
typedef struct scep_hook_request_t {
    const char *transaction_id;
    const char *operation;             /* "PKCSReq", "RenewalReq", "CertPoll" */
    const char *endpoint;              /* the configured location */
    const scep_csr_t *csr;             /* parsed, verified */
    const scep_identity_t *identity;   /* what the registration found, or NULL */
    const char *registration;          /* the registration's key, NULL: none found */
    const char *client_ip;
    int send_challenge;
} scep_hook_request_t;

/* The validation document (JSON, UTF-8, in the pool). */
const char *scep_webhook_request_document(apr_pool_t *p, const scep_hook_request_t *req,
                                          apr_size_t *len);

typedef enum scep_hook_event_e {
    SCEP_HOOK_EVENT_ISSUED = 0,
    SCEP_HOOK_EVENT_REFUSED,
    SCEP_HOOK_EVENT_REVOKED
} scep_hook_event_e;

/* One event for the notifier; copied when queued. */
typedef struct scep_hook_event_t {
    scep_hook_event_e event;
    apr_int64_t time;
    const char *transaction_id;
    const char *endpoint;
    const char *subject;               /* issued: the certificate's; refused: the request's */
    const char *serial;                /* issued, revoked: hex */
    const char *identity;              /* the registration's key or the name asked for */
    const char *client_ip;
    const char *reason;                /* refused: the log's reason; revoked: why */
} scep_hook_event_t;

/* The event document (JSON, in the pool). */
const char *scep_webhook_event_document(apr_pool_t *p, const scep_hook_event_t *ev,
                                        apr_size_t *len);

/* "sha256=<hex of HMAC-SHA256(secret, "<timestamp>.<body>")>", or NULL on failure. */
const char *scep_webhook_signature(apr_pool_t *p, const unsigned char *secret,
                                   apr_size_t secret_len, apr_int64_t timestamp,
                                   const char *body, apr_size_t body_len);

typedef enum scep_hook_verdict_e {
    SCEP_HOOK_UNAVAILABLE = 0,         /* no answer, or one that cannot be read: never
                                        * an allow */
    SCEP_HOOK_ALLOW,
    SCEP_HOOK_DENY
} scep_hook_verdict_e;

typedef struct scep_hook_answer_t {
    scep_hook_verdict_e verdict;
    const char *reason;                /* the validator's, for the log; may be NULL */
    apr_array_header_t *supplied;      /* scep_identity_value_t, or NULL */
    const char *why;                   /* UNAVAILABLE: what went wrong, for the log */
} scep_hook_answer_t;

/* Reads an answer body strictly: one JSON object with "allow" (true or false, once),
 * optionally "reason" (a string, escaped where it is logged) and "identity" (an object of field names, each a
 * string or an array of strings), other members of any JSON value ignored.  Strings
 * must be valid UTF-8 without control characters and at most SCEP_HOOK_VALUE_MAX bytes;
 * identity fields must be known (CN, O, OU, C, L, ST, serialNumber, emailAddress,
 * dNSName, iPAddress, rfc822Name, UPN, URI), at most SCEP_HOOK_VALUES_MAX values.
 * Anything else, or more than SCEP_HOOK_ANSWER_MAX bytes, is SCEP_HOOK_UNAVAILABLE. */
void scep_webhook_parse_answer(apr_pool_t *p, const char *body, apr_size_t len,
                               scep_hook_answer_t *out);

/* Signs and POSTs `body` to the hook's URL within its timeout.  APR_SUCCESS with the
 * answer when one came (any status); else APR_EGENERAL with *why. */
apr_status_t scep_webhook_post(apr_pool_t *p, const scep_hook_conf_t *conf, apr_int64_t now,
                               const char *body, apr_size_t len, long *status,
                               const char **answer, apr_size_t *answer_len, const char **why);

/* Asks the validator: the document, the POST and the reading of the answer.  A non-2xx
 * status, a timeout, garbage: SCEP_HOOK_UNAVAILABLE with out->why. */
void scep_webhook_validate(apr_pool_t *p, const scep_hook_conf_t *conf,
                           const scep_hook_request_t *req, apr_int64_t now,
                           scep_hook_answer_t *out);

#endif

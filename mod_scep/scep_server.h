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

/* SPDX-License-Identifier: Apache-2.0 */
/* The forwarding issuer: mod_scep as a registration authority in front of an upstream
 * SCEP CA.  After the device's request was decrypted and authorized here, its own PKCS#10
 * goes upstream in a PKCSReq signed with this endpoint's RA certificate, over HTTP(S) and
 * optionally through a forward proxy (libcurl), and the upstream's answer comes back as
 * ISSUED (the certificate), PENDING, REJECTED (its failInfo) or UNREACHABLE.
 *
 * The upstream's GetCACaps and GetCACert are fetched on first use and again after the
 * refresh interval; the algorithms used upstream follow its capabilities.  Its
 * certificates are used only once they chain to the endpoint's ScepCACertificateFile
 * (and, where configured, its RA is one of ScepUpstreamRACertificateFile): the device's
 * request, challenge included, is encrypted to them.  One object per endpoint and
 * process, shared by the process's threads. */
#ifndef SCEP_FORWARD_H
#define SCEP_FORWARD_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <openssl/x509.h>

#include "scep_ca.h"
#include "scep_util.h"

typedef struct scep_upstream_conf_t {
    const char *url;                   /* the upstream SCEP URL, http:// or https:// */
    const char *proxy;                 /* forward proxy URL; NULL: none (the environment
                                        * is never consulted) */
    const char *proxy_auth;            /* "user:password" for the proxy, or NULL */
    const char *no_proxy;              /* hosts reached directly, comma-separated */
    const char *ca_file;               /* trust for https upstreams and proxies */
    const char *client_cert, *client_key; /* TLS client authentication, PEM */
    long connect_timeout;              /* seconds */
    long timeout;                      /* seconds for one whole exchange */
    int retries;                       /* further attempts after a transport failure */
    long refresh;                      /* seconds between GetCACaps/GetCACert fetches */
    int down_answer;                   /* HTTP status for an unreachable upstream: 200
                                        * (a PENDING CertRep) or 503 */
    const char *ra_file;               /* ScepUpstreamRACertificateFile, or NULL */
    STACK_OF(X509) *ra_pins;           /* its certificates, once loaded: the only RA
                                        * certificates the upstream may use */
} scep_upstream_conf_t;

#define SCEP_UPSTREAM_CONNECT_TIMEOUT 5
#define SCEP_UPSTREAM_TIMEOUT 20
#define SCEP_UPSTREAM_RETRIES 1
#define SCEP_UPSTREAM_REFRESH 3600
#define SCEP_UPSTREAM_MAX_ANSWER (1024 * 1024)
#define SCEP_UPSTREAM_MAX_CA_CERTS 16    /* in one GetCACert answer */

typedef struct scep_upstream_t scep_upstream_t;

/* Reads conf->ra_file into conf->ra_pins (freed with `p`): PEM certificates of the
 * upstream's RA, none a CA certificate.  Whether they chain to ScepCACertificateFile is
 * checked when the upstream lists them, where intermediates and the time are known.
 * APR_EINVAL with *errmsg otherwise. */
apr_status_t scep_forward_load_ra_file(apr_pool_t *p, scep_upstream_conf_t *conf,
                                       const char **errmsg);

/* Once per process (libcurl's global state). */
apr_status_t scep_forward_global_init(void);

/* The upstream of an endpoint; `ra` holds the RA certificate and key that sign the
 * requests sent upstream and open its answers.  Nothing is fetched yet. */
apr_status_t scep_forward_create(apr_pool_t *p, const scep_upstream_conf_t *conf,
                                 const scep_ca_t *ra, scep_upstream_t **up);

typedef enum scep_forward_status_e {
    SCEP_FORWARD_ISSUED,
    SCEP_FORWARD_PENDING,
    SCEP_FORWARD_REJECTED,
    SCEP_FORWARD_UNREACHABLE
} scep_forward_status_e;

typedef struct scep_forward_result_t {
    scep_forward_status_e status;
    X509 *cert;                        /* ISSUED: freed with the pool */
    int fail_info;                     /* REJECTED: the upstream's */
    const char *why;                   /* for the log: what happened upstream */
} scep_forward_result_t;

/* Sends `csr` (DER) upstream under `transaction_id` and waits at most the configured
 * timeouts (with retries).  `now` is the request's time: the upstream's certificates are
 * fetched again when older than the configured refresh.  A request the upstream may
 * never have received is sent again the same way: an upstream answers a known
 * transaction from its state. */
apr_status_t scep_forward_enroll(apr_pool_t *p, scep_upstream_t *up, apr_int64_t now,
                                 const unsigned char *csr, apr_size_t csr_len,
                                 EVP_PKEY *csr_key, const char *transaction_id,
                                 const scep_log_t *log, scep_forward_result_t *result);

/* Asks the upstream with a CertPoll (IssuerAndSubject of `req`) about a transaction it
 * answered PENDING. */
apr_status_t scep_forward_poll(apr_pool_t *p, scep_upstream_t *up, apr_int64_t now,
                               X509_REQ *req, EVP_PKEY *csr_key, const char *transaction_id,
                               const scep_log_t *log, scep_forward_result_t *result);

/* One HTTP exchange as every outgoing request of the module makes it (the upstream's,
 * the webhooks'): the transport settings of `transport` (proxy, hosts reached directly,
 * CA file, TLS client certificate; NULL: direct, the system's trust) and never the
 * environment's, no redirects, http and https only, signals off. */
typedef struct scep_forward_http_t {
    const char *url;
    const char *const *headers;        /* "Name: value", NULL-terminated; may be NULL */
    const unsigned char *body;         /* set: a POST of it */
    apr_size_t body_len;
    apr_size_t max_answer;             /* a longer answer aborts the transfer */
    long connect_timeout_ms, timeout_ms;
    const char *user_agent;
} scep_forward_http_t;

typedef struct scep_forward_http_answer_t {
    long status;                       /* the HTTP status of an answer */
    const char *content_type;
    const unsigned char *body;         /* in the pool; NULL when empty */
    apr_size_t body_len;
    int timed_out;                     /* no answer within timeout_ms */
    const char *why;                   /* no answer: libcurl's reason */
} scep_forward_http_answer_t;

/* APR_SUCCESS when an answer came (of any status); APR_ENOSPC when it exceeded
 * max_answer; APR_EGENERAL (or APR_ENOMEM) with out->why when none came. */
apr_status_t scep_forward_http(apr_pool_t *p, const scep_upstream_conf_t *transport,
                               const scep_forward_http_t *req,
                               scep_forward_http_answer_t *out);

/* 200 (PENDING) or 503: how a device is answered while the upstream cannot be reached. */
int scep_forward_down_answer(const scep_upstream_t *up);

#endif

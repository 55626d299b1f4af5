/* SPDX-License-Identifier: Apache-2.0 */
/* CA keys in a PKCS#11 token, per child: the child's own session opened in child_init,
 * a read lock held by every request that uses the keys, and the session opened again
 * (under the write lock, at most every TOKEN_RETRY seconds) when the token failed or
 * was missing.  While the token cannot be used, requests are answered 503 with a log
 * line; nothing waits for it, and a PIN the token refused is never tried again. */
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_protocol.h"

#include <apr_strings.h>
#include <apr_thread_rwlock.h>

#include "mod_scep.h"
#include "scep_ca.h"
#include "scep_token.h"

APLOG_USE_MODULE(scep);

/* Seconds between two attempts of a child to open its session again. */
#define TOKEN_RETRY 5

static int uses_token(const ca_ref_t *ref)
{
    return ref && ref->ca && scep_ca_in_token(ref->ca);
}

/* Opens the child's session; the caller holds the write lock (or no thread runs yet). */
static void attach(server_rec *s, ca_ref_t *ref)
{
    scep_log_t log = { scep_glue_log_to_server, s, APLOG_TRACE8 };
    const char *errmsg = NULL;

    ref->token_next_try = apr_time_now() + apr_time_from_sec(TOKEN_RETRY);
    scep_ca_token_detach(ref->ca, ref->token_pool);
    apr_pool_clear(ref->token_pool);
    if (scep_ca_token_attach(ref->ca, ref->token_pool, &log, &errmsg) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "SCEP00750: CA configured at %s: the "
                     "token cannot be used by this process (requests get 503; tried again "
                     "in %d s): %s", ref->defined_at, TOKEN_RETRY, errmsg);
        return;
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "SCEP00751: CA configured at %s: this "
                 "process opened its session with the token", ref->defined_at);
}

void scep_glue_token_child_init(apr_pool_t *pchild, server_rec *s)
{
    const apr_array_header_t *refs = scep_glue_config_cas();
    int i;

    for (i = 0; refs && i < refs->nelts; i++) {
        ca_ref_t *ref = APR_ARRAY_IDX(refs, i, ca_ref_t *);

        if (!uses_token(ref) || ref->token_lock) {
            continue;
        }
        if (apr_pool_create(&ref->token_pool, pchild) != APR_SUCCESS
            || apr_thread_rwlock_create(&ref->token_lock, pchild) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "SCEP00752: CA configured at %s: "
                         "cannot make the token's lock", ref->defined_at);
            ref->token_lock = NULL;
            continue;
        }
        attach(s, ref);
    }
}

static apr_status_t unlock(void *data)
{
    ca_ref_t *ref = data;

    apr_thread_rwlock_unlock(ref->token_lock);
    return APR_SUCCESS;
}

/* Under the write lock: opens the session again unless it works, was tried within
 * TOKEN_RETRY seconds, or the token refused the PIN. */
static void try_again(request_rec *r, ca_ref_t *ref, int failed)
{
    apr_thread_rwlock_wrlock(ref->token_lock);
    if ((failed || !scep_ca_ready(ref->ca)) && apr_time_now() >= ref->token_next_try) {
        attach(r->server, ref);
    }
    apr_thread_rwlock_unlock(ref->token_lock);
}

int scep_glue_token_enter(request_rec *r, ca_ref_t *ref)
{
    if (!uses_token(ref)) {
        return OK;
    }
    if (!ref->token_lock) {
        return HTTP_INTERNAL_SERVER_ERROR;  /* SCEP00752 said why */
    }
    apr_thread_rwlock_rdlock(ref->token_lock);
    if (!scep_ca_ready(ref->ca)) {
        apr_thread_rwlock_unlock(ref->token_lock);
        try_again(r, ref, 0);
        apr_thread_rwlock_rdlock(ref->token_lock);
    }
    if (!scep_ca_ready(ref->ca)) {
        apr_thread_rwlock_unlock(ref->token_lock);
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "SCEP00753: %s: the token of the CA "
                      "configured at %s cannot be used; answered 503", r->uri,
                      ref->defined_at);
        apr_table_setn(r->err_headers_out, "Retry-After", SCEP_GLUE_RETRY_AFTER);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    apr_pool_cleanup_register(r->pool, ref, unlock, apr_pool_cleanup_null);
    return OK;
}

int scep_glue_token_failed(request_rec *r, ca_ref_t *ref, int status)
{
    /* a message that cannot be opened is the client's fault, unless the token opens
     * them: only then may a 400 be the token's */
    if (!uses_token(ref) || !ref->token_lock
        || (status != HTTP_INTERNAL_SERVER_ERROR
            && !(status == HTTP_BAD_REQUEST && scep_ca_token_decrypts(ref->ca)))) {
        return status;
    }
    apr_pool_cleanup_run(r->pool, ref, unlock);
    try_again(r, ref, 1);
    if (!scep_ca_ready(ref->ca)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "SCEP00754: %s: the token of the CA "
                      "configured at %s failed during the request; answered 503", r->uri,
                      ref->defined_at);
        apr_table_setn(r->err_headers_out, "Retry-After", SCEP_GLUE_RETRY_AFTER);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    return status;
}

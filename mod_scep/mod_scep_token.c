/* SPDX-License-Identifier: Apache-2.0 */
/* CA keys in a PKCS#11 token, per child: the child's own session opened in child_init,
 * a read lock held by every request while it uses the keys, and the session opened again
 * (under the write lock, at most every TOKEN_RETRY seconds) when the token failed or was
 * missing.  Nothing ever waits for the lock: a request that cannot take it, or finds the
 * token unusable, is answered 503 with a log line; the reopening is done by the first
 * request that finds no other using the keys.  A PIN the token refused is never tried
 * again (scep_token.c). */
#include <unistd.h>

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_protocol.h"

#include <apr_atomic.h>
#include <apr_strings.h>
#include <apr_thread_rwlock.h>

#include "mod_scep.h"
#include "scep_ca.h"
#include "scep_token.h"

APLOG_USE_MODULE(scep);

/* Seconds between two attempts of a child to open its session again. */
#define TOKEN_RETRY 5
/* A starting child tries this many times, this far apart, before its first request,
 * while its token is not found: SoftHSM2 lists no slot while a sibling's login rewrites
 * its token files.  Any other failure is not tried again before a request asks. */
#define TOKEN_START_TRIES 10
#define TOKEN_START_PAUSE apr_time_from_msec(200)

/* One lock and one session per child for every CA whose keys are in a token: a process
 * holds one module, and only when every key is freed can the module be finalised and
 * its stale sessions and object handles dropped, so all CAs open again together. */
static apr_thread_rwlock_t *token_lock;
static apr_pool_t *token_pool;
static apr_time_t token_next_try;   /* under the write lock */
static int token_cas;
/* Set when a request found a token key failing: until the session is opened again,
 * requests are answered 503 without using the keys. */
static volatile apr_uint32_t token_failing;
/* Counts the openings: a request that saw the keys fail says so only if the session it
 * used is still the current one (not one opened again meanwhile). */
static volatile apr_uint32_t token_generation;
#define GENERATION_NOTE "mod_scep:token-generation"

static int uses_token(const ca_ref_t *ref)
{
    return ref && ref->ca && scep_ca_in_token(ref->ca);
}

/* Every CA's keys freed, the session closed, then opened again; the caller holds the
 * write lock (or no thread runs yet).  Unless `last_try`, a CA whose token was not
 * found (APR_EAGAIN) is not logged but counted: how many to try again soon. */
static int attach_all(server_rec *s, int last_try)
{
    const apr_array_header_t *refs = scep_glue_config_cas();
    scep_log_t log = { scep_glue_log_to_server, s, APLOG_TRACE8 };
    int i, again = 0;

    token_next_try = apr_time_now() + apr_time_from_sec(TOKEN_RETRY);
    apr_atomic_inc32(&token_generation);
    apr_atomic_set32(&token_failing, 0);
    for (i = 0; refs && i < refs->nelts; i++) {
        ca_ref_t *ref = APR_ARRAY_IDX(refs, i, ca_ref_t *);

        if (uses_token(ref)) {
            scep_ca_token_detach(ref->ca, token_pool);
        }
    }
    apr_pool_clear(token_pool);
    scep_token_close();             /* the module finalised: a new session, new handles */
    for (i = 0; refs && i < refs->nelts; i++) {
        ca_ref_t *ref = APR_ARRAY_IDX(refs, i, ca_ref_t *);
        const char *errmsg = NULL;
        apr_status_t rv;

        if (!uses_token(ref)) {
            continue;
        }
        if ((rv = scep_ca_token_attach(ref->ca, token_pool, &log, &errmsg)) != APR_SUCCESS) {
            if (rv == APR_EAGAIN && !last_try) {
                again++;
                continue;
            }
            /* the parent checked the token as root: what works there and fails here is
             * mostly the module's files, unreadable by the User this process runs as */
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "SCEP00750: CA configured at %s: "
                         "the token cannot be used by this process (uid %lu; requests get "
                         "503; tried again in %d s): %s", ref->defined_at,
                         (unsigned long)geteuid(), TOKEN_RETRY, errmsg);
            continue;
        }
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "SCEP00751: CA configured at %s: this "
                     "process opened its session with the token", ref->defined_at);
    }
    return again;
}

void scep_glue_token_child_init(apr_pool_t *pchild, server_rec *s)
{
    const apr_array_header_t *refs = scep_glue_config_cas();
    int i;

    token_cas = 0;
    for (i = 0; refs && i < refs->nelts; i++) {
        token_cas += uses_token(APR_ARRAY_IDX(refs, i, ca_ref_t *));
    }
    if (!token_cas) {
        return;
    }
    if (apr_pool_create(&token_pool, pchild) != APR_SUCCESS
        || apr_thread_rwlock_create(&token_lock, pchild) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "SCEP00752: cannot make the lock of the "
                     "token's keys; requests to CAs in a token get 500");
        token_lock = NULL;
        return;
    }
    for (i = 1; attach_all(s, i == TOKEN_START_TRIES) && i < TOKEN_START_TRIES; i++) {
        apr_sleep(TOKEN_START_PAUSE);
    }
}

static apr_status_t unlock(void *data)
{
    (void)data;
    apr_thread_rwlock_unlock(token_lock);
    return APR_SUCCESS;
}

/* Opens the session again if no request uses the keys now (else a later request will),
 * and TOKEN_RETRY seconds passed since the last opening. */
static void try_again(request_rec *r)
{
    if (apr_thread_rwlock_trywrlock(token_lock) != APR_SUCCESS) {
        return;
    }
    if (apr_time_now() >= token_next_try) {
        attach_all(r->server, 1);
    }
    apr_thread_rwlock_unlock(token_lock);
}

static int unavailable(request_rec *r, ca_ref_t *ref, const char *tag, const char *what)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "%s: %s: the token of the CA configured at "
                  "%s %s; answered 503", tag, r->uri, ref->defined_at, what);
    apr_table_setn(r->err_headers_out, "Retry-After", SCEP_GLUE_RETRY_AFTER);
    return HTTP_SERVICE_UNAVAILABLE;
}

int scep_glue_token_enter(request_rec *r, ca_ref_t *ref)
{
    if (!uses_token(ref)) {
        return OK;
    }
    if (!token_lock) {
        return HTTP_INTERNAL_SERVER_ERROR;  /* SCEP00752 said why */
    }
    if (apr_atomic_read32(&token_failing) || !scep_ca_ready(ref->ca)) {
        try_again(r);
    }
    if (apr_thread_rwlock_tryrdlock(token_lock) != APR_SUCCESS) {
        return unavailable(r, ref, "SCEP00756", "is being opened again by this process");
    }
    if (apr_atomic_read32(&token_failing) || !scep_ca_ready(ref->ca)) {
        apr_thread_rwlock_unlock(token_lock);
        return unavailable(r, ref, "SCEP00753", "cannot be used");
    }
    apr_pool_cleanup_register(r->pool, ref, unlock, apr_pool_cleanup_null);
    apr_table_setn(r->notes, GENERATION_NOTE,
                   apr_psprintf(r->pool, "%u", apr_atomic_read32(&token_generation)));
    return OK;
}

void scep_glue_token_leave(request_rec *r, ca_ref_t *ref)
{
    if (uses_token(ref)) {
        apr_pool_cleanup_run(r->pool, ref, unlock);
    }
}

int scep_glue_token_failed(request_rec *r, ca_ref_t *ref)
{
    const char *used = apr_table_get(r->notes, GENERATION_NOTE);

    apr_pool_cleanup_run(r->pool, ref, unlock);
    if (used && strtoul(used, NULL, 10) == apr_atomic_read32(&token_generation)) {
        apr_atomic_set32(&token_failing, 1);
    }
    try_again(r);
    return unavailable(r, ref, "SCEP00754", "failed during the request (the session is "
                       "opened again when no request uses it)");
}

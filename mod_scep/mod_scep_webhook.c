/* SPDX-License-Identifier: Apache-2.0 */
/* The sections' webhooks (their ScepValidate* and ScepNotify* directives are read in
 * mod_scep_config.c): checked at startup, and the notifier's machinery in each child: a
 * bounded queue of events and one thread that sends them, retrying with backoff, so that
 * no answer to a device waits for the notifier.  Every event that is not delivered is
 * logged (queue full, retries used up, or still queued when the child exits and the
 * drain bound has passed).  The core does the documents and the POST (scep_webhook.c). */
#include <stdlib.h>
#include <string.h>

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"

#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <apr_time.h>

#include "mod_scep.h"

APLOG_USE_MODULE(scep);

/* How long an exiting child still tries to deliver what is queued. */
#define SCEP_NOTIFY_DRAIN_MS 2000

/* Every webhook of the configuration being read. */
static apr_array_header_t *hook_refs;

void scep_glue_webhook_reset(void)
{
    hook_refs = NULL;
}

/* The ref whose configuration the profile points at. */
static scep_hook_ref_t *ref_of(const scep_hook_conf_t *conf)
{
    int i;

    for (i = 0; hook_refs && i < hook_refs->nelts; i++) {
        scep_hook_ref_t *ref = APR_ARRAY_IDX(hook_refs, i, scep_hook_ref_t *);

        if (&ref->conf == conf) {
            return ref;
        }
    }
    return NULL;
}

scep_hook_ref_t *scep_glue_webhook_ref(cmd_parms *cmd, scep_dir_conf_t *conf, int notify)
{
    const scep_hook_conf_t *have = notify ? conf->profile.notifier : conf->profile.validator;
    scep_hook_ref_t *ref;

    if (have && (ref = ref_of(have)) != NULL) {
        return ref;
    }
    ref = apr_pcalloc(cmd->pool, sizeof(*ref));
    scep_webhook_defaults(&ref->conf);
    ref->notify = notify;
    ref->section = conf;
    ref->conf.defined_at = cmd->directive
        ? apr_psprintf(cmd->pool, "%s:%d", cmd->directive->filename,
                       cmd->directive->line_num)
        : "?";
    if (!hook_refs) {
        hook_refs = apr_array_make(cmd->pool, 4, sizeof(scep_hook_ref_t *));
    }
    APR_ARRAY_PUSH(hook_refs, scep_hook_ref_t *) = ref;
    if (notify) {
        conf->profile.notifier = &ref->conf;
        conf->set |= SCEP_PROFILE_SET_NOTIFIER;
    }
    else {
        conf->profile.validator = &ref->conf;
        conf->set |= SCEP_PROFILE_SET_VALIDATOR;
    }
    return ref;
}

int scep_glue_webhook_prepare(apr_pool_t *pconf, server_rec *s)
{
    const char *kind;
    int i;

    for (i = 0; hook_refs && i < hook_refs->nelts; i++) {
        scep_hook_ref_t *ref = APR_ARRAY_IDX(hook_refs, i, scep_hook_ref_t *);

        kind = ref->notify ? "ScepNotify" : "ScepValidate";
        if (!ref->conf.url || !ref->conf.secret) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "SCEP00660: %s* settings at %s "
                         "without %sURL and %sSecretFile in the same section: both are "
                         "needed", kind, ref->conf.defined_at, kind, kind);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        if (!ref->notify && ref->conf.unavailable == SCEP_HOOK_DOWN_PENDING
            && !ref->section->db_ref) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "SCEP00661: ScepValidateUnavailable "
                         "pending at %s needs a ScepDeviceDB in the same section, where the "
                         "request waits", ref->conf.defined_at);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        /* the same proxy and TLS settings as forwarding, where the section forwards */
        ref->conf.transport = ref->section->upstream_ref
                              ? &ref->section->upstream_ref->conf : NULL;
        if (strncasecmp(ref->conf.url, "http://", 7) == 0) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "SCEP00662: %sURL %s at %s is "
                         "http://: the documents are signed, not encrypted; use https:// "
                         "beyond this host", kind, ref->conf.url, ref->conf.defined_at);
        }
    }
    if (hook_refs && scep_forward_global_init() != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "SCEP00663: libcurl cannot start");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

/* ---- the notifier, per child ------------------------------------------------------- */

/* One event, in one malloc'd block (it outlives the request that made it): the item, then
 * the body, then `what`. */
typedef struct notify_item_t {
    const char *body;
    apr_size_t len;
    const char *what;                  /* "issued serial 0A (transaction T)", for logs */
} notify_item_t;

typedef struct scep_notify_queue_t {
    const scep_hook_conf_t *conf;
    server_rec *s;
    apr_thread_mutex_t *lock;
    apr_thread_cond_t *more;           /* an item was queued, or stop was set */
    apr_thread_t *thread;
    notify_item_t **items;             /* a ring of conf->queue slots */
    int head, count;
    int stop;
    apr_time_t stop_at;
} scep_notify_queue_t;

static void dropped(scep_notify_queue_t *q, const notify_item_t *item, const char *why)
{
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, q->s, "SCEP00671: ScepNotifyURL %s: event %s "
                 "dropped: %s", q->conf->url, item->what, why);
}

/* One delivery attempt: APR_SUCCESS on a 2xx answer, else *why. */
static apr_status_t deliver(scep_notify_queue_t *q, apr_pool_t *p, const notify_item_t *item,
                            const char **why)
{
    const char *answer = NULL;
    apr_size_t answer_len = 0;
    long status = 0;

    if (scep_webhook_post(p, q->conf, apr_time_sec(apr_time_now()), item->body, item->len,
                          &status, &answer, &answer_len, why) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (status < 200 || status > 299) {
        *why = apr_psprintf(p, "HTTP %ld", status);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* Waits until `until` or a stop; the lock is held. */
static void wait_until(scep_notify_queue_t *q, apr_time_t until)
{
    apr_time_t now = apr_time_now();

    if (!q->stop && until > now) {
        apr_thread_cond_timedwait(q->more, q->lock, until - now);
    }
}

static void *APR_THREAD_FUNC sender(apr_thread_t *thread, void *baton)
{
    scep_notify_queue_t *q = baton;
    apr_pool_t *p = NULL;

    apr_pool_create(&p, NULL);
    apr_thread_mutex_lock(q->lock);
    for (;;) {
        notify_item_t *item;
        const char *why = "";
        int attempt;

        while (!q->count && !q->stop) {
            apr_thread_cond_wait(q->more, q->lock);
        }
        if (!q->count) {
            break;
        }
        item = q->items[q->head];
        q->head = (q->head + 1) % q->conf->queue;
        q->count--;
        for (attempt = 0; attempt <= q->conf->retries; attempt++) {
            apr_status_t rv;

            if (q->stop && apr_time_now() > q->stop_at) {
                why = "the child exits and its drain time is over";
                break;
            }
            apr_thread_mutex_unlock(q->lock);
            rv = deliver(q, p, item, &why);
            apr_pool_clear(p);
            apr_thread_mutex_lock(q->lock);
            if (rv == APR_SUCCESS) {
                why = NULL;
                break;
            }
            if (attempt < q->conf->retries) {
                /* 0.5 s, 1 s, 2 s, …; a stop cuts the wait short */
                wait_until(q, apr_time_now() + apr_time_from_msec(500L << attempt));
            }
        }
        if (why) {
            dropped(q, item, apr_psprintf(p, "%s (%d attempt%s)", why, attempt,
                                          attempt == 1 ? "" : "s"));
            apr_pool_clear(p);
        }
        free(item);
    }
    apr_thread_mutex_unlock(q->lock);
    apr_pool_destroy(p);
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

/* The child's exit: what is queued gets SCEP_NOTIFY_DRAIN_MS (and one timeout) to go,
 * the rest is dropped with a line each. */
static apr_status_t stop_sender(void *baton)
{
    scep_notify_queue_t *q = baton;
    apr_status_t thread_rv;

    apr_thread_mutex_lock(q->lock);
    q->stop = 1;
    q->stop_at = apr_time_now() + apr_time_from_msec(SCEP_NOTIFY_DRAIN_MS);
    apr_thread_cond_broadcast(q->more);
    apr_thread_mutex_unlock(q->lock);
    apr_thread_join(&thread_rv, q->thread);
    return APR_SUCCESS;
}

void scep_glue_webhook_child_init(apr_pool_t *pchild, server_rec *s)
{
    int i;

    for (i = 0; hook_refs && i < hook_refs->nelts; i++) {
        scep_hook_ref_t *ref = APR_ARRAY_IDX(hook_refs, i, scep_hook_ref_t *);
        scep_notify_queue_t *q;

        if (!ref->notify) {
            continue;
        }
        q = apr_pcalloc(pchild, sizeof(*q));
        q->conf = &ref->conf;
        q->s = s;
        q->items = apr_pcalloc(pchild, sizeof(notify_item_t *) * (apr_size_t)ref->conf.queue);
        if (apr_thread_mutex_create(&q->lock, APR_THREAD_MUTEX_DEFAULT, pchild) != APR_SUCCESS
            || apr_thread_cond_create(&q->more, pchild) != APR_SUCCESS
            || apr_thread_create(&q->thread, NULL, sender, q, pchild) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "SCEP00672: cannot start the notifier "
                         "of %s configured at %s: its events are dropped", ref->conf.url,
                         ref->conf.defined_at);
            continue;
        }
        /* registered after the thread's pool use starts, so it runs before the pool's
         * mutex and condition are destroyed */
        apr_pool_pre_cleanup_register(pchild, q, stop_sender);
        ref->queue = q;
    }
}

static void enqueue(request_rec *r, const scep_hook_conf_t *notifier,
                    const scep_hook_event_t *ev)
{
    const scep_hook_ref_t *ref = ref_of(notifier);
    scep_notify_queue_t *q = ref ? ref->queue : NULL;
    static const char *const names[] = { "issued", "refused", "revoked" };
    const char *what = apr_psprintf(r->pool, "%s%s%s (transaction %s)", names[ev->event],
                                    ev->serial ? " serial " : "",
                                    ev->serial ? ev->serial : "",
                                    ev->transaction_id ? ev->transaction_id : "-");
    const char *refused = NULL;
    apr_size_t len = 0, what_len = strlen(what);
    const char *doc = scep_webhook_event_document(r->pool, ev, &len);
    notify_item_t *item = malloc(sizeof(*item) + len + 1 + what_len + 1);

    if (!q) {
        refused = "the notifier of this child is not running";
    }
    else if (!item) {
        refused = "out of memory";
    }
    else {
        char *body = (char *)(item + 1), *text = body + len + 1;

        memcpy(body, doc, len + 1);
        memcpy(text, what, what_len + 1);
        item->body = body;
        item->len = len;
        item->what = text;
        apr_thread_mutex_lock(q->lock);
        if (q->stop) {
            refused = "the child is exiting";
        }
        else if (q->count >= notifier->queue) {
            refused = apr_psprintf(r->pool, "%d events wait already (ScepNotifyQueue)",
                                   q->count);
        }
        else {
            q->items[(q->head + q->count) % notifier->queue] = item;
            q->count++;
            item = NULL;                /* the sender's now */
            apr_thread_cond_signal(q->more);
        }
        apr_thread_mutex_unlock(q->lock);
    }
    free(item);
    if (refused) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "SCEP00670: ScepNotifyURL %s: event "
                      "%s dropped: %s", notifier->url, what, refused);
    }
}

void scep_glue_webhook_notify(request_rec *r, const scep_profile_t *profile,
                              const scep_reply_t *reply, const char *endpoint,
                              const char *client_ip)
{
    scep_hook_event_t ev;

    if (!profile->notifier) {
        return;
    }
    memset(&ev, 0, sizeof(ev));
    ev.time = apr_time_sec(apr_time_now());
    ev.transaction_id = reply->transaction_id;
    ev.endpoint = endpoint;
    ev.identity = reply->fqdn;
    ev.client_ip = client_ip;
    ev.subject = reply->subject;
    /* a replayed transaction (SCEP_OUTCOME_REPLAYED) is no new certificate */
    if (reply->outcome == SCEP_OUTCOME_ISSUED || reply->outcome == SCEP_OUTCOME_RENEWED) {
        ev.event = SCEP_HOOK_EVENT_ISSUED;
        ev.serial = reply->serial;
        enqueue(r, profile->notifier, &ev);
        if (reply->revoked) {
            ev.event = SCEP_HOOK_EVENT_REVOKED;
            ev.subject = NULL;
            ev.serial = reply->revoked;
            ev.reason = apr_psprintf(r->pool, "superseded by %s", reply->serial);
            enqueue(r, profile->notifier, &ev);
        }
    }
    else if (scep_server_outcome_is_failure(reply->outcome)) {
        ev.event = SCEP_HOOK_EVENT_REFUSED;
        ev.reason = reply->reason;
        enqueue(r, profile->notifier, &ev);
    }
}

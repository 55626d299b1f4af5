/* SPDX-License-Identifier: Apache-2.0 */
/* `SetHandler scep-status`: counters and latency histograms of every SCEP endpoint, per
 * <Location> and outcome, in the Prometheus text format (or ?format=prometheus) or as
 * JSON (?format=json); any other query is refused with 400.  Like mod_status it
 * authenticates nobody itself: protect its Location.
 *
 * The counters live in one anonymous shared memory segment made by the parent before
 * the children fork, so every process adds to the same numbers with atomic operations
 * and nothing is locked on the request path.  A slot per endpoint is claimed on first
 * use; SLOTS endpoints are counted, later ones share the last slot "(other)". */
#include <string.h>

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_protocol.h"

#include <apr_shm.h>
#include <apr_strings.h>

#include "mod_scep.h"
#include "scep_util.h"

APLOG_USE_MODULE(scep);

#define SLOTS 64
#define LOCATION_MAX 96

/* The outcomes counted, in the order shown: those of a PKIOperation by their names in the
 * core (scep_server_outcome_name), then the GET operations the handler notes, then "other"
 * for anything else ("failure:none", an upstream's failInfo we do not know, among them). */
static const scep_outcome_e pki_outcomes[] = {
    SCEP_OUTCOME_ISSUED, SCEP_OUTCOME_RENEWED, SCEP_OUTCOME_REPLAYED, SCEP_OUTCOME_PENDING,
    SCEP_OUTCOME_CERTIFICATE, SCEP_OUTCOME_CRL, SCEP_OUTCOME_FAILURE_BAD_ALG,
    SCEP_OUTCOME_FAILURE_BAD_MESSAGE_CHECK, SCEP_OUTCOME_FAILURE_BAD_REQUEST,
    SCEP_OUTCOME_FAILURE_BAD_TIME, SCEP_OUTCOME_FAILURE_BAD_CERT_ID, SCEP_OUTCOME_MALFORMED,
    SCEP_OUTCOME_TOO_LARGE, SCEP_OUTCOME_STORE_FULL, SCEP_OUTCOME_UPSTREAM_DOWN,
    SCEP_OUTCOME_ERROR
};
#define PKI_OUTCOMES (sizeof(pki_outcomes) / sizeof(pki_outcomes[0]))
/* A new outcome must be given its place above (or be counted as "other" on purpose). */
_Static_assert(PKI_OUTCOMES == SCEP_OUTCOME_COUNT - 2,
               "every PKIOperation outcome but none and failure:none has a row");
static const char *const get_outcomes[] = { "getcacaps", "getcacert", "getnextcacert",
                                            "other" };
#define OUTCOMES (PKI_OUTCOMES + sizeof(get_outcomes) / sizeof(get_outcomes[0]))

static const char *outcome_name(size_t o)
{
    return o < PKI_OUTCOMES ? scep_server_outcome_name(pki_outcomes[o])
                            : get_outcomes[o - PKI_OUTCOMES];
}

/* Upper bounds of the latency buckets, milliseconds; the last bucket is +Inf. */
static const unsigned int bucket_ms[] = { 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000 };
#define BUCKETS (sizeof(bucket_ms) / sizeof(bucket_ms[0]) + 1)

typedef struct slot_t {
    volatile apr_uint32_t state;       /* 0 free, 1 being claimed, 2 in use */
    char location[LOCATION_MAX];
    volatile apr_uint64_t count[OUTCOMES];
    volatile apr_uint64_t bucket[BUCKETS];
    volatile apr_uint64_t sum_us;
} slot_t;

static slot_t *slots;                  /* NULL when the segment could not be made */

int scep_glue_status_prepare(apr_pool_t *pconf, server_rec *s)
{
    apr_shm_t *shm;
    apr_status_t rv;

    /* made anew with each configuration: a restart starts the counters from zero */
    rv = apr_shm_create(&shm, sizeof(slot_t) * SLOTS, NULL, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, "SCEP00140: no shared memory for the "
                     "SCEP status counters; scep-status will show none");
        return OK;
    }
    slots = apr_shm_baseaddr_get(shm);
    memset(slots, 0, sizeof(slot_t) * SLOTS);
    return OK;
}

void scep_glue_status_reset(void)
{
    slots = NULL;                       /* pconf, and the segment with it, is gone */
}

static slot_t *slot_for(const char *location)
{
    int i;

    for (i = 0; i < SLOTS - 1; i++) {
        slot_t *slot = &slots[i];
        apr_uint32_t state = __atomic_load_n(&slot->state, __ATOMIC_ACQUIRE);

        if (state == 0) {
            apr_uint32_t expected = 0;

            if (__atomic_compare_exchange_n(&slot->state, &expected, 1, 0, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE)) {
                apr_cpystrn(slot->location, location, sizeof(slot->location));
                __atomic_store_n(&slot->state, 2, __ATOMIC_RELEASE);
                return slot;
            }
            state = expected;
        }
        while (state == 1) {            /* another process is writing the name */
            state = __atomic_load_n(&slot->state, __ATOMIC_ACQUIRE);
        }
        if (strncmp(slot->location, location, sizeof(slot->location) - 1) == 0) {
            return slot;
        }
    }
    if (__atomic_load_n(&slots[SLOTS - 1].state, __ATOMIC_ACQUIRE) == 0) {
        apr_cpystrn(slots[SLOTS - 1].location, "(other)", LOCATION_MAX);
        __atomic_store_n(&slots[SLOTS - 1].state, 2, __ATOMIC_RELEASE);
    }
    return &slots[SLOTS - 1];
}

void scep_glue_status_count(request_rec *r, const char *location, const char *outcome)
{
    apr_time_t took = apr_time_now() - r->request_time;
    apr_uint64_t ms = (apr_uint64_t)(took > 0 ? took : 0) / 1000;
    slot_t *slot;
    size_t i, b;

    if (!slots || !location) {
        return;
    }
    slot = slot_for(location);
    for (i = 0; i < OUTCOMES - 1 && (!outcome || strcmp(outcome_name(i), outcome) != 0); i++) {
    }
    for (b = 0; b < BUCKETS - 1 && ms > bucket_ms[b]; b++) {
    }
    __atomic_add_fetch(&slot->count[i], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&slot->bucket[b], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&slot->sum_us, (apr_uint64_t)(took > 0 ? took : 0), __ATOMIC_RELAXED);
}

/* Label values are Location paths: escape what the text format needs escaped. */
static const char *label(apr_pool_t *p, const char *s)
{
    char *out = apr_palloc(p, strlen(s) * 2 + 1), *o = out;

    for (; *s; s++) {
        if (*s == '"' || *s == '\\') {
            *o++ = '\\';
        }
        *o++ = (char)(*s == '\n' ? ' ' : *s);
    }
    *o = '\0';
    return out;
}

static void prometheus(request_rec *r)
{
    int i;
    size_t o, b;

    ap_set_content_type(r, "text/plain; version=0.0.4");
    ap_rputs("# HELP scep_requests_total SCEP requests answered, by endpoint and outcome.\n"
             "# TYPE scep_requests_total counter\n", r);
    for (i = 0; i < SLOTS; i++) {
        if (__atomic_load_n(&slots[i].state, __ATOMIC_ACQUIRE) != 2) {
            continue;
        }
        for (o = 0; o < OUTCOMES; o++) {
            apr_uint64_t n = __atomic_load_n(&slots[i].count[o], __ATOMIC_RELAXED);

            if (n) {
                ap_rprintf(r, "scep_requests_total{location=\"%s\",outcome=\"%s\"} %"
                           APR_UINT64_T_FMT "\n", label(r->pool, slots[i].location),
                           outcome_name(o), n);
            }
        }
    }
    ap_rputs("# HELP scep_request_duration_seconds Time to answer a SCEP request.\n"
             "# TYPE scep_request_duration_seconds histogram\n", r);
    for (i = 0; i < SLOTS; i++) {
        apr_uint64_t cumulative = 0;
        const char *loc;

        if (__atomic_load_n(&slots[i].state, __ATOMIC_ACQUIRE) != 2) {
            continue;
        }
        loc = label(r->pool, slots[i].location);
        for (b = 0; b < BUCKETS; b++) {
            cumulative += __atomic_load_n(&slots[i].bucket[b], __ATOMIC_RELAXED);
            if (b < BUCKETS - 1) {
                ap_rprintf(r,
                           "scep_request_duration_seconds_bucket{location=\"%s\",le=\"%g\"} %"
                           APR_UINT64_T_FMT "\n", loc, bucket_ms[b] / 1000.0, cumulative);
            }
            else {
                ap_rprintf(r,
                           "scep_request_duration_seconds_bucket{location=\"%s\",le=\"+Inf\"} %"
                           APR_UINT64_T_FMT "\n", loc, cumulative);
            }
        }
        ap_rprintf(r, "scep_request_duration_seconds_sum{location=\"%s\"} %.6f\n", loc,
                   (double)__atomic_load_n(&slots[i].sum_us, __ATOMIC_RELAXED) / 1e6);
        ap_rprintf(r, "scep_request_duration_seconds_count{location=\"%s\"} %"
                   APR_UINT64_T_FMT "\n", loc, cumulative);
    }
}

static void json(request_rec *r)
{
    int i, first = 1;
    size_t o, b;

    ap_set_content_type(r, "application/json");
    ap_rputs("{\"endpoints\":[", r);
    for (i = 0; i < SLOTS; i++) {
        apr_uint64_t total = 0;

        if (__atomic_load_n(&slots[i].state, __ATOMIC_ACQUIRE) != 2) {
            continue;
        }
        ap_rprintf(r, "%s{\"location\":\"%s\",\"requests\":{", first ? "" : ",",
                   label(r->pool, slots[i].location));
        first = 0;
        for (o = 0; o < OUTCOMES; o++) {
            ap_rprintf(r, "%s\"%s\":%" APR_UINT64_T_FMT, o ? "," : "", outcome_name(o),
                       __atomic_load_n(&slots[i].count[o], __ATOMIC_RELAXED));
        }
        ap_rputs("},\"latency_ms_buckets\":{", r);
        for (b = 0; b < BUCKETS; b++) {
            apr_uint64_t n = __atomic_load_n(&slots[i].bucket[b], __ATOMIC_RELAXED);

            total += n;
            if (b < BUCKETS - 1) {
                ap_rprintf(r, "%s\"%u\":%" APR_UINT64_T_FMT, b ? "," : "", bucket_ms[b], n);
            }
            else {
                ap_rprintf(r, ",\"inf\":%" APR_UINT64_T_FMT, n);
            }
        }
        ap_rprintf(r, "},\"count\":%" APR_UINT64_T_FMT ",\"sum_seconds\":%.6f}", total,
                   (double)__atomic_load_n(&slots[i].sum_us, __ATOMIC_RELAXED) / 1e6);
    }
    ap_rputs("]}\n", r);
}

/* After every request a SCEP endpoint answered: its outcome (the handler's note, or what
 * the HTTP status says) and how long it took. */
int scep_glue_status_log(request_rec *r)
{
    const scep_dir_conf_t *conf;
    const char *outcome;

    if (!slots || !r->handler || strcmp(r->handler, "scep") != 0) {
        return DECLINED;
    }
    conf = ap_get_module_config(r->per_dir_config, &scep_module);
    if (!(outcome = apr_table_get(r->notes, "scep-outcome"))) {
        outcome = r->status == HTTP_REQUEST_ENTITY_TOO_LARGE ? "too-large"
                  : r->status == HTTP_BAD_REQUEST || r->status == HTTP_NOT_FOUND
                    ? "malformed"
                  : "error";
    }
    scep_glue_status_count(r, conf && conf->location ? conf->location : r->uri, outcome);
    return DECLINED;
}

int scep_glue_status_handler(request_rec *r)
{
    scep_param_t format = { "format", NULL };
    const char *why = NULL;
    int rc;

    if ((rc = scep_glue_handler_start(r, SCEP_STATUS_HANDLER, SCEP_GLUE_GET, NULL)) != OK) {
        return rc;
    }
    if (!slots) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    /* Read as strictly as scep-challenge's: a scraper that asks for something this
     * handler does not know learns it at once instead of parsing the wrong format. */
    if (scep_util_params_parse(r->pool, r->args, &format, 1, &why) == APR_SUCCESS
        && format.value && strcmp(format.value, "json") != 0
        && strcmp(format.value, "prometheus") != 0) {
        why = "parameter 'format' is neither json nor prometheus";
    }
    if (why) {
        const char *body = apr_pstrcat(r->pool, "scep-status: ", why, "\n", NULL);

        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "SCEP00153: scep-status: %s in the "
                      "query '%s'", why, ap_escape_logitem(r->pool, r->args));
        r->status = HTTP_BAD_REQUEST;
        return scep_glue_send(r, "text/plain", body, strlen(body));
    }
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (r->header_only) {
        return OK;
    }
    if (format.value && strcmp(format.value, "json") == 0) {
        json(r);
    }
    else {
        prometheus(r);
    }
    return OK;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* mod_scep: the httpd glue.  The module record, the hooks (among them the one that loads
 * every configured CA before httpd accepts the configuration), and the `scep` handler that
 * turns a request into a core call and the reply into a response.  The directives live in
 * mod_scep_config.c; SCEP itself lives in the httpd-free core (scep_*.c). */
#include <string.h>

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_main.h"
#include "http_protocol.h"
#include "http_request.h"
#include "ap_expr.h"
#include "ap_listen.h"

#include <apr_getopt.h>
#include <apr_strings.h>

#include "mod_scep.h"
#include "scep_ca.h"
#include "scep_decode.h"
#include "scep_server.h"
#include "scep_token.h"
#include "scep_version.h"

APLOG_USE_MODULE(scep);

/* ---- startup --------------------------------------------------------------------- */

static int scep_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    /* a new configuration cycle starts */
    scep_glue_config_reset(pconf);
    scep_glue_db_reset();
    scep_glue_forward_reset();
    scep_glue_webhook_reset();
    scep_glue_status_reset();
    return OK;
}

void scep_glue_log_to_server(void *baton, const char *file, int line, int level,
                             const char *text)
{
    ap_log_error_(file, line, APLOG_MODULE_INDEX, level, 0, baton, "%s", text);
}

/* Whether this process was started only to stop a running server (`-k stop` or
 * `-k graceful-stop`, which Debian's apache2ctl and unit send): check_config runs before
 * the signal is sent, and stopping must never need the CA's token, PIN or passphrase.
 * httpd's MPM takes -k out of process->argv before any hook runs, so the arguments are
 * read again where the kernel keeps them and parsed as the MPM parses them (the first
 * valid -k counts; an option's value is never an option).  Without /proc, or on anything
 * unexpected, the CAs are loaded as for a start. */
static int only_stops_server(apr_pool_t *p)
{
    static const char *const valid[] = { "start", "restart", "graceful", "graceful-stop",
                                         "stop", NULL };
    apr_array_header_t *argv = apr_array_make(p, 16, sizeof(const char *));
    char *args = apr_palloc(p, 65536), *arg, *end;
    apr_size_t len = 65535;
    apr_file_t *file;
    apr_getopt_t *opt;
    const char *value;
    char option;
    int i;

    if (apr_file_open(&file, "/proc/self/cmdline", APR_FOPEN_READ, 0, p) != APR_SUCCESS) {
        return 0;
    }
    apr_file_read_full(file, args, len, &len);
    apr_file_close(file);
    if (len == 0 || len == 65535 || args[len - 1] != '\0') {
        return 0;                   /* nothing, or cut off */
    }
    for (arg = args, end = args + len; arg < end; arg += strlen(arg) + 1) {
        APR_ARRAY_PUSH(argv, const char *) = arg;
    }
    APR_ARRAY_PUSH(argv, const char *) = NULL;
    if (apr_getopt_init(&opt, p, argv->nelts - 1, (const char *const *)argv->elts)
        != APR_SUCCESS) {
        return 0;
    }
    opt->errfn = NULL;
    while (apr_getopt(opt, "k:" AP_SERVER_BASEARGS, &option, &value) == APR_SUCCESS) {
        if (option != 'k') {
            continue;
        }
        for (i = 0; valid[i] && strcmp(value, valid[i]) != 0; i++) {
        }
        if (valid[i]) {
            return strcmp(value, "stop") == 0 || strcmp(value, "graceful-stop") == 0;
        }
    }
    return 0;
}

/* Runs for `httpd -t` too, so a broken CA refuses the configuration there as well. */
static int scep_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                             server_rec *s)
{
    const apr_array_header_t *ca_refs = scep_glue_config_cas();
    scep_log_t log = { scep_glue_log_to_server, s, APLOG_TRACE8 };
    scep_key_dialog_t *dialog = scep_glue_config_dialog();
    char *runtime_dir;
    int i;

    if (only_stops_server(ptemp)) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, "SCEP00006: this httpd only stops the "
                     "server: the CAs are not loaded");
        return OK;
    }
    /* mod_ssl's first argument to its exec: dialog: the main server's name and port (the
     * first Listen's when ServerName names none) */
    dialog->server_id = apr_psprintf(
        pconf, "%s:%u", s->server_hostname ? s->server_hostname : "localhost",
        (unsigned)(s->port ? s->port
                   : ap_listeners && ap_listeners->bind_addr ? ap_listeners->bind_addr->port
                   : 0));
    dialog->cache = scep_key_cache_get(s->process->pool);
    runtime_dir = ap_runtime_dir_relative(pconf, "");
    if (runtime_dir) {
        apr_size_t len = strlen(runtime_dir);

        while (len > 1 && runtime_dir[len - 1] == '/') {
            runtime_dir[--len] = '\0';
        }
    }
    dialog->state_dir = runtime_dir;
    scep_token_config_begin();
    if (scep_glue_webhook_prepare(pconf, s) != OK || scep_glue_db_check(s) != OK) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    for (i = 0; ca_refs && i < ca_refs->nelts; i++) {
        ca_ref_t *ref = APR_ARRAY_IDX(ca_refs, i, ca_ref_t *);
        const char *errmsg = NULL;

        ref->files.dialog = dialog;
        if (scep_ca_load(pconf, &ref->files, &log, &ref->ca, &errmsg) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                         "SCEP00001: CA configured at %s: %s", ref->defined_at, errmsg);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                     "SCEP00002: CA configured at %s loaded: %s", ref->defined_at,
                     scep_ca_name(ref->ca));
    }
    return OK;
}

static int scep_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                            server_rec *s)
{
    int rc;

    ap_add_version_component(pconf, "mod_scep/" SCEP_VERSION);
    if ((rc = scep_glue_db_prepare(ptemp, s)) != OK
        || (rc = scep_glue_forward_prepare(pconf, s)) != OK
        || (rc = scep_glue_status_prepare(pconf, s)) != OK) {
        return rc;
    }
    return scep_glue_audit_open(pconf, s);
}

static void scep_child_init(apr_pool_t *pchild, server_rec *s)
{
    scep_glue_config_dialog()->child = 1;   /* the parent asked and read what it needs */
    scep_glue_token_child_init(pchild, s);  /* the forwarders' RA keys may be there */
    scep_glue_config_dialog()->serving = 1; /* from now on a login never waits */
    scep_glue_db_child_init(pchild, s);
    scep_glue_forward_child_init(pchild, s);
    scep_glue_webhook_child_init(pchild, s);
}

/* ---- requests -------------------------------------------------------------------- */

void scep_glue_log_to_request(void *baton, const char *file, int line, int level,
                              const char *text)
{
    request_rec *r = baton;

    ap_log_rerror_(file, line, APLOG_MODULE_INDEX, level, 0, r, "%s", text);
}

apr_int64_t scep_glue_now(void)
{
    return (apr_int64_t)apr_time_sec(apr_time_now());
}

int scep_glue_handler_start(request_rec *r, const char *handler, apr_int64_t methods,
                            const scep_dir_conf_t **conf)
{
    if (!r->handler || strcmp(r->handler, handler) != 0) {
        return DECLINED;
    }
    r->allowed |= methods;
    if (r->method_number < 0 || r->method_number >= METHODS
        || !(((apr_uint64_t)methods >> r->method_number) & 1)) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (conf) {
        *conf = ap_get_module_config(r->per_dir_config, &scep_module);
    }
    return OK;
}

int scep_glue_send(request_rec *r, const char *content_type, const void *body,
                   apr_size_t len)
{
    ap_set_content_type(r, content_type);
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only) {
        ap_rwrite(body, (int)len, r);
    }
    return OK;
}

/* Reads a POST body of at most `max` bytes into the pool.  413 before reading anything
 * when Content-Length already says too much.  The body is read with ap_get_brigade, not
 * ap_get_client_block, which loses the reason of a failure: a client that sends too
 * slowly for mod_reqtimeout (RequestReadTimeout) or the core Timeout gets 408, not 400. */
static int read_body(request_rec *r, apr_size_t max, unsigned char **out, apr_size_t *len)
{
    apr_bucket_brigade *bb;
    apr_bucket *b;
    apr_size_t size = 0, cap;
    unsigned char *buf;
    apr_status_t rv;
    int rc, seen_eos = 0;

    if ((rc = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK)) != OK) {
        return rc;
    }
    if (r->remaining > (apr_off_t)max) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "SCEP00102: scep(-,PKIOperation): body of %" APR_OFF_T_FMT
                      " bytes exceeds ScepMaxMessageSize %lu", r->remaining,
                      (unsigned long)max);
        return HTTP_REQUEST_ENTITY_TOO_LARGE;
    }
    cap = r->remaining > 0 ? (apr_size_t)r->remaining : (max < 8192 ? max : 8192);
    buf = apr_palloc(r->pool, cap + 1);
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    while (!seen_eos) {
        rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES, APR_BLOCK_READ,
                            HUGE_STRING_LEN);
        if (rv != APR_SUCCESS) {
            rc = ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
            if (rc == HTTP_REQUEST_TIME_OUT) {
                ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r,
                              "SCEP00250: scep(-,PKIOperation): the body did not arrive in "
                              "time (%lu bytes read); RequestReadTimeout or Timeout ended "
                              "the request", (unsigned long)size);
            }
            else if (rc != AP_FILTER_ERROR) {
                ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r,
                              "SCEP00104: scep(-,PKIOperation): reading the body failed "
                              "after %lu bytes", (unsigned long)size);
            }
            apr_brigade_destroy(bb);
            return rc;
        }
        for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb);
             b = APR_BUCKET_NEXT(b)) {
            const char *data;
            apr_size_t n;

            if (APR_BUCKET_IS_EOS(b)) {
                seen_eos = 1;
                break;
            }
            if (APR_BUCKET_IS_METADATA(b)) {
                continue;
            }
            if ((rv = apr_bucket_read(b, &data, &n, APR_BLOCK_READ)) != APR_SUCCESS) {
                ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r,
                              "SCEP00104: scep(-,PKIOperation): reading the body failed "
                              "after %lu bytes", (unsigned long)size);
                apr_brigade_destroy(bb);
                return HTTP_BAD_REQUEST;
            }
            if (n > max - size) {
                ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                              "SCEP00103: scep(-,PKIOperation): chunked body exceeds "
                              "ScepMaxMessageSize %lu", (unsigned long)max);
                apr_brigade_destroy(bb);
                return HTTP_REQUEST_ENTITY_TOO_LARGE;
            }
            if (n > cap - size) {
                /* only a chunked body grows: doubling, never beyond the limit */
                unsigned char *bigger;

                cap = cap * 2 < size + n ? size + n : cap * 2;
                cap = cap > max ? max : cap;
                bigger = apr_palloc(r->pool, cap + 1);
                memcpy(bigger, buf, size);
                buf = bigger;
            }
            memcpy(buf + size, data, n);
            size += n;
        }
        apr_brigade_cleanup(bb);
    }
    apr_brigade_destroy(bb);
    *out = buf;
    *len = size;
    return OK;
}

static void audit_pki_operation(request_rec *r, const scep_reply_t *reply)
{
    const char *event = "error";

    if (!reply->transaction_id || reply->outcome == SCEP_OUTCOME_NONE) {
        return;         /* not a message anybody decided on */
    }
    /* no default: a new outcome must say which event it is */
    switch (reply->outcome) {
    case SCEP_OUTCOME_ISSUED:
    case SCEP_OUTCOME_REPLAYED:
    case SCEP_OUTCOME_RENEWED:
        event = "issued";
        break;
    case SCEP_OUTCOME_FAILURE_BAD_ALG:
    case SCEP_OUTCOME_FAILURE_BAD_MESSAGE_CHECK:
    case SCEP_OUTCOME_FAILURE_BAD_REQUEST:
    case SCEP_OUTCOME_FAILURE_BAD_TIME:
    case SCEP_OUTCOME_FAILURE_BAD_CERT_ID:
    case SCEP_OUTCOME_FAILURE_NONE:
        event = "refused";
        break;
    case SCEP_OUTCOME_PENDING:
        event = "pending";
        break;
    case SCEP_OUTCOME_CERTIFICATE:
    case SCEP_OUTCOME_CRL:
        event = "sent";
        break;
    case SCEP_OUTCOME_NONE:
    case SCEP_OUTCOME_MALFORMED:
    case SCEP_OUTCOME_TOO_LARGE:
    case SCEP_OUTCOME_STORE_FULL:
    case SCEP_OUTCOME_UPSTREAM_DOWN:
    case SCEP_OUTCOME_ERROR:
    case SCEP_OUTCOME_COUNT:
        event = "error";
        break;
    }
    scep_glue_audit(r, event, reply->transaction_id, reply->fqdn, reply->serial,
                    scep_server_outcome_name(reply->outcome), reply->reason);
}

static int pki_operation(request_rec *r, const scep_ca_t *ca, const scep_profile_t *profile,
                         const scep_dir_conf_t *conf, const char *message)
{
    scep_db_t *db = NULL;
    unsigned char *der = NULL;
    apr_size_t len = 0;
    scep_log_t log;
    scep_peer_t peer;
    scep_reply_t reply;
    int rc, token_status = OK;

    if (r->method_number == M_POST) {
        if ((rc = read_body(r, profile->max_message_size, &der, &len)) != OK) {
            return rc;
        }
    }
    else {
        apr_status_t rv;

        if (!message) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          "SCEP00105: scep(-,PKIOperation): GET without a message parameter");
            return HTTP_BAD_REQUEST;
        }
        rv = scep_decode_message(r->pool, message, strlen(message),
                                 profile->max_message_size, &der, &len);
        if (rv == APR_ENOSPC) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          "SCEP00106: scep(-,PKIOperation): message exceeds "
                          "ScepMaxMessageSize %lu", (unsigned long)profile->max_message_size);
            return HTTP_REQUEST_ENTITY_TOO_LARGE;
        }
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          "SCEP00107: scep(-,PKIOperation): the message parameter is not "
                          "base64");
            return HTTP_BAD_REQUEST;
        }
    }

    /* the body is in: only now may the request hold the token's keys */
    if ((rc = scep_glue_token_enter(r, conf->ca_ref)) != OK) {
        return rc;
    }
    log.fn = scep_glue_log_to_request;
    log.baton = r;
    log.max_level = ap_get_request_module_loglevel(r, APLOG_MODULE_INDEX);
    if (log.max_level < APLOG_NOTICE) {
        log.max_level = APLOG_NOTICE;   /* httpd always logs notices: issuance audit lines */
    }
    if (conf->db_ref && !(db = scep_glue_db(r, conf))) {
        return scep_glue_db_unavailable(r);
    }
    if (profile->upstream && !db) {
        /* an upstream that answers PENDING needs somewhere to keep the request */
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "SCEP00114: ScepUpstreamURL for %s needs a ScepDeviceDB", r->uri);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    peer.client_ip = r->useragent_ip;
    peer.location = r->uri;
    scep_server_pkioperation(r->pool, ca, profile, db, der, len, &peer, scep_glue_now(),
                             &log, &reply);
    /* done with the keys: nothing below (the notifier, the client reading) holds them */
    if (reply.token_failed) {
        token_status = scep_glue_token_failed(r, conf->ca_ref);    /* SCEP00244, 00754 */
    }
    else {
        scep_glue_token_leave(r, conf->ca_ref);
    }
    audit_pki_operation(r, &reply);
    scep_glue_webhook_notify(r, profile, &reply, peer.location, peer.client_ip);
    if (reply.transaction_id) {
        apr_table_setn(r->notes, "scep-transaction-id", reply.transaction_id);
    }
    if (reply.outcome != SCEP_OUTCOME_NONE) {
        apr_table_setn(r->notes, "scep-outcome", scep_server_outcome_name(reply.outcome));
    }
    if (token_status != OK) {
        return token_status;
    }
    if (reply.http_status == HTTP_SERVICE_UNAVAILABLE) {
        /* the store or the upstream CA: both are waited for, not the device's fault */
        return scep_glue_db_unavailable(r);
    }
    if (reply.http_status != 200) {
        return reply.http_status;
    }
    return scep_glue_send(r, "application/x-pki-message", reply.body, reply.body_len);
}

static int scep_handler(request_rec *r)
{
    const scep_dir_conf_t *conf;
    const char *operation, *message;
    scep_profile_t profile;
    const scep_ca_t *ca;
    int rc;

    if ((rc = scep_glue_handler_start(r, "scep", SCEP_GLUE_GET_POST, &conf)) != OK) {
        return rc;
    }
    if (!conf->ca_ref || !conf->ca_ref->ca) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "SCEP00108: SetHandler scep for %s, but no ScepCACertificateFile/"
                      "ScepCAKeyFile applies here", r->uri);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ca = conf->ca_ref->ca;
    if (scep_decode_query(r->pool, r->args, &operation, &message) != APR_SUCCESS
        || !operation || !*operation) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "SCEP00109: scep(-,-): request without a usable operation parameter");
        return HTTP_BAD_REQUEST;
    }
    if (strcasecmp(operation, "GetCACaps") == 0) {
        /* Renewal needs the records of issued certificates. */
        const char *caps = conf->db_ref ? apr_pstrcat(r->pool, scep_ca_caps(ca), "Renewal\n",
                                                      NULL)
                                        : scep_ca_caps(ca);

        apr_table_setn(r->notes, "scep-outcome", "getcacaps");
        return scep_glue_send(r, "text/plain", caps, strlen(caps));
    }
    if (strcasecmp(operation, "GetCACert") == 0) {
        const char *type;
        const unsigned char *der;
        apr_size_t len;

        /* `message` names a CA (Cisco sends its trustpoint, certmonger counts up from 0);
         * one CA is served per Location, so it is ignored. */
        scep_ca_cacert(ca, &type, &der, &len);
        apr_table_setn(r->notes, "scep-outcome", "getcacert");
        return scep_glue_send(r, type, der, len);
    }
    if (strcasecmp(operation, "GetNextCACert") == 0) {
        const unsigned char *der;
        apr_size_t len;

        scep_ca_nextcacert(ca, &der, &len);
        if (!der) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          "SCEP00113: scep(-,GetNextCACert): no ScepNextCACertificateFile "
                          "applies to %s (GetCACaps does not offer it here)", r->uri);
            return HTTP_NOT_FOUND;
        }
        apr_table_setn(r->notes, "scep-outcome", "getnextcacert");
        return scep_glue_send(r, "application/x-x509-next-ca-cert", der, len);
    }
    if (strcasecmp(operation, "PKIOperation") == 0) {
        scep_glue_config_effective_profile(conf, &profile);
        return pki_operation(r, ca, &profile, conf, message);
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "SCEP00110: scep(-,-): unsupported operation '%s'",
                  ap_escape_logitem(r->pool, operation));
    return HTTP_BAD_REQUEST;
}

/* A SCEP endpoint is not a file.  Left to the core, the URI would be mapped into the
 * DocumentRoot and walked as a directory, and a DocumentRoot that httpd's user cannot
 * search (a checkout under /root, a 0700 parent) turns every SCEP request into a 403.
 * The Location sections found so far decide: where SetHandler scep applies, the request
 * gets a filename of its own that the storage mapping below leaves alone. */
#define SCEP_FILENAME_PREFIX "scep:"

static int scep_translate_name(request_rec *r)
{
    const core_dir_config *core_conf = ap_get_core_module_config(r->per_dir_config);
    const char *handler, *err = NULL;

    if (!core_conf || !core_conf->expr_handler) {
        return DECLINED;
    }
    handler = ap_expr_str_exec(r, core_conf->expr_handler, &err);
    if (err || !handler
        || (strcmp(handler, "scep") != 0 && strcmp(handler, SCEP_CHALLENGE_HANDLER) != 0
            && strcmp(handler, SCEP_CRL_HANDLER) != 0
            && strcmp(handler, SCEP_STATUS_HANDLER) != 0)) {
        return DECLINED;
    }
    r->filename = apr_pstrcat(r->pool, SCEP_FILENAME_PREFIX, r->uri, NULL);
    return OK;
}

static int scep_map_to_storage(request_rec *r)
{
    if (r->filename && strncmp(r->filename, SCEP_FILENAME_PREFIX,
                               sizeof(SCEP_FILENAME_PREFIX) - 1) == 0) {
        return OK;
    }
    return DECLINED;
}

static void register_hooks(apr_pool_t *p)
{
    /* Resets the list of CA sections and prepares the default profile. */
    ap_hook_pre_config(scep_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    /* Loads and checks every CA; a broken one refuses the configuration. */
    ap_hook_check_config(scep_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    /* Announces the module in the server version string. */
    ap_hook_post_config(scep_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    /* Keep SCEP endpoints out of the file system (see scep_translate_name).  mod_rewrite
     * and mod_alias still run first, so operators can rewrite onto an endpoint. */
    ap_hook_translate_name(scep_translate_name, NULL, NULL, APR_HOOK_LAST);
    ap_hook_map_to_storage(scep_map_to_storage, NULL, NULL, APR_HOOK_FIRST);
    /* Opens the device databases in each child (never across fork). */
    ap_hook_child_init(scep_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    /* Serves `SetHandler scep`. */
    ap_hook_handler(scep_handler, NULL, NULL, APR_HOOK_MIDDLE);
    /* Serves `SetHandler scep-challenge`: minted one-time challenges. */
    ap_hook_handler(scep_glue_challenge_handler, NULL, NULL, APR_HOOK_MIDDLE);
    /* Serves `SetHandler scep-crl`: the CA's CRL. */
    ap_hook_handler(scep_glue_crl_handler, NULL, NULL, APR_HOOK_MIDDLE);
    /* Serves `SetHandler scep-status`, and counts every SCEP answer for it. */
    ap_hook_handler(scep_glue_status_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_log_transaction(scep_glue_status_log, NULL, NULL, APR_HOOK_MIDDLE);
}

module AP_MODULE_DECLARE_DATA scep_module = {
    STANDARD20_MODULE_STUFF,
    scep_glue_config_create_dir,
    scep_glue_config_merge_dir,
    scep_glue_audit_create_server_conf,
    scep_glue_audit_merge_server_conf,
    scep_glue_config_cmds,
    register_hooks,
#if AP_MODULE_MAGIC_AT_LEAST(AP_MODULE_FLAGS_MMN_MAJOR, AP_MODULE_FLAGS_MMN_MINOR)
    0
#endif
};

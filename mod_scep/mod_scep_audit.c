/* SPDX-License-Identifier: Apache-2.0 */
/* The audit log (ScepAuditLog): one JSON line per decision, to a file or a piped program
 * per server, opened by the parent at startup.  The server configuration holds nothing
 * else, so its create and merge live here too. */
#include <errno.h>
#include <string.h>

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"

#include <apr_hash.h>
#include <apr_strings.h>

#include "mod_scep.h"
#include "scep_util.h"

APLOG_USE_MODULE(scep);

void *scep_glue_audit_create_server_conf(apr_pool_t *p, server_rec *s)
{
    return apr_pcalloc(p, sizeof(scep_server_conf_t));
}

void *scep_glue_audit_merge_server_conf(apr_pool_t *p, void *basev, void *addv)
{
    const scep_server_conf_t *base = basev, *add = addv;
    scep_server_conf_t *conf = apr_pcalloc(p, sizeof(*conf));

    conf->audit_path = add->audit_path ? add->audit_path : base->audit_path;
    return conf;
}

/* Opens every server's audit log once; servers naming the same file share the handle. */
int scep_glue_audit_open(apr_pool_t *pconf, server_rec *s)
{
    apr_hash_t *opened = apr_hash_make(pconf);
    server_rec *vs;

    for (vs = s; vs; vs = vs->next) {
        scep_server_conf_t *conf = ap_get_module_config(vs->module_config, &scep_module);
        apr_file_t *f;

        if (!conf->audit_path) {
            continue;
        }
        if ((f = apr_hash_get(opened, conf->audit_path, APR_HASH_KEY_STRING)) == NULL) {
            if (conf->audit_path[0] == '|') {
                piped_log *pl = ap_open_piped_log(pconf, conf->audit_path + 1);

                if (!pl) {
                    ap_log_error(APLOG_MARK, APLOG_EMERG, 0, vs,
                                 "SCEP00014: ScepAuditLog: cannot start '%s'",
                                 conf->audit_path + 1);
                    return HTTP_INTERNAL_SERVER_ERROR;
                }
                f = ap_piped_log_write_fd(pl);
            }
            else {
                apr_status_t rv = apr_file_open(&f, conf->audit_path,
                                                APR_FOPEN_WRITE | APR_FOPEN_APPEND
                                                | APR_FOPEN_CREATE | APR_FOPEN_LARGEFILE,
                                                APR_FPROT_UREAD | APR_FPROT_UWRITE
                                                | APR_FPROT_GREAD, pconf);

                if (rv != APR_SUCCESS) {
                    ap_log_error(APLOG_MARK, APLOG_EMERG, rv, vs,
                                 "SCEP00015: ScepAuditLog: cannot open %s", conf->audit_path);
                    return HTTP_INTERNAL_SERVER_ERROR;
                }
            }
            apr_hash_set(opened, conf->audit_path, APR_HASH_KEY_STRING, f);
        }
        conf->audit = f;
    }
    return OK;
}

static void json_field(apr_pool_t *p, apr_array_header_t *parts, const char *name,
                       const char *value)
{
    if (value) {
        APR_ARRAY_PUSH(parts, const char *) =
            apr_pstrcat(p, "\"", name, "\":", scep_util_json_string(p, value), NULL);
    }
}

void scep_glue_audit(request_rec *r, const char *event, const char *transaction_id,
                     const char *fqdn, const char *serial, const char *outcome,
                     const char *reason)
{
    scep_server_conf_t *conf = ap_get_module_config(r->server->module_config, &scep_module);
    apr_array_header_t *parts;
    char stamp[SCEP_UTIL_ISO_TIME_SIZE];
    const char *line;
    apr_size_t len;

    if (!conf->audit) {
        return;
    }
    scep_util_iso_time(stamp, apr_time_sec(r->request_time));
    parts = apr_array_make(r->pool, 10, sizeof(const char *));
    json_field(r->pool, parts, "time", stamp);
    json_field(r->pool, parts, "event", event);
    json_field(r->pool, parts, "location", r->uri);
    json_field(r->pool, parts, "client", r->useragent_ip);
    json_field(r->pool, parts, "user", r->user);
    json_field(r->pool, parts, "transaction_id", transaction_id);
    json_field(r->pool, parts, "fqdn", fqdn);
    json_field(r->pool, parts, "serial", serial);
    json_field(r->pool, parts, "outcome", outcome);
    json_field(r->pool, parts, "reason", reason);
    line = apr_pstrcat(r->pool, "{", apr_array_pstrcat(r->pool, parts, ','), "}\n", NULL);
    len = strlen(line);
    /* One write per line: with O_APPEND, lines of concurrent requests do not interleave. */
    if (apr_file_write_full(conf->audit, line, len, NULL) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, errno, r,
                      "SCEP00112: cannot write to ScepAuditLog %s", conf->audit_path);
    }
}

/* SPDX-License-Identifier: Apache-2.0 */
/* The directives of the forwarding issuer (ScepUpstream*), and the per-child objects
 * that talk to the upstream CA.  The core does the work (scep_forward.c). */
#include <string.h>

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"

#include <apr_strings.h>

#include "mod_scep.h"

APLOG_USE_MODULE(scep);

/* Every section that forwards, for child_init. */
static apr_array_header_t *upstream_refs;

void scep_glue_forward_reset(void)
{
    upstream_refs = NULL;
}

static scep_upstream_ref_t *section_upstream(cmd_parms *cmd, scep_dir_conf_t *conf)
{
    if (!conf->upstream_ref) {
        scep_upstream_ref_t *ref = apr_pcalloc(cmd->pool, sizeof(*ref));

        ref->conf.connect_timeout = SCEP_UPSTREAM_CONNECT_TIMEOUT;
        ref->conf.timeout = SCEP_UPSTREAM_TIMEOUT;
        ref->conf.retries = SCEP_UPSTREAM_RETRIES;
        ref->conf.refresh = SCEP_UPSTREAM_REFRESH;
        ref->conf.down_answer = 200;
        ref->section = conf;
        ref->defined_at = cmd->directive
            ? apr_psprintf(cmd->pool, "%s:%d", cmd->directive->filename,
                           cmd->directive->line_num)
            : "?";
        if (!upstream_refs) {
            upstream_refs = apr_array_make(cmd->pool, 4, sizeof(scep_upstream_ref_t *));
        }
        APR_ARRAY_PUSH(upstream_refs, scep_upstream_ref_t *) = ref;
        conf->upstream_ref = ref;
    }
    return conf->upstream_ref;
}

static int http_url(const char *url)
{
    return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

const char *scep_glue_upstream_url(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_dir_conf_t *conf = dconf;
    const char *err;

    if ((err = scep_glue_endpoint_context(cmd)) != NULL) {
        return err;
    }
    if (!http_url(arg) || strchr(arg, '#')) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not an http:// or https:// URL",
                            cmd->cmd->name, arg);
    }
    section_upstream(cmd, conf)->conf.url = arg;
    scep_glue_mark_forwarding(cmd, conf);
    return NULL;
}

const char *scep_glue_upstream_proxy(cmd_parms *cmd, void *dconf, const char *url,
                             const char *credentials)
{
    scep_upstream_ref_t *ref;
    const char *err;

    if ((err = scep_glue_endpoint_context(cmd)) != NULL) {
        return err;
    }
    if (!http_url(url)) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not an http:// or https:// proxy URL",
                            cmd->cmd->name, url);
    }
    if (credentials && !strchr(credentials, ':')) {
        return apr_psprintf(cmd->pool, "%s: the credentials are user:password",
                            cmd->cmd->name);
    }
    ref = section_upstream(cmd, dconf);
    ref->conf.proxy = url;
    ref->conf.proxy_auth = credentials;
    return NULL;
}

const char *scep_glue_upstream_text(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_upstream_ref_t *ref;
    const char *err, *path;

    if ((err = scep_glue_endpoint_context(cmd)) != NULL) {
        return err;
    }
    ref = section_upstream(cmd, dconf);
    if (strcmp(cmd->cmd->name, "ScepUpstreamNoProxy") == 0) {
        ref->conf.no_proxy = arg;
        return NULL;
    }
    if (!(path = ap_server_root_relative(cmd->pool, arg))) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name, ": invalid file path '", arg, "'", NULL);
    }
    if (strcmp(cmd->cmd->name, "ScepUpstreamRACertificateFile") == 0) {
        /* read here, as root and for `httpd -t` too; the children share what was read */
        ref->conf.ra_file = path;
        return scep_forward_load_ra_file(cmd->pool, &ref->conf, &err) == APR_SUCCESS
               ? NULL : err;
    }
    ref->conf.ca_file = path;
    return NULL;
}

const char *scep_glue_upstream_client_cert(cmd_parms *cmd, void *dconf, const char *cert,
                                   const char *key)
{
    scep_upstream_ref_t *ref;
    const char *err;

    if ((err = scep_glue_endpoint_context(cmd)) != NULL) {
        return err;
    }
    ref = section_upstream(cmd, dconf);
    ref->conf.client_cert = ap_server_root_relative(cmd->pool, cert);
    ref->conf.client_key = ap_server_root_relative(cmd->pool, key);
    if (!ref->conf.client_cert || !ref->conf.client_key) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name, ": invalid file path", NULL);
    }
    return NULL;
}

static const char *number(cmd_parms *cmd, const char *arg, long min, long max, long *out)
{
    char *end;
    long v = strtol(arg, &end, 10);

    if (!*arg || *end || v < min || v > max) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a whole number from %ld to %ld",
                            cmd->cmd->name, arg, min, max);
    }
    *out = v;
    return NULL;
}

const char *scep_glue_upstream_timeout(cmd_parms *cmd, void *dconf, const char *connect,
                               const char *total)
{
    scep_upstream_ref_t *ref;
    long c = 0, t = 0;
    const char *err;

    if ((err = scep_glue_endpoint_context(cmd)) != NULL
        || (err = number(cmd, connect, 1, 300, &c)) != NULL
        || (err = number(cmd, total, 1, 600, &t)) != NULL) {
        return err;
    }
    if (c > t) {
        return apr_psprintf(cmd->pool, "%s: the connect timeout is longer than the total",
                            cmd->cmd->name);
    }
    ref = section_upstream(cmd, dconf);
    ref->conf.connect_timeout = c;
    ref->conf.timeout = t;
    return NULL;
}

const char *scep_glue_upstream_retries(cmd_parms *cmd, void *dconf, const char *arg)
{
    long v = 0;
    const char *err;

    if ((err = scep_glue_endpoint_context(cmd)) != NULL
        || (err = number(cmd, arg, 0, 5, &v)) != NULL) {
        return err;
    }
    section_upstream(cmd, dconf)->conf.retries = (int)v;
    return NULL;
}

const char *scep_glue_upstream_down_answer(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_upstream_ref_t *ref;
    const char *err;

    if ((err = scep_glue_endpoint_context(cmd)) != NULL) {
        return err;
    }
    ref = section_upstream(cmd, dconf);
    if (strcasecmp(arg, "pending") == 0) {
        ref->conf.down_answer = 200;
    }
    else if (strcmp(arg, "503") == 0) {
        ref->conf.down_answer = 503;
    }
    else {
        return apr_psprintf(cmd->pool, "%s: '%s' is neither Pending nor 503", cmd->cmd->name,
                            arg);
    }
    return NULL;
}

const char *scep_glue_upstream_refresh(cmd_parms *cmd, void *dconf, const char *arg)
{
    long v = 0;
    const char *err;

    if ((err = scep_glue_endpoint_context(cmd)) != NULL
        || (err = number(cmd, arg, 10, 7 * 86400L, &v)) != NULL) {
        return err;
    }
    section_upstream(cmd, dconf)->conf.refresh = v;
    return NULL;
}

int scep_glue_forward_prepare(apr_pool_t *pconf, server_rec *s)
{
    int i;

    for (i = 0; upstream_refs && i < upstream_refs->nelts; i++) {
        scep_upstream_ref_t *ref = APR_ARRAY_IDX(upstream_refs, i, scep_upstream_ref_t *);

        if (!ref->conf.url) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "SCEP00410: ScepUpstream* settings at "
                         "%s without ScepUpstreamURL in the same section", ref->defined_at);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        if (!ref->section->ca_ref || !ref->section->ca_ref->ca) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "SCEP00411: ScepUpstreamURL at %s "
                         "needs ScepCACertificateFile (the upstream CA) and the RA files in "
                         "the same section", ref->defined_at);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        /* Over http:// anyone on the path answers GetCACert: any certificate of the
         * upstream's CA that may encrypt then passes as its RA, a device's too, and would
         * receive every device's challenge.  Not refused, since the upstream's CA may
         * issue no such certificate to anyone else; said at each start. */
        if (strncasecmp(ref->conf.url, "http://", 7) == 0 && !ref->conf.ra_file) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "SCEP00431: ScepUpstreamURL %s at "
                         "%s is http:// and no ScepUpstreamRACertificateFile names the "
                         "upstream's RA: whoever can answer on the path can pose as the RA "
                         "with any certificate of its CA that allows keyEncipherment",
                         ref->conf.url, ref->defined_at);
        }
    }
    if (upstream_refs && scep_forward_global_init() != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "SCEP00412: libcurl cannot start");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

void scep_glue_forward_child_init(apr_pool_t *pchild, server_rec *s)
{
    int i;

    for (i = 0; upstream_refs && i < upstream_refs->nelts; i++) {
        scep_upstream_ref_t *ref = APR_ARRAY_IDX(upstream_refs, i, scep_upstream_ref_t *);

        if (scep_forward_create(pchild, &ref->conf, ref->section->ca_ref->ca, &ref->up)
            != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "SCEP00413: cannot prepare the "
                         "upstream %s configured at %s", ref->conf.url, ref->defined_at);
        }
    }
}

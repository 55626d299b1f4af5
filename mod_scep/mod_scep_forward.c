/* SPDX-License-Identifier: Apache-2.0 */
/* The sections that forward to an upstream CA (their ScepUpstream* directives are read in
 * mod_scep_config.c): checked at startup, and the per-child objects that talk to the
 * upstream.  The core does the work (scep_forward.c). */
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

scep_upstream_ref_t *scep_glue_forward_ref(cmd_parms *cmd, scep_dir_conf_t *conf)
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

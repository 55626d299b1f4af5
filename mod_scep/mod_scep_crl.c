/* SPDX-License-Identifier: Apache-2.0 */
/* `SetHandler scep-crl`: publishes the local CA's CRL (DER, application/pkix-crl) at a
 * URL the operator names as the CRL distribution point of issued certificates.  The CRL
 * comes from the core (scep_crl_current): rebuilt only after a revocation or when half
 * its validity has passed, so the handler is as cheap as a static file.  Conditional
 * requests (If-None-Match, If-Modified-Since) get 304; caches may keep the CRL until it
 * would be rebuilt. */

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"

#include <apr_strings.h>

#include "mod_scep.h"
#include "scep_crl.h"
#include "scep_util.h"

APLOG_USE_MODULE(scep);

int scep_glue_crl_handler(request_rec *r)
{
    const scep_dir_conf_t *conf;
    scep_profile_t profile;
    scep_db_t *db;
    scep_crl_t *crl;
    apr_int64_t now;
    apr_status_t rv;
    int rc;

    if ((rc = scep_glue_handler_start(r, SCEP_CRL_HANDLER, SCEP_GLUE_GET, &conf)) != OK) {
        return rc;
    }
    now = scep_glue_now();
    if (!conf->ca_ref || !conf->ca_ref->ca || !conf->db_ref
        || !scep_ca_can_sign(conf->ca_ref->ca)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "SCEP00130: SetHandler scep-crl for %s needs ScepCACertificateFile, "
                      "ScepCAKeyFile and ScepDeviceDB to apply here (an upstream CA "
                      "publishes its own CRL)", r->uri);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (!(db = scep_glue_db(r, conf))) {
        return scep_glue_db_unavailable(r);
    }
    if ((rc = scep_glue_token_enter(r, conf->ca_ref)) != OK) {
        return rc;
    }
    scep_glue_config_effective_profile(conf, &profile);
    rv = scep_crl_current(r->pool, conf->ca_ref->ca, db, profile.crl_validity, now, &crl);
    if (rv != APR_SUCCESS) {
        /* said before the token is asked, which starts OpenSSL's error queue afresh */
        const char *why = rv == APR_EGENERAL ? scep_util_openssl_errors(r->pool)
                                             : scep_db_strerror(r->pool, rv);

        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "SCEP00131: cannot prepare the CRL of %s: %s",
                      scep_ca_name(conf->ca_ref->ca), *why ? why : "no detail");
    }
    if (rv == APR_EGENERAL && !scep_ca_token_works(conf->ca_ref->ca, 0)) {
        return scep_glue_token_failed(r, conf->ca_ref);
    }
    scep_glue_token_leave(r, conf->ca_ref);
    if (rv != APR_SUCCESS) {
        return scep_glue_db_transient(db, rv) ? scep_glue_db_unavailable(r)
                                              : HTTP_INTERNAL_SERVER_ERROR;
    }
    if (crl->built) {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      "SCEP00132: CRL number %" APR_INT64_T_FMT " of %s signed: %"
                      APR_SIZE_T_FMT " revoked certificates, next update in %"
                      APR_INT64_T_FMT " s", crl->number, scep_ca_name(conf->ca_ref->ca),
                      crl->entries, crl->next_update - crl->this_update);
    }
    r->mtime = apr_time_from_sec(crl->this_update);
    ap_set_last_modified(r);
    apr_table_setn(r->headers_out, "ETag",
                   apr_psprintf(r->pool, "\"crl-%" APR_INT64_T_FMT "\"", crl->number));
    apr_table_setn(r->headers_out, "Cache-Control",
                   apr_psprintf(r->pool, "max-age=%" APR_INT64_T_FMT,
                                crl->refresh_at > now ? crl->refresh_at - now : 0));
    if ((rc = ap_meets_conditions(r)) != OK) {
        return rc;
    }
    return scep_glue_send(r, "application/pkix-crl", crl->der, crl->der_len);
}

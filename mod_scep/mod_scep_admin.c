/* SPDX-License-Identifier: Apache-2.0 */
/* `SetHandler scep-challenge`: mints one-time challenges, NDES-style, for an MDM or an
 * operator to hand to a device.  The handler authenticates nobody itself: the operator
 * protects its Location with httpd's own authentication and Require, and the audit log
 * records who minted what.
 *
 * Answers plain text (the challenge alone), JSON (format=json or Accept:
 * application/json), or, for MDMs written against Microsoft NDES, the page shape of
 * /certsrv/mscep_admin (format=mscep, or a path ending in mscep_admin).
 *
 * The parameters bind the challenge, so they are read strictly: one that is present but
 * cannot be decoded or used, an unknown or repeated one, or a request body refuses the
 * request with 400 and mints nothing.  Reading one as absent would mint a challenge for
 * any name where the caller asked for one name. */
#include <errno.h>
#include <string.h>

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"

#include <apr_lib.h>
#include <apr_strings.h>

#include "mod_scep.h"
#include "scep_import.h"
#include "scep_name.h"
#include "scep_policy.h"
#include "scep_store.h"
#include "scep_util.h"

APLOG_USE_MODULE(scep);

#define TTL_MAX (30L * 24 * 3600)

/* What the query string may hold; in this order in `params` below. */
enum { P_FQDN, P_PROFILE, P_TTL, P_FORMAT, P_COUNT };

/* A value from the wire, for a log line and the one-line answer: escaped like any log
 * item, and cut short, since it only has to be recognised. */
static const char *shown(request_rec *r, const char *value)
{
    return ap_escape_logitem(r->pool, strlen(value) > 80
                             ? apr_pstrcat(r->pool, apr_pstrndup(r->pool, value, 80), "...",
                                           NULL)
                             : value);
}

/* Every refusal of a request: 400 with the reason as a one-line text answer (the caller
 * is a script or an MDM that shows it), an info line, an audit line, nothing minted. */
static int refuse(request_rec *r, const char *tag, const char *why)
{
    const char *body = apr_pstrcat(r->pool, "scep-challenge: ", why,
                                   "; no challenge was minted\n", NULL);

    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "%s: scep-challenge: %s; nothing minted "
                  "for %s", tag, why, r->user ? r->user : "an unauthenticated caller");
    scep_glue_audit(r, "refused", NULL, NULL, NULL, "bad-parameter", why);
    r->status = HTTP_BAD_REQUEST;
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    return scep_glue_send(r, "text/plain", body, strlen(body));
}

/* A request body is never read, so parameters there would be silently lost (a form
 * POST with fqdn= would mint a challenge for any name): a request with one is refused. */
static int has_body(request_rec *r)
{
    const char *length = apr_table_get(r->headers_in, "Content-Length");

    return apr_table_get(r->headers_in, "Transfer-Encoding") != NULL
           || (length && strspn(length, "0") != strlen(length));
}

/* NDES answers its admin page in UTF-16LE; MDM connectors decode it that way and look
 * for the sentence that carries the password. */
static int send_mscep_page(request_rec *r, const char *challenge, apr_int64_t ttl)
{
    const char *html = apr_psprintf(r->pool,
        "<HTML><Head><Meta HTTP-Equiv=\"Content-Type\" Content=\"text/html; "
        "charset=UTF-16\"><Title>Network Device Enrollment Service</Title></Head>"
        "<Body><P> The enrollment challenge password is: <B> %s </B><P> This password "
        "can be used only once and will expire within %ld minutes.</Body></HTML>",
        challenge, (long)((ttl + 59) / 60));
    apr_size_t n = strlen(html), i;
    unsigned char *wide = apr_palloc(r->pool, 2 * n + 2);

    wide[0] = 0xff;                    /* byte order mark */
    wide[1] = 0xfe;
    for (i = 0; i < n; i++) {          /* the page is ASCII */
        wide[2 + 2 * i] = (unsigned char)html[i];
        wide[3 + 2 * i] = 0;
    }
    return scep_glue_send(r, "text/html; charset=utf-16", wide, 2 * n + 2);
}

static int wants_json(request_rec *r, const char *format)
{
    const char *accept = apr_table_get(r->headers_in, "Accept");

    if (format) {
        return strcasecmp(format, "json") == 0;
    }
    return accept && ap_strcasestr(accept, "application/json") != NULL;
}

int scep_glue_challenge_handler(request_rec *r)
{
    const scep_dir_conf_t *conf;
    scep_param_t params[P_COUNT] = {
        { "fqdn", NULL }, { "profile", NULL }, { "ttl", NULL }, { "format", NULL }
    };
    const char *fqdn_arg, *fqdn = NULL, *profile, *ttl_arg, *format, *challenge, *why;
    apr_int64_t ttl, now;
    scep_minted_t *rec;
    scep_db_t *db;
    apr_status_t rv;
    int rc;

    if ((rc = scep_glue_handler_start(r, SCEP_CHALLENGE_HANDLER, SCEP_GLUE_GET_POST, &conf))
        != OK) {
        return rc;
    }
    if (!conf->db_ref) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "SCEP00120: SetHandler scep-challenge for %s, but no ScepDeviceDB "
                      "applies here", r->uri);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (has_body(r)) {
        return refuse(r, "SCEP00151", "the request has a body, which is not read: give "
                      "the parameters in the query string");
    }
    if (scep_util_params_parse(r->pool, r->args, params, P_COUNT, &why) != APR_SUCCESS) {
        return refuse(r, "SCEP00150", apr_psprintf(r->pool, "%s in the query '%s'", why,
                                                   shown(r, r->args)));
    }
    fqdn_arg = params[P_FQDN].value;
    profile = params[P_PROFILE].value;
    ttl_arg = params[P_TTL].value;
    format = params[P_FORMAT].value;
    ttl = conf->challenge_ttl ? conf->challenge_ttl : SCEP_DEFAULT_CHALLENGE_TTL;
    /* a host name, or "name:", "id:", "user:" and the identity (percent-decoded) */
    if (fqdn_arg && !(fqdn = scep_name_key(r->pool, fqdn_arg, 0, &why))) {
        return refuse(r, "SCEP00121", apr_psprintf(r->pool, "fqdn '%s' is not a host name "
                                                   "or kind:identity (no wildcards): %s",
                                                   shown(r, fqdn_arg), why));
    }
    if (profile && !scep_import_profile_name_ok(profile)) {
        return refuse(r, "SCEP00122", apr_psprintf(r->pool, "profile '%s' is not a profile "
                                                   "name", shown(r, profile)));
    }
    if (!profile) {
        profile = conf->profile.registrations.profile_name;
    }
    if (ttl_arg) {
        char *end;
        apr_int64_t asked;

        /* digits only: strtoll would also take blanks, a sign and overflow quietly */
        errno = 0;
        asked = strspn(ttl_arg, "0123456789") == strlen(ttl_arg)
                ? apr_strtoi64(ttl_arg, &end, 10) : 0;
        if (errno || asked <= 0 || asked > TTL_MAX) {
            return refuse(r, "SCEP00123", apr_psprintf(r->pool, "ttl '%s' is not a number "
                                                       "of seconds from 1 to %ld",
                                                       shown(r, ttl_arg), TTL_MAX));
        }
        /* a caller may shorten the lifetime, never extend it past ScepChallengeTTL */
        if (asked < ttl) {
            ttl = asked;
        }
    }
    if (format && strcasecmp(format, "text") != 0 && strcasecmp(format, "json") != 0
        && strcasecmp(format, "mscep") != 0) {
        return refuse(r, "SCEP00152", apr_psprintf(r->pool, "format '%s' is none of text, "
                                                   "json and mscep", shown(r, format)));
    }
    if (!(db = scep_glue_db(r, conf))) {
        return scep_glue_db_unavailable(r);
    }
    now = apr_time_sec(r->request_time);
    rv = scep_policy_mint_commit(r->pool, db, now, ttl, fqdn, profile, &challenge, &rec);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "SCEP00124: scep-challenge: cannot store a new challenge in %s: %s",
                      scep_db_path(db), scep_db_strerror(r->pool, rv));
        scep_glue_audit(r, "error", NULL, fqdn, NULL, "store-error", "cannot mint");
        return scep_glue_db_transient(db, rv) ? scep_glue_db_unavailable(r)
                                              : HTTP_INTERNAL_SERVER_ERROR;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "SCEP00125: scep-challenge: minted a challenge for %s (profile %s, valid "
                  "%ld s) for %s", fqdn ? shown(r, fqdn) : "any name",
                  profile ? profile : "any",
                  (long)ttl, r->user ? r->user : "an unauthenticated caller");
    scep_glue_audit(r, "minted", NULL, fqdn, NULL, "minted", NULL);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if ((format && strcasecmp(format, "mscep") == 0)
        || (!format && ap_strstr_c(r->uri, "mscep_admin"))) {
        return send_mscep_page(r, challenge, ttl);
    }
    if (wants_json(r, format)) {
        const char *json = apr_psprintf(r->pool,
            "{\"challenge\":\"%s\",\"expires\":\"%s\",\"ttl\":%ld,\"fqdn\":%s,"
            "\"profile\":%s}\n", challenge, SCEP_UTIL_ISO_TIME(rec->expires), (long)ttl,
            scep_util_json_string(r->pool, fqdn),
            scep_util_json_string(r->pool, profile));

        return scep_glue_send(r, "application/json", json, strlen(json));
    }
    challenge = apr_pstrcat(r->pool, challenge, "\n", NULL);
    return scep_glue_send(r, "text/plain", challenge, strlen(challenge));
}

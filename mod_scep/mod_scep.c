/* SPDX-License-Identifier: Apache-2.0 */
/* mod_scep: the httpd glue.  The module record, the directives and their merging, the
 * hook that loads every configured CA before httpd accepts the configuration, and the
 * `scep` handler that turns a request into a core call and the reply into a response.
 * SCEP itself lives in the httpd-free core (scep_*.c). */
#include <string.h>

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "ap_expr.h"

#include <apr_lib.h>
#include <apr_strings.h>

#include "mod_scep.h"
#include "scep_ca.h"
#include "scep_decode.h"
#include "scep_import.h"
#include "scep_server.h"
#include "scep_store.h"
#include "scep_version.h"

APLOG_USE_MODULE(scep);

/* Each profile member that a section set explicitly. */
enum {
    SET_VALIDITY = 1 << 0, SET_KEY_USAGE = 1 << 1, SET_EKU = 1 << 2, SET_SUBJECT = 1 << 3,
    SET_MIN_KEY = 1 << 4, SET_LEGACY = 1 << 5, SET_CHALLENGE = 1 << 6,
    SET_NO_CHALLENGE = 1 << 7, SET_MAX_MESSAGE = 1 << 8, SET_PROFILE_NAME = 1 << 9,
    SET_CHECK_ADDRESS = 1 << 10, SET_LOCKOUT = 1 << 11, SET_TXN_WINDOW = 1 << 12,
    SET_RENEWAL_GRACE = 1 << 13, SET_RENEWAL_CHALLENGE = 1 << 14, SET_RENEWAL_REVOKE = 1 << 15,
    SET_CRL_VALIDITY = 1 << 16, SET_CDP = 1 << 17, SET_APPROVAL = 1 << 18,
    SET_PENDING_TIMEOUT = 1 << 19, SET_FAILURE_DETAIL = 1 << 20
};

/* Every CA section of the configuration being read, loaded by check_config. */
static apr_array_header_t *ca_refs;
/* The documented defaults, prepared once per configuration cycle. */
static scep_profile_t default_profile;

static void *create_dir_conf(apr_pool_t *p, char *dir)
{
    scep_dir_conf_t *conf = apr_pcalloc(p, sizeof(scep_dir_conf_t));

    conf->location = dir;
    return conf;
}

#define MERGE_MEMBER(flag, member) \
    if (add->set & (flag)) { conf->profile.member = add->profile.member; }

static void *merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    const scep_dir_conf_t *base = basev, *add = addv;
    scep_dir_conf_t *conf = apr_palloc(p, sizeof(*conf));

    *conf = *base;
    conf->ca_ref = add->ca_ref ? add->ca_ref : base->ca_ref;
    conf->db_ref = add->db_ref ? add->db_ref : base->db_ref;
    conf->upstream_ref = add->upstream_ref ? add->upstream_ref : base->upstream_ref;
    conf->location = add->location ? add->location : base->location;
    conf->challenge_ttl = add->challenge_ttl ? add->challenge_ttl : base->challenge_ttl;
    conf->set = base->set | add->set;
    MERGE_MEMBER(SET_VALIDITY, validity_days);
    MERGE_MEMBER(SET_KEY_USAGE, key_usage);
    MERGE_MEMBER(SET_SUBJECT, subject_mode);
    MERGE_MEMBER(SET_MIN_KEY, min_key_bits);
    MERGE_MEMBER(SET_LEGACY, legacy_algorithms);
    MERGE_MEMBER(SET_CHALLENGE, challenge_sha256);
    MERGE_MEMBER(SET_NO_CHALLENGE, allow_no_challenge);
    MERGE_MEMBER(SET_MAX_MESSAGE, max_message_size);
    MERGE_MEMBER(SET_PROFILE_NAME, registrations.profile_name);
    MERGE_MEMBER(SET_CHECK_ADDRESS, registrations.check_client_address);
    MERGE_MEMBER(SET_LOCKOUT, registrations.lockout_failures);
    MERGE_MEMBER(SET_LOCKOUT, registrations.lockout_seconds);
    MERGE_MEMBER(SET_LOCKOUT, registrations.lockout_shared_failures);
    MERGE_MEMBER(SET_TXN_WINDOW, registrations.transaction_window);
    MERGE_MEMBER(SET_RENEWAL_GRACE, registrations.renewal_grace);
    MERGE_MEMBER(SET_RENEWAL_CHALLENGE, registrations.renewal_challenge);
    MERGE_MEMBER(SET_RENEWAL_REVOKE, registrations.renewal_revokes_old);
    MERGE_MEMBER(SET_CRL_VALIDITY, crl_validity);
    MERGE_MEMBER(SET_APPROVAL, registrations.require_approval);
    MERGE_MEMBER(SET_PENDING_TIMEOUT, registrations.pending_timeout);
    MERGE_MEMBER(SET_FAILURE_DETAIL, failure_detail);
    MERGE_MEMBER(SET_CDP, cdp_der);
    MERGE_MEMBER(SET_CDP, cdp_der_len);
    if (add->set & SET_EKU) {
        conf->profile.eku_der = add->profile.eku_der;
        conf->profile.eku_der_len = add->profile.eku_der_len;
    }
    return conf;
}

/* The profile in force: what the sections set, the documented default elsewhere. */
void scep_glue_effective_profile(const scep_dir_conf_t *conf, scep_profile_t *out)
{
    *out = default_profile;
#define TAKE(flag, member) if (conf->set & (flag)) { out->member = conf->profile.member; }
    TAKE(SET_VALIDITY, validity_days);
    TAKE(SET_KEY_USAGE, key_usage);
    TAKE(SET_SUBJECT, subject_mode);
    TAKE(SET_MIN_KEY, min_key_bits);
    TAKE(SET_LEGACY, legacy_algorithms);
    TAKE(SET_CHALLENGE, challenge_sha256);
    TAKE(SET_NO_CHALLENGE, allow_no_challenge);
    TAKE(SET_MAX_MESSAGE, max_message_size);
    TAKE(SET_EKU, eku_der);
    TAKE(SET_EKU, eku_der_len);
    TAKE(SET_PROFILE_NAME, registrations.profile_name);
    TAKE(SET_CHECK_ADDRESS, registrations.check_client_address);
    TAKE(SET_LOCKOUT, registrations.lockout_failures);
    TAKE(SET_LOCKOUT, registrations.lockout_seconds);
    TAKE(SET_LOCKOUT, registrations.lockout_shared_failures);
    TAKE(SET_TXN_WINDOW, registrations.transaction_window);
    TAKE(SET_RENEWAL_GRACE, registrations.renewal_grace);
    TAKE(SET_RENEWAL_CHALLENGE, registrations.renewal_challenge);
    TAKE(SET_RENEWAL_REVOKE, registrations.renewal_revokes_old);
    TAKE(SET_CRL_VALIDITY, crl_validity);
    TAKE(SET_APPROVAL, registrations.require_approval);
    TAKE(SET_PENDING_TIMEOUT, registrations.pending_timeout);
    TAKE(SET_FAILURE_DETAIL, failure_detail);
    TAKE(SET_CDP, cdp_der);
    TAKE(SET_CDP, cdp_der_len);
#undef TAKE
    out->upstream = conf->upstream_ref ? conf->upstream_ref->up : NULL;
}

/* ---- directives ------------------------------------------------------------------ */

/* A SCEP endpoint never reaches the file system (scep_translate_name), so a setting in a
 * <Directory> or <Files> section could never apply to it: refuse it instead of ignoring it. */
const char *scep_glue_endpoint_context(cmd_parms *cmd)
{
    return ap_check_cmd_context(cmd, NOT_IN_DIRECTORY | NOT_IN_FILES);
}

static ca_ref_t *section_ca(cmd_parms *cmd, scep_dir_conf_t *conf)
{
    if (!conf->ca_ref) {
        conf->ca_ref = apr_pcalloc(cmd->pool, sizeof(ca_ref_t));
        conf->ca_ref->defined_at = cmd->directive
            ? apr_psprintf(cmd->pool, "%s:%d", cmd->directive->filename,
                           cmd->directive->line_num)
            : "?";
        if (!ca_refs) {
            ca_refs = apr_array_make(cmd->pool, 4, sizeof(ca_ref_t *));
        }
        APR_ARRAY_PUSH(ca_refs, ca_ref_t *) = conf->ca_ref;
    }
    return conf->ca_ref;
}

void scep_glue_mark_forwarding(cmd_parms *cmd, scep_dir_conf_t *conf)
{
    section_ca(cmd, conf)->files.forwarding = 1;
}

static const char *set_file(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *path, **slot, *err;

    if ((err = scep_glue_endpoint_context(cmd)) != NULL) {
        return err;
    }
    slot = (const char **)((char *)&section_ca(cmd, dconf)->files + (size_t)cmd->info);
    path = ap_server_root_relative(cmd->pool, arg);
    if (!path) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name, ": invalid file path '", arg, "'",
                           NULL);
    }
    *slot = path;
    return NULL;
}

static const char *set_positive(cmd_parms *cmd, const char *arg, long max, long *out)
{
    char *end;
    long v = strtol(arg, &end, 10);
    const char *err;

    if ((err = scep_glue_endpoint_context(cmd)) != NULL) {
        return err;
    }
    if (*arg == '\0' || *end != '\0' || v <= 0 || v > max) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a whole number from 1 to %ld",
                            cmd->cmd->name, arg, max);
    }
    *out = v;
    return NULL;
}

static const char *set_validity(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_dir_conf_t *conf = dconf;
    long v = 0;
    const char *err = set_positive(cmd, arg, 36500, &v);

    if (!err) {
        conf->profile.validity_days = (int)v;
        conf->set |= SET_VALIDITY;
    }
    return err;
}

static const char *set_min_key(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_dir_conf_t *conf = dconf;
    long v = 0;
    const char *err = set_positive(cmd, arg, 16384, &v);

    if (!err) {
        conf->profile.min_key_bits = (int)v;
        conf->set |= SET_MIN_KEY;
    }
    return err;
}

static const char *set_max_message(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_dir_conf_t *conf = dconf;
    long v = 0;
    const char *err = set_positive(cmd, arg, 64L * 1024 * 1024, &v);

    if (!err) {
        conf->profile.max_message_size = (apr_size_t)v;
        conf->set |= SET_MAX_MESSAGE;
    }
    return err;
}

static const char *set_key_usage(cmd_parms *cmd, void *dconf, int argc, char *const argv[])
{
    scep_dir_conf_t *conf = dconf;
    unsigned int bits = 0, bit;
    int i;
    const char *err;

    if ((err = scep_glue_endpoint_context(cmd)) != NULL) {
        return err;
    }
    if (argc == 0) {
        return "ScepKeyUsage: name at least one key usage, or 'none'";
    }
    for (i = 0; i < argc; i++) {
        if (argc == 1 && strcasecmp(argv[i], "none") == 0) {
            break;
        }
        if ((err = scep_profile_key_usage_bit(argv[i], &bit)) != NULL) {
            return apr_psprintf(cmd->pool, "ScepKeyUsage: '%s': %s", argv[i], err);
        }
        bits |= bit;
    }
    conf->profile.key_usage = bits;
    conf->set |= SET_KEY_USAGE;
    return NULL;
}

/* Directives taking a list that a profile helper checks and encodes at startup. */
typedef struct list_directive_t {
    const char *(*set)(scep_profile_t *, apr_pool_t *, int, const char *const *);
    unsigned int flag;
    const char *when_empty;
} list_directive_t;

static const list_directive_t eku_list = {
    scep_profile_set_eku, SET_EKU, "name at least one usage, or 'none'"
};
static const list_directive_t crl_url_list = {
    scep_profile_set_crl_urls, SET_CDP, "name at least one URL"
};

static const char *set_profile_list(cmd_parms *cmd, void *dconf, int argc,
                                    char *const argv[])
{
    const list_directive_t *list = cmd->info;
    scep_dir_conf_t *conf = dconf;
    const char *err;

    if ((err = scep_glue_endpoint_context(cmd)) != NULL) {
        return err;
    }
    if (argc == 0) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name, ": ", list->when_empty, NULL);
    }
    if ((err = list->set(&conf->profile, cmd->pool, argc, (const char *const *)argv))
        != NULL) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name, ": ", err, NULL);
    }
    conf->set |= list->flag;
    return NULL;
}

static const char *set_subject(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_dir_conf_t *conf = dconf;
    const char *err;

    if ((err = scep_glue_endpoint_context(cmd)) != NULL) {
        return err;
    }
    if (strcasecmp(arg, "csr") == 0) {
        conf->profile.subject_mode = SCEP_SUBJECT_FROM_CSR;
    }
    else if (strcasecmp(arg, "cn") == 0) {
        conf->profile.subject_mode = SCEP_SUBJECT_CN_ONLY;
    }
    else {
        return "ScepSubject: 'csr' or 'cn'";
    }
    conf->set |= SET_SUBJECT;
    return NULL;
}

static const char *set_challenge(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_dir_conf_t *conf = dconf;
    const char *err;

    if ((err = scep_glue_endpoint_context(cmd)) != NULL) {
        return err;
    }
    if (*arg == '\0') {
        return "ScepChallenge: the challenge must not be empty";
    }
    if (conf->db_ref) {
        return "ScepChallenge: this section authorizes with ScepDeviceDB registrations; "
               "register a wildcard (scepreg DB '*') instead of a static challenge";
    }
    scep_profile_set_challenge(&conf->profile, cmd->pool, arg);
    conf->set |= SET_CHALLENGE;
    return NULL;
}

static const char *set_flag(cmd_parms *cmd, void *dconf, int on)
{
    scep_dir_conf_t *conf = dconf;
    const char *err;

    if ((err = scep_glue_endpoint_context(cmd)) != NULL) {
        return err;
    }
    if ((intptr_t)cmd->info == SET_LEGACY) {
        conf->profile.legacy_algorithms = on;
    }
    else if ((intptr_t)cmd->info == SET_CHECK_ADDRESS) {
        conf->profile.registrations.check_client_address = on;
    }
    else if ((intptr_t)cmd->info == SET_APPROVAL) {
        conf->profile.registrations.require_approval = on;
    }
    else if ((intptr_t)cmd->info == SET_RENEWAL_CHALLENGE) {
        conf->profile.registrations.renewal_challenge = on;
    }
    else if ((intptr_t)cmd->info == SET_RENEWAL_REVOKE) {
        conf->profile.registrations.renewal_revokes_old = on;
    }
    else if ((intptr_t)cmd->info == SET_FAILURE_DETAIL) {
        conf->profile.failure_detail = on;
    }
    else {
        if (conf->db_ref) {
            return "ScepAllowNoChallenge: this section authorizes with ScepDeviceDB "
                   "registrations; register a wildcard (scepreg DB '*') instead";
        }
        conf->profile.allow_no_challenge = on;
    }
    conf->set |= (unsigned int)(intptr_t)cmd->info;
    return NULL;
}

/* "512M", "2G", "1073741824" */
static const char *parse_size(cmd_parms *cmd, const char *arg, apr_size_t *out)
{
    char *end;
    apr_int64_t v = apr_strtoi64(arg, &end, 10);
    apr_int64_t unit = 1;

    if (*end == 'K' || *end == 'k') {
        unit = 1024;
    }
    else if (*end == 'M' || *end == 'm') {
        unit = 1024 * 1024;
    }
    else if (*end == 'G' || *end == 'g') {
        unit = 1024L * 1024 * 1024;
    }
    if (unit != 1) {
        end++;
    }
    if (end == arg || *end != '\0' || v <= 0 || v > (APR_INT64_C(1) << 40) / unit
        || v * unit < 1024 * 1024) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a size from 1M to 1024G (a number "
                            "of bytes, or with K, M or G)", cmd->cmd->name, arg);
    }
    *out = (apr_size_t)(v * unit);
    return NULL;
}

static const char *set_device_db(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_dir_conf_t *conf = dconf;
    const char *path, *err;

    if ((err = scep_glue_endpoint_context(cmd)) != NULL) {
        return err;
    }
    if (conf->set & (SET_CHALLENGE | SET_NO_CHALLENGE)) {
        return "ScepDeviceDB: this section has ScepChallenge/ScepAllowNoChallenge; with "
               "registrations, register a wildcard (scepreg DB '*') instead";
    }
    if (!(path = ap_server_root_relative(cmd->pool, arg))) {
        return apr_pstrcat(cmd->pool, "ScepDeviceDB: invalid path '", arg, "'", NULL);
    }
    conf->db_ref = scep_glue_db_ref(cmd, path);
    return NULL;
}

static const char *set_db_map_size(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_dir_conf_t *conf = dconf;
    apr_size_t size = 0;
    const char *err;

    if ((err = scep_glue_endpoint_context(cmd)) != NULL
        || (err = parse_size(cmd, arg, &size)) != NULL) {
        return err;
    }
    if (!conf->db_ref) {
        return "ScepDeviceDBMapSize: put it after the ScepDeviceDB it sizes";
    }
    /* Sections sharing a folder share one environment: the largest size wins. */
    if (size > conf->db_ref->map_size) {
        conf->db_ref->map_size = size;
    }
    return NULL;
}

static const char *set_profile_name(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_dir_conf_t *conf = dconf;
    const char *err;

    if ((err = scep_glue_endpoint_context(cmd)) != NULL) {
        return err;
    }
    if (!*arg || !scep_import_profile_name_ok(arg)) {
        return "ScepProfileName: 1 to 64 letters, digits, '-', '_' or '.'";
    }
    conf->profile.registrations.profile_name = arg;
    conf->set |= SET_PROFILE_NAME;
    return NULL;
}

static const char *set_lockout(cmd_parms *cmd, void *dconf, int argc, char *const argv[])
{
    scep_dir_conf_t *conf = dconf;
    long failures = 0, secs = 900, shared = 0;
    const char *err;

    if ((err = scep_glue_endpoint_context(cmd)) != NULL) {
        return err;
    }
    if (argc < 1 || argc > 3) {
        return "ScepLockout takes failures [seconds [wildcard-failures]], or Off";
    }
    if (strcasecmp(argv[0], "off") == 0) {
        if (argc > 1) {
            return "ScepLockout: Off takes no duration";
        }
    }
    else if ((err = set_positive(cmd, argv[0], 1000, &failures)) != NULL
             || (argc > 1 && (err = set_positive(cmd, argv[1], 30L * 24 * 3600, &secs))
                 != NULL)
             || (argc > 2 && (err = set_positive(cmd, argv[2], 1000000, &shared)) != NULL)) {
        return err;
    }
    if (argc > 2 && shared < failures) {
        return "ScepLockout: the failures that lock a wildcard cannot be fewer than those "
               "that lock one name";
    }
    conf->profile.registrations.lockout_failures = (int)failures;
    conf->profile.registrations.lockout_seconds = secs;
    conf->profile.registrations.lockout_shared_failures =
        argc > 2 ? (int)shared : (int)failures * SCEP_LOCKOUT_SHARED_FACTOR;
    conf->set |= SET_LOCKOUT;
    return NULL;
}

/* Directives that take a number of seconds for one profile member. */
typedef struct seconds_directive_t {
    unsigned int flag;
    apr_size_t offset;                  /* of an apr_int64_t in scep_profile_t */
    long min;                           /* 0: 0 is allowed and means none */
    const char *why_min;                /* for a value under min, when min > 1 */
} seconds_directive_t;

#define SECONDS(flag, member, min, why) \
    { flag, APR_OFFSETOF(scep_profile_t, member), min, why }
static const seconds_directive_t transaction_window_secs =
    SECONDS(SET_TXN_WINDOW, registrations.transaction_window, 1, NULL);
static const seconds_directive_t renewal_grace_secs =
    SECONDS(SET_RENEWAL_GRACE, registrations.renewal_grace, 0, NULL);
static const seconds_directive_t pending_timeout_secs =
    SECONDS(SET_PENDING_TIMEOUT, registrations.pending_timeout, 1, NULL);
static const seconds_directive_t crl_validity_secs =
    SECONDS(SET_CRL_VALIDITY, crl_validity, 3600,
            "so that relying parties can fetch a CRL before it expires");
#undef SECONDS

static const char *set_seconds(cmd_parms *cmd, void *dconf, const char *arg)
{
    const seconds_directive_t *d = cmd->info;
    scep_dir_conf_t *conf = dconf;
    long v = 0;
    const char *err;

    if ((err = scep_glue_endpoint_context(cmd)) != NULL) {
        return err;
    }
    if (!(d->min == 0 && strcmp(arg, "0") == 0)
        && (err = set_positive(cmd, arg, 366L * 24 * 3600, &v)) != NULL) {
        return err;
    }
    if (v < d->min) {
        return apr_psprintf(cmd->pool, "%s: at least %ld seconds, %s", cmd->cmd->name,
                            d->min, d->why_min);
    }
    *(apr_int64_t *)((char *)&conf->profile + d->offset) = v;
    conf->set |= d->flag;
    return NULL;
}

static const char *set_challenge_ttl(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_dir_conf_t *conf = dconf;
    long v = 0;
    const char *err = set_positive(cmd, arg, 30L * 24 * 3600, &v);

    if (!err) {
        conf->challenge_ttl = v;
    }
    return err;
}

#define FILE_SLOT(member) ((void *)APR_OFFSETOF(scep_ca_files_t, member))
#define DIR_CONTEXT (RSRC_CONF | ACCESS_CONF)

static const command_rec scep_cmds[] = {
    AP_INIT_TAKE1("ScepCACertificateFile", set_file, FILE_SLOT(ca_cert_file), DIR_CONTEXT,
                  "PEM file: the issuing CA certificate, then optional chain certificates"),
    AP_INIT_TAKE1("ScepCAKeyFile", set_file, FILE_SLOT(ca_key_file), DIR_CONTEXT,
                  "PEM file: the issuing CA's private key (mode 0600)"),
    AP_INIT_TAKE1("ScepRACertificateFile", set_file, FILE_SLOT(ra_cert_file), DIR_CONTEXT,
                  "PEM file: the RA certificate clients encrypt to"),
    AP_INIT_TAKE1("ScepRAKeyFile", set_file, FILE_SLOT(ra_key_file), DIR_CONTEXT,
                  "PEM file: the RA's RSA private key (mode 0600)"),
    AP_INIT_TAKE1("ScepRASigningCertificateFile", set_file, FILE_SLOT(ra_sign_cert_file),
                  DIR_CONTEXT, "PEM file: a separate RA certificate that signs CertReps"),
    AP_INIT_TAKE1("ScepRASigningKeyFile", set_file, FILE_SLOT(ra_sign_key_file), DIR_CONTEXT,
                  "PEM file: its private key (mode 0600)"),
    AP_INIT_TAKE1("ScepNextCACertificateFile", set_file, FILE_SLOT(next_ca_file), DIR_CONTEXT,
                  "PEM file: the CA certificate(s) that take over next (GetNextCACert)"),
    AP_INIT_TAKE1("ScepPreviousCACertificateFile", set_file, FILE_SLOT(previous_ca_file),
                  DIR_CONTEXT, "PEM file: earlier CA certificates whose certificates renew"),
    AP_INIT_TAKE1("ScepUpstreamURL", scep_glue_upstream_url, NULL, DIR_CONTEXT,
                  "the upstream SCEP CA that issues for this endpoint (http or https URL)"),
    AP_INIT_TAKE12("ScepUpstreamProxy", scep_glue_upstream_proxy, NULL, DIR_CONTEXT,
                   "forward proxy URL for the upstream, and optionally user:password"),
    AP_INIT_TAKE1("ScepUpstreamNoProxy", scep_glue_upstream_text, NULL, DIR_CONTEXT,
                  "hosts reached without the proxy, comma-separated"),
    AP_INIT_TAKE1("ScepUpstreamCAFile", scep_glue_upstream_text, NULL, DIR_CONTEXT,
                  "PEM file of the CAs trusted for https upstreams and proxies"),
    AP_INIT_TAKE1("ScepUpstreamRACertificateFile", scep_glue_upstream_text, NULL,
                  DIR_CONTEXT, "PEM file: the only RA certificates the upstream may use"),
    AP_INIT_TAKE2("ScepUpstreamClientCertificate", scep_glue_upstream_client_cert, NULL,
                  DIR_CONTEXT, "PEM certificate and key for TLS client authentication"),
    AP_INIT_TAKE2("ScepUpstreamTimeout", scep_glue_upstream_timeout, NULL, DIR_CONTEXT,
                  "seconds to connect and for a whole exchange (default 5 20)"),
    AP_INIT_TAKE1("ScepUpstreamRetries", scep_glue_upstream_retries, NULL, DIR_CONTEXT,
                  "further attempts after a failed connection (default 1)"),
    AP_INIT_TAKE1("ScepUpstreamDownAnswer", scep_glue_upstream_down_answer, NULL, DIR_CONTEXT,
                  "Pending (default) or 503: the answer while the upstream is unreachable"),
    AP_INIT_TAKE1("ScepUpstreamRefresh", scep_glue_upstream_refresh, NULL, DIR_CONTEXT,
                  "seconds between fetches of the upstream's GetCACaps/GetCACert "
                  "(default 3600)"),
    AP_INIT_TAKE1("ScepChallenge", set_challenge, NULL, DIR_CONTEXT,
                  "the static challenge password every enrollment must carry"),
    AP_INIT_FLAG("ScepAllowNoChallenge", set_flag, (void *)SET_NO_CHALLENGE, DIR_CONTEXT,
                 "On: without ScepChallenge, issue to anyone (lab use only)"),
    AP_INIT_TAKE1("ScepValidityDays", set_validity, NULL, DIR_CONTEXT,
                  "validity of issued certificates in days (default 365)"),
    AP_INIT_TAKE_ARGV("ScepKeyUsage", set_key_usage, NULL, DIR_CONTEXT,
                      "keyUsage of issued certificates (default digitalSignature "
                      "keyEncipherment)"),
    AP_INIT_TAKE_ARGV("ScepExtendedKeyUsage", set_profile_list, (void *)&eku_list, DIR_CONTEXT,
                      "extendedKeyUsage names or OIDs (default clientAuth), or none"),
    AP_INIT_TAKE1("ScepSubject", set_subject, NULL, DIR_CONTEXT,
                  "csr: the CSR's subject; cn: only its commonName (default csr)"),
    AP_INIT_TAKE1("ScepMinKeySize", set_min_key, NULL, DIR_CONTEXT,
                  "smallest RSA key accepted, in bits (default 2048)"),
    AP_INIT_TAKE1("ScepMaxMessageSize", set_max_message, NULL, DIR_CONTEXT,
                  "largest PKIOperation message accepted, in bytes (default 131072)"),
    AP_INIT_TAKE1("ScepDeviceDB", set_device_db, NULL, DIR_CONTEXT,
                  "folder of the LMDB device database: enroll registered devices only"),
    AP_INIT_TAKE1("ScepDeviceDBMapSize", set_db_map_size, NULL, DIR_CONTEXT,
                  "largest size the device database may grow to (default 1G)"),
    AP_INIT_TAKE1("ScepProfileName", set_profile_name, NULL, DIR_CONTEXT,
                  "the profile this endpoint serves, as registrations name it"),
    AP_INIT_FLAG("ScepCheckClientAddress", set_flag, (void *)SET_CHECK_ADDRESS, DIR_CONTEXT,
                 "On: a registered IP may match the client address (default Off)"),
    AP_INIT_TAKE_ARGV("ScepLockout", set_lockout, NULL, DIR_CONTEXT,
                      "failures before a name is locked out, for how many seconds, and "
                      "failures before a wildcard's challenge is (default 5 900 50), or Off"),
    AP_INIT_TAKE1("ScepTransactionWindow", set_seconds, (void *)&transaction_window_secs,
                  DIR_CONTEXT,
                  "seconds a transactionID stays bound to its request (default 604800)"),
    AP_INIT_TAKE1("ScepRenewalGrace", set_seconds, (void *)&renewal_grace_secs, DIR_CONTEXT,
                  "seconds after expiry a certificate still renews itself (default 0)"),
    AP_INIT_FLAG("ScepRenewalChallenge", set_flag, (void *)SET_RENEWAL_CHALLENGE, DIR_CONTEXT,
                 "On: renewals must carry the registration's challenge too (default Off)"),
    AP_INIT_FLAG("ScepRenewalRevokesOld", set_flag, (void *)SET_RENEWAL_REVOKE, DIR_CONTEXT,
                 "On: a renewal revokes the certificate it replaces (default Off)"),
    AP_INIT_FLAG("ScepRequireApproval", set_flag, (void *)SET_APPROVAL, DIR_CONTEXT,
                 "On: first enrollments wait for an operator's approval (default Off)"),
    AP_INIT_TAKE1("ScepPendingTimeout", set_seconds, (void *)&pending_timeout_secs, DIR_CONTEXT,
                  "seconds a request waits for approval before it expires (default 604800)"),
    AP_INIT_TAKE1("ScepCRLValidity", set_seconds, (void *)&crl_validity_secs, DIR_CONTEXT,
                  "seconds from a CRL's thisUpdate to its nextUpdate (default 604800)"),
    AP_INIT_TAKE_ARGV("ScepCRLDistributionPoint", set_profile_list, (void *)&crl_url_list,
                      DIR_CONTEXT,
                      "URLs of the CRL that issued certificates name (their CDP)"),
    AP_INIT_TAKE1("ScepChallengeTTL", set_challenge_ttl, NULL, DIR_CONTEXT,
                  "lifetime of minted challenges in seconds (default 3600)"),
    AP_INIT_TAKE1("ScepAuditLog", scep_glue_set_audit_log, NULL, RSRC_CONF,
                  "file or |program receiving one JSON line per decision"),
    AP_INIT_FLAG("ScepFailureDetail", set_flag, (void *)SET_FAILURE_DETAIL, DIR_CONTEXT,
                 "On: refusals tell the client the reason the log gives (for debugging; it "
                 "reveals registration state); Off (default): a generic text"),
    AP_INIT_FLAG("ScepLegacyAlgorithms", set_flag, (void *)SET_LEGACY, DIR_CONTEXT,
                 "On: accept MD5 signatures and single-DES envelopes (default Off)"),
    { NULL }
};

/* ---- startup --------------------------------------------------------------------- */

static int scep_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    ca_refs = NULL;   /* a new configuration cycle starts */
    scep_glue_db_reset();
    scep_glue_forward_reset();
    scep_glue_status_reset();
    scep_profile_defaults(&default_profile, pconf);
    return OK;
}

static void log_to_server(void *baton, int level, const char *line)
{
    ap_log_error(APLOG_MARK, level, 0, baton, "%s", line);
}

/* Runs for `httpd -t` too, so a broken CA refuses the configuration there as well. */
static int scep_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                             server_rec *s)
{
    int i;

    scep_log_t log = { log_to_server, s, APLOG_TRACE8 };

    for (i = 0; ca_refs && i < ca_refs->nelts; i++) {
        ca_ref_t *ref = APR_ARRAY_IDX(ca_refs, i, ca_ref_t *);
        const char *errmsg = NULL;

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
    scep_glue_db_child_init(pchild, s);
    scep_glue_forward_child_init(pchild, s);
}

/* ---- requests -------------------------------------------------------------------- */

static void log_to_request(void *baton, int level, const char *line)
{
    request_rec *r = baton;

    ap_log_rerror(APLOG_MARK, level, 0, r, "%s", line);
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
                         const scep_db_ref_t *db_ref, const char *message)
{
    scep_db_t *db = NULL;
    unsigned char *der = NULL;
    apr_size_t len = 0;
    scep_log_t log;
    scep_peer_t peer;
    scep_reply_t reply;
    int rc;

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

    log.fn = log_to_request;
    log.baton = r;
    log.max_level = ap_get_request_module_loglevel(r, APLOG_MODULE_INDEX);
    if (log.max_level < APLOG_NOTICE) {
        log.max_level = APLOG_NOTICE;   /* httpd always logs notices: issuance audit lines */
    }
    if (db_ref && !(db = scep_glue_db(r, db_ref))) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if (profile->upstream && !db) {
        /* an upstream that answers PENDING needs somewhere to keep the request */
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "SCEP00114: ScepUpstreamURL for %s needs a ScepDeviceDB", r->uri);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    peer.client_ip = r->useragent_ip;
    peer.location = r->uri;
    scep_server_pkioperation(r->pool, ca, profile, db, der, len, &peer,
                             (apr_int64_t)apr_time_sec(r->request_time), &log, &reply);
    audit_pki_operation(r, &reply);
    if (reply.transaction_id) {
        apr_table_setn(r->notes, "scep-transaction-id", reply.transaction_id);
    }
    if (reply.outcome != SCEP_OUTCOME_NONE) {
        apr_table_setn(r->notes, "scep-outcome", scep_server_outcome_name(reply.outcome));
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

    if (!r->handler || strcmp(r->handler, "scep") != 0) {
        return DECLINED;
    }
    r->allowed |= (AP_METHOD_BIT << M_GET) | (AP_METHOD_BIT << M_POST);
    if (r->method_number != M_GET && r->method_number != M_POST) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    conf = ap_get_module_config(r->per_dir_config, &scep_module);
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
        scep_glue_effective_profile(conf, &profile);
        return pki_operation(r, ca, &profile, conf->db_ref, message);
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
    create_dir_conf,
    merge_dir_conf,
    scep_glue_create_server_conf,
    scep_glue_merge_server_conf,
    scep_cmds,
    register_hooks,
#if AP_MODULE_MAGIC_AT_LEAST(AP_MODULE_FLAGS_MMN_MAJOR, AP_MODULE_FLAGS_MMN_MINOR)
    0
#endif
};

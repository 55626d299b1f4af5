/* SPDX-License-Identifier: Apache-2.0 */
/* mod_scep's configuration, as mod_ssl (ssl_engine_config.c) and mod_md (mod_md_config.c)
 * keep theirs: the directive table and every setter, the per-directory configuration's
 * create and merge, the CA sections check_config loads, and the profile in force for a
 * section.  The objects a setting names (CAs, device databases, upstreams) are made per
 * section here and prepared by their own files at startup. */
#include <string.h>

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"

#include <apr_strings.h>

#include "mod_scep.h"
#include "scep_import.h"
#include "scep_template.h"
#include "scep_token.h"
#include "scep_webhook.h"

/* Every CA section of the configuration being read, loaded by check_config. */
static apr_array_header_t *ca_refs;
/* The documented defaults, prepared once per configuration cycle. */
static scep_profile_t default_profile;
/* ScepPassPhraseDialog: one for the server, as mod_ssl's. */
static scep_key_dialog_t dialog;

void scep_glue_config_reset(apr_pool_t *pconf)
{
    ca_refs = NULL;
    memset(&dialog, 0, sizeof(dialog));
    scep_profile_defaults(&default_profile, pconf);
}

const apr_array_header_t *scep_glue_config_cas(void)
{
    return ca_refs;
}

scep_key_dialog_t *scep_glue_config_dialog(void)
{
    return &dialog;
}

void *scep_glue_config_create_dir(apr_pool_t *p, char *dir)
{
    scep_dir_conf_t *conf = apr_pcalloc(p, sizeof(scep_dir_conf_t));

    conf->location = dir;
    return conf;
}

void *scep_glue_config_merge_dir(apr_pool_t *p, void *basev, void *addv)
{
    const scep_dir_conf_t *base = basev, *add = addv;
    scep_dir_conf_t *conf = apr_palloc(p, sizeof(*conf));

    *conf = *base;
    conf->ca_ref = add->ca_ref ? add->ca_ref : base->ca_ref;
    conf->db_ref = add->db_ref ? add->db_ref : base->db_ref;
    conf->upstream_ref = add->upstream_ref ? add->upstream_ref : base->upstream_ref;
    conf->location = add->location ? add->location : base->location;
    conf->challenge_ttl = add->challenge_ttl ? add->challenge_ttl : base->challenge_ttl;
    conf->dbd_timeout_ms = add->dbd_timeout_ms ? add->dbd_timeout_ms : base->dbd_timeout_ms;
    conf->set = base->set | add->set;
    scep_profile_copy_set(&conf->profile, &add->profile, add->set);
    return conf;
}

void scep_glue_config_effective_profile(const scep_dir_conf_t *conf,
                                        scep_profile_t *out)
{
    *out = default_profile;
    scep_profile_copy_set(out, &conf->profile, conf->set);
    out->upstream = conf->upstream_ref ? conf->upstream_ref->up : NULL;
}

/* ---- directives ------------------------------------------------------------------ */

/* A SCEP endpoint never reaches the file system (scep_translate_name), so a setting in a
 * <Directory> or <Files> section could never apply to it: refuse it instead of ignoring it. */
static const char *endpoint_context(cmd_parms *cmd)
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

/* Marks the section's CA files as those of an RA in front of an upstream CA. */
static void mark_forwarding(cmd_parms *cmd, scep_dir_conf_t *conf)
{
    section_ca(cmd, conf)->files.forwarding = 1;
}

static const char *set_file(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *path, **slot, *err;

    if ((err = endpoint_context(cmd)) != NULL) {
        return err;
    }
    slot = (const char **)((char *)&section_ca(cmd, dconf)->files + (size_t)cmd->info);
    if (scep_token_is_uri(arg)) {
        const size_t offset = (size_t)cmd->info;

        if (offset == APR_OFFSETOF(scep_ca_files_t, next_ca_file)
            || offset == APR_OFFSETOF(scep_ca_files_t, previous_ca_file)) {
            return apr_pstrcat(cmd->pool, cmd->cmd->name, ": a file, not a token object: "
                               "only the CA and RA keys and certificates may be pkcs11: "
                               "URIs", NULL);
        }
        if ((err = scep_token_uri_check(cmd->pool, arg)) != NULL) {
            return apr_pstrcat(cmd->pool, cmd->cmd->name, ": the URI ", err, NULL);
        }
        *slot = arg;
        return NULL;
    }
    path = ap_server_root_relative(cmd->pool, arg);
    if (!path) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name, ": invalid file path '", arg, "'",
                           NULL);
    }
    *slot = path;
    return NULL;
}

static const char *set_passphrase_dialog(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)dconf;
    if (err) {
        return err;
    }
    if ((err = scep_key_dialog_parse(cmd->pool, arg, &dialog)) != NULL) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name, ": ", err, NULL);
    }
    return NULL;
}

/* "1M", "1024G": a size as the directives taking sizes are written */
static const char *size_text(apr_pool_t *p, apr_int64_t v)
{
    static const char units[] = "GMK";
    int shift = 30, i;

    for (i = 0; units[i]; i++, shift -= 10) {
        if (v >= (APR_INT64_C(1) << shift) && v % (APR_INT64_C(1) << shift) == 0) {
            return apr_psprintf(p, "%" APR_INT64_T_FMT "%c", v >> shift, units[i]);
        }
    }
    return apr_psprintf(p, "%" APR_INT64_T_FMT, v);
}

/* The one reading of a numeric directive's value: a whole number from min (>= 0) to max,
 * with a K, M or G suffix (powers of 1024) where `sizes`; anything else is refused with
 * the directive's name and the range. */
static const char *parse_number(cmd_parms *cmd, const char *arg, apr_int64_t min,
                                apr_int64_t max, int sizes, apr_int64_t *out)
{
    char *end;
    apr_int64_t v = apr_strtoi64(arg, &end, 10), unit = 1;

    if (sizes) {
        unit = *end == 'K' || *end == 'k' ? 1024
               : *end == 'M' || *end == 'm' ? 1024 * 1024
               : *end == 'G' || *end == 'g' ? APR_INT64_C(1024) * 1024 * 1024 : 1;
        end += unit != 1;
    }
    /* v < 0 and v > max / unit come first: they keep v * unit from overflowing */
    if (*arg == '\0' || *end != '\0' || v < 0 || v > max / unit || v * unit < min) {
        return sizes
            ? apr_psprintf(cmd->pool, "%s: '%s' is not a size from %s to %s (a number of "
                           "bytes, or with K, M or G)", cmd->cmd->name, arg,
                           size_text(cmd->pool, min), size_text(cmd->pool, max))
            : apr_psprintf(cmd->pool, "%s: '%s' is not a whole number from %" APR_INT64_T_FMT
                           " to %" APR_INT64_T_FMT, cmd->cmd->name, arg, min, max);
    }
    *out = v * unit;
    return NULL;
}

/* Directives that take one number for the one member of a setting (an int, or an
 * apr_int64_t or apr_size_t of the same width). */
typedef struct number_directive_t {
    unsigned int set;
    apr_int64_t min;                    /* 0: "0" is allowed and means none */
    apr_int64_t max;
    const char *why_min;                /* why a value under min (> 1) is refused: seconds */
} number_directive_t;

static const number_directive_t validity_days = { SCEP_PROFILE_SET_VALIDITY, 1, 36500, NULL };
static const number_directive_t min_key_bits = { SCEP_PROFILE_SET_MIN_KEY, 1, 16384, NULL };
static const number_directive_t max_message_size =
    { SCEP_PROFILE_SET_MAX_MESSAGE, 1, 64L * 1024 * 1024, NULL };
#define SECONDS_MAX (366L * 24 * 3600)
static const number_directive_t transaction_window_secs =
    { SCEP_PROFILE_SET_TXN_WINDOW, 1, SECONDS_MAX, NULL };
static const number_directive_t renewal_grace_secs =
    { SCEP_PROFILE_SET_RENEWAL_GRACE, 0, SECONDS_MAX, NULL };
static const number_directive_t pending_timeout_secs =
    { SCEP_PROFILE_SET_PENDING_TIMEOUT, 1, SECONDS_MAX, NULL };
static const number_directive_t crl_validity_secs =
    { SCEP_PROFILE_SET_CRL_VALIDITY, 3600, SECONDS_MAX,
      "so that relying parties can fetch a CRL before it expires" };
#undef SECONDS_MAX

static const char *set_number(cmd_parms *cmd, void *dconf, const char *arg)
{
    const number_directive_t *d = cmd->info;
    const scep_profile_setting_t *row = scep_profile_setting(d->set);
    scep_dir_conf_t *conf = dconf;
    char *member = (char *)&conf->profile + row->offset;
    apr_int64_t v = 0;
    const char *err;

    if ((err = endpoint_context(cmd)) != NULL) {
        return err;
    }
    if (!(d->min == 0 && strcmp(arg, "0") == 0)
        && (err = parse_number(cmd, arg, 1, d->max, 0, &v)) != NULL) {
        return err;
    }
    if (v < d->min) {
        return apr_psprintf(cmd->pool, "%s: at least %" APR_INT64_T_FMT " seconds, %s",
                            cmd->cmd->name, d->min, d->why_min);
    }
    if (row->size == sizeof(int)) {
        int n = (int)v;

        memcpy(member, &n, sizeof(n));
    }
    else {
        memcpy(member, &v, sizeof(v));
    }
    conf->set |= d->set;
    return NULL;
}

static const char *set_key_usage(cmd_parms *cmd, void *dconf, int argc, char *const argv[])
{
    scep_dir_conf_t *conf = dconf;
    unsigned int bits = 0, bit;
    int i;
    const char *err;

    if ((err = endpoint_context(cmd)) != NULL) {
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
    conf->set |= SCEP_PROFILE_SET_KEY_USAGE;
    return NULL;
}

/* Directives taking a list that a profile helper checks and encodes at startup. */
typedef struct list_directive_t {
    const char *(*set)(scep_profile_t *, apr_pool_t *, int, const char *const *);
    unsigned int flag;
    const char *when_empty;
} list_directive_t;

static const list_directive_t eku_list = {
    scep_profile_set_eku, SCEP_PROFILE_SET_EKU, "name at least one usage, or 'none'"
};
static const list_directive_t crl_url_list = {
    scep_profile_set_crl_urls, SCEP_PROFILE_SET_CDP, "name at least one URL"
};

static const char *set_profile_list(cmd_parms *cmd, void *dconf, int argc,
                                    char *const argv[])
{
    const list_directive_t *list = cmd->info;
    scep_dir_conf_t *conf = dconf;
    const char *err;

    if ((err = endpoint_context(cmd)) != NULL) {
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

/* ScepSubject csr|cn names the two templates that copy the request (scep_template.h); it
 * stays for the configurations written before templates. */
static const char *set_subject(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_dir_conf_t *conf = dconf;
    const char *err;

    if ((err = endpoint_context(cmd)) != NULL) {
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
    if ((conf->set & SCEP_PROFILE_SET_TEMPLATE) && !(conf->set & SCEP_PROFILE_SET_SUBJECT)) {
        return "ScepSubject: this section has a ScepTemplate; write ScepTemplate csr or cn "
               "instead";
    }
    conf->profile.template_ = scep_template_builtin(conf->profile.subject_mode);
    conf->set |= SCEP_PROFILE_SET_SUBJECT | SCEP_PROFILE_SET_TEMPLATE;
    return NULL;
}

/* The section's own template, made by its first ScepTemplate* line: a section that sets
 * any of them builds a whole template and inherits none of its parent's. */
static scep_template_t *section_template(cmd_parms *cmd, scep_dir_conf_t *conf,
                                         const char **err)
{
    *err = endpoint_context(cmd);
    if (*err) {
        return NULL;
    }
    if (conf->set & SCEP_PROFILE_SET_SUBJECT) {
        *err = apr_pstrcat(cmd->pool, cmd->cmd->name, ": this section has a ScepSubject; "
                           "replace it with ScepTemplate csr or cn", NULL);
        return NULL;
    }
    if (!(conf->set & SCEP_PROFILE_SET_TEMPLATE)) {
        conf->profile.template_ = scep_template_new(cmd->pool);
        conf->set |= SCEP_PROFILE_SET_TEMPLATE;
    }
    /* made above for this section alone, so still being written */
    return (scep_template_t *)conf->profile.template_;
}

static const char *set_template_preset(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_dir_conf_t *conf = dconf;
    scep_template_t *t;
    const char *const *eku;
    const char *err;
    unsigned int key_usage;
    int n = 0;

    if (!(t = section_template(cmd, conf, &err))) {
        return err;
    }
    if ((err = scep_template_preset(t, arg, &key_usage, &eku)) != NULL) {
        return apr_pstrcat(cmd->pool, "ScepTemplate: '", arg, "': ", err, NULL);
    }
    /* a preset's usages, unless ScepKeyUsage / ScepExtendedKeyUsage of this section say
     * otherwise (before this line, or after it: they overwrite) */
    if (key_usage && !(conf->set & SCEP_PROFILE_SET_KEY_USAGE)) {
        conf->profile.key_usage = key_usage;
        conf->set |= SCEP_PROFILE_SET_KEY_USAGE;
    }
    while (eku && n < 4 && eku[n]) {
        n++;
    }
    if (n && !(conf->set & SCEP_PROFILE_SET_EKU)) {
        if ((err = scep_profile_set_eku(&conf->profile, cmd->pool, n, eku)) != NULL) {
            return apr_pstrcat(cmd->pool, "ScepTemplate: ", err, NULL);
        }
        conf->set |= SCEP_PROFILE_SET_EKU;
    }
    return NULL;
}

/* Whether URIs with this prefix may be Intune SID URIs (either prefix starts the other). */
static int sid_prefix_overlaps(const char *prefix)
{
    size_t n = strlen(prefix), sid = strlen(SCEP_TEMPLATE_SID_PREFIX);

    return strncasecmp(prefix, SCEP_TEMPLATE_SID_PREFIX, n < sid ? n : sid) == 0;
}

static const char *set_template_rule(cmd_parms *cmd, void *dconf, int argc,
                                     char *const argv[])
{
    scep_template_t *t;
    const char *err;

    if (!(t = section_template(cmd, dconf, &err))) {
        return err;
    }
    err = scep_template_add_rule(t, cmd->pool, cmd->info != NULL, argc,
                                 (const char *const *)argv);
    if (err) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name, ": ", err, NULL);
    }
    /* Windows maps a certificate to the account its UPN or SID names: taken from the
     * request, that account is whatever the holder of the challenge writes there.  Bound
     * only at a user endpoint (to the registered user's UPN) or by a validator. */
    if (cmd->info && strcasecmp(argv[1], "request") == 0
        && (strcasecmp(argv[0], "upn") == 0
            || (strcasecmp(argv[0], "URI") == 0
                && (argc < 4 || sid_prefix_overlaps(argv[3]))))) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, cmd->server, "SCEP00633: %s %s request "
                     "at %s:%d: the request chooses the %s Windows maps this certificate "
                     "to; anyone holding the challenge chooses the account unless a user "
                     "registration (ScepIdentity user) or a validator binds it",
                     cmd->cmd->name, argv[0], cmd->directive->filename,
                     cmd->directive->line_num,
                     strcasecmp(argv[0], "upn") == 0 ? "UPN" : "SID");
    }
    return NULL;
}

/* The section's template for a line that only a template of rules takes. */
static scep_template_t *rules_template(cmd_parms *cmd, scep_dir_conf_t *conf,
                                       const char **err)
{
    scep_template_t *t = section_template(cmd, conf, err);

    if (t && t->copy != SCEP_TEMPLATE_RULES) {
        *err = apr_pstrcat(cmd->pool, cmd->cmd->name, ": the csr and cn presets copy the "
                           "request", NULL);
        return NULL;
    }
    return t;
}

static const char *set_template_unlisted(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_template_t *t;
    const char *err;

    if (!(t = rules_template(cmd, dconf, &err))) {
        return err;
    }
    err = scep_template_set_unlisted(t, arg);
    return err ? apr_pstrcat(cmd->pool, "ScepTemplateUnlisted: ", err, NULL) : NULL;
}

static const char *set_template_sid(cmd_parms *cmd, void *dconf, int on)
{
    scep_template_t *t;
    const char *err;

    if (!(t = rules_template(cmd, dconf, &err))) {
        return err;
    }
    t->sid = on;
    return NULL;
}

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* The places that can hold each kind, its default first: a device name is free text (no
 * dNSName), a user needs '@' (no serialNumber, a PrintableString). */
static const struct {
    const char *word;
    scep_identity_kind_e kind;
    scep_identity_where_e where[4];
} identity_kinds[] = {
    { "host", SCEP_IDENTITY_HOST, { SCEP_WHERE_HOST_RULES } },
    { "device-name", SCEP_IDENTITY_DEVICE_NAME,
      { SCEP_WHERE_CN, SCEP_WHERE_UNSTRUCTURED_NAME } },
    { "device-id", SCEP_IDENTITY_DEVICE_ID,
      { SCEP_WHERE_SERIAL_NUMBER, SCEP_WHERE_CN, SCEP_WHERE_UNSTRUCTURED_NAME } },
    { "user", SCEP_IDENTITY_USER, { SCEP_WHERE_RFC822_NAME, SCEP_WHERE_UPN, SCEP_WHERE_CN } },
};

static const struct {
    const char *word;
    scep_identity_where_e where;
} identity_places[] = {
    { "cn", SCEP_WHERE_CN }, { "serialNumber", SCEP_WHERE_SERIAL_NUMBER },
    { "rfc822Name", SCEP_WHERE_RFC822_NAME }, { "upn", SCEP_WHERE_UPN },
    { "dNSName", SCEP_WHERE_DNS_NAME }, { "unstructuredName", SCEP_WHERE_UNSTRUCTURED_NAME },
};

static const char *set_identity(cmd_parms *cmd, void *dconf, const char *kind_word,
                                const char *where_word)
{
    scep_dir_conf_t *conf = dconf;
    const char *err;
    apr_size_t k, w, i;

    if ((err = endpoint_context(cmd)) != NULL) {
        return err;
    }
    for (k = 0; k < ARRAY_LEN(identity_kinds); k++) {
        if (strcasecmp(kind_word, identity_kinds[k].word) == 0) {
            break;
        }
    }
    if (k == ARRAY_LEN(identity_kinds)) {
        return "ScepIdentity: host, device-name, device-id or user";
    }
    conf->profile.registrations.identity_kind = identity_kinds[k].kind;
    conf->profile.registrations.identity_where = identity_kinds[k].where[0];
    conf->set |= SCEP_PROFILE_SET_IDENTITY;
    if (!where_word) {
        return NULL;
    }
    if (identity_kinds[k].kind == SCEP_IDENTITY_HOST) {
        return "ScepIdentity: host takes no place (a host is read by the rules of host "
               "names: dNSName, else unstructuredName, else a CN that is a host name)";
    }
    for (w = 0; w < ARRAY_LEN(identity_places); w++) {
        if (strcasecmp(where_word, identity_places[w].word) == 0) {
            break;
        }
    }
    if (w == ARRAY_LEN(identity_places)) {
        return "ScepIdentity: the place is cn, serialNumber, rfc822Name, upn, dNSName or "
               "unstructuredName";
    }
    for (i = 0; i < ARRAY_LEN(identity_kinds[k].where); i++) {
        if (identity_kinds[k].where[i] == identity_places[w].where
            && identity_places[w].where != SCEP_WHERE_HOST_RULES) {
            conf->profile.registrations.identity_where = identity_places[w].where;
            return NULL;
        }
    }
    return apr_psprintf(cmd->pool, "ScepIdentity: a %s cannot be read from %s",
                        identity_kinds[k].word, identity_places[w].word);
}

static const char *set_challenge(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_dir_conf_t *conf = dconf;
    const char *err;

    if ((err = endpoint_context(cmd)) != NULL) {
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
    conf->set |= SCEP_PROFILE_SET_CHALLENGE;
    return NULL;
}

/* On/Off directives: cmd->info is the setting, whose one member is an int. */
static const char *set_flag(cmd_parms *cmd, void *dconf, int on)
{
    unsigned int set = (unsigned int)(intptr_t)cmd->info;
    scep_dir_conf_t *conf = dconf;
    const char *err;

    if ((err = endpoint_context(cmd)) != NULL) {
        return err;
    }
    if (set == SCEP_PROFILE_SET_NO_CHALLENGE && conf->db_ref) {
        return "ScepAllowNoChallenge: this section authorizes with ScepDeviceDB "
               "registrations; register a wildcard (scepreg DB '*') instead";
    }
    *(int *)((char *)&conf->profile + scep_profile_setting(set)->offset) = on;
    conf->set |= set;
    return NULL;
}

static const char *set_device_db(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_dir_conf_t *conf = dconf;
    const char *path, *err;

    if ((err = endpoint_context(cmd)) != NULL) {
        return err;
    }
    if (conf->set & (SCEP_PROFILE_SET_CHALLENGE | SCEP_PROFILE_SET_NO_CHALLENGE)) {
        return "ScepDeviceDB: this section has ScepChallenge/ScepAllowNoChallenge; with "
               "registrations, register a wildcard (scepreg DB '*') instead";
    }
    if (strcmp(arg, SCEP_GLUE_DBD) == 0) {
        path = SCEP_GLUE_DBD;   /* mod_dbd's PostgreSQL, not a folder */
    }
    else if (strncasecmp(arg, SCEP_GLUE_DBD, sizeof(SCEP_GLUE_DBD) - 1) == 0) {
        /* a folder named so would be a typo for the database, never meant */
        return apr_pstrcat(cmd->pool, "ScepDeviceDB: '", arg, "': write dbd: alone for the "
                           "database of mod_dbd (DBDParams names it), or a folder", NULL);
    }
    else if (!(path = ap_server_root_relative(cmd->pool, arg))) {
        return apr_pstrcat(cmd->pool, "ScepDeviceDB: invalid path '", arg, "'", NULL);
    }
    conf->db_ref = scep_glue_db_ref(cmd, path);
    return NULL;
}

static const char *set_dbd_timeout(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_dir_conf_t *conf = dconf;
    apr_int64_t ms = 0;
    const char *err;

    if ((err = endpoint_context(cmd)) != NULL
        || (err = parse_number(cmd, arg, 100, 600000, 0, &ms)) != NULL) {
        return err;
    }
    conf->dbd_timeout_ms = (int)ms;
    return NULL;
}

static const char *set_db_map_size(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_dir_conf_t *conf = dconf;
    apr_int64_t size = 0;
    const char *err;

    if ((err = endpoint_context(cmd)) != NULL
        || (err = parse_number(cmd, arg, 1024 * 1024, APR_INT64_C(1) << 40, 1, &size))
           != NULL) {
        return err;
    }
    if (!conf->db_ref) {
        return "ScepDeviceDBMapSize: put it after the ScepDeviceDB it sizes";
    }
    if (conf->db_ref->dbd) {
        return "ScepDeviceDBMapSize: sizes an LMDB folder; ScepDeviceDB dbd: is PostgreSQL's";
    }
    /* Sections sharing a folder share one environment: the largest size wins. */
    if ((apr_size_t)size > conf->db_ref->map_size) {
        conf->db_ref->map_size = (apr_size_t)size;
    }
    return NULL;
}

static const char *set_profile_name(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_dir_conf_t *conf = dconf;
    const char *err;

    if ((err = endpoint_context(cmd)) != NULL) {
        return err;
    }
    if (!*arg || !scep_import_profile_name_ok(arg)) {
        return "ScepProfileName: 1 to 64 letters, digits, '-', '_' or '.'";
    }
    conf->profile.registrations.profile_name = arg;
    conf->set |= SCEP_PROFILE_SET_PROFILE_NAME;
    return NULL;
}

static const char *set_lockout(cmd_parms *cmd, void *dconf, int argc, char *const argv[])
{
    scep_dir_conf_t *conf = dconf;
    apr_int64_t failures = 0, secs = 900, shared = 0;
    const char *err;

    if ((err = endpoint_context(cmd)) != NULL) {
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
    else if ((err = parse_number(cmd, argv[0], 1, 1000, 0, &failures)) != NULL
             || (argc > 1 && (err = parse_number(cmd, argv[1], 1, 30L * 24 * 3600, 0, &secs))
                 != NULL)
             || (argc > 2
                 && (err = parse_number(cmd, argv[2], 1, 1000000, 0, &shared)) != NULL)) {
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
    conf->set |= SCEP_PROFILE_SET_LOCKOUT;
    return NULL;
}

static const char *set_challenge_ttl(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_dir_conf_t *conf = dconf;
    apr_int64_t v = 0;
    const char *err;

    if ((err = endpoint_context(cmd)) != NULL
        || (err = parse_number(cmd, arg, 1, 30L * 24 * 3600, 0, &v)) != NULL) {
        return err;
    }
    conf->challenge_ttl = v;
    return NULL;
}

static const char *set_audit_log(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_server_conf_t *conf = ap_get_module_config(cmd->server->module_config, &scep_module);

    if (*arg == '|') {
        conf->audit_path = arg;
    }
    else if ((conf->audit_path = ap_server_root_relative(cmd->pool, arg)) == NULL) {
        return apr_pstrcat(cmd->pool, "ScepAuditLog: invalid file path '", arg, "'", NULL);
    }
    return NULL;
}

/* ---- the forwarding issuer (ScepUpstream*) ---------------------------------------- */

static int http_url(const char *url)
{
    return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

/* The setting of a URL the module sends requests to (an upstream, a webhook): in an
 * endpoint's section, http or https, no fragment.  NULL, or the error. */
static const char *outgoing_url_problem(cmd_parms *cmd, const char *arg)
{
    const char *err;

    if ((err = endpoint_context(cmd)) != NULL) {
        return err;
    }
    if (!http_url(arg) || strchr(arg, '#')) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not an http:// or https:// URL",
                            cmd->cmd->name, arg);
    }
    return NULL;
}

static const char *set_upstream_url(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_dir_conf_t *conf = dconf;
    const char *err;

    if ((err = outgoing_url_problem(cmd, arg)) != NULL) {
        return err;
    }
    scep_glue_forward_ref(cmd, conf)->conf.url = arg;
    mark_forwarding(cmd, conf);
    return NULL;
}

static const char *set_upstream_proxy(cmd_parms *cmd, void *dconf, const char *url,
                                      const char *credentials)
{
    scep_upstream_ref_t *ref;
    const char *err;

    if ((err = endpoint_context(cmd)) != NULL) {
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
    ref = scep_glue_forward_ref(cmd, dconf);
    ref->conf.proxy = url;
    ref->conf.proxy_auth = credentials;
    return NULL;
}

static const char *set_upstream_text(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_upstream_ref_t *ref;
    const char *err, *path;

    if ((err = endpoint_context(cmd)) != NULL) {
        return err;
    }
    ref = scep_glue_forward_ref(cmd, dconf);
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

static const char *set_upstream_client_cert(cmd_parms *cmd, void *dconf,
                                            const char *cert, const char *key)
{
    scep_upstream_ref_t *ref;
    const char *err;

    if ((err = endpoint_context(cmd)) != NULL) {
        return err;
    }
    ref = scep_glue_forward_ref(cmd, dconf);
    ref->conf.client_cert = ap_server_root_relative(cmd->pool, cert);
    ref->conf.client_key = ap_server_root_relative(cmd->pool, key);
    if (!ref->conf.client_cert || !ref->conf.client_key) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name, ": invalid file path", NULL);
    }
    return NULL;
}

static const char *set_upstream_timeout(cmd_parms *cmd, void *dconf, const char *connect,
                                        const char *total)
{
    scep_upstream_ref_t *ref;
    apr_int64_t c = 0, t = 0;
    const char *err;

    if ((err = endpoint_context(cmd)) != NULL
        || (err = parse_number(cmd, connect, 1, 300, 0, &c)) != NULL
        || (err = parse_number(cmd, total, 1, 600, 0, &t)) != NULL) {
        return err;
    }
    if (c > t) {
        return apr_psprintf(cmd->pool, "%s: the connect timeout is longer than the total",
                            cmd->cmd->name);
    }
    ref = scep_glue_forward_ref(cmd, dconf);
    ref->conf.connect_timeout = c;
    ref->conf.timeout = t;
    return NULL;
}

static const char *set_upstream_retries(cmd_parms *cmd, void *dconf, const char *arg)
{
    apr_int64_t v = 0;
    const char *err;

    if ((err = endpoint_context(cmd)) != NULL
        || (err = parse_number(cmd, arg, 0, 5, 0, &v)) != NULL) {
        return err;
    }
    scep_glue_forward_ref(cmd, dconf)->conf.retries = (int)v;
    return NULL;
}

static const char *set_upstream_down_answer(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_upstream_ref_t *ref;
    const char *err;

    if ((err = endpoint_context(cmd)) != NULL) {
        return err;
    }
    ref = scep_glue_forward_ref(cmd, dconf);
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

static const char *set_upstream_refresh(cmd_parms *cmd, void *dconf, const char *arg)
{
    apr_int64_t v = 0;
    const char *err;

    if ((err = endpoint_context(cmd)) != NULL
        || (err = parse_number(cmd, arg, 10, 7 * 86400L, 0, &v)) != NULL) {
        return err;
    }
    scep_glue_forward_ref(cmd, dconf)->conf.refresh = v;
    return NULL;
}

/* ---- the webhooks (ScepValidate*, ScepNotify*) -------------------------------------- */

/* cmd->info of the ScepNotify* directives; NULL for ScepValidate* */
static int notifier_directive = 1;
#define NOTIFIER ((void *)&notifier_directive)

/* The section's validator or notifier, as cmd->info says. */
static scep_hook_conf_t *section_hook(cmd_parms *cmd, void *dconf)
{
    return &scep_glue_webhook_ref(cmd, dconf, cmd->info != NULL)->conf;
}

static const char *set_hook_url(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err;

    if ((err = outgoing_url_problem(cmd, arg)) != NULL) {
        return err;
    }
    section_hook(cmd, dconf)->url = arg;
    return NULL;
}

static const char *set_hook_secret(cmd_parms *cmd, void *dconf, const char *arg)
{
    scep_hook_conf_t *hook;
    const char *err;

    if ((err = endpoint_context(cmd)) != NULL) {
        return err;
    }
    hook = section_hook(cmd, dconf);
    if (!(hook->secret_file = ap_server_root_relative(cmd->pool, arg))) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name, ": invalid file path '", arg, "'", NULL);
    }
    /* read here, as root and for `httpd -t` too; never logged */
    if (scep_webhook_load_secret(cmd->pool, hook, &err) != APR_SUCCESS) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name, ": ", err, NULL);
    }
    return NULL;
}

/* ScepValidateMode and ScepValidateUnavailable: one of two words each. */
static const char *set_hook_choice(cmd_parms *cmd, void *dconf, const char *arg)
{
    static const char *const mode_words[] = { "after-registration", "alone" };
    static const char *const down_words[] = { "deny", "pending" };
    int is_mode = strcmp(cmd->cmd->name, "ScepValidateMode") == 0;
    const char *const *words = is_mode ? mode_words : down_words;
    scep_hook_conf_t *hook;
    const char *err;
    int i;

    if ((err = endpoint_context(cmd)) != NULL) {
        return err;
    }
    for (i = 0; i < 2 && strcasecmp(arg, words[i]) != 0; i++) {
    }
    if (i == 2) {
        return apr_psprintf(cmd->pool, "%s: '%s' is neither %s nor %s", cmd->cmd->name, arg,
                            words[is_mode], words[!is_mode]);
    }
    hook = section_hook(cmd, dconf);
    if (is_mode) {
        hook->mode = i ? SCEP_HOOK_ALONE : SCEP_HOOK_AFTER_REGISTRATION;
    }
    else {
        hook->unavailable = i ? SCEP_HOOK_DOWN_PENDING : SCEP_HOOK_DOWN_DENY;
    }
    return NULL;
}

static const char *set_validate_send_challenge(cmd_parms *cmd, void *dconf, int on)
{
    const char *err;

    if ((err = endpoint_context(cmd)) != NULL) {
        return err;
    }
    section_hook(cmd, dconf)->send_challenge = on;
    return NULL;
}

/* ScepValidateTimeout (milliseconds), ScepNotifyQueue, ScepNotifyRetries */
static const char *set_hook_number(cmd_parms *cmd, void *dconf, const char *arg)
{
    apr_int64_t v = 0;
    const char *err;
    int timeout = strcmp(cmd->cmd->name, "ScepValidateTimeout") == 0;
    int queue = strcmp(cmd->cmd->name, "ScepNotifyQueue") == 0;

    if ((err = endpoint_context(cmd)) != NULL
        || (err = parse_number(cmd, arg, timeout ? 100 : queue ? 1 : 0,
                               timeout ? SCEP_HOOK_TIMEOUT_MAX_MS : queue ? 100000 : 10, 0,
                               &v)) != NULL) {
        return err;
    }
    if (timeout) {
        section_hook(cmd, dconf)->timeout_ms = (long)v;
    }
    else if (queue) {
        section_hook(cmd, dconf)->queue = (int)v;
    }
    else {
        section_hook(cmd, dconf)->retries = (int)v;
    }
    return NULL;
}

/* ---- the directive table --------------------------------------------------------- */

#define FILE_SLOT(member) ((void *)APR_OFFSETOF(scep_ca_files_t, member))
#define DIR_CONTEXT (RSRC_CONF | ACCESS_CONF)
#define SETTING(name) ((void *)SCEP_PROFILE_SET_##name)

const command_rec scep_glue_config_cmds[] = {
    AP_INIT_TAKE1("ScepCACertificateFile", set_file, FILE_SLOT(ca_cert_file), DIR_CONTEXT,
                  "PEM file: the issuing CA certificate, then optional chain certificates"),
    AP_INIT_TAKE1("ScepCAKeyFile", set_file, FILE_SLOT(ca_key_file), DIR_CONTEXT,
                  "PEM file (mode 0600) or pkcs11: URI: the issuing CA's private key"),
    AP_INIT_TAKE1("ScepRACertificateFile", set_file, FILE_SLOT(ra_cert_file), DIR_CONTEXT,
                  "PEM file: the RA certificate clients encrypt to"),
    AP_INIT_TAKE1("ScepRAKeyFile", set_file, FILE_SLOT(ra_key_file), DIR_CONTEXT,
                  "PEM file (mode 0600) or pkcs11: URI: the RA's RSA private key"),
    AP_INIT_TAKE1("ScepRASigningCertificateFile", set_file, FILE_SLOT(ra_sign_cert_file),
                  DIR_CONTEXT, "PEM file: a separate RA certificate that signs CertReps"),
    AP_INIT_TAKE1("ScepRASigningKeyFile", set_file, FILE_SLOT(ra_sign_key_file), DIR_CONTEXT,
                  "PEM file (mode 0600) or pkcs11: URI: its private key"),
    AP_INIT_TAKE1("ScepPassPhraseDialog", set_passphrase_dialog, NULL, RSRC_CONF,
                  "how encrypted keys are unlocked at startup: builtin or exec:/path"),
    AP_INIT_TAKE1("ScepNextCACertificateFile", set_file, FILE_SLOT(next_ca_file), DIR_CONTEXT,
                  "PEM file: the CA certificate(s) that take over next (GetNextCACert)"),
    AP_INIT_TAKE1("ScepPreviousCACertificateFile", set_file, FILE_SLOT(previous_ca_file),
                  DIR_CONTEXT, "PEM file: earlier CA certificates whose certificates renew"),
    AP_INIT_TAKE1("ScepUpstreamURL", set_upstream_url, NULL, DIR_CONTEXT,
                  "the upstream SCEP CA that issues for this endpoint (http or https URL)"),
    AP_INIT_TAKE12("ScepUpstreamProxy", set_upstream_proxy, NULL, DIR_CONTEXT,
                   "forward proxy URL for the upstream, and optionally user:password"),
    AP_INIT_TAKE1("ScepUpstreamNoProxy", set_upstream_text, NULL, DIR_CONTEXT,
                  "hosts reached without the proxy, comma-separated"),
    AP_INIT_TAKE1("ScepUpstreamCAFile", set_upstream_text, NULL, DIR_CONTEXT,
                  "PEM file of the CAs trusted for https upstreams and proxies"),
    AP_INIT_TAKE1("ScepUpstreamRACertificateFile", set_upstream_text, NULL,
                  DIR_CONTEXT, "PEM file: the only RA certificates the upstream may use"),
    AP_INIT_TAKE2("ScepUpstreamClientCertificate", set_upstream_client_cert, NULL,
                  DIR_CONTEXT, "PEM certificate and key for TLS client authentication"),
    AP_INIT_TAKE2("ScepUpstreamTimeout", set_upstream_timeout, NULL, DIR_CONTEXT,
                  "seconds to connect and for a whole exchange (default 5 20)"),
    AP_INIT_TAKE1("ScepUpstreamRetries", set_upstream_retries, NULL, DIR_CONTEXT,
                  "further attempts after a failed connection (default 1)"),
    AP_INIT_TAKE1("ScepUpstreamDownAnswer", set_upstream_down_answer, NULL, DIR_CONTEXT,
                  "Pending (default) or 503: the answer while the upstream is unreachable"),
    AP_INIT_TAKE1("ScepUpstreamRefresh", set_upstream_refresh, NULL, DIR_CONTEXT,
                  "seconds between fetches of the upstream's GetCACaps/GetCACert "
                  "(default 3600)"),
    AP_INIT_TAKE1("ScepChallenge", set_challenge, NULL, DIR_CONTEXT,
                  "the static challenge password every enrollment must carry"),
    AP_INIT_FLAG("ScepAllowNoChallenge", set_flag, SETTING(NO_CHALLENGE), DIR_CONTEXT,
                 "On: without ScepChallenge, issue to anyone (lab use only)"),
    AP_INIT_TAKE1("ScepValidityDays", set_number, (void *)&validity_days, DIR_CONTEXT,
                  "validity of issued certificates in days (default 365)"),
    AP_INIT_TAKE_ARGV("ScepKeyUsage", set_key_usage, NULL, DIR_CONTEXT,
                      "keyUsage of issued certificates (default digitalSignature "
                      "keyEncipherment)"),
    AP_INIT_TAKE_ARGV("ScepExtendedKeyUsage", set_profile_list, (void *)&eku_list, DIR_CONTEXT,
                      "extendedKeyUsage names or OIDs (default clientAuth), or none"),
    AP_INIT_TAKE1("ScepSubject", set_subject, NULL, DIR_CONTEXT,
                  "csr: the CSR's subject; cn: only its commonName (default csr); the "
                  "same as ScepTemplate csr or cn"),
    AP_INIT_TAKE12("ScepIdentity", set_identity, NULL, DIR_CONTEXT,
                   "what this endpoint enrolls: host (default), device-name, device-id or "
                   "user, and where requests carry it: cn, serialNumber, rfc822Name, upn, "
                   "dNSName or unstructuredName"),
    AP_INIT_TAKE1("ScepTemplate", set_template_preset, NULL, DIR_CONTEXT,
                  "what certificates hold: tls-client, vpn, smime-sign, smime-encrypt, "
                  "smime-both, or csr / cn (copy the request)"),
    AP_INIT_TAKE_ARGV("ScepTemplateSubject", set_template_rule, NULL, DIR_CONTEXT,
                      "<attribute> request [count] | identity | validator | fixed <value>"),
    AP_INIT_TAKE_ARGV("ScepTemplateSAN", set_template_rule, (void *)"san", DIR_CONTEXT,
                      "<type> request [count [prefix]] | identity | validator | "
                      "fixed <value>"),
    AP_INIT_TAKE1("ScepTemplateUnlisted", set_template_unlisted, NULL, DIR_CONTEXT,
                  "refuse (default) or drop what the template does not take"),
    AP_INIT_FLAG("ScepTemplateSID", set_template_sid, NULL, DIR_CONTEXT,
                 "On (default): the SID security extension from a kept Intune SID URI"),
    AP_INIT_TAKE1("ScepMinKeySize", set_number, (void *)&min_key_bits, DIR_CONTEXT,
                  "smallest RSA key accepted, in bits (default 2048)"),
    AP_INIT_TAKE1("ScepMaxMessageSize", set_number, (void *)&max_message_size, DIR_CONTEXT,
                  "largest PKIOperation message accepted, in bytes (default 131072)"),
    AP_INIT_TAKE1("ScepDeviceDB", set_device_db, NULL, DIR_CONTEXT,
                  "folder of the LMDB device database, or dbd: for the PostgreSQL of "
                  "mod_dbd: enroll registered devices only"),
    AP_INIT_TAKE1("ScepDBDTimeout", set_dbd_timeout, NULL, DIR_CONTEXT,
                  "milliseconds a statement on ScepDeviceDB dbd: and the wait for the "
                  "writers' lock may take (default 5000)"),
    AP_INIT_TAKE1("ScepDeviceDBMapSize", set_db_map_size, NULL, DIR_CONTEXT,
                  "largest size the device database may grow to (default 1G)"),
    AP_INIT_TAKE1("ScepProfileName", set_profile_name, NULL, DIR_CONTEXT,
                  "the profile this endpoint serves, as registrations name it"),
    AP_INIT_FLAG("ScepCheckClientAddress", set_flag, SETTING(CHECK_ADDRESS), DIR_CONTEXT,
                 "On: a registered IP may match the client address (default Off)"),
    AP_INIT_TAKE_ARGV("ScepLockout", set_lockout, NULL, DIR_CONTEXT,
                      "failures before a name is locked out, for how many seconds, and "
                      "failures before a wildcard's challenge is (default 5 900 50), or Off"),
    AP_INIT_TAKE1("ScepTransactionWindow", set_number, (void *)&transaction_window_secs,
                  DIR_CONTEXT,
                  "seconds a transactionID stays bound to its request (default 604800)"),
    AP_INIT_TAKE1("ScepRenewalGrace", set_number, (void *)&renewal_grace_secs, DIR_CONTEXT,
                  "seconds after expiry a certificate still renews itself (default 0)"),
    AP_INIT_FLAG("ScepRenewalChallenge", set_flag, SETTING(RENEWAL_CHALLENGE), DIR_CONTEXT,
                 "On: renewals must carry the registration's challenge too (default Off)"),
    AP_INIT_FLAG("ScepRenewalRevokesOld", set_flag, SETTING(RENEWAL_REVOKE), DIR_CONTEXT,
                 "On: a renewal revokes the certificate it replaces (default Off)"),
    AP_INIT_FLAG("ScepRequireApproval", set_flag, SETTING(APPROVAL), DIR_CONTEXT,
                 "On: first enrollments wait for an operator's approval (default Off)"),
    AP_INIT_TAKE1("ScepPendingTimeout", set_number, (void *)&pending_timeout_secs, DIR_CONTEXT,
                  "seconds a request waits for approval before it expires (default 604800)"),
    AP_INIT_TAKE1("ScepCRLValidity", set_number, (void *)&crl_validity_secs, DIR_CONTEXT,
                  "seconds from a CRL's thisUpdate to its nextUpdate (default 604800)"),
    AP_INIT_TAKE_ARGV("ScepCRLDistributionPoint", set_profile_list, (void *)&crl_url_list,
                      DIR_CONTEXT,
                      "URLs of the CRL that issued certificates name (their CDP)"),
    AP_INIT_TAKE1("ScepChallengeTTL", set_challenge_ttl, NULL, DIR_CONTEXT,
                  "lifetime of minted challenges in seconds (default 3600)"),
    AP_INIT_TAKE1("ScepAuditLog", set_audit_log, NULL, RSRC_CONF,
                  "file or |program receiving one JSON line per decision"),
    AP_INIT_FLAG("ScepFailureDetail", set_flag, SETTING(FAILURE_DETAIL), DIR_CONTEXT,
                 "On: refusals tell the client the reason the log gives (for debugging; it "
                 "reveals registration state); Off (default): a generic text"),
    AP_INIT_FLAG("ScepLegacyAlgorithms", set_flag, SETTING(LEGACY), DIR_CONTEXT,
                 "On: accept MD5 signatures and single-DES envelopes (default Off)"),
    AP_INIT_TAKE1("ScepValidateURL", set_hook_url, NULL, DIR_CONTEXT,
                  "the validation webhook asked before a certificate is issued"),
    AP_INIT_TAKE1("ScepValidateSecretFile", set_hook_secret, NULL, DIR_CONTEXT,
                  "file (mode 0600) of the secret that signs requests to the validator"),
    AP_INIT_TAKE1("ScepValidateMode", set_hook_choice, NULL, DIR_CONTEXT,
                  "alone: the validator alone authorises; after-registration (default): "
                  "it is asked once the registration allowed"),
    AP_INIT_TAKE1("ScepValidateTimeout", set_hook_number, NULL, DIR_CONTEXT,
                  "milliseconds the validator may take, connection included (default 5000)"),
    AP_INIT_TAKE1("ScepValidateUnavailable", set_hook_choice, NULL, DIR_CONTEXT,
                  "deny (default) or pending: what a validator that cannot answer means"),
    AP_INIT_FLAG("ScepValidateSendChallenge", set_validate_send_challenge, NULL, DIR_CONTEXT,
                 "On: the request's challenge goes to the validator (default Off)"),
    AP_INIT_TAKE1("ScepNotifyURL", set_hook_url, NOTIFIER, DIR_CONTEXT,
                  "the webhook told of issued, refused and revoked certificates"),
    AP_INIT_TAKE1("ScepNotifySecretFile", set_hook_secret, NOTIFIER, DIR_CONTEXT,
                  "file (mode 0600) of the secret that signs the events"),
    AP_INIT_TAKE1("ScepNotifyQueue", set_hook_number, NOTIFIER, DIR_CONTEXT,
                  "events waiting to be sent, per child, before new ones are dropped "
                  "(default 1000)"),
    AP_INIT_TAKE1("ScepNotifyRetries", set_hook_number, NOTIFIER, DIR_CONTEXT,
                  "further attempts to send one event (default 3)"),
    { NULL }
};

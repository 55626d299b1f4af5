/* SPDX-License-Identifier: Apache-2.0 */
/* Certificate templates: the presets and rules ScepTemplate* prepare at configuration
 * time, and the decision, per request, of which names a certificate holds.  A request
 * only proposes: every value it carries is checked and taken only where a rule takes it;
 * the authorised identity always sits where the endpoint says it is carried. */
#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "scep_name.h"
#include "scep_template.h"

/* The fields a rule may name, with RFC 5280's upper bounds (Appendix A.1: ub-common-name
 * 64, ub-organization-name 64, ub-organizational-unit-name 64, ub-locality-name 128,
 * ub-state-name 128, ub-serial-number 64, ub-emailaddress-length 255; a country is two
 * letters).  SAN types have no bound there: a DNS name has 253 octets, the others get the
 * length the request parser already applies. */
typedef struct field_t {
    const char *name;
    int field;
    apr_size_t max;
} field_t;

static const field_t subject_fields[] = {
    { "CN", NID_commonName, 64 },
    { "O", NID_organizationName, 64 },
    { "OU", NID_organizationalUnitName, 64 },
    { "C", NID_countryName, 2 },
    { "L", NID_localityName, 128 },
    { "ST", NID_stateOrProvinceName, 128 },
    { "serialNumber", NID_serialNumber, 64 },
    { "emailAddress", NID_pkcs9_emailAddress, 255 },
    { "unstructuredName", NID_pkcs9_unstructuredName, 255 },
};

static const field_t san_fields[] = {
    { "dNSName", GEN_DNS, 253 },
    { "iPAddress", GEN_IPADD, 39 },
    { "rfc822Name", GEN_EMAIL, 255 },
    { "upn", SCEP_TEMPLATE_SAN_UPN, 1024 },
    { "URI", GEN_URI, 1024 },
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const field_t *field_by_name(int is_san, const char *name)
{
    const field_t *table = is_san ? san_fields : subject_fields;
    size_t n = is_san ? COUNT(san_fields) : COUNT(subject_fields), i;

    for (i = 0; i < n; i++) {
        if (strcasecmp(table[i].name, name) == 0) {
            return &table[i];
        }
    }
    return NULL;
}

static const field_t *field_by_number(int is_san, int field)
{
    const field_t *table = is_san ? san_fields : subject_fields;
    size_t n = is_san ? COUNT(san_fields) : COUNT(subject_fields), i;

    for (i = 0; i < n; i++) {
        if (table[i].field == field) {
            return &table[i];
        }
    }
    return NULL;
}

/* ---- ScepSubject's two templates ---------------------------------------------------- */

static const scep_template_t copy_csr = {
    "csr", SCEP_TEMPLATE_COPY_CSR, SCEP_TEMPLATE_DROP, 0, NULL, NULL, 0, 0, 0
};
static const scep_template_t copy_cn = {
    "cn", SCEP_TEMPLATE_COPY_CN, SCEP_TEMPLATE_DROP, 0, NULL, NULL, 0, 0, 0
};

const scep_template_t *scep_template_builtin(int subject_mode)
{
    return subject_mode == SCEP_SUBJECT_CN_ONLY ? &copy_cn : &copy_csr;
}

const scep_template_t *scep_template_identity_only(void)
{
    /* read only, like every template once configuration is done */
    static apr_array_header_t no_rules = { NULL, sizeof(scep_template_rule_t), 0, 0, NULL };
    static const scep_template_t identity_only = {
        "identity (no ScepTemplate)", SCEP_TEMPLATE_RULES, SCEP_TEMPLATE_DROP, 0,
        &no_rules, &no_rules, 0, 0, 0
    };

    return &identity_only;
}

/* ---- values ------------------------------------------------------------------------- */

const char *scep_template_value_problem(const char *value, apr_size_t max)
{
    const unsigned char *s = (const unsigned char *)value;
    apr_size_t n = 0;

    if (!value || !*value) {
        return "is empty or does not decode";
    }
    while (*s) {
        unsigned int c = *s, len, i;

        if (++n > max) {
            return "is longer than its upper bound";
        }
        len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
              : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (!len) {
            return "is not UTF-8";
        }
        for (i = 1; i < len; i++) {
            if ((s[i] & 0xc0) != 0x80) {
                return "is not UTF-8";
            }
        }
        if (len == 2) {
            c = ((c & 0x1fu) << 6) | (s[1] & 0x3fu);
            if (c < 0x80) {
                return "is not UTF-8 (overlong)";
            }
        }
        else if (len == 3) {
            c = ((c & 0x0fu) << 12) | ((s[1] & 0x3fu) << 6) | (s[2] & 0x3fu);
            if (c < 0x800 || (c >= 0xd800 && c <= 0xdfff)) {
                return "is not UTF-8 (overlong or a surrogate)";
            }
        }
        else if (len == 4) {
            c = ((c & 0x07u) << 18) | ((s[1] & 0x3fu) << 12) | ((s[2] & 0x3fu) << 6)
                | (s[3] & 0x3fu);
            if (c < 0x10000 || c > 0x10ffff) {
                return "is not UTF-8 (overlong or beyond U+10FFFF)";
            }
        }
        if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0)) {
            return "holds a control character";
        }
        s += len;
    }
    return NULL;
}

/* The form a field's type demands beyond text: a host name (no wildcard), an e-mail
 * address of a host's domain, an address.  NULL, or why not; *value becomes the
 * canonical form (a lower-case host name, an address as scep_name writes it). */
static const char *form_problem(apr_pool_t *p, int is_san, int field, const char **value)
{
    const char *at, *canonical;

    if (is_san && field == GEN_DNS) {
        if (!(canonical = scep_name_fqdn(p, *value, 0))) {
            return "is no host name";
        }
        *value = canonical;
    }
    else if (is_san && field == GEN_IPADD) {
        if (!(canonical = scep_name_ip(p, *value))) {
            return "is no IP address";
        }
        *value = canonical;
    }
    else if ((is_san && field == GEN_EMAIL) || (!is_san && field == NID_pkcs9_emailAddress)) {
        at = strchr(*value, '@');
        if (!at || at == *value || strchr(at + 1, '@') || !scep_name_fqdn(p, at + 1, 0)) {
            return "is no e-mail address";
        }
    }
    return NULL;
}

static int is_ascii(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s >= 0x80) {
            return 0;
        }
    }
    return 1;
}

/* Every check of a value for a field: its text, its string type, its form.  NULL, or
 * why not; *value may become its canonical form (form_problem). */
static const char *field_problem(apr_pool_t *p, const field_t *f, int is_san,
                                 const char **value)
{
    const char *problem = scep_template_value_problem(*value, f->max);

    if (problem) {
        return apr_psprintf(p, "%s (at most %d characters)", problem, (int)f->max);
    }
    if (is_san && f->field != SCEP_TEMPLATE_SAN_UPN && !is_ascii(*value)) {
        return "is not ASCII (IA5String)";
    }
    return form_problem(p, is_san, f->field, value);
}

/* ---- configuration ------------------------------------------------------------------ */

scep_template_t *scep_template_new(apr_pool_t *p)
{
    scep_template_t *t = apr_pcalloc(p, sizeof(*t));

    t->name = "custom";
    t->copy = SCEP_TEMPLATE_RULES;
    t->unlisted = SCEP_TEMPLATE_REFUSE;
    t->sid = 1;
    t->subject = apr_array_make(p, 4, sizeof(scep_template_rule_t));
    t->sans = apr_array_make(p, 4, sizeof(scep_template_rule_t));
    return t;
}

static void push_rule(apr_array_header_t *rules, const field_t *f, int max,
                      const char *prefix)
{
    scep_template_rule_t *r = apr_array_push(rules);

    memset(r, 0, sizeof(*r));
    r->field = f->field;
    r->field_name = f->name;
    r->source = SCEP_TEMPLATE_FROM_REQUEST;
    r->max = max;
    r->prefix = prefix;
}

/* A preset's rules: each names the request's fields its purpose needs.  No preset takes
 * a UPN or a SID URI from the request: Windows maps a certificate to the account they
 * name, so whoever holds the challenge would choose the account (the operator writes
 * such a rule, and gets a warning at startup, or takes them from a validator). */
typedef struct preset_t {
    const char *name;
    unsigned int key_usage;
    const char *eku[4];
    const char *subject[3];            /* fields taken from the request, once each */
    struct { const char *field; int max; const char *prefix; } sans[5];
} preset_t;

#define KU_SIGN SCEP_KU_DIGITAL_SIGNATURE
#define KU_ENC SCEP_KU_KEY_ENCIPHERMENT

static const preset_t presets[] = {
    { "tls-client", KU_SIGN | KU_ENC, { "clientAuth" }, { "CN" },
      { { "dNSName", 1, NULL }, { "rfc822Name", 1, NULL } } },
    { "vpn", KU_SIGN | KU_ENC, { "clientAuth", "serverAuth", "ipsecIKE" }, { "CN" },
      { { "dNSName", 4, NULL }, { "iPAddress", 4, NULL }, { "rfc822Name", 1, NULL } } },
    { "smime-sign", KU_SIGN | SCEP_KU_NON_REPUDIATION, { "emailProtection" },
      { "CN", "emailAddress" }, { { "rfc822Name", 4, NULL } } },
    { "smime-encrypt", KU_ENC, { "emailProtection" },
      { "CN", "emailAddress" }, { { "rfc822Name", 4, NULL } } },
    { "smime-both", KU_SIGN | KU_ENC, { "emailProtection" },
      { "CN", "emailAddress" }, { { "rfc822Name", 4, NULL } } },
};

const char *scep_template_preset(scep_template_t *t, const char *preset,
                                 unsigned int *key_usage, const char *const **eku)
{
    size_t i, j;

    *key_usage = 0;
    *eku = NULL;
    if (t->preset_given) {
        return "a section names one preset";
    }
    if (strcasecmp(preset, "csr") == 0 || strcasecmp(preset, "cn") == 0) {
        if (t->own_subject || t->own_sans) {
            return "csr and cn copy the request; they take no ScepTemplateSubject or "
                   "ScepTemplateSAN";
        }
        *t = *scep_template_builtin(strcasecmp(preset, "cn") == 0 ? SCEP_SUBJECT_CN_ONLY
                                                                   : SCEP_SUBJECT_FROM_CSR);
        t->preset_given = 1;
        return NULL;
    }
    for (i = 0; i < COUNT(presets); i++) {
        const preset_t *ps = &presets[i];

        if (strcasecmp(preset, ps->name) != 0) {
            continue;
        }
        t->name = ps->name;
        t->preset_given = 1;
        for (j = 0; !t->own_subject && j < COUNT(ps->subject) && ps->subject[j]; j++) {
            push_rule(t->subject, field_by_name(0, ps->subject[j]), 1, NULL);
        }
        for (j = 0; !t->own_sans && j < COUNT(ps->sans) && ps->sans[j].field; j++) {
            push_rule(t->sans, field_by_name(1, ps->sans[j].field), ps->sans[j].max,
                      ps->sans[j].prefix);
        }
        *key_usage = ps->key_usage;
        *eku = ps->eku;
        return NULL;
    }
    return "unknown preset (tls-client, vpn, smime-sign, smime-encrypt, smime-both, csr "
           "or cn)";
}

const char *scep_template_add_rule(scep_template_t *t, apr_pool_t *p, int is_san,
                                   int argc, const char *const *argv)
{
    const field_t *f;
    scep_template_rule_t *r;
    apr_array_header_t *rules = is_san ? t->sans : t->subject;
    char *end;
    long max = 1;

    if (t->copy != SCEP_TEMPLATE_RULES) {
        return "the csr and cn presets copy the request and take no rules";
    }
    if (argc < 2 || !(f = field_by_name(is_san, argv[0]))) {
        return is_san ? "the first word is the SAN type: dNSName, iPAddress, rfc822Name, "
                        "upn or URI"
                      : "the first word is the attribute: CN, O, OU, C, L, ST, "
                        "serialNumber, emailAddress or unstructuredName";
    }
    /* the first line of a section's own replaces a preset's rules of that kind */
    if (is_san ? !t->own_sans : !t->own_subject) {
        apr_array_clear(rules);
        *(is_san ? &t->own_sans : &t->own_subject) = 1;
    }
    r = apr_array_push(rules);
    memset(r, 0, sizeof(*r));
    r->field = f->field;
    r->field_name = f->name;
    if (strcasecmp(argv[1], "fixed") == 0) {
        const char *problem;

        if (argc != 3) {
            return "fixed takes one value";
        }
        const char *value = argv[2];

        if ((problem = field_problem(p, f, is_san, &value)) != NULL) {
            return apr_psprintf(p, "the fixed value %s", problem);
        }
        r->source = SCEP_TEMPLATE_FROM_FIXED;
        r->fixed = apr_pstrdup(p, value);
        return NULL;
    }
    if (strcasecmp(argv[1], "identity") == 0 || strcasecmp(argv[1], "validator") == 0) {
        if (argc != 2) {
            return apr_psprintf(p, "%s takes no further word", argv[1]);
        }
        r->source = strcasecmp(argv[1], "identity") == 0 ? SCEP_TEMPLATE_FROM_IDENTITY
                                                         : SCEP_TEMPLATE_FROM_VALIDATOR;
        return NULL;
    }
    if (strcasecmp(argv[1], "request") != 0) {
        return "the source is request, identity, validator or fixed";
    }
    r->source = SCEP_TEMPLATE_FROM_REQUEST;
    if (argc >= 3) {
        max = strtol(argv[2], &end, 10);
        if (*argv[2] == '\0' || *end != '\0' || max < 1 || max > SCEP_CSR_SAN_MAX) {
            return apr_psprintf(p, "request's count must be a number from 1 to %d",
                                SCEP_CSR_SAN_MAX);
        }
    }
    if (argc == 4 && !is_san) {
        return "a subject attribute takes no prefix";
    }
    if (argc > 4) {
        return "too many words";
    }
    r->max = (int)max;
    r->prefix = argc == 4 ? apr_pstrdup(p, argv[3]) : NULL;
    return NULL;
}

const char *scep_template_set_unlisted(scep_template_t *t, const char *word)
{
    if (strcasecmp(word, "drop") == 0) {
        t->unlisted = SCEP_TEMPLATE_DROP;
    }
    else if (strcasecmp(word, "refuse") == 0) {
        t->unlisted = SCEP_TEMPLATE_REFUSE;
    }
    else {
        return "'drop' or 'refuse'";
    }
    return NULL;
}

/* ---- per request -------------------------------------------------------------------- */

/* The request's values one rule takes. */
typedef struct rule_values_t {
    apr_array_header_t *values;        /* const char *, NULL until the first */
} rule_values_t;

typedef struct apply_t {
    apr_pool_t *p;
    const scep_template_t *t;
    const scep_identity_t *identity;
    int strict;
    scep_template_result_t *out;
    const char **why;
    rule_values_t *subject_taken;      /* per subject rule */
    rule_values_t *san_taken;          /* per SAN rule */
} apply_t;

/* Something no rule takes: refused (0, *why set) or dropped with a note (1). */
static int unlisted(apply_t *a, const char *what, const char *because)
{
    if (a->strict || a->t->unlisted == SCEP_TEMPLATE_REFUSE) {
        *a->why = apr_psprintf(a->p, "the request asks for %s, %s (template %s%s)", what,
                               because, a->t->name,
                               a->strict ? ", at a forwarding gateway" : "");
        return 0;
    }
    APR_ARRAY_PUSH(a->out->dropped, const char *) = apr_psprintf(a->p, "%s, %s", what,
                                                                 because);
    return 1;
}

/* Where a non-host identity sits: (is_san, field), or 0 for hosts. */
static int identity_field(const scep_identity_t *id, int *is_san, int *field)
{
    static const struct { scep_identity_where_e where; int is_san, field; } places[] = {
        { SCEP_WHERE_CN, 0, NID_commonName },
        { SCEP_WHERE_SERIAL_NUMBER, 0, NID_serialNumber },
        { SCEP_WHERE_UNSTRUCTURED_NAME, 0, NID_pkcs9_unstructuredName },
        { SCEP_WHERE_RFC822_NAME, 1, GEN_EMAIL },
        { SCEP_WHERE_UPN, 1, SCEP_TEMPLATE_SAN_UPN },
        { SCEP_WHERE_DNS_NAME, 1, GEN_DNS },
    };
    size_t i;

    if (!id || id->kind == SCEP_IDENTITY_HOST || !id->name) {
        return 0;
    }
    for (i = 0; i < COUNT(places); i++) {
        if (places[i].where == id->where) {
            *is_san = places[i].is_san;
            *field = places[i].field;
            return 1;
        }
    }
    /* HOST_RULES for a non-host kind: the CN, where MDM profiles write the name */
    *is_san = 0;
    *field = NID_commonName;
    return 1;
}

/* The FQDN, or its first label (devices put their short name in the CN). */
static int names_host(const char *value, const char *fqdn, int short_ok)
{
    size_t n = strlen(value);

    if (strcasecmp(value, fqdn) == 0) {
        return 1;
    }
    return short_ok && !strchr(value, '.') && strncasecmp(value, fqdn, n) == 0
           && fqdn[n] == '.';
}

static int one_of(const char *value, const apr_array_header_t *list)
{
    int i;

    for (i = 0; list && i < list->nelts; i++) {
        if (strcasecmp(value, APR_ARRAY_IDX(list, i, const char *)) == 0) {
            return 1;
        }
    }
    return 0;
}

/* A value the request carries where the identity is: 1 when it is the authorised one, 0
 * when it is another (refused), -1 when the field is no place of the identity. */
static int identity_check(const apply_t *a, int is_san, int field, const char *value)
{
    const scep_identity_t *id = a->identity;
    int id_is_san, id_field;

    if (!id) {
        return -1;
    }
    if (identity_field(id, &id_is_san, &id_field)) {
        if (id_is_san == is_san && id_field == field) {
            return strcmp(value, id->name) == 0;
        }
        /* a user is named in several places (e-mail, UPN, emailAddress): each one the
         * request fills must be the authorised user, or Alice's challenge would give a
         * certificate that logs on, signs or maps as somebody else */
        if (id->kind == SCEP_IDENTITY_USER
            && ((is_san && (field == GEN_EMAIL || field == SCEP_TEMPLATE_SAN_UPN))
                || (!is_san && field == NID_pkcs9_emailAddress))) {
            const char *key = scep_name_identity_key(a->p, SCEP_IDENTITY_USER, value, 0,
                                                     NULL);

            return key && strcmp(key, id->fqdn) == 0;
        }
        return -1;
    }
    if (id->kind != SCEP_IDENTITY_HOST || !id->fqdn) {
        return -1;
    }
    /* compared in canonical form, as the registration holds them */
    if ((!is_san && field == NID_commonName) || (is_san && field == GEN_DNS)) {
        const char *host = scep_name_fqdn(a->p, value, 0);

        return host && names_host(host, id->fqdn, !is_san);
    }
    if (is_san && field == GEN_IPADD) {
        const char *ip = scep_name_ip(a->p, value);

        return ip && one_of(ip, id->ips);
    }
    if (!is_san && field == NID_serialNumber) {
        /* Cisco's chassis serial: only the registered one (scepreg -s) */
        return id->serial_number && strcasecmp(value, id->serial_number) == 0;
    }
    return -1;
}

/* The rule that takes a request's value of this field, or -1. */
static int request_rule(const apr_array_header_t *rules, int field, const char *value)
{
    int i;

    for (i = 0; i < rules->nelts; i++) {
        const scep_template_rule_t *r = &APR_ARRAY_IDX(rules, i, scep_template_rule_t);

        if (r->field == field && r->source == SCEP_TEMPLATE_FROM_REQUEST
            && (!r->prefix
                || (value && strncasecmp(value, r->prefix, strlen(r->prefix)) == 0))) {
            return i;
        }
    }
    return -1;
}

/* One value the request carries (value NULL: it does not decode).  0 when refused. */
static int take_request_value(apply_t *a, int is_san, int field, const char *value,
                              const char *what)
{
    const apr_array_header_t *rules = is_san ? a->t->sans : a->t->subject;
    const field_t *f = field_by_number(is_san, field);
    const char *problem;
    int match, rule;

    if (!f) {
        return unlisted(a, what, "which no template rule can name");
    }
    if (!value) {
        return unlisted(a, what, "which does not decode as text");
    }
    match = identity_check(a, is_san, field, value);
    if (match == 0) {
        *a->why = apr_psprintf(a->p, "the request asks for %s, which is not the authorised "
                               "identity %s (template %s)", what,
                               scep_csr_shown(a->p, a->identity->name ? a->identity->name
                                                                      : a->identity->fqdn),
                               a->t->name);
        return 0;
    }
    if ((problem = field_problem(a->p, f, is_san, &value)) != NULL) {
        return unlisted(a, what, apr_pstrcat(a->p, "which ", problem, NULL));
    }
    if (match == 1 && (a->identity->kind != SCEP_IDENTITY_HOST
                       || (is_san && field == GEN_DNS))) {
        return 1;   /* the authorised value is written there from the identity */
    }
    if ((rule = request_rule(rules, field, value)) < 0) {
        return unlisted(a, what, "which the template does not take from requests");
    }
    {
        rule_values_t *taken = (is_san ? a->san_taken : a->subject_taken) + rule;
        const scep_template_rule_t *r = &APR_ARRAY_IDX(rules, rule, scep_template_rule_t);

        if (!taken->values) {
            taken->values = apr_array_make(a->p, 1, sizeof(const char *));
        }
        if (taken->values->nelts >= r->max) {
            return unlisted(a, what, apr_psprintf(a->p, "beyond the %d %s the template "
                                                  "takes", r->max, f->name));
        }
        APR_ARRAY_PUSH(taken->values, const char *) = value;
    }
    return 1;
}

static int dangerous_extension(apr_pool_t *p, const scep_csr_ext_t *x, const char **what)
{
    int i;

    switch (x->type.nid) {
    case NID_basic_constraints:
        *what = x->ca ? "the extension basicConstraints with cA TRUE" : NULL;
        return x->ca;
    case NID_key_usage:
        *what = apr_psprintf(p, "the extension keyUsage with %s",
                             x->key_usage & KU_KEY_CERT_SIGN ? "keyCertSign" : "cRLSign");
        return (x->key_usage & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) != 0;
    case NID_ext_key_usage:
        for (i = 0; x->purposes && i < x->purposes->nelts; i++) {
            if (APR_ARRAY_IDX(x->purposes, i, scep_csr_oid_t).nid == NID_anyExtendedKeyUsage) {
                *what = "the extension extendedKeyUsage with anyExtendedKeyUsage";
                return 1;
            }
        }
        return 0;
    case NID_name_constraints:
        *what = "the extension nameConstraints";
        return 1;
    default:
        return 0;
    }
}

/* Requested extensions never reach the certificate (its extensions come from the
 * profile): those that ask for a CA's powers are refused or dropped as the template
 * says, the usual ones of clients pass unnoted, the rest is noted as left out. */
static int judge_extensions(apply_t *a, const scep_csr_t *csr)
{
    int i;

    for (i = 0; csr->requested && i < csr->requested->nelts; i++) {
        const scep_csr_ext_t *x = &APR_ARRAY_IDX(csr->requested, i, scep_csr_ext_t);
        const char *what = NULL;

        if (x->type.nid == NID_subject_alt_name) {
            continue;
        }
        if (x->malformed) {
            if (!unlisted(a, apr_psprintf(a->p, "the extension %s", x->type.name),
                          "which does not decode")) {
                return 0;
            }
            continue;
        }
        if (dangerous_extension(a->p, x, &what)) {
            if (!unlisted(a, what, "which no certificate of this CA holds")) {
                return 0;
            }
            continue;
        }
        switch (x->type.nid) {
        case NID_basic_constraints:
        case NID_key_usage:
        case NID_ext_key_usage:
        case NID_subject_key_identifier:
            if (!a->strict) {
                continue;   /* the profile's own take their place */
            }
            break;
        default:
            break;
        }
        if (a->strict) {
            continue;       /* scep_policy's forward check judges what passes upstream */
        }
        APR_ARRAY_PUSH(a->out->dropped, const char *) =
            apr_psprintf(a->p, "the extension %s%s, which requests never set",
                         x->type.name, x->critical ? " (critical)" : "");
    }
    return 1;
}

static void emit(apply_t *a, int is_san, int field, const char *value)
{
    scep_template_name_t *n = apr_array_push(is_san ? a->out->sans : a->out->subject);

    n->field = field;
    n->value = value;
}

/* The identity's values for a field of an `identity` rule (none may apply). */
static int emit_identity(apply_t *a, int is_san, int field)
{
    const scep_identity_t *id = a->identity;
    int i;

    if (!id) {
        return 1;
    }
    if (id->kind != SCEP_IDENTITY_HOST) {
        const field_t *f = field_by_number(is_san, field);
        const char *value = id->name;
        const char *problem = field_problem(a->p, f, is_san, &value);

        if (problem) {
            *a->why = apr_psprintf(a->p, "the identity %s %s for %s (template %s)",
                                   scep_csr_shown(a->p, id->name), problem, f->name,
                                   a->t->name);
            return 0;
        }
        emit(a, is_san, field, value);
        return 1;
    }
    if (is_san && field == GEN_IPADD) {
        for (i = 0; id->ips && i < id->ips->nelts; i++) {
            emit(a, 1, GEN_IPADD, APR_ARRAY_IDX(id->ips, i, const char *));
        }
    }
    else if (!is_san && field == NID_serialNumber) {
        if (id->serial_number) {
            emit(a, 0, field, id->serial_number);
        }
    }
    else if (id->fqdn && (field == NID_commonName || field == GEN_DNS)) {
        emit(a, is_san, field, id->fqdn);
    }
    return 1;
}

static int emit_validator(apply_t *a, int is_san, const scep_template_rule_t *r)
{
    const apr_array_header_t *supplied = a->identity ? a->identity->supplied : NULL;
    const field_t *f = field_by_number(is_san, r->field);
    int i;

    for (i = 0; supplied && i < supplied->nelts; i++) {
        const scep_identity_value_t *v = &APR_ARRAY_IDX(supplied, i, scep_identity_value_t);
        const char *problem;

        if (!v->field || strcasecmp(v->field, r->field_name) != 0) {
            continue;
        }
        const char *value = v->value;

        if ((problem = field_problem(a->p, f, is_san, &value)) != NULL) {
            *a->why = apr_psprintf(a->p, "the validator's %s %s %s (template %s)",
                                   f->name, scep_csr_shown(a->p, v->value), problem,
                                   a->t->name);
            return 0;
        }
        emit(a, is_san, r->field, value);
    }
    return 1;
}

static int emit_rules(apply_t *a, int is_san)
{
    const apr_array_header_t *rules = is_san ? a->t->sans : a->t->subject;
    const rule_values_t *taken = is_san ? a->san_taken : a->subject_taken;
    int id_is_san = 0, id_field = 0, forced, i, j, ok = 1;

    forced = identity_field(a->identity, &id_is_san, &id_field) && id_is_san == is_san;
    if (!forced && is_san && a->identity && a->identity->kind == SCEP_IDENTITY_HOST
        && a->identity->fqdn) {
        forced = 1;
        id_field = GEN_DNS;
    }
    /* the identity's own place is filled first, unless a rule puts it there */
    for (i = 0; forced && i < rules->nelts; i++) {
        const scep_template_rule_t *r = &APR_ARRAY_IDX(rules, i, scep_template_rule_t);

        if (r->field == id_field && r->source == SCEP_TEMPLATE_FROM_IDENTITY) {
            forced = 0;
        }
    }
    if (forced) {
        ok = emit_identity(a, is_san, id_field);
    }
    for (i = 0; ok && i < rules->nelts; i++) {
        const scep_template_rule_t *r = &APR_ARRAY_IDX(rules, i, scep_template_rule_t);

        switch (r->source) {
        case SCEP_TEMPLATE_FROM_REQUEST:
            for (j = 0; taken[i].values && j < taken[i].values->nelts; j++) {
                emit(a, is_san, r->field, APR_ARRAY_IDX(taken[i].values, j, const char *));
            }
            break;
        case SCEP_TEMPLATE_FROM_IDENTITY:
            ok = emit_identity(a, is_san, r->field);
            break;
        case SCEP_TEMPLATE_FROM_VALIDATOR:
            ok = emit_validator(a, is_san, r);
            break;
        case SCEP_TEMPLATE_FROM_FIXED:
            emit(a, is_san, r->field, r->fixed);
            break;
        }
    }
    return ok;
}

/* A SID as Windows writes it: S-1-, then decimal numbers separated by '-'. */
static int sid_is_wellformed(const char *sid)
{
    size_t n = strlen(sid), i;

    if (n < 5 || n > 184 || strncmp(sid, "S-1-", 4) != 0 || sid[n - 1] == '-') {
        return 0;
    }
    for (i = 4; i < n; i++) {
        if (!(sid[i] >= '0' && sid[i] <= '9') && !(sid[i] == '-' && sid[i - 1] != '-')) {
            return 0;
        }
    }
    return 1;
}

static int find_sid(apply_t *a)
{
    size_t prefix = strlen(SCEP_TEMPLATE_SID_PREFIX);
    int i;

    for (i = 0; a->t->sid && i < a->out->sans->nelts; i++) {
        const scep_template_name_t *n = &APR_ARRAY_IDX(a->out->sans, i, scep_template_name_t);

        /* a URI's scheme has no case: TAG:… is the same SID to whoever reads it */
        if (n->field != GEN_URI
            || strncasecmp(n->value, SCEP_TEMPLATE_SID_PREFIX, prefix) != 0) {
            continue;
        }
        if (!sid_is_wellformed(n->value + prefix)) {
            *a->why = apr_psprintf(a->p, "the SID URI %s names no SID (template %s)",
                                   scep_csr_shown(a->p, n->value), a->t->name);
            return 0;
        }
        if (a->out->sid) {
            *a->why = apr_psprintf(a->p, "the certificate would name two SIDs (template %s)",
                                   a->t->name);
            return 0;
        }
        a->out->sid = n->value + prefix;
    }
    return 1;
}

static const char *san_what(apr_pool_t *p, const scep_csr_san_t *san)
{
    if (san->upn) {
        return apr_psprintf(p, "the subjectAltName %s", san->shown);
    }
    return apr_psprintf(p, "the subjectAltName %s %s", scep_csr_san_type_name(san->type),
                        san->shown);
}

apr_status_t scep_template_apply(apr_pool_t *p, const scep_template_t *t,
                                 const scep_csr_t *csr, const scep_identity_t *identity,
                                 int strict, scep_template_result_t *out, const char **why)
{
    apply_t a;
    int i, ok = 1;

    memset(out, 0, sizeof(*out));
    out->subject = apr_array_make(p, 4, sizeof(scep_template_name_t));
    out->sans = apr_array_make(p, 4, sizeof(scep_template_name_t));
    out->dropped = apr_array_make(p, 0, sizeof(const char *));
    *why = NULL;
    if (!csr->subject_rdns || !csr->sans || !csr->requested) {
        *why = "a request that was not read in full";
        return APR_EINVAL;
    }
    a.p = p;
    a.t = t;
    a.identity = identity;
    a.strict = strict;
    a.out = out;
    a.why = why;
    a.subject_taken = apr_pcalloc(p, sizeof(rule_values_t)
                                     * (apr_size_t)(t->subject->nelts + 1));
    a.san_taken = apr_pcalloc(p, sizeof(rule_values_t) * (apr_size_t)(t->sans->nelts + 1));

    ok = judge_extensions(&a, csr);
    for (i = 0; ok && i < csr->subject_rdns->nelts; i++) {
        const scep_csr_rdn_t *rdn = &APR_ARRAY_IDX(csr->subject_rdns, i, scep_csr_rdn_t);

        ok = take_request_value(&a, 0, rdn->type.nid, rdn->value,
                                apr_psprintf(p, "the subject attribute %s=%s", rdn->type.name,
                                             rdn->shown));
    }
    for (i = 0; ok && i < csr->sans->nelts; i++) {
        const scep_csr_san_t *san = &APR_ARRAY_IDX(csr->sans, i, scep_csr_san_t);
        int field = san->upn ? SCEP_TEMPLATE_SAN_UPN
                    : san->type == GEN_OTHERNAME ? -1 : san->type;

        ok = take_request_value(&a, 1, field, san->value, san_what(p, san));
    }
    ok = ok && emit_rules(&a, 0) && emit_rules(&a, 1) && find_sid(&a);
    if (ok && out->subject->nelts == 0 && out->sans->nelts == 0) {
        *why = apr_psprintf(p, "the certificate would name nobody (template %s)", t->name);
        ok = 0;
    }
    return ok ? APR_SUCCESS : APR_EINVAL;
}

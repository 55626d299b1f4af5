/* SPDX-License-Identifier: Apache-2.0 */
/* Certificate templates: what a certificate of an endpoint holds, as plain data prepared
 * at configuration time (ScepTemplate*), and the per-request decision of which names go
 * into the certificate, which are dropped and which refuse the request.  Nothing here
 * parses configuration per request or builds X.509: scep_issue writes what this decides,
 * and scep_policy's forward check refuses what it would drop. */
#ifndef SCEP_TEMPLATE_H
#define SCEP_TEMPLATE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_errno.h>

#include "scep_csr.h"
#include "scep_profile.h"

/* Where a value of a template rule comes from. */
typedef enum scep_template_source_e {
    SCEP_TEMPLATE_FROM_REQUEST = 0,    /* the request's own values, each checked */
    SCEP_TEMPLATE_FROM_IDENTITY,       /* the authorised identity (scep_identity_t) */
    SCEP_TEMPLATE_FROM_VALIDATOR,      /* scep_identity_t.supplied, by the field's name */
    SCEP_TEMPLATE_FROM_FIXED           /* a value written in the configuration */
} scep_template_source_e;

/* What becomes of a name, an extension or a value no rule takes. */
typedef enum scep_template_unlisted_e {
    SCEP_TEMPLATE_REFUSE = 0,          /* FAILURE badRequest naming it */
    SCEP_TEMPLATE_DROP                 /* left out, with an info log line naming it */
} scep_template_unlisted_e;

/* The two templates that give the certificates of ScepSubject csr and cn: they copy the
 * request's subject (or its CN) and its SAN extension as they are. */
typedef enum scep_template_copy_e {
    SCEP_TEMPLATE_RULES = 0,           /* the rules decide */
    SCEP_TEMPLATE_COPY_CSR,            /* ScepTemplate csr = ScepSubject csr */
    SCEP_TEMPLATE_COPY_CN              /* ScepTemplate cn  = ScepSubject cn */
} scep_template_copy_e;

/* The SAN types a rule may name, beside GEN_DNS, GEN_IPADD, GEN_EMAIL and GEN_URI
 * (openssl/x509v3.h): the Microsoft UPN otherName has a number of its own. */
#define SCEP_TEMPLATE_SAN_UPN 100

/* The URI prefix of the Windows SID that Intune puts in requests (KB5014754). */
#define SCEP_TEMPLATE_SID_PREFIX "tag:microsoft.com,2022-09-14:sid:"

/* One subject attribute or SAN type of a template. */
typedef struct scep_template_rule_t {
    int field;                         /* subject: the NID; SAN: GEN_* or _SAN_UPN */
    const char *field_name;            /* as the directive and a validator name it */
    scep_template_source_e source;
    const char *fixed;                 /* FROM_FIXED: the value */
    const char *prefix;                /* FROM_REQUEST: only values starting with it */
    int max;                           /* FROM_REQUEST: how many the request may carry */
} scep_template_rule_t;

typedef struct scep_template_t {
    const char *name;                  /* the preset, or "custom", for log lines */
    scep_template_copy_e copy;
    scep_template_unlisted_e unlisted;
    int sid;                           /* the SID security extension from a kept SID URI */
    apr_array_header_t *subject;       /* scep_template_rule_t, in certificate order */
    apr_array_header_t *sans;          /* scep_template_rule_t */
    /* configuration time only: the section wrote its own rules, which a preset named in
     * the same section (before or after them) leaves alone */
    int own_subject, own_sans, preset_given;
} scep_template_t;

/* One name the certificate gets. */
typedef struct scep_template_name_t {
    int field;                         /* NID, or GEN_* / SCEP_TEMPLATE_SAN_UPN */
    const char *value;                 /* UTF-8, checked */
} scep_template_name_t;

/* The decision for one request. */
typedef struct scep_template_result_t {
    apr_array_header_t *subject;       /* scep_template_name_t, in order */
    apr_array_header_t *sans;          /* scep_template_name_t */
    const char *sid;                   /* the SID for 1.3.6.1.4.1.311.25.2, or NULL */
    apr_array_header_t *dropped;       /* const char *, each what was left out and why,
                                        * values escaped for logs */
} scep_template_result_t;

/* ScepSubject's templates (csr, cn), shared and never freed. */
const scep_template_t *scep_template_builtin(int subject_mode);
/* The template of a device or user identity where none is configured: the identity where
 * the endpoint says requests carry it, nothing else (the rest is dropped and noted). */
const scep_template_t *scep_template_identity_only(void);

/* ---- configuration (each returns NULL or an error sentence) --------------------------- */

scep_template_t *scep_template_new(apr_pool_t *p);
/* A preset by name; *key_usage and *eku (words for scep_profile_set_eku, NULL-terminated)
 * receive its usages, or 0 and NULL for csr and cn, which keep the profile's. */
const char *scep_template_preset(scep_template_t *t, const char *preset,
                                 unsigned int *key_usage, const char *const **eku);
/* ScepTemplateSubject / ScepTemplateSAN: argv[0] the field, argv[1] the source, then
 * `fixed`'s value, or request's count and (SANs) prefix. */
const char *scep_template_add_rule(scep_template_t *t, apr_pool_t *p, int is_san,
                                   int argc, const char *const *argv);
const char *scep_template_set_unlisted(scep_template_t *t, const char *word);

/* ---- per request ------------------------------------------------------------------ */

/* Decides the names of the certificate for `csr` and the authorised `identity` (NULL: a
 * static challenge, nobody authorised).  APR_EINVAL with *why (values escaped) when the
 * template refuses the request, or when it would name nobody.  `strict`: whatever would be
 * dropped refuses instead (a forwarding gateway, whose upstream certifies the request as
 * it is). */
apr_status_t scep_template_apply(apr_pool_t *p, const scep_template_t *t,
                                 const scep_csr_t *csr, const scep_identity_t *identity,
                                 int strict, scep_template_result_t *out, const char **why);

/* Whether a value from a request or a validator may go into a certificate field: valid
 * UTF-8, no control character (C0, DEL, C1) and at most `max` bytes.  NULL, or why not. */
const char *scep_template_value_problem(const char *value, apr_size_t max);

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* What one endpoint is configured to do, as plain data at the bottom of the core: the
 * issuance profile (validity, key usages, subject, limits), the registration settings
 * the policy decides with, and the identity a registration forces into a certificate.
 * Prepared at configuration time so that nothing in it is parsed per request; every
 * unit above reads it, none below needs it. */
#ifndef SCEP_PROFILE_H
#define SCEP_PROFILE_H

#include <apr_pools.h>
#include <apr_tables.h>

/* What a registration (or a minted challenge) is for: ScepIdentity names the kind an
 * endpoint enrolls and where its requests carry it. */
typedef enum scep_identity_kind_e {
    SCEP_IDENTITY_HOST = 0,            /* a host name (and addresses): the rules of old */
    SCEP_IDENTITY_DEVICE_NAME,         /* UTF-8 text kept exactly ("John's iPhone") */
    SCEP_IDENTITY_DEVICE_ID,           /* a serial number, UDID or MAC address */
    SCEP_IDENTITY_USER                 /* an e-mail address or a UPN */
} scep_identity_kind_e;

/* Where a request carries the identity. */
typedef enum scep_identity_where_e {
    SCEP_WHERE_HOST_RULES = 0,         /* dNSName, else unstructuredName, else a host CN */
    SCEP_WHERE_CN,
    SCEP_WHERE_SERIAL_NUMBER,          /* the subject's serialNumber attribute */
    SCEP_WHERE_RFC822_NAME,
    SCEP_WHERE_UPN,                    /* the Microsoft UPN otherName */
    SCEP_WHERE_DNS_NAME,
    SCEP_WHERE_UNSTRUCTURED_NAME
} scep_identity_where_e;

/* The registration settings of one endpoint (plain data, configuration pool). */
typedef struct scep_policy_conf_t {
    const char *profile_name;          /* NULL: registrations naming a profile are refused */
    int check_client_address;          /* a registered IP may match the client address */
    int lockout_failures;              /* 0 = no lockout */
    apr_int64_t lockout_seconds;
    /* A wildcard's challenge is one secret for every name it covers: the failures of all
     * its names together lock it after this many (ScepLockout's third number). */
    int lockout_shared_failures;
    /* How long a transactionID stays bound to its request.  Clients derive it from the
     * key (RFC 8894 recommends a hash of it), so after this a new request with the same
     * key starts a new transaction instead of being refused forever. */
    apr_int64_t transaction_window;
    /* Renewal: a request signed with a certificate this server issued. */
    apr_int64_t renewal_grace;         /* seconds after notAfter it still renews */
    int renewal_challenge;             /* also require the registration's challenge */
    int renewal_revokes_old;           /* revoke the superseded certificate */
    /* Manual approval: first enrollments wait for an operator (scepreg -Y/-N). */
    int require_approval;              /* every first enrollment here; else per device */
    apr_int64_t pending_timeout;       /* seconds a request waits before it expires */
    scep_identity_kind_e identity_kind; /* ScepIdentity: what this endpoint enrolls */
    scep_identity_where_e identity_where; /* and where its requests carry it */
} scep_policy_conf_t;

#define SCEP_TRANSACTION_WINDOW_DEFAULT (7 * 24 * 3600)
#define SCEP_LOCKOUT_SHARED_FACTOR 10  /* default lockout_shared_failures per failures */
#define SCEP_PENDING_TIMEOUT_DEFAULT (7 * 24 * 3600)


/* One name a validation webhook supplies for the certificate template: the subject
 * attribute or SAN type by its template name ("CN", "rfc822Name", "URI", …). */
typedef struct scep_identity_value_t {
    const char *field;
    const char *value;
} scep_identity_value_t;

/* The names a certificate is issued for when a registration forces them. */
typedef struct scep_identity_t {
    scep_identity_kind_e kind;
    const char *fqdn;                  /* hosts: the canonical FQDN; other kinds: the
                                        * registration key of the identity (scep_name.h) */
    const char *name;                  /* other kinds: the identity as the request carries
                                        * it at `where`; NULL for hosts */
    scep_identity_where_e where;
    apr_array_header_t *ips;           /* const char *, canonical */
    const char *serial_number;         /* subject serialNumber, NULL = none */
    apr_array_header_t *supplied;      /* scep_identity_value_t from a validator, or NULL */
} scep_identity_t;

#define SCEP_CRL_VALIDITY_DEFAULT (7 * 24 * 3600)

#define SCEP_SUBJECT_FROM_CSR 0
#define SCEP_SUBJECT_CN_ONLY  1

/* Key usage bits, as in the keyUsage BIT STRING (RFC 5280 4.2.1.3). */
#define SCEP_KU_DIGITAL_SIGNATURE 0x80
#define SCEP_KU_NON_REPUDIATION   0x40
#define SCEP_KU_KEY_ENCIPHERMENT  0x20
#define SCEP_KU_DATA_ENCIPHERMENT 0x10
#define SCEP_KU_KEY_AGREEMENT     0x08

/* Issuance and admission policy of one endpoint: plain data, prepared at configuration
 * time so that nothing in it is parsed per request.  Owned by the configuration pool. */
typedef struct scep_profile_t {
    int validity_days;
    unsigned int key_usage;            /* SCEP_KU_* bits; 0 = no keyUsage extension */
    const unsigned char *eku_der;      /* DER ExtKeyUsageSyntax, NULL = no extension */
    apr_size_t eku_der_len;
    int subject_mode;                  /* SCEP_SUBJECT_* */
    int min_key_bits;
    int legacy_algorithms;             /* accept MD5 and single DES */
    int failure_detail;                /* refusals carry the log's reason to the client */
    const unsigned char *challenge_sha256; /* NULL = no static challenge configured */
    int allow_no_challenge;
    apr_size_t max_message_size;
    scep_policy_conf_t registrations;  /* used where a device database is configured */
    apr_int64_t crl_validity;          /* seconds from a CRL's thisUpdate to nextUpdate */
    const unsigned char *cdp_der;      /* DER CRLDistributionPoints for issued certificates */
    apr_size_t cdp_der_len;
    struct scep_upstream_t *upstream;  /* set: an upstream CA issues (scep_forward.h) */
    const struct scep_template_t *template_; /* ScepTemplate*: what certificates hold
                                        * (scep_template.h); NULL = ScepSubject's rules */
    const struct scep_hook_conf_t *validator; /* ScepValidate*: asked before issuing
                                        * (scep_webhook.h); NULL = none */
    const struct scep_hook_conf_t *notifier;  /* ScepNotify*: told of issued, refused and
                                        * revoked certificates; NULL = none */
} scep_profile_t;

/* Fills a profile with the documented defaults (no challenge, clientAuth EKU, …). */
void scep_profile_defaults(scep_profile_t *profile, apr_pool_t *p);

/* The settings a configuration section may set, one bit each.  A section keeps the bits
 * of what it set itself: the rest comes from the enclosing sections, then the defaults. */
enum {
    SCEP_PROFILE_SET_VALIDITY = 1 << 0, SCEP_PROFILE_SET_KEY_USAGE = 1 << 1,
    SCEP_PROFILE_SET_EKU = 1 << 2, SCEP_PROFILE_SET_SUBJECT = 1 << 3,
    SCEP_PROFILE_SET_MIN_KEY = 1 << 4, SCEP_PROFILE_SET_LEGACY = 1 << 5,
    SCEP_PROFILE_SET_CHALLENGE = 1 << 6, SCEP_PROFILE_SET_NO_CHALLENGE = 1 << 7,
    SCEP_PROFILE_SET_MAX_MESSAGE = 1 << 8, SCEP_PROFILE_SET_PROFILE_NAME = 1 << 9,
    SCEP_PROFILE_SET_CHECK_ADDRESS = 1 << 10, SCEP_PROFILE_SET_LOCKOUT = 1 << 11,
    SCEP_PROFILE_SET_TXN_WINDOW = 1 << 12, SCEP_PROFILE_SET_RENEWAL_GRACE = 1 << 13,
    SCEP_PROFILE_SET_RENEWAL_CHALLENGE = 1 << 14, SCEP_PROFILE_SET_RENEWAL_REVOKE = 1 << 15,
    SCEP_PROFILE_SET_CRL_VALIDITY = 1 << 16, SCEP_PROFILE_SET_CDP = 1 << 17,
    SCEP_PROFILE_SET_APPROVAL = 1 << 18, SCEP_PROFILE_SET_PENDING_TIMEOUT = 1 << 19,
    SCEP_PROFILE_SET_FAILURE_DETAIL = 1 << 20, SCEP_PROFILE_SET_IDENTITY = 1 << 21,
    SCEP_PROFILE_SET_TEMPLATE = 1 << 22, SCEP_PROFILE_SET_VALIDATOR = 1 << 23,
    SCEP_PROFILE_SET_NOTIFIER = 1 << 24
};

/* One member of scep_profile_t (a nested registrations.* member by its own offset) and
 * the setting that fills it.  Every member has a row, so a new setting is one row here
 * and its directive; test_profile fails when a member has none. */
typedef struct scep_profile_setting_t {
    unsigned int set;                  /* SCEP_PROFILE_SET_*; 0 = no setting fills it */
    apr_size_t offset;
    apr_size_t size;
    const char *member;                /* its name, for the test's messages */
} scep_profile_setting_t;

/* The table of every member; *count receives its length. */
const scep_profile_setting_t *scep_profile_settings(apr_size_t *count);
/* The first row whose setting is `set` (the one member of a flag or a number). */
const scep_profile_setting_t *scep_profile_setting(unsigned int set);
/* Copies into `to` each member of `from` whose setting is among the bits of `set`: a
 * section's own settings over what it inherits, or over the defaults. */
void scep_profile_copy_set(scep_profile_t *to, const scep_profile_t *from, unsigned int set);

/* Configuration helpers: each returns NULL on success or an error sentence. */
const char *scep_profile_key_usage_bit(const char *word, unsigned int *bit);
const char *scep_profile_set_eku(scep_profile_t *profile, apr_pool_t *p,
                                 int count, const char *const *words);
void scep_profile_set_challenge(scep_profile_t *profile, apr_pool_t *p, const char *challenge);
/* The CRL distribution point URLs (http, https or ldap) issued certificates name. */
const char *scep_profile_set_crl_urls(scep_profile_t *profile, apr_pool_t *p,
                                      int count, const char *const *urls);

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* The profile's defaults, the table of its settings (what merging and the defaults copy),
 * and the helpers that turn directive words into its prepared form (DER extensions, a
 * digest of the static challenge), once, at configuration time. */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "scep_profile.h"

void scep_profile_defaults(scep_profile_t *profile, apr_pool_t *p)
{
    static const char *const client_auth[] = { "clientAuth" };

    memset(profile, 0, sizeof(*profile));
    profile->validity_days = 365;
    profile->key_usage = SCEP_KU_DIGITAL_SIGNATURE | SCEP_KU_KEY_ENCIPHERMENT;
    profile->subject_mode = SCEP_SUBJECT_FROM_CSR;
    profile->min_key_bits = 2048;
    profile->max_message_size = 128 * 1024;
    profile->registrations.lockout_failures = 5;
    profile->registrations.lockout_seconds = 15 * 60;
    profile->registrations.lockout_shared_failures = 5 * SCEP_LOCKOUT_SHARED_FACTOR;
    profile->registrations.transaction_window = SCEP_TRANSACTION_WINDOW_DEFAULT;
    profile->registrations.renewal_grace = 0;
    profile->crl_validity = SCEP_CRL_VALIDITY_DEFAULT;
    profile->registrations.pending_timeout = SCEP_PENDING_TIMEOUT_DEFAULT;
    scep_profile_set_eku(profile, p, 1, client_auth);
}

#define SETTING(bit, member) \
    { bit, offsetof(scep_profile_t, member), sizeof(((scep_profile_t *)NULL)->member), #member }

static const scep_profile_setting_t settings[] = {
    SETTING(SCEP_PROFILE_SET_VALIDITY, validity_days),
    SETTING(SCEP_PROFILE_SET_KEY_USAGE, key_usage),
    /* ScepExtendedKeyUsage None sets both to NULL/0: set, it still overrides clientAuth */
    SETTING(SCEP_PROFILE_SET_EKU, eku_der),
    SETTING(SCEP_PROFILE_SET_EKU, eku_der_len),
    SETTING(SCEP_PROFILE_SET_SUBJECT, subject_mode),
    SETTING(SCEP_PROFILE_SET_MIN_KEY, min_key_bits),
    SETTING(SCEP_PROFILE_SET_LEGACY, legacy_algorithms),
    SETTING(SCEP_PROFILE_SET_FAILURE_DETAIL, failure_detail),
    SETTING(SCEP_PROFILE_SET_CHALLENGE, challenge_sha256),
    SETTING(SCEP_PROFILE_SET_NO_CHALLENGE, allow_no_challenge),
    SETTING(SCEP_PROFILE_SET_MAX_MESSAGE, max_message_size),
    SETTING(SCEP_PROFILE_SET_PROFILE_NAME, registrations.profile_name),
    SETTING(SCEP_PROFILE_SET_CHECK_ADDRESS, registrations.check_client_address),
    SETTING(SCEP_PROFILE_SET_LOCKOUT, registrations.lockout_failures),
    SETTING(SCEP_PROFILE_SET_LOCKOUT, registrations.lockout_seconds),
    SETTING(SCEP_PROFILE_SET_LOCKOUT, registrations.lockout_shared_failures),
    SETTING(SCEP_PROFILE_SET_TXN_WINDOW, registrations.transaction_window),
    SETTING(SCEP_PROFILE_SET_RENEWAL_GRACE, registrations.renewal_grace),
    SETTING(SCEP_PROFILE_SET_RENEWAL_CHALLENGE, registrations.renewal_challenge),
    SETTING(SCEP_PROFILE_SET_RENEWAL_REVOKE, registrations.renewal_revokes_old),
    SETTING(SCEP_PROFILE_SET_APPROVAL, registrations.require_approval),
    SETTING(SCEP_PROFILE_SET_PENDING_TIMEOUT, registrations.pending_timeout),
    SETTING(SCEP_PROFILE_SET_IDENTITY, registrations.identity_kind),
    SETTING(SCEP_PROFILE_SET_IDENTITY, registrations.identity_where),
    SETTING(SCEP_PROFILE_SET_CRL_VALIDITY, crl_validity),
    SETTING(SCEP_PROFILE_SET_CDP, cdp_der),
    SETTING(SCEP_PROFILE_SET_CDP, cdp_der_len),
    /* Not a directive's: the glue fills it per child from the section's ScepUpstreamURL,
     * so neither merging nor the defaults copy it.  Sized as any pointer: clang-tidy reads
     * the size of a pointer to a struct as a slip for the struct's. */
    { 0, offsetof(scep_profile_t, upstream), sizeof(void *), "upstream" },
    { SCEP_PROFILE_SET_TEMPLATE, offsetof(scep_profile_t, template_), sizeof(void *),
      "template_" },
    { SCEP_PROFILE_SET_VALIDATOR, offsetof(scep_profile_t, validator), sizeof(void *),
      "validator" },
    { SCEP_PROFILE_SET_NOTIFIER, offsetof(scep_profile_t, notifier), sizeof(void *),
      "notifier" },
};
#undef SETTING

const scep_profile_setting_t *scep_profile_settings(apr_size_t *count)
{
    *count = sizeof(settings) / sizeof(settings[0]);
    return settings;
}

const scep_profile_setting_t *scep_profile_setting(unsigned int set)
{
    size_t i;

    for (i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
        if (settings[i].set == set) {
            return &settings[i];
        }
    }
    return NULL;
}

void scep_profile_copy_set(scep_profile_t *to, const scep_profile_t *from, unsigned int set)
{
    size_t i;

    for (i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
        if (settings[i].set & set) {
            memcpy((char *)to + settings[i].offset, (const char *)from + settings[i].offset,
                   settings[i].size);
        }
    }
}

const char *scep_profile_key_usage_bit(const char *word, unsigned int *bit)
{
    static const struct { const char *name; unsigned int bit; } usages[] = {
        { "digitalSignature", SCEP_KU_DIGITAL_SIGNATURE },
        { "nonRepudiation", SCEP_KU_NON_REPUDIATION },
        { "contentCommitment", SCEP_KU_NON_REPUDIATION },
        { "keyEncipherment", SCEP_KU_KEY_ENCIPHERMENT },
        { "dataEncipherment", SCEP_KU_DATA_ENCIPHERMENT },
        { "keyAgreement", SCEP_KU_KEY_AGREEMENT },
    };
    size_t i;

    for (i = 0; i < sizeof(usages) / sizeof(usages[0]); i++) {
        if (strcasecmp(word, usages[i].name) == 0) {
            *bit = usages[i].bit;
            return NULL;
        }
    }
    return "unknown key usage (digitalSignature, nonRepudiation, keyEncipherment, "
           "dataEncipherment or keyAgreement)";
}

const char *scep_profile_set_eku(scep_profile_t *profile, apr_pool_t *p,
                                 int count, const char *const *words)
{
    EXTENDED_KEY_USAGE *eku;
    unsigned char *der = NULL;
    const char *err = NULL;
    int i, len;

    if (count == 1 && strcasecmp(words[0], "none") == 0) {
        profile->eku_der = NULL;
        profile->eku_der_len = 0;
        return NULL;
    }
    if (!(eku = sk_ASN1_OBJECT_new_null())) {
        return "out of memory";
    }
    for (i = 0; i < count && !err; i++) {
        /* Short names (clientAuth, serverAuth, ipsecIKE, …) or dotted OIDs. */
        ASN1_OBJECT *oid = OBJ_txt2obj(words[i], 0);

        if (!oid) {
            err = apr_psprintf(p, "'%s' is neither a known extended key usage name "
                               "(clientAuth, serverAuth, ipsecIKE, emailProtection, "
                               "codeSigning, …) nor a dotted OID", words[i]);
        }
        else if (!sk_ASN1_OBJECT_push(eku, oid)) {
            ASN1_OBJECT_free(oid);
            err = "out of memory";
        }
    }
    if (!err && (len = i2d_EXTENDED_KEY_USAGE(eku, &der)) > 0) {
        profile->eku_der = apr_pmemdup(p, der, (apr_size_t)len);
        profile->eku_der_len = (apr_size_t)len;
    }
    else if (!err) {
        err = "cannot encode the extended key usage";
    }
    OPENSSL_free(der);
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    ERR_clear_error();
    return err;
}

void scep_profile_set_challenge(scep_profile_t *profile, apr_pool_t *p, const char *challenge)
{
    unsigned char *digest = apr_palloc(p, 32);
    unsigned int len = 32;

    EVP_Digest(challenge, strlen(challenge), digest, &len, EVP_sha256(), NULL);
    profile->challenge_sha256 = digest;
}

const char *scep_profile_set_crl_urls(scep_profile_t *profile, apr_pool_t *p,
                                      int count, const char *const *urls)
{
    CRL_DIST_POINTS *cdp = sk_DIST_POINT_new_null();
    unsigned char *der = NULL;
    const char *err = NULL;
    int i, len;

    if (!cdp) {
        return "out of memory";
    }
    for (i = 0; i < count && !err; i++) {
        DIST_POINT *dp = NULL;
        GENERAL_NAME *gn = NULL;
        ASN1_IA5STRING *uri = NULL;
        const char *u = urls[i];
        apr_size_t n = strlen(u), k;

        if (strncasecmp(u, "http://", 7) != 0 && strncasecmp(u, "https://", 8) != 0
            && strncasecmp(u, "ldap://", 7) != 0) {
            err = apr_psprintf(p, "'%s' is not an http://, https:// or ldap:// URL", u);
            break;
        }
        for (k = 0; k < n; k++) {
            if ((unsigned char)u[k] <= 0x20 || (unsigned char)u[k] >= 0x7f) {
                err = apr_psprintf(p, "the URL '%s' holds spaces or non-ASCII characters "
                                   "(percent-encode them)", u);
            }
        }
        if (err) {
            break;
        }
        if (!(dp = DIST_POINT_new()) || !(dp->distpoint = DIST_POINT_NAME_new())
            || !(dp->distpoint->name.fullname = GENERAL_NAMES_new())
            || !(gn = GENERAL_NAME_new()) || !(uri = ASN1_IA5STRING_new())
            || !ASN1_STRING_set(uri, u, (int)n)) {
            err = "out of memory";
        }
        else {
            dp->distpoint->type = 0;            /* fullName */
            GENERAL_NAME_set0_value(gn, GEN_URI, uri);
            uri = NULL;
            if (!sk_GENERAL_NAME_push(dp->distpoint->name.fullname, gn)) {
                err = "out of memory";
            }
            else {
                gn = NULL;
                if (!sk_DIST_POINT_push(cdp, dp)) {
                    err = "out of memory";
                }
                else {
                    dp = NULL;
                }
            }
        }
        ASN1_IA5STRING_free(uri);
        GENERAL_NAME_free(gn);
        DIST_POINT_free(dp);
    }
    if (!err && (len = i2d_CRL_DIST_POINTS(cdp, &der)) > 0) {
        profile->cdp_der = apr_pmemdup(p, der, (apr_size_t)len);
        profile->cdp_der_len = (apr_size_t)len;
    }
    else if (!err) {
        err = "cannot encode the CRL distribution points";
    }
    OPENSSL_free(der);
    sk_DIST_POINT_pop_free(cdp, DIST_POINT_free);
    ERR_clear_error();
    return err;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Enrollment authorization against the device registrations (see scep_policy.h).
 *
 * The read that decides and the write that records are separate transactions so that
 * no certificate is signed while LMDB's write lock is held; scep_policy_record therefore
 * re-checks everything another request could have changed in between. */
#include <pthread.h>
#include <string.h>

#include <apr_strings.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "scep_policy.h"
#include "scep_name.h"

/* The one exit of a write transaction: what the steps wrote is committed when they all
 * succeeded (the commit still returns the first error the transaction met), else thrown
 * away and the failing step's status returned.  A step may fail without the database
 * knowing (a record that does not encode, no random bytes), so its status counts. */
static apr_status_t end_write(scep_txn_t *txn, apr_status_t rv)
{
    if (rv == APR_SUCCESS) {
        return scep_db_commit(txn);
    }
    scep_db_abort(txn);
    return rv;
}

const char *scep_policy_requested_name(apr_pool_t *p, const scep_csr_t *csr)
{
    const char *name;

    if (csr->dns_names && csr->dns_names->nelts > 0
        && (name = scep_name_fqdn(p, APR_ARRAY_IDX(csr->dns_names, 0, const char *), 0))) {
        return name;
    }
    if (csr->unstructured_name && (name = scep_name_fqdn(p, csr->unstructured_name, 0))) {
        return name;
    }
    if (csr->common_name && (name = scep_name_fqdn(p, csr->common_name, 0))) {
        return name;
    }
    return NULL;
}

const char *scep_policy_where_name(scep_identity_where_e where)
{
    static const char *const names[] = {
        [SCEP_WHERE_HOST_RULES] = "host name", [SCEP_WHERE_CN] = "CN",
        [SCEP_WHERE_SERIAL_NUMBER] = "serialNumber", [SCEP_WHERE_RFC822_NAME] = "rfc822Name",
        [SCEP_WHERE_UPN] = "UPN otherName", [SCEP_WHERE_DNS_NAME] = "dNSName",
        [SCEP_WHERE_UNSTRUCTURED_NAME] = "unstructuredName"
    };

    return (unsigned int)where < sizeof(names) / sizeof(names[0]) ? names[where] : "?";
}

/* The values a request carries at `where`: each readable one in *value (the last),
 * *count of them all, *unreadable of those that cannot be read. */
typedef struct found_t {
    int count;
    int unreadable;
    const char *value;
} found_t;

static void found_one(found_t *f, const char *value)
{
    f->count++;
    if (value) {
        f->value = value;
    }
    else {
        f->unreadable++;
    }
}

static int rdn_nid_of(scep_identity_where_e where)
{
    switch (where) {
    case SCEP_WHERE_CN:
        return NID_commonName;
    case SCEP_WHERE_SERIAL_NUMBER:
        return NID_serialNumber;
    case SCEP_WHERE_UNSTRUCTURED_NAME:
        return NID_pkcs9_unstructuredName;
    default:
        return NID_undef;
    }
}

static int san_is_at(const scep_csr_san_t *san, scep_identity_where_e where)
{
    const char *upn_text = OBJ_nid2sn(NID_ms_upn);

    switch (where) {
    case SCEP_WHERE_RFC822_NAME:
        return san->type == GEN_EMAIL;
    case SCEP_WHERE_DNS_NAME:
        return san->type == GEN_DNS;
    case SCEP_WHERE_UPN:
        /* a UPN otherName of another string type is a UPN that cannot be read */
        return san->type == GEN_OTHERNAME
               && (san->upn || (san->shown && upn_text
                                && strncmp(san->shown, upn_text, strlen(upn_text)) == 0
                                && (san->shown[strlen(upn_text)] == '\0'
                                    || san->shown[strlen(upn_text)] == ' ')));
    default:
        return 0;
    }
}

/* Every value at `where`, the complete view's when the parse made one (a hand-made
 * request in a test has only the fields for the common case). */
static void find_at(const scep_csr_t *csr, scep_identity_where_e where, found_t *f)
{
    int nid = rdn_nid_of(where), i;

    memset(f, 0, sizeof(*f));
    if (nid != NID_undef && csr->subject_rdns) {
        for (i = 0; i < csr->subject_rdns->nelts; i++) {
            const scep_csr_rdn_t *rdn = &APR_ARRAY_IDX(csr->subject_rdns, i, scep_csr_rdn_t);

            if (rdn->type.nid == nid) {
                found_one(f, rdn->value);
            }
        }
    }
    else if (where == SCEP_WHERE_CN && csr->common_name) {
        found_one(f, csr->common_name);
    }
    else if (where == SCEP_WHERE_SERIAL_NUMBER && csr->serial_number) {
        found_one(f, csr->serial_number);
    }
    for (i = 0; csr->sans && i < csr->sans->nelts; i++) {
        const scep_csr_san_t *san = &APR_ARRAY_IDX(csr->sans, i, scep_csr_san_t);

        if (san_is_at(san, where)) {
            found_one(f, san->value);
        }
    }
    if (!csr->sans && where == SCEP_WHERE_DNS_NAME) {
        for (i = 0; csr->dns_names && i < csr->dns_names->nelts; i++) {
            found_one(f, APR_ARRAY_IDX(csr->dns_names, i, const char *));
        }
    }
    if (where == SCEP_WHERE_UNSTRUCTURED_NAME) {
        /* Cisco puts it among the request attributes, one value each */
        for (i = 0; csr->attributes && i < csr->attributes->nelts; i++) {
            const scep_csr_attr_t *a = &APR_ARRAY_IDX(csr->attributes, i, scep_csr_attr_t);

            if (a->type.nid == NID_pkcs9_unstructuredName) {
                f->count += a->values;
            }
        }
        if (!csr->subject_rdns && csr->unstructured_name) {
            found_one(f, csr->unstructured_name);
        }
        /* the attribute wins over the subject's entry, as scep_csr reads it */
        f->value = f->count > 0 ? csr->unstructured_name : NULL;
        f->unreadable = f->count > 0 && !f->value;
    }
}

apr_status_t scep_policy_requested_identity(apr_pool_t *p, const scep_policy_conf_t *conf,
                                            const scep_csr_t *csr, const char **key,
                                            const char **name, const char **why)
{
    const char *where = scep_policy_where_name(conf->identity_where);
    const char *kind = scep_name_kind_name(conf->identity_kind);
    const char *problem = NULL;
    found_t f;

    *key = NULL;
    *name = NULL;
    if (conf->identity_kind == SCEP_IDENTITY_HOST) {
        *key = scep_policy_requested_name(p, csr);
        return APR_SUCCESS;
    }
    find_at(csr, conf->identity_where, &f);
    if (f.count == 0) {
        *why = apr_psprintf(p, "SCEP00600: the request carries no %s, where this endpoint "
                            "reads the %s", where, kind);
        return SCEP_POLICY_DENIED;
    }
    if (f.count > 1) {
        *why = apr_psprintf(p, "SCEP00601: the request carries %d values of %s, where this "
                            "endpoint reads one %s: a second identity is refused", f.count,
                            where, kind);
        return SCEP_POLICY_DENIED;
    }
    if (f.unreadable) {
        *why = apr_psprintf(p, "SCEP00602: the %s of the request cannot be read (not a "
                            "string, a NUL byte in it, or over 1024 bytes)", where);
        return SCEP_POLICY_DENIED;
    }
    if (!(*key = scep_name_identity_key(p, conf->identity_kind, f.value, 0, &problem))) {
        *why = apr_psprintf(p, "SCEP00603: the %s '%s' is no acceptable %s: %s", where,
                            scep_csr_shown(p, f.value), kind, problem);
        return SCEP_POLICY_DENIED;
    }
    *name = f.value;
    return APR_SUCCESS;
}

static int ip_matches(apr_pool_t *p, const apr_array_header_t *registered, const char *text)
{
    const char *ip = text ? scep_name_ip(p, text) : NULL;
    int i;

    for (i = 0; ip && i < registered->nelts; i++) {
        if (strcmp(APR_ARRAY_IDX(registered, i, const char *), ip) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Whether the request shows one of the registered addresses: in unstructuredAddress,
 * in an iPAddress SAN, or (when the endpoint allows it) as the client address, which
 * mod_remoteip has already corrected behind a reverse proxy. */
static int address_matches(apr_pool_t *p, const scep_policy_conf_t *conf,
                           const scep_device_t *dev, const scep_csr_t *csr,
                           const char *client_ip)
{
    int i;

    if (ip_matches(p, dev->ips, csr->unstructured_address)) {
        return 1;
    }
    for (i = 0; csr->ip_addresses && i < csr->ip_addresses->nelts; i++) {
        if (ip_matches(p, dev->ips, APR_ARRAY_IDX(csr->ip_addresses, i, const char *))) {
            return 1;
        }
    }
    return conf->check_client_address && ip_matches(p, dev->ips, client_ip);
}

static const char *request_addresses(apr_pool_t *p, const scep_csr_t *csr)
{
    const char *list = scep_csr_shown(p, csr->unstructured_address);
    int i;

    for (i = 0; csr->ip_addresses && i < csr->ip_addresses->nelts; i++) {
        const char *ip = APR_ARRAY_IDX(csr->ip_addresses, i, const char *);

        list = list ? apr_pstrcat(p, list, ",", ip, NULL) : ip;
    }
    return list ? list : "none";
}

static int profile_allows(const scep_policy_conf_t *conf, const char *wanted)
{
    return !wanted || (conf->profile_name && strcmp(conf->profile_name, wanted) == 0);
}

/* The identity of a grant: what the endpoint enrolls, the key and the value as the
 * request carries it. */
static void grant_identity(scep_grant_t *g, const scep_policy_conf_t *conf, const char *key,
                           const char *name)
{
    g->identity.kind = scep_name_key_kind(key);
    g->identity.fqdn = key;
    g->identity.name = g->identity.kind == SCEP_IDENTITY_HOST ? NULL : name;
    g->identity.where = g->identity.kind == SCEP_IDENTITY_HOST ? SCEP_WHERE_HOST_RULES
                                                               : conf->identity_where;
}

static apr_status_t authorize_minted(apr_pool_t *p, const scep_policy_conf_t *conf,
                                     const scep_csr_t *csr, const scep_minted_t *m,
                                     apr_int64_t now, scep_grant_t **grant,
                                     const char **fqdn, const char *name, const char **why)
{
    scep_grant_t *g;

    if (m->expires <= now) {
        *why = apr_psprintf(p, "the minted challenge expired at %s",
                            SCEP_UTIL_ISO_TIME(m->expires));
        return SCEP_POLICY_DENIED;
    }
    if (!profile_allows(conf, m->profile)) {
        *why = apr_psprintf(p, "the minted challenge is for profile '%s', this endpoint "
                            "serves '%s'", m->profile,
                            conf->profile_name ? conf->profile_name : "(none)");
        return SCEP_POLICY_DENIED;
    }
    if (m->fqdn) {
        if (scep_name_key_kind(m->fqdn) != conf->identity_kind) {
            *why = apr_psprintf(p, "SCEP00604: the minted challenge is bound to %s, a %s; "
                                "this endpoint enrolls a %s", scep_csr_shown(p, m->fqdn),
                                scep_name_kind_name(scep_name_key_kind(m->fqdn)),
                                scep_name_kind_name(conf->identity_kind));
            return SCEP_POLICY_DENIED;
        }
        if (*fqdn && strcmp(*fqdn, m->fqdn) != 0) {
            *why = apr_psprintf(p, "the minted challenge is bound to %s",
                                scep_csr_shown(p, m->fqdn));
            return SCEP_POLICY_DENIED;
        }
        *fqdn = m->fqdn;
    }
    if (!*fqdn) {
        *why = "the request names no host (no dNSName SAN, unstructuredName or host-name CN)";
        return SCEP_POLICY_DENIED;
    }
    g = apr_pcalloc(p, sizeof(*g));
    g->kind = SCEP_GRANT_MINTED;
    g->one_time = 1;
    g->needs_approval = conf->require_approval;
    g->secret = csr->challenge;
    g->secret_len = csr->challenge_len;
    grant_identity(g, conf, *fqdn, name);
    g->identity.ips = apr_array_make(p, 0, sizeof(const char *));
    *grant = g;
    return APR_SUCCESS;
}

/* The checks that do not involve a secret, in the order an operator would look. */
static int name_is(apr_pool_t *p, const char *name, const char *fqdn)
{
    const char *canonical = scep_name_fqdn(p, name, 0);

    return canonical && strcmp(canonical, fqdn) == 0;
}

/* The FQDN itself, or its first label: devices often put their short name in the CN. */
static int name_or_short_name(apr_pool_t *p, const char *name, const char *fqdn)
{
    const char *canonical = scep_name_fqdn(p, name, 0);
    apr_size_t n = canonical ? strlen(canonical) : 0;

    return canonical && (strcmp(canonical, fqdn) == 0
                         || (strncmp(canonical, fqdn, n) == 0 && fqdn[n] == '.'
                             && !strchr(canonical, '.')));
}

static int address_is_one_of(apr_pool_t *p, const char *text, const apr_array_header_t *ips)
{
    const char *ip = scep_name_ip(p, text);
    int i;

    for (i = 0; ip && ips && i < ips->nelts; i++) {
        if (strcmp(ip, APR_ARRAY_IDX(ips, i, const char *)) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ---- what a forwarding gateway passes to its upstream CA --------------------------------
 * The upstream certifies the device's PKCS#10 as it is (the device signed it; nothing
 * can be taken out), so everything in it is checked and anything not known to be
 * harmless refuses the request.  Each check returns SCEP_POLICY_FWD_OK, or the kind of
 * refusal with *what naming the first thing refused. */

/* The informational attributes of Windows requests (MS-WCCE 3.2.1.4.2.1.4.1.1: the CA
 * ignores or only records them).  Not 1.3.6.1.4.1.311.13.2.1 (enrollmentNameValuePair),
 * from which an ADCS CA takes a SAN or a template, nor 1.3.6.1.4.1.311.2.1.14, which
 * carries extensions to add. */
static const char *const informational_attributes[] = {
    "1.3.6.1.4.1.311.13.2.3",          /* szOID_OS_VERSION */
    "1.3.6.1.4.1.311.13.2.2",          /* szOID_ENROLLMENT_CSP_PROVIDER */
    "1.3.6.1.4.1.311.21.20"            /* szOID_REQUEST_CLIENT_INFO */
};

static int attribute_allowed(const scep_csr_attr_t *a)
{
    apr_size_t i;

    switch (a->type.nid) {
    case NID_pkcs9_challengePassword:
    case NID_ext_req:
    case NID_pkcs9_unstructuredName:   /* names: checked below */
    case NID_pkcs9_unstructuredAddress:
    case NID_friendlyName:             /* certmonger names its request; no CA certifies it */
        return 1;
    default:
        break;
    }
    for (i = 0; i < sizeof(informational_attributes) / sizeof(informational_attributes[0]);
         i++) {
        if (strcmp(a->type.dotted, informational_attributes[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static scep_policy_fwd_e check_attributes(apr_pool_t *p, const scep_identity_t *identity,
                                          const scep_csr_t *csr, const char **what)
{
    int i, j;

    for (i = 0; i < csr->attributes->nelts; i++) {
        const scep_csr_attr_t *a = &APR_ARRAY_IDX(csr->attributes, i, scep_csr_attr_t);

        if (!attribute_allowed(a)) {
            *what = apr_psprintf(p, "the request attribute %s", a->type.name);
            return SCEP_POLICY_FWD_NEVER;
        }
        /* the parse reads the first value of the first instance; an upstream may read
         * another */
        if (a->values != 1) {
            *what = apr_psprintf(p, "the request attribute %s with %d values", a->type.name,
                                 a->values);
            return SCEP_POLICY_FWD_NEVER;
        }
        for (j = 0; j < i; j++) {
            if (strcmp(APR_ARRAY_IDX(csr->attributes, j, scep_csr_attr_t).type.dotted,
                       a->type.dotted) == 0) {
                *what = apr_psprintf(p, "the request attribute %s twice", a->type.name);
                return SCEP_POLICY_FWD_NEVER;
            }
        }
    }
    if (csr->unstructured_name
        && !name_or_short_name(p, csr->unstructured_name, identity->fqdn)) {
        *what = apr_psprintf(p, "the unstructuredName %s",
                             scep_csr_shown(p, csr->unstructured_name));
        return SCEP_POLICY_FWD_NAME;
    }
    if (csr->unstructured_address
        && !address_is_one_of(p, csr->unstructured_address, identity->ips)) {
        *what = apr_psprintf(p, "the unstructuredAddress %s",
                             scep_csr_shown(p, csr->unstructured_address));
        return SCEP_POLICY_FWD_NAME;
    }
    return SCEP_POLICY_FWD_OK;
}

/* keyUsage bits a device's certificate may have: signing, key transport and agreement.
 * keyCertSign and cRLSign would make it a CA's; encipherOnly/decipherOnly no client
 * asks for. */
#define KEY_USAGE_ALLOWED (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION | KU_KEY_ENCIPHERMENT \
                           | KU_DATA_ENCIPHERMENT | KU_KEY_AGREEMENT)

static const char *key_usage_name(unsigned long bits)
{
    return (bits & KU_KEY_CERT_SIGN) ? "keyCertSign"
           : (bits & KU_CRL_SIGN) ? "cRLSign"
           : (bits & KU_ENCIPHER_ONLY) ? "encipherOnly"
           : (bits & KU_DECIPHER_ONLY) ? "decipherOnly"
           : "bits beyond decipherOnly";
}

/* extendedKeyUsage purposes for a device: TLS and IPsec peers, S/MIME (MDM profiles
 * offer it).  Not codeSigning, timeStamping, OCSPSigning, smart-card logon or
 * anyExtendedKeyUsage: those let the certificate speak for others. */
static int purpose_allowed(int nid)
{
    switch (nid) {
    case NID_server_auth:
    case NID_client_auth:
    case NID_email_protect:
    case NID_ipsec_IKE:
    case NID_ipsecEndSystem:
    case NID_ipsecTunnel:
    case NID_ipsecUser:
        return 1;
    default:
        return 0;
    }
}

static scep_policy_fwd_e check_extensions(apr_pool_t *p, const scep_csr_t *csr,
                                          const char **what)
{
    int i, j;

    for (i = 0; i < csr->requested->nelts; i++) {
        const scep_csr_ext_t *x = &APR_ARRAY_IDX(csr->requested, i, scep_csr_ext_t);

        /* a second instance is what a reader of the first one never sees */
        for (j = 0; j < i; j++) {
            if (strcmp(APR_ARRAY_IDX(csr->requested, j, scep_csr_ext_t).type.dotted,
                       x->type.dotted) == 0) {
                *what = apr_psprintf(p, "the extension %s twice", x->type.name);
                return SCEP_POLICY_FWD_NEVER;
            }
        }
        if (x->malformed) {
            *what = apr_psprintf(p, "an extension %s that does not decode", x->type.name);
            return SCEP_POLICY_FWD_NEVER;
        }
        switch (x->type.nid) {
        case NID_subject_alt_name:     /* its names: check_sans */
        case NID_subject_key_identifier: /* certmonger and Windows send one; it grants
                                          * nothing */
            break;
        case NID_key_usage:
            if (x->key_usage & ~(unsigned long)KEY_USAGE_ALLOWED) {
                *what = apr_psprintf(p, "the keyUsage %s",
                                     key_usage_name(x->key_usage & ~KEY_USAGE_ALLOWED));
                return SCEP_POLICY_FWD_NEVER;
            }
            break;
        case NID_ext_key_usage:
            for (j = 0; j < x->purposes->nelts; j++) {
                const scep_csr_oid_t *purpose = &APR_ARRAY_IDX(x->purposes, j, scep_csr_oid_t);

                if (!purpose_allowed(purpose->nid)) {
                    *what = apr_psprintf(p, "the extendedKeyUsage %s", purpose->name);
                    return SCEP_POLICY_FWD_NEVER;
                }
            }
            break;
        case NID_basic_constraints:
            if (x->ca || x->path_len) {
                *what = apr_psprintf(p, "the extension basicConstraints with %s",
                                     x->ca ? "cA TRUE" : "a pathLenConstraint");
                return SCEP_POLICY_FWD_NEVER;
            }
            break;
        default:
            *what = apr_psprintf(p, "the extension %s%s", x->type.name,
                                 x->critical ? " (critical)" : "");
            return SCEP_POLICY_FWD_NEVER;
        }
    }
    return SCEP_POLICY_FWD_OK;
}

static scep_policy_fwd_e check_subject(apr_pool_t *p, const scep_identity_t *identity,
                                       const scep_csr_t *csr, const char **what)
{
    int i;

    for (i = 0; i < csr->subject_rdns->nelts; i++) {
        const scep_csr_rdn_t *rdn = &APR_ARRAY_IDX(csr->subject_rdns, i, scep_csr_rdn_t);

        if (!rdn->value) {
            *what = apr_psprintf(p, "a subject attribute %s that is no string: %s",
                                 rdn->type.name, rdn->shown);
            return SCEP_POLICY_FWD_NEVER;
        }
        switch (rdn->type.nid) {
        case NID_commonName:
            /* every CN: the upstream certifies a second one, or free text, verbatim */
            if (!name_or_short_name(p, rdn->value, identity->fqdn)) {
                *what = apr_psprintf(p, "the commonName %s", rdn->shown);
                return SCEP_POLICY_FWD_NAME;
            }
            break;
        case NID_pkcs9_unstructuredName:
            if (!name_or_short_name(p, rdn->value, identity->fqdn)) {
                *what = apr_psprintf(p, "the unstructuredName %s", rdn->shown);
                return SCEP_POLICY_FWD_NAME;
            }
            break;
        case NID_pkcs9_unstructuredAddress:
            if (!address_is_one_of(p, rdn->value, identity->ips)) {
                *what = apr_psprintf(p, "the unstructuredAddress %s", rdn->shown);
                return SCEP_POLICY_FWD_NAME;
            }
            break;
        case NID_serialNumber:
            /* Cisco's chassis serial: only the registered one (scepreg -s) */
            if (!identity->serial_number
                || strcasecmp(rdn->value, identity->serial_number) != 0) {
                *what = apr_psprintf(p, "the serialNumber %s", rdn->shown);
                return SCEP_POLICY_FWD_NAME;
            }
            break;
        default:
            *what = apr_psprintf(p, "the subject attribute %s=%s", rdn->type.name,
                                 rdn->shown);
            return SCEP_POLICY_FWD_NEVER;
        }
    }
    return SCEP_POLICY_FWD_OK;
}

static scep_policy_fwd_e check_sans(apr_pool_t *p, const scep_identity_t *identity,
                                    const scep_csr_t *csr, const char **what)
{
    int i;

    for (i = 0; i < csr->sans->nelts; i++) {
        const scep_csr_san_t *san = &APR_ARRAY_IDX(csr->sans, i, scep_csr_san_t);

        switch (san->type) {
        case GEN_DNS:
            if (!san->value || !scep_name_fqdn(p, san->value, 0)) {
                *what = apr_psprintf(p, "a dNSName that is no host name: %s", san->shown);
                return SCEP_POLICY_FWD_NEVER;
            }
            if (!name_is(p, san->value, identity->fqdn)) {
                *what = apr_psprintf(p, "the dNSName %s", san->shown);
                return SCEP_POLICY_FWD_NAME;
            }
            break;
        case GEN_IPADD:
            if (!san->value) {
                *what = apr_psprintf(p, "an iPAddress %s", san->shown);
                return SCEP_POLICY_FWD_NEVER;
            }
            if (!address_is_one_of(p, san->value, identity->ips)) {
                *what = apr_psprintf(p, "the iPAddress %s", san->shown);
                return SCEP_POLICY_FWD_NAME;
            }
            break;
        default:
            *what = apr_psprintf(p, "the subjectAltName %s%s%s",
                                 scep_csr_san_type_name(san->type), *san->shown ? " " : "",
                                 san->shown);
            return SCEP_POLICY_FWD_NEVER;
        }
    }
    return SCEP_POLICY_FWD_OK;
}

scep_policy_fwd_e scep_policy_forward_check(apr_pool_t *p, const scep_template_t *t,
                                            const scep_identity_t *identity,
                                            const scep_csr_t *csr, const char **what)
{
    scep_template_result_t names;
    scep_policy_fwd_e kind;

    *what = NULL;
    if (!csr->subject_rdns || !csr->sans || !csr->requested || !csr->attributes) {
        *what = "a request that was not read in full";
        return SCEP_POLICY_FWD_NEVER;
    }
    if (!identity->fqdn) {
        *what = "any name (the registration names no host)";
        return SCEP_POLICY_FWD_NAME;
    }
    if ((kind = check_attributes(p, identity, csr, what)) != SCEP_POLICY_FWD_OK
        || (kind = check_extensions(p, csr, what)) != SCEP_POLICY_FWD_OK) {
        return kind;
    }
    if ((!t || t->copy != SCEP_TEMPLATE_RULES) && identity->kind != SCEP_IDENTITY_HOST) {
        t = scep_template_identity_only();   /* a device or user: its identity only */
    }
    if (t && t->copy == SCEP_TEMPLATE_RULES) {
        /* strict: what the template would drop, the upstream would certify */
        return scep_template_apply(p, t, csr, identity, 1, &names, what) == APR_SUCCESS
               ? SCEP_POLICY_FWD_OK : SCEP_POLICY_FWD_TEMPLATE;
    }
    if ((kind = check_subject(p, identity, csr, what)) == SCEP_POLICY_FWD_OK) {
        kind = check_sans(p, identity, csr, what);
    }
    return kind;
}

/* The registration checks that also bind a renewal: the device may no longer enroll once
 * its registration is disabled, expired or moved to another profile.  A used one-time
 * challenge or a registration without a challenge of its own does not stop a renewal. */
static const char *renewal_problem(apr_pool_t *p, const scep_policy_conf_t *conf,
                                   const scep_device_t *dev, apr_int64_t now)
{
    if (dev->flags & SCEP_DEVICE_DISABLED) {
        return apr_psprintf(p, "the registration %s is disabled", dev->fqdn);
    }
    if (dev->expires && dev->expires <= now) {
        return apr_psprintf(p, "the registration %s expired at %s", dev->fqdn,
                            SCEP_UTIL_ISO_TIME(dev->expires));
    }
    if (!profile_allows(conf, dev->profile)) {
        return apr_psprintf(p, "the registration %s is for profile '%s', this endpoint "
                            "serves '%s'", dev->fqdn, dev->profile,
                            conf->profile_name ? conf->profile_name : "(none)");
    }
    return NULL;
}

static const char *registration_problem(apr_pool_t *p, const scep_policy_conf_t *conf,
                                        const scep_device_t *dev, apr_int64_t now)
{
    const char *problem = renewal_problem(p, conf, dev, now);

    if (problem) {
        return problem;
    }
    if ((dev->flags & SCEP_DEVICE_ONE_TIME) && (dev->flags & SCEP_DEVICE_USED)) {
        return apr_psprintf(p, "the one-time challenge of %s has been used", dev->fqdn);
    }
    if (!dev->verifier.algorithm) {
        return apr_psprintf(p, "the registration %s has no challenge of its own (it "
                            "enrolls with minted challenges only)", dev->fqdn);
    }
    return NULL;
}

/* ---- lockout ----------------------------------------------------------------------
 * A wrong guess is counted against the requested name, so that one device guessing at a
 * wildcard's challenge locks out only its own name; under a wildcard it also counts
 * against the wildcard, whose challenge is one secret for every name it covers, with a
 * higher threshold (lockout_shared_failures): otherwise new names would give an attacker
 * failures-1 guesses each.  Three rules keep that honest:
 * - The guess is judged inside the write transaction that counts it, after that
 *   transaction has seen the name and its wildcard unlocked: concurrent guesses queue on
 *   LMDB's write lock, so however requests are spread over connections and processes,
 *   no more guesses are judged per lockout period than the thresholds allow.  The PBKDF2
 *   of a guess (0.15 ms) is the only cryptography held under the write lock; the right
 *   challenge that this process verified before is recognised without it and needs no
 *   write (the record's transaction re-checks the lock).
 * - The records are bounded whatever the traffic: they take at most an eighth of the
 *   map (FAILURE_RECORD_BYTES each).  When that is reached, records that neither lock
 *   nor count any more are purged, by each process at most once a FAILURE_PURGE_INTERVAL
 *   (a walk of the whole table holds the write lock: 37 ms for 262,144 records); past the
 *   cap, the failures of names that have no record yet are counted against their
 *   registration alone: a flood of wrong guesses costs availability, never the database.
 * - A record keeps the longest lockout period that counted in it, so that an endpoint
 *   with a short period never forgets what one with a long period relies on. */
#define FAILURE_RECORD_BYTES 512
#define FAILURE_RECORDS_MIN 64
#define FAILURE_PURGE_INTERVAL 60

static pthread_mutex_t purge_lock = PTHREAD_MUTEX_INITIALIZER;
static apr_int64_t last_purge;

/* A shared database has no map to take a share of, and the minimum would lock out real
 * devices' records at the 65th name.  2^20 records (about 0.5 GB of table and index at
 * FAILURE_RECORD_BYTES each) is more names than a fleet guesses wrong in a lockout
 * period, and still bounds what a flood of invented names can make the table grow to,
 * the same on every node. */
#define FAILURE_RECORDS_SHARED ((apr_size_t)1 << 20)

static apr_size_t failure_record_cap(scep_db_t *db)
{
    apr_size_t cap = scep_db_engine(db) ? FAILURE_RECORDS_SHARED
                                        : scep_db_map_size(db) / 8 / FAILURE_RECORD_BYTES;

    return cap < FAILURE_RECORDS_MIN ? FAILURE_RECORDS_MIN : cap;
}

/* Whether this process walks the records now. */
static int purge_due(apr_int64_t now)
{
    int due;

    pthread_mutex_lock(&purge_lock);
    due = last_purge == 0 || now - last_purge >= FAILURE_PURGE_INTERVAL || now < last_purge;
    if (due) {
        last_purge = now;
    }
    pthread_mutex_unlock(&purge_lock);
    return due;
}

static int shared_threshold(const scep_policy_conf_t *conf)
{
    return conf->lockout_shared_failures > 0
           ? conf->lockout_shared_failures
           : conf->lockout_failures * SCEP_LOCKOUT_SHARED_FACTOR;
}

/* Why `key`'s record `f` locks it at `now`, or NULL. */
static const char *lock_of(apr_pool_t *p, const char *key, const scep_failure_t *f,
                           apr_int64_t now)
{
    return f->locked_until > now
           ? apr_psprintf(p, "%s is locked out until %s after repeated failures", key,
                          SCEP_UTIL_ISO_TIME(f->locked_until))
           : NULL;
}

/* Whether the name, or (for a wildcard) the registration that covers it, is locked, the
 * two records read at once; *name_counted says whether the name has a record at all.  A
 * record that cannot be read is an error. */
static apr_status_t locked_out(apr_pool_t *p, scep_txn_t *txn, const char *fqdn,
                               const char *registration, apr_int64_t now,
                               const char **locked, int *name_counted)
{
    scep_failure_t f, shared;
    int has_shared = 0;
    apr_status_t rv;

    if (registration && strcmp(registration, fqdn) != 0) {
        rv = scep_store_failure_get_pair(txn, fqdn, registration, &f, name_counted,
                                         &shared, &has_shared);
    }
    else {
        rv = scep_store_failure_get(txn, fqdn, &f);
        *name_counted = rv == APR_SUCCESS;
        rv = rv == SCEP_DB_NOTFOUND ? APR_SUCCESS : rv;
    }
    if (rv == APR_SUCCESS) {
        *locked = lock_of(p, fqdn, &f, now);
        if (!*locked && has_shared) {
            *locked = lock_of(p, registration, &shared, now);
        }
    }
    return rv;
}

/* Whether a failure of `fqdn` gets a record of its own: always when it has one, else
 * while the records are under their cap (after a purge, when one is due). */
static apr_status_t name_counts(apr_pool_t *p, scep_txn_t *txn, scep_db_t *db,
                                const scep_policy_conf_t *conf, const char *fqdn,
                                apr_int64_t now, int *own)
{
    scep_failure_t f;
    apr_size_t count, removed, cap = failure_record_cap(db);
    apr_status_t rv = scep_store_failure_get(txn, fqdn, &f);

    *own = 1;
    if (rv != SCEP_DB_NOTFOUND) {
        return rv;
    }
    if ((rv = scep_store_failure_count_estimate(txn, &count)) != APR_SUCCESS || count < cap) {
        return rv;
    }
    if (purge_due(now)) {
        rv = scep_store_failure_purge(txn, p, now, conf->lockout_seconds, &removed);
        if (rv == APR_SUCCESS && removed > 0) {
            count = count > removed ? count - removed : 0;
        }
    }
    *own = count < cap;
    return rv;
}

/* Counts one failure against `key` in `txn`, locking it at `threshold`.  The count
 * restarts with each lockout, so that the next lockout again takes that many failures,
 * and after a lockout period without a failure. */
static apr_status_t count_failure(apr_pool_t *p, scep_txn_t *txn,
                                  const scep_policy_conf_t *conf, const char *key,
                                  int threshold, apr_int64_t now)
{
    scep_failure_t f;
    apr_status_t rv = scep_store_failure_get(txn, key, &f);

    if (rv != APR_SUCCESS && rv != SCEP_DB_NOTFOUND) {
        return rv;
    }
    if (f.period < conf->lockout_seconds) {
        f.period = conf->lockout_seconds;
    }
    if (f.locked_until <= now && f.last + f.period <= now) {
        f.count = 0;
    }
    f.count++;
    f.last = now;
    if (f.count >= threshold) {
        f.locked_until = now + conf->lockout_seconds;
        f.count = 0;
    }
    return scep_store_failure_put(txn, p, key, &f);
}

/* Judges what the device proves (`judge` returns why it fails, or NULL) under the lockout
 * rules above: APR_SUCCESS, SCEP_POLICY_DENIED with *why (counted), or a database error.
 * `remembered` says the request carries a challenge this process verified before. */
typedef const char *(*credential_judge_fn)(apr_pool_t *p, void *baton);

static apr_status_t judge_under_lockout(apr_pool_t *p, scep_db_t *db,
                                        const scep_policy_conf_t *conf, const char *fqdn,
                                        const char *registration, int remembered,
                                        credential_judge_fn judge, void *baton,
                                        apr_int64_t now, const char **why)
{
    scep_txn_t *txn;
    const char *locked = NULL, *problem;
    int own, counted, wildcard = registration && strcmp(registration, fqdn) != 0;
    apr_status_t rv;

    if (conf->lockout_failures <= 0) {
        *why = judge(p, baton);        /* nothing to count */
        return *why ? SCEP_POLICY_DENIED : APR_SUCCESS;
    }
    if (remembered && !(*why = judge(p, baton))) {
        return APR_SUCCESS;             /* the record re-checks the lock */
    }
    if ((rv = scep_db_begin(db, p, 1, &txn)) != APR_SUCCESS) {
        return rv;
    }
    rv = locked_out(p, txn, fqdn, registration, now, &locked, &counted);
    *why = locked;
    if (rv != APR_SUCCESS || locked || !(problem = judge(p, baton))) {
        scep_db_abort(txn);             /* nothing written: no sync */
        return rv != APR_SUCCESS ? rv : locked ? SCEP_POLICY_DENIED : APR_SUCCESS;
    }
    *why = problem;
    rv = name_counts(p, txn, db, conf, fqdn, now, &own);
    if (rv == APR_SUCCESS && (own || !wildcard)) {
        rv = count_failure(p, txn, conf, fqdn, conf->lockout_failures, now);
    }
    if (rv == APR_SUCCESS && wildcard) {
        rv = count_failure(p, txn, conf, registration, shared_threshold(conf), now);
    }
    rv = end_write(txn, rv);
    return rv == APR_SUCCESS ? SCEP_POLICY_DENIED : rv;
}

/* The registration that applies to `fqdn`, unless none applies or (with `lockable`) the
 * name is locked out: SCEP_POLICY_DENIED with *why. */
static apr_status_t find_registration(apr_pool_t *p, scep_txn_t *txn, const char *fqdn,
                                      int lockable, apr_int64_t now, scep_device_t **dev,
                                      const char **why)
{
    const char *locked = NULL;
    int counted;
    apr_status_t rv = scep_store_device_find(txn, p, fqdn, dev);

    if (rv == SCEP_DB_NOTFOUND) {
        *why = apr_psprintf(p, "no registration applies to %s", fqdn);
        return SCEP_POLICY_DENIED;
    }
    if (rv == APR_SUCCESS && lockable) {
        rv = locked_out(p, txn, fqdn, (*dev)->fqdn, now, &locked, &counted);
    }
    if (rv == APR_SUCCESS && locked) {
        *why = locked;
        return SCEP_POLICY_DENIED;
    }
    return rv;
}

/* What a first enrollment must prove against its registration. */
typedef struct enrollment_proof_t {
    const scep_policy_conf_t *conf;
    const scep_device_t *dev;
    const scep_csr_t *csr;
    const char *client_ip;
} enrollment_proof_t;

static const char *address_or_serial_problem(apr_pool_t *p, const enrollment_proof_t *e)
{
    const scep_csr_t *csr = e->csr;

    if (e->dev->ips->nelts > 0 && !address_matches(p, e->conf, e->dev, csr, e->client_ip)) {
        return apr_psprintf(p, "the address (request: %s%s%s) is not registered for %s",
                            request_addresses(p, csr),
                            e->conf->check_client_address ? ", client: " : "",
                            e->conf->check_client_address && e->client_ip ? e->client_ip : "",
                            e->dev->fqdn);
    }
    if (e->dev->serial && (!csr->serial_number
                           || strcasecmp(csr->serial_number, e->dev->serial) != 0)) {
        return apr_psprintf(p, "the serialNumber (%s) is not the one registered for %s",
                            csr->serial_number ? scep_csr_shown(p, csr->serial_number)
                                               : "none", e->dev->fqdn);
    }
    return NULL;
}

static const char *challenge_problem(apr_pool_t *p, const scep_device_t *dev,
                                     const scep_csr_t *csr)
{
    if (!csr->challenge) {
        return "the request carries no challengePassword";
    }
    if (!scep_verifier_matches(&dev->verifier, csr->challenge, csr->challenge_len)) {
        return apr_psprintf(p, "the challengePassword is wrong for %s", dev->fqdn);
    }
    return NULL;
}

static const char *enrollment_problem(apr_pool_t *p, void *baton)
{
    const enrollment_proof_t *e = baton;
    const char *problem = address_or_serial_problem(p, e);

    return problem ? problem : challenge_problem(p, e->dev, e->csr);
}

static const char *renewal_challenge_problem(apr_pool_t *p, void *baton)
{
    const enrollment_proof_t *e = baton;

    if (!e->dev->verifier.algorithm) {
        return apr_psprintf(p, "renewals need a challenge, and the registration %s has "
                            "none of its own", e->dev->fqdn);
    }
    return challenge_problem(p, e->dev, e->csr);
}

static int challenge_remembered(const scep_device_t *dev, const scep_csr_t *csr)
{
    return csr->challenge
           && scep_verifier_remembered(&dev->verifier, csr->challenge, csr->challenge_len);
}

apr_status_t scep_policy_authorize_static(const scep_profile_t *profile, const scep_csr_t *csr,
                                          const char **why)
{
    unsigned char digest[32];
    unsigned int len = sizeof(digest);

    if (!profile->challenge_sha256) {
        if (profile->allow_no_challenge) {
            return APR_SUCCESS;
        }
        *why = "no ScepChallenge is configured for this endpoint and ScepAllowNoChallenge "
               "is Off";
        return SCEP_POLICY_DENIED;
    }
    if (!csr->challenge) {
        *why = "the request carries no challengePassword";
        return SCEP_POLICY_DENIED;
    }
    /* Comparing fixed-size digests keeps the time independent of where they differ and of
     * the challenge's length. */
    if (EVP_Digest(csr->challenge, csr->challenge_len, digest, &len, EVP_sha256(), NULL) != 1
        || !scep_util_secret_equal(digest, len, profile->challenge_sha256, 32)) {
        *why = "the challengePassword is wrong";
        return SCEP_POLICY_DENIED;
    }
    return APR_SUCCESS;
}

apr_status_t scep_policy_authorize(apr_pool_t *p, scep_db_t *db, const scep_policy_conf_t *conf,
                                   const scep_csr_t *csr, const char *client_ip,
                                   apr_int64_t now, scep_grant_t **grant, const char **fqdn,
                                   const char **why)
{
    scep_txn_t *txn;
    scep_device_t *dev = NULL;
    scep_minted_t *minted = NULL;
    scep_grant_t *g;
    enrollment_proof_t proof;
    apr_status_t rv;
    int wildcard, is_minted;
    const char *name;

    *grant = NULL;
    rv = scep_policy_requested_identity(p, conf, csr, fqdn, &name, why);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if ((rv = scep_db_begin(db, p, 0, &txn)) != APR_SUCCESS) {
        return rv;
    }
    rv = csr->challenge
         ? scep_store_minted_get(txn, p, csr->challenge, csr->challenge_len, &minted)
         : SCEP_DB_NOTFOUND;
    is_minted = rv == APR_SUCCESS;
    if (rv == SCEP_DB_NOTFOUND && !*fqdn) {
        *why = "the request names no host (no dNSName SAN, unstructuredName or host-name CN)";
        rv = SCEP_POLICY_DENIED;
    }
    else if (rv == SCEP_DB_NOTFOUND) {
        rv = find_registration(p, txn, *fqdn, 1, now, &dev, why);
    }
    scep_db_abort(txn);
    if (is_minted) {
        return authorize_minted(p, conf, csr, minted, now, grant, fqdn, name, why);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if ((*why = registration_problem(p, conf, dev, now)) != NULL) {
        return SCEP_POLICY_DENIED;
    }
    wildcard = scep_name_is_wildcard(dev->fqdn);
    proof.conf = conf;
    proof.dev = dev;
    proof.csr = csr;
    proof.client_ip = client_ip;
    rv = judge_under_lockout(p, db, conf, *fqdn, dev->fqdn, challenge_remembered(dev, csr),
                             enrollment_problem, &proof, now, why);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    g = apr_pcalloc(p, sizeof(*g));
    g->kind = wildcard ? SCEP_GRANT_WILDCARD : SCEP_GRANT_DEVICE;
    g->registration = dev->fqdn;
    g->one_time = (dev->flags & SCEP_DEVICE_ONE_TIME) != 0;
    g->needs_approval = conf->require_approval || (dev->flags & SCEP_DEVICE_APPROVAL);
    grant_identity(g, conf, *fqdn, name);
    /* A wildcard's addresses and serial belong to no single device. */
    g->identity.ips = wildcard ? apr_array_make(p, 0, sizeof(const char *)) : dev->ips;
    g->identity.serial_number = wildcard ? NULL : dev->serial;
    *grant = g;
    return APR_SUCCESS;
}

/* Whether the recorded signer certificate `old` may still renew for `fqdn`: unrevoked,
 * within the renewal grace, issued to that name.  SCEP_POLICY_DENIED or _EXPIRED with
 * *why when not. */
static apr_status_t signer_problem(apr_pool_t *p, const scep_policy_conf_t *conf,
                                   const scep_cert_rec_t *old, const char *signer_serial,
                                   const char *fqdn, apr_int64_t now, const char **why)
{
    if (old->revoked_at) {
        *why = apr_psprintf(p, "the signer certificate %s of %s was revoked at %s",
                            signer_serial, old->fqdn, SCEP_UTIL_ISO_TIME(old->revoked_at));
        return SCEP_POLICY_DENIED;
    }
    if (old->not_after + conf->renewal_grace <= now) {
        *why = apr_psprintf(p, "the signer certificate %s of %s expired at %s (renewal grace "
                            "%ld s)", signer_serial, old->fqdn,
                            SCEP_UTIL_ISO_TIME(old->not_after), (long)conf->renewal_grace);
        return SCEP_POLICY_EXPIRED;
    }
    if (!old->fqdn || strcmp(old->fqdn, fqdn) != 0) {
        *why = apr_psprintf(p, "the request asks for %s, but the signer certificate %s was "
                            "issued to %s", fqdn, signer_serial, old->fqdn ? old->fqdn : "?");
        return SCEP_POLICY_DENIED;
    }
    return APR_SUCCESS;
}

apr_status_t scep_policy_authorize_renewal(apr_pool_t *p, scep_db_t *db,
                                           const scep_policy_conf_t *conf,
                                           const scep_csr_t *csr, const char *signer_serial,
                                           apr_int64_t now, scep_grant_t **grant,
                                           const char **fqdn, const char **why)
{
    scep_txn_t *txn;
    scep_cert_rec_t *old;
    scep_device_t *dev = NULL;
    scep_grant_t *g;
    enrollment_proof_t proof;
    apr_status_t rv;
    int wildcard;
    const char *name;

    *grant = NULL;
    rv = scep_policy_requested_identity(p, conf, csr, fqdn, &name, why);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if ((rv = scep_db_begin(db, p, 0, &txn)) != APR_SUCCESS) {
        return rv;
    }
    rv = scep_store_cert_get(txn, p, signer_serial, &old);
    if (rv == SCEP_DB_NOTFOUND) {
        *why = apr_psprintf(p, "the signer certificate %s is not in this server's records",
                            signer_serial);
        rv = SCEP_POLICY_UNKNOWN;
    }
    else if (rv == APR_SUCCESS) {
        if (!*fqdn) {
            *fqdn = old->fqdn; /* a renewal may leave the names to the old certificate */
        }
        rv = signer_problem(p, conf, old, signer_serial, *fqdn, now, why);
        /* a user's certificate does not renew as a host elsewhere, nor the other way */
        if (rv == APR_SUCCESS && scep_name_key_kind(*fqdn) != conf->identity_kind) {
            *why = apr_psprintf(p, "SCEP00605: the signer certificate %s was issued to %s, "
                                "a %s; this endpoint enrolls a %s", signer_serial,
                                scep_csr_shown(p, *fqdn),
                                scep_name_kind_name(scep_name_key_kind(*fqdn)),
                                scep_name_kind_name(conf->identity_kind));
            rv = SCEP_POLICY_DENIED;
        }
    }
    /* The certificate is the proof: a lockout of the challenge does not stop it, unless
     * the challenge is asked for too.  Otherwise anyone knowing a name (it is in the
     * certificate) could keep the device from renewing with a few wrong guesses. */
    if (rv == APR_SUCCESS) {
        rv = find_registration(p, txn, *fqdn, conf->renewal_challenge, now, &dev, why);
    }
    scep_db_abort(txn);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if ((*why = renewal_problem(p, conf, dev, now)) != NULL) {
        return SCEP_POLICY_DENIED;
    }
    if (conf->renewal_challenge) {
        proof.conf = conf;
        proof.dev = dev;
        proof.csr = csr;
        proof.client_ip = NULL;
        rv = judge_under_lockout(p, db, conf, *fqdn, dev->fqdn,
                                 challenge_remembered(dev, csr), renewal_challenge_problem,
                                 &proof, now, why);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    wildcard = scep_name_is_wildcard(dev->fqdn);
    g = apr_pcalloc(p, sizeof(*g));
    g->kind = SCEP_GRANT_RENEWAL;
    g->registration = dev->fqdn;
    grant_identity(g, conf, *fqdn, name);
    g->identity.ips = wildcard ? apr_array_make(p, 0, sizeof(const char *)) : dev->ips;
    g->identity.serial_number = wildcard ? NULL : dev->serial;
    g->renews = signer_serial;
    *grant = g;
    return APR_SUCCESS;
}

/* SCEP_POLICY_REPLAY with the DER of the certificate an issued transaction recorded. */
static apr_status_t issued_certificate(apr_pool_t *p, scep_txn_t *txn,
                                       const scep_transaction_t *t,
                                       const unsigned char **der, apr_size_t *der_len)
{
    scep_cert_rec_t *c;
    apr_status_t rv = scep_store_cert_get(txn, p, t->serial, &c);

    if (rv != APR_SUCCESS) {
        return rv == SCEP_DB_NOTFOUND ? SCEP_DB_CORRUPT : rv;
    }
    *der = c->der;
    *der_len = c->der_len;
    return SCEP_POLICY_REPLAY;
}

/* Whether a record from before requesters were kept (stored under the bare ID) belongs
 * to `requester`: by the signer key it recorded, else by the request itself, whose digest
 * covers the requester's key.  Anyone else's use of the ID neither finds nor blocks it. */
static int bare_record_is_theirs(const scep_transaction_t *t, const unsigned char *requester,
                                 const unsigned char *request_digest)
{
    if (!t->bare_key || !requester) {
        return 1;
    }
    if (t->has_signer_key) {
        return memcmp(t->signer_key, requester, SCEP_REQUEST_DIGEST_LEN) == 0;
    }
    return request_digest
           && memcmp(t->request_digest, request_digest, SCEP_REQUEST_DIGEST_LEN) == 0;
}

/* The transaction `requester` started under `transaction_id` (any requester's when NULL:
 * the operator's view).  SCEP_DB_NOTFOUND when there is none of theirs. */
static apr_status_t get_transaction(apr_pool_t *p, scep_txn_t *txn,
                                    const char *transaction_id,
                                    const unsigned char *requester,
                                    const unsigned char *request_digest,
                                    scep_transaction_t **t)
{
    apr_status_t rv = requester
                      ? scep_store_transaction_get_for(txn, p, transaction_id, requester, t)
                      : scep_store_transaction_get(txn, p, transaction_id, t);

    if (rv == APR_SUCCESS && !bare_record_is_theirs(*t, requester, request_digest)) {
        rv = SCEP_DB_NOTFOUND;
    }
    return rv;
}

/* Looks up the requester's `transaction_id` inside `txn`: NOTFOUND, REPLAY with the
 * certificate, or DENIED when the recorded request differs. */
static apr_status_t find_transaction(apr_pool_t *p, scep_txn_t *txn,
                                     const scep_policy_conf_t *conf, apr_int64_t now,
                                     const char *transaction_id,
                                     const unsigned char *requester, const char *renews,
                                     const unsigned char *request_digest,
                                     const unsigned char **der, apr_size_t *der_len,
                                     const char **why)
{
    scep_transaction_t *t;
    apr_status_t rv = get_transaction(p, txn, transaction_id, requester, request_digest, &t);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (conf->transaction_window > 0 && t->created + conf->transaction_window <= now) {
        return SCEP_DB_NOTFOUND;        /* a new enrollment with the same key */
    }
    if (memcmp(t->request_digest, request_digest, SCEP_REQUEST_DIGEST_LEN) != 0
        && renews && t->serial && strcasecmp(t->serial, renews) == 0) {
        return SCEP_DB_NOTFOUND;        /* renewing what this transaction issued */
    }
    if (memcmp(t->request_digest, request_digest, SCEP_REQUEST_DIGEST_LEN) != 0) {
        *why = apr_psprintf(p, "the transactionID was used at %s for a different request "
                            "(%s %s for %s); a new key starts a new transaction, "
                            "or this one may be reused after %s",
                            SCEP_UTIL_ISO_TIME(t->created),
                            t->serial ? "certificate" : t->state,
                            t->serial ? t->serial : "request", t->fqdn ? t->fqdn : "?",
                            conf->transaction_window > 0
                            ? SCEP_UTIL_ISO_TIME(t->created + conf->transaction_window)
                            : "never");
        return SCEP_POLICY_DENIED;
    }
    if (strcmp(t->state, SCEP_TXN_ISSUED) != 0) {
        return SCEP_POLICY_HELD;
    }
    return issued_certificate(p, txn, t, der, der_len);
}

apr_status_t scep_policy_replay(apr_pool_t *p, scep_db_t *db, const scep_policy_conf_t *conf,
                                const char *transaction_id, const unsigned char *requester,
                                const char *renews, apr_int64_t now,
                                const unsigned char *request_digest,
                                const unsigned char **der, apr_size_t *der_len,
                                const char **why)
{
    scep_txn_t *txn;
    apr_status_t rv = scep_db_begin(db, p, 0, &txn);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = find_transaction(p, txn, conf, now, transaction_id, requester, renews,
                          request_digest, der, der_len, why);
    scep_db_abort(txn);
    return rv;
}

/* Re-reads the registration inside the write transaction: uses up its one-time challenge
 * (with `consume`) and records the enrollment of `cert` (when not NULL). */
static apr_status_t consume_registration(apr_pool_t *p, scep_txn_t *txn,
                                         const scep_grant_t *grant,
                                         const scep_cert_rec_t *cert, int consume,
                                         apr_int64_t now, const char **why)
{
    scep_device_t *dev;
    apr_status_t rv = scep_store_device_get(txn, p, grant->registration, &dev);

    if (rv == SCEP_DB_NOTFOUND) {
        *why = apr_psprintf(p, "the registration %s was deleted meanwhile",
                            grant->registration);
        return SCEP_POLICY_DENIED;
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (dev->flags & SCEP_DEVICE_DISABLED) {
        *why = apr_psprintf(p, "the registration %s was disabled meanwhile", dev->fqdn);
        return SCEP_POLICY_DENIED;
    }
    if (consume && (dev->flags & SCEP_DEVICE_ONE_TIME) && grant->kind != SCEP_GRANT_RENEWAL) {
        if (dev->flags & SCEP_DEVICE_USED) {
            *why = apr_psprintf(p, "the one-time challenge of %s was used by another "
                                "request", dev->fqdn);
            return SCEP_POLICY_DENIED;
        }
        dev->flags |= SCEP_DEVICE_USED;
    }
    if (cert) {
        dev->last_serial = cert->serial;
        dev->last_not_after = cert->not_after;
        dev->last_enrolled = now;
        dev->enrollments++;
    }
    return scep_store_device_put(txn, p, dev);
}

/* What a grant means inside the write transaction that records its outcome: the
 * challenge is used up (with `consume`), and with `cert` the enrollment is booked on the
 * registration, a renewed certificate is checked (and superseded), and the name's
 * failure counter cleared. */
static apr_status_t settle_grant(apr_pool_t *p, scep_txn_t *txn,
                                 const scep_policy_conf_t *conf, const scep_grant_t *grant,
                                 const scep_cert_rec_t *cert, int consume, apr_int64_t now,
                                 const char **why)
{
    const char *locked = NULL;
    int counted = 1;                    /* unknown until read: cleared to be sure */
    apr_status_t rv = APR_SUCCESS;

    if (grant->kind == SCEP_GRANT_VALIDATOR) {
        return APR_SUCCESS;             /* the validator holds what there is to use up */
    }
    /* A lockout set since the decision refuses the right challenge too; an operator's
     * approval was decided before it, and a renewal without a challenge is not one. */
    if (consume && grant->kind != SCEP_GRANT_MINTED
        && (grant->kind != SCEP_GRANT_RENEWAL || conf->renewal_challenge)) {
        rv = locked_out(p, txn, grant->identity.fqdn, grant->registration, now, &locked,
                        &counted);
        if (rv == APR_SUCCESS && locked) {
            *why = locked;
            rv = SCEP_POLICY_DENIED;
        }
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    if (grant->kind == SCEP_GRANT_MINTED) {
        if (consume) {
            rv = scep_store_minted_delete(txn, grant->secret, grant->secret_len);
            if (rv == SCEP_DB_NOTFOUND) {
                *why = "the minted challenge was used by another request";
                rv = SCEP_POLICY_DENIED;
            }
        }
    }
    else {
        rv = consume_registration(p, txn, grant, cert, consume, now, why);
    }
    if (rv != APR_SUCCESS || !cert) {
        return rv;
    }
    if (grant->kind == SCEP_GRANT_RENEWAL) {
        scep_cert_rec_t *old;

        /* The old certificate may have been revoked since the decision. */
        rv = scep_store_cert_get(txn, p, grant->renews, &old);
        if (rv == APR_SUCCESS && old->revoked_at) {
            *why = apr_psprintf(p, "the signer certificate %s was revoked meanwhile",
                                grant->renews);
            return SCEP_POLICY_DENIED;
        }
        if (rv == APR_SUCCESS && conf->renewal_revokes_old) {
            int already;

            rv = scep_store_cert_revoke(txn, p, grant->renews, now, SCEP_REASON_SUPERSEDED,
                                        &already);
        }
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    /* Read under this transaction's write lock: a name without a record still has none. */
    rv = counted ? scep_store_failure_clear(txn, grant->identity.fqdn) : APR_SUCCESS;
    return rv == SCEP_DB_NOTFOUND ? APR_SUCCESS : rv;
}

apr_status_t scep_policy_record(apr_pool_t *p, scep_db_t *db, const scep_policy_conf_t *conf,
                                const scep_grant_t *grant,
                                const char *transaction_id,
                                const unsigned char *requester,
                                const unsigned char *request_digest,
                                const scep_cert_rec_t *cert, apr_int64_t now,
                                const unsigned char **der, apr_size_t *der_len,
                                const char **why)
{
    scep_txn_t *txn;
    scep_transaction_t t;
    apr_status_t rv = scep_db_begin(db, p, 1, &txn);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = find_transaction(p, txn, conf, now, transaction_id, requester,
                          grant ? grant->renews : NULL, request_digest, der, der_len, why);
    if (rv == SCEP_POLICY_HELD) {
        *why = "the transaction was held for approval meanwhile";
        rv = SCEP_POLICY_DENIED;
    }
    else if (rv == APR_SUCCESS) {
        rv = SCEP_DB_CORRUPT;           /* a lookup answers, it never finds nothing new */
    }
    else if (rv == SCEP_DB_NOTFOUND) {
        rv = grant ? settle_grant(p, txn, conf, grant, cert, 1, now, why) : APR_SUCCESS;
    }
    if (rv == APR_SUCCESS) {
        memset(&t, 0, sizeof(t));
        t.transaction_id = transaction_id;
        t.state = SCEP_TXN_ISSUED;
        memcpy(t.request_digest, request_digest, SCEP_REQUEST_DIGEST_LEN);
        t.fqdn = cert->fqdn;
        t.serial = cert->serial;
        t.created = now;
        if (requester) {
            memcpy(t.signer_key, requester, SCEP_REQUEST_DIGEST_LEN);
            t.has_signer_key = 1;
        }
        rv = scep_store_transaction_put(txn, p, &t);
    }
    if (rv == APR_SUCCESS) {
        rv = scep_store_cert_put(txn, p, cert);
    }
    return end_write(txn, rv);
}

/* ---- held requests --------------------------------------------------------------- */

static const char *join_ips(apr_pool_t *p, const apr_array_header_t *ips)
{
    const char *out = NULL;
    int i;

    for (i = 0; ips && i < ips->nelts; i++) {
        const char *ip = APR_ARRAY_IDX(ips, i, const char *);

        out = out ? apr_pstrcat(p, out, ",", ip, NULL) : ip;
    }
    return out;
}

apr_status_t scep_policy_hold(apr_pool_t *p, scep_db_t *db, const scep_policy_conf_t *conf,
                              const scep_grant_t *grant, const char *transaction_id,
                              const unsigned char *request_digest,
                              const unsigned char *request, apr_size_t request_len,
                              const unsigned char *signer_key, const char *endpoint,
                              const char *client_ip, const char *subject, const char *state,
                              apr_int64_t now, const unsigned char **der,
                              apr_size_t *der_len, const char **why)
{
    scep_txn_t *txn;
    scep_transaction_t t;
    apr_status_t rv = scep_db_begin(db, p, 1, &txn);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = find_transaction(p, txn, conf, now, transaction_id, signer_key, grant->renews,
                          request_digest, der, der_len, why);
    if (rv == SCEP_DB_NOTFOUND) {
        rv = settle_grant(p, txn, conf, grant, NULL, 1, now, why);
        if (rv == APR_SUCCESS) {
            memset(&t, 0, sizeof(t));
            t.transaction_id = transaction_id;
            t.state = state;
            memcpy(t.request_digest, request_digest, SCEP_REQUEST_DIGEST_LEN);
            t.fqdn = grant->identity.fqdn;
            t.created = now;
            t.request = request;
            t.request_len = request_len;
            t.grant_kind = (int)grant->kind;
            t.registration = grant->registration;
            t.ips = join_ips(p, grant->identity.ips);
            t.serial_number = grant->identity.serial_number;
            t.renews = grant->renews;
            if (signer_key) {
                memcpy(t.signer_key, signer_key, SCEP_REQUEST_DIGEST_LEN);
                t.has_signer_key = 1;
            }
            t.client_ip = client_ip;
            t.subject = subject;
            t.upstream_pending = grant->upstream_pending;
            t.endpoint = endpoint;
            t.identity_name = grant->identity.name;
            t.identity_where = (int)grant->identity.where;
            rv = scep_store_transaction_put(txn, p, &t);
        }
    }
    return end_write(txn, rv);
}

const char *scep_policy_endpoint(apr_pool_t *p, const scep_policy_conf_t *conf, int forwards,
                                 const unsigned char *ca_sha256)
{
    char hex[2 * 32 + 1];
    const char *identity = "";
    int i;

    for (i = 0; i < 32; i++) {
        apr_snprintf(hex + 2 * i, 3, "%02x", ca_sha256[i]);
    }
    /* A host endpoint's string is what it was before the other kinds, so requests held
     * then are still completed; any other kind names itself and its place, so that an
     * endpoint reading another identity (or another place) never completes it. */
    if (conf->identity_kind != SCEP_IDENTITY_HOST) {
        identity = apr_pstrcat(p, ", ", scep_name_kind_name(conf->identity_kind), " from ",
                               scep_policy_where_name(conf->identity_where), NULL);
    }
    return apr_psprintf(p, "profile '%s', %s CA %s%s",
                        conf->profile_name ? conf->profile_name : "(none)",
                        forwards ? "upstream" : "local", hex, identity);
}

/* The grant a held transaction stands for, as it was when the request was held. */
static scep_grant_t *grant_of(apr_pool_t *p, const scep_transaction_t *t)
{
    scep_grant_t *g = apr_pcalloc(p, sizeof(*g));
    char *list, *last, *ip;

    g->kind = (scep_grant_kind_e)t->grant_kind;
    g->registration = t->registration;
    g->identity.fqdn = t->fqdn;
    /* the kind is the key's; a record without the value keeps the key's own spelling */
    g->identity.kind = scep_name_key_kind(t->fqdn);
    if (g->identity.kind != SCEP_IDENTITY_HOST) {
        g->identity.name = t->identity_name ? t->identity_name : scep_name_key_value(t->fqdn);
        g->identity.where = (scep_identity_where_e)t->identity_where;
    }
    g->identity.ips = apr_array_make(p, 2, sizeof(const char *));
    if (t->ips) {
        list = apr_pstrdup(p, t->ips);
        for (ip = apr_strtok(list, ",", &last); ip; ip = apr_strtok(NULL, ",", &last)) {
            APR_ARRAY_PUSH(g->identity.ips, const char *) = ip;
        }
    }
    g->identity.serial_number = t->serial_number;
    g->renews = t->renews;
    g->held = 1;
    g->upstream_pending = t->upstream_pending;
    g->legacy_upstream_id = !t->endpoint;
    return g;
}

apr_status_t scep_policy_poll(apr_pool_t *p, scep_db_t *db, const scep_policy_conf_t *conf,
                              const char *transaction_id, const unsigned char *signer_key,
                              const char *endpoint, int forwards, apr_int64_t now,
                              scep_transaction_t **held, scep_grant_t **grant,
                              const unsigned char **der, apr_size_t *der_len,
                              const char **why)
{
    scep_txn_t *txn;
    scep_transaction_t *t;
    apr_status_t rv = scep_db_begin(db, p, 0, &txn);

    *held = NULL;
    *grant = NULL;
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = signer_key ? scep_store_transaction_get_for(txn, p, transaction_id, signer_key, &t)
                    : scep_store_transaction_get(txn, p, transaction_id, &t);
    /* Only a record from before requesters were kept can be another key's: it answers
     * the key it recorded, and a certificate it holds is not handed to a mere poll (the
     * request itself, sent again, still gets it).  To anyone else it is not there, as
     * another requester's transaction is not. */
    if (rv == APR_SUCCESS && t->bare_key && signer_key
        && (!t->has_signer_key
            || memcmp(signer_key, t->signer_key, SCEP_REQUEST_DIGEST_LEN) != 0)) {
        rv = SCEP_DB_NOTFOUND;
    }
    if (rv == APR_SUCCESS && strcmp(t->state, SCEP_TXN_ISSUED) == 0) {
        rv = issued_certificate(p, txn, t, der, der_len);   /* SCEP_POLICY_REPLAY */
    }
    scep_db_abort(txn);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    /* A held request is completed by the endpoint that held it, with its profile and its
     * issuer; a record from before endpoints were kept at least by the same kind of
     * issuer, so that what waits for an upstream CA is only ever completed by asking it. */
    if (t->endpoint ? endpoint && strcmp(t->endpoint, endpoint) != 0
                    : strcmp(t->state, SCEP_TXN_UPSTREAM) == 0 && !forwards) {
        *why = t->endpoint
               ? apr_psprintf(p, "the request was held at another endpoint (%s), and only "
                              "that one completes it (this one: %s)", t->endpoint,
                              endpoint)
               : "the request waits for an upstream CA, and this endpoint issues itself";
        return SCEP_POLICY_DENIED;
    }
    /* Records from before endpoints were kept name none: the identity still binds them.
     * A held key of another kind, or a name read from another place, is not this
     * endpoint's to complete. */
    if (scep_name_key_kind(t->fqdn) != conf->identity_kind
        || (t->identity_name && t->identity_where != (int)conf->identity_where)) {
        *why = apr_psprintf(p, "the request was held for the %s %s, and this endpoint "
                            "enrolls a %s read from %s",
                            scep_name_kind_name(scep_name_key_kind(t->fqdn)),
                            t->fqdn ? scep_csr_shown(p, t->fqdn) : "?",
                            scep_name_kind_name(conf->identity_kind),
                            scep_policy_where_name(conf->identity_where));
        return SCEP_POLICY_DENIED;
    }
    if ((strcmp(t->state, SCEP_TXN_PENDING) == 0 || strcmp(t->state, SCEP_TXN_UPSTREAM) == 0)
        && conf->pending_timeout > 0 && t->created + conf->pending_timeout <= now) {
        /* Marked once, so the operator's listing shows it too. */
        rv = scep_policy_close_held(p, db, transaction_id, signer_key, SCEP_TXN_EXPIRED, NULL,
                                    NULL, now);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        t->state = SCEP_TXN_EXPIRED;
    }
    if (strcmp(t->state, SCEP_TXN_PENDING) == 0) {
        return SCEP_POLICY_PENDING;
    }
    if ((strcmp(t->state, SCEP_TXN_APPROVED) == 0 || strcmp(t->state, SCEP_TXN_UPSTREAM) == 0)
        && t->request) {
        *held = t;
        *grant = grant_of(p, t);
        return strcmp(t->state, SCEP_TXN_APPROVED) == 0 ? SCEP_POLICY_APPROVED
                                                        : SCEP_POLICY_UPSTREAM;
    }
    if (strcmp(t->state, SCEP_TXN_REJECTED) == 0) {
        *why = apr_psprintf(p, "the request for %s was rejected by %s at %s%s%s",
                            t->fqdn ? t->fqdn : "?", t->decided_by ? t->decided_by : "?",
                            SCEP_UTIL_ISO_TIME(t->decided_at), t->reason ? ": " : "",
                            t->reason ? t->reason : "");
        return SCEP_POLICY_DENIED;
    }
    if (strcmp(t->state, SCEP_TXN_EXPIRED) == 0) {
        *why = apr_psprintf(p, "the request for %s waited since %s and expired without a "
                            "decision", t->fqdn ? t->fqdn : "?",
                            SCEP_UTIL_ISO_TIME(t->created));
        return SCEP_POLICY_DENIED;
    }
    *why = apr_psprintf(p, "the transaction is in the unknown state '%s'", t->state);
    return SCEP_DB_CORRUPT;
}

/* Changes a transaction in one write transaction: `change` returns 0 to leave it be. */
static apr_status_t update_transaction(apr_pool_t *p, scep_db_t *db, const char *transaction_id,
                                       const unsigned char *requester,
                                       int (*change)(scep_transaction_t *t, void *baton),
                                       void *baton)
{
    scep_txn_t *txn;
    scep_transaction_t *t;
    apr_status_t rv = scep_db_begin(db, p, 1, &txn);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = get_transaction(p, txn, transaction_id, requester, NULL, &t);
    if (rv == APR_SUCCESS && !change(t, baton)) {
        scep_db_abort(txn);             /* nothing to write: no sync */
        return APR_SUCCESS;
    }
    if (rv == APR_SUCCESS) {
        rv = scep_store_transaction_put(txn, p, t);
    }
    return end_write(txn, rv);
}

static int mark_upstream_pending(scep_transaction_t *t, void *baton)
{
    (void)baton;
    if (strcmp(t->state, SCEP_TXN_UPSTREAM) != 0 || t->upstream_pending) {
        return 0;
    }
    t->upstream_pending = 1;
    return 1;
}

apr_status_t scep_policy_note_upstream_pending(apr_pool_t *p, scep_db_t *db,
                                               const char *transaction_id,
                                               const unsigned char *requester)
{
    return update_transaction(p, db, transaction_id, requester, mark_upstream_pending, NULL);
}

typedef struct closing_t {
    const char *state, *by, *reason;
    apr_int64_t now;
} closing_t;

/* The one place a held transaction's state changes without a certificate. */
static void settle_held(scep_transaction_t *t, const char *state, const char *by,
                        const char *reason, apr_int64_t now)
{
    t->state = state;
    t->decided_at = now;
    t->decided_by = by;
    t->reason = reason;
}

static int close_transaction(scep_transaction_t *t, void *baton)
{
    closing_t *closing = baton;

    if (strcmp(t->state, SCEP_TXN_ISSUED) == 0 || strcmp(t->state, SCEP_TXN_REJECTED) == 0
        || strcmp(t->state, SCEP_TXN_EXPIRED) == 0) {
        return 0;
    }
    settle_held(t, closing->state, closing->by, closing->reason, closing->now);
    return 1;
}

apr_status_t scep_policy_close_held(apr_pool_t *p, scep_db_t *db, const char *transaction_id,
                                    const unsigned char *requester, const char *state,
                                    const char *by, const char *reason, apr_int64_t now)
{
    closing_t closing = { state, by, reason, now };

    return update_transaction(p, db, transaction_id, requester, close_transaction, &closing);
}

/* The pending requests an operator's decision covers, copied out of the walk's pool:
 * as much of each record as scep_store_transaction_reread needs to find it again. */
typedef struct decision_t {
    apr_pool_t *pool;
    const char *fqdn;
    apr_array_header_t *held;           /* scep_transaction_t * */
} decision_t;

static void keep_held(decision_t *d, const scep_transaction_t *t)
{
    scep_transaction_t *k = apr_pmemdup(d->pool, t, sizeof(*t));

    k->transaction_id = apr_pstrdup(d->pool, t->transaction_id);
    APR_ARRAY_PUSH(d->held, scep_transaction_t *) = k;
}

static int collect_pending(void *baton, const scep_transaction_t *t)
{
    decision_t *d = baton;

    if (strcmp(t->state, SCEP_TXN_PENDING) == 0 && t->fqdn && strcmp(t->fqdn, d->fqdn) == 0) {
        keep_held(d, t);
    }
    return 0;
}

apr_status_t scep_policy_decide(scep_txn_t *txn, apr_pool_t *p, const char *transaction_id,
                                const char *fqdn, int approve, const char *by,
                                const char *reason, apr_int64_t now,
                                apr_array_header_t **decided, const char **state)
{
    decision_t d = { p, fqdn, apr_array_make(p, 4, sizeof(scep_transaction_t *)) };
    scep_transaction_t *t;
    apr_status_t rv = scep_store_transaction_get(txn, p, transaction_id, &t);
    int i;

    *decided = d.held;
    if (rv == APR_SUCCESS && strcmp(t->state, SCEP_TXN_PENDING) != 0) {
        *state = t->state;
        return SCEP_POLICY_DENIED;
    }
    if (rv == SCEP_DB_EXISTS && !fqdn) {
        return SCEP_DB_EXISTS;
    }
    if (rv == APR_SUCCESS) {
        keep_held(&d, t);
    }
    else if ((rv == SCEP_DB_NOTFOUND || rv == SCEP_DB_EXISTS) && fqdn) {
        rv = scep_store_transaction_foreach_held(txn, p, collect_pending, &d);
    }
    if (rv == APR_SUCCESS && d.held->nelts == 0) {
        rv = SCEP_DB_NOTFOUND;
    }
    /* an approval has no reason to give, and an empty one is none */
    reason = !approve && reason && *reason ? reason : NULL;
    for (i = 0; rv == APR_SUCCESS && i < d.held->nelts; i++) {
        rv = scep_store_transaction_reread(txn, p,
                                           APR_ARRAY_IDX(d.held, i, scep_transaction_t *), &t);
        if (rv == APR_SUCCESS) {
            settle_held(t, approve ? SCEP_TXN_APPROVED : SCEP_TXN_REJECTED, by, reason, now);
            rv = scep_store_transaction_put(txn, p, t);
        }
    }
    return rv;
}

apr_status_t scep_policy_mint(scep_txn_t *txn, apr_pool_t *p, apr_int64_t now,
                              apr_int64_t ttl, const char *fqdn, const char *profile,
                              const char **challenge, scep_minted_t **rec)
{
    apr_size_t purged = 0;
    /* Expired challenges go as new ones come, so the table stays small.  A failure that
     * is not the database's (no random bytes) leaves the transaction clean and no
     * challenge made: each step's status counts, not only the transaction's. */
    apr_status_t rv = scep_store_minted_purge(txn, p, now, &purged);

    if (rv == APR_SUCCESS) {
        rv = scep_store_minted_create(txn, p, now, ttl, fqdn, profile, challenge, rec);
    }
    return rv;
}

apr_status_t scep_policy_mint_commit(apr_pool_t *p, scep_db_t *db, apr_int64_t now,
                                     apr_int64_t ttl, const char *fqdn, const char *profile,
                                     const char **challenge, scep_minted_t **rec)
{
    scep_txn_t *txn;
    apr_status_t rv = scep_db_begin(db, p, 1, &txn);

    if (rv == APR_SUCCESS) {
        rv = scep_policy_mint(txn, p, now, ttl, fqdn, profile, challenge, rec);
    }
    return end_write(txn, rv);
}

apr_status_t scep_policy_record_approved(apr_pool_t *p, scep_db_t *db,
                                         const scep_policy_conf_t *conf,
                                         const scep_grant_t *grant,
                                         const char *transaction_id,
                                         const unsigned char *requester,
                                         const scep_cert_rec_t *cert, apr_int64_t now,
                                         const unsigned char **der, apr_size_t *der_len,
                                         const char **why)
{
    scep_txn_t *txn;
    scep_transaction_t *t;
    apr_status_t rv = scep_db_begin(db, p, 1, &txn);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = get_transaction(p, txn, transaction_id, requester, NULL, &t);
    if (rv == APR_SUCCESS && strcmp(t->state, SCEP_TXN_ISSUED) == 0) {
        rv = issued_certificate(p, txn, t, der, der_len);
    }
    else if (rv == APR_SUCCESS && strcmp(t->state, SCEP_TXN_APPROVED) != 0
             && strcmp(t->state, SCEP_TXN_UPSTREAM) != 0) {
        *why = apr_psprintf(p, "the transaction became %s meanwhile", t->state);
        rv = SCEP_POLICY_DENIED;
    }
    if (rv == APR_SUCCESS) {
        rv = settle_grant(p, txn, conf, grant, cert, 0, now, why);
    }
    if (rv == APR_SUCCESS) {
        t->state = SCEP_TXN_ISSUED;
        t->serial = cert->serial;
        t->request = NULL;              /* the certificate is the record now */
        t->request_len = 0;
        if ((rv = scep_store_transaction_put(txn, p, t)) == APR_SUCCESS) {
            rv = scep_store_cert_put(txn, p, cert);
        }
    }
    return end_write(txn, rv);
}

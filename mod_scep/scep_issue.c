/* SPDX-License-Identifier: Apache-2.0 */
/* Certificate issuance by the local CA: from a checked PKCS#10 and the endpoint's profile
 * (or a registration's identity) to a signed X.509 certificate.  Works only from what
 * scep_ca loaded at startup: no file is read and no key is parsed per request. */

#include <string.h>

#include <apr_strings.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "scep_ca.h"
#include "scep_issue.h"
#include "scep_template.h"
#include "scep_util_own.h"

/* A positive serial with 127 random bits (RFC 5280: at most 20 octets, positive). */
static int set_random_serial(X509 *x)
{
    unsigned char bytes[16];
    BIGNUM *bn;
    int ok;

    if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
        return 0;
    }
    bytes[0] &= 0x7f;
    bytes[0] |= 0x40;   /* keeps the encoding at 16 octets and never zero */
    bn = BN_bin2bn(bytes, sizeof(bytes), NULL);
    ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok;
}

static int set_validity(X509 *x, X509 *ca_cert, apr_int64_t now, int days)
{
    time_t t = (time_t)now;
    ASN1_TIME *not_after;

    /* Backdated for devices whose clock runs a little behind the CA's. */
    if (!X509_time_adj_ex(X509_getm_notBefore(x), 0, -300, &t)
        || !(not_after = X509_time_adj_ex(X509_getm_notAfter(x), days, 0, &t))) {
        return 0;
    }
    if (ASN1_TIME_compare(not_after, X509_get0_notAfter(ca_cert)) > 0) {
        return X509_set1_notAfter(x, X509_get0_notAfter(ca_cert));
    }
    return 1;
}

static int set_subject(X509 *x, int subject_mode, const scep_csr_t *csr)
{
    const X509_NAME *requested = X509_REQ_get_subject_name(csr->req);
    const char *cn = csr->common_name ? csr->common_name : csr->unstructured_name;
    X509_NAME *name;
    int ok;

    if (subject_mode == SCEP_SUBJECT_FROM_CSR && X509_NAME_entry_count(requested) > 0) {
        return X509_set_subject_name(x, requested);
    }
    if (!cn && csr->dns_names->nelts > 0) {
        cn = APR_ARRAY_IDX(csr->dns_names, 0, const char *);
    }
    if (!cn || !(name = X509_NAME_new())) {
        return 0;
    }
    ok = X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                    (const unsigned char *)cn, -1, -1, 0)
         && X509_set_subject_name(x, name);
    X509_NAME_free(name);
    return ok;
}

/* A registration names the device: nothing the request asks for survives, so that a
 * leaked challenge never yields a certificate for another name. */
static int set_forced_names(X509 *x, const scep_identity_t *forced)
{
    X509_NAME *name = X509_NAME_new();
    GENERAL_NAMES *names = GENERAL_NAMES_new();
    GENERAL_NAME *gn;
    ASN1_IA5STRING *dns = ASN1_IA5STRING_new();
    int i, ok;

    ok = name && names && dns
         && X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                       (const unsigned char *)forced->fqdn, -1, -1, 0)
         && (!forced->serial_number
             || X509_NAME_add_entry_by_NID(name, NID_serialNumber, MBSTRING_UTF8,
                                           (const unsigned char *)forced->serial_number,
                                           -1, -1, 0))
         && X509_set_subject_name(x, name)
         && ASN1_STRING_set(dns, forced->fqdn, -1)
         && (gn = GENERAL_NAME_new()) != NULL;
    if (ok) {
        GENERAL_NAME_set0_value(gn, GEN_DNS, dns);
        dns = NULL;
        if (sk_GENERAL_NAME_push(names, gn) <= 0) {
            GENERAL_NAME_free(gn);
            ok = 0;
        }
    }
    for (i = 0; ok && forced->ips && i < forced->ips->nelts; i++) {
        gn = a2i_GENERAL_NAME(NULL, NULL, NULL, GEN_IPADD,
                              APR_ARRAY_IDX(forced->ips, i, char *), 0);
        ok = gn && sk_GENERAL_NAME_push(names, gn) > 0;
        if (!ok) {
            GENERAL_NAME_free(gn);
        }
    }
    ok = ok && X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) == 1;
    ASN1_IA5STRING_free(dns);
    GENERAL_NAMES_free(names);
    X509_NAME_free(name);
    return ok;
}

/* One name a template decided; 0 when it cannot be encoded as its type. */
static int push_general_name(GENERAL_NAMES *names, const scep_template_name_t *n)
{
    GENERAL_NAME *gn = NULL;
    ASN1_IA5STRING *text = NULL;
    ASN1_TYPE *upn = NULL;
    ASN1_OBJECT *upn_oid = NULL;

    switch (n->field) {
    case GEN_IPADD:
        gn = a2i_GENERAL_NAME(NULL, NULL, NULL, GEN_IPADD, (char *)n->value, 0);
        ERR_clear_error();
        break;
    case SCEP_TEMPLATE_SAN_UPN:
        if ((upn = ASN1_TYPE_new()) && (text = ASN1_UTF8STRING_new())
            && ASN1_STRING_set(text, n->value, -1) && (upn_oid = OBJ_nid2obj(NID_ms_upn))
            && (gn = GENERAL_NAME_new())) {
            ASN1_TYPE_set(upn, V_ASN1_UTF8STRING, text);
            text = NULL;
            if (GENERAL_NAME_set0_othername(gn, upn_oid, upn)) {
                upn = NULL;
            }
            else {
                GENERAL_NAME_free(gn);
                gn = NULL;
            }
        }
        break;
    default:
        if ((text = ASN1_IA5STRING_new()) && ASN1_STRING_set(text, n->value, -1)
            && (gn = GENERAL_NAME_new())) {
            GENERAL_NAME_set0_value(gn, n->field, text);
            text = NULL;
        }
        break;
    }
    ASN1_STRING_free(text);
    ASN1_TYPE_free(upn);
    if (gn && sk_GENERAL_NAME_push(names, gn) <= 0) {
        GENERAL_NAME_free(gn);
        gn = NULL;
    }
    return gn != NULL;
}

/* Microsoft's SID security extension (KB5014754), as Windows CAs write it: a
 * GeneralNames holding one otherName 1.3.6.1.4.1.311.25.2.1 whose [0] EXPLICIT value is
 * an OCTET STRING of the SID's text. */
static int add_sid_extension(X509 *x, const char *sid)
{
    GENERAL_NAMES *names = GENERAL_NAMES_new();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_OBJECT *type = OBJ_txt2obj("1.3.6.1.4.1.311.25.2.1", 1);
    ASN1_OBJECT *ext_oid = OBJ_txt2obj("1.3.6.1.4.1.311.25.2", 1);
    ASN1_OCTET_STRING *text = ASN1_OCTET_STRING_new(), *der_value = NULL;
    ASN1_TYPE *value = ASN1_TYPE_new();
    X509_EXTENSION *ext = NULL;
    unsigned char *der = NULL;
    int len = 0, ok;

    ok = names && gn && type && ext_oid && text && value
         && ASN1_OCTET_STRING_set(text, (const unsigned char *)sid, (int)strlen(sid));
    if (ok) {
        ASN1_TYPE_set(value, V_ASN1_OCTET_STRING, text);
        text = NULL;
        ok = GENERAL_NAME_set0_othername(gn, type, value);
    }
    if (ok) {
        type = NULL;
        value = NULL;
        ok = sk_GENERAL_NAME_push(names, gn) > 0;
    }
    if (ok) {
        gn = NULL;
        ok = (len = i2d_GENERAL_NAMES(names, &der)) > 0
             && (der_value = ASN1_OCTET_STRING_new()) != NULL
             && ASN1_OCTET_STRING_set(der_value, der, len)
             && (ext = X509_EXTENSION_create_by_OBJ(NULL, ext_oid, 0, der_value)) != NULL
             && X509_add_ext(x, ext, -1);
    }
    OPENSSL_free(der);
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(der_value);
    ASN1_OCTET_STRING_free(text);
    ASN1_TYPE_free(value);
    ASN1_OBJECT_free(type);
    ASN1_OBJECT_free(ext_oid);
    GENERAL_NAME_free(gn);
    GENERAL_NAMES_free(names);
    return ok;
}

/* The names a template decided.  APR_EINVAL with *why for a value its type cannot hold
 * (an iPAddress that is no address, a country that is no PrintableString). */
static apr_status_t set_template_names(apr_pool_t *p, X509 *x,
                                       const scep_template_result_t *r, const char **why)
{
    X509_NAME *name = X509_NAME_new();
    GENERAL_NAMES *names = GENERAL_NAMES_new();
    apr_status_t rv = APR_SUCCESS;
    int i;

    if (!name || !names) {
        rv = APR_ENOMEM;
    }
    for (i = 0; rv == APR_SUCCESS && i < r->subject->nelts; i++) {
        const scep_template_name_t *n = &APR_ARRAY_IDX(r->subject, i, scep_template_name_t);

        if (!X509_NAME_add_entry_by_NID(name, n->field, MBSTRING_UTF8,
                                        (const unsigned char *)n->value, -1, -1, 0)) {
            *why = apr_psprintf(p, "%s cannot hold %s", OBJ_nid2sn(n->field),
                                scep_csr_shown(p, n->value));
            rv = APR_EINVAL;
        }
    }
    for (i = 0; rv == APR_SUCCESS && i < r->sans->nelts; i++) {
        const scep_template_name_t *n = &APR_ARRAY_IDX(r->sans, i, scep_template_name_t);

        if (!push_general_name(names, n)) {
            *why = apr_psprintf(p, "a subjectAltName %s cannot hold %s",
                                n->field == SCEP_TEMPLATE_SAN_UPN
                                ? "upn" : scep_csr_san_type_name(n->field),
                                scep_csr_shown(p, n->value));
            rv = APR_EINVAL;
        }
    }
    ERR_clear_error();
    /* without a subject the SAN is critical (RFC 5280 4.2.1.6) */
    if (rv == APR_SUCCESS
        && (!X509_set_subject_name(x, name)
            || (sk_GENERAL_NAME_num(names) > 0
                && X509_add1_ext_i2d(x, NID_subject_alt_name, names,
                                     X509_NAME_entry_count(name) == 0, X509V3_ADD_DEFAULT)
                   != 1)
            || (r->sid && !add_sid_extension(x, r->sid)))) {
        *why = "building the certificate failed";
        rv = APR_EGENERAL;
    }
    GENERAL_NAMES_free(names);
    X509_NAME_free(name);
    return rv;
}

static int add_key_usage(X509 *x, unsigned int bits)
{
    ASN1_BIT_STRING *ku;
    int i, ok = 1;

    if (!bits) {
        return 1;
    }
    if (!(ku = ASN1_BIT_STRING_new())) {
        return 0;
    }
    for (i = 0; i < 8 && ok; i++) {
        if (bits & (0x80u >> i)) {
            ok = ASN1_BIT_STRING_set_bit(ku, i, 1);
        }
    }
    ok = ok && X509_add1_ext_i2d(x, NID_key_usage, ku, 1, X509V3_ADD_DEFAULT) == 1;
    ASN1_BIT_STRING_free(ku);
    return ok;
}

static int add_der_extension(X509 *x, int nid, const unsigned char *der, apr_size_t len)
{
    ASN1_OCTET_STRING *value = ASN1_OCTET_STRING_new();
    X509_EXTENSION *ext = NULL;
    int ok;

    ok = value && ASN1_OCTET_STRING_set(value, der, (int)len)
         && (ext = X509_EXTENSION_create_by_NID(NULL, nid, 0, value)) != NULL
         && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(value);
    return ok;
}

/* Cisco-style requests carry their names as unstructuredName/Address and no SAN;
 * certificates name hosts in the SAN, so the SAN is built from those attributes. */
static int add_san(X509 *x, const scep_csr_t *csr)
{
    GENERAL_NAMES *names;
    int ok = 1;

    if (csr->san) {
        return X509_add_ext(x, (X509_EXTENSION *)csr->san, -1);
    }
    if (!csr->unstructured_name && !csr->unstructured_address) {
        return 1;
    }
    if (!(names = GENERAL_NAMES_new())) {
        return 0;
    }
    if (csr->unstructured_name) {
        GENERAL_NAME *gn = GENERAL_NAME_new();
        ASN1_IA5STRING *dns = ASN1_IA5STRING_new();

        ok = gn && dns && ASN1_STRING_set(dns, csr->unstructured_name, -1);
        if (ok) {
            GENERAL_NAME_set0_value(gn, GEN_DNS, dns);
            ok = sk_GENERAL_NAME_push(names, gn) > 0;
        }
        else {
            GENERAL_NAME_free(gn);
            ASN1_IA5STRING_free(dns);
        }
    }
    if (ok && csr->unstructured_address) {
        GENERAL_NAME *gn = a2i_GENERAL_NAME(NULL, NULL, NULL, GEN_IPADD,
                                            csr->unstructured_address, 0);

        /* An unparsable address is left out rather than failing the enrollment. */
        if (gn && sk_GENERAL_NAME_push(names, gn) <= 0) {
            GENERAL_NAME_free(gn);
            ok = 0;
        }
        ERR_clear_error();
    }
    if (ok && sk_GENERAL_NAME_num(names) > 0) {
        ok = X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) == 1;
    }
    GENERAL_NAMES_free(names);
    return ok;
}

/* The CSR's public key bits go into the certificate as the device encoded them.
 * X509_set_pubkey would encode the decoded key again and decode that once more, which
 * under OpenSSL 3.0's decoders costs more than the CA's signature.  The parameters are
 * written afresh: NULL for RSA (RFC 3279 2.3.1), the named curve for EC (RFC 5480 2.1.1);
 * anything else was refused with the request (scep_server's check_key). */
static int copy_public_key(X509 *x, X509_REQ *req)
{
    const ASN1_OBJECT *algorithm = NULL;
    const void *parameter = NULL;
    const unsigned char *bits;
    X509_ALGOR *alg;
    ASN1_OBJECT *algorithm_copy = NULL, *curve_copy = NULL;
    unsigned char *bits_copy;
    int bits_len, parameter_type = V_ASN1_UNDEF, nid;

    if (!X509_PUBKEY_get0_param(NULL, &bits, &bits_len, &alg, X509_REQ_get_X509_PUBKEY(req))
        || bits_len <= 0) {
        return 0;
    }
    X509_ALGOR_get0(&algorithm, &parameter_type, &parameter, alg);
    nid = OBJ_obj2nid(algorithm);
    if (nid == NID_rsaEncryption
        && (parameter_type == V_ASN1_NULL || parameter_type == V_ASN1_UNDEF)) {
        parameter_type = V_ASN1_NULL;
    }
    else if (nid == NID_X9_62_id_ecPublicKey && parameter_type == V_ASN1_OBJECT) {
        if (!(curve_copy = OBJ_dup(parameter))) {
            return 0;
        }
    }
    else {
        return 0;
    }
    algorithm_copy = OBJ_dup(algorithm);
    bits_copy = OPENSSL_memdup(bits, (size_t)bits_len);
    if (!algorithm_copy || !bits_copy
        || !X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(x), algorithm_copy, parameter_type,
                                   curve_copy, bits_copy, bits_len)) {
        ASN1_OBJECT_free(algorithm_copy);
        ASN1_OBJECT_free(curve_copy);
        OPENSSL_free(bits_copy);
        return 0;
    }
    return 1;
}

/* RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits. */
static int add_subject_key_id(X509 *x, const EVP_MD *sha1)
{
    const unsigned char *bits;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    ASN1_OCTET_STRING *id = ASN1_OCTET_STRING_new();
    int bits_len, ok;

    ok = id && X509_PUBKEY_get0_param(NULL, &bits, &bits_len, NULL, X509_get_X509_PUBKEY(x))
         && EVP_Digest(bits, (size_t)bits_len, digest, &digest_len, sha1, NULL) == 1
         && ASN1_OCTET_STRING_set(id, digest, (int)digest_len)
         && X509_add1_ext_i2d(x, NID_subject_key_identifier, id, 0, X509V3_ADD_DEFAULT) == 1;
    ASN1_OCTET_STRING_free(id);
    return ok;
}

apr_status_t scep_issue_certificate(apr_pool_t *p, const scep_ca_t *ca,
                                    const scep_profile_t *profile, const scep_csr_t *csr,
                                    const scep_identity_t *forced, apr_int64_t now,
                                    X509 **out, const apr_array_header_t **dropped,
                                    const char **why)
{
    X509 *ca_cert = scep_ca_cert(ca), *x = X509_new();
    EVP_PKEY *ca_key = scep_ca_key(ca);
    const scep_ca_issuance_t *shared = scep_ca_issuance(ca);
    const scep_template_t *t = scep_issue_template(profile, forced);
    scep_template_result_t names;
    apr_status_t rv;

    *out = NULL;
    *dropped = NULL;
    if (!x) {
        return APR_ENOMEM;
    }
    scep_util_own_X509(p, x);
    if (!ca_key) {
        *why = "this endpoint holds no CA key (an upstream CA issues for it)";
        return APR_EGENERAL;
    }
    if (t->copy == SCEP_TEMPLATE_RULES) {
        if ((rv = scep_template_apply(p, t, csr, forced, 0, &names, why)) != APR_SUCCESS) {
            return rv;
        }
        *dropped = names.dropped;
        if ((rv = set_template_names(p, x, &names, why)) != APR_SUCCESS) {
            return rv;
        }
    }
    else if (!forced && !set_subject(x, t->copy == SCEP_TEMPLATE_COPY_CN
                                        ? SCEP_SUBJECT_CN_ONLY : SCEP_SUBJECT_FROM_CSR, csr)) {
        *why = "the request names nobody (no subject, CN, unstructuredName or dNSName)";
        return APR_EINVAL;
    }
    if (!X509_set_version(x, X509_VERSION_3)
        || !set_random_serial(x)
        || !X509_set_issuer_name(x, X509_get_subject_name(ca_cert))
        || !set_validity(x, ca_cert, now, profile->validity_days)
        || !copy_public_key(x, csr->req)
        || !X509_add_ext(x, shared->end_entity_constraints, -1)
        || !add_key_usage(x, profile->key_usage)
        || (profile->eku_der
            && !add_der_extension(x, NID_ext_key_usage, profile->eku_der, profile->eku_der_len))
        || (profile->cdp_der
            && !add_der_extension(x, NID_crl_distribution_points, profile->cdp_der,
                                  profile->cdp_der_len))
        || !add_subject_key_id(x, shared->sha1)
        || !X509_add_ext(x, shared->authority_key_id, -1)
        || (t->copy != SCEP_TEMPLATE_RULES
            && !(forced ? set_forced_names(x, forced) : add_san(x, csr)))) {
        *why = "building the certificate failed";
        return APR_EGENERAL;
    }
    if (X509_sign(x, ca_key, EVP_sha256()) <= 0) {
        *why = "signing the certificate with the CA key failed";
        return APR_EGENERAL;
    }
    *out = x;
    return APR_SUCCESS;
}

const scep_template_t *scep_issue_template(const scep_profile_t *profile,
                                           const scep_identity_t *identity)
{
    const scep_template_t *t = profile->template_;

    if (!t) {
        t = scep_template_builtin(profile->subject_mode);
    }
    /* a device or a user never gets what its request copies: only its identity */
    if (t->copy != SCEP_TEMPLATE_RULES && identity && identity->kind != SCEP_IDENTITY_HOST) {
        t = scep_template_identity_only();
    }
    return t;
}

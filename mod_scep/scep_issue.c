/* SPDX-License-Identifier: Apache-2.0 */
/* Certificate issuance by the local CA: from a checked PKCS#10 and the endpoint's profile
 * (or a registration's identity) to a signed X.509 certificate.  Works only from what
 * scep_ca loaded at startup: no file is read and no key is parsed per request. */

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "scep_ca.h"
#include "scep_issue.h"
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

static int set_subject(X509 *x, const scep_profile_t *profile, const scep_csr_t *csr)
{
    const X509_NAME *requested = X509_REQ_get_subject_name(csr->req);
    const char *cn = csr->common_name ? csr->common_name : csr->unstructured_name;
    X509_NAME *name;
    int ok;

    if (profile->subject_mode == SCEP_SUBJECT_FROM_CSR
        && X509_NAME_entry_count(requested) > 0) {
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
                                    X509 **out, const char **why)
{
    X509 *ca_cert = scep_ca_cert(ca), *x = X509_new();
    EVP_PKEY *ca_key = scep_ca_key(ca);
    const scep_ca_issuance_t *shared = scep_ca_issuance(ca);

    *out = NULL;
    if (!x) {
        return APR_ENOMEM;
    }
    scep_util_own_X509(p, x);
    if (!ca_key) {
        *why = "this endpoint holds no CA key (an upstream CA issues for it)";
        return APR_EGENERAL;
    }
    if (!forced && !set_subject(x, profile, csr)) {
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
        || !(forced ? set_forced_names(x, forced) : add_san(x, csr))) {
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

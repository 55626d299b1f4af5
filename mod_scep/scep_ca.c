/* SPDX-License-Identifier: Apache-2.0 */
/* The local CA: loading and checking its files at startup, preparing the constant
 * GetCACaps/GetCACert answers, and signing certificates.
 *
 * Everything here runs once at startup except scep_ca_issue(), which works only from
 * objects loaded then: no file is read and no key is parsed per request. */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <apr_strings.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "scep_ca.h"
#include "scep_csr.h"
#include "scep_keyless.h"
#include "scep_msg.h"
#include "scep_profile.h"
#include "scep_util.h"
#include "scep_util_own.h"

struct scep_ca_t {
    scep_msg_keys_t keys;           /* the CA's, the RA's (NULL without one), the signer's */
    STACK_OF(X509) *chain;          /* the CA file's certificates after the first */
    const char *name;
    const char *caps;
    const char *cacert_type;
    unsigned char *cacert_der;
    apr_size_t cacert_der_len;
    unsigned char *nextca_der;      /* NULL without a next CA */
    apr_size_t nextca_der_len;
    STACK_OF(X509) *previous;       /* earlier CAs whose certificates still renew */
    /* The same in every certificate issued here, so made once at load time instead of
     * from configuration text per certificate. */
    X509_EXTENSION *end_entity_constraints;     /* critical basicConstraints CA:FALSE */
    X509_EXTENSION *authority_key_id;           /* names the CA certificate's key id */
    EVP_MD *sha1;                               /* subject key ids (RFC 5280 4.2.1.2) */
};

/* Advertise only what is true.  SCEPStandard: RFC 8894 section 2.9's mandatory set
 * (GetCACaps, GetCACert, PKCSReq, POST, AES-128, SHA-256) is all implemented.
 * Renewal is added per endpoint where certificate records exist (the glue),
 * GetNextCACert where a next CA is configured. */
static const char caps_text[] =
    "POSTPKIOperation\n"
    "AES\n"
    "DES3\n"
    "SHA-1\n"
    "SHA-256\n"
    "SHA-384\n"
    "SHA-512\n"
    "SCEPStandard\n";

static apr_status_t file_problem(apr_pool_t *p, const char *role, const char *path,
                                 const char *what, const char **errmsg)
{
    *errmsg = apr_psprintf(p, "%s file '%s' %s", role, path, what);
    return APR_EINVAL;
}

/* A file that exists, is not empty, and (for keys) is readable by its owner only. */
static apr_status_t check_file(apr_pool_t *p, const char *role, const char *path, int is_key,
                               const char **errmsg)
{
    struct stat st;

    if (stat(path, &st) != 0) {
        return file_problem(p, role, path, apr_psprintf(p, "cannot be used: %s",
                                                        strerror(errno)), errmsg);
    }
    if (!S_ISREG(st.st_mode)) {
        return file_problem(p, role, path, "is not a regular file", errmsg);
    }
    if (st.st_size == 0) {
        return file_problem(p, role, path, "is empty", errmsg);
    }
    if (is_key && (st.st_mode & (S_IRGRP | S_IROTH | S_IWGRP | S_IWOTH))) {
        return file_problem(p, role, path,
                            apr_psprintf(p, "is readable or writable by group or others "
                                         "(mode %04o); make it mode 0600 or 0400",
                                         (unsigned)(st.st_mode & 07777)), errmsg);
    }
    return APR_SUCCESS;
}

static BIO *open_file(apr_pool_t *p, const char *role, const char *path, int is_key,
                      const char **errmsg)
{
    BIO *bio;

    if (check_file(p, role, path, is_key, errmsg) != APR_SUCCESS) {
        return NULL;
    }
    if (!(bio = BIO_new_file(path, "r"))) {
        ERR_clear_error();
        file_problem(p, role, path, apr_psprintf(p, "cannot be read: %s", strerror(errno)),
                     errmsg);
    }
    return bio;
}

/* A certificate's subject, for a message that must say which one of a file. */
static const char *subject_text(apr_pool_t *p, X509 *x)
{
    char *name = X509_NAME_oneline(X509_get_subject_name(x), NULL, 0);
    const char *copy = apr_pstrdup(p, name ? name : "?");

    OPENSSL_free(name);
    return copy;
}

/* Every certificate of a PEM file, in order; at least one.  Each RSA key among them
 * passes the exponent rule: clients verify what the CA and RA sign and encrypt to the
 * RA, and an unusable exponent (issue 15, points 10 and 12) is better refused here, by
 * name, than met by every client later. */
static apr_status_t load_certs(apr_pool_t *p, const char *role, const char *path,
                               STACK_OF(X509) **out, const char **errmsg)
{
    BIO *bio = open_file(p, role, path, 0, errmsg);
    STACK_OF(X509) *certs;
    const char *problem;
    unsigned long err;
    X509 *x;
    int i;

    if (!bio) {
        return APR_EINVAL;
    }

    certs = sk_X509_new_null();
    ERR_clear_error();
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        sk_X509_push(certs, x);
    }
    BIO_free(bio);
    scep_util_own_X509_stack(p, certs);
    /* The loop ends on "no start line" after the last one; anything else is a certificate
     * that is there and cannot be read, never the end of the file. */
    err = ERR_peek_last_error();
    if (err && !(ERR_GET_LIB(err) == ERR_LIB_PEM
                 && ERR_GET_REASON(err) == PEM_R_NO_START_LINE)) {
        char text[256];

        ERR_error_string_n(err, text, sizeof(text));
        ERR_clear_error();
        return file_problem(p, role, path,
                            apr_psprintf(p, "holds a certificate (number %d) that cannot be "
                                         "read: %s", sk_X509_num(certs) + 1, text), errmsg);
    }
    ERR_clear_error();
    if (sk_X509_num(certs) == 0) {
        return file_problem(p, role, path, "holds no PEM certificate", errmsg);
    }
    for (i = 0; i < sk_X509_num(certs); i++) {
        if ((problem = scep_keyless_rsa_exponent_problem(
                 X509_get_X509_PUBKEY(sk_X509_value(certs, i))))
            != NULL) {
            ERR_clear_error();
            return file_problem(p, role, path,
                                apr_psprintf(p, "holds a certificate (number %d, subject %s) "
                                             "whose key cannot be used: %s", i + 1,
                                             subject_text(p, sk_X509_value(certs, i)),
                                             problem), errmsg);
        }
    }
    ERR_clear_error();
    *out = certs;
    return APR_SUCCESS;
}

static apr_status_t load_cert(apr_pool_t *p, const char *role, const char *path, X509 **out,
                              const char **errmsg)
{
    STACK_OF(X509) *certs;
    apr_status_t rv = load_certs(p, role, path, &certs, errmsg);

    if (rv == APR_SUCCESS) {
        *out = sk_X509_value(certs, 0);
    }
    return rv;
}

/* Refuses no passphrase prompt: httpd starts unattended. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

static apr_status_t load_key(apr_pool_t *p, const char *role, const char *path, X509 *cert,
                             int must_be_rsa, EVP_PKEY **out, const char **errmsg)
{
    BIO *bio = open_file(p, role, path, 1, errmsg);
    EVP_PKEY *key;

    if (!bio) {
        return APR_EINVAL;
    }
    key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    if (!key) {
        const char *detail = scep_util_openssl_errors(p);

        return file_problem(p, role, path,
                            apr_pstrcat(p, "holds no unencrypted PEM private key (", detail,
                                        ")", NULL), errmsg);
    }
    scep_util_own_EVP_PKEY(p, key);
    if (X509_check_private_key(cert, key) != 1) {
        ERR_clear_error();
        return file_problem(p, role, path, "does not match its certificate", errmsg);
    }
    if (must_be_rsa && EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
        return file_problem(p, role, path,
                            "is not an RSA key, but clients encrypt their requests to it "
                            "(SCEP key transport needs RSA)", errmsg);
    }
    *out = key;
    return APR_SUCCESS;
}

static int both_or_neither(const char *a, const char *b)
{
    return (a == NULL) == (b == NULL);
}

static apr_status_t prepare_cacert(apr_pool_t *p, scep_ca_t *ca)
{
    X509 **certs;
    int n = 0, i, chain = sk_X509_num(ca->chain);

    if (!ca->keys.ra_cert && chain == 0) {
        unsigned char *buf = NULL;
        int len = i2d_X509(ca->keys.ca_cert, &buf);

        if (len <= 0) {
            return APR_EGENERAL;
        }
        ca->cacert_der = apr_pmemdup(p, buf, (apr_size_t)len);
        ca->cacert_der_len = (apr_size_t)len;
        ca->cacert_type = "application/x-x509-ca-cert";
        OPENSSL_free(buf);
        return APR_SUCCESS;
    }
    /* CA first, then the RA certificates, then the rest of the chain. */
    certs = apr_palloc(p, sizeof(X509 *) * (size_t)(chain + 3));
    certs[n++] = ca->keys.ca_cert;
    if (ca->keys.ra_cert) {
        certs[n++] = ca->keys.ra_cert;
    }
    if (ca->keys.sign_cert != ca->keys.ra_cert && ca->keys.sign_cert != ca->keys.ca_cert) {
        certs[n++] = ca->keys.sign_cert;
    }
    for (i = 0; i < chain; i++) {
        certs[n++] = sk_X509_value(ca->chain, i);
    }
    ca->cacert_type = "application/x-x509-ca-ra-cert";
    return scep_msg_certs_only(p, certs, n, &ca->cacert_der, &ca->cacert_der_len);
}

/* What every issued certificate shares, made once.  RFC 5280 4.2.1.1 wants the authority
 * key identifier in every certificate a CA issues, and it names the CA certificate's
 * subject key identifier: a CA certificate without one cannot issue here. */
static apr_status_t prepare_issuance(apr_pool_t *p, scep_ca_t *ca, const char *path,
                                     const char **errmsg)
{
    X509V3_CTX ctx;

    if (!ca->keys.ca_key) {
        return APR_SUCCESS;
    }
    if (X509_get_ext_by_NID(ca->keys.ca_cert, NID_subject_key_identifier, -1) < 0) {
        return file_problem(p, "CA certificate", path,
                            "has no subjectKeyIdentifier, which the certificates it issues "
                            "must name (RFC 5280 4.2.1.1)", errmsg);
    }
    X509V3_set_ctx(&ctx, ca->keys.ca_cert, NULL, NULL, NULL, 0);
    ca->end_entity_constraints = scep_util_own_X509_EXTENSION(
        p, X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:FALSE"));
    ca->authority_key_id = scep_util_own_X509_EXTENSION(
        p, X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid"));
    ca->sha1 = scep_util_own_EVP_MD(p, EVP_MD_fetch(NULL, "SHA1", NULL));
    if (!ca->end_entity_constraints || !ca->authority_key_id || !ca->sha1) {
        *errmsg = apr_pstrcat(p, "cannot prepare the issued certificates' extensions: ",
                              scep_util_openssl_errors(p), NULL);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* Problems a client or the calendar will trip over later, said once at startup. */
static void warn_about(const scep_log_t *log, const char *role, const char *path, X509 *cert,
                       int needs_key_encipherment)
{
    time_t soon = time(NULL) + 30 * 86400;

    if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
        scep_log(log, SCEP_LOG_ERR, "SCEP00003: %s '%s' has expired; clients will reject "
                 "what it signs", role, path);
    }
    else if (X509_cmp_time(X509_get0_notAfter(cert), &soon) < 0) {
        scep_log(log, SCEP_LOG_WARNING, "SCEP00004: %s '%s' expires within 30 days",
                 role, path);
    }
    if (needs_key_encipherment && (X509_get_extension_flags(cert) & EXFLAG_KUSAGE)
        && !(X509_get_key_usage(cert) & KU_KEY_ENCIPHERMENT)) {
        scep_log(log, SCEP_LOG_WARNING, "SCEP00005: %s '%s' has no keyEncipherment key "
                 "usage; Apple devices choose the certificate to encrypt to by that usage "
                 "and will pick another one", role, path);
    }
}

/* Every certificate of a rollover file must be a CA certificate. */
static apr_status_t load_ca_list(apr_pool_t *p, const char *role, const char *path,
                                 STACK_OF(X509) **certs, const char **errmsg)
{
    apr_status_t rv = load_certs(p, role, path, certs, errmsg);
    int i;

    for (i = 0; rv == APR_SUCCESS && i < sk_X509_num(*certs); i++) {
        if (X509_check_ca(sk_X509_value(*certs, i)) == 0) {
            return file_problem(p, role, path, apr_psprintf(p, "holds a certificate that is "
                                "not a CA certificate (number %d)", i + 1), errmsg);
        }
    }
    return rv;
}

/* CA rollover: the next CA, announced by GetNextCACert before the switch, and the
 * previous CAs, whose certificates still renew after it. */
static apr_status_t load_rollover(apr_pool_t *p, const scep_ca_files_t *files,
                                  const scep_log_t *log, scep_ca_t *ca, const char **errmsg)
{
    STACK_OF(X509) *next;
    X509 **certs;
    apr_status_t rv;
    int i, n;

    if (files->previous_ca_file) {
        if ((rv = load_ca_list(p, "previous CA certificate", files->previous_ca_file,
                               &ca->previous, errmsg)) != APR_SUCCESS) {
            return rv;
        }
        for (i = 0; i < sk_X509_num(ca->previous); i++) {
            if (X509_cmp(sk_X509_value(ca->previous, i), ca->keys.ca_cert) == 0) {
                return file_problem(p, "previous CA certificate", files->previous_ca_file,
                                    "holds the current CA certificate", errmsg);
            }
        }
    }
    if (!files->next_ca_file) {
        return APR_SUCCESS;
    }
    if ((rv = load_ca_list(p, "next CA certificate", files->next_ca_file, &next, errmsg))
        != APR_SUCCESS) {
        return rv;
    }
    if (X509_cmp(sk_X509_value(next, 0), ca->keys.ca_cert) == 0) {
        return file_problem(p, "next CA certificate", files->next_ca_file,
                            "holds the current CA certificate: after the switch, remove "
                            "ScepNextCACertificateFile", errmsg);
    }
    warn_about(log, "next CA certificate", files->next_ca_file, sk_X509_value(next, 0), 0);
    n = sk_X509_num(next);
    certs = apr_palloc(p, sizeof(X509 *) * (size_t)n);
    for (i = 0; i < n; i++) {
        certs[i] = sk_X509_value(next, i);
    }
    if ((rv = scep_msg_signed_certs(p, &ca->keys, certs, n, &ca->nextca_der, &ca->nextca_der_len))
        != APR_SUCCESS) {
        *errmsg = apr_pstrcat(p, "cannot sign the GetNextCACert answer: ",
                              scep_util_openssl_errors(p), NULL);
        return rv;
    }
    ca->caps = apr_pstrcat(p, caps_text, "GetNextCACert\n", NULL);
    return APR_SUCCESS;
}

apr_status_t scep_ca_load(apr_pool_t *p, const scep_ca_files_t *files, const scep_log_t *log,
                          scep_ca_t **out, const char **errmsg)
{
    scep_ca_t *ca = apr_pcalloc(p, sizeof(*ca));
    STACK_OF(X509) *ca_file_certs;
    apr_status_t rv;
    char *name;

    *out = NULL;
    if (scep_msg_global_init() != APR_SUCCESS) {
        *errmsg = "OpenSSL could not be set up (the SCEP attribute OIDs, or its null provider)";
        return APR_EGENERAL;
    }
    if (files->forwarding) {
        if (!files->ca_cert_file || !files->ra_cert_file || files->ca_key_file) {
            *errmsg = "where an upstream CA issues, the CA certificate file names the "
                      "upstream CA (no CA key file), and an RA certificate and key are "
                      "required";
            return APR_EINVAL;
        }
    }
    else if (!files->ca_cert_file || !files->ca_key_file) {
        *errmsg = "a CA certificate file and a CA key file are both required";
        return APR_EINVAL;
    }
    if (!both_or_neither(files->ra_cert_file, files->ra_key_file)) {
        *errmsg = "an RA certificate file and an RA key file go together";
        return APR_EINVAL;
    }
    if (!both_or_neither(files->ra_sign_cert_file, files->ra_sign_key_file)) {
        *errmsg = "an RA signing certificate file and an RA signing key file go together";
        return APR_EINVAL;
    }
    if (files->ra_sign_cert_file && !files->ra_cert_file) {
        *errmsg = "an RA signing certificate needs an RA (decryption) certificate too";
        return APR_EINVAL;
    }

    if ((rv = load_certs(p, "CA certificate", files->ca_cert_file, &ca_file_certs, errmsg))) {
        return rv;
    }
    ca->keys.ca_cert = sk_X509_shift(ca_file_certs);
    scep_util_own_X509(p, ca->keys.ca_cert);
    ca->chain = ca_file_certs;
    if (files->ca_key_file
        && (rv = load_key(p, "CA key", files->ca_key_file, ca->keys.ca_cert,
                          files->ra_cert_file == NULL, &ca->keys.ca_key, errmsg))) {
        return rv;
    }
    if (X509_check_ca(ca->keys.ca_cert) == 0) {
        return file_problem(p, "CA certificate", files->ca_cert_file,
                            "starts with a certificate that is not a CA certificate "
                            "(basicConstraints CA:TRUE is missing)", errmsg);
    }
    ca->keys.sign_cert = ca->keys.ca_cert;
    ca->keys.sign_key = ca->keys.ca_key;

    if (files->ra_cert_file) {
        if ((rv = load_cert(p, "RA certificate", files->ra_cert_file, &ca->keys.ra_cert, errmsg))
            || (rv = load_key(p, "RA key", files->ra_key_file, ca->keys.ra_cert, 1, &ca->keys.ra_key,
                              errmsg))) {
            return rv;
        }
        X509_up_ref(ca->keys.ra_cert);
        scep_util_own_X509(p, ca->keys.ra_cert);
        ca->keys.sign_cert = ca->keys.ra_cert;
        ca->keys.sign_key = ca->keys.ra_key;
    }
    if (files->ra_sign_cert_file) {
        if ((rv = load_cert(p, "RA signing certificate", files->ra_sign_cert_file,
                            &ca->keys.sign_cert, errmsg))
            || (rv = load_key(p, "RA signing key", files->ra_sign_key_file, ca->keys.sign_cert, 0,
                              &ca->keys.sign_key, errmsg))) {
            return rv;
        }
        X509_up_ref(ca->keys.sign_cert);
        scep_util_own_X509(p, ca->keys.sign_cert);
    }

    warn_about(log, "CA certificate", files->ca_cert_file, ca->keys.ca_cert, 0);
    if (ca->keys.ra_cert) {
        warn_about(log, "RA certificate", files->ra_cert_file, ca->keys.ra_cert, 1);
    }
    if (ca->keys.sign_cert != ca->keys.ra_cert && ca->keys.sign_cert != ca->keys.ca_cert) {
        warn_about(log, "RA signing certificate", files->ra_sign_cert_file, ca->keys.sign_cert, 0);
    }
    name = X509_NAME_oneline(X509_get_subject_name(ca->keys.ca_cert), NULL, 0);
    ca->name = apr_pstrdup(p, name ? name : "?");
    OPENSSL_free(name);
    ca->caps = caps_text;
    if ((rv = load_rollover(p, files, log, ca, errmsg)) != APR_SUCCESS) {
        return rv;
    }
    if ((rv = prepare_cacert(p, ca)) != APR_SUCCESS) {
        *errmsg = apr_pstrcat(p, "cannot encode the GetCACert answer: ",
                              scep_util_openssl_errors(p), NULL);
        return rv;
    }
    if ((rv = prepare_issuance(p, ca, files->ca_cert_file, errmsg)) != APR_SUCCESS) {
        return rv;
    }
    ERR_clear_error();
    *out = ca;
    return APR_SUCCESS;
}

const char *scep_ca_caps(const scep_ca_t *ca)
{
    return ca->caps;
}

void scep_ca_cacert(const scep_ca_t *ca, const char **content_type,
                    const unsigned char **der, apr_size_t *der_len)
{
    *content_type = ca->cacert_type;
    *der = ca->cacert_der;
    *der_len = ca->cacert_der_len;
}

int scep_ca_can_sign(const scep_ca_t *ca)
{
    return ca->keys.ca_key != NULL;
}

void scep_ca_nextcacert(const scep_ca_t *ca, const unsigned char **der, apr_size_t *der_len)
{
    *der = ca->nextca_der;
    *der_len = ca->nextca_der_len;
}

const char *scep_ca_name(const scep_ca_t *ca)
{
    return ca->name;
}

const scep_msg_keys_t *scep_ca_msg_keys(const scep_ca_t *ca)
{
    return &ca->keys;
}

X509 *scep_ca_cert(const scep_ca_t *ca)
{
    return ca->keys.ca_cert;
}

EVP_PKEY *scep_ca_key(const scep_ca_t *ca)
{
    return ca->keys.ca_key;
}

int scep_ca_in_chain(const scep_ca_t *ca, X509 *x)
{
    int i;

    for (i = 0; ca->chain && i < sk_X509_num(ca->chain); i++) {
        if (X509_cmp(sk_X509_value(ca->chain, i), x) == 0) {
            return 1;
        }
    }
    return 0;
}

scep_ca_t *scep_ca_assemble(apr_pool_t *p, X509 *cert, EVP_PKEY *key, const char *name)
{
    scep_ca_t *ca = apr_pcalloc(p, sizeof(*ca));

    ca->keys.ca_cert = ca->keys.sign_cert = cert;
    ca->keys.ca_key = ca->keys.sign_key = key;
    ca->name = name;
    return ca;
}

/* ---- issuance ------------------------------------------------------------------ */

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

static int set_validity(X509 *x, const scep_ca_t *ca, int days)
{
    time_t now = time(NULL);
    ASN1_TIME *not_after;

    /* Backdated for devices whose clock runs a little behind the CA's. */
    if (!X509_time_adj_ex(X509_getm_notBefore(x), 0, -300, &now)
        || !(not_after = X509_time_adj_ex(X509_getm_notAfter(x), days, 0, &now))) {
        return 0;
    }
    if (ASN1_TIME_compare(not_after, X509_get0_notAfter(ca->keys.ca_cert)) > 0) {
        return X509_set1_notAfter(x, X509_get0_notAfter(ca->keys.ca_cert));
    }
    return 1;
}

static int set_subject(X509 *x, const scep_profile_t *profile, const scep_csr_t *csr)
{
    const X509_NAME *requested = X509_REQ_get_subject_name(csr->req);
    const char *cn = csr->common_name ? csr->common_name : csr->unstructured_name;
    X509_NAME *name;
    int ok;

    if (profile->subject_mode == SCEP_SUBJECT_FROM_CSR && X509_NAME_entry_count(requested) > 0) {
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
static int add_subject_key_id(X509 *x, const scep_ca_t *ca)
{
    const unsigned char *bits;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    ASN1_OCTET_STRING *id = ASN1_OCTET_STRING_new();
    int bits_len, ok;

    ok = id && X509_PUBKEY_get0_param(NULL, &bits, &bits_len, NULL, X509_get_X509_PUBKEY(x))
         && EVP_Digest(bits, (size_t)bits_len, digest, &digest_len, ca->sha1, NULL) == 1
         && ASN1_OCTET_STRING_set(id, digest, (int)digest_len)
         && X509_add1_ext_i2d(x, NID_subject_key_identifier, id, 0, X509V3_ADD_DEFAULT) == 1;
    ASN1_OCTET_STRING_free(id);
    return ok;
}

apr_status_t scep_ca_issue(apr_pool_t *p, const scep_ca_t *ca, const scep_profile_t *profile,
                           const scep_csr_t *csr, const scep_identity_t *forced,
                           X509 **out, const char **why)
{
    X509 *x = X509_new();

    *out = NULL;
    if (!x) {
        return APR_ENOMEM;
    }
    scep_util_own_X509(p, x);
    if (!ca->keys.ca_key) {
        *why = "this endpoint holds no CA key (an upstream CA issues for it)";
        return APR_EGENERAL;
    }
    if (!forced && !set_subject(x, profile, csr)) {
        *why = "the request names nobody (no subject, CN, unstructuredName or dNSName)";
        return APR_EINVAL;
    }
    if (!X509_set_version(x, X509_VERSION_3)
        || !set_random_serial(x)
        || !X509_set_issuer_name(x, X509_get_subject_name(ca->keys.ca_cert))
        || !set_validity(x, ca, profile->validity_days)
        || !copy_public_key(x, csr->req)
        || !X509_add_ext(x, ca->end_entity_constraints, -1)
        || !add_key_usage(x, profile->key_usage)
        || (profile->eku_der
            && !add_der_extension(x, NID_ext_key_usage, profile->eku_der, profile->eku_der_len))
        || (profile->cdp_der
            && !add_der_extension(x, NID_crl_distribution_points, profile->cdp_der,
                                  profile->cdp_der_len))
        || !add_subject_key_id(x, ca)
        || !X509_add_ext(x, ca->authority_key_id, -1)
        || !(forced ? set_forced_names(x, forced) : add_san(x, csr))) {
        *why = "building the certificate failed";
        return APR_EGENERAL;
    }
    if (X509_sign(x, ca->keys.ca_key, EVP_sha256()) <= 0) {
        *why = "signing the certificate with the CA key failed";
        return APR_EGENERAL;
    }
    *out = x;
    return APR_SUCCESS;
}

static int issued_by(X509 *issuer, X509 *cert)
{
    return X509_check_issued(issuer, cert) == X509_V_OK
           && X509_verify(cert, X509_get0_pubkey(issuer)) == 1;
}

int scep_ca_issued(const scep_ca_t *ca, X509 *cert)
{
    int ok = issued_by(ca->keys.ca_cert, cert), i;

    for (i = 0; !ok && ca->previous && i < sk_X509_num(ca->previous); i++) {
        ok = issued_by(sk_X509_value(ca->previous, i), cert);
    }
    ERR_clear_error();
    return ok;
}

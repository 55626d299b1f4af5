/* SPDX-License-Identifier: Apache-2.0 */
/* The local CA: loading and checking its files at startup, preparing the constant
 * GetCACaps/GetCACert answers and what every issued certificate shares (scep_issue signs
 * them), and telling whether a certificate was issued here.
 *
 * Everything here runs once at startup except the accessors and scep_ca_issued(): no
 * file is read and no key is parsed per request. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <apr_strings.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "scep_ca.h"
#include "scep_key.h"
#include "scep_keyless.h"
#include "scep_msg.h"
#include "scep_token.h"
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
    scep_ca_issuance_t issuance;
    /* Keys in a token: loaded by the parent to check them, then released; each child
     * loads its own (scep_ca_token_attach).  Meanwhile their keys.* fields are NULL. */
    const char *token_uri[SCEP_CA_ROLES];
    int tokens;                     /* how many of them are set */
    int token_ready;                /* this process holds every token key */
    int separate_signer;            /* ScepRASigningCertificateFile */
    const scep_key_dialog_t *dialog;
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

/* The roles of keys, in the order scep_ca_load reads them */
enum { ROLE_CA, ROLE_RA, ROLE_SIGNER };

static apr_status_t file_problem(apr_pool_t *p, const char *role, const char *path,
                                 const char *what, const char **errmsg)
{
    *errmsg = apr_psprintf(p, "%s %s'%s' %s", role, scep_token_is_uri(path) ? "" : "file ",
                           path, what);
    return APR_EINVAL;
}

apr_status_t scep_ca_check_file(apr_pool_t *p, const char *role, const char *path,
                                int is_key, const char **errmsg)
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

    if (scep_ca_check_file(p, role, path, is_key, errmsg) != APR_SUCCESS) {
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
static apr_status_t load_certs(apr_pool_t *p, const scep_key_dialog_t *dialog,
                               const char *role, const char *path, STACK_OF(X509) **out,
                               const char **errmsg)
{
    STACK_OF(X509) *certs;
    const char *problem;
    unsigned long err;
    BIO *bio;
    X509 *x;
    int i;

    if (scep_token_is_uri(path)) {
        /* one certificate, no chain: a token keeps objects, not files */
        apr_status_t rv = scep_token_load_cert(p, dialog, path, &x, &problem);

        if (rv != APR_SUCCESS) {
            *errmsg = apr_psprintf(p, "%s '%s' %s", role, path, problem);
            return rv;
        }
        X509_up_ref(x);
        certs = sk_X509_new_null();
        sk_X509_push(certs, x);
        scep_util_own_X509_stack(p, certs);
        *out = certs;
        return APR_SUCCESS;
    }
    if (!(bio = open_file(p, role, path, 0, errmsg))) {
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

static apr_status_t load_cert(apr_pool_t *p, const scep_key_dialog_t *dialog,
                              const char *role, const char *path, X509 **out,
                              const char **errmsg)
{
    STACK_OF(X509) *certs;
    apr_status_t rv = load_certs(p, dialog, role, path, &certs, errmsg);

    if (rv == APR_SUCCESS) {
        *out = sk_X509_value(certs, 0);
    }
    return rv;
}

/* A key that must be usable as its role needs: matching its certificate, RSA where
 * clients encrypt to it. */
static apr_status_t check_key(apr_pool_t *p, const char *role, const char *path, X509 *cert,
                              int must_be_rsa, EVP_PKEY *key, const char **errmsg)
{
    if (X509_check_private_key(cert, key) != 1) {
        ERR_clear_error();
        return file_problem(p, role, path, "does not match its certificate", errmsg);
    }
    if (must_be_rsa && EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
        return file_problem(p, role, path,
                            "is not an RSA key, but clients encrypt their requests to it "
                            "(SCEP key transport needs RSA)", errmsg);
    }
    return APR_SUCCESS;
}

/* One private-key operation with `key`, checked against its certificate's public key: a
 * decryption when the key opens requests, else a signature. */
static int token_key_works(EVP_PKEY *key, X509 *cert, int decrypts)
{
    unsigned char secret[32], sealed[1024], opened[1024];
    size_t sealed_len = sizeof(sealed), opened_len = sizeof(opened);
    EVP_PKEY_CTX *pub = EVP_PKEY_CTX_new(X509_get0_pubkey(cert), NULL);
    EVP_PKEY_CTX *priv = EVP_PKEY_CTX_new(key, NULL);
    int ok;

    if (decrypts) {
        ok = pub && priv && RAND_bytes(secret, sizeof(secret)) == 1
             && EVP_PKEY_encrypt_init(pub) == 1
             && EVP_PKEY_CTX_set_rsa_padding(pub, RSA_PKCS1_PADDING) == 1
             && EVP_PKEY_encrypt(pub, sealed, &sealed_len, secret, sizeof(secret)) == 1
             && EVP_PKEY_decrypt_init(priv) == 1
             && EVP_PKEY_CTX_set_rsa_padding(priv, RSA_PKCS1_PADDING) == 1
             && EVP_PKEY_decrypt(priv, opened, &opened_len, sealed, sealed_len) == 1
             && opened_len == sizeof(secret)
             && CRYPTO_memcmp(opened, secret, sizeof(secret)) == 0;
    }
    else {
        ok = pub && priv && RAND_bytes(secret, sizeof(secret)) == 1
             && EVP_PKEY_sign_init(priv) == 1
             && EVP_PKEY_CTX_set_signature_md(priv, EVP_sha256()) == 1
             && EVP_PKEY_sign(priv, sealed, &sealed_len, secret, sizeof(secret)) == 1
             && EVP_PKEY_verify_init(pub) == 1
             && EVP_PKEY_CTX_set_signature_md(pub, EVP_sha256()) == 1
             && EVP_PKEY_verify(pub, sealed, sealed_len, secret, sizeof(secret)) == 1;
    }
    EVP_PKEY_CTX_free(pub);
    EVP_PKEY_CTX_free(priv);
    OPENSSL_cleanse(opened, sizeof(opened));
    ERR_clear_error();
    return ok;
}

static apr_status_t load_key(apr_pool_t *p, scep_ca_t *ca, const scep_ca_files_t *files,
                             const scep_log_t *log, int role_id, const char *role,
                             const char *path, X509 *cert, int must_be_rsa, EVP_PKEY **out,
                             const char **errmsg)
{
    const char *problem = NULL;
    EVP_PKEY *key = NULL;
    apr_status_t rv;
    BIO *bio;

    if (scep_token_is_uri(path)) {
        /* held until scep_ca_load ends (free_token_keys), not by the pool */
        if ((rv = scep_token_load_key(p, files->dialog, path, &key, &problem))
            != APR_SUCCESS) {
            *errmsg = apr_psprintf(p, "%s '%s' %s", role, path, problem);
            return rv;
        }
        ca->token_uri[role_id] = path;
        ca->tokens++;
        *out = key;
        scep_log(log, SCEP_LOG_INFO, "SCEP00502: %s '%s' found in the token", role, path);
        if ((rv = check_key(p, role, path, cert, must_be_rsa, key, errmsg)) != APR_SUCCESS
            || role_id == ROLE_SIGNER || EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA
            || token_key_works(key, cert, 1)) {
            return rv;
        }
        /* many HSMs refuse RSA PKCS#1 v1.5 decryption, or the key was made for signing:
         * known now, a refusal later is never taken for the token's failure.  A key that
         * cannot sign either tells of the token failing, not of what the key may do. */
        if (!token_key_works(key, cert, 0)) {
            return file_problem(p, role, path, "failed a test signature and a test "
                                "decryption in the token: the token does not work", errmsg);
        }
        if (must_be_rsa) {
            return file_problem(p, role, path, "does not decrypt in the token, and clients "
                                "encrypt their requests to it: keep this key in a file "
                                "(encrypted if you like) and only the signing keys in the "
                                "token", errmsg);
        }
        ca->keys.ca_key_signs_only = 1;
        scep_log(log, SCEP_LOG_WARNING, "SCEP00504: %s '%s' does not decrypt in the token: a "
                 "request encrypted to the CA certificate instead of the RA's gets FAILURE "
                 "badMessageCheck", role, path);
        return APR_SUCCESS;
    }
    if (!(bio = open_file(p, role, path, 1, errmsg))) {
        return APR_EINVAL;
    }
    rv = scep_key_read_pem(p, files->dialog, log, role, path, bio, cert, &key, &problem);
    BIO_free(bio);
    if (rv != APR_SUCCESS) {
        return file_problem(p, role, path, problem, errmsg);
    }
    if ((rv = check_key(p, role, path, cert, must_be_rsa, key, errmsg)) != APR_SUCCESS) {
        return rv;
    }
    *out = key;
    return APR_SUCCESS;
}

/* Where each role's key sits among the message keys */
static EVP_PKEY **role_slot(scep_ca_t *ca, int role_id)
{
    return role_id == ROLE_CA ? &ca->keys.ca_key
           : role_id == ROLE_RA ? &ca->keys.ra_key : &ca->keys.sign_key;
}

/* The certificate each role's key belongs to */
static X509 *role_cert(const scep_ca_t *ca, int role_id)
{
    return role_id == ROLE_CA ? ca->keys.ca_cert
           : role_id == ROLE_RA ? ca->keys.ra_cert : ca->keys.sign_cert;
}

/* The CertRep signer: the RA signer, else the RA, else the CA (as scep_ca_load sets it). */
static void pick_signer(scep_ca_t *ca)
{
    if (!ca->separate_signer) {
        ca->keys.sign_key = ca->keys.ra_cert ? ca->keys.ra_key : ca->keys.ca_key;
    }
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
    ca->issuance.end_entity_constraints = scep_util_own_X509_EXTENSION(
        p, X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:FALSE"));
    ca->issuance.authority_key_id = scep_util_own_X509_EXTENSION(
        p, X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid"));
    ca->issuance.sha1 = scep_util_own_EVP_MD(p, EVP_MD_fetch(NULL, "SHA1", NULL));
    if (!ca->issuance.end_entity_constraints || !ca->issuance.authority_key_id
        || !ca->issuance.sha1) {
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
    apr_status_t rv;
    int i;

    *certs = NULL;
    rv = load_certs(p, NULL, role, path, certs, errmsg);
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
    if ((rv = scep_msg_signed_certs(p, &ca->keys, certs, n, &ca->nextca_der,
                                    &ca->nextca_der_len)) != APR_SUCCESS) {
        *errmsg = apr_pstrcat(p, "cannot sign the GetNextCACert answer: ",
                              scep_util_openssl_errors(p), NULL);
        return rv;
    }
    ca->caps = apr_pstrcat(p, caps_text, "GetNextCACert\n", NULL);
    return APR_SUCCESS;
}

static apr_status_t free_token_keys(void *data)
{
    scep_ca_t *ca = data;
    int i;

    for (i = 0; i < SCEP_CA_ROLES; i++) {
        EVP_PKEY **slot = role_slot(ca, i);

        if (ca->token_uri[i] && *slot) {
            scep_token_free_key(*slot);
            *slot = NULL;
        }
    }
    pick_signer(ca);
    ca->token_ready = 0;
    return APR_SUCCESS;
}

static apr_status_t load_all(apr_pool_t *p, const scep_ca_files_t *files,
                             const scep_log_t *log, scep_ca_t *ca, const char **errmsg)
{
    STACK_OF(X509) *ca_file_certs;
    apr_status_t rv;
    char *name;

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

    ca->dialog = files->dialog;
    ca->separate_signer = files->ra_sign_cert_file != NULL;
    if ((rv = load_certs(p, files->dialog, "CA certificate", files->ca_cert_file,
                         &ca_file_certs, errmsg))) {
        return rv;
    }
    ca->keys.ca_cert = sk_X509_shift(ca_file_certs);
    scep_util_own_X509(p, ca->keys.ca_cert);
    ca->chain = ca_file_certs;
    if (files->ca_key_file
        && (rv = load_key(p, ca, files, log, ROLE_CA, "CA key", files->ca_key_file,
                          ca->keys.ca_cert, files->ra_cert_file == NULL, &ca->keys.ca_key,
                          errmsg))) {
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
        if ((rv = load_cert(p, files->dialog, "RA certificate", files->ra_cert_file,
                            &ca->keys.ra_cert, errmsg))
            || (rv = load_key(p, ca, files, log, ROLE_RA, "RA key", files->ra_key_file,
                              ca->keys.ra_cert, 1, &ca->keys.ra_key, errmsg))) {
            return rv;
        }
        X509_up_ref(ca->keys.ra_cert);
        scep_util_own_X509(p, ca->keys.ra_cert);
        ca->keys.sign_cert = ca->keys.ra_cert;
        ca->keys.sign_key = ca->keys.ra_key;
    }
    if (files->ra_sign_cert_file) {
        if ((rv = load_cert(p, files->dialog, "RA signing certificate",
                            files->ra_sign_cert_file, &ca->keys.sign_cert, errmsg))
            || (rv = load_key(p, ca, files, log, ROLE_SIGNER, "RA signing key",
                              files->ra_sign_key_file, ca->keys.sign_cert, 0,
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
        warn_about(log, "RA signing certificate", files->ra_sign_cert_file,
                   ca->keys.sign_cert, 0);
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
    return prepare_issuance(p, ca, files->ca_cert_file, errmsg);
}

apr_status_t scep_ca_load(apr_pool_t *p, const scep_ca_files_t *files, const scep_log_t *log,
                          scep_ca_t **out, const char **errmsg)
{
    scep_ca_t *ca = apr_pcalloc(p, sizeof(*ca));
    apr_status_t rv = load_all(p, files, log, ca, errmsg);

    /* the parent checked the token's keys (and signed GetNextCACert's answer with them):
     * it lets go of them before any child forks */
    free_token_keys(ca);
    scep_token_close();
    ERR_clear_error();
    *out = rv == APR_SUCCESS ? ca : NULL;
    return rv;
}

apr_status_t scep_ca_token_attach(scep_ca_t *ca, apr_pool_t *p, const scep_log_t *log,
                                  const char **errmsg)
{
    static const char *const roles[SCEP_CA_ROLES] = { "CA key", "RA key", "RA signing key" };
    const char *problem = NULL;
    apr_status_t rv = APR_SUCCESS;
    int i;

    if (!ca->tokens) {
        return APR_SUCCESS;
    }
    apr_pool_cleanup_run(p, ca, free_token_keys);
    for (i = 0; i < SCEP_CA_ROLES && rv == APR_SUCCESS; i++) {
        if (ca->token_uri[i]) {
            rv = scep_token_load_key(p, ca->dialog, ca->token_uri[i], role_slot(ca, i),
                                     &problem);
            if (rv != APR_SUCCESS) {
                *errmsg = apr_psprintf(p, "%s '%s' %s", roles[i], ca->token_uri[i], problem);
            }
            else if (X509_check_private_key(role_cert(ca, i), *role_slot(ca, i)) != 1) {
                /* the parent's check holds for the token it saw: another token with the
                 * same label, or the object replaced since, must not sign in its name */
                ERR_clear_error();
                *errmsg = apr_psprintf(p, "%s '%s' is not the key of its certificate any "
                                       "more", roles[i], ca->token_uri[i]);
                rv = APR_EINVAL;
            }
        }
    }
    apr_pool_cleanup_register(p, ca, free_token_keys, apr_pool_cleanup_null);
    if (rv != APR_SUCCESS) {
        apr_pool_cleanup_run(p, ca, free_token_keys);
        return rv;
    }
    pick_signer(ca);
    ca->token_ready = 1;
    scep_log(log, SCEP_LOG_DEBUG, "SCEP00503: this process holds its own session with the "
             "token of CA %s", ca->name);
    return APR_SUCCESS;
}

void scep_ca_token_detach(scep_ca_t *ca, apr_pool_t *p)
{
    if (ca->tokens) {
        apr_pool_cleanup_run(p, ca, free_token_keys);
    }
}

int scep_ca_in_token(const scep_ca_t *ca)
{
    return ca->tokens > 0;
}

int scep_ca_ready(const scep_ca_t *ca)
{
    return ca->tokens == 0 || ca->token_ready;
}

int scep_ca_token_works(const scep_ca_t *ca, int recipients)
{
    int decrypting = ca->keys.ra_cert ? ROLE_RA : ROLE_CA, i;

    if (!ca->tokens) {
        return 1;
    }
    if (!ca->token_ready) {
        return 0;
    }
    for (i = 0; i < SCEP_CA_ROLES; i++) {
        EVP_PKEY *key = *role_slot((scep_ca_t *)ca, i);

        int asked = !recipients || (i == ROLE_RA && (recipients & SCEP_MSG_RECIPIENT_RA))
                    || (i == ROLE_CA && (recipients & SCEP_MSG_RECIPIENT_CA));
        int decrypts = recipients ? 1 : i == decrypting;

        if (ca->token_uri[i] && asked
            && (!key || !token_key_works(key, role_cert(ca, i), decrypts))) {
            return 0;
        }
    }
    return 1;
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
    return ca->keys.ca_key != NULL || ca->token_uri[ROLE_CA] != NULL;
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

const scep_ca_issuance_t *scep_ca_issuance(const scep_ca_t *ca)
{
    return &ca->issuance;
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

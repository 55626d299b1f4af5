/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the core without httpd: CA loading and its refusals, the prepared
 * GetCACaps/GetCACert answers, profile helpers, and whole PKIOperations built here with
 * OpenSSL's CMS code and answered by scep_server_pkioperation(). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <openssl/cms.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "scep_ca.h"
#include "scep_ca.h"
#include "scep_csr.h"
#include "scep_keyless.h"
#include "scep_msg.h"
#include "scep_server.h"
#include "scep_store.h"

static char dir[] = "/tmp/scep-unit-XXXXXX";
static EVP_PKEY *ca_key, *ra_key, *device_key, *ec_key;
static X509 *ca_cert, *ra_cert, *other_cert;

/* ---- fixtures -------------------------------------------------------------------- */

static EVP_PKEY *rsa_key(int bits)
{
    EVP_PKEY *k = EVP_RSA_gen((unsigned int)bits);

    assert_non_null(k);
    return k;
}

static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                       int is_ca)
{
    X509 *x = X509_new();
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(rand() & 0x7fffffff) + 1);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365 * 5);
    X509_set_pubkey(x, key);
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
                              is_ca ? "critical,CA:TRUE" : "CA:FALSE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_key_identifier, "hash");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

static void write_pem(const char *name, X509 *cert, EVP_PKEY *key, mode_t mode)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    if (cert) {
        PEM_write_X509(f, cert);
    }
    if (key) {
        PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    }
    fclose(f);
    chmod(path, mode);
}

static int setup_all(void **state)
{
    assert_non_null(mkdtemp(dir));
    ca_key = rsa_key(2048);
    ra_key = rsa_key(2048);
    device_key = rsa_key(2048);
    ec_key = EVP_EC_gen("P-256");
    ca_cert = make_cert("Unit CA", ca_key, NULL, NULL, 1);
    ra_cert = make_cert("Unit RA", ra_key, ca_cert, ca_key, 0);
    other_cert = make_cert("Someone else", device_key, NULL, NULL, 0);
    write_pem("ca.pem", ca_cert, NULL, 0644);
    write_pem("ca.key", NULL, ca_key, 0600);
    write_pem("ra.pem", ra_cert, NULL, 0644);
    write_pem("ra.key", NULL, ra_key, 0600);
    write_pem("ra-open.key", NULL, ra_key, 0644);
    write_pem("wrong.key", NULL, device_key, 0600);
    {
        X509 *ec_cert = make_cert("EC RA", ec_key, ca_cert, ca_key, 0);

        write_pem("ec.pem", ec_cert, NULL, 0644);
        X509_free(ec_cert);
    }
    write_pem("ec.key", NULL, ec_key, 0600);
    write_pem("empty.pem", NULL, NULL, 0644);
    {
        /* the same CA without its subject key identifier */
        X509 *bare = make_cert("Unit CA", ca_key, NULL, NULL, 1);

        X509_EXTENSION_free(X509_delete_ext(bare, X509_get_ext_by_NID(bare,
                                            NID_subject_key_identifier, -1)));
        assert_true(X509_sign(bare, ca_key, EVP_sha256()) > 0);
        write_pem("noski-ca.pem", bare, NULL, 0644);
        X509_free(bare);
    }
    return 0;
}

static int teardown_all(void **state)
{
    char cmd[128];

    X509_free(ca_cert);
    X509_free(ra_cert);
    X509_free(other_cert);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(ra_key);
    EVP_PKEY_free(device_key);
    EVP_PKEY_free(ec_key);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *in_dir(apr_pool_t *p, const char *name)
{
    return apr_pstrcat(p, dir, "/", name, NULL);
}

static int pool_setup(void **state)
{
    apr_pool_t *p;

    apr_pool_create(&p, NULL);
    *state = p;
    return 0;
}

static int pool_teardown(void **state)
{
    apr_pool_destroy(*state);
    return 0;
}

static scep_ca_t *load_ca(apr_pool_t *p, int with_ra)
{
    scep_ca_files_t files = { 0 };
    scep_ca_t *ca = NULL;
    const char *err = NULL;

    files.ca_cert_file = in_dir(p, "ca.pem");
    files.ca_key_file = in_dir(p, "ca.key");
    if (with_ra) {
        files.ra_cert_file = in_dir(p, "ra.pem");
        files.ra_key_file = in_dir(p, "ra.key");
    }
    assert_int_equal(scep_ca_load(p, &files, NULL, &ca, &err), APR_SUCCESS);
    return ca;
}

/* ---- loading ----------------------------------------------------------------------- */

static void expect_load_error(apr_pool_t *p, const char *ca_file, const char *ca_key_file,
                              const char *ra_file, const char *ra_key_file, const char *needle)
{
    scep_ca_files_t files = { 0 };
    scep_ca_t *ca = NULL;
    const char *err = NULL;

    files.ca_cert_file = ca_file ? in_dir(p, ca_file) : NULL;
    files.ca_key_file = ca_key_file ? in_dir(p, ca_key_file) : NULL;
    files.ra_cert_file = ra_file ? in_dir(p, ra_file) : NULL;
    files.ra_key_file = ra_key_file ? in_dir(p, ra_key_file) : NULL;
    assert_int_not_equal(scep_ca_load(p, &files, NULL, &ca, &err), APR_SUCCESS);
    assert_null(ca);
    assert_non_null(err);
    if (!strstr(err, needle)) {
        fail_msg("error '%s' does not say '%s'", err, needle);
    }
}

/* One name per outcome, the audit log's and the status page's: distinct, and a FAILURE's
 * is "failure:" and its failInfo. */
static void test_outcome_names(void **state)
{
    static const int fail_infos[] = { SCEP_FAIL_BAD_ALG, SCEP_FAIL_BAD_MESSAGE_CHECK,
                                      SCEP_FAIL_BAD_REQUEST, SCEP_FAIL_BAD_TIME,
                                      SCEP_FAIL_BAD_CERT_ID };
    apr_pool_t *p = *state;
    int i, j;

    assert_null(scep_server_outcome_name(SCEP_OUTCOME_NONE));
    assert_null(scep_server_outcome_name(SCEP_OUTCOME_COUNT));
    for (i = SCEP_OUTCOME_NONE + 1; i < SCEP_OUTCOME_COUNT; i++) {
        assert_non_null(scep_server_outcome_name(i));
        for (j = SCEP_OUTCOME_NONE + 1; j < i; j++) {
            assert_string_not_equal(scep_server_outcome_name(i), scep_server_outcome_name(j));
        }
    }
    for (i = 0; i < 5; i++) {
        assert_string_equal(scep_server_outcome_name(SCEP_OUTCOME_FAILURE_BAD_ALG + i),
                            apr_pstrcat(p, "failure:", scep_msg_fail_info_name(fail_infos[i]),
                                        NULL));
    }
    assert_string_equal(scep_server_outcome_name(SCEP_OUTCOME_FAILURE_NONE),
                        apr_pstrcat(p, "failure:", scep_msg_fail_info_name(SCEP_FAIL_NONE),
                                    NULL));
}

static void test_load_refusals(void **state)
{
    apr_pool_t *p = *state;

    expect_load_error(p, "missing.pem", "ca.key", NULL, NULL, "missing.pem' cannot be used");
    expect_load_error(p, "empty.pem", "ca.key", NULL, NULL, "is empty");
    expect_load_error(p, "ca.pem", "wrong.key", NULL, NULL, "does not match");
    expect_load_error(p, "ca.pem", "ca.key", "ra.pem", "ra-open.key", "group or others");
    expect_load_error(p, "ca.pem", "ca.key", "ec.pem", "ec.key", "not an RSA key");
    expect_load_error(p, "ca.pem", "ca.key", "ra.pem", NULL, "go together");
    expect_load_error(p, NULL, "ca.key", NULL, NULL, "both required");
    expect_load_error(p, "ra.pem", "ra.key", NULL, NULL, "not a CA certificate");
    expect_load_error(p, "noski-ca.pem", "ca.key", "ra.pem", "ra.key",
                      "has no subjectKeyIdentifier");
}

static void test_cacert_answers(void **state)
{
    apr_pool_t *p = *state;
    const char *type;
    const unsigned char *der, *q;
    apr_size_t len;
    PKCS7 *p7;
    X509 *x;

    scep_ca_cacert(load_ca(p, 0), &type, &der, &len);
    assert_string_equal(type, "application/x-x509-ca-cert");
    q = der;
    x = d2i_X509(NULL, &q, (long)len);
    assert_non_null(x);
    assert_int_equal(X509_cmp(x, ca_cert), 0);
    X509_free(x);

    scep_ca_cacert(load_ca(p, 1), &type, &der, &len);
    assert_string_equal(type, "application/x-x509-ca-ra-cert");
    q = der;
    p7 = d2i_PKCS7(NULL, &q, (long)len);
    assert_non_null(p7);
    assert_int_equal(sk_X509_num(p7->d.sign->cert), 2);
    assert_int_equal(X509_cmp(sk_X509_value(p7->d.sign->cert, 0), ca_cert), 0);
    assert_int_equal(X509_cmp(sk_X509_value(p7->d.sign->cert, 1), ra_cert), 0);
    PKCS7_free(p7);

    assert_non_null(strstr(scep_ca_caps(load_ca(p, 1)), "POSTPKIOperation\n"));
    assert_null(strstr(scep_ca_caps(load_ca(p, 1)), "Renewal"));
}

/* OpenSSL's PKCS#7 writer, which built these answers before scep_msg_degenerate: the
 * reference the hand-written DER must equal byte for byte. */
static unsigned char *reference_degenerate(X509 *const *certs, int count, X509_CRL *crl,
                                           int *len)
{
    PKCS7 *p7 = PKCS7_new();
    unsigned char *der = NULL;
    int i;

    assert_non_null(p7);
    assert_true(PKCS7_set_type(p7, NID_pkcs7_signed));
    assert_true(PKCS7_content_new(p7, NID_pkcs7_data));
    for (i = 0; i < count; i++) {
        assert_true(PKCS7_add_certificate(p7, certs[i]));
    }
    if (crl) {
        assert_true(PKCS7_add_crl(p7, crl));
    }
    *len = i2d_PKCS7(p7, &der);
    assert_true(*len > 0);
    PKCS7_free(p7);
    return der;
}

/* A CRL of `revoked` entries signed by the unit CA: over 64 KB from about 2,500, so that
 * three length octets are needed. */
static X509_CRL *make_crl(int revoked)
{
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *now = ASN1_TIME_set(NULL, time(NULL));
    int i;

    assert_non_null(crl);
    assert_true(X509_CRL_set_version(crl, 1));
    assert_true(X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca_cert)));
    assert_true(X509_CRL_set1_lastUpdate(crl, now));
    for (i = 0; i < revoked; i++) {
        X509_REVOKED *r = X509_REVOKED_new();
        ASN1_INTEGER *serial = ASN1_INTEGER_new();

        assert_true(ASN1_INTEGER_set_int64(serial, 0x10000000LL + i));
        assert_true(X509_REVOKED_set_serialNumber(r, serial));
        assert_true(X509_REVOKED_set_revocationDate(r, now));
        assert_true(X509_CRL_add0_revoked(crl, r));
        ASN1_INTEGER_free(serial);
    }
    assert_true(X509_CRL_sign(crl, ca_key, EVP_sha256()) > 0);
    ASN1_TIME_free(now);
    return crl;
}

/* GetCACert's, CertRep's and GetCRL's degenerate SignedData, written by hand, equal what
 * OpenSSL's PKCS#7 writer made of the same certificates and CRLs. */
static void test_degenerate(void **state)
{
    apr_pool_t *p = *state;
    X509 *certs[3] = { ca_cert, ra_cert, other_cert };
    int counts[] = { 1, 2, 3 }, revoked[] = { 0, 3, 3000 };
    unsigned char *der, *ref, *crl_der;
    apr_size_t len;
    int i, ref_len, crl_len;

    for (i = 0; i < 3; i++) {
        ref = reference_degenerate(certs, counts[i], NULL, &ref_len);
        assert_int_equal(scep_msg_certs_only(p, certs, counts[i], &der, &len), APR_SUCCESS);
        assert_int_equal(len, ref_len);
        assert_memory_equal(der, ref, len);
        OPENSSL_free(ref);
    }
    for (i = 0; i < 3; i++) {
        X509_CRL *crl = make_crl(revoked[i]);

        crl_der = NULL;
        crl_len = i2d_X509_CRL(crl, &crl_der);
        assert_true(crl_len > 0);
        ref = reference_degenerate(NULL, 0, crl, &ref_len);
        assert_int_equal(scep_msg_degenerate(p, NULL, NULL, 0, crl_der, (apr_size_t)crl_len,
                                             &der, &len), APR_SUCCESS);
        assert_int_equal(len, ref_len);
        assert_memory_equal(der, ref, len);
        if (revoked[i] == 3000) {
            assert_true(len > 65535);
        }
        OPENSSL_free(ref);
        OPENSSL_free(crl_der);
        X509_CRL_free(crl);
    }
    /* nothing is written for parts that cannot be DER */
    {
        const unsigned char *empty = (const unsigned char *)"";
        apr_size_t zero = 0;

        assert_int_equal(scep_msg_degenerate(p, &empty, &zero, 1, NULL, 0, &der, &len),
                         APR_EINVAL);
        assert_int_equal(scep_msg_degenerate(p, NULL, NULL, -1, NULL, 0, &der, &len),
                         APR_EINVAL);
        assert_int_equal(scep_msg_degenerate(p, NULL, NULL, 0, empty, 0, &der, &len),
                         APR_EINVAL);
    }
}

/* Rollover: the next CA is announced (signed by the current RA), certificates of a
 * previous CA count as issued here. */
static void test_rollover(void **state)
{
    apr_pool_t *p = *state;
    EVP_PKEY *old_key = rsa_key(2048);
    X509 *old_ca = make_cert("Old CA", old_key, NULL, NULL, 1);
    X509 *old_device = make_cert("Old device", device_key, old_ca, old_key, 0);
    X509 *device = make_cert("Device", device_key, ca_cert, ca_key, 0);
    scep_ca_files_t files = { 0 };
    const unsigned char *der, *in;
    apr_size_t len;
    scep_ca_t *ca = load_ca(p, 1);
    const char *err = NULL;
    CMS_ContentInfo *cms;
    STACK_OF(X509) *certs;
    BIO *out;

    write_pem("old-ca.pem", old_ca, NULL, 0644);
    write_pem("next.pem", other_cert, NULL, 0644);
    scep_ca_nextcacert(ca, &der, &len);
    assert_null(der);
    assert_null(strstr(scep_ca_caps(ca), "GetNextCACert"));
    assert_true(scep_ca_issued(ca, device));
    assert_false(scep_ca_issued(ca, old_device));

    files.ca_cert_file = in_dir(p, "ca.pem");
    files.ca_key_file = in_dir(p, "ca.key");
    files.ra_cert_file = in_dir(p, "ra.pem");
    files.ra_key_file = in_dir(p, "ra.key");
    files.previous_ca_file = in_dir(p, "old-ca.pem");
    files.next_ca_file = in_dir(p, "old-ca.pem");   /* any CA other than the current */
    assert_int_equal(scep_ca_load(p, &files, NULL, &ca, &err), APR_SUCCESS);
    assert_true(scep_ca_issued(ca, device));
    assert_true(scep_ca_issued(ca, old_device));
    assert_non_null(strstr(scep_ca_caps(ca), "GetNextCACert\n"));
    scep_ca_nextcacert(ca, &der, &len);
    assert_non_null(der);
    in = der;
    cms = d2i_CMS_ContentInfo(NULL, &in, (long)len);
    assert_non_null(cms);
    certs = CMS_get1_certs(cms);
    assert_int_equal(sk_X509_num(certs), 1);
    assert_int_equal(X509_cmp(sk_X509_value(certs, 0), old_ca), 0);
    sk_X509_pop_free(certs, X509_free);
    certs = sk_X509_new_null();
    sk_X509_push(certs, ra_cert);
    out = BIO_new(BIO_s_mem());
    assert_int_equal(CMS_verify(cms, certs, NULL, NULL, out, CMS_NO_SIGNER_CERT_VERIFY), 1);
    BIO_free(out);
    sk_X509_free(certs);
    CMS_ContentInfo_free(cms);

    /* a non-CA certificate, or the current CA as the next one, is refused */
    files.previous_ca_file = NULL;
    files.next_ca_file = in_dir(p, "next.pem");
    assert_int_not_equal(scep_ca_load(p, &files, NULL, &ca, &err), APR_SUCCESS);
    assert_non_null(strstr(err, "not a CA certificate"));
    files.next_ca_file = in_dir(p, "ca.pem");
    assert_int_not_equal(scep_ca_load(p, &files, NULL, &ca, &err), APR_SUCCESS);
    assert_non_null(strstr(err, "holds the current CA certificate"));

    X509_free(old_ca);
    X509_free(old_device);
    X509_free(device);
    EVP_PKEY_free(old_key);
}

static void test_profile_helpers(void **state)
{
    apr_pool_t *p = *state;
    scep_profile_t profile;
    unsigned int bit = 0;
    const char *good[] = { "serverAuth", "1.3.6.1.5.5.7.3.17" };
    const char *bad[] = { "clientAuth", "noSuchUsage" };
    const char *none[] = { "none" };

    scep_profile_defaults(&profile, p);
    assert_int_equal(profile.validity_days, 365);
    assert_non_null(profile.eku_der);
    assert_null(scep_profile_key_usage_bit("keyEncipherment", &bit));
    assert_int_equal(bit, SCEP_KU_KEY_ENCIPHERMENT);
    assert_non_null(scep_profile_key_usage_bit("keyCertSign", &bit));
    assert_null(scep_profile_set_eku(&profile, p, 2, good));
    assert_non_null(scep_profile_set_eku(&profile, p, 2, bad));
    assert_null(scep_profile_set_eku(&profile, p, 1, none));
    assert_null(profile.eku_der);
}

/* ---- PKIOperation round trips ----------------------------------------------------- */

typedef struct request_opts {
    const char *challenge;
    const EVP_CIPHER *cipher;
    const EVP_MD *md;
    X509 *recipient;
    EVP_PKEY *key;
    int break_signature;
    int message_type;
    const char *message_type_text;  /* sent instead of message_type when set */
    int sans;           /* dNSNames in the requested subjectAltName */
    int ber;            /* indefinite-length encoding, as Apple and jscep send */
    int key_params;     /* the RSA key's parameters: 0 NULL, V_ASN1_UNDEF absent,
                           V_ASN1_BOOLEAN a TRUE that OpenSSL's decoder ignores */
    int ber_key;        /* the RSAPublicKey with an indefinite length, which DER forbids */
    EVP_PKEY *csr_key;  /* the PKCS#10's key when it is not the signer's */
    X509 *signer;       /* instead of a self-signed certificate for `key` */
    const unsigned char *content;   /* enveloped instead of a PKCS#10 (GetCert's query) */
    int content_len;
    EVP_PKEY *csr_fake;     /* the PKCS#10 carries this public key, signed with `key` */
    EVP_PKEY *signer_fake;  /* the signer certificate carries this public key */
    int forge;              /* the signature(s) made for a fake key with e = 1 */
} request_opts;

static unsigned char sent_nonce[16];

static X509_REQ *make_csr(EVP_PKEY *key, EVP_PKEY *sign_key, const char *cn,
                          const char *challenge, int sans, int key_params, int ber_key)
{
    X509_REQ *req = X509_REQ_new();
    GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    int i;

    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_REQ_set_pubkey(req, key);
    if (key_params) {
        /* only the AlgorithmIdentifier changes; the signature below covers it */
        assert_int_equal(X509_PUBKEY_set0_param(X509_REQ_get_X509_PUBKEY(req),
                                                OBJ_nid2obj(NID_rsaEncryption), key_params,
                                                key_params == V_ASN1_BOOLEAN ? (void *)1 : NULL,
                                                NULL, 0), 1);
    }
    if (ber_key) {
        /* 30 82 LL LL <n e> becomes 30 80 <n e> 00 00: the same RSAPublicKey in BER */
        const unsigned char *bits;
        unsigned char *ber;
        int len;

        assert_int_equal(X509_PUBKEY_get0_param(NULL, &bits, &len, NULL,
                                                X509_REQ_get_X509_PUBKEY(req)), 1);
        assert_true(len > 4 && bits[0] == 0x30 && bits[1] == 0x82);
        ber = OPENSSL_malloc((size_t)len);
        ber[0] = 0x30;
        ber[1] = 0x80;
        memcpy(ber + 2, bits + 4, (size_t)len - 4);
        ber[len - 2] = 0x00;
        ber[len - 1] = 0x00;
        assert_int_equal(X509_PUBKEY_set0_param(X509_REQ_get_X509_PUBKEY(req),
                                                OBJ_nid2obj(NID_rsaEncryption), V_ASN1_NULL,
                                                NULL, ber, len), 1);
    }
    if (challenge) {
        X509_REQ_add1_attr_by_NID(req, NID_pkcs9_challengePassword, MBSTRING_ASC,
                                  (const unsigned char *)challenge, -1);
    }
    for (i = 0; i < sans; i++) {
        GENERAL_NAME *gn = GENERAL_NAME_new();
        ASN1_IA5STRING *dns = ASN1_IA5STRING_new();
        char text[32];

        snprintf(text, sizeof(text), "san%d.example.com", i);
        ASN1_STRING_set(dns, text, -1);
        GENERAL_NAME_set0_value(gn, GEN_DNS, dns);
        sk_GENERAL_NAME_push(names, gn);
    }
    if (sans > 0) {
        sk_X509_EXTENSION_push(exts, X509V3_EXT_i2d(NID_subject_alt_name, 0, names));
        X509_REQ_add_extensions(req, exts);
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    GENERAL_NAMES_free(names);
    X509_REQ_sign(req, sign_key ? sign_key : key, EVP_sha256());
    return req;
}

/* An RSA public key of modulus n and exponent e, whatever they are: OpenSSL checks
 * neither when it makes a key from its numbers, so nor does a hostile client. */
static EVP_PKEY *rsa_public(const BIGNUM *n, const BIGNUM *e)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    OSSL_PARAM *params;
    EVP_PKEY *key = NULL;

    assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n), 1);
    assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e), 1);
    params = OSSL_PARAM_BLD_to_param(bld);
    assert_non_null(params);
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params), 1);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    return key;
}

/* The modulus of `key` (or, with `bits`, a random odd number of that many bits) with
 * the exponent written in hex, or with `e_bits`, a random odd exponent of that many
 * bits. */
static EVP_PKEY *with_exponent(EVP_PKEY *key, int bits, const char *e_hex, int e_bits)
{
    BIGNUM *n = NULL, *e = NULL;
    EVP_PKEY *out;

    if (bits) {
        n = BN_new();
        assert_int_equal(BN_rand(n, bits, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD), 1);
    }
    else {
        assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n), 1);
    }
    if (e_bits) {
        e = BN_new();
        assert_int_equal(BN_rand(e, e_bits, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD), 1);
    }
    else {
        assert_true(BN_hex2bn(&e, e_hex) > 0);
    }
    out = rsa_public(n, e);
    BN_free(n);
    BN_free(e);
    return out;
}

/* A PKCS#1 v1.5 signature made with `key` becomes a signature by the same modulus with
 * e = 1: what it decrypts to under the real exponent, the padded digest itself.  That
 * anyone can write it is the defect of point 10 (the real key only saves coding the
 * padding here). */
static void forge_for_e1(EVP_PKEY *key, ASN1_STRING *sig)
{
    BIGNUM *n = NULL, *e = NULL, *s = BN_bin2bn(ASN1_STRING_get0_data(sig),
                                                ASN1_STRING_length(sig), NULL);
    BN_CTX *ctx = BN_CTX_new();
    unsigned char em[1024];
    int k = ASN1_STRING_length(sig);

    assert_true(k > 0 && k <= (int)sizeof(em));
    assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n), 1);
    assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e), 1);
    assert_int_equal(BN_mod_exp(s, s, e, n, ctx), 1);
    assert_int_equal(BN_bn2binpad(s, em, k), k);
    assert_int_equal(ASN1_STRING_set(sig, em, k), 1);
    BN_free(n);
    BN_free(e);
    BN_free(s);
    BN_CTX_free(ctx);
}

/* The request's PKCS#10, with the device key or the fake one of the options. */
static X509_REQ *request_csr(const request_opts *o, EVP_PKEY *key)
{
    const ASN1_BIT_STRING *sig = NULL;
    X509_REQ *req;

    if (!o->csr_fake) {
        return make_csr(o->csr_key ? o->csr_key : key, NULL, "device.example.com",
                        o->challenge, o->sans, o->key_params, o->ber_key);
    }
    req = make_csr(o->csr_fake, key, "device.example.com", o->challenge, o->sans, 0, 0);
    if (o->forge) {
        X509_REQ_get0_signature(req, &sig, NULL);
        forge_for_e1(key, (ASN1_STRING *)sig);
    }
    return req;
}

static unsigned char *build_request(apr_pool_t *p, const request_opts *o, apr_size_t *len)
{
    EVP_PKEY *key = o->key ? o->key : device_key;
    X509 *self = o->signer ? X509_dup(o->signer) : make_cert("device", key, NULL, NULL, 0);
    X509_REQ *req = request_csr(o, key);
    STACK_OF(X509) *recips = sk_X509_new_null();
    unsigned char *csr_der = NULL, *out;
    int csr_len = i2d_X509_REQ(req, &csr_der);
    BIO *in = o->content ? BIO_new_mem_buf(o->content, o->content_len)
              : BIO_new_mem_buf(csr_der, csr_len), *env_bio = BIO_new(BIO_s_mem()),
        *result = BIO_new(BIO_s_mem());
    CMS_ContentInfo *env, *sd;
    CMS_SignerInfo *si;
    char type[8];
    char *data;
    long n;

    sk_X509_push(recips, o->recipient ? o->recipient : ra_cert);
    env = CMS_encrypt(recips, in, o->cipher ? o->cipher : EVP_aes_128_cbc(),
                      CMS_BINARY | (o->ber ? CMS_STREAM : 0));
    assert_non_null(env);
    if (o->ber) {
        assert_int_equal(i2d_CMS_bio_stream(env_bio, env, in, CMS_STREAM | CMS_BINARY), 1);
    }
    else {
        i2d_CMS_bio(env_bio, env);
    }
    sd = CMS_sign(NULL, NULL, NULL, NULL, CMS_PARTIAL | CMS_BINARY | (o->ber ? CMS_STREAM : 0));
    si = CMS_add1_signer(sd, self, key, o->md ? o->md : EVP_sha256(),
                         CMS_BINARY | (o->signer_fake ? CMS_NOCERTS : 0));
    assert_non_null(si);
    if (o->signer_fake) {
        /* the same issuer and serial, so the SignerInfo names it, with the other key */
        X509 *fake = X509_dup(self);

        assert_int_equal(X509_set_pubkey(fake, o->signer_fake), 1);
        /* signing encodes it again (its self-signature cannot verify, and is not read) */
        assert_true(X509_sign(fake, key, EVP_sha256()) > 0);
        assert_int_equal(CMS_add1_cert(sd, fake), 1);
        X509_free(fake);
    }
    RAND_bytes(sent_nonce, sizeof(sent_nonce));
    if (o->message_type_text) {
        snprintf(type, sizeof(type), "%s", o->message_type_text);
    }
    else {
        snprintf(type, sizeof(type), "%d", o->message_type ? o->message_type : 19);
    }
    CMS_signed_add1_attr_by_txt(si, "2.16.840.1.113733.1.9.2", V_ASN1_PRINTABLESTRING,
                                type, (int)strlen(type));
    CMS_signed_add1_attr_by_txt(si, "2.16.840.1.113733.1.9.7", V_ASN1_PRINTABLESTRING,
                                "unit-txid-1", 11);
    CMS_signed_add1_attr_by_txt(si, "2.16.840.1.113733.1.9.5", V_ASN1_OCTET_STRING,
                                sent_nonce, sizeof(sent_nonce));
    if (o->ber) {
        assert_int_equal(i2d_CMS_bio_stream(result, sd, env_bio, CMS_STREAM | CMS_BINARY), 1);
        /* An indefinite length shows as 0x80 right after the outer SEQUENCE tag. */
        n = BIO_get_mem_data(result, &data);
        assert_true(n > 2 && (unsigned char)data[0] == 0x30 && (unsigned char)data[1] == 0x80);
        goto encoded;
    }
    assert_int_equal(CMS_final(sd, env_bio, NULL, CMS_BINARY), 1);
    if (o->signer_fake && o->forge) {
        forge_for_e1(key, CMS_SignerInfo_get0_signature(si));
    }
    if (o->break_signature) {
        ASN1_OCTET_STRING *sig = CMS_SignerInfo_get0_signature(si);

        ((unsigned char *)ASN1_STRING_get0_data(sig))[10] ^= 0x01;
    }
    i2d_CMS_bio(result, sd);
encoded:
    n = BIO_get_mem_data(result, &data);
    out = apr_pmemdup(p, data, (apr_size_t)n);
    *len = (apr_size_t)n;
    BIO_free(in);
    BIO_free(env_bio);
    BIO_free(result);
    CMS_ContentInfo_free(env);
    CMS_ContentInfo_free(sd);
    OPENSSL_free(csr_der);
    X509_REQ_free(req);
    sk_X509_free(recips);
    X509_free(self);
    return out;
}

/* The value of a CertRep attribute as text, or NULL. */
static const char *reply_attr(apr_pool_t *p, CMS_ContentInfo *rep, const char *oid)
{
    CMS_SignerInfo *si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(rep), 0);
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    int idx = CMS_signed_get_attr_by_OBJ(si, obj, -1);
    ASN1_TYPE *t;

    ASN1_OBJECT_free(obj);
    if (idx < 0) {
        return NULL;
    }
    t = X509_ATTRIBUTE_get0_type(CMS_signed_get_attr(si, idx), 0);
    return apr_pstrmemdup(p, (const char *)ASN1_STRING_get0_data(t->value.asn1_string),
                          (apr_size_t)ASN1_STRING_length(t->value.asn1_string));
}

static CMS_ContentInfo *run(apr_pool_t *p, const scep_ca_t *ca, const scep_profile_t *profile,
                            const request_opts *o, scep_reply_t *reply)
{
    apr_size_t len;
    unsigned char *msg = build_request(p, o, &len);
    scep_peer_t peer = { "127.0.0.1", "/scep" };
    BIO *b;
    CMS_ContentInfo *rep;

    scep_server_pkioperation(p, ca, profile, NULL, msg, len, &peer,
                             (apr_int64_t)time(NULL), NULL, reply);
    if (reply->http_status != 200) {
        return NULL;
    }
    b = BIO_new_mem_buf(reply->body, (int)reply->body_len);
    rep = d2i_CMS_bio(b, NULL);
    BIO_free(b);
    assert_non_null(rep);
    /* Signed by the RA, verifiable with its certificate. */
    {
        STACK_OF(X509) *signer = sk_X509_new_null();

        sk_X509_push(signer, ra_cert);
        assert_int_equal(CMS_verify(rep, signer, NULL, NULL, NULL,
                                    CMS_NO_SIGNER_CERT_VERIFY | CMS_NOINTERN | CMS_BINARY), 1);
        sk_X509_free(signer);
    }
    assert_string_equal(reply_attr(p, rep, "2.16.840.1.113733.1.9.7"), "unit-txid-1");
    assert_string_equal(reply_attr(p, rep, "2.16.840.1.113733.1.9.2"), "3");
    assert_memory_equal(reply_attr(p, rep, "2.16.840.1.113733.1.9.6"), sent_nonce, 16);
    assert_int_equal(strlen(reply_attr(p, rep, "1.2.840.113549.1.9.5")), 13); /* signingTime */
    {
        CMS_SignerInfo *si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(rep), 0);
        ASN1_OBJECT *obj = OBJ_txt2obj("2.16.840.1.113733.1.9.5", 1);
        ASN1_TYPE *t = X509_ATTRIBUTE_get0_type(
            CMS_signed_get_attr(si, CMS_signed_get_attr_by_OBJ(si, obj, -1)), 0);
        X509_ALGOR *sig_alg;

        assert_int_equal(ASN1_STRING_length(t->value.octet_string), 16);
        ASN1_OBJECT_free(obj);
        /* strongSwan accepts nothing but rsaEncryption here. */
        CMS_SignerInfo_get0_algs(si, NULL, NULL, NULL, &sig_alg);
        assert_int_equal(OBJ_obj2nid(sig_alg->algorithm), NID_rsaEncryption);
    }
    return rep;
}

/* GetCert for `cert`'s serial from `db`: the reply's HTTP status and outcome. */
static int get_recorded(apr_pool_t *p, const scep_ca_t *ca, scep_db_t *db, X509 *cert,
                        const char **outcome)
{
    PKCS7_ISSUER_AND_SERIAL *ias = PKCS7_ISSUER_AND_SERIAL_new();
    unsigned char *query = NULL, *msg;
    scep_profile_t profile;
    scep_peer_t peer = { "127.0.0.1", "/scep" };
    scep_reply_t reply;
    request_opts o = { .message_type = 21 };
    apr_size_t len;

    assert_true(X509_NAME_set(&ias->issuer, X509_get_subject_name(ca_cert)));
    ASN1_INTEGER_free(ias->serial);
    ias->serial = ASN1_INTEGER_dup(X509_get0_serialNumber(cert));
    o.content_len = i2d_PKCS7_ISSUER_AND_SERIAL(ias, &query);
    assert_true(o.content_len > 0);
    o.content = query;
    msg = build_request(p, &o, &len);
    scep_profile_defaults(&profile, p);
    memset(&reply, 0, sizeof(reply));
    scep_server_pkioperation(p, ca, &profile, db, msg, len, &peer, (apr_int64_t)time(NULL),
                             NULL, &reply);
    OPENSSL_free(query);
    PKCS7_ISSUER_AND_SERIAL_free(ias);
    *outcome = scep_server_outcome_name(reply.outcome);
    return reply.http_status;
}

/* A recorded certificate is sent as recorded, so GetCert refuses a record that is not
 * exactly one certificate rather than wrap it in a SUCCESS. */
static void test_recorded_certificate(void **state)
{
    apr_pool_t *p = *state;
    scep_ca_t *ca = load_ca(p, 1);
    scep_db_t *db;
    scep_txn_t *txn;
    const char *why = NULL, *outcome;
    X509 *certs[3];
    unsigned char *der[3];
    int lens[3], i;

    assert_int_equal(scep_db_open(p, in_dir(p, "getcert-db"), 0, SCEP_DB_CREATE, NULL, &db,
                                  &why), APR_SUCCESS);
    assert_int_equal(scep_db_begin(db, p, 1, &txn), APR_SUCCESS);
    for (i = 0; i < 3; i++) {
        scep_cert_rec_t rec = { 0 };

        certs[i] = make_cert("Recorded", device_key, ca_cert, ca_key, 0);
        der[i] = NULL;
        lens[i] = i2d_X509(certs[i], &der[i]);
        assert_true(lens[i] > 100);
        rec.serial = scep_store_serial_hex(p, X509_get0_serialNumber(certs[i]));
        rec.der = der[i];
        /* as issued; with a byte after it; cut short */
        rec.der_len = (apr_size_t)(i == 0 ? lens[i] : i == 1 ? lens[i] + 1 : lens[i] - 10);
        if (i == 1) {
            unsigned char *longer = apr_palloc(p, (apr_size_t)lens[i] + 1);

            memcpy(longer, der[i], (apr_size_t)lens[i]);
            longer[lens[i]] = 0;
            rec.der = longer;
        }
        rec.fqdn = "recorded.example.com";
        rec.subject = "CN=Recorded";
        rec.transaction_id = apr_psprintf(p, "recorded-%d", i);
        assert_int_equal(scep_store_cert_put(txn, p, &rec), APR_SUCCESS);
    }
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);

    assert_int_equal(get_recorded(p, ca, db, certs[0], &outcome), 200);
    assert_string_equal(outcome, "certificate");
    assert_int_equal(get_recorded(p, ca, db, certs[1], &outcome), 500);
    assert_string_equal(outcome, "error");
    assert_int_equal(get_recorded(p, ca, db, certs[2], &outcome), 500);
    assert_string_equal(outcome, "error");
    for (i = 0; i < 3; i++) {
        OPENSSL_free(der[i]);
        X509_free(certs[i]);
    }
}

static scep_profile_t challenge_profile(apr_pool_t *p)
{
    scep_profile_t profile;

    scep_profile_defaults(&profile, p);
    scep_profile_set_challenge(&profile, p, "s3cret");
    return profile;
}

static void test_enroll_success(void **state)
{
    apr_pool_t *p = *state;
    scep_ca_t *ca = load_ca(p, 1);
    scep_profile_t profile = challenge_profile(p);
    const EVP_CIPHER *ciphers[] = { EVP_aes_128_cbc(), EVP_aes_256_cbc(), EVP_des_ede3_cbc() };
    size_t i;

    for (i = 0; i < sizeof(ciphers) / sizeof(ciphers[0]); i++) {
        request_opts o = { .challenge = "s3cret", .cipher = ciphers[i], .md = EVP_sha1() };
        scep_reply_t reply;
        CMS_ContentInfo *rep = run(p, ca, &profile, &o, &reply);
        ASN1_OCTET_STRING **content = CMS_get0_content(rep);
        BIO *env_in, *plain = BIO_new(BIO_s_mem());
        CMS_ContentInfo *env;
        X509 *self = make_cert("device", device_key, NULL, NULL, 0);
        char *data;
        long n;
        const unsigned char *q;
        PKCS7 *p7;
        X509 *issued;
        X509_STORE *store = X509_STORE_new();
        X509_STORE_CTX *vctx = X509_STORE_CTX_new();

        assert_string_equal(scep_server_outcome_name(reply.outcome), "issued");
        assert_string_equal(reply_attr(p, rep, "2.16.840.1.113733.1.9.3"), "0");
        env_in = BIO_new_mem_buf(ASN1_STRING_get0_data(*content),
                                 ASN1_STRING_length(*content));
        env = d2i_CMS_bio(env_in, NULL);
        assert_non_null(env);
        assert_int_equal(CMS_decrypt(env, device_key, NULL, NULL, plain, CMS_BINARY), 1);
        n = BIO_get_mem_data(plain, &data);
        q = (const unsigned char *)data;
        p7 = d2i_PKCS7(NULL, &q, n);
        assert_non_null(p7);
        issued = sk_X509_value(p7->d.sign->cert, 0);
        X509_STORE_add_cert(store, ca_cert);
        X509_STORE_CTX_init(vctx, store, issued, NULL);
        assert_int_equal(X509_verify_cert(vctx), 1);
        assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(issued), device_key), 1);
        X509_STORE_CTX_free(vctx);
        X509_STORE_free(store);
        PKCS7_free(p7);
        X509_free(self);
        CMS_ContentInfo_free(env);
        CMS_ContentInfo_free(rep);
        BIO_free(env_in);
        BIO_free(plain);
    }
}

static void test_enroll_ber(void **state)
{
    apr_pool_t *p = *state;
    scep_profile_t profile = challenge_profile(p);
    request_opts o = { .challenge = "s3cret", .ber = 1 };
    scep_reply_t reply;
    CMS_ContentInfo *rep = run(p, load_ca(p, 1), &profile, &o, &reply);

    assert_non_null(rep);
    assert_string_equal(scep_server_outcome_name(reply.outcome), "issued");
    CMS_ContentInfo_free(rep);
}

static void expect_failure(apr_pool_t *p, const scep_profile_t *profile, request_opts o,
                           const char *fail_info)
{
    scep_reply_t reply;
    CMS_ContentInfo *rep = run(p, load_ca(p, 1), profile, &o, &reply);

    assert_non_null(rep);
    assert_string_equal(reply_attr(p, rep, "2.16.840.1.113733.1.9.3"), "2");
    assert_string_equal(reply_attr(p, rep, "2.16.840.1.113733.1.9.4"), fail_info);
    assert_non_null(reply_attr(p, rep, "1.3.6.1.5.5.7.24.1"));
    CMS_ContentInfo_free(rep);
}

static void test_enroll_failures(void **state)
{
    apr_pool_t *p = *state;
    scep_profile_t profile = challenge_profile(p);
    scep_profile_t open_profile;
    request_opts wrong = { .challenge = "guess" };
    request_opts missing = { .challenge = NULL };
    request_opts tampered = { .challenge = "s3cret", .break_signature = 1 };
    request_opts elsewhere = { .challenge = "s3cret", .recipient = other_cert };
    request_opts md5 = { .challenge = "s3cret", .md = EVP_md5() };
    request_opts poll = { .challenge = "s3cret", .message_type = 20 };
    EVP_PKEY *small = rsa_key(1024);
    request_opts weak = { .challenge = "s3cret", .key = small };
    /* atoi() once read these as a PKCSReq */
    request_opts type_suffix = { .challenge = "s3cret", .message_type_text = "19x" };
    request_opts type_sign = { .challenge = "s3cret", .message_type_text = "+19" };
    request_opts many_sans = { .challenge = "s3cret", .sans = SCEP_CSR_SAN_MAX + 1 };
    request_opts max_sans = { .challenge = "s3cret", .sans = SCEP_CSR_SAN_MAX };
    /* decodes and verifies, but copying such parameters once crashed the child */
    request_opts boolean_params = { .challenge = "s3cret", .key_params = V_ASN1_BOOLEAN };
    request_opts absent_params = { .challenge = "s3cret", .key_params = V_ASN1_UNDEF };
    /* OpenSSL's key decoder accepts this BER form, and the key bits go into the
     * certificate as sent: refused */
    request_opts ber_key = { .challenge = "s3cret", .ber_key = 1 };
    scep_reply_t reply;
    CMS_ContentInfo *rep;

    expect_failure(p, &profile, wrong, "2");
    expect_failure(p, &profile, missing, "2");
    expect_failure(p, &profile, tampered, "1");
    expect_failure(p, &profile, elsewhere, "1");
    expect_failure(p, &profile, md5, "0");
    expect_failure(p, &profile, poll, "2");
    expect_failure(p, &profile, weak, "2");
    expect_failure(p, &profile, type_suffix, "2");
    expect_failure(p, &profile, type_sign, "2");
    expect_failure(p, &profile, many_sans, "2");
    expect_failure(p, &profile, boolean_params, "2");
    expect_failure(p, &profile, ber_key, "2");
    rep = run(p, load_ca(p, 1), &profile, &max_sans, &reply);
    assert_non_null(rep);
    assert_string_equal(scep_server_outcome_name(reply.outcome), "issued");
    CMS_ContentInfo_free(rep);
    rep = run(p, load_ca(p, 1), &profile, &absent_params, &reply);
    assert_non_null(rep);
    assert_string_equal(scep_server_outcome_name(reply.outcome), "issued");
    CMS_ContentInfo_free(rep);
    /* No challenge configured and no explicit opt-out: nobody enrolls. */
    scep_profile_defaults(&open_profile, p);
    expect_failure(p, &open_profile, missing, "2");
    EVP_PKEY_free(small);
}

/* Issue 15, points 10 and 12: the rule on RSA public exponents itself.  1 makes
 * signatures anyone can write, an even e belongs to no key, and a huge e makes each
 * verification cost thousands of modular multiplications. */
#define E_2_256_PLUS_1 "10000000000000000000000000000000000000000000000000000000000000001"
#define E_2_256_MINUS_1 "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"

/* The rule as it reads a key: from its SubjectPublicKeyInfo, as in a certificate. */
static const char *exponent_problem(EVP_PKEY *key)
{
    X509_PUBKEY *spki = NULL;
    const char *problem;

    assert_int_equal(X509_PUBKEY_set(&spki, key), 1);
    problem = scep_keyless_rsa_exponent_problem(spki);
    X509_PUBKEY_free(spki);
    return problem;
}

static void expect_exponent(EVP_PKEY *key, const char *needle)
{
    const char *problem = exponent_problem(key);

    if (!needle) {
        if (problem) {
            fail_msg("a usable exponent is refused: %s", problem);
        }
    }
    else if (!problem || !strstr(problem, needle)) {
        fail_msg("'%s' does not say '%s'", problem ? problem : "(accepted)", needle);
    }
    EVP_PKEY_free(key);
}

static void test_point10_point12_exponent_rule(void **state)
{
    EVP_PKEY *tiny;
    BIGNUM *n = NULL, *e = BN_new();

    expect_exponent(with_exponent(device_key, 0, "1", 0), "is 1,");
    expect_exponent(with_exponent(device_key, 0, "0", 0), "below 3");
    expect_exponent(with_exponent(device_key, 0, "2", 0), "below 3");
    expect_exponent(with_exponent(device_key, 0, "10000", 0), "even");
    expect_exponent(with_exponent(device_key, 0, E_2_256_PLUS_1, 0), "more than 256 bits");
    expect_exponent(with_exponent(NULL, 3072, NULL, 3071), "more than 256 bits");
    expect_exponent(with_exponent(device_key, 0, "3", 0), NULL);
    expect_exponent(with_exponent(device_key, 0, "10001", 0), NULL);
    expect_exponent(with_exponent(device_key, 0, E_2_256_MINUS_1, 0), NULL);
    /* e below 2^256 but not below a (toy) modulus */
    tiny = with_exponent(NULL, 200, "3", 0);
    assert_int_equal(EVP_PKEY_get_bn_param(tiny, OSSL_PKEY_PARAM_RSA_N, &n), 1);
    assert_int_equal(BN_add_word(n, 2), 1);
    EVP_PKEY_free(tiny);
    assert_non_null(BN_copy(e, n));
    assert_int_equal(BN_sub_word(n, 2), 1);
    expect_exponent(rsa_public(n, e), "not smaller than the modulus");
    /* keys that are not RSA have no such exponent */
    assert_null(exponent_problem(ec_key));
    assert_null(exponent_problem(device_key));
    BN_free(n);
    BN_free(e);
}

/* A refused request whose reason says `needle`: the refusal came from that check and
 * from no later one (a bad exponent reaching the signature check would read "does not
 * verify"). */
static void expect_refusal(apr_pool_t *p, request_opts o, const char *fail_info,
                           const char *needle)
{
    scep_profile_t profile = challenge_profile(p);
    scep_reply_t reply;
    CMS_ContentInfo *rep = run(p, load_ca(p, 1), &profile, &o, &reply);

    assert_non_null(rep);
    if (!reply.reason || !strstr(reply.reason, needle)) {
        fail_msg("outcome %s, reason '%s' does not say '%s'",
                 scep_server_outcome_name(reply.outcome),
                 reply.reason ? reply.reason : "(none)", needle);
    }
    assert_string_equal(reply_attr(p, rep, "2.16.840.1.113733.1.9.3"), "2");
    assert_string_equal(reply_attr(p, rep, "2.16.840.1.113733.1.9.4"), fail_info);
    CMS_ContentInfo_free(rep);
}

/* The PKCS#10's key.  With e = 1 and the forged self-signature the request was
 * certified before; the huge exponent was refused only after the costly verification. */
static void test_point10_point12_csr_exponent(void **state)
{
    apr_pool_t *p = *state;
    EVP_PKEY *k3072 = rsa_key(3072);
    struct { EVP_PKEY *signer, *fake; int forge; const char *needle; } cases[] = {
        { device_key, with_exponent(device_key, 0, "1", 0), 1, "exponent is 1," },
        { device_key, with_exponent(device_key, 0, "2", 0), 0, "below 3" },
        { device_key, with_exponent(device_key, 0, "10000", 0), 0, "even" },
        { device_key, with_exponent(device_key, 0, E_2_256_PLUS_1, 0), 0,
          "more than 256 bits" },
        /* the signature as long as the modulus: OpenSSL would do the arithmetic */
        { k3072, with_exponent(k3072, 0, NULL, 3071), 0, "more than 256 bits" },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        expect_refusal(p, (request_opts){ .challenge = "s3cret", .key = cases[i].signer,
                                          .csr_fake = cases[i].fake, .forge = cases[i].forge },
                       "2", cases[i].needle);
        EVP_PKEY_free(cases[i].fake);
    }
    EVP_PKEY_free(k3072);
}

/* The signer certificate's key, refused before CMS_verify: with e = 1 the forged
 * signature verified before, and the huge exponent was paid for. */
static void test_point10_point12_signer_exponent(void **state)
{
    apr_pool_t *p = *state;
    EVP_PKEY *k3072 = rsa_key(3072);
    struct { EVP_PKEY *signer, *fake; int forge; const char *needle; } cases[] = {
        { device_key, with_exponent(device_key, 0, "1", 0), 1, "exponent is 1," },
        { device_key, with_exponent(device_key, 0, "2", 0), 0, "below 3" },
        { device_key, with_exponent(device_key, 0, "10000", 0), 0, "even" },
        { device_key, with_exponent(device_key, 0, E_2_256_PLUS_1, 0), 0,
          "more than 256 bits" },
        /* the signature as long as the modulus: OpenSSL would do the arithmetic */
        { k3072, with_exponent(k3072, 0, NULL, 3071), 0, "more than 256 bits" },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        expect_refusal(p, (request_opts){ .challenge = "s3cret", .key = cases[i].signer,
                                          .signer_fake = cases[i].fake,
                                          .forge = cases[i].forge },
                       "1", cases[i].needle);
        EVP_PKEY_free(cases[i].fake);
    }
    EVP_PKEY_free(k3072);
}

/* Certificates loaded at startup: the CA's, and a next CA's (no key of ours matches it,
 * so nothing else would have noticed). */
static void test_point10_point12_startup(void **state)
{
    apr_pool_t *p = *state;
    scep_ca_files_t files = { 0 };
    scep_ca_t *ca = NULL;
    const char *err = NULL;
    EVP_PKEY *one = with_exponent(ca_key, 0, "1", 0);
    EVP_PKEY *huge = with_exponent(NULL, 3072, NULL, 3071);
    X509 *ca_e1 = make_cert("Unit CA", ca_key, NULL, NULL, 1);
    X509 *next_huge = make_cert("Next CA", ca_key, NULL, NULL, 1);

    assert_int_equal(X509_set_pubkey(ca_e1, one), 1);
    assert_true(X509_sign(ca_e1, ca_key, EVP_sha256()) > 0);
    write_pem("ca-e1.pem", ca_e1, NULL, 0644);
    assert_int_equal(X509_set_pubkey(next_huge, huge), 1);
    assert_true(X509_sign(next_huge, ca_key, EVP_sha256()) > 0);
    write_pem("next-huge.pem", next_huge, NULL, 0644);

    expect_load_error(p, "ca-e1.pem", "ca.key", "ra.pem", "ra.key", "exponent is 1,");
    files.ca_cert_file = in_dir(p, "ca.pem");
    files.ca_key_file = in_dir(p, "ca.key");
    files.ra_cert_file = in_dir(p, "ra.pem");
    files.ra_key_file = in_dir(p, "ra.key");
    files.next_ca_file = in_dir(p, "next-huge.pem");
    assert_int_not_equal(scep_ca_load(p, &files, NULL, &ca, &err), APR_SUCCESS);
    assert_non_null(err);
    if (!strstr(err, "next-huge.pem") || !strstr(err, "more than 256 bits")) {
        fail_msg("error '%s' does not name the file and the exponent", err);
    }
    X509_free(ca_e1);
    X509_free(next_huge);
    EVP_PKEY_free(one);
    EVP_PKEY_free(huge);
}

/* The parse without OpenSSL's key decoders (scep_keyless.h) that every request goes
 * through: the key is really left out (that is the point), and made again it is the
 * same key. */
static void test_keyless_parse(void **state)
{
    apr_pool_t *p = *state;
    unsigned char *der = NULL, *bits_copy;
    const unsigned char *in, *bits;
    X509 *x;
    X509_PUBKEY *spki;
    EVP_PKEY *key;
    int len, bits_len;

    load_ca(p, 1);   /* scep_msg_global_init */
    len = i2d_X509(ra_cert, &der);
    in = der;
    x = scep_keyless_d2i(ASN1_ITEM_rptr(X509), &in, len);
    assert_non_null(x);
    assert_null(X509_get0_pubkey(x));
    ERR_clear_error();
    key = scep_keyless_spki_public_key(X509_get_X509_PUBKEY(x));
    assert_non_null(key);
    assert_int_equal(EVP_PKEY_eq(key, ra_key), 1);
    /* the CA's signature is checked over the bytes as sent */
    assert_int_equal(X509_verify(x, ca_key), 1);
    EVP_PKEY_free(key);
    X509_free(x);
    OPENSSL_free(der);

    /* an RSAPublicKey followed by a stray byte inside the BIT STRING */
    spki = X509_PUBKEY_new();
    assert_int_equal(X509_PUBKEY_set(&spki, device_key), 1);
    assert_int_equal(X509_PUBKEY_get0_param(NULL, &bits, &bits_len, NULL, spki), 1);
    bits_copy = OPENSSL_malloc((size_t)bits_len + 1);
    memcpy(bits_copy, bits, (size_t)bits_len);
    bits_copy[bits_len] = 0;
    assert_int_equal(X509_PUBKEY_set0_param(spki, OBJ_nid2obj(NID_rsaEncryption), V_ASN1_NULL,
                                            NULL, bits_copy, bits_len + 1), 1);
    assert_null(scep_keyless_spki_public_key(spki));
    X509_PUBKEY_free(spki);

    /* An RSA key under X.500's rsa OID (2.5.8.1.1), which OpenSSL decodes too, would
     * pass every check keyed to rsaEncryption (the exponent rule: e = 1 was accepted):
     * it is no key at all here (issue 15, point 10) */
    key = with_exponent(device_key, 0, "1", 0);
    spki = X509_PUBKEY_new();
    assert_int_equal(X509_PUBKEY_set(&spki, key), 1);
    EVP_PKEY_free(key);
    assert_int_equal(X509_PUBKEY_get0_param(NULL, &bits, &bits_len, NULL, spki), 1);
    bits_copy = OPENSSL_memdup(bits, (size_t)bits_len);
    assert_int_equal(X509_PUBKEY_set0_param(spki, OBJ_nid2obj(NID_rsa), V_ASN1_NULL, NULL,
                                            bits_copy, bits_len), 1);
    assert_null(scep_keyless_spki_public_key(spki));
    /* and the rule reads it as RSA */
    assert_non_null(scep_keyless_rsa_exponent_problem(spki));
    X509_PUBKEY_free(spki);
    {
        X509_REQ *req = make_csr(device_key, NULL, "x500rsa.example.org", "c", 0, 0, 0);
        unsigned char *req_der = NULL;
        scep_csr_t *csr;
        const char *why = NULL;
        int req_len;

        assert_int_equal(X509_PUBKEY_get0_param(NULL, &bits, &bits_len, NULL,
                                                X509_REQ_get_X509_PUBKEY(req)), 1);
        bits_copy = OPENSSL_memdup(bits, (size_t)bits_len);
        assert_int_equal(X509_PUBKEY_set0_param(X509_REQ_get_X509_PUBKEY(req),
                                                OBJ_nid2obj(NID_rsa), V_ASN1_NULL, NULL,
                                                bits_copy, bits_len), 1);
        X509_REQ_sign(req, device_key, EVP_sha256());
        req_len = i2d_X509_REQ(req, &req_der);
        assert_int_equal(scep_csr_parse(p, req_der, (apr_size_t)req_len, &csr, &why),
                         APR_EINVAL);
        OPENSSL_free(req_der);
        X509_REQ_free(req);
    }
    {
        /* a request followed by a second one: a gateway would forward both, having
         * judged the first (issue 15, point 1) */
        X509_REQ *req = make_csr(device_key, NULL, "first.example.org", "c", 0, 0, 0);
        X509_REQ *other = make_csr(device_key, NULL, "victim.example.org", "c", 0, 0, 0);
        unsigned char *a = NULL, *b = NULL, *both;
        scep_csr_t *csr;
        const char *why = NULL;
        int a_len = i2d_X509_REQ(req, &a), b_len = i2d_X509_REQ(other, &b);

        both = apr_palloc(p, (apr_size_t)a_len + (apr_size_t)b_len);
        memcpy(both, a, (size_t)a_len);
        memcpy(both + a_len, b, (size_t)b_len);
        assert_int_equal(scep_csr_parse(p, both, (apr_size_t)a_len, &csr, &why), APR_SUCCESS);
        assert_int_equal(scep_csr_parse(p, both, (apr_size_t)a_len + (apr_size_t)b_len, &csr,
                                        &why), APR_EINVAL);
        assert_non_null(strstr(why, "after the PKCS#10"));
        OPENSSL_free(a);
        OPENSSL_free(b);
        X509_REQ_free(req);
        X509_REQ_free(other);
    }

    /* other key types go through OpenSSL's decoders */
    spki = X509_PUBKEY_new();
    assert_int_equal(X509_PUBKEY_set(&spki, ec_key), 1);
    key = scep_keyless_spki_public_key(spki);
    assert_non_null(key);
    assert_int_equal(EVP_PKEY_eq(key, ec_key), 1);
    EVP_PKEY_free(key);
    X509_PUBKEY_free(spki);
}

/* What follows the keyless parse of a request: a renewal's signer is still recognised
 * as the CA's (its signature checked over the bytes as sent), an EC key in the PKCS#10
 * still reaches the certificate, and the reply is still enveloped to the signer. */
static void test_keyless_requests(void **state)
{
    apr_pool_t *p = *state;
    scep_ca_t *ca = load_ca(p, 1);
    scep_profile_t profile = challenge_profile(p);
    request_opts renewal = { .challenge = "s3cret", .key = ra_key, .signer = ra_cert };
    request_opts ec_csr = { .challenge = "s3cret", .csr_key = ec_key };
    scep_pkimsg_t *msg = NULL;
    const char *why = NULL;
    apr_size_t len;
    unsigned char *der = build_request(p, &renewal, &len);
    scep_reply_t reply;
    CMS_ContentInfo *rep;

    assert_int_equal(scep_msg_parse_request(p, scep_ca_msg_keys(ca), 0, der, len, &msg, &why),
                     APR_SUCCESS);
    assert_int_equal(msg->fail_info, SCEP_FAIL_NONE);
    assert_int_equal(scep_ca_issued(ca, msg->signer_as_sent), 1);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(msg->signer), ra_key), 1);
    assert_int_equal(X509_cmp(msg->signer_as_sent, ra_cert), 0);

    der = build_request(p, &(request_opts){ .challenge = "s3cret" }, &len);
    assert_int_equal(scep_msg_parse_request(p, scep_ca_msg_keys(ca), 0, der, len, &msg, &why),
                     APR_SUCCESS);
    assert_int_equal(scep_ca_issued(ca, msg->signer_as_sent), 0);

    rep = run(p, ca, &profile, &ec_csr, &reply);
    assert_non_null(rep);
    assert_string_equal(scep_server_outcome_name(reply.outcome), "issued");
    CMS_ContentInfo_free(rep);
}

static void test_malformed_and_oversized(void **state)
{
    apr_pool_t *p = *state;
    scep_ca_t *ca = load_ca(p, 1);
    scep_profile_t profile = challenge_profile(p);
    scep_reply_t reply;
    unsigned char garbage[64];

    memset(garbage, 0x30, sizeof(garbage));
    scep_server_pkioperation(p, ca, &profile, NULL, garbage, sizeof(garbage), NULL,
                             (apr_int64_t)time(NULL), NULL, &reply);
    assert_int_equal(reply.http_status, 400);
    profile.max_message_size = 16;
    scep_server_pkioperation(p, ca, &profile, NULL, garbage, sizeof(garbage), NULL,
                             (apr_int64_t)time(NULL), NULL, &reply);
    assert_int_equal(reply.http_status, 413);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_outcome_names, pool_setup, pool_teardown),
        cmocka_unit_test_setup_teardown(test_load_refusals, pool_setup, pool_teardown),
        cmocka_unit_test_setup_teardown(test_cacert_answers, pool_setup, pool_teardown),
        cmocka_unit_test_setup_teardown(test_degenerate, pool_setup, pool_teardown),
        cmocka_unit_test_setup_teardown(test_recorded_certificate, pool_setup, pool_teardown),
        cmocka_unit_test_setup_teardown(test_rollover, pool_setup, pool_teardown),
        cmocka_unit_test_setup_teardown(test_profile_helpers, pool_setup, pool_teardown),
        cmocka_unit_test_setup_teardown(test_enroll_success, pool_setup, pool_teardown),
        cmocka_unit_test_setup_teardown(test_enroll_ber, pool_setup, pool_teardown),
        cmocka_unit_test_setup_teardown(test_enroll_failures, pool_setup, pool_teardown),
        cmocka_unit_test_setup_teardown(test_keyless_parse, pool_setup, pool_teardown),
        cmocka_unit_test(test_point10_point12_exponent_rule),
        cmocka_unit_test_setup_teardown(test_point10_point12_csr_exponent, pool_setup,
                                        pool_teardown),
        cmocka_unit_test_setup_teardown(test_point10_point12_signer_exponent, pool_setup,
                                        pool_teardown),
        cmocka_unit_test_setup_teardown(test_point10_point12_startup, pool_setup,
                                        pool_teardown),
        cmocka_unit_test_setup_teardown(test_keyless_requests, pool_setup, pool_teardown),
        cmocka_unit_test_setup_teardown(test_malformed_and_oversized, pool_setup,
                                        pool_teardown),
    };
    int failed;

    apr_initialize();
    failed = cmocka_run_group_tests(tests, setup_all, teardown_all);
    apr_terminate();
    return failed;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the CRL: what it lists (revoked, unexpired, this CA's), its extensions
 * and signature, and when it is rebuilt (a revocation, half its validity, another CA)
 * or served again from the database with the same number. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <openssl/x509v3.h>

#include "scep_ca.h"
#include "scep_crl.h"
#include "scep_store.h"
#include "scratch_db.h"

#define NOW 1900000000
#define DAY 86400

typedef struct fixture_t {
    apr_pool_t *pool;
    char dir[64];
    scep_db_t *db;
    scep_ca_t *ca, *rolled;        /* `rolled`: same name, another key */
} fixture_t;

static EVP_PKEY *ca_key, *new_key, *device_key;
static X509 *ca_cert, *new_cert;

static X509 *make_cert(const char *cn, const char *serial_hex, EVP_PKEY *key, X509 *issuer,
                       EVP_PKEY *issuer_key, long not_after)
{
    X509 *x = X509_new();
    BIGNUM *bn = NULL;
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    X509_set_version(x, X509_VERSION_3);
    BN_hex2bn(&bn, serial_hex);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));
    ASN1_TIME_set(X509_getm_notBefore(x), NOW - DAY);
    ASN1_TIME_set(X509_getm_notAfter(x), not_after);
    X509_set_pubkey(x, key);
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_key_identifier, "hash");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (issuer) {
        ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid");
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

static int setup_all(void **state)
{
    (void)state;
    ca_key = EVP_RSA_gen(2048);
    new_key = EVP_RSA_gen(2048);
    device_key = EVP_EC_gen("P-256");
    ca_cert = make_cert("CRL Unit CA", "01", ca_key, NULL, NULL, NOW + 3650L * DAY);
    new_cert = make_cert("CRL Unit CA", "02", new_key, NULL, NULL, NOW + 3650L * DAY);
    return 0;
}

static int teardown_all(void **state)
{
    (void)state;
    X509_free(ca_cert);
    X509_free(new_cert);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(new_key);
    EVP_PKEY_free(device_key);
    return 0;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));

    apr_pool_create(&f->pool, NULL);
    strcpy(f->dir, "/tmp/scep-test-crl.XXXXXX");
    f->db = scratch_db_open(f->pool, f->dir);
    f->ca = scep_ca_assemble(f->pool, ca_cert, ca_key, "CN=CRL Unit CA");
    f->rolled = scep_ca_assemble(f->pool, new_cert, new_key, "CN=CRL Unit CA (new key)");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;

    apr_pool_destroy(f->pool);
    scratch_db_remove(f->dir);
    free(f);
    return 0;
}

/* Records a certificate issued by `issuer` (the fixture's CA when NULL). */
static void record(fixture_t *f, const char *serial, long not_after, X509 *issuer,
                   EVP_PKEY *issuer_key)
{
    X509 *x = make_cert("device.example.net", serial, device_key, issuer ? issuer : ca_cert,
                        issuer_key ? issuer_key : ca_key, not_after);
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der);
    scep_cert_rec_t c;
    scep_txn_t *txn;

    memset(&c, 0, sizeof(c));
    c.serial = serial;
    c.der = apr_pmemdup(f->pool, der, (apr_size_t)len);
    c.der_len = (apr_size_t)len;
    c.fqdn = "device.example.net";
    c.not_before = NOW - DAY;
    c.not_after = not_after;
    c.issued_at = NOW - DAY;
    /* the module records the issuer's key id; records from before it did not (0A02) */
    if (strcmp(serial, "0A02") != 0 && X509_get0_authority_key_id(x)) {
        c.issuer_key_id = ASN1_STRING_get0_data(X509_get0_authority_key_id(x));
        c.issuer_key_id_len = (apr_size_t)ASN1_STRING_length(X509_get0_authority_key_id(x));
    }
    assert_int_equal(scep_db_begin(f->db, f->pool, 1, &txn), APR_SUCCESS);
    assert_int_equal(scep_store_cert_put(txn, f->pool, &c), APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
    OPENSSL_free(der);
    X509_free(x);
}

static void revoke_cert(fixture_t *f, const char *serial, apr_int64_t when, int reason)
{
    scep_txn_t *txn;
    int already;

    assert_int_equal(scep_db_begin(f->db, f->pool, 1, &txn), APR_SUCCESS);
    assert_int_equal(scep_store_cert_revoke(txn, f->pool, serial, when, reason, &already),
                     APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
}

static X509_CRL *current(fixture_t *f, const scep_ca_t *ca, apr_int64_t now, scep_crl_t **out)
{
    const unsigned char *in;
    X509_CRL *crl;

    assert_int_equal(scep_crl_current(f->pool, ca, f->db, 7 * DAY, now, out), APR_SUCCESS);
    in = (*out)->der;
    crl = d2i_X509_CRL(NULL, &in, (long)(*out)->der_len);
    assert_non_null(crl);
    assert_true(in == (*out)->der + (*out)->der_len);
    assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(scep_ca_cert(ca))), 1);
    return crl;
}

static long crl_number(X509_CRL *crl)
{
    ASN1_INTEGER *n = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
    long v;

    assert_non_null(n);
    v = ASN1_INTEGER_get(n);
    ASN1_INTEGER_free(n);
    return v;
}

/* The entry for `serial`: its reason (-1 without a reasonCode), or -2 if not listed. */
static int entry_reason(X509_CRL *crl, const char *serial)
{
    STACK_OF(X509_REVOKED) *entries = X509_CRL_get_REVOKED(crl);
    int i;

    for (i = 0; i < sk_X509_REVOKED_num(entries); i++) {
        X509_REVOKED *e = sk_X509_REVOKED_value(entries, i);
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_REVOKED_get0_serialNumber(e), NULL);
        char *hex = BN_bn2hex(bn);
        int match = strcmp(hex, serial) == 0, reason = -1;

        OPENSSL_free(hex);
        BN_free(bn);
        if (match) {
            ASN1_ENUMERATED *r = X509_REVOKED_get_ext_d2i(e, NID_crl_reason, NULL, NULL);

            if (r) {
                reason = (int)ASN1_ENUMERATED_get(r);
                ASN1_ENUMERATED_free(r);
            }
            return reason;
        }
    }
    return -2;
}

static void test_empty_crl(void **state)
{
    fixture_t *f = *state;
    scep_crl_t *c, *again;
    X509_CRL *crl = current(f, f->ca, NOW, &c);
    AUTHORITY_KEYID *akid = X509_CRL_get_ext_d2i(crl, NID_authority_key_identifier, NULL, NULL);

    assert_true(c->built);
    assert_true(c->number == 1 && c->this_update == NOW && c->next_update == NOW + 7 * DAY);
    assert_int_equal(X509_CRL_get_version(crl), X509_CRL_VERSION_2);
    assert_null(X509_CRL_get_REVOKED(crl));             /* no revokedCertificates at all */
    assert_int_equal(crl_number(crl), 1);
    assert_int_equal(X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca_cert)),
                     0);
    assert_non_null(akid);
    assert_int_equal(ASN1_OCTET_STRING_cmp(akid->keyid, X509_get0_subject_key_id(ca_cert)), 0);
    AUTHORITY_KEYID_free(akid);
    X509_CRL_free(crl);

    /* served again, byte for byte, while nothing changed */
    X509_CRL_free(current(f, f->ca, NOW + 3600, &again));
    assert_false(again->built);
    assert_true(again->number == 1);
    assert_int_equal(again->der_len, c->der_len);
    assert_memory_equal(again->der, c->der, c->der_len);
    assert_true(again->refresh_at == NOW + 7 * DAY / 2);
}

static void test_revocations(void **state)
{
    fixture_t *f = *state;
    scep_crl_t *c;
    X509_CRL *crl;

    record(f, "0A01", NOW + 30 * DAY, NULL, NULL);
    record(f, "0A02", NOW + 30 * DAY, NULL, NULL);
    record(f, "0A03", NOW + 30 * DAY, NULL, NULL);
    record(f, "0A04", NOW + 10, NULL, NULL);                 /* expires soon */
    record(f, "0B01", NOW + 30 * DAY, new_cert, new_key);    /* another key's */
    X509_CRL_free(current(f, f->ca, NOW, &c));
    assert_true(c->number == 1 && c->entries == 0);

    revoke_cert(f, "0A01", NOW + 100, SCEP_REASON_KEY_COMPROMISE);
    revoke_cert(f, "0A02", NOW + 100, SCEP_REASON_UNSPECIFIED);
    revoke_cert(f, "0A04", NOW + 100, SCEP_REASON_SUPERSEDED);
    revoke_cert(f, "0B01", NOW + 100, SCEP_REASON_KEY_COMPROMISE);
    crl = current(f, f->ca, NOW + 200, &c);
    assert_true(c->built && c->number == 2);
    assert_int_equal(crl_number(crl), 2);
    assert_int_equal(entry_reason(crl, "0A01"), SCEP_REASON_KEY_COMPROMISE);
    assert_int_equal(entry_reason(crl, "0A02"), -1);     /* unspecified: no reasonCode */
    assert_int_equal(entry_reason(crl, "0A03"), -2);     /* not revoked */
    assert_int_equal(entry_reason(crl, "0A04"), -2);     /* expired before the CRL */
    assert_int_equal(entry_reason(crl, "0B01"), -2);     /* another CA key's */
    assert_int_equal(c->entries, 2);
    {
        const ASN1_TIME *t = X509_REVOKED_get0_revocationDate(
            sk_X509_REVOKED_value(X509_CRL_get_REVOKED(crl), 0));
        int day, sec;

        assert_int_equal(ASN1_TIME_diff(&day, &sec, X509_CRL_get0_lastUpdate(crl), t), 1);
        assert_true(day == 0 && sec == -100);           /* revoked 100 s before the CRL */
    }
    X509_CRL_free(crl);
}

static void test_refresh(void **state)
{
    fixture_t *f = *state;
    scep_crl_t *c;

    X509_CRL_free(current(f, f->ca, NOW, &c));
    X509_CRL_free(current(f, f->ca, NOW + 7 * DAY / 2 - 1, &c));
    assert_false(c->built);
    /* half the validity passed: a new CRL, a new number, though nothing changed */
    X509_CRL_free(current(f, f->ca, NOW + 7 * DAY / 2, &c));
    assert_true(c->built && c->number == 2 && c->this_update == NOW + 7 * DAY / 2);
    /* another CA key signs its own, with the next number */
    X509_CRL_free(current(f, f->rolled, NOW + 7 * DAY / 2 + 1, &c));
    assert_true(c->built && c->number == 3);
    /* a clock that went back does not serve a CRL from the future */
    X509_CRL_free(current(f, f->rolled, NOW, &c));
    assert_true(c->built && c->number == 4 && c->this_update == NOW);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty_crl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revocations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh, setup, teardown),
    };
    int failed;

    apr_initialize();
    failed = cmocka_run_group_tests(tests, setup_all, teardown_all);
    apr_terminate();
    return failed;
}

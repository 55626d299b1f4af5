/* Unit tests of scep_policy: authorization against registrations in a scratch LMDB
 * database, lockout, minted challenges, transactions and the recording of certificates.
 * The CSRs are plain scep_csr_t values: the policy reads only their fields. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "scep_policy.h"
#include "scratch_db.h"

#define NOW ((apr_int64_t)1800000000)

typedef struct fixture_t {
    apr_pool_t *pool;
    char dir[64];
    scep_db_t *db;
    scep_policy_conf_t conf;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));

    apr_pool_create(&f->pool, NULL);
    strcpy(f->dir, "/tmp/scep-test-policy.XXXXXX");
    f->db = scratch_db_open(f->pool, f->dir);
    f->conf.lockout_failures = 3;
    f->conf.lockout_seconds = 600;
    f->conf.transaction_window = 3600;
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

static scep_csr_t *csr_for(apr_pool_t *p, const char *dns, const char *challenge)
{
    scep_csr_t *csr = apr_pcalloc(p, sizeof(*csr));

    csr->dns_names = apr_array_make(p, 1, sizeof(const char *));
    csr->ip_addresses = apr_array_make(p, 1, sizeof(const char *));
    if (dns) {
        APR_ARRAY_PUSH(csr->dns_names, const char *) = dns;
    }
    if (challenge) {
        csr->challenge = challenge;
        csr->challenge_len = strlen(challenge);
    }
    return csr;
}

/* register_device DIR FQDN CHALLENGE FLAGS: one write transaction */
static void register_device(fixture_t *f, const char *fqdn, const char *challenge,
                            unsigned int flags, void (*adjust)(scep_device_t *, apr_pool_t *))
{
    scep_device_t *dev = scep_device_new(f->pool, fqdn);
    scep_txn_t *txn;

    if (challenge) {
        assert_int_equal(scep_verifier_make(challenge, strlen(challenge), &dev->verifier),
                         APR_SUCCESS);
    }
    dev->flags = flags;
    if (adjust) {
        adjust(dev, f->pool);
    }
    assert_int_equal(scep_db_begin(f->db, f->pool, 1, &txn), APR_SUCCESS);
    assert_int_equal(scep_device_put(txn, f->pool, dev), APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
}

static apr_status_t decide(fixture_t *f, const scep_csr_t *csr, const char *client,
                           scep_grant_t **grant, const char **why)
{
    const char *fqdn = NULL;

    *why = NULL;
    return scep_policy_authorize(f->pool, f->db, &f->conf, csr, client, NOW, grant, &fqdn, why);
}

static scep_cert_rec_t *cert_rec(apr_pool_t *p, const char *serial, const char *fqdn)
{
    scep_cert_rec_t *c = apr_pcalloc(p, sizeof(*c));

    c->serial = serial;
    c->der = (const unsigned char *)apr_pstrcat(p, "DER of ", serial, NULL);
    c->der_len = strlen((const char *)c->der);
    c->fqdn = fqdn;
    c->subject = apr_pstrcat(p, "CN=", fqdn, NULL);
    c->transaction_id = "tx";
    c->not_before = NOW - 300;
    c->not_after = NOW + 86400;
    c->issued_at = NOW;
    return c;
}

static void test_requested_name(void **state)
{
    fixture_t *f = *state;
    scep_csr_t *csr = csr_for(f->pool, NULL, NULL);

    assert_null(scep_policy_requested_name(f->pool, csr));
    csr->common_name = "Not A Host Name";
    assert_null(scep_policy_requested_name(f->pool, csr));
    csr->common_name = "Host.Example.COM.";
    assert_string_equal(scep_policy_requested_name(f->pool, csr), "host.example.com");
    csr->unstructured_name = "router.example.com";
    assert_string_equal(scep_policy_requested_name(f->pool, csr), "router.example.com");
    APR_ARRAY_PUSH(csr->dns_names, const char *) = "san.example.com";
    assert_string_equal(scep_policy_requested_name(f->pool, csr), "san.example.com");
}

static void set_router(scep_device_t *dev, apr_pool_t *p)
{
    APR_ARRAY_PUSH(dev->ips, const char *) = "192.0.2.10";
    dev->serial = "FTX123";
}

static void test_registered_router(void **state)
{
    fixture_t *f = *state;
    scep_grant_t *grant;
    scep_csr_t *csr;
    const char *why;

    f->conf.lockout_failures = 0;     /* this test fails on purpose, often */
    register_device(f, "rtr.example.net", "s3cret", 0, set_router);
    csr = csr_for(f->pool, NULL, "s3cret");
    csr->unstructured_name = "RTR.example.net";
    csr->unstructured_address = "192.0.2.10";
    csr->serial_number = "ftx123";
    assert_int_equal(decide(f, csr, "198.51.100.1", &grant, &why), APR_SUCCESS);
    assert_int_equal(grant->kind, SCEP_GRANT_DEVICE);
    assert_string_equal(grant->identity.fqdn, "rtr.example.net");
    assert_string_equal(grant->identity.serial_number, "FTX123");
    assert_int_equal(grant->identity.ips->nelts, 1);

    csr->unstructured_address = "192.0.2.11";
    assert_int_equal(decide(f, csr, "192.0.2.10", &grant, &why), SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "address"));
    /* the client address counts only when the endpoint says so */
    f->conf.check_client_address = 1;
    assert_int_equal(decide(f, csr, "192.0.2.10", &grant, &why), APR_SUCCESS);
    csr->serial_number = "OTHER";
    assert_int_equal(decide(f, csr, "192.0.2.10", &grant, &why), SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "serialNumber"));
    csr->serial_number = "FTX123";
    csr->challenge = "wrong";
    csr->challenge_len = 5;
    assert_int_equal(decide(f, csr, "192.0.2.10", &grant, &why), SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "challengePassword is wrong"));
    assert_null(strstr(why, "wrong\""));
    csr->challenge = NULL;
    assert_int_equal(decide(f, csr, "192.0.2.10", &grant, &why), SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "no challengePassword"));
}

static void test_unknown_disabled_expired_profile(void **state)
{
    fixture_t *f = *state;
    scep_grant_t *grant;
    const char *why;

    assert_int_equal(decide(f, csr_for(f->pool, "nobody.example.net", "x"), NULL, &grant, &why),
                     SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "no registration"));
    assert_int_equal(decide(f, csr_for(f->pool, NULL, "x"), NULL, &grant, &why),
                     SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "names no host"));

    register_device(f, "off.example.net", "pw", SCEP_DEVICE_DISABLED, NULL);
    assert_int_equal(decide(f, csr_for(f->pool, "off.example.net", "pw"), NULL, &grant, &why),
                     SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "disabled"));
    register_device(f, "nochal.example.net", NULL, 0, NULL);
    assert_int_equal(decide(f, csr_for(f->pool, "nochal.example.net", "pw"), NULL, &grant,
                            &why), SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "minted challenges only"));
}

static void set_expired(scep_device_t *dev, apr_pool_t *p)
{
    dev->expires = NOW - 1;
}

static void set_profile(scep_device_t *dev, apr_pool_t *p)
{
    dev->profile = "routers";
}

static void test_expiry_and_profile(void **state)
{
    fixture_t *f = *state;
    scep_grant_t *grant;
    const char *why;

    register_device(f, "old.example.net", "pw", 0, set_expired);
    assert_int_equal(decide(f, csr_for(f->pool, "old.example.net", "pw"), NULL, &grant, &why),
                     SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "expired"));
    register_device(f, "edge.example.net", "pw", 0, set_profile);
    assert_int_equal(decide(f, csr_for(f->pool, "edge.example.net", "pw"), NULL, &grant, &why),
                     SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "profile"));
    f->conf.profile_name = "routers";
    assert_int_equal(decide(f, csr_for(f->pool, "edge.example.net", "pw"), NULL, &grant, &why),
                     APR_SUCCESS);
}

static void test_wildcards(void **state)
{
    fixture_t *f = *state;
    scep_grant_t *grant;
    scep_csr_t *csr;
    const char *why;

    register_device(f, "*", "any", 0, NULL);
    register_device(f, "*.fleet.example.net", "fleet", 0, set_router);
    register_device(f, "c.fleet.example.net", "exact", 0, NULL);
    csr = csr_for(f->pool, "a.fleet.example.net", "fleet");
    assert_int_equal(decide(f, csr, NULL, &grant, &why), SCEP_POLICY_DENIED);
    csr->unstructured_address = "192.0.2.10";
    csr->serial_number = "FTX123";
    assert_int_equal(decide(f, csr, NULL, &grant, &why), APR_SUCCESS);
    assert_int_equal(grant->kind, SCEP_GRANT_WILDCARD);
    assert_string_equal(grant->registration, "*.fleet.example.net");
    assert_string_equal(grant->identity.fqdn, "a.fleet.example.net");
    /* a wildcard's addresses and serial belong to no single device */
    assert_int_equal(grant->identity.ips->nelts, 0);
    assert_null(grant->identity.serial_number);
    assert_int_equal(decide(f, csr_for(f->pool, "c.fleet.example.net", "fleet"), NULL, &grant,
                            &why), SCEP_POLICY_DENIED);
    assert_int_equal(decide(f, csr_for(f->pool, "c.fleet.example.net", "exact"), NULL, &grant,
                            &why), APR_SUCCESS);
    assert_int_equal(decide(f, csr_for(f->pool, "elsewhere.org", "any"), NULL, &grant, &why),
                     APR_SUCCESS);
    assert_string_equal(grant->registration, "*");
}

static void test_lockout(void **state)
{
    fixture_t *f = *state;
    scep_grant_t *grant;
    scep_failure_t fail;
    scep_txn_t *txn;
    const char *why;
    int i;

    register_device(f, "*.fleet.example.net", "fleet", 0, NULL);
    for (i = 0; i < 3; i++) {
        assert_int_equal(decide(f, csr_for(f->pool, "a.fleet.example.net", "bad"), NULL,
                                &grant, &why), SCEP_POLICY_DENIED);
    }
    assert_int_equal(decide(f, csr_for(f->pool, "a.fleet.example.net", "fleet"), NULL, &grant,
                            &why), SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "locked out"));
    /* the lockout is the name's, not the wildcard's */
    assert_int_equal(decide(f, csr_for(f->pool, "b.fleet.example.net", "fleet"), NULL, &grant,
                            &why), APR_SUCCESS);
    assert_int_equal(scep_db_begin(f->db, f->pool, 0, &txn), APR_SUCCESS);
    assert_int_equal(scep_failure_get(txn, "a.fleet.example.net", &fail), APR_SUCCESS);
    assert_true(fail.locked_until == NOW + 600);
    scep_db_abort(txn);
    /* lockout off: failures never lock */
    f->conf.lockout_failures = 0;
    for (i = 0; i < 5; i++) {
        decide(f, csr_for(f->pool, "b.fleet.example.net", "bad"), NULL, &grant, &why);
    }
    assert_int_equal(decide(f, csr_for(f->pool, "b.fleet.example.net", "fleet"), NULL, &grant,
                            &why), APR_SUCCESS);
}

static void test_one_time_and_transactions(void **state)
{
    fixture_t *f = *state;
    scep_grant_t *grant, *second;
    unsigned char digest[SCEP_REQUEST_DIGEST_LEN], other[SCEP_REQUEST_DIGEST_LEN];
    const unsigned char *der;
    apr_size_t der_len;
    scep_device_t *dev;
    scep_txn_t *txn;
    const char *why;

    memset(digest, 1, sizeof(digest));
    memset(other, 2, sizeof(other));
    register_device(f, "ot.example.net", "once", SCEP_DEVICE_ONE_TIME, NULL);
    /* two requests pass authorization before either is recorded */
    assert_int_equal(decide(f, csr_for(f->pool, "ot.example.net", "once"), NULL, &grant, &why),
                     APR_SUCCESS);
    assert_int_equal(decide(f, csr_for(f->pool, "ot.example.net", "once"), NULL, &second, &why),
                     APR_SUCCESS);
    assert_int_equal(scep_policy_replay(f->pool, f->db, &f->conf, "tx1", NULL, NULL, NOW, digest, &der, &der_len, &why),
                     SCEP_DB_NOTFOUND);
    assert_int_equal(scep_policy_record(f->pool, f->db, &f->conf, grant, "tx1", NULL, digest,
                                        cert_rec(f->pool, "0A01", "ot.example.net"), NOW,
                                        &der, &der_len, &why), APR_SUCCESS);
    assert_int_equal(scep_policy_record(f->pool, f->db, &f->conf, second, "tx2", NULL, other,
                                        cert_rec(f->pool, "0A02", "ot.example.net"), NOW,
                                        &der, &der_len, &why), SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "one-time"));
    /* the used challenge is refused from now on */
    assert_int_equal(decide(f, csr_for(f->pool, "ot.example.net", "once"), NULL, &grant, &why),
                     SCEP_POLICY_DENIED);
    /* a retry gets the recorded certificate; a different request with its id does not */
    assert_int_equal(scep_policy_replay(f->pool, f->db, &f->conf, "tx1", NULL, NULL, NOW, digest, &der, &der_len, &why),
                     SCEP_POLICY_REPLAY);
    assert_int_equal(der_len, strlen("DER of 0A01"));
    assert_memory_equal(der, "DER of 0A01", der_len);
    assert_int_equal(scep_policy_replay(f->pool, f->db, &f->conf, "tx1", NULL, NULL, NOW, other, &der, &der_len, &why),
                     SCEP_POLICY_DENIED);
    /* after the window, the same id (the same key) starts a new transaction */
    assert_int_equal(scep_policy_replay(f->pool, f->db, &f->conf, "tx1", NULL, NULL, NOW + 3600, other,
                                        &der, &der_len, &why), SCEP_DB_NOTFOUND);
    /* the registration shows its enrollment */
    assert_int_equal(scep_db_begin(f->db, f->pool, 0, &txn), APR_SUCCESS);
    assert_int_equal(scep_device_get(txn, f->pool, "ot.example.net", &dev), APR_SUCCESS);
    assert_string_equal(dev->last_serial, "0A01");
    assert_true(dev->enrollments == 1);
    assert_true((dev->flags & SCEP_DEVICE_USED) != 0);
    scep_db_abort(txn);
}

static void test_minted(void **state)
{
    fixture_t *f = *state;
    scep_grant_t *grant;
    scep_minted_t *rec;
    unsigned char digest[SCEP_REQUEST_DIGEST_LEN];
    const unsigned char *der;
    apr_size_t der_len;
    const char *why, *bound, *any, *late;
    scep_txn_t *txn;

    memset(digest, 3, sizeof(digest));
    assert_int_equal(scep_db_begin(f->db, f->pool, 1, &txn), APR_SUCCESS);
    assert_int_equal(scep_minted_create(txn, f->pool, NOW, 3600, "dyn.example.net", NULL,
                                        &bound, &rec), APR_SUCCESS);
    assert_int_equal(scep_minted_create(txn, f->pool, NOW, 3600, NULL, NULL, &any, &rec),
                     APR_SUCCESS);
    assert_int_equal(scep_minted_create(txn, f->pool, NOW - 7200, 60, NULL, NULL, &late, &rec),
                     APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);

    assert_int_equal(decide(f, csr_for(f->pool, "other.example.net", bound), NULL, &grant,
                            &why), SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "bound"));
    /* a bound challenge supplies the name when the request has none */
    assert_int_equal(decide(f, csr_for(f->pool, NULL, bound), NULL, &grant, &why), APR_SUCCESS);
    assert_int_equal(grant->kind, SCEP_GRANT_MINTED);
    assert_string_equal(grant->identity.fqdn, "dyn.example.net");
    assert_int_equal(decide(f, csr_for(f->pool, NULL, late), NULL, &grant, &why),
                     SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "expired"));
    assert_int_equal(decide(f, csr_for(f->pool, "free.example.net", any), NULL, &grant, &why),
                     APR_SUCCESS);
    assert_int_equal(scep_policy_record(f->pool, f->db, &f->conf, grant, "txm", NULL, digest,
                                        cert_rec(f->pool, "0B01", "free.example.net"), NOW,
                                        &der, &der_len, &why), APR_SUCCESS);
    /* consumed */
    assert_int_equal(decide(f, csr_for(f->pool, "free.example.net", any), NULL, &grant, &why),
                     SCEP_POLICY_DENIED);
}

/* Records a certificate issued to `fqdn` as the server would, expiring at `not_after`. */
static void record_cert(fixture_t *f, const char *serial, const char *fqdn,
                        apr_int64_t not_after, const char *txid)
{
    unsigned char digest[SCEP_REQUEST_DIGEST_LEN];
    scep_cert_rec_t *c = cert_rec(f->pool, serial, fqdn);
    const unsigned char *der;
    apr_size_t der_len;
    const char *why;

    memset(digest, serial[3], sizeof(digest));
    c->not_after = not_after;
    assert_int_equal(scep_policy_record(f->pool, f->db, &f->conf, NULL, txid, NULL, digest, c, NOW,
                                        &der, &der_len, &why), APR_SUCCESS);
}

static apr_status_t renew(fixture_t *f, const char *fqdn, const char *challenge,
                          const char *signer, scep_grant_t **grant, const char **why)
{
    const char *name = NULL;

    *why = NULL;
    return scep_policy_authorize_renewal(f->pool, f->db, &f->conf,
                                         csr_for(f->pool, fqdn, challenge), signer, NOW,
                                         grant, &name, why);
}

static void test_renewal(void **state)
{
    fixture_t *f = *state;
    scep_grant_t *grant;
    scep_txn_t *txn;
    int already;
    const char *why;

    register_device(f, "r1.example.net", "pw", SCEP_DEVICE_ONE_TIME | SCEP_DEVICE_USED, NULL);
    register_device(f, "r2.example.net", "pw2", 0, NULL);
    record_cert(f, "0C01", "r1.example.net", NOW + 86400, "t1");
    record_cert(f, "0C02", "r2.example.net", NOW + 86400, "t2");
    record_cert(f, "0C03", "r1.example.net", NOW - 10, "t3");

    /* the current certificate renews, without a challenge, though one-time was used */
    assert_int_equal(renew(f, "r1.example.net", NULL, "0C01", &grant, &why), APR_SUCCESS);
    assert_int_equal(grant->kind, SCEP_GRANT_RENEWAL);
    assert_string_equal(grant->renews, "0C01");
    /* a renewal request without names takes the old certificate's */
    assert_int_equal(renew(f, NULL, NULL, "0C01", &grant, &why), APR_SUCCESS);
    assert_string_equal(grant->identity.fqdn, "r1.example.net");
    /* another device's certificate */
    assert_int_equal(renew(f, "r1.example.net", NULL, "0C02", &grant, &why),
                     SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "issued to r2.example.net"));
    /* not on record */
    assert_int_equal(renew(f, "r1.example.net", NULL, "0CFF", &grant, &why),
                     SCEP_POLICY_UNKNOWN);
    /* expired, then within a grace */
    assert_int_equal(renew(f, "r1.example.net", NULL, "0C03", &grant, &why),
                     SCEP_POLICY_EXPIRED);
    f->conf.renewal_grace = 60;
    assert_int_equal(renew(f, "r1.example.net", NULL, "0C03", &grant, &why), APR_SUCCESS);
    /* a challenge when the endpoint wants one */
    f->conf.renewal_challenge = 1;
    assert_int_equal(renew(f, "r1.example.net", NULL, "0C01", &grant, &why),
                     SCEP_POLICY_DENIED);
    assert_int_equal(renew(f, "r1.example.net", "pw", "0C01", &grant, &why), APR_SUCCESS);
    f->conf.renewal_challenge = 0;
    /* revoked */
    assert_int_equal(scep_db_begin(f->db, f->pool, 1, &txn), APR_SUCCESS);
    assert_int_equal(scep_cert_revoke(txn, f->pool, "0C01", NOW, SCEP_REASON_KEY_COMPROMISE,
                                      &already), APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
    assert_int_equal(renew(f, "r1.example.net", NULL, "0C01", &grant, &why),
                     SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "revoked"));
    /* a disabled registration stops renewals */
    assert_false(already);
    register_device(f, "r2.example.net", "pw2", SCEP_DEVICE_DISABLED, NULL);
    assert_int_equal(renew(f, "r2.example.net", NULL, "0C02", &grant, &why),
                     SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "disabled"));
}

static void test_renewal_records(void **state)
{
    fixture_t *f = *state;
    scep_grant_t *grant;
    unsigned char digest[SCEP_REQUEST_DIGEST_LEN];
    const unsigned char *der;
    apr_size_t der_len;
    scep_cert_rec_t *old;
    scep_txn_t *txn;
    const char *why;

    register_device(f, "r1.example.net", "pw", 0, NULL);
    record_cert(f, "0D01", "r1.example.net", NOW + 86400, "same-key-txid");
    f->conf.renewal_revokes_old = 1;
    assert_int_equal(renew(f, "r1.example.net", NULL, "0D01", &grant, &why), APR_SUCCESS);
    /* the client reuses its key, so its transactionID: renewing starts a new transaction */
    memset(digest, 9, sizeof(digest));
    assert_int_equal(scep_policy_replay(f->pool, f->db, &f->conf, "same-key-txid", NULL, "0D01", NOW,
                                        digest, &der, &der_len, &why), SCEP_DB_NOTFOUND);
    assert_int_equal(scep_policy_record(f->pool, f->db, &f->conf, grant, "same-key-txid", NULL,
                                        digest, cert_rec(f->pool, "0D02", "r1.example.net"),
                                        NOW, &der, &der_len, &why), APR_SUCCESS);
    /* the superseded certificate is revoked */
    assert_int_equal(scep_db_begin(f->db, f->pool, 0, &txn), APR_SUCCESS);
    assert_int_equal(scep_cert_get(txn, f->pool, "0D01", &old), APR_SUCCESS);
    assert_true(old->revoked_at == NOW);
    assert_int_equal(old->revocation_reason, 4);
    scep_db_abort(txn);
    /* a retry of the renewal gets the new certificate */
    assert_int_equal(scep_policy_replay(f->pool, f->db, &f->conf, "same-key-txid", NULL, "0D01", NOW,
                                        digest, &der, &der_len, &why), SCEP_POLICY_REPLAY);
    assert_memory_equal(der, "DER of 0D02", der_len);
}

static scep_csr_t *csr_for_router(fixture_t *f, const char *challenge)
{
    scep_csr_t *csr = csr_for(f->pool, "w1.example.net", challenge);

    csr->unstructured_address = "192.0.2.10";
    csr->serial_number = "FTX123";
    return csr;
}

static apr_status_t hold(fixture_t *f, const scep_grant_t *grant, const char *txid,
                         unsigned char fill, const char **why)
{
    unsigned char digest[SCEP_REQUEST_DIGEST_LEN], key[SCEP_REQUEST_DIGEST_LEN];
    const unsigned char *der;
    apr_size_t der_len;

    memset(digest, fill, sizeof(digest));
    memset(key, 0x4b, sizeof(key));
    return scep_policy_hold(f->pool, f->db, &f->conf, grant, txid, digest,
                            (const unsigned char *)"PKCS#10", 7, key, "e1", "192.0.2.1",
                            "CN=x", SCEP_TXN_PENDING, NOW, &der, &der_len, why);
}

static apr_status_t poll_at(fixture_t *f, const char *txid, apr_int64_t now,
                            scep_transaction_t **held, scep_grant_t **grant, const char **why)
{
    unsigned char key[SCEP_REQUEST_DIGEST_LEN];
    const unsigned char *der;
    apr_size_t der_len;

    memset(key, 0x4b, sizeof(key));
    return scep_policy_poll(f->pool, f->db, &f->conf, txid, key, "e1", 0, now, held, grant,
                            &der, &der_len, why);
}

static void set_state(fixture_t *f, const char *txid, const char *state)
{
    scep_transaction_t *t;
    scep_txn_t *txn;

    assert_int_equal(scep_db_begin(f->db, f->pool, 1, &txn), APR_SUCCESS);
    assert_int_equal(scep_transaction_get(txn, f->pool, txid, &t), APR_SUCCESS);
    t->state = state;
    t->decided_at = NOW + 10;
    t->decided_by = "alice";
    t->reason = strcmp(state, SCEP_TXN_REJECTED) == 0 ? "unknown box" : NULL;
    assert_int_equal(scep_transaction_put(txn, f->pool, t), APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
}

static void test_approval(void **state)
{
    fixture_t *f = *state;
    scep_grant_t *grant, *again;
    scep_transaction_t *held;
    scep_device_t *dev;
    scep_txn_t *txn;
    unsigned char digest[SCEP_REQUEST_DIGEST_LEN], other[SCEP_REQUEST_DIGEST_LEN];
    const unsigned char *der;
    apr_size_t der_len;
    const char *why;

    f->conf.pending_timeout = 3600;
    register_device(f, "w1.example.net", "pw", SCEP_DEVICE_ONE_TIME | SCEP_DEVICE_APPROVAL,
                    set_router);
    register_device(f, "w2.example.net", "pw", 0, NULL);
    assert_int_equal(decide(f, csr_for_router(f, "pw"), NULL, &grant, &why), APR_SUCCESS);
    assert_true(grant->needs_approval);
    assert_int_equal(decide(f, csr_for(f->pool, "w2.example.net", "pw"), NULL, &again, &why),
                     APR_SUCCESS);
    assert_false(again->needs_approval);
    f->conf.require_approval = 1;
    assert_int_equal(decide(f, csr_for(f->pool, "w2.example.net", "pw"), NULL, &again, &why),
                     APR_SUCCESS);
    assert_true(again->needs_approval);

    /* held: the one-time challenge is spent, the request waits */
    assert_int_equal(hold(f, grant, "wait-1", 1, &why), APR_SUCCESS);
    assert_int_equal(scep_db_begin(f->db, f->pool, 0, &txn), APR_SUCCESS);
    assert_int_equal(scep_device_get(txn, f->pool, "w1.example.net", &dev), APR_SUCCESS);
    scep_db_abort(txn);
    assert_true(dev->flags & SCEP_DEVICE_USED);
    assert_null(dev->last_serial);
    memset(digest, 1, sizeof(digest));
    assert_int_equal(scep_policy_replay(f->pool, f->db, &f->conf, "wait-1", NULL, NULL, NOW, digest,
                                        &der, &der_len, &why), SCEP_POLICY_HELD);
    memset(other, 2, sizeof(other));
    assert_int_equal(scep_policy_replay(f->pool, f->db, &f->conf, "wait-1", NULL, NULL, NOW, other,
                                        &der, &der_len, &why), SCEP_POLICY_DENIED);
    assert_int_equal(poll_at(f, "wait-1", NOW + 60, &held, &again, &why), SCEP_POLICY_PENDING);
    assert_int_equal(poll_at(f, "nothing", NOW, &held, &again, &why), SCEP_DB_NOTFOUND);
    {
        unsigned char key[SCEP_REQUEST_DIGEST_LEN];

        memset(key, 0x55, sizeof(key));
        /* another key's poll finds nothing: the transaction is the requester's */
        assert_int_equal(scep_policy_poll(f->pool, f->db, &f->conf, "wait-1", key, "e1", 0,
                                          NOW, &held, &again, &der, &der_len, &why),
                         SCEP_DB_NOTFOUND);
    }

    /* approved: the grant comes back as it was, and is recorded once */
    set_state(f, "wait-1", SCEP_TXN_APPROVED);
    assert_int_equal(poll_at(f, "wait-1", NOW + 60, &held, &again, &why), SCEP_POLICY_APPROVED);
    assert_memory_equal(held->request, "PKCS#10", 7);
    assert_true(again->held && again->kind == SCEP_GRANT_DEVICE);
    assert_string_equal(again->registration, "w1.example.net");
    assert_string_equal(again->identity.fqdn, "w1.example.net");
    assert_int_equal(again->identity.ips->nelts, 1);
    assert_string_equal(APR_ARRAY_IDX(again->identity.ips, 0, const char *), "192.0.2.10");
    assert_string_equal(again->identity.serial_number, "FTX123");
    assert_int_equal(scep_policy_record_approved(f->pool, f->db, &f->conf, again, "wait-1", NULL,
                                                 cert_rec(f->pool, "0E01", "w1.example.net"),
                                                 NOW + 70, &der, &der_len, &why),
                     APR_SUCCESS);
    assert_int_equal(scep_policy_record_approved(f->pool, f->db, &f->conf, again, "wait-1", NULL,
                                                 cert_rec(f->pool, "0E02", "w1.example.net"),
                                                 NOW + 71, &der, &der_len, &why),
                     SCEP_POLICY_REPLAY);
    assert_memory_equal(der, "DER of 0E01", der_len);
    assert_int_equal(poll_at(f, "wait-1", NOW + 80, &held, &again, &why), SCEP_POLICY_REPLAY);
    assert_int_equal(scep_db_begin(f->db, f->pool, 0, &txn), APR_SUCCESS);
    assert_int_equal(scep_device_get(txn, f->pool, "w1.example.net", &dev), APR_SUCCESS);
    scep_db_abort(txn);
    assert_string_equal(dev->last_serial, "0E01");

    /* rejected, and expired */
    assert_int_equal(decide(f, csr_for(f->pool, "w2.example.net", "pw"), NULL, &grant, &why),
                     APR_SUCCESS);
    assert_int_equal(hold(f, grant, "wait-2", 3, &why), APR_SUCCESS);
    set_state(f, "wait-2", SCEP_TXN_REJECTED);
    assert_int_equal(poll_at(f, "wait-2", NOW + 60, &held, &again, &why), SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "rejected by alice"));
    assert_non_null(strstr(why, "unknown box"));
    assert_int_equal(hold(f, grant, "wait-3", 4, &why), APR_SUCCESS);
    assert_int_equal(poll_at(f, "wait-3", NOW + 3599, &held, &again, &why),
                     SCEP_POLICY_PENDING);
    assert_int_equal(poll_at(f, "wait-3", NOW + 3600, &held, &again, &why), SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "expired"));
    assert_int_equal(scep_db_begin(f->db, f->pool, 0, &txn), APR_SUCCESS);
    assert_int_equal(scep_transaction_get(txn, f->pool, "wait-3", &held), APR_SUCCESS);
    scep_db_abort(txn);
    assert_string_equal(held->state, SCEP_TXN_EXPIRED);
    /* an approval that comes too late changes nothing for the device */
    set_state(f, "wait-3", SCEP_TXN_EXPIRED);
    assert_int_equal(scep_policy_record_approved(f->pool, f->db, &f->conf, grant, "wait-3", NULL,
                                                 cert_rec(f->pool, "0E03", "w2.example.net"),
                                                 NOW, &der, &der_len, &why),
                     SCEP_POLICY_DENIED);
}

static void test_names_beyond(void **state)
{
    fixture_t *f = *state;
    scep_identity_t id;
    scep_csr_t *csr = csr_for(f->pool, "Dev.Example.NET.", NULL);

    memset(&id, 0, sizeof(id));
    id.fqdn = "dev.example.net";
    id.ips = apr_array_make(f->pool, 1, sizeof(const char *));
    APR_ARRAY_PUSH(id.ips, const char *) = "192.0.2.10";
    assert_null(scep_policy_names_beyond(f->pool, &id, csr));
    csr->common_name = "Branch router 7";          /* no host name: no claim */
    assert_null(scep_policy_names_beyond(f->pool, &id, csr));
    csr->unstructured_address = "192.0.2.10";
    APR_ARRAY_PUSH(csr->ip_addresses, const char *) = "192.0.2.10";
    assert_null(scep_policy_names_beyond(f->pool, &id, csr));
    csr->common_name = "dev";                       /* the short name */
    assert_null(scep_policy_names_beyond(f->pool, &id, csr));
    csr->common_name = "de";
    assert_string_equal(scep_policy_names_beyond(f->pool, &id, csr), "the commonName de");
    csr->common_name = "other.example.net";
    assert_string_equal(scep_policy_names_beyond(f->pool, &id, csr),
                        "the commonName other.example.net");
    csr->common_name = NULL;
    APR_ARRAY_PUSH(csr->dns_names, const char *) = "victim.example.net";
    assert_string_equal(scep_policy_names_beyond(f->pool, &id, csr),
                        "the dNSName victim.example.net");
    apr_array_pop(csr->dns_names);
    APR_ARRAY_PUSH(csr->ip_addresses, const char *) = "198.51.100.1";
    assert_string_equal(scep_policy_names_beyond(f->pool, &id, csr),
                        "the iPAddress 198.51.100.1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_requested_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registered_router, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_disabled_expired_profile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_and_profile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wildcards, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lockout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_time_and_transactions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_minted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_renewal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_renewal_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_approval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names_beyond, setup, teardown),
    };
    int rc;

    apr_initialize();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return rc;
}

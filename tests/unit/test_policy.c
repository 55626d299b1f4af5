/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of scep_policy: authorization against registrations in a scratch LMDB
 * database, lockout, minted challenges, transactions and the recording of certificates.
 * The CSRs are plain scep_csr_t values: the policy reads only their fields; those of the
 * forwarding checks are real requests read by scep_csr_parse. */
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
    scep_device_t *dev = scep_store_device_new(f->pool, fqdn);
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
    assert_int_equal(scep_store_device_put(txn, f->pool, dev), APR_SUCCESS);
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
    assert_int_equal(scep_store_failure_get(txn, "a.fleet.example.net", &fail), APR_SUCCESS);
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

/* The record's transaction reads the name's and the wildcard's counters under its write
 * lock: a lock set on either since the decision refuses, and a success clears the name's
 * count (and only then writes it). */
static void test_lockout_at_record(void **state)
{
    fixture_t *f = *state;
    scep_grant_t *grant;
    scep_failure_t fail, shared = { 0, NOW, NOW + 600, 600 };
    unsigned char digest[SCEP_REQUEST_DIGEST_LEN];
    const unsigned char *der;
    apr_size_t der_len;
    scep_txn_t *txn;
    const char *why;

    memset(digest, 3, sizeof(digest));
    register_device(f, "*.fleet.example.net", "fleet", 0, NULL);
    assert_int_equal(decide(f, csr_for(f->pool, "a.fleet.example.net", "bad"), NULL, &grant,
                            &why), SCEP_POLICY_DENIED);
    assert_int_equal(decide(f, csr_for(f->pool, "a.fleet.example.net", "fleet"), NULL, &grant,
                            &why), APR_SUCCESS);
    assert_int_equal(scep_policy_record(f->pool, f->db, &f->conf, grant, "txa", NULL, digest,
                                        cert_rec(f->pool, "0B01", "a.fleet.example.net"), NOW,
                                        &der, &der_len, &why), APR_SUCCESS);
    assert_int_equal(scep_db_begin(f->db, f->pool, 0, &txn), APR_SUCCESS);
    assert_int_equal(scep_store_failure_get(txn, "a.fleet.example.net", &fail),
                     SCEP_DB_NOTFOUND);
    scep_db_abort(txn);
    /* the wildcard locked between the decision and the record */
    assert_int_equal(decide(f, csr_for(f->pool, "b.fleet.example.net", "fleet"), NULL, &grant,
                            &why), APR_SUCCESS);
    assert_int_equal(scep_db_begin(f->db, f->pool, 1, &txn), APR_SUCCESS);
    assert_int_equal(scep_store_failure_put(txn, f->pool, "*.fleet.example.net", &shared),
                     APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
    assert_int_equal(scep_policy_record(f->pool, f->db, &f->conf, grant, "txb", NULL, digest,
                                        cert_rec(f->pool, "0B02", "b.fleet.example.net"), NOW,
                                        &der, &der_len, &why), SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "*.fleet.example.net is locked out"));
    /* and decisions see it too, for any name it covers */
    assert_int_equal(decide(f, csr_for(f->pool, "c.fleet.example.net", "fleet"), NULL, &grant,
                            &why), SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "*.fleet.example.net is locked out"));
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
    assert_int_equal(scep_policy_replay(f->pool, f->db, &f->conf, "tx1", NULL, NULL, NOW,
                                        digest, &der, &der_len, &why),
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
    assert_int_equal(scep_policy_replay(f->pool, f->db, &f->conf, "tx1", NULL, NULL, NOW,
                                        digest, &der, &der_len, &why),
                     SCEP_POLICY_REPLAY);
    assert_int_equal(der_len, strlen("DER of 0A01"));
    assert_memory_equal(der, "DER of 0A01", der_len);
    assert_int_equal(scep_policy_replay(f->pool, f->db, &f->conf, "tx1", NULL, NULL, NOW, other,
                                        &der, &der_len, &why),
                     SCEP_POLICY_DENIED);
    /* after the window, the same id (the same key) starts a new transaction */
    assert_int_equal(scep_policy_replay(f->pool, f->db, &f->conf, "tx1", NULL, NULL, NOW + 3600,
                                        other,
                                        &der, &der_len, &why), SCEP_DB_NOTFOUND);
    /* the registration shows its enrollment */
    assert_int_equal(scep_db_begin(f->db, f->pool, 0, &txn), APR_SUCCESS);
    assert_int_equal(scep_store_device_get(txn, f->pool, "ot.example.net", &dev), APR_SUCCESS);
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
    assert_int_equal(scep_store_minted_create(txn, f->pool, NOW, 3600, "dyn.example.net", NULL,
                                              &bound, &rec), APR_SUCCESS);
    assert_int_equal(scep_store_minted_create(txn, f->pool, NOW, 3600, NULL, NULL, &any, &rec),
                     APR_SUCCESS);
    assert_int_equal(scep_store_minted_create(txn, f->pool, NOW - 7200, 60, NULL, NULL, &late,
                                              &rec),
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
    assert_int_equal(scep_policy_record(f->pool, f->db, &f->conf, NULL, txid, NULL, digest, c,
                                        NOW,
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
    assert_int_equal(scep_store_cert_revoke(txn, f->pool, "0C01", NOW,
                                            SCEP_REASON_KEY_COMPROMISE,
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
    assert_int_equal(scep_policy_replay(f->pool, f->db, &f->conf, "same-key-txid", NULL, "0D01",
                                        NOW,
                                        digest, &der, &der_len, &why), SCEP_DB_NOTFOUND);
    assert_int_equal(scep_policy_record(f->pool, f->db, &f->conf, grant, "same-key-txid", NULL,
                                        digest, cert_rec(f->pool, "0D02", "r1.example.net"),
                                        NOW, &der, &der_len, &why), APR_SUCCESS);
    /* the superseded certificate is revoked */
    assert_int_equal(scep_db_begin(f->db, f->pool, 0, &txn), APR_SUCCESS);
    assert_int_equal(scep_store_cert_get(txn, f->pool, "0D01", &old), APR_SUCCESS);
    assert_true(old->revoked_at == NOW);
    assert_int_equal(old->revocation_reason, 4);
    scep_db_abort(txn);
    /* a retry of the renewal gets the new certificate */
    assert_int_equal(scep_policy_replay(f->pool, f->db, &f->conf, "same-key-txid", NULL, "0D01",
                                        NOW,
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

/* An operator's decision goes through scep_policy_decide, as scepreg's does; an expiry
 * the operator cannot make is written directly. */
static void set_state(fixture_t *f, const char *txid, const char *state)
{
    apr_array_header_t *decided;
    const char *was = NULL;
    scep_transaction_t *t;
    scep_txn_t *txn;

    assert_int_equal(scep_db_begin(f->db, f->pool, 1, &txn), APR_SUCCESS);
    if (strcmp(state, SCEP_TXN_EXPIRED) != 0) {
        assert_int_equal(scep_policy_decide(txn, f->pool, txid, NULL,
                                            strcmp(state, SCEP_TXN_APPROVED) == 0, "alice",
                                            "unknown box", NOW + 10, &decided, &was),
                         APR_SUCCESS);
        assert_int_equal(decided->nelts, 1);
    }
    else {
        assert_int_equal(scep_store_transaction_get(txn, f->pool, txid, &t), APR_SUCCESS);
        t->state = state;
        t->decided_at = NOW + 10;
        t->decided_by = "alice";
        t->reason = NULL;
        assert_int_equal(scep_store_transaction_put(txn, f->pool, t), APR_SUCCESS);
    }
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
}

/* hold() under another requester's key: a second device using the same transactionID */
static apr_status_t hold_as(fixture_t *f, const scep_grant_t *grant, const char *txid,
                            unsigned char fill, unsigned char key_fill)
{
    unsigned char digest[SCEP_REQUEST_DIGEST_LEN], key[SCEP_REQUEST_DIGEST_LEN];
    const unsigned char *der;
    apr_size_t der_len;
    const char *why;

    memset(digest, fill, sizeof(digest));
    memset(key, key_fill, sizeof(key));
    return scep_policy_hold(f->pool, f->db, &f->conf, grant, txid, digest,
                            (const unsigned char *)"PKCS#10", 7, key, "e1", "192.0.2.1",
                            "CN=x", SCEP_TXN_PENDING, NOW, &der, &der_len, &why);
}

/* scep_policy_decide inside one write transaction, committed when it succeeds. */
static apr_status_t decide_held(fixture_t *f, const char *txid, const char *fqdn, int approve,
                                const char *reason, apr_array_header_t **decided,
                                const char **was)
{
    scep_txn_t *txn;
    apr_status_t rv;

    *was = NULL;
    assert_int_equal(scep_db_begin(f->db, f->pool, 1, &txn), APR_SUCCESS);
    rv = scep_policy_decide(txn, f->pool, txid, fqdn, approve, "bob", reason, NOW + 5,
                            decided, was);
    if (rv == APR_SUCCESS) {
        assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
    }
    else {
        scep_db_abort(txn);
    }
    return rv;
}

static scep_transaction_t *stored_transaction(fixture_t *f, const char *txid)
{
    scep_transaction_t *t;
    scep_txn_t *txn;

    assert_int_equal(scep_db_begin(f->db, f->pool, 0, &txn), APR_SUCCESS);
    assert_int_equal(scep_store_transaction_get(txn, f->pool, txid, &t), APR_SUCCESS);
    scep_db_abort(txn);
    return t;
}

/* An endpoint without a database: its static challenge, or none if it says so. */
static void test_static_challenge(void **state)
{
    fixture_t *f = *state;
    scep_profile_t profile;
    const char *why = NULL;

    scep_profile_defaults(&profile, f->pool);
    assert_int_equal(scep_policy_authorize_static(&profile, csr_for(f->pool, "a.example", "x"),
                                                  &why), SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "ScepAllowNoChallenge"));
    profile.allow_no_challenge = 1;
    assert_int_equal(scep_policy_authorize_static(&profile, csr_for(f->pool, "a.example", NULL),
                                                  &why), APR_SUCCESS);
    scep_profile_set_challenge(&profile, f->pool, "static-secret");
    /* a configured challenge is required even where none would be allowed */
    assert_int_equal(scep_policy_authorize_static(&profile, csr_for(f->pool, "a.example", NULL),
                                                  &why), SCEP_POLICY_DENIED);
    assert_string_equal(why, "the request carries no challengePassword");
    assert_int_equal(scep_policy_authorize_static(&profile,
                                                  csr_for(f->pool, "a.example", "static-secreT"),
                                                  &why), SCEP_POLICY_DENIED);
    assert_string_equal(why, "the challengePassword is wrong");
    assert_int_equal(scep_policy_authorize_static(&profile,
                                                  csr_for(f->pool, "a.example", "static-secret"),
                                                  &why), APR_SUCCESS);
}

static void test_decide(void **state)
{
    fixture_t *f = *state;
    apr_array_header_t *decided;
    scep_grant_t *g1, *g2;
    scep_transaction_t *t;
    const char *why, *was;

    register_device(f, "d1.example.net", "pw", SCEP_DEVICE_APPROVAL, NULL);
    register_device(f, "d2.example.net", "pw", SCEP_DEVICE_APPROVAL, NULL);
    assert_int_equal(decide(f, csr_for(f->pool, "d1.example.net", "pw"), NULL, &g1, &why),
                     APR_SUCCESS);
    assert_int_equal(decide(f, csr_for(f->pool, "d2.example.net", "pw"), NULL, &g2, &why),
                     APR_SUCCESS);
    assert_int_equal(hold(f, g1, "d-1", 1, &why), APR_SUCCESS);
    assert_int_equal(hold(f, g1, "d-2", 2, &why), APR_SUCCESS);
    assert_int_equal(hold(f, g2, "d-3", 3, &why), APR_SUCCESS);

    /* by its ID: rejected, by whom, when and why */
    assert_int_equal(decide_held(f, "d-1", NULL, 0, "unknown box", &decided, &was),
                     APR_SUCCESS);
    assert_int_equal(decided->nelts, 1);
    assert_string_equal(APR_ARRAY_IDX(decided, 0, scep_transaction_t *)->transaction_id,
                        "d-1");
    t = stored_transaction(f, "d-1");
    assert_string_equal(t->state, SCEP_TXN_REJECTED);
    assert_string_equal(t->decided_by, "bob");
    assert_string_equal(t->reason, "unknown box");
    assert_int_equal(t->decided_at, NOW + 5);
    /* decided once: a second decision is refused with the state it is in */
    assert_int_equal(decide_held(f, "d-1", NULL, 1, NULL, &decided, &was), SCEP_POLICY_DENIED);
    assert_string_equal(was, SCEP_TXN_REJECTED);
    assert_int_equal(decide_held(f, "nothing", NULL, 1, NULL, &decided, &was),
                     SCEP_DB_NOTFOUND);

    /* by the device's name: every pending request of it, an approval without a reason */
    assert_int_equal(decide_held(f, "d1.example.net", "d1.example.net", 1, "ignored",
                                 &decided, &was), APR_SUCCESS);
    assert_int_equal(decided->nelts, 1);
    t = stored_transaction(f, "d-2");
    assert_string_equal(t->state, SCEP_TXN_APPROVED);
    assert_null(t->reason);
    assert_string_equal(stored_transaction(f, "d-3")->state, SCEP_TXN_PENDING);
    assert_int_equal(decide_held(f, "d1.example.net", "d1.example.net", 1, NULL, &decided,
                                 &was), SCEP_DB_NOTFOUND);

    /* an ID two requesters used needs the name; an empty reason is none */
    assert_int_equal(hold_as(f, g2, "dup", 4, 0x4b), APR_SUCCESS);
    assert_int_equal(hold_as(f, g2, "dup", 5, 0x4c), APR_SUCCESS);
    assert_int_equal(decide_held(f, "dup", NULL, 0, NULL, &decided, &was), SCEP_DB_EXISTS);
    assert_int_equal(decide_held(f, "dup", "d2.example.net", 0, "", &decided, &was),
                     APR_SUCCESS);
    assert_int_equal(decided->nelts, 3);
    t = stored_transaction(f, "d-3");
    assert_string_equal(t->state, SCEP_TXN_REJECTED);
    assert_null(t->reason);
}

static void test_mint(void **state)
{
    fixture_t *f = *state;
    scep_minted_t *rec, *found;
    scep_txn_t *txn;
    const char *late, *challenge;
    apr_size_t count;

    assert_int_equal(scep_db_begin(f->db, f->pool, 1, &txn), APR_SUCCESS);
    assert_int_equal(scep_store_minted_create(txn, f->pool, NOW - 7200, 60, NULL, NULL, &late,
                                              &rec), APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);

    /* the expired one goes as the new one comes, in one committed transaction */
    assert_int_equal(scep_policy_mint_commit(f->pool, f->db, NOW, 600, "m.example.net",
                                             "routers", &challenge, &rec), APR_SUCCESS);
    assert_int_equal(rec->expires, NOW + 600);
    assert_int_equal(scep_db_begin(f->db, f->pool, 0, &txn), APR_SUCCESS);
    assert_int_equal(scep_store_minted_count(txn, &count), APR_SUCCESS);
    assert_int_equal(count, 1);
    assert_int_equal(scep_store_minted_get(txn, f->pool, challenge, strlen(challenge), &found),
                     APR_SUCCESS);
    assert_string_equal(found->fqdn, "m.example.net");
    assert_string_equal(found->profile, "routers");
    assert_int_equal(scep_store_minted_get(txn, f->pool, late, strlen(late), &found),
                     SCEP_DB_NOTFOUND);
    scep_db_abort(txn);

    /* inside the caller's transaction: nothing stays unless the caller commits */
    assert_int_equal(scep_db_begin(f->db, f->pool, 1, &txn), APR_SUCCESS);
    assert_int_equal(scep_policy_mint(txn, f->pool, NOW, 600, NULL, NULL, &late, &rec),
                     APR_SUCCESS);
    scep_db_abort(txn);
    assert_int_equal(scep_db_begin(f->db, f->pool, 0, &txn), APR_SUCCESS);
    assert_int_equal(scep_store_minted_count(txn, &count), APR_SUCCESS);
    scep_db_abort(txn);
    assert_int_equal(count, 1);
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
    assert_int_equal(scep_store_device_get(txn, f->pool, "w1.example.net", &dev), APR_SUCCESS);
    scep_db_abort(txn);
    assert_true(dev->flags & SCEP_DEVICE_USED);
    assert_null(dev->last_serial);
    memset(digest, 1, sizeof(digest));
    assert_int_equal(scep_policy_replay(f->pool, f->db, &f->conf, "wait-1", NULL, NULL, NOW,
                                        digest,
                                        &der, &der_len, &why), SCEP_POLICY_HELD);
    memset(other, 2, sizeof(other));
    assert_int_equal(scep_policy_replay(f->pool, f->db, &f->conf, "wait-1", NULL, NULL, NOW,
                                        other,
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
    assert_int_equal(scep_policy_record_approved(f->pool, f->db, &f->conf, again, "wait-1",
                                                 NULL,
                                                 cert_rec(f->pool, "0E01", "w1.example.net"),
                                                 NOW + 70, &der, &der_len, &why),
                     APR_SUCCESS);
    assert_int_equal(scep_policy_record_approved(f->pool, f->db, &f->conf, again, "wait-1",
                                                 NULL,
                                                 cert_rec(f->pool, "0E02", "w1.example.net"),
                                                 NOW + 71, &der, &der_len, &why),
                     SCEP_POLICY_REPLAY);
    assert_memory_equal(der, "DER of 0E01", der_len);
    assert_int_equal(poll_at(f, "wait-1", NOW + 80, &held, &again, &why), SCEP_POLICY_REPLAY);
    assert_int_equal(scep_db_begin(f->db, f->pool, 0, &txn), APR_SUCCESS);
    assert_int_equal(scep_store_device_get(txn, f->pool, "w1.example.net", &dev), APR_SUCCESS);
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
    assert_int_equal(scep_store_transaction_get(txn, f->pool, "wait-3", &held), APR_SUCCESS);
    scep_db_abort(txn);
    assert_string_equal(held->state, SCEP_TXN_EXPIRED);
    /* an approval that comes too late changes nothing for the device */
    set_state(f, "wait-3", SCEP_TXN_EXPIRED);
    assert_int_equal(scep_policy_record_approved(f->pool, f->db, &f->conf, grant, "wait-3",
                                                 NULL,
                                                 cert_rec(f->pool, "0E03", "w2.example.net"),
                                                 NOW, &der, &der_len, &why),
                     SCEP_POLICY_DENIED);
}

/* ---- issue 15 point 1: what a forwarding gateway lets through (forward_names) ------------
 * Real PKCS#10 requests, made here with OpenSSL and read by scep_csr_parse, so that the
 * policy sees what the parser makes of every subject attribute, SAN, extension and
 * attribute, as on the request path. */
#include <openssl/conf.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "request_extensions.h"

static EVP_PKEY *point1_key;

/* OpenSSL refuses to add an attribute twice; a request from the wire may hold it twice.
 * When set, the DER of the attribute type counterSignature (1.2.840.113549.1.9.6) is
 * turned into challengePassword (…9.7) after signing: the parse does not verify. */
static int point1_second_challenge;
static X509_ATTRIBUTE *point1_extra_attribute; /* added as it is when set */

/* One request: `subject` as "type=value" lines, `exts` as openssl.cnf lines of a section
 * [ext] (more sections may follow), `attrs` as "type=value" lines of request attributes. */
static scep_csr_t *point1_csr(apr_pool_t *p, const char *subject, const char *exts,
                              const char *attrs)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    unsigned char *der = NULL, *copy;
    scep_csr_t *csr = NULL;
    const char *why = NULL, *line;
    char *lines, *last, *eq;
    int len;

    if (!point1_key) {
        point1_key = EVP_EC_gen("P-256");
    }
    assert_non_null(point1_key);
    lines = apr_pstrdup(p, subject);
    for (line = apr_strtok(lines, "\n", &last); line; line = apr_strtok(NULL, "\n", &last)) {
        eq = strchr(line, '=');
        assert_non_null(eq);
        *eq = '\0';
        assert_int_equal(X509_NAME_add_entry_by_txt(name, line, MBSTRING_UTF8,
                                                    (const unsigned char *)eq + 1, -1, -1, 0),
                         1);
    }
    assert_int_equal(X509_REQ_set_subject_name(req, name), 1);
    assert_int_equal(X509_REQ_set_pubkey(req, point1_key), 1);
    assert_int_equal(X509_REQ_add1_attr_by_NID(req, NID_pkcs9_challengePassword,
                                               MBSTRING_ASC, (const unsigned char *)"s3cret",
                                               -1), 1);
    if (point1_extra_attribute) {
        assert_int_equal(X509_REQ_add1_attr(req, point1_extra_attribute), 1);
    }
    if (attrs) {
        lines = apr_pstrdup(p, attrs);
        for (line = apr_strtok(lines, "\n", &last); line;
             line = apr_strtok(NULL, "\n", &last)) {
            eq = strchr(line, '=');
            assert_non_null(eq);
            *eq = '\0';
            if (X509_REQ_add1_attr_by_txt(req, line, MBSTRING_UTF8,
                                          (const unsigned char *)eq + 1, -1) != 1) {
                fail_msg("cannot add the attribute %s", line);
            }
        }
    }
    if (exts) {
        request_add_extensions(p, req, exts);
    }
    assert_true(X509_REQ_sign(req, point1_key, EVP_sha256()) > 0);
    len = i2d_X509_REQ(req, &der);
    assert_true(len > 0);
    copy = apr_pmemdup(p, der, (apr_size_t)len);
    OPENSSL_free(der);
    if (point1_second_challenge) {
        static const unsigned char counter_signature[] = {
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x06
        };
        int i;

        for (i = 0; i + (int)sizeof(counter_signature) <= len; i++) {
            if (memcmp(copy + i, counter_signature, sizeof(counter_signature)) == 0) {
                copy[i + sizeof(counter_signature) - 1] = 0x07;
                break;
            }
        }
        assert_true(i + (int)sizeof(counter_signature) <= len);
    }
    X509_NAME_free(name);
    X509_REQ_free(req);
    if (scep_csr_parse(p, copy, (apr_size_t)len, &csr, &why) != APR_SUCCESS) {
        fail_msg("scep_csr_parse: %s", why);
    }
    return csr;
}

static scep_identity_t *point1_identity(apr_pool_t *p, const char *ip, const char *serial)
{
    scep_identity_t *id = apr_pcalloc(p, sizeof(*id));

    id->fqdn = "fwd1.example.net";
    id->ips = apr_array_make(p, 1, sizeof(const char *));
    if (ip) {
        APR_ARRAY_PUSH(id->ips, const char *) = ip;
    }
    id->serial_number = serial;
    return id;
}

/* What the gateway refuses of `csr` (NULL: it forwards it); the kind must say so */
static const char *point1_refusal(apr_pool_t *p, const scep_identity_t *id,
                                  const scep_csr_t *csr)
{
    const char *what = "unset";
    scep_policy_fwd_e kind = scep_policy_forward_check(p, NULL, id, csr, &what);

    assert_true((kind == SCEP_POLICY_FWD_OK) == (what == NULL));
    return what;
}

/* the kind of refusal: a name the registration lacks, or something never forwarded */
static scep_policy_fwd_e point1_kind(apr_pool_t *p, const scep_identity_t *id,
                                     const scep_csr_t *csr)
{
    const char *what;

    return scep_policy_forward_check(p, NULL, id, csr, &what);
}

#define POINT1_REFUSED(p, id, csr, phrase) do {                                          \
        const char *what_ = point1_refusal(p, id, csr);                                  \
        if (!what_ || !strstr(what_, phrase)) {                                          \
            fail_msg("expected a refusal naming '%s', got %s", phrase,                   \
                     what_ ? what_ : "none (forwarded)");                               \
        }                                                                               \
    } while (0)

/* The cases of the first names-beyond test, on real requests: a CN that is no host name
 * is now refused too, since the upstream certifies it verbatim. */
static void test_names_beyond(void **state)
{
    fixture_t *f = *state;
    apr_pool_t *p = f->pool;
    scep_identity_t *id = point1_identity(p, "192.0.2.10", NULL);
    scep_csr_t *csr;

    id->fqdn = "dev.example.net";
    assert_null(point1_refusal(p, id, point1_csr(p, "", "subjectAltName=DNS:Dev.Example.NET.",
                                                 NULL)));
    csr = point1_csr(p, "CN=Branch router 7", "subjectAltName=DNS:dev.example.net", NULL);
    assert_string_equal(point1_refusal(p, id, csr), "the commonName Branch router 7");
    assert_int_equal(point1_kind(p, id, csr), SCEP_POLICY_FWD_NAME);
    assert_null(point1_refusal(p, id, point1_csr(p, "unstructuredAddress=192.0.2.10",
                                                 "subjectAltName=DNS:dev.example.net,"
                                                 "IP:192.0.2.10", NULL)));
    assert_null(point1_refusal(p, id, point1_csr(p, "CN=dev", NULL, NULL)));
    assert_string_equal(point1_refusal(p, id, point1_csr(p, "CN=de", NULL, NULL)),
                        "the commonName de");
    assert_string_equal(point1_refusal(p, id, point1_csr(p, "CN=other.example.net", NULL,
                                                         NULL)),
                        "the commonName other.example.net");
    assert_string_equal(point1_refusal(p, id, point1_csr(p, "", "subjectAltName="
                                                         "DNS:dev.example.net,"
                                                         "DNS:victim.example.net", NULL)),
                        "the dNSName victim.example.net");
    csr = point1_csr(p, "", "subjectAltName=IP:192.0.2.10,IP:198.51.100.1", NULL);
    assert_string_equal(point1_refusal(p, id, csr), "the iPAddress 198.51.100.1");
    assert_int_equal(point1_kind(p, id, csr), SCEP_POLICY_FWD_NAME);
    /* a request not read by scep_csr_parse has no complete view: never forwarded */
    csr = csr_for(p, "dev.example.net", NULL);
    assert_int_equal(point1_kind(p, id, csr), SCEP_POLICY_FWD_NEVER);
}

static void test_forward_names_point1_allowed(void **state)
{
    fixture_t *f = *state;
    apr_pool_t *p = f->pool;
    scep_identity_t *id = point1_identity(p, "192.0.2.10", "FTX123");
    scep_csr_t *csr;

    /* strongSwan, sscep, scepload: a CN and a dNSName */
    csr = point1_csr(p, "CN=fwd1.example.net", "subjectAltName=DNS:FWD1.example.net.", NULL);
    assert_null(point1_refusal(p, id, csr));
    /* certmonger: CA:FALSE, a key identifier, a friendlyName; Apple and Windows: key usages */
    csr = point1_csr(p, "CN=fwd1",
                     "subjectAltName=DNS:fwd1.example.net,IP:192.0.2.10\n"
                     "basicConstraints=critical,CA:FALSE\n"
                     "subjectKeyIdentifier=hash\n"
                     "keyUsage=critical,digitalSignature,keyEncipherment\n"
                     "extendedKeyUsage=clientAuth,serverAuth,1.3.6.1.5.5.7.3.17",
                     "friendlyName=20261203085212\n1.3.6.1.4.1.311.13.2.3=10.0.19045.2");
    assert_null(point1_refusal(p, id, csr));
    /* Cisco IOS: its names in the subject, the chassis serial */
    csr = point1_csr(p, "unstructuredName=fwd1.example.net\nunstructuredAddress=192.0.2.10\n"
                     "serialNumber=ftx123", NULL, NULL);
    assert_null(point1_refusal(p, id, csr));
    csr = point1_csr(p, "CN=fwd1.example.net", NULL,
                     "unstructuredName=fwd1.example.net\nunstructuredAddress=192.0.2.10");
    assert_null(point1_refusal(p, id, csr));
}

static void test_forward_names_point1_subject(void **state)
{
    fixture_t *f = *state;
    apr_pool_t *p = f->pool;
    scep_identity_t *id = point1_identity(p, "192.0.2.10", NULL);

    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1.example.net\nCN=b.example.org", NULL, NULL),
                   "the commonName b.example.org");
    POINT1_REFUSED(p, id, point1_csr(p, "CN=Branch router 7",
                                     "subjectAltName=DNS:fwd1.example.net", NULL),
                   "the commonName Branch router 7");
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1.example.net\nO=Evil Corp", NULL, NULL),
                   "the subject attribute O=Evil Corp");
    POINT1_REFUSED(p, id, point1_csr(p, "OU=Admins\nCN=fwd1.example.net", NULL, NULL),
                   "the subject attribute OU=Admins");
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1.example.net\nemailAddress=a@example.org",
                                     NULL, NULL),
                   "the subject attribute emailAddress=a@example.org");
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1.example.net\nC=US", NULL, NULL),
                   "the subject attribute C=US");
    POINT1_REFUSED(p, id, point1_csr(p, "unstructuredName=fwd1.example.net\n"
                                     "unstructuredName=b.example.org", NULL, NULL),
                   "the unstructuredName b.example.org");
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1\nunstructuredAddress=192.0.2.10\n"
                                     "unstructuredAddress=192.0.2.99", NULL, NULL),
                   "the unstructuredAddress 192.0.2.99");
    /* a serialNumber where the registration holds none, or another one */
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1\nserialNumber=FTX999", NULL, NULL),
                   "the serialNumber FTX999");
    POINT1_REFUSED(p, point1_identity(p, NULL, "FTX123"),
                   point1_csr(p, "CN=fwd1\nserialNumber=FTX999", NULL, NULL),
                   "the serialNumber FTX999");
}

static void test_forward_names_point1_san(void **state)
{
    fixture_t *f = *state;
    apr_pool_t *p = f->pool;
    scep_identity_t *id = point1_identity(p, "192.0.2.10", NULL);
    char long_name[300];

    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", "subjectAltName=DNS:fwd1.example.net,"
                                     "otherName:1.3.6.1.4.1.311.20.2.3;UTF8:admin@example.org",
                                     NULL),
                   "the subjectAltName otherName msUPN");
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", "subjectAltName=email:admin@example.org",
                                     NULL),
                   "the subjectAltName rfc822Name admin@example.org");
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", "subjectAltName=URI:https://example.org/",
                                     NULL),
                   "the subjectAltName URI https://example.org/");
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", "subjectAltName=dirName:dir\n[dir]\n"
                                     "CN=Administrator", NULL),
                   "the subjectAltName directoryName CN=Administrator");
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", "subjectAltName=RID:1.2.3.4", NULL),
                   "the subjectAltName registeredID");
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", "subjectAltName=DNS:fwd1.example.net,"
                                     "DNS:b.example.org", NULL),
                   "the dNSName b.example.org");
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", "subjectAltName=IP:192.0.2.99", NULL),
                   "the iPAddress 192.0.2.99");
    /* "fwd1.example.net\0.b.example.org" */
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", "subjectAltName=DER:3021821f66776431"
                                     "2e6578616d706c652e6e6574002e622e6578616d706c652e6f7267",
                                     NULL),
                   "a dNSName that is no host name: fwd1.example.net\\x00.b.example.org");
    memset(long_name, 'a', sizeof(long_name));
    memcpy(long_name + 260, ".fwd1.example.net", 18);
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", apr_pstrcat(p, "subjectAltName=DNS:",
                                                               long_name, NULL), NULL),
                   "(277 bytes)");
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", "subjectAltName=DNS:bad_name!.example.net",
                                     NULL),
                   "a dNSName that is no host name: bad_name!.example.net");
    /* a second SAN extension, which a parser reading the first one never sees */
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", "subjectAltName=DNS:fwd1.example.net\n"
                                     "2.5.29.17=DER:300f820d622e6578616d706c652e6f7267",
                                     NULL),
                   "the extension subjectAltName twice");
}

static void test_forward_names_point1_extensions(void **state)
{
    fixture_t *f = *state;
    apr_pool_t *p = f->pool;
    scep_identity_t *id = point1_identity(p, NULL, NULL);

    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", "basicConstraints=critical,CA:TRUE", NULL),
                   "the extension basicConstraints with cA TRUE");
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", "basicConstraints=CA:FALSE,pathlen:0",
                                     NULL),
                   "a pathLenConstraint");
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", "keyUsage=digitalSignature,keyCertSign",
                                     NULL),
                   "the keyUsage keyCertSign");
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", "keyUsage=cRLSign", NULL),
                   "the keyUsage cRLSign");
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", "extendedKeyUsage=clientAuth,codeSigning",
                                     NULL),
                   "the extendedKeyUsage codeSigning");
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", "extendedKeyUsage=anyExtendedKeyUsage",
                                     NULL),
                   "the extendedKeyUsage anyExtendedKeyUsage");
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", "extendedKeyUsage=1.3.6.1.4.1.311.20.2.2",
                                     NULL),
                   "the extendedKeyUsage msSmartcardLogin");
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", "1.3.6.1.4.1.99999.7=ASN1:UTF8:x", NULL),
                   "the extension 1.3.6.1.4.1.99999.7");
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", "certificatePolicies=1.2.3.4", NULL),
                   "the extension certificatePolicies");
    /* values that do not decode as their type, or carry bytes after it */
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", "keyUsage=DER:0c03616263", NULL),
                   "an extension keyUsage that does not decode");
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", "keyUsage=DER:030205a00500", NULL),
                   "an extension keyUsage that does not decode");
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", "basicConstraints=DER:04020000", NULL),
                   "an extension basicConstraints that does not decode");
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", "extendedKeyUsage=DER:3003020101", NULL),
                   "an extension extendedKeyUsage that does not decode");
}

static void test_forward_names_point1_attributes(void **state)
{
    fixture_t *f = *state;
    apr_pool_t *p = f->pool;
    scep_identity_t *id = point1_identity(p, NULL, NULL);

    /* ADCS reads a SAN and a template from it (ESC6); and extensions from the other */
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", NULL,
                                     "1.3.6.1.4.1.311.13.2.1=CertificateTemplate:SubCA"),
                   "the request attribute 1.3.6.1.4.1.311.13.2.1");
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", NULL, "emailAddress=a@example.org"),
                   "the request attribute emailAddress");
    point1_second_challenge = 1;
    POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", NULL, "1.2.840.113549.1.9.6=second"),
                   "the request attribute challengePassword twice");
    point1_second_challenge = 0;
    /* the parse reads an attribute's first value; the upstream might read the second */
    {
        X509_ATTRIBUTE *two = X509_ATTRIBUTE_create_by_NID(NULL, NID_pkcs9_unstructuredName,
                                                           MBSTRING_UTF8,
                                                           "fwd1.example.net", -1);

        assert_non_null(two);
        assert_int_equal(X509_ATTRIBUTE_set1_data(two, MBSTRING_UTF8, "b.example.org", -1),
                         1);
        point1_extra_attribute = two;
        POINT1_REFUSED(p, id, point1_csr(p, "CN=fwd1", NULL, NULL),
                       "the request attribute unstructuredName with 2 values");
        point1_extra_attribute = NULL;
        X509_ATTRIBUTE_free(two);
    }
}

/* ---- identity kinds (issue 17, point 1) ------------------------------------------------ */

static void use_identity(fixture_t *f, scep_identity_kind_e kind, scep_identity_where_e where)
{
    f->conf.identity_kind = kind;
    f->conf.identity_where = where;
}

/* decide on a real request with the challenge point1_csr gives it ("s3cret") */
static apr_status_t decide_real(fixture_t *f, const char *subject, const char *exts,
                                scep_grant_t **grant, const char **why)
{
    return decide(f, point1_csr(f->pool, subject, exts, NULL), NULL, grant, why);
}

#define DENIED_SAYING(f, subject, exts, phrase) do {                                    \
        scep_grant_t *g_;                                                               \
        const char *why_;                                                               \
        assert_int_equal(decide_real(f, subject, exts, &g_, &why_), SCEP_POLICY_DENIED);  \
        if (!why_ || !strstr(why_, phrase)) {                                            \
            fail_msg("expected a refusal saying '%s', got '%s'", phrase,                 \
                     why_ ? why_ : "(none)");                                           \
        }                                                                               \
    } while (0)

static void test_identity_point1_each_kind(void **state)
{
    fixture_t *f = *state;
    scep_grant_t *grant;
    const char *why;

    register_device(f, "name:John's iPhone", "s3cret", 0, NULL);
    register_device(f, "id:aa:bb:cc:dd:ee:0f", "s3cret", 0, NULL);
    register_device(f, "user:alice@example.org", "s3cret", 0, NULL);

    use_identity(f, SCEP_IDENTITY_DEVICE_NAME, SCEP_WHERE_CN);
    assert_int_equal(decide_real(f, "CN=John's iPhone", NULL, &grant, &why), APR_SUCCESS);
    assert_int_equal(grant->kind, SCEP_GRANT_DEVICE);
    assert_int_equal(grant->identity.kind, SCEP_IDENTITY_DEVICE_NAME);
    assert_string_equal(grant->identity.fqdn, "name:John's iPhone");
    assert_string_equal(grant->identity.name, "John's iPhone");
    assert_int_equal(grant->identity.where, SCEP_WHERE_CN);
    /* device names are exact: case counts */
    DENIED_SAYING(f, "CN=john's iphone", NULL,
                  "no registration applies to name:john's iphone");

    use_identity(f, SCEP_IDENTITY_DEVICE_ID, SCEP_WHERE_SERIAL_NUMBER);
    assert_int_equal(decide_real(f, "CN=x\nserialNumber=AA-BB-CC-DD-EE-0F", NULL, &grant,
                                 &why), APR_SUCCESS);
    assert_string_equal(grant->identity.fqdn, "id:aa:bb:cc:dd:ee:0f");
    assert_string_equal(grant->identity.name, "AA-BB-CC-DD-EE-0F");
    assert_int_equal(decide_real(f, "serialNumber=aabb.ccdd.ee0f", NULL, &grant, &why),
                     APR_SUCCESS);
    /* another id with the registered device's challenge */
    DENIED_SAYING(f, "serialNumber=AA-BB-CC-DD-EE-10", NULL, "no registration applies");

    use_identity(f, SCEP_IDENTITY_USER, SCEP_WHERE_RFC822_NAME);
    assert_int_equal(decide_real(f, "CN=Alice", "subjectAltName=email:alice@Example.ORG",
                                 &grant, &why), APR_SUCCESS);
    assert_string_equal(grant->identity.fqdn, "user:alice@example.org");
    assert_string_equal(grant->identity.name, "alice@Example.ORG");
    use_identity(f, SCEP_IDENTITY_USER, SCEP_WHERE_UPN);
    assert_int_equal(decide_real(f, "CN=Alice", "subjectAltName=otherName:"
                                 "1.3.6.1.4.1.311.20.2.3;UTF8:alice@example.org",
                                 &grant, &why), APR_SUCCESS);
    assert_string_equal(grant->identity.fqdn, "user:alice@example.org");
    assert_int_equal(grant->identity.where, SCEP_WHERE_UPN);
}

/* A user's challenge is the user's only: bob with alice's challenge is refused */
static void test_identity_point1_attacks(void **state)
{
    fixture_t *f = *state;
    scep_grant_t *grant;
    const char *why;

    register_device(f, "user:alice@example.org", "s3cret", 0, NULL);
    register_device(f, "user:bob@example.org", "other", 0, NULL);
    register_device(f, "*", "s3cret", 0, NULL);
    use_identity(f, SCEP_IDENTITY_USER, SCEP_WHERE_RFC822_NAME);
    DENIED_SAYING(f, "CN=Bob", "subjectAltName=email:bob@example.org",
                  "challengePassword is wrong for user:bob@example.org");
    /* a host wildcard never covers a user */
    DENIED_SAYING(f, "CN=Carol", "subjectAltName=email:carol@example.org",
                  "no registration applies to user:carol@example.org");
    /* a second identity at the place, or none, or one that cannot be read */
    DENIED_SAYING(f, "", "subjectAltName=email:alice@example.org,email:bob@example.org",
                  "SCEP00601");
    DENIED_SAYING(f, "CN=alice@example.org", NULL, "SCEP00600");
    DENIED_SAYING(f, "", "subjectAltName=email:alice", "SCEP00603");
    DENIED_SAYING(f, "", "subjectAltName=email:al\x01ice@example.org", "SCEP00603");
    /* a byte beyond ASCII in an IA5String: OpenSSL reads it as Latin-1, so "alic\xE9"
     * passed as the registered alicé while the certificate's bytes said otherwise */
    register_device(f, "user:alic\xc3\xa9@example.org", "s3cret", 0, NULL);
    DENIED_SAYING(f, "", "subjectAltName=email:alic\xe9@example.org", "SCEP00602");
    /* a UPN that is no UTF8String is a UPN that cannot be read, not an absent one */
    use_identity(f, SCEP_IDENTITY_USER, SCEP_WHERE_UPN);
    DENIED_SAYING(f, "", "subjectAltName=otherName:1.3.6.1.4.1.311.20.2.3;"
                  "IA5STRING:alice@example.org", "SCEP00602");
    /* unstructuredName in the subject and as an attribute: two */
    use_identity(f, SCEP_IDENTITY_DEVICE_NAME, SCEP_WHERE_UNSTRUCTURED_NAME);
    {
        scep_grant_t *g;
        const char *w;

        assert_int_equal(decide(f, point1_csr(f->pool, "unstructuredName=dev a", NULL,
                                              "unstructuredName=dev b"), NULL, &g, &w),
                         SCEP_POLICY_DENIED);
        assert_non_null(strstr(w, "SCEP00601"));
    }
    use_identity(f, SCEP_IDENTITY_DEVICE_NAME, SCEP_WHERE_CN);
    DENIED_SAYING(f, "CN=a\nCN=b", NULL, "SCEP00601");
    DENIED_SAYING(f, "CN=tab\there", NULL, "control character");
    /* 10,000 characters: past what the parser reads; 300: past the identity's limit */
    use_identity(f, SCEP_IDENTITY_USER, SCEP_WHERE_RFC822_NAME);
    {
        char *xs = apr_palloc(f->pool, 10001);

        memset(xs, 'x', 10000);
        xs[10000] = '\0';
        DENIED_SAYING(f, "", apr_pstrcat(f->pool, "subjectAltName=email:", xs, "@example.org",
                                         NULL), "SCEP00602");
        xs[300] = '\0';
        DENIED_SAYING(f, "", apr_pstrcat(f->pool, "subjectAltName=email:", xs, "@example.org",
                                         NULL), "more than 256");
    }
    /* the host endpoint is unchanged: a host wildcard still grants a host */
    use_identity(f, SCEP_IDENTITY_HOST, SCEP_WHERE_HOST_RULES);
    assert_int_equal(decide_real(f, "CN=h1.example.org", NULL, &grant, &why), APR_SUCCESS);
    assert_int_equal(grant->identity.kind, SCEP_IDENTITY_HOST);
    assert_null(grant->identity.name);
}

static void test_identity_point1_user_domain_wildcard(void **state)
{
    fixture_t *f = *state;
    scep_grant_t *grant;
    const char *why;

    register_device(f, "user:*@example.org", "s3cret", 0, NULL);
    use_identity(f, SCEP_IDENTITY_USER, SCEP_WHERE_RFC822_NAME);
    assert_int_equal(decide_real(f, "", "subjectAltName=email:Alice@EXAMPLE.org", &grant,
                                 &why), APR_SUCCESS);
    assert_int_equal(grant->kind, SCEP_GRANT_WILDCARD);
    assert_string_equal(grant->registration, "user:*@example.org");
    assert_string_equal(grant->identity.fqdn, "user:Alice@example.org");
    DENIED_SAYING(f, "", "subjectAltName=email:alice@example.org.evil", "no registration");
    DENIED_SAYING(f, "", "subjectAltName=email:alice@sub.example.org", "no registration");
}

static void test_identity_point1_minted(void **state)
{
    fixture_t *f = *state;
    scep_grant_t *grant;
    scep_minted_t *rec;
    scep_txn_t *txn;
    const char *why, *bound;

    use_identity(f, SCEP_IDENTITY_USER, SCEP_WHERE_RFC822_NAME);
    assert_int_equal(scep_db_begin(f->db, f->pool, 1, &txn), APR_SUCCESS);
    assert_int_equal(scep_store_minted_create(txn, f->pool, NOW, 3600,
                                              "user:alice@example.org", NULL, &bound, &rec),
                     APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
    assert_int_equal(decide(f, csr_for(f->pool, NULL, bound), NULL, &grant, &why),
                     SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "SCEP00600"));
    {
        scep_csr_t *csr = point1_csr(f->pool, "", "subjectAltName=email:bob@example.org",
                                     NULL);

        csr->challenge = bound;
        csr->challenge_len = strlen(bound);
        assert_int_equal(decide(f, csr, NULL, &grant, &why), SCEP_POLICY_DENIED);
        assert_non_null(strstr(why, "bound to user:alice@example.org"));
        csr = point1_csr(f->pool, "", "subjectAltName=email:alice@EXAMPLE.org", NULL);
        csr->challenge = bound;
        csr->challenge_len = strlen(bound);
        assert_int_equal(decide(f, csr, NULL, &grant, &why), APR_SUCCESS);
        assert_int_equal(grant->kind, SCEP_GRANT_MINTED);
        assert_string_equal(grant->identity.name, "alice@EXAMPLE.org");
        /* the same challenge at a host endpoint: another kind, refused */
        use_identity(f, SCEP_IDENTITY_HOST, SCEP_WHERE_HOST_RULES);
        csr = csr_for(f->pool, NULL, bound);
        assert_int_equal(decide(f, csr, NULL, &grant, &why), SCEP_POLICY_DENIED);
        assert_non_null(strstr(why, "SCEP00604"));
    }
}

/* alice@example.org registered; a request with the UPN `upn` at an endpoint with
 * approval held as `txid`, and approved */
static void hold_approved_upn(fixture_t *f, const char *upn, const char *txid)
{
    scep_grant_t *grant;
    const char *why;

    f->conf.pending_timeout = 3600;
    f->conf.require_approval = 1;
    register_device(f, "user:alice@example.org", "s3cret", 0, NULL);
    use_identity(f, SCEP_IDENTITY_USER, SCEP_WHERE_UPN);
    assert_int_equal(decide_real(f, "", apr_pstrcat(f->pool, "subjectAltName=otherName:"
                                                    "1.3.6.1.4.1.311.20.2.3;UTF8:", upn,
                                                    NULL),
                                 &grant, &why), APR_SUCCESS);
    assert_true(grant->needs_approval);
    assert_int_equal(hold(f, grant, txid, 1, &why), APR_SUCCESS);
    set_state(f, txid, SCEP_TXN_APPROVED);
}

/* A held request of a user comes back as the user, with the value as it was asked */
static void test_identity_point1_held(void **state)
{
    fixture_t *f = *state;
    scep_grant_t *again;
    scep_transaction_t *held;
    const char *why;

    hold_approved_upn(f, "alice@Example.org", "wait-user");
    assert_int_equal(poll_at(f, "wait-user", NOW + 60, &held, &again, &why),
                     SCEP_POLICY_APPROVED);
    assert_int_equal(again->identity.kind, SCEP_IDENTITY_USER);
    assert_string_equal(again->identity.fqdn, "user:alice@example.org");
    assert_string_equal(again->identity.name, "alice@Example.org");
    assert_int_equal(again->identity.where, SCEP_WHERE_UPN);
}

/* Issue 17 review F4: a held request is completed only at an endpoint of its identity
 * kind and place, even where the endpoint strings agree (records from before the kind
 * was part of them); a host endpoint's string is the one written before the kinds. */
static void test_held_bound_to_kind_f4(void **state)
{
    fixture_t *f = *state;
    scep_grant_t *again;
    scep_transaction_t *held;
    unsigned char ca[32];
    const char *why, *host_endpoint;

    hold_approved_upn(f, "alice@example.org", "wait-kind");
    use_identity(f, SCEP_IDENTITY_HOST, SCEP_WHERE_HOST_RULES);
    assert_int_equal(poll_at(f, "wait-kind", NOW + 60, &held, &again, &why),
                     SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "held for the user user:alice@example.org"));
    use_identity(f, SCEP_IDENTITY_DEVICE_NAME, SCEP_WHERE_CN);
    assert_int_equal(poll_at(f, "wait-kind", NOW + 60, &held, &again, &why),
                     SCEP_POLICY_DENIED);
    use_identity(f, SCEP_IDENTITY_USER, SCEP_WHERE_RFC822_NAME);
    assert_int_equal(poll_at(f, "wait-kind", NOW + 60, &held, &again, &why),
                     SCEP_POLICY_DENIED);
    use_identity(f, SCEP_IDENTITY_USER, SCEP_WHERE_UPN);
    assert_int_equal(poll_at(f, "wait-kind", NOW + 60, &held, &again, &why),
                     SCEP_POLICY_APPROVED);

    memset(ca, 0xab, sizeof(ca));
    f->conf.profile_name = "p";
    use_identity(f, SCEP_IDENTITY_HOST, SCEP_WHERE_HOST_RULES);
    host_endpoint = scep_policy_endpoint(f->pool, &f->conf, 0, ca);
    assert_int_equal(strncmp(host_endpoint, "profile 'p', local CA abab", 26), 0);
    assert_int_equal(strlen(host_endpoint), strlen("profile 'p', local CA ") + 64);
    use_identity(f, SCEP_IDENTITY_DEVICE_NAME, SCEP_WHERE_CN);
    assert_string_equal(scep_policy_endpoint(f->pool, &f->conf, 0, ca),
                        apr_pstrcat(f->pool, host_endpoint, ", device-name from CN", NULL));
    use_identity(f, SCEP_IDENTITY_DEVICE_NAME, SCEP_WHERE_UNSTRUCTURED_NAME);
    assert_string_equal(scep_policy_endpoint(f->pool, &f->conf, 0, ca),
                        apr_pstrcat(f->pool, host_endpoint,
                                    ", device-name from unstructuredName", NULL));
}

/* Renewal by a certificate issued to a device name */
static void test_identity_point1_renewal(void **state)
{
    fixture_t *f = *state;
    scep_grant_t *grant;
    const char *why, *name = NULL;

    f->conf.renewal_grace = 0;
    register_device(f, "name:John's iPhone", "s3cret", 0, NULL);
    record_cert(f, "0C01", "name:John's iPhone", NOW + 3600, "tx-name");
    use_identity(f, SCEP_IDENTITY_DEVICE_NAME, SCEP_WHERE_CN);
    assert_int_equal(scep_policy_authorize_renewal(f->pool, f->db, &f->conf,
                                                   point1_csr(f->pool, "CN=John's iPhone",
                                                              NULL, NULL),
                                                   "0C01", NOW, &grant, &name, &why),
                     APR_SUCCESS);
    assert_int_equal(grant->kind, SCEP_GRANT_RENEWAL);
    assert_string_equal(grant->identity.name, "John's iPhone");
    assert_int_equal(scep_policy_authorize_renewal(f->pool, f->db, &f->conf,
                                                   point1_csr(f->pool, "CN=Jane's iPhone",
                                                              NULL, NULL),
                                                   "0C01", NOW, &grant, &name, &why),
                     SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "issued to name:John's iPhone"));
    /* the device name's certificate, at an endpoint of hosts, leaving the name to it */
    use_identity(f, SCEP_IDENTITY_HOST, SCEP_WHERE_HOST_RULES);
    assert_int_equal(scep_policy_authorize_renewal(f->pool, f->db, &f->conf,
                                                   csr_for(f->pool, NULL, NULL), "0C01", NOW,
                                                   &grant, &name, &why),
                     SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "SCEP00605"));
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
        cmocka_unit_test_setup_teardown(test_lockout_at_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_time_and_transactions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_minted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decide, setup, teardown),
        cmocka_unit_test_setup_teardown(test_static_challenge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_renewal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_renewal_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_approval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names_beyond, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forward_names_point1_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forward_names_point1_subject, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forward_names_point1_san, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forward_names_point1_extensions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forward_names_point1_attributes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_point1_each_kind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_point1_attacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_point1_user_domain_wildcard, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_identity_point1_minted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_point1_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_held_bound_to_kind_f4, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_point1_renewal, setup, teardown),
    };
    int rc;

    apr_initialize();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    EVP_PKEY_free(point1_key);
    apr_terminate();
    return rc;
}

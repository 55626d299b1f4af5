/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the attacks an unauthenticated client made on a running mod_scep (issue 15
 * of the project), at the level of the policy that now stops them: each test is named after
 * the point it covers and failed on the code before its fix.
 *
 * - point 2: a held request completed at another endpoint;
 * - point 3: concurrent wrong guesses past the lockout, and the right challenge accepted
 *   while the name was locked;
 * - point 5: wrong guesses for new names filling the database;
 * - point 8: a transactionID squatted by another requester, blocking the owner's renewals;
 * - point 11: a poll of an issued transaction answered without the requester's key. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "scep_policy.h"
#include "scratch_db.h"

#define NOW ((apr_int64_t)1800000000)

typedef struct fixture_t {
    apr_pool_t *pool;
    char dir[64];
    scep_db_t *db;
    scep_policy_conf_t conf;
} fixture_t;

/* In /dev/shm where there is one: these tests commit thousands of times and measure
 * nothing about the disk. */
static int setup_sized(void **state, apr_size_t map_size)
{
    fixture_t *f = calloc(1, sizeof(*f));
    const char *why = NULL;

    apr_pool_create(&f->pool, NULL);
    snprintf(f->dir, sizeof(f->dir), "%s", access("/dev/shm", W_OK) == 0
                                           ? "/dev/shm/scep-attacks.XXXXXX"
                                           : "/tmp/scep-attacks.XXXXXX");
    if (!mkdtemp(f->dir)
        || scep_db_open(f->pool, f->dir, map_size, SCEP_DB_CREATE, NULL, &f->db, &why)
           != APR_SUCCESS) {
        fprintf(stderr, "cannot make a scratch database: %s\n", why ? why : "?");
        abort();
    }
    f->conf.lockout_failures = 5;
    f->conf.lockout_seconds = 900;
    f->conf.transaction_window = 3600;
    f->conf.pending_timeout = 86400;
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_sized(state, 0);
}

/* 1 MB: room for 256 failure records (an eighth of the map, 512 bytes each). */
static int setup_small(void **state)
{
    return setup_sized(state, 1024 * 1024);
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
    APR_ARRAY_PUSH(csr->dns_names, const char *) = dns;
    if (challenge) {
        csr->challenge = challenge;
        csr->challenge_len = strlen(challenge);
    }
    return csr;
}

static void register_device(fixture_t *f, const char *fqdn, const char *challenge)
{
    scep_device_t *dev = scep_store_device_new(f->pool, fqdn);
    scep_txn_t *txn;

    assert_int_equal(scep_verifier_make(challenge, strlen(challenge), &dev->verifier),
                     APR_SUCCESS);
    assert_int_equal(scep_db_begin(f->db, f->pool, 1, &txn), APR_SUCCESS);
    assert_int_equal(scep_store_device_put(txn, f->pool, dev), APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
}

/* A verifier of many PBKDF2 iterations, so that judging one guess takes long enough
 * (several ms) for every guess of a burst to be in flight at once. */
static void register_slow_device(fixture_t *f, const char *fqdn, const char *challenge)
{
    scep_device_t *dev = scep_store_device_new(f->pool, fqdn);
    scep_txn_t *txn;

    dev->verifier.algorithm = SCEP_VERIFIER_PBKDF2_SHA256;
    dev->verifier.iterations = 50000;
    assert_int_equal(RAND_bytes(dev->verifier.salt, sizeof(dev->verifier.salt)), 1);
    assert_int_equal(PKCS5_PBKDF2_HMAC(challenge, (int)strlen(challenge), dev->verifier.salt,
                                       sizeof(dev->verifier.salt),
                                       (int)dev->verifier.iterations, EVP_sha256(),
                                       sizeof(dev->verifier.hash), dev->verifier.hash), 1);
    assert_int_equal(scep_db_begin(f->db, f->pool, 1, &txn), APR_SUCCESS);
    assert_int_equal(scep_store_device_put(txn, f->pool, dev), APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
}

static apr_status_t decide(fixture_t *f, apr_pool_t *p, const char *name,
                           const char *challenge, apr_int64_t now, scep_grant_t **grant,
                           const char **why)
{
    const char *fqdn = NULL;

    *why = NULL;
    return scep_policy_authorize(p, f->db, &f->conf, csr_for(p, name, challenge), NULL, now,
                                 grant, &fqdn, why);
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

static apr_size_t failure_records(fixture_t *f)
{
    scep_txn_t *txn;
    apr_size_t n = 0;

    assert_int_equal(scep_db_begin(f->db, f->pool, 0, &txn), APR_SUCCESS);
    assert_int_equal(scep_store_failure_count(txn, &n), APR_SUCCESS);
    scep_db_abort(txn);
    return n;
}

/* ---- point 3 --------------------------------------------------------------------- */

#define BURST 40

typedef struct guesser_t {
    fixture_t *f;
    pthread_barrier_t *start;
    const char *challenge;
    apr_status_t rv;
    int judged_wrong, locked;
} guesser_t;

static void *guess(void *arg)
{
    guesser_t *g = arg;
    apr_pool_t *p;
    scep_grant_t *grant;
    const char *why;

    apr_pool_create(&p, NULL);
    pthread_barrier_wait(g->start);
    g->rv = decide(g->f, p, "a.fleet.example.net", g->challenge, NOW, &grant, &why);
    g->judged_wrong = why && strstr(why, "is wrong") != NULL;
    g->locked = why && strstr(why, "locked out") != NULL;
    apr_pool_destroy(p);
    return NULL;
}

/* A burst of wrong guesses over many threads (the httpd workers of one process; processes
 * queue on the same LMDB write lock): at most ScepLockout's count of them is judged, every
 * other one is refused as locked, and so is the right challenge once the name is locked. */
static void test_point3_lockout_burst(void **state)
{
    fixture_t *f = *state;
    pthread_t threads[BURST];
    guesser_t g[BURST];
    pthread_barrier_t start;
    scep_grant_t *grant;
    const char *why;
    int i, judged = 0, accepted = 0;

    register_slow_device(f, "*.fleet.example.net", "fleet-secret");
    pthread_barrier_init(&start, NULL, BURST);
    for (i = 0; i < BURST; i++) {
        memset(&g[i], 0, sizeof(g[i]));
        g[i].f = f;
        g[i].start = &start;
        /* the right challenge in the middle of the burst */
        g[i].challenge = i == BURST / 2 ? "fleet-secret"
                                        : apr_psprintf(f->pool, "guess-%d", i);
        assert_int_equal(pthread_create(&threads[i], NULL, guess, &g[i]), 0);
    }
    for (i = 0; i < BURST; i++) {
        pthread_join(threads[i], NULL);
        judged += g[i].judged_wrong;
        accepted += g[i].rv == APR_SUCCESS;
        assert_true(g[i].rv == APR_SUCCESS || g[i].rv == SCEP_POLICY_DENIED);
        assert_true(g[i].rv == APR_SUCCESS || g[i].judged_wrong || g[i].locked);
    }
    pthread_barrier_destroy(&start);
    assert_true(judged <= 5);
    assert_true(accepted <= 1);
    /* the name is locked now, and the right challenge is refused too */
    assert_int_equal(decide(f, f->pool, "a.fleet.example.net", "fleet-secret", NOW, &grant,
                            &why), SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "locked out"));
    /* until the lockout is over */
    assert_int_equal(decide(f, f->pool, "a.fleet.example.net", "fleet-secret", NOW + 901,
                            &grant, &why), APR_SUCCESS);
}

/* A request that passed with the right challenge before the name was locked is refused
 * when it comes to be recorded after the lock: the lock is checked in the transaction
 * that writes the certificate. */
static void test_point3_lock_checked_when_recorded(void **state)
{
    fixture_t *f = *state;
    scep_grant_t *grant, *other;
    unsigned char digest[SCEP_REQUEST_DIGEST_LEN];
    const unsigned char *der;
    apr_size_t der_len;
    const char *why;
    int i;

    register_device(f, "*.fleet.example.net", "fleet-secret");
    assert_int_equal(decide(f, f->pool, "b.fleet.example.net", "fleet-secret", NOW, &grant,
                            &why), APR_SUCCESS);
    for (i = 0; i < 5; i++) {
        assert_int_equal(decide(f, f->pool, "b.fleet.example.net", "wrong", NOW, &other, &why),
                         SCEP_POLICY_DENIED);
    }
    memset(digest, 7, sizeof(digest));
    assert_int_equal(scep_policy_record(f->pool, f->db, &f->conf, grant, "tx-b", NULL, digest,
                                        cert_rec(f->pool, "0B01", "b.fleet.example.net"), NOW,
                                        &der, &der_len, &why), SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "locked out"));
}

/* A wildcard's challenge is one secret: guesses spread over new names (four each, under
 * ScepLockout 5) still lock it, at its own threshold, and then no name under it enrolls
 * with the challenge. */
static void test_point3_wildcard_shared_count(void **state)
{
    fixture_t *f = *state;
    scep_grant_t *grant;
    const char *why;
    apr_pool_t *scratch;
    int i, j, judged = 0;

    f->conf.lockout_shared_failures = 50;
    register_device(f, "*.fleet.example.net", "fleet-secret");
    register_device(f, "exact.fleet.example.net", "exact-secret");
    apr_pool_create(&scratch, f->pool);
    for (i = 0; i < 500; i++) {
        for (j = 0; j < 4; j++) {
            decide(f, scratch, apr_psprintf(scratch, "n%d.fleet.example.net", i), "wrong",
                   NOW, &grant, &why);
            judged += why && strstr(why, "is wrong") != NULL;
            apr_pool_clear(scratch);
        }
    }
    assert_int_equal(judged, 50);
    assert_int_equal(decide(f, f->pool, "fresh.fleet.example.net", "fleet-secret", NOW,
                            &grant, &why), SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "*.fleet.example.net is locked out"));
    /* an exact registration under the wildcard's domain is its own */
    assert_int_equal(decide(f, f->pool, "exact.fleet.example.net", "exact-secret", NOW, &grant,
                            &why), APR_SUCCESS);
    assert_int_equal(decide(f, f->pool, "fresh.fleet.example.net", "fleet-secret", NOW + 901,
                            &grant, &why), APR_SUCCESS);
}

/* A renewal signed with the device's certificate is not stopped by a lockout someone
 * caused with wrong guesses; with ScepRenewalChallenge it is, since it then guesses too. */
static void test_point3_renewal_not_locked(void **state)
{
    fixture_t *f = *state;
    scep_grant_t *grant;
    scep_txn_t *txn;
    const char *why, *fqdn;
    int i;

    register_device(f, "*.fleet.example.net", "fleet-secret");
    assert_int_equal(scep_db_begin(f->db, f->pool, 1, &txn), APR_SUCCESS);
    assert_int_equal(scep_store_cert_put(txn, f->pool, cert_rec(f->pool, "0F01",
                                                                "r.fleet.example.net")),
                     APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
    for (i = 0; i < 5; i++) {
        decide(f, f->pool, "r.fleet.example.net", "wrong", NOW, &grant, &why);
    }
    assert_int_equal(decide(f, f->pool, "r.fleet.example.net", "fleet-secret", NOW, &grant,
                            &why), SCEP_POLICY_DENIED);
    assert_int_equal(scep_policy_authorize_renewal(f->pool, f->db, &f->conf,
                                                   csr_for(f->pool, "r.fleet.example.net",
                                                           NULL),
                                                   "0F01", NOW, &grant, &fqdn, &why),
                     APR_SUCCESS);
    f->conf.renewal_challenge = 1;
    assert_int_equal(scep_policy_authorize_renewal(f->pool, f->db, &f->conf,
                                                   csr_for(f->pool, "r.fleet.example.net",
                                                           "fleet-secret"),
                                                   "0F01", NOW, &grant, &fqdn, &why),
                     SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "locked out"));
}

/* What the client sent reaches a refusal's log line escaped: a serialNumber with a line
 * break cannot forge a second log line (nor an operator's listing). */
static void test_request_values_escaped(void **state)
{
    fixture_t *f = *state;
    scep_device_t *dev = scep_store_device_new(f->pool, "sn.example.org");
    scep_csr_t *csr = csr_for(f->pool, "sn.example.org", "sn-secret");
    scep_grant_t *grant;
    scep_txn_t *txn;
    const char *why = NULL, *fqdn = NULL;

    assert_int_equal(scep_verifier_make("sn-secret", 9, &dev->verifier), APR_SUCCESS);
    dev->serial = "FTX123";
    assert_int_equal(scep_db_begin(f->db, f->pool, 1, &txn), APR_SUCCESS);
    assert_int_equal(scep_store_device_put(txn, f->pool, dev), APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
    csr->serial_number = "X\nSCEP00200: forged line";
    csr->unstructured_address = "192.0.2.1\r\n";
    assert_int_equal(scep_policy_authorize(f->pool, f->db, &f->conf, csr, NULL, NOW, &grant,
                                           &fqdn, &why), SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "X\\x0aSCEP00200"));
    assert_null(strchr(why, '\n'));
    assert_null(strchr(why, '\r'));
}

/* ---- point 5 --------------------------------------------------------------------- */

/* Wrong guesses for ever new names under a wildcard store at most an eighth of the map,
 * legitimate enrollments go on being recorded, and the lockout still works: past the cap
 * the failures count against the wildcard alone. */
static void test_point5_failures_bounded(void **state)
{
    fixture_t *f = *state;
    scep_grant_t *grant;
    unsigned char digest[SCEP_REQUEST_DIGEST_LEN];
    const unsigned char *der;
    apr_size_t der_len;
    const char *why;
    apr_pool_t *scratch;
    int i, locked_by_registration = 0;

    /* the wildcard's own count high enough for the cap to be reached first */
    f->conf.lockout_shared_failures = 1000;
    register_device(f, "*", "any-secret");
    register_device(f, "exact.example.org", "exact-secret");
    apr_pool_create(&scratch, f->pool);
    for (i = 0; i < 2000; i++) {
        apr_status_t rv = decide(f, scratch, apr_psprintf(scratch, "n%05d.flood.example.org",
                                                          i),
                                 "wrong", NOW, &grant, &why);

        assert_int_equal(rv, SCEP_POLICY_DENIED);
        locked_by_registration |= strstr(why, "* is locked out") != NULL;
        assert_true(strstr(why, "is wrong") || strstr(why, "locked out"));
        apr_pool_clear(scratch);
    }
    assert_true(failure_records(f) <= 256 + 1);
    assert_true(locked_by_registration);
    /* every name under the wildcard is locked now, also with the right challenge */
    assert_int_equal(decide(f, f->pool, "fresh.flood.example.org", "any-secret", NOW, &grant,
                            &why), SCEP_POLICY_DENIED);
    /* an exact registration is not */
    assert_int_equal(decide(f, f->pool, "exact.example.org", "exact-secret", NOW, &grant,
                            &why), APR_SUCCESS);
    memset(digest, 9, sizeof(digest));
    assert_int_equal(scep_policy_record(f->pool, f->db, &f->conf, grant, "tx-exact", NULL,
                                        digest, cert_rec(f->pool, "0C01", "exact.example.org"),
                                        NOW, &der, &der_len, &why), APR_SUCCESS);
    /* once the lockout period is over, the stale records are purged and names count on
     * their own again */
    assert_int_equal(decide(f, f->pool, "later.flood.example.org", "wrong", NOW + 2000,
                            &grant, &why), SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "is wrong"));
    assert_true(failure_records(f) <= 3);
    assert_int_equal(decide(f, f->pool, "fresh.flood.example.org", "any-secret", NOW + 2000,
                            &grant, &why), APR_SUCCESS);
}

/* Without a lockout, nothing is stored for a wrong guess. */
static void test_point5_no_lockout_no_records(void **state)
{
    fixture_t *f = *state;
    scep_grant_t *grant;
    const char *why;
    int i;

    f->conf.lockout_failures = 0;
    register_device(f, "*", "any-secret");
    for (i = 0; i < 20; i++) {
        assert_int_equal(decide(f, f->pool, apr_psprintf(f->pool, "x%d.example.org", i),
                                "wrong", NOW, &grant, &why), SCEP_POLICY_DENIED);
    }
    assert_int_equal(failure_records(f), 0);
}

/* ---- point 8 and point 11 ------------------------------------------------------------ */

static const unsigned char *key_of(apr_pool_t *p, unsigned char fill)
{
    unsigned char *k = apr_palloc(p, SCEP_REQUEST_DIGEST_LEN);

    memset(k, fill, SCEP_REQUEST_DIGEST_LEN);
    return k;
}

static apr_status_t issue(fixture_t *f, const char *name, const char *challenge,
                          const char *txid, const unsigned char *requester,
                          unsigned char digest_fill, const char *serial, const char **why)
{
    scep_grant_t *grant;
    unsigned char digest[SCEP_REQUEST_DIGEST_LEN];
    const unsigned char *der;
    apr_size_t der_len;
    apr_status_t rv = decide(f, f->pool, name, challenge, NOW, &grant, why);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    memset(digest, digest_fill, sizeof(digest));
    rv = scep_policy_replay(f->pool, f->db, &f->conf, txid, requester, NULL, NOW, digest,
                            &der, &der_len, why);
    if (rv != SCEP_DB_NOTFOUND) {
        return rv;
    }
    return scep_policy_record(f->pool, f->db, &f->conf, grant, txid, requester, digest,
                              cert_rec(f->pool, serial, name), NOW, &der, &der_len, why);
}

/* Another enrolled device takes the transactionID the victim derives from its public key:
 * neither is refused, neither sees the other's record. */
static void test_point8_transaction_id_squatting(void **state)
{
    fixture_t *f = *state;
    const unsigned char *victim = key_of(f->pool, 0xa1), *squatter = key_of(f->pool, 0xb2);
    unsigned char digest[SCEP_REQUEST_DIGEST_LEN];
    const unsigned char *der;
    apr_size_t der_len;
    const char *why;

    register_device(f, "victim.example.org", "v-secret");
    register_device(f, "squatter.example.org", "s-secret");
    /* the squatter is first with the victim's transactionID */
    assert_int_equal(issue(f, "squatter.example.org", "s-secret", "victim-key-hash", squatter,
                           0x11, "0B51", &why), APR_SUCCESS);
    /* the victim enrolls under it all the same */
    assert_int_equal(issue(f, "victim.example.org", "v-secret", "victim-key-hash", victim,
                           0x22, "0A71", &why), APR_SUCCESS);
    /* each retry gets its own certificate; a different request of the victim's under the
     * same ID is still refused, with the victim's own record in the reason */
    memset(digest, 0x22, sizeof(digest));
    assert_int_equal(scep_policy_replay(f->pool, f->db, &f->conf, "victim-key-hash", victim,
                                        NULL, NOW, digest, &der, &der_len, &why),
                     SCEP_POLICY_REPLAY);
    assert_memory_equal(der, "DER of 0A71", der_len);
    memset(digest, 0x11, sizeof(digest));
    assert_int_equal(scep_policy_replay(f->pool, f->db, &f->conf, "victim-key-hash", squatter,
                                        NULL, NOW, digest, &der, &der_len, &why),
                     SCEP_POLICY_REPLAY);
    assert_memory_equal(der, "DER of 0B51", der_len);
    memset(digest, 0x33, sizeof(digest));
    assert_int_equal(scep_policy_replay(f->pool, f->db, &f->conf, "victim-key-hash", victim,
                                        NULL, NOW, digest, &der, &der_len, &why),
                     SCEP_POLICY_DENIED);
    assert_null(strstr(why, "squatter"));
    assert_null(strstr(why, "0B51"));
}

/* A record from before requesters were kept (under the bare ID, without a signer key)
 * blocks nobody else either. */
static void test_point8_older_record_blocks_nobody(void **state)
{
    fixture_t *f = *state;
    scep_transaction_t t;
    scep_txn_t *txn;
    unsigned char digest[SCEP_REQUEST_DIGEST_LEN];
    const unsigned char *der;
    apr_size_t der_len;
    const char *why;

    memset(&t, 0, sizeof(t));
    t.transaction_id = "old-txid";
    t.state = SCEP_TXN_ISSUED;
    memset(t.request_digest, 0x44, sizeof(t.request_digest));
    t.fqdn = "old.example.org";
    t.serial = "0D01";
    t.created = NOW - 60;
    assert_int_equal(scep_db_begin(f->db, f->pool, 1, &txn), APR_SUCCESS);
    assert_int_equal(scep_store_transaction_put(txn, f->pool, &t), APR_SUCCESS);
    assert_int_equal(scep_store_cert_put(txn, f->pool, cert_rec(f->pool, "0D01",
                                                                "old.example.org")),
                     APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
    memset(digest, 0x44, sizeof(digest));
    /* its own request still gets its certificate, whoever signs the retry */
    assert_int_equal(scep_policy_replay(f->pool, f->db, &f->conf, "old-txid",
                                        key_of(f->pool, 1), NULL, NOW, digest, &der, &der_len,
                                        &why), SCEP_POLICY_REPLAY);
    memset(digest, 0x55, sizeof(digest));
    assert_int_equal(scep_policy_replay(f->pool, f->db, &f->conf, "old-txid",
                                        key_of(f->pool, 2), NULL, NOW, digest, &der, &der_len,
                                        &why), SCEP_DB_NOTFOUND);
}

/* CertPoll of an issued transaction is answered to its requester only. */
static void test_point11_poll_needs_the_key(void **state)
{
    fixture_t *f = *state;
    const unsigned char *owner = key_of(f->pool, 0xc3);
    scep_transaction_t *held;
    scep_grant_t *grant;
    const unsigned char *der;
    apr_size_t der_len;
    const char *why;

    register_device(f, "owner.example.org", "o-secret");
    assert_int_equal(issue(f, "owner.example.org", "o-secret", "issued-txid", owner, 0x66,
                           "0E01", &why), APR_SUCCESS);
    assert_int_equal(scep_policy_poll(f->pool, f->db, &f->conf, "issued-txid",
                                      key_of(f->pool, 0xd4), "e", 0, NOW, &held, &grant, &der,
                                      &der_len, &why), SCEP_DB_NOTFOUND);
    assert_int_equal(scep_policy_poll(f->pool, f->db, &f->conf, "issued-txid", owner, "e", 0,
                                      NOW, &held, &grant, &der, &der_len, &why),
                     SCEP_POLICY_REPLAY);
    assert_memory_equal(der, "DER of 0E01", der_len);
}

/* ---- point 2 --------------------------------------------------------------------- */

static void set_state(fixture_t *f, const char *txid, const char *state)
{
    scep_transaction_t *t;
    scep_txn_t *txn;

    assert_int_equal(scep_db_begin(f->db, f->pool, 1, &txn), APR_SUCCESS);
    assert_int_equal(scep_store_transaction_get(txn, f->pool, txid, &t), APR_SUCCESS);
    t->state = state;
    assert_int_equal(scep_store_transaction_put(txn, f->pool, t), APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
}

static apr_status_t hold_at(fixture_t *f, const char *endpoint, const char *txid,
                            const unsigned char *requester, const char *state)
{
    scep_grant_t *grant;
    unsigned char digest[SCEP_REQUEST_DIGEST_LEN];
    const unsigned char *der;
    apr_size_t der_len;
    const char *why;
    apr_status_t rv = decide(f, f->pool, "held.example.org", "h-secret", NOW, &grant, &why);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    memset(digest, 0x77, sizeof(digest));
    return scep_policy_hold(f->pool, f->db, &f->conf, grant, txid, digest,
                            (const unsigned char *)"PKCS#10", 7, requester, endpoint,
                            "192.0.2.7", "CN=held", state, NOW, &der, &der_len, &why);
}

/* Approved at profile p1's endpoint, the request is collected there only; one that waits
 * for an upstream CA is never completed by a local CA. */
static void test_point2_held_request_bound_to_endpoint(void **state)
{
    fixture_t *f = *state;
    const unsigned char *device = key_of(f->pool, 0xe5);
    unsigned char ca1[32], ca2[32];
    const char *p1, *p2, *p1_upstream, *why;
    scep_policy_conf_t other = f->conf;
    scep_transaction_t *held;
    scep_grant_t *grant;
    const unsigned char *der;
    apr_size_t der_len;

    memset(ca1, 1, sizeof(ca1));
    memset(ca2, 2, sizeof(ca2));
    f->conf.profile_name = "p1";
    other.profile_name = "p2";
    p1 = scep_policy_endpoint(f->pool, &f->conf, 0, ca1);
    p2 = scep_policy_endpoint(f->pool, &other, 0, ca1);
    p1_upstream = scep_policy_endpoint(f->pool, &f->conf, 1, ca1);
    assert_string_not_equal(p1, p2);
    assert_string_not_equal(p1, scep_policy_endpoint(f->pool, &f->conf, 0, ca2));
    assert_string_not_equal(p1, p1_upstream);
    register_device(f, "held.example.org", "h-secret");
    assert_int_equal(hold_at(f, p1, "held-txid", device, SCEP_TXN_PENDING), APR_SUCCESS);
    set_state(f, "held-txid", SCEP_TXN_APPROVED);
    assert_int_equal(scep_policy_poll(f->pool, f->db, &other, "held-txid", device, p2, 0, NOW,
                                      &held, &grant, &der, &der_len, &why),
                     SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "another endpoint"));
    assert_int_equal(scep_policy_poll(f->pool, f->db, &f->conf, "held-txid", device,
                                      p1_upstream, 1, NOW, &held, &grant, &der, &der_len,
                                      &why), SCEP_POLICY_DENIED);
    assert_int_equal(scep_policy_poll(f->pool, f->db, &f->conf, "held-txid", device, p1, 0,
                                      NOW, &held, &grant, &der, &der_len, &why),
                     SCEP_POLICY_APPROVED);

    /* a record from before endpoints were kept, waiting for an upstream CA */
    assert_int_equal(hold_at(f, NULL, "upstream-txid", device, SCEP_TXN_UPSTREAM),
                     APR_SUCCESS);
    assert_int_equal(scep_policy_poll(f->pool, f->db, &f->conf, "upstream-txid", device, p1, 0,
                                      NOW, &held, &grant, &der, &der_len, &why),
                     SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "upstream"));
    assert_int_equal(scep_policy_poll(f->pool, f->db, &f->conf, "upstream-txid", device,
                                      p1_upstream, 1, NOW, &held, &grant, &der, &der_len,
                                      &why), SCEP_POLICY_UPSTREAM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_point2_held_request_bound_to_endpoint, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_point3_lockout_burst, setup, teardown),
        cmocka_unit_test_setup_teardown(test_point3_lock_checked_when_recorded, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_point3_wildcard_shared_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_point3_renewal_not_locked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_values_escaped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_point5_failures_bounded, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_point5_no_lockout_no_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_point8_transaction_id_squatting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_point8_older_record_blocks_nobody, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_point11_poll_needs_the_key, setup, teardown),
    };

    apr_initialize();
    atexit(apr_terminate);
    return cmocka_run_group_tests(tests, NULL, NULL);
}

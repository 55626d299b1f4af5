/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the store on PostgreSQL (scep_store_sql.c through scep_store.c): every case
 * test_store.c runs on LMDB (store_cases.h), then what only a shared database has: the
 * schema made from nothing and made again, the writers' lock across connections, the
 * constraints (unique serial, a CRL number that never falls), rows a DBA damaged by hand,
 * walks longer than one cursor batch, and two nodes racing for one one-time challenge.
 *
 * Run by tests/unit/pg-run.sh, which starts a scratch server and exports its connection
 * string as SCEP_TEST_PGSQL; each test starts from empty tables. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "scep_sql.h"
#include "scep_policy.h"

typedef struct fixture_t {
    apr_pool_t *p;
    scep_db_t *db;
} fixture_t;

#include "store_cases.h"

/* ---- fixtures -------------------------------------------------------------------- */

typedef struct log_seen_t {
    pthread_mutex_t lock;
    char text[4096];
} log_seen_t;

static log_seen_t log_seen = { PTHREAD_MUTEX_INITIALIZER, "" };

static void keep_log(void *baton, const char *file, int line, int level, const char *text)
{
    log_seen_t *seen = baton;
    apr_size_t used;

    (void)file;
    (void)line;
    (void)level;
    pthread_mutex_lock(&seen->lock);
    used = strlen(seen->text);
    snprintf(seen->text + used, sizeof(seen->text) - used, "%s\n", text);
    pthread_mutex_unlock(&seen->lock);
}

static const scep_log_t test_log = { keep_log, &log_seen, SCEP_LOG_DEBUG };

static void log_clear(void)
{
    pthread_mutex_lock(&log_seen.lock);
    log_seen.text[0] = '\0';
    pthread_mutex_unlock(&log_seen.lock);
}

static int log_has(const char *what)
{
    int found;

    pthread_mutex_lock(&log_seen.lock);
    found = strstr(log_seen.text, what) != NULL;
    pthread_mutex_unlock(&log_seen.lock);
    return found;
}

static scep_db_t *connect_db(apr_pool_t *p, int timeout_ms)
{
    const char *conninfo = getenv("SCEP_TEST_PGSQL"), *why = NULL;
    scep_db_t *db = NULL;

    if (!conninfo || !*conninfo) {
        fail_msg("SCEP_TEST_PGSQL is not set: run this test through tests/unit/pg-run.sh");
    }
    if (scep_sql_connect(p, conninfo, timeout_ms, &test_log, &db, &why) != APR_SUCCESS) {
        fail_msg("cannot connect: %s", why ? why : "?");
    }
    return db;
}

/* A statement outside the store, as a DBA would type it into psql. */
static void dba(fixture_t *fx, const char *sql)
{
    scep_txn_t *txn = begin(fx, 1);

    assert_int_equal(scep_sql_exec(txn, "the test's own statement", sql, 0, NULL, NULL),
                     APR_SUCCESS);
    commit(txn);
}

static int db_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    int from = -1, to = -1;

    if (!fx || apr_pool_create(&fx->p, NULL) != APR_SUCCESS) {
        free(fx);
        return -1;
    }
    *state = fx;
    fx->db = connect_db(fx->p, 0);
    if (scep_sql_migrate(fx->db, fx->p, &from, &to) != APR_SUCCESS
        || to != SCEP_SQL_SCHEMA_VERSION) {
        return -1;
    }
    dba(fx, "TRUNCATE scep_devices, scep_challenges, scep_failures, scep_transactions, "
        "scep_certificates, scep_crl_published");
    dba(fx, "UPDATE scep_crl_state SET generation = 0, changed_at = 0");
    log_clear();
    return 0;
}

static int db_teardown(void **state)
{
    fixture_t *fx = *state;

    apr_pool_destroy(fx->p);            /* closes the connection */
    free(fx);
    return 0;
}

/* ---- the schema ---------------------------------------------------------------------- */

static const char *const schema_objects[] = {
    "DROP VIEW scep_revocations",
    "DROP TABLE scep_devices, scep_challenges, scep_failures, scep_transactions, "
    "scep_certificates, scep_crl_state, scep_crl_published",
    "DROP FUNCTION scep_crl_number_never_falls()",
    "DROP TABLE scep_schema",
};

static void test_migrate(void **state)
{
    fixture_t *fx = *state;
    scep_txn_t *txn = begin(fx, 1);
    int from = -1, to = -1, version = -1;
    apr_size_t i;

    for (i = 0; i < sizeof(schema_objects) / sizeof(schema_objects[0]); i++) {
        assert_int_equal(scep_sql_exec(txn, "dropping", schema_objects[i], 0, NULL, NULL),
                         APR_SUCCESS);
    }
    commit(txn);

    /* nothing there: said as such, not as a failing server */
    assert_int_equal(scep_sql_schema_version(fx->db, fx->p, &version), APR_SUCCESS);
    assert_int_equal(version, 0);
    assert_int_equal(scep_db_begin(fx->db, fx->p, 0, &txn), SCEP_DB_VERSION);
    assert_int_equal(scep_db_begin(fx->db, fx->p, 1, &txn), SCEP_DB_VERSION);
    assert_true(log_has("SCEP00341"));

    assert_int_equal(scep_sql_migrate(fx->db, fx->p, &from, &to), APR_SUCCESS);
    assert_int_equal(from, 0);
    assert_int_equal(to, SCEP_SQL_SCHEMA_VERSION);
    /* again: nothing to do */
    assert_int_equal(scep_sql_migrate(fx->db, fx->p, &from, &to), APR_SUCCESS);
    assert_int_equal(from, SCEP_SQL_SCHEMA_VERSION);
    assert_int_equal(to, SCEP_SQL_SCHEMA_VERSION);
    assert_int_equal(scep_sql_schema_version(fx->db, fx->p, &version), APR_SUCCESS);
    assert_int_equal(version, SCEP_SQL_SCHEMA_VERSION);

    txn = begin(fx, 1);
    put_device(fx, txn, "after.example", "after.example");
    commit(txn);
    txn = begin(fx, 0);
    assert_finds(fx, txn, "after.example", "after.example");
    scep_db_abort(txn);
}

/* ---- the writers' lock ------------------------------------------------------------------ */

typedef struct waiter_t {
    apr_pool_t *p;
    scep_db_t *db;
    apr_status_t rv;
    apr_time_t waited;
} waiter_t;

static void *begin_write(void *arg)
{
    waiter_t *w = arg;
    apr_time_t start = apr_time_now();
    scep_txn_t *txn = NULL;

    w->rv = scep_db_begin(w->db, w->p, 1, &txn);
    w->waited = apr_time_now() - start;
    if (w->rv == APR_SUCCESS) {
        w->rv = scep_db_commit(txn);
    }
    return NULL;
}

static void test_writer_lock(void **state)
{
    fixture_t *fx = *state;
    scep_db_t *quick = connect_db(fx->p, 300);
    scep_txn_t *holder, *other, *reader;
    scep_device_t *dev;
    waiter_t w;
    pthread_t thread;
    apr_time_t start;

    holder = begin(fx, 1);
    put_device(fx, holder, "held.example", "uncommitted");

    /* a second writer waits for the lock, and gives up at its timeout */
    start = apr_time_now();
    assert_int_equal(scep_db_begin(quick, fx->p, 1, &other), SCEP_DB_UNAVAILABLE);
    assert_true(apr_time_now() - start >= apr_time_from_msec(250));
    assert_true(apr_time_now() - start < apr_time_from_sec(3));
    assert_true(log_has("SCEP00340"));
    /* with the server's words: the statement or lock timeout, on the schema row */
    if (!log_has("timeout") || !log_has("scep_schema")) {
        fail_msg("the log does not say why: %s", log_seen.text);
    }

    /* a reader is not blocked, and sees what was committed only */
    start = apr_time_now();
    assert_int_equal(scep_db_begin(quick, fx->p, 0, &reader), APR_SUCCESS);
    assert_int_equal(scep_store_device_get(reader, fx->p, "held.example", &dev),
                     SCEP_DB_NOTFOUND);
    scep_db_abort(reader);
    assert_true(apr_time_now() - start < apr_time_from_msec(250));

    /* a writer with time to wait gets the lock once the holder commits */
    memset(&w, 0, sizeof(w));
    assert_int_equal(apr_pool_create(&w.p, NULL), APR_SUCCESS);
    w.db = connect_db(w.p, 0);
    assert_int_equal(pthread_create(&thread, NULL, begin_write, &w), 0);
    apr_sleep(apr_time_from_msec(400));
    commit(holder);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(w.rv, APR_SUCCESS);
    assert_true(w.waited >= apr_time_from_msec(300));
    apr_pool_destroy(w.p);

    reader = begin(fx, 0);
    assert_int_equal(scep_store_device_get(reader, fx->p, "held.example", &dev), APR_SUCCESS);
    assert_string_equal(dev->comment, "uncommitted");
    scep_db_abort(reader);
}

/* ---- constraints ------------------------------------------------------------------------ */

static scep_crl_published_t published(apr_int64_t number, const char *der)
{
    scep_crl_published_t pub;

    memset(&pub, 0, sizeof(pub));
    pub.number = number;
    pub.generation = number * 2;
    pub.this_update = 1000 + number;
    pub.next_update = 2000 + number;
    memset(pub.ca_id, (int)number, sizeof(pub.ca_id));
    pub.der = (const unsigned char *)der;
    pub.der_len = strlen(der);
    return pub;
}

static void test_crl_number(void **state)
{
    fixture_t *fx = *state;
    scep_crl_published_t five = published(5, "CRL five"), four = published(4, "CRL four");
    scep_crl_published_t six = published(6, "CRL six"), *got = NULL;
    scep_txn_t *txn = begin(fx, 0);

    assert_int_equal(scep_store_crl_published_get(txn, fx->p, &got), SCEP_DB_NOTFOUND);
    scep_db_abort(txn);

    txn = begin(fx, 1);
    assert_int_equal(scep_store_crl_published_put(txn, fx->p, &five), APR_SUCCESS);
    commit(txn);

    /* a number that would fall is refused by the database itself */
    txn = begin(fx, 1);
    assert_int_equal(scep_store_crl_published_put(txn, fx->p, &four), SCEP_DB_UNAVAILABLE);
    assert_int_not_equal(scep_db_commit(txn), APR_SUCCESS);
    assert_true(log_has("would fall below"));

    txn = begin(fx, 0);
    assert_int_equal(scep_store_crl_published_get(txn, fx->p, &got), APR_SUCCESS);
    assert_true(got->number == 5 && got->generation == 10);
    assert_true(got->this_update == 1005 && got->next_update == 2005);
    assert_memory_equal(got->ca_id, five.ca_id, sizeof(got->ca_id));
    assert_int_equal(got->der_len, strlen("CRL five"));
    assert_memory_equal(got->der, "CRL five", got->der_len);
    scep_db_abort(txn);

    /* the same number again (another node signed the same state) and a higher one pass */
    txn = begin(fx, 1);
    assert_int_equal(scep_store_crl_published_put(txn, fx->p, &five), APR_SUCCESS);
    assert_int_equal(scep_store_crl_published_put(txn, fx->p, &six), APR_SUCCESS);
    commit(txn);
    txn = begin(fx, 0);
    assert_int_equal(scep_store_crl_published_get(txn, fx->p, &got), APR_SUCCESS);
    assert_true(got->number == 6);
    scep_db_abort(txn);
}

/* The CRL state's row is made by the schema; a DBA who removed it lost nothing: it reads
 * as "nothing revoked yet" and the next revocation makes it again. */
static void test_crl_state_row(void **state)
{
    fixture_t *fx = *state;
    scep_crl_state_t crl;
    int already = -1;
    scep_txn_t *txn;

    dba(fx, "DELETE FROM scep_crl_state");
    txn = begin(fx, 1);
    assert_int_equal(scep_store_crl_state_get(txn, &crl), APR_SUCCESS);
    assert_true(crl.generation == 0 && crl.changed_at == 0);
    put_cert(fx, txn, "0E01", "e.example");
    assert_int_equal(scep_store_cert_revoke(txn, fx->p, "0E01", 4000, SCEP_REASON_SUPERSEDED,
                                            &already), APR_SUCCESS);
    assert_false(already);
    assert_int_equal(scep_store_crl_state_get(txn, &crl), APR_SUCCESS);
    assert_true(crl.generation == 1 && crl.changed_at == 4000);
    commit(txn);
}

/* ---- rows damaged by hand --------------------------------------------------------------- */

static apr_status_t device_status(fixture_t *fx, const char *key)
{
    scep_device_t *dev = NULL;
    scep_txn_t *txn = begin(fx, 0);
    apr_status_t rv = scep_store_device_get(txn, fx->p, key, &dev);

    if (rv != APR_SUCCESS) {
        assert_null(dev);
    }
    /* the lookup of a name meets the same row the same way, before any wildcard */
    if (key[0] != '*') {
        assert_int_equal(scep_store_device_find(txn, fx->p, key, &dev), rv);
    }
    scep_db_abort(txn);
    return rv;
}

static int count_device(void *baton, const scep_device_t *dev)
{
    (void)dev;
    ++*(int *)baton;
    return 0;
}

static apr_status_t device_walk_status(fixture_t *fx)
{
    int seen = 0;
    scep_txn_t *txn = begin(fx, 0);
    apr_status_t rv = scep_store_device_foreach(txn, fx->p, count_device, &seen);

    scep_db_abort(txn);
    return rv;
}

static void test_damaged_devices(void **state)
{
    fixture_t *fx = *state;
    static const char *const damage[] = {
        "UPDATE scep_devices SET verifier_salt = '\\x0102' WHERE key = 'd.example'",
        "UPDATE scep_devices SET verifier_hash = NULL WHERE key = 'd.example'",
        "UPDATE scep_devices SET verifier_algorithm = 300 WHERE key = 'd.example'",
        "UPDATE scep_devices SET verifier_iterations = -1 WHERE key = 'd.example'",
        "UPDATE scep_devices SET flags = -1 WHERE key = 'd.example'",
        /* an address list a DBA spoiled must not read as "no address binding" */
        "UPDATE scep_devices SET ips = '{NULL}' WHERE key = 'd.example'",
        "UPDATE scep_devices SET ips = '{\"\"}' WHERE key = 'd.example'",
        "UPDATE scep_devices SET ips = '{10.0.0.5,NULL}' WHERE key = 'd.example'",
        "UPDATE scep_devices SET ips = '{not-an-ip}' WHERE key = 'd.example'",
        "UPDATE scep_devices SET ips = '{\"10.0.0.5,10.0.0.6\"}' WHERE key = 'd.example'",
        "UPDATE scep_devices SET ips = '{010.0.0.5}' WHERE key = 'd.example'",
    };
    scep_txn_t *txn = begin(fx, 1);
    apr_size_t i;

    put_device(fx, txn, "a.example", NULL);
    put_device(fx, txn, "*.example", NULL);
    commit(txn);
    for (i = 0; i < sizeof(damage) / sizeof(damage[0]); i++) {
        scep_device_t *dev = full_device(fx->p, "d.example");

        txn = begin(fx, 1);
        assert_int_equal(scep_store_device_put(txn, fx->p, dev), APR_SUCCESS);
        commit(txn);
        assert_int_equal(device_status(fx, "d.example"), APR_SUCCESS);
        dba(fx, damage[i]);
        assert_int_equal(device_status(fx, "d.example"), SCEP_DB_CORRUPT);
        assert_int_equal(device_walk_status(fx), SCEP_DB_CORRUPT);
    }
    /* a key in a spelling no lookup makes, found by a walk or a wildcard lookup */
    dba(fx, "DELETE FROM scep_devices WHERE key = 'd.example'");
    dba(fx, "INSERT INTO scep_devices (key, created, updated) VALUES ('*.Example', 1, 1)");
    assert_int_equal(device_status(fx, "*.Example"), SCEP_DB_CORRUPT);
    assert_int_equal(device_walk_status(fx), SCEP_DB_CORRUPT);
    dba(fx, "UPDATE scep_devices SET key = 'b.example.' WHERE key = '*.Example'");
    assert_int_equal(device_walk_status(fx), SCEP_DB_CORRUPT);
    dba(fx, "DELETE FROM scep_devices WHERE key = 'b.example.'");
    assert_int_equal(device_walk_status(fx), APR_SUCCESS);
}

static apr_status_t transaction_status(fixture_t *fx, const char *id)
{
    scep_transaction_t *t = NULL;
    scep_txn_t *txn = begin(fx, 0);
    apr_status_t rv = scep_store_transaction_get(txn, fx->p, id, &t);

    scep_db_abort(txn);
    return rv;
}

static int count_transaction(void *baton, const scep_transaction_t *t)
{
    (void)t;
    ++*(int *)baton;
    return 0;
}

static apr_status_t transaction_walk_status(fixture_t *fx, int held)
{
    int seen = 0;
    scep_txn_t *txn = begin(fx, 0);
    apr_status_t rv = held ? scep_store_transaction_foreach_held(txn, fx->p, count_transaction,
                                                                &seen)
                           : scep_store_transaction_foreach(txn, fx->p, count_transaction,
                                                            &seen);

    scep_db_abort(txn);
    return rv;
}

static void test_damaged_transactions(void **state)
{
    fixture_t *fx = *state;
    static const char *const damage[] = {
        "UPDATE scep_transactions SET request_digest = '\\x0102'",
        "UPDATE scep_transactions SET identity_where = 99",
        "UPDATE scep_transactions SET identity_name = 'bob@example.org'",
        "UPDATE scep_transactions SET identity_name = NULL",
        "UPDATE scep_transactions SET identity_where = 0",
        "UPDATE scep_transactions SET fqdn = 'h.example.org'",
        "UPDATE scep_transactions SET state = 'forgotten'",
        "UPDATE scep_transactions SET grant_kind = 4294967296",
    };
    unsigned char key[SCEP_REQUEST_DIGEST_LEN];
    apr_size_t i;

    memset(key, 0x42, sizeof(key));
    /* the states are the table's to check too; a DBA may drop that */
    dba(fx, "ALTER TABLE scep_transactions DROP CONSTRAINT scep_transactions_state_check");
    dba(fx, "ALTER TABLE scep_transactions ALTER COLUMN grant_kind TYPE bigint");
    for (i = 0; i < sizeof(damage) / sizeof(damage[0]); i++) {
        scep_transaction_t t;
        scep_txn_t *txn = begin(fx, 1);

        memset(&t, 0, sizeof(t));
        t.transaction_id = "held-user";
        t.state = SCEP_TXN_PENDING;
        memset(t.request_digest, 7, sizeof(t.request_digest));
        t.fqdn = "user:alice@example.org";
        t.identity_name = "alice@EXAMPLE.org";
        t.identity_where = SCEP_WHERE_RFC822_NAME;
        memcpy(t.signer_key, key, sizeof(key));
        t.has_signer_key = 1;
        assert_int_equal(scep_store_transaction_put(txn, fx->p, &t), APR_SUCCESS);
        commit(txn);
        assert_int_equal(transaction_status(fx, "held-user"), APR_SUCCESS);
        dba(fx, damage[i]);
        assert_int_equal(transaction_status(fx, "held-user"), SCEP_DB_CORRUPT);
        assert_int_equal(transaction_walk_status(fx, 0), SCEP_DB_CORRUPT);
        assert_int_equal(transaction_walk_status(fx, 1), SCEP_DB_CORRUPT);
        dba(fx, "DELETE FROM scep_transactions");
    }
    dba(fx, "ALTER TABLE scep_transactions ALTER COLUMN grant_kind TYPE integer");
    dba(fx, "ALTER TABLE scep_transactions ADD CONSTRAINT scep_transactions_state_check "
        "CHECK (state IN ('issued', 'pending', 'approved', 'rejected', 'expired', "
        "'upstream'))");

    /* the requester a row is kept under must be the signer key it repeats: the table
     * refuses anything else, so that a row never answers another requester */
    {
        scep_txn_t *txn = begin(fx, 1);

        put_transaction(fx, txn, "scoped", SCEP_TXN_ISSUED, key, 0);
        commit(txn);
        txn = begin(fx, 1);
        assert_int_equal(scep_sql_exec(txn, "damage", "UPDATE scep_transactions SET "
                                       "signer_key = '\\x" "0000000000000000000000000000"
                                       "000000000000000000000000000000000000'", 0, NULL,
                                       NULL), SCEP_DB_UNAVAILABLE);
        scep_db_abort(txn);
        assert_int_equal(transaction_status(fx, "scoped"), APR_SUCCESS);
    }
}

static apr_status_t cert_status(fixture_t *fx, const char *serial)
{
    scep_cert_rec_t *c = NULL;
    scep_txn_t *txn = begin(fx, 0);
    apr_status_t rv = scep_store_cert_get(txn, fx->p, serial, &c);

    scep_db_abort(txn);
    return rv;
}

static int count_cert(void *baton, const scep_cert_rec_t *c)
{
    (void)c;
    ++*(int *)baton;
    return 0;
}

static apr_status_t cert_walk_status(fixture_t *fx, const char *fqdn)
{
    int seen = 0;
    scep_txn_t *txn = begin(fx, 0);
    apr_status_t rv = scep_store_cert_foreach(txn, fx->p, fqdn, count_cert, &seen);

    scep_db_abort(txn);
    return rv;
}

static void test_damaged_certificates(void **state)
{
    fixture_t *fx = *state;
    scep_crl_published_t pub = published(3, "CRL three"), *got;
    scep_txn_t *txn = begin(fx, 1);

    put_cert(fx, txn, "0D01", "c.example");
    put_cert(fx, txn, "0D02", "c.example");
    assert_int_equal(scep_store_crl_published_put(txn, fx->p, &pub), APR_SUCCESS);
    commit(txn);
    assert_int_equal(cert_walk_status(fx, NULL), APR_SUCCESS);

    /* a serial in another spelling than the one the key would have */
    dba(fx, "UPDATE scep_certificates SET serial = '0d02' WHERE serial = '0D02'");
    assert_int_equal(cert_walk_status(fx, NULL), SCEP_DB_CORRUPT);
    assert_int_equal(cert_walk_status(fx, "c.example"), SCEP_DB_CORRUPT);
    dba(fx, "UPDATE scep_certificates SET serial = 'D02' WHERE serial = '0d02'");
    assert_int_equal(cert_walk_status(fx, "c.example"), SCEP_DB_CORRUPT);
    dba(fx, "UPDATE scep_certificates SET serial = '0D02' WHERE serial = 'D02'");
    dba(fx, "UPDATE scep_certificates SET revocation_reason = 1 WHERE serial = '0D01'");
    assert_int_equal(cert_walk_status(fx, "c.example"), APR_SUCCESS);
    assert_int_equal(cert_status(fx, "0D01"), APR_SUCCESS);
    assert_int_equal(cert_walk_status(fx, NULL), APR_SUCCESS);

    /* the published CRL: its CA's digest and its DER are whole or it is damaged */
    dba(fx, "UPDATE scep_crl_published SET ca_id = '\\x0102'");
    txn = begin(fx, 0);
    assert_int_equal(scep_store_crl_published_get(txn, fx->p, &got), SCEP_DB_CORRUPT);
    scep_db_abort(txn);
    dba(fx, "UPDATE scep_crl_published SET ca_id = sha256('x'), der = ''");
    txn = begin(fx, 0);
    assert_int_equal(scep_store_crl_published_get(txn, fx->p, &got), SCEP_DB_CORRUPT);
    scep_db_abort(txn);
}

/* ---- walks ----------------------------------------------------------------------------- */

typedef struct bulk_walk_t {
    apr_pool_t *p;
    int seen, stop_at;
    const char *last;                   /* the previous serial, copied */
    int in_order;
} bulk_walk_t;

static int bulk_visit(void *baton, const scep_cert_rec_t *c)
{
    bulk_walk_t *walk = baton;

    if (walk->last && strcmp(walk->last, c->serial) >= 0) {
        walk->in_order = 0;
    }
    walk->last = apr_pstrdup(walk->p, c->serial);
    return ++walk->seen == walk->stop_at;
}

static void test_walk_many(void **state)
{
    fixture_t *fx = *state;
    bulk_walk_t walk;
    scep_txn_t *txn = begin(fx, 1);
    apr_pool_t *each;
    int i;

    assert_int_equal(apr_pool_create(&each, fx->p), APR_SUCCESS);
    for (i = 0; i < 1200; i++) {
        scep_cert_rec_t c;

        apr_pool_clear(each);
        memset(&c, 0, sizeof(c));
        /* written out of order; two lengths of serial, as byte order sorts them */
        c.serial = apr_psprintf(each, i % 2 ? "%04X" : "01%04X", 1200 - i);
        c.der = (const unsigned char *)c.serial;
        c.der_len = strlen(c.serial);
        c.fqdn = i % 3 ? "bulk.example" : "other.example";
        c.not_before = 1;
        c.not_after = 2;
        c.issued_at = 1;
        assert_int_equal(scep_store_cert_put(txn, each, &c), APR_SUCCESS);
    }
    apr_pool_destroy(each);
    commit(txn);

    txn = begin(fx, 0);
    memset(&walk, 0, sizeof(walk));
    walk.p = fx->p;
    walk.in_order = 1;
    assert_int_equal(scep_store_cert_foreach(txn, fx->p, NULL, bulk_visit, &walk), APR_SUCCESS);
    assert_int_equal(walk.seen, 1200);
    assert_true(walk.in_order);
    memset(&walk, 0, sizeof(walk));
    walk.p = fx->p;
    walk.in_order = 1;
    assert_int_equal(scep_store_cert_foreach(txn, fx->p, "bulk.example", bulk_visit, &walk),
                     APR_SUCCESS);
    assert_int_equal(walk.seen, 800);
    assert_true(walk.in_order);
    /* stopped in the second batch, and the transaction goes on */
    memset(&walk, 0, sizeof(walk));
    walk.p = fx->p;
    walk.in_order = 1;
    walk.stop_at = SCEP_SQL_BATCH + 7;
    assert_int_equal(scep_store_cert_foreach(txn, fx->p, NULL, bulk_visit, &walk), APR_SUCCESS);
    assert_int_equal(walk.seen, SCEP_SQL_BATCH + 7);
    assert_int_equal(cert_walk_status(fx, "other.example"), APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
}

/* ---- the policy on two nodes ------------------------------------------------------------ */

typedef struct node_t {
    apr_pool_t *p;
    scep_db_t *db;
    scep_policy_conf_t conf;
    scep_grant_t *grant;
    pthread_barrier_t *start;
    const char *serial, *why;
    apr_status_t rv;
} node_t;

#define RACE_NOW ((apr_int64_t)1800000000)

static void *node_record(void *arg)
{
    node_t *node = arg;
    unsigned char digest[SCEP_REQUEST_DIGEST_LEN];
    const unsigned char *der = NULL;
    apr_size_t der_len = 0;
    scep_cert_rec_t *c = apr_pcalloc(node->p, sizeof(*c));

    memset(digest, node->serial[1], sizeof(digest));
    c->serial = node->serial;
    c->der = (const unsigned char *)apr_pstrcat(node->p, "DER of ", node->serial, NULL);
    c->der_len = strlen((const char *)c->der);
    c->fqdn = "once.example";
    c->not_before = RACE_NOW;
    c->not_after = RACE_NOW + 86400;
    c->issued_at = RACE_NOW;
    pthread_barrier_wait(node->start);
    node->rv = scep_policy_record(node->p, node->db, &node->conf, node->grant,
                                  apr_pstrcat(node->p, "tx-", node->serial, NULL), NULL,
                                  digest, c, RACE_NOW, &der, &der_len, &node->why);
    return NULL;
}

static void test_one_time_race(void **state)
{
    fixture_t *fx = *state;
    scep_device_t *dev = scep_store_device_new(fx->p, "once.example");
    node_t node[2];
    pthread_t thread[2];
    pthread_barrier_t start;
    int i, issued = 0, denied = 0;
    scep_txn_t *txn;

    assert_int_equal(scep_verifier_make(SECRET("only once"), &dev->verifier), APR_SUCCESS);
    dev->flags = SCEP_DEVICE_ONE_TIME;
    txn = begin(fx, 1);
    assert_int_equal(scep_store_device_put(txn, fx->p, dev), APR_SUCCESS);
    commit(txn);

    /* both nodes authorize before either records: both see the challenge unused */
    assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
    for (i = 0; i < 2; i++) {
        scep_csr_t *csr;
        const char *fqdn = NULL;

        memset(&node[i], 0, sizeof(node[i]));
        assert_int_equal(apr_pool_create(&node[i].p, NULL), APR_SUCCESS);
        node[i].db = connect_db(node[i].p, 0);
        node[i].conf.transaction_window = 3600;
        node[i].start = &start;
        node[i].serial = i ? "0B02" : "0A01";
        csr = apr_pcalloc(node[i].p, sizeof(*csr));
        csr->dns_names = apr_array_make(node[i].p, 1, sizeof(const char *));
        csr->ip_addresses = apr_array_make(node[i].p, 1, sizeof(const char *));
        APR_ARRAY_PUSH(csr->dns_names, const char *) = "once.example";
        csr->challenge = "only once";
        csr->challenge_len = strlen(csr->challenge);
        assert_int_equal(scep_policy_authorize(node[i].p, node[i].db, &node[i].conf, csr, NULL,
                                               RACE_NOW, &node[i].grant, &fqdn, &node[i].why),
                         APR_SUCCESS);
    }
    for (i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&thread[i], NULL, node_record, &node[i]), 0);
    }
    for (i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(thread[i], NULL), 0);
        issued += node[i].rv == APR_SUCCESS;
        denied += node[i].rv == SCEP_POLICY_DENIED;
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(issued, 1);
    assert_int_equal(denied, 1);

    txn = begin(fx, 0);
    assert_int_equal(scep_store_device_get(txn, fx->p, "once.example", &dev), APR_SUCCESS);
    assert_true(dev->enrollments == 1);
    assert_true((dev->flags & SCEP_DEVICE_USED) != 0);
    for (i = 0; i < 2; i++) {
        scep_cert_rec_t *c;

        assert_int_equal(scep_store_cert_get(txn, fx->p, node[i].serial, &c),
                         node[i].rv == APR_SUCCESS ? APR_SUCCESS : SCEP_DB_NOTFOUND);
        if (node[i].rv == APR_SUCCESS) {
            assert_string_equal(dev->last_serial, node[i].serial);
        }
    }
    scep_db_abort(txn);
    for (i = 0; i < 2; i++) {
        apr_pool_destroy(node[i].p);
    }
}

/* ---- statements prepared per session -------------------------------------------------- */

/* How many statements of mod_scep's the session of `db` holds, asked on that session. */
static int prepared_held(apr_pool_t *p, scep_db_t *db)
{
    const char *args[1] = { "mod_scep_" };
    scep_sql_row_t *row;
    scep_txn_t *txn;
    int n;

    assert_int_equal(scep_db_begin(db, p, 0, &txn), APR_SUCCESS);
    assert_int_equal(scep_sql_select_one(txn, p, "counting", "SELECT count(*) FROM "
                                         "pg_prepared_statements WHERE starts_with(name, %s)",
                                         1, args, &row), APR_SUCCESS);
    n = atoi(row->val[0]);
    scep_db_abort(txn);
    return n;
}

/* As device_status, where the begin itself may fail. */
static apr_status_t device_lookup(fixture_t *fx, const char *fqdn)
{
    scep_device_t *dev;
    scep_txn_t *txn;
    apr_status_t rv = scep_db_begin(fx->db, fx->p, 0, &txn);

    if (rv == APR_SUCCESS) {
        rv = scep_store_device_get(txn, fx->p, fqdn, &dev);
        scep_db_abort(txn);
    }
    return rv;
}

/* A statement is prepared once per session and run by name after; a session that lost
 * them (reopened, or emptied by someone else) or may hold unfit ones (after a failure)
 * is noticed at the next begin and prepared again, never run against names it lacks. */
static void test_prepared_sessions(void **state)
{
    fixture_t *fx = *state;
    scep_txn_t *txn;
    scep_sql_row_t *row;
    apr_pool_t *op;
    scep_db_t *other;
    const char *args[1];
    int i, held;

    put_device(fx, txn = begin(fx, 1), "prep.example", "kept");
    commit(txn);
    assert_int_equal(device_lookup(fx, "prep.example"), APR_SUCCESS);
    held = prepared_held(fx->p, fx->db);
    assert_true(held >= 2);             /* the lookup and the count itself */
    for (i = 0; i < 5; i++) {
        assert_int_equal(device_lookup(fx, "prep.example"), APR_SUCCESS);
    }
    assert_int_equal(prepared_held(fx->p, fx->db), held);

    /* emptied behind our back, without a failure we could see */
    dba(fx, "DEALLOCATE ALL");
    assert_int_equal(device_lookup(fx, "prep.example"), APR_SUCCESS);
    assert_int_equal(prepared_held(fx->p, fx->db), 2);

    /* a failed statement: what the session holds is dropped, not left to pile up */
    txn = begin(fx, 0);
    args[0] = "0";
    assert_int_equal(scep_sql_select_one(txn, fx->p, "dividing", "SELECT 1 / %s::int", 1,
                                         args, &row), SCEP_DB_UNAVAILABLE);
    scep_db_abort(txn);
    assert_int_equal(device_lookup(fx, "prep.example"), APR_SUCCESS);
    assert_int_equal(prepared_held(fx->p, fx->db), 2);

    /* the session ended by the server */
    txn = begin(fx, 0);
    assert_int_equal(scep_sql_select_one(txn, fx->p, "pid", "SELECT pg_backend_pid()", 0,
                                         NULL, &row), APR_SUCCESS);
    args[0] = apr_pstrdup(fx->p, row->val[0]);
    scep_db_abort(txn);
    assert_int_equal(apr_pool_create(&op, NULL), APR_SUCCESS);
    other = connect_db(op, 0);
    assert_int_equal(scep_db_begin(other, op, 0, &txn), APR_SUCCESS);
    assert_int_equal(scep_sql_select_one(txn, op, "terminating", "SELECT "
                                         "pg_terminate_backend(%s::int)", 1, args, &row),
                     APR_SUCCESS);
    scep_db_abort(txn);
    apr_pool_destroy(op);
    /* the first begin on it fails at once and is tried again on the renewed connection:
     * the request never sees it (a pooled connection after a restart or failover) */
    log_clear();
    assert_int_equal(device_lookup(fx, "prep.example"), APR_SUCCESS);
    assert_true(log_has("SCEP00343"));
    assert_int_equal(prepared_held(fx->p, fx->db), 2);

    /* texts made per call do not grow a session without bound */
    txn = begin(fx, 0);
    for (i = 0; i < 100; i++) {
        const char *sql = apr_psprintf(fx->p, "SELECT %%s::text || '%d'", i);

        args[0] = "n";
        assert_int_equal(scep_sql_select_one(txn, fx->p, "a made text", sql, 1, args, &row),
                         APR_SUCCESS);
        assert_string_equal(row->val[0], apr_psprintf(fx->p, "n%d", i));
    }
    scep_db_abort(txn);
    assert_true(prepared_held(fx->p, fx->db) <= 64);
    assert_int_equal(device_lookup(fx, "prep.example"), APR_SUCCESS);
}

/* The resident size of this process, in kB. */
static size_t rss_kb(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) {
            rss = 0;
        }
        fclose(f);
    }
    return (size_t)rss * (size_t)(sysconf(_SC_PAGESIZE) / 1024);
}

/* Each request attaches to the pooled connection: nothing of it may stay in the
 * connection's pool, which lives as long as the connection (found by review: the key of
 * the session's record was made there on every attach). */
static void test_attach_keeps_nothing(void **state)
{
    fixture_t *fx = *state;
    const apr_dbd_driver_t *driver = NULL;
    apr_pool_t *conn_pool, *req;
    scep_db_t *db;
    size_t before, after;
    static int not_a_connection;
    int i;

    assert_int_equal(apr_dbd_get_driver(fx->p, "pgsql", &driver), APR_SUCCESS);
    assert_int_equal(apr_pool_create(&conn_pool, NULL), APR_SUCCESS);
    assert_int_equal(apr_pool_create(&req, NULL), APR_SUCCESS);
    assert_int_equal(scep_sql_attach(req, driver, (apr_dbd_t *)&not_a_connection, conn_pool,
                                     0, "t", &test_log, &db), APR_SUCCESS);
    apr_pool_clear(req);
    before = rss_kb();
    for (i = 0; i < 100000; i++) {
        assert_int_equal(scep_sql_attach(req, driver, (apr_dbd_t *)&not_a_connection,
                                         conn_pool, 0, "t", &test_log, &db), APR_SUCCESS);
        apr_pool_clear(req);
    }
    after = rss_kb();
    apr_pool_destroy(req);
    apr_pool_destroy(conn_pool);
    assert_true(after - before < 1024);
}

/* A begin refused on a live session (here a read-only one, as a standby's) is answered as
 * it is: tried once, never logged as a renewed connection (found by review). */
static void test_no_retry_on_live_session(void **state)
{
    const char *conninfo = getenv("SCEP_TEST_PGSQL"), *why = NULL;
    scep_db_t *db = NULL;
    scep_txn_t *txn;
    apr_pool_t *p;

    (void)state;
    assert_int_equal(apr_pool_create(&p, NULL), APR_SUCCESS);
    assert_int_equal(scep_sql_connect(p, apr_pstrcat(p, conninfo, " options='-c "
                                                     "default_transaction_read_only=on'",
                                                     NULL), 0, &test_log, &db, &why),
                     APR_SUCCESS);
    assert_int_equal(scep_db_begin(db, p, 0, &txn), APR_SUCCESS);
    scep_db_abort(txn);
    log_clear();
    assert_int_equal(scep_db_begin(db, p, 1, &txn), SCEP_DB_UNAVAILABLE);
    assert_true(log_has("SCEP00340"));
    assert_false(log_has("SCEP00343"));
    apr_pool_destroy(p);
}

/* Two connections doing the same work never name a statement alike: behind a pooler in
 * transaction mode one server session serves both, and a name one of them prepared must
 * never run as the other's statement (found by review: labels were numbered from 1 on
 * every connection, and one client's read ran another's DELETE). */
static void test_labels_unique_across_connections(void **state)
{
    fixture_t *fx = *state;
    const char *args[1] = { "mod_scep_" };
    apr_array_header_t *rows[2];
    scep_db_t *db[2];
    scep_txn_t *txn;
    scep_device_t *dev;
    int i, j, k;

    for (i = 0; i < 2; i++) {
        db[i] = connect_db(fx->p, 0);
        assert_int_equal(scep_db_begin(db[i], fx->p, 0, &txn), APR_SUCCESS);
        assert_int_equal(scep_store_device_get(txn, fx->p, "same.example", &dev),
                         SCEP_DB_NOTFOUND);
        assert_int_equal(scep_sql_select(txn, fx->p, "listing", "SELECT name FROM "
                                         "pg_prepared_statements WHERE starts_with(name, %s)",
                                         1, args, &rows[i]), APR_SUCCESS);
        scep_db_abort(txn);
        assert_true(rows[i]->nelts >= 1);
    }
    for (j = 0; j < rows[0]->nelts; j++) {
        for (k = 0; k < rows[1]->nelts; k++) {
            assert_string_not_equal(APR_ARRAY_IDX(rows[0], j, scep_sql_row_t *)->val[0],
                                    APR_ARRAY_IDX(rows[1], k, scep_sql_row_t *)->val[0]);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define D(f) cmocka_unit_test_setup_teardown(f, db_setup, db_teardown)
        STORE_CASES(D),
        D(test_migrate),
        D(test_writer_lock),
        D(test_crl_number),
        D(test_crl_state_row),
        D(test_damaged_devices),
        D(test_damaged_transactions),
        D(test_damaged_certificates),
        D(test_walk_many),
        D(test_one_time_race),
        D(test_prepared_sessions),
        D(test_attach_keeps_nothing),
        D(test_no_retry_on_live_session),
        D(test_labels_unique_across_connections),
#undef D
    };
    int failed;

    apr_initialize();
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return failed;
}

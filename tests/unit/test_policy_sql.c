/* SPDX-License-Identifier: Apache-2.0 */
/* The policy's decisions on PostgreSQL where they depend on the engine: the lockout's
 * failure records, which LMDB caps at an eighth of its map and PostgreSQL (no map) at
 * a fixed count.  Run by tests/unit/pg-run.sh, which starts a scratch server and exports
 * its connection string as SCEP_TEST_PGSQL. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "scep_policy.h"
#include "scep_sql.h"
#include "scep_store.h"

#define NOW ((apr_int64_t)1800000000)
/* more names than the minimum cap (64) that a map size of 0 used to give PostgreSQL */
#define NAMES 200

typedef struct fixture_t {
    apr_pool_t *pool;
    scep_db_t *db;
    scep_policy_conf_t conf;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    const char *conninfo = getenv("SCEP_TEST_PGSQL"), *why = NULL;
    int from = 0, to = 0;

    if (!conninfo || !*conninfo) {
        fail_msg("SCEP_TEST_PGSQL is not set: run this test through tests/unit/pg-run.sh");
    }
    apr_pool_create(&f->pool, NULL);
    if (scep_sql_connect(f->pool, conninfo, 0, NULL, &f->db, &why) != APR_SUCCESS
        || scep_sql_migrate(f->db, f->pool, &from, &to) != APR_SUCCESS) {
        fail_msg("cannot prepare the database: %s", why ? why : "the schema failed");
    }
    f->conf.lockout_failures = 5;
    f->conf.lockout_seconds = 900;
    /* the wildcard's own count high enough never to lock during the test */
    f->conf.lockout_shared_failures = NAMES * 2;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;

    apr_pool_destroy(f->pool);
    free(f);
    return 0;
}

/* What the policy says to a request for `name` carrying `challenge` at NOW; *why set. */
static apr_status_t authorize(fixture_t *f, apr_pool_t *p, const char *name,
                              const char *challenge, const char **why)
{
    scep_csr_t *csr = apr_pcalloc(p, sizeof(*csr));
    scep_grant_t *grant = NULL;
    const char *fqdn = NULL;

    *why = NULL;
    csr->dns_names = apr_array_make(p, 1, sizeof(const char *));
    csr->ip_addresses = apr_array_make(p, 1, sizeof(const char *));
    APR_ARRAY_PUSH(csr->dns_names, const char *) = name;
    csr->challenge = challenge;
    csr->challenge_len = strlen(challenge);
    return scep_policy_authorize(p, f->db, &f->conf, csr, NULL, NOW, &grant, &fqdn, why);
}

/* Each name under a wildcard keeps its own count on PostgreSQL as on LMDB, far past the
 * 64 records a database without a map size was held to: there a device's fifth wrong
 * guess locked only the wildcard's shared count, never the device's own name. */
static void test_failures_counted_per_name(void **state)
{
    fixture_t *f = *state;
    scep_device_t *wildcard = scep_store_device_new(f->pool, "*.flood.example.org");
    apr_pool_t *scratch;
    scep_txn_t *txn;
    apr_size_t records = 0;
    const char *why;
    int i;

    assert_int_equal(scep_verifier_make("any-secret", 10, &wildcard->verifier), APR_SUCCESS);
    assert_int_equal(scep_db_begin(f->db, f->pool, 1, &txn), APR_SUCCESS);
    assert_int_equal(scep_store_device_put(txn, f->pool, wildcard), APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
    apr_pool_create(&scratch, f->pool);
    for (i = 0; i < NAMES; i++) {
        assert_int_equal(authorize(f, scratch, apr_psprintf(scratch, "n%04d.flood.example.org",
                                                            i), "wrong", &why),
                         SCEP_POLICY_DENIED);
        assert_non_null(strstr(why, "is wrong"));
        apr_pool_clear(scratch);
    }
    assert_int_equal(scep_db_begin(f->db, f->pool, 0, &txn), APR_SUCCESS);
    assert_int_equal(scep_store_failure_count(txn, &records), APR_SUCCESS);
    scep_db_abort(txn);
    /* one per name, and the wildcard's */
    assert_int_equal(records, NAMES + 1);
    /* the last name still locks on its own after its fifth failure */
    for (i = 0; i < 4; i++) {
        assert_int_equal(authorize(f, scratch, "n0199.flood.example.org", "wrong", &why),
                         SCEP_POLICY_DENIED);
    }
    assert_int_equal(authorize(f, scratch, "n0199.flood.example.org", "any-secret", &why),
                     SCEP_POLICY_DENIED);
    assert_non_null(strstr(why, "n0199.flood.example.org is locked out"));
    /* and another name is not locked by it */
    assert_int_equal(authorize(f, scratch, "n0000.flood.example.org", "any-secret", &why),
                     APR_SUCCESS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_failures_counted_per_name, setup, teardown),
    };
    int rc;

    apr_initialize();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return rc;
}

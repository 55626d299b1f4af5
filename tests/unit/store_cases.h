/* SPDX-License-Identifier: Apache-2.0 */
/* The store's cases that hold whichever engine keeps the records: included by
 * test_store.c (LMDB) and test_store_sql.c (PostgreSQL), so both engines answer every call
 * the same way.  The includer defines fixture_t with at least `p` (a pool) and `db` (an
 * empty database), includes cmocka, and lists STORE_CASES in its tests. */
#ifndef STORE_CASES_H
#define STORE_CASES_H

#include <ctype.h>

#include <string.h>

#include <apr_strings.h>

#include "scep_name.h"
#include "scep_store.h"

static scep_txn_t *begin(fixture_t *fx, int write)
{
    scep_txn_t *txn = NULL;

    assert_int_equal(scep_db_begin(fx->db, fx->p, write, &txn), APR_SUCCESS);
    assert_non_null(txn);
    return txn;
}

static void commit(scep_txn_t *txn)
{
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
}

static char *repeat(apr_pool_t *p, char c, apr_size_t n)
{
    char *s = apr_palloc(p, n + 1);

    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* a challenge text and its length, NULs included */
#define SECRET(s) (s), (sizeof(s) - 1)

/* ---- devices --------------------------------------------------------------------- */

static scep_device_t *full_device(apr_pool_t *p, const char *fqdn)
{
    scep_device_t *dev = scep_store_device_new(p, fqdn);

    APR_ARRAY_PUSH(dev->ips, const char *) = "192.0.2.1";
    APR_ARRAY_PUSH(dev->ips, const char *) = "2001:db8::1";
    dev->serial = "SN-0042";
    assert_int_equal(scep_verifier_make(SECRET("challenge"), &dev->verifier), APR_SUCCESS);
    dev->flags = SCEP_DEVICE_ONE_TIME | SCEP_DEVICE_USED;
    dev->expires = APR_INT64_C(4102444800);          /* beyond 32 bits */
    dev->profile = "routers";
    dev->comment = "rack 4, \"left\" unit, a,b";
    dev->created = 1700000000;
    dev->updated = 1700000100;
    dev->last_serial = "7F3A00";
    dev->last_not_after = 1731536100;
    dev->last_enrolled = 1700000200;
    dev->enrollments = 3;
    return dev;
}

static void assert_same_device(const scep_device_t *a, const scep_device_t *b)
{
    int i;

    assert_string_equal(a->fqdn, b->fqdn);
    assert_int_equal(a->ips->nelts, b->ips->nelts);
    for (i = 0; i < a->ips->nelts; i++) {
        assert_string_equal(APR_ARRAY_IDX(a->ips, i, const char *),
                            APR_ARRAY_IDX(b->ips, i, const char *));
    }
#define SAME_STR(f) \
    do { if (a->f || b->f) { assert_non_null(a->f); assert_non_null(b->f); \
                             assert_string_equal(a->f, b->f); } } while (0)
    SAME_STR(serial);
    SAME_STR(profile);
    SAME_STR(comment);
    SAME_STR(last_serial);
#undef SAME_STR
    assert_int_equal(a->verifier.algorithm, b->verifier.algorithm);
    if (a->verifier.algorithm) {
        assert_memory_equal(&a->verifier, &b->verifier, sizeof(a->verifier));
    }
    assert_int_equal(a->flags, b->flags);
    assert_true(a->expires == b->expires);
    assert_true(a->created == b->created);
    assert_true(a->updated == b->updated);
    assert_true(a->last_not_after == b->last_not_after);
    assert_true(a->last_enrolled == b->last_enrolled);
    assert_true(a->enrollments == b->enrollments);
}

static void test_device_round_trip(void **state)
{
    fixture_t *fx = *state;
    scep_device_t *dev = full_device(fx->p, "host.example.com"), *got;
    scep_txn_t *txn;

    txn = begin(fx, 1);
    assert_int_equal(scep_store_device_put(txn, fx->p, dev), APR_SUCCESS);
    commit(txn);

    txn = begin(fx, 0);
    assert_int_equal(scep_store_device_get(txn, fx->p, "host.example.com", &got), APR_SUCCESS);
    scep_db_abort(txn);
    /* Copies in the pool: still good after the transaction. */
    assert_same_device(dev, got);
    assert_true(scep_verifier_matches(&got->verifier, SECRET("challenge")));

    /* An update that empties the optional fields. */
    dev->comment = "replaced";
    dev->serial = NULL;
    dev->profile = NULL;
    dev->last_serial = NULL;
    dev->ips = apr_array_make(fx->p, 0, sizeof(const char *));
    memset(&dev->verifier, 0, sizeof(dev->verifier));
    dev->enrollments = 4;
    txn = begin(fx, 1);
    assert_int_equal(scep_store_device_put(txn, fx->p, dev), APR_SUCCESS);
    commit(txn);
    txn = begin(fx, 0);
    assert_int_equal(scep_store_device_get(txn, fx->p, "host.example.com", &got), APR_SUCCESS);
    scep_db_abort(txn);
    assert_same_device(dev, got);
    assert_null(got->serial);
    assert_null(got->profile);
    assert_null(got->last_serial);
    assert_int_equal(got->ips->nelts, 0);
    assert_int_equal(got->verifier.algorithm, 0);

    /* Keys are byte strings: only the canonical spelling is stored or found. */
    txn = begin(fx, 1);
    dev->fqdn = "Host.Example.com";
    assert_int_equal(scep_store_device_put(txn, fx->p, dev), APR_EINVAL);
    dev->fqdn = "host.example.com.";
    assert_int_equal(scep_store_device_put(txn, fx->p, dev), APR_EINVAL);
    dev->fqdn = "host.example.com";
    APR_ARRAY_PUSH(dev->ips, const char *) = "2001:DB8::1";
    assert_int_equal(scep_store_device_put(txn, fx->p, dev), APR_EINVAL);
    assert_int_equal(scep_store_device_get(txn, fx->p, "HOST.example.com", &got),
                     SCEP_DB_NOTFOUND);
    assert_null(got);

    assert_int_equal(scep_store_device_delete(txn, "host.example.com"), APR_SUCCESS);
    assert_int_equal(scep_store_device_delete(txn, "host.example.com"), SCEP_DB_NOTFOUND);
    commit(txn);
    txn = begin(fx, 0);
    assert_int_equal(scep_store_device_get(txn, fx->p, "host.example.com", &got),
                     SCEP_DB_NOTFOUND);
    scep_db_abort(txn);
}

typedef struct names_t {
    apr_pool_t *p;
    const char *seen;
    int left;                       /* stop after this many; -1 never */
} names_t;

static int collect_device(void *baton, const scep_device_t *dev)
{
    names_t *names = baton;

    names->seen = apr_pstrcat(names->p, names->seen, " ", dev->fqdn, NULL);
    return names->left > 0 && --names->left == 0;
}

static void put_device(fixture_t *fx, scep_txn_t *txn, const char *fqdn, const char *comment)
{
    scep_device_t *dev = scep_store_device_new(fx->p, fqdn);

    dev->comment = comment;
    assert_int_equal(scep_store_device_put(txn, fx->p, dev), APR_SUCCESS);
}

static void test_device_foreach(void **state)
{
    fixture_t *fx = *state;
    names_t names = { fx->p, "", -1 };
    scep_txn_t *txn = begin(fx, 1);

    put_device(fx, txn, "b.example", NULL);
    put_device(fx, txn, "*.example", NULL);
    put_device(fx, txn, "a.example", NULL);
    put_device(fx, txn, "*", NULL);
    commit(txn);

    txn = begin(fx, 0);
    assert_int_equal(scep_store_device_foreach(txn, fx->p, collect_device, &names),
                     APR_SUCCESS);
    assert_string_equal(names.seen, " * *.example a.example b.example");
    names.seen = "";
    names.left = 2;
    assert_int_equal(scep_store_device_foreach(txn, fx->p, collect_device, &names),
                     APR_SUCCESS);
    assert_string_equal(names.seen, " * *.example");
    scep_db_abort(txn);
}

static void assert_finds(fixture_t *fx, scep_txn_t *txn, const char *fqdn, const char *key)
{
    scep_device_t *dev = NULL;

    assert_int_equal(scep_store_device_find(txn, fx->p, fqdn, &dev), APR_SUCCESS);
    assert_non_null(dev);
    assert_string_equal(dev->fqdn, key);
    assert_string_equal(dev->comment, key);
    assert_true(scep_name_matches(dev->fqdn, fqdn));
}

static void test_device_find(void **state)
{
    fixture_t *fx = *state;
    scep_device_t sentinel, *dev = &sentinel;
    scep_txn_t *txn = begin(fx, 1);

    put_device(fx, txn, "*", "*");
    put_device(fx, txn, "*.example.com", "*.example.com");
    put_device(fx, txn, "*.b.example.com", "*.b.example.com");
    put_device(fx, txn, "a.b.example.com", "a.b.example.com");
    commit(txn);

    txn = begin(fx, 0);
    assert_finds(fx, txn, "a.b.example.com", "a.b.example.com");
    assert_finds(fx, txn, "x.b.example.com", "*.b.example.com");
    assert_finds(fx, txn, "x.a.b.example.com", "*.b.example.com");
    assert_finds(fx, txn, "b.example.com", "*.example.com");
    assert_finds(fx, txn, "c.example.com", "*.example.com");
    assert_finds(fx, txn, "example.com", "*");
    assert_finds(fx, txn, "other.org", "*");
    assert_finds(fx, txn, "localhost", "*");
    scep_db_abort(txn);

    txn = begin(fx, 1);
    assert_int_equal(scep_store_device_delete(txn, "*"), APR_SUCCESS);
    assert_int_equal(scep_store_device_find(txn, fx->p, "other.org", &dev), SCEP_DB_NOTFOUND);
    assert_null(dev);
    assert_finds(fx, txn, "c.example.com", "*.example.com");
    commit(txn);
}

/* Other kinds than hosts (issue 17, point 1): their own wildcards, never a host's */
static void test_device_find_kinds(void **state)
{
    fixture_t *fx = *state;
    scep_device_t *dev;
    scep_txn_t *txn = begin(fx, 1);

    put_device(fx, txn, "*", "*");
    put_device(fx, txn, "*.example.org", "*.example.org");
    put_device(fx, txn, "user:*@example.org", "user:*@example.org");
    put_device(fx, txn, "user:alice@example.org", "user:alice@example.org");
    put_device(fx, txn, "id:aa:bb:cc:dd:ee:ff", "id:aa:bb:cc:dd:ee:ff");
    put_device(fx, txn, "name:John's iPhone", "name:John's iPhone");
    /* only canonical keys: another spelling would be a registration no lookup finds */
    dev = scep_store_device_new(fx->p, "user:alice@EXAMPLE.org");
    assert_int_equal(scep_store_device_put(txn, fx->p, dev), APR_EINVAL);
    dev = scep_store_device_new(fx->p, "id:AA-BB-CC-DD-EE-FF");
    assert_int_equal(scep_store_device_put(txn, fx->p, dev), APR_EINVAL);
    dev = scep_store_device_new(fx->p, "name:bell\a");
    assert_int_equal(scep_store_device_put(txn, fx->p, dev), APR_EINVAL);
    commit(txn);

    txn = begin(fx, 0);
    assert_finds(fx, txn, "user:alice@example.org", "user:alice@example.org");
    assert_finds(fx, txn, "user:Bob@example.org", "user:*@example.org");
    assert_int_equal(scep_store_device_find(txn, fx->p, "user:bob@example.org.evil", &dev),
                     SCEP_DB_NOTFOUND);
    assert_int_equal(scep_store_device_find(txn, fx->p, "name:john's iphone", &dev),
                     SCEP_DB_NOTFOUND);
    assert_finds(fx, txn, "name:John's iPhone", "name:John's iPhone");
    assert_finds(fx, txn, "id:aa:bb:cc:dd:ee:ff", "id:aa:bb:cc:dd:ee:ff");
    assert_int_equal(scep_store_device_find(txn, fx->p, "id:aa:bb:cc:dd:ee:00", &dev),
                     SCEP_DB_NOTFOUND);
    assert_finds(fx, txn, "h.example.org", "*.example.org");
    scep_db_abort(txn);

    txn = begin(fx, 1);
    put_device(fx, txn, "user:*", "user:*");
    put_device(fx, txn, "id:*", "id:*");
    commit(txn);
    txn = begin(fx, 0);
    assert_finds(fx, txn, "user:bob@example.org.evil", "user:*");
    assert_finds(fx, txn, "user:Bob@example.org", "user:*@example.org");
    assert_finds(fx, txn, "id:aa:bb:cc:dd:ee:00", "id:*");
    assert_int_equal(scep_store_device_find(txn, fx->p, "name:Jane's iPhone", &dev),
                     SCEP_DB_NOTFOUND);
    scep_db_abort(txn);
}

/* ---- minted challenges ------------------------------------------------------------ */

static void test_minted(void **state)
{
    fixture_t *fx = *state;
    const char *challenge = NULL, *other = NULL;
    scep_minted_t *m = NULL, *got = NULL;
    apr_size_t count = 99, i;
    scep_txn_t *txn = begin(fx, 1);

    assert_int_equal(scep_store_minted_create(txn, fx->p, 1000, 0, NULL, NULL, &challenge, &m),
                     APR_EINVAL);
    assert_int_equal(scep_store_minted_create(txn, fx->p, 1000, -5, NULL, NULL, &challenge, &m),
                     APR_EINVAL);
    assert_null(challenge);
    assert_int_equal(scep_store_minted_create(txn, fx->p, 1000, 600, "a.example", "routers",
                                              &challenge, &m), APR_SUCCESS);
    assert_int_equal(scep_store_minted_create(txn, fx->p, 1000, 600, NULL, NULL, &other, NULL),
                     APR_SUCCESS);
    commit(txn);

    assert_non_null(challenge);
    assert_int_equal(strlen(challenge), 2 * SCEP_MINTED_BYTES);
    for (i = 0; i < 2 * SCEP_MINTED_BYTES; i++) {
        assert_non_null(strchr("0123456789abcdef", challenge[i]));
    }
    assert_string_not_equal(challenge, other);
    assert_true(m->created == 1000);
    assert_true(m->expires == 1600);

    txn = begin(fx, 0);
    assert_int_equal(scep_store_minted_get(txn, fx->p, challenge, strlen(challenge), &got),
                     APR_SUCCESS);
    assert_true(got->created == 1000);
    assert_true(got->expires == 1600);
    assert_string_equal(got->fqdn, "a.example");
    assert_string_equal(got->profile, "routers");
    assert_int_equal(scep_store_minted_get(txn, fx->p, other, strlen(other), &got),
                     APR_SUCCESS);
    assert_null(got->fqdn);
    assert_null(got->profile);
    /* The text is the secret, byte for byte. */
    assert_int_equal(scep_store_minted_get(txn, fx->p, apr_pstrcat(fx->p, challenge, "0", NULL),
                                           strlen(challenge) + 1, &got), SCEP_DB_NOTFOUND);
    assert_null(got);
    assert_int_equal(scep_store_minted_get(txn, fx->p, challenge, strlen(challenge) - 1, &got),
                     SCEP_DB_NOTFOUND);
    /* Nor is the same text in capitals: only the shape minting gives is ever one. */
    {
        char *upper = apr_pstrdup(fx->p, challenge);

        for (i = 0; upper[i]; i++) {
            upper[i] = (char)toupper((unsigned char)upper[i]);
        }
        assert_int_equal(scep_store_minted_get(txn, fx->p, upper, strlen(upper), &got),
                         SCEP_DB_NOTFOUND);
    }
    /* An empty challengePassword is no minted challenge, not an error. */
    assert_int_equal(scep_store_minted_get(txn, fx->p, "", 0, &got), SCEP_DB_NOTFOUND);
    assert_int_equal(scep_store_minted_count(txn, &count), APR_SUCCESS);
    assert_int_equal(count, 2);
    scep_db_abort(txn);

    txn = begin(fx, 1);
    assert_int_equal(scep_store_minted_delete(txn, challenge, strlen(challenge)), APR_SUCCESS);
    assert_int_equal(scep_store_minted_delete(txn, challenge, strlen(challenge)),
                     SCEP_DB_NOTFOUND);
    commit(txn);
    txn = begin(fx, 0);
    assert_int_equal(scep_store_minted_get(txn, fx->p, challenge, strlen(challenge), &got),
                     SCEP_DB_NOTFOUND);
    assert_int_equal(scep_store_minted_count(txn, &count), APR_SUCCESS);
    assert_int_equal(count, 1);
    scep_db_abort(txn);
}

static void test_minted_purge(void **state)
{
    fixture_t *fx = *state;
    const char *c[3];
    scep_minted_t *got;
    apr_size_t removed = 99, count = 99;
    scep_txn_t *txn = begin(fx, 1);

    assert_int_equal(scep_store_minted_create(txn, fx->p, 1000, 10, NULL, NULL, &c[0], NULL),
                     APR_SUCCESS);
    assert_int_equal(scep_store_minted_create(txn, fx->p, 1000, 100, NULL, NULL, &c[1], NULL),
                     APR_SUCCESS);
    assert_int_equal(scep_store_minted_create(txn, fx->p, 1000, 1000, NULL, NULL, &c[2], NULL),
                     APR_SUCCESS);
    commit(txn);

    txn = begin(fx, 1);
    assert_int_equal(scep_store_minted_purge(txn, fx->p, 1009, &removed), APR_SUCCESS);
    assert_int_equal(removed, 0);
    /* Expiry is inclusive: at 1100 the second one (expires 1100) goes too. */
    assert_int_equal(scep_store_minted_purge(txn, fx->p, 1100, &removed), APR_SUCCESS);
    assert_int_equal(removed, 2);
    commit(txn);

    txn = begin(fx, 0);
    assert_int_equal(scep_store_minted_count(txn, &count), APR_SUCCESS);
    assert_int_equal(count, 1);
    assert_int_equal(scep_store_minted_get(txn, fx->p, c[0], strlen(c[0]), &got),
                     SCEP_DB_NOTFOUND);
    assert_int_equal(scep_store_minted_get(txn, fx->p, c[1], strlen(c[1]), &got),
                     SCEP_DB_NOTFOUND);
    assert_int_equal(scep_store_minted_get(txn, fx->p, c[2], strlen(c[2]), &got), APR_SUCCESS);
    assert_true(got->expires == 2000);
    scep_db_abort(txn);

    txn = begin(fx, 1);
    assert_int_equal(scep_store_minted_purge(txn, fx->p, 1100, &removed), APR_SUCCESS);
    assert_int_equal(removed, 0);
    assert_int_equal(scep_store_minted_purge(txn, fx->p, 5000, &removed), APR_SUCCESS);
    assert_int_equal(removed, 1);
    assert_int_equal(scep_store_minted_count(txn, &count), APR_SUCCESS);
    assert_int_equal(count, 0);
    commit(txn);
}

/* ---- failure counters ------------------------------------------------------------ */

static void test_failure(void **state)
{
    fixture_t *fx = *state;
    scep_failure_t f, put = { 3, 1000, 2000, 900 };
    scep_txn_t *txn = begin(fx, 1);

    /* Absent: SCEP_DB_NOTFOUND and a zeroed counter. */
    memset(&f, 0x5a, sizeof(f));
    assert_int_equal(scep_store_failure_get(txn, "a.example", &f), SCEP_DB_NOTFOUND);
    assert_true(f.count == 0 && f.last == 0 && f.locked_until == 0);

    assert_int_equal(scep_store_failure_put(txn, fx->p, "a.example", &put), APR_SUCCESS);
    commit(txn);

    txn = begin(fx, 0);
    assert_int_equal(scep_store_failure_get(txn, "a.example", &f), APR_SUCCESS);
    assert_memory_equal(&f, &put, sizeof(f));
    assert_int_equal(scep_store_failure_get(txn, "a.example.org", &f), SCEP_DB_NOTFOUND);
    scep_db_abort(txn);

    txn = begin(fx, 1);
    assert_int_equal(scep_store_failure_clear(txn, "a.example"), APR_SUCCESS);
    assert_int_equal(scep_store_failure_clear(txn, "a.example"), SCEP_DB_NOTFOUND);
    assert_int_equal(scep_store_failure_get(txn, "a.example", &f), SCEP_DB_NOTFOUND);
    assert_int_equal(scep_store_failure_get(txn, "", &f), SCEP_DB_NOTFOUND);
    assert_int_equal(scep_store_failure_get(txn, NULL, &f), APR_EINVAL);
    commit(txn);
}

/* Two names read at once give what two reads give, each absent one zeroed. */
static void test_failure_pair(void **state)
{
    fixture_t *fx = *state;
    scep_failure_t fa, fb, name = { 3, 1000, 2000, 900 }, shared = { 7, 1100, 0, 600 };
    int found_a, found_b;
    scep_txn_t *txn = begin(fx, 1);

    assert_int_equal(scep_store_failure_put(txn, fx->p, "a.example", &name), APR_SUCCESS);
    assert_int_equal(scep_store_failure_put(txn, fx->p, "*.example", &shared), APR_SUCCESS);
    commit(txn);

    txn = begin(fx, 0);
    assert_int_equal(scep_store_failure_get_pair(txn, "a.example", "*.example", &fa, &found_a,
                                                 &fb, &found_b), APR_SUCCESS);
    assert_true(found_a && found_b);
    assert_memory_equal(&fa, &name, sizeof(fa));
    assert_memory_equal(&fb, &shared, sizeof(fb));
    /* the order of the names is the caller's, not the store's */
    assert_int_equal(scep_store_failure_get_pair(txn, "*.example", "a.example", &fa, &found_a,
                                                 &fb, &found_b), APR_SUCCESS);
    assert_true(found_a && found_b);
    assert_memory_equal(&fa, &shared, sizeof(fa));
    assert_memory_equal(&fb, &name, sizeof(fb));
    memset(&fa, 0x5a, sizeof(fa));
    assert_int_equal(scep_store_failure_get_pair(txn, "b.example", "*.example", &fa, &found_a,
                                                 &fb, &found_b), APR_SUCCESS);
    assert_true(!found_a && found_b);
    assert_true(fa.count == 0 && fa.last == 0 && fa.locked_until == 0 && fa.period == 0);
    assert_memory_equal(&fb, &shared, sizeof(fb));
    memset(&fb, 0x5a, sizeof(fb));
    assert_int_equal(scep_store_failure_get_pair(txn, "a.example", "*.example.org", &fa,
                                                 &found_a, &fb, &found_b), APR_SUCCESS);
    assert_true(found_a && !found_b);
    assert_true(fb.count == 0 && fb.last == 0 && fb.locked_until == 0 && fb.period == 0);
    assert_int_equal(scep_store_failure_get_pair(txn, "c.example", "d.example", &fa, &found_a,
                                                 &fb, &found_b), APR_SUCCESS);
    assert_true(!found_a && !found_b);
    assert_int_equal(scep_store_failure_get_pair(txn, NULL, "a.example", &fa, &found_a, &fb,
                                                 &found_b), APR_EINVAL);
    assert_int_equal(scep_store_failure_get_pair(txn, "a.example", NULL, &fa, &found_a, &fb,
                                                 &found_b), APR_EINVAL);
    scep_db_abort(txn);
}

/* The purge keeps what still locks or counts: locked at `now`, or a failure within its
 * period (at least `idle`); expiry is inclusive, as for minted challenges. */
static void test_failure_purge(void **state)
{
    fixture_t *fx = *state;
    static const struct {
        const char *name;
        scep_failure_t f;
        int kept;
    } cases[] = {
        { "locked.example", { 3, 100, 2001, 0 }, 1 },
        { "unlocked.example", { 3, 100, 2000, 0 }, 0 },
        { "recent.example", { 1, 1950, 0, 0 }, 1 },
        { "idle.example", { 1, 1900, 0, 0 }, 0 },
        { "long.example", { 1, 1900, 0, 500 }, 1 },
        { "served.example", { 1, 1500, 0, 500 }, 0 },
    };
    scep_failure_t f;
    apr_size_t i, removed = 99, count = 99;
    scep_txn_t *txn = begin(fx, 1);

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(scep_store_failure_put(txn, fx->p, cases[i].name, &cases[i].f),
                         APR_SUCCESS);
    }
    commit(txn);

    txn = begin(fx, 1);
    assert_int_equal(scep_store_failure_purge(txn, fx->p, 2000, 100, &removed), APR_SUCCESS);
    assert_int_equal(removed, 3);
    assert_int_equal(scep_store_failure_count(txn, &count), APR_SUCCESS);
    assert_int_equal(count, 3);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(scep_store_failure_get(txn, cases[i].name, &f),
                         cases[i].kept ? APR_SUCCESS : SCEP_DB_NOTFOUND);
    }
    assert_int_equal(scep_store_failure_purge(txn, fx->p, 2000, 100, &removed), APR_SUCCESS);
    assert_int_equal(removed, 0);
    commit(txn);
}

/* ---- transactions ---------------------------------------------------------------- */

static void test_transaction(void **state)
{
    fixture_t *fx = *state;
    scep_transaction_t t, *got = (scep_transaction_t *)&t;
    scep_txn_t *txn;
    int i;

    memset(&t, 0, sizeof(t));
    t.transaction_id = "2F3C8B0A9D";
    t.state = "issued";
    for (i = 0; i < SCEP_REQUEST_DIGEST_LEN; i++) {
        t.request_digest[i] = (unsigned char)(i * 7 + 1);
    }
    t.fqdn = "a.example";
    t.serial = "7F3A00";
    t.created = APR_INT64_C(1700000000123);
    txn = begin(fx, 1);
    assert_int_equal(scep_store_transaction_put(txn, fx->p, &t), APR_SUCCESS);
    commit(txn);

    txn = begin(fx, 0);
    assert_int_equal(scep_store_transaction_get(txn, fx->p, "2F3C8B0A9D", &got), APR_SUCCESS);
    assert_string_equal(got->transaction_id, t.transaction_id);
    assert_string_equal(got->state, "issued");
    assert_memory_equal(got->request_digest, t.request_digest, SCEP_REQUEST_DIGEST_LEN);
    assert_string_equal(got->fqdn, "a.example");
    assert_string_equal(got->serial, "7F3A00");
    assert_true(got->created == t.created);
    assert_int_equal(scep_store_transaction_get(txn, fx->p, "2F3C8B0A9", &got),
                     SCEP_DB_NOTFOUND);
    assert_null(got);
    /* IDs come from clients: one too long for a key is simply not there... */
    assert_int_equal(scep_store_transaction_get(txn, fx->p, repeat(fx->p, 'T', 4000), &got),
                     SCEP_DB_NOTFOUND);
    scep_db_abort(txn);

    /* ...and cannot be written: the transaction keeps the error, so a caller that
     * checks only the commit does not record half an enrollment. */
    txn = begin(fx, 1);
    t.transaction_id = repeat(fx->p, 'T', 4000);
    assert_int_not_equal(scep_store_transaction_put(txn, fx->p, &t), APR_SUCCESS);
    assert_int_not_equal(scep_db_commit(txn), APR_SUCCESS);
}

/* One ID used by two requesters, and records from before requesters were kept (under the
 * bare ID, with or without the signer key they recorded). */
typedef struct txn_seen_t {
    apr_pool_t *p;
    const char *seen;
} txn_seen_t;

static int collect_transaction(void *baton, const scep_transaction_t *t)
{
    txn_seen_t *s = baton;

    s->seen = apr_psprintf(s->p, "%s %s/%s/%s", s->seen, t->transaction_id, t->state,
                           t->bare_key ? "bare" : t->signer_key[0] == 0xaa ? "a" : "b");
    return 0;
}

static void put_transaction(fixture_t *fx, scep_txn_t *txn, const char *id, const char *state,
                            const unsigned char *signer, int bare)
{
    scep_transaction_t t;

    memset(&t, 0, sizeof(t));
    t.transaction_id = id;
    t.state = state;
    memset(t.request_digest, 0x11, sizeof(t.request_digest));
    t.fqdn = "a.example";
    t.created = 1000;
    if (signer) {
        memcpy(t.signer_key, signer, SCEP_REQUEST_DIGEST_LEN);
        t.has_signer_key = 1;
    }
    t.bare_key = bare;
    assert_int_equal(scep_store_transaction_put(txn, fx->p, &t), APR_SUCCESS);
}

static void test_transaction_requesters(void **state)
{
    fixture_t *fx = *state;
    unsigned char a[SCEP_REQUEST_DIGEST_LEN], b[SCEP_REQUEST_DIGEST_LEN];
    unsigned char c[SCEP_REQUEST_DIGEST_LEN];
    scep_transaction_t *got = NULL, *fresh = NULL;
    txn_seen_t seen = { fx->p, "" };
    scep_txn_t *txn = begin(fx, 1);

    memset(a, 0xaa, sizeof(a));
    memset(b, 0xbb, sizeof(b));
    memset(c, 0xcc, sizeof(c));
    put_transaction(fx, txn, "shared", SCEP_TXN_ISSUED, a, 0);
    put_transaction(fx, txn, "shared", SCEP_TXN_PENDING, b, 0);
    put_transaction(fx, txn, "old", SCEP_TXN_ISSUED, a, 1);
    put_transaction(fx, txn, "nokey", SCEP_TXN_ISSUED, NULL, 0);
    commit(txn);

    txn = begin(fx, 0);
    assert_int_equal(scep_store_transaction_get_for(txn, fx->p, "shared", a, &got),
                     APR_SUCCESS);
    assert_string_equal(got->state, SCEP_TXN_ISSUED);
    assert_false(got->bare_key);
    assert_true(got->has_signer_key);
    assert_memory_equal(got->signer_key, a, sizeof(a));
    assert_int_equal(scep_store_transaction_get_for(txn, fx->p, "shared", b, &got),
                     APR_SUCCESS);
    assert_string_equal(got->state, SCEP_TXN_PENDING);
    assert_int_equal(scep_store_transaction_get_for(txn, fx->p, "shared", c, &got),
                     SCEP_DB_NOTFOUND);
    assert_null(got);
    assert_int_equal(scep_store_transaction_get_for(txn, fx->p, "shared", NULL, &got),
                     SCEP_DB_NOTFOUND);
    /* the operator names a transaction by its ID: two requesters make it ambiguous */
    assert_int_equal(scep_store_transaction_get(txn, fx->p, "shared", &got), SCEP_DB_EXISTS);
    assert_null(got);
    /* an old record answers any requester; the caller judges it by what it recorded */
    assert_int_equal(scep_store_transaction_get_for(txn, fx->p, "old", b, &got), APR_SUCCESS);
    assert_true(got->bare_key);
    assert_true(got->has_signer_key);
    assert_memory_equal(got->signer_key, a, sizeof(a));
    assert_int_equal(scep_store_transaction_get(txn, fx->p, "old", &got), APR_SUCCESS);
    assert_true(got->bare_key);
    assert_int_equal(scep_store_transaction_get(txn, fx->p, "nokey", &got), APR_SUCCESS);
    assert_true(got->bare_key);
    assert_false(got->has_signer_key);
    assert_int_equal(scep_store_transaction_foreach(txn, fx->p, collect_transaction, &seen),
                     APR_SUCCESS);
    assert_string_equal(seen.seen, " nokey/issued/bare old/issued/bare shared/issued/a"
                                   " shared/pending/b");
    seen.seen = "";
    assert_int_equal(scep_store_transaction_foreach_held(txn, fx->p, collect_transaction,
                                                         &seen), APR_SUCCESS);
    assert_string_equal(seen.seen, " shared/pending/b");
    scep_db_abort(txn);

    /* read again where a walk found it, changed, written back under the same key */
    txn = begin(fx, 1);
    assert_int_equal(scep_store_transaction_get_for(txn, fx->p, "shared", b, &got),
                     APR_SUCCESS);
    assert_int_equal(scep_store_transaction_reread(txn, fx->p, got, &fresh), APR_SUCCESS);
    fresh->state = SCEP_TXN_APPROVED;
    fresh->decided_at = 1500;
    fresh->decided_by = "operator";
    assert_int_equal(scep_store_transaction_put(txn, fx->p, fresh), APR_SUCCESS);
    assert_int_equal(scep_store_transaction_get(txn, fx->p, "old", &got), APR_SUCCESS);
    assert_int_equal(scep_store_transaction_reread(txn, fx->p, got, &fresh), APR_SUCCESS);
    assert_true(fresh->bare_key);
    commit(txn);
    txn = begin(fx, 0);
    assert_int_equal(scep_store_transaction_get_for(txn, fx->p, "shared", b, &got),
                     APR_SUCCESS);
    assert_string_equal(got->state, SCEP_TXN_APPROVED);
    assert_true(got->decided_at == 1500);
    assert_string_equal(got->decided_by, "operator");
    assert_int_equal(scep_store_transaction_get_for(txn, fx->p, "shared", a, &got),
                     APR_SUCCESS);
    assert_string_equal(got->state, SCEP_TXN_ISSUED);
    scep_db_abort(txn);
}

/* ---- certificates -------------------------------------------------------------- */

static void put_cert(fixture_t *fx, scep_txn_t *txn, const char *serial, const char *fqdn)
{
    scep_cert_rec_t c;

    memset(&c, 0, sizeof(c));
    c.serial = serial;
    c.der = (const unsigned char *)apr_pstrcat(fx->p, "DER of ", serial, NULL);
    c.der_len = strlen((const char *)c.der);
    c.fqdn = fqdn;
    c.subject = apr_pstrcat(fx->p, "CN=", fqdn, NULL);
    c.transaction_id = apr_pstrcat(fx->p, "tx-", serial, NULL);
    c.not_before = 1000;
    c.not_after = 2000;
    c.issued_at = 1001;
    assert_int_equal(scep_store_cert_put(txn, fx->p, &c), APR_SUCCESS);
}

typedef struct serials_t {
    apr_pool_t *p;
    const char *seen;
} serials_t;

static int collect_serial(void *baton, const scep_cert_rec_t *c)
{
    serials_t *s = baton;

    s->seen = apr_pstrcat(s->p, s->seen, " ", c->serial, "@", c->fqdn, NULL);
    return 0;
}

static const char *serials_of(fixture_t *fx, scep_txn_t *txn, const char *fqdn)
{
    serials_t s = { fx->p, "" };

    assert_int_equal(scep_store_cert_foreach(txn, fx->p, fqdn, collect_serial, &s),
                     APR_SUCCESS);
    return s.seen;
}

static void test_cert(void **state)
{
    fixture_t *fx = *state;
    scep_cert_rec_t sentinel, *c = &sentinel, bad;
    scep_txn_t *txn = begin(fx, 1);

    put_cert(fx, txn, "0A1C", "a.example");
    put_cert(fx, txn, "0a1b", "a.example");
    put_cert(fx, txn, "7F00", "a.example.org");
    put_cert(fx, txn, "01", "b.example");
    commit(txn);

    txn = begin(fx, 0);
    assert_int_equal(scep_store_cert_get(txn, fx->p, "0A1B", &c), APR_SUCCESS);
    scep_db_abort(txn);
    assert_string_equal(c->serial, "0A1B");
    assert_int_equal(c->der_len, strlen("DER of 0a1b"));
    assert_memory_equal(c->der, "DER of 0a1b", c->der_len);
    assert_string_equal(c->fqdn, "a.example");
    assert_string_equal(c->subject, "CN=a.example");
    assert_string_equal(c->transaction_id, "tx-0a1b");
    assert_true(c->not_before == 1000 && c->not_after == 2000 && c->issued_at == 1001);
    assert_true(c->revoked_at == 0);

    txn = begin(fx, 0);
    assert_int_equal(scep_store_cert_get(txn, fx->p, "0a1c", &c), APR_SUCCESS);
    assert_string_equal(c->serial, "0A1C");
    assert_int_equal(scep_store_cert_get(txn, fx->p, "FFFF", &c), SCEP_DB_NOTFOUND);
    assert_null(c);
    assert_int_equal(scep_store_cert_get(txn, fx->p, "ABC", &c), APR_EINVAL);
    assert_int_equal(scep_store_cert_get(txn, fx->p, "ZZ", &c), APR_EINVAL);
    assert_int_equal(scep_store_cert_get(txn, fx->p, "-01", &c), APR_EINVAL);
    assert_int_equal(scep_store_cert_get(txn, fx->p, "", &c), APR_EINVAL);
    assert_int_equal(scep_store_cert_get(txn, fx->p, NULL, &c), APR_EINVAL);

    assert_string_equal(serials_of(fx, txn, NULL),
                        " 01@b.example 0A1B@a.example 0A1C@a.example 7F00@a.example.org");
    /* "a.example" prefixes "a.example.org": neither may see the other's. */
    assert_string_equal(serials_of(fx, txn, "a.example"), " 0A1B@a.example 0A1C@a.example");
    assert_string_equal(serials_of(fx, txn, "a.example.org"), " 7F00@a.example.org");
    assert_string_equal(serials_of(fx, txn, "a.exampl"), "");
    assert_string_equal(serials_of(fx, txn, "c.example"), "");
    assert_string_equal(serials_of(fx, txn, ""), "");
    scep_db_abort(txn);

    /* Rewritten under another name (or revoked), the index follows. */
    txn = begin(fx, 1);
    put_cert(fx, txn, "7F00", "a.example");
    assert_int_equal(scep_store_cert_get(txn, fx->p, "0A1B", &c), APR_SUCCESS);
    c->revoked_at = 1500;
    assert_int_equal(scep_store_cert_put(txn, fx->p, c), APR_SUCCESS);
    memset(&bad, 0, sizeof(bad));
    bad.serial = "XYZ";
    bad.fqdn = "a.example";
    assert_int_equal(scep_store_cert_put(txn, fx->p, &bad), APR_EINVAL);
    commit(txn);

    txn = begin(fx, 0);
    assert_string_equal(serials_of(fx, txn, "a.example"),
                        " 0A1B@a.example 0A1C@a.example 7F00@a.example");
    assert_string_equal(serials_of(fx, txn, "a.example.org"), "");
    assert_int_equal(scep_store_cert_get(txn, fx->p, "0A1B", &c), APR_SUCCESS);
    assert_true(c->revoked_at == 1500);
    scep_db_abort(txn);
}

static void test_revoke(void **state)
{
    fixture_t *fx = *state;
    scep_crl_state_t crl;
    scep_cert_rec_t *c;
    int already = -1;
    scep_txn_t *txn = begin(fx, 1);

    assert_int_equal(scep_store_crl_state_get(txn, &crl), APR_SUCCESS);
    assert_true(crl.generation == 0 && crl.changed_at == 0);
    put_cert(fx, txn, "0A01", "a.example");
    put_cert(fx, txn, "0A02", "a.example");
    assert_int_equal(scep_store_cert_revoke(txn, fx->p, "0a01", 5000,
                                            SCEP_REASON_KEY_COMPROMISE,
                                      &already), APR_SUCCESS);
    assert_false(already);
    commit(txn);

    /* A second revocation keeps the first time and reason and changes no CRL. */
    txn = begin(fx, 1);
    assert_int_equal(scep_store_cert_revoke(txn, fx->p, "0A01", 6000, SCEP_REASON_SUPERSEDED,
                                            &already), APR_SUCCESS);
    assert_true(already);
    assert_int_equal(scep_store_cert_revoke(txn, fx->p, "0B99", 6000, SCEP_REASON_SUPERSEDED,
                                            &already), SCEP_DB_NOTFOUND);
    /* what is no serial's hex is refused, not looked for */
    assert_int_equal(scep_store_cert_revoke(txn, fx->p, "0B9", 6000, SCEP_REASON_SUPERSEDED,
                                            &already), APR_EINVAL);
    assert_int_equal(scep_store_cert_revoke(txn, fx->p, "ZZ", 6000, SCEP_REASON_SUPERSEDED,
                                            &already), APR_EINVAL);
    assert_int_equal(scep_store_cert_revoke(txn, fx->p, NULL, 6000, SCEP_REASON_SUPERSEDED,
                                            &already), APR_EINVAL);
    assert_int_equal(scep_store_crl_state_get(txn, &crl), APR_SUCCESS);
    assert_true(crl.generation == 1 && crl.changed_at == 5000);
    assert_int_equal(scep_store_cert_revoke(txn, fx->p, "0A02", 7000, SCEP_REASON_UNSPECIFIED,
                                            &already), APR_SUCCESS);
    commit(txn);

    txn = begin(fx, 0);
    assert_int_equal(scep_store_cert_get(txn, fx->p, "0A01", &c), APR_SUCCESS);
    assert_true(c->revoked_at == 5000);
    assert_int_equal(c->revocation_reason, SCEP_REASON_KEY_COMPROMISE);
    assert_int_equal(scep_store_cert_get(txn, fx->p, "0A02", &c), APR_SUCCESS);
    assert_true(c->revoked_at == 7000);
    assert_int_equal(c->revocation_reason, SCEP_REASON_UNSPECIFIED);
    assert_null(c->issuer_key_id);
    /* still listed under its device */
    assert_string_equal(serials_of(fx, txn, "a.example"), " 0A01@a.example 0A02@a.example");
    assert_int_equal(scep_store_crl_state_get(txn, &crl), APR_SUCCESS);
    assert_true(crl.generation == 2 && crl.changed_at == 7000);
    scep_db_abort(txn);
}

static scep_cert_rec_t cert_of(const char *serial, const char *der)
{
    scep_cert_rec_t c;

    memset(&c, 0, sizeof(c));
    c.serial = serial;
    c.der = (const unsigned char *)der;
    c.der_len = strlen(der);
    c.fqdn = "u.example";
    c.not_before = 1000;
    c.not_after = 2000;
    c.issued_at = 1000;
    return c;
}

/* Serials are unique on either store: another certificate under one in use is refused
 * with its transaction, the same one again is a rewrite. */
static void test_unique_serial(void **state)
{
    fixture_t *fx = *state;
    scep_cert_rec_t first = cert_of("0C01", "first certificate");
    scep_cert_rec_t other = cert_of("0c01", "another certificate");
    scep_cert_rec_t *got;
    scep_device_t *dev;
    scep_txn_t *txn = begin(fx, 1);

    assert_int_equal(scep_store_cert_put(txn, fx->p, &first), APR_SUCCESS);
    commit(txn);

    /* another certificate under a serial in use: refused, and nothing of it is kept */
    txn = begin(fx, 1);
    put_device(fx, txn, "u.example", "written with it");
    assert_int_equal(scep_store_cert_put(txn, fx->p, &other), SCEP_DB_EXISTS);
    assert_int_equal(scep_db_commit(txn), SCEP_DB_EXISTS);
    txn = begin(fx, 0);
    assert_int_equal(scep_store_cert_get(txn, fx->p, "0C01", &got), APR_SUCCESS);
    assert_int_equal(got->der_len, strlen("first certificate"));
    assert_memory_equal(got->der, "first certificate", got->der_len);
    assert_int_equal(scep_store_device_get(txn, fx->p, "u.example", &dev), SCEP_DB_NOTFOUND);
    scep_db_abort(txn);

    /* the same certificate again is a rewrite */
    txn = begin(fx, 1);
    first.revoked_at = 1500;
    first.revocation_reason = SCEP_REASON_SUPERSEDED;
    first.fqdn = "v.example";
    assert_int_equal(scep_store_cert_put(txn, fx->p, &first), APR_SUCCESS);
    commit(txn);
    txn = begin(fx, 0);
    assert_int_equal(scep_store_cert_get(txn, fx->p, "0c01", &got), APR_SUCCESS);
    assert_true(got->revoked_at == 1500);
    assert_string_equal(got->fqdn, "v.example");
    assert_string_equal(got->serial, "0C01");
    scep_db_abort(txn);
}

/* Every case above, each made a test by T (the includer's fixture). */
#define STORE_CASES(T) \
    T(test_device_round_trip), T(test_device_foreach), T(test_device_find), \
    T(test_device_find_kinds), T(test_minted), T(test_minted_purge), T(test_failure), \
    T(test_failure_pair), T(test_failure_purge), T(test_transaction), \
    T(test_transaction_requesters), T(test_cert), T(test_revoke), T(test_unique_serial)

#endif

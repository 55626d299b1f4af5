/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of scep_store.c: the canonical forms of names and addresses, wildcard
 * matching, challenge verifiers, and every record kind written to and read back from a
 * real LMDB environment in a fresh temporary folder per test, including the lookups
 * with a twist (most specific wildcard, certificates by a name that prefixes another)
 * and records that are damaged or written by a newer version.
 *
 * With SCEP_BENCH=1 in the environment, test_verifier_cost prints what one
 * scep_verifier_matches costs; it never asserts on time. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <apr_time.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "scep_name.h"
#include "scep_store.h"

/* ---- fixtures -------------------------------------------------------------------- */

typedef struct fixture_t {
    apr_pool_t *p;
    scep_db_t *db;
    char dir[256];
} fixture_t;

static int pool_setup(void **state)
{
    apr_pool_t *p;

    if (apr_pool_create(&p, NULL) != APR_SUCCESS) {
        return -1;
    }
    *state = p;
    return 0;
}

static int pool_teardown(void **state)
{
    apr_pool_destroy(*state);
    return 0;
}

static int db_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    const char *tmp = getenv("TMPDIR");
    const char *why = NULL;
    apr_status_t rv;

    if (!fx || apr_pool_create(&fx->p, NULL) != APR_SUCCESS) {
        free(fx);
        return -1;
    }
    snprintf(fx->dir, sizeof(fx->dir), "%s/scep-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(fx->dir)) {
        apr_pool_destroy(fx->p);
        free(fx);
        return -1;
    }
    *state = fx;
    /* A small map: the tests write a few kilobytes. */
    rv = scep_db_open(fx->p, fx->dir, 16 * 1024 * 1024, SCEP_DB_CREATE, NULL, &fx->db, &why);
    if (rv != APR_SUCCESS) {
        fprintf(stderr, "# scep_db_open(%s): %s\n", fx->dir, why ? why : "?");
        return -1;
    }
    return 0;
}

static int db_teardown(void **state)
{
    fixture_t *fx = *state;
    struct dirent *e;
    DIR *d;
    int rc = 0;

    /* The pool's cleanup closes the environment before its files go. */
    apr_pool_destroy(fx->p);
    if ((d = opendir(fx->dir)) != NULL) {
        while ((e = readdir(d)) != NULL) {
            char path[512];

            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
                continue;
            }
            snprintf(path, sizeof(path), "%s/%s", fx->dir, e->d_name);
            rc |= unlink(path);
        }
        closedir(d);
    }
    rc |= rmdir(fx->dir);
    free(fx);
    return rc == 0 ? 0 : -1;
}

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

/* ---- canonical names ------------------------------------------------------------ */

static char *repeat(apr_pool_t *p, char c, apr_size_t n)
{
    char *s = apr_palloc(p, n + 1);

    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* A name of exactly `len` characters: 63-character labels, the last one shorter. */
static const char *name_of_length(apr_pool_t *p, apr_size_t len)
{
    const char *name = "";

    while (len > 64) {
        name = apr_pstrcat(p, name, repeat(p, 'a', 63), ".", NULL);
        len -= 64;
    }
    return apr_pstrcat(p, name, repeat(p, 'b', len), NULL);
}

static void test_fqdn_canonical(void **state)
{
    apr_pool_t *p = *state;
    static const struct {
        const char *in;
        int wildcard;
        const char *want;               /* NULL: refused */
    } cases[] = {
        { "host.example.com", 0, "host.example.com" },
        { "Host.EXAMPLE.Com", 0, "host.example.com" },
        { "host.example.com.", 0, "host.example.com" },
        { "host.example.com..", 0, NULL },           /* only one trailing dot goes */
        { "localhost", 0, "localhost" },
        { "under_score.ex-ample.com", 0, "under_score.ex-ample.com" },
        { "-edge-.example", 0, "-edge-.example" },   /* kept simple: '-' anywhere */
        { "123.example", 0, "123.example" },
        { "", 0, NULL },
        { ".", 0, NULL },
        { ".example.com", 0, NULL },
        { "a..b", 0, NULL },
        { "a b.example", 0, NULL },
        { "a@b.example", 0, NULL },
        { "a/b", 0, NULL },
        { "h\xc3\xb4st.example", 0, NULL },          /* UTF-8: IDNs come as xn-- */
        { "host:443", 0, NULL },
        { "*", 0, NULL },
        { "*.example.com", 0, NULL },
        { "*", 1, "*" },
        { "*.", 1, "*" },
        { "*.Example.COM", 1, "*.example.com" },
        { "*.example.com.", 1, "*.example.com" },
        { "*.com", 1, "*.com" },
        { "plain.example", 1, "plain.example" },
        { "a.*", 1, NULL },
        { "a.*.b", 1, NULL },
        { "*a.b", 1, NULL },
        { "a*.b", 1, NULL },
        { "**", 1, NULL },
        { "*.*.b", 1, NULL },
        { "*..b", 1, NULL },
        { "*.", 0, NULL },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = scep_name_fqdn(p, cases[i].in, cases[i].wildcard);

        if (cases[i].want) {
            if (!got || strcmp(got, cases[i].want) != 0) {
                fail_msg("'%s' (wildcard %d): got '%s', want '%s'", cases[i].in,
                         cases[i].wildcard, got ? got : "(null)", cases[i].want);
            }
        }
        else if (got) {
            fail_msg("'%s' (wildcard %d): got '%s', want refusal", cases[i].in,
                     cases[i].wildcard, got);
        }
    }
    assert_null(scep_name_fqdn(p, NULL, 1));

    /* The limits: 63 per label, 253 in all, the trailing dot not counted. */
    assert_non_null(scep_name_fqdn(p, repeat(p, 'x', 63), 0));
    assert_null(scep_name_fqdn(p, repeat(p, 'x', 64), 0));
    assert_non_null(scep_name_fqdn(p, apr_pstrcat(p, repeat(p, 'x', 63), ".e", NULL), 0));
    assert_null(scep_name_fqdn(p, apr_pstrcat(p, repeat(p, 'x', 64), ".e", NULL), 0));
    assert_int_equal(strlen(name_of_length(p, 253)), 253);
    assert_non_null(scep_name_fqdn(p, name_of_length(p, 253), 0));
    assert_non_null(scep_name_fqdn(p, apr_pstrcat(p, name_of_length(p, 253), ".", NULL), 0));
    assert_null(scep_name_fqdn(p, name_of_length(p, 254), 0));
    assert_non_null(scep_name_fqdn(p, apr_pstrcat(p, "*.", name_of_length(p, 251), NULL), 1));
    assert_null(scep_name_fqdn(p, apr_pstrcat(p, "*.", name_of_length(p, 252), NULL), 1));
}

static void test_ip_canonical(void **state)
{
    apr_pool_t *p = *state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        { "192.0.2.1", "192.0.2.1" },
        { "0.0.0.0", "0.0.0.0" },
        { "2001:DB8:0::1", "2001:db8::1" },
        { "2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1" },
        { "2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1" },
        { "::1", "::1" },
        { "::", "::" },
        { "::FFFF:192.0.2.1", "::ffff:192.0.2.1" },
        { "", NULL },
        { "host", NULL },
        { "1.2.3", NULL },
        { "256.1.1.1", NULL },
        { "01.2.3.4", NULL },
        { " 192.0.2.1", NULL },
        { "192.0.2.1 ", NULL },
        { "192.0.2.1/32", NULL },
        { "2001:db8::1::2", NULL },
        { "fe80::1%eth0", NULL },
        { "[::1]", NULL },
        { "2001:db8::g", NULL },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = scep_name_ip(p, cases[i].in);

        if (cases[i].want) {
            if (!got || strcmp(got, cases[i].want) != 0) {
                fail_msg("'%s': got '%s', want '%s'", cases[i].in, got ? got : "(null)",
                         cases[i].want);
            }
        }
        else if (got) {
            fail_msg("'%s': got '%s', want refusal", cases[i].in, got);
        }
    }
    assert_null(scep_name_ip(p, NULL));
}

static void test_fqdn_matches(void **state)
{
    static const struct {
        const char *key, *fqdn;
        int want;
    } cases[] = {
        { "a.b.c", "a.b.c", 1 },
        { "a.b.c", "x.a.b.c", 0 },
        { "a.b.c", "b.c", 0 },
        { "*", "a", 1 },
        { "*", "localhost", 1 },
        { "*", "a.b.c", 1 },
        { "*", "", 0 },
        { "*.b.c", "a.b.c", 1 },
        { "*.b.c", "x.a.b.c", 1 },
        { "*.b.c", "b.c", 0 },
        { "*.b.c", "ab.c", 0 },
        { "*.b.c", "xb.c", 0 },
        { "*.b.c", "a.xb.c", 0 },
        { "*.b.c", ".b.c", 0 },
        { "*.b.c", "a.b.c.d", 0 },
        { "*.b.c", "c", 0 },
        { "*.c", "a.b.c", 1 },
        { "*x", "ax", 0 },
        { NULL, "a", 0 },
        { "a", NULL, 0 },
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (scep_name_matches(cases[i].key, cases[i].fqdn) != cases[i].want) {
            fail_msg("key '%s', fqdn '%s': want %d", cases[i].key ? cases[i].key : "(null)",
                     cases[i].fqdn ? cases[i].fqdn : "(null)", cases[i].want);
        }
    }
}

/* ---- verifiers ---------------------------------------------------------------------- */

#define SECRET(s) (s), (sizeof(s) - 1)

static void test_verifier(void **state)
{
    scep_verifier_t v, w, bad;

    (void)state;
    assert_int_equal(scep_verifier_make(SECRET("s3cret"), &v), APR_SUCCESS);
    assert_int_equal(v.algorithm, SCEP_VERIFIER_PBKDF2_SHA256);
    assert_int_equal(v.iterations, SCEP_VERIFIER_ITERATIONS);
    assert_true(scep_verifier_matches(&v, SECRET("s3cret")));
    /* From here on "s3cret" is remembered as verified for v: every refusal below also
     * shows that the memo accepts nothing PBKDF2 would refuse. */
    assert_true(scep_verifier_matches(&v, SECRET("s3cret")));
    assert_false(scep_verifier_matches(&v, SECRET("s3cre")));
    assert_false(scep_verifier_matches(&v, SECRET("s3cret!")));
    assert_false(scep_verifier_matches(&v, SECRET("S3cret")));
    assert_false(scep_verifier_matches(&v, "", 0));
    assert_false(scep_verifier_matches(&v, NULL, 0));
    assert_false(scep_verifier_matches(NULL, SECRET("s3cret")));

    /* The length counts, not a terminator. */
    assert_int_equal(scep_verifier_make(SECRET("a\0b"), &w), APR_SUCCESS);
    assert_true(scep_verifier_matches(&w, SECRET("a\0b")));
    assert_false(scep_verifier_matches(&w, SECRET("a")));

    /* Same secret, new salt, new hash; both still match. */
    assert_int_equal(scep_verifier_make(SECRET("s3cret"), &w), APR_SUCCESS);
    assert_memory_not_equal(v.salt, w.salt, sizeof(v.salt));
    assert_memory_not_equal(v.hash, w.hash, sizeof(v.hash));
    assert_true(scep_verifier_matches(&w, SECRET("s3cret")));

    /* An empty challenge is refused: "no challenge" is algorithm 0. */
    memset(&w, 0xff, sizeof(w));
    assert_int_equal(scep_verifier_make("", 0, &w), APR_EINVAL);
    assert_int_equal(w.algorithm, 0);
    assert_int_equal(scep_verifier_make(NULL, 5, &w), APR_EINVAL);

    /* Damaged verifiers never match, and an absurd iteration count fails at once
     * instead of hashing for minutes. */
    bad = v;
    bad.algorithm = 0;
    assert_false(scep_verifier_matches(&bad, SECRET("s3cret")));
    bad.algorithm = 99;
    assert_false(scep_verifier_matches(&bad, SECRET("s3cret")));
    bad = v;
    bad.iterations = 0;
    assert_false(scep_verifier_matches(&bad, SECRET("s3cret")));
    bad.iterations = 0xffffffffu;
    assert_false(scep_verifier_matches(&bad, SECRET("s3cret")));
    bad.iterations = SCEP_VERIFIER_ITERATIONS + 1;
    assert_false(scep_verifier_matches(&bad, SECRET("s3cret")));
    bad = v;
    bad.hash[31] ^= 1;
    assert_false(scep_verifier_matches(&bad, SECRET("s3cret")));
    bad = v;
    bad.salt[0] ^= 1;
    assert_false(scep_verifier_matches(&bad, SECRET("s3cret")));
}

/* The verifier is PBKDF2-HMAC-SHA256 as OpenSSL computes it, for challenges shorter
 * than, as long as, and longer than a SHA-256 block (HMAC hashes those first), so that
 * verifiers written by any release match and an operator can recompute one. */
static void test_verifier_is_pbkdf2(void **state)
{
    size_t lengths[] = { 1, 6, 32, 63, 64, 65, 200, 8000 };
    char *secret = malloc(8000);
    unsigned char expected[SCEP_VERIFIER_HASH_LEN];
    scep_verifier_t v, theirs;
    size_t i;

    (void)state;
    assert_non_null(secret);
    for (i = 0; i < 8000; i++) {
        secret[i] = (char)('!' + i % 90);
    }
    for (i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
        assert_int_equal(scep_verifier_make(secret, lengths[i], &v), APR_SUCCESS);
        assert_int_equal(PKCS5_PBKDF2_HMAC(secret, (int)lengths[i], v.salt, sizeof(v.salt),
                                           (int)v.iterations, EVP_sha256(), sizeof(expected),
                                           expected), 1);
        assert_memory_equal(v.hash, expected, sizeof(expected));

        /* and a verifier made by OpenSSL's PBKDF2, with a fresh salt, matches */
        theirs = v;
        assert_int_equal(RAND_bytes(theirs.salt, sizeof(theirs.salt)), 1);
        assert_int_equal(PKCS5_PBKDF2_HMAC(secret, (int)lengths[i], theirs.salt,
                                           sizeof(theirs.salt), (int)theirs.iterations,
                                           EVP_sha256(), sizeof(theirs.hash), theirs.hash),
                         1);
        assert_true(scep_verifier_matches(&theirs, secret, lengths[i]));
        assert_false(scep_verifier_matches(&theirs, secret, lengths[i] - 1 ? lengths[i] - 1
                                                                          : lengths[i] + 1));
    }
    free(secret);
}

static void test_verifier_cost(void **state)
{
    const char *bench = getenv("SCEP_BENCH");
    scep_verifier_t v[50];
    apr_time_t start, first, again;
    int i, calls = 50, matched = 0;

    (void)state;
    if (!bench || strcmp(bench, "1") != 0) {
        skip();
    }
    for (i = 0; i < calls; i++) {
        assert_int_equal(scep_verifier_make(SECRET("a-registered-challenge"), &v[i]),
                         APR_SUCCESS);
    }
    start = apr_time_now();
    for (i = 0; i < calls; i++) {
        matched += scep_verifier_matches(&v[i], SECRET("a-registered-challenge"));
    }
    first = apr_time_now() - start;
    start = apr_time_now();
    for (i = 0; i < calls; i++) {
        matched += scep_verifier_matches(&v[i], SECRET("a-registered-challenge"));
    }
    again = apr_time_now() - start;
    assert_int_equal(matched, 2 * calls);
    printf("# scep_verifier_matches, %u iterations: %.1f us the first time (PBKDF2), "
           "%.1f us again (remembered), %d verifiers\n",
           (unsigned int)SCEP_VERIFIER_ITERATIONS, (double)first / calls,
           (double)again / calls, calls);
}

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

static void test_reason_names(void **state)
{
    (void)state;
    assert_string_equal(scep_store_reason_name(1), "keyCompromise");
    assert_string_equal(scep_store_reason_name(4), "superseded");
    assert_string_equal(scep_store_reason_name(7), "unknown");
    assert_string_equal(scep_store_reason_name(-1), "unknown");
    assert_string_equal(scep_store_reason_name(11), "unknown");
    assert_int_equal(scep_store_reason_parse("keycompromise"), 1);
    assert_int_equal(scep_store_reason_parse("cessationOfOperation"), 5);
    assert_int_equal(scep_store_reason_parse("privilegeWithdrawn"), 9);
    assert_int_equal(scep_store_reason_parse("certificateHold"), -1);
    assert_int_equal(scep_store_reason_parse("cACompromise"), -1);
    assert_int_equal(scep_store_reason_parse("unknown"), -1);
    assert_int_equal(scep_store_reason_parse(""), -1);
}

/* ---- records from elsewhere ------------------------------------------------------- */

static void put_raw(fixture_t *fx, scep_dbi_e dbi, const char *key, const void *val,
                    apr_size_t vlen)
{
    scep_txn_t *txn = begin(fx, 1);

    assert_int_equal(scep_db_put(txn, dbi, key, strlen(key), val, vlen, 0), APR_SUCCESS);
    commit(txn);
}

static int never_called(void *baton, const scep_device_t *dev)
{
    (void)baton;
    fail_msg("visited %s", dev->fqdn);
    return 1;
}

static void test_newer_version(void **state)
{
    fixture_t *fx = *state;
    /* Version byte, then tag 7 (comment), length 1, "x". */
    static const unsigned char newer[] = { SCEP_DB_RECORD_VERSION + 1, 7, 0, 0, 0, 1, 'x' };
    scep_device_t sentinel, *dev = &sentinel;
    scep_transaction_t *t;
    scep_failure_t f;
    scep_txn_t *txn;

    put_raw(fx, SCEP_DBI_DEVICES, "new.example", newer, sizeof(newer));
    put_raw(fx, SCEP_DBI_FAILURES, "new.example", newer, sizeof(newer));
    put_raw(fx, SCEP_DBI_TRANSACTIONS, "tx-new", newer, sizeof(newer));
    txn = begin(fx, 0);
    assert_int_equal(scep_store_device_get(txn, fx->p, "new.example", &dev), SCEP_DB_VERSION);
    assert_null(dev);
    assert_int_equal(scep_store_device_find(txn, fx->p, "new.example", &dev), SCEP_DB_VERSION);
    assert_int_equal(scep_store_device_foreach(txn, fx->p, never_called, NULL),
                     SCEP_DB_VERSION);
    assert_int_equal(scep_store_failure_get(txn, "new.example", &f), SCEP_DB_VERSION);
    assert_int_equal(scep_store_transaction_get(txn, fx->p, "tx-new", &t), SCEP_DB_VERSION);
    scep_db_abort(txn);
}

static void test_wrong_lengths(void **state)
{
    fixture_t *fx = *state;
    unsigned char short_digest[SCEP_REQUEST_DIGEST_LEN - 1], verifier[10];
    scep_device_t *dev;
    scep_transaction_t *t;
    scep_failure_t f;
    scep_rec_t rec;
    scep_txn_t *txn;

    memset(short_digest, 1, sizeof(short_digest));
    memset(verifier, 1, sizeof(verifier));

    scep_db_rec_init(&rec, fx->p);
    scep_db_rec_put_str(&rec, 7, "a comment");
    scep_db_rec_put_bytes(&rec, 3, verifier, sizeof(verifier));
    put_raw(fx, SCEP_DBI_DEVICES, "bad.example", rec.data, rec.len);

    scep_db_rec_init(&rec, fx->p);
    scep_db_rec_put_str(&rec, 1, "issued");
    scep_db_rec_put_bytes(&rec, 2, short_digest, sizeof(short_digest));
    put_raw(fx, SCEP_DBI_TRANSACTIONS, "tx-short", rec.data, rec.len);

    /* The digest is what recognises a retry; without it the record is damaged. */
    scep_db_rec_init(&rec, fx->p);
    scep_db_rec_put_str(&rec, 1, "issued");
    put_raw(fx, SCEP_DBI_TRANSACTIONS, "tx-none", rec.data, rec.len);

    scep_db_rec_init(&rec, fx->p);
    scep_db_rec_put_bytes(&rec, 1, "abc", 3);
    put_raw(fx, SCEP_DBI_FAILURES, "bad.example", rec.data, rec.len);

    scep_db_rec_init(&rec, fx->p);
    scep_db_rec_put_bytes(&rec, 7, "a\0b", 3);
    put_raw(fx, SCEP_DBI_DEVICES, "nul.example", rec.data, rec.len);

    /* Unknown tags are skipped: a newer field does not hurt an old reader. */
    scep_db_rec_init(&rec, fx->p);
    scep_db_rec_put_str(&rec, 7, "kept");
    scep_db_rec_put_str(&rec, 200, "from the future");
    put_raw(fx, SCEP_DBI_DEVICES, "future.example", rec.data, rec.len);

    txn = begin(fx, 0);
    assert_int_equal(scep_store_device_get(txn, fx->p, "bad.example", &dev), SCEP_DB_CORRUPT);
    assert_int_equal(scep_store_device_get(txn, fx->p, "nul.example", &dev), SCEP_DB_CORRUPT);
    assert_int_equal(scep_store_transaction_get(txn, fx->p, "tx-short", &t), SCEP_DB_CORRUPT);
    assert_int_equal(scep_store_transaction_get(txn, fx->p, "tx-none", &t), SCEP_DB_CORRUPT);
    assert_int_equal(scep_store_failure_get(txn, "bad.example", &f), SCEP_DB_CORRUPT);
    assert_int_equal(scep_store_device_get(txn, fx->p, "future.example", &dev), APR_SUCCESS);
    assert_string_equal(dev->comment, "kept");
    scep_db_abort(txn);
}

/* A held transaction's record with identity_name (tag 20) and identity_where (tag 21)
 * as given (NULL, or where < 0: absent); `where_len` 0 writes the integer whole. */
static apr_status_t held_identity(fixture_t *fx, const char *id, const char *fqdn,
                                  const char *name, apr_int64_t where, apr_size_t where_len)
{
    unsigned char digest[SCEP_REQUEST_DIGEST_LEN];
    scep_transaction_t *t;
    scep_rec_t rec;
    scep_txn_t *txn;
    apr_status_t rv;

    memset(digest, 7, sizeof(digest));
    scep_db_rec_init(&rec, fx->p);
    scep_db_rec_put_str(&rec, 1, "pending");
    scep_db_rec_put_bytes(&rec, 2, digest, sizeof(digest));
    scep_db_rec_put_str(&rec, 3, fqdn);
    if (name) {
        scep_db_rec_put_str(&rec, 20, name);
    }
    if (where >= 0 && where_len) {
        scep_db_rec_put_bytes(&rec, 21, "\0\0\0\0", where_len);
    }
    else if (where >= 0) {
        scep_db_rec_put_i64(&rec, 21, where);
    }
    put_raw(fx, SCEP_DBI_TRANSACTIONS, id, rec.data, rec.len);
    txn = begin(fx, 0);
    rv = scep_store_transaction_get(txn, fx->p, id, &t);
    if (rv == APR_SUCCESS && name) {
        assert_string_equal(t->identity_name, name);
        assert_int_equal(t->identity_where, (int)where);
    }
    scep_db_abort(txn);
    return rv;
}

/* Issue 17 review F10: what binds a held request to its identity is read strictly: the
 * place must be one the key's kind is read from and the name must be the key's. */
static void test_held_identity_strict_f10(void **state)
{
    fixture_t *fx = *state;
    const apr_int64_t wrap = (apr_int64_t)1 << 32;

    assert_int_equal(held_identity(fx, "t-user", "user:alice@example.org",
                                   "alice@EXAMPLE.org", SCEP_WHERE_RFC822_NAME, 0),
                     APR_SUCCESS);
    assert_int_equal(held_identity(fx, "t-id", "id:aa:bb:cc:dd:ee:ff", "AABBCCDDEEFF",
                                   SCEP_WHERE_SERIAL_NUMBER, 0), APR_SUCCESS);
    assert_int_equal(held_identity(fx, "t-name", "name:John's iPhone", "John's iPhone",
                                   SCEP_WHERE_UNSTRUCTURED_NAME, 0), APR_SUCCESS);
    assert_int_equal(held_identity(fx, "t-old-host", "h.example.org", NULL, -1, 0),
                     APR_SUCCESS);
    assert_int_equal(held_identity(fx, "t-old-name", "name:x", NULL, -1, 0), APR_SUCCESS);

    /* a host's record carries neither */
    assert_int_equal(held_identity(fx, "t-host-n", "h.example.org", "h.example.org", -1, 0),
                     SCEP_DB_CORRUPT);
    assert_int_equal(held_identity(fx, "t-host-w", "h.example.org", NULL,
                                   SCEP_WHERE_HOST_RULES, 0), SCEP_DB_CORRUPT);
    /* places out of range, wrapped into range, or not read for the kind */
    assert_int_equal(held_identity(fx, "t-range", "user:a@example.org", "a@example.org",
                                   99, 0), SCEP_DB_CORRUPT);
    assert_int_equal(held_identity(fx, "t-wrap", "user:a@example.org", "a@example.org",
                                   wrap + SCEP_WHERE_RFC822_NAME, 0), SCEP_DB_CORRUPT);
    assert_int_equal(held_identity(fx, "t-hostrules", "user:a@example.org", "a@example.org",
                                   SCEP_WHERE_HOST_RULES, 0), SCEP_DB_CORRUPT);
    assert_int_equal(held_identity(fx, "t-serial", "user:a@example.org", "a@example.org",
                                   SCEP_WHERE_SERIAL_NUMBER, 0), SCEP_DB_CORRUPT);
    assert_int_equal(held_identity(fx, "t-dns", "name:x", "x", SCEP_WHERE_DNS_NAME, 0),
                     SCEP_DB_CORRUPT);
    assert_int_equal(held_identity(fx, "t-short", "name:x", "x", SCEP_WHERE_CN, 4),
                     SCEP_DB_CORRUPT);
    /* one without the other */
    assert_int_equal(held_identity(fx, "t-no-where", "name:x", "x", -1, 0), SCEP_DB_CORRUPT);
    assert_int_equal(held_identity(fx, "t-no-name", "name:x", NULL, SCEP_WHERE_CN, 0),
                     SCEP_DB_CORRUPT);
    /* a name that is not the key's: truncated, another, of another kind */
    assert_int_equal(held_identity(fx, "t-cut", "user:alice@example.org", "alice@example",
                                   SCEP_WHERE_RFC822_NAME, 0), SCEP_DB_CORRUPT);
    assert_int_equal(held_identity(fx, "t-other", "name:x", "y", SCEP_WHERE_CN, 0),
                     SCEP_DB_CORRUPT);
    assert_int_equal(held_identity(fx, "t-kind", "id:x", "x", SCEP_WHERE_RFC822_NAME, 0),
                     SCEP_DB_CORRUPT);
    assert_int_equal(held_identity(fx, "t-bad", "name:x", "x\x01", SCEP_WHERE_CN, 0),
                     SCEP_DB_CORRUPT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define P(f) cmocka_unit_test_setup_teardown(f, pool_setup, pool_teardown)
#define D(f) cmocka_unit_test_setup_teardown(f, db_setup, db_teardown)
        P(test_fqdn_canonical),
        P(test_ip_canonical),
        P(test_fqdn_matches),
        P(test_verifier),
        P(test_verifier_is_pbkdf2),
        P(test_verifier_cost),
        D(test_device_round_trip),
        D(test_device_foreach),
        D(test_device_find),
        D(test_device_find_kinds),
        D(test_minted),
        D(test_minted_purge),
        D(test_failure),
        D(test_transaction),
        D(test_cert),
        D(test_revoke),
        P(test_reason_names),
        D(test_newer_version),
        D(test_wrong_lengths),
        D(test_held_identity_strict_f10),
#undef P
#undef D
    };
    int failed;

    apr_initialize();
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return failed;
}

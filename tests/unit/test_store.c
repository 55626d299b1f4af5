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

#include "store_cases.h"

/* ---- canonical names ------------------------------------------------------------ */

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
        STORE_CASES(D),
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

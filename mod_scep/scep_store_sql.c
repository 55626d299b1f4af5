/* SPDX-License-Identifier: Apache-2.0 */
/* scep_store's records in PostgreSQL (see scep_store_sql.h).  One statement per call,
 * every value a parameter; bytes travel as hex.  Rows are read as strictly as LMDB
 * records: a value that does not decode, a length that is not the field's, a key that is
 * not canonical make the row SCEP_DB_CORRUPT, and nothing of it is handed out.
 *
 * Keys longer than LMDB could keep (511 bytes) are not there for a read and spoil a
 * write, as on LMDB, so that a caller meets the same results whichever engine it has.
 * Walks follow LMDB's key order: the key columns compare bytewise (COLLATE "C"). */
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_lib.h>

#include "scep_store_sql.h"
#include "scep_sql.h"
#include "scep_name.h"
#include "scep_util.h"

/* LMDB's largest key (mdb_env_get_maxkeysize with the default page size) */
#define KEY_MAX 511
/* a transaction's LMDB key: its ID, a NUL, the requester's digest */
#define TXN_SCOPED_EXTRA (1 + SCEP_REQUEST_DIGEST_LEN)

int scep_store_sql_active(scep_txn_t *txn)
{
    return scep_db_backend_txn(txn) != NULL;
}

static const char *array_param(apr_pool_t *p, const char *const *vals, int n, int stride,
                               int col);

/* ---- reading rows ------------------------------------------------------------------
 * As scep_store.c's reader: the first problem is kept, each decoder reads its columns in
 * a straight line and checks once at the end. */

typedef struct row_reader_t {
    const scep_sql_row_t *row;
    apr_pool_t *p;                      /* where the record's values go */
    int copy;                           /* the row's values live elsewhere (a walk's batch) */
    apr_status_t rv;
} row_reader_t;

static void reader_start(row_reader_t *r, const scep_sql_row_t *row, int ncols, apr_pool_t *p,
                         int copy)
{
    r->row = row;
    r->p = p;
    r->copy = copy;
    r->rv = row->ncols == ncols ? APR_SUCCESS : SCEP_DB_CORRUPT;
}

static void damaged(row_reader_t *r)
{
    if (r->rv == APR_SUCCESS) {
        r->rv = SCEP_DB_CORRUPT;
    }
}

static const char *col_str(row_reader_t *r, int i)
{
    const char *v = r->rv == APR_SUCCESS ? r->row->val[i] : NULL;

    return v && r->copy ? apr_pstrdup(r->p, v) : v;
}

/* A NOT NULL number: anything else is damage. */
static apr_int64_t col_i64(row_reader_t *r, int i)
{
    const char *v = r->rv == APR_SUCCESS ? r->row->val[i] : NULL;
    char *end = NULL;
    apr_int64_t n;

    if (!v || !*v) {
        damaged(r);
        return 0;
    }
    n = apr_strtoi64(v, &end, 10);
    if (!end || *end != '\0') {
        damaged(r);
        return 0;
    }
    return n;
}

static int col_bool(row_reader_t *r, int i)
{
    const char *v = r->rv == APR_SUCCESS ? r->row->val[i] : NULL;

    if (!v || (strcmp(v, "t") != 0 && strcmp(v, "f") != 0)) {
        damaged(r);
        return 0;
    }
    return *v == 't';
}

/* Bytes (hex from encode()); NULL for SQL NULL, damage for what is not hex. */
static const unsigned char *col_bytes(row_reader_t *r, int i, apr_size_t *len)
{
    const char *v = r->rv == APR_SUCCESS ? r->row->val[i] : NULL;
    const unsigned char *out;

    *len = 0;
    if (!v) {
        return NULL;
    }
    if (!(out = scep_sql_unhex(r->p, v, len))) {
        damaged(r);
    }
    return out;
}

/* Bytes of exactly `len` when present. */
static const unsigned char *col_fixed(row_reader_t *r, int i, apr_size_t len)
{
    apr_size_t got;
    const unsigned char *v = col_bytes(r, i, &got);

    if (v && got != len) {
        damaged(r);
        return NULL;
    }
    return v;
}

/* ---- keys and parameters ------------------------------------------------------------ */

static int key_fits(const char *key, apr_size_t extra)
{
    apr_size_t n = key ? strlen(key) : 0;

    return n > 0 && n + extra <= KEY_MAX;
}

/* A key LMDB could not have kept cannot be written: the write spoils the transaction. */
static apr_status_t unstorable(scep_txn_t *txn)
{
    return scep_db_txn_fail(txn, APR_EINVAL);
}

/* Serials are kept as scepreg prints them: upper-case hex of whole bytes.  NULL for what
 * is no serial's hex (the callers' APR_EINVAL, as scep_store.c's serial_key). */
static const char *serial_text(apr_pool_t *p, const char *hex)
{
    apr_size_t n = hex ? strlen(hex) : 0, i;
    char *s;

    if (n == 0 || n % 2) {
        return NULL;
    }
    s = apr_pstrmemdup(p, hex, n);
    for (i = 0; i < n; i++) {
        if (scep_util_hex_digit(s[i]) < 0) {
            return NULL;
        }
        s[i] = (char)apr_toupper(s[i]);
    }
    return s;
}

static int serial_canonical(const char *s)
{
    apr_size_t n = s ? strlen(s) : 0, i;

    if (n == 0 || n % 2 || n > 2 * KEY_MAX) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F'))) {
            return 0;
        }
    }
    return 1;
}

static const char *i64(apr_pool_t *p, apr_int64_t v)
{
    return scep_sql_i64(p, v);
}

/* One DELETE by one key; SCEP_DB_NOTFOUND when no row went, as LMDB's delete. */
static apr_status_t delete_one(scep_txn_t *txn, const char *what, const char *sql,
                               const char *key)
{
    const char *args[1];
    apr_status_t rv;
    int n = 0;

    args[0] = key;
    rv = scep_sql_exec(txn, what, sql, 1, args, &n);
    return rv == APR_SUCCESS && n == 0 ? SCEP_DB_NOTFOUND : rv;
}

/* One row of NOT NULL numbers into out[0..n-1], read in a pool of its own: the callers
 * (counters, counts, the CRL state) are handed none.  out is zeroed unless APR_SUCCESS. */
static apr_status_t select_numbers(scep_txn_t *txn, const char *what, const char *sql,
                                   int nargs, const char *const *args, apr_int64_t *out,
                                   int n)
{
    apr_pool_t *p;
    scep_sql_row_t *row;
    row_reader_t r;
    apr_status_t rv;
    int i;

    memset(out, 0, sizeof(*out) * (apr_size_t)n);
    if (apr_pool_create(&p, NULL) != APR_SUCCESS) {
        return scep_db_txn_fail(txn, APR_ENOMEM);
    }
    rv = scep_sql_select_one(txn, p, what, sql, nargs, args, &row);
    if (rv == APR_SUCCESS) {
        reader_start(&r, row, n, p, 0);
        for (i = 0; i < n; i++) {
            out[i] = col_i64(&r, i);
        }
        if ((rv = r.rv) != APR_SUCCESS) {
            memset(out, 0, sizeof(*out) * (apr_size_t)n);
        }
    }
    apr_pool_destroy(p);
    return rv;
}

static apr_status_t count_rows(scep_txn_t *txn, const char *what, const char *sql,
                               apr_size_t *count)
{
    apr_int64_t n;
    apr_status_t rv = select_numbers(txn, what, sql, 0, NULL, &n, 1);

    *count = rv == APR_SUCCESS && n > 0 ? (apr_size_t)n : 0;
    return rv;
}

/* ---- walks ------------------------------------------------------------------------
 * Rows come through scep_sql_foreach's cursor; each is decoded and handed to the caller's
 * function of its kind (one of the three is set).  A record lives in `pool`: the caller's
 * for devices (as on LMDB), else a scratch pool cleared once fn returns. */

typedef struct row_walk_t {
    apr_pool_t *pool;
    int scratch;
    scep_device_visit_fn device_fn;
    scep_transaction_visit_fn transaction_fn;
    scep_cert_visit_fn cert_fn;
    void *baton;
    apr_status_t rv;
} row_walk_t;

static apr_status_t device_row(apr_pool_t *p, const scep_sql_row_t *row, int copy,
                               scep_device_t **out);
static apr_status_t transaction_row(apr_pool_t *p, const scep_sql_row_t *row, int copy,
                                    scep_transaction_t **out);
static apr_status_t cert_row(apr_pool_t *p, const scep_sql_row_t *row, int copy,
                             scep_cert_rec_t **out);

static int row_visit(void *baton, const scep_sql_row_t *row)
{
    row_walk_t *walk = baton;
    scep_device_t *dev;
    scep_transaction_t *t;
    scep_cert_rec_t *c;
    int stop = 1;

    if (walk->device_fn) {
        walk->rv = device_row(walk->pool, row, 1, &dev);
        stop = walk->rv != APR_SUCCESS || walk->device_fn(walk->baton, dev);
    }
    else if (walk->transaction_fn) {
        walk->rv = transaction_row(walk->pool, row, 1, &t);
        stop = walk->rv != APR_SUCCESS || walk->transaction_fn(walk->baton, t);
    }
    else if (walk->cert_fn) {
        walk->rv = cert_row(walk->pool, row, 1, &c);
        stop = walk->rv != APR_SUCCESS || walk->cert_fn(walk->baton, c);
    }
    if (walk->scratch) {
        apr_pool_clear(walk->pool);
    }
    return stop;
}

static apr_status_t walk_rows(scep_txn_t *txn, apr_pool_t *p, int scratch, const char *what,
                              const char *sql, int nargs, const char *const *args,
                              row_walk_t *walk)
{
    apr_status_t rv;

    walk->pool = p;
    walk->scratch = scratch;
    if (scratch && apr_pool_create(&walk->pool, p) != APR_SUCCESS) {
        return APR_ENOMEM;
    }
    rv = scep_sql_foreach(txn, p, what, sql, nargs, args, row_visit, walk);
    if (scratch) {
        apr_pool_destroy(walk->pool);
    }
    return rv != APR_SUCCESS ? rv : walk->rv;
}

/* ---- devices ------------------------------------------------------------------------ */

/* The addresses travel joined by commas, a NULL element as an empty one, with their number
 * beside them: an element that is empty, not an address in its canonical form, or that
 * holds a comma itself then shows, and the row is damaged rather than a registration
 * that lost its address binding. */
#define DEVICE_COLS "key, array_to_string(ips, ',', ''), serial, verifier_algorithm, " \
    "verifier_iterations, encode(verifier_salt, 'hex'), encode(verifier_hash, 'hex'), " \
    "flags, expires, profile, comment, created, updated, last_serial, last_not_after, " \
    "last_enrolled, enrollments, cardinality(ips)"
#define DEVICE_NCOLS 18

/* Splits the joined addresses into `out`; 0 when the list is not `count` canonical ones. */
static int ips_read(apr_pool_t *p, const char *joined, apr_int64_t count,
                    apr_array_header_t *out)
{
    const char *start = joined, *comma;

    if (count == 0) {
        return *joined == '\0';
    }
    for (;;) {
        const char *ip, *canonical;

        comma = strchr(start, ',');
        ip = comma ? apr_pstrmemdup(p, start, (apr_size_t)(comma - start))
                   : apr_pstrdup(p, start);
        canonical = *ip ? scep_name_ip(p, ip) : NULL;
        if (!canonical || strcmp(canonical, ip) != 0) {
            return 0;
        }
        APR_ARRAY_PUSH(out, const char *) = ip;
        if (!comma) {
            break;
        }
        start = comma + 1;
    }
    return out->nelts == count;
}

static apr_status_t device_row(apr_pool_t *p, const scep_sql_row_t *row, int copy,
                               scep_device_t **out)
{
    scep_device_t *dev = scep_store_device_new(p, NULL);
    const unsigned char *salt, *hash;
    apr_size_t salt_len, hash_len;
    apr_int64_t algorithm, iterations, flags;
    const char *ips, *canonical;
    row_reader_t r;

    reader_start(&r, row, DEVICE_NCOLS, p, copy);
    dev->fqdn = col_str(&r, 0);
    ips = col_str(&r, 1);
    if (!ips || !ips_read(p, ips, col_i64(&r, 17), dev->ips)) {
        damaged(&r);
    }
    dev->serial = col_str(&r, 2);
    algorithm = col_i64(&r, 3);
    iterations = col_i64(&r, 4);
    salt = col_bytes(&r, 5, &salt_len);
    hash = col_bytes(&r, 6, &hash_len);
    /* no verifier is algorithm 0 and neither part; anything else must be a whole one */
    if (r.rv == APR_SUCCESS && (algorithm != 0 || salt || hash)
        && scep_store_verifier_from(algorithm, iterations, salt, salt_len, hash, hash_len,
                                    &dev->verifier) != APR_SUCCESS) {
        damaged(&r);
    }
    flags = col_i64(&r, 7);
    if (flags < 0 || flags > (apr_int64_t)0xffffffffu) {
        damaged(&r);
    }
    dev->flags = (unsigned int)flags;
    dev->expires = col_i64(&r, 8);
    dev->profile = col_str(&r, 9);
    dev->comment = col_str(&r, 10);
    dev->created = col_i64(&r, 11);
    dev->updated = col_i64(&r, 12);
    dev->last_serial = col_str(&r, 13);
    dev->last_not_after = col_i64(&r, 14);
    dev->last_enrolled = col_i64(&r, 15);
    dev->enrollments = col_i64(&r, 16);
    /* a key in another spelling is a registration no lookup would find: a DBA's edit
     * gone wrong, not a device */
    if (r.rv == APR_SUCCESS
        && (!dev->fqdn || !(canonical = scep_name_key(p, dev->fqdn, 1, NULL))
            || strcmp(canonical, dev->fqdn) != 0)) {
        damaged(&r);
    }
    if (r.rv == APR_SUCCESS) {
        *out = dev;
    }
    return r.rv;
}

apr_status_t scep_store_sql_device_get(scep_txn_t *txn, apr_pool_t *p, const char *key,
                                       scep_device_t **dev)
{
    const char *args[1];
    scep_sql_row_t *row;
    apr_status_t rv;

    if (!key_fits(key, 0)) {
        return SCEP_DB_NOTFOUND;
    }
    args[0] = key;
    rv = scep_sql_select_one(txn, p, "reading a registration",
                             "SELECT " DEVICE_COLS " FROM scep_devices WHERE key = %s",
                             1, args, &row);
    return rv == APR_SUCCESS ? device_row(p, row, 0, dev) : rv;
}

apr_status_t scep_store_sql_device_find(scep_txn_t *txn, apr_pool_t *p,
                                        const apr_array_header_t *keys, scep_device_t **dev)
{
    const char **args = apr_palloc(p, sizeof(*args) * (apr_size_t)(keys->nelts + 1));
    const char *list[1];
    apr_array_header_t *rows;
    apr_status_t rv;
    int i, j, n = 0;

    for (i = 0; i < keys->nelts; i++) {
        const char *key = APR_ARRAY_IDX(keys, i, const char *);

        if (key_fits(key, 0)) {
            args[n++] = key;
        }
    }
    if (n == 0) {
        return SCEP_DB_NOTFOUND;
    }
    /* the keys as one array parameter: one statement text whatever the name's number of
     * labels, so that a name a client invents never makes the session prepare another */
    list[0] = array_param(p, args, n, 1, 0);
    rv = scep_sql_select(txn, p, "finding a registration",
                         "SELECT " DEVICE_COLS " FROM scep_devices "
                         "WHERE key = ANY (%s::text[])", 1, list, &rows);
    /* the most specific key that has a row decides, damaged or not, as one get after
     * the other would */
    for (j = 0; rv == APR_SUCCESS && j < n; j++) {
        for (i = 0; i < rows->nelts; i++) {
            const scep_sql_row_t *row = APR_ARRAY_IDX(rows, i, scep_sql_row_t *);

            if (row->ncols > 0 && row->val[0] && strcmp(row->val[0], args[j]) == 0) {
                return device_row(p, row, 0, dev);
            }
        }
    }
    return rv == APR_SUCCESS ? SCEP_DB_NOTFOUND : rv;
}

#define DEVICE_NARGS 17
/* One registration's values, in the order of DEVICE_INSERT's columns. */
#define DEVICE_VALUES "(%s, string_to_array(%s, ','), %s, %lld, %lld, decode(%s, 'hex'), " \
    "decode(%s, 'hex'), %lld, %lld, %s, %s, %lld, %lld, %s, %lld, %lld, %lld)"
#define DEVICE_INSERT_COLUMNS "INSERT INTO scep_devices (key, ips, serial, " \
    "verifier_algorithm, verifier_iterations, verifier_salt, verifier_hash, flags, expires, " \
    "profile, comment, created, updated, last_serial, last_not_after, last_enrolled, " \
    "enrollments) "
#define DEVICE_UPSERT " ON CONFLICT (key) DO UPDATE SET ips = EXCLUDED.ips, " \
    "serial = EXCLUDED.serial, verifier_algorithm = EXCLUDED.verifier_algorithm, " \
    "verifier_iterations = EXCLUDED.verifier_iterations, " \
    "verifier_salt = EXCLUDED.verifier_salt, verifier_hash = EXCLUDED.verifier_hash, " \
    "flags = EXCLUDED.flags, expires = EXCLUDED.expires, profile = EXCLUDED.profile, " \
    "comment = EXCLUDED.comment, created = EXCLUDED.created, updated = EXCLUDED.updated, " \
    "last_serial = EXCLUDED.last_serial, last_not_after = EXCLUDED.last_not_after, " \
    "last_enrolled = EXCLUDED.last_enrolled, enrollments = EXCLUDED.enrollments"

/* The DEVICE_NARGS values of a registration; 0 when its key is one LMDB could not keep. */
static int device_args(apr_pool_t *p, const scep_device_t *dev, const char **args)
{
    const scep_verifier_t *v = &dev->verifier;
    const char *ips = "";
    int i;

    if (!key_fits(dev->fqdn, 0)) {
        return 0;
    }
    for (i = 0; dev->ips && i < dev->ips->nelts; i++) {
        const char *ip = APR_ARRAY_IDX(dev->ips, i, const char *);

        ips = i ? apr_pstrcat(p, ips, ",", ip, NULL) : ip;
    }
    args[0] = dev->fqdn;
    args[1] = ips;
    args[2] = dev->serial;
    args[3] = i64(p, v->algorithm);
    args[4] = i64(p, v->algorithm ? (apr_int64_t)v->iterations : 0);
    args[5] = v->algorithm ? scep_sql_hex(p, v->salt, sizeof(v->salt)) : NULL;
    args[6] = v->algorithm ? scep_sql_hex(p, v->hash, sizeof(v->hash)) : NULL;
    args[7] = i64(p, dev->flags);
    args[8] = i64(p, dev->expires);
    args[9] = dev->profile;
    args[10] = dev->comment;
    args[11] = i64(p, dev->created);
    args[12] = i64(p, dev->updated);
    args[13] = dev->last_serial;
    args[14] = i64(p, dev->last_not_after);
    args[15] = i64(p, dev->last_enrolled);
    args[16] = i64(p, dev->enrollments);
    return 1;
}

apr_status_t scep_store_sql_device_put(scep_txn_t *txn, apr_pool_t *p,
                                       const scep_device_t *dev)
{
    const char *args[DEVICE_NARGS];

    if (!device_args(p, dev, args)) {
        return unstorable(txn);
    }
    return scep_sql_exec(txn, "writing a registration",
                         DEVICE_INSERT_COLUMNS "VALUES " DEVICE_VALUES DEVICE_UPSERT,
                         DEVICE_NARGS, args, NULL);
}

apr_status_t scep_store_sql_device_delete(scep_txn_t *txn, const char *key)
{
    return key_fits(key, 0) ? delete_one(txn, "deleting a registration",
                                         "DELETE FROM scep_devices WHERE key = %s", key)
                            : SCEP_DB_NOTFOUND;
}

apr_status_t scep_store_sql_device_foreach(scep_txn_t *txn, apr_pool_t *p,
                                           scep_device_visit_fn fn, void *baton)
{
    row_walk_t walk;

    memset(&walk, 0, sizeof(walk));
    walk.device_fn = fn;
    walk.baton = baton;
    /* into the caller's pool, as the LMDB walk does */
    return walk_rows(txn, p, 0, "listing registrations",
                     "SELECT " DEVICE_COLS " FROM scep_devices ORDER BY key COLLATE \"C\"",
                     0, NULL, &walk);
}

/* ---- minted challenges ----------------------------------------------------------------- */

apr_status_t scep_store_sql_minted_insert(scep_txn_t *txn, apr_pool_t *p,
                                          const unsigned char *key, const scep_minted_t *m)
{
    const char *args[5];
    apr_status_t rv;
    int n = 0;

    args[0] = scep_sql_hex(p, key, 32);
    args[1] = i64(p, m->created);
    args[2] = i64(p, m->expires);
    args[3] = m->fqdn;
    args[4] = m->profile;
    rv = scep_sql_exec(txn, "minting a challenge",
                       "INSERT INTO scep_challenges (digest, created, expires, fqdn, profile) "
                       "VALUES (decode(%s, 'hex'), %lld, %lld, %s, %s) "
                       "ON CONFLICT (digest) DO NOTHING", 5, args, &n);
    /* as LMDB's NOOVERWRITE: the transaction keeps the refusal */
    return rv == APR_SUCCESS && n == 0 ? scep_db_txn_fail(txn, SCEP_DB_EXISTS) : rv;
}

#define MINTED_COLS "created, expires, fqdn, profile"

/* The columns of MINTED_COLS from `first` on. */
static scep_minted_t *minted_row(row_reader_t *r, int first)
{
    scep_minted_t *m = apr_pcalloc(r->p, sizeof(*m));

    m->created = col_i64(r, first);
    m->expires = col_i64(r, first + 1);     /* one without a time would live for ever */
    m->fqdn = col_str(r, first + 2);
    m->profile = col_str(r, first + 3);
    return m;
}

apr_status_t scep_store_sql_minted_get(scep_txn_t *txn, apr_pool_t *p,
                                       const unsigned char *key, scep_minted_t **rec)
{
    const char *args[1];
    scep_sql_row_t *row;
    scep_minted_t *m;
    row_reader_t r;
    apr_status_t rv;

    args[0] = scep_sql_hex(p, key, 32);
    rv = scep_sql_select_one(txn, p, "reading a minted challenge",
                             "SELECT " MINTED_COLS " FROM scep_challenges "
                             "WHERE digest = decode(%s, 'hex')", 1, args, &row);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    reader_start(&r, row, 4, p, 0);
    m = minted_row(&r, 0);
    if (r.rv == APR_SUCCESS) {
        *rec = m;
    }
    return r.rv;
}

apr_status_t scep_store_sql_minted_delete(scep_txn_t *txn, const unsigned char *key)
{
    char hex[65];
    int i;

    /* no pool here: the digest's hex on the stack */
    for (i = 0; i < 32; i++) {
        hex[2 * i] = "0123456789abcdef"[key[i] >> 4];
        hex[2 * i + 1] = "0123456789abcdef"[key[i] & 0xf];
    }
    hex[64] = '\0';
    return delete_one(txn, "consuming a minted challenge",
                      "DELETE FROM scep_challenges WHERE digest = decode(%s, 'hex')", hex);
}

apr_status_t scep_store_sql_minted_purge(scep_txn_t *txn, apr_pool_t *p, apr_int64_t now,
                                         apr_size_t *removed)
{
    const char *args[1];
    apr_status_t rv;
    int n = 0;

    args[0] = i64(p, now);
    rv = scep_sql_exec(txn, "purging expired challenges",
                       "DELETE FROM scep_challenges WHERE expires <= %lld", 1, args, &n);
    *removed = rv == APR_SUCCESS && n > 0 ? (apr_size_t)n : 0;
    return rv;
}

apr_status_t scep_store_sql_minted_count(scep_txn_t *txn, apr_size_t *count)
{
    return count_rows(txn, "counting minted challenges",
                      "SELECT count(*) FROM scep_challenges", count);
}

/* ---- failure counters ------------------------------------------------------------------ */

#define FAILURE_COLS "count, last, locked_until, period"

/* The columns of FAILURE_COLS from `first` on. */
static apr_status_t failure_row(row_reader_t *r, int first, scep_failure_t *f)
{
    f->count = col_i64(r, first);
    f->last = col_i64(r, first + 1);
    f->locked_until = col_i64(r, first + 2);
    f->period = col_i64(r, first + 3);
    return r->rv;
}

apr_status_t scep_store_sql_failure_get(scep_txn_t *txn, const char *key, scep_failure_t *f)
{
    const char *args[1];
    apr_int64_t v[4];
    apr_status_t rv;

    memset(f, 0, sizeof(*f));
    if (!key_fits(key, 0)) {
        return SCEP_DB_NOTFOUND;
    }
    args[0] = key;
    rv = select_numbers(txn, "reading a failure counter",
                        "SELECT " FAILURE_COLS " FROM scep_failures "
                        "WHERE name = %s", 1, args, v, 4);
    if (rv == APR_SUCCESS) {
        f->count = v[0];
        f->last = v[1];
        f->locked_until = v[2];
        f->period = v[3];
    }
    return rv;
}

apr_status_t scep_store_sql_failure_put(scep_txn_t *txn, apr_pool_t *p, const char *key,
                                        const scep_failure_t *f)
{
    const char *args[5];

    if (!key_fits(key, 0)) {
        return unstorable(txn);
    }
    args[0] = key;
    args[1] = i64(p, f->count);
    args[2] = i64(p, f->last);
    args[3] = i64(p, f->locked_until);
    args[4] = i64(p, f->period);
    return scep_sql_exec(txn, "writing a failure counter",
                         "INSERT INTO scep_failures (name, count, last, locked_until, period) "
                         "VALUES (%s, %lld, %lld, %lld, %lld) ON CONFLICT (name) DO UPDATE SET "
                         "count = EXCLUDED.count, last = EXCLUDED.last, "
                         "locked_until = EXCLUDED.locked_until, period = EXCLUDED.period",
                         5, args, NULL);
}

apr_status_t scep_store_sql_failure_clear(scep_txn_t *txn, const char *key)
{
    return key_fits(key, 0) ? delete_one(txn, "clearing a failure counter",
                                         "DELETE FROM scep_failures WHERE name = %s", key)
                            : SCEP_DB_NOTFOUND;
}

apr_status_t scep_store_sql_failure_get_pair(scep_txn_t *txn, apr_pool_t *p, const char *a,
                                             const char *b, scep_failure_t *fa, int *found_a,
                                             scep_failure_t *fb, int *found_b)
{
    const char *args[2];
    apr_array_header_t *rows;
    row_reader_t r;
    apr_status_t rv;
    int i;

    /* A name too long to store has no counter, as in scep_store_sql_failure_get. */
    args[0] = key_fits(a, 0) ? a : "";
    args[1] = key_fits(b, 0) ? b : "";
    rv = scep_sql_select(txn, p, "reading two failure counters",
                         "SELECT name, " FAILURE_COLS " FROM scep_failures "
                         "WHERE name IN (%s, %s)", 2, args, &rows);
    for (i = 0; rv == APR_SUCCESS && i < rows->nelts; i++) {
        const char *name;

        reader_start(&r, APR_ARRAY_IDX(rows, i, scep_sql_row_t *), 5, p, 0);
        name = col_str(&r, 0);
        if (name && *args[0] && strcmp(name, args[0]) == 0 && !*found_a) {
            *found_a = failure_row(&r, 1, fa) == APR_SUCCESS;
        }
        else if (name && *args[1] && strcmp(name, args[1]) == 0 && !*found_b) {
            *found_b = failure_row(&r, 1, fb) == APR_SUCCESS;
        }
        else {
            damaged(&r);
        }
        rv = r.rv;
    }
    if (rv != APR_SUCCESS) {
        *found_a = *found_b = 0;
        memset(fa, 0, sizeof(*fa));
        memset(fb, 0, sizeof(*fb));
    }
    return rv;
}

apr_status_t scep_store_sql_failure_purge(scep_txn_t *txn, apr_pool_t *p, apr_int64_t now,
                                          apr_int64_t idle, apr_size_t *removed)
{
    const char *args[3];
    apr_status_t rv;
    int n = 0;

    args[0] = i64(p, now);
    args[1] = i64(p, idle);
    args[2] = args[0];
    rv = scep_sql_exec(txn, "purging failure counters",
                       "DELETE FROM scep_failures WHERE locked_until <= %lld "
                       "AND last + GREATEST(period, %lld) <= %lld", 3, args, &n);
    *removed = rv == APR_SUCCESS && n > 0 ? (apr_size_t)n : 0;
    return rv;
}

apr_status_t scep_store_sql_failure_count(scep_txn_t *txn, apr_size_t *count)
{
    return count_rows(txn, "counting failure counters", "SELECT count(*) FROM scep_failures",
                      count);
}

/* count(*) reads every row (0.4 s for a million on this two-core machine) while the
 * writers' lock is held; the statistics' live-row count costs one lookup */
apr_status_t scep_store_sql_failure_count_estimate(scep_txn_t *txn, apr_size_t *count)
{
    return count_rows(txn, "estimating the failure counters",
                      "SELECT coalesce((SELECT n_live_tup FROM pg_stat_user_tables "
                      "WHERE relid = 'scep_failures'::regclass), 0)", count);
}

/* ---- transactions ---------------------------------------------------------------------- */

#define TXN_COLS "transaction_id, encode(requester, 'hex'), state, " \
    "encode(request_digest, 'hex'), fqdn, serial, created, encode(request, 'hex'), " \
    "grant_kind, registration, ips, serial_number, renews, encode(signer_key, 'hex'), " \
    "client_ip, subject, decided_at, decided_by, reason, upstream_pending, endpoint, " \
    "identity_name, identity_where"
#define TXN_NCOLS 23
#define TXN_ORDER " ORDER BY transaction_id COLLATE \"C\", requester"

static int known_state(const char *state)
{
    static const char *const states[] = {
        SCEP_TXN_ISSUED, SCEP_TXN_PENDING, SCEP_TXN_APPROVED, SCEP_TXN_REJECTED,
        SCEP_TXN_EXPIRED, SCEP_TXN_UPSTREAM
    };
    apr_size_t i;

    for (i = 0; state && i < sizeof(states) / sizeof(states[0]); i++) {
        if (strcmp(state, states[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static apr_status_t transaction_row(apr_pool_t *p, const scep_sql_row_t *row, int copy,
                                    scep_transaction_t **out)
{
    scep_transaction_t *t = apr_pcalloc(p, sizeof(*t));
    const unsigned char *requester, *digest, *signer_key;
    apr_size_t requester_len, request_len;
    apr_int64_t grant_kind, where;
    row_reader_t r;

    reader_start(&r, row, TXN_NCOLS, p, copy);
    t->transaction_id = col_str(&r, 0);
    requester = col_bytes(&r, 1, &requester_len);
    if (!requester || (requester_len != 0 && requester_len != SCEP_REQUEST_DIGEST_LEN)
        || !key_fits(t->transaction_id, requester_len ? TXN_SCOPED_EXTRA : 0)) {
        damaged(&r);
    }
    t->bare_key = requester_len == 0;
    t->state = col_str(&r, 2);
    /* the digest tells a retry from another request under the same ID: without it the
     * record is damaged, not merely old */
    if ((digest = col_fixed(&r, 3, SCEP_REQUEST_DIGEST_LEN)) != NULL) {
        memcpy(t->request_digest, digest, SCEP_REQUEST_DIGEST_LEN);
    }
    else {
        damaged(&r);
    }
    t->fqdn = col_str(&r, 4);
    t->serial = col_str(&r, 5);
    t->created = col_i64(&r, 6);
    t->request = col_bytes(&r, 7, &request_len);
    t->request_len = t->request ? request_len : 0;
    if (t->request_len == 0) {
        t->request = NULL;
    }
    grant_kind = col_i64(&r, 8);
    t->grant_kind = (int)grant_kind;
    t->registration = col_str(&r, 9);
    t->ips = col_str(&r, 10);
    t->serial_number = col_str(&r, 11);
    t->renews = col_str(&r, 12);
    if ((signer_key = col_fixed(&r, 13, SCEP_REQUEST_DIGEST_LEN)) != NULL) {
        memcpy(t->signer_key, signer_key, SCEP_REQUEST_DIGEST_LEN);
        t->has_signer_key = 1;
    }
    t->client_ip = col_str(&r, 14);
    t->subject = col_str(&r, 15);
    t->decided_at = col_i64(&r, 16);
    t->decided_by = col_str(&r, 17);
    t->reason = col_str(&r, 18);
    t->upstream_pending = col_bool(&r, 19);
    t->endpoint = col_str(&r, 20);
    t->identity_name = col_str(&r, 21);
    where = col_i64(&r, 22);
    t->identity_where = (int)where;
    /* the table's CHECK keeps the states this build knows; a row past it is damage */
    if (r.rv == APR_SUCCESS && (!known_state(t->state) || grant_kind != t->grant_kind)) {
        damaged(&r);
    }
    if (r.rv == APR_SUCCESS) {
        r.rv = scep_store_transaction_check(p, t, t->identity_name != NULL, where != 0, where,
                                            requester_len ? requester : NULL);
    }
    if (r.rv == APR_SUCCESS) {
        *out = t;
    }
    return r.rv;
}

apr_status_t scep_store_sql_transaction_get_for(scep_txn_t *txn, apr_pool_t *p,
                                                const char *id,
                                                const unsigned char *requester,
                                                scep_transaction_t **t)
{
    const char *args[2];
    scep_sql_row_t *row;
    apr_status_t rv;

    if (!key_fits(id, requester ? TXN_SCOPED_EXTRA : 0)) {
        return SCEP_DB_NOTFOUND;
    }
    args[0] = id;
    /* the requester's own record, else one from before requesters were kept (under the
     * ID alone): one statement, the requester's first */
    args[1] = requester ? scep_sql_hex(p, requester, SCEP_REQUEST_DIGEST_LEN) : "";
    rv = scep_sql_select_one(txn, p, "reading a transaction",
                             "SELECT " TXN_COLS " FROM scep_transactions "
                             "WHERE transaction_id = %s AND requester IN "
                             "(decode(%s, 'hex'), '\\x'::bytea) "
                             "ORDER BY length(requester) DESC LIMIT 1", 2, args, &row);
    return rv == APR_SUCCESS ? transaction_row(p, row, 0, t) : rv;
}

apr_status_t scep_store_sql_transaction_get(scep_txn_t *txn, apr_pool_t *p, const char *id,
                                            scep_transaction_t **t)
{
    const char *args[1];
    apr_array_header_t *rows;
    scep_transaction_t *found = NULL;
    apr_status_t rv;
    int i;

    if (!key_fits(id, 0)) {
        return SCEP_DB_NOTFOUND;
    }
    args[0] = id;
    /* two rows are enough to know the ID is not one requester's */
    rv = scep_sql_select(txn, p, "reading a transaction by its ID",
                         "SELECT " TXN_COLS " FROM scep_transactions WHERE transaction_id = %s"
                         TXN_ORDER " LIMIT 2", 1, args, &rows);
    for (i = 0; rv == APR_SUCCESS && i < rows->nelts; i++) {
        rv = transaction_row(p, APR_ARRAY_IDX(rows, i, scep_sql_row_t *), 0, &found);
    }
    if (rv == APR_SUCCESS) {
        rv = rows->nelts == 0 ? SCEP_DB_NOTFOUND : rows->nelts > 1 ? SCEP_DB_EXISTS
             : APR_SUCCESS;
    }
    if (rv == APR_SUCCESS) {
        *t = found;
    }
    return rv;
}

/* The requester a record is kept under: its signer key, or nothing for a record without
 * one or read from under the bare ID (scep_store.c's transaction_key). */
static const char *requester_of(apr_pool_t *p, const scep_transaction_t *t)
{
    return t->has_signer_key && !t->bare_key
           ? scep_sql_hex(p, t->signer_key, SCEP_REQUEST_DIGEST_LEN) : "";
}

apr_status_t scep_store_sql_transaction_reread(scep_txn_t *txn, apr_pool_t *p,
                                               const scep_transaction_t *t,
                                               scep_transaction_t **fresh)
{
    const char *args[2];
    scep_sql_row_t *row;
    apr_status_t rv;

    args[0] = t->transaction_id;
    args[1] = requester_of(p, t);
    if (!key_fits(args[0], *args[1] ? TXN_SCOPED_EXTRA : 0)) {
        return SCEP_DB_NOTFOUND;
    }
    rv = scep_sql_select_one(txn, p, "reading a transaction again",
                             "SELECT " TXN_COLS " FROM scep_transactions "
                             "WHERE transaction_id = %s AND requester = decode(%s, 'hex')",
                             2, args, &row);
    return rv == APR_SUCCESS ? transaction_row(p, row, 0, fresh) : rv;
}

apr_status_t scep_store_sql_transaction_walk(scep_txn_t *txn, apr_pool_t *p, int held_only,
                                             scep_transaction_visit_fn fn, void *baton)
{
    row_walk_t walk;

    memset(&walk, 0, sizeof(walk));
    walk.transaction_fn = fn;
    walk.baton = baton;
    return walk_rows(txn, p, 1, held_only ? "listing held transactions"
                                          : "listing transactions",
                     held_only
                     ? "SELECT " TXN_COLS " FROM scep_transactions "
                       "WHERE state <> 'issued'" TXN_ORDER
                     : "SELECT " TXN_COLS " FROM scep_transactions" TXN_ORDER,
                     0, NULL, &walk);
}

apr_status_t scep_store_sql_transaction_put(scep_txn_t *txn, apr_pool_t *p,
                                            const scep_transaction_t *t)
{
    const char *args[23];
    int has_request = t->request && t->request_len;

    args[0] = t->transaction_id;
    args[1] = requester_of(p, t);
    if (!key_fits(args[0], *args[1] ? TXN_SCOPED_EXTRA : 0)) {
        return unstorable(txn);
    }
    args[2] = t->state;
    args[3] = scep_sql_hex(p, t->request_digest, SCEP_REQUEST_DIGEST_LEN);
    args[4] = t->fqdn;
    args[5] = t->serial;
    args[6] = i64(p, t->created);
    args[7] = has_request ? scep_sql_hex(p, t->request, t->request_len) : NULL;
    /* kept only with the request it belongs to, as the LMDB record does */
    args[8] = i64(p, has_request ? t->grant_kind : 0);
    args[9] = t->registration;
    args[10] = t->ips;
    args[11] = t->serial_number;
    args[12] = t->renews;
    args[13] = t->has_signer_key ? scep_sql_hex(p, t->signer_key, SCEP_REQUEST_DIGEST_LEN)
                                 : NULL;
    args[14] = t->client_ip;
    args[15] = t->subject;
    args[16] = i64(p, t->decided_at);
    args[17] = t->decided_by;
    args[18] = t->reason;
    args[19] = t->upstream_pending ? "true" : "false";
    args[20] = t->endpoint;
    args[21] = t->identity_name;
    args[22] = i64(p, t->identity_where);
    return scep_sql_exec(txn, "writing a transaction",
                         "INSERT INTO scep_transactions (transaction_id, requester, state, "
                         "request_digest, fqdn, serial, created, request, grant_kind, "
                         "registration, ips, serial_number, renews, signer_key, client_ip, "
                         "subject, decided_at, decided_by, reason, upstream_pending, endpoint, "
                         "identity_name, identity_where) VALUES (%s, decode(%s, 'hex'), %s, "
                         "decode(%s, 'hex'), %s, %s, %lld, decode(%s, 'hex'), %lld, %s, %s, "
                         "%s, %s, decode(%s, 'hex'), %s, %s, %lld, %s, %s, %s::boolean, %s, "
                         "%s, %lld) "
                         "ON CONFLICT (transaction_id, requester) DO UPDATE SET "
                         "state = EXCLUDED.state, request_digest = EXCLUDED.request_digest, "
                         "fqdn = EXCLUDED.fqdn, serial = EXCLUDED.serial, "
                         "created = EXCLUDED.created, request = EXCLUDED.request, "
                         "grant_kind = EXCLUDED.grant_kind, "
                         "registration = EXCLUDED.registration, ips = EXCLUDED.ips, "
                         "serial_number = EXCLUDED.serial_number, renews = EXCLUDED.renews, "
                         "signer_key = EXCLUDED.signer_key, client_ip = EXCLUDED.client_ip, "
                         "subject = EXCLUDED.subject, decided_at = EXCLUDED.decided_at, "
                         "decided_by = EXCLUDED.decided_by, reason = EXCLUDED.reason, "
                         "upstream_pending = EXCLUDED.upstream_pending, "
                         "endpoint = EXCLUDED.endpoint, "
                         "identity_name = EXCLUDED.identity_name, "
                         "identity_where = EXCLUDED.identity_where",
                         23, args, NULL);
}

/* ---- certificates ---------------------------------------------------------------------- */

#define CERT_COLS "serial, encode(der, 'hex'), fqdn, subject, transaction_id, not_before, " \
    "not_after, issued_at, revoked_at, revocation_reason, encode(issuer_key_id, 'hex')"
#define CERT_NCOLS 11

static apr_status_t cert_row(apr_pool_t *p, const scep_sql_row_t *row, int copy,
                             scep_cert_rec_t **out)
{
    scep_cert_rec_t *c = apr_pcalloc(p, sizeof(*c));
    row_reader_t r;

    reader_start(&r, row, CERT_NCOLS, p, copy);
    c->serial = col_str(&r, 0);
    /* the LMDB key is the serial's bytes: only one spelling of it exists */
    if (r.rv == APR_SUCCESS && !serial_canonical(c->serial)) {
        damaged(&r);
    }
    c->der = col_bytes(&r, 1, &c->der_len);
    if (!c->der || c->der_len == 0) {
        c->der = NULL;
        c->der_len = 0;
    }
    c->fqdn = col_str(&r, 2);
    c->subject = col_str(&r, 3);
    c->transaction_id = col_str(&r, 4);
    c->not_before = col_i64(&r, 5);
    c->not_after = col_i64(&r, 6);
    c->issued_at = col_i64(&r, 7);
    c->revoked_at = col_i64(&r, 8);
    c->revocation_reason = (int)col_i64(&r, 9);     /* an integer column */
    c->issuer_key_id = col_bytes(&r, 10, &c->issuer_key_id_len);
    if (!c->issuer_key_id || c->issuer_key_id_len == 0) {
        c->issuer_key_id = NULL;
        c->issuer_key_id_len = 0;
    }
    if (r.rv == APR_SUCCESS) {
        *out = c;
    }
    return r.rv;
}

apr_status_t scep_store_sql_cert_put(scep_txn_t *txn, apr_pool_t *p, const scep_cert_rec_t *c)
{
    const char *args[11];
    apr_status_t rv;
    int n = 0;

    if (!(args[0] = serial_text(p, c->serial))) {
        return APR_EINVAL;
    }
    if (strlen(c->serial) > 2 * KEY_MAX || (c->fqdn && !key_fits(c->fqdn, 0))) {
        return unstorable(txn);
    }
    args[1] = c->der && c->der_len ? scep_sql_hex(p, c->der, c->der_len) : "";
    args[2] = c->fqdn;
    args[3] = c->subject;
    args[4] = c->transaction_id;
    args[5] = i64(p, c->not_before);
    args[6] = i64(p, c->not_after);
    args[7] = i64(p, c->issued_at);
    args[8] = i64(p, c->revoked_at);
    args[9] = i64(p, c->revoked_at ? c->revocation_reason : 0);
    args[10] = c->issuer_key_id && c->issuer_key_id_len
               ? scep_sql_hex(p, c->issuer_key_id, c->issuer_key_id_len) : NULL;
    /* a rewrite of the same certificate (revoked, moved to another name) updates it; a
     * different certificate under a serial already used is refused: serials are unique */
    rv = scep_sql_exec(txn, "recording a certificate",
                       "INSERT INTO scep_certificates (serial, der, fqdn, subject, "
                       "transaction_id, not_before, not_after, issued_at, revoked_at, "
                       "revocation_reason, issuer_key_id) VALUES (%s, decode(%s, 'hex'), %s, "
                       "%s, %s, %lld, %lld, %lld, %lld, %lld, decode(%s, 'hex')) "
                       "ON CONFLICT (serial) DO UPDATE SET fqdn = EXCLUDED.fqdn, "
                       "subject = EXCLUDED.subject, transaction_id = EXCLUDED.transaction_id, "
                       "not_before = EXCLUDED.not_before, not_after = EXCLUDED.not_after, "
                       "issued_at = EXCLUDED.issued_at, revoked_at = EXCLUDED.revoked_at, "
                       "revocation_reason = EXCLUDED.revocation_reason, "
                       "issuer_key_id = EXCLUDED.issuer_key_id "
                       "WHERE scep_certificates.der = EXCLUDED.der", 11, args, &n);
    return rv == APR_SUCCESS && n == 0 ? scep_db_txn_fail(txn, SCEP_DB_EXISTS) : rv;
}

apr_status_t scep_store_sql_cert_get(scep_txn_t *txn, apr_pool_t *p, const char *serial_hex,
                                     scep_cert_rec_t **c)
{
    const char *args[1];
    scep_sql_row_t *row;
    apr_status_t rv;

    if (!(args[0] = serial_text(p, serial_hex))) {
        return APR_EINVAL;
    }
    if (strlen(serial_hex) > 2 * KEY_MAX) {
        return SCEP_DB_NOTFOUND;
    }
    rv = scep_sql_select_one(txn, p, "reading a certificate",
                             "SELECT " CERT_COLS " FROM scep_certificates WHERE serial = %s",
                             1, args, &row);
    return rv == APR_SUCCESS ? cert_row(p, row, 0, c) : rv;
}

apr_status_t scep_store_sql_cert_foreach(scep_txn_t *txn, apr_pool_t *p, const char *fqdn,
                                         scep_cert_visit_fn fn, void *baton)
{
    row_walk_t walk;
    const char *args[1];

    if (fqdn && !key_fits(fqdn, 0)) {
        return APR_SUCCESS;             /* "" would be every name's prefix on LMDB */
    }
    memset(&walk, 0, sizeof(walk));
    walk.cert_fn = fn;
    walk.baton = baton;
    args[0] = fqdn;
    return fqdn ? walk_rows(txn, p, 1, "listing a name's certificates",
                            "SELECT " CERT_COLS " FROM scep_certificates WHERE fqdn = %s "
                            "ORDER BY serial COLLATE \"C\"", 1, args, &walk)
                : walk_rows(txn, p, 1, "listing certificates",
                            "SELECT " CERT_COLS " FROM scep_certificates "
                            "ORDER BY serial COLLATE \"C\"", 0, NULL, &walk);
}

apr_status_t scep_store_sql_cert_revoke(scep_txn_t *txn, apr_pool_t *p,
                                        const char *serial_hex, apr_int64_t now, int reason,
                                        int *already)
{
    const char *args[6], *serial, *when;
    scep_sql_row_t *row;
    row_reader_t r;
    apr_int64_t found, marked;
    apr_status_t rv;

    *already = 0;
    /* the one call scep_store.c hands over unchecked: the LMDB path checks it in its get */
    if (!(serial = serial_text(p, serial_hex))) {
        return APR_EINVAL;
    }
    if (strlen(serial) > 2 * KEY_MAX) {
        return SCEP_DB_NOTFOUND;
    }
    when = i64(p, now);
    args[0] = when;
    args[1] = i64(p, reason);
    args[2] = serial;
    args[3] = when;
    args[4] = when;
    args[5] = serial;
    /* One round trip: the first revocation marks the certificate and bumps the CRL
     * generation; a later one changes nothing, so the first time and reason stand. */
    rv = scep_sql_select_one(txn, p, "revoking a certificate",
                             "WITH marked AS (UPDATE scep_certificates SET revoked_at = %lld, "
                             "revocation_reason = %lld WHERE serial = %s AND revoked_at = 0 "
                             "RETURNING serial), "
                             "bumped AS (INSERT INTO scep_crl_state (only_row, generation, "
                             "changed_at) SELECT true, 1, %s::bigint FROM marked "
                             "ON CONFLICT (only_row) DO UPDATE SET "
                             "generation = scep_crl_state.generation + 1, "
                             "changed_at = %s::bigint RETURNING generation) "
                             "SELECT (SELECT count(*) FROM scep_certificates "
                             "WHERE serial = %s), (SELECT count(*) FROM marked), "
                             "(SELECT count(*) FROM bumped)",
                             6, args, &row);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    reader_start(&r, row, 3, p, 0);
    found = col_i64(&r, 0);
    marked = col_i64(&r, 1);
    if (r.rv == APR_SUCCESS && marked != col_i64(&r, 2)) {
        damaged(&r);
    }
    if (r.rv != APR_SUCCESS) {
        return r.rv;
    }
    if (found == 0) {
        return SCEP_DB_NOTFOUND;
    }
    *already = marked == 0;
    return APR_SUCCESS;
}

/* ---- CRL state ------------------------------------------------------------------------- */

apr_status_t scep_store_sql_crl_state_get(scep_txn_t *txn, scep_crl_state_t *state)
{
    apr_int64_t v[2];
    apr_status_t rv = select_numbers(txn, "reading the CRL state",
                                     "SELECT generation, changed_at FROM scep_crl_state", 0,
                                     NULL, v, 2);

    state->generation = v[0];
    state->changed_at = v[1];
    return rv == SCEP_DB_NOTFOUND ? APR_SUCCESS : rv;    /* nothing was ever revoked */
}

apr_status_t scep_store_sql_crl_published_get(scep_txn_t *txn, apr_pool_t *p,
                                              scep_crl_published_t **out)
{
    scep_crl_published_t *pub;
    scep_sql_row_t *row;
    const unsigned char *id;
    row_reader_t r;
    apr_status_t rv;

    rv = scep_sql_select_one(txn, p, "reading the published CRL",
                             "SELECT number, generation, this_update, next_update, "
                             "encode(ca_id, 'hex'), encode(der, 'hex') FROM scep_crl_published",
                             0, NULL, &row);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    pub = apr_pcalloc(p, sizeof(*pub));
    reader_start(&r, row, 6, p, 0);
    pub->number = col_i64(&r, 0);
    pub->generation = col_i64(&r, 1);
    pub->this_update = col_i64(&r, 2);
    pub->next_update = col_i64(&r, 3);
    if ((id = col_fixed(&r, 4, sizeof(pub->ca_id))) != NULL) {
        memcpy(pub->ca_id, id, sizeof(pub->ca_id));
    }
    pub->der = col_bytes(&r, 5, &pub->der_len);
    if (r.rv == APR_SUCCESS && (!id || !pub->der || pub->der_len == 0)) {
        damaged(&r);
    }
    if (r.rv == APR_SUCCESS) {
        *out = pub;
    }
    return r.rv;
}

apr_status_t scep_store_sql_crl_published_put(scep_txn_t *txn, apr_pool_t *p,
                                              const scep_crl_published_t *pub)
{
    const char *args[6];

    args[0] = i64(p, pub->number);
    args[1] = i64(p, pub->generation);
    args[2] = i64(p, pub->this_update);
    args[3] = i64(p, pub->next_update);
    args[4] = scep_sql_hex(p, pub->ca_id, sizeof(pub->ca_id));
    args[5] = scep_sql_hex(p, pub->der, pub->der_len);
    /* the table's trigger refuses a number that would fall */
    return scep_sql_exec(txn, "keeping the published CRL",
                         "INSERT INTO scep_crl_published (only_row, number, generation, "
                         "this_update, next_update, ca_id, der) VALUES (true, %lld, %lld, "
                         "%lld, %lld, decode(%s, 'hex'), decode(%s, 'hex')) "
                         "ON CONFLICT (only_row) DO "
                         "UPDATE SET number = EXCLUDED.number, "
                         "generation = EXCLUDED.generation, "
                         "this_update = EXCLUDED.this_update, "
                         "next_update = EXCLUDED.next_update, ca_id = EXCLUDED.ca_id, "
                         "der = EXCLUDED.der", 6, args, NULL);
}

/* ---- copying a whole store -------------------------------------------------------- */

typedef struct minted_walk_t {
    apr_pool_t *scratch;
    scep_minted_visit_fn fn;
    void *baton;
    apr_status_t rv;
} minted_walk_t;

static int minted_visit(void *baton, const scep_sql_row_t *row)
{
    minted_walk_t *walk = baton;
    const unsigned char *digest;
    scep_minted_t *m;
    row_reader_t r;
    int stop;

    reader_start(&r, row, 5, walk->scratch, 0);
    digest = col_fixed(&r, 0, SCEP_MINTED_DIGEST_LEN);
    m = minted_row(&r, 1);
    if (r.rv == APR_SUCCESS && !digest) {
        damaged(&r);
    }
    if ((walk->rv = r.rv) != APR_SUCCESS) {
        return 1;
    }
    stop = walk->fn(walk->baton, digest, m);
    apr_pool_clear(walk->scratch);
    return stop;
}

apr_status_t scep_store_sql_minted_foreach(scep_txn_t *txn, apr_pool_t *p,
                                           scep_minted_visit_fn fn, void *baton)
{
    minted_walk_t walk = { NULL, fn, baton, APR_SUCCESS };
    apr_status_t rv;

    if (apr_pool_create(&walk.scratch, p) != APR_SUCCESS) {
        return scep_db_txn_fail(txn, APR_ENOMEM);
    }
    rv = scep_sql_foreach(txn, p, "listing minted challenges",
                          "SELECT encode(digest, 'hex'), " MINTED_COLS
                          " FROM scep_challenges ORDER BY digest", 0, NULL, minted_visit,
                          &walk);
    apr_pool_destroy(walk.scratch);
    return rv != APR_SUCCESS ? rv : walk.rv;
}

typedef struct failure_walk_t {
    scep_failure_visit_fn fn;
    void *baton;
    apr_status_t rv;
} failure_walk_t;

static int failure_visit(void *baton, const scep_sql_row_t *row)
{
    failure_walk_t *walk = baton;
    scep_failure_t f;
    const char *name;
    row_reader_t r;

    reader_start(&r, row, 5, NULL, 0);
    name = col_str(&r, 0);
    if (failure_row(&r, 1, &f) == APR_SUCCESS && (!name || !key_fits(name, 0))) {
        damaged(&r);
    }
    if ((walk->rv = r.rv) != APR_SUCCESS) {
        return 1;
    }
    return walk->fn(walk->baton, name, &f);
}

apr_status_t scep_store_sql_failure_foreach(scep_txn_t *txn, apr_pool_t *p,
                                            scep_failure_visit_fn fn, void *baton)
{
    failure_walk_t walk = { fn, baton, APR_SUCCESS };
    apr_status_t rv = scep_sql_foreach(txn, p, "listing failure counters",
                                       "SELECT name, " FAILURE_COLS " FROM scep_failures "
                                       "ORDER BY name", 0, NULL, failure_visit, &walk);

    return rv != APR_SUCCESS ? rv : walk.rv;
}

apr_status_t scep_store_sql_crl_state_put(scep_txn_t *txn, apr_pool_t *p,
                                          const scep_crl_state_t *state)
{
    const char *args[2];

    args[0] = i64(p, state->generation);
    args[1] = i64(p, state->changed_at);
    return scep_sql_exec(txn, "setting the CRL state",
                         "INSERT INTO scep_crl_state (only_row, generation, changed_at) "
                         "VALUES (true, %lld, %lld) ON CONFLICT (only_row) DO UPDATE SET "
                         "generation = EXCLUDED.generation, changed_at = EXCLUDED.changed_at",
                         2, args, NULL);
}

/* ---- many registrations at once -------------------------------------------------
 * Each column travels as one array parameter and the server unnests them: a statement
 * of a few lines, whatever the number of rows (a VALUES list of 1,000 rows took longer
 * to parse than to run). */

/* A PostgreSQL array literal of the `col`-th value of n groups of `stride` values:
 * every element quoted, '"' and '\\' escaped, NULL for an absent value. */
static const char *array_param(apr_pool_t *p, const char *const *vals, int n, int stride,
                               int col)
{
    apr_size_t len = 3;
    char *out, *o;
    int i;

    for (i = 0; i < n; i++) {
        const char *v = vals[(apr_size_t)i * (apr_size_t)stride + (apr_size_t)col];

        len += v ? 2 * strlen(v) + 3 : 5;
    }
    o = out = apr_palloc(p, len);
    *o++ = '{';
    for (i = 0; i < n; i++) {
        const char *v = vals[(apr_size_t)i * (apr_size_t)stride + (apr_size_t)col];

        if (i) {
            *o++ = ',';
        }
        if (!v) {
            o = stpcpy(o, "NULL");
            continue;
        }
        *o++ = '"';
        for (; *v; v++) {
            if (*v == '"' || *v == '\\') {
                *o++ = '\\';
            }
            *o++ = *v;
        }
        *o++ = '"';
    }
    *o++ = '}';
    *o = '\0';
    return out;
}

apr_status_t scep_store_sql_device_get_many(scep_txn_t *txn, apr_pool_t *p,
                                            const char *const *keys, int n,
                                            scep_device_t **devs, int *failed)
{
    apr_hash_t *wanted = apr_hash_make(p);
    apr_array_header_t *rows;
    const char **kept = apr_palloc(p, sizeof(*kept) * (apr_size_t)n);
    const char *args[1];
    apr_status_t rv;
    int i, nkept = 0;

    *failed = -1;
    for (i = 0; i < n; i++) {
        devs[i] = NULL;
        if (key_fits(keys[i], 0)) {     /* a key LMDB could not keep is kept nowhere */
            apr_hash_set(wanted, keys[i], APR_HASH_KEY_STRING, &devs[i]);
            kept[nkept++] = keys[i];
        }
    }
    if (nkept == 0) {
        return APR_SUCCESS;
    }
    args[0] = array_param(p, kept, nkept, 1, 0);
    rv = scep_sql_select(txn, p, "reading registrations",
                         "SELECT " DEVICE_COLS " FROM scep_devices "
                         "WHERE key = ANY (%s::text[])", 1, args, &rows);
    for (i = 0; rv == APR_SUCCESS && i < rows->nelts; i++) {
        scep_device_t *dev, **slot = NULL;

        rv = device_row(p, APR_ARRAY_IDX(rows, i, scep_sql_row_t *), 0, &dev);
        if (rv == APR_SUCCESS
            && !(slot = apr_hash_get(wanted, dev->fqdn, APR_HASH_KEY_STRING))) {
            rv = SCEP_DB_CORRUPT;       /* a row the statement did not ask for */
        }
        if (rv == APR_SUCCESS) {
            *slot = dev;
        }
    }
    return rv;
}

apr_status_t scep_store_sql_device_put_many(scep_txn_t *txn, apr_pool_t *p,
                                            const scep_device_t *const *devs, int n)
{
    const char **vals = apr_palloc(p, sizeof(*vals) * (apr_size_t)n * DEVICE_NARGS);
    const char *args[DEVICE_NARGS];
    int i;

    for (i = 0; i < n; i++) {
        if (!device_args(p, devs[i], vals + (apr_size_t)i * DEVICE_NARGS)) {
            return unstorable(txn);
        }
    }
    for (i = 0; i < DEVICE_NARGS; i++) {
        args[i] = array_param(p, vals, n, DEVICE_NARGS, i);
    }
    return scep_sql_exec(txn, "writing registrations",
                         DEVICE_INSERT_COLUMNS
                         "SELECT k, string_to_array(i, ','), s, va, vi, decode(vs, 'hex'), "
                         "decode(vh, 'hex'), f, e, pr, c, cr, up, ls, lna, le, en "
                         "FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[], "
                         "%s::bigint[], %s::text[], %s::text[], %s::bigint[], %s::bigint[], "
                         "%s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::text[], "
                         "%s::bigint[], %s::bigint[], %s::bigint[]) "
                         "AS u (k, i, s, va, vi, vs, vh, f, e, pr, c, cr, up, ls, lna, le, en)"
                         DEVICE_UPSERT, DEVICE_NARGS, args, NULL);
}

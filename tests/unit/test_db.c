/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of scep_db.c against real LMDB files in a fresh folder per test: durability
 * across close and reopen, aborted and abandoned transactions, first-error stickiness,
 * the dup-sorted index, a full map and its growth, read-only opens, a schema from the
 * future, pools destroyed under open transactions, concurrent writers in two processes,
 * reader slots of a killed process, a full reader table and a map grown by another
 * process; a commit that returns only once its meta page is on disk, a failed sync that
 * stops the environment, and commits of many threads sharing syncs; and the record codec, whose parser is fed every truncation from a buffer of
 * exactly that length so valgrind sees any read past the end.
 *
 * Children of fork() never touch cmocka or the parent's pools: they report through their
 * exit status and leave with _exit(). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <lmdb.h>

#include "scep_db.h"

/* ---- the file system as LMDB sees it ---------------------------------------------- */

/* liblmdb calls pwrite, fdatasync and fsync through the PLT, so these definitions stand in
 * for libc's.  Every meta page written (page 0 or 1 of data.mdb) and every sync that
 * starts takes the next number of one sequence; a sync that succeeds raises io_synced to
 * its number, and a meta page written through an O_DSYNC descriptor raises it to its own.
 * So a thread's last meta page is on disk exactly when io_synced >= my_meta.  A test can
 * also make the sync that follows its meta page fail. */
static unsigned long io_seq, io_synced;
static __thread unsigned long my_meta;      /* this thread's last meta page */
static __thread int my_meta_writes;
static __thread int fail_my_meta_sync;      /* the next sync after an unsynced one fails */
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static int (*real_fdatasync)(int);
static int (*real_fsync)(int);

__attribute__((constructor)) static void find_real_io(void)
{
    *(void **)&real_pwrite = dlsym(RTLD_NEXT, "pwrite");
    *(void **)&real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    *(void **)&real_fsync = dlsym(RTLD_NEXT, "fsync");
}

static void raise_synced(unsigned long to)
{
    unsigned long was = __atomic_load_n(&io_synced, __ATOMIC_SEQ_CST);

    while (was < to && !__atomic_compare_exchange_n(&io_synced, &was, to, 0,
                                                    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
}

static int my_meta_on_disk(void)
{
    return __atomic_load_n(&io_synced, __ATOMIC_SEQ_CST) >= my_meta;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    /* LMDB's pages are the system's, at most 32 KB */
    long page = sysconf(_SC_PAGESIZE) < 32768 ? sysconf(_SC_PAGESIZE) : 32768;
    ssize_t r = real_pwrite(fd, buf, n, off);

    if (r > 0 && off < 2 * page) {
        my_meta = __atomic_add_fetch(&io_seq, 1, __ATOMIC_SEQ_CST);
        my_meta_writes++;
        if (fcntl(fd, F_GETFL) & O_DSYNC) {
            raise_synced(my_meta);
        }
    }
    return r;
}

static int traced_sync(int (*real)(int), int fd)
{
    unsigned long start = __atomic_add_fetch(&io_seq, 1, __ATOMIC_SEQ_CST);

    if (fail_my_meta_sync && !my_meta_on_disk()) {
        fail_my_meta_sync = 0;
        errno = EIO;
        return -1;
    }
    if (real(fd) != 0) {
        return -1;
    }
    raise_synced(start);
    return 0;
}

int fdatasync(int fd)
{
    return traced_sync(real_fdatasync, fd);
}

int fsync(int fd)
{
    return traced_sync(real_fsync, fd);
}

/* ---- fixtures -------------------------------------------------------------------- */

typedef struct fixture_t {
    apr_pool_t *p;
    char dir[64];
} fixture_t;

static int db_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));

    if (!f || apr_pool_create(&f->p, NULL) != APR_SUCCESS) {
        free(f);
        return -1;
    }
    strcpy(f->dir, "/tmp/test_db.XXXXXX");
    if (!mkdtemp(f->dir)) {
        apr_pool_destroy(f->p);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    char sub[512];

    if (d) {
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
                continue;
            }
            snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
            rm_rf(sub);
        }
        closedir(d);
        rmdir(path);
    }
    else {
        unlink(path);
    }
}

static int db_teardown(void **state)
{
    fixture_t *f = *state;

    apr_pool_destroy(f->p);
    rm_rf(f->dir);
    free(f);
    return 0;
}

static int pool_setup(void **state)
{
    apr_pool_t *p;

    if (apr_pool_create(&p, NULL) != APR_SUCCESS) {
        return -1;
    }
    *state = p;
    return 0;
}

/* The heap copy the last record parse read from (see parse_n). */
static void *parsed_copy;

static int pool_teardown(void **state)
{
    apr_pool_destroy(*state);
    free(parsed_copy);
    parsed_copy = NULL;
    return 0;
}

/* Collects log lines so tests can look for tags. */
typedef struct log_buf_t {
    char text[16384];
    apr_size_t len;
} log_buf_t;

static void log_sink(void *baton, const char *file, int line, int level, const char *text)
{
    log_buf_t *b = baton;
    int n = snprintf(b->text + b->len, sizeof(b->text) - b->len, "%d %s\n", level, text);

    /* the location is the core's own, never the sink's */
    assert_non_null(strstr(file, "scep_db.c"));
    assert_true(line > 0);
    if (n > 0 && (apr_size_t)n < sizeof(b->text) - b->len) {
        b->len += (apr_size_t)n;
    }
}

static apr_pool_t *subpool(apr_pool_t *parent)
{
    apr_pool_t *p;

    assert_int_equal(apr_pool_create(&p, parent), APR_SUCCESS);
    return p;
}

static scep_db_t *open_db(apr_pool_t *p, const char *dir, apr_size_t map_size, int flags,
                          const scep_log_t *log)
{
    scep_db_t *db = NULL;
    const char *why = "unset";
    apr_status_t rv;

    rv = scep_db_open(p, dir, map_size, flags, log, &db, &why);
    if (rv != APR_SUCCESS) {
        fail_msg("scep_db_open(%s): %s", dir, why ? why : "(no why)");
    }
    assert_null(why);
    assert_non_null(db);
    return db;
}

/* Creates the database in a pool of its own and closes it again. */
static void create_db(apr_pool_t *parent, const char *dir, apr_size_t map_size)
{
    apr_pool_t *p = subpool(parent);

    open_db(p, dir, map_size, SCEP_DB_CREATE, NULL);
    apr_pool_destroy(p);
}

static scep_txn_t *begin(scep_db_t *db, apr_pool_t *p, int write)
{
    scep_txn_t *txn = NULL;

    assert_int_equal(scep_db_begin(db, p, write, &txn), APR_SUCCESS);
    assert_non_null(txn);
    return txn;
}

static apr_status_t put_str(scep_txn_t *txn, scep_dbi_e dbi, const char *key,
                            const char *val, int flags)
{
    return scep_db_put(txn, dbi, key, strlen(key), val, strlen(val), flags);
}

static apr_status_t get_str(scep_txn_t *txn, scep_dbi_e dbi, const char *key,
                            apr_pool_t *p, const char **out)
{
    const void *val;
    apr_size_t vlen;
    apr_status_t rv = scep_db_get(txn, dbi, key, strlen(key), &val, &vlen);

    *out = rv == APR_SUCCESS ? apr_pstrmemdup(p, val, vlen) : NULL;
    return rv;
}

static void assert_value(scep_txn_t *txn, scep_dbi_e dbi, const char *key,
                         const char *want, apr_pool_t *p)
{
    const char *got;

    assert_int_equal(get_str(txn, dbi, key, p, &got), APR_SUCCESS);
    assert_string_equal(got, want);
}

static void assert_absent(scep_txn_t *txn, scep_dbi_e dbi, const char *key)
{
    const void *val = "x";
    apr_size_t vlen = 99;

    assert_int_equal(scep_db_get(txn, dbi, key, strlen(key), &val, &vlen), SCEP_DB_NOTFOUND);
    assert_null(val);
    assert_int_equal(vlen, 0);
}

static apr_size_t count_of(scep_txn_t *txn, scep_dbi_e dbi)
{
    apr_size_t n = 12345;

    assert_int_equal(scep_db_count(txn, dbi, &n), APR_SUCCESS);
    return n;
}

/* A visitor that remembers what it saw and may stop after `stop_after` calls. */
typedef struct visits_t {
    apr_pool_t *p;
    int n, stop_after;
    const char *key[16];
    const char *val[16];
} visits_t;

static int visit(void *baton, const void *key, apr_size_t klen, const void *val,
                 apr_size_t vlen)
{
    visits_t *v = baton;

    if (v->n < 16) {
        v->key[v->n] = apr_pstrmemdup(v->p, key, klen);
        v->val[v->n] = apr_pstrmemdup(v->p, val, vlen);
    }
    v->n++;
    return v->stop_after && v->n >= v->stop_after;
}

/* ---- opening and durability ---------------------------------------------------- */

static void test_create_and_reopen_persists(void **state)
{
    fixture_t *f = *state;
    const char *dir = apr_pstrcat(f->p, f->dir, "/db", NULL);
    apr_pool_t *p1 = subpool(f->p), *p2;
    scep_db_t *db;
    scep_txn_t *txn;
    struct stat st;

    db = open_db(p1, dir, 0, SCEP_DB_CREATE, NULL);
    assert_string_equal(scep_db_path(db), dir);
    assert_int_equal(scep_db_map_size(db), SCEP_DB_DEFAULT_MAP_SIZE);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(stat(apr_pstrcat(f->p, dir, "/data.mdb", NULL), &st), 0);
    assert_int_equal(st.st_mode & 0077, 0);

    txn = begin(db, p1, 1);
    assert_int_equal(put_str(txn, SCEP_DBI_DEVICES, "a.example", "record-a", 0), APR_SUCCESS);
    assert_int_equal(put_str(txn, SCEP_DBI_CERTS, "\x01\x02", "cert", 0), APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
    apr_pool_destroy(p1);

    /* a new pool, no SCEP_DB_CREATE: the files must be there with the data */
    p2 = subpool(f->p);
    db = open_db(p2, dir, 0, 0, NULL);
    assert_int_equal(scep_db_map_size(db), SCEP_DB_DEFAULT_MAP_SIZE);
    txn = begin(db, p2, 0);
    assert_value(txn, SCEP_DBI_DEVICES, "a.example", "record-a", p2);
    assert_value(txn, SCEP_DBI_CERTS, "\x01\x02", "cert", p2);
    assert_absent(txn, SCEP_DBI_CHALLENGES, "a.example");
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
    apr_pool_destroy(p2);
}

static void test_open_without_create_refuses_empty_folder(void **state)
{
    fixture_t *f = *state;
    scep_db_t *db = (scep_db_t *)f;
    const char *why = NULL;
    struct stat st;

    assert_int_equal(scep_db_open(f->p, f->dir, 0, 0, NULL, &db, &why), APR_ENOENT);
    assert_null(db);
    assert_non_null(why);
    assert_non_null(strstr(why, f->dir));
    /* and nothing was created behind our back */
    assert_int_not_equal(stat(apr_pstrcat(f->p, f->dir, "/data.mdb", NULL), &st), 0);
}

static void test_abort_and_abandon_invisible(void **state)
{
    fixture_t *f = *state;
    scep_db_t *db = open_db(f->p, f->dir, 0, SCEP_DB_CREATE, NULL);
    apr_pool_t *tp;
    scep_txn_t *txn;

    txn = begin(db, f->p, 1);
    assert_int_equal(put_str(txn, SCEP_DBI_DEVICES, "aborted", "x", 0), APR_SUCCESS);
    scep_db_abort(txn);
    scep_db_abort(txn);                                 /* twice is harmless */
    assert_int_equal(scep_db_commit(txn), APR_EINVAL);  /* so is a late commit */

    tp = subpool(f->p);
    txn = begin(db, tp, 1);
    assert_int_equal(put_str(txn, SCEP_DBI_DEVICES, "abandoned", "x", 0), APR_SUCCESS);
    apr_pool_destroy(tp);                               /* neither committed nor aborted */

    txn = begin(db, f->p, 1);
    assert_int_equal(put_str(txn, SCEP_DBI_DEVICES, "kept", "y", 0), APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
    scep_db_abort(txn);                                 /* after commit: nothing */
    scep_db_abort(NULL);

    txn = begin(db, f->p, 0);
    assert_absent(txn, SCEP_DBI_DEVICES, "aborted");
    assert_absent(txn, SCEP_DBI_DEVICES, "abandoned");
    assert_value(txn, SCEP_DBI_DEVICES, "kept", "y", f->p);
    assert_int_equal(count_of(txn, SCEP_DBI_DEVICES), 1);
    scep_db_abort(txn);
}

static void test_first_error_sticks(void **state)
{
    fixture_t *f = *state;
    scep_db_t *db = open_db(f->p, f->dir, 0, SCEP_DB_CREATE, NULL);
    scep_txn_t *txn;
    const char *got;

    txn = begin(db, f->p, 1);
    assert_int_equal(put_str(txn, SCEP_DBI_DEVICES, "k1", "v1", 0), APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);

    txn = begin(db, f->p, 1);
    assert_int_equal(put_str(txn, SCEP_DBI_DEVICES, "k2", "v2", 0), APR_SUCCESS);
    /* "not found" is a result and leaves the transaction healthy */
    assert_absent(txn, SCEP_DBI_DEVICES, "nope");
    assert_int_equal(scep_db_del(txn, SCEP_DBI_DEVICES, "nope", 4, NULL, 0), SCEP_DB_NOTFOUND);
    assert_int_equal(scep_db_txn_status(txn), APR_SUCCESS);

    assert_int_equal(put_str(txn, SCEP_DBI_DEVICES, "k1", "other", SCEP_DB_NOOVERWRITE),
                     SCEP_DB_EXISTS);
    assert_int_equal(scep_db_txn_status(txn), SCEP_DB_EXISTS);
    /* from here on nothing happens and everything answers with the first error */
    assert_int_equal(put_str(txn, SCEP_DBI_DEVICES, "k3", "v3", 0), SCEP_DB_EXISTS);
    assert_int_equal(scep_db_del(txn, SCEP_DBI_DEVICES, "k1", 2, NULL, 0), SCEP_DB_EXISTS);
    assert_int_equal(get_str(txn, SCEP_DBI_DEVICES, "k2", f->p, &got), SCEP_DB_EXISTS);
    assert_int_equal(scep_db_commit(txn), SCEP_DB_EXISTS);
    assert_int_equal(scep_db_txn_status(txn), SCEP_DB_EXISTS);

    txn = begin(db, f->p, 0);
    assert_value(txn, SCEP_DBI_DEVICES, "k1", "v1", f->p);
    assert_absent(txn, SCEP_DBI_DEVICES, "k2");
    assert_absent(txn, SCEP_DBI_DEVICES, "k3");
    /* writing in a read transaction is an error of that transaction too */
    assert_int_equal(put_str(txn, SCEP_DBI_DEVICES, "k4", "v4", 0), APR_EACCES);
    assert_int_equal(scep_db_commit(txn), APR_EACCES);

    txn = begin(db, f->p, 1);
    assert_int_equal(scep_db_put(txn, SCEP_DBI_COUNT, "k", 1, "v", 1, 0), APR_EINVAL);
    assert_int_equal(scep_db_commit(txn), APR_EINVAL);
    assert_int_equal(scep_db_txn_status(NULL), APR_EINVAL);
}

static void test_nooverwrite_get_del(void **state)
{
    fixture_t *f = *state;
    scep_db_t *db = open_db(f->p, f->dir, 0, SCEP_DB_CREATE, NULL);
    scep_txn_t *txn;

    txn = begin(db, f->p, 1);
    assert_absent(txn, SCEP_DBI_TRANSACTIONS, "tx1");
    assert_int_equal(put_str(txn, SCEP_DBI_TRANSACTIONS, "tx1", "a", SCEP_DB_NOOVERWRITE),
                     APR_SUCCESS);
    assert_int_equal(put_str(txn, SCEP_DBI_TRANSACTIONS, "tx1", "b", 0), APR_SUCCESS);
    assert_value(txn, SCEP_DBI_TRANSACTIONS, "tx1", "b", f->p);
    assert_int_equal(put_str(txn, SCEP_DBI_TRANSACTIONS, "tx2", "c", 0), APR_SUCCESS);
    /* a key that cannot exist is simply not found */
    assert_int_equal(scep_db_get(txn, SCEP_DBI_TRANSACTIONS, "", 0,
                                 &(const void *){ NULL }, &(apr_size_t){ 0 }),
                     SCEP_DB_NOTFOUND);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);

    txn = begin(db, f->p, 1);
    assert_int_equal(put_str(txn, SCEP_DBI_TRANSACTIONS, "tx1", "d", SCEP_DB_NOOVERWRITE),
                     SCEP_DB_EXISTS);
    assert_int_equal(scep_db_commit(txn), SCEP_DB_EXISTS);

    txn = begin(db, f->p, 1);
    assert_int_equal(scep_db_del(txn, SCEP_DBI_TRANSACTIONS, "tx1", 3, NULL, 0), APR_SUCCESS);
    assert_int_equal(scep_db_del(txn, SCEP_DBI_TRANSACTIONS, "tx1", 3, NULL, 0),
                     SCEP_DB_NOTFOUND);
    assert_absent(txn, SCEP_DBI_TRANSACTIONS, "tx1");
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);

    txn = begin(db, f->p, 0);
    assert_absent(txn, SCEP_DBI_TRANSACTIONS, "tx1");
    assert_value(txn, SCEP_DBI_TRANSACTIONS, "tx2", "c", f->p);
    scep_db_abort(txn);

    /* an empty key cannot be written */
    txn = begin(db, f->p, 1);
    assert_int_equal(scep_db_put(txn, SCEP_DBI_DEVICES, "", 0, "v", 1, 0), APR_EINVAL);
    scep_db_abort(txn);
}

static void test_foreach_prefix_and_stop(void **state)
{
    fixture_t *f = *state;
    scep_db_t *db = open_db(f->p, f->dir, 0, SCEP_DB_CREATE, NULL);
    static const char *const keys[] = { "b/1", "a/2", "ab", "a", "a/1" };
    visits_t v;
    scep_txn_t *txn;
    size_t i;

    txn = begin(db, f->p, 1);
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        assert_int_equal(put_str(txn, SCEP_DBI_FAILURES, keys[i], keys[i], 0), APR_SUCCESS);
    }
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);

    txn = begin(db, f->p, 0);
    memset(&v, 0, sizeof(v));
    v.p = f->p;
    assert_int_equal(scep_db_foreach(txn, SCEP_DBI_FAILURES, NULL, 0, visit, &v), APR_SUCCESS);
    assert_int_equal(v.n, 5);
    assert_string_equal(v.key[0], "a");
    assert_string_equal(v.key[1], "a/1");
    assert_string_equal(v.key[2], "a/2");
    assert_string_equal(v.key[3], "ab");
    assert_string_equal(v.key[4], "b/1");
    assert_string_equal(v.val[4], "b/1");

    memset(&v, 0, sizeof(v));
    v.p = f->p;
    assert_int_equal(scep_db_foreach(txn, SCEP_DBI_FAILURES, "a/", 2, visit, &v), APR_SUCCESS);
    assert_int_equal(v.n, 2);
    assert_string_equal(v.key[0], "a/1");
    assert_string_equal(v.key[1], "a/2");

    memset(&v, 0, sizeof(v));
    v.p = f->p;
    assert_int_equal(scep_db_foreach(txn, SCEP_DBI_FAILURES, "a", 1, visit, &v), APR_SUCCESS);
    assert_int_equal(v.n, 4);
    assert_string_equal(v.key[3], "ab");

    /* a prefix past every key, between keys, and longer than any key can be */
    memset(&v, 0, sizeof(v));
    v.p = f->p;
    assert_int_equal(scep_db_foreach(txn, SCEP_DBI_FAILURES, "zz", 2, visit, &v), APR_SUCCESS);
    assert_int_equal(scep_db_foreach(txn, SCEP_DBI_FAILURES, "aa", 2, visit, &v), APR_SUCCESS);
    assert_int_equal(scep_db_foreach(txn, SCEP_DBI_FAILURES, apr_pcalloc(f->p, 4096), 4096,
                                     visit, &v), APR_SUCCESS);
    assert_int_equal(v.n, 0);

    memset(&v, 0, sizeof(v));
    v.p = f->p;
    v.stop_after = 2;
    assert_int_equal(scep_db_foreach(txn, SCEP_DBI_FAILURES, NULL, 0, visit, &v), APR_SUCCESS);
    assert_int_equal(v.n, 2);

    memset(&v, 0, sizeof(v));
    v.p = f->p;
    assert_int_equal(scep_db_foreach(txn, SCEP_DBI_DEVICES, NULL, 0, visit, &v), APR_SUCCESS);
    assert_int_equal(v.n, 0);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
}

static apr_status_t put_serial(scep_txn_t *txn, const char *fqdn, const char *serial,
                               apr_size_t len, int flags)
{
    return scep_db_put(txn, SCEP_DBI_CERTS_BY_FQDN, fqdn, strlen(fqdn), serial, len, flags);
}

static void test_dupsort_index(void **state)
{
    fixture_t *f = *state;
    scep_db_t *db = open_db(f->p, f->dir, 0, SCEP_DB_CREATE, NULL);
    scep_txn_t *txn;
    visits_t v;

    txn = begin(db, f->p, 1);
    assert_int_equal(put_serial(txn, "h.example", "\x02\x03", 2, 0), APR_SUCCESS);
    assert_int_equal(put_serial(txn, "h.example", "\x01", 1, 0), APR_SUCCESS);
    assert_int_equal(put_serial(txn, "h.example", "\x00\x05", 2, 0), APR_SUCCESS);
    assert_int_equal(put_serial(txn, "i.example", "\x07", 1, 0), APR_SUCCESS);
    /* the same pair again is no error, and no second copy */
    assert_int_equal(put_serial(txn, "h.example", "\x01", 1, 0), APR_SUCCESS);
    assert_int_equal(put_serial(txn, "h.example", "\x02\x03", 2, 0), APR_SUCCESS);
    assert_int_equal(scep_db_txn_status(txn), APR_SUCCESS);
    assert_int_equal(count_of(txn, SCEP_DBI_CERTS_BY_FQDN), 4);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);

    txn = begin(db, f->p, 1);
    assert_int_equal(put_serial(txn, "h.example", "\x01", 1, SCEP_DB_NOOVERWRITE),
                     SCEP_DB_EXISTS);
    scep_db_abort(txn);

    txn = begin(db, f->p, 1);
    /* with the flag, "exists" means this pair: a new serial is fine */
    assert_int_equal(put_serial(txn, "i.example", "\x08", 1, SCEP_DB_NOOVERWRITE),
                     APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);

    txn = begin(db, f->p, 0);
    memset(&v, 0, sizeof(v));
    v.p = f->p;
    assert_int_equal(scep_db_foreach(txn, SCEP_DBI_CERTS_BY_FQDN, "h.example", 9, visit, &v),
                     APR_SUCCESS);
    assert_int_equal(v.n, 3);
    assert_string_equal(v.key[0], "h.example");
    assert_string_equal(v.key[2], "h.example");
    assert_string_equal(v.val[0], "");          /* "\x00\x05" sorts first */
    assert_string_equal(v.val[1], "\x01");
    assert_string_equal(v.val[2], "\x02\x03");
    memset(&v, 0, sizeof(v));
    v.p = f->p;
    assert_int_equal(scep_db_foreach(txn, SCEP_DBI_CERTS_BY_FQDN, NULL, 0, visit, &v),
                     APR_SUCCESS);
    assert_int_equal(v.n, 5);
    assert_string_equal(v.key[4], "i.example");
    assert_string_equal(v.val[4], "\x08");
    scep_db_abort(txn);

    txn = begin(db, f->p, 1);
    assert_int_equal(scep_db_del(txn, SCEP_DBI_CERTS_BY_FQDN, "h.example", 9, "\x01", 1),
                     APR_SUCCESS);
    assert_int_equal(scep_db_del(txn, SCEP_DBI_CERTS_BY_FQDN, "h.example", 9, "\x01", 1),
                     SCEP_DB_NOTFOUND);
    assert_int_equal(scep_db_del(txn, SCEP_DBI_CERTS_BY_FQDN, "i.example", 9, NULL, 0),
                     APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);

    txn = begin(db, f->p, 0);
    assert_int_equal(count_of(txn, SCEP_DBI_CERTS_BY_FQDN), 2);
    memset(&v, 0, sizeof(v));
    v.p = f->p;
    assert_int_equal(scep_db_foreach(txn, SCEP_DBI_CERTS_BY_FQDN, NULL, 0, visit, &v),
                     APR_SUCCESS);
    assert_int_equal(v.n, 2);
    assert_string_equal(v.val[1], "\x02\x03");
    scep_db_abort(txn);
}

static void test_count(void **state)
{
    fixture_t *f = *state;
    scep_db_t *db = open_db(f->p, f->dir, 0, SCEP_DB_CREATE, NULL);
    scep_txn_t *txn;
    apr_size_t n;
    int i, dbi;

    txn = begin(db, f->p, 0);
    for (dbi = SCEP_DBI_DEVICES; dbi < SCEP_DBI_COUNT; dbi++) {
        assert_int_equal(count_of(txn, (scep_dbi_e)dbi), 0);
    }
    assert_int_equal(count_of(txn, SCEP_DBI_META), 1);      /* the schema version */
    assert_int_equal(scep_db_count(txn, SCEP_DBI_COUNT, &n), APR_EINVAL);
    scep_db_abort(txn);

    txn = begin(db, f->p, 1);
    for (i = 0; i < 10; i++) {
        const char *k = apr_psprintf(f->p, "c%02d", i);

        assert_int_equal(put_str(txn, SCEP_DBI_CHALLENGES, k, "v", 0), APR_SUCCESS);
    }
    assert_int_equal(count_of(txn, SCEP_DBI_CHALLENGES), 10);  /* sees its own writes */
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
    txn = begin(db, f->p, 0);
    assert_int_equal(count_of(txn, SCEP_DBI_CHALLENGES), 10);
    assert_int_equal(count_of(txn, SCEP_DBI_DEVICES), 0);
    scep_db_abort(txn);
}

/* ---- map size -------------------------------------------------------------------- */

#define BATCH 4
#define VALUE_LEN 1000

static apr_status_t write_batch(scep_db_t *db, apr_pool_t *p, int batch)
{
    char value[VALUE_LEN];
    scep_txn_t *txn;
    apr_status_t rv;
    int i;

    rv = scep_db_begin(db, p, 1, &txn);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < BATCH; i++) {
        const char *k = apr_psprintf(p, "k%05d", batch * BATCH + i);

        memset(value, 'a' + (batch * BATCH + i) % 26, sizeof(value));
        rv = scep_db_put(txn, SCEP_DBI_CERTS, k, strlen(k), value, sizeof(value), 0);
        if (rv != APR_SUCCESS) {
            assert_int_equal(scep_db_txn_status(txn), rv);
            break;
        }
    }
    return scep_db_commit(txn);
}

static void assert_batches(scep_db_t *db, apr_pool_t *p, int batches)
{
    scep_txn_t *txn = begin(db, p, 0);
    const void *val;
    apr_size_t vlen;
    int i;

    assert_int_equal(count_of(txn, SCEP_DBI_CERTS), (apr_size_t)batches * BATCH);
    for (i = 0; i < batches * BATCH; i++) {
        const char *k = apr_psprintf(p, "k%05d", i);

        assert_int_equal(scep_db_get(txn, SCEP_DBI_CERTS, k, strlen(k), &val, &vlen),
                         APR_SUCCESS);
        assert_int_equal(vlen, VALUE_LEN);
        assert_int_equal(((const char *)val)[VALUE_LEN - 1], 'a' + i % 26);
    }
    scep_db_abort(txn);
}

static void test_map_full_then_grow(void **state)
{
    fixture_t *f = *state;
    apr_size_t tiny = 32 * (apr_size_t)sysconf(_SC_PAGESIZE), big = 4 * 1024 * 1024;
    apr_pool_t *p = subpool(f->p);
    scep_db_t *db = open_db(p, f->dir, tiny, SCEP_DB_CREATE, NULL);
    apr_status_t rv = APR_SUCCESS;
    int batches = 0;

    assert_int_equal(scep_db_map_size(db), tiny);
    while (batches < 1000 && (rv = write_batch(db, p, batches)) == APR_SUCCESS) {
        batches++;
    }
    assert_int_equal(rv, SCEP_DB_FULL);
    assert_true(batches > 0);
    /* still readable, nothing half-written, and full again on the next try */
    assert_batches(db, p, batches);
    assert_int_equal(write_batch(db, p, batches), SCEP_DB_FULL);
    apr_pool_destroy(p);

    /* a smaller size than the file has is no shrink */
    p = subpool(f->p);
    db = open_db(p, f->dir, tiny / 2, 0, NULL);
    assert_int_equal(scep_db_map_size(db), tiny);
    apr_pool_destroy(p);

    p = subpool(f->p);
    db = open_db(p, f->dir, big, 0, NULL);
    assert_int_equal(scep_db_map_size(db), big);
    assert_int_equal(write_batch(db, p, batches), APR_SUCCESS);
    assert_int_equal(write_batch(db, p, batches + 1), APR_SUCCESS);
    assert_batches(db, p, batches + 2);
    apr_pool_destroy(p);

    /* the grown size is the file's size now */
    p = subpool(f->p);
    db = open_db(p, f->dir, 0, 0, NULL);
    assert_int_equal(scep_db_map_size(db), big);
    assert_batches(db, p, batches + 2);
    apr_pool_destroy(p);
}

/* ---- read-only and refusals -------------------------------------------------------- */

static void test_readonly_existing(void **state)
{
    fixture_t *f = *state;
    apr_pool_t *p = subpool(f->p);
    scep_db_t *db = open_db(p, f->dir, 0, SCEP_DB_CREATE, NULL);
    scep_txn_t *txn = begin(db, p, 1);
    visits_t v;

    assert_int_equal(put_str(txn, SCEP_DBI_DEVICES, "ro.example", "rec", 0), APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
    apr_pool_destroy(p);

    p = subpool(f->p);
    db = open_db(p, f->dir, 2 * SCEP_DB_DEFAULT_MAP_SIZE, SCEP_DB_READONLY | SCEP_DB_CREATE,
                 NULL);
    assert_int_equal(scep_db_map_size(db), SCEP_DB_DEFAULT_MAP_SIZE);  /* no growth */
    txn = begin(db, p, 0);
    assert_value(txn, SCEP_DBI_DEVICES, "ro.example", "rec", p);
    assert_int_equal(count_of(txn, SCEP_DBI_DEVICES), 1);
    memset(&v, 0, sizeof(v));
    v.p = p;
    assert_int_equal(scep_db_foreach(txn, SCEP_DBI_DEVICES, "ro.", 3, visit, &v), APR_SUCCESS);
    assert_int_equal(v.n, 1);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
    txn = (scep_txn_t *)db;
    assert_int_equal(scep_db_begin(db, p, 1, &txn), APR_EACCES);
    assert_null(txn);
    apr_pool_destroy(p);
}

static void test_readonly_without_named_dbs(void **state)
{
    fixture_t *f = *state;
    MDB_env *env;
    scep_db_t *db;
    scep_txn_t *txn;
    const void *val;
    apr_size_t vlen;
    visits_t v;

    /* an LMDB environment nobody has laid out yet */
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_open(env, f->dir, 0, 0600), 0);
    mdb_env_close(env);

    db = open_db(f->p, f->dir, 0, SCEP_DB_READONLY, NULL);
    txn = begin(db, f->p, 0);
    assert_int_equal(scep_db_get(txn, SCEP_DBI_DEVICES, "x", 1, &val, &vlen), SCEP_DB_NOTFOUND);
    assert_int_equal(scep_db_get(txn, SCEP_DBI_META, "schema", 6, &val, &vlen),
                     SCEP_DB_NOTFOUND);
    memset(&v, 0, sizeof(v));
    v.p = f->p;
    assert_int_equal(scep_db_foreach(txn, SCEP_DBI_CERTS_BY_FQDN, NULL, 0, visit, &v),
                     APR_SUCCESS);
    assert_int_equal(v.n, 0);
    assert_int_equal(count_of(txn, SCEP_DBI_CERTS), 0);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
}

static void test_readonly_missing_folder(void **state)
{
    fixture_t *f = *state;
    const char *dir = apr_pstrcat(f->p, f->dir, "/absent", NULL);
    scep_db_t *db = (scep_db_t *)f;
    const char *why = NULL;
    struct stat st;
    apr_status_t rv;

    rv = scep_db_open(f->p, dir, 0, SCEP_DB_READONLY | SCEP_DB_CREATE, NULL, &db, &why);
    assert_true(APR_STATUS_IS_ENOENT(rv));
    assert_true(rv < APR_OS_START_USERERR);     /* an errno, not one of ours */
    assert_null(db);
    assert_non_null(why);
    assert_non_null(strstr(why, dir));
    assert_int_not_equal(stat(dir, &st), 0);    /* read-only creates nothing */

    why = NULL;
    rv = scep_db_open(f->p, dir, 0, 0, NULL, &db, &why);
    assert_true(APR_STATUS_IS_ENOENT(rv));
    assert_non_null(why);
}

static void write_raw_schema(const char *dir, const void *val, size_t len)
{
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi dbi;
    MDB_val k, v;

    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &t), 0);
    assert_int_equal(mdb_dbi_open(t, "meta", 0, &dbi), 0);
    k.mv_size = 6;
    k.mv_data = (void *)"schema";
    v.mv_size = len;
    v.mv_data = (void *)val;
    assert_int_equal(mdb_put(t, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(t), 0);
    mdb_env_close(env);
}

static void test_schema_too_new(void **state)
{
    fixture_t *f = *state;
    static const unsigned char v99[4] = { 0, 0, 0, 99 }, v1[4] = { 0, 0, 0, 1 };
    scep_db_t *db = (scep_db_t *)f;
    const char *why = NULL;
    int flags;

    create_db(f->p, f->dir, 0);
    write_raw_schema(f->dir, v99, sizeof(v99));
    for (flags = 0; flags <= SCEP_DB_READONLY; flags += SCEP_DB_READONLY) {
        why = NULL;
        assert_int_equal(scep_db_open(f->p, f->dir, 0, flags, NULL, &db, &why),
                         SCEP_DB_VERSION);
        assert_null(db);
        assert_non_null(why);
        assert_non_null(strstr(why, "99"));
        assert_non_null(strstr(why, "newer"));
    }

    write_raw_schema(f->dir, "\x01", 1);
    assert_int_equal(scep_db_open(f->p, f->dir, 0, 0, NULL, &db, &why), SCEP_DB_CORRUPT);
    assert_non_null(why);

    write_raw_schema(f->dir, v1, sizeof(v1));
    create_db(f->p, f->dir, 0);
}

/* ---- pools, processes ------------------------------------------------------------ */

static void test_destroyed_pool_releases_locks(void **state)
{
    fixture_t *f = *state;
    scep_db_t *db = open_db(f->p, f->dir, 0, SCEP_DB_CREATE, NULL);
    apr_pool_t *tp;
    scep_txn_t *txn;
    int i;

    /* a leaked write lock would hang the second begin: let the alarm end it */
    alarm(30);
    tp = subpool(f->p);
    txn = begin(db, tp, 1);
    assert_int_equal(put_str(txn, SCEP_DBI_DEVICES, "lost", "x", 0), APR_SUCCESS);
    apr_pool_destroy(tp);

    tp = subpool(f->p);
    txn = begin(db, tp, 1);
    assert_int_equal(put_str(txn, SCEP_DBI_DEVICES, "kept", "y", 0), APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
    apr_pool_destroy(tp);

    /* more abandoned readers than there are slots: none may be leaked */
    for (i = 0; i < 1100; i++) {
        tp = subpool(f->p);
        (void)begin(db, tp, 0);
        apr_pool_destroy(tp);
    }
    alarm(0);

    txn = begin(db, f->p, 0);
    assert_absent(txn, SCEP_DBI_DEVICES, "lost");
    assert_value(txn, SCEP_DBI_DEVICES, "kept", "y", f->p);
    scep_db_abort(txn);
}

/* The work of one writer process; 0 when every commit succeeded. */
static int writer(const char *dir, const char *tag, int n)
{
    apr_pool_t *p;
    scep_db_t *db;
    scep_txn_t *txn;
    const char *why;
    int i, failures = 0;

    if (apr_pool_create(&p, NULL) != APR_SUCCESS) {
        return -1;
    }
    if (scep_db_open(p, dir, 0, 0, NULL, &db, &why) != APR_SUCCESS) {
        apr_pool_destroy(p);
        return -1;
    }
    for (i = 0; i < n; i++) {
        const char *k = apr_psprintf(p, "%s-%03d", tag, i);

        if (scep_db_begin(db, p, 1, &txn) != APR_SUCCESS) {
            failures++;
            continue;
        }
        scep_db_put(txn, SCEP_DBI_TRANSACTIONS, k, strlen(k), tag, strlen(tag),
                    SCEP_DB_NOOVERWRITE);
        if (scep_db_commit(txn) != APR_SUCCESS) {
            failures++;
        }
    }
    apr_pool_destroy(p);
    return failures;
}

static void wait_ok(pid_t pid)
{
    int status = 0;

    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* A commit returns only when the meta page that makes it current is on disk, whether
 * LMDB wrote it through its O_DSYNC descriptor or scep_db synced it afterwards; and
 * scep_db_sync returns only after a sync that began after it was called. */
static void test_commit_durable_on_return(void **state)
{
    fixture_t *f = *state;
    scep_db_t *db = open_db(f->p, f->dir, 0, SCEP_DB_CREATE, NULL);
    unsigned long called;
    char key[16];
    int i;

    for (i = 0; i < 3; i++) {
        apr_pool_t *tp = subpool(f->p);
        scep_txn_t *txn = begin(db, tp, 1);

        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(put_str(txn, SCEP_DBI_META, key, "v", 0), APR_SUCCESS);
        my_meta_writes = 0;
        assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
        assert_true(my_meta_writes > 0);    /* the stand-ins above do see LMDB's writes */
        assert_true(my_meta_on_disk());
        apr_pool_destroy(tp);
    }
    called = __atomic_add_fetch(&io_seq, 1, __ATOMIC_SEQ_CST);
    assert_int_equal(scep_db_sync(db), APR_SUCCESS);
    assert_true(__atomic_load_n(&io_synced, __ATOMIC_SEQ_CST) > called);
}

/* A failed sync stops the environment (reads too: they could see what never reached the
 * disk), with a log line that says what to do, and leaves a file that refuses read-write
 * opens, by other processes and after a restart, until it is removed; read-only opens
 * (scepreg -V) still work. */
static void test_failed_sync_stops_until_cleared(void **state)
{
    fixture_t *f = *state;
    scep_log_t log = { log_sink, NULL, SCEP_LOG_TRACE1 };
    log_buf_t *lines = apr_pcalloc(f->p, sizeof(*lines));
    apr_pool_t *dp = subpool(f->p), *tp;
    scep_db_t *db;
    scep_txn_t *txn;
    apr_status_t rv;
    const char *why;
    char marker[128];
    struct stat st;

    log.baton = lines;
    db = open_db(dp, f->dir, 0, SCEP_DB_CREATE, &log);
    tp = subpool(dp);
    txn = begin(db, tp, 1);
    assert_int_equal(put_str(txn, SCEP_DBI_META, "before", "1", 0), APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);

    txn = begin(db, tp, 1);
    assert_int_equal(put_str(txn, SCEP_DBI_META, "lost", "2", 0), APR_SUCCESS);
    fail_my_meta_sync = 1;
    rv = scep_db_commit(txn);
    assert_int_equal(fail_my_meta_sync, 0);     /* the sync after the meta page failed */
    assert_int_equal(rv, SCEP_DB_UNSYNCED);
    assert_non_null(strstr(lines->text, "SCEP00311"));
    assert_non_null(strstr(lines->text, "fdatasync failed"));
    assert_non_null(strstr(scep_db_strerror(tp, rv), SCEP_DB_SYNC_FAILED));
    assert_non_null(strstr(lines->text, "remove " SCEP_DB_SYNC_FAILED));

    txn = NULL;
    assert_int_equal(scep_db_begin(db, tp, 1, &txn), SCEP_DB_UNSYNCED);
    assert_null(txn);
    assert_int_equal(scep_db_begin(db, tp, 0, &txn), SCEP_DB_UNSYNCED);
    assert_null(txn);
    assert_int_equal(scep_db_sync(db), SCEP_DB_UNSYNCED);
    apr_pool_destroy(dp);

    dp = subpool(f->p);
    snprintf(marker, sizeof(marker), "%s/%s", f->dir, SCEP_DB_SYNC_FAILED);
    assert_int_equal(stat(marker, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    db = NULL;
    why = NULL;
    assert_int_equal(scep_db_open(dp, f->dir, 0, 0, NULL, &db, &why), SCEP_DB_UNSYNCED);
    assert_null(db);
    assert_non_null(why);
    assert_non_null(strstr(why, "scepreg -V"));
    db = open_db(dp, f->dir, 0, SCEP_DB_READONLY, NULL);
    txn = begin(db, dp, 0);
    assert_value(txn, SCEP_DBI_META, "before", "1", dp);
    scep_db_abort(txn);
    apr_pool_destroy(dp);

    assert_int_equal(unlink(marker), 0);
    dp = subpool(f->p);
    db = open_db(dp, f->dir, 0, 0, NULL);
    txn = begin(db, dp, 1);
    assert_value(txn, SCEP_DBI_META, "before", "1", dp);
    assert_int_equal(put_str(txn, SCEP_DBI_META, "after", "3", 0), APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
    assert_true(my_meta_on_disk());
    apr_pool_destroy(dp);
}

#define SYNC_THREADS 6
#define SYNC_COMMITS 25

typedef struct committer_t {
    scep_db_t *db;
    apr_pool_t *p;
    int id;
    int failures;
    int not_on_disk;
} committer_t;

static void *commit_many(void *arg)
{
    committer_t *c = arg;
    char key[32];
    int i;

    for (i = 0; i < SYNC_COMMITS; i++) {
        apr_pool_t *tp;
        scep_txn_t *txn = NULL;

        if (apr_pool_create(&tp, c->p) != APR_SUCCESS) {
            c->failures++;
            continue;
        }
        snprintf(key, sizeof(key), "t%d-%d", c->id, i);
        my_meta_writes = 0;
        if (scep_db_begin(c->db, tp, 1, &txn) != APR_SUCCESS
            || put_str(txn, SCEP_DBI_META, key, key, 0) != APR_SUCCESS
            || scep_db_commit(txn) != APR_SUCCESS) {
            c->failures++;
        }
        else if (my_meta_writes == 0 || !my_meta_on_disk()) {
            c->not_on_disk++;
        }
        apr_pool_destroy(tp);
    }
    return NULL;
}

/* Threads of one process committing at once: each returns only after a sync that began
 * after its own meta page was written (its own or another thread's), none is lost and
 * none is left waiting. */
static void test_threads_share_syncs(void **state)
{
    fixture_t *f = *state;
    scep_db_t *db = open_db(f->p, f->dir, 0, SCEP_DB_CREATE, NULL);
    committer_t c[SYNC_THREADS];
    pthread_t t[SYNC_THREADS];
    apr_pool_t *rp = subpool(f->p);
    scep_txn_t *txn;
    char key[32];
    int i, j;

    for (i = 0; i < SYNC_THREADS; i++) {
        memset(&c[i], 0, sizeof(c[i]));
        c[i].db = db;
        c[i].p = subpool(f->p);     /* pools are made here: APR's parents are not locked */
        c[i].id = i;
        assert_int_equal(pthread_create(&t[i], NULL, commit_many, &c[i]), 0);
    }
    for (i = 0; i < SYNC_THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(c[i].failures, 0);
        assert_int_equal(c[i].not_on_disk, 0);
    }
    txn = begin(db, rp, 0);
    for (i = 0; i < SYNC_THREADS; i++) {
        for (j = 0; j < SYNC_COMMITS; j++) {
            snprintf(key, sizeof(key), "t%d-%d", i, j);
            assert_value(txn, SCEP_DBI_META, key, key, rp);
        }
    }
    scep_db_abort(txn);
}

static void test_two_processes_write(void **state)
{
    fixture_t *f = *state;
    scep_db_t *db;
    scep_txn_t *txn;
    pid_t pid;

    create_db(f->p, f->dir, 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(60);
        _exit(writer(f->dir, "child", 200) == 0 ? 0 : 1);
    }
    assert_int_equal(writer(f->dir, "parent", 200), 0);
    wait_ok(pid);

    db = open_db(f->p, f->dir, 0, 0, NULL);
    txn = begin(db, f->p, 0);
    assert_int_equal(count_of(txn, SCEP_DBI_TRANSACTIONS), 400);
    assert_value(txn, SCEP_DBI_TRANSACTIONS, "child-199", "child", f->p);
    assert_value(txn, SCEP_DBI_TRANSACTIONS, "parent-000", "parent", f->p);
    scep_db_abort(txn);
}

static void test_stale_reader_of_killed_process(void **state)
{
    fixture_t *f = *state;
    int hold[2], ready[2], status;
    scep_log_t log = { log_sink, NULL, SCEP_LOG_TRACE1 };
    log_buf_t *lines = apr_pcalloc(f->p, sizeof(*lines));
    pid_t holder, reader;
    apr_pool_t *cp;
    scep_db_t *db;
    scep_txn_t *txn;
    const char *why;
    char c = 0;

    create_db(f->p, f->dir, 0);
    assert_int_equal(pipe(hold), 0);
    assert_int_equal(pipe(ready), 0);

    /* Someone must keep the environment open throughout: the first process to open it
     * alone resets the reader table, which would hide the stale slot. */
    holder = fork();
    assert_true(holder >= 0);
    if (holder == 0) {
        alarm(60);
        close(hold[1]);
        if (apr_pool_create(&cp, NULL) != APR_SUCCESS
            || scep_db_open(cp, f->dir, 0, 0, NULL, &db, &why) != APR_SUCCESS
            || write(ready[1], "h", 1) != 1) {
            _exit(2);
        }
        while (read(hold[0], &c, 1) < 0 && errno == EINTR) {
        }
        apr_pool_destroy(cp);
        _exit(0);
    }
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(c, 'h');

    reader = fork();
    assert_true(reader >= 0);
    if (reader == 0) {
        alarm(60);
        if (apr_pool_create(&cp, NULL) != APR_SUCCESS
            || scep_db_open(cp, f->dir, 0, 0, NULL, &db, &why) != APR_SUCCESS
            || scep_db_begin(db, cp, 0, &txn) != APR_SUCCESS
            || write(ready[1], "r", 1) != 1) {
            _exit(2);
        }
        for (;;) {
            pause();
        }
    }
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(c, 'r');
    assert_int_equal(kill(reader, SIGKILL), 0);
    assert_int_equal(waitpid(reader, &status, 0), reader);
    assert_true(WIFSIGNALED(status));

    log.baton = lines;
    db = open_db(f->p, f->dir, 0, 0, &log);
    assert_non_null(strstr(lines->text, "SCEP00301: cleared 1 stale reader slot(s) in "));
    txn = begin(db, f->p, 1);
    assert_int_equal(put_str(txn, SCEP_DBI_DEVICES, "after", "kill", 0), APR_SUCCESS);
    assert_int_equal(scep_db_commit(txn), APR_SUCCESS);
    txn = begin(db, f->p, 0);
    assert_value(txn, SCEP_DBI_DEVICES, "after", "kill", f->p);
    scep_db_abort(txn);

    close(hold[1]);
    wait_ok(holder);
    close(hold[0]);
    close(ready[0]);
    close(ready[1]);
}

/* The implementation gives 1024 reader slots, and with MDB_NOTLS every read transaction
 * takes one, so one process can fill the table on purpose. */
#define READER_SLOTS 1024

static void test_reader_table_full(void **state)
{
    fixture_t *f = *state;
    scep_log_t log = { log_sink, NULL, SCEP_LOG_TRACE1 };
    log_buf_t *lines = apr_pcalloc(f->p, sizeof(*lines));
    int go[2], ready[2], status, i;
    apr_pool_t *tp;
    scep_db_t *db;
    scep_txn_t *txn;
    pid_t pid;
    char c = 0;

    create_db(f->p, f->dir, 0);
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(ready), 0);
    /* Forked before the parent opens, so it inherits no open environment; it opens its
     * own once the parent's is there, so the parent keeps the reader table alive. */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        apr_pool_t *cp;
        scep_db_t *cdb;
        const char *why;

        alarm(60);
        if (read(go[0], &c, 1) != 1
            || apr_pool_create(&cp, NULL) != APR_SUCCESS
            || scep_db_open(cp, f->dir, 0, 0, NULL, &cdb, &why) != APR_SUCCESS) {
            _exit(2);
        }
        for (i = 0; i < READER_SLOTS; i++) {
            if (scep_db_begin(cdb, cp, 0, &txn) != APR_SUCCESS) {
                _exit(3);
            }
        }
        if (write(ready[1], "r", 1) != 1) {
            _exit(4);
        }
        for (;;) {
            pause();
        }
    }

    log.baton = lines;
    db = open_db(f->p, f->dir, 0, 0, &log);
    assert_int_equal(write(go[1], "g", 1), 1);
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));

    /* every slot belongs to a dead process: the begin clears them and succeeds */
    assert_null(strstr(lines->text, "SCEP00304"));
    txn = begin(db, f->p, 0);
    assert_non_null(strstr(lines->text, "SCEP00304: cleared 1024 stale reader slot(s) in "));
    scep_db_abort(txn);

    /* every slot belongs to live transactions: nothing to clear, so SCEP_DB_BUSY */
    tp = subpool(f->p);
    for (i = 0; i < READER_SLOTS; i++) {
        txn = begin(db, tp, 0);
    }
    txn = (scep_txn_t *)db;
    assert_int_equal(scep_db_begin(db, f->p, 0, &txn), SCEP_DB_BUSY);
    assert_null(txn);
    apr_pool_destroy(tp);
    txn = begin(db, f->p, 0);
    scep_db_abort(txn);

    close(go[0]);
    close(go[1]);
    close(ready[0]);
    close(ready[1]);
}

static void test_map_grown_by_other_process(void **state)
{
    fixture_t *f = *state;
    apr_size_t tiny = 32 * (apr_size_t)sysconf(_SC_PAGESIZE), big = 4 * 1024 * 1024;
    scep_log_t log = { log_sink, NULL, SCEP_LOG_TRACE1 };
    log_buf_t *lines = apr_pcalloc(f->p, sizeof(*lines));
    int go[2];
    scep_db_t *db;
    scep_txn_t *txn;
    pid_t pid;
    char c = 0;

    /* The child is forked before the parent opens anything, so it inherits no open
     * environment (which it could neither use nor close). */
    assert_int_equal(pipe(go), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        apr_pool_t *cp;
        scep_db_t *cdb;
        const char *why;
        int i;

        alarm(60);
        close(go[1]);
        if (read(go[0], &c, 1) != 1
            || apr_pool_create(&cp, NULL) != APR_SUCCESS
            || scep_db_open(cp, f->dir, big, 0, NULL, &cdb, &why) != APR_SUCCESS) {
            _exit(2);
        }
        /* far more than the parent's map holds */
        for (i = 0; i < 50; i++) {
            if (write_batch(cdb, cp, i) != APR_SUCCESS) {
                _exit(3);
            }
        }
        apr_pool_destroy(cp);
        _exit(0);
    }
    close(go[0]);

    log.baton = lines;
    db = open_db(f->p, f->dir, tiny, SCEP_DB_CREATE, &log);
    assert_int_equal(scep_db_map_size(db), tiny);
    assert_int_equal(write(go[1], "g", 1), 1);
    close(go[1]);
    wait_ok(pid);

    txn = begin(db, f->p, 0);
    assert_int_equal(count_of(txn, SCEP_DBI_CERTS), 50 * BATCH);
    scep_db_abort(txn);
    assert_int_equal(scep_db_map_size(db), big);
    assert_non_null(strstr(lines->text, "SCEP00302: "));
    assert_batches(db, f->p, 50);
    assert_int_equal(write_batch(db, f->p, 50), APR_SUCCESS);
}

static void test_strerror(void **state)
{
    apr_pool_t *p = *state;
    static const apr_status_t ours[] = {
        SCEP_DB_NOTFOUND, SCEP_DB_FULL, SCEP_DB_VERSION, SCEP_DB_CORRUPT, SCEP_DB_EXISTS,
        SCEP_DB_BUSY
    };
    const char *seen[6];
    size_t i, j;

    for (i = 0; i < 6; i++) {
        seen[i] = scep_db_strerror(p, ours[i]);
        assert_non_null(seen[i]);
        assert_true(strlen(seen[i]) > 10);
        for (j = 0; j < i; j++) {
            assert_string_not_equal(seen[i], seen[j]);
        }
    }
    assert_non_null(strstr(scep_db_strerror(p, SCEP_DB_FULL), "map size"));
    assert_non_null(strstr(scep_db_strerror(p, APR_ENOENT), "No such file"));
}

/* ---- records --------------------------------------------------------------------- */

/* Parses data[0..len) from a heap copy of exactly that length.  The view points into
 * the copy, so it is kept until the next parse or the end of the test. */
static apr_status_t parse_n(const void *data, apr_size_t len, scep_rec_view_t *view)
{
    free(parsed_copy);
    parsed_copy = malloc(len ? len : 1);
    assert_non_null(parsed_copy);
    memcpy(parsed_copy, data, len);
    return scep_db_rec_parse(parsed_copy, len, view);
}

static void test_record_round_trip(void **state)
{
    apr_pool_t *p = *state;
    static const apr_int64_t nums[] = {
        0, 1, -1, -1234567890123LL, APR_INT64_C(0x0102030405060708),
        APR_INT64_MAX, -APR_INT64_MAX - 1
    };
    static const unsigned char bytes[] = { 0, 1, 2, 0xff, 0 };
    scep_rec_view_t view;
    scep_rec_t rec;
    size_t i;

    scep_db_rec_init(&rec, p);
    assert_int_equal(rec.len, 1);
    assert_int_equal(rec.data[0], SCEP_DB_RECORD_VERSION);
    scep_db_rec_put_str(&rec, 1, "device.example");
    scep_db_rec_put_str(&rec, 2, "");
    scep_db_rec_put_str(&rec, 3, NULL);                    /* omitted */
    scep_db_rec_put_bytes(&rec, 4, bytes, sizeof(bytes));
    for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        scep_db_rec_put_i64(&rec, (unsigned int)(10 + i), nums[i]);
    }
    scep_db_rec_put_i64(&rec, 255, -2);

    assert_int_equal(scep_db_rec_parse(rec.data, rec.len, &view), APR_SUCCESS);
    assert_string_equal(scep_db_rec_str(&view, 1, p), "device.example");
    assert_string_equal(scep_db_rec_str(&view, 2, p), "");
    assert_true(view.present[2]);
    assert_null(scep_db_rec_str(&view, 3, p));
    assert_false(view.present[3]);
    assert_true(view.present[4]);
    assert_int_equal(view.field_len[4], sizeof(bytes));
    assert_memory_equal(view.field[4], bytes, sizeof(bytes));
    for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        assert_true(scep_db_rec_i64(&view, (unsigned int)(10 + i), 42) == nums[i]);
    }
    assert_int_equal(scep_db_rec_i64(&view, 255, 0), -2);
    /* big-endian two's complement on the wire */
    assert_memory_equal(view.field[12], "\xff\xff\xff\xff\xff\xff\xff\xff", 8);
    assert_memory_equal(view.field[14], "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    /* absent, or not eight bytes: the default */
    assert_int_equal(scep_db_rec_i64(&view, 99, 42), 42);
    assert_int_equal(scep_db_rec_i64(&view, 1, -7), -7);
    assert_int_equal(scep_db_rec_i64(&view, 4, -7), -7);
    assert_int_equal(scep_db_rec_i64(&view, 256, -7), -7);
    assert_null(scep_db_rec_str(&view, 1000, p));
}

static void test_record_growth_and_poison(void **state)
{
    apr_pool_t *p = *state;
    scep_rec_view_t view;
    scep_rec_t rec;
    char big[5000];
    int i;

    memset(big, 'z', sizeof(big));
    scep_db_rec_init(&rec, p);
    for (i = 0; i < 200; i++) {
        scep_db_rec_put_i64(&rec, (unsigned int)i, i * 1000003LL);
    }
    scep_db_rec_put_bytes(&rec, 200, big, sizeof(big));
    assert_int_equal(rec.len, 1 + 200 * 13 + 5 + sizeof(big));
    assert_true(rec.cap >= rec.len);
    assert_int_equal(parse_n(rec.data, rec.len, &view), APR_SUCCESS);
    for (i = 0; i < 200; i++) {
        assert_true(scep_db_rec_i64(&view, (unsigned int)i, -1) == i * 1000003LL);
    }
    assert_int_equal(view.field_len[200], sizeof(big));
    assert_memory_equal(view.field[200], big, sizeof(big));

    /* a tag that cannot be written empties the record, which then never parses */
    scep_db_rec_init(&rec, p);
    scep_db_rec_put_str(&rec, 1, "a");
    scep_db_rec_put_str(&rec, 256, "b");
    scep_db_rec_put_str(&rec, 2, "c");
    assert_int_equal(rec.len, 0);
    assert_int_equal(scep_db_rec_parse(rec.data, rec.len, &view), SCEP_DB_CORRUPT);
}

static void test_record_unknown_tags_and_repeats(void **state)
{
    apr_pool_t *p = *state;
    /* version 1; tag 1 "ab"; tag 200 (nobody knows it) 3 bytes; tag 1 again "xyz" */
    static const unsigned char raw[] = {
        1,
        1, 0, 0, 0, 2, 'a', 'b',
        200, 0, 0, 0, 3, 9, 9, 9,
        7, 0, 0, 0, 0,
        1, 0, 0, 0, 3, 'x', 'y', 'z'
    };
    scep_rec_view_t view;

    assert_int_equal(parse_n(raw, sizeof(raw), &view), APR_SUCCESS);
    assert_string_equal(scep_db_rec_str(&view, 1, p), "xyz");     /* the last one wins */
    assert_true(view.present[200]);
    assert_true(view.present[7]);
    assert_int_equal(view.field_len[7], 0);
    assert_false(view.present[2]);
    /* a bare version byte is a record with no fields */
    assert_int_equal(parse_n(raw, 1, &view), APR_SUCCESS);
    assert_false(view.present[1]);
}

static void assert_view_empty(const scep_rec_view_t *view)
{
    int t;

    for (t = 0; t < 256; t++) {
        assert_false(view->present[t]);
        assert_null(view->field[t]);
        assert_int_equal(view->field_len[t], 0);
    }
}

static void test_record_truncated(void **state)
{
    apr_pool_t *p = *state;
    unsigned char filler[300];
    apr_size_t boundary[8], nb = 0, n, i;
    scep_rec_view_t view;
    scep_rec_t rec;

    memset(filler, 0x5a, sizeof(filler));
    scep_db_rec_init(&rec, p);
    boundary[nb++] = rec.len;
    scep_db_rec_put_str(&rec, 1, "hello");
    boundary[nb++] = rec.len;
    scep_db_rec_put_bytes(&rec, 2, NULL, 0);
    boundary[nb++] = rec.len;
    scep_db_rec_put_i64(&rec, 3, -5);
    boundary[nb++] = rec.len;
    scep_db_rec_put_bytes(&rec, 4, filler, sizeof(filler));
    boundary[nb++] = rec.len;

    /* every prefix: a field boundary is a shorter valid record, anything else corrupt */
    for (n = 0; n <= rec.len; n++) {
        int at_boundary = 0;
        apr_status_t rv;

        for (i = 0; i < nb; i++) {
            at_boundary |= boundary[i] == n;
        }
        memset(&view, 0xa5, sizeof(view));
        rv = parse_n(rec.data, n, &view);
        if (!at_boundary) {
            assert_int_equal(rv, SCEP_DB_CORRUPT);
            assert_view_empty(&view);
            continue;
        }
        assert_int_equal(rv, APR_SUCCESS);
        assert_int_equal(view.present[1], n >= boundary[1]);
        assert_int_equal(view.present[4], n >= boundary[4]);
    }

    /* lengths that point far past the end, including ones that wrap a 32-bit sum */
    assert_int_equal(parse_n("\x01\x01\xff\xff\xff\xff" "ab", 8, &view), SCEP_DB_CORRUPT);
    assert_int_equal(parse_n("\x01\x01\xff\xff\xff\xfc" "ab", 8, &view), SCEP_DB_CORRUPT);
    assert_int_equal(parse_n("\x01\x01\x00\x00\x00\x03" "ab", 8, &view), SCEP_DB_CORRUPT);
    assert_int_equal(scep_db_rec_parse(NULL, 0, &view), SCEP_DB_CORRUPT);
}

static void test_record_versions(void **state)
{
    scep_rec_view_t view;

    assert_int_equal(parse_n("\x00\x01\x00\x00\x00\x00", 6, &view), SCEP_DB_CORRUPT);
    assert_int_equal(parse_n("\x02\x01\x00\x00\x00\x00", 6, &view), SCEP_DB_VERSION);
    assert_int_equal(parse_n("\xff", 1, &view), SCEP_DB_VERSION);
    assert_view_empty(&view);
    assert_int_equal(parse_n("\x01\x01\x00\x00\x00\x00", 6, &view), APR_SUCCESS);
    assert_true(view.present[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define D(f) cmocka_unit_test_setup_teardown(f, db_setup, db_teardown)
#define P(f) cmocka_unit_test_setup_teardown(f, pool_setup, pool_teardown)
        D(test_create_and_reopen_persists),
        D(test_open_without_create_refuses_empty_folder),
        D(test_abort_and_abandon_invisible),
        D(test_first_error_sticks),
        D(test_nooverwrite_get_del),
        D(test_foreach_prefix_and_stop),
        D(test_dupsort_index),
        D(test_count),
        D(test_map_full_then_grow),
        D(test_readonly_existing),
        D(test_readonly_without_named_dbs),
        D(test_readonly_missing_folder),
        D(test_schema_too_new),
        D(test_destroyed_pool_releases_locks),
        D(test_commit_durable_on_return),
        D(test_failed_sync_stops_until_cleared),
        D(test_threads_share_syncs),
        D(test_two_processes_write),
        D(test_stale_reader_of_killed_process),
        D(test_reader_table_full),
        D(test_map_grown_by_other_process),
        P(test_strerror),
        P(test_record_round_trip),
        P(test_record_growth_and_poison),
        P(test_record_unknown_tags_and_repeats),
        P(test_record_truncated),
        P(test_record_versions),
#undef D
#undef P
    };
    int failed;

    apr_initialize();
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return failed;
}

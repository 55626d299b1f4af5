/* SPDX-License-Identifier: Apache-2.0 */
/* The one owner of LMDB: the environment and its named databases, transactions that keep
 * their first error, the single mapping from LMDB's codes to ours, the retries LMDB asks
 * of its users (stale reader slots, a map another process grew), and the versioned
 * record codec every stored value uses.
 *
 * A transaction lives in the caller's pool with a cleanup on that pool, so one that is
 * forgotten (an early return, a request torn down) still gives back its reader slot or
 * the write lock when the pool goes.  Once a transaction has met an error, every later
 * call on it does nothing and returns that error, and the commit aborts: callers write
 * their steps one after the other and look at the result once, at the end.
 *
 * A commit returns once its transaction is on disk, as with LMDB's defaults, but the
 * second of its two flushes is shared: see wait_for_sync. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <lmdb.h>

#include "scep_db.h"

/* Room for databases a later schema may add, so that an older module can still open the
 * files after a downgrade and refuse them by schema version rather than by DBS_FULL. */
#define MAX_DBS (SCEP_DBI_COUNT + 4)

/* An event MPM runs many threads per process, and every one may hold a read transaction
 * at the same time; LMDB's default of 126 slots is shared by all processes. */
#define MAX_READERS SCEP_DB_MAX_READERS

/* The map only grows by operator action, so more than a couple of resizes met by one
 * begin means something keeps changing it; give up rather than spin. */
#define MAX_RESIZE_RETRIES 3

static const struct {
    const char *name;
    unsigned int flags;
} dbi_specs[SCEP_DBI_COUNT] = {
    { "meta", 0 },
    { "devices", 0 },
    { "challenges", 0 },
    { "failures", 0 },
    { "transactions", 0 },
    { "certs", 0 },
    { "certs_by_fqdn", MDB_DUPSORT },
};

static const char schema_key[] = "schema";

struct scep_db_t {
    apr_pool_t *pool;
    const scep_db_backend_t *backend;   /* NULL: LMDB */
    void *conn;                         /* the backend's connection */
    MDB_env *env;
    const char *path;
    int readonly;
    scep_log_t log;                 /* a copy: the caller's may live on its stack */
    MDB_dbi dbi[SCEP_DBI_COUNT];
    int have[SCEP_DBI_COUNT];       /* 0 only when opened read-only and never created */
    /* wait_for_sync's state (read-write opens only) */
    int sync_fd;                    /* data.mdb, this process's own descriptor: see below */
    apr_thread_mutex_t *sync_lock;
    apr_thread_cond_t *sync_done;
    apr_uint64_t tickets;           /* handed out, one per wait */
    apr_uint64_t synced;            /* every ticket up to this one is served */
    int syncing;                    /* a thread is in fdatasync */
    int stopped;                    /* an fdatasync failed (its errno): no more transactions */
};

struct scep_txn_t {
    scep_db_t *db;
    apr_pool_t *pool;
    MDB_txn *txn;
    void *handle;                   /* the backend's transaction */
    apr_status_t status;            /* the first error met */
    int write;
    int touched;                    /* a put or delete was tried: the commit must be synced */
    int open;                       /* neither committed nor aborted yet */
};

/* ---- errors ------------------------------------------------------------------------ */

static apr_status_t map_rc(const scep_db_t *db, int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return APR_SUCCESS;
    case MDB_NOTFOUND:
        return SCEP_DB_NOTFOUND;
    case MDB_MAP_FULL:
        return SCEP_DB_FULL;
    case MDB_KEYEXIST:
        return SCEP_DB_EXISTS;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
    case MDB_INCOMPATIBLE:
        return SCEP_DB_CORRUPT;
    case MDB_READERS_FULL:
        return SCEP_DB_BUSY;
    case MDB_BAD_VALSIZE:
        return APR_EINVAL;
    default:
        break;
    }
    if (rc > 0) {
        return APR_FROM_OS_ERROR(rc);
    }
    /* What is left (transaction, cursor or page limits, bad handles) means a bug or a
     * limit nobody can act on from the status alone; keep LMDB's words in the log. */
    scep_log(db ? &db->log : NULL, SCEP_LOG_ERR, "SCEP00310: %s: LMDB: %s (%d)",
             db ? db->path : "?", mdb_strerror(rc), rc);
    return APR_EGENERAL;
}

const char *scep_db_strerror(apr_pool_t *p, apr_status_t status)
{
    char buf[256];

    switch (status) {
    case SCEP_DB_NOTFOUND:
        return "no such record";
    case SCEP_DB_FULL:
        return "the database map is full; raise its map size";
    case SCEP_DB_VERSION:
        return "the database was written by a newer version of mod_scep";
    case SCEP_DB_CORRUPT:
        return "the database or one of its records is corrupt";
    case SCEP_DB_EXISTS:
        return "the record already exists";
    case SCEP_DB_BUSY:
        return "every reader slot of the database is in use";
    case SCEP_DB_UNSYNCED:
        return "a write to the database could not be synced to disk; it is refused until "
               "the disk is checked and " SCEP_DB_SYNC_FAILED " is removed from its folder";
    case SCEP_DB_UNAVAILABLE:
        return "the shared database is unavailable (unreachable, failing over, or a "
               "statement failed or ran out of time)";
    default:
        return apr_pstrdup(p, apr_strerror(status, buf, sizeof(buf)));
    }
}

/* ---- durability ---------------------------------------------------------------------- */

/* The environment is opened with MDB_NOMETASYNC: a commit writes and syncs the new pages
 * while it holds the write lock, then writes the meta page that makes them current
 * without syncing it.  LMDB stays consistent like that (it never reuses the pages of the
 * last two snapshots), but the transaction would not yet survive a power cut, and other
 * transactions can already read it; so scep_db_commit waits for a sync of the meta page
 * before it returns, outside the lock, and so does scep_db_sync before an answer built
 * from what a transaction read.  Each wait takes a ticket, after its commit returned; one
 * fdatasync serves every ticket taken before it began, and a thread whose ticket is
 * served by a sync already running waits for that one.  The write lock is thus held for
 * one flush instead of two, and concurrent commits share the second: at 8 connections the
 * benchmark's p99 fell by a fifth (docs/performance.md).
 *
 * The syncs go through a descriptor of data.mdb that only this code uses.  Linux reports
 * a failed write-back once to each open file description: through LMDB's own, the error of
 * one thread's page could be reported to the sync of another, and the first would return
 * as if its page were on disk.  A failed fdatasync may have dropped the pages it was
 * given and a later one would not say so: the environment then refuses every transaction,
 * as LMDB does after a failed write.  Other processes learn it from a file left in the
 * folder, which refuses read-write opens until an operator has looked (open_env); a
 * process started after the error would otherwise go on writing over the gap. */

/* Under sync_lock: no pool (APR's are not shared between threads). */
static void stop(scep_db_t *db, int err)
{
    char marker[4096];
    int fd, left = 0;

    if (db->stopped) {
        return;
    }
    db->stopped = err;
    if (snprintf(marker, sizeof(marker), "%s/" SCEP_DB_SYNC_FAILED, db->path)
            < (int)sizeof(marker)
        && (fd = open(marker, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) >= 0) {
        left = dprintf(fd, "fdatasync of %s/data.mdb failed at %ld: %s\n", db->path,
                       (long)time(NULL), strerror(err)) > 0;
        left = fsync(fd) == 0 && left;
        left = close(fd) == 0 && left;
    }
    scep_log(&db->log, SCEP_LOG_ERR, "SCEP00311: %s: fdatasync failed: %s; what was written "
             "since the last sync may not be on disk, and the database is refused from now "
             "on%s: check the disk and the kernel log, run 'scepreg -V %s', %sthen restart "
             "httpd", db->path, strerror(err),
             left ? "" : " by this process (the file that tells the others could not be "
                         "written)",
             db->path, left ? "remove " SCEP_DB_SYNC_FAILED " from the folder, " : "");
}

static int wait_for_sync(scep_db_t *db)
{
    apr_uint64_t ticket;
    int rc;

    apr_thread_mutex_lock(db->sync_lock);
    ticket = ++db->tickets;
    while (db->synced < ticket && !db->stopped) {
        apr_uint64_t serves = db->tickets;

        if (db->syncing) {
            apr_thread_cond_wait(db->sync_done, db->sync_lock);
            continue;
        }
        db->syncing = 1;
        apr_thread_mutex_unlock(db->sync_lock);
        rc = fdatasync(db->sync_fd) == 0 ? 0 : errno;
        apr_thread_mutex_lock(db->sync_lock);
        db->syncing = 0;
        if (rc == 0) {
            db->synced = serves > db->synced ? serves : db->synced;
        }
        else {
            stop(db, rc);
        }
        apr_thread_cond_broadcast(db->sync_done);
    }
    rc = db->synced >= ticket ? 0 : db->stopped;
    apr_thread_mutex_unlock(db->sync_lock);
    return rc;
}

static int stopped(scep_db_t *db)
{
    int err;

    if (db->readonly) {
        return 0;
    }
    apr_thread_mutex_lock(db->sync_lock);
    err = db->stopped;
    apr_thread_mutex_unlock(db->sync_lock);
    return err;
}

/* mdb_txn_commit, then for a transaction that may have written, the wait.  A stopped
 * environment aborts instead: its files may lack pages a new snapshot would build on. */
static int commit_durably(scep_db_t *db, MDB_txn *t, int touched)
{
    int rc;

    if (stopped(db)) {
        mdb_txn_abort(t);
        return EIO;
    }
    rc = mdb_txn_commit(t);         /* frees the transaction even when it fails */
    if (rc != MDB_SUCCESS || !touched || db->readonly) {
        return rc;
    }
    return wait_for_sync(db);
}

apr_status_t scep_db_sync(scep_db_t *db)
{
    /* another engine's commit returns once it is durable */
    if (db->readonly || db->backend) {
        return APR_SUCCESS;
    }
    return wait_for_sync(db) == 0 ? APR_SUCCESS : SCEP_DB_UNSYNCED;
}

/* ---- the environment ----------------------------------------------------------------- */

static apr_status_t db_cleanup(void *data)
{
    scep_db_t *db = data;

    if (db->env) {
        mdb_env_close(db->env);
        db->env = NULL;
    }
    if (db->sync_fd >= 0) {
        close(db->sync_fd);
        db->sync_fd = -1;
    }
    return APR_SUCCESS;
}

static void put_be32(unsigned char *b, apr_uint32_t v)
{
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

static apr_uint32_t get_be32(const unsigned char *b)
{
    return ((apr_uint32_t)b[0] << 24) | ((apr_uint32_t)b[1] << 16)
           | ((apr_uint32_t)b[2] << 8) | (apr_uint32_t)b[3];
}

/* Checks the schema version in meta, writing it into a new database.  After the map was
 * grown the same value is written again: LMDB records a new map size in the file only
 * with a commit that changes something, and other processes learn it from there. */
static apr_status_t check_schema(scep_db_t *db, MDB_txn *t, int grew, apr_pool_t *p,
                                 const char **why)
{
    MDB_val k, v;
    unsigned char be[4];
    apr_uint32_t version;
    int rc;

    k.mv_size = sizeof(schema_key) - 1;
    k.mv_data = (void *)schema_key;
    rc = mdb_get(t, db->dbi[SCEP_DBI_META], &k, &v);
    if (rc == MDB_NOTFOUND) {
        if (db->readonly) {
            return APR_SUCCESS;
        }
        version = SCEP_DB_SCHEMA_VERSION;
        scep_log(&db->log, SCEP_LOG_INFO, "SCEP00305: %s: new database, schema version %d",
                 db->path, SCEP_DB_SCHEMA_VERSION);
    }
    else if (rc != MDB_SUCCESS) {
        *why = apr_psprintf(p, "%s: cannot read the schema version: %s", db->path,
                            mdb_strerror(rc));
        return map_rc(db, rc);
    }
    else {
        if (v.mv_size != 4) {
            *why = apr_psprintf(p, "%s: the schema version record has %" APR_SIZE_T_FMT
                                " bytes instead of 4", db->path, (apr_size_t)v.mv_size);
            return SCEP_DB_CORRUPT;
        }
        version = get_be32(v.mv_data);
        if (version > SCEP_DB_SCHEMA_VERSION) {
            *why = apr_psprintf(p, "%s: the database has schema version %lu, written by a "
                                "newer mod_scep; this one understands up to %d", db->path,
                                (unsigned long)version, SCEP_DB_SCHEMA_VERSION);
            return SCEP_DB_VERSION;
        }
        if (version == 0) {
            *why = apr_psprintf(p, "%s: the database has schema version 0", db->path);
            return SCEP_DB_CORRUPT;
        }
        if (!grew || db->readonly) {
            return APR_SUCCESS;
        }
    }
    put_be32(be, version);
    v.mv_size = sizeof(be);
    v.mv_data = be;
    rc = mdb_put(t, db->dbi[SCEP_DBI_META], &k, &v, 0);
    if (rc != MDB_SUCCESS) {
        *why = apr_psprintf(p, "%s: cannot write the schema version: %s", db->path,
                            mdb_strerror(rc));
        return map_rc(db, rc);
    }
    return APR_SUCCESS;
}

/* Opens every named database once, in one transaction, so that no request ever calls
 * mdb_dbi_open (which must not run in two transactions at a time).  The schema comes
 * first, so that a newer layout is refused before anything is created in it. */
static apr_status_t open_dbis(scep_db_t *db, int grew, apr_pool_t *p, const char **why)
{
    MDB_txn *t;
    apr_status_t rv;
    int rc, i;

    rc = mdb_txn_begin(db->env, NULL, db->readonly ? MDB_RDONLY : 0, &t);
    if (rc == MDB_READERS_FULL) {
        /* open_env cleared the slots of dead processes just before: live ones hold them */
        *why = apr_psprintf(p, "%s: every reader slot of the database is in use by a live "
                            "process ('mdb_stat -r %s' lists them)", db->path, db->path);
        return map_rc(db, rc);
    }
    if (rc != MDB_SUCCESS) {
        *why = apr_psprintf(p, "%s: cannot begin a transaction: %s", db->path,
                            mdb_strerror(rc));
        return map_rc(db, rc);
    }
    for (i = 0; i < SCEP_DBI_COUNT; i++) {
        rc = mdb_dbi_open(t, dbi_specs[i].name,
                          dbi_specs[i].flags | (db->readonly ? 0 : MDB_CREATE), &db->dbi[i]);
        if (rc == MDB_NOTFOUND && db->readonly) {
            continue;       /* read-only: behaves as an empty database */
        }
        if (rc != MDB_SUCCESS) {
            *why = apr_psprintf(p, "%s: cannot open the database '%s': %s", db->path,
                                dbi_specs[i].name, mdb_strerror(rc));
            mdb_txn_abort(t);
            return map_rc(db, rc);
        }
        db->have[i] = 1;
        if (i == SCEP_DBI_META
            && (rv = check_schema(db, t, grew, p, why)) != APR_SUCCESS) {
            mdb_txn_abort(t);
            return rv;
        }
    }
    /* A commit, even read-only: handles opened in an aborted transaction are closed. */
    rc = commit_durably(db, t, 1);
    if (rc != MDB_SUCCESS) {
        *why = apr_psprintf(p, "%s: cannot commit the database layout: %s", db->path,
                            mdb_strerror(rc));
        return map_rc(db, rc);
    }
    return APR_SUCCESS;
}

static apr_status_t open_env(scep_db_t *db, apr_size_t map_size, int flags, apr_pool_t *p,
                             const char **why)
{
    apr_finfo_t finfo;
    apr_status_t rv;
    MDB_envinfo info;
    int rc, existing, dead = 0, grew = 0;
    char buf[256];

    if (!db->readonly
        && apr_stat(&finfo, apr_pstrcat(p, db->path, "/" SCEP_DB_SYNC_FAILED, NULL),
                    APR_FINFO_TYPE, p) == APR_SUCCESS) {
        *why = apr_psprintf(p, "%s: a sync of the database failed earlier (see the file "
                            SCEP_DB_SYNC_FAILED " in it, and SCEP00311 in the error log): "
                            "check the disk, run 'scepreg -V %s', then remove that file",
                            db->path, db->path);
        return SCEP_DB_UNSYNCED;
    }
    rv = apr_stat(&finfo, apr_pstrcat(p, db->path, "/data.mdb", NULL), APR_FINFO_SIZE, p);
    existing = (rv == APR_SUCCESS && finfo.size > 0);
    if (!existing && (db->readonly || !(flags & SCEP_DB_CREATE))) {
        /* LMDB would quietly create the files; without SCEP_DB_CREATE that is a mistake. */
        rv = apr_stat(&finfo, db->path, APR_FINFO_TYPE, p);
        if (rv != APR_SUCCESS) {
            *why = apr_psprintf(p, "%s: %s", db->path, apr_strerror(rv, buf, sizeof(buf)));
            return rv;
        }
        *why = apr_psprintf(p, "%s: no database in this folder (data.mdb is missing or "
                            "empty)", db->path);
        return APR_ENOENT;
    }
    if (!existing) {
        const char *slash = strrchr(db->path, '/');

        /* Only the database folder is private: parents made here stay searchable, or
         * httpd's children could never reach a folder their parent process made. */
        rv = APR_SUCCESS;
        if (slash && slash != db->path) {
            rv = apr_dir_make_recursive(apr_pstrmemdup(p, db->path,
                                                       (apr_size_t)(slash - db->path)),
                                        APR_FPROT_OS_DEFAULT, p);
        }
        if (rv == APR_SUCCESS || APR_STATUS_IS_EEXIST(rv)) {
            rv = apr_dir_make(db->path, APR_FPROT_UREAD | APR_FPROT_UWRITE
                              | APR_FPROT_UEXECUTE, p);
        }
        if (rv != APR_SUCCESS && !APR_STATUS_IS_EEXIST(rv)) {
            *why = apr_psprintf(p, "%s: cannot create the folder: %s", db->path,
                                apr_strerror(rv, buf, sizeof(buf)));
            return rv;
        }
    }

    rc = mdb_env_create(&db->env);
    if (rc != MDB_SUCCESS) {
        db->env = NULL;
        *why = apr_psprintf(p, "%s: cannot create the LMDB environment: %s", db->path,
                            mdb_strerror(rc));
        return map_rc(db, rc);
    }
    apr_pool_cleanup_register(db->pool, db, db_cleanup, apr_pool_cleanup_null);
    if ((rc = mdb_env_set_maxdbs(db->env, MAX_DBS)) != MDB_SUCCESS
        || (rc = mdb_env_set_maxreaders(db->env, MAX_READERS)) != MDB_SUCCESS
        || (!existing && (rc = mdb_env_set_mapsize(db->env, map_size ? map_size
                                                   : SCEP_DB_DEFAULT_MAP_SIZE))
            != MDB_SUCCESS)) {
        *why = apr_psprintf(p, "%s: cannot configure the LMDB environment: %s", db->path,
                            mdb_strerror(rc));
        return map_rc(db, rc);
    }
    /* MDB_NOTLS: reader slots belong to transactions, not threads, since an event MPM
     * may end a request on another thread than the one that began it. */
    rc = mdb_env_open(db->env, db->path,
                      MDB_NOTLS | (db->readonly ? MDB_RDONLY : MDB_NOMETASYNC), 0600);
    if (rc == MDB_VERSION_MISMATCH) {
        *why = apr_psprintf(p, "%s: the files were written by an incompatible version of "
                            "LMDB", db->path);
        return SCEP_DB_CORRUPT;
    }
    if (rc == MDB_INVALID) {
        *why = apr_psprintf(p, "%s: data.mdb is not an LMDB database", db->path);
        return SCEP_DB_CORRUPT;
    }
    if (rc != MDB_SUCCESS) {
        *why = apr_psprintf(p, "%s: cannot open the database: %s", db->path,
                            mdb_strerror(rc));
        return map_rc(db, rc);
    }
    if (!db->readonly) {
        const char *data = apr_pstrcat(p, db->path, "/data.mdb", NULL);

        db->sync_fd = open(data, O_RDONLY | O_CLOEXEC);
        if (db->sync_fd < 0) {
            rv = APR_FROM_OS_ERROR(errno);
            *why = apr_psprintf(p, "%s: cannot open it for syncing: %s", data,
                                apr_strerror(rv, buf, sizeof(buf)));
            return rv;
        }
    }

    /* Slots of processes that died inside a read transaction pin old pages forever and
     * eventually fill the reader table. */
    if (mdb_reader_check(db->env, &dead) == MDB_SUCCESS && dead > 0) {
        scep_log(&db->log, SCEP_LOG_NOTICE, "SCEP00301: cleared %d stale reader slot(s) in %s",
                 dead, db->path);
    }

    if (existing && map_size && !db->readonly
        && mdb_env_info(db->env, &info) == MDB_SUCCESS && map_size > info.me_mapsize) {
        rc = mdb_env_set_mapsize(db->env, map_size);
        if (rc != MDB_SUCCESS) {
            *why = apr_psprintf(p, "%s: cannot grow the map to %" APR_SIZE_T_FMT " bytes: %s",
                                db->path, map_size, mdb_strerror(rc));
            return map_rc(db, rc);
        }
        scep_log(&db->log, SCEP_LOG_INFO, "SCEP00303: %s: map size grown from %"
                 APR_SIZE_T_FMT " to %" APR_SIZE_T_FMT " bytes", db->path,
                 (apr_size_t)info.me_mapsize, map_size);
        grew = 1;
    }
    return open_dbis(db, grew, p, why);
}

apr_status_t scep_db_open(apr_pool_t *p, const char *dir, apr_size_t map_size, int flags,
                          const scep_log_t *log, scep_db_t **db, const char **why)
{
    scep_db_t *d;
    const char *reason = NULL;
    apr_status_t rv;

    *db = NULL;
    d = apr_pcalloc(p, sizeof(*d));
    d->pool = p;
    d->path = apr_pstrdup(p, dir);
    d->readonly = (flags & SCEP_DB_READONLY) != 0;
    d->sync_fd = -1;
    if (log) {
        d->log = *log;
    }
    if ((rv = apr_thread_mutex_create(&d->sync_lock, APR_THREAD_MUTEX_DEFAULT, p))
            != APR_SUCCESS
        || (rv = apr_thread_cond_create(&d->sync_done, p)) != APR_SUCCESS) {
        if (why) {
            *why = scep_db_strerror(p, rv);
        }
        return rv;
    }
    rv = open_env(d, map_size, flags, p, &reason);
    if (rv != APR_SUCCESS) {
        if (d->env) {
            apr_pool_cleanup_run(p, d, db_cleanup);
        }
        if (why) {
            *why = reason ? reason : scep_db_strerror(p, rv);
        }
        return rv;
    }
    if (why) {
        *why = NULL;
    }
    *db = d;
    return APR_SUCCESS;
}

const char *scep_db_path(const scep_db_t *db)
{
    return db->path;
}

apr_status_t scep_db_attach(apr_pool_t *p, const scep_db_backend_t *backend, void *conn,
                            const char *label, const scep_log_t *log, scep_db_t **db)
{
    scep_db_t *d = apr_pcalloc(p, sizeof(*d));

    if (!backend || !conn) {
        return APR_EINVAL;
    }
    d->pool = p;
    d->backend = backend;
    d->conn = conn;
    d->path = apr_pstrdup(p, label ? label : backend->name);
    d->sync_fd = -1;
    if (log) {
        d->log = *log;
    }
    *db = d;
    return APR_SUCCESS;
}

const char *scep_db_engine(const scep_db_t *db)
{
    return db->backend ? db->backend->name : NULL;
}

void *scep_db_backend_conn(const scep_db_t *db)
{
    return db->conn;
}

void *scep_db_backend_txn(const scep_txn_t *txn)
{
    return txn && txn->db->backend ? txn->handle : NULL;
}

const scep_log_t *scep_db_log(const scep_db_t *db)
{
    return &db->log;
}

apr_size_t scep_db_map_size(const scep_db_t *db)
{
    MDB_envinfo info;

    if (!db->env || mdb_env_info(db->env, &info) != MDB_SUCCESS) {
        return 0;
    }
    return info.me_mapsize;
}

/* ---- transactions ------------------------------------------------------------------- */

static apr_status_t txn_cleanup(void *data)
{
    scep_txn_t *txn = data;

    if (txn->open) {
        if (txn->db->backend) {
            txn->db->backend->abort(txn->handle);
        }
        else {
            mdb_txn_abort(txn->txn);
        }
        txn->txn = NULL;
        txn->handle = NULL;
        txn->open = 0;
    }
    return APR_SUCCESS;
}

static void txn_finished(scep_txn_t *txn)
{
    txn->txn = NULL;
    txn->handle = NULL;
    txn->open = 0;
    apr_pool_cleanup_kill(txn->pool, txn, txn_cleanup);
}

static apr_status_t txn_fail(scep_txn_t *txn, apr_status_t rv)
{
    if (txn->status == APR_SUCCESS) {
        txn->status = rv;
    }
    return rv;
}

apr_status_t scep_db_txn_fail(scep_txn_t *txn, apr_status_t rv)
{
    return txn ? txn_fail(txn, rv) : rv;
}

/* The common entry check: a live transaction, no error yet, a known database. */
static apr_status_t txn_usable(scep_txn_t *txn, scep_dbi_e dbi)
{
    if (!txn) {
        return APR_EINVAL;
    }
    if (txn->status != APR_SUCCESS) {
        return txn->status;
    }
    if (!txn->open) {
        return APR_EINVAL;      /* already committed or aborted */
    }
    if (txn->db->backend) {
        return txn_fail(txn, APR_ENOTIMPL);     /* records go through scep_store there */
    }
    if ((int)dbi < 0 || dbi >= SCEP_DBI_COUNT) {
        return txn_fail(txn, APR_EINVAL);
    }
    return APR_SUCCESS;
}

/* Whether LMDB could hold this key at all; one it could not is simply not there. */
static int key_storable(const scep_txn_t *txn, apr_size_t klen)
{
    return klen > 0 && klen <= (apr_size_t)mdb_env_get_maxkeysize(txn->db->env);
}

static apr_status_t begin_backend(scep_db_t *db, apr_pool_t *p, int write, scep_txn_t **txn)
{
    scep_txn_t *t;
    void *handle = NULL;
    apr_status_t rv = db->backend->begin(db->conn, p, write, &handle);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    t = apr_pcalloc(p, sizeof(*t));
    t->db = db;
    t->pool = p;
    t->handle = handle;
    t->write = write != 0;
    t->open = 1;
    apr_pool_cleanup_register(p, t, txn_cleanup, apr_pool_cleanup_null);
    *txn = t;
    return APR_SUCCESS;
}

apr_status_t scep_db_begin(scep_db_t *db, apr_pool_t *p, int write, scep_txn_t **txn)
{
    scep_txn_t *t;
    MDB_txn *mt = NULL;
    int rc, cleared = 0, resizes = 0, dead;

    *txn = NULL;
    if (db->backend) {
        return begin_backend(db, p, write, txn);
    }
    if (stopped(db)) {
        return SCEP_DB_UNSYNCED;
    }
    for (;;) {
        rc = mdb_txn_begin(db->env, NULL, write ? 0 : MDB_RDONLY, &mt);
        if (rc == MDB_READERS_FULL && !cleared) {
            cleared = 1;
            dead = 0;
            if (mdb_reader_check(db->env, &dead) == MDB_SUCCESS && dead > 0) {
                scep_log(&db->log, SCEP_LOG_NOTICE,
                         "SCEP00304: cleared %d stale reader slot(s) in %s", dead, db->path);
            }
            continue;
        }
        if (rc == MDB_MAP_RESIZED && resizes < MAX_RESIZE_RETRIES) {
            resizes++;
            /* Size 0 adopts the size another process wrote into the file. */
            rc = mdb_env_set_mapsize(db->env, 0);
            if (rc != MDB_SUCCESS) {
                break;
            }
            scep_log(&db->log, SCEP_LOG_INFO, "SCEP00302: %s: adopted the map size of %"
                     APR_SIZE_T_FMT " bytes another process set", db->path,
                     scep_db_map_size(db));
            continue;
        }
        break;
    }
    if (rc != MDB_SUCCESS) {
        return map_rc(db, rc);
    }
    t = apr_pcalloc(p, sizeof(*t));
    t->db = db;
    t->pool = p;
    t->txn = mt;
    t->write = write != 0;
    t->open = 1;
    apr_pool_cleanup_register(p, t, txn_cleanup, apr_pool_cleanup_null);
    *txn = t;
    return APR_SUCCESS;
}

apr_status_t scep_db_commit(scep_txn_t *txn)
{
    int rc = MDB_SUCCESS;

    if (!txn || !txn->open) {
        return APR_EINVAL;
    }
    if (txn->db->backend) {
        apr_status_t rv = APR_SUCCESS;

        if (txn->status != APR_SUCCESS) {
            txn->db->backend->abort(txn->handle);
        }
        else {
            rv = txn->db->backend->commit(txn->handle);
        }
        txn_finished(txn);
        if (rv != APR_SUCCESS) {
            txn_fail(txn, rv);
        }
        return txn->status;
    }
    if (txn->status != APR_SUCCESS || !txn->write) {
        mdb_txn_abort(txn->txn);
    }
    else {
        rc = commit_durably(txn->db, txn->txn, txn->touched);
    }
    txn_finished(txn);
    if (rc != MDB_SUCCESS) {
        txn_fail(txn, stopped(txn->db) ? SCEP_DB_UNSYNCED : map_rc(txn->db, rc));
    }
    return txn->status;
}

void scep_db_abort(scep_txn_t *txn)
{
    if (!txn || !txn->open) {
        return;
    }
    if (txn->db->backend) {
        txn->db->backend->abort(txn->handle);
    }
    else {
        mdb_txn_abort(txn->txn);
    }
    txn_finished(txn);
}

apr_status_t scep_db_txn_status(const scep_txn_t *txn)
{
    return txn ? txn->status : APR_EINVAL;
}

apr_status_t scep_db_get(scep_txn_t *txn, scep_dbi_e dbi, const void *key, apr_size_t klen,
                         const void **val, apr_size_t *vlen)
{
    MDB_val k, v;
    apr_status_t rv;
    int rc;

    *val = NULL;
    *vlen = 0;
    if ((rv = txn_usable(txn, dbi)) != APR_SUCCESS) {
        return rv;
    }
    if (!txn->db->have[dbi] || !key_storable(txn, klen)) {
        return SCEP_DB_NOTFOUND;
    }
    k.mv_size = klen;
    k.mv_data = (void *)key;
    rc = mdb_get(txn->txn, txn->db->dbi[dbi], &k, &v);
    if (rc == MDB_NOTFOUND) {
        return SCEP_DB_NOTFOUND;
    }
    if (rc != MDB_SUCCESS) {
        return txn_fail(txn, map_rc(txn->db, rc));
    }
    *val = v.mv_data;
    *vlen = v.mv_size;
    return APR_SUCCESS;
}

apr_status_t scep_db_put(scep_txn_t *txn, scep_dbi_e dbi, const void *key, apr_size_t klen,
                         const void *val, apr_size_t vlen, int flags)
{
    int dupsort, rc;
    unsigned int mflags = 0;
    apr_status_t rv;
    MDB_val k, v;

    if ((rv = txn_usable(txn, dbi)) != APR_SUCCESS) {
        return rv;
    }
    if (!txn->write) {
        return txn_fail(txn, APR_EACCES);
    }
    txn->touched = 1;
    dupsort = (dbi_specs[dbi].flags & MDB_DUPSORT) != 0;
    if (flags & SCEP_DB_NOOVERWRITE) {
        /* In the dup-sorted database "exists" means this very key/value pair. */
        mflags = dupsort ? MDB_NODUPDATA : MDB_NOOVERWRITE;
    }
    k.mv_size = klen;
    k.mv_data = (void *)key;
    v.mv_size = vlen;
    v.mv_data = (void *)val;
    rc = mdb_put(txn->txn, txn->db->dbi[dbi], &k, &v, mflags);
    if (rc == MDB_KEYEXIST && dupsort && !(flags & SCEP_DB_NOOVERWRITE)) {
        return APR_SUCCESS;     /* the pair is there already, which is what was asked */
    }
    if (rc != MDB_SUCCESS) {
        return txn_fail(txn, map_rc(txn->db, rc));
    }
    return APR_SUCCESS;
}

apr_status_t scep_db_del(scep_txn_t *txn, scep_dbi_e dbi, const void *key, apr_size_t klen,
                         const void *val, apr_size_t vlen)
{
    MDB_val k, v;
    apr_status_t rv;
    int rc;

    if ((rv = txn_usable(txn, dbi)) != APR_SUCCESS) {
        return rv;
    }
    if (!txn->write) {
        return txn_fail(txn, APR_EACCES);
    }
    txn->touched = 1;
    if (!key_storable(txn, klen)) {
        return SCEP_DB_NOTFOUND;
    }
    k.mv_size = klen;
    k.mv_data = (void *)key;
    v.mv_size = vlen;
    v.mv_data = (void *)val;
    rc = mdb_del(txn->txn, txn->db->dbi[dbi], &k,
                 (val && (dbi_specs[dbi].flags & MDB_DUPSORT)) ? &v : NULL);
    /* Like a get's, a delete's "not found" is a result: "remove if present" must not
     * spoil the rest of the transaction. */
    if (rc == MDB_NOTFOUND) {
        return SCEP_DB_NOTFOUND;
    }
    if (rc != MDB_SUCCESS) {
        return txn_fail(txn, map_rc(txn->db, rc));
    }
    return APR_SUCCESS;
}

apr_status_t scep_db_foreach(scep_txn_t *txn, scep_dbi_e dbi, const void *prefix,
                             apr_size_t prefix_len, scep_db_visit_fn fn, void *baton)
{
    MDB_cursor *cur;
    MDB_cursor_op op = MDB_FIRST;
    MDB_val k, v;
    apr_status_t rv;
    int rc;

    if ((rv = txn_usable(txn, dbi)) != APR_SUCCESS) {
        return rv;
    }
    if (!txn->db->have[dbi] || (prefix_len && !key_storable(txn, prefix_len))) {
        return APR_SUCCESS;
    }
    rc = mdb_cursor_open(txn->txn, txn->db->dbi[dbi], &cur);
    if (rc != MDB_SUCCESS) {
        return txn_fail(txn, map_rc(txn->db, rc));
    }
    if (prefix_len) {
        k.mv_size = prefix_len;
        k.mv_data = (void *)prefix;
        op = MDB_SET_RANGE;
    }
    /* MDB_NEXT walks the duplicates of a key before moving to the next key. */
    while ((rc = mdb_cursor_get(cur, &k, &v, op)) == MDB_SUCCESS) {
        if (prefix_len && (k.mv_size < prefix_len
                           || memcmp(k.mv_data, prefix, prefix_len) != 0)) {
            break;
        }
        if (fn(baton, k.mv_data, k.mv_size, v.mv_data, v.mv_size)) {
            break;
        }
        op = MDB_NEXT;
    }
    mdb_cursor_close(cur);
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
        return txn_fail(txn, map_rc(txn->db, rc));
    }
    return APR_SUCCESS;
}

apr_status_t scep_db_count(scep_txn_t *txn, scep_dbi_e dbi, apr_size_t *count)
{
    MDB_stat st;
    apr_status_t rv;
    int rc;

    *count = 0;
    if ((rv = txn_usable(txn, dbi)) != APR_SUCCESS) {
        return rv;
    }
    if (!txn->db->have[dbi]) {
        return APR_SUCCESS;
    }
    rc = mdb_stat(txn->txn, txn->db->dbi[dbi], &st);
    if (rc != MDB_SUCCESS) {
        return txn_fail(txn, map_rc(txn->db, rc));
    }
    *count = st.ms_entries;
    return APR_SUCCESS;
}

/* ---- versioned records ----------------------------------------------------------------
 * The builder has no way to report an error, so a field it cannot encode (a tag above
 * 255, four gigabytes or more) empties the whole record instead: an empty value never
 * parses, so the mistake surfaces as SCEP_DB_CORRUPT on the first read rather than as
 * a record silently missing a field. */

#define FIELD_HEADER 5
#define FIELD_MAX ((apr_uint64_t)0xffffffffu)

static void rec_poison(scep_rec_t *rec)
{
    rec->data = NULL;
    rec->len = rec->cap = 0;
}

static int rec_reserve(scep_rec_t *rec, apr_size_t more)
{
    unsigned char *grown;
    apr_size_t cap;

    if (more > (apr_size_t)-1 - rec->len) {
        return 0;
    }
    if (rec->len + more <= rec->cap) {
        return 1;
    }
    cap = rec->cap ? rec->cap : 64;
    while (cap < rec->len + more) {
        if (cap > (apr_size_t)-1 / 2) {
            cap = rec->len + more;
            break;
        }
        cap *= 2;
    }
    grown = apr_palloc(rec->pool, cap);
    if (rec->len) {
        memcpy(grown, rec->data, rec->len);
    }
    rec->data = grown;
    rec->cap = cap;
    return 1;
}

void scep_db_rec_init(scep_rec_t *rec, apr_pool_t *p)
{
    rec->pool = p;
    rec->data = NULL;
    rec->len = rec->cap = 0;
    rec_reserve(rec, 64);
    rec->data[rec->len++] = SCEP_DB_RECORD_VERSION;
}

void scep_db_rec_put_bytes(scep_rec_t *rec, unsigned int tag, const void *v, apr_size_t len)
{
    unsigned char *d;

    if (!rec->data) {
        return;     /* poisoned earlier */
    }
    if (tag > 255 || (apr_uint64_t)len > FIELD_MAX || len > (apr_size_t)-1 - FIELD_HEADER
        || !rec_reserve(rec, FIELD_HEADER + len)) {
        rec_poison(rec);
        return;
    }
    d = rec->data + rec->len;
    d[0] = (unsigned char)tag;
    put_be32(d + 1, (apr_uint32_t)len);
    if (len) {
        memcpy(d + FIELD_HEADER, v, len);
    }
    rec->len += FIELD_HEADER + len;
}

void scep_db_rec_put_str(scep_rec_t *rec, unsigned int tag, const char *s)
{
    if (s) {
        scep_db_rec_put_bytes(rec, tag, s, strlen(s));
    }
}

void scep_db_rec_put_i64(scep_rec_t *rec, unsigned int tag, apr_int64_t v)
{
    apr_uint64_t u = (apr_uint64_t)v;
    unsigned char b[8];
    int i;

    for (i = 7; i >= 0; i--) {
        b[i] = (unsigned char)u;
        u >>= 8;
    }
    scep_db_rec_put_bytes(rec, tag, b, sizeof(b));
}

apr_status_t scep_db_rec_parse(const void *data, apr_size_t len, scep_rec_view_t *view)
{
    const unsigned char *d = data;
    apr_size_t pos;
    apr_uint32_t flen;
    unsigned int tag;

    memset(view, 0, sizeof(*view));
    if (!d || len == 0 || d[0] == 0) {
        return SCEP_DB_CORRUPT;
    }
    if (d[0] > SCEP_DB_RECORD_VERSION) {
        return SCEP_DB_VERSION;
    }
    for (pos = 1; pos < len; pos += flen) {
        if (len - pos < FIELD_HEADER) {
            goto corrupt;
        }
        tag = d[pos];
        flen = get_be32(d + pos + 1);
        pos += FIELD_HEADER;
        if (flen > len - pos) {
            goto corrupt;
        }
        view->field[tag] = d + pos;
        view->field_len[tag] = flen;
        view->present[tag] = 1;
    }
    return APR_SUCCESS;

corrupt:
    /* Half a view would tempt a caller into using it. */
    memset(view, 0, sizeof(*view));
    return SCEP_DB_CORRUPT;
}

const char *scep_db_rec_str(const scep_rec_view_t *view, unsigned int tag, apr_pool_t *p)
{
    if (tag > 255 || !view->present[tag]) {
        return NULL;
    }
    return apr_pstrmemdup(p, (const char *)view->field[tag], view->field_len[tag]);
}

apr_int64_t scep_db_rec_i64(const scep_rec_view_t *view, unsigned int tag, apr_int64_t dflt)
{
    apr_uint64_t u = 0;
    int i;

    if (tag > 255 || !view->present[tag] || view->field_len[tag] != 8) {
        return dflt;
    }
    for (i = 0; i < 8; i++) {
        u = (u << 8) | view->field[tag][i];
    }
    /* Two's complement back to signed without relying on the implementation's
     * conversion of an out-of-range unsigned value. */
    if (u > (apr_uint64_t)APR_INT64_MAX) {
        return -(apr_int64_t)(~u) - 1;
    }
    return (apr_int64_t)u;
}

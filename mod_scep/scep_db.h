/* SPDX-License-Identifier: Apache-2.0 */
/* The one owner of LMDB: opening the environment and its named databases, transactions
 * that keep their first error (so callers stay linear), the mapping from LMDB codes to
 * ours, the retries LMDB asks for, and the versioned record format every record uses.
 * What the records mean lives in scep_policy; nothing here knows about devices.
 *
 * A database may instead be another engine's (scep_sql: PostgreSQL), attached through
 * scep_db_attach: callers keep the same begin/commit/abort, and scep_store reaches the
 * engine's own transaction with scep_db_backend_txn.  The key-value calls below are
 * LMDB's only and return APR_ENOTIMPL on such a database.
 *
 * Rules the callers rely on:
 * - One scep_db_t per process, opened after fork (httpd: child_init), never inherited.
 * - Transactions are short and hold no cryptography.  A read transaction may be used
 *   from one thread only; write transactions are serialised by LMDB across processes.
 * - Commits are durable (no MDB_NOSYNC). */
#ifndef SCEP_DB_H
#define SCEP_DB_H

#include <apr_pools.h>
#include <apr_errno.h>

#include "scep_util.h"

/* Our status codes, beside APR's. */
#define SCEP_DB_NOTFOUND (APR_OS_START_USERERR + 100) /* a result, not an error */
#define SCEP_DB_FULL     (APR_OS_START_USERERR + 101) /* map full: raise the map size */
#define SCEP_DB_VERSION  (APR_OS_START_USERERR + 102) /* written by a newer mod_scep */
#define SCEP_DB_CORRUPT  (APR_OS_START_USERERR + 103) /* a record that cannot be decoded */
#define SCEP_DB_EXISTS   (APR_OS_START_USERERR + 104) /* put with SCEP_DB_NOOVERWRITE */
#define SCEP_DB_BUSY     (APR_OS_START_USERERR + 105) /* reader table full after cleanup */
#define SCEP_DB_UNSYNCED (APR_OS_START_USERERR + 106) /* an fdatasync failed: see below */
/* A shared database did not answer, is failing over, refused a statement or ran out of
 * time: nothing was written, and the same request may succeed later. */
#define SCEP_DB_UNAVAILABLE (APR_OS_START_USERERR + 107)

/* Left in the folder when a sync fails; read-write opens are refused while it is there. */
#define SCEP_DB_SYNC_FAILED "SYNC-FAILED"

/* The named databases.  The numbering is internal; names on disk are fixed. */
typedef enum scep_dbi_e {
    SCEP_DBI_META = 0,        /* "schema" -> format version */
    SCEP_DBI_DEVICES,         /* normalised FQDN or wildcard -> device record */
    SCEP_DBI_CHALLENGES,      /* SHA-256 of a minted challenge -> challenge record */
    SCEP_DBI_FAILURES,        /* requested FQDN -> failure counter and lockout */
    SCEP_DBI_TRANSACTIONS,    /* transactionID -> transaction record */
    SCEP_DBI_CERTS,           /* serial (big-endian bytes) -> certificate record */
    SCEP_DBI_CERTS_BY_FQDN,   /* FQDN -> serials (duplicates sorted) */
    SCEP_DBI_COUNT
} scep_dbi_e;

#define SCEP_DB_SCHEMA_VERSION 1
#define SCEP_DB_DEFAULT_MAP_SIZE ((apr_size_t)1024 * 1024 * 1024)
/* Reader slots of an environment, shared by every process that opens it: each read
 * transaction in flight takes one (the table size is fixed by the first opener). */
#define SCEP_DB_MAX_READERS 1024

typedef struct scep_db_t scep_db_t;
typedef struct scep_txn_t scep_txn_t;

/* Open flags. */
#define SCEP_DB_CREATE   0x1   /* create the files (and the folder, mode 0700) if absent */
#define SCEP_DB_READONLY 0x2

/* Opens (and with SCEP_DB_CREATE creates) the environment in folder `dir`.  map_size 0
 * keeps the size the environment already has (or the default for a new one); a larger
 * value grows it.  Closed by a cleanup on `p`.  Errors: APR errno values for the file
 * system, SCEP_DB_VERSION for a newer schema, SCEP_DB_CORRUPT; *why says what (in p). */
apr_status_t scep_db_open(apr_pool_t *p, const char *dir, apr_size_t map_size, int flags,
                          const scep_log_t *log, scep_db_t **db, const char **why);

/* The folder and the map size in use (another engine: its label, and 0). */
const char *scep_db_path(const scep_db_t *db);
apr_size_t scep_db_map_size(const scep_db_t *db);

/* ---- other engines ------------------------------------------------------------------
 * An engine gives its transactions; the first error a step meets is kept in the
 * scep_txn_t as for LMDB (scep_db_txn_fail), and a commit after an error rolls back. */
typedef struct scep_db_backend_t {
    const char *name;                   /* "pgsql" */
    /* *handle is the engine's transaction, handed back by scep_db_backend_txn */
    apr_status_t (*begin)(void *conn, apr_pool_t *p, int write, void **handle);
    apr_status_t (*commit)(void *handle);
    void (*abort)(void *handle);        /* also run by the pool cleanup of an open one */
} scep_db_backend_t;

/* A database served by `backend` over `conn` (which the caller keeps alive as long as
 * `p`); label names it in logs, without secrets. */
apr_status_t scep_db_attach(apr_pool_t *p, const scep_db_backend_t *backend, void *conn,
                            const char *label, const scep_log_t *log, scep_db_t **db);
/* The engine's name, NULL for LMDB. */
const char *scep_db_engine(const scep_db_t *db);
/* The engine's connection, and a transaction's own handle; NULL for LMDB. */
void *scep_db_backend_conn(const scep_db_t *db);
void *scep_db_backend_txn(const scep_txn_t *txn);
/* The database's log, for an engine's messages. */
const scep_log_t *scep_db_log(const scep_db_t *db);
/* Records `rv` as the transaction's error unless it has one; returns rv. */
apr_status_t scep_db_txn_fail(scep_txn_t *txn, apr_status_t rv);

/* A sentence for any status this unit returns (for logs and the tool). */
const char *scep_db_strerror(apr_pool_t *p, apr_status_t status);

/* Begins a transaction.  MDB_READERS_FULL: stale reader slots are cleared and the begin is
 * tried once more (then SCEP_DB_BUSY).  MDB_MAP_RESIZED: the new size is adopted and the
 * begin retried.  The transaction's memory comes from `p`. */
apr_status_t scep_db_begin(scep_db_t *db, apr_pool_t *p, int write, scep_txn_t **txn);

/* Commits a write transaction (or ends a read one), and returns once it is on disk.
 * Returns the first error the transaction met, in which case nothing is written;
 * SCEP_DB_FULL when the map is full; SCEP_DB_UNSYNCED when the sync failed: the commit
 * may or may not have reached the disk, every later begin returns SCEP_DB_UNSYNCED, and
 * read-write opens of the folder are refused while SCEP_DB_SYNC_FAILED is in it. */
apr_status_t scep_db_commit(scep_txn_t *txn);

/* Returns once everything a transaction could read before the call is on disk (a commit
 * is made current before it is synced: see scep_db.c).  For an answer that hands out what
 * a read found, such as a recorded certificate.  SCEP_DB_UNSYNCED when the sync failed.
 * A read-only database returns APR_SUCCESS at once. */
apr_status_t scep_db_sync(scep_db_t *db);

/* Throws the transaction away.  Safe on NULL and after commit. */
void scep_db_abort(scep_txn_t *txn);

/* The first error the transaction met (APR_SUCCESS if none).  SCEP_DB_NOTFOUND from a get
 * is returned to the caller but never recorded as the transaction's error. */
apr_status_t scep_db_txn_status(const scep_txn_t *txn);

/* Gets a value.  *val points into the map and is valid until the transaction ends. */
apr_status_t scep_db_get(scep_txn_t *txn, scep_dbi_e dbi, const void *key, apr_size_t klen,
                         const void **val, apr_size_t *vlen);

#define SCEP_DB_NOOVERWRITE 0x1
apr_status_t scep_db_put(scep_txn_t *txn, scep_dbi_e dbi, const void *key, apr_size_t klen,
                         const void *val, apr_size_t vlen, int flags);

/* Deletes a key (for SCEP_DBI_CERTS_BY_FQDN, `val` selects one duplicate; NULL deletes
 * all).  SCEP_DB_NOTFOUND when there was nothing to delete. */
apr_status_t scep_db_del(scep_txn_t *txn, scep_dbi_e dbi, const void *key, apr_size_t klen,
                         const void *val, apr_size_t vlen);

/* Calls fn for every record whose key starts with `prefix` (all when prefix_len is 0), in
 * key order; for the dup-sorted database, once per duplicate.  fn returns non-zero to
 * stop.  The pointers are valid during the call only. */
typedef int (*scep_db_visit_fn)(void *baton, const void *key, apr_size_t klen,
                                const void *val, apr_size_t vlen);
apr_status_t scep_db_foreach(scep_txn_t *txn, scep_dbi_e dbi, const void *prefix,
                             apr_size_t prefix_len, scep_db_visit_fn fn, void *baton);

/* Number of records in a database. */
apr_status_t scep_db_count(scep_txn_t *txn, scep_dbi_e dbi, apr_size_t *count);

/* ---- versioned records -------------------------------------------------------------
 * A record is a version byte followed by fields: a one-byte tag, a four-byte big-endian
 * length, the bytes.  Readers skip tags they do not know, so new fields can be added
 * without a migration; a record whose version is newer than SCEP_DB_RECORD_VERSION is
 * refused with SCEP_DB_VERSION. */
#define SCEP_DB_RECORD_VERSION 1

typedef struct scep_rec_t {
    apr_pool_t *pool;
    unsigned char *data;
    apr_size_t len, cap;
} scep_rec_t;

void scep_db_rec_init(scep_rec_t *rec, apr_pool_t *p);
void scep_db_rec_put_bytes(scep_rec_t *rec, unsigned int tag, const void *v, apr_size_t len);
void scep_db_rec_put_str(scep_rec_t *rec, unsigned int tag, const char *s); /* NULL: omitted */
void scep_db_rec_put_i64(scep_rec_t *rec, unsigned int tag, apr_int64_t v);

/* A decoded record: each tag's last value (tags 0..255), pointing into the input. */
typedef struct scep_rec_view_t {
    const unsigned char *field[256];
    apr_uint32_t field_len[256];
    unsigned char present[256];
} scep_rec_view_t;

apr_status_t scep_db_rec_parse(const void *data, apr_size_t len, scep_rec_view_t *view);
/* Field readers: the `present` flag says whether the tag was there at all. */
const char *scep_db_rec_str(const scep_rec_view_t *view, unsigned int tag, apr_pool_t *p);
apr_int64_t scep_db_rec_i64(const scep_rec_view_t *view, unsigned int tag, apr_int64_t dflt);

#endif

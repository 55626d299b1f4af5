/* SPDX-License-Identifier: Apache-2.0 */
/* The PostgreSQL engine behind scep_db: transactions on an APR DBD connection (driver
 * "pgsql"), parameterised statements, bounded walks, the schema version and its
 * migrations.  What the tables mean lives in scep_store (scep_store_sql.c).
 *
 * Why APR DBD: inside httpd the connections are mod_dbd's, pooled, checked and reopened
 * as operators already configure them (DBDriver, DBDParams, DBDMax ...); the tools use the
 * same driver on a connection of their own.  Parameters always travel apart from the
 * text: no text from a request is ever spliced into SQL.  Each statement is prepared on
 * a session at its first use there and executed by name afterwards (parsed and planned
 * once per session, not once per use); every begin asks the server how many of ours its
 * session holds, so a session reopened behind the same handle is noticed and prepared
 * again, never executed against names it does not know.
 *
 * Transactions:
 * - A write transaction takes the schema row's lock first (SELECT ... FOR UPDATE on
 *   scep_schema), so that writers run one at a time across every node, as LMDB's writers
 *   do on one: a check and the write it guards can never interleave with another node's.
 * - A read transaction is REPEATABLE READ READ ONLY: one snapshot, as an LMDB reader.
 * - Each sets statement_timeout, lock_timeout and idle_in_transaction_session_timeout
 *   locally, so no statement and no stalled holder of the writers' lock lasts longer.
 * - Every failure of the server or the connection becomes SCEP_DB_UNAVAILABLE with a log
 *   line naming the statement and the server's words; the transaction is then rolled
 *   back, and a connection found broken is left for its owner to replace. */
#ifndef SCEP_SQL_H
#define SCEP_SQL_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_dbd.h>

#include "scep_db.h"

/* The schema this build reads and writes: scep_sql_migrate brings a database to it. */
#define SCEP_SQL_SCHEMA_VERSION 1
/* Default bound of one statement, and of waiting for the writers' lock. */
#define SCEP_SQL_DEFAULT_TIMEOUT_MS 5000
/* Rows fetched at a time by scep_sql_foreach. */
#define SCEP_SQL_BATCH 500

typedef struct scep_sql_t scep_sql_t;

/* A database on a connection someone else owns and pools (mod_dbd), for the life of `p`
 * (one request).  `conn_pool` lives as long as the connection (mod_dbd's ap_dbd_t pool):
 * the statements prepared on its session are kept there; NULL prepares none.
 * timeout_ms 0: the default. */
apr_status_t scep_sql_attach(apr_pool_t *p, const apr_dbd_driver_t *driver, apr_dbd_t *handle,
                             apr_pool_t *conn_pool, int timeout_ms, const char *label,
                             const scep_log_t *log, scep_db_t **db);

/* Opens a connection of its own (the tools) with a libpq connection string; closed by a
 * cleanup on `p`.  *why says what failed (in p), never repeating a password. */
apr_status_t scep_sql_connect(apr_pool_t *p, const char *conninfo, int timeout_ms,
                              const scep_log_t *log, scep_db_t **db, const char **why);

/* The connection string without the values of password-like keywords, for logs. */
const char *scep_sql_conninfo_shown(apr_pool_t *p, const char *conninfo);

/* ---- statements, inside a transaction of such a database ---------------------------
 * SQL uses APR DBD's markers: %s for each parameter (text, or NULL for SQL NULL), %% for
 * a literal percent sign.  Bytes travel as hex text (decode(%s, 'hex') / encode(x, 'hex')).
 * `what` names the statement in the log.  A failure is kept as the transaction's error. */
apr_status_t scep_sql_exec(scep_txn_t *txn, const char *what, const char *sql, int nargs,
                           const char *const *args, int *nrows);

/* One row: values as text, NULL for SQL NULL, valid while the pool lives. */
typedef struct scep_sql_row_t {
    int ncols;
    const char **val;
} scep_sql_row_t;

/* Every row of a query that returns few (a key lookup): scep_sql_row_t * elements. */
apr_status_t scep_sql_select(scep_txn_t *txn, apr_pool_t *p, const char *what, const char *sql,
                             int nargs, const char *const *args, apr_array_header_t **rows);
/* The first row, SCEP_DB_NOTFOUND when there is none. */
apr_status_t scep_sql_select_one(scep_txn_t *txn, apr_pool_t *p, const char *what,
                                 const char *sql, int nargs, const char *const *args,
                                 scep_sql_row_t **row);

/* Every row of a query that may return many, through a cursor, SCEP_SQL_BATCH at a time;
 * the row lives until fn returns.  fn returns non-zero to stop. */
typedef int (*scep_sql_visit_fn)(void *baton, const scep_sql_row_t *row);
apr_status_t scep_sql_foreach(scep_txn_t *txn, apr_pool_t *p, const char *what, const char *sql,
                              int nargs, const char *const *args, scep_sql_visit_fn fn,
                              void *baton);

/* Text forms of parameters and values. */
const char *scep_sql_i64(apr_pool_t *p, apr_int64_t v);
apr_int64_t scep_sql_to_i64(const char *text, apr_int64_t dflt);   /* NULL: dflt */
const char *scep_sql_hex(apr_pool_t *p, const void *data, apr_size_t len);
/* Decodes a hex value into the pool; NULL if it is not hex. */
const unsigned char *scep_sql_unhex(apr_pool_t *p, const char *hex, apr_size_t *len);

/* ---- schema ------------------------------------------------------------------------ */

/* The version recorded in the database; 0 when it holds no mod_scep schema yet. */
apr_status_t scep_sql_schema_version(scep_db_t *db, apr_pool_t *p, int *version);
/* Creates the schema or upgrades it to SCEP_SQL_SCHEMA_VERSION, each step in its own
 * transaction; SCEP_DB_VERSION when the database is newer than this build. */
apr_status_t scep_sql_migrate(scep_db_t *db, apr_pool_t *p, int *from, int *to);
/* The SQL of one migration step (1 creates), NULL beyond the last: for docs and DBAs. */
const char *scep_sql_migration(int version);

#endif

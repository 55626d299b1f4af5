/* SPDX-License-Identifier: Apache-2.0 */
/* The PostgreSQL engine behind scep_db (see scep_sql.h for the rules it keeps). */
#include <stdlib.h>
#include <string.h>

#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "scep_pgconf.h"
#include "scep_sql.h"

/* What a connection's session has prepared.  Kept with the connection (in the pool that
 * lives as long as it), so that a statement is parsed and planned once per session
 * instead of once per use; checked against the server at each begin (see
 * session_check), since the session behind a handle may change.
 *
 * Every label holds a random generation token, new each time the statements are
 * forgotten: a name is never given twice, by this connection or any other (a pooler in
 * transaction mode hands one server session to many clients), so a statement run by name
 * is ours and the one we prepared, or fails. */
typedef struct sql_session_t {
    apr_pool_t *pool;                   /* the statements and their texts */
    apr_hash_t *prepared;               /* SQL text -> apr_dbd_prepared_t * */
    int count;
    int doubtful;                       /* a named statement failed since */
    char generation[2 * 8 + 1];         /* hex of 8 random bytes */
    unsigned long next_label;
    long server_pid;                    /* the backend of the last begin; 0 unknown */
} sql_session_t;
/* Statements named on one session: the hot path has about fifteen texts, all fixed; the
 * bound keeps anything else from growing a session. */
#define SESSION_PREPARED_MAX 64
#define LABEL_PREFIX "mod_scep_"
#define SESSION_KEY "mod_scep:sql-session"

struct scep_sql_t {
    const apr_dbd_driver_t *driver;
    apr_dbd_t *handle;
    int timeout_ms;
    const char *label;
    scep_db_t *db;                      /* for its log */
    sql_session_t *session;
};

typedef struct sql_txn_t {
    scep_sql_t *sql;
    apr_pool_t *pool;
    int write;
    int cursors;                        /* names handed out, for unique cursor names */
} sql_txn_t;

/* The server's words, fit for one log line: no line breaks or control characters (a
 * message may quote a value a client sent), and bounded. */
static const char *server_words(apr_pool_t *p, const char *text)
{
    apr_size_t i, n = text ? strlen(text) : 0;
    char *out;

    if (n > 400) {
        n = 400;
    }
    while (n > 0 && apr_isspace(text[n - 1])) {
        n--;
    }
    out = apr_pstrmemdup(p, text ? text : "", n);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)out[i];

        if (c < 0x20 || c == 0x7f) {
            out[i] = ' ';
        }
    }
    return n ? out : "no message";
}

/* A statement or the connection failed: said once, in the log, as SCEP_DB_UNAVAILABLE.
 * A connection left broken is its owner's to replace (mod_dbd checks it on the next
 * acquire); nothing here retries, so a failing server is never hammered. */
static apr_status_t failed_saying(scep_sql_t *sql, apr_pool_t *p, const char *what,
                                  const char *words)
{
    int broken = apr_dbd_check_conn(sql->driver, p, sql->handle) != APR_SUCCESS;

    scep_log(scep_db_log(sql->db), SCEP_LOG_ERR, "SCEP00340: %s: %s failed%s: %s",
             sql->label, what, broken ? " and the connection is lost" : "",
             server_words(p, words));
    return SCEP_DB_UNAVAILABLE;
}

static apr_status_t failed(scep_sql_t *sql, apr_pool_t *p, const char *what, int rc)
{
    return failed_saying(sql, p, what, apr_dbd_error(sql->driver, sql->handle, rc));
}

/* A statement outside the parameter path: transaction control only, fixed text. */
static apr_status_t control(scep_sql_t *sql, apr_pool_t *p, const char *what, const char *cmd)
{
    int nrows = 0;
    int rc = apr_dbd_query(sql->driver, sql->handle, &nrows, cmd);

    return rc == 0 ? APR_SUCCESS : failed(sql, p, what, rc);
}

/* ---- transactions -------------------------------------------------------------------- */

static apr_status_t query_value(scep_sql_t *sql, apr_pool_t *p, const char *what,
                                const char *query, const char **value);

static void say_no_schema(scep_sql_t *sql)
{
    scep_log(scep_db_log(sql->db), SCEP_LOG_ERR,
             "SCEP00341: %s holds no mod_scep schema: create it with `scepreg db upgrade`",
             sql->label);
}

/* After a failed begin: whether it failed because the schema was never created, which
 * deserves its own words.  Only asked on a live connection, never on the way to success. */
static int schema_missing(scep_sql_t *sql, apr_pool_t *p, long *pid)
{
    const char *answer = NULL;
    int nrows;

    *pid = 0;
    if (apr_dbd_check_conn(sql->driver, p, sql->handle) != APR_SUCCESS) {
        return 0;
    }
    (void)apr_dbd_query(sql->driver, sql->handle, &nrows, "ROLLBACK");
    /* The catalogue only, and bounded: the begin may have failed because someone holds
     * the schema table's lock, and reading the table would then wait for them.  The
     * backend's pid tells whether the driver's check reconnected (retry_begin). */
    if (query_value(sql, p, "looking for the schema",
                    apr_psprintf(p, "BEGIN READ ONLY; SET LOCAL statement_timeout = %d; "
                                 "SELECT pg_backend_pid() || ' ' || "
                                 "(to_regclass('scep_schema') IS NOT NULL)::text",
                                 sql->timeout_ms), &answer) != APR_SUCCESS) {
        answer = NULL;
    }
    (void)apr_dbd_query(sql->driver, sql->handle, &nrows, "ROLLBACK");
    if (!answer) {
        return 0;
    }
    *pid = atol(answer);
    if (!strstr(answer, " false")) {
        return 0;
    }
    say_no_schema(sql);
    return 1;
}

/* ---- the session's prepared statements ---------------------------------------------- */

static void session_renew(sql_session_t *s)
{
    unsigned char raw[8];
    int i;

    apr_pool_clear(s->pool);
    s->prepared = apr_hash_make(s->pool);
    s->count = 0;
    s->doubtful = 0;
    s->next_label = 0;
    /* unpredictable is not needed, only unique: the clock and the address mix in where
     * the generator fails */
    if (apr_generate_random_bytes(raw, sizeof(raw)) != APR_SUCCESS) {
        apr_uint64_t mix = (apr_uint64_t)apr_time_now() ^ (apr_uint64_t)(apr_uintptr_t)s;

        memcpy(raw, &mix, sizeof(raw));
    }
    for (i = 0; i < (int)sizeof(raw); i++) {
        apr_snprintf(s->generation + 2 * i, 3, "%02x", raw[i]);
    }
}

static sql_session_t *session_new(apr_pool_t *pool)
{
    sql_session_t *s = apr_pcalloc(pool, sizeof(*s));

    if (apr_pool_create(&s->pool, pool) != APR_SUCCESS) {
        return NULL;
    }
    session_renew(s);
    return s;
}

/* The session kept with the connection whose pool (`conn_pool`, mod_dbd's, one per
 * connection) lives as long as it; NULL when none can be kept (statements then go
 * unprepared). */
static sql_session_t *session_of(apr_pool_t *conn_pool)
{
    void *data = NULL;
    sql_session_t *s;

    if (!conn_pool) {
        return NULL;
    }
    if (apr_pool_userdata_get(&data, SESSION_KEY, conn_pool) == APR_SUCCESS && data) {
        return data;
    }
    if (!(s = session_new(conn_pool))
        || apr_pool_userdata_setn(s, SESSION_KEY, apr_pool_cleanup_null, conn_pool)
           != APR_SUCCESS) {
        return NULL;
    }
    return s;
}

/* Whether `name` has the shape of the labels this file gives (mod_scep_, 16 hex digits,
 * _, a number), and nothing else: it is about to be written into a statement's text. */
static int our_label(const char *name)
{
    apr_size_t i, n = strlen(LABEL_PREFIX);

    if (strncmp(name, LABEL_PREFIX, n) != 0) {
        return 0;
    }
    for (name += n, i = 0; i < 16; i++) {
        if (!apr_isxdigit(name[i]) || apr_isupper(name[i])) {
            return 0;
        }
    }
    if (name[16] != '_' || !name[17]) {
        return 0;
    }
    for (name += 17; *name; name++) {
        if (!apr_isdigit(*name)) {
            return 0;
        }
    }
    return 1;
}

/* Drops every statement of this module's the server's session holds (of any generation:
 * older ones of this connection, or another client's behind a pooler, which then only
 * prepares its own again), inside the transaction just begun (DEALLOCATE is not
 * transactional and allowed there). */
static apr_status_t session_sweep(scep_sql_t *sql, apr_pool_t *p)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    const char *drop = "", *name;
    int rc, nrows;

    rc = apr_dbd_select(sql->driver, p, sql->handle, &res,
                        "SELECT name FROM pg_prepared_statements "
                        "WHERE starts_with(name, '" LABEL_PREFIX "')", 1);
    if (rc != 0) {
        return failed(sql, p, "listing the session's statements", rc);
    }
    while (apr_dbd_get_row(sql->driver, p, res, &row, -1) == 0) {
        if ((name = apr_dbd_get_entry(sql->driver, row, 0)) != NULL && our_label(name)) {
            drop = apr_pstrcat(p, drop, "DEALLOCATE ", name, "; ", NULL);
        }
    }
    if (*drop && (rc = apr_dbd_query(sql->driver, sql->handle, &nrows, drop)) != 0) {
        return failed(sql, p, "dropping the session's statements", rc);
    }
    return APR_SUCCESS;
}

/* `on_server` is how many statements of the current generation the server's session
 * holds.  Each label is prepared on one session only, so the count equals ours exactly
 * when this session holds every one of them.  Otherwise the session is another one (the
 * driver or mod_dbd reconnected behind this handle, or a pooler lent another server
 * session); and after a named statement failed, one may no longer fit the tables (a
 * column's type changed by an upgrade: "cached plan must not change result type").
 * Either way this module's statements on the session are dropped, and ours are prepared
 * again under a new generation. */
static apr_status_t session_check(scep_sql_t *sql, apr_pool_t *p, const char *on_server,
                                  const char *pid)
{
    sql_session_t *s = sql->session;
    apr_status_t rv;

    if (!s) {
        return APR_SUCCESS;
    }
    s->server_pid = pid ? atol(pid) : 0;
    if ((on_server ? atoi(on_server) : -1) == s->count && !s->doubtful) {
        return APR_SUCCESS;
    }
    if ((rv = session_sweep(sql, p)) == APR_SUCCESS) {
        session_renew(s);
    }
    return rv;
}

/* The statement for `text` on this session: prepared on its first use (one more round
 * trip, once), or unprepared when the session keeps no more.  Only statements with
 * parameters are the store's lookups and writes; one without may be anything (DDL, which
 * PREPARE refuses) and runs rarely. */
static int statement(scep_sql_t *sql, apr_pool_t *scratch, const char *text, int nargs,
                     apr_dbd_prepared_t **stmt)
{
    sql_session_t *s = sql->session;
    const char *label;
    int rc;

    *stmt = s ? apr_hash_get(s->prepared, text, APR_HASH_KEY_STRING) : NULL;
    if (*stmt) {
        return 0;
    }
    if (!s || nargs == 0 || s->count >= SESSION_PREPARED_MAX) {
        return apr_dbd_prepare(sql->driver, scratch, sql->handle, text, NULL, stmt);
    }
    label = apr_psprintf(s->pool, LABEL_PREFIX "%s_%lu", s->generation, ++s->next_label);
    if ((rc = apr_dbd_prepare(sql->driver, s->pool, sql->handle, text, label, stmt)) == 0) {
        apr_hash_set(s->prepared, apr_pstrdup(s->pool, text), APR_HASH_KEY_STRING, *stmt);
        s->count++;
    }
    return rc;
}

/* Whether a begin that failed is worth one more try on the same handle: it failed at once
 * (not after waiting out a lock or a statement timeout, which a second try would only
 * double) and the driver's check (in schema_missing) reconnected it: `pid`, the backend
 * now, is not the one of the last begin.  That is what a pooled connection whose server
 * restarted or failed over looks like; nothing of the transaction was done yet, so trying
 * again saves the request its 503.  Once: a failing server is never hammered, and a
 * failure on a live session (a read-only standby, say) is answered as it is. */
static int retry_begin(scep_sql_t *sql, apr_time_t started, long pid)
{
    return sql->session && sql->session->server_pid && pid && pid != sql->session->server_pid
           && apr_time_now() - started < apr_time_from_msec(sql->timeout_ms) / 2;
}

/* One round trip opens the transaction, bounds it and checks the schema; a writer also
 * takes the schema row's lock there (see scep_sql.h). */
static apr_status_t sql_begin(void *conn, apr_pool_t *p, int write, void **handle)
{
    scep_sql_t *sql = conn;
    sql_txn_t *t;
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    const char *cmd, *version, *words;
    apr_pool_t *scratch;
    apr_status_t rv = APR_SUCCESS;
    apr_time_t started;
    int rc, missing;
    long pid = 0;

    if (apr_pool_create(&scratch, p) != APR_SUCCESS) {
        return APR_ENOMEM;
    }
    cmd = apr_psprintf(scratch,
                       "BEGIN ISOLATION LEVEL %s; SET LOCAL statement_timeout = %d; "
                       "SET LOCAL lock_timeout = %d; "
                       "SET LOCAL idle_in_transaction_session_timeout = %d; "
                       "SELECT version, (SELECT count(*) FROM pg_prepared_statements "
                       "WHERE starts_with(name, '" LABEL_PREFIX "%s_')), pg_backend_pid() "
                       "FROM scep_schema%s",
                       write ? "READ COMMITTED" : "REPEATABLE READ READ ONLY",
                       sql->timeout_ms, sql->timeout_ms, sql->timeout_ms,
                       sql->session ? sql->session->generation : "none",
                       write ? " FOR UPDATE" : "");
    started = apr_time_now();
    rc = apr_dbd_select(sql->driver, scratch, sql->handle, &res, cmd, 1);
    /* kept before schema_missing's own statements replace the connection's message */
    words = rc ? apr_pstrdup(scratch, apr_dbd_error(sql->driver, sql->handle, rc)) : NULL;
    missing = rc != 0 && schema_missing(sql, scratch, &pid);
    if (rc != 0 && !missing && retry_begin(sql, started, pid)) {
        scep_log(scep_db_log(sql->db), SCEP_LOG_WARNING,
                 "SCEP00343: %s: beginning a %s failed at once (%s): tried again once, on "
                 "the connection as the driver renewed it", sql->label,
                 write ? "write" : "read", server_words(scratch, words));
        rc = apr_dbd_select(sql->driver, scratch, sql->handle, &res, cmd, 1);
        words = rc ? apr_pstrdup(scratch, apr_dbd_error(sql->driver, sql->handle, rc)) : NULL;
        missing = rc != 0 && schema_missing(sql, scratch, &pid);
    }
    if (missing) {
        rv = SCEP_DB_VERSION;
    }
    else if (rc != 0) {
        rv = failed_saying(sql, scratch, write ? "beginning a write" : "beginning a read",
                           words);
    }
    else if (apr_dbd_get_row(sql->driver, scratch, res, &row, -1) != 0
             || !(version = apr_dbd_get_entry(sql->driver, row, 0))) {
        say_no_schema(sql);
        rv = SCEP_DB_VERSION;
    }
    else if (atoi(version) != SCEP_SQL_SCHEMA_VERSION) {
        scep_log(scep_db_log(sql->db), SCEP_LOG_ERR,
                 "SCEP00342: %s has schema version %s, this mod_scep uses %d: %s",
                 sql->label, version, SCEP_SQL_SCHEMA_VERSION,
                 atoi(version) < SCEP_SQL_SCHEMA_VERSION
                 ? "upgrade it with `scepreg db upgrade`" : "upgrade mod_scep");
        rv = SCEP_DB_VERSION;
    }
    if (rv == APR_SUCCESS) {
        rv = session_check(sql, scratch, apr_dbd_get_entry(sql->driver, row, 1),
                           apr_dbd_get_entry(sql->driver, row, 2));
    }
    if (rv != APR_SUCCESS) {
        /* a failed statement leaves the session inside an aborted transaction */
        (void)apr_dbd_query(sql->driver, sql->handle, &rc, "ROLLBACK");
        apr_pool_destroy(scratch);
        return rv;
    }
    apr_pool_destroy(scratch);
    t = apr_pcalloc(p, sizeof(*t));
    t->sql = sql;
    t->pool = p;
    t->write = write;
    *handle = t;
    return APR_SUCCESS;
}

static apr_status_t sql_commit(void *handle)
{
    sql_txn_t *t = handle;

    return control(t->sql, t->pool, "committing", "COMMIT");
}

static void sql_abort(void *handle)
{
    sql_txn_t *t = handle;
    int nrows;

    /* Nothing to say when it fails: the connection is then broken, and its owner
     * replaces it; the server rolls the transaction back when the session ends. */
    (void)apr_dbd_query(t->sql->driver, t->sql->handle, &nrows, "ROLLBACK");
}

static const scep_db_backend_t pgsql_backend = {
    "pgsql", sql_begin, sql_commit, sql_abort
};

static scep_sql_t *sql_new(apr_pool_t *p, const apr_dbd_driver_t *driver, apr_dbd_t *handle,
                           sql_session_t *session, int timeout_ms, const char *label)
{
    scep_sql_t *sql = apr_pcalloc(p, sizeof(*sql));

    sql->driver = driver;
    sql->session = session;
    sql->handle = handle;
    sql->timeout_ms = timeout_ms > 0 ? timeout_ms : SCEP_SQL_DEFAULT_TIMEOUT_MS;
    sql->label = label ? apr_pstrdup(p, label) : "PostgreSQL";
    return sql;
}

apr_status_t scep_sql_attach(apr_pool_t *p, const apr_dbd_driver_t *driver, apr_dbd_t *handle,
                             apr_pool_t *conn_pool, int timeout_ms, const char *label,
                             const scep_log_t *log, scep_db_t **db)
{
    scep_sql_t *sql;
    apr_status_t rv;

    if (!driver || !handle || strcmp(apr_dbd_name(driver), "pgsql") != 0) {
        return APR_ENOTIMPL;
    }
    sql = sql_new(p, driver, handle, session_of(conn_pool), timeout_ms, label);
    if ((rv = scep_db_attach(p, &pgsql_backend, sql, sql->label, log, db)) == APR_SUCCESS) {
        sql->db = *db;
    }
    return rv;
}

/* Keywords whose values are secrets, in libpq's connection strings. */
static int secret_keyword(const char *key, apr_size_t len)
{
    return (len == 8 && strncasecmp(key, "password", 8) == 0)
           || (len == 11 && strncasecmp(key, "sslpassword", 11) == 0);
}

const char *scep_sql_conninfo_shown(apr_pool_t *p, const char *conninfo)
{
    const char *s = conninfo ? conninfo : "";
    char *out = apr_pcalloc(p, strlen(s) * 2 + 16), *o = out;

    if (strncmp(s, "postgres://", 11) == 0 || strncmp(s, "postgresql://", 13) == 0) {
        /* a URI's password may sit in its user part and in its query */
        return scep_pgconf_uri_shown(p, s);
    }
    while (*s) {
        const char *key = s, *eq;
        int hide;

        while (*s && *s != '=' && !apr_isspace(*s)) {
            s++;
        }
        eq = s;
        while (apr_isspace(*s)) {
            s++;
        }
        if (*s != '=') {        /* not key=value: keep it as it is */
            memcpy(o, key, (apr_size_t)(s - key));
            o += s - key;
            continue;
        }
        hide = secret_keyword(key, (apr_size_t)(eq - key));
        memcpy(o, key, (apr_size_t)(s - key + 1));
        o += s - key + 1;
        s++;
        while (apr_isspace(*s)) {
            s++;
        }
        if (hide) {
            memcpy(o, "***", 3);
            o += 3;
        }
        if (*s == '\'') {
            const char *v = s++;

            while (*s && *s != '\'') {
                s += (*s == '\\' && s[1]) ? 2 : 1;
            }
            s += *s == '\'';
            if (!hide) {
                memcpy(o, v, (apr_size_t)(s - v));
                o += s - v;
            }
        }
        else {
            const char *v = s;

            /* libpq reads "\ " as a blank inside the value, and so must the mask */
            while (*s && !apr_isspace(*s)) {
                s += (*s == '\\' && s[1]) ? 2 : 1;
            }
            if (!hide) {
                memcpy(o, v, (apr_size_t)(s - v));
                o += s - v;
            }
        }
        while (apr_isspace(*s)) {
            *o++ = *s++;
        }
    }
    *o = '\0';
    return out;
}

static apr_status_t driver_cleanup(void *data)
{
    scep_sql_t *sql = data;

    if (sql->handle) {
        apr_dbd_close(sql->driver, sql->handle);
        sql->handle = NULL;
    }
    return APR_SUCCESS;
}

apr_status_t scep_sql_connect(apr_pool_t *p, const char *conninfo, int timeout_ms,
                              const scep_log_t *log, scep_db_t **db, const char **why)
{
    const apr_dbd_driver_t *driver = NULL;
    apr_dbd_t *handle = NULL;
    const char *error = NULL, *shown = scep_sql_conninfo_shown(p, conninfo);
    scep_sql_t *sql;
    apr_status_t rv;

    *why = NULL;
    if ((rv = apr_dbd_init(p)) != APR_SUCCESS
        || (rv = apr_dbd_get_driver(p, "pgsql", &driver)) != APR_SUCCESS) {
        *why = apr_psprintf(p, "APR's PostgreSQL driver cannot be loaded (Debian: "
                            "libaprutil1-dbd-pgsql): status %d", rv);
        return rv == APR_SUCCESS ? APR_EGENERAL : rv;
    }
    if (apr_dbd_open_ex(driver, p, conninfo, &handle, &error) != APR_SUCCESS) {
        /* libpq's message names host and port, never the password */
        *why = apr_psprintf(p, "cannot connect to %s: %s", shown, server_words(p, error));
        return SCEP_DB_UNAVAILABLE;
    }
    sql = sql_new(p, driver, handle, session_new(p), timeout_ms, shown);
    apr_pool_cleanup_register(p, sql, driver_cleanup, apr_pool_cleanup_null);
    if ((rv = scep_db_attach(p, &pgsql_backend, sql, sql->label, log, db)) == APR_SUCCESS) {
        sql->db = *db;
    }
    return rv;
}

/* ---- statements ---------------------------------------------------------------------- */

static sql_txn_t *usable(scep_txn_t *txn, apr_status_t *rv)
{
    sql_txn_t *t = scep_db_backend_txn(txn);

    *rv = APR_SUCCESS;
    if (!t) {
        *rv = scep_db_txn_fail(txn, APR_EINVAL);
    }
    else if ((*rv = scep_db_txn_status(txn)) != APR_SUCCESS) {
        t = NULL;
    }
    return t;
}

/* A statement of the store failed: its prepared form may be what failed (see
 * session_check).  A failed begin or commit (a lock timeout, say) leaves the session's
 * statements as good as they were, and is not counted. */
static void statement_failed(scep_sql_t *sql, int kept, int rc)
{
    if (rc != 0 && kept && sql->session) {
        sql->session->doubtful = 1;
    }
}

/* `kept`: the text is one of the store's and worth preparing on the session; a text made
 * for one use (a cursor's) goes unprepared. */
static apr_status_t run_select(scep_txn_t *txn, sql_txn_t *t, apr_pool_t *scratch,
                               const char *what, const char *sql, int nargs,
                               const char *const *args, int kept, apr_dbd_results_t **res)
{
    apr_dbd_prepared_t *stmt = NULL;
    int rc;

    *res = NULL;
    rc = kept ? statement(t->sql, scratch, sql, nargs, &stmt)
              : apr_dbd_prepare(t->sql->driver, scratch, t->sql->handle, sql, NULL, &stmt);
    if (rc == 0) {
        rc = apr_dbd_pselect(t->sql->driver, scratch, t->sql->handle, res, stmt, 1, nargs,
                             (const char **)args);
    }
    statement_failed(t->sql, kept, rc);
    return rc == 0 ? APR_SUCCESS : scep_db_txn_fail(txn, failed(t->sql, scratch, what, rc));
}

static apr_status_t run_exec(scep_txn_t *txn, const char *what, const char *sql, int nargs,
                             const char *const *args, int kept, int *nrows)
{
    apr_status_t rv;
    sql_txn_t *t = usable(txn, &rv);
    apr_dbd_prepared_t *stmt = NULL;
    apr_pool_t *scratch;
    int rc, n = 0;

    if (nrows) {
        *nrows = 0;
    }
    if (!t) {
        return rv;
    }
    if (apr_pool_create(&scratch, t->pool) != APR_SUCCESS) {
        return scep_db_txn_fail(txn, APR_ENOMEM);
    }
    rc = kept ? statement(t->sql, scratch, sql, nargs, &stmt)
              : apr_dbd_prepare(t->sql->driver, scratch, t->sql->handle, sql, NULL, &stmt);
    if (rc == 0) {
        rc = apr_dbd_pquery(t->sql->driver, scratch, t->sql->handle, &n, stmt, nargs,
                            (const char **)args);
    }
    statement_failed(t->sql, kept, rc);
    rv = rc == 0 ? APR_SUCCESS : scep_db_txn_fail(txn, failed(t->sql, scratch, what, rc));
    apr_pool_destroy(scratch);
    if (nrows) {
        *nrows = n;
    }
    return rv;
}

apr_status_t scep_sql_exec(scep_txn_t *txn, const char *what, const char *sql, int nargs,
                           const char *const *args, int *nrows)
{
    return run_exec(txn, what, sql, nargs, args, 1, nrows);
}

/* The current row of a result, copied into p. */
static scep_sql_row_t *row_copy(sql_txn_t *t, apr_pool_t *p, apr_dbd_results_t *res,
                                apr_dbd_row_t *r)
{
    scep_sql_row_t *row = apr_pcalloc(p, sizeof(*row));
    int i, n = apr_dbd_num_cols(t->sql->driver, res);

    row->ncols = n;
    row->val = apr_pcalloc(p, sizeof(*row->val) * (apr_size_t)(n > 0 ? n : 1));
    for (i = 0; i < n; i++) {
        const char *v = NULL;

        /* the driver says SQL NULL with APR_ENOENT; get_entry alone gives "" */
        if (apr_dbd_datum_get(t->sql->driver, r, i, APR_DBD_TYPE_STRING, &v) == APR_SUCCESS
            && v) {
            row->val[i] = apr_pstrdup(p, v);
        }
    }
    return row;
}

apr_status_t scep_sql_select(scep_txn_t *txn, apr_pool_t *p, const char *what, const char *sql,
                             int nargs, const char *const *args, apr_array_header_t **rows)
{
    apr_status_t rv;
    sql_txn_t *t = usable(txn, &rv);
    apr_dbd_results_t *res;
    apr_dbd_row_t *r = NULL;
    apr_pool_t *scratch;

    *rows = apr_array_make(p, 1, sizeof(scep_sql_row_t *));
    if (!t) {
        return rv;
    }
    if (apr_pool_create(&scratch, p) != APR_SUCCESS) {
        return scep_db_txn_fail(txn, APR_ENOMEM);
    }
    /* the values are copied out and the result freed at once: a caller looking up many
     * keys in one pool keeps only what it asked for */
    if ((rv = run_select(txn, t, scratch, what, sql, nargs, args, 1, &res)) == APR_SUCCESS) {
        while (apr_dbd_get_row(t->sql->driver, scratch, res, &r, -1) == 0) {
            APR_ARRAY_PUSH(*rows, scep_sql_row_t *) = row_copy(t, p, res, r);
        }
    }
    apr_pool_destroy(scratch);
    return rv;
}

apr_status_t scep_sql_select_one(scep_txn_t *txn, apr_pool_t *p, const char *what,
                                 const char *sql, int nargs, const char *const *args,
                                 scep_sql_row_t **row)
{
    apr_array_header_t *rows;
    apr_status_t rv = scep_sql_select(txn, p, what, sql, nargs, args, &rows);

    *row = NULL;
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (rows->nelts == 0) {
        return SCEP_DB_NOTFOUND;
    }
    *row = APR_ARRAY_IDX(rows, 0, scep_sql_row_t *);
    return APR_SUCCESS;
}

apr_status_t scep_sql_foreach(scep_txn_t *txn, apr_pool_t *p, const char *what, const char *sql,
                              int nargs, const char *const *args, scep_sql_visit_fn fn,
                              void *baton)
{
    apr_status_t rv;
    sql_txn_t *t = usable(txn, &rv);
    const char *name, *declare, *fetch, *close_;
    apr_pool_t *batch;
    int stop = 0, got;

    if (!t) {
        return rv;
    }
    name = apr_psprintf(p, "scep_walk_%d", ++t->cursors);
    declare = apr_psprintf(p, "DECLARE %s NO SCROLL CURSOR FOR %s", name, sql);
    fetch = apr_psprintf(p, "FETCH %d FROM %s", SCEP_SQL_BATCH, name);
    close_ = apr_psprintf(p, "CLOSE %s", name);
    if ((rv = run_exec(txn, what, declare, nargs, args, 0, NULL)) != APR_SUCCESS) {
        return rv;
    }
    if (apr_pool_create(&batch, p) != APR_SUCCESS) {
        return scep_db_txn_fail(txn, APR_ENOMEM);
    }
    do {
        apr_dbd_results_t *res;
        apr_dbd_row_t *r = NULL;

        apr_pool_clear(batch);
        got = 0;
        if ((rv = run_select(txn, t, batch, what, fetch, 0, NULL, 0, &res)) != APR_SUCCESS) {
            break;
        }
        while (!stop && apr_dbd_get_row(t->sql->driver, batch, res, &r, -1) == 0) {
            got++;
            stop = fn(baton, row_copy(t, batch, res, r));
        }
    } while (!stop && got == SCEP_SQL_BATCH);
    apr_pool_destroy(batch);
    if (rv == APR_SUCCESS) {
        rv = run_exec(txn, what, close_, 0, NULL, 0, NULL);
    }
    return rv;
}

/* ---- values -------------------------------------------------------------------------- */

const char *scep_sql_i64(apr_pool_t *p, apr_int64_t v)
{
    return apr_psprintf(p, "%" APR_INT64_T_FMT, v);
}

apr_int64_t scep_sql_to_i64(const char *text, apr_int64_t dflt)
{
    char *end = NULL;
    apr_int64_t v;

    if (!text || !*text) {
        return dflt;
    }
    v = apr_strtoi64(text, &end, 10);
    return (end && *end == '\0') ? v : dflt;
}

const char *scep_sql_hex(apr_pool_t *p, const void *data, apr_size_t len)
{
    return scep_util_hex(p, data, len);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = (char)apr_tolower(c);
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

const unsigned char *scep_sql_unhex(apr_pool_t *p, const char *hex, apr_size_t *len)
{
    apr_size_t i, n = hex ? strlen(hex) : 0;
    unsigned char *out;

    *len = 0;
    if (!hex || n % 2) {
        return NULL;
    }
    out = apr_palloc(p, n / 2 + 1);
    for (i = 0; i < n; i += 2) {
        int hi = hex_value(hex[i]), lo = hex_value(hex[i + 1]);

        if (hi < 0 || lo < 0) {
            return NULL;
        }
        out[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    *len = n / 2;
    return out;
}

/* ---- schema -------------------------------------------------------------------------- */

/* Each step brings the schema from the version before it; a step is never edited once
 * released: a change is a new step.  Times are Unix seconds (bigint), 0 for "never". */
static const char *const migrations[] = {
    NULL,
    /* 1: the first schema */
    "CREATE TABLE scep_schema (\n"
    "    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),\n"
    "    version integer NOT NULL,\n"
    "    upgraded_at timestamptz NOT NULL DEFAULT now()\n"
    ");\n"
    "COMMENT ON TABLE scep_schema IS 'mod_scep: schema version; every writer locks this row "
    "first, so writers run one at a time across all nodes';\n"
    "CREATE TABLE scep_devices (\n"
    "    key text COLLATE \"C\" PRIMARY KEY CHECK (key <> ''),\n"
    "    ips text[] NOT NULL DEFAULT '{}',\n"
    "    serial text,\n"
    "    verifier_algorithm integer NOT NULL DEFAULT 0,\n"
    "    verifier_iterations bigint NOT NULL DEFAULT 0,\n"
    "    verifier_salt bytea,\n"
    "    verifier_hash bytea,\n"
    "    flags integer NOT NULL DEFAULT 0,\n"
    "    expires bigint NOT NULL DEFAULT 0,\n"
    "    profile text,\n"
    "    comment text,\n"
    "    created bigint NOT NULL,\n"
    "    updated bigint NOT NULL,\n"
    "    last_serial text,\n"
    "    last_not_after bigint NOT NULL DEFAULT 0,\n"
    "    last_enrolled bigint NOT NULL DEFAULT 0,\n"
    "    enrollments bigint NOT NULL DEFAULT 0\n"
    ");\n"
    "COMMENT ON TABLE scep_devices IS 'mod_scep: registrations, by canonical key (host name, "
    "*.suffix, name:, id:, user:); the challenge is kept as a verifier only';\n"
    "CREATE TABLE scep_challenges (\n"
    "    digest bytea PRIMARY KEY CHECK (length(digest) = 32),\n"
    "    created bigint NOT NULL,\n"
    "    expires bigint NOT NULL,\n"
    "    fqdn text,\n"
    "    profile text\n"
    ");\n"
    "CREATE INDEX scep_challenges_expires ON scep_challenges (expires);\n"
    "COMMENT ON TABLE scep_challenges IS 'mod_scep: minted one-time challenges, by SHA-256 "
    "of the challenge; consumed by deleting the row';\n"
    "CREATE TABLE scep_failures (\n"
    "    name text PRIMARY KEY,\n"
    "    count bigint NOT NULL,\n"
    "    last bigint NOT NULL,\n"
    "    locked_until bigint NOT NULL DEFAULT 0,\n"
    "    period bigint NOT NULL DEFAULT 0\n"
    ");\n"
    "COMMENT ON TABLE scep_failures IS 'mod_scep: failed challenges and lockouts, by "
    "requested name';\n"
    "CREATE TABLE scep_transactions (\n"
    "    transaction_id text COLLATE \"C\" NOT NULL,\n"
    "    requester bytea NOT NULL CHECK (length(requester) IN (0, 32)),\n"
    "    state text NOT NULL CHECK (state IN ('issued', 'pending', 'approved', 'rejected',\n"
    "                                         'expired', 'upstream')),\n"
    "    request_digest bytea NOT NULL,\n"
    "    fqdn text,\n"
    "    serial text,\n"
    "    created bigint NOT NULL,\n"
    "    request bytea,\n"
    "    grant_kind integer NOT NULL DEFAULT 0,\n"
    "    registration text,\n"
    "    ips text,\n"
    "    serial_number text,\n"
    "    renews text,\n"
    "    client_ip text,\n"
    "    subject text,\n"
    "    decided_at bigint NOT NULL DEFAULT 0,\n"
    "    decided_by text,\n"
    "    reason text,\n"
    "    upstream_pending boolean NOT NULL DEFAULT false,\n"
    "    endpoint text,\n"
    "    identity_name text,\n"
    "    identity_where integer NOT NULL DEFAULT 0,\n"
    "    signer_key bytea CHECK (length(signer_key) = 32),\n"
    "    PRIMARY KEY (transaction_id, requester),\n"
    "    CHECK (length(requester) = 0 OR requester IS NOT DISTINCT FROM signer_key)\n"
    ");\n"
    "CREATE INDEX scep_transactions_held ON scep_transactions (transaction_id)\n"
    "    WHERE state <> 'issued';\n"
    "COMMENT ON TABLE scep_transactions IS 'mod_scep: SCEP transactions, one per "
    "transactionID and requester (SHA-256 of its public key; empty for old records)';\n"
    "CREATE TABLE scep_certificates (\n"
    "    serial text COLLATE \"C\" PRIMARY KEY,\n"
    "    der bytea NOT NULL,\n"
    "    fqdn text,\n"
    "    subject text,\n"
    "    transaction_id text,\n"
    "    not_before bigint NOT NULL,\n"
    "    not_after bigint NOT NULL,\n"
    "    issued_at bigint NOT NULL,\n"
    "    revoked_at bigint NOT NULL DEFAULT 0,\n"
    "    revocation_reason integer NOT NULL DEFAULT 0,\n"
    "    issuer_key_id bytea\n"
    ");\n"
    "CREATE INDEX scep_certificates_fqdn ON scep_certificates (fqdn);\n"
    "CREATE INDEX scep_certificates_revoked ON scep_certificates (serial)\n"
    "    WHERE revoked_at <> 0;\n"
    "COMMENT ON TABLE scep_certificates IS 'mod_scep: every certificate issued, with its "
    "revocation';\n"
    "CREATE VIEW scep_revocations AS\n"
    "    SELECT serial, fqdn, subject, to_timestamp(revoked_at) AS revoked,\n"
    "           revocation_reason\n"
    "    FROM scep_certificates WHERE revoked_at <> 0;\n"
    "CREATE TABLE scep_crl_state (\n"
    "    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),\n"
    "    generation bigint NOT NULL DEFAULT 0,\n"
    "    changed_at bigint NOT NULL DEFAULT 0\n"
    ");\n"
    "INSERT INTO scep_crl_state DEFAULT VALUES;\n"
    "CREATE TABLE scep_crl_published (\n"
    "    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),\n"
    "    number bigint NOT NULL,\n"
    "    generation bigint NOT NULL,\n"
    "    this_update bigint NOT NULL,\n"
    "    next_update bigint NOT NULL,\n"
    "    ca_id bytea NOT NULL,\n"
    "    der bytea NOT NULL\n"
    ");\n"
    "CREATE FUNCTION scep_crl_number_never_falls() RETURNS trigger LANGUAGE plpgsql AS\n"
    "$$BEGIN\n"
    "    IF NEW.number < OLD.number THEN\n"
    "        RAISE EXCEPTION 'CRL number % would fall below %', NEW.number, OLD.number;\n"
    "    END IF;\n"
    "    RETURN NEW;\n"
    "END$$;\n"
    "CREATE TRIGGER scep_crl_number_never_falls BEFORE UPDATE ON scep_crl_published\n"
    "    FOR EACH ROW EXECUTE FUNCTION scep_crl_number_never_falls();\n"
    "INSERT INTO scep_schema (version) VALUES (1);\n",
};

const char *scep_sql_migration(int version)
{
    if (version < 1 || version >= (int)(sizeof(migrations) / sizeof(migrations[0]))) {
        return NULL;
    }
    return migrations[version];
}

/* A one-value query outside scep_db's transactions; *value NULL when it gave no row. */
static apr_status_t query_value(scep_sql_t *sql, apr_pool_t *p, const char *what,
                                const char *query, const char **value)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    int rc = apr_dbd_select(sql->driver, p, sql->handle, &res, query, 1);

    *value = NULL;
    if (rc != 0) {
        return failed(sql, p, what, rc);
    }
    if (apr_dbd_get_row(sql->driver, p, res, &row, -1) == 0) {
        *value = apr_dbd_get_entry(sql->driver, row, 0);
    }
    return APR_SUCCESS;
}

/* The schema table may not exist yet: 0 then. */
static apr_status_t read_version(scep_sql_t *sql, apr_pool_t *p, int *version)
{
    const char *v = NULL;
    apr_status_t rv = query_value(sql, p, "looking for the schema",
                                  "SELECT to_regclass('scep_schema') IS NOT NULL", &v);

    *version = 0;
    if (rv == APR_SUCCESS && v && strcmp(v, "t") == 0) {
        rv = query_value(sql, p, "reading the schema version",
                         "SELECT version FROM scep_schema", &v);
        *version = v ? atoi(v) : 0;
    }
    return rv;
}

apr_status_t scep_sql_schema_version(scep_db_t *db, apr_pool_t *p, int *version)
{
    scep_sql_t *sql = scep_db_backend_conn(db);

    if (!sql || !scep_db_engine(db)) {
        return APR_EINVAL;
    }
    return read_version(sql, p, version);
}

apr_status_t scep_sql_migrate(scep_db_t *db, apr_pool_t *p, int *from, int *to)
{
    scep_sql_t *sql = scep_db_backend_conn(db);
    apr_status_t rv;
    int version, nrows;

    *from = *to = 0;
    if (!sql || !scep_db_engine(db)) {
        return APR_EINVAL;
    }
    if ((rv = read_version(sql, p, &version)) != APR_SUCCESS) {
        return rv;
    }
    *from = *to = version;
    if (version > SCEP_SQL_SCHEMA_VERSION) {
        return SCEP_DB_VERSION;
    }
    while (version < SCEP_SQL_SCHEMA_VERSION) {
        int rc, now;

        /* one step, one transaction; the advisory lock keeps two upgrades apart, and the
         * version is read again under it */
        rc = apr_dbd_query(sql->driver, sql->handle, &nrows,
                           "BEGIN; SELECT pg_advisory_xact_lock(7013582113)");
        if (rc != 0) {
            rv = failed(sql, p, "beginning a schema upgrade", rc);
            break;
        }
        if ((rv = read_version(sql, p, &now)) != APR_SUCCESS) {
            break;
        }
        if (now != version) {
            (void)apr_dbd_query(sql->driver, sql->handle, &nrows, "ROLLBACK");
            version = now;
            continue;
        }
        rc = apr_dbd_query(sql->driver, sql->handle, &nrows, migrations[version + 1]);
        if (rc == 0 && version + 1 > 1) {
            rc = apr_dbd_query(sql->driver, sql->handle, &nrows,
                               apr_psprintf(p, "UPDATE scep_schema SET version = %d, "
                                            "upgraded_at = now()", version + 1));
        }
        if (rc == 0) {
            rc = apr_dbd_query(sql->driver, sql->handle, &nrows, "COMMIT");
        }
        if (rc != 0) {
            rv = failed(sql, p, apr_psprintf(p, "schema step %d", version + 1), rc);
            break;
        }
        version++;
        *to = version;
    }
    if (rv != APR_SUCCESS) {
        (void)apr_dbd_query(sql->driver, sql->handle, &nrows, "ROLLBACK");
    }
    return rv;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* The device databases the configuration names: LMDB folders created by the parent as
 * root, handed to httpd's User, opened once in every child (never across fork); and
 * `dbd:`, the PostgreSQL of the server's mod_dbd, whose pooled connection each request
 * borrows and attaches (scep_sql).  The audit log is mod_scep_audit.c's. */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "httpd.h"
#include "ap_mpm.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "unixd.h"

#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_optional.h>
#include <apr_dbd.h>

#include "mod_dbd.h"

#include "mod_scep.h"
#include "scep_sql.h"

APLOG_USE_MODULE(scep);

/* ---- device databases ---------------------------------------------------------------- */

/* Folder (or SCEP_GLUE_DBD) -> scep_db_ref_t, for the configuration being read. */
static apr_hash_t *db_refs;
/* mod_dbd's, found at check_config when a section names dbd: (inherited by children). */
static APR_OPTIONAL_FN_TYPE(ap_dbd_acquire) *dbd_acquire;

void scep_glue_db_reset(void)
{
    db_refs = NULL;
}

scep_db_ref_t *scep_glue_db_ref(cmd_parms *cmd, const char *path)
{
    scep_db_ref_t *ref;

    if (!db_refs) {
        db_refs = apr_hash_make(cmd->pool);
    }
    if ((ref = apr_hash_get(db_refs, path, APR_HASH_KEY_STRING)) == NULL) {
        ref = apr_pcalloc(cmd->pool, sizeof(*ref));
        ref->path = path;
        ref->dbd = strcmp(path, SCEP_GLUE_DBD) == 0;
        ref->defined_at = cmd->directive
            ? apr_psprintf(cmd->pool, "%s:%d", cmd->directive->filename,
                           cmd->directive->line_num)
            : "?";
        apr_hash_set(db_refs, ref->path, APR_HASH_KEY_STRING, ref);
    }
    return ref;
}

/* Files the registration tool created as root would lock the children out. */
static int hand_over(server_rec *s, const char *path, int must_exist)
{
    struct stat st;

    if (stat(path, &st) != 0) {
        if (!must_exist && errno == ENOENT) {
            return OK;
        }
        ap_log_error(APLOG_MARK, APLOG_EMERG, errno, s,
                     "SCEP00010: ScepDeviceDB: cannot examine %s", path);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (st.st_uid == 0 && ap_unixd_config.user_id != 0
        && chown(path, ap_unixd_config.user_id, ap_unixd_config.group_id) != 0) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, errno, s,
                     "SCEP00011: ScepDeviceDB: cannot give %s to httpd's User", path);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

/* The children run as User and must pass through every parent folder.  A checkout
 * under /root (mode 0700) is the usual way this fails; say so at startup rather than
 * answer every enrollment with 503. */
static int reachable_by_user(apr_pool_t *ptemp, server_rec *s, const scep_db_ref_t *ref)
{
    char *path = apr_pstrdup(ptemp, ref->path), *slash;
    struct stat st;

    while ((slash = strrchr(path, '/')) != NULL) {
        *slash = '\0';
        if (stat(*path ? path : "/", &st) != 0) {
            continue;   /* created next, searchable */
        }
        if ((st.st_mode & S_IXOTH)
            || (st.st_uid == ap_unixd_config.user_id && (st.st_mode & S_IXUSR))
            || (st.st_gid == ap_unixd_config.group_id && (st.st_mode & S_IXGRP))) {
            continue;
        }
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     "SCEP00016: ScepDeviceDB %s (%s): httpd's User (uid %ld) cannot pass "
                     "through %s (mode %04o, owner uid %ld); choose a folder it can reach, "
                     "such as /var/lib/scep/devices", ref->path, ref->defined_at,
                     (long)ap_unixd_config.user_id, *path ? path : "/",
                     (unsigned int)(st.st_mode & 07777), (long)st.st_uid);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

/* Every worker thread may hold one read transaction at a time, and during a graceful
 * restart the old generation's threads still finish theirs.  More threads than reader
 * slots means 503 answers under full load (SCEP00230): say so at (re)start. */
static int readers_check(server_rec *s, int lmdb_refs)
{
    int threads = 0, daemons = 0;

    /* the first of the two passes at startup would say it twice */
    if (lmdb_refs == 0
        || ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG
        || ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) != APR_SUCCESS
        || ap_mpm_query(AP_MPMQ_MAX_DAEMONS, &daemons) != APR_SUCCESS) {
        return OK;
    }
    if (threads < 1) {
        threads = 1;            /* prefork: one request per process */
    }
    if ((apr_int64_t)threads * daemons > SCEP_DB_MAX_READERS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "SCEP00280: up to %d worker threads (%d processes x %d) may read the "
                     "device database at once, more than its %d reader slots: under full "
                     "load the rest get HTTP 503; lower MaxRequestWorkers to %d or less",
                     threads * daemons, daemons, threads, SCEP_DB_MAX_READERS,
                     SCEP_DB_MAX_READERS);
    }
    return OK;
}

int scep_glue_db_check(server_rec *s)
{
    scep_db_ref_t *ref = db_refs ? apr_hash_get(db_refs, SCEP_GLUE_DBD, APR_HASH_KEY_STRING)
                                 : NULL;

    if (!ref) {
        return OK;
    }
    dbd_acquire = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_acquire);
    if (!dbd_acquire) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     "SCEP00700: ScepDeviceDB dbd: (%s) keeps the records in the database of "
                     "mod_dbd, which is not loaded: add LoadModule dbd_module with "
                     "DBDriver pgsql and DBDParams (docs/directives.md, ScepDeviceDB)",
                     ref->defined_at);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

int scep_glue_db_prepare(apr_pool_t *ptemp, server_rec *s)
{
    apr_hash_index_t *hi;
    static const char *const files[] = { "data.mdb", "lock.mdb" };
    int lmdb_refs = 0;

    for (hi = db_refs ? apr_hash_first(ptemp, db_refs) : NULL; hi; hi = apr_hash_next(hi)) {
        scep_db_ref_t *ref = apr_hash_this_val(hi);
        apr_status_t rv;
        size_t i;
        int rc;
        const char *slash;

        if (ref->dbd) {
            continue;       /* nothing on this machine: mod_dbd connects */
        }
        lmdb_refs++;
        slash = strrchr(ref->path, '/');

        /* Parents are made searchable (0755) so that the children, no longer root, can
         * reach the folder; the folder itself stays private to httpd's User. */
        rv = APR_SUCCESS;
        if (slash && slash != ref->path) {
            rv = apr_dir_make_recursive(apr_pstrmemdup(ptemp, ref->path,
                                                       (apr_size_t)(slash - ref->path)),
                                        APR_FPROT_OS_DEFAULT & ~(APR_FPROT_GWRITE
                                                                 | APR_FPROT_WWRITE), ptemp);
        }
        if (rv == APR_SUCCESS || APR_STATUS_IS_EEXIST(rv)) {
            rv = apr_dir_make(ref->path, APR_FPROT_UREAD | APR_FPROT_UWRITE
                              | APR_FPROT_UEXECUTE, ptemp);
        }
        if (rv != APR_SUCCESS && !APR_STATUS_IS_EEXIST(rv)) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                         "SCEP00012: ScepDeviceDB %s (%s): cannot create the folder",
                         ref->path, ref->defined_at);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        if (geteuid() != 0) {
            continue;       /* not root: the folder is ours already, or access fails later */
        }
        if (ap_unixd_config.user_id != 0 && (rc = reachable_by_user(ptemp, s, ref)) != OK) {
            return rc;
        }
        if ((rc = hand_over(s, ref->path, 1)) != OK) {
            return rc;
        }
        for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
            if ((rc = hand_over(s, apr_pstrcat(ptemp, ref->path, "/", files[i], NULL), 0))
                != OK) {
                return rc;
            }
        }
    }
    return readers_check(s, lmdb_refs);
}

void scep_glue_db_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_hash_index_t *hi;
    scep_log_t log = { scep_glue_log_to_server, s, APLOG_TRACE8 };

    for (hi = db_refs ? apr_hash_first(pchild, db_refs) : NULL; hi; hi = apr_hash_next(hi)) {
        scep_db_ref_t *ref = apr_hash_this_val(hi);
        const char *why = NULL;
        apr_status_t rv;

        if (ref->dbd) {
            continue;       /* attached per request */
        }
        rv = scep_db_open(pchild, ref->path, ref->map_size, SCEP_DB_CREATE, &log, &ref->db,
                          &why);
        if (rv != APR_SUCCESS) {
            ref->db = NULL;
            ref->open_error = apr_pstrcat(pchild, why ? why : "", why ? ": " : "",
                                          scep_db_strerror(pchild, rv), NULL);
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                         "SCEP00013: ScepDeviceDB %s (%s) cannot be opened: %s", ref->path,
                         ref->defined_at, ref->open_error);
        }
    }
}

/* Set on a request whose database cannot work as configured (a driver other than pgsql):
 * answered 500, without the Retry-After of an outage. */
#define MISCONFIGURED_NOTE "scep-db-misconfigured"

/* mod_dbd's connection for this request, attached for the request's life.  mod_dbd checks
 * a pooled connection before it lends it and replaces a broken one, so the requests after
 * a database restart or failover reconnect by themselves; this request, whose connection
 * was found broken, is refused (503) rather than made to wait. */
static scep_db_t *dbd_db(request_rec *r, const scep_dir_conf_t *conf)
{
    scep_log_t log = { scep_glue_log_to_request, r,
                       ap_get_request_module_loglevel(r, APLOG_MODULE_INDEX) };
    const char *label, *driver;
    scep_db_t *db = NULL;
    ap_dbd_t *ad;
    apr_status_t rv;

    if (!dbd_acquire || !(ad = dbd_acquire(r))) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "SCEP00701: ScepDeviceDB dbd: at %s: mod_dbd has no connection to "
                      "give (its own message above says why): the request is refused with "
                      "503", r->uri);
        return NULL;
    }
    driver = apr_dbd_name(ad->driver);
    if (!driver || strcmp(driver, "pgsql") != 0) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "SCEP00702: ScepDeviceDB dbd: at %s needs DBDriver pgsql, not %s: the "
                      "request is refused", r->uri, driver ? driver : "(unnamed)");
        /* a lasting mistake of the configuration, not an outage to wait out */
        apr_table_setn(r->notes, MISCONFIGURED_NOTE, "1");
        return NULL;
    }
    /* the server's name, never DBDParams: it may hold a password */
    label = apr_psprintf(r->pool, "PostgreSQL (mod_dbd of %s)",
                         r->server->server_hostname ? r->server->server_hostname : "?");
    /* A connection made for this request alone (DBDPersist Off) would pay a round trip
     * to prepare each statement it runs once: its statements go unprepared. */
    rv = scep_sql_attach(r->pool, ad->driver, ad->handle,
                         apr_pool_is_ancestor(r->pool, ad->pool) ? NULL : ad->pool,
                         conf->dbd_timeout_ms, label, &log, &db);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      "SCEP00703: ScepDeviceDB dbd: at %s: %s cannot be attached: the "
                      "request is refused with 503", r->uri, label);
        return NULL;
    }
    return db;
}

scep_db_t *scep_glue_db(request_rec *r, const scep_dir_conf_t *conf)
{
    const scep_db_ref_t *ref = conf->db_ref;

    if (ref->dbd) {
        return dbd_db(r, conf);
    }
    if (!ref->db) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "SCEP00111: ScepDeviceDB %s is not available in this process: %s",
                      ref->path, ref->open_error ? ref->open_error : "not opened");
    }
    return ref->db;
}

int scep_glue_db_transient(const scep_db_t *db, apr_status_t rv)
{
    /* a shared database that is down, failing over or lacks its schema comes back (or
     * is upgraded) while httpd runs; LMDB's version error is a newer writer's file */
    return rv == SCEP_DB_FULL || rv == SCEP_DB_BUSY
           || (db && scep_db_engine(db)
               && (rv == SCEP_DB_UNAVAILABLE || rv == SCEP_DB_VERSION));
}

int scep_glue_db_unavailable(request_rec *r)
{
    if (apr_table_get(r->notes, MISCONFIGURED_NOTE)) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    apr_table_setn(r->err_headers_out, "Retry-After", SCEP_GLUE_RETRY_AFTER);
    return HTTP_SERVICE_UNAVAILABLE;
}

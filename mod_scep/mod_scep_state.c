/* SPDX-License-Identifier: Apache-2.0 */
/* The glue's state outside the request: the device database folders the configuration
 * names (created by the parent as root, handed to httpd's User, opened once in every
 * child), and the audit log every decision is written to. */
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

#include "mod_scep.h"

APLOG_USE_MODULE(scep);

/* ---- device databases ---------------------------------------------------------------- */

/* Folder -> scep_db_ref_t, for the configuration being read. */
static apr_hash_t *db_refs;

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
static int readers_check(server_rec *s)
{
    int threads = 0, daemons = 0;

    /* the first of the two passes at startup would say it twice */
    if (!db_refs || apr_hash_count(db_refs) == 0
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

int scep_glue_db_prepare(apr_pool_t *ptemp, server_rec *s)
{
    apr_hash_index_t *hi;
    static const char *const files[] = { "data.mdb", "lock.mdb" };

    for (hi = db_refs ? apr_hash_first(ptemp, db_refs) : NULL; hi; hi = apr_hash_next(hi)) {
        scep_db_ref_t *ref = apr_hash_this_val(hi);
        apr_status_t rv;
        size_t i;
        int rc;

        const char *slash = strrchr(ref->path, '/');

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
    return readers_check(s);
}

static void log_to_server(void *baton, int level, const char *line)
{
    ap_log_error(APLOG_MARK, level, 0, baton, "%s", line);
}

void scep_glue_db_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_hash_index_t *hi;
    scep_log_t log = { log_to_server, s, APLOG_TRACE8 };

    for (hi = db_refs ? apr_hash_first(pchild, db_refs) : NULL; hi; hi = apr_hash_next(hi)) {
        scep_db_ref_t *ref = apr_hash_this_val(hi);
        const char *why = NULL;
        apr_status_t rv = scep_db_open(pchild, ref->path, ref->map_size, SCEP_DB_CREATE,
                                       &log, &ref->db, &why);

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

scep_db_t *scep_glue_db(request_rec *r, const scep_db_ref_t *ref)
{
    if (!ref->db) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "SCEP00111: ScepDeviceDB %s is not available in this process: %s",
                      ref->path, ref->open_error ? ref->open_error : "not opened");
    }
    return ref->db;
}

/* ---- audit log ------------------------------------------------------------------------ */

void *scep_glue_create_server_conf(apr_pool_t *p, server_rec *s)
{
    return apr_pcalloc(p, sizeof(scep_server_conf_t));
}

void *scep_glue_merge_server_conf(apr_pool_t *p, void *basev, void *addv)
{
    const scep_server_conf_t *base = basev, *add = addv;
    scep_server_conf_t *conf = apr_pcalloc(p, sizeof(*conf));

    conf->audit_path = add->audit_path ? add->audit_path : base->audit_path;
    return conf;
}

/* Opens every server's audit log once; servers naming the same file share the handle. */
int scep_glue_audit_open(apr_pool_t *pconf, server_rec *s)
{
    apr_hash_t *opened = apr_hash_make(pconf);
    server_rec *vs;

    for (vs = s; vs; vs = vs->next) {
        scep_server_conf_t *conf = ap_get_module_config(vs->module_config, &scep_module);
        apr_file_t *f;

        if (!conf->audit_path) {
            continue;
        }
        if ((f = apr_hash_get(opened, conf->audit_path, APR_HASH_KEY_STRING)) == NULL) {
            if (conf->audit_path[0] == '|') {
                piped_log *pl = ap_open_piped_log(pconf, conf->audit_path + 1);

                if (!pl) {
                    ap_log_error(APLOG_MARK, APLOG_EMERG, 0, vs,
                                 "SCEP00014: ScepAuditLog: cannot start '%s'",
                                 conf->audit_path + 1);
                    return HTTP_INTERNAL_SERVER_ERROR;
                }
                f = ap_piped_log_write_fd(pl);
            }
            else {
                apr_status_t rv = apr_file_open(&f, conf->audit_path,
                                                APR_FOPEN_WRITE | APR_FOPEN_APPEND
                                                | APR_FOPEN_CREATE | APR_FOPEN_LARGEFILE,
                                                APR_FPROT_UREAD | APR_FPROT_UWRITE
                                                | APR_FPROT_GREAD, pconf);

                if (rv != APR_SUCCESS) {
                    ap_log_error(APLOG_MARK, APLOG_EMERG, rv, vs,
                                 "SCEP00015: ScepAuditLog: cannot open %s", conf->audit_path);
                    return HTTP_INTERNAL_SERVER_ERROR;
                }
            }
            apr_hash_set(opened, conf->audit_path, APR_HASH_KEY_STRING, f);
        }
        conf->audit = f;
    }
    return OK;
}

static void json_field(apr_pool_t *p, apr_array_header_t *parts, const char *name,
                       const char *value)
{
    const char *v;
    char *out, *o;

    if (!value) {
        return;
    }
    /* at most 6 bytes per input byte (\u00XX) */
    o = out = apr_palloc(p, strlen(value) * 6 + 1);
    for (v = value; *v; v++) {
        unsigned char ch = (unsigned char)*v;

        if (ch == '"' || ch == '\\') {
            *o++ = '\\';
            *o++ = (char)ch;
        }
        else if (ch < 0x20 || ch == 0x7f) {
            o += apr_snprintf(o, 7, "\\u%04x", ch);
        }
        else {
            *o++ = (char)ch;
        }
    }
    *o = '\0';
    APR_ARRAY_PUSH(parts, const char *) = apr_psprintf(p, "\"%s\":\"%s\"", name, out);
}

void scep_glue_audit(request_rec *r, const char *event, const char *transaction_id,
                     const char *fqdn, const char *serial, const char *outcome,
                     const char *reason)
{
    scep_server_conf_t *conf = ap_get_module_config(r->server->module_config, &scep_module);
    apr_array_header_t *parts;
    char stamp[SCEP_UTIL_ISO_TIME_SIZE];
    const char *line;
    apr_size_t len;

    if (!conf->audit) {
        return;
    }
    scep_util_iso_time(stamp, apr_time_sec(r->request_time));
    parts = apr_array_make(r->pool, 10, sizeof(const char *));
    json_field(r->pool, parts, "time", stamp);
    json_field(r->pool, parts, "event", event);
    json_field(r->pool, parts, "location", r->uri);
    json_field(r->pool, parts, "client", r->useragent_ip);
    json_field(r->pool, parts, "user", r->user);
    json_field(r->pool, parts, "transaction_id", transaction_id);
    json_field(r->pool, parts, "fqdn", fqdn);
    json_field(r->pool, parts, "serial", serial);
    json_field(r->pool, parts, "outcome", outcome);
    json_field(r->pool, parts, "reason", reason);
    line = apr_pstrcat(r->pool, "{", apr_array_pstrcat(r->pool, parts, ','), "}\n", NULL);
    len = strlen(line);
    /* One write per line: with O_APPEND, lines of concurrent requests do not interleave. */
    if (apr_file_write_full(conf->audit, line, len, NULL) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, errno, r,
                      "SCEP00112: cannot write to ScepAuditLog %s", conf->audit_path);
    }
}

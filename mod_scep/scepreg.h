/* SPDX-License-Identifier: Apache-2.0 */
/* What the parts of scepreg share, and nothing else includes: the parsed command line,
 * the exit codes, the messages and the database plumbing of scepreg.c, and the commands
 * of scepreg_devices.c (registrations) and scepreg_records.c (what the module recorded:
 * certificates, held requests, minted challenges), which scepreg.c's table of modes
 * runs.  A command gets the database already open, for writing when its mode says so. */
#ifndef SCEPREG_H
#define SCEPREG_H

#include <signal.h>
#include <stdio.h>

#include <apr_pools.h>
#include <apr_tables.h>

#include "scep_db.h"

/* Exit codes: htpasswd's documented meanings for 0 to 7, read for a database; 8, which
 * htpasswd's manual leaves out (its source uses it for a failed random generator), for a
 * full one.  docs/scepreg.md compares them in a table. */
#define RC_OK          0
#define RC_DB          1    /* cannot open/create/read/write the database */
#define RC_SYNTAX      2    /* command line (or, for -I without -k, rejected rows) */
#define RC_MISMATCH    3    /* challenges differ (confirmation or -v) */
#define RC_INTERRUPTED 4    /* SIGINT/SIGTERM before the commit: nothing written */
#define RC_TOOLONG     5    /* a value is too long */
#define RC_ILLEGAL     6    /* an illegal FQDN, address or value, or no such device */
#define RC_INVALID     7    /* not a valid mod_scep database (corrupt, newer schema) */
#define RC_FULL        8    /* the map is full */

typedef struct opts_t {
    int mode;                       /* 'a' (add/update) or the option letter */
    int source;                     /* challenge: 0 (prompt/keep), 'i', 'b', 'g', 'n' */
    int create, one_time, clear_ips, json, keep_going;
    apr_size_t map_size;            /* 0: keep */
    apr_array_header_t *ips;        /* canonical, const char * */
    const char *serial, *expiry_text, *profile, *comment, *owner, *ttl_text, *import_file;
    const char *revoke_serial;      /* -R by serial (hex, upper-case); else o->fqdn */
    const char *transaction_id;     /* -Y/-N: as given; o->fqdn too when it is one */
    int reason;                     /* -R: RFC 5280 CRLReason */
    int revoke_too;                 /* -D -R: revoke the device's certificates as well */
    int approval;                   /* -W: 0 unset, 1 on, -1 off */
    apr_int64_t expires, ttl;
    int expires_set;
    const char *dbdir, *name, *fqdn, *challenge_arg;
    /* --pg or --pg-file: the database is PostgreSQL, and dbdir is then its conninfo as
     * messages show it (scep_sql_conninfo_shown) */
    const char *pg_conninfo;
    const char *pg_option;          /* "--pg" or "--pg-file", for messages */
    const char *command;            /* "db" or "copy", the words, else NULL */
    const char *const *command_args;    /* the operands after it */
    int command_nargs;
    unsigned char seen[256];
} opts_t;

/* A mode's work, on the database main opened for it.  Returns the exit code. */
typedef int scepreg_run_fn(apr_pool_t *p, const opts_t *o, scep_db_t *db, apr_int64_t now);

/* ---- scepreg.c ------------------------------------------------------------------ */

extern const char *scepreg_progname;
/* The core's messages on stderr, "progname: text", warnings and worse. */
extern const scep_log_t scepreg_cli_log;
/* Set by SIGINT and SIGTERM, checked up to the commit. */
extern volatile sig_atomic_t scepreg_interrupted;

/* "progname: message" on stderr, then the usage; returns RC_SYNTAX. */
int scepreg_syntax(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "progname: message" on stderr. */
void scepreg_complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reports a database error and returns the exit code it maps to. */
int scepreg_db_failed(apr_pool_t *p, const char *dir, const char *what, apr_status_t rv);
int scepreg_report_interrupted(void);
/* The last step of every change: an interrupt until now leaves the database as it was. */
int scepreg_commit(apr_pool_t *p, const char *dir, scep_txn_t *txn);
/* Opens the database the command line names, for writing or reading; an LMDB folder
 * is created with o->create.  Returns the exit code. */
int scepreg_open_lmdb(apr_pool_t *p, const opts_t *o, int write, scep_db_t **db);
int scepreg_open_pg(apr_pool_t *p, const opts_t *o, int write, scep_db_t **db);
/* After a change as root: the files stay usable by httpd's User (see scepreg.c). */
int scepreg_fix_ownership(apr_pool_t *p, const opts_t *o);
/* Flushes a listing; RC_DB when stdout failed. */
int scepreg_finish_output(void);
/* JSON lines: a string (null for NULL) and an ISO 8601 time (null for 0). */
void scepreg_json_string(FILE *out, const char *s);
void scepreg_json_time(FILE *out, apr_int64_t t);
/* "kind":…,"fqdn":…,"name":… of a registration key: its kind, the whole key (what
 * scepreg takes back: "name:*" is not "*") and its value without the prefix */
void scepreg_json_identity(FILE *out, const char *key);

/* ---- scepreg_devices.c: the registrations --------------------------------------- */

scepreg_run_fn scepreg_devices_add;     /* add or update (no mode letter) */
scepreg_run_fn scepreg_devices_change;  /* -D, -d, -E, -U */
scepreg_run_fn scepreg_devices_verify;  /* -v */
scepreg_run_fn scepreg_devices_list;    /* -l */
scepreg_run_fn scepreg_devices_check;   /* -V */
scepreg_run_fn scepreg_devices_import;  /* -I */

/* ---- scepreg_copy.c: every record between the engines ---------------------------- */

/* copy --to-pg DBDIR | --to-lmdb DBDIR (o->command_args), with --pg or --pg-file */
int scepreg_copy(apr_pool_t *p, const opts_t *o);

/* ---- scepreg_pki.c: the CA and RA files of an endpoint --------------------------- */

/* pki init [options] DIR (o->command_args from "init") */
int scepreg_pki(apr_pool_t *p, const opts_t *o);

/* ---- scepreg_records.c: what the module recorded -------------------------------- */

scepreg_run_fn scepreg_records_certs;   /* -L */
scepreg_run_fn scepreg_records_revoke;  /* -R */
scepreg_run_fn scepreg_records_held;    /* -P */
scepreg_run_fn scepreg_records_decide;  /* -Y, -N */
scepreg_run_fn scepreg_records_mint;    /* -M */

/* Revokes one certificate (`serial`), or every certificate of the name `fqdn`, inside
 * the caller's write transaction, so that -R and -D -R share it and the module sees a
 * whole change or none.  Counts the certificates revoked now and those revoked before;
 * SCEP_DB_NOTFOUND for a serial that is not recorded. */
apr_status_t scepreg_records_revoke_in(scep_txn_t *txn, apr_pool_t *p, const char *serial,
                                       const char *fqdn, int reason, apr_int64_t now,
                                       int *revoked, int *before);
/* "revoked N certificates of FQDN (reason); M already revoked" */
void scepreg_records_report_revoked(const opts_t *o, int revoked, int before);

#endif

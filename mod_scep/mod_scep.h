/* SPDX-License-Identifier: Apache-2.0 */
/* What the glue files of mod_scep share: the per-directory configuration and the objects
 * it names (CA sections, device databases opened once per child, upstream CAs), and each
 * glue file's functions.  httpd types live here, never in the core. */
#ifndef MOD_SCEP_H
#define MOD_SCEP_H

#include "httpd.h"
#include "http_config.h"

#include <apr_file_io.h>

#include "scep_ca.h"
#include "scep_db.h"
#include "scep_key.h"
#include "scep_forward.h"
#include "scep_server.h"
#include "scep_webhook.h"

extern module AP_MODULE_DECLARE_DATA scep_module;

/* The CA files of one configuration section.  Sections inherit the pointer, so the CA is
 * loaded once per section that names it, and loading fills in the shared object that
 * every merged configuration already points to. */
typedef struct ca_ref_t {
    scep_ca_files_t files;
    const char *defined_at;             /* "file:line", for startup messages */
    scep_ca_t *ca;
} ca_ref_t;

/* A device database folder.  LMDB allows one environment handle per folder and process,
 * so every section naming the same folder shares one of these, and each child opens it
 * once (never across fork).  `ScepDeviceDB dbd:` is one more such reference, to the
 * PostgreSQL of the server's mod_dbd: nothing is opened per child, each request borrows
 * mod_dbd's pooled connection. */
typedef struct scep_db_ref_t {
    const char *path;                   /* the folder, or SCEP_GLUE_DBD */
    int dbd;                            /* the records are in mod_dbd's PostgreSQL */
    apr_size_t map_size;                /* largest ScepDeviceDBMapSize naming it; 0 = default */
    const char *defined_at;
    scep_db_t *db;                      /* in a child, once opened */
    const char *open_error;             /* in a child, why it could not be opened */
} scep_db_ref_t;

/* The upstream CA of a section that forwards (ScepUpstreamURL and friends).  The object
 * that talks to it is made per child, from the CA section it shares its <Location> with. */
typedef struct scep_upstream_ref_t {
    scep_upstream_conf_t conf;
    const char *defined_at;
    struct scep_dir_conf_t *section;    /* whose ca_ref holds the RA */
    scep_upstream_t *up;                /* in a child, once made */
} scep_upstream_ref_t;

typedef struct scep_dir_conf_t {
    const char *location;               /* the section's path, for the status counters */
    ca_ref_t *ca_ref;
    scep_db_ref_t *db_ref;
    scep_upstream_ref_t *upstream_ref;
    scep_profile_t profile;
    apr_int64_t challenge_ttl;          /* ScepChallengeTTL, seconds; 0 = unset */
    int dbd_timeout_ms;                 /* ScepDBDTimeout; 0 = unset */
    unsigned int set;                   /* SCEP_PROFILE_SET_* of what the sections set */
} scep_dir_conf_t;

typedef struct scep_server_conf_t {
    const char *audit_path;             /* ScepAuditLog: a file or "|program" */
    apr_file_t *audit;
} scep_server_conf_t;

/* ---- configuration (mod_scep_config.c) ------------------------------------------- */
extern const command_rec scep_glue_config_cmds[];
void *scep_glue_config_create_dir(apr_pool_t *p, char *dir);
void *scep_glue_config_merge_dir(apr_pool_t *p, void *basev, void *addv);
/* pre_config: a new configuration cycle forgets the CA sections of the last one. */
void scep_glue_config_reset(apr_pool_t *pconf);
/* Every CA section (ca_ref_t *) of the configuration being read; NULL if none. */
const apr_array_header_t *scep_glue_config_cas(void);
/* ScepPassPhraseDialog of the configuration being read (kind NONE when not set). */
scep_key_dialog_t *scep_glue_config_dialog(void);
/* The profile in force for a section: what it set, the documented defaults elsewhere. */
void scep_glue_config_effective_profile(const scep_dir_conf_t *conf, scep_profile_t *out);

/* ---- device databases (mod_scep_state.c) ---------------------------------------- */
/* ScepDeviceDB's word for the PostgreSQL database of the server's mod_dbd. */
#define SCEP_GLUE_DBD "dbd:"
/* Seconds a client is asked to wait (Retry-After) when the store cannot answer. */
#define SCEP_GLUE_RETRY_AFTER "30"
void scep_glue_db_reset(void);
/* The reference for `path` (a folder, or SCEP_GLUE_DBD). */
scep_db_ref_t *scep_glue_db_ref(cmd_parms *cmd, const char *path);
/* check_config (httpd -t too): mod_dbd's functions for the dbd: references, or refuses. */
int scep_glue_db_check(server_rec *s);
/* post_config, as root: creates each folder (0700) owned by httpd's User. */
int scep_glue_db_prepare(apr_pool_t *ptemp, server_rec *s);
void scep_glue_db_child_init(apr_pool_t *pchild, server_rec *s);
/* The section's database for this request: the child's LMDB, or mod_dbd's connection
 * attached for the request.  NULL with an ERR line naming why: answer
 * scep_glue_db_unavailable. */
scep_db_t *scep_glue_db(request_rec *r, const scep_dir_conf_t *conf);
/* Whether a store status will likely pass (a shared database back, a full map grown):
 * the request is then answered 503, else 500. */
int scep_glue_db_transient(const scep_db_t *db, apr_status_t rv);
/* HTTP 503 with Retry-After, for a request the store could not serve. */
int scep_glue_db_unavailable(request_rec *r);

/* ---- CA keys in a PKCS#11 token (mod_scep_token.c) ------------------------------ */
/* child_init, before anything that uses the keys: each child opens its own session. */
void scep_glue_token_child_init(apr_pool_t *pchild, server_rec *s);
/* Before a request uses the section's keys (its body read: a slow client must hold
 * nothing): OK (a read lock held until the request's end), or 503 answered (the token
 * cannot be used now, with a log line).  Never waits. */
int scep_glue_token_enter(request_rec *r, ca_ref_t *ref);
/* The request is done with the keys (before its answer is written or anybody notified):
 * the lock let go, so that a slow reader of the answer holds up no reopening. */
void scep_glue_token_leave(request_rec *r, ca_ref_t *ref);
/* The core found a token key failing (scep_ca_token_works): the request's lock let go,
 * the session to be opened again; returns the 503 to answer, logged. */
int scep_glue_token_failed(request_rec *r, ca_ref_t *ref);

/* ---- audit log (mod_scep_audit.c) ------------------------------------------------ */
void *scep_glue_audit_create_server_conf(apr_pool_t *p, server_rec *s);
void *scep_glue_audit_merge_server_conf(apr_pool_t *p, void *basev, void *addv);
/* post_config: opens every server's audit log once. */
int scep_glue_audit_open(apr_pool_t *pconf, server_rec *s);
/* One JSON line per decision: event "issued", "refused", "minted" or "error".  NULL
 * fields are left out. */
void scep_glue_audit(request_rec *r, const char *event, const char *transaction_id,
                     const char *fqdn, const char *serial, const char *outcome,
                     const char *reason);

/* ---- minting challenges (mod_scep_admin.c) --------------------------------------- */
#define SCEP_CHALLENGE_HANDLER "scep-challenge"
#define SCEP_DEFAULT_CHALLENGE_TTL 3600
int scep_glue_challenge_handler(request_rec *r);

/* ---- forwarding to an upstream CA (mod_scep_forward.c) -------------------------------- */
void scep_glue_forward_reset(void);
/* The section's upstream, made with the documented defaults by its first ScepUpstream*
 * directive. */
scep_upstream_ref_t *scep_glue_forward_ref(cmd_parms *cmd, scep_dir_conf_t *conf);
/* post_config: libcurl's global state, once, in the parent. */
int scep_glue_forward_prepare(apr_pool_t *pconf, server_rec *s);
void scep_glue_forward_child_init(apr_pool_t *pchild, server_rec *s);

/* ---- the webhooks (mod_scep_webhook.c) ------------------------------------------------ */
/* A section's validator or notifier; the profile points at its `conf`. */
typedef struct scep_hook_ref_t {
    scep_hook_conf_t conf;
    int notify;
    struct scep_dir_conf_t *section;    /* whose ScepUpstream* transport it shares */
    struct scep_notify_queue_t *queue;  /* notifier, in a child */
} scep_hook_ref_t;

void scep_glue_webhook_reset(void);
/* The section's validator (notify 0) or notifier, made with the documented defaults by
 * its first directive and set in the section's profile. */
scep_hook_ref_t *scep_glue_webhook_ref(cmd_parms *cmd, scep_dir_conf_t *conf, int notify);
/* check_config (httpd -t too): every webhook complete (URL and secret), its transport,
 * libcurl. */
int scep_glue_webhook_prepare(apr_pool_t *pconf, server_rec *s);
/* child_init: one sending thread per child and notifier, stopped at the child's exit. */
void scep_glue_webhook_child_init(apr_pool_t *pchild, server_rec *s);
/* Queues the event of a PKIOperation's reply for the endpoint's notifier, without
 * waiting; a full queue drops it with a log line. */
void scep_glue_webhook_notify(request_rec *r, const scep_profile_t *profile,
                              const scep_reply_t *reply, const char *endpoint,
                              const char *client_ip);

/* ---- status counters (mod_scep_status.c) ------------------------------------------- */
#define SCEP_STATUS_HANDLER "scep-status"
void scep_glue_status_reset(void);
int scep_glue_status_prepare(apr_pool_t *pconf, server_rec *s);
void scep_glue_status_count(request_rec *r, const char *location, const char *outcome);
int scep_glue_status_log(request_rec *r);
int scep_glue_status_handler(request_rec *r);

/* ---- the CRL (mod_scep_crl.c) ----------------------------------------------------- */
#define SCEP_CRL_HANDLER "scep-crl"
int scep_glue_crl_handler(request_rec *r);

/* ---- shared by the handlers (mod_scep.c) ------------------------------------------- */
#define SCEP_GLUE_GET (AP_METHOD_BIT << M_GET)
#define SCEP_GLUE_GET_POST (SCEP_GLUE_GET | (AP_METHOD_BIT << M_POST))
/* The opening of every handler: DECLINED unless the request is for `handler`; 405 for a
 * method outside `methods` (which are added to r->allowed); else OK, with the section's
 * configuration in *conf unless conf is NULL. */
int scep_glue_handler_start(request_rec *r, const char *handler, apr_int64_t methods,
                            const scep_dir_conf_t **conf);
/* The time a handler's decisions are made at, read once per request when the request is
 * in hand (its body read) and passed down to the core.  Not r->request_time: that is when
 * the request line arrived, and a client that sends its headers or body slowly would
 * carry it into the past (an expired challenge accepted, a CRL rebuilt dated earlier). */
apr_int64_t scep_glue_now(void);

/* The core's log sink for a request's messages (baton: the request_rec). */
void scep_glue_log_to_request(void *baton, const char *file, int line, int level,
                              const char *text);
/* The core's log sink for server-level messages (baton: the server_rec): the line goes to
 * the error log under the core's own file and line. */
void scep_glue_log_to_server(void *baton, const char *file, int line, int level,
                             const char *text);
int scep_glue_send(request_rec *r, const char *content_type, const void *body,
                   apr_size_t len);

#endif

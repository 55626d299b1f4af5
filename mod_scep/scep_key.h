/* SPDX-License-Identifier: Apache-2.0 */
/* Private keys that need a secret to be used: PEM key files encrypted with a passphrase,
 * and the dialog (ScepPassPhraseDialog) that asks for that secret once, at startup, in
 * the parent process.  The passphrase lives in a stack buffer for the time of one
 * decryption and is wiped afterwards; what is kept across configuration cycles (so that
 * a graceful restart does not ask again) is the decrypted key, as mod_ssl keeps it. */
#ifndef SCEP_KEY_H
#define SCEP_KEY_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "scep_util.h"

typedef enum scep_key_dialog_kind_t {
    SCEP_KEY_DIALOG_NONE = 0,       /* no ScepPassPhraseDialog: an encrypted key refuses */
    SCEP_KEY_DIALOG_BUILTIN,        /* asked on the controlling terminal */
    SCEP_KEY_DIALOG_EXEC            /* printed by a program */
} scep_key_dialog_kind_t;

/* Keys already decrypted in this process, by file; kept in a pool that outlives the
 * configuration (httpd: the process pool).  No cleanup of ours is registered there: the
 * module is unloaded before that pool goes, so the memory ends with the process. */
typedef struct scep_key_cache_t scep_key_cache_t;

typedef struct scep_key_dialog_t {
    scep_key_dialog_kind_t kind;
    const char *program;            /* SCEP_KEY_DIALOG_EXEC: an absolute path */
    const char *server_id;          /* "host:port", the program's first argument */
    scep_key_cache_t *cache;        /* NULL: nothing is kept, every load asks */
    const char *state_dir;          /* root's, where a token's login record is kept
                                     * (httpd's runtime directory); NULL: none */
    int child;                      /* set in a child: nothing is asked there, and no
                                     * file of root's read; what the parent kept is used */
    int serving;                    /* set once a child serves requests: a token login
                                     * there never waits for another process's */
} scep_key_dialog_t;

/* A secret kept in the cache under `name` (a token's PIN, which the children need and
 * cannot read from root's files), or NULL.  put replaces it (NULL value: forgets it). */
const char *scep_key_cache_secret(scep_key_cache_t *cache, const char *name);
void scep_key_cache_secret_put(scep_key_cache_t *cache, const char *name, const char *value);

/* A descriptor kept under `name` (a token's login record, which the parent opens and
 * its children inherit); -1 if none.  put keeps it for the life of the process. */
int scep_key_cache_fd(scep_key_cache_t *cache, const char *name);
void scep_key_cache_fd_put(scep_key_cache_t *cache, const char *name, int fd);

/* Asks the dialog for a secret: `what` names it on the terminal, `type` is the program's
 * second argument.  NULL with the answer in buf (len bytes, not terminated), or why not;
 * buf is wiped on failure.  A child (dialog->child) is refused: only the parent asks. */
const char *scep_key_dialog_ask(apr_pool_t *p, const scep_key_dialog_t *dialog,
                                const char *what, const char *type, char *buf, size_t size,
                                size_t *len);

/* "builtin" or "exec:/absolute/path" into `out` (its cache and server_id untouched);
 * NULL, or a sentence saying what is wrong. */
const char *scep_key_dialog_parse(apr_pool_t *p, const char *arg, scep_key_dialog_t *out);

/* The cache, found in (or else made and attached to) `process_pool` under a fixed key,
 * so that it survives the module being unloaded and loaded again by a restart. */
scep_key_cache_t *scep_key_cache_get(apr_pool_t *process_pool);

/* The private key of the PEM in `bio`, read from file `path` (for the cache and the
 * dialog's prompt).  An encrypted key is decrypted with the passphrase the dialog gives,
 * asked at most once; `cert`'s key type is the dialog program's second argument (RSA,
 * EC, ...).  On failure returns APR_EINVAL and sets *problem to what is wrong, to follow
 * the file's name in a sentence.  The key is owned by `p`. */
apr_status_t scep_key_read_pem(apr_pool_t *p, const scep_key_dialog_t *dialog,
                               const scep_log_t *log, const char *role, const char *path,
                               BIO *bio, X509 *cert, EVP_PKEY **out, const char **problem);

#endif

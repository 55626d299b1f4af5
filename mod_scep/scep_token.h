/* SPDX-License-Identifier: Apache-2.0 */
/* Keys and certificates in a PKCS#11 token, named by RFC 7512 URIs (`pkcs11:...`), used
 * through libp11.  One PKCS#11 module per process: the parent loads it to check at
 * startup, then unloads it before children fork; each child loads its own (sessions do
 * not survive fork).  The PIN comes from the URI's pin-source (a root-only file) or from
 * ScepPassPhraseDialog, never from configuration text, and is never logged. */
#ifndef SCEP_TOKEN_H
#define SCEP_TOKEN_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "scep_key.h"

/* Whether a key or certificate setting names a token object rather than a file. */
int scep_token_is_uri(const char *text);

/* What a configuration's URI must be: RFC 7512's scheme and attribute shapes, no
 * pin-value (a PIN in configuration text).  NULL, or why it is refused. */
const char *scep_token_uri_check(apr_pool_t *p, const char *uri);

/* Loads the module the URI names (module-path; else p11-kit's proxy) in this process,
 * once; later calls reuse it.  Every URI of a process must name the same module. */
apr_status_t scep_token_open(apr_pool_t *p, const char *uri, const char **problem);

/* The private key the URI names.  Logs in first with the URI's PIN: its pin-source
 * file, else the dialog (asked once per process and token, then kept in memory for the
 * children, which cannot read root's files).  No PIN lockout from retries: the
 * processes of the server (and httpd -t) log in one at a time, under a lock on the
 * token's login record in dialog->state_dir; a PIN the token refused is written there
 * and not tried again by any of them, until the pin-source file changes (or the record
 * is removed, for a PIN from the dialog); a token that says its PIN is locked or one
 * try from it is not tried at all.  APR_EAGAIN: the module listed no slot, or no
 * matching token (missing, or SoftHSM2 rewriting its files for another process's
 * login: worth another try soon).  The key is not owned by `p`: scep_token_free_key. */
apr_status_t scep_token_load_key(apr_pool_t *p, const scep_key_dialog_t *dialog,
                                 const char *uri, EVP_PKEY **out, const char **problem);
void scep_token_free_key(EVP_PKEY *key);

/* The certificate the URI names (owned by `p`). */
apr_status_t scep_token_load_cert(apr_pool_t *p, const scep_key_dialog_t *dialog,
                                  const char *uri, X509 **out, const char **problem);

/* Ends this process's use of the token: its sessions close and the module is finalised
 * (C_Finalize), so that nothing of it crosses a fork and a new session starts afresh.
 * Every key from the token must be freed first: they point into the module's state. */
void scep_token_close(void);

/* A configuration is read (the parent, at every start and restart): its URIs may name
 * another module than the last one's. */
void scep_token_config_begin(void);

#endif

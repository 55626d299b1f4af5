/* SPDX-License-Identifier: Apache-2.0 */
/* scep_store's records in PostgreSQL's tables (scep_sql.c holds the schema).  Private to
 * the store: scep_store.c hands a call here when the transaction is scep_sql's, so the
 * policy and the tools never know which engine they talk to.  Each function keeps the
 * contract of its scep_store.h namesake; a row that does not pass the checks a record read
 * from LMDB must pass is SCEP_DB_CORRUPT, never half-read.
 *
 * Writers hold the schema row's lock (scep_sql.h), so a read and the write it guards are
 * one step across all nodes; the tables' constraints (unique transactionID per requester,
 * unique serial) catch what a bug would let through. */
#ifndef SCEP_STORE_SQL_H
#define SCEP_STORE_SQL_H

#include "scep_store.h"

/* ---- the checks a record passes whichever engine kept it (in scep_store.c) ---------- */

/* A challenge verifier from its parts, SCEP_DB_CORRUPT unless each has the range or the
 * length of the LMDB field (algorithm one byte, iterations four, salt and hash). */
apr_status_t scep_store_verifier_from(apr_int64_t algorithm, apr_int64_t iterations,
                                      const unsigned char *salt, apr_size_t salt_len,
                                      const unsigned char *hash, apr_size_t hash_len,
                                      scep_verifier_t *v);
/* A transaction read back: its state is there, its identity fits its key (both the name
 * and the place or neither, never a host's, the name's key is the record's fqdn), and a
 * record kept under a requester repeats that requester as its signer key (`requester`
 * NULL for a record kept under the bare ID).  SCEP_DB_CORRUPT otherwise. */
apr_status_t scep_store_transaction_check(apr_pool_t *p, const scep_transaction_t *t,
                                          int name_present, int where_present,
                                          apr_int64_t where, const unsigned char *requester);

/* Whether the transaction is PostgreSQL's. */
int scep_store_sql_active(scep_txn_t *txn);

apr_status_t scep_store_sql_device_get(scep_txn_t *txn, apr_pool_t *p, const char *key,
                                       scep_device_t **dev);
/* The record under the first of `keys` (const char *, the most specific first) that has
 * one, in one statement: scep_store_device_find's lookups. */
apr_status_t scep_store_sql_device_find(scep_txn_t *txn, apr_pool_t *p,
                                        const apr_array_header_t *keys, scep_device_t **dev);
apr_status_t scep_store_sql_device_put(scep_txn_t *txn, apr_pool_t *p,
                                       const scep_device_t *dev);
apr_status_t scep_store_sql_device_delete(scep_txn_t *txn, const char *key);
apr_status_t scep_store_sql_device_foreach(scep_txn_t *txn, apr_pool_t *p,
                                           scep_device_visit_fn fn, void *baton);

/* key: SHA-256 of the challenge text (scep_store.c makes it) */
apr_status_t scep_store_sql_minted_insert(scep_txn_t *txn, apr_pool_t *p,
                                          const unsigned char *key, const scep_minted_t *m);
apr_status_t scep_store_sql_minted_get(scep_txn_t *txn, apr_pool_t *p,
                                       const unsigned char *key, scep_minted_t **rec);
apr_status_t scep_store_sql_minted_delete(scep_txn_t *txn, const unsigned char *key);
apr_status_t scep_store_sql_minted_purge(scep_txn_t *txn, apr_pool_t *p, apr_int64_t now,
                                         apr_size_t *removed);
apr_status_t scep_store_sql_minted_count(scep_txn_t *txn, apr_size_t *count);

apr_status_t scep_store_sql_failure_get(scep_txn_t *txn, const char *key, scep_failure_t *f);
apr_status_t scep_store_sql_failure_put(scep_txn_t *txn, apr_pool_t *p, const char *key,
                                        const scep_failure_t *f);
apr_status_t scep_store_sql_failure_clear(scep_txn_t *txn, const char *key);
apr_status_t scep_store_sql_failure_get_pair(scep_txn_t *txn, apr_pool_t *p, const char *a,
                                             const char *b, scep_failure_t *fa, int *found_a,
                                             scep_failure_t *fb, int *found_b);
apr_status_t scep_store_sql_failure_purge(scep_txn_t *txn, apr_pool_t *p, apr_int64_t now,
                                          apr_int64_t idle, apr_size_t *removed);
apr_status_t scep_store_sql_failure_count(scep_txn_t *txn, apr_size_t *count);
apr_status_t scep_store_sql_failure_count_estimate(scep_txn_t *txn, apr_size_t *count);

apr_status_t scep_store_sql_transaction_get_for(scep_txn_t *txn, apr_pool_t *p,
                                                const char *id,
                                                const unsigned char *requester,
                                                scep_transaction_t **t);
apr_status_t scep_store_sql_transaction_get(scep_txn_t *txn, apr_pool_t *p, const char *id,
                                            scep_transaction_t **t);
apr_status_t scep_store_sql_transaction_reread(scep_txn_t *txn, apr_pool_t *p,
                                               const scep_transaction_t *t,
                                               scep_transaction_t **fresh);
apr_status_t scep_store_sql_transaction_walk(scep_txn_t *txn, apr_pool_t *p, int held_only,
                                             scep_transaction_visit_fn fn, void *baton);
apr_status_t scep_store_sql_transaction_put(scep_txn_t *txn, apr_pool_t *p,
                                            const scep_transaction_t *t);

apr_status_t scep_store_sql_cert_put(scep_txn_t *txn, apr_pool_t *p, const scep_cert_rec_t *c);
apr_status_t scep_store_sql_cert_get(scep_txn_t *txn, apr_pool_t *p, const char *serial_hex,
                                     scep_cert_rec_t **c);
apr_status_t scep_store_sql_cert_foreach(scep_txn_t *txn, apr_pool_t *p, const char *fqdn,
                                         scep_cert_visit_fn fn, void *baton);
apr_status_t scep_store_sql_cert_revoke(scep_txn_t *txn, apr_pool_t *p,
                                        const char *serial_hex, apr_int64_t now, int reason,
                                        int *already);

apr_status_t scep_store_sql_crl_state_get(scep_txn_t *txn, scep_crl_state_t *state);
apr_status_t scep_store_sql_crl_published_get(scep_txn_t *txn, apr_pool_t *p,
                                              scep_crl_published_t **pub);
apr_status_t scep_store_sql_crl_published_put(scep_txn_t *txn, apr_pool_t *p,
                                              const scep_crl_published_t *pub);

/* many registrations at once (keys differ, n > 0) */
apr_status_t scep_store_sql_device_get_many(scep_txn_t *txn, apr_pool_t *p,
                                            const char *const *keys, int n,
                                            scep_device_t **devs, int *failed);
apr_status_t scep_store_sql_device_put_many(scep_txn_t *txn, apr_pool_t *p,
                                            const scep_device_t *const *devs, int n);
/* copying a whole store (scepreg copy) */
apr_status_t scep_store_sql_minted_foreach(scep_txn_t *txn, apr_pool_t *p,
                                           scep_minted_visit_fn fn, void *baton);
apr_status_t scep_store_sql_failure_foreach(scep_txn_t *txn, apr_pool_t *p,
                                            scep_failure_visit_fn fn, void *baton);
apr_status_t scep_store_sql_crl_state_put(scep_txn_t *txn, apr_pool_t *p,
                                          const scep_crl_state_t *state);

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* scep_store's records in PostgreSQL (see scep_store_sql.h). */
#include "scep_store_sql.h"
#include "scep_sql.h"

int scep_store_sql_active(scep_txn_t *txn)
{
    return scep_db_backend_txn(txn) != NULL;
}

apr_status_t scep_store_sql_device_get(scep_txn_t *txn, apr_pool_t *p, const char *key, scep_device_t **dev)
{
    (void)txn;
    (void)p;
    (void)key;
    (void)dev;
    return APR_ENOTIMPL;
}

apr_status_t scep_store_sql_device_put(scep_txn_t *txn, apr_pool_t *p, const scep_device_t *dev)
{
    (void)txn;
    (void)p;
    (void)dev;
    return APR_ENOTIMPL;
}

apr_status_t scep_store_sql_device_delete(scep_txn_t *txn, const char *key)
{
    (void)txn;
    (void)key;
    return APR_ENOTIMPL;
}

apr_status_t scep_store_sql_device_foreach(scep_txn_t *txn, apr_pool_t *p, scep_device_visit_fn fn, void *baton)
{
    (void)txn;
    (void)p;
    (void)fn;
    (void)baton;
    return APR_ENOTIMPL;
}

apr_status_t scep_store_sql_minted_insert(scep_txn_t *txn, apr_pool_t *p, const unsigned char *key, const scep_minted_t *m)
{
    (void)txn;
    (void)p;
    (void)key;
    (void)m;
    return APR_ENOTIMPL;
}

apr_status_t scep_store_sql_minted_get(scep_txn_t *txn, apr_pool_t *p, const unsigned char *key, scep_minted_t **rec)
{
    (void)txn;
    (void)p;
    (void)key;
    (void)rec;
    return APR_ENOTIMPL;
}

apr_status_t scep_store_sql_minted_delete(scep_txn_t *txn, const unsigned char *key)
{
    (void)txn;
    (void)key;
    return APR_ENOTIMPL;
}

apr_status_t scep_store_sql_minted_purge(scep_txn_t *txn, apr_pool_t *p, apr_int64_t now, apr_size_t *removed)
{
    (void)txn;
    (void)p;
    (void)now;
    (void)removed;
    return APR_ENOTIMPL;
}

apr_status_t scep_store_sql_minted_count(scep_txn_t *txn, apr_size_t *count)
{
    (void)txn;
    (void)count;
    return APR_ENOTIMPL;
}

apr_status_t scep_store_sql_failure_get(scep_txn_t *txn, const char *key, scep_failure_t *f)
{
    (void)txn;
    (void)key;
    (void)f;
    return APR_ENOTIMPL;
}

apr_status_t scep_store_sql_failure_put(scep_txn_t *txn, apr_pool_t *p, const char *key, const scep_failure_t *f)
{
    (void)txn;
    (void)p;
    (void)key;
    (void)f;
    return APR_ENOTIMPL;
}

apr_status_t scep_store_sql_failure_clear(scep_txn_t *txn, const char *key)
{
    (void)txn;
    (void)key;
    return APR_ENOTIMPL;
}

apr_status_t scep_store_sql_failure_purge(scep_txn_t *txn, apr_pool_t *p, apr_int64_t now, apr_int64_t idle, apr_size_t *removed)
{
    (void)txn;
    (void)p;
    (void)now;
    (void)idle;
    (void)removed;
    return APR_ENOTIMPL;
}

apr_status_t scep_store_sql_failure_count(scep_txn_t *txn, apr_size_t *count)
{
    (void)txn;
    (void)count;
    return APR_ENOTIMPL;
}

apr_status_t scep_store_sql_transaction_get_for(scep_txn_t *txn, apr_pool_t *p, const char *id, const unsigned char *requester, scep_transaction_t **t)
{
    (void)txn;
    (void)p;
    (void)id;
    (void)requester;
    (void)t;
    return APR_ENOTIMPL;
}

apr_status_t scep_store_sql_transaction_get(scep_txn_t *txn, apr_pool_t *p, const char *id, scep_transaction_t **t)
{
    (void)txn;
    (void)p;
    (void)id;
    (void)t;
    return APR_ENOTIMPL;
}

apr_status_t scep_store_sql_transaction_reread(scep_txn_t *txn, apr_pool_t *p, const scep_transaction_t *t, scep_transaction_t **fresh)
{
    (void)txn;
    (void)p;
    (void)t;
    (void)fresh;
    return APR_ENOTIMPL;
}

apr_status_t scep_store_sql_transaction_walk(scep_txn_t *txn, apr_pool_t *p, int held_only, scep_transaction_visit_fn fn, void *baton)
{
    (void)txn;
    (void)p;
    (void)held_only;
    (void)fn;
    (void)baton;
    return APR_ENOTIMPL;
}

apr_status_t scep_store_sql_transaction_put(scep_txn_t *txn, apr_pool_t *p, const scep_transaction_t *t)
{
    (void)txn;
    (void)p;
    (void)t;
    return APR_ENOTIMPL;
}

apr_status_t scep_store_sql_cert_put(scep_txn_t *txn, apr_pool_t *p, const scep_cert_rec_t *c)
{
    (void)txn;
    (void)p;
    (void)c;
    return APR_ENOTIMPL;
}

apr_status_t scep_store_sql_cert_get(scep_txn_t *txn, apr_pool_t *p, const char *serial_hex, scep_cert_rec_t **c)
{
    (void)txn;
    (void)p;
    (void)serial_hex;
    (void)c;
    return APR_ENOTIMPL;
}

apr_status_t scep_store_sql_cert_foreach(scep_txn_t *txn, apr_pool_t *p, const char *fqdn, scep_cert_visit_fn fn, void *baton)
{
    (void)txn;
    (void)p;
    (void)fqdn;
    (void)fn;
    (void)baton;
    return APR_ENOTIMPL;
}

apr_status_t scep_store_sql_cert_revoke(scep_txn_t *txn, apr_pool_t *p, const char *serial_hex, apr_int64_t now, int reason, int *already)
{
    (void)txn;
    (void)p;
    (void)serial_hex;
    (void)now;
    (void)reason;
    (void)already;
    return APR_ENOTIMPL;
}

apr_status_t scep_store_sql_crl_state_get(scep_txn_t *txn, scep_crl_state_t *state)
{
    (void)txn;
    (void)state;
    return APR_ENOTIMPL;
}

apr_status_t scep_store_sql_crl_published_get(scep_txn_t *txn, apr_pool_t *p, scep_crl_published_t **pub)
{
    (void)txn;
    (void)p;
    (void)pub;
    return APR_ENOTIMPL;
}

apr_status_t scep_store_sql_crl_published_put(scep_txn_t *txn, apr_pool_t *p, const scep_crl_published_t *pub)
{
    (void)txn;
    (void)p;
    (void)pub;
    return APR_ENOTIMPL;
}

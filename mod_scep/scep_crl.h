/* SPDX-License-Identifier: Apache-2.0 */
/* The CRL of the local CA: built from the revocations recorded in the device database,
 * signed with the CA key, and kept in the database so that every process serves the
 * same CRL and its CRLNumber only grows.  Served by the glue's CRL handler and inside
 * GetCRL's CertRep. */
#ifndef SCEP_CRL_H
#define SCEP_CRL_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_errno.h>

#include "scep_ca.h"
#include "scep_db.h"

typedef struct scep_crl_t {
    const unsigned char *der;
    apr_size_t der_len;
    apr_int64_t number;
    apr_int64_t this_update, next_update;
    apr_int64_t refresh_at;             /* when it will be rebuilt even without changes */
    apr_size_t entries;                 /* revoked certificates it lists (when built now) */
    int built;                          /* signed by this call, not read back */
} scep_crl_t;

/* Signs a CRL listing `revoked` (scep_cert_rec_t *, each with its revocation time and
 * reason) with CRLNumber `number`.  DER in the pool. */
apr_status_t scep_crl_build(apr_pool_t *p, const scep_ca_t *ca,
                            const apr_array_header_t *revoked, apr_int64_t number,
                            apr_int64_t this_update, apr_int64_t next_update,
                            unsigned char **der, apr_size_t *len);

/* The CRL to serve now.  The stored one is served until a revocation is recorded, half
 * of its `validity` has passed, or another CA signed it; then a new one is built with
 * the next number and stored (so two processes racing store only one).  It lists the
 * certificates of this CA that are revoked and not yet expired.  Database errors are
 * returned as they are; APR_EGENERAL when signing fails (OpenSSL's queue says why). */
apr_status_t scep_crl_current(apr_pool_t *p, const scep_ca_t *ca, scep_db_t *db,
                              apr_int64_t validity, apr_int64_t now, scep_crl_t **crl);

#endif

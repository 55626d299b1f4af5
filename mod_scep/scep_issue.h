/* SPDX-License-Identifier: Apache-2.0 */
/* Certificate issuance by the local CA (scep_ca holds the keys and what every issued
 * certificate shares; this unit builds and signs one certificate). */
#ifndef SCEP_ISSUE_H
#define SCEP_ISSUE_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <openssl/x509.h>

#include "scep_ca.h"
#include "scep_csr.h"
#include "scep_profile.h"

/* Signs a certificate for `csr` under `profile`.  The subject and SANs come from the CSR
 * as the profile says, or, when a registration decided them (`forced` not NULL), are
 * exactly CN=<fqdn> (plus the registered serialNumber) and a SAN of the FQDN and the
 * registered addresses; everything else from the profile.  Valid from `now` (less five
 * minutes) for the profile's days, never beyond the CA certificate.  *cert is freed with
 * the pool.  APR_EINVAL with *why when the CSR cannot be certified (names nobody); other errors are
 * server failures (the OpenSSL queue holds the detail). */
apr_status_t scep_issue_certificate(apr_pool_t *p, const scep_ca_t *ca,
                                    const scep_profile_t *profile, const scep_csr_t *csr,
                                    const scep_identity_t *forced, apr_int64_t now,
                                    X509 **cert, const char **why);

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* The loaded CA, as the core units see it (OpenSSL types; not for the httpd glue). */
#ifndef SCEP_CA_INT_H
#define SCEP_CA_INT_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "scep_ca.h"

struct scep_ca_t {
    X509 *ca_cert;
    EVP_PKEY *ca_key;
    STACK_OF(X509) *chain;          /* the CA file's certificates after the first */
    X509 *ra_cert;                  /* NULL without an RA: the CA decrypts */
    EVP_PKEY *ra_key;
    X509 *sign_cert;                /* signs CertReps: RA signer, RA, or CA */
    EVP_PKEY *sign_key;
    const char *name;
    const char *caps;
    const char *cacert_type;
    unsigned char *cacert_der;
    apr_size_t cacert_der_len;
    unsigned char *nextca_der;      /* NULL without a next CA */
    apr_size_t nextca_der_len;
    STACK_OF(X509) *previous;       /* earlier CAs whose certificates still renew */
    /* The same in every certificate issued here, so made once at load time instead of
     * from configuration text per certificate. */
    X509_EXTENSION *end_entity_constraints;     /* critical basicConstraints CA:FALSE */
    X509_EXTENSION *authority_key_id;           /* names the CA certificate's key id */
    EVP_MD *sha1;                               /* subject key ids (RFC 5280 4.2.1.2) */
};



#include "scep_csr.h"
#include "scep_policy.h"
#include "scep_server.h"

/* Signs a certificate for `csr` under `profile`.  The subject and SANs come from the CSR
 * as the profile says, or, when a registration decided them (`forced` not NULL), are
 * exactly CN=<fqdn> (plus the registered serialNumber) and a SAN of the FQDN and the
 * registered addresses; everything else from the profile.  *cert is freed with the pool.
 * APR_EINVAL with *why when the CSR cannot be certified (names nobody); other errors are
 * server failures (the OpenSSL queue holds the detail). */
apr_status_t scep_ca_issue(apr_pool_t *p, const scep_ca_t *ca, const scep_profile_t *profile,
                           const scep_csr_t *csr, const scep_identity_t *forced,
                           X509 **cert, const char **why);
/* Whether `cert` was issued by this CA or one of its previous CAs (issuer name and
 * signature). */
int scep_ca_issued(const scep_ca_t *ca, X509 *cert);

#endif

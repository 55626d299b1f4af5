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
#include "scep_template.h"

/* Signs a certificate for `csr` under `profile`.  The names come from the template in
 * force (scep_issue_template): a template with rules decides them with the authorised
 * identity `forced` (scep_template_apply); ScepSubject's copying templates take the CSR's
 * subject (or CN) and SAN, or, when a host registration decided them (`forced` not
 * NULL), exactly CN=<fqdn> (plus the registered serialNumber) and a SAN of the FQDN and
 * the registered addresses.  Key usages and the rest from the profile.  Valid from `now`
 * (less five minutes) for the profile's days, never beyond the CA certificate.  *cert is
 * freed with the pool; *dropped (NULL or const char *) lists what the template left out,
 * for the caller's log.  APR_EINVAL with *why when the CSR cannot be certified (the
 * template refuses it, it names nobody); other errors are server failures (the OpenSSL
 * queue holds the detail). */
apr_status_t scep_issue_certificate(apr_pool_t *p, const scep_ca_t *ca,
                                    const scep_profile_t *profile, const scep_csr_t *csr,
                                    const scep_identity_t *forced, apr_int64_t now,
                                    X509 **cert, const apr_array_header_t **dropped,
                                    const char **why);

/* The template that decides the names for `identity` (NULL: none authorised): the
 * profile's, else ScepSubject's; a device or user identity is never certified by a
 * copying template, only with its identity (scep_template_identity_only). */
const scep_template_t *scep_issue_template(const scep_profile_t *profile,
                                           const scep_identity_t *identity);

#endif

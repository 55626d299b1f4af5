/* SPDX-License-Identifier: Apache-2.0 */
/* The canonical forms of the names and addresses that key registrations, failure
 * counters and certificates, and how a registration key (exact or wildcard) matches a
 * name.  Every caller canonicalises with these before it compares or stores. */
#ifndef SCEP_NAME_H
#define SCEP_NAME_H

#include <apr_pools.h>

#define SCEP_FQDN_MAX 253

/* Lower-cases a host name and drops one trailing dot.  Labels of letters, digits, '-'
 * and '_' (1 to 63 each), SCEP_FQDN_MAX in all.  With allow_wildcard, "*" and
 * "*.<name>" are accepted too.  NULL if the name is not acceptable. */
const char *scep_name_fqdn(apr_pool_t *p, const char *name, int allow_wildcard);

/* An IPv4 or IPv6 address in canonical text form (inet_ntop), or NULL. */
const char *scep_name_ip(apr_pool_t *p, const char *text);

/* Whether a registration key matches a canonical FQDN: equal, or "*" (any name), or
 * "*.suffix" (any name of one or more labels followed by ".suffix"). */
int scep_name_matches(const char *key, const char *fqdn);

#endif

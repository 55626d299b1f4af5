/* SPDX-License-Identifier: Apache-2.0 */
/* The canonical forms of the names and addresses that key registrations, failure
 * counters and certificates, and how a registration key (exact or wildcard) matches a
 * name.  Every caller canonicalises with these before it compares or stores.
 *
 * A registration key is a host's canonical FQDN (as ever), or the identity of another
 * kind behind its prefix: "name:<device name>", "id:<device id>", "user:<e-mail or UPN>".
 * Host names never hold ':', so the keys of hosts and of the other kinds never meet and
 * databases written before the other kinds existed read unchanged. */
#ifndef SCEP_NAME_H
#define SCEP_NAME_H

#include <apr_pools.h>

#include "scep_profile.h"

#define SCEP_FQDN_MAX 253
#define SCEP_NAME_VALUE_MAX 256        /* bytes of a device name, device id or user */

/* Lower-cases a host name and drops one trailing dot.  Labels of letters, digits, '-'
 * and '_' (1 to 63 each), SCEP_FQDN_MAX in all.  With allow_wildcard, "*" and
 * "*.<name>" are accepted too.  NULL if the name is not acceptable. */
const char *scep_name_fqdn(apr_pool_t *p, const char *name, int allow_wildcard);

/* An IPv4 or IPv6 address in canonical text form (inet_ntop), or NULL. */
const char *scep_name_ip(apr_pool_t *p, const char *text);

/* Whether a registration key matches a canonical key: equal; or "*" (any host) or
 * "*.suffix" (any host of one or more labels followed by ".suffix"); or "name:*",
 * "id:*", "user:*" (any identity of that kind); or "user:*@domain" (any user of exactly
 * that domain).  A host wildcard never matches another kind. */
int scep_name_matches(const char *key, const char *fqdn);

/* The canonical key of `value`, an identity of `kind` as a request or an operator
 * writes it (without a prefix).  The value must be UTF-8 without NUL or control
 * characters (C0, DEL, C1), 1 to SCEP_NAME_VALUE_MAX bytes.  Hosts: scep_name_fqdn.
 * Device names are kept exactly, case included (no Unicode normalisation: two
 * spellings of one glyph are two names).  Device ids: a MAC address in any usual
 * spelling (aa:bb:cc:dd:ee:ff, AA-BB-…, aabb.ccdd.eeff, 12 hex digits) becomes lower
 * case with colons; any other id is kept exactly.  Users: local@domain, the local part
 * kept, the domain a host name, lower-cased.  With allow_wildcard, "*" (any of the
 * kind) and, for users, "*@domain" are accepted.  NULL with *why (when why is not
 * NULL) if the value is not acceptable. */
const char *scep_name_identity_key(apr_pool_t *p, scep_identity_kind_e kind,
                                   const char *value, int allow_wildcard, const char **why);

/* The canonical key of "name:…", "id:…", "user:…", "host:…" or a bare host name, as
 * scepreg, its CSV import and the minting endpoint take them.  NULL with *why (when
 * why is not NULL) if it is not acceptable. */
const char *scep_name_key(apr_pool_t *p, const char *text, int allow_wildcard,
                          const char **why);

/* Whether a canonical key stands for many names: "*", "*.x", "<kind>:*", "user:*@x". */
int scep_name_is_wildcard(const char *key);

/* The kind of a canonical key, by its prefix (none: a host). */
scep_identity_kind_e scep_name_key_kind(const char *key);
/* The key without its prefix (a host's key is its own value). */
const char *scep_name_key_value(const char *key);
/* Whether requests may carry an identity of `kind` at `where` (a number as stored,
 * range-checked here): what ScepIdentity accepts, so that a stored record naming any
 * other place is known to be damaged.  A host: SCEP_WHERE_HOST_RULES only. */
int scep_name_where_fits(scep_identity_kind_e kind, apr_int64_t where);

/* "host", "device-name", "device-id", "user": the kind as ScepIdentity and the JSON
 * listings spell it. */
const char *scep_name_kind_name(scep_identity_kind_e kind);

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* Who may enroll, decided against the device registrations in the database: which
 * registration (or minted challenge) a PKCS#10 falls under, whether its name, address,
 * serial number and challenge match, lockout after repeated failures, and the one write
 * transaction that records an issued certificate together with consuming a one-time
 * challenge.  Retries of a transaction are answered from the record.
 *
 * Reads and writes are separate short transactions, and the commit re-checks what the
 * read saw, so concurrent requests with one one-time challenge yield one certificate. */
#ifndef SCEP_POLICY_H
#define SCEP_POLICY_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_errno.h>

#include "scep_csr.h"
#include "scep_template.h"
#include "scep_db.h"
#include "scep_profile.h"
#include "scep_store.h"

typedef enum scep_grant_kind_e {
    SCEP_GRANT_DEVICE,                 /* an exact registration */
    SCEP_GRANT_WILDCARD,               /* a wildcard registration */
    SCEP_GRANT_MINTED,                 /* a minted one-time challenge */
    SCEP_GRANT_RENEWAL,                /* the device's current certificate */
    SCEP_GRANT_VALIDATOR               /* the validation webhook alone (ScepValidateMode
                                        * alone): no registration or challenge of ours */
} scep_grant_kind_e;

/* What authorization found; the input of scep_policy_record. */
typedef struct scep_grant_t {
    scep_grant_kind_e kind;
    const char *registration;          /* the device key ("*.x" for wildcards), or NULL */
    int one_time;
    const char *secret;                /* minted: the challenge to consume (not logged) */
    apr_size_t secret_len;
    scep_identity_t identity;
    const char *renews;                /* renewal: serial of the signer certificate */
    int needs_approval;                /* hold it (scep_policy_hold) instead of issuing */
    int held;                          /* approved after a hold: scep_policy_record_approved */
    int upstream_pending;              /* held: the upstream CA has it and said PENDING */
    int forced_host;                   /* a validator's grant: the request named a host,
                                        * which a template then writes as the identity */
    int legacy_upstream_id;            /* held before upstream transactionIDs were
                                        * derived: the upstream knows the device's own */
} scep_grant_t;

/* The FQDN a request asks for: its first dNSName SAN, else unstructuredName, else a
 * commonName that is a host name.  Canonical, or NULL when the request names no host. */
const char *scep_policy_requested_name(apr_pool_t *p, const scep_csr_t *csr);

/* The identity a request carries where the endpoint says (conf->identity_kind and
 * identity_where): its registration key in *key and, for kinds other than hosts, the
 * value exactly as the request carries it in *name.  Hosts: scep_policy_requested_name
 * (*key NULL when the request names no host, *name NULL).  Other kinds: exactly one
 * value at that place, readable and acceptable (scep_name_identity_key); else
 * SCEP_POLICY_DENIED with *why (a second value there is a second identity, refused). */
apr_status_t scep_policy_requested_identity(apr_pool_t *p, const scep_policy_conf_t *conf,
                                            const scep_csr_t *csr, const char **key,
                                            const char **name, const char **why);

/* How a refusal names a place a request carries an identity ("CN", "rfc822Name"…). */
const char *scep_policy_where_name(scep_identity_where_e where);

/* What a forwarding gateway decides about a request before it goes upstream. */
typedef enum scep_policy_fwd_e {
    SCEP_POLICY_FWD_OK,                /* forward it */
    SCEP_POLICY_FWD_NAME,              /* a name, address or serial the identity lacks */
    SCEP_POLICY_FWD_NEVER,             /* something no registration allows: another
                                        * subject attribute or SAN type, an extension or
                                        * attribute not known to be harmless, a value that
                                        * does not decode, a second instance */
    SCEP_POLICY_FWD_TEMPLATE           /* something the template would not certify
                                        * (*what is the whole sentence) */
} scep_policy_fwd_e;

/* Where an upstream CA issues from the request as it is, the request may ask for nothing
 * but the registered identity, and every part of it is checked (csr's complete view):
 * request attributes only challengePassword, extensionRequest, unstructuredName/Address,
 * friendlyName and the informational ones of Windows, each once with one value;
 * requested extensions only subjectAltName, keyUsage without keyCertSign/cRLSign,
 * extendedKeyUsage for TLS, IPsec or e-mail, basicConstraints with cA FALSE and
 * subjectKeyIdentifier, each once and decoding.  The names: with a template of rules
 * (`t`, scep_template.h), what it would certify and nothing that it would drop, checked
 * as scep_template_apply does (SCEP_POLICY_FWD_TEMPLATE; a device or user identity
 * without one: scep_template_identity_only); else, for hosts, subject attributes only
 * CN and unstructuredName (the FQDN or its first label), unstructuredAddress (one of the
 * addresses) and serialNumber (the registered one), subjectAltNames only dNSNames equal
 * to the FQDN and iPAddresses among the addresses, in one SAN extension.
 * SCEP_POLICY_FWD_OK, or the kind of refusal with *what naming the first thing refused
 * (values escaped for logs). */
scep_policy_fwd_e scep_policy_forward_check(apr_pool_t *p, const scep_template_t *t,
                                            const scep_identity_t *identity,
                                            const scep_csr_t *csr, const char **what);

/* Results of scep_policy_authorize and scep_policy_record beyond APR_SUCCESS. */
#define SCEP_POLICY_DENIED  (APR_OS_START_USERERR + 150) /* *why says why (no secrets) */
#define SCEP_POLICY_REPLAY  (APR_OS_START_USERERR + 151) /* answered from the record */
#define SCEP_POLICY_UNKNOWN (APR_OS_START_USERERR + 152) /* renewal: no such certificate */
#define SCEP_POLICY_EXPIRED (APR_OS_START_USERERR + 153) /* renewal: expired beyond grace */
#define SCEP_POLICY_HELD    (APR_OS_START_USERERR + 154) /* held for approval: poll it */
#define SCEP_POLICY_PENDING (APR_OS_START_USERERR + 155) /* still waiting for an operator */
#define SCEP_POLICY_APPROVED (APR_OS_START_USERERR + 156) /* approved: issue it now */
#define SCEP_POLICY_UPSTREAM (APR_OS_START_USERERR + 157) /* ask the upstream CA again */

/* An endpoint without a device database: the request must carry the profile's static
 * challenge (ScepChallenge), compared as SHA-256 digests in constant time, unless the
 * profile has none and allows that (ScepAllowNoChallenge).  APR_SUCCESS, or
 * SCEP_POLICY_DENIED with *why. */
apr_status_t scep_policy_authorize_static(const scep_profile_t *profile, const scep_csr_t *csr,
                                          const char **why);

/* Decides whether `csr` from `client_ip` may be certified.  SCEP_POLICY_DENIED with *why
 * and *fqdn (the name asked for, may be NULL) for a device mistake; a failed challenge,
 * address or serial counts towards the lockout of that name.  Other statuses are
 * database errors (SCEP_DB_FULL, …). */
apr_status_t scep_policy_authorize(apr_pool_t *p, scep_db_t *db, const scep_policy_conf_t *conf,
                                   const scep_csr_t *csr, const char *client_ip,
                                   apr_int64_t now, scep_grant_t **grant, const char **fqdn,
                                   const char **why);

/* Decides whether a request signed with the certificate `signer_serial` (issued by this
 * CA) renews it: the certificate must be recorded (else SCEP_POLICY_UNKNOWN), unexpired
 * or within conf->renewal_grace (else SCEP_POLICY_EXPIRED), unrevoked, and issued to the
 * name the request asks for, whose registration must still allow enrollment (else
 * SCEP_POLICY_DENIED).  With conf->renewal_challenge the registration's challenge is
 * checked as for a first enrollment.  *why says why for every refusal. */
apr_status_t scep_policy_authorize_renewal(apr_pool_t *p, scep_db_t *db,
                                           const scep_policy_conf_t *conf,
                                           const scep_csr_t *csr, const char *signer_serial,
                                           apr_int64_t now, scep_grant_t **grant,
                                           const char **fqdn, const char **why);

/* Transactions belong to their requester: `requester` is the SHA-256 of the DER
 * SubjectPublicKeyInfo of the key that signed the pkiMessage, so that another device using
 * the same transactionID (clients derive it from their public key, which anyone can read
 * in the certificate) neither finds, blocks nor learns about it.  NULL, in the tests and
 * for the operator, looks a transaction up by its ID alone.
 *
 * A transaction seen within conf->transaction_window: SCEP_POLICY_REPLAY with the
 * certificate's DER when the same transactionID came with the same request (or
 * SCEP_POLICY_HELD when that request was held for approval: see scep_policy_poll),
 * SCEP_POLICY_DENIED when it came with a different one, SCEP_DB_NOTFOUND when it is new
 * (or older than the window).  `renews`, for a request signed with a certificate of
 * ours, is its serial: renewing the certificate a transaction issued starts a new
 * transaction, since clients that derive the transactionID from a reused key send the
 * same one again. */
apr_status_t scep_policy_replay(apr_pool_t *p, scep_db_t *db, const scep_policy_conf_t *conf,
                                const char *transaction_id, const unsigned char *requester,
                                const char *renews, apr_int64_t now,
                                const unsigned char *request_digest,
                                const unsigned char **der, apr_size_t *der_len,
                                const char **why);

/* Records an issued certificate in one write transaction: consumes the one-time or minted
 * challenge (SCEP_POLICY_DENIED if another request consumed it first), stores the
 * transaction and the certificate, updates the registration's enrollment state and
 * clears the name's failure counter.  SCEP_POLICY_REPLAY (with *der) if the same
 * transaction was recorded meanwhile.  Nothing is written unless APR_SUCCESS. */
apr_status_t scep_policy_record(apr_pool_t *p, scep_db_t *db, const scep_policy_conf_t *conf,
                                const scep_grant_t *grant,
                                const char *transaction_id,
                                const unsigned char *requester,
                                const unsigned char *request_digest,
                                const scep_cert_rec_t *cert, apr_int64_t now,
                                const unsigned char **der, apr_size_t *der_len,
                                const char **why);

/* Holds an authorized request instead of issuing: for an operator's decision (`state`
 * SCEP_TXN_PENDING) or for an upstream CA that did not issue yet (SCEP_TXN_UPSTREAM).  In
 * one write transaction its challenge is used up (a one-time or minted one) and the
 * transaction is stored with what issuing it later needs.  `signer_key` is the requester
 * (see scep_policy_replay), which polls must be signed with; `endpoint` names the endpoint
 * (scep_policy_endpoint) that alone may complete it.  Results as for scep_policy_record. */
apr_status_t scep_policy_hold(apr_pool_t *p, scep_db_t *db, const scep_policy_conf_t *conf,
                              const scep_grant_t *grant, const char *transaction_id,
                              const unsigned char *request_digest,
                              const unsigned char *request, apr_size_t request_len,
                              const unsigned char *signer_key, const char *endpoint,
                              const char *client_ip, const char *subject, const char *state,
                              apr_int64_t now, const unsigned char **der,
                              apr_size_t *der_len, const char **why);

/* What binds a held request to the endpoint that held it: the profile name, the
 * issuer, a local CA or an upstream CA, by the SHA-256 of its certificate, and, for
 * other kinds than hosts, the identity kind and its place (a host endpoint's string is
 * the one written before the kinds existed). */
const char *scep_policy_endpoint(apr_pool_t *p, const scep_policy_conf_t *conf, int forwards,
                                 const unsigned char *ca_sha256);

/* Where a held transaction stands (a CertPoll, or the request sent again):
 * SCEP_POLICY_REPLAY with the DER once issued, SCEP_POLICY_PENDING while it waits,
 * SCEP_POLICY_APPROVED with *held and *grant to issue it now (then record it with
 * scep_policy_record_approved), SCEP_POLICY_UPSTREAM with the same to ask the upstream
 * CA again, SCEP_POLICY_DENIED with *why when it was rejected, has expired
 * (conf->pending_timeout, marked so here), was held at another endpoint than `endpoint`
 * (or waits for an upstream CA and this endpoint does not `forward`), is of another
 * identity kind or place than conf's (records without an endpoint too), SCEP_DB_NOTFOUND
 * when the requester `signer_key` has no transaction of this ID.  `signer_key` may be
 * NULL (the ID alone). */
apr_status_t scep_policy_poll(apr_pool_t *p, scep_db_t *db, const scep_policy_conf_t *conf,
                              const char *transaction_id, const unsigned char *signer_key,
                              const char *endpoint, int forwards, apr_int64_t now,
                              scep_transaction_t **held, scep_grant_t **grant,
                              const unsigned char **der, apr_size_t *der_len,
                              const char **why);

/* Notes that the upstream CA now has a held request and answered PENDING, so that later
 * polls ask it with CertPoll. */
apr_status_t scep_policy_note_upstream_pending(apr_pool_t *p, scep_db_t *db,
                                               const char *transaction_id,
                                               const unsigned char *requester);

/* Ends a held transaction without a certificate: SCEP_TXN_REJECTED (by `by`, with
 * `reason`) or SCEP_TXN_EXPIRED. */
apr_status_t scep_policy_close_held(apr_pool_t *p, scep_db_t *db, const char *transaction_id,
                                    const unsigned char *requester, const char *state,
                                    const char *by, const char *reason, apr_int64_t now);

/* An operator's decision on requests held for approval, inside the caller's write
 * transaction `txn` (the caller commits, so that a tool can still give up): the request
 * `transaction_id`, or when no request has that ID (or several requesters used it) every
 * pending request of `fqdn` (may be NULL).  Approved or rejected (with `reason`, NULL or
 * empty for none) by `by` at `now`; the module issues an approved one on the device's
 * next poll.  APR_SUCCESS with *decided (scep_transaction_t *, at least one);
 * SCEP_POLICY_DENIED with *state when the request named by its ID is no longer pending;
 * SCEP_DB_EXISTS when several requesters used the ID and no `fqdn` says which;
 * SCEP_DB_NOTFOUND when nothing pending matches; other statuses are database errors. */
apr_status_t scep_policy_decide(scep_txn_t *txn, apr_pool_t *p, const char *transaction_id,
                                const char *fqdn, int approve, const char *by,
                                const char *reason, apr_int64_t now,
                                apr_array_header_t **decided, const char **state);

/* Mints a one-time challenge inside the caller's write transaction `txn`: expired minted
 * challenges are purged first, then one is created for `fqdn` (NULL: any name) and
 * `profile` (NULL: any), valid `ttl` seconds from `now`.  The caller commits. */
apr_status_t scep_policy_mint(scep_txn_t *txn, apr_pool_t *p, apr_int64_t now,
                              apr_int64_t ttl, const char *fqdn, const char *profile,
                              const char **challenge, scep_minted_t **rec);

/* scep_policy_mint in a write transaction of its own, committed when it succeeds (for the
 * challenge handler).  Nothing is written unless APR_SUCCESS; SCEP_DB_FULL, SCEP_DB_BUSY
 * and the other database statuses pass through. */
apr_status_t scep_policy_mint_commit(apr_pool_t *p, scep_db_t *db, apr_int64_t now,
                                     apr_int64_t ttl, const char *fqdn, const char *profile,
                                     const char **challenge, scep_minted_t **rec);

/* Records the certificate of an approved (or upstream-issued) transaction, as
 * scep_policy_record does for a new one, without using up a challenge again.
 * SCEP_POLICY_REPLAY when a concurrent poll recorded it first. */
apr_status_t scep_policy_record_approved(apr_pool_t *p, scep_db_t *db,
                                         const scep_policy_conf_t *conf,
                                         const scep_grant_t *grant,
                                         const char *transaction_id,
                                         const unsigned char *requester,
                                         const scep_cert_rec_t *cert, apr_int64_t now,
                                         const unsigned char **der, apr_size_t *der_len,
                                         const char **why);

#endif

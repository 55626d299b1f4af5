/* SPDX-License-Identifier: Apache-2.0 */
/* One PKIOperation from bytes to CertRep: read the pkiMessage, authorize the PKCS#10,
 * issue with the local CA and answer.
 *
 * Log lines: device mistakes are WARNING (authentication) or INFO (malformed input),
 * server failures ERR; every line names the transaction and never a secret. */
#include <limits.h>
#include <string.h>
#include <time.h>

#include <apr_strings.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "scep_ca.h"
#include "scep_crl.h"
#include "scep_csr.h"
#include "scep_forward.h"
#include "scep_issue.h"
#include "scep_keyless.h"
#include "scep_msg.h"
#include "scep_server.h"
#include "scep_store.h"
#include "scep_webhook.h"

/* ---- PKIOperation ----------------------------------------------------------------- */

typedef struct op_ctx_t {
    apr_pool_t *p;
    const scep_ca_t *ca;
    const scep_profile_t *profile;
    scep_db_t *db;
    const scep_peer_t *peer;
    const scep_log_t *log;
    apr_int64_t now;                    /* the request's time, read once by the host */
    scep_reply_t *reply;
    scep_pkimsg_t *msg;
    /* SHA-256 of the signer's SubjectPublicKeyInfo: whose transaction this is */
    unsigned char requester[SCEP_REQUEST_DIGEST_LEN];
} op_ctx_t;

static const char *message_type_name(int type)
{
    switch (type) {
    case SCEP_MSG_PKCSREQ: return "PKCSReq";
    case SCEP_MSG_RENEWALREQ: return "RenewalReq";
    case SCEP_MSG_CERTPOLL: return "CertPoll";
    case SCEP_MSG_GETCERT: return "GetCert";
    case SCEP_MSG_GETCRL: return "GetCRL";
    default: return "?";
    }
}

static const char *const outcome_names[SCEP_OUTCOME_COUNT] = {
    [SCEP_OUTCOME_NONE] = NULL,
    [SCEP_OUTCOME_ISSUED] = "issued",
    [SCEP_OUTCOME_RENEWED] = "renewed",
    [SCEP_OUTCOME_REPLAYED] = "replayed",
    [SCEP_OUTCOME_PENDING] = "pending",
    [SCEP_OUTCOME_CERTIFICATE] = "certificate",
    [SCEP_OUTCOME_CRL] = "crl",
    [SCEP_OUTCOME_FAILURE_BAD_ALG] = "failure:badAlg",
    [SCEP_OUTCOME_FAILURE_BAD_MESSAGE_CHECK] = "failure:badMessageCheck",
    [SCEP_OUTCOME_FAILURE_BAD_REQUEST] = "failure:badRequest",
    [SCEP_OUTCOME_FAILURE_BAD_TIME] = "failure:badTime",
    [SCEP_OUTCOME_FAILURE_BAD_CERT_ID] = "failure:badCertId",
    [SCEP_OUTCOME_MALFORMED] = "malformed",
    [SCEP_OUTCOME_TOO_LARGE] = "too-large",
    [SCEP_OUTCOME_STORE_FULL] = "store-full",
    [SCEP_OUTCOME_UPSTREAM_DOWN] = "upstream-down",
    [SCEP_OUTCOME_ERROR] = "error",
    [SCEP_OUTCOME_FAILURE_NONE] = "failure:none",
};

const char *scep_server_outcome_name(scep_outcome_e outcome)
{
    return (unsigned)outcome < SCEP_OUTCOME_COUNT ? outcome_names[outcome] : NULL;
}

int scep_server_outcome_is_failure(scep_outcome_e outcome)
{
    /* the failInfos are in one run of the enum (scep_server.h), and failure:none */
    return (outcome >= SCEP_OUTCOME_FAILURE_BAD_ALG
            && outcome <= SCEP_OUTCOME_FAILURE_BAD_CERT_ID)
           || outcome == SCEP_OUTCOME_FAILURE_NONE;
}

/* A FAILURE's outcome; a failInfo we do not know (an upstream's) is "failure:none", as
 * scep_msg_fail_info_name calls it. */
static scep_outcome_e failure_outcome(int fail_info)
{
    switch (fail_info) {
    case SCEP_FAIL_BAD_ALG: return SCEP_OUTCOME_FAILURE_BAD_ALG;
    case SCEP_FAIL_BAD_MESSAGE_CHECK: return SCEP_OUTCOME_FAILURE_BAD_MESSAGE_CHECK;
    case SCEP_FAIL_BAD_REQUEST: return SCEP_OUTCOME_FAILURE_BAD_REQUEST;
    case SCEP_FAIL_BAD_TIME: return SCEP_OUTCOME_FAILURE_BAD_TIME;
    case SCEP_FAIL_BAD_CERT_ID: return SCEP_OUTCOME_FAILURE_BAD_CERT_ID;
    default: return SCEP_OUTCOME_FAILURE_NONE;
    }
}

static apr_status_t answer(op_ctx_t *c, int status, int fail_info, const char *fail_text,
                           const unsigned char *payload, apr_size_t payload_len)
{
    unsigned char *der;
    apr_size_t len;
    apr_status_t rv = scep_msg_certrep(c->p, scep_ca_msg_keys(c->ca), c->msg, status,
                                       fail_info, fail_text, payload, payload_len, &der,
                                       &len);

    if (rv != APR_SUCCESS) {
        scep_log(c->log, SCEP_LOG_ERR,
                 "SCEP00201: scep(%s,PKIOperation): cannot build the CertRep: %s",
                 c->msg->transaction_id, scep_util_openssl_errors(c->p));
        c->reply->http_status = 500;
        c->reply->outcome = SCEP_OUTCOME_ERROR;
        return rv;
    }
    c->reply->http_status = 200;
    c->reply->body = der;
    c->reply->body_len = len;
    if (status == SCEP_STATUS_FAILURE) {
        c->reply->outcome = failure_outcome(fail_info);
    }
    return APR_SUCCESS;
}

/* What an unauthenticated client is told of a refusal by policy (WARNING): whether a
 * name is registered, disabled, locked, bound to an address or a profile, or used by
 * another device is the operator's to read in the log, not the client's.  A refusal of
 * the message itself (INFO: malformed, a key too small) keeps its reason, which speaks of
 * nothing but what the client sent. */
#define SCEP_POLICY_REFUSAL_TEXT "refused by the server's policy; the server's log " \
                                 "has the reason"

/* A FAILURE for a device mistake; authentication failures log at WARNING.  `detail`:
 * the client may read `why` (else the generic text). */
static apr_status_t fail_as(op_ctx_t *c, int level, int fail_info, const char *tag,
                            const char *why, int detail)
{
    scep_log(c->log, level, "%s: scep(%s,PKIOperation): %s from %s%s%s refused (%s): %s",
             tag, c->msg->transaction_id, message_type_name(c->msg->message_type),
             c->peer && c->peer->client_ip ? c->peer->client_ip : "?",
             c->reply->fqdn ? " for " : "", c->reply->fqdn ? c->reply->fqdn : "",
             scep_msg_fail_info_name(fail_info), why);
    c->reply->reason = why;
    return answer(c, SCEP_STATUS_FAILURE, fail_info,
                  detail ? why : SCEP_POLICY_REFUSAL_TEXT, NULL, 0);
}

static apr_status_t fail(op_ctx_t *c, int level, int fail_info, const char *tag,
                         const char *why)
{
    return fail_as(c, level, fail_info, tag, why,
                   c->profile->failure_detail || level > SCEP_LOG_WARNING);
}

static const char *csr_identity(apr_pool_t *p, const scep_csr_t *csr)
{
    return csr->subject && *csr->subject ? csr->subject
           : csr->unstructured_name ? scep_csr_shown(p, csr->unstructured_name)
           : "(empty subject)";
}

/* The type of the public key's algorithm parameters; OpenSSL's key decoders ignore what
 * they do not need, so a CSR whose RSA key carries, say, a BOOLEAN parses and verifies. */
static int key_parameter_type(const scep_csr_t *csr)
{
    X509_ALGOR *alg = NULL;
    int type = V_ASN1_UNDEF;

    if (X509_PUBKEY_get0_param(NULL, NULL, NULL, &alg, X509_REQ_get_X509_PUBKEY(csr->req))
        && alg) {
        X509_ALGOR_get0(NULL, &type, NULL, alg);
    }
    return type;
}

/* The key's bits go into the certificate as the device sent them (scep_issue_certificate),
 * so an RSAPublicKey that OpenSSL's decoder accepted in a BER form must not pass: a
 * certificate is DER.  Decoding and encoding it again as a plain ASN.1 sequence tells,
 * without the cost of OpenSSL 3's key encoders. */
static int rsa_key_is_der(const scep_csr_t *csr)
{
    const unsigned char *bits = NULL, *in;
    unsigned char *again = NULL;
    ASN1_SEQUENCE_ANY *seq;
    int len = 0, ok;

    if (!X509_PUBKEY_get0_param(NULL, &bits, &len, NULL, X509_REQ_get_X509_PUBKEY(csr->req))
        || len <= 0) {
        return 0;
    }
    in = bits;
    seq = d2i_ASN1_SEQUENCE_ANY(NULL, &in, len);
    ok = seq && in == bits + len && i2d_ASN1_SEQUENCE_ANY(seq, &again) == len
         && memcmp(again, bits, (size_t)len) == 0;
    OPENSSL_free(again);
    sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
    return ok;
}

static apr_status_t check_key(op_ctx_t *c, const scep_csr_t *csr, const char **why)
{
    int parameters = key_parameter_type(csr);

    if (csr->key_is_rsa) {
        if (parameters != V_ASN1_NULL && parameters != V_ASN1_UNDEF) {
            *why = "the RSA key's algorithm parameters are not NULL (RFC 3279)";
            return APR_EINVAL;
        }
        if (!rsa_key_is_der(csr)) {
            *why = "the RSA public key is not DER-encoded";
            return APR_EINVAL;
        }
        if (csr->key_bits < c->profile->min_key_bits) {
            *why = apr_psprintf(c->p, "the RSA key has %d bits; ScepMinKeySize is %d",
                                csr->key_bits, c->profile->min_key_bits);
            return APR_EINVAL;
        }
        if (csr->key_bits > SCEP_CSR_RSA_MAX_BITS) {
            *why = apr_psprintf(c->p, "the RSA key has %d bits, more than %d",
                                csr->key_bits, SCEP_CSR_RSA_MAX_BITS);
            return APR_EINVAL;
        }
        /* e = 1 makes a self-signature anyone can write, and a huge e an expensive one
         * to check (issue 15, points 10 and 12) */
        if ((*why = scep_keyless_rsa_exponent_problem(
                 X509_REQ_get_X509_PUBKEY(csr->req))) != NULL) {
            return APR_EINVAL;
        }
        return APR_SUCCESS;
    }
    if (EVP_PKEY_get_base_id(csr->public_key) == EVP_PKEY_EC && csr->key_bits >= 256) {
        if (parameters != V_ASN1_OBJECT) {
            *why = "the EC key does not name its curve (RFC 5480 allows named curves only)";
            return APR_EINVAL;
        }
        return APR_SUCCESS;
    }
    *why = apr_psprintf(c->p, "the key type %s (%d bits) is not accepted",
                        OBJ_nid2sn(EVP_PKEY_get_base_id(csr->public_key)), csr->key_bits);
    return APR_EINVAL;
}

/* A database failure is the server's problem, not the device's: no CertRep, and 503 for
 * the conditions that go away (a full map once the operator grows it, a full reader
 * table) so that the device retries later. */
static apr_status_t db_failure(op_ctx_t *c, apr_status_t rv, const char *doing)
{
    int transient = rv == SCEP_DB_FULL || rv == SCEP_DB_BUSY;

    /* A shared database that is down, failing over, past its timeout or without its
     * schema comes back while httpd runs.  The engine logged its own words (SCEP00340,
     * SCEP00341); this says which step of the request met it and that nothing left:
     * whatever the step, no CertRep is sent, so no certificate leaves without its
     * record. */
    if (c->db && scep_db_engine(c->db)
        && (rv == SCEP_DB_UNAVAILABLE || rv == SCEP_DB_VERSION)) {
        scep_log(c->log, SCEP_LOG_ERR, "SCEP00704: scep(%s,PKIOperation): %s failed: %s "
                 "is unavailable; the request is refused with HTTP 503 and nothing is "
                 "sent to the device, which may retry", c->msg->transaction_id, doing,
                 scep_db_path(c->db));
        c->reply->http_status = 503;
        c->reply->outcome = SCEP_OUTCOME_ERROR;
        return rv;
    }
    scep_log(c->log, SCEP_LOG_ERR, "SCEP00230: scep(%s,PKIOperation): %s failed: %s%s",
             c->msg->transaction_id, doing, scep_db_strerror(c->p, rv),
             rv == SCEP_DB_FULL ? " (the device database is full: raise "
                                  "ScepDeviceDBMapSize)"
             /* slots of dead processes were cleared already: a live process holds them */
             : rv == SCEP_DB_BUSY ? apr_psprintf(c->p, " (no reader slot is free and none "
                                                 "belongs to a dead process: 'mdb_stat -r "
                                                 "%s' lists the processes holding them; end "
                                                 "the one that keeps them)",
                                                 c->db ? scep_db_path(c->db) : "?")
             : "");
    c->reply->http_status = transient ? 503 : 500;
    c->reply->outcome = rv == SCEP_DB_FULL ? SCEP_OUTCOME_STORE_FULL : SCEP_OUTCOME_ERROR;
    return rv;
}

static const char *serial_hex(apr_pool_t *p, X509 *x)
{
    const char *hex = scep_store_serial_hex(p, X509_get0_serialNumber(x));

    return hex ? hex : "?";
}

static apr_int64_t asn1_time_seconds(const ASN1_TIME *t)
{
    struct tm tm;

    if (!ASN1_TIME_to_tm(t, &tm)) {
        return 0;
    }
    return (apr_int64_t)timegm(&tm);
}

/* Sends a certificate as encoded: by the CA just now, or in the database's record (a
 * retried transaction, GetCert); it is not parsed again. */
static apr_status_t send_certificate(op_ctx_t *c, const unsigned char *der, apr_size_t len,
                                     const char *serial, scep_outcome_e how)
{
    unsigned char *payload;
    apr_size_t payload_len;
    apr_status_t rv = scep_msg_degenerate(c->p, &der, &len, 1, NULL, 0, &payload,
                                          &payload_len);

    if (rv == APR_SUCCESS) {
        rv = answer(c, SCEP_STATUS_SUCCESS, SCEP_FAIL_NONE, NULL, payload, payload_len);
    }
    else {
        c->reply->http_status = 500;
        c->reply->outcome = SCEP_OUTCOME_ERROR;
    }

    if (rv == APR_SUCCESS) {
        c->reply->outcome = how;
        c->reply->serial = serial;
    }
    return rv;
}

/* A recorded certificate is sent as it is, so it must be one certificate and nothing
 * more; its serial is read without OpenSSL's key decoders.  NULL if the record is not. */
static const char *recorded_serial(op_ctx_t *c, const unsigned char *der, apr_size_t len)
{
    const unsigned char *in = der;
    X509 *cert = der && len <= LONG_MAX
                 ? scep_keyless_d2i(ASN1_ITEM_rptr(X509), &in, (long)len) : NULL;
    const char *serial = cert && in == der + len ? serial_hex(c->p, cert) : NULL;

    X509_free(cert);
    ERR_clear_error();
    return serial;
}

/* Before a recorded certificate is sent again: it must be one certificate (its serial in
 * *serial), and on disk.  The record may come from a concurrent request whose commit is
 * not synced yet: a device must not hold a certificate a power cut could take off the
 * record.  The failure is answered here. */
static apr_status_t resendable(op_ctx_t *c, const unsigned char *der, apr_size_t len,
                               const char **serial)
{
    apr_status_t rv;

    if (!(*serial = recorded_serial(c, der, len))) {
        return db_failure(c, SCEP_DB_CORRUPT, "reading the recorded certificate");
    }
    if ((rv = scep_db_sync(c->db)) != APR_SUCCESS) {
        return db_failure(c, rv, "syncing the recorded certificate");
    }
    return APR_SUCCESS;
}

/* The recorded certificate of a retried transaction. */
static apr_status_t send_recorded(op_ctx_t *c, const unsigned char *der, apr_size_t len)
{
    const char *serial;
    apr_status_t rv;

    if ((rv = resendable(c, der, len, &serial)) != APR_SUCCESS) {
        return rv;
    }
    scep_log(c->log, SCEP_LOG_NOTICE, "SCEP00221: scep(%s,PKIOperation): retried transaction "
             "from %s: the recorded certificate is sent again",
             c->msg->transaction_id, c->peer && c->peer->client_ip ? c->peer->client_ip : "?");
    return send_certificate(c, der, len, serial, SCEP_OUTCOME_REPLAYED);
}

/* Records the certificate (`issued`, encoded as `der`) before it is sent: without the
 * record there is no answer.  SCEP_POLICY_REPLAY when a concurrent retry of the
 * transaction was recorded first, with that certificate in *prior. */
static apr_status_t record(op_ctx_t *c, const scep_grant_t *grant,
                           const unsigned char *digest, X509 *issued,
                           const unsigned char *der, apr_size_t der_len, const char *serial,
                           const unsigned char **prior, apr_size_t *prior_len,
                           const char **why)
{
    scep_cert_rec_t rec;
    AUTHORITY_KEYID *aki;

    memset(&rec, 0, sizeof(rec));
    rec.serial = serial;
    rec.der = der;
    rec.der_len = der_len;
    rec.fqdn = grant->identity.fqdn;
    rec.subject = scep_csr_name_text(c->p, X509_get_subject_name(issued));
    rec.transaction_id = c->msg->transaction_id;
    rec.not_before = asn1_time_seconds(X509_get0_notBefore(issued));
    rec.not_after = asn1_time_seconds(X509_get0_notAfter(issued));
    rec.issued_at = c->now;
    /* Only this extension: X509_get0_authority_key_id would decode them all and hash
     * the whole certificate first. */
    if ((aki = X509_get_ext_d2i(issued, NID_authority_key_identifier, NULL, NULL)) != NULL) {
        if (aki->keyid) {
            rec.issuer_key_id = apr_pmemdup(c->p, ASN1_STRING_get0_data(aki->keyid),
                                            (apr_size_t)ASN1_STRING_length(aki->keyid));
            rec.issuer_key_id_len = (apr_size_t)ASN1_STRING_length(aki->keyid);
        }
        AUTHORITY_KEYID_free(aki);
    }
    return grant->held
           ? scep_policy_record_approved(c->p, c->db, &c->profile->registrations, grant,
                                         c->msg->transaction_id, c->requester, &rec,
                                         rec.issued_at, prior, prior_len, why)
           : scep_policy_record(c->p, c->db, &c->profile->registrations, grant,
                                c->msg->transaction_id, c->requester, digest, &rec,
                                rec.issued_at, prior, prior_len, why);
}
/* A request signed with a certificate this CA issued: a RenewalReq, or the PKCSReq that
 * Cisco IOS, macOS and sscep send instead.  APR_SUCCESS with *grant to issue; a made
 * reply with *grant NULL; or APR_ENOENT when a PKCSReq should be treated as a first
 * enrollment (its certificate is not on record, or expired beyond the grace). */
static apr_status_t admit_renewal(op_ctx_t *c, const scep_csr_t *csr, scep_grant_t **grant)
{
    const char *why = NULL, *fqdn = NULL;
    const char *serial = serial_hex(c->p, c->msg->signer);
    int renewal_req = c->msg->message_type == SCEP_MSG_RENEWALREQ;
    apr_status_t rv;

    rv = scep_policy_authorize_renewal(c->p, c->db, &c->profile->registrations, csr, serial,
                                       c->now, grant, &fqdn, &why);
    c->reply->fqdn = fqdn;
    if (rv == APR_SUCCESS) {
        return APR_SUCCESS;
    }
    if ((rv == SCEP_POLICY_UNKNOWN || rv == SCEP_POLICY_EXPIRED) && !renewal_req) {
        scep_log(c->log, SCEP_LOG_INFO, "SCEP00218: scep(%s,PKIOperation): PKCSReq signed "
                 "with certificate %s is treated as a first enrollment: %s",
                 c->msg->transaction_id, serial, why);
        return APR_ENOENT;
    }
    if (rv == SCEP_POLICY_UNKNOWN) {
        return fail(c, SCEP_LOG_WARNING, SCEP_FAIL_BAD_CERT_ID, "SCEP00216", why);
    }
    if (rv == SCEP_POLICY_DENIED || rv == SCEP_POLICY_EXPIRED) {
        return fail(c, SCEP_LOG_WARNING, SCEP_FAIL_BAD_REQUEST, "SCEP00217", why);
    }
    return db_failure(c, rv, "checking the renewal");
}

static apr_status_t continue_held(op_ctx_t *c, const scep_csr_t *csr);

/* A transaction seen before is answered from its record: 1 with the reply made (*rv),
 * 0 for a new one. */
static int answered_from_record(op_ctx_t *c, const scep_csr_t *csr,
                                const unsigned char *digest, int renewing, apr_status_t *rv)
{
    const unsigned char *der;
    apr_size_t der_len;
    const char *why = NULL;

    *rv = scep_policy_replay(c->p, c->db, &c->profile->registrations, c->msg->transaction_id,
                             c->requester, renewing ? serial_hex(c->p, c->msg->signer) : NULL,
                             c->now, digest, &der, &der_len, &why);
    if (*rv == SCEP_POLICY_REPLAY) {
        *rv = send_recorded(c, der, der_len);
    }
    else if (*rv == SCEP_POLICY_HELD) {
        *rv = continue_held(c, csr);
    }
    else if (*rv == SCEP_POLICY_DENIED) {
        *rv = fail(c, SCEP_LOG_WARNING, SCEP_FAIL_BAD_REQUEST, "SCEP00214", why);
    }
    else if (*rv != SCEP_DB_NOTFOUND) {
        *rv = db_failure(c, *rv, "looking up the transaction");
    }
    else {
        return 0;
    }
    return 1;
}

/* Authorizes against the registrations; a retried transaction is answered from its
 * record.  Returns APR_SUCCESS with *grant to go on and issue, or the answer's status
 * with the reply already made (*grant NULL). */
static apr_status_t admit(op_ctx_t *c, const scep_csr_t *csr, const unsigned char *digest,
                          int renewing, scep_grant_t **grant)
{
    const char *why = NULL, *fqdn = NULL;
    apr_status_t rv;

    *grant = NULL;
    if (answered_from_record(c, csr, digest, renewing, &rv)) {
        return rv;
    }
    if (renewing) {
        rv = admit_renewal(c, csr, grant);
        if (rv != APR_ENOENT) {
            return rv;
        }
    }
    rv = scep_policy_authorize(c->p, c->db, &c->profile->registrations, csr,
                               c->peer ? c->peer->client_ip : NULL, c->now,
                               grant, &fqdn, &why);
    c->reply->fqdn = fqdn;
    if (rv == SCEP_POLICY_DENIED) {
        return fail(c, SCEP_LOG_WARNING, SCEP_FAIL_BAD_REQUEST, "SCEP00212", why);
    }
    if (rv != APR_SUCCESS) {
        return db_failure(c, rv, "checking the registration");
    }
    return APR_SUCCESS;
}

static apr_status_t hold(op_ctx_t *c, const scep_csr_t *csr, const scep_grant_t *grant,
                         const unsigned char *digest, const char *state, const char *why);
static apr_status_t send_pending(op_ctx_t *c);

/* Whether the upstream may see this request: it issues what the request asks for, so the
 * request may ask for the registered device only.  Else the FAILURE is made (*rv). */
static int forwardable(op_ctx_t *c, const scep_csr_t *csr, const scep_grant_t *grant,
                       apr_status_t *rv)
{
    const char *refused = NULL;

    switch (scep_policy_forward_check(c->p, c->profile->template_, &grant->identity, csr,
                                      &refused)) {
    case SCEP_POLICY_FWD_OK:
        return 1;
    case SCEP_POLICY_FWD_NAME:
        *rv = fail(c, SCEP_LOG_WARNING, SCEP_FAIL_BAD_REQUEST, "SCEP00405",
                   apr_psprintf(c->p, "the request also asks for %s, which the "
                                "registration %s does not hold, and the upstream CA would "
                                "certify it", refused, grant->registration
                                ? grant->registration : grant->identity.fqdn));
        return 0;
    case SCEP_POLICY_FWD_TEMPLATE:
        *rv = fail(c, SCEP_LOG_WARNING, SCEP_FAIL_BAD_REQUEST, "SCEP00632",
                   apr_psprintf(c->p, "not forwarded to the upstream CA, which certifies "
                                "the request as it is: %s (registration %s)", refused,
                                grant->registration ? grant->registration
                                                    : grant->identity.fqdn));
        return 0;
    default:
        *rv = fail(c, SCEP_LOG_WARNING, SCEP_FAIL_BAD_REQUEST, "SCEP00420",
                   apr_psprintf(c->p, "the request asks for %s, which a forwarding "
                                "gateway never lets through to the upstream CA "
                                "(registration %s)", refused, grant->registration
                                ? grant->registration : grant->identity.fqdn));
        return 0;
    }
}

/* The transactionID the gateway uses upstream.  There every device behind the gateway is
 * one requester, its RA key, so the device's own ID (derived from a public key anyone can
 * read) would let one device take another's transaction upstream: the ID is derived from
 * the requester and its ID instead.  Requests held before keep the ID the upstream knows. */
static const char *upstream_transaction_id(op_ctx_t *c, const scep_grant_t *grant)
{
    unsigned char md[32];
    unsigned int len = sizeof(md);
    EVP_MD_CTX *ctx;
    char hex[2 * sizeof(md) + 1];
    int ok, i;

    if (grant->held && grant->legacy_upstream_id) {
        return c->msg->transaction_id;
    }
    ctx = EVP_MD_CTX_new();
    ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1
         && EVP_DigestUpdate(ctx, c->requester, sizeof(c->requester)) == 1
         && EVP_DigestUpdate(ctx, c->msg->transaction_id,
                             strlen(c->msg->transaction_id)) == 1
         && EVP_DigestFinal_ex(ctx, md, &len) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        return NULL;
    }
    for (i = 0; i < (int)sizeof(md); i++) {
        apr_snprintf(hex + 2 * i, 3, "%02X", md[i]);
    }
    return apr_pstrdup(c->p, hex);
}

/* The upstream CA's answer for an admitted request: APR_SUCCESS with *issued, or the
 * reply made (PENDING when the upstream has not issued yet or cannot be reached, so that
 * nothing is lost; FAILURE when it refused). */
static apr_status_t forward(op_ctx_t *c, const scep_csr_t *csr, const scep_grant_t *grant,
                            const unsigned char *digest, X509 **issued)
{
    scep_forward_result_t fwd;
    const char *upstream_id;
    apr_status_t rv;

    *issued = NULL;
    if (!grant) {
        /* A request the upstream keeps pending has to be kept here too, in the device
         * database; the glue refuses forwarding endpoints without one (SCEP00114). */
        scep_log(c->log, SCEP_LOG_ERR, "SCEP00407: scep(%s,PKIOperation): forwarding needs "
                 "the registrations of a ScepDeviceDB at this endpoint",
                 c->msg->transaction_id);
        c->reply->http_status = 500;
        c->reply->outcome = SCEP_OUTCOME_ERROR;
        return APR_EGENERAL;
    }
    if (!forwardable(c, csr, grant, &rv)) {
        return rv;
    }
    if (!(upstream_id = upstream_transaction_id(c, grant))) {
        return db_failure(c, APR_EGENERAL, "deriving the upstream transactionID");
    }
    /* Once the upstream has the request and said PENDING, it is asked with CertPoll;
     * before that (it was down), the request itself goes again. */
    rv = grant->held && grant->upstream_pending
         ? scep_forward_poll(c->p, c->profile->upstream, c->now, csr->req, csr->public_key,
                             upstream_id, c->log, &fwd)
         : scep_forward_enroll(c->p, c->profile->upstream, c->now, csr->der, csr->der_len,
                               csr->public_key, upstream_id, c->log, &fwd);
    if (rv != APR_SUCCESS) {
        scep_log(c->log, SCEP_LOG_ERR, "SCEP00402: scep(%s,PKIOperation): %s",
                 c->msg->transaction_id, fwd.why);
        c->reply->http_status = 500;
        c->reply->outcome = SCEP_OUTCOME_ERROR;
        return rv;
    }
    switch (fwd.status) {
    case SCEP_FORWARD_ISSUED:
        *issued = fwd.cert;
        return APR_SUCCESS;
    case SCEP_FORWARD_REJECTED:
        if (grant->held) {
            scep_policy_close_held(c->p, c->db, c->msg->transaction_id, c->requester,
                                   SCEP_TXN_REJECTED, "the upstream CA", fwd.why,
                                   c->now);
        }
        return fail(c, SCEP_LOG_WARNING, fwd.fail_info, "SCEP00401", fwd.why);
    default:
        break;
    }
    if (grant->held) {
        if (fwd.status == SCEP_FORWARD_PENDING && !grant->upstream_pending
            && (rv = scep_policy_note_upstream_pending(c->p, c->db, c->msg->transaction_id,
                                                       c->requester)) != APR_SUCCESS) {
            return db_failure(c, rv, "noting the upstream's PENDING");
        }
        scep_log(c->log, SCEP_LOG_INFO, "SCEP00403: scep(%s,PKIOperation): still waiting for "
                 "the upstream CA: %s", c->msg->transaction_id, fwd.why);
        rv = send_pending(c);
    }
    else {
        scep_grant_t kept = *grant;

        kept.upstream_pending = fwd.status == SCEP_FORWARD_PENDING;
        rv = hold(c, csr, &kept, digest, SCEP_TXN_UPSTREAM, fwd.why);
    }
    if (rv == APR_SUCCESS && fwd.status == SCEP_FORWARD_UNREACHABLE
        && scep_forward_down_answer(c->profile->upstream) == 503) {
        /* kept all the same: the device's retry finds it */
        c->reply->http_status = 503;
        c->reply->outcome = SCEP_OUTCOME_UPSTREAM_DOWN;
    }
    return rv;
}

/* What the issuer forces into the certificate: a registration's identity; for a grant of
 * the validator alone, the values it supplied where a template takes them, else nothing
 * (the request's names under the profile's rules, as with a static challenge). */
static const scep_identity_t *issued_identity(op_ctx_t *c, const scep_grant_t *grant)
{
    if (!grant) {
        return NULL;
    }
    if (grant->kind != SCEP_GRANT_VALIDATOR) {
        return &grant->identity;
    }
    /* only a template of rules reads supplied values: the copying ones would take the
     * validator's grant, which names no host, for a registration's forced names */
    if (!c->profile->template_ || c->profile->template_->copy != SCEP_TEMPLATE_RULES
        || !grant->identity.supplied) {
        return NULL;
    }
    if (grant->identity.kind == SCEP_IDENTITY_HOST && !grant->forced_host) {
        scep_identity_t *nameless = apr_pmemdup(c->p, &grant->identity,
                                                sizeof(grant->identity));

        nameless->fqdn = NULL;
        return nameless;
    }
    return &grant->identity;
}

/* Asks the endpoint's validator about `csr` (with what the registration found, `grant`,
 * or NULL).  ALLOW with the supplied values in *answer; DENY and UNAVAILABLE are logged
 * here, and the caller answers. */
static scep_hook_verdict_e ask_validator(op_ctx_t *c, const scep_csr_t *csr,
                                         const scep_grant_t *grant, scep_hook_answer_t *answer)
{
    const scep_hook_conf_t *validator = c->profile->validator;
    scep_hook_request_t req;

    memset(&req, 0, sizeof(req));
    req.transaction_id = c->msg->transaction_id;
    req.operation = message_type_name(c->msg->message_type);
    req.endpoint = c->peer ? c->peer->location : NULL;
    req.csr = csr;
    /* alone, the identity found where ScepIdentity says (a host only when one is named) */
    req.identity = grant && (grant->kind != SCEP_GRANT_VALIDATOR || grant->forced_host
                             || grant->identity.kind != SCEP_IDENTITY_HOST)
                   ? &grant->identity : NULL;
    req.registration = grant ? grant->registration : NULL;
    req.client_ip = c->peer ? c->peer->client_ip : NULL;
    req.send_challenge = validator->send_challenge;
    scep_webhook_validate(c->p, validator, &req, c->now, answer);
    switch (answer->verdict) {
    case SCEP_HOOK_ALLOW:
        scep_log(c->log, SCEP_LOG_INFO, "SCEP00664: scep(%s,PKIOperation): the validator "
                 "allowed the request from %s (subject %s)%s", c->msg->transaction_id,
                 c->peer && c->peer->client_ip ? c->peer->client_ip : "?",
                 csr_identity(c->p, csr),
                 answer->supplied && answer->supplied->nelts
                 ? apr_psprintf(c->p, " and supplied %d identity value%s",
                                answer->supplied->nelts,
                                answer->supplied->nelts == 1 ? "" : "s") : "");
        break;
    case SCEP_HOOK_UNAVAILABLE:
        scep_log(c->log, SCEP_LOG_WARNING, "SCEP00666: scep(%s,PKIOperation): the validator "
                 "could not decide on the request from %s: %s; ScepValidateUnavailable "
                 "%s", c->msg->transaction_id,
                 c->peer && c->peer->client_ip ? c->peer->client_ip : "?",
                 answer->why,         /* ours: fixed texts, the URL, libcurl's error */
                 validator->unavailable == SCEP_HOOK_DOWN_PENDING && c->db
                 ? "pending: the request waits" : "deny: it is refused");
        break;
    default:
        break;
    }
    return answer->verdict;
}

/* A refusal by the validator: its reason goes to the log only, never to the client. */
static apr_status_t validator_denied(op_ctx_t *c, const scep_hook_answer_t *answer)
{
    return fail_as(c, SCEP_LOG_WARNING, SCEP_FAIL_BAD_REQUEST, "SCEP00665",
                   apr_pstrcat(c->p, "the validator refused it",
                               answer->reason && *answer->reason ? ": " : "",
                               answer->reason && *answer->reason
                               ? scep_csr_shown(c->p, answer->reason) : "", NULL), 0);
}

/* The validator's verdict on a new request, answered here unless it allowed: 1 to go on
 * and issue (the supplied values in grant's identity), 0 with the reply made (*rv). */
static int validated(op_ctx_t *c, const scep_csr_t *csr, scep_grant_t *grant,
                     const unsigned char *digest, apr_status_t *rv)
{
    scep_hook_answer_t answer;

    switch (ask_validator(c, csr, grant, &answer)) {
    case SCEP_HOOK_ALLOW:
        if (grant) {
            grant->identity.supplied = answer.supplied;
        }
        return 1;
    case SCEP_HOOK_DENY:
        *rv = validator_denied(c, &answer);
        return 0;
    default:
        break;
    }
    if (c->profile->validator->unavailable == SCEP_HOOK_DOWN_PENDING && c->db && grant) {
        /* kept as for an upstream CA that cannot be reached: each poll asks again */
        *rv = grant->needs_approval
              ? hold(c, csr, grant, digest, SCEP_TXN_PENDING, NULL)
              : hold(c, csr, grant, digest, SCEP_TXN_UPSTREAM,
                     apr_pstrcat(c->p, "the validator could not decide: ", answer.why,
                                 NULL));
        return 0;
    }
    *rv = fail(c, SCEP_LOG_WARNING, SCEP_FAIL_BAD_REQUEST, "SCEP00666",
               "the validator could not decide on it (ScepValidateUnavailable deny)");
    return 0;
}

static apr_status_t issue_and_send(op_ctx_t *c, const scep_csr_t *csr,
                                   const scep_grant_t *grant, const unsigned char *digest);

/* ScepValidateMode alone: the validator alone decides, no registration or challenge of
 * ours is asked for.  With a ScepDeviceDB the transaction and the certificate are
 * recorded as for any other grant. */
static apr_status_t enroll_validated(op_ctx_t *c, const scep_csr_t *csr, int renewing)
{
    unsigned char digest[SCEP_REQUEST_DIGEST_LEN];
    unsigned int digest_len = sizeof(digest);
    scep_grant_t *grant = apr_pcalloc(c->p, sizeof(*grant));
    const char *name = scep_policy_requested_name(c->p, csr);
    const unsigned char *recorded = NULL;   /* the digest, where a database records it */
    apr_status_t rv;

    if (c->db) {
        if (EVP_Digest(c->msg->content, c->msg->content_len, digest, &digest_len,
                       EVP_sha256(), NULL) != 1) {
            return db_failure(c, APR_EGENERAL, "hashing the request");
        }
        recorded = digest;
        if (answered_from_record(c, csr, recorded, renewing, &rv)) {
            return rv;
        }
    }
    grant->kind = SCEP_GRANT_VALIDATOR;
    grant->identity.kind = c->profile->registrations.identity_kind;
    grant->identity.where = c->profile->registrations.identity_where;
    grant->identity.ips = apr_array_make(c->p, 1, sizeof(const char *));
    if (grant->identity.kind != SCEP_IDENTITY_HOST) {
        /* the validator decides about the identity the endpoint reads, by the same rules
         * as a registration would: one value, where ScepIdentity says, acceptable */
        const char *why = NULL;

        if (scep_policy_requested_identity(c->p, &c->profile->registrations, csr,
                                           &grant->identity.fqdn, &grant->identity.name,
                                           &why) != APR_SUCCESS) {
            return fail(c, SCEP_LOG_WARNING, SCEP_FAIL_BAD_REQUEST, "SCEP00212",
                        apr_pstrcat(c->p, why, " (subject ", csr_identity(c->p, csr), ")",
                                    NULL));
        }
    }
    else {
        /* a host the request names is its identity; without one, the records go by
         * whatever it names, and no host name is forced into the certificate */
        grant->identity.fqdn = name ? name : csr->common_name ? csr->common_name
                               : csr_identity(c->p, csr);
        grant->forced_host = name != NULL;
    }
    c->reply->fqdn = grant->identity.fqdn;
    if (!validated(c, csr, grant, recorded, &rv)) {
        return rv;
    }
    return issue_and_send(c, csr, grant, recorded);
}

/* Issues the certificate for an admitted request (grant NULL at an endpoint without
 * registrations), records it, and answers SUCCESS. */
static apr_status_t issue_and_send(op_ctx_t *c, const scep_csr_t *csr,
                                   const scep_grant_t *grant, const unsigned char *digest)
{
    const char *why = NULL, *serial;
    X509 *issued;
    unsigned char *encoded = NULL, *der;
    int len;
    apr_status_t rv;

    if (c->profile->upstream) {
        if ((rv = forward(c, csr, grant, digest, &issued)) != APR_SUCCESS || !issued) {
            return rv;
        }
    }
    else {
        const scep_identity_t *identity = issued_identity(c, grant);
        const apr_array_header_t *dropped = NULL;
        int i;

        rv = scep_issue_certificate(c->p, c->ca, c->profile, csr, identity, c->now, &issued,
                                    &dropped, &why);
        if (rv == APR_EINVAL
            && scep_issue_template(c->profile, identity)->copy == SCEP_TEMPLATE_RULES) {
            return fail(c, SCEP_LOG_WARNING, SCEP_FAIL_BAD_REQUEST, "SCEP00631", why);
        }
        for (i = 0; rv == APR_SUCCESS && dropped && i < dropped->nelts; i++) {
            scep_log(c->log, SCEP_LOG_INFO, "SCEP00630: scep(%s,PKIOperation): left out of "
                     "the certificate: %s", c->msg->transaction_id,
                     APR_ARRAY_IDX(dropped, i, const char *));
        }
    }
    if (rv == APR_EINVAL) {
        return fail(c, SCEP_LOG_INFO, SCEP_FAIL_BAD_REQUEST, "SCEP00213", why);
    }
    if (rv != APR_SUCCESS) {
        scep_log(c->log, SCEP_LOG_ERR, "SCEP00202: scep(%s,PKIOperation): %s: %s",
                 c->msg->transaction_id, why, scep_util_openssl_errors(c->p));
        c->reply->http_status = 500;
        c->reply->outcome = SCEP_OUTCOME_ERROR;
        return rv;
    }
    /* encoded once, for the record and for the answer */
    if ((len = i2d_X509(issued, &encoded)) <= 0) {
        scep_log(c->log, SCEP_LOG_ERR, "SCEP00202: scep(%s,PKIOperation): cannot encode the "
                 "issued certificate: %s", c->msg->transaction_id,
                 scep_util_openssl_errors(c->p));
        c->reply->http_status = 500;
        c->reply->outcome = SCEP_OUTCOME_ERROR;
        ERR_clear_error();
        return APR_EGENERAL;
    }
    der = apr_pmemdup(c->p, encoded, (apr_size_t)len);
    OPENSSL_free(encoded);
    serial = serial_hex(c->p, issued);
    c->reply->subject = scep_csr_name_text(c->p, X509_get_subject_name(issued));
    if (grant && c->db) {
        const unsigned char *prior = NULL;
        apr_size_t prior_len = 0;

        rv = record(c, grant, digest, issued, der, (apr_size_t)len, serial, &prior,
                    &prior_len, &why);
        if (rv == SCEP_POLICY_DENIED) {
            return fail(c, SCEP_LOG_WARNING, SCEP_FAIL_BAD_REQUEST, "SCEP00215", why);
        }
        if (rv == SCEP_POLICY_REPLAY) {
            return send_recorded(c, prior, prior_len);
        }
        if (rv != APR_SUCCESS) {
            return db_failure(c, rv, "recording the certificate");
        }
    }
    rv = send_certificate(c, der, (apr_size_t)len, serial,
                          grant && grant->renews ? SCEP_OUTCOME_RENEWED : SCEP_OUTCOME_ISSUED);
    if (rv == APR_SUCCESS && grant && grant->kind == SCEP_GRANT_RENEWAL
        && c->profile->registrations.renewal_revokes_old) {
        c->reply->revoked = grant->renews;          /* recorded with the new one */
    }
    if (rv == APR_SUCCESS) {
        if (!c->reply->fqdn) {
            c->reply->fqdn = csr_identity(c->p, csr);
        }
        scep_log(c->log, SCEP_LOG_NOTICE,
                 "SCEP00220: scep(%s,PKIOperation): issued serial %s to %s for %s, %d-bit "
                 "key%s%s%s", c->msg->transaction_id, c->reply->serial,
                 grant ? grant->identity.fqdn : csr_identity(c->p, csr),
                 c->peer && c->peer->client_ip ? c->peer->client_ip : "?", csr->key_bits,
                 grant && grant->renews ? ", renewing " : "",
                 grant && grant->renews ? grant->renews : "",
                 !grant || !grant->held ? ""
                 : c->profile->upstream ? ", after waiting for the upstream CA"
                 : ", approved by an operator");
    }
    ERR_clear_error();
    return rv;
}

/* SHA-256 of the signer's SubjectPublicKeyInfo: the requester a transaction belongs to.
 * The signer is the copy that holds the key made from its bytes (scep_keyless.h), so this
 * is the same DER the key's own encoder gives, and polls of requests held before
 * transactions were keyed by requester still match the signer key they recorded. */
static apr_status_t requester_digest(op_ctx_t *c)
{
    unsigned char *spki = NULL;
    unsigned int len = SCEP_REQUEST_DIGEST_LEN;
    int n = c->msg->signer ? i2d_X509_PUBKEY(X509_get_X509_PUBKEY(c->msg->signer), &spki) : 0;
    int ok = n > 0 && EVP_Digest(spki, (size_t)n, c->requester, &len, EVP_sha256(), NULL) == 1;

    OPENSSL_free(spki);
    return ok ? APR_SUCCESS : APR_EGENERAL;
}

/* The endpoint a held request is bound to: this one's profile and issuer, and its
 * validator: a request held for a validator's allow is never completed by a poll at a
 * sibling endpoint that asks none (or another one). */
static const char *endpoint_binding(op_ctx_t *c)
{
    unsigned char md[32];
    unsigned int len = sizeof(md);
    const char *binding;

    if (X509_digest(scep_ca_cert(c->ca), EVP_sha256(), md, &len) != 1 || len != sizeof(md)) {
        return NULL;
    }
    binding = scep_policy_endpoint(c->p, &c->profile->registrations,
                                   c->profile->upstream != NULL, md);
    if (binding && c->profile->validator) {
        binding = apr_pstrcat(c->p, binding, ", validated by ", c->profile->validator->url,
                              NULL);
    }
    return binding;
}

static apr_status_t send_pending(op_ctx_t *c)
{
    apr_status_t rv = answer(c, SCEP_STATUS_PENDING, SCEP_FAIL_NONE, NULL, NULL, 0);

    if (rv == APR_SUCCESS) {
        c->reply->outcome = SCEP_OUTCOME_PENDING;
    }
    return rv;
}

/* Holds an admitted request, for an operator (SCEP_TXN_PENDING) or for the upstream CA
 * (SCEP_TXN_UPSTREAM, `why` says why), and answers PENDING. */
static apr_status_t hold(op_ctx_t *c, const scep_csr_t *csr, const scep_grant_t *grant,
                         const unsigned char *digest, const char *state, const char *why_held)
{
    const char *endpoint = endpoint_binding(c);
    const unsigned char *der;
    apr_size_t der_len;
    const char *why = NULL;
    apr_status_t rv;

    if (!endpoint) {
        return db_failure(c, APR_EGENERAL, "naming the endpoint");
    }
    rv = scep_policy_hold(c->p, c->db, &c->profile->registrations, grant,
                          c->msg->transaction_id, digest, c->msg->content,
                          c->msg->content_len, c->requester, endpoint,
                          c->peer ? c->peer->client_ip : NULL, csr_identity(c->p, csr),
                          state, c->now, &der, &der_len, &why);
    if (rv == SCEP_POLICY_REPLAY) {
        return send_recorded(c, der, der_len);
    }
    if (rv == SCEP_POLICY_HELD) {
        return continue_held(c, csr);   /* the same request was held meanwhile */
    }
    if (rv == SCEP_POLICY_DENIED) {
        return fail(c, SCEP_LOG_WARNING, SCEP_FAIL_BAD_REQUEST, "SCEP00215", why);
    }
    if (rv != APR_SUCCESS) {
        return db_failure(c, rv, "holding the request");
    }
    if (strcmp(state, SCEP_TXN_UPSTREAM) == 0) {
        scep_log(c->log, SCEP_LOG_WARNING, "SCEP00404: scep(%s,PKIOperation): request for "
                 "%s from %s is kept and answered PENDING: %s", c->msg->transaction_id,
                 grant->identity.fqdn,
                 c->peer && c->peer->client_ip ? c->peer->client_ip : "?", why_held);
        return send_pending(c);
    }
    scep_log(c->log, SCEP_LOG_NOTICE, "SCEP00240: scep(%s,PKIOperation): request for %s from "
             "%s is held for approval (scepreg -P lists it, -Y approves, -N rejects)",
             c->msg->transaction_id, grant->identity.fqdn,
             c->peer && c->peer->client_ip ? c->peer->client_ip : "?");
    return send_pending(c);
}

/* A held request is issued only with the validator's allow of now: a refusal closes it,
 * a validator still unavailable keeps it waiting (pending) or refuses this time (deny).
 * 1 to issue, 0 with the reply made (*rv). */
static int validated_again(op_ctx_t *c, const scep_csr_t *csr, scep_grant_t *grant,
                           apr_status_t *rv)
{
    scep_hook_answer_t answer;

    switch (ask_validator(c, csr, grant, &answer)) {
    case SCEP_HOOK_ALLOW:
        grant->identity.supplied = answer.supplied;
        return 1;
    case SCEP_HOOK_DENY:
        scep_policy_close_held(c->p, c->db, c->msg->transaction_id, c->requester,
                               SCEP_TXN_REJECTED, "the validator",
                               answer.reason ? scep_csr_shown(c->p, answer.reason) : NULL,
                               c->now);
        *rv = validator_denied(c, &answer);
        return 0;
    default:
        break;
    }
    if (c->profile->validator->unavailable == SCEP_HOOK_DOWN_PENDING) {
        scep_log(c->log, SCEP_LOG_INFO, "SCEP00667: scep(%s,PKIOperation): the request "
                 "keeps waiting for the validator", c->msg->transaction_id);
        *rv = send_pending(c);
        return 0;
    }
    *rv = fail(c, SCEP_LOG_WARNING, SCEP_FAIL_BAD_REQUEST, "SCEP00666",
               "the validator could not decide on it (ScepValidateUnavailable deny)");
    return 0;
}

/* A transaction that was held: answered from where it stands (the request sent again, or
 * a CertPoll).  `csr` is the request when it came again, else NULL. */
static apr_status_t continue_held(op_ctx_t *c, const scep_csr_t *csr)
{
    const char *endpoint = endpoint_binding(c);
    scep_transaction_t *held;
    scep_grant_t *grant;
    scep_csr_t *stored;
    const unsigned char *der;
    apr_size_t der_len;
    const char *why = NULL;
    apr_status_t rv;

    if (!endpoint) {
        return db_failure(c, APR_EGENERAL, "naming the endpoint");
    }
    rv = scep_policy_poll(c->p, c->db, &c->profile->registrations, c->msg->transaction_id,
                          c->requester, endpoint, c->profile->upstream != NULL,
                          c->now, &held, &grant, &der, &der_len, &why);
    switch (rv) {
    case SCEP_POLICY_REPLAY:
        return send_recorded(c, der, der_len);
    case SCEP_POLICY_PENDING:
        scep_log(c->log, SCEP_LOG_INFO, "SCEP00241: scep(%s,PKIOperation): %s from %s: the "
                 "request is still waiting for approval", c->msg->transaction_id,
                 message_type_name(c->msg->message_type),
                 c->peer && c->peer->client_ip ? c->peer->client_ip : "?");
        return send_pending(c);
    case SCEP_POLICY_DENIED:
        return fail(c, SCEP_LOG_WARNING, SCEP_FAIL_BAD_REQUEST, "SCEP00242", why);
    case SCEP_DB_NOTFOUND:
        return fail(c, SCEP_LOG_INFO, SCEP_FAIL_BAD_REQUEST, "SCEP00242",
                    "no request with this transactionID was held here");
    case SCEP_POLICY_APPROVED:
    case SCEP_POLICY_UPSTREAM:
        break;
    default:
        return db_failure(c, rv, "looking up the held request");
    }
    c->reply->fqdn = grant->identity.fqdn;
    if (!csr) {
        /* verified by enroll() before it was held; parsed again only for its fields */
        if (scep_csr_parse(c->p, held->request, held->request_len, &stored, &why)
            != APR_SUCCESS) {
            return db_failure(c, SCEP_DB_CORRUPT, "reading the held request");
        }
        csr = stored;
    }
    /* judged again by today's rules: it may have been held before they were stricter */
    if (check_key(c, csr, &why) != APR_SUCCESS) {
        return fail(c, SCEP_LOG_INFO, SCEP_FAIL_BAD_REQUEST, "SCEP00211", why);
    }
    if (grant->kind == SCEP_GRANT_VALIDATOR && !c->profile->validator) {
        /* what only a validator granted, only a validator completes (the binding of the
         * endpoint says so too, but records held before it did would not) */
        return fail(c, SCEP_LOG_WARNING, SCEP_FAIL_BAD_REQUEST, "SCEP00242",
                    "the request was held for a validator, and this endpoint asks none");
    }
    if (c->profile->validator && !validated_again(c, csr, grant, &rv)) {
        return rv;
    }
    return issue_and_send(c, csr, grant, held->request_digest);
}

static apr_status_t enroll(op_ctx_t *c)
{
    scep_csr_t *csr;
    scep_grant_t *grant = NULL;
    unsigned char digest[SCEP_REQUEST_DIGEST_LEN];
    unsigned int digest_len = sizeof(digest);
    const char *why = NULL;
    apr_status_t rv;
    int renewing;

    if (scep_csr_parse(c->p, c->msg->content, c->msg->content_len, &csr, &why) != APR_SUCCESS) {
        return fail(c, SCEP_LOG_INFO, SCEP_FAIL_BAD_REQUEST, "SCEP00210", why);
    }
    c->reply->subject = csr->subject;
    if (check_key(c, csr, &why) != APR_SUCCESS) {
        return fail(c, SCEP_LOG_INFO, SCEP_FAIL_BAD_REQUEST, "SCEP00211", why);
    }
    /* only now, with a key of a sane type and size, the public-key arithmetic */
    if (scep_csr_verify(csr, &why) != APR_SUCCESS) {
        return fail(c, SCEP_LOG_INFO, SCEP_FAIL_BAD_REQUEST, "SCEP00210", why);
    }
    renewing = c->msg->signer_as_sent && scep_ca_issued(c->ca, c->msg->signer_as_sent);
    if (c->msg->message_type == SCEP_MSG_RENEWALREQ && !renewing) {
        return fail(c, SCEP_LOG_WARNING, SCEP_FAIL_BAD_CERT_ID, "SCEP00216",
                    "a RenewalReq must be signed with a certificate this CA issued");
    }
    if (c->msg->message_type == SCEP_MSG_RENEWALREQ && !c->db) {
        return fail(c, SCEP_LOG_INFO, SCEP_FAIL_BAD_REQUEST, "SCEP00216",
                    "renewal needs the certificate records of a ScepDeviceDB at this "
                    "endpoint");
    }
    if (c->profile->validator && c->profile->validator->mode == SCEP_HOOK_ALONE) {
        return enroll_validated(c, csr, renewing);
    }
    if (!c->db) {
        if (scep_policy_authorize_static(c->profile, csr, &why) != APR_SUCCESS) {
            return fail(c, SCEP_LOG_WARNING, SCEP_FAIL_BAD_REQUEST, "SCEP00212",
                        apr_pstrcat(c->p, why, " (subject ", csr_identity(c->p, csr), ")",
                                    NULL));
        }
        if (c->profile->validator && !validated(c, csr, NULL, NULL, &rv)) {
            return rv;
        }
        return issue_and_send(c, csr, NULL, NULL);
    }
    if (EVP_Digest(c->msg->content, c->msg->content_len, digest, &digest_len, EVP_sha256(),
                   NULL) != 1) {
        return db_failure(c, APR_EGENERAL, "hashing the request");
    }
    if ((rv = admit(c, csr, digest, renewing, &grant)) != APR_SUCCESS || !grant) {
        return rv;
    }
    if (c->profile->validator && !validated(c, csr, grant, digest, &rv)) {
        return rv;
    }
    if (grant->needs_approval) {
        /* what a gateway would refuse after the approval is refused before it */
        if (c->profile->upstream && !forwardable(c, csr, grant, &rv)) {
            return rv;
        }
        return hold(c, csr, grant, digest, SCEP_TXN_PENDING, NULL);
    }
    return issue_and_send(c, csr, grant, digest);
}

/* CertPoll (GetCertInitial): where the held request of this transactionID stands. */
static apr_status_t cert_poll(op_ctx_t *c)
{
    const char *issuer, *subject;

    if (!c->db) {
        return fail(c, SCEP_LOG_INFO, SCEP_FAIL_BAD_REQUEST, "SCEP00242",
                    "no request is ever held at an endpoint without a ScepDeviceDB");
    }
    if (scep_msg_issuer_and_subject(c->p, c->msg, &issuer, &subject) != APR_SUCCESS) {
        return fail(c, SCEP_LOG_INFO, SCEP_FAIL_BAD_REQUEST, "SCEP00242",
                    "the messageData is not an IssuerAndSubject");
    }
    scep_log(c->log, SCEP_LOG_TRACE1, "SCEP00243: scep(%s,PKIOperation): CertPoll for %s, "
             "issuer %s", c->msg->transaction_id, subject, issuer);
    return continue_held(c, NULL);
}

/* ---- GetCert and GetCRL ------------------------------------------------------------ */

/* The IssuerAndSerialNumber of a GetCert/GetCRL, which must name this CA.  APR_SUCCESS
 * with *serial set, or with *serial NULL when the FAILURE reply is made (or an error). */
static apr_status_t read_query(op_ctx_t *c, const char **serial)
{
    X509_NAME *issuer;
    const char *asked;

    *serial = NULL;

    if (!c->db) {
        return fail(c, SCEP_LOG_INFO, SCEP_FAIL_BAD_REQUEST, "SCEP00225",
                    apr_psprintf(c->p, "%s needs the certificate records of a ScepDeviceDB "
                                 "at this endpoint", message_type_name(c->msg->message_type)));
    }
    if (scep_msg_issuer_and_serial(c->p, c->msg, &issuer, &asked) != APR_SUCCESS) {
        return fail(c, SCEP_LOG_INFO, SCEP_FAIL_BAD_REQUEST, "SCEP00224",
                    "the messageData is not an IssuerAndSerialNumber");
    }
    if (X509_NAME_cmp(issuer, X509_get_subject_name(scep_ca_cert(c->ca))) != 0) {
        return fail(c, SCEP_LOG_INFO, SCEP_FAIL_BAD_CERT_ID, "SCEP00224",
                    apr_psprintf(c->p, "the issuer %s is not this CA (%s)",
                                 scep_csr_name_text(c->p, issuer),
                                 scep_csr_name_text(c->p, X509_get_subject_name(
                                                              scep_ca_cert(c->ca)))));
    }
    *serial = asked;
    return APR_SUCCESS;
}

static apr_status_t get_cert(op_ctx_t *c)
{
    const char *serial = NULL, *recorded;
    scep_txn_t *txn;
    scep_cert_rec_t *rec;
    apr_status_t rv;

    if ((rv = read_query(c, &serial)) != APR_SUCCESS || !serial) {
        return rv;
    }
    if ((rv = scep_db_begin(c->db, c->p, 0, &txn)) == APR_SUCCESS) {
        rv = scep_store_cert_get(txn, c->p, serial, &rec);
        scep_db_abort(txn);
    }
    if (rv == SCEP_DB_NOTFOUND) {
        return fail(c, SCEP_LOG_INFO, SCEP_FAIL_BAD_CERT_ID, "SCEP00224",
                    apr_psprintf(c->p, "no certificate with serial %s was issued here",
                                 serial));
    }
    if (rv != APR_SUCCESS) {
        return db_failure(c, rv, "looking up the certificate");
    }
    if ((rv = resendable(c, rec->der, rec->der_len, &recorded)) != APR_SUCCESS) {
        return rv;
    }
    c->reply->fqdn = rec->fqdn;
    rv = send_certificate(c, rec->der, rec->der_len, recorded, SCEP_OUTCOME_CERTIFICATE);
    if (rv == APR_SUCCESS) {
        scep_log(c->log, SCEP_LOG_INFO, "SCEP00222: scep(%s,PKIOperation): GetCert from %s: "
                 "sent certificate %s of %s", c->msg->transaction_id,
                 c->peer && c->peer->client_ip ? c->peer->client_ip : "?", serial,
                 rec->fqdn ? rec->fqdn : "?");
    }
    return rv;
}

static apr_status_t get_crl(op_ctx_t *c)
{
    const char *serial = NULL;
    unsigned char *payload;
    apr_size_t payload_len;
    scep_crl_t *crl;
    apr_status_t rv;

    if ((rv = read_query(c, &serial)) != APR_SUCCESS || !serial) {
        return rv;
    }
    if (!scep_ca_can_sign(c->ca)) {
        return fail(c, SCEP_LOG_INFO, SCEP_FAIL_BAD_REQUEST, "SCEP00225",
                    "an upstream CA issues for this endpoint: ask it for its CRL");
    }
    rv = scep_crl_current(c->p, c->ca, c->db, c->profile->crl_validity,
                          c->now, &crl);
    if (rv == APR_EGENERAL) {
        scep_log(c->log, SCEP_LOG_ERR, "SCEP00226: scep(%s,PKIOperation): cannot sign the "
                 "CRL: %s", c->msg->transaction_id, scep_util_openssl_errors(c->p));
        c->reply->http_status = 500;
        c->reply->outcome = SCEP_OUTCOME_ERROR;
        return rv;
    }
    if (rv != APR_SUCCESS) {
        return db_failure(c, rv, "preparing the CRL");
    }
    if ((rv = scep_msg_degenerate(c->p, NULL, NULL, 0, crl->der, crl->der_len, &payload,
                                  &payload_len)) != APR_SUCCESS) {
        c->reply->http_status = 500;
        c->reply->outcome = SCEP_OUTCOME_ERROR;
        return rv;
    }
    rv = answer(c, SCEP_STATUS_SUCCESS, SCEP_FAIL_NONE, NULL, payload, payload_len);
    if (rv == APR_SUCCESS) {
        c->reply->outcome = SCEP_OUTCOME_CRL;
        scep_log(c->log, SCEP_LOG_INFO, "SCEP00223: scep(%s,PKIOperation): GetCRL from %s "
                 "(for serial %s): sent CRL number %" APR_INT64_T_FMT "%s",
                 c->msg->transaction_id,
                 c->peer && c->peer->client_ip ? c->peer->client_ip : "?", serial,
                 crl->number, crl->built ? " (built now)" : "");
    }
    return rv;
}

static apr_status_t pkioperation(op_ctx_t *c, const unsigned char *msg, apr_size_t msg_len)
{
    apr_pool_t *p = c->p;
    const scep_profile_t *profile = c->profile;
    const scep_peer_t *peer = c->peer;
    const scep_log_t *log = c->log;
    scep_reply_t *reply = c->reply;
    const char *why = NULL;

    if (msg_len > profile->max_message_size) {
        scep_log(log, SCEP_LOG_INFO, "SCEP00203: scep(-,PKIOperation): message of %lu bytes "
                 "from %s exceeds ScepMaxMessageSize %lu", (unsigned long)msg_len,
                 peer && peer->client_ip ? peer->client_ip : "?",
                 (unsigned long)profile->max_message_size);
        reply->http_status = 413;
        reply->outcome = SCEP_OUTCOME_TOO_LARGE;
        return APR_ENOSPC;
    }
    if (scep_msg_parse_request(p, scep_ca_msg_keys(c->ca), profile->legacy_algorithms, msg,
                               msg_len, &c->msg, &why) != APR_SUCCESS) {
        scep_log(log, SCEP_LOG_INFO, "SCEP00204: scep(-,PKIOperation): unusable message from "
                 "%s: %s", peer && peer->client_ip ? peer->client_ip : "?", why);
        reply->http_status = 400;
        reply->outcome = SCEP_OUTCOME_MALFORMED;
        ERR_clear_error();
        return APR_EINVAL;
    }
    reply->transaction_id = c->msg->transaction_id;
    if (c->msg->fail_info != SCEP_FAIL_NONE) {
        return fail(c, SCEP_LOG_INFO, c->msg->fail_info, "SCEP00205", c->msg->why);
    }
    /* Only transactions in a database belong to a requester (forwarding needs one too). */
    if (c->db && requester_digest(c) != APR_SUCCESS) {
        scep_log(log, SCEP_LOG_ERR, "SCEP00270: scep(%s,PKIOperation): cannot hash the "
                 "signer's key: %s", c->msg->transaction_id, scep_util_openssl_errors(p));
        reply->http_status = 500;
        reply->outcome = SCEP_OUTCOME_ERROR;
        return APR_EGENERAL;
    }
    scep_log(log, SCEP_LOG_TRACE1, "SCEP00206: scep(%s,PKIOperation): %s, digest %s, cipher %s",
             c->msg->transaction_id, message_type_name(c->msg->message_type),
             OBJ_nid2sn(c->msg->digest_nid), OBJ_nid2sn(c->msg->cipher_nid));
    switch (c->msg->message_type) {
    case SCEP_MSG_PKCSREQ:
    case SCEP_MSG_RENEWALREQ:
        return enroll(c);
    case SCEP_MSG_CERTPOLL:
        return cert_poll(c);
    case SCEP_MSG_GETCERT:
        return get_cert(c);
    case SCEP_MSG_GETCRL:
        return get_crl(c);
    default:
        return fail(c, SCEP_LOG_INFO, SCEP_FAIL_BAD_REQUEST, "SCEP00207",
                    apr_psprintf(p, "%s is not supported by this server yet",
                                 message_type_name(c->msg->message_type)));
    }
}

/* A failed request whose CA keeps keys in a token: the token is asked whether it still
 * works, and if not the answer is 503 and the host told to open its session again.  An
 * envelope addressed to us that did not open asks only the keys it was addressed to: a
 * client sending those at will costs the token one more decryption each. */
static void check_token(op_ctx_t *c)
{
    int unopened = c->msg && c->reply->http_status != 500 ? c->msg->not_opened : 0;

    if (!scep_ca_in_token(c->ca)
        || !(c->reply->http_status == 500 || unopened)
        || scep_ca_token_works(c->ca, unopened)) {
        return;
    }
    scep_log(c->log, SCEP_LOG_ERR, "SCEP00244: scep(%s,PKIOperation): a key of CA %s in its "
             "token does not work any more; answered 503",
             c->msg && c->msg->transaction_id ? c->msg->transaction_id : "-",
             scep_ca_name(c->ca));
    c->reply->http_status = 503;
    c->reply->body = NULL;
    c->reply->body_len = 0;
    c->reply->outcome = SCEP_OUTCOME_ERROR;
    c->reply->token_failed = 1;
}

apr_status_t scep_server_pkioperation(apr_pool_t *p, const scep_ca_t *ca,
                                      const scep_profile_t *profile, scep_db_t *db,
                                      const unsigned char *msg, apr_size_t msg_len,
                                      const scep_peer_t *peer, apr_int64_t now,
                                      const scep_log_t *log, scep_reply_t *reply)
{
    op_ctx_t c = { p, ca, profile, db, peer, log, now, reply, NULL, { 0 } };
    apr_status_t rv;

    memset(reply, 0, sizeof(*reply));
    rv = pkioperation(&c, msg, msg_len);
    check_token(&c);
    return rv;
}

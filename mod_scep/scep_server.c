/* One PKIOperation from bytes to CertRep: read the pkiMessage, authorize the PKCS#10,
 * issue with the local CA and answer.  Also the profile helpers the configuration uses,
 * so that policy values are prepared once, at configuration time.
 *
 * Log lines: device mistakes are WARNING (authentication) or INFO (malformed input),
 * server failures ERR; every line names the transaction and never a secret. */
#include <string.h>

#include <apr_strings.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "scep_ca_int.h"
#include "scep_csr.h"
#include "scep_msg.h"
#include "scep_server.h"

void scep_profile_defaults(scep_profile_t *profile, apr_pool_t *p)
{
    static const char *const client_auth[] = { "clientAuth" };

    memset(profile, 0, sizeof(*profile));
    profile->validity_days = 365;
    profile->key_usage = SCEP_KU_DIGITAL_SIGNATURE | SCEP_KU_KEY_ENCIPHERMENT;
    profile->subject_mode = SCEP_SUBJECT_FROM_CSR;
    profile->min_key_bits = 2048;
    profile->max_message_size = 128 * 1024;
    scep_profile_set_eku(profile, p, 1, client_auth);
}

const char *scep_profile_key_usage_bit(const char *word, unsigned int *bit)
{
    static const struct { const char *name; unsigned int bit; } usages[] = {
        { "digitalSignature", SCEP_KU_DIGITAL_SIGNATURE },
        { "nonRepudiation", SCEP_KU_NON_REPUDIATION },
        { "contentCommitment", SCEP_KU_NON_REPUDIATION },
        { "keyEncipherment", SCEP_KU_KEY_ENCIPHERMENT },
        { "dataEncipherment", SCEP_KU_DATA_ENCIPHERMENT },
        { "keyAgreement", SCEP_KU_KEY_AGREEMENT },
    };
    size_t i;

    for (i = 0; i < sizeof(usages) / sizeof(usages[0]); i++) {
        if (strcasecmp(word, usages[i].name) == 0) {
            *bit = usages[i].bit;
            return NULL;
        }
    }
    return "unknown key usage (digitalSignature, nonRepudiation, keyEncipherment, "
           "dataEncipherment or keyAgreement)";
}

const char *scep_profile_set_eku(scep_profile_t *profile, apr_pool_t *p,
                                 int count, const char *const *words)
{
    EXTENDED_KEY_USAGE *eku;
    unsigned char *der = NULL;
    const char *err = NULL;
    int i, len;

    if (count == 1 && strcasecmp(words[0], "none") == 0) {
        profile->eku_der = NULL;
        profile->eku_der_len = 0;
        return NULL;
    }
    if (!(eku = sk_ASN1_OBJECT_new_null())) {
        return "out of memory";
    }
    for (i = 0; i < count && !err; i++) {
        /* Short names (clientAuth, serverAuth, ipsecIKE, …) or dotted OIDs. */
        ASN1_OBJECT *oid = OBJ_txt2obj(words[i], 0);

        if (!oid) {
            err = apr_psprintf(p, "'%s' is neither a known extended key usage name "
                               "(clientAuth, serverAuth, ipsecIKE, emailProtection, "
                               "codeSigning, …) nor a dotted OID", words[i]);
        }
        else if (!sk_ASN1_OBJECT_push(eku, oid)) {
            ASN1_OBJECT_free(oid);
            err = "out of memory";
        }
    }
    if (!err && (len = i2d_EXTENDED_KEY_USAGE(eku, &der)) > 0) {
        profile->eku_der = apr_pmemdup(p, der, (apr_size_t)len);
        profile->eku_der_len = (apr_size_t)len;
    }
    else if (!err) {
        err = "cannot encode the extended key usage";
    }
    OPENSSL_free(der);
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    ERR_clear_error();
    return err;
}

void scep_profile_set_challenge(scep_profile_t *profile, apr_pool_t *p, const char *challenge)
{
    unsigned char *digest = apr_palloc(p, 32);
    unsigned int len = 32;

    EVP_Digest(challenge, strlen(challenge), digest, &len, EVP_sha256(), NULL);
    profile->challenge_sha256 = digest;
}

/* ---- PKIOperation ----------------------------------------------------------------- */

typedef struct op_ctx_t {
    apr_pool_t *p;
    const scep_ca_t *ca;
    const scep_profile_t *profile;
    const scep_peer_t *peer;
    const scep_log_t *log;
    scep_reply_t *reply;
    scep_pkimsg_t *msg;
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

static apr_status_t answer(op_ctx_t *c, int status, int fail_info, const char *fail_text,
                           X509 *issued)
{
    unsigned char *der;
    apr_size_t len;
    apr_status_t rv = scep_msg_certrep(c->p, c->ca, c->msg, status, fail_info, fail_text,
                                       issued, &der, &len);

    if (rv != APR_SUCCESS) {
        scep_log(c->log, SCEP_LOG_ERR,
                 "SCEP00201: scep(%s,PKIOperation): cannot build the CertRep: %s",
                 c->msg->transaction_id, scep_openssl_errors(c->p));
        c->reply->http_status = 500;
        c->reply->outcome = "error";
        return rv;
    }
    c->reply->http_status = 200;
    c->reply->body = der;
    c->reply->body_len = len;
    if (status == SCEP_STATUS_FAILURE) {
        c->reply->outcome = apr_pstrcat(c->p, "failure:", scep_msg_fail_info_name(fail_info),
                                        NULL);
    }
    return APR_SUCCESS;
}

/* A FAILURE for a device mistake; authentication failures log at WARNING. */
static apr_status_t fail(op_ctx_t *c, int level, int fail_info, const char *tag,
                         const char *why)
{
    scep_log(c->log, level, "%s: scep(%s,PKIOperation): %s from %s refused (%s): %s",
             tag, c->msg->transaction_id, message_type_name(c->msg->message_type),
             c->peer && c->peer->client_ip ? c->peer->client_ip : "?",
             scep_msg_fail_info_name(fail_info), why);
    return answer(c, SCEP_STATUS_FAILURE, fail_info, why, NULL);
}

static const char *csr_identity(apr_pool_t *p, const scep_csr_t *csr)
{
    return csr->subject && *csr->subject ? csr->subject
           : csr->unstructured_name ? csr->unstructured_name : "(empty subject)";
}

static apr_status_t authorize(op_ctx_t *c, const scep_csr_t *csr, const char **why)
{
    const scep_profile_t *profile = c->profile;
    unsigned char digest[32];
    unsigned int len = sizeof(digest);

    if (!profile->challenge_sha256) {
        if (profile->allow_no_challenge) {
            return APR_SUCCESS;
        }
        *why = "no ScepChallenge is configured for this endpoint and ScepAllowNoChallenge "
               "is Off";
        return APR_EACCES;
    }
    if (!csr->challenge) {
        *why = "the request carries no challengePassword";
        return APR_EACCES;
    }
    /* Comparing fixed-size digests keeps the time independent of where they differ and of
     * the challenge's length. */
    if (EVP_Digest(csr->challenge, csr->challenge_len, digest, &len, EVP_sha256(), NULL) != 1
        || !scep_secret_equal(digest, len, profile->challenge_sha256, 32)) {
        *why = "the challengePassword is wrong";
        return APR_EACCES;
    }
    return APR_SUCCESS;
}

static apr_status_t check_key(op_ctx_t *c, const scep_csr_t *csr, const char **why)
{
    if (csr->key_is_rsa) {
        if (csr->key_bits < c->profile->min_key_bits) {
            *why = apr_psprintf(c->p, "the RSA key has %d bits; ScepMinKeySize is %d",
                                csr->key_bits, c->profile->min_key_bits);
            return APR_EINVAL;
        }
        if (csr->key_bits > 16384) {
            *why = apr_psprintf(c->p, "the RSA key has %d bits, more than 16384",
                                csr->key_bits);
            return APR_EINVAL;
        }
        return APR_SUCCESS;
    }
    if (EVP_PKEY_get_base_id(csr->public_key) == EVP_PKEY_EC && csr->key_bits >= 256) {
        return APR_SUCCESS;
    }
    *why = apr_psprintf(c->p, "the key type %s (%d bits) is not accepted",
                        OBJ_nid2sn(EVP_PKEY_get_base_id(csr->public_key)), csr->key_bits);
    return APR_EINVAL;
}

static apr_status_t enroll(op_ctx_t *c)
{
    scep_csr_t *csr;
    const char *why = NULL;
    X509 *issued;
    apr_status_t rv;

    if (scep_csr_parse(c->p, c->msg->content, c->msg->content_len, &csr, &why) != APR_SUCCESS) {
        return fail(c, SCEP_LOG_INFO, SCEP_FAIL_BAD_REQUEST, "SCEP00210", why);
    }
    if (check_key(c, csr, &why) != APR_SUCCESS) {
        return fail(c, SCEP_LOG_INFO, SCEP_FAIL_BAD_REQUEST, "SCEP00211", why);
    }
    if (authorize(c, csr, &why) != APR_SUCCESS) {
        return fail(c, SCEP_LOG_WARNING, SCEP_FAIL_BAD_REQUEST, "SCEP00212",
                    apr_pstrcat(c->p, why, " (subject ", csr_identity(c->p, csr), ")", NULL));
    }
    rv = scep_ca_issue(c->p, c->ca, c->profile, csr, &issued, &why);
    if (rv == APR_EINVAL) {
        return fail(c, SCEP_LOG_INFO, SCEP_FAIL_BAD_REQUEST, "SCEP00213", why);
    }
    if (rv != APR_SUCCESS) {
        scep_log(c->log, SCEP_LOG_ERR, "SCEP00202: scep(%s,PKIOperation): %s: %s",
                 c->msg->transaction_id, why, scep_openssl_errors(c->p));
        c->reply->http_status = 500;
        c->reply->outcome = "error";
        return rv;
    }
    rv = answer(c, SCEP_STATUS_SUCCESS, SCEP_FAIL_NONE, NULL, issued);
    if (rv == APR_SUCCESS) {
        char *serial = NULL;
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(issued), NULL);

        if (bn) {
            serial = BN_bn2hex(bn);
            BN_free(bn);
        }
        c->reply->outcome = "issued";
        scep_log(c->log, SCEP_LOG_NOTICE,
                 "SCEP00220: scep(%s,PKIOperation): issued serial %s to %s for %s, %d-bit key",
                 c->msg->transaction_id, serial ? serial : "?", csr_identity(c->p, csr),
                 c->peer && c->peer->client_ip ? c->peer->client_ip : "?", csr->key_bits);
        OPENSSL_free(serial);
    }
    ERR_clear_error();
    return rv;
}

apr_status_t scep_server_pkioperation(apr_pool_t *p, const scep_ca_t *ca,
                                      const scep_profile_t *profile,
                                      const unsigned char *msg, apr_size_t msg_len,
                                      const scep_peer_t *peer, const scep_log_t *log,
                                      scep_reply_t *reply)
{
    op_ctx_t c = { p, ca, profile, peer, log, reply, NULL };
    const char *why = NULL;

    memset(reply, 0, sizeof(*reply));
    if (msg_len > profile->max_message_size) {
        scep_log(log, SCEP_LOG_INFO, "SCEP00203: scep(-,PKIOperation): message of %lu bytes "
                 "from %s exceeds ScepMaxMessageSize %lu", (unsigned long)msg_len,
                 peer && peer->client_ip ? peer->client_ip : "?",
                 (unsigned long)profile->max_message_size);
        reply->http_status = 413;
        reply->outcome = "too-large";
        return APR_ENOSPC;
    }
    if (scep_msg_parse_request(p, ca, profile->legacy_algorithms, msg, msg_len, &c.msg, &why)
        != APR_SUCCESS) {
        scep_log(log, SCEP_LOG_INFO, "SCEP00204: scep(-,PKIOperation): unusable message from "
                 "%s: %s", peer && peer->client_ip ? peer->client_ip : "?", why);
        reply->http_status = 400;
        reply->outcome = "malformed";
        ERR_clear_error();
        return APR_EINVAL;
    }
    reply->transaction_id = c.msg->transaction_id;
    if (c.msg->fail_info != SCEP_FAIL_NONE) {
        return fail(&c, SCEP_LOG_INFO, c.msg->fail_info, "SCEP00205", c.msg->why);
    }
    scep_log(log, SCEP_LOG_TRACE1, "SCEP00206: scep(%s,PKIOperation): %s, digest %s, cipher %s",
             c.msg->transaction_id, message_type_name(c.msg->message_type),
             OBJ_nid2sn(c.msg->digest_nid), OBJ_nid2sn(c.msg->cipher_nid));
    switch (c.msg->message_type) {
    case SCEP_MSG_PKCSREQ:
        return enroll(&c);
    default:
        return fail(&c, SCEP_LOG_INFO, SCEP_FAIL_BAD_REQUEST, "SCEP00207",
                    apr_psprintf(p, "%s is not supported by this server yet",
                                 message_type_name(c.msg->message_type)));
    }
}

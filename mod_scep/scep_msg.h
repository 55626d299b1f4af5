/* SPDX-License-Identifier: Apache-2.0 */
/* SCEP pkiMessages (RFC 8894 section 3): reading a request's SignedData and
 * EnvelopedData, and building CertReps.  Both directions live here so that the
 * forwarder and the load generator reuse the same code later. */
#ifndef SCEP_MSG_H
#define SCEP_MSG_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <openssl/evp.h>
#include <openssl/x509.h>


#define SCEP_MSG_CERTREP     3
#define SCEP_MSG_RENEWALREQ 17
#define SCEP_MSG_PKCSREQ    19
#define SCEP_MSG_CERTPOLL   20
#define SCEP_MSG_GETCERT    21
#define SCEP_MSG_GETCRL     22

#define SCEP_STATUS_SUCCESS 0
#define SCEP_STATUS_FAILURE 2
#define SCEP_STATUS_PENDING 3

#define SCEP_FAIL_NONE            (-1)
#define SCEP_FAIL_BAD_ALG          0
#define SCEP_FAIL_BAD_MESSAGE_CHECK 1
#define SCEP_FAIL_BAD_REQUEST      2
#define SCEP_FAIL_BAD_TIME         3
#define SCEP_FAIL_BAD_CERT_ID      4

#define SCEP_NONCE_MAX 64
#define SCEP_TRANSACTION_ID_MAX 128

/* What this server decrypts and signs with, handed out by their owner (scep_ca_msg_keys)
 * so that messages never read a CA's internals.  Owned by the caller, which keeps them
 * alive while they are used. */
typedef struct scep_msg_keys_t {
    X509 *ra_cert;                  /* tried first to open an envelope; NULL without an RA */
    EVP_PKEY *ra_key;
    X509 *ca_cert;                  /* some clients encrypt to the CA's certificate */
    EVP_PKEY *ca_key;               /* NULL when an upstream CA issues */
    int ca_key_signs_only;          /* a token key not allowed to decrypt: envelopes to the
                                     * CA certificate are not tried with it */
    X509 *sign_cert;                /* signs CertReps: RA signer, RA, or CA */
    EVP_PKEY *sign_key;
} scep_msg_keys_t;

#define SCEP_MSG_RECIPIENT_RA 1
#define SCEP_MSG_RECIPIENT_CA 2

/* A request as read from the wire.  OpenSSL objects are freed with the pool. */
typedef struct scep_pkimsg_t {
    int message_type;
    const char *transaction_id;
    unsigned char sender_nonce[SCEP_NONCE_MAX];
    apr_size_t sender_nonce_len;
    X509 *signer;                   /* the certificate that signed the request, with its
                                     * key (not re-encoded faithfully: see below) */
    X509 *signer_as_sent;           /* the same, untouched, for checking who issued it;
                                     * it has no key (scep_keyless.h) */
    int digest_nid;                 /* of the request's SignerInfo; the reply uses it too */
    int cipher_nid;                 /* of the envelope; the reply uses it too */
    unsigned char *content;         /* decrypted messageData (PKCS#10, …) */
    apr_size_t content_len;
    int fail_info;                  /* SCEP_FAIL_NONE, or why a FAILURE must be answered */
    const char *why;                /* for the log: what went wrong, no secrets */
    int not_opened;                 /* SCEP_MSG_RECIPIENT_* bits: the envelope names these
                                     * certificates of ours, yet their keys did not open
                                     * it: the client's fault, or a token's that failed
                                     * (the server asks) */
} scep_pkimsg_t;

/* Makes the SCEP attribute OIDs known to OpenSSL and loads the providers the accepted
 * algorithms need.  Call once, single-threaded, before any other function here. */
apr_status_t scep_msg_global_init(void);

/* Reads a request.  APR_SUCCESS: *msg is set and a CertRep can be built; check
 * (*msg)->fail_info before trusting anything else in it.  APR_EINVAL: not a pkiMessage
 * we can answer with a CertRep (no transactionID, no senderNonce, not a SignedData);
 * *why says what, for the log. */
apr_status_t scep_msg_parse_request(apr_pool_t *p, const scep_msg_keys_t *keys, int legacy,
                                    const unsigned char *der, apr_size_t len,
                                    scep_pkimsg_t **msg, const char **why);

/* The second half of scep_msg_parse_request, on its own so that it can be driven (and
 * fuzzed) without a valid signature around it: opens `envelope`, the EnvelopedData a
 * verified SignedData carried, with the RA key or else the CA key of `keys`.  Sets
 * msg->cipher_nid and, when it opens, msg->content (in the pool).  Like scep_msg_parse_request it answers
 * APR_SUCCESS and records a refusal in msg->fail_info and msg->why; `msg` must have been
 * set up by the caller (fail_info SCEP_FAIL_NONE). */
apr_status_t scep_msg_open_envelope(apr_pool_t *p, const scep_msg_keys_t *keys, int legacy,
                                    const unsigned char *envelope, apr_size_t envelope_len,
                                    scep_pkimsg_t *msg);

/* A degenerate SignedData (no signers) holding `count` certificates, in order, and `crl`
 * if not NULL, all given in DER and copied as they are (the result in the pool).  It
 * does not parse them: the callers hold them from their own encoding or record. */
apr_status_t scep_msg_degenerate(apr_pool_t *p, const unsigned char *const *certs,
                                 const apr_size_t *cert_lens, int count,
                                 const unsigned char *crl, apr_size_t crl_len,
                                 unsigned char **der, apr_size_t *len);

/* scep_msg_degenerate of certificates held as X509 (DER, in the pool). */
apr_status_t scep_msg_certs_only(apr_pool_t *p, X509 *const *certs, int count,
                                 unsigned char **der, apr_size_t *len);

/* A SignedData by the CertRep signer of `keys` holding `certs` (GetNextCACert's answer). */
apr_status_t scep_msg_signed_certs(apr_pool_t *p, const scep_msg_keys_t *keys,
                                   X509 *const *certs, int count, unsigned char **der,
                                   apr_size_t *len);

/* The IssuerAndSerialNumber of a GetCert or GetCRL message (the whole messageData, DER,
 * nothing after it); the serial as upper-case hex.  APR_EINVAL if it is not one. */
apr_status_t scep_msg_issuer_and_serial(apr_pool_t *p, const scep_pkimsg_t *msg,
                                        X509_NAME **issuer, const char **serial_hex);

/* A CertPoll's IssuerAndSubject (DER, in the pool). */
apr_status_t scep_msg_make_issuer_and_subject(apr_pool_t *p, const X509_NAME *issuer,
                                              const X509_NAME *subject, unsigned char **der,
                                              apr_size_t *len);

/* The IssuerAndSubject of a CertPoll, as one-line names for the log.  APR_EINVAL if the
 * messageData is not one. */
apr_status_t scep_msg_issuer_and_subject(apr_pool_t *p, const scep_pkimsg_t *msg,
                                         const char **issuer, const char **subject);

/* Builds a CertRep answering `req`: SUCCESS with `payload` (a degenerate SignedData with
 * the certificate or CRL) enveloped to the request's signer, or FAILURE with fail_info
 * (and fail_text, may be NULL), or PENDING; signed by the signer of `keys`. */
apr_status_t scep_msg_certrep(apr_pool_t *p, const scep_msg_keys_t *keys,
                              const scep_pkimsg_t *req, int status, int fail_info,
                              const char *fail_text,
                              const unsigned char *payload, apr_size_t payload_len,
                              unsigned char **der, apr_size_t *len);

const char *scep_msg_fail_info_name(int fail_info);

/* ---- the client side (the forwarder talking to an upstream CA) ---------------------- */

/* A PKCSReq, CertPoll or other request: `content` (a PKCS#10, IssuerAndSubject, …)
 * enveloped to `recipient` with `cipher`, signed by `signer`/`key` with `md` and the SCEP
 * attributes.  The senderNonce it carries goes to `nonce` (16 bytes). */
apr_status_t scep_msg_build_request(apr_pool_t *p, X509 *signer, EVP_PKEY *key,
                                    X509 *recipient, const EVP_CIPHER *cipher,
                                    const EVP_MD *md, int message_type,
                                    const char *transaction_id,
                                    const unsigned char *content, apr_size_t content_len,
                                    unsigned char nonce[16], unsigned char **der,
                                    apr_size_t *len);

/* What an upstream CertRep says. */
typedef struct scep_reply_info_t {
    int status;                        /* SCEP_STATUS_* */
    int fail_info;                     /* with FAILURE; SCEP_FAIL_NONE if absent */
    const char *fail_text;             /* failInfoText, may be NULL */
    STACK_OF(X509) *certs;             /* with SUCCESS: the envelope's certificates */
} scep_reply_info_t;

/* Reads a CertRep: its signature must verify with one of `signers` (the upstream's CA or
 * RA certificates), its transactionID and recipientNonce must be ours; a SUCCESS
 * envelope is decrypted with `key`/`cert`.  APR_EINVAL with *why otherwise. */
apr_status_t scep_msg_read_reply(apr_pool_t *p, const unsigned char *der, apr_size_t len,
                                 STACK_OF(X509) *signers, X509 *cert, EVP_PKEY *key,
                                 const char *transaction_id, const unsigned char nonce[16],
                                 scep_reply_info_t *info, const char **why);

#endif

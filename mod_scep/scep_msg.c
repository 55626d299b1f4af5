/* SPDX-License-Identifier: Apache-2.0 */
/* Reading and writing SCEP pkiMessages with OpenSSL's CMS code.
 *
 * A request is SignedData(EnvelopedData(messageData)) with SCEP's authenticated
 * attributes; a reply is SignedData(EnvelopedData(certs-only SignedData)) or a bare
 * SignedData carrying a FAILURE/PENDING status.  The CMS decoder reads BER as well as DER,
 * which Apple and jscep clients need (indefinite lengths). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <openssl/asn1t.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pkcs7.h>
#include <openssl/provider.h>
#include <openssl/rand.h>

#include "scep_keyless.h"
#include "scep_msg.h"
#include "scep_store.h"
#include "scep_util.h"
#include "scep_util_own.h"

/* RFC 8894 section 3.2.1 attribute OIDs, plus failInfoText from RFC 7191's arc. */
static int nid_message_type, nid_pki_status, nid_fail_info, nid_sender_nonce,
           nid_recipient_nonce, nid_transaction_id, nid_fail_info_text;

static int known_nid(const char *oid, const char *sn, const char *ln)
{
    int nid = OBJ_txt2nid(oid);

    if (nid == NID_undef) {
        nid = OBJ_create(oid, sn, ln);
    }
    return nid;
}

static OSSL_PROVIDER *default_provider, *legacy_provider;

/* Hands back the references scep_msg_global_init took.  Without it nothing ever read the
 * two pointers above, the compiler dropped them, and memcheck and LeakSanitizer reported
 * the legacy provider as lost at exit.  Registered with atexit, so it also runs when httpd
 * unloads this module at a restart: the next generation loads them again, and the
 * activation counts no longer grow by one per generation.  It runs before OpenSSL's own
 * exit handler, which was registered earlier, by the first OpenSSL call. */
static void unload_providers(void)
{
    scep_keyless_release();
    if (legacy_provider) {
        OSSL_PROVIDER_unload(legacy_provider);
        legacy_provider = NULL;
    }
    if (default_provider) {
        OSSL_PROVIDER_unload(default_provider);
        default_provider = NULL;
    }
}

apr_status_t scep_msg_global_init(void)
{
    if (nid_fail_info_text != 0) {
        return APR_SUCCESS;   /* startup loads several CAs; once is enough */
    }
    nid_message_type = known_nid("2.16.840.1.113733.1.9.2", "scepMessageType",
                                 "SCEP messageType");
    nid_pki_status = known_nid("2.16.840.1.113733.1.9.3", "scepPkiStatus", "SCEP pkiStatus");
    nid_fail_info = known_nid("2.16.840.1.113733.1.9.4", "scepFailInfo", "SCEP failInfo");
    nid_sender_nonce = known_nid("2.16.840.1.113733.1.9.5", "scepSenderNonce",
                                 "SCEP senderNonce");
    nid_recipient_nonce = known_nid("2.16.840.1.113733.1.9.6", "scepRecipientNonce",
                                    "SCEP recipientNonce");
    nid_transaction_id = known_nid("2.16.840.1.113733.1.9.7", "scepTransactionID",
                                   "SCEP transactionID");
    nid_fail_info_text = known_nid("1.3.6.1.5.5.7.24.1", "scepFailInfoText",
                                   "SCEP failInfoText");
    if (nid_message_type == NID_undef || nid_transaction_id == NID_undef
        || nid_fail_info_text == NID_undef) {
        return APR_EGENERAL;
    }
    /* Single DES lives in the legacy provider; it is only ever accepted when an operator
     * switches ScepLegacyAlgorithms on, which is checked before any decryption. Loading the
     * default provider explicitly keeps it available once another provider is loaded. */
    default_provider = OSSL_PROVIDER_load(NULL, "default");
    legacy_provider = OSSL_PROVIDER_load(NULL, "legacy");
    ERR_clear_error();
    /* should atexit fail (out of memory), they merely stay loaded until the end */
    (void)atexit(unload_providers);
    return scep_keyless_init();
}

const char *scep_msg_fail_info_name(int fail_info)
{
    switch (fail_info) {
    case SCEP_FAIL_BAD_ALG: return "badAlg";
    case SCEP_FAIL_BAD_MESSAGE_CHECK: return "badMessageCheck";
    case SCEP_FAIL_BAD_REQUEST: return "badRequest";
    case SCEP_FAIL_BAD_TIME: return "badTime";
    case SCEP_FAIL_BAD_CERT_ID: return "badCertId";
    default: return "none";
    }
}

static BIO *pool_mem_bio(apr_pool_t *p)
{
    return scep_util_own_BIO(p, BIO_new(BIO_s_mem()));
}

/* Straight from memory: d2i_CMS_bio would first copy the whole message into a buffer of
 * its own.  Indefinite lengths decode either way.  `keyless`: the certificates inside
 * come without their keys (scep_keyless.h), and the message can only be verified against
 * certificates given to CMS_verify. */
static CMS_ContentInfo *pool_d2i_cms(apr_pool_t *p, const unsigned char *der, apr_size_t len,
                                     int keyless)
{
    const unsigned char *in = der;
    CMS_ContentInfo *cms;

    if (len > LONG_MAX) {
        return NULL;
    }
    cms = keyless ? scep_keyless_d2i(ASN1_ITEM_rptr(CMS_ContentInfo), &in, (long)len)
                  : d2i_CMS_ContentInfo(NULL, &in, (long)len);
    scep_util_own_CMS_ContentInfo(p, cms);
    return cms;
}

/* A copy of the request's signer certificate that holds `key`, for CMS_verify and for
 * enveloping the reply.  The certificate as sent stays untouched: setting a key marks
 * the copy's to-be-signed part modified, and X509_verify would then check the CA's
 * signature over a re-encoding rather than over the bytes the CA signed. */
static X509 *signer_with_key(apr_pool_t *p, X509 *as_sent, EVP_PKEY *key)
{
    unsigned char *der = NULL;
    const unsigned char *in;
    X509 *copy = NULL;
    int len = i2d_X509(as_sent, &der);

    if (len > 0) {
        in = der;
        copy = scep_keyless_d2i(ASN1_ITEM_rptr(X509), &in, len);
    }
    OPENSSL_free(der);
    if (copy && X509_set_pubkey(copy, key) != 1) {
        X509_free(copy);
        copy = NULL;
    }
    scep_util_own_X509(p, copy);
    ERR_clear_error();
    return copy;
}

/* Copies what a memory BIO holds into the pool. */
static apr_status_t bio_to_pool(apr_pool_t *p, BIO *bio, unsigned char **out, apr_size_t *len)
{
    char *data;
    long n = BIO_get_mem_data(bio, &data);

    if (n < 0) {
        return APR_EGENERAL;
    }
    *out = apr_pmemdup(p, data, (apr_size_t)n);
    *len = (apr_size_t)n;
    return APR_SUCCESS;
}

/* The single value of a signed attribute, or NULL. */
static ASN1_TYPE *signed_attr(CMS_SignerInfo *si, int nid)
{
    int idx = CMS_signed_get_attr_by_NID(si, nid, -1);
    X509_ATTRIBUTE *attr;

    if (idx < 0 || !(attr = CMS_signed_get_attr(si, idx)) || X509_ATTRIBUTE_count(attr) != 1) {
        return NULL;
    }
    return X509_ATTRIBUTE_get0_type(attr, 0);
}

/* transactionID and messageType are PrintableStrings; some clients use other string
 * types, which are accepted as long as the value is printable ASCII. */
static const char *printable_attr(apr_pool_t *p, CMS_SignerInfo *si, int nid, apr_size_t max)
{
    ASN1_TYPE *t = signed_attr(si, nid);
    const unsigned char *s;
    int i, n;

    if (!t || (t->type != V_ASN1_PRINTABLESTRING && t->type != V_ASN1_UTF8STRING
               && t->type != V_ASN1_IA5STRING && t->type != V_ASN1_OCTET_STRING)) {
        return NULL;
    }
    s = ASN1_STRING_get0_data(t->value.asn1_string);
    n = ASN1_STRING_length(t->value.asn1_string);
    if (n <= 0 || (apr_size_t)n > max) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if (s[i] < 0x20 || s[i] > 0x7e) {
            return NULL;
        }
    }
    return apr_pstrmemdup(p, (const char *)s, (apr_size_t)n);
}

/* messageType, pkiStatus and failInfo are decimal numbers (RFC 8894 3.2.1) and nothing
 * else: atoi() would read "19x", " 19" or "+19" as a PKCSReq.  The text comes from
 * printable_attr with at most 4 characters; -1 for anything that is not all digits. */
static int decimal_value(const char *text)
{
    int value = 0, i;

    if (!text || !text[0]) {
        return -1;
    }
    for (i = 0; text[i]; i++) {
        if (text[i] < '0' || text[i] > '9') {
            return -1;
        }
        value = value * 10 + (text[i] - '0');     /* at most 4 digits: no overflow */
    }
    return value;
}

static int digest_allowed(int nid, int legacy)
{
    switch (nid) {
    case NID_sha1: case NID_sha224: case NID_sha256: case NID_sha384: case NID_sha512:
        return 1;
    case NID_md5:
        return legacy;
    default:
        return 0;
    }
}

static int cipher_allowed(int nid, int legacy)
{
    switch (nid) {
    case NID_aes_128_cbc: case NID_aes_192_cbc: case NID_aes_256_cbc: case NID_des_ede3_cbc:
        return 1;
    case NID_des_cbc:
        return legacy;
    default:
        return 0;
    }
}

/* The content-encryption algorithm of an EnvelopedData.  OpenSSL's CMS API has no getter
 * for it, while the PKCS#7 structures are public, so the envelope is read once more. */
static int envelope_cipher_nid(const unsigned char *der, apr_size_t len)
{
    const unsigned char *q = der;
    PKCS7 *p7 = d2i_PKCS7(NULL, &q, (long)len);
    int nid = NID_undef;

    if (p7 && PKCS7_type_is_enveloped(p7) && p7->d.enveloped && p7->d.enveloped->enc_data
        && p7->d.enveloped->enc_data->algorithm) {
        nid = OBJ_obj2nid(p7->d.enveloped->enc_data->algorithm->algorithm);
    }
    PKCS7_free(p7);
    return nid;
}

static apr_status_t refuse(scep_pkimsg_t *msg, int fail_info, const char *why)
{
    msg->fail_info = fail_info;
    msg->why = why;
    return APR_SUCCESS;
}

/* Whether a recipient of the envelope names `cert`: only then did the key really try. */
static int names_recipient(CMS_ContentInfo *env, X509 *cert)
{
    STACK_OF(CMS_RecipientInfo) *ris = CMS_get0_RecipientInfos(env);
    int i;

    for (i = 0; ris && i < sk_CMS_RecipientInfo_num(ris); i++) {
        CMS_RecipientInfo *ri = sk_CMS_RecipientInfo_value(ris, i);

        if (CMS_RecipientInfo_type(ri) == CMS_RECIPINFO_TRANS
            && CMS_RecipientInfo_ktri_cert_cmp(ri, cert) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Decrypts with one key pair; on failure leaves the OpenSSL error queue clean, and adds
 * `which` to *tried when the envelope was addressed to this pair. */
static int try_decrypt(CMS_ContentInfo *env, EVP_PKEY *key, X509 *cert, BIO *out,
                       int which, int *tried)
{
    if (!key || !cert || EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
        return 0;
    }
    if (CMS_decrypt(env, key, cert, NULL, out, CMS_BINARY) == 1) {
        return 1;
    }
    ERR_clear_error();
    if (names_recipient(env, cert)) {
        *tried |= which;
    }
    return 0;
}

apr_status_t scep_msg_parse_request(apr_pool_t *p, const scep_msg_keys_t *keys, int legacy,
                                    const unsigned char *der, apr_size_t len,
                                    scep_pkimsg_t **out, const char **why)
{
    scep_pkimsg_t *msg = apr_pcalloc(p, sizeof(*msg));
    CMS_ContentInfo *cms;
    STACK_OF(CMS_SignerInfo) *sis;
    CMS_SignerInfo *si;
    X509_ALGOR *digest_alg;
    EVP_PKEY *signer_key;
    STACK_OF(X509) *signers;
    ASN1_TYPE *nonce;
    const char *type_text, *problem;
    BIO *content_bio;
    unsigned char *envelope;
    apr_size_t envelope_len;
    int i;

    *out = NULL;
    msg->fail_info = SCEP_FAIL_NONE;
    ERR_clear_error();

    if (!(cms = pool_d2i_cms(p, der, len, 1))) {
        *why = "not a CMS message";
        ERR_clear_error();
        return APR_EINVAL;
    }
    if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
        *why = "not a CMS SignedData";
        return APR_EINVAL;
    }
    sis = CMS_get0_SignerInfos(cms);
    if (!sis || sk_CMS_SignerInfo_num(sis) != 1) {
        *why = "the SignedData must have exactly one signer";
        return APR_EINVAL;
    }
    si = sk_CMS_SignerInfo_value(sis, 0);

    msg->transaction_id = printable_attr(p, si, nid_transaction_id, SCEP_TRANSACTION_ID_MAX);
    if (!msg->transaction_id) {
        *why = "no usable transactionID attribute";
        return APR_EINVAL;
    }
    nonce = signed_attr(si, nid_sender_nonce);
    if (!nonce || nonce->type != V_ASN1_OCTET_STRING
        || ASN1_STRING_length(nonce->value.octet_string) < 1
        || ASN1_STRING_length(nonce->value.octet_string) > SCEP_NONCE_MAX) {
        *why = "no usable senderNonce attribute";
        return APR_EINVAL;
    }
    msg->sender_nonce_len = (apr_size_t)ASN1_STRING_length(nonce->value.octet_string);
    memcpy(msg->sender_nonce, ASN1_STRING_get0_data(nonce->value.octet_string),
           msg->sender_nonce_len);
    *out = msg;

    type_text = printable_attr(p, si, nid_message_type, 4);
    msg->message_type = decimal_value(type_text);
    if (msg->message_type <= 0) {
        return refuse(msg, SCEP_FAIL_BAD_REQUEST, "no usable messageType attribute");
    }

    /* The signer certificate travels inside the message (RFC 8894 3.2.2: self-signed for
     * a first enrollment, the current certificate for a renewal). */
    {
        STACK_OF(X509) *inside = CMS_get1_certs(cms);

        for (i = 0; inside && i < sk_X509_num(inside); i++) {
            X509 *candidate = sk_X509_value(inside, i);

            if (CMS_SignerInfo_cert_cmp(si, candidate) == 0) {
                X509_up_ref(candidate);
                msg->signer_as_sent = candidate;
                scep_util_own_X509(p, candidate);
                break;
            }
        }
        sk_X509_pop_free(inside, X509_free);
    }
    ERR_clear_error();
    if (!msg->signer_as_sent) {
        return refuse(msg, SCEP_FAIL_BAD_CERT_ID,
                      "the signer's certificate is not included in the message");
    }

    CMS_SignerInfo_get0_algs(si, NULL, NULL, &digest_alg, NULL);
    msg->digest_nid = digest_alg ? OBJ_obj2nid(digest_alg->algorithm) : NID_undef;
    if (!digest_allowed(msg->digest_nid, legacy)) {
        refuse(msg, SCEP_FAIL_BAD_ALG,
                      apr_psprintf(p, "digest algorithm %s is not accepted%s",
                                   OBJ_nid2sn(msg->digest_nid),
                                   msg->digest_nid == NID_md5
                                   ? " (MD5 needs ScepLegacyAlgorithms On)" : ""));
        msg->digest_nid = NID_sha256;   /* the FAILURE itself is signed with SHA-256 */
        return APR_SUCCESS;
    }
    /* The message was parsed without its keys (scep_keyless.h).  A key that does not
     * decode is refused here; before that was checked, such a certificate in an
     * unauthenticated request crashed the httpd child (found by tests/fuzz, fuzz_pkimsg). */
    signer_key = scep_keyless_spki_public_key(X509_get_X509_PUBKEY(msg->signer_as_sent));
    scep_util_own_EVP_PKEY(p, signer_key);
    if (!signer_key || EVP_PKEY_get_base_id(signer_key) != EVP_PKEY_RSA) {
        /* The reply is enveloped to this key by key transport: it must be RSA. */
        return refuse(msg, SCEP_FAIL_BAD_ALG, "the signer's key is not RSA");
    }
    /* Before CMS_verify does any arithmetic with the key: with e = 1 anyone could write
     * the signature, and a 3071-bit e cost some 5 requests' CPU (issue 15, points 10
     * and 12).  No signature can be checked with such a key: badMessageCheck, as for
     * one that does not verify. */
    if ((problem = scep_keyless_rsa_exponent_problem(
             X509_get_X509_PUBKEY(msg->signer_as_sent))) != NULL) {
        return refuse(msg, SCEP_FAIL_BAD_MESSAGE_CHECK,
                      apr_pstrcat(p, "the signer certificate's key is unusable: ", problem,
                                  NULL));
    }
    /* A certificate OpenSSL decodes but cannot encode again (found by fuzz_pkimsg)
     * cannot be copied with its key: the device's mistake, not a server failure. */
    if (!(msg->signer = signer_with_key(p, msg->signer_as_sent, signer_key))) {
        return refuse(msg, SCEP_FAIL_BAD_REQUEST,
                      "the signer certificate cannot be encoded again as it was sent");
    }
    if (!(signers = sk_X509_new_null())) {
        *why = "out of memory";
        return APR_ENOMEM;
    }
    scep_util_own_X509_list(p, signers);
    if (!sk_X509_push(signers, msg->signer)) {
        *why = "out of memory";
        return APR_ENOMEM;
    }

    content_bio = pool_mem_bio(p);
    if (!content_bio
        || CMS_verify(cms, signers, NULL, NULL, content_bio,
                      CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) != 1) {
        const char *detail = scep_util_openssl_errors(p);

        return refuse(msg, SCEP_FAIL_BAD_MESSAGE_CHECK,
                      apr_pstrcat(p, "the signature does not verify: ", detail, NULL));
    }
    if (msg->message_type != SCEP_MSG_PKCSREQ && msg->message_type != SCEP_MSG_RENEWALREQ
        && msg->message_type != SCEP_MSG_CERTPOLL && msg->message_type != SCEP_MSG_GETCERT
        && msg->message_type != SCEP_MSG_GETCRL) {
        return refuse(msg, SCEP_FAIL_BAD_REQUEST,
                      apr_psprintf(p, "messageType %d is not a request", msg->message_type));
    }

    if (bio_to_pool(p, content_bio, &envelope, &envelope_len) != APR_SUCCESS
        || envelope_len == 0) {
        return refuse(msg, SCEP_FAIL_BAD_REQUEST, "the SignedData carries no envelope");
    }
    return scep_msg_open_envelope(p, keys, legacy, envelope, envelope_len, msg);
}

apr_status_t scep_msg_open_envelope(apr_pool_t *p, const scep_msg_keys_t *keys, int legacy,
                                    const unsigned char *envelope, apr_size_t envelope_len,
                                    scep_pkimsg_t *msg)
{
    CMS_ContentInfo *env;
    BIO *plain_bio;
    int tried = 0;

    if (!(env = pool_d2i_cms(p, envelope, envelope_len, 0))
        || OBJ_obj2nid(CMS_get0_type(env)) != NID_pkcs7_enveloped) {
        ERR_clear_error();
        return refuse(msg, SCEP_FAIL_BAD_REQUEST, "the content is not a CMS EnvelopedData");
    }
    msg->cipher_nid = envelope_cipher_nid(envelope, envelope_len);
    if (!cipher_allowed(msg->cipher_nid, legacy)) {
        return refuse(msg, SCEP_FAIL_BAD_ALG,
                      apr_psprintf(p, "content encryption %s is not accepted%s",
                                   msg->cipher_nid == NID_undef ? "(unknown)"
                                   : OBJ_nid2sn(msg->cipher_nid),
                                   msg->cipher_nid == NID_des_cbc
                                   ? " (single DES needs ScepLegacyAlgorithms On)" : ""));
    }

    /* Clients encrypt to the certificate they picked from GetCACert: normally the RA's,
     * but some pick the CA's, so both are tried. */
    plain_bio = pool_mem_bio(p);
    if (!plain_bio
        || (!try_decrypt(env, keys->ra_key, keys->ra_cert, plain_bio,
                         SCEP_MSG_RECIPIENT_RA, &tried)
            && !try_decrypt(env, keys->ca_key_signs_only ? NULL : keys->ca_key,
                            keys->ca_cert, plain_bio, SCEP_MSG_RECIPIENT_CA, &tried))) {
        msg->not_opened = tried;
        return refuse(msg, SCEP_FAIL_BAD_MESSAGE_CHECK,
                      "the envelope is not encrypted to this server's RA or CA certificate");
    }
    if (bio_to_pool(p, plain_bio, &msg->content, &msg->content_len) != APR_SUCCESS
        || msg->content_len == 0) {
        return refuse(msg, SCEP_FAIL_BAD_REQUEST, "the envelope is empty");
    }
    return APR_SUCCESS;
}

/* A DER header: the tag, then the length in as few octets as it takes.  Returns its size;
 * with out NULL only measures. */
static apr_size_t der_header(unsigned char *out, unsigned char tag, apr_size_t len)
{
    apr_size_t octets = 0, rest, i;

    if (len < 0x80) {
        if (out) {
            out[0] = tag;
            out[1] = (unsigned char)len;
        }
        return 2;
    }
    for (rest = len; rest; rest >>= 8) {
        octets++;
    }
    if (out) {
        out[0] = tag;
        out[1] = (unsigned char)(0x80 | octets);
        for (i = 0; i < octets; i++) {
            out[2 + i] = (unsigned char)(len >> (8 * (octets - 1 - i)));
        }
    }
    return 2 + octets;
}

apr_status_t scep_msg_degenerate(apr_pool_t *p, const unsigned char *const *certs,
                                 const apr_size_t *cert_lens, int count,
                                 const unsigned char *crl, apr_size_t crl_len,
                                 unsigned char **der, apr_size_t *len)
{
    /* ContentInfo signedData; SignedData version 1, no digest algorithms, and an
     * encapsulated content of type data with an empty eContent, which is what OpenSSL's
     * PKCS#7 writer produced for every earlier release of mod_scep */
    static const unsigned char signed_data_oid[] = {
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02
    };
    static const unsigned char prologue[] = {
        0x02, 0x01, 0x01, 0x31, 0x00,
        0x30, 0x0f, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
        0xa0, 0x02, 0x04, 0x00
    };
    static const unsigned char no_signers[] = { 0x31, 0x00 };
    apr_size_t certs_len = 0, signed_len, explicit_len, info_len, total;
    unsigned char *out, *w;
    int i;

    /* every sum below stays far from overflow once the parts are under INT_MAX */
    if (count < 0 || (crl && (crl_len == 0 || crl_len > INT_MAX))) {
        return APR_EINVAL;
    }
    for (i = 0; i < count; i++) {
        if (cert_lens[i] == 0 || cert_lens[i] > INT_MAX - certs_len) {
            return APR_EINVAL;
        }
        certs_len += cert_lens[i];
    }
    signed_len = sizeof(prologue) + sizeof(no_signers)
                 + (count ? der_header(NULL, 0xa0, certs_len) + certs_len : 0)
                 + (crl ? der_header(NULL, 0xa1, crl_len) + crl_len : 0);
    explicit_len = der_header(NULL, 0x30, signed_len) + signed_len;
    info_len = sizeof(signed_data_oid) + der_header(NULL, 0xa0, explicit_len) + explicit_len;
    total = der_header(NULL, 0x30, info_len) + info_len;
    if (total > INT_MAX) {
        return APR_EINVAL;
    }
    if (!(w = out = apr_palloc(p, total))) {
        return APR_ENOMEM;
    }
    w += der_header(w, 0x30, info_len);
    memcpy(w, signed_data_oid, sizeof(signed_data_oid));
    w += sizeof(signed_data_oid);
    w += der_header(w, 0xa0, explicit_len);
    w += der_header(w, 0x30, signed_len);
    memcpy(w, prologue, sizeof(prologue));
    w += sizeof(prologue);
    if (count) {
        /* certificates [0] IMPLICIT: kept in the caller's order */
        w += der_header(w, 0xa0, certs_len);
        for (i = 0; i < count; i++) {
            memcpy(w, certs[i], cert_lens[i]);
            w += cert_lens[i];
        }
    }
    if (crl) {
        w += der_header(w, 0xa1, crl_len);
        memcpy(w, crl, crl_len);
        w += crl_len;
    }
    memcpy(w, no_signers, sizeof(no_signers));
    *der = out;
    *len = total;
    return APR_SUCCESS;
}

apr_status_t scep_msg_certs_only(apr_pool_t *p, X509 *const *certs, int count,
                                 unsigned char **der, apr_size_t *len)
{
    const unsigned char **ders = apr_pcalloc(p, sizeof(*ders) * (apr_size_t)(count + 1));
    apr_size_t *lens = apr_pcalloc(p, sizeof(*lens) * (apr_size_t)(count + 1));
    int i;

    for (i = 0; i < count; i++) {
        unsigned char *buf = NULL;
        int n = i2d_X509(certs[i], &buf);

        if (n <= 0) {
            return APR_EGENERAL;
        }
        ders[i] = apr_pmemdup(p, buf, (apr_size_t)n);
        lens[i] = (apr_size_t)n;
        OPENSSL_free(buf);
    }
    return scep_msg_degenerate(p, ders, lens, count, NULL, 0, der, len);
}

static const char *name_oneline(apr_pool_t *p, const X509_NAME *name)
{
    char *text = X509_NAME_oneline(name, NULL, 0);
    const char *copy = apr_pstrdup(p, text ? text : "?");

    OPENSSL_free(text);
    return copy;
}

apr_status_t scep_msg_signed_certs(apr_pool_t *p, const scep_msg_keys_t *keys,
                                   X509 *const *certs, int count, unsigned char **der,
                                   apr_size_t *len)
{
    unsigned char *inner;
    apr_size_t inner_len;
    STACK_OF(X509) *stack = sk_X509_new_null();
    BIO *content = NULL, *out = pool_mem_bio(p);
    CMS_ContentInfo *cms = NULL;
    apr_status_t rv;
    int i, ok;

    /* The certificates go both into the signed content (a certificates-only SignedData,
     * as GetCACert sends) and into the certificates field, where most clients look; the
     * signer's own certificate stays out, so that every certificate there is the next
     * CA's (clients hold the signer from GetCACert). */
    if ((rv = scep_msg_certs_only(p, certs, count, &inner, &inner_len)) != APR_SUCCESS) {
        sk_X509_free(stack);
        return rv;
    }
    ok = stack && out && (content = BIO_new_mem_buf(inner, (int)inner_len)) != NULL;
    for (i = 0; ok && i < count; i++) {
        ok = sk_X509_push(stack, certs[i]) > 0;
    }
    if (ok) {
        cms = CMS_sign(keys->sign_cert, keys->sign_key, stack, content,
                       CMS_BINARY | CMS_NOSMIMECAP | CMS_NOCERTS);
        ok = cms && i2d_CMS_bio(out, cms) == 1;
    }
    CMS_ContentInfo_free(cms);
    BIO_free(content);
    sk_X509_free(stack);
    return ok ? bio_to_pool(p, out, der, len) : APR_EGENERAL;
}

apr_status_t scep_msg_issuer_and_serial(apr_pool_t *p, const scep_pkimsg_t *msg,
                                        X509_NAME **issuer, const char **serial_hex)
{
    const unsigned char *in = msg->content;
    PKCS7_ISSUER_AND_SERIAL *ias = d2i_PKCS7_ISSUER_AND_SERIAL(NULL, &in,
                                                               (long)msg->content_len);
    const char *hex = NULL;
    apr_status_t rv = APR_EINVAL;

    if (ias && in == msg->content + msg->content_len
        && (hex = scep_store_serial_hex(p, ias->serial)) != NULL && hex[0] != '-'
        && (*issuer = X509_NAME_dup(ias->issuer)) != NULL) {
        scep_util_own_X509_NAME(p, *issuer);
        *serial_hex = hex;
        rv = APR_SUCCESS;
    }
    PKCS7_ISSUER_AND_SERIAL_free(ias);
    ERR_clear_error();
    return rv;
}

/* CertPoll's messageData (RFC 8894 3.3.3): the CA's name and the requested subject. */
typedef struct scep_issuer_and_subject_st {
    X509_NAME *issuer;
    X509_NAME *subject;
} SCEP_ISSUER_AND_SUBJECT;

ASN1_SEQUENCE(SCEP_ISSUER_AND_SUBJECT) = {
    ASN1_SIMPLE(SCEP_ISSUER_AND_SUBJECT, issuer, X509_NAME),
    ASN1_SIMPLE(SCEP_ISSUER_AND_SUBJECT, subject, X509_NAME)
} static_ASN1_SEQUENCE_END(SCEP_ISSUER_AND_SUBJECT)

apr_status_t scep_msg_make_issuer_and_subject(apr_pool_t *p, const X509_NAME *issuer,
                                              const X509_NAME *subject, unsigned char **der,
                                              apr_size_t *len)
{
    SCEP_ISSUER_AND_SUBJECT ias;
    unsigned char *buf = NULL;
    int n;

    ias.issuer = (X509_NAME *)issuer;
    ias.subject = (X509_NAME *)subject;
    n = ASN1_item_i2d((ASN1_VALUE *)&ias, &buf, ASN1_ITEM_rptr(SCEP_ISSUER_AND_SUBJECT));
    if (n <= 0) {
        return APR_EGENERAL;
    }
    *der = apr_pmemdup(p, buf, (apr_size_t)n);
    *len = (apr_size_t)n;
    OPENSSL_free(buf);
    return APR_SUCCESS;
}

apr_status_t scep_msg_issuer_and_subject(apr_pool_t *p, const scep_pkimsg_t *msg,
                                         const char **issuer, const char **subject)
{
    const unsigned char *in = msg->content;
    SCEP_ISSUER_AND_SUBJECT *ias = (SCEP_ISSUER_AND_SUBJECT *)ASN1_item_d2i(
        NULL, &in, (long)msg->content_len, ASN1_ITEM_rptr(SCEP_ISSUER_AND_SUBJECT));
    apr_status_t rv = APR_EINVAL;

    if (ias && in == msg->content + msg->content_len) {
        *issuer = name_oneline(p, ias->issuer);
        *subject = name_oneline(p, ias->subject);
        rv = APR_SUCCESS;
    }
    ASN1_item_free((ASN1_VALUE *)ias, ASN1_ITEM_rptr(SCEP_ISSUER_AND_SUBJECT));
    ERR_clear_error();
    return rv;
}

static int add_string_attr(CMS_SignerInfo *si, int nid, int type, const void *data, int len)
{
    return CMS_signed_add1_attr_by_NID(si, nid, type, data, len) == 1;
}

/* The degenerate PKCS#7 answer, enveloped to the requester with the cipher the request
 * used (certmonger cannot read single DES under OpenSSL 3, so no cipher of our own
 * choosing is ever substituted). */
static apr_status_t envelope_payload(const scep_pkimsg_t *req, const unsigned char *inner,
                                     apr_size_t inner_len, BIO *out)
{
    STACK_OF(X509) *recipients = sk_X509_new_null();
    const EVP_CIPHER *cipher = EVP_get_cipherbynid(req->cipher_nid);
    CMS_ContentInfo *env = NULL;
    BIO *in = NULL;
    apr_status_t rv = APR_EGENERAL;

    if (!recipients || !cipher || !sk_X509_push(recipients, req->signer)) {
        goto done;
    }
    if (!(in = BIO_new_mem_buf(inner, (int)inner_len))) {
        goto done;
    }
    env = CMS_encrypt(recipients, in, cipher, CMS_BINARY);
    if (env && i2d_CMS_bio(out, env) == 1) {
        rv = APR_SUCCESS;
    }
done:
    CMS_ContentInfo_free(env);
    BIO_free(in);
    sk_X509_free(recipients);
    return rv;
}

apr_status_t scep_msg_certrep(apr_pool_t *p, const scep_msg_keys_t *keys,
                              const scep_pkimsg_t *req, int status, int fail_info,
                              const char *fail_text,
                              const unsigned char *payload, apr_size_t payload_len,
                              unsigned char **der, apr_size_t *len)
{
    const EVP_MD *md = EVP_get_digestbynid(req->digest_nid ? req->digest_nid : NID_sha256);
    CMS_ContentInfo *cms = NULL;
    CMS_SignerInfo *si;
    BIO *content = pool_mem_bio(p), *out = pool_mem_bio(p);
    unsigned char nonce[16];
    char status_text[4], fail_text_num[4];

    if (!content || !out) {
        return APR_ENOMEM;
    }
    if (!md) {
        md = EVP_sha256();
    }
    if (status == SCEP_STATUS_SUCCESS) {
        apr_status_t rv;

        if (!payload || !payload_len) {
            return APR_EINVAL;   /* SUCCESS with an empty envelope breaks clients */
        }
        if ((rv = envelope_payload(req, payload, payload_len, content)) != APR_SUCCESS) {
            return rv;
        }
    }
    if (RAND_bytes(nonce, sizeof(nonce)) != 1) {
        return APR_EGENERAL;
    }
    apr_snprintf(status_text, sizeof(status_text), "%d", status);

    cms = CMS_sign(NULL, NULL, NULL, NULL, CMS_PARTIAL | CMS_BINARY);
    if (!cms) {
        return APR_ENOMEM;
    }
    scep_util_own_CMS_ContentInfo(p, cms);
    /* No SMIMECapabilities: SCEP clients do not expect it; signingTime, contentType and
     * messageDigest are added by CMS_final, and the SET OF is DER-sorted on output. */
    si = CMS_add1_signer(cms, keys->sign_cert, keys->sign_key, md, CMS_BINARY | CMS_NOSMIMECAP);
    if (!si
        || !add_string_attr(si, nid_transaction_id, V_ASN1_PRINTABLESTRING,
                            req->transaction_id, (int)strlen(req->transaction_id))
        || !add_string_attr(si, nid_message_type, V_ASN1_PRINTABLESTRING, "3", 1)
        || !add_string_attr(si, nid_pki_status, V_ASN1_PRINTABLESTRING,
                            status_text, (int)strlen(status_text))
        || !add_string_attr(si, nid_sender_nonce, V_ASN1_OCTET_STRING, nonce, sizeof(nonce))
        || !add_string_attr(si, nid_recipient_nonce, V_ASN1_OCTET_STRING,
                            req->sender_nonce, (int)req->sender_nonce_len)) {
        return APR_EGENERAL;
    }
    if (status == SCEP_STATUS_FAILURE) {
        apr_snprintf(fail_text_num, sizeof(fail_text_num), "%d", fail_info);
        if (!add_string_attr(si, nid_fail_info, V_ASN1_PRINTABLESTRING,
                             fail_text_num, (int)strlen(fail_text_num))
            || (fail_text && !add_string_attr(si, nid_fail_info_text, V_ASN1_UTF8STRING,
                                              fail_text, (int)strlen(fail_text)))) {
            return APR_EGENERAL;
        }
    }
    if (CMS_final(cms, content, NULL, CMS_BINARY) != 1 || i2d_CMS_bio(out, cms) != 1) {
        return APR_EGENERAL;
    }
    return bio_to_pool(p, out, der, len);
}

/* ---- the client side ----------------------------------------------------------------- */

apr_status_t scep_msg_build_request(apr_pool_t *p, X509 *signer, EVP_PKEY *key,
                                    X509 *recipient, const EVP_CIPHER *cipher,
                                    const EVP_MD *md, int message_type,
                                    const char *transaction_id,
                                    const unsigned char *content, apr_size_t content_len,
                                    unsigned char nonce[16], unsigned char **der,
                                    apr_size_t *len)
{
    STACK_OF(X509) *recipients = sk_X509_new_null();
    CMS_ContentInfo *env = NULL, *cms = NULL;
    CMS_SignerInfo *si;
    BIO *in = NULL, *enveloped = pool_mem_bio(p), *out = pool_mem_bio(p);
    char type_text[4];
    apr_status_t rv = APR_EGENERAL;

    if (!recipients || !enveloped || !out || !sk_X509_push(recipients, recipient)
        || RAND_bytes(nonce, 16) != 1
        || !(in = BIO_new_mem_buf(content, (int)content_len))
        || !(env = CMS_encrypt(recipients, in, cipher, CMS_BINARY))
        || i2d_CMS_bio(enveloped, env) != 1) {
        goto done;
    }
    apr_snprintf(type_text, sizeof(type_text), "%d", message_type);
    if (!(cms = CMS_sign(NULL, NULL, NULL, NULL, CMS_PARTIAL | CMS_BINARY))
        || !(si = CMS_add1_signer(cms, signer, key, md, CMS_BINARY | CMS_NOSMIMECAP))
        || !add_string_attr(si, nid_transaction_id, V_ASN1_PRINTABLESTRING, transaction_id,
                            (int)strlen(transaction_id))
        || !add_string_attr(si, nid_message_type, V_ASN1_PRINTABLESTRING, type_text,
                            (int)strlen(type_text))
        || !add_string_attr(si, nid_sender_nonce, V_ASN1_OCTET_STRING, nonce, 16)
        || CMS_final(cms, enveloped, NULL, CMS_BINARY) != 1
        || i2d_CMS_bio(out, cms) != 1) {
        goto done;
    }
    rv = bio_to_pool(p, out, der, len);
done:
    CMS_ContentInfo_free(cms);
    CMS_ContentInfo_free(env);
    BIO_free(in);
    sk_X509_free(recipients);
    return rv;
}

apr_status_t scep_msg_read_reply(apr_pool_t *p, const unsigned char *der, apr_size_t len,
                                 STACK_OF(X509) *signers, X509 *cert, EVP_PKEY *key,
                                 const char *transaction_id, const unsigned char nonce[16],
                                 scep_reply_info_t *info, const char **why)
{
    CMS_ContentInfo *cms, *env, *inner;
    STACK_OF(CMS_SignerInfo) *sis;
    CMS_SignerInfo *si;
    ASN1_TYPE *rnonce;
    BIO *content = pool_mem_bio(p), *plain = pool_mem_bio(p);
    unsigned char *envelope, *certs_der;
    apr_size_t envelope_len, certs_len;
    const char *text;
    int tried = 0;

    memset(info, 0, sizeof(*info));
    info->fail_info = SCEP_FAIL_NONE;
    if (!content || !plain || !(cms = pool_d2i_cms(p, der, len, 0))
        || OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed
        || !(sis = CMS_get0_SignerInfos(cms)) || sk_CMS_SignerInfo_num(sis) != 1) {
        *why = "the answer is not a SignedData with one signer";
        ERR_clear_error();
        return APR_EINVAL;
    }
    si = sk_CMS_SignerInfo_value(sis, 0);
    /* The upstream's certificates come from its GetCACert, never from the answer. */
    if (CMS_verify(cms, signers, NULL, NULL, content,
                   CMS_NO_SIGNER_CERT_VERIFY | CMS_NOINTERN | CMS_BINARY) != 1) {
        *why = apr_pstrcat(p, "the answer's signature does not verify with the upstream's "
                           "certificates: ", scep_util_openssl_errors(p), NULL);
        return APR_EINVAL;
    }
    text = printable_attr(p, si, nid_transaction_id, SCEP_TRANSACTION_ID_MAX);
    if (!text || strcmp(text, transaction_id) != 0) {
        *why = "the answer is for another transactionID";
        return APR_EINVAL;
    }
    rnonce = signed_attr(si, nid_recipient_nonce);
    if (!rnonce || rnonce->type != V_ASN1_OCTET_STRING
        || ASN1_STRING_length(rnonce->value.octet_string) != 16
        || memcmp(ASN1_STRING_get0_data(rnonce->value.octet_string), nonce, 16) != 0) {
        *why = "the answer's recipientNonce is not our senderNonce";
        return APR_EINVAL;
    }
    text = printable_attr(p, si, nid_pki_status, 4);
    info->status = decimal_value(text);
    if (!text || (info->status != SCEP_STATUS_SUCCESS && info->status != SCEP_STATUS_FAILURE
                  && info->status != SCEP_STATUS_PENDING)) {
        *why = "the answer has no usable pkiStatus";
        return APR_EINVAL;
    }
    if (info->status == SCEP_STATUS_FAILURE) {
        text = printable_attr(p, si, nid_fail_info, 4);
        info->fail_info = text ? decimal_value(text) : SCEP_FAIL_BAD_REQUEST;
        if (info->fail_info < SCEP_FAIL_BAD_ALG || info->fail_info > SCEP_FAIL_BAD_CERT_ID) {
            info->fail_info = SCEP_FAIL_BAD_REQUEST;
        }
        info->fail_text = printable_attr(p, si, nid_fail_info_text, 512);
        return APR_SUCCESS;
    }
    if (info->status == SCEP_STATUS_PENDING) {
        return APR_SUCCESS;
    }
    if (bio_to_pool(p, content, &envelope, &envelope_len) != APR_SUCCESS || !envelope_len
        || !(env = pool_d2i_cms(p, envelope, envelope_len, 0))
        || OBJ_obj2nid(CMS_get0_type(env)) != NID_pkcs7_enveloped
        || !try_decrypt(env, key, cert, plain, SCEP_MSG_RECIPIENT_RA, &tried)
        || bio_to_pool(p, plain, &certs_der, &certs_len) != APR_SUCCESS
        || !(inner = pool_d2i_cms(p, certs_der, certs_len, 0))
        || OBJ_obj2nid(CMS_get0_type(inner)) != NID_pkcs7_signed) {
        *why = "the SUCCESS answer holds no envelope we can open with our RA key";
        ERR_clear_error();
        return APR_EINVAL;
    }
    info->certs = CMS_get1_certs(inner);
    if (!info->certs || sk_X509_num(info->certs) == 0) {
        sk_X509_pop_free(info->certs, X509_free);
        info->certs = NULL;
        *why = "the SUCCESS answer's envelope holds no certificate";
        return APR_EINVAL;
    }
    scep_util_own_X509_stack(p, info->certs);
    return APR_SUCCESS;
}

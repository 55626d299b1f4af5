/* Reading a PKCS#10 certification request into plain fields.
 *
 * challengePassword is a DirectoryString (PrintableString, UTF8String, …, and BMPString
 * from some Windows stacks): it is taken as the bytes of its UTF-8 form.  Cisco IOS puts
 * its identity in unstructuredName/unstructuredAddress, as request attributes or inside
 * the subject, and sends no SAN; both places are read. */
#include <limits.h>
#include <string.h>

#include <apr_strings.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "scep_csr.h"
#include "scep_keyless.h"

static apr_status_t cleanup_req(void *data)
{
    X509_REQ_free(data);
    return APR_SUCCESS;
}

static apr_status_t cleanup_key(void *data)
{
    EVP_PKEY_free(data);
    return APR_SUCCESS;
}

static apr_status_t cleanup_exts(void *data)
{
    sk_X509_EXTENSION_pop_free(data, X509_EXTENSION_free);
    return APR_SUCCESS;
}

/* UTF-8 text of a string value, or NULL if it is not a string or too long. */
static const char *string_value(apr_pool_t *p, const ASN1_STRING *s, apr_size_t max,
                                apr_size_t *len_out)
{
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, s);
    const char *copy;

    if (n < 0) {
        return NULL;
    }
    if ((apr_size_t)n > max || memchr(utf8, '\0', (apr_size_t)n)) {
        OPENSSL_free(utf8);
        return NULL;
    }
    copy = apr_pstrmemdup(p, (const char *)utf8, (apr_size_t)n);
    if (len_out) {
        *len_out = (apr_size_t)n;
    }
    OPENSSL_cleanse(utf8, (apr_size_t)n);
    OPENSSL_free(utf8);
    return copy;
}

/* The value of a single-valued request attribute, or NULL. */
static const char *attribute_text(apr_pool_t *p, X509_REQ *req, int nid, apr_size_t max,
                                  apr_size_t *len_out, int *malformed)
{
    int idx = X509_REQ_get_attr_by_NID(req, nid, -1);
    X509_ATTRIBUTE *attr;
    ASN1_TYPE *t;
    const char *text;

    if (idx < 0) {
        return NULL;
    }
    attr = X509_REQ_get_attr(req, idx);
    if (!attr || X509_ATTRIBUTE_count(attr) < 1 || !(t = X509_ATTRIBUTE_get0_type(attr, 0))
        || t->type == V_ASN1_BOOLEAN || t->type == V_ASN1_NULL || t->type == V_ASN1_OBJECT
        || t->type == V_ASN1_SEQUENCE || t->type == V_ASN1_SET
        || !(text = string_value(p, t->value.asn1_string, max, len_out))) {
        *malformed = 1;
        return NULL;
    }
    return text;
}

static const char *subject_entry(apr_pool_t *p, const X509_NAME *name, int nid)
{
    int idx = X509_NAME_get_index_by_NID(name, nid, -1);
    const X509_NAME_ENTRY *entry;

    if (idx < 0 || !(entry = X509_NAME_get_entry(name, idx))) {
        return NULL;
    }
    return string_value(p, X509_NAME_ENTRY_get_data(entry), 1024, NULL);
}

static const char *ip_text(apr_pool_t *p, const ASN1_OCTET_STRING *ip)
{
    const unsigned char *b = ASN1_STRING_get0_data(ip);
    int n = ASN1_STRING_length(ip);

    if (n == 4) {
        return apr_psprintf(p, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
    }
    if (n == 16) {
        char *out = apr_palloc(p, 40);
        int i;

        for (i = 0; i < 8; i++) {
            apr_snprintf(out + i * 5, 6, "%02x%02x%s", b[2 * i], b[2 * i + 1], i < 7 ? ":" : "");
        }
        return out;
    }
    return NULL;
}

static apr_status_t read_san(apr_pool_t *p, scep_csr_t *csr, const char **why)
{
    int idx = X509v3_get_ext_by_NID(csr->extensions, NID_subject_alt_name, -1);
    GENERAL_NAMES *names;
    int i;

    if (idx < 0) {
        return APR_SUCCESS;
    }
    csr->san = X509v3_get_ext(csr->extensions, idx);
    names = X509V3_EXT_d2i((X509_EXTENSION *)csr->san);
    if (!names) {
        *why = "the requested subjectAltName extension is malformed";
        return APR_EINVAL;
    }
    if (sk_GENERAL_NAME_num(names) > SCEP_CSR_SAN_MAX) {
        *why = apr_psprintf(p, "the requested subjectAltName has %d names, more than %d",
                            sk_GENERAL_NAME_num(names), SCEP_CSR_SAN_MAX);
        GENERAL_NAMES_free(names);
        return APR_EINVAL;
    }
    for (i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        const char *text;

        if (gn->type == GEN_DNS
            && (text = string_value(p, gn->d.dNSName, 253, NULL)) != NULL) {
            APR_ARRAY_PUSH(csr->dns_names, const char *) = text;
        }
        else if (gn->type == GEN_IPADD && (text = ip_text(p, gn->d.iPAddress)) != NULL) {
            APR_ARRAY_PUSH(csr->ip_addresses, const char *) = text;
        }
    }
    GENERAL_NAMES_free(names);
    return APR_SUCCESS;
}

apr_status_t scep_csr_parse(apr_pool_t *p, const unsigned char *der, apr_size_t len,
                            scep_csr_t **out, const char **why)
{
    scep_csr_t *csr = apr_pcalloc(p, sizeof(*csr));

    csr->der = der;
    csr->der_len = len;
    const unsigned char *q = der;
    const X509_NAME *subject;
    BIO *mem;
    int malformed = 0, subject_len;

    *out = NULL;
    csr->dns_names = apr_array_make(p, 2, sizeof(const char *));
    csr->ip_addresses = apr_array_make(p, 1, sizeof(const char *));

    if (len > LONG_MAX
        || !(csr->req = scep_d2i_keyless(ASN1_ITEM_rptr(X509_REQ), &q, (long)len))) {
        ERR_clear_error();
        *why = "the messageData is not a PKCS#10 request";
        return APR_EINVAL;
    }
    apr_pool_cleanup_register(p, csr->req, cleanup_req, apr_pool_cleanup_null);
    if (!(csr->public_key = scep_spki_public_key(X509_REQ_get_X509_PUBKEY(csr->req)))) {
        *why = "the PKCS#10 public key cannot be read";
        return APR_EINVAL;
    }
    apr_pool_cleanup_register(p, csr->public_key, cleanup_key, apr_pool_cleanup_null);
    csr->key_bits = EVP_PKEY_get_bits(csr->public_key);
    csr->key_is_rsa = EVP_PKEY_get_base_id(csr->public_key) == EVP_PKEY_RSA;
    subject = X509_REQ_get_subject_name(csr->req);
    if ((subject_len = i2d_X509_NAME(subject, NULL)) > SCEP_CSR_SUBJECT_MAX) {
        ERR_clear_error();
        *why = apr_psprintf(p, "the subject is %d bytes, more than %d", subject_len,
                            SCEP_CSR_SUBJECT_MAX);
        return APR_EINVAL;
    }

    csr->extensions = X509_REQ_get_extensions(csr->req);
    if (csr->extensions) {
        apr_pool_cleanup_register(p, csr->extensions, cleanup_exts, apr_pool_cleanup_null);
    }
    else if (X509_REQ_get_attr_by_NID(csr->req, NID_ext_req, -1) >= 0) {
        ERR_clear_error();
        *why = "the PKCS#10 extensionRequest attribute is malformed";
        return APR_EINVAL;
    }
    if (read_san(p, csr, why) != APR_SUCCESS) {
        return APR_EINVAL;
    }

    csr->challenge = attribute_text(p, csr->req, NID_pkcs9_challengePassword,
                                    SCEP_CHALLENGE_MAX, &csr->challenge_len, &malformed);
    csr->common_name = subject_entry(p, subject, NID_commonName);
    csr->serial_number = subject_entry(p, subject, NID_serialNumber);
    csr->unstructured_name = attribute_text(p, csr->req, NID_pkcs9_unstructuredName, 1024,
                                            NULL, &malformed);
    if (!csr->unstructured_name) {
        csr->unstructured_name = subject_entry(p, subject, NID_pkcs9_unstructuredName);
    }
    csr->unstructured_address = attribute_text(p, csr->req, NID_pkcs9_unstructuredAddress,
                                               64, NULL, &malformed);
    if (!csr->unstructured_address) {
        csr->unstructured_address = subject_entry(p, subject,
                                                  NID_pkcs9_unstructuredAddress);
    }
    if (malformed) {
        ERR_clear_error();
        *why = "a PKCS#10 attribute (challengePassword, unstructuredName or "
               "unstructuredAddress) is malformed";
        return APR_EINVAL;
    }

    if ((mem = BIO_new(BIO_s_mem())) != NULL) {
        char *text;
        long n;

        X509_NAME_print_ex(mem, subject, 0, XN_FLAG_RFC2253);
        n = BIO_get_mem_data(mem, &text);
        csr->subject = apr_pstrmemdup(p, text, n > 0 ? (apr_size_t)n : 0);
        BIO_free(mem);
    }
    else {
        csr->subject = "";
    }
    ERR_clear_error();
    *out = csr;
    return APR_SUCCESS;
}

apr_status_t scep_csr_verify(const scep_csr_t *csr, const char **why)
{
    if (X509_REQ_verify(csr->req, csr->public_key) != 1) {
        ERR_clear_error();
        *why = "the PKCS#10 self-signature does not verify";
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

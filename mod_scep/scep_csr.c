/* SPDX-License-Identifier: Apache-2.0 */
/* Reading a PKCS#10 certification request into plain fields.
 *
 * challengePassword is a DirectoryString (PrintableString, UTF8String, …, and BMPString
 * from some Windows stacks): it is taken as the bytes of its UTF-8 form.  Cisco IOS puts
 * its identity in unstructuredName/unstructuredAddress, as request attributes or inside
 * the subject, and sends no SAN; both places are read.
 *
 * The complete view (every subject attribute, SAN, extension and attribute) costs one
 * walk over structures OpenSSL has already decoded, plus a small decode of the few
 * extension kinds a gateway may pass on: no second parse of the request. */
#include <limits.h>
#include <string.h>

#include <apr_strings.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "scep_csr.h"
#include "scep_keyless.h"
#include "scep_util_own.h"

/* Whether a value of an ASCII-only string type holds a byte beyond ASCII, which OpenSSL
 * would read as Latin-1: the text judged would then differ from the bytes a relying
 * party reads (an rfc822Name "alic\xE9@…" passed as the registration alicé@…). */
static int ascii_type_holds_more(const ASN1_STRING *s)
{
    int type = ASN1_STRING_type(s), i;
    const unsigned char *bytes = ASN1_STRING_get0_data(s);

    if (type != V_ASN1_IA5STRING && type != V_ASN1_PRINTABLESTRING
        && type != V_ASN1_VISIBLESTRING && type != V_ASN1_NUMERICSTRING) {
        return 0;
    }
    for (i = 0; i < ASN1_STRING_length(s); i++) {
        if (bytes[i] >= 0x80) {
            return 1;
        }
    }
    return 0;
}

/* UTF-8 text of a string value, or NULL if it is not a string, too long, or an
 * ASCII-only type holding more than ASCII. */
static const char *string_value(apr_pool_t *p, const ASN1_STRING *s, apr_size_t max,
                                apr_size_t *len_out)
{
    unsigned char *utf8 = NULL;
    int n;
    const char *copy;

    if (ascii_type_holds_more(s)) {
        return NULL;
    }
    n = ASN1_STRING_to_UTF8(&utf8, s);
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
            apr_snprintf(out + i * 5, 6, "%02x%02x%s", b[2 * i], b[2 * i + 1],
                         i < 7 ? ":" : "");
        }
        return out;
    }
    return NULL;
}

/* Logs show at most this many bytes of a value from the request. */
#define SHOWN_MAX 64

/* For logs: the bytes with anything but printable ASCII (and the backslash) as \xNN,
 * shortened to SHOWN_MAX bytes with the full length said. */
static const char *shown(apr_pool_t *p, const unsigned char *data, apr_size_t len)
{
    apr_size_t n = len < SHOWN_MAX ? len : SHOWN_MAX, i;
    char *out = apr_palloc(p, n * 4 + 40), *o = out;

    for (i = 0; i < n; i++) {
        if (data[i] >= 0x20 && data[i] < 0x7f && data[i] != '\\') {
            *o++ = (char)data[i];
        }
        else {
            apr_snprintf(o, 5, "\\x%02x", data[i]);
            o += 4;
        }
    }
    if (len > n) {
        apr_snprintf(o, 40, "... (%" APR_SIZE_T_FMT " bytes)", len);
    }
    else {
        *o = '\0';
    }
    return out;
}

const char *scep_csr_shown(apr_pool_t *p, const char *text)
{
    return text ? shown(p, (const unsigned char *)text, strlen(text)) : NULL;
}

/* A string value for logs: its UTF-8 when it has one, else its bytes. */
static const char *shown_string(apr_pool_t *p, const ASN1_STRING *s, const char *utf8)
{
    if (utf8) {
        return shown(p, (const unsigned char *)utf8, strlen(utf8));
    }
    return shown(p, ASN1_STRING_get0_data(s), (apr_size_t)ASN1_STRING_length(s));
}

static void oid_of(apr_pool_t *p, const ASN1_OBJECT *obj, scep_csr_oid_t *out)
{
    char buf[128];

    out->nid = OBJ_obj2nid(obj);
    out->dotted = apr_pstrdup(p, OBJ_obj2txt(buf, sizeof(buf), obj, 1) > 0 ? buf : "?");
    out->name = out->nid != NID_undef ? OBJ_nid2sn(out->nid) : out->dotted;
}

const char *scep_csr_name_text(apr_pool_t *p, const X509_NAME *name)
{
    BIO *mem = BIO_new(BIO_s_mem());
    const char *text = "";
    char *data;
    long n;

    if (mem && X509_NAME_print_ex(mem, name, 0, XN_FLAG_RFC2253) >= 0
        && (n = BIO_get_mem_data(mem, &data)) > 0) {
        text = apr_pstrmemdup(p, data, (apr_size_t)n);
    }
    BIO_free(mem);
    ERR_clear_error();
    return text;
}

/* A name as a log line may show it. */
static const char *name_text(apr_pool_t *p, const X509_NAME *name)
{
    const char *text = scep_csr_name_text(p, name);

    return shown(p, (const unsigned char *)text, strlen(text));
}

const char *scep_csr_san_type_name(int type)
{
    static const char *const names[] = {
        [GEN_OTHERNAME] = "otherName", [GEN_EMAIL] = "rfc822Name", [GEN_DNS] = "dNSName",
        [GEN_X400] = "x400Address", [GEN_DIRNAME] = "directoryName",
        [GEN_EDIPARTY] = "ediPartyName", [GEN_URI] = "URI", [GEN_IPADD] = "iPAddress",
        [GEN_RID] = "registeredID"
    };

    return type >= 0 && type < (int)(sizeof(names) / sizeof(names[0])) && names[type]
           ? names[type] : "unknown GeneralName";
}

/* The value of an extension decoded as `it`, or NULL when it does not decode or bytes
 * follow it (OpenSSL's own X509V3_EXT_d2i ignores them; an upstream copying the
 * extension would not). */
static void *decode_whole(const X509_EXTENSION *ext, const ASN1_ITEM *it)
{
    const ASN1_OCTET_STRING *v = X509_EXTENSION_get_data((X509_EXTENSION *)ext);
    const unsigned char *q = ASN1_STRING_get0_data(v);
    long len = ASN1_STRING_length(v);
    ASN1_VALUE *value = ASN1_item_d2i(NULL, &q, len, it);

    if (value && q != ASN1_STRING_get0_data(v) + len) {
        ASN1_item_free(value, it);
        value = NULL;
    }
    ERR_clear_error();
    return value;
}

/* Every name of one SAN extension into csr->sans; the first extension also fills
 * dns_names and ip_addresses, as the issuer and the authorization read them. */
static apr_status_t read_san(apr_pool_t *p, scep_csr_t *csr, const X509_EXTENSION *ext,
                             const char **why)
{
    GENERAL_NAMES *names = decode_whole(ext, ASN1_ITEM_rptr(GENERAL_NAMES));
    int first = !csr->san, i;

    if (!names) {
        *why = "a requested subjectAltName extension is malformed";
        return APR_EINVAL;
    }
    if (csr->sans->nelts + sk_GENERAL_NAME_num(names) > SCEP_CSR_SAN_MAX) {
        *why = apr_psprintf(p, "the requested subjectAltName has %d names, more than %d",
                            csr->sans->nelts + sk_GENERAL_NAME_num(names), SCEP_CSR_SAN_MAX);
        GENERAL_NAMES_free(names);
        return APR_EINVAL;
    }
    if (first) {
        csr->san = ext;
    }
    csr->san_extensions++;
    for (i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        scep_csr_san_t *san = apr_array_push(csr->sans);

        memset(san, 0, sizeof(*san));
        san->type = gn->type;
        switch (gn->type) {
        case GEN_DNS:
        case GEN_EMAIL:
        case GEN_URI:
            san->value = string_value(p, gn->d.ia5, 1024, NULL);
            san->shown = shown_string(p, gn->d.ia5, san->value);
            if (first && gn->type == GEN_DNS && san->value && strlen(san->value) <= 253) {
                APR_ARRAY_PUSH(csr->dns_names, const char *) = san->value;
            }
            break;
        case GEN_IPADD:
            san->value = ip_text(p, gn->d.iPAddress);
            san->shown = san->value ? san->value
                         : apr_psprintf(p, "of %d bytes", ASN1_STRING_length(gn->d.iPAddress));
            if (first && san->value) {
                APR_ARRAY_PUSH(csr->ip_addresses, const char *) = san->value;
            }
            break;
        case GEN_OTHERNAME: {
            scep_csr_oid_t type;

            oid_of(p, gn->d.otherName->type_id, &type);
            san->shown = type.name;
            /* Windows strong mapping and 802.1X read the UPN, so it has a text form */
            if (type.nid == NID_ms_upn && gn->d.otherName->value
                && gn->d.otherName->value->type == V_ASN1_UTF8STRING) {
                const ASN1_STRING *upn = gn->d.otherName->value->value.utf8string;

                san->upn = 1;
                san->value = string_value(p, upn, 1024, NULL);
                san->shown = apr_pstrcat(p, type.name, " ", shown_string(p, upn, san->value),
                                         NULL);
            }
            break;
        }
        case GEN_RID: {
            scep_csr_oid_t type;

            oid_of(p, gn->d.registeredID, &type);
            san->shown = type.name;
            break;
        }
        case GEN_DIRNAME:
            san->shown = name_text(p, gn->d.directoryName);
            break;
        default:
            san->shown = "";
            break;
        }
    }
    GENERAL_NAMES_free(names);
    ERR_clear_error();
    return APR_SUCCESS;
}

/* Every requested extension into csr->requested, decoding the kinds a gateway may pass
 * on; the SANs into csr->sans. */
static apr_status_t read_extensions(apr_pool_t *p, scep_csr_t *csr, const char **why)
{
    int n = csr->extensions ? sk_X509_EXTENSION_num(csr->extensions) : 0, i;

    csr->requested = apr_array_make(p, n > 0 ? n : 1, sizeof(scep_csr_ext_t));
    csr->sans = apr_array_make(p, 2, sizeof(scep_csr_san_t));
    if (n > SCEP_CSR_EXTENSIONS_MAX) {
        *why = apr_psprintf(p, "the request asks for %d extensions, more than %d", n,
                            SCEP_CSR_EXTENSIONS_MAX);
        return APR_EINVAL;
    }
    for (i = 0; i < n; i++) {
        const X509_EXTENSION *ext = sk_X509_EXTENSION_value(csr->extensions, i);
        scep_csr_ext_t *x = apr_array_push(csr->requested);
        void *value;

        memset(x, 0, sizeof(*x));
        oid_of(p, X509_EXTENSION_get_object((X509_EXTENSION *)ext), &x->type);
        x->critical = X509_EXTENSION_get_critical(ext) > 0;
        switch (x->type.nid) {
        case NID_subject_alt_name:
            if (read_san(p, csr, ext, why) != APR_SUCCESS) {
                return APR_EINVAL;
            }
            break;
        case NID_key_usage: {
            ASN1_BIT_STRING *bits = decode_whole(ext, ASN1_ITEM_rptr(ASN1_BIT_STRING));

            /* nine bits are defined: two bytes at most */
            x->malformed = !bits || bits->length > 2;
            if (bits && bits->length > 0) {
                x->key_usage = bits->data[0] | (bits->length > 1 ? bits->data[1] << 8 : 0);
            }
            ASN1_BIT_STRING_free(bits);
            break;
        }
        case NID_ext_key_usage: {
            EXTENDED_KEY_USAGE *eku = decode_whole(ext, ASN1_ITEM_rptr(EXTENDED_KEY_USAGE));
            int k;

            x->malformed = !eku;
            x->purposes = apr_array_make(p, eku ? sk_ASN1_OBJECT_num(eku) + 1 : 1,
                                         sizeof(scep_csr_oid_t));
            for (k = 0; eku && k < sk_ASN1_OBJECT_num(eku); k++) {
                oid_of(p, sk_ASN1_OBJECT_value(eku, k), apr_array_push(x->purposes));
            }
            EXTENDED_KEY_USAGE_free(eku);
            break;
        }
        case NID_basic_constraints: {
            BASIC_CONSTRAINTS *bc = decode_whole(ext, ASN1_ITEM_rptr(BASIC_CONSTRAINTS));

            x->malformed = !bc;
            x->ca = bc && bc->ca;
            x->path_len = bc && bc->pathlen;
            BASIC_CONSTRAINTS_free(bc);
            break;
        }
        case NID_subject_key_identifier:
            value = decode_whole(ext, ASN1_ITEM_rptr(ASN1_OCTET_STRING));
            x->malformed = !value;
            ASN1_OCTET_STRING_free(value);
            break;
        default:
            break;
        }
    }
    return APR_SUCCESS;
}

static void read_subject(apr_pool_t *p, scep_csr_t *csr, const X509_NAME *subject)
{
    int n = X509_NAME_entry_count(subject), i;

    csr->subject_rdns = apr_array_make(p, n > 0 ? n : 1, sizeof(scep_csr_rdn_t));
    for (i = 0; i < n; i++) {
        const X509_NAME_ENTRY *entry = X509_NAME_get_entry(subject, i);
        const ASN1_STRING *data = X509_NAME_ENTRY_get_data(entry);
        scep_csr_rdn_t *rdn = apr_array_push(csr->subject_rdns);

        oid_of(p, X509_NAME_ENTRY_get_object(entry), &rdn->type);
        rdn->value = string_value(p, data, 1024, NULL);
        rdn->shown = shown_string(p, data, rdn->value);
    }
    ERR_clear_error();
}

static apr_status_t read_attributes(apr_pool_t *p, scep_csr_t *csr, const char **why)
{
    int n = X509_REQ_get_attr_count(csr->req), i;

    csr->attributes = apr_array_make(p, n > 0 ? n : 1, sizeof(scep_csr_attr_t));
    if (n > SCEP_CSR_ATTRIBUTES_MAX) {
        *why = apr_psprintf(p, "the request has %d attributes, more than %d", n,
                            SCEP_CSR_ATTRIBUTES_MAX);
        return APR_EINVAL;
    }
    for (i = 0; i < n; i++) {
        X509_ATTRIBUTE *attr = X509_REQ_get_attr(csr->req, i);
        scep_csr_attr_t *a = apr_array_push(csr->attributes);

        oid_of(p, X509_ATTRIBUTE_get0_object(attr), &a->type);
        a->values = X509_ATTRIBUTE_count(attr);
    }
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
    int malformed = 0, subject_len;

    *out = NULL;
    csr->dns_names = apr_array_make(p, 2, sizeof(const char *));
    csr->ip_addresses = apr_array_make(p, 1, sizeof(const char *));

    if (len > LONG_MAX
        || !(csr->req = scep_keyless_d2i(ASN1_ITEM_rptr(X509_REQ), &q, (long)len))) {
        ERR_clear_error();
        *why = "the messageData is not a PKCS#10 request";
        return APR_EINVAL;
    }
    scep_util_own_X509_REQ(p, csr->req);
    /* What is judged must be all there is: a gateway forwards these bytes, and an
     * upstream might read what follows the request (a second one) as the request. */
    if (q != der + len) {
        *why = apr_psprintf(p, "the messageData holds %lu bytes after the PKCS#10 request",
                            (unsigned long)(der + len - q));
        return APR_EINVAL;
    }
    if (!(csr->public_key = scep_keyless_spki_public_key(X509_REQ_get_X509_PUBKEY(csr->req)))) {
        *why = "the PKCS#10 public key cannot be read";
        return APR_EINVAL;
    }
    scep_util_own_EVP_PKEY(p, csr->public_key);
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
        scep_util_own_X509_EXTENSION_stack(p, csr->extensions);
    }
    else if (X509_REQ_get_attr_by_NID(csr->req, NID_ext_req, -1) >= 0) {
        ERR_clear_error();
        *why = "the PKCS#10 extensionRequest attribute is malformed";
        return APR_EINVAL;
    }
    if (read_attributes(p, csr, why) != APR_SUCCESS
        || read_extensions(p, csr, why) != APR_SUCCESS) {
        ERR_clear_error();
        return APR_EINVAL;
    }
    read_subject(p, csr, subject);

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

    csr->subject = scep_csr_name_text(p, subject);
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

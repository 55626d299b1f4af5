/* SPDX-License-Identifier: Apache-2.0 */
/* What a PKCS#10 request says: subject, SANs, challengePassword, and the attributes
 * network gear uses instead of SANs (Cisco: unstructuredName for the FQDN,
 * unstructuredAddress for the IP, serialNumber for the chassis).  Read once per request;
 * the policy and the issuer then work from these plain fields.
 *
 * Besides the fields for the common case, the parse keeps a complete view: every subject
 * attribute, every name of every subjectAltName extension, every requested extension and
 * every request attribute, in order, each with a mark when its value cannot be read.  A
 * forwarding gateway needs it: the upstream CA certifies the request as it is, so
 * whatever a field for the common case leaves out would reach it unchecked. */
#ifndef SCEP_CSR_H
#define SCEP_CSR_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_errno.h>
#include <openssl/x509.h>

#define SCEP_CHALLENGE_MAX 16384   /* Intune challenges run to several KB */

/* Fixed limits on what a request may ask for.  Real devices stay far below them; the
 * limits keep what one request costs, writes into a certificate and puts into a log line
 * small whatever ScepMaxMessageSize allows. */
#define SCEP_CSR_RSA_MAX_BITS 16384 /* larger RSA keys are refused before any arithmetic */
#define SCEP_CSR_SUBJECT_MAX 4096   /* bytes of the DER subject name */
#define SCEP_CSR_SAN_MAX 100        /* names in all requested subjectAltNames together */
#define SCEP_CSR_EXTENSIONS_MAX 64  /* requested extensions (certmonger sends 3, Windows 6) */
#define SCEP_CSR_ATTRIBUTES_MAX 64  /* request attributes, extensionRequest included */

/* An object identifier: OpenSSL's nid (NID_undef for one it does not know) and the name
 * a log shows (short name, else the dotted form). */
typedef struct scep_csr_oid_t {
    int nid;
    const char *name;
    const char *dotted;             /* e.g. "1.3.6.1.4.1.311.13.2.3" */
} scep_csr_oid_t;

/* One attribute of the subject, in DER order (every AVA of every RDN). */
typedef struct scep_csr_rdn_t {
    scep_csr_oid_t type;
    const char *value;              /* UTF-8; NULL when it is no string or holds a NUL */
    const char *shown;              /* for logs: escaped, shortened, never NULL */
} scep_csr_rdn_t;

/* One name of a requested subjectAltName (of any of them). */
typedef struct scep_csr_san_t {
    int type;                       /* GEN_DNS, GEN_IPADD, GEN_EMAIL, … (openssl/x509v3.h) */
    const char *value;              /* dNSName, rfc822Name or URI in UTF-8, an iPAddress as
                                     * text; NULL when it cannot be read (a NUL byte, an
                                     * address of another length) or has no text form */
    const char *shown;              /* for logs: the type and value, escaped, shortened */
    int upn;                        /* an otherName of type UPN (1.3.6.1.4.1.311.20.2.3)
                                     * with a UTF8String: `value` holds it */
} scep_csr_san_t;

/* One requested extension.  The kinds a gateway may pass on are decoded here, whole:
 * bytes after the value count as not decoding. */
typedef struct scep_csr_ext_t {
    scep_csr_oid_t type;
    int critical;
    int malformed;                  /* keyUsage, extendedKeyUsage, basicConstraints or
                                     * subjectKeyIdentifier that does not decode */
    unsigned long key_usage;        /* keyUsage: KU_* bits (openssl/x509v3.h) */
    int ca;                         /* basicConstraints: cA */
    int path_len;                   /* basicConstraints: a pathLenConstraint is present */
    apr_array_header_t *purposes;   /* extendedKeyUsage: scep_csr_oid_t */
} scep_csr_ext_t;

/* One request attribute (challengePassword, extensionRequest, …). */
typedef struct scep_csr_attr_t {
    scep_csr_oid_t type;
    int values;                     /* how many values its SET holds */
} scep_csr_attr_t;

typedef struct scep_csr_t {
    X509_REQ *req;                  /* freed with the pool; parsed without its key
                                     * (scep_keyless.h): use public_key */
    const unsigned char *der;       /* the input, as parsed (not copied) */
    apr_size_t der_len;
    EVP_PKEY *public_key;           /* freed with the pool */
    int key_bits;
    int key_is_rsa;
    const char *challenge;          /* NULL when absent; never logged */
    apr_size_t challenge_len;
    const char *subject;            /* RFC 2253 text, for logs */
    const char *common_name;        /* NULL when absent */
    const char *unstructured_name;  /* FQDN from attributes or subject, Cisco style */
    const char *unstructured_address;
    const char *serial_number;      /* subject serialNumber */
    apr_array_header_t *dns_names;  /* const char *, the readable dNSNames of `san` */
    apr_array_header_t *ip_addresses; /* const char *, its iPAddresses as text */
    const X509_EXTENSION *san;      /* the first requested SAN extension, owned by
                                     * `extensions` */
    STACK_OF(X509_EXTENSION) *extensions; /* requested extensions, freed with the pool */
    /* The complete view (see above), in the pool; a hand-made scep_csr_t leaves them NULL */
    apr_array_header_t *subject_rdns;       /* scep_csr_rdn_t */
    apr_array_header_t *sans;               /* scep_csr_san_t, of every SAN extension */
    int san_extensions;                     /* how many SAN extensions carried them */
    apr_array_header_t *requested;          /* scep_csr_ext_t */
    apr_array_header_t *attributes;         /* scep_csr_attr_t */
} scep_csr_t;

/* Parses a DER PKCS#10 and checks its form and the fixed limits above.  A subjectAltName
 * that does not decode is malformed (the issuer reads it); the other extensions and the
 * subject's values are only marked when they cannot be read.  The
 * self-signature is NOT verified yet: the caller first judges the key (type, size), so
 * that an absurd key costs no public-key arithmetic, then calls scep_csr_verify.
 * APR_EINVAL with *why on anything malformed. */
apr_status_t scep_csr_parse(apr_pool_t *p, const unsigned char *der, apr_size_t len,
                            scep_csr_t **csr, const char **why);

/* The name of a GeneralName type (GEN_DNS: "dNSName", …), for logs. */
const char *scep_csr_san_type_name(int type);

/* A value the request carries, as a log line, a refusal or a listing may show it:
 * control characters, backslashes and bytes beyond ASCII escaped (\xNN), and cut short
 * beyond a fixed length.  NULL for NULL. */
const char *scep_csr_shown(apr_pool_t *p, const char *text);

/* A distinguished name as RFC 2253 text (as the tool lists it), in the pool; "" when it
 * cannot be printed. */
const char *scep_csr_name_text(apr_pool_t *p, const X509_NAME *name);

/* Verifies the self-signature of a parsed request.  APR_EINVAL with *why when it does not
 * verify. */
apr_status_t scep_csr_verify(const scep_csr_t *csr, const char **why);

#endif

/* What a PKCS#10 request says: subject, SANs, challengePassword, and the attributes
 * network gear uses instead of SANs (Cisco: unstructuredName for the FQDN,
 * unstructuredAddress for the IP, serialNumber for the chassis).  Read once per request;
 * the policy and the issuer then work from these plain fields. */
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
#define SCEP_CSR_SAN_MAX 100        /* names in the requested subjectAltName */

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
    apr_array_header_t *dns_names;  /* const char *, from the requested SAN extension */
    apr_array_header_t *ip_addresses; /* const char *, text form */
    const X509_EXTENSION *san;      /* the requested SAN extension, owned by `extensions` */
    STACK_OF(X509_EXTENSION) *extensions; /* requested extensions, freed with the pool */
} scep_csr_t;

/* Parses a DER PKCS#10 and checks its form and the fixed limits above.  The
 * self-signature is NOT verified yet: the caller first judges the key (type, size), so
 * that an absurd key costs no public-key arithmetic, then calls scep_csr_verify.
 * APR_EINVAL with *why on anything malformed. */
apr_status_t scep_csr_parse(apr_pool_t *p, const unsigned char *der, apr_size_t len,
                            scep_csr_t **csr, const char **why);

/* Verifies the self-signature of a parsed request.  APR_EINVAL with *why when it does not
 * verify. */
apr_status_t scep_csr_verify(const scep_csr_t *csr, const char **why);

#endif

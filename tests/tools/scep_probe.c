/* SPDX-License-Identifier: Apache-2.0 */
/* scep_probe: an independent SCEP (RFC 8894) client for the integration tests.
 *
 * It shares no code with the module: everything is built directly with OpenSSL 3
 * (CMS and X509_REQ), so that a mistake in the module's message code cannot be
 * mirrored here and go unnoticed.  It does no HTTP; the tests move bytes with curl.
 *
 *   scep_probe request ...   builds a PKCSReq pkiMessage (optionally broken on purpose)
 *   scep_probe reply ...     checks a CertRep and extracts the issued certificate
 *
 * Run without arguments for the option list.  Exit status: 0 done, 1 failure (message
 * on stderr), 2 usage error. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define OID_MESSAGE_TYPE    "2.16.840.1.113733.1.9.2"
#define OID_PKI_STATUS      "2.16.840.1.113733.1.9.3"
#define OID_FAIL_INFO       "2.16.840.1.113733.1.9.4"
#define OID_SENDER_NONCE    "2.16.840.1.113733.1.9.5"
#define OID_RECIPIENT_NONCE "2.16.840.1.113733.1.9.6"
#define OID_TRANSACTION_ID  "2.16.840.1.113733.1.9.7"
#define OID_FAIL_INFO_TEXT  "1.3.6.1.5.5.7.24.1"

#define NONCE_LEN 16

static const char *progname = "scep_probe";

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage(void) __attribute__((noreturn));

/* Prints "scep_probe: message" and whatever OpenSSL queued, then exits 1. */
static void die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", progname);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static void usage(void)
{
    fprintf(stderr,
        "usage: %s request --recipient RA.pem|der --key dev.key [--cert dev.pem]\n"
        "           --subject /CN=x [--challenge X | --no-challenge]\n"
        "           [--digest sha1|sha224|sha256|sha384|sha512|md5]\n"
        "           [--cipher aes128|aes192|aes256|des3|des] [--oaep] [--pss] [--critical-aki]\n"
        "           [--msgtype N] [--txid ID] [--break-signature] [--break-csr]\n"
        "           [--unstructured-name FQDN] [--unstructured-address IP]\n"
        "           [--serial-number SN] [--san-dns NAME]\n"
        "           [--csr req.der]   (this DER PKCS#10 as it is, instead of one made here)\n"
        "           [--query-issuer CA.pem --query-serial HEX]   (GetCert/GetCRL content)\n"
        "           [--poll-issuer CA.pem]   (CertPoll content: IssuerAndSubject)\n"
        "           [--extra-sans N] [--subject-pad BYTES] [--fake-key-bits N]\n"
        "           [--no-envelope] [--no-signer-cert] [--unknown-digest-oid]\n"
        "           [--unknown-cipher-oid] [--nested-attr DEPTH] [--ber-indefinite]\n"
        "           [--csr-exponent E] [--signer-exponent E]\n"
        "           --out req.der [--nonce-out nonce.bin]\n"
        "       %s reply --in rep.der --key dev.key --cert dev.pem --signer CA_OR_RA.pem\n"
        "           [--nonce nonce.bin] [--cert-out issued.pem] [--any-cert]\n"
        "           [--crl-out crl.pem]\n"
        "\n"
        "Hostile variants of a request (tests of the server's defences):\n"
        "  --extra-sans N        N more dNSName SANs (sanK.example.org) after --san-dns\n"
        "  --subject-pad BYTES   OU components of 60 letters until the subject grows by BYTES\n"
        "  --fake-key-bits N     the PKCS#10 carries an RSA key of N bits (random odd modulus,\n"
        "                        e=65537) that did not sign it\n"
        "  --no-envelope         the PKCS#10 is signed in the clear, not in an EnvelopedData\n"
        "  --no-signer-cert      the SignedData carries no certificates\n"
        "  --unknown-digest-oid  the SignerInfo names digest 2.16.840.1.101.3.4.2.127\n"
        "  --unknown-cipher-oid  the envelope names cipher 2.16.840.1.101.3.4.1.127\n"
        "  --nested-attr DEPTH   an extra signed attribute 1.3.6.1.4.1.99999.1 whose value\n"
        "                        is DEPTH nested indefinite-length SEQUENCEs\n"
        "  --ber-indefinite      the pkiMessage with indefinite lengths (Apple, jscep)\n"
        "  --csr-exponent E      the PKCS#10 carries the device key's modulus with public\n"
        "                        exponent E (decimal, 0x-hex, or bits:N for a random odd\n"
        "                        N-bit number), signed with the device key; for E=1 the\n"
        "                        self-signature is forged (the padded digest itself)\n"
        "  --signer-exponent E   the same for the key of the signer certificate; for E=1\n"
        "                        the SignerInfo's signature is forged\n",
        progname, progname);
    exit(2);
}

/* ---- small helpers ------------------------------------------------------------ */

static unsigned char *read_file(const char *path, long *len)
{
    BIO *in = BIO_new_file(path, "rb");
    BIO *mem = BIO_new(BIO_s_mem());
    unsigned char buf[4096], *copy;
    const unsigned char *data;
    int n;

    if (!in || !mem) {
        die("cannot open '%s'", path);
    }
    while ((n = BIO_read(in, buf, sizeof(buf))) > 0) {
        if (BIO_write(mem, buf, n) != n) {
            die("out of memory reading '%s'", path);
        }
    }
    *len = BIO_get_mem_data(mem, (char **)&data);
    copy = OPENSSL_malloc(*len > 0 ? (size_t)*len : 1);
    if (!copy) {
        die("out of memory");
    }
    if (*len > 0) {
        memcpy(copy, data, (size_t)*len);
    }
    BIO_free(in);
    BIO_free(mem);
    return copy;
}

static void write_file(const char *path, const unsigned char *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    if (!f || (len > 0 && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        die("cannot write '%s'", path);
    }
}

/* A certificate in PEM or DER. */
static X509 *load_cert(const char *path)
{
    long len;
    unsigned char *data = read_file(path, &len);
    const unsigned char *p = data;
    BIO *b = BIO_new_mem_buf(data, (int)len);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);

    if (!x) {
        ERR_clear_error();
        x = d2i_X509(NULL, &p, len);
    }
    if (!x) {
        die("'%s' holds no certificate (PEM or DER)", path);
    }
    BIO_free(b);
    OPENSSL_free(data);
    return x;
}

/* A private key in PEM (any PEM key format) or DER. */
static EVP_PKEY *load_key(const char *path)
{
    long len;
    unsigned char *data = read_file(path, &len);
    const unsigned char *p = data;
    BIO *b = BIO_new_mem_buf(data, (int)len);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);

    if (!k) {
        ERR_clear_error();
        k = d2i_AutoPrivateKey(NULL, &p, len);
    }
    if (!k) {
        die("'%s' holds no private key (PEM or DER)", path);
    }
    BIO_free(b);
    OPENSSL_free(data);
    return k;
}

static ASN1_OBJECT *oid(const char *dotted)
{
    ASN1_OBJECT *o = OBJ_txt2obj(dotted, 1);

    if (!o) {
        die("bad OID %s", dotted);
    }
    return o;
}

static void hex(char *out, const unsigned char *in, size_t len)
{
    static const char digits[] = "0123456789ABCDEF";
    size_t i;

    for (i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

static OSSL_PROVIDER *default_provider, *legacy_provider;

/* The legacy provider and the child library context it makes refer to each other, so
 * unless our reference is handed back LeakSanitizer finds them all lost at exit.  This
 * has to run before OpenSSL's own exit handler, which frees the provider store. */
static void unload_providers(void)
{
    if (legacy_provider) {
        OSSL_PROVIDER_unload(legacy_provider);
    }
    if (default_provider) {
        OSSL_PROVIDER_unload(default_provider);
    }
}

/* Loads the default and legacy providers (single DES lives in legacy).  Once one
 * provider is loaded explicitly the default one no longer loads by itself. */
static void load_providers(int need_legacy)
{
    default_provider = OSSL_PROVIDER_load(NULL, "default");
    if (!default_provider) {
        die("cannot load OpenSSL's default provider");
    }
    legacy_provider = OSSL_PROVIDER_load(NULL, "legacy");
    if (!legacy_provider) {
        if (need_legacy) {
            die("cannot load OpenSSL's legacy provider (needed for single DES)");
        }
        ERR_clear_error();
    }
    /* registered after OpenSSL's, which the first load registered, so it runs first */
    if (atexit(unload_providers) != 0) {
        die("atexit failed");
    }
}

/* The digest is fetched, so the caller owns it and hands it back with EVP_MD_free. */
static EVP_MD *digest_by_name(const char *name)
{
    static const struct { const char *opt, *ossl; } map[] = {
        { "sha1", "SHA1" }, { "sha224", "SHA224" }, { "sha256", "SHA256" },
        { "sha384", "SHA384" }, { "sha512", "SHA512" }, { "md5", "MD5" },
    };
    size_t i;

    for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(name, map[i].opt) == 0) {
            EVP_MD *md = EVP_MD_fetch(NULL, map[i].ossl, NULL);

            if (!md) {
                die("digest %s is not available", name);
            }
            return md;
        }
    }
    die("unknown digest '%s'", name);
}

static const struct { const char *opt, *ossl; int nid; } ciphers[] = {
    { "aes128", "AES-128-CBC", NID_aes_128_cbc },
    { "aes192", "AES-192-CBC", NID_aes_192_cbc },
    { "aes256", "AES-256-CBC", NID_aes_256_cbc },
    { "des3", "DES-EDE3-CBC", NID_des_ede3_cbc },
    { "des", "DES-CBC", NID_des_cbc },
};

static EVP_CIPHER *cipher_by_name(const char *name)
{
    size_t i;

    for (i = 0; i < sizeof(ciphers) / sizeof(ciphers[0]); i++) {
        if (strcmp(name, ciphers[i].opt) == 0) {
            EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, ciphers[i].ossl, NULL);

            if (!c) {
                die("cipher %s is not available", name);
            }
            return c;
        }
    }
    die("unknown cipher '%s'", name);
}

/* The option name the request side uses for a cipher OID, else OpenSSL's name. */
static const char *cipher_name(int nid)
{
    size_t i;

    for (i = 0; i < sizeof(ciphers) / sizeof(ciphers[0]); i++) {
        if (ciphers[i].nid == nid) {
            return ciphers[i].opt;
        }
    }
    return nid == NID_undef ? "unknown" : OBJ_nid2sn(nid);
}

static const char *digest_name(int nid)
{
    switch (nid) {
    case NID_sha1: return "sha1";
    case NID_sha224: return "sha224";
    case NID_sha256: return "sha256";
    case NID_sha384: return "sha384";
    case NID_sha512: return "sha512";
    case NID_md5: return "md5";
    default: return nid == NID_undef ? "unknown" : OBJ_nid2sn(nid);
    }
}

/* "/CN=a/O=b" as openssl req -subj writes it. */
static X509_NAME *parse_subject(const char *text)
{
    X509_NAME *name = X509_NAME_new();
    char *copy, *field, *next;

    if (!name || text[0] != '/') {
        die("subject '%s' must look like /CN=name/O=org", text);
    }
    copy = OPENSSL_strdup(text + 1);
    for (field = copy; field && *field; field = next) {
        char *eq;

        next = strchr(field, '/');
        if (next) {
            *next++ = '\0';
        }
        eq = strchr(field, '=');
        if (!eq) {
            die("subject component '%s' has no '='", field);
        }
        *eq = '\0';
        if (!X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                        (const unsigned char *)eq + 1, -1, -1, 0)) {
            die("cannot add subject component '%s'", field);
        }
    }
    OPENSSL_free(copy);
    return name;
}

/* ---- request -------------------------------------------------------------------- */

typedef struct {
    const char *recipient, *key, *cert, *subject, *challenge, *digest, *cipher;
    const char *msgtype, *txid, *out, *nonce_out;
    const char *unstructured_name, *unstructured_address, *serial_number, *san_dns;
    const char *query_issuer, *query_serial, *poll_issuer;
    int no_challenge, oaep, pss, break_signature, break_csr, critical_aki;
    long extra_sans, subject_pad, fake_key_bits, nested_attr;
    int no_envelope, no_signer_cert, unknown_digest_oid, unknown_cipher_oid, ber_indefinite;
    const char *csr_exponent, *signer_exponent;
    const char *csr_file;   /* --csr: requests no option here builds (t_forward_names) */
} request_opts;

/* Windows marks the AuthorityKeyIdentifier of its self-signed request certificate
 * critical, which a server must not hold against it. */
static void add_windows_key_ids(X509 *x)
{
    static const struct { int nid; const char *value; } ids[] = {
        { NID_subject_key_identifier, "hash" },
        { NID_authority_key_identifier, "critical,keyid:always" },
    };
    X509V3_CTX ctx;
    size_t i;

    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, ids[i].nid, ids[i].value);

        if (!ext || !X509_add_ext(x, ext, -1)) {
            die("cannot add a key identifier to the device certificate");
        }
        X509_EXTENSION_free(ext);
    }
}

/* A self-signed certificate for the device key, as a client without a certificate
 * makes for signing its first request (RFC 8894 section 2.3). */
static X509 *self_signed(EVP_PKEY *key, const char *subject, int critical_aki)
{
    X509 *x = X509_new();
    X509_NAME *name = parse_subject(subject);
    BIGNUM *bn = BN_new();
    ASN1_INTEGER *serial;

    if (!x || !bn || !BN_rand(bn, 63, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY)) {
        die("cannot make a serial number");
    }
    serial = BN_to_ASN1_INTEGER(bn, NULL);
    if (!serial || !X509_set_version(x, 2) || !X509_set_serialNumber(x, serial)
        || !X509_set_subject_name(x, name) || !X509_set_issuer_name(x, name)
        || !X509_gmtime_adj(X509_getm_notBefore(x), -3600)
        || !X509_gmtime_adj(X509_getm_notAfter(x), 7L * 24 * 3600)
        || !X509_set_pubkey(x, key)) {
        die("cannot make the self-signed device certificate");
    }
    if (critical_aki) {
        add_windows_key_ids(x);
    }
    if (!X509_sign(x, key, EVP_sha256())) {
        die("cannot sign the self-signed device certificate");
    }
    ASN1_INTEGER_free(serial);
    BN_free(bn);
    X509_NAME_free(name);
    return x;
}

/* Whether ASN.1 PrintableString can carry `s`. */
static int printable(const char *s)
{
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && !strchr(" '()+,-./:=?", *s)) {
            return 0;
        }
    }
    return 1;
}

/* Grows a subject by at least `bytes` with organizationalUnitName components of 60
 * letters each, the way a hostile client inflates a request. */
static void pad_subject(X509_NAME *name, long bytes)
{
    unsigned char unit[61];
    long added;

    memset(unit, 'p', 60);
    unit[60] = '\0';
    for (added = 0; added < bytes; added += 60) {
        if (!X509_NAME_add_entry_by_NID(name, NID_organizationalUnitName, MBSTRING_ASC,
                                        unit, 60, -1, 0)) {
            die("cannot pad the subject");
        }
    }
}

/* An RSA public key with a random odd modulus of `bits` bits and e=65537: nobody holds
 * its private key, and its size is whatever the caller asks for. */
static EVP_PKEY *fake_rsa_key(long bits)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *n = BN_new(), *e = BN_new();
    OSSL_PARAM *params;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *pkey = NULL;

    if (bits < 16 || bits > 1L << 20) {
        die("--fake-key-bits must lie between 16 and 1048576");
    }
    if (!bld || !n || !e || !ctx || !BN_rand(n, (int)bits, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD)
        || !BN_set_word(e, 65537)
        || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n)
        || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e)
        || !(params = OSSL_PARAM_BLD_to_param(bld))
        || EVP_PKEY_fromdata_init(ctx) <= 0
        || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        die("cannot make a fake %ld-bit RSA key", bits);
    }
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    BN_free(n);
    BN_free(e);
    return pkey;
}

/* An exponent as --csr-exponent and --signer-exponent take it: decimal, 0x-hex, or
 * bits:N for a random odd number of exactly N bits. */
static BIGNUM *exponent_arg(const char *text)
{
    BIGNUM *e = NULL;
    char *end;
    long bits;

    if (strncmp(text, "bits:", 5) == 0) {
        bits = strtol(text + 5, &end, 10);
        if (*end || bits < 2 || bits > 16384 || !(e = BN_new())
            || !BN_rand(e, (int)bits, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD)) {
            die("exponent '%s': bits:N takes N from 2 to 16384", text);
        }
        return e;
    }
    if (!BN_asc2bn(&e, text)) {
        die("exponent '%s' is not a number", text);
    }
    return e;
}

/* The modulus of `key` with the public exponent `text`: no private key matches it
 * (unless it is the key's own), and OpenSSL builds it without a check. */
static EVP_PKEY *with_exponent(EVP_PKEY *key, const char *text)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *n = NULL, *e = exponent_arg(text);
    OSSL_PARAM *params;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *pkey = NULL;

    if (!bld || !ctx || !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n)
        || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n)
        || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e)
        || !(params = OSSL_PARAM_BLD_to_param(bld))
        || EVP_PKEY_fromdata_init(ctx) <= 0
        || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        die("cannot give the RSA key the exponent %s", text);
    }
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    BN_free(n);
    BN_free(e);
    return pkey;
}

/* Whether an exponent argument is 1, whose signatures are forged. */
static int exponent_is_one(const char *text)
{
    BIGNUM *e = exponent_arg(text);
    int one = BN_is_one(e);

    BN_free(e);
    return one;
}

/* Turns a PKCS#1 v1.5 signature made with `key` into one that verifies under the same
 * modulus with e = 1: what it decrypts to with the real exponent, the padded digest.
 * Anybody can write that without a private key; the real key only spares coding the
 * padding here. */
static void forge_for_e1(EVP_PKEY *key, ASN1_STRING *sig)
{
    BIGNUM *n = NULL, *e = NULL;
    BIGNUM *s = BN_bin2bn(ASN1_STRING_get0_data(sig), ASN1_STRING_length(sig), NULL);
    BN_CTX *ctx = BN_CTX_new();
    unsigned char em[2048];
    int k = ASN1_STRING_length(sig);

    if (!s || !ctx || k <= 0 || k > (int)sizeof(em)
        || !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n)
        || !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e)
        || !BN_mod_exp(s, s, e, n, ctx) || BN_bn2binpad(s, em, k) != k
        || !ASN1_STRING_set(sig, em, k)) {
        die("cannot forge the signature for e=1");
    }
    BN_free(n);
    BN_free(e);
    BN_free(s);
    BN_CTX_free(ctx);
}

/* The PKCS#10 the device asks to have certified, DER-encoded. */
static unsigned char *make_csr(const request_opts *o, EVP_PKEY *key, const EVP_MD *md,
                               int *len)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = parse_subject(o->subject);
    unsigned char *der = NULL;

    if (o->unstructured_name
        && !X509_NAME_add_entry_by_NID(name, NID_pkcs9_unstructuredName, MBSTRING_ASC,
                                       (const unsigned char *)o->unstructured_name, -1, -1, 0)) {
        die("cannot add unstructuredName");
    }
    if (o->unstructured_address
        && !X509_NAME_add_entry_by_NID(name, NID_pkcs9_unstructuredAddress, MBSTRING_ASC,
                                       (const unsigned char *)o->unstructured_address,
                                       -1, -1, 0)) {
        die("cannot add unstructuredAddress");
    }
    if (o->serial_number
        && !X509_NAME_add_entry_by_NID(name, NID_serialNumber, MBSTRING_ASC,
                                       (const unsigned char *)o->serial_number, -1, -1, 0)) {
        die("cannot add serialNumber");
    }
    pad_subject(name, o->subject_pad);
    if (!req || !X509_REQ_set_version(req, 0) || !X509_REQ_set_subject_name(req, name)) {
        die("cannot build the PKCS#10 request");
    }
    if (o->fake_key_bits > 0) {
        EVP_PKEY *fake = fake_rsa_key(o->fake_key_bits);

        /* signed below with the real key: the self-signature cannot verify */
        if (!X509_REQ_set_pubkey(req, fake)) {
            die("cannot put the fake key into the PKCS#10 request");
        }
        EVP_PKEY_free(fake);
    }
    else if (o->csr_exponent) {
        EVP_PKEY *odd = with_exponent(key, o->csr_exponent);

        /* signed below with the real key, and forged afterwards for e=1 */
        if (!X509_REQ_set_pubkey(req, odd)) {
            die("cannot put the key with exponent %s into the PKCS#10", o->csr_exponent);
        }
        EVP_PKEY_free(odd);
    }
    else if (!X509_REQ_set_pubkey(req, key)) {
        die("cannot build the PKCS#10 request");
    }
    /* PrintableString as strongSwan and sscep send it, UTF8String when it must be */
    if (!o->no_challenge
        && !X509_REQ_add1_attr_by_NID(req, NID_pkcs9_challengePassword,
                                      printable(o->challenge) ? V_ASN1_PRINTABLESTRING
                                                              : V_ASN1_UTF8STRING,
                                      (const unsigned char *)o->challenge,
                                      (int)strlen(o->challenge))) {
        die("cannot add the challengePassword attribute");
    }
    if (o->san_dns || o->extra_sans > 0) {
        STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
        /* "DNS:san<K>.example.org," is at most 30 bytes for K below 10^9 */
        size_t cap = (o->san_dns ? strlen(o->san_dns) : 0) + 5 + (size_t)o->extra_sans * 32;
        char *value = OPENSSL_zalloc(cap);
        X509_EXTENSION *ext;
        size_t used;
        long k;

        if (!exts || !value) {
            die("out of memory");
        }
        if (o->san_dns) {
            snprintf(value, cap, "DNS:%s", o->san_dns);
        }
        for (k = 1; k <= o->extra_sans; k++) {
            used = strlen(value);
            snprintf(value + used, cap - used, "%sDNS:san%ld.example.org",
                     used ? "," : "", k);
        }
        ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, value);
        if (!ext || !sk_X509_EXTENSION_push(exts, ext) || !X509_REQ_add_extensions(req, exts)) {
            die("cannot add the subjectAltName extension request");
        }
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        OPENSSL_free(value);
    }
    if (!X509_REQ_sign(req, key, md)) {
        die("cannot sign the PKCS#10 request");
    }
    if (o->csr_exponent && exponent_is_one(o->csr_exponent)) {
        const ASN1_BIT_STRING *sig = NULL;

        X509_REQ_get0_signature(req, &sig, NULL);
        forge_for_e1(key, (ASN1_STRING *)sig);
    }
    *len = i2d_X509_REQ(req, &der);
    if (*len <= 0) {
        die("cannot encode the PKCS#10 request");
    }
    X509_REQ_free(req);
    X509_NAME_free(name);
    return der;
}

/* pkcsPKIEnvelope: EnvelopedData of `data` for `recipient`, DER. */
static unsigned char *envelope(const unsigned char *data, int len, X509 *recipient,
                               const EVP_CIPHER *cipher, int oaep, int *outlen)
{
    CMS_ContentInfo *cms = CMS_encrypt(NULL, NULL, cipher, CMS_BINARY | CMS_PARTIAL);
    CMS_RecipientInfo *ri;
    BIO *in;
    unsigned char *der = NULL;

    if (!cms) {
        die("cannot start the EnvelopedData");
    }
    ri = CMS_add1_recipient_cert(cms, recipient, oaep ? CMS_KEY_PARAM : 0);
    if (!ri) {
        die("cannot add the recipient certificate");
    }
    if (oaep) {
        EVP_PKEY_CTX *pctx = CMS_RecipientInfo_get0_pkey_ctx(ri);

        if (!pctx || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0) {
            die("cannot select RSAES-OAEP key transport");
        }
    }
    in = BIO_new_mem_buf(data, len);
    if (!in || !CMS_final(cms, in, NULL, CMS_BINARY)) {
        die("cannot encrypt the EnvelopedData");
    }
    *outlen = i2d_CMS_ContentInfo(cms, &der);
    if (*outlen <= 0) {
        die("cannot encode the EnvelopedData");
    }
    BIO_free(in);
    CMS_ContentInfo_free(cms);
    return der;
}

static void add_printable(CMS_SignerInfo *si, const char *dotted, const char *value)
{
    ASN1_OBJECT *o = oid(dotted);

    if (!CMS_signed_add1_attr_by_OBJ(si, o, V_ASN1_PRINTABLESTRING, value, (int)strlen(value))) {
        die("cannot add signed attribute %s", dotted);
    }
    ASN1_OBJECT_free(o);
}

/* Renames the content cipher in a DER EnvelopedData: the last byte of the cipher's OID
 * becomes 127, an arc nobody assigned, and the OID length stays the same. */
static void unknown_cipher(unsigned char *env, int env_len, const EVP_CIPHER *cipher)
{
    unsigned char *oid_der = NULL, *at = NULL;
    int oid_len = i2d_ASN1_OBJECT(OBJ_nid2obj(EVP_CIPHER_get_nid(cipher)), &oid_der);
    int k;

    for (k = 0; oid_len > 0 && k + oid_len <= env_len; k++) {
        if (memcmp(env + k, oid_der, (size_t)oid_len) == 0) {
            at = env + k;
        }
    }
    if (!at) {
        die("the envelope does not name its cipher");
    }
    at[oid_len - 1] = 0x7f;
    OPENSSL_free(oid_der);
}

/* A signed attribute of a private OID whose value nests `depth` indefinite-length
 * SEQUENCEs: an unknown attribute a server must skip, at a depth no parser should
 * recurse into. */
static void add_nested_attr(CMS_SignerInfo *si, long depth)
{
    ASN1_STRING *value = ASN1_STRING_type_new(V_ASN1_SEQUENCE);
    ASN1_OBJECT *o = oid("1.3.6.1.4.1.99999.1");
    unsigned char *buf = OPENSSL_malloc((size_t)depth * 4);
    long k;

    if (!value || !buf) {
        die("out of memory");
    }
    for (k = 0; k < depth; k++) {
        buf[2 * k] = 0x30;
        buf[2 * k + 1] = 0x80;
        buf[2 * depth + 2 * k] = 0x00;
        buf[2 * depth + 2 * k + 1] = 0x00;
    }
    if (!ASN1_STRING_set(value, buf, (int)(depth * 4))
        || !CMS_signed_add1_attr_by_OBJ(si, o, V_ASN1_SEQUENCE, value, -1)) {
        die("cannot add the nested attribute");
    }
    OPENSSL_free(buf);
    ASN1_OBJECT_free(o);
    ASN1_STRING_free(value);
}

/* Writes `der` again with every constructed element in indefinite-length form (tag,
 * 0x80, contents, end-of-contents), as streaming encoders such as Apple's and jscep's
 * do.  Primitive elements are copied.  DER from OpenSSL nests a few dozen levels. */
static void to_indefinite(BIO *out, const unsigned char *der, long len, int depth)
{
    const unsigned char *p = der, *end = der + len;

    if (depth > 64) {
        die("--ber-indefinite: the message nests too deep");
    }
    while (p < end) {
        const unsigned char *q = p;
        long clen;
        int tag, cls, ret = ASN1_get_object(&q, &clen, &tag, &cls, end - p);
        size_t id_len = 1;

        if (ret & 0x80) {
            die("--ber-indefinite: the message is not DER");
        }
        if (!(ret & V_ASN1_CONSTRUCTED)) {
            BIO_write(out, p, (int)(q + clen - p));
            p = q + clen;
            continue;
        }
        if ((p[0] & 0x1f) == 0x1f) {    /* high tag number: continuation bytes */
            while (p + id_len < end && (p[id_len] & 0x80)) {
                id_len++;
            }
            id_len++;
        }
        BIO_write(out, p, (int)id_len);
        BIO_write(out, "\x80", 1);
        to_indefinite(out, q, clen, depth + 1);
        BIO_write(out, "\0\0", 2);
        p = q + clen;
    }
}

static int cmd_request(int argc, char **argv)
{
    request_opts o;
    EVP_PKEY *key;
    X509 *cert, *recipient;
    EVP_MD *md;
    EVP_CIPHER *cipher;
    unsigned char *csr = NULL, *env, *der = NULL, nonce[NONCE_LEN];
    int csr_len, env_len, der_len, i;
    char txid[2 * EVP_MAX_MD_SIZE + 1];
    CMS_ContentInfo *cms;
    CMS_SignerInfo *si;
    ASN1_OBJECT *nonce_oid;
    BIO *content;

    memset(&o, 0, sizeof(o));
    o.digest = "sha256";
    o.cipher = "aes256";
    o.msgtype = "19";
    for (i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        long *num = NULL;

        if (strcmp(a, "--recipient") == 0) slot = &o.recipient;
        else if (strcmp(a, "--key") == 0) slot = &o.key;
        else if (strcmp(a, "--cert") == 0) slot = &o.cert;
        else if (strcmp(a, "--subject") == 0) slot = &o.subject;
        else if (strcmp(a, "--challenge") == 0) slot = &o.challenge;
        else if (strcmp(a, "--digest") == 0) slot = &o.digest;
        else if (strcmp(a, "--cipher") == 0) slot = &o.cipher;
        else if (strcmp(a, "--msgtype") == 0) slot = &o.msgtype;
        else if (strcmp(a, "--txid") == 0) slot = &o.txid;
        else if (strcmp(a, "--out") == 0) slot = &o.out;
        else if (strcmp(a, "--nonce-out") == 0) slot = &o.nonce_out;
        else if (strcmp(a, "--unstructured-name") == 0) slot = &o.unstructured_name;
        else if (strcmp(a, "--unstructured-address") == 0) slot = &o.unstructured_address;
        else if (strcmp(a, "--serial-number") == 0) slot = &o.serial_number;
        else if (strcmp(a, "--san-dns") == 0) slot = &o.san_dns;
        else if (strcmp(a, "--query-issuer") == 0) slot = &o.query_issuer;
        else if (strcmp(a, "--query-serial") == 0) slot = &o.query_serial;
        else if (strcmp(a, "--poll-issuer") == 0) slot = &o.poll_issuer;
        else if (strcmp(a, "--csr-exponent") == 0) slot = &o.csr_exponent;
        else if (strcmp(a, "--signer-exponent") == 0) slot = &o.signer_exponent;
        else if (strcmp(a, "--csr") == 0) slot = &o.csr_file;
        else if (strcmp(a, "--no-challenge") == 0) o.no_challenge = 1;
        else if (strcmp(a, "--oaep") == 0) o.oaep = 1;
        else if (strcmp(a, "--pss") == 0) o.pss = 1;
        else if (strcmp(a, "--critical-aki") == 0) o.critical_aki = 1;
        else if (strcmp(a, "--break-signature") == 0) o.break_signature = 1;
        else if (strcmp(a, "--break-csr") == 0) o.break_csr = 1;
        else if (strcmp(a, "--no-envelope") == 0) o.no_envelope = 1;
        else if (strcmp(a, "--no-signer-cert") == 0) o.no_signer_cert = 1;
        else if (strcmp(a, "--unknown-digest-oid") == 0) o.unknown_digest_oid = 1;
        else if (strcmp(a, "--unknown-cipher-oid") == 0) o.unknown_cipher_oid = 1;
        else if (strcmp(a, "--ber-indefinite") == 0) o.ber_indefinite = 1;
        else if (strcmp(a, "--extra-sans") == 0) num = &o.extra_sans;
        else if (strcmp(a, "--subject-pad") == 0) num = &o.subject_pad;
        else if (strcmp(a, "--fake-key-bits") == 0) num = &o.fake_key_bits;
        else if (strcmp(a, "--nested-attr") == 0) num = &o.nested_attr;
        else {
            fprintf(stderr, "%s: unknown option '%s'\n", progname, a);
            usage();
        }
        if (slot || num) {
            if (++i >= argc) {
                fprintf(stderr, "%s: %s needs a value\n", progname, a);
                usage();
            }
            if (slot) {
                *slot = argv[i];
            }
            else {
                char *end;

                *num = strtol(argv[i], &end, 10);
                if (*end || *num < 0 || *num > 1000000) {
                    fprintf(stderr, "%s: %s takes a number from 0 to 1000000\n", progname, a);
                    usage();
                }
            }
        }
    }
    if (!o.recipient || !o.key || !o.subject || !o.out
        || (!o.challenge && !o.no_challenge)) {
        fprintf(stderr, "%s: request needs --recipient, --key, --subject, --out and "
                "--challenge (or --no-challenge)\n", progname);
        usage();
    }

    load_providers(strcmp(o.cipher, "des") == 0);
    md = digest_by_name(o.digest);
    cipher = cipher_by_name(o.cipher);
    key = load_key(o.key);
    recipient = load_cert(o.recipient);
    cert = o.cert ? load_cert(o.cert) : self_signed(key, o.subject, o.critical_aki);
    if (X509_check_private_key(cert, key) != 1) {
        die("the device certificate does not match the device key");
    }

    /* messageData: the PKCS#10, or on request bytes that are no DER at all */
    if (o.break_csr) {
        csr_len = 300;
        csr = OPENSSL_malloc((size_t)csr_len);
        if (!csr || RAND_bytes(csr, csr_len) != 1) {
            die("cannot make garbage");
        }
        csr[0] = 0x04;  /* an OCTET STRING tag with a length that does not fit */
        csr[1] = 0xff;
    }
    else if (o.poll_issuer) {
        /* CertPoll: IssuerAndSubject ::= SEQUENCE { issuer Name, subject Name }, built
         * by hand from the two DER names */
        X509 *issuer = load_cert(o.poll_issuer);
        X509_NAME *subject = parse_subject(o.subject);
        unsigned char *in = NULL, *sn = NULL, *p;
        int ilen = i2d_X509_NAME(X509_get_subject_name(issuer), &in);
        int slen = i2d_X509_NAME(subject, &sn);
        int body = ilen + slen;

        if (ilen <= 0 || slen <= 0 || body > 0xffff) {
            die("cannot encode the IssuerAndSubject");
        }
        csr = OPENSSL_malloc((size_t)body + 4);
        if (!csr) {
            die("out of memory");
        }
        p = csr;
        *p++ = 0x30;
        if (body < 0x80) {
            *p++ = (unsigned char)body;
        }
        else if (body < 0x100) {
            *p++ = 0x81;
            *p++ = (unsigned char)body;
        }
        else {
            *p++ = 0x82;
            *p++ = (unsigned char)(body >> 8);
            *p++ = (unsigned char)body;
        }
        memcpy(p, in, (size_t)ilen);
        memcpy(p + ilen, sn, (size_t)slen);
        csr_len = (int)(p - csr) + body;
        OPENSSL_free(in);
        OPENSSL_free(sn);
        X509_NAME_free(subject);
        X509_free(issuer);
    }
    else if (o.query_issuer || o.query_serial) {
        /* GetCert and GetCRL carry an IssuerAndSerialNumber instead of a PKCS#10 */
        PKCS7_ISSUER_AND_SERIAL *ias = PKCS7_ISSUER_AND_SERIAL_new();
        X509 *issuer = o.query_issuer ? load_cert(o.query_issuer) : NULL;
        BIGNUM *bn = NULL;

        if (!ias || !issuer || !o.query_serial || !BN_hex2bn(&bn, o.query_serial)
            || !X509_NAME_set(&ias->issuer, X509_get_subject_name(issuer))
            || !BN_to_ASN1_INTEGER(bn, ias->serial)
            || (csr_len = i2d_PKCS7_ISSUER_AND_SERIAL(ias, &csr)) <= 0) {
            die("--query-issuer and --query-serial make an IssuerAndSerialNumber together");
        }
        BN_free(bn);
        X509_free(issuer);
        PKCS7_ISSUER_AND_SERIAL_free(ias);
    }
    else if (o.csr_file) {
        long n;

        csr = read_file(o.csr_file, &n);
        csr_len = (int)n;
    }
    else {
        csr = make_csr(&o, key, md, &csr_len);
    }
    if (o.no_envelope) {
        /* the PKCS#10, challenge and all, in the clear */
        env = OPENSSL_memdup(csr, (size_t)csr_len);
        env_len = csr_len;
        if (!env) {
            die("out of memory");
        }
    }
    else {
        env = envelope(csr, csr_len, recipient, cipher, o.oaep, &env_len);
    }
    if (o.unknown_cipher_oid) {
        unknown_cipher(env, env_len, cipher);
    }

    /* transactionID: hex SHA-256 of the device's SubjectPublicKeyInfo, unless given */
    if (o.txid) {
        if (strlen(o.txid) >= sizeof(txid)) {
            die("--txid is too long");
        }
        memcpy(txid, o.txid, strlen(o.txid) + 1);
    }
    else {
        unsigned char *spki = NULL, dgst[EVP_MAX_MD_SIZE];
        unsigned int dlen = 0;
        int spki_len = i2d_PUBKEY(key, &spki);

        if (spki_len <= 0 || !EVP_Digest(spki, (size_t)spki_len, dgst, &dlen, EVP_sha256(), NULL)) {
            die("cannot hash the public key");
        }
        hex(txid, dgst, dlen);
        OPENSSL_free(spki);
    }
    if (RAND_bytes(nonce, NONCE_LEN) != 1) {
        die("cannot make the senderNonce");
    }

    /* pkiMessage: SignedData over the envelope, with the SCEP signed attributes.
     * contentType, messageDigest and signingTime are added by CMS_final. */
    cms = CMS_sign(NULL, NULL, NULL, NULL, CMS_BINARY | CMS_PARTIAL);
    if (!cms) {
        die("cannot start the SignedData");
    }
    si = CMS_add1_signer(cms, cert, key, md,
                         CMS_BINARY | CMS_NOSMIMECAP | (o.pss ? CMS_KEY_PARAM : 0)
                         | (o.no_signer_cert || o.signer_exponent ? CMS_NOCERTS : 0));
    if (!si) {
        die("cannot add the signer");
    }
    if (o.signer_exponent) {
        /* the same issuer and serial, so the SignerInfo names it, with the odd key */
        X509 *odd_cert = X509_dup(cert);
        EVP_PKEY *odd = with_exponent(key, o.signer_exponent);

        if (!odd_cert || !X509_set_pubkey(odd_cert, odd)
            || !X509_sign(odd_cert, key, EVP_sha256())   /* encodes it again */
            || !CMS_add1_cert(cms, odd_cert)) {
            die("cannot add the signer certificate with exponent %s", o.signer_exponent);
        }
        X509_free(odd_cert);
        EVP_PKEY_free(odd);
    }
    if (o.pss) {
        EVP_PKEY_CTX *pctx = CMS_SignerInfo_get0_pkey_ctx(si);

        if (!pctx || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0
            || EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0) {
            die("cannot select RSASSA-PSS");
        }
    }
    add_printable(si, OID_MESSAGE_TYPE, o.msgtype);
    add_printable(si, OID_TRANSACTION_ID, txid);
    nonce_oid = oid(OID_SENDER_NONCE);
    if (!CMS_signed_add1_attr_by_OBJ(si, nonce_oid, V_ASN1_OCTET_STRING, nonce, NONCE_LEN)) {
        die("cannot add the senderNonce");
    }
    ASN1_OBJECT_free(nonce_oid);
    if (o.nested_attr > 0) {
        add_nested_attr(si, o.nested_attr);
    }
    content = BIO_new_mem_buf(env, env_len);
    if (!content || !CMS_final(cms, content, NULL, CMS_BINARY)) {
        die("cannot sign the pkiMessage");
    }
    if (o.signer_exponent && exponent_is_one(o.signer_exponent)) {
        forge_for_e1(key, CMS_SignerInfo_get0_signature(si));
    }
    if (o.break_signature) {
        ASN1_OCTET_STRING *sig = CMS_SignerInfo_get0_signature(si);
        int slen = ASN1_STRING_length(sig);
        unsigned char *copy = OPENSSL_malloc(slen > 0 ? (size_t)slen : 1);

        if (!copy || slen <= 0) {
            die("no signature to break");
        }
        memcpy(copy, ASN1_STRING_get0_data(sig), (size_t)slen);
        copy[slen / 2] ^= 0x01;
        if (!ASN1_OCTET_STRING_set(sig, copy, slen)) {
            die("cannot replace the signature");
        }
        OPENSSL_free(copy);
    }
    if (o.unknown_digest_oid) {
        X509_ALGOR *dig;

        /* after signing: the signature stays, only the name of its digest changes */
        CMS_SignerInfo_get0_algs(si, NULL, NULL, &dig, NULL);
        if (!dig || !X509_ALGOR_set0(dig, oid("2.16.840.1.101.3.4.2.127"), V_ASN1_UNDEF, NULL)) {
            die("cannot rename the digest algorithm");
        }
    }
    der_len = i2d_CMS_ContentInfo(cms, &der);
    if (der_len <= 0) {
        die("cannot encode the pkiMessage");
    }
    if (o.ber_indefinite) {
        BIO *ber = BIO_new(BIO_s_mem());
        const unsigned char *bdata;
        long blen;

        if (!ber) {
            die("out of memory");
        }
        to_indefinite(ber, der, der_len, 0);
        blen = BIO_get_mem_data(ber, (char **)&bdata);
        write_file(o.out, bdata, (size_t)blen);
        der_len = (int)blen;
        BIO_free(ber);
    }
    else {
        write_file(o.out, der, (size_t)der_len);
    }
    if (o.nonce_out) {
        write_file(o.nonce_out, nonce, NONCE_LEN);
    }
    printf("transactionID=%s\n", txid);
    printf("bytes=%d\n", der_len);

    OPENSSL_free(der);
    OPENSSL_free(env);
    OPENSSL_free(csr);
    CMS_ContentInfo_free(cms);
    BIO_free(content);
    X509_free(cert);
    X509_free(recipient);
    EVP_PKEY_free(key);
    EVP_MD_free(md);
    EVP_CIPHER_free(cipher);
    return 0;
}

/* ---- reply ------------------------------------------------------------------------ */

/* Reads one DER header at *p (at most `max` bytes) and returns where its contents start;
 * *end is set past the element.  Indefinite lengths are refused: a CertRep is DER. */
static const unsigned char *der_elem(const unsigned char *p, long max, int want_tag,
                                     int want_class, const unsigned char **end,
                                     const char *what)
{
    const unsigned char *q = p;
    long len;
    int tag, cls, ret;

    ret = ASN1_get_object(&q, &len, &tag, &cls, max);
    if (ret & 0x80) {
        die("envelope: cannot parse %s", what);
    }
    if (ret == (V_ASN1_CONSTRUCTED | 1)) {
        die("envelope: %s uses an indefinite length (not DER)", what);
    }
    if (tag != want_tag || cls != want_class) {
        die("envelope: %s has tag %d class %d, expected %d/%d", what, tag, cls,
            want_tag, want_class);
    }
    *end = q + len;
    return q;
}

/* The content-encryption algorithm of a DER EnvelopedData ContentInfo.  OpenSSL 3.0 has
 * no getter for it, so walk ContentInfo -> EnvelopedData -> EncryptedContentInfo. */
static int envelope_cipher_nid(const unsigned char *der, long len)
{
    const unsigned char *p, *end, *lim, *env_end, *next, *alg_end, *o;
    ASN1_OBJECT *obj;
    int nid;
    long olen;

    p = der_elem(der, len, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &lim, "ContentInfo");
    der_elem(p, lim - p, V_ASN1_OBJECT, V_ASN1_UNIVERSAL, &next, "contentType");
    p = der_elem(next, lim - next, 0, V_ASN1_CONTEXT_SPECIFIC, &end, "[0] content");
    p = der_elem(p, end - p, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &env_end, "EnvelopedData");
    der_elem(p, env_end - p, V_ASN1_INTEGER, V_ASN1_UNIVERSAL, &next, "version");
    p = next;
    if (p < env_end && *p == 0xa0) {   /* originatorInfo [0] */
        der_elem(p, env_end - p, 0, V_ASN1_CONTEXT_SPECIFIC, &next, "originatorInfo");
        p = next;
    }
    der_elem(p, env_end - p, V_ASN1_SET, V_ASN1_UNIVERSAL, &next, "recipientInfos");
    p = der_elem(next, env_end - next, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &end,
                 "EncryptedContentInfo");
    der_elem(p, end - p, V_ASN1_OBJECT, V_ASN1_UNIVERSAL, &next, "EncryptedContentInfo type");
    p = der_elem(next, end - next, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &alg_end,
                 "contentEncryptionAlgorithm");
    der_elem(p, alg_end - p, V_ASN1_OBJECT, V_ASN1_UNIVERSAL, &next, "cipher OID");
    o = p;
    olen = next - p;
    obj = d2i_ASN1_OBJECT(NULL, &o, olen);
    if (!obj) {
        die("envelope: bad cipher OID");
    }
    nid = OBJ_obj2nid(obj);
    ASN1_OBJECT_free(obj);
    return nid;
}

/* The single value of a signed attribute, or NULL when absent.  More than one
 * occurrence or value is an error. */
static const ASN1_TYPE *signed_attr(CMS_SignerInfo *si, const char *dotted, const char *name)
{
    ASN1_OBJECT *o = oid(dotted);
    int idx = CMS_signed_get_attr_by_OBJ(si, o, -1);
    X509_ATTRIBUTE *attr;

    if (idx < 0) {
        ASN1_OBJECT_free(o);
        return NULL;
    }
    if (CMS_signed_get_attr_by_OBJ(si, o, idx) >= 0) {
        die("signed attribute %s occurs more than once", name);
    }
    ASN1_OBJECT_free(o);
    attr = CMS_signed_get_attr(si, idx);
    if (X509_ATTRIBUTE_count(attr) != 1) {
        die("signed attribute %s has %d values, expected 1", name, X509_ATTRIBUTE_count(attr));
    }
    return X509_ATTRIBUTE_get0_type(attr, 0);
}

/* A PrintableString attribute as a C string (NULL when absent). */
static char *printable_attr(CMS_SignerInfo *si, const char *dotted, const char *name,
                            int want_type)
{
    const ASN1_TYPE *t = signed_attr(si, dotted, name);
    const ASN1_STRING *s;
    char *out;
    int len;

    if (!t) {
        return NULL;
    }
    if (t->type != want_type) {
        die("signed attribute %s has ASN.1 type %d, expected %d", name, t->type, want_type);
    }
    s = t->value.asn1_string;
    len = ASN1_STRING_length(s);
    out = OPENSSL_zalloc((size_t)len + 1);
    if (!out) {
        die("out of memory");
    }
    memcpy(out, ASN1_STRING_get0_data(s), (size_t)len);
    if (strlen(out) != (size_t)len) {
        die("signed attribute %s contains a NUL byte", name);
    }
    return out;
}

static const ASN1_OCTET_STRING *octet_attr(CMS_SignerInfo *si, const char *dotted,
                                           const char *name)
{
    const ASN1_TYPE *t = signed_attr(si, dotted, name);

    if (!t) {
        return NULL;
    }
    if (t->type != V_ASN1_OCTET_STRING) {
        die("signed attribute %s has ASN.1 type %d, expected OCTET STRING", name, t->type);
    }
    return t->value.octet_string;
}

static int cmd_reply(int argc, char **argv)
{
    const char *in = NULL, *keyfile = NULL, *certfile = NULL, *signerfile = NULL;
    const char *noncefile = NULL, *certout = NULL, *crlout = NULL;
    int any_cert = 0;
    unsigned char *der;
    const unsigned char *p;
    long der_len;
    CMS_ContentInfo *cms;
    STACK_OF(CMS_SignerInfo) *sis;
    CMS_SignerInfo *si;
    X509 *signer;
    X509_ALGOR *dig_alg, *sig_alg;
    ASN1_OCTET_STRING **pcontent;
    STACK_OF(X509) *certs;
    BIO *dcont = NULL, *out;
    char *status, *fail_info, *fail_text, *txid, *msgtype;
    const ASN1_OCTET_STRING *snonce, *rnonce;
    const unsigned char *content;
    long content_len;
    int i;

    for (i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;

        if (strcmp(a, "--in") == 0) slot = &in;
        else if (strcmp(a, "--key") == 0) slot = &keyfile;
        else if (strcmp(a, "--cert") == 0) slot = &certfile;
        else if (strcmp(a, "--signer") == 0) slot = &signerfile;
        else if (strcmp(a, "--nonce") == 0) slot = &noncefile;
        else if (strcmp(a, "--cert-out") == 0) slot = &certout;
        else if (strcmp(a, "--crl-out") == 0) slot = &crlout;
        else if (strcmp(a, "--any-cert") == 0) {
            any_cert = 1;
            continue;
        }
        else {
            fprintf(stderr, "%s: unknown option '%s'\n", progname, a);
            usage();
        }
        if (++i >= argc) {
            fprintf(stderr, "%s: %s needs a value\n", progname, a);
            usage();
        }
        *slot = argv[i];
    }
    if (!in || !signerfile) {
        fprintf(stderr, "%s: reply needs --in and --signer\n", progname);
        usage();
    }
    load_providers(0);
    signer = load_cert(signerfile);

    der = read_file(in, &der_len);
    if (der_len == 0) {
        die("'%s' is empty: no CertRep", in);
    }
    p = der;
    cms = d2i_CMS_ContentInfo(NULL, &p, der_len);
    if (!cms) {
        die("'%s' is not a CMS ContentInfo", in);
    }
    if (p != der + der_len) {
        die("'%s' has %ld bytes after the ContentInfo", in, (long)(der + der_len - p));
    }
    if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
        die("the CertRep is not a SignedData");
    }

    /* one signer, the one we were told to expect, signing with plain RSA */
    sis = CMS_get0_SignerInfos(cms);
    if (sk_CMS_SignerInfo_num(sis) != 1) {
        die("the CertRep has %d SignerInfos, expected 1", sk_CMS_SignerInfo_num(sis));
    }
    si = sk_CMS_SignerInfo_value(sis, 0);
    if (CMS_SignerInfo_cert_cmp(si, signer) != 0) {
        die("the CertRep's SignerInfo does not identify the certificate in '%s'", signerfile);
    }
    CMS_SignerInfo_get0_algs(si, NULL, NULL, &dig_alg, &sig_alg);
    if (OBJ_obj2nid(sig_alg->algorithm) != NID_rsaEncryption) {
        char buf[128];

        OBJ_obj2txt(buf, sizeof(buf), sig_alg->algorithm, 1);
        die("the SignerInfo signature algorithm is %s, not rsaEncryption "
            "(strongSwan rejects that)", buf);
    }

    /* signature and messageDigest; an absent eContent is treated as empty data */
    pcontent = CMS_get0_content(cms);
    if (!pcontent || !*pcontent) {
        dcont = BIO_new_mem_buf("", 0);
    }
    certs = sk_X509_new_null();
    out = BIO_new(BIO_s_mem());
    if (!certs || !out || !sk_X509_push(certs, signer)) {
        die("out of memory");
    }
    if (CMS_verify(cms, certs, NULL, dcont, out, CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) != 1) {
        die("the CertRep's signature does not verify with '%s'", signerfile);
    }
    content_len = BIO_get_mem_data(out, (char **)&content);

    status = printable_attr(si, OID_PKI_STATUS, "pkiStatus", V_ASN1_PRINTABLESTRING);
    fail_info = printable_attr(si, OID_FAIL_INFO, "failInfo", V_ASN1_PRINTABLESTRING);
    fail_text = printable_attr(si, OID_FAIL_INFO_TEXT, "failInfoText", V_ASN1_UTF8STRING);
    txid = printable_attr(si, OID_TRANSACTION_ID, "transactionID", V_ASN1_PRINTABLESTRING);
    msgtype = printable_attr(si, OID_MESSAGE_TYPE, "messageType", V_ASN1_PRINTABLESTRING);
    snonce = octet_attr(si, OID_SENDER_NONCE, "senderNonce");
    rnonce = octet_attr(si, OID_RECIPIENT_NONCE, "recipientNonce");
    if (!status) {
        die("the CertRep has no pkiStatus");
    }

    printf("pkiStatus=%s\n", status);
    if (fail_info) {
        printf("failInfo=%s\n", fail_info);
    }
    if (fail_text) {
        printf("failInfoText=%s\n", fail_text);
    }
    printf("transactionID=%s\n", txid ? txid : "(absent)");
    printf("messageType=%s\n", msgtype ? msgtype : "(absent)");
    if (!rnonce) {
        printf("recipientNonce=absent\n");
    }
    else if (noncefile) {
        long nlen;
        unsigned char *want = read_file(noncefile, &nlen);
        int same = ASN1_STRING_length(rnonce) == nlen
                   && memcmp(ASN1_STRING_get0_data(rnonce), want, (size_t)nlen) == 0;

        printf("recipientNonce=%s\n", same ? "ok" : "mismatch");
        OPENSSL_free(want);
    }
    else {
        printf("recipientNonce.len=%d\n", ASN1_STRING_length(rnonce));
    }
    printf("senderNonce.len=%d\n", snonce ? ASN1_STRING_length(snonce) : 0);
    printf("signingTime=%s\n",
           CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1) >= 0 ? "present" : "absent");
    printf("digest=%s\n", digest_name(OBJ_obj2nid(dig_alg->algorithm)));
    printf("content.len=%ld\n", content_len);
    fflush(stdout);

    if (strcmp(status, "0") == 0) {
        EVP_PKEY *key;
        X509 *cert, *issued = NULL;
        CMS_ContentInfo *env, *inner;
        STACK_OF(X509) *got;
        STACK_OF(X509_CRL) *crls;
        BIO *plain;
        const unsigned char *q;
        const unsigned char *pdata;
        long plen;
        int j;

        if (!keyfile || !certfile) {
            die("SUCCESS: --key and --cert are needed to decrypt the envelope");
        }
        key = load_key(keyfile);
        cert = load_cert(certfile);
        if (content_len <= 0) {
            die("SUCCESS without a pkcsPKIEnvelope");
        }
        printf("cipher=%s\n", cipher_name(envelope_cipher_nid(content, content_len)));
        fflush(stdout);
        q = content;
        env = d2i_CMS_ContentInfo(NULL, &q, content_len);
        if (!env || OBJ_obj2nid(CMS_get0_type(env)) != NID_pkcs7_enveloped) {
            die("the SUCCESS content is not an EnvelopedData");
        }
        plain = BIO_new(BIO_s_mem());
        if (!plain || CMS_decrypt(env, key, cert, NULL, plain, CMS_BINARY) != 1) {
            die("cannot decrypt the envelope with '%s'", keyfile);
        }
        plen = BIO_get_mem_data(plain, (char **)&pdata);
        q = pdata;
        inner = d2i_CMS_ContentInfo(NULL, &q, plen);
        if (!inner || OBJ_obj2nid(CMS_get0_type(inner)) != NID_pkcs7_signed) {
            die("the decrypted content is not a (degenerate) SignedData");
        }
        if (sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(inner)) != 0) {
            die("the degenerate SignedData has SignerInfos");
        }
        got = CMS_get1_certs(inner);
        crls = CMS_get1_crls(inner);
        printf("certs=%d\n", got ? sk_X509_num(got) : 0);
        printf("crls=%d\n", crls ? sk_X509_CRL_num(crls) : 0);
        for (j = 0; got && j < sk_X509_num(got); j++) {
            X509 *x = sk_X509_value(got, j);
            EVP_PKEY *pub = X509_get0_pubkey(x);

            if (any_cert || (pub && EVP_PKEY_eq(pub, key) == 1)) {
                issued = x;
                break;
            }
        }
        if (crlout) {
            BIO *w = BIO_new_file(crlout, "w");

            if (!crls || sk_X509_CRL_num(crls) != 1) {
                die("the CertRep does not hold exactly one CRL");
            }
            if (!w || !PEM_write_bio_X509_CRL(w, sk_X509_CRL_value(crls, 0))
                || BIO_free(w) != 1) {
                die("cannot write '%s'", crlout);
            }
        }
        else if (!issued) {
            die("no certificate in the CertRep carries our public key");
        }
        if (issued) {
            char *subj = X509_NAME_oneline(X509_get_subject_name(issued), NULL, 0);

            printf("issued.subject=%s\n", subj ? subj : "?");
            OPENSSL_free(subj);
        }
        if (certout && issued) {
            BIO *w = BIO_new_file(certout, "w");

            if (!w || !PEM_write_bio_X509(w, issued) || BIO_free(w) != 1) {
                die("cannot write '%s'", certout);
            }
        }
        sk_X509_pop_free(got, X509_free);
        sk_X509_CRL_pop_free(crls, X509_CRL_free);
        CMS_ContentInfo_free(inner);
        CMS_ContentInfo_free(env);
        BIO_free(plain);
        X509_free(cert);
        EVP_PKEY_free(key);
    }

    OPENSSL_free(status);
    OPENSSL_free(fail_info);
    OPENSSL_free(fail_text);
    OPENSSL_free(txid);
    OPENSSL_free(msgtype);
    sk_X509_free(certs);
    BIO_free(out);
    BIO_free(dcont);
    X509_free(signer);
    CMS_ContentInfo_free(cms);
    OPENSSL_free(der);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
    }
    if (strcmp(argv[1], "request") == 0) {
        return cmd_request(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "reply") == 0) {
        return cmd_reply(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage();
    }
    fprintf(stderr, "%s: unknown subcommand '%s'\n", progname, argv[1]);
    usage();
}

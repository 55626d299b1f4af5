/* SPDX-License-Identifier: Apache-2.0 */
/* scepreg pki init: the CA and RA files of an endpoint in one command.  It makes a CA
 * (or takes an existing one) and an RA certificate with the extensions every client we
 * know needs, writes the keys 0600 and the certificates 0644 into a folder of mode 0700
 * without ever replacing a file, checks the result with the loader the module runs at
 * startup (scep_ca_load), and prints the <Location> to paste.  --dry-run says the same
 * and writes nothing. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <apr_file_info.h>
#include <apr_strings.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "scep_ca.h"
#include "scep_import.h"
#include "scep_util.h"
#include "scep_util_own.h"
#include "scepreg.h"

/* RFC 5280's upper bounds of a commonName and an organizationName */
#define PKI_CN_MAX 64
#define PKI_ORG_MAX 64
#define PKI_DAYS_MAX 36500
#define PKI_PATH_MAX 1024

typedef struct pki_key_type_t {
    const char *name;           /* as the option takes it */
    const char *shown;          /* as messages show it */
    int rsa_bits;               /* 0: EC */
    const char *curve;
} pki_key_type_t;

static const pki_key_type_t key_types[] = {
    { "rsa:2048", "RSA 2048", 2048, NULL },
    { "rsa:3072", "RSA 3072", 3072, NULL },
    { "rsa:4096", "RSA 4096", 4096, NULL },
    { "ec:P-256", "EC P-256", 0, "P-256" },
    { "ec:P-384", "EC P-384", 0, "P-384" },
};

typedef struct pki_opts_t {
    const pki_key_type_t *ca_type, *ra_type;
    const char *ca_cert_in, *ca_key_in;     /* an existing CA, both or neither */
    const char *ca_name, *ra_name, *org;
    long ca_days, ra_days;
    const char *location, *db;
    int dry_run;
    const char *dir;                        /* absolute */
} pki_opts_t;

/* One file this run writes. */
typedef struct pki_out_t {
    const char *path;
    mode_t mode;
    const char *what;
} pki_out_t;

enum { OPT_KEY_TYPE = 1, OPT_RA_KEY_TYPE, OPT_CA_CERT, OPT_CA_KEY, OPT_CA_NAME, OPT_RA_NAME,
       OPT_ORG, OPT_CA_DAYS, OPT_RA_DAYS, OPT_LOCATION, OPT_DB, OPT_DRY_RUN, OPT_HELP };

static const struct option pki_options[] = {
    { "key-type", required_argument, NULL, OPT_KEY_TYPE },
    { "ra-key-type", required_argument, NULL, OPT_RA_KEY_TYPE },
    { "ca-cert", required_argument, NULL, OPT_CA_CERT },
    { "ca-key", required_argument, NULL, OPT_CA_KEY },
    { "ca-name", required_argument, NULL, OPT_CA_NAME },
    { "ra-name", required_argument, NULL, OPT_RA_NAME },
    { "org", required_argument, NULL, OPT_ORG },
    { "ca-days", required_argument, NULL, OPT_CA_DAYS },
    { "ra-days", required_argument, NULL, OPT_RA_DAYS },
    { "location", required_argument, NULL, OPT_LOCATION },
    { "db", required_argument, NULL, OPT_DB },
    { "dry-run", no_argument, NULL, OPT_DRY_RUN },
    { "help", no_argument, NULL, OPT_HELP },
    { NULL, 0, NULL, 0 }
};

static const pki_key_type_t *key_type_of(const char *name, int rsa_only)
{
    int i;

    for (i = 0; i < (int)(sizeof(key_types) / sizeof(key_types[0])); i++) {
        if (strcasecmp(key_types[i].name, name) == 0
            && (!rsa_only || key_types[i].rsa_bits)) {
            return &key_types[i];
        }
    }
    return NULL;
}

/* A path or URL path goes into the configuration as one bare word: no quotes, blanks,
 * control characters or anything Apache would read as syntax. */
static int config_word_ok(const char *s)
{
    const unsigned char *c;

    if (!*s || strlen(s) > PKI_PATH_MAX) {
        return 0;
    }
    for (c = (const unsigned char *)s; *c; c++) {
        if (*c <= ' ' || *c >= 0x7f || strchr("\"'\\<>#$%{}", *c)) {
            return 0;
        }
    }
    return 1;
}

static int name_ok(const char *s, int max)
{
    return *s && strlen(s) <= (size_t)max && scep_import_clean_text(s);
}

static int parse_days(const char *s, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < 1 || v > PKI_DAYS_MAX) {
        return 0;
    }
    *out = v;
    return 1;
}

static const char *absolute(apr_pool_t *p, const char *path)
{
    char *merged = NULL;

    if (apr_filepath_merge(&merged, NULL, path, APR_FILEPATH_NOTRELATIVE, p) != APR_SUCCESS) {
        return NULL;
    }
    return merged;
}

static int read_pki_args(apr_pool_t *p, const opts_t *o, pki_opts_t *po)
{
    char host[256];
    int c;

    memset(po, 0, sizeof(*po));
    po->ca_type = key_type_of("rsa:3072", 0);
    po->ra_type = key_type_of("rsa:2048", 1);
    po->ca_days = 3650;
    po->ra_days = 730;
    po->location = "/scep";
    po->db = "/var/lib/scep/devices";
    if (gethostname(host, sizeof(host)) != 0 || !name_ok(host, PKI_CN_MAX - 8)) {
        apr_cpystrn(host, "SCEP", sizeof(host));
    }
    host[sizeof(host) - 1] = '\0';
    po->ca_name = apr_pstrcat(p, host, " CA", NULL);
    po->ra_name = apr_pstrcat(p, host, " SCEP RA", NULL);

    optind = 0;                 /* glibc: start over, at command_args[1] */
    opterr = 0;
    while ((c = getopt_long(o->command_nargs, (char *const *)o->command_args, "",
                            pki_options, NULL)) != -1) {
        /* getopt gives every option that takes a value one; "" makes sure nothing below
         * reads a null, and fails every check an empty value would */
        const char *value = optarg ? optarg : "";

        switch (c) {
        case OPT_KEY_TYPE:
            if (!(po->ca_type = key_type_of(value, 0))) {
                return scepreg_syntax("--key-type: '%s' is none of rsa:2048, rsa:3072, "
                                      "rsa:4096, ec:P-256, ec:P-384", value);
            }
            break;
        case OPT_RA_KEY_TYPE:
            if (!(po->ra_type = key_type_of(value, 1))) {
                return scepreg_syntax("--ra-key-type: '%s' is none of rsa:2048, rsa:3072, "
                                      "rsa:4096 (clients encrypt to the RA with RSA)", value);
            }
            break;
        case OPT_CA_CERT: po->ca_cert_in = value; break;
        case OPT_CA_KEY: po->ca_key_in = value; break;
        case OPT_CA_NAME: po->ca_name = value; break;
        case OPT_RA_NAME: po->ra_name = value; break;
        case OPT_ORG: po->org = value; break;
        case OPT_CA_DAYS: case OPT_RA_DAYS:
            if (!parse_days(value, c == OPT_CA_DAYS ? &po->ca_days : &po->ra_days)) {
                return scepreg_syntax("--%s: '%s' is not a number of days (1 to %d)",
                                      c == OPT_CA_DAYS ? "ca-days" : "ra-days", value,
                                      PKI_DAYS_MAX);
            }
            break;
        case OPT_LOCATION: po->location = value; break;
        case OPT_DB: po->db = value; break;
        case OPT_DRY_RUN: po->dry_run = 1; break;
        case OPT_HELP:
            return scepreg_syntax("pki init: the options are described above");
        default:
            return scepreg_syntax("pki init: unknown option or missing value: %s",
                                  o->command_args[optind - 1]);
        }
    }
    if (optind != o->command_nargs - 1 || !o->command_args[optind]) {
        return scepreg_syntax("pki init: expected one folder (for example "
                              "/etc/apache2/scep) after the options");
    }
    if ((po->ca_cert_in == NULL) != (po->ca_key_in == NULL)) {
        return scepreg_syntax("pki init: an existing CA needs both --ca-cert and --ca-key");
    }
    if (!name_ok(po->ca_name, PKI_CN_MAX) || !name_ok(po->ra_name, PKI_CN_MAX)
        || (po->org && !name_ok(po->org, PKI_ORG_MAX))) {
        scepreg_complain("pki init: a name is empty, longer than 64 bytes, or holds control "
                         "characters or invalid UTF-8");
        return RC_ILLEGAL;
    }
    if (!config_word_ok(o->command_args[optind]) || !config_word_ok(po->location)
        || po->location[0] != '/' || !config_word_ok(po->db) || po->db[0] != '/'
        || (po->ca_cert_in && (!config_word_ok(po->ca_cert_in)
                               || !config_word_ok(po->ca_key_in)))) {
        scepreg_complain("pki init: the folder, --location, --db, --ca-cert and --ca-key go "
                         "into the configuration as they are: absolute (--location, --db), "
                         "without blanks, quotes or any of \\<>#$%%{}");
        return RC_ILLEGAL;
    }
    if (!(po->dir = absolute(p, o->command_args[optind]))
        || (po->ca_cert_in && (!(po->ca_cert_in = absolute(p, po->ca_cert_in))
                               || !(po->ca_key_in = absolute(p, po->ca_key_in))))) {
        scepreg_complain("pki init: cannot make the paths absolute");
        return RC_ILLEGAL;
    }
    return RC_OK;
}

/* ---- keys and certificates ------------------------------------------------------ */

static EVP_PKEY *new_key(const pki_key_type_t *t)
{
    if (t->rsa_bits) {
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)t->rsa_bits);
    }
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", t->curve);
}

/* A positive 127-bit random serial, as RFC 5280 and the CA/B baseline ask. */
static int random_serial(X509 *x)
{
    unsigned char bytes[16];
    BIGNUM *bn;
    int ok;

    if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
        return 0;
    }
    bytes[0] = (unsigned char)((bytes[0] & 0x7f) | 0x40);
    bn = BN_bin2bn(bytes, sizeof(bytes), NULL);
    ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int ok = ext && X509_add_ext(x, ext, -1) == 1;

    X509_EXTENSION_free(ext);
    return ok;
}

static X509_NAME *make_name(const char *org, const char *cn)
{
    X509_NAME *n = X509_NAME_new();

    if (n && org && X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8,
                                               (const unsigned char *)org, -1, -1, 0) != 1) {
        X509_NAME_free(n);
        return NULL;
    }
    if (n && X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn,
                                        -1, -1, 0) != 1) {
        X509_NAME_free(n);
        return NULL;
    }
    return n;
}

/* The digest that matches the signing key's strength. */
static const EVP_MD *digest_for(const EVP_PKEY *key)
{
    return EVP_PKEY_get_bits(key) >= 384 && EVP_PKEY_get_base_id(key) == EVP_PKEY_EC
           ? EVP_sha384() : EVP_sha256();
}

/* A certificate for `key` named `subject`, signed by `issuer_key` (`issuer` NULL: self-
 * signed), valid from an hour ago (clocks of devices run late) for `days`, ending no later
 * than the issuer.  The CA gets keyCertSign and cRLSign only, so that no client takes it
 * for the encryption certificate; the RA digitalSignature (it signs CertReps) and
 * keyEncipherment (clients encrypt to it, and Apple's pick it by that bit), both critical,
 * and no extended key usage, which some clients would check against. */
static X509 *make_cert(EVP_PKEY *key, X509_NAME *subject, X509 *issuer, EVP_PKEY *issuer_key,
                       long days, int is_ca)
{
    X509 *x = X509_new();
    X509V3_CTX ctx;
    int ok;

    if (!x) {
        return NULL;
    }
    ok = X509_set_version(x, X509_VERSION_3) == 1 && random_serial(x)
         && X509_set_subject_name(x, subject) == 1
         && X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : subject) == 1
         && X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL
         && X509_gmtime_adj(X509_getm_notAfter(x), days * 86400L) != NULL
         && X509_set_pubkey(x, key) == 1;
    if (ok && issuer
        && ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(issuer)) > 0) {
        ok = X509_set1_notAfter(x, X509_get0_notAfter(issuer)) == 1;
    }
    if (ok) {
        X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
        ok = add_ext(x, &ctx, NID_basic_constraints, is_ca ? "critical,CA:TRUE"
                                                           : "critical,CA:FALSE")
             && add_ext(x, &ctx, NID_key_usage, is_ca ? "critical,keyCertSign,cRLSign"
                                                      : "critical,digitalSignature,"
                                                        "keyEncipherment")
             && add_ext(x, &ctx, NID_subject_key_identifier, "hash")
             && (!issuer || add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always"));
    }
    if (ok) {
        ok = X509_sign(x, issuer_key, digest_for(issuer_key)) > 0;
    }
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* A new key of `type` and its certificate (O=--org, CN=cn), issued by `issuer` with
 * `issuer_key`, or a self-signed CA when they are NULL; both freed with the pool.  0 when
 * OpenSSL failed (its errors are queued). */
static int make_pair(apr_pool_t *p, const pki_opts_t *po, const pki_key_type_t *type,
                     const char *cn, long days, X509 *issuer, EVP_PKEY *issuer_key,
                     EVP_PKEY **key, X509 **cert)
{
    X509_NAME *name = scep_util_own_X509_NAME(p, make_name(po->org, cn));

    *key = scep_util_own_EVP_PKEY(p, new_key(type));
    *cert = NULL;
    if (*key && name) {
        *cert = scep_util_own_X509(p, make_cert(*key, name, issuer,
                                                issuer_key ? issuer_key : *key, days,
                                                issuer_key == NULL));
    }
    return *cert != NULL;
}

/* ---- files ------------------------------------------------------------------------ */

/* Writes a new file: O_EXCL, so a file that appeared since the check is not replaced
 * either, and O_NOFOLLOW, so a planted link leads nowhere. */
static int write_new(const pki_out_t *out, EVP_PKEY *key, X509 *cert, int *created)
{
    int fd = open(out->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, out->mode);
    FILE *f;
    int ok;

    *created = fd >= 0;
    if (fd < 0) {
        scepreg_complain("pki init: cannot create '%s': %s", out->path, strerror(errno));
        return 0;
    }
    if (fchmod(fd, out->mode) != 0 || !(f = fdopen(fd, "w"))) {
        scepreg_complain("pki init: cannot write '%s': %s", out->path, strerror(errno));
        close(fd);
        return 0;
    }
    ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1
             : PEM_write_X509(f, cert) == 1;
    ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
    if (fclose(f) != 0 || !ok) {
        scepreg_complain("pki init: cannot write '%s': %s", out->path, strerror(errno));
        return 0;
    }
    return 1;
}

/* The folder: made 0700 when missing; an existing one must be ours and writable by
 * nobody else, or somebody could swap a key under the server. */
static int check_dir(const pki_opts_t *po, int *missing)
{
    struct stat st;

    *missing = 0;
    if (lstat(po->dir, &st) != 0) {
        if (errno != ENOENT) {
            scepreg_complain("pki init: '%s': %s", po->dir, strerror(errno));
            return RC_DB;
        }
        *missing = 1;
        return RC_OK;
    }
    if (!S_ISDIR(st.st_mode)) {
        scepreg_complain("pki init: '%s' is not a folder", po->dir);
        return RC_DB;
    }
    if (st.st_uid != geteuid() || (st.st_mode & 022)) {
        scepreg_complain("pki init: '%s' must belong to you and be writable by nobody else "
                         "(it is uid %ld, mode %04o)", po->dir, (long)st.st_uid,
                         (unsigned)(st.st_mode & 07777));
        return RC_DB;
    }
    return RC_OK;
}

/* The first PEM certificate (into `cert`, `key` NULL) or unencrypted private key (into
 * `key`, `cert` NULL) of a file: an empty passphrase, so that an encrypted key fails
 * rather than prompts. */
static int read_pem(const char *path, X509 **cert, EVP_PKEY **key)
{
    FILE *f;

    if ((cert == NULL) == (key == NULL) || !(f = fopen(path, "r"))) {
        return 0;               /* one of the two is asked for */
    }
    if (key) {
        *key = PEM_read_PrivateKey(f, NULL, NULL, (void *)"");
    }
    else {
        *cert = PEM_read_X509(f, NULL, NULL, NULL);
    }
    fclose(f);
    return key ? *key != NULL : *cert != NULL;
}

/* An existing CA: a CA certificate that may sign certificates, still valid, and its key. */
static int load_existing_ca(apr_pool_t *p, const pki_opts_t *po, X509 **cert, EVP_PKEY **key)
{
    const char *why = NULL;

    if (!read_pem(po->ca_cert_in, cert, NULL)) {
        scepreg_complain("pki init: --ca-cert '%s' holds no PEM certificate %s",
                         po->ca_cert_in, scep_util_openssl_errors(p));
        return RC_ILLEGAL;
    }
    scep_util_own_X509(p, *cert);
    if (X509_check_ca(*cert) < 1
        || ((X509_get_extension_flags(*cert) & EXFLAG_KUSAGE)
            && !(X509_get_key_usage(*cert) & KU_KEY_CERT_SIGN))) {
        scepreg_complain("pki init: '%s' is not a CA certificate that may sign certificates",
                         po->ca_cert_in);
        return RC_ILLEGAL;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(*cert)) <= 0) {
        scepreg_complain("pki init: the CA certificate '%s' has expired", po->ca_cert_in);
        return RC_ILLEGAL;
    }
    /* httpd refuses a key others may read: better said now than after the RA is made */
    if (scep_ca_check_file(p, "the CA key (--ca-key)", po->ca_key_in, 1, &why) != APR_SUCCESS) {
        scepreg_complain("pki init: %s", why ? why : po->ca_key_in);
        return RC_ILLEGAL;
    }
    if (!read_pem(po->ca_key_in, NULL, key)) {
        ERR_clear_error();
        scepreg_complain("pki init: --ca-key '%s' holds no unencrypted PEM private key",
                         po->ca_key_in);
        return RC_ILLEGAL;
    }
    scep_util_own_EVP_PKEY(p, *key);
    if (X509_check_private_key(*cert, *key) != 1) {
        ERR_clear_error();
        scepreg_complain("pki init: --ca-key '%s' does not match --ca-cert '%s'",
                         po->ca_key_in, po->ca_cert_in);
        return RC_ILLEGAL;
    }
    return RC_OK;
}

static void print_location(const pki_opts_t *po, const char *ca_cert, const char *ca_key,
                           const char *ra_cert, const char *ra_key)
{
    printf("# Paste into a site or a file in /etc/apache2/conf-available, then register\n"
           "# devices (scepreg -c -g %s DEVICE.example.org) and reload Apache.\n"
           "<IfModule scep_module>\n"
           "    LimitRequestLine 65536\n"
           "    <Location %s>\n"
           "        SetHandler scep\n"
           "        ScepCACertificateFile %s\n"
           "        ScepCAKeyFile         %s\n"
           "        ScepRACertificateFile %s\n"
           "        ScepRAKeyFile         %s\n"
           "        ScepDeviceDB          %s\n"
           "        Require all granted\n"
           "    </Location>\n"
           "</IfModule>\n",
           po->db, po->location, ca_cert, ca_key, ra_cert, ra_key, po->db);
}

/* ---- the command -------------------------------------------------------------------- */

int scepreg_pki(apr_pool_t *p, const opts_t *o)
{
    pki_opts_t po;
    pki_out_t outs[4];
    int n_out = 0, i, rc, dir_missing, written = 0;
    const char *ca_cert, *ca_key, *ra_cert, *ra_key, *why = NULL;
    EVP_PKEY *ca_pkey = NULL, *ra_pkey = NULL;
    X509 *ca_x509 = NULL, *ra_x509 = NULL;
    scep_ca_files_t files;
    scep_ca_t *loaded;

    if (o->command_nargs < 1 || strcmp(o->command_args[0], "init") != 0) {
        return scepreg_syntax("pki: the only command is init");
    }
    rc = read_pki_args(p, o, &po);
    if (rc != RC_OK || !po.dir) {       /* the folder is set whenever the reading succeeds */
        return rc != RC_OK ? rc : RC_SYNTAX;
    }
    ra_cert = apr_pstrcat(p, po.dir, "/ra.pem", NULL);
    ra_key = apr_pstrcat(p, po.dir, "/ra.key", NULL);
    ca_cert = po.ca_cert_in ? po.ca_cert_in : apr_pstrcat(p, po.dir, "/ca.pem", NULL);
    ca_key = po.ca_key_in ? po.ca_key_in : apr_pstrcat(p, po.dir, "/ca.key", NULL);
    if (!po.ca_cert_in) {
        outs[n_out++] = (pki_out_t){ ca_key, 0600, apr_pstrcat(p, "the CA key (",
                                                              po.ca_type->shown, ")", NULL) };
        outs[n_out++] = (pki_out_t){ ca_cert, 0644, apr_psprintf(p, "the CA certificate "
                                     "(CN=%s, %ld days)", po.ca_name, po.ca_days) };
    }
    outs[n_out++] = (pki_out_t){ ra_key, 0600, apr_pstrcat(p, "the RA key (",
                                                          po.ra_type->shown, ")", NULL) };
    outs[n_out++] = (pki_out_t){ ra_cert, 0644, apr_psprintf(p, "the RA certificate (CN=%s, "
                                 "%ld days, digitalSignature and keyEncipherment)",
                                 po.ra_name, po.ra_days) };

    if ((rc = check_dir(&po, &dir_missing)) != RC_OK) {
        return rc;
    }
    for (i = 0; i < n_out; i++) {
        struct stat st;

        if (lstat(outs[i].path, &st) == 0 || errno != ENOENT) {
            scepreg_complain("pki init: '%s' exists: nothing was written (a file is never "
                             "replaced; move it away, or keep the CA with --ca-cert and "
                             "--ca-key)", outs[i].path);
            return RC_DB;
        }
    }
    if (po.ca_cert_in && (rc = load_existing_ca(p, &po, &ca_x509, &ca_pkey)) != RC_OK) {
        return rc;
    }
    if (po.dry_run) {
        if (dir_missing) {
            printf("# would create the folder %s (mode 0700)\n", po.dir);
        }
        for (i = 0; i < n_out; i++) {
            printf("# would write %s: %s, mode %04o\n", outs[i].path, outs[i].what,
                   (unsigned)outs[i].mode);
        }
        if (po.ca_cert_in) {
            printf("# would sign the RA certificate with the CA in %s\n", ca_cert);
        }
        print_location(&po, ca_cert, ca_key, ra_cert, ra_key);
        return scepreg_finish_output();
    }

    /* everything slow before the first file: the keys and certificates in memory */
    if (!po.ca_cert_in && !make_pair(p, &po, po.ca_type, po.ca_name, po.ca_days, NULL, NULL,
                                     &ca_pkey, &ca_x509)) {
        scepreg_complain("pki init: cannot make the CA: %s", scep_util_openssl_errors(p));
        return RC_DB;
    }
    if (!make_pair(p, &po, po.ra_type, po.ra_name, po.ra_days, ca_x509, ca_pkey, &ra_pkey,
                   &ra_x509)) {
        scepreg_complain("pki init: cannot make the RA: %s", scep_util_openssl_errors(p));
        return RC_DB;
    }
    if (scepreg_interrupted) {
        return scepreg_report_interrupted();
    }

    if (dir_missing && mkdir(po.dir, 0700) != 0) {
        scepreg_complain("pki init: cannot create the folder '%s': %s", po.dir,
                         strerror(errno));
        return RC_DB;
    }
    rc = RC_OK;
    for (i = 0; i < n_out && rc == RC_OK; i++) {
        int is_ca = !po.ca_cert_in && i < 2, is_key = outs[i].mode == 0600, created = 0;

        if (!write_new(&outs[i], is_key ? (is_ca ? ca_pkey : ra_pkey) : NULL,
                       is_ca ? ca_x509 : ra_x509, &created)) {
            rc = RC_DB;
        }
        written += created;
    }
    if (rc == RC_OK) {
        /* the module's own startup checks, so that what was written is what it loads */
        memset(&files, 0, sizeof(files));
        files.ca_cert_file = ca_cert;
        files.ca_key_file = ca_key;
        files.ra_cert_file = ra_cert;
        files.ra_key_file = ra_key;
        if (scep_ca_load(p, &files, &scepreg_cli_log, &loaded, &why) != APR_SUCCESS) {
            scepreg_complain("pki init: the files fail mod_scep's checks: %s",
                             why ? why : "(no reason given)");
            rc = RC_DB;
        }
    }
    if (rc != RC_OK) {
        /* a half-made set would only be refused on the next run: take back the files this
         * run created (the failed one included when open made it), and only those */
        for (i = 0; i < written; i++) {
            unlink(outs[i].path);
        }
        if (dir_missing) {
            rmdir(po.dir);
        }
        return rc;
    }
    for (i = 0; i < n_out; i++) {
        printf("# wrote %s: %s, mode %04o\n", outs[i].path, outs[i].what,
               (unsigned)outs[i].mode);
    }
    print_location(&po, ca_cert, ca_key, ra_cert, ra_key);
    return scepreg_finish_output();
}

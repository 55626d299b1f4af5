/* SPDX-License-Identifier: Apache-2.0 */
/* scepload: the load generator of mod_scep, in the spirit of ab.  It enrolls N devices
 * with C concurrent keep-alive connections against one SCEP endpoint and reports
 * enrollments per second, latency percentiles and failures by reason.
 *
 * Device keys are the expensive part of a client, so they are generated once into a pool
 * cached on disk and reused across device identities (each enrollment still has its own
 * name, CSR and transactionID).  With -D (an LMDB folder) or --pg/--pg-file (a
 * PostgreSQL database, as scepreg names one) the run registers a wildcard with a random
 * challenge in the device database through the core's store, as scepreg would, and
 * removes it afterwards.  Messages are built and read by the core's scep_msg, so the
 * client side costs what a real client costs.
 *
 * Bounded: at most MAX_COUNT enrollments, MAX_CONCURRENCY connections and the -t time
 * limit; it connects only to the host of the URL given (no redirects, no proxies). */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <apr_file_io.h>
#include <apr_general.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <curl/curl.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "scep_db.h"
#include "scep_decode.h"
#include "scep_keyless.h"
#include "scep_msg.h"
#include "scep_pgconf.h"
#include "scep_sql.h"
#include "scep_store.h"
#include "scep_util.h"
#include "scep_version.h"

#define MAX_COUNT 1000000
#define MAX_CONCURRENCY 256
#define MAX_POOL 100000
/* -P keeps every request in memory: about 4 KB each by POST with 2048-bit keys */
#define MAX_PREPARED 60000
#define MAX_ANSWER (1024 * 1024)
/* -r: a device that sees no answer sends the same request again a little later */
#define MAX_RETRIES 1000
#define RETRY_PAUSE 1

static const char *progname = "scepload";

typedef struct opts_t {
    const char *url, *challenge, *domain, *dbdir, *pool_file, *format, *serials_file;
    const char *pg_conninfo;            /* --pg or --pg-file: the database instead of -D */
    const char *pg_value;               /* the option's value, read once APR is up */
    int pg_option;                      /* OPT_PG or OPT_PG_FILE */
    long count, concurrency, bits, pool_size, time_limit, retries;
    int get, quiet, prepare, check_later;
} opts_t;

typedef struct key_t {
    EVP_PKEY *key;
    X509 *selfsigned;                  /* signs the requests made with this key */
} pool_key_t;

typedef struct run_t {
    const opts_t *o;
    pool_key_t *keys;
    long nkeys;
    STACK_OF(X509) *ca_certs;
    X509 *recipient;
    apr_thread_mutex_t *lock;
    long next, done, ok;
    double *latency;                   /* seconds of HTTP exchange, per enrollment */
    apr_hash_t *failures;              /* reason -> count (long *) */
    apr_hash_t *retried;               /* reason of an attempt sent again -> count */
    FILE *serials;                     /* -S: one line per certificate received */
    apr_pool_t *pool;                  /* for the hash, under lock */
    double started, deadline;
    int stop;
    struct request_t *prepared;        /* -P: built before the clock, one per enrollment */
    apr_pool_t *pool_for_prepared;
    struct buffer_t *answers;          /* -a: kept for checking after the clock */
} run_t;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    scep_util_cli_say(progname, fmt, ap);
    va_end(ap);
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void)
{
    fprintf(stderr,
        "Usage (scepload %s, the load generator of mod_scep):\n"
        "  %s -u URL [-n COUNT] [-c CONCURRENCY] [-m get|post] [-b 2048|3072|4096]\n"
        "           [-C CHALLENGE -d DOMAIN | -D DBDIR | --pg CONNINFO | --pg-file FILE]\n"
        "           [-k POOLFILE] [-p POOLSIZE]\n"
        "           [-t SECONDS] [-o json|csv] [-P [-a]] [-q] [-r RETRIES] [-S FILE]\n"
        "  -u  the SCEP endpoint (http://host:port/path); nothing else is contacted\n"
        "  -n  enrollments (default 100, at most %d)   -c  connections (default 4, at most %d)\n"
        "  -m  PKIOperation by GET or POST (default post)   -b  device key size (default 2048)\n"
        "  -C  the challenge of a registration covering DOMAIN (-d): devices are devN.DOMAIN\n"
        "  -D  register a wildcard with a random challenge in this device database for the\n"
        "      run (as scepreg would; removed afterwards)\n"
        "  --pg, --pg-file  the same in a PostgreSQL database, named as scepreg names it\n"
        "      (a password only in FILE, mode 0600, PGPASSFILE or PGPASSWORD)\n"
        "  -k  key pool file (default ~/.cache/scepload/rsa-BITS.pem)   -p  pool size\n"
        "      (default the smaller of COUNT and 1000)\n"
        "  -t  time limit in seconds (default 600)   -o  also print json or csv\n"
        "  -P  build every request before the clock starts (at most %d), so the run\n"
        "      measures the server rather than the client's signatures\n"
        "  -a  with -P: check the answers (signature, decryption, certificate) after the\n"
        "      clock stops, so the client's own RSA work does not compete with the server\n"
        "      for the CPU during the run; PENDING is still seen at once\n"
        "  -q  no progress line\n"
        "  -r  send a request again, the same bytes, after a transport failure, an HTTP 5xx\n"
        "      or PENDING, at most RETRIES times %d s apart (default 0, at most %d)\n"
        "  -S  write \"SERIAL FQDN TRANSACTIONID\" for every certificate received to FILE\n",
        SCEP_VERSION, progname, MAX_COUNT, MAX_CONCURRENCY, MAX_PREPARED, RETRY_PAUSE,
        MAX_RETRIES);
    exit(2);
}

static long number(const char *opt, const char *s, long min, long max)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (!*s || *end || v < min || v > max) {
        fprintf(stderr, "%s: %s: '%s' is not a number from %ld to %ld\n", progname, opt, s,
                min, max);
        exit(2);
    }
    return v;
}

/* ---- HTTP ------------------------------------------------------------------------------ */

typedef struct buffer_t {
    unsigned char *data;
    size_t len;
    int too_big;
} buffer_t;

static size_t collect(char *ptr, size_t size, size_t nmemb, void *baton)
{
    buffer_t *b = baton;
    size_t n = size * nmemb;
    unsigned char *bigger;

    if (b->len + n > MAX_ANSWER || !(bigger = realloc(b->data, b->len + n))) {
        b->too_big = 1;
        return 0;
    }
    b->data = bigger;
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    return n;
}

static CURL *new_handle(void)
{
    CURL *curl = curl_easy_init();

    if (!curl) {
        die("libcurl cannot start");
    }
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_PROXY, "");
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "scepload/" SCEP_VERSION);
    return curl;
}

/* One request on a kept-alive handle; the HTTP status, or 0 for a transport failure. */
static long http(CURL *curl, const char *url, const unsigned char *body, size_t body_len,
                 buffer_t *answer, const char **error)
{
    static const char *types[] = { "Content-Type: application/x-pki-message", NULL };
    struct curl_slist *headers = NULL;
    long status = 0;
    CURLcode rc;

    memset(answer, 0, sizeof(*answer));
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, answer);
    if (body) {
        headers = curl_slist_append(NULL, types[0]);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, (const char *)body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    else {
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
    }
    rc = curl_easy_perform(curl);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    }
    else {
        *error = curl_easy_strerror(rc);
    }
    curl_slist_free_all(headers);
    return status;
}

/* ---- the endpoint's certificates --------------------------------------------------------- */

static void fetch_ca(run_t *run)
{
    CURL *curl = new_handle();
    buffer_t b;
    const char *error = NULL;
    const unsigned char *in;
    char *url = apr_pstrcat(run->pool, run->o->url, "?operation=GetCACert", NULL);
    long status = http(curl, url, NULL, 0, &b, &error);
    X509 *single;
    PKCS7 *p7;
    int i;

    if (status != 200) {
        die("GetCACert at %s: %s", run->o->url,
            status ? apr_psprintf(run->pool, "HTTP %ld", status) : error);
    }
    in = b.data;
    if ((single = d2i_X509(NULL, &in, (long)b.len)) != NULL) {
        run->ca_certs = sk_X509_new_null();
        sk_X509_push(run->ca_certs, single);
    }
    else {
        in = b.data;
        p7 = d2i_PKCS7(NULL, &in, (long)b.len);
        if (!p7 || !PKCS7_type_is_signed(p7) || !p7->d.sign->cert) {
            die("GetCACert at %s: no certificates in the answer", run->o->url);
        }
        run->ca_certs = X509_chain_up_ref(p7->d.sign->cert);
        PKCS7_free(p7);
    }
    /* Requests are encrypted to one of these keys and answers verified with another:
     * with e = 1 both would be worthless (issue 15, point 10), and a huge e would slow
     * the measurement down (point 12) */
    for (i = 0; i < sk_X509_num(run->ca_certs); i++) {
        X509 *x = sk_X509_value(run->ca_certs, i);
        const char *problem = scep_keyless_rsa_exponent_problem(X509_get_X509_PUBKEY(x));

        if (problem) {
            char *name = X509_NAME_oneline(X509_get_subject_name(x), NULL, 0);

            die("GetCACert at %s: certificate %d (%s) cannot be used: %s", run->o->url,
                i + 1, name ? name : "?", problem);
        }
    }
    run->recipient = sk_X509_value(run->ca_certs, 0);
    for (i = 0; i < sk_X509_num(run->ca_certs); i++) {
        X509 *x = sk_X509_value(run->ca_certs, i);

        if (!X509_check_ca(x) && (!(X509_get_extension_flags(x) & EXFLAG_KUSAGE)
                                  || (X509_get_key_usage(x) & KU_KEY_ENCIPHERMENT))) {
            run->recipient = x;
            break;
        }
    }
    free(b.data);
    curl_easy_cleanup(curl);
    ERR_clear_error();
}

/* ---- the key pool --------------------------------------------------------------------- */

static X509 *self_signed(EVP_PKEY *key)
{
    X509 *x = X509_new();

    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"scepload device", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_gmtime_adj(X509_getm_notBefore(x), -300);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    if (X509_sign(x, key, EVP_sha256()) <= 0) {
        die("cannot make a self-signed certificate");
    }
    return x;
}

typedef struct gen_t {
    run_t *run;
    long from, to;
} gen_t;

static void *APR_THREAD_FUNC generate(apr_thread_t *thread, void *baton)
{
    gen_t *g = baton;
    long i;

    for (i = g->from; i < g->to; i++) {
        if (!(g->run->keys[i].key = EVP_RSA_gen((unsigned int)g->run->o->bits))) {
            die("cannot generate an RSA key");
        }
    }
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

static const char *default_pool_file(apr_pool_t *p, long bits)
{
    const char *cache = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    const char *dir = cache && *cache ? apr_pstrcat(p, cache, "/scepload", NULL)
                      : apr_pstrcat(p, home && *home ? home : "/tmp", "/.cache/scepload",
                                    NULL);

    return apr_psprintf(p, "%s/rsa-%ld.pem", dir, bits);
}

/* Private keys: the file is made 0600 before a key is written, in a folder made 0700 if
 * it is missing.  A message and no cache when that cannot be done; the run goes on. */
static void save_pool(run_t *run, const char *file)
{
    const char *slash = strrchr(file, '/');
    const char *dir = slash && slash != file
                      ? apr_pstrndup(run->pool, file, (apr_size_t)(slash - file)) : NULL;
    int fd = -1;
    FILE *f = NULL;
    long i;

    if (dir) {
        apr_dir_make_recursive(dir, APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_UEXECUTE,
                               run->pool);
    }
    fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    /* an existing file keeps its mode through O_CREAT: narrow it before the keys go in */
    if (fd < 0 || fchmod(fd, 0600) != 0 || (f = fdopen(fd, "w")) == NULL) {
        if (!run->o->quiet) {
            fprintf(stderr, "%s: cannot cache the pool in %s: %s\n", progname, file,
                    strerror(errno));
        }
        if (fd >= 0) {
            close(fd);
        }
        return;
    }
    for (i = 0; i < run->nkeys; i++) {
        PEM_write_PrivateKey(f, run->keys[i].key, NULL, NULL, 0, NULL, NULL);
    }
    if (fclose(f) != 0 && !run->o->quiet) {
        fprintf(stderr, "%s: cannot cache the pool in %s: %s\n", progname, file,
                strerror(errno));
    }
}

static void load_pool(run_t *run)
{
    const opts_t *o = run->o;
    const char *file = o->pool_file ? o->pool_file : default_pool_file(run->pool, o->bits);
    FILE *f = fopen(file, "r");
    long have = 0, i, threads = 2, share;
    double t0 = now_s();
    EVP_PKEY *k;

    run->nkeys = o->pool_size;
    run->keys = calloc((size_t)run->nkeys, sizeof(*run->keys));
    if (!run->keys) {
        die("out of memory");
    }
    while (f && have < run->nkeys && (k = PEM_read_PrivateKey(f, NULL, NULL, NULL)) != NULL) {
        if (EVP_PKEY_get_bits(k) == o->bits) {
            run->keys[have++].key = k;
        }
        else {
            EVP_PKEY_free(k);
        }
    }
    if (f) {
        fclose(f);
    }
    ERR_clear_error();
    if (have < run->nkeys) {
        apr_thread_t *t[8];
        gen_t g[8];
        apr_status_t ignored;

        if (!o->quiet) {
            fprintf(stderr, "%s: generating %ld RSA-%ld keys for the pool %s\n", progname,
                    run->nkeys - have, o->bits, file);
        }
        share = (run->nkeys - have + threads - 1) / threads;
        for (i = 0; i < threads; i++) {
            g[i].run = run;
            g[i].from = have + i * share;
            g[i].to = g[i].from + share > run->nkeys ? run->nkeys : g[i].from + share;
            if (g[i].from >= g[i].to) {
                t[i] = NULL;
                continue;
            }
            apr_thread_create(&t[i], NULL, generate, &g[i], run->pool);
        }
        for (i = 0; i < threads; i++) {
            if (t[i]) {
                apr_thread_join(&ignored, t[i]);
            }
        }
        save_pool(run, file);
    }
    for (i = 0; i < run->nkeys; i++) {
        run->keys[i].selfsigned = self_signed(run->keys[i].key);
    }
    if (!o->quiet) {
        fprintf(stderr, "%s: %ld keys ready in %.1f s\n", progname, run->nkeys, now_s() - t0);
    }
}

/* ---- one enrollment -------------------------------------------------------------------- */

static unsigned char *make_csr(const opts_t *o, EVP_PKEY *key, const char *name, int *len)
{
    X509_REQ *req = X509_REQ_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    X509V3_CTX ctx;
    X509_EXTENSION *san;
    unsigned char *der = NULL;
    size_t san_len = strlen(name) + 5;
    char *san_text = malloc(san_len);

    if (!san_text) {
        die("out of memory");
    }
    snprintf(san_text, san_len, "DNS:%s", name);
    X509_REQ_set_version(req, 0);
    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
                               (const unsigned char *)name, -1, -1, 0);
    X509_REQ_set_pubkey(req, key);
    X509V3_set_ctx(&ctx, NULL, NULL, req, NULL, 0);
    san = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san_text);
    sk_X509_EXTENSION_push(exts, san);
    X509_REQ_add_extensions(req, exts);
    X509_REQ_add1_attr_by_NID(req, NID_pkcs9_challengePassword, MBSTRING_UTF8,
                              (const unsigned char *)o->challenge, -1);
    if (X509_REQ_sign(req, key, EVP_sha256()) <= 0 || (*len = i2d_X509_REQ(req, &der)) <= 0) {
        die("cannot make a CSR");
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    free(san_text);
    return der;
}

static void count_reason(run_t *run, apr_hash_t *counts, const char *reason)
{
    long *n;

    apr_thread_mutex_lock(run->lock);
    n = apr_hash_get(counts, reason, APR_HASH_KEY_STRING);
    if (!n) {
        n = apr_pcalloc(run->pool, sizeof(*n));
        apr_hash_set(counts, apr_pstrdup(run->pool, reason), APR_HASH_KEY_STRING, n);
    }
    (*n)++;
    apr_thread_mutex_unlock(run->lock);
}

/* One PKCSReq, ready to send. */
typedef struct request_t {
    const char *txid;
    const char *name;                  /* the device's FQDN */
    unsigned char nonce[16];
    const char *url;
    const unsigned char *body;         /* NULL: sent by GET */
    apr_size_t body_len;
    const char *failure;               /* it could not be built */
} request_t;

static void build_request(run_t *run, apr_pool_t *p, long index, request_t *r)
{
    const opts_t *o = run->o;
    pool_key_t *k = &run->keys[index % run->nkeys];
    const char *name = apr_psprintf(p, "dev%07ld.%s", index, o->domain);
    unsigned char rnd[16], *der, *msg;
    apr_size_t msg_len;
    int csr_len;

    memset(r, 0, sizeof(*r));
    RAND_bytes(rnd, sizeof(rnd));
    r->txid = scep_util_hex(p, rnd, sizeof(rnd));
    r->name = name;
    der = make_csr(o, k->key, name, &csr_len);
    if (scep_msg_build_request(p, k->selfsigned, k->key, run->recipient, EVP_aes_128_cbc(),
                               EVP_sha256(), SCEP_MSG_PKCSREQ, r->txid, der,
                               (apr_size_t)csr_len, r->nonce, &msg, &msg_len) != APR_SUCCESS) {
        r->failure = "client: cannot build the request";
    }
    OPENSSL_free(der);
    if (r->failure) {
        return;
    }
    if (o->get) {
        const char *b64 = scep_decode_base64(p, msg, msg_len);
        char *esc = apr_palloc(p, strlen(b64) * 3 + 1), *e = esc;

        for (; *b64; b64++) {
            e += (*b64 == '+' || *b64 == '/' || *b64 == '=')
                 ? apr_snprintf(e, 4, "%%%02X", (unsigned char)*b64)
                 : (*e = *b64, 1);
        }
        *e = '\0';
        r->url = apr_pstrcat(p, o->url, "?operation=PKIOperation&message=", esc, NULL);
    }
    else {
        r->url = apr_pstrcat(p, o->url, "?operation=PKIOperation", NULL);
        r->body = msg;
        r->body_len = msg_len;
    }
}

/* -S: the serial in the form the server records and scepreg -L prints (BN_bn2hex:
 * upper-case hexadecimal, whole bytes), so the two lists can be compared as text. */
static void note_serial(run_t *run, apr_pool_t *p, X509 *cert, const request_t *r)
{
    const char *hex;

    if (!run->serials) {
        return;
    }
    hex = scep_store_serial_hex(p, X509_get0_serialNumber(cert));
    apr_thread_mutex_lock(run->lock);
    /* flushed per line: what a killed run received is on disk */
    fprintf(run->serials, "%s %s %s\n", hex ? hex : "?", r->name, r->txid);
    fflush(run->serials);
    apr_thread_mutex_unlock(run->lock);
}

/* Checks an answer to request `index`: NULL when it is a SUCCESS holding the device's
 * certificate (noted for -S), else the reason of the failure. */
static const char *judge(run_t *run, apr_pool_t *p, long index, const request_t *r,
                         const buffer_t *answer)
{
    pool_key_t *k = &run->keys[index % run->nkeys];
    const char *why = NULL;
    scep_reply_info_t info;
    int i;

    if (scep_msg_read_reply(p, answer->data, answer->len, run->ca_certs, k->selfsigned, k->key,
                            r->txid, r->nonce, &info, &why) != APR_SUCCESS) {
        return apr_pstrcat(p, "unusable answer: ", why, NULL);
    }
    if (info.status == SCEP_STATUS_PENDING) {
        return "PENDING";
    }
    if (info.status == SCEP_STATUS_FAILURE) {
        return apr_pstrcat(p, "FAILURE ", scep_msg_fail_info_name(info.fail_info), NULL);
    }
    for (i = 0; i < sk_X509_num(info.certs); i++) {
        if (EVP_PKEY_eq(X509_get0_pubkey(sk_X509_value(info.certs, i)), k->key) == 1) {
            note_serial(run, p, sk_X509_value(info.certs, i), r);
            return NULL;
        }
    }
    return "SUCCESS without the device's certificate";
}

/* -a: whether an answer says PENDING, read without checking its signature (that comes
 * after the clock), so that the request can be sent again as a device would. */
static int says_pending(const buffer_t *answer)
{
    const unsigned char *in = answer->data;
    CMS_ContentInfo *cms = answer->len <= LONG_MAX
        ? scep_keyless_d2i(ASN1_ITEM_rptr(CMS_ContentInfo), &in, (long)answer->len) : NULL;
    STACK_OF(CMS_SignerInfo) *sis = cms ? CMS_get0_SignerInfos(cms) : NULL;
    ASN1_OBJECT *pki_status = OBJ_txt2obj("2.16.840.1.113733.1.9.3", 1);
    const ASN1_STRING *status = NULL;
    int pending;

    if (sis && sk_CMS_SignerInfo_num(sis) == 1 && pki_status) {
        status = CMS_signed_get0_data_by_OBJ(sk_CMS_SignerInfo_value(sis, 0), pki_status, -3,
                                             V_ASN1_PRINTABLESTRING);
    }
    pending = status && ASN1_STRING_length(status) == 1
              && ASN1_STRING_get0_data(status)[0] == '0' + SCEP_STATUS_PENDING;
    ASN1_OBJECT_free(pki_status);
    CMS_ContentInfo_free(cms);
    ERR_clear_error();
    return pending;
}

/* Sends the request and checks the answer (with -a: keeps it for checking after the
 * clock).  Returns NULL on success, else the reason of the failure.  *took is the time
 * from sending the request to the last byte of the answer: the server's latency as the
 * device sees it, without the client's own work of building the request and checking
 * the answer. */
static const char *exchange(run_t *run, CURL *curl, apr_pool_t *p, long index,
                            const request_t *r, double *took)
{
    const char *error = NULL, *failure;
    buffer_t answer;
    long status;
    double sent;

    *took = 0;
    if (r->failure) {
        return r->failure;
    }
    sent = now_s();
    status = http(curl, r->url, r->body, r->body_len, &answer, &error);
    *took = now_s() - sent;
    if (status != 200) {
        free(answer.data);
        return status ? apr_psprintf(p, "HTTP %ld", status)
                      : apr_pstrcat(p, "transport: ", error, NULL);
    }
    if (run->o->check_later) {
        if (says_pending(&answer)) {
            free(answer.data);
            return "PENDING";
        }
        run->answers[index] = answer;   /* this thread's slot alone */
        return NULL;
    }
    failure = judge(run, p, index, r, &answer);
    free(answer.data);
    return failure;
}

/* Whether a device would send the same request again: the server or the path to it had
 * a problem that may pass, or the server asked it to wait. */
static int retryable(const char *failure)
{
    return strncmp(failure, "transport: ", 11) == 0 || strncmp(failure, "HTTP 5", 6) == 0
           || strcmp(failure, "PENDING") == 0;
}

/* The next enrollment to hand out, or -1 when the run is over. */
static long next_index(run_t *run)
{
    long index;

    apr_thread_mutex_lock(run->lock);
    index = run->stop || run->next >= run->o->count || now_s() > run->deadline
            ? -1 : run->next++;
    apr_thread_mutex_unlock(run->lock);
    return index;
}

static void *APR_THREAD_FUNC worker(apr_thread_t *thread, void *baton)
{
    run_t *run = baton;
    CURL *curl = new_handle();
    apr_pool_t *p;
    long index;

    apr_pool_create(&p, NULL);
    while ((index = next_index(run)) >= 0) {
        request_t built = { 0 };
        const request_t *r = run->prepared ? &run->prepared[index] : &built;
        double took;
        const char *failure;
        long attempt;

        if (!run->prepared) {
            build_request(run, p, index, &built);
        }
        /* A retry sends the very same bytes (transactionID, senderNonce, CSR), as a
         * device does that never saw the answer: the server must hand back the
         * certificate it recorded for the transaction, not issue a second one. */
        for (attempt = 0;; attempt++) {
            failure = exchange(run, curl, p, index, r, &took);
            if (!failure || attempt >= run->o->retries || !retryable(failure)
                || now_s() > run->deadline) {
                break;
            }
            count_reason(run, run->retried, failure);
            apr_sleep(apr_time_from_sec(RETRY_PAUSE));
        }
        if (failure) {
            count_reason(run, run->failures, failure);
        }
        apr_thread_mutex_lock(run->lock);
        run->latency[run->done++] = took;
        run->ok += failure == NULL && !run->o->check_later;
        apr_thread_mutex_unlock(run->lock);
        apr_pool_clear(p);
        ERR_clear_error();
    }
    apr_pool_destroy(p);
    curl_easy_cleanup(curl);
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

/* -P: every request built before the clock starts, in the pool of the thread that built
 * it, so the run measures the server rather than the client's signatures. */
static void *APR_THREAD_FUNC preparer(apr_thread_t *thread, void *baton)
{
    run_t *run = baton;
    apr_pool_t *p;
    long index;

    apr_pool_create(&p, run->pool_for_prepared);
    while ((index = next_index(run)) >= 0) {
        build_request(run, p, index, &run->prepared[index]);
        ERR_clear_error();
    }
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

/* -a: the answers kept during the run, checked now that the clock has stopped. */
static void *APR_THREAD_FUNC checker(apr_thread_t *thread, void *baton)
{
    run_t *run = baton;
    apr_pool_t *p;
    long index;

    apr_pool_create(&p, NULL);
    while ((index = next_index(run)) >= 0) {
        buffer_t *answer = &run->answers[index];
        const char *failure;

        if (!answer->data) {
            continue;   /* failed during the run, and counted then */
        }
        failure = judge(run, p, index, &run->prepared[index], answer);
        free(answer->data);
        answer->data = NULL;
        if (failure) {
            count_reason(run, run->failures, failure);
        }
        apr_thread_mutex_lock(run->lock);
        run->ok += failure == NULL;
        apr_thread_mutex_unlock(run->lock);
        apr_pool_clear(p);
        ERR_clear_error();
    }
    apr_pool_destroy(p);
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

/* ---- registration for the run ------------------------------------------------------------ */

static const char *wildcard_key(apr_pool_t *p, const char *domain)
{
    return apr_pstrcat(p, "*.", domain, NULL);
}

static void register_run(run_t *run, opts_t *o, int remove)
{
    apr_pool_t *p;
    scep_db_t *db;
    scep_txn_t *txn;
    scep_device_t *dev;
    const char *why = NULL, *opt = o->pg_conninfo ? "--pg" : "-D";
    apr_status_t rv;

    /* The database is opened before the run and again after it, and closed each time by
     * destroying this pool: LMDB forbids one process two environments on the same files
     * at once, and an environment left open in run->pool was never closed at all. */
    apr_pool_create(&p, run->pool);
    rv = o->pg_conninfo ? scep_sql_connect(p, o->pg_conninfo, 0, NULL, &db, &why)
                        : scep_db_open(p, o->dbdir, 0, 0, NULL, &db, &why);
    if (rv != APR_SUCCESS) {
        die("%s %s: %s", opt, o->dbdir, why ? why : scep_db_strerror(p, rv));
    }
    if ((rv = scep_db_begin(db, p, 1, &txn)) != APR_SUCCESS) {
        die("%s %s: %s", opt, o->dbdir, scep_db_strerror(p, rv));
    }
    if (remove) {
        rv = scep_store_device_delete(txn, wildcard_key(p, o->domain));
    }
    else {
        dev = scep_store_device_new(p, wildcard_key(p, o->domain));
        dev->created = dev->updated = (apr_int64_t)time(NULL);
        dev->comment = "scepload run";
        rv = scep_verifier_make(o->challenge, strlen(o->challenge), &dev->verifier);
        if (rv == APR_SUCCESS) {
            rv = scep_store_device_put(txn, p, dev);
        }
    }
    if (rv == APR_SUCCESS || rv == SCEP_DB_NOTFOUND) {
        rv = scep_db_commit(txn);
    }
    else {
        scep_db_abort(txn);
    }
    if (rv != APR_SUCCESS) {
        die("%s %s: %s", opt, o->dbdir, scep_db_strerror(p, rv));
    }
    apr_pool_destroy(p);
}

/* ---- the report --------------------------------------------------------------------------- */

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double percentile(const double *sorted, long n, double q)
{
    long i = (long)(q * (double)(n - 1) + 0.5);

    return n ? sorted[i < n ? i : n - 1] : 0;
}

static void report(run_t *run, double elapsed)
{
    const opts_t *o = run->o;
    long n = run->done;
    double rate = elapsed > 0 ? (double)run->ok / elapsed : 0;
    apr_hash_index_t *hi;

    qsort(run->latency, (size_t)n, sizeof(double), by_value);
    printf("endpoint:        %s (%s, RSA-%ld, %ld connections)\n", o->url,
           o->get ? "GET" : "POST", o->bits, o->concurrency);
    printf("enrollments:     %ld done, %ld succeeded, %ld failed, in %.2f s\n", n, run->ok,
           n - run->ok, elapsed);
    printf("rate:            %.1f enrollments/s\n", rate);
    printf("latency (ms):    p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n",
           percentile(run->latency, n, 0.50) * 1e3, percentile(run->latency, n, 0.90) * 1e3,
           percentile(run->latency, n, 0.99) * 1e3, n ? run->latency[n - 1] * 1e3 : 0);
    for (hi = apr_hash_first(run->pool, run->failures); hi; hi = apr_hash_next(hi)) {
        const void *key;
        void *val;

        apr_hash_this(hi, &key, NULL, &val);
        printf("failed:          %ld x %s\n", *(long *)val, (const char *)key);
    }
    for (hi = apr_hash_first(run->pool, run->retried); hi; hi = apr_hash_next(hi)) {
        const void *key;
        void *val;

        apr_hash_this(hi, &key, NULL, &val);
        printf("sent again:      %ld x after %s\n", *(long *)val, (const char *)key);
    }
    if (o->format && strcmp(o->format, "json") == 0) {
        printf("{\"enrollments\":%ld,\"succeeded\":%ld,\"seconds\":%.3f,\"rate\":%.2f,"
               "\"p50_ms\":%.2f,\"p90_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f,"
               "\"concurrency\":%ld,\"method\":\"%s\",\"bits\":%ld}\n", n, run->ok,
               elapsed, rate, percentile(run->latency, n, 0.50) * 1e3,
               percentile(run->latency, n, 0.90) * 1e3,
               percentile(run->latency, n, 0.99) * 1e3, n ? run->latency[n - 1] * 1e3 : 0,
               o->concurrency, o->get ? "GET" : "POST", o->bits);
    }
    else if (o->format && strcmp(o->format, "csv") == 0) {
        printf("enrollments,succeeded,seconds,rate,p50_ms,p90_ms,p99_ms,max_ms,concurrency,"
               "method,bits\n%ld,%ld,%.3f,%.2f,%.2f,%.2f,%.2f,%.2f,%ld,%s,%ld\n", n, run->ok,
               elapsed, rate, percentile(run->latency, n, 0.50) * 1e3,
               percentile(run->latency, n, 0.90) * 1e3,
               percentile(run->latency, n, 0.99) * 1e3, n ? run->latency[n - 1] * 1e3 : 0,
               o->concurrency, o->get ? "GET" : "POST", o->bits);
    }
}

enum { OPT_PG = 256, OPT_PG_FILE };

static const struct option long_options[] = {
    { "pg", required_argument, NULL, OPT_PG },
    { "pg-file", required_argument, NULL, OPT_PG_FILE },
    { NULL, 0, NULL, 0 }
};

/* --pg or --pg-file, under scepreg's rules: no password on the command line, none in a
 * file others may read.  o->dbdir then names the database in messages. */
static void pg_database(apr_pool_t *p, opts_t *o)
{
    const char *why = NULL, *conninfo = o->pg_value;

    if (o->pg_option == OPT_PG && scep_pgconf_has_secret(conninfo)) {
        die("--pg: the connection string holds a password, which every local user could "
            "read on the command line; " SCEP_PGCONF_PASSWORD_ADVICE);
    }
    if (o->pg_option == OPT_PG_FILE
        && scep_pgconf_read_file(p, o->pg_value, &conninfo, &why) != APR_SUCCESS) {
        die("--pg-file: %s", why);
    }
    o->pg_conninfo = conninfo;
    /* a file is named by its path: its text never reaches a message */
    o->dbdir = o->pg_option == OPT_PG_FILE ? apr_psprintf(p, "%s (--pg-file)", o->pg_value)
               : scep_sql_conninfo_shown(p, conninfo);
}

int main(int argc, char **argv)
{
    opts_t o;
    run_t run;
    apr_pool_t *pool;
    apr_thread_t **threads;
    apr_status_t ignored;
    double elapsed;
    int c, tty;
    long i;

    memset(&o, 0, sizeof(o));
    o.count = 100;
    o.concurrency = 4;
    o.bits = 2048;
    o.time_limit = 600;
    while ((c = getopt_long(argc, argv, "u:n:c:m:b:C:d:D:k:p:t:o:Paqr:S:h", long_options,
                            NULL)) != -1) {
        switch (c) {
        case OPT_PG:
        case OPT_PG_FILE:
            if (o.pg_option) {
                usage();
            }
            o.pg_option = c;
            o.pg_value = optarg;
            break;
        case 'u': o.url = optarg; break;
        case 'n': o.count = number("-n", optarg, 1, MAX_COUNT); break;
        case 'c': o.concurrency = number("-c", optarg, 1, MAX_CONCURRENCY); break;
        case 'm':
            if (strcasecmp(optarg, "get") != 0 && strcasecmp(optarg, "post") != 0) {
                usage();
            }
            o.get = strcasecmp(optarg, "get") == 0;
            break;
        case 'b':
            o.bits = number("-b", optarg, 2048, 4096);
            if (o.bits != 2048 && o.bits != 3072 && o.bits != 4096) {
                usage();
            }
            break;
        case 'C': o.challenge = optarg; break;
        case 'd': o.domain = optarg; break;
        case 'D': o.dbdir = optarg; break;
        case 'k': o.pool_file = optarg; break;
        case 'p': o.pool_size = number("-p", optarg, 1, MAX_POOL); break;
        case 't': o.time_limit = number("-t", optarg, 1, 86400); break;
        case 'o':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "csv") != 0) {
                usage();
            }
            o.format = optarg;
            break;
        case 'P': o.prepare = 1; break;
        case 'a': o.check_later = 1; break;
        case 'q': o.quiet = 1; break;
        case 'r': o.retries = number("-r", optarg, 0, MAX_RETRIES); break;
        case 'S': o.serials_file = optarg; break;
        default: usage();
        }
    }
    if (!o.url || optind != argc || (strncasecmp(o.url, "http://", 7) != 0
                                     && strncasecmp(o.url, "https://", 8) != 0)
        || strchr(o.url, '?') || (o.dbdir && o.pg_option)
        || (!o.dbdir && !o.pg_option && (!o.challenge || !o.domain))
        || ((o.dbdir || o.pg_option) && (o.challenge || o.domain))
        || (o.prepare && o.count > MAX_PREPARED)
        || (o.check_later && !o.prepare)) {
        usage();
    }
    if (!o.pool_size) {
        o.pool_size = o.count < 1000 ? o.count : 1000;
    }
    if (apr_app_initialize(&argc, (const char *const **)&argv, NULL) != APR_SUCCESS
        || apr_pool_create(&pool, NULL) != APR_SUCCESS
        || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK
        || scep_msg_global_init() != APR_SUCCESS) {
        die("cannot initialise");
    }
    if (o.pg_option) {
        pg_database(pool, &o);
    }
    memset(&run, 0, sizeof(run));
    run.o = &o;
    run.pool = pool;
    run.failures = apr_hash_make(pool);
    run.retried = apr_hash_make(pool);
    if (o.serials_file && !(run.serials = fopen(o.serials_file, "w"))) {
        die("-S %s: %s", o.serials_file, strerror(errno));
    }
    run.latency = calloc((size_t)o.count, sizeof(double));
    apr_thread_mutex_create(&run.lock, APR_THREAD_MUTEX_DEFAULT, pool);
    if (o.dbdir) {
        unsigned char rnd[12];

        RAND_bytes(rnd, sizeof(rnd));
        o.challenge = scep_util_hex(pool, rnd, sizeof(rnd));
        o.domain = apr_psprintf(pool, "run%s.scepload.test", scep_util_hex(pool, rnd, 4));
        register_run(&run, &o, 0);
    }
    fetch_ca(&run);
    load_pool(&run);

    tty = !o.quiet && isatty(STDERR_FILENO);
    threads = apr_pcalloc(pool, sizeof(apr_thread_t *) * (size_t)o.concurrency);
    if (o.prepare) {
        double began = now_s();

        run.prepared = calloc((size_t)o.count, sizeof(*run.prepared));
        run.answers = o.check_later ? calloc((size_t)o.count, sizeof(*run.answers)) : NULL;
        if (!run.prepared || (o.check_later && !run.answers)
            || apr_pool_create(&run.pool_for_prepared, pool) != APR_SUCCESS) {
            die("out of memory");
        }
        run.deadline = began + (double)o.time_limit;
        for (i = 0; i < o.concurrency; i++) {
            apr_thread_create(&threads[i], NULL, preparer, &run, pool);
        }
        for (i = 0; i < o.concurrency; i++) {
            apr_thread_join(&ignored, threads[i]);
        }
        if (run.next < o.count) {
            die("the time limit passed while preparing the requests");
        }
        run.next = 0;
        if (!o.quiet) {
            fprintf(stderr, "%s: %ld requests prepared in %.1f s\n", progname, o.count,
                    now_s() - began);
        }
    }
    run.started = now_s();
    run.deadline = run.started + (double)o.time_limit;
    for (i = 0; i < o.concurrency; i++) {
        apr_thread_create(&threads[i], NULL, worker, &run, pool);
    }
    while (tty) {
        long done;

        apr_thread_mutex_lock(run.lock);
        done = run.done;
        apr_thread_mutex_unlock(run.lock);
        fprintf(stderr, "\r%s: %ld/%ld enrollments (%.0f%%), %.1f/s   ", progname, done,
                o.count, 100.0 * (double)done / (double)o.count,
                (double)done / (now_s() - run.started + 1e-9));
        if (done >= o.count || now_s() > run.deadline) {
            fputc('\n', stderr);
            break;
        }
        apr_sleep(apr_time_from_msec(200));
    }
    for (i = 0; i < o.concurrency; i++) {
        apr_thread_join(&ignored, threads[i]);
    }
    elapsed = now_s() - run.started;
    if (o.check_later) {
        double began = now_s();
        long handed_out = run.next;

        run.next = 0;
        run.deadline = began + (double)o.time_limit;
        for (i = 0; i < o.concurrency; i++) {
            apr_thread_create(&threads[i], NULL, checker, &run, pool);
        }
        for (i = 0; i < o.concurrency; i++) {
            apr_thread_join(&ignored, threads[i]);
        }
        run.next = handed_out;
        if (!o.quiet) {
            fprintf(stderr, "%s: answers checked after the clock in %.1f s\n", progname,
                    now_s() - began);
        }
    }
    report(&run, elapsed);
    if (o.dbdir) {
        register_run(&run, &o, 1);
    }
    if (run.serials && fclose(run.serials) != 0) {
        die("-S %s: %s", o.serials_file, strerror(errno));
    }
    /* The key pool, the latencies and the CA certificates hang off main's frame alone:
     * left to exit, they are lost once main returns, which LeakSanitizer reports. */
    for (i = 0; i < run.nkeys; i++) {
        EVP_PKEY_free(run.keys[i].key);
        X509_free(run.keys[i].selfsigned);
    }
    free(run.keys);
    free(run.latency);
    free(run.prepared);
    if (run.answers) {
        for (i = 0; i < o.count; i++) {
            free(run.answers[i].data);   /* left by a check cut off by the time limit */
        }
        free(run.answers);
    }
    sk_X509_pop_free(run.ca_certs, X509_free);
    apr_pool_destroy(pool);
    return run.ok == o.count ? 0 : 1;
}

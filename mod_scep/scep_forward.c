/* SPDX-License-Identifier: Apache-2.0 */
/* The forwarding issuer (see scep_forward.h).
 *
 * Transport is libcurl with every limit set explicitly: no redirects, http and https
 * only, bounded answer size, connect and total timeouts, and signals off so that worker
 * threads are never interrupted.  A proxy is used only when configured; http_proxy and
 * friends in httpd's environment are ignored, so what the configuration says is what
 * happens. */
#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_time.h>
#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509v3.h>

#include "scep_ca.h"
#include "scep_decode.h"
#include "scep_forward.h"
#include "scep_keyless.h"
#include "scep_msg.h"
#include "scep_util_own.h"

/* What GetCACaps and GetCACert said, as of `fetched_at`.  Never changed once published:
 * a refresh publishes a new one. */
typedef struct upstream_view_t {
    apr_int64_t fetched_at;
    int post;
    const EVP_CIPHER *cipher;
    const EVP_MD *md;
    STACK_OF(X509) *certs;             /* every certificate of GetCACert */
    X509 *recipient;                   /* the one requests are encrypted to */
} upstream_view_t;

struct scep_upstream_t {
    const scep_upstream_conf_t *conf;
    const scep_ca_t *ra;
    apr_pool_t *pool;                  /* views live here, for the process's life */
    apr_thread_mutex_t *lock;
    upstream_view_t *view;
};

apr_status_t scep_forward_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? APR_SUCCESS : APR_EGENERAL;
}

apr_status_t scep_forward_create(apr_pool_t *p, const scep_upstream_conf_t *conf,
                                 const scep_ca_t *ra, scep_upstream_t **out)
{
    scep_upstream_t *up = apr_pcalloc(p, sizeof(*up));
    apr_status_t rv;

    up->conf = conf;
    up->ra = ra;
    up->pool = p;
    if ((rv = apr_thread_mutex_create(&up->lock, APR_THREAD_MUTEX_DEFAULT, p)) != APR_SUCCESS) {
        return rv;
    }
    *out = up;
    return APR_SUCCESS;
}

/* ---- HTTP ---------------------------------------------------------------------------- */

typedef struct answer_t {
    apr_pool_t *p;
    unsigned char *data;
    apr_size_t len, cap, max;
    int too_big;
} answer_t;

static size_t collect(char *ptr, size_t size, size_t nmemb, void *baton)
{
    answer_t *a = baton;
    apr_size_t n = size * nmemb;

    if (a->len + n > a->max) {
        a->too_big = 1;
        return 0;                       /* aborts the transfer */
    }
    if (a->len + n > a->cap) {
        apr_size_t cap = a->cap ? a->cap * 2 : 16384;
        unsigned char *bigger;

        while (cap < a->len + n) {
            cap *= 2;
        }
        bigger = apr_palloc(a->p, cap);
        if (a->len) {
            memcpy(bigger, a->data, a->len);
        }
        a->data = bigger;
        a->cap = cap;
    }
    memcpy(a->data + a->len, ptr, n);
    a->len += n;
    return n;
}

apr_status_t scep_forward_http(apr_pool_t *p, const scep_upstream_conf_t *transport,
                               const scep_forward_http_t *req, scep_forward_http_answer_t *out)
{
    CURL *curl;
    struct curl_slist *headers = NULL;
    char errbuf[CURL_ERROR_SIZE];
    answer_t answer;
    CURLcode rc;
    char *ctype = NULL;
    int i;

    memset(out, 0, sizeof(*out));
    if (!(curl = curl_easy_init())) {
        out->why = "libcurl cannot start a transfer";
        return APR_ENOMEM;
    }
    memset(&answer, 0, sizeof(answer));
    answer.p = p;
    answer.max = req->max_answer;
    errbuf[0] = '\0';
    curl_easy_setopt(curl, CURLOPT_URL, req->url);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    /* without it, a timed-out exchange still waits for the resolver thread: a name
     * server that hangs would hold the worker for its own timeouts, not ours */
    curl_easy_setopt(curl, CURLOPT_QUICK_EXIT, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, req->user_agent);
    /* "" turns the environment's proxy settings off */
    curl_easy_setopt(curl, CURLOPT_PROXY, transport && transport->proxy ? transport->proxy
                                          : "");
    if (transport && transport->proxy_auth) {
        curl_easy_setopt(curl, CURLOPT_PROXYUSERPWD, transport->proxy_auth);
        curl_easy_setopt(curl, CURLOPT_PROXYAUTH, (long)CURLAUTH_BASIC);
    }
    if (transport && transport->no_proxy) {
        curl_easy_setopt(curl, CURLOPT_NOPROXY, transport->no_proxy);
    }
    if (transport && transport->ca_file) {
        curl_easy_setopt(curl, CURLOPT_CAINFO, transport->ca_file);
        curl_easy_setopt(curl, CURLOPT_PROXY_CAINFO, transport->ca_file);
    }
    if (transport && transport->client_cert) {
        curl_easy_setopt(curl, CURLOPT_SSLCERT, transport->client_cert);
        curl_easy_setopt(curl, CURLOPT_SSLKEY, transport->client_key);
    }
    for (i = 0; req->headers && req->headers[i]; i++) {
        headers = curl_slist_append(headers, req->headers[i]);
    }
    if (headers) {
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    }
    if (req->body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, (const char *)req->body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    }
    rc = curl_easy_perform(curl);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out->status);
        curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ctype);
        out->content_type = ctype ? apr_pstrdup(p, ctype) : "";
        out->body = answer.data;
        out->body_len = answer.len;
    }
    else {
        out->timed_out = rc == CURLE_OPERATION_TIMEDOUT;
        out->why = apr_pstrdup(p, *errbuf ? errbuf : curl_easy_strerror(rc));
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return rc == CURLE_OK ? APR_SUCCESS : answer.too_big ? APR_ENOSPC : APR_EGENERAL;
}

/* One exchange with the upstream, retried on transport failures.  APR_SUCCESS with a 200
 * answer; otherwise APR_EGENERAL with *why. */
static apr_status_t http_exchange(apr_pool_t *p, scep_upstream_t *up, const char *query,
                                  const unsigned char *body, apr_size_t body_len,
                                  answer_t *answer, const char **content_type,
                                  const char **why)
{
    const scep_upstream_conf_t *conf = up->conf;
    static const char *const post_headers[] = {
        "Content-Type: application/x-pki-message", NULL
    };
    scep_forward_http_t req;
    scep_forward_http_answer_t got;
    int attempt;

    memset(&req, 0, sizeof(req));
    req.url = apr_pstrcat(p, conf->url, strchr(conf->url, '?') ? "&" : "?", query, NULL);
    req.headers = body ? post_headers : NULL;
    req.body = body;
    req.body_len = body_len;
    req.max_answer = SCEP_UPSTREAM_MAX_ANSWER;
    req.connect_timeout_ms = conf->connect_timeout * 1000L;
    req.timeout_ms = conf->timeout * 1000L;
    req.user_agent = "mod_scep forwarder";
    for (attempt = 0; attempt <= conf->retries; attempt++) {
        apr_status_t rv;

        if (attempt > 0) {
            apr_sleep(apr_time_from_msec(250L << attempt));   /* 0.5 s, 1 s, 2 s, … */
        }
        rv = scep_forward_http(p, conf, &req, &got);
        if (rv == APR_ENOMEM) {
            *why = got.why;
            return rv;
        }
        if (rv == APR_SUCCESS) {
            memset(answer, 0, sizeof(*answer));
            answer->p = p;
            answer->data = (unsigned char *)got.body;
            answer->len = got.body_len;
            *content_type = got.content_type;
            if (got.status == 200) {
                return APR_SUCCESS;
            }
            /* an answer, if not the right one: retrying will not change it */
            *why = apr_psprintf(p, "the upstream %s answered HTTP %ld%s", conf->url,
                                got.status,
                                got.status == 407 ? " (the proxy wants credentials)" : "");
            return APR_EGENERAL;
        }
        *why = rv == APR_ENOSPC
               ? apr_psprintf(p, "the upstream's answer exceeds %d bytes",
                              SCEP_UPSTREAM_MAX_ANSWER)
               : apr_psprintf(p, "%s%s%s: %s", conf->url, conf->proxy ? " via " : "",
                              conf->proxy ? conf->proxy : "", got.why);
    }
    return APR_EGENERAL;
}

/* ---- what the upstream offers ---------------------------------------------------------- */

static int has_cap(const char *caps, const char *word)
{
    apr_size_t n = strlen(word);
    const char *s = caps;

    while (s && *s) {
        const char *end = s + strcspn(s, "\r\n");

        if ((apr_size_t)(end - s) == n && strncasecmp(s, word, n) == 0) {
            return 1;
        }
        s = end + strspn(end, "\r\n");
    }
    return 0;
}

/* GetCACert: one DER certificate, or a degenerate SignedData of several, and nothing
 * after it.  What cannot be read this way is refused with *why, never taken as "no
 * certificates": an answer cut short or padded is not the upstream's. */
static STACK_OF(X509) *read_ca_certs(apr_pool_t *p, const unsigned char *der,
                                     apr_size_t len, const char *ctype, const char **why)
{
    const unsigned char *in = der;
    X509 *single = d2i_X509(NULL, &in, (long)len);
    STACK_OF(X509) *certs = NULL;
    PKCS7 *p7 = NULL;

    if (!single) {
        in = der;
        p7 = d2i_PKCS7(NULL, &in, (long)len);
    }
    ERR_clear_error();
    if (!single && !p7) {
        *why = apr_psprintf(p, "its GetCACert answer (%s, %" APR_SIZE_T_FMT " bytes) is "
                            "neither a DER certificate nor a SignedData", ctype, len);
    }
    else if (in != der + len) {
        *why = apr_psprintf(p, "its GetCACert answer (%s, %" APR_SIZE_T_FMT " bytes) has %"
                            APR_SIZE_T_FMT " bytes after its end", ctype, len,
                            (apr_size_t)(der + len - in));
    }
    else if (single) {
        certs = sk_X509_new_null();
        if (certs && sk_X509_push(certs, single)) {
            return certs;
        }
        sk_X509_free(certs);
        certs = NULL;
        *why = "out of memory reading its GetCACert answer";
    }
    else if (!PKCS7_type_is_signed(p7) || !p7->d.sign || !p7->d.sign->cert
             || sk_X509_num(p7->d.sign->cert) < 1) {
        *why = apr_psprintf(p, "its GetCACert answer (%s, %" APR_SIZE_T_FMT " bytes) holds "
                            "no certificate", ctype, len);
    }
    else if (sk_X509_num(p7->d.sign->cert) > SCEP_UPSTREAM_MAX_CA_CERTS) {
        *why = apr_psprintf(p, "its GetCACert answer holds %d certificates, more than the "
                            "%d a CA and its RAs need", sk_X509_num(p7->d.sign->cert),
                            SCEP_UPSTREAM_MAX_CA_CERTS);
    }
    else if (!(certs = X509_chain_up_ref(p7->d.sign->cert))) {
        *why = "out of memory reading its GetCACert answer";
    }
    X509_free(single);
    PKCS7_free(p7);
    return certs;
}

/* How a log line names a certificate the upstream showed: subject, issuer and the
 * SHA-256 fingerprint an operator compares with `openssl x509 -fingerprint -sha256`. */
static const char *describe(apr_pool_t *p, X509 *x)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0, i;
    char *subject = X509_NAME_oneline(X509_get_subject_name(x), NULL, 0);
    char *issuer = X509_NAME_oneline(X509_get_issuer_name(x), NULL, 0);
    char *fpr;
    const char *text;

    if (X509_digest(x, EVP_sha256(), md, &md_len) != 1) {
        md_len = 0;
    }
    fpr = apr_pcalloc(p, md_len * 3 + 2);
    for (i = 0; i < md_len; i++) {
        apr_snprintf(fpr + i * 3, 4, "%02X%s", md[i], i + 1 < md_len ? ":" : "");
    }
    text = apr_psprintf(p, "'%s' issued by '%s' (SHA-256 %s)", subject ? subject : "?",
                        issuer ? issuer : "?", md_len ? fpr : "?");
    OPENSSL_free(subject);
    OPENSSL_free(issuer);
    ERR_clear_error();
    return text;
}

/* Whether `x` chains to the configured CA (ScepCACertificateFile's first certificate,
 * an anchor even when it is an intermediate), through `intermediates`, at the current
 * time unless `any_time`; *error says why not.  Only this endpoint's configuration is
 * trusted here: whatever the upstream sends is at most a path towards it. */
static int chains_to_ca(const scep_ca_t *ca, X509 *x, STACK_OF(X509) *intermediates,
                        int any_time, const char **error)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    unsigned long flags = X509_V_FLAG_PARTIAL_CHAIN
                          | (any_time ? X509_V_FLAG_NO_CHECK_TIME : 0);
    int ok = 0;

    *error = "out of memory";
    if (store && ctx && X509_STORE_add_cert(store, scep_ca_cert(ca)) == 1
        && X509_STORE_set_flags(store, flags) == 1
        && X509_STORE_CTX_init(ctx, store, x, intermediates) == 1) {
        ok = X509_verify_cert(ctx) == 1;
        if (!ok) {
            *error = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
        }
    }
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    ERR_clear_error();
    return ok;
}

apr_status_t scep_forward_load_ra_file(apr_pool_t *p, scep_upstream_conf_t *conf,
                                       const char **errmsg)
{
    const char *role = "ScepUpstreamRACertificateFile";
    STACK_OF(X509) *pins = sk_X509_new_null();
    BIO *bio;
    X509 *x;
    int i;

    *errmsg = NULL;
    ERR_clear_error();
    scep_util_own_X509_stack(p, pins);
    bio = BIO_new_file(conf->ra_file, "r");
    if (!bio || !pins) {
        *errmsg = apr_psprintf(p, "%s: '%s' cannot be read: %s", role, conf->ra_file,
                               scep_util_openssl_errors(p));
    }
    while (!*errmsg && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(pins, x)) {
            X509_free(x);
            *errmsg = apr_pstrcat(p, role, ": out of memory", NULL);
        }
    }
    /* the end of the file is "no start line"; anything else is a broken certificate */
    if (!*errmsg && ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE) {
        *errmsg = apr_psprintf(p, "%s: '%s': certificate number %d cannot be read: %s", role,
                               conf->ra_file, sk_X509_num(pins) + 1,
                               scep_util_openssl_errors(p));
    }
    ERR_clear_error();
    BIO_free(bio);
    if (!*errmsg && sk_X509_num(pins) == 0) {
        *errmsg = apr_psprintf(p, "%s: '%s' holds no PEM certificate", role, conf->ra_file);
    }
    for (i = 0; !*errmsg && i < sk_X509_num(pins); i++) {
        x = sk_X509_value(pins, i);
        if (X509_check_ca(x)) {
            *errmsg = apr_psprintf(p, "%s: '%s': certificate number %d, %s, is a CA "
                                   "certificate, not an RA's", role, conf->ra_file, i + 1,
                                   describe(p, x));
        }
    }
    if (*errmsg) {
        return APR_EINVAL;
    }
    conf->ra_pins = pins;
    return APR_SUCCESS;
}

/* NULL when a request may be encrypted to `x`, else what stands against it.  The key
 * carries the device's challenge and SCEP has only RSA key transport.  An RA must allow
 * keyEncipherment: a CA issues certificates for other uses too (a device's, an RA's
 * signing certificate), and such a key is not meant to receive secrets.  A CA
 * certificate is encrypted to only where the upstream lists no RA, as RFC 8894 3.1
 * says; its keyUsage is not asked for, since SCEP CAs rarely assert keyEncipherment
 * (micromdm's does not) and the CA's own key receives nothing it could not issue for
 * anyway. */
static const char *encipher_problem(apr_pool_t *p, X509 *x, int is_ra)
{
    const char *exponent;

    if (EVP_PKEY_get_base_id(X509_get0_pubkey(x)) != EVP_PKEY_RSA) {
        return apr_pstrcat(p, describe(p, x), " has no RSA key", NULL);
    }
    if ((exponent = scep_keyless_rsa_exponent_problem(X509_get_X509_PUBKEY(x))) != NULL) {
        return apr_pstrcat(p, describe(p, x), ": ", exponent, NULL);
    }
    if (is_ra && (X509_get_extension_flags(x) & EXFLAG_KUSAGE)
        && !(X509_get_key_usage(x) & KU_KEY_ENCIPHERMENT)) {
        return apr_pstrcat(p, describe(p, x), " has no keyEncipherment in its keyUsage",
                           NULL);
    }
    return NULL;
}

static int holds_cert(STACK_OF(X509) *certs, X509 *cert)
{
    int i;

    for (i = 0; i < sk_X509_num(certs); i++) {
        if (X509_cmp(sk_X509_value(certs, i), cert) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Decides what of a GetCACert answer may be used, before anything goes upstream.  Every
 * certificate in it must chain to the configured CA, or be one of the CA file's other
 * certificates (its issuers, which the upstream may list too; they are used for
 * nothing); with ScepUpstreamRACertificateFile, every RA certificate must also be one
 * of that file's.  Requests are encrypted to the first RA certificate that may encipher
 * keys, or, where no RA is listed, to the first CA certificate with an RSA key.
 * Returns the certificates that may sign the upstream's answers (the configured CA
 * always among them) with *recipient, or NULL with *why; `certs` stays the caller's. */
static STACK_OF(X509) *trusted_ca_certs(apr_pool_t *p, const scep_upstream_t *up,
                                        STACK_OF(X509) *certs, X509 **recipient,
                                        const char **why)
{
    const scep_ca_t *ca = up->ra;
    STACK_OF(X509) *pins = up->conf->ra_pins;
    STACK_OF(X509) *trusted = sk_X509_new_null();
    const char *refused = NULL, *error = NULL;
    int i, has_ca = 0, has_ra = 0, ok = trusted != NULL;

    *recipient = NULL;
    *why = NULL;
    for (i = 0; ok && !*why && i < sk_X509_num(certs); i++) {
        X509 *x = sk_X509_value(certs, i);
        int is_ra = X509_check_ca(x) == 0;

        if (X509_cmp(x, scep_ca_cert(ca)) != 0 && scep_ca_in_chain(ca, x)) {
            continue;
        }
        if (!chains_to_ca(ca, x, certs, 0, &error)) {
            *why = apr_psprintf(p, "its GetCACert holds %s, which fails verification "
                                "against the CA of ScepCACertificateFile (%s): %s",
                                describe(p, x), scep_ca_name(ca), error);
        }
        else if (is_ra && pins && !holds_cert(pins, x)) {
            *why = apr_psprintf(p, "its GetCACert holds the RA certificate %s, which is not "
                                "one of ScepUpstreamRACertificateFile (%s)", describe(p, x),
                                up->conf->ra_file);
        }
        else if ((ok = sk_X509_push(trusted, x) > 0)) {
            X509_up_ref(x);
            has_ca |= X509_cmp(x, scep_ca_cert(ca)) == 0;
            has_ra |= is_ra;
        }
    }
    if (ok && !*why && !has_ca && (ok = sk_X509_push(trusted, scep_ca_cert(ca)) > 0)) {
        X509_up_ref(scep_ca_cert(ca));
    }
    if (!ok) {
        *why = "out of memory checking its GetCACert";
    }
    if (!*why && !has_ra && pins) {
        *why = apr_psprintf(p, "its GetCACert lists no RA certificate, and "
                            "ScepUpstreamRACertificateFile (%s) names the ones to encrypt to",
                            up->conf->ra_file);
    }
    for (i = 0; !*why && i < sk_X509_num(trusted); i++) {
        X509 *x = sk_X509_value(trusted, i);
        int is_ra = X509_check_ca(x) == 0;
        const char *problem;

        /* without an RA, only the configured CA itself: not a sub-CA the answer chose */
        if (is_ra != has_ra || (!has_ra && X509_cmp(x, scep_ca_cert(ca)) != 0)) {
            continue;
        }
        if (!(problem = encipher_problem(p, x, is_ra))) {
            *recipient = x;
            return trusted;
        }
        refused = refused ? apr_pstrcat(p, refused, "; ", problem, NULL) : problem;
    }
    if (!*why) {
        *why = apr_pstrcat(p, "no certificate of its GetCACert may encrypt: ",
                           refused ? refused : "it lists none", NULL);
    }
    sk_X509_pop_free(trusted, X509_free);
    return NULL;
}

static upstream_view_t *fetch_view(apr_pool_t *p, scep_upstream_t *up, apr_int64_t now,
                                   const scep_log_t *log, const char **why)
{
    answer_t caps, cacert;
    const char *ctype, *caps_text, *problem = NULL;
    upstream_view_t *view;
    STACK_OF(X509) *certs, *trusted;
    X509 *recipient = NULL;

    if (http_exchange(p, up, "operation=GetCACaps", NULL, 0, &caps, &ctype, why)
        != APR_SUCCESS
        || http_exchange(p, up, "operation=GetCACert", NULL, 0, &cacert, &ctype, why)
           != APR_SUCCESS) {
        return NULL;
    }
    if (!(certs = read_ca_certs(p, cacert.data, cacert.len, ctype, &problem))) {
        *why = apr_psprintf(p, "nothing was sent to the upstream %s: %s", up->conf->url,
                            problem);
        return NULL;
    }
    if (!holds_cert(certs, scep_ca_cert(up->ra))) {
        /* devices get the configured CA from our GetCACert and will not trust the issuer */
        scep_log(log, SCEP_LOG_WARNING, "SCEP00406: the upstream %s does not list the CA "
                 "certificate of ScepCACertificateFile (%s) in its GetCACert; devices will "
                 "not be able to verify the certificates it issues", up->conf->url,
                 scep_ca_name(up->ra));
    }
    trusted = trusted_ca_certs(p, up, certs, &recipient, &problem);
    sk_X509_pop_free(certs, X509_free);
    if (!trusted) {
        *why = apr_psprintf(p, "nothing was sent to the upstream %s: %s", up->conf->url,
                            problem);
        return NULL;
    }
    scep_log(log, SCEP_LOG_DEBUG, "SCEP00430: the upstream %s: GetCACert verified against "
             "ScepCACertificateFile (%s); requests are encrypted to %s", up->conf->url,
             scep_ca_name(up->ra), describe(p, recipient));
    caps_text = caps.len ? apr_pstrmemdup(p, (const char *)caps.data, caps.len) : "";
    apr_thread_mutex_lock(up->lock);
    view = apr_pcalloc(up->pool, sizeof(*view));
    scep_util_own_X509_stack(up->pool, trusted);
    apr_thread_mutex_unlock(up->lock);
    view->fetched_at = now;
    view->certs = trusted;
    view->recipient = recipient;
    view->post = has_cap(caps_text, "POSTPKIOperation") || has_cap(caps_text, "SCEPStandard");
    view->cipher = has_cap(caps_text, "AES") || has_cap(caps_text, "SCEPStandard")
                   ? EVP_aes_128_cbc() : EVP_des_ede3_cbc();
    view->md = has_cap(caps_text, "SHA-256") || has_cap(caps_text, "SCEPStandard")
               ? EVP_sha256() : EVP_sha1();
    return view;
}

static upstream_view_t *current_view(apr_pool_t *p, scep_upstream_t *up, apr_int64_t now,
                                     const scep_log_t *log, const char **why)
{
    upstream_view_t *view;

    apr_thread_mutex_lock(up->lock);
    view = up->view;
    apr_thread_mutex_unlock(up->lock);
    if (view && now - view->fetched_at < up->conf->refresh) {
        return view;
    }
    /* Several threads may fetch at once; the last one wins, and all views stay valid. */
    if (!(view = fetch_view(p, up, now, log, why))) {
        return NULL;
    }
    apr_thread_mutex_lock(up->lock);
    up->view = view;
    apr_thread_mutex_unlock(up->lock);
    return view;
}

int scep_forward_down_answer(const scep_upstream_t *up)
{
    return up->conf->down_answer == 503 ? 503 : 200;
}

/* ---- enrollment ------------------------------------------------------------------------ */

/* Base64 for a query string: '+', '/' and '=' percent-encoded. */
static const char *query_base64(apr_pool_t *p, const unsigned char *der, apr_size_t len)
{
    const char *b64 = scep_decode_base64(p, der, len);
    char *out = apr_palloc(p, strlen(b64) * 3 + 1), *o = out;

    for (; *b64; b64++) {
        if (*b64 == '+' || *b64 == '/' || *b64 == '=') {
            o += apr_snprintf(o, 4, "%%%02X", (unsigned char)*b64);
        }
        else {
            *o++ = *b64;
        }
    }
    *o = '\0';
    return out;
}

/* The upstream CA's own certificate: the first CA certificate of its GetCACert. */
static X509 *upstream_ca(STACK_OF(X509) *certs)
{
    int i;

    for (i = 0; i < sk_X509_num(certs); i++) {
        if (X509_check_ca(sk_X509_value(certs, i))) {
            return sk_X509_value(certs, i);
        }
    }
    return sk_X509_value(certs, 0);
}

/* Whether the certificate the upstream issued chains to the configured CA, through the
 * upstream's verified certificates or those its answer carries; *why otherwise. */
static int issued_by_ca(apr_pool_t *p, scep_upstream_t *up, const upstream_view_t *view,
                        STACK_OF(X509) *carried, X509 *issued, const char **why)
{
    STACK_OF(X509) *path = sk_X509_dup(view->certs);
    const char *error = "out of memory";
    int i, ok = path != NULL;

    for (i = 0; ok && i < sk_X509_num(carried); i++) {
        ok = sk_X509_push(path, sk_X509_value(carried, i)) > 0;
    }
    if (ok && chains_to_ca(up->ra, issued, path, 0, &error)) {
        sk_X509_free(path);
        return 1;
    }
    sk_X509_free(path);
    *why = apr_psprintf(p, "the certificate the upstream issued, %s, fails verification "
                        "against the CA of ScepCACertificateFile (%s): %s; it is not "
                        "passed on", describe(p, issued), scep_ca_name(up->ra), error);
    return 0;
}

/* One request upstream (a PKCSReq, or a CertPoll when `poll`) and what its answer means. */
static apr_status_t exchange(apr_pool_t *p, scep_upstream_t *up, apr_int64_t now, int poll,
                             X509_REQ *req, const unsigned char *csr, apr_size_t csr_len,
                             EVP_PKEY *csr_key,
                             const char *transaction_id, const scep_log_t *log,
                             scep_forward_result_t *result)
{
    const scep_msg_keys_t *keys = scep_ca_msg_keys(up->ra);
    X509 *signer = keys->ra_cert ? keys->ra_cert : keys->ca_cert;
    EVP_PKEY *key = keys->ra_cert ? keys->ra_key : keys->ca_key;
    upstream_view_t *view;
    unsigned char nonce[16], *der, *content;
    apr_size_t der_len, content_len;
    scep_reply_info_t info;
    answer_t answer;
    const char *ctype, *query, *why = NULL;
    int i;

    memset(result, 0, sizeof(*result));
    result->status = SCEP_FORWARD_UNREACHABLE;
    if (!(view = current_view(p, up, now, log, &why))) {
        result->why = why;
        return APR_SUCCESS;
    }
    if (poll) {
        if (scep_msg_make_issuer_and_subject(p, X509_get_subject_name(upstream_ca(view->certs)),
                                             X509_REQ_get_subject_name(req), &content,
                                             &content_len) != APR_SUCCESS) {
            result->why = "cannot encode the CertPoll's IssuerAndSubject";
            return APR_EGENERAL;
        }
    }
    else {
        content = (unsigned char *)csr;
        content_len = csr_len;
    }
    if (scep_msg_build_request(p, signer, key, view->recipient, view->cipher, view->md,
                               poll ? SCEP_MSG_CERTPOLL : SCEP_MSG_PKCSREQ, transaction_id,
                               content, content_len, nonce, &der, &der_len) != APR_SUCCESS) {
        result->why = apr_pstrcat(p, "cannot build the upstream request: ",
                                  scep_util_openssl_errors(p), NULL);
        return APR_EGENERAL;
    }
    if (view->post) {
        query = "operation=PKIOperation";
    }
    else {
        query = apr_pstrcat(p, "operation=PKIOperation&message=",
                            query_base64(p, der, der_len), NULL);
    }
    if (http_exchange(p, up, query, view->post ? der : NULL, der_len, &answer, &ctype, &why)
        != APR_SUCCESS) {
        result->why = why;
        return APR_SUCCESS;
    }
    if (scep_msg_read_reply(p, answer.data, answer.len, view->certs, signer, key,
                            transaction_id, nonce, &info, &why) != APR_SUCCESS) {
        result->why = apr_pstrcat(p, "the upstream's answer is unusable: ", why, NULL);
        return APR_SUCCESS;
    }
    scep_log(log, SCEP_LOG_DEBUG, "SCEP00400: scep(%s,forward): upstream %s answered "
             "%s with pkiStatus %d", transaction_id, up->conf->url,
             poll ? "CertPoll" : "PKCSReq", info.status);
    if (info.status == SCEP_STATUS_PENDING) {
        result->status = SCEP_FORWARD_PENDING;
        result->why = "the upstream CA answered PENDING";
        return APR_SUCCESS;
    }
    if (info.status == SCEP_STATUS_FAILURE) {
        result->status = SCEP_FORWARD_REJECTED;
        result->fail_info = info.fail_info;
        result->why = apr_psprintf(p, "the upstream CA refused it (%s)%s%s",
                                   scep_msg_fail_info_name(info.fail_info),
                                   info.fail_text ? ": " : "",
                                   info.fail_text ? info.fail_text : "");
        return APR_SUCCESS;
    }
    for (i = 0; i < sk_X509_num(info.certs); i++) {
        X509 *x = sk_X509_value(info.certs, i);

        if (EVP_PKEY_eq(X509_get0_pubkey(x), csr_key) == 1) {
            if (!issued_by_ca(p, up, view, info.certs, x, &why)) {
                /* Devices trust the configured CA; whatever else the upstream
                 * certified is not passed on.  Kept, like an unusable answer, so
                 * that the device's retry succeeds once the configuration is
                 * corrected (an upstream CA rollover). */
                result->why = why;
                return APR_SUCCESS;
            }
            X509_up_ref(x);
            result->cert = x;
            scep_util_own_X509(p, x);
            result->status = SCEP_FORWARD_ISSUED;
            return APR_SUCCESS;
        }
    }
    ERR_clear_error();
    result->status = SCEP_FORWARD_REJECTED;
    result->fail_info = SCEP_FAIL_BAD_REQUEST;
    result->why = "the upstream's SUCCESS holds no certificate for the device's key";
    return APR_SUCCESS;
}

apr_status_t scep_forward_enroll(apr_pool_t *p, scep_upstream_t *up, apr_int64_t now,
                                 const unsigned char *csr, apr_size_t csr_len,
                                 EVP_PKEY *csr_key, const char *transaction_id,
                                 const scep_log_t *log, scep_forward_result_t *result)
{
    return exchange(p, up, now, 0, NULL, csr, csr_len, csr_key, transaction_id, log, result);
}

apr_status_t scep_forward_poll(apr_pool_t *p, scep_upstream_t *up, apr_int64_t now,
                               X509_REQ *req, EVP_PKEY *csr_key, const char *transaction_id,
                               const scep_log_t *log, scep_forward_result_t *result)
{
    return exchange(p, up, now, 1, req, NULL, 0, csr_key, transaction_id, log, result);
}

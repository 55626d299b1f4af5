/* SPDX-License-Identifier: Apache-2.0 */
/* PKCS#11 tokens: RFC 7512 URIs checked and split, the PIN found (pin-source file or
 * dialog) and kept for the children, keys and certificates loaded through libp11's
 * OpenSSL engine, and the one engine of the process opened and closed around forks.
 *
 * OpenSSL 3 deprecates the ENGINE API in favour of providers, but Debian 12 has no
 * PKCS#11 provider (pkcs11-provider came with Debian 13); libp11's engine is what it
 * ships.  The deprecation warnings are silenced for this file alone.  Configuration
 * holds only RFC 7512 URIs, which a provider takes as they are: moving to it changes
 * this file, not one directive. */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_strings.h>
#include <openssl/crypto.h>
#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/ui.h>

#include "scep_key.h"
#include "scep_token.h"
#include "scep_util.h"
#include "scep_util_own.h"

#define PIN_MAX 256
#define URI_MAX 4096

/* The process's engine: a functional reference while open. */
static ENGINE *engine;
/* The module it was opened with ("" for the engine's default), so that every URI of the
 * process names the same one. */
static char engine_module[1024];
/* Refuses every prompt: libp11 asks through a UI when it has no PIN, and a server must
 * never wait on a terminal nor retry a login by itself. */
static UI_METHOD *no_prompt;

typedef struct uri_parts_t {
    const char *engine_uri;         /* "pkcs11:" and the path: what libp11 is given */
    const char *pin_source;         /* a file path, or NULL */
    const char *module_path;        /* or NULL */
    const char *token;              /* the module and the token's attributes */
    const char *pin_name;           /* the PIN's name in the cache */
} uri_parts_t;

int scep_token_is_uri(const char *text)
{
    return text && strncmp(text, "pkcs11:", 7) == 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* RFC 3986 percent-decoding; NULL for a bad escape or an escaped NUL. */
static char *pct_decode(apr_pool_t *p, const char *s, apr_size_t n)
{
    char *out = apr_palloc(p, n + 1), *o = out;
    apr_size_t i;

    for (i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < n ? hex_digit(s[i + 1]) : -1;
            int lo = hi >= 0 ? hex_digit(s[i + 2]) : -1;

            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                return NULL;
            }
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        }
        else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

/* RFC 7512's attributes; a vendor's start with "x-". */
static int known_attribute(const char *name, apr_size_t n, int query)
{
    static const char *const path_names[] = {
        "token", "manufacturer", "serial", "model", "library-manufacturer",
        "library-description", "library-version", "object", "type", "id",
        "slot-description", "slot-manufacturer", "slot-id", NULL
    };
    static const char *const query_names[] = {
        "pin-source", "module-name", "module-path", NULL
    };
    const char *const *names = query ? query_names : path_names;
    int i;

    if (n > 2 && strncmp(name, "x-", 2) == 0) {
        return 1;
    }
    for (i = 0; names[i]; i++) {
        if (strlen(names[i]) == n && strncmp(names[i], name, n) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Splits and checks; the path keeps its encoding (libp11 decodes it). */
static const char *uri_split(apr_pool_t *p, const char *uri, uri_parts_t *out)
{
    const char *path, *query, *a, *end, *eq;
    const char *token_attrs = "";
    apr_size_t i, len = strlen(uri);

    memset(out, 0, sizeof(*out));
    if (!scep_token_is_uri(uri)) {
        return "does not start with pkcs11:";
    }
    if (len > URI_MAX) {
        return apr_psprintf(p, "is longer than %d characters", URI_MAX);
    }
    for (i = 0; i < len; i++) {
        if ((unsigned char)uri[i] <= ' ' || (unsigned char)uri[i] >= 0x7f || uri[i] == '#') {
            return "holds a character RFC 7512 does not allow unescaped (a space, a control "
                   "character, '#' or a byte outside ASCII)";
        }
    }
    path = uri + 7;
    query = strchr(path, '?');
    out->engine_uri = apr_pstrndup(p, uri, (apr_size_t)((query ? query : uri + len) - uri));
    for (a = path; *a && a != query; a = *end == ';' ? end + 1 : end) {
        end = a + strcspn(a, ";?");
        eq = memchr(a, '=', (apr_size_t)(end - a));
        if (end == a) {
            return "has an empty attribute (two ';' in a row)";
        }
        if (!eq) {
            return apr_psprintf(p, "has an attribute without '=': '%.*s'", (int)(end - a), a);
        }
        if ((eq - a == 9 && strncmp(a, "pin-value", 9) == 0)) {
            return "holds a PIN (pin-value): configuration text is no place for it; use "
                   "pin-source=file:/path (a file root alone reads) or ScepPassPhraseDialog";
        }
        if (!known_attribute(a, (apr_size_t)(eq - a), 0)) {
            return apr_psprintf(p, "has an attribute RFC 7512 does not define in the path: "
                                "'%.*s'", (int)(eq - a), a);
        }
        if (!pct_decode(p, eq + 1, (apr_size_t)(end - eq - 1))) {
            return apr_psprintf(p, "has a bad percent escape in '%.*s'", (int)(end - a), a);
        }
        if (!(eq - a == 6 && strncmp(a, "object", 6) == 0)
            && !(eq - a == 2 && strncmp(a, "id", 2) == 0)
            && !(eq - a == 4 && strncmp(a, "type", 4) == 0)) {
            token_attrs = apr_pstrcat(p, token_attrs, ";",
                                      apr_pstrndup(p, a, (apr_size_t)(end - a)), NULL);
        }
    }
    for (a = query ? query + 1 : NULL; a && *a; a = *end == '&' ? end + 1 : end) {
        char *value;

        end = a + strcspn(a, "&");
        eq = memchr(a, '=', (apr_size_t)(end - a));
        if (end == a || !eq) {
            return "has a query attribute without '='";
        }
        if (eq - a == 9 && strncmp(a, "pin-value", 9) == 0) {
            return "holds a PIN (pin-value): configuration text is no place for it; use "
                   "pin-source=file:/path (a file root alone reads) or ScepPassPhraseDialog";
        }
        if (!known_attribute(a, (apr_size_t)(eq - a), 1)) {
            return apr_psprintf(p, "has a query attribute RFC 7512 does not define: '%.*s'",
                                (int)(eq - a), a);
        }
        if (!(value = pct_decode(p, eq + 1, (apr_size_t)(end - eq - 1)))) {
            return apr_psprintf(p, "has a bad percent escape in '%.*s'", (int)(end - a), a);
        }
        if (eq - a == 10 && strncmp(a, "pin-source", 10) == 0) {
            if (strncmp(value, "file:", 5) == 0) {
                value += 5;
            }
            if (value[0] != '/') {
                return "has a pin-source that is not file:/absolute/path";
            }
            out->pin_source = value;
        }
        else if (eq - a == 11 && strncmp(a, "module-path", 11) == 0) {
            if (value[0] != '/') {
                return "has a module-path that is not an absolute path";
            }
            out->module_path = value;
        }
    }
    if (strcmp(out->engine_uri, "pkcs11:") == 0) {
        return "names no object (token=, object= or id= at least)";
    }
    out->token = apr_pstrcat(p, out->module_path ? out->module_path : "", token_attrs, NULL);
    out->pin_name = apr_pstrcat(p, "pkcs11 PIN ", out->token, NULL);
    return NULL;
}

const char *scep_token_uri_check(apr_pool_t *p, const char *uri)
{
    uri_parts_t parts;

    return uri_split(p, uri, &parts);
}

/* Every error OpenSSL and libp11 queued, in one line, and the queue emptied. */
static const char *errors(apr_pool_t *p)
{
    return scep_util_openssl_errors(p);
}

apr_status_t scep_token_open(apr_pool_t *p, const char *uri, const char **problem)
{
    const char *module;
    uri_parts_t parts;
    ENGINE *e;

    if ((*problem = uri_split(p, uri, &parts)) != NULL) {
        return APR_EINVAL;
    }
    module = parts.module_path ? parts.module_path : "";
    if (engine) {
        if (strcmp(module, engine_module) != 0) {
            *problem = apr_psprintf(p, "names the PKCS#11 module '%s', but another URI of "
                                    "this server names '%s': one module per server", module,
                                    engine_module);
            return APR_EINVAL;
        }
        return APR_SUCCESS;
    }
    if (strlen(module) >= sizeof(engine_module)) {
        *problem = "names a module-path too long";
        return APR_EINVAL;
    }
    if (!no_prompt && !(no_prompt = UI_create_method("mod_scep: no prompt"))) {
        *problem = "cannot be used: OpenSSL cannot make a UI method";
        return APR_ENOMEM;
    }
    ERR_clear_error();
    if (!(e = ENGINE_by_id("pkcs11"))) {
        *problem = apr_pstrcat(p, "cannot be used: OpenSSL cannot load its pkcs11 engine "
                               "(Debian: libengine-pkcs11-openssl): ", errors(p), NULL);
        return APR_EGENERAL;
    }
    if ((*module && !ENGINE_ctrl_cmd_string(e, "MODULE_PATH", module, 0))
        || !ENGINE_init(e)) {
        *problem = apr_pstrcat(p, "cannot be used: the pkcs11 engine does not start with "
                               "the module '", *module ? module : "(its default)", "': ",
                               errors(p), NULL);
        ENGINE_free(e);
        return APR_EGENERAL;
    }
    ENGINE_free(e);                 /* the functional reference ENGINE_init took stays */
    engine = e;
    apr_cpystrn(engine_module, module, sizeof(engine_module));
    return APR_SUCCESS;
}

void scep_token_close(void)
{
    if (engine) {
        ENGINE_finish(engine);
        engine = NULL;
    }
}

void scep_token_allow_login(const scep_key_dialog_t *dialog)
{
    volatile int *flag = dialog ? scep_key_cache_pin_refused(dialog->cache) : NULL;

    if (flag) {
        *flag = 0;
    }
}

int scep_token_pin_refused(const scep_key_dialog_t *dialog)
{
    volatile int *flag = dialog ? scep_key_cache_pin_refused(dialog->cache) : NULL;

    return flag && *flag;
}

/* The PIN file: root's alone, one line. */
static const char *read_pin_file(apr_pool_t *p, const char *path, char *buf, size_t size,
                                 int *denied)
{
    struct stat st;
    ssize_t n;
    size_t len;
    int fd;

    *denied = 0;
    if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        *denied = errno == EACCES;
        return apr_psprintf(p, "its pin-source '%s' cannot be read: %s", path,
                            strerror(errno));
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return apr_psprintf(p, "its pin-source '%s' is not a regular file", path);
    }
    if (st.st_mode & (S_IRGRP | S_IROTH | S_IWGRP | S_IWOTH)) {
        close(fd);
        return apr_psprintf(p, "its pin-source '%s' is readable or writable by group or "
                            "others (mode %04o); make it mode 0600 or 0400", path,
                            (unsigned)(st.st_mode & 07777));
    }
    n = read(fd, buf, size);
    close(fd);
    if (n < 0 || (size_t)n >= size) {
        OPENSSL_cleanse(buf, size);
        return apr_psprintf(p, "its pin-source '%s' %s", path,
                            n < 0 ? "cannot be read" : "is longer than a PIN");
    }
    len = (size_t)n;
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) {
        len--;
    }
    buf[len] = '\0';
    if (len == 0 || strchr(buf, '\n')) {
        OPENSSL_cleanse(buf, size);
        return apr_psprintf(p, "its pin-source '%s' does not hold one line", path);
    }
    return NULL;
}

/* The PIN for the URI's token: read (root) or asked once, then kept for the children. */
static const char *find_pin(apr_pool_t *p, const scep_key_dialog_t *dialog,
                            const uri_parts_t *parts, char *pin, size_t size)
{
    scep_key_cache_t *cache = dialog ? dialog->cache : NULL;
    const char *kept = scep_key_cache_secret(cache, parts->pin_name), *problem;
    size_t len = 0;
    int denied;

    if (parts->pin_source) {
        problem = read_pin_file(p, parts->pin_source, pin, size, &denied);
        if (problem && !(denied && kept)) {
            return problem;
        }
        if (problem) {
            apr_cpystrn(pin, kept, size);   /* a child: the parent read it as root */
        }
        scep_key_cache_secret_put(cache, parts->pin_name, pin);
        return NULL;
    }
    if (kept) {
        apr_cpystrn(pin, kept, size);
        return NULL;
    }
    if (!dialog || dialog->kind == SCEP_KEY_DIALOG_NONE) {
        return "names no pin-source, and no ScepPassPhraseDialog gives the token's PIN";
    }
    if ((problem = scep_key_dialog_ask(p, dialog, apr_pstrcat(p, "token ", parts->token,
                                                              NULL),
                                       "PIN", pin, size - 1, &len)) != NULL) {
        return apr_pstrcat(p, "its PIN could not be asked for: ", problem, NULL);
    }
    pin[len] = '\0';
    scep_key_cache_secret_put(cache, parts->pin_name, pin);
    return NULL;
}

/* libp11 says "PIN incorrect" (CKR_PIN_INCORRECT), "PIN locked"... in its errors. */
static int login_refused(const char *detail)
{
    return strstr(detail, "PIN") != NULL || strstr(detail, "Login failed") != NULL
           || strstr(detail, "login") != NULL;
}

/* Sets the PIN, runs `load`, and records a refused login for every process. */
static apr_status_t with_login(apr_pool_t *p, const scep_key_dialog_t *dialog,
                               const char *uri, int (*load)(const char *, void *),
                               void *baton, const char **problem)
{
    volatile int *refused = dialog ? scep_key_cache_pin_refused(dialog->cache) : NULL;
    char pin[PIN_MAX];
    uri_parts_t parts;
    const char *detail;

    if ((*problem = uri_split(p, uri, &parts)) != NULL
        || scep_token_open(p, uri, problem) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    if (refused && *refused) {
        *problem = "is not tried: the token refused this server's PIN before (SCEP00501), "
                   "and a retry could lock the token; correct the PIN and restart httpd";
        return APR_EACCES;
    }
    if ((*problem = find_pin(p, dialog, &parts, pin, sizeof(pin))) != NULL) {
        return APR_EINVAL;
    }
    ERR_clear_error();
    if (!ENGINE_ctrl_cmd_string(engine, "PIN", pin, 0)) {
        OPENSSL_cleanse(pin, sizeof(pin));
        *problem = apr_pstrcat(p, "cannot be used: the pkcs11 engine takes no PIN: ",
                               errors(p), NULL);
        return APR_EGENERAL;
    }
    OPENSSL_cleanse(pin, sizeof(pin));
    if (load(parts.engine_uri, baton)) {
        ERR_clear_error();
        return APR_SUCCESS;
    }
    detail = errors(p);
    if (login_refused(detail)) {
        if (refused) {
            *refused = 1;
        }
        scep_key_cache_secret_put(dialog ? dialog->cache : NULL, parts.pin_name, NULL);
        *problem = apr_pstrcat(p, "cannot be used: the token refused the PIN (SCEP00501; "
                               "no process of this server tries it again): ", detail, NULL);
        return APR_EACCES;
    }
    *problem = apr_pstrcat(p, "cannot be loaded from the token (missing token or object?): ",
                           *detail ? detail : "the engine says nothing more", NULL);
    return APR_EGENERAL;
}

static int load_key(const char *uri, void *baton)
{
    EVP_PKEY **out = baton;

    *out = ENGINE_load_private_key(engine, uri, no_prompt, NULL);
    return *out != NULL;
}

apr_status_t scep_token_load_key(apr_pool_t *p, const scep_key_dialog_t *dialog,
                                 const char *uri, EVP_PKEY **out, const char **problem)
{
    *out = NULL;
    return with_login(p, dialog, uri, load_key, out, problem);
}

void scep_token_free_key(EVP_PKEY *key)
{
    EVP_PKEY_free(key);
}

/* libp11's LOAD_CERT_CTRL argument */
typedef struct cert_request_t {
    const char *uri;
    X509 *cert;
} cert_request_t;

static int load_cert(const char *uri, void *baton)
{
    cert_request_t *req = baton;

    req->uri = uri;
    return ENGINE_ctrl_cmd(engine, "LOAD_CERT_CTRL", 0, req, NULL, 0) && req->cert;
}

apr_status_t scep_token_load_cert(apr_pool_t *p, const scep_key_dialog_t *dialog,
                                  const char *uri, X509 **out, const char **problem)
{
    cert_request_t req = { NULL, NULL };
    apr_status_t rv = with_login(p, dialog, uri, load_cert, &req, problem);

    if (rv == APR_SUCCESS) {
        *out = scep_util_own_X509(p, req.cert);
    }
    return rv;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* PKCS#11 tokens: RFC 7512 URIs checked and split, the PIN found (pin-source file or
 * dialog) and kept for the children, keys and certificates found in the token through
 * libp11, and the one PKCS#11 module of the process loaded and unloaded around forks and
 * failures.
 *
 * Why libp11's library rather than its OpenSSL engine: the engine keeps every key it
 * handed out in a cache that holds a reference to the engine itself, so the engine is
 * never finished and the module never finalised; a token that went away (session closed,
 * files unreadable) then leaves stale object handles that no reload can replace.  The
 * library loads and unloads the module when told (C_Initialize, C_Finalize), which a
 * child needs to open a new session.  Keys come out as ordinary EVP_PKEYs whose RSA and
 * EC methods call the token, so the rest of the code signs and decrypts as with a file
 * key.  Configuration holds only RFC 7512 URIs: an OpenSSL 3 pkcs11-provider (which
 * Debian 12 does not ship) would take them unchanged, changing this file alone. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_strings.h>
#include <apr_time.h>
#include <libp11.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "scep_key.h"
#include "scep_token.h"
#include "scep_util.h"
#include "scep_util_own.h"

#define PIN_MAX 256
#define URI_MAX 4096
/* Where a PIN came from, in the login record, when no pin-source file gave it */
#define DIALOG_SOURCE "the dialog"
/* A pin-source path, bounded so that the login record always holds it whole */
#define PIN_PATH_MAX 512
/* Without module-path: p11-kit's proxy, which loads the modules the system registered
 * (libp11's engine has the same default). */
#define DEFAULT_MODULE "p11-kit-proxy.so"
/* PKCS#11's return values for a PIN the token will not take (libp11 queues them as the
 * error's reason) */
#define CKR_PIN_INCORRECT_ 0xA0UL
#define CKR_PIN_INVALID_ 0xA1UL
#define CKR_PIN_LEN_RANGE_ 0xA2UL
#define CKR_PIN_EXPIRED_ 0xA3UL
#define CKR_PIN_LOCKED_ 0xA4UL

/* The process's module, while loaded, and its slots. */
static PKCS11_CTX *module;
static PKCS11_SLOT *slots;
static unsigned int slot_count;
/* The module of this configuration, loaded or not, so that every URI names the same one:
 * a child loads one module for all its CAs. */
static char module_path[1024];

typedef struct uri_parts_t {
    const char *token_label;        /* the path's attributes, decoded; NULL if absent */
    const char *manufacturer;
    const char *serial;
    const char *model;
    const char *object;
    const unsigned char *id;
    apr_size_t id_len;
    const char *type;
    const char *pin_source;         /* a file path, or NULL */
    const char *module_path;        /* or NULL */
    const char *token;              /* the module and the token's attributes */
    const char *pin_name;           /* the PIN's name in the cache */
} uri_parts_t;

int scep_token_is_uri(const char *text)
{
    return text && strncmp(text, "pkcs11:", 7) == 0;
}

static int has_control(const char *text)
{
    for (; *text; text++) {
        if ((unsigned char)*text < 0x20 || (unsigned char)*text == 0x7f) {
            return 1;
        }
    }
    return 0;
}

/* RFC 3986 percent-decoding into a NUL-terminated copy, its length in *len; NULL for a
 * bad escape, or an escaped NUL unless `bytes` (an id is bytes, text is not). */
static char *pct_decode(apr_pool_t *p, const char *s, apr_size_t n, int bytes,
                        apr_size_t *len)
{
    char *out = apr_palloc(p, n + 1), *o = out;
    apr_size_t i;

    for (i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < n ? scep_util_hex_digit((unsigned char)s[i + 1]) : -1;
            int lo = hi >= 0 ? scep_util_hex_digit((unsigned char)s[i + 2]) : -1;

            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0 && !bytes)) {
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
    *len = (apr_size_t)(o - out);
    return out;
}

/* RFC 7512's attributes; a vendor's start with "x-". */
static int known_attribute(const char *name, apr_size_t n, int query)
{
    /* what a token and an object are found by here; the library and slot attributes
     * of RFC 7512 would be ignored, and an ignored attribute could pick another token */
    static const char *const path_names[] = {
        "token", "manufacturer", "serial", "model", "object", "type", "id", NULL
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
/* One path attribute into `out`: the same attribute twice is refused. */
static const char *set_path_attribute(apr_pool_t *p, uri_parts_t *out, const char *name,
                                      apr_size_t n, const char *encoded, apr_size_t encoded_len)
{
    const char **slot = NULL;
    int is_id = n == 2 && strncmp(name, "id", 2) == 0;
    apr_size_t len = 0;
    char *value = pct_decode(p, encoded, encoded_len, is_id, &len);

    if (!value) {
        return apr_psprintf(p, "has a bad percent escape in '%.*s'", (int)n, name);
    }
    if (is_id) {
        if (out->id) {
            return "names id twice";
        }
        out->id = (const unsigned char *)value;
        out->id_len = len;
        return NULL;
    }
    slot = n == 5 && strncmp(name, "token", 5) == 0 ? &out->token_label
           : n == 12 && strncmp(name, "manufacturer", 12) == 0 ? &out->manufacturer
           : n == 6 && strncmp(name, "serial", 6) == 0 ? &out->serial
           : n == 5 && strncmp(name, "model", 5) == 0 ? &out->model
           : n == 6 && strncmp(name, "object", 6) == 0 ? &out->object
           : n == 4 && strncmp(name, "type", 4) == 0 ? &out->type : NULL;
    if (!slot) {
        return NULL;                /* a vendor's x- attribute */
    }
    if (*slot) {
        return apr_psprintf(p, "names %.*s twice", (int)n, name);
    }
    *slot = value;
    return NULL;
}

static const char *uri_split(apr_pool_t *p, const char *uri, uri_parts_t *out)
{
    const char *path, *query, *a, *end, *eq, *problem;
    char *value;
    const char *token_attrs = "";
    apr_size_t i, len = strlen(uri), value_len = 0;

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
            return apr_psprintf(p, "has an attribute mod_scep does not match tokens by: "
                                "'%.*s' (token, manufacturer, serial, model, object, id "
                                "and type are)", (int)(eq - a), a);
        }
        if ((problem = set_path_attribute(p, out, a, (apr_size_t)(eq - a), eq + 1,
                                          (apr_size_t)(end - eq - 1))) != NULL) {
            return problem;
        }
        if (!(eq - a == 6 && strncmp(a, "object", 6) == 0)
            && !(eq - a == 2 && strncmp(a, "id", 2) == 0)
            && !(eq - a == 4 && strncmp(a, "type", 4) == 0)) {
            token_attrs = apr_pstrcat(p, token_attrs, ";",
                                      apr_pstrndup(p, a, (apr_size_t)(end - a)), NULL);
        }
    }
    for (a = query ? query + 1 : NULL; a && *a; a = *end == '&' ? end + 1 : end) {
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
        if (eq - a == 11 && strncmp(a, "module-name", 11) == 0) {
            /* p11-kit's registry is not consulted: naming the file leaves no doubt which
             * library signs */
            return "names its module by module-name, which mod_scep does not resolve: name "
                   "the library by module-path=/absolute/path.so";
        }
        if (!(value = pct_decode(p, eq + 1, (apr_size_t)(end - eq - 1), 0, &value_len))) {
            return apr_psprintf(p, "has a bad percent escape in '%.*s'", (int)(end - a), a);
        }
        if (eq - a == 10 && strncmp(a, "pin-source", 10) == 0) {
            if (out->pin_source) {
                return "names pin-source twice";
            }
            /* RFC 8089: file:/p, file:///p, file://localhost/p; another host is not here */
            if (strncmp(value, "file://localhost/", 17) == 0) {
                value += 16;
            }
            else if (strncmp(value, "file:///", 8) == 0) {
                value += 7;
            }
            else if (strncmp(value, "file:", 5) == 0 && value[5] != '/') {
                return "has a pin-source that is not file:/absolute/path";
            }
            else if (strncmp(value, "file:", 5) == 0 && value[6] != '/') {
                value += 5;
            }
            if (value[0] != '/' || value[1] == '/') {
                return "has a pin-source that is not file:/absolute/path (a file on this "
                       "machine)";
            }
            /* the path goes into the login record, whole and on one line */
            if (strlen(value) > PIN_PATH_MAX || has_control(value)) {
                return apr_psprintf(p, "has a pin-source path longer than %d bytes or with "
                                    "a control character", PIN_PATH_MAX);
            }
            out->pin_source = value;
        }
        else if (eq - a == 11 && strncmp(a, "module-path", 11) == 0) {
            if (out->module_path) {
                return "names module-path twice";
            }
            if (value[0] != '/') {
                return "has a module-path that is not an absolute path";
            }
            out->module_path = value;
        }
    }
    if (!out->object && !out->id) {
        return "names no object (object= or id=)";
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
    const char *text = scep_util_openssl_errors(p);

    return *text ? text : "the module says nothing more";
}

apr_status_t scep_token_open(apr_pool_t *p, const char *uri, const char **problem)
{
    const char *path;
    uri_parts_t parts;

    if ((*problem = uri_split(p, uri, &parts)) != NULL) {
        return APR_EINVAL;
    }
    path = parts.module_path ? parts.module_path : DEFAULT_MODULE;
    if (module_path[0] && strcmp(path, module_path) != 0) {
        *problem = apr_psprintf(p, "names the PKCS#11 module '%s', but another URI of this "
                                "server names '%s': one module per server", path,
                                module_path);
        return APR_EINVAL;
    }
    if (module) {
        return APR_SUCCESS;
    }
    if (strlen(path) >= sizeof(module_path)) {
        *problem = "names a module-path too long";
        return APR_EINVAL;
    }
    ERR_clear_error();
    if (!(module = PKCS11_CTX_new())) {
        *problem = "cannot be used: libp11 cannot make a context";
        return APR_ENOMEM;
    }
    if (PKCS11_CTX_load(module, path) != 0) {
        /* what the module printed into OpenSSL's queue as it failed (SoftHSM2: its own
         * OpenSSL's engine search) rarely names the cause */
        *problem = apr_pstrcat(p, "cannot be used: the PKCS#11 module '", path,
                               "' does not load or start (one that starts as root but not "
                               "in a worker mostly cannot read its configuration or files "
                               "as httpd's User): ", errors(p), NULL);
        PKCS11_CTX_free(module);
        module = NULL;
        return APR_EGENERAL;
    }
    if (PKCS11_enumerate_slots(module, &slots, &slot_count) != 0) {
        *problem = apr_pstrcat(p, "cannot be used: the PKCS#11 module '", path,
                               "' lists no slots: ", errors(p), NULL);
        scep_token_close();
        return APR_EAGAIN;
    }
    apr_cpystrn(module_path, path, sizeof(module_path));
    return APR_SUCCESS;
}

void scep_token_close(void)
{
    if (!module) {
        return;
    }
    if (slots) {
        PKCS11_release_all_slots(module, slots, slot_count);
        slots = NULL;
        slot_count = 0;
    }
    PKCS11_CTX_unload(module);      /* C_Finalize: every session of the process ends */
    PKCS11_CTX_free(module);
    module = NULL;
    ERR_clear_error();
}

void scep_token_config_begin(void)
{
    scep_token_close();
    module_path[0] = '\0';
}

/* The PIN file: root's alone, one line.  *source names this version of the file, for
 * the login record. */
static const char *read_pin_file(apr_pool_t *p, const char *path, char *buf, size_t size,
                                 const char **source)
{
    struct stat st;
    ssize_t n;
    size_t len;
    int fd;

    if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        return apr_psprintf(p, "its pin-source '%s' cannot be read: %s", path,
                            strerror(errno));
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return apr_psprintf(p, "its pin-source '%s' is not a regular file", path);
    }
    if (st.st_uid != 0 && st.st_uid != geteuid()) {
        close(fd);
        return apr_psprintf(p, "its pin-source '%s' belongs to uid %lu: it must be root's",
                            path, (unsigned long)st.st_uid);
    }
    *source = apr_psprintf(p, "file %s %lu:%lu %" APR_INT64_T_FMT " %" APR_INT64_T_FMT
                           ".%09lu", path, (unsigned long)st.st_dev, (unsigned long)st.st_ino,
                           (apr_int64_t)st.st_size, (apr_int64_t)st.st_mtim.tv_sec,
                           (unsigned long)st.st_mtim.tv_nsec);
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

/* The PIN for the URI's token: read (root) or asked once, then kept for the children,
 * with *source naming where it came from (for the login record). */
static const char *find_pin(apr_pool_t *p, const scep_key_dialog_t *dialog,
                            const uri_parts_t *parts, char *pin, size_t size,
                            const char **source)
{
    scep_key_cache_t *cache = dialog ? dialog->cache : NULL;
    const char *kept = scep_key_cache_secret(cache, parts->pin_name), *problem;
    const char *source_name = apr_pstrcat(p, parts->pin_name, " source", NULL);
    size_t len = 0;

    if (dialog && dialog->child) {
        /* a child never reads root's file (nor one put in its place since) */
        if (!kept) {
            return "has no PIN in this process: the parent kept none for the children";
        }
        apr_cpystrn(pin, kept, size);
        *source = scep_key_cache_secret(cache, source_name);
        return NULL;
    }
    if (parts->pin_source) {
        if ((problem = read_pin_file(p, parts->pin_source, pin, size, source)) != NULL) {
            return problem;
        }
        scep_key_cache_secret_put(cache, parts->pin_name, pin);
        scep_key_cache_secret_put(cache, source_name, *source);
        return NULL;
    }
    if (kept) {
        /* kept from a pin-source file (another URI of this token names one) or asked */
        apr_cpystrn(pin, kept, size);
        *source = scep_key_cache_secret(cache, source_name);
        if (!*source) {
            *source = DIALOG_SOURCE;
        }
        return NULL;
    }
    *source = DIALOG_SOURCE;
    scep_key_cache_secret_put(cache, source_name, *source);
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

/* An attribute the URI leaves out matches anything; one it names matches exactly. */
static int attribute_matches(const char *wanted, const char *have)
{
    return !wanted || (have && strcmp(wanted, have) == 0);
}

/* The token the URI names: exactly one, with a token in its slot. */
static PKCS11_TOKEN *find_token(apr_pool_t *p, const uri_parts_t *parts, const char **problem)
{
    PKCS11_TOKEN *found = NULL;
    unsigned int i;
    int matches = 0;

    for (i = 0; i < slot_count; i++) {
        PKCS11_TOKEN *t = slots[i].token;

        if (!t || !t->initialized
            || !attribute_matches(parts->token_label, t->label)
            || !attribute_matches(parts->manufacturer, t->manufacturer)
            || !attribute_matches(parts->serial, t->serialnr)
            || !attribute_matches(parts->model, t->model)) {
            continue;
        }
        found = t;
        matches++;
    }
    if (matches == 0) {
        *problem = apr_psprintf(p, "cannot be loaded from the token: no token of the module "
                                "matches (%u slots; is the token missing, or does the "
                                "module miss its own configuration, such as SoftHSM2's "
                                "SOFTHSM2_CONF, in httpd's environment?)", slot_count);
        return NULL;
    }
    if (matches > 1) {
        *problem = apr_psprintf(p, "matches %d tokens: name one by token= or serial=",
                                matches);
        return NULL;
    }
    return found;
}

static int object_matches(const uri_parts_t *parts, const char *label,
                          const unsigned char *id, size_t id_len)
{
    return (!parts->object || (label && strcmp(label, parts->object) == 0))
           && (!parts->id || (id_len == parts->id_len && memcmp(id, parts->id, id_len) == 0));
}

/* Whether a failed login's reason is a PIN the token refused. */
static int pin_refused_by_token(void)
{
    unsigned long err;

    while ((err = ERR_get_error()) != 0) {
        unsigned long reason = (unsigned long)ERR_GET_REASON(err);

        if (reason == CKR_PIN_INCORRECT_ || reason == CKR_PIN_INVALID_
            || reason == CKR_PIN_LEN_RANGE_ || reason == CKR_PIN_EXPIRED_
            || reason == CKR_PIN_LOCKED_) {
            ERR_clear_error();
            return 1;
        }
    }
    return 0;
}

/* ---- the login record --------------------------------------------------------------
 * One file per token in root's runtime directory, opened by the parent (root) at startup
 * and inherited by the children, which could not open it.  Every process of the server,
 * and httpd -t, logs in under an fcntl lock on it, so that they never try a PIN
 * together; a PIN the token refused is written into it, with where that PIN came from,
 * and no process tries that PIN again.  Empty: no refusal.  Whoever runs code in a
 * child could clear or hold the record through the inherited descriptor; such code has
 * the PIN in the child's memory anyway. */
#define RECORD_MAX 1024
/* a login elsewhere (an HSM's can take seconds) is waited for this long, in steps, by the
 * parent, httpd -t and a child starting (its siblings log in at the same moment); a child
 * serving requests tries once and answers 503 */
#define RECORD_LOCK_TRIES 200
#define RECORD_LOCK_STEP_US 50000

static int record_open(apr_pool_t *p, const scep_key_dialog_t *dialog,
                       const uri_parts_t *parts, const char **path, const char **problem)
{
    const char *token = parts->token ? parts->token : "";
    const char *name = apr_pstrcat(p, "pkcs11 login record ", token, NULL);
    unsigned char digest[32];
    struct stat st, at_path;
    int fd = scep_key_cache_fd(dialog ? dialog->cache : NULL, name);

    SHA256((const unsigned char *)token, strlen(token), digest);
    *path = dialog && dialog->state_dir
            ? apr_pstrcat(p, dialog->state_dir, "/scep-token-",
                          scep_util_hex(p, digest, 8), NULL)
            : NULL;
    if (!*path || (fd >= 0 && dialog->child)) {
        return fd;                  /* a child keeps what the parent opened */
    }
    if (dialog->child) {
        *problem = "cannot be logged in to by this child: the parent opened no login record";
        return -1;
    }
    /* the parent, at every configuration: the record at the path is the one in use (an
     * operator may have removed it) */
    if (fd >= 0 && lstat(*path, &at_path) == 0 && fstat(fd, &st) == 0
        && st.st_dev == at_path.st_dev && st.st_ino == at_path.st_ino) {
        return fd;
    }
    if (fd >= 0) {
        close(fd);
    }
    if ((fd = open(*path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) {
        *problem = apr_psprintf(p, "cannot be logged in to: its login record '%s' cannot be "
                                "opened: %s", *path, strerror(errno));
        scep_key_cache_fd_put(dialog->cache, name, -1);
        return -1;
    }
    /* a hard link would let the record's truncation reach another file */
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()
        || (st.st_mode & 077) || st.st_nlink != 1) {
        close(fd);
        *problem = apr_psprintf(p, "cannot be logged in to: its login record '%s' is not a "
                                "file of this user's alone (one link, mode 0600)", *path);
        scep_key_cache_fd_put(dialog->cache, name, -1);
        return -1;
    }
    scep_key_cache_fd_put(dialog->cache, name, fd);
    return fd;
}

/* The lock taken (or let go, F_UNLCK), trying `tries` times. */
static int record_lock(int fd, short type, int tries)
{
    struct flock lock;
    int i;

    memset(&lock, 0, sizeof(lock));
    lock.l_type = type;
    lock.l_whence = SEEK_SET;
    for (i = 0; i < tries; i++) {
        if (i > 0) {
            usleep(RECORD_LOCK_STEP_US);
        }
        if (fcntl(fd, F_SETLK, &lock) == 0) {
            return 0;
        }
        if (errno != EACCES && errno != EAGAIN) {
            return -1;
        }
    }
    return -1;
}

/* The refusal the record holds ("refused TIME SOURCE"), or NULL. */
static const char *record_read(apr_pool_t *p, int fd)
{
    char buf[RECORD_MAX];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

    if (n <= 0) {
        return NULL;
    }
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    return apr_pstrdup(p, buf);
}

static void record_write(int fd, const char *text)
{
    size_t len = strlen(text);

    if (ftruncate(fd, 0) != 0 || (len && pwrite(fd, text, len, 0) != (ssize_t)len)
        || fsync(fd) != 0) {
        /* nothing better to do: the refusal still holds in this process (the PIN is
         * forgotten), and the next start says what it finds */
    }
}

/* Why the token is not tried: the record's refusal of this very PIN, or the token's
 * own word that its PIN is locked or one try from it; NULL to try. */
static const char *not_to_try(apr_pool_t *p, const PKCS11_TOKEN *token, const char *refusal,
                              const char *source, const char *record_path)
{
    const char *refused_source;

    if (token->userPinLocked) {
        return "is not tried: the token says its user PIN is locked; unlock it with the "
               "security officer's PIN, then restart httpd";
    }
    if (token->userPinFinalTry) {
        return "is not tried: the token says one more wrong PIN locks it; log in to it once "
               "by hand (pkcs11-tool --login --test) to be sure of the PIN, then restart "
               "httpd";
    }
    if (!refusal || !*refusal) {
        return NULL;
    }
    if (strncmp(refusal, "refused ", 8) != 0 || !(refused_source = strchr(refusal + 8, ' '))) {
        /* not what a process of this server writes: a login could be one wrong PIN more */
        return apr_psprintf(p, "is not tried: its login record %s holds what this server "
                            "does not write; check it, remove it and restart httpd",
                            record_path);
    }
    refused_source++;
    if (strcmp(refused_source, source ? source : DIALOG_SOURCE) != 0) {
        return NULL;                /* another PIN file, or one changed since: one try */
    }
    return apr_psprintf(p, "is not tried: the token refused this server's PIN before "
                        "(SCEP00501; %s), and a retry could lock the token; %s", refusal,
                        strcmp(refused_source, DIALOG_SOURCE) == 0
                        ? apr_pstrcat(p, "remove ", record_path, " and restart httpd to give "
                                      "the dialog's PIN one more try", NULL)
                        : "correct the pin-source file (a changed file is tried once)");
}

/* Logs in under the record's lock (when there is a record); a refusal is written. */
static apr_status_t login(apr_pool_t *p, const scep_key_dialog_t *dialog,
                          PKCS11_TOKEN *token, const uri_parts_t *parts, const char **problem)
{
    char pin[PIN_MAX];
    const char *record_path = NULL, *refusal = NULL, *source = NULL;
    int fd = record_open(p, dialog, parts, &record_path, problem);
    apr_status_t rv = APR_SUCCESS;

    if (fd < 0 && record_path) {
        return APR_EGENERAL;
    }
    /* the PIN first: a dialog may take minutes, and holds no lock meanwhile */
    if ((*problem = find_pin(p, dialog, parts, pin, sizeof(pin), &source)) != NULL) {
        return APR_EINVAL;
    }
    if (fd >= 0 && record_lock(fd, F_WRLCK, dialog && dialog->serving ? 1
                                                : RECORD_LOCK_TRIES) != 0) {
        OPENSSL_cleanse(pin, sizeof(pin));
        *problem = apr_psprintf(p, "cannot be logged in to now: another process of this "
                                "server holds the lock of its login record %s", record_path);
        return APR_EGENERAL;
    }
    if (fd >= 0) {
        refusal = record_read(p, fd);
    }
    if ((*problem = not_to_try(p, token, refusal, source, record_path)) != NULL) {
        OPENSSL_cleanse(pin, sizeof(pin));
        /* a kept dialog PIN is the refused one: once the record is removed, ask again */
        if (source && strcmp(source, DIALOG_SOURCE) == 0) {
            scep_key_cache_secret_put(dialog ? dialog->cache : NULL, parts->pin_name, NULL);
        }
        if (fd >= 0) {
            record_lock(fd, F_UNLCK, 1);
        }
        return APR_EACCES;
    }
    ERR_clear_error();
    if (PKCS11_login(token->slot, 0, pin) == 0) {
        if (fd >= 0 && refusal) {
            record_write(fd, "");
        }
    }
    else if (pin_refused_by_token()) {
        rv = APR_EACCES;
        if (fd >= 0) {
            /* the time without spaces: the source follows the first one */
            record_write(fd, apr_psprintf(p, "refused %s %s\n",
                                          SCEP_UTIL_ISO_TIME(apr_time_sec(apr_time_now())),
                                          source ? source : DIALOG_SOURCE));
        }
        scep_key_cache_secret_put(dialog ? dialog->cache : NULL, parts->pin_name, NULL);
        *problem = "cannot be used: the token refused the PIN (SCEP00501; no process of this "
                   "server tries that PIN again)";
    }
    else {
        rv = APR_EGENERAL;
        *problem = apr_pstrcat(p, "cannot be used: the login failed: ", errors(p), NULL);
    }
    OPENSSL_cleanse(pin, sizeof(pin));
    if (fd >= 0) {
        record_lock(fd, F_UNLCK, 1);
    }
    return rv;
}

/* The module loaded, the token found, logged in once with the PIN. */
static PKCS11_TOKEN *open_token(apr_pool_t *p, const scep_key_dialog_t *dialog,
                                const char *uri, uri_parts_t *parts, apr_status_t *rv,
                                const char **problem)
{
    PKCS11_TOKEN *token;
    int logged_in = 0;

    *rv = APR_EINVAL;
    if ((*problem = uri_split(p, uri, parts)) != NULL
        || (*rv = scep_token_open(p, uri, problem)) != APR_SUCCESS) {
        return NULL;
    }
    if (!(token = find_token(p, parts, problem))) {
        *rv = APR_EAGAIN;
        return NULL;
    }
    *rv = APR_EGENERAL;
    if (!token->loginRequired
        || (PKCS11_is_logged_in(token->slot, 0, &logged_in) == 0 && logged_in)) {
        return token;
    }
    *rv = login(p, dialog, token, parts, problem);
    return *rv == APR_SUCCESS ? token : NULL;
}

/* open_token, for an object of `type` (the URI's type, when it names one). */
static PKCS11_TOKEN *open_for(apr_pool_t *p, const scep_key_dialog_t *dialog,
                              const char *uri, const char *type, uri_parts_t *parts,
                              apr_status_t *rv, const char **problem)
{
    PKCS11_TOKEN *token = open_token(p, dialog, uri, parts, rv, problem);

    if (token && parts->type && strcmp(parts->type, type) != 0) {
        *problem = apr_psprintf(p, "names an object of type %s where one of type %s is "
                                "wanted", parts->type, type);
        *rv = APR_EINVAL;
        return NULL;
    }
    return token;
}

/* Why a listing of `what` failed, or why nothing in it matched. */
static apr_status_t not_loaded(apr_pool_t *p, const char *what, int listed, unsigned int n,
                               const char **problem)
{
    *problem = listed ? apr_psprintf(p, "cannot be loaded from the token: no %s of it "
                                     "has the URI's object and id attributes (it holds %u)",
                                     what, n)
                      : apr_pstrcat(p, "cannot be loaded from the token: its ", what,
                                    "s cannot be listed: ", errors(p), NULL);
    return APR_EGENERAL;
}

apr_status_t scep_token_load_key(apr_pool_t *p, const scep_key_dialog_t *dialog,
                                 const char *uri, EVP_PKEY **out, const char **problem)
{
    PKCS11_KEY *keys = NULL;
    PKCS11_TOKEN *token;
    unsigned int n = 0, i;
    uri_parts_t parts;
    apr_status_t rv;

    *out = NULL;
    if (!(token = open_for(p, dialog, uri, "private", &parts, &rv, problem))) {
        return rv;
    }
    if (PKCS11_enumerate_keys(token, &keys, &n) != 0) {
        return not_loaded(p, "private key", 0, 0, problem);
    }
    for (i = 0; i < n; i++) {
        if (object_matches(&parts, keys[i].label, keys[i].id, keys[i].id_len)) {
            if (!(*out = PKCS11_get_private_key(&keys[i]))) {
                *problem = apr_pstrcat(p, "cannot be loaded from the token: ", errors(p),
                                       NULL);
                return APR_EGENERAL;
            }
            ERR_clear_error();
            return APR_SUCCESS;
        }
    }
    return not_loaded(p, "private key", 1, n, problem);
}

void scep_token_free_key(EVP_PKEY *key)
{
    EVP_PKEY_free(key);
}

apr_status_t scep_token_load_cert(apr_pool_t *p, const scep_key_dialog_t *dialog,
                                  const char *uri, X509 **out, const char **problem)
{
    PKCS11_CERT *certs = NULL;
    PKCS11_TOKEN *token;
    unsigned int n = 0, i;
    uri_parts_t parts;
    apr_status_t rv;

    if (!(token = open_for(p, dialog, uri, "cert", &parts, &rv, problem))) {
        return rv;
    }
    if (PKCS11_enumerate_certs(token, &certs, &n) != 0) {
        return not_loaded(p, "certificate", 0, 0, problem);
    }
    for (i = 0; i < n; i++) {
        if (object_matches(&parts, certs[i].label, certs[i].id, certs[i].id_len)
            && certs[i].x509) {
            X509 *copy = X509_dup(certs[i].x509);

            if (!copy) {
                *problem = "cannot be copied out of libp11";
                return APR_ENOMEM;
            }
            *out = scep_util_own_X509(p, copy);
            return APR_SUCCESS;
        }
    }
    return not_loaded(p, "certificate", 1, n, problem);
}

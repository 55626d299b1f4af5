/* SPDX-License-Identifier: Apache-2.0 */
/* Shared helpers of the core: formatting log lines for a host-supplied sink, draining
 * OpenSSL's error queue into those lines, constant-time comparison of secrets, and the
 * strict reading of the query strings of the operator-facing handlers. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <apr_strings.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

#include "scep_util.h"
#include "scep_util_own.h"

#define SCEP_UTIL_OWN_DEFINE(name, pointer, free_obj)                                   \
    static apr_status_t free_##name(void *data)                                        \
    {                                                                                  \
        pointer obj = data;                                                            \
                                                                                       \
        free_obj;                                                                      \
        return APR_SUCCESS;                                                            \
    }                                                                                  \
                                                                                       \
    pointer scep_util_own_##name(apr_pool_t *p, pointer obj)                           \
    {                                                                                  \
        if (obj) {                                                                     \
            apr_pool_cleanup_register(p, obj, free_##name, apr_pool_cleanup_null);     \
        }                                                                              \
        return obj;                                                                    \
    }
SCEP_UTIL_OWNED(SCEP_UTIL_OWN_DEFINE)
#undef SCEP_UTIL_OWN_DEFINE

void scep_log_at(const scep_log_t *log, const char *file, int line, int level,
                 const char *fmt, ...)
{
    char text[1024];
    va_list ap;

    if (!log || !log->fn || level > log->max_level) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    log->fn(log->baton, file, line, level, text);
}

const char *scep_util_openssl_errors(apr_pool_t *p)
{
    const char *joined = "";
    const char *file, *data;
    int line, flags;
    unsigned long code;
    char buf[256];

    while ((code = ERR_get_error_all(&file, &line, NULL, &data, &flags)) != 0) {
        ERR_error_string_n(code, buf, sizeof(buf));
        joined = apr_pstrcat(p, joined, *joined ? "; " : "", buf,
                             (data && (flags & ERR_TXT_STRING)) ? " (" : "",
                             (data && (flags & ERR_TXT_STRING)) ? data : "",
                             (data && (flags & ERR_TXT_STRING)) ? ")" : "", NULL);
    }
    return joined;
}

int scep_util_secret_equal(const void *a, apr_size_t a_len, const void *b, apr_size_t b_len)
{
    if (a_len != b_len) {
        return 0;
    }
    return CRYPTO_memcmp(a, b, a_len) == 0;
}

static const char *hex_with(apr_pool_t *p, const unsigned char *data, apr_size_t len,
                            const char *digits)
{
    char *out = apr_palloc(p, len * 2 + 1);
    apr_size_t i;

    for (i = 0; i < len; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 0x0f];
    }
    out[2 * len] = '\0';
    return out;
}

const char *scep_util_hex(apr_pool_t *p, const unsigned char *data, apr_size_t len)
{
    return hex_with(p, data, len, "0123456789abcdef");
}

const char *scep_util_hex_upper(apr_pool_t *p, const unsigned char *data, apr_size_t len)
{
    return hex_with(p, data, len, "0123456789ABCDEF");
}

int scep_util_hex_digit(int c)
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

void scep_util_cli_say(const char *progname, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: ", progname);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

/* A name from the wire, fit for a log line and an error body: printable ASCII only, and
 * short, since it only has to be recognised. */
static const char *shown_name(apr_pool_t *p, const char *name, apr_size_t len)
{
    apr_size_t i, n = len > 32 ? 32 : len;
    char *out = apr_palloc(p, n + 4);

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];

        out[i] = (char)(c > 0x20 && c < 0x7f && c != '\'' ? c : '?');
    }
    memcpy(out + n, len > n ? "..." : "", len > n ? 4 : 1);
    return out;
}

apr_status_t scep_util_params_parse(apr_pool_t *p, const char *text, scep_param_t *params,
                                    apr_size_t count, const char **why)
{
    const char **found = apr_pcalloc(p, (count ? count : 1) * sizeof(*found));
    const char *s = text;
    apr_size_t i;

    *why = NULL;
    while (s && *s) {
        const char *start = s, *eq = NULL, *name;
        apr_size_t name_len, value_len, j;
        char *value, *o;

        while (*s && *s != '&') {
            if (!eq && *s == '=') {
                eq = s;
            }
            s++;
        }
        if (s == start) {
            *why = "an empty parameter (two '&' in a row, or one at an end)";
            return APR_EINVAL;
        }
        name = start;
        name_len = (apr_size_t)((eq ? eq : s) - start);
        for (i = 0; i < count; i++) {
            if (strlen(params[i].name) == name_len
                && strncasecmp(params[i].name, name, name_len) == 0) {
                break;
            }
        }
        if (i == count) {
            *why = apr_psprintf(p, "unknown parameter '%s'", shown_name(p, name, name_len));
            return APR_EINVAL;
        }
        if (found[i]) {
            *why = apr_psprintf(p, "parameter '%s' given twice", params[i].name);
            return APR_EINVAL;
        }
        if (!eq || eq + 1 == s) {
            *why = apr_psprintf(p, "parameter '%s' has no value", params[i].name);
            return APR_EINVAL;
        }
        /* decoding only shrinks, so the value's own length bounds the allocation */
        value_len = (apr_size_t)(s - (eq + 1));
        o = value = apr_palloc(p, value_len + 1);
        for (j = 0; j < value_len; j++) {
            const char *v = eq + 1 + j;
            int hi, lo;

            if (*v != '%') {
                *o++ = *v;
                continue;
            }
            if (value_len - j < 3 || (hi = scep_util_hex_digit((unsigned char)v[1])) < 0
                || (lo = scep_util_hex_digit((unsigned char)v[2])) < 0) {
                *why = apr_psprintf(p, "parameter '%s' has a bad or truncated %%-escape",
                                    params[i].name);
                return APR_EINVAL;
            }
            if ((hi | lo) == 0) {
                /* a NUL would cut the value short where C reads it */
                *why = apr_psprintf(p, "parameter '%s' holds an escaped NUL (%%00)",
                                    params[i].name);
                return APR_EINVAL;
            }
            *o++ = (char)((hi << 4) | lo);
            j += 2;
        }
        *o = '\0';
        found[i] = value;
        if (*s == '&') {
            s++;
            if (!*s) {
                *why = "an empty parameter (two '&' in a row, or one at an end)";
                return APR_EINVAL;
            }
        }
    }
    for (i = 0; i < count; i++) {
        params[i].value = found[i];
    }
    return APR_SUCCESS;
}

const char *scep_util_iso_time(char buf[SCEP_UTIL_ISO_TIME_SIZE], apr_int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if ((apr_int64_t)tt != t || !gmtime_r(&tt, &tm)
        || !strftime(buf, SCEP_UTIL_ISO_TIME_SIZE, "%Y-%m-%dT%H:%M:%SZ", &tm)) {
        apr_snprintf(buf, SCEP_UTIL_ISO_TIME_SIZE, "%" APR_INT64_T_FMT, t);
    }
    return buf;
}

const char *scep_util_json_string(apr_pool_t *p, const char *s)
{
    char *out, *o;

    if (!s) {
        return "null";
    }
    /* quotes, and at most 6 bytes (\u00XX) for each input byte */
    o = out = apr_palloc(p, strlen(s) * 6 + 3);
    *o++ = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        switch (c) {
        case '"': *o++ = '\\'; *o++ = '"'; break;
        case '\\': *o++ = '\\'; *o++ = '\\'; break;
        case '\n': *o++ = '\\'; *o++ = 'n'; break;
        case '\r': *o++ = '\\'; *o++ = 'r'; break;
        case '\t': *o++ = '\\'; *o++ = 't'; break;
        default:
            if (c < 0x20 || c == 0x7f) {
                o += apr_snprintf(o, 7, "\\u%04x", c);
            }
            else {
                *o++ = (char)c;
            }
        }
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

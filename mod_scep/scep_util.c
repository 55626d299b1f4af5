/* Shared helpers of the core: formatting log lines for a host-supplied sink, draining
 * OpenSSL's error queue into those lines, and constant-time comparison of secrets. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <apr_strings.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

#include "scep_util.h"

void scep_log(const scep_log_t *log, int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    if (!log || !log->fn || level > log->max_level) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    log->fn(log->baton, level, line);
}

const char *scep_openssl_errors(apr_pool_t *p)
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

void scep_log_openssl(const scep_log_t *log, int level, const char *what)
{
    apr_pool_t *scratch;

    if (!log || !log->fn || level > log->max_level) {
        ERR_clear_error();
        return;
    }
    if (apr_pool_create(&scratch, NULL) != APR_SUCCESS) {
        ERR_clear_error();
        return;
    }
    scep_log(log, level, "%s: %s", what, scep_openssl_errors(scratch));
    apr_pool_destroy(scratch);
}

int scep_secret_equal(const void *a, apr_size_t a_len, const void *b, apr_size_t b_len)
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

const char *scep_hex(apr_pool_t *p, const unsigned char *data, apr_size_t len)
{
    return hex_with(p, data, len, "0123456789abcdef");
}

const char *scep_hex_upper(apr_pool_t *p, const unsigned char *data, apr_size_t len)
{
    return hex_with(p, data, len, "0123456789ABCDEF");
}

int scep_hex_digit(int c)
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

void scep_cli_say(const char *progname, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: ", progname);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

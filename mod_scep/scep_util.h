/* SPDX-License-Identifier: Apache-2.0 */
/* Small pieces every core unit shares: the log callback that lets each host (httpd,
 * the command-line tools, the unit tests) print core messages its own way, status codes,
 * and comparisons of secrets.  No httpd and no OpenSSL types in here. */
#ifndef SCEP_UTIL_H
#define SCEP_UTIL_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <stdarg.h>

/* Levels follow syslog numbering so that the httpd glue can map them onto APLOG_*. */
#define SCEP_LOG_ERR     3
#define SCEP_LOG_WARNING 4
#define SCEP_LOG_NOTICE  5
#define SCEP_LOG_INFO    6
#define SCEP_LOG_DEBUG   7
#define SCEP_LOG_TRACE1  8

/* A log sink.  `fn` receives a complete, formatted line (no trailing newline) that
 * already carries its SCEPnnnnn tag, with the core's source file and line that wrote it,
 * so that a host which prints locations (httpd at LogLevel debug) names the real one
 * rather than its own sink.  A NULL sink or NULL fn discards messages. */
typedef struct scep_log_t {
    void (*fn)(void *baton, const char *file, int line, int level, const char *text);
    void *baton;
    int max_level;          /* messages above this level are not even formatted */
} scep_log_t;

void scep_log_at(const scep_log_t *log, const char *file, int line, int level,
                 const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
#define scep_log(log, level, ...) scep_log_at((log), __FILE__, __LINE__, (level), __VA_ARGS__)

/* Drains the OpenSSL error queue into one pool string ("" when empty). */
const char *scep_util_openssl_errors(apr_pool_t *p);

/* Constant-time equality of two byte strings; the time depends only on the lengths. */
int scep_util_secret_equal(const void *a, apr_size_t a_len, const void *b, apr_size_t b_len);

/* Hex of a byte string, lower-case (serial numbers: upper-case), in the pool. */
const char *scep_util_hex(apr_pool_t *p, const unsigned char *data, apr_size_t len);
const char *scep_util_hex_upper(apr_pool_t *p, const unsigned char *data, apr_size_t len);

/* For the command-line tools: "PROGNAME: message" and a newline on stderr. */
void scep_util_cli_say(const char *progname, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* A time as RFC 3339 UTC text ("2026-12-03T11:46:10Z") in `buf`, which it returns; the
 * number of seconds itself where the calendar cannot hold it. */
#define SCEP_UTIL_ISO_TIME_SIZE 32
const char *scep_util_iso_time(char buf[SCEP_UTIL_ISO_TIME_SIZE], apr_int64_t t);
/* The same with a buffer that lives as long as the enclosing block: for a time inside
 * one formatted message. */
#define SCEP_UTIL_ISO_TIME(t) scep_util_iso_time((char[SCEP_UTIL_ISO_TIME_SIZE]){ 0 }, (t))

/* `s` as a JSON string literal, quotes included, in the pool ("null" for NULL): the one
 * escaper of every JSON the project writes (audit log, minting endpoint, scepreg), since
 * identities now carry quotes and backslashes.  '"' and '\\' are escaped, control
 * characters and DEL written as \n, \r, \t or \u00XX; other bytes are copied (callers
 * pass UTF-8 their checks accepted). */
const char *scep_util_json_string(apr_pool_t *p, const char *s);

/* The value of one hex digit, or -1. */
int scep_util_hex_digit(int c);

/* One parameter of an operator-facing handler (scep-challenge, scep-status): its name,
 * lower case and matched without regard to letter case, and, once scep_util_params_parse has
 * succeeded, its decoded value (NULL when absent). */
typedef struct scep_param_t {
    const char *name;
    const char *value;
} scep_param_t;

/* Reads a query string ("name=value&name=value") strictly, for handlers whose
 * parameters decide something: scep-challenge binds a challenge to what they say, so a
 * parameter it cannot read must refuse the request, never count as absent.  Values are
 * percent-decoded ('+' stays '+'; none of these values holds a space).
 *
 * APR_EINVAL, with a one-line reason in *why (printable ASCII, safe to log and to send
 * back), for: an empty parameter ("a&&b", a leading or trailing '&'), a parameter
 * without '=' or with an empty value, a name not among `params`, a name given twice (in
 * any letter case), a bad or truncated %-escape, an escaped NUL (%00).  On failure no
 * value is set.  `text` may be NULL or empty: no parameters.  Output in the pool. */
apr_status_t scep_util_params_parse(apr_pool_t *p, const char *text, scep_param_t *params,
                                    apr_size_t count, const char **why);

#endif

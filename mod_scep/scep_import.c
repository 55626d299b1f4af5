/* SPDX-License-Identifier: Apache-2.0 */
/* The values a device registration holds, checked the same way wherever they come from
 * (scepreg's command line, its CSV import), and the parser of one CSV import line.  They
 * live in the core rather than in the tool so that the import parser can be fuzzed
 * without the tool's database, terminal and signal code around it. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1       /* timegm on glibc */
#endif

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <apr_strings.h>

#include "scep_csr.h"
#include "scep_import.h"
#include "scep_name.h"
#include "scep_store.h"

/* ---- values ---------------------------------------------------------------------- */

/* Printable ASCII only, so that a name can be echoed in a message without harm. */
int scep_import_printable(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e) {
            return 0;
        }
    }
    return 1;
}

/* Valid UTF-8 without control characters: what a serial or comment may hold, so that
 * the tab-separated and the JSON listings stay well-formed. */
int scep_import_clean_text(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;

    while (*u) {
        unsigned int c = *u, need, cp, i;

        if (c < 0x20 || c == 0x7f) {
            return 0;
        }
        if (c < 0x80) {
            u++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        }
        else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        }
        else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        }
        else {
            return 0;
        }
        for (i = 1; i <= need; i++) {
            if ((u[i] & 0xc0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (u[i] & 0x3f);
        }
        if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
            || (need == 3 && (cp < 0x10000 || cp > 0x10ffff))) {
            return 0;
        }
        u += need + 1;
    }
    return 1;
}

/* The one rule for profile names, shared by ScepProfileName, the challenge handler, the
 * import and scepreg.  ASCII whatever the locale, so that a name the tool accepts is one
 * httpd accepts. */
int scep_import_profile_name_ok(const char *s)
{
    if (strlen(s) > SCEP_REG_PROFILE_MAX) {
        return 0;
    }
    for (; *s; s++) {
        if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') && !(*s >= '0' && *s <= '9')
            && *s != '-' && *s != '_' && *s != '.') {
            return 0;
        }
    }
    return 1;
}

/* "90", "90s", "60m", "12h", "30d", "2w" (an optional leading '+'); seconds > 0. */
int scep_import_parse_duration(const char *s, apr_int64_t *out)
{
    char *end;
    apr_int64_t v, unit = 1;

    if (*s == '+') {
        s++;
    }
    if (!isdigit((unsigned char)*s)) {
        return 0;
    }
    errno = 0;
    v = apr_strtoi64(s, &end, 10);
    if (errno || v <= 0) {
        return 0;
    }
    switch (*end) {
    case 's': end++; break;
    case 'm': unit = 60; end++; break;
    case 'h': unit = 3600; end++; break;
    case 'd': unit = 86400; end++; break;
    case 'w': unit = 7 * 86400; end++; break;
    default: break;
    }
    /* a century is plenty, and keeps now + v far from overflowing */
    if (*end || v > APR_INT64_C(100) * 366 * 86400 / unit) {
        return 0;
    }
    *out = v * unit;
    return 1;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0, i;

    for (i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) {
            return 0;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

/* An expiry: "never" (0), "YYYY-MM-DD" (the last second of that day, UTC),
 * "YYYY-MM-DDTHH:MM:SSZ", or "+N" with s/m/h/d/w counted from now. */
int scep_import_parse_expiry(const char *s, apr_int64_t now, apr_int64_t *out)
{
    struct tm tm, back;
    int y, mo, d, h = 23, mi = 59, sec = 59;
    time_t t;

    if (!strcmp(s, "never")) {
        *out = 0;
        return 1;
    }
    if (*s == '+') {
        apr_int64_t dur;

        if (!scep_import_parse_duration(s, &dur)) {
            return 0;
        }
        *out = now + dur;
        return 1;
    }
    if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-'
        || !digits(s + 8, 2, &d)) {
        return 0;
    }
    if (s[10] != '\0') {
        if (s[10] != 'T' || !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi)
            || s[16] != ':' || !digits(s + 17, 2, &sec) || s[19] != 'Z' || s[20] != '\0') {
            return 0;
        }
    }
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59) {
        return 0;
    }
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = timegm(&tm);
    /* timegm normalises 31 April into 1 May: refuse dates that do not come back */
    if (t == (time_t)-1 || !gmtime_r(&t, &back) || back.tm_mday != d || back.tm_mon != mo - 1) {
        return 0;
    }
    *out = (apr_int64_t)t;
    return 1;
}

/* ---- import rows ------------------------------------------------------------------ */

#define CSV_FIELDS 8

/* Splits a CSV line in place (RFC 4180 quoting, one line per record).  Returns the
 * number of fields, or -1 with *why. */
static int csv_split(char *line, char **fields, int *quoted, const char **why)
{
    char *r = line;
    int n = 0;

    for (;;) {
        char *w, end;

        if (n == CSV_FIELDS) {
            *why = "more than 8 fields";
            return -1;
        }
        quoted[n] = 0;
        /* tolerate blanks before an opening quote: `a, "b"` */
        for (w = r; *w == ' ' || *w == '\t'; w++) {
        }
        if (*w == '"') {
            r = w + 1;
            w = fields[n] = w;
            quoted[n] = 1;
            for (;;) {
                if (*r == '\0') {
                    *why = "unterminated quoted field (fields cannot span lines)";
                    return -1;
                }
                if (*r == '"') {
                    if (r[1] == '"') {
                        *w++ = '"';
                        r += 2;
                        continue;
                    }
                    r++;
                    break;
                }
                *w++ = *r++;
            }
            while (*r == ' ' || *r == '\t') {
                r++;
            }
            if (*r != ',' && *r != '\0') {
                *why = "text after a closing quote";
                return -1;
            }
        }
        else {
            w = fields[n] = r;
            while (*r && *r != ',') {
                if (*r == '"') {
                    *why = "a quote inside an unquoted field";
                    return -1;
                }
                *w++ = *r++;
            }
        }
        end = *r;
        *w = '\0';
        n++;
        if (end == '\0') {
            return n;
        }
        r++;
    }
}

static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t') {
        s++;
    }
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) {
        *--e = '\0';
    }
    return s;
}

/* Validates one row.  Returns NULL when it is good, else why (never the challenge). */
static const char *parse_row(apr_pool_t *p, char *text, apr_int64_t now,
                             scep_import_row_t *row)
{
    char *fields[CSV_FIELDS], *tok, *state, empty[CSV_FIELDS][1];
    int quoted[CSV_FIELDS], n, i;
    const char *why = NULL;
    char *fqdn, *ips, *serial, *flags, *expires, *profile;

    n = csv_split(text, fields, quoted, &why);
    if (n < 0) {
        return why;
    }
    for (i = n; i < CSV_FIELDS; i++) {
        empty[i][0] = '\0';
        fields[i] = empty[i];
        quoted[i] = 0;
    }
    fqdn = trim(fields[0]);
    ips = fields[1];
    serial = trim(fields[2]);
    flags = fields[4];
    expires = trim(fields[5]);
    profile = trim(fields[6]);

    if (!*fqdn) {
        return "no FQDN";
    }
    if (strchr(fqdn, ':')) {
        /* a kind ("user:…"; a host name holds no ':'): its limits, the reason said */
        if (!(row->fqdn = scep_name_key(p, fqdn, 1, &why))) {
            return apr_psprintf(p, "illegal name '%s': %s", scep_csr_shown(p, fqdn), why);
        }
    }
    else if (strlen(fqdn) > SCEP_FQDN_MAX + 1) {
        return apr_psprintf(p, "FQDN longer than %d characters", SCEP_FQDN_MAX);
    }
    else if (!(row->fqdn = scep_name_fqdn(p, fqdn, 1))) {
        return scep_import_printable(fqdn) ? apr_psprintf(p, "illegal FQDN '%s'", fqdn)
                                           : "illegal FQDN";
    }
    row->ips = apr_array_make(p, 1, sizeof(const char *));
    for (tok = apr_strtok(ips, " \t;", &state); tok; tok = apr_strtok(NULL, " \t;", &state)) {
        const char *ip;

        if (strlen(tok) > SCEP_REG_IP_TEXT_MAX) {
            return "IP address too long";
        }
        if (!(ip = scep_name_ip(p, tok))) {
            return scep_import_printable(tok) ? apr_psprintf(p, "illegal IP address '%s'", tok)
                                  : "illegal IP address";
        }
        APR_ARRAY_PUSH(row->ips, const char *) = ip;
    }
    if (strlen(serial) > SCEP_REG_SERIAL_MAX) {
        return apr_psprintf(p, "serial number longer than %d characters", SCEP_REG_SERIAL_MAX);
    }
    if (!scep_import_clean_text(serial)) {
        return "illegal serial number (control characters or invalid UTF-8)";
    }
    row->serial = *serial ? serial : NULL;
    row->challenge_len = strlen(fields[3]);
    if (row->challenge_len > SCEP_REG_CHALLENGE_MAX) {
        return apr_psprintf(p, "challenge longer than %d characters", SCEP_REG_CHALLENGE_MAX);
    }
    row->challenge = row->challenge_len ? fields[3] : NULL;
    row->flags = 0;
    for (tok = apr_strtok(flags, " \t;", &state); tok; tok = apr_strtok(NULL, " \t;", &state)) {
        if (!strcasecmp(tok, "one-time")) {
            row->flags |= SCEP_DEVICE_ONE_TIME;
        }
        else if (!strcasecmp(tok, "disabled")) {
            row->flags |= SCEP_DEVICE_DISABLED;
        }
        else if (!strcasecmp(tok, "approval")) {
            row->flags |= SCEP_DEVICE_APPROVAL;
        }
        else {
            return scep_import_printable(tok)
                   ? apr_psprintf(p, "unknown flag '%s' (one-time, disabled, approval)", tok)
                   : "unknown flag (one-time, disabled, approval)";
        }
    }
    row->expires = 0;
    if (*expires && !scep_import_parse_expiry(expires, now, &row->expires)) {
        return scep_import_printable(expires) ? apr_psprintf(p, "bad expiry '%s'", expires)
                                              : "bad expiry";
    }
    if (strlen(profile) > SCEP_REG_PROFILE_MAX) {
        return apr_psprintf(p, "profile name longer than %d characters", SCEP_REG_PROFILE_MAX);
    }
    if (!scep_import_profile_name_ok(profile)) {
        return "illegal profile name";
    }
    row->profile = *profile ? profile : NULL;
    if (strlen(fields[7]) > SCEP_REG_COMMENT_MAX) {
        return apr_psprintf(p, "comment longer than %d characters", SCEP_REG_COMMENT_MAX);
    }
    if (!scep_import_clean_text(fields[7])) {
        return "illegal comment (control characters or invalid UTF-8)";
    }
    row->comment = *fields[7] ? fields[7] : NULL;
    return NULL;
}

int scep_import_line(apr_pool_t *p, char *line, int *data_lines, apr_int64_t now,
                     scep_import_row_t *row, const char **why)
{
    char *s;

    for (s = line; *s == ' ' || *s == '\t'; s++) {
    }
    if (!*s || *s == '#') {
        return SCEP_IMPORT_SKIP;
    }
    if ((*data_lines)++ == 0 && !strncasecmp(s, "fqdn,", 5)) {
        return SCEP_IMPORT_SKIP;    /* a header line */
    }
    memset(row, 0, sizeof(*row));
    *why = parse_row(p, line, now, row);
    return *why ? SCEP_IMPORT_REJECT : SCEP_IMPORT_ROW;
}

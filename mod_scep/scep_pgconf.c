/* SPDX-License-Identifier: Apache-2.0 */
/* The tools' PostgreSQL connection strings (see scep_pgconf.h). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_strings.h>

#include "scep_pgconf.h"

static int secret_key(const char *key, apr_size_t len)
{
    return (len == 8 && strncasecmp(key, "password", 8) == 0)
           || (len == 11 && strncasecmp(key, "sslpassword", 11) == 0);
}

/* A URI query's key, percent-decoded as libpq decodes it ("%70assword" is password). */
static int secret_uri_key(const char *key, apr_size_t len)
{
    char plain[16];
    apr_size_t i, n = 0;

    for (i = 0; i < len && n < sizeof(plain); i++, n++) {
        if (key[i] == '%' && i + 2 < len && isxdigit((unsigned char)key[i + 1])
            && isxdigit((unsigned char)key[i + 2])) {
            char hex[3] = { key[i + 1], key[i + 2], '\0' };

            plain[n] = (char)strtol(hex, NULL, 16);
            i += 2;
        }
        else {
            plain[n] = key[i];
        }
    }
    return i == len && secret_key(plain, n);
}

const char *scep_pgconf_uri_shown(apr_pool_t *p, const char *uri)
{
    const char *auth = strstr(uri, "://"), *end, *at = NULL, *c, *q;
    char *out, *o;

    if (!auth) {
        return apr_pstrdup(p, uri);
    }
    auth += 3;
    end = auth + strcspn(auth, "/");
    out = o = apr_palloc(p, strlen(uri) * 2 + 8);
    for (c = auth; c < end; c++) {
        at = *c == '@' ? c : at;
    }
    c = at ? memchr(auth, ':', (apr_size_t)(at - auth)) : NULL;
    if (c) {
        memcpy(o, uri, (apr_size_t)(c - uri));
        o += c - uri;
        memcpy(o, ":***", 4);
        o += 4;
        c = at;
    }
    else {
        c = uri;
    }
    q = strchr(c, '?');
    if (!q) {
        memcpy(o, c, strlen(c) + 1);
        return out;
    }
    memcpy(o, c, (apr_size_t)(q - c));
    o += q - c;
    while (*q) {
        apr_size_t klen, vlen;

        *o++ = *q++;                        /* '?' or '&' */
        klen = strcspn(q, "=&");
        vlen = q[klen] == '=' ? strcspn(q + klen + 1, "&") + 1 : 0;
        memcpy(o, q, klen);
        o += klen;
        if (vlen && secret_uri_key(q, klen)) {
            memcpy(o, "=***", 4);
            o += 4;
        }
        else {
            memcpy(o, q + klen, vlen);
            o += vlen;
        }
        q += klen + vlen;
    }
    *o = '\0';
    return out;
}

static int uri_has_secret(const char *s)
{
    const char *auth = strstr(s, "://") + 3;
    const char *end = auth + strcspn(auth, "/");
    const char *at = NULL, *q, *c;

    /* user:secret@host: libpq ends the user part at the first '@' before a '/'; the
     * last one is taken here, which finds a password wherever libpq could */
    for (c = auth; c < end; c++) {
        at = *c == '@' ? c : at;
    }
    if (at && memchr(auth, ':', (apr_size_t)(at - auth))) {
        return 1;
    }
    for (q = strchr(s, '?'); q && *q; q += strcspn(q, "&")) {
        q++;
        if (secret_uri_key(q, strcspn(q, "=&"))) {
            return 1;
        }
    }
    return 0;
}

/* Walks a key=value connection string: 0 when it is not one (a word without '=', or a
 * key that is no keyword's spelling), else 1 with *secret set when a password keyword is
 * among its keys. */
static int keyvalue_walk(const char *s, int *secret)
{
    *secret = 0;
    while (*s) {
        const char *key;
        apr_size_t klen, i;

        while (isspace((unsigned char)*s)) {
            s++;
        }
        if (!*s) {
            break;
        }
        key = s;
        while (*s && *s != '=' && !isspace((unsigned char)*s)) {
            s++;
        }
        klen = (apr_size_t)(s - key);
        for (i = 0; i < klen; i++) {
            if (!isalpha((unsigned char)key[i]) && key[i] != '_') {
                return 0;
            }
        }
        while (isspace((unsigned char)*s)) {
            s++;
        }
        if (*s != '=' || klen == 0) {
            return 0;
        }
        *secret |= secret_key(key, klen);
        s++;
        while (isspace((unsigned char)*s)) {
            s++;
        }
        if (*s == '\'') {
            for (s++; *s && *s != '\''; s += (*s == '\\' && s[1]) ? 2 : 1) {
            }
            s += *s == '\'';
        }
        else {
            while (*s && !isspace((unsigned char)*s)) {
                s += (*s == '\\' && s[1]) ? 2 : 1;
            }
        }
    }
    return 1;
}

static int is_uri(const char *s)
{
    return strncmp(s, "postgres://", 11) == 0 || strncmp(s, "postgresql://", 13) == 0;
}

int scep_pgconf_has_secret(const char *s)
{
    int secret;

    if (is_uri(s)) {
        return uri_has_secret(s);
    }
    /* a string libpq refuses counts as holding one: a secret may hide in it */
    return !keyvalue_walk(s, &secret) || secret;
}

static apr_status_t read_bounded(int fd, char *buf, apr_size_t cap, apr_size_t *len)
{
    *len = 0;
    while (*len < cap) {
        ssize_t n = read(fd, buf + *len, cap - *len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return errno;
        }
        if (n == 0) {
            break;
        }
        *len += (apr_size_t)n;
    }
    buf[*len] = '\0';
    return APR_SUCCESS;
}

/* The lines that are not comments, joined with blanks; control characters become
 * blanks, as libpq reads them. */
static char *join_lines(apr_pool_t *p, const char *text, apr_size_t len)
{
    char *out = apr_palloc(p, len + 2), *o = out;
    const char *line = text;

    while (*line) {
        apr_size_t n = strcspn(line, "\n"), skip = strspn(line, " \t\r");

        if (skip < n && line[skip] != '#') {
            memcpy(o, line, n);
            o += n;
            *o++ = ' ';
        }
        line += n + (line[n] == '\n');
    }
    while (o > out && isspace((unsigned char)o[-1])) {
        o--;
    }
    *o = '\0';
    for (o = out; *o; o++) {
        if (iscntrl((unsigned char)*o)) {
            *o = ' ';
        }
    }
    return out;
}

apr_status_t scep_pgconf_read_file(apr_pool_t *p, const char *path, const char **conninfo,
                                   const char **why)
{
    struct stat st = { 0 };
    char *buf = apr_palloc(p, SCEP_PGCONF_FILE_MAX + 1), *text;
    apr_size_t len = 0;
    apr_status_t rv = APR_SUCCESS;
    int secret, fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);

    *conninfo = NULL;
    *why = NULL;
    /* the checks look at the file opened, so it cannot be swapped between them */
    if (fd < 0 || fstat(fd, &st) != 0) {
        rv = errno;
        *why = apr_psprintf(p, "cannot read '%s': %s", path, strerror(errno));
    }
    else if (!S_ISREG(st.st_mode) || st.st_size > SCEP_PGCONF_FILE_MAX) {
        rv = APR_EINVAL;
        *why = apr_psprintf(p, "'%s' is not a regular file of at most %d bytes", path,
                            SCEP_PGCONF_FILE_MAX);
    }
    else if ((rv = read_bounded(fd, buf, SCEP_PGCONF_FILE_MAX, &len)) != APR_SUCCESS) {
        *why = apr_psprintf(p, "cannot read '%s': %s", path, strerror(rv));
    }
    if (fd >= 0) {
        close(fd);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (strlen(buf) != len) {
        *why = apr_psprintf(p, "'%s' holds a NUL byte", path);
        return APR_EINVAL;
    }
    if (st.st_uid != geteuid() && st.st_uid != 0) {
        *why = apr_psprintf(p, "'%s' belongs to uid %ld: it must be yours or root's", path,
                            (long)st.st_uid);
        return APR_EINVAL;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        *why = apr_psprintf(p, "'%s' may be changed by others (mode %04o), who would choose "
                            "the database: chmod go-w it", path,
                            (unsigned)(st.st_mode & 07777));
        return APR_EINVAL;
    }
    text = join_lines(p, buf, len);
    if (!*text) {
        *why = apr_psprintf(p, "'%s' holds no connection string", path);
        return APR_EINVAL;
    }
    /* anything else would be quoted back by libpq's complaint, and the tools may run
     * under sudo: a private key read by mistake must never reach the terminal */
    if (!is_uri(text) && !keyvalue_walk(text, &secret)) {
        *why = apr_psprintf(p, "'%s' is not a libpq connection string (keyword=value "
                            "pairs or a postgresql:// URI)", path);
        return APR_EINVAL;
    }
    if (scep_pgconf_has_secret(text) && (st.st_mode & (S_IRWXG | S_IRWXO))) {
        *why = apr_psprintf(p, "'%s' holds a password but others may read it (mode %04o): "
                            "chmod 600 it", path, (unsigned)(st.st_mode & 07777));
        return APR_EINVAL;
    }
    *conninfo = text;
    return APR_SUCCESS;
}

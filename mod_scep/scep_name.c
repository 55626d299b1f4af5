/* SPDX-License-Identifier: Apache-2.0 */
/* Canonical host names and addresses, and wildcard matching (scep_name.h). */
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <apr_strings.h>

#include "scep_name.h"

static int label_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Checks a lower-cased name of len bytes made of labels; no wildcard. */
static int labels_ok(const char *s, apr_size_t len)
{
    apr_size_t i, label = 0;

    if (len == 0) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (s[i] == '.') {
            if (label == 0) {
                return 0;
            }
            label = 0;
        }
        else if (!label_char(s[i]) || ++label > 63) {
            return 0;
        }
    }
    return label > 0;
}

const char *scep_name_fqdn(apr_pool_t *p, const char *name, int allow_wildcard)
{
    apr_size_t len, i;
    char *s;

    if (!name) {
        return NULL;
    }
    len = strlen(name);
    if (len > 0 && name[len - 1] == '.') {
        len--;
    }
    if (len == 0 || len > SCEP_FQDN_MAX) {
        return NULL;
    }
    s = apr_pstrmemdup(p, name, len);
    for (i = 0; i < len; i++) {
        if (s[i] >= 'A' && s[i] <= 'Z') {
            s[i] = (char)(s[i] - 'A' + 'a');
        }
    }
    if (s[0] == '*') {
        if (!allow_wildcard) {
            return NULL;
        }
        if (len == 1) {
            return s;
        }
        return (s[1] == '.' && labels_ok(s + 2, len - 2)) ? s : NULL;
    }
    return labels_ok(s, len) ? s : NULL;
}

const char *scep_name_ip(apr_pool_t *p, const char *text)
{
    unsigned char addr[sizeof(struct in6_addr)];
    char out[INET6_ADDRSTRLEN];
    int family;

    if (!text) {
        return NULL;
    }
    if (inet_pton(AF_INET, text, addr) == 1) {
        family = AF_INET;
    }
    else if (inet_pton(AF_INET6, text, addr) == 1) {
        family = AF_INET6;
    }
    else {
        return NULL;
    }
    if (!inet_ntop(family, addr, out, sizeof(out))) {
        return NULL;
    }
    return apr_pstrdup(p, out);
}

int scep_name_matches(const char *key, const char *fqdn)
{
    apr_size_t klen, flen;

    if (!key || !fqdn || !*fqdn) {
        return 0;
    }
    if (strcmp(key, fqdn) == 0) {
        return 1;
    }
    if (key[0] != '*') {
        return 0;
    }
    if (key[1] == '\0') {
        return 1;
    }
    if (key[1] != '.') {
        return 0;
    }
    /* "*.b.c" needs at least one character and the dot before ".b.c". */
    klen = strlen(key + 1);
    flen = strlen(fqdn);
    return flen > klen && fqdn[flen - klen - 1] != '.'
           && strcmp(fqdn + flen - klen, key + 1) == 0;
}


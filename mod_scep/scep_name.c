/* SPDX-License-Identifier: Apache-2.0 */
/* Canonical host names, addresses and identity keys, and wildcard matching
 * (scep_name.h). */
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

static const struct {
    scep_identity_kind_e kind;
    const char *prefix;
    const char *name;
} kinds[] = {
    { SCEP_IDENTITY_DEVICE_NAME, "name:", "device-name" },
    { SCEP_IDENTITY_DEVICE_ID, "id:", "device-id" },
    { SCEP_IDENTITY_USER, "user:", "user" },
};

static const char *prefix_of(scep_identity_kind_e kind)
{
    apr_size_t i;

    for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (kinds[i].kind == kind) {
            return kinds[i].prefix;
        }
    }
    return "";
}

const char *scep_name_kind_name(scep_identity_kind_e kind)
{
    apr_size_t i;

    for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (kinds[i].kind == kind) {
            return kinds[i].name;
        }
    }
    return "host";
}

scep_identity_kind_e scep_name_key_kind(const char *key)
{
    apr_size_t i;

    for (i = 0; key && i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strncmp(key, kinds[i].prefix, strlen(kinds[i].prefix)) == 0) {
            return kinds[i].kind;
        }
    }
    return SCEP_IDENTITY_HOST;
}

const char *scep_name_key_value(const char *key)
{
    scep_identity_kind_e kind = scep_name_key_kind(key);

    return kind == SCEP_IDENTITY_HOST ? key : key + strlen(prefix_of(kind));
}

int scep_name_is_wildcard(const char *key)
{
    const char *value = key ? scep_name_key_value(key) : "";

    switch (scep_name_key_kind(key)) {
    case SCEP_IDENTITY_HOST:
        return value[0] == '*';
    case SCEP_IDENTITY_USER:
        return value[0] == '*' && (value[1] == '\0' || value[1] == '@');
    default:
        return strcmp(value, "*") == 0;
    }
}

int scep_name_matches(const char *key, const char *fqdn)
{
    apr_size_t klen, flen;
    scep_identity_kind_e kind;
    const char *value, *pattern, *at;

    if (!key || !fqdn || !*fqdn) {
        return 0;
    }
    if (strcmp(key, fqdn) == 0) {
        return 1;
    }
    kind = scep_name_key_kind(key);
    if (kind != scep_name_key_kind(fqdn)) {
        return 0;
    }
    if (kind != SCEP_IDENTITY_HOST) {
        pattern = scep_name_key_value(key);
        value = scep_name_key_value(fqdn);
        if (strcmp(pattern, "*") == 0) {
            return *value != '\0';
        }
        /* "user:*@example.org": a local part of its own, then exactly that domain */
        at = strrchr(value, '@');
        return kind == SCEP_IDENTITY_USER && pattern[0] == '*' && pattern[1] == '@'
               && at && at > value && strcmp(at, pattern + 1) == 0;
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

/* The length of the UTF-8 sequence at s (at most `left` bytes), or 0 when it is not a
 * well-formed one: overlong forms, surrogates and code points past U+10FFFF are bad. */
static apr_size_t utf8_length(const unsigned char *s, apr_size_t left)
{
    apr_size_t n, i;
    unsigned long cp;

    if (s[0] < 0x80) {
        return 1;
    }
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        n = 2;
        cp = s[0] & 0x1F;
    }
    else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        n = 3;
        cp = s[0] & 0x0F;
    }
    else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        n = 4;
        cp = s[0] & 0x07;
    }
    else {
        return 0;
    }
    if (n > left) {
        return 0;
    }
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))
        || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return n;
}

/* What makes the code point at s (a well-formed sequence of n bytes) unfit for a name,
 * or NULL.  Characters that show nothing or reorder the text after them let one name
 * pass for another in a listing, a log line or a certificate ("John's\u200B iPhone",
 * U+202E turning "enohPi" around); noncharacters are not text at all. */
static const char *invisible_kind(const unsigned char *s, apr_size_t n, unsigned long *cp)
{
    apr_size_t i;
    unsigned long c = n == 1 ? s[0] : (unsigned long)(s[0] & (0x7F >> n));

    for (i = 1; i < n; i++) {
        c = (c << 6) | (s[i] & 0x3F);
    }
    *cp = c;
    if (c == 0x061C || c == 0x200E || c == 0x200F || (c >= 0x202A && c <= 0x202E)
        || (c >= 0x2066 && c <= 0x2069)) {
        return "bidirectional control";
    }
    if (c == 0x00AD || (c >= 0x200B && c <= 0x200D) || (c >= 0x2060 && c <= 0x206F)
        || c == 0xFEFF) {
        return "invisible character";
    }
    if (c == 0x2028 || c == 0x2029) {
        return "line or paragraph separator";
    }
    if ((c >= 0xFDD0 && c <= 0xFDEF) || (c & 0xFFFE) == 0xFFFE) {
        return "noncharacter";
    }
    return NULL;
}

/* Why `value` cannot be an identity at all, or NULL: what a log, a listing or a
 * certificate could not show as it is. */
static const char *text_problem(apr_pool_t *p, const char *value)
{
    const unsigned char *s = (const unsigned char *)value;
    apr_size_t len = strlen(value), i, n;
    const char *kind;
    unsigned long cp;

    if (len == 0) {
        return "it is empty";
    }
    if (len > SCEP_NAME_VALUE_MAX) {
        return apr_psprintf(p, "it is %lu bytes long, more than %d", (unsigned long)len,
                            SCEP_NAME_VALUE_MAX);
    }
    for (i = 0; i < len; i += n) {
        if (s[i] < 0x20 || s[i] == 0x7F) {
            return apr_psprintf(p, "it holds the control character 0x%02X at byte %lu",
                                s[i], (unsigned long)i);
        }
        if ((n = utf8_length(s + i, len - i)) == 0) {
            return apr_psprintf(p, "it is not valid UTF-8 at byte %lu", (unsigned long)i);
        }
        if (n == 2 && s[i] == 0xC2 && s[i + 1] < 0xA0) {
            return apr_psprintf(p, "it holds the control character U+%04X at byte %lu",
                                s[i + 1], (unsigned long)i);
        }
        if (n > 1 && (kind = invisible_kind(s + i, n, &cp)) != NULL) {
            return apr_psprintf(p, "it holds the %s U+%04lX at byte %lu", kind, cp,
                                (unsigned long)i);
        }
    }
    return NULL;
}

static int hex_digit(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A MAC address in lower case with colons, when `v` spells one: six pairs joined by
 * ':' or '-', three quads joined by '.', or twelve digits in a row; else NULL. */
static const char *mac_of(apr_pool_t *p, const char *v)
{
    apr_size_t len = strlen(v), i, n = 0, group;
    char digits[12], sep;
    char *out;

    if (len == 17) {
        group = 2;
        sep = v[2];
        if (sep != ':' && sep != '-') {
            return NULL;
        }
    }
    else if (len == 14) {
        group = 4;
        sep = '.';
    }
    else if (len == 12) {
        group = 12;
        sep = '\0';
    }
    else {
        return NULL;
    }
    for (i = 0; i < len; i++) {
        if ((i + 1) % (group + 1) == 0) {
            if (v[i] != sep) {
                return NULL;
            }
        }
        else if (!hex_digit(v[i])) {
            return NULL;
        }
        else {
            digits[n++] = (char)((v[i] >= 'A' && v[i] <= 'F') ? v[i] - 'A' + 'a' : v[i]);
        }
    }
    if (n != 12) {
        return NULL;
    }
    out = apr_palloc(p, 18);
    for (i = 0; i < 6; i++) {
        out[3 * i] = digits[2 * i];
        out[3 * i + 1] = digits[2 * i + 1];
        out[3 * i + 2] = i < 5 ? ':' : '\0';
    }
    return out;
}

static const char *user_key(apr_pool_t *p, const char *value, int allow_wildcard,
                            const char **why)
{
    const char *at = strchr(value, '@');
    const char *domain;

    if (allow_wildcard && strcmp(value, "*") == 0) {
        return value;
    }
    if (!at || at == value || strchr(at + 1, '@')) {
        *why = "a user is local-part@domain, with one '@'";
        return NULL;
    }
    if (!allow_wildcard && at == value + 1 && value[0] == '*') {
        *why = "'*' is no user's local part";
        return NULL;
    }
    if (!(domain = scep_name_fqdn(p, at + 1, 0))) {
        *why = "the domain after '@' is no host name";
        return NULL;
    }
    return apr_pstrcat(p, apr_pstrmemdup(p, value, (apr_size_t)(at - value)), "@", domain,
                       NULL);
}

const char *scep_name_identity_key(apr_pool_t *p, scep_identity_kind_e kind,
                                   const char *value, int allow_wildcard, const char **why)
{
    const char *problem = NULL, *key = NULL;

    if (!value) {
        problem = "it cannot be read";
    }
    else if (kind == SCEP_IDENTITY_HOST) {
        key = scep_name_fqdn(p, value, allow_wildcard);
        problem = key ? NULL : text_problem(p, value);
        problem = key || problem ? problem : "it is no host name";
    }
    else if ((problem = text_problem(p, value)) != NULL) {
        key = NULL;
    }
    else if (strcmp(value, "*") == 0 && !allow_wildcard) {
        problem = "'*' names no single identity";
    }
    else if (kind == SCEP_IDENTITY_USER) {
        key = user_key(p, value, allow_wildcard, &problem);
    }
    else if (kind == SCEP_IDENTITY_DEVICE_ID) {
        key = mac_of(p, value);
        key = key ? key : value;
    }
    else {
        key = value;
    }
    if (!key) {
        if (why) {
            *why = problem;
        }
        return NULL;
    }
    return kind == SCEP_IDENTITY_HOST ? key : apr_pstrcat(p, prefix_of(kind), key, NULL);
}

const char *scep_name_key(apr_pool_t *p, const char *text, int allow_wildcard,
                          const char **why)
{
    scep_identity_kind_e kind;

    if (!text) {
        if (why) {
            *why = "no name";
        }
        return NULL;
    }
    if (strncmp(text, "host:", 5) == 0) {
        return scep_name_identity_key(p, SCEP_IDENTITY_HOST, text + 5, allow_wildcard, why);
    }
    kind = scep_name_key_kind(text);
    if (kind == SCEP_IDENTITY_HOST && strchr(text, ':')) {
        if (why) {
            *why = "the kind before ':' is none of host, name, id, user";
        }
        return NULL;
    }
    return scep_name_identity_key(p, kind, scep_name_key_value(text), allow_wildcard, why);
}

int scep_name_where_fits(scep_identity_kind_e kind, apr_int64_t where)
{
    switch (kind) {
    case SCEP_IDENTITY_HOST:
        return where == SCEP_WHERE_HOST_RULES;
    case SCEP_IDENTITY_DEVICE_NAME:
        return where == SCEP_WHERE_CN || where == SCEP_WHERE_UNSTRUCTURED_NAME;
    case SCEP_IDENTITY_DEVICE_ID:
        return where == SCEP_WHERE_SERIAL_NUMBER || where == SCEP_WHERE_CN
               || where == SCEP_WHERE_UNSTRUCTURED_NAME;
    case SCEP_IDENTITY_USER:
        return where == SCEP_WHERE_RFC822_NAME || where == SCEP_WHERE_UPN
               || where == SCEP_WHERE_CN;
    }
    return 0;
}

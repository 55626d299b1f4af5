/* SPDX-License-Identifier: Apache-2.0 */
/* The operator's webhooks (see scep_webhook.h): their secret, the documents, the
 * signature, the POST and the strict reading of a validator's answer.
 *
 * The answer is read by a parser of our own rather than a JSON library: the shape is
 * small and fixed, a library would be a new dependency of the module for one object,
 * and what the parser accepts is exactly what docs/webhooks.md promises (fuzzed by
 * tests/fuzz/fuzz_webhook.c). */
#include <stdio.h>
#include <string.h>

#include <apr_strings.h>
#include <openssl/evp.h>

#include "scep_ca.h"
#include "scep_webhook.h"

void scep_webhook_defaults(scep_hook_conf_t *conf)
{
    memset(conf, 0, sizeof(*conf));
    conf->timeout_ms = SCEP_HOOK_TIMEOUT_MS;
    conf->queue = SCEP_HOOK_QUEUE_DEFAULT;
    conf->retries = SCEP_HOOK_RETRIES_DEFAULT;
}

apr_status_t scep_webhook_load_secret(apr_pool_t *p, scep_hook_conf_t *conf,
                                      const char **errmsg)
{
    unsigned char *buf = apr_palloc(p, SCEP_HOOK_SECRET_MAX + 3);
    apr_size_t len;
    FILE *f;

    if (scep_ca_check_file(p, "the webhook secret", conf->secret_file, 1, errmsg)
        != APR_SUCCESS) {
        return APR_EINVAL;
    }
    if (!(f = fopen(conf->secret_file, "rb"))) {
        *errmsg = apr_psprintf(p, "the webhook secret file '%s' cannot be read",
                               conf->secret_file);
        return APR_EINVAL;
    }
    len = fread(buf, 1, SCEP_HOOK_SECRET_MAX + 3, f);
    fclose(f);
    /* an editor's final newline is not part of the secret */
    if (len > 0 && buf[len - 1] == '\n') {
        len--;
        if (len > 0 && buf[len - 1] == '\r') {
            len--;
        }
    }
    if (len < SCEP_HOOK_SECRET_MIN || len > SCEP_HOOK_SECRET_MAX) {
        *errmsg = apr_psprintf(p, "the webhook secret file '%s' holds %s bytes; it must "
                               "hold %d to %d", conf->secret_file,
                               len > SCEP_HOOK_SECRET_MAX ? "too many"
                               : apr_psprintf(p, "%lu", (unsigned long)len),
                               SCEP_HOOK_SECRET_MIN, SCEP_HOOK_SECRET_MAX);
        return APR_EINVAL;
    }
    conf->secret = buf;
    conf->secret_len = len;
    return APR_SUCCESS;
}

/* ---- UTF-8 ------------------------------------------------------------------------- */

/* The length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong forms, no
 * surrogates, nothing beyond U+10FFFF) with its code point in *cp; 0 when ill-formed. */
static apr_size_t utf8_next(const unsigned char *s, apr_size_t len, unsigned long *cp)
{
    apr_size_t n, i;
    unsigned long c;

    if (len == 0) {
        return 0;
    }
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        n = 2;
        c = s[0] & 0x1Fu;
    }
    else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        n = 3;
        c = s[0] & 0x0Fu;
    }
    else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        n = 4;
        c = s[0] & 0x07u;
    }
    else {
        return 0;
    }
    if (len < n) {
        return 0;
    }
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        c = (c << 6) | (s[i] & 0x3Fu);
    }
    if ((n == 3 && c < 0x800) || (n == 4 && (c < 0x10000 || c > 0x10FFFF))
        || (c >= 0xD800 && c <= 0xDFFF)) {
        return 0;
    }
    *cp = c;
    return n;
}

/* C0, DEL and C1: never in a name, a reason or a log line. */
static int is_control(unsigned long cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

/* A value the validator supplies: well-formed UTF-8, no control character (NUL
 * included), not empty, bounded. */
static int clean_text(const char *s, apr_size_t len)
{
    apr_size_t i = 0, n;
    unsigned long cp;

    if (len == 0 || len > SCEP_HOOK_VALUE_MAX) {
        return 0;
    }
    while (i < len) {
        if ((n = utf8_next((const unsigned char *)s + i, len - i, &cp)) == 0
            || is_control(cp)) {
            return 0;
        }
        i += n;
    }
    return 1;
}

/* ---- the documents ------------------------------------------------------------------ */

/* A JSON string of `len` bytes of text: control characters escaped, and bytes that are
 * not UTF-8 replaced by U+FFFD, so that the document is valid whatever a request held.
 * "null" for NULL. */
static const char *json_text(apr_pool_t *p, const char *s, apr_size_t len)
{
    char *out, *o;
    apr_size_t i = 0, n;
    unsigned long cp;

    if (!s) {
        return "null";
    }
    o = out = apr_palloc(p, len * 6 + 3);       /* \u00XX is the longest for one byte */
    *o++ = '"';
    while (i < len) {
        n = utf8_next((const unsigned char *)s + i, len - i, &cp);
        if (n == 0) {
            memcpy(o, "\\ufffd", 6);
            o += 6;
            i++;
            continue;
        }
        if (cp == '"' || cp == '\\') {
            *o++ = '\\';
            *o++ = (char)cp;
        }
        else if (cp < 0x20 || cp == 0x7F) {
            o += apr_snprintf(o, 7, "\\u%04lx", cp);
        }
        else {
            memcpy(o, s + i, n);
            o += n;
        }
        i += n;
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

static const char *json_str(apr_pool_t *p, const char *s)
{
    return json_text(p, s, s ? strlen(s) : 0);
}

static int is_utf8(const char *s, apr_size_t len)
{
    apr_size_t i = 0, n;
    unsigned long cp;

    while (i < len) {
        if ((n = utf8_next((const unsigned char *)s + i, len - i, &cp)) == 0) {
            return 0;
        }
        i += n;
    }
    return 1;
}

static const char *base64(apr_pool_t *p, const unsigned char *data, apr_size_t len)
{
    unsigned char *out = apr_palloc(p, 4 * ((len + 2) / 3) + 1);

    EVP_EncodeBlock(out, data, (int)len);
    return (const char *)out;
}

static const char *const kind_names[] = {
    [SCEP_IDENTITY_HOST] = "host",
    [SCEP_IDENTITY_DEVICE_NAME] = "device-name",
    [SCEP_IDENTITY_DEVICE_ID] = "device-id",
    [SCEP_IDENTITY_USER] = "user",
};

static const char *sans_json(apr_pool_t *p, const scep_csr_t *csr)
{
    apr_array_header_t *parts = apr_array_make(p, 8, sizeof(const char *));
    int i;

    for (i = 0; csr->sans && i < csr->sans->nelts; i++) {
        const scep_csr_san_t *san = &APR_ARRAY_IDX(csr->sans, i, scep_csr_san_t);

        APR_ARRAY_PUSH(parts, const char *) = apr_pstrcat(
            p, i ? "," : "", "{\"type\":",
            json_str(p, san->upn ? "UPN" : scep_csr_san_type_name(san->type)),
            ",\"value\":", json_str(p, san->value), "}", NULL);
    }
    return apr_pstrcat(p, "[", apr_array_pstrcat(p, parts, 0), "]", NULL);
}

static const char *rdns_json(apr_pool_t *p, const scep_csr_t *csr)
{
    apr_array_header_t *parts = apr_array_make(p, 8, sizeof(const char *));
    int i;

    for (i = 0; csr->subject_rdns && i < csr->subject_rdns->nelts; i++) {
        const scep_csr_rdn_t *rdn = &APR_ARRAY_IDX(csr->subject_rdns, i, scep_csr_rdn_t);

        APR_ARRAY_PUSH(parts, const char *) = apr_pstrcat(
            p, i ? "," : "", "{\"type\":", json_str(p, rdn->type.name), ",\"value\":",
            json_str(p, rdn->value), "}", NULL);
    }
    return apr_pstrcat(p, "[", apr_array_pstrcat(p, parts, 0), "]", NULL);
}

static const char *identity_json(apr_pool_t *p, const scep_identity_t *id)
{
    if (!id) {
        return "null";
    }
    return apr_pstrcat(p, "{\"kind\":",
                       json_str(p, (unsigned)id->kind < sizeof(kind_names) / sizeof(*kind_names)
                                   ? kind_names[id->kind] : "?"),
                       ",\"key\":", json_str(p, id->fqdn), ",\"name\":",
                       json_str(p, id->name ? id->name : id->fqdn), "}", NULL);
}

const char *scep_webhook_request_document(apr_pool_t *p, const scep_hook_request_t *req,
                                          apr_size_t *len)
{
    const scep_csr_t *csr = req->csr;
    const char *challenge = "";
    const char *doc;

    if (req->send_challenge && csr->challenge) {
        /* the challenge reaches the validator byte for byte: as text when it is UTF-8,
         * else in base64 */
        challenge = is_utf8(csr->challenge, csr->challenge_len)
                    ? apr_pstrcat(p, ",\"challenge\":",
                                  json_text(p, csr->challenge, csr->challenge_len), NULL)
                    : apr_pstrcat(p, ",\"challengeBase64\":\"",
                                  base64(p, (const unsigned char *)csr->challenge,
                                         csr->challenge_len), "\"", NULL);
    }
    doc = apr_pstrcat(p, "{\"version\":1,\"transactionID\":", json_str(p, req->transaction_id),
                      ",\"operation\":", json_str(p, req->operation),
                      ",\"endpoint\":", json_str(p, req->endpoint),
                      ",\"subject\":", json_str(p, csr->subject),
                      ",\"subjectAttributes\":", rdns_json(p, csr),
                      ",\"subjectAltNames\":", sans_json(p, csr),
                      ",\"identity\":", identity_json(p, req->identity),
                      ",\"registrationFound\":", req->registration ? "true" : "false",
                      ",\"registration\":", json_str(p, req->registration),
                      ",\"clientAddress\":", json_str(p, req->client_ip),
                      ",\"csr\":\"", base64(p, csr->der, csr->der_len), "\"",
                      challenge, "}", NULL);
    *len = strlen(doc);
    return doc;
}

static const char *const event_names[] = {
    [SCEP_HOOK_EVENT_ISSUED] = "issued",
    [SCEP_HOOK_EVENT_REFUSED] = "refused",
    [SCEP_HOOK_EVENT_REVOKED] = "revoked",
};

const char *scep_webhook_event_document(apr_pool_t *p, const scep_hook_event_t *ev,
                                        apr_size_t *len)
{
    const char *doc = apr_pstrcat(
        p, "{\"version\":1,\"event\":",
        json_str(p, (unsigned)ev->event < sizeof(event_names) / sizeof(*event_names)
                    ? event_names[ev->event] : "?"),
        ",\"time\":", json_str(p, SCEP_UTIL_ISO_TIME(ev->time)),
        ",\"transactionID\":", json_str(p, ev->transaction_id),
        ",\"endpoint\":", json_str(p, ev->endpoint),
        ",\"subject\":", json_str(p, ev->subject),
        ",\"serial\":", json_str(p, ev->serial),
        ",\"identity\":", json_str(p, ev->identity),
        ",\"clientAddress\":", json_str(p, ev->client_ip),
        ",\"reason\":", json_str(p, ev->reason), "}", NULL);

    *len = strlen(doc);
    return doc;
}

const char *scep_webhook_signature(apr_pool_t *p, const unsigned char *secret,
                                   apr_size_t secret_len, apr_int64_t timestamp,
                                   const char *body, apr_size_t body_len)
{
    const char *stamp = apr_psprintf(p, "%" APR_INT64_T_FMT ".", timestamp);
    apr_size_t stamp_len = strlen(stamp);
    unsigned char *signed_text = apr_palloc(p, stamp_len + body_len);
    unsigned char mac[32];
    size_t mac_len = 0;

    memcpy(signed_text, stamp, stamp_len);
    memcpy(signed_text + stamp_len, body, body_len);
    if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, secret_len, signed_text,
                   stamp_len + body_len, mac, sizeof(mac), &mac_len)
        || mac_len != sizeof(mac)) {
        return NULL;
    }
    return apr_pstrcat(p, "sha256=", scep_util_hex(p, mac, mac_len), NULL);
}

/* ---- reading the answer ----------------------------------------------------------- */

#define JSON_DEPTH_MAX 16

typedef struct json_t {
    apr_pool_t *p;
    const char *s, *end;
    const char *err;                   /* the first problem; parsing stops there */
} json_t;

static int bad(json_t *j, const char *what)
{
    if (!j->err) {
        j->err = what;
    }
    return 0;
}

static void skip_ws(json_t *j)
{
    while (j->s < j->end && (*j->s == ' ' || *j->s == '\t' || *j->s == '\n' || *j->s == '\r')) {
        j->s++;
    }
}

static int hex4(const char *s, unsigned long *v)
{
    int i, d;

    *v = 0;
    for (i = 0; i < 4; i++) {
        if ((d = scep_util_hex_digit((unsigned char)s[i])) < 0) {
            return 0;
        }
        *v = (*v << 4) | (unsigned long)d;
    }
    return 1;
}

static char *put_utf8(char *o, unsigned long cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    }
    else if (cp < 0x800) {
        *o++ = (char)(0xC0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    else {
        *o++ = (char)(0xF0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* A string (RFC 8259 7), decoded into *out (NUL-terminated, *len bytes, which may hold a
 * NUL from \u0000: the caller's checks refuse it).  Raw control characters, ill-formed
 * UTF-8, lone surrogates and unknown escapes are refused. */
static int parse_string(json_t *j, const char **out, apr_size_t *len)
{
    char *buf, *o;
    const char *close;

    if (j->s >= j->end || *j->s != '"') {
        return bad(j, "a string was expected");
    }
    j->s++;
    /* the decoded text is never longer than the encoded one: room for this string only,
     * not for the rest of the answer (an array of 30,000 empty strings would otherwise
     * reserve gigabytes) */
    for (close = j->s; close < j->end && *close != '"'; close += *close == '\\' ? 2 : 1) {
    }
    if (close > j->end) {
        close = j->end;
    }
    o = buf = apr_palloc(j->p, (apr_size_t)(close - j->s) + 1);
    while (j->s < j->end && *j->s != '"') {
        unsigned long cp, low;
        apr_size_t n;

        if (*j->s != '\\') {
            n = utf8_next((const unsigned char *)j->s, (apr_size_t)(j->end - j->s), &cp);
            if (n == 0 || cp < 0x20) {
                return bad(j, "a string holds a control character or is not UTF-8");
            }
            memcpy(o, j->s, n);
            o += n;
            j->s += n;
            continue;
        }
        if (j->end - j->s < 2) {
            return bad(j, "a string is cut short");
        }
        switch (j->s[1]) {
        case '"': case '\\': case '/':
            *o++ = j->s[1];
            break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u':
            if (j->end - j->s < 6 || !hex4(j->s + 2, &cp)) {
                return bad(j, "a \\u escape is not four hex digits");
            }
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return bad(j, "a string holds a lone low surrogate");
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (j->end - j->s < 12 || j->s[6] != '\\' || j->s[7] != 'u'
                    || !hex4(j->s + 8, &low) || low < 0xDC00 || low > 0xDFFF) {
                    return bad(j, "a string holds a lone high surrogate");
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                j->s += 6;
            }
            o = put_utf8(o, cp);
            j->s += 6;
            continue;
        default:
            return bad(j, "a string holds an unknown escape");
        }
        j->s += 2;
    }
    if (j->s >= j->end) {
        return bad(j, "a string is not closed");
    }
    j->s++;
    *o = '\0';
    *out = buf;
    *len = (apr_size_t)(o - buf);
    return 1;
}

static int digits(json_t *j)
{
    const char *start = j->s;

    while (j->s < j->end && *j->s >= '0' && *j->s <= '9') {
        j->s++;
    }
    return j->s > start;
}

/* A number by RFC 8259's grammar; its value is never needed. */
static int skip_number(json_t *j)
{
    if (j->s < j->end && *j->s == '-') {
        j->s++;
    }
    if (j->s < j->end && *j->s == '0') {
        j->s++;
    }
    else if (!digits(j)) {
        return bad(j, "a value is not JSON");
    }
    if (j->s < j->end && *j->s == '.') {
        j->s++;
        if (!digits(j)) {
            return bad(j, "a number has no digits after its point");
        }
    }
    if (j->s < j->end && (*j->s == 'e' || *j->s == 'E')) {
        j->s++;
        if (j->s < j->end && (*j->s == '+' || *j->s == '-')) {
            j->s++;
        }
        if (!digits(j)) {
            return bad(j, "a number has no digits in its exponent");
        }
    }
    return 1;
}

static int literal(json_t *j, const char *word)
{
    apr_size_t n = strlen(word);

    if ((apr_size_t)(j->end - j->s) < n || memcmp(j->s, word, n) != 0) {
        return 0;
    }
    j->s += n;
    return 1;
}

static int skip_value(json_t *j, int depth);

/* What reads one member's value (`name`, NUL-free) or one element: 0 to stop. */
typedef int (*json_reader_t)(json_t *j, const char *name, void *baton);

/* The members (close '}') or elements (close ']') of a container whose opening bracket
 * was read, each value read by `read`. */
static int each_item(json_t *j, char close, json_reader_t read, void *baton)
{
    const char *name = NULL;
    apr_size_t len;

    skip_ws(j);
    if (j->s < j->end && *j->s == close) {
        j->s++;
        return 1;
    }
    for (;;) {
        skip_ws(j);
        if (close == '}') {
            if (!parse_string(j, &name, &len)) {
                return 0;
            }
            if (!name || strlen(name) != len) {
                return bad(j, "a member's name holds a NUL");
            }
            skip_ws(j);
            if (j->s >= j->end || *j->s++ != ':') {
                return bad(j, "a member has no ':'");
            }
            skip_ws(j);
        }
        if (!read(j, name, baton)) {
            return 0;
        }
        skip_ws(j);
        if (j->s < j->end && *j->s == ',') {
            j->s++;
            continue;
        }
        if (j->s < j->end && *j->s == close) {
            j->s++;
            return 1;
        }
        return bad(j, "an object or array is not closed properly");
    }
}

/* Reads an opening bracket, then the container's items. */
static int container(json_t *j, char open, json_reader_t read, void *baton)
{
    skip_ws(j);
    if (j->s >= j->end || *j->s != open) {
        return bad(j, open == '{' ? "an object was expected" : "an array was expected");
    }
    j->s++;
    return each_item(j, open == '{' ? '}' : ']', read, baton);
}

static int skip_item(json_t *j, const char *name, void *baton)
{
    (void)name;
    return skip_value(j, *(const int *)baton);
}

/* Any value, of a member this server does not read. */
static int skip_value(json_t *j, int depth)
{
    const char *s;
    apr_size_t len;
    int inner = depth + 1;

    if (depth > JSON_DEPTH_MAX) {
        return bad(j, "the answer nests too deeply");
    }
    skip_ws(j);
    if (j->s >= j->end) {
        return bad(j, "a value is missing");
    }
    switch (*j->s) {
    case '{':
    case '[':
        return container(j, *j->s, skip_item, &inner);
    case '"':
        return parse_string(j, &s, &len);
    case 't':
        return literal(j, "true") || bad(j, "a value is not JSON");
    case 'f':
        return literal(j, "false") || bad(j, "a value is not JSON");
    case 'n':
        return literal(j, "null") || bad(j, "a value is not JSON");
    default:
        return skip_number(j);
    }
}

/* The names a validator may supply, as templates name them. */
static const char *const supplied_fields[] = {
    "CN", "O", "OU", "C", "L", "ST", "serialNumber", "emailAddress",
    "dNSName", "iPAddress", "rfc822Name", "UPN", "URI", NULL
};

typedef struct identity_baton_t {
    apr_array_header_t *values;        /* scep_identity_value_t */
    unsigned int seen;                 /* bit i: supplied_fields[i] was named */
    const char *field;                 /* the member being read */
} identity_baton_t;

/* One value of the member being read. */
static int supplied_value(json_t *j, const char *name, void *baton)
{
    identity_baton_t *id = baton;
    scep_identity_value_t *v;
    const char *text;
    apr_size_t len;

    (void)name;
    if (!parse_string(j, &text, &len)) {
        return bad(j, "an identity value is not a string");
    }
    if (!clean_text(text, len)) {
        return bad(j, "an identity value is empty, too long, or holds a control "
                      "character");
    }
    if (id->values->nelts >= SCEP_HOOK_VALUES_MAX) {
        return bad(j, "the identity holds too many values");
    }
    v = &APR_ARRAY_PUSH(id->values, scep_identity_value_t);
    v->field = id->field;
    v->value = text;
    return 1;
}

/* One member of "identity": a known field, once, with a string or an array of them. */
static int identity_member(json_t *j, const char *name, void *baton)
{
    identity_baton_t *id = baton;
    int i;

    for (i = 0; supplied_fields[i] && strcmp(name, supplied_fields[i]) != 0; i++) {
    }
    if (!supplied_fields[i]) {
        return bad(j, "\"identity\" names a field no template knows");
    }
    if (id->seen & (1u << i)) {
        return bad(j, "\"identity\" names a field twice");
    }
    id->seen |= 1u << i;
    id->field = supplied_fields[i];
    if (j->s < j->end && *j->s == '[') {
        return container(j, '[', supplied_value, id);
    }
    return supplied_value(j, name, id);
}

typedef struct answer_baton_t {
    scep_hook_answer_t *out;
    int allow;                         /* -1 until read */
    int have_reason, have_identity;
} answer_baton_t;

/* One member of the answer's object. */
static int answer_member(json_t *j, const char *name, void *baton)
{
    answer_baton_t *a = baton;
    identity_baton_t id;
    const char *text;
    apr_size_t len;
    int depth = 1;

    if (strcmp(name, "allow") == 0) {
        if (a->allow >= 0) {
            return bad(j, "\"allow\" comes twice");
        }
        a->allow = literal(j, "true") ? 1 : literal(j, "false") ? 0 : -1;
        return a->allow >= 0 || bad(j, "\"allow\" is neither true nor false");
    }
    if (strcmp(name, "reason") == 0) {
        if (a->have_reason++) {
            return bad(j, "\"reason\" comes twice");
        }
        if (!parse_string(j, &text, &len)) {
            return bad(j, "\"reason\" is not a string");
        }
        /* for the log only, where it is escaped: a reason with a control character is
         * still a refusal */
        if (len > SCEP_HOOK_VALUE_MAX) {
            return bad(j, "\"reason\" is too long");
        }
        a->out->reason = text;
        return 1;
    }
    if (strcmp(name, "identity") == 0) {
        if (a->have_identity++) {
            return bad(j, "\"identity\" comes twice");
        }
        memset(&id, 0, sizeof(id));
        id.values = a->out->supplied = apr_array_make(j->p, 4, sizeof(scep_identity_value_t));
        return container(j, '{', identity_member, &id);
    }
    return skip_item(j, name, &depth);
}

void scep_webhook_parse_answer(apr_pool_t *p, const char *body, apr_size_t len,
                               scep_hook_answer_t *out)
{
    json_t j = { p, body, body + len, NULL };
    answer_baton_t a = { out, -1, 0, 0 };

    memset(out, 0, sizeof(*out));
    if (len > SCEP_HOOK_ANSWER_MAX) {
        out->why = apr_psprintf(p, "the answer exceeds %d bytes", SCEP_HOOK_ANSWER_MAX);
        return;
    }
    if (container(&j, '{', answer_member, &a)) {
        skip_ws(&j);
        if (j.s != j.end) {
            bad(&j, "the answer goes on after its object");
        }
        else if (a.allow < 0) {
            bad(&j, "the answer has no \"allow\"");
        }
    }
    if (j.err) {
        out->why = apr_psprintf(p, "unreadable answer: %s (at byte %lu)", j.err,
                                (unsigned long)(j.s - body));
        out->reason = NULL;
        out->supplied = NULL;
        return;
    }
    out->verdict = a.allow ? SCEP_HOOK_ALLOW : SCEP_HOOK_DENY;
    if (!a.allow) {
        out->supplied = NULL;          /* nothing of a refusal reaches a certificate */
    }
}

/* ---- the exchange ------------------------------------------------------------------ */

apr_status_t scep_webhook_post(apr_pool_t *p, const scep_hook_conf_t *conf, apr_int64_t now,
                               const char *body, apr_size_t len, long *status,
                               const char **answer, apr_size_t *answer_len, const char **why)
{
    const char *signature = scep_webhook_signature(p, conf->secret, conf->secret_len, now,
                                                   body, len);
    const char *headers[] = {
        "Content-Type: application/json",
        /* curl would wait for "100 Continue" before a larger body; most servers never
         * send it, and the wait would eat the timeout */
        "Expect:",
        apr_psprintf(p, "X-Scep-Timestamp: %" APR_INT64_T_FMT, now),
        signature ? apr_pstrcat(p, "X-Scep-Signature: ", signature, NULL) : NULL,
        NULL
    };
    scep_forward_http_t req;
    scep_forward_http_answer_t got;
    apr_status_t rv;

    if (!signature) {
        *why = "the signature cannot be computed";
        return APR_EGENERAL;
    }
    memset(&req, 0, sizeof(req));
    req.url = conf->url;
    req.headers = headers;
    req.body = (const unsigned char *)body;
    req.body_len = len;
    req.max_answer = SCEP_HOOK_ANSWER_MAX;
    req.connect_timeout_ms = conf->timeout_ms;
    req.timeout_ms = conf->timeout_ms;
    req.user_agent = "mod_scep webhook";
    rv = scep_forward_http(p, conf->transport, &req, &got);
    if (rv == APR_ENOSPC) {
        *why = apr_psprintf(p, "%s: the answer exceeds %d bytes", conf->url,
                            SCEP_HOOK_ANSWER_MAX);
        return APR_EGENERAL;
    }
    if (rv != APR_SUCCESS) {
        *why = got.timed_out
               ? apr_psprintf(p, "%s: no answer within %ld ms", conf->url, conf->timeout_ms)
               : apr_psprintf(p, "%s: %s", conf->url, got.why);
        return APR_EGENERAL;
    }
    *status = got.status;
    *answer = got.body ? (const char *)got.body : "";
    *answer_len = got.body_len;
    return APR_SUCCESS;
}

void scep_webhook_validate(apr_pool_t *p, const scep_hook_conf_t *conf,
                           const scep_hook_request_t *req, apr_int64_t now,
                           scep_hook_answer_t *out)
{
    apr_size_t len = 0, answer_len = 0;
    const char *doc = scep_webhook_request_document(p, req, &len);
    const char *answer = NULL, *why = NULL;
    long status = 0;

    memset(out, 0, sizeof(*out));
    if (scep_webhook_post(p, conf, now, doc, len, &status, &answer, &answer_len, &why)
        != APR_SUCCESS) {
        out->why = why;
        return;
    }
    if (status < 200 || status > 299) {
        out->why = apr_psprintf(p, "%s answered HTTP %ld", conf->url, status);
        return;
    }
    scep_webhook_parse_answer(p, answer, answer_len, out);
    if (out->verdict == SCEP_HOOK_UNAVAILABLE) {
        out->why = apr_psprintf(p, "%s: %s", conf->url, out->why);
    }
}

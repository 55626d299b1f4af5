/* SPDX-License-Identifier: Apache-2.0 */
/* Wire decoding ahead of any ASN.1: splitting the raw GET query into `operation` and
 * `message`, the lenient base64 decoder that turns a GET `message` into DER (percent
 * escapes, line wrapping and both alphabets tolerated), and the plain base64 encoder
 * (APR-util's).  Only APR and libc are used, so the unit tests and fuzzers need nothing
 * else. */
#include <limits.h>
#include <string.h>

#include <apr_base64.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include "scep_decode.h"
#include "scep_util.h"

#define NAME_OPERATION "operation"
#define NAME_MESSAGE   "message"

/* Both alphabets at once: clients are not consistent, and a message that mixes them
 * still has exactly one meaning. */
static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+' || c == '-') {
        return 62;
    }
    if (c == '/' || c == '_') {
        return 63;
    }
    return -1;
}

static int name_is(const char *name, apr_size_t len, const char *want, apr_size_t want_len)
{
    apr_size_t i;

    if (len != want_len) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (apr_tolower((unsigned char)name[i]) != want[i]) {
            return 0;
        }
    }
    return 1;
}

/* Percent-decodes src[0..len) into dst, which has room for len bytes (decoding only
 * shrinks).  '+' stays '+': nothing here is form-encoded. */
static apr_status_t percent_decode(char *dst, const char *src, apr_size_t len)
{
    apr_size_t i = 0;
    int hi, lo;

    while (i < len) {
        if (src[i] != '%') {
            *dst++ = src[i++];
            continue;
        }
        if (len - i < 3) {
            return APR_EINVAL;
        }
        hi = scep_util_hex_digit((unsigned char)src[i + 1]);
        lo = scep_util_hex_digit((unsigned char)src[i + 2]);
        if (hi < 0 || lo < 0 || (hi | lo) == 0) {
            return APR_EINVAL;      /* a NUL would silently truncate the value */
        }
        *dst++ = (char)((hi << 4) | lo);
        i += 3;
    }
    *dst = '\0';
    return APR_SUCCESS;
}

apr_status_t scep_decode_query(apr_pool_t *p, const char *raw_query,
                               const char **operation, const char **message)
{
    const char *op = NULL, *msg = NULL;
    apr_size_t op_len = 0, msg_len = 0;
    const char *s;
    char *buf;
    apr_status_t rv;

    *operation = NULL;
    *message = NULL;
    if (!raw_query) {
        return APR_SUCCESS;
    }

    /* One pass over the parameters, remembering where the two values lie and stopping
     * once both are known (a repeat never wins); both are then copied out into a
     * single allocation. */
    s = raw_query;
    while (*s && (!op || !msg)) {
        const char *name = s, *eq = NULL, *value, *end;

        while (*s && *s != '&') {
            if (!eq && *s == '=') {
                eq = s;
            }
            s++;
        }
        end = s;
        if (*s == '&') {
            s++;
        }
        value = eq ? eq + 1 : end;
        if (!eq) {
            eq = end;
        }
        if (!op && name_is(name, (apr_size_t)(eq - name), NAME_OPERATION,
                           sizeof(NAME_OPERATION) - 1)) {
            op = value;
            op_len = (apr_size_t)(end - value);
        }
        else if (!msg && name_is(name, (apr_size_t)(eq - name), NAME_MESSAGE,
                                 sizeof(NAME_MESSAGE) - 1)) {
            msg = value;
            msg_len = (apr_size_t)(end - value);
        }
    }
    if (!op && !msg) {
        return APR_SUCCESS;
    }

    buf = apr_palloc(p, (op ? op_len + 1 : 0) + (msg ? msg_len + 1 : 0));
    if (op) {
        if ((rv = percent_decode(buf, op, op_len)) != APR_SUCCESS) {
            return rv;
        }
        *operation = buf;
        buf += op_len + 1;
    }
    if (msg) {
        memcpy(buf, msg, msg_len);
        buf[msg_len] = '\0';
        *message = buf;
    }
    return APR_SUCCESS;
}

apr_status_t scep_decode_message(apr_pool_t *p, const char *text, apr_size_t text_len,
                                 apr_size_t max_out,
                                 unsigned char **out, apr_size_t *out_len)
{
    unsigned char *buf;
    apr_size_t cap, i = 0, o = 0, symbols = 0, pads = 0;
    apr_uint32_t acc = 0;
    int bits = 0;

    *out = NULL;
    *out_len = 0;
    if (!text || text_len == 0) {
        return APR_EINVAL;
    }

    /* Every symbol costs at least one input character and yields 6 bits, so the output
     * can never exceed text_len*3/4 (written so it cannot overflow).  Escapes and line
     * breaks may shrink it a lot, so a long input is not yet proof of an oversize
     * message; instead the buffer is capped at max_out and overrunning that cap is the
     * proof.  Either way the allocation is bounded by what the operator allowed. */
    cap = text_len / 4 * 3 + 3;
    if (cap > max_out) {
        cap = max_out;
    }
    buf = apr_palloc(p, cap ? cap : 1);

    while (i < text_len) {
        unsigned char c = (unsigned char)text[i];
        int v;

        if (c == '%') {
            int hi, lo;

            if (text_len - i < 3) {
                return APR_EINVAL;
            }
            hi = scep_util_hex_digit((unsigned char)text[i + 1]);
            lo = scep_util_hex_digit((unsigned char)text[i + 2]);
            if (hi < 0 || lo < 0) {
                return APR_EINVAL;
            }
            c = (unsigned char)((hi << 4) | lo);
            i += 3;
        }
        else {
            i++;
        }

        if (c == '\r' || c == '\n' || c == ' ' || c == '\t') {
            continue;
        }
        if (c == '=') {
            pads++;
            continue;
        }
        if (pads) {
            return APR_EINVAL;      /* data after padding: two messages glued together */
        }
        if ((v = b64_value(c)) < 0) {
            return APR_EINVAL;
        }
        symbols++;
        acc = (acc << 6) | (apr_uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            /* cap is max_out whenever it is the binding limit; the input bound above
             * is never reached. */
            if (o >= cap) {
                return APR_ENOSPC;
            }
            buf[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }

    /* A final group of 1 symbol carries no whole byte; padding, when present, must
     * complete the last group exactly. */
    switch (symbols % 4) {
    case 0:
        if (symbols == 0 || pads != 0) {
            return APR_EINVAL;
        }
        break;
    case 1:
        return APR_EINVAL;
    default:
        if (pads != 0 && pads != 4 - symbols % 4) {
            return APR_EINVAL;
        }
        break;
    }

    *out = buf;
    *out_len = o;
    return APR_SUCCESS;
}

const char *scep_decode_base64(apr_pool_t *p, const unsigned char *data, apr_size_t len)
{
    char *buf;

    if (len > (apr_size_t)INT_MAX / 4 * 3) {
        return NULL;            /* beyond APR's int lengths; never a SCEP message */
    }
    buf = apr_palloc(p, (apr_size_t)apr_base64_encode_len((int)len));
    apr_base64_encode(buf, (const char *)data, (int)len);
    return buf;
}

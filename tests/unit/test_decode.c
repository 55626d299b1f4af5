/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of scep_decode.c: the raw query split (order, case, repeats, absent and
 * empty parameters, percent-decoding of the operation only) and the lenient base64 of
 * GET messages (round trips over many lengths in every spelling real clients use, the
 * refusals, and the max_out bound).  Every decoder input is copied into a buffer of
 * exactly its length so valgrind sees any read past text_len. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "scep_decode.h"

/* ---- fixtures -------------------------------------------------------------------- */

static int pool_setup(void **state)
{
    apr_pool_t *p;

    if (apr_pool_create(&p, NULL) != APR_SUCCESS) {
        return -1;
    }
    *state = p;
    return 0;
}

static int pool_teardown(void **state)
{
    apr_pool_destroy(*state);
    return 0;
}

/* Deterministic, so a failure reproduces. */
static uint32_t rng_state = 0x2545f491u;

static unsigned char rng_byte(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return (unsigned char)(rng_state >> 24);
}

static void fill_random(unsigned char *buf, apr_size_t len)
{
    apr_size_t i;

    for (i = 0; i < len; i++) {
        buf[i] = rng_byte();
    }
}

/* Runs the decoder on text[0..len) from a heap copy with no terminator after it. */
static apr_status_t decode_n(apr_pool_t *p, const char *text, apr_size_t len,
                             apr_size_t max_out, unsigned char **out, apr_size_t *out_len)
{
    char *copy = malloc(len ? len : 1);
    apr_status_t rv;

    assert_non_null(copy);
    memcpy(copy, text, len);
    rv = scep_decode_message(p, copy, len, max_out, out, out_len);
    free(copy);
    return rv;
}

static apr_status_t decode(apr_pool_t *p, const char *text, apr_size_t max_out,
                           unsigned char **out, apr_size_t *out_len)
{
    return decode_n(p, text, strlen(text), max_out, out, out_len);
}

static void assert_decodes_to(apr_pool_t *p, const char *text,
                              const void *want, apr_size_t want_len)
{
    unsigned char *out = NULL;
    apr_size_t len = 0;

    assert_int_equal(decode(p, text, 1 << 20, &out, &len), APR_SUCCESS);
    assert_int_equal(len, want_len);
    assert_non_null(out);
    if (want_len) {
        assert_memory_equal(out, want, want_len);
    }
}

static void assert_rejected(apr_pool_t *p, const char *text, apr_size_t len)
{
    unsigned char *out = (unsigned char *)"x";
    apr_size_t out_len = 99;

    assert_int_equal(decode_n(p, text, len, 1 << 20, &out, &out_len), APR_EINVAL);
    assert_null(out);
    assert_int_equal(out_len, 0);
}

#define REJECT(p, s) assert_rejected((p), (s), sizeof(s) - 1)

/* ---- spellings of one encoding, as different clients send it --------------------- */

typedef enum {
    PLAIN, NO_PAD, URL_SAFE, ESCAPED, ESCAPED_LOWER, WRAP_LF, WRAP_CRLF, WRAP_LITERAL,
    SPACED, EVERYTHING, N_SPELLINGS
} spelling_t;

static char *put(char *d, const char *s)
{
    apr_size_t n = strlen(s);

    memcpy(d, s, n);
    return d + n;
}

static const char *respell(apr_pool_t *p, const char *b64, spelling_t how)
{
    apr_size_t n = strlen(b64), i, col = 0;
    char *buf = apr_palloc(p, n * 6 + 1), *d = buf;

    for (i = 0; i < n; i++) {
        char c = b64[i];

        if (col == 64) {
            switch (how) {
            case WRAP_LF:       d = put(d, "%0A"); break;
            case WRAP_CRLF:     d = put(d, "%0D%0A"); break;
            case WRAP_LITERAL:  d = put(d, "\r\n"); break;
            case EVERYTHING:    d = put(d, "%0d%0a"); break;
            default:            break;
            }
            col = 0;
        }
        col++;
        if (how == SPACED && i % 7 == 3) {
            *d++ = (i % 2) ? ' ' : '\t';
        }
        if (c == '=' && (how == NO_PAD || how == EVERYTHING)) {
            continue;
        }
        if (how == URL_SAFE || how == EVERYTHING) {
            c = (char)((c == '+') ? '-' : (c == '/') ? '_' : c);
        }
        if ((how == ESCAPED || how == ESCAPED_LOWER) && (c == '+' || c == '/' || c == '=')) {
            d += sprintf(d, how == ESCAPED ? "%%%02X" : "%%%02x", (unsigned char)c);
            continue;
        }
        *d++ = c;
    }
    *d = '\0';
    return buf;
}

/* ---- base64 ------------------------------------------------------------------------ */

static void test_rfc4648_vectors(void **state)
{
    apr_pool_t *p = *state;
    static const char *const enc[] = {
        "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"
    };
    apr_size_t i;

    for (i = 0; i < sizeof(enc) / sizeof(enc[0]); i++) {
        assert_string_equal(scep_decode_base64(p, (const unsigned char *)"foobar", i),
                            enc[i]);
        if (i) {
            assert_decodes_to(p, enc[i], "foobar", i);
        }
    }
}

static void test_round_trip_all_spellings(void **state)
{
    apr_pool_t *p = *state;
    unsigned char data[300] = { 0 };
    apr_size_t len;
    int how;

    for (len = 0; len <= sizeof(data); len++) {
        const char *b64;

        fill_random(data, len);
        b64 = scep_decode_base64(p, data, len);
        assert_non_null(b64);
        assert_int_equal(strlen(b64), (len + 2) / 3 * 4);
        if (len == 0) {
            unsigned char *out;
            apr_size_t out_len;

            assert_string_equal(b64, "");
            assert_int_equal(decode(p, b64, 100, &out, &out_len), APR_EINVAL);
            continue;
        }
        for (how = PLAIN; how < N_SPELLINGS; how++) {
            assert_decodes_to(p, respell(p, b64, (spelling_t)how), data, len);
        }
    }
}

static void test_literal_plus_preserved(void **state)
{
    apr_pool_t *p = *state;
    static const unsigned char pluses[] = { 0xfb, 0xef, 0xbe };
    static const unsigned char slashes[] = { 0xff, 0xff, 0xff };
    const char *op, *msg;

    assert_string_equal(scep_decode_base64(p, pluses, 3), "++++");
    assert_decodes_to(p, "++++", pluses, 3);
    assert_decodes_to(p, "////", slashes, 3);

    /* the whole GET path: the query split must not turn '+' into a space */
    assert_int_equal(scep_decode_query(p, "operation=PKIOperation&message=++++%2B%2b++",
                                       &op, &msg), APR_SUCCESS);
    assert_string_equal(msg, "++++%2B%2b++");
    assert_decodes_to(p, msg, "\xfb\xef\xbe\xfb\xef\xbe", 6);
}

static void test_percent_escapes(void **state)
{
    apr_pool_t *p = *state;

    assert_decodes_to(p, "%2B%2B%2B%2B", "\xfb\xef\xbe", 3);
    assert_decodes_to(p, "%2F%2F%2F%2F", "\xff\xff\xff", 3);
    assert_decodes_to(p, "Zg%3D%3D", "f", 1);
    assert_decodes_to(p, "Zm8%3D", "fo", 2);
    /* any character may arrive escaped, not only the three that must */
    assert_decodes_to(p, "%5A%6d%39%76", "foo", 3);
}

static void test_lower_case_hex(void **state)
{
    apr_pool_t *p = *state;

    assert_decodes_to(p, "%2b%2b%2b%2b", "\xfb\xef\xbe", 3);
    assert_decodes_to(p, "%2f%2F%2f%2F", "\xff\xff\xff", 3);
    assert_decodes_to(p, "Zg%3d%3D", "f", 1);
    assert_decodes_to(p, "Zm9v%0d%0aYmFy%0a", "foobar", 6);
}

static void test_line_breaks(void **state)
{
    apr_pool_t *p = *state;
    unsigned char data[500] = { 0 };
    const char *b64;

    fill_random(data, sizeof(data));
    b64 = scep_decode_base64(p, data, sizeof(data));
    assert_decodes_to(p, respell(p, b64, WRAP_LF), data, sizeof(data));
    assert_decodes_to(p, respell(p, b64, WRAP_CRLF), data, sizeof(data));
    assert_decodes_to(p, respell(p, b64, WRAP_LITERAL), data, sizeof(data));
    /* the wrapping really is there, so the test cannot pass vacuously */
    assert_non_null(strstr(respell(p, b64, WRAP_LF), "%0A"));
    assert_non_null(strstr(respell(p, b64, WRAP_CRLF), "%0D%0A"));

    /* breaks and blanks around and inside the padding, at both ends */
    assert_decodes_to(p, "%0D%0AZm9v\r\nYg=%0A=%0D%0A", "foob", 4);
    assert_decodes_to(p, " \tZm9v YmFy\t ", "foobar", 6);
    assert_decodes_to(p, "%20Zm9v%09YmE%3D%20", "fooba", 5);
}

static void test_url_safe_alphabet(void **state)
{
    apr_pool_t *p = *state;

    assert_decodes_to(p, "----", "\xfb\xef\xbe", 3);
    assert_decodes_to(p, "____", "\xff\xff\xff", 3);
    /* mixed alphabets still have exactly one meaning */
    assert_decodes_to(p, "+-/_", "\xfb\xef\xff", 3);
    assert_decodes_to(p, "_w", "\xff", 1);
    assert_decodes_to(p, "_w==", "\xff", 1);
}

static void test_missing_padding(void **state)
{
    apr_pool_t *p = *state;

    assert_decodes_to(p, "Zg", "f", 1);
    assert_decodes_to(p, "Zm8", "fo", 2);
    assert_decodes_to(p, "Zm9vYg", "foob", 4);
    assert_decodes_to(p, "Zm9vYmE", "fooba", 5);
    assert_decodes_to(p, "Zm9vYmFy", "foobar", 6);
}

static void test_malformed_rejected(void **state)
{
    apr_pool_t *p = *state;

    /* characters outside both alphabets */
    REJECT(p, "Zm9v!");
    REJECT(p, "Zm9v.YmFy");
    REJECT(p, "Zm9v\x80YmFy");
    REJECT(p, "Zm9v\0YmFy");
    REJECT(p, "Zm9v%00YmFy");
    REJECT(p, "Zm9v%25YmFy");           /* %25 is '%': no second round of decoding */
    REJECT(p, "Zm9v%252BYmFy");
    REJECT(p, "Zm9v\vYmFy");
    /* bad escapes */
    REJECT(p, "%zz");
    REJECT(p, "Zm9v%zzYmFy");
    REJECT(p, "Zm9v%4");
    REJECT(p, "Zm9v%4g");
    REJECT(p, "Zm9v%g4");
    REJECT(p, "Zm9v%");
    REJECT(p, "%");
    REJECT(p, "%2");
    /* padding anywhere but the end, or not completing the last group */
    REJECT(p, "Zg==Zg==");
    REJECT(p, "Zg=g");
    REJECT(p, "Z=g=");
    REJECT(p, "Zm9v=");
    REJECT(p, "Zm9v====");
    REJECT(p, "Zg=");
    REJECT(p, "Zg===");
    REJECT(p, "Zm8==");
    REJECT(p, "=");
    REJECT(p, "====");
    REJECT(p, "Zm9v%3DYmFy");
    /* a single dangling character carries no whole byte */
    REJECT(p, "Z");
    REJECT(p, "Zm9vY");
    REJECT(p, "Zm9vY=");
    REJECT(p, "Zm9vY===");
    /* nothing at all */
    REJECT(p, "");
    REJECT(p, "%0D%0A");
    REJECT(p, " \r\n\t");
}

static void test_reads_only_text_len(void **state)
{
    apr_pool_t *p = *state;
    unsigned char *out;
    apr_size_t len;

    /* what lies beyond text_len must make no difference, either way */
    assert_int_equal(decode_n(p, "Zm9vYmFy!!!!", 8, 100, &out, &len), APR_SUCCESS);
    assert_int_equal(len, 6);
    assert_memory_equal(out, "foobar", 6);
    assert_rejected(p, "Zm9v%2B", 5);
    assert_rejected(p, "Zm9v%2B", 6);
    assert_int_equal(decode_n(p, "Zm9vYg==", 6, 100, &out, &len), APR_SUCCESS);
    assert_int_equal(len, 4);
    assert_int_equal(scep_decode_message(p, "Zm9v", 0, 100, &out, &len), APR_EINVAL);
    assert_int_equal(scep_decode_message(p, NULL, 0, 100, &out, &len), APR_EINVAL);
}

static void test_max_out_boundary(void **state)
{
    apr_pool_t *p = *state;
    static const apr_size_t sizes[] = { 1, 2, 3, 4, 5, 47, 48, 49, 100, 1000, 4096 };
    unsigned char data[4096] = { 0 }, *out;
    apr_size_t i, len;

    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        apr_size_t n = sizes[i];
        const char *b64;
        int how;

        fill_random(data, n);
        b64 = scep_decode_base64(p, data, n);
        for (how = PLAIN; how < N_SPELLINGS; how++) {
            const char *text = respell(p, b64, (spelling_t)how);

            out = NULL;
            assert_int_equal(decode(p, text, n, &out, &len), APR_SUCCESS);
            assert_int_equal(len, n);
            assert_memory_equal(out, data, n);
            out = (unsigned char *)"x";
            assert_int_equal(decode(p, text, n - 1, &out, &len), APR_ENOSPC);
            assert_null(out);
            assert_int_equal(len, 0);
        }
    }
    assert_int_equal(decode(p, "Zg==", 0, &out, &len), APR_ENOSPC);
}

static void test_length_alone_is_no_verdict(void **state)
{
    apr_pool_t *p = *state;
    apr_size_t n = 30000;
    char *text = apr_palloc(p, n * 3 + 10);
    unsigned char *out;
    apr_size_t i, len;

    /* far longer than max_out allows, yet only 3 bytes once the breaks are dropped */
    for (i = 0; i < n; i++) {
        memcpy(text + i * 3, "%0A", 3);
    }
    memcpy(text + n * 3, "Zm9v%0D%0A", 10);
    assert_int_equal(decode_n(p, text, n * 3 + 10, 3, &out, &len), APR_SUCCESS);
    assert_int_equal(len, 3);
    assert_memory_equal(out, "foo", 3);
    assert_int_equal(decode_n(p, text, n * 3 + 10, 2, &out, &len), APR_ENOSPC);
}

static void test_huge_input_rejected(void **state)
{
    apr_pool_t *p = *state;
    apr_size_t n = 8u << 20;
    char *text = malloc(n);
    unsigned char *out = (unsigned char *)"x";
    apr_size_t len = 99;

    assert_non_null(text);
    memset(text, 'A', n);
    assert_int_equal(scep_decode_message(p, text, n, 64 * 1024, &out, &len), APR_ENOSPC);
    assert_null(out);
    assert_int_equal(len, 0);
    /* oversize wins even when the text turns bad after the limit */
    text[n - 1] = '!';
    assert_int_equal(scep_decode_message(p, text, n, 64 * 1024, &out, &len), APR_ENOSPC);
    free(text);
}

/* ---- query ------------------------------------------------------------------------- */

static void parse_ok(apr_pool_t *p, const char *query, const char *want_op,
                     const char *want_msg)
{
    const char *op = "unset", *msg = "unset";

    assert_int_equal(scep_decode_query(p, query, &op, &msg), APR_SUCCESS);
    if (want_op) {
        assert_non_null(op);
        assert_string_equal(op, want_op);
    }
    else {
        assert_null(op);
    }
    if (want_msg) {
        assert_non_null(msg);
        assert_string_equal(msg, want_msg);
    }
    else {
        assert_null(msg);
    }
}

static void test_query_order_independent(void **state)
{
    apr_pool_t *p = *state;

    parse_ok(p, "operation=PKIOperation&message=MIIB%2B+/", "PKIOperation", "MIIB%2B+/");
    parse_ok(p, "message=MIIB%2B+/&operation=PKIOperation", "PKIOperation", "MIIB%2B+/");
    parse_ok(p, "x=1&message=M&y=2&operation=GetCACert&z", "GetCACert", "M");
}

static void test_query_case_insensitive_names(void **state)
{
    apr_pool_t *p = *state;

    parse_ok(p, "OPERATION=GetCACaps&MESSAGE=ca", "GetCACaps", "ca");
    parse_ok(p, "OpErAtIoN=GetCACaps&mEsSaGe=ca", "GetCACaps", "ca");
    /* values keep their case */
    parse_ok(p, "Operation=getcacaps&Message=CA", "getcacaps", "CA");
}

static void test_query_absent(void **state)
{
    apr_pool_t *p = *state;

    parse_ok(p, "foo=bar", NULL, NULL);
    parse_ok(p, "operation=GetCACaps", "GetCACaps", NULL);
    parse_ok(p, "message=abc", NULL, "abc");
    /* names match whole, not by prefix or suffix */
    parse_ok(p, "operations=X&messages=Y&xoperation=Z&message_=W&oper=V", NULL, NULL);
    parse_ok(p, "=GetCACaps&=abc", NULL, NULL);
}

static void test_query_first_wins(void **state)
{
    apr_pool_t *p = *state;

    parse_ok(p, "operation=A&operation=B&message=1&message=2", "A", "1");
    parse_ok(p, "message=1&operation=A&message=2&operation=B", "A", "1");
    parse_ok(p, "operation=&operation=GetCACaps", "", NULL);
    parse_ok(p, "message=1&message=2", NULL, "1");
    parse_ok(p, "operation=A&operation=B", "A", NULL);
    /* a broken repeat after the first is never looked at */
    parse_ok(p, "operation=A&message=1&operation=%zz", "A", "1");
}

static void test_query_null_and_empty(void **state)
{
    apr_pool_t *p = *state;

    parse_ok(p, NULL, NULL, NULL);
    parse_ok(p, "", NULL, NULL);
    parse_ok(p, "&", NULL, NULL);
    parse_ok(p, "&&operation=GetCACaps&&", "GetCACaps", NULL);
    /* a parameter without '=' is present with an empty value */
    parse_ok(p, "operation&message", "", "");
    parse_ok(p, "operation=&message=", "", "");
}

static void test_query_operation_decoded(void **state)
{
    apr_pool_t *p = *state;
    const char *op, *msg;

    parse_ok(p, "operation=PKI%4Fperation", "PKIOperation", NULL);
    parse_ok(p, "operation=PKI%4fperation", "PKIOperation", NULL);
    parse_ok(p, "operation=%47%65%74CACaps", "GetCACaps", NULL);
    parse_ok(p, "operation=a+b", "a+b", NULL);
    parse_ok(p, "operation=a%2Bb", "a+b", NULL);
    /* only the first '=' separates; the message is handed on untouched */
    parse_ok(p, "message=Zg==&operation=x=y", "x=y", "Zg==");
    parse_ok(p, "operation=PKIOperation&message=%zz%0A%", "PKIOperation", "%zz%0A%");

    assert_int_equal(scep_decode_query(p, "operation=%zz", &op, &msg), APR_EINVAL);
    assert_int_equal(scep_decode_query(p, "operation=Get%4", &op, &msg), APR_EINVAL);
    assert_int_equal(scep_decode_query(p, "operation=Get%&message=x", &op, &msg),
                     APR_EINVAL);
    assert_int_equal(scep_decode_query(p, "operation=Get%00CACaps", &op, &msg), APR_EINVAL);
    assert_null(op);
    assert_null(msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, pool_setup, pool_teardown)
        T(test_rfc4648_vectors),
        T(test_round_trip_all_spellings),
        T(test_literal_plus_preserved),
        T(test_percent_escapes),
        T(test_lower_case_hex),
        T(test_line_breaks),
        T(test_url_safe_alphabet),
        T(test_missing_padding),
        T(test_malformed_rejected),
        T(test_reads_only_text_len),
        T(test_max_out_boundary),
        T(test_length_alone_is_no_verdict),
        T(test_huge_input_rejected),
        T(test_query_order_independent),
        T(test_query_case_insensitive_names),
        T(test_query_absent),
        T(test_query_first_wins),
        T(test_query_null_and_empty),
        T(test_query_operation_decoded),
#undef T
    };
    int failed;

    apr_initialize();
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return failed;
}

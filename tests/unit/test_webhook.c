/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the webhooks' core (scep_webhook.c): the validation and event documents,
 * the signature, the strict reading of answers (garbage, oversize, hostile values), the
 * secret file's checks, and a validator that never answers (the timeout holds). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_network_io.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "scep_webhook.h"

static apr_pool_t *pool;

static scep_hook_verdict_e parse(const char *text, scep_hook_answer_t *answer)
{
    scep_webhook_parse_answer(pool, text, strlen(text), answer);
    if (answer->verdict == SCEP_HOOK_UNAVAILABLE) {
        assert_non_null(answer->why);
        assert_null(answer->supplied);
        assert_null(answer->reason);
    }
    return answer->verdict;
}

static void test_signature(void **state)
{
    static const char secret[] = "0123456789abcdef-secret";
    const char *sig;

    (void)state;
    /* python3: hmac.new(secret, b'1700000000.{"a":1}', hashlib.sha256).hexdigest() */
    sig = scep_webhook_signature(pool, (const unsigned char *)secret, strlen(secret),
                                 1700000000, "{\"a\":1}", 7);
    assert_string_equal(sig, "sha256=6948a2dc6985c92d09b9edade5c97dce2ba201452d91a72e4a20"
                             "d35abe4d3420");
    /* the timestamp is signed: another one gives another signature */
    assert_string_not_equal(sig, scep_webhook_signature(pool, (const unsigned char *)secret,
                                                        strlen(secret), 1700000001,
                                                        "{\"a\":1}", 7));
}

static void test_answer_allow_deny(void **state)
{
    scep_hook_answer_t a;

    (void)state;
    assert_int_equal(parse("{\"allow\":true}", &a), SCEP_HOOK_ALLOW);
    assert_null(a.supplied);
    assert_int_equal(parse(" {\"allow\" : false , \"reason\":\"not in MDM\"}\n", &a),
                     SCEP_HOOK_DENY);
    assert_string_equal(a.reason, "not in MDM");
    /* a reason is for the log, where it is escaped: its control characters do not turn
     * a refusal into an unreadable answer */
    assert_int_equal(parse("{\"allow\":false,\"reason\":\"a\\nb\\u001b\"}", &a),
                     SCEP_HOOK_DENY);
    assert_string_equal(a.reason, "a\nb\x1b");
    /* members this server does not read are skipped, whatever JSON they hold */
    assert_int_equal(parse("{\"v\":[1,-0.5e+3,{\"x\":null},\"s\",false],\"allow\":true}",
                           &a), SCEP_HOOK_ALLOW);
}

static void test_answer_identity(void **state)
{
    scep_hook_answer_t a;
    const scep_identity_value_t *v;

    (void)state;
    assert_int_equal(parse("{\"allow\":true,\"identity\":{\"CN\":\"John\\u0027s iPhone\","
                           "\"rfc822Name\":[\"j@example.org\",\"k@example.org\"],"
                           "\"URI\":\"tag:microsoft.com,2022-09-14:sid:S-1-5-21-1\","
                           "\"O\":\"\\u00c9cole \\ud83d\\ude00\"}}", &a), SCEP_HOOK_ALLOW);
    assert_non_null(a.supplied);
    assert_int_equal(a.supplied->nelts, 5);
    v = &APR_ARRAY_IDX(a.supplied, 0, scep_identity_value_t);
    assert_string_equal(v->field, "CN");
    assert_string_equal(v->value, "John's iPhone");
    v = &APR_ARRAY_IDX(a.supplied, 2, scep_identity_value_t);
    assert_string_equal(v->field, "rfc822Name");
    assert_string_equal(v->value, "k@example.org");
    v = &APR_ARRAY_IDX(a.supplied, 4, scep_identity_value_t);
    assert_string_equal(v->value, "\xc3\x89" "cole \xf0\x9f\x98\x80");
    /* a refusal supplies nothing, even when it says something */
    assert_int_equal(parse("{\"allow\":false,\"identity\":{\"CN\":\"x\"}}", &a),
                     SCEP_HOOK_DENY);
    assert_null(a.supplied);
}

/* Everything that must count as a validator that did not answer: never an allow. */
static void test_answer_garbage(void **state)
{
    static const char *const garbage[] = {
        "", " ", "null", "true", "[]", "{}", "{\"allow\":1}", "{\"allow\":\"true\"}",
        "{\"allow\":True}", "{\"allow\":true", "{\"allow\":true}x", "{\"allow\":true}{}",
        "{\"allow\":true,}", "{allow:true}", "{'allow':true}", "{\"allow\":true,\"allow\":true}",
        "{\"allow\":false,\"allow\":true}", "\xef\xbb\xbf{\"allow\":true}",
        "{\"allow\":true,\"reason\":5}", "{\"allow\":true,\"reason\":\"a\",\"reason\":\"b\"}",
        "{\"allow\":true,\"identity\":[]}", "{\"allow\":true,\"identity\":{\"CN\":1}}",
        "{\"allow\":true,\"identity\":{\"cn\":\"x\"}}",
        "{\"allow\":true,\"identity\":{\"basicConstraints\":\"CA:TRUE\"}}",
        "{\"allow\":true,\"identity\":{\"CN\":\"a\",\"CN\":\"b\"}}",
        "{\"allow\":true,\"identity\":{\"CN\":\"\"}}",
        "{\"allow\":true,\"identity\":{\"CN\":\"a\\u0000b\"}}",
        "{\"allow\":true,\"identity\":{\"CN\":\"a\\nb\"}}",
        "{\"allow\":true,\"identity\":{\"CN\":\"a\\u0085b\"}}",
        "{\"allow\":true,\"identity\":{\"CN\":\"a\\u007fb\"}}",
        "{\"allow\":true,\"identity\":{\"CN\":\"\\ud800\"}}",
        "{\"allow\":true,\"identity\":{\"CN\":\"\\udc00x\"}}",
        "{\"allow\":true,\"identity\":{\"CN\":\"\xc0\xaf\"}}",
        "{\"allow\":true,\"identity\":{\"CN\":\"\xed\xa0\x80\"}}",
        "{\"allow\":true,\"identity\":{\"CN\":\"a\tb\"}}",
        "{\"allow\":true,\"reason\":\"\\x41\"}", "{\"allow\":true,\"n\":01}",
        "{\"allow\":true,\"n\":1.}", "{\"allow\":true,\"n\":-}", "{\"allow\":true,\"n\":nul}",
    };
    scep_hook_answer_t a;
    char deep[200];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(garbage) / sizeof(*garbage); i++) {
        if (parse(garbage[i], &a) != SCEP_HOOK_UNAVAILABLE) {
            fail_msg("garbage answer %lu was read as a verdict: %s", (unsigned long)i,
                     garbage[i]);
        }
    }
    /* a NUL in the middle of the bytes is not the end of the answer */
    scep_webhook_parse_answer(pool, "{\"allow\":true}\0x", 16, &a);
    assert_int_equal(a.verdict, SCEP_HOOK_UNAVAILABLE);
    /* nesting beyond the bound, in a member that is otherwise ignored */
    memset(deep, '[', sizeof(deep));
    memcpy(deep, "{\"allow\":true,\"x\":", 18);
    deep[sizeof(deep) - 1] = '\0';
    assert_int_equal(parse(deep, &a), SCEP_HOOK_UNAVAILABLE);
}

static void test_answer_bounds(void **state)
{
    scep_hook_answer_t a;
    apr_array_header_t *parts = apr_array_make(pool, 40, sizeof(const char *));
    char *big, *value;
    int i;

    (void)state;
    /* oversize: refused by its length before any reading */
    big = apr_palloc(pool, SCEP_HOOK_ANSWER_MAX + 2);
    memset(big, ' ', SCEP_HOOK_ANSWER_MAX + 1);
    memcpy(big, "{\"allow\":true}", 14);
    big[SCEP_HOOK_ANSWER_MAX + 1] = '\0';
    assert_int_equal(parse(big, &a), SCEP_HOOK_UNAVAILABLE);
    assert_non_null(strstr(a.why, "exceeds"));
    big[SCEP_HOOK_ANSWER_MAX] = '\0';
    assert_int_equal(parse(big, &a), SCEP_HOOK_ALLOW);
    /* a value at the limit passes, one byte more does not */
    value = apr_palloc(pool, SCEP_HOOK_VALUE_MAX + 2);
    memset(value, 'a', SCEP_HOOK_VALUE_MAX + 1);
    value[SCEP_HOOK_VALUE_MAX] = '\0';
    assert_int_equal(parse(apr_pstrcat(pool, "{\"allow\":true,\"identity\":{\"CN\":\"", value,
                                       "\"}}", NULL), &a), SCEP_HOOK_ALLOW);
    value[SCEP_HOOK_VALUE_MAX] = 'a';
    value[SCEP_HOOK_VALUE_MAX + 1] = '\0';
    assert_int_equal(parse(apr_pstrcat(pool, "{\"allow\":true,\"identity\":{\"CN\":\"", value,
                                       "\"}}", NULL), &a), SCEP_HOOK_UNAVAILABLE);
    /* at most SCEP_HOOK_VALUES_MAX values */
    for (i = 0; i <= SCEP_HOOK_VALUES_MAX; i++) {
        APR_ARRAY_PUSH(parts, const char *) = i ? ",\"x\"" : "\"x\"";
    }
    assert_int_equal(parse(apr_pstrcat(pool, "{\"allow\":true,\"identity\":{\"dNSName\":[",
                                       apr_array_pstrcat(pool, parts, 0), "]}}", NULL), &a),
                     SCEP_HOOK_UNAVAILABLE);
    (void)apr_array_pop(parts);
    assert_int_equal(parse(apr_pstrcat(pool, "{\"allow\":true,\"identity\":{\"dNSName\":[",
                                       apr_array_pstrcat(pool, parts, 0), "]}}", NULL), &a),
                     SCEP_HOOK_ALLOW);
}

static scep_csr_t *fake_csr(void)
{
    scep_csr_t *csr = apr_pcalloc(pool, sizeof(*csr));
    scep_csr_san_t *san;

    csr->der = (const unsigned char *)"\x30\x03\x02\x01\x00";
    csr->der_len = 5;
    csr->subject = "CN=John \"J\" Doe\x01\xff";
    csr->sans = apr_array_make(pool, 2, sizeof(scep_csr_san_t));
    san = &APR_ARRAY_PUSH(csr->sans, scep_csr_san_t);
    san->type = 1;                      /* GEN_EMAIL */
    san->value = "j@example.org";
    san = &APR_ARRAY_PUSH(csr->sans, scep_csr_san_t);
    san->type = 0;                      /* GEN_OTHERNAME */
    san->upn = 1;
    san->value = "j@corp.example";
    return csr;
}

static void test_request_document(void **state)
{
    scep_identity_t id = { SCEP_IDENTITY_USER, "user:j@example.org", "j@example.org",
                           SCEP_WHERE_RFC822_NAME, NULL, NULL, NULL };
    scep_hook_request_t req = { "TX1", "PKCSReq", "/scep", NULL, &id, "user:*@example.org",
                                "192.0.2.1", 0 };
    scep_csr_t *csr = fake_csr();
    char *challenge = apr_palloc(pool, 4097);
    apr_size_t len;
    const char *doc;

    (void)state;
    req.csr = csr;
    csr->challenge = "secret-challenge";
    csr->challenge_len = 16;
    doc = scep_webhook_request_document(pool, &req, &len);
    assert_int_equal(len, strlen(doc));
    assert_non_null(strstr(doc, "\"transactionID\":\"TX1\""));
    /* quotes and control characters escaped, a byte that is not UTF-8 replaced */
    assert_non_null(strstr(doc, "\"subject\":\"CN=John \\\"J\\\" Doe\\u0001\\ufffd\""));
    assert_non_null(strstr(doc, "{\"type\":\"UPN\",\"value\":\"j@corp.example\"}"));
    assert_non_null(strstr(doc, "\"identity\":{\"kind\":\"user\",\"key\":"
                                "\"user:j@example.org\",\"name\":\"j@example.org\"}"));
    assert_non_null(strstr(doc, "\"registrationFound\":true"));
    assert_non_null(strstr(doc, "\"csr\":\"MAMCAQA=\""));
    /* the challenge only where configured */
    assert_null(strstr(doc, "challenge"));
    req.send_challenge = 1;
    doc = scep_webhook_request_document(pool, &req, &len);
    assert_non_null(strstr(doc, "\"challenge\":\"secret-challenge\""));
    /* an Intune-sized challenge goes as it is */
    memset(challenge, 'Q', 4096);
    challenge[4096] = '\0';
    csr->challenge = challenge;
    csr->challenge_len = 4096;
    doc = scep_webhook_request_document(pool, &req, &len);
    assert_non_null(strstr(doc, apr_pstrcat(pool, "\"challenge\":\"", challenge, "\"",
                                            NULL)));
    /* one that is not UTF-8 goes in base64, byte for byte */
    csr->challenge = "\xff\x00\x01";
    csr->challenge_len = 3;
    doc = scep_webhook_request_document(pool, &req, &len);
    assert_non_null(strstr(doc, "\"challengeBase64\":\"/wAB\""));
    req.identity = NULL;
    req.registration = NULL;
    doc = scep_webhook_request_document(pool, &req, &len);
    assert_non_null(strstr(doc, "\"identity\":null,\"registrationFound\":false"));
}

static void test_event_document(void **state)
{
    scep_hook_event_t ev = { SCEP_HOOK_EVENT_ISSUED, 1700000000, "TX1", "/scep", "CN=a",
                             "0A", "a.example.org", "192.0.2.1", NULL };
    apr_size_t len;
    const char *doc;

    (void)state;
    doc = scep_webhook_event_document(pool, &ev, &len);
    assert_string_equal(doc, "{\"version\":1,\"event\":\"issued\",\"time\":"
                             "\"2023-11-14T22:13:20Z\",\"transactionID\":\"TX1\","
                             "\"endpoint\":\"/scep\",\"subject\":\"CN=a\",\"serial\":\"0A\","
                             "\"identity\":\"a.example.org\",\"clientAddress\":"
                             "\"192.0.2.1\",\"reason\":null}");
}

static const char *write_file(const char *text, mode_t mode)
{
    char *path = apr_psprintf(pool, "/tmp/test_webhook_secret.%ld", (long)getpid());
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

static void test_secret_file(void **state)
{
    scep_hook_conf_t conf;
    const char *err = NULL;

    (void)state;
    scep_webhook_defaults(&conf);
    conf.secret_file = write_file("0123456789abcdef-secret\n", 0600);
    assert_int_equal(scep_webhook_load_secret(pool, &conf, &err), APR_SUCCESS);
    assert_int_equal(conf.secret_len, 23);
    assert_memory_equal(conf.secret, "0123456789abcdef-secret", 23);
    conf.secret_file = write_file("0123456789abcdef-secret\n", 0644);
    assert_int_equal(scep_webhook_load_secret(pool, &conf, &err), APR_EINVAL);
    assert_non_null(strstr(err, "0600 or 0400"));
    conf.secret_file = write_file("short\n", 0400);
    assert_int_equal(scep_webhook_load_secret(pool, &conf, &err), APR_EINVAL);
    assert_non_null(strstr(err, "holds 5 bytes"));
    remove(conf.secret_file);
}

/* A validator that accepts the connection and never answers: the verdict is
 * "unavailable" within the timeout, not after the client's patience. */
static void test_validator_timeout(void **state)
{
    apr_socket_t *listener;
    apr_sockaddr_t *sa;
    scep_hook_conf_t conf;
    scep_hook_request_t req = { "TX1", "PKCSReq", "/scep", NULL, NULL, NULL, "127.0.0.1", 0 };
    scep_hook_answer_t answer;
    apr_time_t started;

    (void)state;
    assert_int_equal(apr_sockaddr_info_get(&sa, "127.0.0.1", APR_INET, 0, 0, pool),
                     APR_SUCCESS);
    assert_int_equal(apr_socket_create(&listener, APR_INET, SOCK_STREAM, APR_PROTO_TCP, pool),
                     APR_SUCCESS);
    assert_int_equal(apr_socket_bind(listener, sa), APR_SUCCESS);
    assert_int_equal(apr_socket_listen(listener, 8), APR_SUCCESS);
    assert_int_equal(apr_socket_addr_get(&sa, APR_LOCAL, listener), APR_SUCCESS);
    scep_webhook_defaults(&conf);
    conf.url = apr_psprintf(pool, "http://127.0.0.1:%d/validate", sa->port);
    conf.secret = (const unsigned char *)"0123456789abcdef-secret";
    conf.secret_len = 23;
    conf.timeout_ms = 300;
    req.csr = fake_csr();
    started = apr_time_now();
    scep_webhook_validate(pool, &conf, &req, 1700000000, &answer);
    assert_int_equal(answer.verdict, SCEP_HOOK_UNAVAILABLE);
    assert_non_null(strstr(answer.why, "no answer within 300 ms"));
    assert_true(apr_time_now() - started < apr_time_from_msec(1500));
    apr_socket_close(listener);
    /* nobody listening any more: unavailable at once */
    scep_webhook_validate(pool, &conf, &req, 1700000000, &answer);
    assert_int_equal(answer.verdict, SCEP_HOOK_UNAVAILABLE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signature),
        cmocka_unit_test(test_answer_allow_deny),
        cmocka_unit_test(test_answer_identity),
        cmocka_unit_test(test_answer_garbage),
        cmocka_unit_test(test_answer_bounds),
        cmocka_unit_test(test_request_document),
        cmocka_unit_test(test_event_document),
        cmocka_unit_test(test_secret_file),
        cmocka_unit_test(test_validator_timeout),
    };
    int failed;

    apr_initialize();
    apr_pool_create(&pool, NULL);
    scep_forward_global_init();
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    apr_pool_destroy(pool);
    apr_terminate();
    return failed;
}

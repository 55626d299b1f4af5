/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the shared helpers: the strict reading of the query strings of the
 * operator-facing handlers (issue 15, point 4: a parameter that cannot be read refuses
 * the request, never counts as absent). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>

#include "scep_util.h"

static apr_pool_t *pool;

enum { FQDN, PROFILE, TTL, FORMAT, NPARAMS };

static void reset(scep_param_t *params)
{
    static const char *const names[NPARAMS] = { "fqdn", "profile", "ttl", "format" };
    int i;

    for (i = 0; i < NPARAMS; i++) {
        params[i].name = names[i];
        params[i].value = "untouched";
    }
}

/* Parses `query`; on failure checks that no value was set and that the reason names
 * what it should. */
static apr_status_t parse(scep_param_t *params, const char *query, const char *why_has)
{
    const char *why = "unset";
    apr_status_t rv;
    int i;

    reset(params);
    rv = scep_util_params_parse(pool, query, params, NPARAMS, &why);
    if (rv == APR_SUCCESS) {
        assert_null(why);
        return rv;
    }
    assert_non_null(why);
    assert_null(strchr(why, '\n'));
    if (why_has && !strstr(why, why_has)) {
        fail_msg("reason '%s' lacks '%s' (query '%s')", why, why_has, query);
    }
    for (i = 0; i < NPARAMS; i++) {
        assert_string_equal(params[i].value, "untouched");
    }
    return rv;
}

static void test_params_point4_good(void **state)
{
    scep_param_t params[NPARAMS];

    (void)state;
    assert_int_equal(parse(params, "fqdn=rtr7.example.org&ttl=60", NULL), APR_SUCCESS);
    assert_string_equal(params[FQDN].value, "rtr7.example.org");
    assert_string_equal(params[TTL].value, "60");
    assert_null(params[PROFILE].value);
    assert_null(params[FORMAT].value);

    /* names in any letter case; escapes in any case; '+' stays '+' */
    assert_int_equal(parse(params, "FQDN=rtr8%2Eexample.org&Profile=a%2bb+c&FORMAT=json",
                           NULL), APR_SUCCESS);
    assert_string_equal(params[FQDN].value, "rtr8.example.org");
    assert_string_equal(params[PROFILE].value, "a+b+c");
    assert_string_equal(params[FORMAT].value, "json");

    /* an '=' inside a value belongs to the value */
    assert_int_equal(parse(params, "profile=a=b", NULL), APR_SUCCESS);
    assert_string_equal(params[PROFILE].value, "a=b");

    /* nothing at all is no parameter, not an error */
    assert_int_equal(parse(params, NULL, NULL), APR_SUCCESS);
    assert_null(params[FQDN].value);
    assert_int_equal(parse(params, "", NULL), APR_SUCCESS);
    assert_null(params[FQDN].value);
}

/* Each way a present parameter can be unreadable is an error, never "absent". */
static void test_params_point4_refused(void **state)
{
    static const struct { const char *query, *why_has; } cases[] = {
        { "fqdn=x.example.org%zz", "'fqdn' has a bad" },
        { "fqdn=x.example.org%", "'fqdn' has a bad" },
        { "fqdn=x.example.org%2", "'fqdn' has a bad" },
        { "fqdn=x.example.org%g0", "'fqdn' has a bad" },
        { "ttl=60%00", "'ttl' holds an escaped NUL" },
        { "fqdn=x%00.example.org", "'fqdn' holds an escaped NUL" },
        { "fqdn=a.example.org&fqdn=b.example.org", "'fqdn' given twice" },
        { "fqdn=a.example.org&FQDN=a.example.org", "'fqdn' given twice" },
        { "fdqn=a.example.org", "unknown parameter 'fdqn'" },
        { "fq%7Adn=a.example.org", "unknown parameter 'fq%7Adn'" },
        { "fqdn=a.example.org&bind=no", "unknown parameter 'bind'" },
        { "=x", "unknown parameter ''" },
        { "fqdn", "'fqdn' has no value" },
        { "fqdn=", "'fqdn' has no value" },
        { "fqdn=a.example.org&&ttl=60", "empty parameter" },
        { "&fqdn=a.example.org", "empty parameter" },
        { "fqdn=a.example.org&", "empty parameter" },
        { "&", "empty parameter" },
    };
    scep_param_t params[NPARAMS];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (parse(params, cases[i].query, cases[i].why_has) != APR_EINVAL) {
            fail_msg("query '%s' was accepted", cases[i].query);
        }
    }
}

/* An unknown name from the wire is shown printable and short, never raw. */
static void test_params_point4_unknown_name_shown_safely(void **state)
{
    scep_param_t params[NPARAMS];
    const char *why;
    char query[300];

    (void)state;
    reset(params);
    assert_int_equal(scep_util_params_parse(pool, "a\x01\x7f\xc3\xa9'b=1", params, NPARAMS,
                                            &why),
                     APR_EINVAL);
    assert_string_equal(why, "unknown parameter 'a?????b'");
    memset(query, 'n', sizeof(query));
    memcpy(query + 200, "=1", 3);
    assert_int_equal(scep_util_params_parse(pool, query, params, NPARAMS, &why), APR_EINVAL);
    assert_true(strlen(why) < 60);
    assert_non_null(strstr(why, "...'"));
}

/* Issue 17 review F2: an identity may hold quotes and backslashes; in JSON they must stay
 * inside the one string, never close it and add a member. */
static void test_json_string_f2(void **state)
{
    (void)state;
    assert_string_equal(scep_util_json_string(pool, NULL), "null");
    assert_string_equal(scep_util_json_string(pool, ""), "\"\"");
    assert_string_equal(scep_util_json_string(pool, "name:x\",\"challenge\":\"AAAA"),
                        "\"name:x\\\",\\\"challenge\\\":\\\"AAAA\"");
    assert_string_equal(scep_util_json_string(pool, "name:a\\b"), "\"name:a\\\\b\"");
    assert_string_equal(scep_util_json_string(pool, "a\nb\tc\x01\x7f"),
                        "\"a\\nb\\tc\\u0001\\u007f\"");
    assert_string_equal(scep_util_json_string(pool, "Ger\xc3\xa4t"), "\"Ger\xc3\xa4t\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_point4_good),
        cmocka_unit_test(test_params_point4_refused),
        cmocka_unit_test(test_params_point4_unknown_name_shown_safely),
        cmocka_unit_test(test_json_string_f2),
    };
    int rc;

    apr_initialize();
    apr_pool_create(&pool, NULL);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_pool_destroy(pool);
    apr_terminate();
    return rc;
}

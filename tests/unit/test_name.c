/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the identity kinds' rules in scep_name (issue 17, point 1): parsing
 * "kind:value" into a canonical registration key, refusing what no log, listing or
 * certificate should show (control characters, invalid UTF-8, overlong values),
 * MAC spellings, user domains, which wildcard covers which key, and the same rules in
 * scepreg's CSV import. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "scep_import.h"
#include "scep_name.h"

static apr_pool_t *pool;

static void expect_key(const char *text, int wildcard, const char *want)
{
    const char *why = NULL;
    const char *got = scep_name_key(pool, text, wildcard, &why);

    if (want && (!got || strcmp(got, want) != 0)) {
        fail_msg("'%s': want '%s', got '%s' (%s)", text, want, got ? got : "(null)",
                 why ? why : "");
    }
    if (!want && got) {
        fail_msg("'%s': want a refusal, got '%s'", text, got);
    }
    if (!want && (!why || !*why)) {
        fail_msg("'%s': refused without a reason", text);
    }
}

static void test_keys_of_every_kind(void **state)
{
    (void)state;
    expect_key("Host.Example.COM.", 0, "host.example.com");
    expect_key("host:Host.Example.com", 0, "host.example.com");
    expect_key("name:John's iPhone", 0, "name:John's iPhone");
    expect_key("name:john's iphone", 0, "name:john's iphone");
    expect_key("name:Gerät von Jürgen", 0, "name:Gerät von Jürgen");
    expect_key("id:3F2504E0-4F89-11D3-9A0C-0305E82C3301", 0,
               "id:3F2504E0-4F89-11D3-9A0C-0305E82C3301");
    expect_key("id:C02XK1ABJGH5", 0, "id:C02XK1ABJGH5");
    expect_key("user:Alice@EXAMPLE.org", 0, "user:Alice@example.org");
    expect_key("user:alice.smith@corp.example.com", 0, "user:alice.smith@corp.example.com");
    expect_key("role:admin", 0, NULL);
    expect_key("user:alice", 0, NULL);
    expect_key("user:@example.org", 0, NULL);
    expect_key("user:a@b@example.org", 0, NULL);
    expect_key("user:alice@exa mple.org", 0, NULL);
    expect_key("name:", 0, NULL);
    expect_key("id:", 0, NULL);
    expect_key(NULL, 0, NULL);
}

static void test_mac_spellings_are_one_key(void **state)
{
    static const char *const spellings[] = {
        "id:aa:bb:cc:dd:ee:0f", "id:AA:BB:CC:DD:EE:0F", "id:AA-BB-CC-DD-EE-0F",
        "id:aabb.ccdd.ee0f", "id:AABBCCDDEE0F", "id:aAbBcCdDeE0f"
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(spellings) / sizeof(spellings[0]); i++) {
        expect_key(spellings[i], 0, "id:aa:bb:cc:dd:ee:0f");
    }
    /* not a MAC: kept exactly */
    expect_key("id:AA:BB-CC:DD:EE:0F", 0, "id:AA:BB-CC:DD:EE:0F");
    expect_key("id:AABBCCDDEE0G", 0, "id:AABBCCDDEE0G");
    expect_key("id:AABB.CCDD-EE0F", 0, "id:AABB.CCDD-EE0F");
}

static void test_bad_text_refused_with_reason(void **state)
{
    const char *why = NULL;
    char *long_name = apr_palloc(pool, 10000 + 6);

    (void)state;
    expect_key("name:tab\there", 0, NULL);
    expect_key("name:new\nline", 0, NULL);
    expect_key("name:del\x7f", 0, NULL);
    expect_key("name:c1 \xc2\x85 next line", 0, NULL);
    expect_key("name:c1 \xc2\x9f", 0, NULL);
    expect_key("name:nbsp \xc2\xa0 is text", 0, "name:nbsp \xc2\xa0 is text");
    expect_key("name:bad \xff utf8", 0, NULL);
    expect_key("name:overlong \xc0\xaf", 0, NULL);
    expect_key("name:overlong \xe0\x80\xaf", 0, NULL);
    expect_key("name:surrogate \xed\xa0\x80", 0, NULL);
    expect_key("name:past max \xf4\x90\x80\x80", 0, NULL);
    expect_key("name:cut \xe2\x82", 0, NULL);
    expect_key("user:al\x01ice@example.org", 0, NULL);
    expect_key("id:\x1b[31m", 0, NULL);

    memcpy(long_name, "name:", 5);
    memset(long_name + 5, 'x', 10000);
    long_name[10005] = '\0';
    assert_null(scep_name_key(pool, long_name, 0, &why));
    assert_non_null(strstr(why, "10000 bytes long, more than 256"));
    long_name[5 + 256] = '\0';
    assert_non_null(scep_name_key(pool, long_name, 0, NULL));
    long_name[5 + 256] = 'x';
    long_name[5 + 257] = '\0';
    assert_null(scep_name_key(pool, long_name, 0, NULL));

    why = NULL;
    assert_null(scep_name_identity_key(pool, SCEP_IDENTITY_DEVICE_NAME, "a\x01", 0, &why));
    assert_string_equal(why, "it holds the control character 0x01 at byte 1");
    assert_null(scep_name_identity_key(pool, SCEP_IDENTITY_DEVICE_NAME, NULL, 0, &why));
    assert_string_equal(why, "it cannot be read");
}

/* Issue 17 review F8: characters that show nothing or reorder what follows make one
 * name look like another in a listing, a log or a certificate; noncharacters are no
 * text at all. */
static void test_invisible_and_reordering_refused_f8(void **state)
{
    static const char *const bad[] = {
        "\xc2\xad",                                     /* U+00AD soft hyphen */
        "\xe2\x80\x8b", "\xe2\x80\x8c", "\xe2\x80\x8d", /* U+200B..U+200D */
        "\xe2\x80\x8e", "\xe2\x80\x8f",                 /* LRM, RLM */
        "\xe2\x80\xa8", "\xe2\x80\xa9",                 /* line, paragraph separator */
        "\xe2\x80\xaa", "\xe2\x80\xae",                 /* U+202A, U+202E (RLO) */
        "\xe2\x81\xa0", "\xe2\x81\xa4",                 /* U+2060, U+2064 */
        "\xe2\x81\xa6", "\xe2\x81\xa9",                 /* U+2066, U+2069 */
        "\xe2\x81\xaf", "\xd8\x9c",                     /* U+206F, U+061C (ALM) */
        "\xef\xbb\xbf",                                 /* U+FEFF */
        "\xef\xb7\x90", "\xef\xb7\xaf",                 /* U+FDD0, U+FDEF */
        "\xef\xbf\xbe", "\xef\xbf\xbf",                 /* U+FFFE, U+FFFF */
        "\xf0\x9f\xbf\xbe", "\xf4\x8f\xbf\xbf",         /* U+1FFFE, U+10FFFF */
    };
    static const char *const good[] = {
        "\xe2\x80\x8a",                                 /* U+200A hair space: visible gap */
        "\xe2\x80\x90",                                 /* U+2010 hyphen */
        "\xef\xb7\x8f", "\xef\xb7\xb0",                 /* U+FDCF, U+FDF0 */
        "\xef\xbf\xbd",                                 /* U+FFFD */
        "\xf0\x9f\xbf\xbd",                             /* U+1FFFD */
    };
    const char *why;
    apr_size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *name = apr_pstrcat(pool, "name:John's", bad[i], " iPhone", NULL);

        why = NULL;
        assert_null(scep_name_key(pool, name, 0, &why));
        assert_non_null(strstr(why, " U+"));
        assert_non_null(strstr(why, "at byte 6"));
        assert_null(scep_name_key(pool, apr_pstrcat(pool, "user:al", bad[i],
                                                    "ice@example.org", NULL), 0, NULL));
        assert_null(scep_name_identity_key(pool, SCEP_IDENTITY_DEVICE_ID,
                                           apr_pstrcat(pool, bad[i], "x", NULL), 0, NULL));
    }
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        const char *name = apr_pstrcat(pool, "name:a", good[i], "b", NULL);

        expect_key(name, 0, name);
    }
    assert_null(scep_name_key(pool, "name:John\xe2\x80\x8b", 0, &why));
    assert_string_equal(why, "it holds the invisible character U+200B at byte 4");
    assert_null(scep_name_key(pool, "name:\xe2\x80\xae" "enohPi", 0, &why));
    assert_string_equal(why, "it holds the bidirectional control U+202E at byte 0");
    assert_null(scep_name_key(pool, "name:a\xe2\x80\xa8", 0, &why));
    assert_string_equal(why, "it holds the line or paragraph separator U+2028 at byte 1");
    assert_null(scep_name_key(pool, "name:x\xef\xbf\xbe", 0, &why));
    assert_string_equal(why, "it holds the noncharacter U+FFFE at byte 1");
}

static void test_wildcards(void **state)
{
    (void)state;
    expect_key("name:*", 1, "name:*");
    expect_key("id:*", 1, "id:*");
    expect_key("user:*", 1, "user:*");
    expect_key("user:*@Example.ORG", 1, "user:*@example.org");
    /* a request's value is never a wildcard */
    expect_key("name:*", 0, NULL);
    expect_key("user:*@example.org", 0, NULL);
    assert_true(scep_name_is_wildcard("*"));
    assert_true(scep_name_is_wildcard("*.example.org"));
    assert_true(scep_name_is_wildcard("name:*"));
    assert_true(scep_name_is_wildcard("user:*@example.org"));
    assert_false(scep_name_is_wildcard("name:*Star"));
    assert_false(scep_name_is_wildcard("user:alice@example.org"));
    assert_false(scep_name_is_wildcard("host.example.org"));
}

static void test_matching_across_kinds(void **state)
{
    static const struct { const char *key, *fqdn; int want; } cases[] = {
        { "user:*@example.org", "user:Alice@example.org", 1 },
        { "user:*@example.org", "user:alice@example.org.evil", 0 },
        { "user:*@example.org", "user:alice@sub.example.org", 0 },
        { "user:*@example.org", "user:alice@evilexample.org", 0 },
        { "user:*@example.org", "user:@example.org", 0 },
        { "user:*", "user:alice@example.org", 1 },
        { "user:*", "name:alice@example.org", 0 },
        { "name:*", "name:John's iPhone", 1 },
        { "name:*", "id:1234", 0 },
        { "id:*", "id:1234", 1 },
        { "name:John's iPhone", "name:john's iphone", 0 },
        /* a host wildcard covers hosts only */
        { "*", "name:John's iPhone", 0 },
        { "*", "user:alice@example.org", 0 },
        { "*.example.org", "user:alice@example.org", 0 },
        { "*", "host.example.org", 1 },
        { "name:*", "host.example.org", 0 },
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (scep_name_matches(cases[i].key, cases[i].fqdn) != cases[i].want) {
            fail_msg("key '%s', fqdn '%s': want %d", cases[i].key, cases[i].fqdn,
                     cases[i].want);
        }
    }
}

static void test_kind_and_value_of_keys(void **state)
{
    (void)state;
    assert_int_equal(scep_name_key_kind("host.example.org"), SCEP_IDENTITY_HOST);
    assert_int_equal(scep_name_key_kind("name:x"), SCEP_IDENTITY_DEVICE_NAME);
    assert_int_equal(scep_name_key_kind("id:x"), SCEP_IDENTITY_DEVICE_ID);
    assert_int_equal(scep_name_key_kind("user:a@b.c"), SCEP_IDENTITY_USER);
    assert_string_equal(scep_name_key_value("user:a@b.c"), "a@b.c");
    assert_string_equal(scep_name_key_value("host.example.org"), "host.example.org");
    assert_string_equal(scep_name_kind_name(SCEP_IDENTITY_DEVICE_ID), "device-id");
    assert_string_equal(scep_name_kind_name(SCEP_IDENTITY_HOST), "host");
}

/* scepreg -I: a CSV line of each kind, and the bad ones refused before storage */
static void import_expect(const char *line, const char *key, const char *why_has)
{
    scep_import_row_t row;
    const char *why = NULL;
    int data_lines = 1;
    int rc = scep_import_line(pool, apr_pstrdup(pool, line), &data_lines, 1800000000, &row,
                              &why);

    if (key && (rc != SCEP_IMPORT_ROW || strcmp(row.fqdn, key) != 0)) {
        fail_msg("'%s': want the row '%s' (%s)", line, key, why ? why : "");
    }
    if (!key && (rc != SCEP_IMPORT_REJECT || !why || !strstr(why, why_has))) {
        fail_msg("'%s': want a refusal saying '%s', got %d '%s'", line, why_has, rc,
                 why ? why : "");
    }
}

static void test_import_kinds(void **state)
{
    char *xs = apr_palloc(pool, 10001);

    (void)state;
    import_expect("\"name:John's iPhone\",,,pw", "name:John's iPhone", NULL);
    import_expect("id:AA-BB-CC-DD-EE-FF,,,pw", "id:aa:bb:cc:dd:ee:ff", NULL);
    import_expect("user:Alice@EXAMPLE.org,,,pw", "user:Alice@example.org", NULL);
    import_expect("user:*@Example.org,,,pw", "user:*@example.org", NULL);
    import_expect("router.example.com,,,pw", "router.example.com", NULL);
    import_expect("name:bell\x07,,,pw", NULL, "control character");
    import_expect("name:bidi\xe2\x80\xae,,,pw", NULL, "bidirectional control U+202E");
    import_expect("name:bad \xff,,,pw", NULL, "not valid UTF-8");
    import_expect("user:alice,,,pw", NULL, "one '@'");
    import_expect("role:admin,,,pw", NULL, "none of host, name, id, user");
    memset(xs, 'x', 10000);
    xs[10000] = '\0';
    import_expect(apr_pstrcat(pool, "name:", xs, ",,,pw", NULL), NULL, "more than 256");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_of_every_kind),
        cmocka_unit_test(test_mac_spellings_are_one_key),
        cmocka_unit_test(test_bad_text_refused_with_reason),
        cmocka_unit_test(test_invisible_and_reordering_refused_f8),
        cmocka_unit_test(test_wildcards),
        cmocka_unit_test(test_matching_across_kinds),
        cmocka_unit_test(test_kind_and_value_of_keys),
        cmocka_unit_test(test_import_kinds),
    };
    int rc;

    apr_initialize();
    apr_pool_create(&pool, NULL);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_pool_destroy(pool);
    apr_terminate();
    return rc;
}

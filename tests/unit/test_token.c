/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the pkcs11: URIs a configuration may hold (scep_token_uri_check): a PIN
 * in configuration text is refused wherever the URI puts it, attributes that would be
 * ignored (and so could pick another token) are refused, and malformed escapes,
 * characters and lengths are refused rather than guessed at. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "scep_token.h"

static apr_pool_t *pool;

static void test_accepted(void **state)
{
    static const char *const good[] = {
        "pkcs11:token=scep-ca;object=ca-key;type=private",
        "pkcs11:object=ca-key",
        "pkcs11:id=%01%02",
        "pkcs11:id=%00%01",                 /* an id is bytes: a zero byte is one of them */
        "pkcs11:serial=0123;id=%01?pin-source=file:/etc/scep/pin",
        "pkcs11:token=My%20CA;object=k?module-path=/usr/lib/p11.so&pin-source=/etc/scep/pin",
        "pkcs11:manufacturer=SoftHSM%20project;model=SoftHSM%20v2;object=k;x-vendor=1",
        "pkcs11:object=k?pin-source=file:///etc/scep/pin",      /* RFC 8089's forms */
        "pkcs11:object=k?pin-source=file://localhost/etc/scep/pin",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        const char *why = scep_token_uri_check(pool, good[i]);

        if (why) {
            fail_msg("'%s' refused: %s", good[i], why);
        }
    }
}

/* uri, what the refusal must say */
static const char *const bad[][2] = {
    { "pkcs11:object=k;pin-value=1234", "pin-value" },
    { "pkcs11:object=k?pin-value=1234", "pin-value" },
    { "pkcs11:object=k?module-path=/m.so&pin-value=1234", "pin-value" },
    { "pkcs11:token=ca", "names no object" },
    { "pkcs11:", "names no object" },
    { "pkcs11:slot-id=1;object=k", "'slot-id'" },
    { "pkcs11:library-description=x;object=k", "'library-description'" },
    { "pkcs11:object=k;object=l", "object twice" },
    { "pkcs11:token=a;token=b;object=k", "token twice" },
    { "pkcs11:object=k%2", "percent escape" },
    { "pkcs11:object=k%zz", "percent escape" },
    { "pkcs11:object=k%00", "percent escape" },
    { "pkcs11:id=%01;object=k%00", "percent escape" },
    { "pkcs11:object=a b", "does not allow unescaped" },
    { "pkcs11:object=a#b", "does not allow unescaped" },
    { "pkcs11:object=a\001b", "does not allow unescaped" },
    { "pkcs11:object=caf\303\251", "does not allow unescaped" },
    { "pkcs11:object", "without '='" },
    { "pkcs11:;object=k", "empty attribute" },
    { "pkcs11:object=k?pin-source=relative/pin", "pin-source" },
    { "pkcs11:object=k?pin-source=https://x/pin", "pin-source" },
    { "pkcs11:object=k?module-path=libsofthsm2.so", "module-path" },
    { "pkcs11:object=k?unknown=1", "'unknown'" },
    /* a file on another host, or two PIN sources or modules of which one would be ignored */
    { "pkcs11:object=k?pin-source=file://pinhost/etc/scep/pin", "pin-source" },
    { "pkcs11:object=k?pin-source=//pinhost/etc/scep/pin", "pin-source" },
    { "pkcs11:object=k?pin-source=/a&pin-source=/b", "pin-source twice" },
    { "pkcs11:object=k?module-path=/a.so&module-path=/b.so", "module-path twice" },
    /* the login record keeps the pin-source path on one line: a newline in it, or a path
     * too long for the record, would make a refused PIN look new at every start */
    { "pkcs11:object=k?pin-source=/etc/scep/pin%0A", "control character" },
    { "pkcs11:object=k?pin-source=/etc/scep%09pin", "control character" },
    /* p11-kit's registry names are not resolved: not silently ignored either */
    { "pkcs11:object=k?module-name=softhsm2", "module-name" },
    { "file:/etc/scep/ca.key", "pkcs11:" },
};

static void test_refused(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = scep_token_uri_check(pool, bad[i][0]);

        if (!why || !strstr(why, bad[i][1])) {
            fail_msg("'%s': %s, expected a refusal saying '%s'", bad[i][0],
                     why ? why : "accepted", bad[i][1]);
        }
    }
}

static void test_length_bounded(void **state)
{
    char *uri = apr_palloc(pool, 5000);
    const char *why;

    (void)state;
    memcpy(uri, "pkcs11:object=", 14);
    memset(uri + 14, 'k', 5000 - 15);
    uri[4999] = '\0';
    why = scep_token_uri_check(pool, uri);
    assert_non_null(why);
    assert_non_null(strstr(why, "longer than"));
}

static void test_pin_path_bounded(void **state)
{
    char *uri = apr_palloc(pool, 700);
    const char *why;

    (void)state;
    memcpy(uri, "pkcs11:object=k?pin-source=/", 29);
    memset(uri + strlen(uri), 'p', 512);
    uri[28 + 512] = '\0';
    why = scep_token_uri_check(pool, uri);
    assert_non_null(why);
    assert_non_null(strstr(why, "pin-source path longer than 512"));
    uri[28 + 511] = '\0';
    assert_null(scep_token_uri_check(pool, uri));
}

/* a refusal names no PIN: the message goes to the error log */
static void test_refusal_quotes_no_pin(void **state)
{
    const char *why = scep_token_uri_check(pool, "pkcs11:object=k;pin-value=s3cr3t-PIN");

    (void)state;
    assert_non_null(why);
    assert_null(strstr(why, "s3cr3t-PIN"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_length_bounded),
        cmocka_unit_test(test_pin_path_bounded),
        cmocka_unit_test(test_refusal_quotes_no_pin),
    };
    int rc;

    apr_initialize();
    apr_pool_create(&pool, NULL);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_pool_destroy(pool);
    apr_terminate();
    return rc;
}

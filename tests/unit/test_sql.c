/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of scep_sql's parts that need no server: what a connection string shows in
 * logs, the value forms, and the schema steps kept in docs/sql for DBAs (the tests with a
 * server are test_store_sql's). */
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
#include <apr_file_io.h>

#include "scep_sql.h"

static apr_pool_t *pool;

static void test_conninfo_hides_passwords(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        { "host=db1 password=s3cret user=scep", "host=db1 password=*** user=scep" },
        { "password = 'a b\\' c' dbname=scep", "password =*** dbname=scep" },
        { "PASSWORD=x sslpassword=y", "PASSWORD=*** sslpassword=***" },
        { "password=abc\\ s3cret user=scep", "password=*** user=scep" },
        { "host=a,b port=1,2 target_session_attrs=read-write",
          "host=a,b port=1,2 target_session_attrs=read-write" },
        { "postgresql://scep:s3cret@db1:5432/scep", "postgresql://scep:***@db1:5432/scep" },
        { "postgres://scep@db1/scep", "postgres://scep@db1/scep" },
        { "", "" },
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *shown = scep_sql_conninfo_shown(pool, cases[i].in);

        assert_string_equal(shown, cases[i].out);
        assert_null(strstr(shown, "s3cret"));
    }
}

static void test_values(void **state)
{
    apr_size_t len;
    const unsigned char *bytes;

    (void)state;
    assert_string_equal(scep_sql_i64(pool, -42), "-42");
    assert_int_equal(scep_sql_to_i64("1700000000", 7), 1700000000);
    assert_int_equal(scep_sql_to_i64(NULL, 7), 7);
    assert_int_equal(scep_sql_to_i64("12x", 7), 7);        /* not a number: not a zero */
    assert_int_equal(scep_sql_to_i64("", 7), 7);
    bytes = scep_sql_unhex(pool, "00fFa5", &len);
    assert_non_null(bytes);
    assert_int_equal(len, 3);
    assert_memory_equal(bytes, "\x00\xff\xa5", 3);
    assert_null(scep_sql_unhex(pool, "abc", &len));         /* odd length */
    assert_null(scep_sql_unhex(pool, "zz", &len));
    assert_null(scep_sql_unhex(pool, "\\x00", &len));       /* bytea's own text form */
    assert_string_equal(scep_sql_hex(pool, "\x01\xab", 2), "01ab");
}

/* docs/sql/NNN-*.sql is a comment header and then exactly the step's SQL. */
static void test_docs_hold_the_schema(void **state)
{
    int version;

    (void)state;
    assert_null(scep_sql_migration(0));
    assert_null(scep_sql_migration(SCEP_SQL_SCHEMA_VERSION + 1));
    for (version = 1; version <= SCEP_SQL_SCHEMA_VERSION; version++) {
        const char *sql = scep_sql_migration(version), *body;
        char *text = NULL;
        apr_file_t *f;
        apr_finfo_t info;
        apr_size_t n;
        /* automake's harness exports srcdir (the tree holding docs/, also in VPATH builds) */
        const char *srcdir = getenv("srcdir") ? getenv("srcdir") : ".";
        const char *path = apr_psprintf(pool, "%s/docs/sql/%03d-%s.sql", srcdir, version,
                                        version == 1 ? "create" : "upgrade");

        assert_non_null(sql);
        if (apr_file_open(&f, path, APR_FOPEN_READ, 0, pool) != APR_SUCCESS) {
            fail_msg("%s is missing: write the step's SQL there for DBAs", path);
        }
        assert_int_equal(apr_file_info_get(&info, APR_FINFO_SIZE, f), APR_SUCCESS);
        n = (apr_size_t)info.size;
        text = apr_pcalloc(pool, n + 1);
        assert_int_equal(apr_file_read_full(f, text, n, &n), APR_SUCCESS);
        apr_file_close(f);
        for (body = text; strncmp(body, "--", 2) == 0 && strchr(body, '\n');) {
            body = strchr(body, '\n') + 1;
        }
        if (strcmp(body, sql) != 0) {
            fail_msg("%s differs from step %d in scep_sql.c", path, version);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conninfo_hides_passwords),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_docs_hold_the_schema),
    };
    int rc;

    apr_initialize();
    apr_pool_create(&pool, NULL);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_pool_destroy(pool);
    apr_terminate();
    return rc;
}

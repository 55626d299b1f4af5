/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the tools' PostgreSQL connection strings (scep_pgconf): every spelling of
 * a password libpq accepts is found (a command line shows it to every local user), a
 * --pg-file is refused where others could read its password or change it, and the
 * string shown in messages and logs hides the password wherever a URI may carry it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "scep_pgconf.h"
#include "scep_sql.h"

static apr_pool_t *pool;
static char folder[] = "/tmp/test_pgconf.XXXXXX";

static void test_secret_found(void **state)
{
    static const char *const with[] = {
        "host=db password=s3cret",
        "host=db  password = 's3 cret'",
        "PASSWORD=x dbname=scep",
        "host=db sslpassword=keypass",
        "postgresql://scep:s3cret@db/scep",
        "postgres://scep:@db",
        "postgresql://scep@db/scep?password=s3cret",
        "postgresql://db/scep?sslmode=require&password=s3cret",
        "postgresql://db/scep?%70assword=s3cret",
        "postgresql://db/scep?sslpassword=k",
        "postgresql://u?x:pw@db/scep",      /* libpq: user "u?x", password "pw" */
        "host=db oops",                     /* not key=value: not read, not trusted */
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(with) / sizeof(with[0]); i++) {
        if (!scep_pgconf_has_secret(with[i])) {
            fail_msg("a secret in '%s' was not found", with[i]);
        }
    }
}

static void test_no_secret(void **state)
{
    static const char *const without[] = {
        "host=db dbname=scep user=scep",
        "host=db1,db2 target_session_attrs=read-write dbname=scep",
        "host=db application_name='password=none'",
        "service=scep passfile=/etc/scep/pgpass",
        "postgresql://scep@db:5432/scep?sslmode=require",
        "postgresql://db/scep?passfile=/x",
        "",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(without) / sizeof(without[0]); i++) {
        if (scep_pgconf_has_secret(without[i])) {
            fail_msg("'%s' was taken for a secret", without[i]);
        }
    }
}

static void test_shown_hides_uri_query_password(void **state)
{
    const char *shown;

    (void)state;
    shown = scep_sql_conninfo_shown(pool, "postgresql://scep@db/scep?sslmode=require&"
                                    "password=s3cret&connect_timeout=5");
    assert_null(strstr(shown, "s3cret"));
    assert_string_equal(shown, "postgresql://scep@db/scep?sslmode=require&password=***&"
                        "connect_timeout=5");
    shown = scep_sql_conninfo_shown(pool, "postgresql://scep:s3cret@db/scep?%70assword=t0p");
    assert_string_equal(shown, "postgresql://scep:***@db/scep?%70assword=***");
    shown = scep_sql_conninfo_shown(pool, "postgres://db");
    assert_string_equal(shown, "postgres://db");
    shown = scep_sql_conninfo_shown(pool, "host=db password=s3cret dbname=scep");
    assert_null(strstr(shown, "s3cret"));
}

/* Writes `text` into a new file of the folder with `mode`; its path. */
static const char *file_with(const char *name, const char *text, mode_t mode)
{
    const char *path = apr_pstrcat(pool, folder, "/", name, NULL);
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

static void test_read_file(void **state)
{
    const char *conninfo, *why;
    const char *path;
    char big[SCEP_PGCONF_FILE_MAX + 2];

    (void)state;
    path = file_with("plain", "# the shared database\nhost=db dbname=scep\n\n  user=scep\n",
                     0644);
    assert_int_equal(scep_pgconf_read_file(pool, path, &conninfo, &why), APR_SUCCESS);
    assert_string_equal(conninfo, "host=db dbname=scep   user=scep");

    path = file_with("secret-600", "host=db password=s3cret\n", 0600);
    assert_int_equal(scep_pgconf_read_file(pool, path, &conninfo, &why), APR_SUCCESS);
    path = file_with("secret-400", "host=db password=s3cret\n", 0400);
    assert_int_equal(scep_pgconf_read_file(pool, path, &conninfo, &why), APR_SUCCESS);

    path = file_with("secret-640", "host=db password=s3cret\n", 0640);
    assert_int_not_equal(scep_pgconf_read_file(pool, path, &conninfo, &why), APR_SUCCESS);
    assert_null(conninfo);
    assert_non_null(strstr(why, "chmod 600"));
    assert_null(strstr(why, "s3cret"));
    path = file_with("secret-604", "postgresql://scep:s3cret@db/scep\n", 0604);
    assert_int_not_equal(scep_pgconf_read_file(pool, path, &conninfo, &why), APR_SUCCESS);

    /* whoever may write it chooses the server the tool talks to */
    path = file_with("writable", "host=db\n", 0666);
    assert_int_not_equal(scep_pgconf_read_file(pool, path, &conninfo, &why), APR_SUCCESS);
    assert_non_null(strstr(why, "changed by others"));

    path = file_with("empty", "# nothing\n\n", 0600);
    assert_int_not_equal(scep_pgconf_read_file(pool, path, &conninfo, &why), APR_SUCCESS);
    path = file_with("nul", "host=db\n", 0600);
    {
        FILE *f = fopen(path, "a");

        assert_non_null(f);
        fputc('\0', f);
        fclose(f);
    }
    assert_int_not_equal(scep_pgconf_read_file(pool, path, &conninfo, &why), APR_SUCCESS);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    path = file_with("big", big, 0600);
    assert_int_not_equal(scep_pgconf_read_file(pool, path, &conninfo, &why), APR_SUCCESS);
    assert_int_not_equal(scep_pgconf_read_file(pool, folder, &conninfo, &why), APR_SUCCESS);
    assert_int_not_equal(scep_pgconf_read_file(pool, "/nonexistent/pg.conf", &conninfo, &why),
                         APR_SUCCESS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secret_found),
        cmocka_unit_test(test_no_secret),
        cmocka_unit_test(test_shown_hides_uri_query_password),
        cmocka_unit_test(test_read_file),
    };
    int rc;

    apr_initialize();
    apr_pool_create(&pool, NULL);
    if (!mkdtemp(folder)) {
        return 1;
    }
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    (void)system(apr_pstrcat(pool, "rm -rf ", folder, NULL));
    apr_pool_destroy(pool);
    apr_terminate();
    return rc;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* sql_migrate: creates or upgrades mod_scep's schema in a PostgreSQL database with the
 * store's own scep_sql_migrate, for integration tests that need a database before
 * scepreg is at hand.
 *
 *   sql_migrate CONNINFO
 *
 * Prints "schema FROM -> TO" on stdout.  Exit 1 when the database cannot be reached or
 * upgraded (the reason on stderr), 2 on usage errors. */
#include <stdio.h>

#include <apr_general.h>

#include "scep_sql.h"

/* where the core said it, for a test log that someone reads after a failure */
static void log_to_stderr(void *baton, const char *file, int line, int level,
                          const char *text)
{
    fprintf(stderr, "%s: %s:%d (level %d): %s\n", (const char *)baton, file, line, level,
            text);
}

int main(int argc, char **argv)
{
    scep_log_t log = { log_to_stderr, (void *)"sql_migrate", SCEP_LOG_ERR };
    const char *why = NULL;
    apr_pool_t *p;
    scep_db_t *db;
    apr_status_t rv;
    int from = 0, to = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: sql_migrate CONNINFO\n");
        return 2;
    }
    if (apr_initialize() != APR_SUCCESS || apr_pool_create(&p, NULL) != APR_SUCCESS) {
        return 1;
    }
    rv = scep_sql_connect(p, argv[1], 0, &log, &db, &why);
    if (rv == APR_SUCCESS) {
        rv = scep_sql_migrate(db, p, &from, &to);
        why = "the upgrade failed";
    }
    if (rv != APR_SUCCESS) {
        fprintf(stderr, "sql_migrate: %s: %s\n", why ? why : "cannot connect",
                scep_db_strerror(p, rv));
    }
    else {
        printf("schema %d -> %d\n", from, to);
    }
    apr_pool_destroy(p);
    apr_terminate();
    return rv == APR_SUCCESS ? 0 : 1;
}

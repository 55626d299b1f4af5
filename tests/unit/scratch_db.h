/* SPDX-License-Identifier: Apache-2.0 */
/* A device database in a scratch folder, for the unit tests that need one. */
#ifndef SCRATCH_DB_H
#define SCRATCH_DB_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "scep_db.h"

/* `dir` holds a mkdtemp template ("/tmp/name.XXXXXX") and receives the folder's name. */
static inline scep_db_t *scratch_db_open(apr_pool_t *p, char *dir)
{
    scep_db_t *db = NULL;
    const char *why = NULL;

    if (!mkdtemp(dir) || scep_db_open(p, dir, 0, SCEP_DB_CREATE, NULL, &db, &why) != APR_SUCCESS) {
        fprintf(stderr, "cannot make a scratch database in %s: %s\n", dir, why ? why : "?");
        abort();
    }
    return db;
}

/* Removes the files of a closed scratch database and its folder. */
static inline void scratch_db_remove(const char *dir)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", dir);
    unlink(path);
    rmdir(dir);
}

#endif

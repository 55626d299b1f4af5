/* SPDX-License-Identifier: Apache-2.0 */
/* lmdb_readers: holds read transactions on an LMDB environment, so that integration
 * tests can fill its reader table the way a stuck or killed reader does.
 *
 *   lmdb_readers DBDIR COUNT SECONDS
 *
 * Clears the slots of dead processes first (so the count it reaches does not depend on
 * earlier kills), then begins up to COUNT read transactions (each takes one reader slot: the environment is
 * opened with MDB_NOTLS, as mod_scep opens it), prints "holding N" on stdout, and keeps
 * them for SECONDS (at most 600) before it exits.  A test kills it with SIGKILL to leave
 * its slots stale.  Exit 1 if the environment cannot be opened, 2 on usage errors. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <lmdb.h>

/* the table size mod_scep asks for; a table that exists already keeps its own size */
#define MOD_SCEP_READERS 1024

int main(int argc, char **argv)
{
    MDB_env *env;
    MDB_txn *txn;
    long count, seconds, held = 0;
    int rc, dead = 0;

    if (argc != 4 || (count = atol(argv[2])) < 1 || count > 100000
        || (seconds = atol(argv[3])) < 1 || seconds > 600) {
        fprintf(stderr, "usage: lmdb_readers DBDIR COUNT(1-100000) SECONDS(1-600)\n");
        return 2;
    }
    if ((rc = mdb_env_create(&env)) != MDB_SUCCESS
        || (rc = mdb_env_set_maxdbs(env, 16)) != MDB_SUCCESS
        || (rc = mdb_env_set_maxreaders(env, MOD_SCEP_READERS)) != MDB_SUCCESS
        || (rc = mdb_env_open(env, argv[1], MDB_NOTLS | MDB_RDONLY, 0600)) != MDB_SUCCESS) {
        fprintf(stderr, "lmdb_readers: %s: %s\n", argv[1], mdb_strerror(rc));
        return 1;
    }
    mdb_reader_check(env, &dead);
    while (held < count && mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == MDB_SUCCESS) {
        held++;     /* never ended: the slot stays taken until the process goes */
    }
    printf("holding %ld\n", held);
    fflush(stdout);
    sleep((unsigned int)seconds);
    return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* scepreg copy: every record of an LMDB folder into a PostgreSQL database (--to-pg), or
 * of a PostgreSQL database into a new LMDB folder (--to-lmdb), so that a site grows from
 * one node to several and back.  Both sides are reached through scep_store alone: the
 * source in one read transaction (one snapshot, safe while httpd writes to it), the
 * target in one write transaction, committed only when it held nothing before and holds
 * exactly what was read after; so an interrupted or refused copy leaves it as it was.
 * The counts per kind go to stdout, for the operator to compare with the source. */
#include <string.h>

#include <apr_strings.h>

#include "scep_db.h"
#include "scep_sql.h"
#include "scep_store.h"
#include "scepreg.h"

/* What was read from the source and written to the target, kind by kind. */
typedef struct copy_counts_t {
    long devices, minted, failures, transactions, held, certs, revoked;
    apr_int64_t crl_generation, crl_number;     /* crl_number 0: none published */
} copy_counts_t;

typedef struct copy_t {
    scep_txn_t *to;
    apr_pool_t *scratch;            /* one record's writing, cleared after each */
    copy_counts_t n;
    apr_status_t rv;                /* the first write that failed */
} copy_t;

/* Each visitor writes one record and stops the walk at the first failure or signal. */
static int copy_done(copy_t *c, apr_status_t rv)
{
    apr_pool_clear(c->scratch);
    if (rv != APR_SUCCESS) {
        c->rv = rv;
        return 1;
    }
    return scepreg_interrupted != 0;
}

static int copy_device(void *baton, const scep_device_t *dev)
{
    copy_t *c = baton;

    c->n.devices++;
    return copy_done(c, scep_store_device_put(c->to, c->scratch, dev));
}

static int copy_minted(void *baton, const unsigned char *digest, const scep_minted_t *m)
{
    copy_t *c = baton;

    c->n.minted++;
    return copy_done(c, scep_store_minted_put_digest(c->to, c->scratch, digest, m));
}

static int copy_failure(void *baton, const char *fqdn, const scep_failure_t *f)
{
    copy_t *c = baton;

    c->n.failures++;
    return copy_done(c, scep_store_failure_put(c->to, c->scratch, fqdn, f));
}

static int copy_transaction(void *baton, const scep_transaction_t *t)
{
    copy_t *c = baton;

    c->n.transactions++;
    c->n.held += strcmp(t->state, SCEP_TXN_ISSUED) != 0;
    return copy_done(c, scep_store_transaction_put(c->to, c->scratch, t));
}

static int copy_cert(void *baton, const scep_cert_rec_t *rec)
{
    copy_t *c = baton;

    c->n.certs++;
    c->n.revoked += rec->revoked_at != 0;
    return copy_done(c, scep_store_cert_put(c->to, c->scratch, rec));
}

/* Every kind, from the source's snapshot into the target's transaction. */
static apr_status_t copy_records(apr_pool_t *p, scep_txn_t *from, copy_t *c)
{
    scep_crl_state_t state;
    scep_crl_published_t *pub = NULL;
    apr_status_t rv;

    rv = scep_store_device_foreach(from, p, copy_device, c);
    if (rv == APR_SUCCESS && c->rv == APR_SUCCESS) {
        rv = scep_store_minted_foreach(from, p, copy_minted, c);
    }
    if (rv == APR_SUCCESS && c->rv == APR_SUCCESS) {
        rv = scep_store_failure_foreach(from, p, copy_failure, c);
    }
    if (rv == APR_SUCCESS && c->rv == APR_SUCCESS) {
        rv = scep_store_transaction_foreach(from, p, copy_transaction, c);
    }
    if (rv == APR_SUCCESS && c->rv == APR_SUCCESS) {
        rv = scep_store_cert_foreach(from, p, NULL, copy_cert, c);
    }
    if (rv == APR_SUCCESS && c->rv == APR_SUCCESS
        && (rv = scep_store_crl_state_get(from, &state)) == APR_SUCCESS
        && (state.generation || state.changed_at)) {
        c->n.crl_generation = state.generation;
        c->rv = scep_store_crl_state_put(c->to, p, &state);
    }
    if (rv == APR_SUCCESS && c->rv == APR_SUCCESS) {
        rv = scep_store_crl_published_get(from, p, &pub);
        if (rv == APR_SUCCESS) {
            c->n.crl_number = pub->number;
            c->rv = scep_store_crl_published_put(c->to, p, pub);
        }
        else if (rv == SCEP_DB_NOTFOUND) {
            rv = APR_SUCCESS;
        }
    }
    return rv;
}

/* ---- counting, for emptiness before and completeness after ----------------------- */

static int count_device(void *baton, const scep_device_t *dev)
{
    (void)dev;
    ((copy_counts_t *)baton)->devices++;
    return 0;
}

static int count_transaction(void *baton, const scep_transaction_t *t)
{
    copy_counts_t *n = baton;

    n->transactions++;
    n->held += strcmp(t->state, SCEP_TXN_ISSUED) != 0;
    return 0;
}

static int count_cert(void *baton, const scep_cert_rec_t *c)
{
    copy_counts_t *n = baton;

    n->certs++;
    n->revoked += c->revoked_at != 0;
    return 0;
}

/* What a store holds, kind by kind, in the counts the copy prints. */
static apr_status_t count_records(apr_pool_t *p, scep_txn_t *txn, copy_counts_t *n)
{
    scep_crl_state_t state;
    scep_crl_published_t *pub;
    apr_size_t minted = 0, failures = 0;
    apr_status_t rv;

    memset(n, 0, sizeof(*n));
    if ((rv = scep_store_device_foreach(txn, p, count_device, n)) != APR_SUCCESS
        || (rv = scep_store_minted_count(txn, &minted)) != APR_SUCCESS
        || (rv = scep_store_failure_count(txn, &failures)) != APR_SUCCESS
        || (rv = scep_store_transaction_foreach(txn, p, count_transaction, n)) != APR_SUCCESS
        || (rv = scep_store_cert_foreach(txn, p, NULL, count_cert, n)) != APR_SUCCESS
        || (rv = scep_store_crl_state_get(txn, &state)) != APR_SUCCESS) {
        return rv;
    }
    n->minted = (long)minted;
    n->failures = (long)failures;
    n->crl_generation = state.generation;
    rv = scep_store_crl_published_get(txn, p, &pub);
    if (rv == APR_SUCCESS) {
        n->crl_number = pub->number;
    }
    return rv == SCEP_DB_NOTFOUND ? APR_SUCCESS : rv;
}

static int counts_empty(const copy_counts_t *n)
{
    return !n->devices && !n->minted && !n->failures && !n->transactions && !n->certs
           && !n->crl_generation && !n->crl_number;
}

static int counts_equal(const copy_counts_t *a, const copy_counts_t *b)
{
    return a->devices == b->devices && a->minted == b->minted && a->failures == b->failures
           && a->transactions == b->transactions && a->held == b->held
           && a->certs == b->certs && a->revoked == b->revoked
           && a->crl_generation == b->crl_generation && a->crl_number == b->crl_number;
}

static void print_counts(const copy_counts_t *n)
{
    printf("devices: %ld\n", n->devices);
    printf("minted challenges: %ld\n", n->minted);
    printf("failure counters: %ld\n", n->failures);
    printf("transactions: %ld (%ld held, approved, rejected or upstream)\n",
           n->transactions, n->held);
    printf("certificates: %ld (%ld revoked)\n", n->certs, n->revoked);
    printf("CRL generation: %" APR_INT64_T_FMT "\n", n->crl_generation);
    if (n->crl_number) {
        printf("published CRL: number %" APR_INT64_T_FMT "\n", n->crl_number);
    }
    else {
        printf("published CRL: none\n");
    }
}

/* ---- the command --------------------------------------------------------------------- */

/* Opens both sides: *from for reading, *to for writing; the LMDB target is created. */
static int open_sides(apr_pool_t *p, const opts_t *o, const opts_t *lmdb, int to_pg,
                      scep_db_t **from, scep_db_t **to)
{
    int rc;

    if (to_pg) {
        if ((rc = scepreg_open_lmdb(p, lmdb, 0, from)) != RC_OK) {
            return rc;
        }
        return scepreg_open_pg(p, o, 1, to);
    }
    if ((rc = scepreg_open_pg(p, o, 0, from)) != RC_OK) {
        return rc;
    }
    return scepreg_open_lmdb(p, lmdb, 1, to);
}

int scepreg_copy(apr_pool_t *p, const opts_t *o)
{
    int to_pg = o->command_nargs == 2 && strcmp(o->command_args[0], "--to-pg") == 0;
    opts_t lmdb = *o, pg;
    scep_db_t *from_db, *to_db;
    scep_txn_t *from = NULL;
    copy_counts_t before, after;
    const char *source, *target;
    copy_t c;
    apr_status_t rv;
    int rc;

    if (o->command_nargs != 2 || !*o->command_args[1]) {
        return scepreg_syntax("expected copy --to-pg DBDIR or copy --to-lmdb DBDIR");
    }
    if (!o->pg_option) {
        return scepreg_syntax("copy: name the PostgreSQL database with --pg or --pg-file");
    }
    if (o->map_size && to_pg) {
        return scepreg_syntax("option -m sizes a new LMDB folder: only with copy --to-lmdb");
    }
    /* the LMDB side is the folder operand; -c is implied for a new target folder */
    lmdb.pg_option = NULL;
    lmdb.dbdir = o->command_args[1];
    lmdb.create = !to_pg;
    source = to_pg ? lmdb.dbdir : o->dbdir;
    target = to_pg ? o->dbdir : lmdb.dbdir;
    pg = *o;
    pg.create = to_pg;              /* an empty schema is made where there is none */
    if ((rc = open_sides(p, &pg, &lmdb, to_pg, &from_db, &to_db)) != RC_OK) {
        return rc;
    }
    memset(&c, 0, sizeof(c));
    if (apr_pool_create(&c.scratch, p) != APR_SUCCESS) {
        return RC_DB;
    }
    if ((rv = scep_db_begin(from_db, p, 0, &from)) != APR_SUCCESS) {
        return scepreg_db_failed(p, source, "cannot begin a read transaction", rv);
    }
    if ((rv = scep_db_begin(to_db, p, 1, &c.to)) != APR_SUCCESS) {
        scep_db_abort(from);
        return scepreg_db_failed(p, target, "cannot begin a write transaction", rv);
    }
    /* emptiness is judged inside the writing transaction, so nothing slips in between */
    if ((rv = count_records(p, c.to, &before)) != APR_SUCCESS) {
        rc = scepreg_db_failed(p, target, "cannot read the target", rv);
    }
    else if (!counts_empty(&before)) {
        scepreg_complain("'%s' already holds records (%ld devices, %ld certificates, ...): "
                         "copy only into an empty database", target, before.devices,
                         before.certs);
        rc = RC_DB;
    }
    else if ((rv = copy_records(p, from, &c)) != APR_SUCCESS || c.rv != APR_SUCCESS) {
        rc = rv != APR_SUCCESS ? scepreg_db_failed(p, source, "cannot read a record", rv)
                               : scepreg_db_failed(p, target, "cannot write a record", c.rv);
    }
    else if (scepreg_interrupted) {
        rc = scepreg_report_interrupted();
    }
    else if ((rv = count_records(p, c.to, &after)) != APR_SUCCESS) {
        rc = scepreg_db_failed(p, target, "cannot count what was copied", rv);
    }
    else if (!counts_equal(&after, &c.n)) {
        /* a record the target keeps under the same key as another would vanish */
        scepreg_complain("'%s' would hold other counts than were read from '%s' (devices "
                         "%ld of %ld, certificates %ld of %ld): nothing copied", target,
                         source, after.devices, c.n.devices, after.certs, c.n.certs);
        rc = RC_INVALID;
    }
    else {
        rc = RC_OK;
    }
    scep_db_abort(from);
    if (rc != RC_OK) {
        scep_db_abort(c.to);
        return rc;
    }
    if ((rc = scepreg_commit(p, target, c.to)) != RC_OK) {
        return rc;
    }
    print_counts(&c.n);
    scepreg_complain("copied '%s' into '%s'", source, target);
    if ((rc = scepreg_finish_output()) != RC_OK) {
        return rc;
    }
    return to_pg ? RC_OK : scepreg_fix_ownership(p, &lmdb);
}

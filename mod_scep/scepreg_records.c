/* SPDX-License-Identifier: Apache-2.0 */
/* scepreg's commands on what the module recorded: the issued certificates (-L) and their
 * revocation (-R, shared with -D -R), the requests held for an operator's approval (-P,
 * and -Y/-N, decided by the policy as the module would) and minted one-time challenges
 * (-M, minted by the policy as the challenge handler does).  Each runs on the database
 * scepreg.c opened for it, in one transaction. */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <apr_strings.h>
#include <apr_tables.h>

#include <openssl/crypto.h>

#include "scep_import.h"
#include "scep_policy.h"
#include "scep_store.h"
#include "scep_util.h"
#include "scepreg.h"

/* ---- certificates ---------------------------------------------------------------------- */

static int print_cert(void *baton, const scep_cert_rec_t *c)
{
    const opts_t *o = baton;
    FILE *out = stdout;
    char t1[SCEP_UTIL_ISO_TIME_SIZE], t2[SCEP_UTIL_ISO_TIME_SIZE], t3[SCEP_UTIL_ISO_TIME_SIZE],
        t4[SCEP_UTIL_ISO_TIME_SIZE];

    if (o->json) {
        fputs("{\"serial\":", out);
        scepreg_json_string(out, c->serial);
        fputc(',', out);
        scepreg_json_identity(out, c->fqdn);
        fputs(",\"subject\":", out);
        scepreg_json_string(out, c->subject);
        fputs(",\"not_before\":", out);
        scepreg_json_time(out, c->not_before);
        fputs(",\"not_after\":", out);
        scepreg_json_time(out, c->not_after);
        fputs(",\"issued_at\":", out);
        scepreg_json_time(out, c->issued_at);
        fputs(",\"transaction_id\":", out);
        scepreg_json_string(out, c->transaction_id);
        fputs(",\"revoked\":", out);
        scepreg_json_time(out, c->revoked_at);
        fputs(",\"revocation_reason\":", out);
        scepreg_json_string(out, c->revoked_at ? scep_store_reason_name(c->revocation_reason)
                                       : NULL);
        fputs("}\n", out);
        return 0;
    }
    fprintf(out, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c->serial ? c->serial : "-",
            c->fqdn ? c->fqdn : "-", c->subject ? c->subject : "-",
            c->not_before ? scep_util_iso_time(t1, c->not_before) : "-",
            c->not_after ? scep_util_iso_time(t2, c->not_after) : "-",
            c->issued_at ? scep_util_iso_time(t3, c->issued_at) : "-",
            c->transaction_id ? c->transaction_id : "-",
            c->revoked_at ? scep_util_iso_time(t4, c->revoked_at) : "no",
            c->revoked_at ? scep_store_reason_name(c->revocation_reason) : "-");
    return 0;
}

int scepreg_records_certs(apr_pool_t *p, const opts_t *o, scep_db_t *db, apr_int64_t now)
{
    scep_txn_t *txn;
    apr_status_t rv;
    int rc;

    (void)now;
    if ((rv = scep_db_begin(db, p, 0, &txn)) != APR_SUCCESS) {
        return scepreg_db_failed(p, o->dbdir, "cannot begin a read transaction", rv);
    }
    if (!o->json) {
        fputs("serial\tfqdn\tsubject\tnot_before\tnot_after\tissued_at\ttransaction_id\t"
              "revoked\treason\n", stdout);
    }
    rv = scep_store_cert_foreach(txn, p, o->fqdn, print_cert, (void *)o);
    scep_db_abort(txn);
    if (rv != APR_SUCCESS && rv != SCEP_DB_NOTFOUND) {
        scepreg_finish_output();
        return scepreg_db_failed(p, o->dbdir, "cannot list the certificates", rv);
    }
    if ((rc = scepreg_finish_output()) != RC_OK) {
        return rc;
    }
    return scepreg_fix_ownership(p, o);
}


/* ---- revoke ------------------------------------------------------------------------------ */

static int collect_serial(void *baton, const scep_cert_rec_t *c)
{
    apr_array_header_t *serials = baton;

    APR_ARRAY_PUSH(serials, const char *) = apr_pstrdup(serials->pool, c->serial);
    return 0;
}

apr_status_t scepreg_records_revoke_in(scep_txn_t *txn, apr_pool_t *p, const char *serial,
                                       const char *fqdn, int reason, apr_int64_t now,
                                       int *revoked, int *before)
{
    apr_array_header_t *serials = apr_array_make(p, 8, sizeof(const char *));
    apr_status_t rv = APR_SUCCESS;
    int already, i;

    *revoked = *before = 0;
    if (serial) {
        APR_ARRAY_PUSH(serials, const char *) = serial;
    }
    else {
        rv = scep_store_cert_foreach(txn, p, fqdn, collect_serial, serials);
    }
    for (i = 0; rv == APR_SUCCESS && i < serials->nelts; i++) {
        rv = scep_store_cert_revoke(txn, p, APR_ARRAY_IDX(serials, i, const char *), now,
                                    reason, &already);
        *revoked += rv == APR_SUCCESS && !already;
        *before += rv == APR_SUCCESS && already;
    }
    return rv;
}

void scepreg_records_report_revoked(const opts_t *o, int revoked, int before)
{
    scepreg_complain("revoked %d certificate%s of %s (%s); %d already revoked", revoked,
                     revoked == 1 ? "" : "s", o->fqdn, scep_store_reason_name(o->reason),
                     before);
}

/* Revokes one certificate, or every certificate of a device, in one write transaction. */
int scepreg_records_revoke(apr_pool_t *p, const opts_t *o, scep_db_t *db, apr_int64_t now)
{
    scep_txn_t *txn;
    int revoked, before, rc;
    apr_status_t rv;

    if ((rv = scep_db_begin(db, p, 1, &txn)) != APR_SUCCESS) {
        return scepreg_db_failed(p, o->dbdir, "cannot begin a write transaction", rv);
    }
    rv = scepreg_records_revoke_in(txn, p, o->revoke_serial, o->fqdn, o->reason, now,
                                   &revoked, &before);
    if (rv == SCEP_DB_NOTFOUND || (rv == APR_SUCCESS && revoked + before == 0)) {
        scep_db_abort(txn);
        if (o->revoke_serial) {
            scepreg_complain("no certificate with serial %s in %s", o->revoke_serial, o->dbdir);
        }
        else {
            scepreg_complain("no certificates issued to '%s' in %s", o->fqdn, o->dbdir);
        }
        return RC_ILLEGAL;
    }
    if (rv != APR_SUCCESS) {
        scep_db_abort(txn);
        return scepreg_db_failed(p, o->dbdir, "cannot revoke", rv);
    }
    if ((rc = scepreg_commit(p, o->dbdir, txn)) != RC_OK) {
        return rc;
    }
    if (o->revoke_serial) {
        scepreg_complain(revoked ? "revoked certificate %s (%s)"
                         : "certificate %s was already revoked (reason and time kept, not %s)",
                         o->revoke_serial, scep_store_reason_name(o->reason));
    }
    else {
        scepreg_records_report_revoked(o, revoked, before);
    }
    return scepreg_fix_ownership(p, o);
}

/* ---- requests held for approval ------------------------------------------------------ */

static int print_held(void *baton, const scep_transaction_t *t)
{
    const opts_t *o = baton;
    FILE *out = stdout;
    char t1[SCEP_UTIL_ISO_TIME_SIZE], t2[SCEP_UTIL_ISO_TIME_SIZE];

    if (o->fqdn && (!t->fqdn || strcmp(t->fqdn, o->fqdn) != 0)) {
        return 0;
    }
    if (o->json) {
        fputs("{\"transaction_id\":", out);
        scepreg_json_string(out, t->transaction_id);
        fputs(",\"state\":", out);
        scepreg_json_string(out, t->state);
        fputc(',', out);
        scepreg_json_identity(out, t->fqdn);
        fputs(",\"subject\":", out);
        scepreg_json_string(out, t->subject);
        fputs(",\"client\":", out);
        scepreg_json_string(out, t->client_ip);
        fputs(",\"created\":", out);
        scepreg_json_time(out, t->created);
        fputs(",\"decided_at\":", out);
        scepreg_json_time(out, t->decided_at);
        fputs(",\"decided_by\":", out);
        scepreg_json_string(out, t->decided_by);
        fputs(",\"reason\":", out);
        scepreg_json_string(out, t->reason);
        fputs("}\n", out);
        return 0;
    }
    fprintf(out, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t->transaction_id, t->state,
            t->fqdn ? t->fqdn : "-", t->subject ? t->subject : "-",
            t->client_ip ? t->client_ip : "-", scep_util_iso_time(t1, t->created),
            t->decided_at ? scep_util_iso_time(t2, t->decided_at) : "-",
            t->decided_by ? t->decided_by : "-", t->reason ? t->reason : "-");
    return 0;
}

int scepreg_records_held(apr_pool_t *p, const opts_t *o, scep_db_t *db, apr_int64_t now)
{
    scep_txn_t *txn;
    apr_status_t rv;

    (void)now;
    if ((rv = scep_db_begin(db, p, 0, &txn)) != APR_SUCCESS) {
        return scepreg_db_failed(p, o->dbdir, "cannot begin a read transaction", rv);
    }
    if (!o->json) {
        fputs("transaction_id\tstate\tfqdn\tsubject\tclient\tcreated\tdecided_at\t"
              "decided_by\treason\n", stdout);
    }
    rv = scep_store_transaction_foreach_held(txn, p, print_held, (void *)o);
    scep_db_abort(txn);
    if (rv != APR_SUCCESS && rv != SCEP_DB_NOTFOUND) {
        scepreg_finish_output();
        return scepreg_db_failed(p, o->dbdir, "cannot list the held requests", rv);
    }
    return scepreg_finish_output();
}

/* Who decides, for the record: the user behind sudo, else the one running the tool. */
static const char *operator_name(apr_pool_t *p)
{
    const char *sudo = getenv("SUDO_USER");
    struct passwd *pw;

    if (sudo && *sudo && scep_import_printable(sudo)) {
        return apr_pstrdup(p, sudo);
    }
    pw = getpwuid(getuid());
    return pw ? apr_pstrdup(p, pw->pw_name) : apr_psprintf(p, "uid %lu",
                                                           (unsigned long)getuid());
}

/* -Y and -N: one transactionID, or every pending request of a device, in one write
 * transaction.  The module issues an approved request on the device's next poll. */
int scepreg_records_decide(apr_pool_t *p, const opts_t *o, scep_db_t *db, apr_int64_t now)
{
    apr_array_header_t *decided;
    const char *state = NULL;
    scep_txn_t *txn;
    apr_status_t rv;
    int rc, i;

    if ((rv = scep_db_begin(db, p, 1, &txn)) != APR_SUCCESS) {
        return scepreg_db_failed(p, o->dbdir, "cannot begin a write transaction", rv);
    }
    rv = scep_policy_decide(txn, p, o->transaction_id, o->fqdn, o->mode == 'Y',
                            operator_name(p), o->comment, now, &decided, &state);
    if (rv != APR_SUCCESS) {
        scep_db_abort(txn);
    }
    if (rv == SCEP_POLICY_DENIED) {
        scepreg_complain("the request %s is %s, not pending", o->transaction_id, state);
        return RC_ILLEGAL;
    }
    if (rv == SCEP_DB_EXISTS) {
        /* another device used the same ID: the operator must say which one is meant */
        scepreg_complain("several devices sent requests with transactionID %s (scepreg -P "
                         "lists them): name the device instead, scepreg -%c %s FQDN",
                         o->transaction_id, o->mode, o->dbdir);
        return RC_ILLEGAL;
    }
    if (rv == SCEP_DB_NOTFOUND) {
        scepreg_complain("no pending request with transactionID %s%s%s in %s",
                         o->transaction_id, o->fqdn ? " or for " : "", o->fqdn ? o->fqdn : "",
                         o->dbdir);
        return RC_ILLEGAL;
    }
    if (rv != APR_SUCCESS) {
        return scepreg_db_failed(p, o->dbdir, "cannot record the decision", rv);
    }
    if ((rc = scepreg_commit(p, o->dbdir, txn)) != RC_OK) {
        return rc;
    }
    for (i = 0; i < decided->nelts; i++) {
        scepreg_complain("%s request %s%s", o->mode == 'Y' ? "approved" : "rejected",
                         APR_ARRAY_IDX(decided, i, scep_transaction_t *)->transaction_id,
                         o->mode == 'Y' ? ": the device gets its certificate when it polls next"
                                : "");
    }
    return scepreg_fix_ownership(p, o);
}

/* ---- mint -------------------------------------------------------------------------------- */

int scepreg_records_mint(apr_pool_t *p, const opts_t *o, scep_db_t *db, apr_int64_t now)
{
    scep_txn_t *txn;
    scep_minted_t *rec;
    const char *challenge = NULL;
    apr_status_t rv;
    int rc;

    if ((rv = scep_db_begin(db, p, 1, &txn)) != APR_SUCCESS) {
        return scepreg_db_failed(p, o->dbdir, "cannot begin a write transaction", rv);
    }
    rv = scep_policy_mint(txn, p, now, o->ttl, o->fqdn,
                          o->profile && *o->profile ? o->profile : NULL, &challenge, &rec);
    if (rv != APR_SUCCESS) {
        scep_db_abort(txn);
        return scepreg_db_failed(p, o->dbdir, "cannot mint a challenge", rv);
    }
    if ((rc = scepreg_commit(p, o->dbdir, txn)) != RC_OK) {
        return rc;
    }
    printf("%s\n", challenge);
    OPENSSL_cleanse((void *)challenge, strlen(challenge));
    if ((rc = scepreg_finish_output()) != RC_OK) {
        return rc;
    }
    return scepreg_fix_ownership(p, o);
}


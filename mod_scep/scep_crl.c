/* SPDX-License-Identifier: Apache-2.0 */
/* Building, signing and keeping the CRL (see scep_crl.h).
 *
 * Rebuilding walks every certificate record, so it happens only when the CRL changed or
 * must be refreshed, never per request.  The signature is made outside any write
 * transaction; the write transaction only stores it, after checking that no other
 * process stored a newer one meanwhile. */
#include <string.h>

#include <apr_strings.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "scep_crl.h"
#include "scep_store.h"
#include "scep_util.h"
#include "scep_util_own.h"

static int set_time(X509_CRL *crl, int (*setter)(X509_CRL *, const ASN1_TIME *),
                    apr_int64_t t)
{
    ASN1_TIME *at = ASN1_TIME_set(NULL, (time_t)t);
    int ok = at && setter(crl, at) == 1;

    ASN1_TIME_free(at);
    return ok;
}

static int add_entry(X509_CRL *crl, const scep_cert_rec_t *c)
{
    X509_REVOKED *entry = X509_REVOKED_new();
    ASN1_INTEGER *serial = NULL;
    ASN1_TIME *when = ASN1_TIME_set(NULL, (time_t)c->revoked_at);
    ASN1_ENUMERATED *reason = NULL;
    BIGNUM *bn = NULL;
    int ok = entry && when && BN_hex2bn(&bn, c->serial) > 0
             && (serial = BN_to_ASN1_INTEGER(bn, NULL)) != NULL
             && X509_REVOKED_set_serialNumber(entry, serial) == 1
             && X509_REVOKED_set_revocationDate(entry, when) == 1;

    /* RFC 5280 5.3.1: leave the reason out rather than saying "unspecified" */
    if (ok && c->revocation_reason != SCEP_REASON_UNSPECIFIED) {
        ok = (reason = ASN1_ENUMERATED_new()) != NULL
             && ASN1_ENUMERATED_set(reason, c->revocation_reason) == 1
             && X509_REVOKED_add1_ext_i2d(entry, NID_crl_reason, reason, 0, 0) == 1;
    }
    if (ok) {
        ok = X509_CRL_add0_revoked(crl, entry) == 1;
        entry = ok ? NULL : entry;
    }
    X509_REVOKED_free(entry);
    ASN1_INTEGER_free(serial);
    ASN1_TIME_free(when);
    ASN1_ENUMERATED_free(reason);
    BN_free(bn);
    return ok;
}

static int add_crl_extensions(X509_CRL *crl, const scep_ca_t *ca, apr_int64_t number)
{
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(scep_ca_cert(ca));
    ASN1_INTEGER *crl_number = ASN1_INTEGER_new();
    AUTHORITY_KEYID *akid = NULL;
    int ok = crl_number && ASN1_INTEGER_set_int64(crl_number, number) == 1
             && X509_CRL_add1_ext_i2d(crl, NID_crl_number, crl_number, 0, 0) == 1;

    if (ok && ski) {
        ok = (akid = AUTHORITY_KEYID_new()) != NULL
             && (akid->keyid = ASN1_OCTET_STRING_dup(ski)) != NULL
             && X509_CRL_add1_ext_i2d(crl, NID_authority_key_identifier, akid, 0, 0) == 1;
    }
    ASN1_INTEGER_free(crl_number);
    AUTHORITY_KEYID_free(akid);
    return ok;
}

apr_status_t scep_crl_build(apr_pool_t *p, const scep_ca_t *ca,
                            const apr_array_header_t *revoked, apr_int64_t number,
                            apr_int64_t this_update, apr_int64_t next_update,
                            unsigned char **der, apr_size_t *len)
{
    X509_CRL *crl = X509_CRL_new();
    unsigned char *buf = NULL;
    int i, n;

    if (!crl) {
        return APR_ENOMEM;
    }
    scep_util_own_X509_CRL(p, crl);
    if (X509_CRL_set_version(crl, X509_CRL_VERSION_2) != 1
        || X509_CRL_set_issuer_name(crl, X509_get_subject_name(scep_ca_cert(ca))) != 1
        || !set_time(crl, X509_CRL_set1_lastUpdate, this_update)
        || !set_time(crl, X509_CRL_set1_nextUpdate, next_update)
        || !add_crl_extensions(crl, ca, number)) {
        return APR_EGENERAL;
    }
    for (i = 0; i < revoked->nelts; i++) {
        if (!add_entry(crl, APR_ARRAY_IDX(revoked, i, const scep_cert_rec_t *))) {
            return APR_EGENERAL;
        }
    }
    if (X509_CRL_sort(crl) != 1 || X509_CRL_sign(crl, scep_ca_key(ca), EVP_sha256()) <= 0
        || (n = i2d_X509_CRL(crl, &buf)) <= 0) {
        return APR_EGENERAL;
    }
    *der = apr_pmemdup(p, buf, (apr_size_t)n);
    *len = (apr_size_t)n;
    OPENSSL_free(buf);
    return APR_SUCCESS;
}

/* ---- keeping it -------------------------------------------------------------------- */

typedef struct collect_t {
    const scep_ca_t *ca;
    apr_pool_t *p;
    apr_int64_t now;
    apr_array_header_t *revoked;
} collect_t;

/* Whether a recorded certificate was issued by this CA: by the key identifier recorded
 * with it, else from the certificate itself: the issuer name, and the key identifier
 * where the certificate names one (a rolled-over CA keeps its name).  Parsing is the
 * slow way (OpenSSL 3 decodes the public key too), for records made before the key
 * identifier was kept. */
static int issued_here(const scep_ca_t *ca, const scep_cert_rec_t *c)
{
    const ASN1_OCTET_STRING *ca_ski = X509_get0_subject_key_id(scep_ca_cert(ca));
    const unsigned char *in = c->der;
    X509 *x;
    const ASN1_OCTET_STRING *aki, *ski = ca_ski;
    int ok;

    if (c->issuer_key_id && ca_ski) {
        return (apr_size_t)ASN1_STRING_length(ca_ski) == c->issuer_key_id_len
               && memcmp(ASN1_STRING_get0_data(ca_ski), c->issuer_key_id,
                         c->issuer_key_id_len) == 0;
    }
    if (!(x = c->der ? d2i_X509(NULL, &in, (long)c->der_len) : NULL)) {
        ERR_clear_error();
        return 0;
    }
    aki = X509_get0_authority_key_id(x);
    ok = X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(scep_ca_cert(ca))) == 0
         && (!aki || !ski || ASN1_OCTET_STRING_cmp(aki, ski) == 0);
    X509_free(x);
    return ok;
}

static int collect_revoked(void *baton, const scep_cert_rec_t *c)
{
    collect_t *col = baton;

    /* RFC 5280 allows an entry to leave the CRL once the certificate expired */
    if (c->revoked_at && c->not_after > col->now && issued_here(col->ca, c)) {
        scep_cert_rec_t *kept = apr_pmemdup(col->p, c, sizeof(*c));

        kept->serial = apr_pstrdup(col->p, c->serial);
        kept->der = NULL;                   /* the CRL needs none of the rest */
        kept->fqdn = kept->subject = kept->transaction_id = NULL;
        APR_ARRAY_PUSH(col->revoked, const scep_cert_rec_t *) = kept;
    }
    return 0;
}

static void ca_id(const scep_ca_t *ca, unsigned char out[32])
{
    unsigned int n = 32;

    memset(out, 0, 32);
    X509_digest(scep_ca_cert(ca), EVP_sha256(), out, &n);
}

static int still_good(const scep_crl_published_t *pub, const scep_crl_state_t *state,
                      const unsigned char id[32], apr_int64_t now)
{
    return pub->generation == state->generation && memcmp(pub->ca_id, id, 32) == 0
           && now >= pub->this_update
           && now < pub->this_update + (pub->next_update - pub->this_update) / 2;
}

static scep_crl_t *from_published(apr_pool_t *p, const scep_crl_published_t *pub)
{
    scep_crl_t *crl = apr_pcalloc(p, sizeof(*crl));

    crl->der = pub->der;
    crl->der_len = pub->der_len;
    crl->number = pub->number;
    crl->this_update = pub->this_update;
    crl->next_update = pub->next_update;
    crl->refresh_at = pub->this_update + (pub->next_update - pub->this_update) / 2;
    return crl;
}

apr_status_t scep_crl_current(apr_pool_t *p, const scep_ca_t *ca, scep_db_t *db,
                              apr_int64_t validity, apr_int64_t now, scep_crl_t **out)
{
    scep_txn_t *txn;
    scep_crl_state_t state;
    scep_crl_published_t *pub = NULL, *again = NULL, mine;
    unsigned char *der;
    apr_size_t len;
    collect_t col;
    apr_status_t rv;

    memset(&mine, 0, sizeof(mine));
    ca_id(ca, mine.ca_id);
    if ((rv = scep_db_begin(db, p, 0, &txn)) != APR_SUCCESS) {
        return rv;
    }
    rv = scep_store_crl_state_get(txn, &state);
    if (rv == APR_SUCCESS) {
        rv = scep_store_crl_published_get(txn, p, &pub);
    }
    if (rv == APR_SUCCESS && still_good(pub, &state, mine.ca_id, now)) {
        scep_db_abort(txn);
        *out = from_published(p, pub);
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS && rv != SCEP_DB_NOTFOUND) {
        scep_db_abort(txn);
        return rv;
    }
    col.ca = ca;
    col.p = p;
    col.now = now;
    col.revoked = apr_array_make(p, 16, sizeof(const scep_cert_rec_t *));
    rv = scep_store_cert_foreach(txn, p, NULL, collect_revoked, &col);
    scep_db_abort(txn);
    if (rv != APR_SUCCESS && rv != SCEP_DB_NOTFOUND) {
        return rv;
    }

    mine.number = (pub ? pub->number : 0) + 1;
    mine.generation = state.generation;
    mine.this_update = now;
    mine.next_update = now + validity;
    rv = scep_crl_build(p, ca, col.revoked, mine.number, mine.this_update, mine.next_update,
                        &der, &len);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    mine.der = der;
    mine.der_len = len;

    if ((rv = scep_db_begin(db, p, 1, &txn)) != APR_SUCCESS) {
        return rv;
    }
    rv = scep_store_crl_published_get(txn, p, &again);
    if (rv == APR_SUCCESS && again->number >= mine.number) {
        /* another process stored one meanwhile: serve that, so numbers never repeat */
        scep_db_abort(txn);
        *out = from_published(p, again);
        return APR_SUCCESS;
    }
    if (rv == APR_SUCCESS || rv == SCEP_DB_NOTFOUND) {
        rv = scep_store_crl_published_put(txn, p, &mine);
    }
    if (rv == APR_SUCCESS) {
        rv = scep_db_commit(txn);
    }
    else {
        scep_db_abort(txn);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *out = from_published(p, &mine);
    (*out)->entries = (apr_size_t)col.revoked->nelts;
    (*out)->built = 1;
    return APR_SUCCESS;
}

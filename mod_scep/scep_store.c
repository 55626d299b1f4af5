/* SPDX-License-Identifier: Apache-2.0 */
/* The meaning of mod_scep's records: the canonical forms of the names and addresses
 * used as keys, the challenge verifiers, and the encoding of devices, minted
 * challenges, failure counters, transactions and issued certificates into scep_db's
 * versioned records.  Storage itself (LMDB, transactions, the record framing) belongs
 * to scep_db; nothing here opens or commits anything.
 *
 * Keys:
 *   devices, failures   registration key bytes (scep_name.h: an FQDN or kind:value)
 *   challenges          SHA-256 of the challenge text (32 bytes)
 *   transactions        transactionID bytes
 *   certs               serial number, big-endian bytes (the hex decoded)
 *   certs_by_fqdn       FQDN -> serial bytes, one duplicate per certificate
 *
 * Field tags.  A tag is never reused for another meaning: readers skip tags they do
 * not know, so an old reader must not mistake a new field for an old one.
 *
 *   device               minted             failure              transaction
 *    1 ips (a,b,c)        1 created          1 count              1 state
 *    2 serial             2 expires          2 last               2 request_digest (32)
 *    3 verifier (53)      3 fqdn             3 locked_until       3 fqdn
 *    4 flags              4 profile                               4 serial
 *    5 expires                                                    5 created
 *    6 profile          cert
 *    7 comment           1 der              5 not_before
 *    8 created           2 fqdn             6 not_after
 *    9 updated           3 subject          7 issued_at
 *   10 last_serial       4 transaction_id   8 revoked_at
 *   11 last_not_after                       9 revocation_reason
 *                                           10 issuer_key_id
 *   12 last_enrolled
 *   13 enrollments
 *
 *   transaction, held requests only: 6 request (PKCS#10), 7 grant_kind, 8 registration,
 *     9 ips, 10 serial_number, 11 renews, 12 signer_key (32), 13 client_ip, 14 subject,
 *     15 decided_at, 16 decided_by, 17 reason, 18 upstream_pending, 19 endpoint,
 *     20 identity_name, 21 identity_where (the kind is the prefix of fqdn)
 *
 *   meta "crl": 1 generation, 2 changed_at
 *   meta "crl_published": 1 number, 2 generation, 3 this_update, 4 next_update,
 *                         5 ca_id (32), 6 der
 *
 * The verifier field is the algorithm (1 byte), the iterations (4 bytes, big-endian),
 * the salt (16) and the hash (32); absent when the device has no challenge.  Integers
 * are scep_db_rec_put_i64's.  A field of the wrong length makes the record
 * SCEP_DB_CORRUPT rather than being read as a default, so damage is noticed. */
#include <string.h>
#include <strings.h>
#include <limits.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/bn.h>
#include <openssl/sha.h>

#include "scep_store.h"
#include "scep_store_sql.h"
#include "scep_name.h"

enum { DEV_IPS = 1, DEV_SERIAL, DEV_VERIFIER, DEV_FLAGS, DEV_EXPIRES, DEV_PROFILE,
       DEV_COMMENT, DEV_CREATED, DEV_UPDATED, DEV_LAST_SERIAL, DEV_LAST_NOT_AFTER,
       DEV_LAST_ENROLLED, DEV_ENROLLMENTS };
enum { MINT_CREATED = 1, MINT_EXPIRES, MINT_FQDN, MINT_PROFILE };
enum { FAIL_COUNT = 1, FAIL_LAST, FAIL_LOCKED_UNTIL, FAIL_PERIOD };
enum { TXN_STATE = 1, TXN_DIGEST, TXN_FQDN, TXN_SERIAL, TXN_CREATED, TXN_REQUEST,
       TXN_GRANT_KIND, TXN_REGISTRATION, TXN_IPS, TXN_SERIAL_NUMBER, TXN_RENEWS,
       TXN_SIGNER_KEY, TXN_CLIENT_IP, TXN_SUBJECT, TXN_DECIDED_AT, TXN_DECIDED_BY,
       TXN_REASON, TXN_UPSTREAM_PENDING, TXN_ENDPOINT, TXN_IDENTITY_NAME,
       TXN_IDENTITY_WHERE };
enum { CERT_DER = 1, CERT_FQDN, CERT_SUBJECT, CERT_TXID, CERT_NOT_BEFORE,
       CERT_NOT_AFTER, CERT_ISSUED_AT, CERT_REVOKED_AT, CERT_REVOCATION_REASON,
       CERT_ISSUER_KEY_ID };
enum { CRL_GENERATION = 1, CRL_CHANGED_AT };
enum { PUB_NUMBER = 1, PUB_GENERATION, PUB_THIS_UPDATE, PUB_NEXT_UPDATE, PUB_CA_ID, PUB_DER };

static const char crl_key[] = "crl";
static const char published_key[] = "crl_published";

#define VERIFIER_LEN (1 + 4 + SCEP_VERIFIER_SALT_LEN + SCEP_VERIFIER_HASH_LEN)
#define I64_LEN 8

static void verifier_encode(const scep_verifier_t *v, unsigned char *out)
{
    out[0] = (unsigned char)v->algorithm;
    out[1] = (unsigned char)(v->iterations >> 24);
    out[2] = (unsigned char)(v->iterations >> 16);
    out[3] = (unsigned char)(v->iterations >> 8);
    out[4] = (unsigned char)v->iterations;
    memcpy(out + 5, v->salt, SCEP_VERIFIER_SALT_LEN);
    memcpy(out + 5 + SCEP_VERIFIER_SALT_LEN, v->hash, SCEP_VERIFIER_HASH_LEN);
}

apr_status_t scep_store_verifier_from(apr_int64_t algorithm, apr_int64_t iterations,
                                      const unsigned char *salt, apr_size_t salt_len,
                                      const unsigned char *hash, apr_size_t hash_len,
                                      scep_verifier_t *v)
{
    /* the ranges are those of the LMDB field (one byte, four bytes), so that a verifier
     * means the same whichever engine kept it */
    if (algorithm < 0 || algorithm > 0xff || iterations < 0
        || iterations > (apr_int64_t)0xffffffffu || !salt || !hash
        || salt_len != SCEP_VERIFIER_SALT_LEN || hash_len != SCEP_VERIFIER_HASH_LEN) {
        return SCEP_DB_CORRUPT;
    }
    v->algorithm = (int)algorithm;
    v->iterations = (apr_uint32_t)iterations;
    memcpy(v->salt, salt, SCEP_VERIFIER_SALT_LEN);
    memcpy(v->hash, hash, SCEP_VERIFIER_HASH_LEN);
    return APR_SUCCESS;
}

static apr_status_t verifier_decode(const unsigned char *in, scep_verifier_t *v)
{
    apr_int64_t iterations = ((apr_int64_t)in[1] << 24) | ((apr_int64_t)in[2] << 16)
                             | ((apr_int64_t)in[3] << 8) | in[4];

    return scep_store_verifier_from(in[0], iterations, in + 5, SCEP_VERIFIER_SALT_LEN,
                                    in + 5 + SCEP_VERIFIER_SALT_LEN, SCEP_VERIFIER_HASH_LEN,
                                    v);
}

/* ---- record reading ---------------------------------------------------------------
 * A reader keeps the first problem it meets, so each decoder reads its fields in a
 * straight line and checks once at the end. */

typedef struct reader_t {
    scep_rec_view_t view;
    apr_pool_t *p;
    apr_status_t rv;
} reader_t;

static apr_status_t reader_init(reader_t *r, apr_pool_t *p, const void *val,
                                apr_size_t vlen)
{
    memset(&r->view, 0, sizeof(r->view));
    r->p = p;
    r->rv = scep_db_rec_parse(val, vlen, &r->view);
    return r->rv;
}

/* The field's bytes when present with exactly `len` bytes; NULL when absent. */
static const unsigned char *rd_fixed(reader_t *r, unsigned int tag, apr_size_t len)
{
    if (!r->view.present[tag]) {
        return NULL;
    }
    if (r->view.field_len[tag] != len) {
        if (r->rv == APR_SUCCESS) {
            r->rv = SCEP_DB_CORRUPT;
        }
        return NULL;
    }
    return r->view.field[tag];
}

/* A copy in the pool; NULL when absent.  A NUL inside would silently shorten the
 * string, so it counts as damage. */
static const char *rd_str(reader_t *r, unsigned int tag)
{
    const unsigned char *s = r->view.field[tag];
    apr_size_t len = r->view.field_len[tag];

    if (!r->view.present[tag]) {
        return NULL;
    }
    if (len && memchr(s, '\0', len)) {
        if (r->rv == APR_SUCCESS) {
            r->rv = SCEP_DB_CORRUPT;
        }
        return NULL;
    }
    return apr_pstrmemdup(r->p, (const char *)s, len);
}

static apr_int64_t rd_i64(reader_t *r, unsigned int tag)
{
    return rd_fixed(r, tag, I64_LEN) ? scep_db_rec_i64(&r->view, tag, 0) : 0;
}

/* ---- keys ------------------------------------------------------------------------ */

/* Empty and overlong keys are scep_db's to judge, not ours: a read finds nothing
 * there, and a write fails and so spoils the transaction, which is what a caller who
 * counts on the commit's status needs. */
static apr_status_t text_key(const char *s, apr_size_t *klen)
{
    if (!s) {
        return APR_EINVAL;
    }
    *klen = strlen(s);
    return APR_SUCCESS;
}

/* The serial's bytes, exactly as the hex spells them (leading zeros are kept: the
 * callers use BN_bn2hex, which never writes a redundant zero byte). */
static apr_status_t serial_key(apr_pool_t *p, const char *hex, unsigned char **key,
                               apr_size_t *len)
{
    apr_size_t n = hex ? strlen(hex) : 0, i;
    unsigned char *out;

    if (n == 0 || n % 2) {
        return APR_EINVAL;
    }
    out = apr_palloc(p, n / 2);
    for (i = 0; i < n; i += 2) {
        int hi = scep_util_hex_digit(hex[i]), lo = scep_util_hex_digit(hex[i + 1]);

        if (hi < 0 || lo < 0) {
            return APR_EINVAL;
        }
        out[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    *key = out;
    *len = n / 2;
    return APR_SUCCESS;
}

/* No challenge has an empty text, so that one is simply not there (a request with an
 * empty challengePassword goes on to the registrations). */
static apr_status_t minted_key(const char *secret, apr_size_t len, unsigned char *key)
{
    if (len == 0) {
        return SCEP_DB_NOTFOUND;
    }
    if (!secret) {
        return APR_EINVAL;
    }
    return EVP_Digest(secret, len, key, NULL, EVP_sha256(), NULL) == 1
           ? APR_SUCCESS : APR_EGENERAL;
}

/* ---- devices ------------------------------------------------------------------- */

scep_device_t *scep_store_device_new(apr_pool_t *p, const char *fqdn)
{
    scep_device_t *dev = apr_pcalloc(p, sizeof(*dev));

    dev->fqdn = fqdn ? apr_pstrdup(p, fqdn) : NULL;
    dev->ips = apr_array_make(p, 0, sizeof(const char *));
    return dev;
}

static apr_status_t device_decode(apr_pool_t *p, const char *fqdn, apr_size_t flen,
                                  const void *val, apr_size_t vlen, scep_device_t **out)
{
    scep_device_t *dev = scep_store_device_new(p, NULL);
    const unsigned char *verifier;
    const char *ips;
    reader_t r;

    if (reader_init(&r, p, val, vlen) != APR_SUCCESS) {
        return r.rv;
    }
    dev->fqdn = apr_pstrmemdup(p, fqdn, flen);
    if ((ips = rd_str(&r, DEV_IPS)) != NULL) {
        char *list = apr_pstrdup(p, ips), *last, *ip;

        for (ip = apr_strtok(list, ",", &last); ip; ip = apr_strtok(NULL, ",", &last)) {
            APR_ARRAY_PUSH(dev->ips, const char *) = ip;
        }
    }
    dev->serial = rd_str(&r, DEV_SERIAL);
    if ((verifier = rd_fixed(&r, DEV_VERIFIER, VERIFIER_LEN)) != NULL
        && verifier_decode(verifier, &dev->verifier) != APR_SUCCESS && r.rv == APR_SUCCESS) {
        r.rv = SCEP_DB_CORRUPT;
    }
    dev->flags = (unsigned int)rd_i64(&r, DEV_FLAGS);
    dev->expires = rd_i64(&r, DEV_EXPIRES);
    dev->profile = rd_str(&r, DEV_PROFILE);
    dev->comment = rd_str(&r, DEV_COMMENT);
    dev->created = rd_i64(&r, DEV_CREATED);
    dev->updated = rd_i64(&r, DEV_UPDATED);
    dev->last_serial = rd_str(&r, DEV_LAST_SERIAL);
    dev->last_not_after = rd_i64(&r, DEV_LAST_NOT_AFTER);
    dev->last_enrolled = rd_i64(&r, DEV_LAST_ENROLLED);
    dev->enrollments = rd_i64(&r, DEV_ENROLLMENTS);
    if (r.rv == APR_SUCCESS) {
        *out = dev;
    }
    return r.rv;
}

apr_status_t scep_store_device_get(scep_txn_t *txn, apr_pool_t *p, const char *fqdn,
                                   scep_device_t **dev)
{
    const void *val;
    apr_size_t klen, vlen;
    apr_status_t rv;

    *dev = NULL;
    if ((rv = text_key(fqdn, &klen)) != APR_SUCCESS) {
        return rv;
    }
    if (scep_store_sql_active(txn)) {
        return scep_store_sql_device_get(txn, p, fqdn, dev);
    }
    if ((rv = scep_db_get(txn, SCEP_DBI_DEVICES, fqdn, klen, &val, &vlen))
           != APR_SUCCESS) {
        return rv;
    }
    return device_decode(p, fqdn, klen, val, vlen, dev);
}

/* The keys that may register a canonical name, the most specific first. */
static apr_array_header_t *device_candidates(apr_pool_t *p, const char *fqdn)
{
    apr_array_header_t *keys = apr_array_make(p, 4, sizeof(const char *));
    scep_identity_kind_e kind = scep_name_key_kind(fqdn);
    const char *dot, *at;

    APR_ARRAY_PUSH(keys, const char *) = fqdn;
    if (kind != SCEP_IDENTITY_HOST) {
        /* "user:a@b.c" tries "user:*@b.c", then "user:*"; other kinds only "<kind>:*".
         * A host wildcard never covers them. */
        apr_size_t prefix = (apr_size_t)(scep_name_key_value(fqdn) - fqdn);

        at = kind == SCEP_IDENTITY_USER ? strrchr(fqdn, '@') : NULL;
        if (at) {
            APR_ARRAY_PUSH(keys, const char *) = apr_pstrcat(p, "user:*", at, NULL);
        }
        APR_ARRAY_PUSH(keys, const char *) = apr_pstrcat(p, apr_pstrndup(p, fqdn, prefix),
                                                         "*", NULL);
        return keys;
    }
    /* "a.b.c" tries "*.b.c", then "*.c", then "*": the longest suffix is the most
     * specific wildcard. */
    for (dot = strchr(fqdn, '.'); dot; dot = strchr(dot + 1, '.')) {
        APR_ARRAY_PUSH(keys, const char *) = apr_pstrcat(p, "*", dot, NULL);
    }
    APR_ARRAY_PUSH(keys, const char *) = "*";
    return keys;
}

apr_status_t scep_store_device_find(scep_txn_t *txn, apr_pool_t *p, const char *fqdn,
                                    scep_device_t **dev)
{
    apr_array_header_t *keys;
    apr_status_t rv;
    int i;

    *dev = NULL;
    if (!fqdn) {
        return APR_EINVAL;
    }
    if (scep_store_sql_active(txn)) {
        /* one round trip for every candidate */
        return scep_store_sql_device_find(txn, p, device_candidates(p, fqdn), dev);
    }
    /* LMDB: the exact name first, the wildcards' keys made only when it is not there */
    rv = scep_store_device_get(txn, p, fqdn, dev);
    keys = rv == SCEP_DB_NOTFOUND ? device_candidates(p, fqdn) : NULL;
    for (i = 1; rv == SCEP_DB_NOTFOUND && i < keys->nelts; i++) {
        rv = scep_store_device_get(txn, p, APR_ARRAY_IDX(keys, i, const char *), dev);
    }
    return rv;
}

/* A registration fit to be written, its addresses joined by commas in *ips. */
static apr_status_t device_writable(apr_pool_t *p, const scep_device_t *dev, const char **ips)
{
    const char *canonical;
    int i;

    /* Keys are compared byte for byte: a name in any other spelling would be a
     * registration that no lookup ever finds. */
    *ips = NULL;
    canonical = dev->fqdn ? scep_name_key(p, dev->fqdn, 1, NULL) : NULL;
    if (!canonical || strcmp(canonical, dev->fqdn) != 0) {
        return APR_EINVAL;
    }
    for (i = 0; dev->ips && i < dev->ips->nelts; i++) {
        const char *ip = APR_ARRAY_IDX(dev->ips, i, const char *);
        const char *canonical_ip = scep_name_ip(p, ip);

        if (!canonical_ip || strcmp(canonical_ip, ip) != 0) {
            return APR_EINVAL;
        }
        *ips = *ips ? apr_pstrcat(p, *ips, ",", ip, NULL) : ip;
    }
    return APR_SUCCESS;
}

apr_status_t scep_store_device_put(scep_txn_t *txn, apr_pool_t *p, const scep_device_t *dev)
{
    unsigned char verifier[VERIFIER_LEN];
    const char *ips;
    scep_rec_t rec;
    apr_status_t rv;

    if ((rv = device_writable(p, dev, &ips)) != APR_SUCCESS) {
        return rv;
    }
    if (scep_store_sql_active(txn)) {
        return scep_store_sql_device_put(txn, p, dev);
    }

    scep_db_rec_init(&rec, p);
    scep_db_rec_put_str(&rec, DEV_IPS, ips);
    scep_db_rec_put_str(&rec, DEV_SERIAL, dev->serial);
    if (dev->verifier.algorithm != 0) {
        verifier_encode(&dev->verifier, verifier);
        scep_db_rec_put_bytes(&rec, DEV_VERIFIER, verifier, sizeof(verifier));
    }
    scep_db_rec_put_i64(&rec, DEV_FLAGS, dev->flags);
    scep_db_rec_put_i64(&rec, DEV_EXPIRES, dev->expires);
    scep_db_rec_put_str(&rec, DEV_PROFILE, dev->profile);
    scep_db_rec_put_str(&rec, DEV_COMMENT, dev->comment);
    scep_db_rec_put_i64(&rec, DEV_CREATED, dev->created);
    scep_db_rec_put_i64(&rec, DEV_UPDATED, dev->updated);
    scep_db_rec_put_str(&rec, DEV_LAST_SERIAL, dev->last_serial);
    scep_db_rec_put_i64(&rec, DEV_LAST_NOT_AFTER, dev->last_not_after);
    scep_db_rec_put_i64(&rec, DEV_LAST_ENROLLED, dev->last_enrolled);
    scep_db_rec_put_i64(&rec, DEV_ENROLLMENTS, dev->enrollments);
    return scep_db_put(txn, SCEP_DBI_DEVICES, dev->fqdn, strlen(dev->fqdn),
                       rec.data, rec.len, 0);
}

apr_status_t scep_store_device_delete(scep_txn_t *txn, const char *fqdn)
{
    apr_size_t klen;
    apr_status_t rv = text_key(fqdn, &klen);

    if (rv == APR_SUCCESS && scep_store_sql_active(txn)) {
        return scep_store_sql_device_delete(txn, fqdn);
    }
    return rv == APR_SUCCESS ? scep_db_del(txn, SCEP_DBI_DEVICES, fqdn, klen, NULL, 0) : rv;
}

typedef struct device_walk_t {
    apr_pool_t *p;
    scep_device_visit_fn fn;
    void *baton;
    apr_status_t rv;
} device_walk_t;

static int device_visit(void *baton, const void *key, apr_size_t klen, const void *val,
                        apr_size_t vlen)
{
    device_walk_t *walk = baton;
    scep_device_t *dev;

    walk->rv = device_decode(walk->p, key, klen, val, vlen, &dev);
    if (walk->rv != APR_SUCCESS) {
        return 1;
    }
    return walk->fn(walk->baton, dev);
}

apr_status_t scep_store_device_foreach(scep_txn_t *txn, apr_pool_t *p, scep_device_visit_fn fn,
                                       void *baton)
{
    device_walk_t walk = { p, fn, baton, APR_SUCCESS };
    apr_status_t rv;

    if (scep_store_sql_active(txn)) {
        return scep_store_sql_device_foreach(txn, p, fn, baton);
    }
    rv = scep_db_foreach(txn, SCEP_DBI_DEVICES, NULL, 0, device_visit, &walk);

    return rv != APR_SUCCESS ? rv : walk.rv;
}

/* ---- minted (dynamic) challenges ------------------------------------------------- */

static apr_status_t minted_decode(apr_pool_t *p, const void *val, apr_size_t vlen,
                                  scep_minted_t **out)
{
    scep_minted_t *m = apr_pcalloc(p, sizeof(*m));
    reader_t r;

    if (reader_init(&r, p, val, vlen) != APR_SUCCESS) {
        return r.rv;
    }
    m->created = rd_i64(&r, MINT_CREATED);
    m->expires = rd_i64(&r, MINT_EXPIRES);
    m->fqdn = rd_str(&r, MINT_FQDN);
    m->profile = rd_str(&r, MINT_PROFILE);
    /* Every minted challenge expires; one without a time would live for ever. */
    if (r.rv == APR_SUCCESS && !r.view.present[MINT_EXPIRES]) {
        r.rv = SCEP_DB_CORRUPT;
    }
    if (r.rv == APR_SUCCESS) {
        *out = m;
    }
    return r.rv;
}

static void minted_encode(scep_rec_t *r, apr_pool_t *p, const scep_minted_t *m)
{
    scep_db_rec_init(r, p);
    scep_db_rec_put_i64(r, MINT_CREATED, m->created);
    scep_db_rec_put_i64(r, MINT_EXPIRES, m->expires);
    scep_db_rec_put_str(r, MINT_FQDN, m->fqdn);
    scep_db_rec_put_str(r, MINT_PROFILE, m->profile);
}

apr_status_t scep_store_minted_create(scep_txn_t *txn, apr_pool_t *p, apr_int64_t now,
                                      apr_int64_t ttl, const char *fqdn, const char *profile,
                                      const char **challenge, scep_minted_t **rec)
{
    unsigned char raw[SCEP_MINTED_BYTES], key[32];
    const char *text;
    scep_minted_t *m;
    scep_rec_t r;
    apr_status_t rv;

    *challenge = NULL;
    if (rec) {
        *rec = NULL;
    }
    if (ttl <= 0) {
        return APR_EINVAL;
    }
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        return APR_EGENERAL;
    }
    text = scep_util_hex(p, raw, sizeof(raw));
    OPENSSL_cleanse(raw, sizeof(raw));
    if ((rv = minted_key(text, strlen(text), key)) != APR_SUCCESS) {
        return rv;
    }
    m = apr_pcalloc(p, sizeof(*m));
    m->created = now;
    m->expires = now + ttl;
    m->fqdn = fqdn ? apr_pstrdup(p, fqdn) : NULL;
    m->profile = profile ? apr_pstrdup(p, profile) : NULL;

    if (scep_store_sql_active(txn)) {
        rv = scep_store_sql_minted_insert(txn, p, key, m);
    }
    else {
        minted_encode(&r, p, m);
        /* 128 random bits do not collide; NOOVERWRITE makes sure of it anyway. */
        rv = scep_db_put(txn, SCEP_DBI_CHALLENGES, key, sizeof(key), r.data, r.len,
                         SCEP_DB_NOOVERWRITE);
    }
    if (rv == APR_SUCCESS) {
        *challenge = text;
        if (rec) {
            *rec = m;
        }
    }
    return rv;
}

/* Whether `secret` has the shape scep_store_minted_create gives every minted challenge
 * (the lowercase hex of SCEP_MINTED_BYTES): a challenge of any other shape was never
 * minted, and is looked up nowhere (a round trip saved on a shared store for every
 * registration's challenge). */
static int minted_shape(const char *secret, apr_size_t len)
{
    apr_size_t i;

    if (len != 2 * SCEP_MINTED_BYTES) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (!apr_isxdigit(secret[i]) || apr_isupper(secret[i])) {
            return 0;
        }
    }
    return 1;
}

apr_status_t scep_store_minted_get(scep_txn_t *txn, apr_pool_t *p, const char *secret,
                                   apr_size_t len, scep_minted_t **rec)
{
    unsigned char key[32];
    const void *val;
    apr_size_t vlen;
    apr_status_t rv;

    *rec = NULL;
    if ((rv = minted_key(secret, len, key)) != APR_SUCCESS) {
        return rv;
    }
    if (!minted_shape(secret, len)) {
        return SCEP_DB_NOTFOUND;
    }
    if (scep_store_sql_active(txn)) {
        return scep_store_sql_minted_get(txn, p, key, rec);
    }
    if ((rv = scep_db_get(txn, SCEP_DBI_CHALLENGES, key, sizeof(key), &val, &vlen))
           != APR_SUCCESS) {
        return rv;
    }
    return minted_decode(p, val, vlen, rec);
}

apr_status_t scep_store_minted_delete(scep_txn_t *txn, const char *secret, apr_size_t len)
{
    unsigned char key[32];
    apr_status_t rv = minted_key(secret, len, key);

    if (rv == APR_SUCCESS && scep_store_sql_active(txn)) {
        return scep_store_sql_minted_delete(txn, key);
    }
    return rv == APR_SUCCESS
           ? scep_db_del(txn, SCEP_DBI_CHALLENGES, key, sizeof(key), NULL, 0) : rv;
}

typedef struct minted_purge_t {
    apr_pool_t *p;
    apr_int64_t now;
    apr_array_header_t *keys;       /* unsigned char[32] each */
} minted_purge_t;

static int minted_expired(void *baton, const void *key, apr_size_t klen, const void *val,
                          apr_size_t vlen)
{
    minted_purge_t *purge = baton;
    scep_minted_t *m;

    /* Records that cannot be read (damaged, or from a newer mod_scep) are left alone:
     * the purge is housekeeping and should neither fail on them nor destroy them. */
    if (klen == 32 && minted_decode(purge->p, val, vlen, &m) == APR_SUCCESS
        && m->expires <= purge->now) {
        memcpy(apr_array_push(purge->keys), key, 32);
    }
    return 0;
}

apr_status_t scep_store_minted_purge(scep_txn_t *txn, apr_pool_t *p, apr_int64_t now,
                                     apr_size_t *removed)
{
    minted_purge_t purge;
    apr_status_t rv;
    int i;

    *removed = 0;
    if (scep_store_sql_active(txn)) {
        return scep_store_sql_minted_purge(txn, p, now, removed);
    }
    purge.p = p;
    purge.now = now;
    purge.keys = apr_array_make(p, 16, 32);
    /* Collected first: deleting under a running cursor is not something scep_db
     * promises to support. */
    rv = scep_db_foreach(txn, SCEP_DBI_CHALLENGES, NULL, 0, minted_expired, &purge);
    for (i = 0; rv == APR_SUCCESS && i < purge.keys->nelts; i++) {
        rv = scep_db_del(txn, SCEP_DBI_CHALLENGES, purge.keys->elts + 32 * (apr_size_t)i,
                         32, NULL, 0);
        if (rv == APR_SUCCESS) {
            (*removed)++;
        }
    }
    return rv;
}

apr_status_t scep_store_minted_count(scep_txn_t *txn, apr_size_t *count)
{
    if (scep_store_sql_active(txn)) {
        return scep_store_sql_minted_count(txn, count);
    }
    return scep_db_count(txn, SCEP_DBI_CHALLENGES, count);
}

/* ---- failure counters ---------------------------------------------------------- */

static apr_status_t failure_decode(const void *val, apr_size_t vlen, scep_failure_t *f)
{
    reader_t r;

    /* Integers only, so the reader needs no pool. */
    if (reader_init(&r, NULL, val, vlen) != APR_SUCCESS) {
        return r.rv;
    }
    f->count = rd_i64(&r, FAIL_COUNT);
    f->last = rd_i64(&r, FAIL_LAST);
    f->locked_until = rd_i64(&r, FAIL_LOCKED_UNTIL);
    f->period = rd_i64(&r, FAIL_PERIOD);
    if (r.rv != APR_SUCCESS) {
        memset(f, 0, sizeof(*f));
    }
    return r.rv;
}

apr_status_t scep_store_failure_get(scep_txn_t *txn, const char *fqdn, scep_failure_t *f)
{
    const void *val;
    apr_size_t klen, vlen;
    apr_status_t rv;

    /* Zeroed also when absent (SCEP_DB_NOTFOUND): "no failures yet". */
    memset(f, 0, sizeof(*f));
    if ((rv = text_key(fqdn, &klen)) != APR_SUCCESS) {
        return rv;
    }
    if (scep_store_sql_active(txn)) {
        return scep_store_sql_failure_get(txn, fqdn, f);
    }
    if ((rv = scep_db_get(txn, SCEP_DBI_FAILURES, fqdn, klen, &val, &vlen))
           != APR_SUCCESS) {
        return rv;
    }
    return failure_decode(val, vlen, f);
}

apr_status_t scep_store_failure_get_pair(scep_txn_t *txn, const char *a, const char *b,
                                         scep_failure_t *fa, int *found_a,
                                         scep_failure_t *fb, int *found_b)
{
    apr_pool_t *p;
    apr_size_t klen;
    apr_status_t rv;

    *found_a = *found_b = 0;
    memset(fa, 0, sizeof(*fa));
    memset(fb, 0, sizeof(*fb));
    if ((rv = text_key(a, &klen)) != APR_SUCCESS || (rv = text_key(b, &klen)) != APR_SUCCESS) {
        return rv;
    }
    if (!scep_store_sql_active(txn)) {
        rv = scep_store_failure_get(txn, a, fa);
        *found_a = rv == APR_SUCCESS;
        if (rv == APR_SUCCESS || rv == SCEP_DB_NOTFOUND) {
            rv = scep_store_failure_get(txn, b, fb);
            *found_b = rv == APR_SUCCESS;
        }
        return rv == SCEP_DB_NOTFOUND ? APR_SUCCESS : rv;
    }
    if (apr_pool_create(&p, NULL) != APR_SUCCESS) {
        return scep_db_txn_fail(txn, APR_ENOMEM);
    }
    rv = scep_store_sql_failure_get_pair(txn, p, a, b, fa, found_a, fb, found_b);
    apr_pool_destroy(p);
    return rv;
}

apr_status_t scep_store_failure_put(scep_txn_t *txn, apr_pool_t *p, const char *fqdn,
                                    const scep_failure_t *f)
{
    scep_rec_t rec;
    apr_size_t klen;
    apr_status_t rv;

    if ((rv = text_key(fqdn, &klen)) != APR_SUCCESS) {
        return rv;
    }
    if (scep_store_sql_active(txn)) {
        return scep_store_sql_failure_put(txn, p, fqdn, f);
    }
    scep_db_rec_init(&rec, p);
    scep_db_rec_put_i64(&rec, FAIL_COUNT, f->count);
    scep_db_rec_put_i64(&rec, FAIL_LAST, f->last);
    scep_db_rec_put_i64(&rec, FAIL_LOCKED_UNTIL, f->locked_until);
    if (f->period) {
        scep_db_rec_put_i64(&rec, FAIL_PERIOD, f->period);
    }
    return scep_db_put(txn, SCEP_DBI_FAILURES, fqdn, klen, rec.data, rec.len, 0);
}

apr_status_t scep_store_failure_clear(scep_txn_t *txn, const char *fqdn)
{
    apr_size_t klen;
    apr_status_t rv = text_key(fqdn, &klen);

    if (rv == APR_SUCCESS && scep_store_sql_active(txn)) {
        return scep_store_sql_failure_clear(txn, fqdn);
    }
    return rv == APR_SUCCESS ? scep_db_del(txn, SCEP_DBI_FAILURES, fqdn, klen, NULL, 0) : rv;
}

typedef struct failure_purge_t {
    apr_pool_t *p;
    apr_int64_t now, idle;
    apr_array_header_t *keys;           /* const char *: deleted once the walk is over */
    apr_status_t rv;
} failure_purge_t;

static int failure_stale(void *baton, const void *key, apr_size_t klen, const void *val,
                         apr_size_t vlen)
{
    failure_purge_t *purge = baton;
    scep_failure_t f;
    reader_t r;

    if (reader_init(&r, NULL, val, vlen) != APR_SUCCESS) {
        purge->rv = r.rv;
        return 1;
    }
    f.last = rd_i64(&r, FAIL_LAST);
    f.locked_until = rd_i64(&r, FAIL_LOCKED_UNTIL);
    f.period = rd_i64(&r, FAIL_PERIOD);
    if (r.rv != APR_SUCCESS) {
        purge->rv = r.rv;
        return 1;
    }
    if (f.locked_until <= purge->now
        && f.last + (f.period > purge->idle ? f.period : purge->idle) <= purge->now) {
        APR_ARRAY_PUSH(purge->keys, const char *) = apr_pstrmemdup(purge->p, key, klen);
    }
    return 0;
}

apr_status_t scep_store_failure_purge(scep_txn_t *txn, apr_pool_t *p, apr_int64_t now,
                                      apr_int64_t idle, apr_size_t *removed)
{
    failure_purge_t purge;
    apr_status_t rv;
    int i;

    *removed = 0;
    if (scep_store_sql_active(txn)) {
        return scep_store_sql_failure_purge(txn, p, now, idle, removed);
    }
    memset(&purge, 0, sizeof(purge));
    purge.p = p;
    purge.now = now;
    purge.idle = idle;
    purge.keys = apr_array_make(p, 64, sizeof(const char *));
    rv = scep_db_foreach(txn, SCEP_DBI_FAILURES, NULL, 0, failure_stale, &purge);
    if (rv == APR_SUCCESS) {
        rv = purge.rv;
    }
    for (i = 0; rv == APR_SUCCESS && i < purge.keys->nelts; i++) {
        rv = scep_store_failure_clear(txn, APR_ARRAY_IDX(purge.keys, i, const char *));
        if (rv == APR_SUCCESS) {
            ++*removed;
        }
    }
    return rv;
}

apr_status_t scep_store_failure_count_estimate(scep_txn_t *txn, apr_size_t *count)
{
    if (scep_store_sql_active(txn)) {
        return scep_store_sql_failure_count_estimate(txn, count);
    }
    return scep_store_failure_count(txn, count);
}

apr_status_t scep_store_failure_count(scep_txn_t *txn, apr_size_t *count)
{
    if (scep_store_sql_active(txn)) {
        return scep_store_sql_failure_count(txn, count);
    }
    return scep_db_count(txn, SCEP_DBI_FAILURES, count);
}

/* ---- transactions --------------------------------------------------------------- */

/* A transaction is stored under its ID, a NUL and the SHA-256 of its requester's key, so
 * that the ID one requester chose never finds, blocks or reveals another's.  Records
 * written before requesters were kept are under the bare ID (bare_key). */
#define TXN_SCOPED_KEY_EXTRA (1 + SCEP_REQUEST_DIGEST_LEN)

static apr_status_t transaction_key(apr_pool_t *p, const char *id,
                                    const unsigned char *requester, const void **key,
                                    apr_size_t *klen)
{
    apr_size_t idlen;
    unsigned char *k;
    apr_status_t rv = text_key(id, &idlen);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!requester) {
        *key = id;
        *klen = idlen;
        return APR_SUCCESS;
    }
    k = apr_palloc(p, idlen + TXN_SCOPED_KEY_EXTRA);
    memcpy(k, id, idlen);
    k[idlen] = '\0';
    memcpy(k + idlen + 1, requester, SCEP_REQUEST_DIGEST_LEN);
    *key = k;
    *klen = idlen + TXN_SCOPED_KEY_EXTRA;
    return APR_SUCCESS;
}

/* A held request's identity (tags 20, 21) decides what it may be completed as, so it is
 * read strictly: both or neither, never for a host, a place its kind is read from, and
 * the name's key is the transaction's key.  Records without them (hosts, and every
 * record written before the other kinds) read as ever. */
static int identity_fits(apr_pool_t *p, const scep_transaction_t *rec, int name_present,
                         int where_present, apr_int64_t where)
{
    scep_identity_kind_e kind;
    const char *key;

    if (!name_present && !where_present) {
        return 1;
    }
    if (!rec->fqdn || !rec->identity_name || !where_present) {
        return 0;
    }
    kind = scep_name_key_kind(rec->fqdn);
    key = scep_name_identity_key(p, kind, rec->identity_name, 0, NULL);
    return kind != SCEP_IDENTITY_HOST && scep_name_where_fits(kind, where) && key
           && strcmp(key, rec->fqdn) == 0;
}

apr_status_t scep_store_transaction_check(apr_pool_t *p, const scep_transaction_t *t,
                                          int name_present, int where_present,
                                          apr_int64_t where, const unsigned char *requester)
{
    if (!t->state || !identity_fits(p, t, name_present, where_present, where)) {
        return SCEP_DB_CORRUPT;
    }
    /* the requester a record is kept under is the signer key it repeats */
    if (requester
        && (!t->has_signer_key
            || memcmp(t->signer_key, requester, SCEP_REQUEST_DIGEST_LEN) != 0)) {
        return SCEP_DB_CORRUPT;
    }
    return APR_SUCCESS;
}

static apr_status_t transaction_decode(apr_pool_t *p, const void *key, apr_size_t klen,
                                       const void *val, apr_size_t vlen,
                                       scep_transaction_t **t)
{
    scep_transaction_t *rec;
    const unsigned char *digest, *signer_key;
    const char *nul = memchr(key, '\0', klen);
    apr_size_t idlen = nul ? (apr_size_t)(nul - (const char *)key) : klen;
    apr_int64_t where;
    reader_t r;

    /* A NUL is only ever followed by the requester's digest, which the record repeats. */
    if (nul && klen != idlen + TXN_SCOPED_KEY_EXTRA) {
        return SCEP_DB_CORRUPT;
    }
    if (reader_init(&r, p, val, vlen) != APR_SUCCESS) {
        return r.rv;
    }
    rec = apr_pcalloc(p, sizeof(*rec));
    rec->transaction_id = apr_pstrmemdup(p, key, idlen);
    rec->bare_key = !nul;
    rec->state = rd_str(&r, TXN_STATE);
    /* The digest is what tells a retry from a different request under the same ID,
     * so a transaction without one is damaged, not merely old. */
    digest = rd_fixed(&r, TXN_DIGEST, SCEP_REQUEST_DIGEST_LEN);
    if (digest) {
        memcpy(rec->request_digest, digest, SCEP_REQUEST_DIGEST_LEN);
    }
    else if (r.rv == APR_SUCCESS) {
        r.rv = SCEP_DB_CORRUPT;
    }
    rec->fqdn = rd_str(&r, TXN_FQDN);
    rec->serial = rd_str(&r, TXN_SERIAL);
    rec->created = rd_i64(&r, TXN_CREATED);
    if (r.view.present[TXN_REQUEST] && r.view.field_len[TXN_REQUEST] > 0) {
        rec->request_len = r.view.field_len[TXN_REQUEST];
        rec->request = apr_pmemdup(p, r.view.field[TXN_REQUEST], rec->request_len);
    }
    rec->grant_kind = (int)rd_i64(&r, TXN_GRANT_KIND);
    rec->registration = rd_str(&r, TXN_REGISTRATION);
    rec->ips = rd_str(&r, TXN_IPS);
    rec->serial_number = rd_str(&r, TXN_SERIAL_NUMBER);
    rec->renews = rd_str(&r, TXN_RENEWS);
    if ((signer_key = rd_fixed(&r, TXN_SIGNER_KEY, SCEP_REQUEST_DIGEST_LEN)) != NULL) {
        memcpy(rec->signer_key, signer_key, SCEP_REQUEST_DIGEST_LEN);
        rec->has_signer_key = 1;
    }
    rec->client_ip = rd_str(&r, TXN_CLIENT_IP);
    rec->subject = rd_str(&r, TXN_SUBJECT);
    rec->decided_at = rd_i64(&r, TXN_DECIDED_AT);
    rec->decided_by = rd_str(&r, TXN_DECIDED_BY);
    rec->reason = rd_str(&r, TXN_REASON);
    rec->upstream_pending = rd_i64(&r, TXN_UPSTREAM_PENDING) != 0;
    rec->endpoint = rd_str(&r, TXN_ENDPOINT);
    rec->identity_name = rd_str(&r, TXN_IDENTITY_NAME);
    where = rd_i64(&r, TXN_IDENTITY_WHERE);
    rec->identity_where = (int)where;
    if (r.rv == APR_SUCCESS) {
        r.rv = scep_store_transaction_check(p, rec, r.view.present[TXN_IDENTITY_NAME],
                                            r.view.present[TXN_IDENTITY_WHERE], where,
                                            nul ? (const unsigned char *)nul + 1 : NULL);
    }
    if (r.rv == APR_SUCCESS) {
        *t = rec;
    }
    return r.rv;
}

apr_status_t scep_store_transaction_get_for(scep_txn_t *txn, apr_pool_t *p, const char *id,
                                            const unsigned char *requester,
                                            scep_transaction_t **t)
{
    const void *key, *val;
    apr_size_t klen, vlen;
    apr_status_t rv;

    *t = NULL;
    if ((rv = transaction_key(p, id, requester, &key, &klen)) != APR_SUCCESS) {
        return rv;
    }
    if (scep_store_sql_active(txn)) {
        return scep_store_sql_transaction_get_for(txn, p, id, requester, t);
    }
    rv = scep_db_get(txn, SCEP_DBI_TRANSACTIONS, key, klen, &val, &vlen);
    if (rv == SCEP_DB_NOTFOUND && requester) {
        key = id;
        klen = strlen(id);
        rv = scep_db_get(txn, SCEP_DBI_TRANSACTIONS, key, klen, &val, &vlen);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return transaction_decode(p, key, klen, val, vlen, t);
}

typedef struct txn_by_id_t {
    apr_pool_t *p;
    apr_size_t idlen;
    scep_transaction_t *found;
    int matches;
    apr_status_t rv;
} txn_by_id_t;

static int txn_with_id(void *baton, const void *key, apr_size_t klen, const void *val,
                       apr_size_t vlen)
{
    txn_by_id_t *by = baton;
    scep_transaction_t *t;

    /* the prefix walk also meets longer IDs that start with this one */
    if (klen != by->idlen && ((const char *)key)[by->idlen] != '\0') {
        return 0;
    }
    if ((by->rv = transaction_decode(by->p, key, klen, val, vlen, &t)) != APR_SUCCESS) {
        return 1;
    }
    by->found = t;
    return ++by->matches > 1;
}

apr_status_t scep_store_transaction_get(scep_txn_t *txn, apr_pool_t *p, const char *id,
                                        scep_transaction_t **t)
{
    txn_by_id_t by;
    apr_status_t rv;

    *t = NULL;
    memset(&by, 0, sizeof(by));
    by.p = p;
    if ((rv = text_key(id, &by.idlen)) != APR_SUCCESS) {
        return rv;
    }
    if (by.idlen == 0) {
        return SCEP_DB_NOTFOUND;
    }
    if (scep_store_sql_active(txn)) {
        return scep_store_sql_transaction_get(txn, p, id, t);
    }
    rv = scep_db_foreach(txn, SCEP_DBI_TRANSACTIONS, id, by.idlen, txn_with_id, &by);
    if (rv == APR_SUCCESS) {
        rv = by.rv;
    }
    if (rv == APR_SUCCESS) {
        rv = by.matches == 0 ? SCEP_DB_NOTFOUND : by.matches > 1 ? SCEP_DB_EXISTS
             : APR_SUCCESS;
    }
    if (rv == APR_SUCCESS) {
        *t = by.found;
    }
    return rv;
}

apr_status_t scep_store_transaction_reread(scep_txn_t *txn, apr_pool_t *p,
                                           const scep_transaction_t *t,
                                           scep_transaction_t **fresh)
{
    const void *key, *val;
    apr_size_t klen, vlen;
    apr_status_t rv;

    *fresh = NULL;
    if (scep_store_sql_active(txn)) {
        return scep_store_sql_transaction_reread(txn, p, t, fresh);
    }
    rv = transaction_key(p, t->transaction_id,
                         t->has_signer_key && !t->bare_key ? t->signer_key : NULL, &key,
                         &klen);
    if (rv == APR_SUCCESS) {
        rv = scep_db_get(txn, SCEP_DBI_TRANSACTIONS, key, klen, &val, &vlen);
    }
    return rv == APR_SUCCESS ? transaction_decode(p, key, klen, val, vlen, fresh) : rv;
}

typedef struct txn_walk_t {
    apr_pool_t *scratch;
    int held_only;
    scep_transaction_visit_fn fn;
    void *baton;
    apr_status_t rv;
} txn_walk_t;

static int txn_visit(void *baton, const void *key, apr_size_t klen, const void *val,
                     apr_size_t vlen)
{
    txn_walk_t *walk = baton;
    scep_transaction_t *t;
    int stop;

    walk->rv = transaction_decode(walk->scratch, key, klen, val, vlen, &t);
    if (walk->rv != APR_SUCCESS) {
        return 1;
    }
    stop = (!walk->held_only || strcmp(t->state, SCEP_TXN_ISSUED) != 0)
           && walk->fn(walk->baton, t);
    apr_pool_clear(walk->scratch);
    return stop;
}

static apr_status_t transaction_walk(scep_txn_t *txn, apr_pool_t *p, int held_only,
                                     scep_transaction_visit_fn fn, void *baton)
{
    txn_walk_t walk;
    apr_status_t rv;

    if (scep_store_sql_active(txn)) {
        return scep_store_sql_transaction_walk(txn, p, held_only, fn, baton);
    }
    memset(&walk, 0, sizeof(walk));
    walk.held_only = held_only;
    walk.fn = fn;
    walk.baton = baton;
    if (apr_pool_create(&walk.scratch, p) != APR_SUCCESS) {
        return APR_ENOMEM;
    }
    rv = scep_db_foreach(txn, SCEP_DBI_TRANSACTIONS, NULL, 0, txn_visit, &walk);
    apr_pool_destroy(walk.scratch);
    return rv != APR_SUCCESS ? rv : walk.rv;
}

apr_status_t scep_store_transaction_foreach_held(scep_txn_t *txn, apr_pool_t *p,
                                                 scep_transaction_visit_fn fn, void *baton)
{
    return transaction_walk(txn, p, 1, fn, baton);
}

apr_status_t scep_store_transaction_foreach(scep_txn_t *txn, apr_pool_t *p,
                                            scep_transaction_visit_fn fn, void *baton)
{
    return transaction_walk(txn, p, 0, fn, baton);
}

apr_status_t scep_store_transaction_put(scep_txn_t *txn, apr_pool_t *p,
                                        const scep_transaction_t *t)
{
    scep_rec_t rec;
    const void *key;
    apr_size_t klen;
    apr_status_t rv;

    rv = transaction_key(p, t->transaction_id,
                         t->has_signer_key && !t->bare_key ? t->signer_key : NULL, &key,
                         &klen);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (scep_store_sql_active(txn)) {
        return scep_store_sql_transaction_put(txn, p, t);
    }
    scep_db_rec_init(&rec, p);
    scep_db_rec_put_str(&rec, TXN_STATE, t->state);
    scep_db_rec_put_bytes(&rec, TXN_DIGEST, t->request_digest, SCEP_REQUEST_DIGEST_LEN);
    scep_db_rec_put_str(&rec, TXN_FQDN, t->fqdn);
    scep_db_rec_put_str(&rec, TXN_SERIAL, t->serial);
    scep_db_rec_put_i64(&rec, TXN_CREATED, t->created);
    if (t->request && t->request_len) {
        scep_db_rec_put_bytes(&rec, TXN_REQUEST, t->request, t->request_len);
        scep_db_rec_put_i64(&rec, TXN_GRANT_KIND, t->grant_kind);
    }
    scep_db_rec_put_str(&rec, TXN_REGISTRATION, t->registration);
    scep_db_rec_put_str(&rec, TXN_IPS, t->ips);
    scep_db_rec_put_str(&rec, TXN_SERIAL_NUMBER, t->serial_number);
    scep_db_rec_put_str(&rec, TXN_RENEWS, t->renews);
    if (t->has_signer_key) {
        scep_db_rec_put_bytes(&rec, TXN_SIGNER_KEY, t->signer_key, SCEP_REQUEST_DIGEST_LEN);
    }
    scep_db_rec_put_str(&rec, TXN_CLIENT_IP, t->client_ip);
    scep_db_rec_put_str(&rec, TXN_SUBJECT, t->subject);
    if (t->decided_at) {
        scep_db_rec_put_i64(&rec, TXN_DECIDED_AT, t->decided_at);
    }
    scep_db_rec_put_str(&rec, TXN_DECIDED_BY, t->decided_by);
    scep_db_rec_put_str(&rec, TXN_REASON, t->reason);
    if (t->upstream_pending) {
        scep_db_rec_put_i64(&rec, TXN_UPSTREAM_PENDING, 1);
    }
    scep_db_rec_put_str(&rec, TXN_ENDPOINT, t->endpoint);
    scep_db_rec_put_str(&rec, TXN_IDENTITY_NAME, t->identity_name);
    if (t->identity_where) {
        scep_db_rec_put_i64(&rec, TXN_IDENTITY_WHERE, t->identity_where);
    }
    return scep_db_put(txn, SCEP_DBI_TRANSACTIONS, key, klen, rec.data, rec.len, 0);
}

/* ---- issued certificates ------------------------------------------------------- */

static apr_status_t cert_decode(apr_pool_t *p, const unsigned char *key, apr_size_t klen,
                                const void *val, apr_size_t vlen, scep_cert_rec_t **out)
{
    scep_cert_rec_t *c;
    reader_t r;

    if (reader_init(&r, p, val, vlen) != APR_SUCCESS) {
        return r.rv;
    }
    c = apr_pcalloc(p, sizeof(*c));
    c->serial = scep_util_hex_upper(p, key, klen);
    if (r.view.present[CERT_DER] && r.view.field_len[CERT_DER] > 0) {
        c->der_len = r.view.field_len[CERT_DER];
        c->der = apr_pmemdup(p, r.view.field[CERT_DER], c->der_len);
    }
    c->fqdn = rd_str(&r, CERT_FQDN);
    c->subject = rd_str(&r, CERT_SUBJECT);
    c->transaction_id = rd_str(&r, CERT_TXID);
    c->not_before = rd_i64(&r, CERT_NOT_BEFORE);
    c->not_after = rd_i64(&r, CERT_NOT_AFTER);
    c->issued_at = rd_i64(&r, CERT_ISSUED_AT);
    c->revoked_at = rd_i64(&r, CERT_REVOKED_AT);
    c->revocation_reason = (int)rd_i64(&r, CERT_REVOCATION_REASON);
    if (r.view.present[CERT_ISSUER_KEY_ID] && r.view.field_len[CERT_ISSUER_KEY_ID] > 0) {
        c->issuer_key_id_len = r.view.field_len[CERT_ISSUER_KEY_ID];
        c->issuer_key_id = apr_pmemdup(p, r.view.field[CERT_ISSUER_KEY_ID],
                                       c->issuer_key_id_len);
    }
    if (r.rv == APR_SUCCESS) {
        *out = c;
    }
    return r.rv;
}

static apr_status_t cert_get_key(scep_txn_t *txn, apr_pool_t *p, const unsigned char *key,
                                 apr_size_t klen, scep_cert_rec_t **c)
{
    const void *val;
    apr_size_t vlen;
    apr_status_t rv = scep_db_get(txn, SCEP_DBI_CERTS, key, klen, &val, &vlen);

    return rv == APR_SUCCESS ? cert_decode(p, key, klen, val, vlen, c) : rv;
}

const char *scep_store_serial_hex(apr_pool_t *p, const ASN1_INTEGER *serial)
{
    BIGNUM *bn = serial ? ASN1_INTEGER_to_BN(serial, NULL) : NULL;
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    const char *copy = hex ? apr_pstrdup(p, hex) : NULL;

    OPENSSL_free(hex);
    BN_free(bn);
    return copy;
}

apr_status_t scep_store_cert_put(scep_txn_t *txn, apr_pool_t *p, const scep_cert_rec_t *c)
{
    unsigned char *key;
    scep_cert_rec_t *old;
    scep_rec_t rec;
    apr_size_t klen, flen = 0;
    int index = c->fqdn != NULL;
    apr_status_t rv;

    if ((rv = serial_key(p, c->serial, &key, &klen)) != APR_SUCCESS
        || (c->fqdn && (rv = text_key(c->fqdn, &flen)) != APR_SUCCESS)) {
        return rv;
    }
    if (scep_store_sql_active(txn)) {
        return scep_store_sql_cert_put(txn, p, c);
    }
    /* A rewrite (revocation, say) under the same name keeps its index entry; under
     * another name the entry moves, so that the old name stops listing it.  Another
     * certificate under a serial in use is refused, as the shared store's table refuses
     * it: serials are unique, and the one first recorded is the one clients hold. */
    rv = cert_get_key(txn, p, key, klen, &old);
    if (rv == APR_SUCCESS && (old->der_len != c->der_len
                              || (c->der_len && memcmp(old->der, c->der, c->der_len) != 0))) {
        return scep_db_txn_fail(txn, SCEP_DB_EXISTS);
    }
    if (rv == APR_SUCCESS && old->fqdn) {
        if (c->fqdn && strcmp(old->fqdn, c->fqdn) == 0) {
            index = 0;
        }
        else {
            rv = scep_db_del(txn, SCEP_DBI_CERTS_BY_FQDN, old->fqdn, strlen(old->fqdn),
                             key, klen);
        }
    }
    if (rv != APR_SUCCESS && rv != SCEP_DB_NOTFOUND) {
        return rv;
    }

    scep_db_rec_init(&rec, p);
    if (c->der && c->der_len) {
        scep_db_rec_put_bytes(&rec, CERT_DER, c->der, c->der_len);
    }
    scep_db_rec_put_str(&rec, CERT_FQDN, c->fqdn);
    scep_db_rec_put_str(&rec, CERT_SUBJECT, c->subject);
    scep_db_rec_put_str(&rec, CERT_TXID, c->transaction_id);
    scep_db_rec_put_i64(&rec, CERT_NOT_BEFORE, c->not_before);
    scep_db_rec_put_i64(&rec, CERT_NOT_AFTER, c->not_after);
    scep_db_rec_put_i64(&rec, CERT_ISSUED_AT, c->issued_at);
    scep_db_rec_put_i64(&rec, CERT_REVOKED_AT, c->revoked_at);
    if (c->revoked_at) {
        scep_db_rec_put_i64(&rec, CERT_REVOCATION_REASON, c->revocation_reason);
    }
    if (c->issuer_key_id && c->issuer_key_id_len) {
        scep_db_rec_put_bytes(&rec, CERT_ISSUER_KEY_ID, c->issuer_key_id, c->issuer_key_id_len);
    }
    rv = scep_db_put(txn, SCEP_DBI_CERTS, key, klen, rec.data, rec.len, 0);
    if (rv == APR_SUCCESS && index) {
        rv = scep_db_put(txn, SCEP_DBI_CERTS_BY_FQDN, c->fqdn, flen, key, klen, 0);
    }
    return rv;
}

apr_status_t scep_store_cert_get(scep_txn_t *txn, apr_pool_t *p, const char *serial_hex,
                                 scep_cert_rec_t **c)
{
    unsigned char *key;
    apr_size_t klen;
    apr_status_t rv;

    *c = NULL;
    if ((rv = serial_key(p, serial_hex, &key, &klen)) != APR_SUCCESS) {
        return rv;
    }
    if (scep_store_sql_active(txn)) {
        return scep_store_sql_cert_get(txn, p, serial_hex, c);
    }
    return cert_get_key(txn, p, key, klen, c);
}

typedef struct cert_walk_t {
    apr_pool_t *p;
    apr_pool_t *scratch;                /* one record at a time: walks stay small */
    scep_cert_visit_fn fn;
    void *baton;
    apr_status_t rv;
    apr_size_t flen;                /* by FQDN: the exact key length */
    apr_array_header_t *serials;    /* by FQDN: the serials' bytes, as strings */
} cert_walk_t;

static int cert_visit(void *baton, const void *key, apr_size_t klen, const void *val,
                      apr_size_t vlen)
{
    cert_walk_t *walk = baton;
    scep_cert_rec_t *c;

    int stop;

    walk->rv = cert_decode(walk->scratch, key, klen, val, vlen, &c);
    if (walk->rv != APR_SUCCESS) {
        return 1;
    }
    stop = walk->fn(walk->baton, c);
    apr_pool_clear(walk->scratch);
    return stop;
}

static int serial_visit(void *baton, const void *key, apr_size_t klen, const void *val,
                        apr_size_t vlen)
{
    cert_walk_t *walk = baton;

    /* The walk is by prefix, so "a.example" also meets "a.example.org".  The exact
     * key is a prefix of every other one and sorts first, so the first longer key
     * ends the walk. */
    if (klen != walk->flen) {
        return 1;
    }
    if (vlen == 0) {
        walk->rv = SCEP_DB_CORRUPT;
        return 1;
    }
    APR_ARRAY_PUSH(walk->serials, const char *) = scep_util_hex_upper(walk->p, val, vlen);
    return 0;
}

apr_status_t scep_store_cert_foreach(scep_txn_t *txn, apr_pool_t *p, const char *fqdn,
                                     scep_cert_visit_fn fn, void *baton)
{
    cert_walk_t walk;
    apr_status_t rv;
    int i;

    if (fqdn && (rv = text_key(fqdn, &walk.flen)) != APR_SUCCESS) {
        return rv;
    }
    if (scep_store_sql_active(txn)) {
        return scep_store_sql_cert_foreach(txn, p, fqdn, fn, baton);
    }
    memset(&walk, 0, sizeof(walk));
    walk.p = p;
    walk.fn = fn;
    walk.baton = baton;
    if (apr_pool_create(&walk.scratch, p) != APR_SUCCESS) {
        return APR_ENOMEM;
    }
    if (!fqdn) {
        rv = scep_db_foreach(txn, SCEP_DBI_CERTS, NULL, 0, cert_visit, &walk);
        apr_pool_destroy(walk.scratch);
        return rv != APR_SUCCESS ? rv : walk.rv;
    }
    if ((rv = text_key(fqdn, &walk.flen)) != APR_SUCCESS || walk.flen == 0) {
        return rv;      /* "" would be the prefix of every name */
    }
    /* Serials first, certificates after: no lookups while scep_db's cursor runs. */
    walk.serials = apr_array_make(p, 4, sizeof(const char *));
    rv = scep_db_foreach(txn, SCEP_DBI_CERTS_BY_FQDN, fqdn, walk.flen, serial_visit, &walk);
    if (rv == APR_SUCCESS) {
        rv = walk.rv;
    }
    for (i = 0; rv == APR_SUCCESS && i < walk.serials->nelts; i++) {
        scep_cert_rec_t *c;

        rv = scep_store_cert_get(txn, walk.scratch,
                                 APR_ARRAY_IDX(walk.serials, i, const char *), &c);
        /* Both entries are written in one transaction; an index entry without its
         * certificate is damage, not an absent result. */
        if (rv == SCEP_DB_NOTFOUND) {
            rv = SCEP_DB_CORRUPT;
        }
        if (rv == APR_SUCCESS && fn(baton, c)) {
            break;
        }
        apr_pool_clear(walk.scratch);
    }
    apr_pool_destroy(walk.scratch);
    return rv;
}

/* ---- revocation ---------------------------------------------------------------- */

static const char *const reason_names[] = {
    "unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
    "cessationOfOperation", "certificateHold", NULL, "removeFromCRL", "privilegeWithdrawn",
    "aACompromise"
};

const char *scep_store_reason_name(int reason)
{
    if (reason < 0 || reason >= (int)(sizeof(reason_names) / sizeof(reason_names[0]))
        || !reason_names[reason]) {
        return "unknown";
    }
    return reason_names[reason];
}

int scep_store_reason_parse(const char *name)
{
    int i;

    for (i = 0; i < (int)(sizeof(reason_names) / sizeof(reason_names[0])); i++) {
        /* Holds and their removal need an unrevoke this server does not offer, and a
         * CA compromise is a CA's own matter, not a device's. */
        if (reason_names[i] && strcasecmp(reason_names[i], name) == 0
            && i != SCEP_REASON_CERTIFICATE_HOLD && i != SCEP_REASON_REMOVE_FROM_CRL
            && i != SCEP_REASON_CA_COMPROMISE && i != SCEP_REASON_AA_COMPROMISE) {
            return i;
        }
    }
    return -1;
}

apr_status_t scep_store_crl_state_get(scep_txn_t *txn, scep_crl_state_t *state)
{
    const void *val;
    apr_size_t vlen;
    reader_t r;
    apr_status_t rv;

    memset(state, 0, sizeof(*state));
    if (scep_store_sql_active(txn)) {
        return scep_store_sql_crl_state_get(txn, state);
    }
    rv = scep_db_get(txn, SCEP_DBI_META, crl_key, sizeof(crl_key) - 1, &val, &vlen);
    if (rv == SCEP_DB_NOTFOUND) {
        return APR_SUCCESS;             /* nothing was ever revoked */
    }
    if (rv != APR_SUCCESS || reader_init(&r, NULL, val, vlen) != APR_SUCCESS) {
        return rv != APR_SUCCESS ? rv : r.rv;
    }
    state->generation = rd_i64(&r, CRL_GENERATION);
    state->changed_at = rd_i64(&r, CRL_CHANGED_AT);
    return r.rv;
}

static apr_status_t crl_state_write(scep_txn_t *txn, apr_pool_t *p,
                                    const scep_crl_state_t *state)
{
    scep_rec_t rec;

    scep_db_rec_init(&rec, p);
    scep_db_rec_put_i64(&rec, CRL_GENERATION, state->generation);
    scep_db_rec_put_i64(&rec, CRL_CHANGED_AT, state->changed_at);
    return scep_db_put(txn, SCEP_DBI_META, crl_key, sizeof(crl_key) - 1, rec.data, rec.len,
                       0);
}

static apr_status_t crl_state_bump(scep_txn_t *txn, apr_pool_t *p, apr_int64_t now)
{
    scep_crl_state_t state;
    apr_status_t rv = scep_store_crl_state_get(txn, &state);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    state.generation++;
    state.changed_at = now;
    return crl_state_write(txn, p, &state);
}

apr_status_t scep_store_cert_revoke(scep_txn_t *txn, apr_pool_t *p, const char *serial_hex,
                                    apr_int64_t now, int reason, int *already)
{
    scep_cert_rec_t *c;
    apr_status_t rv;

    *already = 0;
    if (scep_store_sql_active(txn)) {
        return scep_store_sql_cert_revoke(txn, p, serial_hex, now, reason, already);
    }
    rv = scep_store_cert_get(txn, p, serial_hex, &c);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (c->revoked_at) {
        *already = 1;                   /* the first revocation's time and reason stand */
        return APR_SUCCESS;
    }
    c->revoked_at = now;
    c->revocation_reason = reason;
    if ((rv = scep_store_cert_put(txn, p, c)) != APR_SUCCESS) {
        return rv;
    }
    return crl_state_bump(txn, p, now);
}

apr_status_t scep_store_crl_published_get(scep_txn_t *txn, apr_pool_t *p,
                                          scep_crl_published_t **out)
{
    const void *val;
    apr_size_t vlen;
    const unsigned char *id;
    scep_crl_published_t *pub;
    reader_t r;
    apr_status_t rv;

    if (scep_store_sql_active(txn)) {
        return scep_store_sql_crl_published_get(txn, p, out);
    }
    rv = scep_db_get(txn, SCEP_DBI_META, published_key, sizeof(published_key) - 1, &val,
                     &vlen);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (reader_init(&r, p, val, vlen) != APR_SUCCESS) {
        return r.rv;
    }
    pub = apr_pcalloc(p, sizeof(*pub));
    pub->number = rd_i64(&r, PUB_NUMBER);
    pub->generation = rd_i64(&r, PUB_GENERATION);
    pub->this_update = rd_i64(&r, PUB_THIS_UPDATE);
    pub->next_update = rd_i64(&r, PUB_NEXT_UPDATE);
    if ((id = rd_fixed(&r, PUB_CA_ID, sizeof(pub->ca_id))) != NULL) {
        memcpy(pub->ca_id, id, sizeof(pub->ca_id));
    }
    if (r.view.present[PUB_DER] && r.view.field_len[PUB_DER] > 0) {
        pub->der_len = r.view.field_len[PUB_DER];
        pub->der = apr_pmemdup(p, r.view.field[PUB_DER], pub->der_len);
    }
    if (r.rv == APR_SUCCESS && (!id || !pub->der)) {
        r.rv = SCEP_DB_CORRUPT;
    }
    if (r.rv == APR_SUCCESS) {
        *out = pub;
    }
    return r.rv;
}

apr_status_t scep_store_crl_published_put(scep_txn_t *txn, apr_pool_t *p,
                                          const scep_crl_published_t *pub)
{
    scep_rec_t rec;

    if (scep_store_sql_active(txn)) {
        return scep_store_sql_crl_published_put(txn, p, pub);
    }
    scep_db_rec_init(&rec, p);
    scep_db_rec_put_i64(&rec, PUB_NUMBER, pub->number);
    scep_db_rec_put_i64(&rec, PUB_GENERATION, pub->generation);
    scep_db_rec_put_i64(&rec, PUB_THIS_UPDATE, pub->this_update);
    scep_db_rec_put_i64(&rec, PUB_NEXT_UPDATE, pub->next_update);
    scep_db_rec_put_bytes(&rec, PUB_CA_ID, pub->ca_id, sizeof(pub->ca_id));
    scep_db_rec_put_bytes(&rec, PUB_DER, pub->der, pub->der_len);
    return scep_db_put(txn, SCEP_DBI_META, published_key, sizeof(published_key) - 1,
                       rec.data, rec.len, 0);
}

/* ---- copying a whole store -------------------------------------------------------- */

typedef struct minted_walk_t {
    apr_pool_t *scratch;
    scep_minted_visit_fn fn;
    void *baton;
    apr_status_t rv;
} minted_walk_t;

static int minted_visit(void *baton, const void *key, apr_size_t klen, const void *val,
                        apr_size_t vlen)
{
    minted_walk_t *walk = baton;
    scep_minted_t *m;
    int stop;

    if (klen != SCEP_MINTED_DIGEST_LEN) {
        walk->rv = SCEP_DB_CORRUPT;
        return 1;
    }
    if ((walk->rv = minted_decode(walk->scratch, val, vlen, &m)) != APR_SUCCESS) {
        return 1;
    }
    stop = walk->fn(walk->baton, key, m);
    apr_pool_clear(walk->scratch);
    return stop;
}

apr_status_t scep_store_minted_foreach(scep_txn_t *txn, apr_pool_t *p,
                                       scep_minted_visit_fn fn, void *baton)
{
    minted_walk_t walk = { NULL, fn, baton, APR_SUCCESS };
    apr_status_t rv;

    if (scep_store_sql_active(txn)) {
        return scep_store_sql_minted_foreach(txn, p, fn, baton);
    }
    if (apr_pool_create(&walk.scratch, p) != APR_SUCCESS) {
        return APR_ENOMEM;
    }
    rv = scep_db_foreach(txn, SCEP_DBI_CHALLENGES, NULL, 0, minted_visit, &walk);
    apr_pool_destroy(walk.scratch);
    return rv != APR_SUCCESS ? rv : walk.rv;
}

apr_status_t scep_store_minted_put_digest(scep_txn_t *txn, apr_pool_t *p,
                                          const unsigned char *digest, const scep_minted_t *m)
{
    scep_rec_t r;

    if ((m->fqdn && !*m->fqdn) || (m->profile && !*m->profile)) {
        return APR_EINVAL;
    }
    if (scep_store_sql_active(txn)) {
        return scep_store_sql_minted_insert(txn, p, digest, m);
    }
    minted_encode(&r, p, m);
    return scep_db_put(txn, SCEP_DBI_CHALLENGES, digest, SCEP_MINTED_DIGEST_LEN, r.data,
                       r.len, SCEP_DB_NOOVERWRITE);
}

typedef struct failure_walk_t {
    apr_pool_t *scratch;
    scep_failure_visit_fn fn;
    void *baton;
    apr_status_t rv;
} failure_walk_t;

static int failure_visit(void *baton, const void *key, apr_size_t klen, const void *val,
                         apr_size_t vlen)
{
    failure_walk_t *walk = baton;
    scep_failure_t f;
    int stop;

    if ((walk->rv = failure_decode(val, vlen, &f)) != APR_SUCCESS) {
        return 1;
    }
    stop = walk->fn(walk->baton, apr_pstrmemdup(walk->scratch, key, klen), &f);
    apr_pool_clear(walk->scratch);
    return stop;
}

apr_status_t scep_store_failure_foreach(scep_txn_t *txn, apr_pool_t *p,
                                        scep_failure_visit_fn fn, void *baton)
{
    failure_walk_t walk = { NULL, fn, baton, APR_SUCCESS };
    apr_status_t rv;

    if (scep_store_sql_active(txn)) {
        return scep_store_sql_failure_foreach(txn, p, fn, baton);
    }
    if (apr_pool_create(&walk.scratch, p) != APR_SUCCESS) {
        return APR_ENOMEM;
    }
    rv = scep_db_foreach(txn, SCEP_DBI_FAILURES, NULL, 0, failure_visit, &walk);
    apr_pool_destroy(walk.scratch);
    return rv != APR_SUCCESS ? rv : walk.rv;
}

apr_status_t scep_store_crl_state_put(scep_txn_t *txn, apr_pool_t *p,
                                      const scep_crl_state_t *state)
{
    if (state->generation < 0) {
        return APR_EINVAL;
    }
    if (scep_store_sql_active(txn)) {
        return scep_store_sql_crl_state_put(txn, p, state);
    }
    return crl_state_write(txn, p, state);
}

/* ---- many registrations at once (an import) ---------------------------------------- */

apr_status_t scep_store_device_get_many(scep_txn_t *txn, apr_pool_t *p,
                                        const char *const *fqdns, int n, scep_device_t **devs,
                                        int *failed)
{
    apr_size_t klen;
    apr_status_t rv;
    int i;

    *failed = -1;
    if (n < 0 || n > SCEP_STORE_MANY_MAX) {
        return APR_EINVAL;
    }
    for (i = 0; i < n; i++) {
        devs[i] = NULL;
        if ((rv = text_key(fqdns[i], &klen)) != APR_SUCCESS) {
            *failed = i;
            return rv;
        }
    }
    if (scep_store_sql_active(txn) && n > 0) {
        return scep_store_sql_device_get_many(txn, p, fqdns, n, devs, failed);
    }
    for (i = 0; i < n; i++) {
        rv = scep_store_device_get(txn, p, fqdns[i], &devs[i]);
        if (rv != APR_SUCCESS && rv != SCEP_DB_NOTFOUND) {
            *failed = i;
            return rv;
        }
    }
    return APR_SUCCESS;
}

apr_status_t scep_store_device_put_many(scep_txn_t *txn, apr_pool_t *p,
                                        const scep_device_t *const *devs, int n, int *failed)
{
    const char *ips;
    apr_status_t rv;
    int i;

    *failed = -1;
    if (n < 0 || n > SCEP_STORE_MANY_MAX) {
        return APR_EINVAL;
    }
    if (!scep_store_sql_active(txn)) {
        for (i = 0; i < n; i++) {
            if ((rv = scep_store_device_put(txn, p, devs[i])) != APR_SUCCESS) {
                *failed = i;
                return rv;
            }
        }
        return APR_SUCCESS;
    }
    for (i = 0; i < n; i++) {
        if ((rv = device_writable(p, devs[i], &ips)) != APR_SUCCESS) {
            *failed = i;
            return rv;
        }
    }
    return n > 0 ? scep_store_sql_device_put_many(txn, p, devs, n) : APR_SUCCESS;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* scepreg's commands on the device registrations: add or update (with the challenge from
 * a prompt, stdin, the command line or the random generator), delete, disable, enable,
 * unlock, verify a challenge, list, import a CSV file (hashed on every core before the
 * one write transaction), and the consistency check of what the module recorded.  Each
 * runs on the database scepreg.c opened for it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <termios.h>
#include <unistd.h>

#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <apr_thread_proc.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "scep_import.h"
#include "scep_name.h"
#include "scep_store.h"
#include "scep_util.h"
#include "scepreg.h"

/* Limits of what the tool accepts: the values' in scep_import.h, and these. */
#define LINE_MAX_BYTES (64 * 1024)      /* one CSV line */
#define IMPORT_BATCH   1000             /* rows hashed between progress lines */
#define MAX_THREADS    16

/* ---- reading lines and secrets ------------------------------------------------------- */

/* A line reader on a file descriptor that honours the interrupt flag: read() is not
 * restarted after a signal (see install_signals), so a blocked read returns at once. */
typedef struct reader_t {
    int fd;
    char *buf;                  /* size + 1 bytes, room for the terminating NUL */
    apr_size_t size, start, end;
    int eof;
} reader_t;

#define READ_LINE 1
#define READ_EOF 0
#define READ_ERROR (-1)
#define READ_INTERRUPTED (-2)

static void reader_init(reader_t *r, apr_pool_t *p, int fd, apr_size_t size)
{
    r->fd = fd;
    r->buf = apr_palloc(p, size + 1);
    r->size = size;
    r->start = r->end = 0;
    r->eof = 0;
}

/* Secrets pass through the buffer: wipe it when done. */
static void reader_wipe(reader_t *r)
{
    OPENSSL_cleanse(r->buf, r->size + 1);
}

/* The next line, without its "\n" or "\r\n", NUL-terminated in the buffer (valid until
 * the next call).  A line longer than the buffer is skipped whole and reported with
 * *too_long set (and an empty *line). */
static int reader_line(reader_t *r, char **line, apr_size_t *len, int *too_long)
{
    int skipping = 0;

    *too_long = 0;
    for (;;) {
        char *nl = NULL;
        ssize_t n;

        if (r->end > r->start) {
            nl = memchr(r->buf + r->start, '\n', r->end - r->start);
        }
        if (nl || (r->eof && r->end > r->start)) {
            char *s = r->buf + r->start;
            apr_size_t l = nl ? (apr_size_t)(nl - s) : r->end - r->start;

            r->start = nl ? (apr_size_t)(nl - r->buf) + 1 : r->end;
            if (skipping) {
                *too_long = 1;
                l = 0;
            }
            if (l > 0 && s[l - 1] == '\r') {
                l--;
            }
            s[l] = '\0';
            *line = s;
            *len = l;
            return READ_LINE;
        }
        if (r->eof) {
            if (skipping) {
                *too_long = 1;
                *line = r->buf;
                r->buf[0] = '\0';
                *len = 0;
                return READ_LINE;
            }
            return READ_EOF;
        }
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            r->start = 0;
        }
        if (r->end == r->size) {
            /* no newline in a full buffer: drop what we have and skip to the next one */
            OPENSSL_cleanse(r->buf, r->size);
            r->end = 0;
            skipping = 1;
        }
        n = read(r->fd, r->buf + r->end, r->size - r->end);
        if (n < 0) {
            if (errno == EINTR) {
                if (scepreg_interrupted) {
                    return READ_INTERRUPTED;
                }
                continue;
            }
            return READ_ERROR;
        }
        if (scepreg_interrupted) {
            return READ_INTERRUPTED;
        }
        if (n == 0) {
            r->eof = 1;
        }
        r->end += (apr_size_t)n;
    }
}

/* Reads a secret from the terminal with echo off.  buf holds SCEP_REG_CHALLENGE_MAX + 1 bytes.
 * Returns RC_OK, RC_TOOLONG, RC_INTERRUPTED, or RC_SYNTAX when there is no terminal. */
static int prompt_secret(const char *prompt, char *buf, apr_size_t *len)
{
    struct termios saved, quiet;
    int fd, have_tio, rc = RC_OK;
    apr_size_t n = 0;

    fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        scepreg_complain("cannot prompt for the challenge: no terminal (use -i, -g or -n)");
        return RC_SYNTAX;
    }
    have_tio = tcgetattr(fd, &saved) == 0;
    if (have_tio) {
        quiet = saved;
        quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK);
        quiet.c_lflag |= ECHONL;
        /* TCSANOW rather than TCSAFLUSH: input typed ahead (or fed by a script) stays */
        tcsetattr(fd, TCSANOW, &quiet);
    }
    if (write(fd, prompt, strlen(prompt)) < 0) {
        /* the prompt is a courtesy; reading still works */
    }
    for (;;) {
        char c;
        ssize_t r = read(fd, &c, 1);

        if (r < 0 && errno == EINTR) {
            if (scepreg_interrupted) {
                rc = RC_INTERRUPTED;
                break;
            }
            continue;
        }
        if (r <= 0 || c == '\n') {
            break;
        }
        if (n < SCEP_REG_CHALLENGE_MAX) {
            buf[n++] = c;
        }
        else {
            rc = RC_TOOLONG;
        }
    }
    if (have_tio) {
        tcsetattr(fd, TCSANOW, &saved);
    }
    else if (write(fd, "\n", 1) < 0) {
        /* nothing to do */
    }
    close(fd);
    if (scepreg_interrupted) {
        rc = RC_INTERRUPTED;
    }
    if (n > 0 && buf[n - 1] == '\r') {
        n--;
    }
    buf[n] = '\0';
    *len = n;
    return rc;
}

/* ---- add / update ------------------------------------------------------------------------ */

/* Gets the challenge of an add, update or verify from where the options say.  Returns
 * RC_OK with *have set when there is one (in buf, SCEP_REG_CHALLENGE_MAX + 1 bytes). */
static int get_challenge(apr_pool_t *p, const opts_t *o, int confirm, char *buf,
                         apr_size_t *len, int *have)
{
    int rc;

    *have = 0;
    *len = 0;
    switch (o->source) {
    case 'n':
        return RC_OK;
    case 'b':
        *len = strlen(o->challenge_arg);
        memcpy(buf, o->challenge_arg, *len + 1);
        break;
    case 'g': {
        unsigned char raw[SCEP_MINTED_BYTES];
        const char *hex;

        if (RAND_bytes(raw, sizeof(raw)) != 1) {
            scepreg_complain("cannot generate a random challenge: %s",
                             scep_util_openssl_errors(p));
            return RC_DB;
        }
        hex = scep_util_hex(p, raw, sizeof(raw));
        OPENSSL_cleanse(raw, sizeof(raw));
        *len = strlen(hex);
        memcpy(buf, hex, *len + 1);
        OPENSSL_cleanse((void *)hex, *len);
        break;
    }
    case 'i': {
        reader_t r;
        char *line;
        int too_long, got;

        reader_init(&r, p, STDIN_FILENO, SCEP_REG_CHALLENGE_MAX + 2);
        got = reader_line(&r, &line, len, &too_long);
        if (got == READ_INTERRUPTED) {
            reader_wipe(&r);
            return scepreg_report_interrupted();
        }
        if (got == READ_ERROR) {
            scepreg_complain("cannot read the challenge from stdin: %s", strerror(errno));
            reader_wipe(&r);
            return RC_SYNTAX;
        }
        if (too_long || *len > SCEP_REG_CHALLENGE_MAX) {
            reader_wipe(&r);
            scepreg_complain("the challenge is longer than %d characters",
                             SCEP_REG_CHALLENGE_MAX);
            return RC_TOOLONG;
        }
        if (got == READ_EOF) {
            *len = 0;
            line = (char *)"";
        }
        memcpy(buf, line, *len + 1);
        reader_wipe(&r);
        break;
    }
    default: {
        char *again = apr_palloc(p, SCEP_REG_CHALLENGE_MAX + 1);
        apr_size_t again_len = 0;
        int same;

        rc = prompt_secret(confirm ? "New challenge: " : "Challenge: ", buf, len);
        if (rc == RC_OK && confirm) {
            rc = prompt_secret("Re-type new challenge: ", again, &again_len);
            same = rc == RC_OK && scep_util_secret_equal(buf, *len, again, again_len);
            OPENSSL_cleanse(again, SCEP_REG_CHALLENGE_MAX + 1);
            if (rc == RC_OK && !same) {
                OPENSSL_cleanse(buf, SCEP_REG_CHALLENGE_MAX + 1);
                scepreg_complain("challenge verification error: the two entries differ");
                return RC_MISMATCH;
            }
        }
        if (rc != RC_OK) {
            OPENSSL_cleanse(buf, SCEP_REG_CHALLENGE_MAX + 1);
            if (rc == RC_TOOLONG) {
                scepreg_complain("the challenge is longer than %d characters",
                                 SCEP_REG_CHALLENGE_MAX);
            }
            else if (rc == RC_INTERRUPTED) {
                scepreg_report_interrupted();
            }
            return rc;
        }
        break;
    }
    }
    if (*len == 0 && confirm) {
        OPENSSL_cleanse(buf, SCEP_REG_CHALLENGE_MAX + 1);
        scepreg_complain("an empty challenge is refused (use -n for a registration without "
                         "one)");
        return RC_SYNTAX;
    }
    *have = 1;
    return RC_OK;
}

/* Reads a device under its exact key inside a read transaction. */
static apr_status_t peek_device(apr_pool_t *p, scep_db_t *db, const char *fqdn,
                                scep_device_t **dev)
{
    scep_txn_t *txn;
    apr_status_t rv = scep_db_begin(db, p, 0, &txn);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = scep_store_device_get(txn, p, fqdn, dev);
    scep_db_abort(txn);
    return rv;
}

int scepreg_devices_add(apr_pool_t *p, const opts_t *o, scep_db_t *db, apr_int64_t now)
{
    scep_txn_t *txn;
    scep_device_t *dev = NULL;
    scep_verifier_t verifier;
    char *secret = apr_palloc(p, SCEP_REG_CHALLENGE_MAX + 1);
    char *shown = NULL;
    apr_size_t len;
    apr_status_t rv;
    int rc, have, existed, is_new, keep_verifier;

    rv = peek_device(p, db, o->fqdn, &dev);
    if (rv != APR_SUCCESS && rv != SCEP_DB_NOTFOUND) {
        return scepreg_db_failed(p, o->dbdir, "cannot read the device", rv);
    }
    existed = rv == APR_SUCCESS;
    /* an update without a challenge option keeps the stored verifier; a new device
     * without one prompts, like htpasswd */
    keep_verifier = existed && !o->source;
    memset(&verifier, 0, sizeof(verifier));
    if (!keep_verifier) {
        if ((rc = get_challenge(p, o, 1, secret, &len, &have)) != RC_OK) {
            return rc;
        }
        if (have) {
            /* PBKDF2 before the write transaction: the lock is held only briefly */
            rv = scep_verifier_make(secret, len, &verifier);
            if (o->source == 'g') {
                shown = apr_pstrmemdup(p, secret, len);
            }
            OPENSSL_cleanse(secret, SCEP_REG_CHALLENGE_MAX + 1);
            if (rv != APR_SUCCESS) {
                scepreg_complain("cannot make the challenge verifier: %s",
                                 scep_util_openssl_errors(p));
                return RC_DB;
            }
        }
    }
    if (scepreg_interrupted) {
        return scepreg_report_interrupted();
    }

    if ((rv = scep_db_begin(db, p, 1, &txn)) != APR_SUCCESS) {
        return scepreg_db_failed(p, o->dbdir, "cannot begin a write transaction", rv);
    }
    rv = scep_store_device_get(txn, p, o->fqdn, &dev);
    if (rv != APR_SUCCESS && rv != SCEP_DB_NOTFOUND) {
        scep_db_abort(txn);
        return scepreg_db_failed(p, o->dbdir, "cannot read the device", rv);
    }
    is_new = rv == SCEP_DB_NOTFOUND;
    if (is_new && keep_verifier) {
        scep_db_abort(txn);
        scepreg_complain("device '%s' was deleted meanwhile; nothing changed", o->fqdn);
        return RC_ILLEGAL;
    }
    if (is_new) {
        dev = scep_store_device_new(p, o->fqdn);
        dev->created = now;
    }
    if (o->clear_ips) {
        dev->ips = apr_array_make(p, 1, sizeof(const char *));
    }
    if (o->ips->nelts > 0) {
        dev->ips = apr_array_copy(p, o->ips);
    }
    if (o->serial) {
        dev->serial = *o->serial ? o->serial : NULL;
    }
    if (o->expires_set) {
        dev->expires = o->expires;
    }
    if (o->profile) {
        dev->profile = *o->profile ? o->profile : NULL;
    }
    if (o->comment) {
        dev->comment = *o->comment ? o->comment : NULL;
    }
    if (o->one_time) {
        dev->flags |= SCEP_DEVICE_ONE_TIME;
    }
    if (o->approval > 0) {
        dev->flags |= SCEP_DEVICE_APPROVAL;
    }
    else if (o->approval < 0) {
        dev->flags &= ~(unsigned int)SCEP_DEVICE_APPROVAL;
    }
    if (!keep_verifier) {
        /* a new challenge (or none) starts unused */
        dev->verifier = verifier;
        dev->flags &= ~(unsigned int)SCEP_DEVICE_USED;
    }
    dev->updated = now;
    rv = scep_store_device_put(txn, p, dev);
    OPENSSL_cleanse(&verifier, sizeof(verifier));
    if (rv != APR_SUCCESS) {
        scep_db_abort(txn);
        return scepreg_db_failed(p, o->dbdir, "cannot store the device", rv);
    }
    if ((rc = scepreg_commit(p, o->dbdir, txn)) != RC_OK) {
        return rc;
    }
    fprintf(stderr, "%s: %s device %s%s\n", scepreg_progname, is_new ? "added" : "updated",
            o->fqdn,
            dev->verifier.algorithm ? "" : " (no challenge: it enrolls with minted ones only)");
    if (shown) {
        printf("%s\n", shown);
        fflush(stdout);
        OPENSSL_cleanse(shown, strlen(shown));
    }
    return scepreg_fix_ownership(p, o);
}

/* ---- delete, disable, enable, unlock --------------------------------------------------- */

static int no_device(const opts_t *o)
{
    scepreg_complain("no device '%s' in %s", o->fqdn, o->dbdir);
    return RC_ILLEGAL;
}

typedef struct valid_count_t {
    apr_int64_t now;
    int valid;
} valid_count_t;

static int count_valid(void *baton, const scep_cert_rec_t *c)
{
    valid_count_t *count = baton;

    count->valid += !c->revoked_at && c->not_after > count->now;
    return 0;
}

/* After -D of an exact name, inside the same transaction: the wildcard that still covers
 * the name, if any (*cover), and how many of the name's certificates are unrevoked and
 * unexpired (*valid), since those keep renewing through it. */
static apr_status_t wildcard_after_delete(scep_txn_t *txn, apr_pool_t *p, const char *fqdn,
                                          apr_int64_t now, const char **cover, int *valid)
{
    valid_count_t count = { now, 0 };
    scep_device_t *dev;
    apr_status_t rv = scep_store_device_find(txn, p, fqdn, &dev);

    if (rv == SCEP_DB_NOTFOUND) {
        return APR_SUCCESS;
    }
    if (rv == APR_SUCCESS) {
        rv = scep_store_cert_foreach(txn, p, fqdn, count_valid, &count);
    }
    if (rv == APR_SUCCESS) {
        *cover = dev->fqdn;
        *valid = count.valid;
    }
    return rv;
}

/* The names a deleted wildcard covered, whose certificates it authorised. */
typedef struct covered_t {
    const char *wildcard;
    apr_int64_t now;
    apr_pool_t *pool;
    apr_hash_t *names;                  /* fqdn -> int *: its valid certificates */
} covered_t;

static int collect_covered(void *baton, const scep_cert_rec_t *c)
{
    covered_t *cov = baton;
    int *valid;

    if (!c->fqdn || !scep_name_matches(cov->wildcard, c->fqdn)
        || c->revoked_at || c->not_after <= cov->now) {
        return 0;
    }
    if (!(valid = apr_hash_get(cov->names, c->fqdn, APR_HASH_KEY_STRING))) {
        valid = apr_pcalloc(cov->pool, sizeof(*valid));
        apr_hash_set(cov->names, apr_pstrdup(cov->pool, c->fqdn), APR_HASH_KEY_STRING, valid);
    }
    ++*valid;
    return 0;
}

/* After -D of a wildcard, inside the same transaction: the broader wildcard that now
 * covers its names, if any (*cover: "*.b.c", then "*.c", then "*" for "*.a.b.c"), and
 * how many valid certificates those names hold that no registration of their own
 * governs (*valid): they keep renewing through the broader one. */
static apr_status_t broader_after_delete(scep_txn_t *txn, apr_pool_t *p, const char *wildcard,
                                         apr_int64_t now, const char **cover, int *valid)
{
    covered_t cov = { wildcard, now, p, apr_hash_make(p) };
    const char *rest = wildcard[1] == '.' ? wildcard + 2 : NULL, *candidate;
    apr_hash_index_t *hi;
    scep_device_t *dev;
    apr_status_t rv = SCEP_DB_NOTFOUND;

    while (rest && rv == SCEP_DB_NOTFOUND) {
        rest = strchr(rest, '.');
        candidate = rest ? apr_pstrcat(p, "*", rest, NULL) : "*";
        rest = rest ? rest + 1 : NULL;
        rv = scep_store_device_get(txn, p, candidate, &dev);
        if (rv == APR_SUCCESS) {
            *cover = dev->fqdn;
        }
    }
    /* a domain's users fall back on every user; "<kind>:*" has nothing broader */
    if (rv == SCEP_DB_NOTFOUND && strncmp(wildcard, "user:*@", 7) == 0
        && (rv = scep_store_device_get(txn, p, "user:*", &dev)) == APR_SUCCESS) {
        *cover = dev->fqdn;
    }
    if (rv == SCEP_DB_NOTFOUND) {
        return APR_SUCCESS;
    }
    /* the walk first, the lookups after: no lookups while a cursor runs */
    if (rv == APR_SUCCESS) {
        rv = scep_store_cert_foreach(txn, p, NULL, collect_covered, &cov);
    }
    for (hi = apr_hash_first(p, cov.names); rv == APR_SUCCESS && hi; hi = apr_hash_next(hi)) {
        const void *name;
        void *count;

        apr_hash_this(hi, &name, NULL, &count);
        rv = scep_store_device_get(txn, p, name, &dev);
        if (rv == SCEP_DB_NOTFOUND) {
            *valid += *(int *)count;
            rv = APR_SUCCESS;
        }
        else if (rv == APR_SUCCESS) {
            rv = APR_SUCCESS;           /* a registration of its own governs it */
        }
    }
    return rv;
}

int scepreg_devices_change(apr_pool_t *p, const opts_t *o, scep_db_t *db, apr_int64_t now)
{
    scep_txn_t *txn;
    scep_device_t *dev;
    scep_failure_t f;
    const char *done = NULL, *cover = NULL;
    apr_status_t rv;
    int rc, revoked = 0, before = 0, valid = 0;

    if ((rv = scep_db_begin(db, p, 1, &txn)) != APR_SUCCESS) {
        return scepreg_db_failed(p, o->dbdir, "cannot begin a write transaction", rv);
    }
    /* -U concerns a requested name, which may live under a wildcard registration */
    rv = o->mode == 'U' ? scep_store_device_find(txn, p, o->fqdn, &dev)
                        : scep_store_device_get(txn, p, o->fqdn, &dev);
    if (rv == SCEP_DB_NOTFOUND) {
        scep_db_abort(txn);
        return no_device(o);
    }
    if (rv != APR_SUCCESS) {
        scep_db_abort(txn);
        return scepreg_db_failed(p, o->dbdir, "cannot read the device", rv);
    }
    memset(&f, 0, sizeof(f));
    switch (o->mode) {
    case 'D':
        rv = scep_store_device_delete(txn, o->fqdn);
        done = apr_pstrcat(p, "deleted device ", o->fqdn, NULL);
        if (rv == APR_SUCCESS && o->revoke_too) {
            rv = scepreg_records_revoke_in(txn, p, NULL, o->fqdn, o->reason, now, &revoked,
                                           &before);
        }
        if (rv == APR_SUCCESS && !scep_name_is_wildcard(o->fqdn)) {
            rv = wildcard_after_delete(txn, p, o->fqdn, now, &cover, &valid);
        }
        else if (rv == APR_SUCCESS) {
            rv = broader_after_delete(txn, p, o->fqdn, now, &cover, &valid);
        }
        break;
    case 'd':
    case 'E':
        if (o->mode == 'd') {
            dev->flags |= SCEP_DEVICE_DISABLED;
        }
        else {
            dev->flags &= ~(unsigned int)SCEP_DEVICE_DISABLED;
        }
        dev->updated = now;
        rv = scep_store_device_put(txn, p, dev);
        done = apr_pstrcat(p, o->mode == 'd' ? "disabled" : "enabled", " device ", o->fqdn,
                           NULL);
        break;
    default:
        done = apr_pstrcat(p, "unlocked ", o->fqdn, NULL);
        break;
    }
    /* deleting a device or unlocking a name clears the name's failure record too */
    if (rv == APR_SUCCESS && (o->mode == 'D' || o->mode == 'U')) {
        rv = scep_store_failure_get(txn, o->fqdn, &f);
        if (rv == APR_SUCCESS && (f.count || f.locked_until || f.last)) {
            rv = scep_store_failure_clear(txn, o->fqdn);
        }
        else if (rv == APR_SUCCESS || rv == SCEP_DB_NOTFOUND) {
            rv = APR_SUCCESS;
            if (o->mode == 'U') {
                done = apr_pstrcat(p, o->fqdn, " was not locked", NULL);
            }
        }
    }
    if (rv != APR_SUCCESS) {
        scep_db_abort(txn);
        return scepreg_db_failed(p, o->dbdir, "cannot change the device", rv);
    }
    if ((rc = scepreg_commit(p, o->dbdir, txn)) != RC_OK) {
        return rc;
    }
    scepreg_complain("%s", done);
    if (o->revoke_too) {
        scepreg_records_report_revoked(o, revoked, before);
        if (scep_name_is_wildcard(o->fqdn)) {
            scepreg_complain("note: certificates are kept under the name they were issued "
                             "to, never under a wildcard: -R DB NAME revokes a name's, and "
                             "scepreg -L DB lists them");
        }
    }
    if (cover && scep_name_is_wildcard(o->fqdn)) {
        scepreg_complain("note: '%s' now covers the names '%s' covered: %d unrevoked "
                         "certificate%s of names without a registration of their own %s valid "
                         "and renewable through it, and those names enroll with its challenge",
                         cover, o->fqdn, valid, valid == 1 ? "" : "s",
                         valid == 1 ? "stays" : "stay");
    }
    else if (cover) {
        /* Deleting the name does not stop a wildcard: it authorises renewals of the
         * name's certificates and new enrollments with its own challenge. */
        if (valid) {
            scepreg_complain("note: '%s' still covers %s: its %d unrevoked certificate%s %s "
                             "valid and renewable through that wildcard; revoke %s with -R %s "
                             "(-D -R deletes and revokes in one step)", cover, o->fqdn, valid,
                             valid == 1 ? "" : "s", valid == 1 ? "stays" : "stay",
                             valid == 1 ? "it" : "them", o->fqdn);
        }
        else {
            scepreg_complain("note: '%s' still covers %s: the name can enroll again with that "
                             "wildcard's challenge", cover, o->fqdn);
        }
    }
    return scepreg_fix_ownership(p, o);
}

/* ---- verify ------------------------------------------------------------------------------ */

int scepreg_devices_verify(apr_pool_t *p, const opts_t *o, scep_db_t *db, apr_int64_t now)
{
    scep_txn_t *txn;
    scep_device_t *dev;
    char *secret = apr_palloc(p, SCEP_REG_CHALLENGE_MAX + 1);
    apr_size_t len;
    apr_status_t rv;
    int rc, have, ok;

    /* read-only: a failed verification here is not counted against the name */
    if ((rv = scep_db_begin(db, p, 0, &txn)) != APR_SUCCESS) {
        return scepreg_db_failed(p, o->dbdir, "cannot begin a read transaction", rv);
    }
    rv = scep_store_device_find(txn, p, o->fqdn, &dev);
    scep_db_abort(txn);
    if (rv == SCEP_DB_NOTFOUND) {
        return no_device(o);
    }
    if (rv != APR_SUCCESS) {
        return scepreg_db_failed(p, o->dbdir, "cannot read the device", rv);
    }
    if ((rc = scepreg_fix_ownership(p, o)) != RC_OK) {
        return rc;
    }
    if ((rc = get_challenge(p, o, 0, secret, &len, &have)) != RC_OK) {
        return rc;
    }
    ok = dev->verifier.algorithm != 0 && scep_verifier_matches(&dev->verifier, secret, len);
    OPENSSL_cleanse(secret, SCEP_REG_CHALLENGE_MAX + 1);
    if (scepreg_interrupted) {
        return scepreg_report_interrupted();
    }
    if (!dev->verifier.algorithm) {
        scepreg_complain("registration '%s' has no challenge (it enrolls with minted "
                         "challenges only)", dev->fqdn);
        return RC_MISMATCH;
    }
    if (!ok) {
        scepreg_complain("challenge for %s is wrong (registration '%s')", o->fqdn, dev->fqdn);
        return RC_MISMATCH;
    }
    scepreg_complain("challenge for %s is correct (registration '%s')", o->fqdn, dev->fqdn);
    if (dev->flags & SCEP_DEVICE_DISABLED) {
        scepreg_complain("note: the registration is disabled");
    }
    if ((dev->flags & SCEP_DEVICE_ONE_TIME) && (dev->flags & SCEP_DEVICE_USED)) {
        scepreg_complain("note: the one-time challenge has been used");
    }
    if (dev->expires && dev->expires <= now) {
        scepreg_complain("note: the registration has expired");
    }
    return RC_OK;
}

/* ---- listings ---------------------------------------------------------------------------- */

typedef struct list_ctx_t {
    const opts_t *o;
    scep_txn_t *txn;
    apr_pool_t *pool;
    apr_int64_t now;
    const char *pattern;        /* wildcard pattern, or NULL */
    apr_array_header_t *devices;  /* const scep_device_t *, collected by the walk */
} list_ctx_t;

/* "one-time,disabled,approval" or "-". */
static const char *device_flags(apr_pool_t *p, unsigned int flags)
{
    const char *out = "";

    if (flags & SCEP_DEVICE_ONE_TIME) {
        out = "one-time";
    }
    if (flags & SCEP_DEVICE_DISABLED) {
        out = apr_pstrcat(p, out, *out ? "," : "", "disabled", NULL);
    }
    if (flags & SCEP_DEVICE_APPROVAL) {
        out = apr_pstrcat(p, out, *out ? "," : "", "approval", NULL);
    }
    return *out ? out : "-";
}

/* The walk only collects: the failure records are read once it is over, so that no
 * lookup happens while scep_db's cursor runs. */
static int collect_device(void *baton, const scep_device_t *dev)
{
    list_ctx_t *ctx = baton;

    if (!ctx->pattern || !strcmp(ctx->pattern, dev->fqdn)
        || scep_name_matches(ctx->pattern, dev->fqdn)) {
        APR_ARRAY_PUSH(ctx->devices, const scep_device_t *) = dev;
    }
    return 0;
}

static void print_device(list_ctx_t *ctx, const scep_device_t *dev, const scep_failure_t *f)
{
    FILE *out = stdout;
    char t1[SCEP_UTIL_ISO_TIME_SIZE], t2[SCEP_UTIL_ISO_TIME_SIZE];
    const char *challenge, *flags, *lock;
    int i;

    challenge = !dev->verifier.algorithm ? "no"
              : (dev->flags & SCEP_DEVICE_USED) ? "used" : "yes";
    if (ctx->o->json) {
        fputc('{', out);
        scepreg_json_identity(out, dev->fqdn);
        fputs(",\"ips\":[", out);
        for (i = 0; dev->ips && i < dev->ips->nelts; i++) {
            if (i) {
                fputc(',', out);
            }
            scepreg_json_string(out, APR_ARRAY_IDX(dev->ips, i, const char *));
        }
        fputs("],\"serial\":", out);
        scepreg_json_string(out, dev->serial);
        fprintf(out, ",\"challenge\":\"%s\",\"one_time\":%s,\"disabled\":%s,"
                "\"approval\":%s,\"expires\":",
                challenge, (dev->flags & SCEP_DEVICE_ONE_TIME) ? "true" : "false",
                (dev->flags & SCEP_DEVICE_DISABLED) ? "true" : "false",
                (dev->flags & SCEP_DEVICE_APPROVAL) ? "true" : "false");
        scepreg_json_time(out, dev->expires);
        fputs(",\"profile\":", out);
        scepreg_json_string(out, dev->profile);
        fputs(",\"comment\":", out);
        scepreg_json_string(out, dev->comment);
        fputs(",\"created\":", out);
        scepreg_json_time(out, dev->created);
        fputs(",\"updated\":", out);
        scepreg_json_time(out, dev->updated);
        fputs(",\"last_serial\":", out);
        scepreg_json_string(out, dev->last_serial);
        fputs(",\"last_not_after\":", out);
        scepreg_json_time(out, dev->last_not_after);
        fputs(",\"last_enrolled\":", out);
        scepreg_json_time(out, dev->last_enrolled);
        fprintf(out, ",\"enrollments\":%" APR_INT64_T_FMT ",\"failures\":%" APR_INT64_T_FMT
                ",\"locked_until\":", dev->enrollments, f->count);
        scepreg_json_time(out, f->locked_until > ctx->now ? f->locked_until : 0);
        fputs("}\n", out);
        return;
    }
    fputs(dev->fqdn, out);
    fputc('\t', out);
    for (i = 0; dev->ips && i < dev->ips->nelts; i++) {
        if (i) {
            fputc(',', out);
        }
        fputs(APR_ARRAY_IDX(dev->ips, i, const char *), out);
    }
    if (!dev->ips || dev->ips->nelts == 0) {
        fputc('-', out);
    }
    flags = device_flags(ctx->pool, dev->flags);
    if (f->locked_until > ctx->now) {
        lock = apr_pstrcat(ctx->pool, "locked until ",
                           scep_util_iso_time(t1, f->locked_until), NULL);
    }
    else if (f->count > 0) {
        lock = apr_psprintf(ctx->pool, "%" APR_INT64_T_FMT " failure%s", f->count,
                            f->count == 1 ? "" : "s");
    }
    else {
        lock = "-";
    }
    fprintf(out, "\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
            dev->serial ? dev->serial : "-", challenge, flags,
            dev->expires ? scep_util_iso_time(t1, dev->expires) : "never",
            dev->profile ? dev->profile : "-",
            dev->last_serial ? dev->last_serial : "-",
            dev->last_not_after ? scep_util_iso_time(t2, dev->last_not_after) : "-",
            lock, dev->comment ? dev->comment : "");
}

int scepreg_devices_list(apr_pool_t *p, const opts_t *o, scep_db_t *db, apr_int64_t now)
{
    list_ctx_t ctx;
    apr_status_t rv;
    int rc, i;

    memset(&ctx, 0, sizeof(ctx));
    ctx.o = o;
    ctx.pool = p;
    ctx.now = now;
    ctx.devices = apr_array_make(p, 64, sizeof(const scep_device_t *));
    if ((rv = scep_db_begin(db, p, 0, &ctx.txn)) != APR_SUCCESS) {
        return scepreg_db_failed(p, o->dbdir, "cannot begin a read transaction", rv);
    }
    if (o->fqdn && !scep_name_is_wildcard(o->fqdn)) {
        scep_device_t *dev;

        rv = scep_store_device_get(ctx.txn, p, o->fqdn, &dev);
        if (rv == SCEP_DB_NOTFOUND) {
            scep_db_abort(ctx.txn);
            return no_device(o);
        }
        if (rv == APR_SUCCESS) {
            APR_ARRAY_PUSH(ctx.devices, const scep_device_t *) = dev;
        }
    }
    else {
        ctx.pattern = o->fqdn;
        rv = scep_store_device_foreach(ctx.txn, p, collect_device, &ctx);
    }
    if (!o->json && rv == APR_SUCCESS) {
        fputs("fqdn\tips\tserial\tchallenge\tflags\texpires\tprofile\tlast_serial\t"
              "last_not_after\tlock\tcomment\n", stdout);
    }
    for (i = 0; rv == APR_SUCCESS && i < ctx.devices->nelts; i++) {
        const scep_device_t *dev = APR_ARRAY_IDX(ctx.devices, i, const scep_device_t *);
        scep_failure_t f;

        rv = scep_store_failure_get(ctx.txn, dev->fqdn, &f);
        if (rv == SCEP_DB_NOTFOUND) {
            memset(&f, 0, sizeof(f));
            rv = APR_SUCCESS;
        }
        if (rv == APR_SUCCESS) {
            print_device(&ctx, dev, &f);
        }
    }
    scep_db_abort(ctx.txn);
    if (rv != APR_SUCCESS) {
        scepreg_finish_output();
        return scepreg_db_failed(p, o->dbdir, "cannot list the devices", rv);
    }
    if ((rc = scepreg_finish_output()) != RC_OK) {
        return rc;
    }
    return scepreg_fix_ownership(p, o);
}

/* ---- consistency check -------------------------------------------------------------------
 * After a crash, a kill or a full map an operator wants to know that what the module
 * answered is what the database says.  Everything is read in one read transaction, so
 * the check sees one snapshot even while httpd keeps issuing.  Each certificate must
 * decode, carry the serial it is stored under, appear in the name index under its name,
 * and point at a transaction that says it issued this serial; each issued transaction
 * must point at a certificate that names it back; each index entry must point at a
 * certificate of that name.  So no transaction can own two certificates and no
 * certificate can hang without its transaction. */

typedef struct check_cert_t {
    const char *serial, *fqdn, *transaction_id;
    apr_int64_t issued_at;
} check_cert_t;

typedef struct check_index_t {
    const char *fqdn, *serial;
} check_index_t;

typedef struct check_ctx_t {
    apr_pool_t *pool;
    const char *dbdir;
    apr_array_header_t *certs;          /* check_cert_t */
    apr_array_header_t *txns;           /* check_txn_t: every transaction */
    apr_array_header_t *index;          /* check_index_t */
    long problems;
} check_ctx_t;

static void check_problem(check_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void check_problem(check_ctx_t *ctx, const char *fmt, ...)
{
    va_list ap;

    /* the first hundred say enough; the count tells the rest */
    if (++ctx->problems <= 100) {
        fprintf(stderr, "%s: %s: ", scepreg_progname, ctx->dbdir);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    }
}

static int check_visit_cert(void *baton, const scep_cert_rec_t *c)
{
    check_ctx_t *ctx = baton;
    check_cert_t *k = apr_array_push(ctx->certs);
    const unsigned char *in = c->der;
    X509 *x = c->der_len ? d2i_X509(NULL, &in, (long)c->der_len) : NULL;
    const char *hex = x ? scep_store_serial_hex(ctx->pool, X509_get0_serialNumber(x)) : NULL;

    k->serial = apr_pstrdup(ctx->pool, c->serial);
    k->fqdn = c->fqdn ? apr_pstrdup(ctx->pool, c->fqdn) : NULL;
    k->transaction_id = c->transaction_id ? apr_pstrdup(ctx->pool, c->transaction_id) : NULL;
    k->issued_at = c->issued_at;
    if (!x) {
        check_problem(ctx, "certificate %s: the stored DER does not decode", c->serial);
    }
    else if (!hex || strcmp(hex, c->serial) != 0) {
        check_problem(ctx, "certificate %s: the DER carries serial %s", c->serial,
                      hex ? hex : "?");
    }
    X509_free(x);
    return 0;
}

/* What the check needs of a transaction, copied out of the walk's scratch pool. */
typedef struct check_txn_t {
    const char *id, *state, *serial;
} check_txn_t;

static int check_visit_txn(void *baton, const scep_transaction_t *t)
{
    check_ctx_t *ctx = baton;
    check_txn_t *k = apr_array_push(ctx->txns);

    k->id = apr_pstrdup(ctx->pool, t->transaction_id);
    k->state = apr_pstrdup(ctx->pool, t->state);
    k->serial = t->serial ? apr_pstrdup(ctx->pool, t->serial) : NULL;
    return 0;
}

static int check_visit_index(void *baton, const void *key, apr_size_t klen, const void *val,
                             apr_size_t vlen)
{
    check_ctx_t *ctx = baton;
    check_index_t *e = apr_array_push(ctx->index);

    e->fqdn = apr_pstrmemdup(ctx->pool, key, klen);
    e->serial = scep_util_hex_upper(ctx->pool, val, vlen);
    return 0;
}

int scepreg_devices_check(apr_pool_t *p, const opts_t *o, scep_db_t *db, apr_int64_t now)
{
    scep_txn_t *txn;
    check_ctx_t ctx;
    apr_hash_t *by_serial = apr_hash_make(p), *indexed = apr_hash_make(p);
    apr_pool_t *scratch;
    apr_status_t rv;
    long issued = 0;
    int rc, i;

    memset(&ctx, 0, sizeof(ctx));
    ctx.pool = p;
    ctx.dbdir = o->dbdir;
    ctx.certs = apr_array_make(p, 64, sizeof(check_cert_t));
    ctx.txns = apr_array_make(p, 64, sizeof(check_txn_t));
    ctx.index = apr_array_make(p, 64, sizeof(check_index_t));
    if ((rv = scep_db_begin(db, p, 0, &txn)) != APR_SUCCESS) {
        return scepreg_db_failed(p, o->dbdir, "cannot begin a read transaction", rv);
    }
    /* the walks first, the lookups after: no lookups while a cursor runs */
    rv = scep_store_cert_foreach(txn, p, NULL, check_visit_cert, &ctx);
    if (rv == APR_SUCCESS) {
        rv = scep_store_transaction_foreach(txn, p, check_visit_txn, &ctx);
    }
    if (rv == APR_SUCCESS && !scep_db_engine(db)) {
        rv = scep_db_foreach(txn, SCEP_DBI_CERTS_BY_FQDN, NULL, 0, check_visit_index, &ctx);
    }
    /* PostgreSQL lists a name's certificates by the column itself: each certificate with
     * a name is its own index entry, so the report reads the same for both engines */
    for (i = 0; rv == APR_SUCCESS && scep_db_engine(db) && i < ctx.certs->nelts; i++) {
        const check_cert_t *k = &APR_ARRAY_IDX(ctx.certs, i, check_cert_t);

        if (k->fqdn) {
            check_index_t *e = apr_array_push(ctx.index);

            e->fqdn = k->fqdn;
            e->serial = k->serial;
        }
    }
    if (rv != APR_SUCCESS) {
        scep_db_abort(txn);
        return scepreg_db_failed(p, o->dbdir, "cannot read the database", rv);
    }
    for (i = 0; i < ctx.certs->nelts; i++) {
        check_cert_t *k = &APR_ARRAY_IDX(ctx.certs, i, check_cert_t);

        apr_hash_set(by_serial, k->serial, APR_HASH_KEY_STRING, k);
    }
    for (i = 0; i < ctx.index->nelts; i++) {
        check_index_t *e = &APR_ARRAY_IDX(ctx.index, i, check_index_t);
        check_cert_t *k = apr_hash_get(by_serial, e->serial, APR_HASH_KEY_STRING);

        if (!k) {
            check_problem(&ctx, "index: %s lists certificate %s, which is not stored",
                          e->fqdn, e->serial);
        }
        else if (!k->fqdn || strcmp(k->fqdn, e->fqdn) != 0) {
            check_problem(&ctx, "index: %s lists certificate %s, issued to %s", e->fqdn,
                          e->serial, k->fqdn ? k->fqdn : "(no name)");
        }
        else {
            apr_hash_set(indexed, k->serial, APR_HASH_KEY_STRING, k);
        }
    }
    apr_pool_create(&scratch, p);
    for (i = 0; i < ctx.certs->nelts; i++) {
        check_cert_t *k = &APR_ARRAY_IDX(ctx.certs, i, check_cert_t);
        scep_transaction_t *t;

        if (!apr_hash_get(indexed, k->serial, APR_HASH_KEY_STRING)) {
            check_problem(&ctx, "certificate %s of %s is missing from the name index",
                          k->serial, k->fqdn ? k->fqdn : "(no name)");
        }
        if (!k->transaction_id) {
            check_problem(&ctx, "certificate %s names no transaction", k->serial);
            continue;
        }
        rv = scep_store_transaction_get(txn, scratch, k->transaction_id, &t);
        if (rv == SCEP_DB_EXISTS) {
            /* several requesters used the ID (a device renewing under it after an upgrade
             * keeps its older record too): the certificate names no requester, and the
             * walk below checks each transaction */
            apr_pool_clear(scratch);
            continue;
        }
        if (rv == SCEP_DB_NOTFOUND) {
            check_problem(&ctx, "certificate %s: its transaction %s is not recorded",
                          k->serial, k->transaction_id);
        }
        else if (rv != APR_SUCCESS) {
            check_problem(&ctx, "certificate %s: its transaction %s: %s", k->serial,
                          k->transaction_id, scep_db_strerror(scratch, rv));
        }
        /* A transactionID may be used again after ScepTransactionWindow, or by the
         * renewal of the certificate it issued: the record is then newer than the
         * certificate and rightly names the later one. */
        else if ((!t->serial || strcmp(t->serial, k->serial) != 0)
                 && !(t->created > k->issued_at)) {
            check_problem(&ctx, "certificate %s: its transaction %s records %s %s",
                          k->serial, k->transaction_id, t->state,
                          t->serial ? t->serial : "no certificate");
        }
        apr_pool_clear(scratch);
    }
    for (i = 0; i < ctx.txns->nelts; i++) {
        const check_txn_t *t = &APR_ARRAY_IDX(ctx.txns, i, check_txn_t);
        const char *id = t->id;
        check_cert_t *k;

        if (strcmp(t->state, SCEP_TXN_ISSUED) == 0) {
            issued++;
            k = t->serial ? apr_hash_get(by_serial, t->serial, APR_HASH_KEY_STRING) : NULL;
            if (!k) {
                check_problem(&ctx, "transaction %s: issued %s, which is not stored", id,
                              t->serial ? t->serial : "no serial");
            }
            else if (!k->transaction_id || strcmp(k->transaction_id, id) != 0) {
                check_problem(&ctx, "transaction %s: its certificate %s names transaction "
                              "%s", id, t->serial,
                              k->transaction_id ? k->transaction_id : "none");
            }
        }
        apr_pool_clear(scratch);
    }
    scep_db_abort(txn);
    printf("%d certificates, %d transactions (%ld issued), %d index entries: %s\n",
           ctx.certs->nelts, ctx.txns->nelts, issued, ctx.index->nelts,
           ctx.problems ? apr_psprintf(p, "%ld problem(s)", ctx.problems) : "consistent");
    if ((rc = scepreg_finish_output()) != RC_OK) {
        return rc;
    }
    return ctx.problems ? RC_INVALID : RC_OK;
}

/* ---- import ------------------------------------------------------------------------------ */

typedef struct row_t {
    int line;
    scep_import_row_t v;
    scep_verifier_t verifier;
    apr_status_t rv;                /* of the verifier */
} row_t;

/* PBKDF2 for a slice of the rows: rows[first], rows[first + step], ... below `end`. */
typedef struct hash_job_t {
    row_t *rows;
    int first, end, step;
} hash_job_t;

static void hash_rows(hash_job_t *job)
{
    int i;

    for (i = job->first; i < job->end && !scepreg_interrupted; i += job->step) {
        row_t *row = &job->rows[i];

        if (row->v.challenge) {
            row->rv = scep_verifier_make(row->v.challenge, row->v.challenge_len,
                                         &row->verifier);
            OPENSSL_cleanse(row->v.challenge, row->v.challenge_len);
            row->v.challenge = NULL;
        }
    }
}

#if APR_HAS_THREADS
static void *APR_THREAD_FUNC hash_thread(apr_thread_t *thread, void *baton)
{
    hash_rows(baton);
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}
#endif

/* Hashes rows [from, to) on `threads` threads. */
static void hash_batch(apr_pool_t *p, row_t *rows, int from, int to, int threads)
{
    hash_job_t jobs[MAX_THREADS] = { { 0 } };
    int t;

#if APR_HAS_THREADS
    apr_thread_t *tids[MAX_THREADS];
    int started[MAX_THREADS];
    apr_pool_t *tp;

    if (threads < 1 || to - from < 2 * threads || apr_pool_create(&tp, p) != APR_SUCCESS) {
        threads = 1;
        tp = NULL;
    }
    /* interleaved slices: rows of one batch cost about the same */
    for (t = 0; t < threads; t++) {
        jobs[t].rows = rows;
        jobs[t].first = from + t;
        jobs[t].end = to;
        jobs[t].step = threads;
        started[t] = t > 0 && apr_thread_create(&tids[t], NULL, hash_thread, &jobs[t], tp)
                              == APR_SUCCESS;
    }
    hash_rows(&jobs[0]);
    for (t = 1; t < threads; t++) {
        apr_status_t ignored;

        if (started[t]) {
            apr_thread_join(&ignored, tids[t]);
        }
        else {
            hash_rows(&jobs[t]);
        }
    }
    if (tp) {
        apr_pool_destroy(tp);
    }
#else
    (void)p;
    (void)threads;
    t = 0;
    jobs[t].rows = rows;
    jobs[t].first = from;
    jobs[t].end = to;
    jobs[t].step = 1;
    hash_rows(&jobs[t]);
#endif
}

static void wipe_challenges(apr_array_header_t *rows)
{
    row_t *all = (row_t *)rows->elts;
    int i;

    for (i = 0; i < rows->nelts; i++) {
        if (all[i].v.challenge) {
            OPENSSL_cleanse(all[i].v.challenge, all[i].v.challenge_len);
        }
    }
}

/* 1. Reads and validates every row of the file into `rows`; *rejected counts the others.
 * Unless -k, one rejected row stops the import. */
static int read_rows(apr_pool_t *p, const opts_t *o, const char *label, apr_int64_t now,
                     apr_array_header_t *rows, int *rejected)
{
    apr_hash_t *seen = apr_hash_make(p);
    reader_t reader;
    char *line;
    apr_size_t len;
    int fd, got, too_long, lineno = 0, data_lines = 0;

    if (!strcmp(o->import_file, "-")) {
        fd = STDIN_FILENO;
    }
    else if ((fd = open(o->import_file, O_RDONLY | O_CLOEXEC)) < 0) {
        scepreg_complain("cannot open '%s': %s", o->import_file, strerror(errno));
        return scepreg_interrupted ? scepreg_report_interrupted() : RC_SYNTAX;
    }
    reader_init(&reader, p, fd, LINE_MAX_BYTES);
    for (;;) {
        row_t row;
        const char *why = NULL;
        char *copy;
        int *prev, kind;

        got = reader_line(&reader, &line, &len, &too_long);
        if (got != READ_LINE) {
            break;
        }
        lineno++;
        if (too_long) {
            scepreg_complain("%s:%d: line longer than %d bytes", label, lineno, LINE_MAX_BYTES);
            ++*rejected;
            continue;
        }
        memset(&row, 0, sizeof(row));
        row.line = lineno;
        /* the row keeps pointers into this copy (wiped after hashing) */
        copy = apr_pstrmemdup(p, line, len);
        kind = scep_import_line(p, copy, &data_lines, now, &row.v, &why);
        if (kind == SCEP_IMPORT_SKIP) {
            OPENSSL_cleanse(copy, len);
            continue;
        }
        if (!why && (prev = apr_hash_get(seen, row.v.fqdn, APR_HASH_KEY_STRING)) != NULL) {
            why = apr_psprintf(p, "%s is already on line %d", row.v.fqdn, *prev);
        }
        if (why) {
            scepreg_complain("%s:%d: %s", label, lineno, why);
            ++*rejected;
            OPENSSL_cleanse(copy, len);
            continue;
        }
        prev = apr_palloc(p, sizeof(*prev));
        *prev = lineno;
        apr_hash_set(seen, row.v.fqdn, APR_HASH_KEY_STRING, prev);
        APR_ARRAY_PUSH(rows, row_t) = row;
    }
    reader_wipe(&reader);
    if (fd != STDIN_FILENO) {
        close(fd);
    }
    if (got == READ_ERROR || got == READ_INTERRUPTED || scepreg_interrupted) {
        wipe_challenges(rows);
        if (got == READ_ERROR) {
            scepreg_complain("cannot read '%s': %s", label, strerror(errno));
            return RC_SYNTAX;
        }
        return scepreg_report_interrupted();
    }
    if (*rejected && !o->keep_going) {
        wipe_challenges(rows);
        scepreg_complain("%d row%s rejected; nothing imported (-k imports the valid rows)",
                         *rejected, *rejected == 1 ? "" : "s");
        return RC_SYNTAX;
    }
    return RC_OK;
}

/* 2. The verifiers, on every core, before any lock is taken.  OpenSSL's random generator
 * is set up here, before the threads, rather than lazily inside them. */
static int hash_all(apr_pool_t *p, apr_array_header_t *rows)
{
    row_t *all = (row_t *)rows->elts;
    long cpus;
    int threads, i, tty = isatty(STDERR_FILENO);

    RAND_status();
    cpus = sysconf(_SC_NPROCESSORS_ONLN);
    threads = cpus < 1 ? 1 : cpus > MAX_THREADS ? MAX_THREADS : (int)cpus;
    for (i = 0; i < rows->nelts && !scepreg_interrupted; i += IMPORT_BATCH) {
        int to = i + IMPORT_BATCH < rows->nelts ? i + IMPORT_BATCH : rows->nelts;

        hash_batch(p, all, i, to, threads);
        if (tty && rows->nelts > IMPORT_BATCH) {
            fprintf(stderr, "\rprepared %d rows", to);
        }
    }
    if (tty && rows->nelts > IMPORT_BATCH) {
        fputc('\n', stderr);
    }
    for (i = 0; i < rows->nelts; i++) {
        if (all[i].v.challenge) {         /* left over by an interrupt */
            OPENSSL_cleanse(all[i].v.challenge, all[i].v.challenge_len);
            all[i].v.challenge = NULL;
        }
        else if (all[i].rv != APR_SUCCESS && !scepreg_interrupted) {
            scepreg_complain("cannot make a challenge verifier: %s",
                             scep_util_openssl_errors(p));
            return RC_DB;
        }
    }
    return scepreg_interrupted ? scepreg_report_interrupted() : RC_OK;
}

/* 3. One short write transaction for all rows. */
/* One batch of rows (at most SCEP_STORE_MANY_MAX): read what exists, write every row.  A
 * row defines the registration; only the history of an existing one stays. */
static int store_batch(apr_pool_t *p, const opts_t *o, scep_txn_t *txn, const char *label,
                       row_t *rows, int n, apr_int64_t now, int *added, int *updated)
{
    const char **keys = apr_palloc(p, sizeof(*keys) * (apr_size_t)n);
    scep_device_t **old = apr_palloc(p, sizeof(scep_device_t *) * (apr_size_t)n);
    scep_device_t **devs = apr_palloc(p, sizeof(scep_device_t *) * (apr_size_t)n);
    apr_status_t rv;
    int i, failed;

    for (i = 0; i < n; i++) {
        keys[i] = rows[i].v.fqdn;
    }
    rv = scep_store_device_get_many(txn, p, keys, n, old, &failed);
    if (rv != APR_SUCCESS) {
        if (failed >= 0) {
            scepreg_complain("%s:%d: cannot read %s", label, rows[failed].line, keys[failed]);
        }
        return scepreg_db_failed(p, o->dbdir, "cannot read a device", rv);
    }
    for (i = 0; i < n; i++) {
        scep_device_t *dev = devs[i] = scep_store_device_new(p, rows[i].v.fqdn);

        dev->ips = rows[i].v.ips;
        dev->serial = rows[i].v.serial;
        dev->verifier = rows[i].verifier;
        dev->flags = rows[i].v.flags;
        dev->expires = rows[i].v.expires;
        dev->profile = rows[i].v.profile;
        dev->comment = rows[i].v.comment;
        dev->created = now;
        dev->updated = now;
        if (old[i]) {
            dev->created = old[i]->created;
            dev->last_serial = old[i]->last_serial;
            dev->last_not_after = old[i]->last_not_after;
            dev->last_enrolled = old[i]->last_enrolled;
            dev->enrollments = old[i]->enrollments;
            ++*updated;
        }
        else {
            ++*added;
        }
        OPENSSL_cleanse(&rows[i].verifier, sizeof(rows[i].verifier));
    }
    rv = scep_store_device_put_many(txn, p, (const scep_device_t *const *)devs, n, &failed);
    for (i = 0; i < n; i++) {
        OPENSSL_cleanse(&devs[i]->verifier, sizeof(devs[i]->verifier));
    }
    if (rv != APR_SUCCESS) {
        if (rv != SCEP_DB_FULL && failed >= 0) {
            scepreg_complain("%s:%d: cannot store %s", label, rows[failed].line,
                             keys[failed]);
        }
        else if (rv != SCEP_DB_FULL) {
            scepreg_complain("%s:%d-%d: cannot store these rows", label, rows[0].line,
                             rows[n - 1].line);
        }
        return scepreg_db_failed(p, o->dbdir, "nothing imported", rv);
    }
    return RC_OK;
}

/* Every row in one write transaction, SCEP_STORE_MANY_MAX at a time (one round trip
 * each way per batch on PostgreSQL). */
static int store_rows(apr_pool_t *p, const opts_t *o, scep_db_t *db, const char *label,
                      apr_array_header_t *rows, apr_int64_t now, int *added, int *updated)
{
    row_t *all = (row_t *)rows->elts;
    apr_pool_t *iter;
    scep_txn_t *txn;
    apr_status_t rv;
    int i, n, rc;

    if ((rv = scep_db_begin(db, p, 1, &txn)) != APR_SUCCESS) {
        return scepreg_db_failed(p, o->dbdir, "cannot begin a write transaction", rv);
    }
    apr_pool_create(&iter, p);
    for (i = 0; i < rows->nelts; i += n) {
        n = rows->nelts - i < SCEP_STORE_MANY_MAX ? rows->nelts - i : SCEP_STORE_MANY_MAX;
        if (scepreg_interrupted) {
            scep_db_abort(txn);
            return scepreg_report_interrupted();
        }
        apr_pool_clear(iter);
        rc = store_batch(iter, o, txn, label, all + i, n, now, added, updated);
        if (rc != RC_OK) {
            scep_db_abort(txn);
            return rc;
        }
    }
    if (scepreg_interrupted) {
        scep_db_abort(txn);
        return scepreg_report_interrupted();
    }
    if ((rv = scep_db_commit(txn)) != APR_SUCCESS) {
        return scepreg_db_failed(p, o->dbdir, "nothing imported", rv);
    }
    return RC_OK;
}

int scepreg_devices_import(apr_pool_t *p, const opts_t *o, scep_db_t *db, apr_int64_t now)
{
    const char *label = strcmp(o->import_file, "-") ? o->import_file : "stdin";
    apr_array_header_t *rows = apr_array_make(p, 1024, sizeof(row_t));
    int rc, rejected = 0, added = 0, updated = 0;

    if ((rc = read_rows(p, o, label, now, rows, &rejected)) != RC_OK
        || (rc = hash_all(p, rows)) != RC_OK
        || (rc = store_rows(p, o, db, label, rows, now, &added, &updated)) != RC_OK) {
        return rc;
    }
    scepreg_complain("imported %d devices (%d new, %d updated), %d rejected",
                     added + updated, added, updated, rejected);
    return scepreg_fix_ownership(p, o);
}


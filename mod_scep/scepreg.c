/* SPDX-License-Identifier: Apache-2.0 */
/* scepreg: the registration tool of mod_scep, modelled on httpd's htpasswd and htdbm.
 * It adds, updates, disables, deletes and verifies device registrations, lists devices
 * and issued certificates, mints one-time challenges and imports CSV files, always
 * through the core (scep_db, scep_store) that the module itself uses.
 *
 * Each invocation that writes does so in exactly one LMDB write transaction, read-modify-
 * write inside it, so the tool is safe beside a running httpd and beside another scepreg.
 * Everything slow (prompts, reading files, PBKDF2) happens before that transaction
 * begins; SIGINT and SIGTERM only set a flag, checked up to the commit, so an interrupted
 * run leaves the database as it was.  Exit codes keep htpasswd's meanings (see usage()
 * and docs/scepreg.md). */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1       /* timegm, getopt's '+' and friends on glibc */
#endif

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_hash.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <apr_thread_proc.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "scep_db.h"
#include "scep_import.h"
#include "scep_name.h"
#include "scep_policy.h"
#include "scep_store.h"
#include "scep_util.h"
#include "scep_version.h"

/* Exit codes: htpasswd's meanings, plus 7 and 8 for the database itself. */
#define RC_OK          0
#define RC_DB          1    /* cannot open/create/read/write the database */
#define RC_SYNTAX      2    /* command line (or, for -I without -k, rejected rows) */
#define RC_MISMATCH    3    /* challenges differ (confirmation or -v) */
#define RC_INTERRUPTED 4    /* SIGINT/SIGTERM before the commit: nothing written */
#define RC_TOOLONG     5    /* a value is too long */
#define RC_ILLEGAL     6    /* an illegal FQDN, address or value, or no such device */
#define RC_INVALID     7    /* not a valid mod_scep database (corrupt, newer schema) */
#define RC_FULL        8    /* the map is full */

/* Limits of what the tool accepts: the values' in scep_import.h, and these. */
#define LINE_MAX_BYTES (64 * 1024)      /* one CSV line */
#define IMPORT_BATCH   1000             /* rows hashed between progress lines */
#define MAX_THREADS    16

static const char *progname = "scepreg";
static volatile sig_atomic_t interrupted;

/* ---- messages ------------------------------------------------------------------ */

static void complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void complain(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    scep_util_cli_say(progname, fmt, ap);
    va_end(ap);
}

static void log_to_stderr(void *baton, int level, const char *line)
{
    (void)baton;
    (void)level;
    fprintf(stderr, "%s: %s\n", progname, line);
}

static const scep_log_t cli_log = { log_to_stderr, NULL, SCEP_LOG_WARNING };

static void usage(void)
{
    fprintf(stderr,
        "Usage (scepreg %s, device registrations of mod_scep):\n"
        "  %s [-c] [-m SIZE] [-o USER] [-i|-b|-g|-n] [-1] [-a IP]... [-A] [-s SERIAL]\n"
        "          [-e EXPIRY] [-p PROFILE] [-t COMMENT] DBDIR FQDN [CHALLENGE]\n"
        "                        add or update a device (FQDN may be \"*\" or \"*.domain\")\n"
        "  %s -D [-R [-r REASON]] DBDIR FQDN     delete a device; with -R, revoke its\n"
        "                        certificates too (a wildcard would still renew them)\n"
        "  %s -d DBDIR FQDN      disable a device      %s -E DBDIR FQDN  enable it\n"
        "  %s -U DBDIR FQDN      unlock a name (clear its failure counter)\n"
        "  %s -v [-i|-b] DBDIR FQDN [CHALLENGE]   verify a challenge\n"
        "  %s -l [-j] DBDIR [FQDN|PATTERN]        list devices\n"
        "  %s -L [-j] DBDIR [FQDN]                list issued certificates\n"
        "  %s -V DBDIR                            check the certificates, transactions\n"
        "                        and index agree (exit 7 if not)\n"
        "  %s -R [-r REASON] DBDIR SERIAL|FQDN    revoke a certificate, or all of a device's\n"
        "  %s -P [-j] DBDIR [FQDN]                list requests held for approval\n"
        "  %s -Y DBDIR TXID|FQDN                  approve held requests\n"
        "  %s -N [-t REASON] DBDIR TXID|FQDN      reject held requests\n"
        "  %s -M [-T TTL] [-p PROFILE] [-m SIZE] DBDIR [FQDN]   mint a one-time challenge\n"
        "  %s -I FILE [-k] [-c] [-m SIZE] [-o USER] DBDIR       import CSV (\"-\": stdin)\n"
        "Options:\n"
        "  -c  create the database folder and files if missing   -m  map size (512M, 2G)\n"
        "  -o  owner (user) of the database files (as root)\n"
        "  -i  read the challenge from stdin     -b  challenge on the command line (visible!)\n"
        "  -g  generate a random challenge and print it          -n  no stored challenge\n"
        "  -1  one-time challenge    -a  allowed IP address (repeat; replaces the list)\n"
        "  -W  on|off: first enrollments of the device wait for approval (-Y)\n"
        "  -A  clear the IP list     -s  device serial number  -p  profile  -t  comment\n"
        "  -e  expiry: YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, +30d, +12h, +90m or never\n"
        "  -j  JSON lines    -T  lifetime of a minted challenge (3600, 60m, 1h, 1d; default 1h)\n"
        "  -k  import the valid rows even if some are rejected\n"
        "  -r  revocation reason: unspecified (default), keyCompromise, affiliationChanged,\n"
        "      superseded, cessationOfOperation, privilegeWithdrawn\n"
        "Exit status: 0 ok, 1 database access, 2 syntax, 3 challenge mismatch, 4 interrupted,\n"
        "  5 value too long, 6 illegal value or no such device, 7 invalid database,\n"
        "  8 database full\n",
        SCEP_VERSION, progname, progname, progname, progname, progname, progname, progname,
        progname, progname, progname, progname, progname, progname, progname, progname);
}

static int syntax(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int syntax(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", progname);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    usage();
    return RC_SYNTAX;
}

static int status_rc(apr_status_t rv)
{
    if (rv == SCEP_DB_FULL) {
        return RC_FULL;
    }
    if (rv == SCEP_DB_CORRUPT || rv == SCEP_DB_VERSION) {
        return RC_INVALID;
    }
    return RC_DB;
}

/* Reports a database error and returns the exit code it maps to. */
static int db_failed(apr_pool_t *p, const char *dir, const char *what, apr_status_t rv)
{
    if (rv == SCEP_DB_FULL) {
        complain("the database '%s' is full (%s): raise its map size with -m, e.g. -m 2G, "
                 "and ScepDeviceDBMapSize in the server configuration", dir, what);
    }
    else {
        complain("%s in '%s': %s", what, dir, scep_db_strerror(p, rv));
    }
    return status_rc(rv);
}

/* ---- signals --------------------------------------------------------------------- */

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* No SA_RESTART: a blocked read() returns EINTR, so loops see the flag at once. */
static void install_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static int report_interrupted(void)
{
    complain("interrupted; the database is unchanged");
    return RC_INTERRUPTED;
}

/* The last step of every change: an interrupt until now leaves the database as it was. */
static int commit_unless_interrupted(apr_pool_t *p, const char *dir, scep_txn_t *txn)
{
    apr_status_t rv;

    if (interrupted) {
        scep_db_abort(txn);
        return report_interrupted();
    }
    if ((rv = scep_db_commit(txn)) != APR_SUCCESS) {
        return db_failed(p, dir, "cannot commit", rv);
    }
    return RC_OK;
}

/* ---- values ---------------------------------------------------------------------- */

/* "512M", "2G", "65536": bytes, with K, M, G or T (powers of 1024). */
static int parse_size(const char *s, apr_size_t *out)
{
    char *end;
    apr_int64_t v, unit = 1;

    errno = 0;
    v = apr_strtoi64(s, &end, 10);
    if (end == s || errno || v <= 0) {
        return 0;
    }
    switch (*end) {
    case 'k': case 'K': unit = APR_INT64_C(1) << 10; end++; break;
    case 'm': case 'M': unit = APR_INT64_C(1) << 20; end++; break;
    case 'g': case 'G': unit = APR_INT64_C(1) << 30; end++; break;
    case 't': case 'T': unit = APR_INT64_C(1) << 40; end++; break;
    default: break;
    }
    if (*end == 'B' || *end == 'b') {
        end++;
    }
    if (*end || v > (APR_INT64_C(1) << 42) / unit || v * unit < 32 * 1024
        || (apr_uint64_t)(v * unit) > (apr_uint64_t)(apr_size_t)-1) {
        return 0;
    }
    *out = (apr_size_t)(v * unit);
    return 1;
}

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
                if (interrupted) {
                    return READ_INTERRUPTED;
                }
                continue;
            }
            return READ_ERROR;
        }
        if (interrupted) {
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
        complain("cannot prompt for the challenge: no terminal (use -i, -g or -n)");
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
            if (interrupted) {
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
    if (interrupted) {
        rc = RC_INTERRUPTED;
    }
    if (n > 0 && buf[n - 1] == '\r') {
        n--;
    }
    buf[n] = '\0';
    *len = n;
    return rc;
}

/* ---- the command line --------------------------------------------------------------- */

/* A certificate serial number as the operator types it ("0A1B", "0a:1b", "A1B"), in the
 * upper-case, even-length hex the records use; NULL if it is not one. */
static const char *serial_text(apr_pool_t *p, const char *s)
{
    apr_size_t n = strlen(s), i, len = 0;
    char *out = apr_palloc(p, n + 2);

    if (n == 0 || n > 2 * 20 + 19) {        /* RFC 5280: at most 20 octets */
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if (s[i] == ':' && i > 0 && i + 1 < n && s[i + 1] != ':') {
            continue;
        }
        if (!isxdigit((unsigned char)s[i])) {
            return NULL;
        }
        out[len++] = (char)toupper((unsigned char)s[i]);
    }
    out[len] = '\0';
    if (len % 2) {
        memmove(out + 1, out, len + 1);
        out[0] = '0';
    }
    return out;
}

typedef struct opts_t {
    int mode;                       /* 'a' (add/update) or the option letter */
    int source;                     /* challenge: 0 (prompt/keep), 'i', 'b', 'g', 'n' */
    int create, one_time, clear_ips, json, keep_going;
    apr_size_t map_size;            /* 0: keep */
    apr_array_header_t *ips;        /* canonical, const char * */
    const char *serial, *expiry_text, *profile, *comment, *owner, *ttl_text, *import_file;
    const char *revoke_serial;      /* -R by serial (hex, upper-case); else o->fqdn */
    const char *transaction_id;     /* -Y/-N: as given; o->fqdn too when it is one */
    int reason;                     /* -R: RFC 5280 CRLReason */
    int revoke_too;                 /* -D -R: revoke the device's certificates as well */
    int approval;                   /* -W: 0 unset, 1 on, -1 off */
    apr_int64_t expires, ttl;
    int expires_set;
    const char *dbdir, *name, *fqdn, *challenge_arg;
    unsigned char seen[256];
} opts_t;

static int parse_args(apr_pool_t *p, int argc, char **argv, opts_t *o, apr_int64_t now)
{
    /* options each mode accepts beside its own letter */
    static const struct { int mode; const char *allowed; int min_args, max_args; } modes[] = {
        { 'a', "cmoibgn1aAseptW", 2, 3 },
        { 'D', "r", 2, 2 }, { 'd', "", 2, 2 }, { 'E', "", 2, 2 }, { 'U', "", 2, 2 },
        { 'v', "ib", 2, 3 },
        { 'l', "j", 1, 2 }, { 'L', "j", 1, 2 }, { 'V', "", 1, 1 },
        { 'M', "Tpm", 1, 2 },
        { 'I', "kcmo", 1, 1 },
        { 'R', "r", 2, 2 },
        { 'P', "j", 1, 2 }, { 'Y', "", 2, 2 }, { 'N', "t", 2, 2 },
    };
    const char *raw_ips[64];
    int n_ips = 0, c, i, nargs;
    const char *allowed = NULL;

    memset(o, 0, sizeof(*o));
    o->mode = 'a';
    o->ips = apr_array_make(p, 2, sizeof(const char *));
    opterr = 0;
    /* '+': options end at the first operand, so a challenge given with -b may start
     * with '-' (as may anything after "--") */
    while ((c = getopt(argc, argv, "+cm:o:ibgn1a:As:e:p:t:DdEUvlLVjMT:I:kRr:W:PYNh")) != -1) {
        if (c == '?' || c == ':') {
            return syntax(strchr("cmoaseptTIrW", optopt) && optopt
                          ? "option -%c needs a value" : "unknown option -%c", optopt);
        }
        if (c == 'h') {
            usage();
            return RC_SYNTAX;
        }
        if (o->seen[c] && !strchr("a", c)) {
            return syntax("option -%c given twice", c);
        }
        o->seen[c] = 1;
        switch (c) {
        case 'D': case 'd': case 'E': case 'U': case 'v': case 'l': case 'L': case 'M':
        case 'I': case 'R': case 'P': case 'Y': case 'N': case 'V':
            /* -D -R, in either order: one deletion that revokes too */
            if ((o->mode == 'D' && c == 'R') || (o->mode == 'R' && c == 'D')) {
                o->mode = 'D';
                o->revoke_too = 1;
                break;
            }
            if (o->mode != 'a') {
                return syntax("options -%c and -%c cannot be combined", o->mode, c);
            }
            o->mode = c;
            if (c == 'I') {
                o->import_file = optarg;
            }
            break;
        case 'i': case 'b': case 'g': case 'n':
            if (o->source) {
                return syntax("options -%c and -%c cannot be combined", o->source, c);
            }
            o->source = c;
            break;
        case 'c': o->create = 1; break;
        case 'm':
            if (!parse_size(optarg, &o->map_size)) {
                return syntax("-m: '%s' is not a size (bytes, or a number with K, M, G or "
                              "T; at least 32K)", optarg);
            }
            break;
        case 'o': o->owner = optarg; break;
        case '1': o->one_time = 1; break;
        case 'a':
            if (n_ips == (int)(sizeof(raw_ips) / sizeof(raw_ips[0]))) {
                return syntax("too many -a options (at most %d)", n_ips);
            }
            raw_ips[n_ips++] = optarg;
            break;
        case 'A': o->clear_ips = 1; break;
        case 's': o->serial = optarg; break;
        case 'e': o->expiry_text = optarg; break;
        case 'p': o->profile = optarg; break;
        case 't': o->comment = optarg; break;
        case 'j': o->json = 1; break;
        case 'T': o->ttl_text = optarg; break;
        case 'k': o->keep_going = 1; break;
        case 'W':
            if (strcasecmp(optarg, "on") == 0) {
                o->approval = 1;
            }
            else if (strcasecmp(optarg, "off") == 0) {
                o->approval = -1;
            }
            else {
                return syntax("-W: '%s' is neither on nor off", optarg);
            }
            break;
        case 'r':
            if ((o->reason = scep_store_reason_parse(optarg)) < 0) {
                return syntax("-r: '%s' is not a reason (unspecified, keyCompromise, "
                              "affiliationChanged, superseded, cessationOfOperation, "
                              "privilegeWithdrawn)", optarg);
            }
            break;
        default:
            return syntax("unknown option -%c", c);
        }
    }
    for (i = 0; i < (int)(sizeof(modes) / sizeof(modes[0])); i++) {
        if (modes[i].mode == o->mode) {
            allowed = modes[i].allowed;
            break;
        }
    }
    for (c = 1; c < 256; c++) {
        if (o->seen[c] && c != o->mode && !strchr("DdEUvlLMIRPYN", c) && !strchr(allowed, c)) {
            if (o->mode == 'a') {
                return syntax("option -%c cannot be used when adding a device", c);
            }
            return syntax("option -%c cannot be used with -%c", c, o->mode);
        }
    }
    if (o->mode == 'D' && o->seen['r'] && !o->revoke_too) {
        return syntax("option -r needs -R (-D -R -r REASON deletes and revokes)");
    }
    nargs = argc - optind;
    if (o->mode == 'a' || o->mode == 'v') {
        int want = o->source == 'b' ? 3 : 2;

        if (nargs != want) {
            return syntax(o->source == 'b' ? "expected DBDIR, FQDN and CHALLENGE"
                                           : "expected DBDIR and FQDN");
        }
    }
    else {
        for (i = 0; i < (int)(sizeof(modes) / sizeof(modes[0])); i++) {
            if (modes[i].mode == o->mode
                && (nargs < modes[i].min_args || nargs > modes[i].max_args)) {
                return syntax("wrong number of arguments for -%c", o->mode);
            }
        }
    }
    o->dbdir = argv[optind];
    o->name = nargs > 1 ? argv[optind + 1] : NULL;
    o->challenge_arg = nargs > 2 ? argv[optind + 2] : NULL;
    if (!*o->dbdir) {
        return syntax("the database folder is empty");
    }

    /* -R takes a serial (hex digits, colons allowed) or else an FQDN; a trailing dot
     * makes a name of digits and a-f an FQDN */
    if (o->mode == 'R' && o->name && (o->revoke_serial = serial_text(p, o->name)) != NULL) {
        o->name = NULL;
    }
    /* -Y and -N take a transactionID (any printable text) or else an FQDN */
    if ((o->mode == 'Y' || o->mode == 'N') && o->name) {
        if (strlen(o->name) > 255 || !scep_import_printable(o->name)) {
            complain("illegal transactionID or FQDN");
            return RC_ILLEGAL;
        }
        o->transaction_id = o->name;
        o->fqdn = scep_name_fqdn(p, o->name, 0);
        o->name = NULL;
    }

    /* values: lengths first (5), then legality (6), then formats (2) */
    if (o->name) {
        if (strlen(o->name) > SCEP_FQDN_MAX + 1) {
            complain("the FQDN is longer than %d characters", SCEP_FQDN_MAX);
            return RC_TOOLONG;
        }
        if (!(o->fqdn = scep_name_fqdn(p, o->name, 1))) {
            if (scep_import_printable(o->name)) {
                complain("illegal FQDN '%s'", o->name);
            }
            else {
                complain("illegal FQDN (it holds control or non-ASCII characters)");
            }
            return RC_ILLEGAL;
        }
        /* a minted challenge is bound to the one name a request asks for */
        if (o->mode == 'M' && o->fqdn[0] == '*') {
            complain("a minted challenge binds one name, not a wildcard ('%s')", o->fqdn);
            return RC_ILLEGAL;
        }
    }
    if (o->challenge_arg && strlen(o->challenge_arg) > SCEP_REG_CHALLENGE_MAX) {
        complain("the challenge is longer than %d characters", SCEP_REG_CHALLENGE_MAX);
        return RC_TOOLONG;
    }
    if (o->serial && strlen(o->serial) > SCEP_REG_SERIAL_MAX) {
        complain("the serial number is longer than %d characters", SCEP_REG_SERIAL_MAX);
        return RC_TOOLONG;
    }
    if (o->profile && strlen(o->profile) > SCEP_REG_PROFILE_MAX) {
        complain("the profile name is longer than %d characters", SCEP_REG_PROFILE_MAX);
        return RC_TOOLONG;
    }
    if (o->comment && strlen(o->comment) > SCEP_REG_COMMENT_MAX) {
        complain("the comment is longer than %d characters", SCEP_REG_COMMENT_MAX);
        return RC_TOOLONG;
    }
    for (i = 0; i < n_ips; i++) {
        const char *ip;

        if (strlen(raw_ips[i]) > SCEP_REG_IP_TEXT_MAX) {
            complain("the IP address is longer than %d characters", SCEP_REG_IP_TEXT_MAX);
            return RC_TOOLONG;
        }
        if (!(ip = scep_name_ip(p, raw_ips[i]))) {
            int shown = scep_import_printable(raw_ips[i]);

            complain(shown ? "illegal IP address '%s'" : "illegal IP address%s",
                     shown ? raw_ips[i] : "");
            return RC_ILLEGAL;
        }
        APR_ARRAY_PUSH(o->ips, const char *) = ip;
    }
    if (o->serial && !scep_import_clean_text(o->serial)) {
        complain("illegal serial number (control characters or invalid UTF-8)");
        return RC_ILLEGAL;
    }
    if (o->comment && !scep_import_clean_text(o->comment)) {
        complain("illegal comment (control characters or invalid UTF-8)");
        return RC_ILLEGAL;
    }
    if (o->profile && !scep_import_profile_name_ok(o->profile)) {
        complain("illegal profile name (letters, digits, '-', '_' and '.' only)");
        return RC_ILLEGAL;
    }
    if (o->expiry_text) {
        if (!scep_import_parse_expiry(o->expiry_text, now, &o->expires)) {
            return syntax("-e: '%s' is not an expiry (YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, "
                          "+30d, +12h, +90m or never)", o->expiry_text);
        }
        o->expires_set = 1;
    }
    o->ttl = 3600;
    if (o->ttl_text && !scep_import_parse_duration(o->ttl_text, &o->ttl)) {
        return syntax("-T: '%s' is not a lifetime (3600, 60m, 1h, 1d)", o->ttl_text);
    }
    return RC_OK;
}

/* ---- the database ----------------------------------------------------------------------- */

/* Opens the database, creating it with -c.  A missing database is an error of its own
 * (rather than LMDB's) so that the operator learns about -c. */
static int open_db(apr_pool_t *p, const opts_t *o, int write, scep_db_t **db)
{
    struct stat st;
    const char *data = apr_pstrcat(p, o->dbdir, "/data.mdb", NULL);
    const char *why = NULL;
    int flags = write ? 0 : SCEP_DB_READONLY;
    apr_status_t rv;

    if (stat(o->dbdir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            complain("cannot open database '%s': not a folder", o->dbdir);
            return RC_DB;
        }
    }
    else if (errno != ENOENT) {
        complain("cannot open database '%s': %s", o->dbdir, strerror(errno));
        return RC_DB;
    }
    else if (!o->create) {
        complain("cannot open database '%s': it does not exist (use -c to create it)",
                 o->dbdir);
        return RC_DB;
    }
    else {
        /* Missing parents are made searchable, so httpd's User can reach the folder. */
        char *parent = apr_pstrdup(p, o->dbdir), *slash = strrchr(parent, '/');
        apr_status_t made = APR_SUCCESS;

        if (slash && slash != parent) {
            *slash = '\0';
            made = apr_dir_make_recursive(parent, APR_FPROT_OS_DEFAULT, p);
        }
        if ((made != APR_SUCCESS && !APR_STATUS_IS_EEXIST(made))
            || (mkdir(o->dbdir, 0700) != 0 && errno != EEXIST)) {
            complain("cannot create database folder '%s': %s", o->dbdir, strerror(errno));
            return RC_DB;
        }
    }
    if (stat(data, &st) != 0) {
        if (errno != ENOENT) {
            complain("cannot open database '%s': %s", o->dbdir, strerror(errno));
            return RC_DB;
        }
        if (!o->create) {
            complain("cannot open database '%s': the folder holds no database (use -c to "
                     "create it)", o->dbdir);
            return RC_DB;
        }
        flags = SCEP_DB_CREATE;
    }
    rv = scep_db_open(p, o->dbdir, write ? o->map_size : 0, flags, &cli_log, db, &why);
    if (rv != APR_SUCCESS) {
        complain("cannot open database '%s': %s", o->dbdir,
                 why ? why : scep_db_strerror(p, rv));
        return status_rc(rv);
    }
    return RC_OK;
}

/* As root, a database written by the tool must stay usable by httpd's children: with -o
 * the folder and its files are handed to that user; otherwise, if the folder belongs to
 * somebody else (httpd made it), files that root just created are handed to the folder's
 * owner. */
static int fix_ownership(apr_pool_t *p, const opts_t *o)
{
    static const char *const files[] = { "", "/data.mdb", "/lock.mdb" };
    struct stat dir_st, st;
    uid_t uid;
    gid_t gid;
    int i, rc = RC_OK;

    if (geteuid() != 0) {
        return RC_OK;
    }
    if (o->owner) {
        struct passwd *pw = getpwnam(o->owner);

        if (!pw) {
            complain("-o: no user '%s'", o->owner);
            return RC_DB;
        }
        uid = pw->pw_uid;
        gid = pw->pw_gid;
    }
    else {
        if (stat(o->dbdir, &dir_st) != 0 || dir_st.st_uid == 0) {
            return RC_OK;
        }
        uid = dir_st.st_uid;
        gid = dir_st.st_gid;
    }
    for (i = 0; i < (int)(sizeof(files) / sizeof(files[0])); i++) {
        const char *path = apr_pstrcat(p, o->dbdir, files[i], NULL);

        if (lstat(path, &st) != 0 || S_ISLNK(st.st_mode)) {
            continue;
        }
        if (!o->owner && (i == 0 || st.st_uid != 0)) {
            continue;
        }
        if (lchown(path, uid, gid) != 0) {
            complain("the change is saved, but '%s' cannot be handed to uid %ld: %s", path,
                     (long)uid, strerror(errno));
            rc = RC_DB;
        }
    }
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
            complain("cannot generate a random challenge: %s", scep_util_openssl_errors(p));
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
            return report_interrupted();
        }
        if (got == READ_ERROR) {
            complain("cannot read the challenge from stdin: %s", strerror(errno));
            reader_wipe(&r);
            return RC_SYNTAX;
        }
        if (too_long || *len > SCEP_REG_CHALLENGE_MAX) {
            reader_wipe(&r);
            complain("the challenge is longer than %d characters", SCEP_REG_CHALLENGE_MAX);
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
                complain("challenge verification error: the two entries differ");
                return RC_MISMATCH;
            }
        }
        if (rc != RC_OK) {
            OPENSSL_cleanse(buf, SCEP_REG_CHALLENGE_MAX + 1);
            if (rc == RC_TOOLONG) {
                complain("the challenge is longer than %d characters", SCEP_REG_CHALLENGE_MAX);
            }
            else if (rc == RC_INTERRUPTED) {
                report_interrupted();
            }
            return rc;
        }
        break;
    }
    }
    if (*len == 0 && confirm) {
        OPENSSL_cleanse(buf, SCEP_REG_CHALLENGE_MAX + 1);
        complain("an empty challenge is refused (use -n for a registration without one)");
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

static int cmd_add(apr_pool_t *p, const opts_t *o, apr_int64_t now)
{
    scep_db_t *db;
    scep_txn_t *txn;
    scep_device_t *dev = NULL;
    scep_verifier_t verifier;
    char *secret = apr_palloc(p, SCEP_REG_CHALLENGE_MAX + 1);
    char *shown = NULL;
    apr_size_t len;
    apr_status_t rv;
    int rc, have, existed, is_new, keep_verifier;

    if ((rc = open_db(p, o, 1, &db)) != RC_OK) {
        return rc;
    }
    rv = peek_device(p, db, o->fqdn, &dev);
    if (rv != APR_SUCCESS && rv != SCEP_DB_NOTFOUND) {
        return db_failed(p, o->dbdir, "cannot read the device", rv);
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
                complain("cannot make the challenge verifier: %s", scep_util_openssl_errors(p));
                return RC_DB;
            }
        }
    }
    if (interrupted) {
        return report_interrupted();
    }

    if ((rv = scep_db_begin(db, p, 1, &txn)) != APR_SUCCESS) {
        return db_failed(p, o->dbdir, "cannot begin a write transaction", rv);
    }
    rv = scep_store_device_get(txn, p, o->fqdn, &dev);
    if (rv != APR_SUCCESS && rv != SCEP_DB_NOTFOUND) {
        scep_db_abort(txn);
        return db_failed(p, o->dbdir, "cannot read the device", rv);
    }
    is_new = rv == SCEP_DB_NOTFOUND;
    if (is_new && keep_verifier) {
        scep_db_abort(txn);
        complain("device '%s' was deleted meanwhile; nothing changed", o->fqdn);
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
        return db_failed(p, o->dbdir, "cannot store the device", rv);
    }
    if ((rc = commit_unless_interrupted(p, o->dbdir, txn)) != RC_OK) {
        return rc;
    }
    fprintf(stderr, "%s: %s device %s%s\n", progname, is_new ? "added" : "updated", o->fqdn,
            dev->verifier.algorithm ? "" : " (no challenge: it enrolls with minted ones only)");
    if (shown) {
        printf("%s\n", shown);
        fflush(stdout);
        OPENSSL_cleanse(shown, strlen(shown));
    }
    return fix_ownership(p, o);
}

/* ---- revoke ------------------------------------------------------------------------------ */

static int collect_serial(void *baton, const scep_cert_rec_t *c)
{
    apr_array_header_t *serials = baton;

    APR_ARRAY_PUSH(serials, const char *) = apr_pstrdup(serials->pool, c->serial);
    return 0;
}

/* Revokes one certificate (`serial`), or every certificate of the name `fqdn`, inside
 * the caller's write transaction, so that -R and -D -R share it and the module sees a
 * whole change or none.  Counts the certificates revoked now and those revoked before;
 * SCEP_DB_NOTFOUND for a serial that is not recorded. */
static apr_status_t revoke_in(scep_txn_t *txn, apr_pool_t *p, const char *serial,
                              const char *fqdn, int reason, apr_int64_t now, int *revoked,
                              int *before)
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

static void report_revoked(const opts_t *o, int revoked, int before)
{
    complain("revoked %d certificate%s of %s (%s); %d already revoked", revoked,
             revoked == 1 ? "" : "s", o->fqdn, scep_store_reason_name(o->reason),
             before);
}

/* Revokes one certificate, or every certificate of a device, in one write transaction. */
static int cmd_revoke(apr_pool_t *p, const opts_t *o, apr_int64_t now)
{
    scep_db_t *db;
    scep_txn_t *txn;
    int revoked, before, rc;
    apr_status_t rv;

    if ((rc = open_db(p, o, 1, &db)) != RC_OK) {
        return rc;
    }
    if ((rv = scep_db_begin(db, p, 1, &txn)) != APR_SUCCESS) {
        return db_failed(p, o->dbdir, "cannot begin a write transaction", rv);
    }
    rv = revoke_in(txn, p, o->revoke_serial, o->fqdn, o->reason, now, &revoked, &before);
    if (rv == SCEP_DB_NOTFOUND || (rv == APR_SUCCESS && revoked + before == 0)) {
        scep_db_abort(txn);
        if (o->revoke_serial) {
            complain("no certificate with serial %s in %s", o->revoke_serial, o->dbdir);
        }
        else {
            complain("no certificates issued to '%s' in %s", o->fqdn, o->dbdir);
        }
        return RC_ILLEGAL;
    }
    if (rv != APR_SUCCESS) {
        scep_db_abort(txn);
        return db_failed(p, o->dbdir, "cannot revoke", rv);
    }
    if ((rc = commit_unless_interrupted(p, o->dbdir, txn)) != RC_OK) {
        return rc;
    }
    if (o->revoke_serial) {
        complain(revoked ? "revoked certificate %s (%s)"
                         : "certificate %s was already revoked (reason and time kept, not %s)",
                 o->revoke_serial, scep_store_reason_name(o->reason));
    }
    else {
        report_revoked(o, revoked, before);
    }
    return fix_ownership(p, o);
}

/* ---- delete, disable, enable, unlock --------------------------------------------------- */

static int no_device(const opts_t *o)
{
    complain("no device '%s' in %s", o->fqdn, o->dbdir);
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

static int cmd_change(apr_pool_t *p, const opts_t *o, apr_int64_t now)
{
    scep_db_t *db;
    scep_txn_t *txn;
    scep_device_t *dev;
    scep_failure_t f;
    const char *done = NULL, *cover = NULL;
    apr_status_t rv;
    int rc, revoked = 0, before = 0, valid = 0;

    if ((rc = open_db(p, o, 1, &db)) != RC_OK) {
        return rc;
    }
    if ((rv = scep_db_begin(db, p, 1, &txn)) != APR_SUCCESS) {
        return db_failed(p, o->dbdir, "cannot begin a write transaction", rv);
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
        return db_failed(p, o->dbdir, "cannot read the device", rv);
    }
    memset(&f, 0, sizeof(f));
    switch (o->mode) {
    case 'D':
        rv = scep_store_device_delete(txn, o->fqdn);
        done = apr_pstrcat(p, "deleted device ", o->fqdn, NULL);
        if (rv == APR_SUCCESS && o->revoke_too) {
            rv = revoke_in(txn, p, NULL, o->fqdn, o->reason, now, &revoked, &before);
        }
        if (rv == APR_SUCCESS && o->fqdn[0] != '*') {
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
        return db_failed(p, o->dbdir, "cannot change the device", rv);
    }
    if ((rc = commit_unless_interrupted(p, o->dbdir, txn)) != RC_OK) {
        return rc;
    }
    complain("%s", done);
    if (o->revoke_too) {
        report_revoked(o, revoked, before);
        if (o->fqdn[0] == '*') {
            complain("note: certificates are kept under the name they were issued to, "
                     "never under a wildcard: -R DB NAME revokes a name's, and scepreg -L "
                     "DB lists them");
        }
    }
    if (cover && o->fqdn[0] == '*') {
        complain("note: '%s' now covers the names '%s' covered: %d unrevoked certificate%s "
                 "of names without a registration of their own %s valid and renewable "
                 "through it, and those names enroll with its challenge", cover, o->fqdn,
                 valid, valid == 1 ? "" : "s", valid == 1 ? "stays" : "stay");
    }
    else if (cover) {
        /* Deleting the name does not stop a wildcard: it authorises renewals of the
         * name's certificates and new enrollments with its own challenge. */
        if (valid) {
            complain("note: '%s' still covers %s: its %d unrevoked certificate%s %s valid "
                     "and renewable through that wildcard; revoke %s with -R %s (-D -R "
                     "deletes and revokes in one step)", cover, o->fqdn, valid, valid == 1 ? "" : "s",
                     valid == 1 ? "stays" : "stay", valid == 1 ? "it" : "them", o->fqdn);
        }
        else {
            complain("note: '%s' still covers %s: the name can enroll again with that "
                     "wildcard's challenge", cover, o->fqdn);
        }
    }
    return fix_ownership(p, o);
}

/* ---- verify ------------------------------------------------------------------------------ */

static int cmd_verify(apr_pool_t *p, const opts_t *o, apr_int64_t now)
{
    scep_db_t *db;
    scep_txn_t *txn;
    scep_device_t *dev;
    char *secret = apr_palloc(p, SCEP_REG_CHALLENGE_MAX + 1);
    apr_size_t len;
    apr_status_t rv;
    int rc, have, ok;

    if ((rc = open_db(p, o, 0, &db)) != RC_OK) {
        return rc;
    }
    /* read-only: a failed verification here is not counted against the name */
    if ((rv = scep_db_begin(db, p, 0, &txn)) != APR_SUCCESS) {
        return db_failed(p, o->dbdir, "cannot begin a read transaction", rv);
    }
    rv = scep_store_device_find(txn, p, o->fqdn, &dev);
    scep_db_abort(txn);
    if (rv == SCEP_DB_NOTFOUND) {
        return no_device(o);
    }
    if (rv != APR_SUCCESS) {
        return db_failed(p, o->dbdir, "cannot read the device", rv);
    }
    if ((rc = fix_ownership(p, o)) != RC_OK) {
        return rc;
    }
    if ((rc = get_challenge(p, o, 0, secret, &len, &have)) != RC_OK) {
        return rc;
    }
    ok = dev->verifier.algorithm != 0 && scep_verifier_matches(&dev->verifier, secret, len);
    OPENSSL_cleanse(secret, SCEP_REG_CHALLENGE_MAX + 1);
    if (interrupted) {
        return report_interrupted();
    }
    if (!dev->verifier.algorithm) {
        complain("registration '%s' has no challenge (it enrolls with minted challenges only)",
                 dev->fqdn);
        return RC_MISMATCH;
    }
    if (!ok) {
        complain("challenge for %s is wrong (registration '%s')", o->fqdn, dev->fqdn);
        return RC_MISMATCH;
    }
    complain("challenge for %s is correct (registration '%s')", o->fqdn, dev->fqdn);
    if (dev->flags & SCEP_DEVICE_DISABLED) {
        complain("note: the registration is disabled");
    }
    if ((dev->flags & SCEP_DEVICE_ONE_TIME) && (dev->flags & SCEP_DEVICE_USED)) {
        complain("note: the one-time challenge has been used");
    }
    if (dev->expires && dev->expires <= now) {
        complain("note: the registration has expired");
    }
    return RC_OK;
}

/* ---- listings ---------------------------------------------------------------------------- */

static void json_string(FILE *out, const char *s)
{
    if (!s) {
        fputs("null", out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        switch (c) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        default:
            if (c < 0x20 || c == 0x7f) {
                fprintf(out, "\\u%04x", c);
            }
            else {
                fputc(c, out);
            }
        }
    }
    fputc('"', out);
}

static void json_time(FILE *out, apr_int64_t t)
{
    char buf[SCEP_UTIL_ISO_TIME_SIZE];

    if (!t) {
        fputs("null", out);
        return;
    }
    fprintf(out, "\"%s\"", scep_util_iso_time(buf, t));
}

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
        fputs("{\"fqdn\":", out);
        json_string(out, dev->fqdn);
        fputs(",\"ips\":[", out);
        for (i = 0; dev->ips && i < dev->ips->nelts; i++) {
            if (i) {
                fputc(',', out);
            }
            json_string(out, APR_ARRAY_IDX(dev->ips, i, const char *));
        }
        fputs("],\"serial\":", out);
        json_string(out, dev->serial);
        fprintf(out, ",\"challenge\":\"%s\",\"one_time\":%s,\"disabled\":%s,"
                "\"approval\":%s,\"expires\":",
                challenge, (dev->flags & SCEP_DEVICE_ONE_TIME) ? "true" : "false",
                (dev->flags & SCEP_DEVICE_DISABLED) ? "true" : "false",
                (dev->flags & SCEP_DEVICE_APPROVAL) ? "true" : "false");
        json_time(out, dev->expires);
        fputs(",\"profile\":", out);
        json_string(out, dev->profile);
        fputs(",\"comment\":", out);
        json_string(out, dev->comment);
        fputs(",\"created\":", out);
        json_time(out, dev->created);
        fputs(",\"updated\":", out);
        json_time(out, dev->updated);
        fputs(",\"last_serial\":", out);
        json_string(out, dev->last_serial);
        fputs(",\"last_not_after\":", out);
        json_time(out, dev->last_not_after);
        fputs(",\"last_enrolled\":", out);
        json_time(out, dev->last_enrolled);
        fprintf(out, ",\"enrollments\":%" APR_INT64_T_FMT ",\"failures\":%" APR_INT64_T_FMT
                ",\"locked_until\":", dev->enrollments, f->count);
        json_time(out, f->locked_until > ctx->now ? f->locked_until : 0);
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

static int finish_output(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        complain("cannot write the listing: %s", strerror(errno));
        return RC_DB;
    }
    return RC_OK;
}

static int cmd_list(apr_pool_t *p, const opts_t *o, apr_int64_t now)
{
    scep_db_t *db;
    list_ctx_t ctx;
    apr_status_t rv;
    int rc, i;

    if ((rc = open_db(p, o, 0, &db)) != RC_OK) {
        return rc;
    }
    memset(&ctx, 0, sizeof(ctx));
    ctx.o = o;
    ctx.pool = p;
    ctx.now = now;
    ctx.devices = apr_array_make(p, 64, sizeof(const scep_device_t *));
    if ((rv = scep_db_begin(db, p, 0, &ctx.txn)) != APR_SUCCESS) {
        return db_failed(p, o->dbdir, "cannot begin a read transaction", rv);
    }
    if (o->fqdn && o->fqdn[0] != '*') {
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
        finish_output();
        return db_failed(p, o->dbdir, "cannot list the devices", rv);
    }
    if ((rc = finish_output()) != RC_OK) {
        return rc;
    }
    return fix_ownership(p, o);
}

static int print_cert(void *baton, const scep_cert_rec_t *c)
{
    list_ctx_t *ctx = baton;
    FILE *out = stdout;
    char t1[SCEP_UTIL_ISO_TIME_SIZE], t2[SCEP_UTIL_ISO_TIME_SIZE], t3[SCEP_UTIL_ISO_TIME_SIZE],
        t4[SCEP_UTIL_ISO_TIME_SIZE];

    if (ctx->o->json) {
        fputs("{\"serial\":", out);
        json_string(out, c->serial);
        fputs(",\"fqdn\":", out);
        json_string(out, c->fqdn);
        fputs(",\"subject\":", out);
        json_string(out, c->subject);
        fputs(",\"not_before\":", out);
        json_time(out, c->not_before);
        fputs(",\"not_after\":", out);
        json_time(out, c->not_after);
        fputs(",\"issued_at\":", out);
        json_time(out, c->issued_at);
        fputs(",\"transaction_id\":", out);
        json_string(out, c->transaction_id);
        fputs(",\"revoked\":", out);
        json_time(out, c->revoked_at);
        fputs(",\"revocation_reason\":", out);
        json_string(out, c->revoked_at ? scep_store_reason_name(c->revocation_reason)
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

static int cmd_list_certs(apr_pool_t *p, const opts_t *o)
{
    scep_db_t *db;
    list_ctx_t ctx;
    apr_status_t rv;
    int rc;

    if ((rc = open_db(p, o, 0, &db)) != RC_OK) {
        return rc;
    }
    memset(&ctx, 0, sizeof(ctx));
    ctx.o = o;
    ctx.pool = p;
    if ((rv = scep_db_begin(db, p, 0, &ctx.txn)) != APR_SUCCESS) {
        return db_failed(p, o->dbdir, "cannot begin a read transaction", rv);
    }
    if (!o->json) {
        fputs("serial\tfqdn\tsubject\tnot_before\tnot_after\tissued_at\ttransaction_id\t"
              "revoked\treason\n", stdout);
    }
    rv = scep_store_cert_foreach(ctx.txn, p, o->fqdn, print_cert, &ctx);
    scep_db_abort(ctx.txn);
    if (rv != APR_SUCCESS && rv != SCEP_DB_NOTFOUND) {
        finish_output();
        return db_failed(p, o->dbdir, "cannot list the certificates", rv);
    }
    if ((rc = finish_output()) != RC_OK) {
        return rc;
    }
    return fix_ownership(p, o);
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
        fprintf(stderr, "%s: %s: ", progname, ctx->dbdir);
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

static int cmd_check(apr_pool_t *p, const opts_t *o)
{
    scep_db_t *db;
    scep_txn_t *txn;
    check_ctx_t ctx;
    apr_hash_t *by_serial = apr_hash_make(p), *indexed = apr_hash_make(p);
    apr_pool_t *scratch;
    apr_status_t rv;
    long issued = 0;
    int rc, i;

    if ((rc = open_db(p, o, 0, &db)) != RC_OK) {
        return rc;
    }
    memset(&ctx, 0, sizeof(ctx));
    ctx.pool = p;
    ctx.dbdir = o->dbdir;
    ctx.certs = apr_array_make(p, 64, sizeof(check_cert_t));
    ctx.txns = apr_array_make(p, 64, sizeof(check_txn_t));
    ctx.index = apr_array_make(p, 64, sizeof(check_index_t));
    if ((rv = scep_db_begin(db, p, 0, &txn)) != APR_SUCCESS) {
        return db_failed(p, o->dbdir, "cannot begin a read transaction", rv);
    }
    /* the walks first, the lookups after: no lookups while a cursor runs */
    rv = scep_store_cert_foreach(txn, p, NULL, check_visit_cert, &ctx);
    if (rv == APR_SUCCESS) {
        rv = scep_store_transaction_foreach(txn, p, check_visit_txn, &ctx);
    }
    if (rv == APR_SUCCESS) {
        rv = scep_db_foreach(txn, SCEP_DBI_CERTS_BY_FQDN, NULL, 0, check_visit_index, &ctx);
    }
    if (rv != APR_SUCCESS) {
        scep_db_abort(txn);
        return db_failed(p, o->dbdir, "cannot read the database", rv);
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
    if ((rc = finish_output()) != RC_OK) {
        return rc;
    }
    return ctx.problems ? RC_INVALID : RC_OK;
}

/* ---- requests held for approval ------------------------------------------------------ */

typedef struct held_ctx_t {
    const opts_t *o;
} held_ctx_t;

static int print_held(void *baton, const scep_transaction_t *t)
{
    held_ctx_t *ctx = baton;
    FILE *out = stdout;
    char t1[SCEP_UTIL_ISO_TIME_SIZE], t2[SCEP_UTIL_ISO_TIME_SIZE];

    if (ctx->o->fqdn && (!t->fqdn || strcmp(t->fqdn, ctx->o->fqdn) != 0)) {
        return 0;
    }
    if (ctx->o->json) {
        fputs("{\"transaction_id\":", out);
        json_string(out, t->transaction_id);
        fputs(",\"state\":", out);
        json_string(out, t->state);
        fputs(",\"fqdn\":", out);
        json_string(out, t->fqdn);
        fputs(",\"subject\":", out);
        json_string(out, t->subject);
        fputs(",\"client\":", out);
        json_string(out, t->client_ip);
        fputs(",\"created\":", out);
        json_time(out, t->created);
        fputs(",\"decided_at\":", out);
        json_time(out, t->decided_at);
        fputs(",\"decided_by\":", out);
        json_string(out, t->decided_by);
        fputs(",\"reason\":", out);
        json_string(out, t->reason);
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

static int cmd_list_held(apr_pool_t *p, const opts_t *o)
{
    scep_db_t *db;
    scep_txn_t *txn;
    held_ctx_t ctx = { o };
    apr_status_t rv;
    int rc;

    if ((rc = open_db(p, o, 0, &db)) != RC_OK) {
        return rc;
    }
    if ((rv = scep_db_begin(db, p, 0, &txn)) != APR_SUCCESS) {
        return db_failed(p, o->dbdir, "cannot begin a read transaction", rv);
    }
    if (!o->json) {
        fputs("transaction_id\tstate\tfqdn\tsubject\tclient\tcreated\tdecided_at\t"
              "decided_by\treason\n", stdout);
    }
    rv = scep_store_transaction_foreach_held(txn, p, print_held, &ctx);
    scep_db_abort(txn);
    if (rv != APR_SUCCESS && rv != SCEP_DB_NOTFOUND) {
        finish_output();
        return db_failed(p, o->dbdir, "cannot list the held requests", rv);
    }
    return finish_output();
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
static int cmd_decide(apr_pool_t *p, const opts_t *o, apr_int64_t now)
{
    apr_array_header_t *decided;
    const char *state = NULL;
    scep_db_t *db;
    scep_txn_t *txn;
    apr_status_t rv;
    int rc, i;

    if ((rc = open_db(p, o, 1, &db)) != RC_OK) {
        return rc;
    }
    if ((rv = scep_db_begin(db, p, 1, &txn)) != APR_SUCCESS) {
        return db_failed(p, o->dbdir, "cannot begin a write transaction", rv);
    }
    rv = scep_policy_decide(txn, p, o->transaction_id, o->fqdn, o->mode == 'Y',
                            operator_name(p), o->comment, now, &decided, &state);
    if (rv != APR_SUCCESS) {
        scep_db_abort(txn);
    }
    if (rv == SCEP_POLICY_DENIED) {
        complain("the request %s is %s, not pending", o->transaction_id, state);
        return RC_ILLEGAL;
    }
    if (rv == SCEP_DB_EXISTS) {
        /* another device used the same ID: the operator must say which one is meant */
        complain("several devices sent requests with transactionID %s (scepreg -P lists "
                 "them): name the device instead, scepreg -%c %s FQDN", o->transaction_id,
                 o->mode, o->dbdir);
        return RC_ILLEGAL;
    }
    if (rv == SCEP_DB_NOTFOUND) {
        complain("no pending request with transactionID %s%s%s in %s", o->transaction_id,
                 o->fqdn ? " or for " : "", o->fqdn ? o->fqdn : "", o->dbdir);
        return RC_ILLEGAL;
    }
    if (rv != APR_SUCCESS) {
        return db_failed(p, o->dbdir, "cannot record the decision", rv);
    }
    if ((rc = commit_unless_interrupted(p, o->dbdir, txn)) != RC_OK) {
        return rc;
    }
    for (i = 0; i < decided->nelts; i++) {
        complain("%s request %s%s", o->mode == 'Y' ? "approved" : "rejected",
                 APR_ARRAY_IDX(decided, i, scep_transaction_t *)->transaction_id,
                 o->mode == 'Y' ? ": the device gets its certificate when it polls next"
                                : "");
    }
    return fix_ownership(p, o);
}

/* ---- mint -------------------------------------------------------------------------------- */

static int cmd_mint(apr_pool_t *p, const opts_t *o, apr_int64_t now)
{
    scep_db_t *db;
    scep_txn_t *txn;
    scep_minted_t *rec;
    const char *challenge = NULL;
    apr_status_t rv;
    int rc;

    if ((rc = open_db(p, o, 1, &db)) != RC_OK) {
        return rc;
    }
    if ((rv = scep_db_begin(db, p, 1, &txn)) != APR_SUCCESS) {
        return db_failed(p, o->dbdir, "cannot begin a write transaction", rv);
    }
    rv = scep_policy_mint(txn, p, now, o->ttl, o->fqdn,
                          o->profile && *o->profile ? o->profile : NULL, &challenge, &rec);
    if (rv != APR_SUCCESS) {
        scep_db_abort(txn);
        return db_failed(p, o->dbdir, "cannot mint a challenge", rv);
    }
    if ((rc = commit_unless_interrupted(p, o->dbdir, txn)) != RC_OK) {
        return rc;
    }
    printf("%s\n", challenge);
    OPENSSL_cleanse((void *)challenge, strlen(challenge));
    if ((rc = finish_output()) != RC_OK) {
        return rc;
    }
    return fix_ownership(p, o);
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

    for (i = job->first; i < job->end && !interrupted; i += job->step) {
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

static int cmd_import(apr_pool_t *p, const opts_t *o, apr_int64_t now)
{
    const char *label = strcmp(o->import_file, "-") ? o->import_file : "stdin";
    apr_array_header_t *rows = apr_array_make(p, 1024, sizeof(row_t));
    apr_hash_t *seen = apr_hash_make(p);
    apr_pool_t *iter;
    scep_db_t *db;
    scep_txn_t *txn;
    reader_t reader;
    row_t *all;
    char *line;
    apr_size_t len;
    apr_status_t rv;
    long cpus;
    int fd, rc, got, too_long, lineno = 0, data_lines = 0, rejected = 0, added = 0;
    int updated = 0, threads, i, tty = isatty(STDERR_FILENO);

    /* the database first: a missing one is reported before a long read */
    if ((rc = open_db(p, o, 1, &db)) != RC_OK) {
        return rc;
    }
    if (!strcmp(o->import_file, "-")) {
        fd = STDIN_FILENO;
    }
    else if ((fd = open(o->import_file, O_RDONLY | O_CLOEXEC)) < 0) {
        complain("cannot open '%s': %s", o->import_file, strerror(errno));
        return interrupted ? report_interrupted() : RC_SYNTAX;
    }
    reader_init(&reader, p, fd, LINE_MAX_BYTES);

    /* 1. read and validate every row */
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
            complain("%s:%d: line longer than %d bytes", label, lineno, LINE_MAX_BYTES);
            rejected++;
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
            complain("%s:%d: %s", label, lineno, why);
            rejected++;
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
    all = (row_t *)rows->elts;
    if (got == READ_ERROR || got == READ_INTERRUPTED || interrupted) {
        for (i = 0; i < rows->nelts; i++) {
            if (all[i].v.challenge) {
                OPENSSL_cleanse(all[i].v.challenge, all[i].v.challenge_len);
            }
        }
        if (got == READ_ERROR) {
            complain("cannot read '%s': %s", label, strerror(errno));
            return RC_SYNTAX;
        }
        return report_interrupted();
    }
    if (rejected && !o->keep_going) {
        for (i = 0; i < rows->nelts; i++) {
            if (all[i].v.challenge) {
                OPENSSL_cleanse(all[i].v.challenge, all[i].v.challenge_len);
            }
        }
        complain("%d row%s rejected; nothing imported (-k imports the valid rows)", rejected,
                 rejected == 1 ? "" : "s");
        return RC_SYNTAX;
    }

    /* 2. the verifiers, on every core, before any lock is taken.  OpenSSL's random
     * generator is set up here, before the threads, rather than lazily inside them. */
    RAND_status();
    cpus = sysconf(_SC_NPROCESSORS_ONLN);
    threads = cpus < 1 ? 1 : cpus > MAX_THREADS ? MAX_THREADS : (int)cpus;
    for (i = 0; i < rows->nelts && !interrupted; i += IMPORT_BATCH) {
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
        else if (all[i].rv != APR_SUCCESS && !interrupted) {
            complain("cannot make a challenge verifier: %s", scep_util_openssl_errors(p));
            return RC_DB;
        }
    }
    if (interrupted) {
        return report_interrupted();
    }

    /* 3. one short write transaction for all rows */
    if ((rv = scep_db_begin(db, p, 1, &txn)) != APR_SUCCESS) {
        return db_failed(p, o->dbdir, "cannot begin a write transaction", rv);
    }
    apr_pool_create(&iter, p);
    for (i = 0; i < rows->nelts; i++) {
        row_t *row = &all[i];
        scep_device_t *old = NULL, *dev;

        if (interrupted) {
            scep_db_abort(txn);
            return report_interrupted();
        }
        apr_pool_clear(iter);
        rv = scep_store_device_get(txn, iter, row->v.fqdn, &old);
        if (rv != APR_SUCCESS && rv != SCEP_DB_NOTFOUND) {
            scep_db_abort(txn);
            complain("%s:%d: cannot read %s", label, row->line, row->v.fqdn);
            return db_failed(p, o->dbdir, "cannot read a device", rv);
        }
        /* a row defines the registration; only the history of an existing one stays */
        dev = scep_store_device_new(iter, row->v.fqdn);
        dev->ips = row->v.ips;
        dev->serial = row->v.serial;
        dev->verifier = row->verifier;
        dev->flags = row->v.flags;
        dev->expires = row->v.expires;
        dev->profile = row->v.profile;
        dev->comment = row->v.comment;
        dev->created = now;
        dev->updated = now;
        if (rv == APR_SUCCESS) {
            dev->created = old->created;
            dev->last_serial = old->last_serial;
            dev->last_not_after = old->last_not_after;
            dev->last_enrolled = old->last_enrolled;
            dev->enrollments = old->enrollments;
            updated++;
        }
        else {
            added++;
        }
        rv = scep_store_device_put(txn, iter, dev);
        OPENSSL_cleanse(&row->verifier, sizeof(row->verifier));
        if (rv != APR_SUCCESS) {
            scep_db_abort(txn);
            if (rv != SCEP_DB_FULL) {
                complain("%s:%d: cannot store %s", label, row->line, row->v.fqdn);
            }
            return db_failed(p, o->dbdir, "nothing imported", rv);
        }
    }
    if (interrupted) {
        scep_db_abort(txn);
        return report_interrupted();
    }
    if ((rv = scep_db_commit(txn)) != APR_SUCCESS) {
        return db_failed(p, o->dbdir, "nothing imported", rv);
    }
    complain("imported %d devices (%d new, %d updated), %d rejected", added + updated, added,
             updated, rejected);
    return fix_ownership(p, o);
}

/* ---- main -------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    apr_pool_t *pool;
    apr_int64_t now = (apr_int64_t)time(NULL);
    opts_t o;
    int rc;

    if (argc > 0 && argv[0] && *argv[0]) {
        const char *slash = strrchr(argv[0], '/');

        progname = slash ? slash + 1 : argv[0];
    }
    if (apr_app_initialize(&argc, (const char *const **)&argv, NULL) != APR_SUCCESS
        || apr_pool_create(&pool, NULL) != APR_SUCCESS) {
        fprintf(stderr, "%s: cannot initialise APR\n", progname);
        return RC_DB;
    }
    atexit(apr_terminate);
    install_signals();

    rc = parse_args(pool, argc, argv, &o, now);
    if (rc == RC_OK) {
        if (o.owner && geteuid() == 0 && !getpwnam(o.owner)) {
            rc = syntax("-o: no user '%s'", o.owner);
        }
        else if (o.owner && geteuid() != 0) {
            rc = syntax("-o needs root");
        }
    }
    if (rc == RC_OK) {
        switch (o.mode) {
        case 'a': rc = cmd_add(pool, &o, now); break;
        case 'v': rc = cmd_verify(pool, &o, now); break;
        case 'l': rc = cmd_list(pool, &o, now); break;
        case 'L': rc = cmd_list_certs(pool, &o); break;
        case 'V': rc = cmd_check(pool, &o); break;
        case 'M': rc = cmd_mint(pool, &o, now); break;
        case 'I': rc = cmd_import(pool, &o, now); break;
        case 'R': rc = cmd_revoke(pool, &o, now); break;
        case 'P': rc = cmd_list_held(pool, &o); break;
        case 'Y': case 'N': rc = cmd_decide(pool, &o, now); break;
        default: rc = cmd_change(pool, &o, now); break;
        }
    }
    apr_pool_destroy(pool);
    return rc;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* scepreg: the registration tool of mod_scep, modelled on httpd's htpasswd and htdbm.
 * It adds, updates, disables, deletes and verifies device registrations, lists devices
 * and issued certificates, mints one-time challenges and imports CSV files, always
 * through the core (scep_db, scep_store) that the module itself uses.
 *
 * The database is an LMDB folder (the DBDIR operand) or PostgreSQL (--pg CONNINFO or
 * --pg-file FILE in its place); every command reaches the records through scep_store, so
 * both engines give the same output and exit codes.  `db` (the schema) and `copy`
 * (scepreg_copy.c: between the engines) are the only commands that know which is which;
 * `pki init` (scepreg_pki.c) makes the CA and RA files and opens no database.
 *
 * Each invocation that writes does so in exactly one write transaction, read-modify-
 * write inside it, so the tool is safe beside a running httpd and beside another scepreg.
 * Everything slow (prompts, reading files, PBKDF2) happens before that transaction
 * begins; SIGINT and SIGTERM only set a flag, checked up to the commit, so an interrupted
 * run leaves the database as it was.  Exit codes keep htpasswd's meanings (see usage()
 * and docs/scepreg.md).
 *
 * This file holds main, the messages, the exit codes and the table of modes that reads
 * the command line and runs a command; the commands live in scepreg_devices.c (the
 * registrations) and scepreg_records.c (what the module recorded), as a2md's do in
 * a2md_cmds.c. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1       /* timegm, getopt's '+' and friends on glibc */
#endif

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <apr_file_io.h>
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include "scep_csr.h"
#include "scep_db.h"
#include "scep_import.h"
#include "scep_name.h"
#include "scep_pgconf.h"
#include "scep_sql.h"
#include "scep_store.h"
#include "scep_util.h"
#include "scep_version.h"
#include "scepreg.h"

const char *scepreg_progname = "scepreg";
volatile sig_atomic_t scepreg_interrupted;

/* ---- messages ------------------------------------------------------------------ */

void scepreg_complain(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    scep_util_cli_say(scepreg_progname, fmt, ap);
    va_end(ap);
}

static void log_to_stderr(void *baton, const char *file, int line, int level,
                          const char *text)
{
    (void)baton;
    (void)file;
    (void)line;
    (void)level;
    fprintf(stderr, "%s: %s\n", scepreg_progname, text);
}

const scep_log_t scepreg_cli_log = { log_to_stderr, NULL, SCEP_LOG_WARNING };

static void usage(void)
{
    const char *me = scepreg_progname;

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
        "PostgreSQL: --pg CONNINFO or --pg-file FILE in place of DBDIR (before the operands)\n"
        "  %s --pg-file FILE db upgrade|status   create/upgrade the schema, or show it\n"
        "  %s db sql [N]                         print the SQL of schema step N (all)\n"
        "  %s [-m SIZE] --pg-file FILE copy --to-pg|--to-lmdb DBDIR   copy every\n"
        "                        record from DBDIR into an empty database, or back into\n"
        "                        a new DBDIR\n"
        "  A password never goes on the command line: put it in FILE (mode 0600), in\n"
        "  PGPASSFILE (~/.pgpass) or PGPASSWORD.\n"
        "The CA and RA of an endpoint (writes ca.key, ca.pem, ra.key, ra.pem in DIR, never\n"
        "replacing a file, and prints the <Location> to paste):\n"
        "  %s pki init [--dry-run] [--key-type rsa:2048|rsa:3072|rsa:4096|ec:P-256|ec:P-384]\n"
        "          [--ca-cert FILE --ca-key FILE] [--ra-key-type rsa:2048|rsa:3072|rsa:4096]\n"
        "          [--ca-name CN] [--ra-name CN] [--org O] [--ca-days N] [--ra-days N]\n"
        "          [--location PATH] [--db DBDIR] DIR\n"
        "Names: FQDN is a host name, or an identity of another kind (ScepIdentity):\n"
        "  name:DEVICE-NAME (exact), id:DEVICE-ID (MACs normalised), user:E-MAIL-OR-UPN;\n"
        "  wildcards *, *.domain, name:*, id:*, user:*, user:*@domain.  JSON output gives\n"
        "  \"kind\" (host, device-name, device-id, user) and the name without its prefix.\n"
        "Options:\n"
        "  -c  create the database folder and files if missing (PostgreSQL: the schema)\n"
        "  -m  map size (512M, 2G)   -o  owner (user) of the database files (as root)\n"
        "      (-m and -o have no meaning for PostgreSQL and are ignored there)\n"
        "  -i  read the challenge from stdin     -b  challenge on the command line (visible!)\n"
        "  -g  generate a random challenge and print it          -n  no stored challenge\n"
        "  -1  one-time challenge    -a  allowed IP address (repeat; replaces the list)\n"
        "  -W  on|off: first enrollments of the device wait for approval (-Y)\n"
        "  -A  clear the IP list     -s  device serial number  -p  profile  -t  comment\n"
        "  -e  expiry: YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, +30d, +12h, +90m or never\n"
        "  -j  JSON lines    -T  lifetime of a minted challenge (3600, 60m, 1h, 1d; "
        "default 1h)\n"
        "  -k  import the valid rows even if some are rejected\n"
        "  -r  revocation reason: unspecified (default), keyCompromise, affiliationChanged,\n"
        "      superseded, cessationOfOperation, privilegeWithdrawn\n"
        "Exit status: 0 ok, 1 database access, 2 syntax, 3 challenge mismatch, 4 interrupted,\n"
        "  5 value too long, 6 illegal value or no such device, 7 invalid database,\n"
        "  8 database full\n",
        SCEP_VERSION, me, me, me, me, me, me, me, me, me, me, me, me, me, me, me, me, me,
        me, me);
}

static int vsyntax(const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: ", scepreg_progname);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    usage();
    return RC_SYNTAX;
}

static int syntax(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int syntax(const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vsyntax(fmt, ap);
    va_end(ap);
    return rc;
}

int scepreg_syntax(const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vsyntax(fmt, ap);
    va_end(ap);
    return rc;
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

int scepreg_db_failed(apr_pool_t *p, const char *dir, const char *what, apr_status_t rv)
{
    if (rv == SCEP_DB_FULL) {
        scepreg_complain("the database '%s' is full (%s): raise its map size with -m, e.g. "
                         "-m 2G, and ScepDeviceDBMapSize in the server configuration", dir,
                         what);
    }
    else {
        scepreg_complain("%s in '%s': %s", what, dir, scep_db_strerror(p, rv));
    }
    return status_rc(rv);
}

/* ---- signals --------------------------------------------------------------------- */

static void on_signal(int sig)
{
    (void)sig;
    scepreg_interrupted = 1;
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

int scepreg_report_interrupted(void)
{
    scepreg_complain("interrupted; the database is unchanged");
    return RC_INTERRUPTED;
}

int scepreg_commit(apr_pool_t *p, const char *dir, scep_txn_t *txn)
{
    apr_status_t rv;

    if (scepreg_interrupted) {
        scep_db_abort(txn);
        return scepreg_report_interrupted();
    }
    if ((rv = scep_db_commit(txn)) != APR_SUCCESS) {
        return scepreg_db_failed(p, dir, "cannot commit", rv);
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

/* ---- the command line, and its table of modes ------------------------------------ */

/* The reading of NAME, the operand after DBDIR: an FQDN or a wildcard unless the mode
 * says otherwise.  Lengths are checked first (5), then legality (6). */
typedef int operands_fn(apr_pool_t *p, opts_t *o);

static int name_operand(apr_pool_t *p, opts_t *o)
{
    const char *why = NULL;
    const char *value;
    int other_kind;

    if (!o->name) {
        return RC_OK;
    }
    /* "kind:value" (a host name holds no ':'): the value's limits, the reason said */
    other_kind = strchr(o->name, ':') != NULL;
    value = other_kind ? strchr(o->name, ':') + 1 : o->name;
    if (!other_kind && strlen(o->name) > SCEP_FQDN_MAX + 1) {
        scepreg_complain("the FQDN is longer than %d characters", SCEP_FQDN_MAX);
        return RC_TOOLONG;
    }
    if (other_kind && strlen(value) > SCEP_NAME_VALUE_MAX) {
        scepreg_complain("the name after '%.*s' is %lu bytes long, more than %d",
                         (int)(value - o->name), o->name, (unsigned long)strlen(value),
                         SCEP_NAME_VALUE_MAX);
        return RC_TOOLONG;
    }
    if (!(o->fqdn = scep_name_key(p, o->name, 1, &why))) {
        if (!other_kind && scep_import_printable(o->name)) {
            scepreg_complain("illegal FQDN '%s'", o->name);
        }
        else if (!other_kind) {
            scepreg_complain("illegal FQDN (it holds control or non-ASCII characters)");
        }
        else {
            scepreg_complain("illegal name '%s': %s", scep_csr_shown(p, o->name), why);
        }
        return RC_ILLEGAL;
    }
    return RC_OK;
}

/* -M: a minted challenge is bound to the one name a request asks for */
static int one_name_operand(apr_pool_t *p, opts_t *o)
{
    int rc = name_operand(p, o);

    if (rc == RC_OK && o->fqdn && scep_name_is_wildcard(o->fqdn)) {
        scepreg_complain("a minted challenge binds one name, not a wildcard ('%s')",
                         o->fqdn);
        return RC_ILLEGAL;
    }
    return rc;
}

/* -R takes a serial (hex digits, colons allowed) or else an FQDN; a trailing dot makes a
 * name of digits and a-f an FQDN */
static int serial_operand(apr_pool_t *p, opts_t *o)
{
    if (o->name && (o->revoke_serial = serial_text(p, o->name)) != NULL) {
        o->name = NULL;
    }
    return name_operand(p, o);
}

/* -Y and -N take a transactionID (any printable text), which may also be an FQDN */
static int transaction_operand(apr_pool_t *p, opts_t *o)
{
    if (o->name) {
        /* a device name or user may be UTF-8 beyond ASCII: it is then a key, never an ID */
        o->fqdn = scep_name_key(p, o->name, 0, NULL);
        if (strlen(o->name) > 255 || (!scep_import_printable(o->name) && !o->fqdn)) {
            scepreg_complain("illegal transactionID or FQDN");
            return RC_ILLEGAL;
        }
        o->transaction_id = o->name;
        o->name = NULL;
    }
    return RC_OK;
}

/* The modes: what each accepts, how it reads its operands, whether it writes, and what
 * runs it.  Adding has no option letter of its own; 'a' stands for it (and is -a too). */
typedef struct mode_entry_t {
    int letter;
    int writes;                     /* opens the database for writing */
    const char *allowed;            /* options it accepts beside its own letter */
    int min_args, max_args;         /* operands, DBDIR first */
    int challenge_operand;          /* CHALLENGE follows FQDN exactly with -b */
    operands_fn *operands;
    scepreg_run_fn *run;
} mode_entry_t;

static const mode_entry_t modes[] = {
    { 'a', 1, "cmoibgn1aAseptW", 2, 3, 1, name_operand, scepreg_devices_add },
    { 'D', 1, "r", 2, 2, 0, name_operand, scepreg_devices_change },
    { 'd', 1, "", 2, 2, 0, name_operand, scepreg_devices_change },
    { 'E', 1, "", 2, 2, 0, name_operand, scepreg_devices_change },
    { 'U', 1, "", 2, 2, 0, name_operand, scepreg_devices_change },
    { 'v', 0, "ib", 2, 3, 1, name_operand, scepreg_devices_verify },
    { 'l', 0, "j", 1, 2, 0, name_operand, scepreg_devices_list },
    { 'L', 0, "j", 1, 2, 0, name_operand, scepreg_records_certs },
    { 'V', 0, "", 1, 1, 0, name_operand, scepreg_devices_check },
    { 'M', 1, "Tpm", 1, 2, 0, one_name_operand, scepreg_records_mint },
    { 'I', 1, "kcmo", 1, 1, 0, name_operand, scepreg_devices_import },
    { 'R', 1, "r", 2, 2, 0, serial_operand, scepreg_records_revoke },
    { 'P', 0, "j", 1, 2, 0, name_operand, scepreg_records_held },
    { 'Y', 1, "", 2, 2, 0, transaction_operand, scepreg_records_decide },
    { 'N', 1, "t", 2, 2, 0, transaction_operand, scepreg_records_decide },
};

/* The mode an option letter selects; NULL for other options (and for -a). */
static const mode_entry_t *mode_of(int letter)
{
    int i;

    for (i = 1; i < (int)(sizeof(modes) / sizeof(modes[0])); i++) {
        if (modes[i].letter == letter) {
            return &modes[i];
        }
    }
    return NULL;
}

typedef struct raw_ips_t {
    const char *text[64];
    int n;
} raw_ips_t;

/* One option that selects no mode. */
static int read_option(opts_t *o, int c, raw_ips_t *raw)
{
    switch (c) {
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
        if (raw->n == (int)(sizeof(raw->text) / sizeof(raw->text[0]))) {
            return syntax("too many -a options (at most %d)", raw->n);
        }
        raw->text[raw->n++] = optarg;
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
    return RC_OK;
}

enum { OPT_PG = 256, OPT_PG_FILE };

static const struct option long_options[] = {
    { "pg", required_argument, NULL, OPT_PG },
    { "pg-file", required_argument, NULL, OPT_PG_FILE },
    { NULL, 0, NULL, 0 }
};

/* --pg and --pg-file: the PostgreSQL database that stands in for DBDIR. */
static int read_pg_option(apr_pool_t *p, opts_t *o, int c, const char *value)
{
    const char *name = c == OPT_PG ? "--pg" : "--pg-file";
    const char *why = NULL;

    if (o->pg_option) {
        return syntax(strcmp(o->pg_option, name) == 0 ? "option %s given twice"
                      : "options %s and %s cannot be combined: name one database",
                      o->pg_option, name);
    }
    o->pg_option = name;
    if (c == OPT_PG && scep_pgconf_has_secret(value)) {
        scepreg_complain("--pg: the connection string holds a password, which every local "
                         "user could read on the command line; " SCEP_PGCONF_PASSWORD_ADVICE);
        return RC_SYNTAX;
    }
    if (c == OPT_PG) {
        o->pg_conninfo = value;
    }
    else if (scep_pgconf_read_file(p, value, &o->pg_conninfo, &why) != APR_SUCCESS) {
        scepreg_complain("--pg-file: %s", why);
        return RC_SYNTAX;
    }
    if (!*o->pg_conninfo) {
        return syntax("--pg: the connection string is empty");
    }
    /* a file is named by its path: its text never reaches a message */
    o->dbdir = c == OPT_PG ? scep_sql_conninfo_shown(p, o->pg_conninfo)
               : apr_psprintf(p, "%s (--pg-file)", value);
    return RC_OK;
}

/* The options, up to the first operand; selects o->mode. */
static int read_options(apr_pool_t *p, int argc, char **argv, opts_t *o, raw_ips_t *raw)
{
    int c, rc;

    opterr = 0;
    /* '+': options end at the first operand, so a challenge given with -b may start
     * with '-' (as may anything after "--") */
    while ((c = getopt_long(argc, argv, "+cm:o:ibgn1a:As:e:p:t:DdEUvlLVjMT:I:kRr:W:PYNh",
                            long_options, NULL)) != -1) {
        if ((c == '?' || c == ':') && (optopt == OPT_PG || optopt == OPT_PG_FILE)) {
            return syntax("option %s needs a value",
                          optopt == OPT_PG ? "--pg" : "--pg-file");
        }
        if ((c == '?' || c == ':') && optopt == 0) {
            return syntax("unknown option %s", argv[optind - 1]);
        }
        if (c == '?' || c == ':') {
            return syntax(strchr("cmoaseptTIrW", optopt) && optopt
                          ? "option -%c needs a value" : "unknown option -%c", optopt);
        }
        if (c == OPT_PG || c == OPT_PG_FILE) {
            if ((rc = read_pg_option(p, o, c, optarg)) != RC_OK) {
                return rc;
            }
            continue;
        }
        if (c == 'h') {
            usage();
            return RC_SYNTAX;
        }
        if (o->seen[c] && !strchr("a", c)) {
            return syntax("option -%c given twice", c);
        }
        o->seen[c] = 1;
        if (!mode_of(c)) {
            if ((rc = read_option(o, c, raw)) != RC_OK) {
                return rc;
            }
        }
        /* -D -R, in either order: one deletion that revokes too */
        else if ((o->mode == 'D' && c == 'R') || (o->mode == 'R' && c == 'D')) {
            o->mode = 'D';
            o->revoke_too = 1;
        }
        else if (o->mode != 'a') {
            return syntax("options -%c and -%c cannot be combined", o->mode, c);
        }
        else {
            o->mode = c;
            if (c == 'I') {
                o->import_file = optarg;
            }
        }
    }
    return RC_OK;
}

/* The values of the options: lengths first (5), then legality (6), then formats (2). */
static int check_values(apr_pool_t *p, opts_t *o, const raw_ips_t *raw, apr_int64_t now)
{
    int i;

    if (o->challenge_arg && strlen(o->challenge_arg) > SCEP_REG_CHALLENGE_MAX) {
        scepreg_complain("the challenge is longer than %d characters", SCEP_REG_CHALLENGE_MAX);
        return RC_TOOLONG;
    }
    if (o->serial && strlen(o->serial) > SCEP_REG_SERIAL_MAX) {
        scepreg_complain("the serial number is longer than %d characters", SCEP_REG_SERIAL_MAX);
        return RC_TOOLONG;
    }
    if (o->profile && strlen(o->profile) > SCEP_REG_PROFILE_MAX) {
        scepreg_complain("the profile name is longer than %d characters", SCEP_REG_PROFILE_MAX);
        return RC_TOOLONG;
    }
    if (o->comment && strlen(o->comment) > SCEP_REG_COMMENT_MAX) {
        scepreg_complain("the comment is longer than %d characters", SCEP_REG_COMMENT_MAX);
        return RC_TOOLONG;
    }
    for (i = 0; i < raw->n; i++) {
        const char *ip;

        if (strlen(raw->text[i]) > SCEP_REG_IP_TEXT_MAX) {
            scepreg_complain("the IP address is longer than %d characters",
                             SCEP_REG_IP_TEXT_MAX);
            return RC_TOOLONG;
        }
        if (!(ip = scep_name_ip(p, raw->text[i]))) {
            int shown = scep_import_printable(raw->text[i]);

            scepreg_complain(shown ? "illegal IP address '%s'" : "illegal IP address%s",
                             shown ? raw->text[i] : "");
            return RC_ILLEGAL;
        }
        APR_ARRAY_PUSH(o->ips, const char *) = ip;
    }
    if (o->serial && !scep_import_clean_text(o->serial)) {
        scepreg_complain("illegal serial number (control characters or invalid UTF-8)");
        return RC_ILLEGAL;
    }
    if (o->comment && !scep_import_clean_text(o->comment)) {
        scepreg_complain("illegal comment (control characters or invalid UTF-8)");
        return RC_ILLEGAL;
    }
    if (o->profile && !scep_import_profile_name_ok(o->profile)) {
        scepreg_complain("illegal profile name (letters, digits, '-', '_' and '.' only)");
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

/* With --pg or --pg-file, whether the operands also name an LMDB folder: one operand too
 * many for the mode, the first of them an existing folder. */
static int both_databases(const opts_t *o, const mode_entry_t *m, const char *operand,
                          int nargs)
{
    struct stat st;
    int expected = m->challenge_operand ? (o->source == 'b' ? 3 : 2) : m->max_args;

    return nargs == expected + 1 && stat(operand, &st) == 0 && S_ISDIR(st.st_mode);
}

/* `db upgrade|status|sql`, `copy --to-pg|--to-lmdb` and `pki init` in place of the
 * operands: the words take the place of DBDIR only when what follows is one of theirs: a
 * folder named db, copy or pki keeps working for every other device name, and as ./db for
 * those. */
static int word_command(int argc, char **argv, opts_t *o)
{
    const char *word = optind < argc ? argv[optind] : NULL;
    const char *verb = optind + 1 < argc ? argv[optind + 1] : NULL;

    if (!word || !verb) {
        return 0;
    }
    if ((strcmp(word, "db") == 0
         && (strcmp(verb, "upgrade") == 0 || strcmp(verb, "status") == 0
             || strcmp(verb, "sql") == 0))
        || (strcmp(word, "copy") == 0
            && (strcmp(verb, "--to-pg") == 0 || strcmp(verb, "--to-lmdb") == 0))
        || (strcmp(word, "pki") == 0 && strcmp(verb, "init") == 0)) {
        o->command = word;
        o->command_args = (const char *const *)argv + optind + 1;
        o->command_nargs = argc - optind - 1;
        return 1;
    }
    return 0;
}

/* The command line in *o: the mode to run, or NULL with *rc the exit code when refused
 * (or with RC_OK for a word command, o->command). */
static const mode_entry_t *parse_args(apr_pool_t *p, int argc, char **argv, opts_t *o,
                                      apr_int64_t now, int *rc)
{
    const mode_entry_t *m;
    raw_ips_t raw;
    int c, nargs, first;

    memset(o, 0, sizeof(*o));
    raw.n = 0;
    o->mode = 'a';
    o->ips = apr_array_make(p, 2, sizeof(const char *));
    if ((*rc = read_options(p, argc, argv, o, &raw)) != RC_OK) {
        return NULL;
    }
    if (o->mode == 'a' && word_command(argc, argv, o)) {
        *rc = RC_OK;            /* main runs o->command */
        return NULL;
    }
    m = o->mode == 'a' ? &modes[0] : mode_of(o->mode);
    for (c = 1; c < 256; c++) {
        if (o->seen[c] && c != o->mode && !mode_of(c) && !strchr(m->allowed, c)) {
            *rc = o->mode == 'a' ? syntax("option -%c cannot be used when adding a device", c)
                                 : syntax("option -%c cannot be used with -%c", c, o->mode);
            return NULL;
        }
    }
    if (o->mode == 'D' && o->seen['r'] && !o->revoke_too) {
        *rc = syntax("option -r needs -R (-D -R -r REASON deletes and revokes)");
        return NULL;
    }
    /* --pg/--pg-file stand in for DBDIR: the operands that follow count from FQDN */
    first = o->pg_option ? 1 : 0;
    nargs = argc - optind + first;
    if (first && argc > optind && both_databases(o, m, argv[optind], nargs)) {
        *rc = syntax("%s names the database: a folder ('%s') cannot be given as well",
                     o->pg_option, argv[optind]);
        return NULL;
    }
    if (m->challenge_operand && nargs != (o->source == 'b' ? 3 : 2)) {
        *rc = syntax(o->source == 'b' ? "expected DBDIR, FQDN and CHALLENGE"
                                      : "expected DBDIR and FQDN");
        return NULL;
    }
    if (!m->challenge_operand && (nargs < m->min_args || nargs > m->max_args)) {
        *rc = syntax("wrong number of arguments for -%c", o->mode);
        return NULL;
    }
    if (!first) {
        o->dbdir = argv[optind];
    }
    o->name = nargs > 1 ? argv[optind + 1 - first] : NULL;
    o->challenge_arg = nargs > 2 ? argv[optind + 2 - first] : NULL;
    if (!*o->dbdir) {
        *rc = syntax("the database folder is empty");
        return NULL;
    }
    if ((*rc = m->operands(p, o)) != RC_OK || (*rc = check_values(p, o, &raw, now)) != RC_OK) {
        return NULL;
    }
    return m;
}

/* ---- the database ----------------------------------------------------------------------- */

/* Opens the database, creating it with -c.  A missing database is an error of its own
 * (rather than LMDB's) so that the operator learns about -c. */
int scepreg_open_lmdb(apr_pool_t *p, const opts_t *o, int write, scep_db_t **db)
{
    struct stat st;
    const char *data = apr_pstrcat(p, o->dbdir, "/data.mdb", NULL);
    const char *why = NULL;
    int flags = write ? 0 : SCEP_DB_READONLY;
    apr_status_t rv;

    if (stat(o->dbdir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            scepreg_complain("cannot open database '%s': not a folder", o->dbdir);
            return RC_DB;
        }
    }
    else if (errno != ENOENT) {
        scepreg_complain("cannot open database '%s': %s", o->dbdir, strerror(errno));
        return RC_DB;
    }
    else if (!o->create) {
        scepreg_complain("cannot open database '%s': it does not exist (use -c to create it)",
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
            scepreg_complain("cannot create database folder '%s': %s", o->dbdir,
                             strerror(errno));
            return RC_DB;
        }
    }
    if (stat(data, &st) != 0) {
        if (errno != ENOENT) {
            scepreg_complain("cannot open database '%s': %s", o->dbdir, strerror(errno));
            return RC_DB;
        }
        if (!o->create) {
            scepreg_complain("cannot open database '%s': the folder holds no database (use "
                             "-c to create it)", o->dbdir);
            return RC_DB;
        }
        flags = SCEP_DB_CREATE;
    }
    rv = scep_db_open(p, o->dbdir, write ? o->map_size : 0, flags, &scepreg_cli_log, db, &why);
    if (rv != APR_SUCCESS) {
        scepreg_complain("cannot open database '%s': %s", o->dbdir,
                         why ? why : scep_db_strerror(p, rv));
        return status_rc(rv);
    }
    return RC_OK;
}

/* PostgreSQL: the connection, then the schema, which -c creates (as it creates an LMDB
 * folder) and which must be this scepreg's version.  A server that does not answer is
 * exit 1, as an LMDB folder that cannot be opened. */
int scepreg_open_pg(apr_pool_t *p, const opts_t *o, int write, scep_db_t **db)
{
    const char *why = NULL;
    int version = 0, from = 0, to = 0;
    apr_status_t rv;

    rv = scep_sql_connect(p, o->pg_conninfo, 0, &scepreg_cli_log, db, &why);
    if (rv == APR_SUCCESS) {
        rv = scep_sql_schema_version(*db, p, &version);
    }
    if (rv != APR_SUCCESS) {
        scepreg_complain("cannot open database '%s': %s", o->dbdir,
                         why ? why : scep_db_strerror(p, rv));
        return RC_DB;
    }
    if (version == 0 && write && o->create) {
        if ((rv = scep_sql_migrate(*db, p, &from, &to)) != APR_SUCCESS) {
            scepreg_complain("cannot create the schema in '%s': %s", o->dbdir,
                             scep_db_strerror(p, rv));
            return status_rc(rv);
        }
        version = to;
    }
    if (version == 0) {
        scepreg_complain("cannot open database '%s': it holds no mod_scep schema (create it "
                         "with `%s %s ... db upgrade`, or -c)", o->dbdir, scepreg_progname,
                         o->pg_option);
        return RC_DB;
    }
    if (version != SCEP_SQL_SCHEMA_VERSION) {
        scepreg_complain("cannot open database '%s': its schema version is %d, this scepreg "
                         "uses %d: %s", o->dbdir, version, SCEP_SQL_SCHEMA_VERSION,
                         version < SCEP_SQL_SCHEMA_VERSION ? "run `scepreg db upgrade`"
                                                           : "upgrade scepreg");
        return RC_INVALID;
    }
    return RC_OK;
}

/* As root, a database written by the tool must stay usable by httpd's children: with -o
 * the folder and its files are handed to that user; otherwise, if the folder belongs to
 * somebody else (httpd made it), files that root just created are handed to the folder's
 * owner. */
int scepreg_fix_ownership(apr_pool_t *p, const opts_t *o)
{
    static const char *const files[] = { "", "/data.mdb", "/lock.mdb" };
    struct stat dir_st, st;
    uid_t uid;
    gid_t gid;
    int i, rc = RC_OK;

    if (geteuid() != 0 || o->pg_option) {
        return RC_OK;           /* PostgreSQL: the server's files are its own */
    }
    if (o->owner) {
        struct passwd *pw = getpwnam(o->owner);

        if (!pw) {
            scepreg_complain("-o: no user '%s'", o->owner);
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
            scepreg_complain("the change is saved, but '%s' cannot be handed to uid %ld: %s",
                             path, (long)uid, strerror(errno));
            rc = RC_DB;
        }
    }
    return rc;
}

/* ---- output ---------------------------------------------------------------------------- */

void scepreg_json_string(FILE *out, const char *s)
{
    apr_pool_t *scratch;

    if (!s || apr_pool_create(&scratch, NULL) != APR_SUCCESS) {
        fputs("null", out);
        return;
    }
    fputs(scep_util_json_string(scratch, s), out);
    apr_pool_destroy(scratch);
}

void scepreg_json_identity(FILE *out, const char *key)
{
    fputs("\"kind\":", out);
    scepreg_json_string(out, key ? scep_name_kind_name(scep_name_key_kind(key)) : NULL);
    fputs(",\"fqdn\":", out);
    scepreg_json_string(out, key);
    fputs(",\"name\":", out);
    scepreg_json_string(out, key ? scep_name_key_value(key) : NULL);
}

void scepreg_json_time(FILE *out, apr_int64_t t)
{
    char buf[SCEP_UTIL_ISO_TIME_SIZE];

    if (!t) {
        fputs("null", out);
        return;
    }
    fprintf(out, "\"%s\"", scep_util_iso_time(buf, t));
}

int scepreg_finish_output(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        scepreg_complain("cannot write the listing: %s", strerror(errno));
        return RC_DB;
    }
    return RC_OK;
}

/* ---- db and copy ------------------------------------------------------------------------ */

/* `db sql [N]`: a step's SQL, or every step, for a DBA to read or apply by hand. */
static int db_sql(const opts_t *o)
{
    const char *const *args = o->command_args;
    int n, from = 1, to = SCEP_SQL_SCHEMA_VERSION;

    if (o->command_nargs > 2) {
        return syntax("db sql takes at most one schema step");
    }
    if (o->command_nargs == 2) {
        char *end;
        long step = strtol(args[1], &end, 10);

        if (end == args[1] || *end || step < 1 || !scep_sql_migration((int)step)) {
            return syntax("db sql: '%s' is not a schema step (1 to %d)", args[1],
                          SCEP_SQL_SCHEMA_VERSION);
        }
        from = to = (int)step;
    }
    for (n = from; n <= to; n++) {
        printf("-- mod_scep schema step %d: from version %d to %d\n%s", n, n - 1, n,
               scep_sql_migration(n));
    }
    return scepreg_finish_output();
}

/* `db upgrade` and `db status`: the schema of a PostgreSQL database. */
static int db_schema(apr_pool_t *p, const opts_t *o)
{
    int upgrade = strcmp(o->command_args[0], "upgrade") == 0, version = 0, from = 0,
        to = 0;
    const char *why = NULL;
    scep_db_t *db;
    apr_status_t rv;

    if (o->command_nargs != 1) {
        return syntax("db %s takes no operand", o->command_args[0]);
    }
    if (!o->pg_option) {
        return syntax("db %s: name the PostgreSQL database with --pg or --pg-file (an "
                      "LMDB folder gets its schema with -c)", o->command_args[0]);
    }
    rv = scep_sql_connect(p, o->pg_conninfo, 0, &scepreg_cli_log, &db, &why);
    if (rv == APR_SUCCESS) {
        rv = upgrade ? scep_sql_migrate(db, p, &from, &to)
                     : scep_sql_schema_version(db, p, &version);
    }
    if (upgrade && rv == SCEP_DB_VERSION) {
        scepreg_complain("'%s' has schema version %d, newer than this scepreg's %d: upgrade "
                         "scepreg", o->dbdir, from, SCEP_SQL_SCHEMA_VERSION);
        return RC_INVALID;
    }
    if (rv != APR_SUCCESS) {
        scepreg_complain("%s '%s': %s", upgrade ? "cannot upgrade the schema of"
                                                : "cannot read the schema of", o->dbdir,
                         why ? why : scep_db_strerror(p, rv));
        return status_rc(rv);
    }
    if (upgrade) {
        printf("schema version %d -> %d\n", from, to);
        return scepreg_finish_output();
    }
    printf("schema version %d, this scepreg uses %d: %s\n", version, SCEP_SQL_SCHEMA_VERSION,
           version == SCEP_SQL_SCHEMA_VERSION ? "current"
           : version == 0 ? "no schema yet, run scepreg db upgrade"
           : version < SCEP_SQL_SCHEMA_VERSION ? "older, run scepreg db upgrade"
           : "newer, upgrade scepreg");
    if (scepreg_finish_output() != RC_OK) {
        return RC_DB;
    }
    return version == SCEP_SQL_SCHEMA_VERSION ? RC_OK : RC_INVALID;
}

static int run_word_command(apr_pool_t *p, opts_t *o)
{
    int c;

    for (c = 1; c < 256; c++) {
        if (o->seen[c] && !(c == 'm' && strcmp(o->command, "copy") == 0)) {
            return syntax("option -%c cannot be used with %s", c, o->command);
        }
    }
    if (strcmp(o->command, "copy") == 0) {
        return scepreg_copy(p, o);
    }
    if (strcmp(o->command, "pki") == 0) {
        if (o->pg_option) {
            return syntax("pki init needs no database: leave out %s", o->pg_option);
        }
        return scepreg_pki(p, o);
    }
    if (strcmp(o->command_args[0], "sql") == 0) {
        return db_sql(o);
    }
    return db_schema(p, o);
}

/* ---- main -------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    apr_pool_t *pool;
    apr_int64_t now = (apr_int64_t)time(NULL);
    const mode_entry_t *mode;
    scep_db_t *db;
    opts_t o;
    int rc;

    if (argc > 0 && argv[0] && *argv[0]) {
        const char *slash = strrchr(argv[0], '/');

        scepreg_progname = slash ? slash + 1 : argv[0];
    }
    if (apr_app_initialize(&argc, (const char *const **)&argv, NULL) != APR_SUCCESS
        || apr_pool_create(&pool, NULL) != APR_SUCCESS) {
        fprintf(stderr, "%s: cannot initialise APR\n", scepreg_progname);
        return RC_DB;
    }
    atexit(apr_terminate);
    install_signals();

    mode = parse_args(pool, argc, argv, &o, now, &rc);
    if (mode && o.owner && geteuid() == 0 && !getpwnam(o.owner)) {
        rc = syntax("-o: no user '%s'", o.owner);
    }
    else if (mode && o.owner && geteuid() != 0) {
        rc = syntax("-o needs root");
    }
    /* every command starts from the database: a missing one is reported before a long
     * read or a prompt */
    else if (mode && (rc = o.pg_option ? scepreg_open_pg(pool, &o, mode->writes, &db)
                                       : scepreg_open_lmdb(pool, &o, mode->writes, &db))
                     == RC_OK) {
        rc = mode->run(pool, &o, db, now);
    }
    else if (!mode && rc == RC_OK && o.command) {
        rc = run_word_command(pool, &o);
    }
    apr_pool_destroy(pool);
    return rc;
}

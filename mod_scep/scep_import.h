/* SPDX-License-Identifier: Apache-2.0 */
/* Device registration values as scepreg accepts them, and one line of its CSV import.
 * The rules live here, in the core, so that the command line and the import check a
 * value the same way, and so that the import parser can be fuzzed on its own.
 *
 * Nothing here touches the database: a parsed row is plain data for the caller to store.
 * Strings point into the caller's line buffer or its pool. */
#ifndef SCEP_IMPORT_H
#define SCEP_IMPORT_H

#include <apr_pools.h>
#include <apr_tables.h>

/* Limits of what a registration holds.  The challenge limit equals SCEP_CHALLENGE_MAX of
 * scep_csr.h, which is not included here to keep the PKCS#10 code out of the tool. */
#define SCEP_REG_CHALLENGE_MAX  16384
#define SCEP_REG_SERIAL_MAX     64
#define SCEP_REG_PROFILE_MAX    64
#define SCEP_REG_COMMENT_MAX    255
#define SCEP_REG_IP_TEXT_MAX    64

/* Printable ASCII only (a value that may be echoed in a message). */
int scep_import_printable(const char *s);

/* Valid UTF-8 without control characters (a serial number or a comment). */
int scep_import_clean_text(const char *s);

/* The rule for profile names everywhere: at most SCEP_REG_PROFILE_MAX ASCII letters,
 * digits, '-', '_' and '.'; "" is accepted (no profile). */
int scep_import_profile_name_ok(const char *s);

/* "90", "90s", "60m", "12h", "30d", "2w", optionally after a '+': seconds, at most a
 * century.  Returns 1 with *out set, 0 when it is not one. */
int scep_import_parse_duration(const char *s, apr_int64_t *out);

/* "never" (0), "YYYY-MM-DD" (that day's last second, UTC), "YYYY-MM-DDTHH:MM:SSZ", or
 * "+DURATION" from `now`.  Returns 1 with *out set, 0 when it is not one. */
int scep_import_parse_expiry(const char *s, apr_int64_t now, apr_int64_t *out);

/* One import row: fqdn,ips,serial,challenge,flags,expires,profile,comment. */
typedef struct scep_import_row_t {
    const char *fqdn;               /* canonical (scep_name_fqdn) */
    apr_array_header_t *ips;        /* const char *, canonical (scep_name_ip) */
    const char *serial, *profile, *comment;  /* NULL when empty */
    char *challenge;                /* NULL: none; points into the line (wipe it) */
    apr_size_t challenge_len;
    unsigned int flags;             /* SCEP_DEVICE_* */
    apr_int64_t expires;            /* 0: never */
} scep_import_row_t;

#define SCEP_IMPORT_SKIP   0        /* blank, a comment, or the header line */
#define SCEP_IMPORT_ROW    1        /* *row is set */
#define SCEP_IMPORT_REJECT 2        /* *why says what is wrong (never the challenge) */

/* Reads one line of an import file (without its line end, NUL-terminated), splitting it
 * in place: the row keeps pointers into `line`.  `*data_lines` counts the lines that were
 * neither blank nor comments, starting at 0, so that only the first may be a header.
 * Expiries are counted from `now`. */
int scep_import_line(apr_pool_t *p, char *line, int *data_lines, apr_int64_t now,
                     scep_import_row_t *row, const char **why);

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* The tools' PostgreSQL connection strings (scepreg and scepload, --pg and --pg-file):
 * whether a string carries a secret, and reading one from a file under the rules that
 * keep a password out of other users' reach.  libpq reads the string itself; nothing
 * here connects or rewrites it.  Shown in messages only through scep_sql_conninfo_shown. */
#ifndef SCEP_PGCONF_H
#define SCEP_PGCONF_H

#include <apr_pools.h>
#include <apr_errno.h>

/* The longest file read: a connection string naming several hosts fits many times. */
#define SCEP_PGCONF_FILE_MAX 8192

/* Where a password belongs instead of a command line, for the tools' refusals. */
#define SCEP_PGCONF_PASSWORD_ADVICE \
    "put it in a file readable by you alone (--pg-file FILE, mode 0600), in PGPASSFILE " \
    "(~/.pgpass) or in PGPASSWORD"

/* Whether a libpq connection string carries a secret: the password or sslpassword
 * keyword, or in a URI a password in its user part (user:secret@host) or in its query
 * (percent-encoded names included).  Judged generously: a key=value string this cannot
 * read counts as holding one. */
int scep_pgconf_has_secret(const char *conninfo);

/* A URI (postgresql://...) with the password of its user part and the values of its
 * query's password and sslpassword replaced by ***, for scep_sql_conninfo_shown. */
const char *scep_pgconf_uri_shown(apr_pool_t *p, const char *uri);

/* Reads a connection string from `path`: a regular file of at most SCEP_PGCONF_FILE_MAX
 * bytes, owned by the caller or root, writable by its owner alone (whoever may change it
 * chooses the database), and, when it holds a secret, readable by its owner alone.  Lines
 * starting with '#' are comments; the others are joined with blanks.  *why says what is
 * wrong (in p), never quoting the file's text. */
apr_status_t scep_pgconf_read_file(apr_pool_t *p, const char *path, const char **conninfo,
                                   const char **why);

#endif

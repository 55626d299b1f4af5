/* SPDX-License-Identifier: Apache-2.0 */
/* Decoding of what arrives on the wire before any ASN.1 is looked at: the raw query
 * string of a GET (parsed here, never form-decoded by httpd, because a literal '+' is
 * base64 and must survive), and the lenient base64 that real clients send.
 *
 * All output lives in the caller's pool.  Every size is bounded before allocation. */
#ifndef SCEP_DECODE_H
#define SCEP_DECODE_H

#include <apr_pools.h>
#include <apr_errno.h>

/* Splits a raw query string ("operation=PKIOperation&message=MIIG...") into the values of
 * `operation` and `message`.  Parameter names match case-insensitively; unknown
 * parameters are ignored; a repeated parameter keeps its first value.
 *
 * `operation` is percent-decoded.  `message` is returned RAW (still percent-encoded, '+'
 * untouched) so that scep_decode_message() can treat it as base64.  Either output is set
 * to NULL when the parameter is absent.  `raw_query` may be NULL (no query at all).
 *
 * Returns APR_SUCCESS, or APR_EINVAL when the operation value is not decodable
 * (bad %-escape, embedded NUL). */
apr_status_t scep_decode_query(apr_pool_t *p, const char *raw_query,
                               const char **operation, const char **message);

/* Decodes a GET `message` value into bytes, in this order: percent-escapes are decoded
 * (%2B -> '+', %2F -> '/', %3D -> '='; lower-case hex accepted); then CR, LF, spaces and
 * tabs are dropped (clients wrap base64 at 64 columns, sent as %0A or %0D%0A); the
 * URL-safe alphabet ('-' for '+', '_' for '/') is accepted as well as the standard one;
 * '=' padding may be missing or complete.  A literal '+' stays '+'.
 *
 * `max_out` bounds the decoded size: the bound is checked against the input length
 * before anything is allocated, so a hostile length costs nothing.
 *
 * Returns APR_SUCCESS; APR_ENOSPC when the decoded size would exceed `max_out`;
 * APR_EINVAL when the text is not base64 (a character outside both alphabets, a bad
 * %-escape, padding in the middle, a dangling single character). */
apr_status_t scep_decode_message(apr_pool_t *p, const char *text, apr_size_t text_len,
                                 apr_size_t max_out,
                                 unsigned char **out, apr_size_t *out_len);

/* Encodes bytes as standard base64 without line breaks (NUL-terminated, in the pool);
 * APR's encoder, whose int lengths make it NULL beyond about 1.5 GB. */
const char *scep_decode_base64(apr_pool_t *p, const unsigned char *data, apr_size_t len);

#endif

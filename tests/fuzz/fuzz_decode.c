/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: what a GET brings before any ASN.1, the raw query string and the lenient
 * base64 of its `message` (scep_decode.c).  Besides crashes it checks the decoder's
 * promises: the size bound holds, and what our encoder writes decodes to the same bytes. */
#include <string.h>

#include <apr_strings.h>

#include "fuzz.h"
#include "scep_decode.h"

/* Small enough that the fuzzer reaches the bound; the module's default is far larger. */
#define MAX_OUT 4096

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    return 0;
}

static void decode(apr_pool_t *p, const char *text, apr_size_t len)
{
    unsigned char *out = NULL, *again = NULL;
    apr_size_t out_len = 0, again_len = 0;
    const char *b64;

    if (scep_decode_message(p, text, len, MAX_OUT, &out, &out_len) != APR_SUCCESS) {
        return;
    }
    if (out_len > MAX_OUT || (out_len && !out)) {
        fuzz_fail("scep_decode_message went past max_out");
    }
    b64 = scep_decode_base64(p, out, out_len);
    if (scep_decode_message(p, b64, strlen(b64), MAX_OUT, &again, &again_len) != APR_SUCCESS
        || again_len != out_len || (out_len && memcmp(again, out, out_len) != 0)) {
        fuzz_fail("base64 of decoded bytes does not decode to the same bytes");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    /* httpd hands the module a NUL-terminated query: an embedded NUL ends it there */
    const char *query = apr_pstrmemdup(p, (const char *)data, size);
    const char *operation = NULL, *message = NULL;

    if (scep_decode_query(p, query, &operation, &message) == APR_SUCCESS && message) {
        decode(p, message, strlen(message));
    }
    /* a POSTed or already-split message: the bytes as they are, NULs included */
    decode(p, (const char *)data, size);
    apr_pool_destroy(p);
    return 0;
}

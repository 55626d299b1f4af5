/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: scepreg's CSV import parser (scep_import_line), fed a whole file the way
 * the tool's line reader splits it: at '\n', one trailing '\r' dropped. */
#include <string.h>

#include <apr_strings.h>

#include "fuzz.h"
#include "scep_import.h"
#include "scep_name.h"
#include "scep_store.h"

/* A fixed "now" keeps relative expiries deterministic: 2024-01-01T00:00:00Z. */
#define NOW APR_INT64_C(1704067200)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    return 0;
}

static void check_row(apr_pool_t *p, const scep_import_row_t *row)
{
    int i;

    if (!row->fqdn || !row->ips
        || strlen(scep_name_key_value(row->fqdn))
           > (scep_name_key_kind(row->fqdn) == SCEP_IDENTITY_HOST ? SCEP_FQDN_MAX
                                                                : SCEP_NAME_VALUE_MAX)) {
        fuzz_fail("an accepted row without a bounded FQDN or identity");
    }
    {
        const char *again = scep_name_key(p, row->fqdn, 1, NULL);

        if (!again || strcmp(again, row->fqdn) != 0) {
            fuzz_fail("an accepted row whose key is not canonical");
        }
    }
    for (i = 0; i < row->ips->nelts; i++) {
        if (!APR_ARRAY_IDX(row->ips, i, const char *)) {
            fuzz_fail("an accepted row with a NULL address");
        }
    }
    if ((row->serial && (strlen(row->serial) > SCEP_REG_SERIAL_MAX
                         || !scep_import_clean_text(row->serial)))
        || (row->comment && (strlen(row->comment) > SCEP_REG_COMMENT_MAX
                             || !scep_import_clean_text(row->comment)))
        || (row->profile && (strlen(row->profile) > SCEP_REG_PROFILE_MAX
                             || !scep_import_profile_name_ok(row->profile)))
        || row->challenge_len > SCEP_REG_CHALLENGE_MAX
        || (row->challenge && strlen(row->challenge) != row->challenge_len)
        || (!row->challenge && row->challenge_len)) {
        fuzz_fail("an accepted row with a value its rules refuse");
    }
    if (row->expires < 0) {
        fuzz_fail("an accepted row that expired before 1970");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    const char *at = (const char *)data, *end = at + size;
    int data_lines = 0;

    while (at < end) {
        const char *nl = memchr(at, '\n', (size_t)(end - at));
        apr_size_t len = (apr_size_t)((nl ? nl : end) - at);
        scep_import_row_t row;
        const char *why = NULL;
        char *line;
        int kind;

        if (len > 0 && at[len - 1] == '\r') {
            line = apr_pstrmemdup(p, at, len - 1);
        }
        else {
            line = apr_pstrmemdup(p, at, len);
        }
        kind = scep_import_line(p, line, &data_lines, NOW, &row, &why);
        if (kind == SCEP_IMPORT_ROW) {
            check_row(p, &row);
        }
        else if (kind == SCEP_IMPORT_REJECT && !why) {
            fuzz_fail("a rejected row without a reason");
        }
        else if (kind != SCEP_IMPORT_SKIP && kind != SCEP_IMPORT_REJECT) {
            fuzz_fail("scep_import_line answered something else");
        }
        at += len + (nl ? 1 : 0);
    }
    apr_pool_destroy(p);
    return 0;
}

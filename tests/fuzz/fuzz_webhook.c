/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the reading of a validator's answer (scep_webhook_parse_answer), and what
 * it promises: a verdict only for a well-formed answer, supplied values only with an
 * allow, each one clean, bounded, of a known field. */
#include <string.h>

#include "fuzz.h"
#include "scep_webhook.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    return 0;
}

static void check_value(const scep_identity_value_t *v)
{
    const unsigned char *s = (const unsigned char *)v->value;
    apr_size_t i, len = v->value ? strlen(v->value) : 0;

    if (!v->field || !v->value || len == 0 || len > SCEP_HOOK_VALUE_MAX) {
        fuzz_fail("a supplied value that is missing, empty or too long");
    }
    for (i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] == 0x7F || (s[i] == 0xC2 && i + 1 < len && s[i + 1] < 0xA0)) {
            fuzz_fail("a supplied value with a control character");
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    scep_hook_answer_t answer;
    int i;

    scep_webhook_parse_answer(p, (const char *)data, size, &answer);
    if (answer.verdict == SCEP_HOOK_UNAVAILABLE && (!answer.why || answer.supplied)) {
        fuzz_fail("garbage without a reason, or with supplied values");
    }
    if (answer.verdict == SCEP_HOOK_DENY && answer.supplied) {
        fuzz_fail("a refusal that supplies values");
    }
    if (answer.supplied) {
        if (answer.supplied->nelts > SCEP_HOOK_VALUES_MAX) {
            fuzz_fail("more supplied values than the limit");
        }
        for (i = 0; i < answer.supplied->nelts; i++) {
            check_value(&APR_ARRAY_IDX(answer.supplied, i, scep_identity_value_t));
        }
    }
    apr_pool_destroy(p);
    return 0;
}

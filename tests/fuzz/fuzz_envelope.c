/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the EnvelopedData a request's SignedData carries, opened with the fixed
 * test RA (or CA) key as the server does (scep_msg_open_envelope), then the messageData
 * parsers on what it decrypts to.  Without this target the envelope would only be
 * reached behind a valid signature, which mutation almost always breaks. */
#include <string.h>

#include "fuzz.h"
#include "scep_msg.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_keys();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    scep_pkimsg_t msg;

    memset(&msg, 0, sizeof(msg));
    msg.fail_info = SCEP_FAIL_NONE;
    if (scep_msg_open_envelope(p, fuzz_keys(), 1, data, size, &msg) != APR_SUCCESS) {
        fuzz_fail("scep_msg_open_envelope answers with a refusal, not an error");
    }
    if (msg.fail_info != SCEP_FAIL_NONE) {
        if (!msg.why) {
            fuzz_fail("a refused envelope without a reason");
        }
    }
    else if (!msg.content || msg.content_len == 0) {
        fuzz_fail("an opened envelope without content");
    }
    else {
        fuzz_content(p, msg.content, msg.content_len);
    }
    apr_pool_destroy(p);
    return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: a whole PKIOperation message as the server reads it, the outer SignedData
 * (signer, SCEP attributes, signature) and, when that holds, the envelope and the
 * messageData inside (scep_msg_parse_request, then the parsers the server would run).
 * The seeds are real client messages encrypted to tests/fuzz/pki's RA, so mutations of
 * the attributes and certificates are explored behind a signature that verified. */
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
    scep_pkimsg_t *msg = NULL;
    const char *why = NULL;
    apr_status_t rv;

    /* legacy on: MD5 and single DES are code paths a configured server has */
    rv = scep_msg_parse_request(p, fuzz_keys(), 1, data, size, &msg, &why);
    if (rv == APR_SUCCESS) {
        if (!msg || !msg->transaction_id || msg->sender_nonce_len < 1
            || msg->sender_nonce_len > SCEP_NONCE_MAX) {
            fuzz_fail("a parsed request without transactionID or senderNonce");
        }
        if (msg->fail_info != SCEP_FAIL_NONE && !msg->why) {
            fuzz_fail("a refused request without a reason");
        }
        if (msg->fail_info == SCEP_FAIL_NONE) {
            if (!msg->signer || !msg->content || msg->content_len == 0) {
                fuzz_fail("an accepted request without signer or content");
            }
            fuzz_content(p, msg->content, msg->content_len);
        }
    }
    else if (!why) {
        fuzz_fail("an unreadable message without a reason");
    }
    apr_pool_destroy(p);
    return 0;
}

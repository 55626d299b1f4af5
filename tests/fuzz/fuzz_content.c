/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: what an envelope decrypts to, driven directly: every input goes through
 * the PKCS#10 inspection (scep_csr_parse) and the CertPoll / GetCert / GetCRL parsers
 * (IssuerAndSubject, IssuerAndSerialNumber).  The seeds are the messageData of real client
 * requests of each kind; the checks live in fuzz_content() (fuzz_common.c). */
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();

    fuzz_content(p, data, size);
    apr_pool_destroy(p);
    return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* What the fuzz targets share: the libFuzzer entry points (declared here so that the
 * targets build warning-clean, and so that replay.c can call them), one APR pool per
 * input, and the fixed test CA and RA that the pkiMessage targets decrypt with.
 *
 * Each target is one file defining LLVMFuzzerTestOneInput.  tests/fuzz/run.sh links it
 * with libFuzzer and the sanitizers (clang); `make check` links it with replay.c (gcc)
 * and feeds it the checked-in corpus and regression inputs. */
#ifndef SCEP_FUZZ_H
#define SCEP_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include <apr_pools.h>

#include "scep_msg.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* APR, OpenSSL's SCEP attribute OIDs and providers; aborts when they cannot be set up
 * (a harness that silently tests nothing would be worse). */
void fuzz_init(void);

/* A fresh pool for one input; destroy it before returning so that leaks show. */
apr_pool_t *fuzz_pool(void);

/* The test CA's and RA's certificates and keys (tests/fuzz/pki), loaded once.  The seed
 * messages are encrypted to these, so the fuzzer starts from envelopes that open. */
const scep_msg_keys_t *fuzz_keys(void);

/* Runs every messageData parser (PKCS#10, IssuerAndSubject, IssuerAndSerialNumber) on
 * decrypted content, checking what each promises about its results. */
void fuzz_content(apr_pool_t *p, const unsigned char *data, size_t len);

/* Aborts with a message: a broken promise is a finding like a crash. */
void fuzz_fail(const char *what) __attribute__((noreturn));

#endif

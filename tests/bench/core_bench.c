/* SPDX-License-Identifier: Apache-2.0 */
/* core_bench: mod_scep's answer to one PKCSReq, without httpd, the network or LMDB, for
 * profiles that do not move with the machine's load.
 *
 *   core_bench PKI_DIR CHALLENGE REQUEST.der COUNT
 *
 * PKI_DIR holds ca.pem, ca.key, ra.pem and ra.key.  The endpoint has a static challenge
 * and no database, so every one of the COUNT answers issues a new certificate for the
 * same request.  Prints the CPU time per enrollment; under callgrind
 * (tests/bench/core-bench.sh) the instructions per enrollment are exact.
 * CORE_BENCH_TEMPLATE=<preset> measures a certificate template (ScepTemplate <preset>
 * with ScepTemplateUnlisted drop) instead of the default copying. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include <apr_file_io.h>
#include <apr_general.h>
#include <apr_strings.h>

#include "scep_ca.h"
#include "scep_server.h"
#include "scep_template.h"

/* the largest request read: ten times a 4096-bit PKCSReq */
#define MAX_REQUEST (64 * 1024)

static double cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec)
           + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int main(int argc, const char *const argv[])
{
    apr_pool_t *p, *req_pool;
    scep_ca_files_t files = { 0 };
    scep_ca_t *ca = NULL;
    scep_profile_t profile;
    scep_peer_t peer = { "127.0.0.1", "/scep" };
    const char *err = NULL;
    char *request;
    apr_size_t len;
    apr_file_t *f;
    long count = 0, i;
    char *end = NULL;
    double t0;

    if (argc == 5) {
        count = strtol(argv[4], &end, 10);
    }
    if (argc != 5 || !end || *end || count < 1 || count > 100000) {
        fprintf(stderr, "usage: core_bench PKI_DIR CHALLENGE REQUEST.der COUNT (1-100000)\n");
        return 2;
    }
    apr_app_initialize(NULL, NULL, NULL);
    apr_pool_create(&p, NULL);
    files.ca_cert_file = apr_pstrcat(p, argv[1], "/ca.pem", NULL);
    files.ca_key_file = apr_pstrcat(p, argv[1], "/ca.key", NULL);
    files.ra_cert_file = apr_pstrcat(p, argv[1], "/ra.pem", NULL);
    files.ra_key_file = apr_pstrcat(p, argv[1], "/ra.key", NULL);
    if (scep_ca_load(p, &files, NULL, &ca, &err) != APR_SUCCESS) {
        fprintf(stderr, "core_bench: %s\n", err ? err : "cannot load the CA");
        return 1;
    }
    scep_profile_defaults(&profile, p);
    scep_profile_set_challenge(&profile, p, argv[2]);
    if (getenv("CORE_BENCH_TEMPLATE")) {
        scep_template_t *t = scep_template_new(p);
        const char *const *eku;
        unsigned int key_usage;

        if ((err = scep_template_preset(t, getenv("CORE_BENCH_TEMPLATE"), &key_usage, &eku))
            || (err = scep_template_set_unlisted(t, "drop"))) {
            fprintf(stderr, "core_bench: CORE_BENCH_TEMPLATE: %s\n", err);
            return 2;
        }
        profile.template_ = t;
    }
    request = apr_palloc(p, MAX_REQUEST);
    len = MAX_REQUEST;
    if (apr_file_open(&f, argv[3], APR_FOPEN_READ, 0, p) != APR_SUCCESS
        || apr_file_read_full(f, request, MAX_REQUEST, &len) != APR_EOF || len == 0) {
        fprintf(stderr, "core_bench: cannot read %s (1 to %d bytes)\n", argv[3],
                MAX_REQUEST - 1);
        return 1;
    }
    apr_file_close(f);

    apr_pool_create(&req_pool, p);
    t0 = cpu_seconds();
    for (i = 0; i < count; i++) {
        scep_reply_t reply = { 0 };

        scep_server_pkioperation(req_pool, ca, &profile, NULL, (unsigned char *)request, len,
                                 &peer, (apr_int64_t)time(NULL), NULL, &reply);
        if (reply.http_status != 200 || reply.outcome != SCEP_OUTCOME_ISSUED) {
            const char *outcome = scep_server_outcome_name(reply.outcome);

            fprintf(stderr, "core_bench: enrollment %ld: HTTP %d, %s, %s\n", i + 1,
                    reply.http_status, outcome ? outcome : "-",
                    reply.reason ? reply.reason : "-");
            return 1;
        }
        apr_pool_clear(req_pool);
    }
    printf("core CPU:        %.3f ms per enrollment (%ld enrollments)\n",
           (cpu_seconds() - t0) * 1000 / (double)count, count);
    apr_pool_destroy(p);
    apr_terminate();
    return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* A plain driver for the fuzz targets, built with the ordinary compiler by `make check`:
 * it feeds every file of the target's checked-in corpus and regression directories to
 * LLVMFuzzerTestOneInput once, so that crashes found earlier stay fixed even where clang
 * and libFuzzer are not installed.  A crash or a broken promise aborts the test.
 *
 *   replay_<target> [DIR...]     (default: SCEP_FUZZ_DIR/corpus/<target> and
 *                                 SCEP_FUZZ_DIR/regressions/<target>)
 *
 * The corpus must not be empty: a replay of nothing would pass without testing. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#if !defined(SCEP_FUZZ_DIR) || !defined(SCEP_FUZZ_TARGET)
#error "SCEP_FUZZ_DIR and SCEP_FUZZ_TARGET must be defined"
#endif

/* Inputs are small (libFuzzer runs use -max_len well below this). */
#define REPLAY_MAX_INPUT (1024 * 1024)
#define MAX_FILES 100000

static unsigned char buf[REPLAY_MAX_INPUT];

/* Runs every regular file of `dir`; returns how many, or -1 when `dir` cannot be read
 * (a missing regressions directory is fine: `required` says whether it must exist). */
static long replay_dir(const char *dir, int required)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    long count = 0;

    if (!d) {
        if (!required && errno == ENOENT) {
            return 0;
        }
        fprintf(stderr, "replay: cannot open %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL && count < MAX_FILES) {
        char path[4096];
        struct stat st;
        FILE *f;
        size_t n;

        if (e->d_name[0] == '.'
            || snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path)
            || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        if (st.st_size > REPLAY_MAX_INPUT || !(f = fopen(path, "rb"))) {
            fprintf(stderr, "replay: cannot read %s\n", path);
            closedir(d);
            return -1;
        }
        n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        fprintf(stderr, "replay: %s\n", path);
        LLVMFuzzerTestOneInput(buf, n);
        count++;
    }
    closedir(d);
    return count;
}

int main(int argc, char **argv)
{
    long n, total = 0;
    int i;

    LLVMFuzzerInitialize(&argc, &argv);
    if (argc > 1) {
        for (i = 1; i < argc; i++) {
            if ((n = replay_dir(argv[i], 1)) < 0) {
                return 1;
            }
            total += n;
        }
    }
    else {
        n = replay_dir(SCEP_FUZZ_DIR "/corpus/" SCEP_FUZZ_TARGET, 1);
        if (n <= 0) {
            fprintf(stderr, "replay: the %s corpus is missing or empty\n", SCEP_FUZZ_TARGET);
            return 1;
        }
        total = n;
        if ((n = replay_dir(SCEP_FUZZ_DIR "/regressions/" SCEP_FUZZ_TARGET, 0)) < 0) {
            return 1;
        }
        total += n;
    }
    printf("replay %s: %ld inputs, no crash\n", SCEP_FUZZ_TARGET, total);
    return 0;
}

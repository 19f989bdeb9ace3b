/* SPDX-License-Identifier: MIT */
/* main() for a fuzz target without libFuzzer: runs every file of the corpus
 * directories (or single files) given as arguments through the target, in name
 * order, so that `make test` replays the corpora with any compiler. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* Reads path whole into *buf (owned by caller); -1 with a message on failure. */
static int read_all(const char *path, uint8_t **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 4096, n = 0;
    uint8_t *b = malloc(cap);
    int rc = -1;
    if (f == NULL || b == NULL)
        goto cleanup;
    for (;;) {
        n += fread(b + n, 1, cap - n, f);
        if (ferror(f) || feof(f))
            break;
        uint8_t *bigger = realloc(b, cap * 2);
        if (bigger == NULL)
            goto cleanup;
        b = bigger;
        cap *= 2;
    }
    if (!ferror(f)) {
        *buf = b;
        *len = n;
        b = NULL;
        rc = 0;
    }
cleanup:
    if (rc != 0)
        fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(errno));
    free(b);
    if (f != NULL)
        fclose(f);
    return rc;
}

static int run_file(const char *path)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (read_all(path, &buf, &len) != 0)
        return -1;
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
}

/* Every regular file of dir, in name order; the number run, -1 on error. */
static long run_dir(const char *dir)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    long ran = 0;
    if (n < 0) {
        fprintf(stderr, "replay: cannot open %s: %s\n", dir, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        int k = snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        if (ran >= 0 && k > 0 && (size_t)k < sizeof(path) && stat(path, &st) == 0 &&
            S_ISREG(st.st_mode))
            ran = run_file(path) == 0 ? ran + 1 : -1;
        free(names[i]);
    }
    free(names);
    return ran;
}

int main(int argc, char **argv)
{
    long total = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR|FILE...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        long ran = stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)
                       ? run_dir(argv[i])
                       : (run_file(argv[i]) == 0 ? 1 : -1);
        if (ran <= 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i],
                    ran == 0 ? "no inputs" : "failed");
            return 1;
        }
        total += ran;
    }
    printf("%s: %ld inputs replayed, no failure\n", argv[0], total);
    return 0;
}
